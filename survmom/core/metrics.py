"""Discrimination and calibration metrics for right-censored survival data.

Conventions shared by every function:

* ``risk`` (n,): higher means an earlier event, e.g. a Cox log hazard. Pass ``-risk`` to lifelines, which
  expects survival-like scores.
* ``event`` (n,): bool, or integers / floats in {0, 1}; ``True`` / 1 is an observed event.
* ``time`` (n,): follow-up time, any unit, the same unit as ``times`` and ``train_time``.
* Inputs may be float32 or float64 tensors (or anything ``torch.as_tensor`` accepts) on any device; all
  arithmetic is done in float64 and scalars come back as Python floats.
* Tied risks count as half a concordant pair, using exact equality (lifelines' rule; scikit-survival uses
  ``tied_tol=1e-8``, which only differs for distinct risks closer than 1e-8).

IPCW metrics (Uno's C, cumulative/dynamic AUC, Brier score) weight test samples by the Kaplan-Meier
estimate ``G(t) = P(C > t)`` of the censoring distribution fitted on the training data
(:func:`censoring_survival`). They raise :class:`SurvmomError` when a weight they need is undefined, i.e.
``G = 0`` or ``t`` lies beyond the last training follow-up time; the message names the largest usable time.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from survmom.core.kaplan_meier import kaplan_meier_steps, step_at
from survmom.core.metric_inputs import as_float as _as_float
from survmom.core.metric_inputs import eval_times as _eval_times
from survmom.core.metric_inputs import event_time as _event_time
from survmom.core.metric_inputs import optional as _optional
from survmom.core.metric_inputs import risk_event_time as _risk_event_time
from survmom.core.metric_inputs import train_data as _train_data
from survmom.core.metric_inputs import weights as _weights
from survmom.core.sorting import ascending_key
from survmom.errors import SurvmomError

__all__ = [
    "brier_score",
    "censoring_survival",
    "concordance_index",
    "concordance_index_ci",
    "concordance_index_se",
    "cumulative_dynamic_auc",
    "integrated_brier_score",
    "uno_concordance_index",
]

_F64 = torch.float64


# ------------------------------------------------------------------------------------------------- helpers
def _stable_argsort(key: Tensor) -> Tensor:
    """Indices sorting the int64 ``key`` ascending, ties kept in input order."""
    return torch.sort(key, stable=True).indices


def _run_start_index(new: Tensor) -> Tensor:
    """Index (n,) of the first element of each element's run; ``new[k]`` (bool) marks a run start."""
    idx = torch.arange(new.shape[0], device=new.device)
    return torch.cummax(idx.masked_fill_(~new, 0), 0).values


def _run_end_index(new: Tensor) -> Tensor:
    """One-past-the-last index (n,) of each element's run; ``new[k]`` (bool) marks a run start."""
    firsts = new.nonzero().flatten()
    ends = torch.cat([firsts[1:], firsts.new_full((1,), new.shape[0])])
    return ends.index_select(0, torch.cumsum(new, 0) - 1)


def _run_starts(*keys: Tensor) -> Tensor:
    """Bool (n,): True where any of the sorted ``keys`` changes (and at index 0)."""
    new = torch.zeros_like(keys[0], dtype=torch.bool)
    new[0] = True
    for k in keys:
        new[1:] |= k[1:] != k[:-1]
    return new


def _sum_before_in_run(v: Tensor, start: Tensor) -> Tensor:
    """``out[k] = sum(v[start[k]:k])``: exclusive cumulative sum restarted at each run."""
    excl = torch.cumsum(v, 0).sub_(v)
    return excl.sub_(excl.index_select(0, start))


def _dominance(xs: Tensor, ws: Tensor, per_element: bool, earlier: bool = True
               ) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """Weighted 2-D dominance counts by a wavelet-tree (top-down radix) pass, O(n log n).

    ``xs`` (n,) is a permutation of 0..n-1 listed in "precedence" order, ``ws`` (n,) weights in that order.
    Returns ``total = sum_j sum_i ws_i [x_i < x_j][i precedes j]`` and, if ``per_element``, per x-rank
    ``as_later[x_j] = sum_i ws_i [x_i < x_j][i precedes j]`` and ``as_earlier[x_i] = sum_j [x_i < x_j][i
    precedes j]`` (unweighted; None unless ``earlier``, about a third of the pass). Level b splits each
    block of x-values ``[h 2^(b+1), (h+1) 2^(b+1))`` into halves by bit b; a pair is counted at the unique
    level where its x-values first differ. The array is kept sorted by ``(x >> (b+1), precedence)`` through a
    stable partition, so each block of x-values occupies positions ``[h 2^(b+1), ...)`` and no search is
    needed (cf. Knight 1966, merge-sort Kendall tau).
    Work buffers are allocated once: fresh large allocations (page faults) would dominate the run time.
    """
    n = xs.shape[0]
    device = xs.device
    total = torch.zeros((), dtype=_F64, device=device)
    later = torch.zeros(n, dtype=_F64, device=device) if per_element else None
    as_earlier = torch.zeros(n, dtype=_F64, device=device) if per_element and earlier else None
    pos = torch.arange(n, device=device)
    xs, ws = xs.clone(), ws.clone()
    xs_next, ws_next = torch.empty_like(xs), torch.empty_like(ws)
    start, lower_before, tmp_i = torch.empty_like(xs), torch.empty_like(xs), torch.empty_like(xs)
    w_before, tmp_f = torch.empty_like(ws), torch.empty_like(ws)
    is_lower = torch.empty(n, dtype=torch.bool, device=device)
    for b in reversed(range(max(n - 1, 0).bit_length())):
        half = 1 << b
        torch.bitwise_and(xs, -(half << 1), out=start)  # first position of the block
        torch.bitwise_and(xs, half, out=tmp_i)
        torch.eq(tmp_i, 0, out=is_lower)
        # weight of lower-half elements that precede each element inside its block
        torch.mul(ws, is_lower, out=tmp_f)
        torch.cumsum(tmp_f, 0, out=w_before)
        w_before.sub_(tmp_f)
        torch.index_select(w_before, 0, start, out=tmp_f)
        w_before.sub_(tmp_f).masked_fill_(is_lower, 0.0)
        total += w_before.sum()
        # number of lower-half elements that precede each element inside its block; the blocks before
        # position ``start`` are full and hold start / 2 lower-half elements
        lower_before[0] = 0
        torch.cumsum(is_lower[:-1], 0, out=lower_before[1:])
        lower_before.sub_(torch.bitwise_right_shift(start, 1, out=tmp_i))
        if later is not None:
            later.index_add_(0, xs, w_before)
        if as_earlier is not None:
            n_upper = (torch.clamp(n - start, max=half << 1) - half).clamp(min=0)
            upper_after = n_upper - ((pos - start) - lower_before)
            as_earlier.index_add_(0, xs, torch.where(is_lower, upper_after.to(_F64), 0.0))
        if b == 0:
            break
        # stable partition of each block: lower half first, then upper half, precedence kept
        torch.sub(pos, lower_before, out=tmp_i).add_(half)
        start.add_(lower_before)
        torch.where(is_lower, start, tmp_i, out=tmp_i)
        xs_next.index_copy_(0, tmp_i, xs)
        ws_next.index_copy_(0, tmp_i, ws)
        xs, xs_next = xs_next, xs
        ws, ws_next = ws_next, ws
    return total, later, as_earlier


def _concordance_parts(
    risk: Tensor, event: Tensor, time: Tensor, weight: Tensor, per_element: bool = False
) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
    """Weighted concordant and comparable sums over comparable pairs, in O(n log n).

    Pair (i, j) is comparable iff ``event_i`` and (``t_i < t_j`` or ``t_i == t_j`` and not ``event_j``);
    returns ``num = sum w_i ([r_i > r_j] + [r_i == r_j] / 2)`` and ``den = sum w_i`` over those pairs.
    With ``per_element`` (only valid for ``weight == 1``) also the per-sample sums over all comparable pairs
    that contain the sample, (n,) each in input order: ``sum_k num_k = 2 num``.

    Samples are ranked by x = (time asc, event first, risk asc). Counting every pair with ``x_i < x_j``
    includes exactly one unwanted kind: two events at the same time, which are subtracted; ordering them by
    ascending risk makes their concordant part zero, leaving only their risk ties.
    """
    n = risk.shape[0]
    device = risk.device
    if n < 2:
        zero = torch.zeros(n, dtype=_F64, device=device)
        return zero.sum(), zero.sum(), zero, zero
    rkey = ascending_key(risk)
    order = _stable_argsort(rkey)
    order = order.index_select(0, _stable_argsort((~event).long().index_select(0, order)))
    order = order.index_select(0, _stable_argsort(ascending_key(time).index_select(0, order)))
    r_x, e_x = rkey.index_select(0, order), event.index_select(0, order)
    t_x = time.index_select(0, order)
    w_x = weight.index_select(0, order).masked_fill_(~e_x, 0.0)

    # all pairs x_i < x_j, minus the same-time event pairs and their risk ties
    te_new, ter_new = _run_starts(t_x, e_x), _run_starts(t_x, e_x, r_x)
    den_j = torch.cumsum(w_x, 0).sub_(w_x).sub_(_sum_before_in_run(w_x, _run_start_index(te_new)))
    num_j = _sum_before_in_run(w_x, _run_start_index(ter_new)).mul_(-0.5)

    # y = precedence order (risk desc, x asc): "i precedes j" and x_i < x_j  <=>  r_i >= r_j
    y = _stable_argsort(~r_x)
    w_y = w_x.index_select(0, y)
    tie_new = _run_starts(r_x.index_select(0, y))
    ties_y = _sum_before_in_run(w_y, _run_start_index(tie_new))
    total, later, earlier = _dominance(y, w_y, per_element)
    num = total - 0.5 * ties_y.sum() + num_j.sum()
    den = den_j.sum()
    if not per_element:
        return num, den, None, None

    assert later is not None and earlier is not None
    pos = torch.arange(n, device=device)
    ties_j = torch.empty(n, dtype=_F64, device=device).index_copy_(0, y, ties_y)
    ties_after = (_run_end_index(tie_new) - 1 - pos).to(_F64)
    ties_i = torch.empty(n, dtype=_F64, device=device).index_copy_(0, y, ties_after)
    ev = e_x.to(_F64)
    num_i = ev * (earlier - 0.5 * ties_i - 0.5 * (_run_end_index(ter_new) - 1 - pos))
    den_i = ev * (n - _run_end_index(te_new))
    num_x = later - 0.5 * ties_j + num_j + num_i
    den_x = den_j + den_i
    num_k = torch.empty(n, dtype=_F64, device=device).index_copy_(0, order, num_x)
    den_k = torch.empty(n, dtype=_F64, device=device).index_copy_(0, order, den_x)
    return num, den, num_k, den_k


def censoring_survival(train_event: Tensor, train_time: Tensor, at: Tensor) -> Tensor:
    """Kaplan-Meier estimate of the censoring survival ``G(t) = P(C > t)`` at ``at``, same shape as ``at``.

    ``G(t) = prod_{t_k <= t} (1 - c_k / (r_k - d_k))`` over the unique training times ``t_k`` with ``c_k``
    censorings, ``d_k`` events and ``r_k`` at risk: events at a tied time leave first, as in
    scikit-survival's ``CensoringDistributionEstimator``. ``G`` is 1 before the first training time and 0
    after the last one if it reached 0 there; otherwise it is unknown beyond the last training time and
    asking for it raises :class:`SurvmomError`.

    >>> censoring_survival(torch.tensor([1, 0, 1]), torch.tensor([1.0, 2.0, 3.0]), torch.tensor([2.5]))
    tensor([0.5000], dtype=torch.float64)
    """
    e, t = _train_data(train_event, train_time, torch.as_tensor(train_time).device)
    a = _as_float(at, "at").to(t.device)
    uniq, g = kaplan_meier_steps(e, t, censoring=True)
    t_max = float(uniq[-1])
    if float(g[-1]) > 0.0 and bool((a > t_max).any()):
        raise SurvmomError(
            f"the censoring distribution is unknown after the last training follow-up time {t_max:g}; "
            f"got t = {float(a.max()):g}: use times <= {t_max:g}"
        )
    return step_at(uniq, g, a.reshape(-1)).reshape(a.shape)


def _ipcw_survival(train_event: Tensor, train_time: Tensor, at: Tensor, train_weight: Tensor | None = None
                   ) -> Tensor:
    """``G(at)`` (same shape as ``at``), raising :class:`SurvmomError` where it is 0 or unknown; the censoring
    Kaplan-Meier weighted by ``train_weight`` (n,) if given."""
    uniq, g = kaplan_meier_steps(train_event, train_time, censoring=True, weight=train_weight)
    t_max = float(uniq[-1])
    g_at = step_at(uniq, g, at)
    bad = (at > t_max) | (g_at <= 0.0)
    if bool(bad.any()):
        limit = f"<= {t_max:g}" if float(g[-1]) > 0.0 else f"< {t_max:g}"
        raise SurvmomError(
            f"the censoring survival G(t) fitted on the training data is 0 or unknown at t = "
            f"{float(at[bad].min()):g}; IPCW needs evaluation times and the test event times up to them "
            f"{limit} (last training follow-up time {t_max:g})"
        )
    return g_at


# ------------------------------------------------------------------------------------------- concordance
def concordance_index(risk: Tensor, event: Tensor, time: Tensor, *, entry: Tensor | None = None,
                      weight: Tensor | None = None, strata: Tensor | None = None) -> float:
    """Harrell's concordance index, ``sum_{comparable (i,j)} ([r_i > r_j] + [r_i = r_j] / 2) / #comparable``.

    With ``entry`` (n,) (delayed entry, counting-process rows) or ``weight`` (n,) (case weights), the
    time-dependent concordance of :func:`survmom.core.design_metrics.design_concordance`: j must be at risk
    at ``t_i`` (``entry_j < t_i``) and pair (i, j) counts ``w_i w_j``. With ``strata`` (n,) int64 codes, pairs
    are compared within a stratum only, as R survival's ``concordance(..., strata)`` (a stratified Cox model's
    log hazards of different strata share no baseline; :func:`~survmom.core.design_metrics.stratum_windows`).

    ``risk``, ``event``, ``time``: (n,), see the module conventions. A pair is comparable when the sample
    with the shorter time had an event (``t_i < t_j``, ``event_i``), or when both times are equal and only
    ``i`` had an event; two events at the same time are not comparable. This equals
    ``lifelines.utils.concordance_index(time, -risk, event)`` and
    ``sksurv.metrics.concordance_index_censored(event, time, risk)[0]`` exactly.

    Returns NaN, instead of raising, when there is no comparable pair (all censored, n < 2, or all events
    at one time with nothing censored at or after it), so validation on a small batch cannot crash a
    training run. Cost O(n log n): four integer radix sorts and a log2(n)-level wavelet pass, no Python
    loop over samples; about 0.5 s for n = 10^6 on one CPU core.

    >>> risk, event = torch.tensor([3.0, 2.0, 1.0]), torch.tensor([1, 1, 0])
    >>> concordance_index(risk, event, torch.tensor([1.0, 2.0, 3.0]))
    1.0
    """
    r, e, t = _risk_event_time(risk, event, time)
    if strata is not None and len(strata) and int(strata.max()) > int(strata.min()):
        from survmom.core.design_metrics import stratum_windows

        t, entry = stratum_windows(t, entry, strata)
    if entry is not None or weight is not None:
        from survmom.core.design_metrics import design_concordance  # it builds on this module's helpers

        return design_concordance(r, e, t, _optional(entry, "entry", t, allow_inf=True), _weights(weight, t))
    num, den, _, _ = _concordance_parts(r, e, t, torch.ones_like(t))
    return float(num / den) if float(den) > 0 else float("nan")


def concordance_index_se(risk: Tensor, event: Tensor, time: Tensor) -> tuple[float, float]:
    """Harrell's C and its standard error from the infinitesimal-jackknife variance: ``(c, se)``.

    ``se^2 = sum_k ((N_k - c D_k) / D)^2``: ``N_k`` and ``D_k`` are the concordant (ties 1/2) and comparable
    pair counts of the pairs that contain sample ``k``, ``D`` the number of comparable pairs. This is the
    derivative of C with respect to each sample's case weight (the delta-method / influence-function
    variance of a ratio of U-statistics; Therneau & Atkinson, "Concordance", vignette of the R package
    survival; Pencina & D'Agostino 2004, Stat Med 23:2109). It agrees with the leave-one-out jackknife to a
    few percent, is deterministic, and costs about 1.5-2x :func:`concordance_index`, O(n log n), where a
    bootstrap would cost B full recomputations. Both values are NaN when C is.
    """
    r, e, t = _risk_event_time(risk, event, time)
    num, den, num_k, den_k = _concordance_parts(r, e, t, torch.ones_like(t), per_element=True)
    if float(den) <= 0:
        return float("nan"), float("nan")
    assert num_k is not None and den_k is not None
    c = num / den
    return float(c), float(torch.sqrt((((num_k - c * den_k) / den) ** 2).sum()))


def concordance_index_ci(risk: Tensor, event: Tensor, time: Tensor, level: float = 0.95) -> tuple[float, float, float]:
    """Harrell's C with a Wald confidence interval: ``(c, low, high)``, ``low, high = c -+ z_{(1+level)/2} * se``
    clipped to [0, 1], ``se`` from :func:`concordance_index_se`. All three values are NaN when C is."""
    if not 0.0 < level < 1.0:
        raise SurvmomError(f"level must be in (0, 1), got {level}")
    c, se = concordance_index_se(risk, event, time)
    if math.isnan(c):
        return float("nan"), float("nan"), float("nan")
    half = se * float(torch.special.ndtri(torch.tensor(0.5 + level / 2.0, dtype=_F64)))
    return c, max(0.0, c - half), min(1.0, c + half)


def uno_concordance_index(
    risk: Tensor,
    event: Tensor,
    time: Tensor,
    train_event: Tensor,
    train_time: Tensor,
    tau: float | None = None,
) -> float:
    """Uno's IPCW concordance index truncated at ``tau``, as ``sksurv.metrics.concordance_index_ipcw``.

    ``C = sum_{comparable (i,j)} w_i ([r_i > r_j] + [r_i = r_j] / 2) / sum_{comparable (i,j)} w_i`` with
    Harrell's comparable pairs and ``w_i = [t_i < tau] / G(t_i)^2``, ``G`` the censoring survival fitted on
    the training data (:func:`censoring_survival`; Uno et al. 2011, Stat Med 30:1105). ``tau=None`` keeps
    every event. Raises :class:`SurvmomError` if ``G`` is 0 or unknown at a test event time below ``tau``
    (choose ``tau`` below the last training follow-up time); NaN when there is no comparable pair.
    """
    r, e, t = _risk_event_time(risk, event, time)
    te, tt = _train_data(train_event, train_time, t.device)
    used = e if tau is None else e & (t < float(tau))
    g = torch.ones_like(t)
    if bool(used.any()):
        g[used] = _ipcw_survival(te, tt, t[used])
    weight = torch.where(used, 1.0 / g**2, 0.0)
    num, den, _, _ = _concordance_parts(r, e, t, weight)
    return float(num / den) if float(den) > 0 else float("nan")


# --------------------------------------------------------------------------------------- time-dependent
def cumulative_dynamic_auc(
    risk: Tensor, event: Tensor, time: Tensor, train_event: Tensor, train_time: Tensor, times: Tensor
) -> tuple[Tensor, float]:
    """Uno's IPCW cumulative/dynamic AUC at each of ``times`` (m,), and its mean, as scikit-survival.

    ``AUC(t) = sum_{i,j} w_i [t_i <= t, event_i] [t_j > t] ([r_i > r_j] + [r_i = r_j] / 2)
    / (sum_i w_i [t_i <= t, event_i] * sum_j [t_j > t])`` with ``w_i = 1 / G(t_i)``, ``G`` the censoring
    survival fitted on the training data (Uno et al. 2007, JASA 102:527; Hung & Chiang 2010, Can J Stat 38:8).
    ``risk`` is (n,) or (n, m) (column k scored at ``times[k]``). The mean is
    ``sum_k AUC(t_k) (S(t_{k-1}) - S(t_k)) / (1 - S(t_m))`` with ``S`` the Kaplan-Meier survival of the
    test data and ``S(t_0) = 1`` (Lambert & Chevret 2014, SMMR); with one time it is ``AUC(t_1)``.

    ``times`` must be strictly increasing inside the test follow-up ``[min(time), max(time))``; an AUC is
    NaN at a time with no event yet, and then so is the mean. Raises :class:`SurvmomError` for times where
    the training censoring survival is 0 or unknown. Returns ``(auc (m,) float64, mean_auc)``.
    """
    r_in = _as_float(risk, "risk", allow_inf=True)
    if r_in.ndim not in (1, 2):
        raise SurvmomError(f"risk must be (n,) or (n, m), got shape {tuple(r_in.shape)}")
    e, t = _event_time(event, time, r_in.shape[0])
    te, tt = _train_data(train_event, train_time, t.device)
    ts = _eval_times(times, t)
    n, m = t.shape[0], ts.shape[0]
    r = r_in.to(t.device)
    if r.ndim == 2 and r.shape[1] != m:
        raise SurvmomError(f"risk has {r.shape[1]} columns but there are {m} times")
    r = r.reshape(n, -1)

    cases = e[:, None] & (t[:, None] <= ts[None, :])
    controls = t[:, None] > ts[None, :]
    needed = e & (t <= ts[-1])
    ipcw = torch.zeros_like(t)
    if bool(needed.any()):
        ipcw[needed] = 1.0 / _ipcw_survival(te, tt, t[needed])
    case_w = torch.where(cases, ipcw[:, None], 0.0)

    # Mann-Whitney per column: controls strictly below each case's risk, plus half of those tied with it
    r_sorted, o = torch.sort(r, dim=0)
    new = torch.ones_like(r_sorted, dtype=torch.bool)
    new[1:] = r_sorted[1:] != r_sorted[:-1]
    last = torch.ones_like(new)
    last[:-1] = new[1:]
    idx = torch.arange(n, device=t.device)[:, None]
    start = torch.cummax(torch.where(new, idx, 0), 0).values  # first row of each tied-risk run
    end = torch.where(last, idx + 1, n).flip(0).cummin(0).values.flip(0)  # one past its last row
    o, start, end = (a.expand(n, m) for a in (o, start, end))
    ctrl_sorted = controls.gather(0, o).to(_F64)
    cum = torch.cumsum(ctrl_sorted, 0)
    below = (cum - ctrl_sorted).gather(0, start)
    tied = cum.gather(0, end - 1) - below
    num = (case_w.gather(0, o) * (below + 0.5 * tied)).sum(0)
    auc = num / (case_w.sum(0) * controls.sum(0))

    if m == 1:
        return auc, float(auc[0])
    uniq, s = kaplan_meier_steps(e, t, censoring=False)
    s_t = step_at(uniq, s, ts)
    drop = -torch.diff(torch.cat([s_t.new_ones(1), s_t]))
    return auc, float((auc * drop).sum() / (1.0 - s_t[-1]))


def brier_score(
    surv_prob: Tensor, event: Tensor, time: Tensor, train_event: Tensor, train_time: Tensor, times: Tensor, *,
    weight: Tensor | None = None, train_weight: Tensor | None = None,
) -> Tensor:
    """Graf's IPCW Brier score at each of ``times`` (m,), as ``sksurv.metrics.brier_score``.

    ``BS(t) = mean_i ( [t_i <= t, event_i] S_i(t)^2 / G(t_i) + [t_i > t] (1 - S_i(t))^2 / G(t) )`` with
    ``S_i(t)`` = ``surv_prob`` (n, m), the predicted probability that sample i survives past ``times`` (m,),
    and ``G`` the censoring survival fitted on the training data (Graf et al. 1999, Stat Med 18:2529).
    Samples censored before ``t`` contribute 0. ``times`` must be strictly increasing inside the test
    follow-up ``[min(time), max(time))``. Raises :class:`SurvmomError` where a needed ``G`` is 0 or unknown
    (scikit-survival instead drops such terms when the training ``G`` ends at 0). Returns float64 (m,).
    ``weight`` (n,): case weights of the test rows (a weighted mean); ``train_weight``: of the training rows
    (a weighted censoring Kaplan-Meier); integer weights equal replicated rows.
    """
    p_in = _as_float(surv_prob, "surv_prob")
    if p_in.ndim not in (1, 2):
        raise SurvmomError(f"surv_prob must be (n, m), got shape {tuple(p_in.shape)}")
    e, t = _event_time(event, time, p_in.shape[0])
    te, tt = _train_data(train_event, train_time, t.device)
    ts = _eval_times(times, t)
    n, m = t.shape[0], ts.shape[0]
    p = p_in.to(t.device)
    if p.ndim == 1 and m == 1:
        p = p[:, None]
    if p.shape != (n, m):
        raise SurvmomError(f"surv_prob must have shape (n, m) = ({n}, {m}), got {tuple(p.shape)}")

    needed = e & (t <= ts[-1])
    w, tw = _weights(weight, t), _weights(train_weight, tt, "train_weight")
    g_event = torch.ones_like(t)
    if bool(needed.any()):
        g_event[needed] = _ipcw_survival(te, tt, t[needed], tw)
    g_times = _ipcw_survival(te, tt, ts, tw)
    case_w = torch.where(e, 1.0 / g_event, 0.0) if w is None else torch.where(e, w / g_event, 0.0)
    control_w = torch.ones_like(t) if w is None else w
    # one time at a time: (n, m) temporaries would take gigabytes at 10^6 rows and the IBS grid's 50 times
    score = torch.empty(m, dtype=_F64, device=t.device)
    for k in range(m):
        p_k, case, control = p[:, k], t <= ts[k], t > ts[k]
        score[k] = (torch.where(case, case_w, 0.0) @ p_k.square()
                    + torch.where(control, control_w, 0.0) @ (1.0 - p_k).square() / g_times[k])
    return score / (n if w is None else w.sum())


def integrated_brier_score(
    surv_prob: Tensor, event: Tensor, time: Tensor, train_event: Tensor, train_time: Tensor, times: Tensor, *,
    weight: Tensor | None = None, train_weight: Tensor | None = None,
) -> float:
    """Integrated Brier score ``int_{t_1}^{t_m} BS(t) dt / (t_m - t_1)`` by the trapezoid rule over ``times``.

    Same arguments and errors as :func:`brier_score`, which it integrates (as scikit-survival's
    ``integrated_brier_score``); needs at least two times.
    """
    ts = _as_float(times, "times").reshape(-1)
    if ts.numel() < 2:
        raise SurvmomError("integrated_brier_score needs at least two times")
    bs = brier_score(surv_prob, event, time, train_event, train_time, ts, weight=weight, train_weight=train_weight)
    ts = ts.to(bs.device)
    return float(torch.trapezoid(bs, ts) / (ts[-1] - ts[0]))
