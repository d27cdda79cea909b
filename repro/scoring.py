"""Frame scoring (MNAD eqs. 6-7, 14-17; docs/method.md#scoring-and-evaluation,
#reporting-protocol-and-memory-diagnostics): per-frame signals -> per-video min-max -> AUC.

Arrays in, numbers out: this module never reads files. Glossary: f frames, n queries, d dim, m items.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple, Protocol

import numpy as np
import torch
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve
from torch import Tensor

from .anomaly_types import ANOMALY_TYPES


class ConstantSignalWarning(UserWarning):
    """A video's signal is constant, so min-max normalisation is undefined; the video scores 0."""


def to_unit_range(x: Tensor) -> Tensor:
    """[-1, 1] -> [0, 1], the scale on which PSNR and the regular score are computed."""
    return (x + 1) / 2


def frame_mse(output: Tensor, target: Tensor) -> Tensor:
    """(b,) mean squared error per frame on the [0, 1] scale; inputs (b, ...) in [-1, 1]."""
    error = (to_unit_range(output.float()) - to_unit_range(target.float())) ** 2
    return error.flatten(1).mean(dim=1)


def psnr(mse: Tensor | np.ndarray | float) -> Tensor:
    """PSNR = 10 log10(1 / mse) in dB, peak 1 on the [0, 1] scale.

    A perfect frame (mse = 0) divides by zero in the reference; here mse is clamped at 1e-10 (100 dB),
    above any real frame, so the score stays finite and ordered.
    """
    mse = torch.as_tensor(mse, dtype=torch.float64)
    return 10 * torch.log10(1 / mse.clamp_min(1e-10))


def regular_score(output: Tensor, target: Tensor) -> Tensor:
    """(b,) weighted regular score of eqs. 6-7 as the reference implements it (the test-time update gate).

    e = per-element squared error on the [0, 1] scale over c*h*w; w = 1 - exp(-e); score = sum(w e) / sum(w).
    A perfect frame (all e = 0) scores 0.
    """
    e = ((to_unit_range(output.float()) - to_unit_range(target.float())) ** 2).flatten(1)
    w = 1 - torch.exp(-e)
    return (w * e).sum(dim=1) / w.sum(dim=1).clamp_min(torch.finfo(e.dtype).tiny)


def gamma_from_quantile(training_regular_scores: np.ndarray, quantile: float) -> float:
    """γ (eqs. 6-7) at `quantile` of the training frames' weighted regular scores (eval.mnad.gamma_quantile).

    A fixed γ depends on image contrast; this one lets about that share of normal frames update the memory
    at test time. The scores come from the trained model on the training clips, without test-time update.
    """
    scores = np.asarray(training_regular_scores, dtype=np.float64).ravel()
    if scores.size == 0 or not np.isfinite(scores).all():
        raise ValueError(
            f"eval.mnad.gamma_quantile needs finite regular scores of the training frames, got {scores.size} "
            f"values ({int((~np.isfinite(scores)).sum())} not finite)"
        )
    if not 0 <= quantile <= 1:
        raise ValueError(f"eval.mnad.gamma_quantile must be in [0, 1], got {quantile}")
    return float(np.quantile(scores, quantile))


def feature_distance(queries: Tensor, items: Tensor, frames: int = 1) -> Tensor:
    """(frames,) mean over each frame's queries and dims of (q - nearest item)^2 (the reference's test-time
    compactness). queries (frames * h' * w', d) flattened row-major over (b, y, x); items (m, d)."""
    nearest = items[(queries @ items.t()).argmax(dim=1)]  # (n, d)
    return ((queries - nearest) ** 2).reshape(frames, -1).mean(dim=1)


def minmax_per_video(values: np.ndarray, video_ids: np.ndarray) -> np.ndarray:
    """(f,) g(x) = (x - min) / (max - min) within each video; a constant video gives 0 and a warning."""
    values = np.asarray(values, dtype=np.float64)
    _, video = np.unique(video_ids, return_inverse=True)
    lo = np.full(video.max() + 1, np.inf)
    hi = np.full(video.max() + 1, -np.inf)
    np.minimum.at(lo, video, values)
    np.maximum.at(hi, video, values)
    span = (hi - lo)[video]
    constant = span == 0
    if constant.any():
        names = ", ".join(str(v) for v in np.unique(np.asarray(video_ids)[constant]))
        warnings.warn(
            f"constant signal in video(s) {names}: normalised to 0 instead of NaN", ConstantSignalWarning, stacklevel=2
        )
    return np.where(constant, 0.0, (values - lo[video]) / np.where(constant, 1.0, span))


def anomaly_score(psnr: np.ndarray, distance: np.ndarray | None, video_ids: np.ndarray, lam: float) -> np.ndarray:
    """(f,) 1 - S with S = λ g(PSNR) + (1 - λ)(1 - g(distance)) per video (eq. 16); higher = more anomalous.

    distance None (a model without memory) means λ = 1: the score is 1 - g(PSNR).
    """
    if not 0 <= lam <= 1:
        raise ValueError(f"lambda (λ, the PSNR weight of the score) must be in [0, 1], got {lam}")
    normality = lam * minmax_per_video(psnr, video_ids)
    if lam < 1:
        if distance is None:
            raise ValueError(f"lambda {lam} < 1 needs the feature distance, but this model has no memory")
        normality = normality + (1 - lam) * (1 - minmax_per_video(distance, video_ids))
    return 1 - normality


def frame_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Micro frame-level ROC AUC over all frames pooled across videos (labels 1 = anomalous)."""
    labels = np.asarray(labels).ravel()
    if len(np.unique(labels)) < 2:
        raise ValueError("frame AUC needs both normal and anomalous frames in the labels")
    return float(roc_auc_score(labels, np.asarray(scores).ravel()))


def macro_auc(scores: np.ndarray, labels: np.ndarray, video_ids: np.ndarray) -> float:
    """Mean over videos that contain both classes of the per-video AUC (NaN when none does)."""
    aucs = [
        roc_auc_score(labels[video_ids == v], scores[video_ids == v])
        for v in np.unique(video_ids)
        if len(np.unique(labels[video_ids == v])) == 2
    ]
    return float(np.mean(aucs)) if aucs else float("nan")


def macro_auc_padded(scores: np.ndarray, labels: np.ndarray, video_ids: np.ndarray) -> float:
    """The literature's macro AUC: the mean over every video of its AUC, each video's frames padded with one normal
    frame scored 0 and one anomalous frame scored 1, so that a video of one class counts too (its AUC is then
    how far its scores keep clear of the padding). The convention of the evaluation code of SSMTL (Georgescu et
    al., CVPR 2021) and Jigsaw-VAD (Wang et al., ECCV 2022); `scores` min-max normalised per video, in [0, 1]."""
    labels, scores, video_ids = np.asarray(labels).ravel(), np.asarray(scores).ravel(), np.asarray(video_ids).ravel()
    aucs = [
        roc_auc_score(
            np.concatenate(([0], labels[video_ids == v], [1])), np.concatenate(([0.0], scores[video_ids == v], [1.0]))
        )
        for v in np.unique(video_ids)
    ]
    return float(np.mean(aucs))


def equal_error_rate(scores: np.ndarray, labels: np.ndarray) -> float:
    """The error rate where the false-positive rate equals the miss rate (interpolated on the ROC)."""
    fpr, tpr, _ = roc_curve(labels, scores)
    fnr = 1 - tpr
    i = np.nonzero(fnr <= fpr)[0][0]  # first ROC point past the crossing (fnr falls, fpr rises)
    if i == 0:
        return float(fpr[0])
    # crossing of the segment between points i-1 and i
    d0, d1 = fpr[i - 1] - fnr[i - 1], fpr[i] - fnr[i]
    t = d0 / (d0 - d1)
    return float(fpr[i - 1] + t * (fpr[i] - fpr[i - 1]))


class FrameMetrics(NamedTuple):
    auc: float  # micro AUC with per-video min-max: the literature's number
    raw_auc: float  # AUC on scores normalised over the whole set (no per-video min-max)
    macro_auc: float  # mean of per-video AUCs over the videos that hold both classes
    aupr: float
    eer: float
    macro_auc_padded: float  # the literature's macro AUC: every video, one-class videos padded


class Scorable(Protocol):
    """A method's per-frame signals (repro/models/method.py): anything that turns itself into scores."""

    def score(self, video_ids: np.ndarray, lam: float) -> np.ndarray: ...


def frame_metrics(signals: Scorable, labels: np.ndarray, video_ids: np.ndarray, lam: float) -> FrameMetrics:
    """Every frame-level metric of docs/method.md#reporting-protocol-and-memory-diagnostics for one λ."""
    labels = np.asarray(labels).ravel()
    scores = signals.score(video_ids, lam)
    raw = signals.score(np.zeros_like(video_ids), lam)  # one "video": min-max over the whole set
    return FrameMetrics(
        auc=frame_auc(scores, labels),
        raw_auc=frame_auc(raw, labels),
        macro_auc=macro_auc(scores, labels, np.asarray(video_ids)),
        aupr=float(average_precision_score(labels, scores)),
        eer=equal_error_rate(scores, labels),
        macro_auc_padded=macro_auc_padded(scores, labels, np.asarray(video_ids)),
    )


def per_type_auc(scores: np.ndarray, anomaly_types: np.ndarray) -> dict[str, float]:
    """AUC of each anomaly type present against the normal frames alone; codes other than the synthetic ones
    (a user's anomaly_types.npy) are named type_<code>."""
    normal, aucs = anomaly_types == 0, {}
    for code in np.unique(anomaly_types[anomaly_types > 0]).tolist():
        chosen = normal | (anomaly_types == code)
        if normal.any():
            aucs[ANOMALY_TYPES.get(code, f"type_{code}")] = frame_auc(scores[chosen], anomaly_types[chosen] > 0)
    return aucs
