"""The method protocol is wide enough for a method unlike MNAD: one written here (not shipped), with its own
optimiser (SGD with momentum), an inner training loop (two steps per batch) and test-time adaptation by gradient
(steps on each test video's clips before they are scored), registered without editing repro/, then trained,
evaluated and judged by a claim through the normal verbs."""

import ast
import csv
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from einops import rearrange
from torch import nn

import repro
from repro import config
from repro.claims import claim_runs, load_claims
from repro.cli import main
from repro.config import load_config
from repro.evaluate import evaluate_model
from repro.models import registry
from repro.models.memae import MemAE
from repro.models.method import ClipLayout, ErrorSignals, MemoryItems, Method
from repro.models.mnad import MNAD, MNADMethod
from repro.models.output import ModelOutput
from repro.pipeline import datasets
from repro.runs import RunStore, checkpoints, list_runs, load_checkpoint, load_signals
from repro.settings import AT_LEAST_ONE, NON_NEGATIVE, POSITIVE, Validated, setting
from repro.train import _resume, build_model


@dataclass(frozen=True)
class AdaptingSettings(Validated):
    prefix: ClassVar[str] = "model.adapting."
    width: int = setting(4, "Channels of the hidden layer.", AT_LEAST_ONE)
    inner_steps: int = setting(2, "Optimiser steps per training batch.", AT_LEAST_ONE)
    momentum: float = setting(0.9, "SGD momentum.", NON_NEGATIVE)


@dataclass(frozen=True)
class AdaptingEvalSettings(Validated):
    prefix: ClassVar[str] = "eval.adapting."
    adapt_steps: int = setting(1, "Gradient steps on each test video's clips before they are scored.", NON_NEGATIVE)
    adapt_lr: float = setting(0.05, "Learning rate of the test-time steps.", POSITIVE)


class TinyAutoencoder(nn.Module):
    """(b, c, h, w) -> ModelOutput((b, c, h, w) in [-1, 1])."""

    def __init__(self, channels: int, width: int) -> None:
        super().__init__()
        self.encode = nn.Conv2d(channels, width, 3, padding=1)
        self.decode = nn.Conv2d(width, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        return ModelOutput(torch.tanh(self.decode(torch.relu(self.encode(x)))))


class AdaptingMethod(Method):
    name = "adapting"
    help = "A test method: SGD, an inner loop, test-time adaptation per video."
    Settings = AdaptingSettings
    EvalSettings = AdaptingEvalSettings
    adapts_at_test_time = True

    def __init__(self) -> None:
        self.inner_steps_taken = 0
        self.videos_adapted = 0

    def build(self, settings, channels, size):
        return TinyAutoencoder(channels, settings.width)

    def reads_eval(self, settings):
        return ("batch_size", "adapt_steps", "adapt_lr")

    def layout(self, settings):
        return ClipLayout(1, False, 0)

    def to_input(self, clips):
        return rearrange(clips, "b t c h w -> b (t c) h w")

    to_target = to_input

    def scored_frame(self, output):
        return output

    def optimizer(self, model, settings, lr):
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=settings.momentum)

    def train_step(self, model, optimizer, inputs, target, precision="fp32", scaler=None, observe=None, settings=None):
        for _ in range(settings.inner_steps):
            terms = super().train_step(model, optimizer, inputs, target, precision, scaler, observe)
            self.inner_steps_taken += 1
        return terms

    def adapt_to_video(self, model, clips, evaluation):
        optimizer = torch.optim.SGD(model.parameters(), lr=evaluation.adapt_lr)
        for _ in range(evaluation.adapt_steps):
            for inputs, target in clips:
                optimizer.zero_grad()
                F.mse_loss(model(inputs).output, target).backward()
                optimizer.step()
        self.videos_adapted += 1

    def frame_signals(self, model, result, target):
        return ErrorSignals((result.output.float() - target.float()).square().mean(dim=(1, 2, 3)))


@pytest.fixture
def adapting(tmp_path):
    method = registry.register(AdaptingMethod())
    yield method
    registry.unregister(method.name)


def tiny(data_root: Path) -> list[str]:
    return [
        "data.preset=tiny",
        f"data.root={data_root}",
        "data.size=32",
        "train.epochs=2",
        "train.checkpoint_every=1",
        "train.lr=0.01",
        "exec.threads=1",
    ]


CLAIM = """[plan]
looks = [3]
[stand_ins]
ped2 = "tiny"

[[claim]]
id = "adaptation-helps"
source = "test"
quote = "a test claim of the protocol, no source"
statement = "a gradient step on each test video before scoring it changes the detection"
dataset = "ped2"
metric = "auc"
direction = "higher"
change = ["eval.adapting.adapt_steps"]
control = ["model.name=adapting", "eval.adapting.adapt_steps=0"]
treatment = ["model.name=adapting", "eval.adapting.adapt_steps=1"]
"""


def test_both_memories_implement_the_declared_memory_protocol():
    mnad, memae = MNAD(width=2), MemAE(width=3, num_items=5)
    assert isinstance(mnad.memory, MemoryItems) and isinstance(memae.memory, MemoryItems)
    assert MNADMethod().state_memory(mnad) is mnad.memory
    with memae.memory.scratch():
        memae.memory.items.data.zero_()
    assert memae.memory.items.abs().sum() > 0  # the scratch block undid the change


@pytest.mark.slow
def test_a_method_with_its_own_optimiser_inner_loop_and_adaptation_runs_through_the_verbs(tmp_path, adapting):
    settings, runs = tiny(tmp_path / "synthetic"), tmp_path / "runs"
    sets = [a for s in ["model.name=adapting", *settings] for a in ("--set", s)]
    result = CliRunner().invoke(main, ["train", *sets, "--runs", str(runs), "--device", "cpu"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    (run,) = [runs / name for name, _, state in list_runs(runs) if state == "done"]
    cfg = load_config(run / "config.toml")
    assert cfg.model.name == "adapting" and cfg.method_eval == AdaptingEvalSettings()

    # the inner loop: two optimiser steps per batch
    training, testing = datasets(cfg)
    batches = cfg.train.epochs * (len(training) // cfg.train.batch_size)  # drop_last
    assert adapting.inner_steps_taken == 2 * batches

    # the custom optimiser's state is in the checkpoint, and a resumed run gets it back
    (last_epoch, last), *_ = reversed(checkpoints(run))
    saved = load_checkpoint(last)["optimizer"]
    assert saved["param_groups"][0]["momentum"] == 0.9
    assert all("momentum_buffer" in state for state in saved["state"].values()) and saved["state"]
    model = build_model(cfg)
    optimizer = adapting.optimizer(model, cfg.model.settings, cfg.train.lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.train.epochs)
    assert _resume(run, model, optimizer, scheduler, torch.amp.GradScaler("cpu", enabled=False)) == 2
    first = next(iter(optimizer.state.values()))["momentum_buffer"]
    torch.testing.assert_close(first, saved["state"][0]["momentum_buffer"])

    # each test video was adapted before it was scored, from the trained weights (restored afterwards)
    testing_videos = len(set(load_signals(run, last_epoch)["video"].tolist()))
    # two evaluated checkpoints, and the calibration of the last, which scores the training videos as a test set
    assert adapting.videos_adapted == 2 * testing_videos + len(training.video_frames)
    scores = {}
    for steps in (0, 1):
        scores[steps] = evaluate_model(
            model, adapting, testing, torch.device("cpu"), evaluation=AdaptingEvalSettings(adapt_steps=steps)
        )
        torch.testing.assert_close(model.state_dict(), load_checkpoint(last)["model"])  # the trained weights back
    assert not (scores[0]["error"] == scores[1]["error"]).all()

    # a claim compares it with the same checkpoints scored without adaptation, through `repro claims`
    path, out = tmp_path / "claims.toml", tmp_path / "report"
    path.write_text(CLAIM)
    sets = [a for s in settings for a in ("--set", s)]
    arguments = ["claims", str(path), "--runs", str(runs), "--out", str(out), "--jobs", "1", *sets]
    result = CliRunner().invoke(main, arguments, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    (row,) = csv.DictReader((out / "claims.csv").open())
    assert row["id"] == "adaptation-helps" and row["verdict"] and row["n"] == "3", row

    grid = claim_runs(load_claims(path), "synthetic", None, tuple(settings))
    store = RunStore(runs)
    arms = {arm: [store.run_dir(r.config) for r in grid if r.labels["arm"] == arm] for arm in ("control", "treatment")}
    for control, treatment in zip(arms["control"], arms["treatment"]):
        assert [e for e, _ in checkpoints(control)] == [e for e, _ in checkpoints(treatment)]  # shared training
        adapted, plain = (load_signals(run, 2)["error"] for run in (treatment, control))
        assert adapted.shape == plain.shape and not (adapted == plain).all()  # the adaptation changed the scores


def test_a_method_outside_the_package_is_named_in_the_environment(tmp_path):
    code = "from repro.config import load_config; print(load_config(None, ['model.name=adapting']).method_eval)"
    env = os.environ | {
        "REPRO_METHODS": "test_method_protocol:AdaptingMethod",
        "PYTHONPATH": str(Path(__file__).parent),
    }
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert result.stdout.strip() == "AdaptingEvalSettings(adapt_steps=1, adapt_lr=0.05)"
    bad = env | {"REPRO_METHODS": "test_method_protocol:TinyAutoencoder"}
    refused = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=bad)
    assert refused.returncode != 0 and "is not a subclass of repro.models.method.Method" in refused.stderr


def test_a_method_registered_after_the_config_was_imported_is_known_and_unregistering_restores_the_config():
    before = config.RunConfig
    method = registry.register(AdaptingMethod())
    try:
        cfg = load_config(None, ["model.name=adapting", "eval.adapting.adapt_steps=3"])
        assert cfg.model.method is method and cfg.method_eval.adapt_steps == 3
        assert cfg.model.settings == AdaptingSettings() and type(cfg) is config.RunConfig is not before
        with pytest.raises(ValueError, match="taken by"):
            registry.register(type("Impostor", (AdaptingMethod,), {})())
    finally:
        registry.unregister(method.name)
    assert config.RunConfig is before and type(load_config()) is before  # configs made earlier still compare equal


@pytest.mark.parametrize("module", ["config", "train", "evaluate", "pipeline", "bench"])
def test_the_generic_modules_import_no_particular_method(module):
    tree = ast.parse((Path(repro.__file__).parent / f"{module}.py").read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    particular = {"models.mnad", "models.memae", "models.convlstm", "models.read_ablation", "models.memory"}
    assert not imported & particular, imported & particular
