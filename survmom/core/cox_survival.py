"""Cox survival curves and medians from a Breslow baseline: ``S(t|x) = exp(-H0(t) e^x)``."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from survmom.core.tensor_checks import as_times as _as_times
from survmom.core.tensor_checks import check_float as _check_float
from survmom.core.tensor_checks import check_paired as _check_paired
from survmom.core.tensor_checks import flat as _flat
from survmom.core.weibull import LOG_LN2 as _LOG_LN2
from survmom.errors import SurvmomError

__all__ = ["cox_median", "cox_survival"]


def _check_baseline(baseline_times: Tensor, baseline_cumhaz: Tensor) -> None:
    if baseline_times.dim() != 1 or baseline_times.shape != baseline_cumhaz.shape:
        raise SurvmomError(
            "baseline_times and baseline_cumhaz must both have shape (k,), got "
            f"{tuple(baseline_times.shape)} and {tuple(baseline_cumhaz.shape)}"
        )


def cox_survival(log_hz: Tensor, baseline_times: Tensor, baseline_cumhaz: Tensor, times: Tensor, *,
                 paired: bool = False) -> Tensor:
    """Cox survival ``S(t|x) = exp(-H0(t) exp(log_hz))`` at the given times.

    ``H0`` is the right-continuous step function through ``(baseline_times, baseline_cumhaz)`` (as returned
    by :func:`breslow_baseline`): 0 before the first time, constant after the last.

    Args:
        log_hz: (n,) or (n, 1) log relative hazards, on the scale used to fit the baseline.
        baseline_times: (k,) ascending times.
        baseline_cumhaz: (k,) baseline cumulative hazard at ``baseline_times``.
        times: (m,) evaluation times, same unit as ``baseline_times``; with ``paired``, (n,): one per row.

    Returns:
        (n, m) survival probabilities in ``log_hz``'s dtype; with ``paired``, (n,): ``S(times_i | x_i)``.
    """
    _check_float(log_hz, "log_hz")
    x = _flat(log_hz, "log_hz").to(torch.float64)
    _check_baseline(baseline_times, baseline_cumhaz)
    t = _as_times(times)
    if paired:
        _check_paired(t, x.shape[0])
    shape = (x.shape[0],) if paired else (x.shape[0], t.shape[0])
    if baseline_times.shape[0] == 0:
        return torch.ones(shape, dtype=log_hz.dtype, device=log_hz.device)
    step = torch.searchsorted(baseline_times.to(torch.float64), t, right=True) - 1
    log_h0 = torch.log(baseline_cumhaz.to(torch.float64))[step.clamp_min(0)]
    log_h0 = torch.where(step >= 0, log_h0, -math.inf)
    log_h = torch.add(log_h0, x if paired else x[:, None])
    if log_h.requires_grad:  # autograd keeps each intermediate result
        return torch.exp(-torch.exp(log_h)).to(log_hz.dtype)
    # In place, the same numbers: at 10^6 rows x 1000 times a fresh (n, m) temporary costs more than an exp.
    return log_h.exp_().neg_().exp_().to(log_hz.dtype)


def cox_median(log_hz: Tensor, baseline_times: Tensor, baseline_cumhaz: Tensor) -> Tensor:
    """Median survival time: the smallest baseline time with ``S(t|x) <= 0.5``, else ``inf``.

    ``S <= 0.5`` iff ``log H0(t) >= log(ln 2) - log_hz``; ``H0`` is non-decreasing so one binary search per
    row finds it. Rows whose survival never reaches 0.5 by the last baseline time get ``inf`` (as lifelines'
    ``predict_median``).

    Args:
        log_hz: (n,) or (n, 1) log relative hazards.
        baseline_times: (k,) ascending times.
        baseline_cumhaz: (k,) baseline cumulative hazard at ``baseline_times``.

    Returns:
        (n,) medians, same unit as ``baseline_times``, in its dtype if floating point else ``log_hz``'s.
    """
    _check_float(log_hz, "log_hz")
    x = _flat(log_hz, "log_hz").to(torch.float64)
    _check_baseline(baseline_times, baseline_cumhaz)
    dtype = baseline_times.dtype if baseline_times.is_floating_point() else log_hz.dtype
    k = baseline_times.shape[0]
    if k == 0:
        return torch.full_like(x, math.inf, dtype=dtype)
    log_h0 = torch.log(baseline_cumhaz.to(torch.float64)).contiguous()
    idx = torch.searchsorted(log_h0, (_LOG_LN2 - x).contiguous())
    median = baseline_times.to(torch.float64)[idx.clamp_max(k - 1)]
    return torch.where(idx < k, median, math.inf).to(dtype)
