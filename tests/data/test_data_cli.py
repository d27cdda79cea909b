"""`repro data import | check | synth` through Click's CliRunner: exit codes and output."""

import json

import numpy as np
from click.testing import CliRunner
from data_helpers import write_images

from repro.cli import main


def test_synth_then_check(tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["data", "synth", str(tmp_path), "--preset", "busy", "--seed", "2", "--size", "16"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "synthetic-busy" / "contact_temporal.png").is_file()
    result = runner.invoke(main, ["data", "check", str(tmp_path), "synthetic-busy"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    types = np.load(tmp_path / "synthetic-busy" / "testing" / "anomaly_types.npy")
    assert summary["testing"]["frames"] == len(types) and summary["anomalous"] == int((types != 0).sum())
    again = runner.invoke(main, ["data", "synth", str(tmp_path), "--preset", "busy"])
    assert again.exit_code == 2 and "already exists" in again.output


def test_check_fails_with_the_reason(tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["data", "check", str(tmp_path), "ped2"])
    assert result.exit_code == 2 and "ped2 does not exist" in result.output
    write_images(tmp_path / "x" / "training" / "frames" / "01", 5)  # 5 frames: one prediction clip, 5 recon clips
    write_images(tmp_path / "x" / "testing" / "frames" / "01", 3)
    np.save(tmp_path / "labels.npy", np.zeros(4, np.int8))
    check = ["data", "check", str(tmp_path), "x", "--task", "recon"]
    result = runner.invoke(main, [*check, "--labels", str(tmp_path / "labels.npy")])
    assert result.exit_code == 2 and "holds 4 labels, longer than the 3 test frames" in result.output
    frame = tmp_path / "x" / "testing" / "frames" / "01" / "002.jpg"
    frame.write_bytes(frame.read_bytes()[:20])
    result = runner.invoke(main, check)
    assert result.exit_code == 2 and "truncated image" in result.output and "002.jpg" in result.output


def test_import_ucsd_then_check(tmp_path):
    src = tmp_path / "UCSDped2"
    write_images(src / "Train" / "Train001", 4, ext=".tif", first=1)  # 4 recon clips: one batch of 4
    write_images(src / "Test" / "Test001", 4, ext=".tif", first=1)
    (src / "UCSDped2.m").write_text("TestVideoFile{end+1}.gt_frame = [2:4];\n")
    runner = CliRunner()
    result = runner.invoke(main, ["data", "import", "ucsd", str(src), str(tmp_path / "out"), "--name", "ucsd-mini"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["data", "check", str(tmp_path / "out"), "ucsd-mini", "--task", "recon"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["anomalous"] == 3
