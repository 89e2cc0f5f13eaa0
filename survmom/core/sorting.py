"""Sort keys and merges of sorted runs, shared by the Cox loss, the memory bank and the metrics.

Example:
    >>> import torch
    >>> time = torch.tensor([2.0, 5.0, 2.0, -0.0, 0.0])
    >>> torch.sort(descending_time_key(time), stable=True).indices.tolist()
    [1, 0, 2, 3, 4]
    >>> gather, pos_b = merge_order(torch.tensor([1, 3, 5]), torch.tensor([3, 4]))
    >>> merge_runs(torch.tensor([10, 30, 50]), torch.tensor([31, 40]), gather, pos_b).tolist()
    [10, 30, 31, 40, 50]
    >>> grouped_searchsorted(torch.tensor([4, 6, 1, 5]), torch.tensor([0, 0, 1, 1]), torch.tensor([5, 5]),
    ...                      torch.tensor([0, 1])).tolist()
    [1, 3]
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["ascending_key", "block_order", "descending_time_key", "grouped_searchsorted", "is_ascending", "merge_order",
           "merge_runs"]


def ascending_key(values: Tensor) -> Tensor:
    """int64 key (n,) whose ascending order is the ascending order of ``values`` (n,); equal keys iff equal
    values, with -0.0 equal to 0.0. Values must not be NaN.

    Integer keys let torch sort with its radix sort on CPU. A float's bits, read as a signed integer, are in
    the float's order for positive numbers and in reverse for negative ones; flipping the magnitude bits of
    the negative ones, ``bits ^ ((bits >> (w - 1)) & max)``, makes the map monotone. float64 keeps its 64
    bits, other float dtypes go through float32; integer values are their own key.
    """
    if not values.is_floating_point():
        return values.to(torch.int64)
    if values.dtype == torch.float64:
        int_type, magnitude, sign_shift = torch.int64, 0x7FFF_FFFF_FFFF_FFFF, 63
    else:
        values, int_type, magnitude, sign_shift = values.to(torch.float32), torch.int32, 0x7FFF_FFFF, 31
    # Adding +0.0 turns -0.0 into +0.0, so both get one key.
    bits = (values.detach() + 0.0).contiguous().view(int_type)
    return (bits ^ ((bits >> sign_shift) & magnitude)).to(torch.int64)


def descending_time_key(time: Tensor) -> Tensor:
    """int64 key (n,) whose ascending order is descending ``time`` (n,); equal keys iff equal times.

    The bitwise complement of :func:`ascending_key`: ``~k = -k - 1`` reverses the order without overflow.
    """
    return ~ascending_key(time)


def is_ascending(keys: Tensor) -> bool:
    """Whether ``keys`` (m,) never decrease, so that a run needs no sort (NaN: False)."""
    if keys.shape[0] < 2:
        return True
    return bool(torch.all(keys[1:] >= keys[:-1]))


def block_order(keys: Tensor, groups: Tensor | None = None) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """``keys`` (m,) sorted ascending, or by ``groups`` (m,) and then key (block order); the stable
    permutation (m,) that sorts them (None for the identity: keys already ascending, no groups); and the
    groups in that order (None without groups)."""
    if groups is None:
        if is_ascending(keys):
            return keys, None, None
        keys, order = torch.sort(keys, stable=True)
        return keys, order, None
    keys, order = torch.sort(keys, stable=True)
    groups, by_group = torch.sort(groups.index_select(0, order), stable=True)
    return keys.index_select(0, by_group), order.index_select(0, by_group), groups


def grouped_searchsorted(keys: Tensor, groups: Tensor, queries: Tensor, query_groups: Tensor,
                         right: bool = False) -> Tensor:
    """For each query, the number of sorted elements before it in block order: those of lower groups and those
    of its own group with a key < the query's (``right``: <=).

    ``keys``, ``groups`` (n,): sorted by integer group, then key. ``queries``, ``query_groups`` (m,): sorted by
    group (any key order inside a group). One binary search per group present among the queries, on its slice.
    """
    if queries.shape[0] == 0:
        return torch.zeros(0, dtype=torch.int64, device=keys.device)
    present, counts = torch.unique_consecutive(query_groups, return_counts=True)
    bounds = torch.searchsorted(groups, torch.cat((present, present + 1))).tolist()  # each group's [first, last)
    n_present = present.shape[0]
    found = [torch.searchsorted(keys[first:last], group_queries, right=right).add_(first)
             for first, last, group_queries in zip(bounds[:n_present], bounds[n_present:],
                                                   queries.split(counts.tolist()), strict=True)]
    return found[0] if len(found) == 1 else torch.cat(found)


def merge_order(key_a: Tensor, key_b: Tensor, group_a: Tensor | None = None,
                group_b: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Where the elements of two ascending runs a (n,) and b (m,) go in their merge (ties keep a's first).

    Returns (gather (n + m,), pos_b (m,)) for :func:`merge_runs`, which merges the keys and any columns that
    ride along with them. ``gather`` takes a's element for each merged position (an arbitrary one of a at
    b's positions); ``pos_b[j]`` is where ``b_j`` lands. Only b's m keys are binary-searched into a, so a
    short b (a batch) merges into a long a (a sorted bank) in a few passes over n + m. With ``group_a``,
    ``group_b``: both runs are in block order (by group, then key) and so is the merge.
    """
    n, m = key_a.shape[0], key_b.shape[0]
    device = key_a.device
    if group_a is None or group_b is None:
        found = torch.searchsorted(key_a, key_b, right=True)
    else:
        found = grouped_searchsorted(key_a, group_a, key_b, group_b, right=True)
    pos_b = found.add_(torch.arange(m, device=device))
    from_b = torch.zeros(n + m, dtype=torch.bool, device=device).index_fill_(0, pos_b, True)
    # An element of a at merged position i is a's element number i - (elements of b at or before i).
    gather = torch.arange(n + m, device=device).sub_(torch.cumsum(from_b, 0))
    return gather.clamp_(min=0), pos_b  # at b's positions the count can reach -1: any valid index will do


def merge_runs(a: Tensor, b: Tensor, gather: Tensor, pos_b: Tensor) -> Tensor:
    """Merge a (n,) and b (m,) of one dtype, ordered as the keys given to :func:`merge_order`: (n + m,)."""
    if gather.shape[0] == pos_b.shape[0]:  # nothing of a to merge
        return b.clone()
    return a.index_select(0, gather).index_copy_(0, pos_b, b)
