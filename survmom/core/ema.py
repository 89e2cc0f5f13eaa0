"""Exponential moving average (EMA) of a network's weights, with its whole life cycle.

After every optimizer step the averaged network k follows the trained network q:

.. math::
    \\theta_k \\leftarrow m\\,\\theta_k + (1 - m)\\,\\theta_q

(MoCo's momentum encoder, He et al. 2020; BYOL's target network, Grill et al. 2020). The rate m is

* constant (``schedule="constant"``; torchsurv's default 0.999);
* cosine from m0 towards 1 over K updates (``"cosine"``, BYOL): m = 1 − (1 − m0)·(cos(πk/K) + 1)/2 after k
  updates;
* warmed up (``warmup=True``, torch_ema's ``use_num_updates``): min(m, (1 + n)/(10 + n)) at the n-th update
  (n = 1 at the first), on top of either schedule.

:class:`EMA` has the life cycle of torch_ema's ``ExponentialMovingAverage`` (``update``, ``copy_to``,
``store`` / ``restore``, ``average_parameters``, ``to``, ``state_dict`` / ``load_state_dict``; tested against
the ``torch-ema`` package), with one difference: the averages live in a network of the same architecture,
``averaged``, instead of a list of tensors, so that the averaged network can be run as it is. That is how
:class:`~survmom.core.momentum.Momentum` uses it: its target network *is* the averaged network, run at every
step to fill the memory bank.

Only floating-point parameters are averaged. Buffers (BatchNorm running statistics, ``num_batches_tracked``)
are copied from the trained network: they are running averages already, and copying keeps integer counters
exact. ``copy_to``, ``store`` and ``restore`` handle parameters and buffers alike.

Example:
    >>> import torch
    >>> net = torch.nn.Linear(2, 1, bias=False)
    >>> _ = torch.nn.init.zeros_(net.weight)
    >>> ema = EMA(net, rate=0.75)  # averaged: a frozen copy of net
    >>> _ = torch.nn.init.ones_(net.weight)  # what a training step does
    >>> ema.update()  # returns 1 - m
    0.25
    >>> ema.averaged.weight.tolist()
    [[0.25, 0.25]]
    >>> with ema.average_parameters():  # net runs with the averaged weights inside
    ...     net.weight.tolist()
    [[0.25, 0.25]]
    >>> net.weight.tolist()
    [[1.0, 1.0]]
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import get_ema_multi_avg_fn

from survmom import choices
from survmom.errors import ConfigError, StateError

SCHEDULES = choices.RATE_SCHEDULES
# The plain-data part of the state (schedule and count) and its types.
RATE_STATE = {"schedule": str, "rate": float, "total_steps": int, "warmup": bool, "num_updates": int}


def cosine_rate(rate: float, step: int, total_steps: int) -> float:
    """BYOL's cosine schedule: ``1 − (1 − rate)·(cos(π·step/total_steps) + 1)/2``, reaching 1 at the end."""
    if total_steps <= 0:
        return rate
    progress = min(step, total_steps) / total_steps
    return 1.0 - (1.0 - rate) * (math.cos(math.pi * progress) + 1.0) / 2.0


def warmup_rate(rate: float, num_updates: int) -> float:
    """torch_ema's warm-up at the ``num_updates``-th update: ``min(rate, (1 + n)/(10 + n))`` (2/11 at the first)."""
    return min(rate, (1.0 + num_updates) / (10.0 + num_updates))


def scheduled_rate(rate: float, schedule: str, total_steps: int, warmup: bool, num_updates: int) -> float:
    """The rate m of the update that follows ``num_updates`` updates (the arguments of :data:`RATE_STATE`)."""
    scheduled = cosine_rate(rate, num_updates, total_steps) if schedule == "cosine" else rate
    return warmup_rate(scheduled, num_updates + 1) if warmup else scheduled


def next_rate(state: Any) -> float:
    """The next update's rate for a rate state (``EMA.state_dict(weights=False)``), checked as on loading."""
    return scheduled_rate(**_checked_rate_state(state))


class EMA:
    """Moving average of ``model``'s weights, held in ``averaged``; see the module notes.

    Args:
        model: the trained network q.
        rate: base rate m0 in [0, 1] (0: averaged = model after each update; 1: averaged frozen).
        schedule: ``"constant"`` or ``"cosine"`` (towards 1 over ``total_steps`` updates).
        total_steps: number of updates K, for the cosine schedule.
        warmup: torch_ema's warm-up ``min(m, (1 + n)/(10 + n))``.
        averaged: the network that holds the averages, same parameter and buffer names and shapes as ``model``
            (Momentum passes its target network); default: a copy of ``model`` without gradients.
    """

    def __init__(self, model: nn.Module, rate: float = 0.999, schedule: str = "constant", total_steps: int = 0,
                 warmup: bool = False, *, averaged: nn.Module | None = None) -> None:
        if not 0.0 <= float(rate) <= 1.0:
            raise ConfigError(f"EMA rate must be in [0, 1], got {rate}")
        if schedule not in SCHEDULES:
            raise ConfigError(f"EMA schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")
        if schedule == "cosine" and total_steps <= 0:
            raise ConfigError("the cosine EMA schedule needs total_steps > 0")
        if averaged is None:
            averaged = copy.deepcopy(model).requires_grad_(False)
        _check_same_layout(averaged, model, "averaged network", "model")
        self.model = model
        self.averaged = averaged
        self.rate = float(rate)
        self.schedule = schedule
        self.total_steps = int(total_steps)
        self.warmup = bool(warmup)
        self.num_updates = 0
        self.stored: list[torch.Tensor] | None = None  # what store() saved, for restore()
        self.relist()

    def relist(self) -> None:
        """List again the tensors :meth:`update` works on.

        Like torch_ema, the EMA works on the tensors it listed when it was made (listing them costs more than
        the update itself). Call this after replacing tensors of the model or the averaged network other than
        through the EMA: ``.to()`` / ``.double()`` of the modules (which replace buffers),
        ``load_state_dict(assign=True)``, assigning a new parameter. Momentum does it in its own ``.to()`` and
        ``load_state_dict``.
        """
        averaged, current = _floating_parameters(self.averaged), _floating_parameters(self.model)
        averaged_buffers, buffers = list(self.averaged.buffers()), list(self.model.buffers())
        if len(averaged) != len(current) or len(averaged_buffers) != len(buffers):
            raise StateError(f"the model has {len(current)} floating-point parameters and {len(buffers)} buffers, "
                             f"the averaged network {len(averaged)} and {len(averaged_buffers)}")
        self._listed = (averaged, current, averaged_buffers, buffers)

    def current_rate(self) -> float:
        """The rate m the next :meth:`update` will use."""
        return scheduled_rate(self.rate, self.schedule, self.total_steps, self.warmup, self.num_updates)

    @torch.no_grad()
    def update(self) -> float:
        """Move the averaged parameters towards the model's at the current rate, copy buffers; returns 1 − m."""
        rate = self.current_rate()
        averaged, current, averaged_buffers, buffers = self._listed
        if averaged:
            get_ema_multi_avg_fn(rate)(averaged, current, None)  # torch's public EMA step: one fused lerp
        for dst, src in zip(averaged_buffers, buffers, strict=True):
            dst.copy_(src)
        self.num_updates += 1
        return 1.0 - rate

    @torch.no_grad()
    def copy_to(self, module: nn.Module | None = None) -> None:
        """Copy the averaged parameters and buffers into ``module`` (default: the model)."""
        module = self.model if module is None else module
        _check_same_layout(module, self.averaged, "module", "averaged network")
        for dst, src in zip(_tensors(module), _tensors(self.averaged), strict=True):
            dst.copy_(src)

    def store(self, module: nn.Module | None = None) -> None:
        """Keep a copy of ``module``'s parameters and buffers (default: the model) for :meth:`restore`."""
        module = self.model if module is None else module
        self.stored = [t.detach().clone() for t in _tensors(module)]

    @torch.no_grad()
    def restore(self, module: nn.Module | None = None) -> None:
        """Copy what :meth:`store` kept back into ``module`` (default: the model); the copy is kept."""
        if self.stored is None:
            raise StateError("this EMA has no stored weights to restore: call store() first")
        module = self.model if module is None else module
        tensors = _tensors(module)
        _check_tensor_list(self.stored, tensors, "stored weights")
        for dst, src in zip(tensors, self.stored, strict=True):
            dst.copy_(src)

    @contextmanager
    def average_parameters(self, module: nn.Module | None = None) -> Iterator[None]:
        """Run the body with the averaged weights in ``module`` (default: the model); then restore its own."""
        self.store(module)
        self.copy_to(module)
        try:
            yield
        finally:
            self.restore(module)

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> EMA:
        """Move the averaged network and the stored weights (floating-point tensors also to ``dtype``)."""
        self.averaged.to(device=device, dtype=dtype)
        self.relist()
        if self.stored is not None:
            self.stored = [t.to(device=device, dtype=dtype) if t.is_floating_point() else t.to(device=device)
                           for t in self.stored]
        return self

    def state_dict(self, weights: bool = True) -> dict[str, Any]:
        """Schedule, rate and update count (:data:`RATE_STATE`); with ``weights``, also ``averaged`` (the
        averaged network's state dict) and ``stored`` (list of tensors or None). Tensors are references, as
        in torch. Momentum keeps ``weights=False``: its target network's weights are in its own state dict."""
        state: dict[str, Any] = {"schedule": self.schedule, "rate": self.rate, "total_steps": self.total_steps,
                                 "warmup": self.warmup, "num_updates": self.num_updates}
        if weights:
            state["averaged"] = self.averaged.state_dict()
            state["stored"] = self.stored
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Load a :meth:`state_dict` (with or without weights); raises :class:`StateError`, changing nothing,
        on missing or extra keys, wrong types or values, or tensors of other names or shapes."""
        rates = _checked_rate_state(state, allowed_extra=("averaged", "stored"))
        stored = None
        if "averaged" in state:
            averaged = state["averaged"]
            own = self.averaged.state_dict()
            if not isinstance(averaged, Mapping) or set(averaged) != set(own):
                got = sorted(averaged) if isinstance(averaged, Mapping) else type(averaged).__name__
                raise StateError(f"EMA state 'averaged' must have keys {sorted(own)}, got {got}")
            for name, tensor in own.items():
                if isinstance(tensor, torch.Tensor):
                    _check_tensor(averaged[name], tensor, f"EMA state 'averaged' {name!r}")
            if state["stored"] is not None:
                tensors = _tensors(self.model)
                _check_tensor_list(state["stored"], tensors, "EMA state 'stored'")
                stored = [s.detach().to(t).clone() for s, t in zip(state["stored"], tensors, strict=True)]
            self.averaged.load_state_dict(averaged)
            self.stored = stored
            self.relist()
        for key, value in rates.items():
            setattr(self, key, value)


def _checked_rate_state(state: Any, allowed_extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """The :data:`RATE_STATE` entries of ``state``, type- and range-checked (``rate`` as float).

    ``state`` may also hold all of ``allowed_extra`` (or none of them), and nothing else.
    """
    keys = set(state) if isinstance(state, Mapping) else None
    if keys is None or keys not in (set(RATE_STATE), set(RATE_STATE) | set(allowed_extra)):
        got = sorted(keys) if keys is not None else type(state).__name__
        expected = sorted(RATE_STATE) + ([f"(and {', '.join(allowed_extra)})"] if allowed_extra else [])
        raise StateError(f"EMA state must have keys {expected}, got {got}")
    for key, kind in RATE_STATE.items():
        value = state[key]
        if kind is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        else:
            ok = isinstance(value, kind) and (kind is bool or not isinstance(value, bool))
        if not ok:
            raise StateError(f"EMA state {key!r} must be {kind.__name__}, got {value!r}")
    if state["schedule"] not in SCHEDULES:
        raise StateError(f"EMA state 'schedule' must be one of {', '.join(SCHEDULES)}, got {state['schedule']!r}")
    if not 0.0 <= state["rate"] <= 1.0:
        raise StateError(f"EMA state 'rate' must be in [0, 1], got {state['rate']!r}")
    if state["num_updates"] < 0 or state["total_steps"] < 0:
        raise StateError(f"EMA state counts must be >= 0, got num_updates {state['num_updates']}, "
                         f"total_steps {state['total_steps']}")
    return {key: float(state[key]) if key == "rate" else state[key] for key in RATE_STATE}


def _floating_parameters(module: nn.Module) -> list[torch.Tensor]:
    return [p for p in module.parameters() if p.is_floating_point()]


def _tensors(module: nn.Module) -> list[torch.Tensor]:
    """Parameters, then buffers: what copy_to, store and restore move."""
    return [*module.parameters(), *module.buffers()]


def _check_same_layout(module: nn.Module, reference: nn.Module, name: str, reference_name: str) -> None:
    """StateError unless both modules have parameters and buffers of the same names and shapes, in order."""
    layout = [(key, tuple(t.shape)) for key, t in [*module.named_parameters(), *module.named_buffers()]]
    expected = [(key, tuple(t.shape)) for key, t in [*reference.named_parameters(), *reference.named_buffers()]]
    if layout != expected:
        first = next((pair for pair in zip(layout, expected) if pair[0] != pair[1]), None)
        detail = (f"{first[0][0]} {first[0][1]} vs {first[1][0]} {first[1][1]}" if first
                  else f"{len(layout)} vs {len(expected)} tensors")
        raise StateError(f"{name} and {reference_name} differ in parameters or buffers: {detail}")


def _check_tensor(value: Any, reference: torch.Tensor, what: str) -> None:
    if not isinstance(value, torch.Tensor):
        raise StateError(f"{what} must be a tensor, got {type(value).__name__}")
    if value.shape != reference.shape:
        raise StateError(f"{what} has shape {tuple(value.shape)}, expected {tuple(reference.shape)}")


def _check_tensor_list(values: Any, reference: list[torch.Tensor], what: str) -> None:
    if not isinstance(values, list) or len(values) != len(reference):
        got = f"{len(values)} entries" if isinstance(values, list) else type(values).__name__
        raise StateError(f"{what} must be a list of {len(reference)} tensors, got {got}")
    for index, (value, tensor) in enumerate(zip(values, reference, strict=True)):
        _check_tensor(value, tensor, f"{what} [{index}]")
