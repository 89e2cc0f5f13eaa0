r"""Survival losses and survival functions: pure functions of tensors.

Notation: sample ``i`` has log relative hazard :math:`x_i` (``log_hz``), observed time :math:`t_i` (event or
censoring, any unit) and event indicator :math:`\delta_i`. The risk set of time :math:`t` is
:math:`R(t) = \{j : t_j \ge t\}`.

Cox proportional hazards (Cox 1972), :math:`h(t \mid x) = h_0(t)\, e^{x}`. With
:math:`\tau_1 < \dots < \tau_K` the distinct event times, :math:`H_k` the events at :math:`\tau_k`,
:math:`d_k = |H_k|`, :math:`R_k = \sum_{j \in R(\tau_k)} e^{x_j}` and :math:`D_k = \sum_{i \in H_k} e^{x_i}`,
the negative partial log-likelihood is

- Breslow (1974): :math:`-\ell = \sum_k \big[ d_k \log R_k - \sum_{i \in H_k} x_i \big]`,
- Efron (1977): :math:`-\ell = \sum_k \big[ \sum_{l=0}^{d_k-1} \log(R_k - \tfrac{l}{d_k} D_k)
  - \sum_{i \in H_k} x_i \big]`.

Both equal Cox's partial likelihood when there are no tied event times. One kernel computes them, with its
gradient, for rows sorted by descending time: :func:`cox_loss` sorts its samples, the Momentum bank keeps
its rows sorted and calls :func:`cox_loss_sorted`. The Breslow estimator of the baseline
cumulative hazard is :math:`\hat H_0(t) = \sum_{k: \tau_k \le t} d_k / R_k`, and
:math:`S(t \mid x) = \exp(-\hat H_0(t)\, e^{x})`.

Study designs (optional ``entry``, ``weight``, ``strata``, as lifelines' ``CoxPHFitter(entry_col=...,
weights_col=..., strata=...)`` and ``CoxTimeVaryingFitter``): the risk set of :math:`t` becomes
:math:`\{j : e_j < t \le t_j, s_j = s\}` (delayed entry / counting-process rows, Therneau & Grambsch 2000,
ch. 3; strata, Kalbfleisch & Prentice 2002, sec. 4.4), risk sums are weighted, :math:`R_k = \sum w_j
e^{x_j}`, and Efron's term of the :math:`d_k` events tied at :math:`\tau_k` is
:math:`a_k \sum_l \log(R_k - \tfrac{l}{d_k} D_k) - \sum_{i \in H_k} w_i x_i` with :math:`a_k` their mean
weight (lifelines' ``_get_efron_values_single``). The same kernel computes it, with the risk sets of
:mod:`~survmom.core.risk_sets`. The Weibull loss lives in :mod:`~survmom.core.weibull`.

References:
    Cox, D. R. (1972). Regression models and life-tables. JRSS B 34(2), 187-220.
    Breslow, N. (1974). Covariance analysis of censored survival data. Biometrics 30(1), 89-99.
    Efron, B. (1977). The efficiency of Cox's likelihood function for censored data. JASA 72(359), 557-565.
    Therneau, T. M. & Grambsch, P. M. (2000). Modeling Survival Data: Extending the Cox Model. Springer, ch. 3.
    Kalbfleisch, J. D. & Prentice, R. L. (2002). The Statistical Analysis of Failure Time Data, 2nd ed. Wiley.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from survmom import choices
from survmom.core.cox_survival import cox_median, cox_survival
from survmom.core.risk_sets import Blocks, Design, DesignRows, event_log_sums, make_design, risk_log_sums, stratum_max
from survmom.core.risk_sets import design_rows as _design_rows
from survmom.core.sorting import descending_time_key
from survmom.core.tensor_checks import check_event_time as _check_event_time
from survmom.core.tensor_checks import check_float as _check_float
from survmom.core.tensor_checks import choice as _choice
from survmom.core.tensor_checks import flat as _flat
from survmom.core.weibull import weibull_log_median, weibull_loss, weibull_median, weibull_survival
from survmom.errors import SurvmomError

__all__ = [
    "breslow_baseline",
    "cox_loss",
    "cox_loss_sorted",
    "cox_median",
    "cox_survival",
    "weibull_log_median",
    "weibull_loss",
    "weibull_median",
    "weibull_survival",
]

_TIES = choices.TIES
_REDUCTIONS = ("mean", "sum")
# A max-shifted cumulative sum of exponentials is used while its smallest entry stays far above the subnormal
# range: terms flushed to zero or rounded as subnormals then change no sum by more than n * 2**-115 relative.
# Below it (log hazards spread over ~660 nats), torch.logcumsumexp.
_MIN_SHIFTED_SUM = 2.0**-960


# ---------------------------------------------------------------------------------------------- Cox kernel


def _log_cumsum_exp(values: Tensor) -> Tensor:
    """``log(cumsum(exp(values)))`` of values (n,) float64, n >= 1.

    As ``m + log(cumsum(exp(values - m)))`` with ``m = max(values)`` while the first (smallest) sum stays
    above ``_MIN_SHIFTED_SUM``; otherwise (and for NaN or inf) ``torch.logcumsumexp``, exact at any spread.
    """
    shift = values.max()
    sums = torch.cumsum(torch.exp(values - shift), 0)
    if sums[0].item() >= _MIN_SHIFTED_SUM:  # NaN fails too
        return torch.log(sums).add_(shift)
    return torch.logcumsumexp(values, 0)


class _Ties(NamedTuple):
    """Where the events of n rows sorted by descending time are, and who ties with whom (E events)."""

    event_pos: Tensor  # (E,) sorted positions of the events, ascending
    event_end: Tensor  # (E,) last sorted position whose time equals event k's: rows 0..event_end[k] are R(t_k)
    run: Tensor | None  # (E,) Efron only: index of event k's time among the event times; None without ties
    fraction: Tensor | None  # (E,) Efron only: f_k = l_k / d_k (float64), rank among the d_k tied events


def _ties(keys: Tensor, events: Tensor, efron: bool, event_pos: Tensor | None = None,
          strata: Tensor | None = None) -> _Ties:
    """:class:`_Ties` of rows sorted by ``keys`` (n,) ascending (equal exactly for tied times; with ``strata``
    (n,), in block order), ``events`` (n,) bool or 0/1 in that order. Two events tie when their risk sets end
    at the same row: equal times of one stratum."""
    n = keys.shape[0]
    if event_pos is None:
        event_pos = events.nonzero().view(-1)
    changes = keys[1:] != keys[:-1]
    if strata is not None:
        changes |= strata[1:] != strata[:-1]
    group_end = changes.nonzero().view(-1)  # last row of each distinct time (and stratum) but the last one
    if group_end.shape[0] >= n - 1:  # no tied times
        return _Ties(event_pos, event_pos, None, None)
    group_end = torch.cat((group_end, group_end.new_full((1,), n - 1)))
    # each row's group number, a running count of the changes before it (one pass, not a binary search per event)
    group = torch.cat((changes.new_zeros(1, dtype=torch.int64), torch.cumsum(changes, 0)))
    event_end = group_end.index_select(0, group.index_select(0, event_pos))
    if not efron or event_end.shape[0] < 2:
        return _Ties(event_pos, event_end, None, None)
    _, run, size = torch.unique_consecutive(event_end, return_inverse=True, return_counts=True)
    if size.shape[0] == event_end.shape[0]:  # no two events tie
        return _Ties(event_pos, event_end, None, None)
    first = torch.cumsum(size, 0).sub_(size)  # index of the first event of each time
    rank = torch.arange(run.shape[0], device=keys.device).sub_(first.index_select(0, run))
    return _Ties(event_pos, event_end, run, rank.to(torch.float64).div_(size.index_select(0, run)))


class _DesignParts(NamedTuple):
    """What a study design adds to the forward results (n sorted rows in block order, E events), float64."""

    design: Design
    row_shift: Tensor | None  # (n,) each row's stratum shift, (1,) for one stratum (None: plain prefix sums)
    stop: Tensor | None  # (n,) risk_sets.stop_events: each row is at risk for the events [first, stop)
    event_shift: Tensor | None  # (E,) the shift of each event's stratum, (1,) for one stratum
    share: Tensor | None  # (E,) a_k = mean weight of the events tied with event k (None: unweighted)
    event_weight: Tensor | None  # (E,) weight of each event (None: unweighted)


class _CoxParts(NamedTuple):
    """The forward results that the gradient reuses (n sorted rows, E events), all float64."""

    value: Tensor  # () negative partial log-likelihood, summed over the events
    x_event: Tensor  # (E,) log hazards of the events (plus their log weights, with weights)
    log_risk: Tensor  # (E,) log R_k
    log_den: Tensor  # (E,) log (R_k - f_k D_k)
    ties: _Ties
    design: _DesignParts | None = None


def _cox_value(x: Tensor, ties: _Ties, design: Design | None = None) -> _CoxParts:
    """Negative partial log-likelihood (sum) of rows sorted by descending time with log hazards ``x`` (n,)
    float64 and at least one event, in log space: ``log R`` from :func:`_log_cumsum_exp`, and Efron's
    ``log(R - f D) = log R + log1p(-f D/R)`` with ``D/R = sum_{i tied} exp(x_i - log R) <= 1``.

    With a ``design`` (rows in block order), ``x`` carries each row's log weight (``log w_j + x_j``), risk
    sums follow :mod:`~survmom.core.risk_sets` (entry, strata), and the value is lifelines' weighted one:
    ``sum_k [a_k sum_l log(R_k - l/d_k D_k) - sum_{i in H_k} w_i x_i]`` with ``a_k`` the mean weight of the
    ``d_k`` events tied at ``tau_k`` (``CoxPHFitter._get_efron_values_single``).
    """
    extra = None
    if design is None:
        log_risk = _log_cumsum_exp(x).index_select(0, ties.event_end)
    else:
        x_raw = x
        if design.log_weight is not None:
            x = x + design.log_weight
        log_risk, extra = _design_log_risk(x, ties, design)
    x_event = x.index_select(0, ties.event_pos)
    log_den = log_risk
    if ties.fraction is not None:
        tied = torch.zeros_like(log_risk).index_add_(0, ties.run, torch.exp(x_event - log_risk))  # D/R by time
        log_den = log_risk + torch.log1p(-ties.fraction * tied.index_select(0, ties.run))
    if extra is None:
        return _CoxParts((log_den - x_event).sum(), x_event, log_risk, log_den, ties)
    x_raw_event = x_event if x_raw is x else x_raw.index_select(0, ties.event_pos)
    if extra.share is None:
        value = (log_den - x_raw_event).sum()
    else:
        value = torch.where(extra.share > 0, extra.share * log_den, 0.0).sum() - extra.event_weight.dot(x_raw_event)
    return _CoxParts(value, x_event, log_risk, log_den, ties, extra)


def _design_log_risk(x: Tensor, ties: _Ties, design: Design) -> tuple[Tensor, _DesignParts]:
    """``log R_k`` (E,) of the design's risk sets for log weighted hazards ``x`` (n,), and the parts the
    gradient needs."""
    share = event_weight = None
    if design.weight is not None:
        # a_k: Breslow's denominators are equal within a tied group, so each event may carry its own weight;
        # Efron's differ, and each carries the group's mean weight
        event_weight = share = design.weight.index_select(0, ties.event_pos)
        if ties.run is not None:
            total = torch.zeros_like(event_weight).index_add_(0, ties.run, event_weight)
            size = torch.zeros_like(event_weight).index_add_(0, ties.run, torch.ones_like(event_weight))
            share = total.div_(size.clamp_(min=1.0)).index_select(0, ties.run)
    stop = design.stop
    if stop is None:  # weights only: the risk sets are prefixes, as without a design
        return _log_cumsum_exp(x).index_select(0, ties.event_end), _DesignParts(design, None, None, None, share,
                                                                                event_weight)
    row_shift = event_shift = stratum_max(x, design.strata, design.n_strata)
    blocks = None
    if design.strata is not None:
        row_shift = row_shift.index_select(0, design.strata)
        event_shift = row_shift.index_select(0, ties.event_pos)
        blocks = Blocks(design.strata, ties.event_pos)
    log_risk = risk_log_sums(x - row_shift, ties.event_end, stop, blocks).add_(event_shift)
    return log_risk, _DesignParts(design, row_shift, stop, event_shift, share, event_weight)


def _cox_grad(parts: _CoxParts, x_at: Tensor, position: Tensor) -> Tensor:
    """Gradient (B,) float64 of :func:`_cox_value`'s value at the sorted rows ``position`` (B,), whose log
    hazards are ``x_at`` (B,).

    ``d(-l)/dx_j = sum_{k: j in R_k} exp(x_j - log den_k) - delta_j (1 + sum_{k tied with j} f_k
    exp(x_j - log den_k))``. The first sum is ``exp(x_j + log S_k)`` with ``log S_k`` the reversed
    :func:`_log_cumsum_exp` of ``-log den`` from the first event k whose risk set holds j; Efron's term is
    ``exp(x_j - log R_k) * sum_{k tied} f_k exp(log R_k - log den_k)``, both factors bounded.

    With a design, ``x_j`` is ``log w_j + x_j``, the event terms ``w_j`` and ``a_k exp(x_j - log den_k)``,
    and the first sum runs over the events whose risk sets hold j, ``first_j <= k < stop_j``
    (:func:`~survmom.core.risk_sets.event_log_sums`).
    """
    log_risk, log_den, ties, extra = parts.log_risk, parts.log_den, parts.ties, parts.design
    share = None if extra is None else extra.share
    log_terms = log_den.neg()
    if extra is not None:
        design = extra.design
        if design.log_weight is not None:
            x_at = x_at + design.log_weight.index_select(0, position)
        if share is not None:
            log_terms = torch.where(share > 0, torch.log(share) - log_den, -math.inf)
    if extra is None or extra.row_shift is None:
        log_suffix = _log_cumsum_exp(log_terms.flip(0)).flip(0)
        log_suffix = torch.cat((log_suffix, log_suffix.new_full((1,), -math.inf)))  # no event at or after j
        grad = torch.exp(x_at + log_suffix.index_select(0, torch.searchsorted(ties.event_end, position)))
    else:
        assert extra.stop is not None and extra.event_shift is not None
        blocks = None if extra.design.strata is None else Blocks(extra.design.strata, ties.event_pos)
        sums = event_log_sums(log_terms + extra.event_shift, torch.searchsorted(ties.event_end, position),
                              extra.stop.index_select(0, position), blocks, position)
        shift = extra.row_shift if blocks is None else extra.row_shift.index_select(0, position)
        grad = torch.exp(x_at - shift + sums)
    event_term = torch.ones_like(log_den) if extra is None or extra.event_weight is None else extra.event_weight
    if ties.fraction is not None:
        ratio = torch.exp(log_risk - log_den) if share is None else torch.where(
            share > 0, share * torch.exp(log_risk - log_den), 0.0)
        per_time = torch.zeros_like(log_den).index_add_(0, ties.run, ties.fraction * ratio)
        tied = torch.exp(parts.x_event - log_risk)
        if share is not None:
            tied = torch.where(share > 0, tied, 0.0)
        event_term = torch.addcmul(event_term, tied, per_time.index_select(0, ties.run))
    k = torch.searchsorted(ties.event_pos, position).clamp_(max=ties.event_pos.shape[0] - 1)
    is_event = ties.event_pos.index_select(0, k) == position
    return grad.addcmul_(is_event, event_term.index_select(0, k), value=-1)


class _CoxNLL(torch.autograd.Function):
    """``scale`` times the value of :func:`_cox_value`, with :func:`_cox_grad` as its backward.

    The backward reads copies only (``x_at``, the parts): a caller may overwrite the sorted rows in between,
    as the Momentum bank's push does.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx, log_hz: Tensor, parts: _CoxParts, x_at: Tensor, position: Tensor, scale: float
    ) -> Tensor:
        ctx.parts, ctx.x_at, ctx.position, ctx.scale = parts, x_at, position, scale
        return (parts.value * scale).to(log_hz.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: Tensor) -> tuple[Tensor, None, None, None, None]:  # type: ignore[override]
        grad = _cox_grad(ctx.parts, ctx.x_at, ctx.position).mul_(grad_out.to(torch.float64) * ctx.scale)
        return grad.to(grad_out.dtype), None, None, None, None


def _cox_nll(log_hz: Tensor, position: Tensor, keys: Tensor, x: Tensor, events: Tensor, efron: bool,
             mean: bool, design_rows: DesignRows | None = None) -> Tensor:
    """The Cox loss of n rows sorted by ``keys`` (with strata: in block order, by stratum first), with the
    gradient flowing to ``log_hz`` (B,) at the sorted rows ``position`` (B,); ``x`` (n,) float64 holds every
    row's log hazard (``log_hz``'s values included). ``design_rows``: the rows' entry, weight and strata (in
    the same order), if any."""
    if design_rows is None or not design_rows.used:
        ties = _ties(keys, events, efron)
        n_events = ties.event_pos.shape[0]
        if n_events == 0:
            return log_hz[:0].sum()  # exactly 0 and attached, even if log_hz holds inf
        parts = _cox_value(x, ties)
        return _CoxNLL.apply(log_hz, parts, x.index_select(0, position), position,
                             1.0 / n_events if mean else 1.0)
    event_pos = events.nonzero().view(-1)
    design = make_design(keys, events, design_rows, event_pos)
    ties = _ties(keys, events, efron, event_pos, design.strata)
    if ties.event_pos.shape[0] == 0:
        return log_hz[:0].sum()
    parts = _cox_value(x, ties, design)
    total = 1.0
    if mean:
        weights = None if parts.design is None else parts.design.event_weight
        total = float(ties.event_pos.shape[0]) if weights is None else weights.sum().item()
        if total == 0:
            return log_hz[:0].sum()
    return _CoxNLL.apply(log_hz, parts, x.index_select(0, position), position, 1.0 / total if mean else 1.0)


def _cox_arguments(log_hz: Tensor, ties: str, reduction: str) -> tuple[Tensor, bool, bool]:
    """The checked arguments of a Cox loss: log hazards as (n,), whether Efron's ties, whether the mean."""
    efron = _choice("ties", ties, _TIES) == "efron"
    mean = _choice("reduction", reduction, _REDUCTIONS) == "mean"
    _check_float(log_hz, "log_hz")
    return _flat(log_hz, "log_hz"), efron, mean


def cox_loss(
    log_hz: Tensor,
    event: Tensor,
    time: Tensor,
    ties: str = "efron",
    reduction: str = "mean",
    presorted: tuple[Tensor, Tensor] | None = None,
    *,
    entry: Tensor | None = None,
    weight: Tensor | None = None,
    strata: Tensor | None = None,
) -> Tensor:
    r"""Negative Cox partial log-likelihood with Efron or Breslow handling of tied event times.

    .. math::
        -\ell = \sum_k \Big[ \sum_{l=0}^{d_k-1} \log\big(R_k - \tfrac{l}{d_k} D_k\big)
                - \sum_{i \in H_k} x_i \Big]

    (Efron; Breslow drops the :math:`\tfrac{l}{d_k} D_k` term), where :math:`R_k` sums ``exp(log_hz)`` over
    the risk set ``{j: time_j >= tau_k}``; see the module docstring. The samples are sorted by descending
    time and passed to the same kernel as :func:`cox_loss_sorted`, every row carrying a gradient.

    Args:
        log_hz: log relative hazards, (n,) or (n, 1), floating point.
        event: (n,) bool or 0/1; nonzero means the event was observed, zero means censored.
        time: (n,) event or censoring times, any unit; only their order and ties matter. Must not be NaN.
        ties: ``"efron"`` (default) or ``"breslow"``.
        reduction: ``"mean"`` divides the sum by the number of events, ``"sum"`` does not.
        presorted: optional (keys (n,), order (n,)): ``order`` sorts the samples by descending time and
            ``keys`` are :func:`~survmom.core.sorting.descending_time_key` of ``time[order]``; lets a caller
            that evaluates the loss many times on the same samples (L-BFGS) sort them once.
        entry: optional (n,) entry times < ``time`` (delayed entry / left truncation, or the start of a
            counting-process row): row j is at risk at t iff ``entry_j < t <= time_j`` (Therneau & Grambsch
            2000, ch. 3; lifelines' ``entry_col`` and ``CoxTimeVaryingFitter``).
        weight: optional (n,) case weights >= 0: weighted risk sums and event terms as lifelines'
            ``weights_col`` (Efron: ``a_k sum_l log(R_k - l/d_k D_k) - sum_{i in H_k} w_i x_i`` with ``a_k``
            the mean weight of the ``d_k`` tied events, ``R_k``, ``D_k`` weighted sums); ``"mean"`` then
            divides by the summed weight of the events.
        strata: optional (n,) int64 stratum codes >= 0: risk sets (and ties) never cross strata, the sum
            runs over every stratum (lifelines' ``strata``).

    Returns:
        A 0-d tensor of ``log_hz``'s dtype (computed in float64). With no events it is a zero that is
        still attached to the graph (zero gradient). The closed-form backward is not twice differentiable.

    Example:
        >>> log_hz = torch.tensor([0.5, -0.2, 0.1, 0.0])
        >>> event = torch.tensor([True, True, False, True])
        >>> time = torch.tensor([2.0, 2.0, 3.0, 5.0])
        >>> round(cox_loss(log_hz, event, time, ties="efron", reduction="sum").item(), 4)
        2.4257
        >>> round(cox_loss(log_hz, event, time, ties="breslow", reduction="sum").item(), 4)
        2.7402
    """
    flat, efron, mean = _cox_arguments(log_hz, ties, reduction)
    n = flat.shape[0]
    _check_event_time(event, time, n, "log_hz")
    keys, order = presorted if presorted is not None else torch.sort(descending_time_key(time))
    design = None
    if entry is not None or weight is not None or strata is not None:
        rows = _design_rows(time, entry, weight, strata)
        if rows.strata is not None:  # block order: by stratum, then descending time
            by_stratum = torch.sort(rows.strata.index_select(0, order), stable=True).indices
            keys, order = keys.index_select(0, by_stratum), order.index_select(0, by_stratum)
        design = rows.sorted(order)
    position = torch.empty_like(order).index_copy_(0, order, torch.arange(n, device=order.device))
    x = flat.detach().to(torch.float64).index_select(0, order)
    return _cox_nll(flat, position, keys, x, event.index_select(0, order), efron, mean, design)


def cox_loss_sorted(
    log_hz: Tensor,
    position: Tensor,
    keys: Tensor,
    values: Tensor,
    event: Tensor,
    ties: str = "efron",
    reduction: str = "mean",
    *,
    entry: Tensor | None = None,
    weight: Tensor | None = None,
    strata: Tensor | None = None,
) -> Tensor:
    r""":func:`cox_loss` over n rows already sorted by descending time (with ``strata``: by stratum, then by
    descending time), of which only B carry a gradient.

    This is the pooled loss of a memory bank: n = bank + batch rows merged by time, the bank rows being
    constants. The value equals ``cox_loss`` of all n rows; the gradient, at the batch rows only, is

    .. math::
        \frac{\partial (-\ell)}{\partial x_j} = \sum_{k:\, j \in R(\tau_k)} \frac{e^{x_j}}{R_k - f_k D_k}
        - \delta_j \Big(1 + \sum_{k \text{ tied with } j} \frac{f_k\, e^{x_j}}{R_k - f_k D_k}\Big)

    with :math:`f_k = l_k / d_k` for Efron and 0 for Breslow. Both are computed in log space: risk sums by a
    max-shifted cumulative sum, or ``torch.logcumsumexp`` when log hazards spread so far that it would
    underflow.

    Args:
        log_hz: (B,) or (B, 1) log hazards of the rows with gradient.
        position: (B,) int64, the sorted position of each ``log_hz`` row (distinct).
        keys: (n,) ascending keys of the sorted rows, equal exactly for tied times: −time (as the Momentum
            bank keeps them) or :func:`~survmom.core.sorting.descending_time_key`.
        values: (n,) float64 log hazards of the sorted rows: the constants, and ``log_hz`` (detached) at
            ``position`` (the caller writes them; this is not checked).
        event: (n,) bool event flags of the sorted rows.
        ties, reduction: as in :func:`cox_loss`.
        entry: optional (n,) the rows' entry times mapped to keys by the same map as ``keys`` (−entry for
            keys −time); weight (n,) float, strata (n,) int64 nondecreasing: as in :func:`cox_loss` (not
            checked here).

    Returns:
        A 0-d tensor of ``log_hz``'s dtype.

    Example:
        >>> keys = -torch.tensor([5.0, 3.0, 2.0, 2.0])  # four rows sorted by descending time
        >>> values = torch.tensor([0.0, 0.1, 0.5, -0.2], dtype=torch.float64)
        >>> event = torch.tensor([True, False, True, True])
        >>> batch = torch.tensor([0.5, -0.2], requires_grad=True)  # the rows at positions 2 and 3
        >>> loss = cox_loss_sorted(batch, torch.tensor([2, 3]), keys, values, event, reduction="sum")
        >>> round(loss.item(), 4)
        2.4257
    """
    flat, efron, mean = _cox_arguments(log_hz, ties, reduction)
    n = keys.shape[0]
    if values.shape != (n,) or event.shape != (n,) or position.shape != flat.shape:
        raise SurvmomError(
            f"cox_loss_sorted needs keys, values and event of shape ({n},) and one position per log_hz row, "
            f"got {tuple(values.shape)}, {tuple(event.shape)}, {tuple(position.shape)} for {tuple(flat.shape)}"
        )
    design = DesignRows(entry, weight, strata)
    return _cox_nll(flat, position, keys, values.detach().to(torch.float64), event, efron, mean,
                    design if design.used else None)


def breslow_baseline(log_hz: Tensor, event: Tensor, time: Tensor, *, entry: Tensor | None = None,
                     weight: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Breslow (1974) estimator of the Cox baseline cumulative hazard at the distinct event times.

    ``H0(tau_k) = sum_{k' <= k} d_k' / sum_{j in R(tau_k')} exp(log_hz_j)`` (risk sums in log space, so
    any finite ``log_hz`` is fine). ``H0`` is the baseline at ``log_hz = 0``: pass the linear predictor you
    will later give to :func:`cox_survival`. With ``entry`` the risk set of t is ``{j: entry_j < t <=
    time_j}``; with ``weight``, ``d_k`` is the summed weight of the events at ``tau_k`` and the risk sums are
    weighted (as lifelines' ``baseline_cumulative_hazard_``). One stratum: a stratified model calls it on
    each stratum's rows.

    Args:
        log_hz: (n,) or (n, 1) log relative hazards.
        event: (n,) bool or 0/1.
        time: (n,) event or censoring times.
        entry: optional (n,) entry times < ``time``; weight: optional (n,) case weights >= 0.

    Returns:
        ``(times, cumhaz)``: the k distinct event times ascending, (k,) in ``time``'s dtype, and ``H0`` at
        them, (k,) in ``log_hz``'s dtype. Both are empty when there are no events.
    """
    _check_float(log_hz, "log_hz")
    flat = _flat(log_hz, "log_hz")
    _check_event_time(event, time, flat.shape[0], "log_hz")
    keys, order = torch.sort(descending_time_key(time))
    events = event.index_select(0, order)
    rows = None
    if entry is not None or weight is not None:
        rows = _design_rows(time, entry, weight, None).sorted(order)
        design = make_design(keys, events, rows)
    ties = _ties(keys, events, False)
    ends, group, deaths = torch.unique_consecutive(ties.event_end, return_inverse=True, return_counts=True)
    if ends.shape[0] == 0:
        return time[:0], flat[:0]
    x = flat.to(torch.float64).index_select(0, order)
    if rows is None:
        log_risk = _log_cumsum_exp(x).index_select(0, ends)
        log_deaths = torch.log(deaths.to(torch.float64))
    else:
        log_risk = _design_log_risk(x if design.log_weight is None else x + design.log_weight, ties,
                                    design)[0].index_select(0, torch.cumsum(deaths, 0) - 1)
        log_deaths = torch.log(deaths.to(torch.float64)) if design.weight is None else torch.log(
            torch.zeros(ends.shape[0], dtype=torch.float64, device=x.device).index_add_(
                0, group, design.weight.index_select(0, ties.event_pos)))
    increments = torch.exp(log_deaths - log_risk)
    cumhaz = torch.cumsum(increments.flip(0), 0)
    return time.index_select(0, order.index_select(0, ends)).flip(0), cumhaz.to(log_hz.dtype)
