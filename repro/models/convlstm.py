"""The spatio-temporal ConvLSTM autoencoder (Chong and Tay, 2017), as commonly reimplemented.

Spatial encoder: conv 11x11 stride 4 (128) and conv 5x5 stride 2 (64), tanh; temporal encoder-decoder:
ConvLSTM layers with 64, 32, 64 hidden channels (3x3); spatial decoder: deconv 5x5 stride 2 (128), tanh,
and deconv 11x11 stride 4 (c), tanh. The spatial layers act on each frame alone; only the ConvLSTMs mix time.

Adaptation (docs/method.md#convlstm-ae: sizes adapted to the frame size): the original has no padding and 227x227
inputs (227 -> 55 -> 26 -> 55 -> 227). Here the convs pad by 4 and 2 ("same"-like, so h/4 and h/8 for sizes divisible
by 8) and each deconv's output_padding is derived from `size`, so any size >= 16 round-trips to itself: 64 -> 16 -> 8
-> 16 -> 64, 256 -> 64 -> 32 -> 64 -> 256, 227 -> 57 -> 29 -> 57 -> 227. The reimplementations' dropout in the
ConvLSTMs is left out (not in the paper's description). The output is tanh: inputs and targets lie in [-1, 1], so tanh
matches their range exactly (as MNAD's generator head) and cannot overshoot it.

Glossary: b batch, t frames, c image channels, h w space, k hidden channels of a ConvLSTM.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from einops import rearrange
from torch import Tensor, nn

from ..settings import Validated
from .method import ClipLayout, ErrorSignals, Method
from .output import ModelOutput

# (kernel, stride, padding) of the two spatial encoder convs; the decoder mirrors them.
_SPATIAL = ((11, 4, 4), (5, 2, 2))
SPATIAL_CHANNELS = (128, 64)
TEMPORAL_CHANNELS = (64, 32, 64)


class ConvLSTMCell(nn.Module):
    """One step: gates from one conv over concat(x, h); i, f, o = sigmoid, g = tanh (no peepholes).

    c' = f * c + i * g;  h' = o * tanh(c').  forward(x (b, c, h, w), (h, c) each (b, k, h, w)) -> (h', c').
    """

    def __init__(self, in_channels: int, hidden_channels: int, kernel: int = 3) -> None:
        super().__init__()
        self.hidden_channels = hidden_channels
        self.gates = nn.Conv2d(in_channels + hidden_channels, 4 * hidden_channels, kernel, padding=kernel // 2)

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        if state is None:
            state = self.zero_state(x)
        h, c = state
        i, f, o, g = self.gates(torch.cat([x, h], dim=1)).chunk(4, dim=1)
        c = f.sigmoid() * c + i.sigmoid() * g.tanh()
        return o.sigmoid() * c.tanh(), c

    def zero_state(self, x: Tensor) -> tuple[Tensor, Tensor]:
        b, _, h, w = x.shape
        zeros = x.new_zeros(b, self.hidden_channels, h, w)
        return zeros, zeros


class ConvLSTM(nn.Module):
    """A cell run over time from a zero (or given) state.

    forward(x (b, t, c, h, w), state) -> (hidden states (b, t, k, h, w), last (h, c)).
    """

    def __init__(self, in_channels: int, hidden_channels: int, kernel: int = 3) -> None:
        super().__init__()
        self.cell = ConvLSTMCell(in_channels, hidden_channels, kernel)

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        outputs = []
        for frame in x.unbind(dim=1):  # the recurrence is sequential in time
            state = self.cell(frame, state)
            outputs.append(state[0])
        return torch.stack(outputs, dim=1), state


def _conv_out(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def _output_padding(size_in: int, size_out: int, kernel: int, stride: int, padding: int) -> int:
    """The transposed conv's output_padding that maps size_in back to size_out exactly."""
    return size_out - ((size_in - 1) * stride - 2 * padding + kernel)


class ConvLSTMAE(nn.Module):
    """Chong and Tay's spatio-temporal autoencoder for square frames of side `size`.

    forward(x (b, t, c, h, w) with h = w = size) -> ModelOutput(output (b, t, c, h, w) in [-1, 1]).
    Reconstructs the input cuboid (10 frames in the paper; any t works).
    """

    def __init__(self, channels: int = 1, size: int = 64, kernel: int = 3) -> None:
        super().__init__()
        if size < 16:
            raise ValueError(f"ConvLSTMAE needs frames of at least 16x16 (two strided convs), got size={size}")
        self.channels, self.size = channels, size
        (k1, s1, p1), (k2, s2, p2) = _SPATIAL
        c1, c2 = SPATIAL_CHANNELS
        size1 = _conv_out(size, k1, s1, p1)
        size2 = _conv_out(size1, k2, s2, p2)
        self.spatial_encoder = nn.Sequential(
            nn.Conv2d(channels, c1, k1, s1, p1),
            nn.Tanh(),
            nn.Conv2d(c1, c2, k2, s2, p2),
            nn.Tanh(),
        )
        t1, t2, t3 = TEMPORAL_CHANNELS
        self.temporal = nn.ModuleList([ConvLSTM(c2, t1, kernel), ConvLSTM(t1, t2, kernel), ConvLSTM(t2, t3, kernel)])
        self.spatial_decoder = nn.Sequential(
            nn.ConvTranspose2d(t3, c1, k2, s2, p2, _output_padding(size2, size1, k2, s2, p2)),
            nn.Tanh(),
            nn.ConvTranspose2d(c1, channels, k1, s1, p1, _output_padding(size1, size, k1, s1, p1)),
            nn.Tanh(),
        )

    def forward(self, x: Tensor) -> ModelOutput:
        if x.dim() != 5 or x.shape[2] != self.channels or x.shape[3:] != (self.size, self.size):
            raise ValueError(
                f"ConvLSTMAE input must be (b, t, c={self.channels}, h={self.size}, w={self.size}) clips, "
                f"got {tuple(x.shape)}"
            )
        b = x.shape[0]
        features = self.spatial_encoder(rearrange(x, "b t c h w -> (b t) c h w"))
        features = rearrange(features, "(b t) k h w -> b t k h w", b=b)
        for layer in self.temporal:
            features, _ = layer(features)
        output = self.spatial_decoder(rearrange(features, "b t k h w -> (b t) k h w"))
        return ModelOutput(rearrange(output, "(b t) c h w -> b t c h w", b=b))


def convlstm_frame_errors(output: Tensor, target: Tensor) -> Tensor:
    """(b, t) per-frame reconstruction error e(t) = ||x(t) - f(x(t))||_2 over c*h*w (Chong and Tay, sec. 3.4).

    output, target (b, t, c, h, w). The regularity score s = 1 - (e - min) / (max - min) per video is
    computed by `repro.scoring`, not here.
    """
    if output.shape != target.shape or output.dim() != 5:
        raise ValueError(
            f"output and target must both be (b, t, c, h, w), got {tuple(output.shape)} and {tuple(target.shape)}"
        )
    return (output.float() - target.float()).flatten(start_dim=2).norm(dim=2)


# ---------------------------------------------------------------------------------------------- method
@dataclass(frozen=True)
class ConvLSTMSettings(Validated):
    """The ConvLSTM-AE's settings, the config section [model.convlstm]: its widths are the paper's
    (docs/method.md#convlstm-ae), fixed."""

    prefix: ClassVar[str] = "model.convlstm."


CLIP = ClipLayout(10, False, 5)  # 10-frame cuboids; the centre frame is scored


class ConvLSTMMethod(Method):
    name = "convlstm"
    help = "The ConvLSTM autoencoder (Chong and Tay 2017) on 10-frame cuboids."
    Settings = ConvLSTMSettings
    channels_last = True  # its 2-D convs; the 5-D clips stay contiguous and are rearranged inside

    def build(self, settings: ConvLSTMSettings, channels: int, size: int) -> ConvLSTMAE:
        return ConvLSTMAE(channels=channels, size=size)

    def validate(self, settings: ConvLSTMSettings, size: int) -> None:
        if size < 16:
            raise ValueError(f"data.size={size}: the ConvLSTM-AE's two strided convs need frames of at least 16x16")

    def layout(self, settings: ConvLSTMSettings) -> ClipLayout:
        return CLIP

    def scored_frame(self, output: Tensor) -> Tensor:
        return output[:, CLIP.scored_offset]

    def frame_signals(self, model: ConvLSTMAE, result: ModelOutput, target: Tensor) -> ErrorSignals:
        return ErrorSignals(convlstm_frame_errors(result.output, target)[:, CLIP.scored_offset])
