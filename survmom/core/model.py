"""The backbone: features (n, p) → estimates (n, out_features).

For Cox the single output is a log hazard; for Weibull the two outputs are (log scale, log shape).
:func:`build_backbone` adds an optional linear skip path: estimates = linear(x) + MLP(x), with the MLP's
output layer starting at zero, so training starts from a linear (Cox or Weibull AFT) model and the MLP
learns only what the linear model misses. On small cohorts, where linear models are hard to beat, this
keeps the network from throwing away the linear signal; on large ones the MLP takes over.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from survmom import choices
from survmom.errors import ConfigError

ACTIVATIONS: dict[str, type[nn.Module]] = {name: getattr(nn, module) for name, module in choices.ACTIVATIONS.items()}


class BitMaskDropout(nn.Module):
    """Inverted dropout with a mask drawn from 16 random bits per element; kept because it pays end to end.

    As ``nn.Dropout``: in training, each element is zeroed with probability ``p`` and the others are scaled so
    that the expectation stays ``x``; in eval mode the identity. The global generator fills 64-bit words
    (``random_`` over the whole int64 range), read as four signed 16-bit lanes each; an element is dropped
    when its lane is below ``k - 32768`` with ``k = round(65536 p)``. Limit: the drop rate is ``k / 65536``
    (``p`` rounded to a multiple of 1/65536, at most 7.7e-6 off); kept elements are scaled by
    ``65536 / (65536 - k)``, so the expectation is exact. One generator call per four elements instead of
    ``nn.Dropout``'s ``bernoulli_`` per element: see BENCHMARKS.md ("Redesign") for what it is worth. On
    other devices the mask is one uniform per element, with ``p`` exactly.
    """

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {p}")
        self.p = float(p)
        self.dropped_lanes = min(round(self.p * _LANES), _LANES - 1)  # k of the 65536 lane values

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if x.device.type != "cpu":  # GPU generators draw uniforms fast: exactly nn.Dropout's rate and scale
            return x * torch.rand_like(x).ge_(self.p).mul_(1.0 / (1.0 - self.p))
        if self.dropped_lanes == 0:  # p < 1/131072 rounds to no dropout
            return x
        n = x.numel()
        words = torch.empty((n + 3) // 4, dtype=torch.int64, device=x.device).random_(-(2**63), None)
        lanes = words.view(torch.int16)[:n].view(x.shape)
        # int16 -> float is exact in float32/64; compare there (a half-precision threshold would round).
        exact = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
        mask = lanes.to(exact).ge_(self.dropped_lanes - _LANES // 2).mul_(_LANES / (_LANES - self.dropped_lanes))
        return x * (mask if mask.dtype == x.dtype else mask.to(x.dtype))

    def extra_repr(self) -> str:
        return f"p={self.p}"


_LANES = 65536  # values of a 16-bit lane


def build_mlp(
    in_features: int,
    hidden: Sequence[int] = (64, 64),
    out_features: int = 1,
    *,
    dropout: float = 0.0,
    activation: str = "relu",
    batchnorm: bool = False,
) -> nn.Sequential:
    """Linear → [BatchNorm] → activation → [Dropout] per hidden layer, then a linear output layer.

    ``hidden`` empty gives a linear model. Layer names are positional (``0.weight``...), so a state dict
    depends only on these arguments.
    """
    if in_features < 1 or out_features < 1 or any(h < 1 for h in hidden):
        raise ConfigError(f"layer sizes must be positive: in={in_features}, hidden={list(hidden)}")
    if not 0.0 <= dropout < 1.0:
        raise ConfigError(f"dropout must be in [0, 1), got {dropout}")
    if activation not in ACTIVATIONS:
        raise ConfigError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {activation!r}")
    layers: list[nn.Module] = []
    width = in_features
    for size in hidden:
        layers.append(nn.Linear(width, size))
        if batchnorm:
            layers.append(nn.BatchNorm1d(size))
        layers.append(ACTIVATIONS[activation]())
        if dropout > 0:
            layers.append(BitMaskDropout(dropout))
        width = size
    layers.append(nn.Linear(width, out_features))
    return nn.Sequential(*layers)


class LinearSkip(nn.Module):
    """``linear(x) + mlp(x)``: a linear model plus a non-linear correction (n, p) → (n, out)."""

    def __init__(self, linear: nn.Linear, mlp: nn.Sequential) -> None:
        super().__init__()
        self.linear = linear
        self.mlp = mlp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x) + self.mlp(x)


def build_backbone(
    in_features: int,
    hidden: Sequence[int] = (64, 64),
    out_features: int = 1,
    *,
    dropout: float = 0.0,
    activation: str = "relu",
    batchnorm: bool = False,
    linear_skip: bool = False,
) -> nn.Module:
    """:func:`build_mlp`, or with ``linear_skip`` a :class:`LinearSkip` whose MLP output starts at zero."""
    mlp = build_mlp(in_features, hidden, out_features, dropout=dropout, activation=activation, batchnorm=batchnorm)
    if not linear_skip or not hidden:
        return mlp
    with torch.no_grad():
        mlp[-1].weight.zero_()
        mlp[-1].bias.zero_()
    return LinearSkip(nn.Linear(in_features, out_features), mlp)


def output_layer(backbone: nn.Module) -> nn.Linear:
    """The layer whose bias sets the baseline: the linear path of a :class:`LinearSkip`, else the last layer."""
    layer = backbone.linear if isinstance(backbone, LinearSkip) else backbone[-1]
    if not isinstance(layer, nn.Linear):
        raise ConfigError("the backbone does not end in a linear layer")
    return layer


@torch.no_grad()
def set_output_bias(backbone: nn.Module, bias: Sequence[float], zero_weights: bool = False) -> None:
    """Set the output bias (e.g. to a constant-Weibull fit, see :func:`output_layer`); optionally zero weights."""
    last = output_layer(backbone)
    if last.bias is None or last.bias.numel() != len(bias):
        raise ConfigError(f"output layer cannot take a bias of length {len(bias)}")
    last.bias.copy_(torch.as_tensor(list(bias), dtype=last.bias.dtype))
    if zero_weights:
        last.weight.zero_()
