"""Validate a whole dataset (layout, every frame decodable, labels aligned) and time the frame cache."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from ..models.method import ClipLayout
from .cache import GB, decode_frame, load_video, plan_cache
from .clips import clip_count, validated_split, window_length
from .identity import dataset_fingerprint
from .labels import dataset_label_file
from .layout import SPLITS, find_videos, frame_counts

ONE_FRAME = ClipLayout(in_frames=1, predict=False, scored_offset=0)


def check_dataset(
    root: str | Path,
    name: str,
    labels: str | Path | None = None,
    decode: bool = True,
    size: int = 256,
    grayscale: bool = False,
    cache_dir: str | Path | None = None,
    layout: ClipLayout = ONE_FRAME,
) -> dict:
    """Summary {split: {"videos", "frames", "clips"}, "anomalous": int, "labels": path, "fingerprint": the data's
    identity in a run's hash, "frame_cache": what a size x size cache needs and whether it fits}; a DataError
    says what is wrong: every frame is decoded (`decode`), then each split goes through the validation training
    uses (repro.data.clips.validated_split: layout, clip windows of `layout`, labels, anomaly types)."""
    summary: dict = {}
    window = window_length(layout.in_frames, layout.predict)
    splits = {}
    for split in SPLITS:
        if decode:
            for video in find_videos(root, name, split):
                for path in video.frames:
                    decode_frame(path, (8, 8), grayscale=True)
        splits[split] = validated_split(root, name, split, window, labels)
        listed = splits[split].videos
        summary[split] = {
            "videos": len(listed),
            "frames": sum(frame_counts(listed)),
            "clips": clip_count(listed, layout),
        }
    summary["labels"] = str(dataset_label_file(root, name, labels))
    summary["anomalous"] = int(sum(int(x.sum()) for x in splits["testing"].labels))
    fingerprint = dataset_fingerprint(root, name, labels)
    summary["fingerprint"] = {
        "path": fingerprint["path"],
        "digest": fingerprint["digest"],
        "labels_sha256": fingerprint["labels_sha256"],
    }
    videos = [video for split in splits.values() for video in split.videos]
    plan = plan_cache(videos, (size, size), grayscale, cache_dir)
    summary["frame_cache"] = {
        "size": size,
        "grayscale": grayscale,
        "folder": str(plan.folder),
        "needs_gb": round(plan.needed / GB, 3),
        "free_gb": round(plan.free / GB, 3),
        "fits": plan.fits,
    }
    return summary


def benchmark_cache(frames: int = 2000, size: int = 64, videos: int = 10) -> dict:
    """Seconds for a first pass (JPEG decode + resize + cache write) and a second pass (memory-mapped cache)
    over every frame of a `frames`-frame synthetic dataset of `size`x`size` JPEGs, frame-by-frame access; and
    the decode throughput of one core (frames/s), to size the DataLoader workers when decoding on the fly."""
    from .synthetic import PRESETS, render_video, write_frames

    with tempfile.TemporaryDirectory() as folder:
        data, spec = Path(folder) / "bench" / "training" / "frames", PRESETS["busy"]
        rng = np.random.default_rng(0)
        for v in range(videos):
            plan = np.zeros(frames // videos, np.int8)
            write_frames(data / f"{v:02d}", render_video(plan, spec, spec.scenes[0], size, rng))
        listed = find_videos(folder, "bench", "training")
        timings = {}
        for name in ("first_pass_decode_seconds", "second_pass_cached_seconds"):
            tick = time.perf_counter()
            for video in listed:
                array = load_video(video, (size, size), False, Path(folder) / "cache")
                for i in range(len(array)):
                    np.array(array[i])  # one frame as a clip dataset reads it
            timings[name] = time.perf_counter() - tick
        decode_seconds = _decode_seconds(listed, size)
    first, second = timings.values()
    return {
        "frames": frames,
        "size": size,
        **timings,
        "first_pass_fps": frames / first,
        "second_pass_fps": frames / second,
        "speedup": first / second,
        "decode_fps_per_core": frames / decode_seconds,
        "cores": os.cpu_count(),
    }


def _decode_seconds(videos, size: int) -> float:
    """Seconds to decode and resize every frame in one thread (what one DataLoader worker does on the fly)."""
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        tick = time.perf_counter()
        for video in videos:
            for path in video.frames:
                decode_frame(path, (size, size), grayscale=False)
        return time.perf_counter() - tick
    finally:
        cv2.setNumThreads(threads)
