"""MemAE (Gong et al., ICCV 2019): a 3D-conv autoencoder whose bottleneck is rebuilt from a learnable memory.

Follows the official code (docs/method.md#baselines). Unlike MNAD's memory (docs/method.md#memory), the items are a
trained `nn.Parameter`, addressing is a softmax over items of dot products (the paper says cosine: both offered),
the weights are hard-shrunk and L1-renormalised, and the read is the decoder's only input (no concat).
`memory=False` builds the same backbone without memory: the "AE" baseline.

`width` is the channel count of the first encoder conv (96 = paper), like MNAD's `width` (64 = paper);
the other layers scale with it: (w, 4w/3, 8w/3, 8w/3) = (96, 128, 256, 256) at the paper size, and the
query dim is d = 8w/3 (rounded). Use a multiple of 3 (e.g. 24 -> 24, 32, 64, 64) for exact ratios.

Glossary: b batch, c image channels, t frames, h w space, t' h' w' = t/8, h/16, w/16 (the encoder's output),
d feature (query) dim, m memory items, n = b*t'*h'*w' queries (row-major over b, t', h', w').
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from ..precision import full_precision
from ..settings import AT_LEAST_ONE, NON_NEGATIVE, Interval, Validated, setting
from .method import ClipLayout, ErrorSignals, Method
from .output import ModelOutput
from .variant_flags import ADDRESSINGS, MEMAE_VARIANT_FLAGS

PAPER_WIDTH = 96
_EPS = 1e-12  # the official code's epsilon in the shrinkage, the L1 renormalisation and the entropy
# Encoder strides (t, h, w); the decoder mirrors them. Each level's channels relative to the first (96).
_STRIDES = ((1, 2, 2), (2, 2, 2), (2, 2, 2), (2, 2, 2))
_CHANNEL_RATIOS = (96, 128, 256, 256)
TIME_FACTOR, SPACE_FACTOR = 8, 16  # t' = t/8, h' = h/16


# ------------------------------------------------------------------------------------------- equations
def _check_pair(z: Tensor, items: Tensor) -> None:
    if z.dim() != 2 or items.dim() != 2 or z.shape[1] != items.shape[1]:
        raise ValueError(
            f"z must be (n, d) and items (m, d) with the same d, got z {tuple(z.shape)} and items {tuple(items.shape)}"
        )


def memae_address(z: Tensor, items: Tensor, addressing: str = "dot") -> Tensor:
    """Weights (n, m) = softmax over items of z·m_i ("dot", official code) or cos(z, m_i) ("cosine", paper eq. 4-5)."""
    if addressing not in ADDRESSINGS:
        raise ValueError(f"unknown addressing {addressing!r}; allowed: {', '.join(ADDRESSINGS)}")
    _check_pair(z, items)
    if addressing == "cosine":
        z, items = F.normalize(z, dim=1), F.normalize(items, dim=1)
    return (z @ items.t()).softmax(dim=1)


def hard_shrink(weights: Tensor, threshold: float) -> Tensor:
    """Hard shrinkage (paper eq. 7, epsilon form of the official code) then L1 renormalisation per row.

    w_hat = relu(w - λ) * w / (|w - λ| + ε): weights at or below λ become exactly 0, the rest stay ~w.
    A row whose weights are all at or below λ stays all zero (no NaN); the evaluation records their share.
    """
    if threshold < 0:
        raise ValueError(f"shrink threshold must be >= 0 (0 disables shrinkage), got {threshold}")
    shifted = weights - threshold
    shrunk = F.relu(shifted) * weights / (shifted.abs() + _EPS)
    return F.normalize(shrunk, p=1, dim=1, eps=_EPS)  # w / max(|w|_1, ε)


def entropy_loss(weights: Tensor) -> Tensor:
    """Mean over rows of -sum_i w_i log(w_i + ε) (paper eq. 9; zeros contribute 0)."""
    return -(weights * (weights + _EPS).log()).sum(dim=1).mean()


def memae_read(weights: Tensor, items: Tensor) -> Tensor:
    """z_hat (n, d) = w_hat M (paper eq. 3); gradients reach both the weights and the items."""
    return weights @ items


def _check_clips(output: Tensor, target: Tensor) -> None:
    if output.shape != target.shape or output.dim() != 5:
        raise ValueError(
            f"output and target must both be (b, c, t, h, w), got {tuple(output.shape)} and {tuple(target.shape)}"
        )


def memae_frame_score(output: Tensor, target: Tensor) -> Tensor:
    """(b,) per clip: mean over t*h*w of the per-pixel L2 norm over channels of (output - target).

    output, target (b, c, t, h, w) on the data's [-1, 1] scale, as the official MemAE test path (it does not
    un-normalise). Clip j scores frame j + 8 of its video (docs/method.md#baselines).
    """
    _check_clips(output, target)
    return (output.float() - target.float()).norm(dim=1).mean(dim=(1, 2, 3))


def ae_frame_score(output: Tensor, target: Tensor) -> Tensor:
    """(b,) per clip: the mean squared error over c*t*h*w on the [0, 1] scale, as the official code scores its AE.

    output, target (b, c, t, h, w) in the data's [-1, 1] scale; x -> (x + 1) / 2 halves each difference.
    """
    _check_clips(output, target)
    return ((output.float() - target.float()) / 2).square().mean(dim=(1, 2, 3, 4))


# ------------------------------------------------------------------------------------------------ modules
class MemoryModule(nn.Module):
    """Learnable items (m, d); forward(z (n, d)) -> (z_hat (n, d), shrunk weights (n, m)).

    Implements `method.MemoryItems`: its items are parameters, so distributed training all-reduces their
    gradients and never gathers queries (`gather` stays None).
    """

    gather: Callable[[Tensor], Tensor] | None = None

    def __init__(
        self, num_items: int = 2000, dim: int = 256, shrink_threshold: float = 0.0025, addressing: str = "dot"
    ) -> None:
        super().__init__()
        if addressing not in ADDRESSINGS:
            raise ValueError(f"unknown addressing {addressing!r}; allowed: {', '.join(ADDRESSINGS)}")
        if shrink_threshold < 0:
            raise ValueError(f"shrink_threshold must be >= 0 (0 disables shrinkage), got {shrink_threshold}")
        bound = 1 / math.sqrt(dim)
        self.items = nn.Parameter(torch.empty(num_items, dim).uniform_(-bound, bound))  # official init
        self.shrink_threshold = shrink_threshold  # λ, eq. 7 (0.0025 = 5/N for N = 2000)
        self.addressing = addressing

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        weights = memae_address(z, self.items, self.addressing)
        if self.shrink_threshold > 0:
            weights = hard_shrink(weights, self.shrink_threshold)
        return memae_read(weights, self.items), weights

    @contextmanager
    def scratch(self) -> Iterator[None]:
        """Changes to the items inside this block (e.g. test-time adaptation) are undone on exit."""
        saved = self.items.detach().clone()
        try:
            yield
        finally:
            with torch.no_grad():
                self.items.copy_(saved)


def _init_weights(module: nn.Module) -> None:
    """Official init: conv and deconv weights N(0, 0.02), BN weight N(1, 0.02) and bias 0 (conv biases default)."""
    if isinstance(module, (nn.Conv3d, nn.ConvTranspose3d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm3d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def down(c_in: int, c_out: int, stride: tuple[int, int, int]) -> nn.Sequential:
    return nn.Sequential(nn.Conv3d(c_in, c_out, 3, stride=stride, padding=1), nn.BatchNorm3d(c_out), nn.LeakyReLU(0.2))


def up(c_in: int, c_out: int, stride: tuple[int, int, int]) -> nn.ConvTranspose3d:
    """Transposed conv k3 p1 that exactly undoes `down` with the same stride (output_padding = stride - 1)."""
    return nn.ConvTranspose3d(c_in, c_out, 3, stride=stride, padding=1, output_padding=tuple(s - 1 for s in stride))


def encoder(channels: int, widths: list[int]) -> nn.Sequential:
    """(b, c, t, h, w) -> (b, d, t/8, h/16, w/16)."""
    c_in = [channels] + widths[:-1]
    return nn.Sequential(*(down(a, b, s) for a, b, s in zip(c_in, widths, _STRIDES)))


def decoder(channels: int, widths: list[int]) -> nn.Sequential:
    """(b, d, t/8, h/16, w/16) -> (b, c, t, h, w), linear output."""
    c_in, c_out = widths[::-1], widths[::-1][1:] + [channels]
    strides = _STRIDES[::-1]
    layers = [
        nn.Sequential(up(a, b, s), nn.BatchNorm3d(b), nn.LeakyReLU(0.2))
        for a, b, s in zip(c_in[:-1], c_out[:-1], strides[:-1])
    ]
    return nn.Sequential(*layers, up(c_in[-1], c_out[-1], strides[-1]))


class MemAE(nn.Module):
    """MemAE (memory=True) or the AE baseline (memory=False) on clips (b, c, t, h, w).

    forward(x (b, c, t, h, w), t % 8 == 0, h and w % 16 == 0) -> ModelOutput(
        output (b, c, t, h, w) linear, queries (n, d), weights (n, m) shrunk, losses {"entropy": α·E}).
    At the paper size (16 x 256 x 256) n = b * 2 * 16 * 16 = 512 b and d = 256.
    """

    def __init__(
        self,
        channels: int = 1,
        memory: bool = True,
        num_items: int = 2000,  # N
        shrink_threshold: float = 0.0025,  # λ, eq. 7; 0 = no shrinkage
        addressing: str = "dot",
        entropy: float = 0.0002,  # α, eq. 10
        width: int = PAPER_WIDTH,  # channels of the first encoder conv; 96 = paper
    ) -> None:
        super().__init__()
        if width < 1:
            raise ValueError(f"width must be a positive channel count (96 = paper), got {width}")
        widths = [max(1, round(width * r / PAPER_WIDTH)) for r in _CHANNEL_RATIOS]
        self.channels, self.dim = channels, widths[-1]
        self.encoder = encoder(channels, widths)
        self.memory = MemoryModule(num_items, self.dim, shrink_threshold, addressing) if memory else None
        self.entropy_weight = entropy if memory else 0.0
        self.decoder = decoder(channels, widths)
        self.encoder.apply(_init_weights)
        self.decoder.apply(_init_weights)

    def forward(self, x: Tensor) -> ModelOutput:
        b, c, t, h, w = self._check_input(x)
        z = self.encoder(x)  # (b, d, t', h', w')
        if self.memory is None:
            return ModelOutput(self.decoder(z))
        _, _, t_, h_, w_ = z.shape
        with full_precision(x.device):  # memory maths in fp32: softmax over m items, then a threshold
            queries = rearrange(z.float(), "b d t h w -> (b t h w) d")
            read, weights = self.memory(queries)
            losses = {"entropy": self.entropy_weight * entropy_loss(weights)} if self.entropy_weight > 0 else {}
        read = rearrange(read, "(b t h w) d -> b d t h w", b=b, t=t_, h=h_, w=w_)
        return ModelOutput(self.decoder(read), queries, weights, losses)

    def _check_input(self, x: Tensor) -> tuple[int, ...]:
        if x.dim() != 5 or x.shape[1] != self.channels:
            raise ValueError(
                f"MemAE input must be (b, c={self.channels}, t, h, w) clips, got {tuple(x.shape)}; "
                f"rearrange data-layer clips with einops 'b t c h w -> b c t h w'"
            )
        _, _, t, h, w = x.shape
        if t % TIME_FACTOR or h % SPACE_FACTOR or w % SPACE_FACTOR:
            raise ValueError(
                f"MemAE needs t divisible by {TIME_FACTOR} and h, w by {SPACE_FACTOR} (3 temporal and 4 spatial "
                f"stride-2 levels), got t={t}, h={h}, w={w}"
            )
        return tuple(x.shape)


# ---------------------------------------------------------------------------------------------- methods
@dataclass(frozen=True)
class AESettings(Validated):
    """The memory-less 3-D autoencoder's settings, the config section [model.ae3d]."""

    prefix: ClassVar[str] = "model.ae3d."
    width: int = setting(PAPER_WIDTH, "Channels of the first 3-D conv (96 = paper; use a multiple of 3).", AT_LEAST_ONE)


@dataclass(frozen=True)
class MemAESettings(Validated):
    """MemAE's settings, the config section [model.memae] (docs/method.md#baselines; official code's values)."""

    prefix: ClassVar[str] = "model.memae."
    width: int = setting(PAPER_WIDTH, "Channels of the first 3-D conv (96 = paper; use a multiple of 3).", AT_LEAST_ONE)
    num_items: int = setting(2000, "N, the number of memory items.", AT_LEAST_ONE)
    shrink_threshold: float = setting(
        0.0025, "λ of the hard shrinkage (eq. 7; 0.0025 = 5/N; 0 = no shrinkage).", Interval(0, 1, high_open=True)
    )
    addressing: Literal[ADDRESSINGS] = setting(
        "dot", "Addressing logits: dot product (official code) or cosine (paper)."
    )
    entropy: float = setting(0.0002, "α, weight of the addressing entropy loss (eq. 10).", NON_NEGATIVE)


CLIP = ClipLayout(16, False, 8)  # 16-frame clips; clip j scores frame j + 8 (docs/method.md#baselines)


class AEMethod(Method):
    name = "ae3d"
    help = "MemAE's 3-D convolutional autoencoder without memory (the 'AE' baseline)."
    Settings = AESettings

    def build(self, settings: AESettings, channels: int, size: int) -> MemAE:
        return MemAE(channels=channels, memory=False, **asdict(settings))

    def validate(self, settings, size: int) -> None:
        if size % SPACE_FACTOR:
            raise ValueError(
                f"data.size={size}: {self.name} downsamples space by {SPACE_FACTOR}, so the frame size "
                f"must be a multiple of {SPACE_FACTOR}"
            )

    def layout(self, settings) -> ClipLayout:
        return CLIP

    def to_input(self, clips: Tensor) -> Tensor:
        return rearrange(clips, "b t c h w -> b c t h w")  # channels before time, as Conv3d wants

    to_target = to_input  # the target clip takes the same layout as the output

    def scored_frame(self, output: Tensor) -> Tensor:
        return output[:, :, CLIP.scored_offset]

    def frame_signals(self, model: MemAE, result: ModelOutput, target: Tensor) -> ErrorSignals:
        """The official AE test path: mean squared error on the [0, 1] scale."""
        return ErrorSignals(ae_frame_score(result.output, target))


# `repro ablate` options of MemAE: each sets its key in the variant only.


class MemAEMethod(AEMethod):
    name = "memae"
    help = "MemAE (Gong et al. 2019): the 3-D autoencoder reading a trained memory with hard shrinkage."
    Settings = MemAESettings
    variant_flags = MEMAE_VARIANT_FLAGS

    def build(self, settings: MemAESettings, channels: int, size: int) -> MemAE:
        return MemAE(channels=channels, memory=True, **asdict(settings))

    def frame_signals(self, model: MemAE, result: ModelOutput, target: Tensor) -> ErrorSignals:
        """The official MemAE test path: mean over t, h, w of the per-pixel L2 norm over channels."""
        return ErrorSignals(memae_frame_score(result.output, target))

    def without_memory(self, settings: MemAESettings) -> tuple[str, ...]:
        """MemAE without memory is its AE baseline, at the same width."""
        return ("model.name=ae3d", f"model.ae3d.width={settings.width}")
