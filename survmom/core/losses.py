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

Both equal Cox's partial likelihood when there are no tied event times. The Breslow estimator of the baseline
cumulative hazard is :math:`\hat H_0(t) = \sum_{k: \tau_k \le t} d_k / R_k`, and
:math:`S(t \mid x) = \exp(-\hat H_0(t)\, e^{x})`.

Weibull accelerated failure time model with scale :math:`\lambda` and shape :math:`\rho` (as in lifelines'
``WeibullAFTFitter``): :math:`S(t) = \exp(-(t/\lambda)^\rho)`,
:math:`h(t) = (\rho/\lambda)(t/\lambda)^{\rho-1}`, negative log-likelihood
:math:`-\ell = -\sum_i [\delta_i \log h(t_i) + \log S(t_i)]`, median :math:`\lambda (\ln 2)^{1/\rho}`.

References:
    Cox, D. R. (1972). Regression models and life-tables. JRSS B 34(2), 187-220.
    Breslow, N. (1974). Covariance analysis of censored survival data. Biometrics 30(1), 89-99.
    Efron, B. (1977). The efficiency of Cox's likelihood function for censored data. JASA 72(359), 557-565.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from survmom import choices
from survmom.core.pooled_cox import pooled_cox, pooled_cox_grad
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
# The shifted fast path needs every risk-set sum far above the subnormal range, so that terms flushed to zero
# or rounded as subnormals cannot change a sum (relative effect < n * 2**-105); below it we use logcumsumexp.
_MIN_RISK_SUM = 2.0**-960
# -log S = (t/lambda)^rho = exp(z) is continued linearly in z beyond z = _WEIBULL_Z_LINEAR (H > 4.85e8).
_WEIBULL_Z_LINEAR = 20.0
_LOG_LN2 = math.log(math.log(2.0))
_LOG2_E = 1.0 / math.log(2.0)
# at::internal::GRAIN_SIZE: from this size torch sorts 1-D int64 CPU tensors with FBGEMM's radix sort.
_RADIX_MIN = 32_768
# Below this, a comparison sort of n beats a radix sort of _RADIX_MIN (one thread, AMD EPYC; with more
# threads the crossover is lower, but a contended OpenMP sort can stall for milliseconds).
_RADIX_PAD_FROM = 10_000
_RADIX_SORT_BUILT = (
    "fbgemm" in torch.backends.quantized.supported_engines and torch.backends.openmp.is_available()
)
# On CPU, merge_order, merge_runs and cox_loss_sorted (survmom.core.pooled_cox) run on NumPy views of the tensors:
# a training step calls them on a few thousand rows, where an operation's price is mostly the call, and a
# NumPy call costs about half of a PyTorch one there. False takes the tensor path that other devices use
# (tests run both).
_NUMPY_ON_CPU = True


def numpy_path(*tensors: Tensor) -> bool:
    """Whether the per-step work on these tensors runs on NumPy views of them (all on CPU; see above)."""
    return _NUMPY_ON_CPU and all(t.device.type == "cpu" for t in tensors)


# ----------------------------------------------------------------------------------------------- validation


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise SurvmomError(f"{name} must be one of {', '.join(map(repr, allowed))}, got {value!r}")
    return value


def _flat(values: Tensor, name: str) -> Tensor:
    """View a (n,) or (n, 1) tensor as (n,)."""
    if values.dim() == 1:
        return values
    if values.dim() == 2 and values.shape[1] == 1:
        return values.reshape(-1)
    raise SurvmomError(f"{name} must have shape (n,) or (n, 1), got {tuple(values.shape)}")


def _check_float(values: Tensor, name: str) -> None:
    if not values.is_floating_point():
        raise SurvmomError(f"{name} must be a floating point tensor, got dtype {values.dtype}")


def _check_event_time(event: Tensor, time: Tensor, n: int, name: str) -> None:
    for what, t in (("event", event), ("time", time)):
        if t.dim() != 1 or t.shape[0] != n:
            raise SurvmomError(
                f"{what} must have shape ({n},) to match {name} with {n} rows, got {tuple(t.shape)}"
            )


def _as_times(times: Tensor) -> Tensor:
    """Evaluation times as a (m,) float64 tensor (a 0-d tensor counts as one time)."""
    if times.dim() > 1:
        raise SurvmomError(f"times must have shape (m,), got {tuple(times.shape)}")
    return times.reshape(-1).to(torch.float64)


# -------------------------------------------------------------------------------------- sorting, tie groups


class _TieGroups(NamedTuple):
    """Samples sorted by descending time, and the tie group of each event.

    Sorted positions ``0..end[k]`` are exactly the risk set of event ``k``; events keep their sorted order.
    """

    order: Tensor | None  # (n,) sample index at each sorted position; None: the samples are in sorted order
    event_pos: Tensor  # (E,) sorted positions of the events, ascending
    group: Tensor  # (E,) id of event k's time among the G distinct times (descending), non-decreasing
    end: Tensor  # (E,) last sorted position whose time equals event k's time
    n_groups: int  # G, the number of distinct times
    row_group: Tensor | None = None  # (n,) group of every sorted position; None: no ties (position = group)


def descending_time_key(time: Tensor) -> Tensor:
    """int64 key (n,) whose ascending order is descending ``time``; equal keys iff equal times.

    Integers sort faster than floats, and int64 lets torch use its radix sort (see :func:`_sort_keys`).
    Float bits map to a monotone signed integer by flipping the magnitude bits of negative numbers,
    ``bits ^ ((bits >> (w - 1)) & max)``; the bitwise complement ``~k = -k - 1`` then reverses the order.
    """
    if not time.is_floating_point():
        return ~time.to(torch.int64)
    if time.dtype == torch.float64:
        int_type, magnitude, sign_shift = torch.int64, 0x7FFF_FFFF_FFFF_FFFF, 63
    else:
        time, int_type, magnitude, sign_shift = time.to(torch.float32), torch.int32, 0x7FFF_FFFF, 31
    # Adding +0.0 turns -0.0 into +0.0, so both land in one tie group.
    bits = (time.detach() + 0.0).view(int_type)
    return ~(bits ^ ((bits >> sign_shift) & magnitude)).to(torch.int64)


def _sort_keys(key: Tensor) -> tuple[Tensor, Tensor]:
    """``torch.sort(key)`` for an int64 key (n,), padded on CPU so that torch picks its radix sort.

    PyTorch sorts 1-D ascending int64 CPU tensors of at least ``_RADIX_MIN`` elements with FBGEMM's radix sort
    (when built with FBGEMM and OpenMP), 2-4x faster than its comparison sort at 10k-65k elements even on one
    thread. From ``_RADIX_PAD_FROM`` elements, padding up to ``_RADIX_MIN`` pays off. Pads hold the largest
    int64 and sort last (the radix sort is stable, so even a real key of that value stays ahead of them).
    """
    n = key.shape[0]
    if n >= _RADIX_MIN or n < _RADIX_PAD_FROM or key.device.type != "cpu" or not _RADIX_SORT_BUILT:
        return torch.sort(key)
    pad = torch.full((_RADIX_MIN - n,), torch.iinfo(torch.int64).max, dtype=key.dtype)
    sorted_key, order = torch.sort(torch.cat((key, pad)))
    return sorted_key[:n], order[:n]


def merge_order(key_a: Tensor, key_b: Tensor, keep: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Where the elements of two ascending runs a (n,) and b (m,) go in their merge (ties keep a's first).

    Returns (gather (n + m,), pos_b (m,)): :func:`merge_runs` with them merges the keys, and any columns that
    ride along with them. ``gather`` takes a's element for each merged position (an arbitrary one of a at
    b's positions); ``pos_b[j]`` is where ``b_j`` lands. Only b's m keys are binary-searched into a; the rest
    is a few passes over n + m. Meant for a short b (a batch merged into a large sorted bank): on CPU,
    gathering a's elements and then writing b's m is several times faster than scattering a's n.

    ``keep`` (optional, ascending int64 indices into ``key_a``): merge only ``key_a[keep]`` (n = len(keep));
    ``gather`` still indexes the whole of a, so the kept elements are never copied out on their own.
    """
    if numpy_path(key_a, key_b):
        return _merge_order_numpy(key_a.numpy(), key_b.numpy(), None if keep is None else keep.numpy())
    m = key_b.shape[0]
    device = key_a.device
    inserted = torch.searchsorted(key_a, key_b, right=True)  # elements of a at or before b_j
    if keep is not None:
        inserted = torch.searchsorted(keep, inserted)  # ... of them kept: kept indices below that count
    n = key_a.shape[0] if keep is None else keep.shape[0]
    pos_b = inserted.add_(torch.arange(m, device=device))
    from_b = torch.zeros(n + m, dtype=torch.bool, device=device).index_fill_(0, pos_b, True)
    # An element of a at merged position i is a's element number i - (elements of b at or before i).
    gather = torch.arange(n + m, device=device).sub_(torch.cumsum(from_b, 0))
    gather.clamp_(min=0)  # at b's positions the count can reach -1: any valid index will do
    return (gather if keep is None or n == 0 else keep.index_select(0, gather)), pos_b


def _merge_order_numpy(key_a: np.ndarray, key_b: np.ndarray, keep: np.ndarray | None) -> tuple[Tensor, Tensor]:
    """:func:`merge_order` of CPU tensors, on NumPy views of them (the same steps)."""
    m = key_b.shape[0]
    inserted = np.searchsorted(key_a, key_b, side="right")
    if keep is not None:
        inserted = np.searchsorted(keep, inserted)
    n = key_a.shape[0] if keep is None else keep.shape[0]
    inserted += np.arange(m)
    from_b = np.zeros(n + m, dtype=bool)
    from_b[inserted] = True
    gather = np.arange(n + m) - np.cumsum(from_b)
    np.maximum(gather, 0, out=gather)
    if keep is not None and n:
        gather = keep[gather]
    return torch.from_numpy(gather), torch.from_numpy(inserted)


def merge_runs(a: Tensor, b: Tensor, gather: Tensor, pos_b: Tensor) -> Tensor:
    """Merge a (n,) and b (m,) of one dtype, ordered as the keys given to :func:`merge_order`: (n + m,)."""
    if gather.shape[0] == pos_b.shape[0]:  # nothing of a to merge
        return b.clone()
    if numpy_path(a, b) and a.dtype == b.dtype:
        merged = a.numpy()[gather.numpy()]
        merged[pos_b.numpy()] = b.numpy()
        return torch.from_numpy(merged)
    return a.index_select(0, gather).index_copy_(0, pos_b, b)


def _tie_groups(event: Tensor, time: Tensor, presorted: tuple[Tensor, Tensor] | None = None) -> _TieGroups:
    """Sort once by descending time (or take ``presorted`` (keys, order)); tie groups are runs of equal keys."""
    key, order = presorted if presorted is not None else _sort_keys(descending_time_key(time))
    return _sorted_tie_groups(key, event.index_select(0, order), order)


def _sorted_tie_groups(key: Tensor, sorted_event: Tensor, order: Tensor | None) -> _TieGroups:
    """Tie groups of rows already sorted by ``key`` (n,) ascending, with their events (n,) in that order."""
    _, position_group, group_size = torch.unique_consecutive(key, return_inverse=True, return_counts=True)
    event_pos = sorted_event.nonzero().view(-1)
    n_groups = group_size.shape[0]
    if n_groups == key.shape[0]:  # no tied times: every row is its own group
        return _TieGroups(order, event_pos, event_pos, event_pos, n_groups)
    group = position_group.index_select(0, event_pos)
    end = (torch.cumsum(group_size, 0) - 1).index_select(0, group)
    return _TieGroups(order, event_pos, group, end, n_groups, position_group)


def _efron_fractions(groups: _TieGroups) -> Tensor | None:
    """``l_k / d_k`` (E,) float64: rank of event k among the d_k events tied with it, over d_k.

    None when no two events share a time: then every ``l_k = 0`` and Efron equals Breslow.
    """
    runs = _event_runs(groups)
    return None if runs is None else _dense_fractions(runs)


class _EventRuns(NamedTuple):
    """Events grouped by time: runs of consecutive events (in sorted order) that share one time."""

    run: Tensor  # (E,) run of each event, non-decreasing
    size: Tensor  # (U,) events per run, U < E (some run has two or more)


def _event_runs(groups: _TieGroups) -> _EventRuns | None:
    """The runs of tied events, or None when no two events share a time."""
    group = groups.group
    if group is groups.event_pos:  # no tied times at all
        return None
    _, run, size = torch.unique_consecutive(group, return_inverse=True, return_counts=True)
    return None if size.shape[0] == group.shape[0] else _EventRuns(run, size)


def _later_tied_events(runs: _EventRuns) -> Tensor:
    """Indices k (T,) of the events whose time equals the previous event's (rank l_k >= 1)."""
    run = runs.run
    return (run[1:] == run[:-1]).nonzero().view(-1).add_(1)


def _dense_fractions(runs: _EventRuns) -> Tensor:
    """:func:`_efron_fractions` of events with ties."""
    run, size = runs
    first = torch.cumsum(size, 0).sub_(size)  # index of each run's first event
    rank = torch.arange(run.shape[0], device=run.device).sub_(first.index_select(0, run))
    return rank.to(torch.float64).div_(size.index_select(0, run))  # int / int would give float32


class _FewTies(NamedTuple):
    """Efron's terms when only a few events share a time with another event, kept as Python numbers.

    A run is a set of d >= 2 events at one time, in sorted order; its l-th event (l = 0..d-1) has
    ``f = l/d`` and its denominator is ``R - f D`` with D the sum of e over the run.
    """

    corrected: Tensor  # (T,) int64 indices of the events with l >= 1 (f > 0)
    fraction: list[float]  # f of each corrected event
    run: list[int]  # the run of each corrected event
    members: dict[int, tuple[int, float]]  # sorted position of each event in a run -> (its run, e there)
    n_runs: int


def _few_ties(groups: _TieGroups, e: Tensor, later: Tensor) -> tuple[_FewTies, list[float]]:
    """The runs of tied events, and the correction ``f_k D`` of each corrected event, from
    :func:`_later_tied_events`; a few scalar reads instead of ~20 tensor operations over all events."""
    runs: list[list[int]] = []
    for k in later.tolist():
        if runs and runs[-1][-1] == k - 1:
            runs[-1].append(k)
        else:
            runs.append([k - 1, k])
    in_runs = torch.tensor([k for run in runs for k in run], dtype=torch.int64, device=e.device)
    positions = groups.event_pos.index_select(0, in_runs)
    position_list, e_list = positions.tolist(), e.index_select(0, positions).tolist()
    members: dict[int, tuple[int, float]] = {}
    fraction: list[float] = []
    run_of: list[int] = []
    correction: list[float] = []
    first = 0
    for r, run in enumerate(runs):
        d = len(run)
        total = 0.0
        for i in range(first, first + d):
            total += e_list[i]
            members[position_list[i]] = (r, e_list[i])
        for rank in range(1, d):
            fraction.append(rank / d)
            run_of.append(r)
            correction.append(rank / d * total)
        first += d
    return _FewTies(later, fraction, run_of, members, len(runs)), correction


def _few_ties_terms(few: _FewTies, inv_den: Tensor, scale: float) -> dict[int, float]:
    """Efron's gradient term ``e_j sum_{k tied with j} f_k w_k`` (``w_k = scale / (R_k - f_k D)``) of each
    event j in a run, by its sorted position."""
    sums = [0.0] * few.n_runs
    for f, r, inv in zip(few.fraction, few.run, inv_den.index_select(0, few.corrected).tolist(), strict=True):
        sums[r] += f * (inv * scale)
    return {p: e * sums[r] for p, (r, e) in few.members.items()}


# Up to this many later tied events (T = E - U), Efron's terms are computed on Python numbers (_FewTies):
# cheaper than the dense tensor path for a handful, as with continuous times that collide now and then.
_FEW_TIES = 32


# --------------------------------------------------------------------------------------------------- Cox


def _log(values: Tensor) -> Tensor:
    """``log`` on the calling thread: ``torch.log`` with one torch thread, else ``xlogy(1, values)``.

    With several threads torch runs ``log`` on OpenMP from 2048 elements (a contended pool can stall for
    milliseconds); ``xlogy`` stays on the calling thread below 32768 but is ~1.7x slower than ``log`` there.
    """
    return torch.log(values) if torch.get_num_threads() == 1 else torch.special.xlogy(1.0, values)


def _in_sorted_order(values: Tensor, groups: _TieGroups) -> Tensor:
    return values if groups.order is None else values.index_select(0, groups.order)


class _FastParts(NamedTuple):
    """Forward results of the shifted path that its closed-form gradient reuses."""

    value: Tensor  # () negative partial log-likelihood (sum), float64
    exp_shifted: Tensor  # (n,) exp(x - max x) in sorted order
    inv_den: Tensor  # (E,) 1 / (R_k - f_k D_k), shifted units
    efron: Tensor | _FewTies | None  # Efron with tied events: (E,) f_k = l_k / d_k, or the few ties


def _cox_fast(log_hz: Tensor, groups: _TieGroups, efron: bool) -> _FastParts | None:
    """Negative partial log-likelihood (sum) from a max-shifted float64 cumsum; None if a risk sum underflows.

    With ``m = max_j x_j`` and ``e_p = exp(x_p - m)``: ``log R_k = m + log(cumsum(e)[end_k])``. One element is
    checked: risk sums grow along the sorted order, so ``R[0]`` is the smallest.
    """
    x = log_hz
    if x.requires_grad or x.dim() != 1 or x.dtype != torch.float64:
        x = x.detach().reshape(-1).to(torch.float64)
    x = _in_sorted_order(x, groups)
    shift = x.max()
    # exp2 instead of exp: torch runs exp on OpenMP threads from 2048 elements, which can stall for
    # milliseconds on a busy machine; exp2 (SLEEF) stays on the calling thread below 32768 (and is faster).
    # exp2(y log2 e) differs from exp(y) by < |y| * 2.2e-16 relative, i.e. < 1.5e-13 here. See _log for log.
    e = torch.exp2((x - shift).mul_(_LOG2_E))
    den = torch.cumsum(e, 0).index_select(0, groups.end)  # R_k
    if not den[0].item() >= _MIN_RISK_SUM:  # also catches NaN, which the stable path propagates
        return None
    x_event = x.index_select(0, groups.event_pos)
    runs = _event_runs(groups) if efron else None
    terms: Tensor | _FewTies | None = None
    if runs is not None and runs.run.shape[0] - runs.size.shape[0] <= _FEW_TIES:
        later = _later_tied_events(runs)
        terms, correction = _few_ties(groups, e, later)
        den.index_add_(0, later, torch.tensor(correction, dtype=den.dtype, device=den.device), alpha=-1)
    elif runs is not None:
        terms = _dense_fractions(runs)
        tied = torch.zeros(runs.size.shape[0], dtype=e.dtype, device=e.device)
        tied.index_add_(0, runs.run, e.index_select(0, groups.event_pos))  # D of each run
        den.addcmul_(terms, tied.index_select(0, runs.run), value=-1)  # R_k - f_k D_k
    value = torch.add((_log(den) - x_event).sum(), shift, alpha=x_event.shape[0])
    return _FastParts(value, e, torch.reciprocal(den), terms)


def _cox_fast_grad(parts: _FastParts, groups: _TieGroups, dtype: torch.dtype, scale: float) -> Tensor:
    """``scale`` times the gradient (n,) of :func:`_cox_fast`'s value, in original sample order and ``dtype``.

    ``d(-l)/dx_j = e_j * sum_{k: j in R_k} w_k - delta_j * (1 + e_j * sum_{k tied with j} f_k w_k)`` with
    ``w_k = 1 / (R_k - f_k D_k)`` (shift-free ratios) and ``f = 0`` for Breslow.
    """
    e, w = parts.exp_shifted, parts.inv_den * scale
    # Sum of w_k over events whose risk set holds position p = suffix sum over group ends >= p.
    at_end = torch.zeros_like(e).index_add_(0, groups.end, w)
    grad = e * torch.cumsum(at_end.flip(0), 0).flip(0)
    if isinstance(parts.efron, Tensor):
        tied = torch.zeros(groups.n_groups, dtype=e.dtype, device=e.device)
        tied.index_add_(0, groups.group, parts.efron * w)
        event_term = e.index_select(0, groups.event_pos) * tied.index_select(0, groups.group) + scale
        grad.index_add_(0, groups.event_pos, event_term, alpha=-1)
    else:
        grad.index_add_(0, groups.event_pos, torch.full_like(w, scale), alpha=-1)
    if isinstance(parts.efron, _FewTies):
        terms = _few_ties_terms(parts.efron, parts.inv_den, scale)
        grad.index_add_(0, torch.tensor(list(terms), device=e.device),
                        torch.tensor(list(terms.values()), dtype=e.dtype, device=e.device), alpha=-1)
    grad = grad.to(dtype)
    if groups.order is None:
        return grad
    return torch.empty_like(grad).scatter_(0, groups.order, grad)


class _CoxFastNLL(torch.autograd.Function):
    """Wraps the fast path so backward is a few tensor ops instead of a recorded autograd graph."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx, log_hz: Tensor, parts: _FastParts, groups: _TieGroups, scale: float
    ) -> Tensor:
        ctx.parts, ctx.groups, ctx.scale, ctx.shape = parts, groups, scale, log_hz.shape
        return (parts.value * scale).to(log_hz.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: Tensor) -> tuple[Tensor, None, None, None]:  # type: ignore[override]
        scale = ctx.scale * float(grad_out)
        grad = _cox_fast_grad(ctx.parts, ctx.groups, grad_out.dtype, scale)
        return grad.view(ctx.shape), None, None, None


def _cox_stable(log_hz: Tensor, groups: _TieGroups, efron: bool) -> Tensor:
    """Negative partial log-likelihood (sum, float64) via logcumsumexp; differentiable by autograd.

    Efron terms use ``log(R - f D) = log R + log1p(-f D/R)``, ``D/R = sum_{i tied} exp(x_i - log R) <= 1``.
    """
    x = _in_sorted_order(log_hz.reshape(-1).to(torch.float64), groups)
    log_risk = torch.logcumsumexp(x, 0).index_select(0, groups.end)
    x_event = x.index_select(0, groups.event_pos)
    log_den = log_risk
    frac = _efron_fractions(groups) if efron else None
    if frac is not None:
        ratio = torch.zeros(groups.n_groups, dtype=x.dtype, device=x.device)
        ratio = ratio.index_add(0, groups.group, torch.exp(x_event - log_risk))
        log_den = log_risk + torch.log1p(-frac * ratio.index_select(0, groups.group))
    return (log_den - x_event).sum()


def cox_loss(
    log_hz: Tensor,
    event: Tensor,
    time: Tensor,
    ties: str = "efron",
    reduction: str = "mean",
    presorted: tuple[Tensor, Tensor] | None = None,
) -> Tensor:
    """Negative Cox partial log-likelihood with Efron or Breslow handling of tied event times.

    ``-l = sum_k [ sum_{l<d_k} log(R_k - (l/d_k) D_k) - sum_{i in H_k} x_i ]`` (Efron; Breslow drops the
    ``(l/d_k) D_k`` term), where ``R_k`` sums ``exp(log_hz)`` over the risk set ``{j: time_j >= tau_k}``;
    see the module docstring.

    Args:
        log_hz: log relative hazards, (n,) or (n, 1), floating point.
        event: (n,) bool or 0/1; nonzero means the event was observed, zero means censored.
        time: (n,) event or censoring times, any unit; only their order and ties matter. Must not be NaN.
        ties: ``"efron"`` (default) or ``"breslow"``.
        reduction: ``"mean"`` divides the sum by the number of events, ``"sum"`` does not.
        presorted: optional (keys (n,), order (n,)): ``order`` sorts the samples by descending time and
            ``keys`` are :func:`descending_time_key` of ``time[order]``; lets a caller that keeps its data
            sorted (the Momentum bank) skip the sort.

    Returns:
        A 0-d tensor of ``log_hz``'s dtype (computed in float64). With no events it is a zero that is
        still attached to the graph (zero gradient).

    Cost: one sort by time (a radix sort on CPU from a few thousand samples), then run-length tie groups
    and cumulative sums; no loop over samples or times, no n x n matrix. Risk sums use ``exp(x - max x)``
    with a float64 cumulative sum and a closed-form backward; if a needed risk sum comes near the float64
    subnormal range (log hazards spread over ~660 nats) a ``logcumsumexp`` path is used instead. The fast
    path is not twice differentiable.

    Example:
        >>> log_hz = torch.tensor([0.5, -0.2, 0.1, 0.0])
        >>> event = torch.tensor([True, True, False, True])
        >>> time = torch.tensor([2.0, 2.0, 3.0, 5.0])
        >>> round(cox_loss(log_hz, event, time, ties="efron", reduction="sum").item(), 4)
        2.4257
        >>> round(cox_loss(log_hz, event, time, ties="breslow", reduction="sum").item(), 4)
        2.7402
    """
    efron = _choice("ties", ties, _TIES) == "efron"
    mean = _choice("reduction", reduction, _REDUCTIONS) == "mean"
    _check_float(log_hz, "log_hz")
    n = _flat(log_hz, "log_hz").shape[0]
    _check_event_time(event, time, n, "log_hz")
    groups = _tie_groups(event, time, presorted)
    n_events = groups.event_pos.shape[0]
    if n_events == 0:
        return log_hz.reshape(-1)[:0].sum()  # exactly 0 and attached, even if log_hz holds inf
    scale = 1.0 / n_events if mean else 1.0
    parts = _cox_fast(log_hz, groups, efron)
    if parts is not None:
        return _CoxFastNLL.apply(log_hz, parts, groups, scale)
    return (_cox_stable(log_hz, groups, efron) * scale).to(log_hz.dtype)


class _PooledParts(NamedTuple):
    """What the batch-only backward of :func:`cox_loss_sorted` needs besides the forward parts."""

    position: Tensor  # (B,) sorted positions of the rows with gradient
    is_event: Tensor  # (B,) their event flags, float64


def _cox_fast_grad_at(parts: _FastParts, groups: _TieGroups, pooled: _PooledParts, scale: float) -> Tensor:
    """:func:`_cox_fast_grad` at the sorted positions ``pooled.position`` only, (B,) float64.

    The suffix sum of ``w`` over events whose risk set holds position p starts at the first event k with
    ``end_k >= p`` (ends are non-decreasing): B binary searches and one reversed cumulative sum over the E
    events, instead of passes over all n rows.
    """
    e = parts.exp_shifted.index_select(0, pooled.position)
    w = parts.inv_den * scale
    n_events = w.shape[0]
    # from_last[i] = sum of the last i weights (from_last[0] = 0: no event at or after the position).
    from_last = torch.cat((w.new_zeros(1), torch.cumsum(w.flip(0), 0)))
    first = torch.searchsorted(groups.end, pooled.position)
    grad = e * from_last.index_select(0, n_events - first)
    if not isinstance(parts.efron, Tensor):
        grad.sub_(pooled.is_event, alpha=scale)
        if parts.efron is not None:
            _few_ties_grad_at(grad, parts.efron, parts.inv_den, pooled.position, scale)
        return grad
    tied = torch.zeros(groups.n_groups, dtype=e.dtype, device=e.device)
    tied.index_add_(0, groups.group, parts.efron * w)
    row_group = pooled.position if groups.row_group is None else groups.row_group.index_select(0, pooled.position)
    event_term = e.mul_(tied.index_select(0, row_group)).add_(scale)  # used for the rows that are events
    return grad.addcmul_(pooled.is_event, event_term, value=-1)


def _few_ties_grad_at(grad: Tensor, few: _FewTies, inv_den: Tensor, position: Tensor, scale: float) -> None:
    """Subtract, in place, Efron's ``e_j sum_{k tied with j} f_k w_k`` from ``grad`` (B,) of the rows at the
    sorted positions ``position`` (B,) that are events in a run of tied events."""
    by_position = _few_ties_terms(few, inv_den, scale)
    rows, terms = [], []
    for row, p in enumerate(position.tolist()):
        if p in by_position:
            rows.append(row)
            terms.append(by_position[p])
    if rows:
        grad.index_add_(0, torch.tensor(rows, device=grad.device),
                        torch.tensor(terms, dtype=grad.dtype, device=grad.device), alpha=-1)


class _CoxPooledNLL(torch.autograd.Function):
    """The fast paths of :func:`cox_loss_sorted`: the gradient reaches only the B rows that carry one.

    ``grad_at(s)`` returns ``s`` times the gradient of ``value`` at those rows, (B,) (a tensor or a NumPy array).
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx, log_hz: Tensor, value: Tensor | float, grad_at: Callable[[float], Tensor | np.ndarray], scale: float
    ) -> Tensor:
        ctx.grad_at, ctx.scale, ctx.shape = grad_at, scale, log_hz.shape
        if isinstance(value, Tensor):
            return (value * scale).to(log_hz.dtype)
        return torch.tensor(value * scale, dtype=log_hz.dtype, device=log_hz.device)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: Tensor) -> tuple[Tensor, None, None, None]:  # type: ignore[override]
        grad = ctx.grad_at(ctx.scale * float(grad_out))
        grad = (torch.from_numpy(grad) if isinstance(grad, np.ndarray) else grad).to(grad_out.dtype)
        return (grad if grad.shape == ctx.shape else grad.view(ctx.shape)), None, None, None


def cox_loss_sorted(
    log_hz: Tensor,
    position: Tensor,
    keys: Tensor,
    values: Tensor,
    event: Tensor,
    ties: str = "efron",
    reduction: str = "mean",
    batch_event: Tensor | None = None,
) -> Tensor:
    """:func:`cox_loss` over n rows already sorted by descending time, of which only B carry a gradient.

    This is the pooled loss of a memory bank: n = bank + batch rows, merged by time, where the bank rows
    are constants. The value equals ``cox_loss`` of all n rows; the gradient flows into ``log_hz`` only.
    On CPU it runs on NumPy views of the tensors (:mod:`survmom.core.pooled_cox`: tie groups from one comparison
    of neighbouring keys, Efron's terms from counts per group); elsewhere on tensors, where the gradient costs
    B binary searches plus passes over the E events. Both fall back to ``logcumsumexp`` when the log hazards
    spread so far that the shifted risk sums underflow.

    Args:
        log_hz: (B,) or (B, 1) log hazards of the rows with gradient.
        position: (B,) int64, the sorted position of each ``log_hz`` row (distinct).
        keys: (n,) ascending keys of the sorted rows, equal exactly for tied times: −time (as the Momentum
            bank keeps them) or :func:`descending_time_key`.
        values: (n,) float64 log hazards of the sorted rows: the constants, and ``log_hz`` (detached) at
            ``position`` (the caller writes them; this is not checked).
        event: (n,) bool event flags of the sorted rows.
        ties, reduction: as in :func:`cox_loss`.
        batch_event: optional (B,) event flags of the ``log_hz`` rows (default: ``event[position]``).

    Returns:
        A 0-d tensor of ``log_hz``'s dtype.
    """
    efron = _choice("ties", ties, _TIES) == "efron"
    mean = _choice("reduction", reduction, _REDUCTIONS) == "mean"
    _check_float(log_hz, "log_hz")
    flat = _flat(log_hz, "log_hz")
    n = keys.shape[0]
    if values.shape != (n,) or event.shape != (n,) or position.shape != flat.shape:
        raise SurvmomError(
            f"cox_loss_sorted needs keys, values and event of shape ({n},) and one position per log_hz row, "
            f"got {tuple(values.shape)}, {tuple(event.shape)}, {tuple(position.shape)} for {tuple(flat.shape)}"
        )
    if numpy_path(keys, values):
        loss = _cox_pooled_numpy(flat, position, keys, values, event, efron, mean)
        if loss is not None:
            return loss
    groups = _sorted_tie_groups(keys, event, None)
    n_events = groups.event_pos.shape[0]
    if n_events == 0:
        return flat[:0].sum()
    scale = 1.0 / n_events if mean else 1.0
    parts = _cox_fast(values, groups, efron)
    if parts is not None:
        is_event = (event.index_select(0, position) if batch_event is None else batch_event).to(torch.float64)
        pooled = _PooledParts(position, is_event)
        return _CoxPooledNLL.apply(flat, parts.value, lambda s: _cox_fast_grad_at(parts, groups, pooled, s), scale)
    x = values.index_copy(0, position, flat.to(values.dtype))  # differentiable in flat only
    return (_cox_stable(x, groups, efron) * scale).to(log_hz.dtype)


def _cox_pooled_numpy(flat: Tensor, position: Tensor, keys: Tensor, values: Tensor, event: Tensor, efron: bool,
                      mean: bool) -> Tensor | None:
    """:func:`cox_loss_sorted` on CPU tensors through :mod:`survmom.core.pooled_cox`; None when the shifted risk sums
    underflow (the caller then takes the ``logcumsumexp`` path)."""
    events = event.numpy() if event.dtype == torch.bool else (event != 0).numpy()
    n_events = int(np.count_nonzero(events))
    if n_events == 0:
        return flat[:0].sum()
    x = values.detach()
    parts = pooled_cox(keys.numpy(), (x if x.dtype == torch.float64 else x.to(torch.float64)).numpy(), events,
                       efron, _MIN_RISK_SUM)
    if parts is None:
        return None
    batch_rows = position.numpy()
    return _CoxPooledNLL.apply(flat, parts.value, lambda s: pooled_cox_grad(parts, batch_rows, s),
                               1.0 / n_events if mean else 1.0)


def breslow_baseline(log_hz: Tensor, event: Tensor, time: Tensor) -> tuple[Tensor, Tensor]:
    """Breslow (1974) estimator of the Cox baseline cumulative hazard at the distinct event times.

    ``H0(tau_k) = sum_{k' <= k} d_k' / sum_{j: time_j >= tau_k'} exp(log_hz_j)`` (risk sums via
    logcumsumexp, so any finite ``log_hz`` is fine). ``H0`` is the baseline at ``log_hz = 0``: pass the
    linear predictor you will later give to :func:`cox_survival`.

    Args:
        log_hz: (n,) or (n, 1) log relative hazards.
        event: (n,) bool or 0/1.
        time: (n,) event or censoring times.

    Returns:
        ``(times, cumhaz)``: the k distinct event times ascending, (k,) in ``time``'s dtype, and ``H0`` at
        them, (k,) in ``log_hz``'s dtype. Both are empty when there are no events.
    """
    _check_float(log_hz, "log_hz")
    flat = _flat(log_hz, "log_hz")
    _check_event_time(event, time, flat.shape[0], "log_hz")
    groups = _tie_groups(event, time)
    ends, deaths = torch.unique_consecutive(groups.end, return_counts=True)
    log_risk = torch.logcumsumexp(flat.to(torch.float64)[groups.order], 0)[ends]
    increments = torch.exp(torch.log(deaths.to(torch.float64)) - log_risk)
    cumhaz = torch.cumsum(increments.flip(0), 0)
    return time[groups.order[ends]].flip(0), cumhaz.to(log_hz.dtype)


def _check_baseline(baseline_times: Tensor, baseline_cumhaz: Tensor) -> None:
    if baseline_times.dim() != 1 or baseline_times.shape != baseline_cumhaz.shape:
        raise SurvmomError(
            "baseline_times and baseline_cumhaz must both have shape (k,), got "
            f"{tuple(baseline_times.shape)} and {tuple(baseline_cumhaz.shape)}"
        )


def cox_survival(log_hz: Tensor, baseline_times: Tensor, baseline_cumhaz: Tensor, times: Tensor) -> Tensor:
    """Cox survival ``S(t|x) = exp(-H0(t) exp(log_hz))`` at the given times.

    ``H0`` is the right-continuous step function through ``(baseline_times, baseline_cumhaz)`` (as returned
    by :func:`breslow_baseline`): 0 before the first time, constant after the last.

    Args:
        log_hz: (n,) or (n, 1) log relative hazards, on the scale used to fit the baseline.
        baseline_times: (k,) ascending times.
        baseline_cumhaz: (k,) baseline cumulative hazard at ``baseline_times``.
        times: (m,) evaluation times, same unit as ``baseline_times``.

    Returns:
        (n, m) survival probabilities in ``log_hz``'s dtype.
    """
    _check_float(log_hz, "log_hz")
    x = _flat(log_hz, "log_hz").to(torch.float64)
    _check_baseline(baseline_times, baseline_cumhaz)
    t = _as_times(times)
    if baseline_times.shape[0] == 0:
        return torch.ones(x.shape[0], t.shape[0], dtype=log_hz.dtype, device=log_hz.device)
    step = torch.searchsorted(baseline_times.to(torch.float64), t, right=True) - 1
    log_h0 = torch.log(baseline_cumhaz.to(torch.float64))[step.clamp_min(0)]
    log_h0 = torch.where(step >= 0, log_h0, -math.inf)
    return torch.exp(-torch.exp(log_h0 + x[:, None])).to(log_hz.dtype)


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


# ------------------------------------------------------------------------------------------------ Weibull


def _weibull_params(log_params: Tensor) -> tuple[Tensor, Tensor]:
    """Split (n, 2) / (n, 1) / (n,) log parameters into float64 (log scale, log shape), each (n,)."""
    _check_float(log_params, "log_params")
    p = log_params.to(torch.float64)
    if p.dim() == 2 and p.shape[1] == 2:
        return p[:, 0], p[:, 1]
    if p.dim() == 1 or (p.dim() == 2 and p.shape[1] == 1):
        p = p.reshape(-1)
        return p, torch.zeros_like(p)
    raise SurvmomError(f"log_params must have shape (n, 2), (n, 1) or (n,), got {tuple(log_params.shape)}")


def weibull_loss(log_params: Tensor, event: Tensor, time: Tensor, reduction: str = "mean") -> Tensor:
    """Negative Weibull AFT log-likelihood ``-sum_i [delta_i log h(t_i) + log S(t_i)]``.

    With ``a = log lambda``, ``b = log rho`` and ``z = rho (log t - a) = log (t/lambda)^rho``:
    ``log h(t) = b + z - log t`` and ``-log S(t) = exp(z)``: the term is ``exp(z) - delta (b + z - log t)``.
    Computed in float64, returned in ``log_params``'s dtype.

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
        reduction: ``"mean"`` divides the sum by n (the number of samples), ``"sum"`` does not.

    Returns:
        A 0-d tensor in ``log_params``'s dtype; 0 (attached to the graph) when n = 0.
    """
    mean = _choice("reduction", reduction, _REDUCTIONS) == "mean"
    log_scale, log_shape = _weibull_params(log_params)
    n = log_scale.shape[0]
    _check_event_time(event, time, n, "log_params")
    if n == 0:
        return log_params.reshape(-1)[:0].sum()
    tiny = torch.finfo(time.dtype if time.is_floating_point() else torch.float32).tiny
    log_t = torch.log(time.to(torch.float64).clamp_min(tiny))
    z = torch.exp(log_shape) * (log_t - log_scale)
    cap = _WEIBULL_Z_LINEAR
    cumhaz = torch.where(z <= cap, torch.exp(z.clamp_max(cap)), math.exp(cap) * (1.0 + (z - cap)))
    nll = (cumhaz - event.to(torch.float64) * (log_shape + z - log_t)).sum()
    return (nll / n if mean else nll).to(log_params.dtype)


def weibull_survival(log_params: Tensor, times: Tensor) -> Tensor:
    """Weibull survival ``S(t|x) = exp(-(t/lambda)^rho)`` at the given times.

    Args:
        log_params: (n, 2) = (log scale, log shape), or (n, 1) / (n,) log scale with shape 1.
        times: (m,) evaluation times, same unit as the training time; ``t <= 0`` gives ``S = 1``.

    Returns:
        (n, m) survival probabilities in ``log_params``'s dtype.
    """
    log_scale, log_shape = _weibull_params(log_params)
    log_t = torch.log(_as_times(times).clamp_min(0.0))
    z = torch.exp(log_shape)[:, None] * (log_t[None, :] - log_scale[:, None])
    return torch.exp(-torch.exp(z)).to(log_params.dtype)


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
    return log_scale + _LOG_LN2 * torch.exp(-log_shape)
