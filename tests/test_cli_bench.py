import json

import pytest
from click.testing import CliRunner

from repro.cli import main


def test_bench_prints_one_json_object_with_throughputs():
    result = CliRunner().invoke(main, ["bench", "--size", "32", "--width", "4", "--batch", "2", "--seconds", "0"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.output)
    assert record["size"] == 32 and record["model"] == "mnad (pred, with memory)" and record["batch"] == 2
    for key in ("train_fps", "eval_fps", "eval_fps_no_update"):
        assert record[key] > 0
    assert record["ped2_epoch_seconds"] == pytest.approx(2550 / record["train_fps"], rel=1e-2)  # Ped2: 2,550 frames
    assert record["compiled"] is False


def test_bench_rejects_a_size_not_divisible_by_8():
    result = CliRunner().invoke(main, ["bench", "--size", "30"])
    assert result.exit_code == 2
    assert "data.size=30: MNAD pools three times" in result.output


def test_bench_times_a_baseline_without_a_test_time_update():
    result = CliRunner().invoke(
        main, ["bench", "--model", "convlstm", "--size", "16", "--batch", "1", "--seconds", "0"]
    )
    assert result.exit_code == 0, result.output
    record = json.loads(result.output)
    assert record["model"] == "convlstm" and record["eval_fps"] is None and record["train_fps"] > 0
