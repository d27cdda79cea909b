"""The baselines (MemAE, AE, ConvLSTM-AE) through the same runner: metrics, frame alignment, memory usage."""

from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import repro.runs as run_files
from repro.cli import main
from repro.config import RunConfig, load_config
from repro.evaluate import evaluate_model
from repro.grids import load_table, table_grid
from repro.models.registry import METHODS
from repro.pipeline import datasets, execute_run
from repro.runs import RunStore, list_runs, read_metrics
from repro.train import build_model

pytestmark = pytest.mark.slow

TINY_BASELINE = {
    "memae": ["model.name=memae", "model.memae.width=6", "model.memae.num_items=50"],
    "ae3d": ["model.name=ae3d", "model.ae3d.width=6"],
    "convlstm": ["model.name=convlstm"],
}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("baselines")
    common = [
        "data.preset=tiny",
        f"data.root={root / 'synthetic'}",
        "data.size=32",
        "model.mnad.width=4",
        "train.epochs=1",
        "train.checkpoint_every=1",
    ]
    return {"store": RunStore(root / "runs"), "common": common}


def tiny_config(world: dict, *overrides: str) -> RunConfig:
    return load_config("synthetic", (*world["common"], *overrides), unchecked=world["common"])


def run(world: dict, *overrides: str) -> Path:
    return execute_run(tiny_config(world, *overrides), world["store"], progress=False)


@pytest.mark.parametrize("name", list(TINY_BASELINE))
def test_a_baseline_run_writes_metrics_with_per_type_aucs(world, name):
    metrics = read_metrics(run(world, *TINY_BASELINE[name]))["default"]
    assert 0 <= metrics["auc"] <= 1
    assert set(metrics["per_type"]) == {"spatial", "temporal", "spatio_temporal"}
    assert all(0 <= auc <= 1 for auc in metrics["per_type"].values())
    if name == "memae":
        memory = metrics["memory"]
        assert len(memory["counts"]) == 50 and 0 <= memory["zero_row_share"] <= 1
    else:
        assert "memory" not in metrics


def scored_frames(run_dir: Path) -> dict[int, np.ndarray]:
    signals = run_files.load_signals(run_dir, 1)
    return {int(v): signals["frame"][signals["video"] == v] for v in np.unique(signals["video"])}


def test_memae_clip_j_scores_frame_j_plus_8_and_the_video_ends_are_not_scored(world):
    every_frame = scored_frames(run(world, "model.mnad.task=recon"))  # MNAD recon scores all frames of a video
    memae = scored_frames(run(world, *TINY_BASELINE["memae"]))
    assert every_frame.keys() == memae.keys()
    for video, frames in every_frame.items():
        np.testing.assert_array_equal(memae[video], frames[8:-7])


def memae_signals(world: dict, threshold: float) -> dict[str, np.ndarray]:
    cfg = tiny_config(world, *TINY_BASELINE["memae"], f"model.memae.shrink_threshold={threshold}")
    _, testing = datasets(cfg)
    return evaluate_model(
        build_model(cfg),
        METHODS["memae"],
        testing,
        torch.device("cpu"),
        test_time_update=False,
        gamma=0.0,
        progress=False,
    )


def test_memae_all_zero_rows_count_for_no_item_and_their_share_is_recorded(world):
    # untrained: 50 items with near-uniform weights ~1/50, so a threshold of 0.5 zeroes every row
    shrunk = memae_signals(world, 0.5)
    assert shrunk["item_counts"].sum() == 0 and shrunk["memory_zero_row_share"][0] == 1.0
    kept = memae_signals(world, 0.0)
    queries_per_clip = 2 * 2 * 2  # 16 frames / 8, 32 px / 16 on each side
    assert kept["item_counts"].sum() == queries_per_clip * len(kept["frame"])
    assert kept["memory_zero_row_share"][0] == 0.0


MEMAE_FLAGS = [
    (
        ["--shrink-threshold", "1", "--memory-size", "40"],
        lambda c: c.model.memae.num_items == 40 and c.model.memae.shrink_threshold == pytest.approx(1 / 40),
    ),
    (["--shrink-threshold", "3"], lambda c: c.model.memae.shrink_threshold == pytest.approx(3 / 50)),
    (
        ["--addressing", "cosine", "--entropy", "0"],
        lambda c: c.model.memae.addressing == "cosine" and c.model.memae.entropy == 0,
    ),
]


def ablate_memae(world: dict, runs: Path, report: Path, *flags: str):
    """`repro ablate --model memae FLAGS` on the tiny world, one seed, in `runs`."""
    common = [setting for setting in world["common"] if not setting.startswith("model.mnad.")]
    settings = [arg for setting in (*common, *TINY_BASELINE["memae"][1:]) for arg in ("--set", setting)]
    arguments = ["ablate", "--model", "memae", *flags, "--seeds", "1", "--jobs", "1", "--runs", str(runs)]
    return CliRunner().invoke(main, [*arguments, "--out", str(report), *settings], catch_exceptions=False)


@pytest.mark.parametrize("flags, changed", MEMAE_FLAGS, ids=[" ".join(f) for f, _ in MEMAE_FLAGS])
def test_the_memae_ablate_flags_change_the_variant_and_write_metrics(world, flags, changed, tmp_path):
    runs = tmp_path / "runs"
    result = ablate_memae(world, runs, tmp_path / "report", *flags)
    assert result.exit_code == 0, result.output
    done = {name: cfg for name, cfg, state in list_runs(runs) if state == "done"}
    assert len(done) == 2 and all(cfg.model.name == "memae" for cfg in done.values())
    variants = [name for name, cfg in done.items() if changed(cfg)]
    assert len(variants) == 1
    assert "per_type" in read_metrics(runs / variants[0])["default"]
    assert (tmp_path / "report" / "comparison.md").exists()


def test_memae_without_memory_is_its_ae_at_the_same_width(world, tmp_path):
    runs = tmp_path / "runs"
    result = ablate_memae(world, runs, tmp_path / "report", "--no-memory")
    assert result.exit_code == 0, result.output
    done = sorted((cfg.model.name, cfg.model.settings.width) for _, cfg, state in list_runs(runs) if state == "done")
    assert done == [("ae3d", 6), ("memae", 6)]  # two different networks, not the same one twice


@pytest.mark.parametrize("flag", ["--no-separateness", "--no-test-time-update", "--skip", "--uniform-memory"])
def test_a_flag_that_memae_ignores_is_refused_naming_the_flag_and_the_model(flag, tmp_path):
    result = CliRunner().invoke(main, ["ablate", "--model", "memae", flag, "--runs", str(tmp_path)])
    assert result.exit_code == 2
    assert "memae" in result.output and ("model.mnad." in result.output or "eval." in result.output)
    assert not (tmp_path / "runs").exists() and not list(tmp_path.iterdir())  # refused before any work


def test_the_synthetic_table_trains_memae_and_its_ae_alike_with_the_memory_a_minority_of_memae():
    table = load_table(Path(__file__).parents[1] / "ablations" / "baselines.toml")
    grid = table_grid(table, "synthetic", 1)
    rows = {run.labels["model"]: run.config for run in grid if run.labels["dataset"] == "ped2"}
    memae, ae = rows["MemAE"], rows["AE"]
    assert memae.train == ae.train and memae.data == ae.data  # only the memory differs
    assert memae.model.memae.width == ae.model.ae3d.width == 24
    assert (memae.train.lr, memae.train.schedule, memae.train.drop_last) == (1e-4, "constant", False)  # official
    model = build_model(memae)
    share = model.memory.items.numel() / sum(p.numel() for p in model.parameters())
    assert 0.2 < share < 0.3  # N = 2000 items of d = 64 at width 24: a quarter of the parameters


@pytest.mark.parametrize("name", ["memae", "ae3d"])
def test_the_paper_profile_gives_memae_and_its_ae_the_official_settings(name):
    cfg = load_config("paper", [f"model.name={name}"])
    train, data = cfg.train, cfg.data
    assert (train.lr, train.schedule, train.batch_size, train.drop_last, train.epochs) == (
        1e-4,
        "constant",
        14,
        False,
        100,
    )
    assert (data.grayscale, data.size, cfg.seed) == (True, 256, 1)
    assert cfg.model.settings.width == 96
    mnad = load_config("paper")
    assert (mnad.train.lr, mnad.train.schedule, mnad.train.batch_size, mnad.data.grayscale) == (
        2e-4,
        "cosine",
        4,
        False,
    )


def test_the_paper_profile_gives_the_convlstm_its_published_settings():
    cfg = load_config("paper", ["model.name=convlstm"])
    assert (cfg.train.batch_size, cfg.train.epochs, cfg.data.grayscale, cfg.data.size) == (
        64,
        50,
        True,
        227,
    )  # the paper: 227x227 grayscale cuboids
