"""survmom.core.sorting: float-bits sort keys and merges of sorted runs, against Python's sort."""

from __future__ import annotations

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from survmom.core.sorting import (
    ascending_key,
    block_order,
    descending_time_key,
    grouped_searchsorted,
    merge_order,
    merge_runs,
)

FLOATS = st.floats(allow_nan=False, allow_infinity=True)


def _ranks(values: list[float]) -> list[int]:
    """Dense rank of each value in ascending order (equal values, equal ranks; -0.0 equals 0.0)."""
    distinct = sorted(set(values))
    return [distinct.index(v) for v in values]


@settings(max_examples=200, deadline=None)
@given(values=st.lists(FLOATS, max_size=40), dtype=st.sampled_from([torch.float64, torch.float32]))
def test_ascending_key_orders_and_ties_exactly_as_the_floats(values, dtype) -> None:
    as_dtype = torch.tensor(values, dtype=dtype).tolist()  # rounded to the dtype first
    key = ascending_key(torch.tensor(values, dtype=dtype))
    assert key.dtype == torch.int64
    assert _ranks(key.tolist()) == _ranks(as_dtype)


@settings(max_examples=100, deadline=None)
@given(values=st.lists(st.integers(-(2**62), 2**62), max_size=40))
def test_descending_time_key_reverses_the_order_of_times_of_any_dtype(values) -> None:
    key = descending_time_key(torch.tensor(values, dtype=torch.int64))
    assert _ranks([-v for v in key.tolist()]) == _ranks(values)
    floats = [float(v) / 7 for v in values]
    key = descending_time_key(torch.tensor(floats, dtype=torch.float64))
    assert _ranks([-v for v in key.tolist()]) == _ranks(floats)


def test_minus_zero_and_zero_get_one_key() -> None:
    key = ascending_key(torch.tensor([-0.0, 0.0, -math.inf, math.inf]))
    assert key[0] == key[1] and key[2] < key[0] < key[3]


@settings(max_examples=80, deadline=None)
@given(n=st.integers(0, 60), m=st.integers(0, 60), seed=st.integers(0, 10_000))
def test_merge_order_is_a_stable_merge_keeping_the_first_run_first_on_ties(n, m, seed) -> None:
    gen = torch.Generator().manual_seed(seed)
    key_a = torch.sort(torch.randint(0, 10, (n,), generator=gen)).values
    key_b = torch.sort(torch.randint(0, 10, (m,), generator=gen)).values
    gather, pos_b = merge_order(key_a, key_b)
    # A stable sort of a then b puts equal keys of a before those of b: the merge must agree exactly.
    expected = torch.sort(torch.cat([key_a, key_b]), stable=True).indices
    merged_source = merge_runs(torch.arange(n), torch.arange(n, n + m), gather, pos_b)
    assert torch.equal(merged_source, expected)
    assert torch.equal(merge_runs(key_a, key_b, gather, pos_b), torch.cat([key_a, key_b])[expected])
    assert torch.equal(merged_source[pos_b], torch.arange(n, n + m))


@settings(max_examples=80, deadline=None)
@given(n=st.integers(0, 60), m=st.integers(0, 30), groups=st.integers(1, 5), seed=st.integers(0, 10_000))
def test_a_grouped_merge_is_a_stable_merge_in_block_order(n, m, groups, seed) -> None:
    """Runs sorted by (group, key): the merge equals a stable sort of a then b by (group, key), a first on ties."""
    gen = torch.Generator().manual_seed(seed)
    group_a, key_a = torch.randint(0, groups, (n,), generator=gen), torch.randint(0, 6, (n,), generator=gen)
    key_b, order, group_b = block_order(torch.randint(0, 6, (m,), generator=gen).double(),
                                        torch.randint(0, groups, (m,), generator=gen))
    by_block = sorted(range(n), key=lambda i: (group_a[i].item(), key_a[i].item()))
    group_a, key_a = group_a[by_block], key_a[by_block].double()
    assert [(g, k) for g, k in zip(group_b.tolist(), key_b.tolist(), strict=True)] == sorted(
        zip(group_b.tolist(), key_b.tolist(), strict=True))
    assert order is None or sorted(order.tolist()) == list(range(m))
    gather, pos_b = merge_order(key_a, key_b, group_a, group_b)
    pairs = list(zip(torch.cat([group_a, group_b]).tolist(), torch.cat([key_a, key_b]).tolist(), strict=True))
    expected = sorted(range(n + m), key=lambda i: pairs[i])  # Python's sort is stable: a before b on ties
    assert merge_runs(torch.arange(n), torch.arange(n, n + m), gather, pos_b).tolist() == expected
    queries = torch.randint(-1, 7, (m,), generator=gen).double()
    found = grouped_searchsorted(key_a, group_a, queries, group_b)
    assert found.tolist() == [sum(1 for g, k in pairs[:n] if g < gq or (g == gq and k < q))
                              for gq, q in zip(group_b.tolist(), queries.tolist(), strict=True)]


def test_block_order_of_unsorted_keys_without_groups_is_their_stable_sort() -> None:
    keys = torch.tensor([2.0, 1.0, 2.0, 0.0])
    sorted_keys, order, groups = block_order(keys)
    assert sorted_keys.tolist() == [0.0, 1.0, 2.0, 2.0] and order.tolist() == [3, 1, 0, 2] and groups is None
    assert block_order(sorted_keys)[1] is None  # already ascending: no permutation
