"""The method protocol: everything particular to a method lives in its `Method`, so that training, evaluation,
scoring, the probe and the benchmark are written once and never ask which method they hold.

A method declares its settings dataclass (its own config section, `[model.<name>]`) and, optionally, its
evaluation settings (`[eval.<name>]`), builds its network from those settings, says which clip window it eats
and which frame it scores, turns a forward pass into a typed per-frame `Signals` record, scores that record,
and states its execution preferences. Optional hooks, each defaulting to what MNAD, MemAE and the baselines
do: its optimiser, its training step (an inner loop), its evaluation of a checkpoint, and test-time
adaptation by gradient per test video. Registering one is a file with a `Method` subclass plus one line in
`repro/models/registry.py`, or, outside the package, `REPRO_METHODS="pkg.module:Class"` (docs/methods.md).

Glossary: b batch, t frames, c channels, h w space, n queries, m memory items, f scored frames.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, fields
from typing import Any, ClassVar, NamedTuple, Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..precision import autocast
from ..scoring import minmax_per_video
from .output import ModelOutput
from .variant_flags import VariantFlag

ADAM_BETAS = (0.9, 0.999)


@runtime_checkable
class MemoryItems(Protocol):
    """What the generic code uses of a method's memory (`Method.state_memory`): the items, a scratch block that
    undoes test-time changes to them, and the hook that gathers every process's queries before an update."""

    items: Tensor  # (m, d)
    gather: Callable[[Tensor], Tensor] | None  # None on one process; set by distributed training

    def scratch(self) -> AbstractContextManager[None]: ...


class Scorer(Protocol):
    """Evaluates the loaded model on a clip dataset: `evaluate.evaluate_model` with the run's batch size,
    precision and device bound; keywords: test_time_update, gamma, reset_memory_per_video."""

    def __call__(self, dataset: Any, **options: Any) -> dict[str, np.ndarray]: ...


@dataclass(frozen=True)
class ClipLayout:
    """Which window of frames one sample holds and which frame it scores (docs/method.md#scoring-and-evaluation,
    #baselines)."""

    in_frames: int  # frames fed to the model
    predict: bool  # True: the target is the next frame; False: the (clean) input window itself
    scored_offset: int  # the scored frame's position from the window start


class ErrorSignals(NamedTuple):
    """Per-frame signals of a reconstruction baseline (MemAE, AE, ConvLSTM-AE): one error per scored frame.

    Fields hold tensors (b,) during evaluation and arrays (f,) once saved; `score` takes either.
    """

    error: Any  # the method's reconstruction error of the scored frame; higher = more anomalous

    def score(self, video_ids: np.ndarray, lam: float = 1.0) -> np.ndarray:
        """(f,) anomaly score: the error min-max normalised per video (no λ: the error is the only signal)."""
        return minmax_per_video(self.error, video_ids)

    def terms(self, lam: float = 1.0) -> tuple[tuple[str, float, int], ...]:
        """The score's signals as (field, weight, sign): the error alone, rising on anomalies (repro.calibration)."""
        return (("error", 1.0, 1),)

    def lambdas(self, grid: tuple[float, ...]) -> tuple[float, ...]:
        return (1.0,)

    def default_lambda(self, lam: float) -> float:
        return 1.0


def signals_from_arrays(signals_type: type, arrays: dict[str, np.ndarray]) -> Any:
    """A saved signals file (its fields by name) -> the method's typed record; absent optional fields are None."""
    return signals_type(**{name: arrays[name] for name in signals_type._fields if name in arrays})


def signals_to_arrays(signals: NamedTuple) -> dict[str, Any]:
    """The record's fields by name, leaving out those a configuration does not produce (None)."""
    return {name: value for name, value in signals._asdict().items() if value is not None}


class Method:
    """The defaults every method shares; a method overrides what is particular to it."""

    name: ClassVar[str]
    help: ClassVar[str]  # one line for --help
    Settings: ClassVar[type]  # its frozen settings dataclass, the config section [model.<name>]
    EvalSettings: ClassVar[type | None] = None  # its evaluation settings, the section [eval.<name>], if any
    Signals: ClassVar[type] = ErrorSignals  # its typed per-frame record
    # Profile tables it declares: {kind: (dotted key, allowed values)}, e.g. MNAD's {"task": ("model.mnad.task",
    # TASKS)}: a profile's [task.recon.train] applies when model.mnad.task = recon (repro.config.load_config).
    profile_tables: ClassVar[dict[str, tuple[str, tuple[str, ...]]]] = {}
    # True: evaluation goes video by video and calls `adapt_to_video` before scoring each test video.
    adapts_at_test_time: ClassVar[bool] = False
    # Execution preferences. channels_last: on the CPU, evaluate with channels-last 2-D convolutions (about 15%
    # faster for MNAD at 256x256; training keeps the default layout, which is faster there);
    # channels_last_inputs: also lay the input batch out channels-last (4-D inputs only).
    channels_last: ClassVar[bool] = False
    channels_last_inputs: ClassVar[bool] = False

    # ----------------------------------------------------------------------------- settings and network
    def build(self, settings: Any, channels: int, size: int) -> nn.Module:
        raise NotImplementedError

    def validate(self, settings: Any, size: int) -> None:
        """Refuse, before any work, a frame size the network cannot take (raise ValueError naming the key)."""

    def reads(self, settings: Any) -> tuple[str, ...]:
        """The fields of its settings that the network reads under these settings (the run's identity)."""
        return tuple(f.name for f in fields(settings))

    def reads_eval(self, settings: Any) -> tuple[str, ...]:
        """The fields of [eval] and of its own [eval.<name>] that change its scores (the rest are refused as
        overrides, left out of the hash)."""
        return ("batch_size",)

    # Its `repro ablate` options: each sets one config key in the variant only (the CLI builds them from this).
    variant_flags: ClassVar[tuple[VariantFlag, ...]] = ()

    def without_memory(self, settings: Any) -> tuple[str, ...]:
        """The overrides that give the same method without its memory (`repro ablate --no-memory`)."""
        raise ValueError(f"{self.name} has no memory to remove (--no-memory is for mnad and memae)")

    def describe(self, settings: Any) -> str:
        """How the configuration reads in a message, e.g. "mnad (pred, without memory)"."""
        return self.name

    # ------------------------------------------------------------------------------------- clips
    def layout(self, settings: Any) -> ClipLayout:
        raise NotImplementedError

    def to_input(self, clips: Tensor) -> Tensor:
        """(b, t, c, h, w) clips from the data layer -> the network's input layout."""
        return clips

    def to_target(self, clips: Tensor) -> Tensor:
        """(b, t', c, h, w) targets from the data layer -> the layout of the network's output."""
        return clips

    def scored_frame(self, output: Tensor) -> Tensor:
        """The network's output (or target) layout -> (b, c, h, w), the frame a sample scores."""
        raise NotImplementedError

    # ----------------------------------------------------------------------------------- training
    def optimizer(self, model: nn.Module, settings: Any, lr: float) -> torch.optim.Optimizer:
        """The optimiser of its network (train.lr given); its state is saved with every checkpoint."""
        return torch.optim.Adam(model.parameters(), lr=lr, betas=ADAM_BETAS)

    def train_step(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        inputs: Tensor,
        target: Tensor,
        precision: str = "fp32",
        scaler: torch.amp.GradScaler | None = None,
        observe: Callable[[ModelOutput], None] | None = None,
        settings: Any = None,
    ) -> dict[str, Tensor]:
        """One optimisation step on one batch (for MNAD eq. 8: L_rec + λ_c L_c + λ_s L_s); a method may run an
        inner loop here, reading its `settings` (the run's [model.<name>] section).

        Returns the detached terms (each term, total) without a host sync. `scaler` scales the loss for fp16 (a
        disabled or absent scaler is a plain backward and step); `observe` sees the forward's result (the
        epoch's memory tally).
        """
        model.train()
        with autocast(inputs.device, precision):
            result = model(inputs)
        if observe is not None:
            observe(result)
        terms = self.training_losses(result, target)
        total = sum(terms.values())
        optimizer.zero_grad(set_to_none=True)
        if scaler is None:
            total.backward()
            optimizer.step()
        else:
            scaler.scale(total).backward()
            scaler.step(optimizer)
            scaler.update()
        return {name: value.detach() for name, value in (terms | {"total": total}).items()}

    def training_losses(self, result: ModelOutput, target: Tensor) -> dict[str, Tensor]:
        """The terms of the training loss: the pixel MSE and the network's own weighted terms."""
        return {"pixel": F.mse_loss(result.output.float(), target)} | result.losses

    def state_memory(self, model: nn.Module) -> MemoryItems | None:
        """Memory items that are state, updated outside the optimiser (MNAD), or None (MemAE trains its items).

        Such a memory stays eager under torch.compile, is synchronised across torchrun processes, and is what
        the test-time update changes.
        """
        return None

    def eager_parts(self, model: nn.Module) -> list[nn.Module]:
        """Children that torch.compile must leave alone (their forward reassigns state)."""
        memory = getattr(model, "memory", None)
        return [memory] if memory is not None else []

    # --------------------------------------------------------------------------------- evaluation
    def evaluate_checkpoint(
        self, model: nn.Module, score: Scorer, training: Any, testing: Any, evaluation: Any, last: bool
    ) -> dict[str, np.ndarray]:
        """The raw signals of one loaded checkpoint (saved as signals/epoch_<k>.npz): by default the test set
        scored once. `evaluation` is its [eval.<name>] section (None without one); `last`: the run's final
        epoch. A method adds its own evaluations here (MNAD: γ from the training frames, the read ablation)."""
        return score(testing)

    def adapt_to_video(self, model: nn.Module, clips: Iterable[tuple[Tensor, Tensor]], evaluation: Any) -> None:
        """Test-time adaptation (with `adapts_at_test_time`): called with gradients enabled before a test video
        is scored, with its (inputs, target) batches in the network's layout; may take gradient steps on the
        model. Each video starts from the trained weights, which are restored after the evaluation."""

    def score_lambda(self, evaluation: Any) -> float:
        """The λ of its default score under its [eval.<name>] settings (1: the error is the only signal)."""
        return 1.0

    def update_threshold(self, evaluation: Any) -> float:
        """The threshold its test-time memory update takes under its [eval.<name>] settings (`update_memory`)."""
        raise NotImplementedError(f"{self.name} has no test-time memory update")

    def frame_signals(self, model: nn.Module, result: ModelOutput, target: Tensor) -> Any:
        """The typed per-frame record (tensors (b,)) of one forward pass against its target."""
        raise NotImplementedError

    def update_memory(self, model: nn.Module, result: ModelOutput, signals: Any, gamma: float) -> None:
        """The test-time memory update after one frame (methods with a `state_memory` only)."""
        raise NotImplementedError(f"{self.name} has no test-time memory update")

    def diagnostics(self, signals: Any, arrays: dict[str, np.ndarray], evaluation: Any) -> dict[str, Any]:
        """Memory statistics that only this method's signals give (merged into metrics.json's "memory");
        `arrays` holds one checkpoint's saved signals ("label" and "video" (f,) too), `evaluation` its
        [eval.<name>] section."""
        return {}

    def probe_point(self, model: nn.Module) -> nn.Module:
        """The encoder whose (features, skips) output the skip probe replaces."""
        raise ValueError(f"the skip probe replaces an encoder's bottleneck and skips; {self.name} has none (use mnad)")
