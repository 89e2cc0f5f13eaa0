"""survmom.core.sorting: float-bits sort keys and merges of sorted runs, against Python's sort."""

from __future__ import annotations

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from survmom.core.sorting import ascending_key, descending_time_key, merge_order, merge_runs

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
