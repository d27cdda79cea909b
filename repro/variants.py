"""The variant of an ablation: `repro ablate`'s options -> the variant's name and its config overrides.

The options are data: each registered method declares its own (`Method.variant_flags`, e.g. MNAD's in
repro/models/mnad.py), and COMMON_FLAGS are every method's; `--no-memory` asks the method for its memory-less
twin (`Method.without_memory`). A new method's options need no edit here nor in the command line.

    name, changes = variant("synthetic", (), {"no-separateness": True, "kmeans-init": 20})
    # "no-separateness+kmeans-init-20", ("model.mnad.separateness=0", "model.mnad.kmeans_init_steps=20")
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .models.variant_flags import BUILTIN_VARIANT_FLAGS, VariantFlag

COMMON_FLAGS = (
    VariantFlag(
        "salt-pepper",
        "data.salt_pepper",
        "Variant trained on inputs with a fraction P of pixels set to 0 or 1 (e.g. 0.25).",
        low=0,
        high=1,
        high_open=True,
        name="salt-pepper-{value}",
    ),
)


def variant_flags() -> dict[str, VariantFlag]:
    """Every variant option by name: each registered method's, then the common ones. Two methods may declare the
    same option only with the same meaning. Until the registry is loaded (and unless REPRO_METHODS names more
    methods) the built-in methods' torch-free declarations stand for it, so `repro ablate --help` imports no torch."""
    if "repro.models.registry" in sys.modules or os.environ.get("REPRO_METHODS"):
        from .models.registry import METHODS

        declared = [flag for method in METHODS.values() for flag in method.variant_flags]
    else:
        declared = [flag for flags in BUILTIN_VARIANT_FLAGS.values() for flag in flags]
    flags: dict[str, VariantFlag] = {}
    for flag in (*declared, *COMMON_FLAGS):
        if flags.setdefault(flag.option, flag) != flag:
            raise ValueError(f"ablate option --{flag.option} is declared twice with different meanings")
    return flags


def _spell(value: Any) -> str:
    """A value as an override's right-hand side: true/false, a number or a word."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def _value_of(key: str, profile: str | Path | None, base: tuple[str, ...]) -> Any:
    from .config import load_config, to_dict

    value: Any = to_dict(load_config(profile, base))
    for part in key.split("."):
        value = value[part]
    return value


def variant(
    profile: str | Path | None,
    base: tuple[str, ...],
    chosen: Mapping[str, Any],
    no_memory: bool = False,
    extra: tuple[str, ...] = (),
) -> tuple[str, tuple[str, ...]]:
    """(name, overrides) of the variant that the options `chosen` ({option: value}; a switch's value is True,
    options given as None or False are left out), `no_memory` and the `extra` overrides make on top of the
    baseline (`profile` with `base`). Raises ValueError when no change is named or two options set one key."""
    from .config import ConfigError, load_config

    flags = variant_flags()
    unknown = [option for option in chosen if option not in flags]
    if unknown:
        raise ValueError(f"unknown ablate option(s) {', '.join(unknown)}; allowed: {', '.join(flags)}")
    given = {option: value for option, value in chosen.items() if value is not None and value is not False}
    keys: dict[str, str] = {}
    for option in given:
        other = keys.setdefault(flags[option].key, option)
        if other != option:
            raise ValueError(f"--{other} and --{option} both set {flags[option].key}; give one of them")
    values = {flags[o].key: (flags[o].value if flags[o].switch else v) for o, v in given.items()}
    names, changes = [], []
    for option, flag in flags.items():  # declaration order: the variant's name reads the same whatever the order
        if option not in given:
            continue
        value = values[flag.key]
        if flag.per is not None:
            value = value / (values[flag.per] if flag.per in values else _value_of(flag.per, profile, base))
        names.append(flag.name_part(given[option]))
        changes.append(f"{flag.key}={_spell(value)}")
    if no_memory:
        baseline = load_config(profile, base).model
        changes += baseline.method.without_memory(baseline.settings)
        names.append("no-memory")
    changes += extra
    names += [override.replace("=", "-") for override in extra]
    if not changes:
        raise ConfigError("name at least one change for the variant, e.g. --no-separateness (see repro ablate --help)")
    return "+".join(names), tuple(changes)
