"""Clip datasets: windows, scored-frame alignment, value range, salt-and-pepper
(docs/method.md#scoring-and-evaluation, #the-reproduction-studys-ablations, #baselines)."""

import numpy as np
import pytest
import torch

from repro.data.clips import ClipDataset, item_positions, make_clip_dataset
from repro.data.synthetic import write_synthetic


def _videos(lengths, c=3, size=6):
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (t, size, size, c), dtype=np.uint8) for t in lengths]


def _scaled(frames):
    return torch.from_numpy(np.array(frames)).permute(0, 3, 1, 2).float() / 255 * 2 - 1


@pytest.mark.parametrize(
    "in_frames, predict, offset, first, last_unscored",
    [
        (4, True, 4, 4, 0),  # MNAD prediction: the first 4 frames are not scored
        (1, False, 0, 0, 0),  # reconstruction: every frame
        (16, False, 8, 8, 7),  # MemAE: the first 8 and the last 7
        (10, False, 5, 5, 4),  # ConvLSTM
    ],
)
def test_scored_frames_per_layout(in_frames, predict, offset, first, last_unscored):
    videos = _videos([20, 17])
    dataset = ClipDataset(videos, in_frames, predict, offset)
    for v, length in enumerate((20, 17)):
        scored = dataset.item_frame[dataset.item_video == v]
        np.testing.assert_array_equal(scored, np.arange(first, length - last_unscored))
    video, frame = item_positions([20, 17], in_frames, predict, offset)
    np.testing.assert_array_equal(video, dataset.item_video)
    np.testing.assert_array_equal(frame, dataset.item_frame)


def test_prediction_item_shapes_and_alignment():
    videos = _videos([9, 7])
    dataset = ClipDataset(videos, 4, True, 4, labels=[np.arange(9) % 2, np.ones(7, int)])
    item = dataset[5]  # video 0 has 9 - 5 + 1 = 5 items: item 5 is video 1's first
    assert (item["video"], item["frame"], item["label"], item["anomaly_type"]) == (1, 4, 1, -1)
    assert item["input"].shape == (4, 3, 6, 6) and item["target"].shape == (1, 3, 6, 6)
    assert item["input"].dtype == torch.float32
    torch.testing.assert_close(item["input"], _scaled(videos[1][0:4]))
    torch.testing.assert_close(item["target"], _scaled(videos[1][4:5]))
    assert item["input"].min() >= -1 and item["input"].max() <= 1


def test_reconstruction_target_is_the_clean_input():
    dataset = ClipDataset(_videos([3], c=1), 1, False, 0, salt_pepper=0.3, anomaly_types=[np.array([0, 2, 3])])
    item = dataset[1]
    assert item["input"].shape == item["target"].shape == (1, 1, 6, 6)
    assert item["anomaly_type"] == 2 and item["label"] == -1
    torch.testing.assert_close(item["target"], _scaled(_videos([3], c=1)[0][1:2]))


def test_salt_and_pepper_fraction_inputs_only_and_deterministic():
    grey = [np.full((6, 32, 32, 3), 128, np.uint8)]
    dataset = ClipDataset(grey, 4, True, 4, salt_pepper=0.25, seed=3)
    item = dataset[0]
    noisy = item["input"].abs() > 0.9  # 0 -> -1 and 1 -> +1 on the [-1, 1] scale; grey stays near 0
    assert abs(noisy.float().mean().item() - 0.25) < 0.02
    values = item["input"][noisy]
    assert set(values.unique().tolist()) == {-1.0, 1.0} and abs((values > 0).float().mean().item() - 0.5) < 0.05
    assert (item["target"].abs() < 0.01).all()  # the target stays clean
    torch.testing.assert_close(dataset[0]["input"], item["input"])
    assert not torch.equal(ClipDataset(grey, 4, True, 4, salt_pepper=0.25, seed=4)[0]["input"], item["input"])


def test_make_clip_dataset_on_the_synthetic_layout(tmp_path):
    dataset_dir = write_synthetic(tmp_path, "single", seed=0, size=16)
    common = dict(in_frames=4, predict=True, scored_offset=4, size=16, cache_dir=tmp_path / "cache")
    testing = make_clip_dataset(tmp_path, "synthetic-single", "testing", **common)
    labels = np.load(dataset_dir / "testing" / "labels.npy")
    types = np.load(dataset_dir / "testing" / "anomaly_types.npy")
    offsets = np.concatenate([[0], np.cumsum(testing.num_frames_per_video)[:-1]])
    for index in (0, 100, len(testing) - 1):
        item = testing[index]
        flat = offsets[item["video"]] + item["frame"]
        assert (item["label"], item["anomaly_type"]) == (labels[flat], types[flat])
    assert len(testing) == sum(n - 4 for n in testing.num_frames_per_video)
    training = make_clip_dataset(tmp_path, "synthetic-single", "training", grayscale=True, **common)
    assert training[0]["input"].shape == (4, 1, 16, 16) and training[0]["label"] == -1
