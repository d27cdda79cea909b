"""Training of the models (SPEC sec. 4): one step here; the loop that reads top to bottom builds on it."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .precision import autocast


def train_step(
    model: nn.Module, optimizer: torch.optim.Optimizer, inputs: Tensor, target: Tensor, precision: str = "fp32"
) -> dict[str, Tensor]:
    """One optimisation step of eq. 8: L = L_rec + the model's weighted feature losses.

    Returns the detached terms (pixel, each feature loss, total) without a host sync.
    """
    model.train()
    with autocast(inputs.device, precision):
        result = model(inputs)
    terms = {"pixel": F.mse_loss(result.output.float(), target)} | result.losses
    total = sum(terms.values())
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    optimizer.step()
    return {name: value.detach() for name, value in (terms | {"total": total}).items()}
