"""Exponential moving average (EMA) of network weights: rate schedules and the fused update.

The target network k follows the online network q as θk ← m·θk + (1 − m)·θq (MoCo, He et al. 2020).
The rate m may be

* constant (torchsurv's default 0.999);
* cosine from m0 towards 1 over K steps (BYOL, Grill et al. 2020): m_k = 1 − (1 − m0)·(cos(πk/K) + 1)/2;
* warmed up (torch_ema): min(m, (1 + n)/(10 + n)) after n updates, combinable with either schedule.

Buffers (BatchNorm running statistics, ``num_batches_tracked``) are *copied* from the online network, not
averaged: they describe the distribution of activations and are already running averages themselves, and
copying keeps integer counters exact. Only floating-point parameters are averaged, in one fused
``torch._foreach_lerp_`` call.

Example:
    >>> import torch
    >>> online, target = torch.nn.Linear(3, 1), torch.nn.Linear(3, 1)
    >>> ema = EMA(rate=0.9)
    >>> ema.update(online, target)
    0.1
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

import torch
from torch import nn

from survmom import choices
from survmom.errors import ConfigError, StateError

SCHEDULES = choices.RATE_SCHEDULES


def constant_rate(rate: float, step: int, total_steps: int) -> float:
    """Rate m for any step: the constant ``rate``."""
    return rate


def cosine_rate(rate: float, step: int, total_steps: int) -> float:
    """BYOL's cosine schedule: ``1 − (1 − rate)·(cos(π·step/total_steps) + 1)/2``, reaching 1 at the end."""
    if total_steps <= 0:
        return rate
    progress = min(step, total_steps) / total_steps
    return 1.0 - (1.0 - rate) * (math.cos(math.pi * progress) + 1.0) / 2.0


def warmup_rate(rate: float, num_updates: int) -> float:
    """torch_ema's warm-up: ``min(rate, (1 + n)/(10 + n))`` after ``n`` updates (0.1 at the first)."""
    return min(rate, (1.0 + num_updates) / (10.0 + num_updates))


def floating_parameters(module: nn.Module) -> list[torch.Tensor]:
    """The floating-point parameters of ``module``, in registration order."""
    return [p for p in module.parameters() if p.is_floating_point()]


class PairedTensors(NamedTuple):
    """The tensors one EMA update touches, listed once: floating parameters and buffers of both networks."""

    target_params: list[torch.Tensor]
    online_params: list[torch.Tensor]
    target_buffers: list[torch.Tensor]
    online_buffers: list[torch.Tensor]


def paired_tensors(online: nn.Module, target: nn.Module) -> PairedTensors:
    """List what :func:`update_momentum` updates; a caller that updates every step may keep the lists."""
    target_params, online_params = floating_parameters(target), floating_parameters(online)
    target_buffers, online_buffers = list(target.buffers()), list(online.buffers())
    if len(target_params) != len(online_params) or len(target_buffers) != len(online_buffers):
        raise StateError("online and target networks have different parameter lists")
    return PairedTensors(target_params, online_params, target_buffers, online_buffers)


@torch.no_grad()
def update_momentum(online: nn.Module, target: nn.Module, rate: float, tensors: PairedTensors | None = None) -> None:
    """θ_target ← rate·θ_target + (1 − rate)·θ_online for all floating parameters (fused), buffers copied.

    ``tensors``: :func:`paired_tensors` of these networks, if the caller keeps them (saves listing them).
    """
    if tensors is None:
        tensors = paired_tensors(online, target)
    if tensors.target_params:
        torch._foreach_lerp_(tensors.target_params, tensors.online_params, 1.0 - rate)
    for dst, src in zip(tensors.target_buffers, tensors.online_buffers, strict=True):
        dst.copy_(src)


class EMA:
    """Rate schedule and update count of the online → target moving average.

    The target weights live in the target network itself; this object holds only what decides the rate:
    ``schedule`` ("constant" | "cosine"), base ``rate`` m0 in [0, 1], ``total_steps`` K (cosine only),
    ``warmup`` (bool) and ``num_updates`` n.
    """

    def __init__(
        self, rate: float = 0.999, schedule: str = "constant", total_steps: int = 0, warmup: bool = False
    ) -> None:
        if not 0.0 <= float(rate) <= 1.0:
            raise ConfigError(f"EMA rate must be in [0, 1], got {rate}")
        if schedule not in SCHEDULES:
            raise ConfigError(f"EMA schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")
        if schedule == "cosine" and total_steps <= 0:
            raise ConfigError("the cosine EMA schedule needs total_steps > 0")
        self.rate = float(rate)
        self.schedule = schedule
        self.total_steps = int(total_steps)
        self.warmup = bool(warmup)
        self.num_updates = 0

    def current_rate(self) -> float:
        """The rate m the next update will use."""
        scheduled = (cosine_rate if self.schedule == "cosine" else constant_rate)(
            self.rate, self.num_updates, self.total_steps
        )
        return warmup_rate(scheduled, self.num_updates) if self.warmup else scheduled

    def update(self, online: nn.Module, target: nn.Module, tensors: PairedTensors | None = None) -> float:
        """Move ``target`` towards ``online`` at the current rate, count the update; returns 1 − m.

        ``tensors``: optional :func:`paired_tensors` of the two networks (see :func:`update_momentum`).
        """
        rate = self.current_rate()
        update_momentum(online, target, rate, tensors)
        self.num_updates += 1
        return 1.0 - rate

    def state_dict(self) -> dict[str, Any]:
        """Plain-data state: schedule, its parameters and the update count."""
        return {
            "schedule": self.schedule,
            "rate": self.rate,
            "total_steps": self.total_steps,
            "warmup": self.warmup,
            "num_updates": self.num_updates,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict`; raises :class:`StateError` on missing/extra keys or bad values."""
        expected = {"schedule": str, "rate": float, "total_steps": int, "warmup": bool, "num_updates": int}
        if not isinstance(state, dict) or set(state) != set(expected):
            got = sorted(state) if isinstance(state, dict) else type(state).__name__
            raise StateError(f"EMA state must have keys {sorted(expected)}, got {got}")
        for key, kind in expected.items():
            value = state[key]
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) if kind is float else (
                isinstance(value, kind) and (kind is bool or not isinstance(value, bool))
            )
            if not ok:
                raise StateError(f"EMA state {key!r} must be {kind.__name__}, got {value!r}")
        if state["schedule"] not in SCHEDULES or not 0.0 <= state["rate"] <= 1.0 or state["num_updates"] < 0:
            raise StateError(f"EMA state has invalid values: {state}")
        self.schedule = state["schedule"]
        self.rate = float(state["rate"])
        self.total_steps = state["total_steps"]
        self.warmup = state["warmup"]
        self.num_updates = state["num_updates"]


@contextmanager
def swapped_weights(model: nn.Module, source: nn.Module) -> Iterator[nn.Module]:
    """Temporarily load ``source``'s parameters and buffers into ``model``; restore the originals exactly.

    torch_ema's store / copy_to / restore in one context manager. Example::

        with swapped_weights(momentum.online, momentum.target):
            evaluate(momentum.online)   # runs with the averaged weights
    """
    stored = [t.detach().clone() for t in _tensors(model)]
    with torch.no_grad():
        for dst, src in zip(_tensors(model), _tensors(source), strict=True):
            dst.copy_(src)
    try:
        yield model
    finally:
        with torch.no_grad():
            for dst, original in zip(_tensors(model), stored, strict=True):
                dst.copy_(original)


def _tensors(module: nn.Module) -> list[torch.Tensor]:
    return [*module.parameters(), *module.buffers()]
