"""Specification tests for survmom.core.losses, checked against lifelines, torchsurv and hand-computed cases."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from lifelines import CoxPHFitter, WeibullAFTFitter
from lifelines.datasets import load_rossi
from sksurv.datasets import load_gbsg2, load_whas500

with warnings.catch_warnings():  # torchsurv's import uses the deprecated torch.jit.script
    warnings.simplefilter("ignore", DeprecationWarning)
    from torchsurv.loss.cox import neg_partial_log_likelihood as torchsurv_nll

from survmom.core.losses import (
    breslow_baseline,
    cox_loss,
    cox_median,
    cox_survival,
    weibull_loss,
    weibull_median,
    weibull_survival,
)
from survmom.errors import SurvmomError

pytestmark = pytest.mark.filterwarnings("ignore:Ties in `time` detected")

# ------------------------------------------------------------------------------------------------ data sets


def _standardised(frame: pd.DataFrame) -> pd.DataFrame:
    encoded = pd.get_dummies(frame, drop_first=True, dtype=float)
    return (encoded - encoded.mean()) / encoded.std()


def _load(name: str) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Covariates (numeric), time and event of a data set shipped with lifelines or scikit-survival."""
    if name == "rossi":
        frame = load_rossi()
        return (
            frame.drop(columns=["week", "arrest"]).astype(float),
            frame["week"].to_numpy(float),
            frame["arrest"].to_numpy(bool),
        )
    x, y = {"gbsg2": load_gbsg2, "whas500": load_whas500}[name]()
    event_field, time_field = y.dtype.names
    return _standardised(x), y[time_field].astype(float), y[event_field].astype(bool)


class CoxFit:
    """A lifelines Cox model fitted on one data set, with our inputs derived from it."""

    def __init__(self, name: str) -> None:
        covariates, time, event = _load(name)
        frame = covariates.assign(T=time, E=event)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.cph = CoxPHFitter().fit(frame, "T", "E")
        self.covariates = covariates
        x = covariates.to_numpy(float)
        beta = self.cph.params_[covariates.columns].to_numpy()
        self.log_hz = torch.tensor(x @ beta)
        # lifelines' baseline is at the mean covariate: its partial hazards use (x - mean) @ beta.
        self.centred_log_hz = torch.tensor((x - x.mean(0)) @ beta)
        self.time = torch.tensor(time)
        self.event = torch.tensor(event)


@pytest.fixture(scope="module", params=["rossi", "gbsg2", "whas500"])
def cox_fit(request: pytest.FixtureRequest) -> CoxFit:
    return CoxFit(request.param)


class WeibullFit:
    """A lifelines Weibull AFT model fitted on rossi: ``lambda_`` gives log scale, ``rho_`` log shape."""

    def __init__(self) -> None:
        covariates, time, event = _load("rossi")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.aft = WeibullAFTFitter().fit(covariates.assign(T=time, E=event), "T", "E")
        scale = self.aft.params_["lambda_"]
        log_scale = covariates.to_numpy(float) @ scale[covariates.columns].to_numpy() + scale["Intercept"]
        log_shape = np.full(len(covariates), self.aft.params_["rho_"]["Intercept"])
        self.log_params = torch.tensor(np.stack([log_scale, log_shape], axis=1))
        self.covariates = covariates
        self.time = torch.tensor(time)
        self.event = torch.tensor(event)


@pytest.fixture(scope="module")
def weibull_fit() -> WeibullFit:
    return WeibullFit()


def _tied_data(seed: int, n: int = 300) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random float64 log hazards, ~60% events, integer times in 0..11 (many ties)."""
    g = torch.Generator().manual_seed(seed)
    log_hz = torch.randn(n, generator=g, dtype=torch.float64)
    event = torch.rand(n, generator=g) < 0.6
    time = torch.randint(0, 12, (n,), generator=g).to(torch.float64)
    return log_hz, event, time


# ---------------------------------------------------------------------------------- Cox loss vs oracles


def test_cox_efron_equals_lifelines_partial_log_likelihood(cox_fit: CoxFit) -> None:
    loss = cox_loss(cox_fit.log_hz, cox_fit.event, cox_fit.time, ties="efron", reduction="sum")
    assert -loss.item() == pytest.approx(cox_fit.cph.log_likelihood_, rel=1e-6)


def test_cox_mean_divides_the_sum_by_the_number_of_events(cox_fit: CoxFit) -> None:
    total = cox_loss(cox_fit.log_hz, cox_fit.event, cox_fit.time, reduction="sum")
    mean = cox_loss(cox_fit.log_hz, cox_fit.event, cox_fit.time, reduction="mean")
    assert mean.item() == pytest.approx(total.item() / int(cox_fit.event.sum()), rel=1e-12)


@pytest.mark.parametrize("ties", ["efron", "breslow"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cox_value_and_gradient_equal_torchsurv(ties: str, seed: int) -> None:
    log_hz, event, time = _tied_data(seed)
    ours = log_hz.clone().requires_grad_(True)
    loss = cox_loss(ours, event, time, ties=ties, reduction="sum")
    loss.backward()
    theirs = log_hz.float().requires_grad_(True)  # torchsurv computes in float32
    expected = torchsurv_nll(theirs, event, time.float(), ties_method=ties, reduction="sum")
    expected.backward()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    torch.testing.assert_close(ours.grad, theirs.grad.double(), rtol=1e-4, atol=1e-5)


def test_cox_without_ties_efron_equals_breslow() -> None:
    g = torch.Generator().manual_seed(3)
    log_hz, time = torch.randn(50, generator=g), torch.randperm(50, generator=g).float()
    event = torch.rand(50, generator=g) < 0.5
    efron = cox_loss(log_hz, event, time, ties="efron")
    assert efron.item() == pytest.approx(cox_loss(log_hz, event, time, ties="breslow").item(), rel=1e-12)


@pytest.mark.parametrize("ties", ["efron", "breslow"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_cox_gradient_passes_gradcheck(ties: str, reduction: str) -> None:
    log_hz, event, time = _tied_data(4, n=40)
    log_hz.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: cox_loss(x, event, time, ties, reduction), (log_hz,))


class _LogcumsumexpCalls:
    """Counts calls of torch.logcumsumexp, the risk sums' fallback when max-shifted sums would underflow."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        original = torch.logcumsumexp

        def counted(*args, **kwargs):
            self.calls += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(torch, "logcumsumexp", counted)


@pytest.mark.parametrize("ties", ["efron", "breslow"])
def test_cox_gradient_passes_gradcheck_where_the_risk_sums_need_logcumsumexp(ties: str, monkeypatch) -> None:
    log_hz, event, time = _tied_data(5, n=40)
    log_hz = (log_hz * 400).requires_grad_(True)  # spread over ~2000 nats
    spy = _LogcumsumexpCalls(monkeypatch)
    assert torch.autograd.gradcheck(lambda x: cox_loss(x, event, time, ties, "sum"), (log_hz,))
    assert spy.calls > 0


# ------------------------------------------------------------------------------- Cox loss, hand computed


def _example() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Four samples: two die at time 2, one is censored at 3, one dies at 5."""
    log_hz = torch.tensor([0.5, -0.2, 0.1, 0.0], dtype=torch.float64)
    return log_hz, torch.tensor([True, True, False, True]), torch.tensor([2.0, 2.0, 3.0, 5.0])


def test_cox_efron_hand_computed() -> None:
    log_hz, event, time = _example()
    risk = math.exp(0.5) + math.exp(-0.2) + math.exp(0.1) + 1.0
    tied = math.exp(0.5) + math.exp(-0.2)
    # t=2: log R + log(R - D/2) - (0.5 - 0.2);  t=5: log 1 - 0.
    expected = math.log(risk) + math.log(risk - tied / 2) - 0.3
    total = cox_loss(log_hz, event, time, ties="efron", reduction="sum").item()
    assert total == pytest.approx(expected, rel=1e-12)
    assert cox_loss(log_hz, event, time, ties="efron").item() == pytest.approx(expected / 3, rel=1e-12)


def test_cox_breslow_hand_computed() -> None:
    log_hz, event, time = _example()
    risk = math.exp(0.5) + math.exp(-0.2) + math.exp(0.1) + 1.0
    expected = 2 * math.log(risk) - 0.3
    total = cox_loss(log_hz, event, time, ties="breslow", reduction="sum").item()
    assert total == pytest.approx(expected, rel=1e-12)


def test_cox_efron_three_tied_events_hand_computed() -> None:
    log_hz = torch.tensor([1.0, 0.0, -1.0, 2.0], dtype=torch.float64)
    event = torch.tensor([1, 1, 1, 0])
    time = torch.tensor([4, 4, 4, 9])
    risk, tied = sum(math.exp(v) for v in (1.0, 0.0, -1.0, 2.0)), sum(math.exp(v) for v in (1.0, 0.0, -1.0))
    expected = sum(math.log(risk - rank / 3 * tied) for rank in range(3))
    assert cox_loss(log_hz, event, time, reduction="sum").item() == pytest.approx(expected, rel=1e-12)


def test_cox_gradient_hand_computed_without_ties() -> None:
    # d(-l)/dx_j = sum_{k: j at risk at t_k} e_j / R_k - delta_j.
    log_hz = torch.tensor([0.3, -0.4, 0.8], dtype=torch.float64, requires_grad=True)
    event, time = torch.tensor([True, True, False]), torch.tensor([1.0, 2.0, 3.0])
    cox_loss(log_hz, event, time, reduction="sum").backward()
    e = [math.exp(0.3), math.exp(-0.4), math.exp(0.8)]
    r1, r2 = sum(e), e[1] + e[2]
    expected = [e[0] / r1 - 1, e[1] / r1 + e[1] / r2 - 1, e[2] / r1 + e[2] / r2]
    torch.testing.assert_close(log_hz.grad, torch.tensor(expected, dtype=torch.float64))


# -------------------------------------------------------------------------------- Cox loss, degenerate


@pytest.mark.parametrize("ties", ["efron", "breslow"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_cox_without_events_is_an_attached_zero_with_zero_gradient(ties: str, reduction: str) -> None:
    log_hz = torch.tensor([0.1, math.inf, -2.0], requires_grad=True)
    loss = cox_loss(log_hz, torch.zeros(3, dtype=torch.bool), torch.tensor([1.0, 2.0, 3.0]), ties, reduction)
    assert loss.item() == 0.0
    assert loss.requires_grad
    loss.backward()
    assert torch.equal(log_hz.grad, torch.zeros(3))


def test_cox_of_empty_input_is_zero() -> None:
    empty = torch.zeros(0)
    assert cox_loss(empty, empty.bool(), empty).item() == 0.0


@pytest.mark.parametrize("ties", ["efron", "breslow"])
def test_cox_single_sample_has_zero_loss_and_gradient(ties: str) -> None:
    log_hz = torch.tensor([3.7], requires_grad=True)
    loss = cox_loss(log_hz, torch.tensor([True]), torch.tensor([5.0]), ties=ties)
    loss.backward()
    assert loss.item() == 0.0
    assert log_hz.grad.tolist() == [0.0]


def test_cox_all_times_tied() -> None:
    log_hz = torch.tensor([0.2, -1.0, 0.7, 0.0, 1.5], dtype=torch.float64)
    event = torch.tensor([True, False, True, True, False])
    time = torch.full((5,), 7.0)
    risk = sum(math.exp(v) for v in log_hz.tolist())
    tied = sum(math.exp(v) for v in (0.2, 0.7, 0.0))
    x_events = 0.2 + 0.7 + 0.0
    breslow = 3 * math.log(risk) - x_events
    efron = sum(math.log(risk - rank / 3 * tied) for rank in range(3)) - x_events
    assert cox_loss(log_hz, event, time, "breslow", "sum").item() == pytest.approx(breslow, rel=1e-12)
    assert cox_loss(log_hz, event, time, "efron", "sum").item() == pytest.approx(efron, rel=1e-12)


@pytest.mark.parametrize("ties", ["efron", "breslow"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cox_extreme_log_hazards_use_the_logcumsumexp_path_and_stay_finite(
    ties: str, dtype: torch.dtype, monkeypatch
) -> None:
    log_hz = torch.tensor([1e4, -1e4, 0.0, -1e4, 1e4, 5.0], dtype=dtype, requires_grad=True)
    event = torch.tensor([True, True, False, True, True, True])
    time = torch.tensor([1.0, 8.0, 3.0, 3.0, 1.0, 9.0])
    spy = _LogcumsumexpCalls(monkeypatch)
    loss = cox_loss(log_hz, event, time, ties=ties, reduction="sum")
    assert spy.calls == 1  # the shifted sums underflow
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(log_hz.grad).all()
    # Risk sets: t=1 all six, t=3 {-1e4, 0, -1e4, 5}, t=8 {-1e4, 5}, t=9 {5}; terms e^-1e4 vanish.
    log_risk = [1e4 + math.log(2.0), 5.0 + math.log1p(math.exp(-5.0)), 5.0, 5.0]
    # Efron at t=1: log R + log(R - D/2) with D = 2 e^1e4, so R - D/2 = e^1e4 (1 + e^-9995 + ...).
    first_time = 2 * log_risk[0] if ties == "breslow" else log_risk[0] + 1e4
    expected = first_time + sum(log_risk[1:]) - 5.0  # sum of event log hazards: 1e4 + 1e4 - 1e4 - 1e4 + 5
    assert loss.item() == pytest.approx(expected, rel=1e-6 if dtype == torch.float32 else 1e-13)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cox_returns_the_input_dtype(dtype: torch.dtype) -> None:
    log_hz, event, time = _tied_data(6, n=30)
    log_hz = log_hz.to(dtype).requires_grad_(True)
    loss = cox_loss(log_hz, event, time)
    loss.backward()
    assert loss.dtype == dtype and log_hz.grad.dtype == dtype


def test_cox_accepts_a_column_of_log_hazards() -> None:
    log_hz, event, time = _tied_data(7, n=30)
    column = log_hz[:, None].clone().requires_grad_(True)
    loss = cox_loss(column, event, time)
    loss.backward()
    assert loss.item() == pytest.approx(cox_loss(log_hz, event, time).item(), rel=1e-14)
    assert column.grad.shape == (30, 1)


def test_cox_event_and_time_dtypes_do_not_change_the_value() -> None:
    log_hz, event, time = _tied_data(8, n=60)
    time = time - 5.0  # negative times are fine: only order matters
    reference = cox_loss(log_hz, event, time).item()
    for ev, t in [(event.double(), time), (event.long(), time.float()), (event, time.long())]:
        assert cox_loss(log_hz, ev, t).item() == pytest.approx(reference, rel=1e-14)


def test_cox_minus_zero_and_zero_are_one_time() -> None:
    log_hz = torch.tensor([0.3, -0.1, 0.5])
    event = torch.tensor([True, True, False])
    assert cox_loss(log_hz, event, torch.tensor([-0.0, 0.0, 1.0])).item() == pytest.approx(
        cox_loss(log_hz, event, torch.tensor([0.0, 0.0, 1.0])).item()
    )


def test_cox_large_n_equals_torchsurv() -> None:
    g = torch.Generator().manual_seed(9)
    log_hz = torch.randn(12_000, generator=g)
    event, time = torch.rand(12_000, generator=g) < 0.5, torch.randint(0, 400, (12_000,), generator=g).float()
    expected = torchsurv_nll(log_hz, event, time, ties_method="efron", reduction="sum")
    assert cox_loss(log_hz, event, time, reduction="sum").item() == pytest.approx(expected.item(), rel=1e-5)


# --------------------------------------------------------------------------------------- validation


def test_cox_rejects_an_unknown_ties_method() -> None:
    log_hz, event, time = _example()
    with pytest.raises(SurvmomError, match="ties must be one of 'efron', 'breslow', got 'exact'"):
        cox_loss(log_hz, event, time, ties="exact")


def test_losses_reject_an_unknown_reduction() -> None:
    log_hz, event, time = _example()
    with pytest.raises(SurvmomError, match="reduction"):
        cox_loss(log_hz, event, time, reduction="none")
    with pytest.raises(SurvmomError, match="reduction"):
        weibull_loss(log_hz, event, time, reduction="none")


def test_cox_rejects_mismatched_lengths() -> None:
    log_hz, event, time = _example()
    with pytest.raises(SurvmomError, match=r"time must have shape \(4,\) to match log_hz with 4 rows"):
        cox_loss(log_hz, event, time[:3])
    with pytest.raises(SurvmomError, match="event must have shape"):
        cox_loss(log_hz, event[:, None], time)


def test_cox_rejects_bad_log_hazard_shapes_and_dtypes() -> None:
    _, event, time = _example()
    with pytest.raises(SurvmomError, match=r"log_hz must have shape \(n,\) or \(n, 1\)"):
        cox_loss(torch.zeros(4, 2), event, time)
    with pytest.raises(SurvmomError, match="floating point"):
        cox_loss(torch.zeros(4, dtype=torch.long), event, time)


def test_weibull_rejects_bad_parameter_shapes() -> None:
    _, event, time = _example()
    with pytest.raises(SurvmomError, match=r"log_params must have shape \(n, 2\), \(n, 1\) or \(n,\)"):
        weibull_loss(torch.zeros(4, 3), event, time)
    with pytest.raises(SurvmomError, match="to match log_params with 3 rows"):
        weibull_loss(torch.zeros(3, 2), event, time)


# ----------------------------------------------------------------------- Breslow baseline and Cox survival


def test_breslow_baseline_equals_lifelines(cox_fit: CoxFit) -> None:
    times, cumhaz = breslow_baseline(cox_fit.centred_log_hz, cox_fit.event, cox_fit.time)
    expected = cox_fit.cph.baseline_cumulative_hazard_.iloc[:, 0]
    assert torch.equal(times, torch.tensor(np.unique(cox_fit.time[cox_fit.event].numpy())))
    np.testing.assert_allclose(cumhaz.numpy(), expected.loc[times.numpy()].to_numpy(), rtol=1e-6)


def test_breslow_baseline_hand_computed() -> None:
    log_hz, event, time = _example()
    times, cumhaz = breslow_baseline(log_hz, event, time)
    risk_2 = math.exp(0.5) + math.exp(-0.2) + math.exp(0.1) + 1.0
    assert times.tolist() == [2.0, 5.0]
    torch.testing.assert_close(cumhaz, torch.tensor([2 / risk_2, 2 / risk_2 + 1.0], dtype=torch.float64))


def test_breslow_baseline_without_events_is_empty() -> None:
    times, cumhaz = breslow_baseline(torch.zeros(3), torch.zeros(3, dtype=torch.bool), torch.ones(3))
    assert times.shape == (0,) and cumhaz.shape == (0,)
    assert cox_survival(torch.zeros(2), times, cumhaz, torch.tensor([1.0, 2.0])).tolist() == [[1.0, 1.0]] * 2
    assert cox_median(torch.zeros(2), times, cumhaz).tolist() == [math.inf, math.inf]


def test_cox_survival_equals_lifelines(cox_fit: CoxFit) -> None:
    times, cumhaz = breslow_baseline(cox_fit.centred_log_hz, cox_fit.event, cox_fit.time)
    expected = cox_fit.cph.predict_survival_function(cox_fit.covariates.iloc[:6])  # (all times, rows)
    at = torch.tensor(expected.index.to_numpy(float))
    ours = cox_survival(cox_fit.centred_log_hz[:6], times, cumhaz, at)
    np.testing.assert_allclose(ours.numpy(), expected.to_numpy().T, rtol=1e-6, atol=1e-12)


def test_cox_median_equals_lifelines(cox_fit: CoxFit) -> None:
    times, cumhaz = breslow_baseline(cox_fit.centred_log_hz, cox_fit.event, cox_fit.time)
    expected = cox_fit.cph.predict_median(cox_fit.covariates.iloc[:40]).to_numpy(float)
    np.testing.assert_array_equal(cox_median(cox_fit.centred_log_hz[:40], times, cumhaz).numpy(), expected)


def test_cox_survival_is_a_right_continuous_step_function() -> None:
    times, cumhaz = torch.tensor([2.0, 5.0]), torch.tensor([0.5, 1.5])
    at = torch.tensor([0.0, 1.999, 2.0, 4.0, 5.0, 100.0])
    survival = cox_survival(torch.tensor([0.0, math.log(2.0)]), times, cumhaz, at)
    h0 = torch.tensor([0.0, 0.0, 0.5, 0.5, 1.5, 1.5])
    torch.testing.assert_close(survival, torch.stack([torch.exp(-h0), torch.exp(-2 * h0)]))


def test_paired_survival_is_each_row_at_its_own_time() -> None:
    times, cumhaz = torch.tensor([2.0, 5.0]), torch.tensor([0.5, 1.5])
    log_hz = torch.tensor([0.0, math.log(2.0), -1.0, 0.3], dtype=torch.float64)
    own = torch.tensor([1.0, 2.0, 4.0, 100.0], dtype=torch.float64)
    paired = cox_survival(log_hz, times, cumhaz, own, paired=True)
    torch.testing.assert_close(paired, cox_survival(log_hz, times, cumhaz, own).diagonal())
    torch.testing.assert_close(paired[:2], torch.tensor([1.0, math.exp(-1.0)], dtype=torch.float64))
    log_params = torch.tensor([[1.0, 0.5], [2.0, -0.3], [0.0, 0.0], [3.0, 1.0]], dtype=torch.float64)
    torch.testing.assert_close(weibull_survival(log_params, own, paired=True),
                               weibull_survival(log_params, own).diagonal())
    with pytest.raises(SurvmomError, match="one time per row"):
        cox_survival(log_hz, times, cumhaz, own[:3], paired=True)
    with pytest.raises(SurvmomError, match="one time per row"):
        weibull_survival(log_params, own[:3], paired=True)


def test_cox_median_is_the_first_time_at_or_below_one_half() -> None:
    times, cumhaz = torch.tensor([2.0, 5.0, 9.0]), torch.tensor([0.2, 0.6, 0.8])
    # S = exp(-H0 e^x) <= 0.5 iff H0 e^x >= ln 2 = 0.693.
    medians = cox_median(torch.tensor([0.0, math.log(2.0), math.log(4.0), -2.0]), times, cumhaz)
    assert medians.tolist() == [9.0, 5.0, 2.0, math.inf]


# --------------------------------------------------------------------------------------------- Weibull


def test_weibull_loss_equals_lifelines_log_likelihood(weibull_fit: WeibullFit) -> None:
    fit = weibull_fit
    loss = weibull_loss(fit.log_params, fit.event, fit.time, reduction="sum")
    assert -loss.item() == pytest.approx(fit.aft.log_likelihood_, rel=1e-6)
    mean = weibull_loss(fit.log_params, fit.event, fit.time).item()
    assert mean == pytest.approx(loss.item() / len(fit.time), rel=1e-12)


def test_weibull_survival_and_median_equal_lifelines(weibull_fit: WeibullFit) -> None:
    rows, log_params = weibull_fit.covariates.iloc[:8], weibull_fit.log_params[:8]
    at = [1.0, 10.0, 26.5, 52.0, 200.0]
    expected = weibull_fit.aft.predict_survival_function(rows, times=at).to_numpy().T
    np.testing.assert_allclose(weibull_survival(log_params, torch.tensor(at)).numpy(), expected, rtol=1e-9)
    expected_median = weibull_fit.aft.predict_median(rows).to_numpy()
    np.testing.assert_allclose(weibull_median(log_params).numpy(), expected_median, rtol=1e-9)


def test_weibull_loss_hand_computed() -> None:
    lam, rho, t = 3.0, 1.5, 2.0
    log_params = torch.tensor([[math.log(lam), math.log(rho)]] * 2, dtype=torch.float64)
    event, time = torch.tensor([True, False]), torch.tensor([t, t])
    cumhaz = (t / lam) ** rho
    log_hazard = math.log(rho / lam) + (rho - 1) * math.log(t / lam)
    expected = (cumhaz - log_hazard) + cumhaz
    assert weibull_loss(log_params, event, time, reduction="sum").item() == pytest.approx(expected, rel=1e-12)


def test_weibull_with_one_parameter_is_exponential() -> None:
    log_scale = torch.tensor([0.0, math.log(4.0)], dtype=torch.float64)
    event, time = torch.tensor([True, False]), torch.tensor([2.0, 2.0])
    expected = (2.0 - 0.0) + 0.5  # t/lambda - delta log(1/lambda)
    for params in (log_scale, log_scale[:, None]):
        assert weibull_loss(params, event, time, reduction="sum").item() == pytest.approx(expected, rel=1e-12)
    torch.testing.assert_close(weibull_median(log_scale), torch.exp(log_scale) * math.log(2.0))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_weibull_loss_stays_finite_for_extreme_parameters(dtype: torch.dtype) -> None:
    grid = torch.tensor([-50.0, 0.0, 50.0])
    log_params = torch.cartesian_prod(grid, grid).to(dtype).repeat(2, 1).requires_grad_(True)
    event = torch.tensor([True, False]).repeat_interleave(9)
    time = torch.tensor([1e-3, 1.0, 1e4, 0.0, 5.0, 7.0]).repeat(3).to(dtype)
    for reduction in ("mean", "sum"):
        loss = weibull_loss(log_params, event, time, reduction=reduction)
        (grad,) = torch.autograd.grad(loss, log_params)
        assert loss.dtype == dtype and torch.isfinite(loss) and torch.isfinite(grad).all()


def test_weibull_survival_is_one_at_time_zero_and_decreasing() -> None:
    log_params = torch.tensor([[1.0, 0.5], [2.0, -0.3]])
    survival = weibull_survival(log_params, torch.tensor([0.0, 0.5, 3.0, 50.0]))
    assert survival.shape == (2, 4)
    assert survival[:, 0].tolist() == [1.0, 1.0]
    assert bool((survival[:, 1:] < survival[:, :-1]).all())


def test_weibull_of_empty_input_is_zero() -> None:
    assert weibull_loss(torch.zeros(0, 2), torch.zeros(0), torch.zeros(0)).item() == 0.0


def test_presorted_order_from_a_merge_gives_the_same_loss_as_sorting() -> None:
    from survmom.core.sorting import descending_time_key, merge_order, merge_runs

    gen = torch.Generator().manual_seed(5)
    time = torch.randint(0, 30, (300,), generator=gen).double()
    event = torch.rand(300, generator=gen) < 0.6
    log_hz = torch.randn(300, generator=gen, dtype=torch.float64, requires_grad=True)
    key_a, order_a = torch.sort(descending_time_key(time[:250]))
    key_b, order_b = torch.sort(descending_time_key(time[250:]))
    gather, pos_b = merge_order(key_a, key_b)
    keys, order = merge_runs(key_a, key_b, gather, pos_b), merge_runs(order_a, order_b + 250, gather, pos_b)
    assert torch.equal(keys, torch.sort(descending_time_key(time)).values)
    for ties in ("efron", "breslow"):
        merged = cox_loss(log_hz, event, time, ties=ties, presorted=(keys, order))
        plain = cox_loss(log_hz, event, time, ties=ties)
        torch.testing.assert_close(merged, plain, rtol=1e-12, atol=1e-12)
        (grad_merged,) = torch.autograd.grad(merged, log_hz)
        (grad_plain,) = torch.autograd.grad(plain, log_hz)
        torch.testing.assert_close(grad_merged, grad_plain, rtol=1e-12, atol=1e-12)


def _pooled_case(seed: int, n_const: int, n_batch: int, spread: float = 1.0, event_rate: float = 0.6):
    """Constant rows + batch rows (with ties), merged by descending time as Momentum merges a bank and a batch."""
    from survmom.core.sorting import merge_order, merge_runs

    gen = torch.Generator().manual_seed(seed)
    n = n_const + n_batch
    time = torch.randint(0, 25, (n,), generator=gen).double()
    event = torch.rand(n, generator=gen) < event_rate
    log_hz = torch.randn(n, generator=gen, dtype=torch.float64) * spread
    const_keys, const_order = torch.sort(-time[:n_const], stable=True)
    batch_keys, batch_order = torch.sort(-time[n_const:], stable=True)
    gather, sorted_batch_pos = merge_order(const_keys, batch_keys)
    position = torch.empty_like(sorted_batch_pos).index_copy_(0, batch_order, sorted_batch_pos)

    def merged(const: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
        return merge_runs(const[const_order], batch[batch_order], gather, sorted_batch_pos)

    keys = merge_runs(const_keys, batch_keys, gather, sorted_batch_pos)
    values = merged(log_hz[:n_const], log_hz[n_const:])
    events = merged(event[:n_const], event[n_const:])
    return log_hz, event, time, position, keys, values, events


@pytest.mark.parametrize("ties", ["efron", "breslow"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize(("n_const", "n_batch", "spread"), [(400, 32, 1.0), (0, 20, 1.0), (50, 200, 1.0),
                                                             (300, 16, 400.0)])
def test_cox_loss_sorted_equals_cox_loss_of_all_rows_with_gradient_for_the_batch_only(
    ties, reduction, n_const, n_batch, spread
) -> None:
    """Value = cox_loss over constants + batch (ties across both); gradient = cox_loss's for the batch rows
    (cox_loss itself is checked against lifelines, torchsurv and a loop reference).

    spread 400: log hazards over ~2000 nats, so the shifted sums underflow and the logcumsumexp path runs.
    """
    from survmom.core.losses import cox_loss_sorted

    log_hz, event, time, position, keys, values, events = _pooled_case(3, n_const, n_batch, spread)
    batch = log_hz[n_const:].clone().requires_grad_(True)
    loss = cox_loss_sorted(batch, position, keys, values, events, ties=ties, reduction=reduction)
    reference_input = torch.cat([log_hz[:n_const], batch])
    expected = cox_loss(reference_input, event, time, ties=ties, reduction=reduction)
    torch.testing.assert_close(loss, expected, rtol=1e-12, atol=1e-12)
    (grad,) = torch.autograd.grad(loss, batch)
    (expected_grad,) = torch.autograd.grad(expected, batch)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-10, atol=1e-12)


def test_cox_loss_sorted_without_events_is_an_attached_zero_and_checks_shapes() -> None:
    from survmom.core.losses import cox_loss_sorted

    log_hz, _, _, position, keys, values, events = _pooled_case(4, 30, 10, event_rate=0.0)
    batch = log_hz[30:].clone().requires_grad_(True)
    loss = cox_loss_sorted(batch, position, keys, values, events)
    assert loss.item() == 0.0 and loss.requires_grad
    with pytest.raises(SurvmomError, match="one position per log_hz row"):
        cox_loss_sorted(batch, position[:-1], keys, values, events)


def test_weibull_log_median_is_the_log_of_the_median_and_stays_finite_beyond_it() -> None:
    from survmom.core.losses import weibull_log_median

    log_params = torch.tensor([[0.5, 0.2], [2.0, -1.0], [800.0, 0.0], [-800.0, 0.0]], dtype=torch.float64)
    log_median = weibull_log_median(log_params)
    torch.testing.assert_close(log_median[:2], torch.log(weibull_median(log_params[:2])), rtol=1e-14, atol=0)
    assert torch.isfinite(log_median).all()
    assert weibull_median(log_params)[2] == math.inf and weibull_median(log_params)[3] == 0.0
    assert weibull_log_median(log_params.float()).dtype == torch.float32


def test_cox_survival_is_bit_for_bit_exp_of_minus_h0_times_hazard_ratio() -> None:
    """The in-place evaluation gives the very numbers of ``exp(-exp(log H0(t) + log_hz))``."""
    gen = torch.Generator().manual_seed(0)
    times, cumhaz = torch.arange(1.0, 201.0, dtype=torch.float64), torch.rand(200, generator=gen).cumsum(0).double()
    log_hz = torch.randn(300, generator=gen, dtype=torch.float64)
    at = torch.linspace(0.0, 250.0, 77, dtype=torch.float64)
    step = torch.searchsorted(times, at, right=True) - 1
    log_h0 = torch.where(step >= 0, torch.log(cumhaz)[step.clamp_min(0)], -math.inf)
    assert torch.equal(cox_survival(log_hz, times, cumhaz, at), torch.exp(-torch.exp(log_h0 + log_hz[:, None])))
    own = at[torch.randint(0, 77, (300,), generator=gen)]
    own_log_h0 = log_h0[torch.searchsorted(at, own)]
    paired = cox_survival(log_hz, times, cumhaz, own, paired=True)
    assert torch.equal(paired, torch.exp(-torch.exp(own_log_h0 + log_hz)))


def test_cox_survival_keeps_its_gradient() -> None:
    """dS/dlog_hz = -S H0(t) exp(log_hz): autograd still flows through the survival curve."""
    times, cumhaz = torch.tensor([2.0, 5.0], dtype=torch.float64), torch.tensor([0.5, 1.5], dtype=torch.float64)
    log_hz = torch.tensor([0.0, 0.7], dtype=torch.float64, requires_grad=True)
    survival = cox_survival(log_hz, times, cumhaz, torch.tensor([3.0, 6.0], dtype=torch.float64))
    survival.sum().backward()
    h0 = torch.tensor([0.5, 1.5], dtype=torch.float64)
    expected = (-survival.detach() * h0 * torch.exp(log_hz.detach())[:, None]).sum(1)
    torch.testing.assert_close(log_hz.grad, expected)


def test_weibull_survival_is_bit_for_bit_exp_of_minus_scaled_time_to_the_shape() -> None:
    """The in-place evaluation gives the very numbers of ``exp(-exp(e^b (log t - a)))``, t = 0 included."""
    gen = torch.Generator().manual_seed(1)
    log_params = torch.randn(300, 2, generator=gen, dtype=torch.float64) * 0.5 + torch.tensor([3.0, 0.2])
    at = torch.linspace(0.0, 100.0, 41, dtype=torch.float64)
    shape, log_t = torch.exp(log_params[:, 1]), torch.log(at)
    expected = torch.exp(-torch.exp(shape[:, None] * (log_t[None, :] - log_params[:, :1])))
    assert torch.equal(weibull_survival(log_params, at), expected)
    assert torch.equal(weibull_survival(log_params, at[:1])[:, 0], torch.ones(300, dtype=torch.float64))
    own = at[torch.randint(0, 41, (300,), generator=gen)]
    paired = weibull_survival(log_params, own, paired=True)
    assert torch.equal(paired, torch.exp(-torch.exp(shape * (torch.log(own) - log_params[:, 0]))))


def test_weibull_survival_keeps_its_gradient() -> None:
    """dS/da = S rho (t/lambda)^rho for log scale a: autograd still flows through the survival curve."""
    log_params = torch.tensor([[1.0, 0.3], [2.0, -0.2]], dtype=torch.float64, requires_grad=True)
    at = torch.tensor([2.0, 9.0], dtype=torch.float64)
    survival = weibull_survival(log_params, at)
    survival.sum().backward()
    a, rho = log_params.detach()[:, :1], torch.exp(log_params.detach()[:, 1:])
    expected = (survival.detach() * rho * (at / torch.exp(a)) ** rho).sum(1)
    torch.testing.assert_close(log_params.grad[:, 0], expected)
