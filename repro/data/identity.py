"""What a run's data is: the dataset's resolved location and a cheap fingerprint of its contents.

A run's hash includes this identity (repro.config.config_hash), so a moved, relative or edited dataset never
returns another dataset's result. The fingerprint reads no image: it lists the video folders of both splits
(names and frame counts) and hashes the label and anomaly-type files. The built-in synthetic data is named
by its preset, seed and world fingerprint instead (its files are generated from them).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path

from .labels import resolve_label_file
from .layout import IMAGE_EXTENSIONS, SPLITS, DataError, dataset_dir, natural_key

MISSING = "missing"


@functools.lru_cache(maxsize=4096)
def _frame_count(folder: str, mtime_ns: int) -> int:
    """Image files in a video folder; cached per folder version (adding or removing a frame changes its mtime)."""
    with os.scandir(folder) as entries:
        return sum(1 for e in entries if e.is_file() and os.path.splitext(e.name)[1].lower() in IMAGE_EXTENSIONS)


def _videos(frames: Path) -> list[tuple[str, int]]:
    """(video name, frame count) of every video folder under `frames`, in natural order; [] if absent."""
    if not frames.is_dir():
        return []
    with os.scandir(frames) as entries:
        folders = [e for e in entries if e.is_dir() and not e.name.startswith(".")]
    folders.sort(key=lambda e: natural_key(e.name))
    return [(e.name, _frame_count(e.path, e.stat().st_mtime_ns)) for e in folders]


def _file_digest(path: Path) -> str:
    """sha256 of a file, or of a folder's files in name order (a test_frame_mask folder); 'missing' if absent."""
    if path.is_dir():
        digest = hashlib.sha256()
        for child in sorted(path.iterdir(), key=lambda p: natural_key(p.name)):
            digest.update(child.name.encode() + b"\0" + child.read_bytes())
        return digest.hexdigest()
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else MISSING


def dataset_fingerprint(root: str | Path, name: str, labels: str | Path | None = None) -> dict:
    """{"path", "videos": {split: [[video, frames], ...]}, "labels", "labels_sha256", "anomaly_types_sha256",
    "import_sha256" (an imported dataset's source record), "digest"}: what identifies `<root>/<name>`; `digest`
    (16 hex) changes with any of the others."""
    folder = dataset_dir(root, name).resolve()
    source = resolve_label_file(labels, name) if labels is not None else folder / "testing" / "labels.npy"
    fingerprint = {
        "path": str(folder),
        "videos": {split: _videos(folder / split / "frames") for split in SPLITS},
        "labels": str(Path(source).resolve()),
        "labels_sha256": _file_digest(Path(source)),
        "anomaly_types_sha256": _file_digest(folder / "testing" / "anomaly_types.npy"),
    }
    record = folder / "import.json"  # repro.data.importers.IMPORT_RECORD: replaced footage of the same shape differs
    if record.is_file():
        fingerprint["import_sha256"] = _file_digest(record)
    text = json.dumps(fingerprint, sort_keys=True)
    return fingerprint | {"digest": hashlib.sha256(text.encode()).hexdigest()[:16]}


def data_identity(name: str, root: str | None, labels: str | None, preset: str, synth_seed: int) -> str | None:
    """The data part of a run's identity: `<resolved folder>|<fingerprint digest>` for a dataset on disk,
    the preset, seed and world fingerprint for synthetic data, None when no location is given."""
    if name == "synthetic":
        from .synthetic import world_fingerprint

        return f"synthetic-{preset}-seed{synth_seed}-{world_fingerprint(preset)}"
    if root is None:
        return None
    try:
        fingerprint = dataset_fingerprint(root, name, labels)
    except DataError:  # no such folder (or no published labels for this name): the run itself says why
        return f"{Path(root).expanduser().resolve() / name}|{MISSING}"
    return f"{fingerprint['path']}|{fingerprint['digest']}"
