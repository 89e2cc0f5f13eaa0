r"""Risk sets of study designs: delayed entry (left truncation, counting-process rows), case weights, strata.

Row ``j`` (entry :math:`e_j`, time :math:`t_j`, stratum :math:`s_j`, weight :math:`w_j`) is at risk at time
:math:`t` iff :math:`e_j < t \le t_j` and it belongs to the stratum of the event (Therneau & Grambsch 2000,
*Modeling Survival Data*, ch. 3: counting process form and left truncation; Kalbfleisch & Prentice 2002, ch.
4 and 6). Each row gets two integer keys on one axis on which every stratum has a segment of its own:

* ``time key`` :math:`c_j = s_j (n + 1) + r(t_j)` and ``entry key`` :math:`g_j = s_j (n + 1) + r(e_j)`,
  where :math:`r(v)` counts the rows whose time is later than :math:`v` (a rank on reversed time), and a row
  without entry has :math:`r(e_j) = n`, the top of its segment;

then row j is in the risk set of an event k iff :math:`c_j \le c_k < g_j`: the interval :math:`[c_j, g_j)`
lies inside stratum :math:`s_j`'s segment, so risk sets never cross strata. A risk sum is therefore
:math:`\sum_{c_j \le c_k} v_j - \sum_{g_j \le c_k} v_j`, two cumulative sums and a binary search; and the sum
over the events whose risk sets hold row j is a difference of two suffix sums over the events sorted by key.

Both differences are taken of exponentials shifted by the maximum of their stratum, in float64. A difference
that cancels (below ``CANCELLATION`` of its larger term, e.g. when nearly everyone at risk at t entered
later, or another stratum's hazards dwarf this one's) is recomputed directly as a masked ``logsumexp``, so
every sum is accurate to a few ulps times ``1 / CANCELLATION`` at worst.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

__all__ = ["CANCELLATION", "Design", "design_keys", "event_log_sums", "risk_log_sums", "stratum_max"]

# A difference of cumulative sums below this fraction of its larger term is recomputed directly.
CANCELLATION = 2.0**-16
# Direct recomputation works on chunks of at most this many (rows x queries) entries.
_CHUNK_ENTRIES = 1 << 22


class Design(NamedTuple):
    """n rows in block order (stratum, then descending time): their keys on the design axis and weights."""

    time_key: Tensor  # (n,) int64, ascending: c_j
    entry_key: Tensor | None  # (n,) int64: g_j; None when every row is at risk from the start (no entry, no strata)
    strata: Tensor | None  # (n,) int64 stratum codes, or None for one stratum
    n_strata: int
    weight: Tensor | None  # (n,) float64 case weights, or None (all 1)
    log_weight: Tensor | None  # (n,) float64 log weights (-inf for weight 0)


def design_keys(keys: Tensor, entry_keys: Tensor | None, strata: Tensor | None
                ) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """Time keys, entry keys and the block order of n rows sorted by ``keys`` ascending (descending time).

    Args:
        keys: (n,) ascending keys of the rows' times (descending time), equal exactly for tied times.
        entry_keys: (n,) the entry times mapped to keys by the same map (a later entry: a smaller key), or
            None (every row at risk from the start).
        strata: (n,) int64 stratum codes >= 0, or None.

    Returns:
        ``(time_key, entry_key, order)``: ``time_key`` (n,) sorted ascending, ``entry_key`` (n,) in the same
        order (None without entry and strata) and ``order`` (n,), the permutation from the given row order
        to block order (None when it is the identity, i.e. without strata).
    """
    n = keys.shape[0]
    time_key = torch.searchsorted(keys, keys)  # rows with a later time: equal for ties
    entry_key = None if entry_keys is None else torch.searchsorted(keys, entry_keys.contiguous())
    if strata is None:
        return time_key, entry_key, None
    base = strata.to(torch.int64) * (n + 1)
    entry_key = base + n if entry_key is None else entry_key.add_(base)
    time_key, order = torch.sort(time_key.add_(base), stable=True)
    return time_key, entry_key.index_select(0, order), order


def stratum_max(values: Tensor, strata: Tensor | None, n_strata: int) -> Tensor:
    """The largest finite value of each stratum, (S,) float64 (0 where none): the shift of its sums."""
    finite = torch.where(torch.isfinite(values), values, -math.inf)
    if strata is None:
        top = finite.max().reshape(1) if values.shape[0] else values.new_zeros(1)
    else:
        top = torch.full((n_strata,), -math.inf, dtype=values.dtype, device=values.device)
        top = top.scatter_reduce_(0, strata, finite, "amax")
    return torch.where(torch.isfinite(top), top, 0.0)


def _shifted_exp(log_values: Tensor) -> tuple[Tensor, float]:
    """``exp(log_values - m)`` and ``m``, the largest finite log value (0 if none)."""
    if log_values.shape[0] == 0:
        return torch.exp(log_values), 0.0
    top = torch.where(torch.isfinite(log_values), log_values, -math.inf).max().item()
    top = top if math.isfinite(top) else 0.0
    return torch.exp(log_values - top), top


def risk_log_sums(log_values: Tensor, design: Design, at: Tensor) -> Tensor:
    """``log sum_{j in R_k} exp(log_values_j)`` for the risk sets of events at block positions ``at`` (E,).

    Args:
        log_values: (n,) float64 log terms of the rows in block order (log weight + log hazard, shifted by
            their stratum's maximum so that strata of very different hazards do not cancel).
        design: the rows' :class:`Design` (``entry_key`` not None).
        at: (E,) int64, for each event the last block position whose time key equals its own.

    Returns:
        (E,) float64 log risk sums (-inf for an empty or zero-weight risk set).
    """
    assert design.entry_key is not None
    values, top = _shifted_exp(log_values)
    query = design.time_key.index_select(0, at)
    upto = torch.cumsum(values, 0).index_select(0, at)
    entry_sorted, entry_order = torch.sort(design.entry_key)
    entered_later = torch.cumsum(values.index_select(0, entry_order), 0)
    count = torch.searchsorted(entry_sorted, query, right=True)
    later = torch.where(count > 0, entered_later.index_select(0, (count - 1).clamp_(min=0)), 0.0)
    risk = upto - later
    log_risk = torch.log(risk.clamp_(min=0.0)).add_(top)
    bad = (risk <= CANCELLATION * upto).nonzero().view(-1)
    if bad.shape[0]:
        key, entry = design.time_key, design.entry_key
        for chunk in bad.split(max(1, _CHUNK_ENTRIES // max(key.shape[0], 1))):
            q = query.index_select(0, chunk)
            member = (key[:, None] <= q[None, :]) & (q[None, :] < entry[:, None])
            direct = torch.where(member, log_values[:, None], -math.inf).logsumexp(0)
            log_risk.index_copy_(0, chunk, direct)
    return log_risk


def event_log_sums(log_terms: Tensor, event_key: Tensor, low: Tensor, high: Tensor) -> Tensor:
    """``log sum_{k: low_j <= event_key_k < high_j} exp(log_terms_k)`` for each query j.

    Args:
        log_terms: (E,) float64 log terms of the events (-inf allowed).
        event_key: (E,) int64 ascending time keys of the events.
        low, high: (B,) int64 query bounds: a row's time key and entry key.

    Returns:
        (B,) float64 (-inf for an empty range).
    """
    terms, top = _shifted_exp(log_terms)
    suffix = torch.cat((torch.cumsum(terms.flip(0), 0).flip(0), terms.new_zeros(1)))
    first = torch.searchsorted(event_key, low)
    stop = torch.searchsorted(event_key, high)
    outer = suffix.index_select(0, first)
    sums = outer - suffix.index_select(0, stop)
    log_sums = torch.log(sums.clamp_(min=0.0)).add_(top)
    bad = ((sums <= CANCELLATION * outer) & (first < stop)).nonzero().view(-1)
    if bad.shape[0]:
        index = torch.arange(event_key.shape[0], device=event_key.device)
        for chunk in bad.split(max(1, _CHUNK_ENTRIES // max(index.shape[0], 1))):
            lo, hi = first.index_select(0, chunk), stop.index_select(0, chunk)
            member = (index[:, None] >= lo[None, :]) & (index[:, None] < hi[None, :])
            direct = torch.where(member, log_terms[:, None], -math.inf).logsumexp(0)
            log_sums.index_copy_(0, chunk, direct)
    return log_sums
