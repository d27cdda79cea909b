"""The shipped memory declarations share runs: Table 8's cells, the collapse study's rows and the claims' arms (seed 0:
the claims draw a world per seed, Table 8 keeps one)."""

from pathlib import Path

import pytest

from repro.claims import claim_runs, load_claims
from repro.grids import load_table, table_grid
from repro.runs import RunStore

ABLATIONS = Path(__file__).parents[1] / "ablations"
STORE = RunStore(Path("unused"))
NO_SUPERVISION = "Pred w/ Mem, no supervision, λ_c = λ_s = 0.1"
RECIPE = "Pred w/ Mem, uniform supervision, λ_c = λ_s = 0.001 (the study's recipe)"


def cells(declaration: str, seeds: int = 3) -> dict[tuple[str, str, int], Path]:
    """(dataset, row, seed) -> run folder of a shipped declaration."""
    table = load_table(ABLATIONS / declaration)
    runs = table_grid(table, "synthetic", seeds, overrides=("train.epochs=4", "train.checkpoint_every=4"))
    return {(r.labels["dataset"], r.labels["model"], r.seed): STORE.run_dir(r.config) for r in runs}


def test_table8_is_the_studys_2x2_on_cameras_and_single_at_128():
    table = load_table(ABLATIONS / "table8.toml")
    runs = table_grid(table, "synthetic", 1)
    assert {r.config.data.preset for r in runs} == {"cameras", "single"}
    assert all(r.config.data.size == 128 and r.config.eval.mnad.read_ablation for r in runs)
    mnad = {r.labels["model"]: r.config.model.mnad for r in runs}
    del mnad["Pred w/ Mem, no separateness"]  # the t-SNE's row, outside the 2x2
    grid = {(m.uniform_memory, m.compactness, m.separateness) for m in mnad.values()}
    assert grid == {(1.0, 0.001, 0.001), (0.0, 0.1, 0.1), (1.0, 0.1, 0.1), (0.0, 0.001, 0.001)}
    assert (mnad[RECIPE].uniform_memory, mnad[RECIPE].compactness) == (1.0, 0.001)
    published = {p["model"]: p["auc_study"] for p in table.published}
    assert published == {NO_SUPERVISION: 67.81, RECIPE: 70.40}


def test_the_collapse_studys_reference_and_recipe_are_table8_cells():
    table8, collapse = cells("table8.toml"), cells("collapse.toml")
    for seed in range(3):
        assert collapse[("shanghaitech", "no remedy", seed)] == table8[("shanghaitech", NO_SUPERVISION, seed)]
        assert collapse[("shanghaitech", "study recipe", seed)] == table8[("shanghaitech", RECIPE, seed)]
    assert len(set(collapse.values())) == 7 * 3  # every remedy is its own configuration


@pytest.mark.parametrize(
    "claim, arm, row",
    [
        ("uniform-supervision-prevents-collapse", "control", NO_SUPERVISION),
        ("uniform-supervision-prevents-collapse", "treatment", RECIPE),
        ("uniform-supervision-raises-prediction-auc", "control", NO_SUPERVISION),
        ("uniform-supervision-raises-prediction-auc", "treatment", RECIPE),
        ("memory-collapses-on-multi-camera-data", "arm", NO_SUPERVISION),
    ],
)
def test_the_uniform_supervision_claims_use_table8s_runs(claim, arm, row):
    claims = [c for c in load_claims(ABLATIONS / "claims.toml") if c.id == claim]
    runs = claim_runs(claims, "synthetic", None, ("train.epochs=4", "train.checkpoint_every=4"))
    folders = {r.seed: STORE.run_dir(r.config) for r in runs if r.labels["arm"] == arm}
    table8 = {seed: cells("table8.toml")[("shanghaitech", row, seed)] for seed in range(3)}
    assert folders[0] == table8[0]  # seed 0 trains on world 0, as Table 8's cells do
    assert all(folders[seed] != table8[seed] for seed in (1, 2))  # the claims draw a world per seed
