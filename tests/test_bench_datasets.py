"""The generated large data sets of the accuracy benchmark (benchmarks/_datasets.py) and its two tree peers."""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import _datasets as data
import accuracy
from _tree_peers import aft_normal_scale, coarse_times

FEATURES = ["age", "bmi", "crp", "albumin", "creatinine", "sbp", "hemoglobin", "nodes", "female", "stage",
            "smoking", "treatment", "region"]


@pytest.fixture(scope="module")
def synth20k():
    return data.load("synth20k"), data.true_log_hazard("synth20k")


def test_generator_is_deterministic_for_a_seed():
    frame_a, eta_a = data.synthetic(3000, seed=7)
    frame_b, eta_b = data.synthetic(3000, seed=7)
    frame_c, _ = data.synthetic(3000, seed=8)
    assert frame_a.equals(frame_b)
    np.testing.assert_array_equal(eta_a, eta_b)
    assert not frame_a.equals(frame_c)


def test_large_data_sets_have_the_documented_sizes_and_real_ones_stay_the_default():
    assert data.DATASETS == ("gbsg2", "whas500", "flchain", "veteran", "actg320", "aids", "rossi", "lung")
    assert not set(data.LARGE_DATASETS) & set(data.DATASETS)
    for name, rows in (("synth20k", 20_000), ("synth100k", 100_000)):
        frame = data.load(name)
        assert frame.shape == (rows, len(FEATURES) + 2)
        assert len(data.true_log_hazard(name)) == rows


def test_the_truth_is_never_a_column(synth20k):
    frame, eta = synth20k
    assert list(frame.columns) == [*FEATURES, "time", "event"]
    numeric = frame.select_dtypes("number").fillna(0).to_numpy(float)
    assert max(abs(np.corrcoef(column, eta)[0, 1]) for column in numeric.T) < 0.9
    assert data.true_log_hazard("gbsg2") is None


def test_event_fraction_ties_and_whole_days(synth20k):
    frame, _ = synth20k
    assert 0.4 <= frame["event"].mean() <= 0.6
    time = frame["time"].to_numpy()
    assert time.min() >= 1 and np.all(time == np.ceil(time))
    assert frame.loc[frame["event"] == 1, "time"].duplicated().mean() > 0.5  # tied event days


def test_missing_cells_in_two_columns(synth20k):
    frame, _ = synth20k
    missing = frame.isna().mean()
    assert set(missing[missing > 0].index) == {"crp", "albumin"}
    assert 0.03 < missing["crp"] < 0.07 and 0.03 < missing["albumin"] < 0.07


def test_true_survival_matches_kaplan_meier(synth20k):
    from lifelines import KaplanMeierFitter

    frame, eta = synth20k
    times = np.array([180.0, 730.5, 1500.0])
    km = KaplanMeierFitter().fit(frame["time"], frame["event"]).survival_function_at_times(times).to_numpy()
    np.testing.assert_allclose(data.true_survival(eta, times).mean(axis=0), km, atol=0.01)


def test_truth_beats_a_linear_cox_on_held_out_rows(synth20k):
    from lifelines import CoxPHFitter
    from lifelines.utils import concordance_index

    frame, eta = synth20k
    train, test = frame.iloc[:3000], frame.iloc[3000:6000]
    x_train, x_test, names = accuracy.design_matrix(train, test)
    fit_frame = pd.DataFrame(x_train, columns=names).assign(time=train["time"].to_numpy(),
                                                            event=train["event"].to_numpy())
    cox = CoxPHFitter(penalizer=0.01).fit(fit_frame, "time", "event")
    cox_risk = cox.predict_log_partial_hazard(pd.DataFrame(x_test, columns=names)).to_numpy()
    c_cox = concordance_index(test["time"], -cox_risk, test["event"])
    c_truth = concordance_index(test["time"], -eta[3000:6000], test["event"])
    assert c_truth > 0.75
    assert c_truth > c_cox + 0.05


def test_aft_scale_is_the_maximum_likelihood_sigma():
    rng = np.random.default_rng(0)
    mu = rng.normal(6, 1, 20_000)
    log_t = mu + 0.7 * rng.standard_normal(20_000)
    censor = np.log(rng.exponential(2000, 20_000))
    event = log_t <= censor
    assert aft_normal_scale(mu, np.exp(np.minimum(log_t, censor)), event) == pytest.approx(0.7, abs=0.02)


def test_coarse_times_move_up_to_at_most_bins_event_times():
    rng = np.random.default_rng(1)
    time = np.ceil(rng.exponential(500, 5000))
    event = rng.random(5000) < 0.6
    coarse = coarse_times(time, event, bins=50)
    assert len(np.unique(coarse[event])) <= 50
    assert np.all(coarse >= time)
    assert np.all(np.diff(coarse[np.argsort(time, kind="stable")]) >= 0)  # order kept (ties may form)
    small = np.array([3.0, 1.0, 2.0])
    np.testing.assert_array_equal(coarse_times(small, np.ones(3, bool), bins=50), small)


def test_the_readme_table_is_written_between_its_markers_from_the_records(tmp_path):
    records = [{"dataset": d, "split": k, "method": m, "cindex": c + 0.01 * k, "ibs": 0.1 + 0.01 * k}
               for d, base in (("gbsg2", 0.70), ("lung", 0.60)) for k in range(2)
               for m, c in (("survmom", base), ("survmom:e5", base + 0.02), ("rsf", base + 0.01))]
    methods = ["survmom", "survmom:e5", "rsf"]
    block = accuracy.readme_table(records, ["gbsg2", "lung"], methods, {"survmom": "", "survmom:e5": "--ensemble 5"}, 2)
    lines = block.splitlines()
    assert lines[2] == "| data set | survmom (default) | survmom --ensemble 5 | rsf |"
    assert lines[4] == "| gbsg2 | 0.705 ± 0.007 | 0.725 ± 0.007 | 0.715 ± 0.007 |"
    assert lines[6] == "| **mean** | **0.655** | **0.675** | **0.665** |"
    assert lines[7].startswith("| **mean integrated Brier score (lower is better)** | **0.105** |")
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{accuracy.README_START}\nold table\n{accuracy.README_END}\nafter\n")
    accuracy.write_readme_table(readme, block)
    text = readme.read_text()
    assert "old table" not in text and block in text and text.startswith("intro\n") and text.endswith("after\n")
    accuracy.write_readme_table(readme, "second")  # markers kept: it can be regenerated again
    assert readme.read_text() == f"intro\n{accuracy.README_START}\nsecond\n{accuracy.README_END}\nafter\n"
    (tmp_path / "plain.md").write_text("no markers\n")
    with pytest.raises(ValueError, match="no '<!-- accuracy-table"):
        accuracy.write_readme_table(tmp_path / "plain.md", block)


def test_the_best_peer_picked_on_the_other_splits_is_scored_on_the_split_left_out():
    # rsf: mean 0.72 (best on all splits), but picked from splits 0 and 1 only coxph (0.73) wins
    c = {"rsf": (0.70, 0.70, 0.76), "coxph": (0.73, 0.73, 0.67), "survmom": (0.71, 0.71, 0.71)}
    records = [{"dataset": "d", "split": k, "method": m, "cindex": values[k], "ibs": 0.1 + 0.01 * k}
               for m, values in c.items() for k in range(3)]
    best = accuracy.best_peers(records, ["d"], ["rsf", "coxph"], 3)["d"]
    block = accuracy.readme_table(records, ["d"], ["survmom", "rsf", "coxph"], {"survmom": ""}, 3)
    assert best["on_test"]["peer"] == "rsf" and best["on_test"]["cindex"] == [0.70, 0.70, 0.76]
    # split 0 or 1 left out: rsf leads on the others (0.73 vs 0.70); split 2 left out: coxph (0.73 vs 0.70)
    assert best["other_splits"]["picks"] == ["rsf", "rsf", "coxph"]
    assert best["other_splits"]["cindex"] == [0.70, 0.70, 0.67]
    assert best["other_splits"]["ibs"] == pytest.approx([0.10, 0.11, 0.12])
    lines = block.splitlines()
    assert lines[2].endswith("| best peer (picked on these splits) | best peer (picked on the other splits) |")
    assert lines[4].endswith("| 0.720 ± 0.035 (rsf) | 0.690 ± 0.017 (rsf/coxph) |")
    assert lines[5] == "| **mean** | **0.710** | **0.720** | **0.710** | **0.720** | **0.690** |"
