"""The Ray executor: the same runs, the same metrics as the local one; a killed sweep completes on rerun."""

import os
import signal
import subprocess
import sys
import time

import pytest

from repro.executors import run_grid
from repro.grids import load_table, table_grid
from repro.runs import RunStore, list_runs, read_metrics

ray = pytest.importorskip("ray")  # the optional extra: without it these tests are skipped, not an import error

pytestmark = pytest.mark.slow

TABLE = """
name = "tiny"
question = "Does the Ray executor agree with the local one?"
datasets = ["ped2"]
[stand_ins]
ped2 = "tiny"
[models]
"Pred w/ Mem" = ["model.mnad.task=pred", "model.mnad.memory=true"]
"Recon w/o Mem" = ["model.mnad.task=recon", "model.mnad.memory=false"]
"Recon w/ Mem" = ["model.mnad.task=recon", "model.mnad.memory=true"]
"""


@pytest.fixture
def grid(tmp_path):
    (tmp_path / "tiny.toml").write_text(TABLE)
    overrides = (
        f"data.root={tmp_path / 'synthetic'}",
        "data.size=32",
        "model.mnad.width=4",
        "train.epochs=1",
        "train.checkpoint_every=1",
        "exec.threads=1",
    )
    return tmp_path, table_grid(load_table(tmp_path / "tiny.toml"), "synthetic", 1, None, overrides), overrides


def aucs(store_root, runs):
    return [read_metrics(RunStore(store_root).run_dir(run.config))["default"]["auc"] for run in runs]


def test_ray_gives_the_local_metrics(grid):
    root, runs, _ = grid
    assert run_grid(runs, RunStore(root / "local"), jobs=1, progress=False) == {}
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        assert run_grid(runs, RunStore(root / "ray"), progress=False, executor="ray") == {}
    finally:
        ray.shutdown()
    assert aucs(root / "ray", runs) == aucs(root / "local", runs)


def test_a_killed_ray_sweep_completes_on_rerun(grid):
    root, runs, overrides = grid
    sets = [arg for override in overrides for arg in ("--set", override)]
    command = [
        sys.executable,
        "-c",
        "from repro.cli import main; main()",
        "sweep",
        str(root / "tiny.toml"),
        "--seeds",
        "1",
        "--runs",
        str(root / "runs"),
        "--out",
        str(root / "report"),
        "--executor",
        "ray",
        *sets,
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 180
    while time.time() < deadline and not any(state == "done" for _, _, state in list_runs(root / "runs")):
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)  # the driver, and with it its local Ray instance
    process.wait()
    assert sum(state == "done" for _, _, state in list_runs(root / "runs")) < 3
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        assert run_grid(runs, RunStore(root / "runs"), progress=False, executor="ray") == {}
    finally:
        ray.shutdown()
    assert [state for _, _, state in list_runs(root / "runs")] == ["done"] * 3
