"""The per-frame signals and the sequential test-time update (docs/method.md#memory, #scoring-and-evaluation)."""

import pytest
import torch

from repro.evaluate import signals_step
from repro.models.memory import update_memory
from repro.models.mnad import MNAD, MNADMethod
from repro.scoring import feature_distance, frame_mse, psnr, regular_score

METHOD = MNADMethod()


def frame_signals(model, x, target):
    return signals_step(METHOD, model, x, target)


def step(model, x, target, gamma):
    return signals_step(METHOD, model, x, target, gamma=gamma)[0]


@pytest.fixture
def model():
    return MNAD(width=4).eval()


def test_frame_signals_match_scoring_functions(model):
    x, target = torch.rand(3, 12, 32, 32) * 2 - 1, torch.rand(3, 3, 32, 32) * 2 - 1
    signals, result = frame_signals(model, x, target)
    torch.testing.assert_close(signals.psnr, psnr(frame_mse(result.output, target)))
    torch.testing.assert_close(signals.regular, regular_score(result.output, target))
    torch.testing.assert_close(signals.distance, feature_distance(result.queries, model.memory.items, frames=3))
    assert signals.distance.shape == (3,)


def test_batched_signals_equal_frame_by_frame(model):
    x, target = torch.rand(4, 12, 32, 32) * 2 - 1, torch.rand(4, 3, 32, 32) * 2 - 1
    batched, _ = frame_signals(model, x, target)
    singles = [frame_signals(model, x[i : i + 1], target[i : i + 1])[0] for i in range(4)]
    torch.testing.assert_close(batched.psnr, torch.cat([s.psnr for s in singles]))
    torch.testing.assert_close(batched.distance, torch.cat([s.distance for s in singles]))


def test_update_happens_only_below_gamma(model):
    x, target = torch.rand(1, 12, 32, 32) * 2 - 1, torch.rand(1, 3, 32, 32) * 2 - 1
    old = model.memory.items.clone()
    signals = step(model, x, target, gamma=-1.0)  # the regular score is never negative
    assert torch.equal(model.memory.items, old)
    queries = model(x).queries
    signals_again = step(model, x, target, gamma=float("inf"))
    torch.testing.assert_close(model.memory.items, update_memory(queries, old))
    torch.testing.assert_close(signals.distance, signals_again.distance)  # distance uses the items before update


def test_scratch_restores_trained_items(model):
    old = model.memory.items.clone()
    with model.memory.scratch():
        step(model, torch.rand(1, 12, 32, 32), torch.rand(1, 3, 32, 32), gamma=float("inf"))
        assert not torch.equal(model.memory.items, old)
    assert torch.equal(model.memory.items, old)


def test_step_needs_one_frame(model):
    with pytest.raises(ValueError, match="one frame"):
        step(model, torch.rand(2, 12, 32, 32), torch.rand(2, 3, 32, 32), gamma=0.01)


def test_the_test_time_update_writes_the_items_in_place_and_training_replaces_them(model):
    """In place at test time (a captured CUDA graph replays the update on the live buffer); a new tensor in
    training (the step's read weights still need the old items for backward)."""
    queries = torch.nn.functional.normalize(torch.rand(6, model.memory.items.shape[1]), dim=1)
    address, expected = model.memory.items.data_ptr(), update_memory(queries, model.memory.items)
    model.memory.update(queries)
    assert model.memory.items.data_ptr() == address
    torch.testing.assert_close(model.memory.items, expected)
    held = model.memory.items
    model.train().memory.update(queries)
    assert model.memory.items.data_ptr() != address and torch.equal(held, expected)
