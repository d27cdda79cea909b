"""The ConvLSTM cell against its gate equations, the layer against a loop over time, the autoencoder's shapes."""

import pytest
import torch
import torch.nn.functional as F

from repro.models.convlstm import ConvLSTM, ConvLSTMAE, ConvLSTMCell, convlstm_frame_errors


def test_cell_step_equals_the_gate_equations():
    cell = ConvLSTMCell(in_channels=2, hidden_channels=3, kernel=3)
    x, h, c = torch.randn(2, 2, 5, 6), torch.randn(2, 3, 5, 6), torch.randn(2, 3, 5, 6)
    pre = F.conv2d(torch.cat([x, h], dim=1), cell.gates.weight, cell.gates.bias, padding=1)
    i = torch.sigmoid(pre[:, 0:3])
    f = torch.sigmoid(pre[:, 3:6])
    o = torch.sigmoid(pre[:, 6:9])
    g = torch.tanh(pre[:, 9:12])
    c_next = f * c + i * g
    h_next = o * torch.tanh(c_next)
    h_out, c_out = cell(x, (h, c))
    torch.testing.assert_close(c_out, c_next)
    torch.testing.assert_close(h_out, h_next)


def test_cell_starts_from_a_zero_state():
    cell = ConvLSTMCell(2, 3)
    x = torch.randn(1, 2, 4, 4)
    zeros = torch.zeros(1, 3, 4, 4)
    for got, expected in zip(cell(x), cell(x, (zeros, zeros))):
        torch.testing.assert_close(got, expected)


def test_layer_equals_a_loop_of_the_cell_over_time():
    layer = ConvLSTM(in_channels=2, hidden_channels=3)
    x = torch.randn(2, 4, 2, 5, 5)  # (b, t, c, h, w)
    h, c = torch.zeros(2, 3, 5, 5), torch.zeros(2, 3, 5, 5)
    expected = []
    for step in range(4):
        h, c = layer.cell(x[:, step], (h, c))
        expected.append(h)
    outputs, (h_last, c_last) = layer(x)
    torch.testing.assert_close(outputs, torch.stack(expected, dim=1))
    torch.testing.assert_close(h_last, h)
    torch.testing.assert_close(c_last, c)


@pytest.mark.parametrize("size", [64, 227, 256])
def test_autoencoder_round_trips_ten_frames(size):
    model = ConvLSTMAE(channels=1, size=size)
    x = torch.rand(1, 10, 1, size, size) * 2 - 1
    with torch.no_grad():
        result = model(x)
    assert result.output.shape == (1, 10, 1, size, size)
    assert result.output.abs().max() <= 1  # tanh output, the inputs' range
    assert result.queries is None and result.weights is None and result.losses == {}


def test_autoencoder_layers_follow_chong_and_tay():
    model = ConvLSTMAE(size=64)
    first, second = model.spatial_encoder[0], model.spatial_encoder[2]
    assert (first.out_channels, first.kernel_size, first.stride) == (128, (11, 11), (4, 4))
    assert (second.out_channels, second.kernel_size, second.stride) == (64, (5, 5), (2, 2))
    assert [layer.cell.hidden_channels for layer in model.temporal] == [64, 32, 64]
    up1, up2 = model.spatial_decoder[0], model.spatial_decoder[2]
    assert (up1.out_channels, up1.kernel_size, up1.stride) == (128, (5, 5), (2, 2))
    assert (up2.out_channels, up2.kernel_size, up2.stride) == (1, (11, 11), (4, 4))


def test_autoencoder_is_causal_in_time():
    model = ConvLSTMAE(size=32)
    x = torch.rand(2, 4, 1, 32, 32)
    changed = x.clone()
    changed[:, 3] = -1
    with torch.no_grad():
        a, b = model(x).output, model(changed).output
    torch.testing.assert_close(a[:, :3], b[:, :3])
    assert not torch.allclose(a[:, 3], b[:, 3])


def test_autoencoder_trains_end_to_end():
    model = ConvLSTMAE(size=32)
    model(torch.rand(1, 3, 1, 32, 32)).output.mean().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_autoencoder_input_errors():
    with pytest.raises(ValueError, match=r"\(b, t, c=1, h=64, w=64\).*got \(1, 1, 10, 64, 64\)"):
        ConvLSTMAE(size=64)(torch.rand(1, 1, 10, 64, 64))
    with pytest.raises(ValueError, match="at least 16x16"):
        ConvLSTMAE(size=8)


def test_frame_errors_are_per_frame_euclidean_distances():
    output = torch.zeros(2, 3, 1, 2, 2)  # (b, t, c, h, w)
    target = torch.zeros(2, 3, 1, 2, 2)
    output[0, 1, 0, 0] = torch.tensor([3.0, 4.0])  # distance 5
    output[1, 2] = 1.0  # four pixels off by 1: distance 2
    expected = torch.tensor([[0.0, 5.0, 0.0], [0.0, 0.0, 2.0]])
    torch.testing.assert_close(convlstm_frame_errors(output, target), expected)
    with pytest.raises(ValueError, match=r"\(b, t, c, h, w\)"):
        convlstm_frame_errors(output, target[:, :2])
