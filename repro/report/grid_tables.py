"""Report folders from the run store: a reproduced table beside the published one, an ablation comparison."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..runs import RunStore
from ..stats import mean_std, seed_difference_interval
from .results import TABLE_METRICS, TYPES, run_rows
from .tables import MISSING, format_interval, format_mean_std, write_table

if TYPE_CHECKING:
    from ..grids import GridRun, Table


def _pm(values: pd.Series, scale: float = 100.0) -> str:
    """ "mean ± std" of the non-missing values over seeds, scaled (AUC in %); "-" when there are none."""
    values = values.dropna().astype(float) * scale
    if values.empty:
        return MISSING
    n, mean, std = mean_std(values.to_numpy())
    return format_mean_std(mean, std, n)


MEMORY_COLUMNS = {  # run_rows key -> (column title, scale)
    "frame_perplexity": ("frame perplexity", 1.0),
    "largest_share": ("largest item share", 1.0),
    "camera_position_item_share": ("item explained by camera x position", 1.0),
    "distance_auc": ("distance-only AUC", 100.0),
}


def table_report(table: Table, runs: list[GridRun], store: RunStore, out: Path) -> dict[str, Path]:
    """The reproduced table: published λ, epoch and AUC beside ours at the honest default (last checkpoint,
    the published λ) and ours with the study's test-set selection ("oracle"), kept in separate columns."""
    rows = run_rows(runs, store)
    published = {(p["dataset"], p["model"]): p for p in table.published}
    synthetic = runs and runs[0].config.data.name == "synthetic"
    presets = {run.labels["dataset"]: run.config.data.preset for run in runs}  # what ran, overrides included
    lines = []
    for (dataset, model), group in rows.groupby(["dataset", "model"], sort=False):
        paper = published.get((dataset, model), {})
        ours = group["auc"].astype(float).mean() * 100
        line = {
            "dataset": f"{dataset} ({presets[dataset]})" if synthetic else dataset,
            "model": model,
            "λ (study)": paper.get("lambda", "-"),
            "epoch (study)": paper.get("epoch", "-"),
            "AUC study": paper.get("auc_study", np.nan),
            "AUC paper": paper.get("auc_paper", np.nan),
            "ours: last epoch, paper λ": _pm(group["auc"]),
            "ours: oracle (epoch, λ on test)": _pm(group["oracle_auc"]),
            "oracle epoch, λ": ", ".join(
                f"{e}, {lam:g}" for e, lam in zip(group["oracle_epoch"], group["oracle_lambda"])
            ),
            "ours − study": round(ours - paper["auc_study"], 2) if "auc_study" in paper else np.nan,
            "seeds": len(group),
        }
        if group["macro_auc_padded"].notna().any():  # recorded since the literature's macro AUC and the calibration
            line |= {
                "macro AUC (videos with both classes)": _pm(group["macro_auc"]),
                "macro AUC (every video, padded)": _pm(group["macro_auc_padded"]),
            }
        if group["deployable_auc"].notna().any():
            line |= {
                "ours: deployable AUC (calibrated, no per-video min-max)": _pm(group["deployable_auc"]),
                "detection / false alarms at threshold (%)": f"{_pm(group['detection_rate'])} / "
                f"{_pm(group['false_alarm_rate'])}",
            }
        if synthetic:
            line |= {f"AUC {kind.replace('_', '-')}": _pm(group[f"auc_{kind}"]) for kind in TYPES}
        if group["frame_perplexity"].notna().any():  # a model with memory: does it collapse, does it detect
            line |= {title: _pm(group[key], scale) for key, (title, scale) in MEMORY_COLUMNS.items()}
        lines.append(line)
    caption = table.question + (
        " Synthetic stand-ins: the dataset column names the preset that plays each "
        "dataset; published numbers are on the real data."
        if synthetic
        else ""
    )
    return write_table(pd.DataFrame(lines), out, table.name, caption=caption)


def declaration_report(table: Table, runs: list[GridRun], store: RunStore, out: Path) -> dict[str, Path]:
    """The report a table declaration asks for: the collapse study's when it names a [collapse] reference and
    recipe (report/collapse.py), else the reproduced table beside the published one."""
    if table.collapse:
        from .collapse import collapse_report

        return collapse_report(table, runs, store, out)
    return table_report(table, runs, store, out)


def ablation_report(runs: list[GridRun], store: RunStore, out: Path) -> dict[str, Path]:
    """Each metric of the baseline and the variant(s) as mean ± std over the shared seeds, and the variant's
    difference from the baseline with a 95% t-interval over paired seeds."""
    rows = run_rows(runs, store)
    baseline = rows[rows["variant"] == "baseline"].set_index("seed")
    lines = []
    for variant, group in rows[rows["variant"] != "baseline"].groupby("variant", sort=False):
        group = group.set_index("seed")
        for metric in (*TABLE_METRICS, *(f"auc_{kind}" for kind in TYPES), "active_fraction", "perplexity"):
            if baseline[metric].isna().all() and group[metric].isna().all():
                continue
            paired = pd.concat([baseline[metric], group[metric]], axis=1, keys=["a", "b"], join="inner")
            paired = paired.dropna().astype(float)
            scale = 100.0 if "auc" in metric or metric in ("aupr", "eer", "detection_rate", "false_alarm_rate") else 1.0
            difference, low, high = (
                seed_difference_interval(paired["a"] * scale, paired["b"] * scale)
                if len(paired)
                else (np.nan, np.nan, np.nan)
            )
            lines.append(
                {
                    "variant": variant,
                    "metric": metric,
                    "baseline": _pm(baseline[metric], scale),
                    "variant value": _pm(group[metric], scale),
                    "difference": round(difference, 2) if np.isfinite(difference) else MISSING,
                    "95% interval": format_interval(low, high),
                    "seeds": len(paired),
                }
            )
    caption = "Variant minus baseline; AUC, AUPR and EER in %. The interval is a paired t-interval over seeds."
    return write_table(pd.DataFrame(lines), out, "comparison", caption=caption)
