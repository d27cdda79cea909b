"""One run end to end: train -> evaluate every saved checkpoint -> metrics, resumable at every stage.

A run's folder (see repro.runs) keeps the raw per-frame signals of each checkpoint, so that λ sweeps,
per-type AUCs and bootstrap intervals are recomputed from the record, never by running the model again.
"""

from __future__ import annotations

import io
import os
import shutil
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from .atomic import atomic_write
from .config import EvalConfig, RunConfig, config_hash
from .data.clips import make_clip_dataset
from .distributed import Ranks, barrier, join, ranks_from_environment
from .evaluate import collect_examples, evaluate_model
from .models.registry import model_entry
from .runs import RunStore, list_runs, run_record
from .scoring import frame_metrics, lambdas_for, per_type_auc, scores_from_signals
from .stats import memory_usage_summary
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
    layout = model_entry(cfg.model.name).layout(cfg.model.task)
    common = dict(
        in_frames=layout.in_frames, predict=layout.predict, scored_offset=layout.scored_offset,
        size=cfg.data.size, grayscale=cfg.data.grayscale, seed=cfg.seed,
    )  # fmt: skip
    root, name = _data_location(cfg)
    training = make_clip_dataset(root, name, "training", salt_pepper=cfg.data.salt_pepper, **common)
    testing = make_clip_dataset(root, name, "testing", labels=cfg.data.labels, **common)
    return training, testing


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
    run = store.prepare(cfg)
    if store.is_done(cfg):
        return run
    with store.lock(run):
        store.set_status(run, "running")
        try:
            _execute(cfg, run, store, progress)
        except BaseException as error:  # KeyboardInterrupt too: the status says what happened
            store.set_status(run, "failed", error=f"{type(error).__name__}: {error}")
            raise
        store.set_status(run, "done")
    return run


def _help_train(cfg: RunConfig, store: RunStore, ranks: Ranks, progress: bool) -> Path:
    """A rank other than 0: wait until rank 0 has prepared the run, train beside it, leave the rest to it."""
    run = store.run_dir(cfg)
    if store.is_done(cfg):
        return run  # rank 0 finds it done too
    if cfg.exec.threads:
        torch.set_num_threads(cfg.exec.threads)
    device = join(ranks, resolve_device(cfg.exec.device))
    barrier(ranks)
    training, _ = datasets(cfg)
    train(cfg, run, store, training, device, progress, ranks)
    return run


def training_identity(cfg: RunConfig) -> str:
    """The hash of what training depends on: runs that differ only in [eval] share their checkpoints."""
    return config_hash(replace(cfg, eval=EvalConfig()))


def adopt_checkpoints(cfg: RunConfig, run: Path, store: RunStore) -> int:
    """Link into a fresh `run` the checkpoints of a finished run with the same training; how many."""
    if store.latest_checkpoint(run) is not None:
        return 0
    identity = training_identity(cfg)
    for other, other_cfg, state in list_runs(store.root):
        if state == "done" and other != run.name and training_identity(other_cfg) == identity:
            checkpoints = store.checkpoints(store.root / other)
            for epoch, path in checkpoints:
                target = store.checkpoint_path(run, epoch)
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.link(path, target)
                except OSError:  # another file system: copy instead
                    shutil.copy2(path, target)
            if (store.root / other / "train.jsonl").exists():
                shutil.copy2(store.root / other / "train.jsonl", run / "train.jsonl")
            return len(checkpoints)
    return 0


def _execute(cfg: RunConfig, run: Path, store: RunStore, progress: bool) -> None:
    if cfg.exec.threads:
        torch.set_num_threads(cfg.exec.threads)
    ranks = ranks_from_environment()
    device = join(ranks, resolve_device(cfg.exec.device))
    training, testing = datasets(cfg)
    adopt_checkpoints(cfg, run, store)
    barrier(ranks)  # the data exist and the checkpoints to resume from are in place: the other ranks may start
    timings = {}
    tick = time.perf_counter()
    train(cfg, run, store, training, device, progress, ranks)
    timings["train_seconds"] = time.perf_counter() - tick
    tick = time.perf_counter()
    evaluate_checkpoints(cfg, run, store, testing, device, progress)
    timings["evaluate_seconds"] = time.perf_counter() - tick
    metrics = run_metrics(cfg, {epoch: store.load_signals(run, epoch) for epoch in store.signal_epochs(run)})
    store.write_metrics(run, metrics | {"timings": timings, "record": run_record(device=str(device), processes=ranks.world)})


def evaluate_checkpoints(cfg: RunConfig, run: Path, store: RunStore, testing, device, progress: bool) -> None:
    """Raw signals for every checkpoint that has none yet (each loaded from disk, as a user would), and the
    final checkpoint's examples for the report's figures."""
    entry = model_entry(cfg.model.name)
    model = build_model(cfg, device)
    done = set(store.signal_epochs(run))
    for epoch, path in store.checkpoints(run):
        needs_examples = epoch == cfg.train.epochs and not (run / EXAMPLES).exists()
        if epoch in done and not needs_examples:
            continue
        model.load_state_dict(store.load_checkpoint(path)["model"])
        if epoch in done:
            signals = store.load_signals(run, epoch)
        else:
            signals = evaluate_model(
                model, entry, testing, device, test_time_update=cfg.eval.test_time_update, gamma=cfg.eval.gamma,
                reset_memory_per_video=cfg.eval.reset_memory_per_video, batch_size=cfg.eval.batch_size,
                precision=cfg.exec.precision, progress=progress,
            )  # fmt: skip
            store.save_signals(run, epoch, **signals)
        if needs_examples:
            examples = collect_examples(model, entry, entry.layout(cfg.model.task), testing, signals, device,
                                        seed=cfg.seed)  # fmt: skip
            atomic_write(run / EXAMPLES, _npz_bytes(examples))


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def run_metrics(cfg: RunConfig, signals_by_epoch: dict[int, dict[str, np.ndarray]]) -> dict:
    """Metrics per epoch and λ, the honest default (last epoch, the profile's λ) and the oracle selection."""
    per_epoch, best = {}, None
    for epoch, signals in sorted(signals_by_epoch.items()):
        labels = signals["label"]
        by_lambda = {}
        for lam in lambdas_for(signals, cfg.eval.lambda_grid + (cfg.eval.lambda_score,)):
            values = frame_metrics_from(signals, labels, lam)
            by_lambda[f"{lam:g}"] = values
            if best is None or values["auc"] > best["auc"]:
                best = {"epoch": epoch, "lambda": lam, **values}
        per_epoch[str(epoch)] = {"lambdas": by_lambda, **_epoch_extras(cfg, signals, _default_lambda(cfg, signals))}
    last = max(signals_by_epoch)
    lam = _default_lambda(cfg, signals_by_epoch[last])
    default = {"epoch": last, "lambda": lam, **per_epoch[str(last)]["lambdas"][f"{lam:g}"],
               **_epoch_extras(cfg, signals_by_epoch[last], lam)}  # fmt: skip
    return {"default": default, "oracle": best, "epochs": per_epoch}


def _default_lambda(cfg: RunConfig, signals: dict[str, np.ndarray]) -> float:
    return cfg.eval.lambda_score if "distance" in signals else 1.0


def frame_metrics_from(signals: dict[str, np.ndarray], labels: np.ndarray, lam: float) -> dict[str, float]:
    if "error" in signals:  # a baseline: the error itself is the score
        metrics = frame_metrics(-signals["error"], None, labels, signals["video"], 1.0)
    else:
        metrics = frame_metrics(signals["psnr"], signals.get("distance"), labels, signals["video"], lam)
    return metrics._asdict()


def _epoch_extras(cfg: RunConfig, signals: dict[str, np.ndarray], lam: float) -> dict:
    """Per-type AUCs (synthetic data) and memory usage at test time, with the share of test frames that
    updated the memory (regular score below γ; 0 when the update is off)."""
    extras = {}
    if (signals["anomaly_type"] >= 0).all():
        extras["per_type"] = per_type_auc(scores_from_signals(signals, lam), signals["anomaly_type"])
    if "item_counts" in signals:
        counts = signals["item_counts"]  # all zero when MemAE's shrinkage zeroed every row: no item used
        active, perplexity = memory_usage_summary(counts) if counts.sum() > 0 else (0.0, 0.0)
        extras["memory"] = {"counts": signals["item_counts"].tolist(), "active_fraction": active,
                            "perplexity": perplexity}  # fmt: skip
        if "zero_row_share" in signals:
            extras["memory"]["zero_row_share"] = float(signals["zero_row_share"][0])
        if "regular" in signals:
            updated = signals["regular"] < cfg.eval.gamma if cfg.eval.test_time_update else np.zeros(0, bool)
            extras["memory"]["updated_frame_share"] = float(updated.mean()) if updated.size else 0.0
    return extras
