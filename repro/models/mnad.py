"""MNAD (Park et al., CVPR 2020): a U-Net-like autoencoder whose bottleneck reads a memory of normal prototypes.

Prediction: 4 past frames stacked on channels (oldest first) -> the 5th. Reconstruction: 1 frame -> itself.
Blocks and widths follow the reference implementation (docs/method.md#network); `width` scales every channel count
(64 = paper, so the query dim is d = 8 * width).

Glossary: b batch, c image channels, t input frames, h w spatial size, d = 8*width query dim, m items,
n = b*h'*w' queries of the bottleneck map (h' = h/8).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Literal, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from ..precision import full_precision
from ..scoring import (
    anomaly_score,
    feature_distance,
    frame_metrics,
    frame_mse,
    gamma_from_quantile,
    psnr,
    regular_score,
)
from ..settings import AT_LEAST_ONE, NON_NEGATIVE, POSITIVE, UNIT, Validated, setting
from . import read_ablation
from .diagnostics import constant_signal_videos
from .memory import ITEM_INITS, UPDATE_NORMALISERS, Memory
from .method import ClipLayout, Method, Scorer
from .output import ModelOutput
from .variant_flags import MNAD_VARIANT_FLAGS

TASKS = ("pred", "recon")
DECODERS = ("halving", "constant")
PRED_IN_FRAMES = 4
FEATURE_LOSS_WEIGHT = {"pred": 0.1, "recon": 0.01}  # λ_c = λ_s per task (docs/method.md#training)


def conv3x3(c_in: int, c_out: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=3, stride=1, padding=1)


def basic(c_in: int, c_out: int) -> nn.Sequential:
    """Reference `Basic`: (conv, BN, ReLU) x 2."""
    return nn.Sequential(
        conv3x3(c_in, c_out),
        nn.BatchNorm2d(c_out),
        nn.ReLU(),
        conv3x3(c_out, c_out),
        nn.BatchNorm2d(c_out),
        nn.ReLU(),
    )


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
        conv3x3(c_in, c_mid),
        nn.BatchNorm2d(c_mid),
        nn.ReLU(),
        conv3x3(c_mid, c_mid),
        nn.BatchNorm2d(c_mid),
        nn.ReLU(),
        conv3x3(c_mid, c_out),
        nn.Tanh(),
    )


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
        compactness: float | None = None,  # λ_c; None: 0.1 pred, 0.01 recon (docs/method.md#training)
        separateness: float | None = None,  # λ_s; same defaults
        separateness_margin: float = 1.0,
        uniform_memory: float = 0.0,  # weights of the feature losses, named as MNADSettings' fields
        update_normaliser: str = "all",
        item_init: str = "uniform",
        diversity: float = 0.0,  # collapse remedies (docs/method.md, memory diagnostics), see `Memory`
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
        feature_loss_weight = FEATURE_LOSS_WEIGHT[task]
        dim = 8 * width
        self.encoder = Encoder(self.in_frames * channels, width)
        self.memory = (
            Memory(
                num_items,
                dim,
                feature_loss_weight if compactness is None else compactness,
                feature_loss_weight if separateness is None else separateness,
                separateness_margin,
                uniform_memory,
                update_normaliser,
                item_init,
                diversity_weight=diversity,
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


# ---------------------------------------------------------------------------------------------- method
@dataclass(frozen=True)
class MNADSettings(Validated):
    """MNAD's settings, the config section [model.mnad] (docs/method.md#network to #training)."""

    prefix: ClassVar[str] = "model.mnad."
    task: Literal[TASKS] = setting(
        "pred", "Predict the 5th frame from 4 (pred) or reconstruct the input frame (recon)."
    )
    memory: bool = setting(True, "Use the memory module (false = the 'w/o Mem.' network).")
    skips: bool | None = setting(None, "U-Net skip connections; none = the task's default (pred on, recon off).")
    width: int = setting(64, "Channels of the first encoder block (paper 64: 512-d features).", AT_LEAST_ONE)
    num_items: int = setting(10, "M, the number of memory items.", AT_LEAST_ONE)
    decoder: Literal[DECODERS] = setting(
        "halving", "Decoder widths per upsample: halving (the study) or constant (authors' later recon decoder)."
    )
    item_init: Literal[ITEM_INITS] = setting(
        "uniform", "Item initialisation: uniform [0,1) rows (reference) or Gaussian, each L2-normalised."
    )
    update_normaliser: Literal[UPDATE_NORMALISERS] = setting(
        "all", "Eq. 5 max over all queries (reference code) or over the item's assigned queries (paper)."
    )
    compactness: float | None = setting(
        None, "λ_c, weight of the compactness loss (eq. 8, 10); none = the task's (0.1 pred, 0.01 recon).", NON_NEGATIVE
    )
    separateness: float | None = setting(
        None,
        "λ_s, weight of the separateness loss (eq. 8, 12); none = the task's (0.1 pred, 0.01 recon).",
        NON_NEGATIVE,
    )
    separateness_margin: float = setting(1.0, "Triplet margin of the separateness loss.", POSITIVE)
    uniform_memory: float = setting(0.0, "Weight of the study's uniform-memory supervision (0 = off).", NON_NEGATIVE)
    kmeans_init_steps: int = setting(
        0,
        "Collapse remedy: the items become the k-means centres of the queries of the first k training steps (0 = off).",
        NON_NEGATIVE,
    )
    reseed_after_steps: int = setting(
        0,
        "Collapse remedy: an item nearest to no query for k training steps in a row is re-seeded from a random query "
        "(0 = off).",
        NON_NEGATIVE,
    )
    diversity: float = setting(
        0.0,
        "Collapse remedy: weight of the diversity loss, the negative entropy of the mean soft assignment (0 = off).",
        NON_NEGATIVE,
    )

    def check(self) -> None:
        """Resolve the task's defaults, so that a run's identity holds the values its network uses."""
        resolved = {"skips": self.task == "pred"} if self.skips is None else {}
        for name in ("compactness", "separateness"):
            if getattr(self, name) is None:
                resolved[name] = FEATURE_LOSS_WEIGHT[self.task]
        for name, value in resolved.items():
            object.__setattr__(self, name, value)


@dataclass(frozen=True)
class MNADEvalSettings(Validated):
    """MNAD's evaluation settings, the config section [eval.mnad]: its score (eq. 16) and its
    test-time memory update. Runs that differ only here share their checkpoints."""

    prefix: ClassVar[str] = "eval.mnad."
    lambda_score: float = setting(0.6, "λ, weight of PSNR vs feature distance in the score (eq. 16).", UNIT)
    gamma: float = setting(0.01, "γ, test-time update threshold on the weighted regular score (eq. 6-7).", NON_NEGATIVE)
    test_time_update: bool = setting(True, "Update the memory items during testing (frames scoring below γ).")
    reset_memory_per_video: bool = setting(False, "Restart each test video from the trained items (reference: false).")
    gamma_quantile: float | None = setting(
        None,
        "γ from the training frames' regular scores at this quantile instead of eval.mnad.gamma (none = off).",
        UNIT,
    )
    read_ablation: bool = setting(
        False,
        "At the last epoch, evaluate again with the memory read replaced by zeros, its mean and a read from "
        "shuffled items (no test-time update): the PSNR and AUC changes say whether the read matters.",
    )


MEMORY_FIELDS = (
    "num_items",
    "item_init",
    "update_normaliser",
    "compactness",
    "separateness",
    "separateness_margin",
    "uniform_memory",
    "kmeans_init_steps",
    "reseed_after_steps",
    "diversity",
)  # read only with memory=true


class MNADSignals(NamedTuple):
    """MNAD's per-frame signals (docs/method.md#scoring-and-evaluation): tensors (b,) during evaluation, arrays (f,)
    once saved."""

    psnr: Any  # dB of the output against the target on the [0, 1] scale (eq. 13)
    regular: Any  # weighted regular score of eqs. 6-7: the test-time update gate
    distance: Any = None  # with memory: mean (q - nearest item)^2, items before this frame's update (eq. 14)

    def score(self, video_ids: np.ndarray, lam: float) -> np.ndarray:
        """(f,) anomaly score 1 - (λ g(PSNR) + (1 - λ)(1 - g(distance))), min-max g per video (eq. 16)."""
        return anomaly_score(self.psnr, self.distance, video_ids, lam)

    def terms(self, lam: float) -> tuple[tuple[str, float, int], ...]:
        """Eq. 16's signals as (field, weight, sign): λ on PSNR, which falls on anomalies, and 1 - λ on the
        distance, which rises (1 - g(x) = g(-x) under min-max, so the score is λ g(-PSNR) + (1 - λ) g(distance))."""
        if self.distance is None or lam == 1:
            return (("psnr", 1.0, -1),)
        return (("psnr", lam, -1), ("distance", 1 - lam, 1))

    def lambdas(self, grid: tuple[float, ...]) -> tuple[float, ...]:
        """The λ values that mean something: without memory (no distance) only λ = 1."""
        return tuple(grid) if self.distance is not None else (1.0,)

    def default_lambda(self, lam: float) -> float:
        return lam if self.distance is not None else 1.0


# `repro ablate` options of MNAD: each sets its key in the variant only.


class MNADMethod(Method):
    name = "mnad"
    help = "MNAD (Park et al. 2020): prediction or reconstruction, with or without memory and skips."
    Settings = MNADSettings
    EvalSettings = MNADEvalSettings
    Signals = MNADSignals
    profile_tables = {"task": ("model.mnad.task", TASKS)}
    channels_last = True
    channels_last_inputs = True
    variant_flags = MNAD_VARIANT_FLAGS

    def build(self, settings: MNADSettings, channels: int, size: int) -> MNAD:
        return MNAD(channels=channels, **asdict(settings))

    def validate(self, settings: MNADSettings, size: int) -> None:
        if size % 8:
            raise ValueError(
                f"data.size={size}: MNAD pools three times, so the frame size must be a multiple of 8 "
                f"(e.g. {max(8, size // 8 * 8)} or {size // 8 * 8 + 8})"
            )

    def reads(self, settings: MNADSettings) -> tuple[str, ...]:
        read = super().reads(settings)
        return read if settings.memory else tuple(name for name in read if name not in MEMORY_FIELDS)

    def reads_eval(self, settings: MNADSettings) -> tuple[str, ...]:
        if not settings.memory:  # PSNR alone: no λ, no distance, no test-time update
            return ("batch_size",)
        return (
            "lambda_score",
            "gamma",
            "gamma_quantile",
            "test_time_update",
            "reset_memory_per_video",
            "lambda_grid",
            "batch_size",
            "read_ablation",
        )

    def without_memory(self, settings: MNADSettings) -> tuple[str, ...]:
        return ("model.mnad.memory=false",)

    def describe(self, settings: MNADSettings) -> str:
        return f"mnad ({settings.task}, {'with' if settings.memory else 'without'} memory)"

    def layout(self, settings: MNADSettings) -> ClipLayout:
        return ClipLayout(PRED_IN_FRAMES, True, PRED_IN_FRAMES) if settings.task == "pred" else ClipLayout(1, False, 0)

    def to_input(self, clips: Tensor) -> Tensor:
        return rearrange(clips, "b t c h w -> b (t c) h w")  # frames stacked on channels, oldest first

    to_target = to_input  # the target clip takes the same layout as the output

    def scored_frame(self, output: Tensor) -> Tensor:
        return output

    def state_memory(self, model: MNAD) -> Memory | None:
        return model.memory

    def frame_signals(self, model: MNAD, result: ModelOutput, target: Tensor) -> MNADSignals:
        distance = None
        if model.memory is not None:
            distance = feature_distance(result.queries, model.memory.items, frames=target.shape[0])
        return MNADSignals(psnr(frame_mse(result.output, target)), regular_score(result.output, target), distance)

    def evaluate_checkpoint(
        self, model: MNAD, score: Scorer, training: Any, testing: Any, evaluation: MNADEvalSettings, last: bool
    ) -> dict[str, np.ndarray]:
        """The test set with the test-time update as configured, γ from the training frames where
        eval.mnad.gamma_quantile asks (recorded as "gamma" with memory), and at the last epoch the read ablation
        where eval.mnad.read_ablation asks (recorded as "read_ablation", (fills, 2))."""
        gamma = self._gamma(score, training, evaluation)
        signals = score(
            testing,
            test_time_update=evaluation.test_time_update,
            gamma=gamma,
            reset_memory_per_video=evaluation.reset_memory_per_video,
        )
        if "item_counts" in signals:
            signals["gamma"] = np.asarray([gamma])
        if evaluation.read_ablation and last and model.memory is not None:
            changes = read_ablation.read_ablation(model, score, testing, self.Signals, evaluation.lambda_score)
            signals["read_ablation"] = read_ablation.as_array(changes)
        return signals

    @staticmethod
    def _gamma(score: Scorer, training: Any, evaluation: MNADEvalSettings) -> float:
        """eval.mnad.gamma, or with eval.mnad.gamma_quantile that quantile of the training frames' regular scores
        (the model as trained, no test-time update)."""
        if evaluation.gamma_quantile is None:
            return evaluation.gamma
        return gamma_from_quantile(score(training)["regular"], evaluation.gamma_quantile)

    def score_lambda(self, evaluation: MNADEvalSettings) -> float:
        return evaluation.lambda_score

    def update_threshold(self, evaluation: MNADEvalSettings) -> float:
        return evaluation.gamma

    def update_memory(self, model: MNAD, result: ModelOutput, signals: MNADSignals, gamma: float) -> None:
        """Eq. 3-5 with this frame's queries when its regular score is below γ; decided on the device."""
        model.memory.update(result.queries, accept=signals.regular[0] < gamma)

    def diagnostics(
        self, signals: MNADSignals, arrays: dict[str, np.ndarray], evaluation: MNADEvalSettings
    ) -> dict[str, Any]:
        """γ as used, the share of test frames that updated the memory (regular score below γ; 0 without the
        update), the AUC of the feature distance alone as the score (λ = 0), the number of videos whose distance
        is constant (the study's NaN scores on ShanghaiTech) and the read ablation's changes where it ran."""
        if signals.distance is None:
            return {}
        gamma = float(arrays["gamma"][0]) if "gamma" in arrays else evaluation.gamma
        updated = np.asarray(signals.regular) < gamma if evaluation.test_time_update else np.zeros(0, bool)
        ablation = (
            {"read_ablation": read_ablation.from_array(arrays["read_ablation"])} if "read_ablation" in arrays else {}
        )
        return {
            "gamma": gamma,
            "updated_frame_share": float(updated.mean()) if updated.size else 0.0,
            "distance_auc": frame_metrics(signals, arrays["label"], arrays["video"], 0.0).auc,
            "constant_distance_videos": constant_signal_videos(signals.distance, arrays["video"]),
            **ablation,
        }

    def probe_point(self, model: MNAD) -> nn.Module:
        return model.encoder
