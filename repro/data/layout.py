"""The canonical dataset layout, found and validated (docs/data.md#the-canonical-layout).

    <root>/<name>/training/frames/<video>/<frame>.jpg
    <root>/<name>/testing/frames/<video>/<frame>.jpg
    <root>/<name>/testing/labels.npy          flat 0/1 per test frame, sorted videos concatenated
    <root>/<name>/testing/anomaly_types.npy   synthetic only: int8 0 normal, 1 spatial, 2 temporal, 3 both

Names: ped2, avenue, shanghaitech ("shanghai" is an alias), synthetic-<preset>. Frame files are numbered
0-based and contiguously (`000.jpg`, `001.jpg`, ...), sorted naturally, one extension per video.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

SPLITS = ("training", "testing")
ALIASES = {"shanghai": "shanghaitech"}
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
LAYOUT_HELP = "<root>/<name>/{training,testing}/frames/<video>/<frame>.jpg (frames numbered 000, 001, ...)"


class DataError(ValueError):
    """A dataset on disk does not match what `repro` expects; the message names the path and the fix."""


@dataclass(frozen=True)
class Video:
    """One video as a folder of frame files, in frame order."""

    name: str
    folder: Path
    frames: tuple[Path, ...]

    def __len__(self) -> int:
        return len(self.frames)


def natural_key(text: str) -> list:
    """Sort key that orders 'v2' before 'v10'."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


def canonical_name(name: str) -> str:
    """The dataset's canonical name ('shanghai' -> 'shanghaitech')."""
    return ALIASES.get(name.lower(), name)


def dataset_dir(root: str | Path, name: str) -> Path:
    """`<root>/<name>`, also found under an alias; a DataError with the layout if absent."""
    root = Path(root)
    name = canonical_name(name)
    candidates = [root / name] + [root / alias for alias, target in ALIASES.items() if target == name]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise DataError(
        f"dataset folder {root / name} does not exist; expected {LAYOUT_HELP}. "
        f"Fix: pass the folder that holds {name}/ (--data), or convert the download with `repro data import`"
    )


def split_dir(root: str | Path, name: str, split: str) -> Path:
    """`<root>/<name>/<split>/frames`, checked to exist."""
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; allowed: {', '.join(SPLITS)}")
    frames = dataset_dir(root, name) / split / "frames"
    if not frames.is_dir():
        raise DataError(f"missing folder {frames}; expected {LAYOUT_HELP}. Fix: put one folder per video there")
    return frames


def find_videos(root: str | Path, name: str, split: str) -> list[Video]:
    """The videos of one split in natural order, each validated with `read_video_folder`."""
    frames = split_dir(root, name, split)
    folders = [p for p in frames.iterdir() if p.is_dir() and not p.name.startswith(".")]  # .partial-*: unfinished
    folders.sort(key=lambda p: natural_key(p.name))
    if not folders:
        raise DataError(f"{frames} holds no video folders; expected {LAYOUT_HELP}")
    return [read_video_folder(folder) for folder in folders]


def read_video_folder(folder: Path) -> Video:
    """A video's frames, validated: non-empty, one image extension, numbered 0..T-1 without gaps."""
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
    if not files:
        raise DataError(
            f"empty video {folder}: no image files ({', '.join(IMAGE_EXTENSIONS)}). "
            "Fix: remove the folder or extract its frames again"
        )
    extensions = sorted({p.suffix.lower() for p in files})
    if len(extensions) > 1:
        raise DataError(
            f"video {folder} mixes extensions {extensions}; expected one per video. "
            "Fix: keep one format (the canonical layout uses .jpg)"
        )
    files.sort(key=lambda p: natural_key(p.name))
    _check_numbering(folder, files)
    return Video(folder.name, folder, tuple(files))


def _check_numbering(folder: Path, files: list[Path]) -> None:
    numbers = []
    for path in files:
        digits = re.findall(r"\d+", path.stem)
        if not digits:
            raise DataError(f"frame {path} has no number in its name; expected {LAYOUT_HELP}")
        numbers.append(int(digits[-1]))
    for expected, (number, path) in enumerate(zip(numbers, files)):
        if number != expected:
            raise DataError(
                f"video {folder}: frame numbers must run 0..{len(files) - 1} without gaps, but frame {expected} "
                f"is {path.name} (number {number}). Fix: renumber the frames 0-based and contiguously "
                "(`repro data import` does it)"
            )


def frame_counts(videos: list[Video]) -> list[int]:
    return [len(video) for video in videos]


def video_cameras(names: list[str]) -> list[int]:
    """The camera of each video from its name: ShanghaiTech's and the synthetic presets' `<camera>_<video>`
    (`01_0014` -> 1); a dataset none of whose names has that form (Ped2, Avenue) is one camera, 0."""
    found = [re.match(r"(\d+)_", name) for name in names]
    if not any(found):
        return [0] * len(names)
    if not all(found):
        odd = next(name for name, match in zip(names, found) if not match)
        raise DataError(
            f"video {odd!r} has no camera prefix while others do; expected <camera>_<video> "
            "(e.g. 01_0014) for every video. Fix: rename it as its camera's videos are"
        )
    return [int(match.group(1)) for match in found]


def video_cameras_of(dataset) -> tuple[list[int], int] | None:
    """The camera of each of a clip dataset's videos numbered 0..C-1 (in order of `video_cameras`' ids), and
    C; None for a dataset without video names (the memory diagnostics then skip camera x position)."""
    names = getattr(dataset, "video_names", None)
    if names is None:
        return None
    ids = sorted(set(video_cameras(names)))
    index = {camera: i for i, camera in enumerate(ids)}
    return [index[camera] for camera in video_cameras(names)], len(ids)
