"""Method name -> its `Method` (repro/models/method.py): the one list of methods.

Every list of model names (config choices, CLI choices, settings sections) is derived from `METHODS`;
adding a method is its file plus one line here. A method outside the package is registered by `register`, or
named in the environment as `REPRO_METHODS="pkg.module:Class[,other.module:Class]"` (imported with
repro.config, so every process of a sweep knows it); the config sections are rebuilt on registration, so the order
of imports does not matter (docs/methods.md).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable

from .convlstm import ConvLSTMMethod
from .memae import AEMethod, MemAEMethod
from .method import Method
from .mnad import MNADMethod

METHODS: dict[str, Method] = {
    method.name: method for method in (MNADMethod(), MemAEMethod(), AEMethod(), ConvLSTMMethod())
}
ENVIRONMENT = "REPRO_METHODS"
_listeners: list[Callable[[], None]] = []  # called after each registration (repro.config rebuilds its sections)
_loaded: set[str] = set()  # the REPRO_METHODS entries registered so far


def on_register(listener: Callable[[], None]) -> None:
    """Call `listener` after every later registration."""
    _listeners.append(listener)


def register(method: Method) -> Method:
    """Make `method` known under `method.name` (a new name, or the same class again); returns it."""
    known = METHODS.get(method.name)
    if known is not None and type(known) is not type(method):
        raise ValueError(f"method name {method.name!r} is taken by {type(known).__qualname__}; choose another name")
    METHODS[method.name] = method
    for listener in _listeners:
        listener()
    return method


def unregister(name: str) -> None:
    """Forget the method registered as `name` (its config sections go with it)."""
    del METHODS[name]
    for listener in _listeners:
        listener()


def load_method(path: str) -> Method:
    """Import and register the `Method` subclass at "pkg.module:Class"."""
    module_name, _, class_name = path.strip().partition(":")
    if not module_name or not class_name:
        raise ValueError(f"{ENVIRONMENT} entry {path!r} must look like pkg.module:MethodClass")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"{ENVIRONMENT} entry {path!r} cannot be loaded: {error}") from None
    if not (isinstance(cls, type) and issubclass(cls, Method)):
        raise ValueError(f"{ENVIRONMENT} entry {path!r} is not a subclass of repro.models.method.Method")
    return register(cls())


def load_environment() -> None:
    """Register the methods named in REPRO_METHODS (once each); repro.config calls it once it is complete, so a
    method's module may import any of repro."""
    for entry in filter(None, os.environ.get(ENVIRONMENT, "").split(",")):
        if entry not in _loaded:
            load_method(entry)
            _loaded.add(entry)
