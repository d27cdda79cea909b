"""The claims report (reports/claims/): claims.md, claims.csv and index.html, shaped like a reproducibility report.

One row per claim: the claim, its source, the published value(s), ours with its 95% interval over paired seeds,
the verdict, and the figure that shows it (made from the claim's first paired seed in each arm); the first line
counts the verdicts. Reads only the run store; links only files that exist.
"""

from __future__ import annotations

import html
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..atomic import atomic_write
from ..claims import CLAIM_METRICS, VERDICTS, size_ruled_out
from .folder import run_figure
from .tables import MISSING, format_interval, to_markdown

if TYPE_CHECKING:
    from ..claims import ClaimResult

READING = (
    "Each claim is tested on the same seeds in both arms (or one arm against a threshold); ours is the mean "
    "effect (treatment minus control, or the arm minus the threshold) with its 95% t-interval over the paired "
    "seeds. supported: the interval lies on the claimed side of 0 and reaches the claimed size; partly "
    "supported: the claimed side, but wholly below the size; contradicted: the other side of 0; "
    "inconclusive: it spans 0 (where the claimed size lies outside the interval, ours says so: the data then "
    "rule out an effect as large as claimed). A claim of no difference is supported when the interval lies "
    "within its margin. On the synthetic default each dataset is played by a synthetic stand-in, so the "
    "published numbers (real data) are context, not targets."
)


def verdict_counts(results: list[ClaimResult]) -> str:
    """The report's first line: "12 claims: 4 supported, 1 partly supported, ..." (verdicts that occur)."""
    counts = Counter(result.verdict.verdict for result in results)
    return f"{len(results)} claims: " + ", ".join(f"{counts[v]} {v}" for v in VERDICTS if counts[v])


def _published(result: ClaimResult) -> str:
    published = dict(result.claim.published)
    parts = []
    if isinstance(published.get("control"), (int, float)) and isinstance(published.get("treatment"), (int, float)):
        control, treatment = published.pop("control"), published.pop("treatment")
        parts.append(f"{control} → {treatment} ({treatment - control:+.2f})")
    parts += [f"{label}: {value}" for label, value in published.items()]
    return "; ".join(parts) or MISSING


def _ours(result: ClaimResult) -> str:
    verdict, claim = result.verdict, result.claim
    if verdict.n == 0:
        return MISSING
    means = {arm: float(np.mean(values)) for arm, values in result.values.items()}
    compared = (
        f"{means['control']:.2f} → {means['treatment']:.2f}"
        if "arm" not in means
        else f"{means['arm']:.2f} vs {claim.threshold:g}"
    )
    ruled_out = "; the claimed size lies outside the interval" if _size_ruled_out(result) else ""
    return f"{compared} ({verdict.effect:+.2f} {format_interval(verdict.low, verdict.high)}{ruled_out})"


def _size_ruled_out(result: ClaimResult) -> bool:
    return size_ruled_out(result.verdict, result.claim.direction, result.claim.size)


def _claimed(result: ClaimResult) -> str:
    claim = result.claim
    unit = CLAIM_METRICS[claim.metric].unit
    if claim.direction == "equal":
        return f"equal within ±{claim.size:g} {unit}"
    return claim.direction + (f" by {claim.size:g} {unit}" if claim.size is not None else "")


def _figures(result: ClaimResult, out: Path) -> dict[str, Path]:
    """arm -> png of the claim's figure for the arm's first paired seed, for the figures that could be made."""
    claim = result.claim
    if claim.figure is None:
        return {}
    made = {
        arm: run_figure(runs[0], out / "figures" / claim.id / arm, claim.figure)
        for arm, runs in result.runs.items()
        if runs
    }
    return {arm: path for arm, path in made.items() if path is not None and path.is_file()}


def _rows(results: list[ClaimResult]) -> pd.DataFrame:
    rows = []
    for result in results:
        claim, verdict = result.claim, result.verdict
        rows.append(
            {
                "id": claim.id,
                "source": claim.source,
                "statement": claim.statement,
                "dataset": claim.dataset,
                "stand_in": claim.stand_in,
                "metric": claim.metric,
                "unit": CLAIM_METRICS[claim.metric].unit,
                "claimed": _claimed(result),
                "threshold": claim.threshold,
                "published": _published(result),
                "verdict": verdict.verdict,
                "effect": verdict.effect,
                "low": verdict.low,
                "high": verdict.high,
                "n": verdict.n,
                "size_ruled_out": _size_ruled_out(result),
                "seeds": ";".join(map(str, result.seeds)),
                **{f"{arm} values": ";".join(f"{v:.6g}" for v in values) for arm, values in result.values.items()},
                "runs": ";".join(f"{arm}:{run.name}" for arm, runs in result.runs.items() for run in runs),
                "missing runs": ";".join(result.missing),
            }
        )
    return pd.DataFrame(rows)


def _markdown(results: list[ClaimResult], figures: dict[str, dict[str, Path]], out: Path, title: str) -> str:
    table = pd.DataFrame(
        [
            {
                "claim": f"**{r.claim.id}**: {r.claim.statement}",
                "source": r.claim.source,
                "published": _published(r),
                "ours (95% interval)": _ours(r),
                "claimed": _claimed(r),
                "n": r.verdict.n,
                "verdict": r.verdict.verdict,
                "figure": ", ".join(
                    f"[{arm}]({path.relative_to(out).as_posix()})" for arm, path in figures[r.claim.id].items()
                )
                or MISSING,
            }
            for r in results
        ]
    )
    lines = [f"# {verdict_counts(results)}", "", title, "", READING, "", to_markdown(table), "## Per claim", ""]
    for result in results:
        lines += _details_md(result)
    return "\n".join(lines)


def _details_md(result: ClaimResult) -> list[str]:
    claim = result.claim
    lines = [f"### {claim.id}: {result.verdict.verdict}", "", f"{claim.statement} ({claim.source})", ""]
    if claim.note:
        lines += [claim.note, ""]
    arms = "; ".join(f"{arm}: `{' '.join(overrides)}`" for arm, overrides in claim.arms.items())
    lines += [
        f"- metric: {claim.metric}, {CLAIM_METRICS[claim.metric].help} ({CLAIM_METRICS[claim.metric].unit})",
        f"- dataset: {claim.dataset} (synthetic stand-in: {claim.stand_in}); arms: {arms}",
        f"- claimed: {_claimed(result)}" + (f" (change: {', '.join(claim.change)})" if claim.change else ""),
    ]
    for arm, values in result.values.items():
        runs = ", ".join(f"`{run.name}`" for run in result.runs[arm])
        lines.append(
            f"- {arm}, seeds {', '.join(map(str, result.seeds))}: "
            f"{', '.join(f'{v:.2f}' for v in values) or MISSING} (runs {runs or MISSING})"
        )
    if result.missing:
        lines.append(f"- not finished: {', '.join(result.missing)} (failed or not run; see their status.json)")
    return [*lines, ""]


def _html(results: list[ClaimResult], figures: dict[str, dict[str, Path]], out: Path, title: str) -> str:
    esc = html.escape
    head = (
        "<tr><th>claim</th><th>source</th><th>published</th><th>ours (95% interval)</th><th>claimed</th>"
        "<th>n</th><th>verdict</th><th>figure</th></tr>"
    )
    rows = []
    for r in results:
        images = "".join(
            f'<figure><a href="{esc(p.relative_to(out).as_posix())}"><img src="'
            f'{esc(p.relative_to(out).as_posix())}" alt="{esc(r.claim.figure or "")} {esc(arm)}"></a>'
            f"<figcaption>{esc(arm)}</figcaption></figure>"
            for arm, p in figures[r.claim.id].items()
        )
        verdict = r.verdict.verdict
        rows.append(
            f"<tr><td><b>{esc(r.claim.id)}</b>: {esc(r.claim.statement)}</td><td>{esc(r.claim.source)}</td>"
            f"<td>{esc(_published(r))}</td><td>{esc(_ours(r))}</td><td>{esc(_claimed(r))}</td>"
            f"<td>{r.verdict.n}</td><td class='{verdict.replace(' ', '-')}'>{esc(verdict)}</td>"
            f"<td><div class='figures'>{images or MISSING}</div></td></tr>"
        )
    style = (
        "body{font-family:sans-serif;max-width:1500px;margin:auto;padding:1em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 6px;vertical-align:top;font-size:0.9em}"
        ".figures{display:flex;gap:4px}figure{margin:0}img{width:170px}figcaption{font-size:0.8em}"
        ".supported{background:#d8f0d8}.partly-supported{background:#eef6d0}.contradicted{background:#f6d6d6}"
        ".inconclusive{background:#eee}.untested{color:#b00}"
    )
    body = (
        f"<h1>{esc(verdict_counts(results))}</h1><p>{esc(title)}</p><p>{esc(READING)}</p>"
        f"<p>Per-seed values and the runs behind each verdict: <a href='claims.md'>claims.md</a>, "
        f"<a href='claims.csv'>claims.csv</a>.</p><table>{head}{''.join(rows)}</table>"
    )
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{esc(verdict_counts(results))}</title>"
        f"<style>{style}</style></head><body>{body}</body></html>\n"
    )


def claims_report(results: list[ClaimResult], out: Path, title: str = "") -> dict[str, Path]:
    """Write out/claims.md, out/claims.csv, out/index.html and the claims' figures; returns {"md", "csv", "html"}."""
    out = Path(out)
    figures = {result.claim.id: _figures(result, out) for result in results}
    return {
        "md": atomic_write(out / "claims.md", _markdown(results, figures, out, title)),
        "csv": atomic_write(out / "claims.csv", _rows(results).to_csv(index=False)),
        "html": atomic_write(out / "index.html", _html(results, figures, out, title)),
    }
