"""The anomaly types of the synthetic world (docs/data.md#synthetic-moving-shapes-built-in-no-download): their codes
in anomaly_types.npy and their names.

The one list: metrics keys use the names as they are ("spatio_temporal"), figures and pages their `display`
spelling ("spatio-temporal"). Real datasets have no types: their frames carry -1.
"""

from __future__ import annotations

TYPE_NAMES = ("normal", "spatial", "temporal", "spatio_temporal")  # index = code
ANOMALY_TYPES = {code: name for code, name in enumerate(TYPE_NAMES) if code}  # the anomalous ones
UNKNOWN = -1  # a frame of a real dataset: anomalous or not, but of no synthetic type


def display(name: str) -> str:
    """How a type reads in a figure or a page: "spatio_temporal" -> "spatio-temporal"."""
    return name.replace("_", "-")
