"""Finished runs in the experiment trackers people use: MLflow and TensorBoard (docs/reports.md#trackers).

One tracker run per repro run, made from the run folder alone (never by running a model): the resolved config as
parameters, the losses, memory diagnostics and test scores per epoch as curves, the default metrics (with the
deployable score), and the run's files and its loss/AUC figure as artefacts; tagged with the run's hash, its
seed and the hash of its config without the seed, so that the seeds of one configuration group. A run already
in the tracker (by its hash) is left as it is. Both trackers are optional extras:
`pip install 'mnad-repro[trackers]'`.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .config import config_hash, load_config, to_dict
from .record import SCORES

TRACKERS = ("mlflow", "tensorboard")
DEFAULT_TARGETS = {"mlflow": "mlruns", "tensorboard": "tensorboard"}  # folders, beside the run store
EXPERIMENT = "repro"
ARTEFACTS = ("config.toml", "metrics.json", "calibration.json", "train.jsonl")


@dataclass(frozen=True)
class TrackedRun:
    """What a tracker receives of one repro run."""

    name: str  # the run's hash (its folder's name)
    seed: int
    group: str  # the hash of its config with seed 0: the same for every seed of one configuration
    params: dict[str, str]  # dotted config key -> value as text
    curves: dict[str, dict[int, float]]  # name -> epoch -> value (repro.report.results.epoch_curves)
    metrics: dict[str, float]  # the default selection's scores, "deployable/<key>" where calibrated
    artefacts: tuple[Path, ...]

    @property
    def tags(self) -> dict[str, str]:
        return {"repro.hash": self.name, "repro.seed": str(self.seed), "repro.group": self.group}


def _flat(data: dict[str, Any], prefix: str = "") -> dict[str, str]:
    flat = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat |= _flat(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = "none" if value is None else str(value)
    return flat


def tracked_run(run: Path) -> TrackedRun:
    """A finished run folder as a tracker sees it (a RunError naming the file where it is not finished)."""
    from .report.results import epoch_curves
    from .runs import read_record

    run = Path(run)
    cfg = load_config(run / "config.toml")
    default = read_record(run).default
    metrics = {key: getattr(default.scores, key) for key in SCORES}
    if default.scores.macro_auc_padded is not None:
        metrics["macro_auc_padded"] = default.scores.macro_auc_padded
    if default.deployable is not None:
        metrics |= {f"deployable/{key}": value for key, value in default.deployable.to_json().items()}
    return TrackedRun(
        name=run.name,
        seed=cfg.seed,
        group=config_hash(replace(cfg, seed=0)),
        params=_flat(to_dict(cfg)),
        curves=epoch_curves(run),
        metrics={key: float(value) for key, value in metrics.items()},
        artefacts=tuple(run / name for name in ARTEFACTS if (run / name).exists()),
    )


def _missing(tracker: str, error: ImportError) -> ImportError:
    package = {"mlflow": "mlflow (or mlflow-skinny)", "tensorboard": "tensorboard"}[tracker]
    return ImportError(
        f"--track {tracker} needs {package}, which is not installed ({error}). Fix: pip install 'mnad-repro[trackers]'"
    )


def export_runs(tracker: str, runs: list[Path], target: str | Path | None = None) -> str:
    """Each finished run of `runs` into `tracker` ("mlflow" or "tensorboard") at `target`: for MLflow a tracking URI
    or folder (default: $MLFLOW_TRACKING_URI, else ./mlruns), for TensorBoard a log folder (default:
    ./tensorboard, one subfolder per run). Returns where they went."""
    if tracker not in TRACKERS:
        raise ValueError(f"unknown tracker {tracker!r}; choose one of {', '.join(TRACKERS)}")
    tracked = [tracked_run(run) for run in runs]
    if tracker == "mlflow":
        return _to_mlflow(tracked, target)
    return _to_tensorboard(tracked, Path(target or DEFAULT_TARGETS["tensorboard"]))


# ---------------------------------------------------------------------------------------------- MLflow
def mlflow_uri(target: str | Path | None) -> str:
    """A tracking URI: `target` as given when it is a URI, a folder as a file: URI; default $MLFLOW_TRACKING_URI or
    ./mlruns."""
    target = target or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TARGETS["mlflow"]
    if "://" in str(target) or str(target).startswith("file:"):
        return str(target)
    return Path(target).resolve().as_uri()


def _to_mlflow(runs: list[TrackedRun], target: str | Path | None) -> str:
    try:
        from mlflow.entities import Metric, Param, RunTag
        from mlflow.tracking import MlflowClient
    except ImportError as error:
        raise _missing("mlflow", error) from None
    uri = mlflow_uri(target)
    if uri.startswith("file:"):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 asks before it writes a local folder
    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(EXPERIMENT)
    experiment = found.experiment_id if found else client.create_experiment(EXPERIMENT)
    for tracked in runs:
        if client.search_runs([experiment], f"tags.`repro.hash` = '{tracked.name}'", max_results=1):
            continue  # one tracker run per repro run
        run_id = client.create_run(experiment, run_name=tracked.name).info.run_id
        metrics = [Metric(key, value, 0, 0) for key, value in tracked.metrics.items()]
        metrics += [
            Metric(name, value, 0, epoch) for name, values in tracked.curves.items() for epoch, value in values.items()
        ]
        params = [Param(key, value) for key, value in tracked.params.items()]
        tags = [RunTag(key, value) for key, value in tracked.tags.items()]
        for start in range(0, max(len(metrics), len(params)), 100):  # MLflow's batch limits: 100 params, 1000 metrics
            client.log_batch(
                run_id, metrics[start : start + 100], params[start : start + 100], tags if not start else []
            )
        for path in tracked.artefacts:
            client.log_artifact(run_id, str(path))
        with _curves_png(tracked) as figure:
            client.log_artifact(run_id, str(figure))
        client.set_terminated(run_id)
    return uri


# ----------------------------------------------------------------------------------------- TensorBoard
def _to_tensorboard(runs: list[TrackedRun], folder: Path) -> str:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as error:
        raise _missing("tensorboard", error) from None
    import cv2

    for tracked in runs:
        logs = folder / tracked.name
        if logs.exists():
            continue  # one tracker run per repro run
        with SummaryWriter(log_dir=str(logs)) as writer:
            for key, value in tracked.tags.items():
                writer.add_text(key, value)
            writer.add_text("config", "\n".join(f"    {key} = {value}" for key, value in tracked.params.items()))
            for name, values in tracked.curves.items():
                for epoch, value in sorted(values.items()):
                    writer.add_scalar(name, value, epoch)
            last = max((epoch for values in tracked.curves.values() for epoch in values), default=0)
            for key, value in tracked.metrics.items():
                writer.add_scalar(f"metrics/{key}", value, last)
            with _curves_png(tracked) as figure:
                image = cv2.cvtColor(cv2.imread(str(figure)), cv2.COLOR_BGR2RGB)
                writer.add_image("curves", image, last, dataformats="HWC")
    return str(folder)


# -------------------------------------------------------------------------------------------- shared
@contextlib.contextmanager
def _curves_png(tracked: TrackedRun) -> Iterator[Path]:
    """The run's loss/AUC-per-epoch figure (repro.report.figures.epoch_curves) as a temporary PNG for the block."""
    from .report.figures import epoch_curves

    with tempfile.TemporaryDirectory() as folder:
        yield epoch_curves(tracked.curves, Path(folder), "curves", f"run {tracked.name}, seed {tracked.seed}")[0]
