"""Every setting of a run, declared once: frozen, typed dataclasses with one-line help (SPEC sec. 4, 5, 7, 12).

The dataclass defaults are the paper's prediction setting (SPEC sec. 4); profiles in `ablations/profiles/`
override them, and dotted overrides (`loss.separateness=0`) override the profile. A profile may hold
task tables (`[task.recon.train]`) applied after its base sections when the resolved `model.task` matches,
and before the overrides. TOML has no null: the string "none" sets an optional field to None.

    cfg = load_config("paper", ["model.task=recon", "eval.lambda_grid=[0.5, 0.6]"])
    config_hash(cfg)  # '3f1c...': names the run's folder; [exec] is not part of it
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import json
import tomllib
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, NamedTuple, Union, get_args, get_origin, get_type_hints

import tomli_w

NONE = "none"  # how None is spelled in TOML files and overrides
DEFAULT_PROFILE = "synthetic"
PROFILES_DIR = Path(__file__).resolve().parent.parent / "ablations" / "profiles"
# How a run executes (device, threads, workers) does not change what it is; its precision does (numerics).
HASH_EXCLUDED = ("exec",)
HASH_KEPT_FROM_EXEC = ("precision",)


class ConfigError(ValueError):
    """A bad setting; the message names the key, what is allowed and what was given."""


class Interval(NamedTuple):
    """The allowed range of a number; None = unbounded on that side."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, value: float) -> bool:
        above = self.low is None or (value > self.low if self.low_open else value >= self.low)
        below = self.high is None or (value < self.high if self.high_open else value <= self.high)
        return above and below

    def __str__(self) -> str:
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        return f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"


UNIT = Interval(0, 1)
NON_NEGATIVE = Interval(0)
POSITIVE = Interval(0, low_open=True)
AT_LEAST_ONE = Interval(1)


def setting(default: Any, help: str, within: Interval | None = None) -> Any:
    """A dataclass field whose `help` (for --help) and allowed range live in its metadata."""
    return field(default=default, metadata={"help": help, "within": within})


def section(cls: type, help: str) -> Any:
    return field(default_factory=cls, metadata={"help": help, "within": None})


# ------------------------------------------------------------------------------------------ validation
def _kind(tp: Any) -> str:
    """How a type reads in an error message."""
    origin, args = get_origin(tp), get_args(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (Union, types.UnionType):
        return " or ".join(_kind(a) for a in args if a is not type(None)) + f" or {NONE!r}"
    if origin is tuple:
        return "a list of " + {float: "numbers", int: "integers", str: "strings"}[args[0]]
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(tp, str(tp))


def _wrong(key: str, tp: Any, value: Any) -> ConfigError:
    hint = ""
    if get_origin(tp) is Literal and isinstance(value, str):
        close = difflib.get_close_matches(value, [str(a) for a in get_args(tp)], n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ConfigError(f"{key} must be {_kind(tp)}; got {value!r} ({type(value).__name__}){hint}")


def _coerce(key: str, tp: Any, value: Any) -> Any:
    """`value` as type `tp` (ints widen to floats, lists become tuples, "none" is None), or a ConfigError."""
    origin, args = get_origin(tp), get_args(tp)
    if origin in (Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() == NONE):
            return None
        (inner,) = [a for a in args if a is not type(None)]
        try:
            return _coerce(key, inner, value)
        except ConfigError:
            raise _wrong(key, tp, value) from None
    if origin is Literal:
        if isinstance(value, str) and value in args:
            return value
    elif origin is tuple:
        if isinstance(value, (list, tuple)):
            return tuple(_coerce(f"{key}[{i}]", args[0], v) for i, v in enumerate(value))
    elif is_dataclass(tp):
        if isinstance(value, tp):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(value, tp):
        return value
    raise _wrong(key, tp, value)


def _check_within(key: str, value: Any, within: Interval | None) -> None:
    values = value if isinstance(value, tuple) else (value,)
    if within is not None and any(v is not None and v not in within for v in values):
        raise ConfigError(f"{key} must be {within}; got {value!r}")


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)


class _Validated:
    """Checks and normalises every field at construction (also after dataclasses.replace)."""

    prefix: ClassVar[str]

    def __post_init__(self) -> None:
        for f in fields(self):
            key = f"{self.prefix}{f.name}"
            value = _coerce(key, _hints(type(self))[f.name], getattr(self, f.name))
            _check_within(key, value, f.metadata.get("within"))
            object.__setattr__(self, f.name, value)


# ------------------------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class DataConfig(_Validated):
    prefix: ClassVar[str] = "data."
    name: Literal["synthetic", "ped2", "avenue", "shanghaitech"] = setting(
        "ped2", "Dataset: synthetic moving shapes (built in) or a published one (needs data.root).")
    preset: Literal["single", "busy", "scenes", "tiny", "cameras"] = setting(
        "single", "Synthetic world, standing in for ped2 (single), avenue (busy), shanghaitech (scenes; cameras, "
        "13 cameras at data.size=128, for the memory study); tiny for tests.")
    root: str | None = setting(
        None, "Folder holding <name>/training/frames and <name>/testing/frames; none = built-in synthetic cache.")
    labels: str | None = setting(None, "Explicit frame-label file (.npy); none = the dataset's own labels.")
    size: int = setting(256, "Frame side in pixels after resizing (paper 256, synthetic 64).", AT_LEAST_ONE)
    grayscale: bool = setting(False, "Read frames as one gray channel instead of colour.")
    salt_pepper: float = setting(
        0.0, "Fraction of input elements set to 0 or 1 (denoising study, SPEC sec. 7); targets stay clean.",
        Interval(0, 1, high_open=True))
    synth_seed: int = setting(0, "Seed of the synthetic world's generator (not of training).")


@dataclass(frozen=True)
class ModelConfig(_Validated):
    prefix: ClassVar[str] = "model."
    name: Literal["mnad", "memae", "ae3d", "convlstm"] = setting(
        "mnad", "Network: MNAD, MemAE, its memory-less 3D autoencoder (ae3d), or the ConvLSTM autoencoder.")
    task: Literal["pred", "recon"] = setting(
        "pred", "MNAD task: predict the 5th frame from 4 (pred) or reconstruct the input frame (recon).")
    memory: bool = setting(True, "Use the memory module (false = the 'w/o Mem.' network).")
    skips: bool | None = setting(None, "U-Net skip connections; none = the task's default.")
    width: int = setting(64, "Channels of the first encoder block (paper 64: 512-d features).", AT_LEAST_ONE)
    num_items: int = setting(10, "M, the number of MNAD memory items.", AT_LEAST_ONE)
    decoder: Literal["halving", "constant"] = setting(
        "halving", "Decoder widths per upsample: halving (the study) or constant (authors' later recon decoder).")
    item_init: Literal["uniform", "gaussian"] = setting(
        "uniform", "Item initialisation: uniform [0,1) rows (reference) or Gaussian, each L2-normalised.")
    update_normaliser: Literal["all", "assigned"] = setting(
        "all", "Eq. 5 max over all queries (reference code) or over the item's assigned queries (paper).")
    kmeans_init_steps: int = setting(
        0, "Collapse remedy: items set to the k-means centres of the queries of the first k training steps (0 = off).",
        NON_NEGATIVE)
    reseed_after_steps: int = setting(
        0, "Collapse remedy: an item unused for k training steps in a row is re-seeded from a random query (0 = off).",
        NON_NEGATIVE)
    diversity: float = setting(
        0.0, "Collapse remedy: weight of the diversity loss, the negative entropy of the mean soft assignment.",
        NON_NEGATIVE)
    memae_items: int = setting(2000, "MemAE memory size N.", AT_LEAST_ONE)
    memae_width: int = setting(96, "MemAE/AE channels of the first 3-D conv (96 = paper; use a multiple of 3).",
                               AT_LEAST_ONE)
    shrink_threshold: float = setting(0.0025, "MemAE hard-shrinkage threshold (0 = no shrinkage).",
                                      Interval(0, 1, high_open=True))
    addressing: Literal["dot", "cosine"] = setting(
        "dot", "MemAE addressing logits: dot product (official code) or cosine (paper).")


@dataclass(frozen=True)
class LossConfig(_Validated):
    prefix: ClassVar[str] = "loss."
    compactness: float = setting(0.1, "λ_c, weight of the feature compactness loss (eq. 8, 10).", NON_NEGATIVE)
    separateness: float = setting(0.1, "λ_s, weight of the feature separateness loss (eq. 8, 12).", NON_NEGATIVE)
    separateness_margin: float = setting(1.0, "Triplet margin of the separateness loss.", POSITIVE)
    uniform_memory: float = setting(0.0, "Weight of the study's uniform-memory supervision (0 = off).", NON_NEGATIVE)
    entropy: float = setting(0.0002, "MemAE weight of the addressing entropy loss.", NON_NEGATIVE)


@dataclass(frozen=True)
class TrainConfig(_Validated):
    prefix: ClassVar[str] = "train."
    epochs: int = setting(60, "Epochs; the cosine schedule spans them (T_max = epochs).", AT_LEAST_ONE)
    batch_size: int = setting(4, "Clips per training step.", AT_LEAST_ONE)
    lr: float = setting(2e-4, "Adam learning rate (paper: 2e-4 pred, 2e-5 recon).", POSITIVE)
    checkpoint_every: int = setting(5, "Save (and evaluate) a checkpoint every k epochs; the last is always saved.",
                                    AT_LEAST_ONE)
    shuffle: bool = setting(True, "Shuffle training clips each epoch (reference: true).")
    drop_last: bool = setting(True, "Drop the last incomplete batch (reference: true).")


def _grid(step: float = 0.05) -> tuple[float, ...]:
    return tuple(round(i * step, 10) for i in range(round(1 / step) + 1))


@dataclass(frozen=True)
class EvalConfig(_Validated):
    prefix: ClassVar[str] = "eval."
    lambda_score: float = setting(0.6, "λ, weight of PSNR vs feature distance in the score (eq. 16).", UNIT)
    gamma: float = setting(0.01, "γ, test-time update threshold on the weighted regular score (eq. 6-7).",
                           NON_NEGATIVE)
    test_time_update: bool = setting(True, "Update the memory items during testing (frames scoring below γ).")
    reset_memory_per_video: bool = setting(False, "Restart each test video from the trained items (reference: false).")
    lambda_grid: tuple[float, ...] = setting(_grid(), "λ values swept on saved signals for the study's selection.",
                                             UNIT)
    batch_size: int = setting(8, "Clips per evaluation batch when no test-time update forces batch 1.", AT_LEAST_ONE)
    gamma_quantile: float | None = setting(
        None, "γ from the training frames' regular scores at this quantile instead of eval.gamma (none = off).", UNIT)


@dataclass(frozen=True)
class ExecConfig(_Validated):
    prefix: ClassVar[str] = "exec."
    device: Literal["auto", "cpu", "cuda"] = setting("auto", "Device; auto = cuda when available.")
    precision: Literal["fp32", "bf16", "fp16"] = setting("fp32", "Arithmetic precision (autocast for bf16/fp16).")
    threads: int | None = setting(None, "torch CPU threads; none = torch's default.", AT_LEAST_ONE)
    num_workers: int = setting(0, "DataLoader worker processes.", NON_NEGATIVE)
    compile: bool = setting(False, "torch.compile the networks (the memory stays eager); a one-off compile cost.")


@dataclass(frozen=True)
class RunConfig(_Validated):
    prefix: ClassVar[str] = ""
    data: DataConfig = section(DataConfig, "Frames and clips.")
    model: ModelConfig = section(ModelConfig, "The network.")
    loss: LossConfig = section(LossConfig, "Loss weights (eq. 8).")
    train: TrainConfig = section(TrainConfig, "Optimisation and checkpoints.")
    eval: EvalConfig = section(EvalConfig, "Scoring and test-time memory.")
    exec: ExecConfig = section(ExecConfig, "How the run executes (not part of its hash).")
    seed: int = setting(0, "Seed of weights, items and data order.")


SECTIONS: dict[str, type] = {name: tp for name, tp in _hints(RunConfig).items() if is_dataclass(tp)}


# ----------------------------------------------------------------------------------- dicts and TOML
def _unknown(prefix: str, name: str, allowed: Sequence[str]) -> ConfigError:
    close = difflib.get_close_matches(name, allowed, n=1)
    hint = f" did you mean {prefix + close[0]!r}?" if close else ""
    return ConfigError(f"unknown key {prefix + name!r};{hint} allowed: {', '.join(allowed)}")


def _build(cls: type, data: Mapping[str, Any], prefix: str) -> Any:
    allowed = [f.name for f in fields(cls)]
    kwargs = {}
    for name, value in data.items():
        if name not in allowed:
            raise _unknown(prefix, name, allowed)
        tp = _hints(cls)[name]
        if is_dataclass(tp):
            if not isinstance(value, Mapping):
                raise ConfigError(f"{prefix}{name} must be a table of settings ([{name}]); got {value!r}")
            value = _build(tp, value, f"{prefix}{name}.")
        kwargs[name] = value
    return cls(**kwargs)


def from_dict(data: Mapping[str, Any]) -> RunConfig:
    """A validated RunConfig from nested sections; missing keys take their defaults."""
    return _build(RunConfig, data, "")


def to_dict(cfg: RunConfig) -> dict[str, Any]:
    """Nested plain values (tuples as lists, None kept); `from_dict(to_dict(cfg)) == cfg`."""

    def plain(obj: Any) -> Any:
        if is_dataclass(obj):
            return {f.name: plain(getattr(obj, f.name)) for f in fields(obj)}
        return list(obj) if isinstance(obj, tuple) else obj

    return plain(cfg)


def to_toml(cfg: RunConfig) -> str:
    """The resolved config as TOML (every key written, None as "none"); `load_config` reads it back equal."""

    def spell(obj: Any) -> Any:
        if isinstance(obj, dict):
            return {k: spell(v) for k, v in obj.items()}
        return NONE if obj is None else obj

    data = spell(to_dict(cfg))
    top = {k: v for k, v in data.items() if not isinstance(v, dict)}
    header = f"# repro run config (resolved). {NONE!r} = unset. Hash: {config_hash(cfg)}\n"
    return header + tomli_w.dumps(top | {k: v for k, v in data.items() if isinstance(v, dict)})


def config_hash(cfg: RunConfig) -> str:
    """12 hex digits of sha256 over canonical JSON of everything except [exec] (but its precision); names the
    run folder."""
    content = {k: v for k, v in to_dict(cfg).items() if k not in HASH_EXCLUDED}
    content |= {f"exec.{key}": getattr(cfg.exec, key) for key in HASH_KEPT_FROM_EXEC}
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def settings_help() -> dict[str, str]:
    """Dotted key -> its help, type, range and default; what --help shows for each setting."""
    out = {}
    for section_name, cls in [("", RunConfig), *((f"{n}.", c) for n, c in SECTIONS.items())]:
        for f in fields(cls):
            tp = _hints(cls)[f.name]
            if is_dataclass(tp):
                continue
            within = f"; {f.metadata['within']}" if f.metadata.get("within") else ""
            default = NONE if f.default is None else json.dumps(f.default)  # TOML spelling
            out[f"{section_name}{f.name}"] = f"{f.metadata['help']} ({_kind(tp)}{within}; default {default})"
    return out


# ------------------------------------------------------------------------------------------- loading
def resolve_profile(profile: Path | str) -> Path:
    """A profile name ("synthetic", "paper": ablations/profiles/<name>.toml) or a path to a TOML file."""
    text = str(profile)
    if isinstance(profile, Path) or "/" in text or "\\" in text or text.endswith(".toml"):
        path = Path(profile)
        if not path.is_file():
            raise ConfigError(f"profile file {path} not found; give a path to a TOML file or a profile name")
        return path
    if not PROFILES_DIR.is_dir():
        raise ConfigError(f"profile {text!r}: the profiles folder {PROFILES_DIR} is missing; install repro from "
                          f"its repository (pip install -e .) or pass a path to a profile TOML")  # fmt: skip
    available = sorted(p.stem for p in PROFILES_DIR.glob("*.toml"))
    if text not in available:
        close = difflib.get_close_matches(text, available, n=1)
        hint = f" did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown profile {text!r};{hint} available: {', '.join(available)} "
                          "(or a path to a TOML file)")
    return PROFILES_DIR / f"{text}.toml"


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path} is not valid TOML: {error}") from None


def _field_type(key: str) -> Any:
    """The declared type of a dotted key, or None when the key is unknown (reported later)."""
    cls, *rest = [RunConfig, *key.split(".")]
    for name in rest:
        tp = _hints(cls).get(name) if is_dataclass(cls) else None
        if tp is None:
            return None
        cls = tp
    return cls


def _wants_text(tp: Any) -> bool:
    args = [a for a in get_args(tp) if a is not type(None)] if get_origin(tp) in (Union, types.UnionType) else [tp]
    return any(a is str or get_origin(a) is Literal for a in args)


def parse_override(text: str) -> tuple[str, Any]:
    """`"loss.separateness=0"` -> ("loss.separateness", 0): the value as TOML, else as a bare string."""
    key, sep, raw = text.partition("=")
    key, raw = key.strip(), raw.strip()
    if not sep or not key:
        raise ConfigError(f"override {text!r} must look like key=value, e.g. loss.separateness=0")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    if _wants_text(_field_type(key)) and not isinstance(value, str):
        value = raw  # a path or name that happens to parse as a number stays text
    return key, value


def _set(data: dict[str, Any], key: str, value: Any) -> None:
    *parents, last = key.split(".")
    for name in parents:
        child = data.setdefault(name, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{key}: {name!r} is a setting, not a section")
        data = child
    data[last] = value


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        nested = isinstance(value, Mapping) and isinstance(out.get(key, {}), Mapping)
        out[key] = _merge(out.get(key, {}), value) if nested else value
    return out


def _validated(data: dict[str, Any], source: str) -> RunConfig:
    try:
        return from_dict(data)
    except ConfigError as error:
        raise ConfigError(f"{source}: {error}") from None


def load_config(profile: Path | str | None = None, overrides: Sequence[str] = ()) -> RunConfig:
    """Defaults <- profile base <- the profile's [task.<task>] tables <- overrides (`key=value`), validated.

    The task is resolved first (overrides win over the profile), so `model.task=recon` selects the recon tables.
    """
    path = resolve_profile(DEFAULT_PROFILE if profile is None else profile)
    base = _read_toml(path)
    tasks = base.pop("task", {})
    pairs = [parse_override(text) for text in overrides]
    _validated(base, str(path))
    task = next((v for k, v in reversed(pairs) if k == "model.task"), base.get("model", {}).get("task", ModelConfig.task))
    allowed = get_args(_hints(ModelConfig)["task"])
    for name, table in tasks.items():
        if name not in allowed:
            raise ConfigError(f"{path}: {_unknown('task.', name, allowed)}")
        if "task" in table.get("model", {}):
            raise ConfigError(f"{path}: [task.{name}.model] cannot set the task itself")
    merged = _merge(base, tasks.get(task, {}))
    _validated(merged, f"{path} [task.{task}]")
    for key, value in pairs:
        _set(merged, key, value)
    return _validated(merged, "override")


def with_overrides(cfg: RunConfig, changes: Mapping[str, Any] | Sequence[str]) -> RunConfig:
    """`cfg` with dotted keys changed (`{"loss.separateness": 0}` or `["loss.separateness=0"]`), validated.

    Profile task tables are not re-applied: to change the task with its per-task values, use `load_config`.
    """
    pairs = changes.items() if isinstance(changes, Mapping) else map(parse_override, changes)
    data = to_dict(cfg)
    for key, value in pairs:
        _set(data, key, value)
    return _validated(data, "override")
