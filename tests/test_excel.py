"""Excel workbooks (.xlsx, .xlsm): values against pandas.read_excel, the sheet's layout (title rows, spacer
columns, empty rows), types from the cells, error cells, formulas, --sheet, refused files, predict -o .xlsx,
and training on a workbook giving the model and predictions of the same frame as Parquet."""

from __future__ import annotations

import datetime
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from survmom.data import excel, table_writers
from survmom.data.read import declared_types, iter_table_batches, read_table, table_columns, text_notice
from survmom.errors import ConfigError, DataError

from assertions import raises_one_line
from cli_runner import checkpoint_tensors, run_survmom

FAST = ("--epochs", "2", "--batch", "32", "--hidden", "8", "--bank-size", "64", "--seed", "5", "--quiet")


def _book(path: Path, *sheets: tuple[str, list[list]]) -> Path:
    """A workbook with one sheet per (name, rows), written by openpyxl."""
    book = openpyxl.Workbook()
    book.remove(book.active)
    for name, rows in sheets:
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(row)
    book.save(path)
    return path


def _cohort(n: int = 60) -> list[list]:
    rng = np.random.default_rng(3)
    rows = [["time", "event", "age", "group"]]
    rows += [[int(rng.integers(1, 100)), int(i % 3 == 0), float(rng.integers(40, 80)) + 0.5, "ab"[i % 2]]
             for i in range(n)]
    return rows


# ------------------------------------------------------------------------------------------------ values


def test_values_and_types_match_pandas_read_excel(tmp_path):
    frame = pd.DataFrame({"time": [1.5, 2.25, 3.0, 4.125], "event": [1, 0, 1, 1], "n": [3, 4, 5, 6],
                          "centre": ["north", "south", None, "north"], "dose": [1.5, np.nan, 2.0, 0.25],
                          "smoker": [True, False, True, None]})
    path = tmp_path / "d.xlsx"
    frame.to_excel(path, index=False, engine="openpyxl")
    got, want = read_table(path), pd.read_excel(path, engine="openpyxl")
    assert list(got.columns) == list(want.columns)
    for name in ["time", "event", "n", "dose"]:
        np.testing.assert_array_equal(got[name].to_numpy(dtype=float), want[name].to_numpy(dtype=float))
    assert got["centre"].astype(object).where(got["centre"].notna(), None).tolist() == \
        want["centre"].where(want["centre"].notna(), None).tolist()
    assert str(got["event"].dtype) == "int64" and str(got["time"].dtype) == "float64"
    assert isinstance(got["centre"].dtype, pd.CategoricalDtype)
    assert got["smoker"].tolist()[:3] == [True, False, True] and pd.isna(got["smoker"].tolist()[3])
    assert declared_types(path) == {"time": "numeric", "event": "numeric", "n": "numeric", "centre": "category",
                                    "dose": "numeric"}


def test_an_xlsm_workbook_is_read_as_xlsx(tmp_path):
    path = tmp_path / "macros.XLSM"
    path.write_bytes(_book(tmp_path / "d.xlsx", ("S", _cohort(4))).read_bytes())
    assert read_table(path).equals(read_table(tmp_path / "d.xlsx"))


@pytest.mark.parametrize("rows, message", [([], "sheet 'S' is empty"),
                                           ([["time", "event"]], "sheet 'S' has no data rows (header on row 1)")])
def test_an_empty_sheet_or_a_header_alone_is_refused(rows, message, tmp_path):
    path = _book(tmp_path / "e.xlsx", ("S", rows))
    raises_one_line(DataError, lambda: read_table(path), "e.xlsx", message)


def test_a_title_above_the_header_is_skipped_and_said(tmp_path):
    path = _book(tmp_path / "t.xlsx", ("Cohort", [["Follow-up study, extracted 2024-05-01"], [],
                                                  ["time ", " event", "age"], [1, 1, 50], [2, 0, 61]]))
    assert table_columns(path) == ["time", "event", "age"]
    assert read_table(path)["age"].tolist() == [50, 61]
    assert excel.layout(path).table is not None  # read once: the typing pass kept the values
    assert text_notice(path) == f"{path}: header on row 3 of sheet 'Cohort', the rows above it skipped"


def test_a_header_that_cannot_be_told_from_the_rows_is_refused(tmp_path):
    path = _book(tmp_path / "a.xlsx", ("S", [["time", "event"], [1, 0, 5, 7], [2, 1, 6, 8]]))
    raises_one_line(DataError, lambda: read_table(path), "a.xlsx", "cannot tell its header row", "row 2",
                    "put the column names in one row")


def test_a_named_column_without_data_is_read_as_missing(tmp_path):
    path = _book(tmp_path / "n.xlsx", ("S", [["time", "event", "note", "notes2"], [1, 0], [2, 1, None, "NA"]]))
    frame = read_table(path)
    assert list(frame.columns) == ["time", "event", "note", "notes2"] and frame[["note", "notes2"]].isna().all().all()
    assert excel.layout(path).table is not None


def test_a_row_of_units_under_the_header_is_refused(tmp_path):
    path = _book(tmp_path / "u.xlsx", ("S", [["time", "event", "age", "chol"], ["days", None, "years", "mg/dL"],
                                             [1, 0, 50, 190.5], [2, 1, 61, 240]]))
    raises_one_line(DataError, lambda: read_table(path), "u.xlsx", "row 2, under the header, holds text where the "
                    "rows below hold numbers ('time': 'days', 'age': 'years', 'chol': 'mg/dL')", "second header row")


def test_one_text_cell_in_the_first_row_of_a_numeric_column_is_a_mixed_column(tmp_path):
    path = _book(tmp_path / "u.xlsx", ("S", [["time", "event", "age"], [1, 0, "unknown"], [2, 1, 61], [3, 1, 70]]))
    assert read_table(path)["age"].astype(object).tolist() == ["unknown", "61", "70"]


def test_data_below_an_empty_header_cell_names_the_column_letter(tmp_path):
    path = _book(tmp_path / "e.xlsx", ("S", [["time", "event", None, "age"], [1, 0, 5, 50], [2, 1, 6, 60]]))
    message = raises_one_line(DataError, lambda: table_columns(path), "e.xlsx", "column C has data but no name",
                              "(row 1)")
    assert "index" not in message
    frame = pd.DataFrame({"time": [1.0, 2.0], "event": [0, 1], "age": [50, 60]})
    frame.to_excel(tmp_path / "indexed.xlsx")  # pandas' default: the index as a nameless column A
    raises_one_line(DataError, lambda: table_columns(tmp_path / "indexed.xlsx"), "column A has data but no name",
                    "a row index, as pandas' to_excel writes by default? write the sheet with index=False")


def test_duplicate_names_are_refused_as_by_every_reader(tmp_path):
    path = _book(tmp_path / "d.xlsx", ("S", [["time", "event", "age", "age "], [1, 0, 5, 6]]))
    raises_one_line(DataError, lambda: table_columns(path), "duplicate column names in the header",
                    "'age' (columns 3, 4)")


def test_spacer_columns_formatted_cells_and_empty_rows_are_not_data(tmp_path):
    path = tmp_path / "s.xlsx"
    book = openpyxl.Workbook()
    sheet = book.active
    for row in [["time", "event", None, "age"], [1, 0, None, 50], [None, None], [2, 1, None, 60], [3, 1, None, 70]]:
        sheet.append(row)
    sheet.cell(row=40, column=12).fill = openpyxl.styles.PatternFill("solid", fgColor="FFFF00")  # used range
    sheet.cell(row=41, column=2).value = "   "
    book.save(path)
    frame = read_table(path)
    assert list(frame.columns) == ["time", "event", "age"]
    assert frame["age"].tolist() == [50, 60, 70]  # the empty row is not a row, as a CSV's blank line


def test_a_mixed_column_is_text_written_as_excel_shows_numbers(tmp_path):
    path = _book(tmp_path / "m.xlsx", ("S", [["time", "event", "stage", "dose"], [1, 0, 2.0, 1], [2, 1, "IIIa", "NA"],
                                             [3, 1, 3.5, "12"], [4, 0, " n/a ", "."], [5, 1, None, " 2.5 "],
                                             [6, 0, "#REF!", 3]]))
    frame = read_table(path)
    assert frame["stage"].astype(object).tolist()[:3] == ["2", "IIIa", "3.5"] and frame["stage"].isna().sum() == 3
    # numbers stored as text and the missing spellings among numbers: a numeric column
    np.testing.assert_array_equal(frame["dose"].to_numpy(), [1.0, np.nan, 12.0, np.nan, 2.5, 3.0])
    # a mix of kinds is text by the reader's guess, as in a CSV: not a declared type (training checks it as a CSV's)
    assert declared_types(path) == {"time": "numeric", "event": "numeric", "dose": "numeric"}


def test_a_column_of_text_alone_stays_text(tmp_path):
    path = _book(tmp_path / "c.xlsx", ("S", [["time", "event", "zip"], [1, 0, "007"], [2, 1, "012"]]))
    assert read_table(path)["zip"].astype(object).tolist() == ["007", "012"]


def test_excel_error_values_are_missing_and_counted_in_the_notice(tmp_path):
    path = _book(tmp_path / "x.xlsx", ("S", [["time", "event", "ratio"], [1, 0, 0.5], [2, 1, "#DIV/0!"],
                                             [3, 1, "#N/A"], [4, 0, "#VALUE!"]]))
    np.testing.assert_array_equal(read_table(path)["ratio"].to_numpy(), [0.5, np.nan, np.nan, np.nan])
    assert text_notice(path) == f"{path}: Excel error values read as missing: column 'ratio' 2 cells (#DIV/0!, #VALUE!)"


def test_dates_times_and_durations_keep_their_kind(tmp_path):
    path = _book(tmp_path / "t.xlsx", ("S", [["time", "event", "born", "at"],
                                             [1, 0, datetime.date(1950, 1, 2), datetime.time(8, 30)],
                                             [2, 1, datetime.datetime(1961, 5, 6, 7, 8), None]]))
    frame = read_table(path)
    assert frame["born"].tolist() == [pd.Timestamp("1950-01-02"), pd.Timestamp("1961-05-06 07:08")]
    assert frame["at"].tolist()[0] == datetime.time(8, 30)


def test_a_date_feature_is_refused_in_training_naming_the_column(tmp_path):
    rows = [[*r, datetime.date(2000, 1, 1 + i % 28)] for i, r in enumerate(_cohort())]
    rows[0][-1] = "visit"
    path = _book(tmp_path / "d.xlsx", ("S", rows))
    result = run_survmom("train", path, *FAST, "-o", tmp_path / "m.pt")
    assert result.returncode == 2 and "'visit'" in result.stderr and "date" in result.stderr
    assert not (tmp_path / "m.pt").exists()


def test_formulas_never_calculated_are_refused(tmp_path):
    path = _book(tmp_path / "f.xlsx", ("S", [["time", "event", "bmi"], [1, 0, "=70/1.7^2"], [2, 1, "=80/1.8^2"]]))
    raises_one_line(DataError, lambda: read_table(path), "f.xlsx", "column 'bmi' holds formulas without saved "
                    "results", "row 2: =70/1.7^2", "open and save it in Excel")


def test_the_first_sheet_is_read_and_the_others_named(tmp_path):
    path = _book(tmp_path / "w.xlsx", ("Notes", [["about"], ["x"]]), ("Data", _cohort(3)))
    assert table_columns(path) == ["about"]
    assert text_notice(path) == f"{path}: read sheet 'Notes', the first of 2 (others: 'Data'; --sheet chooses)"
    assert table_columns(path, sheet="Data") == table_columns(path, sheet="2") == ["time", "event", "age", "group"]
    assert text_notice(path, sheet="Data") is None


def test_a_notes_sheet_read_by_default_gets_no_delimiter_advice(tmp_path):
    """A one-column notes sheet read by default: the error names the other sheets, not --delimiter (text only)."""
    path = _book(tmp_path / "w.xlsx", ("Notes", [["about"], ["x"]]), ("Data", _cohort(3)))
    out = tmp_path / "m.pt"
    result = run_survmom("train", path, "--out", out)
    assert result.returncode == 2 and not out.exists()
    assert "time column 'time' not found (available: 'about')" in result.stderr
    assert "others: 'Data'; --sheet chooses" in result.stderr
    assert "--delimiter" not in result.stderr and "title" not in result.stderr


def test_a_cover_sheet_without_data_read_by_default_names_the_other_sheets(tmp_path):
    path = _book(tmp_path / "w.xlsx", ("README", [["GBSG2 export, 2026"]]), ("Data", _cohort(3)))
    raises_one_line(DataError, lambda: table_columns(path), "w.xlsx", "sheet 'README' has no data rows",
                    "first sheet, read by default (others: 'Data'): --sheet NAME or --sheet N reads another")
    out = tmp_path / "m.pt"
    result = run_survmom("train", path, "--out", out)
    assert result.returncode == 2 and "--sheet NAME" in result.stderr and not out.exists()
    assert table_columns(path, sheet="Data") == ["time", "event", "age", "group"]
    single = _book(tmp_path / "one.xlsx", ("README", [["GBSG2 export, 2026"]]))
    with pytest.raises(DataError) as error:  # one sheet, or a sheet named: nothing else to suggest
        table_columns(single)
    assert "--sheet" not in str(error.value)


def test_a_hidden_first_sheet_is_passed_over(tmp_path):
    path = tmp_path / "h.xlsx"
    book = openpyxl.Workbook()
    book.active.title = "Lookup"
    book.active.append(["code", "label"])
    book.active.append([1, "stage I"])
    book.active.sheet_state = "hidden"
    data = book.create_sheet("Data")
    for row in _cohort(3):
        data.append(row)
    book.active = 1
    book.save(path)
    assert table_columns(path) == ["time", "event", "age", "group"]
    assert text_notice(path) == (f"{path}: read sheet 'Data', the first visible of 2 (others: 'Lookup' (hidden); "
                                 "--sheet chooses)")
    assert table_columns(path, sheet="1") == ["code", "label"]


def test_an_unknown_sheet_lists_the_sheets(tmp_path):
    path = _book(tmp_path / "w.xlsx", ("Notes", [["about"], ["x"]]), ("Data", _cohort(3)))
    for sheet in ("Cohort", "3"):
        raises_one_line(DataError, lambda s=sheet: table_columns(path, sheet=s), "w.xlsx", f"no sheet '{sheet}'",
                        "a number from 1 to 2", "sheets: 'Notes', 'Data'")


def test_a_sheet_for_another_format_is_a_config_error(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("time,event\n1,0\n")
    with pytest.raises(ConfigError, match=r"--sheet 'Data' is for Excel workbooks \(.xlsx, .xlsm\); .*d.csv"):
        read_table(path, sheet="Data")


@pytest.mark.parametrize("suffix", [".xls", ".xlsb", ".ods"])
def test_other_spreadsheet_formats_are_refused_with_what_to_do(suffix, tmp_path):
    path = tmp_path / f"old{suffix}"
    path.write_bytes(b"\xd0\xcf\x11\xe0rest")
    raises_one_line(DataError, lambda: read_table(path), f"old{suffix}", "is not read; save it as .xlsx",
                    ".csv (CSV UTF-8)")


def test_encrypted_and_corrupt_workbooks_are_refused(tmp_path):
    locked = tmp_path / "locked.xlsx"
    locked.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(500))  # an encrypted workbook is an OLE2 file
    raises_one_line(DataError, lambda: read_table(locked), "locked.xlsx", "password-protected (encrypted)")
    broken = tmp_path / "broken.xlsx"
    broken.write_bytes(_book(tmp_path / "ok.xlsx", ("S", _cohort(3))).read_bytes()[:300])
    raises_one_line(DataError, lambda: read_table(broken), "broken.xlsx", "not a readable Excel workbook")


def test_a_workbook_named_csv_is_still_detected(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes(_book(tmp_path / "ok.xlsx", ("S", _cohort(3))).read_bytes())
    raises_one_line(DataError, lambda: read_table(path), "d.csv", "looks like a ZIP archive or Excel workbook",
                    "a workbook when named .xlsx")


@pytest.mark.parametrize("cache_cells", [excel.CACHE_CELLS, 10])
def test_batches_give_the_rows_of_a_whole_read(cache_cells, tmp_path, monkeypatch):
    """From the values kept by the typing pass, and (a sheet too large to keep) from a second, streamed pass."""
    monkeypatch.setattr(excel, "CACHE_CELLS", cache_cells)
    monkeypatch.setattr(excel, "_last", None)
    rows = _cohort(25)
    rows[7][2] = "NA"
    path = _book(tmp_path / "b.xlsx", ("S", rows))
    whole = read_table(path)
    parts = list(iter_table_batches(path, ["group", "age"], 10))
    assert [len(p) for p in parts] == [10, 10, 5] and parts[1].index[0] == 10
    pd.testing.assert_frame_equal(pd.concat(parts), whole[["group", "age"]], check_categorical=False)
    assert (excel.layout(path).table is None) == (cache_cells == 10)


# ------------------------------------------------------------------------------------------------ writing


def test_predict_writes_a_workbook_with_the_values_to_16_digits(tmp_path):
    data = _book(tmp_path / "d.xlsx", ("S", _cohort()))
    model = tmp_path / "m.pt"
    run_survmom("train", data, *FAST, "-o", model, check=True)
    run_survmom("predict", model, data, "-o", tmp_path / "p.xlsx", "--times", "30", "--quiet", check=True)
    run_survmom("predict", model, data, "-o", tmp_path / "p.parquet", "--times", "30", "--quiet", check=True)
    got, want = pd.read_excel(tmp_path / "p.xlsx", engine="openpyxl"), pd.read_parquet(tmp_path / "p.parquet")
    assert list(got.columns) == list(want.columns)
    np.testing.assert_allclose(got.to_numpy(dtype=float), want.to_numpy(dtype=float), rtol=1e-15)  # openpyxl: 16 digits


def test_too_many_rows_for_a_sheet_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(table_writers, "EXCEL_MAX_ROWS", 50)
    data = _book(tmp_path / "d.xlsx", ("S", _cohort()))
    model = tmp_path / "m.pt"
    run_survmom("train", data, *FAST, "-o", model, check=True)
    result = run_survmom("predict", model, data, "-o", tmp_path / "p.xlsx")
    assert result.returncode == 2 and "more than 50 predictions" in result.stderr and ".parquet" in result.stderr
    assert not (tmp_path / "p.xlsx").exists() and list(tmp_path.glob(".p.xlsx*")) == []


def test_numeric_on_a_mixed_column_names_rows_and_values(tmp_path):
    rows = _cohort()
    rows[3][3], rows[0][3] = 7, "group"
    path = _book(tmp_path / "m.xlsx", ("S", rows))
    result = run_survmom("train", path, *FAST, "--numeric", "group", "-o", tmp_path / "m.pt")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "column 'group'" in result.stderr and "non-numeric value" in result.stderr and "'b'" in result.stderr


# ------------------------------------------------------------------------------------------------ oracles


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    return dict(checkpoint_tensors(torch.load(path, weights_only=True)))


def _gbsg2() -> pd.DataFrame:
    from sksurv.datasets import load_gbsg2

    x, y = load_gbsg2()
    frame = x.copy()
    for name in frame.select_dtypes("category"):
        frame[name] = frame[name].astype(str)
    frame["time"], frame["event"] = y["time"], y["cens"].astype(int)
    return frame


def _rossi() -> pd.DataFrame:
    from lifelines.datasets import load_rossi

    return load_rossi().rename(columns={"week": "time", "arrest": "event"})


@pytest.mark.slow
@pytest.mark.parametrize("load", [_rossi, _gbsg2])
def test_a_workbook_trains_the_model_of_the_same_frame_as_parquet(load, tmp_path):
    frame = load()
    book, parquet = tmp_path / "cohort.xlsx", tmp_path / "cohort.parquet"
    with pd.ExcelWriter(book, engine="openpyxl") as writer:
        pd.DataFrame({"read me": ["the data are on the next sheet"]}).to_excel(writer, sheet_name="About",
                                                                              index=False)
        frame.to_excel(writer, sheet_name="Cohort", index=False)
    frame.to_parquet(parquet, index=False)
    for source, sheet in ((book, ["--sheet", "Cohort"]), (parquet, [])):
        run_survmom("train", source, *sheet, *FAST, "-o", tmp_path / f"{source.suffix[1:]}.pt", check=True)
    want, got = _tensors(tmp_path / "parquet.pt"), _tensors(tmp_path / "xlsx.pt")
    assert got.keys() == want.keys()
    for key in want:
        assert torch.equal(got[key], want[key]), key
    run_survmom("predict", tmp_path / "xlsx.pt", book, "--sheet", "2", "-o", tmp_path / "a.parquet", "--quiet",
                check=True)
    run_survmom("predict", tmp_path / "parquet.pt", parquet, "-o", tmp_path / "b.parquet", "--quiet", check=True)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "a.parquet"), pd.read_parquet(tmp_path / "b.parquet"))


@pytest.mark.slow
def test_train_resume_predict_evaluate_on_a_sheet_end_to_end(tmp_path):
    book = _book(tmp_path / "w.xlsx", ("Notes", [["about"], ["x"]]), ("Data", _cohort(120)))
    model = tmp_path / "m.pt"
    trained = run_survmom("train", book, "--sheet", "Data", *FAST, "-o", model, check=True)
    assert "read sheet" not in trained.stderr
    assert torch.load(model, weights_only=True)["config"]["sheet"] == "Data"
    run_survmom("resume", model, "--epochs", "3", "--quiet", check=True)  # the saved sheet
    other = run_survmom("resume", model, "--epochs", "4", "--data", book, "--quiet")  # another file: its first sheet
    assert other.returncode == 2 and "missing column(s) 'time'" in other.stderr
    assert "; read sheet 'Notes', the first of 2 (others: 'Data'; --sheet chooses)" in other.stderr
    run_survmom("resume", model, "--epochs", "4", "--data", book, "--sheet", "Data", "--quiet", check=True)
    evaluated = run_survmom("evaluate", model, book, "--sheet", "Data", "--json", check=True)
    assert '"harrell_c"' in evaluated.stdout
    wrong = run_survmom("predict", model, book)
    assert wrong.returncode == 2 and "read sheet 'Notes', the first of 2" in wrong.stderr
    untold = run_survmom("train", book, *FAST, "-o", tmp_path / "n.pt")
    assert untold.returncode == 2 and "time column 'time' not found" in untold.stderr
    assert "read sheet 'Notes', the first of 2" in untold.stderr
    predicted = run_survmom("predict", model, book, "--sheet", "2", check=True)
    assert len(pd.read_csv(pd.io.common.StringIO(predicted.stdout))) == 120


def test_the_python_api_reads_a_workbook(tmp_path):
    from survmom.app.survival_model import SurvivalModel

    book = _book(tmp_path / "w.xlsx", ("Data", _cohort()))
    model = SurvivalModel(verbose=False, epochs=2, hidden=[8], seed=5).fit(book)
    parquet = tmp_path / "w.parquet"
    pq.write_table(pa.Table.from_pandas(read_table(book), preserve_index=False), parquet)
    pd.testing.assert_frame_equal(model.predict(book), model.predict(parquet))
    second = _book(tmp_path / "s.xlsx", ("Notes", [["about"], ["x"]]), ("Data", _cohort()))
    again = SurvivalModel(verbose=False, epochs=2, hidden=[8], seed=5, sheet="Data").fit(second)
    pd.testing.assert_frame_equal(again.predict(book), model.predict(book))
    # predict / evaluate / score read another workbook's sheet by the keyword, as the commands' --sheet
    pd.testing.assert_frame_equal(model.predict(second, sheet="Data"), model.predict(book))
    assert model.score(second, sheet="2") == model.score(book) == model.evaluate(book)["harrell_c"]
    with pytest.raises(ConfigError, match="unknown option 'shet'; the options for reading a file are"):
        model.predict(second, shet="Data")
    with pytest.raises(ConfigError, match="sheet is for reading a file path, not a DataFrame"):
        model.predict(read_table(book), sheet="Data")


def test_a_sheet_number_in_a_yaml_config_is_its_text(tmp_path):
    from survmom.training.config import TrainConfig, load_yaml

    config = tmp_path / "c.yaml"
    config.write_text("sheet: 2\n")
    assert TrainConfig.from_dict(load_yaml(config), source=str(config)).sheet == "2"


def test_a_column_of_numbers_and_a_few_words_is_warned_about_as_in_a_csv(tmp_path):
    """An age column of numbers with three "unknown" cells is text (categorical) in a workbook as in a CSV; the
    same warning says so ("the same checks and messages for every format"). Oracle: the CSV of the same frame."""
    frame = _rossi()
    frame["age"] = frame["age"].astype(object)
    frame.loc[[3, 50, 100], "age"] = "unknown"
    workbook, csv = tmp_path / "r.xlsx", tmp_path / "r.csv"
    frame.to_excel(workbook, index=False, engine="openpyxl")
    frame.to_csv(csv, index=False)
    assert "age" not in declared_types(workbook) and declared_types(workbook)["fin"] == "numeric"
    warned = {}
    for path in (workbook, csv):
        result = run_survmom("train", path, *FAST[:-1], "-o", tmp_path / f"{path.suffix[1:]}.pt", check=True)
        warned[path.suffix] = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert warned[".xlsx"] == warned[".csv"] == [
        "warning: column 'age' is mostly numbers but has text values ('unknown'); treated as categorical, fix or "
        "blank those values to use it as numeric"]
