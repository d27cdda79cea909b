"""Finished runs -> one pandas row each (read from the run store only, never by running a model)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..anomaly_types import ANOMALY_TYPES
from ..record import LATER_SCORES, SCORES, Memory
from ..runs import RunError, RunStore, read_jsonl, read_record

if TYPE_CHECKING:  # only the annotation: report/ never imports the training or evaluation loops
    from ..grids import GridRun

# auc, raw_auc, macro_auc, aupr, eer, macro_auc_padded (the literature's), and the deployable score's (its AUC, and
# the detection and false-alarm rates at its stored threshold); the later ones missing in older records
DEPLOYABLE = {"deployable_auc": "auc", "detection_rate": "detection_rate", "false_alarm_rate": "false_alarm_rate"}
TABLE_METRICS = (*SCORES, *LATER_SCORES, *DEPLOYABLE)
TYPES = tuple(ANOMALY_TYPES.values())


# metrics.json's default.memory numbers a report row carries (docs/method.md#reporting-protocol-and-memory-diagnostics)
MEMORY_DIAGNOSTICS = (
    "perplexity",
    "frame_perplexity",
    "active_fraction",
    "largest_share",
    "camera_position_item_share",
    "distance_auc",
)


def memory_diagnostics(memory: Memory | None) -> dict[str, float | None]:
    """The MEMORY_DIAGNOSTICS of a run's default memory use and its read ablation's PSNR change with zeros (None
    where the run did not record one)."""
    diagnostics = {} if memory is None else memory.diagnostics
    zeros = None if memory is None or memory.read_ablation is None else memory.read_ablation.get("zeros")
    return {key: diagnostics.get(key) for key in MEMORY_DIAGNOSTICS} | {
        "zeros_psnr_change": None if zeros is None else zeros.psnr_change
    }


class MissingRunWarning(UserWarning):
    """A run of the grid has no readable metrics; the report covers the rest."""


def run_rows(runs: Iterable[GridRun], store: RunStore) -> pd.DataFrame:
    """One row per run with its labels, seed, default and oracle metrics, per-type AUCs and memory usage."""
    rows = []
    for grid_run in runs:
        run = grid_run.folder_in(store)
        try:
            metrics = read_record(run)
        except RunError as error:
            warnings.warn(f"{run}: {error}; left out of the report", MissingRunWarning, stacklevel=2)
            continue
        default, oracle = metrics.default, metrics.oracle
        row = {**grid_run.labels, "seed": grid_run.seed, "run": run.name}
        row |= {metric: getattr(default.scores, metric) for metric in (*SCORES, *LATER_SCORES)}
        deployable = default.deployable
        row |= {key: None if deployable is None else getattr(deployable, field) for key, field in DEPLOYABLE.items()}
        row |= {f"auc_{kind}": (default.per_type or {}).get(kind) for kind in TYPES}
        row |= {"epoch": default.epoch, "lambda": default.lam}
        row |= {"oracle_auc": oracle.scores.auc, "oracle_epoch": oracle.epoch, "oracle_lambda": oracle.lam}
        row |= memory_diagnostics(default.memory)
        rows.append(row)
    return pd.DataFrame(rows)


def epoch_curves(run: Path) -> dict[str, dict[int, float]]:
    """A run's numbers per epoch, by name: "train/<term>" (its losses, lr and seconds: train.jsonl), "memory/<name>"
    (the training memory diagnostics), and "eval/<score>" (each evaluated checkpoint's scores at the default λ:
    metrics.json). Non-finite values are left out."""
    curves: dict[str, dict[int, float]] = {}

    def add(name: str, epoch: int, value: Any) -> None:
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            curves.setdefault(name, {})[epoch] = float(value)

    for record in read_jsonl(run / "train.jsonl"):
        for key, value in record.items():
            if key != "epoch":
                add(f"train/{key}", record["epoch"], value)
        for key, value in (record.get("memory") or {}).items():
            add(f"memory/{key}", record["epoch"], value)
    metrics = read_record(run)
    lam = f"{metrics.default.lam:g}"
    for epoch, result in metrics.epochs.items():
        scores = result.lambdas.get(lam) or next(iter(result.lambdas.values()))
        for key, value in scores.to_json().items():
            add(f"eval/{key}", epoch, value)
    return curves
