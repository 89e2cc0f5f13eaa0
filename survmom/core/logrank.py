"""The log-rank test of equal survival in k groups (the Mantel-Haenszel / Peto test), chi-square with k - 1 df.

At each distinct event time ``t_j`` with ``d_j`` events among ``n_j`` rows at risk (``d_gj`` and ``n_gj`` in
group g), the expected events of group g are ``E_g = sum_j n_gj d_j / n_j`` and the covariance of the
observed-minus-expected vector ``U = O - E`` is

.. math::

    V_{gh} = \\sum_j \\frac{d_j (n_j - d_j)}{n_j - 1} \\frac{n_{gj}}{n_j}
             \\left(\\delta_{gh} - \\frac{n_{hj}}{n_j}\\right).

``U`` sums to zero, so the statistic uses the first k - 1 groups: ``X = U' V^+ U`` (``V^+`` the
pseudo-inverse, so a group with no row at risk at any event time adds no degree of freedom of its own),
chi-square with k - 1 degrees of freedom under equal survival; ``p = Q((k-1)/2, X/2)``, the regularised upper
incomplete gamma function. Mantel (1966), Cancer Chemother Rep 50:163; Peto & Peto (1972), JRSS A 135:185;
Klein & Moeschberger (2003), *Survival Analysis*, sec. 7.3. The same as R's ``survdiff`` and lifelines'
``multivariate_logrank_test``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

_F64 = torch.float64


@dataclass(frozen=True)
class LogRank:
    """The result of :func:`logrank_test`: ``statistic`` (chi-square), ``df`` (k - 1), ``p_value``;
    ``observed``/``expected`` (k,) events per group, in the order of the group codes."""

    statistic: float
    df: int
    p_value: float
    observed: Tensor
    expected: Tensor


def logrank_test(event: Tensor, time: Tensor, group: Tensor) -> LogRank:
    """The log-rank test that the k groups of ``group`` (n,) integer codes share one survival curve.

    ``event`` (n,) bool, ``time`` (n,) float64; the groups are the distinct codes of ``group`` (k >= 2).

    >>> test = logrank_test(torch.tensor([True, True, True, True]), torch.tensor([1.0, 2.0, 3.0, 4.0]),
    ...                     torch.tensor([0, 0, 1, 1]))
    >>> round(test.statistic, 4), test.df, round(test.p_value, 4)
    (2.8824, 1, 0.0896)
    """
    event = torch.as_tensor(event).to(torch.bool).reshape(-1)
    time = torch.as_tensor(time, dtype=_F64).reshape(-1)
    codes, group_index = torch.unique(torch.as_tensor(group).reshape(-1), sorted=True, return_inverse=True)
    if event.shape != time.shape or group_index.shape != time.shape:
        raise ValueError(f"event, time and group need the same length, got {event.shape}, {time.shape}, "
                         f"{group_index.shape}")
    k = codes.numel()
    if k < 2:
        raise ValueError(f"the log-rank test needs at least 2 groups, got {k}")
    uniq, time_index = torch.unique(time, sorted=True, return_inverse=True)
    cell = group_index * uniq.numel() + time_index  # (group, time) of each row
    ending = torch.zeros(k * uniq.numel(), dtype=_F64).index_add_(0, cell, torch.ones_like(time))
    deaths = torch.zeros(k * uniq.numel(), dtype=_F64).index_add_(0, cell, event.to(_F64))
    ending, deaths = ending.view(k, -1), deaths.view(k, -1)  # (k, m) rows whose time is t_j, events at t_j
    at_risk = ending.sum(1, keepdim=True) - (torch.cumsum(ending, 1) - ending)  # (k, m) rows with time >= t_j
    d, n = deaths.sum(0), at_risk.sum(0)  # (m,)
    with_events = d > 0
    d, n, at_risk, deaths = d[with_events], n[with_events], at_risk[:, with_events], deaths[:, with_events]
    share = at_risk / n  # (k, m)
    observed, expected = deaths.sum(1), (share * d).sum(1)
    # n_j = 1 with an event: d_j = n_j, no variance (the factor is 0, not 0/0).
    factor = torch.where(n > 1, d * (n - d) / (n - 1).clamp(min=1.0), 0.0)  # (m,)
    covariance = torch.diag((factor * share).sum(1)) - (factor * share) @ share.T  # (k, k)
    u = (observed - expected)[:-1]
    statistic = float(u @ torch.linalg.pinv(covariance[:-1, :-1], hermitian=True) @ u)
    statistic = max(statistic, 0.0)
    df = k - 1
    p_value = float(torch.special.gammaincc(torch.tensor(df / 2.0, dtype=_F64), torch.tensor(statistic / 2.0,
                                                                                               dtype=_F64)))
    return LogRank(statistic, df, p_value, observed, expected)
