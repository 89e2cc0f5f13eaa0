"""The penalised linear start of the linear path: lifelines as the oracle, and its use by the trainer."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from lifelines import CoxPHFitter, WeibullAFTFitter
from lifelines.datasets import load_rossi
from torch import nn

from survmom.core.linear_start import fit_linear_start
from survmom.core.losses import cox_loss, weibull_loss
from survmom.training.config import TrainConfig
from survmom.training.trainer import Tensors, Trainer, fit_constant_weibull

pytestmark = pytest.mark.filterwarnings("ignore:Ties in `time` detected")


@pytest.fixture(scope="module")
def rossi() -> tuple[object, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Standardised rossi covariates (frame and (n, 7) tensor), event (n,) and week (n,)."""
    frame = load_rossi()
    covariates = frame.drop(columns=["week", "arrest"]).astype(float)
    covariates = (covariates - covariates.mean()) / covariates.std()
    x = torch.tensor(covariates.to_numpy(), dtype=torch.float64)
    return covariates, x, torch.tensor(frame["arrest"].to_numpy(bool)), torch.tensor(frame["week"].to_numpy(float))


def _layer(p: int, out: int) -> nn.Linear:
    torch.manual_seed(0)
    return nn.Linear(p, out).double()


def _lifelines_fit(fitter, covariates, event, time):
    """A lifelines fitter fitted on the covariates with T = time, E = event (convergence warnings muted)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fitter.fit(covariates.assign(T=time.numpy(), E=event.numpy()), "T", "E")


def test_unpenalised_cox_start_is_lifelines_coxph(rossi):
    covariates, x, event, time = rossi
    cph = _lifelines_fit(CoxPHFitter(), covariates, event, time)
    layer = _layer(x.shape[1], 1)
    assert fit_linear_start(layer, x, event, time, "cox", penalty=0.0)
    expected = cph.params_[covariates.columns].to_numpy()
    np.testing.assert_allclose(layer.weight.detach()[0].numpy(), expected, atol=1e-5)
    assert layer.bias.item() == 0.0


def test_unpenalised_weibull_start_is_lifelines_weibull_aft(rossi):
    covariates, x, event, time = rossi
    aft = _lifelines_fit(WeibullAFTFitter(), covariates, event, time)
    layer = _layer(x.shape[1], 2)
    with torch.no_grad():
        layer.bias.copy_(torch.tensor(fit_constant_weibull(event, time), dtype=torch.float64))
    assert fit_linear_start(layer, x, event, time, "weibull", penalty=0.0)
    scale = aft.params_["lambda_"]
    np.testing.assert_allclose(layer.weight.detach()[0].numpy(), scale[covariates.columns].to_numpy(), atol=1e-4)
    assert layer.bias[0].item() == pytest.approx(scale["Intercept"], abs=1e-4)
    assert layer.bias[1].item() == pytest.approx(aft.params_["rho_"]["Intercept"], abs=1e-4)
    assert torch.all(layer.weight[1] == 0)  # the shape does not depend on the covariates


@pytest.mark.parametrize("loss", ["cox", "weibull"])
@pytest.mark.parametrize("penalty", [0.01, 0.1, 1.0])
def test_penalised_start_is_a_stationary_point_of_its_objective(rossi, loss, penalty):
    _, x, event, time = rossi
    layer = _layer(x.shape[1], 1 if loss == "cox" else 2)
    assert fit_linear_start(layer, x, event, time, loss, penalty=penalty)
    weights = layer.weight.detach()[0].clone().requires_grad_(True)
    bias = layer.bias.detach().clone().requires_grad_(True)
    n = len(time)
    if loss == "cox":
        nll = cox_loss(x @ weights, event, time, reduction="sum") / n
    else:
        nll = weibull_loss(torch.stack([x @ weights + bias[0], bias[1].expand(n)], 1), event, time, "sum") / n
    (nll + 0.5 * penalty * weights.square().sum()).backward()
    assert weights.grad.abs().max().item() < 1e-5
    if loss == "weibull":
        assert bias.grad.abs().max().item() < 1e-5


def test_more_penalty_shrinks_the_weights(rossi):
    _, x, event, time = rossi
    norms = []
    for penalty in (0.0, 0.1, 1.0, 10.0):
        layer = _layer(x.shape[1], 1)
        fit_linear_start(layer, x, event, time, "cox", penalty=penalty)
        norms.append(layer.weight.norm().item())
    assert norms == sorted(norms, reverse=True) and norms[-1] < 0.2 * norms[0]


def test_without_events_the_layer_is_left_alone(rossi):
    _, x, _, time = rossi
    layer = _layer(x.shape[1], 1)
    before = layer.weight.detach().clone()
    assert not fit_linear_start(layer, x, torch.zeros(len(time), dtype=torch.bool), time, "cox")
    assert torch.equal(layer.weight, before)


def test_large_inputs_are_fitted_on_a_seeded_subset(rossi):
    _, x, event, time = rossi
    a, b = _layer(x.shape[1], 1), _layer(x.shape[1], 1)
    fit_linear_start(a, x, event, time, "cox", max_rows=300, seed=3)
    fit_linear_start(b, x, event, time, "cox", max_rows=300, seed=3)
    full = _layer(x.shape[1], 1)
    fit_linear_start(full, x, event, time, "cox")
    assert torch.equal(a.weight, b.weight) and not torch.equal(a.weight, full.weight)


# ------------------------------------------------------------------------------------------------ trainer


def _trainer(rossi, **options) -> Trainer:
    _, x, event, time = rossi
    x32 = x.float()
    train = Tensors(x32[:340], event[:340], time[:340])
    val = Tensors(x32[340:], event[340:], time[340:])
    config = TrainConfig(**{"batch": 32, "epochs": 3, "hidden": [16], "threads": 1, **options})
    return Trainer(config, x.shape[1], train, val, torch.device("cpu"))


def _fit(trainer: Trainer) -> None:
    class Quiet:
        def start_epoch(self, *args): ...
        def step(self, *args): ...
        def end_epoch(self, *args): ...
        def start_validated(self, *args): ...

    trainer.fit(trainer.config.epochs, Quiet(), lambda state: None)


def test_trainer_starts_from_the_fit_and_keeps_a_frozen_linear_path(rossi):
    trainer = _trainer(rossi)
    start = trainer.momentum.online.linear.weight.detach().clone()
    reference = _layer(7, 1).float()
    fit_linear_start(reference, trainer.train_data.x, trainer.train_data.event, trainer.train_data.time, "cox",
                     penalty=trainer.config.linear_penalty)
    torch.testing.assert_close(start, reference.weight.detach())
    _fit(trainer)
    assert torch.equal(trainer.momentum.online.linear.weight, start)
    assert torch.equal(trainer.momentum.target.linear.weight, start)
    assert trainer.momentum.online.mlp[0].weight.grad is not None  # the MLP did train


def test_unfrozen_linear_path_trains(rossi):
    trainer = _trainer(rossi, linear_frozen=False)
    start = trainer.momentum.online.linear.weight.detach().clone()
    _fit(trainer)
    assert not torch.equal(trainer.momentum.online.linear.weight, start)


def _strongly_linear_cohort() -> tuple[None, torch.Tensor, torch.Tensor, torch.Tensor]:
    """400 rows whose hazard is exp(x·beta): a linear start validates at C ≈ 0.81 on the last 60 rows."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 7, generator=g, dtype=torch.float64)
    beta = torch.tensor([1.0, -0.8, 0.6, 0.0, 0.0, 0.4, -0.5], dtype=torch.float64)
    event_time = -torch.log(torch.rand(400, generator=g, dtype=torch.float64)) / torch.exp(x @ beta)
    censor_time = -torch.log(torch.rand(400, generator=g, dtype=torch.float64)) / 0.3
    return None, x, event_time <= censor_time, torch.minimum(event_time, censor_time)


def test_the_start_is_validated_as_epoch_zero_and_can_be_kept():
    # A learning rate this large wrecks the MLP at once (validation C 0.37-0.75 over seeds 0-5), so a linear
    # start fitted to a strongly linear cohort (C 0.81) must win the validation.
    trainer = _trainer(_strongly_linear_cohort(), lr=5.0, patience=2, epochs=5)
    start_c = trainer.validation_cindex()
    assert start_c > 0.75
    _fit(trainer)
    assert trainer.best_epoch == 0 and trainer.best_metric == pytest.approx(start_c)
    assert all(record["val_cindex"] < start_c for record in trainer.history)
    # the kept weights are the untrained network: its MLP output layer is still exactly zero, the trained one not
    output = f"mlp.{len(trainer.momentum.target.mlp) - 1}.weight"
    assert torch.count_nonzero(trainer.final_target_state()[output]) == 0
    assert torch.count_nonzero(trainer.momentum.target.state_dict()[output]) > 0


@pytest.mark.parametrize(("margin", "best_epochs"), [(0.0, [1, 2, 4]), (1.0, [2, 4]), (2.0, [])])
def test_a_trained_epoch_replaces_the_start_only_when_it_beats_it_by_the_margin(rossi, margin, best_epochs,
                                                                                 monkeypatch):
    trainer = _trainer(rossi, start_margin=margin, epochs=5, patience=10)
    start_c = trainer.validation_cindex()
    # the start's standard error: the infinitesimal jackknife of Harrell's C, here against a brute-force pair loop
    se = _ij_standard_error(_start_risk(trainer), trainer.val_data.event, trainer.val_data.time)
    assert 0.01 < se < 0.1
    # the trained epochs' validation C, scripted in standard errors above the start's
    scripted = [start_c + k * se for k in (0.5, 1.5, 1.2, 1.8, 1.7)]
    real = trainer.validation_cindex
    monkeypatch.setattr(trainer, "validation_cindex",
                        lambda: real() if trainer.start_metric is None else scripted.pop(0))
    _fit(trainer)
    assert trainer.start_metric == pytest.approx(start_c)
    assert trainer.start_se == (pytest.approx(se, rel=1e-9) if margin else 0.0)  # not computed when not needed
    assert [record["epoch"] for record in trainer.history if record["best"]] == best_epochs
    assert trainer.best_epoch == (best_epochs[-1] if best_epochs else 0)
    assert trainer.best_metric == pytest.approx(start_c + (1.8 * se if best_epochs else 0.0))


def _start_risk(trainer: Trainer) -> torch.Tensor:
    """The validation risks of the untrained network (MLP output layer zero: the linear path alone)."""
    with torch.no_grad():
        return trainer.momentum.target.linear(trainer.val_data.x).squeeze(1).double()


def _ij_standard_error(risk: torch.Tensor, event: torch.Tensor, time: torch.Tensor) -> float:
    """sqrt(sum_k ((N_k - c D_k) / D)^2) by looping over all pairs (Therneau & Atkinson's concordance vignette)."""
    n = len(risk)
    num_k, den_k = [0.0] * n, [0.0] * n
    num = den = 0.0
    for i in range(n):
        for j in range(n):
            if event[i] and (time[i] < time[j] or (time[i] == time[j] and not event[j])):
                score = 1.0 if risk[i] > risk[j] else 0.5 if risk[i] == risk[j] else 0.0
                num, den = num + score, den + 1
                for k in (i, j):
                    num_k[k] += score
                    den_k[k] += 1
    c = num / den
    return math.sqrt(sum(((a - c * b) / den) ** 2 for a, b in zip(num_k, den_k)))


def test_the_start_is_scored_after_the_first_steps_and_before_an_interruption_is_saved(rossi):
    """Training starts without waiting for the epoch-0 validation; an interruption still saves it as best."""
    import os
    import signal

    from survmom.training.trainer import Interrupted

    trainer = _trainer(rossi, epochs=2)
    start_c = trainer.validation_cindex()
    start_state = {k: v.clone() for k, v in trainer.momentum.target.state_dict().items()}
    events: list[str] = []

    class InterruptAtThirdStep:
        def start_epoch(self, *args): ...
        def end_epoch(self, *args): ...

        def step(self, *args):
            events.append("step")
            if events.count("step") == 3:
                os.kill(os.getpid(), signal.SIGINT)  # the loop stops after this step, as on Ctrl-C

        def start_validated(self, cindex):
            events.append(f"start {cindex:.6f}")

    with pytest.raises(Interrupted):
        trainer.fit(2, InterruptAtThirdStep(), lambda state: None)
    assert events == ["step", "step", "step", f"start {start_c:.6f}"]
    assert trainer.best_epoch == 0 and trainer.best_metric == pytest.approx(start_c)
    for name, value in start_state.items():
        assert torch.equal(trainer.best_target[name], value)
    assert not torch.equal(trainer.momentum.target.state_dict()["mlp.0.weight"], start_state["mlp.0.weight"])


def test_resume_skips_the_starting_fit_and_keeps_the_path_frozen(rossi, monkeypatch):
    import survmom.training.trainer as train_module

    trainer = _trainer(rossi, epochs=1, start_margin=1.0)
    start = trainer.momentum.online.linear.weight.detach().clone()
    _fit(trainer)
    state = trainer.state_dict()
    assert state["progress"]["fitted_start"]
    calls = []
    monkeypatch.setattr(train_module, "fit_linear_start", lambda *a, **k: calls.append(1) or True)
    _, x, event, time = rossi
    x32 = x.float()
    resumed = Trainer(trainer.config, x.shape[1], Tensors(x32[:340], event[:340], time[:340]),
                      Tensors(x32[340:], event[340:], time[340:]), torch.device("cpu"), fit_start=False)
    resumed.load_state_dict(state)
    assert calls == [] and resumed.fitted_start
    assert resumed.start_se == trainer.start_se > 0 and resumed.start_metric == trainer.start_metric  # the margin
    assert not resumed.momentum.online.linear.weight.requires_grad
    resumed.config.epochs = 2
    _fit(resumed)
    assert torch.equal(resumed.momentum.online.linear.weight, start)


def test_a_random_start_is_not_a_candidate(rossi):
    trainer = _trainer(rossi, linear_init=False)
    assert not trainer.fitted_start
    _fit(trainer)
    assert trainer.best_epoch >= 1


def test_wide_inputs_use_fewer_rows_so_memory_stays_bounded(monkeypatch):
    import survmom.core.linear_start as module

    seen = []
    original = module.lbfgs_minimize

    def spy(objective, start, **kwargs):
        seen.append(start.numel())
        return original(objective, start, **kwargs)

    monkeypatch.setattr(module, "MAX_ENTRIES", 50_000)
    monkeypatch.setattr(module, "lbfgs_minimize", spy)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5_000, 20, generator=g)
    event, time = torch.rand(5_000, generator=g) < 0.5, torch.rand(5_000, generator=g)
    rows_used = []
    monkeypatch.setattr(module, "cox_loss", lambda log_hz, *a, **k: (rows_used.append(len(log_hz)),
                                                                       cox_loss(log_hz, *a, **k))[1])
    assert fit_linear_start(nn.Linear(20, 1), x, event, time, "cox")
    assert seen == [20] and set(rows_used) == {2_500}  # 50,000 entries / 20 features


def test_each_checkpoint_holds_the_baseline_of_its_best_target_scored_once_per_best(rossi):
    """The Breslow baseline (a pass over every training row) is computed again only when the best target
    changes; every saved one still equals a fresh computation from that checkpoint's best weights."""
    import copy

    from survmom.core.losses import breslow_baseline

    trainer = _trainer(rossi, epochs=6, patience=None, linear_init=False)
    scripted = iter([0.60, 0.70, 0.65, 0.80, 0.75, 0.80])  # validation C per epoch: best at 1, 2, 2, 4, 4, 4
    trainer.validation_cindex = lambda: next(scripted)
    train_rows = trainer.train_data.x.shape[0]
    scored_train_rows = []
    infer = trainer.infer

    def counting_infer(x, *args, **kwargs):
        if x.shape[0] == train_rows:
            scored_train_rows.append(1)
        return infer(x, *args, **kwargs)

    trainer.infer = counting_infer
    saved = []

    class Quiet:
        def start_epoch(self, *args): ...
        def step(self, *args): ...
        def end_epoch(self, *args): ...
        def start_validated(self, *args): ...

    trainer.fit(6, Quiet(), lambda state: saved.append(copy.deepcopy(state)))
    best_epochs = [state["best"]["epoch"] for state in saved]
    assert best_epochs == [1, 2, 2, 4, 4, 4]
    assert len(scored_train_rows) == 3
    data = trainer.train_data
    for state in saved:
        network = copy.deepcopy(trainer.momentum.target)
        network.load_state_dict(state["best"]["target"])
        with torch.no_grad():
            log_hz = network(data.x)[:, 0].double()
        times, cumhaz = breslow_baseline(log_hz, data.event, data.time.double())
        torch.testing.assert_close(state["prediction"]["baseline_times"], times * trainer.time_scale)
        torch.testing.assert_close(state["prediction"]["baseline_cumhaz"], cumhaz)


def test_a_linear_network_starts_at_the_penalised_fit_and_trains(rossi):
    trainer = _trainer(rossi, hidden=[])
    layer = trainer.momentum.online[-1]
    start = layer.weight.detach().clone()
    reference = _layer(7, 1).float()
    fit_linear_start(reference, trainer.train_data.x, trainer.train_data.event, trainer.train_data.time, "cox",
                     penalty=trainer.config.linear_penalty)
    assert trainer.fitted_start
    torch.testing.assert_close(start, reference.weight.detach())
    _fit(trainer)
    assert not torch.equal(layer.weight, start)  # not frozen: it is the whole network
    assert not _trainer(rossi, hidden=[], linear_init=False).fitted_start
