import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from fakes import metrics_record

import repro.runs as run_files
from repro.config import config_hash, load_config
from repro.models.mnad import MNADSignals
from repro.runs import (
    RunError,
    RunStore,
    TornLineWarning,
    append_jsonl,
    atomic_write_json,
    list_runs,
    project_repository,
    read_jsonl,
    run_record,
)

RECORD = metrics_record(
    {"epoch": 1, "lambda": 0.6, "auc": 0.93, "raw_auc": 0.9, "macro_auc": 0.91, "aupr": 0.8, "eer": 0.2}
)


@pytest.fixture
def store(tmp_path):
    return RunStore(tmp_path / "runs")


def _leftovers(folder):
    return [p.name for p in folder.rglob("*") if p.name.startswith(".") or p.name.endswith(".tmp")]


def test_prepare_writes_config_and_pending_status(store):
    cfg = load_config()
    run = store.prepare(cfg)
    assert run.name == config_hash(cfg)
    assert load_config(run / "config.toml") == cfg
    status = run_files.status(run)
    assert status["state"] == "pending" and status["pid"] == os.getpid() and status["host"]
    assert not store.is_done(cfg) and not _leftovers(run)


def test_status_cycle_keeps_created_and_records_error(store):
    cfg = load_config()
    run = store.prepare(cfg)
    created = run_files.status(run)["created"]
    run_files.set_status(run, "failed", error="KeyboardInterrupt: ")
    assert run_files.status(run)["error"] == "KeyboardInterrupt: " and run_files.status(run)["created"] == created
    run_files.set_status(run, "done")
    assert not store.is_done(cfg)  # done by its status, but without metrics.json: evaluated again
    run_files.write_metrics(run, RECORD)
    assert store.is_done(cfg) and run_files.status(run)["error"] is None
    (run / "metrics.json").write_text('{"default": ')  # cut short
    assert not store.is_done(cfg)
    with pytest.raises(ValueError, match="one of pending, running, done, failed"):
        run_files.set_status(run, "finished")


def test_done_run_keeps_its_files_when_prepared_again(store):
    cfg = load_config()
    run = store.prepare(cfg)
    run_files.write_metrics(run, RECORD)
    run_files.set_status(run, "done")
    store.prepare(load_config(None, ["exec.num_workers=2"]))  # same hash: how it executes is not part of it
    assert store.is_done(cfg) and load_config(run / "config.toml").exec.num_workers == 0


def test_atomic_write_leaves_no_temp_files_and_a_crash_keeps_the_old_file(tmp_path):
    path = tmp_path / "metrics.json"
    atomic_write_json(path, {"auc": 0.9})
    assert json.loads(path.read_text()) == {"auc": 0.9} and not _leftovers(tmp_path)
    with pytest.raises(TypeError):
        atomic_write_json(path, {"auc": object()})  # fails while writing
    assert json.loads(path.read_text()) == {"auc": 0.9} and not _leftovers(tmp_path)


def test_crash_inside_torch_save_keeps_the_previous_checkpoint(store, tmp_path, monkeypatch):
    run = store.prepare(load_config())
    path = run_files.save_checkpoint(run, 2, {"w": torch.ones(2)})

    def crash(obj, handle):
        handle.write(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        run_files.save_checkpoint(run, 2, {"w": torch.zeros(2)})
    assert torch.equal(run_files.load_checkpoint(path)["w"], torch.ones(2)) and not _leftovers(run)


def test_latest_checkpoint_is_the_highest_epoch_and_ignores_temp_files(store):
    run = store.prepare(load_config())
    assert run_files.latest_checkpoint(run) is None
    for epoch in (2, 10, 4):
        run_files.save_checkpoint(run, epoch, {"epoch": epoch, "items": torch.randn(3, 4)})
    (run / "checkpoints" / ".epoch_012.pt.abc.tmp").write_bytes(b"partial")
    epoch, path = run_files.latest_checkpoint(run)
    assert (epoch, path.name) == (10, "epoch_010.pt")
    assert [e for e, _ in run_files.checkpoints(run)] == [2, 4, 10]
    assert run_files.load_checkpoint(path)["epoch"] == 10


def test_corrupt_checkpoint_names_the_file_and_the_fix(store):
    run = store.prepare(load_config())
    path = run_files.save_checkpoint(run, 3, {"w": torch.ones(3)})
    path.write_bytes(path.read_bytes()[:40])  # truncated
    with pytest.raises(RunError, match=r"epoch_003\.pt is unreadable .*Fix: restore it from a copy, or retrain"):
        run_files.load_checkpoint(path)


def test_keep_epochs_up_to_drops_the_records_a_resumed_run_logs_again(tmp_path):
    from repro.runs import keep_epochs_up_to

    path = tmp_path / "train.jsonl"
    for epoch in (1, 2, 3):
        append_jsonl(path, {"epoch": epoch, "loss": 1 / epoch})
    keep_epochs_up_to(path, 1)
    assert read_jsonl(path) == [{"epoch": 1, "loss": 1.0}]
    keep_epochs_up_to(tmp_path / "absent.jsonl", 0)  # nothing logged yet: nothing to do
    assert not (tmp_path / "absent.jsonl").exists()


def test_signals_round_trip_and_epochs(store):
    run = store.prepare(load_config())
    psnr, labels = np.linspace(20, 30, 7).astype(np.float32), np.array([0, 1, 0, 0, 1, 1, 0])
    run_files.save_signals(run, 4, psnr=psnr, label=labels, video=np.zeros(7))
    run_files.save_signals(run, 2, psnr=psnr, label=labels, video=np.zeros(7))
    loaded = run_files.load_signals(run, 4)
    assert np.array_equal(loaded["psnr"], psnr) and loaded["psnr"].dtype == np.float32
    assert np.array_equal(loaded["label"], labels) and run_files.signal_epochs(run) == [2, 4]
    with pytest.raises(RunError, match="epoch_006.npz not found"):
        run_files.load_signals(run, 6)


@pytest.mark.parametrize(
    "arrays, problem",
    [
        ({"label": np.zeros(3)}, "lacks video"),
        ({"label": np.zeros(3), "video": np.zeros(3), "distance": np.zeros(3)}, "lacks psnr, regular"),
        ({"label": np.zeros(3), "video": np.zeros(3), "psnr": np.zeros(4), "regular": np.zeros(3)}, r"psnr \(4,\)"),
        ({"label": np.zeros((3, 2)), "video": np.zeros(3), "psnr": np.zeros(3), "regular": np.zeros(3)}, "label"),
    ],
)
def test_signals_of_the_wrong_shape_are_a_run_error_naming_the_file(store, arrays, problem):
    run = store.prepare(load_config())
    run_files.save_signals(run, 1, **arrays, item_counts=np.ones(5), gamma=np.ones(1))  # not per frame
    with pytest.raises(RunError, match=rf"epoch_001\.npz is not a run's signals \(it .*{problem}"):
        run_files.load_signals(run, 1, MNADSignals)


@pytest.mark.parametrize("line", ["3", "[]", '{"loss": 1.0}', '{"epoch": "1"}', '{"epoch": 1, "total": "x"}'])
def test_a_training_log_line_of_the_wrong_shape_is_a_run_error_naming_it(tmp_path, line):
    path = tmp_path / "train.jsonl"
    path.write_text('{"epoch": 1, "total": 0.5, "memory": {"perplexity": 3.0}}\n' + line + "\n")
    with pytest.raises(RunError, match=r"train\.jsonl:2 is not a training record .*Fix: delete that line"):
        read_jsonl(path)


def test_metrics_round_trip_and_missing_metrics_say_the_state(store):
    run = store.prepare(load_config())
    with pytest.raises(RunError, match=r"metrics\.json not found: the run is pending"):
        run_files.read_metrics(run)
    run_files.write_metrics(run, RECORD)
    assert run_files.read_metrics(run) == RECORD.to_json() == json.loads((run / "metrics.json").read_text())


def test_torn_jsonl_line_is_skipped_and_the_next_append_starts_a_new_line(tmp_path):
    path = tmp_path / "train.jsonl"
    append_jsonl(path, {"epoch": 1, "loss": 0.5})
    with open(path, "a") as handle:
        handle.write('{"epoch": 2, "lo')  # killed mid-write
    with pytest.warns(TornLineWarning, match="train.jsonl:2"):
        assert read_jsonl(path) == [{"epoch": 1, "loss": 0.5}]
    append_jsonl(path, {"epoch": 2, "loss": 0.4})
    with pytest.warns(TornLineWarning):
        assert read_jsonl(path) == [{"epoch": 1, "loss": 0.5}, {"epoch": 2, "loss": 0.4}]
    assert read_jsonl(tmp_path / "absent.jsonl") == []


def _dead_pid():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_lock_refuses_a_live_holder_and_takes_over_a_stale_one(store):
    import socket

    run = store.prepare(load_config())
    with run_files.run_lock(run):
        assert json.loads((run / "lock").read_text())["pid"] == os.getpid()
        with pytest.raises(RunError, match=rf"being run by pid {os.getpid()}.*delete .*lock if that process is gone"):
            with run_files.run_lock(run):
                pass
    assert not (run / "lock").exists()
    (run / "lock").write_text(json.dumps({"pid": _dead_pid(), "host": socket.gethostname()}))
    with run_files.run_lock(run):
        assert json.loads((run / "lock").read_text())["pid"] == os.getpid()
    assert not (run / "lock").exists() and not _leftovers(run)


def test_taking_the_lock_removes_what_a_killed_writer_left_half_written(store):
    run = store.prepare(load_config())
    (run / "checkpoints").mkdir()
    left = [run / ".status.json.x1y2.tmp", run / "checkpoints" / ".epoch_002.pt.a3b4.tmp"]
    for path in left:
        path.write_bytes(b"half a file")  # what SIGKILL leaves in the middle of an atomic write
    other_locker = run / ".lock.c5d6.tmp"  # another process about to link its lock: not ours to delete
    other_locker.write_text("{}")
    with run_files.run_lock(run):
        assert not any(path.exists() for path in left)
    assert other_locker.exists() and (run / "status.json").exists()


def test_lock_of_another_host_is_refused(store):
    run = store.prepare(load_config())
    (run / "lock").write_text(json.dumps({"pid": 1, "host": "elsewhere"}))
    with pytest.raises(RunError, match="on elsewhere"):
        with run_files.run_lock(run):
            pass


def test_list_runs_returns_hash_config_state_and_skips_bad_folders(store):
    a, b = load_config(), load_config(None, ["model.mnad.task=recon"])
    store.prepare(a)
    run_files.set_status(store.prepare(b), "done")
    (store.root / "junk").mkdir()
    (store.root / "junk" / "config.toml").write_text("[model]\nwidht = 3\n")
    with pytest.warns(UserWarning, match="junk: skipped"):
        runs = {h: (cfg, state) for h, cfg, state in list_runs(store.root)}
    assert runs == {config_hash(a): (a, "pending"), config_hash(b): (b, "done")}


def test_run_record_has_the_documented_provenance():
    record = run_record(device="cpu")
    for key in (
        "repro_version",
        "git_commit",
        "git_dirty",
        "python",
        "torch",
        "numpy",
        "sklearn",
        "platform",
        "host",
        "time",
    ):
        assert key in record
    assert record["device"] == "cpu" and record["torch"] == torch.__version__


def _repository(root: Path, distribution: str) -> Path:
    """A git repository holding a package folder `repro/` and a pyproject.toml naming `distribution`."""
    (root / "repro").mkdir(parents=True)
    (root / "pyproject.toml").write_text(f'[project]\nname = "{distribution}"\n')
    for command in (["init", "-q"], ["add", "."], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"]):
        subprocess.run(["git", *command], cwd=root, check=True, capture_output=True)
    return root


def test_the_git_commit_is_recorded_only_from_this_projects_repository(tmp_path):
    ours = _repository(tmp_path / "ours", "mnad-repro")
    other = _repository(tmp_path / "other", "someone-else")
    assert project_repository(ours / "repro") == ours
    assert project_repository(other / "repro") is None  # a package installed inside another repository
    (ours / "elsewhere").mkdir()
    assert project_repository(ours / "elsewhere") is None  # the package folder is not at the top level
