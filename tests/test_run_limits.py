"""Runs that cannot work are refused before they allocate or score anything: a size that cannot fit, a batch
larger than the clips (no optimiser step), a loss that is NaN from the start, a status file of the wrong shape."""

import json

import pytest
from click.testing import CliRunner

from repro.budget import run_needs
from repro.cli import main
from repro.config import load_config
from repro.runs import RunError, RunStore, status

TINY = (
    "--set", "data.name=synthetic", "--set", "data.preset=tiny", "--set", "data.size=16",
    "--set", "model.mnad.width=4", "--set", "train.epochs=1", "--set", "train.checkpoint_every=1",
)  # fmt: skip


def train(tmp_path, *settings):
    return CliRunner().invoke(main, ["train", *TINY, *settings, "--runs", str(tmp_path / "runs")])


def test_the_needs_of_a_run_count_its_weights_and_items_exactly():
    cfg = load_config(None, ("model.mnad.num_items=7", "model.mnad.width=4"))
    small = run_needs(cfg)
    more = run_needs(load_config(None, ("model.mnad.num_items=8", "model.mnad.width=4")))
    assert more.parameters - small.parameters == 8 * 4  # one item of d = 8 * width
    assert small.activations > 0 and small.training_bytes == (4 * small.parameters + small.activations) * 4


@pytest.mark.parametrize("setting", ["data.size=100000", "model.mnad.num_items=100000000", "model.mnad.width=100000"])
def test_a_size_that_cannot_fit_is_one_line_before_anything_is_made(tmp_path, setting):
    result = train(tmp_path, "--set", setting)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "GB to train" in result.output and "GB are free on cpu" in result.output and "Fix: lower" in result.output
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_a_batch_larger_than_the_clips_never_trains_and_is_refused(tmp_path):
    result = train(tmp_path, "--set", "train.batch_size=100000")
    assert result.exit_code == 2, result.output
    assert "train.batch_size=100000 is larger than the" in result.output and "never train" in result.output
    assert not list((tmp_path / "runs").glob("*/metrics.json"))


def test_a_loss_that_is_nan_from_the_start_is_not_scored(tmp_path):
    result = train(tmp_path, "--set", "train.lr=1e30")
    runs = list((tmp_path / "runs").iterdir())
    assert result.exit_code == 2 and "from the first epoch on" in result.output, result.output
    assert len(runs) == 1 and not (runs[0] / "metrics.json").exists() and status(runs[0])["state"] == "failed"


@pytest.mark.parametrize("content", ["[]", '{"state": "finished"}', "3"])
def test_a_status_file_of_the_wrong_shape_is_a_run_error(tmp_path, content):
    run = RunStore(tmp_path).prepare(load_config())
    (run / "status.json").write_text(content)
    with pytest.raises(RunError, match="status.json is not a run status"):
        status(run)
    json.loads(content)  # valid JSON all the same
