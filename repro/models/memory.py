"""The MNAD memory (Park et al., CVPR 2020, sec. 3.1.2): read, update, feature losses.

The equations are pure functions of tensors, vectorised over queries and items; `Memory` is the thin
module that holds the items as state (a buffer: saved with the model, never trained by the optimiser).

Collapse remedies beyond the study (docs/method.md#reporting-protocol-and-memory-diagnostics), each off by default:
k-means initialisation of the items from the first training steps' queries, re-seeding items unused for k steps from
random queries, and the diversity regulariser (negative entropy of the mean soft assignment). Gaussian initialisation
(`item_init`) and the paper's eq. 5 normaliser (`update_normaliser`) are the other two.

Glossary: n queries (b*h*w, flattened row-major over b, y, x), m memory items, d feature dim.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .variant_flags import ITEM_INITS, UPDATE_NORMALISERS

_UNIT_TOLERANCE = 1e-3


# ---------------------------------------------------------------------------------------------- checks
def _check_matrix(name: str, x: Tensor, expected: str) -> None:
    if not isinstance(x, Tensor) or x.dim() != 2:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a 2-D tensor of shape {expected}, got {shape}")


def _check_unit_rows(name: str, x: Tensor) -> None:
    norms = x.detach().float().norm(dim=1)
    worst = (norms - 1).abs().max().item() if len(norms) else 0.0
    if worst > _UNIT_TOLERANCE:
        raise ValueError(
            f"{name} must have L2-normalised rows (|row| = 1), but a row has norm off by {worst:.3g}; "
            f"normalise with F.normalize({name}, dim=1)"
        )


def _check_pair(queries: Tensor, items: Tensor) -> None:
    _check_matrix("queries", queries, "(n, d)")
    _check_matrix("items", items, "(m, d)")
    if queries.shape[1] != items.shape[1]:
        raise ValueError(
            f"queries (n, d) and items (m, d) must share d: got queries {tuple(queries.shape)} "
            f"and items {tuple(items.shape)}"
        )
    _check_unit_rows("queries", queries)
    _check_unit_rows("items", items)


# ------------------------------------------------------------------------------------------- equations
def init_items(num_items: int, dim: int, kind: str = "uniform", generator: torch.Generator | None = None) -> Tensor:
    """(m, d) unit rows. "uniform" is the reference (U[0,1) entries, all positive); "gaussian" is N(0,1)."""
    if kind not in ITEM_INITS:
        raise ValueError(f"unknown item init {kind!r}; allowed: {', '.join(ITEM_INITS)}")
    draw = torch.rand if kind == "uniform" else torch.randn
    return F.normalize(draw(num_items, dim, generator=generator), dim=1)


def address(queries: Tensor, items: Tensor) -> tuple[Tensor, Tensor]:
    """Cosine scores S = Q P^T (n, m) and the read weights w = softmax over items (eq. 1)."""
    scores = queries @ items.t()  # (n, m)
    return scores, scores.softmax(dim=1)


def read_memory(queries: Tensor, items: Tensor) -> tuple[Tensor, Tensor]:
    """Eq. 1-2: read (n, d) = w P with w (n, m) = softmax_m(Q P^T). The read carries no gradient (reference)."""
    _check_pair(queries, items)
    return _read(queries, items)


def _read(queries: Tensor, items: Tensor) -> tuple[Tensor, Tensor]:
    _, weights = address(queries, items)
    return weights.detach() @ items, weights


def nearest_items(queries: Tensor, items: Tensor, k: int = 1) -> Tensor:
    """(n, k) indices of the k most similar items per query, most similar first."""
    return (queries @ items.t()).topk(k, dim=1).indices


@torch.no_grad()
def update_memory(queries: Tensor, items: Tensor, normaliser: str = "all") -> Tensor:
    """Eq. 3-5: p_m <- normalise(p_m + sum_{k in U_m} v[k, m] / max v[., m] * q_k); returns new (m, d).

    v = softmax over the n queries (eq. 4); U_m are the queries whose nearest item is m. normaliser "all"
    takes the max over all queries (reference code), "assigned" over U_m only (paper). Items with empty
    U_m are unchanged.
    """
    if normaliser not in UPDATE_NORMALISERS:
        raise ValueError(f"unknown update normaliser {normaliser!r}; allowed: {', '.join(UPDATE_NORMALISERS)}")
    _check_pair(queries, items)
    return _update(queries, items, normaliser)


def _update(queries: Tensor, items: Tensor, normaliser: str) -> Tensor:
    scores = queries @ items.t()  # (n, m)
    v = scores.softmax(dim=0)  # eq. 4, over queries
    assigned = F.one_hot(scores.argmax(dim=1), items.shape[0]).to(v.dtype)  # (n, m)
    if normaliser == "all":
        column_max = v.max(dim=0).values  # (m,)
    else:  # empty columns get max 1: their weights are zero anyway
        column_max = (v * assigned).max(dim=0).values.clamp_min(torch.finfo(v.dtype).tiny)
    update = (assigned * v / column_max).t() @ queries  # (m, d), eq. 3
    used = assigned.any(dim=0, keepdim=True).t()  # (m, 1)
    return torch.where(used, F.normalize(items + update, dim=1), items)


def compactness_loss(queries: Tensor, items: Tensor) -> Tensor:
    """Eq. 10 (reference form): mean over n*d of (q - nearest item)^2, the item detached."""
    _check_pair(queries, items)
    return _compactness(queries, items)


def _compactness(queries: Tensor, items: Tensor) -> Tensor:
    nearest = items[nearest_items(queries, items)[:, 0]]
    return F.mse_loss(queries, nearest.detach())


def separateness_loss(queries: Tensor, items: Tensor, margin: float = 1.0) -> Tensor:
    """Eq. 12: mean of max(|q - p_1| - |q - p_2| + margin, 0) with p_1, p_2 the nearest and second nearest."""
    _check_pair(queries, items)
    if items.shape[0] < 2:
        raise ValueError(f"separateness needs at least 2 memory items, got items of shape {tuple(items.shape)}")
    return _separateness(queries, items, margin)


def _separateness(queries: Tensor, items: Tensor, margin: float) -> Tensor:
    top2 = nearest_items(queries, items, k=2)
    positive, negative = items[top2[:, 0]].detach(), items[top2[:, 1]].detach()
    return F.triplet_margin_loss(queries, positive, negative, margin=margin, p=2, eps=1e-6)


def diversity_loss(weights: Tensor) -> Tensor:
    """Negative entropy of the mean soft assignment: sum_m p_m log p_m with p = mean over queries of w (n, m).

    -log m when the queries use the items evenly on average, 0 when every query reads one and the same item;
    it trains the queries (w is eq. 1's softmax of their scores), never the items.
    """
    _check_matrix("weights", weights, "(n, m)")
    mean = weights.mean(dim=0)  # (m,)
    return torch.special.xlogy(mean, mean).sum()


@torch.no_grad()
def kmeans_items(queries: Tensor, num_items: int, seed: int = 0) -> Tensor:
    """(m, d) unit rows: the L2-normalised k-means centres (sklearn, k-means++ starts) of (n, d) queries."""
    from sklearn.cluster import KMeans

    _check_matrix("queries", queries, "(n, d)")
    if queries.shape[0] < num_items:
        raise ValueError(
            f"k-means needs at least as many queries as items: got {queries.shape[0]} queries "
            f"for {num_items} items; collect queries over more training steps"
        )
    fit = KMeans(num_items, n_init=4, random_state=seed).fit(queries.detach().double().cpu().numpy())
    centres = torch.as_tensor(fit.cluster_centers_, dtype=queries.dtype, device=queries.device)
    return F.normalize(centres, dim=1)


@torch.no_grad()
def reseed_dead_items(
    items: Tensor, idle_steps: Tensor, used: Tensor, queries: Tensor, patience: int
) -> tuple[Tensor, Tensor]:
    """Items unused for `patience` steps in a row replaced by random distinct queries of this step.

    items (m, d), idle_steps (m,) steps each item has gone unused before this one, used (m,) bool: whether
    any query of this step has the item as its nearest, queries (n, d). Returns (items, idle_steps) with the
    dead items re-seeded and their counters reset; the others are unchanged. Draws from torch's global RNG.
    """
    idle_steps = torch.where(used, torch.zeros_like(idle_steps), idle_steps + 1)  # (m,)
    dead = idle_steps >= patience  # (m,)
    n, m = queries.shape[0], items.shape[0]
    picks = torch.randperm(n, device=queries.device)[:m] if n >= m else torch.randint(n, (m,), device=queries.device)
    items = torch.where(dead[:, None], queries[picks].to(items.dtype), items)
    return items, torch.where(dead, torch.zeros_like(idle_steps), idle_steps)


def uniform_memory_target(num_queries: int, positions_per_frame: int, num_items: int, device=None) -> Tensor:
    """(n, m) one-hot target of the reproduction study: query position i of each frame -> item i mod m."""
    if num_queries % positions_per_frame:
        raise ValueError(
            f"the number of queries ({num_queries}) must be a multiple of positions_per_frame "
            f"({positions_per_frame}, = h*w of the query map)"
        )
    position = torch.arange(num_queries, device=device) % positions_per_frame
    return F.one_hot(position % num_items, num_items).float()


def uniform_memory_loss(weights: Tensor, positions_per_frame: int) -> Tensor:
    """The study's uniform-memory supervision: MSE between w (n, m) and the position target, tiled per frame."""
    _check_matrix("weights", weights, "(n, m)")
    target = uniform_memory_target(weights.shape[0], positions_per_frame, weights.shape[1], weights.device)
    return F.mse_loss(weights, target)


# ------------------------------------------------------------------------------------------------ module
class Memory(nn.Module):
    """The items (m, d) as state, with read, update and the weighted feature losses that use them."""

    items: Tensor

    def __init__(
        self,
        num_items: int = 10,
        dim: int = 512,
        compactness_weight: float = 0.1,  # λ_c, eq. 8
        separateness_weight: float = 0.1,  # λ_s, eq. 8
        separateness_margin: float = 1.0,  # α, eq. 12
        uniform_memory_weight: float = 0.0,  # reproduction study's supervision, 0 = off
        update_normaliser: str = "all",
        item_init: str = "uniform",
        diversity_weight: float = 0.0,  # weight of the diversity regulariser, 0 = off
        kmeans_init_steps: int = 0,  # items <- k-means of the queries of the first k training steps, 0 = off
        reseed_after_steps: int = 0,  # items unused for k training steps <- random queries, 0 = off
    ) -> None:
        super().__init__()
        self.register_buffer("items", init_items(num_items, dim, item_init))
        self.compactness_weight = compactness_weight
        self.separateness_weight = separateness_weight
        self.separateness_margin = separateness_margin
        self.uniform_memory_weight = uniform_memory_weight
        if update_normaliser not in UPDATE_NORMALISERS:
            raise ValueError(f"unknown update normaliser {update_normaliser!r}; allowed: {UPDATE_NORMALISERS}")
        self.update_normaliser = update_normaliser
        if min(kmeans_init_steps, reseed_after_steps) < 0:
            raise ValueError(f"kmeans_init_steps and reseed_after_steps count training steps (0 = off), got "
                             f"{kmeans_init_steps} and {reseed_after_steps}")  # fmt: skip
        self.diversity_weight = diversity_weight
        self.kmeans_init_steps, self.reseed_after_steps = kmeans_init_steps, reseed_after_steps
        if kmeans_init_steps:  # saved, so a resumed run does not initialise again
            self.register_buffer("kmeans_steps_left", torch.tensor(kmeans_init_steps))
            self._kmeans_queries: list[Tensor] = []
        if reseed_after_steps:
            self.register_buffer("idle_steps", torch.zeros(num_items, dtype=torch.long))
        # Distributed training sets this to gather every rank's queries, so all ranks apply the same update.
        self.gather: Callable[[Tensor], Tensor] | None = None

    def read(self, queries: Tensor) -> tuple[Tensor, Tensor]:
        """Eq. 1-2 with the current items: read (n, d) without gradient, weights (n, m)."""
        return _read(queries, self.items)

    def losses(self, queries: Tensor, weights: Tensor, positions_per_frame: int) -> dict[str, Tensor]:
        """The weighted feature losses with the current items; a term with weight 0 is not computed.

        The module's methods skip the unit-norm checks of the public functions (a host sync per call):
        the model normalises its own queries.
        """
        losses = {}
        if self.compactness_weight:
            losses["compactness"] = self.compactness_weight * _compactness(queries, self.items)
        if self.separateness_weight:
            losses["separateness"] = self.separateness_weight * _separateness(
                queries, self.items, self.separateness_margin
            )
        if self.uniform_memory_weight:
            losses["uniform_memory"] = self.uniform_memory_weight * uniform_memory_loss(weights, positions_per_frame)
        if self.diversity_weight:
            losses["diversity"] = self.diversity_weight * diversity_loss(weights)
        return losses

    @torch.no_grad()
    def update(self, queries: Tensor, accept: Tensor | None = None) -> None:
        """Eq. 3-5 with these (n, d) unit queries, then in training mode the remedies switched on; items stay a
        detached buffer.

        accept: an optional boolean scalar tensor; the update is kept only where it is True. Deciding on
        the device avoids a host sync per frame in the test-time update.
        """
        queries = queries.detach().float()
        if self.gather is not None:
            queries = self.gather(queries)  # (world * n, d)
        updated = _update(queries, self.items, self.update_normaliser)
        if self.training:
            updated = self._remedies(queries, updated)
        if accept is not None:
            updated = torch.where(accept, updated, self.items)
        if self.training:  # a new tensor: this step's read weights still need the old items for backward
            self.items = updated
        else:  # at test time in place: the buffer keeps its address, so a captured CUDA graph replays the update
            self.items.copy_(updated)

    def _remedies(self, queries: Tensor, updated: Tensor) -> Tensor:
        """The collapse remedies of one training step, applied to the items after eq. 3-5's update."""
        if self.reseed_after_steps:
            used = torch.zeros(len(self.items), dtype=torch.bool, device=queries.device)
            used[nearest_items(queries, self.items)[:, 0]] = True  # (m,), with this step's (old) items
            updated, self.idle_steps = reseed_dead_items(
                updated, self.idle_steps, used, queries, self.reseed_after_steps
            )
        if self.kmeans_init_steps and self.kmeans_steps_left.item() > 0:  # one host sync, only with this remedy
            self._kmeans_queries.append(queries)
            self.kmeans_steps_left -= 1
            if self.kmeans_steps_left.item() == 0:
                seed = int(torch.randint(2**31 - 1, ()))  # from the run's seeded global RNG
                updated = kmeans_items(torch.cat(self._kmeans_queries), len(self.items), seed).to(updated.dtype)
                self._kmeans_queries.clear()
        return updated

    @contextmanager
    def scratch(self) -> Iterator[None]:
        """Test-time updates inside this block are undone on exit: the trained items are never mutated."""
        saved = self.items.clone()
        try:
            yield
        finally:
            self.items.copy_(saved)
