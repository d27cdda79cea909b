"""What every model's forward returns, so training, scoring and plots read the same values."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor


@dataclass
class ModelOutput:
    """One forward pass.

    output:  the reconstruction or prediction, same layout as the target.
    queries: (n, d) the features that address the memory (n = b*h*w for MNAD, b*t*h*w for MemAE), or None.
    weights: (n, m) read weights over the m memory items, or None for a model without memory.
    losses:  the model's own training terms, each already multiplied by its weight (pixel loss excluded);
             only terms with a non-zero weight are present.
    """

    output: Tensor
    queries: Tensor | None = None
    weights: Tensor | None = None
    losses: dict[str, Tensor] = field(default_factory=dict)
