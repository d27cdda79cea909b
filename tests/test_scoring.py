"""Frame scoring against values worked by hand (docs/method.md#scoring-and-evaluation)."""

import math

import numpy as np
import pytest
import torch

from repro.models.method import ErrorSignals, signals_from_arrays, signals_to_arrays
from repro.models.mnad import MNADSignals
from repro.scoring import (
    ConstantSignalWarning,
    anomaly_score,
    equal_error_rate,
    feature_distance,
    frame_auc,
    frame_metrics,
    frame_mse,
    gamma_from_quantile,
    macro_auc,
    macro_auc_padded,
    minmax_per_video,
    psnr,
    regular_score,
)


def test_psnr_by_hand_and_perfect_frame():
    torch.testing.assert_close(psnr(torch.tensor([0.01, 1.0])), torch.tensor([20.0, 0.0], dtype=torch.float64))
    assert psnr(0.0).item() == pytest.approx(100.0)  # finite, above every real frame


def test_frame_mse_on_unit_scale():
    output = -torch.ones(2, 1, 2, 2)  # 0 on [0, 1]
    target = torch.stack([torch.full((1, 2, 2), 1.0), torch.tensor([[[0.0, 0.0], [-1.0, -1.0]]])])
    torch.testing.assert_close(frame_mse(output, target), torch.tensor([1.0, 0.125]))


def test_regular_score_by_hand():
    output = -torch.ones(1, 1, 1, 2)  # 0, 0 on [0, 1]
    target = torch.tensor([[[[0.0, 1.0]]]])  # 0.5, 1 on [0, 1]: e = 0.25, 1
    w = [1 - math.exp(-0.25), 1 - math.exp(-1)]
    expected = (w[0] * 0.25 + w[1] * 1.0) / (w[0] + w[1])
    assert regular_score(output, target).item() == pytest.approx(expected, rel=1e-6)
    assert regular_score(target, target).item() == 0.0  # a perfect frame


def test_feature_distance_by_hand_per_frame():
    items = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    queries = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [0.6, 0.8]])  # two frames of 2 queries
    # frame 0: 0 and (0.6, -0.2)^2 = 0.4 over 4 values; frame 1: 0 and 0.4 over 4 values
    torch.testing.assert_close(feature_distance(queries, items, frames=2), torch.tensor([0.1, 0.1]))


def test_minmax_per_video_and_constant_video_gives_zero_not_nan():
    values = np.array([1.0, 2.0, 3.0, 5.0, 5.0, 10.0, 0.0])
    videos = np.array([0, 0, 0, 1, 1, 2, 2])
    with pytest.warns(ConstantSignalWarning, match="video"):
        g = minmax_per_video(values, videos)
    np.testing.assert_allclose(g, [0, 0.5, 1, 0, 0, 1, 0])
    assert not np.isnan(g).any()


def test_anomaly_score_by_hand():
    psnr_db = np.array([30.0, 20.0, 25.0])
    distance = np.array([0.1, 0.3, 0.2])
    video = np.zeros(3, int)
    # g(psnr) = 1, 0, 0.5; 1 - g(dist) = 1, 0, 0.5 -> S = the same for any λ; score = 1 - S
    np.testing.assert_allclose(anomaly_score(psnr_db, distance, video, 0.6), [0.0, 1.0, 0.5])
    # λ = 1 ignores the distance; λ = 0 ignores PSNR
    np.testing.assert_allclose(anomaly_score(psnr_db, distance[::-1], video, 1.0), [0.0, 1.0, 0.5])
    np.testing.assert_allclose(anomaly_score(psnr_db, distance[::-1], video, 0.0), [0.5, 1.0, 0.0])  # = g(distance)


def test_anomaly_score_rejects_lambda_out_of_range_and_missing_distance():
    with pytest.raises(ValueError, match=r"must be in \[0, 1\], got 1.5"):
        anomaly_score(np.ones(2), np.ones(2), np.zeros(2), 1.5)
    with pytest.raises(ValueError, match="no memory"):
        anomaly_score(np.array([1.0, 2.0]), None, np.zeros(2), 0.5)
    np.testing.assert_allclose(anomaly_score(np.array([1.0, 2.0]), None, np.zeros(2), 1.0), [1.0, 0.0])


def test_frame_auc_eer_macro():
    scores = np.array([0.1, 0.4, 0.35, 0.8])
    labels = np.array([0, 0, 1, 1])
    assert frame_auc(scores, labels) == 0.75
    assert equal_error_rate(scores, labels) == pytest.approx(0.5)
    assert equal_error_rate(np.array([0.1, 0.2, 0.8, 0.9]), labels) == 0.0
    videos = np.array([0, 0, 1, 1])
    assert np.isnan(macro_auc(scores, labels, videos))  # neither video holds both classes
    assert macro_auc(scores, labels, np.zeros(4, int)) == 0.75
    with pytest.raises(ValueError, match="both normal and anomalous"):
        frame_auc(scores, np.zeros(4))


def test_frame_metrics_perfect_detector():
    psnr_db = np.array([30.0, 10.0, 31.0, 29.0, 12.0, 28.0])
    labels = np.array([0, 1, 0, 0, 1, 0])
    videos = np.array([0, 0, 0, 1, 1, 1])
    metrics = frame_metrics(MNADSignals(psnr_db, regular=None), labels, videos, lam=1.0)
    assert metrics.auc == 1.0 and metrics.raw_auc == 1.0 and metrics.aupr == 1.0 and metrics.eer == 0.0
    assert metrics.macro_auc == 1.0


def test_per_video_normalisation_differs_from_raw():
    # video 1 is globally darker (lower PSNR) but its own anomaly is still its minimum
    psnr_db = np.array([30.0, 25.0, 20.0, 15.0])
    labels = np.array([0, 1, 0, 1])
    videos = np.array([0, 0, 1, 1])
    metrics = frame_metrics(MNADSignals(psnr_db, regular=None), labels, videos, lam=1.0)
    assert metrics.auc == 1.0
    assert metrics.raw_auc == 0.75


def test_per_type_auc_compares_each_type_with_normal_frames_only():
    from repro.scoring import per_type_auc

    types = np.array([0, 0, 1, 2, 2, 3])
    scores = np.array([0.1, 0.2, 0.9, 0.15, 0.05, 0.8])
    aucs = per_type_auc(scores, types)
    assert aucs["spatial"] == 1.0 and aucs["spatio_temporal"] == 1.0
    assert aucs["temporal"] == 0.25  # (0.15 beats 0.1; 0.05 beats none) / 4 pairs


def test_typed_signals_score_themselves_and_know_their_lambdas():
    baseline = ErrorSignals(np.array([1.0, 3.0, 2.0]))
    np.testing.assert_allclose(baseline.score(np.zeros(3, int), 0.6), [0.0, 1.0, 0.5])  # λ means nothing here
    assert baseline.lambdas((0.5, 1.0)) == (1.0,) and baseline.default_lambda(0.6) == 1.0
    mnad = MNADSignals(psnr=np.array([3.0, 1.0]), regular=np.array([0.1, 0.1]), distance=np.array([0.1, 0.2]))
    np.testing.assert_allclose(mnad.score(np.zeros(2, int), 0.5), [0.0, 1.0])
    assert mnad.lambdas((0.5, 1.0)) == (0.5, 1.0) and mnad.default_lambda(0.6) == 0.6
    without_memory = mnad._replace(distance=None)
    assert without_memory.lambdas((0.5, 1.0)) == (1.0,) and without_memory.default_lambda(0.6) == 1.0


def test_signals_round_trip_through_their_saved_arrays():
    mnad = MNADSignals(psnr=np.array([3.0, 1.0]), regular=np.array([0.1, 0.2]))
    arrays = signals_to_arrays(mnad) | {"video": np.zeros(2, int)}
    assert set(arrays) == {"psnr", "regular", "video"}  # a field the configuration lacks is not saved
    again = signals_from_arrays(MNADSignals, arrays)
    assert again.distance is None and np.array_equal(again.psnr, mnad.psnr)


def test_gamma_from_quantile_by_hand_and_bad_input():
    scores = np.array([0.04, 0.01, 0.03, 0.02, 0.05])  # sorted: 0.01 ... 0.05
    assert gamma_from_quantile(scores, 0.5) == pytest.approx(0.03)
    assert gamma_from_quantile(scores, 0.25) == pytest.approx(0.02)
    assert gamma_from_quantile(scores, 0.0) == pytest.approx(0.01) and gamma_from_quantile(scores, 1.0) == 0.05
    assert (scores < gamma_from_quantile(scores, 0.6)).mean() == pytest.approx(0.6)  # that share would update
    with pytest.raises(ValueError, match="eval.mnad.gamma_quantile must be in"):
        gamma_from_quantile(scores, 1.5)
    with pytest.raises(ValueError, match="1 not finite"):
        gamma_from_quantile(np.array([0.1, np.nan]), 0.5)


def test_the_literatures_macro_auc_pads_every_video_and_counts_a_one_class_video():
    # video 0 holds both classes; video 1 only normal frames (scores min-max normalised per video)
    scores = np.array([0.0, 0.5, 1.0, 0.25, 0.0, 1.0, 0.4])
    labels = np.array([0, 0, 1, 1, 0, 0, 0])
    videos = np.array([0, 0, 0, 0, 1, 1, 1])
    # padded with a normal frame scored 0 and an anomalous frame scored 1: video 0's anomalous frames beat 8 of
    # the 9 normal pairings; video 1's padded anomaly beats 3 of its 4 normal frames and ties the one scored 1
    assert macro_auc_padded(scores, labels, videos) == pytest.approx((8 / 9 + 3.5 / 4) / 2)
    assert macro_auc(scores, labels, videos) == pytest.approx(3 / 4)  # today's: video 0 alone, unpadded
