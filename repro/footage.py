"""Score your own footage with a trained run (`repro score`, docs/footage.md): a video file, a folder of videos or a
folder of frame folders, no labels. Frames are decoded one at a time, windowed as the run's method eats them
(`Method.layout`), scored with its last checkpoint (`Method.frame_signals`, the test-time update as the run was
evaluated) and normalised by the run's calibration (repro.calibration), so each frame's score and flag are known
as soon as its window is decoded: memory stays bounded by a window and a batch.

Written per video into the output folder: <video>.csv (frame, score, flagged), <video>.npy (the scores, NaN
where no window scores the frame), <video>_timeline.png and <video>.mp4 (the frame, the model's output, the error
map, a running score bar, flagged frames framed in red); summary.json holds the frames per second and latency.

Glossary: t frames of a window, c channels, h w size, b batch.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np
import torch
from tqdm import tqdm

from . import runs as run_files
from .atomic import atomic_file, atomic_write
from .calibration import DEFAULT_FALSE_ALARM_RATE, calibrate, calibrated_score, read_calibration, run_config
from .data.cache import decode_frame
from .data.clips import ClipDataset, window_length
from .data.layout import IMAGE_EXTENSIONS, DataError, natural_key, read_video_folder
from .evaluate import frame_step, inference_layout, signals_step
from .record import Calibration

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".mpg", ".mpeg", ".m4v", ".wmv")
PANEL = 192  # pixels per side of each panel of the annotated video
BAR_HEIGHT = 64  # pixels of the running score bar
FLAG_COLOUR = (0, 0, 255)  # BGR red
NORMAL_COLOUR = (80, 200, 80)  # BGR green
ERROR_FULL_SCALE = 0.5  # |output - frame| on the [0, 1] scale shown at full brightness in the error map


# ------------------------------------------------------------------------------------------ footage
@dataclass(frozen=True)
class Footage:
    """One video to score: a video file or a folder of numbered frames."""

    name: str
    path: Path

    def frame_count(self) -> int | None:
        """Its number of frames where known without decoding (a video file's header may not say)."""
        if self.path.is_dir():
            return len(read_video_folder(self.path))
        capture = cv2.VideoCapture(str(self.path))
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        capture.release()
        return count if count > 0 else None


def _has_images(folder: Path) -> bool:
    return any(p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS for p in folder.iterdir())


def find_footage(path: str | Path) -> list[Footage]:
    """The videos of `path`: a video file, a folder of frames, or a folder of video files and frame folders (in
    natural order); a DataError naming the path when it holds none."""
    path = Path(path)
    if path.is_file():
        if path.suffix.lower() not in VIDEO_EXTENSIONS:
            raise DataError(f"{path} is not a video file ({', '.join(VIDEO_EXTENSIONS)}) nor a folder of frames")
        return [Footage(path.stem, path)]
    if not path.is_dir():
        raise DataError(f"footage {path} does not exist; give a video file, a folder of videos or of frame folders")
    if _has_images(path):
        return [Footage(path.name, path)]
    entries = sorted(path.iterdir(), key=lambda p: natural_key(p.name))
    found = [
        Footage(p.stem if p.is_file() else p.name, p)
        for p in entries
        if (p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS) or (p.is_dir() and _has_images(p))
    ]
    if not found:
        raise DataError(
            f"{path} holds no video file ({', '.join(VIDEO_EXTENSIONS)}) and no folder of frames "
            f"({', '.join(IMAGE_EXTENSIONS)}); give a video file, a folder of videos or of frame folders"
        )
    return found


def decode(footage: Footage, size: int, grayscale: bool) -> Iterator[np.ndarray]:
    """Its frames one at a time, (size, size, c) uint8 BGR (c = 1 gray), resized as the run's frames were."""
    if footage.path.is_dir():
        for frame in read_video_folder(footage.path).frames:
            yield decode_frame(frame, (size, size), grayscale)
        return
    capture = cv2.VideoCapture(str(footage.path))
    if not capture.isOpened():
        raise DataError(
            f"OpenCV cannot open the video {footage.path}; convert it to .mp4 (H.264) or extract its frames"
        )
    try:
        while True:
            ok, image = capture.read()
            if not ok:
                return
            if grayscale:
                image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
            image = cv2.resize(image, (size, size), interpolation=cv2.INTER_LINEAR)
            yield image.reshape(size, size, -1)
    finally:
        capture.release()


def as_clip(frames: np.ndarray) -> np.ndarray:
    """(t, h, w, c) uint8 -> (t, c, h, w) float32 in [-1, 1], as repro.data.clips.ClipDataset makes a window."""
    return frames.transpose(0, 3, 1, 2).astype(np.float32) * np.float32(2 / 255) - 1


def footage_clips(footage: list[Footage], cfg: Any) -> ClipDataset:
    """Every frame of `footage` decoded at the run's size, as unlabelled clips (for calibrating on normal footage)."""
    layout = cfg.model.method.layout(cfg.model.settings)
    videos = [np.stack(list(decode(video, cfg.data.size, cfg.data.grayscale))) for video in footage]
    names = [video.name for video in footage]
    return ClipDataset(videos, layout.in_frames, layout.predict, layout.scored_offset, video_names=names)


# ------------------------------------------------------------------------------------------ scoring
class ScoredFrame(NamedTuple):
    """One decoded frame and, where a window scores it, its score and what the model made of it."""

    index: int
    image: np.ndarray  # (h, w, c) uint8, as decoded
    score: float  # the deployable score; NaN where no window scores the frame
    flagged: bool
    output: np.ndarray | None  # (h, w, c) uint8, the model's output for the frame
    error: np.ndarray | None  # (h, w) float32, |output - frame| on the [0, 1] scale, mean over channels
    latency: float  # seconds from the frame's decoding to its score


class FrameScorer:
    """The run's last checkpoint scoring frames of footage as they come, batch by batch (`batch` windows; 1 when
    the method updates its memory frame by frame), normalised by `calibration`."""

    def __init__(self, cfg: Any, run: Path, calibration: Calibration, device: torch.device, batch: int) -> None:
        from .train import build_model

        self.method, self.calibration, self.device = cfg.model.method, calibration, device
        if self.method.adapts_at_test_time:
            raise ValueError(
                f"{self.method.name} adapts its weights to each whole test video before scoring it, so it cannot "
                "score frames as they are decoded; evaluate it with `repro evaluate` on a labelled dataset"
            )
        self.model = build_model(cfg, device, compile=False)
        self.model.load_state_dict(
            run_files.load_checkpoint(run_files.checkpoint_path(run, calibration.epoch))["model"]
        )
        self.layout = self.method.layout(cfg.model.settings)
        self.memory_format = inference_layout(self.method, self.model, device)
        options = calibration.options
        self.memory = self.method.state_memory(self.model)
        sequential = bool(options.get("test_time_update")) and self.memory is not None
        self.reset_per_video = sequential and bool(options.get("reset_memory_per_video"))
        self.batch = 1 if sequential else batch
        precision = cfg.exec.precision
        self.step = (
            frame_step(self.method, self.model, precision, float(options["gamma"]), cfg.exec.cuda_graphs)
            if sequential
            else (lambda inputs, target: signals_step(self.method, self.model, inputs, target, precision))
        )

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        """A block in which memory updates are undone afterwards (the checkpoint's items are restored)."""
        with self.memory.scratch() if self.memory is not None else contextlib.nullcontext():
            self.trained_items = self.memory.items.clone() if self.memory is not None else None
            yield

    def frames(self, decoded: Iterable[np.ndarray]) -> Iterator[ScoredFrame]:
        """Every decoded frame of one video, in order, scored as soon as the window that scores it is full (and
        its batch complete); call within `session()`."""
        if self.reset_per_video:
            self.memory.items.copy_(self.trained_items)
        length = window_length(self.layout.in_frames, self.layout.predict)
        offset = self.layout.scored_offset
        window: deque[np.ndarray] = deque(maxlen=length)
        waiting: deque[tuple[int, np.ndarray, float]] = deque()  # decoded frames not yet given out
        ready: dict[int, tuple[float, np.ndarray, np.ndarray]] = {}  # frame -> (score, output, error)
        pending: list[tuple[int, np.ndarray]] = []  # (scored frame, window) of the batch being filled
        for index, image in enumerate(decoded):
            waiting.append((index, image, time.perf_counter()))
            window.append(image)
            if len(window) == length:
                pending.append((index - length + 1 + offset, np.stack(window)))
            if len(pending) == self.batch:
                ready.update(self._score(pending))
                pending = []
            while waiting and (waiting[0][0] in ready or waiting[0][0] < offset):
                yield self._given(waiting.popleft(), ready)
        if pending:
            ready.update(self._score(pending))
        while waiting:  # the last frames: scored by the final batch, or by no window
            yield self._given(waiting.popleft(), ready)

    @torch.no_grad()
    def _score(self, pending: list[tuple[int, np.ndarray]]) -> dict[int, tuple[float, np.ndarray, np.ndarray]]:
        clips = torch.from_numpy(np.stack([as_clip(frames) for _, frames in pending]))  # (b, t, c, h, w)
        inputs = clips[:, : self.layout.in_frames]
        target = clips[:, self.layout.in_frames :] if self.layout.predict else inputs
        inputs = self.method.to_input(inputs.to(self.device)).contiguous(memory_format=self.memory_format)
        target = self.method.to_target(target.to(self.device))
        signals, result = self.step(inputs, target)
        output = (self.method.scored_frame(result.output).float().clamp(-1, 1) + 1) / 2  # (b, c, h, w) in [0, 1]
        truth = (self.method.scored_frame(target).float() + 1) / 2
        error = (output - truth).abs().mean(dim=1).cpu().numpy()  # (b, h, w)
        images = (output * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()  # (b, h, w, c)
        arrays = type(signals)(*(None if s is None else s.float().cpu().numpy() for s in signals))
        scores = calibrated_score(arrays, self.calibration.terms)
        return {frame: (float(scores[i]), images[i], error[i]) for i, (frame, _) in enumerate(pending)}

    def _given(self, waiting: tuple[int, np.ndarray, float], ready: dict) -> ScoredFrame:
        index, image, decoded_at = waiting
        score, output, error = ready.pop(index, (float("nan"), None, None))
        flagged = bool(score > self.calibration.threshold)
        return ScoredFrame(index, image, score, flagged, output, error, time.perf_counter() - decoded_at)


# ------------------------------------------------------------------------------------------- outputs
def annotated_frame(frame: ScoredFrame, history: np.ndarray, threshold: float) -> np.ndarray:
    """(PANEL + BAR_HEIGHT, 3 PANEL, 3) uint8 BGR: the frame, the model's output and the error map side by side,
    under them the running score bar of the video so far (`history`: scores (i + 1,), NaN unscored; the
    threshold as a red line), a flagged frame framed in red."""

    def panel(image: np.ndarray | None) -> np.ndarray:
        if image is None:
            return np.zeros((PANEL, PANEL, 3), np.uint8)
        image = cv2.resize(image, (PANEL, PANEL), interpolation=cv2.INTER_NEAREST)
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 or image.shape[2] == 1 else image

    error = None
    if frame.error is not None:
        error = cv2.applyColorMap(
            (np.clip(frame.error / ERROR_FULL_SCALE, 0, 1) * 255).astype(np.uint8), cv2.COLORMAP_INFERNO
        )
    top = np.concatenate([panel(frame.image), panel(frame.output), panel(error)], axis=1)
    for i, title in enumerate(("frame", "model output", "error")):
        cv2.putText(top, title, (i * PANEL + 4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    bar = score_bar(history, threshold, 3 * PANEL)
    text = f"frame {frame.index}  score {frame.score:.2f}" + ("  ANOMALY" if frame.flagged else "")
    cv2.putText(bar, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    image = np.concatenate([top, bar], axis=0)
    if frame.flagged:
        cv2.rectangle(image, (0, 0), (image.shape[1] - 1, image.shape[0] - 1), FLAG_COLOUR, 4)
    return image


def score_bar(history: np.ndarray, threshold: float, width: int) -> np.ndarray:
    """(BAR_HEIGHT, width, 3) uint8: the last `width` scores as columns (red above the threshold), on a scale of
    twice the threshold or the highest score so far, the threshold as a red line."""
    bar = np.full((BAR_HEIGHT, width, 3), 30, np.uint8)
    shown = history[-width:]
    finite = shown[np.isfinite(shown)]
    top = max(2 * threshold, float(finite.max()) if finite.size else 0.0, 1e-9)
    plot = BAR_HEIGHT - 20  # pixels under the text line
    for x, score in enumerate(shown):
        if np.isfinite(score):
            height = int(round(np.clip(score / top, 0, 1) * plot))
            colour = FLAG_COLOUR if score > threshold else NORMAL_COLOUR
            bar[BAR_HEIGHT - height :, x] = colour
    line = BAR_HEIGHT - int(round(threshold / top * plot))
    bar[line, :] = FLAG_COLOUR
    return bar


def write_scores(out: Path, name: str, scores: np.ndarray, threshold: float) -> dict[str, Path]:
    """<name>.csv (frame, score, flagged; an empty score where no window scores the frame), <name>.npy and the
    timeline <name>_timeline.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = {"csv": out / f"{name}.csv", "npy": out / f"{name}.npy", "png": out / f"{name}_timeline.png"}
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow(["frame", "score", "flagged"])
    for index, score in enumerate(scores):
        writer.writerow([index, f"{score:.6g}" if np.isfinite(score) else "", int(score > threshold)])
    atomic_write(paths["csv"], table.getvalue())
    with atomic_file(paths["npy"]) as handle:
        np.save(handle, scores)
    figure, axes = plt.subplots(figsize=(8, 2.5))
    frames = np.arange(len(scores))
    axes.plot(frames, scores, color="tab:blue", lw=1, label="score")
    axes.axhline(threshold, color="tab:red", lw=1, ls="--", label="threshold")
    axes.fill_between(
        frames,
        0,
        1,
        where=scores > threshold,
        color="tab:red",
        alpha=0.2,
        transform=axes.get_xaxis_transform(),
        label="flagged",
    )
    axes.set(xlabel="frame", ylabel="anomaly score", title=name)
    axes.legend(loc="upper right", fontsize=7)
    figure.tight_layout()
    with atomic_file(paths["png"]) as handle:
        figure.savefig(handle, format="png", dpi=120)
    plt.close(figure)
    return paths


class VideoOut:
    """The annotated MP4 of one video, written frame by frame (to a temporary name, renamed when complete)."""

    def __init__(self, path: Path, fps: float) -> None:
        self.path, self.fps = path, fps
        self.partial = path.with_name(f".{path.stem}.partial{path.suffix}")
        self.writer: cv2.VideoWriter | None = None

    def add(self, image: np.ndarray) -> None:
        if self.writer is None:
            height, width = image.shape[:2]
            self.writer = cv2.VideoWriter(str(self.partial), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (width, height))
            if not self.writer.isOpened():
                raise OSError(f"OpenCV cannot write {self.partial} (no mp4v encoder); install opencv-python-headless")
        self.writer.write(image)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()
            self.partial.replace(self.path)


# ----------------------------------------------------------------------------------------- the verb
@dataclass(frozen=True)
class ScoredFootage:
    """What `score_footage` wrote and measured."""

    paths: dict[str, dict[str, Path]]  # video -> {"csv", "npy", "png", "mp4"}
    scores: dict[str, np.ndarray]  # video -> (frames,) deployable scores, NaN unscored
    flagged: dict[str, np.ndarray]  # video -> (frames,) bool
    calibration: Calibration
    frames_per_second: float  # frames decoded, scored and written per second of wall time
    latency_ms: dict[str, float]  # per frame, from its decoding to its score: median and p95
    summary: Path


def run_calibration(
    run: Path, device: torch.device, false_alarm_rate: float | None, normal: str | Path | None, progress: bool
) -> Calibration:
    """The run's stored calibration, or a new one (written into the run) where it has none, where another
    false-alarm rate is asked for, or on the normal footage `normal`."""
    cfg = run_config(run)
    stored = read_calibration(run)
    rate = false_alarm_rate if false_alarm_rate is not None else DEFAULT_FALSE_ALARM_RATE
    if normal is None and stored is not None and (false_alarm_rate is None or stored.false_alarm_rate == rate):
        return stored
    if normal is None:
        return calibrate(cfg, run, device, false_alarm_rate=rate, progress=progress)
    clips, source = footage_clips(find_footage(normal), cfg), f"normal footage {Path(normal).resolve()}"
    return calibrate(cfg, run, device, clips, source, rate, progress)


def score_footage(
    run: str | Path,
    footage: str | Path,
    out: str | Path | None = None,
    *,
    stream: bool = False,
    device: str | None = None,
    false_alarm_rate: float | None = None,
    normal: str | Path | None = None,
    video: bool = True,
    fps: float = 25.0,
    progress: bool = True,
) -> ScoredFootage:
    """Score every frame of `footage` (a video file, a folder of videos or of frame folders) with the finished
    `run`'s last checkpoint and its calibration (made and stored first where it has none, or on the normal
    footage `normal`), writing the CSV, NPY, timeline and (with `video`) the annotated MP4 of each video into
    `out` (default: scores/<footage name>). `stream`: one frame at a time (batch 1), each scored as soon as its
    window is decoded; otherwise batches of eval.batch_size windows (the same scores).

    Example: score_footage("runs/3f2a9c1b0d4e", "street.mp4", "scores/street").frames_per_second
    """
    from .pipeline import resolve_device

    run, footage = Path(run), Path(footage)
    cfg = run_config(run)
    chosen = resolve_device(device or cfg.exec.device)
    videos = find_footage(footage)  # before any work: a wrong path fails at once
    calibration = run_calibration(run, chosen, false_alarm_rate, normal, progress)
    scorer = FrameScorer(cfg, run, calibration, chosen, 1 if stream else cfg.eval.batch_size)
    out = Path(out) if out is not None else Path("scores") / (footage.stem if footage.is_file() else footage.name)
    out.mkdir(parents=True, exist_ok=True)
    paths, scores, flagged, latencies, frames = {}, {}, {}, [], 0
    started = time.perf_counter()
    with scorer.session():
        for item in videos:
            written = VideoOut(out / f"{item.name}.mp4", fps) if video else None
            history: list[float] = []
            bar = tqdm(total=item.frame_count(), desc=f"score {item.name}", unit="frame", disable=not progress)
            for frame in scorer.frames(decode(item, cfg.data.size, cfg.data.grayscale)):
                history.append(frame.score)
                if np.isfinite(frame.score):
                    latencies.append(frame.latency)
                if written is not None:
                    written.add(annotated_frame(frame, np.asarray(history), calibration.threshold))
                bar.update()
            bar.close()
            if written is not None:
                written.close()
            frames += len(history)
            scores[item.name] = np.asarray(history)
            flagged[item.name] = scores[item.name] > calibration.threshold
            paths[item.name] = write_scores(out, item.name, scores[item.name], calibration.threshold)
            if written is not None:
                paths[item.name]["mp4"] = written.path
    seconds = time.perf_counter() - started
    latency_ms = {
        "median": float(np.median(latencies) * 1e3) if latencies else float("nan"),
        "p95": float(np.percentile(latencies, 95) * 1e3) if latencies else float("nan"),
    }
    summary = out / "summary.json"
    record = {
        "run": str(run.resolve()),
        "footage": str(footage.resolve()),
        "device": str(chosen),
        "mode": "stream" if stream else "batch",
        "frames": frames,
        "seconds": seconds,
        "frames_per_second": frames / seconds if seconds > 0 else float("nan"),
        "latency_ms": latency_ms,
        "threshold": calibration.threshold,
        "false_alarm_rate": calibration.false_alarm_rate,
        "calibration": calibration.source,
        "flagged": {name: int(values.sum()) for name, values in flagged.items()},
    }
    atomic_write(summary, json.dumps(record, indent=2) + "\n")
    return ScoredFootage(paths, scores, flagged, calibration, record["frames_per_second"], latency_ms, summary)
