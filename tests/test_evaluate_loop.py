"""The evaluation loop over a clip dataset: order, batching, test-time update, per-video reset."""

import numpy as np
import pytest
import torch

from repro.evaluate import collect_examples, evaluate_model
from repro.models.mnad import MNAD, MNADSettings
from repro.models.registry import METHODS


class TinyClips(torch.utils.data.Dataset):
    """Two videos of random prediction clips in the data layer's item format."""

    def __init__(self, per_video=5, size=16):
        g = torch.Generator().manual_seed(0)
        self.items = [
            {
                "input": torch.rand(4, 3, size, size, generator=g) * 2 - 1,
                "target": torch.rand(1, 3, size, size, generator=g) * 2 - 1,
                "video": video,
                "frame": 4 + i,
                "label": int(i >= 3),
                "anomaly_type": 2 * int(i >= 3),
            }
            for video in range(2)
            for i in range(per_video)
        ]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        return self.items[index]


@pytest.fixture
def setup():
    torch.manual_seed(0)
    return MNAD(width=4).eval(), METHODS["mnad"], TinyClips(), torch.device("cpu")


def evaluate(setup, **kwargs):
    model, entry, data, device = setup
    options = dict(test_time_update=False, gamma=0.01, batch_size=3, progress=False) | kwargs
    return evaluate_model(model, entry, data, device, **options)


def test_signals_are_in_dataset_order_with_labels(setup):
    signals = evaluate(setup)
    assert signals["video"].tolist() == [0] * 5 + [1] * 5
    assert signals["frame"].tolist() == [4, 5, 6, 7, 8] * 2
    assert signals["label"].tolist() == [0, 0, 0, 1, 1] * 2
    assert set(signals) >= {"psnr", "distance", "regular", "item_counts"}
    assert signals["item_counts"].sum() == 10 * (16 // 8) ** 2  # every query of every frame is assigned once


def test_batched_equals_sequential_without_update(setup):
    batched = evaluate(setup)
    one_by_one = evaluate(setup, batch_size=1)
    np.testing.assert_allclose(batched["psnr"], one_by_one["psnr"], rtol=1e-5)
    np.testing.assert_allclose(batched["distance"], one_by_one["distance"], rtol=1e-5)


def test_update_changes_later_frames_and_restores_items(setup):
    model = setup[0]
    trained = model.memory.items.clone()
    fixed = evaluate(setup)
    updated = evaluate(setup, test_time_update=True, gamma=float("inf"))
    assert torch.equal(model.memory.items, trained)  # the trained items are never mutated
    assert updated["distance"][0] == pytest.approx(fixed["distance"][0], rel=1e-5)  # first frame: trained items
    assert not np.allclose(updated["distance"][1:], fixed["distance"][1:])


def test_reset_per_video_starts_each_video_from_the_trained_items(setup):
    fixed = evaluate(setup)
    carried = evaluate(setup, test_time_update=True, gamma=float("inf"))
    reset = evaluate(setup, test_time_update=True, gamma=float("inf"), reset_memory_per_video=True)
    assert reset["distance"][5] == pytest.approx(fixed["distance"][5], rel=1e-5)
    assert carried["distance"][5] != pytest.approx(fixed["distance"][5], rel=1e-5)
    np.testing.assert_allclose(reset["distance"][:5], carried["distance"][:5], rtol=1e-6)


def test_collect_examples_one_frame_per_type_and_queries(setup):
    model, entry, data, device = setup
    signals = evaluate(setup)
    examples = collect_examples(
        model, entry, entry.layout(MNADSettings(task="pred")), data, signals, device, max_frames_for_queries=4
    )
    assert examples["example_type"].tolist() == [0, 2]
    assert examples["example_output"].shape == (2, 16, 16, 3)
    assert 0 <= examples["example_target"].min() and examples["example_target"].max() <= 1
    normal = np.flatnonzero(signals["anomaly_type"] == 0)
    median = normal[np.argsort(signals["psnr"][normal])[len(normal) // 2]]
    shown = (data[int(median)]["input"][-1].permute(1, 2, 0) + 1) / 2  # the last input frame of that clip
    np.testing.assert_allclose(examples["example_input"][0], shown, rtol=1e-6)
    assert examples["queries"].shape == (4 * 2 * 2, 32)
    assert examples["items"].shape == (10, 32)
    assert examples["assignments"].max() < 10
