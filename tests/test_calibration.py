"""survmom.core.calibration against SurvivalEVAL (ICI/E50/E90, D-calibration), lifelines (Kaplan-Meier, and why
its ICI differs), pandas' qcut, scipy's chi-square, and hand-built predictors whose calibration is known."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from lifelines import CoxPHFitter, CRCSplineFitter, KaplanMeierFitter, WeibullAFTFitter
from lifelines.calibration import survival_probability_calibration
from lifelines.datasets import load_rossi
from scipy.stats import chi2
from sksurv.datasets import load_gbsg2
from SurvivalEVAL.evaluations.calibration.distributional.distribution_calibration import d_calibration as se_d_cal
from SurvivalEVAL.evaluations.calibration.single_time.integrated_calibration_index import (
    integrated_calibration_index as se_ici,
)

from survmom.core.calibration import (
    CalibrationUndefined,
    calibration_groups,
    calibration_in_the_large,
    chi2_sf,
    d_calibration,
    smoothed_calibration,
)
from survmom.errors import SurvmomError


@pytest.fixture(scope="module")
def rossi():
    """rossi with an in-sample lifelines Cox model: (frame, fitted model, time, event)."""
    frame = load_rossi()
    model = CoxPHFitter().fit(frame, "week", "arrest")
    return frame, model, frame["week"].to_numpy(float), frame["arrest"].to_numpy(bool)


@pytest.fixture(scope="module")
def gbsg2():
    """gbsg2 (686 rows, days, tied times) with a lifelines Weibull AFT model on four numeric covariates:
    (frame, fitted model, time, event)."""
    x, y = load_gbsg2()
    frame = x[["age", "pnodes", "progrec", "tsize"]].assign(time=y["time"], event=y["cens"].astype(int))
    model = WeibullAFTFitter().fit(frame, "time", "event")
    return frame, model, frame["time"].to_numpy(float), frame["event"].to_numpy(bool)


def predicted_at(model, frame, t: float) -> np.ndarray:
    return model.predict_survival_function(frame, times=[t]).T.squeeze().to_numpy()


def assert_equals_survivaleval(pred, event, time, t, knots=3, atol=1e-7):
    ours = smoothed_calibration(torch.tensor(pred), torch.tensor(event), torch.tensor(time), t, knots=knots)
    theirs = se_ici(1 - pred, time, event.astype(int), t, knots=knots)
    assert ours.ici == pytest.approx(theirs["ICI"], abs=atol)
    assert ours.e50 == pytest.approx(theirs["E50"], abs=atol)
    assert ours.e90 == pytest.approx(theirs["E90"], abs=atol)
    # SurvivalEVAL's curve is in event probabilities, ascending; ours in S, ascending
    np.testing.assert_allclose(1 - ours.grid.numpy()[::-1], theirs["curve"]["grid"], atol=1e-12)
    np.testing.assert_allclose(1 - ours.curve.numpy()[::-1], theirs["curve"]["cal_pred"], atol=atol)
    return ours


# ------------------------------------------------------------------------------- smoothed curve: ICI, E50, E90
@pytest.mark.parametrize("t", [10.0, 20.0, 30.0, 40.0, 50.0])
def test_ici_e50_e90_and_curve_equal_survivaleval_on_rossi(rossi, t):
    frame, model, time, event = rossi
    ours = assert_equals_survivaleval(predicted_at(model, frame, t), event, time, t)
    assert 0 < ours.e50 < ours.e90 and ours.ici < 0.01  # in-sample Cox: well calibrated


@pytest.mark.parametrize("t", [365.0, 1000.0, 1825.0])
def test_ici_e50_e90_equal_survivaleval_on_gbsg2_with_a_weibull_model(gbsg2, t):
    frame, model, time, event = gbsg2
    assert_equals_survivaleval(predicted_at(model, frame, t), event, time, t)


@pytest.mark.parametrize("knots", [4, 5, 7])
def test_more_knots_follow_survivaleval_s_knot_rule(gbsg2, knots):
    frame, model, time, event = gbsg2
    assert_equals_survivaleval(predicted_at(model, frame, 1000.0), event, time, 1000.0, knots=knots)


def test_one_distinct_prediction_gives_the_kaplan_meier_survival(rossi):
    _, _, time, event = rossi
    pred = np.full(len(time), 0.8)
    ours = assert_equals_survivaleval(pred, event, time, 30.0)
    km = KaplanMeierFitter().fit(time, event).survival_function_at_times(30.0).iloc[0]
    np.testing.assert_allclose(ours.observed.numpy(), km, atol=1e-12)
    assert ours.ici == pytest.approx(abs(0.8 - km), abs=1e-12)


def test_no_event_by_t_means_everyone_observed_alive(gbsg2):
    frame, model, time, event = gbsg2
    pred = predicted_at(model, frame, 60.0)
    assert not (event & (time <= 60.0)).any() and (1 - pred).mean() > 0.001
    ours = assert_equals_survivaleval(pred, event, time, 60.0)
    assert bool((ours.observed == 1).all()) and ours.ici == pytest.approx((1 - pred).mean(), abs=1e-15)


def test_a_perfectly_calibrated_predictor_has_ici_near_zero():
    rng = np.random.default_rng(1)
    n, t = 20_000, 0.5
    x = rng.normal(size=n)
    death, censor = rng.exponential(np.exp(-x)), rng.exponential(1.5, n)
    time, event = np.minimum(death, censor), death <= censor
    truth = np.exp(-t * np.exp(x))  # the true S(t | x)
    assert smoothed_calibration(truth, event, time, t).ici < 0.01
    # predicted S = truth^2: the observed S is the truth, so ICI = mean |truth^2 - truth| (0.18)
    off = smoothed_calibration(truth**2, event, time, t)
    assert off.ici == pytest.approx(np.abs(truth**2 - truth).mean(), abs=0.01)
    np.testing.assert_allclose(off.observed.numpy(), truth, atol=0.03)


def test_too_few_distinct_predictions_are_refused_with_the_reason():
    time = np.arange(1.0, 51.0)
    event = np.ones(50, bool)
    with pytest.raises(CalibrationUndefined, match="at least 3 distinct predictions, got 2"):
        smoothed_calibration(np.r_[np.full(25, 0.3), np.full(25, 0.6)], event, time, 25.0)
    with pytest.raises(CalibrationUndefined, match=r"knots .* coincide"):  # 90% of the rows share one prediction
        smoothed_calibration(np.r_[np.full(45, 0.3), np.linspace(0.4, 0.9, 5)], event, time, 25.0)


def test_a_fit_the_rows_do_not_identify_is_refused_as_survivaleval_does():
    # every row dies in order of its predicted risk: the Cox likelihood keeps rising along the spline
    time, event = np.arange(1.0, 51.0), np.ones(50, bool)
    pred = np.exp(-time / 100)
    with pytest.raises(ValueError, match="converge"):
        se_ici(1 - pred, time, event.astype(int), 25.0)
    with pytest.raises(CalibrationUndefined, match="do not identify"):
        smoothed_calibration(pred, event, time, 25.0)


def test_bad_inputs_are_refused():
    with pytest.raises(SurvmomError, match=r"\[0, 1\]"):
        smoothed_calibration([0.5, 1.5, 0.2], [1, 0, 1], [1.0, 2.0, 3.0], 2.0)
    with pytest.raises(SurvmomError, match="same non-zero length"):
        smoothed_calibration([0.5, 0.4], [1, 0, 1], [1.0, 2.0, 3.0], 2.0)
    with pytest.raises(SurvmomError, match="knots"):
        smoothed_calibration([0.5, 0.4, 0.3], [1, 0, 1], [1.0, 2.0, 3.0], 2.0, knots=2)


# --------------------------------------------------------------------------------------- lifelines' smoother
def test_lifelines_ici_differs_by_its_parametric_smoother(rossi):
    """lifelines' ``survival_probability_calibration`` smooths with a Crowther-Royston-Clements AFT spline of
    log time (3 knots on log event times) instead of Austin et al.'s Cox model, whose baseline is free. On rossi
    at week 20 that parametric baseline misses the Kaplan-Meier S(20) of the very rows it smooths by 0.012, and
    the miss is counted as miscalibration: its ICI is 0.0122 for an in-sample Cox model whose mean prediction
    equals the Kaplan-Meier S(20) to 5e-5; ours (= SurvivalEVAL's) is 0.0011. Where lifelines' smoother fits
    the marginal survival (week 40), the two agree to 5e-4."""
    frame, model, time, event = rossi

    class Predictor:  # the duck type lifelines asks for
        duration_col, event_col, _censoring_type = "week", "arrest", model._censoring_type

        def predict_survival_function(self, df, times):
            return model.predict_survival_function(df, times=times)

    km = KaplanMeierFitter().fit(time, event)
    results = {}
    for t in (20.0, 40.0):
        with warnings.catch_warnings(), _silenced():
            warnings.simplefilter("ignore")
            _, lifelines_ici, lifelines_e50 = survival_probability_calibration(Predictor(), frame, t)
        pred = predicted_at(model, frame, t)
        ours = smoothed_calibration(pred, event, time, t)
        assert ours.ici == pytest.approx(se_ici(1 - pred, time, event.astype(int), t)["ICI"], abs=1e-7)
        smoothed = _lifelines_smoothed_survival(pred, time, event, t)  # what lifelines fits inside
        km_t = km.survival_function_at_times(t).iloc[0]
        results[t] = (lifelines_ici, ours.ici, smoothed.mean() - km_t, float(ours.observed.mean()) - km_t)
        assert lifelines_ici == pytest.approx(np.abs(smoothed - pred).mean(), abs=1e-5)
        assert lifelines_e50 == pytest.approx(np.median(np.abs(smoothed - pred)), abs=1e-5)
        assert abs(pred.mean() - km_t) < 1e-4
    (l20, o20, miss20, ours_miss20), (l40, o40, _, _) = results[20.0], results[40.0]
    assert l20 == pytest.approx(0.0122, abs=1e-4) and o20 == pytest.approx(0.0011, abs=1e-4)
    assert miss20 == pytest.approx(l20, abs=0.001) and abs(ours_miss20) < 0.001
    assert abs(l40 - o40) < 5e-4


def _lifelines_smoothed_survival(pred, time, event, t):
    """The smoothed observed S(t) of lifelines' ``survival_probability_calibration``, refitted as it fits it."""
    p = np.clip(1 - pred, 1e-10, 1 - 1e-10)
    frame = pd.DataFrame({"ccl": np.log(-np.log(1 - p)), "T": time, "E": event})
    crc = CRCSplineFitter(n_baseline_knots=3, penalizer=0.000001)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        crc.fit_right_censoring(frame, "T", "E", regressors={"beta_": ["ccl"], "gamma0_": "1", "gamma1_": "1",
                                                             "gamma2_": "1"})
    return crc.predict_survival_function(frame, times=[t]).T.squeeze().to_numpy()


class _silenced:
    """lifelines prints ICI and E50 on stdout and draws on pyplot's current axes; keep both out of the way."""

    def __enter__(self):
        import contextlib
        import io

        import matplotlib

        matplotlib.use("Agg")
        self._redirect = contextlib.redirect_stdout(io.StringIO())
        self._redirect.__enter__()

    def __exit__(self, *exc):
        import matplotlib.pyplot as plt

        plt.close("all")
        return self._redirect.__exit__(*exc)


# ---------------------------------------------------------------------------------- in the large and groups
def test_calibration_in_the_large_is_the_mean_against_lifelines_kaplan_meier(gbsg2):
    frame, model, time, event = gbsg2
    pred = predicted_at(model, frame, 1000.0)
    ours = calibration_in_the_large(pred, event, time, 1000.0)
    km = KaplanMeierFitter().fit(time, event)
    band = km.confidence_interval_.loc[:1000.0].iloc[-1].to_numpy()
    assert ours.mean_predicted == pytest.approx(pred.mean(), abs=1e-15)
    assert ours.km == pytest.approx(km.survival_function_at_times(1000.0).iloc[0], abs=1e-12)
    assert (ours.km_lower, ours.km_upper) == pytest.approx(tuple(band), abs=1e-12)


@pytest.mark.parametrize("ties", [False, True])
def test_groups_are_pandas_qcut_with_lifelines_kaplan_meier_in_each(gbsg2, ties):
    frame, model, time, event = gbsg2
    t = 1000.0
    pred = predicted_at(model, frame, t)
    if ties:  # 40% of the rows share one prediction: coinciding edges merge deciles
        pred = np.where(pred > np.quantile(pred, 0.6), pred.max(), pred)
    groups = calibration_groups(pred, event, time, t, 10)
    codes = pd.qcut(pred, 10, labels=False, duplicates="drop")
    assert len(groups) == len(np.unique(codes)) == (7 if ties else 10)
    for code, group in zip(np.unique(codes), groups):
        rows = codes == code
        km = KaplanMeierFitter().fit(time[rows], event[rows])
        band = km.confidence_interval_.loc[:t].iloc[-1].to_numpy()
        assert (group.rows, group.events, group.at_risk) == (
            rows.sum(), (event[rows] & (time[rows] <= t)).sum(), (time[rows] >= t).sum())
        assert (group.low, group.high) == (pred[rows].min(), pred[rows].max())
        assert group.mean_predicted == pytest.approx(pred[rows].mean(), abs=1e-15)
        assert group.km == pytest.approx(km.survival_function_at_times(t).iloc[0], abs=1e-12)
        assert (group.km_lower, group.km_upper) == pytest.approx(tuple(band), abs=1e-12)


# ------------------------------------------------------------------------------------------- D-calibration
def test_d_calibration_equals_survivaleval_on_rossi(rossi):
    frame, model, time, event = rossi
    own = np.array([model.predict_survival_function(frame.iloc[[i]], times=[time[i]]).iloc[0, 0]
                    for i in range(len(time))])
    statistic, p_value, histogram = se_d_cal(own, event.astype(int), 10)
    ours = d_calibration(torch.tensor(own), torch.tensor(event))
    np.testing.assert_allclose(ours.counts.numpy(), histogram, rtol=1e-12)
    assert ours.chi2 == pytest.approx(statistic, rel=1e-12) and ours.df == 9
    assert ours.p_value == pytest.approx(p_value, rel=1e-9)


@pytest.mark.parametrize("bins", [2, 5, 10, 20])
def test_d_calibration_spreads_censored_rows_as_survivaleval_on_edges_and_ends(bins):
    # values exactly on bin edges, 0 and 1, as events and as censored rows
    u = np.r_[np.linspace(1, 0, bins + 1), np.linspace(1, 0, bins + 1), [0.37, 0.05, 0.999, 0.63]]
    event = np.r_[np.ones(bins + 1), np.zeros(bins + 1), [1, 0, 0, 1]].astype(int)
    statistic, p_value, histogram = se_d_cal(u, event, bins)
    ours = d_calibration(u, event, bins)
    np.testing.assert_allclose(ours.counts.numpy(), histogram, rtol=1e-12, atol=1e-15)
    assert ours.counts.sum() == pytest.approx(len(u), abs=1e-9)  # each row adds 1 in all
    assert ours.chi2 == pytest.approx(statistic, rel=1e-12)
    assert ours.p_value == pytest.approx(p_value, rel=1e-9)


def test_d_calibration_accepts_the_true_model_and_rejects_a_wrong_one():
    rng = np.random.default_rng(2)
    n = 5_000
    x = rng.normal(size=n)
    death, censor = rng.exponential(np.exp(-x)), rng.exponential(1.5, n)
    time, event = np.minimum(death, censor), death <= censor
    own = np.exp(-time * np.exp(x))  # the true S(T_i | x_i)
    assert d_calibration(own, event).p_value > 0.05
    assert d_calibration(own**3, event).p_value < 1e-6  # hazards three times too high


@pytest.mark.parametrize(("x", "df"), [(0.0, 9), (4.15, 9), (16.919, 9), (250.0, 9), (3.2, 1), (30.0, 19)])
def test_chi2_survival_function_equals_scipy(x, df):
    assert chi2_sf(x, df) == pytest.approx(chi2.sf(x, df), rel=1e-10, abs=1e-300)


def test_bad_d_calibration_input_is_refused():
    with pytest.raises(SurvmomError, match="bins"):
        d_calibration([0.5, 0.4], [1, 0], bins=1)
    with pytest.raises(SurvmomError, match=r"\[0, 1\]"):
        d_calibration([0.5, float("nan")], [1, 0])
