"""MNAD (Park et al., CVPR 2020): a U-Net-like autoencoder whose bottleneck reads a memory of normal prototypes.

Prediction: 4 past frames stacked on channels (oldest first) -> the 5th. Reconstruction: 1 frame -> itself.
Blocks and widths follow the reference implementation (SPEC sec. 1); `width` scales every channel count
(64 = paper, so the query dim is d = 8 * width).

Glossary: b batch, c image channels, t input frames, h w spatial size, d = 8*width query dim, m items,
n = b*h'*w' queries of the bottleneck map (h' = h/8).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from ..precision import full_precision
from .memory import Memory
from .output import ModelOutput

TASKS = ("pred", "recon")
DECODERS = ("halving", "constant")
PRED_IN_FRAMES = 4


def conv3x3(c_in: int, c_out: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=3, stride=1, padding=1)


def basic(c_in: int, c_out: int) -> nn.Sequential:
    """Reference `Basic`: (conv, BN, ReLU) x 2."""
    return nn.Sequential(
        conv3x3(c_in, c_out), nn.BatchNorm2d(c_out), nn.ReLU(),
        conv3x3(c_out, c_out), nn.BatchNorm2d(c_out), nn.ReLU(),
    )  # fmt: skip


def basic_open(c_in: int, c_out: int) -> nn.Sequential:
    """Reference `Basic_`: the encoder's last block ends on a bare conv (no BN, no ReLU; MNAD sec. 3.1.1)."""
    return nn.Sequential(conv3x3(c_in, c_out), nn.BatchNorm2d(c_out), nn.ReLU(), conv3x3(c_out, c_out))


def upsample(c_in: int, c_out: int) -> nn.Sequential:
    """Reference `Upsample`: transposed conv k3 s2 doubling h and w, BN, ReLU."""
    return nn.Sequential(
        nn.ConvTranspose2d(c_in, c_out, kernel_size=3, stride=2, padding=1, output_padding=1),
        nn.BatchNorm2d(c_out),
        nn.ReLU(),
    )


def generator_head(c_in: int, c_out: int, c_mid: int) -> nn.Sequential:
    """Reference `Gen`: two Basic-style convs and a conv to image channels with tanh ([-1, 1] output)."""
    return nn.Sequential(
        conv3x3(c_in, c_mid), nn.BatchNorm2d(c_mid), nn.ReLU(),
        conv3x3(c_mid, c_mid), nn.BatchNorm2d(c_mid), nn.ReLU(),
        conv3x3(c_mid, c_out), nn.Tanh(),
    )  # fmt: skip


class Encoder(nn.Module):
    """(b, c_in, h, w) -> features (b, 8w, h/8, w/8) and skips [(b, w, h, w), (b, 2w, h/2, .), (b, 4w, h/4, .)]."""

    def __init__(self, in_channels: int, width: int) -> None:
        super().__init__()
        w = width
        self.block1, self.pool1 = basic(in_channels, w), nn.MaxPool2d(2)
        self.block2, self.pool2 = basic(w, 2 * w), nn.MaxPool2d(2)
        self.block3, self.pool3 = basic(2 * w, 4 * w), nn.MaxPool2d(2)
        self.block4 = basic_open(4 * w, 8 * w)

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        skip1 = self.block1(x)
        skip2 = self.block2(self.pool1(skip1))
        skip3 = self.block3(self.pool2(skip2))
        return self.block4(self.pool3(skip3)), [skip1, skip2, skip3]


class Decoder(nn.Module):
    """(b, c_in, h/8, w/8) [+ encoder skips] -> (b, c, h, w) in [-1, 1].

    "halving": each upsample halves the channels (MNAD prediction, every variant of the study).
    "constant": each upsample keeps them (the authors' later reconstruction decoder).
    With skips, each upsampled map is concatenated after its skip (skip first, as the reference).
    """

    def __init__(self, in_channels: int, out_channels: int, width: int, skips: bool, kind: str = "halving") -> None:
        super().__init__()
        if kind not in DECODERS:
            raise ValueError(f"unknown decoder {kind!r}; allowed: {', '.join(DECODERS)}")
        w, self.skips = width, skips
        up = {"halving": (4 * w, 2 * w, w), "constant": (8 * w, 4 * w, 2 * w)}[kind]
        skip = (4 * w, 2 * w, w) if skips else (0, 0, 0)
        self.block = basic(in_channels, 8 * w)
        self.up3, self.block3 = upsample(8 * w, up[0]), basic(up[0] + skip[0], 4 * w)
        self.up2, self.block2 = upsample(4 * w, up[1]), basic(up[1] + skip[1], 2 * w)
        self.up1, self.head = upsample(2 * w, up[2]), generator_head(up[2] + skip[2], out_channels, w)

    def forward(self, x: Tensor, skips: list[Tensor]) -> Tensor:
        x = self.block(x)
        x = self.block3(self._join(self.up3(x), skips[2]))
        x = self.block2(self._join(self.up2(x), skips[1]))
        return self.head(self._join(self.up1(x), skips[0]))

    def _join(self, upsampled: Tensor, skip: Tensor) -> Tensor:
        return torch.cat([skip, upsampled], dim=1) if self.skips else upsampled


class MNAD(nn.Module):
    """MNAD for prediction or reconstruction, with or without memory and skips.

    forward(x (b, t*c, h, w)) -> ModelOutput(output (b, c, h, w), queries (n, d), weights (n, m), losses).
    Training mode follows the reference order: feature losses and read with the old items, then the items
    are updated with all n queries. Evaluation mode never changes the items (see `Memory.update`, which the
    test-time update of `repro.evaluate` calls explicitly).
    """

    def __init__(
        self,
        task: str = "pred",
        memory: bool = True,
        skips: bool | None = None,  # None: the task's default (pred on, recon off)
        width: int = 64,
        num_items: int = 10,  # M
        decoder: str = "halving",
        in_frames: int | None = None,  # None: 4 for pred, 1 for recon
        channels: int = 3,
        compactness_weight: float | None = None,  # λ_c; None: 0.1 pred, 0.01 recon (SPEC sec. 4)
        separateness_weight: float | None = None,  # λ_s; same defaults
        separateness_margin: float = 1.0,
        uniform_memory_weight: float = 0.0,
        update_normaliser: str = "all",
        item_init: str = "uniform",
        diversity_weight: float = 0.0,  # collapse remedies (SPEC sec. 12), see `Memory`
        kmeans_init_steps: int = 0,
        reseed_after_steps: int = 0,
    ) -> None:
        super().__init__()
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; allowed: {', '.join(TASKS)}")
        self.task = task
        self.skips = task == "pred" if skips is None else skips
        self.in_frames = (PRED_IN_FRAMES if task == "pred" else 1) if in_frames is None else in_frames
        self.channels = channels
        feature_loss_weight = 0.1 if task == "pred" else 0.01
        dim = 8 * width
        self.encoder = Encoder(self.in_frames * channels, width)
        self.memory = (
            Memory(
                num_items,
                dim,
                feature_loss_weight if compactness_weight is None else compactness_weight,
                feature_loss_weight if separateness_weight is None else separateness_weight,
                separateness_margin,
                uniform_memory_weight,
                update_normaliser,
                item_init,
                diversity_weight=diversity_weight,
                kmeans_init_steps=kmeans_init_steps,
                reseed_after_steps=reseed_after_steps,
            )
            if memory
            else None
        )
        decoder_in = 2 * dim if memory else dim  # concat(query, read) or the raw features
        self.decoder = Decoder(decoder_in, channels, width, self.skips, decoder)

    def forward(self, x: Tensor) -> ModelOutput:
        expected = self.in_frames * self.channels
        if x.dim() != 4 or x.shape[1] != expected:
            raise ValueError(
                f"MNAD({self.task}) input must be (b, {expected}, h, w) = {self.in_frames} frames x "
                f"{self.channels} channels stacked on channels, got {tuple(x.shape)}"
            )
        features, skips = self.encoder(x)  # (b, d, h', w')
        if self.memory is None:
            return ModelOutput(self.decoder(features, skips))
        b, _, h, w = features.shape
        with full_precision(x.device):  # memory maths in fp32
            queries = F.normalize(features.float(), dim=1)
            queries = rearrange(queries, "b d h w -> (b h w) d")
            read, weights = self.memory.read(queries)  # eq. 1-2, old items
            losses = self.memory.losses(queries, weights, h * w) if self.training else {}
            decoder_in = rearrange(torch.cat([queries, read], dim=1), "(b h w) d -> b d h w", b=b, h=h, w=w)
        output = self.decoder(decoder_in, skips)
        if self.training:
            self.memory.update(queries)
        return ModelOutput(output, queries, weights, losses)
