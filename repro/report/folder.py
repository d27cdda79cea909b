"""A report folder from finished runs: per-run figures, an index.md and a static index.html linking them.

`build_report` reads only the run store (never trains). A run whose files are missing or corrupt is named in a
warning with what is missing, and the report covers the rest.
"""

from __future__ import annotations

import html
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..anomaly_types import TYPE_NAMES, display
from ..atomic import atomic_write
from ..config import load_config
from ..models.method import signals_from_arrays
from ..runs import RunStore, list_runs, load_signals, read_probe, read_record, signal_epochs
from .figures import (
    Example,
    epoch_curves,
    memory_usage_histogram,
    probe_bars,
    reconstruction_grid,
    roc_curves,
    score_timeline,
    tsne_map,
)
from .results import epoch_curves as run_epoch_curves
from .results import run_rows
from .tables import write_table

if TYPE_CHECKING:
    from ..grids import GridRun, Table
    from ..manifest import Manifest

MAX_TIMELINE_VIDEOS = 6
CAPTIONS = {
    "memory": "Nearest-item counts of the test queries: look for a few tall bars (collapse) versus an even spread.",
    "tsne": "t-SNE of queries coloured by nearest item, items as stars: look for one cluster per star.",
    "roc": "Frame-level ROC at the run's λ: the further above the diagonal, the better the detector.",
    "timeline": "Anomaly score per video with labelled spans shaded by type: look for peaks inside the spans.",
    "reconstruction": "Input, output, target and squared error per anomaly type: look for error inside anomalies.",
    "curves": "Training loss and test AUC per epoch: look for a loss that still falls or an AUC that peaks early.",
}


class ReportWarning(UserWarning):
    """A run folder that could not be fully reported (missing or corrupt files)."""


@dataclass
class Entry:
    """One run's section of the index: its label and the (caption key, png path) figures made."""

    run: str
    label: str
    figures: list[tuple[str, Path]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _describe(run: Path) -> str:
    """A short label from the run's config: data, the method and the settings it reads, the update, the seed."""
    cfg = load_config(run / "config.toml")
    method, settings = cfg.model.method, cfg.model.settings
    parts = [
        cfg.data.preset if cfg.data.name == "synthetic" else cfg.data.name,
        method.describe(settings),
        *(
            f"{name}={getattr(settings, name)}" for name in method.reads(settings) if name not in ("task", "memory")
        ),  # already in describe
        *(
            [f"update={'on' if cfg.method_eval.test_time_update else 'off'}"]
            if "test_time_update" in method.reads_eval(settings)
            else []
        ),
        f"seed {cfg.seed}",
    ]
    if cfg.data.salt_pepper:
        parts.append(f"salt-pepper {cfg.data.salt_pepper:g}")
    return ", ".join(parts)


def _memory(run: Path, out: Path) -> list[Path]:
    memory = read_record(run).default.memory
    if memory is None:
        return []
    return memory_usage_histogram(np.asarray(memory.counts), f"memory usage: {run.name}", out, "memory")


def _signal_figures(run: Path, out: Path) -> dict[str, list[Path]]:
    epochs = signal_epochs(run)
    if not epochs:
        raise FileNotFoundError("signals/epoch_*.npz")
    signals = load_signals(run, epochs[-1])
    cfg = load_config(run / "config.toml")
    record = signals_from_arrays(cfg.model.method.Signals, signals)
    lam = record.default_lambda(cfg.model.method.score_lambda(cfg.method_eval))
    scores = record.score(signals["video"], lam)
    labels, videos = signals["label"].astype(int), signals["video"]
    figures = {}
    if 0 < labels.sum() < len(labels):
        figures["roc"] = roc_curves({f"epoch {epochs[-1]}, λ={lam:g}": (scores, labels)}, out, "roc")
    shown = list(np.unique(videos)[:MAX_TIMELINE_VIDEOS])
    figures["timeline"] = score_timeline(scores, labels, videos, shown, out, "timeline", signals.get("anomaly_type"))
    return figures


def _example_figures(run: Path, out: Path, seed: int) -> dict[str, list[Path]]:
    with np.load(run / "examples.npz") as data:
        examples = {key: data[key] for key in data.files}
    rows = [
        Example(
            title=_type_title(int(kind)), input=x[..., ::-1], output=y[..., ::-1], target=t[..., ::-1]
        )  # BGR (OpenCV) -> RGB for display
        for x, y, t, kind in zip(
            examples["example_input"], examples["example_output"], examples["example_target"], examples["example_type"]
        )
    ]
    figures = {}
    if {"queries", "assignments", "items"} <= examples.keys():
        paths, _ = tsne_map(examples["queries"], examples["assignments"], examples["items"], out, "tsne", seed=seed)
        figures["tsne"] = paths
    figures["reconstruction"] = reconstruction_grid(rows, out, "reconstruction")
    return figures


def _type_title(code: int) -> str:
    if not 0 <= code < len(TYPE_NAMES):
        return f"type {code}"
    return "normal" if code == 0 else f"{display(TYPE_NAMES[code])} anomaly"


def _run_entry(run: Path, out: Path) -> Entry:
    """Every figure that the run's files allow; each missing or corrupt part is recorded as a problem."""
    try:
        entry = Entry(run.name, _describe(run))
        seed = load_config(run / "config.toml").seed
    except Exception as error:  # noqa: BLE001 - a broken config.toml is reported, not fatal
        return Entry(run.name, run.name, problems=[f"config.toml unreadable ({error})"])
    folder = out / "runs" / run.name
    steps = {
        "metrics.json (memory histogram)": lambda: {"memory": _memory(run, folder)},
        "examples.npz (reconstructions, t-SNE)": lambda: _example_figures(run, folder, seed),
        "signals (ROC, timeline)": lambda: _signal_figures(run, folder),
        "train.jsonl, metrics.json (loss and AUC per epoch)": lambda: {
            "curves": epoch_curves(run_epoch_curves(run), folder, "curves")
        },
    }
    for what, step in steps.items():
        try:
            made = step()
        except Exception as error:  # noqa: BLE001 - any unreadable file: name it, report the rest
            entry.problems.append(f"{what}: {type(error).__name__}: {error}")
            continue
        entry.figures += [(key, paths[0]) for key, paths in made.items() if paths]
    return entry


def _markdown(title: str, entries: list[Entry], tables: list[Path], out: Path) -> str:
    lines = [f"# {title}", ""]
    if tables:
        lines += ["## Tables", ""] + [f"- [{p.name}]({p.relative_to(out).as_posix()})" for p in tables] + [""]
    for entry in entries:
        lines += [f"## Run `{entry.run}`", "", entry.label, ""]
        lines += [f"- missing: {problem}" for problem in entry.problems]
        for key, path in entry.figures:
            rel = path.relative_to(out).as_posix()
            lines += ["", f"![{key}]({rel})", "", f"*{CAPTIONS[key]}* ([svg]({Path(rel).with_suffix('.svg')}))"]
        lines.append("")
    return "\n".join(lines)


def _html(title: str, entries: list[Entry], tables: list[Path], out: Path) -> str:
    esc = html.escape
    body = [f"<h1>{esc(title)}</h1>"]
    if tables:
        body.append(
            "<h2>Tables</h2><ul>"
            + "".join(f'<li><a href="{esc(p.relative_to(out).as_posix())}">{esc(p.name)}</a></li>' for p in tables)
            + "</ul>"
        )
    for entry in entries:
        body.append(f"<h2>Run <code>{esc(entry.run)}</code></h2><p>{esc(entry.label)}</p>")
        body += [f'<p class="missing">missing: {esc(problem)}</p>' for problem in entry.problems]
        body.append('<div class="grid">')
        for key, path in entry.figures:
            rel = esc(path.relative_to(out).as_posix())
            body.append(
                f'<figure class="{key}"><a href="{rel}"><img src="{rel}" alt="{key}"></a>'
                f"<figcaption>{esc(CAPTIONS[key])}</figcaption></figure>"
            )
        body.append("</div>")
    style = (
        "body{font-family:sans-serif;max-width:1400px;margin:auto;padding:1em}"
        ".grid{display:flex;flex-wrap:wrap;gap:1em}figure{margin:0;max-width:440px}"
        "img{max-width:440px;border:1px solid #ccc}figcaption{font-size:0.85em;color:#333}"
        ".timeline,.timeline img{max-width:896px}.missing{color:#b00}"
    )
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{esc(title)}</title>"
        f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n"
    )


def build_report(runs: list[Path], out: Path, title: str = "Report", tables: list[Path] | None = None) -> Path:
    """Figures for each run folder under out/runs/<hash>/, then out/index.md and out/index.html; returns
    index.md. `tables` are files already written under `out` that the index lists first."""
    out = Path(out)
    entries = []
    for run in runs:
        entry = _run_entry(Path(run), out)
        for problem in entry.problems:
            warnings.warn(f"run {entry.run} ({Path(run)}): {problem}; reported without it", ReportWarning, 2)
        entries.append(entry)
    tables = [Path(t) for t in tables or [] if Path(t).is_file()]
    atomic_write(out / "index.html", _html(title, entries, tables, out))
    return atomic_write(out / "index.md", _markdown(title, entries, tables, out))


def _finished(store: RunStore, grid: list[GridRun]) -> list[GridRun]:
    """The grid's runs (placed: each with its folder) that have a folder in the store; each absent one is named
    in a warning."""
    present = []
    for grid_run in grid:
        run = grid_run.folder_in(store)
        if run.is_dir():
            present.append(grid_run)
        else:
            warnings.warn(
                f"run {run.name} ({grid_run.labels}, seed {grid_run.seed}) not in {store.root}; train it "
                f"with `repro sweep` using the same --profile/--seeds/--set",
                ReportWarning,
                2,
            )
    return present


def report_source(
    source: Path,
    out: Path,
    runs_root: Path,
    profile: str = "synthetic",
    data_root: str | None = None,
    seeds: int = 1,
    overrides: tuple[str, ...] = (),
) -> Path:
    """A report of a report folder written by sweep, claims or ablate (its manifest.json names the runs), of a
    run store folder (every finished run, one summary table) or of a table declaration (its runs found by
    config hash from `profile`, `data_root`, `seeds` and `overrides`, as given to the sweep); returns index.md."""
    from ..grids import GridRun, load_table, placed, table_grid
    from ..manifest import has_manifest, read_manifest

    if has_manifest(source):
        return report_manifest(read_manifest(source), out)
    if not source.is_dir():
        table = load_table(source)
        store = RunStore(runs_root)
        return _table_index(table, placed(table_grid(table, profile, seeds, data_root, overrides), store), store, out)
    store = RunStore(source)
    listed = [(name, cfg) for name, cfg, state in list_runs(source) if state == "done"]
    done = [GridRun({"run": name, "dataset": cfg.data.name}, cfg.seed, cfg, source / name) for name, cfg in listed]
    if not done:
        raise FileNotFoundError(
            f"{source}: neither a run store with finished runs nor a report folder with a manifest.json; train "
            "some runs, or rerun the sweep, claims or ablate that wrote it (finished runs are reused)"
        )
    rows = run_rows(done, store)
    caption = "Every finished run: default and oracle metrics."
    tables = write_table(rows, out, "runs", caption=caption) if len(rows) else {}
    return build_report([source / name for name, _ in listed], out, f"Runs in {source}", list(tables.values()))


def _table_index(table: Table, grid: list[GridRun], store: RunStore, out: Path) -> Path:
    """A table declaration's report (its table beside the published numbers) and the index of its runs."""
    from .grid_tables import declaration_report

    grid = _finished(store, grid)
    rows = run_rows(grid, store)
    paths = declaration_report(table, grid, store, out) if not rows.empty else {}
    return build_report(
        [g.folder_in(store) for g in grid], out, f"{table.name}: {table.question}", list(paths.values())
    )


def report_manifest(manifest: Manifest, out: Path) -> Path:
    """The report of a grid verb's manifest, from the runs it names (no config is hashed): a sweep's table, an
    ablation's comparison or the claims' verdicts, and the index of the runs; returns index.md (claims: the
    claims' index.html beside claims.md, no per-run index)."""
    from ..grids import table_from_dict
    from .grid_tables import ablation_report

    store = RunStore(manifest.store)
    if manifest.kind == "sweep":
        return _table_index(table_from_dict(manifest.declaration, out / "manifest.json"), manifest.runs, store, out)
    if manifest.kind == "claims":
        from ..claims import judge, load_claims, register
        from .claims import claims_report

        claims = load_claims(manifest.declaration["file"])
        registration = register(claims, Path(manifest.declaration["file"]), out)
        return claims_report(judge(claims, manifest.runs, store), out, manifest.command["title"], registration)["md"]
    grid = _finished(store, manifest.runs)
    paths = ablation_report(grid, store, out)
    variants = sorted({run.labels["variant"] for run in grid} - {"baseline"})
    return build_report([g.folder_in(store) for g in grid], out, f"ablate: {', '.join(variants)}", list(paths.values()))


def _probe(run: Path, out: Path) -> list[Path]:
    """The bars of the run's saved skip probe (probe.json; a RunError saying how to compute it if absent)."""
    return probe_bars(list(read_probe(run).rows), out, "probe")


def run_figure(run: Path, out: Path, kind: str) -> Path | None:
    """One per-run figure ("memory", "roc", "timeline" or "probe") of a finished run, saved under out; its png, or
    None (with a ReportWarning) when the run's files do not allow it, e.g. a memory histogram of a run without
    memory."""
    try:
        if kind in ("memory", "probe"):
            made = {kind: (_memory if kind == "memory" else _probe)(run, out)}
        else:
            made = _signal_figures(run, out)
    except Exception as error:  # noqa: BLE001 - an unreadable file: name it, go on without the figure
        warnings.warn(f"run {run}: no {kind} figure ({type(error).__name__}: {error})", ReportWarning, 2)
        return None
    paths = made.get(kind) or []
    return paths[0] if paths else None
