"""Windows of frames for training and evaluation: t input frames and a clean target (docs/method.md#network,
#scoring-and-evaluation, #the-reproduction-studys-ablations, #baselines).

One item per window position (stride 1) in each video, videos in sorted order. A window holds
`in_frames` frames, plus the next frame when `predict`. The item scores frame `start + scored_offset`:

| model            | in_frames | predict | scored_offset | frames not scored per video |
|------------------|-----------|---------|---------------|-----------------------------|
| MNAD prediction  | 4         | True    | 4             | the first 4                 |
| MNAD recon       | 1         | False   | 0             | none                        |
| MemAE            | 16        | False   | 8             | the first 8 and last 7      |
| ConvLSTM-AE      | 10        | False   | 5             | the first 5 and last 4      |

Colour frames are BGR as OpenCV decodes them (the reference never converts to RGB); grayscale has c = 1.
Glossary: t frames, c channels, h w size, n items.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset

from ..anomaly_types import UNKNOWN
from .cache import load_videos
from .labels import dataset_label_file, load_npy, load_test_labels
from .layout import DataError, Video, canonical_name, dataset_dir, find_videos, frame_counts


def window_length(in_frames: int, predict: bool) -> int:
    return in_frames + 1 if predict else in_frames


def require_clips(videos: Sequence[Video], length: int) -> None:
    """A DataError unless some video of a split holds a whole window of `length` frames (else it has no clip)."""
    longest = max(frame_counts(videos), default=0)
    if longest < length:
        raise DataError(
            f"no clip in {videos[0].folder.parent if videos else 'the split'}: the model's clip window "
            f"needs {length} frames and the longest video has {longest}. Fix: use longer videos, or a "
            "model with a shorter window (e.g. --set model.mnad.task=recon: 1 frame)"
        )


def item_positions(
    num_frames_per_video: Sequence[int], in_frames: int, predict: bool, scored_offset: int
) -> tuple[np.ndarray, np.ndarray]:
    """(video, frame) of every item, each (n,) int64, without loading any image: `frame` is the scored frame."""
    length = window_length(in_frames, predict)
    if not 0 <= scored_offset < length:
        raise ValueError(f"scored_offset {scored_offset} must lie inside the window of {length} frames")
    starts = [np.arange(max(count - length + 1, 0)) for count in num_frames_per_video]
    video = np.concatenate([np.full(len(s), i) for i, s in enumerate(starts)] or [np.zeros(0)]).astype(np.int64)
    frame = np.concatenate(starts or [np.zeros(0)]).astype(np.int64) + scored_offset
    return video, frame


def salt_and_pepper(x: np.ndarray, fraction: float, generator: np.random.Generator) -> np.ndarray:
    """A `fraction` of the elements of x (values in [-1, 1]) set to -1 or 1 with equal odds
    (docs/method.md#the-reproduction-studys-ablations).

    The same as setting them to 0 or 1 on the [0, 1] scale before mapping x * 2 - 1 (exact in floating point).
    One uniform draw u per element: u < fraction / 2 -> -1, fraction / 2 <= u < fraction -> 1, else unchanged.
    """
    u = generator.random(x.shape, dtype=np.float32)
    return np.where(u < fraction, np.where(u < fraction / 2, -1.0, 1.0).astype(x.dtype), x)


class ClipDataset(Dataset):
    """Items {"input": (t_in, c, h, w), "target": (t_out, c, h, w), both float32 in [-1, 1], "video", "frame",
    "label", "anomaly_type"} over in-memory or memory-mapped videos (T, H, W, C) uint8.

    Salt-and-pepper noise (a fraction `salt_pepper` of input elements) touches the input only and is
    deterministic given `seed` and the item index. `labels` / `anomaly_types`: per video (T,) arrays, or None
    (then the item's value is -1).
    """

    def __init__(
        self,
        video_frames: Sequence[np.ndarray],
        in_frames: int,
        predict: bool,
        scored_offset: int,
        salt_pepper: float = 0.0,
        labels: Sequence[np.ndarray] | None = None,
        anomaly_types: Sequence[np.ndarray] | None = None,
        seed: int = 0,
        video_names: Sequence[str] | None = None,
    ) -> None:
        if not 0.0 <= salt_pepper < 1.0:
            raise ValueError(f"salt_pepper must lie in [0, 1), got {salt_pepper}")
        self.video_frames = list(video_frames)
        self.num_frames_per_video = [len(frames) for frames in self.video_frames]
        default_names = [str(i) for i in range(len(self.video_frames))]
        self.video_names = list(video_names) if video_names is not None else default_names
        for per_video, what in ((labels, "labels"), (anomaly_types, "anomaly_types")):
            if per_video is not None and [len(x) for x in per_video] != self.num_frames_per_video:
                raise DataError(
                    f"{what} per video have lengths {[len(x) for x in per_video]}, "
                    f"the videos {self.num_frames_per_video}"
                )
        self.labels, self.anomaly_types = labels, anomaly_types
        self.in_frames, self.predict, self.scored_offset = in_frames, predict, scored_offset
        self.salt_pepper, self.seed = salt_pepper, seed
        self.item_video, self.item_frame = item_positions(self.num_frames_per_video, in_frames, predict, scored_offset)
        self.decodes_on_the_fly = False  # frames decoded when read (no frame cache): see loader_workers

    def __len__(self) -> int:
        return len(self.item_video)

    def __getitem__(self, index: int) -> dict:
        video, frame = int(self.item_video[index]), int(self.item_frame[index])
        start = frame - self.scored_offset
        window = self.video_frames[video][start : start + window_length(self.in_frames, self.predict)]
        clip = window.transpose(0, 3, 1, 2).astype(np.float32) * np.float32(2 / 255) - 1  # (t, c, h, w) in [-1, 1]
        clean = clip[: self.in_frames]
        inputs = clean
        if self.salt_pepper > 0:
            inputs = salt_and_pepper(clean, self.salt_pepper, np.random.default_rng((self.seed, index)))
        target = clip[self.in_frames :] if self.predict else clean.copy()  # never shares memory with the input
        return {
            "input": torch.from_numpy(np.ascontiguousarray(inputs)),
            "target": torch.from_numpy(np.ascontiguousarray(target)),
            "video": video,
            "frame": frame,
            "label": int(self.labels[video][frame]) if self.labels is not None else -1,
            "anomaly_type": int(self.anomaly_types[video][frame]) if self.anomaly_types is not None else UNKNOWN,
        }


def make_clip_dataset(
    root: str | Path,
    name: str,
    split: str,
    *,
    in_frames: int,
    predict: bool,
    scored_offset: int,
    size: int | tuple[int, int],
    grayscale: bool = False,
    salt_pepper: float = 0.0,
    labels: str | Path | None = None,
    seed: int = 0,
    cache_dir: str | Path | None = None,
) -> ClipDataset:
    """A ClipDataset over `<root>/<name>/<split>/frames`, decoded through the frame cache.

    Testing split: labels from `labels` (any form of repro.data.labels) or else `testing/labels.npy` (required),
    cross-checked against the published counts for the published names; `testing/anomaly_types.npy` when
    present (per-frame type codes, 0 = normal: per-type AUCs).
    """
    size = (size, size) if isinstance(size, int) else tuple(size)
    videos, per_video_labels, per_video_types = validated_split(
        root, name, split, window_length(in_frames, predict), labels
    )
    frames, on_the_fly = load_videos(videos, size, grayscale, cache_dir)
    dataset = ClipDataset(
        frames,
        in_frames,
        predict,
        scored_offset,
        salt_pepper,
        per_video_labels,
        per_video_types,
        seed,
        [video.name for video in videos],
    )
    dataset.decodes_on_the_fly = on_the_fly
    return dataset


class ValidSplit(NamedTuple):
    """A split's videos, and for the testing split its labels and anomaly types per video ((T,) each, or None)."""

    videos: list[Video]
    labels: list[np.ndarray] | None
    anomaly_types: list[np.ndarray] | None


def validated_split(
    root: str | Path, name: str, split: str, window: int, labels: str | Path | None = None
) -> ValidSplit:
    """The one validation of a split that training (make_clip_dataset) and `repro data check` share; a DataError
    for what either refuses: the layout, no video holding a whole clip `window`, and for the testing split labels
    that are missing or not one per frame (and the published counts for the published names), or an
    anomaly_types.npy that is not one per frame."""
    videos = find_videos(root, name, split)
    require_clips(videos, window)
    if split != "testing":
        return ValidSplit(videos, None, None)
    return ValidSplit(videos, *_test_annotations(root, name, videos, labels))


def clip_count(videos: Sequence[Video], layout) -> int:
    """How many clips (items of a ClipDataset) `videos` hold in a model's clip `layout` (in_frames, predict,
    scored_offset: repro.models.method.ClipLayout), without loading any image."""
    return len(item_positions(frame_counts(videos), layout.in_frames, layout.predict, layout.scored_offset)[0])


def loader_workers(dataset, requested: int) -> int:
    """DataLoader workers for `dataset`: the requested number (exec.num_workers), or, when the frames are
    decoded on the fly and none were requested, one per core but one (the main process trains)."""
    if requested or not (isinstance(dataset, ClipDataset) and dataset.decodes_on_the_fly):
        return requested
    return max(1, (os.cpu_count() or 2) - 1)


def _test_annotations(root, name: str, videos, labels) -> tuple[list, list | None]:
    counts, names = frame_counts(videos), [v.name for v in videos]
    testing = dataset_dir(root, name) / "testing"
    per_video_labels = load_test_labels(canonical_name(name), counts, names, dataset_label_file(root, name, labels))
    types_file = testing / "anomaly_types.npy"
    per_video_types = None
    if types_file.exists():
        types = load_npy(types_file, "one anomaly type (0-3) per test frame").reshape(-1)
        if len(types) != sum(counts):
            raise DataError(f"{types_file} holds {len(types)} anomaly types for {sum(counts)} test frames")
        per_video_types = np.split(types, np.cumsum(counts)[:-1])
    return per_video_labels, per_video_types
