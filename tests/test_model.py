"""Backbones: the MLP, the linear-skip variant and the output bias."""

import pytest
import torch

from survmom.core.model import LinearSkip, build_backbone, build_mlp, output_layer, set_output_bias
from survmom.errors import ConfigError


def test_mlp_layout_follows_the_options():
    net = build_mlp(5, (8, 4), 2, dropout=0.2, activation="gelu", batchnorm=True)
    kinds = [type(m).__name__ for m in net]
    assert kinds == ["Linear", "BatchNorm1d", "GELU", "Dropout", "Linear", "BatchNorm1d", "GELU", "Dropout", "Linear"]
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


def test_dropout_is_torchs_at_the_exact_rate_and_only_in_training():
    net = build_mlp(5, (8, 4), 1, dropout=0.3)
    assert [m.p for m in net if isinstance(m, torch.nn.Dropout)] == [0.3, 0.3]
    x = torch.randn(4, 5)
    without_dropout = torch.nn.Sequential(*(m for m in net if not isinstance(m, torch.nn.Dropout)))
    torch.testing.assert_close(net.eval()(x), without_dropout(x), rtol=0, atol=0)
    torch.manual_seed(5)
    first = net.train()(x)
    torch.manual_seed(5)
    assert torch.equal(first, net(x))  # the global generator: seeded runs repeat
    assert not any(isinstance(m, torch.nn.Dropout) for m in build_mlp(5, (8,), 1, dropout=0.0))
