"""A fixed-capacity ring buffer of past target estimates with their event flags and times.

The bank is preallocated: estimates (C, d), events (C,) bool, times (C,) float64. A push writes a batch at
the write position with one or two slice copies per tensor, wrapping past the end; a batch larger than C
keeps its newest C rows. The write position, fill count and number of rows ever pushed are plain ints kept
in ``state_dict`` (as extra state) so a checkpoint restores the bank exactly. Rows are stored in write order
modulo C; the loss functions are permutation invariant, so :meth:`contents` returns the filled rows without
reordering. The bank also keeps its rows sorted by descending time (:meth:`by_time`: key −time, estimate
column 0 as float64, event and push sequence number of each row), updated at each push by merging the new
rows into the surviving ones (or by taking the merge a caller already made, see :meth:`push`), so a
rank-based loss over bank + batch never has to sort the whole bank. A bank that keeps strata keeps them in
block order instead (by stratum, then by descending time), the order of the stratified Cox loss.

A bank built with ``entry``, ``weight`` or ``strata`` also keeps each row's entry time (float64), case weight
(float64) or stratum code (int64) in ring buffers of its own (registered, and so in ``state_dict``, only when
enabled); :meth:`design_contents` and :meth:`design_by_time` return them aligned with :meth:`contents` and
:meth:`by_time`.

Example:
    >>> import torch
    >>> bank = MemoryBank(capacity=4, dim=1)
    >>> bank.push(torch.ones(3, 1), torch.ones(3, dtype=torch.bool), torch.arange(3.0))
    >>> len(bank), bank.is_full
    (3, False)
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import nn

from survmom.core.sorting import block_order, merge_order, merge_runs
from survmom.errors import StateError


class SortedRows(NamedTuple):
    """Bank rows (or bank + batch rows) in order of descending time; every field has shape (n,)."""

    keys: torch.Tensor  # −time, ascending (float64)
    values: torch.Tensor  # estimate column 0 (float64)
    events: torch.Tensor  # event flags (bool)
    seq: torch.Tensor  # push sequence number (int64): the row's ring position is seq % capacity


class MergedRows(NamedTuple):
    """The bank's sorted rows merged with a batch about to be pushed (see :meth:`MemoryBank.push`)."""

    rows: SortedRows  # len(bank) + B rows; the batch rows' ``seq`` are :meth:`MemoryBank.incoming_seq`
    pushed_at: torch.Tensor  # (B,) merged position of each batch row, in batch row order


class BankDesign(NamedTuple):
    """The design fields of bank rows, each (n,) or None where the bank does not keep it."""

    entry: torch.Tensor | None = None  # entry times (float64)
    weight: torch.Tensor | None = None  # case weights (float64)
    strata: torch.Tensor | None = None  # stratum codes (int64)


_DESIGN_BUFFERS = (("entry", "entries", torch.float64), ("weight", "weights", torch.float64),
                   ("strata", "strata", torch.int64))


class MemoryBank(nn.Module):
    """Ring buffer of capacity ``capacity`` rows of (estimate (dim,), event, time), and optionally each row's
    entry time, case weight and stratum code (``entry``, ``weight``, ``strata``)."""

    def __init__(self, capacity: int, dim: int = 1, dtype: torch.dtype | None = None, *, entry: bool = False,
                 weight: bool = False, strata: bool = False) -> None:
        super().__init__()
        if capacity < 0 or dim < 1:
            raise StateError(f"bank needs capacity >= 0 and dim >= 1, got {capacity} and {dim}")
        self.capacity = int(capacity)
        self.dim = int(dim)
        self.register_buffer("estimates", torch.zeros(capacity, dim, dtype=dtype))
        self.register_buffer("events", torch.zeros(capacity, dtype=torch.bool))
        self.register_buffer("times", torch.zeros(capacity, dtype=torch.float64))
        self.design_fields = tuple(name for name, on in (("entry", entry), ("weight", weight), ("strata", strata))
                                   if on)
        for name, buffer, kind in _DESIGN_BUFFERS:
            if name in self.design_fields:
                self.register_buffer(buffer, torch.zeros(capacity, dtype=kind))
        # The rows sorted by descending time (first ``count`` entries valid), see by_time.
        self.register_buffer("order_keys", torch.zeros(capacity, dtype=torch.float64))
        self.register_buffer("order_values", torch.zeros(capacity, dtype=torch.float64))
        self.register_buffer("order_events", torch.zeros(capacity, dtype=torch.bool))
        self.register_buffer("order_seq", torch.zeros(capacity, dtype=torch.int64))
        self.position = 0  # ring position of the next row, = pushed % capacity
        self.count = 0
        self.pushed = 0  # rows pushed so far (those beyond capacity counted as kept ones only)

    def __len__(self) -> int:
        return self.count

    @property
    def is_full(self) -> bool:
        """True once ``capacity`` rows have been pushed."""
        return self.count == self.capacity

    @property
    def fill(self) -> float:
        """Fraction of the capacity in use, in [0, 1] (1 for a zero-capacity bank)."""
        return self.count / self.capacity if self.capacity else 1.0

    def incoming_seq(self, rows: int) -> torch.Tensor:
        """Sequence numbers (rows,) that the next push of ``rows`` <= capacity rows will give, in row order."""
        return torch.arange(self.pushed, self.pushed + rows, device=self.order_seq.device)

    def push(self, estimates: torch.Tensor, events: torch.Tensor, times: torch.Tensor,
             merged: MergedRows | None = None, design: BankDesign | None = None) -> None:
        """Store a batch: estimates (B, dim) or (B,), events (B,), times (B,); detached, newest C rows kept.

        ``merged`` (optional, for 0 < B <= capacity): :meth:`by_time` and these B rows already merged by
        descending time. Its keys, events and sequence numbers are taken; its values at ``pushed_at`` are
        replaced by column 0 of ``estimates`` (in place). A caller that merged them anyway (the pooled Cox
        loss) saves the bank its own merge. ``design``: the rows' entry, weight and strata, (B,) each,
        exactly the fields this bank keeps.
        """
        self.check_design(design)
        if self.capacity == 0:
            return
        if torch.is_grad_enabled():  # Momentum pushes under no_grad already
            with torch.no_grad():
                return self.push(estimates, events, times, merged, design)
        if estimates.requires_grad or estimates.dim() != 2:
            estimates = estimates.detach().reshape(estimates.shape[0], -1)
        if estimates.shape[1] != self.dim:
            raise StateError(f"bank holds estimates of width {self.dim}, got width {estimates.shape[1]}")
        n = min(estimates.shape[0], self.capacity)
        use_merged = merged is not None and n == estimates.shape[0]
        if use_merged and (merged.rows.keys.shape[0] != self.count + n or merged.pushed_at.shape[0] != n):
            raise StateError(f"merged run has {merged.rows.keys.shape[0]} rows and {merged.pushed_at.shape[0]} "
                             f"pushed, expected {self.count} bank + {n} pushed")  # checked before any write
        new_estimates, new_events, new_times = (
            (estimates, events, times) if n == estimates.shape[0] else (estimates[-n:], events[-n:], times[-n:]))
        stores = [(self.estimates, new_estimates), (self.events, new_events), (self.times, new_times)]
        if design is not None:
            stores += [(getattr(self, buffer), getattr(design, name)[-n:]) for name, buffer, _ in _DESIGN_BUFFERS
                       if name in self.design_fields]
        # Write at [position, position + n), wrapping past the end: slices, copy_ converts dtype and device.
        first = min(n, self.capacity - self.position)
        for store, new in stores:
            if first == n:
                store[self.position : self.position + n] = new
            else:
                store[self.position :] = new[:first]
                store[: n - first] = new[first:]
        new_values = new_estimates[:, 0]
        if new_values.dtype != self.estimates.dtype:  # rounded as stored
            new_values = new_values.to(self.estimates.dtype)
        new_values = new_values.to(self.order_values)
        if use_merged:
            self._drop_overwritten(merged, new_values)
        else:
            self._merge_into_sorted(SortedRows(torch.neg(new_times.to(self.order_keys)), new_values,
                                               new_events.to(device=self.events.device, dtype=torch.bool),
                                               self.incoming_seq(n)),
                                    None if design is None or design.strata is None else design.strata[-n:])
        self.position = (self.position + n) % self.capacity
        self.count = min(self.count + n, self.capacity)
        self.pushed += n

    def _oldest_kept(self, n: int) -> int:
        """The smallest sequence number still in the bank after pushing n more rows."""
        return self.pushed + n - self.capacity

    def _drop_overwritten(self, merged: MergedRows, new_values: torch.Tensor) -> None:
        """Take a merged run of bank + pushed rows as the new sorted run, minus the bank rows overwritten."""
        rows, pushed_at = merged
        rows.values.index_copy_(0, pushed_at, new_values)
        keep = None
        if self.count + new_values.shape[0] > self.capacity:  # exactly capacity rows are kept
            keep = (rows.seq >= self._oldest_kept(new_values.shape[0])).nonzero().view(-1)
        for source, target in zip(rows, self._order_fields(), strict=True):
            if keep is None:
                target[: source.shape[0]] = source
            else:
                torch.index_select(source, 0, keep, out=target)

    def _merge_into_sorted(self, new: SortedRows, new_strata: torch.Tensor | None = None) -> None:
        """Drop the overwritten rows from the sorted run and merge the new rows (n,) in (by stratum first, with
        their stratum codes ``new_strata`` (n,))."""
        old = self.by_time()
        keep = (old.seq >= self._oldest_kept(new.keys.shape[0])).nonzero().view(-1)
        old_keys, old_strata = old.keys.index_select(0, keep), None
        if new_strata is not None:
            old_strata = self.strata.index_select(0, old.seq.index_select(0, keep).remainder(self.capacity))
            new_strata = new_strata.to(old_strata)
        new_keys, order, new_strata = block_order(new.keys, new_strata)
        gather, pushed_at = merge_order(old_keys, new_keys, old_strata, new_strata)
        size = gather.shape[0]
        for old_field, new_field, target in zip(old, new, self._order_fields(), strict=True):
            in_order = new_field if order is None else new_field.index_select(0, order)
            target[:size] = merge_runs(old_field.index_select(0, keep), in_order, gather, pushed_at)

    def _order_fields(self) -> SortedRows:
        return SortedRows(self.order_keys, self.order_values, self.order_events, self.order_seq)

    def by_time(self) -> SortedRows:
        """The filled rows sorted by descending time, as views (n,) with n = len(self); ties: older rows first.
        A bank that keeps strata: by stratum, then by descending time (block order).

        Keys are −time (float64, so ascending keys are descending times); values are estimate column 0 as
        float64; ``seq % capacity`` is each row's position in :attr:`estimates`, :attr:`events` and
        :attr:`times`.
        """
        count = self.count
        if count == self.capacity:  # the whole buffers (no slicing)
            return self._order_fields()
        return SortedRows(self.order_keys[:count], self.order_values[:count], self.order_events[:count],
                          self.order_seq[:count])

    def check_design(self, design: BankDesign | None) -> None:
        """Raise StateError unless ``design`` gives exactly the fields this bank keeps (None: none)."""
        given = () if design is None else tuple(name for name, value in design._asdict().items() if value is not None)
        if given != self.design_fields:
            raise StateError(f"this bank keeps the design fields ({', '.join(self.design_fields) or 'none'}), "
                             f"got ({', '.join(given) or 'none'})")

    def design_by_time(self, rows: SortedRows | None = None) -> BankDesign:
        """The design fields of :meth:`by_time`'s rows (or of ``rows``, bank rows from it), (n,) each; None
        where this bank does not keep the field."""
        if not self.design_fields:
            return BankDesign()
        ring = (rows if rows is not None else self.by_time()).seq.remainder(max(self.capacity, 1))
        return BankDesign(*(getattr(self, buffer).index_select(0, ring) if name in self.design_fields else None
                            for name, buffer, _ in _DESIGN_BUFFERS))

    def design_contents(self) -> BankDesign:
        """The design fields of :meth:`contents`' rows, as views (n,); None where this bank does not keep it."""
        return BankDesign(*(getattr(self, buffer)[: self.count] if name in self.design_fields else None
                            for name, buffer, _ in _DESIGN_BUFFERS))

    def contents(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The filled rows as views: estimates (n, dim), events (n,), times (n,) with n = len(self)."""
        if self.count == self.capacity:
            return self.estimates, self.events, self.times
        # Until the bank is full, rows 0..count-1 are the filled ones (writes start at 0 and do not wrap).
        return self.estimates[: self.count], self.events[: self.count], self.times[: self.count]

    def clear(self) -> None:
        """Forget every stored row (storage is kept)."""
        self.position = 0
        self.count = 0
        self.pushed = 0

    def get_extra_state(self) -> dict[str, Any]:
        return {"capacity": self.capacity, "dim": self.dim, "position": self.position, "count": self.count,
                "pushed": self.pushed}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        keys = {"capacity", "dim", "position", "count", "pushed"}
        if not isinstance(state, dict) or set(state) != keys:
            raise StateError(f"bank state must hold {', '.join(sorted(keys))}, got {state!r}")
        if (state["capacity"], state["dim"]) != (self.capacity, self.dim):
            raise StateError(
                f"bank state is for capacity {state['capacity']} × dim {state['dim']}, "
                f"this bank is {self.capacity} × {self.dim}"
            )
        position, count, pushed = state["position"], state["count"], state["pushed"]
        if not (0 <= position < max(self.capacity, 1) and 0 <= count <= self.capacity and pushed >= count
                and (self.capacity == 0 or pushed % self.capacity == position)):
            raise StateError(f"bank state has an invalid position/count/pushed: {state!r}")
        self.position = int(position)
        self.count = int(count)
        self.pushed = int(pushed)
