import json

from click.testing import CliRunner

from repro.cli import main


def test_bench_prints_one_json_object_with_throughputs():
    result = CliRunner().invoke(main, ["bench", "--size", "32", "--width", "4", "--batch", "2", "--seconds", "0"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.output)
    assert record["size"] == 32 and record["width"] == 4 and record["batch"] == 2
    for key in ("train_fps", "eval_fps", "eval_fps_no_update"):
        assert record[key] > 0
    assert abs(record["ped2_epoch_seconds"] - 2550 / record["train_fps"]) < 0.1  # Ped2: 2,550 training frames
    assert record["compiled"] is False


def test_bench_rejects_a_size_not_divisible_by_8():
    result = CliRunner().invoke(main, ["bench", "--size", "30"])
    assert result.exit_code == 2
    assert "not divisible by 8" in result.output
