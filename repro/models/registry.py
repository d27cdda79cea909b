"""Method name -> its `Method` (repro/models/method.py): the one list of methods.

Every list of model names (config choices, CLI choices, settings sections) is derived from `METHODS`;
adding a method is its file plus one line here.
"""

from __future__ import annotations

from .convlstm import ConvLSTMMethod
from .memae import AEMethod, MemAEMethod
from .method import Method
from .mnad import MNADMethod

METHODS: dict[str, Method] = {
    method.name: method for method in (MNADMethod(), MemAEMethod(), AEMethod(), ConvLSTMMethod())
}
