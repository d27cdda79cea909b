"""The collapse-remedy report (ablations/collapse.toml, docs/method.md#reporting-protocol-and-memory-diagnostics):
memory diagnostics per remedy over seeds,
paired differences to the reference row, the study's fixed criteria checked against the numbers, and item use
per training epoch.

Reads metrics.json (`default.memory`, `default.auc`) and train.jsonl (`memory` per epoch) only.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..runs import RunStore, read_jsonl
from ..stats import mean_std, seed_difference_interval
from .figures import save_figure
from .results import run_rows
from .tables import MISSING, format_interval, format_mean_std, write_table

if TYPE_CHECKING:
    from ..grids import GridRun, Table

# column -> what it is, read from metrics["default"] (memory diagnostics under "memory")
COLUMNS = {
    "frame_perplexity": "frame perplexity",
    "camera_position_item_share": "item share explained by camera x position",
    "distance_auc": "distance AUC",
    "auc": "frame AUC",
    "largest_share": "largest item's share",
    "zeros_psnr_change": "read -> zeros: PSNR change (dB)",
}
PAIRED = ("frame_perplexity", "distance_auc", "auc")  # differences to the reference, same seed
COLLAPSED_PERPLEXITY, COLLAPSED_SHARE, USELESS_DISTANCE_AUC, SPREAD_PERPLEXITY = 3.0, 0.6, 0.6, 7.0
DECIMALS = 3


def collapse_rows(runs: list[GridRun], store: RunStore) -> pd.DataFrame:
    """One row per finished run: its remedy (the declaration's row), seed, folder and diagnostics (NaN where the
    run did not record one)."""
    rows = run_rows(runs, store)
    if rows.empty:
        return pd.DataFrame(columns=["remedy", "seed", "run", *COLUMNS])
    rows = rows.rename(columns={"model": "remedy"}).assign(run=[store.root / name for name in rows["run"]])
    return rows[["remedy", "seed", "run"]].join(rows[list(COLUMNS)].astype(float))


def _mean_std(values: pd.Series) -> str:
    values = values.dropna()
    if values.empty:
        return MISSING
    n, mean, std = mean_std(values.to_numpy())
    return format_mean_std(mean, std, n, DECIMALS)


def _paired(reference: pd.Series, remedy: pd.Series) -> tuple[str, str]:
    """(mean of remedy - reference over shared seeds, its 95% t-interval), formatted."""
    paired = pd.concat([reference, remedy], axis=1, keys=["a", "b"], join="inner").dropna()
    if paired.empty:
        return MISSING, MISSING
    difference, low, high = seed_difference_interval(paired["a"], paired["b"])
    return f"{difference:.{DECIMALS}f}", format_interval(low, high, DECIMALS)


def collapse_table(rows: pd.DataFrame, reference: str) -> pd.DataFrame:
    """Per remedy: seeds, mean ± std of each diagnostic, and the paired difference to `reference` of PAIRED."""
    base = rows[rows["remedy"] == reference].set_index("seed")
    lines = []
    for remedy, group in rows.groupby("remedy", sort=False):
        group = group.set_index("seed")
        line = {"remedy": remedy, "seeds": len(group)}
        line |= {title: _mean_std(group[key]) for key, title in COLUMNS.items()}
        for key in PAIRED:
            difference, interval = _paired(base[key], group[key]) if remedy != reference else (MISSING, MISSING)
            line |= {f"Δ {COLUMNS[key]}": difference, f"Δ {COLUMNS[key]} 95% CI": interval}
        lines.append(line)
    return pd.DataFrame(lines)


def criteria(rows: pd.DataFrame, reference: str, recipe: str) -> tuple[bool, str]:
    """(met, the sentence): the fixed criteria on the means over seeds. Without a remedy the memory collapses
    (frame perplexity <= 3 or largest share > 0.6) and the distance is no detector (AUC <= 0.6); with the study's
    recipe the frame perplexity is >= 7. A missing number does not meet its criterion."""
    base, spread = rows[rows["remedy"] == reference], rows[rows["remedy"] == recipe]
    perplexity, share = base["frame_perplexity"].mean(), base["largest_share"].mean()
    distance, recipe_perplexity = base["distance_auc"].mean(), spread["frame_perplexity"].mean()
    collapsed = perplexity <= COLLAPSED_PERPLEXITY or share > COLLAPSED_SHARE
    useless = distance <= USELESS_DISTANCE_AUC
    spread_out = recipe_perplexity >= SPREAD_PERPLEXITY
    met = bool(collapsed and useless and spread_out)

    def verdict(ok: bool) -> str:
        return "met" if ok else "not met"

    sentence = (
        f"Criteria (fixed before the runs; means over seeds): {verdict(met).upper()}. "
        f"Without a remedy ({reference!r}) frame perplexity <= {COLLAPSED_PERPLEXITY:g} or largest share > "
        f"{COLLAPSED_SHARE:g}: {verdict(collapsed)} ({perplexity:.2f}, {share:.2f}); and distance AUC <= "
        f"{USELESS_DISTANCE_AUC:g}: {verdict(useless)} ({distance:.3f}). With the study's recipe ({recipe!r}) "
        f"frame perplexity >= {SPREAD_PERPLEXITY:g}: {verdict(spread_out)} ({recipe_perplexity:.2f})."
    )
    return met, sentence


def epoch_usage(run: Path) -> tuple[np.ndarray, np.ndarray]:
    """(epochs, shares (epochs, m)) of a run's train.jsonl: each item's share of the nearest-item counts."""
    records = [r for r in read_jsonl(run / "train.jsonl") if "memory" in r]
    counts = np.array([r["memory"]["counts"] for r in records], dtype=float).reshape(len(records), -1)
    totals = counts.sum(axis=1, keepdims=True)
    return np.array([r["epoch"] for r in records]), np.divide(counts, totals, where=totals > 0, out=counts * 0)


def epoch_perplexity(run: Path) -> tuple[np.ndarray, np.ndarray]:
    """(epochs, frame perplexity per epoch) of a run's train.jsonl."""
    records = [r for r in read_jsonl(run / "train.jsonl") if "frame_perplexity" in r.get("memory", {})]
    return np.array([r["epoch"] for r in records]), np.array([r["memory"]["frame_perplexity"] for r in records])


def usage_over_epochs_figure(runs: dict[str, Path]) -> Figure:
    """One heatmap per remedy (rows: items, columns: epochs, colour: share of the queries), and a last panel with
    every remedy's frame perplexity per epoch."""
    columns = min(4, len(runs) + 1)
    grid_rows = math.ceil((len(runs) + 1) / columns)
    fig = Figure(figsize=(3.2 * columns, 2.6 * grid_rows), layout="constrained")
    axes = fig.subplots(grid_rows, columns, squeeze=False).ravel()
    for ax, (remedy, run) in zip(axes, runs.items()):
        epochs, shares = epoch_usage(run)
        image = ax.imshow(
            shares.T,
            aspect="auto",
            origin="lower",
            vmin=0,
            vmax=1,
            cmap="viridis",
            extent=(epochs.min() - 0.5, epochs.max() + 0.5, -0.5, shares.shape[1] - 0.5),
        )
        ax.set(title=remedy, xlabel="epoch", ylabel="item")
    fig.colorbar(image, ax=axes[: len(runs)].tolist(), label="share of queries")
    curves = axes[len(runs)]
    for remedy, run in runs.items():
        epochs, perplexity = epoch_perplexity(run)
        curves.plot(epochs, perplexity, marker="o", label=remedy)
    curves.set(title="frame perplexity", xlabel="epoch", ylabel="perplexity")
    curves.xaxis.set_major_locator(MaxNLocator(integer=True))
    curves.legend(fontsize="x-small")
    for ax in axes[len(runs) + 1 :]:
        ax.set_axis_off()
    return fig


def collapse_report(table: Table, runs: list[GridRun], store: RunStore, out: Path) -> dict[str, Path]:
    """collapse.md / .csv / .tex (the criteria line first) and usage_over_epochs.png of each remedy's first seed."""
    reference, recipe = table.collapse["reference"], table.collapse["recipe"]
    rows = collapse_rows(runs, store)
    _, sentence = criteria(rows, reference, recipe)
    caption = (
        f"{sentence}\n\nMean ± std over seeds; Δ = remedy minus {reference!r} on the same seed, with its 95% "
        "t-interval. AUCs in [0, 1]."
    )
    paths = write_table(collapse_table(rows, reference), out, table.name, caption=caption, decimals=DECIMALS)
    first_seeds = rows.sort_values("seed", kind="stable").groupby("remedy", sort=False).first()
    histories = {remedy: run for remedy, run in first_seeds["run"].items() if (run / "train.jsonl").exists()}
    if histories:
        paths["usage"] = save_figure(usage_over_epochs_figure(histories), out, "usage_over_epochs")[0]
    return paths
