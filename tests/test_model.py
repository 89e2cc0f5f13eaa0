"""Backbones: the MLP, the linear-skip variant and the output bias."""

import pytest
import torch

from survmom.core.model import LinearSkip, build_backbone, build_mlp, output_layer, set_output_bias
from survmom.errors import ConfigError


def test_mlp_layout_follows_the_options():
    net = build_mlp(5, (8, 4), 2, dropout=0.2, activation="gelu", batchnorm=True)
    kinds = [type(m).__name__ for m in net]
    layer = ["Linear", "BatchNorm1d", "GELU", "BitMaskDropout"]
    assert kinds == [*layer, *layer, "Linear"]
    assert net(torch.randn(3, 5)).shape == (3, 2)
    assert isinstance(build_mlp(5, (), 1)[0], torch.nn.Linear)


def test_linear_skip_starts_as_exactly_its_linear_model():
    torch.manual_seed(0)
    net = build_backbone(6, (16,), 1, linear_skip=True)
    assert isinstance(net, LinearSkip)
    x = torch.randn(10, 6)
    torch.testing.assert_close(net(x), net.linear(x), rtol=0, atol=0)
    net.mlp[-1].weight.data.fill_(0.1)
    assert not torch.equal(net(x), net.linear(x))


def test_output_bias_goes_to_the_linear_path():
    net = build_backbone(4, (8,), 2, linear_skip=True)
    set_output_bias(net, [1.5, -0.5])
    assert output_layer(net) is net.linear
    torch.testing.assert_close(net(torch.zeros(1, 4)), torch.tensor([[1.5, -0.5]]))
    with pytest.raises(ConfigError):
        set_output_bias(net, [1.0])


@pytest.mark.parametrize("kwargs", [{"dropout": 1.0}, {"activation": "swish"}, {"hidden": (0,)}])
def test_invalid_architecture_is_refused(kwargs):
    with pytest.raises(ConfigError):
        build_mlp(4, **({"hidden": (8,)} | kwargs))


def test_dropout_zeroes_at_rate_p_scales_the_rest_and_passes_the_gradient_through_the_same_mask():
    from survmom.core.model import BitMaskDropout as Dropout

    torch.manual_seed(0)
    drop = Dropout(0.1)
    x = torch.ones(1000, 200, requires_grad=True)
    y = drop(x)
    kept = y != 0
    # 200,000 draws: the dropped fraction is within 4 standard errors (0.0027) of p, in each of the four
    # 16-bit lanes of a random word too (elements 4i + j share word i).
    tolerance = 4 * (0.1 * 0.9 / 50_000) ** 0.5
    assert abs(1 - kept.float().mean().item() - 0.1) < 4 * (0.1 * 0.9 / 200_000) ** 0.5
    for lane in range(4):
        assert abs(1 - kept.reshape(-1, 4)[:, lane].float().mean().item() - 0.1) < tolerance
    # p is rounded to 6554 / 65536; the scale keeps the expectation exactly 1
    scale = 65536 / (65536 - 6554)
    assert scale == pytest.approx(1 / 0.9, rel=1e-5)
    torch.testing.assert_close(y[kept], torch.full_like(y[kept], scale))
    y.sum().backward()
    torch.testing.assert_close(x.grad, kept.float() * scale)
    drop.eval()
    assert drop(x) is x
    assert Dropout(0.0).train()(x) is x
    torch.manual_seed(5)
    first = Dropout(0.3)(torch.ones(50))
    torch.manual_seed(5)
    assert torch.equal(first, Dropout(0.3)(torch.ones(50)))  # the global generator: seeded runs repeat
    with pytest.raises(ConfigError):
        Dropout(1.0)


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_dropout_keeps_the_dtype_and_rate(dtype):
    from survmom.core.model import BitMaskDropout as Dropout

    torch.manual_seed(1)
    y = Dropout(0.25)(torch.ones(100_000, dtype=dtype))
    assert y.dtype == dtype
    assert abs((y == 0).double().mean().item() - 0.25) < 4 * (0.25 * 0.75 / 100_000) ** 0.5
    assert y.double().mean().item() == pytest.approx(1.0, abs=0.01)
    assert set(y.unique().double().tolist()) == {0.0, torch.tensor(4 / 3, dtype=dtype).item()}
