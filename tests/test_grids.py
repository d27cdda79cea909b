"""Grids of runs without running them: table and variant grids, table declarations, parallelism, waves."""

import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from repro.config import ConfigError, config_hash, load_config, to_dict
from repro.executors import plan_parallelism, training_waves
from repro.grids import DATASETS, load_table, table_grid, variant_grid

TABLE = """
name = "tiny"
question = "Which row wins?"
datasets = ["ped2", "avenue"]
[stand_ins]
ped2 = "tiny"
avenue = "busy"
[models]
"Pred w/ Mem" = ["model.mnad.task=pred", "model.mnad.memory=true"]
"Pred w/o Mem" = ["model.mnad.task=pred", "model.mnad.memory=false"]
"MemAE" = ["model.name=memae", "model.memae.width=12"]
[selection]
lambda_grid = [0, 0.5, 1]
[[published]]
dataset = "ped2"
model = "Pred w/ Mem"
auc_paper = 97.0
"""
GRID = (0.0, 0.5, 1.0)


@pytest.fixture
def table(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TABLE)
    return load_table(path)


def differences(a, b, prefix=""):
    """The dotted keys whose values differ between two nested config dicts."""
    keys = []
    for key in a:
        if isinstance(a[key], dict):
            keys += differences(a[key], b[key], f"{prefix}{key}.")
        elif a[key] != b[key]:
            keys.append(prefix + key)
    return keys


# ------------------------------------------------------------------------------------------ load_table
def test_load_table_reads_the_declaration(table):
    assert table.name == "tiny" and table.question == "Which row wins?"
    assert table.datasets == ("ped2", "avenue") and table.stand_ins == {"ped2": "tiny", "avenue": "busy"}
    assert table.models["MemAE"] == ("model.name=memae", "model.memae.width=12")
    assert table.lambda_grid == GRID and all(isinstance(lam, float) for lam in table.lambda_grid)
    assert table.published == [{"dataset": "ped2", "model": "Pred w/ Mem", "auc_paper": 97.0}]


def test_load_table_defaults_to_every_dataset_and_no_grid(tmp_path):
    path = tmp_path / "plain.toml"
    path.write_text('name = "plain"\nquestion = "?"\n[stand_ins]\nped2 = "tiny"\n[models]\nrow = []\n')
    table = load_table(path)
    assert table.datasets == DATASETS and table.lambda_grid == () and table.published == []


@pytest.mark.parametrize(
    "text, message",
    [
        (None, "not found; give a path to a TOML file or a shipped name"),
        ('name = "x"\nquestion = ', "is not valid TOML"),
        ('name = "x"\n[models]\nrow = []\n', "lacks question, stand_ins; see ablations/table5.toml"),
        (
            'name = "x"\nquestion = "?"\n[stand_ins]\nped2 = "tiny"\n[collapse]\nreference = "row"\n'
            "[models]\nrow = []\n",
            "[collapse] naming two rows",
        ),
        (
            'name = "x"\nquestion = "?"\n[stand_ins]\nped2 = "tiny"\n[collapse]\nreference = "row"\nrecipe = "odd"\n'
            "[models]\nrow = []\n",
            "[collapse] names 'odd', which is not a row of [models]",
        ),
    ],
)
def test_load_table_errors_name_the_file_and_the_fix(tmp_path, text, message):
    path = tmp_path / "broken.toml"
    if text is not None:
        path.write_text(text)
    with pytest.raises(ConfigError, match="broken.toml") as error:
        load_table(path)
    assert message in str(error.value)


# ------------------------------------------------------------------------------------------ table_grid
def test_table_grid_is_rows_by_datasets_by_seeds_on_the_stand_ins(table):
    runs = table_grid(table, None, seeds=2)
    assert [(run.labels["dataset"], run.labels["model"], run.seed) for run in runs] == [
        (dataset, model, seed) for dataset in ("ped2", "avenue") for model in table.models for seed in (0, 1)
    ]
    for run in runs:
        assert run.config.seed == run.seed
        assert run.config.data.name == "synthetic"
        assert run.config.data.preset == table.stand_ins[run.labels["dataset"]]
    by_row = {run.labels["model"]: run.config for run in runs}
    assert by_row["MemAE"].model.name == "memae" and by_row["MemAE"].model.memae.width == 12
    assert by_row["Pred w/o Mem"].model.mnad.memory is False
    assert len({config_hash(run.config) for run in runs}) == len(runs)  # every cell is its own run


def test_table_grid_seeds_count_from_the_configured_seed_and_sweep_overrides_reach_every_row(table):
    runs = table_grid(table, None, seeds=2, overrides=("seed=5", "train.epochs=1"))
    assert sorted({run.seed for run in runs}) == [5, 6]
    assert all(run.config.train.epochs == 1 for run in runs)


def test_table_grid_on_real_data_reads_the_dataset_from_the_root(table):
    runs = table_grid(table, None, seeds=1, data_root="/datasets")
    assert {(run.config.data.name, run.config.data.root) for run in runs} == {
        ("ped2", "/datasets"),
        ("avenue", "/datasets"),
    }


def test_table_grid_refuses_a_dataset_without_a_stand_in(table):
    with pytest.raises(ConfigError, match="no synthetic stand-in for 'avenue'; add it to \\[stand_ins\\]"):
        table_grid(replace(table, stand_ins={"ped2": "tiny"}), None, seeds=1)


def test_the_lambda_grid_changes_only_the_runs_whose_scores_read_it(table):
    runs = {(run.labels["dataset"], run.labels["model"]): run.config for run in table_grid(table, None, seeds=1)}
    without_grid = {
        (run.labels["dataset"], run.labels["model"]): run.config
        for run in table_grid(replace(table, lambda_grid=()), None, seeds=1)
    }
    assert runs["ped2", "Pred w/ Mem"].eval.lambda_grid == GRID
    assert config_hash(runs["ped2", "Pred w/ Mem"]) != config_hash(without_grid["ped2", "Pred w/ Mem"])
    for row in ("Pred w/o Mem", "MemAE"):  # PSNR or error alone: λ is 1, the grid is not part of the run
        assert config_hash(runs["ped2", row]) == config_hash(without_grid["ped2", row])


def test_a_row_override_its_method_ignores_is_refused_naming_the_row(table):
    rows = table.models | {"Pred w/o Mem, 5 items": ("model.mnad.memory=false", "model.mnad.num_items=5")}
    with pytest.raises(ConfigError) as error:
        table_grid(replace(table, models=rows), None, seeds=1)
    message = str(error.value)
    assert "'Pred w/o Mem, 5 items'" in message and "tiny" in message
    assert "model.mnad.num_items changes nothing for mnad (pred, without memory)" in message


def test_a_row_naming_another_methods_setting_is_refused(table):
    rows = {"MemAE": ("model.name=memae", "model.mnad.width=8")}
    with pytest.raises(ConfigError, match="model.mnad.width is a setting of mnad, but this run's model is memae"):
        table_grid(replace(table, models=rows), None, seeds=1)


# ---------------------------------------------------------------------------------------- variant_grid
def test_variant_grid_shares_seeds_and_changes_only_the_variants_keys():
    runs = variant_grid(None, ("model.mnad.task=recon",), {"no-separateness": ("model.mnad.separateness=0",)}, 2)
    assert [(run.labels["variant"], run.seed) for run in runs] == [
        ("baseline", 0),
        ("baseline", 1),
        ("no-separateness", 0),
        ("no-separateness", 1),
    ]
    baseline, variant = runs[:2], runs[2:]
    assert all(run.config.model.mnad.task == "recon" for run in runs)  # the base overrides reach both arms
    for base, changed in zip(baseline, variant):
        assert base.config.seed == changed.config.seed
        assert base.config.model.mnad.separateness == 0.01  # recon's λ_s
        assert differences(to_dict(base.config), to_dict(changed.config)) == ["model.mnad.separateness"]
        assert changed.config.model.mnad.separateness == 0.0


def test_variant_grid_base_overrides_need_not_apply_to_the_variants_method():
    base = ("model.name=memae", "model.memae.width=12", "model.memae.num_items=50")
    runs = variant_grid(None, base, {"no-memory": ("model.name=ae3d", "model.ae3d.width=12")}, 1)
    baseline, variant = (run.config for run in runs)
    assert baseline.model.name == "memae" and baseline.model.memae.num_items == 50
    assert variant.model.name == "ae3d" and variant.model.ae3d.width == 12


def test_variant_grid_refuses_overrides_their_method_ignores():
    with pytest.raises(ConfigError, match="model.mnad.num_items changes nothing for mnad"):
        variant_grid(None, (), {"odd": ("model.mnad.memory=false", "model.mnad.num_items=5")}, 1)
    with pytest.raises(ConfigError, match="model.mnad.num_items changes nothing for mnad"):
        variant_grid(None, ("model.mnad.memory=false", "model.mnad.num_items=5"), {"x": ("seed=1",)}, 1)


# ----------------------------------------------------------------------------------- plan_parallelism
@pytest.mark.parametrize(
    "pending, cores, planned",
    [
        (8, 4, (4, 1)),  # more runs than cores: one single-threaded run per core
        (3, 8, (3, 2)),  # fewer runs than cores: the cores are shared out between them
        (2, 2, (2, 1)),
        (1, 8, (1, 8)),  # one run takes every core
    ],
)
def test_plan_parallelism_on_the_cpu_runs_side_by_side(pending, cores, planned):
    assert plan_parallelism(pending, "cpu", cores) == planned


def test_plan_parallelism_on_cuda_runs_one_at_a_time_with_every_core(monkeypatch):
    assert plan_parallelism(8, "cuda", 4) == (1, 4)
    assert plan_parallelism(8, "cuda:1", 4) == (1, 4)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert plan_parallelism(8, "auto", 4) == (4, 1)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert plan_parallelism(8, "auto", 4) == (1, 4)


# ------------------------------------------------------------------------------------- training_waves
def test_runs_differing_only_in_eval_wait_for_the_training_they_share():
    base = load_config(None, ["model.mnad.task=recon"])
    no_update = load_config(None, ["model.mnad.task=recon", "eval.mnad.test_time_update=false"])
    other_gamma = load_config(None, ["model.mnad.task=recon", "eval.mnad.gamma=0.5"])
    other_loss = load_config(None, ["model.mnad.task=recon", "model.mnad.separateness=0"])
    other_seed = load_config(None, ["model.mnad.task=recon", "seed=1"])
    assert training_waves([no_update, other_loss, base, other_seed, other_gamma]) == [
        [no_update, other_loss, other_seed],
        [base, other_gamma],
    ]
    assert training_waves([base, other_loss]) == [[base, other_loss]]  # no second wave when nothing waits
    assert training_waves([]) == []


ORPHANING_SWEEP = """
import multiprocessing, os, sys, time
from concurrent.futures import ProcessPoolExecutor
from repro.executors import stop_when_orphaned

context = multiprocessing.get_context("spawn")
pool = ProcessPoolExecutor(1, mp_context=context, initializer=stop_when_orphaned, initargs=(os.getpid(),))
print(pool.submit(os.getpid).result(), flush=True)
pool.submit(time.sleep, 120)  # a long run the worker is busy with when the sweep dies
time.sleep(1)
os._exit(0)  # the sweep dies without stopping its pool, as under SIGKILL
"""


def _alive(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited
    except (FileNotFoundError, IndexError):
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc")
def test_a_killed_sweeps_workers_stop_instead_of_training_on():
    with subprocess.Popen([sys.executable, "-c", ORPHANING_SWEEP], stdout=subprocess.PIPE, text=True) as sweep:
        worker = int(sweep.stdout.readline())
        sweep.wait(timeout=60)
    deadline = time.time() + 20
    while _alive(worker) and time.time() < deadline:
        time.sleep(0.1)
    assert not _alive(worker), "the worker went on after its sweep died"
