"""The real user's path: the paper profile on a Ped2-format dataset (the published per-video test frame counts,
the published label file shipped with repro), with size, width and epochs overridden small."""

import shutil

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from repro.cli import main
from repro.config import load_config
from repro.data.labels import PUBLISHED, load_flat_labels, published_label_file
from repro.runs import list_runs, load_signals, read_metrics

pytestmark = pytest.mark.slow

PED2_TEST_FRAMES = PUBLISHED["ped2"][2]  # 180, 180, 150, ... (docs/data.md#labels)


@pytest.fixture(scope="module")
def ped2_root(tmp_path_factory):
    """<root>/ped2 in the canonical layout: 12 test videos 01..12 of the published lengths, 2 short training
    videos; 16x16 JPEGs whose brightness follows the published labels (anomalous frames brighter)."""
    root = tmp_path_factory.mktemp("datasets")
    labels = np.split(load_flat_labels(published_label_file("ped2")), np.cumsum(PED2_TEST_FRAMES)[:-1])
    rng = np.random.default_rng(0)
    videos = [("training", f"{v:02d}", np.zeros(12, np.int8)) for v in (1, 2)]
    videos += [("testing", f"{v + 1:02d}", label) for v, label in enumerate(labels)]
    for split, video, label in videos:
        folder = root / "ped2" / split / "frames" / video
        folder.mkdir(parents=True)
        for t, anomalous in enumerate(label):
            frame = rng.integers(0, 40, (16, 16, 3), dtype=np.uint8) + (120 if anomalous else 0)
            cv2.imwrite(str(folder / f"{t:03d}.jpg"), frame.astype(np.uint8))
    return root


def test_paper_profile_trains_and_evaluates_ped2_with_the_published_labels(ped2_root, tmp_path):
    small = [
        "data.size=16",
        "model.mnad.width=2",
        "train.epochs=1",
        "train.checkpoint_every=1",
        "data.labels=published",
        "exec.threads=1",
    ]  # one thread: tiny per-frame steps crawl when threads wait on busy cores
    args = ["train", "--profile", "paper", "--data", str(ped2_root), "--dataset", "ped2", "--runs", str(tmp_path)]
    result = CliRunner().invoke(main, [*args, *(x for s in small for x in ("--set", s))], catch_exceptions=False)
    assert result.exit_code == 0, result.output

    ((name, cfg, state),) = list_runs(tmp_path)
    paper = load_config("paper")
    assert (
        state == "done"
        and cfg.model.mnad.task == "pred"
        and cfg.eval.mnad.lambda_score == 0.6
        and cfg.eval.mnad.gamma == 0.01
    )
    assert (cfg.train.lr, cfg.model.mnad.compactness, cfg.model.mnad.num_items) == (paper.train.lr, 0.1, 10)
    signals = load_signals(tmp_path / name, 1)
    # Labels are split per video, and prediction scores each video from its 5th frame on
    # (docs/method.md#scoring-and-evaluation).
    expected_video = np.concatenate([np.full(n - 4, v) for v, n in enumerate(PED2_TEST_FRAMES)])
    expected_frame = np.concatenate([np.arange(4, n) for n in PED2_TEST_FRAMES])
    np.testing.assert_array_equal(signals["video"], expected_video)
    np.testing.assert_array_equal(signals["frame"], expected_frame)
    published = np.split(load_flat_labels(published_label_file("ped2")), np.cumsum(PED2_TEST_FRAMES)[:-1])
    np.testing.assert_array_equal(signals["label"], np.concatenate([label[4:] for label in published]))
    assert len(signals["label"]) == 2010 - 4 * 12
    assert signals["label"].sum() == 1648 - 4 * 7  # 7 of the 12 videos open with anomalous frames
    metrics = read_metrics(tmp_path / name)["default"]
    assert metrics["lambda"] == 0.6 and 0 <= metrics["auc"] <= 1 and np.isfinite(metrics["auc"])
    assert "per_type" not in metrics  # real data: no anomaly types


def test_a_ped2_video_of_the_wrong_length_is_named(ped2_root, tmp_path):
    root = tmp_path / "short"
    shutil.copytree(ped2_root, root)
    (root / "ped2" / "testing" / "frames" / "03" / "149.jpg").unlink()
    args = [
        "train",
        "--profile",
        "paper",
        "--data",
        str(root),
        "--dataset",
        "ped2",
        "--runs",
        str(tmp_path / "runs"),
        "--set",
        "data.size=16",
        "--set",
        "data.labels=published",
    ]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 2
    assert "ped2 test video 03 has 149 frames; the published labels expect 150" in result.output
