"""The Kaplan-Meier estimator against lifelines' KaplanMeierFitter on real data sets."""

import numpy as np
import pytest
import torch
from lifelines import KaplanMeierFitter
from lifelines.datasets import load_rossi, load_waltons

from survmom.core.kaplan_meier import kaplan_meier

DATA = [(load_rossi, "week", "arrest"), (load_waltons, "T", "E")]


def _fit(load, time_col, event_col, level=0.95):
    df = load()
    ours = kaplan_meier(torch.tensor(df[event_col].to_numpy(bool)), torch.tensor(df[time_col].to_numpy(float)), level)
    theirs = KaplanMeierFitter(alpha=1 - level).fit(df[time_col], df[event_col])
    return ours, theirs


@pytest.mark.parametrize("load, time_col, event_col", DATA)
@pytest.mark.parametrize("level", [0.95, 0.8])
def test_curve_band_and_counts_equal_lifelines(load, time_col, event_col, level):
    ours, theirs = _fit(load, time_col, event_col, level)
    times = ours.times.numpy()
    np.testing.assert_allclose(theirs.survival_function_at_times(times).to_numpy(), ours.survival.numpy(), atol=1e-12)
    band = theirs.confidence_interval_.loc[times].to_numpy()
    np.testing.assert_allclose(band[:, 0], ours.lower.numpy(), atol=1e-12)
    np.testing.assert_allclose(band[:, 1], ours.upper.numpy(), atol=1e-12)
    table = theirs.event_table.loc[times]
    np.testing.assert_array_equal(table["at_risk"].to_numpy(), ours.at_risk.numpy())
    np.testing.assert_array_equal(table["observed"].to_numpy(), ours.events.numpy())
    np.testing.assert_array_equal(table["censored"].to_numpy(), ours.censored.numpy())


def test_values_between_times_and_numbers_at_risk():
    km = kaplan_meier(torch.tensor([True, False, True, True]), torch.tensor([1.0, 2.0, 3.0, 4.0]))
    at = torch.tensor([0.5, 1.0, 2.5, 4.0, 9.0], dtype=torch.float64)
    assert km.at(at).tolist() == [1.0, 0.75, 0.75, 0.0, 0.0]
    # at risk at t: rows with time >= t
    assert km.at_risk_at(at).tolist() == [4.0, 4.0, 2.0, 1.0, 0.0]
    lower, upper = km.band_at(at)
    assert lower[0] == upper[0] == 1.0 and lower[-1] == upper[-1] == 0.0
    assert bool((lower[1:3] < 0.75).all() and (upper[1:3] > 0.75).all())


def test_bad_level_is_refused():
    with pytest.raises(ValueError, match="level"):
        kaplan_meier(torch.tensor([True]), torch.tensor([1.0]), level=1.0)
