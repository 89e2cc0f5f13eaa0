"""Property tests for survmom.core.losses: finiteness, agreement with a loop reference, invariances."""

from __future__ import annotations

import math
from collections.abc import Callable
from random import Random
from unittest import mock

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from survmom.core import losses
from survmom.core.losses import cox_loss, weibull_loss

SETTINGS = settings(max_examples=100, deadline=None)
TIES = st.sampled_from(["efron", "breslow"])
MODERATE = st.floats(-30.0, 30.0)
# Mixes ordinary values with spreads far beyond float64's exp range (~709), forcing the logcumsumexp path.
EXTREME = st.one_of(MODERATE, st.sampled_from([-1e4, 1e4, -800.0, 800.0, 0.0]))


@st.composite
def survival_data(draw: st.DrawFn, log_hz: st.SearchStrategy[float]) -> tuple[torch.Tensor, ...]:
    """(log_hz, event, time) for 1..30 samples, float64, integer times in 0..5 so that ties are common."""
    n = draw(st.integers(1, 30))
    values = draw(st.lists(log_hz, min_size=n, max_size=n))
    event = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    time = draw(st.lists(st.integers(0, 5), min_size=n, max_size=n))
    return (
        torch.tensor(values, dtype=torch.float64),
        torch.tensor(event),
        torch.tensor(time, dtype=torch.float64),
    )


def reference_cox_nll(
    log_hz: torch.Tensor, event: torch.Tensor, time: torch.Tensor, ties: str
) -> torch.Tensor:
    """Negative partial log-likelihood by a plain loop over distinct event times, in log space.

    Breslow: ``d log R - sum x``; Efron: ``sum_l log(R - l/d D) - sum x`` with
    ``log(R - l/d D) = log R + log1p(-l/d exp(log D - log R))``.
    """
    total = log_hz.new_zeros(())
    for tau in sorted(set(time[event].tolist())):
        dead = event & (time == tau)
        n_dead = int(dead.sum())
        log_risk = torch.logsumexp(log_hz[time >= tau], 0)
        if ties == "breslow":
            total = total + n_dead * log_risk
        else:
            log_dead = torch.logsumexp(log_hz[dead], 0)
            for rank in range(n_dead):
                total = total + log_risk + torch.log1p(-rank / n_dead * torch.exp(log_dead - log_risk))
        total = total - log_hz[dead].sum()
    return total


def _value_and_grad(
    fn: Callable[[torch.Tensor], torch.Tensor], log_hz: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``fn(log_hz)`` and its gradient (zeros where ``fn`` does not depend on ``log_hz``)."""
    x = log_hz.clone().requires_grad_(True)
    value = fn(x)
    if not value.requires_grad:
        return value, torch.zeros_like(log_hz)
    (grad,) = torch.autograd.grad(value, x)
    return value.detach(), grad


@SETTINGS
@given(data=survival_data(EXTREME), ties=TIES, dtype=st.sampled_from([torch.float32, torch.float64]))
def test_cox_loss_and_gradient_are_finite(
    data: tuple[torch.Tensor, ...], ties: str, dtype: torch.dtype
) -> None:
    log_hz, event, time = data
    value, grad = _value_and_grad(lambda x: cox_loss(x, event, time, ties=ties), log_hz.to(dtype))
    assert torch.isfinite(value) and torch.isfinite(grad).all()


@SETTINGS
@given(data=survival_data(EXTREME), ties=TIES)
def test_cox_loss_equals_the_loop_reference(data: tuple[torch.Tensor, ...], ties: str) -> None:
    log_hz, event, time = data
    value, grad = _value_and_grad(lambda x: cox_loss(x, event, time, ties, "sum"), log_hz)
    expected, expected_grad = _value_and_grad(lambda x: reference_cox_nll(x, event, time, ties), log_hz)
    assert value.item() == pytest.approx(expected.item(), rel=1e-9, abs=1e-9)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-9, atol=1e-9)


@SETTINGS
@given(data=survival_data(MODERATE), ties=TIES)
def test_cox_loss_with_every_risk_sum_from_logcumsumexp_equals_the_loop_reference(
    data: tuple[torch.Tensor, ...], ties: str
) -> None:
    """The risk sums are max-shifted cumulative sums unless those would underflow, then logcumsumexp; force
    the latter where the former runs (moderate log hazards): value and gradient still equal the reference."""
    log_hz, event, time = data
    with mock.patch.object(losses, "_MIN_SHIFTED_SUM", math.inf):
        value, grad = _value_and_grad(lambda x: cox_loss(x, event, time, ties, "sum"), log_hz)
    expected, expected_grad = _value_and_grad(lambda x: reference_cox_nll(x, event, time, ties), log_hz)
    assert value.item() == pytest.approx(expected.item(), rel=1e-9, abs=1e-9)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-9, atol=1e-9)


@SETTINGS
@given(data=survival_data(EXTREME), ties=TIES, order=st.randoms(use_true_random=False))
def test_cox_loss_does_not_depend_on_sample_order(
    data: tuple[torch.Tensor, ...], ties: str, order: Random
) -> None:
    log_hz, event, time = data
    perm = list(range(len(log_hz)))
    order.shuffle(perm)
    p = torch.tensor(perm)
    value, grad = _value_and_grad(lambda x: cox_loss(x, event, time, ties), log_hz)
    permuted, permuted_grad = _value_and_grad(lambda x: cox_loss(x, event[p], time[p], ties), log_hz[p])
    # Another order of tied rows sums the same terms in another order: rounding of a few ulps of the
    # largest |log hazard| (up to 1e4 here, one ulp ~1.8e-12), nothing more.
    scale = 64 * torch.finfo(torch.float64).eps * max(1.0, log_hz.abs().max().item())
    assert permuted.item() == pytest.approx(value.item(), rel=1e-12, abs=scale)
    torch.testing.assert_close(permuted_grad, grad[p], rtol=1e-12, atol=scale)


@SETTINGS
@given(data=survival_data(MODERATE), ties=TIES, shift=st.floats(-300.0, 300.0))
def test_cox_loss_does_not_change_when_log_hazards_shift(
    data: tuple[torch.Tensor, ...], ties: str, shift: float
) -> None:
    log_hz, event, time = data
    value = cox_loss(log_hz, event, time, ties, "sum").item()
    shifted = cox_loss(log_hz + shift, event, time, ties, "sum").item()
    assert shifted == pytest.approx(value, rel=1e-9, abs=1e-9)


@SETTINGS
@given(
    params=st.lists(st.tuples(st.floats(-50.0, 50.0), st.floats(-50.0, 50.0)), min_size=1, max_size=20),
    data=st.data(),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    reduction=st.sampled_from(["mean", "sum"]),
)
def test_weibull_loss_and_gradient_are_finite(
    params: list[tuple[float, float]], data: st.DataObject, dtype: torch.dtype, reduction: str
) -> None:
    n = len(params)
    times = st.one_of(st.just(0.0), st.floats(1e-3, 1e4))
    time = torch.tensor(data.draw(st.lists(times, min_size=n, max_size=n)), dtype=dtype)
    event = torch.tensor(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    log_params = torch.tensor(params, dtype=dtype)
    value, grad = _value_and_grad(lambda p: weibull_loss(p, event, time, reduction), log_params)
    assert value.dtype == dtype and math.isfinite(value.item()) and torch.isfinite(grad).all()


@settings(max_examples=150, deadline=None)
@given(data=survival_data(EXTREME), ties=TIES, batch_seed=st.integers(0, 2**31 - 1))
def test_pooled_loss_equals_the_loop_reference_with_gradient_at_the_batch_rows(
    data: tuple[torch.Tensor, ...], ties: str, batch_seed: int
) -> None:
    """cox_loss_sorted over rows sorted by time, a random subset of them carrying the gradient (the batch):
    value and batch gradient equal the loop reference's."""
    from survmom.core.losses import cox_loss_sorted
    from survmom.core.sorting import descending_time_key

    log_hz, event, time = data
    n = len(time)
    gen = torch.Generator().manual_seed(batch_seed)
    batch_rows = torch.randperm(n, generator=gen)[: int(torch.randint(1, n + 1, (), generator=gen))]
    order = torch.sort(descending_time_key(time), stable=True).indices
    position = torch.empty(n, dtype=torch.int64).index_copy_(0, order, torch.arange(n))[batch_rows]
    keys = -time[order]
    batch = log_hz[batch_rows].clone().requires_grad_(True)
    value = cox_loss_sorted(batch, position, keys, log_hz[order], event[order], ties=ties, reduction="sum")
    expected, expected_grad = _value_and_grad(lambda x: reference_cox_nll(x, event, time, ties), log_hz)
    assert value.item() == pytest.approx(expected.item(), rel=1e-9, abs=1e-9)
    grad = torch.autograd.grad(value, batch)[0] if value.requires_grad else torch.zeros_like(batch)
    torch.testing.assert_close(grad, expected_grad[batch_rows], rtol=1e-9, atol=1e-9)
