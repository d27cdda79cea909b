"""One run end to end: train -> evaluate every saved checkpoint -> metrics, resumable at every stage.

A run's folder (see repro.runs) keeps the raw per-frame signals of each checkpoint, so that λ sweeps,
per-type AUCs and bootstrap intervals are recomputed from the record, never by running the model again.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import time
import warnings
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from . import runs as run_files
from .atomic import atomic_write
from .budget import check_fits
from .calibration import calibrate, calibrated_score, detection_rates, read_calibration
from .config import ConfigError, RunConfig, config_hash, load_config, training_identity
from .data.clips import ClipDataset, make_clip_dataset, window_length
from .data.layout import DataError
from .distributed import Ranks, barrier, join, ranks_from_environment
from .evaluate import collect_examples, evaluate_model
from .models.method import signals_from_arrays
from .record import Calibration, RunMetrics
from .runs import (
    RunError,
    RunStore,
    UnreadableCheckpoint,
    cpu_model,
    finish_command,
    is_finished,
    retrain_command,
    run_record,
    status,
    training_index,
)
from .scoring import frame_auc, frame_metrics, per_type_auc
from .train import build_model, train

EXAMPLES = "examples.npz"  # example frames and a query sample of the final checkpoint, for the figures


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but torch sees no CUDA GPU; use --device cpu or auto")
    return torch.device(name)


def datasets(cfg: RunConfig):
    """(training, testing) clip datasets of the configured data and model layout."""
    training = _clips(cfg, "training", salt_pepper=cfg.data.salt_pepper)
    testing = _clips(cfg, "testing", labels=cfg.data.labels)
    if cfg.data.calibration_share:
        training, _ = split_videos(training, cfg.data.calibration_share)
    return training, testing


def _clips(cfg: RunConfig, split: str, **options) -> ClipDataset:
    """One split's clips in the window the run's method eats; `options` go to make_clip_dataset."""
    layout = cfg.model.method.layout(cfg.model.settings)
    root, name = _data_location(cfg)
    return make_clip_dataset(
        root,
        name,
        split,
        in_frames=layout.in_frames,
        predict=layout.predict,
        scored_offset=layout.scored_offset,
        size=cfg.data.size,
        grayscale=cfg.data.grayscale,
        seed=cfg.seed,
        **options,
    )


def _data_location(cfg: RunConfig) -> tuple[Path, str]:
    if cfg.data.name == "synthetic":
        from .data.synthetic import ensure_synthetic

        root = ensure_synthetic(cfg.data.preset, seed=cfg.data.synth_seed, root=cfg.data.root, size=cfg.data.size)
        return root, f"synthetic-{cfg.data.preset}"
    if cfg.data.root is None:
        raise ValueError(
            f"dataset {cfg.data.name!r} needs its location: pass --data /path/to/datasets (holding "
            f"{cfg.data.name}/training/frames and {cfg.data.name}/testing/frames), or use data.name=synthetic"
        )
    return Path(cfg.data.root), cfg.data.name


def execute_run(cfg: RunConfig, store: RunStore, progress: bool = True) -> Path:
    """Run `cfg` to completion in the store (or do nothing if it is done); returns its folder.

    Under torchrun, rank 0 does all of this and the other ranks only help it train (`_help_train`).
    """
    ranks = ranks_from_environment()
    if not ranks.main:
        return _help_train(cfg, store, ranks, progress)
    if store.is_done(cfg):
        return store.run_dir(cfg)
    check_fits(cfg, resolve_device(cfg.exec.device))  # before its folder, its data or its network exist
    run = store.prepare(cfg)
    with run_files.run_lock(run):
        run_files.set_status(run, "running")
        try:
            _execute(cfg, run, store, progress)
        except BaseException as error:  # KeyboardInterrupt too: the status says what happened
            with contextlib.suppress(OSError):  # a full disk may refuse the status too: keep the first error
                run_files.set_status(run, "failed", error=f"{type(error).__name__}: {error}")
            raise
        run_files.set_status(run, "done")
    return run


def _help_train(cfg: RunConfig, store: RunStore, ranks: Ranks, progress: bool) -> Path:
    """A rank other than 0: wait until rank 0 has prepared the run, train beside it, leave the rest to it."""
    run = store.run_dir(cfg)
    if store.is_done(cfg):
        return run  # rank 0 finds it done too
    torch.set_num_threads(cfg.exec.threads or 1)  # the count is part of the run's numerics (config.identity)
    device = join(ranks, resolve_device(cfg.exec.device))
    barrier(ranks)
    training, _ = datasets(cfg)
    train(cfg, run, training, device, progress, ranks)
    return run


def adopt_checkpoints(cfg: RunConfig, run: Path, store: RunStore) -> int:
    """Link into a fresh `run` the checkpoints of a finished run with the same training; how many.

    Each is loaded first and only those before the first unreadable one are adopted (this run trains the
    epochs from there itself); a lender with all of its checkpoints readable is preferred. A finished run is
    only read: an unreadable checkpoint of it is reported (UnreadableLenderWarning) and left as it is, with
    that run's result.
    """
    present = {epoch for epoch, _ in run_files.checkpoints(run)}
    if cfg.train.epochs in present:
        return 0
    lender, adopted = None, []
    for other in training_index(store.root).finished(training_identity(cfg)):
        if other.name == run.name:
            continue
        readable, complete = _readable_prefix(other)
        if lender is None or len(readable) > len(adopted):
            lender, adopted = other, readable
        if complete:
            break
    if lender is None:
        return 0
    checkpoints = [(epoch, path) for epoch, path in adopted if epoch not in present]
    for epoch, path in checkpoints:
        target = run_files.checkpoint_path(run, epoch)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, target)
        except OSError:  # another file system: copy instead
            shutil.copy2(path, target)
    if (lender / "train.jsonl").exists():
        shutil.copy2(lender / "train.jsonl", run / "train.jsonl")
    return len(checkpoints)


class UnreadableLenderWarning(UserWarning):
    """A finished run's checkpoint does not load: it is not adopted, and that run is left as it is."""


def _readable_prefix(run: Path) -> tuple[list[tuple[int, Path]], bool]:
    """The checkpoints of the finished `run` up to the first that does not load (reported, never changed), and
    whether that is all of them."""
    readable = []
    for epoch, path in run_files.checkpoints(run):
        try:
            run_files.load_checkpoint(path)
        except UnreadableCheckpoint as error:
            warnings.warn(
                f"{path} of the finished run {run} is unreadable ({error.reason}): not adopted, and {run} keeps "
                f"its result. Fix: restore that file from a copy, or retrain that run in a store of its own (it "
                f"stays as it is) with `{retrain_command(run)}`",
                UnreadableLenderWarning,
                stacklevel=3,
            )
            return readable, False
        readable.append((epoch, path))
    return readable, True


def _execute(cfg: RunConfig, run: Path, store: RunStore, progress: bool) -> None:
    torch.set_num_threads(cfg.exec.threads or 1)  # the count is part of the run's numerics (config.identity)
    ranks = ranks_from_environment()
    device = join(ranks, resolve_device(cfg.exec.device))
    training, testing = datasets(cfg)
    check_trains(cfg, len(training), ranks.world)
    adopt_checkpoints(cfg, run, store)
    barrier(ranks)  # the data exist and the checkpoints to resume from are in place: the other ranks may start
    timings = {}
    tick = time.perf_counter()
    train(cfg, run, training, device, progress, ranks)
    check_trained(run, store)
    timings["train_seconds"] = time.perf_counter() - tick
    tick = time.perf_counter()
    evaluate_checkpoints(cfg, run, store, training, testing, device, progress)
    calibration = read_calibration(run) or calibrate(cfg, run, device, progress=progress)
    timings["evaluate_seconds"] = time.perf_counter() - tick
    signals_type = cfg.model.method.Signals
    signals = {epoch: run_files.load_signals(run, epoch, signals_type) for epoch in run_files.signal_epochs(run)}
    metrics = run_metrics(cfg, signals, calibration)
    provenance = run_record(device=str(device), processes=ranks.world, threads=torch.get_num_threads(), cpu=cpu_model())
    run_files.write_metrics(run, RunMetrics.from_json(metrics | {"timings": timings, "record": provenance}))


def check_trains(cfg: RunConfig, clips: int, processes: int = 1) -> None:
    """A ConfigError when no optimiser step would run on `clips` training clips shared by `processes`: every batch
    incomplete and dropped. `repro data check` asks it too."""
    clips //= processes
    if cfg.train.drop_last and clips < cfg.train.batch_size:
        raise ConfigError(
            f"train.batch_size={cfg.train.batch_size} is larger than the {clips} training clips"
            f"{' per process' if processes > 1 else ''}, and train.drop_last drops the incomplete batch: the "
            f"model would never train. Fix: --set train.batch_size={max(clips, 1)} (or lower), or more training video"
        )


def check_trained(run: Path, store: RunStore) -> None:
    """A RunError, before anything is scored, when the first epoch's loss is not finite: the model never trained."""
    records = run_files.read_jsonl(run / "train.jsonl")
    first = next((record for record in records if record.get("epoch") == 1), None)
    if first is not None and not np.isfinite(first.get("total", 0.0)):
        raise RunError(
            f"{run}: the training loss is {first['total']} from the first epoch on (see train.jsonl): the model "
            "never trained and is not scored. Fix: lower train.lr, or use exec.precision=fp32 if it is fp16"
        )


def scorer(cfg: RunConfig, model, device, progress: bool):
    """`evaluate_model` bound to the run's model and evaluation settings: a function of (dataset, **changes)."""
    return partial(
        evaluate_model,
        model,
        cfg.model.method,
        device=device,
        batch_size=cfg.eval.batch_size,
        precision=cfg.exec.precision,
        cuda_graphs=cfg.exec.cuda_graphs,
        progress=progress,
        evaluation=cfg.method_eval,
    )


def evaluate_checkpoints(cfg: RunConfig, run: Path, store: RunStore, training, testing, device, progress: bool) -> None:
    """Raw signals for every checkpoint that has none yet (each loaded from disk, as a user would), as the
    method evaluates a checkpoint (`Method.evaluate_checkpoint`: MNAD's γ from the training frames and read
    ablation included), and the final checkpoint's examples for the report's figures."""
    method = cfg.model.method
    model = build_model(cfg, device)
    done = set(run_files.signal_epochs(run))
    score = scorer(cfg, model, device, progress)
    for epoch, path in run_files.checkpoints(run):
        needs_examples = epoch == cfg.train.epochs and not (run / EXAMPLES).exists()
        if epoch in done and not needs_examples:
            continue
        model.load_state_dict(run_files.load_checkpoint(path)["model"])
        if epoch in done:
            signals = run_files.load_signals(run, epoch, method.Signals)
        else:
            last = epoch == cfg.train.epochs
            signals = method.evaluate_checkpoint(model, score, training, testing, cfg.method_eval, last)
            run_files.save_signals(run, epoch, **signals)
        if needs_examples:
            examples = collect_examples(
                model, method, method.layout(cfg.model.settings), testing, signals, device, seed=cfg.seed
            )
            atomic_write(run / EXAMPLES, _npz_bytes(examples))


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def run_metrics(
    cfg: RunConfig, signals_by_epoch: dict[int, dict[str, np.ndarray]], calibration: Calibration | None = None
) -> dict:
    """Metrics per epoch and λ, the honest default (last epoch, the profile's λ) and the oracle selection; with the
    run's `calibration` of its last checkpoint, the default's deployable score too (`deployable_metrics`)."""
    signals_type = cfg.model.method.Signals
    score_lambda = cfg.model.method.score_lambda(cfg.method_eval)
    per_epoch, best = {}, None
    for epoch, arrays in sorted(signals_by_epoch.items()):
        signals = signals_from_arrays(signals_type, arrays)
        by_lambda = {}
        for lam in signals.lambdas(cfg.eval.lambda_grid + (score_lambda,)):
            values = frame_metrics(signals, arrays["label"], arrays["video"], lam)._asdict()
            by_lambda[f"{lam:g}"] = values
            if best is None or values["auc"] > best["auc"]:
                best = {"epoch": epoch, "lambda": lam, **values}
        lam = signals.default_lambda(score_lambda)
        per_epoch[epoch] = {"lambdas": by_lambda, **_epoch_extras(cfg, signals, arrays, lam)}
    last = max(per_epoch)
    lam = signals_from_arrays(signals_type, signals_by_epoch[last]).default_lambda(score_lambda)
    default = {
        "epoch": last,
        "lambda": lam,
        **per_epoch[last]["lambdas"][f"{lam:g}"],
        **{k: v for k, v in per_epoch[last].items() if k != "lambdas"},
    }
    if calibration is not None and calibration.epoch == last:
        arrays = signals_by_epoch[last]
        default["deployable"] = deployable_metrics(
            signals_from_arrays(signals_type, arrays), arrays["label"], calibration
        )
    return {"default": default, "oracle": best, "epochs": {str(epoch): v for epoch, v in per_epoch.items()}}


def deployable_metrics(signals, labels: np.ndarray, calibration: Calibration) -> dict[str, float]:
    """The deployable score on the test set (docs/footage.md#the-deployable-score): its AUC, and the detection and
    false-alarm rates at the stored threshold."""
    scores = calibrated_score(signals, calibration.terms)
    detection, false_alarms = detection_rates(scores, labels, calibration.threshold)
    return {
        "auc": frame_auc(scores, labels),
        "detection_rate": detection,
        "false_alarm_rate": false_alarms,
        "threshold": calibration.threshold,
    }


def _epoch_extras(cfg: RunConfig, signals, arrays: dict[str, np.ndarray], lam: float) -> dict:
    """Per-type AUCs (synthetic data) and memory usage at test time, with the method's own diagnostics (MNAD:
    γ, the share of test frames that updated the memory, the read ablation)."""
    extras = {}
    if (arrays["anomaly_type"] >= 0).all():
        extras["per_type"] = per_type_auc(signals.score(arrays["video"], lam), arrays["anomaly_type"])
    if "item_counts" in arrays:
        extras["memory"] = {
            "counts": arrays["item_counts"].tolist(),
            **{key.removeprefix("memory_"): float(v[0]) for key, v in arrays.items() if key.startswith("memory_")},
            **cfg.model.method.diagnostics(signals, arrays, cfg.method_eval),
        }
    return extras


# ---------------------------------------------------------------------------------- library calls of the verbs
class RunResult(NamedTuple):
    """A run made or found: its folder and its default metrics (None on a torchrun rank other than 0)."""

    folder: Path
    metrics: dict | None


def train_run(
    profile: str | Path | None = "synthetic", overrides: Sequence[str] = (), runs: Path = Path("runs")
) -> RunResult:
    """Train, evaluate and score one run (`repro train`), or find it done in the run store `runs`.

    Example: train_run("synthetic", ["model.mnad.task=recon", "train.epochs=2"]).metrics["auc"]
    """
    store = RunStore(Path(runs))
    run = execute_run(load_config(profile, tuple(overrides)), store)
    if not ranks_from_environment().main:
        return RunResult(run, None)  # rank 0 evaluates and scores
    return RunResult(run, run_files.read_metrics(run)["default"])


RESCORED = ("eval.", "exec.")  # what a re-scoring may change: how a run is scored and executed, never trained


def rescore(run: Path, overrides: Sequence[str]) -> RunResult:
    """Score a finished run's checkpoints again with other evaluation settings (`repro evaluate`), never training:
    the result is a run of its own (its config differs in [eval]) beside `run` in the same store, which adopts
    the checkpoints of `run`.

    Example: rescore(Path("runs/3f2a9c1b0d4e"), ["eval.mnad.test_time_update=false"]).folder
    """
    source = Path(run)
    for override in overrides:
        if not override.startswith(RESCORED):
            raise ValueError(f"evaluate changes only eval.* and exec.* fields, not {override.split('=')[0]!r}")
    if not (source / "config.toml").is_file():
        raise RunError(
            f"{source} is not a run folder (it has no config.toml). Fix: pass a run's folder, <store>/<hash>, "
            "as the line 'run: ...' of repro train names it"
        )
    if not is_finished(source):
        raise RunError(
            f"run {source} is not finished (its status: {status(source)['state']}) and evaluate never trains. "
            f"Fix: finish it with `{finish_command(source)}`, then rerun this command"
        )
    cfg = load_config(source / "config.toml", tuple(overrides))
    store = RunStore(source.parent)
    if not store.is_done(cfg):
        _require_checkpoints(source, cfg.train.epochs)  # before the new run's folder exists
        _require_same_training(source, cfg, overrides)
        adopt_checkpoints(cfg, store.prepare(cfg), store)
    result = execute_run(cfg, store)
    return RunResult(result, run_files.read_metrics(result)["default"])


def _require_same_training(source: Path, cfg: RunConfig, overrides: Sequence[str]) -> None:
    """A RunError unless the re-scored run `cfg` trains as `source` did, so that it adopts its checkpoints: the
    data `source` was trained on is still there unchanged, and the overrides leave its numerics alone."""
    trained = load_config(source / "config.toml")
    now = config_hash(trained)
    if now != source.name:
        raise RunError(
            f"{source}'s config.toml hashes to {now} now, not to its folder's name: it was trained on other data "
            f"than {cfg.data.root}/{cfg.data.name} holds now (the data's fingerprint is part of the hash), or the "
            "folder was renamed; evaluate never trains (nothing was changed). Fix: put that dataset back unchanged "
            "where its config.toml's data.root says"
        )
    if training_identity(cfg) != training_identity(trained):
        raise RunError(
            f"{' '.join(overrides)} changes how {source} trains (exec.threads and exec.precision are part of its "
            "numerics), and evaluate never trains (nothing was changed). Fix: leave those two as the run has them"
        )


def _require_checkpoints(source: Path, epochs: int) -> None:
    """A RunError unless every checkpoint of the finished `source` loads and the last epoch's is among them: what
    a re-scoring needs, since it never trains. `source` is only read."""
    fix = (
        "restore it from a copy, or retrain the run in a store of its own (this one stays as it is) with "
        f"`{retrain_command(source)}` and evaluate that one"
    )
    saved = run_files.checkpoints(source)
    if epochs not in {epoch for epoch, _ in saved}:
        path = run_files.checkpoint_path(source, epochs)
        raise RunError(f"{path} is missing, and evaluate never trains (nothing was changed). Fix: {fix}")
    for _, path in saved:
        try:
            run_files.load_checkpoint(path)
        except UnreadableCheckpoint as error:
            raise RunError(
                f"{path} of the finished run {source} is unreadable ({error.reason}), and evaluate never trains "
                f"(nothing was changed). Fix: {fix}"
            ) from None


def calibration_clips(cfg: RunConfig) -> ClipDataset:
    """Normal clips without input noise (data.salt_pepper), as a test frame is seen, for calibrating a deployable
    score (repro.calibration): the end of each training video that training left out (data.calibration_share),
    or with a share of 0 the whole training split, the frames trained on."""
    clips = _clips(cfg, "training")
    return split_videos(clips, cfg.data.calibration_share)[1] if cfg.data.calibration_share else clips


def split_videos(clips: ClipDataset, share: float) -> tuple[ClipDataset, ClipDataset]:
    """(the first 1 - `share` of each video's frames, the last `share`) as two clip datasets: no window spans
    the cut. A DataError where either part has no whole window."""
    parts = []
    for head in (True, False):
        videos = [
            frames[: _cut(len(frames), share)] if head else frames[_cut(len(frames), share) :]
            for frames in clips.video_frames
        ]
        part = ClipDataset(
            videos,
            clips.in_frames,
            clips.predict,
            clips.scored_offset,
            clips.salt_pepper if head else 0.0,
            seed=clips.seed,
            video_names=clips.video_names,
        )
        if len(part) == 0:
            raise DataError(
                f"data.calibration_share={share} leaves the {'training' if head else 'calibration'} part of every "
                f"training video shorter than the model's window of {window_length(clips.in_frames, clips.predict)} "
                "frames. Fix: a share nearer 0.2, or longer training videos"
            )
        part.decodes_on_the_fly = clips.decodes_on_the_fly
        parts.append(part)
    return parts[0], parts[1]


def _cut(frames: int, share: float) -> int:
    return frames - int(round(frames * share))
