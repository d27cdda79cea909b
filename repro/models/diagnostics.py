"""Memory diagnostics that a position code cannot fool (SPEC sec. 12).

A pooled usage histogram looks healthy when every (camera, position) keeps its own item; these numbers
say how the items are used per frame, how much of the choice camera and position alone explain, whether
the decoder uses the read at all, and how many videos make the study's NaN (a constant feature distance).

Glossary: f frames, p = h*w query positions per frame, n = f*p queries (row-major over frame, y, x), m items,
d feature dim, g groups.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal, NamedTuple

import numpy as np
import torch
from einops import rearrange
from torch import Tensor, nn

from ..scoring import frame_mse, psnr

ReadFill = Literal["zeros", "mean", "shuffled"]
READ_FILLS: tuple[ReadFill, ...] = ("zeros", "mean", "shuffled")


def perplexity(counts: Tensor) -> Tensor:
    """exp(-sum p log p) of each row of counts (..., m), p = counts / row sum: 1 = one item, m = even use."""
    p = counts.double() / counts.double().sum(dim=-1, keepdim=True)
    return torch.exp(-torch.special.xlogy(p, p).sum(dim=-1))


class AssignmentSummary(NamedTuple):
    pooled_perplexity: float  # of the item histogram over all queries
    frame_perplexity: float  # mean over frames of the perplexity of that frame's p assignments
    active_fraction: float  # items used at least once / m
    largest_share: float  # share of all queries held by the most used item


def assignment_summary(assignments: Tensor, positions_per_frame: int, num_items: int) -> AssignmentSummary:
    """Usage statistics of nearest-item assignments (n,) = (f * p,), flattened row-major over (frame, y, x)."""
    if assignments.dim() != 1 or assignments.numel() == 0 or assignments.numel() % positions_per_frame:
        raise ValueError(
            f"assignments must be a non-empty 1-D tensor of f * {positions_per_frame} (frames x "
            f"positions per frame) item indices, got shape {tuple(assignments.shape)}"
        )
    per_frame = torch.nn.functional.one_hot(assignments.long(), num_items).reshape(-1, positions_per_frame, num_items)
    frame_counts = per_frame.sum(dim=1)  # (f, m)
    counts = frame_counts.sum(dim=0)  # (m,)
    return AssignmentSummary(
        pooled_perplexity=float(perplexity(counts)),
        frame_perplexity=float(perplexity(frame_counts).mean()),
        active_fraction=float((counts > 0).double().mean()),
        largest_share=float(counts.max() / counts.sum()),
    )


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


# ------------------------------------------------------------------------------------- read ablation
def _replaced(read: Tensor, queries: Tensor, items: Tensor, fill: ReadFill) -> Tensor:
    """The read (b, d, h, w) replaced: by zeros, by its mean over the batch's queries, or by a read of the same
    weights from the items shifted by one (item i's slot holds item i + 1: no item reads itself)."""
    if fill == "zeros":
        return torch.zeros_like(read)
    if fill == "mean":
        return read.mean(dim=(0, 2, 3), keepdim=True).expand_as(read)
    b, _, h, w = queries.shape
    flat = rearrange(queries, "b d h w -> (b h w) d").float()
    weights = (flat @ items.t()).softmax(dim=1)  # (n, m), eq. 1
    shuffled = weights @ items.roll(-1, dims=0)  # (n, d)
    return rearrange(shuffled, "(b h w) d -> b d h w", b=b, h=h, w=w).to(read.dtype)


@contextmanager
def replaced_read(model: nn.Module, fill: ReadFill) -> Iterator[None]:
    """Inside this block MNAD's decoder gets its memory read (the second half of its input channels) replaced
    by `fill`; the queries and the items are untouched. `with replaced_read(model, "zeros"): evaluate...`"""
    memory = getattr(model, "memory", None)
    if memory is None or not hasattr(model, "decoder"):
        raise ValueError(f"{type(model).__name__} has no MNAD memory read to replace (a model with memory only)")
    if fill not in READ_FILLS:
        raise ValueError(f"unknown read fill {fill!r}; allowed: {', '.join(READ_FILLS)}")

    def hook(module: nn.Module, args: tuple) -> tuple:
        decoder_in, *rest = args  # (b, 2d, h, w) = concat(query, read)
        d = decoder_in.shape[1] // 2
        queries, read = decoder_in[:, :d], decoder_in[:, d:]
        return (torch.cat([queries, _replaced(read, queries, memory.items, fill)], dim=1), *rest)

    handle = model.decoder.register_forward_pre_hook(hook)
    try:
        yield
    finally:
        handle.remove()


@torch.no_grad()
def read_ablation(
    model: nn.Module, inputs: Tensor, target: Tensor, fills: tuple[ReadFill, ...] = READ_FILLS
) -> dict[str, float]:
    """Mean PSNR (dB) of an MNAD (put in eval mode: no update) on inputs (b, t*c, h, w) against target
    (b, c, h, w) as is ("psnr"), and its change per fill ("zeros", ...: replaced minus original)."""
    model.eval()
    original = float(psnr(frame_mse(model(inputs).output, target)).mean())
    result = {"psnr": original}
    for fill in fills:
        with replaced_read(model, fill):
            result[fill] = float(psnr(frame_mse(model(inputs).output, target)).mean()) - original
    return result
