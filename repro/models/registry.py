"""Model name -> how to build it, which clips it eats and how its frames are scored.

The runner stays model-agnostic: it asks the registry for a `ModelEntry` and never branches on names.
Clips arrive from the data layer as (b, t, c, h, w) in [-1, 1]; each entry rearranges them for its model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from einops import rearrange
from torch import Tensor, nn

from .convlstm import ConvLSTMAE, convlstm_frame_errors
from .memae import MemAE, ae_frame_score, memae_frame_score
from .mnad import MNAD, PRED_IN_FRAMES
from .output import ModelOutput


@dataclass(frozen=True)
class ClipLayout:
    """Which window of frames one sample holds and which frame it scores (SPEC sec. 5, 8)."""

    in_frames: int  # frames fed to the model
    predict: bool  # True: the target is the next frame; False: the (clean) input window itself
    scored_offset: int  # the scored frame's position from the window start


@dataclass(frozen=True)
class ModelEntry:
    build: Callable[..., nn.Module]
    layout: Callable[[str], ClipLayout]  # by task ("pred" | "recon")
    to_input: Callable[[Tensor], Tensor]  # (b, t, c, h, w) -> the model's input
    to_target: Callable[[Tensor], Tensor]  # (b, t', c, h, w) -> the layout of the model's output
    scored_frame: Callable[[Tensor], Tensor]  # the model's output layout -> (b, c, h, w) of the scored frame
    # (b,) per-sample anomaly error of baselines (higher = more anomalous); None for MNAD, which is
    # scored by PSNR and feature distance (repro.evaluate)
    frame_error: Callable[[ModelOutput, Tensor], Tensor] | None = None


def _mnad_layout(task: str) -> ClipLayout:
    return ClipLayout(PRED_IN_FRAMES, True, PRED_IN_FRAMES) if task == "pred" else ClipLayout(1, False, 0)


def _stack_frames(x: Tensor) -> Tensor:
    return rearrange(x, "b t c h w -> b (t c) h w")


def _channels_first(x: Tensor) -> Tensor:
    return rearrange(x, "b t c h w -> b c t h w")


MEMAE_LAYOUT = ClipLayout(16, False, 8)  # clip j scores frame j + 8
CONVLSTM_LAYOUT = ClipLayout(10, False, 5)


def _memae_scored(x: Tensor) -> Tensor:
    return x[:, :, MEMAE_LAYOUT.scored_offset]


def _convlstm_scored(x: Tensor) -> Tensor:
    return x[:, CONVLSTM_LAYOUT.scored_offset]


def _convlstm_centre_error(result: ModelOutput, target: Tensor) -> Tensor:
    return convlstm_frame_errors(result.output, target)[:, CONVLSTM_LAYOUT.scored_offset]


MODELS: dict[str, ModelEntry] = {
    "mnad": ModelEntry(MNAD, _mnad_layout, _stack_frames, _stack_frames, lambda x: x),
    "memae": ModelEntry(
        lambda **kw: MemAE(memory=True, **kw), lambda task: MEMAE_LAYOUT, _channels_first, _channels_first,
        _memae_scored, lambda result, target: memae_frame_score(result.output, target),
    ),
    "ae3d": ModelEntry(
        lambda **kw: MemAE(memory=False, **kw), lambda task: MEMAE_LAYOUT, _channels_first, _channels_first,
        _memae_scored, lambda result, target: ae_frame_score(result.output, target),
    ),
    "convlstm": ModelEntry(
        ConvLSTMAE, lambda task: CONVLSTM_LAYOUT, lambda x: x, lambda x: x, _convlstm_scored, _convlstm_centre_error
    ),
}  # fmt: skip


def model_entry(name: str) -> ModelEntry:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; allowed: {', '.join(MODELS)}")
    return MODELS[name]
