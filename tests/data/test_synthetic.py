"""Synthetic moving shapes: deterministic, typed, and speed alone marks a temporal anomaly (SPEC sec. 9)."""

import hashlib

import numpy as np
import pytest

from repro.data.layout import find_videos
from repro.data.synthetic import FAST, NORMAL_SPEED, PRESETS, ensure_synthetic, generate, lane_centres, write_synthetic


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


STAND_INS = [name for name in PRESETS if name != "tiny"]


def test_tiny_preset_still_holds_every_type():
    data = generate("tiny", seed=0, size=16)
    types = np.concatenate([kinds for _, kinds in data["testing"]])
    assert set(np.unique(types)) == {0, 1, 2, 3}
    assert all((kinds == 0).all() for _, kinds in data["training"])


@pytest.mark.parametrize("preset", STAND_INS)
def test_types_sizes_and_normal_training(preset):
    data = generate(preset, seed=0, size=16)
    train_types = np.concatenate([types for _, types in data["training"]])
    test_types = np.concatenate([types for _, types in data["testing"]])
    assert (train_types == 0).all() and 480 <= len(train_types) <= 560  # about a minute of training
    assert 600 <= len(test_types) <= 900
    assert set(np.unique(test_types)) == {0, 1, 2, 3}
    assert 0.3 <= (test_types != 0).mean() <= 0.5
    assert data["testing"][0][0].shape[1:] == (16, 16, 3)


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
    frames, types = next((f, t) for f, t in generate("single", seed=0, size=size)["testing"] if (t == 2).any())
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
