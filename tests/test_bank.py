"""MemoryBank: ring-buffer semantics, capacity, state round trips and devices."""

import io
import math
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from survmom.core.bank import BankDesign, MemoryBank, MergedRows, SortedRows
from survmom.core.sorting import merge_order, merge_runs
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


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
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
    assert (fresh.position, fresh.count, fresh.pushed) == (bank.position, bank.count, bank.pushed)
    for a, b in zip(fresh.by_time(), bank.by_time(), strict=True):
        assert torch.equal(a, b)
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
        MemoryBank(capacity=6, dim=2).set_extra_state({"capacity": 6, "dim": 2, "position": 9, "count": 0,
                                                       "pushed": 9})
    with pytest.raises(StateError, match="position/count/pushed"):
        MemoryBank(capacity=6, dim=2).set_extra_state({"capacity": 6, "dim": 2, "position": 1, "count": 6,
                                                       "pushed": 8})


def test_moves_with_to():
    bank = MemoryBank(capacity=4).to(torch.float64)
    assert bank.estimates.dtype == torch.float64 and bank.times.dtype == torch.float64
    bank = bank.to("meta")
    assert bank.estimates.device.type == "meta" and bank.order_seq.device.type == "meta"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(capacity=st.integers(1, 40), sizes=st.lists(st.integers(1, 60), min_size=1, max_size=12),
       seed=st.integers(0, 1000))
def test_by_time_always_holds_exactly_the_filled_rows_by_descending_time_older_first_on_ties(capacity, sizes, seed):
    gen = torch.Generator().manual_seed(seed)
    bank = MemoryBank(capacity=capacity)
    for size in sizes:
        times = torch.randint(0, 8, (size,), generator=gen).double()  # many ties
        bank.push(torch.randn(size, 1, generator=gen), torch.rand(size, generator=gen) < 0.5, times)
        rows = bank.by_time()
        positions = torch.remainder(rows.seq, capacity)
        assert sorted(positions.tolist()) == list(range(len(bank)))
        assert sorted(rows.seq.tolist()) == list(range(bank.pushed - len(bank), bank.pushed))
        sorted_times = bank.times[positions]
        assert torch.equal(rows.keys, -sorted_times)
        assert torch.equal(rows.values, bank.estimates[positions, 0].double())
        assert torch.equal(rows.events, bank.events[positions])
        # Descending time; among equal times, older rows (smaller sequence numbers) first.
        order = sorted(range(len(bank)), key=lambda i: (-sorted_times[i].item(), rows.seq[i].item()))
        assert order == list(range(len(bank)))


@settings(max_examples=40, deadline=None)
@given(capacity=st.integers(1, 30), sizes=st.lists(st.integers(1, 40), min_size=1, max_size=10),
       seed=st.integers(0, 1000))
def test_a_bank_with_strata_keeps_its_rows_by_stratum_then_descending_time(capacity, sizes, seed):
    """Block order: by stratum, then descending time, older rows first on ties (as the stratified loss needs)."""
    gen = torch.Generator().manual_seed(seed)
    bank = MemoryBank(capacity=capacity, strata=True)
    for size in sizes:
        times = torch.randint(0, 6, (size,), generator=gen).double()  # ties within and across strata
        strata = torch.randint(0, 3, (size,), generator=gen)
        bank.push(torch.randn(size, 1, generator=gen), torch.rand(size, generator=gen) < 0.5, times,
                  design=BankDesign(strata=strata))
        rows = bank.by_time()
        positions = torch.remainder(rows.seq, capacity)
        assert sorted(rows.seq.tolist()) == list(range(bank.pushed - len(bank), bank.pushed))
        assert torch.equal(rows.keys, -bank.times[positions])
        assert torch.equal(bank.design_by_time().strata, bank.strata[positions])
        block = [(bank.strata[p].item(), -bank.times[p].item(), s) for p, s in zip(positions.tolist(),
                                                                                  rows.seq.tolist(), strict=True)]
        assert block == sorted(block)


def _merged_with(bank: MemoryBank, estimates, events, times) -> MergedRows:
    """What the pooled Cox loss hands push: the bank's sorted rows merged with a batch by time."""
    rows = bank.by_time()
    batch_keys, order = torch.sort(-times, stable=True)
    gather, sorted_position = merge_order(rows.keys, batch_keys)
    position = torch.empty_like(sorted_position).index_copy_(0, order, sorted_position)
    batch = SortedRows(-times, torch.full((len(times),), math.nan, dtype=torch.float64), events,
                       bank.incoming_seq(len(times)))
    return MergedRows(SortedRows(*(merge_runs(a, b.index_select(0, order), gather, sorted_position)
                                   for a, b in zip(rows, batch, strict=True))), position)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(capacity=st.integers(1, 40), sizes=st.lists(st.integers(1, 60), min_size=1, max_size=12),
       seed=st.integers(0, 1000))
def test_push_with_a_merged_run_keeps_the_same_sorted_run_as_its_own_merge(capacity, sizes, seed):
    """The pooled Cox loss hands push its bank + batch merge; the result must equal push's own merge."""
    gen = torch.Generator().manual_seed(seed)
    hinted, plain = MemoryBank(capacity=capacity), MemoryBank(capacity=capacity)
    for size in sizes:
        times = torch.randint(0, 8, (size,), generator=gen).double()  # many ties
        estimates, events = torch.randn(size, 1, generator=gen), torch.rand(size, generator=gen) < 0.5
        merged = _merged_with(hinted, estimates, events, times) if size <= capacity else None
        hinted.push(estimates, events, times, merged=merged)
        plain.push(estimates, events, times)
        for a, b in zip(hinted.by_time(), plain.by_time(), strict=True):
            assert torch.equal(a, b)
        assert (hinted.position, hinted.count, hinted.pushed) == (plain.position, plain.count, plain.pushed)


def test_push_refuses_a_merged_run_of_the_wrong_length_and_changes_nothing():
    bank = MemoryBank(capacity=8)
    bank.push(torch.zeros(3, 1), torch.ones(3, dtype=torch.bool), torch.arange(3.0))
    before = {key: value.clone() if isinstance(value, torch.Tensor) else value
              for key, value in bank.state_dict().items()}
    with pytest.raises(StateError, match="merged run has 4 rows"):
        bank.push(torch.zeros(2, 1), torch.ones(2, dtype=torch.bool), torch.arange(2.0),
                  merged=MergedRows(SortedRows(*(torch.zeros(4),) * 4), torch.arange(2)))
    after = bank.state_dict()
    assert after.keys() == before.keys()
    for key, value in before.items():
        assert torch.equal(after[key], value) if isinstance(value, torch.Tensor) else after[key] == value


@pytest.mark.parametrize(("name", "capacity"), [("full", 7), ("partial", 40)])
def test_a_bank_saved_in_the_unreleased_layout_of_b82f370_is_refused(name, capacity):
    """tests/data/bank_state_b82f370.pt: banks saved by commit b82f370 (sorted ring positions and integer keys,
    no ``pushed`` count), a layout no release wrote: loading it is an error, not a silent upgrade."""
    state = torch.load(Path(__file__).parent / "data" / "bank_state_b82f370.pt", weights_only=True)[name]
    assert "sorted_index" in state and "pushed" not in state["_extra_state"]
    with pytest.raises(StateError, match="bank state must hold capacity, count, dim, position, pushed"):
        MemoryBank(capacity=capacity, dim=2).load_state_dict(state)


def test_a_merged_push_that_overwrites_rows_leaves_the_state_of_a_bank_that_merged_itself():
    """After merged pushes that overwrite rows, by_time, a batch merged into it, state_dict and .double() all
    see exactly what a bank that merged each push itself holds."""
    gen = torch.Generator().manual_seed(3)
    hinted, plain = MemoryBank(capacity=10), MemoryBank(capacity=10)
    for size in (6, 6, 6):
        estimates, events = torch.randn(size, 1, generator=gen), torch.rand(size, generator=gen) < 0.5
        times = torch.randint(0, 4, (size,), generator=gen).double()
        hinted.push(estimates, events, times, merged=_merged_with(hinted, estimates, events, times))
        plain.push(estimates, events, times)
    for field, want in zip(hinted.by_time(), plain.by_time(), strict=True):
        assert torch.equal(field, want)
    batch_keys = torch.sort(-torch.tensor([0.0, 2.0, 2.0, 3.5], dtype=torch.float64)).values
    gather, positions = merge_order(hinted.by_time().keys, batch_keys)
    expected_gather, expected_positions = merge_order(plain.by_time().keys, batch_keys)
    assert torch.equal(positions, expected_positions) and torch.equal(gather, expected_gather)
    state, plain_state = hinted.state_dict(), plain.state_dict()
    assert state.keys() == plain_state.keys()
    for key in state:
        assert torch.equal(state[key], plain_state[key]) if key != "_extra_state" else state[key] == plain_state[key]
    doubled = hinted.double()
    assert doubled.order_values.dtype == torch.float64
    assert torch.equal(doubled.by_time().keys, plain.by_time().keys)
