"""Grids of runs: a table's declaration or an ablation's variants -> run configs (x seeds). Executing them is
repro.executors' work; a grid only says what the runs are.

A table declaration (e.g. ablations/table5.toml) names a question, the synthetic stand-ins of the real
datasets, the models (each a list of config overrides), the published numbers and the λ grid of its
selection rule. Runs are cached by config hash, so a sweep that is killed and rerun only does what is left.
"""

from __future__ import annotations

import difflib
import importlib.resources
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .config import ConfigError, RunConfig, load_config
from .runs import RunStore

DATASETS = ("ped2", "avenue", "shanghaitech")


@dataclass(frozen=True)
class GridRun:
    """One cell of a grid for one seed."""

    labels: dict[str, str]  # e.g. {"dataset": "ped2", "model": "Pred w/ Mem"} or {"variant": "baseline"}
    seed: int
    config: RunConfig
    folder: Path | None = None  # its run folder, once placed in a store (`placed`) or read from a manifest

    def folder_in(self, store: RunStore) -> Path:
        """Its run folder: the one it was placed in, else derived from its config (hash and data fingerprint)."""
        return self.folder if self.folder is not None else store.run_dir(self.config)


def placed(runs: list[GridRun], store: RunStore) -> list[GridRun]:
    """The runs with their folder in `store`, derived once per run: what executors, manifests and reports use."""
    return [replace(run, folder=run.folder_in(store)) for run in runs]


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
    """The table declarations shipped with repro (ablations/*.toml, installed as repro.ablations): name -> path.
    Other declarations there (the claims, which have no [models]) are not tables."""
    folder = Path(importlib.resources.files("repro.ablations"))
    return {path.stem: path for path in sorted(folder.glob("*.toml")) if _declares_table(path)}


def _declares_table(path: Path) -> bool:
    try:
        return "models" in tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError:
        return True  # a broken table declaration is still one: load_table names its error


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
    return table_from_dict(raw, path)


def table_from_dict(raw: dict[str, Any], path: Path | str) -> Table:
    """A table declaration's parsed TOML (as a manifest keeps it) -> Table; `path` names it in errors."""
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
    "datasets": (lambda v: _texts(v) and len(v) > 0, 'a non-empty list of dataset names, e.g. datasets = ["ped2"]'),
    "stand_ins": (
        lambda v: isinstance(v, dict) and all(map(_text, v.values())),
        'a table of dataset -> synthetic preset: [stand_ins] then ped2 = "single"',
    ),
    "models": (
        lambda v: isinstance(v, dict) and len(v) > 0,
        'a table of row label -> overrides with a row at least: [models] then "Pred w/ Mem" = ["model.mnad.task=pred"]',
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
                f'["model.mnad.task=pred", "model.mnad.memory=false"]; got {overrides!r}'
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
