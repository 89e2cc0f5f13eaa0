"""Validation of metric inputs: tensors (or anything ``torch.as_tensor`` takes) to checked float64 / bool
tensors, or a :class:`~survmom.errors.SurvmomError` naming the argument."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from survmom.errors import SurvmomError

_F64 = torch.float64


def as_float(x: Any, name: str, *, allow_inf: bool = False) -> Tensor:
    """``x`` as a float64 tensor without NaN (and without +-inf unless ``allow_inf``)."""
    t = torch.as_tensor(x).detach()
    if t.is_complex() or t.dtype == torch.bool:
        raise SurvmomError(f"{name} must hold real numbers, got dtype {t.dtype}")
    t = t.to(_F64)
    bad = torch.isnan(t) if allow_inf else ~torch.isfinite(t)
    if bool(bad.any()):
        kind = "NaN" if allow_inf else "NaN or infinite"
        first = int(bad.flatten().nonzero()[0])
        raise SurvmomError(f"{name} contains {kind} values (first at flat index {first})")
    return t


def as_event(x: Any, name: str = "event") -> Tensor:
    """``x`` as a bool tensor; accepts bool, or numbers that are all 0 or 1."""
    t = torch.as_tensor(x).detach()
    if t.dtype == torch.bool:
        return t
    if t.is_complex() or not bool(((t == 0) | (t == 1)).all()):
        raise SurvmomError(f"{name} must be bool or 0/1 valued, got dtype {t.dtype} with other values")
    return t != 0


def event_time(event: Any, time: Any, n: int | None = None) -> tuple[Tensor, Tensor]:
    """Validated 1-D ``(event, time)`` of equal length (``n`` if given), on ``time``'s device."""
    e = as_event(event)
    t = as_float(time, "time")
    if e.ndim != 1 or t.ndim != 1 or e.shape[0] != t.shape[0] or (n is not None and t.shape[0] != n):
        want = "" if n is None else f" (n = {n} predictions)"
        raise SurvmomError(
            f"event and time must be 1-D of equal length{want}, got shapes {tuple(e.shape)}, {tuple(t.shape)}"
        )
    return e.to(t.device), t


def risk_event_time(risk: Any, event: Any, time: Any) -> tuple[Tensor, Tensor, Tensor]:
    """Validated 1-D ``(risk, event, time)`` of equal length."""
    r = as_float(risk, "risk", allow_inf=True)
    if r.ndim != 1:
        raise SurvmomError(f"risk must be 1-D (n,), got shape {tuple(r.shape)}")
    e, t = event_time(event, time, r.shape[0])
    return r.to(t.device), e, t


def train_data(train_event: Any, train_time: Any, device: torch.device) -> tuple[Tensor, Tensor]:
    """Validated 1-D non-empty ``(train_event, train_time)`` on ``device``."""
    e = as_event(train_event, "train_event").to(device)
    t = as_float(train_time, "train_time").to(device)
    if e.ndim != 1 or t.ndim != 1 or e.shape[0] != t.shape[0] or t.shape[0] == 0:
        raise SurvmomError(
            f"train_event and train_time must be 1-D, non-empty and of equal length, got shapes "
            f"{tuple(e.shape)} and {tuple(t.shape)}"
        )
    return e, t


def eval_times(times: Any, time: Tensor) -> Tensor:
    """Validated evaluation ``times`` (m,): strictly increasing, inside the test follow-up [min, max)."""
    ts = as_float(times, "times").to(time.device).reshape(-1)
    if ts.numel() == 0:
        raise SurvmomError("times must contain at least one time point")
    if ts.numel() > 1 and not bool((ts[1:] > ts[:-1]).all()):
        raise SurvmomError("times must be strictly increasing")
    lo, hi = float(time.min()), float(time.max())
    if float(ts[0]) < lo or float(ts[-1]) >= hi:
        raise SurvmomError(
            f"times must lie within the follow-up of the test data [{lo:g}, {hi:g}), "
            f"got [{float(ts[0]):g}, {float(ts[-1]):g}]"
        )
    return ts


def optional(values: Any, name: str, like: Tensor, *, allow_inf: bool = False) -> Tensor | None:
    """An optional per-row field as float64 (n,) like ``like``, or None."""
    if values is None:
        return None
    t = as_float(values, name, allow_inf=allow_inf).to(like.device)
    if t.shape != like.shape:
        raise SurvmomError(f"{name} must have shape {tuple(like.shape)}, got {tuple(t.shape)}")
    return t


def weights(weight: Any, like: Tensor, name: str = "weight") -> Tensor | None:
    """Optional case weights (n,): finite and >= 0."""
    w = optional(weight, name, like)
    if w is not None and bool((w < 0).any()):
        raise SurvmomError(f"{name} must be >= 0, got {float(w.min()):g}")
    return w
