"""End to end through the CLI on the tiny synthetic preset: train, ablate flags, sweep, resume, bad input."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import repro.runs as run_files
from repro.cli import main
from repro.config import load_config
from repro.runs import RunStore, list_runs, read_metrics

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Settings for seconds-long runs, and a run store shared by the tests of this module."""
    root = tmp_path_factory.mktemp("world")
    tiny = [
        "--set",
        "data.preset=tiny",
        "--set",
        f"data.root={root / 'synthetic'}",
        "--set",
        "data.size=32",
        "--set",
        "model.mnad.width=4",
        "--set",
        "train.epochs=1",
        "--set",
        "train.checkpoint_every=1",
    ]
    return {"root": root, "runs": root / "runs", "tiny": tiny}


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def configs(runs: Path) -> dict:
    return {name: cfg for name, cfg, state in list_runs(runs) if state == "done"}


def test_train_writes_metrics_and_the_same_seed_gives_the_same_auc(world, tmp_path):
    first = invoke("train", "--runs", world["runs"], *world["tiny"])
    assert first.exit_code == 0, first.output
    again = invoke("train", "--runs", tmp_path / "other", *world["tiny"])  # a fresh store: trained again
    assert again.exit_code == 0, again.output
    (run_a,), (run_b,) = configs(world["runs"]), configs(tmp_path / "other")
    auc_a = read_metrics(world["runs"] / run_a)["default"]["auc"]
    auc_b = read_metrics(tmp_path / "other" / run_b)["default"]["auc"]
    assert auc_a == auc_b and 0 <= auc_a <= 1
    assert (world["runs"] / run_a / "examples.npz").exists()


FLAGS = [
    (["--no-separateness"], lambda c: c.model.mnad.separateness == 0),
    (["--no-compactness"], lambda c: c.model.mnad.compactness == 0),
    (["--no-test-time-update"], lambda c: not c.eval.mnad.test_time_update),
    (["--no-memory"], lambda c: not c.model.mnad.memory),
    (["--no-skip"], lambda c: c.model.mnad.skips is False),
    (["--skip", "--task", "recon"], lambda c: c.model.mnad.skips is True and c.model.mnad.task == "recon"),
    (["--salt-pepper", "0.25"], lambda c: c.data.salt_pepper == 0.25),
    (["--uniform-memory"], lambda c: c.model.mnad.uniform_memory == 1.0),
    (["--uniform-memory", "0.5"], lambda c: c.model.mnad.uniform_memory == 0.5),
    (
        ["--no-separateness", "--lambda", "0.5"],
        lambda c: c.model.mnad.separateness == 0 and c.eval.mnad.lambda_score == 0.5,
    ),
    (["--no-compactness", "--dataset", "synthetic", "--profile", "synthetic"], lambda c: c.model.mnad.compactness == 0),
]


@pytest.mark.parametrize("flags, changed", FLAGS, ids=[" ".join(f) for f, _ in FLAGS])
def test_every_ablate_flag_changes_the_variant_and_writes_metrics(world, flags, changed, tmp_path):
    result = invoke(
        "ablate", *flags, "--seeds", 1, "--jobs", 1, "--runs", world["runs"], "--out", tmp_path, *world["tiny"]
    )
    assert result.exit_code == 0, result.output
    table = (tmp_path / "comparison.md").read_text()
    assert "| auc" in table and "baseline" in table
    runs = configs(world["runs"])
    variants = [name for name, cfg in runs.items() if changed(cfg)]
    assert variants, f"no finished run has the change of {flags}"
    for name in variants:
        assert "auc" in read_metrics(world["runs"] / name)["default"]


def test_ablate_with_two_seeds_gives_an_interval(world, tmp_path):
    result = invoke(
        "ablate",
        "--no-separateness",
        "--seeds",
        2,
        "--jobs",
        1,
        "--runs",
        world["runs"],
        "--out",
        tmp_path,
        *world["tiny"],
    )
    assert result.exit_code == 0, result.output
    auc_row = next(line for line in (tmp_path / "comparison.csv").read_text().splitlines() if ",auc," in line)
    assert "[" in auc_row  # a t-interval over two paired seeds
    seeds = {cfg.seed for cfg in configs(world["runs"]).values()}
    assert {0, 1} <= seeds


def write_table(path: Path) -> Path:
    path.write_text("""
name = "tiny"
question = "Does the sweep resume?"
datasets = ["ped2"]
[stand_ins]
ped2 = "tiny"
[models]
"Pred w/ Mem" = ["model.mnad.task=pred", "model.mnad.memory=true"]
"Pred w/o Mem" = ["model.mnad.task=pred", "model.mnad.memory=false"]
"Recon w/o Mem" = ["model.mnad.task=recon", "model.mnad.memory=false"]
[[published]]
dataset = "ped2"
model = "Pred w/ Mem"
lambda = 0.52
auc_study = 97.06
auc_paper = 97.0
""")
    return path


def test_a_killed_sweep_resumes_without_recomputing(world, tmp_path):
    table, runs, out = write_table(tmp_path / "tiny.toml"), tmp_path / "runs", tmp_path / "report"
    args = ["sweep", table, "--seeds", 1, "--runs", runs, "--out", out, "--jobs", 1, *world["tiny"]]
    command = [sys.executable, "-c", "from repro.cli import main; main()", *map(str, args)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and not any(state == "done" for _, _, state in list_runs(runs)):
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    finished = {
        name: (runs / name / "metrics.json").stat().st_mtime_ns for name, _, state in list_runs(runs) if state == "done"
    }
    assert finished and len(finished) < 3, "the kill came too late to interrupt the sweep"

    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert all(state == "done" for _, _, state in list_runs(runs)) and len(list_runs(runs)) == 3
    for name, mtime in finished.items():
        assert (runs / name / "metrics.json").stat().st_mtime_ns == mtime  # not recomputed
    assert not [p for p in runs.rglob("*") if ".tmp" in p.name or p.name.startswith(".")]
    table_md = (out / "tiny.md").read_text()
    assert "97.06" in table_md and "Recon w/o Mem" in table_md


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--dataset", "kitti"], "dataset 'kitti' needs its location: pass --data"),
        (["train", "--dataset", "ped2"], "needs its location"),
        (["train", "--set", "trian.epochs=1"], "trian"),
        (["train", "--set", "train.epocs=1"], "epochs"),
        (["train", "--lambda", "1.5"], "1.5 is not in the range"),
        (["train", "--set", "eval.mnad.lambda_score=2"], "lambda_score"),
        (["ablate"], "name at least one change"),
    ],
)
def test_bad_input_is_one_line_with_exit_code_2(world, args, message):
    result = invoke(*args, "--runs", world["runs"])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_a_corrupt_checkpoint_is_named_moved_aside_and_retrained(world, tmp_path):
    settings = [*world["tiny"], "--set", "train.epochs=2"]
    run = RunStore(tmp_path).run_dir(load_config("synthetic", settings[1::2]))
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "epoch_001.pt").write_bytes(b"not a checkpoint")
    with pytest.warns(UserWarning, match=r"epoch_001\.pt is unreadable .*moved aside"):
        result = invoke("train", *settings, "--runs", tmp_path)
    assert result.exit_code == 0, result.output
    assert (run / "checkpoints" / "epoch_001.pt.corrupt").read_bytes() == b"not a checkpoint"
    assert [epoch for epoch, _ in run_files.checkpoints(run)] == [1, 2]


def test_evaluate_rescores_a_finished_run_without_retraining(world, tmp_path):
    assert invoke("train", "--runs", tmp_path, *world["tiny"]).exit_code == 0
    (source,) = configs(tmp_path)
    result = invoke("evaluate", tmp_path / source, "--no-test-time-update")
    assert result.exit_code == 0, result.output
    target = Path(result.output.split("run: ")[1].split()[0])
    assert target.name != source and not load_config(target / "config.toml").eval.mnad.test_time_update
    ((epoch, linked),) = run_files.checkpoints(target)
    assert linked.stat().st_ino == (tmp_path / source / "checkpoints" / linked.name).stat().st_ino  # not retrained
    assert read_metrics(target)["default"]["auc"] >= 0
    refused = invoke("evaluate", tmp_path / source, "--set", "train.epochs=3")
    assert refused.exit_code == 2 and "only eval." in refused.output


def test_a_resumed_run_ends_exactly_where_an_uninterrupted_one_does(world, tmp_path):
    settings = [*world["tiny"], "--set", "train.epochs=2", "--runs", tmp_path]
    assert invoke("train", *settings).exit_code == 0
    (name,) = configs(tmp_path)
    run = tmp_path / name
    uninterrupted = read_metrics(run)["default"]["auc"]
    final = torch.load(run / "checkpoints" / "epoch_002.pt", weights_only=True)["model"]
    for path in [run / "checkpoints" / "epoch_002.pt", run / "signals" / "epoch_002.npz", run / "metrics.json"]:
        path.unlink()  # as if killed during epoch 2
    (run / "status.json").write_text('{"state": "running", "pid": 999999999, "host": "elsewhere"}')
    assert invoke("train", *settings).exit_code == 0
    resumed = torch.load(run / "checkpoints" / "epoch_002.pt", weights_only=True)["model"]
    assert all(torch.equal(final[key], resumed[key]) for key in final)
    assert read_metrics(run)["default"]["auc"] == uninterrupted
