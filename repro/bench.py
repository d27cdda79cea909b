"""Throughput of MNAD training and evaluation on random data, through the same step functions as the loops."""

from __future__ import annotations

import platform
import time
from typing import Callable

import torch

from .evaluate import frame_signals, inference_layout, step_with_update
from .models.mnad import MNAD
from .train import compile_networks, train_step

PED2_TRAINING_FRAMES = 2550  # SPEC sec. 5: one training epoch of UCSD Ped2


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def throughput(step: Callable[[], object], frames_per_step: int, device: torch.device, min_seconds: float,
               warmup: int = 2, min_steps: int = 3) -> float:
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


def benchmark(task: str = "pred", size: int = 64, width: int = 64, batch: int = 4, precision: str = "fp32",
              device: str = "cpu", min_seconds: float = 5.0, seed: int = 0, compiled: bool = False) -> dict:
    """train_fps, eval_fps (sequential test-time update, batch 1), eval_fps_no_update (batched) and the
    seconds of a Ped2-size training epoch at train_fps; `compiled` torch.compiles the networks first."""
    torch.manual_seed(seed)
    dev = torch.device(device)
    model = MNAD(task=task, width=width).to(dev)
    if compiled:
        compile_networks(model)
    frames_in = model.in_frames * model.channels
    inputs = torch.rand(batch, frames_in, size, size, device=dev).mul(2).sub(1)
    target = torch.rand(batch, model.channels, size, size, device=dev).mul(2).sub(1)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-4)

    train_fps = throughput(lambda: train_step(model, optimizer, inputs, target, precision), batch, dev, min_seconds)
    inputs = inputs.contiguous(memory_format=inference_layout(model, dev))
    eval_no_update = throughput(lambda: frame_signals(model, inputs, target, precision), batch, dev, min_seconds)
    with model.memory.scratch():
        one_in, one_target = inputs[:1], target[:1]
        eval_update = throughput(lambda: step_with_update(model, one_in, one_target, 0.01, precision), 1, dev,
                                 min_seconds)
    return {
        "task": task, "size": size, "width": width, "batch": batch, "precision": precision, "compiled": compiled,
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or "cpu",
        "threads": torch.get_num_threads(), "torch": torch.__version__,
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_fps": round(train_fps, 3), "eval_fps": round(eval_update, 3),
        "eval_fps_no_update": round(eval_no_update, 3),
        "ped2_epoch_seconds": round(PED2_TRAINING_FRAMES / train_fps, 1),
    }  # fmt: skip
