"""Study designs in the core: delayed entry, counting-process rows, case weights and strata.

Oracles: lifelines (CoxPHFitter with entry_col / weights_col / strata, CoxTimeVaryingFitter,
WeibullAFTFitter(entry_col=...)) on the data sets that ship with it, and a brute-force float64 loop over the
event times (its gradient by torch.autograd) for Breslow ties and every combination of the three fields.
"""

from __future__ import annotations

import copy
import math
import warnings

import numpy as np
import pytest
import torch
from lifelines import CoxPHFitter, CoxTimeVaryingFitter, WeibullAFTFitter
from lifelines.datasets import load_psychiatric_patients, load_rossi, load_stanford_heart_transplants
from torch import nn

from survmom.core.bank import MemoryBank
from survmom.core.linear_start import fit_linear_start
from survmom.core.losses import breslow_baseline, cox_loss
from survmom.core.metrics import brier_score, concordance_index, integrated_brier_score
from survmom.core.momentum import Momentum
from survmom.core.weibull import weibull_loss
from survmom.errors import ConfigError, StateError, SurvmomError

pytestmark = pytest.mark.filterwarnings("ignore")

FIELDS = ("entry", "weight", "strata")


# ------------------------------------------------------------------------------------------------ oracles
def brute_force_cox(x, event, time, entry=None, weight=None, strata=None, ties="efron"):
    """``-log partial likelihood`` (sum) by a loop over strata and event times, as lifelines writes it."""
    n = x.shape[0]
    entry = torch.full((n,), -math.inf, dtype=torch.float64) if entry is None else entry.double()
    weight = torch.ones(n, dtype=torch.float64) if weight is None else weight.double()
    strata = torch.zeros(n, dtype=torch.long) if strata is None else strata
    event, time = event.bool(), time.double()
    total = x.sum() * 0
    for s in strata.unique():
        in_s = strata == s
        for tau in time[in_s & event].unique():
            tied = in_s & event & (time == tau)
            at_risk = in_s & (entry < tau) & (time >= tau)
            risk, tie = (weight * torch.exp(x))[at_risk].sum(), (weight * torch.exp(x))[tied].sum()
            d = int(tied.sum())
            share = weight[tied].sum() / d
            if share == 0:
                continue
            fractions = [rank / d for rank in range(d)] if ties == "efron" else [0.0] * d
            total = total + share * sum(torch.log(risk - f * tie) for f in fractions) - (weight * x)[tied].sum()
    return total


def value_and_grad(fn, x):
    x = x.detach().clone().requires_grad_(True)
    value = fn(x)
    (grad,) = torch.autograd.grad(value, x) if value.requires_grad else (torch.zeros_like(x),)
    return value.detach(), grad


def fit_quietly(fitter, frame, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fitter.fit(frame, *args, **kwargs)


def tensor(values, dtype=torch.float64):
    return torch.tensor(np.asarray(values), dtype=dtype)


# ------------------------------------------------------------------------------------------------ data sets
@pytest.fixture(scope="module")
def stanford():
    """Counting-process rows (start, stop] of the Stanford heart transplant study."""
    frame = load_stanford_heart_transplants()
    return frame, ["age", "year", "surgery", "transplant"]


@pytest.fixture(scope="module")
def psychiatric():
    """Delayed entry: patients enter at their age at admission, leave at Age + T."""
    frame = load_psychiatric_patients()
    frame = frame.assign(stop=frame["Age"] + frame["T"], female=(frame["sex"] == 2).astype(float))
    return frame[["Age", "stop", "C", "female"]], ["female"]


@pytest.fixture(scope="module")
def rossi():
    frame = load_rossi().astype(float)
    rng = np.random.default_rng(0)
    return frame.assign(w_int=rng.integers(1, 4, len(frame)).astype(float),
                        w_real=rng.uniform(0.2, 3.0, len(frame))), ["fin", "age", "race", "wexp", "mar", "paro", "prio"]


def linear_predictor(frame, columns, params):
    return tensor(frame[columns].to_numpy() @ params[columns].to_numpy())


# ------------------------------------------------------------------------------- the loss against lifelines
def _check_value_and_gradient(log_hz, event, time, expected_ll, **design):
    ours, grad = value_and_grad(lambda x: cox_loss(x, event, time, reduction="sum", **design), log_hz)
    assert ours.item() == pytest.approx(-expected_ll, rel=1e-6)
    ref, ref_grad = value_and_grad(lambda x: brute_force_cox(x, event, time, **design), log_hz)
    assert ours.item() == pytest.approx(ref.item(), rel=1e-10)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-6, atol=1e-9)


def test_counting_process_loss_is_lifelines_time_varying_partial_likelihood(stanford):
    frame, columns = stanford
    ctv = fit_quietly(CoxTimeVaryingFitter(), frame, id_col="id", event_col="event", start_col="start",
                      stop_col="stop")
    _check_value_and_gradient(linear_predictor(frame, columns, ctv.params_), tensor(frame["event"], torch.bool),
                              tensor(frame["stop"]), ctv.log_likelihood_, entry=tensor(frame["start"]))


def test_delayed_entry_loss_is_lifelines_coxph_with_entry_col(psychiatric):
    frame, columns = psychiatric
    cph = fit_quietly(CoxPHFitter(), frame, "stop", "C", entry_col="Age")
    _check_value_and_gradient(linear_predictor(frame, columns, cph.params_), tensor(frame["C"], torch.bool),
                              tensor(frame["stop"]), cph.log_likelihood_, entry=tensor(frame["Age"]))


@pytest.mark.parametrize("weights", ["w_int", "w_real"])
def test_weighted_loss_is_lifelines_coxph_with_weights_col(rossi, weights):
    frame, columns = rossi
    data = frame[[*columns, "week", "arrest", weights]]
    cph = fit_quietly(CoxPHFitter(), data, "week", "arrest", weights_col=weights, robust=True)
    _check_value_and_gradient(linear_predictor(frame, columns, cph.params_), tensor(frame["arrest"], torch.bool),
                              tensor(frame["week"]), cph.log_likelihood_, weight=tensor(frame[weights]))


def test_stratified_loss_is_lifelines_coxph_with_strata(rossi):
    frame, columns = rossi
    covariates = [c for c in columns if c not in ("race", "wexp")]
    data = frame[[*covariates, "week", "arrest", "race", "wexp"]]
    cph = fit_quietly(CoxPHFitter(), data, "week", "arrest", strata=["race", "wexp"])
    strata = tensor(frame["race"] * 2 + frame["wexp"], torch.int64)
    _check_value_and_gradient(linear_predictor(frame, covariates, cph.params_),
                              tensor(frame["arrest"], torch.bool), tensor(frame["week"]), cph.log_likelihood_,
                              strata=strata)


def test_all_three_fields_at_once_are_lifelines(stanford):
    frame, _ = stanford
    rng = np.random.default_rng(1)
    data = frame.assign(w=rng.uniform(0.5, 2.0, len(frame)))
    ctv = fit_quietly(CoxTimeVaryingFitter(), data.drop(columns=["surgery"]), id_col="id", event_col="event",
                      start_col="start", stop_col="stop", weights_col="w", strata=["transplant"])
    covariates = ["age", "year"]
    _check_value_and_gradient(linear_predictor(frame, covariates, ctv.params_), tensor(frame["event"], torch.bool),
                              tensor(frame["stop"]), ctv.log_likelihood_, entry=tensor(frame["start"]),
                              weight=tensor(data["w"]), strata=tensor(frame["transplant"], torch.int64))


def _random_design(seed: int, n: int = 40):
    gen = torch.Generator().manual_seed(seed)
    time = torch.randint(1, 8, (n,), generator=gen).double()  # many ties
    entry = torch.minimum((torch.rand(n, generator=gen) * 1.3 - 0.3) * time, time - 0.5).floor()
    weight = torch.randint(0, 4, (n,), generator=gen).double() * (torch.rand(n, generator=gen) + 0.5)
    design = {"entry": entry, "weight": weight, "strata": torch.randint(0, 3, (n,), generator=gen)}
    return torch.randn(n, generator=gen, dtype=torch.float64) * 2, torch.rand(n, generator=gen) < 0.6, time, design


@pytest.mark.parametrize("ties", ["efron", "breslow"])
@pytest.mark.parametrize("fields", [("entry",), ("weight",), ("strata",), ("entry", "weight"),
                                    ("entry", "strata"), ("weight", "strata"), FIELDS])
def test_every_design_and_tie_rule_is_the_brute_force_loss_with_autograd_gradient(ties, fields):
    for seed in range(5):
        x, event, time, design = _random_design(seed)
        used = {name: design[name] for name in fields}
        ours, grad = value_and_grad(lambda v, e=event, t=time, u=used: cox_loss(v, e, t, ties, "sum", **u), x)
        ref, ref_grad = value_and_grad(
            lambda v, e=event, t=time, u=used: brute_force_cox(v, e, t, ties=ties, **u), x)
        torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(grad, ref_grad, rtol=1e-10, atol=1e-12)


def test_mean_divides_by_the_summed_weight_of_the_events():
    x, event, time, design = _random_design(7)
    total = cox_loss(x, event, time, reduction="sum", weight=design["weight"])
    mean = cox_loss(x, event, time, weight=design["weight"])
    assert mean.item() == pytest.approx(total.item() / design["weight"][event].sum().item(), rel=1e-12)


def test_integer_weights_equal_replicated_rows_with_breslow_ties():
    x, event, time, design = _random_design(3)
    weight = design["weight"].round().clamp(min=0)
    repeat = weight.long()
    replicated = cox_loss(x.repeat_interleave(repeat), event.repeat_interleave(repeat), time.repeat_interleave(repeat),
                          ties="breslow", reduction="sum")
    assert cox_loss(x, event, time, ties="breslow", reduction="sum", weight=weight).item() == pytest.approx(
        replicated.item(), rel=1e-12)


def test_cancelling_risk_sums_are_recomputed_exactly():
    """Nearly everyone at risk early entered later, with hazards e^40 above the row truly at risk."""
    n = 200
    time = torch.arange(1.0, n + 1.0)
    entry = torch.full((n,), 1.5)
    entry[0] = 0.0
    x = torch.full((n,), 40.0, dtype=torch.float64)
    x[0] = 0.0
    event = torch.ones(n, dtype=torch.bool)
    ours, grad = value_and_grad(lambda v: cox_loss(v, event, time, reduction="sum", entry=entry), x)
    ref, ref_grad = value_and_grad(lambda v: brute_force_cox(v, event, time, entry=entry), x)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=0)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("ties", ["efron", "breslow"])
def test_many_strata_with_every_cancelling_sum_recomputed_in_chunks_give_the_same_result(monkeypatch, ties):
    from survmom.core import risk_sets

    x, event, time, design = _random_design(11, n=50)
    expected = value_and_grad(lambda v: cox_loss(v, event, time, ties, "sum", **design), x)
    monkeypatch.setattr(risk_sets, "_CHUNK_ENTRIES", 1)  # also recomputes every cancelling sum one by one
    monkeypatch.setattr(risk_sets, "CANCELLATION", 0.5)
    ours = value_and_grad(lambda v: cox_loss(v, event, time, ties, "sum", **design), x)
    for a, b in zip(ours, expected, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("with_entry", [False, True])
def test_sums_restart_per_stratum_when_one_running_sum_would_cancel(monkeypatch, with_entry):
    """In each of 60 strata the last event's risk set is one row with a hazard e^-15 of its stratum's: a
    running sum over all strata would hold ~10^3 against ~10^-7 and cancel; the sums restart at each
    stratum instead (and the result is the brute-force loss)."""
    from survmom.core import risk_sets

    calls = []
    scan = risk_sets.segmented_cumsum
    monkeypatch.setattr(risk_sets, "segmented_cumsum", lambda *a, **k: calls.append(1) or scan(*a, **k))
    gen = torch.Generator().manual_seed(4)
    n = 600
    strata = torch.arange(n) % 60
    time = torch.randint(1, 30, (n,), generator=gen).double()
    time[540:] = 40.0 + torch.arange(60.0, dtype=torch.float64)  # the last row of each stratum ...
    x = torch.randn(n, generator=gen, dtype=torch.float64)
    x[540:] = -15.0  # ... with a tiny hazard
    event = torch.rand(n, generator=gen) < 0.6
    event[540:] = True
    design = {"strata": strata}
    if with_entry:
        design["entry"] = (time * torch.rand(n, generator=gen, dtype=torch.float64) * 0.8).floor() - 0.5
    ours, grad = value_and_grad(lambda v: cox_loss(v, event, time, reduction="sum", **design), x)
    ref, ref_grad = value_and_grad(lambda v: brute_force_cox(v, event, time, **design), x)
    assert len(calls) >= 2
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=0)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-9, atol=1e-12)


def test_segmented_cumsum_restarts_at_each_segment():
    from survmom.core.risk_sets import segmented_cumsum

    values = torch.arange(1.0, 8.0, dtype=torch.float64)
    segment = torch.tensor([0, 0, 0, 2, 2, 5, 5])
    assert segmented_cumsum(values, segment).tolist() == [1, 3, 6, 4, 9, 6, 13]
    assert segmented_cumsum(values, segment, reverse=True).tolist() == [6, 5, 3, 9, 5, 13, 7]


def test_bad_design_fields_are_clear_errors():
    x, event, time, design = _random_design(0, n=6)
    with pytest.raises(SurvmomError, match="entry must be before time"):
        cox_loss(x, event, time, entry=time + 1)
    with pytest.raises(SurvmomError, match="weight"):
        cox_loss(x, event, time, weight=-design["weight"] - 1)
    with pytest.raises(SurvmomError, match="strata"):
        cox_loss(x, event, time, strata=design["strata"][:3])


def test_breslow_baseline_with_entry_and_weights_is_the_weighted_nelson_aalen_of_risk_sets():
    x, event, time, design = _random_design(2, n=60)
    entry, weight = design["entry"], design["weight"]
    times, cumhaz = breslow_baseline(x, event, time, entry=entry, weight=weight)
    expected, total = [], 0.0
    for tau in time[event].unique():
        at_risk = (entry < tau) & (time >= tau)
        total += (weight[event & (time == tau)].sum() / (weight * torch.exp(x))[at_risk].sum()).item()
        expected.append(total)
    torch.testing.assert_close(times, time[event].unique())
    torch.testing.assert_close(cumhaz, torch.tensor(expected, dtype=torch.float64), rtol=1e-12, atol=0)
    _, plain = breslow_baseline(x, event, time)
    torch.testing.assert_close(breslow_baseline(x, event, time, weight=torch.ones_like(x))[1], plain, rtol=1e-13,
                               atol=0)


# ---------------------------------------------------------------------------------------- Weibull with entry
@pytest.mark.parametrize("weights", [False, True])
def test_weibull_with_entry_and_weights_is_lifelines_weibull_aft(stanford, weights):
    frame, _ = stanford
    data = frame[["start", "stop", "event", "age", "year"]]
    kwargs = {}
    if weights:
        data = data.assign(w=np.linspace(0.5, 2.0, len(frame)))
        kwargs = {"weights_col": "w"}
    aft = fit_quietly(WeibullAFTFitter(), data, "stop", "event", entry_col="start", **kwargs)
    scale = aft.params_["lambda_"]
    log_scale = tensor(scale["Intercept"] + frame[["age", "year"]].to_numpy() @ scale[["age", "year"]].to_numpy())
    log_shape = torch.full_like(log_scale, aft.params_["rho_"]["Intercept"])
    nll = weibull_loss(torch.stack([log_scale, log_shape], 1), tensor(frame["event"], torch.bool),
                       tensor(frame["stop"]), reduction="sum", entry=tensor(frame["start"]),
                       weight=tensor(data["w"]) if weights else None)
    assert nll.item() == pytest.approx(-aft.log_likelihood_, rel=1e-6)


def test_weibull_mean_divides_by_the_summed_weight_and_plain_calls_are_unchanged():
    log_params = torch.randn(10, 2, dtype=torch.float64)
    event, time = torch.rand(10) < 0.5, torch.rand(10, dtype=torch.float64) + 1.0
    weight = torch.rand(10, dtype=torch.float64)
    total = weibull_loss(log_params, event, time, "sum", weight=weight)
    assert weibull_loss(log_params, event, time, weight=weight).item() == pytest.approx(total.item() / weight.sum())
    assert torch.equal(weibull_loss(log_params, event, time, weight=torch.ones(10, dtype=torch.float64)),
                       weibull_loss(log_params, event, time))
    assert torch.equal(weibull_loss(log_params, event, time, entry=torch.zeros(10)),
                       weibull_loss(log_params, event, time))


# ------------------------------------------------------------------------------------------ the linear start
def _layer(p: int, out: int) -> nn.Linear:
    torch.manual_seed(0)
    return nn.Linear(p, out).double()


def _standardised(frame, columns):
    values = frame[columns].astype(float)
    return (values - values.mean()) / values.std()


@pytest.mark.slow
@pytest.mark.parametrize("design", ["entry", "weight", "strata"])
def test_unpenalised_linear_start_reaches_lifelines_coefficients(stanford, rossi, design):
    if design == "entry":
        frame, columns = stanford
        x_frame = _standardised(frame, columns)
        fitter = fit_quietly(CoxTimeVaryingFitter(), x_frame.assign(id=frame["id"], start=frame["start"],
                                                                      stop=frame["stop"], event=frame["event"]),
                             id_col="id", event_col="event", start_col="start", stop_col="stop")
        event, time, kwargs = tensor(frame["event"], torch.bool), tensor(frame["stop"]), {
            "entry": tensor(frame["start"])}
    else:
        frame, columns = rossi
        if design == "strata":
            columns = [c for c in columns if c != "race"]
        x_frame = _standardised(frame, columns)
        data = x_frame.assign(week=frame["week"], arrest=frame["arrest"])
        if design == "weight":
            fitter = fit_quietly(CoxPHFitter(), data.assign(w=frame["w_real"]), "week", "arrest", weights_col="w",
                                 robust=True)
            kwargs = {"weight": tensor(frame["w_real"])}
        else:
            fitter = fit_quietly(CoxPHFitter(), data.assign(race=frame["race"]), "week", "arrest", strata=["race"])
            kwargs = {"strata": tensor(frame["race"], torch.int64)}
        event, time = tensor(frame["arrest"], torch.bool), tensor(frame["week"])
    layer = _layer(len(columns), 1)
    assert fit_linear_start(layer, tensor(x_frame.to_numpy()), event, time, "cox", penalty=0.0, **kwargs)
    np.testing.assert_allclose(layer.weight.detach()[0].numpy(), fitter.params_[columns].to_numpy(), atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("weights", [False, True])
def test_unpenalised_weibull_start_with_entry_reaches_lifelines_weibull_aft(stanford, weights):
    frame, _ = stanford
    columns = ["age", "year"]
    x_frame = _standardised(frame, columns)
    data = x_frame.assign(start=frame["start"], stop=frame["stop"], event=frame["event"])
    kwargs, design = {}, {"entry": tensor(frame["start"])}
    if weights:
        data = data.assign(w=np.linspace(0.5, 2.0, len(frame)))
        kwargs, design["weight"] = {"weights_col": "w"}, tensor(data["w"])
    aft = fit_quietly(WeibullAFTFitter(), data, "stop", "event", entry_col="start", **kwargs)
    layer = _layer(2, 2)
    with torch.no_grad():
        layer.bias.copy_(torch.tensor([4.0, 0.0], dtype=torch.float64))
    assert fit_linear_start(layer, tensor(x_frame.to_numpy()), tensor(frame["event"], torch.bool),
                            tensor(frame["stop"]), "weibull", penalty=0.0, **design)
    scale = aft.params_["lambda_"]
    np.testing.assert_allclose(layer.weight.detach()[0].numpy(), scale[columns].to_numpy(), atol=1e-4)
    assert layer.bias[0].item() == pytest.approx(scale["Intercept"], abs=1e-4)
    assert layer.bias[1].item() == pytest.approx(aft.params_["rho_"]["Intercept"], abs=1e-4)


# ----------------------------------------------------------------------------------- the bank and Momentum
def _mlp(out: int = 1) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, out))


def _design_batches(n_batches: int, size: int, fields, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    for _ in range(n_batches):
        x = torch.randn(size, 6, generator=gen)
        event = torch.rand(size, generator=gen) < 0.7
        time = torch.randint(2, 12, (size,), generator=gen).double()  # tied times within and across batches
        design = {"entry": (torch.rand(size, generator=gen) * time * 0.8).floor(),
                  "weight": torch.rand(size, generator=gen).double() * 2,
                  "strata": torch.randint(0, 3, (size,), generator=gen)}
        yield x, event, time, {name: design[name] for name in fields}


@pytest.mark.parametrize("ties", ["efron", "breslow"])
@pytest.mark.parametrize("fields", [("entry",), ("weight",), ("strata",), FIELDS])
def test_pooled_loss_is_the_one_batch_loss_of_bank_plus_batch_rows(fields, ties):
    flags = {name: True for name in fields}
    model = Momentum(_mlp(), "cox", 8, 3, rate=0.5, ties=ties, **flags)
    batches = list(_design_batches(5, 8, fields))
    for x, e, t, design in batches[:4]:
        model(x, e, t, **design)
    assert model.bank.is_full
    estimates, events, times = (v.clone() for v in model.bank.contents())
    bank_design = {name: value.clone() for name, value in model.bank.design_contents()._asdict().items()
                   if value is not None}
    x, e, t, design = batches[4]
    reference = copy.deepcopy(model.online)
    loss = model(x, e, t, **design)
    pooled = {name: torch.cat([bank_design[name], design[name].to(bank_design[name])]) for name in fields}
    expected = cox_loss(torch.cat([estimates[:, 0], reference(x)[:, 0]]), torch.cat([events, e]),
                        torch.cat([times, t]), ties=ties, **pooled)
    torch.testing.assert_close(loss, expected.to(loss.dtype), rtol=1e-6, atol=1e-7)
    loss.backward()
    expected.backward()
    for ours, theirs in zip(model.online.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(ours.grad, theirs.grad, rtol=1e-5, atol=1e-7)


def test_weibull_momentum_takes_entry_and_weights_in_its_batch_loss():
    model = Momentum(_mlp(2), "weibull", 8, 2, entry=True, weight=True)
    x, e, t, design = next(_design_batches(1, 8, ("entry", "weight")))
    reference = copy.deepcopy(model.online)
    loss = model(x, e, t, **design)
    torch.testing.assert_close(loss, weibull_loss(reference(x), e, t, **design))


def test_design_fields_must_match_the_constructor_flags():
    model = Momentum(_mlp(), "cox", 8, 2, weight=True)
    x, e, t, design = next(_design_batches(1, 8, FIELDS))
    with pytest.raises(SurvmomError, match=r"keeps the design fields \(weight\), got \(none\)"):
        model(x, e, t)
    with pytest.raises(SurvmomError, match=r"got \(entry, weight\)"):
        model(x, e, t, entry=design["entry"], weight=design["weight"])
    with pytest.raises(ConfigError, match="strata"):
        Momentum(_mlp(2), "weibull", 8, 2, strata=True)
    with pytest.raises(ConfigError, match="callable"):
        Momentum(_mlp(), lambda *a: a[0].sum(), 8, 2, entry=True)


def test_bank_state_dict_round_trip_keeps_the_design_fields_and_plain_keys_are_unchanged():
    plain = MemoryBank(6, 1)
    assert set(plain.state_dict()) == {"estimates", "events", "times", "order_keys", "order_values",
                                       "order_events", "order_seq", "_extra_state"}
    assert set(Momentum(_mlp(), "cox", 8, 2).state_dict()) == set(Momentum(_mlp(), "cox", 8, 2).state_dict())
    model = Momentum(_mlp(), "cox", 8, 2, entry=True, weight=True, strata=True)
    for x, e, t, design in _design_batches(3, 8, FIELDS):
        model(x, e, t, **design)
    state = model.state_dict()
    assert {"bank.entries", "bank.weights", "bank.strata"} <= set(state)
    restored = Momentum(_mlp(), "cox", 8, 2, entry=True, weight=True, strata=True)
    restored.load_state_dict(state)
    for ours, theirs in zip(model.bank.design_by_time(), restored.bank.design_by_time(), strict=True):
        assert torch.equal(ours, theirs)
    x, e, t, design = next(_design_batches(1, 8, FIELDS, seed=5))
    assert torch.equal(model(x, e, t, **design), restored(x, e, t, **design))
    with pytest.raises(StateError):
        Momentum(_mlp(), "cox", 8, 2).load_state_dict(state)


def test_a_plain_momentum_state_dict_has_no_design_buffers():
    keys = set(Momentum(_mlp(), "cox", 8, 2).state_dict())
    assert not any(name in key for key in keys for name in ("entries", "weights", "bank.strata"))


# ------------------------------------------------------------------------------------------------- metrics
def brute_force_concordance(risk, event, time, entry=None, weight=None):
    n = len(risk)
    entry = [-math.inf] * n if entry is None else entry.tolist()
    weight = [1.0] * n if weight is None else weight.tolist()
    num = den = 0.0
    for i in range(n):
        for j in range(n):
            at_risk = entry[j] < time[i] and (time[j] > time[i] or (time[j] == time[i] and not event[j]))
            if i != j and event[i] and at_risk:
                den += weight[i] * weight[j]
                num += weight[i] * weight[j] * (1.0 if risk[i] > risk[j] else 0.5 if risk[i] == risk[j] else 0.0)
    return num / den


def _metric_data(seed: int, n: int = 60):
    _, event, time, design = _random_design(seed, n)
    risk = torch.randint(0, 6, (n,), generator=torch.Generator().manual_seed(seed)).double()  # tied risks
    return risk, event, time, design["entry"], design["weight"].round()


@pytest.mark.parametrize("seed", range(4))
def test_entry_and_weighted_concordance_are_the_brute_force_pair_count(seed):
    risk, event, time, entry, weight = _metric_data(seed)
    for kwargs in ({"entry": entry}, {"weight": weight}, {"entry": entry, "weight": weight}):
        assert concordance_index(risk, event, time, **kwargs) == pytest.approx(
            brute_force_concordance(risk, event, time, **kwargs), abs=1e-12)


def test_integer_weighted_concordance_equals_replicated_rows_and_plain_calls_are_unchanged():
    risk, event, time, entry, weight = _metric_data(9, 80)
    repeat = weight.long()
    replicated = [v.repeat_interleave(repeat) for v in (risk, event, time, entry)]
    assert concordance_index(risk, event, time, weight=weight) == concordance_index(*replicated[:3])
    assert concordance_index(risk, event, time, entry=entry, weight=weight) == pytest.approx(
        concordance_index(*replicated[:3], entry=replicated[3]), abs=1e-14)
    assert concordance_index(risk, event, time, weight=torch.ones_like(risk)) == pytest.approx(
        concordance_index(risk, event, time), abs=1e-14)


def test_weighted_brier_score_equals_replicated_test_and_training_rows():
    gen = torch.Generator().manual_seed(0)
    n = 70
    time = torch.rand(n, generator=gen, dtype=torch.float64) * 10 + 0.1
    event = torch.rand(n, generator=gen) < 0.6
    weight = torch.randint(0, 4, (n,), generator=gen).double()
    weight[time.argmax()] = 1.0  # keep the follow-up's end
    times = torch.tensor([2.0, 4.0, 6.0], dtype=torch.float64)
    surv = torch.exp(-times[None, :] * torch.rand(n, 1, generator=gen, dtype=torch.float64) / 5)
    repeat = weight.long()
    rep_surv, rep_event, rep_time = (v.repeat_interleave(repeat, dim=0) for v in (surv, event, time))
    ours = brier_score(surv, event, time, event, time, times, weight=weight, train_weight=weight)
    torch.testing.assert_close(ours, brier_score(rep_surv, rep_event, rep_time, rep_event, rep_time, times),
                               rtol=1e-12, atol=1e-14)
    assert integrated_brier_score(surv, event, time, event, time, times, weight=weight,
                                  train_weight=weight) == pytest.approx(
        integrated_brier_score(rep_surv, rep_event, rep_time, rep_event, rep_time, times), rel=1e-12)
    plain = brier_score(surv, event, time, event, time, times)
    assert torch.equal(plain, brier_score(surv, event, time, event, time, times, weight=None))
