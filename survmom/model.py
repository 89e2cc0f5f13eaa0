"""The MLP backbone: features (n, p) → estimates (n, out_features).

For Cox the single output is a log hazard; for Weibull the two outputs are (log scale, log shape).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from survmom.errors import ConfigError

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "selu": nn.SELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
}


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
            layers.append(nn.Dropout(dropout))
        width = size
    layers.append(nn.Linear(width, out_features))
    return nn.Sequential(*layers)


@torch.no_grad()
def set_output_bias(mlp: nn.Sequential, bias: Sequence[float], zero_weights: bool = False) -> None:
    """Set the output layer's bias (e.g. to a constant-Weibull fit); optionally zero its weights."""
    last = mlp[-1]
    if not isinstance(last, nn.Linear) or last.bias is None or last.bias.numel() != len(bias):
        raise ConfigError(f"output layer cannot take a bias of length {len(bias)}")
    last.bias.copy_(torch.as_tensor(list(bias), dtype=last.bias.dtype))
    if zero_weights:
        last.weight.zero_()
