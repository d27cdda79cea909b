"""Fixtures of the data tests."""

import importlib.resources
from pathlib import Path

import pytest


@pytest.fixture
def labels_dir() -> Path:
    """The published label files (docs/data.md#labels), shipped as package data in repro/data/published/."""
    return Path(importlib.resources.files("repro.data") / "published")
