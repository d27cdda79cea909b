"""repro: memory-augmented autoencoders for video anomaly detection, reproduced and ablated."""

import importlib.metadata

DISTRIBUTION = "mnad-repro"  # the name on PyPI; the import package and the command are `repro`

try:
    __version__: str | None = importlib.metadata.version(DISTRIBUTION)  # single source: pyproject.toml's version
except importlib.metadata.PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = None
