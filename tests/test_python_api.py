"""The Python API (survmom.SurvivalModel) runs the CLI's engine: same checkpoints, same predictions, same errors."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from survmom.errors import ConfigError, DataError

from cli_runner import ROOT, run_survmom

pytestmark = pytest.mark.slow

OPTIONS = {"hidden": (8,), "epochs": 3, "seed": 3, "batch": 16, "patience": 5}
FLAGS = ["--hidden", "8", "--epochs", "3", "--seed", "3", "--batch", "16", "--patience", "5"]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    """600 rows of the sample cohort as CSV (numbers with one decimal: pandas and pyarrow parse them alike)."""
    folder = tmp_path_factory.mktemp("api")
    path = folder / "cohort.csv"
    pd.read_csv(ROOT / "sample_data" / "cohort.csv").head(600).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def cli_model(cohort: Path) -> Path:
    out = cohort.parent / "cli.pt"
    run_survmom("train", cohort, "--id-col", "id", *FLAGS, "--quiet", "--out", out, check=True)
    return out


@pytest.fixture(scope="module")
def python_model(cohort: Path):
    from survmom import SurvivalModel

    torch.set_num_threads(1)
    return SurvivalModel(verbose=False, **OPTIONS).fit(pd.read_csv(cohort), id_col="id")


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    state = torch.load(path, weights_only=True)
    found = {f"momentum.{k}": v for k, v in state["momentum"].items() if isinstance(v, torch.Tensor)}
    found.update({f"best.{k}": v for k, v in state["best"]["target"].items()})
    found.update({f"prediction.{k}": v for k, v in state["prediction"].items() if isinstance(v, torch.Tensor)})
    return found


def test_a_dataframe_fit_gives_the_cli_s_checkpoint_tensors(cli_model, python_model, tmp_path):
    python_model.save(tmp_path / "py.pt")
    ours, theirs = _tensors(tmp_path / "py.pt"), _tensors(cli_model)
    assert ours.keys() == theirs.keys() and len(ours) > 10
    for name, tensor in ours.items():
        assert torch.equal(tensor, theirs[name]), name
    assert torch.load(tmp_path / "py.pt", weights_only=True)["preprocessing"] == (
        torch.load(cli_model, weights_only=True)["preprocessing"])


def test_predict_gives_the_columns_and_values_of_survmom_predict(cohort, cli_model, python_model, tmp_path):
    new = ROOT / "sample_data" / "new_patients.csv"
    out = tmp_path / "cli.csv"
    run_survmom("predict", cli_model, new, "--times", "365,730", "-o", out, check=True)
    expected = pd.read_csv(out)
    got = python_model.predict(pd.read_csv(new), times=[365, 730])
    assert list(got.columns) == list(expected.columns) == [
        "id", "log_hazard", "risk", "median_time", "surv_365", "surv_730"]
    assert got["id"].tolist() == expected["id"].tolist()
    np.testing.assert_allclose(got.drop(columns="id").to_numpy(), expected.drop(columns="id").to_numpy(),
                               rtol=1e-12)  # CSV prints 17 significant digits


def test_survival_function_and_median_are_the_predict_columns(python_model):
    new = pd.read_csv(ROOT / "sample_data" / "new_patients.csv")
    predictions = python_model.predict(new, times=[100, 365.5])
    surv = python_model.predict_survival_function(new, times=[100, 365.5])
    assert surv.shape == (len(new), 2) and list(surv.columns) == [100.0, 365.5]
    np.testing.assert_array_equal(surv.to_numpy(), predictions[["surv_100", "surv_365.5"]].to_numpy())
    assert (np.diff(surv.to_numpy(), axis=1) <= 0).all()  # survival never increases with time
    np.testing.assert_array_equal(python_model.predict_median(new).to_numpy(), predictions["median_time"])


def test_predictions_of_a_dataframe_carry_its_index_so_assignment_aligns(python_model):
    new = pd.read_csv(ROOT / "sample_data" / "new_patients.csv")
    plain = python_model.predict(new, times=[365])
    shuffled = new.set_axis(pd.Index([f"p{k}" for k in range(len(new))][::-1], name="pid"))
    predictions = python_model.predict(shuffled, times=[365])
    assert predictions.index.equals(shuffled.index)
    shuffled["risk"] = predictions["risk"]  # pandas aligns on the index: row k must get row k's risk
    np.testing.assert_array_equal(shuffled["risk"].to_numpy(), plain["risk"].to_numpy())
    assert python_model.predict_survival_function(shuffled, times=[365]).index.equals(shuffled.index)
    assert python_model.predict_median(shuffled).index.equals(shuffled.index)
    assert python_model.predict(ROOT / "sample_data" / "new_patients.csv").index.equals(pd.RangeIndex(len(new)))


def test_predict_and_evaluate_ignore_extra_columns_without_a_text_name(cohort, python_model):
    frame = pd.read_csv(cohort)
    extra = frame.assign(**{"": 1.0}).join(pd.DataFrame({0: np.arange(len(frame))}))  # as pd.concat leaves them
    pd.testing.assert_frame_equal(python_model.predict(extra, times=[365]), python_model.predict(frame, times=[365]))
    assert python_model.score(extra) == python_model.score(frame)
    with pytest.raises(DataError, match="column names must be non-empty text"):
        type(python_model)(verbose=False, **OPTIONS).fit(extra)  # training would read every column


def test_score_is_survmom_evaluate_s_harrell_c(cohort, cli_model, python_model):
    result = run_survmom("evaluate", cli_model, cohort, "--json", check=True)
    assert python_model.score(pd.read_csv(cohort)) == json.loads(result.stdout)["harrell_c"]
    assert 0.5 < python_model.score(cohort) < 1.0


def test_score_of_rows_followed_shorter_than_the_default_times_is_their_c_index(cohort, python_model):
    """score needs no evaluation times: rows all followed for less than the training event times' 25th
    percentile (evaluate's default first time) get their C-index, not an error about --times."""
    from sksurv.metrics import concordance_index_censored

    frame = pd.read_csv(cohort)
    early = frame[frame["time"] < 40].reset_index(drop=True)
    assert early["event"].sum() > 5
    expected = concordance_index_censored(early["event"] == 1, early["time"], python_model.predict(early)["risk"])[0]
    assert python_model.score(early) == pytest.approx(expected, abs=1e-12)


def test_evaluate_names_a_dataframe_as_such_and_a_path_as_given(cohort, python_model):
    assert python_model.evaluate(pd.read_csv(cohort))["data"] == "evaluate DataFrame"
    assert python_model.evaluate(cohort)["data"] == str(cohort)


def test_a_saved_model_loads_back_and_the_cli_reads_it(python_model, tmp_path):
    from survmom import SurvivalModel

    python_model.save(tmp_path / "m.pt")
    loaded = SurvivalModel.load(tmp_path / "m.pt")
    new = ROOT / "sample_data" / "new_patients.csv"
    pd.testing.assert_frame_equal(loaded.predict(new, times=[365]), python_model.predict(new, times=[365]))
    assert loaded.config.hidden == [8] and loaded.config.seed == 3
    inspected = run_survmom("inspect", tmp_path / "m.pt", "--json", check=True)
    assert json.loads(inspected.stdout)["config"]["hidden"] == [8]


def test_a_path_fit_is_the_cli_run(cohort, cli_model, tmp_path):
    from survmom import SurvivalModel

    model = SurvivalModel(verbose=False, **OPTIONS).fit(cohort, id_col="id")
    model.save(tmp_path / "path.pt")
    for name, tensor in _tensors(tmp_path / "path.pt").items():
        assert torch.equal(tensor, _tensors(cli_model)[name]), name


def test_errors_are_the_cli_s_error_types_and_messages(cohort):
    from survmom import SurvivalModel, SurvmomError

    with pytest.raises(ConfigError, match="--lr must be a positive number"):
        SurvivalModel(lr=-1)
    with pytest.raises(ConfigError, match="unknown option"):
        SurvivalModel(hiden=(8,))
    with pytest.raises(ConfigError, match="not fitted"):
        SurvivalModel().predict(cohort)
    frame = pd.read_csv(cohort)
    with pytest.raises(DataError, match="time column 'duration' not found"):
        SurvivalModel(verbose=False, **OPTIONS).fit(frame, time_col="duration")
    with pytest.raises(DataError, match=r"^train DataFrame: column 'event'"):  # not the private file's path
        SurvivalModel(verbose=False, **OPTIONS).fit(frame.assign(event="maybe"))
    mixed = frame.assign(age=[1, "x"] * (len(frame) // 2))
    with pytest.raises(SurvmomError, match="DataFrame"):
        SurvivalModel(verbose=False, **OPTIONS).fit(mixed)


def test_age_groups_from_pd_cut_train_as_their_labels(cohort, tmp_path):
    from survmom import SurvivalModel

    frame = pd.read_csv(cohort).drop(columns="id")
    grouped = frame.assign(age=pd.cut(frame["age"], [0, 50, 65, 80, 120]))  # categories are pandas Intervals
    labelled = grouped.assign(age=grouped["age"].astype(str))  # "(50, 65]", as a CSV holds them
    options = {**OPTIONS, "epochs": 1}
    model = SurvivalModel(verbose=False, **options).fit(grouped)
    expected = SurvivalModel(verbose=False, **options).fit(labelled).predict(labelled)
    pd.testing.assert_frame_equal(model.predict(grouped), expected)
    labelled.to_csv(tmp_path / "grouped.csv", index=False)
    pd.testing.assert_frame_equal(model.predict(tmp_path / "grouped.csv"), expected)


def test_warnings_are_python_warnings(cohort):
    from survmom import SurvivalModel, SurvmomWarning

    frame = pd.read_csv(cohort).assign(row=np.arange(600))  # a column that looks like row numbers
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        SurvivalModel(verbose=False, **{**OPTIONS, "epochs": 1}).fit(frame, id_col="id")
    assert any(issubclass(w.category, SurvmomWarning) and "'row'" in str(w.message) for w in caught)


def test_core_names_import_lazily_from_the_package():
    code = ("import sys, survmom\n"
            "assert 'torch' not in sys.modules\n"
            "from survmom import Momentum, cox_loss, weibull_loss, SurvivalModel, MemoryBank, EMA\n"
            "print(Momentum.__module__, cox_loss.__module__, SurvivalModel.__module__)\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["survmom.core.momentum", "survmom.core.losses", "survmom.app.survival_model"]


def test_version_option_prints_the_version():
    from survmom import __version__

    result = run_survmom("--version", check=True)
    assert result.stdout.strip() == f"survmom {__version__}"
