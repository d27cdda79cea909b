"""Typed, validated settings: the machinery behind every config section (repro/config.py) and each method's
own settings dataclass (repro/models/*), so that models declare their settings without importing config.py.

    @dataclass(frozen=True)
    class MySettings(Validated):
        prefix: ClassVar[str] = "model.mine."
        width: int = setting(16, "Channels of the first block.", AT_LEAST_ONE)
"""

from __future__ import annotations

import difflib
import functools
import types
from dataclasses import field, fields, is_dataclass
from typing import Any, ClassVar, Literal, NamedTuple, Union, get_args, get_origin, get_type_hints

NONE = "none"  # how None is spelled in TOML files and overrides


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
def kind(tp: Any) -> str:
    """How a type reads in an error message."""
    origin, args = get_origin(tp), get_args(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (Union, types.UnionType):
        return " or ".join(kind(a) for a in args if a is not type(None)) + f" or {NONE!r}"
    if origin is tuple:
        return "a list of " + {float: "numbers", int: "integers", str: "strings"}[args[0]]
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(tp, str(tp))


def _wrong(key: str, tp: Any, value: Any) -> ConfigError:
    hint = ""
    if get_origin(tp) is Literal and isinstance(value, str):
        close = difflib.get_close_matches(value, [str(a) for a in get_args(tp)], n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ConfigError(f"{key} must be {kind(tp)}; got {value!r} ({type(value).__name__}){hint}")


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
def hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)


class Validated:
    """Checks and normalises every field at construction (also after dataclasses.replace)."""

    prefix: ClassVar[str]

    def __post_init__(self) -> None:
        for f in fields(self):
            key = f"{self.prefix}{f.name}"
            value = _coerce(key, hints(type(self))[f.name], getattr(self, f.name))
            _check_within(key, value, f.metadata.get("within"))
            object.__setattr__(self, f.name, value)
        self.check()

    def check(self) -> None:
        """Cross-field checks and derived defaults of a section (raise ConfigError naming the keys)."""
