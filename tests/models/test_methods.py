"""The method protocol: every registered method goes through the same build, training step, evaluation,
typed signals and scores; a new method is one file plus one registry line (shown with a toy, not shipped)."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from repro.config import load_config
from repro.evaluate import evaluate_model
from repro.models.method import signals_from_arrays
from repro.models.registry import METHODS
from repro.train import build_model, train_step

TINY = {  # small settings per method, so that each builds and steps in a second
    "mnad": ["model.mnad.width=4"],
    "memae": ["model.memae.width=6", "model.memae.num_items=20"],
    "ae3d": ["model.ae3d.width=6"],
    "convlstm": [],
}
SIZE = 32


class Clips(torch.utils.data.Dataset):
    """Two videos of random clips in the data layer's format for a method's clip layout."""

    def __init__(self, layout, per_video=3):
        g = torch.Generator().manual_seed(0)
        target_frames = 1 if layout.predict else layout.in_frames
        self.items = [
            {
                "input": torch.rand(layout.in_frames, 3, SIZE, SIZE, generator=g) * 2 - 1,
                "target": torch.rand(target_frames, 3, SIZE, SIZE, generator=g) * 2 - 1,
                "video": video,
                "frame": i,
                "label": int(i == 2),
                "anomaly_type": 0,
            }
            for video in range(2)
            for i in range(per_video)
        ]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        return self.items[index]


def test_every_method_is_registered_with_its_own_settings_section():
    assert list(METHODS) == ["mnad", "memae", "ae3d", "convlstm"]
    assert set(TINY) == set(METHODS)  # a new method must be added to this test's table too
    cfg = load_config()
    for name, method in METHODS.items():
        assert isinstance(getattr(cfg.model, name), method.Settings)


@pytest.mark.parametrize("name", list(METHODS))
def test_each_method_builds_trains_evaluates_and_scores_through_the_protocol(name):
    cfg = load_config(None, [f"model.name={name}", f"data.size={SIZE}", *TINY[name]])
    method = cfg.model.method
    model = build_model(cfg)
    data = Clips(method.layout(cfg.model.settings))
    batch = torch.utils.data.default_collate([data[0], data[1]])
    inputs, target = method.to_input(batch["input"]), method.to_target(batch["target"])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    before = [p.detach().clone() for p in model.parameters()]
    terms = train_step(method, model, optimizer, inputs, target)
    assert torch.isfinite(terms["total"]) and terms["pixel"] > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))  # the step moved the weights

    arrays = evaluate_model(
        model, method, data, torch.device("cpu"), test_time_update=True, gamma=0.01, batch_size=4, progress=False
    )
    signals = signals_from_arrays(method.Signals, arrays)
    assert isinstance(signals, method.Signals)
    for value in signals:
        assert value is None or (value.shape == (len(data),) and np.isfinite(value).all())
    assert arrays["video"].tolist() == [0, 0, 0, 1, 1, 1]
    scores = signals.score(arrays["video"], signals.default_lambda(cfg.eval.mnad.lambda_score))
    assert scores.shape == (len(data),) and scores.min() == 0.0 and scores.max() == 1.0  # min-max per video
    assert method.scored_frame(target).shape == (2, 3, SIZE, SIZE)


TOY_METHOD = '''
    """A toy method, one file: a per-frame conv autoencoder scored by its mean squared error."""
    from dataclasses import dataclass
    from typing import ClassVar

    from torch import nn

    from repro.models.method import ClipLayout, ErrorSignals, Method
    from repro.models.output import ModelOutput
    from repro.settings import AT_LEAST_ONE, Validated, setting


    @dataclass(frozen=True)
    class ToySettings(Validated):
        prefix: ClassVar[str] = "model.toy."
        width: int = setting(4, "Hidden channels.", AT_LEAST_ONE)


    class Toy(nn.Module):
        def __init__(self, channels, width):
            super().__init__()
            self.net = nn.Sequential(nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(),
                                     nn.Conv2d(width, channels, 3, padding=1), nn.Tanh())

        def forward(self, x):
            return ModelOutput(self.net(x))


    class ToyMethod(Method):
        name = "toy"
        help = "A toy per-frame autoencoder."
        Settings = ToySettings

        def build(self, settings, channels, size):
            return Toy(channels, settings.width)

        def layout(self, settings):
            return ClipLayout(1, False, 0)

        def to_input(self, clips):
            return clips[:, 0]

        def to_target(self, clips):
            return clips[:, 0]

        def scored_frame(self, output):
            return output

        def frame_signals(self, model, result, target):
            return ErrorSignals(((result.output - target) ** 2).flatten(1).mean(dim=1))
'''


@pytest.mark.slow
def test_a_toy_method_is_one_file_plus_one_registry_line(tmp_path):
    (tmp_path / "toy_method.py").write_text(textwrap.dedent(TOY_METHOD))
    script = tmp_path / "run_toy.py"
    script.write_text(
        textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, r"{tmp_path}")
        import toy_method
        from repro.models import registry
        registry.METHODS["toy"] = toy_method.ToyMethod()  # the one registry line

        from repro.config import load_config
        from repro.pipeline import execute_run
        from repro.runs import RunStore, read_metrics

        cfg = load_config(None, ["model.name=toy", "model.toy.width=3", "data.preset=tiny", "data.size=32",
                                 "data.root={tmp_path / "synthetic"}", "train.epochs=1", "train.checkpoint_every=1"])
        run = execute_run(cfg, RunStore(r"{tmp_path / "runs"}"), progress=False)
        print(json.dumps(read_metrics(run)["default"]))
    """)
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = __import__("json").loads(done.stdout.strip().splitlines()[-1])
    assert 0 <= metrics["auc"] <= 1 and metrics["lambda"] == 1.0
    assert set(metrics["per_type"]) == {"spatial", "temporal", "spatio_temporal"}
