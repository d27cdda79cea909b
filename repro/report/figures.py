"""Figures: memory usage, t-SNE of queries and items, ROC curves, score timelines, reconstructions, skip probes,
loss and AUC per epoch.

Each `*_figure` function builds a matplotlib Figure from arrays (tests inspect its Axes); the function of the
same name without the suffix saves it as stem.png and stem.svg through `save_figure`. Figures are made with
`matplotlib.figure.Figure`, not pyplot: no backend and no global figure registry are involved, so nothing
stays open. Sizes are fixed in inches at DPI, so a PNG is (height * DPI, width * DPI) pixels.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import NamedTuple, TypedDict

import numpy as np
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator
from openTSNE import TSNE
from sklearn.metrics import auc, roc_curve

from ..anomaly_types import ANOMALY_TYPES as TYPE_CODES
from ..anomaly_types import UNKNOWN, display
from ..atomic import atomic_write
from ..stats import memory_usage_summary

DPI = 100
HISTOGRAM_SIZE = (6.0, 4.0)  # inches
TSNE_SIZE = (7.0, 6.0)
ROC_SIZE = (5.0, 5.0)
PROBE_SIZE = (6.0, 4.0)
CURVES_SIZE = (10.0, 3.5)
TIMELINE_WIDTH, TIMELINE_ROW = 10.0, 2.0  # one row per video
GRID_PANEL = 2.0  # one square panel per image; four columns, one row per example
TYPE_COLOURS = {"spatial": "tab:orange", "temporal": "tab:purple", "spatio_temporal": "tab:red"}
ANOMALY_TYPES = {code: (display(name), TYPE_COLOURS[name]) for code, name in TYPE_CODES.items()}
COLUMNS = ("input", "output", "target", "squared error")
SPANS = {**ANOMALY_TYPES, UNKNOWN: ("anomalous (labelled)", "tab:gray")}  # no type (real datasets)


def save_figure(fig: Figure, out_dir: Path, stem: str) -> list[Path]:
    """Write out_dir/stem.png and out_dir/stem.svg atomically at DPI; return the two paths."""
    paths = []
    for fmt in ("png", "svg"):
        buffer = io.BytesIO()
        fig.savefig(buffer, format=fmt, dpi=DPI, metadata={"Date": None} if fmt == "svg" else None)
        paths.append(atomic_write(Path(out_dir) / f"{stem}.{fmt}", buffer.getvalue()))
    return paths


def _palette(m: int) -> list:
    """m distinguishable colours: tab10 up to 10 items (the paper's M), husl beyond."""
    return sns.color_palette("tab10" if m <= 10 else "husl", m)


def memory_usage_figure(counts: np.ndarray, title: str) -> Figure:
    """Bars (m,) of nearest-item counts, annotated with the active fraction and the perplexity."""
    counts = np.asarray(counts).ravel()
    m = counts.size
    active, perplexity = memory_usage_summary(counts)
    fig = Figure(figsize=HISTOGRAM_SIZE, dpi=DPI, layout="constrained")
    ax = fig.subplots()
    ax.bar(np.arange(m), counts, color=_palette(m), edgecolor="black", linewidth=0.5)
    summary = f"active {active:.0%} of {m}, perplexity {perplexity:.2f} (1 = collapse, {m} = uniform)"
    ax.set(xlabel="memory item", ylabel="queries nearest to the item", xticks=np.arange(m))
    ax.set_title(f"{title}\n{summary}", fontsize=10)  # in the title: a box inside the axes can hide a tall bar
    return fig


def memory_usage_histogram(counts: np.ndarray, title: str, out_dir: Path, stem: str) -> list[Path]:
    """Save `memory_usage_figure` as stem.png / stem.svg."""
    return save_figure(memory_usage_figure(counts, title), out_dir, stem)


class TsneEmbedding(NamedTuple):
    queries: np.ndarray  # (k, 2) the kept queries
    items: np.ndarray  # (m, 2)
    kept: np.ndarray  # (k,) indices of the kept queries into the input


def tsne_embedding(features: np.ndarray, items: np.ndarray, seed: int = 0, max_points: int = 5000) -> TsneEmbedding:
    """One openTSNE map of the queries (a seeded subsample of max_points beyond that) and the m items together.

    The items are embedded with the queries (their concatenation is fit once), not transformed into a
    finished query map: one optimisation places both by the same affinities, and with m much smaller than
    the number of queries the items barely move the queries.
    """
    features, items = np.asarray(features, dtype=float), np.asarray(items, dtype=float)
    if features.ndim != 2 or items.ndim != 2 or features.shape[1] != items.shape[1]:
        raise ValueError(f"t-SNE needs features (n, d) and items (m, d), got {features.shape} and {items.shape}")
    n = len(features)
    rng = np.random.default_rng(seed)
    kept = np.arange(n) if n <= max_points else np.sort(rng.choice(n, max_points, replace=False))
    points = np.concatenate([features[kept], items])
    perplexity = min(30.0, (len(points) - 1) / 3)  # openTSNE needs 3 * perplexity < number of points
    xy = np.asarray(TSNE(perplexity=perplexity, random_state=seed, n_jobs=1, verbose=False).fit(points))
    return TsneEmbedding(queries=xy[: len(kept)], items=xy[len(kept) :], kept=kept)


def tsne_figure(embedding: TsneEmbedding, assignments: np.ndarray, title: str = "") -> Figure:
    """Queries coloured by their nearest item (assignments (n,) over the full input), items as large stars."""
    m = len(embedding.items)
    colours = np.asarray(_palette(m))
    fig = Figure(figsize=TSNE_SIZE, dpi=DPI, layout="constrained")
    ax = fig.subplots()
    nearest = np.asarray(assignments).ravel()[embedding.kept]
    ax.scatter(*embedding.queries.T, c=colours[nearest], s=8, alpha=0.6, linewidths=0)
    ax.scatter(*embedding.items.T, c=colours, s=260, marker="*", edgecolors="black", linewidths=1.2, zorder=3)
    for i, (x, y) in enumerate(embedding.items):
        ax.annotate(str(i), (x, y), xytext=(6, 6), textcoords="offset points", fontsize=9, weight="bold")
    ax.set(
        title=title or "t-SNE of queries (dots, coloured by nearest item) and memory items (stars)",
        xticks=[],
        yticks=[],
    )
    return fig


def tsne_map(
    features: np.ndarray,
    assignments: np.ndarray,
    items: np.ndarray,
    out_dir: Path,
    stem: str,
    seed: int = 0,
    max_points: int = 5000,
    title: str = "",
) -> tuple[list[Path], TsneEmbedding]:
    """Embed (see `tsne_embedding`), draw (see `tsne_figure`), save; return the paths and the 2-D coordinates."""
    embedding = tsne_embedding(features, items, seed=seed, max_points=max_points)
    return save_figure(tsne_figure(embedding, assignments, title), out_dir, stem), embedding


def roc_figure(curves: dict[str, tuple[np.ndarray, np.ndarray]], title: str = "Frame-level ROC") -> Figure:
    """One ROC curve per name from (scores, labels), its AUC in the legend, and the chance diagonal."""
    fig = Figure(figsize=ROC_SIZE, dpi=DPI, layout="constrained")
    ax = fig.subplots()
    for name, (scores, labels) in curves.items():
        fpr, tpr, _ = roc_curve(np.asarray(labels).ravel(), np.asarray(scores).ravel())
        ax.plot(fpr, tpr, label=f"{name} (AUC {auc(fpr, tpr):.3f})")
    ax.plot([0, 1], [0, 1], color="gray", linestyle="--", linewidth=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", xlim=(0, 1), ylim=(0, 1.01), title=title)
    ax.legend(loc="lower right", fontsize=8)
    return fig


def roc_curves(curves: dict[str, tuple[np.ndarray, np.ndarray]], out_dir: Path, stem: str) -> list[Path]:
    """Save `roc_figure` as stem.png / stem.svg."""
    return save_figure(roc_figure(curves), out_dir, stem)


def probe_figure(rows: list[dict], title: str = "Skip probe") -> Figure:
    """Bars of the PSNR change (dB) per replaced part, one bar per fill: rows of repro.probe.probe_run."""
    fig = Figure(figsize=PROBE_SIZE, dpi=DPI, layout="constrained")
    ax = fig.subplots()
    sns.barplot(
        x=[r["replaced"] for r in rows], y=[r["psnr_change"] for r in rows], hue=[r["fill"] for r in rows], ax=ax
    )
    ax.axhline(0, color="gray", linewidth=0.8)
    ax.set(xlabel="replaced at test time", ylabel="PSNR change of the output (dB)", title=title)
    ax.margins(y=0.12)  # room for the labels at the bars' ends
    sns.move_legend(ax, "upper left", bbox_to_anchor=(1, 1), title="fill")  # beside the bars, never over them
    for bars in ax.containers:
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
    return fig


def probe_bars(rows: list[dict], out_dir: Path, stem: str) -> list[Path]:
    """Save `probe_figure` as stem.png / stem.svg."""
    return save_figure(probe_figure(rows), out_dir, stem)


def _runs(values: np.ndarray) -> list[tuple[int, int, int]]:
    """(start, stop, value) of each maximal run of equal values."""
    edges = np.flatnonzero(np.diff(values)) + 1
    starts, stops = np.r_[0, edges], np.r_[edges, len(values)]
    return [(int(a), int(b), int(values[a])) for a, b in zip(starts, stops)]


def score_timeline_figure(
    scores: np.ndarray,
    labels: np.ndarray,
    video_ids: np.ndarray,
    videos: list,
    anomaly_types: np.ndarray | None = None,
) -> Figure:
    """One row per video: its anomaly score over frames, labelled anomalous spans shaded.

    anomaly_types (f,) are the signals' codes (0 normal, 1 spatial, 2 temporal, 3 spatio-temporal); without
    them, or for a code outside these, a span is grey.
    """
    scores, labels, video_ids = np.asarray(scores).ravel(), np.asarray(labels).ravel(), np.asarray(video_ids).ravel()
    missing = [v for v in videos if not (video_ids == v).any()]
    if missing or not videos:
        raise ValueError(f"score timeline: videos {missing or videos} not in video_ids {np.unique(video_ids).tolist()}")
    codes = np.full(labels.shape, UNKNOWN) if anomaly_types is None else np.asarray(anomaly_types).ravel()
    span = np.where(labels == 1, np.where(np.isin(codes, list(ANOMALY_TYPES)), codes, UNKNOWN), 0)  # 0: not shaded
    fig = Figure(figsize=(TIMELINE_WIDTH, TIMELINE_ROW * len(videos)), dpi=DPI, layout="constrained")
    axes = fig.subplots(len(videos), 1, squeeze=False)[:, 0]
    for ax, video in zip(axes, videos):
        frames = video_ids == video
        for start, stop, code in _runs(span[frames]):
            if code:
                ax.axvspan(start - 0.5, stop - 0.5, color=SPANS[code][1], alpha=0.25, linewidth=0)
        ax.plot(scores[frames], color="black", linewidth=1)
        ax.set(xlim=(-0.5, frames.sum() - 0.5), ylabel="score", title=f"video {video}")
    axes[-1].set_xlabel("frame")
    shown = np.unique(span[np.isin(video_ids, videos)])
    legend = [Patch(color=SPANS[c][1], alpha=0.25, label=SPANS[c][0]) for c in shown if c]
    if legend:
        fig.legend(handles=legend, loc="outside upper center", ncols=len(legend), fontsize=8)
    return fig


def score_timeline(
    scores: np.ndarray,
    labels: np.ndarray,
    video_ids: np.ndarray,
    videos: list,
    out_dir: Path,
    stem: str,
    anomaly_types: np.ndarray | None = None,
) -> list[Path]:
    """Save `score_timeline_figure` as stem.png / stem.svg."""
    return save_figure(score_timeline_figure(scores, labels, video_ids, videos, anomaly_types), out_dir, stem)


class Example(TypedDict):
    title: str  # e.g. "spatial anomaly"
    input: np.ndarray  # (h, w, c) in [0, 1]
    output: np.ndarray  # (h, w, c) in [0, 1]
    target: np.ndarray  # (h, w, c) in [0, 1]


def _image(x: np.ndarray) -> np.ndarray:
    """(h, w, c) in [0, 1] as imshow takes it: grey (h, w) for one channel."""
    x = np.clip(np.asarray(x, dtype=float), 0, 1)
    return x[..., 0] if x.ndim == 3 and x.shape[-1] == 1 else x


def reconstruction_figure(examples: list[Example]) -> Figure:
    """Rows of input / output / target / squared error (channel mean), titled with the MSE on the [0, 1] scale."""
    for i, example in enumerate(examples):
        shapes = {key: np.shape(example[key]) for key in ("input", "output", "target")}
        if shapes["output"] != shapes["target"] or len(shapes["output"]) != 3:
            raise ValueError(
                f"example {i} ({example['title']!r}): output and target need one (h, w, c) shape, got {shapes}"
            )
    if not examples:
        raise ValueError("reconstruction grid needs at least one example")
    errors = [np.square(np.asarray(e["output"], float) - np.asarray(e["target"], float)) for e in examples]
    vmax = max(float(error.mean(axis=-1).max()) for error in errors) or 1.0  # one scale for every error map
    fig = Figure(figsize=(4 * GRID_PANEL, GRID_PANEL * len(examples)), dpi=DPI, layout="constrained")
    for row, example, error in zip(np.atleast_1d(fig.subfigures(len(examples), 1)), examples, errors):
        row.suptitle(f"{example['title']}: MSE {error.mean():.4f}", fontsize=10)
        images = (_image(example["input"]), _image(example["output"]), _image(example["target"]))
        for ax, image, name in zip(row.subplots(1, 4), (*images, error.mean(axis=-1)), COLUMNS):
            error_map = name == COLUMNS[-1]
            ax.imshow(image, cmap="inferno" if error_map else "gray", vmin=0, vmax=vmax if error_map else 1)
            ax.set_title(f"{name} ≤ {vmax:.3g}" if error_map else name, fontsize=10)
            ax.set(xticks=[], yticks=[])
    return fig


def reconstruction_grid(examples: list[Example], out_dir: Path, stem: str) -> list[Path]:
    """Save `reconstruction_figure` as stem.png / stem.svg (the study's Figures 6-9)."""
    return save_figure(reconstruction_figure(examples), out_dir, stem)


def epoch_curves_figure(curves: dict[str, dict[int, float]], title: str = "") -> Figure:
    """Two panels over epochs: the training losses (each "train/<term>" but lr and seconds, log scale) and the
    test AUCs of each evaluated checkpoint ("eval/auc", "eval/macro_auc", ...)."""
    fig = Figure(figsize=CURVES_SIZE)
    losses, aucs = fig.subplots(1, 2)
    for name, values in curves.items():
        kind, _, key = name.partition("/")
        epochs = sorted(values)
        if kind == "train" and key not in ("lr", "seconds") and all(values[e] > 0 for e in epochs):
            losses.plot(epochs, [values[e] for e in epochs], marker="o", label=key)
        elif kind == "eval" and "auc" in key:
            aucs.plot(epochs, [100 * values[e] for e in epochs], marker="o", label=key)
    losses.set(xlabel="epoch", ylabel="training loss", yscale="log", title="loss per epoch")
    aucs.set(xlabel="epoch", ylabel="AUC (%)", title="test AUC per evaluated epoch")
    for axes in (losses, aucs):
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        if axes.get_legend_handles_labels()[0]:
            axes.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def epoch_curves(curves: dict[str, dict[int, float]], out_dir: Path, stem: str, title: str = "") -> list[Path]:
    return save_figure(epoch_curves_figure(curves, title), out_dir, stem)
