"""Synthetic moving shapes: deterministic, typed, and speed alone marks a temporal anomaly
(docs/data.md#synthetic-moving-shapes-built-in-no-download)."""

import hashlib

import cv2
import numpy as np
import pytest

from repro.data import synthetic
from repro.data.layout import DataError, find_videos, video_cameras
from repro.data.synthetic import (
    FAST,
    NORMAL_SPEED,
    PRESETS,
    RADIUS,
    ensure_synthetic,
    generate,
    lane_centres,
    world_fingerprint,
    write_synthetic,
)


def _digest(folder):
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return {str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest() for p in files}


def test_same_seed_identical_bytes_other_seed_differs(tmp_path):
    a = write_synthetic(tmp_path / "a", "single", seed=7, size=32)
    b = write_synthetic(tmp_path / "b", "single", seed=7, size=32)
    c = write_synthetic(tmp_path / "c", "single", seed=8, size=32)
    assert _digest(a) == _digest(b)
    assert _digest(a) != _digest(c)
    assert {"contact_normal.png", "contact_spatial.png", "contact_temporal.png", "contact_spatio-temporal.png"} <= {
        p.name for p in a.iterdir()
    }


STAND_INS = ["single", "busy", "scenes"]


def test_tiny_preset_still_holds_every_type():
    data = generate("tiny", seed=0, size=16)
    types = np.concatenate([kinds for _, _, kinds in data["testing"]])
    assert set(np.unique(types)) == {0, 1, 2, 3}
    assert all((kinds == 0).all() for _, _, kinds in data["training"])


@pytest.mark.parametrize("preset", STAND_INS)
def test_types_sizes_and_normal_training(preset):
    data = generate(preset, seed=0, size=16)
    train_types = np.concatenate([types for _, _, types in data["training"]])
    test_types = np.concatenate([types for _, _, types in data["testing"]])
    assert (train_types == 0).all() and 480 <= len(train_types) <= 560  # about a minute of training
    assert 600 <= len(test_types) <= 900
    assert set(np.unique(test_types)) == {0, 1, 2, 3}
    assert 0.3 <= (test_types != 0).mean() <= 0.5
    assert data["testing"][0][1].shape[1:] == (16, 16, 3)


def _object_free_rows(lanes, size):
    """Rows that no object ever touches (farther than radius + 2 px of anti-aliasing from every lane)."""
    distance = np.abs(np.arange(size)[:, None] - lane_centres(lanes, size)[None, :]).min(axis=1)  # (size,)
    return np.flatnonzero(distance > RADIUS * size + 2)


@pytest.mark.parametrize("preset", ["scenes", "busy", "cameras"])
def test_a_scene_is_a_camera_its_background_is_shared_by_training_and_testing(preset):
    spec, size = PRESETS[preset], 64
    data = generate(preset, seed=3, size=size)
    rows = _object_free_rows(spec.lanes, size)
    assert len(rows) >= 3
    backgrounds = {}
    for split in ("training", "testing"):
        for name, frames, _ in data[split]:
            strip = frames[:, rows]  # (t, rows, w, 3): never touched by an object, so the same in every frame
            assert (strip == strip[:1]).all()
            backgrounds.setdefault(video_cameras([name])[0], []).append(strip[0])
    for scene, strips in backgrounds.items():
        assert all(np.array_equal(strips[0], other) for other in strips[1:]), f"scene {scene} changes background"
    firsts = [strips[0] for strips in backgrounds.values()]
    assert all(not np.array_equal(a, b) for i, a in enumerate(firsts) for b in firsts[i + 1 :])


def test_fingerprint_changes_with_the_world_version(monkeypatch):
    before = world_fingerprint("single")
    monkeypatch.setattr(synthetic, "WORLD_VERSION", synthetic.WORLD_VERSION + 1)
    assert world_fingerprint("single") != before  # a cache of the old world is never reused


def _lane_displacements(previous, current, lanes):
    """Per lane, the circular horizontal shift (px) that best maps the previous frame's lane onto the current."""
    shifts = []
    for row in lane_centres(lanes, previous.shape[0]).astype(int):
        a, b = (f[row - 2 : row + 3].astype(float).sum(axis=(0, 2)) for f in (previous, current))  # (w,)
        a, b = a - a.mean(), b - b.mean()
        correlation = np.fft.ifft(np.fft.fft(b) * np.conj(np.fft.fft(a))).real  # (w,) over shifts
        shifts.append(int(np.argmax(correlation)))
    return np.array(shifts)


def test_temporal_frames_have_a_lane_at_the_fast_speed():
    size, spec = 64, PRESETS["single"]
    normal, fast = round(NORMAL_SPEED * size), round(FAST * NORMAL_SPEED * size)
    frames, types = next((f, t) for _, f, t in generate("single", seed=0, size=size)["testing"] if (t == 2).any())
    for t in np.flatnonzero(types == 2)[1:6]:
        shifts = _lane_displacements(frames[t - 1], frames[t], spec.lanes)
        assert sorted(shifts.tolist()) == sorted([fast] + [normal] * (spec.lanes - 1))
    for t in np.flatnonzero(types == 0)[1:6]:
        assert _lane_displacements(frames[t - 1], frames[t], spec.lanes).tolist() == [normal] * spec.lanes


def test_ensure_synthetic_generates_once(tmp_path):
    root = ensure_synthetic("single", seed=0, root=tmp_path)
    videos = find_videos(root, "synthetic-single", "testing")
    stamp = videos[0].frames[0].stat().st_mtime_ns
    assert ensure_synthetic("single", seed=0, root=tmp_path) == root
    assert videos[0].frames[0].stat().st_mtime_ns == stamp
    assert np.load(root / "synthetic-single" / "testing" / "labels.npy").shape == (sum(map(len, videos)),)


def test_cameras_preset_more_cameras_than_items_distinct_looks_and_every_type_per_split(tmp_path):
    spec = PRESETS["cameras"]
    assert len(spec.scenes) >= 13 and spec.size >= 128
    assert len({scene.background for scene in spec.scenes}) == len({scene.colour for scene in spec.scenes}) == 13
    data = generate("cameras", seed=0, size=32)
    for split in ("training", "testing"):
        names = [name for name, _, _ in data[split]]
        assert names == sorted(names) and sorted(set(video_cameras(names))) == list(range(13))
    test_types = np.concatenate([types for _, _, types in data["testing"]])
    assert set(np.unique(test_types)) == {0, 1, 2, 3}
    assert sum(len(types) for _, _, types in data["training"]) <= 600  # a 128x128 run stays minutes on a CPU


def test_written_at_the_presets_size_unless_asked_and_cameras_known_from_names(tmp_path):
    dataset = write_synthetic(tmp_path, "tiny")
    videos = find_videos(tmp_path, "synthetic-tiny", "testing")
    assert cv2.imread(str(videos[0].frames[0])).shape == (64, 64, 3)
    assert [v.name for v in videos] == ["00_0000", "00_0001"] and video_cameras([v.name for v in videos]) == [0, 0]
    assert (dataset / "testing" / "labels.npy").exists()
    root = ensure_synthetic("single", seed=0, root=tmp_path / "cache", size=32)
    frame = find_videos(root, "synthetic-single", "training")[0].frames[0]
    assert cv2.imread(str(frame)).shape == (32, 32, 3)  # rendered at the run's size, not resized


def test_video_cameras_from_names():
    assert video_cameras(["01_0014", "01_0015", "12_0003"]) == [1, 1, 12]  # ShanghaiTech's names
    assert video_cameras(["01", "02"]) == [0, 0]  # one camera: Ped2, Avenue
    with pytest.raises(DataError, match="'07' has no camera prefix"):
        video_cameras(["01_0001", "07"])
