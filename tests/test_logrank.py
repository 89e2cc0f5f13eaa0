"""The k-group log-rank test against lifelines' multivariate_logrank_test and logrank_test on real data sets."""

import numpy as np
import pytest
import torch
from lifelines.datasets import load_lung, load_rossi, load_waltons
from lifelines.statistics import logrank_test as lifelines_logrank
from lifelines.statistics import multivariate_logrank_test

from survmom.core.logrank import logrank_test


def _ours(time, event, group):
    return logrank_test(torch.tensor(np.asarray(event, dtype=bool)), torch.tensor(np.asarray(time, dtype=float)),
                        torch.tensor(np.asarray(group)))


def _cases():
    rossi = load_rossi()
    lung = load_lung().dropna(subset=["ph.ecog"])
    waltons = load_waltons()
    return {
        "rossi by financial aid (2)": (rossi["week"], rossi["arrest"], rossi["fin"]),
        "rossi by prior convictions (5)": (rossi["week"], rossi["arrest"], np.minimum(rossi["prio"], 4)),
        "rossi by age decade (4)": (rossi["week"], rossi["arrest"], rossi["age"] // 10),
        "lung by ECOG score (4)": (lung["time"], lung["status"] == 2, lung["ph.ecog"].astype(int)),
        "waltons by strain (2, p ~ 1e-28)": (waltons["T"], waltons["E"], (waltons["group"] == "miR-137").astype(int)),
    }


@pytest.mark.parametrize("name", list(_cases()))
def test_statistic_and_p_value_equal_lifelines_multivariate_logrank_test(name):
    time, event, group = _cases()[name]
    ours = _ours(time, event, group)
    theirs = multivariate_logrank_test(np.asarray(time), np.asarray(group), np.asarray(event))
    assert ours.df == theirs.degrees_of_freedom == len(np.unique(group)) - 1
    assert ours.statistic == pytest.approx(theirs.test_statistic, rel=1e-8, abs=1e-8)
    assert ours.p_value == pytest.approx(theirs.p_value, rel=1e-8, abs=1e-12)


def test_two_groups_equal_lifelines_logrank_test():
    rossi = load_rossi()
    aid = rossi["fin"] == 1
    theirs = lifelines_logrank(rossi["week"][aid], rossi["week"][~aid], rossi["arrest"][aid], rossi["arrest"][~aid])
    ours = _ours(rossi["week"], rossi["arrest"], aid.astype(int))
    assert ours.statistic == pytest.approx(theirs.test_statistic, rel=1e-8)
    assert ours.p_value == pytest.approx(theirs.p_value, rel=1e-8)


def test_observed_and_expected_events_by_hand():
    # Times 1..4, all events; groups [0, 0, 1, 1]. t=1: 4 at risk, 2 of group 0 -> E0 += 1/2, V += 1 * 1/2 * 1/2;
    # t=2: 3 at risk, 1 of group 0 -> E0 += 1/3, V += 1 * 1/3 * 2/3; later no row of group 0 is at risk.
    # O0 = 2, E0 = 5/6, V = 17/36, X = (7/6)^2 / (17/36) = 49/17.
    test = logrank_test(torch.tensor([True] * 4), torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([0, 0, 1, 1]))
    assert test.observed.tolist() == [2.0, 2.0]
    np.testing.assert_allclose(test.expected.numpy(), [5 / 6, 19 / 6], rtol=1e-15)
    assert test.statistic == pytest.approx(49 / 17, rel=1e-14)


def test_identical_groups_give_zero_and_p_one():
    time = torch.tensor([1.0, 2.0, 3.0, 1.0, 2.0, 3.0])
    event = torch.tensor([True, False, True, True, False, True])
    test = logrank_test(event, time, torch.tensor([0, 0, 0, 1, 1, 1]))
    assert test.statistic == pytest.approx(0.0, abs=1e-14) and test.p_value == pytest.approx(1.0)


def test_one_group_is_refused():
    with pytest.raises(ValueError, match="at least 2 groups"):
        logrank_test(torch.tensor([True, False]), torch.tensor([1.0, 2.0]), torch.tensor([3, 3]))
