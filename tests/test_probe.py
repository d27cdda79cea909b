"""Skip probe: no change when the replacement equals the original; a large one for noise without skips."""

import json
import subprocess
import sys

import pytest
import torch

from repro import probe as probe_module
from repro.models.mnad import MNAD
from repro.models.registry import METHODS
from repro.probe import FILLS, PARTS, probe, probe_run
from repro.report.folder import ReportWarning, run_figure
from repro.runs import read_probe, save_checkpoint


def probe_model(model, *args):
    return probe(model, METHODS["mnad"].probe_point(model), *args)


def frames(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand((2, 3, 16, 16), generator=generator) * 2 - 1
    return x, x.clone()


@pytest.mark.parametrize("task,memory", [("recon", False), ("recon", True), ("pred", True)])
def test_same_tensor_changes_nothing(task, memory):
    torch.manual_seed(0)
    model = MNAD(task=task, memory=memory, width=4)
    x = torch.rand((2, model.in_frames * 3, 32, 32)) * 2 - 1
    result = probe_model(model, x, x[:, -3:], "bottleneck+skips", "same")
    assert result.mean_abs_change == 0.0
    assert result.psnr_replaced == result.psnr_original


def fitted(skips: bool, x: torch.Tensor, steps: int = 25) -> MNAD:
    """A recon model fitted to reproduce x (an untrained one barely depends on its input)."""
    torch.manual_seed(0)
    model = MNAD(task="recon", memory=False, skips=skips, width=4)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        optimiser.zero_grad()
        torch.nn.functional.mse_loss(model(x).output, x).backward()
        optimiser.step()
    return model


def test_noise_changes_a_recon_model_without_skips_more_than_one_with_skips():
    x, target = frames()
    plain = probe_model(fitted(False, x), x, target, "bottleneck", "noise")
    skipped = probe_model(fitted(True, x), x, target, "bottleneck", "noise")
    assert plain.mean_abs_change > 0.05
    assert plain.psnr_replaced != plain.psnr_original
    assert skipped.mean_abs_change < plain.mean_abs_change


def test_unknown_part_is_named():
    x, target = frames()
    with pytest.raises(ValueError, match="bottleneck"):
        probe_model(MNAD(task="recon", memory=False, width=4), x, target, "decoder")


def test_a_method_without_an_encoder_to_probe_is_refused_by_name():
    with pytest.raises(ValueError, match="convlstm has none"):
        METHODS["convlstm"].probe_point(torch.nn.Identity())


# ------------------------------------------------------------------------------------- saved with the run
ROWS = [
    {"run": "r", "task": "pred", "replaced": part, "fill": fill, "mean_abs_change": 0.1, "psnr_original": 30.0}
    | {"psnr_replaced": 29.5 - i, "psnr_change": -0.5 - i}
    for i, (part, fill) in enumerate((part, fill) for part in PARTS for fill in FILLS)
]


@pytest.fixture
def probed(tmp_path, monkeypatch):
    """A run folder with a checkpoint of epoch 2, and the (run, checkpoint, clips, seed) of each model run."""
    save_checkpoint(tmp_path, 2, {"model": {}})
    calls = []
    monkeypatch.setattr(probe_module, "_probe_rows", lambda *args: calls.append(args) or [dict(r) for r in ROWS])
    return tmp_path, calls


def test_the_probe_runs_once_and_is_read_from_the_run_afterwards(probed):
    run, calls = probed
    assert probe_run(run) == ROWS and probe_run(run) == ROWS
    assert len(calls) == 1 and read_probe(run).rows == tuple(ROWS)
    assert json.loads((run / "probe.json").read_text())["epoch"] == 2


def test_the_probe_runs_again_for_other_clips_or_a_newer_checkpoint(probed):
    run, calls = probed
    probe_run(run)
    probe_run(run, clips=8)
    save_checkpoint(run, 3, {"model": {}})
    probe_run(run, clips=8)
    assert [(call[1].name, call[2]) for call in calls] == [
        ("epoch_002.pt", 32),
        ("epoch_002.pt", 8),
        ("epoch_003.pt", 8),
    ]


def test_the_report_draws_the_saved_probe_and_says_so_when_there_is_none(probed, tmp_path):
    run, calls = probed
    with pytest.warns(ReportWarning, match=r"probe\.json not found.*repro probe"):
        assert run_figure(run, tmp_path / "out", "probe") is None
    probe_run(run)
    assert run_figure(run, tmp_path / "out", "probe").is_file() and len(calls) == 1


def test_the_report_never_imports_the_probe_or_the_training_loop():
    code = "import sys, repro.report.folder; print(sorted({'repro.probe', 'repro.train'} & set(sys.modules)))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"
