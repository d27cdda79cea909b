"""Fakes of the operating system shared by the tests of atomic files and of the CLI's error path."""

import errno
import os


class FullFile:
    """A file on a file system with no space left: every write fails as the kernel's does (no file name)."""

    def __init__(self, handle):
        self.handle = handle

    def write(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(self.handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.close()
