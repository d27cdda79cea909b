"""Skip probe: no change when the replacement equals the original; a large one for noise without skips."""

import pytest
import torch

from repro.models.mnad import MNAD
from repro.models.registry import METHODS
from repro.probe import probe


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
