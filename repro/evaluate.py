"""Evaluation of MNAD: per-frame signals (PSNR, feature distance, regular score), with or without the
test-time memory update (SPEC sec. 2, 5).

Glossary: b frames in a batch, t input frames, c channels, h w size, n queries, d dim, m items.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from .models.mnad import MNAD
from .models.output import ModelOutput
from .precision import autocast
from .scoring import feature_distance, frame_mse, psnr, regular_score


class FrameSignals(NamedTuple):
    """Raw per-frame signals of one batch, each (b,)."""

    psnr: Tensor  # dB on the [0, 1] scale (eq. 13)
    distance: Tensor | None  # mean (q - nearest item)^2 with the items before this frame's update (eq. 14)
    regular: Tensor  # weighted regular score of eqs. 6-7, the update gate


@torch.no_grad()
def frame_signals(
    model: MNAD, inputs: Tensor, target: Tensor, precision: str = "fp32"
) -> tuple[FrameSignals, ModelOutput]:
    """Signals for a batch of frames with the current items, and the forward's result; never changes the items.

    inputs (b, t*c, h, w), target (b, c, h, w), both in [-1, 1].
    """
    with autocast(inputs.device, precision):
        result = model(inputs)
    distance = None
    if model.memory is not None:
        distance = feature_distance(result.queries, model.memory.items, frames=inputs.shape[0])
    return FrameSignals(psnr(frame_mse(result.output, target)), distance, regular_score(result.output, target)), result


@torch.no_grad()
def step_with_update(model: MNAD, inputs: Tensor, target: Tensor, gamma: float, precision: str = "fp32") -> FrameSignals:
    """One frame (b = 1) of the sequential test-time update: signals with the current items, then the items
    are updated with this frame's queries if its regular score is below γ (eqs. 6-7).

    The decision stays on the device (no host sync per frame).
    """
    if inputs.shape[0] != 1:
        raise ValueError(f"the test-time update is sequential: inputs must hold one frame, got {tuple(inputs.shape)}")
    signals, result = frame_signals(model, inputs, target, precision)
    if model.memory is not None:
        model.memory.update(result.queries, accept=signals.regular[0] < gamma)
    return signals
