"""The MNAD network: structure against the reference, variants, training/evaluation semantics."""

import pytest
import torch
import torch.nn.functional as F

from repro.models.memory import compactness_loss, separateness_loss, update_memory
from repro.models.mnad import MNAD


def n_parameters(model):
    return sum(p.numel() for p in model.parameters())


# The reference's counts (docs/method.md#network) less its unused 1,024-parameter encoder BatchNorm.
@pytest.mark.parametrize(
    "kwargs, expected",
    [
        (dict(task="pred"), 15_651_843 - 1024),
        (dict(task="recon", decoder="constant"), 17_196_291 - 1024),
        (dict(task="recon"), 14_872_515 - 1024),
        (dict(task="pred", memory=False), 13_292_547 - 1024),
        (dict(task="recon", memory=False), 12_513_219 - 1024),
        (dict(task="pred", skips=False), 14_877_699 - 1024),
    ],
)
def test_parameter_counts_match_the_reference(kwargs, expected):
    assert n_parameters(MNAD(**kwargs)) == expected


def test_paper_prediction_model_has_15_650_819_parameters_and_no_trainable_memory():
    model = MNAD()
    assert n_parameters(model) == 15_650_819
    assert model.memory.items.shape == (10, 512)
    assert "memory.items" in model.state_dict()


def test_layers_are_registered_in_forward_order():
    names = [name for name, _ in MNAD(width=4).named_children()]
    assert names == ["encoder", "memory", "decoder"]
    encoder = [name for name, _ in MNAD(width=4).encoder.named_children()]
    assert encoder == ["block1", "pool1", "block2", "pool2", "block3", "pool3", "block4"]
    decoder = [name for name, _ in MNAD(width=4).decoder.named_children()]
    assert decoder == ["block", "up3", "block3", "up2", "block2", "up1", "head"]


VARIANTS = [
    dict(task="pred"),
    dict(task="pred", memory=False),
    dict(task="pred", skips=False),
    dict(task="recon"),
    dict(task="recon", memory=False),
    dict(task="recon", skips=True),
    dict(task="recon", decoder="constant"),
    dict(task="recon", decoder="constant", skips=True),
]


@pytest.mark.parametrize("kwargs", VARIANTS)
def test_shapes_at_64(kwargs):
    model = MNAD(width=8, **kwargs).train()
    x = torch.rand(2, 3 * model.in_frames, 64, 64) * 2 - 1
    result = model(x)
    assert result.output.shape == (2, 3, 64, 64)
    assert result.output.abs().max() <= 1
    if model.memory is None:
        assert result.queries is None and result.weights is None and result.losses == {}
    else:
        assert result.queries.shape == (2 * 8 * 8, 64)  # d = 8 * width, an 8x8 query map per frame
        assert result.weights.shape == (2 * 8 * 8, 10)
        assert set(result.losses) == {"compactness", "separateness"}


@pytest.mark.parametrize("kwargs", VARIANTS)
def test_shapes_at_paper_size_256(kwargs):
    model = MNAD(**kwargs).to("meta").eval()  # shapes without the arithmetic
    result = model(torch.empty(1, 3 * model.in_frames, 256, 256, device="meta"))
    assert result.output.shape == (1, 3, 256, 256)
    if model.memory is not None:
        assert result.queries.shape == (32 * 32, 512)


def test_skip_defaults_follow_the_task():
    assert MNAD(task="pred", width=4).skips and not MNAD(task="recon", width=4).skips
    assert MNAD(task="pred", width=4).encoder.block1[0].in_channels == 12
    assert MNAD(task="recon", width=4).encoder.block1[0].in_channels == 3


def test_task_default_feature_loss_weights():
    assert MNAD(task="pred", width=4).memory.compactness_weight == 0.1
    assert MNAD(task="recon", width=4).memory.separateness_weight == 0.01


def test_training_forward_uses_old_items_then_updates():
    model = MNAD(width=4, compactness=1.0, separateness=1.0).train()
    old = model.memory.items.clone()
    result = model(torch.rand(2, 12, 32, 32) * 2 - 1)
    q = result.queries.detach()
    torch.testing.assert_close(result.losses["compactness"], compactness_loss(q, old))
    torch.testing.assert_close(result.losses["separateness"], separateness_loss(q, old))
    torch.testing.assert_close(result.weights, (q @ old.t()).softmax(dim=1))
    torch.testing.assert_close(model.memory.items, update_memory(q, old))
    assert not torch.equal(model.memory.items, old)


def test_queries_are_normalised_rows_flattened_b_y_x():
    model = MNAD(width=4).eval()
    captured = {}
    model.encoder.register_forward_hook(lambda m, i, out: captured.update(features=out[0]))
    result = model(torch.rand(2, 12, 32, 32))
    features = F.normalize(captured["features"], dim=1)  # (b, d, h', w')
    assert torch.equal(result.queries[5], features[0, :, 1, 1])  # row-major: (b=0, y=1, x=1) = 1*4 + 1
    assert torch.equal(result.queries[16 + 3], features[1, :, 0, 3])
    torch.testing.assert_close(result.queries.norm(dim=1), torch.ones(32))


def test_evaluation_never_changes_items_and_computes_no_losses():
    model = MNAD(width=4).eval()
    old = model.memory.items.clone()
    result = model(torch.rand(1, 12, 32, 32))
    assert torch.equal(model.memory.items, old)
    assert result.losses == {}


def test_gradients_reach_encoder_and_decoder_but_never_items():
    model = MNAD(width=4).train()
    x = torch.rand(2, 12, 32, 32) * 2 - 1
    result = model(x)
    (F.mse_loss(result.output, x[:, :3]) + sum(result.losses.values())).backward()
    assert all(p.grad is not None for p in model.parameters())
    assert not model.memory.items.requires_grad


def test_no_memory_variant_decodes_raw_features():
    model = MNAD(width=4, memory=False)
    assert model.memory is None
    assert model.decoder.block[0].in_channels == 32  # Basic(512, 512) at width 64


def test_uniform_memory_weight_adds_its_loss_and_trains_through_the_weights():
    model = MNAD(width=4, uniform_memory=1.0).train()
    losses = model(torch.rand(4, 12, 32, 32)).losses
    assert "uniform_memory" in losses
    losses["uniform_memory"].backward()  # after the items were updated by the same forward
    assert model.encoder.block1[0].weight.grad.abs().sum() > 0


def test_wrong_input_shape_is_a_clear_error():
    with pytest.raises(ValueError, match=r"input must be \(b, 12, h, w\) = 4 frames x 3 channels"):
        MNAD(width=4)(torch.rand(1, 3, 32, 32))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(task="segment"), "allowed: pred, recon"),
        (dict(decoder="wide"), "allowed: halving, constant"),
        (dict(update_normaliser="max"), "update normaliser"),
    ],
)
def test_bad_constructor_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MNAD(width=4, **kwargs)
