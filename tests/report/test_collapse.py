"""The collapse report on fabricated runs (metrics.json and train.jsonl written by hand, no model involved)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from fakes import metrics_record
from scipy import stats

from repro.cli import main
from repro.config import to_toml
from repro.grids import load_table, table_grid
from repro.report.folder import ReportWarning
from repro.report.grid_tables import declaration_report
from repro.runs import RunStore, set_status, write_metrics

DECLARATION = """
name = "collapse"
question = "Which remedy keeps the memory from collapsing?"
datasets = ["shanghaitech"]
[stand_ins]
shanghaitech = "tiny"
[collapse]
reference = "no remedy"
recipe = "study recipe"
[models]
"no remedy" = ["model.mnad.width=4"]
"study recipe" = ["model.mnad.width=4", "model.mnad.uniform_memory=1", "model.mnad.compactness=0.001"]
"k-means init" = ["model.mnad.width=4", "model.mnad.kmeans_init_steps=20"]
"""
# remedy -> per seed (0, 1): frame perplexity, largest share, distance AUC, frame AUC
COLLAPSED = {
    "no remedy": [(2.0, 0.7, 0.55, 0.80), (2.5, 0.8, 0.50, 0.84)],
    "study recipe": [(8.0, 0.2, 0.70, 0.82), (7.0, 0.3, 0.60, 0.90)],
    "k-means init": [(4.0, 0.5, 0.60, 0.81), (6.0, 0.4, 0.62, 0.85)],
}
SPREAD_ALREADY = COLLAPSED | {"no remedy": [(9.0, 0.2, 0.75, 0.80), (8.5, 0.2, 0.80, 0.84)]}


def memory(perplexity: float, share: float, distance_auc: float) -> dict:
    return {
        "counts": [7, 2, 1, 0],
        "perplexity": perplexity + 1,
        "frame_perplexity": perplexity,
        "active_fraction": 0.75,
        "largest_share": share,
        "camera_position_item_share": 0.9,
        "distance_auc": distance_auc,
        "read_ablation": {
            "zeros": {"psnr_change": -perplexity, "auc_change": 0.0},
            "mean": {"psnr_change": -1.0, "auc_change": 0.0},
        },
    }


def fabricate(run: Path, cfg, numbers: tuple[float, float, float, float]) -> None:
    """A finished run folder: config.toml, metrics.json with the diagnostics, train.jsonl of three epochs."""
    perplexity, share, distance_auc, auc = numbers
    run.mkdir(parents=True)
    (run / "config.toml").write_text(to_toml(cfg))
    default = {"auc": auc, "raw_auc": auc, "macro_auc": auc, "aupr": 0.5, "eer": 0.3, "epoch": 3, "lambda": 0.6}
    default["memory"] = memory(perplexity, share, distance_auc)
    write_metrics(run, metrics_record(default))
    epochs = [
        {"epoch": e, "memory": {"counts": [10 - 3 * e, 3 * e, 0, 0], "frame_perplexity": 1.0 + e}} for e in (1, 2, 3)
    ]
    (run / "train.jsonl").write_text("".join(json.dumps(record) + "\n" for record in epochs))
    set_status(run, "done")


@pytest.fixture
def collapse_runs(tmp_path, request):
    """(declaration, grid, store) with every run fabricated from `request.param` (COLLAPSED by default)."""
    numbers = getattr(request, "param", COLLAPSED)
    path = tmp_path / "collapse.toml"
    path.write_text(DECLARATION)
    table = load_table(path)
    grid = table_grid(table, "synthetic", 2)
    store = RunStore(tmp_path / "runs")
    for run in grid:
        fabricate(store.run_dir(run.config), run.config, numbers[run.labels["model"]][run.seed])
    return table, grid, store


def test_table_has_mean_std_and_the_paired_difference_to_no_remedy(collapse_runs, tmp_path):
    table, grid, store = collapse_runs
    paths = declaration_report(table, grid, store, tmp_path / "report")
    rows = pd.read_csv(paths["csv"]).set_index("remedy")
    assert list(rows.index) == ["no remedy", "study recipe", "k-means init"]
    recipe = rows.loc["study recipe"]
    assert recipe["frame perplexity"] == "7.500 ± 0.707"  # (8 + 7) / 2, sample std sqrt(0.5)
    assert recipe["read -> zeros: PSNR change (dB)"] == "-7.500 ± 0.707"
    assert recipe["item share explained by camera x position"] == "0.900 ± 0.000"
    # paired by seed: (8 - 2, 7 - 2.5) = (6, 4.5), mean 5.25, t-interval with 1 degree of freedom
    assert float(recipe["Δ frame perplexity"]) == pytest.approx(5.25)
    half = stats.t.ppf(0.975, 1) * 1.5 / 2**0.5 / 2**0.5
    assert recipe["Δ frame perplexity 95% CI"] == f"[{5.25 - half:.3f}, {5.25 + half:.3f}]"
    assert float(rows.loc["k-means init", "Δ frame AUC"]) == pytest.approx(0.01)  # (0.01 + 0.01) / 2
    assert float(rows.loc["k-means init", "Δ distance AUC"]) == pytest.approx(0.085)  # (0.05 + 0.12) / 2
    assert rows.loc["no remedy", "Δ frame AUC"] == "-"  # no difference to itself


@pytest.mark.parametrize(
    "collapse_runs, verdict",
    [(COLLAPSED, "MET"), (SPREAD_ALREADY, "NOT MET")],
    indirect=["collapse_runs"],
    ids=["met", "not-met"],
)
def test_first_line_states_the_criteria_from_the_numbers(collapse_runs, verdict, tmp_path):
    table, grid, store = collapse_runs
    first = declaration_report(table, grid, store, tmp_path / "report")["md"].read_text().splitlines()[0]
    assert first.startswith(f"Criteria (fixed before the runs; means over seeds): {verdict}.")
    assert "frame perplexity >= 7: met (7.50)" in first
    assert ("distance AUC <= 0.6: met (0.525)" in first) == (verdict == "MET")


def test_usage_over_epochs_is_a_png(collapse_runs, tmp_path):
    table, grid, store = collapse_runs
    paths = declaration_report(table, grid, store, tmp_path / "report")
    assert paths["usage"] == tmp_path / "report" / "usage_over_epochs.png"
    assert paths["usage"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_repro_report_of_a_collapse_declaration_writes_the_collapse_table(collapse_runs, tmp_path):
    table, grid, store = collapse_runs
    out = tmp_path / "report"
    args = ["report", str(tmp_path / "collapse.toml"), "--out", str(out), "--runs", str(store.root), "--seeds", "2"]
    with pytest.warns(ReportWarning):  # fabricated runs have no signals or examples for the per-run figures
        result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert (out / "collapse.md").read_text().startswith("Criteria")
    assert "usage_over_epochs.png" in (out / "index.md").read_text()


def test_a_plain_table_of_runs_with_memory_shows_the_memory_columns(tmp_path):
    """A declaration without [collapse] (Table 8's kind) gets the usual table plus the memory diagnostics."""
    path = tmp_path / "table8.toml"
    path.write_text(DECLARATION.replace('[collapse]\nreference = "no remedy"\nrecipe = "study recipe"\n', ""))
    table = load_table(path)
    assert not table.collapse
    grid = table_grid(table, "synthetic", 2)
    store = RunStore(tmp_path / "runs")
    for run in grid:
        fabricate(store.run_dir(run.config), run.config, COLLAPSED[run.labels["model"]][run.seed])
    declaration_report(table, grid, store, tmp_path / "out")
    rows = pd.read_csv(tmp_path / "out" / "collapse.csv").set_index("model")  # named by the declaration
    assert rows.loc["no remedy", "frame perplexity"] == "2.25 ± 0.35"  # (2.0, 2.5) over the two seeds
    assert rows.loc["study recipe", "distance-only AUC"] == "65.00 ± 7.07"  # (0.70, 0.60) in %
    assert rows.loc["k-means init", "largest item share"] == "0.45 ± 0.07"
