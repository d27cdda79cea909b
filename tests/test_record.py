"""The run's record: metrics.json read and written through one typed reader and one writer, byte for byte."""

import ast
import copy
import json
from pathlib import Path

import pytest
from fakes import metrics_record

import repro
from repro import claims, record, runs
from repro.grids import GridRun
from repro.record import RunMetrics
from repro.report import folder, results
from repro.runs import RunError, read_metrics, read_record, set_status, write_metrics
from repro.scoring import FrameMetrics

SCORES = {"auc": 0.75, "raw_auc": 0.7, "macro_auc": 0.8, "aupr": 0.6, "eer": 0.25}
MEMORY = {  # as MNAD writes it: ints stay ints, the method's own diagnostics beside the shared ones
    "counts": [5, 0, 3],
    "gamma": 0.015,
    "perplexity": 1.9,
    "frame_perplexity": 1.5,
    "constant_distance_videos": 0,
    "updated_frame_share": 0.25,
    "read_ablation": {"zeros": {"psnr_change": -0.5, "auc_change": -0.01}},
}
DOCUMENT = {
    "default": {"epoch": 2, "lambda": 0.6, **SCORES, "per_type": {"spatial": float("nan")}, "memory": MEMORY},
    "oracle": {"epoch": 1, "lambda": 1.0, **SCORES, "auc": 0.9},
    "epochs": {
        "1": {"lambdas": {"0": SCORES, "1": {**SCORES, "auc": 0.9}}},
        "2": {"lambdas": {"0.6": SCORES}, "per_type": {"spatial": float("nan")}, "memory": MEMORY},
    },
    "timings": {"train_seconds": 12.5, "evaluate_seconds": 3},
    "record": {"git_commit": None, "host": "h", "processes": 1},
}


def test_a_record_is_written_back_byte_for_byte(tmp_path):
    text = json.dumps(DOCUMENT, indent=2, sort_keys=True) + "\n"
    write_metrics(tmp_path, RunMetrics.from_json(json.loads(text)))
    assert (tmp_path / "metrics.json").read_text() == text
    record = read_record(tmp_path)
    assert record.default.memory.diagnostics["constant_distance_videos"] == 0 and record.epochs[2].lambdas["0.6"].auc
    assert read_metrics(tmp_path).keys() == DOCUMENT.keys()


def _changed(path: str, value=None) -> dict:
    """DOCUMENT with the key at the dotted `path` set to `value`, or removed if None."""
    document = copy.deepcopy(DOCUMENT)
    *parents, key = path.split(".")
    target = document
    for parent in parents:
        target = target[parent]
    if value is None:
        del target[key]
    else:
        target[key] = value
    return document


def test_the_scores_are_those_the_scoring_gives():
    assert SCORES.keys() == set(record.SCORES) and record.SCORES + record.LATER_SCORES == FrameMetrics._fields


def test_a_record_with_the_later_scores_and_the_deployable_score_is_written_back_byte_for_byte(tmp_path):
    later = {"macro_auc_padded": 0.85}
    deployable = {"auc": 0.7, "detection_rate": 0.4, "false_alarm_rate": 0.02, "threshold": 1.25}
    document = copy.deepcopy(DOCUMENT)
    document["default"] |= later | {"deployable": deployable}
    document["epochs"]["2"]["lambdas"]["0.6"] |= later
    text = json.dumps(document, indent=2, sort_keys=True) + "\n"
    write_metrics(tmp_path, RunMetrics.from_json(json.loads(text)))
    assert (tmp_path / "metrics.json").read_text() == text
    default = read_record(tmp_path).default
    assert default.scores.macro_auc_padded == 0.85 and default.deployable.false_alarm_rate == 0.02
    assert read_record(tmp_path).oracle.scores.macro_auc_padded is None  # an older record's selection still reads


@pytest.mark.parametrize(
    "document, named",
    [
        (_changed("default.auc"), "missing key default.auc"),
        (_changed("timings"), "missing key timings"),
        (_changed("default.memory.counts"), "missing key default.memory.counts"),
        (_changed("oracle.epoch", "1"), "oracle.epoch: expected an integer"),
        (_changed("epochs.1.lambdas.0.eer", "low"), "epochs.1.lambdas.0.eer: expected a number"),
        (_changed("default.memory.counts", {"0": 5}), "default.memory.counts: expected a list"),
        (_changed("default.surprise", 1), "unexpected key default.surprise"),
        (_changed("epochs.01", {"lambdas": {}}), "epochs.01: an epoch key must be an integer"),
        ([DOCUMENT], "expected an object, got list"),
    ],
)
def test_a_file_of_the_wrong_shape_is_one_line_naming_the_file_and_the_key(tmp_path, document, named):
    (tmp_path / "metrics.json").write_text(json.dumps(document))
    set_status(tmp_path, "done")
    with pytest.raises(RunError) as raised:
        read_record(tmp_path)
    message = str(raised.value)
    assert named in message and str(tmp_path / "metrics.json") in message and "\n" not in message
    assert not runs.is_finished(tmp_path)  # scored again from its signals by the next run of it


def test_every_reader_of_metrics_goes_through_the_one_reader(tmp_path, monkeypatch):
    """The file says AUC 0.9; the schema's parser is swapped for one that returns other numbers: every reader (the
    report rows, the claims' metrics, the memory figure, what `repro train` prints) shows the parser's."""
    on_disk = metrics_record({"epoch": 1, "lambda": 1.0, **SCORES, "auc": 0.9})
    parsed = metrics_record({"epoch": 3, "lambda": 0.5, **SCORES, "auc": 0.25, "memory": MEMORY})
    write_metrics(tmp_path, on_disk)
    monkeypatch.setattr(RunMetrics, "from_json", classmethod(lambda cls, data: parsed))
    assert read_metrics(tmp_path)["default"]["auc"] == 0.25
    assert (
        claims.CLAIM_METRICS["auc"].read(tmp_path) == 25.0 and claims.CLAIM_METRICS["perplexity"].read(tmp_path) == 1.9
    )
    rows = results.run_rows([GridRun({}, 0, None, folder=tmp_path)], runs.RunStore(tmp_path.parent))
    assert rows["auc"].tolist() == [0.25] and rows["zeros_psnr_change"].tolist() == [-0.5]
    drawn = []
    monkeypatch.setattr(folder, "memory_usage_histogram", lambda counts, *rest: drawn.append(counts.tolist()) or [])
    folder._memory(tmp_path, tmp_path / "out")
    assert drawn == [MEMORY["counts"]]


def _opens_metrics(path: Path) -> bool:
    """Whether a module builds the path `<folder> / "metrics.json"` outside a message (an f-string)."""
    tree = ast.parse(path.read_text())
    in_messages = {id(node) for text in ast.walk(tree) if isinstance(text, ast.JoinedStr) for node in ast.walk(text)}
    return any(
        isinstance(node, ast.BinOp)
        and isinstance(node.op, ast.Div)
        and isinstance(node.right, ast.Constant)
        and node.right.value == "metrics.json"
        and id(node) not in in_messages
        for node in ast.walk(tree)
    )


def test_only_the_run_store_opens_metrics_json():
    package = Path(repro.__file__).parent
    opening = [path.relative_to(package).as_posix() for path in sorted(package.rglob("*.py")) if _opens_metrics(path)]
    assert opening == ["runs.py"]
