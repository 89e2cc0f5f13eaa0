"""Shapes of real users' files, second sweep: a decimal comma first seen after the lines the dialect is detected
from, SAS's and Stata's "." for a missing number, ...

Each test fails without its fix.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from lifelines.datasets import load_rossi

from survmom import SurvivalModel
from survmom.data import Preprocessor, iter_table_batches, read_table
from survmom.errors import ConfigError, DataError

from cli_runner import run_survmom

ROSSI = ["--time-col", "week", "--event-col", "arrest", "--epochs", "1", "--hidden", "8"]


def _late_comma_file(path: Path) -> pd.DataFrame:
    """A semicolon file (decimal commas) whose first 60 rows are whole numbers: the decimal comma comes later."""
    rng = np.random.default_rng(0)
    n = 120
    frame = pd.DataFrame({"time": rng.exponential(10, n).round(2) + 1, "event": rng.integers(0, 2, n),
                          "dose": rng.normal(size=n).round(3), "age": rng.integers(30, 80, n)})
    frame.loc[:59, ["time", "dose"]] = frame.loc[:59, ["time", "dose"]].round(0) + 0.0
    frame.loc[7, "dose"] = np.nan

    def cell(value: float) -> str:
        return "" if np.isnan(value) else (f"{value:.0f}" if value.is_integer() else str(value).replace(".", ","))

    text = "time;event;dose;age\n" + "".join(f"{cell(t)};{e};{cell(d)};{a}\n" for t, e, d, a in zip(
        frame["time"], frame["event"], frame["dose"], frame["age"], strict=True))
    assert "," not in "".join(text.splitlines()[:55])  # detection sees whole numbers only
    path.write_text(text)
    return frame


def test_a_decimal_comma_first_seen_after_line_50_reads_as_numbers(tmp_path):
    path = tmp_path / "late.csv"
    frame = _late_comma_file(path)
    table = read_table(path)
    for column in ("time", "dose"):
        assert table[column].dtype == np.float64
        np.testing.assert_allclose(table[column], frame[column])
    # predict streams the file: the model's numeric column is read the same way
    streamed = pd.concat(iter_table_batches(path, ["dose"], 50, column_types={"dose": "numeric"}))
    np.testing.assert_allclose(streamed["dose"], frame["dose"])
    out = tmp_path / "m.pt"
    result = run_survmom("train", path, "--epochs", "1", "--hidden", "8", "--out", out, check=True)
    assert "categor" not in result.stderr and "non-numeric" not in result.stderr


def test_a_column_mixing_decimal_points_and_commas_stays_text(tmp_path):
    """Only a column whose every value is written with a decimal comma is read with it."""
    path = tmp_path / "mixed.csv"
    rows = [f"{i};{i % 2};{i}" for i in range(60)] + ["61;1;1,5", "62;0;2.5", "63;1;x"]
    path.write_text("time;event;v\n" + "\n".join(rows) + "\n")
    assert isinstance(read_table(path)["v"].dtype, pd.CategoricalDtype)


def test_a_lone_dot_is_a_missing_number(tmp_path):
    """SAS and Stata write "." for a missing number: a column of numbers and "." is numeric, "." missing; a
    text column keeps "." as a label."""
    rossi = load_rossi()
    rossi["wexp"] = rossi["wexp"].map({0: "no", 1: "."})
    text = rossi.astype({"age": object, "week": object})
    text.loc[::9, "age"] = "."
    text.loc[3, "week"] = " . "
    path = tmp_path / "sas.csv"
    text.to_csv(path, index=False)
    table = read_table(path)
    assert table["age"].dtype == np.float64 and table["age"].isna().sum() == len(rossi[::9])
    assert isinstance(table["wexp"].dtype, pd.CategoricalDtype) and set(table["wexp"].cat.categories) == {"no", "."}
    out = tmp_path / "m.pt"
    # the time column: a "." is a missing time (refused as such), not "non-numeric"
    result = run_survmom("train", path, *ROSSI, "--out", out)
    assert result.returncode == 2 and "missing" in result.stderr and "non-numeric" not in result.stderr
    assert not out.exists()
    rossi.assign(age=text["age"]).to_csv(path, index=False)
    result = run_survmom("train", path, *ROSSI, "--out", out, check=True)
    assert "mostly numbers" not in result.stderr
    # predict reads the model's numeric column with "." missing too
    run_survmom("predict", out, path, "-o", tmp_path / "p.csv", check=True)
    assert len(pd.read_csv(tmp_path / "p.csv")) == len(rossi)


def test_a_typed_files_text_column_of_numbers_and_dots_names_the_dot_and_numeric():
    frame = pd.DataFrame({"lab": ["1.5", "2.0", "3.1", "0.4", "5.5", "2.2", "7.0", "8.1", "9.3", "4.4", "."]})
    pre = Preprocessor.fit(frame, ["lab"], path=Path("d"))
    assert any("'.' is SAS's and Stata's missing number: --numeric lab reads it as numbers" in w
               for w in pre.warnings)
    numeric = Preprocessor.fit(frame, ["lab"], path=Path("d"), types={"lab": "numeric"})
    assert numeric.columns[0].missing_indicator


@pytest.mark.parametrize("delimiter", [";", "\t"])
def test_whole_numbers_in_a_semicolon_or_tab_file_are_unchanged(delimiter, tmp_path):
    path = tmp_path / "whole.csv"
    path.write_text(f"time{delimiter}event{delimiter}code\n" + "".join(
        f"{i + 1}{delimiter}{i % 2}{delimiter}{'a' if i % 3 else 'b,c'}\n" for i in range(80)))
    table = read_table(path)
    assert table["time"].dtype == np.int64 and isinstance(table["code"].dtype, pd.CategoricalDtype)


def _comma_named_rossi(tmp_path: Path) -> Path:
    rossi = load_rossi().rename(columns={"prio": "prior convictions, n", "race": "race, coded"})
    path = tmp_path / "commas.csv"
    rossi.to_csv(path, index=False)
    return path


def test_column_names_holding_commas_can_be_named_in_list_options(tmp_path):
    """--features dose, mg,age (split at every comma) and --categorical '"race, coded"' (CSV quoting) name the
    columns "dose, mg" and "race, coded"; the checkpoint keeps the whole names."""
    path, out = _comma_named_rossi(tmp_path), tmp_path / "m.pt"
    run_survmom("train", path, *ROSSI, "--features", "age,prior convictions,n, race, coded,fin",
                "--categorical", '"race, coded"', "--out", out, check=True)
    shown = run_survmom("inspect", out, check=True)
    shown = shown.stdout + shown.stderr
    assert "prior convictions, n" in shown and "race, coded" in shown
    run_survmom("train", path, *ROSSI, "--loss", "cox", "--strata", '"race, coded"', "--exclude",
                "prior convictions, n", "--out", tmp_path / "s.pt", check=True)


def test_an_unknown_name_in_a_list_option_names_the_close_match_and_the_quoting(tmp_path):
    path, out = _comma_named_rossi(tmp_path), tmp_path / "m.pt"
    result = run_survmom("train", path, *ROSSI, "--features", "agee,prior convictions", "--out", out)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert ("--features names 2 columns not in the file: 'agee', 'prior convictions' (available: " in result.stderr
            and "'agee': did you mean 'age'?; 'prior convictions': did you mean 'prior convictions, n'?; quote a "
                "name holding a comma: '\"a, b\",c'" in result.stderr)
    assert not out.exists()


# ------------------------------------------------------------------------------------------ Python API DataFrames


def _model() -> SurvivalModel:
    return SurvivalModel(verbose=False, epochs=1, hidden=(8,), seed=0)


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d.assign(mix=["a" if i % 2 else 1 for i in range(len(d))]),
     "DataFrame: column 'mix' mixes number and text values (rows 1, 2: 1, 'a'); give the column one type (e.g. "
     "df[col].astype(str) for labels, pd.to_numeric for numbers)"),
    (lambda d: pd.concat([d, d[["age"]]], axis=1),
     "DataFrame: duplicate column names: 'age' (columns 4, 10); rename or drop the copies"),
    (lambda d: d.assign(z=d["age"] + 1j),
     "DataFrame: cannot be stored as a typed table"),
    (lambda d: d.assign(stay=pd.to_timedelta(d["week"], unit="D")),
     "train DataFrame: column 'stay' holds durations; convert it to a number in the unit you mean (e.g. days: its "
     "total seconds / 86400) or --exclude it"),
])
def test_dataframes_pandas_cannot_store_or_survmom_cannot_use_are_one_clear_error(change, message):
    """A column mixing text and numbers, duplicate names, complex numbers (pyarrow's ArrowNotImplementedError
    escaped), a duration feature (was "holds dates/times ... days since a reference date")."""
    with pytest.raises(DataError) as error:
        _model().fit(change(load_rossi()), time_col="week", event_col="arrest")
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_a_sparse_column_is_read_as_its_dense_values():
    rossi = load_rossi()
    dense = _model().fit(rossi, time_col="week", event_col="arrest").predict(rossi)
    sparse = rossi.assign(prio=pd.arrays.SparseArray(rossi["prio"], fill_value=0))
    model = _model().fit(sparse, time_col="week", event_col="arrest")
    pd.testing.assert_frame_equal(model.predict(sparse), dense)


def test_a_predict_file_with_a_renamed_column_names_the_likely_spelling(tmp_path):
    rossi = load_rossi()
    train, out = tmp_path / "train.csv", tmp_path / "m.pt"
    rossi.to_csv(train, index=False)
    run_survmom("train", train, *ROSSI, "--out", out, check=True)
    new = tmp_path / "new.csv"
    rossi.rename(columns={"age": "Age", "prio": "prior"}).drop(columns=["fin"]).to_csv(new, index=False)
    result = run_survmom("predict", out, new, "-o", tmp_path / "p.csv")
    assert result.returncode == 2 and not (tmp_path / "p.csv").exists()
    assert result.stderr.strip() == (f"error: {new}: missing 3 columns the model was trained on: 'fin', 'age', "
                                     "'prio' ('age': the file has 'Age'; 'prio': the file has 'prior'; renamed?)")
    rossi.rename(columns={"week": "Week"}).to_csv(new, index=False)
    result = run_survmom("evaluate", out, new)
    assert result.returncode == 2 and result.stderr.strip().endswith("('week': the file has 'Week'; renamed?)")


def test_codes_written_as_floats_match_the_training_categories_and_strata(tmp_path):
    """pandas writes an integer code column holding a missing value as 1.0, 2.0: those are the categories and
    strata "1", "2" of a model trained on 1, 2 (every row was an unseen category, a stratified model refused
    the file)."""
    rossi = load_rossi()
    rossi["grade"], rossi["centre"] = rossi.index % 3 + 1, rossi.index % 2 + 1
    train, out = tmp_path / "train.csv", tmp_path / "m.pt"
    rossi.to_csv(train, index=False)
    run_survmom("train", train, *ROSSI, "--categorical", "grade", "--strata", "centre", "--out", out, check=True)
    floats = rossi.astype({"grade": float, "centre": float})
    floats.loc[0, "grade"] = np.nan
    new = tmp_path / "new.csv"
    floats.to_csv(new, index=False)
    assert "2.0" in new.read_text().splitlines()[2]
    result = run_survmom("predict", out, new, "-o", tmp_path / "new_pred.csv", check=True)
    assert "not seen in training" not in result.stderr
    run_survmom("predict", out, train, "-o", tmp_path / "pred.csv", check=True)
    expected, got = pd.read_csv(tmp_path / "pred.csv"), pd.read_csv(tmp_path / "new_pred.csv")
    pd.testing.assert_frame_equal(got.iloc[1:], expected.iloc[1:])


@pytest.mark.parametrize("name", ["u16.csv", "u16.tsv"])
def test_a_utf16_file_with_its_byte_order_mark_is_read_as_utf16(name, tmp_path):
    """Excel's "Unicode Text" and PowerShell write UTF-16 with a byte-order mark, which leaves no doubt: was
    "contains NUL bytes; binary or compressed data?", then refused with the iconv line; now read."""
    path, utf8 = tmp_path / name, tmp_path / f"utf8{Path(name).suffix}"
    for target, encoding in ((path, "utf-16"), (utf8, "utf-8")):
        load_rossi().to_csv(target, sep="\t" if name.endswith("tsv") else ",", index=False, encoding=encoding)
    pd.testing.assert_frame_equal(read_table(path), read_table(utf8))


@pytest.mark.parametrize("shape", ["rows end in a delimiter", "header ends in a delimiter", "blank lines of spaces"])
def test_trailing_delimiters_and_lines_of_spaces_are_read(shape, tmp_path):
    """Every data row ending in a delimiter (the header not), the header alone ending in one, a line holding
    only spaces or a tab: read as pandas reads them (each was 'not a readable CSV file')."""
    rossi = load_rossi()
    header, *rows = rossi.to_csv(index=False).splitlines()
    if shape == "rows end in a delimiter":
        rows = [row + "," for row in rows]
    elif shape == "header ends in a delimiter":
        header += ","
    else:
        rows[40:40] = ["   ", "\t"]
    path = tmp_path / "d.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    pd.testing.assert_frame_equal(read_table(path), rossi, check_dtype=False)
    run_survmom("train", path, *ROSSI, "--out", tmp_path / "m.pt", check=True)
    run_survmom("predict", tmp_path / "m.pt", path, "-o", tmp_path / "p.csv", check=True)


def test_a_ragged_row_among_rows_ending_in_a_delimiter_is_located(tmp_path):
    header, *rows = load_rossi().to_csv(index=False).splitlines()
    rows = [row + "," for row in rows]
    rows[99] = rows[99][:-1]
    path = tmp_path / "d.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    result = run_survmom("train", path, *ROSSI, "--out", tmp_path / "m.pt")
    assert result.returncode == 2 and "(line 101 has 9 fields, the first rows have 10)" in result.stderr


@pytest.mark.parametrize("where", ["rows", "header"])
def test_a_semicolon_file_with_trailing_semicolons_is_detected_and_read(where, tmp_path):
    rossi = load_rossi()
    header, *rows = rossi.to_csv(index=False, sep=";").splitlines()
    header, rows = (header, [row + ";" for row in rows]) if where == "rows" else (header + ";", rows)
    path = tmp_path / "d.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    pd.testing.assert_frame_equal(read_table(path), rossi, check_dtype=False)


def test_times_may_be_one_number_or_an_array():
    """predict(times=np.array([...])) raised NumPy's "truth value of an array is ambiguous", times=10 "'int'
    object is not iterable"."""
    rossi = load_rossi()
    model = _model().fit(rossi, time_col="week", event_col="arrest")
    listed = model.predict(rossi, times=[10.0, 20.0])
    pd.testing.assert_frame_equal(model.predict(rossi, times=np.array([10, 20])), listed)
    pd.testing.assert_frame_equal(model.predict(rossi, times=pd.Series([10.0, 20.0])), listed)
    pd.testing.assert_frame_equal(model.predict(rossi, times=10), listed.drop(columns="surv_20"))
    assert list(model.predict_survival_function(rossi, 10).columns) == [10.0]
    pd.testing.assert_frame_equal(model.predict(rossi, times="10, 20"), listed)
    assert model.evaluate(rossi, times=np.array([20]))["times"] == [20.0]
    with pytest.raises(ConfigError, match="times must be a number or a list of numbers, got 'soon'"):
        model.predict(rossi, times="soon")


def test_a_title_line_above_the_header_is_named_as_the_likely_cause(tmp_path):
    path, out = tmp_path / "export.csv", tmp_path / "m.pt"
    path.write_text("Recidivism study export of 2024-01-01\n" + load_rossi().to_csv(index=False))
    result = run_survmom("train", path, *ROSSI, "--out", out)
    assert result.returncode == 2 and not out.exists()
    assert result.stderr.strip() == (
        f"error: {path}: time column 'week' not found (available: 'Recidivism study export of 2024-01-01'); line 2 "
        "holds 'week': is it the header, under a title? remove the line(s) above it")
    piped = tmp_path / "piped.csv"  # one column and no line holding the name: a title, or another delimiter
    piped.write_text(load_rossi().to_csv(index=False, sep="|"))
    result = run_survmom("train", piped, *ROSSI, "--out", out)
    assert result.returncode == 2 and result.stderr.strip().endswith(
        "the file has one column: is its first line a title (remove the lines above the header), or are its fields "
        "separated otherwise (--delimiter)?"), result.stderr


def test_a_row_of_units_under_a_csv_header_is_named_as_such(tmp_path):
    """A CSV export with a row of units under the header ("weeks", "0/1", "years"): the outcome column refuses its
    first row, and the error says what such a row is. A bad value further down gets no such hint."""
    lines = load_rossi().to_csv(index=False).splitlines()
    units = tmp_path / "units.csv"
    units.write_text("\n".join([lines[0], "weeks,0/1,0/1,years,0/1,0/1,0/1,weeks,count", *lines[1:]]) + "\n")
    result = run_survmom("train", units, *ROSSI, "--out", tmp_path / "m.pt")
    assert result.returncode == 2 and result.stderr.strip().endswith(
        "it is the first row under the header: a row of units or labels? delete it"), result.stderr
    later = tmp_path / "later.csv"
    later.write_text("\n".join([*lines[:5], "weeks,1,0,27,0,1,0,0,3", *lines[5:]]) + "\n")
    result = run_survmom("train", later, *ROSSI, "--out", tmp_path / "m.pt")
    assert result.returncode == 2 and "row 5: 'weeks'" in result.stderr and "a row of units" not in result.stderr


def test_dates_written_as_text_are_warned_about_as_dates_not_as_an_identifier(tmp_path):
    """ISO dates in a CSV are read as dates (refused as a feature); 31/12/2020 stays text: one input per date,
    warned about as "an identifier?" before."""
    rossi = load_rossi()
    visits = pd.Timestamp("2019-01-01") + pd.to_timedelta(np.arange(len(rossi)) * 3, unit="D")
    rossi["visit"] = visits.strftime("%d/%m/%Y")
    path = tmp_path / "d.csv"
    rossi.to_csv(path, index=False)
    result = run_survmom("train", path, *ROSSI, "--out", tmp_path / "m.pt", check=True)
    assert "warning: column 'visit' holds dates written as text ('01/01/2019', '01/02/2020', '01/02/2021', ... " \
           "(346 in all)); treated as categorical, one input per date: convert it to a number (e.g. days since a " \
           "reference date) or --exclude it" in result.stderr
    assert "high-cardinality" not in result.stderr


def test_a_model_going_out_of_scope_removes_its_folder_without_a_resource_warning():
    import gc
    import warnings

    model = _model()
    folder = Path(model._folder.name)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del model
        gc.collect()
    assert not folder.exists() and [w for w in caught if issubclass(w.category, ResourceWarning)] == []


def test_a_zero_length_counting_process_row_is_refused_with_what_to_do(tmp_path):
    """A transplant on the day of acceptance gives a (0, 0] row: refused, as lifelines refuses start >= stop,
    now saying what such a row is and the usual remedies. A gap between a subject's rows is fine."""
    from lifelines.datasets import load_stanford_heart_transplants

    heart = load_stanford_heart_transplants()
    heart.loc[1, "stop"] = heart.loc[1, "start"]
    path, out = tmp_path / "heart.csv", tmp_path / "m.pt"
    heart.to_csv(path, index=False)
    args = ["train", path, "--time-col", "stop", "--event-col", "event", "--entry-col", "start", "--id-col", "id",
            "--epochs", "1", "--hidden", "8", "--out", out]
    result = run_survmom(*args)
    assert result.returncode == 2 and not out.exists()
    assert result.stderr.strip() == (
        f"error: {path}: column 'start' has 1 entry time(s) at or after the time in 'stop' (row 2: 0.0 >= 0.0); a "
        "row is at risk on (entry, time], so entry < time; zero-length rows (entry = time: 1 row) hold no time at "
        "risk: drop them, or move an event's entry back (e.g. by half a time unit)")
    gap = load_stanford_heart_transplants()
    second = gap.index[gap["id"].duplicated()][0]
    gap.loc[second, "start"] += 0.5
    gap.to_csv(path, index=False)
    run_survmom(*args, check=True)


def test_a_dot_in_a_stratum_column_is_a_missing_stratum(tmp_path):
    rossi = load_rossi().astype({"race": object})
    rossi.loc[[4, 9], "race"] = "."
    path, out = tmp_path / "sas.csv", tmp_path / "m.pt"
    rossi.to_csv(path, index=False)
    result = run_survmom("train", path, *ROSSI, "--strata", "race", "--out", out)
    assert result.returncode == 2 and not out.exists()
    assert "column 'race' has 2 missing values (rows 5, 10: '.', '.'); every row needs a stratum" in result.stderr


def test_a_late_decimal_comma_beside_points_is_not_guessed(tmp_path):
    """Whole numbers in the first lines, then "12.345" and "1,5" in one column: the point may be a decimal point
    there, so the column is not read with a decimal comma (12345 would be a silent misreading)."""
    path = tmp_path / "mixed.csv"
    rows = [f"{i + 1};{i % 2};{i}" for i in range(60)] + ["61;1;12.345", "62;0;1,5"]
    path.write_text("time;event;v\n" + "\n".join(rows) + "\n")
    assert isinstance(read_table(path)["v"].dtype, pd.CategoricalDtype)


@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_rows_empty_in_every_column_are_named_as_such(command, tmp_path):
    """A spreadsheet exports cleared rows below its data as ',,,,,,,,': was 'missing event values'."""
    rossi = load_rossi()
    path, out = tmp_path / "sheet.csv", tmp_path / "m.pt"
    rossi.to_csv(path, index=False)
    if command == "evaluate":
        run_survmom("train", path, *ROSSI, "--out", out, check=True)
    path.write_text(path.read_text() + ",,,,,,,,\n" * 3)
    args = ["train", path, *ROSSI, "--out", tmp_path / "n.pt"] if command == "train" else ["evaluate", out, path]
    result = run_survmom(*args)
    assert result.returncode == 2 and result.stderr.strip() == (
        f"error: {path}: 3 rows empty in every column (rows 433, 434, 435; e.g. a spreadsheet's cleared rows "
        "exported as ',,,,'): delete them")


@pytest.mark.parametrize("sep", [",", ";"])
def test_a_file_with_old_mac_line_ends_is_read(sep, tmp_path):
    """Excel for Mac's "CSV (Macintosh)" ends lines with a lone carriage return: was "cannot parse the CSV header
    (new-line character seen in unquoted field ...)"."""
    rossi = load_rossi()
    path = tmp_path / "mac.csv"
    rossi.to_csv(path, index=False, sep=sep, lineterminator="\r")
    pd.testing.assert_frame_equal(read_table(path), rossi, check_dtype=False)
    run_survmom("train", path, *ROSSI, "--out", tmp_path / "m.pt", check=True)


def test_a_header_repeated_inside_the_file_is_named_as_such(tmp_path):
    """Exports joined with cat keep each header: was "invalid event value (row 200: 'arrest') ... --event-value"."""
    header, *rows = load_rossi().to_csv(index=False).splitlines()
    path = tmp_path / "joined.csv"
    path.write_text("\n".join([header, *rows[:199], header, *rows[199:]]) + "\n")
    result = run_survmom("train", path, *ROSSI, "--out", tmp_path / "m.pt")
    assert result.returncode == 2 and result.stderr.strip() == (
        f"error: {path}: row 200 repeats the header ('week', 'arrest', ...): files joined with their header rows? "
        "delete the repeated header")


def test_an_id_set_as_the_index_is_named_as_such():
    rossi = load_rossi().rename_axis("pid").reset_index().set_index("pid")
    with pytest.raises(DataError, match=r"^DataFrame: 'pid' is the DataFrame's index, not a column; pass "
                                        r"df.reset_index\(\)$"):
        _model().fit(rossi, time_col="week", event_col="arrest", id_col="pid")


def test_true_false_for_a_feature_that_was_0_1_in_training_reads_as_1_0(tmp_path):
    """A 0/1 flag made bool in pandas or a typed file: was refused ("holds true/false values, not numbers"); the
    other way round (bool in training, 1/0 now) was already accepted. A column that was not 0/1 in training still
    refuses true/false."""
    rossi = load_rossi()
    model = _model().fit(rossi, time_col="week", event_col="arrest")
    flags = rossi.assign(fin=rossi["fin"].astype(bool), mar=rossi["mar"].astype("boolean"))
    flags.loc[3, "mar"] = pd.NA
    expected = model.predict(rossi.assign(mar=rossi["mar"].astype(float).where(rossi.index != 3)))
    pd.testing.assert_frame_equal(model.predict(flags), expected)
    path = tmp_path / "flags.parquet"
    rossi.assign(fin=rossi["fin"].astype(bool)).to_parquet(path)
    pd.testing.assert_frame_equal(model.predict(path), model.predict(rossi))
    text = tmp_path / "flags.csv"  # TRUE/FALSE text in a CSV (streamed by predict, read whole by evaluate)
    rossi.assign(fin=rossi["fin"].map({1: "TRUE", 0: "FALSE"})).to_csv(text, index=False)
    pd.testing.assert_frame_equal(model.predict(text), model.predict(rossi))
    assert model.score(text) == model.score(rossi)
    with pytest.raises(DataError, match="column 'age' was numeric in training but holds true/false values"):
        model.predict(rossi.assign(age=rossi["age"] > 30))


def test_a_windows_excel_csv_is_refused_with_the_cp1252_option(tmp_path):
    """Excel on Windows writes its CSV in cp1252: `iconv -f latin1` (the advice before) turns its dashes and euro
    signs into control characters without a word; --encoding cp1252 reads it."""
    rossi = load_rossi().rename(columns={"age": "âge"})
    rossi["dose"] = "5 – 10 €"
    path = tmp_path / "excel.csv"
    rossi.to_csv(path, index=False, encoding="cp1252")
    result = run_survmom("train", path, *ROSSI, "--out", tmp_path / "m.pt")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert ("is not valid UTF-8 text (first bad byte 0xe2 at byte offset 16, on line 1: 'week,arrest,fin,\\xe2ge,"
            "race,wexp,mar,paro,prio,dos'; in the header row); pass --encoding cp1252 (a CSV from Excel on Windows) or "
            "--encoding latin-1") in result.stderr
    assert read_table(path, encoding="cp1252")["dose"].iloc[0] == "5 – 10 €"


def test_a_time_column_of_quoted_decimal_commas_says_how_to_write_it(tmp_path):
    """A European sheet saved as a comma CSV quotes "20,5": the time column was refused with the values only."""
    rossi = load_rossi()
    rossi["week"] = (rossi["week"] + 0.5).astype(str).str.replace(".", ",", regex=False)
    path = tmp_path / "d.csv"
    rossi.to_csv(path, index=False)
    result = run_survmom("train", path, *ROSSI, "--out", tmp_path / "m.pt")
    assert result.returncode == 2 and result.stderr.strip().endswith(
        "'20,5', '17,5', '25,5', '52,5', '52,5', ...); numbers written with decimal commas or thousands separators: "
        "write them with '.' as the decimal point and no separators (a semicolon-separated file reads decimal "
        "commas)")
