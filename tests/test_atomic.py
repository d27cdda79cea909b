import errno
import os
import stat

import pytest
from fakes import FullFile

from repro.atomic import atomic_file, atomic_write


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


@pytest.mark.parametrize("writer", ["torch.save", "np.save", "np.savez"])
def test_a_full_disk_is_an_enospc_naming_the_file_whatever_the_writer_made_of_it(tmp_path, monkeypatch, writer):
    import numpy as np
    import torch

    write = {
        "torch.save": lambda h: torch.save({"w": torch.ones(10)}, h),
        "np.save": lambda h: np.save(h, np.ones(10)),
        "np.savez": lambda h: np.savez(h, a=np.ones(10)),
    }[writer]
    real = os.fdopen
    monkeypatch.setattr(os, "fdopen", lambda fd, *args, **kwargs: FullFile(real(fd, *args, **kwargs)))
    with pytest.raises(OSError, match="No space left on device") as caught:
        with atomic_file(tmp_path / "out.bin") as handle:
            write(handle)  # torch.save alone would raise RuntimeError("unexpected pos ...")
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(tmp_path / "out.bin")
    assert list(tmp_path.iterdir()) == []
