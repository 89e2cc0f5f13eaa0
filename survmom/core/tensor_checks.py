"""Argument checks shared by the survival losses and survival functions (tensors in, SurvmomError out)."""

from __future__ import annotations

import torch
from torch import Tensor

from survmom.errors import SurvmomError


def choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise SurvmomError(f"{name} must be one of {', '.join(map(repr, allowed))}, got {value!r}")
    return value


def flat(values: Tensor, name: str) -> Tensor:
    """View a (n,) or (n, 1) tensor as (n,)."""
    if values.dim() == 1:
        return values
    if values.dim() == 2 and values.shape[1] == 1:
        return values.reshape(-1)
    raise SurvmomError(f"{name} must have shape (n,) or (n, 1), got {tuple(values.shape)}")


def check_float(values: Tensor, name: str) -> None:
    if not values.is_floating_point():
        raise SurvmomError(f"{name} must be a floating point tensor, got dtype {values.dtype}")


def check_event_time(event: Tensor, time: Tensor, n: int, name: str) -> None:
    for what, t in (("event", event), ("time", time)):
        if t.dim() != 1 or t.shape[0] != n:
            raise SurvmomError(
                f"{what} must have shape ({n},) to match {name} with {n} rows, got {tuple(t.shape)}"
            )


def as_times(times: Tensor) -> Tensor:
    """Evaluation times as a (m,) float64 tensor (a 0-d tensor counts as one time)."""
    if times.dim() > 1:
        raise SurvmomError(f"times must have shape (m,), got {tuple(times.shape)}")
    return times.reshape(-1).to(torch.float64)



def check_paired(times: Tensor, n: int) -> None:
    if times.shape[0] != n:
        raise SurvmomError(f"paired times must have one time per row, shape ({n},), got {tuple(times.shape)}")


def check_design_field(values: Tensor | None, n: int, name: str) -> None:
    """A design field (entry, weight or strata) is None or has shape (n,)."""
    if values is not None and (values.dim() != 1 or values.shape[0] != n):
        raise SurvmomError(f"{name} must have shape ({n},) to match the {n} rows, got {tuple(values.shape)}")
