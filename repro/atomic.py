"""Atomic files: written beside their destination, flushed to disk, then renamed over it, so a reader or a
crash never sees half a file. The one place every writer of runs, reports and caches goes through."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


def _file_mode() -> int:
    """0o666 less the process umask: the mode a plain open() would give (mkstemp's own is 0o600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


class _Writer:
    """The temporary file as writers see it; keeps the OSError of a failed write, which torch.save turns into
    an unrelated RuntimeError ("unexpected pos") and np.save into one without its errno."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle = handle
        self.error: OSError | None = None

    def write(self, data) -> int:
        try:
            return self.handle.write(data)
        except OSError as error:
            self.error = error
            raise

    def __getattr__(self, name: str):
        return getattr(self.handle, name)


def named(error: OSError, path: Path) -> OSError:
    """`error` with `path` as its file name (a failed write or fsync names no file)."""
    if error.errno is None or error.filename is not None:
        return error
    return type(error)(error.errno, error.strerror, str(path))


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[IO[bytes]]:
    """A binary file that replaces `path` only when the block completes; on error `path` is untouched.

    A failed write surfaces as its OSError naming `path` (ENOSPC: "No space left on device"), whatever the
    writer made of it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    writer = None
    try:
        os.fchmod(fd, _file_mode())
        with os.fdopen(fd, "wb") as handle:
            writer = _Writer(handle)
            yield writer
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        Path(temporary).unlink(missing_ok=True)
        cause = writer.error if writer is not None and writer.error is not None else error
        if isinstance(cause, OSError) and cause.errno is not None:
            raise named(cause, path) from (error if cause is not error else None)
        raise


def atomic_write(path: str | Path, data: str | bytes) -> Path:
    """Write `data` (str as UTF-8) to `path` atomically; returns the path."""
    if not isinstance(data, (str, bytes)):
        raise TypeError(f"atomic_write takes str or bytes, got {type(data).__name__}")
    with atomic_file(path) as handle:
        handle.write(data.encode("utf-8") if isinstance(data, str) else data)
    return Path(path)
