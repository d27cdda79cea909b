"""One library call per grid and report verb of the command line, so that a notebook does what `repro` does:

    from repro.verbs import sweep
    result = sweep("table5", seeds=3, settings=("train.epochs=4",))
    print(result.paths["md"].read_text())

`repro train` and `repro evaluate` are repro.pipeline.train_run and repro.pipeline.rescore; the data verbs call
repro.data's functions. Each call returns what its verb prints: the files written and the runs that failed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .grids import GridRun, placed
from .runs import RunStore


@dataclass(frozen=True)
class Written:
    """What a verb wrote ("md", "csv", "tex" or "html", and "manifest" for a grid verb) and its failed runs."""

    paths: dict[str, Path]
    failures: dict[str, str] = field(default_factory=dict)  # run folder name -> error (see its status.json)


def _absolute(data: str | Path | None) -> str | None:
    """A data folder as an absolute path, so that each run's config says which folder it read."""
    return None if data is None else str(Path(data).resolve())


def _execute(
    kind: str,
    runs: list[GridRun],
    command: dict[str, Any],
    declaration: dict[str, Any],
    out: Path,
    jobs: int | None,
    executor: str,
    address: str | None,
) -> tuple[list[GridRun], RunStore, dict[str, str], Path]:
    """Place the grid in the store, run what it lacks, write the manifest: (placed runs, store, failures,
    manifest path)."""
    from .executors import run_grid
    from .manifest import write_manifest

    store = RunStore(Path(command["runs"]))
    runs = placed(runs, store)
    failures = run_grid(runs, store, jobs, executor=executor, address=address)
    manifest = write_manifest(out, kind, runs, command, declaration)
    return runs, store, failures, manifest


def _command(profile, data, settings, seeds, runs) -> dict[str, Any]:
    return {
        "profile": str(profile),
        "data": data,
        "settings": list(settings),
        "seeds": seeds,
        "runs": str(Path(runs).resolve()),
    }


def sweep(
    table: str | Path,
    profile: str | Path = "synthetic",
    seeds: int = 3,
    runs: str | Path = "runs",
    out: str | Path | None = None,
    data: str | Path | None = None,
    settings: tuple[str, ...] = (),
    jobs: int | None = None,
    executor: str = "local",
    address: str | None = None,
) -> Written:
    """Run every cell of a table declaration (a shipped name such as "table5", or a path) that the run store
    lacks, write its report and manifest.json into `out` (default reports/<table name>).

    Example: sweep("table6", seeds=2, settings=("train.epochs=2",)).paths["md"]
    """
    import tomllib

    from .grids import load_table, resolve_table, table_grid
    from .report.grid_tables import declaration_report

    path = resolve_table(table)
    declaration = load_table(path)
    data = _absolute(data)
    grid = table_grid(declaration, profile, seeds, data, tuple(settings))
    out = Path(out or f"reports/{declaration.name}")
    command = _command(profile, data, settings, seeds, runs) | {"table": str(table)}
    grid, store, failures, manifest = _execute(
        "sweep", grid, command, tomllib.loads(path.read_text()), out, jobs, executor, address
    )
    paths = declaration_report(declaration, grid, store, out)
    return Written(paths | {"manifest": manifest}, failures)


def check_claims(
    claims_file: str | Path | None = None,
    profile: str | Path = "synthetic",
    runs: str | Path = "runs",
    out: str | Path = "reports/claims",
    data: str | Path | None = None,
    settings: tuple[str, ...] = (),
    jobs: int | None = None,
    executor: str = "local",
    address: str | None = None,
    replicate: bool = False,
) -> Written:
    """Run the seed plan of every claim of `claims_file` (default: the shipped ablations/claims.toml) in stages,
    training what the run store lacks: the first look's seeds of every claim, then the next look's seeds of the
    claims that have not stopped, up to their cap. Writes the claims report (verdicts before and after the family's
    adjustment, the pre-registration and its deviations) and manifest.json into `out`. `replicate` runs the same
    plan again on seeds offset by repro.claims.REPLICATION_OFFSET and writes replication.md/.csv beside the
    replication's own report: each claim's two verdicts and whether they agree.

    Example: check_claims(settings=("train.epochs=4", "train.checkpoint_every=2")).paths["md"]
    """
    from .claims import REPLICATION_OFFSET, SHIPPED, claim_runs, load_claims, register, run_plan
    from .executors import run_grid
    from .manifest import write_manifest
    from .report.claims import claims_report, replication_report

    claims_file = Path(claims_file or SHIPPED)
    declared = load_claims(claims_file)
    data = _absolute(data)
    claim_runs(declared, profile, data, tuple(settings))  # refuses a bad claim before training
    title = f"Claims of {claims_file}, profile {profile}, " + (f"data {data}" if data else "synthetic stand-ins")
    store, out = RunStore(Path(runs)), Path(out)

    def execute(grid: list[GridRun]) -> tuple[list[GridRun], dict[str, str]]:
        grid = placed(grid, store)
        return grid, run_grid(grid, store, jobs, executor=executor, address=address)

    def planned(offset: int):
        def expand(claims, seeds):
            return claim_runs(claims, profile, data, tuple(settings), seeds, offset)

        return run_plan(declared, expand, execute, store)

    results, grid, failures = planned(0)
    if replicate:
        first = results
        results, grid, failed = planned(REPLICATION_OFFSET)
        failures |= failed
        title += f", replication (seeds + {REPLICATION_OFFSET})"
    command = _command(profile, data, settings, None, runs) | {"title": title}
    declaration = {"file": str(claims_file.resolve())}
    manifest = write_manifest(out, "claims", grid, command, declaration)
    paths = claims_report(results, out, title, register(declared, claims_file, out))
    if replicate:
        paths = replication_report(first, results, out, title) | {"report": paths["md"]}
    return Written(paths | {"manifest": manifest}, failures)


def ablate(
    changes: dict[str, Any],
    no_memory: bool = False,
    variant_settings: tuple[str, ...] = (),
    profile: str | Path = "synthetic",
    base: tuple[str, ...] = (),
    seeds: int = 3,
    runs: str | Path = "runs",
    out: str | Path | None = None,
    jobs: int | None = None,
    executor: str = "local",
    address: str | None = None,
) -> Written:
    """Compare the baseline (`profile` with the `base` overrides) with one variant over the same seeds: the
    variant's options `changes` ({option: value}, e.g. {"no-separateness": True}; see repro.variants), `no_memory`
    and `variant_settings` (overrides of the variant only). Writes comparison.* and manifest.json into `out`
    (default reports/ablate-<variant>).

    Example: ablate({"no-separateness": True}, seeds=3).paths["md"]
    """
    from .grids import variant_grid
    from .report.grid_tables import ablation_report
    from .variants import variant

    name, overrides = variant(profile, base, changes, no_memory, variant_settings)
    grid = variant_grid(profile, base, {name: overrides}, seeds)
    out = Path(out or f"reports/ablate-{name}")
    command = _command(profile, None, base, seeds, runs) | {"variant": {name: list(overrides)}}
    grid, store, failures, manifest = _execute("ablate", grid, command, {}, out, jobs, executor, address)
    paths = ablation_report(grid, store, out)
    return Written(paths | {"manifest": manifest}, failures)


def report(
    source: str | Path,
    out: str | Path | None = None,
    runs: str | Path = "runs",
    profile: str | Path = "synthetic",
    data: str | Path | None = None,
    seeds: int = 3,
    settings: tuple[str, ...] = (),
) -> Written:
    """A report folder (index.md, index.html, tables, figures) of `source`: a folder written by sweep, claims or
    ablate (its manifest names the runs; the other arguments are not needed), a run store folder, or a table
    declaration whose runs are found from `profile`, `data`, `seeds` and `settings` as given to the sweep.
    `out` defaults to the report folder itself, else reports/<name>. Never trains.

    Example: report("reports/table6").paths["md"]
    """
    from .manifest import has_manifest
    from .report.folder import report_source

    source = Path(source)
    if out is None:
        out = source if has_manifest(source) else Path("reports") / (source.stem if source.is_file() else source.name)
    index = report_source(source, Path(out), Path(runs), str(profile), _absolute(data), seeds, tuple(settings))
    return Written({"md": index, "html": index.with_name("index.html")})


def probe(runs: list[str | Path], out: str | Path = "reports/skip-probe", clips: int = 32) -> Written:
    """The skip probe of `runs` (run folders, or run store folders: every finished run in them): probe.md, .csv
    and .tex in `out`.

    Example: probe(["runs/skip-probe"]).paths["md"]
    """
    import pandas as pd

    from .probe import probe_run
    from .report.tables import write_table
    from .runs import finished_runs

    rows = pd.DataFrame(
        [
            row
            for folder in finished_runs(list(runs), "train them first (make reproduce-skip-probe)")
            for row in probe_run(folder, clips)
        ]
    )
    caption = "Mean |Δ output| ([-1, 1] scale) and PSNR (dB) against the target, original and replaced."
    return Written(write_table(rows, Path(out), "probe", caption=caption))
