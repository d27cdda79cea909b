"""MNAD's read ablation: does the decoder use the memory read at all?

At the last epoch (eval.mnad.read_ablation) the test set is scored again with the read replaced by zeros, by
its mean or by a read from shuffled items; the changes of PSNR and AUC against the intact read say whether the
read matters. MNAD's `evaluate_checkpoint` runs it (repro/models/mnad.py).

Glossary: b batch, d query dim, h w the bottleneck's size, n = b*h*w queries, m items.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import numpy as np
import torch
from einops import rearrange
from torch import Tensor, nn

from ..scoring import frame_metrics
from .method import Scorer, signals_from_arrays

ReadFill = Literal["zeros", "mean", "shuffled"]
READ_FILLS: tuple[ReadFill, ...] = ("zeros", "mean", "shuffled")


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


def read_ablation(
    model: nn.Module, score: Scorer, dataset: Any, signals_type: type, lam: float
) -> dict[str, dict[str, float]]:
    """The change of the mean primary signal (PSNR, dB) and of the frame AUC at λ when the decoder's read is
    replaced by each fill, against the same evaluation with the read intact; batched, without the test-time
    update. `score` evaluates `model` on a dataset (`method.Scorer`)."""

    def primary_and_auc() -> tuple[float, float]:
        arrays = score(dataset)
        signals = signals_from_arrays(signals_type, arrays)
        auc = frame_metrics(signals, arrays["label"], arrays["video"], signals.default_lambda(lam)).auc
        return float(np.mean(signals[0])), auc

    signal, auc = primary_and_auc()
    changes = {}
    for fill in READ_FILLS:
        with replaced_read(model, fill):
            replaced_signal, replaced_auc = primary_and_auc()
        changes[fill] = {"psnr_change": replaced_signal - signal, "auc_change": replaced_auc - auc}
    return changes


def as_array(changes: dict[str, dict[str, float]]) -> np.ndarray:
    """(fills, 2) PSNR change (dB), AUC change: how a checkpoint's signals file keeps the ablation."""
    return np.asarray([[changes[fill]["psnr_change"], changes[fill]["auc_change"]] for fill in READ_FILLS])


def from_array(saved: np.ndarray) -> dict[str, dict[str, float]]:
    """The saved (fills, 2) array back as {fill: {"psnr_change", "auc_change"}} (metrics.json's form)."""
    return {
        fill: {"psnr_change": float(psnr), "auc_change": float(auc)} for fill, (psnr, auc) in zip(READ_FILLS, saved)
    }
