"""The study design in tensors: entry times, case weights and strata, as the losses, the C-index and the Cox
baselines take them.

A design field is None when it is not used; the plain code paths (and their numbers) are then exactly those
of a model without it. ``strata`` holds int64 codes 0..S-1 of the model's stratum levels
(:func:`survmom.data.fit_strata`).
"""

from __future__ import annotations

from typing import Any

import torch

from survmom.core.losses import breslow_baseline, cox_median, cox_survival

DESIGN_FIELDS = ("entry", "weight", "strata")


def design_kwargs(data: Any, rows: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """The design fields of ``data`` (an object with ``entry``, ``weight``, ``strata`` attributes, each a tensor
    (n,) or None) that are used, as keyword arguments; ``rows``: only these rows (index_select)."""
    fields = {name: getattr(data, name) for name in DESIGN_FIELDS if getattr(data, name, None) is not None}
    if rows is not None:
        fields = {name: value.index_select(0, rows) for name, value in fields.items()}
    return fields


def stratified_baselines(log_hz: torch.Tensor, event: torch.Tensor, time: torch.Tensor, strata: torch.Tensor,
                         levels: int, *, entry: torch.Tensor | None = None, weight: torch.Tensor | None = None
                         ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The Breslow baseline (times, cumulative hazard) of each stratum 0..levels-1, from its own rows with the
    design's risk sets (:func:`survmom.core.losses.breslow_baseline` per stratum)."""
    baselines = []
    for code in range(levels):
        rows = torch.nonzero(strata == code).flatten()
        fields = {name: value.index_select(0, rows) for name, value in (("entry", entry), ("weight", weight))
                  if value is not None}
        baselines.append(breslow_baseline(log_hz.index_select(0, rows), event.index_select(0, rows),
                                          time.index_select(0, rows), **fields))
    return baselines


def stratified_survival(log_hz: torch.Tensor, strata: torch.Tensor,
                        baselines: list[tuple[torch.Tensor, torch.Tensor]], times: torch.Tensor, *,
                        paired: bool = False) -> torch.Tensor:
    """Cox ``S(t | x) = exp(-H0_s(t) exp(log_hz))`` with each row's stratum baseline ``H0_s``: (n, m) at
    ``times`` (m,), or (n,) at each row's own time with ``paired`` (``times`` (n,))."""
    out = torch.empty((len(log_hz),) if paired else (len(log_hz), len(times)), dtype=torch.float64)
    for code, (base_times, base_cumhaz) in enumerate(baselines):
        rows = torch.nonzero(strata == code).flatten()
        if len(rows):
            at = times.index_select(0, rows) if paired else times
            out[rows] = cox_survival(log_hz.index_select(0, rows), base_times, base_cumhaz, at, paired=paired)
    return out


def stratified_median(log_hz: torch.Tensor, strata: torch.Tensor,
                      baselines: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """Median survival time (n,) of each row from its stratum's baseline (``inf`` where S stays above 0.5)."""
    out = torch.empty(len(log_hz), dtype=torch.float64)
    for code, (base_times, base_cumhaz) in enumerate(baselines):
        rows = torch.nonzero(strata == code).flatten()
        if len(rows):
            out[rows] = cox_median(log_hz.index_select(0, rows), base_times, base_cumhaz)
    return out
