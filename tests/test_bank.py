"""MemoryBank: ring-buffer semantics, capacity, state round trips and devices."""

import io

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from survmom.bank import MemoryBank
from survmom.errors import StateError


def batch(start: int, size: int, dim: int = 1):
    ids = torch.arange(start, start + size, dtype=torch.float32)
    return ids.unsqueeze(1).repeat(1, dim), (ids.long() % 2).bool(), ids.double()


def test_push_fills_in_order_and_reports_fill():
    bank = MemoryBank(capacity=10, dim=2)
    bank.push(*batch(0, 4, dim=2))
    est, ev, t = bank.contents()
    assert len(bank) == 4 and bank.fill == pytest.approx(0.4) and not bank.is_full
    assert t.tolist() == [0, 1, 2, 3]
    assert est.shape == (4, 2) and ev.tolist() == [False, True, False, True]


def test_push_across_the_end_wraps_and_overwrites_oldest():
    bank = MemoryBank(capacity=5)
    bank.push(*batch(0, 4))
    bank.push(*batch(4, 3))  # 4, 5 -> slots 4, 0; 6 -> slot 1
    assert bank.is_full
    assert bank.times.tolist() == [5, 6, 2, 3, 4]
    assert bank.position == 2


def test_batch_larger_than_capacity_keeps_its_newest_rows():
    bank = MemoryBank(capacity=3)
    bank.push(*batch(0, 2))
    bank.push(*batch(100, 8))
    assert sorted(bank.contents()[2].tolist()) == [105, 106, 107]
    assert len(bank) == 3


@settings(max_examples=60, deadline=None)
@given(capacity=st.integers(1, 40), sizes=st.lists(st.integers(1, 60), min_size=1, max_size=12))
def test_bank_never_exceeds_capacity_and_keeps_the_newest_rows(capacity, sizes):
    bank = MemoryBank(capacity=capacity)
    pushed = 0
    for size in sizes:
        bank.push(*batch(pushed, size))
        pushed += size
    kept = sorted(bank.contents()[2].tolist())
    assert len(bank) == min(capacity, pushed) == len(kept)
    assert kept == list(range(pushed - len(kept), pushed))
    est, ev, t = bank.contents()
    assert torch.equal(est[:, 0].double(), t) and torch.equal(ev, (t.long() % 2).bool())


def test_zero_capacity_bank_stays_empty():
    bank = MemoryBank(capacity=0)
    bank.push(*batch(0, 5))
    assert len(bank) == 0 and bank.contents()[0].shape == (0, 1)


def test_wrong_width_is_refused():
    with pytest.raises(StateError):
        MemoryBank(capacity=4, dim=2).push(*batch(0, 2, dim=1))


def test_state_dict_round_trip_weights_only():
    bank = MemoryBank(capacity=6, dim=2)
    bank.push(*batch(0, 9, dim=2))
    buffer = io.BytesIO()
    torch.save(bank.state_dict(), buffer)
    buffer.seek(0)
    fresh = MemoryBank(capacity=6, dim=2)
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    assert (fresh.position, fresh.count) == (bank.position, bank.count)
    for a, b in zip(fresh.contents(), bank.contents()):
        assert torch.equal(a, b)
    fresh.push(*batch(50, 1, dim=2))
    bank.push(*batch(50, 1, dim=2))
    assert torch.equal(fresh.times, bank.times)


def test_loading_a_state_of_another_shape_is_a_clear_error():
    state = MemoryBank(capacity=6, dim=2).state_dict()
    with pytest.raises((StateError, RuntimeError)):
        MemoryBank(capacity=8, dim=2).load_state_dict(state)
    with pytest.raises(StateError):
        MemoryBank(capacity=6, dim=2).set_extra_state({"capacity": 6, "dim": 2, "position": 9, "count": 0})


def test_moves_with_to():
    bank = MemoryBank(capacity=4).to(torch.float64)
    assert bank.estimates.dtype == torch.float64 and bank.times.dtype == torch.float64
    bank = bank.to("meta")
    assert bank.estimates.device.type == "meta" and bank._offsets.device.type == "meta"


@settings(max_examples=60, deadline=None)
@given(capacity=st.integers(1, 40), sizes=st.lists(st.integers(1, 60), min_size=1, max_size=12),
       seed=st.integers(0, 1000))
def test_sorted_by_time_always_orders_exactly_the_filled_rows_by_descending_time(capacity, sizes, seed):
    from survmom.losses import descending_time_key

    gen = torch.Generator().manual_seed(seed)
    bank = MemoryBank(capacity=capacity)
    for size in sizes:
        times = torch.randint(0, 8, (size,), generator=gen).double()  # many ties
        bank.push(torch.randn(size, 1, generator=gen), torch.ones(size, dtype=torch.bool), times)
        keys, positions = bank.sorted_by_time()
        assert sorted(positions.tolist()) == list(range(len(bank)))
        sorted_times = bank.times[positions]
        assert bool((sorted_times[1:] <= sorted_times[:-1]).all())
        assert torch.equal(keys, descending_time_key(sorted_times))


@settings(max_examples=60, deadline=None)
@given(capacity=st.integers(1, 40), sizes=st.lists(st.integers(1, 60), min_size=1, max_size=12),
       seed=st.integers(0, 1000))
def test_push_with_a_merged_run_keeps_the_same_sorted_run_as_its_own_merge(capacity, sizes, seed):
    """The pooled Cox loss hands push its bank + batch merge; the result must equal push's own merge."""
    from survmom.losses import descending_time_key, merge_positions

    gen = torch.Generator().manual_seed(seed)
    hinted, plain = MemoryBank(capacity=capacity), MemoryBank(capacity=capacity)
    for size in sizes:
        times = torch.randint(0, 8, (size,), generator=gen).double()  # many ties
        estimates, events = torch.randn(size, 1, generator=gen), torch.rand(size, generator=gen) < 0.5
        merged = None
        if size <= capacity:
            bank_keys, bank_index = hinted.sorted_by_time()
            batch_keys, batch_order = torch.sort(descending_time_key(times))
            bank_pos, batch_pos = merge_positions(bank_keys, batch_keys)
            keys = torch.empty(len(hinted) + size, dtype=torch.int64).index_copy_(0, bank_pos, bank_keys)
            keys.index_copy_(0, batch_pos, batch_keys)
            source = torch.empty_like(keys).index_copy_(0, bank_pos, bank_index)
            source.index_copy_(0, batch_pos, hinted.incoming_positions(size).index_select(0, batch_order))
            merged = (keys, source, batch_pos)
        hinted.push(estimates, events, times, merged=merged)
        plain.push(estimates, events, times)
        assert torch.equal(hinted.sorted_by_time()[0], plain.sorted_by_time()[0])
        assert torch.equal(hinted.sorted_by_time()[1], plain.sorted_by_time()[1])
        assert hinted.position == plain.position and len(hinted) == len(plain)


def test_push_refuses_a_merged_run_of_the_wrong_length():
    bank = MemoryBank(capacity=8)
    bank.push(torch.zeros(3, 1), torch.ones(3, dtype=torch.bool), torch.arange(3.0))
    with pytest.raises(StateError, match="merged run has 4 rows"):
        bank.push(torch.zeros(2, 1), torch.ones(2, dtype=torch.bool), torch.arange(2.0),
                  merged=(torch.zeros(4, dtype=torch.int64), torch.zeros(4, dtype=torch.int64),
                          torch.arange(2)))
