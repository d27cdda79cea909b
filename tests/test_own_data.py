"""A user's own footage end to end through the CLI: videos -> `data import videos` -> train -> report; runs
keep to their own data (relative paths, edited labels); bad input is one line with exit code 2."""

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from repro.cli import main
from repro.runs import list_runs, load_signals, read_metrics

pytestmark = pytest.mark.slow

TRAIN, TEST = (14, 12), (13, 15)  # frames per video
SMALL = [
    "--set",
    "data.size=16",
    "--set",
    "model.mnad.width=4",
    "--set",
    "train.epochs=1",
    "--set",
    "train.checkpoint_every=1",
    "--set",
    "exec.threads=1",
]


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def write_video(path: Path, frames: int, seed: int) -> None:
    """An MJPG .avi of 16x16 noise with a bright square moving right."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (16, 16))
    rng = np.random.default_rng(seed)
    for t in range(frames):
        frame = rng.integers(0, 60, (16, 16, 3), dtype=np.uint8)
        frame[6:10, t % 12 : t % 12 + 4] = 255
        writer.write(frame)
    writer.release()


@pytest.fixture(scope="module")
def footage(tmp_path_factory):
    """A folder of videos as a user has it: training/*.avi, testing/*.avi, and a flat label file."""
    src = tmp_path_factory.mktemp("footage")
    for split, counts in (("training", TRAIN), ("testing", TEST)):
        for v, count in enumerate(counts):
            write_video(src / split / f"cam{v + 1}.avi", count, seed=v + (10 if split == "testing" else 0))
    labels = np.zeros(sum(TEST), np.int8)
    labels[[5, 6, 7, 8, 20, 21, 22, 23, 24]] = 1
    np.save(src / "labels.npy", labels)
    return src


@pytest.fixture(scope="module")
def campus(footage, tmp_path_factory):
    """`repro data import videos` of the footage into <root>/campus, plus anomaly types of two codes."""
    root = tmp_path_factory.mktemp("data")
    result = invoke("data", "import", "videos", footage, root, "--name", "campus", "--labels", footage / "labels.npy")
    assert result.exit_code == 0, result.output
    labels = np.load(root / "campus" / "testing" / "labels.npy")
    np.save(root / "campus" / "testing" / "anomaly_types.npy", (labels * np.r_[np.full(13, 1), np.full(15, 7)]))
    return root


def test_import_videos_writes_the_canonical_layout(campus, footage):
    frames = campus / "campus" / "testing" / "frames"
    assert sorted(p.name for p in frames.iterdir()) == ["cam1", "cam2"]
    assert [len(list((frames / v).glob("*.jpg"))) for v in ("cam1", "cam2")] == list(TEST)
    assert (frames / "cam1" / "000.jpg").is_file() and (frames / "cam2" / "014.jpg").is_file()
    imported = np.load(campus / "campus" / "testing" / "labels.npy")
    np.testing.assert_array_equal(imported, np.load(footage / "labels.npy"))
    check = invoke("data", "check", campus, "campus", "--size", "16")
    assert check.exit_code == 0 and '"anomalous": 9' in check.output and '"digest"' in check.output


def test_campus_trains_evaluates_and_appears_in_a_table_report(campus, tmp_path):
    declaration = tmp_path / "mine.toml"
    declaration.write_text(
        'name = "mine"\nquestion = "Does prediction work on my footage?"\n'
        'datasets = ["campus"]\n[stand_ins]\n[models]\n"Pred w/ Mem" = ["model.mnad.task=pred"]\n'
    )
    result = invoke(
        "sweep",
        declaration,
        "--seeds",
        1,
        "--data",
        campus,
        "--runs",
        tmp_path / "runs",
        "--out",
        tmp_path / "report",
        *SMALL,
    )
    assert result.exit_code == 0, result.output
    ((name, cfg, state),) = list_runs(tmp_path / "runs")
    assert state == "done" and cfg.data.name == "campus" and cfg.data.root == str(campus.resolve())
    default = read_metrics(tmp_path / "runs" / name)["default"]
    assert 0 <= default["auc"] <= 1
    assert set(default["per_type"]) == {"spatial", "type_7"}  # codes 1 and 7 of anomaly_types.npy
    signals = load_signals(tmp_path / "runs" / name, 1)
    assert len(signals["label"]) == sum(t - 4 for t in TEST)  # prediction scores from each video's 5th frame
    table = (tmp_path / "report" / "mine.md").read_text()
    assert "campus" in table and f"{100 * default['auc']:.2f}" in table


def test_ablate_runs_on_campus(campus, tmp_path):
    result = invoke(
        "ablate",
        "--data",
        campus,
        "--dataset",
        "campus",
        "--no-memory",
        "--seeds",
        "1",
        "--runs",
        tmp_path / "runs",
        "--out",
        tmp_path / "report",
        "--jobs",
        "1",
        *SMALL,
    )
    assert result.exit_code == 0, result.output
    runs = list_runs(tmp_path / "runs")
    assert sorted(cfg.model.mnad.memory for _, cfg, _ in runs) == [False, True]
    assert all(cfg.data.name == "campus" and state == "done" for _, cfg, state in runs)
    assert "no-memory" in (tmp_path / "report" / "comparison.md").read_text()


def test_relative_data_from_two_folders_gives_two_runs_with_their_own_metrics(campus, tmp_path, monkeypatch):
    for place, invert in (("a", False), ("b", True)):  # b: the same frames, the labels inverted
        shutil.copytree(campus, tmp_path / place / "data")
        labels = tmp_path / place / "data" / "campus" / "testing" / "labels.npy"
        np.save(labels, 1 - np.load(labels) if invert else np.load(labels))
        monkeypatch.chdir(tmp_path / place)
        result = invoke("train", "--data", "data", "--dataset", "campus", "--runs", tmp_path / "runs", *SMALL)
        assert result.exit_code == 0, result.output
    runs = {cfg.data.root: name for name, cfg, _ in list_runs(tmp_path / "runs")}
    assert sorted(runs) == [str(tmp_path / "a" / "data"), str(tmp_path / "b" / "data")]
    aucs = [read_metrics(tmp_path / "runs" / runs[root])["default"]["auc"] for root in sorted(runs)]
    assert aucs[0] + aucs[1] == pytest.approx(1.0)  # the same scores against inverted labels: each its own


def test_editing_the_label_file_makes_a_new_run(campus, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(campus, root)
    args = ("train", "--data", root, "--dataset", "campus", "--runs", tmp_path / "runs", *SMALL)
    assert invoke(*args).exit_code == 0
    labels = root / "campus" / "testing" / "labels.npy"
    np.save(labels, 1 - np.load(labels))
    assert invoke(*args).exit_code == 0
    runs = list_runs(tmp_path / "runs")
    assert len(runs) == 2
    aucs = [read_metrics(tmp_path / "runs" / name)["default"]["auc"] for name, _, _ in runs]
    assert sum(aucs) == pytest.approx(1.0)


def one_line_error(result, *fragments):
    """Exit code 2 and one `Error:` line (the last; a progress bar may come before it), no traceback."""
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and result.output.rstrip().endswith(errors[0]), result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in errors[0]


def test_bad_input_is_one_line_and_exit_code_2(campus, footage, tmp_path):
    root = tmp_path / "broken"
    shutil.copytree(campus, root)
    train = ("train", "--data", root, "--dataset", "campus", "--runs", tmp_path / "runs", *SMALL)
    np.save(root / "campus" / "testing" / "labels.npy", np.zeros(sum(TEST) - 1, np.int8))
    one_line_error(invoke(*train), "holds 27 labels, shorter than the 28 test frames of 2 videos (cam1..cam2)")
    (root / "campus" / "testing" / "labels.npy").unlink()
    one_line_error(invoke(*train), "missing label file", "labels.npy", "data.labels=FILE")
    (root / "campus" / "training" / "frames" / "cam3").mkdir()
    one_line_error(invoke(*train), "empty video", "cam3")

    src = tmp_path / "videos"
    shutil.copytree(footage, src)
    (src / "testing" / "cam3.mp4").write_bytes(b"not a video at all" * 100)
    one_line_error(invoke("data", "import", "videos", src, tmp_path / "out", "--name", "campus"), "cam3.mp4")
    one_line_error(invoke("data", "import", "videos", src, tmp_path / "out"), "needs --name")
