"""EMA: schedules, the fused update, buffers, state round trips and the weight-swap context manager."""

import io
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from survmom.core.ema import EMA, cosine_rate, swapped_weights, update_momentum, warmup_rate
from survmom.errors import ConfigError, StateError


def bn_net(seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 1))


def test_update_is_the_ema_formula_for_every_parameter():
    online, target = bn_net(0), bn_net(1)
    expected = [0.9 * t + 0.1 * o for t, o in zip(target.parameters(), online.parameters())]
    update_momentum(online, target, 0.9)
    for got, want in zip(target.parameters(), expected):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-7)


def test_batchnorm_buffers_are_copied_from_online_not_averaged():
    online, target = bn_net(0), bn_net(1)
    online.train()
    online(torch.randn(32, 4) * 3 + 2)  # moves running stats and the counter
    update_momentum(online, target, 0.999)
    for (name, got), want in zip(target.named_buffers(), online.buffers()):
        assert torch.equal(got, want), name
    assert target[1].num_batches_tracked.item() == 1


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_rate_zero_makes_target_equal_online_and_rate_one_freezes_it(seed):
    online, target = bn_net(seed), bn_net(seed + 1)
    frozen = [p.clone() for p in target.parameters()]
    update_momentum(online, target, 1.0)
    assert all(torch.equal(a, b) for a, b in zip(target.parameters(), frozen))
    update_momentum(online, target, 0.0)
    assert all(torch.equal(a, b) for a, b in zip(target.parameters(), online.parameters()))


def test_cosine_schedule_matches_byol_formula_and_ends_at_one():
    m0, total = 0.99, 100
    for k in (0, 1, 37, 50, 99, 100, 150):
        expected = 1 - (1 - m0) * (math.cos(math.pi * min(k, total) / total) + 1) / 2
        assert cosine_rate(m0, k, total) == pytest.approx(expected, abs=1e-15)
    assert cosine_rate(m0, 0, total) == pytest.approx(m0)
    assert cosine_rate(m0, total, total) == pytest.approx(1.0)


def test_warmup_follows_torch_ema_and_combines_with_cosine():
    assert warmup_rate(0.999, 0) == pytest.approx(0.1)
    assert warmup_rate(0.999, 10) == pytest.approx(11 / 20)
    assert warmup_rate(0.5, 10) == 0.5
    ema = EMA(0.99, "cosine", total_steps=1000, warmup=True)
    for n in range(5):
        assert ema.current_rate() == pytest.approx(min(cosine_rate(0.99, n, 1000), (1 + n) / (10 + n)))
        ema.update(nn.Linear(2, 1), nn.Linear(2, 1))
    assert ema.num_updates == 5


def test_update_returns_step_size_and_counts():
    ema = EMA(0.75)
    assert ema.update(nn.Linear(2, 1), nn.Linear(2, 1)) == pytest.approx(0.25)
    assert ema.num_updates == 1


def test_state_dict_round_trip_through_torch_save_weights_only():
    ema = EMA(0.98, "cosine", total_steps=50, warmup=True)
    for _ in range(7):
        ema.update(nn.Linear(2, 1), nn.Linear(2, 1))
    buffer = io.BytesIO()
    torch.save(ema.state_dict(), buffer)
    buffer.seek(0)
    fresh = EMA()
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    assert fresh.state_dict() == ema.state_dict()
    assert fresh.current_rate() == ema.current_rate()


@pytest.mark.parametrize(
    "bad",
    [
        {"rate": 0.9},
        {"schedule": "constant", "rate": 0.9, "total_steps": 0, "warmup": False, "num_updates": 0, "x": 1},
        {"schedule": "linear", "rate": 0.9, "total_steps": 0, "warmup": False, "num_updates": 0},
        {"schedule": "constant", "rate": 1.5, "total_steps": 0, "warmup": False, "num_updates": 0},
        {"schedule": "constant", "rate": 0.9, "total_steps": 0, "warmup": "no", "num_updates": 0},
        {"schedule": "constant", "rate": 0.9, "total_steps": 0, "warmup": False, "num_updates": -3},
        [1, 2],
    ],
)
def test_load_state_dict_rejects_wrong_keys_and_values(bad):
    with pytest.raises(StateError):
        EMA().load_state_dict(bad)


@pytest.mark.parametrize("kwargs", [{"rate": -0.1}, {"rate": 1.01}, {"schedule": "step"},
                                    {"schedule": "cosine", "total_steps": 0}])
def test_invalid_configuration_is_refused(kwargs):
    with pytest.raises(ConfigError):
        EMA(**kwargs)


def test_swapped_weights_puts_target_in_and_restores_exactly():
    online, target = bn_net(0), bn_net(1)
    online(torch.randn(16, 4))
    before = [t.clone() for t in [*online.parameters(), *online.buffers()]]
    x = torch.randn(5, 4)
    target.eval()
    with swapped_weights(online, target) as swapped:
        swapped.eval()
        torch.testing.assert_close(swapped(x), target(x), rtol=0, atol=0)
    after = [*online.parameters(), *online.buffers()]
    assert all(torch.equal(a, b) for a, b in zip(after, before))


def test_swapped_weights_restores_even_when_the_body_raises():
    online, target = bn_net(0), bn_net(1)
    before = [p.clone() for p in online.parameters()]
    with pytest.raises(RuntimeError), swapped_weights(online, target):
        raise RuntimeError("boom")
    assert all(torch.equal(a, b) for a, b in zip(online.parameters(), before))
