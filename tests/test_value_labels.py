"""Value-labelled columns of Stata and SPSS files: outcome columns mean their codes, features their labels.

A clinical file's status is typically stored as codes with labels (0 "alive", 1 "dead"): the event is the code.
Oracle: the same data written as CSV with the codes (outcomes) and the label texts (features) trains to the
same model, bit for bit.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyreadstat
import pytest
import torch
from rich.console import Console

from survmom.app.progress import QuietReporter
from survmom.data import read_table
from survmom.errors import DataError
from survmom.training import workflow
from survmom.training.checkpoint import read_checkpoint
from survmom.training.config import TrainConfig

from cli_runner import run_survmom

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"
EVENT_LABELS = {0: "alive", 1: "dead"}
SEX_LABELS = {1: "female", 2: "male"}


@pytest.fixture(scope="module")
def cohort() -> pd.DataFrame:
    frame = pd.read_csv(SAMPLE / "cohort.csv").head(300)[["id", "age", "sex", "bmi", "time", "event"]]
    frame["sex"] = np.where(frame["sex"] == "F", 1, 2)
    return frame


@pytest.fixture(scope="module", params=["dta", "sav"])
def labelled(request, cohort, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("labelled") / f"cohort.{request.param}"
    write = pyreadstat.write_dta if request.param == "dta" else pyreadstat.write_sav
    write(cohort, str(path), variable_value_labels={"event": EVENT_LABELS, "sex": SEX_LABELS})
    return path


def test_a_code_column_reads_as_its_codes_and_an_untyped_one_as_its_labels(labelled, cohort):
    codes = read_table(labelled, ["event", "sex"], column_types={"event": "code"})
    np.testing.assert_array_equal(codes["event"].to_numpy(), cohort["event"].to_numpy(float))
    assert codes["event"].dtype == np.float64
    assert list(codes["sex"].astype(str)) == [SEX_LABELS[v] for v in cohort["sex"]]
    numeric = read_table(labelled, ["sex"], column_types={"sex": "numeric"})  # --numeric: the codes too
    np.testing.assert_array_equal(numeric["sex"].to_numpy(), cohort["sex"].to_numpy(float))


def test_a_code_without_a_label_keeps_its_value_and_shared_labels_are_refused(cohort, tmp_path):
    frame = cohort.copy()
    frame.loc[:4, "event"] = 9  # 9 has no label
    path = tmp_path / "partly.dta"
    pyreadstat.write_dta(frame, str(path), variable_value_labels={"event": EVENT_LABELS})
    got = read_table(path, ["event"], column_types={"event": "code"})["event"].to_numpy()
    np.testing.assert_array_equal(got, frame["event"].to_numpy(float))
    shared = tmp_path / "shared.sav"
    pyreadstat.write_sav(cohort, str(shared), variable_value_labels={"event": {0: "no", 1: "no"}})
    with pytest.raises(DataError, match=r"shared.sav: column 'event' labels codes 0 and 1 both 'no'"):
        read_table(shared, ["event"], column_types={"event": "code"})


def test_a_labelled_status_trains_as_the_same_data_in_csv(labelled, cohort, tmp_path):
    csv = tmp_path / "cohort.csv"
    as_text = cohort.copy()
    as_text["sex"] = as_text["sex"].map(SEX_LABELS)
    as_text.to_csv(csv, index=False)
    models = {}
    for name, source in (("labelled", labelled), ("csv", csv)):
        models[name] = tmp_path / f"{name}.pt"
        config = TrainConfig.from_dict({"id_col": "id", "epochs": 2, "hidden": [8], "quiet": True,
                                        "out": str(models[name])})
        workflow.train_from_file(config, source, lambda config: QuietReporter(Console(file=io.StringIO())))
    got, want = read_checkpoint(models["labelled"]), read_checkpoint(models["csv"])
    assert got.preprocessor.column_types() == want.preprocessor.column_types() == {
        "age": "numeric", "sex": "category", "bmi": "numeric"}
    assert torch.equal(got.train_event, want.train_event) and int(got.train_event.sum()) > 0
    assert got.best_metric == want.best_metric
    for key, value in want.target_weights.items():
        assert torch.equal(got.target_weights[key], value), key
    scores = run_survmom("evaluate", models["labelled"], labelled, "--json", check=True)
    assert '"harrell_c"' in scores.stdout


def test_labels_of_missing_codes_alone_leave_a_number_a_number(cohort, tmp_path):
    """An SPSS scale with a label on its user-missing code (999 "not recorded") and a Stata number with a label
    on its extended missing value (.a "refused") hold numbers: the label names a kind of missing, not a category."""
    frame = cohort.astype({"age": float, "bmi": float})
    frame.loc[::7, "age"] = 999.0
    frame.loc[::5, "bmi"] = -9.0
    sav = tmp_path / "scale.sav"
    pyreadstat.write_sav(frame, str(sav), variable_value_labels={"age": {999: "not recorded"}, "bmi": {-9: "n/a"}},
                         missing_ranges={"age": [999], "bmi": [{"lo": -99, "hi": -1}]})
    stata = frame.astype({"age": object})
    stata.loc[stata["age"] == 999.0, "age"] = "a"
    dta = tmp_path / "extended.dta"
    pyreadstat.write_dta(stata, str(dta), missing_user_values={"age": ["a"]},
                         variable_value_labels={"age": {"a": "refused"}})
    for path, columns in ((sav, ["age", "bmi"]), (dta, ["age"])):
        want, _ = (pyreadstat.read_sav if path.suffix == ".sav" else pyreadstat.read_dta)(str(path), usecols=columns)
        got = read_table(path, columns)
        for column in columns:
            assert got[column].dtype == np.float64, (path.name, column)
            np.testing.assert_array_equal(got[column].to_numpy(), want[column].to_numpy())
        assert got["age"].isna().sum() == (frame["age"] == 999.0).sum() > 0


def test_a_number_labelled_on_one_code_is_warned_about_as_one_input_per_value(cohort, tmp_path):
    """A Stata age whose only label is 999 "not recorded" (Stata has no user-missing 999): the labels make it
    categorical, one input per age; train says so and how to read it as a number. A labelled sex is not warned."""
    frame = cohort.astype({"age": float})
    frame.loc[::9, "age"] = 999.0
    path = tmp_path / "ages.dta"
    pyreadstat.write_dta(frame, str(path), variable_value_labels={"age": {999: "not recorded"}, "sex": SEX_LABELS})
    args = ["train", path, "--id-col", "id", "--epochs", "1", "--hidden", "8"]
    result = run_survmom(*args, "--out", tmp_path / "a.pt", check=True)
    warned = [line for line in result.stderr.splitlines() if "value labels" in line]
    assert len(warned) == 1
    counts = re.search(r"but (\d+) of its (\d+) values are numbers without one \(('\d+', ){3}\.\.\. \((\d+) in all",
                       warned[0])
    assert counts and int(counts[1]) + 1 == int(counts[2]) and counts[1] == counts[4] and int(counts[1]) > 40
    assert warned[0].startswith(f"warning: {path}: column 'age' has value labels ('not recorded') but ")
    assert warned[0].endswith("); treated as categorical, one input per value: --numeric age reads its codes as "
                              "numbers (the labelled codes too: make them missing first)")
    assert "stored as text" not in result.stderr
    numeric = run_survmom(*args, "--numeric", "age", "--out", tmp_path / "b.pt", check=True)
    assert "value labels" not in numeric.stderr


def test_labels_that_are_numbers_are_the_values_of_a_numeric_or_outcome_column(cohort, tmp_path):
    """pandas' to_stata writes a categorical as codes 0, 1, ... labelled with its categories; for numbers written
    as text ("1", "2", "5", "10", sorted as text: codes 0-3 for 1, 10, 2, 5) --numeric reads the numbers, not the
    codes, and an event categorical of R's "1"/"2" is 1/2 for --event-value 2. Oracle: pandas.read_stata of the
    same file, and the CSV of the same frame."""
    frame = cohort.copy()
    frame["dose"] = pd.Categorical(np.resize(["1", "2", "5", "10"], len(frame)))  # codes by text: 1, 10, 2, 5
    frame["status"] = pd.Categorical(np.where(frame["event"] == 1, "2", "1"))
    path = tmp_path / "categoricals.dta"
    frame.drop(columns="event").to_stata(path, write_index=False)
    oracle = pd.read_stata(path)
    assert oracle["dose"].astype(float).tolist() == np.resize([1.0, 2.0, 5.0, 10.0], len(frame)).tolist()
    read = read_table(path, ["dose", "status"], column_types={"dose": "numeric", "status": "code"})
    np.testing.assert_array_equal(read["dose"].to_numpy(), oracle["dose"].astype(float).to_numpy())
    np.testing.assert_array_equal(read["status"].to_numpy(), np.where(frame["event"] == 1, 2.0, 1.0))
    csv = tmp_path / "categoricals.csv"
    frame.drop(columns="event").to_csv(csv, index=False)
    flags = ["--id-col", "id", "--event-col", "status", "--event-value", "2", "--numeric", "dose", "--epochs", "2",
             "--hidden", "8", "--quiet"]
    for source in (path, csv):
        run_survmom("train", source, *flags, "-o", tmp_path / f"{source.suffix[1:]}.pt", check=True)
    got, want = read_checkpoint(tmp_path / "dta.pt"), read_checkpoint(tmp_path / "csv.pt")
    assert torch.equal(got.train_event, want.train_event) and int(got.train_event.sum()) > 0
    for key, value in want.target_weights.items():
        assert torch.equal(got.target_weights[key], value), key


def test_a_time_code_labelled_with_a_word_is_refused_not_read_as_a_time(cohort, tmp_path):
    """A follow-up time of 9999 labelled "lost to follow-up" is a special code: read as the time 9999 it would be
    the longest survival of the cohort. Refused naming it and the rows; a label on a code no row holds is fine,
    and so is a time whose labels are numbers."""
    frame = cohort.copy()
    frame.loc[:2, "time"] = 9999
    path = tmp_path / "lost.dta"
    pyreadstat.write_dta(frame, str(path), variable_value_labels={"time": {9999: "lost to follow-up"}})
    result = run_survmom("train", path, "--id-col", "id", "--epochs", "1", "-o", tmp_path / "m.pt")
    assert result.returncode == 2 and not (tmp_path / "m.pt").exists()
    assert result.stderr.strip() == (
        f"error: {path}: column 'time' holds codes with value labels (9999 'lost to follow-up') in 3 row(s): a "
        "special code, not an amount; make these codes missing (Stata: a .a-.z code; SPSS: MISSING VALUES) or drop "
        "those rows")
    unused = tmp_path / "unused.sav"
    pyreadstat.write_sav(cohort, str(unused), variable_value_labels={"time": {9999: "lost to follow-up"}})
    times = read_table(unused, ["time"], column_types={"time": "quantity"})["time"].to_numpy()
    np.testing.assert_array_equal(times, cohort["time"].to_numpy(float))
