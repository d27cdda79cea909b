"""Frames per second of MNAD's one-frame test-time update at paper size on CUDA, per variant: which of algorithm
choice (exec.deterministic), layout, precision and CUDA-graph replay moves the number (scripts/gpu-measure.sh
variants; README, Speed)."""

import time

import torch

from repro.config import load_config
from repro.evaluate import frame_step
from repro.train import build_model

SIZE, FRAMES = 256, 300


def fps(step, frames=FRAMES) -> float:
    for _ in range(20):
        step()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(frames):
        step()
    torch.cuda.synchronize()
    return frames / (time.perf_counter() - start)


def variant(task, deterministic, channels_last, precision, graph):
    cfg = load_config(
        "paper", (f"data.size={SIZE}", f"model.mnad.task={task}", f"exec.deterministic={str(deterministic).lower()}")
    )
    device = torch.device("cuda")
    method = cfg.model.method
    model = build_model(cfg, device).eval()
    layout = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=layout)
    clip = method.layout(cfg.model.settings)
    x = method.to_input(torch.rand(1, clip.in_frames, 3, SIZE, SIZE, device=device) * 2 - 1)
    x = x.contiguous(memory_format=layout)
    target = torch.rand(1, 3, SIZE, SIZE, device=device) * 2 - 1
    with method.state_memory(model).scratch():
        step = frame_step(method, model, precision, cfg.eval.mnad.gamma, graphs=graph)
        return fps(lambda: step(x, target))


def main() -> None:
    rows = [
        ("pred", True, False, "fp32", False),
        ("pred", False, False, "fp32", False),
        ("pred", False, True, "fp32", False),
        ("pred", False, True, "bf16", False),
        ("pred", False, False, "fp32", True),
        ("pred", False, True, "fp32", True),
        ("pred", False, True, "bf16", True),
        ("pred", True, True, "bf16", True),
        ("recon", False, True, "fp32", True),
        ("recon", False, True, "bf16", True),
    ]
    for row in rows:
        try:
            result = variant(*row)
        except Exception as error:  # an exploration: report and go on
            result = f"failed: {type(error).__name__}: {str(error)[:300]}"
        print(dict(zip(("task", "deterministic", "channels_last", "precision", "graph"), row)), result, flush=True)


if __name__ == "__main__":
    main()
