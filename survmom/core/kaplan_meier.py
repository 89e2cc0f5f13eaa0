"""The Kaplan-Meier estimator of a survival curve, with Greenwood confidence bands and the numbers at risk.

One implementation, used by the IPCW metrics (the censoring survival G), by calibration and by the plots.
Kaplan & Meier (1958), JASA 53:457; Greenwood (1926); the log(-log) ("exponential Greenwood") band is the one
lifelines and R's ``survfit(conf.type = "log-log")`` report (Kalbfleisch & Prentice 2002, sec. 1.4).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

_F64 = torch.float64


def kaplan_meier_steps(event: Tensor, time: Tensor, censoring: bool = False, weight: Tensor | None = None
                       ) -> tuple[Tensor, Tensor]:
    """Unique times (k,) ascending and the Kaplan-Meier curve just after each of them (k,), float64.

    Survival: ``S(t_k) = prod_{l<=k} (1 - d_l / r_l)``. Censoring (``censoring=True``):
    ``G(t_k) = prod_{l<=k} (1 - c_l / (r_l - d_l))``, i.e. at tied times events leave the risk set before
    censorings (scikit-survival's convention). ``d``, ``c``, ``r``: events, censorings, number at risk.
    ``event`` (n,) bool, ``time`` (n,) float64; ``weight`` (n,) optional case weights: ``d``, ``c``, ``r``
    are then sums of weights (integer weights == replicated rows).
    """
    uniq, d, counts, at_risk = _counts(event, time, weight)
    num, den = (counts - d, at_risk - d) if censoring else (d, at_risk)
    # num > 0 implies den >= num > 0; unweighted counts are integers, so the clamp changes nothing there.
    ratio = torch.where(num > 0, num / (den.clamp(min=1.0) if weight is None else den), 0.0)
    return uniq, torch.cumprod(1.0 - ratio, 0)


def step_at(uniq: Tensor, values: Tensor, at: Tensor, before: float = 1.0) -> Tensor:
    """Right-continuous step function through ``(uniq, values)`` at ``at`` (any shape); ``before`` before
    ``uniq[0]``."""
    idx = torch.searchsorted(uniq, at.contiguous(), right=True) - 1
    return torch.where(idx >= 0, values[idx.clamp(min=0)], before)


@dataclass(frozen=True)
class KaplanMeier:
    """A Kaplan-Meier curve: at each unique time ``times`` (k,), ascending, float64 —

    ``survival`` S just after it, ``lower``/``upper`` its pointwise confidence band (log(-log) Greenwood),
    ``at_risk`` the rows with time >= it, ``events`` and ``censored`` the rows ending there.
    """

    times: Tensor
    survival: Tensor
    lower: Tensor
    upper: Tensor
    at_risk: Tensor
    events: Tensor
    censored: Tensor

    def at(self, t: Tensor) -> Tensor:
        """S(t) at ``t`` (any shape): 1 before the first time, the last value after the last one."""
        return step_at(self.times, self.survival, torch.as_tensor(t, dtype=_F64))

    def band_at(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """The (lower, upper) band at ``t`` (any shape), (1, 1) before the first time."""
        t = torch.as_tensor(t, dtype=_F64)
        return step_at(self.times, self.lower, t), step_at(self.times, self.upper, t)

    def at_risk_at(self, t: Tensor) -> Tensor:
        """The number of rows still at risk at ``t`` (time >= t), any shape, float64."""
        t = torch.as_tensor(t, dtype=_F64)
        after = torch.cat([self.at_risk, self.at_risk.new_zeros(1)])
        return after[torch.searchsorted(self.times, t.contiguous(), right=False)]


def kaplan_meier(event: Tensor, time: Tensor, level: float = 0.95) -> KaplanMeier:
    """The Kaplan-Meier curve of (``event`` (n,) bool, ``time`` (n,)) with a ``level`` confidence band.

    Greenwood's variance ``Var(log S(t)) = sum_{t_k <= t} d_k / (r_k (r_k - d_k))``; the band is
    ``S(t) ** exp(-+ z sqrt(V) / log S(t))`` with ``V`` that sum and ``z`` the normal quantile of
    ``(1 + level) / 2``. Where S is 1 (no event yet) the band is [1, 1]; where S reaches 0 it is [0, 0].

    >>> km = kaplan_meier(torch.tensor([True, False, True, True]), torch.tensor([1.0, 2.0, 3.0, 4.0]))
    >>> km.survival
    tensor([0.7500, 0.7500, 0.3750, 0.0000], dtype=torch.float64)
    >>> km.at_risk.tolist()
    [4.0, 3.0, 2.0, 1.0]
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    event = torch.as_tensor(event).to(torch.bool).reshape(-1)
    time = torch.as_tensor(time, dtype=_F64).reshape(-1)
    if event.shape != time.shape or time.numel() == 0:
        raise ValueError(f"event and time need the same non-zero length, got {event.shape} and {time.shape}")
    uniq, d, counts, at_risk = _counts(event, time)
    survival = torch.cumprod(1.0 - d / at_risk, 0)
    # r - d = 0 where everyone left at risk dies: S is 0 from there on and the band is [0, 0].
    greenwood = torch.cumsum(torch.where(d > 0, d / (at_risk * (at_risk - d)).clamp(min=1e-300), 0.0), 0)
    z = float(torch.special.ndtri(torch.tensor((1.0 + level) / 2.0, dtype=_F64)))
    log_s = torch.log(survival)
    inner = survival.gt(0) & survival.lt(1)
    safe_log = torch.where(inner, log_s, -1.0)
    spread = z * torch.sqrt(greenwood) / safe_log  # <= 0
    lower = torch.where(inner, torch.exp(torch.exp(-spread) * safe_log), survival)
    upper = torch.where(inner, torch.exp(torch.exp(spread) * safe_log), survival)
    return KaplanMeier(uniq, survival, lower, upper, at_risk, d, counts - d)


def _counts(event: Tensor, time: Tensor, weight: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Unique times (k,), events d (k,), rows ending there (k,) and rows at risk r (k,), float64; with
    ``weight`` (n,), sums of the rows' weights."""
    uniq, inverse, counts = torch.unique(time, sorted=True, return_inverse=True, return_counts=True)
    if weight is not None:
        w = weight.to(device=time.device, dtype=_F64)
        d = torch.zeros(uniq.shape[0], dtype=_F64, device=time.device).index_add_(0, inverse, event.to(_F64) * w)
        counts = torch.zeros(uniq.shape[0], dtype=_F64, device=time.device).index_add_(0, inverse, w)
        return uniq, d, counts, w.sum() - (torch.cumsum(counts, 0) - counts)
    d = torch.zeros(uniq.shape[0], dtype=_F64, device=time.device).index_add_(0, inverse, event.to(_F64))
    counts = counts.to(_F64)
    at_risk = time.shape[0] - (torch.cumsum(counts, 0) - counts)
    return uniq, d, counts, at_risk
