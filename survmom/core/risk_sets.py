r"""Risk sets of study designs: delayed entry (left truncation, counting-process rows), case weights, strata.

Row ``j`` (entry :math:`e_j`, time :math:`t_j`, stratum :math:`s_j`, weight :math:`w_j`) is at risk at time
:math:`t` iff :math:`e_j < t \le t_j` and it belongs to the stratum of the event (Therneau & Grambsch 2000,
*Modeling Survival Data*, ch. 3: counting process form and left truncation; Kalbfleisch & Prentice 2002,
*The Statistical Analysis of Failure Time Data*, sec. 6.3). Rows are put in block order (stratum, then
descending time) and the events numbered in that order; ties are equal times of one stratum. Row j
is then at risk for the events ``first_j <= k < stop_j``: ``first_j`` the first event at or after it in block
order, ``stop_j`` the first one of its stratum not later than its entry (or of the next stratum). Hence

* the risk sum of event k is :math:`\sum_{j \le \mathrm{end}_k} v_j - \sum_{\mathrm{stop}_j \le k} v_j`:
  a cumulative sum over rows minus a cumulative sum over the events of the values dropped at each one
  (:func:`risk_log_sums`), and
* the sum over the events whose risk sets hold row j is a difference of two suffix sums over the events
  (:func:`event_log_sums`), which gives the closed-form gradient.

Both differences are taken of exponentials shifted by the maximum of their stratum, in float64. A difference
that cancels (below ``CANCELLATION`` of its larger term) is computed again: when many do and there are strata
(the running sums of many lower strata dwarf a small risk set), with sums that restart at each stratum
(:func:`segmented_cumsum`); any still cancelling (nearly everyone at risk at t entered later, with far
higher hazards) directly, as a masked ``logsumexp`` over the rows, O(n) each. Every sum is thus accurate to
a few ulps times ``1 / CANCELLATION`` at worst.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from survmom.core.sorting import descending_time_key, grouped_searchsorted
from survmom.core.tensor_checks import check_design_field, check_float
from survmom.errors import SurvmomError

__all__ = ["CANCELLATION", "Blocks", "Design", "DesignRows", "design_rows", "event_log_sums", "make_design",
           "risk_log_sums", "segmented_cumsum", "stop_events", "stratum_max"]

# A difference of cumulative sums below this fraction of its larger term is recomputed directly.
CANCELLATION = 2.0**-16
# More cancelling sums than this, with strata: the sums restart at each stratum (segmented scans).
_MANY_CANCELLING = 16
# Direct recomputation works on chunks of at most this many (rows x queries) entries.
_CHUNK_ENTRIES = 1 << 22


class Design(NamedTuple):
    """The design fields of n rows in block order (stratum, then descending time) and their risk-set ends."""

    stop: Tensor | None  # (n,) int64, see stop_events; None: risk sets are prefixes (no entry, one stratum)
    strata: Tensor | None  # (n,) int64 stratum codes, or None for one stratum
    n_strata: int
    weight: Tensor | None  # (n,) float64 case weights, or None (all 1)
    log_weight: Tensor | None  # (n,) float64 log weights (-inf for weight 0)


def stop_events(keys: Tensor, events: Tensor, entry_keys: Tensor | None, strata: Tensor | None, n_strata: int,
                event_pos: Tensor | None = None) -> Tensor | None:
    """Where the risk sets of n rows in block order (by ``strata``, then by ``keys`` ascending) end.

    Args:
        keys: (n,) keys of the rows' times, ascending within each stratum (descending time), equal exactly for
            tied times.
        events: (n,) bool event flags of the rows.
        entry_keys: (n,) the entry times mapped to keys by the same map (a later entry: a smaller key), or
            None (every row at risk from the start).
        strata: (n,) int64 stratum codes in [0, n_strata), nondecreasing, or None (one stratum).
        event_pos: optional (E,) ``events.nonzero()``, if the caller has it.

    Returns:
        ``stop`` (n,) int64: row j is in the risk sets of the events ``first_j <= k < stop_j`` (events numbered
        in block order, ``first_j`` the first at or after row j), i.e. ``stop_j`` counts the events of lower
        strata and those of its own stratum later than its entry; None without entry and strata (every
        risk set is a prefix).
    """
    if entry_keys is None and strata is None:
        return None
    if event_pos is None:
        event_pos = events.nonzero().view(-1)
    event_keys = keys.index_select(0, event_pos) if entry_keys is not None else None
    if strata is None:
        return torch.searchsorted(event_keys, entry_keys.contiguous())
    event_strata = strata.index_select(0, event_pos)
    if entry_keys is None:  # every event of its own and of the lower strata
        return torch.cumsum(torch.bincount(event_strata, minlength=n_strata), 0).index_select(0, strata)
    return grouped_searchsorted(event_keys, event_strata, entry_keys.contiguous(), strata)


def stratum_max(values: Tensor, strata: Tensor | None, n_strata: int) -> Tensor:
    """The largest finite value of each stratum, (S,) float64 (0 where none): the shift of its sums."""
    if strata is None:
        top = values.max().reshape(1) if values.shape[0] else values.new_zeros(1)
    else:
        top = torch.full((n_strata,), -math.inf, dtype=values.dtype, device=values.device)
        top = top.scatter_reduce_(0, strata, values, "amax")
    return top.nan_to_num_(0.0, 0.0, 0.0)  # NaN or inf: a divergent model (or no row), shifted by 0


def _shifted_exp(log_values: Tensor) -> tuple[Tensor, float]:
    """``exp(log_values - m)`` and ``m``, the largest finite log value (0 if none)."""
    if log_values.shape[0] == 0:
        return torch.exp(log_values), 0.0
    top = log_values.max().item()
    if not math.isfinite(top):
        top = torch.where(torch.isfinite(log_values), log_values, -math.inf).max().item()
        top = top if math.isfinite(top) else 0.0
    return torch.exp(log_values - top), top


class Blocks(NamedTuple):
    """The strata of rows in block order, for sums that must restart at each stratum."""

    strata: Tensor  # (n,) int64 stratum codes, nondecreasing
    event_pos: Tensor  # (E,) block positions of the events

    def event_strata(self) -> Tensor:
        return self.strata.index_select(0, self.event_pos)

    def next_first_event(self, strata: Tensor) -> Tensor:
        """For stratum codes (m,), the index of the first event of the next stratum (E past the last)."""
        counts = torch.bincount(self.event_strata(), minlength=int(self.strata[-1]) + 1)
        return torch.cumsum(counts, 0).index_select(0, strata)


def segmented_cumsum(values: Tensor, segment: Tensor, reverse: bool = False) -> Tensor:
    """Cumulative sums of ``values`` (m,) that restart wherever ``segment`` (m,) changes (``reverse``: sums
    to each segment's end), by Hillis & Steele's doubling scan (1986): log2(longest segment) passes, every
    partial sum made of terms of one segment only, so no segment's sum cancels against another's."""
    if reverse:
        return segmented_cumsum(values.flip(0), segment.flip(0)).flip(0)
    m = values.shape[0]
    index = torch.arange(m, device=values.device)
    new = torch.ones(m, dtype=torch.bool, device=values.device)
    new[1:] = segment[1:] != segment[:-1]
    offset = index - torch.cummax(index.masked_fill(~new, 0), 0).values
    out = values.clone()
    step, longest = 1, int(offset.max()) + 1 if m else 0
    while step < longest:
        shifted = torch.zeros_like(out)
        shifted[step:] = out[:-step]
        out = out + torch.where(offset >= step, shifted, 0.0)
        step *= 2
    return out


def risk_log_sums(log_values: Tensor, at: Tensor, stop: Tensor, blocks: Blocks | None = None) -> Tensor:
    """``log sum_{j in R_k} exp(log_values_j)`` for the risk sets of the E events.

    ``R_k`` = the rows at or before ``at[k]`` in block order (of lower strata, or not later) minus those with
    ``stop_j <= k`` (entered at or after the event's time, or of a lower stratum). When more than
    ``_MANY_CANCELLING`` of these differences cancel and there are strata (many strata of very different
    sizes or hazards), both sums restart at each stratum (:func:`segmented_cumsum`) instead.

    Args:
        log_values: (n,) float64 log terms of the rows in block order (log weight + log hazard), shifted by
            their stratum's maximum (:func:`stratum_max`, so at most 0): strata of very different hazards do
            not cancel.
        at: (E,) int64, for each event the last block position whose time key equals its own (ascending).
        stop: (n,) int64, :func:`stop_events`'s.
        blocks: the rows' strata, if any.

    Returns:
        (E,) float64 log risk sums (-inf for an empty or zero-weight risk set).
    """
    values = torch.exp(log_values)
    n_events = at.shape[0]
    upto = torch.cumsum(values, 0).index_select(0, at)
    left = torch.bincount(stop, values, n_events + 1)  # the values leaving the risk sets at each event
    risk = upto - torch.cumsum(left[:n_events], 0)
    bad = risk <= CANCELLATION * upto
    n_bad = int(torch.count_nonzero(bad))
    if blocks is not None and n_bad > _MANY_CANCELLING:
        event_strata = blocks.event_strata()
        upto = segmented_cumsum(values, blocks.strata).index_select(0, at)
        own = stop < blocks.next_first_event(blocks.strata)  # entered later, in its own stratum
        left = torch.zeros(n_events + 1, dtype=values.dtype, device=values.device).index_add_(
            0, torch.where(own, stop, n_events), values)
        risk = upto - segmented_cumsum(left[:n_events], event_strata)
        bad = risk <= CANCELLATION * upto
        n_bad = int(torch.count_nonzero(bad))
    log_risk = torch.log(risk)  # a negative risk (rounding) is a bad one, recomputed below
    if n_bad:
        first = torch.searchsorted(at, torch.arange(log_values.shape[0], device=at.device))
        events = torch.arange(n_events, device=at.device)
        for chunk in bad.nonzero().view(-1).split(max(1, _CHUNK_ENTRIES // max(log_values.shape[0], 1))):
            k = events.index_select(0, chunk)
            member = (first[:, None] <= k[None, :]) & (k[None, :] < stop[:, None])
            direct = torch.where(member, log_values[:, None], -math.inf).logsumexp(0)
            log_risk.index_copy_(0, chunk, direct)
    return log_risk


def event_log_sums(log_terms: Tensor, first: Tensor, stop: Tensor, blocks: Blocks | None = None,
                   position: Tensor | None = None) -> Tensor:
    """``log sum_{first_j <= k < stop_j} exp(log_terms_k)`` for each query j.

    Suffix sums over the events, restarted at each stratum when more than ``_MANY_CANCELLING`` differences
    cancel (as in :func:`risk_log_sums`).

    Args:
        log_terms: (E,) float64 log terms of the events (-inf allowed).
        first, stop: (B,) int64 event index ranges: the events whose risk sets hold a row.
        blocks, position: the rows' strata and the queries' block positions (B,), if there are strata.

    Returns:
        (B,) float64 (-inf for an empty range).
    """
    terms, top = _shifted_exp(log_terms)
    suffix = torch.cat((torch.cumsum(terms.flip(0), 0).flip(0), terms.new_zeros(1)))
    outer = suffix.index_select(0, first)
    sums = outer - suffix.index_select(0, stop)
    bad = (sums <= CANCELLATION * outer) & (first < stop)
    n_bad = int(torch.count_nonzero(bad))
    if blocks is not None and position is not None and n_bad > _MANY_CANCELLING:
        suffix = torch.cat((segmented_cumsum(terms, blocks.event_strata(), reverse=True), terms.new_zeros(1)))
        inside = stop < blocks.next_first_event(blocks.strata.index_select(0, position))
        outer = suffix.index_select(0, first)
        sums = torch.where(first < stop, outer - torch.where(inside, suffix.index_select(0, stop), 0.0), 0.0)
        bad = (sums <= CANCELLATION * outer) & (first < stop)
        n_bad = int(torch.count_nonzero(bad))
    log_sums = torch.log(sums.clamp(min=0.0)).add_(top)
    if n_bad:
        index = torch.arange(log_terms.shape[0], device=log_terms.device)
        for chunk in bad.nonzero().view(-1).split(max(1, _CHUNK_ENTRIES // max(index.shape[0], 1))):
            lo, hi = first.index_select(0, chunk), stop.index_select(0, chunk)
            member = (index[:, None] >= lo[None, :]) & (index[:, None] < hi[None, :])
            direct = torch.where(member, log_terms[:, None], -math.inf).logsumexp(0)
            log_sums.index_copy_(0, chunk, direct)
    return log_sums


class DesignRows(NamedTuple):
    """The study design of n rows sorted by descending time (each field (n,) or None: not used)."""

    entry_keys: Tensor | None = None  # entry times mapped to keys by the map of the rows' time keys
    weight: Tensor | None = None  # case weights >= 0
    strata: Tensor | None = None  # int64 stratum codes >= 0

    @property
    def used(self) -> bool:
        return self.entry_keys is not None or self.weight is not None or self.strata is not None

    def sorted(self, order: Tensor) -> DesignRows:
        """The fields of the rows ``order`` (m,) selects."""
        return DesignRows(*(None if f is None else f.index_select(0, order) for f in self))


def make_design(keys: Tensor, events: Tensor, rows: DesignRows, event_pos: Tensor | None = None) -> Design:
    """The :class:`~survmom.core.risk_sets.Design` of rows in block order (by stratum, then ``keys``
    ascending; with event flags ``events``, at positions ``event_pos`` if the caller has them)."""
    strata, weight = rows.strata, rows.weight
    n_strata = 1
    if strata is not None:
        strata = strata.to(torch.int64)
        n_strata = int(strata[-1]) + 1 if strata.shape[0] else 1
    stop = stop_events(keys, events, rows.entry_keys, strata, n_strata, event_pos)
    log_weight = None
    if weight is not None:
        weight = weight.to(torch.float64)
        log_weight = torch.log(weight)
    return Design(stop, strata, n_strata, weight, log_weight)


def design_rows(time: Tensor, entry: Tensor | None, weight: Tensor | None, strata: Tensor | None) -> DesignRows:
    """Checked design fields of n rows in input order, the entry times mapped to descending-time keys."""
    n = time.shape[0]
    for name, values in (("entry", entry), ("weight", weight), ("strata", strata)):
        check_design_field(values, n, name)
    entry_keys = None
    if entry is not None:
        late = ~(entry.to(torch.float64) < time.to(torch.float64))  # NaN too
        late = late.nonzero().view(-1)
        if late.shape[0]:
            first = int(late[0])
            raise SurvmomError(f"entry must be before time, got entry {float(entry[first]):g} >= time "
                               f"{float(time[first]):g} at row {first} ({late.shape[0]} rows)")
        entry_keys = descending_time_key(entry.to(time.dtype))
    if weight is not None:
        check_float(weight, "weight")
        if not bool(((weight >= 0) & torch.isfinite(weight)).all()):
            raise SurvmomError("weight must be finite and >= 0")
    if strata is not None and (strata.is_floating_point() or (strata.shape[0] and int(strata.min()) < 0)):
        raise SurvmomError("strata must be integer stratum codes >= 0")
    return DesignRows(entry_keys, weight, strata)
