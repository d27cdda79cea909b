"""MemAE: the memory equations against hand-computed values, the network's shapes and variants
(docs/method.md#baselines)."""

import math

import pytest
import torch
from einops import rearrange

from repro.models.memae import (
    MemAE,
    MemoryModule,
    ae_frame_score,
    entropy_loss,
    hard_shrink,
    memae_address,
    memae_frame_score,
    memae_read,
)
from repro.models.output import ModelOutput
from repro.models.registry import METHODS

# Two queries, three items.
Z = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
M = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
E = math.e


def tiny_memae(**kwargs):
    return MemAE(**{"width": 6, "num_items": 20, **kwargs})  # channels 6, 8, 16, 16


def n_parameters(model):
    return sum(p.numel() for p in model.parameters())


# --------------------------------------------------------------------------------------------- equations
def test_dot_addressing_is_softmax_of_dot_products():
    # logits: [1, 0, 1] and [0, 2, 2]
    expected = torch.tensor([[E, 1, E], [1, E**2, E**2]])
    expected = expected / expected.sum(dim=1, keepdim=True)
    torch.testing.assert_close(memae_address(Z, M, "dot"), expected)


def test_cosine_addressing_is_softmax_of_cosines():
    r = 1 / math.sqrt(2)  # cos to the diagonal item
    expected = torch.tensor([[E, 1, E**r], [1, E, E**r]])
    expected = expected / expected.sum(dim=1, keepdim=True)
    torch.testing.assert_close(memae_address(Z, M, "cosine"), expected)


def test_addressing_rejects_unknown_kind_and_mismatched_dims():
    with pytest.raises(ValueError, match="unknown addressing 'l2'; allowed: dot, cosine"):
        memae_address(Z, M, "l2")
    with pytest.raises(ValueError, match="same d"):
        memae_address(Z, torch.ones(3, 5))


def test_hard_shrink_zeroes_weights_at_or_below_threshold_and_renormalises():
    w = torch.tensor([[0.5, 0.3, 0.2, 0.0], [0.7, 0.1, 0.1, 0.1]])
    shrunk = hard_shrink(w, 0.2)
    assert (shrunk[0, 2:] == 0).all() and (shrunk[1, 1:] == 0).all()  # exactly 0, the one at λ included
    torch.testing.assert_close(shrunk, torch.tensor([[0.625, 0.375, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]]))
    torch.testing.assert_close(shrunk.sum(dim=1), torch.ones(2))


def test_hard_shrink_row_all_below_threshold_stays_zero_without_nan():
    w = torch.full((2, 4), 0.25, requires_grad=True)
    shrunk = hard_shrink(w, 0.25)
    assert torch.equal(shrunk.detach(), torch.zeros(2, 4))
    shrunk.sum().backward()
    assert torch.isfinite(w.grad).all()


def test_hard_shrink_threshold_zero_keeps_weights_and_negative_is_refused():
    w = torch.tensor([[0.5, 0.3, 0.2]])
    torch.testing.assert_close(hard_shrink(w, 0.0), w)
    with pytest.raises(ValueError, match="must be >= 0"):
        hard_shrink(w, -0.1)


def test_entropy_loss_hand_computed():
    w = torch.tensor([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]])  # row entropies log 2 and 0
    torch.testing.assert_close(entropy_loss(w), torch.tensor(math.log(2) / 2))


def test_read_is_weights_times_items():
    w = torch.tensor([[0.25, 0.25, 0.5], [0.0, 1.0, 0.0]])
    torch.testing.assert_close(memae_read(w, M), torch.tensor([[0.75, 0.75], [0.0, 1.0]]))


def test_frame_score_is_mean_of_per_pixel_channel_norms():
    output = torch.zeros(2, 2, 1, 1, 2)  # (b, c, t, h, w)
    target = torch.zeros(2, 2, 1, 1, 2)
    output[0, :, 0, 0, 0] = torch.tensor([3.0, 4.0])  # norm 5; the other pixel 0 -> mean 2.5
    output[1, :, 0, 0, :] = torch.tensor([[1.0, 0.0], [0.0, 2.0]])  # norms 1 and 2 -> 1.5
    torch.testing.assert_close(memae_frame_score(output, target), torch.tensor([2.5, 1.5]))


# A clip pair worked by hand: b 2, c 2, t 2, h 1, w 2 (8 values per clip), target 0.
# Clip 0: pixel differences (over c) [3, 4], [0, 0], [1, 0], [0, 2]: norms 5, 0, 1, 2; squares sum 30.
# Clip 1: every difference 0.2: norms sqrt(0.08); squares (0.2 / 2)^2 = 0.01 on the [0, 1] scale.
SCORED_TARGET = torch.zeros(2, 2, 2, 1, 2)
SCORED_OUTPUT = torch.stack(
    [
        rearrange(torch.tensor([[3.0, 4.0], [0.0, 0.0], [1.0, 0.0], [0.0, 2.0]]), "(t w) c -> c t 1 w", t=2),
        torch.full((2, 2, 1, 2), 0.2),
    ]
)


def test_memae_score_is_the_mean_over_t_h_w_of_channel_norms_on_the_minus_one_one_scale():
    expected = torch.tensor([(5 + 0 + 1 + 2) / 4, math.sqrt(0.08)])
    torch.testing.assert_close(memae_frame_score(SCORED_OUTPUT, SCORED_TARGET), expected)


def test_ae_score_is_the_mean_squared_error_over_c_t_h_w_on_the_zero_one_scale():
    expected = torch.tensor([30 / 4 / 8, 0.01])  # differences halved by x -> (x + 1) / 2, then squared, mean of 8
    torch.testing.assert_close(ae_frame_score(SCORED_OUTPUT, SCORED_TARGET), expected)
    torch.testing.assert_close(ae_frame_score(SCORED_OUTPUT + 1, SCORED_TARGET + 1), expected)  # differences only


def test_scores_refuse_mismatched_or_non_clip_shapes():
    for score in (memae_frame_score, ae_frame_score):
        with pytest.raises(ValueError, match=r"must both be \(b, c, t, h, w\)"):
            score(torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 4))
        with pytest.raises(ValueError, match=r"must both be \(b, c, t, h, w\)"):
            score(SCORED_OUTPUT, SCORED_TARGET[:1])


def test_each_baseline_is_scored_by_its_own_published_score():
    result = ModelOutput(SCORED_OUTPUT)
    memae = METHODS["memae"].frame_signals(None, result, SCORED_TARGET).error
    ae = METHODS["ae3d"].frame_signals(None, result, SCORED_TARGET).error
    torch.testing.assert_close(memae, memae_frame_score(SCORED_OUTPUT, SCORED_TARGET))
    torch.testing.assert_close(ae, ae_frame_score(SCORED_OUTPUT, SCORED_TARGET))
    assert not torch.allclose(memae, ae)


# --------------------------------------------------------------------------------- the official equations
# Three queries, four items (d 2), worked by hand from the official code's equations (docs/method.md#baselines).
# Items are ±axes, so the dot-product logits are ± the queries' coordinates:
#   q0 = (ln 2, 0):     logits (ln 2, 0, -ln 2, 0)    -> softmax (4, 2, 1, 2) / 9
#   q1 = (0, ln 3):     logits (0, ln 3, 0, -ln 3)    -> softmax (3, 9, 3, 1) / 16
#   q2 = (-ln 2, -ln 2): logits (-ln 2, -ln 2, ln 2, ln 2) -> softmax (1, 1, 4, 4) / 10
# λ = 0.15 zeroes 1/9, 1/16 and 1/10 (w_hat = relu(w - λ) w / (|w - λ| + ε) keeps the others, to 1e-11);
# L1 renormalisation: (4, 2, 0, 2) / 8, (3, 9, 3, 0) / 15, (0, 0, 1, 1) / 2.
ITEMS4 = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
QUERIES3 = torch.tensor([[math.log(2), 0.0], [0.0, math.log(3)], [-math.log(2), -math.log(2)]])
SOFTMAX = torch.tensor([[4 / 9, 2 / 9, 1 / 9, 2 / 9], [3 / 16, 9 / 16, 3 / 16, 1 / 16], [0.1, 0.1, 0.4, 0.4]])
SHRUNK = torch.tensor([[0.5, 0.25, 0.0, 0.25], [0.2, 0.6, 0.2, 0.0], [0.0, 0.0, 0.5, 0.5]])


def test_official_equations_by_hand_address_shrink_renormalise():
    torch.testing.assert_close(memae_address(QUERIES3, ITEMS4, "dot"), SOFTMAX)
    shrunk = hard_shrink(SOFTMAX, 0.15)
    torch.testing.assert_close(shrunk, SHRUNK)
    assert (shrunk[SHRUNK == 0] == 0).all()  # exactly zero, not small


def test_official_memory_by_hand_read_and_entropy_loss():
    memory = MemoryModule(num_items=4, dim=2, shrink_threshold=0.15, addressing="dot")
    memory.items.data = ITEMS4.clone()
    read, weights = memory(QUERIES3)
    torch.testing.assert_close(weights, SHRUNK)
    # read = w_hat M: (0.5 - 0, 0.25 - 0.25), (0.2 - 0.2, 0.6), (-0.5, -0.5)
    torch.testing.assert_close(read, torch.tensor([[0.5, 0.0], [0.0, 0.6], [-0.5, -0.5]]))
    # row entropies -sum w log w: 1.5 ln 2, -(0.4 ln 0.2 + 0.6 ln 0.6), ln 2; the loss is their mean
    rows = [1.5 * math.log(2), -(0.4 * math.log(0.2) + 0.6 * math.log(0.6)), math.log(2)]
    torch.testing.assert_close(entropy_loss(weights), torch.tensor(sum(rows) / 3))


def test_hard_shrink_epsilon_is_the_official_1e_minus_12():
    # A weight ε above λ: relu(ε) w / (ε + ε) = w / 2 (with ε = 0 it would stay w, with 1e-10 be w / 101).
    lam, eps = 0.25, 1e-12
    w = torch.tensor([[lam + eps, 1 - lam - eps]], dtype=torch.float64)
    kept = (1 - lam - eps) * (1 - 2 * lam - eps) / (1 - 2 * lam - eps + eps)
    halved = (lam + eps) / 2
    expected = torch.tensor([[halved, kept]], dtype=torch.float64) / (halved + kept)  # about (1/7, 6/7)
    # rtol: λ + ε - λ is ε only to float64 rounding (1e-5 of ε); the alternatives differ by 40% or more
    torch.testing.assert_close(hard_shrink(w, lam), expected, rtol=1e-4, atol=0)


# ------------------------------------------------------------------------------------------------ memory
def test_memory_items_are_a_learnable_uniform_parameter():
    memory = MemoryModule(num_items=2000, dim=256)
    assert isinstance(memory.items, torch.nn.Parameter) and memory.items.requires_grad
    assert memory.items.abs().max() <= 1 / 16 and memory.items.abs().max() > 0.06


def test_memory_without_shrinkage_reads_with_the_softmax():
    memory = MemoryModule(num_items=3, dim=2, shrink_threshold=0.0)
    memory.items.data = M.clone()
    read, weights = memory(Z)
    torch.testing.assert_close(weights, memae_address(Z, M))
    torch.testing.assert_close(read, weights @ M)


def test_memory_with_shrinkage_reads_with_shrunk_weights():
    memory = MemoryModule(num_items=3, dim=2, shrink_threshold=0.3, addressing="cosine")
    memory.items.data = M.clone()
    read, weights = memory(Z)
    torch.testing.assert_close(weights, hard_shrink(memae_address(Z, M, "cosine"), 0.3))
    torch.testing.assert_close(read, weights @ M)


# ------------------------------------------------------------------------------------------------ network
def test_parameter_counts_at_paper_size():
    # Hand count: encoder 2,990,784 + decoder 2,990,017 (+ 2000 x 256 items for MemAE)
    assert n_parameters(MemAE(memory=False)) == 5_980_801
    assert n_parameters(MemAE()) == 5_980_801 + 512_000


def test_paper_size_shapes_on_meta_device():
    with torch.device("meta"):  # shape inference only: a real 16x256x256 forward takes too long on CPU
        model = MemAE()
        result = model(torch.empty(2, 1, 16, 256, 256))
    assert result.output.shape == (2, 1, 16, 256, 256)
    assert result.queries.shape == (2 * 2 * 16 * 16, 256)
    assert result.weights.shape == (2 * 2 * 16 * 16, 2000)
    assert set(result.losses) == {"entropy"}


def test_synthetic_size_shapes_and_row_major_queries():
    model = tiny_memae().eval()
    x = torch.rand(2, 1, 16, 64, 64) * 2 - 1
    result = model(x)
    assert result.output.shape == x.shape
    assert result.queries.shape == (2 * 2 * 4 * 4, 16) and result.weights.shape == (64, 20)
    features = model.encoder(x)  # (b, d, t', h', w')
    torch.testing.assert_close(result.queries, rearrange(features, "b d t h w -> (b t h w) d"))
    torch.testing.assert_close(result.queries[(1 * 2 + 1) * 16 + 2 * 4 + 3], features[1, :, 1, 2, 3])


def test_gradients_reach_the_items():
    model = tiny_memae()
    result = model(torch.rand(2, 1, 8, 16, 16))
    (result.output.square().mean() + sum(result.losses.values())).backward()
    assert model.memory.items.grad is not None and model.memory.items.grad.abs().sum() > 0


def test_ae_variant_has_no_memory_and_no_entropy_loss():
    model = tiny_memae(memory=False)
    result = model(torch.rand(2, 1, 8, 16, 16))
    assert model.memory is None and not any("items" in name for name, _ in model.named_parameters())
    assert result.queries is None and result.weights is None and result.losses == {}
    assert result.output.shape == (2, 1, 8, 16, 16)


def test_entropy_term_scales_with_its_weight():
    x = torch.rand(2, 1, 8, 16, 16)
    losses = {}
    for weight in (0.0, 0.0002, 0.0004):
        torch.manual_seed(0)
        result = tiny_memae(entropy=weight)(x)
        losses[weight] = result.losses
    assert losses[0.0] == {}
    torch.testing.assert_close(losses[0.0004]["entropy"], 2 * losses[0.0002]["entropy"])
    torch.testing.assert_close(losses[0.0004]["entropy"], 0.0004 * entropy_loss(result.weights))  # the last built


def test_init_follows_the_official_code():
    model = MemAE(width=24, num_items=10)
    conv = model.encoder[1][0].weight
    bn = model.encoder[2][1].weight
    assert abs(conv.std().item() - 0.02) < 0.002 and abs(conv.mean().item()) < 0.002
    assert abs(bn.mean().item() - 1) < 0.02 and 0 < bn.std().item() < 0.04
    assert torch.equal(model.decoder[0][1].bias, torch.zeros_like(model.decoder[0][1].bias))


def test_input_errors_name_the_expected_layout():
    model = tiny_memae()
    with pytest.raises(ValueError, match=r"\(b, c=1, t, h, w\).*'b t c h w -> b c t h w'"):
        model(torch.rand(1, 16, 1, 64, 64))
    with pytest.raises(ValueError, match="t divisible by 8 and h, w by 16"):
        model(torch.rand(1, 1, 10, 64, 64))
    with pytest.raises(ValueError, match="unknown addressing"):
        MemAE(addressing="euclid")
