"""`repro score`: a tiny trained run scores generated footage with a planted anomaly (docs/footage.md)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from repro.calibration import calibrated_score, detection_rates, fit_calibration, read_calibration
from repro.cli import main
from repro.data.synthetic import background, preset, render_video
from repro.footage import find_footage, score_footage
from repro.models.method import ErrorSignals
from repro.models.mnad import MNADSignals
from repro.pipeline import train_run
from repro.runs import load_signals, read_record

SIZE = 32
PLANTED = range(30, 42)  # frames of the planted anomaly


def tiny_run(runs: Path, data: Path, *overrides: str) -> Path:
    settings = [
        "data.name=synthetic",
        "data.preset=tiny",
        f"data.root={data}",
        f"data.size={SIZE}",
        "train.epochs=2",
        "train.checkpoint_every=1",
        "train.lr=0.01",
        "exec.threads=1",
        "exec.device=cpu",
        *(overrides or ["model.mnad.width=4"]),
    ]
    return train_run(None, settings, runs).folder


def normal_frames(length: int, seed: int) -> np.ndarray:
    """(length, SIZE, SIZE, 3) uint8: the tiny world's normal motion, a video it never trained on."""
    spec = preset("tiny")
    base = background(spec.scenes[0], SIZE, np.random.default_rng(seed))
    return render_video(np.zeros(length, np.int8), spec, spec.scenes[0], base, np.random.default_rng(seed))


def with_planted_anomaly(frames: np.ndarray) -> np.ndarray:
    """A bright square moving four times the normal speed over the frames of PLANTED."""
    frames = frames.copy()
    for step, t in enumerate(PLANTED):
        x = 2 + (6 * step) % (SIZE - 8)
        frames[t, 12:20, x : x + 8] = 255
    return frames


def write_mp4(path: Path, frames: np.ndarray) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (SIZE, SIZE))
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def write_frame_folder(folder: Path, frames: np.ndarray) -> Path:
    folder.mkdir(parents=True)
    for t, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"{t:03d}.png"), frame)
    return folder


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("footage")
    return tiny_run(root / "runs", root / "data")


def mp4_frames(path: Path) -> int:
    capture, count = cv2.VideoCapture(str(path)), 0
    while capture.read()[0]:
        count += 1
    capture.release()
    return count


def test_the_planted_anomaly_scores_highest_and_is_flagged(trained, tmp_path):
    video = write_mp4(tmp_path / "street.mp4", with_planted_anomaly(normal_frames(60, seed=7)))
    result = score_footage(trained, video, tmp_path / "out", progress=False)
    scores, flagged = result.scores["street"], result.flagged["street"]
    assert scores.shape == (60,) and np.isnan(scores[:4]).all()  # MNAD pred scores from the 5th frame
    top = np.argsort(np.nan_to_num(scores, nan=-np.inf))[-len(PLANTED) // 2 :]
    assert set(top) <= set(PLANTED), f"highest scores at {sorted(top)}, the anomaly at {list(PLANTED)}"
    assert flagged[list(PLANTED)].mean() >= 0.5
    outside = np.setdiff1d(np.arange(4, 60), PLANTED)
    assert flagged[outside].mean() <= 0.1
    # the files: one CSV row and one MP4 frame per input frame
    paths = result.paths["street"]
    rows = paths["csv"].read_text().splitlines()
    assert rows[0] == "frame,score,flagged" and len(rows) == 61
    assert [int(row.split(",")[2]) for row in rows[1:]] == flagged.astype(int).tolist()
    np.testing.assert_array_equal(np.load(paths["npy"]), scores)
    assert mp4_frames(paths["mp4"]) == 60 and paths["png"].stat().st_size > 0
    assert result.frames_per_second > 0


def test_a_fully_normal_video_flags_about_the_declared_rate(trained, tmp_path):
    folder = write_frame_folder(tmp_path / "clips" / "quiet", normal_frames(200, seed=11))
    result = score_footage(trained, tmp_path / "clips", tmp_path / "out", video=False, progress=False)
    calibration = read_calibration(trained)
    assert calibration is not None and calibration.false_alarm_rate == 0.01
    assert result.flagged["quiet"].mean() <= 0.05, result.scores["quiet"]
    assert find_footage(folder)[0].name == "quiet"


def test_streaming_and_batches_give_the_same_scores(trained, tmp_path):
    # without the test-time update MNAD scores batches of eval.batch_size windows (with it, one frame at a time)
    run = tiny_run(
        trained.parent, trained.parent.parent / "data", "model.mnad.width=4", "eval.mnad.test_time_update=false"
    )
    video = write_mp4(tmp_path / "street.mp4", with_planted_anomaly(normal_frames(48, seed=3)))
    batch = score_footage(run, video, tmp_path / "batch", video=False, progress=False)
    assert batch.calibration.options["test_time_update"] is False
    stream = score_footage(run, video, tmp_path / "stream", stream=True, video=False, progress=False)
    # the same up to float32 rounding (a convolution over 8 windows sums in another order than over 1)
    np.testing.assert_allclose(stream.scores["street"], batch.scores["street"], atol=1e-5, equal_nan=True)
    np.testing.assert_array_equal(stream.flagged["street"], batch.flagged["street"])
    assert stream.latency_ms["median"] > 0


def test_a_calibration_normalises_each_term_by_its_range_on_normal_frames():
    normal = MNADSignals(psnr=np.array([30.0, 32.0, 34.0]), regular=None, distance=np.array([0.1, 0.2, 0.3]))
    calibration = fit_calibration(normal, 0.6, 0.5, epoch=1, source="test", options={})
    # λ g(-PSNR) + (1 - λ) g(distance) with g the min-max of the normal frames
    new = MNADSignals(psnr=np.array([34.0, 26.0]), regular=None, distance=np.array([0.1, 0.5]))
    np.testing.assert_allclose(calibrated_score(new, calibration.terms), [0.0, 0.6 * 2 + 0.4 * 2])
    assert calibration.threshold == pytest.approx(0.5)  # the median of the normal scores 1, 0.5, 0
    errors = ErrorSignals(error=np.array([1.0, 2.0, 3.0, 4.0]))
    detected, false_alarms = detection_rates(errors.error, np.array([0, 0, 1, 1]), 2.5)
    assert (detected, false_alarms) == (1.0, 0.0)


def test_the_cli_scores_footage_and_says_how_fast(trained, tmp_path):
    video = write_mp4(tmp_path / "street.mp4", normal_frames(20, seed=5))
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["score", str(trained), str(video), "--out", str(out), "--no-video"])
    assert result.exit_code == 0, result.output
    assert "frames per second" in result.output and (out / "street.csv").exists()
    missing = CliRunner().invoke(main, ["score", str(trained), str(tmp_path / "nothing.mp4")])
    assert missing.exit_code == 2 and "does not exist" in missing.output


def test_a_finished_run_stores_its_calibration_and_reports_the_deployable_score(trained):
    calibration = read_calibration(trained)  # written when the run finished, before any footage was scored
    default = read_record(trained).default
    assert calibration.epoch == default.epoch and calibration.source.startswith("the run's training split")
    arrays = load_signals(trained, default.epoch)
    scores = calibrated_score(MNADSignals(arrays["psnr"], arrays["regular"], arrays["distance"]), calibration.terms)
    flagged = scores > calibration.threshold
    labels = arrays["label"].astype(bool)
    assert default.deployable.detection_rate == pytest.approx(flagged[labels].mean())
    assert default.deployable.false_alarm_rate == pytest.approx(flagged[~labels].mean())
    assert 0.5 < default.deployable.auc <= 1 and default.scores.macro_auc_padded is not None


def test_a_held_out_share_is_left_out_of_training_and_calibrated_on(tmp_path):
    from repro.config import config_hash, load_config
    from repro.pipeline import calibration_clips, datasets

    settings = ["data.name=synthetic", "data.preset=tiny", f"data.root={tmp_path}", f"data.size={SIZE}"]
    plain, held = load_config(None, settings), load_config(None, [*settings, "data.calibration_share=0.25"])
    assert config_hash(plain) == config_hash(load_config(None, [*settings, "data.calibration_share=0"]))
    assert config_hash(held) != config_hash(plain)  # it trains on fewer frames: another run
    training, calibration = datasets(held)[0], calibration_clips(held)
    # tiny: 2 training videos of 40 frames; the last 10 of each are held out; MNAD pred windows of 5 frames
    assert len(datasets(plain)[0]) == 2 * 36 and len(training) == 2 * 26 and len(calibration) == 2 * 6
    assert training.item_frame.max() == 29 and calibration.salt_pepper == 0


def test_a_baseline_with_a_centred_window_scores_footage_too(tmp_path):
    run = tiny_run(tmp_path / "runs", tmp_path / "data", "model.name=memae", "data.grayscale=true")
    video = write_mp4(tmp_path / "street.mp4", with_planted_anomaly(normal_frames(60, seed=7)))
    result = score_footage(run, video, tmp_path / "out", progress=False)
    scores = result.scores["street"]
    # MemAE's 16-frame window scores its 9th frame: the first 8 and the last 7 frames have no score
    assert np.isnan(scores[:8]).all() and np.isnan(scores[-7:]).all() and np.isfinite(scores[8:-7]).all()
    assert np.nanargmax(scores) in PLANTED
    assert mp4_frames(result.paths["street"]["mp4"]) == 60
