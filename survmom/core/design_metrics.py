r"""Concordance for study designs: delayed entry / counting-process rows and case weights.

The time-dependent concordance of Therneau & Atkinson ("Concordance", vignette of the R package survival;
the ``concordance`` of ``coxph`` fits with (start, stop] data): a pair (i, j) is comparable when i has an event
at :math:`t_i` and j is at risk then, :math:`e_j < t_i` and (:math:`t_j > t_i`, or :math:`t_j = t_i` with j
censored); it is concordant when :math:`r_i > r_j` and counts one half when :math:`r_i = r_j`. With case
weights a pair counts :math:`w_i w_j`, so integer weights equal replicated rows. Without entry and weights
this is Harrell's C of :func:`~survmom.core.metrics.concordance_index`.

.. math::
    C = \frac{\sum_i w_i \delta_i \sum_{j \in A_i} w_j ([r_j < r_i] + \tfrac12 [r_j = r_i])}
             {\sum_i w_i \delta_i \sum_{j \in A_i} w_j}

The comparable set is :math:`A_i = T_i \setminus B_i` with :math:`T_i = \{j: t_j > t_i \text{ or } (t_j = t_i,
\delta_j = 0)\}` and :math:`B_i = \{j: e_j \ge t_i\}` (:math:`B_i \subseteq T_i` since :math:`e_j < t_j`), so
each inner sum is a difference of two weighted 2-D dominance counts (time threshold x risk threshold),
counted for all i at once by :func:`~survmom.core.metrics._dominance` in O(n log n).
"""

from __future__ import annotations

import torch
from torch import Tensor

from survmom.core.metrics import _dominance, _stable_argsort
from survmom.core.sorting import ascending_key

__all__ = ["design_concordance", "stratum_windows"]

_F64 = torch.float64


def _below(point_time: Tensor, point_first: Tensor, point_weight: Tensor, point_risk: Tensor,
           query_time: Tensor, query_risk: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """For each query i: the weight of the points j that precede it with ``r_j < r_i``, with ``r_j <= r_i``,
    and in all; (E,) each.

    A point precedes a query when its time is later, or equal and ``point_first`` (bool, per point) holds.
    """
    n, m = point_time.shape[0], query_time.shape[0]
    times = torch.cat((point_time, query_time))
    # precedence: descending time; at equal times the "first" points, then the queries, then the others
    tier = torch.cat((torch.where(point_first, 0, 2), torch.ones(m, dtype=torch.int64, device=times.device)))
    order = _stable_argsort(tier)
    order = order.index_select(0, _stable_argsort(~ascending_key(times).index_select(0, order)))
    is_query = order >= n
    weights = torch.cat((point_weight, point_weight.new_zeros(m))).index_select(0, order)
    risks = ascending_key(torch.cat((point_risk, query_risk))).index_select(0, order)
    query_at = is_query.nonzero().view(-1)  # precedence positions of the queries
    back = torch.empty_like(query_at).index_copy_(0, order.index_select(0, query_at) - n,
                                                  torch.arange(m, device=times.device))
    total = torch.cumsum(weights, 0).sub_(weights).index_select(0, query_at).index_select(0, back)
    counts = []
    for query_low in (True, False):  # equal risks: queries below the points (strict <), then above (<=)
        by_risk = _stable_argsort((~is_query if query_low else is_query).long())
        by_risk = by_risk.index_select(0, _stable_argsort(risks.index_select(0, by_risk)))
        rank = torch.empty_like(by_risk).index_copy_(0, by_risk, torch.arange(by_risk.shape[0], device=times.device))
        _, later, _ = _dominance(rank, weights, per_element=True, earlier=False)
        assert later is not None
        counts.append(later.index_select(0, rank.index_select(0, query_at)).index_select(0, back))
    return counts[0], counts[1], total


def design_concordance(risk: Tensor, event: Tensor, time: Tensor, entry: Tensor | None,
                       weight: Tensor | None) -> float:
    """The time-dependent, weighted concordance of the module docstring; NaN without a comparable pair.

    Args:
        risk: (n,) float64, higher means an earlier event; event (n,) bool; time (n,) float64.
        entry: (n,) float64 entry times < ``time`` (-inf or None: at risk from the start), or None.
        weight: (n,) float64 case weights >= 0, or None (all 1).
    """
    w = torch.ones_like(time) if weight is None else weight
    events = event.nonzero().view(-1)
    q_time, q_risk, q_weight = time[events], risk[events], w[events]
    less, less_equal, total = _below(time, ~event, w, risk, q_time, q_risk)
    if entry is not None:  # minus the rows that enter at or after t_i
        late_less, late_less_equal, late_total = _below(entry, torch.ones_like(event), w, risk, q_time, q_risk)
        less, less_equal, total = less - late_less, less_equal - late_less_equal, total - late_total
    num = (q_weight * (less + less_equal)).sum() * 0.5
    den = (q_weight * total).sum()
    return float(num / den) if float(den) > 0 else float("nan")


def stratum_windows(time: Tensor, entry: Tensor | None, strata: Tensor) -> tuple[Tensor, Tensor]:
    """(time, entry) (n,) float64 recoded so that a row is at risk only at the event times of its own stratum.

    The times and entry times are replaced by their joint ranks (an order-preserving recoding, exact in float64)
    and each stratum ``s`` (``strata`` (n,) int64 codes) is moved to a window of its own, ``s (k + 2)`` on; a
    row without an entry time enters just before its stratum's window. Every concordance comparison is then
    one within a stratum, with the same pairs and ties as before.
    """
    n = len(time)
    values = time.double() if entry is None else torch.cat([time.double(), entry.double()])
    distinct, rank = torch.unique(values, sorted=True, return_inverse=True)
    offset = strata.to(device=time.device, dtype=_F64) * (len(distinct) + 2)
    start = rank[n:].double() if entry is not None else torch.full((n,), -1.0, dtype=_F64, device=time.device)
    return rank[:n].double() + offset, start + offset
