"""Collapse remedies beyond the study (docs/method.md#reporting-protocol-and-memory-diagnostics): each changes the
items, or adds a loss, as specified."""

import math

import pytest
import torch
import torch.nn.functional as F

from repro.models.memory import Memory, diversity_loss, kmeans_items, reseed_dead_items, update_memory
from repro.models.mnad import MNAD


def _clusters(directions: torch.Tensor, per_cluster: int, spread: float, seed: int = 0) -> torch.Tensor:
    """(k * per_cluster, d) unit queries scattered around each unit direction (k, d), cluster by cluster."""
    noise = spread * torch.randn(
        len(directions), per_cluster, directions.shape[1], generator=torch.Generator().manual_seed(seed)
    )
    return F.normalize(directions[:, None, :] + noise, dim=2).reshape(-1, directions.shape[1])


def _match(items: torch.Tensor, expected: torch.Tensor) -> torch.Tensor:
    """`items` reordered to the row order of `expected` (nearest by cosine); both (m, d)."""
    order = (expected @ items.t()).argmax(dim=1)
    assert sorted(order.tolist()) == list(range(len(items))), "items do not map one to one"
    return items[order]


# ------------------------------------------------------------------------------------- diversity
def test_diversity_loss_by_hand():
    even = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # mean assignment (0.5, 0.5)
    assert diversity_loss(even).item() == pytest.approx(-math.log(2))
    one_item = torch.tensor([[1.0, 0.0], [1.0, 0.0]])  # every query reads item 0
    assert diversity_loss(one_item).item() == pytest.approx(0.0)
    mixed = torch.tensor([[0.5, 0.5], [1.0, 0.0]])  # mean (0.75, 0.25)
    assert diversity_loss(mixed).item() == pytest.approx(0.75 * math.log(0.75) + 0.25 * math.log(0.25))


def test_diversity_weight_scales_its_loss_and_trains_the_queries():
    queries = F.normalize(torch.randn(12, 8), dim=1).requires_grad_(True)
    memory = Memory(num_items=4, dim=8, compactness_weight=0.0, separateness_weight=0.0, diversity_weight=0.5)
    _, weights = memory.read(queries)
    losses = memory.losses(queries, weights, positions_per_frame=6)
    assert set(losses) == {"diversity"}
    torch.testing.assert_close(losses["diversity"], 0.5 * diversity_loss(weights))
    losses["diversity"].backward()
    assert queries.grad is not None and queries.grad.abs().sum() > 0
    assert "diversity" not in Memory(num_items=4, dim=8).losses(queries, weights, 6)


# ------------------------------------------------------------------------------------- k-means
def test_kmeans_items_are_the_normalised_centres_of_the_given_clusters():
    directions = torch.eye(6)[:3]  # three orthogonal unit directions in d = 6
    queries = _clusters(directions, per_cluster=40, spread=0.05)
    items = kmeans_items(queries, num_items=3, seed=0)
    centres = F.normalize(queries.reshape(3, 40, 6).mean(dim=1), dim=1)  # each cluster's mean, normalised
    torch.testing.assert_close(_match(items, centres), centres, atol=1e-5, rtol=0)
    torch.testing.assert_close(items.norm(dim=1), torch.ones(3))
    with pytest.raises(ValueError, match="at least as many queries as items"):
        kmeans_items(queries[:2], num_items=3)


def test_kmeans_init_replaces_the_items_after_exactly_k_training_steps():
    torch.manual_seed(0)
    directions = torch.eye(8)[:4]
    steps = [_clusters(directions, per_cluster=6, spread=0.05, seed=s) for s in range(3)]  # (24, 8) each
    memory = Memory(num_items=4, dim=8, kmeans_init_steps=2)
    start = memory.items.clone()
    memory.update(steps[0])
    torch.testing.assert_close(memory.items, update_memory(steps[0], start))  # step 1: collecting, eq. 5 only
    memory.update(steps[1])
    collected = torch.cat(steps[:2]).reshape(2, 4, 6, 8).transpose(0, 1).reshape(4, 12, 8)  # (cluster, 12, d)
    centres = F.normalize(collected.mean(dim=1), dim=1)
    torch.testing.assert_close(_match(memory.items, centres), centres, atol=1e-5, rtol=0)
    assert memory.kmeans_steps_left.item() == 0
    after_kmeans = memory.items.clone()
    memory.update(steps[2])  # step 3: the ordinary update again
    torch.testing.assert_close(memory.items, update_memory(steps[2], after_kmeans))


def test_kmeans_init_is_saved_and_evaluation_never_collects():
    memory = Memory(num_items=2, dim=4, kmeans_init_steps=3).eval()
    queries = F.normalize(torch.randn(5, 4), dim=1)
    memory.update(queries)  # a test-time update: no remedy
    assert memory.kmeans_steps_left.item() == 3 and memory._kmeans_queries == []
    state = Memory(num_items=2, dim=4, kmeans_init_steps=3).state_dict()
    assert {"items", "kmeans_steps_left"} <= set(state)


# ------------------------------------------------------------------------------------- re-seeding
def test_reseed_replaces_exactly_the_items_idle_for_patience_steps():
    items = F.normalize(torch.randn(4, 3), dim=1)
    queries = F.normalize(torch.randn(10, 3), dim=1)
    idle = torch.tensor([0, 2, 2, 0])
    used = torch.tensor([True, False, True, False])
    new_items, new_idle = reseed_dead_items(items, idle, used, queries, patience=3)
    assert new_idle.tolist() == [0, 0, 0, 1]  # item 1 reached 3 idle steps and was re-seeded; item 2 was used
    for m in (0, 2, 3):
        assert torch.equal(new_items[m], items[m])
    assert ((queries - new_items[1]).abs().sum(dim=1) == 0).any()  # item 1 is one of this step's queries


def test_memory_reseeds_its_dead_items_in_training_only():
    torch.manual_seed(0)
    memory = Memory(num_items=4, dim=3, reseed_after_steps=2)
    memory.items.copy_(torch.eye(3)[[0, 1, 2, 2]] * torch.tensor([[1.0], [1.0], [1.0], [-1.0]]))  # e0, e1, e2, -e2
    near_e0 = F.normalize(torch.tensor([[1.0, 0.1, 0.0], [1.0, 0.0, 0.1], [1.0, -0.1, 0.0]]), dim=1)
    memory.update(near_e0)  # items 1-3 idle for 1 step: kept
    assert memory.idle_steps.tolist() == [0, 1, 1, 1]
    kept = memory.items.clone()
    memory.update(near_e0)  # idle for 2: re-seeded from the queries; item 0 takes its eq. 5 update
    torch.testing.assert_close(memory.items[0], update_memory(near_e0, kept)[0])
    for m in (1, 2, 3):
        assert ((near_e0 - memory.items[m]).abs().sum(dim=1) == 0).any()
    assert memory.idle_steps.tolist() == [0, 0, 0, 0]
    memory.eval()
    before = memory.items.clone()
    memory.update(near_e0)
    memory.update(near_e0)
    assert memory.idle_steps.tolist() == [0, 0, 0, 0]  # test-time updates count nothing
    torch.testing.assert_close(memory.items[1:], before[1:])


def test_mnad_passes_the_remedies_to_its_memory_and_keeps_defaults_off():
    model = MNAD(width=2, kmeans_init_steps=5, reseed_after_steps=7, diversity=0.25)
    assert (model.memory.kmeans_init_steps, model.memory.reseed_after_steps) == (5, 7)
    assert model.memory.diversity_weight == 0.25
    plain = MNAD(width=2).memory
    assert (plain.kmeans_init_steps, plain.reseed_after_steps, plain.diversity_weight) == (0, 0, 0.0)
    assert set(plain.state_dict()) == {"items"}  # checkpoints of runs without remedies are unchanged
    x = torch.randn(2, 12, 32, 32)
    model.train()
    assert "diversity" in model(x).losses


def test_negative_step_counts_are_a_clear_error():
    with pytest.raises(ValueError, match="count training steps"):
        Memory(num_items=2, dim=4, reseed_after_steps=-1)
