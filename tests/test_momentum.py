"""Momentum: parity with torchsurv, any batch size, Weibull gradient, state round trips, devices."""

import copy
import io

import pytest
import torch
from torch import nn

from survmom.core import sorting as sorting_module
from survmom.core.losses import cox_loss, weibull_loss
from survmom.core.momentum import Momentum
from survmom.core.sorting import is_ascending
from survmom.errors import ConfigError, StateError


def mlp(out: int = 1, seed: int = 0, batchnorm: bool = False) -> nn.Sequential:
    torch.manual_seed(seed)
    layers = [nn.Linear(6, 16)]
    if batchnorm:
        layers.append(nn.BatchNorm1d(16))
    layers += [nn.ReLU(), nn.Linear(16, out)]
    return nn.Sequential(*layers)


def survival_batches(n_batches: int, size: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    for _ in range(n_batches):
        x = torch.randn(size, 6, generator=gen)
        event = torch.rand(size, generator=gen) < 0.7
        time = torch.rand(size, generator=gen) * 10 + 0.01  # continuous: no ties
        yield x, event, time


def test_matches_torchsurv_momentum_losses_and_final_target_over_50_steps():
    from torchsurv.loss.cox import neg_partial_log_likelihood
    from torchsurv.loss.momentum import Momentum as TorchsurvMomentum

    backbone = mlp()
    ours = Momentum(copy.deepcopy(backbone), "cox", 16, 4, rate=0.999)
    theirs = TorchsurvMomentum(copy.deepcopy(backbone), neg_partial_log_likelihood, batchsize=16, steps=5)
    opt_ours = torch.optim.SGD(ours.online.parameters(), lr=0.05)
    opt_theirs = torch.optim.SGD(theirs.online.parameters(), lr=0.05)
    for x, event, time in survival_batches(50, 16):
        loss_ours, loss_theirs = ours(x, event, time), theirs(x, event, time)
        torch.testing.assert_close(loss_ours, loss_theirs, rtol=1e-5, atol=1e-5)
        for opt, loss in ((opt_ours, loss_ours), (opt_theirs, loss_theirs)):
            opt.zero_grad()
            loss.backward()
            opt.step()
    for a, b in zip(ours.target.parameters(), theirs.target.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_pooled_cox_loss_is_loss_over_bank_plus_batch_with_gradient_only_on_batch():
    model = Momentum(mlp(), "cox", 8, 3, rate=0.5)
    batches = list(survival_batches(4, 8))
    for x, e, t in batches[:3]:
        model(x, e, t)
    bank_est, bank_ev, bank_t = (v.clone() for v in model.bank.contents())
    x, e, t = batches[3]
    t = torch.floor(t)  # ties within the batch and with the bank rows
    bank_t = torch.floor(bank_t)
    model.bank.clear()
    model.bank.push(bank_est, bank_ev, bank_t)  # same rows, re-sorted under the tied times
    reference = copy.deepcopy(model.online)
    loss = model(x, e, t)
    online_before_step = reference(x)  # online is unchanged by forward (no optimizer step)
    expected = cox_loss(torch.cat([bank_est[:, 0], online_before_step[:, 0]]),
                        torch.cat([bank_ev, e]), torch.cat([bank_t, t.double()]))
    torch.testing.assert_close(loss, expected.to(loss.dtype))
    loss.backward()
    expected.backward()
    for ours, theirs in zip(model.online.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(ours.grad, theirs.grad, rtol=1e-5, atol=1e-7)
    assert all(p.grad is None for p in model.target.parameters())


def test_a_batch_in_time_order_skips_the_sort_and_takes_exactly_the_step_the_sort_would(monkeypatch):
    # A capacity of 2.5 batches: part of a batch is overwritten at a time, so the rows' push order matters.
    skipping, sorting = (Momentum(mlp(), "cox", bank_size=20, rate=0.5).double() for _ in range(2))
    optimizers = [torch.optim.SGD(m.online.parameters(), lr=0.1) for m in (skipping, sorting)]
    for x, e, t in survival_batches(7, 8, seed=3):
        t = torch.floor(t * 0.4)  # ties within the batch and with the bank
        by_time = torch.sort(-t, stable=True).indices
        x, e, t = x[by_time].double(), e[by_time], t[by_time]
        loss_skipping = skipping(x, e, t)
        with monkeypatch.context() as patch:
            patch.setattr(sorting_module, "is_ascending", lambda keys: False)  # sort anyway
            loss_sorting = sorting(x, e, t)
        assert torch.equal(loss_skipping, loss_sorting)
        for opt, loss in zip(optimizers, (loss_skipping, loss_sorting), strict=True):
            opt.zero_grad()
            loss.backward()
            opt.step()
        for a, b in zip(skipping.online.parameters(), sorting.online.parameters(), strict=True):
            assert torch.equal(a, b)
        banks = [m.bank.by_time() for m in (skipping, sorting)]
        assert all(torch.equal(a, b) for a, b in zip(*banks, strict=True))  # keys, values, events, seq
        ring = banks[0].seq % skipping.bank.capacity  # each sorted row is the ring row it names
        assert torch.equal(skipping.bank.times[ring], -banks[0].keys)
        assert torch.equal(skipping.bank.estimates[ring, 0], banks[0].values)


@pytest.mark.parametrize(("time", "ascending"), [([3.0, 2.0, 2.0, 1.0], True), ([3.0, 1.0, 2.0], False),
                                                  ([2.0, float("nan")], False), ([5.0], True), ([], True)])
def test_only_batches_in_descending_time_count_as_sorted(time, ascending):
    assert is_ascending(torch.neg(torch.tensor(time, dtype=torch.float64))) is ascending


@pytest.mark.parametrize("sizes", [[16, 16, 5], [3, 40, 1, 16], [1]])
def test_any_batch_size_works_including_short_last_batch(sizes):
    model = Momentum(mlp(), "cox", 16, 4)
    for i, size in enumerate(sizes):
        x, e, t = next(survival_batches(1, size, seed=i))
        loss = model(x, e, t)
        assert torch.isfinite(loss)
        loss.backward()
    assert len(model.bank) == min(sum(sizes), 64)


def test_weibull_gradient_equals_plain_batch_gradient_with_a_full_bank():
    model = Momentum(mlp(out=2), "weibull", 8, 4)
    for x, e, t in survival_batches(6, 8):
        model(x, e, t)
    assert model.bank.is_full
    x, e, t = next(survival_batches(1, 8, seed=99))
    plain = copy.deepcopy(model.online)
    model(x, e, t).backward()
    weibull_loss(plain(x), e, t).backward()
    for a, b in zip(model.online.parameters(), plain.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-6, atol=1e-7)


def test_callable_loss_receives_pooled_rows():
    seen = []

    def loss(est, event, time):
        seen.append(est.shape)
        return est.sum()

    model = Momentum(mlp(), loss, 4, 2)
    for x, e, t in survival_batches(3, 4):
        model(x, e, t)
    assert seen == [(4, 1), (8, 1), (12, 1)]


def test_target_runs_in_eval_mode_and_infer_has_no_grad():
    model = Momentum(mlp(batchnorm=True), "cox", 8, 2)
    model.train()
    assert model.online.training and not model.target.training
    out = model.infer(torch.randn(5, 6))
    assert out.shape == (5, 1) and not out.requires_grad


def test_batchnorm_backbone_copies_running_stats_into_target():
    model = Momentum(mlp(batchnorm=True), "cox", 8, 2)
    model.train()
    for x, e, t in survival_batches(3, 8):
        model(x * 5 + 3, e, t)
    torch.testing.assert_close(model.target[1].running_mean, model.online[1].running_mean)
    assert model.target[1].num_batches_tracked.item() == 3


def test_state_dict_round_trip_gives_identical_next_step():
    kwargs = dict(rate=0.9, rate_schedule="cosine", total_steps=100, warmup=True)
    model = Momentum(mlp(batchnorm=True), "cox", 8, 3, **kwargs)
    opt = torch.optim.Adam(model.online.parameters(), lr=1e-2)
    batches = list(survival_batches(8, 8))
    for x, e, t in batches[:5]:
        opt.zero_grad()
        model(x, e, t).backward()
        opt.step()
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    fresh = Momentum(mlp(seed=7, batchnorm=True), "cox", 8, 3, **kwargs)
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    assert fresh.ema.num_updates == 5 and fresh.current_rate == model.current_rate
    x, e, t = batches[5]
    assert torch.equal(fresh(x, e, t), model(x, e, t))
    for a, b in zip(fresh.state_dict().values(), model.state_dict().values()):
        if isinstance(a, torch.Tensor):
            assert torch.equal(a, b)


def test_loading_state_of_another_architecture_or_loss_is_a_clear_error():
    state = Momentum(mlp(), "cox", 8, 3).state_dict()
    with pytest.raises(StateError):
        Momentum(mlp(), "cox", 8, 4).load_state_dict(state)
    with pytest.raises(StateError):
        Momentum(mlp(out=2), "weibull", 8, 3).load_state_dict(state)


def test_moves_with_to_bank_included():
    model = Momentum(mlp(), "cox", 8, 3).to(torch.float64)
    assert model.bank.estimates.dtype == torch.float64
    x, e, t = next(survival_batches(1, 8))
    assert torch.isfinite(model(x.double(), e, t))
    meta = Momentum(mlp(), "cox", 8, 3).to("meta")
    assert meta.bank.times.device.type == "meta" and meta.target[0].weight.device.type == "meta"


def test_bank_size_overrides_batchsize_times_steps_and_unknown_loss_is_refused():
    assert Momentum(mlp(), "cox", 8, 3, bank_size=100).bank.capacity == 100
    with pytest.raises(ConfigError):
        Momentum(mlp(), "poisson")


@pytest.mark.parametrize("change", ["double", "assign"])
def test_ema_follows_tensors_replaced_by_to_or_assign_loading(change):
    """The EMA keeps its tensor lists between steps; .to() and load_state_dict(assign=True) replace tensors."""
    model = Momentum(mlp(batchnorm=True), "cox", 8, 2, rate=0.5)
    batches = list(survival_batches(3, 8))
    model(*batches[0])
    if change == "double":
        model.double()
    else:
        state = {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in model.state_dict().items()}
        model.load_state_dict(state, assign=True)
    x, e, t = batches[1]
    target_before = [p.detach().clone() for p in model.target.parameters()]
    with torch.no_grad():
        for p in model.online.parameters():
            p.add_(1.0)  # move the online network so the update is visible
    model(x.to(next(model.online.parameters()).dtype), e, t)
    for before, online, target in zip(target_before, model.online.parameters(), model.target.parameters()):
        torch.testing.assert_close(target, 0.5 * before + 0.5 * online.detach())
    for online, target in zip(model.online.buffers(), model.target.buffers()):
        assert torch.equal(online, target)  # BatchNorm statistics copied from the online network
