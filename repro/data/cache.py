"""Decoded, resized frames cached on disk as one uint8 array per video, memory-mapped on later reads.

Each video is decoded with OpenCV once (BGR as `cv2.imread` gives it, as the reference does, or grayscale),
resized with INTER_LINEAR, and saved as `<cache>/frames/<key>.npy` of shape (T, H, W, C). The key hashes the
folder's absolute path, the size, the colour mode, the number of frames and their newest modification time,
so editing, adding or removing a frame makes a new entry. Writes are atomic (temporary file + rename).
Before building, the free space of the cache's disk is checked; a cache that would not fit is not built and
the frames are decoded when read instead (by DataLoader workers, see repro.data.clips.loader_workers).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..atomic import atomic_file, named
from .layout import DataError, Video

JPEG_END = b"\xff\xd9"
DISK_RESERVE = 1 << 30  # bytes a cache leaves free on its disk
GB = 1e9


class DecodingOnTheFly(UserWarning):
    """The frame cache would not fit on its disk: frames are decoded when read, by DataLoader workers."""


def cache_root() -> Path:
    """`$REPRO_CACHE`, else ~/.cache/repro."""
    return Path(os.environ.get("REPRO_CACHE") or Path.home() / ".cache" / "repro")


def decode_frame(path: Path, size: tuple[int, int], grayscale: bool) -> np.ndarray:
    """One image file -> (H, W, C) uint8 at size (h, w); a DataError names an unreadable or truncated file."""
    data = np.fromfile(path, dtype=np.uint8)
    if path.suffix.lower() in (".jpg", ".jpeg") and JPEG_END not in data[-64:].tobytes():
        raise DataError(f"truncated image {path}: no JPEG end marker. Fix: extract or copy this frame again")
    image = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE if grayscale else cv2.IMREAD_COLOR)
    if image is None:
        raise DataError(f"unreadable image {path}: OpenCV cannot decode it. Fix: extract or copy this frame again")
    if image.shape[:2] != size:
        image = cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
    return image.reshape(size[0], size[1], -1)


def write_image(path: Path, image: np.ndarray, params: Sequence[int] = ()) -> None:
    """Encode `image` as the suffix of `path` says and write it; a failed write (a full disk) is an OSError naming
    the file, where cv2.imwrite would only return False."""
    ok, encoded = cv2.imencode(path.suffix, image, list(params))
    if not ok:
        raise DataError(f"OpenCV cannot encode {path.name} as {path.suffix}; use .jpg or .png")
    try:
        path.write_bytes(encoded.tobytes())
    except OSError as error:
        raise named(error, path) from None


def decode_video(video: Video, size: tuple[int, int], grayscale: bool) -> np.ndarray:
    """All frames of a video -> (T, H, W, C) uint8."""
    return np.stack([decode_frame(path, size, grayscale) for path in video.frames])


def cache_key(video: Video, size: tuple[int, int], grayscale: bool) -> str:
    newest = max(path.stat().st_mtime_ns for path in video.frames)
    identity = f"{video.folder.resolve()}|{size[0]}x{size[1]}|{'gray' if grayscale else 'bgr'}|{len(video)}|{newest}"
    return hashlib.sha1(identity.encode()).hexdigest()[:20]


def load_video(video: Video, size: tuple[int, int], grayscale: bool, cache_dir: str | Path | None = None) -> np.ndarray:
    """A video's frames (T, H, W, C) uint8, memory-mapped from the cache (decoded and cached on a miss)."""
    path = cache_folder(cache_dir) / f"{cache_key(video, size, grayscale)}.npy"
    if path.exists():
        try:
            return np.asarray(np.load(path, mmap_mode="r"))  # a plain ndarray view of the map: cheap indexing
        except (ValueError, EOFError) as error:  # truncated or overwritten behind our back: decode it again
            warnings.warn(
                f"frame cache file {path} of video {video.folder} is unreadable ({error}); decoding again", stacklevel=2
            )
    save_atomic(path, decode_video(video, size, grayscale))
    return np.asarray(np.load(path, mmap_mode="r"))


@dataclass(frozen=True)
class CachePlan:
    """What caching a set of videos takes: bytes still to write, bytes free on the cache's disk."""

    folder: Path
    needed: int
    free: int

    @property
    def fits(self) -> bool:
        return self.needed == 0 or self.needed + DISK_RESERVE <= self.free

    def describe(self) -> str:
        return (
            f"the frame cache needs {self.needed / GB:.2f} GB more in {self.folder}, {self.free / GB:.2f} GB are free"
        )


def cache_folder(cache_dir: str | Path | None = None) -> Path:
    return Path(cache_dir) if cache_dir is not None else cache_root() / "frames"


def plan_cache(
    videos: Sequence[Video], size: tuple[int, int], grayscale: bool, cache_dir: str | Path | None = None
) -> CachePlan:
    """Bytes the uncached videos need as uint8 arrays (T x H x W x C) and the free space of the cache's disk."""
    folder = cache_folder(cache_dir)
    channels = 1 if grayscale else 3
    missing = [v for v in videos if not (folder / f"{cache_key(v, size, grayscale)}.npy").exists()]
    needed = sum(len(v) for v in missing) * size[0] * size[1] * channels
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    return CachePlan(folder, needed, shutil.disk_usage(existing).free)


class VideoDecoder:
    """A video's frames decoded when read (no cache): `len()` and slicing as the cached (T, H, W, C) array."""

    def __init__(self, video: Video, size: tuple[int, int], grayscale: bool) -> None:
        self.video, self.size, self.grayscale = video, size, grayscale

    def __len__(self) -> int:
        return len(self.video)

    def __getitem__(self, frames: slice) -> np.ndarray:
        paths = self.video.frames[frames]
        return np.stack([decode_frame(path, self.size, self.grayscale) for path in paths])  # (t, h, w, c)


def load_videos(
    videos: Sequence[Video], size: tuple[int, int], grayscale: bool, cache_dir: str | Path | None = None
) -> tuple[list, bool]:
    """Every video's frames, from the cache when it fits on its disk (built on a miss), else decoded when
    read (a DecodingOnTheFly warning says so and how much space the cache needs); (frames, on_the_fly)."""
    plan = plan_cache(videos, size, grayscale, cache_dir)
    if plan.fits:
        return [load_video(video, size, grayscale, cache_dir) for video in videos], False
    warnings.warn(
        f"{plan.describe()}: decoding the frames on the fly with DataLoader workers instead. Fix: free "
        "space there, or set $REPRO_CACHE to a larger disk",
        DecodingOnTheFly,
        stacklevel=2,
    )
    return [VideoDecoder(video, size, grayscale) for video in videos], True


def save_atomic(path: Path, array: np.ndarray) -> None:
    """np.save to a temporary file beside `path`, then rename: readers never see a partial file."""
    with atomic_file(path) as file:
        np.save(file, array)
