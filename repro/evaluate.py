"""Evaluation of MNAD: per-frame signals (PSNR, feature distance, regular score), with or without the
test-time memory update (SPEC sec. 2, 5).

Glossary: b frames in a batch, t input frames, c channels, h w size, n queries, d dim, m items.
"""

from __future__ import annotations

import contextlib
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Subset, default_collate
from tqdm import tqdm

from .data.clips import loader_workers
from .models.memory import Memory
from .models.mnad import MNAD
from .models.output import ModelOutput
from .models.registry import ClipLayout, ModelEntry
from .precision import autocast
from .scoring import feature_distance, frame_mse, psnr, regular_score


class FrameSignals(NamedTuple):
    """Raw per-frame signals of one batch, each (b,)."""

    psnr: Tensor  # dB on the [0, 1] scale (eq. 13)
    distance: Tensor | None  # mean (q - nearest item)^2 with the items before this frame's update (eq. 14)
    regular: Tensor  # weighted regular score of eqs. 6-7, the update gate


@torch.no_grad()
def frame_signals(
    model: MNAD, inputs: Tensor, target: Tensor, precision: str = "fp32"
) -> tuple[FrameSignals, ModelOutput]:
    """Signals for a batch of frames with the current items, and the forward's result; never changes the items.

    inputs (b, t*c, h, w), target (b, c, h, w), both in [-1, 1].
    """
    with autocast(inputs.device, precision):
        result = model(inputs)
    distance = None
    if model.memory is not None:
        distance = feature_distance(result.queries, model.memory.items, frames=inputs.shape[0])
    return FrameSignals(psnr(frame_mse(result.output, target)), distance, regular_score(result.output, target)), result


@torch.no_grad()
def step_with_update(model: MNAD, inputs: Tensor, target: Tensor, gamma: float, precision: str = "fp32") -> FrameSignals:
    """One frame (b = 1) of the sequential test-time update: signals with the current items, then the items
    are updated with this frame's queries if its regular score is below γ (eqs. 6-7).

    The decision stays on the device (no host sync per frame).
    """
    if inputs.shape[0] != 1:
        raise ValueError(f"the test-time update is sequential: inputs must hold one frame, got {tuple(inputs.shape)}")
    signals, result = frame_signals(model, inputs, target, precision)
    if model.memory is not None:
        model.memory.update(result.queries, accept=signals.regular[0] < gamma)
    return signals


def inference_layout(model: nn.Module, device: torch.device) -> torch.memory_format:
    """Evaluation mode, and on the CPU the channels-last layout for 2-D convolutions: about 15% faster
    inference for MNAD at 256x256 (`repro bench`), though slower for training, which keeps the default."""
    model.eval()
    if device.type != "cpu" or any(p.dim() == 5 for p in model.parameters()):
        return torch.contiguous_format
    model.to(memory_format=torch.channels_last)
    return torch.channels_last


def _batch_tensors(batch: dict, entry: ModelEntry, device: torch.device,
                   layout: torch.memory_format) -> tuple[Tensor, Tensor]:
    inputs = entry.to_input(batch["input"].to(device))
    layout = layout if inputs.dim() == 4 else torch.contiguous_format  # ConvLSTM's (b, t, c, h, w) clips
    return inputs.contiguous(memory_format=layout), entry.to_target(batch["target"].to(device))


@torch.no_grad()
def evaluate_model(
    model: nn.Module,
    entry: ModelEntry,
    dataset: Dataset,
    device: torch.device,
    *,
    test_time_update: bool,
    gamma: float,
    reset_memory_per_video: bool = False,
    batch_size: int = 8,
    precision: str = "fp32",
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """Raw per-frame signals over a test set in sorted video order (SPEC sec. 2, 5).

    MNAD: "psnr", "distance" (with memory) and "regular"; baselines: "error". Always "video", "frame",
    "label", "anomaly_type" (from the dataset), "item_counts" (m,) of nearest-item assignments (rows with
    any weight) and "zero_row_share" (1,), the share of all-zero weight rows (MemAE's shrinkage; 0 for MNAD).
    With the test-time update the frames go one at a time (the update makes each frame depend on the last);
    otherwise in batches. The trained items are restored afterwards.
    """
    layout = inference_layout(model, device)
    memory = _mnad_memory(model)
    sequential = test_time_update and memory is not None
    loader = DataLoader(dataset, batch_size=1 if sequential else batch_size, shuffle=False,
                        num_workers=loader_workers(dataset, 0))  # fmt: skip
    collected: dict[str, list[Tensor]] = {}
    counts = None
    rows = torch.zeros(2, dtype=torch.long, device=device)  # (all-zero weight rows, all rows)
    with memory.scratch() if memory is not None else contextlib.nullcontext():
        trained_items = memory.items.clone() if memory is not None else None
        previous_video = None
        for batch in tqdm(loader, desc="evaluate", leave=False, disable=not progress):
            inputs, target = _batch_tensors(batch, entry, device, layout)
            if sequential and reset_memory_per_video and previous_video not in (None, int(batch["video"][0])):
                memory.items.copy_(trained_items)
            previous_video = int(batch["video"][0])
            signals, result = _signals(model, entry, inputs, target, precision)
            if sequential:
                memory.update(result.queries, accept=signals["regular"][0] < gamma)
            if result.weights is not None:  # MemAE's all-zero (fully shrunk) rows are no item's: counted apart
                nonzero = result.weights.sum(dim=1) > 0
                assigned = torch.bincount(result.weights[nonzero].argmax(dim=1), minlength=result.weights.shape[1])
                counts = assigned if counts is None else counts + assigned
                rows += torch.stack([(~nonzero).sum(), nonzero.new_tensor(nonzero.numel(), dtype=torch.long)])
            for key, value in signals.items():  # kept on the device: no host sync per frame
                collected.setdefault(key, []).append(value.float())
            for key in ("video", "frame", "label", "anomaly_type"):
                collected.setdefault(key, []).append(batch[key])
    arrays = {key: torch.cat(values).cpu().numpy() for key, values in collected.items()}
    if counts is not None:
        arrays["item_counts"] = counts.cpu().numpy()
        arrays["zero_row_share"] = (rows[:1].double() / rows[1].clamp(min=1)).cpu().numpy()
    return arrays


def _mnad_memory(model: nn.Module) -> Memory | None:
    """MNAD's memory (state updated at test time), or None (no memory, or MemAE's trained items)."""
    memory = getattr(model, "memory", None)
    return memory if isinstance(memory, Memory) else None


def _signals(model, entry: ModelEntry, inputs: Tensor, target: Tensor, precision: str):
    """The per-sample signals of one batch and the forward's result."""
    if entry.frame_error is None:  # MNAD
        signals, result = frame_signals(model, inputs, target, precision)
        named = {"psnr": signals.psnr, "regular": signals.regular}
        if signals.distance is not None:
            named["distance"] = signals.distance
        return named, result
    with autocast(inputs.device, precision):
        result = model(inputs)
    return {"error": entry.frame_error(result, target)}, result


@torch.no_grad()
def collect_examples(model: nn.Module, entry: ModelEntry, clip: ClipLayout, dataset: Dataset,
                     signals: dict[str, np.ndarray], device: torch.device, max_frames_for_queries: int = 48,
                     seed: int = 0) -> dict[str, np.ndarray]:
    """What the report's figures need from a model, with the trained items (no test-time update):

    - "example_input" / "example_output" / "example_target" (k, h, w, c) in [0, 1] and "example_type" (k,):
      one scored frame per anomaly type present (0 = normal; -1 unknown), the one of median signal;
    - "queries" (n, d) of up to `max_frames_for_queries` random test frames, "assignments" (n,) their nearest
      item and "items" (m, d), for the t-SNE map (MNAD with memory only).
    """
    layout = inference_layout(model, device)
    primary = signals["psnr"] if "psnr" in signals else signals["error"]
    types = signals["anomaly_type"]
    picks = []
    for kind in np.unique(types):
        candidates = np.flatnonzero(types == kind)
        picks.append(int(candidates[np.argsort(primary[candidates])[len(candidates) // 2]]))
    batch = default_collate([dataset[i] for i in picks])
    inputs, target = _batch_tensors(batch, entry, device, layout)
    shown_input = batch["input"][:, clip.in_frames - 1 if clip.predict else clip.scored_offset]
    arrays = {
        "example_input": _as_image(shown_input),
        "example_output": _as_image(entry.scored_frame(model(inputs).output)),
        "example_target": _as_image(entry.scored_frame(target)),
        "example_type": types[picks],
    }
    memory = _mnad_memory(model)
    if memory is not None:
        chosen = np.random.default_rng(seed).choice(len(dataset), min(max_frames_for_queries, len(dataset)), False)
        loader = DataLoader(Subset(dataset, np.sort(chosen).tolist()), batch_size=16)
        queries = torch.cat([model(_batch_tensors(b, entry, device, layout)[0]).queries.float().cpu() for b in loader])
        items = memory.items.float().cpu()
        arrays |= {"queries": queries.numpy(), "items": items.numpy(),
                   "assignments": (queries @ items.t()).argmax(dim=1).numpy()}  # fmt: skip
    return arrays


def _as_image(frames: Tensor) -> np.ndarray:
    """(k, c, h, w) in [-1, 1] -> (k, h, w, c) in [0, 1]."""
    return ((frames.float().cpu().clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1).numpy()
