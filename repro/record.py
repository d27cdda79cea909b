"""A run's record, typed: metrics.json (what repro.pipeline.run_metrics scores from the saved signals, with the
run's timings and provenance) and probe.json (the skip probe's rows, repro.probe).

Pure data: parsed from and turned back into the JSON that repro.runs writes and reads (its one writer and one
reader of each file); no file, model or torch here. `to_json(from_json(data)) == data` for every document that
`from_json` accepts: numbers keep their JSON type and a key the schema does not know is refused, never dropped.
"""

from __future__ import annotations

import reprlib
from dataclasses import dataclass, fields
from typing import Any


class RecordError(ValueError):
    """JSON of the wrong shape; the message names the key (a dotted path) and what it should hold."""


# ------------------------------------------------------------------------------------------ checking
def _object(value: Any, where: str, required: tuple[str, ...] = (), optional: tuple[str, ...] | None = None) -> dict:
    """`value` as an object with the `required` keys, and no key outside `required` + `optional` (when given)."""
    if not isinstance(value, dict):
        raise RecordError(f"{where or 'the document'}: expected an object, got {type(value).__name__}")
    prefix = f"{where}." if where else ""
    missing = [key for key in required if key not in value]
    if missing:
        raise RecordError(f"missing key {prefix}{missing[0]}")
    unknown = [] if optional is None else sorted(set(value) - {*required, *optional})
    if unknown:
        raise RecordError(f"unexpected key {prefix}{unknown[0]}")
    return value


def _number(value: Any, where: str) -> float:
    """A JSON number as written (an int stays an int, so that it is written back the same)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RecordError(f"{where}: expected a number, got {reprlib.repr(value)}")
    return value


def _integer(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RecordError(f"{where}: expected an integer, got {reprlib.repr(value)}")
    return value


def _numbers(value: Any, where: str) -> dict[str, float]:
    """An object of numbers (per-type AUCs, memory diagnostics)."""
    return {key: _number(v, f"{where}.{key}") for key, v in _object(value, where).items()}


# --------------------------------------------------------------------------------------------- metrics
@dataclass(frozen=True)
class Scores:
    """Frame-level scores at one epoch and λ (the fields of repro.scoring.FrameMetrics)."""

    auc: float  # micro AUC with per-video min-max: the literature's number
    raw_auc: float  # scores normalised over the whole set
    macro_auc: float  # mean of per-video AUCs over the videos that hold both classes
    aupr: float
    eer: float
    macro_auc_padded: float | None = None  # the literature's macro AUC (every video, one-class ones padded); None
    # in a record written before it was recorded

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str) -> Scores:
        return cls(
            **{name: _number(data[name], f"{where}.{name}") for name in (*SCORES, *LATER_SCORES) if name in data}
        )

    def to_json(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


LATER_SCORES = ("macro_auc_padded",)  # scores that records written before they were recorded lack
SCORES = tuple(f.name for f in fields(Scores) if f.name not in LATER_SCORES)


@dataclass(frozen=True)
class ReadChange:
    """What replacing the memory read by one fill did to the test frames (MNAD's read ablation)."""

    psnr_change: float  # dB
    auc_change: float

    @classmethod
    def from_json(cls, value: Any, where: str) -> ReadChange:
        data = _object(value, where, ("psnr_change", "auc_change"), ())
        return cls(
            _number(data["psnr_change"], f"{where}.psnr_change"), _number(data["auc_change"], f"{where}.auc_change")
        )

    def to_json(self) -> dict[str, float]:
        return {"psnr_change": self.psnr_change, "auc_change": self.auc_change}


@dataclass(frozen=True)
class Memory:
    """Memory use at test: nearest-item counts, the diagnostics (perplexity, frame_perplexity, active_fraction,
    largest_share, ... and the method's own, e.g. MNAD's gamma, updated_frame_share, distance_auc), and the read
    ablation where one was asked for."""

    counts: tuple[int, ...]  # (m,) test queries per nearest item
    diagnostics: dict[str, float]
    read_ablation: dict[str, ReadChange] | None = None  # fill -> change

    @classmethod
    def from_json(cls, value: Any, where: str) -> Memory:
        data = _object(value, where, ("counts",))
        if not isinstance(data["counts"], list):
            raise RecordError(f"{where}.counts: expected a list of integers, got {reprlib.repr(data['counts'])}")
        ablation = data.get("read_ablation")
        return cls(
            counts=tuple(_integer(c, f"{where}.counts[{i}]") for i, c in enumerate(data["counts"])),
            diagnostics=_numbers({k: v for k, v in data.items() if k not in ("counts", "read_ablation")}, where),
            read_ablation=None
            if ablation is None
            else {
                fill: ReadChange.from_json(change, f"{where}.read_ablation.{fill}")
                for fill, change in _object(ablation, f"{where}.read_ablation").items()
            },
        )

    def to_json(self) -> dict[str, Any]:
        ablation = self.read_ablation
        read = {} if ablation is None else {"read_ablation": {fill: c.to_json() for fill, c in ablation.items()}}
        return {"counts": list(self.counts), **self.diagnostics, **read}


def _extras(data: dict[str, Any], where: str) -> dict[str, Any]:
    """The optional per-type AUCs (synthetic data) and memory use (models with a memory) of an epoch."""
    per_type = data.get("per_type")
    memory = data.get("memory")
    return {
        "per_type": None if per_type is None else _numbers(per_type, f"{where}.per_type"),
        "memory": None if memory is None else Memory.from_json(memory, f"{where}.memory"),
    }


def _extras_json(per_type: dict[str, float] | None, memory: Memory | None) -> dict[str, Any]:
    return ({} if per_type is None else {"per_type": per_type}) | (
        {} if memory is None else {"memory": memory.to_json()}
    )


@dataclass(frozen=True)
class Deployable:
    """The deployable score (repro.calibration) on the test set: its AUC, and at the run's stored threshold the
    share of anomalous frames flagged and of normal frames flagged."""

    auc: float
    detection_rate: float
    false_alarm_rate: float
    threshold: float

    @classmethod
    def from_json(cls, value: Any, where: str) -> Deployable:
        data = _object(value, where, tuple(f.name for f in fields(cls)), ())
        return cls(**{f.name: _number(data[f.name], f"{where}.{f.name}") for f in fields(cls)})

    def to_json(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class Selection:
    """A chosen epoch and λ with its scores: the honest default (last epoch, the profile's λ; with per-type AUCs
    and memory use) or the oracle (epoch and λ chosen on the test set)."""

    epoch: int
    lam: float  # "lambda" in the file
    scores: Scores
    per_type: dict[str, float] | None = None  # anomaly type -> AUC
    memory: Memory | None = None
    deployable: Deployable | None = None  # the default's, where the run is calibrated

    @classmethod
    def from_json(cls, value: Any, where: str) -> Selection:
        data = _object(value, where, ("epoch", "lambda", *SCORES), ("per_type", "memory", "deployable", *LATER_SCORES))
        return cls(
            epoch=_integer(data["epoch"], f"{where}.epoch"),
            lam=_number(data["lambda"], f"{where}.lambda"),
            scores=Scores.from_json(data, where),
            **_extras(data, where),
            deployable=None
            if data.get("deployable") is None
            else Deployable.from_json(data["deployable"], f"{where}.deployable"),
        )

    def to_json(self) -> dict[str, Any]:
        selected = {"epoch": self.epoch, "lambda": self.lam, **self.scores.to_json()}
        deployable = {} if self.deployable is None else {"deployable": self.deployable.to_json()}
        return selected | _extras_json(self.per_type, self.memory) | deployable


@dataclass(frozen=True)
class EpochResult:
    """One evaluated checkpoint: scores per λ, and its per-type AUCs and memory use at the profile's λ."""

    lambdas: dict[str, Scores]  # λ as written (f"{λ:g}") -> scores
    per_type: dict[str, float] | None = None
    memory: Memory | None = None

    @classmethod
    def from_json(cls, value: Any, where: str) -> EpochResult:
        data = _object(value, where, ("lambdas",), ("per_type", "memory"))
        lambdas = _object(data["lambdas"], f"{where}.lambdas")
        return cls(
            lambdas={
                lam: Scores.from_json(
                    _object(s, f"{where}.lambdas.{lam}", SCORES, LATER_SCORES), f"{where}.lambdas.{lam}"
                )
                for lam, s in lambdas.items()
            },
            **_extras(data, where),
        )

    def to_json(self) -> dict[str, Any]:
        lambdas = {lam: scores.to_json() for lam, scores in self.lambdas.items()}
        return {"lambdas": lambdas} | _extras_json(self.per_type, self.memory)


@dataclass(frozen=True)
class Timings:
    train_seconds: float
    evaluate_seconds: float

    @classmethod
    def from_json(cls, value: Any, where: str) -> Timings:
        data = _object(value, where, ("train_seconds", "evaluate_seconds"), ())
        return cls(
            _number(data["train_seconds"], f"{where}.train_seconds"),
            _number(data["evaluate_seconds"], f"{where}.evaluate_seconds"),
        )

    def to_json(self) -> dict[str, float]:
        return {"train_seconds": self.train_seconds, "evaluate_seconds": self.evaluate_seconds}


def _epoch(key: str, where: str) -> int:
    """An epoch key of "epochs": an integer written plainly ("3", never "03")."""
    if not key.isdigit() or str(int(key)) != key:
        raise RecordError(f'{where}.{key}: an epoch key must be an integer such as "3"')
    return int(key)


@dataclass(frozen=True)
class RunMetrics:
    """metrics.json: the default and oracle selections, every evaluated epoch, timings and provenance."""

    default: Selection
    oracle: Selection
    epochs: dict[int, EpochResult]
    timings: Timings
    provenance: dict[str, Any]  # "record" in the file: git commit, versions, host, device (repro.runs.run_record)

    @classmethod
    def from_json(cls, value: Any) -> RunMetrics:
        data = _object(value, "", ("default", "oracle", "epochs", "timings", "record"), ())
        return cls(
            default=Selection.from_json(data["default"], "default"),
            oracle=Selection.from_json(data["oracle"], "oracle"),
            epochs={
                _epoch(key, "epochs"): EpochResult.from_json(epoch, f"epochs.{key}")
                for key, epoch in _object(data["epochs"], "epochs").items()
            },
            timings=Timings.from_json(data["timings"], "timings"),
            provenance=_object(data["record"], "record"),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "default": self.default.to_json(),
            "oracle": self.oracle.to_json(),
            "epochs": {str(epoch): result.to_json() for epoch, result in self.epochs.items()},
            "timings": self.timings.to_json(),
            "record": self.provenance,
        }


# ------------------------------------------------------------------------------------------ calibration
@dataclass(frozen=True)
class ScoreTerm:
    """One signal of a deployable score: `weight` x (sign x signal - low) / (high - low), where low and high are the
    calibration frames' range of sign x signal (sign -1: a signal that falls on anomalies, e.g. PSNR)."""

    field: str  # the signal's name in the method's Signals record
    weight: float
    sign: int  # +1 or -1
    low: float
    high: float

    @classmethod
    def from_json(cls, value: Any, where: str) -> ScoreTerm:
        data = _object(value, where, ("field", "weight", "sign", "low", "high"), ())
        if not isinstance(data["field"], str):
            raise RecordError(f"{where}.field: expected a signal name, got {reprlib.repr(data['field'])}")
        sign = _integer(data["sign"], f"{where}.sign")
        if sign not in (1, -1):
            raise RecordError(f"{where}.sign: expected 1 or -1, got {sign}")
        weight, low, high = (_number(data[key], f"{where}.{key}") for key in ("weight", "low", "high"))
        return cls(data["field"], weight, sign, low, high)

    def to_json(self) -> dict[str, Any]:
        return {"field": self.field, "weight": self.weight, "sign": self.sign, "low": self.low, "high": self.high}


@dataclass(frozen=True)
class Calibration:
    """calibration.json: a run's deployable score, calibrated on normal frames (never on the video scored): each
    signal's range on those frames, the threshold that flags `false_alarm_rate` of them, and how the frames
    were scored (the method's evaluation options, e.g. MNAD's test-time update and its γ)."""

    epoch: int  # the checkpoint calibrated
    lam: float  # "lambda" in the file: the score's λ
    terms: tuple[ScoreTerm, ...]
    threshold: float  # a frame whose deployable score exceeds it is flagged
    false_alarm_rate: float  # declared: the share of calibration frames above the threshold
    frames: int  # calibration frames
    source: str  # what the frames were, in words (the training split, or a folder of normal footage)
    options: dict[str, Any]  # the keywords the method scores a test set with (repro.models.method.Scorer)

    @classmethod
    def from_json(cls, value: Any) -> Calibration:
        keys = ("epoch", "lambda", "terms", "threshold", "false_alarm_rate", "frames", "source", "options")
        data = _object(value, "", keys, ())
        if not isinstance(data["terms"], list) or not data["terms"]:
            raise RecordError(f"terms: expected a non-empty list of objects, got {reprlib.repr(data['terms'])}")
        if not isinstance(data["source"], str):
            raise RecordError(f"source: expected text, got {reprlib.repr(data['source'])}")
        return cls(
            epoch=_integer(data["epoch"], "epoch"),
            lam=_number(data["lambda"], "lambda"),
            terms=tuple(ScoreTerm.from_json(term, f"terms[{i}]") for i, term in enumerate(data["terms"])),
            threshold=_number(data["threshold"], "threshold"),
            false_alarm_rate=_number(data["false_alarm_rate"], "false_alarm_rate"),
            frames=_integer(data["frames"], "frames"),
            source=data["source"],
            options=_object(data["options"], "options"),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "lambda": self.lam,
            "terms": [term.to_json() for term in self.terms],
            "threshold": self.threshold,
            "false_alarm_rate": self.false_alarm_rate,
            "frames": self.frames,
            "source": self.source,
            "options": self.options,
        }


# ----------------------------------------------------------------------------------------------- probe
PROBE_NUMBERS = ("mean_abs_change", "psnr_original", "psnr_replaced", "psnr_change")


@dataclass(frozen=True)
class ProbeRecord:
    """probe.json: the skip probe of a run's checkpoint of `epoch` on `clips` test clips with noise of `seed`; one
    row per replaced part and fill (run, the method's telling settings, replaced, fill and PROBE_NUMBERS)."""

    epoch: int
    clips: int
    seed: int
    rows: tuple[dict[str, Any], ...]

    @classmethod
    def from_json(cls, value: Any) -> ProbeRecord:
        data = _object(value, "", ("epoch", "clips", "seed", "rows"), ())
        if not isinstance(data["rows"], list):
            raise RecordError(f"rows: expected a list of objects, got {reprlib.repr(data['rows'])}")
        for i, row in enumerate(data["rows"]):
            _object(row, f"rows[{i}]", ("run", "replaced", "fill", *PROBE_NUMBERS))
            for key in PROBE_NUMBERS:
                _number(row[key], f"rows[{i}].{key}")
        return cls(*(_integer(data[key], key) for key in ("epoch", "clips", "seed")), tuple(data["rows"]))

    def to_json(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "clips": self.clips, "seed": self.seed, "rows": list(self.rows)}
