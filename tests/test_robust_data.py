"""Robustness of reading, preprocessing and prediction against unusual but possible input.

Exact ``surv_<t>`` labels for close times, huge but finite covariates (no NaN/inf predictions, no numpy
warnings), extra columns ignored at predict time whatever they hold (binary, Latin-1 text, lists), binary
Parquet columns holding UTF-8 text, nested columns, and ``-o`` naming a folder. Errors must be one line on
stderr with exit code 2, naming the file, the column and offending values.
"""

from __future__ import annotations

import gzip
import io
import json
import math
import os
import stat
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from survmom.app.predict import (
    LoadedModel,
    check_times,
    load_model,
    predict_file,
    time_label,
    time_text,
    time_texts,
)
from survmom.data import Preprocessor, iter_table_batches, parse_time, read_table, table_columns
from survmom.errors import ConfigError, DataError

from cli_runner import run_survmom

ROOT = Path(__file__).resolve().parents[1]


survmom = run_survmom  # finished process, stdout and stderr captured; exit code not checked


def cohort(n: int = 40, seed: int = 0) -> pd.DataFrame:
    """A small cohort: id, two numeric and two text features, time (days) and event."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "id": [f"P{i:03d}" for i in range(n)],
        "age": rng.integers(30, 90, n).astype(float),
        "bmi": np.round(rng.normal(27, 4, n), 1),
        "sex": rng.choice(["F", "M"], n),
        "stage": rng.choice(["I", "II", "III"], n),
        "time": rng.integers(1, 1000, n),
        "event": np.tile([1, 0], n // 2),
    })


def write_parquet(table: pa.Table, path: Path) -> Path:
    pq.write_table(table, path)
    return path


def one_error_line(result: subprocess.CompletedProcess, *expected: str) -> str:
    """Assert exit code 2 with a single ``error:`` line on stderr holding every ``expected`` text."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr and "Warning" not in result.stderr
    for text in expected:
        assert text in lines[0], f"{text!r} not in {lines[0]!r}"
    return lines[0]


def predictions(result: subprocess.CompletedProcess) -> pd.DataFrame:
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr, result.stderr
    return pd.read_csv(io.StringIO(result.stdout))


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    """A cox model (2 epochs, id column) trained on :func:`cohort`, and that cohort as CSV."""
    folder = tmp_path_factory.mktemp("trained")
    data, model = folder / "cohort.csv", folder / "model.pt"
    cohort().to_csv(data, index=False)
    result = survmom("train", data, "--id-col", "id", "--epochs", "2", "--hidden", "8", "-q", "-o", model)
    assert result.returncode == 0, result.stderr
    return {"data": data, "model": model, "folder": folder}


# --------------------------------------------------------------------------------------------- 1. --times labels


@pytest.mark.parametrize(("time", "label"), [
    (365.0, "365"), (100.5, "100.5"), (0.0, "0"), (1e20, "1e+20"), (1e-07, "1e-07"), (0.1, "0.1"),
    (1234567.0, "1234567"), (1234568.0, "1234568"), (100.0000001, "100.0000001"),
    (float(np.nextafter(365.0, 0)), "364.99999999999994"),
])
def test_time_labels_are_exact(time, label):
    assert time_label(time) == label
    assert float(label) == time


def test_time_labels_of_distinct_times_are_distinct():
    rng = np.random.default_rng(3)
    times = np.concatenate([rng.uniform(0, 2e6, 500), np.nextafter(365.0, np.inf) + np.arange(5), [365.0]])
    labels = [time_label(float(t)) for t in times]
    assert all(float(label) == t for label, t in zip(labels, times, strict=True))
    assert len(set(labels)) == len(set(times.tolist()))


def test_times_for_people_have_six_significant_digits_and_stay_apart():
    """Tables and messages show 6 significant digits (a time in years from dates: 366 / 365.25), more where
    nearby times would look alike, and a bound on its allowed side (floor for "<=", ceiling for ">=")."""
    assert time_texts([366 / 365.25, 365.0, 0.25, 100 / 365.25, 1e20]) == ["1.00205", "365", "0.25", "0.273785",
                                                                           "1e+20"]
    assert time_texts([1.0000001, 1.0000002, 1.0000001]) == ["1.0000001", "1.0000002", "1.0000001"]
    assert time_texts([1.0020533, 1.0020534]) == ["1.0020533", "1.0020534"]
    assert time_text(1999 / 365.25, "floor") == "5.47296" and time_text(1999 / 365.25) == "5.47296"
    assert time_text(41 / 365.25, "ceiling") == "0.112252" and time_text(41 / 365.25, "floor") == "0.112251"
    assert time_text(2.0, "floor") == time_text(2.0, "ceiling") == "2"
    assert time_text(1e300, "ceiling") == "1e+300"  # as floats compare, though 1e300's binary decimals go on
    assert float(time_text(1999 / 365.25, "ceiling")) >= 1999 / 365.25 >= float(time_text(1999 / 365.25, "floor"))


def test_check_times_refuses_a_repeated_time():
    assert check_times([365, -0.0, 730.5]) == [365.0, 0.0, 730.5]
    with pytest.raises(ConfigError, match=r"--times: times must be distinct, got 100$"):
        check_times([100, 365, 100.0])


def test_predict_keeps_one_exact_column_per_time(trained):
    times = [1234567.0, 1234568.0, 100.0, 100.0000001, 365.0]
    result = survmom("predict", trained["model"], trained["data"], "--times", ",".join(map(repr, times)))
    frame = predictions(result)
    labels = ["surv_1234567", "surv_1234568", "surv_100", "surv_100.0000001", "surv_365"]
    assert list(frame.columns) == ["id", "log_hazard", "risk", "median_time", *labels]
    model = load_model(trained["model"])
    x = model.preprocessor.transform(read_table(trained["data"]), path=trained["data"])
    expected = model.survival(model.estimates(x), times).numpy()
    np.testing.assert_allclose(frame[labels].to_numpy(), expected, rtol=1e-12, atol=0)


def test_predict_refuses_a_time_listed_twice(trained):
    out = trained["folder"] / "twice.csv"
    result = survmom("predict", trained["model"], trained["data"], "--times", "365,730,365.0", "-o", out)
    one_error_line(result, "--times: times must be distinct, got 365")
    assert not out.exists()


# --------------------------------------------------------------------------------------------- 2. huge values


def test_predict_refuses_values_too_extreme_for_the_model(trained, tmp_path):
    frame = cohort()
    frame.loc[1, "age"], frame.loc[2, "age"] = 1e300, -1e300
    data, out = tmp_path / "huge.csv", tmp_path / "p.csv"
    frame.to_csv(data, index=False)
    result = survmom("predict", trained["model"], data, "-o", out)
    one_error_line(result, "huge.csv", "column 'age'", "2 values too extreme", "rows 2, 3: 1e+300, -1e+300",
                   "float32")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["huge.csv"]


def test_preprocessor_rejects_values_beyond_float32_once_standardised():
    pre = Preprocessor.fit(cohort(), ["age"], path=Path("train.csv"))
    mean, scale = pre.columns[0].mean, pre.columns[0].scale
    limit = float(np.finfo(np.float32).max)
    fine = pd.DataFrame({"age": [mean + 0.99 * limit * scale, 1e30, np.nan]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isfinite(pre.transform(fine, path=Path("new.csv"))).all()
        with pytest.raises(DataError, match=r"new\.csv: column 'age' has 1 value too extreme .*row 2: 1e\+41"):
            pre.transform(pd.DataFrame({"age": [50.0, 1e41]}), path=Path("new.csv"))


@pytest.mark.parametrize("factor", [1e-200, 1e200, 1e307])
def test_fit_standardises_tiny_and_huge_columns_like_ordinary_ones(factor):
    rng = np.random.default_rng(7)
    base = rng.normal(0, 1, 64)
    ordinary = Preprocessor.fit(pd.DataFrame({"a": base}), ["a"], path=Path("d.csv"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scaled = Preprocessor.fit(pd.DataFrame({"a": base * factor}), ["a"], path=Path("d.csv"))
        x = scaled.transform(pd.DataFrame({"a": base * factor}), path=Path("d.csv"))
    assert scaled.warnings == []
    column = scaled.columns[0]
    np.testing.assert_allclose([column.mean, column.scale, column.median],
                               np.array([ordinary.columns[0].mean, ordinary.columns[0].scale,
                                         ordinary.columns[0].median]) * factor, rtol=1e-12)
    np.testing.assert_allclose(x, ordinary.transform(pd.DataFrame({"a": base}), path=Path("d.csv")), atol=1e-6)


def test_fit_handles_values_near_the_float64_limit():
    frame = pd.DataFrame({"a": [1.7e308, 1.7e308, 1.7e308, -1.7e308, np.nan]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pre = Preprocessor.fit(frame, ["a"], path=Path("d.csv"))
        x = pre.transform(frame, path=Path("d.csv"))
    expected = np.array([1, 1, 1, -3, 1]) / np.sqrt(3)
    np.testing.assert_allclose(x[:, 0], expected, rtol=1e-6)
    assert x[:, 1].tolist() == [0, 0, 0, 0, 1]


def test_training_on_a_huge_column_matches_training_on_the_plain_one(tmp_path):
    plain, huge = cohort(), cohort()
    huge["age"] = huge["age"] * 1e200
    outputs = []
    for name, frame in (("plain", plain), ("huge", huge)):
        data, model = tmp_path / f"{name}.csv", tmp_path / f"{name}.pt"
        frame.to_csv(data, index=False)
        result = survmom("train", data, "--id-col", "id", "--epochs", "2", "--hidden", "8", "-q", "-o", model)
        assert result.returncode == 0, result.stderr
        assert "Warning" not in result.stderr and "constant feature" not in result.stderr, result.stderr
        outputs.append(predictions(survmom("predict", model, data, "--times", "365")))
    np.testing.assert_allclose(outputs[1].drop(columns="id"), outputs[0].drop(columns="id"), rtol=1e-5)


def test_predict_refuses_to_write_nan_predictions(trained, tmp_path, monkeypatch):
    """The last line of defence: a NaN the checks before did not foresee is an error naming rows, not output."""
    real = LoadedModel.outputs

    def outputs(self, x, times, strata=None):
        columns = real(self, x, times, strata)
        columns["risk"] = columns["risk"].copy()
        columns["risk"][[3, 6]] = np.nan
        return columns

    monkeypatch.setattr(LoadedModel, "outputs", outputs)
    out = tmp_path / "p.parquet"
    with pytest.raises(DataError, match=r"cohort\.csv: the model's predictions are not finite for 2 row\(s\); "
                                        r"column '\w+' .*\(rows 4, 7: "):
        predict_file(trained["model"], trained["data"], out)
    assert not out.exists()


# --------------------------------------------------------------------------------------------- 3. extra columns


def test_predict_ignores_unused_columns_whatever_they_hold(trained, tmp_path):
    frame = cohort()
    expected = predictions(survmom("predict", trained["model"], trained["data"]))
    table = pa.Table.from_pandas(frame, preserve_index=False)
    n = len(frame)
    table = table.append_column("blob", pa.array([b"\xc0\xff\x00"] * n, pa.binary()))
    table = table.append_column("lst", pa.array([[1, 2]] * n))
    table = table.append_column("meta", pa.array([{"a": 1}] * n))
    parquet = write_parquet(table, tmp_path / "extra.parquet")
    pd.testing.assert_frame_equal(predictions(survmom("predict", trained["model"], parquet)), expected)

    lines = frame.to_csv(index=False).encode().splitlines()
    latin1 = [lines[0] + b",note"] + [line + (b",caf\xe9" if i % 3 else b",x") for i, line in enumerate(lines[1:])]
    csv = tmp_path / "latin1.csv"
    csv.write_bytes(b"\n".join(latin1) + b"\n")
    pd.testing.assert_frame_equal(predictions(survmom("predict", trained["model"], csv)), expected)


def test_predict_still_checks_the_columns_it_uses(trained, tmp_path):
    lines = cohort().to_csv(index=False).encode().replace(b",M,", b",M\xe9,", 1)
    csv = tmp_path / "bad.csv"
    csv.write_bytes(lines)
    one_error_line(survmom("predict", trained["model"], csv), "bad.csv", "column 'sex'", "not valid UTF-8", "0xe9")


def test_table_columns_reads_only_the_header(tmp_path):
    frame = cohort()
    frame.to_csv(tmp_path / "d.csv", index=False)
    frame.to_parquet(tmp_path / "d.parquet", index=False)
    assert table_columns(tmp_path / "d.csv") == table_columns(tmp_path / "d.parquet") == list(frame.columns)


def test_binary_parquet_column_holding_utf8_text_is_read_as_text(tmp_path):
    frame = cohort()
    table = pa.Table.from_pandas(frame.drop(columns="sex"), preserve_index=False)
    table = table.append_column("sex", pa.array([s.encode() for s in frame["sex"]], pa.binary()))
    table = table.append_column("code", pa.array([b"ab", None] * (len(frame) // 2), pa.binary(2)))
    path = write_parquet(table, tmp_path / "bin.parquet")
    read = read_table(path)
    assert isinstance(read["sex"].dtype, pd.CategoricalDtype)
    assert read["sex"].astype(str).tolist() == frame["sex"].tolist()
    assert read["code"].astype(object).where(read["code"].notna(), None).tolist() == ["ab", None] * 20
    assert survmom("train", path, "--id-col", "id", "--epochs", "1", "-q", "-o", tmp_path / "m.pt").returncode == 0


def test_binary_parquet_column_that_is_not_text_is_named_binary(tmp_path):
    frame = cohort()
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.append_column("blob", pa.array([b"ok", b"\xc0\xff"] * (len(frame) // 2), pa.binary()))
    path = write_parquet(table, tmp_path / "blob.parquet")
    line = one_error_line(survmom("train", path, "--epochs", "1", "-q", "-o", tmp_path / "m.pt"),
                          "blob.parquet", "column 'blob' holds binary data, not UTF-8 text", r"rows 2, 4, 6")
    assert "byte offset" not in line and "iconv" not in line
    assert not (tmp_path / "m.pt").exists()


# --------------------------------------------------------------------------------------------- 4. nested columns


@pytest.mark.parametrize(("values", "shown"), [([1, 2], "array([1, 2])"), ({"a": 1}, "{'a': 1}")])
def test_training_on_a_nested_column_is_a_clear_error(tmp_path, values, shown):
    frame = cohort()
    table = pa.Table.from_pandas(frame, preserve_index=False).append_column("nest", pa.array([values] * len(frame)))
    path = write_parquet(table, tmp_path / "nested.parquet")
    one_error_line(survmom("train", path, "--id-col", "id", "--epochs", "1", "-q", "-o", tmp_path / "m.pt"),
                   "nested.parquet", "column 'nest'", "nested/list columns are not supported", f"rows 1, 2, 3, 4, 5, "
                   f"...: {shown}", "--exclude")
    result = survmom("train", path, "--id-col", "id", "--exclude", "nest", "--epochs", "1", "-q",
                     "-o", tmp_path / "m.pt")
    assert result.returncode == 0, result.stderr


def test_nested_time_column_is_a_clear_error(tmp_path):
    frame = cohort().drop(columns="time")
    table = pa.Table.from_pandas(frame, preserve_index=False).append_column("time", pa.array([[5.0]] * len(frame)))
    path = write_parquet(table, tmp_path / "nested.parquet")
    with pytest.raises(DataError, match=r"nested\.parquet: column 'time' holds nested values .*rows 1, 2, 3"):
        parse_time(read_table(path)["time"], path=path, column="time", min_exclusive=False)


# --------------------------------------------------------------------------------------------- 5. -o a folder


def test_predict_out_is_a_folder(trained, tmp_path):
    folder = tmp_path / "predictions.csv"
    folder.mkdir()
    one_error_line(survmom("predict", trained["model"], trained["data"], "-o", folder),
                   "predictions.csv", "is a folder", "give a file name")
    assert list(folder.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["predictions.csv"]


def test_predict_and_train_refuse_an_out_that_is_a_fifo_and_keep_it(trained, tmp_path):
    fifo = tmp_path / "out.csv"
    os.mkfifo(fifo)
    one_error_line(survmom("predict", trained["model"], trained["data"], "-o", fifo),
                   "out.csv", "is not a regular file", "give a file name")
    fifo_model = tmp_path / "model.pt"
    os.mkfifo(fifo_model)
    one_error_line(survmom("train", trained["data"], "--id-col", "id", "--epochs", "1", "-q", "--out", fifo_model),
                   "model.pt", "is not a regular file")
    assert all(stat.S_ISFIFO(os.stat(path).st_mode) for path in (fifo, fifo_model))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt", "out.csv"]


def test_predictions_to_a_closed_or_full_standard_output_are_one_line_errors(trained):
    """``survmom predict m.pt data.csv >&-`` (Python's sys.stdout is then None) and ``> /dev/full``: one error line
    naming standard output and -o, exit 2 (were an internal AttributeError, exit 1, and a bare "No space left
    on device"). A command that writes nothing to stdout (train) runs as usual with it closed."""
    import sys

    command = [sys.executable, "-m", "survmom", "predict", str(trained["model"]), str(trained["data"])]
    closed = subprocess.run(command, stderr=subprocess.PIPE, text=True, preexec_fn=lambda: os.close(1),
                            cwd=Path(__file__).resolve().parents[1])
    one_error_line(closed, "standard output is closed", "-o/--out")
    with open("/dev/full", "wb") as full:
        filled = subprocess.run(command, stdout=full, stderr=subprocess.PIPE, text=True,
                                cwd=Path(__file__).resolve().parents[1])
    one_error_line(filled, "standard output: No space left on device", "-o")


def test_train_and_evaluate_never_read_columns_they_do_not_use(trained, tmp_path):
    frame = cohort()
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.append_column("blob", pa.array([b"\xc0\xff\x00"] * len(frame), pa.binary()))
    table = table.append_column("lst", pa.array([[1, 2]] * len(frame)))
    parquet = write_parquet(table, tmp_path / "extra.parquet")
    model = tmp_path / "m.pt"
    result = survmom("train", parquet, "--id-col", "id", "--exclude", "blob,lst", "--epochs", "1", "-q", "-o", model)
    assert result.returncode == 0, result.stderr
    names = [column["name"] for column in torch.load(model, weights_only=True)["preprocessing"]["columns"]]
    assert names == ["age", "bmi", "sex", "stage"]
    evaluated = survmom("evaluate", trained["model"], parquet, "--json")
    assert evaluated.returncode == 0 and "Warning" not in evaluated.stderr, evaluated.stderr
    assert json.loads(evaluated.stdout)["rows"] == len(frame)


def test_predict_warns_about_unseen_categories_and_columns_without_values(trained, tmp_path):
    frame = cohort()
    frame.loc[:2, "stage"] = "IV"  # 3 rows
    frame.loc[3, "stage"] = "0"
    frame.loc[4:5, "stage"] = None  # missing: not a new category
    frame["bmi"] = np.nan
    frame["sex"] = ["", "NA"] * 20  # no value in any row, as text read as missing
    frame.to_csv(tmp_path / "new.csv", index=False)
    result = survmom("predict", trained["model"], tmp_path / "new.csv")
    assert result.returncode == 0 and len(predictions(result)) == len(frame)
    warned = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert warned == [
        f"warning: {tmp_path / 'new.csv'}: column 'stage': 4 rows hold categories not seen in training "
        "('IV', '0'); encoded as no category, like a missing value",
        f"warning: {tmp_path / 'new.csv'}: column 'bmi' has no value in any row; the training median was used",
        f"warning: {tmp_path / 'new.csv'}: column 'sex' has no value in any row; encoded as no category in every row",
    ]
    assert "warning" not in survmom("predict", trained["model"], trained["data"]).stderr


def test_a_column_with_no_training_category_in_any_row_names_the_training_ones(trained, tmp_path):
    """Stage written as codes 1-3 where training had labels: every row unseen, the warning says what was known."""
    frame = cohort()
    frame["stage"] = (np.arange(len(frame)) % 3 + 1).astype(str)
    frame.to_csv(tmp_path / "codes.csv", index=False)
    result = survmom("predict", trained["model"], tmp_path / "codes.csv")
    assert result.returncode == 0 and len(predictions(result)) == len(frame)
    known = ", ".join(repr(v) for v in sorted(cohort()["stage"].unique()))
    assert [line for line in result.stderr.splitlines() if line.startswith("warning: ")] == [
        f"warning: {tmp_path / 'codes.csv'}: column 'stage': 40 rows hold categories not seen in training "
        f"('1', '2', '3'); encoded as no category, like a missing value; no row matches a training category "
        f"({known}): is the column coded as in training?"]


def test_new_values_are_counted_over_every_chunk(trained, tmp_path):
    frame = cohort()
    frame.loc[::4, "sex"] = "X"  # 10 rows, spread over all chunks
    frame.to_csv(tmp_path / "new.csv", index=False)
    messages: list[str] = []
    rows = predict_file(trained["model"], tmp_path / "new.csv", tmp_path / "p.csv", chunk_rows=7,
                        warn=messages.append)
    assert rows == len(frame) and len(messages) == 1 and "'sex': 10 rows hold categories" in messages[0]


@pytest.mark.parametrize("as_category", [False, True])
def test_numbers_stored_as_text_in_an_untyped_source_are_read_as_numbers(tmp_path, as_category):
    """No type stated (CSV): text that is a number in every row is read as numbers. A typed source's text
    columns stay categorical (tests/test_types.py)."""
    frame = cohort()
    text = frame.assign(age=frame["age"].map(lambda v: f"{v:g}"))
    text.loc[3, "age"] = None
    if as_category:
        text["age"] = text["age"].astype("category")
    numeric = frame.assign(age=frame["age"].where(frame.index != 3))
    fitted = Preprocessor.fit(text, ["age", "sex"], path=tmp_path / "t.csv")
    reference = Preprocessor.fit(numeric, ["age", "sex"], path=tmp_path / "n.csv")
    assert fitted.feature_names == reference.feature_names
    assert fitted.warnings == ["column 'age' holds numbers stored as text; read as numbers"]
    np.testing.assert_array_equal(fitted.transform(text, path=tmp_path / "t.csv"),
                                  reference.transform(numeric, path=tmp_path / "n.csv"))
    stated = Preprocessor.fit(text, ["age", "sex"], path=tmp_path / "t.parquet", types={"age": "category"})
    assert stated.column_types()["age"] == "category"
    assert [w for w in stated.warnings if "stored as text" in w] == []  # the identifier warning may remain


def test_text_that_is_not_all_numbers_stays_categorical(tmp_path):
    frame = cohort().assign(grade=lambda d: np.where(d.index % 5 == 0, "high", "2"))
    fitted = Preprocessor.fit(frame, ["grade"], path=tmp_path / "t.csv")
    assert fitted.feature_names == ["grade=2", "grade=high"] and not fitted.warnings


def test_predict_warns_about_values_far_outside_the_training_data(trained, tmp_path):
    frame = cohort()
    frame.loc[0, "age"] = 60.0 * 365  # days for years
    frame.loc[1, "age"] = -5e4
    frame.loc[2, "bmi"] = 45.0  # unusual, not absurd: no warning
    frame.to_csv(tmp_path / "far.csv", index=False)
    messages: list[str] = []
    predict_file(trained["model"], tmp_path / "far.csv", tmp_path / "p.csv", chunk_rows=16, warn=messages.append)
    assert messages == [f"{tmp_path / 'far.csv'}: column 'age': 2 rows more than 50 training standard deviations "
                        "from the training mean (furthest: -50000.0); the model extrapolates there: check the values "
                        "and their unit"]


# --------------------------------------------------------------------------------------------- 6. messy numbers


def test_predict_reads_missing_spellings_and_padded_numbers_as_training_does(tmp_path):
    """' NA', 'Null', '   ' in a numeric column: training reads them as missing, so predict and evaluate must."""
    frame = cohort().astype({"bmi": object})
    frame.loc[[1, 5, 9], "bmi"] = " NA"
    frame.loc[[12, 13], "bmi"] = "Null"
    frame.loc[20, "bmi"] = "   "
    data, model = tmp_path / "sp_na.csv", tmp_path / "m.pt"
    frame.to_csv(data, index=False)
    result = survmom("train", data, "--id-col", "id", "--epochs", "2", "--hidden", "8", "--val-frac", "0", "-q",
                     "-o", model)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[0] == (
        "warning: column 'bmi' holds numbers stored as text (6 values such as ' NA', 'Null', '   ' read as "
        "missing); read as numbers")
    assert torch.load(model, weights_only=True)["preprocessing"]["column_types"]["bmi"] == "numeric"

    # The model predicts its own training file as if those cells were empty; so for other spellings of missing
    # and numbers with spaces around them in a new file. Evaluate reads them the same way.
    messy = frame.copy()
    messy.loc[[2, 3, 4], "bmi"] = ["NA ", "na", " null "]
    messy.loc[[6, 7], "bmi"] = [" 25.5", "31 "]
    for name, spelled in (("sp_na.csv", frame), ("messy.csv", messy)):
        spelled.to_csv(tmp_path / name, index=False)
        numbers = spelled.assign(bmi=pd.to_numeric(spelled["bmi"].str.strip(), errors="coerce")
                                 .fillna(pd.to_numeric(spelled["bmi"], errors="coerce")))
        numbers.to_csv(tmp_path / f"blank_{name}", index=False)
        assert numbers["bmi"].isna().sum() == (6 if name == "sp_na.csv" else 9)
        expected = predictions(survmom("predict", model, tmp_path / f"blank_{name}", "--times", "365"))
        got = survmom("predict", model, tmp_path / name, "--times", "365")
        pd.testing.assert_frame_equal(predictions(got), expected)
        assert "warning" not in got.stderr and "error" not in got.stderr, got.stderr
        evaluated = [survmom("evaluate", model, tmp_path / f, "--json") for f in (name, f"blank_{name}")]
        assert [e.returncode for e in evaluated] == [0, 0], evaluated[0].stderr
        reports = [{k: v for k, v in json.loads(e.stdout).items() if k != "data"} for e in evaluated]
        assert reports[0] == reports[1] and reports[0]["rows"] == 40


def test_numeric_reads_parse_text_exactly_as_training_in_every_block(tmp_path):
    """column_types "numeric": pyarrow first, text only where it refuses a value, in any parse block."""
    n = 200_000  # several 1 MiB parse blocks: the odd values sit in later blocks
    x = np.arange(n, dtype=float)
    cells = [f"{v:g}" for v in x]
    odd = {150_000: " NA", 150_001: "1_000", 150_002: " 7.5 ", 190_000: "NULL", 199_999: "   "}
    for row, cell in odd.items():
        cells[row] = cell
    path = tmp_path / "x.csv"
    path.write_text("x,y\n" + "\n".join(f"{c},{i % 5}" for i, c in enumerate(cells)) + "\n")
    expected = x.copy()
    expected[[150_000, 190_000, 199_999]] = np.nan
    expected[[150_001, 150_002]] = [1000.0, 7.5]
    trained = Preprocessor.fit(read_table(path), ["x"], path=path)  # as training reads the file
    # "NULL" is one of the usual markers (NA_MARKERS): read as missing by any reader, so not counted as a guess.
    assert trained.warnings == ["column 'x' holds numbers stored as text (2 values such as ' NA', '   ' read as "
                                "missing); read as numbers"]
    types = {"x": "numeric", "y": "numeric"}
    streamed = pd.concat(list(iter_table_batches(path, ["x", "y"], 30_000, column_types=types)))
    whole = read_table(path, column_types=types)
    for frame in (streamed, whole):
        assert frame["x"].dtype == np.float64 and list(frame.index) == list(range(n))
        np.testing.assert_array_equal(frame["x"].to_numpy(), expected)
        np.testing.assert_array_equal(frame["y"].to_numpy(), np.arange(n) % 5)
    np.testing.assert_array_equal(trained.transform(streamed, path=path), trained.transform(read_table(path),
                                                                                            path=path))

    # Text that is not a number is still refused, counted over the whole file; missing spellings are not.
    cells[160_000], cells[199_998] = "abc", "12%"
    path.write_text("x,y\n" + "\n".join(f"{c},{i % 5}" for i, c in enumerate(cells)) + "\n")
    message = (f"{path}: column 'x' should be numeric but has 2 non-numeric values "
               f"(rows 160001, 199999: 'abc', '12%')")
    with pytest.raises(DataError) as streaming:
        list(iter_table_batches(path, ["x"], 30_000, column_types={"x": "numeric"}))
    with pytest.raises(DataError) as reading:
        read_table(path, column_types={"x": "numeric"})
    assert str(streaming.value) == str(reading.value) == message


@pytest.mark.parametrize("name", ["d.csv.GZ", "D.CSV.GZ", "d.csv.Gz"])
def test_uppercase_gzip_suffix_is_decompressed(trained, tmp_path, name):
    plain = trained["data"].read_bytes()
    data = tmp_path / name
    data.write_bytes(gzip.compress(plain))
    pd.testing.assert_frame_equal(read_table(data), read_table(trained["data"]))
    assert table_columns(data) == table_columns(trained["data"])
    expected = predictions(survmom("predict", trained["model"], trained["data"]))
    pd.testing.assert_frame_equal(predictions(survmom("predict", trained["model"], data)), expected)
    evaluated = survmom("evaluate", trained["model"], data, "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout)["rows"] == 40
    result = survmom("train", data, "--id-col", "id", "--epochs", "1", "--hidden", "8", "-q", "-o", tmp_path / "m.pt")
    assert result.returncode == 0, result.stderr

    frame = cohort().astype({"age": object})
    frame.loc[[2, 7], "age"] = [" NA", "old"]
    bad = tmp_path / ("bad" + name[1:])
    bad.write_bytes(gzip.compress(frame.to_csv(index=False).encode()))
    one_error_line(survmom("predict", trained["model"], bad), bad.name, "column 'age' should be numeric but has "
                   "1 non-numeric value (row 8: 'old')")


def _warnings(result: subprocess.CompletedProcess) -> list[str]:
    assert result.returncode == 0, result.stderr
    return [line for line in result.stderr.splitlines() if line.startswith("warning: ")]


def test_numbers_with_separators_decimal_commas_or_percent_signs_are_categorical_with_a_warning(tmp_path):
    frame = cohort()
    n = len(frame)
    frame["income"] = [f"{v:,}" for v in 1000 * np.arange(50, 50 + n)]  # 40 categories in 40 rows
    frame["income"] = frame["income"].where(frame.index != 3, "900")  # a plain number among them
    frame["dose"] = [f"{v / 2:.1f}".replace(".", ",") for v in range(n)]
    frame["pct"] = [f"{v % 13}%" for v in range(n)]
    data, model = tmp_path / "fmt.csv", tmp_path / "m.pt"
    frame.to_csv(data, index=False)
    result = survmom("train", data, "--id-col", "id", "--epochs", "1", "--hidden", "8", "--val-frac", "0", "-q",
                     "-o", model)
    fix = "treated as categorical (one input per value), not as numbers: convert it to plain numbers"
    assert _warnings(result) == [
        f"warning: column 'income' looks like numbers written with thousands separators ('50,000', '51,000', "
        f"'52,000'); {fix} (no thousands separators) to use it as numeric",
        f"warning: column 'dose' looks like numbers written with decimal commas ('0,0', '0,5', '1,0'); {fix} ('.' "
        f"as the decimal point) to use it as numeric",
        f"warning: column 'pct' looks like numbers written with percent signs ('0%', '1%', '10%'); {fix} (no '%') "
        f"to use it as numeric",
        "warning: 100 inputs for 40 training rows: with at least as many inputs as rows a model can fit the "
        "training rows exactly; rely on the validation C-index, and --exclude columns that cannot matter",
    ]
    types = torch.load(model, weights_only=True)["preprocessing"]["column_types"]
    assert [types[c] for c in ("income", "dose", "pct")] == ["category"] * 3
    assert predictions(survmom("predict", model, data)).shape == (n, 4)

    # Mixed kinds are named together; a column of plain numbers or of words is not mistaken for one.
    mixed = Preprocessor.fit(pd.DataFrame({"v": ["1,5", "12%", "1,234.5", "2"], "w": ["a", "b,c", "d", "e"]}),
                             ["v", "w"], path=data)
    assert mixed.warnings == [
        "column 'v' looks like numbers written with thousands separators, decimal commas and percent signs "
        "('1,234.5', '1,5', '12%'); treated as categorical (one input per value), not as numbers: convert it to "
        "plain numbers (no thousands separators, '.' as the decimal point, no '%') to use it as numeric"]


def test_categories_differing_only_in_case_are_kept_apart_with_a_warning(tmp_path):
    frame = cohort()
    frame["sex"] = (["Male", "male", "MALE", "Female", "female"] * 8)[: len(frame)]
    data, model = tmp_path / "case.csv", tmp_path / "m.pt"
    frame.to_csv(data, index=False)
    result = survmom("train", data, "--id-col", "id", "--epochs", "1", "--hidden", "8", "-q", "-o", model)
    assert _warnings(result) == [
        "warning: column 'sex' has categories that differ only in case ('Female', 'female'; 'MALE', 'Male', "
        "'male'): kept apart; fix the spelling if they mean the same"]
    columns = torch.load(model, weights_only=True)["preprocessing"]["columns"]
    assert next(c for c in columns if c["name"] == "sex")["categories"] == ["Female", "MALE", "Male", "female",
                                                                            "male"]
    assert Preprocessor.fit(cohort(), ["sex", "stage"], path=data).warnings == []


def test_a_numeric_identifier_used_as_a_feature_is_warned_about(tmp_path):
    frame = cohort(n=60).assign(patient_no=lambda d: np.arange(1001, 1061), visits=lambda d: d.index % 7)
    fitted = Preprocessor.fit(frame, ["age", "visits", "patient_no"], path=tmp_path / "t.csv",
                              rows=np.arange(60) % 5 != 0)  # a validation split keeps 48 of the 60 numbers
    assert fitted.warnings == ["column 'patient_no' looks like an identifier (a different whole number in every "
                               "row, 1002 to 1060); it is used as a feature: --exclude it, or name it with "
                               "--id-col to copy it into the predictions"]


def test_an_encoding_too_large_for_the_memory_is_refused_naming_the_widest_columns(tmp_path, monkeypatch) -> None:
    """A column with a distinct text per row (notes, dates, identifiers) becomes one input per value: when
    the encoded matrix would not fit in half of the memory, training stops before allocating it, with a clear
    error naming the column, and writes nothing."""
    from survmom.training import prepare
    from survmom.training.config import TrainConfig

    rng = np.random.default_rng(0)
    n = 2_000
    frame = pd.DataFrame({"age": rng.normal(60, 10, n), "note": [f"seen on visit {i}" for i in range(n)],
                          "site": rng.choice(["a", "b"], n), "time": rng.integers(1, 100, n),
                          "event": rng.integers(0, 2, n)})
    path = tmp_path / "notes.csv"
    frame.to_csv(path, index=False)
    config = TrainConfig(out=str(tmp_path / "m.pt"))
    # 2,000 rows (both splits) x (1 + 1,600 + 2) inputs x 4 bytes = 12.8 MB: refused below 25.6 MB of memory.
    monkeypatch.setattr(prepare, "memory_limit", lambda: 25_000_000)
    with pytest.raises(DataError, match=r"notes\.csv: the encoded features would take 12\.8 MB \(2,000 rows × "
                                        r"1,603 inputs, float32\), more than half of the 25\.0 MB of memory here; "
                                        r"widest categorical columns: 'note' \(1,600 categories\); --exclude them"):
        prepare.prepare_training_data(config, path)
    monkeypatch.setattr(prepare, "memory_limit", lambda: 26_000_000)
    prepared = prepare.prepare_training_data(config, path)
    assert prepared.train.x.shape == (1_600, 1_603)
    assert "1,603 inputs for 1,600 training rows: with at least as many inputs as rows" in " ".join(prepared.warnings)
    monkeypatch.setattr(prepare, "memory_limit", lambda: None)  # unknown: no check
    assert prepare.prepare_training_data(config, path).train.x.shape == (1_600, 1_603)


def test_memory_limit_is_the_machine_s_or_a_smaller_cgroup_limit(tmp_path) -> None:
    from survmom.system import memory_limit

    machine = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    unlimited, limited, huge = tmp_path / "max", tmp_path / "small", tmp_path / "huge"
    unlimited.write_text("max\n")
    limited.write_text("1073741824\n")
    huge.write_text(f"{machine * 4}\n")
    assert memory_limit((str(tmp_path / "absent"), str(unlimited))) == machine
    assert memory_limit((str(unlimited), str(limited))) == 1_073_741_824
    assert memory_limit((str(huge),)) == machine


def test_repeated_ids_are_warned_about_once_per_run_with_a_sample(tmp_path) -> None:
    """Several rows per id (long-format data) break the one-row-per-subject assumption: a warning names the
    id column, the number of rows and ids, and the most repeated ids; missing ids and unique ids are fine."""
    from survmom.training.config import TrainConfig
    from survmom.training.prepare import prepare_training_data

    rng = np.random.default_rng(0)
    ids = [f"P{i}" for i in range(90)] + ["P1", "P1", "P2", None, None] + [f"Q{i}" for i in range(5)]
    frame = pd.DataFrame({"pid": ids, "a": rng.standard_normal(100), "time": rng.integers(1, 50, 100),
                          "event": rng.integers(0, 2, 100)})
    path = tmp_path / "long.csv"
    frame.to_csv(path, index=False)
    warnings = prepare_training_data(TrainConfig(out="m.pt", id_col="pid"), path).warnings
    repeated = [w for w in warnings if "share" in w]
    assert repeated == [f"{path}: 5 rows share 2 id(s) in the id column 'pid' ('P1' ×3, 'P2' ×2): survmom "
                        "expects one row per subject (e.g. its last follow-up); rows with the same id are trained "
                        "on as different subjects (kept on one side of the validation split); for "
                        "counting-process rows (start, stop] give --entry-col start"]
    frame.drop_duplicates("pid").to_csv(path, index=False)  # unique ids (and one missing): no warning
    assert not [w for w in prepare_training_data(TrainConfig(out="m.pt", id_col="pid"), path).warnings
                if "share" in w]


@pytest.mark.parametrize("name", ["risk", "log_hazard", "median_time", "log_shape", "surv_365"])
def test_an_id_column_named_like_a_prediction_column_is_refused_at_train(tmp_path, name) -> None:
    """predict writes log_hazard, risk, median_time (log_scale, log_shape) and surv_<t>: an id column of one of
    these names would be replaced by the prediction, losing the ids; train refuses it before reading."""
    data = tmp_path / "c.csv"
    cohort().rename(columns={"id": name}).to_csv(data, index=False)
    one_error_line(survmom("train", data, "--id-col", name, "-q", "-o", tmp_path / "m.pt"),
                   f"--id-col '{name}' is also the name of a prediction column", "rename the id column")
    assert not (tmp_path / "m.pt").exists()


def test_predict_refuses_an_id_column_that_a_prediction_would_replace(trained, tmp_path) -> None:
    """A checkpoint from before train's check, trained with --id-col risk: predict stops before writing."""
    from survmom.training.checkpoint import save_state

    state = torch.load(trained["model"], weights_only=True)
    state["config"]["id_col"] = "risk"
    model, data, out = tmp_path / "old.pt", tmp_path / "c.csv", tmp_path / "p.csv"
    save_state(state, model)
    cohort().rename(columns={"id": "risk"}).to_csv(data, index=False)
    one_error_line(survmom("predict", model, data, "-o", out),
                   "the id column 'risk' has the name of a prediction column, which would replace the ids")
    assert not out.exists()
    assert predictions(survmom("predict", model, trained["data"], "-q")).columns[0] == "log_hazard"  # no 'risk' ids
    from survmom.app.predict import load_model

    cox = load_model(trained["model"])
    x = np.zeros((2, len(cox.preprocessor.feature_names)), dtype=np.float32)
    assert list(cox.outputs(x, [1.0, 2.5])) == cox.output_names([1.0, 2.5])


def test_weibull_risk_stays_finite_and_ordered_where_the_median_overflows(tmp_path) -> None:
    """risk = -log median is computed in log space: rows whose median overflows (inf) or underflows (0) keep
    finite risks, in the order of their log medians."""
    from survmom.app.predict import load_model

    data, model = tmp_path / "c.csv", tmp_path / "w.pt"
    cohort(200).to_csv(data, index=False)
    assert survmom("train", data, "--id-col", "id", "--loss", "weibull", "--epochs", "2", "--hidden", "",
                   "-q", "-o", model).returncode == 0
    loaded = load_model(model)
    x = np.zeros((5, len(loaded.preprocessor.feature_names)), dtype=np.float32)
    x[:, 0] = [-1e5, -10.0, 0.0, 10.0, 1e5]  # standardised age, far beyond the data on both sides
    columns = loaded.outputs(x, [365.0])
    assert list(columns) == loaded.output_names([365.0])  # the names train and predict check id columns against
    log_median = columns["log_scale"] + math.log(math.log(2.0)) * np.exp(-columns["log_shape"])
    np.testing.assert_allclose(columns["risk"], -log_median, rtol=1e-12)
    assert np.isfinite(columns["risk"]).all() and len(set(columns["risk"].tolist())) == 5
    assert not np.isfinite(columns["median_time"]).all() or (columns["median_time"] == 0).any()  # it overflowed
    with np.errstate(over="ignore"):
        np.testing.assert_allclose(columns["median_time"], np.exp(log_median), rtol=1e-12)
