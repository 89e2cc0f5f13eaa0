"""A fixed-capacity ring buffer of past target estimates with their event flags and times.

The bank is preallocated: estimates (C, d), events (C,) bool, times (C,) float64. A push writes a batch at
the write position with one ``index_copy_`` per tensor, wrapping past the end; a batch larger than C keeps
its newest C rows. The write position and fill count are plain ints kept in ``state_dict`` (as extra state)
so a checkpoint restores the bank exactly. Rows are stored in write order modulo C; the loss functions
are permutation invariant, so :meth:`contents` returns the filled rows without reordering. The bank also
keeps its rows' order by descending time (:meth:`sorted_by_time`), updated at each push by merging the new
rows into the surviving ones (or by taking the merge a caller already made, see :meth:`push`), so a
rank-based loss over bank + batch never has to sort the whole bank.

Example:
    >>> import torch
    >>> bank = MemoryBank(capacity=4, dim=1)
    >>> bank.push(torch.ones(3, 1), torch.ones(3, dtype=torch.bool), torch.arange(3.0))
    >>> len(bank), bank.is_full
    (3, False)
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from survmom.errors import StateError
from survmom.losses import descending_time_key, merge_sorted


class MemoryBank(nn.Module):
    """Ring buffer of capacity ``capacity`` rows of (estimate (dim,), event, time)."""

    def __init__(self, capacity: int, dim: int = 1, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        if capacity < 0 or dim < 1:
            raise StateError(f"bank needs capacity >= 0 and dim >= 1, got {capacity} and {dim}")
        self.capacity = int(capacity)
        self.dim = int(dim)
        self.register_buffer("estimates", torch.zeros(capacity, dim, dtype=dtype))
        self.register_buffer("events", torch.zeros(capacity, dtype=torch.bool))
        self.register_buffer("times", torch.zeros(capacity, dtype=torch.float64))
        self.register_buffer("_offsets", torch.arange(capacity), persistent=False)
        # Row positions sorted by descending time, and their sort keys (first ``count`` entries valid).
        self.register_buffer("sorted_index", torch.zeros(capacity, dtype=torch.int64))
        self.register_buffer("sorted_keys", torch.zeros(capacity, dtype=torch.int64))
        self.position = 0
        self.count = 0

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

    def incoming_positions(self, rows: int) -> torch.Tensor:
        """Ring positions (rows,) that the next push of ``rows`` <= capacity rows will write, in row order."""
        index = self._offsets[:rows] + self.position
        return torch.where(index >= self.capacity, index - self.capacity, index)

    @torch.no_grad()
    def push(self, estimates: torch.Tensor, events: torch.Tensor, times: torch.Tensor,
             merged: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None) -> None:
        """Store a batch: estimates (B, dim) or (B,), events (B,), times (B,); detached, newest C rows kept.

        ``merged`` (optional, for B <= capacity): the bank's filled rows and these B rows already merged by
        descending time, as (keys (len + B,), ring (len + B,), pushed_at (B,)): ``ring`` is the ring position
        of each row (for a pushed row, its entry of :meth:`incoming_positions`) and ``pushed_at`` the merged
        positions of the pushed rows. A caller that merged them anyway (the pooled Cox loss) saves the bank
        its own merge.
        """
        if self.capacity == 0:
            return
        estimates = estimates.detach().reshape(estimates.shape[0], -1)
        if estimates.shape[1] != self.dim:
            raise StateError(f"bank holds estimates of width {self.dim}, got width {estimates.shape[1]}")
        n = min(estimates.shape[0], self.capacity)
        index = self._offsets[:n] + self.position
        index = torch.where(index >= self.capacity, index - self.capacity, index)
        self.estimates.index_copy_(0, index, estimates[-n:].to(self.estimates))
        self.events.index_copy_(0, index, events[-n:].to(device=self.events.device, dtype=torch.bool))
        new_times = times[-n:].to(self.times)
        self.times.index_copy_(0, index, new_times)
        if merged is not None and n == estimates.shape[0]:
            self._drop_overwritten(*merged, n)
        else:
            self._merge_into_sorted(index, new_times)
        self.position = (self.position + n) % self.capacity
        self.count = min(self.count + n, self.capacity)

    def _drop_overwritten(self, keys: torch.Tensor, ring: torch.Tensor, pushed_at: torch.Tensor, n: int) -> None:
        """Take a merged run of bank + pushed rows as the new sorted run, minus the bank rows overwritten."""
        if keys.shape[0] != self.count + n or pushed_at.shape[0] != n:
            raise StateError(f"merged run has {keys.shape[0]} rows and {pushed_at.shape[0]} pushed, expected "
                             f"{self.count} bank + {n} pushed")
        # Rows at ring positions [position, position + n) modulo C are overwritten by this push: the pushed rows
        # themselves sit there too, so they are put back by position. (Comparisons: integer remainder is slow.)
        start, stop = self.position, self.position + n
        if stop <= self.capacity:
            kept = (ring < start) | (ring >= stop)
        else:
            kept = (ring < start) & (ring >= stop - self.capacity)
        keep = kept.index_fill_(0, pushed_at, True).nonzero().view(-1)
        size = keep.shape[0]
        torch.index_select(keys, 0, keep, out=self.sorted_keys[:size])
        torch.index_select(ring, 0, keep, out=self.sorted_index[:size])

    def _merge_into_sorted(self, index: torch.Tensor, new_times: torch.Tensor) -> None:
        """Drop the overwritten positions from the time-sorted run and merge the new rows in."""
        valid_index, valid_keys = self.sorted_index[: self.count], self.sorted_keys[: self.count]
        # Positions overwritten by this push are the window [position, position + n) modulo C.
        n = index.shape[0]
        keep = (torch.remainder(valid_index - self.position, self.capacity) >= n).nonzero().view(-1)
        new_keys, order = torch.sort(descending_time_key(new_times))
        keys, merged = merge_sorted(valid_keys.index_select(0, keep), valid_index.index_select(0, keep),
                                    new_keys, index.index_select(0, order))
        size = keys.shape[0]
        self.sorted_keys[:size] = keys
        self.sorted_index[:size] = merged

    def sorted_by_time(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(keys (n,), positions (n,)) of the filled rows sorted by descending time, n = len(self).

        Keys are :func:`survmom.losses.descending_time_key` of the stored float64 times.
        """
        return self.sorted_keys[: self.count], self.sorted_index[: self.count]

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

    def get_extra_state(self) -> dict[str, Any]:
        return {"capacity": self.capacity, "dim": self.dim, "position": self.position, "count": self.count}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        if not isinstance(state, dict) or set(state) != {"capacity", "dim", "position", "count"}:
            raise StateError(f"bank state must hold capacity, dim, position and count, got {state!r}")
        if (state["capacity"], state["dim"]) != (self.capacity, self.dim):
            raise StateError(
                f"bank state is for capacity {state['capacity']} × dim {state['dim']}, "
                f"this bank is {self.capacity} × {self.dim}"
            )
        if not (0 <= state["position"] < max(self.capacity, 1) and 0 <= state["count"] <= self.capacity):
            raise StateError(f"bank state has an invalid position/count: {state!r}")
        self.position = int(state["position"])
        self.count = int(state["count"])
