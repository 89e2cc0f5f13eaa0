"""survmom.core.metrics against independent oracles: lifelines and scikit-survival on their own data sets.

Each data set is split 80/20 with a fixed seed; a penalised lifelines Cox model is fitted on the training
rows and scored on the test rows. The IPCW metrics get the same training data as scikit-survival.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from lifelines import CoxPHFitter
from lifelines.datasets import load_rossi
from lifelines.utils import concordance_index as lifelines_cindex
from sksurv.datasets import load_flchain, load_gbsg2, load_whas500
from sksurv.exceptions import NoComparablePairException
from sksurv.metrics import brier_score as sk_brier_score
from sksurv.metrics import concordance_index_censored, concordance_index_ipcw
from sksurv.metrics import cumulative_dynamic_auc as sk_cumulative_dynamic_auc
from sksurv.metrics import integrated_brier_score as sk_integrated_brier_score
from sksurv.nonparametric import CensoringDistributionEstimator
from sksurv.util import Surv

from survmom.core.metrics import (
    brier_score,
    censoring_survival,
    concordance_index,
    concordance_index_ci,
    cumulative_dynamic_auc,
    integrated_brier_score,
    uno_concordance_index,
)
from survmom.errors import SurvmomError

T = torch.tensor


# ------------------------------------------------------------------------------------------------ fixtures
@dataclass
class Split:
    """A fitted Cox model's test-set predictions and the survival data of both halves."""

    name: str
    risk: np.ndarray  # (n_test,) log partial hazard
    event: np.ndarray  # (n_test,) bool
    time: np.ndarray  # (n_test,)
    train_event: np.ndarray
    train_time: np.ndarray
    times: np.ndarray  # (3,) quartiles of the test event times
    surv: np.ndarray  # (n_test, 3) lifelines survival probabilities at ``times``
    grid: np.ndarray  # (20,) evaluation grid for the integrated Brier score
    surv_grid: np.ndarray  # (n_test, 20)

    def y_train(self) -> np.ndarray:
        return Surv.from_arrays(self.train_event, self.train_time)

    def y_test(self) -> np.ndarray:
        return Surv.from_arrays(self.event, self.time)

    def y_test_for_auc(self) -> np.ndarray:
        """Test outcomes with events after the last time relabelled censored: they are controls at every
        time and their IPCW weight is never used, but scikit-survival computes it anyway and refuses the
        zero censoring survival at rossi's week 52 (survmom only asks for the weights it uses)."""
        return Surv.from_arrays(self.event & (self.time <= self.times[-1]), self.time)

    def torch_args(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        return T(self.event), T(self.time), T(self.train_event), T(self.train_time)


def _load(name: str) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Numeric covariates, event (bool) and time for one bundled data set."""
    if name == "rossi":
        df = load_rossi()
        return (
            df.drop(columns=["arrest", "week"]).astype(float),
            df["arrest"].to_numpy(bool),
            df["week"].to_numpy(float),
        )
    x, y = {"gbsg2": load_gbsg2, "whas500": load_whas500, "flchain": load_flchain}[name]()
    event_field, time_field = y.dtype.names
    x = x.copy()
    if name == "flchain":
        x = x.drop(columns=["chapter"])  # cause of death: only known after the event
        x["creatinine"] = x["creatinine"].fillna(x["creatinine"].median())
    if name == "gbsg2":
        x["tgrade"] = x["tgrade"].map(len).astype(float)  # I, II, III -> 1, 2, 3
    x = pd.get_dummies(x, drop_first=True, dtype=float).astype(float)
    return x, y[event_field].astype(bool), y[time_field].astype(float)


@pytest.fixture(scope="module", params=["gbsg2", "whas500", "flchain", "rossi"])
def split(request: pytest.FixtureRequest) -> Split:
    x, event, time_ = _load(request.param)
    perm = np.random.default_rng(0).permutation(len(x))
    n_train = int(0.8 * len(x))
    train, test = perm[:n_train], perm[n_train:]
    cph = CoxPHFitter(penalizer=0.01).fit(x.iloc[train].assign(T=time_[train], E=event[train]), "T", "E")
    x_test = x.iloc[test]
    times = np.percentile(time_[test][event[test]], [25, 50, 75])
    grid = np.linspace(*np.percentile(time_[test][event[test]], [10, 80]), 20)
    return Split(
        name=request.param,
        risk=cph.predict_log_partial_hazard(x_test).to_numpy(),
        event=event[test],
        time=time_[test],
        train_event=event[train],
        train_time=time_[train],
        times=times,
        surv=cph.predict_survival_function(x_test, times=times).to_numpy().T,
        grid=grid,
        surv_grid=cph.predict_survival_function(x_test, times=grid).to_numpy().T,
    )


# ------------------------------------------------------------------------------------ oracles: real data
def test_harrell_c_equals_lifelines_and_sksurv(split: Split) -> None:
    ours = concordance_index(T(split.risk), T(split.event), T(split.time))
    assert ours == pytest.approx(lifelines_cindex(split.time, -split.risk, split.event), abs=1e-9)
    assert ours == pytest.approx(concordance_index_censored(split.event, split.time, split.risk)[0], abs=1e-9)


def test_harrell_c_of_partial_hazard_equals_lifelines_and_that_of_log_partial_hazard(split: Split) -> None:
    # lifelines' documented use: concordance_index(T, -cph.predict_partial_hazard(df), E)
    hazard = np.exp(split.risk)
    ours = concordance_index(T(hazard), T(split.event), T(split.time))
    assert ours == pytest.approx(lifelines_cindex(split.time, -hazard, split.event), abs=1e-9)
    # a monotone transform keeps every pairwise order, hence C
    assert ours == pytest.approx(concordance_index(T(split.risk), T(split.event), T(split.time)), abs=1e-12)


def test_uno_c_equals_sksurv_with_tau(split: Split) -> None:
    tau = float(split.times[-1])
    expected = concordance_index_ipcw(split.y_train(), split.y_test(), split.risk, tau=tau)[0]
    event, time_, train_event, train_time = split.torch_args()
    ours = uno_concordance_index(T(split.risk), event, time_, train_event, train_time, tau=tau)
    assert ours == pytest.approx(expected, abs=1e-6)


def test_uno_c_equals_sksurv_without_tau_or_both_refuse(split: Split) -> None:
    event, time_, train_event, train_time = split.torch_args()
    try:
        expected = concordance_index_ipcw(split.y_train(), split.y_test(), split.risk)[0]
    except ValueError:
        # rossi: a test arrest at week 52, where the training censoring survival is 0
        with pytest.raises(SurvmomError, match="52"):
            uno_concordance_index(T(split.risk), event, time_, train_event, train_time)
        return
    ours = uno_concordance_index(T(split.risk), event, time_, train_event, train_time)
    assert ours == pytest.approx(expected, abs=1e-6)


def test_cumulative_dynamic_auc_equals_sksurv(split: Split) -> None:
    expected_auc, expected_mean = sk_cumulative_dynamic_auc(
        split.y_train(), split.y_test_for_auc(), split.risk, split.times
    )
    event, time_, train_event, train_time = split.torch_args()
    auc, mean = cumulative_dynamic_auc(T(split.risk), event, time_, train_event, train_time, T(split.times))
    np.testing.assert_allclose(auc.numpy(), expected_auc, atol=1e-6, rtol=0)
    assert mean == pytest.approx(expected_mean, abs=1e-6)


def test_cumulative_dynamic_auc_with_time_dependent_risk_equals_sksurv(split: Split) -> None:
    risk = 1.0 - split.surv  # (n, m): predicted probability of an event by each time
    expected_auc, expected_mean = sk_cumulative_dynamic_auc(split.y_train(), split.y_test_for_auc(), risk, split.times)
    event, time_, train_event, train_time = split.torch_args()
    auc, mean = cumulative_dynamic_auc(T(risk), event, time_, train_event, train_time, T(split.times))
    np.testing.assert_allclose(auc.numpy(), expected_auc, atol=1e-6, rtol=0)
    assert mean == pytest.approx(expected_mean, abs=1e-6)


def test_brier_score_equals_sksurv(split: Split) -> None:
    _, expected = sk_brier_score(split.y_train(), split.y_test(), split.surv, split.times)
    event, time_, train_event, train_time = split.torch_args()
    ours = brier_score(T(split.surv), event, time_, train_event, train_time, T(split.times))
    np.testing.assert_allclose(ours.numpy(), expected, atol=1e-6, rtol=0)


def test_integrated_brier_score_equals_sksurv(split: Split) -> None:
    expected = sk_integrated_brier_score(split.y_train(), split.y_test(), split.surv_grid, split.grid)
    event, time_, train_event, train_time = split.torch_args()
    ours = integrated_brier_score(T(split.surv_grid), event, time_, train_event, train_time, T(split.grid))
    assert ours == pytest.approx(expected, abs=1e-6)


def test_censoring_survival_equals_sksurv_estimator(split: Split) -> None:
    at = np.concatenate([[-1.0], np.unique(split.train_time)[:-1], split.times])
    expected = CensoringDistributionEstimator().fit(split.y_train()).predict_proba(at)
    ours = censoring_survival(T(split.train_event), T(split.train_time), T(at))
    np.testing.assert_allclose(ours.numpy(), expected, atol=1e-12, rtol=0)


# ----------------------------------------------------------------------------- oracles: heavy random ties
def _oracle_harrell(risk: np.ndarray, event: np.ndarray, time_: np.ndarray) -> tuple[float, float]:
    """(lifelines, sksurv) Harrell's C, NaN where they refuse for lack of comparable pairs."""
    try:
        from_lifelines = lifelines_cindex(time_, -risk, event)
    except ZeroDivisionError:
        from_lifelines = math.nan
    try:
        with np.errstate(invalid="ignore"):
            from_sksurv = concordance_index_censored(event, time_, risk)[0]
    except (ValueError, NoComparablePairException):
        from_sksurv = math.nan
    return from_lifelines, from_sksurv


@settings(max_examples=150, deadline=None)
@given(
    data=st.lists(
        st.tuples(st.integers(0, 4), st.integers(0, 3), st.booleans()),  # time, risk, event
        min_size=0,
        max_size=40,
    )
)
def test_harrell_c_with_heavy_ties_equals_both_oracles(data: list[tuple[int, int, bool]]) -> None:
    time_ = np.array([d[0] for d in data], dtype=float)
    risk = np.array([d[1] for d in data], dtype=float)
    event = np.array([d[2] for d in data], dtype=bool)
    ours = concordance_index(T(risk), T(event), T(time_))
    from_lifelines, from_sksurv = _oracle_harrell(risk, event, time_) if len(data) >= 2 else (math.nan, math.nan)
    assert ours == pytest.approx(from_lifelines, abs=1e-12, nan_ok=True)
    assert ours == pytest.approx(from_sksurv, abs=1e-12, nan_ok=True)


@pytest.mark.parametrize("seed", range(3))
def test_harrell_c_on_larger_tied_data_equals_both_oracles(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 3000
    time_ = rng.integers(0, 50, n).astype(float)
    risk = np.round(rng.normal(size=n), 1)
    event = rng.random(n) < 0.6
    ours = concordance_index(T(risk, dtype=torch.float32), T(event.astype(np.int64)), T(time_))
    from_lifelines, from_sksurv = _oracle_harrell(risk.astype(np.float32).astype(float), event, time_)
    assert ours == pytest.approx(from_lifelines, abs=1e-9)
    assert ours == pytest.approx(from_sksurv, abs=1e-9)


@pytest.mark.parametrize("seed", range(20))
def test_ipcw_metrics_with_heavy_ties_equal_sksurv(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_train, n_test = 200, 80
    train_time, time_ = rng.integers(1, 20, n_train).astype(float), rng.integers(1, 18, n_test).astype(float)
    train_event, event = rng.random(n_train) < 0.6, rng.random(n_test) < 0.6
    risk = rng.integers(0, 4, n_test).astype(float)
    surv = rng.random((n_test, 3))
    times = np.array([4.0, 8.5, 12.0])
    y_train, y_test = Surv.from_arrays(train_event, train_time), Surv.from_arrays(event, time_)
    args = (T(event), T(time_), T(train_event), T(train_time))

    for tau in (None, 10.0):
        expected = concordance_index_ipcw(y_train, y_test, risk, tau=tau)[0]
        assert uno_concordance_index(T(risk), *args, tau=tau) == pytest.approx(expected, abs=1e-9)
    expected_auc, expected_mean = sk_cumulative_dynamic_auc(y_train, y_test, risk, times)
    auc, mean = cumulative_dynamic_auc(T(risk), *args, T(times))
    np.testing.assert_allclose(auc.numpy(), expected_auc, atol=1e-9, rtol=0)
    assert mean == pytest.approx(expected_mean, abs=1e-9)
    _, expected_bs = sk_brier_score(y_train, y_test, surv, times)
    np.testing.assert_allclose(brier_score(T(surv), *args, T(times)).numpy(), expected_bs, atol=1e-9, rtol=0)


# ------------------------------------------------------------------------------------ Harrell edge cases
def test_harrell_c_is_nan_when_all_censored() -> None:
    assert math.isnan(concordance_index(T([1.0, 2.0, 3.0]), T([0, 0, 0]), T([1.0, 2.0, 3.0])))


@pytest.mark.parametrize("n", [0, 1])
def test_harrell_c_is_nan_for_fewer_than_two_samples(n: int) -> None:
    assert math.isnan(concordance_index(torch.zeros(n), torch.ones(n, dtype=torch.bool), torch.arange(n) + 1.0))


def test_harrell_c_is_nan_when_only_events_share_one_time() -> None:
    # events at the same time are not comparable, and nothing is censored at or after that time
    assert math.isnan(concordance_index(T([1.0, 2.0]), T([True, True]), T([5.0, 5.0])))


def test_harrell_c_with_one_event_counts_its_pairs_by_hand() -> None:
    # the event at t=2 is comparable with the samples at t=3, 4 (later) but not with t=1 (earlier)
    risk, event, time_ = T([9.0, 5.0, 7.0, 2.0]), T([0, 1, 0, 0]), T([1.0, 2.0, 3.0, 4.0])
    assert concordance_index(risk, event, time_) == pytest.approx(0.5)  # 5 < 7 discordant, 5 > 2 concordant


def test_harrell_c_is_one_half_when_all_risks_equal() -> None:
    rng = np.random.default_rng(0)
    time_, event = rng.integers(0, 10, 200).astype(float), rng.random(200) < 0.5
    assert concordance_index(torch.full((200,), 3.0), T(event), T(time_)) == 0.5


def test_harrell_c_tied_times_by_hand() -> None:
    # t=1: events a, b and censored c; t=2: event d.
    # comparable: (a,c) (b,c) at the tied time, (a,d) (b,d) later; (a,b) are two events at one time: not.
    risk = T([3.0, 1.0, 2.0, 1.0])  # a, b, c, d
    event, time_ = T([True, True, False, True]), T([1.0, 1.0, 1.0, 2.0])
    # (a,c) 3>2: 1, (b,c) 1<2: 0, (a,d) 3>1: 1, (b,d) 1=1: 1/2
    assert concordance_index(risk, event, time_) == pytest.approx(2.5 / 4)


def test_harrell_c_is_one_for_perfect_and_zero_for_reversed_ranking() -> None:
    time_, event = torch.arange(1.0, 11.0), torch.ones(10, dtype=torch.bool)
    assert concordance_index(-time_, event, time_) == 1.0
    assert concordance_index(time_, event, time_) == 0.0


def test_harrell_c_accepts_float32_and_integer_events_like_float64_and_bool() -> None:
    rng = np.random.default_rng(1)
    risk, time_, event = rng.normal(size=500), rng.exponential(size=500), rng.random(500) < 0.7
    reference = concordance_index(T(risk.astype(np.float32)).double(), T(event), T(time_.astype(np.float32)).double())
    assert concordance_index(
        T(risk, dtype=torch.float32), T(event.astype(np.int32)), T(time_, dtype=torch.float32)
    ) == (reference)
    assert concordance_index(T(risk), T(event.astype(float)), T(time_)) == pytest.approx(
        lifelines_cindex(time_, -risk, event), abs=1e-12
    )


def test_harrell_c_treats_signed_zeros_and_infinite_risks_as_ordered_values() -> None:
    event, time_ = T([True, True, True]), T([1.0, 2.0, 3.0])
    assert concordance_index(T([0.0, -0.0, -1.0]), event, time_) == pytest.approx(2.5 / 3)
    assert concordance_index(T([math.inf, 0.0, -math.inf]), event, time_) == 1.0


def test_harrell_c_detaches_risk_that_requires_grad() -> None:
    risk = torch.tensor([2.0, 1.0], requires_grad=True)
    assert concordance_index(risk, T([1, 1]), T([1.0, 2.0])) == 1.0


@pytest.mark.parametrize(
    ("risk", "event", "time_", "match"),
    [
        ([1.0, math.nan], [1, 1], [1.0, 2.0], "risk contains NaN"),
        ([1.0, 2.0], [1, 2], [1.0, 2.0], "event must be bool or 0/1"),
        ([1.0, 2.0], [1, 1], [1.0, math.inf], "time contains NaN or infinite"),
        ([1.0, 2.0, 3.0], [1, 1], [1.0, 2.0], "equal length"),
        ([[1.0, 2.0]], [1, 1], [1.0, 2.0], "1-D"),
    ],
)
def test_harrell_c_rejects_invalid_input(risk: list, event: list, time_: list, match: str) -> None:
    with pytest.raises(SurvmomError, match=match):
        concordance_index(T(risk), T(event), T(time_))


def test_harrell_c_on_a_million_samples_is_not_quadratic() -> None:
    rng = np.random.default_rng(0)
    n = 1_000_000
    risk, time_ = T(np.round(rng.normal(size=n), 2)), T(np.round(rng.exponential(10.0, n), 1))
    event = T(rng.random(n) >= 0.3)
    start = time.perf_counter()
    c = concordance_index(risk, event, time_)
    # a pairwise method needs ~5e11 comparisons; this takes ~0.5 s single-threaded (generous bound)
    assert time.perf_counter() - start < 20.0
    assert 0.49 < c < 0.51


# ------------------------------------------------------------------------------------ confidence interval
def _brute_force_ij(risk: np.ndarray, event: np.ndarray, time_: np.ndarray) -> tuple[float, float]:
    """Harrell's C and its infinitesimal-jackknife standard error from the O(n^2) pair matrix."""
    comparable = event[:, None] & ((time_[:, None] < time_[None, :]) | ((time_[:, None] == time_[None, :]) & ~event))
    h = comparable * ((risk[:, None] > risk[None, :]) + 0.5 * (risk[:, None] == risk[None, :]))
    c = h.sum() / comparable.sum()
    n_k, d_k = h.sum(0) + h.sum(1), comparable.sum(0) + comparable.sum(1)
    return c, float(np.sqrt((((n_k - c * d_k) / comparable.sum()) ** 2).sum()))


@pytest.mark.parametrize("seed", range(10))
def test_ci_standard_error_equals_brute_force_infinitesimal_jackknife(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 150
    time_, risk = rng.integers(0, 15, n).astype(float), rng.integers(0, 6, n).astype(float)
    event = rng.random(n) < 0.5
    c_expected, se_expected = _brute_force_ij(risk, event, time_)
    c, low, high = concordance_index_ci(T(risk), T(event), T(time_), level=0.5)
    z = 0.6744897501960817  # standard normal quantile at 0.75
    assert c == pytest.approx(c_expected, abs=1e-12)
    assert (high - c, c - low) == pytest.approx((z * se_expected, z * se_expected), abs=1e-12)


@pytest.mark.parametrize("split", ["gbsg2", "whas500", "rossi"], indirect=True)  # n leave-one-out runs
def test_ci_standard_error_is_close_to_the_exact_jackknife(split: Split) -> None:
    risk, event, time_ = split.risk, split.event, split.time
    c, low, high = concordance_index_ci(T(risk), T(event), T(time_))
    se_ij = (high - low) / (2 * 1.959963984540054)
    n = len(risk)
    keep = ~np.eye(n, dtype=bool)
    loo = np.array([concordance_index(T(risk[m]), T(event[m]), T(time_[m])) for m in keep])
    se_jackknife = math.sqrt((n - 1) / n * ((loo - loo.mean()) ** 2).sum())
    assert se_ij == pytest.approx(se_jackknife, rel=0.05)
    assert c == pytest.approx(concordance_index(T(risk), T(event), T(time_)), abs=1e-15)


def test_ci_widens_with_the_level_and_contains_c() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=300)
    time_, event = rng.exponential(np.exp(-x)), rng.random(300) < 0.7
    c90 = concordance_index_ci(T(x), T(event), T(time_), level=0.90)
    c99 = concordance_index_ci(T(x), T(event), T(time_), level=0.99)
    assert c99[1] < c90[1] < c90[0] < c90[2] < c99[2]


def test_ci_is_nan_when_c_is_nan_and_rejects_a_bad_level() -> None:
    assert all(math.isnan(v) for v in concordance_index_ci(T([1.0, 2.0]), T([0, 0]), T([1.0, 2.0])))
    with pytest.raises(SurvmomError, match="level"):
        concordance_index_ci(T([1.0, 2.0]), T([1, 1]), T([1.0, 2.0]), level=1.0)


# ------------------------------------------------------------------------------------- IPCW edge cases
def test_censoring_survival_by_hand_with_a_tied_event_and_censoring() -> None:
    # t=1: event and censoring tied -> the event leaves first: G(1) = 1 - 1/(4-1) = 2/3
    # t=2: censoring, 2 at risk -> G(2) = 2/3 * 1/2; t=3: event -> unchanged
    train_event, train_time = T([1, 0, 0, 1]), T([1.0, 1.0, 2.0, 3.0])
    g = censoring_survival(train_event, train_time, T([0.5, 1.0, 1.5, 2.0, 3.0]))
    np.testing.assert_allclose(g.numpy(), [1.0, 2 / 3, 2 / 3, 1 / 3, 1 / 3], rtol=0, atol=1e-15)


def test_censoring_survival_beyond_the_last_training_time_is_zero_or_refused() -> None:
    # last training sample censored: G drops to 0 and stays there
    assert censoring_survival(T([1, 0]), T([1.0, 2.0]), T([5.0])).item() == 0.0
    # last training sample an event: G is unknown afterwards
    with pytest.raises(SurvmomError, match="last training follow-up time 2"):
        censoring_survival(T([0, 1]), T([1.0, 2.0]), T([5.0]))


def test_ipcw_metrics_refuse_times_beyond_training_follow_up_and_name_the_limit() -> None:
    train_event, train_time = T([1, 0, 1, 1]), T([1.0, 2.0, 3.0, 4.0])  # G > 0 up to 4, unknown after
    event, time_ = T([1, 1, 1, 0]), T([1.0, 3.0, 5.0, 6.0])
    risk, times = T([4.0, 3.0, 2.0, 1.0]), T([5.5])
    with pytest.raises(SurvmomError, match="<= 4"):
        uno_concordance_index(risk, event, time_, train_event, train_time)
    with pytest.raises(SurvmomError, match="<= 4"):
        cumulative_dynamic_auc(risk, event, time_, train_event, train_time, times)
    with pytest.raises(SurvmomError, match="<= 4"):
        brier_score(torch.full((4, 1), 0.5), event, time_, train_event, train_time, times)
    # truncating below the last training time makes Uno's C usable again
    assert uno_concordance_index(risk, event, time_, train_event, train_time, tau=4.0) == pytest.approx(1.0)


def test_ipcw_metrics_refuse_times_where_training_censoring_survival_is_zero() -> None:
    train_event, train_time = T([1, 1, 0]), T([1.0, 2.0, 3.0])  # G(3) = 0
    event, time_ = T([1, 1, 0]), T([1.0, 3.0, 4.0])
    with pytest.raises(SurvmomError, match="< 3"):
        uno_concordance_index(T([3.0, 2.0, 1.0]), event, time_, train_event, train_time)
    with pytest.raises(SurvmomError, match="< 3"):
        brier_score(torch.full((3, 1), 0.5), event, time_, train_event, train_time, T([3.5]))


@pytest.mark.parametrize("times", [[0.5], [6.0], [7.0]])
def test_time_dependent_metrics_refuse_times_outside_test_follow_up(times: list[float]) -> None:
    event, time_ = T([1, 0, 1]), T([1.0, 3.0, 6.0])
    with pytest.raises(SurvmomError, match=r"follow-up of the test data \[1, 6\)"):
        cumulative_dynamic_auc(T([1.0, 2.0, 3.0]), event, time_, event, time_ + 1, T(times))
    with pytest.raises(SurvmomError, match=r"\[1, 6\)"):
        brier_score(torch.full((3, 1), 0.5), event, time_, event, time_ + 1, T(times))


def test_time_dependent_metrics_require_strictly_increasing_times_and_matching_shapes() -> None:
    event, time_ = T([1, 0, 1, 0]), T([1.0, 2.0, 3.0, 4.0])
    args = (event, time_, event, time_ + 1)
    with pytest.raises(SurvmomError, match="strictly increasing"):
        cumulative_dynamic_auc(T([1.0, 2.0, 3.0, 4.0]), *args, T([3.0, 2.0]))
    with pytest.raises(SurvmomError, match="2 times"):
        cumulative_dynamic_auc(torch.ones(4, 3), *args, T([2.0, 3.0]))
    with pytest.raises(SurvmomError, match="shape"):
        brier_score(torch.ones(4, 3), *args, T([2.0, 3.0]))
    with pytest.raises(SurvmomError, match="at least two times"):
        integrated_brier_score(torch.ones(4, 1), *args, T([2.0]))


def test_auc_is_nan_at_a_time_before_any_test_event() -> None:
    event, time_ = T([0, 1, 1, 0]), T([1.0, 2.0, 3.0, 4.0])
    auc, mean = cumulative_dynamic_auc(T([1.0, 2.0, 3.0, 4.0]), event, time_, event, time_, T([1.5, 2.5]))
    assert math.isnan(auc[0].item()) and auc[1].item() == 0.0
    assert math.isnan(mean)


def test_uno_c_is_nan_when_no_event_precedes_tau() -> None:
    event, time_ = T([1, 0, 1]), T([2.0, 3.0, 4.0])
    assert math.isnan(uno_concordance_index(T([1.0, 2.0, 3.0]), event, time_, event, time_, tau=1.0))


def test_uno_c_without_censoring_equals_harrell_c() -> None:
    rng = np.random.default_rng(5)
    risk, time_ = rng.normal(size=100), rng.integers(0, 20, 100).astype(float)
    event = np.ones(100, dtype=bool)
    harrell = concordance_index(T(risk), T(event), T(time_))
    assert uno_concordance_index(T(risk), T(event), T(time_), T(event), T(time_)) == pytest.approx(harrell, abs=1e-12)


def test_brier_score_of_a_perfect_prediction_is_zero() -> None:
    event, time_ = T([1, 1, 0, 1]), T([1.0, 2.0, 3.0, 4.0])
    times = T([1.5, 3.5])
    surv = (time_[:, None] > times[None, :]).double()  # 1 while alive, 0 after the event
    assert brier_score(surv, event, time_, event, time_, times).tolist() == [0.0, 0.0]
