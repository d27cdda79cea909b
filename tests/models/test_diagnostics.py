"""Memory diagnostics on hand-made assignments and queries
(docs/method.md#reporting-protocol-and-memory-diagnostics)."""

import math
from functools import partial

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fakes import PredictionClips
from torch import nn

from repro.evaluate import evaluate_model
from repro.models.diagnostics import (
    MemoryTally,
    camera_position_groups,
    constant_signal_videos,
    explained_query_variance,
    group_stats,
    item_determination,
    merge,
    perplexity,
)
from repro.models.mnad import MNAD, MNADMethod, MNADSignals
from repro.models.output import ModelOutput
from repro.models.read_ablation import read_ablation, replaced_read


def test_perplexity_by_hand():
    entropy = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert float(perplexity(torch.tensor([3, 1]))) == pytest.approx(math.exp(entropy))
    rows = perplexity(torch.tensor([[5, 0, 0], [1, 1, 1]]))
    torch.testing.assert_close(rows, torch.tensor([1.0, 3.0], dtype=torch.float64))


def tally_of(assignments, frames, num_items, cameras=None, num_cameras=None, batches=1):
    """The MemoryTally summary of hand-made nearest items (n,) of `frames` frames, fed in `batches` parts."""
    weights = F.one_hot(assignments, num_items).float() * 0.9 + 0.01  # nearest = the assigned item
    queries = F.normalize(torch.randn(len(assignments), 5), dim=1)
    tally = MemoryTally(num_cameras)
    per_batch = frames // batches
    rows = len(assignments) // batches
    for b in range(batches):
        part = slice(b * rows, (b + 1) * rows)
        result = ModelOutput(torch.zeros(per_batch, 3, 8, 8), queries[part], weights[part])
        tally.add(result, None if cameras is None else cameras[b * per_batch : (b + 1) * per_batch])
    return tally.summary()


def test_per_frame_perplexity_is_the_mean_over_frames_by_hand():
    assignments = torch.tensor([0, 0, 1, 1, 0, 0, 0, 0])  # frame 0 uses items 0, 1 evenly; frame 1 only item 0
    for batches in (1, 2):  # one batch or frame by frame: the same numbers
        summary = tally_of(assignments, frames=2, num_items=4, batches=batches)
        assert summary["frame_perplexity"] == pytest.approx((2 + 1) / 2)
        assert summary["perplexity"] == pytest.approx(float(perplexity(torch.tensor([6, 2]))))
        assert summary["active_fraction"] == 0.5 and summary["largest_share"] == 0.75
        assert summary["counts"] == [6, 2, 0, 0] and summary["zero_row_share"] == 0.0


def test_collapsed_assignment_has_perplexity_one():
    summary = tally_of(torch.full((3 * 16,), 7), frames=3, num_items=10)
    assert summary["perplexity"] == pytest.approx(1.0) and summary["frame_perplexity"] == pytest.approx(1.0)
    assert summary["active_fraction"] == 0.1 and summary["largest_share"] == 1.0


def test_rows_shrunk_to_zero_belong_to_no_item():
    weights = torch.tensor([[0.0, 0.0], [0.0, 1.0], [0.0, 0.0], [0.0, 0.0]])  # MemAE: three rows fully shrunk
    tally = MemoryTally()
    tally.add(ModelOutput(torch.zeros(2, 3, 4, 4), torch.randn(4, 3), weights))
    summary = tally.summary()
    assert summary["counts"] == [0, 1] and summary["zero_row_share"] == 0.75
    assert summary["frame_perplexity"] == 1.0  # frame 1 has no item: left out of the mean


def test_items_fixed_by_camera_and_position_explain_everything_while_pooled_use_looks_healthy():
    frames, positions, items = 12, 4, 10
    cameras = torch.arange(frames) % 3  # (f,) three cameras
    position = torch.arange(positions).repeat(frames)  # (n,)
    assignments = (cameras.repeat_interleave(positions) * 2 + position // 2) % items  # item = f(camera, position)
    groups = camera_position_groups(cameras, positions)
    queries = F.normalize(torch.randn(frames * positions, 5), dim=1)  # (n, d): not used by the determination
    determination = item_determination(group_stats(queries, assignments, groups, 3 * positions, items))
    assert determination.explained_share == pytest.approx(1.0) and determination.conditional_entropy == pytest.approx(0)
    summary = tally_of(assignments, frames, items, cameras=cameras, num_cameras=3, batches=3)
    assert summary["perplexity"] == pytest.approx(6.0)  # six items, evenly: "no collapse" when pooled
    assert summary["frame_perplexity"] == pytest.approx(2.0)  # but each frame reads two
    assert summary["camera_position_item_share"] == pytest.approx(1.0)  # merged over the three batches
    assert summary["camera_position_item_entropy"] == pytest.approx(0.0, abs=1e-9)


def test_camera_position_groups_are_row_major_per_frame():
    assert camera_position_groups(torch.tensor([0, 2]), 3).tolist() == [0, 1, 2, 6, 7, 8]


def _determination(assignments, groups, num_items=3):
    queries = F.normalize(torch.ones(len(assignments), 2), dim=1)
    return item_determination(group_stats(queries, torch.tensor(assignments), torch.tensor(groups), 10, num_items))


def test_item_independent_of_its_group_is_not_explained():
    determination = _determination([0, 1, 0, 1], [5, 5, 9, 9])
    assert determination.conditional_entropy == pytest.approx(math.log(2))
    assert determination.explained_share == pytest.approx(0.0)
    half = _determination([0, 0, 1, 2], [0, 0, 1, 1])  # group 1 leaves one bit of its two queries' items
    item_entropy = -(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25))
    assert half.explained_share == pytest.approx(1 - 0.5 * math.log(2) / item_entropy)
    assert _determination([2, 2, 2, 2], [0, 1, 2, 3]).explained_share == 1.0  # one item: nothing left to explain


def _explained(queries, groups):
    stats = group_stats(queries, torch.zeros(len(queries), dtype=torch.long), torch.tensor(groups), 4, 1)
    return explained_query_variance(stats)


def test_explained_query_variance_by_hand():
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    assert _explained(torch.stack([a, a, b, b]), [0, 0, 1, 1]) == pytest.approx(1.0)
    assert _explained(torch.stack([a, b, a, b]), [0, 0, 1, 1]) == pytest.approx(0.0)
    # group means (a + b) / 2 and a: between-group sum of squares 0.25, total 0.75 (hand-computed)
    assert _explained(torch.stack([a, b, a, a]), [0, 0, 1, 1]) == pytest.approx(0.25 / 0.75)


def test_group_stats_of_two_batches_merge_to_the_stats_of_both():
    queries = F.normalize(torch.randn(12, 4), dim=1)
    assignments, groups = torch.randint(3, (12,)), torch.randint(5, (12,))
    whole = group_stats(queries, assignments, groups, 5, 3)
    merged = merge(group_stats(queries[:7], assignments[:7], groups[:7], 5, 3),
                   group_stats(queries[7:], assignments[7:], groups[7:], 5, 3))  # fmt: skip
    for x, y in zip(whole, merged):
        torch.testing.assert_close(x, y)
    means = torch.stack([queries[groups == g].mean(dim=0) if (groups == g).any() else torch.zeros(4) for g in range(5)])
    within = ((queries - means[groups]) ** 2).sum()  # the direct two-pass form
    total = ((queries - queries.mean(dim=0)) ** 2).sum()
    assert explained_query_variance(whole) == pytest.approx(float(1 - within / total))


def test_constant_signal_videos_counts_the_studys_nan_cause():
    signal = np.array([1.0, 1.0, 1.0, 2.0, 3.0, 5.0])
    assert constant_signal_videos(signal, np.array([0, 0, 0, 1, 1, 2])) == 2  # video 0 flat, video 2 one frame
    assert constant_signal_videos(signal[3:5], np.array([4, 4])) == 0


# ------------------------------------------------------------------------------------- read ablation
def _model() -> MNAD:
    torch.manual_seed(0)
    return MNAD(task="pred", width=2).eval()


def ablation(model):
    score = partial(evaluate_model, model, MNADMethod(), device=torch.device("cpu"), batch_size=4, progress=False)
    return read_ablation(model, score, PredictionClips(), MNADSignals, lam=0.6)


def test_read_ablation_of_a_decoder_that_ignores_the_read_is_zero_db():
    model = _model()
    d = model.memory.items.shape[1]
    with torch.no_grad():
        model.decoder.block[0].weight[:, d:] = 0  # the decoder's first conv no longer sees the read half
    result = ablation(model)
    assert set(result) == {"zeros", "mean", "shuffled"}
    for fill in ("zeros", "mean", "shuffled"):
        assert result[fill] == {"psnr_change": pytest.approx(0.0, abs=1e-9), "auc_change": 0.0}, fill


class ReadOnlyDecoder(nn.Module):
    """A decoder that is its read alone: (b, 2d, h', w') -> (b, 3, 8h', 8w'), the read's first 3 channels
    sharpened around 0.2 (a typical entry of d = 16 positive unit items) and enlarged 8 times."""

    def forward(self, x, skips):
        read = x[:, x.shape[1] // 2 :][:, :3]  # (b, 3, h', w')
        return torch.tanh(100 * (read - 0.2)).repeat_interleave(8, dim=2).repeat_interleave(8, dim=3)


def test_read_ablation_of_a_decoder_that_relies_on_the_read_moves_psnr():
    model = _model()
    model.decoder = ReadOnlyDecoder()
    result = ablation(model)
    assert min(abs(result[fill]["psnr_change"]) for fill in ("zeros", "mean", "shuffled")) > 1e-3


def test_replaced_read_feeds_the_decoder_the_query_and_the_fill_then_restores():
    model = _model()
    x = torch.randn(2, 12, 32, 32)
    with torch.no_grad():
        original = model(x).output
        features, skips = model.encoder(x)
        queries = F.normalize(features, dim=1)  # (b, d, h, w)
        items = model.memory.items
        weights = torch.einsum("bdhw,md->bhwm", queries, items).softmax(dim=-1)
        shuffled_read = torch.einsum("bhwm,md->bdhw", weights, items.roll(-1, dims=0))
        for fill, read in (("zeros", torch.zeros_like(queries)), ("shuffled", shuffled_read)):
            expected = model.decoder(torch.cat([queries, read], dim=1), skips)
            with replaced_read(model, fill):
                torch.testing.assert_close(model(x).output, expected)
        torch.testing.assert_close(model(x).output, original)  # the hook is gone
    with pytest.raises(ValueError, match="allowed: zeros, mean, shuffled"):
        with replaced_read(model, "ones"):
            pass
    with pytest.raises(ValueError, match="no MNAD memory read"):
        with replaced_read(MNAD(width=2, memory=False), "zeros"):
            pass
