"""Grids of runs: a table's declaration or the ablate flags -> run configs (x seeds) -> a local executor.

A table declaration (e.g. ablations/table5.toml) names a question, the synthetic stand-ins of the real
datasets, the models (each a list of config overrides), the published numbers and the λ grid of its
selection rule. Runs are cached by config hash, so a sweep that is killed and rerun only does what is left.
"""

from __future__ import annotations

import difflib
import importlib.resources
import multiprocessing
import os
import threading
import time
import tomllib
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from .config import ConfigError, RunConfig, load_config, training_identity
from .runs import RunStore

DATASETS = ("ped2", "avenue", "shanghaitech")


@dataclass(frozen=True)
class GridRun:
    """One cell of a grid for one seed."""

    labels: dict[str, str]  # e.g. {"dataset": "ped2", "model": "Pred w/ Mem"} or {"variant": "baseline"}
    seed: int
    config: RunConfig


@dataclass(frozen=True)
class Table:
    """A table declaration: its grid and what it is compared against."""

    name: str
    question: str
    stand_ins: dict[str, str]  # real dataset -> synthetic preset
    models: dict[str, tuple[str, ...]]  # row label -> config overrides
    published: list[dict] = field(default_factory=list)  # one dict per (dataset, model) row
    lambda_grid: tuple[float, ...] = ()
    datasets: tuple[str, ...] = DATASETS
    collapse: dict[str, str] = field(default_factory=dict)  # a collapse study's roles: reference, recipe -> row


def shipped_tables() -> dict[str, Path]:
    """The table declarations shipped with repro (ablations/*.toml, installed as repro.ablations): name -> path."""
    folder = Path(importlib.resources.files("repro.ablations"))
    return {path.stem: path for path in sorted(folder.glob("*.toml"))}


def resolve_table(table: Path | str) -> Path:
    """A shipped declaration by name ("table5") or a path to a TOML file."""
    shipped, path = shipped_tables(), Path(table)
    if path.is_file():
        return path
    if str(table) in shipped:
        return shipped[str(table)]
    close = difflib.get_close_matches(str(table), list(shipped), n=1)
    hint = f" did you mean {close[0]!r}?" if close else ""
    raise ConfigError(
        f"table declaration {table} not found;{hint} give a path to a TOML file or a shipped name: {', '.join(shipped)}"
    )


def load_table(table: Path | str) -> Table:
    """Read a table declaration (a path, or a shipped one by name); errors name the file and the missing key."""
    path = resolve_table(table)
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path} is not valid TOML: {error}") from None
    missing = [key for key in ("name", "question", "stand_ins", "models") if key not in raw]
    if missing:
        raise ConfigError(f"{path} lacks {', '.join(missing)}; see ablations/table5.toml for the format")
    _check_declaration(raw, path)
    grid = raw.get("selection", {}).get("lambda_grid", [])
    return Table(
        name=raw["name"],
        question=raw["question"],
        stand_ins=dict(raw["stand_ins"]),
        models={label: tuple(overrides) for label, overrides in raw["models"].items()},
        published=list(raw.get("published", [])),
        lambda_grid=tuple(float(x) for x in grid),
        datasets=tuple(raw.get("datasets", DATASETS)),
        collapse=dict(raw.get("collapse", {})),
    )


def _text(value) -> bool:
    return isinstance(value, str)


def _texts(value) -> bool:
    return isinstance(value, list) and all(map(_text, value))


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# key -> (test of its value, what it must be); each key of a table declaration, declared once
DECLARATION = {
    "name": (_text, 'a string, e.g. name = "table5"'),
    "question": (_text, "a string: the question the table answers"),
    "hypothesis": (_text, "a string"),
    "datasets": (_texts, 'a list of dataset names, e.g. datasets = ["ped2", "avenue"]'),
    "stand_ins": (
        lambda v: isinstance(v, dict) and all(map(_text, v.values())),
        'a table of dataset -> synthetic preset: [stand_ins] then ped2 = "single"',
    ),
    "models": (
        lambda v: isinstance(v, dict),
        'a table of row label -> overrides: [models] then "Pred w/ Mem" = ["model.task=pred"]',
    ),
    "published": (
        lambda v: isinstance(v, list) and all(isinstance(row, dict) for row in v),
        "a list of tables, each starting with [[published]]",
    ),
    "selection": (
        lambda v: isinstance(v, dict) and set(v) <= {"lambda_grid"},
        "a table [selection] holding only lambda_grid",
    ),
    "collapse": (
        lambda v: isinstance(v, dict) and set(v) == {"reference", "recipe"} and all(map(_text, v.values())),
        'a table [collapse] naming two rows: reference = "no remedy" and recipe = "study recipe"',
    ),
}


def _check_declaration(raw: dict, path: Path) -> None:
    """A ConfigError naming the file and the key whose value has the wrong shape, or a key that is not one."""
    for key, value in raw.items():
        if key not in DECLARATION:
            close = difflib.get_close_matches(key, DECLARATION, n=1)
            hint = f" did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"{path}: unknown key {key!r};{hint} allowed: {', '.join(DECLARATION)}")
        valid, expected = DECLARATION[key]
        if not valid(value):
            raise ConfigError(f"{path}: {key} must be {expected}; got {value!r}")
    for label, overrides in raw["models"].items():
        if not _texts(overrides):
            raise ConfigError(
                f"{path}: models.{label!r} must be a list of overrides, e.g. "
                f'["model.task=pred", "model.memory=false"]; got {overrides!r}'
            )
    unknown_rows = [row for row in raw.get("collapse", {}).values() if row not in raw["models"]]
    if unknown_rows:
        raise ConfigError(f"{path}: [collapse] names {unknown_rows[0]!r}, which is not a row of [models]")
    grid = raw.get("selection", {}).get("lambda_grid", [])
    if not (isinstance(grid, list) and all(_number(x) and 0 <= x <= 1 for x in grid)):
        raise ConfigError(f"{path}: selection.lambda_grid must be a list of numbers in [0, 1]; got {grid!r}")


def dataset_overrides(profile_cfg: RunConfig, dataset: str, table: Table, data_root: str | None) -> list[str]:
    """Where a table row's dataset comes from: its synthetic stand-in, or the real one under data_root."""
    if data_root is None:
        if dataset not in table.stand_ins:
            raise ConfigError(f"table {table.name} has no synthetic stand-in for {dataset!r}; add it to [stand_ins]")
        return ["data.name=synthetic", f"data.preset={table.stand_ins[dataset]}"]
    return [f"data.name={dataset}", f"data.root={data_root}"]


def table_grid(
    table: Table, profile: str | Path | None, seeds: int, data_root: str | None = None, overrides: tuple[str, ...] = ()
) -> list[GridRun]:
    """Every (dataset, model, seed) run of a table. Each row's own overrides must be read by its method; the
    table's λ grid and the sweep-wide `overrides` apply to every row that reads them."""
    grid_overrides = (f"eval.lambda_grid={list(table.lambda_grid)}",) if table.lambda_grid else ()
    base = load_config(profile, overrides)
    runs = []
    for dataset in table.datasets:
        for label, model_overrides in table.models.items():
            for seed in range(seeds):
                chosen = [
                    *dataset_overrides(base, dataset, table, data_root),
                    *grid_overrides,
                    *model_overrides,
                    *overrides,
                    f"seed={base.seed + seed}",
                ]
                try:
                    cfg = load_config(profile, chosen, unchecked=(*grid_overrides, *overrides))
                except ConfigError as error:
                    raise ConfigError(f"table {table.name}, row {label!r}: {error}") from None
                runs.append(GridRun({"dataset": dataset, "model": label}, base.seed + seed, cfg))
    return runs


def variant_grid(
    profile: str | Path | None, base_overrides: tuple[str, ...], variants: dict[str, tuple[str, ...]], seeds: int
) -> list[GridRun]:
    """The baseline and each variant (its overrides on top of the baseline's), with the same seeds. The base
    overrides must be read by the baseline's method, a variant's own by the variant's."""
    base = load_config(profile, base_overrides)
    runs = []
    for name, overrides in {"baseline": (), **variants}.items():
        for seed in range(seeds):
            cfg = load_config(
                profile,
                (*base_overrides, *overrides, f"seed={base.seed + seed}"),
                unchecked=base_overrides if overrides else (),
            )
            runs.append(GridRun({"variant": name}, base.seed + seed, cfg))
    return runs


# ------------------------------------------------------------------------------------------- executor
def _worker(cfg: RunConfig, store_root: str, threads: int) -> str:
    """One run in a pool process or Ray task (`threads`: what it declared to Ray; the run sets its own count)."""
    from .pipeline import execute_run

    return str(execute_run(cfg, RunStore(Path(store_root)), progress=False))


def stop_when_orphaned(parent: int) -> None:
    """Pool initializer: end this worker when the sweep that started it (pid `parent`) is gone. A sweep killed
    outright (SIGKILL, or SIGTERM to it alone) would otherwise leave its workers training the runs already
    queued to them, into the store a rerun of the sweep is using."""
    threading.Thread(target=_exit_when_orphaned, args=(parent,), daemon=True).start()


def _exit_when_orphaned(parent: int, every: float = 0.5) -> None:
    while os.getppid() == parent:
        time.sleep(every)
    os._exit(1)  # as if killed with the sweep: the run's lock names a dead process and a rerun takes it over


def plan_parallelism(pending: int, device: str, cores: int | None = None) -> tuple[int, int]:
    """(parallel runs, threads per run): small CPU runs scale better side by side than across threads."""
    cores = cores or os.cpu_count() or 1
    if device.startswith("cuda") or (device == "auto" and torch.cuda.is_available()) or pending <= 1:
        return 1, cores
    jobs = min(pending, cores)
    return jobs, max(1, cores // jobs)


EXECUTORS = ("local", "ray")


def run_grid(
    runs: list[GridRun],
    store: RunStore,
    jobs: int | None = None,
    progress: bool = True,
    executor: str = "local",
    address: str | None = None,
) -> dict[str, str]:
    """Run what is not done yet; returns {run folder name: error} of the runs that failed (the rest go on).

    executor "local" uses this machine's cores; "ray" sends one task per run to a Ray cluster (`address`,
    or a local instance), each declaring its CPU threads and, on CUDA, one GPU. The run store decides what
    is left, so switching executors mid-sweep is safe.
    """
    from .pipeline import datasets

    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; allowed: {', '.join(EXECUTORS)}")
    unique = {store.run_dir(run.config): run.config for run in runs}
    pending = [cfg for cfg in unique.values() if not store.is_done(cfg)]
    if not pending:
        return {}
    for cfg in {cfg.data: cfg for cfg in pending}.values():
        datasets(cfg)  # generate synthetic data and fill the frame cache once, before the workers start
    threads = pending[0].exec.threads or 1  # a run's own count (its numerics), whatever the jobs beside it
    planned_jobs, _ = plan_parallelism(len(pending), pending[0].exec.device)
    jobs = jobs or max(1, min(planned_jobs, (os.cpu_count() or 1) // threads))
    failures: dict[str, str] = {}
    bar = tqdm(total=len(pending), desc=f"runs ({executor}, {jobs} at a time)", disable=not progress)
    for wave in training_waves(pending):
        for cfg, error in _execute(wave, store, executor, jobs, threads, address, progress):
            _record(cfg, error, store, failures, bar)
    bar.close()
    return failures


def training_waves(pending: list[RunConfig]) -> list[list[RunConfig]]:
    """One run per distinct training first, then the runs that differ from one of them only in [eval]: those
    adopt its checkpoints instead of training the same network again side by side."""
    leaders: dict[str, RunConfig] = {}
    followers = []
    for cfg in pending:
        identity = training_identity(cfg)
        if identity in leaders:
            followers.append(cfg)
        else:
            leaders[identity] = cfg
    return [wave for wave in (list(leaders.values()), followers) if wave]


def _execute(
    pending: list[RunConfig],
    store: RunStore,
    executor: str,
    jobs: int,
    threads: int,
    address: str | None,
    progress: bool,
):
    """Yield (config, error or None) as the runs of `pending` finish on the chosen executor."""
    from .pipeline import execute_run

    if executor == "ray":
        yield from _ray_execute(pending, store, threads, address)
    elif jobs == 1:
        for cfg in pending:
            yield cfg, _capture(lambda cfg=cfg: execute_run(cfg, store, progress=progress))
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(
            max_workers=jobs, mp_context=context, initializer=stop_when_orphaned, initargs=(os.getpid(),)
        ) as pool:
            futures = {pool.submit(_worker, cfg, str(store.root), threads): cfg for cfg in pending}
            for future in as_completed(futures):
                yield futures[future], _capture(future.result)


def _ray_execute(pending: list[RunConfig], store: RunStore, threads: int, address: str | None):
    """Yield (config, error or None) as Ray tasks finish; a task whose worker dies is retried twice."""
    try:
        import ray
    except ImportError:
        raise ValueError("the ray executor needs Ray: pip install 'repro[ray]'") from None
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    gpus = 1 if pending[0].exec.device.startswith("cuda") else 0
    task = ray.remote(num_cpus=threads, num_gpus=gpus, max_retries=2, retry_exceptions=False)(_worker)
    store_root = str(store.root.resolve())  # a shared path on a cluster
    refs = {task.remote(cfg, store_root, threads): cfg for cfg in pending}
    while refs:
        (ref,), _ = ray.wait(list(refs), num_returns=1)
        cfg = refs.pop(ref)
        yield cfg, _capture(lambda ref=ref: ray.get(ref))


def _capture(call) -> str | None:
    try:
        call()
    except Exception as error:  # one failed run must not lose the others; its status.json says why
        return f"{type(error).__name__}: {error}"
    return None


def _record(cfg: RunConfig, error: str | None, store: RunStore, failures: dict[str, str], bar) -> None:
    if error is not None:
        failures[store.run_dir(cfg).name] = error
    bar.update()
