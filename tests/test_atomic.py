import os
import stat

import pytest

from repro.atomic import atomic_write


def test_atomic_write_replaces_whole_files_and_cleans_up_on_failure(tmp_path):
    path = atomic_write(tmp_path / "a.txt", "first")
    atomic_write(path, b"second")
    assert path.read_text() == "second"
    with pytest.raises(TypeError):
        atomic_write(path, 3)  # type: ignore[arg-type]
    assert path.read_text() == "second" and [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_atomic_files_get_the_mode_a_plain_open_would_give(tmp_path):
    previous = os.umask(0o022)
    try:
        path = atomic_write(tmp_path / "report.md", "# report")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # readable by others, as the figures of a shared report
