"""The method protocol: everything particular to a method lives in its `Method`, so that training, evaluation,
scoring, the probe and the benchmark are written once and never ask which method they hold.

A method declares its settings dataclass (its own config section, `[model.<name>]`), builds its network from
those settings, says which clip window it eats and which frame it scores, turns a forward pass into a typed
per-frame `Signals` record, scores that record, and states its execution preferences. Registering one is a
file with a `Method` subclass plus one line in `repro/models/registry.py`.

Glossary: b batch, t frames, c channels, h w space, n queries, m memory items, f scored frames.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar, NamedTuple

import numpy as np
import torch.nn.functional as F
from torch import Tensor, nn

from ..scoring import minmax_per_video
from .output import ModelOutput


@dataclass(frozen=True)
class ClipLayout:
    """Which window of frames one sample holds and which frame it scores (SPEC sec. 5, 8)."""

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
    Signals: ClassVar[type] = ErrorSignals  # its typed per-frame record
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
        """The [eval] fields that change its scores (the rest are refused as overrides, left out of the hash)."""
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
    def training_losses(self, result: ModelOutput, target: Tensor) -> dict[str, Tensor]:
        """The terms of the training loss: the pixel MSE and the network's own weighted terms."""
        return {"pixel": F.mse_loss(result.output.float(), target)} | result.losses

    def state_memory(self, model: nn.Module) -> nn.Module | None:
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
    def frame_signals(self, model: nn.Module, result: ModelOutput, target: Tensor) -> Any:
        """The typed per-frame record (tensors (b,)) of one forward pass against its target."""
        raise NotImplementedError

    def update_memory(self, model: nn.Module, result: ModelOutput, signals: Any, gamma: float) -> None:
        """The test-time memory update after one frame (methods with a `state_memory` only)."""
        raise NotImplementedError(f"{self.name} has no test-time memory update")

    def diagnostics(
        self, signals: Any, arrays: dict[str, np.ndarray], gamma: float, test_time_update: bool
    ) -> dict[str, float]:
        """Memory statistics that only this method's signals give (merged into metrics.json's "memory");
        `arrays` holds the evaluation's "label" and "video" (f,) too."""
        return {}

    def probe_point(self, model: nn.Module) -> nn.Module:
        """The encoder whose (features, skips) output the skip probe replaces."""
        raise ValueError(f"the skip probe replaces an encoder's bottleneck and skips; {self.name} has none (use mnad)")


@dataclass(frozen=True)
class VariantFlag:
    """One `repro ablate` option that sets one config key in the variant only, declared as data by a method.

    A switch (`value` given) sets that value; any other option takes a value of `kind` (int, float, or a tuple
    of choices) within [low, high] (`low_open`, `high_open` exclude a bound); `bare` is its value when given
    without one. `per` names a config key whose value (in the variant) divides the given value: MemAE's
    threshold K/N per memory item. The variant's name gets `name` ("{value}" filled in)."""

    option: str  # without the dashes, e.g. "no-separateness"
    key: str  # e.g. "model.mnad.separateness"
    help: str
    value: Any = None
    kind: type | tuple[str, ...] = float
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    bare: Any = None
    per: str | None = None
    name: str = ""  # default: the option, and "-{value}" for an option that takes a value

    @property
    def switch(self) -> bool:
        return self.value is not None

    def name_part(self, value: Any) -> str:
        """The part of the variant's name this option gives, e.g. "kmeans-init-20"."""
        template = self.name or (self.option if self.switch else f"{self.option}-{{value}}")
        return template.format(value=f"{value:g}" if isinstance(value, float) else value)
