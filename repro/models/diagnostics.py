"""Memory diagnostics that a position code cannot fool (docs/method.md#reporting-protocol-and-memory-diagnostics).

A pooled usage histogram looks healthy when every (camera, position) keeps its own item; these numbers
say how the items are used per frame, how much of the choice camera and position alone explain, and how many
videos make the study's NaN (a constant feature distance). Whether MNAD's decoder uses the read at all:
repro/models/read_ablation.py.

Glossary: f frames, p = h*w query positions per frame, n = f*p queries (row-major over frame, y, x), m items,
d feature dim, g groups.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from .output import ModelOutput


def perplexity(counts: Tensor) -> Tensor:
    """exp(-sum p log p) of each row of counts (..., m), p = counts / row sum: 1 = one item, m = even use."""
    p = counts.double() / counts.double().sum(dim=-1, keepdim=True)
    return torch.exp(-torch.special.xlogy(p, p).sum(dim=-1))


def camera_position_groups(cameras: Tensor, positions_per_frame: int) -> Tensor:
    """(f * p,) group id camera * p + position of every query, from each frame's camera (f,)."""
    position = torch.arange(positions_per_frame, device=cameras.device)
    return (cameras.long()[:, None] * positions_per_frame + position[None, :]).reshape(-1)


class GroupStats(NamedTuple):
    """Additive statistics of queries per group (e.g. camera x position): `merge` those of each batch, so a
    test set's queries never have to be held at once."""

    item_counts: Tensor  # (g, m) queries of group g whose nearest item is m
    query_sums: Tensor  # (g, d) sum of the group's queries
    square_norm: Tensor  # () sum over all queries of |q|^2


def group_stats(queries: Tensor, assignments: Tensor, groups: Tensor, num_groups: int, num_items: int) -> GroupStats:
    """The GroupStats of queries (n, d) with their nearest items (n,) and groups (n,) in 0..num_groups-1."""
    if not queries.dim() == 2 or not queries.shape[0] == assignments.numel() == groups.numel():
        raise ValueError(
            f"queries (n, d), assignments (n,) and groups (n,) need one row per query, got shapes "
            f"{tuple(queries.shape)}, {tuple(assignments.shape)}, {tuple(groups.shape)}"
        )
    groups, queries = groups.reshape(-1).long(), queries.double()
    counts = torch.zeros(num_groups * num_items, dtype=torch.float64, device=queries.device)
    counts.index_add_(0, groups * num_items + assignments.reshape(-1).long(), torch.ones_like(queries[:, 0]))
    sums = torch.zeros(num_groups, queries.shape[1], dtype=torch.float64, device=queries.device)
    sums.index_add_(0, groups, queries)
    return GroupStats(counts.reshape(num_groups, num_items), sums, (queries**2).sum())


def merge(a: GroupStats, b: GroupStats) -> GroupStats:
    """The statistics of two sets of queries together."""
    return GroupStats(*(x + y for x, y in zip(a, b)))


class ItemDetermination(NamedTuple):
    conditional_entropy: float  # H(item | group) in nats: 0 = the group alone fixes the item
    explained_share: float  # 1 - H(item | group) / H(item); 1 = fixed by the group (also when one item is used)


def item_determination(stats: GroupStats) -> ItemDetermination:
    """How much of the assigned item the group (e.g. camera x position) explains, from the joint counts."""
    joint = stats.item_counts / stats.item_counts.sum()  # (g, m)
    item_entropy = -torch.special.xlogy(joint.sum(dim=0), joint.sum(dim=0)).sum()
    group_entropy = -torch.special.xlogy(joint.sum(dim=1), joint.sum(dim=1)).sum()
    conditional = (-torch.special.xlogy(joint, joint).sum() - group_entropy).clamp_min(0)  # H(I, G) - H(G)
    share = 1.0 if item_entropy <= 0 else float(1 - conditional / item_entropy)
    return ItemDetermination(float(conditional), share)


def explained_query_variance(stats: GroupStats) -> float:
    """Share of the queries' total variance explained by their group's mean: between-group / total sum of
    squares, with total = sum |q|^2 - |sum q|^2 / n and between = sum_g |s_g|^2 / n_g - |sum q|^2 / n."""
    sizes = stats.item_counts.sum(dim=1)  # (g,) queries per group
    used = sizes > 0
    grand = (stats.query_sums.sum(dim=0) ** 2).sum() / sizes.sum()
    between = ((stats.query_sums[used] ** 2).sum(dim=1) / sizes[used]).sum() - grand
    total = stats.square_norm - grand
    return 1.0 if total <= 0 else float((between / total).clamp(0, 1))


def constant_signal_videos(signal: np.ndarray, video_ids: np.ndarray) -> int:
    """How many videos have a constant signal (f,) (max = min), where per-video min-max divides by zero:
    the reference's NaN scores on ShanghaiTech when the feature distance is constant."""
    signal, video_ids = np.asarray(signal, dtype=np.float64).ravel(), np.asarray(video_ids).ravel()
    if signal.size != video_ids.size or signal.size == 0:
        raise ValueError(f"signal and video_ids need one value per frame, got {signal.size} and {video_ids.size}")
    _, video = np.unique(video_ids, return_inverse=True)
    lo, hi = np.full(video.max() + 1, np.inf), np.full(video.max() + 1, -np.inf)
    np.minimum.at(lo, video, signal)
    np.maximum.at(hi, video, signal)
    return int((hi == lo).sum())


# ------------------------------------------------------------------------------------------ the tally
class MemoryTally:
    """Nearest-item usage of a model with memory weights, accumulated batch by batch over a training epoch or
    a test set without a host sync per batch: pooled item counts, per-frame perplexity, rows with no item
    (MemAE's fully shrunk rows) and, where the videos' cameras are known, the camera x position statistics.

    `add` takes a forward's result (queries (n, d), weights (n, m) of its b frames, n = b * p) and, optionally,
    the camera (b,) of each frame; `summary()` gives the numbers (metrics.json's and train.jsonl's "memory").
    """

    def __init__(self, num_cameras: int | None = None) -> None:
        self.num_cameras = num_cameras
        self.counts: Tensor | None = None  # (m,)
        self.frame_perplexity_sum: Tensor | float = 0.0
        self.frames_with_items: Tensor | int = 0
        self.rows = torch.zeros(2, dtype=torch.long)  # (rows with no item, all rows), moved to the device
        self.groups: GroupStats | None = None

    def add(self, result: ModelOutput, cameras: Tensor | None = None) -> None:
        """One forward's usage; a model without memory weights (result.weights None) adds nothing."""
        if result.weights is None:
            return
        queries, weights, frames = result.queries, result.weights.detach(), result.output.shape[0]
        n, m = weights.shape
        positions = n // frames
        valid = weights.sum(dim=1) > 0  # (n,)
        assignments = weights.argmax(dim=1)  # (n,)
        one_hot = torch.nn.functional.one_hot(assignments, m) * valid[:, None]  # (n, m)
        frame_counts = one_hot.reshape(frames, positions, m).sum(dim=1)  # (b, m)
        counts = frame_counts.sum(dim=0)
        has_items = frame_counts.sum(dim=1) > 0  # (b,)
        self.counts = counts if self.counts is None else self.counts + counts
        self.frame_perplexity_sum = (
            self.frame_perplexity_sum + torch.where(has_items, perplexity(frame_counts), 0.0).sum()
        )
        self.frames_with_items = self.frames_with_items + has_items.sum()
        self.rows = self.rows.to(weights.device) + torch.stack([(~valid).sum(), valid.new_tensor(n, dtype=torch.long)])
        if cameras is not None and self.num_cameras and queries is not None:
            groups = camera_position_groups(cameras.to(weights.device), positions)
            stats = group_stats(
                queries.detach()[valid], assignments[valid], groups[valid], self.num_cameras * positions, m
            )
            self.groups = stats if self.groups is None else merge(self.groups, stats)

    def summary(self) -> dict:
        """counts, perplexity (pooled), frame_perplexity, active_fraction, largest_share, zero_row_share, and
        with cameras camera_position_item_share, camera_position_item_entropy, camera_position_query_variance.
        No item used at all (every row shrunk to zero): perplexities and shares are 0."""
        if self.counts is None:
            return {}
        counts = self.counts.double().cpu()
        zero_rows, rows = self.rows.cpu().tolist()
        used = counts.sum() > 0
        frames = float(self.frames_with_items)
        summary = {
            "counts": counts.long().tolist(),
            "perplexity": float(perplexity(counts)) if used else 0.0,
            "frame_perplexity": float(self.frame_perplexity_sum) / frames if frames else 0.0,
            "active_fraction": float((counts > 0).double().mean()),
            "largest_share": float(counts.max() / counts.sum()) if used else 0.0,
            "zero_row_share": zero_rows / max(rows, 1),
        }
        if self.groups is not None and used:
            determination = item_determination(self.groups)
            summary |= {
                "camera_position_item_share": determination.explained_share,
                "camera_position_item_entropy": determination.conditional_entropy,
                "camera_position_query_variance": explained_query_variance(self.groups),
            }
        return summary
