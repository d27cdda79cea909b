"""torch.profiler over MNAD's one-frame test-time update (op by op, as without CUDA graphs) and its training step
(batch 4) at paper size (scripts/gpu-measure.sh profile): kernels, device and host time per frame or step, and
the top operators. Usage: python scripts/profile_update.py [DEVICE [SIZE]] (default cuda 256)."""

import sys
from collections.abc import Callable

import torch
from torch.profiler import ProfilerActivity, profile

from repro.config import load_config
from repro.evaluate import inference_layout, signals_step
from repro.train import build_model, train_step

REPEATS = 50


def profiled(name: str, step: Callable[[], object], device: torch.device) -> None:
    sync = torch.cuda.synchronize if device.type == "cuda" else lambda: None
    for _ in range(10):
        step()
    sync()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(REPEATS):
            step()
        sync()
    events = prof.key_averages()
    kernels = sum(e.count for e in events if e.device_type == torch.autograd.DeviceType.CUDA)
    device_ms = sum(e.self_device_time_total for e in events) / REPEATS / 1000
    host_ms = sum(e.self_cpu_time_total for e in events) / REPEATS / 1000
    print(f"{name}: {kernels / REPEATS:.0f} kernels, {device_ms:.2f} ms device time, {host_ms:.2f} ms host time")
    print(events.table(sort_by="self_device_time_total", row_limit=12))
    print(events.table(sort_by="self_cpu_time_total", row_limit=8))


def main(device: torch.device, size: int) -> None:
    cfg = load_config("paper", (f"data.size={size}", "model.mnad.task=pred"))
    method = cfg.model.method
    model = build_model(cfg, device)
    clip = method.layout(cfg.model.settings)
    clips = torch.rand(4, clip.in_frames, 3, size, size, device=device) * 2 - 1
    x, target = method.to_input(clips), method.to_target(clips[:, -1:])  # (4, 12, s, s), (4, 3, s, s)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-4)
    profiled("training step (batch 4)", lambda: train_step(method, model, optimizer, x, target), device)
    inference_layout(method, model, device)
    with method.state_memory(model).scratch():
        frame = lambda: signals_step(method, model, x[:1], target[:1], gamma=cfg.eval.mnad.gamma)  # noqa: E731
        profiled("test-time update (one frame, op by op)", frame, device)


if __name__ == "__main__":
    main(torch.device(sys.argv[1] if len(sys.argv) > 1 else "cuda"), int(sys.argv[2]) if len(sys.argv) > 2 else 256)
