"""The memory equations against values worked by hand (docs/method.md#memory, #losses)."""

import math

import pytest
import torch
import torch.nn.functional as F

from repro.models.memory import (
    Memory,
    compactness_loss,
    init_items,
    read_memory,
    separateness_loss,
    uniform_memory_loss,
    uniform_memory_target,
    update_memory,
)

# Example 1: items are the unit axes, so scores are the queries' coordinates.
P = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
Q = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])  # nearest items: 0, 1, 1


def sigmoid(x):
    return 1 / (1 + math.exp(-x))


def test_init_items_uniform_rows_are_unit_and_positive():
    items = init_items(10, 512, generator=torch.Generator().manual_seed(0))
    assert items.shape == (10, 512)
    torch.testing.assert_close(items.norm(dim=1), torch.ones(10))
    assert (items > 0).all()
    cosines = items @ items.t()
    mean_off_diagonal = (cosines.sum() - 10) / 90
    assert 0.7 < mean_off_diagonal < 0.8  # docs/method.md#memory: mean pairwise cosine about 0.75


def test_init_items_gaussian_and_unknown_kind():
    items = init_items(4, 8, kind="gaussian", generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(items.norm(dim=1), torch.ones(4))
    assert (items < 0).any()
    with pytest.raises(ValueError, match="allowed: uniform, gaussian"):
        init_items(4, 8, kind="kmeans")


def test_read_is_softmax_over_items_times_items():
    read, weights = read_memory(Q, P)
    # softmax over two items of scores (a, b) is (sigmoid(a - b), sigmoid(b - a))
    expected = torch.tensor([[sigmoid(1), sigmoid(-1)], [sigmoid(-0.2), sigmoid(0.2)], [sigmoid(-1), sigmoid(1)]])
    torch.testing.assert_close(weights, expected)
    torch.testing.assert_close(read, expected)  # P is the identity
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(3))


def test_read_half_carries_no_gradient():
    queries = Q.clone().requires_grad_(True)
    read, weights = read_memory(queries, P)
    assert not read.requires_grad
    assert weights.requires_grad  # the uniform-memory supervision trains through the weights


def test_update_by_hand_reference_normaliser():
    # item 0: only q0 is assigned and it holds the column max -> u0 = q0 -> p0 unchanged.
    # item 1: q1, q2 assigned; v[k,1] / max_k v[k,1] = exp(s_k1 - s_21): 1 for q2, exp(-0.2) for q1.
    new = update_memory(Q, P)
    expected1 = F.normalize(P[1] + math.exp(-0.2) * Q[1] + Q[2], dim=0)
    torch.testing.assert_close(new[0], P[0])
    torch.testing.assert_close(new[1], expected1)
    torch.testing.assert_close(new[1], torch.tensor([0.18194, 0.98331]), atol=1e-5, rtol=0)


def test_update_normaliser_all_vs_assigned():
    # q0 scores 0.6 on item 0 but is nearest item 1; q1 scores 0.5 on item 0 and is nearest item 0.
    queries = torch.tensor([[0.6, 0.8], [0.5, -math.sqrt(0.75)]])
    reference = update_memory(queries, P, normaliser="all")  # max over all queries: q0's
    paper = update_memory(queries, P, normaliser="assigned")  # max over item 0's own queries: q1's
    torch.testing.assert_close(reference[0], F.normalize(P[0] + math.exp(-0.1) * queries[1], dim=0))
    torch.testing.assert_close(paper[0], F.normalize(P[0] + queries[1], dim=0))
    torch.testing.assert_close(reference[1], F.normalize(P[1] + queries[0], dim=0))
    torch.testing.assert_close(paper[1], reference[1])


def per_item_loop_update(queries, items, normaliser):
    """The reference's get_update_query, written out item by item."""
    scores = queries @ items.t()
    v = scores.softmax(dim=0)
    nearest = scores.argmax(dim=1)
    new = items.clone()
    for m in range(items.shape[0]):
        idx = torch.nonzero(nearest == m).squeeze(1)
        if len(idx) == 0:
            continue
        column_max = v[:, m].max() if normaliser == "all" else v[idx, m].max()
        u = ((v[idx, m] / column_max).unsqueeze(1) * queries[idx]).sum(dim=0)
        new[m] = F.normalize(items[m] + u, dim=0)
    return new


@pytest.mark.parametrize("normaliser", ["all", "assigned"])
def test_vectorised_update_equals_per_item_loop(normaliser):
    g = torch.Generator().manual_seed(1)
    items = init_items(10, 32, kind="gaussian", generator=g)
    queries = F.normalize(torch.randn(200, 32, generator=g), dim=1)
    torch.testing.assert_close(
        update_memory(queries, items, normaliser), per_item_loop_update(queries, items, normaliser), atol=1e-6, rtol=0
    )


def test_update_leaves_unused_items_exactly_unchanged_and_has_no_gradient():
    items = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    queries = torch.tensor([[1.0, 0.0]], requires_grad=True)
    new = update_memory(queries, items)
    assert torch.equal(new[1:], items[1:])
    assert not new.requires_grad


def test_compactness_by_hand():
    # q1 - p1 = (0.6, -0.2): 0.36 + 0.04 = 0.4 over 3 queries x 2 dims
    torch.testing.assert_close(compactness_loss(Q, P), torch.tensor(0.4 / 6))


def test_separateness_by_hand():
    # only q1 violates the margin: |q1 - p1| - |q1 - p0| + 1 = sqrt(0.4) - sqrt(0.8) + 1
    expected = (math.sqrt(0.4) - math.sqrt(0.8) + 1) / 3
    torch.testing.assert_close(separateness_loss(Q, P), torch.tensor(expected), atol=1e-5, rtol=0)
    assert separateness_loss(Q, P, margin=0.1).item() == pytest.approx(0.0, abs=1e-5)  # no violator


def test_feature_losses_detach_items_and_train_queries():
    queries = Q.clone().requires_grad_(True)
    items = P.clone().requires_grad_(True)
    (compactness_loss(queries, items) + separateness_loss(queries, items)).backward()
    assert items.grad is None
    assert queries.grad is not None and queries.grad.abs().sum() > 0


def test_uniform_memory_target_and_loss_by_hand():
    target = uniform_memory_target(num_queries=4, positions_per_frame=2, num_items=3)
    assert target.argmax(dim=1).tolist() == [0, 1, 0, 1]
    weights = torch.full((4, 3), 1 / 3)
    # per row (1 - 1/3)^2 + 2 (1/3)^2 = 6/9, mean over 3 columns -> 2/9
    torch.testing.assert_close(uniform_memory_loss(weights, positions_per_frame=2), torch.tensor(2 / 9))


def test_uniform_memory_loss_batch_4_equals_batch_1():
    g = torch.Generator().manual_seed(0)
    one_frame = torch.randn(16, 10, generator=g).softmax(dim=1)  # a 4x4 query map, 10 items
    batch1 = uniform_memory_loss(one_frame, positions_per_frame=16)
    batch4 = uniform_memory_loss(one_frame.repeat(4, 1), positions_per_frame=16)
    torch.testing.assert_close(batch1, batch4)
    assert uniform_memory_target(16, 16, 10).argmax(dim=1).tolist() == [i % 10 for i in range(16)]
    with pytest.raises(ValueError, match="multiple of positions_per_frame"):
        uniform_memory_loss(one_frame[:15], positions_per_frame=16)


def test_memory_module_weights_scale_their_own_losses():
    queries = F.normalize(torch.randn(12, 8), dim=1)
    weights = torch.randn(12, 4).softmax(dim=1)
    memory = Memory(num_items=4, dim=8, compactness_weight=2.0, separateness_weight=3.0, uniform_memory_weight=5.0)
    losses = memory.losses(queries, weights, positions_per_frame=6)
    torch.testing.assert_close(losses["compactness"], 2.0 * compactness_loss(queries, memory.items))
    torch.testing.assert_close(losses["separateness"], 3.0 * separateness_loss(queries, memory.items))
    torch.testing.assert_close(losses["uniform_memory"], 5.0 * uniform_memory_loss(weights, 6))
    off = Memory(num_items=4, dim=8, compactness_weight=0.0, separateness_weight=0.5)
    assert set(off.losses(queries, weights, 6)) == {"separateness"}


def test_memory_items_are_a_buffer_saved_with_state():
    memory = Memory(num_items=3, dim=4)
    assert list(memory.parameters()) == []
    assert "items" in memory.state_dict()


def test_accept_gate_and_scratch_restore():
    memory = Memory(num_items=2, dim=2)
    memory.items.copy_(P)
    memory.update(Q, accept=torch.tensor(False))
    assert torch.equal(memory.items, P)
    with memory.scratch():
        memory.update(Q, accept=torch.tensor(True))
        torch.testing.assert_close(memory.items, update_memory(Q, P))
    assert torch.equal(memory.items, P)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: read_memory(Q[0], P), r"queries must be a 2-D tensor of shape \(n, d\), got \(2,\)"),
        (lambda: read_memory(Q, P.unsqueeze(0)), r"items must be a 2-D tensor of shape \(m, d\)"),
        (lambda: read_memory(torch.ones(3, 3), P), "must share d"),
        (lambda: update_memory(2 * Q, P), "queries must have L2-normalised rows"),
        (lambda: compactness_loss(Q, 3 * P), "items must have L2-normalised rows"),
        (lambda: update_memory(Q, P, normaliser="max"), "allowed: all, assigned"),
        (lambda: separateness_loss(Q, P[:1]), "at least 2 memory items"),
    ],
)
def test_bad_input_names_the_argument(call, message):
    with pytest.raises(ValueError, match=message):
        call()
