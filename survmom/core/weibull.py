r"""Weibull accelerated failure time model: loss, survival, median (pure functions of tensors).

Scale :math:`\lambda` and shape :math:`\rho` as in lifelines' ``WeibullAFTFitter``:
:math:`S(t) = \exp(-(t/\lambda)^\rho)`, :math:`h(t) = (\rho/\lambda)(t/\lambda)^{\rho-1}`. The negative
log-likelihood of rows with case weights :math:`w_i` and entry times :math:`e_i` (left truncation: the
likelihood is conditioned on survival to entry, Klein & Moeschberger 2003, *Survival Analysis*, sec. 3.4;
lifelines' ``entry_col``) is

.. math::
    -\ell = -\sum_i w_i \big[\delta_i \log h(t_i) + \log S(t_i) - \log S(e_i)\big],

median :math:`\lambda (\ln 2)^{1/\rho}`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from survmom.core.tensor_checks import as_times, check_design_field, check_event_time, check_float, check_paired, choice
from survmom.errors import SurvmomError

__all__ = ["weibull_log_median", "weibull_loss", "weibull_median", "weibull_survival"]

_REDUCTIONS = ("mean", "sum")
# -log S = (t/lambda)^rho = exp(z) is continued linearly in z beyond z = _WEIBULL_Z_LINEAR (H > 4.85e8).
_WEIBULL_Z_LINEAR = 20.0
LOG_LN2 = math.log(math.log(2.0))


def _weibull_params(log_params: Tensor) -> tuple[Tensor, Tensor]:
    """Split (n, 2) / (n, 1) / (n,) log parameters into float64 (log scale, log shape), each (n,)."""
    check_float(log_params, "log_params")
    p = log_params.to(torch.float64)
    if p.dim() == 2 and p.shape[1] == 2:
        return p[:, 0], p[:, 1]
    if p.dim() == 1 or (p.dim() == 2 and p.shape[1] == 1):
        p = p.reshape(-1)
        return p, torch.zeros_like(p)
    raise SurvmomError(f"log_params must have shape (n, 2), (n, 1) or (n,), got {tuple(log_params.shape)}")


def weibull_loss(log_params: Tensor, event: Tensor, time: Tensor, reduction: str = "mean", *,
                 entry: Tensor | None = None, weight: Tensor | None = None) -> Tensor:
    r"""Negative Weibull AFT log-likelihood ``-sum_i w_i [delta_i log h(t_i) + log S(t_i) - log S(e_i)]``.

    With ``a = log lambda``, ``b = log rho`` and ``z = rho (log t - a) = log (t/lambda)^rho``:
    ``log h(t) = b + z - log t`` and ``-log S(t) = exp(z)``: the term is
    ``w (exp(z) - exp(z_e) - delta (b + z - log t))``, ``z_e`` the same at the entry time (0 for no entry or
    entry 0). Computed in float64, returned in ``log_params``'s dtype.

    Limits: times are clamped below at the smallest positive normal of ``time``'s dtype (times must be > 0;
    the clamp only avoids ``log 0``). For ``z > 20`` (cumulative hazard above e^20 = 4.85e8, S < e^-4.8e8)
    ``exp(z)`` is continued by its tangent ``e^20 (1 + z - 20)``, so loss and gradients stay finite (and
    still push the prediction the right way) for log parameters up to about +-50 even in float32; below
    that the likelihood is exact. Log shapes above ~700 overflow float64.

    Args:
        log_params: (n, 2) = (log scale, log shape), or (n, 1) / (n,) log scale with log shape 0
            (exponential model). Scale is in the unit of ``time``.
        event: (n,) bool or 0/1.
        time: (n,) event or censoring times, > 0.
        reduction: ``"mean"`` divides the sum by the sum of the weights (n without weights), ``"sum"`` does
            not.
        entry: optional (n,) entry times >= 0 and < ``time`` (left truncation), same unit as ``time``.
        weight: optional (n,) case weights >= 0.

    Returns:
        A 0-d tensor in ``log_params``'s dtype; 0 (attached to the graph) when n = 0 (or the weights sum to
        0, with ``mean``).

    Example:
        >>> log_params = torch.tensor([[1.0, 0.2], [1.5, 0.2]])
        >>> event, time = torch.tensor([1, 0]), torch.tensor([2.0, 3.0])
        >>> round(weibull_loss(log_params, event, time, reduction="sum").item(), 4)
        2.1678
        >>> round(weibull_loss(log_params, event, time, reduction="sum", entry=torch.tensor([1.0, 0.0])).item(), 4)
        1.873
    """
    mean = choice("reduction", reduction, _REDUCTIONS) == "mean"
    log_scale, log_shape = _weibull_params(log_params)
    n = log_scale.shape[0]
    check_event_time(event, time, n, "log_params")
    check_design_field(entry, n, "entry")
    check_design_field(weight, n, "weight")
    if n == 0:
        return log_params.reshape(-1)[:0].sum()
    tiny = torch.finfo(time.dtype if time.is_floating_point() else torch.float32).tiny
    log_t = torch.log(time.to(torch.float64).clamp_min(tiny))
    shape = torch.exp(log_shape)
    z = shape * (log_t - log_scale)
    terms = _cumulative_hazard(z) - event.to(torch.float64) * (log_shape + z - log_t)
    if entry is not None:
        entry64 = entry.to(device=z.device, dtype=torch.float64)
        z_entry = shape * (torch.log(entry64.clamp_min(tiny)) - log_scale)
        terms = terms - torch.where(entry64 > 0, _cumulative_hazard(z_entry), 0.0)
    if weight is None:
        nll, total = terms.sum(), n
    else:
        weight64 = weight.to(device=z.device, dtype=torch.float64)
        nll, total = (weight64 * terms).sum(), weight64.sum().item()
    if mean and total == 0:
        return log_params.reshape(-1)[:0].sum()
    return (nll / total if mean else nll).to(log_params.dtype)


def _cumulative_hazard(z: Tensor) -> Tensor:
    """``exp(z)``, continued by its tangent beyond ``z = _WEIBULL_Z_LINEAR``."""
    cap = _WEIBULL_Z_LINEAR
    return torch.where(z <= cap, torch.exp(z.clamp_max(cap)), math.exp(cap) * (1.0 + (z - cap)))


def weibull_survival(log_params: Tensor, times: Tensor, *, paired: bool = False) -> Tensor:
    """Weibull survival ``S(t|x) = exp(-(t/lambda)^rho)`` at the given times.

    Args:
        log_params: (n, 2) = (log scale, log shape), or (n, 1) / (n,) log scale with shape 1.
        times: (m,) evaluation times, same unit as the training time; ``t <= 0`` gives ``S = 1``; with
            ``paired``, (n,): one per row.

    Returns:
        (n, m) survival probabilities in ``log_params``'s dtype; with ``paired``, (n,): ``S(times_i | x_i)``.
    """
    log_scale, log_shape = _weibull_params(log_params)
    log_t = torch.log(as_times(times).clamp_min(0.0))
    if paired:
        check_paired(log_t, log_scale.shape[0])
        shape, z = torch.exp(log_shape), torch.sub(log_t, log_scale)
    else:
        shape, z = torch.exp(log_shape)[:, None], torch.sub(log_t[None, :], log_scale[:, None])
    if z.requires_grad or shape.requires_grad:  # autograd keeps each intermediate result
        return torch.exp(-torch.exp(shape * z)).to(log_params.dtype)
    # In place, the same numbers: at 10^6 rows x 1000 times a fresh (n, m) temporary costs more than an exp.
    return z.mul_(shape).exp_().neg_().exp_().to(log_params.dtype)


def weibull_median(log_params: Tensor) -> Tensor:
    """Weibull median survival time ``lambda (ln 2)^(1/rho) = exp(a + log(ln 2) e^-b)``, (n,).

    Args:
        log_params: (n, 2) = (log scale, log shape), or (n, 1) / (n,) log scale with shape 1.

    Returns:
        (n,) medians in the unit of time, in ``log_params``'s dtype.
    """
    return torch.exp(_weibull_log_median(log_params)).to(log_params.dtype)


def weibull_log_median(log_params: Tensor) -> Tensor:
    """Log of :func:`weibull_median`, ``a + log(ln 2) e^-b``, (n,) in ``log_params``'s dtype: finite (and in
    the order of the medians) where the median itself overflows to inf or underflows to 0."""
    return _weibull_log_median(log_params).to(log_params.dtype)


def _weibull_log_median(log_params: Tensor) -> Tensor:
    log_scale, log_shape = _weibull_params(log_params)  # float64
    return log_scale + LOG_LN2 * torch.exp(-log_shape)
