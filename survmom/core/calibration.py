r"""Calibration of predicted survival probabilities: at one time t, and over the whole follow-up.

Conventions: ``pred`` (n,) is each row's predicted survival probability :math:`\hat S(t \mid x_i)` at the time
``t``, in [0, 1]; ``event`` (n,) bool or 0/1; ``time`` (n,) the follow-up, in the unit of ``t``. Predicted and
observed are compared as survival probabilities; :math:`|\hat S - S_{obs}|` is also the error in the event
probability :math:`1 - S`. Everything is float64; scalars come back as Python floats.

* :func:`smoothed_calibration`: the smoothed calibration curve and its ICI, E50, E90 (Austin, Harrell & van
  Klaveren 2020).
* :func:`calibration_in_the_large`: the mean predicted S(t) against the Kaplan-Meier S(t) of all rows.
* :func:`calibration_groups`: the Kaplan-Meier S(t) within quantile groups (deciles) of predicted S(t).
* :func:`d_calibration`: Haider et al.'s (2020) test that S(T_i | x_i) is uniform, over the whole follow-up.

References:
    Austin, P. C., Harrell, F. E. Jr & van Klaveren, D. (2020). Graphical calibration curves and the
    integrated calibration index (ICI) for survival models. Statistics in Medicine 39(21), 2714-2742.
    Haider, H., Hoehn, B., Davis, S. & Greiner, R. (2020). Effective ways to build and evaluate individual
    survival distributions. JMLR 21(85), 1-63.
    Harrell, F. E. Jr (2015). Regression Modeling Strategies, 2nd ed., sec. 2.4.5 (restricted cubic splines).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from survmom.core.kaplan_meier import kaplan_meier
from survmom.core.linear_start import fit_linear_start
from survmom.core.losses import cox_loss
from survmom.errors import SurvmomError

__all__ = [
    "CalibrationGroup",
    "CalibrationInTheLarge",
    "CalibrationUndefined",
    "DCalibration",
    "SmoothedCalibration",
    "calibration_groups",
    "calibration_in_the_large",
    "chi2_sf",
    "d_calibration",
    "smoothed_calibration",
]

_F64 = torch.float64
_CLIP = 1e-10  # predicted event probabilities are clipped to [1e-10, 1 - 1e-10] before log(-log(1 - p))
_GRID_RANGE = (0.01, 0.99)  # the curve is drawn between these quantiles of the predictions
_CONVERGED = 1e-6  # largest gradient entry of the mean (per event) partial likelihood accepted as a maximum
_IDENTIFIED = 1e-8  # smallest eigenvalue of its Hessian accepted (SurvivalEVAL refuses <= 1e-10)
_FD_STEP = 1e-4  # forward differences of the gradient give that Hessian


class CalibrationUndefined(SurvmomError):
    """The smoothed calibration curve cannot be estimated from these rows; the message says why."""


# ------------------------------------------------------------------------------------------------ inputs
def _inputs(pred: Any, event: Any, time: Any = None) -> tuple[Tensor, Tensor, Tensor]:
    """Validated ``(pred, event, time)``: 1-D, equal length n >= 1, float64 / bool, pred in [0, 1]; ``time``
    None: zeros."""
    s = torch.as_tensor(pred).detach().to(_F64).reshape(-1)
    e = torch.as_tensor(event).detach()
    t = torch.zeros_like(s) if time is None else torch.as_tensor(time).detach().to(_F64).reshape(-1)
    if e.dtype != torch.bool:
        if not bool(((e == 0) | (e == 1)).all()):
            raise SurvmomError("event must be bool or 0/1 valued")
        e = e != 0
    e = e.reshape(-1)
    if not s.shape == e.shape == t.shape or s.numel() == 0:
        raise SurvmomError(f"pred, event and time need the same non-zero length, got {tuple(s.shape)}, "
                           f"{tuple(e.shape)} and {tuple(t.shape)}")
    if not bool(((s >= 0) & (s <= 1)).all()):
        raise SurvmomError("predicted survival probabilities must lie in [0, 1] (and not be NaN)")
    if not bool(torch.isfinite(t).all()):
        raise SurvmomError("time must be finite")
    return s, e, t


def _quantiles(values: Tensor, levels: list[float]) -> Tensor:
    """Quantiles of ``values`` (n,) by linear interpolation between order statistics (numpy's default,
    R's type 7); by sorting, so any n works (``torch.quantile`` refuses very large inputs)."""
    v = torch.sort(values).values
    pos = torch.tensor(levels, dtype=_F64) * (v.numel() - 1)
    lo = pos.floor().long()
    hi = pos.ceil().long()
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def _linspace(start: float, stop: float, num: int) -> Tensor:
    """numpy's ``linspace`` arithmetic (``start + i * step``, the last point exactly ``stop``), so that values
    on a bin edge land in the same bin as in numpy-based tools."""
    if num == 1:
        return torch.tensor([start], dtype=_F64)
    points = torch.arange(num, dtype=_F64) * ((stop - start) / (num - 1)) + start
    points[-1] = stop
    return points


# ---------------------------------------------------------------------------------------- smoothed curve
@dataclass(frozen=True)
class SmoothedCalibration:
    """The smoothed calibration at one time: ``observed`` (n,) the smoothed observed S(t) of each row;
    ``ici``, ``e50``, ``e90`` the mean, median and 90th percentile of ``|pred - observed|``; the curve:
    ``grid`` (g,) predicted S(t), ascending, and ``curve`` (g,) the smoothed observed S(t) there."""

    observed: Tensor
    ici: float
    e50: float
    e90: float
    grid: Tensor
    curve: Tensor


def smoothed_calibration(pred: Any, event: Any, time: Any, t: float, *, knots: int = 3,
                         grid_points: int = 100) -> SmoothedCalibration:
    r"""Austin et al.'s (2020, appendix A) smoothed calibration curve of predicted survival at ``t``.

    A Cox model is fitted to all rows (their whole follow-up) with one covariate, a restricted cubic spline
    of :math:`c_i = \log(-\log(1 - p_i))`, :math:`p_i = 1 - \hat S(t \mid x_i)` clipped to
    :math:`[10^{-10}, 1 - 10^{-10}]`: :math:`h(u \mid c) = h_0(u) \exp(f(c))` with ``knots`` knots at the
    quantiles 10/50/90 % of :math:`c` (3 knots; 5-95 % for 4-6, 2.5-97.5 % for more; Harrell's rule without
    his small-sample adjustment). Efron's ties; the baseline is Efron's estimator
    :math:`H_0(t) = \sum_{\tau_k \le t} \sum_{l=0}^{d_k - 1} 1 / (R_k - \tfrac{l}{d_k} D_k)` (the baseline
    R's ``survfit.coxph`` gives after an Efron fit). The smoothed observed
    survival of row i is :math:`S_{obs,i} = \exp(-H_0(t) e^{f(c_i)})`, and
    ``ICI = mean |pred - S_obs|``, ``E50`` and ``E90`` its median and 90th percentile. The spline is
    Harrell's truncated-power basis (the same space as any natural cubic spline with those knots, so the fit
    equals SurvivalEVAL's ``integrated_calibration_index``, which uses patsy's ``cr`` basis), columns
    standardised; the Cox fit is :func:`survmom.core.linear_start.fit_linear_start` without penalty.

    Special cases (SurvivalEVAL's): no event at or before ``t``: :math:`H_0(t) = 0`, so every
    :math:`S_{obs} = 1`; a single distinct prediction: every :math:`S_{obs}` is the Kaplan-Meier S(t).

    The curve is drawn at ``grid_points`` predictions evenly spaced in :math:`p` between its 1st and 99th
    percentiles (``grid`` holds them as S = 1 - p, ascending).

    Not lifelines' ``survival_probability_calibration``: lifelines smooths with a parametric model of time,
    a Crowther-Royston-Clements AFT spline with 3 knots on log time, whose own misfit of the baseline hazard
    counts as miscalibration: on rossi at week 20 its smoothed S(20) of an in-sample Cox model averages 0.920
    where the Kaplan-Meier S(20) of the same rows is 0.907 (and the mean prediction 0.907), so its ICI is
    0.0122 against 0.0011 here (tests/test_calibration.py).

    Raises :class:`CalibrationUndefined` (a :class:`SurvmomError`) when the curve cannot be estimated: fewer
    distinct predictions than knots, knots that coincide, a rank-deficient spline design, or a Cox fit that
    does not converge or whose coefficients the rows do not identify (e.g. rows that die exactly in the order
    of their predicted risk).
    """
    s, e, tm = _inputs(pred, event, time)
    if isinstance(knots, bool) or not isinstance(knots, int) or knots < 3:
        raise SurvmomError(f"knots must be an integer >= 3, got {knots!r}")
    p = 1.0 - s
    p_lo, p_hi = _quantiles(p, list(_GRID_RANGE)).tolist()
    p_grid = _linspace(p_lo, p_hi, grid_points)
    n = p.numel()
    if not bool((e & (tm <= t)).any()):
        observed_event = torch.zeros(n + grid_points, dtype=_F64)
    elif torch.unique(p).numel() == 1:
        observed_event = (1.0 - kaplan_meier(e, tm).at(torch.tensor(float(t), dtype=_F64))).expand(n + grid_points)
    else:
        x, x_grid = _cloglog(p), _cloglog(p_grid)
        design, design_grid = _spline_design(x, x_grid, knots)
        beta = _fit_cox(design, e, tm)
        observed_event = _event_probability(design @ beta, torch.cat([design, design_grid]) @ beta, e, tm, float(t))
    errors = (p - observed_event[:n]).abs()
    e50, e90 = _quantiles(errors, [0.5, 0.9]).tolist()
    return SmoothedCalibration(1.0 - observed_event[:n], float(errors.mean()), e50, e90,
                               (1.0 - p_grid).flip(0), (1.0 - observed_event[n:]).flip(0))


def _cloglog(p: Tensor) -> Tensor:
    """``log(-log(1 - p))`` of event probabilities clipped to [1e-10, 1 - 1e-10]."""
    return torch.log(-torch.log1p(-p.clamp(_CLIP, 1.0 - _CLIP)))


def _spline_design(x: Tensor, at: Tensor, knots: int) -> tuple[Tensor, Tensor]:
    """Restricted cubic spline designs (n, knots - 1) of ``x`` and (g, knots - 1) of ``at``, knots and column
    standardisation from ``x``. Column 0 is x; column j >= 1 is Harrell's
    ``[(x-k_j)+^3 - (x-k_{K-1})+^3 (k_K-k_j)/(k_K-k_{K-1}) + (x-k_K)+^3 (k_{K-1}-k_j)/(k_K-k_{K-1})] / (k_K-k_1)^2``
    (knots k_1 < ... < k_K), cubic between the knots and linear beyond the outer ones."""
    outer = 0.1 if knots == 3 else 0.05 if knots <= 6 else 0.025
    k = _quantiles(x, _linspace(outer, 1.0 - outer, knots).tolist())
    distinct = torch.unique(x).numel()
    if distinct < knots:
        raise CalibrationUndefined(f"the smoothed curve needs at least {knots} distinct predictions, got {distinct}")
    if torch.unique(k).numel() < knots:
        raise CalibrationUndefined(f"the {knots} spline knots (quantiles {100 * outer:g}-{100 - 100 * outer:g} % of "
                                   f"the predictions) coincide: too many rows share one prediction")

    def basis(v: Tensor) -> Tensor:
        last, before = k[-1], k[-2]
        columns = [v]
        for j in range(knots - 2):
            cube = ((v - k[j]).clamp(min=0) ** 3
                    - (v - before).clamp(min=0) ** 3 * (last - k[j]) / (last - before)
                    + (v - last).clamp(min=0) ** 3 * (before - k[j]) / (last - before))
            columns.append(cube / (last - k[0]) ** 2)
        return torch.stack(columns, dim=1)

    design = basis(x)
    center, scale = design.mean(0), design.std(0, unbiased=False)
    if bool((scale == 0).any()) or int(torch.linalg.matrix_rank(design - center)) < design.shape[1]:
        raise CalibrationUndefined("the spline of the predictions is rank-deficient (too few distinct "
                                   "predictions between the knots)")
    return (design - center) / scale, (basis(at) - center) / scale


def _fit_cox(design: Tensor, event: Tensor, time: Tensor) -> Tensor:
    """Unpenalised Cox (Efron) coefficients (q,) of ``design`` (n, q); :class:`CalibrationUndefined` unless
    the fit converged to a maximum whose Hessian is positive definite."""
    linear = nn.Linear(design.shape[1], 1, dtype=_F64)
    if not fit_linear_start(linear, design, event, time, "cox", ties="efron", penalty=0.0, max_rows=len(time)):
        raise CalibrationUndefined("the Cox model of the smoothed curve has no finite fit")
    beta = linear.weight.detach()[0].clone()

    def gradient(b: Tensor) -> Tensor:
        b = b.clone().requires_grad_(True)
        with torch.enable_grad():
            loss = cox_loss(design @ b, event, time, ties="efron", reduction="mean")
            return torch.autograd.grad(loss, b)[0]

    at_beta = gradient(beta)
    if float(at_beta.abs().max()) > _CONVERGED:
        raise CalibrationUndefined("the Cox model of the smoothed curve did not converge")
    step = torch.eye(beta.numel(), dtype=_F64) * _FD_STEP
    hessian = torch.stack([(gradient(beta + h) - at_beta) / _FD_STEP for h in step])
    if float(torch.linalg.eigvalsh((hessian + hessian.T) / 2).min()) <= _IDENTIFIED:
        raise CalibrationUndefined("the rows do not identify the Cox model of the smoothed curve (its "
                                   "likelihood is flat in some direction)")
    return beta


def _event_probability(lp: Tensor, lp_at: Tensor, event: Tensor, time: Tensor, t: float) -> Tensor:
    """``1 - exp(-H0(t) exp(lp_at))`` (g,) with Efron's baseline ``H0`` of the Cox model whose linear predictor
    on the rows is ``lp`` (n,); weights shifted by ``max(lp)``, which cancels."""
    shift = lp.max()
    w = torch.exp(lp - shift)
    uniq, inverse = torch.unique(time, sorted=True, return_inverse=True)
    per_time = torch.zeros(uniq.numel(), dtype=_F64).index_add_(0, inverse, w)
    at_risk = per_time.flip(0).cumsum(0).flip(0)  # R_k: weight of the rows with time >= uniq[k]
    dying = torch.zeros_like(per_time).index_add_(0, inverse, torch.where(event, w, 0.0))  # D_k
    deaths = torch.zeros_like(per_time).index_add_(0, inverse, event.to(_F64))  # d_k
    group = torch.sort(inverse[event]).values  # the time of each event, grouped
    rank = torch.arange(group.numel()) - torch.searchsorted(group, group)  # l = 0 .. d_k - 1 within its time
    terms = 1.0 / (at_risk[group] - rank / deaths[group] * dying[group])
    h0 = terms[uniq[group] <= t].sum()
    return -torch.expm1(-h0 * torch.exp(lp_at - shift))


# ------------------------------------------------------------------------------------- in the large, groups
@dataclass(frozen=True)
class CalibrationInTheLarge:
    """The mean predicted S(t) of all rows, and their Kaplan-Meier S(t) with its 95 % log(-log) band."""

    mean_predicted: float
    km: float
    km_lower: float
    km_upper: float


def calibration_in_the_large(pred: Any, event: Any, time: Any, t: float) -> CalibrationInTheLarge:
    """Calibration in the large at ``t``: ``mean(pred)`` against the Kaplan-Meier S(t) of the rows (with its
    Greenwood log(-log) 95 % band, :func:`survmom.core.kaplan_meier.kaplan_meier`). A mean outside the band
    says the model predicts too many (mean above) or too few (below) events by ``t`` overall."""
    s, e, tm = _inputs(pred, event, time)
    km = kaplan_meier(e, tm)
    at = torch.tensor(float(t), dtype=_F64)
    low, high = km.band_at(at)
    return CalibrationInTheLarge(float(s.mean()), float(km.at(at)), float(low), float(high))


@dataclass(frozen=True)
class CalibrationGroup:
    """One quantile group of predicted S(t): ``rows``; ``events`` at or before t; ``at_risk`` at t (time >= t);
    ``low``/``high`` its smallest and largest predicted S(t), ``mean_predicted`` their mean; ``km`` its
    Kaplan-Meier S(t) with the 95 % log(-log) band ``km_lower``, ``km_upper``."""

    rows: int
    events: int
    at_risk: int
    low: float
    high: float
    mean_predicted: float
    km: float
    km_lower: float
    km_upper: float


def calibration_groups(pred: Any, event: Any, time: Any, t: float, groups: int = 10) -> list[CalibrationGroup]:
    """The rows grouped by quantiles of predicted S(t) (deciles for ``groups=10``), ascending, each with its
    mean prediction and its Kaplan-Meier S(t): the points of a grouped calibration plot.

    Group edges are the quantiles ``k / groups`` of ``pred`` (linear interpolation); a row belongs to the
    group ``(edge_k, edge_{k+1}]`` (the first group also holds the minimum), as ``pandas.qcut(pred, groups,
    duplicates="drop")``: equal predictions share a group, coinciding edges merge groups, and a group left
    empty is dropped, so there may be fewer than ``groups``.
    """
    s, e, tm = _inputs(pred, event, time)
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise SurvmomError(f"groups must be a positive integer, got {groups!r}")
    edges = torch.unique(_quantiles(s, _linspace(0.0, 1.0, groups + 1).tolist()))
    member = torch.searchsorted(edges[1:-1].contiguous(), s, right=False)
    at = torch.tensor(float(t), dtype=_F64)
    result = []
    for k in range(edges.numel() - 1 if edges.numel() > 1 else 1):
        rows = member == k
        if not bool(rows.any()):
            continue
        km = kaplan_meier(e[rows], tm[rows])
        low, high = km.band_at(at)
        result.append(CalibrationGroup(
            int(rows.sum()), int((e[rows] & (tm[rows] <= t)).sum()), int((tm[rows] >= t).sum()),
            float(s[rows].min()), float(s[rows].max()), float(s[rows].mean()),
            float(km.at(at)), float(low), float(high)))
    return result


# ------------------------------------------------------------------------------------------ D-calibration
@dataclass(frozen=True)
class DCalibration:
    """D-calibration: ``counts`` (bins,) the (fractional) rows per bin of S(T_i | x_i), from [1 - 1/bins, 1]
    down to [0, 1/bins); ``chi2`` Pearson's statistic against equal counts, ``df = bins - 1``, ``p_value``."""

    counts: Tensor
    chi2: float
    df: int
    p_value: float


def d_calibration(surv_at_own_time: Any, event: Any, bins: int = 10) -> DCalibration:
    r"""Haider et al.'s (2020, sec. 4.2 and appendix B) D-calibration test over the whole follow-up.

    If the predicted distributions are right, :math:`u_i = \hat S(T_i \mid x_i)` (``surv_at_own_time`` (n,),
    each row's predicted survival at its own event or censoring time) is uniform on [0, 1]. The interval is
    cut into ``bins`` equal bins, counted from 1 down: bin j is :math:`[1 - (j+1)/B, 1 - j/B)` (the first also
    holds 1, the last 0). An event adds 1 to the bin of :math:`u_i`. A censored row is known only to have
    :math:`u \le u_i`, uniform there under the model: it adds :math:`(u_i - \ell)/u_i` to the bin of
    :math:`u_i` (lower edge :math:`\ell`) and :math:`1 / (B u_i)` to every bin below it; :math:`u_i = 1`
    adds 1/B to every bin and :math:`u_i = 0` adds 1 to the last. Pearson's statistic against the equal
    expectation :math:`n / B`, :math:`\chi^2 = \sum_j (c_j - n/B)^2 / (n/B)`, has ``bins - 1`` degrees of
    freedom; a small p-value says the model is not D-calibrated.

    Equal to SurvivalEVAL's ``d_calibration`` (its histogram, statistic and p-value; the bin edges use the
    same ``numpy.linspace(1, 0, bins + 1)`` values, so a u on an edge lands in the same bin).
    """
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 2:
        raise SurvmomError(f"bins must be an integer >= 2, got {bins!r}")
    u, e, _ = _inputs(surv_at_own_time, event)
    edges = _linspace(1.0, 0.0, bins + 1)  # descending
    above = bins + 1 - torch.searchsorted(edges.flip(0).contiguous(), u, right=True)  # edges > u
    position = (above - 1).clamp(min=0)  # the bin of u
    counts = torch.zeros(bins, dtype=_F64).index_add_(0, position[e], torch.ones(int(e.sum()), dtype=_F64))
    uc, pc = u[~e], position[~e]
    first = torch.where(uc > 0, (uc - edges[pc + 1]) / torch.where(uc > 0, uc, 1.0), 1.0)
    first = torch.where(uc == 1, 1.0 / bins, first)
    counts.index_add_(0, pc, first)
    tail = pc < bins - 1
    starts = torch.zeros(bins, dtype=_F64).index_add_(0, pc[tail], 1.0 / (bins * uc[tail]))
    counts[1:] += torch.cumsum(starts[:-1], 0)
    expected = counts.sum() / bins
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    return DCalibration(counts, chi2, bins - 1, chi2_sf(chi2, bins - 1))


def chi2_sf(x: float, df: int) -> float:
    """P(X > x) for X chi-square with ``df`` degrees of freedom: the regularised upper incomplete gamma
    function ``Q(df/2, x/2)``.

    >>> round(chi2_sf(16.919, 9), 4)
    0.05
    """
    return float(torch.special.gammaincc(torch.tensor(df / 2.0, dtype=_F64), torch.tensor(x / 2.0, dtype=_F64)))
