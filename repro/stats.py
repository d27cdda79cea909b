"""Uncertainty of reported numbers: mean ± std over seeds, bootstrap intervals over videos, differences.

Arrays in, numbers out. Two kinds of difference, both "second minus first" (variant minus baseline):
- `seed_difference_interval`: several seeds per variant, paired by seed, t-interval of the mean difference;
- `bootstrap_difference_over_videos`: one run per variant scored on the same frames, paired bootstrap over
  videos of AUC(b) - AUC(a).

The bootstraps resample whole videos with replacement (frames within a video are not independent). A
resample weights each video by how often it was drawn, so its pooled AUC is c^T W c / ((c·p)(c·q)) with c
the draw counts, W[u, v] the wins of video u's anomalous frames over video v's normal frames (ties count
half: the trapezoidal ROC AUC of sklearn), p and q the anomalous and normal frames per video. W is built
once, and every resample is then a small matrix product.
"""

from __future__ import annotations

import numpy as np
from scipy import stats as scipy_stats


def mean_std(values: np.ndarray) -> tuple[int, float, float]:
    """(n, mean, sample std with ddof=1) of finite values; std is 0.0 for a single value (read n before it)."""
    values = np.asarray(values, dtype=float).ravel()
    if values.size == 0:
        raise ValueError("mean_std needs at least one value, got none")
    if not np.isfinite(values).all():
        raise ValueError(f"mean_std needs finite values, got {values.tolist()}")
    std = float(values.std(ddof=1)) if values.size > 1 else 0.0
    return values.size, float(values.mean()), std


def seed_difference_interval(
    values_a: np.ndarray, values_b: np.ndarray, confidence: float = 0.95
) -> tuple[float, float, float]:
    """(mean of b - a, low, high): paired t-interval over seeds (a[i] and b[i] share seed i).

    With one seed the interval is (nan, nan): a single pair says nothing about the noise.
    """
    a, b = np.asarray(values_a, dtype=float).ravel(), np.asarray(values_b, dtype=float).ravel()
    if a.size != b.size or a.size == 0:
        raise ValueError(f"paired seeds need equally many values (at least one) on both sides, got {a.size}, {b.size}")
    n, difference, std = mean_std(b - a)
    if n == 1:
        return difference, float("nan"), float("nan")
    half_width = scipy_stats.t.ppf((1 + confidence) / 2, df=n - 1) * std / np.sqrt(n)
    return difference, difference - half_width, difference + half_width


def _video_index(video_ids: np.ndarray) -> tuple[np.ndarray, int]:
    """Each frame's video as 0..v-1, and v."""
    _, index = np.unique(np.asarray(video_ids).ravel(), return_inverse=True)
    return index, int(index.max()) + 1


def _class_counts(labels: np.ndarray, video: np.ndarray, n_videos: int) -> tuple[np.ndarray, np.ndarray]:
    """(anomalous frames per video, normal frames per video), each (v,)."""
    positive = np.bincount(video, weights=labels == 1, minlength=n_videos)
    return positive, np.bincount(video, minlength=n_videos) - positive


def _video_wins(scores: np.ndarray, labels: np.ndarray, video: np.ndarray, n_videos: int) -> np.ndarray:
    """W (v, v): W[u, v] = sum over anomalous frames of u and normal frames of v of [s_u > s_v] + [s_u = s_v] / 2."""
    positive = labels == 1
    positive_scores, positive_video = scores[positive], video[positive]
    wins = np.zeros((n_videos, n_videos))
    for v in np.unique(video[~positive]):
        normal = np.sort(scores[~positive & (video == v)])
        below = np.searchsorted(normal, positive_scores, side="left")
        tied = np.searchsorted(normal, positive_scores, side="right") - below
        wins[:, v] = np.bincount(positive_video, weights=below + tied / 2, minlength=n_videos)
    return wins


def _checked(scores: np.ndarray, labels: np.ndarray, video_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores, labels = np.asarray(scores, dtype=float).ravel(), np.asarray(labels).ravel()
    if not scores.size == labels.size == np.asarray(video_ids).size:
        raise ValueError(
            f"scores, labels and video_ids need one value per frame, got {scores.size}, {labels.size}, "
            f"{np.asarray(video_ids).size}"
        )
    if len(np.unique(labels)) != 2:
        raise ValueError("an AUC bootstrap needs both normal (0) and anomalous (1) frames in the labels")
    return scores, labels


def _draw_counts(n_videos: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, v): how often each video is drawn in each resample of v videos with replacement."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(n_videos, np.full(n_videos, 1 / n_videos), size=n_boot).astype(float)


def _resampled_aucs(wins: np.ndarray, positive: np.ndarray, normal: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """c^T W c / ((c·p)(c·q)) for each resample c (rows of counts) that holds both classes."""
    pairs = (counts @ positive) * (counts @ normal)
    keep = pairs > 0
    if not keep.any():
        raise ValueError("no bootstrap resample contains both classes; more videos with anomalies are needed")
    c = counts[keep]
    return np.einsum("bu,uv,bv->b", c, wins, c) / pairs[keep]


def _percentiles(values: np.ndarray, confidence: float) -> tuple[float, float]:
    low, high = np.quantile(values, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(low), float(high)


def bootstrap_auc_over_videos(
    scores: np.ndarray,
    labels: np.ndarray,
    video_ids: np.ndarray,
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float]:
    """(low, high): percentile interval of the pooled micro AUC when whole videos are resampled."""
    scores, labels = _checked(scores, labels, video_ids)
    video, n_videos = _video_index(video_ids)
    positive, normal = _class_counts(labels, video, n_videos)
    wins = _video_wins(scores, labels, video, n_videos)
    aucs = _resampled_aucs(wins, positive, normal, _draw_counts(n_videos, n_boot, seed))
    return _percentiles(aucs, confidence)


def bootstrap_difference_over_videos(
    scores_a: np.ndarray,
    scores_b: np.ndarray,
    labels: np.ndarray,
    video_ids: np.ndarray,
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float, float]:
    """(AUC(b) - AUC(a), low, high): single runs of two variants on the same frames, paired bootstrap over videos."""
    scores_a, labels = _checked(scores_a, labels, video_ids)
    scores_b, _ = _checked(scores_b, labels, video_ids)
    video, n_videos = _video_index(video_ids)
    positive, normal = _class_counts(labels, video, n_videos)
    wins_a = _video_wins(scores_a, labels, video, n_videos)
    wins_b = _video_wins(scores_b, labels, video, n_videos)
    difference = (wins_b - wins_a).sum() / (positive.sum() * normal.sum())
    differences = _resampled_aucs(wins_b - wins_a, positive, normal, _draw_counts(n_videos, n_boot, seed))
    return float(difference), *_percentiles(differences, confidence)


def memory_usage_summary(counts: np.ndarray) -> tuple[float, float]:
    """(active fraction, perplexity) of nearest-item counts (m,): items used at least once / m, and
    exp(-sum p log p) with p = counts / sum and 0 log 0 = 0 (1 = collapse onto one item, m = uniform)."""
    counts = np.asarray(counts, dtype=float).ravel()
    if counts.size == 0 or (counts < 0).any() or counts.sum() == 0:
        raise ValueError(f"memory usage needs non-negative counts with a positive total, got {counts.tolist()}")
    p = counts[counts > 0] / counts.sum()
    return float((counts > 0).mean()), float(np.exp(-(p * np.log(p)).sum()))
