"""Every option that more than one verb takes, declared once: the same name, type, default and help in each.

Choices that come from the code (methods, MNAD's tasks, ablate's per-method options) are made when first
needed, so that `repro --help` never imports the networks (torch).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import click

DEVICES = ("auto", "cpu", "cuda")  # exec.device
PRECISIONS = ("fp32", "bf16", "fp16")  # exec.precision
EXECUTORS = ("local", "ray")  # repro.executors.EXECUTORS
TRACKERS = ("mlflow", "tensorboard")  # repro.trackers.TRACKERS


class LazyChoice(click.Choice):
    """A Choice whose values are loaded on first use (checking a value), not when the CLI is imported."""

    def __init__(self, load: Callable[[], Sequence[str]]) -> None:
        self._load = load
        self._choices: tuple[str, ...] | None = None
        self.case_sensitive = True

    @property
    def choices(self) -> tuple[str, ...]:
        if self._choices is None:
            self._choices = tuple(self._load())
        return self._choices


def _methods() -> list[str]:
    from ..models.registry import METHODS

    return list(METHODS)


def _tasks() -> tuple[str, ...]:
    from ..models.mnad import TASKS

    return TASKS


PROFILE = click.option(
    "--profile",
    default="synthetic",
    show_default=True,
    help="A profile in ablations/profiles/ (synthetic: the stand-ins, minutes on a CPU; paper: real data, a GPU) "
    "or a path to a TOML file (e.g. a run's config.toml).",
)
DATA = click.option(
    "--data",
    "data_root",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="Folder holding the real datasets, each as <name>/training/frames and <name>/testing/frames "
    "(default: the synthetic stand-ins).",
)
DATASET = click.option(
    "--dataset",
    default=None,
    metavar="NAME",
    help="synthetic (no download), or the folder --data/NAME in the canonical layout: ped2, avenue, "
    "shanghaitech (checked against the published counts) or any other (default: the profile's).",
)
SET = click.option(
    "--set",
    "settings",
    multiple=True,
    metavar="KEY=VALUE",
    help="Any config field, e.g. --set train.epochs=2 (repeatable); for every run of a grid; evaluate takes "
    "eval.* and exec.* fields.",
)
RUNS = click.option(
    "--runs",
    "runs_root",
    type=click.Path(file_okay=False),
    default="runs",
    show_default=True,
    help="The run store: one folder per config hash; finished runs are reused, never recomputed.",
)
DEVICE = click.option(
    "--device",
    type=click.Choice(DEVICES),
    default=None,
    help="Where runs train and evaluate; auto = cuda when available (default: the profile's).",
)
PRECISION = click.option(
    "--precision",
    type=click.Choice(PRECISIONS),
    default=None,
    help="Autocast precision of the convolutions; the memory maths stays fp32 (default: the profile's).",
)
JOBS = click.option(
    "--jobs",
    type=click.IntRange(min=1),
    default=None,
    help="How many at a time: runs of a grid, or videos of an import (default: one per core; one run on a GPU).",
)
EXECUTOR = click.option(
    "--executor",
    type=click.Choice(EXECUTORS),
    default="local",
    show_default=True,
    help="local: this machine's cores; ray: one Ray task per run (pip install 'mnad-repro[ray]').",
)
ADDRESS = click.option("--address", default=None, help="Ray cluster address (default: start a local Ray instance).")
OUT = click.option(
    "--out",
    type=click.Path(file_okay=False),
    default=None,
    help="Report folder (default: reports/<name>: the table's, claims, ablate-<variant> or skip-probe; report "
    "writes into a report folder it is given, else reports/<its name>; score: scores/<footage name>).",
)
SEEDS = click.option(
    "--seeds",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Seeds per cell: the profile's seed and the next ones (3, as the claims need for an interval).",
)
SEED = click.option(
    "--seed", type=int, default=None, help="The run's seed (default: the profile's; a grid's first seed)."
)
MODEL = click.option(
    "--model",
    type=LazyChoice(_methods),
    default=None,
    metavar="METHOD",
    help="The method: mnad, memae, ae3d, convlstm or another registered one (default: the profile's, mnad).",
)
TASK = click.option(
    "--task",
    type=LazyChoice(_tasks),
    default=None,
    metavar="TASK",
    help="MNAD's task: pred (4 frames -> the 5th) or recon (a frame -> itself) (default: the profile's).",
)
LAMBDA = click.option(
    "--lambda",
    "lam",
    type=click.FloatRange(0, 1),
    default=None,
    help="λ, the PSNR weight of MNAD's anomaly score (eq. 16; default: the profile's, 0.6 pred / 0.7 recon).",
)


def _remember_tracker(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.meta["repro.track"] = value


TRACK = click.option(
    "--track",
    type=click.Choice(TRACKERS),
    default=None,
    expose_value=False,
    callback=_remember_tracker,
    help="Also log the finished runs to an experiment tracker: mlflow ($MLFLOW_TRACKING_URI, else ./mlruns) or "
    "tensorboard (./tensorboard); one tracker run per run (pip install 'mnad-repro[trackers]').",
)


def track(folders: Sequence[Path]) -> None:
    """Log the finished run `folders` to the tracker that --track named, if any (repro.trackers.export_runs)."""
    tracker = click.get_current_context().meta.get("repro.track")
    if tracker is None or not folders:
        return
    from ..trackers import export_runs

    click.echo(f"tracked {len(folders)} run(s) in {tracker}: {export_runs(tracker, list(folders))}")


def apply(*options: Callable) -> Callable:
    """Several option decorators as one, in the order given (the order of --help)."""

    def decorate(function: Callable) -> Callable:
        for option in reversed(options):
            function = option(function)
        return function

    return decorate


def absolute(path: str | None) -> str | None:
    """A --data folder as an absolute path, so that the run's config says which folder it read."""
    return None if path is None else str(Path(path).resolve())


def run_overrides(
    settings: Sequence[str] = (),
    model: str | None = None,
    dataset: str | None = None,
    data_root: str | None = None,
    task: str | None = None,
    device: str | None = None,
    precision: str | None = None,
    lam: float | None = None,
) -> tuple[str, ...]:
    """The config overrides that the shared options name, before the --set ones (which win)."""
    chosen = {
        "model.name": model,
        "data.name": dataset,
        "data.root": absolute(data_root),
        "model.mnad.task": task,
        "exec.device": device,
        "exec.precision": precision,
        "eval.mnad.lambda_score": lam,
    }
    return (*(f"{key}={value}" for key, value in chosen.items() if value is not None), *settings)


class LazyOptions(click.Command):
    """A command with options made from the code when first needed (its --help or a call), not on import."""

    def __init__(self, *args, more: Callable[[], list[click.Parameter]], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._more: Callable[[], list[click.Parameter]] | None = more

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        if self._more is not None:
            self.params.extend(self._more())
            self._more = None
        return super().get_params(ctx)
