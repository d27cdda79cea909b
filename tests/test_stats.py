import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from repro.stats import (
    _class_counts,
    _resampled_aucs,
    _video_index,
    _video_wins,
    bootstrap_auc_over_videos,
    bootstrap_difference_over_videos,
    mean_std,
    memory_usage_summary,
    seed_difference_interval,
)


def videos(n_videos: int, frames: int = 40, signal: float = 1.0, seed: int = 0):
    """Scores, labels, video ids: every video has an anomalous middle third scored `signal` higher on average."""
    rng = np.random.default_rng(seed)
    labels = np.tile((np.arange(frames) >= frames // 3) & (np.arange(frames) < 2 * frames // 3), n_videos).astype(int)
    scores = rng.normal(size=labels.size) + signal * labels
    return scores, labels, np.repeat(np.arange(n_videos) * 7 + 3, frames)  # ids need not be 0..v-1


def test_mean_std_hand_computed():
    n, mean, std = mean_std(np.array([1.0, 2.0, 6.0]))
    assert (n, mean) == (3, 3.0)
    assert std == pytest.approx(np.sqrt(((1 - 3) ** 2 + (2 - 3) ** 2 + (6 - 3) ** 2) / 2))


def test_mean_std_single_value_has_zero_std_and_empty_is_an_error():
    assert mean_std([0.9]) == (1, 0.9, 0.0)
    with pytest.raises(ValueError, match="at least one value"):
        mean_std([])
    with pytest.raises(ValueError, match="finite"):
        mean_std([1.0, np.nan])


def test_seed_difference_interval_is_the_paired_t_interval():
    a, b = np.array([90.0, 91.0, 89.0, 90.5]), np.array([93.0, 95.0, 92.0, 94.0])
    difference, low, high = seed_difference_interval(a, b)
    d = b - a
    half = 3.182446305284263 * d.std(ddof=1) / 2  # t_{0.975, 3}, sqrt(4) = 2
    assert difference == pytest.approx(d.mean())
    assert (low, high) == pytest.approx((d.mean() - half, d.mean() + half))


def test_seed_difference_interval_with_one_seed_has_no_interval():
    difference, low, high = seed_difference_interval([90.0], [94.0])
    assert difference == 4.0 and np.isnan(low) and np.isnan(high)
    with pytest.raises(ValueError, match="equally many"):
        seed_difference_interval([1.0, 2.0], [1.0])


def test_resampled_auc_equals_sklearn_on_the_concatenated_resample():
    """The weighted closed form of one resample equals sklearn on the frames of the drawn videos, ties included."""
    scores, labels, ids = videos(6, frames=12)
    scores = np.round(scores, 1)  # ties within and across videos
    drawn = ids[::12][[0, 0, 2, 3, 5, 5]]
    frames = np.concatenate([np.nonzero(ids == v)[0] for v in drawn])
    expected = roc_auc_score(labels[frames], scores[frames])
    video, n = _video_index(ids)
    positive, normal = _class_counts(labels, video, n)
    counts = np.array([[2.0, 0, 1, 1, 0, 2]])
    (auc,) = _resampled_aucs(_video_wins(scores, labels, video, n), positive, normal, counts)
    assert auc == pytest.approx(expected)


def test_bootstrap_interval_contains_the_point_auc_and_narrows_with_more_videos():
    scores, labels, ids = videos(10)
    low, high = bootstrap_auc_over_videos(scores, labels, ids, n_boot=500)
    assert low < roc_auc_score(labels, scores) < high
    many = videos(80)
    wide_low, wide_high = low, high
    low, high = bootstrap_auc_over_videos(*many, n_boot=500)
    assert low < roc_auc_score(many[1], many[0]) < high
    assert high - low < (wide_high - wide_low) / 2


def test_bootstrap_is_seeded():
    data = videos(10)
    assert bootstrap_auc_over_videos(*data, n_boot=200, seed=3) == bootstrap_auc_over_videos(*data, n_boot=200, seed=3)


def test_bootstrap_needs_both_classes():
    scores, _, ids = videos(4)
    with pytest.raises(ValueError, match="both normal"):
        bootstrap_auc_over_videos(scores, np.zeros_like(scores), ids)


def test_bootstrap_difference_sees_a_better_variant_and_not_an_identical_one():
    scores, labels, ids = videos(20, signal=0.5)
    better = scores + 1.5 * labels
    difference, low, high = bootstrap_difference_over_videos(scores, better, labels, ids, n_boot=500)
    assert difference == pytest.approx(roc_auc_score(labels, better) - roc_auc_score(labels, scores))
    assert 0 < low < difference < high
    assert bootstrap_difference_over_videos(scores, scores, labels, ids, n_boot=100) == (0.0, 0.0, 0.0)


def test_memory_usage_summary_hand_computed():
    assert memory_usage_summary(np.full(10, 7)) == (1.0, pytest.approx(10.0))
    assert memory_usage_summary(np.array([0, 0, 42, 0])) == (0.25, 1.0)
    active, perplexity = memory_usage_summary(np.array([1, 3, 0, 0]))
    assert active == 0.5 and perplexity == pytest.approx(np.exp(-(0.25 * np.log(0.25) + 0.75 * np.log(0.75))))
    with pytest.raises(ValueError, match="positive total"):
        memory_usage_summary(np.zeros(4))
