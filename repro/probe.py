"""Skip probe: how much does a trained MNAD's output depend on its bottleneck and on its skips?

At test time the encoder's bottleneck features (and optionally skips 2 and 3, the deeper two) are replaced
by zeros, ones or Gaussian noise of the same shape, and the output is compared with the untouched output
(mean |Δ output|) and with the target (PSNR before and after). A network whose skips carry the frame shows
a small change when the bottleneck is replaced; one without skips changes a lot.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from .scoring import frame_mse, psnr

Fill = Literal["same", "zeros", "ones", "noise"]
FILLS: tuple[Fill, ...] = ("zeros", "ones", "noise")
PROBE_COLUMNS = ("task", "skips", "memory")
PARTS = {"bottleneck": ("features",), "bottleneck+skips": ("features", 1, 2)}  # skip indices 1, 2 = skips 2, 3


class ProbeResult(NamedTuple):
    mean_abs_change: float  # mean |output replaced - output| on the [-1, 1] output scale
    psnr_original: float  # dB, output vs target
    psnr_replaced: float


def _filled(x: Tensor, fill: Fill, generator: torch.Generator) -> Tensor:
    """x itself ("same"), or zeros, ones or standard Gaussian noise of its shape."""
    if fill == "same":
        return x
    if fill == "noise":
        return torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
    return torch.zeros_like(x) if fill == "zeros" else torch.ones_like(x)


def _replacing_hook(parts: tuple, fill: Fill, seed: int):
    """A forward hook on the encoder that replaces its (features, skips) output per `parts`."""
    generator = torch.Generator().manual_seed(seed)

    def hook(module: nn.Module, inputs: tuple, output: tuple[Tensor, list[Tensor]]):
        features, skips = output
        features = _filled(features, fill, generator) if "features" in parts else features
        skips = [_filled(s, fill, generator) if i in parts else s for i, s in enumerate(skips)]
        return features, skips

    return hook


@torch.no_grad()
def probe(
    model: nn.Module,
    encoder: nn.Module,
    x: Tensor,
    target: Tensor,
    part: str = "bottleneck",
    fill: Fill = "noise",
    seed: int = 0,
) -> ProbeResult:
    """Run `model` (in eval mode: items are not updated) on x as is and with `part` of its `encoder`'s
    (features, skips) output replaced by `fill` (the method's `probe_point`); compare both outputs with each
    other and with target (b, c, h, w)."""
    if part not in PARTS:
        raise ValueError(f"probe part {part!r} unknown; choose one of {', '.join(PARTS)}")
    model.eval()
    original = model(x).output
    handle = encoder.register_forward_hook(_replacing_hook(PARTS[part], fill, seed))
    try:
        replaced = model(x).output
    finally:
        handle.remove()
    return ProbeResult(
        mean_abs_change=float((replaced - original).abs().mean()),
        psnr_original=float(psnr(frame_mse(original, target)).mean()),
        psnr_replaced=float(psnr(frame_mse(replaced, target)).mean()),
    )


def probe_run(run: Path, clips: int = 32, seed: int = 0) -> list[dict]:
    """Probe a finished MNAD run's last checkpoint on `clips` evenly spaced test clips: one row per part and
    fill with the run's task and skips. Run once: the rows are saved as the run's probe.json, which later calls
    for the same checkpoint, clips and seed read instead of running the model."""
    from .record import ProbeRecord
    from .runs import latest_checkpoint, read_probe, write_probe

    run = Path(run)
    found = latest_checkpoint(run)
    if found is None:
        raise FileNotFoundError(f"{run}: no checkpoints/epoch_*.pt; train the run first (repro train or sweep)")
    epoch, checkpoint = found
    if (run / "probe.json").exists():
        saved = read_probe(run)
        if (saved.epoch, saved.clips, saved.seed) == (epoch, clips, seed):
            return list(saved.rows)
    rows = _probe_rows(run, checkpoint, clips, seed)
    write_probe(run, ProbeRecord(epoch, clips, seed, tuple(rows)))
    return rows


def _probe_rows(run: Path, checkpoint: Path, clips: int, seed: int) -> list[dict]:
    from torch.utils.data import default_collate

    from .config import load_config
    from .pipeline import datasets
    from .runs import load_checkpoint
    from .train import build_model

    cfg = load_config(run / "config.toml")
    method = cfg.model.method
    model = build_model(cfg, compile=False)  # the probe hooks the encoder eagerly
    encoder = method.probe_point(model)
    model.load_state_dict(load_checkpoint(checkpoint)["model"])
    _, testing = datasets(cfg)
    batch = default_collate([testing[int(i)] for i in np.linspace(0, len(testing) - 1, clips)])
    x, target = method.to_input(batch["input"]), method.to_target(batch["target"])
    rows = []
    for part in PARTS:
        for fill in FILLS:
            result = probe(model, encoder, x, target, part, fill, seed)
            rows.append(
                {
                    "run": run.name,
                    **_columns(cfg.model.settings),
                    "replaced": part,
                    "fill": fill,
                    **result._asdict(),
                    "psnr_change": result.psnr_replaced - result.psnr_original,
                }
            )
    return rows


def _columns(settings) -> dict:
    """The settings that tell probed runs apart, where the method has them (MNAD: task, skips, memory)."""
    return {name: value for name, value in asdict(settings).items() if name in PROBE_COLUMNS}
