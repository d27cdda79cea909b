"""Evaluation: per-frame signals of any method, with or without the test-time memory update (docs/method.md#memory,
#scoring-and-evaluation).

Written once for every method (repro/models/method.py): the method turns a forward pass into its typed
signals, where it has state memory updates it frame by frame, and where it adapts at test time takes its
gradient steps on each test video before the video is scored.

Glossary: b frames in a batch, t input frames, c channels, h w size, n queries, d dim, m items.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Subset, default_collate
from tqdm import tqdm

from .data.clips import loader_workers
from .data.layout import video_cameras_of
from .models.diagnostics import MemoryTally
from .models.method import ClipLayout, Method, signals_from_arrays, signals_to_arrays
from .models.output import ModelOutput
from .precision import autocast


@torch.no_grad()
def signals_step(
    method: Method,
    model: nn.Module,
    inputs: Tensor,
    target: Tensor,
    precision: str = "fp32",
    gamma: float | None = None,
) -> tuple[Any, ModelOutput]:
    """The method's typed signals (each (b,)) of one batch with the current memory, and the forward's result.

    With `gamma` this is one frame (b = 1) of the sequential test-time update: after its signals, the
    method updates its memory with the frame's queries if the frame is regular enough (MNAD: regular score
    below γ, eqs. 6-7). The decision stays on the device (no host sync per frame). The one implementation of
    the update, used by the evaluation loop and by `repro bench` alike.
    """
    if gamma is not None and inputs.shape[0] != 1:
        raise ValueError(f"the test-time update is sequential: inputs must hold one frame, got {tuple(inputs.shape)}")
    with autocast(inputs.device, precision):
        result = model(inputs)
    signals = method.frame_signals(model, result, target)
    if gamma is not None:
        method.update_memory(model, result, signals, gamma)
    return signals, result


class GraphedFrameStep:
    """The one-frame test-time update (`signals_step` with γ) captured once as a CUDA graph and replayed per frame:
    one launch instead of about two hundred, the same numbers (at test time the memory updates its items in place,
    so the replay reads and writes the live items). The first frame fixes the shapes; call it with frames of
    that shape. Returns fresh signal tensors and the forward's result (its tensors are overwritten by the next
    call: read them before)."""

    def __init__(
        self, method: Method, model: nn.Module, inputs: Tensor, target: Tensor, precision: str, gamma: float
    ) -> None:
        self.inputs, self.target = inputs.clone(), target.clone()
        memory = method.state_memory(model)
        trained = memory.items.clone()
        stream = torch.cuda.current_stream(inputs.device)
        side = torch.cuda.Stream(inputs.device)
        side.wait_stream(stream)
        with torch.cuda.stream(side), torch.no_grad():  # warm-up off the capture: libraries pick their kernels
            for _ in range(3):
                signals_step(method, model, self.inputs, self.target, precision, gamma)
        stream.wait_stream(side)
        memory.items.copy_(trained)  # the warm-up's updates undone
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph), torch.no_grad():
            self.signals, self.result = signals_step(method, model, self.inputs, self.target, precision, gamma)

    def __call__(self, inputs: Tensor, target: Tensor) -> tuple[Any, ModelOutput]:
        self.inputs.copy_(inputs)
        self.target.copy_(target)
        self.graph.replay()
        return type(self.signals)(*(None if s is None else s.clone() for s in self.signals)), self.result


def frame_step(
    method: Method, model: nn.Module, precision: str, gamma: float, graphs: bool
) -> Callable[[Tensor, Tensor], tuple[Any, ModelOutput]]:
    """The one-frame test-time update as a function of (inputs, target): on CUDA with `graphs` a
    `GraphedFrameStep` (captured at the first frame), else `signals_step` itself."""
    graphed: list[GraphedFrameStep] = []

    def step(inputs: Tensor, target: Tensor) -> tuple[Any, ModelOutput]:
        if not (graphs and inputs.device.type == "cuda"):
            return signals_step(method, model, inputs, target, precision, gamma)
        if not graphed:
            graphed.append(GraphedFrameStep(method, model, inputs, target, precision, gamma))
        return graphed[0](inputs, target)

    return step


def inference_layout(method: Method, model: nn.Module, device: torch.device) -> torch.memory_format:
    """Evaluation mode and the method's preferred layout: on the CPU, channels-last 2-D convolutions where the
    method asks for them (`Method.channels_last`); returns the layout for its input batches."""
    model.eval()
    if device.type != "cpu" or not method.channels_last:
        return torch.contiguous_format
    model.to(memory_format=torch.channels_last)
    return torch.channels_last if method.channels_last_inputs else torch.contiguous_format


def _batch_tensors(
    batch: dict, method: Method, device: torch.device, layout: torch.memory_format
) -> tuple[Tensor, Tensor]:
    inputs = method.to_input(batch["input"].to(device))
    return inputs.contiguous(memory_format=layout), method.to_target(batch["target"].to(device))


@torch.no_grad()
def evaluate_model(
    model: nn.Module,
    method: Method,
    dataset: Dataset,
    device: torch.device,
    *,
    test_time_update: bool = False,
    gamma: float = 0.0,
    reset_memory_per_video: bool = False,
    batch_size: int = 8,
    precision: str = "fp32",
    cuda_graphs: bool = False,
    progress: bool = True,
    evaluation: Any = None,
) -> dict[str, np.ndarray]:
    """Raw per-frame signals over a test set in sorted video order (docs/method.md#memory, #scoring-and-evaluation).

    The method's signals by field name (`method.Signals`), and always "video", "frame", "label",
    "anomaly_type" (from the dataset); for a model with memory weights, "item_counts" (m,) of nearest-item
    assignments (rows with any weight) and the `MemoryTally` summary as "memory_<name>" (1,) arrays
    (perplexity, frame_perplexity, active_fraction, largest_share, zero_row_share: MemAE's fully shrunk rows,
    and with camera names the camera x position numbers). With the test-time update (a method with state
    memory) the frames go one at a time, since the update makes each frame depend on the last (on CUDA with
    `cuda_graphs`, one graph replay per frame: `GraphedFrameStep`); otherwise in batches. The trained items
    are restored afterwards. A method that adapts at test time (`Method.adapts_at_test_time`) is evaluated video
    by video: before a video is scored, `Method.adapt_to_video` gets its clips with gradients enabled
    (`evaluation`: the method's [eval.<name>] section); each video starts from the trained weights, which are
    restored afterwards.
    """
    layout = inference_layout(method, model, device)
    memory = method.state_memory(model)
    sequential = test_time_update and memory is not None
    adapts = method.adapts_at_test_time
    loaders = _loaders(dataset, 1 if sequential else batch_size, adapts)
    collected: dict[str, list[Tensor]] = {}
    cameras = video_cameras_of(dataset)
    camera_of_video = torch.tensor(cameras[0]) if cameras else None
    tally = MemoryTally(cameras[1] if cameras else None)
    trained = {key: value.clone() for key, value in model.state_dict().items()} if adapts else {}
    with (
        memory.scratch() if memory is not None else contextlib.nullcontext(),
        _restored(model, trained) if adapts else contextlib.nullcontext(),
    ):
        trained_items = memory.items.clone() if memory is not None else None
        previous_video = None
        update = frame_step(method, model, precision, gamma, cuda_graphs) if sequential else None
        for loader in loaders:
            if adapts:
                _adapt(method, model, trained, _Clips(loader, method, device, layout), evaluation)
            for batch in tqdm(loader, desc="evaluate", leave=False, disable=not progress):
                inputs, target = _batch_tensors(batch, method, device, layout)
                if sequential and reset_memory_per_video and previous_video not in (None, int(batch["video"][0])):
                    memory.items.copy_(trained_items)
                previous_video = int(batch["video"][0])
                signals, result = (
                    update(inputs, target) if sequential else signals_step(method, model, inputs, target, precision)
                )
                tally.add(result, camera_of_video[batch["video"]] if cameras else None)
                for key, value in signals_to_arrays(signals).items():  # kept on the device: no host sync per frame
                    collected.setdefault(key, []).append(value.float())
                for key in ("video", "frame", "label", "anomaly_type"):
                    collected.setdefault(key, []).append(batch[key])
    arrays = {key: torch.cat(values).cpu().numpy() for key, values in collected.items()}
    usage = tally.summary()
    if usage:
        arrays["item_counts"] = np.asarray(usage.pop("counts"))
        arrays |= {f"memory_{key}": np.asarray([value]) for key, value in usage.items()}
    return arrays


def _loaders(dataset: Dataset, batch_size: int, per_video: bool) -> list[DataLoader]:
    """The test set in order: one loader, or with `per_video` one per video (a batch never spans two videos;
    the dataset's `item_video` (clips,) says whose each clip is)."""
    workers = loader_workers(dataset, 0)
    if not per_video:
        return [DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers)]
    videos = np.asarray(dataset.item_video)
    _, first = np.unique(videos, return_index=True)
    return [
        DataLoader(Subset(dataset, np.flatnonzero(videos == videos[start]).tolist()), batch_size, num_workers=workers)
        for start in np.sort(first)
    ]


class _Clips:
    """A test video's (inputs, target) batches in the network's layout; iterable as often as a hook wishes."""

    def __init__(self, loader: DataLoader, method: Method, device: torch.device, layout: torch.memory_format) -> None:
        self.loader, self.method, self.device, self.layout = loader, method, device, layout

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        return (_batch_tensors(batch, self.method, self.device, self.layout) for batch in self.loader)


def _adapt(method: Method, model: nn.Module, trained: dict[str, Tensor], clips: _Clips, evaluation: Any) -> None:
    """The method's test-time adaptation on one video, from the trained weights, with gradients enabled."""
    model.load_state_dict(trained)
    with torch.enable_grad():
        method.adapt_to_video(model, clips, evaluation)
    model.eval()


@contextlib.contextmanager
def _restored(model: nn.Module, trained: dict[str, Tensor]) -> Iterator[None]:
    """The model's `trained` state back on exit (after test-time adaptation changed its weights)."""
    try:
        yield
    finally:
        model.load_state_dict(trained)


@torch.no_grad()
def collect_examples(
    model: nn.Module,
    method: Method,
    clip: ClipLayout,
    dataset: Dataset,
    signals: dict[str, np.ndarray],
    device: torch.device,
    max_frames_for_queries: int = 48,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """What the report's figures need from a model, with the trained items (no test-time update):

    - "example_input" / "example_output" / "example_target" (k, h, w, c) in [0, 1] and "example_type" (k,):
      one scored frame per anomaly type present (0 = normal; -1 unknown), the one of median primary signal
      (the first field of the method's signals: MNAD's PSNR, a baseline's error);
    - "queries" (n, d) of up to `max_frames_for_queries` random test frames, "assignments" (n,) their nearest
      item and "items" (m, d), for the t-SNE map (methods with state memory only).
    """
    layout = inference_layout(method, model, device)
    primary = signals_from_arrays(method.Signals, signals)[0]
    types = signals["anomaly_type"]
    picks = []
    for kind in np.unique(types):
        candidates = np.flatnonzero(types == kind)
        picks.append(int(candidates[np.argsort(primary[candidates])[len(candidates) // 2]]))
    batch = default_collate([dataset[i] for i in picks])
    inputs, target = _batch_tensors(batch, method, device, layout)
    shown_input = batch["input"][:, clip.in_frames - 1 if clip.predict else clip.scored_offset]
    arrays = {
        "example_input": _as_image(shown_input),
        "example_output": _as_image(method.scored_frame(model(inputs).output)),
        "example_target": _as_image(method.scored_frame(target)),
        "example_type": types[picks],
    }
    memory = method.state_memory(model)
    if memory is not None:
        chosen = np.random.default_rng(seed).choice(len(dataset), min(max_frames_for_queries, len(dataset)), False)
        loader = DataLoader(Subset(dataset, np.sort(chosen).tolist()), batch_size=16)
        queries = torch.cat([model(_batch_tensors(b, method, device, layout)[0]).queries.float().cpu() for b in loader])
        items = memory.items.float().cpu()
        arrays |= {
            "queries": queries.numpy(),
            "items": items.numpy(),
            "assignments": (queries @ items.t()).argmax(dim=1).numpy(),
        }
    return arrays


def _as_image(frames: Tensor) -> np.ndarray:
    """(k, c, h, w) in [-1, 1] -> (k, h, w, c) in [0, 1]."""
    return ((frames.float().cpu().clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1).numpy()
