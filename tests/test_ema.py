"""EMA: the update and its schedules, the life cycle against the torch-ema package, state round trips."""

import io
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch_ema import ExponentialMovingAverage

from survmom.core.ema import EMA, cosine_rate, next_rate, warmup_rate
from survmom.errors import ConfigError, StateError


def bn_net(seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 1))


def train_step(net: nn.Module, step: int) -> None:
    """Move every parameter as an optimizer step would (seeded, so two copies move alike)."""
    g = torch.Generator().manual_seed(1000 + step)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.1)


def tensors(net: nn.Module) -> list[torch.Tensor]:
    return [t.detach().clone() for t in [*net.parameters(), *net.buffers()]]


# --- the update ------------------------------------------------------------------------------------------

def test_update_is_the_ema_formula_for_every_parameter():
    online, target = bn_net(0), bn_net(1)
    expected = [0.9 * t + 0.1 * o for t, o in zip(target.parameters(), online.parameters())]
    EMA(online, rate=0.9, averaged=target).update()
    for got, want in zip(target.parameters(), expected):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-7)


def test_batchnorm_buffers_are_copied_from_the_model_not_averaged():
    online, target = bn_net(0), bn_net(1)
    online.train()
    online(torch.randn(32, 4) * 3 + 2)  # moves running stats and the counter
    EMA(online, rate=0.999, averaged=target).update()
    for (name, got), want in zip(target.named_buffers(), online.buffers()):
        assert torch.equal(got, want), name
    assert target[1].num_batches_tracked.item() == 1


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_rate_zero_makes_averaged_equal_model_and_rate_one_freezes_it(seed):
    online, target = bn_net(seed), bn_net(seed + 1)
    frozen = [p.clone() for p in target.parameters()]
    EMA(online, rate=1.0, averaged=target).update()
    assert all(torch.equal(a, b) for a, b in zip(target.parameters(), frozen))
    EMA(online, rate=0.0, averaged=target).update()
    assert all(torch.equal(a, b) for a, b in zip(target.parameters(), online.parameters()))


def test_default_averaged_network_is_a_copy_without_gradients():
    net = bn_net(0)
    ema = EMA(net)
    assert ema.averaged is not net
    assert all(torch.equal(a, b) for a, b in zip(tensors(ema.averaged), tensors(net)))
    assert not any(p.requires_grad for p in ema.averaged.parameters())
    assert all(p.requires_grad for p in net.parameters())


def test_averaged_network_of_another_architecture_is_refused():
    with pytest.raises(StateError, match="differ in parameters or buffers"):
        EMA(bn_net(0), averaged=nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1)))


def test_relist_follows_tensors_replaced_after_construction():
    """.double() replaces buffers, assign-loading replaces everything: relist() lists them again."""
    online, target = bn_net(0), bn_net(1)
    online.train()
    ema = EMA(online, rate=0.5, averaged=target)
    online.double()
    target.double()
    target.load_state_dict({k: v.clone() for k, v in target.state_dict().items()}, assign=True)
    ema.relist()
    online(torch.randn(8, 4, dtype=torch.float64))  # moves the (new) running statistics
    before = [p.detach().clone() for p in target.parameters()]
    ema.update()
    for b, o, t in zip(before, online.parameters(), target.parameters()):
        torch.testing.assert_close(t, 0.5 * b + 0.5 * o.detach())
    assert all(torch.equal(t, o) for t, o in zip(target.buffers(), online.buffers()))


# --- schedules -------------------------------------------------------------------------------------------

def test_cosine_schedule_matches_byol_formula_and_ends_at_one():
    m0, total = 0.99, 100
    for k in (0, 1, 37, 50, 99, 100, 150):
        expected = 1 - (1 - m0) * (math.cos(math.pi * min(k, total) / total) + 1) / 2
        assert cosine_rate(m0, k, total) == pytest.approx(expected, abs=1e-15)
    assert cosine_rate(m0, 0, total) == pytest.approx(m0)
    assert cosine_rate(m0, total, total) == pytest.approx(1.0)


def test_warmup_counts_updates_as_torch_ema_does_and_combines_with_cosine():
    """The n-th update (n = 1 first) uses min(m, (1 + n)/(10 + n)); the cosine term uses the n - 1 done."""
    assert warmup_rate(0.999, 1) == pytest.approx(2 / 11)
    assert warmup_rate(0.999, 10) == pytest.approx(11 / 20)
    assert warmup_rate(0.5, 10) == 0.5
    ema = EMA(nn.Linear(2, 1), 0.99, "cosine", total_steps=1000, warmup=True)
    for done in range(5):
        assert ema.current_rate() == pytest.approx(min(cosine_rate(0.99, done, 1000), (2 + done) / (11 + done)))
        ema.update()
    assert ema.num_updates == 5


def test_update_returns_step_size_and_counts():
    ema = EMA(nn.Linear(2, 1), 0.75)
    assert ema.update() == 0.25
    assert ema.num_updates == 1


@pytest.mark.parametrize("kwargs", [{"rate": -0.1}, {"rate": 1.01}, {"schedule": "step"},
                                    {"schedule": "cosine", "total_steps": 0}])
def test_invalid_configuration_is_refused(kwargs):
    with pytest.raises(ConfigError):
        EMA(nn.Linear(2, 1), **kwargs)


# --- against torch_ema -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("rate", "warmup"), [(0.99, True), (0.9, False), (0.999, True)])
def test_same_averaged_weights_as_torch_ema_after_many_updates(rate, warmup):
    net = bn_net(0)
    ours = EMA(net, rate=rate, warmup=warmup)
    theirs = ExponentialMovingAverage(net.parameters(), decay=rate, use_num_updates=warmup)
    for step in range(40):
        train_step(net, step)
        ours.update()
        theirs.update()
        for a, b in zip(ours.averaged.parameters(), theirs.shadow_params):
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    assert ours.num_updates == 40 and (theirs.num_updates == 40 if warmup else theirs.num_updates is None)


def test_store_copy_to_restore_behave_as_torch_ema():
    ours_net, their_net = bn_net(0), bn_net(0)
    ours = EMA(ours_net, rate=0.8)
    theirs = ExponentialMovingAverage(their_net.parameters(), decay=0.8, use_num_updates=False)
    for step in range(5):
        train_step(ours_net, step)
        train_step(their_net, step)
        ours.update()
        theirs.update()
    own = tensors(ours_net)
    ours.store()
    theirs.store()
    ours.copy_to()
    theirs.copy_to()
    for a, b in zip(ours_net.parameters(), their_net.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)  # the averages
    assert not torch.equal(next(ours_net.parameters()), own[0])
    for net in (ours_net, their_net):
        train_step(net, 99)  # e.g. evaluation code that changes the weights
    ours.restore()
    theirs.restore()
    assert all(torch.equal(a, b) for a, b in zip(tensors(ours_net), own))
    assert all(torch.equal(a, b) for a, b in zip(ours_net.parameters(), their_net.parameters()))
    train_step(ours_net, 100)
    ours.restore()  # the stored copy is kept, as in torch_ema: restore again
    assert all(torch.equal(a, b) for a, b in zip(tensors(ours_net), own))


def test_average_parameters_runs_the_model_with_the_averages_and_restores_exactly():
    net = bn_net(0)
    ema = EMA(net, rate=0.5)
    net.train()
    for step in range(3):
        net(torch.randn(16, 4))
        train_step(net, step)
        ema.update()
    own = tensors(net)
    net.eval()
    x = torch.randn(5, 4)
    ema.averaged.eval()
    with ema.average_parameters():
        torch.testing.assert_close(net(x), ema.averaged(x), rtol=0, atol=0)  # parameters and buffers
    assert all(torch.equal(a, b) for a, b in zip(tensors(net), own))


def test_average_parameters_restores_even_when_the_body_raises():
    net = bn_net(0)
    ema = EMA(net, rate=0.5)
    train_step(net, 0)
    own = tensors(net)
    with pytest.raises(RuntimeError, match="boom"), ema.average_parameters():
        raise RuntimeError("boom")
    assert all(torch.equal(a, b) for a, b in zip(tensors(net), own))


def test_store_and_restore_work_on_any_module_of_the_same_layout():
    """What the trainer does with the target network: store, load other weights, restore."""
    net, other = bn_net(0), bn_net(1)
    ema = EMA(net)
    own = tensors(ema.averaged)
    ema.store(ema.averaged)
    ema.averaged.load_state_dict(other.state_dict())
    ema.restore(ema.averaged)
    assert all(torch.equal(a, b) for a, b in zip(tensors(ema.averaged), own))


def test_restore_without_store_is_a_clear_error():
    with pytest.raises(StateError, match="call store"):
        EMA(bn_net(0)).restore()


def test_to_moves_the_averages_and_the_stored_weights_like_torch_ema():
    net = bn_net(0)
    ours = EMA(net, rate=0.9, warmup=True)
    theirs = ExponentialMovingAverage(net.parameters(), decay=0.9)
    ours.store()
    theirs.store()
    net.double()  # the model moves itself; the EMA moves what it holds
    assert ours.to(dtype=torch.float64) is ours
    theirs.to(dtype=torch.float64)
    assert all(p.dtype == torch.float64 for p in ours.averaged.parameters())
    assert [t.dtype for t in ours.stored] == [t.dtype for t in tensors(net)]
    assert ours.averaged[1].num_batches_tracked.dtype == torch.int64  # integers keep their type
    for step in range(3):
        train_step(net, step)
        ours.update()
        theirs.update()
    for a, b in zip(ours.averaged.parameters(), theirs.shadow_params):
        assert a.dtype == b.dtype == torch.float64
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


# --- state -----------------------------------------------------------------------------------------------

def saved(state):
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def test_state_dict_round_trip_gives_identical_next_update():
    net = bn_net(0)
    ema = EMA(net, 0.98, "cosine", total_steps=50, warmup=True)
    for step in range(7):
        train_step(net, step)
        ema.update()
    ema.store()
    fresh = EMA(net, 0.5)  # another averaged network and schedule, overwritten by the load
    fresh.load_state_dict(saved(ema.state_dict()))
    assert fresh.state_dict(weights=False) == ema.state_dict(weights=False)
    assert fresh.current_rate() == ema.current_rate()
    assert all(torch.equal(a, b) for a, b in zip(fresh.stored, ema.stored))
    train_step(net, 7)
    ema.update()
    fresh.update()
    assert all(torch.equal(a, b) for a, b in zip(tensors(fresh.averaged), tensors(ema.averaged)))


def test_state_dict_holds_what_torch_ema_holds():
    net = bn_net(0)
    ours = EMA(net, 0.9, warmup=True)
    theirs = ExponentialMovingAverage(net.parameters(), decay=0.9)
    for step in range(4):
        train_step(net, step)
        ours.update()
        theirs.update()
    ours.store()
    theirs.store()
    state, their_state = ours.state_dict(), theirs.state_dict()
    assert (state["rate"], state["num_updates"]) == (their_state["decay"], their_state["num_updates"])
    parameters = [name for name, _ in net.named_parameters()]
    for name, shadow in zip(parameters, their_state["shadow_params"]):
        torch.testing.assert_close(state["averaged"][name], shadow, rtol=1e-6, atol=1e-7)
    for ours_stored, their_stored in zip(state["stored"], their_state["collected_params"]):
        assert torch.equal(ours_stored, their_stored)  # parameters first, then buffers (torch_ema: none)


def test_rate_state_round_trip_and_next_rate():
    ema = EMA(nn.Linear(2, 1), 0.98, "cosine", total_steps=50, warmup=True)
    for _ in range(7):
        ema.update()
    state = saved(ema.state_dict(weights=False))
    assert set(state) == {"schedule", "rate", "total_steps", "warmup", "num_updates"}
    assert next_rate(state) == ema.current_rate()
    fresh = EMA(nn.Linear(2, 1))
    fresh.load_state_dict(state)
    assert fresh.state_dict(weights=False) == ema.state_dict(weights=False)


RATES = {"schedule": "constant", "rate": 0.9, "total_steps": 0, "warmup": False, "num_updates": 0}


@pytest.mark.parametrize(
    "bad",
    [
        {"rate": 0.9},
        {**RATES, "x": 1},
        {**RATES, "averaged": {}},  # weights without 'stored'
        {**RATES, "schedule": "linear"},
        {**RATES, "rate": 1.5},
        {**RATES, "rate": True},
        {**RATES, "warmup": "no"},
        {**RATES, "num_updates": -3},
        {**RATES, "num_updates": 2.0},
        [1, 2],
    ],
)
def test_load_state_dict_rejects_wrong_keys_and_values(bad):
    with pytest.raises(StateError):
        EMA(nn.Linear(2, 1)).load_state_dict(bad)
    with pytest.raises(StateError):
        next_rate(bad)


@pytest.mark.parametrize("damage", ["missing key", "wrong shape", "not a tensor", "stored too short"])
def test_load_state_dict_rejects_other_weights_and_changes_nothing(damage):
    ema = EMA(bn_net(0), 0.9)
    ema.store()
    state = ema.state_dict()
    state = {**state, "averaged": dict(state["averaged"]), "stored": list(state["stored"]), "num_updates": 9}
    if damage == "missing key":
        del state["averaged"]["3.bias"]
    elif damage == "wrong shape":
        state["averaged"]["0.weight"] = torch.zeros(8, 5)
    elif damage == "not a tensor":
        state["averaged"]["0.weight"] = [0.0]
    else:
        state["stored"] = state["stored"][:-1]
    before = tensors(ema.averaged)
    with pytest.raises(StateError):
        ema.load_state_dict(state)
    assert ema.num_updates == 0
    assert all(torch.equal(a, b) for a, b in zip(tensors(ema.averaged), before))
