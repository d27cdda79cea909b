"""Failures a user can cause or meet, driven through the CLI: each ends in one line with exit code 2 (130 for
an interrupt) that names the file or setting and the fix, and after that fix the run finishes with the same
metrics as an undisturbed run.

The full disk, the read-only file system and the denied permission are fakes that raise the OSError the
operating system raises (a tmpfs needs root); the symbolic-link loop is real.
"""

import errno
import hashlib
import json
import os
import pickle
import re
import shlex
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from fakes import FullFile

import repro.runs as run_files
from repro.cli import main
from repro.runs import RunError, RunStore, list_runs, read_jsonl, read_metrics, status

pytestmark = pytest.mark.slow

COMPARED = ("default", "oracle", "epochs")  # metrics.json less its timings and provenance


def invoke(*args, **kwargs):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False, **kwargs)


def settings(root: Path) -> list[str]:
    """Seconds-long runs of two epochs, a checkpoint each, on the tiny preset generated under `root`."""
    pairs = [
        f"data.root={root}",
        "data.preset=tiny",
        "data.size=16",
        "model.mnad.width=4",
        "train.epochs=2",
        "train.checkpoint_every=1",
        "exec.device=cpu",
    ]
    return [part for pair in pairs for part in ("--set", pair)]


def one_line_error(result, code: int = 2) -> str:
    """The error line of a failed command, checked to be one line, without a traceback."""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output and "Aborted!" not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert len(lines) == 1, result.output
    return lines[0]


def suggested_command(line: str) -> list[str]:
    """The command an error line suggests in backticks, as arguments of `repro`."""
    (command,) = re.findall(r"`(repro [^`]+)`", line)
    return shlex.split(command)[1:]


def the_run(store: Path) -> Path:
    (name,) = [name for name, _, _ in list_runs(store)]
    return store / name


def compared(run: Path) -> dict:
    metrics = read_metrics(run)
    return {key: metrics[key] for key in COMPARED}


@pytest.fixture(autouse=True)
def frame_cache(tmp_path, monkeypatch):
    """A frame cache of each test's own."""
    monkeypatch.setenv("REPRO_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The tiny world and the metrics of an undisturbed run: trained, and re-scored without the update."""
    root = tmp_path_factory.mktemp("world")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("REPRO_CACHE", str(root / "cache"))
        store = root / "runs"
        assert invoke("train", "--runs", store, *settings(root / "data")).exit_code == 0
        run = the_run(store)
        rescored = invoke("evaluate", run, "--no-test-time-update")
        assert rescored.exit_code == 0, rescored.output
        target = Path(rescored.output.split("run: ")[1].split()[0])
    (dataset,) = (root / "data" / "synthetic").glob("tiny-seed0-*")
    return {
        "data": root / "data",
        "dataset": dataset,
        "run": run,
        "trained": compared(run),
        "rescored": compared(target),
    }


def copy_of_the_run(world, tmp_path) -> tuple[Path, list]:
    """(run, train arguments) of a copy of the undisturbed run, alone in a run store of its own."""
    source, store = world["run"], tmp_path / "runs"
    shutil.copytree(source, store / source.name)
    return store / source.name, ["train", "--runs", store, *settings(world["data"])]


def unfinish(run: Path, epoch: int) -> None:
    """Make `run` look killed while it evaluated (epoch None) or before it saved the checkpoint of `epoch`."""
    for name in ("metrics.json", "examples.npz"):
        (run / name).unlink(missing_ok=True)
    shutil.rmtree(run / "signals", ignore_errors=True)
    if epoch is not None:
        (run / "checkpoints" / f"epoch_{epoch:03d}.pt").unlink()
        records = read_jsonl(run / "train.jsonl")
        (run / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records if r["epoch"] < epoch))
    (run / "status.json").write_text(json.dumps({"state": "failed", "error": "KeyboardInterrupt: "}))


def copy_of_the_data(world, tmp_path) -> tuple[Path, Path]:
    """(data root, dataset root for `repro data check`) of a private copy of the tiny world."""
    shutil.copytree(world["data"] / "synthetic", tmp_path / "data" / "synthetic")
    return tmp_path / "data", tmp_path / "data" / "synthetic" / world["dataset"].name


# ------------------------------------------------------------------------------- fixes that fix
@pytest.mark.parametrize("damage", ["corrupt", "deleted"])
def test_a_finished_run_without_valid_metrics_is_evaluated_again_from_its_checkpoints(world, tmp_path, damage):
    run, args = copy_of_the_run(world, tmp_path)
    checkpoint = (run / "checkpoints" / "epoch_002.pt").stat().st_mtime_ns
    if damage == "corrupt":
        (run / "metrics.json").write_text('{"default": {"auc": 0.')
    else:
        (run / "metrics.json").unlink()
    assert status(run)["state"] == "done"  # stale: the files say otherwise
    again = invoke(*args)
    assert again.exit_code == 0, again.output
    assert compared(run) == world["trained"]
    assert (run / "checkpoints" / "epoch_002.pt").stat().st_mtime_ns == checkpoint  # not retrained
    rescored = invoke("evaluate", run, "--no-test-time-update")
    assert rescored.exit_code == 0, rescored.output
    assert compared(Path(rescored.output.split("run: ")[1].split()[0])) == world["rescored"]


def test_a_corrupt_last_checkpoint_of_an_unfinished_run_is_retrained_from_the_one_before(world, tmp_path):
    run, args = copy_of_the_run(world, tmp_path)
    unfinish(run, epoch=None)  # killed while it evaluated
    checkpoint = run / "checkpoints" / "epoch_002.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    with pytest.warns(UserWarning, match=r"epoch_002\.pt is unreadable"):
        again = invoke(*args)
    assert again.exit_code == 0, again.output
    assert compared(run) == world["trained"]
    assert [record["epoch"] for record in read_jsonl(run / "train.jsonl")] == [1, 2]


def test_an_unreadable_earlier_checkpoint_of_an_unfinished_run_names_a_retrain_to_the_same_result(world, tmp_path):
    run, args = copy_of_the_run(world, tmp_path)
    unfinish(run, epoch=None)  # killed while it evaluated
    checkpoint = run / "checkpoints" / "epoch_001.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    line = one_line_error(invoke(*args))
    assert f"checkpoint {checkpoint} is unreadable" in line and "retrain its run in a store of its own" in line
    fixed = invoke(*suggested_command(line))
    assert fixed.exit_code == 0, fixed.output
    assert compared(the_run(tmp_path / "runs-retrained")) == world["trained"]


def test_evaluate_never_trains_an_unfinished_run_and_names_the_command_that_finishes_it(world, tmp_path):
    run, _ = copy_of_the_run(world, tmp_path)
    unfinish(run, epoch=2)
    line = one_line_error(invoke("evaluate", run, "--no-test-time-update"))
    assert "not finished" in line and str(run) in line
    assert [name for name, _, _ in list_runs(run.parent)] == [run.name]  # no new run, nothing trained
    assert [epoch for epoch, _ in run_files.checkpoints(run)] == [1]
    fix = invoke(*suggested_command(line))
    assert fix.exit_code == 0, fix.output
    assert compared(run) == world["trained"]
    rescored = invoke("evaluate", run, "--no-test-time-update")
    assert rescored.exit_code == 0, rescored.output
    assert compared(Path(rescored.output.split("run: ")[1].split()[0])) == world["rescored"]


# ------------------------------------------------------------------------------- nothing finished is lost
def digests(folder: Path) -> dict[str, str]:
    """sha256 of every file under `folder`, by relative path."""
    files = (path for path in folder.rglob("*") if path.is_file())
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest() for path in files}


def rescored_run(result) -> Path:
    assert result.exit_code == 0, result.output
    return Path(result.output.split("run: ")[1].split()[0])


DAMAGES = {
    "the last checkpoint truncated": ("epoch_002.pt", lambda path: path.write_bytes(path.read_bytes()[:1000])),
    "the first checkpoint truncated": ("epoch_001.pt", lambda path: path.write_bytes(path.read_bytes()[:1000])),
    "the last checkpoint deleted": ("epoch_002.pt", lambda path: path.unlink()),
}


@pytest.mark.parametrize("damage", DAMAGES)
def test_evaluate_of_a_run_with_a_damaged_checkpoint_changes_nothing_and_names_a_fix(world, tmp_path, damage):
    source, _ = copy_of_the_run(world, tmp_path)
    name, harm = DAMAGES[damage]
    harm(source / "checkpoints" / name)
    before = digests(source.parent)
    line = one_line_error(invoke("evaluate", source, "--no-test-time-update"))
    assert str(source / "checkpoints" / name) in line and "evaluate never trains (nothing was changed)" in line
    assert digests(source.parent) == before  # the run it re-scores, and no new run
    assert status(source)["state"] == "done" and compared(source) == world["trained"]


def test_the_fix_of_an_unreadable_checkpoint_retrains_to_the_same_result_and_leaves_the_run(world, tmp_path):
    source, _ = copy_of_the_run(world, tmp_path)
    checkpoint = source / "checkpoints" / "epoch_002.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    before = digests(source.parent)
    line = one_line_error(invoke("evaluate", source, "--no-test-time-update"))
    fix = invoke(*suggested_command(line))  # retrains it in a store of its own
    assert fix.exit_code == 0, fix.output
    retrained = the_run(tmp_path / "runs-retrained")
    assert retrained.name == source.name and compared(retrained) == world["trained"]  # the same AUC, bit for bit
    assert digests(source.parent) == before
    assert compared(rescored_run(invoke("evaluate", retrained, "--no-test-time-update"))) == world["rescored"]


def test_evaluate_leaves_the_run_it_rescores_as_it_was(world, tmp_path):
    source, _ = copy_of_the_run(world, tmp_path)
    before = digests(source)
    for _ in range(2):  # made, then found done
        target = rescored_run(invoke("evaluate", source, "--no-test-time-update"))
        assert digests(source) == before and compared(target) == world["rescored"]


@pytest.mark.parametrize("damaged", ["epoch_001.pt", "epoch_002.pt"])
def test_training_beside_a_finished_run_with_an_unreadable_checkpoint_leaves_that_run_as_it_is(
    world, tmp_path, damaged
):
    lender, args = copy_of_the_run(world, tmp_path)
    checkpoint = lender / "checkpoints" / damaged
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    before = digests(lender)
    with pytest.warns(UserWarning, match=rf"{damaged} of the finished run .* keeps its result") as caught:
        result = invoke(*args, "--set", "eval.mnad.test_time_update=false")  # same training, other [eval]
    assert result.exit_code == 0, result.output
    assert digests(lender) == before and status(lender)["state"] == "done"
    assert compared(rescored_run(result)) == world["rescored"]  # the epochs it could not adopt, trained alike
    (warning,) = [str(w.message) for w in caught if "of the finished run" in str(w.message)]
    fix = invoke(*suggested_command(warning))
    assert fix.exit_code == 0, fix.output
    assert compared(the_run(tmp_path / "runs-retrained")) == world["trained"] and digests(lender) == before


def test_a_folder_that_is_not_a_run_is_called_so(tmp_path):
    (tmp_path / "notes").mkdir()
    line = one_line_error(invoke("evaluate", tmp_path / "notes"))
    assert f"{tmp_path / 'notes'} is not a run folder (it has no config.toml)" in line and "`" not in line


# ------------------------------------------------------------------------------- validate before work
def test_missing_labels_are_found_by_data_check_and_before_training(world, tmp_path):
    data, dataset = copy_of_the_data(world, tmp_path)
    labels = dataset / "synthetic-tiny" / "testing" / "labels.npy"
    kept = labels.read_bytes()
    labels.unlink()
    line = one_line_error(invoke("data", "check", dataset, "synthetic-tiny"))
    assert str(labels) in line
    args = ["train", "--runs", tmp_path / "runs", *settings(data)]
    line = one_line_error(invoke(*args))
    assert str(labels) in line
    run = the_run(tmp_path / "runs")
    assert not (run / "checkpoints").exists() and not (run / "train.jsonl").exists()  # nothing trained
    labels.write_bytes(kept)
    again = invoke(*args)
    assert again.exit_code == 0, again.output
    assert compared(run) == world["trained"]


def test_signals_with_placeholder_labels_are_never_saved(tmp_path):
    from repro.config import load_config

    store = RunStore(tmp_path)
    run = store.prepare(load_config())
    with pytest.raises(RunError, match=r"epoch_001\.npz.*placeholder label -1"):
        run_files.save_signals(run, 1, psnr=np.zeros(3, np.float32), label=np.array([0, -1, 1]))
    assert run_files.signal_epochs(run) == []


def test_training_videos_shorter_than_the_clip_window_are_refused_before_training(world, tmp_path):
    data, dataset = copy_of_the_data(world, tmp_path)
    for video in (dataset / "synthetic-tiny" / "training" / "frames").iterdir():
        for frame in sorted(video.iterdir())[3:]:
            frame.unlink()  # 3 frames: MNAD prediction needs 5 (4 inputs and the target)
    line = one_line_error(invoke("data", "check", dataset, "synthetic-tiny"))
    assert "training" in line and "5 frames" in line
    assert invoke("data", "check", dataset, "synthetic-tiny", "--task", "recon").exit_code == 0
    line = one_line_error(invoke("train", "--runs", tmp_path / "runs", *settings(data)))
    assert "training" in line and "5 frames" in line
    assert not (the_run(tmp_path / "runs") / "checkpoints").exists()
    (fix,) = re.findall(r"--set (\S+): 1 frame", line)
    followed = invoke("train", "--runs", tmp_path / "runs", *settings(data), "--set", fix)
    assert followed.exit_code == 0, followed.output


@pytest.mark.parametrize("size", [7, 12])
def test_a_frame_size_the_network_cannot_take_is_refused_when_the_config_is_built(world, tmp_path, size):
    line = one_line_error(
        invoke("train", "--runs", tmp_path / "runs", *settings(world["data"]), "--set", f"data.size={size}")
    )
    assert f"data.size={size}: MNAD pools three times" in line and not (tmp_path / "runs").exists()


def _shorter_types(dataset: Path) -> None:
    types = dataset / "synthetic-tiny" / "testing" / "anomaly_types.npy"
    np.save(types, np.load(types)[:-1])


# what train refuses about the data -> (harm to the data, `data check` arguments, `train` arguments, the line's words)
REFUSED_BY_BOTH = {
    "anomaly types not one per test frame": (_shorter_types, [], [], "anomaly types for"),
    "a batch larger than the training clips": (
        None, ["--set", "train.batch_size=100000"], ["--set", "train.batch_size=100000"], "never train"
    ),
    "a frame size the network cannot take": (None, ["--size", "12"], ["--set", "data.size=12"], "data.size=12: MNAD"),
}  # fmt: skip


@pytest.mark.parametrize("case", REFUSED_BY_BOTH)
def test_data_check_refuses_what_train_refuses(world, tmp_path, case):
    harm, check_args, train_args, words = REFUSED_BY_BOTH[case]
    data, dataset = copy_of_the_data(world, tmp_path)
    if harm:
        harm(dataset)
    checked = one_line_error(invoke("data", "check", dataset, "synthetic-tiny", *check_args))
    trained = one_line_error(invoke("train", "--runs", tmp_path / "runs", *settings(data), *train_args))
    assert words in checked and words in trained
    assert not list((tmp_path / "runs").glob("*/checkpoints"))


def _pickled(path: Path) -> None:
    path.write_bytes(pickle.dumps([0, 1, 1]))


LABEL_FILES = {
    "empty": lambda path: path.write_bytes(b""),
    "text": lambda path: path.write_text("0\n1\n1\n"),
    "pickled": _pickled,
    "truncated": lambda path: path.write_bytes(_npy_bytes(np.zeros(500, np.int8))[:100]),
}


def _npy_bytes(array: np.ndarray) -> bytes:
    with tempfile.TemporaryFile() as handle:
        np.save(handle, array)
        handle.seek(0)
        return handle.read()


@pytest.mark.parametrize("form", LABEL_FILES)
def test_a_malformed_label_file_is_one_line_naming_it(world, tmp_path, form):
    data, dataset = copy_of_the_data(world, tmp_path)
    labels = dataset / "synthetic-tiny" / "testing" / "labels.npy"
    kept = labels.read_bytes()
    LABEL_FILES[form](labels)
    line = one_line_error(invoke("data", "check", dataset, "synthetic-tiny"))
    assert str(labels) in line and ".npy" in line
    assert str(labels) in one_line_error(invoke("train", "--runs", tmp_path / "runs", *settings(data)))
    assert not (the_run(tmp_path / "runs") / "checkpoints").exists()
    labels.write_bytes(kept)  # the fix; that the run then finishes is shown for missing labels
    assert invoke("data", "check", dataset, "synthetic-tiny").exit_code == 0


def test_a_truncated_frame_cache_file_is_named_and_rebuilt(world, tmp_path, frame_cache):
    run, args = copy_of_the_run(world, tmp_path)
    unfinish(run, epoch=None)
    assert invoke(*args).exit_code == 0  # evaluated again: the frame cache is filled
    cached = sorted((frame_cache / "frames").glob("*.npy"))[0]
    cached.write_bytes(cached.read_bytes()[:200])
    unfinish(run, epoch=None)
    with pytest.warns(UserWarning, match=re.escape(str(cached))):
        again = invoke(*args)
    assert again.exit_code == 0, again.output
    assert compared(run) == world["trained"]


# -------------------------------------------------------------------------------- declarations
TABLE = """
name = "tiny"
question = "Do malformed declarations say where?"
datasets = ["ped2"]
[stand_ins]
ped2 = "single"
[models]
"Pred w/ Mem" = ["model.mnad.task=pred", "model.mnad.memory=true"]
"""
HEAD = 'name = "tiny"\nquestion = "Do malformed declarations say where?"\ndatasets = ["ped2"]\n'
BAD_TABLES = {
    "a string where a list of overrides is expected": (
        TABLE.replace('["model.mnad.task=pred", "model.mnad.memory=true"]', '"model.mnad.memory=true"'),
        "models",
    ),
    "a list where the table of models is expected": (
        HEAD + 'models = ["model.mnad.memory=false"]\n[stand_ins]\nped2 = "t"\n',
        "models",
    ),
    "a list where the table of stand-ins is expected": (
        HEAD + 'stand_ins = ["tiny"]\n[models]\nm = ["seed=1"]\n',
        "stand_ins",
    ),
    "a non-number in lambda_grid": (TABLE + '[selection]\nlambda_grid = [0.5, "high"]\n', "lambda_grid"),
    "a misspelt top-level key": (TABLE.replace("question =", "qestion = 'x'\nquestion ="), "qestion"),
    "a string where a list of datasets is expected": (TABLE.replace('["ped2"]', '"ped2"'), "datasets"),
}


@pytest.mark.parametrize("case", BAD_TABLES)
def test_a_malformed_table_declaration_names_the_file_and_the_key(tmp_path, case):
    text, key = BAD_TABLES[case]
    path = tmp_path / "bad.toml"
    path.write_text(text)
    line = one_line_error(invoke("sweep", path, "--runs", tmp_path / "runs", "--out", tmp_path / "out"))
    assert str(path) in line and key in line
    assert not (tmp_path / "runs").exists()


def test_an_empty_list_of_datasets_or_models_is_one_line(tmp_path):
    for text, key in (
        (TABLE.replace('["ped2"]', "[]"), "datasets"),
        (HEAD + "[stand_ins]\nped2 = 't'\n[models]\n", "models"),
    ):
        path = tmp_path / "empty.toml"
        path.write_text(text)
        line = one_line_error(invoke("sweep", path, "--runs", tmp_path / "runs", "--out", tmp_path / "out"))
        assert f"{path}: {key} must be a" in line and not (tmp_path / "runs").exists()


@pytest.mark.parametrize("case", BAD_TABLES)
def test_the_example_overrides_of_a_table_error_are_valid_keys(tmp_path, case):
    from repro.config import load_config

    path = tmp_path / "bad.toml"
    path.write_text(BAD_TABLES[case][0])
    line = one_line_error(invoke("sweep", path, "--runs", tmp_path / "runs", "--out", tmp_path / "out"))
    examples = [json.loads(f"[{x}]") for x in re.findall(r"\[(\"[^\]]*=[^\]]*\")\]", line)]
    for overrides in examples:  # the fix: a list of overrides to copy
        load_config(None, overrides)


def test_a_sweep_that_cannot_fit_is_refused_before_data_or_workers(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TABLE)
    data = tmp_path / "data"
    args = ["sweep", path, "--seeds", 1, "--runs", tmp_path / "runs", "--out", tmp_path / "out", *settings(data)]
    line = one_line_error(invoke(*args, "--set", "data.size=100000", "--jobs", 2))
    assert "GB to train" in line and "Fix: lower data.size" in line
    assert not data.exists() and not (tmp_path / "runs").exists()


def test_a_sweep_labels_its_rows_with_the_preset_it_used(world, tmp_path):
    run, _ = copy_of_the_run(world, tmp_path)  # the table's one cell, with data.preset=tiny: reused
    path = tmp_path / "tiny.toml"
    path.write_text(TABLE)
    out = tmp_path / "out"
    result = invoke("sweep", path, "--seeds", 1, "--runs", run.parent, "--out", out, *settings(world["data"]))
    assert result.exit_code == 0, result.output
    table = (tmp_path / "out" / "tiny.md").read_text()
    assert "ped2 (tiny)" in table and "(single)" not in table
    assert f"{world['trained']['default']['auc'] * 100:.2f}" in table


# ------------------------------------------------------------------------- followed fixes
# error -> (arguments that cause it, what the line suggests, the arguments that follow the suggestion)
SUGGESTED_FIXES = {
    "a malformed override": (
        ["--set", "train.epochs"], "e.g. model.mnad.separateness=0", ["--set", "model.mnad.separateness=0"]
    ),
    "an unknown key": (["--set", "train.epoch=1"], "train.epochs", ["--set", "train.epochs=1"]),
    "a batch larger than the clips": (["--set", "train.batch_size=100000"], "Fix: --set train.batch_size=", None),
    "a loss that is NaN from the start": (
        ["--set", "train.lr=1e30"], "Fix: lower train.lr", ["--set", "train.lr=1e-4"]
    ),
    "a size that cannot fit": (
        ["--set", "model.mnad.width=100000"], "Fix: lower data.size, train.batch_size or the model's width",
        ["--set", "model.mnad.width=4"],
    ),
    "a real dataset without its location": (
        ["--set", "data.name=ped2", "--set", "data.root=none"], "or use data.name=synthetic",
        ["--set", "data.name=synthetic"],
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", SUGGESTED_FIXES)
def test_following_the_suggested_fix_works(world, tmp_path, case):
    error_args, suggestion, fixed_args = SUGGESTED_FIXES[case]
    line = one_line_error(invoke("train", "--runs", tmp_path / "runs", *settings(world["data"]), *error_args))
    assert suggestion in line, line
    if fixed_args is None:  # the line carries the exact setting: --set KEY=VALUE
        fixed_args = ["--set", re.search(r"--set (\S+)", line)[1]]
    fixed = invoke("train", "--runs", tmp_path / "runs", *settings(world["data"]), *fixed_args)  # in its stead
    assert fixed.exit_code == 0, fixed.output


def test_a_status_file_of_the_wrong_shape_is_fixed_as_its_line_says(world, tmp_path):
    run, args = copy_of_the_run(world, tmp_path)
    (run / "status.json").write_text('{"state": "finished"}')
    line = one_line_error(invoke(*args))
    assert str(run / "status.json") in line and "delete it and rerun the run" in line
    (run / "status.json").unlink()
    again = invoke(*args)
    assert again.exit_code == 0, again.output
    assert compared(run) == world["trained"]


def test_a_lock_of_another_host_is_fixed_as_its_line_says(world, tmp_path):
    run, args = copy_of_the_run(world, tmp_path)
    unfinish(run, epoch=None)
    (run / "lock").write_text(json.dumps({"pid": 1, "host": "elsewhere"}))
    line = one_line_error(invoke(*args))
    assert f"delete {run / 'lock'} if that process is gone" in line
    (run / "lock").unlink()
    again = invoke(*args)
    assert again.exit_code == 0, again.output
    assert compared(run) == world["trained"]


def test_a_signals_file_of_the_wrong_shape_is_fixed_as_its_line_says(world, tmp_path):
    run, args = copy_of_the_run(world, tmp_path)
    (run / "metrics.json").unlink()  # scored again from its signals
    signals = run / "signals" / "epoch_001.npz"
    with np.load(signals) as data:
        arrays = {name: data[name] for name in data.files}
    np.savez(signals, **arrays | {"psnr": arrays["psnr"][:-1]})  # valid npz, one frame short
    line = one_line_error(invoke(*args))
    assert f"{signals} is not a run's signals" in line and "psnr" in line
    signals.unlink()  # the fix: delete it (metrics.json is gone already) and rerun
    fixed = invoke(*suggested_command(line))
    assert fixed.exit_code == 0, fixed.output
    assert compared(run) == world["trained"]


@pytest.mark.parametrize("line", ["[]", '{"epoch": "1"}'])
def test_a_training_log_line_of_the_wrong_shape_is_fixed_as_its_line_says(world, tmp_path, line):
    run, args = copy_of_the_run(world, tmp_path)
    unfinish(run, epoch=2)
    log = run / "train.jsonl"
    log.write_text(log.read_text() + line + "\n")
    error = one_line_error(invoke(*args))
    assert f"{log}:2 is not a training record" in error and "Fix: delete that line and rerun the run" in error
    log.write_text("".join(log.read_text().splitlines(keepends=True)[:1]))
    fixed = invoke(*args)
    assert fixed.exit_code == 0, fixed.output
    assert compared(run) == world["trained"]


@pytest.mark.parametrize("change", [{"runs": 3}, {"kind": "table"}, {"command": []}, {"runs": [{"labels": ["x"]}]}])
def test_a_manifest_of_the_wrong_shape_is_one_line_naming_it(world, tmp_path, change):
    path = tmp_path / "out" / "manifest.json"
    path.parent.mkdir()
    record = {"kind": "sweep", "date": "2026-12-05", "command": {"runs": str(tmp_path)}, "declaration": {}, "runs": []}
    path.write_text(json.dumps(record | change))
    line = one_line_error(invoke("report", tmp_path / "out", "--out", tmp_path / "report"))
    assert f"{path} is unreadable" in line and "rerun the command that wrote" in line


def test_a_status_file_that_is_not_json_is_fixed_as_its_line_says(world, tmp_path):
    run, args = copy_of_the_run(world, tmp_path)
    (run / "status.json").write_text('{"state": ')
    line = one_line_error(invoke(*args))
    assert f"{run / 'status.json'} is not valid JSON" in line and "delete it and rerun the run" in line
    (run / "status.json").unlink()
    assert invoke(*args).exit_code == 0 and compared(run) == world["trained"]


def test_metrics_of_the_wrong_shape_are_fixed_by_the_command_their_line_names(world, tmp_path):
    run, _ = copy_of_the_run(world, tmp_path)
    (run / "metrics.json").write_text('{"default": []}')
    with pytest.raises(RunError) as caught:
        run_files.read_record(run)  # what repro report and the claims meet
    line = str(caught.value)
    assert f"{run / 'metrics.json'} is not a run's metrics" in line
    (run / "metrics.json").unlink()
    fixed = invoke(*suggested_command(line))
    assert fixed.exit_code == 0, fixed.output
    assert compared(run) == world["trained"]


def test_a_missing_skip_probe_is_computed_by_the_command_its_line_names(world, tmp_path, monkeypatch):
    run, _ = copy_of_the_run(world, tmp_path)
    with pytest.raises(RunError) as caught:
        run_files.read_probe(run)
    monkeypatch.chdir(tmp_path)  # the probe's report goes to reports/skip-probe, here
    fixed = invoke(*suggested_command(str(caught.value)), "--clips", 4)
    assert fixed.exit_code == 0, fixed.output
    assert len(run_files.read_probe(run).rows) > 0


def test_missing_labels_are_found_with_the_key_their_line_names(world, tmp_path):
    data, dataset = copy_of_the_data(world, tmp_path)
    labels = dataset / "synthetic-tiny" / "testing" / "labels.npy"
    elsewhere = tmp_path / "labels.npy"
    labels.rename(elsewhere)
    line = one_line_error(invoke("data", "check", dataset, "synthetic-tiny"))
    assert "data.labels=FILE (--labels for `repro data check`)" in line
    assert invoke("data", "check", dataset, "synthetic-tiny", "--labels", elsewhere).exit_code == 0
    own = ["train", "--runs", tmp_path / "runs", *settings(data), "--set", f"data.labels={elsewhere}"]
    assert invoke(*own).exit_code == 0


def test_a_dataset_folder_that_is_not_there_is_found_with_the_option_its_line_names(world, tmp_path):
    _, dataset = copy_of_the_data(world, tmp_path)
    args = ["train", "--runs", tmp_path / "runs", *settings(tmp_path)[2:], "--dataset", "synthetic-tiny"]  # no root
    line = one_line_error(invoke(*args, "--data", tmp_path))
    assert "Fix: pass the folder that holds synthetic-tiny/ (--data)" in line
    fixed = invoke(*args, "--data", dataset)
    assert fixed.exit_code == 0, fixed.output


def test_synthesising_over_a_dataset_is_fixed_by_another_destination(tmp_path):
    assert invoke("data", "synth", tmp_path / "a", "--preset", "tiny", "--size", 16).exit_code == 0
    line = one_line_error(invoke("data", "synth", tmp_path / "a", "--preset", "tiny", "--size", 16))
    assert "Fix: remove it or choose another destination" in line
    assert invoke("data", "synth", tmp_path / "b", "--preset", "tiny", "--size", 16).exit_code == 0


def test_evaluate_refuses_data_that_changed_since_training_and_works_once_it_is_back(world, tmp_path):
    _, dataset = copy_of_the_data(world, tmp_path)
    own = ["--dataset", "synthetic-tiny", "--data", dataset]
    args = ["train", "--runs", tmp_path / "runs", *settings(tmp_path)[2:], *own]  # the --set of data.root left out
    assert invoke(*args).exit_code == 0
    run = the_run(tmp_path / "runs")
    labels = dataset / "synthetic-tiny" / "testing" / "labels.npy"
    kept = labels.read_bytes()
    np.save(labels, 1 - np.load(labels))  # other labels under the same name
    before = digests(run.parent)
    line = one_line_error(invoke("evaluate", run, "--no-test-time-update"))
    assert "not to its folder's name: it was trained on other data" in line and "nothing was changed" in line
    assert digests(run.parent) == before
    labels.write_bytes(kept)  # the fix: the dataset back unchanged
    rescored_run(invoke("evaluate", run, "--no-test-time-update"))


def test_evaluate_refuses_a_thread_count_that_would_retrain(world, tmp_path):
    source, _ = copy_of_the_run(world, tmp_path)
    before = digests(source.parent)
    line = one_line_error(invoke("evaluate", source, "--set", "exec.threads=2"))
    assert "evaluate never trains (nothing was changed). Fix: leave those two as the run has them" in line
    assert digests(source.parent) == before


def test_a_report_of_runs_not_yet_made_and_a_broken_manifest_are_fixed_by_the_commands_they_name(world, tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TABLE)
    grid = ["--seeds", 1, "--runs", tmp_path / "runs", *settings(world["data"])]
    with pytest.warns(UserWarning, match=r"; train it with `repro sweep` using the same --profile/--seeds/--set"):
        invoke("report", path, "--out", tmp_path / "report", *grid)
    out = tmp_path / "out"
    assert invoke("sweep", path, "--out", out, *grid).exit_code == 0  # the fix: the sweep with the same flags
    (out / "manifest.json").write_text('{"kind": "sweep", "runs": 3}')
    line = one_line_error(invoke("report", out, "--out", tmp_path / "report"))
    assert "rerun the command that wrote" in line
    assert invoke("sweep", path, "--out", out, *grid).exit_code == 0  # the fix: finished runs are reused
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # nothing left to warn about
        result = invoke("report", out, "--out", tmp_path / "report")
    assert result.exit_code == 0, result.output


# ------------------------------------------------------------------------- the operating system
def full_disk(monkeypatch, where: str) -> None:
    """Files whose path contains `where` cannot be written: the disk is full (small files still fit)."""
    real = os.fdopen

    def fdopen(fd, *args, **kwargs):
        handle = real(fd, *args, **kwargs)
        return FullFile(handle) if where in os.readlink(f"/proc/self/fd/{fd}") else handle

    monkeypatch.setattr(os, "fdopen", fdopen)


def refuse_writes(monkeypatch, under: Path, code: int) -> None:
    """New files under `under` fail with `code` (a read-only mount, a folder of another user)."""
    real = tempfile.mkstemp

    def mkstemp(*args, dir=None, **kwargs):
        if dir is not None and Path(dir).is_relative_to(under):
            raise OSError(code, os.strerror(code), str(dir))
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)


def interrupt_at_epoch(monkeypatch, epoch: int):
    """Ctrl-C when the checkpoint of `epoch` is about to be written."""
    real = run_files.save_checkpoint

    def save(run, at, state):
        if at == epoch:
            raise KeyboardInterrupt
        return real(run, at, state)

    monkeypatch.setattr(run_files, "save_checkpoint", save)
    return monkeypatch


def test_a_full_run_store_is_one_line_recorded_in_the_status_and_the_rerun_resumes(world, tmp_path, monkeypatch):
    args = ["train", "--runs", tmp_path / "runs", *settings(world["data"])]
    full_disk(monkeypatch, "epoch_002.pt")
    line = one_line_error(invoke(*args))
    monkeypatch.undo()
    run = the_run(tmp_path / "runs")
    assert "No space left on device" in line and str(run / "checkpoints" / "epoch_002.pt") in line
    assert "free" in line and "rerun" in line
    assert "No space left on device" in status(run)["error"] and status(run)["state"] == "failed"
    again = invoke(*args)  # space freed
    assert again.exit_code == 0, again.output
    assert compared(run) == world["trained"]
    assert [record["epoch"] for record in read_jsonl(run / "train.jsonl")] == [1, 2]  # epoch 2 once


def test_a_full_frame_cache_is_one_line_naming_the_cache_file(world, tmp_path, monkeypatch, frame_cache):
    args = ["train", "--runs", tmp_path / "runs", *settings(world["data"])]
    full_disk(monkeypatch, str(frame_cache))
    line = one_line_error(invoke(*args))
    monkeypatch.undo()
    assert "No space left on device" in line and str(frame_cache / "frames") in line and "REPRO_CACHE" in line
    again = invoke(*args)
    assert again.exit_code == 0, again.output
    assert compared(the_run(tmp_path / "runs")) == world["trained"]


def test_a_read_only_run_store_is_one_line_and_the_run_finishes_once_it_is_writable(world, tmp_path, monkeypatch):
    args = ["train", "--runs", tmp_path / "runs", *settings(world["data"])]
    refuse_writes(monkeypatch, tmp_path / "runs", errno.EROFS)
    line = one_line_error(invoke(*args))
    monkeypatch.undo()
    assert "Read-only file system" in line and str(tmp_path / "runs") in line and "--runs" in line
    again = invoke(*args)  # mounted writable again
    assert again.exit_code == 0, again.output
    assert compared(the_run(tmp_path / "runs")) == world["trained"]


def test_evaluate_in_a_read_only_store_names_a_fix_it_can_follow(world, tmp_path, monkeypatch):
    source, _ = copy_of_the_run(world, tmp_path)
    before = digests(source.parent)
    refuse_writes(monkeypatch, source.parent, errno.EROFS)
    line = one_line_error(invoke("evaluate", source, "--no-test-time-update"))
    monkeypatch.undo()
    assert "Read-only file system" in line and "copy the run's folder into a writable run store" in line
    assert digests(source.parent) == before
    copy = tmp_path / "writable" / source.name
    shutil.copytree(source, copy)
    assert compared(rescored_run(invoke("evaluate", copy, "--no-test-time-update"))) == world["rescored"]


def test_a_sweep_beside_a_finished_run_with_an_unreadable_checkpoint_leaves_that_run_as_it_is(world, tmp_path):
    lender, _ = copy_of_the_run(world, tmp_path)
    checkpoint = lender / "checkpoints" / "epoch_002.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    before = digests(lender)
    path = tmp_path / "tiny.toml"
    path.write_text(TABLE)
    sweep = ["sweep", path, "--seeds", 1, "--runs", lender.parent, "--out", tmp_path / "out", *settings(world["data"])]
    with pytest.warns(UserWarning, match="epoch_002.pt of the finished run"):
        result = invoke(*sweep, "--set", "eval.mnad.test_time_update=false")  # its one cell adopts from the lender
    assert result.exit_code == 0, result.output
    assert digests(lender) == before
    assert f"{world['rescored']['default']['auc'] * 100:.2f}" in (tmp_path / "out" / "tiny.md").read_text()


def test_a_run_store_without_permission_is_one_line(world, tmp_path, monkeypatch):
    refuse_writes(monkeypatch, tmp_path / "runs", errno.EACCES)
    line = one_line_error(invoke("train", "--runs", tmp_path / "runs", *settings(world["data"])))
    assert "Permission denied" in line and str(tmp_path / "runs") in line and "access" in line


def test_a_symbolic_link_loop_is_one_line(world, tmp_path):
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    line = one_line_error(invoke("train", "--runs", tmp_path / "loop", *settings(world["data"])))
    assert "Too many levels of symbolic links" in line and str(tmp_path / "loop") in line


def test_ctrl_c_says_the_run_resumes_and_it_does(world, tmp_path, monkeypatch):
    args = ["train", "--runs", tmp_path / "runs", *settings(world["data"])]
    interrupt_at_epoch(monkeypatch, 2)
    line = one_line_error(invoke(*args), code=130)
    monkeypatch.undo()
    assert "interrupted; rerun the same command to resume" in line
    run = the_run(tmp_path / "runs")
    assert status(run)["state"] == "failed" and "KeyboardInterrupt" in status(run)["error"]
    again = invoke(*args)
    assert again.exit_code == 0, again.output
    assert compared(run) == world["trained"]
    assert [record["epoch"] for record in read_jsonl(run / "train.jsonl")] == [1, 2]


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_debug_shows_the_traceback(tmp_path, how):
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    flag, env = (["--debug"], {}) if how == "flag" else ([], {"REPRO_DEBUG": "1"})
    with pytest.raises(OSError, match="Too many levels of symbolic links"):
        invoke(*flag, "train", "--runs", tmp_path / "loop", "--set", "train.epochs=1", env=env)


def test_when_not_even_the_status_can_be_written_the_first_error_is_shown(world, tmp_path, monkeypatch):
    args = ["train", "--runs", tmp_path / "runs", *settings(world["data"])]
    real = run_files.save_checkpoint

    def save(run, epoch, state):
        if epoch == 2:
            full_disk(monkeypatch, str(tmp_path / "runs"))  # from now on nothing fits, status.json neither
        return real(run, epoch, state)

    monkeypatch.setattr(run_files, "save_checkpoint", save)
    line = one_line_error(invoke(*args))
    monkeypatch.undo()
    assert "No space left on device" in line and "epoch_002.pt" in line
    run = the_run(tmp_path / "runs")
    assert status(run)["state"] == "running"  # could not be updated; the lock is gone, so a rerun takes over
    again = invoke(*args)
    assert again.exit_code == 0, again.output
    assert compared(run) == world["trained"]
