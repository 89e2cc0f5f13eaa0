"""The median survival time of an equally weighted mixture of survival curves (an ensemble's mean curve).

An ensemble that averages its members' survival curves, S(t | x) = (1/K) sum_k S_k(t | x), predicts the
smallest t with S(t | x) <= 0.5. S is non-increasing in t, so a binary search per row finds it: over the jump
times of step-function curves (Cox models), or by bisection of log t between the members' own medians
(continuous curves: the mixture's median lies between the smallest and the largest of them).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

PairedSurvival = Callable[[Tensor], Tensor]  # times (n,) -> S(times_i | x_i) (n,)


def median_on_grid(survival_at: PairedSurvival, grid: Tensor, rows: int) -> Tensor:
    """(n,) float64: per row the smallest time of ``grid`` (m,) ascending with ``survival_at <= 0.5``, else inf.

    ``survival_at`` is evaluated about log2(m) + 1 times, each with one time per row.
    """
    grid = grid.to(torch.float64)
    m = len(grid)
    if m == 0:
        return torch.full((rows,), math.inf, dtype=torch.float64)
    low = torch.zeros(rows, dtype=torch.int64)
    high = torch.full((rows,), m, dtype=torch.int64)  # m: not reached by the last grid time
    while bool((low < high).any()):
        middle = torch.div(low + high, 2, rounding_mode="floor").clamp(max=m - 1)
        reached = survival_at(grid[middle]) <= 0.5
        searching = low < high
        high = torch.where(searching & reached, middle, high)
        low = torch.where(searching & ~reached, middle + 1, low)
    return torch.where(low < m, grid[low.clamp(max=m - 1)], torch.full_like(grid[:1], math.inf).expand(rows))


def median_by_bisection(survival_at: PairedSurvival, low: Tensor, high: Tensor, iterations: int = 60) -> Tensor:
    """(n,) float64: per row the time t in [``low``, ``high``] (n,) > 0 where ``survival_at`` crosses 0.5, by
    bisection of log t (``survival_at(low) >= 0.5 >= survival_at(high)``; 60 halvings reach float64 precision for
    brackets within a factor of e^(2^8)). An infinite ``high`` gives inf."""
    log_low, log_high = torch.log(low.to(torch.float64)), torch.log(high.to(torch.float64))
    finite = torch.isfinite(log_high) & torch.isfinite(log_low)
    lo, hi = torch.where(finite, log_low, 0.0), torch.where(finite, log_high, 0.0)
    for _ in range(iterations):
        middle = (lo + hi) / 2
        above = survival_at(torch.exp(middle)) > 0.5
        lo, hi = torch.where(above, middle, lo), torch.where(above, hi, middle)
    return torch.where(finite, torch.exp(hi), high.to(torch.float64))
