"""Finished runs in MLflow and TensorBoard, read back with their own readers (docs/reports.md#trackers)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from repro.cli import main
from repro.pipeline import train_run
from repro.runs import read_record
from repro.trackers import export_runs, tracked_run

mlflow = pytest.importorskip("mlflow")
pytest.importorskip("tensorboard")


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("trackers")
    common = ["data.name=synthetic", "data.preset=tiny", f"data.root={root / 'data'}", "data.size=32"]
    common += ["model.mnad.width=4", "train.epochs=2", "train.checkpoint_every=1", "exec.device=cpu"]
    return [train_run(None, [*common, f"seed={seed}"], root / "runs").folder for seed in (0, 1)]


def test_mlflow_holds_one_run_per_repro_run_with_its_config_curves_metrics_and_files(runs, tmp_path):
    uri = export_runs("mlflow", runs, tmp_path / "mlruns")
    export_runs("mlflow", runs, tmp_path / "mlruns")  # again: nothing is duplicated
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("repro").experiment_id
    found = client.search_runs([experiment])
    assert sorted(run.data.tags["repro.hash"] for run in found) == sorted(run.name for run in runs)
    assert {run.data.tags["repro.seed"] for run in found} == {"0", "1"}
    assert len({run.data.tags["repro.group"] for run in found}) == 1  # the seeds of one configuration group
    run = next(run for run in found if run.data.tags["repro.hash"] == runs[0].name)
    assert run.data.params["train.epochs"] == "2" and run.data.params["model.name"] == "mnad"
    default = read_record(runs[0]).default
    assert run.data.metrics["auc"] == pytest.approx(default.scores.auc)
    assert run.data.metrics["deployable/false_alarm_rate"] == pytest.approx(default.deployable.false_alarm_rate)
    losses = client.get_metric_history(run.info.run_id, "train/total")
    assert [m.step for m in sorted(losses, key=lambda m: m.step)] == [1, 2]
    artefacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.toml", "metrics.json", "calibration.json", "curves.png"} <= artefacts


def test_tensorboard_event_files_hold_the_curves_and_the_metrics(runs, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    folder = Path(export_runs("tensorboard", runs, tmp_path / "tb"))
    events = EventAccumulator(str(folder / runs[1].name), size_guidance={"images": 1})
    events.Reload()
    expected = tracked_run(runs[1]).curves["train/total"]
    assert {e.step: e.value for e in events.Scalars("train/total")} == pytest.approx(expected)
    auc = read_record(runs[1]).default.scores.auc
    assert events.Scalars("metrics/auc")[0].value == pytest.approx(auc)
    assert "curves" in events.Tags()["images"] and "repro.seed/text_summary" in events.Tags()["tensors"]


def test_the_export_verb_takes_a_run_store_and_train_tracks_its_run(runs, tmp_path, monkeypatch):
    result = CliRunner().invoke(main, ["export", "tensorboard", str(runs[0].parent), "--to", str(tmp_path / "tb")])
    assert result.exit_code == 0, result.output
    assert {p.name for p in (tmp_path / "tb").iterdir()} == {run.name for run in runs}
    monkeypatch.chdir(tmp_path)  # --track writes ./tensorboard
    profile, store = str(runs[0] / "config.toml"), str(runs[0].parent)
    result = CliRunner().invoke(main, ["train", "--profile", profile, "--runs", store, "--track", "tensorboard"])
    assert result.exit_code == 0, result.output
    assert [p.name for p in (tmp_path / "tensorboard").iterdir()] == [runs[0].name]
