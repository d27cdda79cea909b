"""Fixtures of the data tests."""

from pathlib import Path

import pytest

LABELS = Path("/work/shared/data/labels")  # the published label files (SPEC sec. 5)


@pytest.fixture
def labels_dir() -> Path:
    if not LABELS.is_dir():
        pytest.skip(f"the published label files are not at {LABELS}")
    return LABELS
