"""The training loop's learning-rate schedule, read back from the run's train.jsonl."""

import json
import math

import pytest
import torch

from repro.config import load_config
from repro.pipeline import datasets
from repro.runs import RunStore
from repro.train import lr_schedule, train

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [("constant", [1e-4, 1e-4]), ("cosine", [1e-4 * (1 + math.cos(math.pi / 2)) / 2, 0.0])],
)
def test_the_logged_lr_of_two_epochs_follows_the_schedule(tmp_path, schedule, expected):
    cfg = load_config(
        "synthetic",
        [
            "data.preset=tiny",
            f"data.root={tmp_path / 'synthetic'}",
            "data.size=32",
            "model.name=ae3d",
            "model.ae3d.width=3",
            "train.epochs=2",
            "train.lr=1e-4",
            f"train.schedule={schedule}",
        ],
    )
    store = RunStore(tmp_path / "runs")
    run = store.prepare(cfg)
    train(cfg, run, datasets(cfg)[0], torch.device("cpu"), progress=False)
    logged = [json.loads(line)["lr"] for line in (run / "train.jsonl").read_text().splitlines()]
    assert logged == pytest.approx(expected, abs=1e-12)  # the lr after each epoch's step


def test_an_unknown_schedule_is_refused():
    optimizer = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=1e-4)
    with pytest.raises(ValueError, match="unknown train.schedule 'step'; allowed: cosine, constant"):
        lr_schedule(optimizer, "step", 2)
