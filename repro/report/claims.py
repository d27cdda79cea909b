"""The claims report (reports/claims/): claims.md, claims.csv and index.html, shaped like a pre-registered study.

The first line counts the verdicts after and before the family's adjustment. Then the pre-registration (the
claims file's sha256 and commit, the decision rules), one row per claim (the claim, its source, the published
value(s), ours with its interval at the stopping look, the seeds used and why it stopped, the raw and adjusted
p-values and verdicts, the size outcome, the minimum detectable effect, the figure made from the claim's first
paired seed in each arm) and the deviations from the registered declarations. `replication_report` compares two
seed sets claim by claim. Reads only the run store; links only files that exist.
"""

from __future__ import annotations

import html
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..atomic import atomic_write
from ..claims import CLAIM_METRICS, NOT_TESTABLE, REPLICATION_OFFSET, VERDICTS, bounded
from .folder import run_figure
from .tables import MISSING, format_interval, to_markdown

if TYPE_CHECKING:
    from ..claims import ClaimResult, Registration

READING = (
    "Each claim is tested on the same seeds in both arms (or one arm against a threshold); ours is the mean "
    "effect (treatment minus control, or the arm minus the threshold) with its interval at the stopping look's "
    "nominal level. Seeds run in the declared stages: a claim stops at the look where its sign (for a claim of no "
    "difference, equivalence within the margin) crosses the O'Brien-Fleming boundary (boundary), where the "
    "interval rules out the claimed size (futility), at the last look (cap), or when a run it needs failed "
    "(untested). supported: the decided sign is the claimed one; contradicted: the other; inconclusive: nothing "
    "decided. The primary claims form one family: a decision stands only where the adjusted p-value is at or "
    "below alpha (raw beside adjusted); exploratory claims keep their raw decision. The size outcome (below, "
    "consistent, above the claimed size, or undetermined when the interval holds both the size and 0) is a "
    "second answer from the same interval; MDE is the smallest effect the final n finds with 80% power. Before "
    "the verdict each claim on an AUC passes a gate computed from its runs: the control (or the threshold) must "
    "leave room for the claimed size below the metric's ceiling, counting the anomaly types its model cannot see "
    "(a one-frame model cannot move the temporal type) as fixed; a claim that fails it is 'not testable on this "
    "stand-in', is counted apart, leaves the family and is no evidence against its source. A claim against chance "
    "compares with the empirical null of the same runs (the anomaly labels moved at random within each video), "
    "not with 50. Claims of origin 'project' are the project's contrasts, not the source's (exploratory). On the "
    "synthetic default each dataset is played by a synthetic stand-in, so the published numbers (real data) are "
    "context, not targets."
)


ADJUSTMENT_NAMES = {"holm": "Holm", "bh": "Benjamini-Hochberg"}


def _counts(verdicts: list[str]) -> str:
    counts = Counter(verdicts)
    return ", ".join(f"{counts[v]} {v}" for v in VERDICTS if counts[v] and v != NOT_TESTABLE) or "none"


def verdict_counts(results: list[ClaimResult]) -> str:
    """The report's first line: the claims, the family, and the verdict counts after and before its adjustment."""
    primary = sum(result.claim.primary for result in results)
    adjustment = ADJUSTMENT_NAMES[results[0].claim.adjustment] if results else ""
    after = _counts([result.verdict for result in results])
    before = _counts([result.verdict_raw for result in results])
    untestable = sum(not result.testable for result in results)
    apart = f"; {untestable} {NOT_TESTABLE} (apart: outside the family, no evidence either way)" if untestable else ""
    return (
        f"{len(results)} claims ({primary} primary, {len(results) - primary} exploratory){apart}: "
        f"{after} after {adjustment}; {before} before"
    )


def stops_line(results: list[ClaimResult]) -> str:
    """Why the claims stopped, naming those that reached their cap undecided or stayed untested."""
    by_stop: dict[str, list[str]] = {}
    for result in results:
        by_stop.setdefault(result.look.stop if result.testable else "gate", []).append(result.claim.id)
    words = {"boundary": "at the boundary", "futility": "for futility", "cap": "at the cap undecided"}
    words |= {"untested": "untested", "continue": "before their plan ended (the run was cut short)"}
    words |= {"gate": f"at the testability gate ({NOT_TESTABLE})"}
    parts = []
    for stop, ids in by_stop.items():
        named = f" ({', '.join(ids)})" if stop in ("cap", "untested", "continue", "gate") else ""
        parts.append(f"{len(ids)} {words[stop]}{named}")
    return "Stopped: " + "; ".join(parts) + "."


def _published(result: ClaimResult) -> str:
    published = dict(result.claim.published)
    parts = []
    if isinstance(published.get("control"), (int, float)) and isinstance(published.get("treatment"), (int, float)):
        control, treatment = published.pop("control"), published.pop("treatment")
        parts.append(f"{control} → {treatment} ({treatment - control:+.2f})")
    parts += [f"{label}: {value}" for label, value in published.items()]
    return "; ".join(parts) or MISSING


def _ours(result: ClaimResult) -> str:
    found, claim = result.look, result.claim
    if found.n == 0:
        return MISSING
    means = {arm: float(np.mean(values)) for arm, values in result.values.items() if values}
    if len(means) < len(result.values):
        return f"{found.effect:+.2f}"
    compared = (
        f"{means['control']:.2f} → {means['treatment']:.2f}"
        if "arm" not in means
        else f"{means['arm']:.2f} vs {_reference(result)}"
    )
    if bounded(claim):  # a sign test, no t-interval (bounded metrics have a numeric threshold)
        positive = sum(value > claim.threshold for value in result.values["arm"])
        return f"{compared} ({found.effect:+.2f}; {positive} of {found.n} seeds above, sign test)"
    return f"{compared} ({found.effect:+.2f} {format_interval(found.low, found.high)})"


def _reference(result: ClaimResult) -> str:
    """A one-arm claim's reference: its threshold, or the empirical null of its runs (their mean)."""
    if not result.claim.null:
        return f"{result.claim.threshold:g}"
    return f"chance {np.mean(result.nulls):.2f} (empirical null)" if result.nulls else "chance (empirical null)"


def _gate(result: ClaimResult) -> str:
    gate = result.gate
    if gate is None:
        return "no gate (not an AUC, an 'equal' claim, a sign test, or untested)"
    return ("passed: " if gate.testable else "failed: ") + gate.reason


def _sensitivity(result: ClaimResult) -> str:
    return "; ".join(
        f"{name}: {found.effect:+.2f} {format_interval(found.low, found.high)}"
        for name, found in result.sensitivity.items()
    )


def _stopped(result: ClaimResult) -> str:
    """ "5 seeds, boundary" or "2 seeds, untested (runs a, b failed)"."""
    found = result.look
    text = f"{found.n} of {result.claim.plan.looks[result.stage]} seeds, {found.stop}"
    return text + (f" (not finished: {', '.join(result.missing)})" if result.missing else "")


def _p(value: float) -> str:
    return MISSING if not np.isfinite(value) else f"{value:.3g}"


def _verdicts(result: ClaimResult) -> str:
    if not result.testable:
        return result.verdict
    if result.claim.origin == "project":
        return f"{result.verdict} (the project's contrast, exploratory)"
    if not result.claim.primary:
        return f"{result.verdict} (exploratory)"
    if result.verdict == result.verdict_raw:
        return result.verdict
    return f"{result.verdict} ({result.verdict_raw} before adjustment)"


def _detectable(result: ClaimResult) -> str:
    value = result.detectable
    return MISSING if not np.isfinite(value) else f"{value:.2f}"


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
        claim, found = result.claim, result.look
        sign_test = bounded(claim)
        rows.append(
            {
                "id": claim.id,
                "role": "primary" if claim.primary else "exploratory",
                "origin": claim.origin,
                "source": claim.source,
                "quote": claim.quote,
                "size_from": claim.size_from,
                "statement": claim.statement,
                "dataset": claim.dataset,
                "stand_in": claim.stand_in,
                "metric": claim.metric,
                "unit": CLAIM_METRICS[claim.metric].unit,
                "claimed": _claimed(result),
                "threshold": "permutation" if claim.null else claim.threshold,
                "null": float(np.mean(result.nulls)) if result.nulls else np.nan,
                "gate": _gate(result),
                "gate_room": np.nan if result.gate is None else result.gate.room,
                "gate_needed": np.nan if result.gate is None else result.gate.needed,
                "sensitivity": _sensitivity(result),
                "published": _published(result),
                "verdict": result.verdict,
                "verdict_raw": result.verdict_raw,
                "p_value": result.p_value,
                "p_adjusted": result.p_adjusted,
                "look_p_value": found.p_value,
                "stop": found.stop,
                "looks": ";".join(map(str, claim.plan.looks)),
                "stage": result.stage + 1,
                "n": found.n,
                "effect": found.effect,
                "low": np.nan if sign_test else found.low,  # a bounded metric gets a sign test, no t-interval
                "high": np.nan if sign_test else found.high,
                "sd": found.sd,
                "size_outcome": result.size_outcome or "",
                "mde": result.detectable,
                "seeds": ";".join(map(str, result.seeds)),
                **{f"{arm} values": ";".join(f"{v:.6g}" for v in values) for arm, values in result.values.items()},
                "runs": ";".join(f"{arm}:{run.name}" for arm, runs in result.runs.items() for run in runs),
                "missing runs": ";".join(result.missing),
            }
        )
    return pd.DataFrame(rows)


def _table(results: list[ClaimResult], figures: dict[str, dict[str, Path]], out: Path) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "claim": f"**{r.claim.id}**: {r.claim.statement}",
                "source": r.claim.source,
                "published": _published(r),
                "ours (interval)": _ours(r),
                "claimed": _claimed(r),
                "seeds, stop": _stopped(r),
                "p (adjusted)": f"{_p(r.p_value)} ({_p(r.p_adjusted)})",
                "verdict": _verdicts(r),
                "size": r.size_outcome or MISSING,
                "MDE": _detectable(r),
                "figure": ", ".join(
                    f"[{arm}]({path.relative_to(out).as_posix()})" for arm, path in figures[r.claim.id].items()
                )
                or MISSING,
            }
            for r in results
        ]
    )


def _registration_md(registration: Registration | None) -> list[str]:
    if registration is None:
        return []
    rules = registration.rules
    tracked = f"commit {registration.commit} ({registration.date})" if registration.commit else "not tracked by git"
    return [
        "## Pre-registration",
        "",
        f"- claims file: `{registration.file}`, sha256 `{registration.sha256}`, {tracked}",
        f"- rules: alpha {rules['alpha']:g} two-sided, spent over the looks by O'Brien-Fleming; family adjustment "
        f"{ADJUSTMENT_NAMES[rules['adjustment']]}; looks (cumulative seeds) {rules['looks']} unless a claim "
        "declares its own",
        "",
    ]


def _deviations_md(registration: Registration | None) -> list[str]:
    if registration is None:
        return []
    lines = ["## Deviations", ""]
    if not registration.deviations:
        return [*lines, "No claim's declaration changed after runs for it existed.", ""]
    for deviation in registration.deviations:
        old, new = deviation.registered, deviation.declared
        keys = (old.keys() | new.keys()) - {"date", "commit"}
        changed = sorted(key for key in keys if old.get(key) != new.get(key))
        lines += [
            f"### {deviation.id}",
            "",
            f"registered {old['date']} (commit {old['commit'] or 'none'}); changed by {deviation.changed_by}",
            "",
            *[f"- `{key}`: `{old.get(key)!r}` → `{new.get(key)!r}`" for key in changed],
            "",
        ]
    return lines


def _markdown(
    results: list[ClaimResult],
    figures: dict[str, dict[str, Path]],
    out: Path,
    title: str,
    registration: Registration | None,
) -> str:
    lines = [f"# {verdict_counts(results)}", "", stops_line(results), "", title, "", *_registration_md(registration)]
    lines += [READING, ""]
    lines += [to_markdown(_table(results, figures, out)), *_deviations_md(registration), "## Per claim", ""]
    for result in results:
        lines += _details_md(result)
    return "\n".join(lines)


def _details_md(result: ClaimResult) -> list[str]:
    claim = result.claim
    lines = [f"### {claim.id}: {_verdicts(result)}", "", f"{claim.statement} ({claim.source})", ""]
    lines += [f"> {claim.quote}", ""]
    if claim.note:
        lines += [claim.note, ""]
    arms = "; ".join(f"{arm}: `{' '.join(overrides)}`" for arm, overrides in claim.arms.items())
    lines += [
        f"- metric: {claim.metric}, {CLAIM_METRICS[claim.metric].help} ({CLAIM_METRICS[claim.metric].unit})",
        f"- dataset: {claim.dataset} (synthetic stand-in: {claim.stand_in}); arms: {arms}",
        f"- claimed: {_claimed(result)}"
        + (f" (change: {', '.join(claim.change)})" if claim.change else "")
        + (f"; size from {claim.size_from}" if claim.size_from and claim.size is not None else ""),
        f"- testability gate: {_gate(result)}",
        f"- plan: looks {list(claim.plan.looks)}; stopped at look {result.stage + 1}: {_stopped(result)}; "
        f"look p {_p(result.look.p_value)}, stage-wise p {_p(result.p_value)}, adjusted {_p(result.p_adjusted)}",
        f"- size: {result.size_outcome or MISSING}; minimum detectable effect at n = {result.look.n}: "
        f"{_detectable(result)}",
    ]
    for arm, values in result.values.items():
        runs = ", ".join(f"`{run.name}`" for run in result.runs[arm])
        lines.append(
            f"- {arm}, seeds {', '.join(map(str, result.seeds))}: "
            f"{', '.join(f'{v:.2f}' for v in values) or MISSING} (runs {runs or MISSING})"
        )
    if claim.null and result.nulls:
        nulls = ", ".join(f"{v:.2f}" for v in result.nulls)
        lines.append(f"- chance (the arm's score with the anomaly labels moved at random within each video): {nulls}")
    if claim.sensitivity:
        shown = _sensitivity(result) or "not run (its runs are not all done)"
        lines.append(f"- sensitivity (declared before the runs, not deciding the verdict): {shown}")
    if result.missing:
        lines.append(f"- not finished: {', '.join(result.missing)} (failed or not run; see their status.json)")
    return [*lines, ""]


def _lines_html(lines: list[str]) -> str:
    """The pre-registration and deviations sections (markdown lines: headings, items, paragraphs) as HTML."""
    esc, parts = html.escape, []
    for line in lines:
        if line.startswith("### "):
            parts.append(f"<h3>{esc(line[4:])}</h3>")
        elif line.startswith("## "):
            parts.append(f"<h2>{esc(line[3:])}</h2>")
        elif line.startswith("- "):
            parts.append(f"<li>{esc(line[2:])}</li>")
        elif line:
            parts.append(f"<p>{esc(line)}</p>")
    return "".join(parts)


def _html(
    results: list[ClaimResult],
    figures: dict[str, dict[str, Path]],
    out: Path,
    title: str,
    registration: Registration | None,
) -> str:
    esc = html.escape
    columns = (
        "claim",
        "source",
        "published",
        "ours (interval)",
        "claimed",
        "seeds, stop",
        "p (adjusted)",
        "verdict",
        "size",
        "MDE",
        "figure",
    )
    head = "<tr>" + "".join(f"<th>{esc(column)}</th>" for column in columns) + "</tr>"
    rows = []
    for r in results:
        images = "".join(
            f'<figure><a href="{esc(p.relative_to(out).as_posix())}"><img src="'
            f'{esc(p.relative_to(out).as_posix())}" alt="{esc(r.claim.figure or "")} {esc(arm)}"></a>'
            f"<figcaption>{esc(arm)}</figcaption></figure>"
            for arm, p in figures[r.claim.id].items()
        )
        cells = (
            f"<b>{esc(r.claim.id)}</b>: {esc(r.claim.statement)}",
            esc(r.claim.source),
            esc(_published(r)),
            esc(_ours(r)),
            esc(_claimed(r)),
            esc(_stopped(r)),
            esc(f"{_p(r.p_value)} ({_p(r.p_adjusted)})"),
        )
        rows.append(
            "<tr>"
            + "".join(f"<td>{cell}</td>" for cell in cells)
            + f"<td class='{r.verdict}'>{esc(_verdicts(r))}</td><td>{esc(r.size_outcome or MISSING)}</td>"
            f"<td>{esc(_detectable(r))}</td><td><div class='figures'>{images or MISSING}</div></td></tr>"
        )
    style = (
        "body{font-family:sans-serif;max-width:1500px;margin:auto;padding:1em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 6px;vertical-align:top;font-size:0.9em}"
        ".figures{display:flex;gap:4px}figure{margin:0}img{width:170px}figcaption{font-size:0.8em}"
        ".supported{background:#d8f0d8}.contradicted{background:#f6d6d6}"
        ".inconclusive{background:#eee}.untested{color:#b00}"
    )
    body = (
        f"<h1>{esc(verdict_counts(results))}</h1><p>{esc(stops_line(results))}</p><p>{esc(title)}</p>"
        f"{_lines_html(_registration_md(registration))}"
        f"<p>{esc(READING)}</p><p>Per-seed values and the runs behind each verdict: <a href='claims.md'>claims.md"
        f"</a>, <a href='claims.csv'>claims.csv</a>.</p><table>{head}{''.join(rows)}</table>"
        f"{_lines_html(_deviations_md(registration))}"
    )
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{esc(verdict_counts(results))}</title>"
        f"<style>{style}</style></head><body>{body}</body></html>\n"
    )


def claims_report(
    results: list[ClaimResult], out: Path, title: str = "", registration: Registration | None = None
) -> dict[str, Path]:
    """Write out/claims.md, out/claims.csv, out/index.html and the claims' figures; returns {"md", "csv", "html"}.
    `registration` (repro.claims.register) adds the pre-registration and the deviations."""
    out = Path(out)
    figures = {result.claim.id: _figures(result, out) for result in results}
    return {
        "md": atomic_write(out / "claims.md", _markdown(results, figures, out, title, registration)),
        "csv": atomic_write(out / "claims.csv", _rows(results).to_csv(index=False)),
        "html": atomic_write(out / "index.html", _html(results, figures, out, title, registration)),
    }


def _agreement(first: list[ClaimResult], second: list[ClaimResult]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "id": a.claim.id,
                "role": "primary" if a.claim.primary else "exploratory",
                "verdict": a.verdict,
                "seeds": f"{a.look.n}, {a.look.stop}",
                "replication": b.verdict,
                "replication seeds": f"{b.look.n}, {b.look.stop}",
                "agree": a.verdict == b.verdict,
                "size": a.size_outcome or MISSING,
                "replication size": b.size_outcome or MISSING,
            }
            for a, b in zip(first, second)
        ]
    )


def agreement_line(first: list[ClaimResult], second: list[ClaimResult]) -> str:
    """ "Agreement 19 of 23 claims (83%) ..." : the replication report's first line."""
    agree = sum(a.verdict == b.verdict for a, b in zip(first, second))
    share = 100 * agree / len(first) if first else float("nan")
    return f"Agreement {agree} of {len(first)} claims ({share:.0f}%) between two disjoint seed sets"


def replication_report(
    first: list[ClaimResult], second: list[ClaimResult], out: Path, title: str = ""
) -> dict[str, Path]:
    """Write out/replication.md and out/replication.csv: claim by claim the verdicts (after the family's
    adjustment) of the plan run on two disjoint seed sets and whether they agree, the agreement rate first."""
    if [a.claim.id for a in first] != [b.claim.id for b in second]:
        raise ValueError("a replication compares the same claims in the same order")
    table = _agreement(first, second)
    lines = [
        f"# {agreement_line(first, second)}",
        "",
        title,
        "",
        f"Verdicts after the family's adjustment, the same seed plan on the plan's seeds and on those seeds + "
        f"{REPLICATION_OFFSET}.",
    ]
    markdown = "\n".join([*lines, "", to_markdown(table.assign(agree=table["agree"].map({True: "yes", False: "no"})))])
    out = Path(out)
    return {
        "md": atomic_write(out / "replication.md", markdown),
        "csv": atomic_write(out / "replication.csv", table.to_csv(index=False)),
    }
