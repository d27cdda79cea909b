"""A report folder's manifest: which runs a grid verb (sweep, claims, ablate) made, so that a later report or
verdict reads them instead of rebuilding the grid from flags the user must repeat.

    <out>/manifest.json  {"kind": "sweep", "date": ..., "command": {"profile": ..., "data": ..., "settings": [...],
                          "seeds": ..., "runs": <store>}, "declaration": {...}, "runs": [{"labels": ..., "seed": ...,
                          "config_hash": ..., "folder": ..., "config": {...}}, ...]}

Each run's folder is derived once, when the grid is placed in the store (repro.grids.placed); reading the
manifest never hashes a config again. Written atomically: a manifest is the previous one or the new one.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .atomic import atomic_write
from .config import from_dict, to_dict
from .grids import GridRun

MANIFEST = "manifest.json"
KINDS = ("sweep", "claims", "ablate")


@dataclass(frozen=True)
class Manifest:
    """A grid verb's record: what it was (kind, command, declaration) and its placed runs."""

    kind: str  # one of KINDS
    date: str
    command: dict[str, Any]  # profile, data, settings, seeds, runs (the store)
    declaration: dict[str, Any]  # a sweep's table declaration (parsed TOML), a claims verb's file; {} for ablate
    runs: list[GridRun]  # each with its folder

    @property
    def store(self) -> Path:
        return Path(self.command["runs"])


def write_manifest(
    out: Path, kind: str, runs: list[GridRun], command: dict[str, Any], declaration: dict[str, Any] | None = None
) -> Path:
    """Write out/manifest.json for placed `runs` (each with its folder); returns its path."""
    if kind not in KINDS:
        raise ValueError(f"manifest kind {kind!r} unknown; allowed: {', '.join(KINDS)}")
    unplaced = [run.labels for run in runs if run.folder is None]
    if unplaced:
        raise ValueError(f"runs {unplaced[:3]} have no folder; place them in the store first (repro.grids.placed)")
    record = {
        "kind": kind,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": command,
        "declaration": declaration or {},
        "runs": [
            {
                "labels": run.labels,
                "seed": run.seed,
                "config_hash": run.folder.name,
                "folder": str(run.folder.resolve()),
                "config": to_dict(run.config),
            }
            for run in runs
        ],
    }
    return atomic_write(Path(out) / MANIFEST, json.dumps(record, indent=2, ensure_ascii=False) + "\n")


def has_manifest(folder: Path) -> bool:
    return (Path(folder) / MANIFEST).is_file()


def read_manifest(folder: Path) -> Manifest:
    """The manifest of a report folder; a missing or malformed one is a ValueError naming the file and the fix."""
    path = Path(folder) / MANIFEST
    try:
        record = json.loads(path.read_text())
        runs = [
            GridRun(dict(entry["labels"]), int(entry["seed"]), from_dict(entry["config"]), Path(entry["folder"]))
            for entry in record["runs"]
        ]
        manifest = Manifest(record["kind"], record["date"], record["command"], record["declaration"], runs)
        _check_shape(manifest)
        return manifest
    except FileNotFoundError:
        raise ValueError(f"{path} not found: {folder} was not written by repro sweep, claims or ablate") from None
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as error:
        raise ValueError(
            f"{path} is unreadable ({type(error).__name__}: {error}); rerun the command that wrote {folder} "
            "(finished runs are reused) to write it again"
        ) from None


def _check_shape(manifest: Manifest) -> None:
    """A TypeError naming the field of a manifest whose JSON value has the wrong shape."""
    expected = {
        "kind": manifest.kind in KINDS,
        "date": isinstance(manifest.date, str),
        "command": isinstance(manifest.command, dict) and isinstance(manifest.command.get("runs"), str),
        "declaration": isinstance(manifest.declaration, dict),
    }
    wrong = [field for field, right in expected.items() if not right]
    if wrong:
        raise TypeError(f"{', '.join(wrong)} of the wrong shape (kind one of {', '.join(KINDS)}; command.runs a path)")
