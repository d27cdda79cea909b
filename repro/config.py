"""Every setting of a run, declared once: frozen, typed dataclasses with one-line help (docs/method.md#training,
#scoring-and-evaluation, #the-reproduction-studys-ablations, #reporting-protocol-and-memory-diagnostics).

The dataclass defaults are the paper's prediction setting (docs/method.md#training); profiles in `ablations/profiles/`
override them, and dotted overrides (`model.mnad.separateness=0`) override the profile. Each method declares
its own section beside its network (`[model.mnad]`, `[model.memae]`, ...; repro/models/*) and, where it has
evaluation settings, `[eval.<name>]` (`[eval.mnad]`: λ, γ, the test-time update); this module composes them
and rebuilds them when a method is registered later (repro.models.registry). A profile may hold the tables a
method declares (`Method.profile_tables`: MNAD's task tables `[task.recon.train]`, applied when
model.mnad.task matches) and method tables (`[method.memae.train]`, when model.name matches; they win over the
task's), both before the overrides. TOML has no null: the string "none" sets an optional field to None.

    cfg = load_config("paper", ["model.mnad.task=recon", "eval.lambda_grid=[0.5, 0.6]"])
    config_hash(cfg)  # '3f1c...': names the run's folder; [exec] and settings its method ignores are not part
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.resources
import json
import re
import tomllib
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, is_dataclass, make_dataclass, replace
from pathlib import Path
from typing import Any, ClassVar, Literal, Union, get_args, get_origin

import tomli_w

from .models.registry import METHODS, load_environment, on_register
from .settings import (
    AT_LEAST_ONE,
    NON_NEGATIVE,
    NONE,
    POSITIVE,
    UNIT,
    ConfigError,
    Interval,
    Validated,
    hints,
    kind,
    section,
    setting,
)

DEFAULT_PROFILE = "synthetic"
PROFILES_DIR = Path(importlib.resources.files("repro.ablations") / "profiles")  # package data, see setup.py
# How a run executes (device, workers) does not change what it is; its precision and CPU thread count do (numerics:
# see `identity`).
HASH_EXCLUDED = ("exec",)
HASH_KEPT_FROM_EXEC = ("precision",)
DATASET_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")  # data.name: one folder under data.root


# ------------------------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class DataConfig(Validated):
    prefix: ClassVar[str] = "data."
    name: str = setting(
        "ped2",
        "Dataset: synthetic moving shapes (built in), or the folder <data.root>/<name> in the canonical "
        "layout: ped2, avenue, shanghaitech (cross-checked against the published counts) or any other name.",
    )
    preset: Literal["single", "busy", "scenes", "tiny", "cameras", "single-hard", "busy-hard", "scenes-hard"] = setting(
        "single",
        "Synthetic world, standing in for ped2 (single), avenue (busy), shanghaitech (scenes; cameras, 13 "
        "cameras at data.size=128, for the memory study); tiny for tests; <name>-hard: the world made harder "
        "(docs/claims.md#worlds-with-headroom).",
    )
    root: str | None = setting(
        None, "Folder holding <name>/training/frames and <name>/testing/frames; none = built-in synthetic cache."
    )
    labels: str | None = setting(
        None,
        "Frame-label file in any published form, or 'published' (the published "
        "file, shipped with repro); none = <name>/testing/labels.npy.",
    )
    size: int = setting(256, "Frame side in pixels after resizing (paper 256, synthetic 64).", AT_LEAST_ONE)
    grayscale: bool = setting(False, "Read frames as one gray channel instead of colour.")
    salt_pepper: float = setting(
        0.0,
        "Fraction of input elements set to 0 or 1 (denoising study, docs/method.md#the-reproduction-studys-ablations); "
        "targets stay clean.",
        Interval(0, 1, high_open=True),
    )
    synth_seed: int = setting(0, "Seed of the synthetic world's generator (not of training).")
    calibration_share: float = setting(
        0.0,
        "Share of each training video's frames, at its end, that training leaves out and the deployable score is "
        "calibrated on (docs/footage.md#the-deployable-score); 0 = calibrate on the frames trained on.",
        Interval(0, 1, high_open=True),
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if not DATASET_NAME.fullmatch(self.name):
            raise ConfigError(f"data.name must be a folder name (letters, digits, '.', '_', '-'); got {self.name!r}")


@dataclass(frozen=True)
class TrainConfig(Validated):
    prefix: ClassVar[str] = "train."
    epochs: int = setting(60, "Epochs; a cosine schedule spans them (T_max = epochs).", AT_LEAST_ONE)
    batch_size: int = setting(4, "Clips per training step.", AT_LEAST_ONE)
    lr: float = setting(2e-4, "Adam learning rate (paper: 2e-4 pred, 2e-5 recon).", POSITIVE)
    schedule: Literal["cosine", "constant"] = setting(
        "cosine", "Learning-rate schedule per epoch: cosine annealing to 0 (MNAD) or constant (MemAE's official code)."
    )
    checkpoint_every: int = setting(
        5, "Save (and evaluate) a checkpoint every k epochs; the last is always saved.", AT_LEAST_ONE
    )
    shuffle: bool = setting(True, "Shuffle training clips each epoch (reference: true).")
    drop_last: bool = setting(True, "Drop the last incomplete batch (reference: true).")


def _grid(step: float = 0.05) -> tuple[float, ...]:
    return tuple(round(i * step, 10) for i in range(round(1 / step) + 1))


@dataclass(frozen=True)
class ExecConfig(Validated):
    prefix: ClassVar[str] = "exec."
    device: Literal["auto", "cpu", "cuda"] = setting("auto", "Device; auto = cuda when available.")
    precision: Literal["fp32", "bf16", "fp16"] = setting("fp32", "Arithmetic precision (autocast for bf16/fp16).")
    threads: int | None = setting(
        1,
        "torch CPU threads of the run's arithmetic. Its numbers depend on the count (threads split sums in "
        "another order), so a count other than 1 is part of the run's identity; none = 1 (older run folders).",
        AT_LEAST_ONE,
    )
    num_workers: int = setting(0, "DataLoader worker processes.", NON_NEGATIVE)
    compile: bool = setting(False, "torch.compile the networks (the memory stays eager); a one-off compile cost.")
    cuda_graphs: bool = setting(
        True,
        "On CUDA, the one-frame test-time update is captured once as a CUDA graph and replayed per frame (the "
        "same numbers, one launch per frame); false runs it op by op.",
    )
    deterministic: bool = setting(
        True,
        "On CUDA, deterministic cuDNN and CUDA algorithms: the same seed gives the same numbers (slower); false "
        "lets cuDNN pick the fastest. The CPU is deterministic either way.",
    )


def _with_sections(name: str, doc: str, prefix: str, own: list[tuple], sections: dict[str, tuple[type, str]]) -> type:
    """A frozen, validated section class holding `own` fields and one sub-section per method, {method: (its
    settings class, help)}."""
    cls = make_dataclass(
        name,
        [
            ("prefix", ClassVar[str], prefix),
            *own,
            *((method, settings, section(settings, help)) for method, (settings, help) in sections.items()),
        ],
        bases=(Validated,),
        frozen=True,
    )
    cls.__module__, cls.__doc__ = __name__, doc
    return cls


def _model_config() -> type:
    """[model]: the method's name and one settings section per registered method ([model.mnad], ...).

    Built from the registry, so a new method needs no edit here; a run's identity holds only the section of
    its own method (`config_hash`).
    """
    names = tuple(METHODS)
    cls = _with_sections(
        "ModelConfig",
        "The method and its settings: [model] name = ..., [model.<name>] its section.",
        "model.",
        [("name", Literal[names], setting("mnad", "Method: " + ", ".join(names) + "."))],
        {name: (method.Settings, method.help) for name, method in METHODS.items()},
    )
    cls.settings = property(lambda self: getattr(self, self.name), doc="The chosen method's settings section.")
    cls.method = property(lambda self: METHODS[self.name], doc="The chosen method (repro.models.method.Method).")
    return cls


def _eval_config() -> type:
    """[eval]: the settings every method's scoring shares, and one section per method that declares evaluation
    settings ([eval.mnad], ...: `Method.EvalSettings`)."""
    return _with_sections(
        "EvalConfig",
        "Scoring: [eval] the shared settings, [eval.<name>] each method's own.",
        "eval.",
        [
            (
                "lambda_grid",
                tuple[float, ...],
                setting(_grid(), "λ values swept on saved signals for the study's selection.", UNIT),
            ),
            (
                "batch_size",
                int,
                setting(8, "Clips per evaluation batch when no test-time update forces batch 1.", AT_LEAST_ONE),
            ),
        ],
        {
            name: (method.EvalSettings, f"How {name} scores a checkpoint (its evaluation settings).")
            for name, method in METHODS.items()
            if method.EvalSettings is not None
        },
    )


def _run_config() -> type:
    @dataclass(frozen=True)
    class RunConfig(Validated):
        prefix: ClassVar[str] = ""
        data: DataConfig = section(DataConfig, "Frames and clips.")
        model: ModelConfig = section(ModelConfig, "The method and its settings (its losses' weights included).")
        train: TrainConfig = section(TrainConfig, "Optimisation and checkpoints.")
        eval: EvalConfig = section(EvalConfig, "Scoring: the shared settings and each method's own.")
        exec: ExecConfig = section(ExecConfig, "How the run executes (not part of its hash).")
        seed: int = setting(0, "Seed of weights, items and data order.")

        @property
        def method_eval(self) -> Any:
            """The chosen method's evaluation section ([eval.<name>]), or None where it declares none."""
            return getattr(self.eval, self.model.name, None)

        def check(self) -> None:
            try:
                self.model.method.validate(self.model.settings, self.data.size)
            except ValueError as error:
                raise ConfigError(str(error)) from None

    RunConfig.__qualname__ = "RunConfig"  # pickled by name (the process pool's workers)
    return RunConfig


_BUILT: dict[tuple, tuple[type, type, type]] = {}  # the classes built for each set of registered methods


def _build_sections() -> None:
    """(Re)build the classes that hold one section per registered method; called again on registration. The
    same methods give the same classes, so unregistering a method restores the classes from before."""
    global ModelConfig, EvalConfig, RunConfig, SECTIONS
    registered = tuple((name, type(method)) for name, method in METHODS.items())
    if registered in _BUILT:
        ModelConfig, EvalConfig, RunConfig = _BUILT[registered]
    else:
        ModelConfig = _model_config()
        EvalConfig = _eval_config()
        RunConfig = _run_config()  # its section types resolve to the two above (module globals)
        _BUILT[registered] = ModelConfig, EvalConfig, RunConfig
    SECTIONS = {name: tp for name, tp in hints(RunConfig).items() if is_dataclass(tp)}


ModelConfig: type
EvalConfig: type
RunConfig: type
SECTIONS: dict[str, type]
_build_sections()
on_register(_build_sections)


# ----------------------------------------------------------------------------------- dicts and TOML
def _unknown(prefix: str, name: str, allowed: Sequence[str]) -> ConfigError:
    owners = [
        owner
        for owner, method in METHODS.items()
        if prefix == "eval." and method.EvalSettings is not None and name in method.EvalSettings.__dataclass_fields__
    ]
    if owners:
        return ConfigError(f"unknown key {prefix + name!r}: it is {owners[0]}'s, set eval.{owners[0]}.{name}")
    close = difflib.get_close_matches(name, allowed, n=1)
    hint = f" did you mean {prefix + close[0]!r}?" if close else ""
    return ConfigError(f"unknown key {prefix + name!r};{hint} allowed: {', '.join(allowed)}")


def _build(cls: type, data: Mapping[str, Any], prefix: str) -> Any:
    allowed = [f.name for f in fields(cls)]
    kwargs = {}
    for name, value in data.items():
        if name not in allowed:
            raise _unknown(prefix, name, allowed)
        tp = hints(cls)[name]
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


def identity(cfg: RunConfig) -> dict[str, Any]:
    """What a run is: every setting but how it executes ([exec] less its precision), and of [model] and [eval]
    only what its method reads, so that settings its network ignores never split one run into two."""
    data = to_dict(cfg)
    method, settings = cfg.model.method, cfg.model.settings
    content = {k: v for k, v in data.items() if k not in HASH_EXCLUDED}
    if not cfg.data.calibration_share:  # 0 is left out, so the runs of before this key entered keep their hashes
        content["data"] = {k: v for k, v in content["data"].items() if k != "calibration_share"}
    content["model"] = {
        "name": cfg.model.name,
        cfg.model.name: {k: data["model"][cfg.model.name][k] for k in method.reads(settings)},
    }
    scoring = _flat_eval(data["eval"], cfg.model.name)
    content["eval"] = {k: scoring[k] for k in method.reads_eval(settings)}
    threads = cfg.exec.threads or 1  # 1 is left out, so the runs of before this key entered keep their hashes
    numerics = {"exec.threads": threads} if threads != 1 else {}
    return content | {f"exec.{key}": getattr(cfg.exec, key) for key in HASH_KEPT_FROM_EXEC} | numerics


def _flat_eval(values: dict[str, Any], method: str) -> dict[str, Any]:
    """[eval]'s shared settings and the method's own [eval.<method>] in one flat dict (the names `reads_eval`
    gives); a run's identity keeps this flat form, so moving a setting into a method's section changes no hash."""
    shared = {k: v for k, v in values.items() if not isinstance(v, dict)}
    return shared | values.get(method, {})


def config_hash(cfg: RunConfig) -> str:
    """12 hex digits of sha256 over canonical JSON of the run's `identity` and its data's identity (resolved
    folder and fingerprint, repro.data.identity); names the run folder."""
    from .data.identity import data_identity

    data = cfg.data
    content = identity(cfg) | {
        "data_identity": data_identity(data.name, data.root, data.labels, data.preset, data.synth_seed)
    }
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def training_identity(cfg: RunConfig) -> str:
    """The hash of what training depends on: runs that differ only in [eval] share their checkpoints."""
    return config_hash(replace(cfg, eval=EvalConfig()))


def check_applies(cfg: RunConfig, keys: Sequence[str]) -> None:
    """Refuse a change that `cfg`'s method never reads (a ConfigError naming the key and the method), so that an
    ablation cannot silently train the same network twice."""
    method, settings = cfg.model.method, cfg.model.settings
    for key in keys:
        section, _, rest = key.partition(".")
        if section == "model" and "." in rest:
            owner, _, name = rest.partition(".")
            if owner != cfg.model.name:
                raise ConfigError(
                    f"{key} is a setting of {owner}, but this run's model is {cfg.model.name}: "
                    f"set model.name={owner} or drop it"
                )
            if name not in method.reads(settings):
                raise ConfigError(f"{key} changes nothing for {method.describe(settings)}: its network never reads it")
        elif section == "eval":
            owner, _, name = rest.rpartition(".")
            if owner and owner != cfg.model.name:
                raise ConfigError(
                    f"{key} is an evaluation setting of {owner}, but this run's model is {cfg.model.name}: "
                    f"set model.name={owner} or drop it"
                )
            if name not in method.reads_eval(settings):
                read = [_eval_key(cfg, n) for n in method.reads_eval(settings)]
                raise ConfigError(
                    f"{key} changes nothing for {method.describe(settings)}: its scores never read it "
                    f"(it reads {', '.join(read)})"
                )


def _eval_key(cfg: RunConfig, name: str) -> str:
    """The dotted key of an evaluation setting `reads_eval` names: eval.<name> or eval.<method>.<name>."""
    own = cfg.method_eval
    owned = own is not None and name in own.__dataclass_fields__
    return f"eval.{cfg.model.name}.{name}" if owned else f"eval.{name}"


def settings_help() -> dict[str, str]:
    """Dotted key -> its help, type, range and default; what --help shows for each setting."""
    out = {}

    def walk(cls: type, prefix: str) -> None:
        for f in fields(cls):
            tp = hints(cls)[f.name]
            if is_dataclass(tp):
                walk(tp, f"{prefix}{f.name}.")
                continue
            within = f"; {f.metadata['within']}" if f.metadata.get("within") else ""
            default = NONE if f.default is None else json.dumps(f.default)  # TOML spelling
            out[f"{prefix}{f.name}"] = f"{f.metadata['help']} ({kind(tp)}{within}; default {default})"

    walk(RunConfig, "")
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
    available = sorted(p.stem for p in PROFILES_DIR.glob("*.toml"))
    if text not in available:
        close = difflib.get_close_matches(text, available, n=1)
        hint = f" did you mean {close[0]!r}?" if close else ""
        raise ConfigError(
            f"unknown profile {text!r};{hint} available: {', '.join(available)} (or a path to a TOML file)"
        )
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
        tp = hints(cls).get(name) if is_dataclass(cls) else None
        if tp is None:
            return None
        cls = tp
    return cls


def _wants_text(tp: Any) -> bool:
    args = [a for a in get_args(tp) if a is not type(None)] if get_origin(tp) in (Union, types.UnionType) else [tp]
    return any(a is str or get_origin(a) is Literal for a in args)


def parse_override(text: str) -> tuple[str, Any]:
    """`"model.mnad.separateness=0"` -> ("model.mnad.separateness", 0): the value as TOML, else as a bare string."""
    key, sep, raw = text.partition("=")
    key, raw = key.strip(), raw.strip()
    if not sep or not key:
        raise ConfigError(f"override {text!r} must look like key=value, e.g. model.mnad.separateness=0")
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


def _tables(base: dict[str, Any], kind: str, allowed: Sequence[str], path: Path, forbidden: str) -> dict[str, Any]:
    """A profile's [<kind>.<name>] tables, each checked: a known name that does not set `forbidden` itself."""
    tables = base.pop(kind, {})
    for name, table in tables.items():
        if name not in allowed:
            raise ConfigError(f"{path}: {_unknown(kind + '.', name, allowed)}")
        if _lookup(table, forbidden) is not None:
            raise ConfigError(f"{path}: [{kind}.{name}] cannot set {forbidden} itself")
    return tables


def _lookup(data: Mapping[str, Any], key: str) -> Any:
    for name in key.split("."):
        data = data.get(name) if isinstance(data, Mapping) else None
    return data


def _declared_tables() -> dict[str, tuple[str, tuple[str, ...]]]:
    """The profile tables the registered methods declare: {kind: (dotted key, allowed values)}."""
    return {kind: spec for method in METHODS.values() for kind, spec in method.profile_tables.items()}


def _default(key: str) -> Any:
    """The declared default of a dotted key (e.g. model.mnad.task)."""
    *parents, last = key.split(".")
    cls = RunConfig
    for name in parents:
        cls = hints(cls)[name]
    return cls.__dataclass_fields__[last].default


def _moved_to_method_sections(data: dict[str, Any]) -> dict[str, Any]:
    """A file written before the methods' evaluation sections existed ([eval] gamma = ..., as old runs'
    config.toml): each [eval] key that a method's [eval.<name>] declares is read as that section's."""
    scoring = data.get("eval")
    if not isinstance(scoring, dict):
        return data
    shared = {f.name for f in fields(EvalConfig)}
    moved = dict(scoring)
    for name, method in METHODS.items():
        own = {f.name for f in fields(method.EvalSettings)} if method.EvalSettings is not None else set()
        for key in (own - shared) & set(scoring):
            moved.setdefault(name, {}).setdefault(key, scoring[key])
    for key in set(scoring) - shared - set(METHODS):
        if any(key in moved.get(name, {}) for name in METHODS):
            del moved[key]
    return data | {"eval": moved}


def load_config(
    profile: Path | str | None = None, overrides: Sequence[str] = (), unchecked: Sequence[str] = ()
) -> RunConfig:
    """Defaults <- profile base <- its declared tables (MNAD's [task.<task>]) <- its [method.<name>] table <-
    overrides, validated.

    The keys of the declared tables (`Method.profile_tables`: model.mnad.task) and the method are resolved first
    (overrides win over the profile), so `model.mnad.task=recon` selects the recon table and `model.name=memae`
    MemAE's, whose values win over the task's. Every override must be read by the run's method
    (`check_applies`), except those listed in `unchecked` (settings shared by every row of a table, which some
    of its methods ignore).
    """
    path = resolve_profile(DEFAULT_PROFILE if profile is None else profile)
    base = _moved_to_method_sections(_read_toml(path))
    methods = _tables(base, "method", tuple(METHODS), path, "model.name")
    declared = [
        (table, key, _tables(base, table, allowed, path, key)) for table, (key, allowed) in _declared_tables().items()
    ]
    pairs = [parse_override(text) for text in overrides]
    _validated(base, str(path))

    def resolved(key: str) -> Any:
        given = _lookup(base, key)
        return next((v for k, v in reversed(pairs) if k == key), _default(key) if given is None else given)

    chosen = [(table, key, resolved(key), tables) for table, key, tables in declared]
    name = resolved("model.name")
    merged = base
    for _, _, value, tables in chosen:
        merged = _merge(merged, _moved_to_method_sections(tables.get(value, {})))
    merged = _merge(merged, _moved_to_method_sections(methods.get(name, {})))
    for key, value in [*((key, value) for _, key, value, _ in chosen), ("model.name", name)]:
        _set(merged, key, value)  # as resolved, for the check below
    tables = " ".join(f"[{table}.{value}]" for table, _, value, _ in chosen)
    _validated(merged, f"{path} [method.{name}] {tables}".rstrip())
    for key, value in pairs:
        _set(merged, key, value)
    cfg = _validated(merged, "override")
    check_applies(cfg, [key for (key, _), text in zip(pairs, overrides) if text not in unchecked])
    return cfg


load_environment()  # last: a method's module named in REPRO_METHODS may import this one
