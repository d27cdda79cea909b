"""Fixtures of the data tests."""

from pathlib import Path

import pytest

# The published label files (SPEC sec. 5) live in shared/ beside the checkout, here and in CI.
LABELS = Path(__file__).resolve().parents[3] / "shared" / "data" / "labels"


@pytest.fixture
def labels_dir() -> Path:
    if not LABELS.is_dir():
        pytest.fail(f"the published label files are not at {LABELS} (../shared/data/labels beside the checkout)")
    return LABELS
