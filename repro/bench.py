"""Throughput of training and evaluation on random data, through the same step functions as the loops."""

from __future__ import annotations

import platform
import time
from collections.abc import Callable

import torch

from .config import load_config
from .evaluate import frame_step, inference_layout, signals_step
from .train import build_model, train_step

PED2_TRAINING_FRAMES = 2550  # one training epoch of UCSD Ped2 (docs/speed.md)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def throughput(
    step: Callable[[], object],
    frames_per_step: int,
    device: torch.device,
    min_seconds: float,
    warmup: int = 2,
    min_steps: int = 3,
) -> float:
    """Frames per second of `step` after `warmup` calls, timed over at least min_steps and min_seconds."""
    for _ in range(warmup):
        step()
    _sync(device)
    steps, start = 0, time.perf_counter()
    while steps < min_steps or time.perf_counter() - start < min_seconds:
        step()  # on CUDA the host runs ahead until the launch queue fills; the final sync settles it
        steps += 1
    _sync(device)
    return steps * frames_per_step / (time.perf_counter() - start)


def benchmark(
    overrides: tuple[str, ...] = (),
    size: int = 64,
    batch: int = 4,
    precision: str | None = None,
    device: str | None = None,
    min_seconds: float = 5.0,
    seed: int = 0,
    compiled: bool = False,
) -> dict:
    """train_fps, eval_fps (sequential test-time update, batch 1, for methods with state memory; else None; on
    CUDA replayed as a graph unless exec.cuda_graphs=false),
    eval_fps_no_update (batched) and the seconds of a Ped2-size training epoch at train_fps, for the paper
    profile with `overrides` (e.g. "model.name=memae"); `compiled` torch.compiles the networks first. `precision`
    and `device` default to the profile's (exec.precision, exec.device: auto = cuda when available)."""
    from .pipeline import resolve_device

    cfg = load_config("paper", (*overrides, f"data.size={size}", f"seed={seed}"))
    precision = precision or cfg.exec.precision
    dev = resolve_device(device or cfg.exec.device)
    method = cfg.model.method
    network = build_model(cfg, dev, compile=compiled)
    clip = method.layout(cfg.model.settings)
    channels = 1 if cfg.data.grayscale else 3
    clips = torch.rand(batch, clip.in_frames, channels, size, size, device=dev).mul(2).sub(1)
    targets = clips[:, -1:] if clip.predict else clips
    inputs, target = method.to_input(clips), method.to_target(targets)
    optimizer = method.optimizer(network, cfg.model.settings, cfg.train.lr)

    train_fps = throughput(
        lambda: train_step(method, network, optimizer, inputs, target, precision), batch, dev, min_seconds
    )
    inputs = inputs.contiguous(memory_format=inference_layout(method, network, dev))
    eval_no_update = throughput(
        lambda: signals_step(method, network, inputs, target, precision), batch, dev, min_seconds
    )
    memory = method.state_memory(network)
    eval_update = None
    if memory is not None:
        with memory.scratch():
            one_in, one_target = inputs[:1], target[:1]
            gamma = method.update_threshold(cfg.method_eval)
            update = frame_step(method, network, precision, gamma, cfg.exec.cuda_graphs)
            eval_update = round(throughput(lambda: update(one_in, one_target), 1, dev, min_seconds), 3)
    return {
        "model": method.describe(cfg.model.settings),
        "size": size,
        "batch": batch,
        "precision": precision,
        "compiled": compiled,
        "cuda_graphs": cfg.exec.cuda_graphs and dev.type == "cuda",
        "deterministic": cfg.exec.deterministic,
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or "cpu",
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "parameters": sum(p.numel() for p in network.parameters()),
        "train_fps": round(train_fps, 3),
        "eval_fps": eval_update,
        "eval_fps_no_update": round(eval_no_update, 3),
        "ped2_epoch_seconds": round(PED2_TRAINING_FRAMES / train_fps, 1),
    }
