"""survmom.SurvivalEstimator: scikit-learn's estimator protocol over SurvivalModel, checked against scikit-learn's
own model selection and scikit-survival's C-index; and pickling a fitted model (joblib, worker processes)."""

from __future__ import annotations

import pickle
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
from lifelines.datasets import load_rossi
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sksurv.metrics import concordance_index_censored
from sksurv.util import Surv

from survmom import SurvivalEstimator, SurvivalModel
from survmom.errors import ConfigError, DataError

pytestmark = pytest.mark.slow

OPTIONS = {"hidden": (8,), "epochs": 3, "seed": 3, "batch": 32}


@pytest.fixture(scope="module")
def rossi() -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    frame = load_rossi()
    y = Surv.from_arrays(frame["arrest"] == 1, frame["week"], name_event="arrest", name_time="week")
    return frame, frame.drop(columns=["week", "arrest"]), y


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def test_params_round_trip_and_clone():
    estimator = SurvivalEstimator(loss="weibull", hidden=(16,))
    assert estimator.get_params() == {"verbose": False, "loss": "weibull", "hidden": (16,)}
    copy = clone(estimator)
    assert copy is not estimator and copy.get_params() == estimator.get_params()
    assert estimator.set_params(epochs=5, verbose=True).get_params()["epochs"] == 5
    with pytest.raises(ConfigError, match=r"no parameter 'hiden'.*parameters: verbose, .*hidden"):
        SurvivalEstimator(hiden=(8,))
    with pytest.raises(ConfigError, match=r"'time_col'.*given by fit"):
        SurvivalEstimator().set_params(time_col="t")


def test_fit_predict_equals_the_survival_model_and_scores_as_sksurv(rossi):
    frame, X, y = rossi
    estimator = SurvivalEstimator(**OPTIONS).fit(X, y)
    model = SurvivalModel(verbose=False, **OPTIONS).fit(frame, time_col="week", event_col="arrest")
    risk = estimator.predict(X)
    np.testing.assert_array_equal(risk, model.predict(frame)["risk"].to_numpy())
    expected = concordance_index_censored(y["arrest"], y["week"], risk)[0]
    assert estimator.score(X, y) == pytest.approx(expected, abs=1e-12)
    assert estimator.n_features_in_ == 7 and list(estimator.feature_names_in_) == list(X.columns)
    np.testing.assert_array_equal(estimator.unique_times_, np.unique(frame["week"][frame["arrest"] == 1]))


def test_survival_functions_are_the_models_at_the_event_times(rossi):
    frame, X, y = rossi
    estimator = SurvivalEstimator(**OPTIONS).fit(X, y)
    times = estimator.unique_times_
    values = estimator.predict_survival_function(X.iloc[:5], return_array=True)
    expected = estimator.model_.predict_survival_function(frame.iloc[:5], times).to_numpy()
    np.testing.assert_allclose(values, expected, rtol=0, atol=0)
    functions = estimator.predict_survival_function(X.iloc[:5])
    assert functions.shape == (5,)
    # right-continuous steps: 1 before the first event time, the value at a time from it to the next
    at = np.array([0.5, times[0], (times[0] + times[1]) / 2, times[-1] + 10])
    np.testing.assert_array_equal(functions[2](at), [1.0, values[2, 0], values[2, 0], values[2, -1]])


def test_cross_val_score_equals_a_loop_over_the_folds(rossi):
    frame, X, y = rossi
    folds = KFold(3, shuffle=True, random_state=0)
    scores = cross_val_score(SurvivalEstimator(**OPTIONS), X, y, cv=folds)
    expected = []
    for train, test in folds.split(X):
        model = SurvivalModel(verbose=False, **OPTIONS).fit(frame.iloc[train], time_col="week", event_col="arrest")
        risk = model.predict(frame.iloc[test])["risk"].to_numpy()
        expected.append(concordance_index_censored(y["arrest"][test], y["week"][test], risk)[0])
    np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-12)


def test_grid_search_picks_by_the_c_index(rossi):
    _, X, y = rossi
    grid = GridSearchCV(SurvivalEstimator(epochs=2, seed=1), {"hidden": [(), (8,)]}, cv=2).fit(X, y)
    assert grid.best_params_["hidden"] in [(), (8,)]
    means = grid.cv_results_["mean_test_score"]
    assert grid.best_score_ == max(means) and 0.5 < grid.best_score_ < 0.8
    assert grid.best_estimator_.predict(X).shape == (len(X),)


def test_arrays_and_sample_weight_are_the_weight_design(rossi):
    frame, X, y = rossi
    weight = (np.arange(len(X)) % 3 + 1).astype(float)
    estimator = SurvivalEstimator(**OPTIONS).fit(X.to_numpy(), y, sample_weight=weight)
    assert list(estimator.feature_names_in_) == [f"x{i}" for i in range(7)]
    renamed = X.set_axis([f"x{i}" for i in range(7)], axis=1).assign(week=frame["week"], arrest=frame["arrest"],
                                                                     sample_weight=weight)
    model = SurvivalModel(verbose=False, **OPTIONS).fit(renamed, time_col="week", event_col="arrest",
                                                       weight_col="sample_weight")
    np.testing.assert_array_equal(estimator.predict(X.to_numpy()), model.predict(renamed)["risk"].to_numpy())
    # weighted C: pair (i, j) counts w_i w_j, i.e. the C of the rows repeated w times
    repeat = np.repeat(np.arange(len(X)), weight.astype(int))
    risk = estimator.predict(X.to_numpy())
    expected = concordance_index_censored(y["arrest"][repeat], y["week"][repeat], risk[repeat])[0]
    assert estimator.score(X.to_numpy(), y, sample_weight=weight) == pytest.approx(expected, abs=1e-12)


def test_unnamed_frames_and_sparse_matrices_are_read_as_arrays(rossi):
    from scipy import sparse
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    _, X, y = rossi
    estimator = SurvivalEstimator(**OPTIONS).fit(X.to_numpy(), y)
    risk = estimator.predict(X.to_numpy())
    # pd.DataFrame(array) names its columns 0, 1, ...: positions, as scikit-learn reads them
    unnamed = SurvivalEstimator(**OPTIONS).fit(pd.DataFrame(X.to_numpy()), y)
    np.testing.assert_array_equal(unnamed.predict(pd.DataFrame(X.to_numpy())), risk)
    np.testing.assert_array_equal(unnamed.predict(X.to_numpy()), risk)
    from_sparse = SurvivalEstimator(**OPTIONS).fit(sparse.csr_matrix(X.to_numpy()), y)
    np.testing.assert_array_equal(from_sparse.predict(sparse.csr_matrix(X.to_numpy())), risk)
    # a OneHotEncoder alone in a ColumnTransformer hands the estimator a sparse matrix
    encode = ColumnTransformer([("prio", OneHotEncoder(handle_unknown="ignore"), ["prio"])])
    assert sparse.issparse(encode.fit_transform(X))
    pipeline = make_pipeline(encode, SurvivalEstimator(**OPTIONS)).fit(X, y)
    expected = concordance_index_censored(y["arrest"], y["week"], pipeline.predict(X))[0]
    assert pipeline.score(X, y) == pytest.approx(expected, abs=1e-12)


def test_bad_inputs_are_one_line_errors(rossi):
    _, X, y = rossi
    with pytest.raises(DataError, match=r"y must be a structured array .*Surv.from_arrays"):
        SurvivalEstimator(**OPTIONS).fit(X, y["week"])
    with pytest.raises(DataError, match="y has 432 rows and X 10"):
        SurvivalEstimator(**OPTIONS).fit(X.iloc[:10], y)
    with pytest.raises(DataError, match="column 'week' has the name of a field of y"):
        SurvivalEstimator(**OPTIONS).fit(X.assign(week=1.0), y)
    with pytest.raises(DataError, match="sample_weight must have one value per row"):
        SurvivalEstimator(**OPTIONS).fit(X, y, sample_weight=[1.0, 2.0])
    with pytest.raises(ConfigError, match="not fitted yet"):
        SurvivalEstimator().predict(X)


def test_a_pickled_model_predicts_in_another_process(rossi, tmp_path):
    frame, X, y = rossi
    estimator = SurvivalEstimator(**OPTIONS).fit(X, y)
    (tmp_path / "estimator.pkl").write_bytes(pickle.dumps(estimator))
    X.to_parquet(tmp_path / "X.parquet")
    # the fitting process's private folder is gone there: the checkpoint travels in the pickle
    code = ("import pickle, sys, pandas as pd, numpy as np; from pathlib import Path; p = Path(sys.argv[1]); "
            "e = pickle.loads((p / 'estimator.pkl').read_bytes()); "
            "np.save(p / 'risk.npy', e.predict(pd.read_parquet(p / 'X.parquet')))")
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, capture_output=True)
    np.testing.assert_array_equal(np.load(tmp_path / "risk.npy"), estimator.predict(X))
    copy = pickle.loads(pickle.dumps(estimator.model_))
    assert copy._checkpoint != estimator.model_._checkpoint  # its own folder, not the original's
    np.testing.assert_array_equal(copy.predict(frame)["risk"], estimator.model_.predict(frame)["risk"])
    unfitted = pickle.loads(pickle.dumps(SurvivalModel(epochs=2)))
    with pytest.raises(ConfigError, match="not fitted"):
        unfitted.predict(frame)
