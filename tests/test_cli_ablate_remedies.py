"""The collapse-remedy flags of `repro ablate` set their key in the variant only (no training: the grid is caught)."""

import pytest
from click.testing import CliRunner

from repro import executors
from repro.cli import main
from repro.report import grid_tables

TINY = ["--set", "data.preset=tiny", "--set", "data.size=32", "--set", "model.mnad.width=4"]

REMEDIES = [
    (["--kmeans-init", "20"], lambda c: c.model.mnad.kmeans_init_steps == 20, "kmeans-init-20"),
    (["--reseed-after", "50"], lambda c: c.model.mnad.reseed_after_steps == 50, "reseed-after-50"),
    (["--diversity", "0.1"], lambda c: c.model.mnad.diversity == 0.1, "diversity-0.1"),
    (["--normaliser", "assigned"], lambda c: c.model.mnad.update_normaliser == "assigned", "normaliser-assigned"),
    (["--item-init", "gaussian"], lambda c: c.model.mnad.item_init == "gaussian", "item-init-gaussian"),
    (["--gamma-quantile", "0.25"], lambda c: c.eval.mnad.gamma_quantile == 0.25, "gamma-quantile-0.25"),
]


@pytest.fixture
def grids(monkeypatch, tmp_path):
    """Every grid `ablate` would run, caught instead of trained; its report is a stub file."""
    caught = []

    def catch(runs, store, jobs=None, **_):
        caught.append(runs)
        return {}

    def stub_report(runs, store, out):
        out.mkdir(parents=True, exist_ok=True)
        (out / "comparison.md").write_text("stub\n")
        return {"md": out / "comparison.md"}

    monkeypatch.setattr(executors, "run_grid", catch)
    monkeypatch.setattr(grid_tables, "ablation_report", stub_report)
    return caught


@pytest.mark.parametrize("flags, changed, name", REMEDIES, ids=[" ".join(f) for f, _, _ in REMEDIES])
def test_every_remedy_flag_sets_its_key_in_the_variant_only(grids, tmp_path, flags, changed, name):
    result = CliRunner().invoke(
        main, ["ablate", *flags, "--seeds", "2", "--runs", str(tmp_path), "--out", str(tmp_path / "r"), *TINY]
    )
    assert result.exit_code == 0, result.output
    (runs,) = grids
    variants = {run.labels["variant"] for run in runs}
    assert variants == {"baseline", name}
    for run in runs:
        assert changed(run.config) == (run.labels["variant"] == name)
    assert sorted(run.seed for run in runs if run.labels["variant"] == name) == [0, 1]


def test_remedy_flags_combine_into_one_variant(grids, tmp_path):
    flags = ["--kmeans-init", "20", "--item-init", "gaussian", "--uniform-memory", "--seeds", "1"]
    result = CliRunner().invoke(main, ["ablate", *flags, "--runs", str(tmp_path), "--out", str(tmp_path / "r"), *TINY])
    assert result.exit_code == 0, result.output
    ((name, variant),) = {(r.labels["variant"], r.config) for r in grids[0] if r.labels["variant"] != "baseline"}
    assert name == "uniform-memory-1+kmeans-init-20+item-init-gaussian"
    assert (variant.model.mnad.kmeans_init_steps, variant.model.mnad.item_init) == (20, "gaussian")
    assert variant.model.mnad.uniform_memory == 1.0


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--kmeans-init", "0"], "--kmeans-init"),
        (["--diversity", "0"], "--diversity"),
        (["--normaliser", "max"], "--normaliser"),
        (["--gamma-quantile", "1.5"], "--gamma-quantile"),
    ],
)
def test_bad_remedy_values_are_refused_naming_the_flag(grids, tmp_path, flags, message):
    result = CliRunner().invoke(main, ["ablate", *flags, "--runs", str(tmp_path), *TINY])
    assert result.exit_code == 2 and message in result.output
    assert not grids


def test_ablate_help_names_the_remedies():
    text = CliRunner().invoke(main, ["ablate", "--help"], terminal_width=200).output
    for flag in ("--kmeans-init", "--reseed-after", "--diversity", "--normaliser", "--item-init", "--gamma-quantile"):
        assert flag in text
    assert text.count("Collapse remedy") == 5
