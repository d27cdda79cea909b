"""Synthetic moving shapes, the built-in stand-in for the real datasets
(docs/data.md#synthetic-moving-shapes-built-in-no-download).

Normal: circles moving right at the normal speed. Anomalies: squares at the normal speed (spatial, type 1),
circles at twice the speed (temporal, 2), squares at twice the speed (spatio-temporal, 3). At 64x64 the
radius is 5 px and the speed 3 px/frame (the study's 10 px and 5 px/frame at its larger frames); both scale
with the frame size.

The confound of docs/data.md#synthetic-moving-shapes-built-in-no-download is avoided by construction: every object
lives in its own horizontal lane, all
lanes move the same way, a lane speeds up as a whole (objects in one lane never catch each other), and
objects wrap around the frame like a torus and are drawn wrapped, so no shape is ever cut or overlapped.
A single frame of a temporal anomaly looks exactly like a normal frame: only speed tells them apart.

A scene is a camera: its background (colour and texture) is drawn once per scene and shared by its training and test
videos; only the moving objects vary per video (docs/data.md#synthetic-moving-shapes-built-in-no-download). Training
videos hold only normal motion; each test video has normal stretches and anomalous events, one at a time, and every
test frame is labelled with its type. The same seed gives identical bytes.

Video folders are named `<camera>_<video>` (`03_0007`) as in ShanghaiTech, so each frame's camera is
known from its video's name (`repro.data.layout.video_cameras`); a camera's videos are contiguous.
"""

from __future__ import annotations

import colorsys
import hashlib
import math
import os
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from ..anomaly_types import TYPE_NAMES, display
from .cache import cache_root, write_image
from .layout import DataError

RADIUS = 5 / 64  # of the frame size
NORMAL_SPEED = 3 / 64  # of the frame size, per frame
FAST = 2.0  # temporal anomalies move this many times faster
JPEG_QUALITY = 95
SUBPIXEL = 4  # cv2 drawing with 4 fractional bits: smooth, deterministic sub-pixel motion
WORLD_VERSION = 3  # bumped whenever the generator draws differently (2: backgrounds per scene; 3: names, gradients)


@dataclass(frozen=True)
class Scene:
    """A camera: background colour (BGR), static texture strength (grey levels), object colour (BGR) and a
    linear brightness ramp (grey levels added at the right and bottom edges, subtracted at the opposite ones)."""

    background: tuple[int, int, int]
    texture: float
    colour: tuple[int, int, int]
    gradient: tuple[float, float] = (0.0, 0.0)


@dataclass(frozen=True)
class Difficulty:
    """How hard a world makes the anomalies to see (the defaults draw today's worlds, byte for byte): sensor noise,
    the objects' contrast against the background, how much faster a temporal anomaly moves and how square a
    spatial one is. Chosen per stand-in by a pilot (scripts/pilot_world.py; docs/claims.md#worlds-with-headroom)."""

    noise: float = 0.0  # SD in grey levels of Gaussian noise added to every pixel of every frame
    contrast: float = 1.0  # 1 = the scene's object colour; lower blends it toward the background colour
    fast: float = FAST  # a temporal anomaly's speed, in multiples of the normal speed
    square: float = 1.0  # an anomalous square's half side in object radii (0.886: the circle's area)

    def __post_init__(self) -> None:
        if self.noise < 0 or not 0 < self.contrast <= 1 or self.fast <= 1 or self.square <= 0:
            raise DataError(f"difficulty {self} out of range: noise >= 0, 0 < contrast <= 1, fast > 1, square > 0")


EASY = Difficulty()


@dataclass(frozen=True)
class Preset:
    """A synthetic dataset: its world and how many videos of which length it holds."""

    lanes: int
    objects_per_lane: int
    scenes: tuple[Scene, ...]
    train_videos: int
    train_length: int
    test_videos: int
    test_length: int
    events_per_video: int
    event_length: tuple[int, int]  # inclusive range of an anomalous event's length in frames
    size: int = 64  # frame side written by default (`repro data synth`); a run renders at its data.size
    # Out of the repr: today's presets keep their fingerprint; world_fingerprint adds a non-default difficulty.
    difficulty: Difficulty = field(default=EASY, repr=False)


def camera_scenes(count: int) -> tuple[Scene, ...]:
    """`count` distinct cameras: background hues spread around the colour wheel at two brightnesses, objects
    in the opposite hue, textures of 0-36 grey levels and brightness ramps pointing every way."""

    def bgr(hue: float, saturation: float, value: float) -> tuple[int, int, int]:
        r, g, b = colorsys.hsv_to_rgb(hue % 1.0, saturation, value)
        return round(255 * b), round(255 * g), round(255 * r)

    angles = [2 * math.pi * i / count for i in range(count)]
    return tuple(
        Scene(
            background=bgr(i / count, 0.5, 0.3 if i % 2 else 0.5),
            texture=12.0 * (i % 4),
            colour=bgr(i / count + 0.5, 0.8, 0.95),
            gradient=(round(30 * math.cos(a), 1), round(30 * math.sin(a), 1)),
        )
        for i, a in enumerate(angles)
    )


PRESETS = {
    # Ped2's stand-in: one scene, plain background, few objects.
    "single": Preset(3, 1, (Scene((96, 96, 96), 0.0, (235, 235, 235)),), 5, 100, 6, 120, 2, (20, 30)),
    # Avenue's stand-in: a busier, textured scene.
    "busy": Preset(4, 2, (Scene((70, 90, 110), 30.0, (40, 215, 245)),), 5, 100, 6, 120, 2, (20, 30)),
    # ShanghaiTech's stand-in: several scenes with their own backgrounds and colours, pooled.
    "scenes": Preset(
        3,
        2,
        (
            Scene((40, 40, 40), 0.0, (220, 220, 220)),
            Scene((120, 150, 110), 25.0, (30, 30, 200)),
            Scene((150, 110, 90), 40.0, (240, 200, 60)),
        ),
        6,
        90,
        6,
        120,
        2,
        (20, 30),
    ),
    # Seconds, not minutes: for tests and smoke runs (every anomaly type still occurs).
    "tiny": Preset(3, 1, (Scene((96, 96, 96), 0.0, (235, 235, 235)),), 2, 40, 2, 60, 2, (8, 10)),
    # ShanghaiTech's stand-in for the memory study (docs/data.md#synthetic-moving-shapes-built-in-no-download): more
    # cameras (13) than memory items (10) and
    # 128x128 frames (a 16x16 query map, each query seeing part of the frame); one training video per camera.
    "cameras": Preset(3, 2, camera_scenes(13), 13, 40, 13, 90, 2, (20, 30), size=128),
}
# Worlds with headroom, one per stand-in the claims use: today's worlds made harder by a Difficulty. NOT YET PILOTED:
# their difficulty is a starting point for scripts/pilot_world.py, which fixes it so that the claims' controls land
# between 70 and 95 AUC (docs/claims.md#worlds-with-headroom); no shipped claim uses them until then.
HARD = Difficulty(noise=12.0, contrast=0.6, fast=1.5, square=0.886)
PRESETS |= {f"{name}-hard": replace(PRESETS[name], difficulty=HARD) for name in ("single", "busy", "scenes")}


def preset(name: str) -> Preset:
    if name not in PRESETS:
        raise DataError(f"unknown synthetic preset {name!r}; allowed: {', '.join(PRESETS)}")
    return PRESETS[name]


def lane_centres(lanes: int, size: int) -> np.ndarray:
    """(lanes,) row of each lane's centre."""
    return (np.arange(lanes) + 0.5) * size / lanes


def background(scene: Scene, size: int, rng: np.random.Generator) -> np.ndarray:
    """(size, size, 3) uint8: the scene colour plus a smooth static texture."""
    coarse = rng.normal(0.0, 1.0, (8, 8, 3)).astype(np.float32)
    texture = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)  # (h, w, 3)
    ramp = np.linspace(-1.0, 1.0, size, dtype=np.float32)  # (size,)
    shade = scene.gradient[0] * ramp[None, :, None] + scene.gradient[1] * ramp[:, None, None]  # (h, w, 1)
    colour = np.array(scene.background, np.float32)
    return np.clip(colour + scene.texture * texture + shade, 0, 255).astype(np.uint8)


def event_plan(length: int, types: list[int], spec: Preset, rng: np.random.Generator) -> np.ndarray:
    """(T,) int8 per-frame type: one event per segment of the video, normal frames around it."""
    plan = np.zeros(length, np.int8)
    segment = length // len(types)
    for i, kind in enumerate(types):
        duration = int(rng.integers(spec.event_length[0], spec.event_length[1] + 1))
        start = i * segment + int(rng.integers(10, segment - duration - 4))
        plan[start : start + duration] = kind
    return plan


def render_video(
    plan: np.ndarray, spec: Preset, scene: Scene, base: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """(T, size, size, 3) uint8 frames: the objects of the world following `plan` (per-frame type; the event's
    lane is random) drawn over the scene's background `base` (size, size, 3)."""
    size = base.shape[0]
    radius, speed, rows = RADIUS * size, NORMAL_SPEED * size, lane_centres(spec.lanes, size)
    hard = spec.difficulty
    colour = (
        scene.colour
        if hard.contrast == 1
        else tuple(hard.contrast * c + (1 - hard.contrast) * b for c, b in zip(scene.colour, scene.background))
    )
    spacing = size / spec.objects_per_lane
    x = rng.uniform(0, size, spec.lanes)[:, None] + spacing * np.arange(spec.objects_per_lane)  # (lanes, objects)
    lane = int(rng.integers(spec.lanes))
    frames = []
    for t, kind in enumerate(plan):
        if t and kind and not plan[t - 1]:
            lane = int(rng.integers(spec.lanes))  # each event picks its lane
        fast = kind in (2, 3)
        if t:
            x = x + speed * np.where(np.arange(spec.lanes)[:, None] == lane, hard.fast if fast else 1.0, 1.0)
        x = np.mod(x, size)
        frame = base.copy()
        for i, row in enumerate(rows):
            for k, column in enumerate(x[i]):
                square = kind in (1, 3) and i == lane and k == 0
                draw_wrapped(frame, column, row, radius * (hard.square if square else 1.0), square, colour)
        frames.append(frame)
    frames = np.stack(frames)  # (T, size, size, 3)
    if hard.noise == 0:
        return frames  # today's worlds: no draw, so their bytes stay as they were
    noisy = frames + rng.normal(0.0, hard.noise, frames.shape).astype(np.float32)
    return np.clip(np.round(noisy), 0, 255).astype(np.uint8)


def draw_wrapped(frame: np.ndarray, x: float, y: float, radius: float, square: bool, colour) -> None:
    """Draw a filled circle or square centred at (x, y), also at x +- width so it wraps like a torus."""
    scale = 1 << SUBPIXEL
    width = frame.shape[1]
    for dx in (-width, 0, width):
        cx, cy = (x + dx) * scale, y * scale
        if square:
            r = radius * scale
            corners = np.round([[cx - r, cy - r], [cx + r, cy - r], [cx + r, cy + r], [cx - r, cy + r]])  # (4, 2)
            cv2.fillConvexPoly(frame, corners.astype(np.int32), colour, cv2.LINE_AA, SUBPIXEL)
        else:
            cv2.circle(frame, (round(cx), round(cy)), round(radius * scale), colour, -1, cv2.LINE_AA, SUBPIXEL)


SyntheticVideo = tuple[str, np.ndarray, np.ndarray]  # (name, frames (T, H, W, 3) uint8, types (T,) int8)


def generate(preset_name: str, seed: int = 0, size: int | None = None) -> dict[str, list[SyntheticVideo]]:
    """{"training": [...], "testing": [...]} of (video name, frames (T, H, W, 3) uint8, types (T,) int8) per video,
    in sorted name order; size None = the preset's."""
    spec = preset(preset_name)
    size = spec.size if size is None else size
    stream = [seed, list(PRESETS).index(preset_name)]  # presets differ for the same seed
    rng = np.random.default_rng(stream)
    events = [1 + i % 3 for i in range(spec.test_videos * spec.events_per_video)]  # every type, equally often
    rng.shuffle(events)
    bases = [background(scene, size, np.random.default_rng([*stream, 2, s])) for s, scene in enumerate(spec.scenes)]
    result: dict[str, list] = {"training": [], "testing": []}
    for split, count, length in (
        ("training", spec.train_videos, spec.train_length),
        ("testing", spec.test_videos, spec.test_length),
    ):
        for v in range(count):
            video_rng = np.random.default_rng([*stream, 0 if split == "training" else 1, v])
            kinds = events[v * spec.events_per_video : (v + 1) * spec.events_per_video]
            plan = event_plan(length, kinds, spec, video_rng) if split == "testing" else np.zeros(length, np.int8)
            s = v * len(spec.scenes) // count  # contiguous blocks: name order is generation order
            frames = render_video(plan, spec, spec.scenes[s], bases[s], video_rng)
            result[split].append((f"{s:02d}_{v:04d}", frames, plan))
    return result


def write_synthetic(dst: str | Path, preset_name: str, seed: int = 0, size: int | None = None) -> Path:
    """Write `<dst>/synthetic-<preset>` in the canonical layout (atomically), frames of side `size` (None = the
    preset's); returns the dataset folder."""
    target = Path(dst) / f"synthetic-{preset_name}"
    if target.exists():
        raise DataError(f"{target} already exists. Fix: remove it or choose another destination")
    data = generate(preset_name, seed, size)
    temporary = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(temporary, ignore_errors=True)
    try:
        for split, videos in data.items():
            for name, frames, _ in videos:
                write_frames(temporary / split / "frames" / name, frames)
        types = np.concatenate([plan for _, _, plan in data["testing"]]).astype(np.int8)
        np.save(temporary / "testing" / "anomaly_types.npy", types)
        np.save(temporary / "testing" / "labels.npy", (types != 0).astype(np.int8))
        write_contact_sheets(temporary, data)
        os.rename(temporary, target)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return target


def write_frames(folder: Path, frames: np.ndarray) -> None:
    """(T, H, W, C) uint8 -> folder/000.jpg ... (zero-padded, 0-based, JPEG of fixed quality)."""
    folder.mkdir(parents=True)
    width = max(3, len(str(len(frames) - 1)))
    for i, frame in enumerate(frames):
        write_image(folder / f"{i:0{width}d}.jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])


def write_contact_sheets(dataset: Path, data: dict, frames_shown: int = 6, zoom: int = 3) -> None:
    """`contact_<type>.png`: consecutive frames around the first event of each type, side by side, enlarged."""
    for kind, name in enumerate(map(display, TYPE_NAMES)):
        for _, frames, plan in data["testing"]:
            hits = np.flatnonzero(plan == kind)
            if len(hits):
                start = max(int(hits[0]) - 1 if kind else int(hits[0]), 0)
                strip = frames[start : start + frames_shown]  # (t, h, w, 3)
                strip = np.pad(strip, ((0, 0), (0, 0), (0, 2), (0, 0)), constant_values=255)  # a white gap
                sheet = np.concatenate(list(strip), axis=1)  # (h, t * (w + 2), 3)
                sheet = cv2.resize(sheet, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_NEAREST)
                write_image(dataset / f"contact_{name}.png", sheet)
                break


def world_fingerprint(preset_name: str) -> str:
    """8 hex chars that change whenever the preset or the world's constants change (a stale cache is never used)."""
    spec = preset(preset_name)
    world = (spec, RADIUS, NORMAL_SPEED, FAST, JPEG_QUALITY, SUBPIXEL, WORLD_VERSION)
    if spec.difficulty != EASY:
        world += (spec.difficulty,)
    return hashlib.sha256(repr(world).encode()).hexdigest()[:8]


def ensure_synthetic(preset_name: str, seed: int = 0, root: str | Path | None = None, size: int | None = None) -> Path:
    """The root holding `synthetic-<preset>` rendered at `size` (None = the preset's), generated once into
    `<root or cache>/synthetic/<preset>-seed<seed>-<size>px-<fp>`.

    `make_clip_dataset(ensure_synthetic("single", size=128), "synthetic-single", ...)` is the usual call.
    """
    size = preset(preset_name).size if size is None else size
    fingerprint = world_fingerprint(preset_name)
    folder = f"{preset_name}-seed{seed}-{size}px-{fingerprint}"
    base = (Path(root) if root is not None else cache_root()) / "synthetic" / folder
    if (base / f"synthetic-{preset_name}").is_dir():
        return base
    base.mkdir(parents=True, exist_ok=True)
    try:
        write_synthetic(base, preset_name, seed, size)
    except (DataError, OSError):  # another process finished it first (exists, or rename onto it failed)
        if not (base / f"synthetic-{preset_name}").is_dir():
            raise
    return base
