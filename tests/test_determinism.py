"""One hash, one result: a run's numbers do not depend on how it is executed on the CPU (repetitions, --jobs, a
busy machine), and what they do depend on (the thread count of its arithmetic) is part of its identity."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from repro.config import config_hash, load_config
from repro.executors import run_grid
from repro.grids import variant_grid
from repro.pipeline import execute_run
from repro.runs import RunStore

pytestmark = pytest.mark.slow

TINY = (
    "data.name=synthetic",
    "data.preset=tiny",
    "data.size=16",
    "model.mnad.width=4",
    "train.epochs=1",
    "train.checkpoint_every=1",
    "exec.device=cpu",
)


def numbers(run: Path) -> dict:
    """metrics.json without what describes the execution (timings, provenance)."""
    metrics = json.loads((run / "metrics.json").read_text())
    return {key: value for key, value in metrics.items() if key not in ("timings", "record")}


@pytest.fixture
def competitor():
    """A CPU-bound process beside the runs, as on a shared machine."""
    process = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    yield process
    process.kill()
    process.wait()


def test_the_thread_count_is_part_of_the_identity_and_one_thread_keeps_the_old_hashes():
    one, two, unset = (load_config(None, (*TINY, f"exec.threads={n}")) for n in ("1", "2", "none"))
    assert config_hash(one) == config_hash(unset) != config_hash(two)
    assert load_config(None, TINY).exec.threads == 1


def test_five_trainings_beside_a_busy_process_give_identical_numbers(tmp_path, competitor):
    cfg = load_config(None, TINY)
    runs = [execute_run(cfg, RunStore(tmp_path / f"store{i}"), progress=False) for i in range(5)]
    first = numbers(runs[0])
    assert all(numbers(run) == first for run in runs[1:])
    assert json.loads((runs[0] / "metrics.json").read_text())["record"]["threads"] == 1


def test_a_sweep_with_one_job_or_two_gives_the_same_numbers_under_the_same_hashes(tmp_path, competitor):
    grid = variant_grid(None, TINY, {"no-separateness": ("model.mnad.separateness=0",)}, seeds=1)
    results = {}
    for jobs in (1, 2):
        store = RunStore(tmp_path / f"jobs{jobs}")
        assert run_grid(grid, store, jobs=jobs, progress=False) == {}
        results[jobs] = {run.name: numbers(run) for run in sorted(store.root.iterdir())}
    assert list(results[1]) == list(results[2]) and len(results[1]) == 2
    assert results[1] == results[2]
