"""Specification of survmom.data: reading, validation, preprocessing, splitting, fingerprints."""

from __future__ import annotations

import ast
import gzip
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from survmom.data import (
    NA_MARKERS,
    SUPPORTED,
    Preprocessor,
    fingerprint,
    iter_table_batches,
    pandas_index_columns,
    parse_event,
    parse_time,
    read_table,
    select_feature_columns,
    stratified_split,
    subject_split,
    table_columns,
)
from survmom.data.cells import parse_numbers
from survmom.errors import ConfigError, DataError, StateError

from assertions import raises_one_line

SAMPLE_DIR = Path(__file__).resolve().parent.parent / "sample_data"


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def mixed_frame() -> pd.DataFrame:
    """Numeric with missing values, constant-free numeric, text with missing, boolean."""
    return pd.DataFrame(
        {
            "age": [50, 60, 70, 80, 65, 55],
            "bmi": [20.5, np.nan, 30.0, 25.0, np.nan, 22.0],
            "stage": ["II", "I", None, "III", "I", "II"],
            "smoker": [True, False, True, False, False, True],
            "time": [5.0, 3.0, 8.0, 1.0, 2.0, 9.0],
            "event": [1, 0, 1, 1, 0, 1],
        }
    )


@pytest.fixture
def mixed_files(tmp_path: Path) -> tuple[Path, Path]:
    df = mixed_frame()
    csv_path = tmp_path / "mixed.csv"
    parquet_path = tmp_path / "mixed.parquet"
    df.to_csv(csv_path, index=False)
    df.to_parquet(parquet_path, index=False)
    return csv_path, parquet_path


FEATURES = ["age", "bmi", "stage", "smoker"]


# ---------------------------------------------------------------------------------------------- reading


def test_csv_and_parquet_give_identical_matrices(mixed_files):
    csv_path, parquet_path = mixed_files
    from_csv, from_parquet = read_table(csv_path), read_table(parquet_path)
    pre = Preprocessor.fit(from_csv, FEATURES, path=csv_path)
    np.testing.assert_array_equal(
        pre.transform(from_csv, path=csv_path), pre.transform(from_parquet, path=parquet_path)
    )
    assert list(from_csv.columns) == list(from_parquet.columns)


def test_text_columns_come_back_categorical_and_index_is_range(mixed_files):
    df = read_table(mixed_files[0])
    assert isinstance(df["stage"].dtype, pd.CategoricalDtype)
    assert isinstance(df.index, pd.RangeIndex) and df.index[0] == 0


def test_column_names_are_stripped(tmp_path):
    path = write(tmp_path, "d.csv", " time ,event,  age\n1,0,3\n")
    assert list(read_table(path).columns) == ["time", "event", "age"]
    assert list(read_table(path, ["age"]).columns) == ["age"]


def test_columns_are_selected_in_request_order(mixed_files):
    for path in mixed_files:
        assert list(read_table(path, ["event", "age"]).columns) == ["event", "age"]


def test_missing_requested_columns_are_all_named(mixed_files):
    for path in mixed_files:
        raises_one_line(
            DataError, lambda p=path: read_table(p, ["age", "foo", "bar"]), path.name, "'foo'", "'bar'"
        )


@pytest.mark.parametrize("marker", NA_MARKERS)
def test_csv_na_markers_read_as_missing(tmp_path, marker):
    path = write(tmp_path, "d.csv", f"x,y\n1.5,a\n{marker},b\n")
    df = read_table(path)
    assert np.isnan(df["x"][1]) and df["x"].dtype == np.float64


def test_excels_na_error_value_is_missing_in_every_spelling(tmp_path):
    """Excel exports a failed lookup as "#N/A": a missing value, not a category of a numeric column."""
    df = read_table(write(tmp_path, "d.csv", "x,y\n1.5,a\n#N/A,b\n2, #n/a \n"))
    assert df["x"].dtype == np.float64 and np.isnan(df["x"][1])
    assert np.isnan(parse_numbers(np.array([" #n/a ", "2"], dtype=object))[0][0])


def test_a_lone_dot_is_missing_in_a_numeric_column_and_a_label_in_text(tmp_path):
    df = read_table(write(tmp_path, "d.csv", "x,s\n1.5,.\n.,a\n"))
    assert df["x"].dtype == np.float64 and np.isnan(df["x"][1])
    assert list(df["s"].astype(str)) == [".", "a"]


def test_unknown_extension_lists_supported(tmp_path):
    path = write(tmp_path, "d.xml", "x\n1\n")
    # Delimited text is listed once with its compressions, every other suffix by name.
    typed = [s for s in SUPPORTED if not s.startswith((".csv", ".tsv", ".tab", ".txt", ".dat"))]
    assert {".orc", ".jsonl", ".ndjson", ".jsonl.gz"} <= set(typed)
    raises_one_line(DataError, lambda: read_table(path), "d.xml", ".xml",
                    ".csv, .tsv, .tab, .txt, .dat (each also .gz, .bz2, .zst, .xz, .zip)", *typed)


def test_extension_is_case_insensitive(tmp_path, mixed_files):
    upper_csv = write(tmp_path, "D.CSV", mixed_files[0].read_bytes())
    upper_pq = write(tmp_path, "D.PQ", mixed_files[1].read_bytes())
    assert read_table(upper_csv).shape == read_table(upper_pq).shape == (6, 6)


def test_gzipped_csv_is_read(tmp_path, mixed_files):
    path = write(tmp_path, "d.csv.gz", gzip.compress(mixed_files[0].read_bytes()))
    pd.testing.assert_frame_equal(read_table(path), read_table(mixed_files[0]))


@pytest.mark.parametrize("name", ["absent.csv", "absent.parquet"])
def test_missing_file(tmp_path, name):
    raises_one_line(DataError, lambda: read_table(tmp_path / name), name, "not found")


@pytest.mark.parametrize("name", ["empty.csv", "empty.parquet"])
def test_empty_file(tmp_path, name):
    path = write(tmp_path, name, b"")
    raises_one_line(DataError, lambda: read_table(path), name, "empty")


def test_header_only_csv(tmp_path):
    path = write(tmp_path, "h.csv", "time,event\n")
    raises_one_line(DataError, lambda: read_table(path), "h.csv", "no data rows")


def test_zero_row_parquet(tmp_path):
    path = tmp_path / "h.parquet"
    pd.DataFrame({"time": pd.Series([], dtype=float)}).to_parquet(path)
    raises_one_line(DataError, lambda: read_table(path), "h.parquet", "no data rows")


def test_inconsistent_column_counts_report_the_line(tmp_path):
    path = write(tmp_path, "r.csv", "a,b\n1,2\n3,4,5\n")
    raises_one_line(DataError, lambda: read_table(path), "r.csv", "line 3 has 3 fields", "Expected 2 columns")


def test_binary_garbage_is_not_csv(tmp_path):
    path = write(tmp_path, "g.csv", bytes(range(256)) * 8)
    raises_one_line(DataError, lambda: read_table(path), "g.csv", "not a CSV text file")


def test_gzip_named_csv_is_explained(tmp_path):
    path = write(tmp_path, "z.csv", gzip.compress(b"a,b\n1,2\n"))
    raises_one_line(DataError, lambda: read_table(path), "z.csv", "gzip")


def test_truncated_parquet(tmp_path, mixed_files):
    path = write(tmp_path, "t.parquet", mixed_files[1].read_bytes()[:-40])
    raises_one_line(DataError, lambda: read_table(path), "t.parquet", "Parquet")


def test_corrupted_parquet_data(tmp_path):
    buffer = io.BytesIO()
    pd.DataFrame({"x": np.arange(5000, dtype=float)}).to_parquet(buffer, compression="snappy")
    data = bytearray(buffer.getvalue())
    data[200:600] = b"\xff" * 400
    path = write(tmp_path, "c.parquet", bytes(data))
    raises_one_line(DataError, lambda: read_table(path), "c.parquet", "Parquet")


def test_parquet_pandas_index_is_not_a_column(tmp_path):
    path = tmp_path / "i.parquet"
    pd.DataFrame({"x": [1.0, 2.0]}, index=[7, 9]).to_parquet(path)
    df = read_table(path)
    assert list(df.columns) == ["x"] and list(df.index) == [0, 1]


def test_a_named_pandas_index_is_listed_from_parquet_and_arrow_files(tmp_path):
    """pandas records ``df.set_index(...)`` in the schema metadata; pyarrow then reads the index as a column."""
    import pyarrow as pa
    import pyarrow.feather as feather

    frame = pd.DataFrame({"pid": [11, 12, 13], "visit": [1, 1, 2], "x": [0.5, 1.5, 2.5]})
    cases = {
        "one.parquet": (frame.set_index("pid"), ["pid"]),
        "two.parquet": (frame.set_index(["pid", "visit"]), ["pid", "visit"]),
        "range.parquet": (frame, []),  # a RangeIndex is stored as metadata only
        "unnamed.parquet": (frame.set_index(pd.Index([7, 8, 9])), []),  # __index_level_0__: never a column
    }
    for name, (indexed, expected) in cases.items():
        indexed.to_parquet(tmp_path / name)
        assert pandas_index_columns(tmp_path / name) == expected, name
        assert set(expected) <= set(table_columns(tmp_path / name)), name  # still columns: --id-col can name them
    feather.write_feather(pa.Table.from_pandas(frame.set_index("pid")), tmp_path / "one.feather")
    assert pandas_index_columns(tmp_path / "one.feather") == ["pid"]
    frame.to_csv(tmp_path / "plain.csv", index=False)
    assert pandas_index_columns(tmp_path / "plain.csv") == []


@pytest.mark.parametrize("header", ["a,a,b", "a, a ,b"])
def test_duplicate_column_names(tmp_path, header):
    path = write(tmp_path, "d.csv", f"{header}\n1,2,3\n")
    raises_one_line(DataError, lambda: read_table(path), "d.csv", "duplicate", "'a' (columns 1, 2)")


def test_empty_column_name(tmp_path):
    path = write(tmp_path, "e.csv", ",x\n0,1\n0,2\n")  # not an index: a value repeats (an index is left out)
    raises_one_line(DataError, lambda: read_table(path), "e.csv", "column 1", "empty name",
                    "R's write.csv and pandas' to_csv", "row.names = FALSE, index=False")


def test_non_utf8_csv_names_column_row_and_offset(tmp_path):
    # Offsets are 0-based: "id,site\n1,north\n2,Troms" is 23 bytes.
    path = write(tmp_path, "l.csv", "id,site\n1,north\n2,Troms\xf8\n".encode("latin-1"))
    raises_one_line(
        DataError,
        lambda: read_table(path),
        "l.csv",
        "column 'site'",
        "not valid UTF-8",
        "byte offset 23",
        "row 2",
        "re-encode",
    )


def test_non_utf8_header(tmp_path):
    path = write(tmp_path, "l.csv", "id,h\xf8yde\n1,2\n".encode("latin-1"))
    raises_one_line(DataError, lambda: read_table(path), "l.csv", "not valid UTF-8", "header")


def test_utf8_bom_is_ignored(tmp_path):
    path = write(tmp_path, "b.csv", b"\xef\xbb\xbfa,b\n1,2\n")
    assert list(read_table(path).columns) == ["a", "b"]


def test_header_separated_unlike_its_rows_is_explained(tmp_path):
    # A semicolon-separated file is read (tests/test_delimited.py); a header that only semicolons split, over
    # rows that only commas split, is neither, and is refused.
    path = write(tmp_path, "s.csv", "a;b;c\n1,2,3\n")
    raises_one_line(DataError, lambda: read_table(path), "s.csv", "semicolons", "--delimiter")


def test_numeric_column_type_with_text_reports_rows_and_values(tmp_path):
    path = write(tmp_path, "n.csv", "a,b\n1,x\n2,y\noops,z\n")
    raises_one_line(
        DataError,
        lambda: read_table(path, column_types={"a": "numeric"}),
        "n.csv",
        "column 'a'",
        "row 3",
        "'oops'",
    )


def test_string_column_type_stays_object(mixed_files):
    df = read_table(mixed_files[0], column_types={"stage": "string"})
    assert df["stage"].dtype == object


def test_bad_column_type_is_a_config_error(mixed_files):
    with pytest.raises(ConfigError):
        read_table(mixed_files[0], column_types={"age": "integer"})


# ---------------------------------------------------------------------------------------------- streaming


@pytest.mark.parametrize("which", [0, 1])
def test_batches_concatenate_to_the_whole_file(mixed_files, which):
    path = mixed_files[which]
    pre = Preprocessor.fit(read_table(path), FEATURES, path=path)
    batches = list(iter_table_batches(path, None, 4, column_types=pre.column_types()))
    assert [len(b) for b in batches] == [4, 2]
    assert list(batches[1].index) == [4, 5]
    whole = pre.transform(read_table(path), path=path)
    streamed = np.concatenate([pre.transform(b, path=path) for b in batches])
    np.testing.assert_array_equal(whole, streamed)


def test_batches_have_at_most_batch_rows(tmp_path):
    lines = "\n".join(f"{i},{i % 3}" for i in range(5000))
    path = write(tmp_path, "big.csv", "a,b\n" + lines + "\n")
    sizes = [len(b) for b in iter_table_batches(path, ["a"], 700)]
    assert sizes == [700] * 7 + [100]


def test_csv_batches_span_parse_blocks_exactly(tmp_path):
    # ~2.6 MB: several of the streaming reader's 1 MiB parse blocks, regrouped into exact batches
    lines = "\n".join(f"{i},{i % 7},row{i}" for i in range(200_000))
    path = write(tmp_path, "blocks.csv", "a,b,c\n" + lines + "\n")
    frames = list(iter_table_batches(path, None, 30_000, column_types={"a": "numeric", "b": "numeric"}))
    assert [len(f) for f in frames] == [30_000] * 6 + [20_000]
    streamed = pd.concat(frames)
    assert list(streamed.index) == list(range(200_000))
    np.testing.assert_array_equal(streamed["a"].to_numpy(), np.arange(200_000, dtype=float))
    assert streamed["c"].astype(str).iloc[123_456] == "row123456"


def test_streamed_csv_types_do_not_depend_on_the_first_block(tmp_path):
    # An id that looks numeric in the first block and is text later must not break streaming.
    lines = [f"{i},{i * 0.5}" for i in range(20000)] + ["X1,1.0"]
    path = write(tmp_path, "ids.csv", "id,x\n" + "\n".join(lines) + "\n")
    frames = list(iter_table_batches(path, None, 1000, column_types={"x": "numeric"}))
    assert sum(len(f) for f in frames) == 20001
    assert frames[-1]["id"].iloc[-1] == "X1" and frames[-1]["x"].dtype == np.float64


def test_streamed_text_in_numeric_column_reports_file_row(tmp_path):
    lines = [f"{i}" for i in range(20000)] + ["bad"]
    path = write(tmp_path, "n.csv", "x\n" + "\n".join(lines) + "\n")
    raises_one_line(
        DataError,
        lambda: list(iter_table_batches(path, None, 1000, column_types={"x": "numeric"})),
        "n.csv",
        "column 'x'",
        "row 20001",
        "'bad'",
    )


@pytest.mark.parametrize("content", [b"", b"a,b\n"])
def test_streaming_refuses_empty_files(tmp_path, content):
    path = write(tmp_path, "e.csv", content)
    with pytest.raises(DataError, match=r"e\.csv"):
        list(iter_table_batches(path, None))


@pytest.mark.parametrize("which", [0, 1])
def test_streaming_checks_file_and_columns_before_the_first_batch(mixed_files, which):
    raises_one_line(DataError, lambda: iter_table_batches(mixed_files[which], ["nope"]), "'nope'")
    raises_one_line(
        DataError, lambda: iter_table_batches(mixed_files[which].with_suffix(".pq"), None), "not found"
    )


def test_crlf_line_endings(tmp_path):
    df = read_table(write(tmp_path, "w.csv", "a,b\r\n1,x\r\n2,y\r\n"))
    assert list(df.columns) == ["a", "b"] and list(df["b"]) == ["x", "y"]


def test_empty_column_selection_is_a_config_error(mixed_files):
    with pytest.raises(ConfigError):
        read_table(mixed_files[0], [])


# ---------------------------------------------------------------------------------------------- columns


COLUMNS = ["id", "age", "sex", "time", "event", "bmi"]


def select(**kwargs):
    options = {"time_col": "time", "event_col": "event", "id_col": "id", "features": None, "exclude": None}
    options.update(kwargs)
    return select_feature_columns(COLUMNS, path=Path("d.csv"), **options)


def test_default_features_are_all_but_time_event_id():
    assert select() == ["age", "sex", "bmi"]


def test_features_keep_file_order_and_exclude_removes():
    assert select(features=["bmi", "age"]) == ["age", "bmi"]
    assert select(exclude=["sex"]) == ["age", "bmi"]


def test_unknown_feature_names_are_listed_with_available_ones():
    raises_one_line(
        DataError,
        lambda: select(features=["age", "weight", "hgt"]),
        "d.csv",
        "'weight'",
        "'hgt'",
        "available",
        "'bmi'",
    )


def test_unknown_exclude_names_are_listed():
    raises_one_line(DataError, lambda: select(exclude=["wieght"]), "d.csv", "'wieght'")


def test_missing_time_column_suggests_a_close_name():
    raises_one_line(DataError, lambda: select(time_col="Time"), "d.csv", "time column 'Time'", "'time'")


def test_missing_event_column():
    raises_one_line(
        DataError, lambda: select(event_col="status"), "d.csv", "event column 'status'", "'event'"
    )


def test_no_features_left():
    raises_one_line(DataError, lambda: select(exclude=["age", "sex", "bmi"]), "d.csv", "no feature columns")


def test_features_must_not_include_outcome_columns():
    with pytest.raises(ConfigError, match="'time'"):
        select(features=["age", "time"])


# ---------------------------------------------------------------------------------------------- event, time


@pytest.mark.parametrize(
    "values",
    [
        [True, False, True],
        [1, 0, 1],
        [1.0, 0.0, 1.0],
        ["1", "0", "1"],
        ["true", "false", "TRUE"],
        [" Yes", "no ", "Y"],
        ["t", "F", "y"],
    ],
)
def test_event_spellings(values):
    np.testing.assert_array_equal(
        parse_event(pd.Series(values), path=Path("d.csv"), column="event"), [True, False, True]
    )


def test_event_from_categorical_column():
    values = pd.Series(pd.Categorical(["yes", "no", "yes"]))
    np.testing.assert_array_equal(parse_event(values, path=Path("d"), column="e"), [True, False, True])


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([1, 2, 0, -1], ["2 invalid event values", "rows 2, 4", "2.0", "-1.0", "yes/no"]),
        (["yes", "maybe", None], ["2 invalid event values", "rows 2, 3", "'maybe'", "<missing>"]),
        ([1.0, np.nan, 0.0], ["1 missing event value ", "(row 2: <missing>)", "every row needs one (1 = event"]),
        (["yes", " NA", None, "no"], ["2 missing event values (rows 2, 3: ' NA', <missing>); every row needs one"]),
    ],
)
def test_invalid_events_report_count_rows_and_values(values, expected):
    raises_one_line(
        DataError,
        lambda: parse_event(pd.Series(values), path=Path("d.csv"), column="status"),
        "d.csv",
        "column 'status'",
        *expected,
    )


def test_time_accepts_numbers_and_numeric_text():
    np.testing.assert_array_equal(
        parse_time(pd.Series(["1.5", " 2", "0"]), path=Path("d"), column="t", min_exclusive=False),
        [1.5, 2, 0],
    )
    out = parse_time(pd.Series([3, 4]), path=Path("d"), column="t", min_exclusive=True)
    assert out.dtype == np.float64


@pytest.mark.parametrize(
    ("values", "min_exclusive", "expected"),
    [
        ([1.0, -1.0, 2.0, -3.5], False, ["2 negative values", "rows 2, 4", "-1.0, -3.5"]),
        ([1.0, 0.0, 2.0], True, ["1 value <= 0", "row 2", "0.0", "time > 0"]),
        ([1.0, np.nan], False, ["1 missing value ", "row 2"]),
        ([1.0, np.inf], False, ["1 infinite value ", "row 2", "inf"]),
        (["1", "ten", "3", "x"], False, ["2 non-numeric values", "rows 2, 4", "'ten', 'x'"]),
    ],
)
def test_invalid_times_report_rows_and_values(values, min_exclusive, expected):
    raises_one_line(
        DataError,
        lambda: parse_time(pd.Series(values), path=Path("d.csv"), column="time", min_exclusive=min_exclusive),
        "d.csv",
        "column 'time'",
        *expected,
    )


def test_zero_time_is_allowed_for_cox():
    assert parse_time(pd.Series([0.0, 1.0]), path=Path("d"), column="t", min_exclusive=False)[0] == 0.0


def test_row_numbers_follow_the_frame_index():
    values = pd.Series([1.0, -2.0], index=[10, 41])  # rows 11 and 42 of the file, e.g. after a split
    raises_one_line(
        DataError, lambda: parse_time(values, path=Path("d"), column="t", min_exclusive=False), "row 42"
    )


# ---------------------------------------------------------------------------------------------- preprocessing


def fitted() -> tuple[Preprocessor, pd.DataFrame]:
    df = mixed_frame()
    return Preprocessor.fit(df, FEATURES, path=Path("train.csv")), df


def test_feature_names_and_column_types():
    pre, _ = fitted()
    assert pre.feature_names == [
        "age",
        "bmi",
        "bmi__missing",
        "stage=I",
        "stage=II",
        "stage=III",
        "smoker=False",
        "smoker=True",
    ]
    assert pre.input_columns == FEATURES
    assert pre.column_types() == {
        "age": "numeric",
        "bmi": "numeric",
        "stage": "category",
        "smoker": "category",
    }


def test_numeric_standardised_with_training_mean_and_population_std():
    pre, df = fitted()
    x = pre.transform(df, path=Path("train.csv"))
    age = df["age"].to_numpy(float)
    np.testing.assert_allclose(x[:, 0], (age - age.mean()) / age.std(), rtol=1e-6)
    assert x.dtype == np.float32 and x.flags.c_contiguous and x.shape == (6, 8)


def test_missing_numeric_becomes_median_with_indicator():
    pre, df = fitted()
    x = pre.transform(df, path=Path("train.csv"))
    bmi = df["bmi"].dropna().to_numpy()
    expected = (np.median(bmi) - bmi.mean()) / bmi.std()
    np.testing.assert_allclose(x[[1, 4], 1], expected, rtol=1e-6)
    np.testing.assert_array_equal(x[:, 2], [0, 1, 0, 0, 1, 0])


def test_missing_value_in_column_without_indicator_is_imputed_with_median():
    pre, df = fitted()
    new = df.assign(age=[np.nan, 60, 70, 80, 65, 55])
    x = pre.transform(new, path=Path("new.csv"))
    age = df["age"].to_numpy(float)
    np.testing.assert_allclose(x[0, 0], (np.median(age) - age.mean()) / age.std(), rtol=1e-6)
    assert x.shape[1] == len(pre.feature_names)


def test_categories_one_hot_sorted_missing_and_unseen_are_zeros():
    pre, df = fitted()
    new = df.assign(stage=["III", "IV", None, "I", "II", "II"])
    x = pre.transform(new, path=Path("new.csv"))
    np.testing.assert_array_equal(
        x[:, 3:6], [[0, 0, 1], [0, 0, 0], [0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 1, 0]]
    )


def test_boolean_column_understands_text_spellings_at_transform():
    pre, df = fitted()
    new = df.assign(smoker=["yes", "no", "TRUE", "false", None, "1"])
    x = pre.transform(new, path=Path("new.csv"))
    np.testing.assert_array_equal(x[:, 6:8], [[0, 1], [1, 0], [0, 1], [1, 0], [0, 0], [0, 1]])


def test_repeated_feature_names_are_fitted_once():
    pre = Preprocessor.fit(mixed_frame(), ["age", "age"], path=Path("d"))
    assert pre.input_columns == ["age"]


def test_category_labels_are_stripped_text():
    df = pd.DataFrame({"c": [" a", "b ", "a"]})
    pre = Preprocessor.fit(df, ["c"], path=Path("d"))
    assert pre.feature_names == ["c=a", "c=b"]


def test_extra_columns_are_ignored_and_column_order_does_not_matter():
    pre, df = fitted()
    shuffled = df[["event", "smoker", "stage", "bmi", "age", "time"]].assign(extra=1)
    np.testing.assert_array_equal(pre.transform(shuffled, path=Path("x")), pre.transform(df, path=Path("x")))


def test_constant_feature_is_kept_with_a_warning():
    df = pd.DataFrame({"c": [3.0, 3.0, 3.0], "k": ["a", "a", "a"], "x": [1.0, 2.0, 3.0]})
    pre = Preprocessor.fit(df, ["c", "k", "x"], path=Path("d"))
    np.testing.assert_array_equal(pre.transform(df, path=Path("d"))[:, 0], [0, 0, 0])
    assert sum("constant feature" in w for w in pre.warnings) == 2


def test_high_cardinality_categorical_warns():
    df = pd.DataFrame({"code": [f"P{i}" for i in range(30)]})
    pre = Preprocessor.fit(df, ["code"], path=Path("d"))
    assert len(pre.feature_names) == 30
    assert any("high-cardinality" in w and "'code'" in w for w in pre.warnings)


def test_mostly_numeric_text_column_warns():
    df = pd.DataFrame({"lab": ["1.5", "2.0", "3.1", "0.4", "5.5", "2.2", "7.0", "8.1", "9.3", "4.4", "?"]})
    pre = Preprocessor.fit(df, ["lab"], path=Path("d"))
    assert any("mostly numbers" in w and "'?'" in w for w in pre.warnings)


def test_entirely_missing_feature_is_refused():
    df = pd.DataFrame({"x": [np.nan, np.nan], "s": [None, None]})
    for column in ("x", "s"):
        raises_one_line(
            DataError,
            lambda c=column: Preprocessor.fit(df, [c], path=Path("d.csv")),
            "d.csv",
            f"'{column}'",
            "--exclude",
        )


def test_infinite_feature_values_are_refused_at_fit_and_transform():
    df = pd.DataFrame({"x": [1.0, np.inf, 2.0]})
    raises_one_line(
        DataError, lambda: Preprocessor.fit(df, ["x"], path=Path("d.csv")), "d.csv", "'x'", "row 2", "inf"
    )
    pre = Preprocessor.fit(df.iloc[[0, 2]], ["x"], path=Path("d.csv"))
    raises_one_line(DataError, lambda: pre.transform(df, path=Path("n.csv")), "n.csv", "'x'", "row 2", "inf")


def test_date_column_is_refused():
    df = pd.DataFrame({"d": pd.to_datetime(["2020-01-01", "2021-01-01"])})
    raises_one_line(DataError, lambda: Preprocessor.fit(df, ["d"], path=Path("d.csv")), "'d'", "dates")


def test_transform_names_all_missing_columns():
    pre, df = fitted()
    raises_one_line(
        DataError,
        lambda: pre.transform(df[["age", "time"]], path=Path("new.csv")),
        "new.csv",
        "'bmi'",
        "'stage'",
        "'smoker'",
    )


def test_transform_reports_text_in_a_numeric_column():
    pre, df = fitted()
    new = df.assign(age=["50", "sixty", "70", "80", "?", "55"])
    raises_one_line(
        DataError,
        lambda: pre.transform(new, path=Path("new.csv")),
        "new.csv",
        "column 'age'",
        "numeric in training",
        "rows 2, 5",
        "'sixty', '?'",
    )


def test_transform_accepts_numbers_stored_as_text():
    pre, df = fitted()
    as_text = df.assign(age=df["age"].astype(str), bmi=df["bmi"].astype(str))
    np.testing.assert_array_equal(pre.transform(as_text, path=Path("x")), pre.transform(df, path=Path("x")))


def test_transform_of_zero_rows_has_p_columns():
    pre, df = fitted()
    assert pre.transform(df.iloc[:0], path=Path("x")).shape == (0, len(pre.feature_names))


def plain(value) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(plain(v) for v in value)
    return type(value) in (str, int, float, bool)


def test_state_is_plain_data():
    pre, _ = fitted()
    assert plain(pre.to_state())


def test_state_survives_torch_save_and_weights_only_load(tmp_path):
    pre, df = fitted()
    torch.save({"preprocessing": pre.to_state()}, tmp_path / "ck.pt")
    state = torch.load(tmp_path / "ck.pt", weights_only=True)["preprocessing"]
    again = Preprocessor.from_state(state)
    assert again == pre
    np.testing.assert_array_equal(again.transform(df, path=Path("x")), pre.transform(df, path=Path("x")))


def corrupt(state: dict, change) -> dict:
    state = {**state, "columns": [dict(c) for c in state["columns"]]}
    change(state)
    return state


@pytest.mark.parametrize(
    "change",
    [
        lambda s: s.update(version=99),
        lambda s: s.update(columns=[]),
        lambda s: s.update(surprise=1),
        lambda s: s["columns"][0].update(mean="zero"),
        lambda s: s["columns"][0].update(scale=0.0),
        lambda s: s["columns"][0].update(mean=float("nan")),
        lambda s: s["columns"][1].pop("missing_indicator"),
        lambda s: s["columns"][2].update(kind="ordinal"),
        lambda s: s["columns"][2].update(categories=["b", "a"]),
        lambda s: s["columns"][2].update(categories=[1, 2]),
        lambda s: s["columns"][3].update(name="age"),
        lambda s: s.update(feature_names=["wrong"]),
    ],
)
def test_malformed_state_raises_state_error(change):
    pre, _ = fitted()
    with pytest.raises(StateError):
        Preprocessor.from_state(corrupt(pre.to_state(), change))


def test_state_that_is_not_a_dict_raises_state_error():
    with pytest.raises(StateError):
        Preprocessor.from_state(["columns"])  # type: ignore[arg-type]


def test_fit_errors_use_original_row_numbers_after_a_split():
    df = pd.DataFrame({"x": [1.0, 2.0, 3.0, np.inf]})
    raises_one_line(DataError, lambda: Preprocessor.fit(df.iloc[[0, 3]], ["x"], path=Path("d")), "row 4")


# ---------------------------------------------------------------------------------------------- fingerprint


def test_fingerprint_depends_on_content_and_size(tmp_path):
    a = write(tmp_path, "a.csv", "x\n1\n")
    b = write(tmp_path, "b.csv", "x\n1\n")
    c = write(tmp_path, "c.csv", "x\n2\n")
    assert fingerprint(a) == fingerprint(b) != fingerprint(c)
    assert fingerprint(a).endswith(":4")


def test_fingerprint_of_missing_file(tmp_path):
    raises_one_line(DataError, lambda: fingerprint(tmp_path / "none.csv"), "none.csv")


# ---------------------------------------------------------------------------------------------- splitting


def test_split_is_deterministic_disjoint_and_stratified():
    event = np.arange(1000) % 10 < 3
    train, val = stratified_split(event, 0.2, seed=7)
    again = stratified_split(event, 0.2, seed=7)
    np.testing.assert_array_equal(train, again[0])
    np.testing.assert_array_equal(val, again[1])
    assert len(val) == 200 and event[val].sum() == 60
    assert np.intersect1d(train, val).size == 0 and len(train) + len(val) == 1000
    assert not np.array_equal(val, stratified_split(event, 0.2, seed=8)[1])


def test_zero_fraction_gives_empty_validation():
    train, val = stratified_split(np.array([1, 0, 1]), 0.0, seed=0)
    assert list(train) == [0, 1, 2] and val.size == 0


def test_tiny_data_keeps_a_training_row():
    train, val = stratified_split(np.array([1, 0]), 0.9, seed=0)
    assert len(train) == 1 and len(val) == 1


def test_validation_gets_an_event_when_there_are_two():
    event = np.zeros(100, dtype=bool)
    event[[3, 50]] = True
    train, val = stratified_split(event, 0.1, seed=1)
    assert event[val].sum() == 1 and event[train].sum() == 1


def test_split_without_strata_is_unchanged():
    """The indices the split gave before --strata took part in it (exact resume of earlier runs depends on them)."""
    event = np.arange(30) % 3 == 0
    assert stratified_split(event, 0.3, 11)[1].tolist() == [7, 8, 10, 15, 17, 18, 20, 23, 24]
    assert subject_split(np.arange(30) // 2, event, 0.3, 11)[1].tolist() == [14, 15, 16, 17, 18, 19, 24, 25]


@pytest.mark.parametrize("seed", range(12))
def test_split_with_strata_keeps_events_of_every_stratum_on_both_sides(seed):
    """500 rows: a stratum of 10 rows with 4 events, one of 6 rows with 2, one of 5 rows with 1 event. Every
    stratum keeps training events; from 2 events validation gets one too; each (stratum, event) cell gives
    about a fifth of its rows, and the size is that of the split without strata (100)."""
    strata = np.repeat([1, 2, 3, 0], [10, 6, 5, 479])
    event = np.zeros(500, dtype=bool)
    event[[0, 1, 2, 3, 10, 11, 16]] = True
    event[100:300] = True
    train, val = stratified_split(event, 0.2, seed, strata)
    assert len(val) == 100 and np.intersect1d(train, val).size == 0 and len(train) + len(val) == 500
    events_in = {side: np.bincount(strata[rows][event[rows]], minlength=4) for side, rows in
                 (("train", train), ("val", val))}
    assert events_in["val"].tolist() == [40, 1, 1, 0] and events_in["train"].tolist() == [160, 3, 1, 1]
    # censored rows: 279 / 5, 6 / 5, 4 / 5, 4 / 5 rounded to make 100 in all
    assert np.bincount(strata[val], minlength=4).tolist() == [95, 2, 2, 1]
    np.testing.assert_array_equal(val, stratified_split(event, 0.2, seed, strata)[1])


def test_subject_split_with_strata_keeps_a_stratum_of_one_subject_in_training():
    """Recurrent events stratified by event number: only subject 0 has a third event (stratum 2), so it stays in
    training whatever the seed, and every row of a subject is on one side."""
    subjects = np.repeat(np.arange(40), 3)
    strata = np.tile([0, 1, 2], 40)
    event = np.zeros(120, dtype=bool)
    event[np.arange(0, 120, 3)] = True  # every subject's first event
    event[np.arange(1, 60, 3)] = True  # subjects 0-19: a second one
    event[2] = True  # subject 0: a third
    for seed in range(20):
        train, val = subject_split(subjects, event, 0.25, seed, strata)
        assert set(subjects[train]).isdisjoint(subjects[val]) and len(set(subjects[val])) == 10
        assert 0 in subjects[train]
        assert event[val][strata[val] == 1].any() and event[train][strata[train] == 1].any()


def test_bad_fraction_is_a_config_error():
    with pytest.raises(ConfigError):
        stratified_split(np.array([1, 0]), 1.0, seed=0)


@settings(max_examples=60, deadline=None)
@given(
    event=st.lists(st.booleans(), min_size=1, max_size=60),
    frac=st.floats(0.0, 0.95),
    seed=st.integers(0, 2**32 - 1),
)
def test_split_invariants(event, frac, seed):
    event = np.array(event)
    train, val = stratified_split(event, frac, seed)
    assert np.array_equal(np.sort(np.concatenate([train, val])), np.arange(len(event)))
    assert len(train) >= 1
    if frac == 0:
        assert len(val) == 0
    elif event.sum() >= 2:
        assert event[val].any() and event[train].any()


# ---------------------------------------------------------------------------------------------- sample data


@pytest.mark.skipif(not (SAMPLE_DIR / "cohort.csv").exists(), reason="sample data not generated")
def test_sample_cohort_csv_and_parquet_agree_and_predict_rows_encode():
    csv_path, parquet_path = SAMPLE_DIR / "cohort.csv", SAMPLE_DIR / "cohort.parquet"
    table = read_table(csv_path)
    features = select_feature_columns(
        list(table.columns),
        time_col="time",
        event_col="event",
        id_col="id",
        features=None,
        exclude=None,
        path=csv_path,
    )
    pre = Preprocessor.fit(table, features, path=csv_path)
    x = pre.transform(table, path=csv_path)
    np.testing.assert_array_equal(x, pre.transform(read_table(parquet_path), path=parquet_path))
    event = parse_event(table["event"], path=csv_path, column="event")
    time = parse_time(table["time"], path=csv_path, column="time", min_exclusive=True)
    assert 0.25 < 1 - event.mean() < 0.35 and len(np.unique(time)) < len(time)
    new_path = SAMPLE_DIR / "new_patients.csv"
    new = read_table(new_path, column_types=pre.column_types())
    x_new = pre.transform(new, path=new_path)
    sites = [i for i, name in enumerate(pre.feature_names) if name.startswith("site=")]
    unseen = (new["site"] == "harbour").to_numpy()
    assert unseen.sum() == 1 and not x_new[unseen][:, sites].any()


def test_csv_types_come_from_the_whole_file_not_its_first_block(tmp_path):
    # ~5 MB: an id that is numeric for 400,000 rows and text in the last, a float column that looks integer
    # at first, and a column empty at first; streaming infers from the first block, so read_table must fall
    # back to whole-file inference when a later block does not fit
    lines = [f"{i},{i},," for i in range(400_000)] + ["X1,0.5,a,2.5"]
    path = write(tmp_path, "late.csv", "id,x,t,y\n" + "\n".join(lines) + "\n")
    frame = read_table(path)
    assert len(frame) == 400_001 and frame["id"].astype(str).iloc[-1] == "X1"
    assert frame["x"].dtype == np.float64 and frame["x"].iloc[-1] == 0.5
    assert frame["y"].dtype == np.float64 and frame["y"].isna().sum() == 400_000
    assert frame["t"].astype(str).iloc[-1] == "a"


def test_multi_block_csv_reads_the_same_as_one_block(tmp_path):
    lines = "\n".join(f"{i},{i % 7 - 3.25},{'abc'[i % 3]}" for i in range(150_000))
    path = write(tmp_path, "many.csv", "a,b,c\n" + lines + "\n")
    frame = read_table(path)
    assert len(frame) == 150_000 and frame["b"].dtype == np.float64
    np.testing.assert_array_equal(frame["a"].to_numpy(), np.arange(150_000))
    assert list(frame["c"].astype(str).iloc[:4]) == ["a", "b", "c", "a"]


def _split_frame(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """Numeric with gaps, numbers stored as text, categorical and boolean columns, as read from a file."""
    rng = np.random.default_rng(seed)
    bmi = rng.normal(25, 4, n)
    bmi[rng.random(n) < 0.1] = np.nan
    stage = pd.Series(rng.choice(["I", "II", "III", None], n)).astype("category")
    return pd.DataFrame({
        "age": rng.integers(30, 90, n).astype(float), "bmi": bmi, "stage": stage,
        "smoker": rng.random(n) < 0.3, "dose": pd.Series(rng.choice(["1.5", "2", "", "3.25"], n), dtype=object),
    })


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fitting_on_a_row_mask_equals_fitting_on_those_rows(seed):
    df = _split_frame(seed=seed)
    rows = np.random.default_rng(seed + 10).random(len(df)) < 0.8
    features = ["age", "bmi", "stage", "smoker", "dose"]
    masked = Preprocessor.fit(df, features, path=Path("d.csv"), rows=rows)
    copied = Preprocessor.fit(df[rows], features, path=Path("d.csv"))
    assert masked.to_state() == copied.to_state()
    assert masked.warnings == copied.warnings


def test_fitting_on_a_row_mask_reports_only_bad_training_rows():
    df = pd.DataFrame({"x": [1.0, np.inf, 3.0, 4.0], "y": [np.nan, np.nan, 2.0, 2.5]})
    in_train = np.array([True, False, True, True])
    pre = Preprocessor.fit(df, ["x"], path=Path("d.csv"), rows=in_train)  # the inf is in a validation row
    assert pre.columns[0].mean == pytest.approx(8 / 3)
    raises_one_line(DataError, lambda: Preprocessor.fit(df, ["x"], path=Path("d.csv"), rows=~in_train),
                    "'x'", "row 2", "inf")
    first_two = np.array([True, True, False, False])
    raises_one_line(DataError, lambda: Preprocessor.fit(df, ["y"], path=Path("d.csv"), rows=first_two),
                    "'y'", "missing in all 2 training rows")


@pytest.mark.parametrize("seed", [0, 1])
def test_transform_parts_equal_masked_rows_of_the_whole_transform(seed):
    df = _split_frame(seed=seed)
    features = ["age", "bmi", "stage", "smoker", "dose"]
    pre = Preprocessor.fit(df, features, path=Path("d.csv"))
    in_val = np.random.default_rng(seed).random(len(df)) < 0.25
    whole = pre.transform(df, path=Path("d.csv"))
    train, val, everything = pre.transform_parts(df, path=Path("d.csv"), parts=[~in_val, in_val, None])
    for part, expected in ((train, whole[~in_val]), (val, whole[in_val]), (everything, whole)):
        assert part.dtype == np.float32 and part.flags.c_contiguous
        np.testing.assert_array_equal(part, expected)
    assert whole[:, pre.feature_names.index("bmi__missing")].sum() == np.isnan(df["bmi"]).sum()


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_large_csv_keeps_rows_in_order_with_quoted_commas_and_empty_cells(tmp_path, newline):
    rng = np.random.default_rng(0)
    rows = [f'{i},{rng.normal():.6f},"{"abc"[i % 3]}, x",{"" if i % 11 == 0 else i % 5},{"true" if i % 2 else "false"}'
            for i in range(60_000)]
    path = write(tmp_path, "large.csv", ("id,x,label,k,flag" + newline + newline.join(rows) + newline).encode())
    frame = read_table(path, column_types={"label": "category"})
    assert frame["id"].tolist() == list(range(60_000)) and frame["k"].isna().sum() == 60_000 // 11 + 1
    assert frame["label"].astype(str).iloc[:4].tolist() == ["a, x", "b, x", "c, x", "a, x"]
    assert frame["flag"].dtype == bool and frame["flag"].sum() == 30_000


def test_csv_whose_later_rows_do_not_fit_the_first_block_s_types_is_read_whole(tmp_path):
    lines = [f"{i},{i}" for i in range(100_000)] + ["X1,0.5"]
    path = write(tmp_path, "late.csv", "id,x\n" + "\n".join(lines) + "\n")
    frame = read_table(path)
    assert len(frame) == 100_001 and frame["id"].astype(str).iloc[-1] == "X1"
    assert frame["x"].dtype == np.float64 and frame["x"].iloc[-1] == 0.5
    one_line = write(tmp_path, "one.csv", "a,b\n1,2")  # no line end after the last row
    assert read_table(one_line)["b"].tolist() == [2]


def test_csv_with_newlines_in_quoted_fields_is_read_row_by_row(tmp_path):
    rows = [f'{i},{i % 2},"first\n5,{i % 2},z"' for i in range(20_000)]
    path = write(tmp_path, "notes.csv", "id,event,note\n" + "\n".join(rows) + "\n")
    frame = read_table(path)
    assert len(frame) == 20_000 and frame["id"].tolist() == list(range(20_000))
    assert set(frame["note"].astype(str)) == {"first\n5,0,z", "first\n5,1,z"}


@pytest.mark.parametrize("bad_line", [b"40000,1.0,Troms\xf8", b"40000,1.0", b"40000,1.0,north,extra"],
                         ids=["not utf-8", "missing field", "extra field"])
def test_a_bad_row_deep_in_a_large_csv_is_reported_with_its_line(tmp_path, bad_line):
    lines = [b"id,x,site"] + [f"{i},{i * 0.5},north".encode() for i in range(50_000)]
    lines[40_000] = bad_line  # file line 40,001: in a later parse block
    path = write(tmp_path, "bad.csv", b"\n".join(lines) + b"\n")
    raises_one_line(DataError, lambda: read_table(path), "bad.csv", "line 40001")


def test_preprocessing_warns_in_column_order_and_raises_the_first_column_s_error() -> None:
    rng = np.random.default_rng(0)
    n = 3_000
    frame = pd.DataFrame({f"x{i}": rng.standard_normal(n) for i in range(6)})
    frame["site"] = rng.choice(["a", "b", "A"], n)  # categories differing only by case: a warning
    frame["size"] = rng.integers(0, 100, n).astype(str)  # numbers as text: another warning
    pre = Preprocessor.fit(frame, list(frame.columns), path=Path("f.csv"))
    assert len(pre.warnings) == 2 and "'site'" in pre.warnings[0] and "'size'" in pre.warnings[1]
    bad = frame.assign(x1=np.where(rng.random(n) < 0.01, np.inf, 0.0), x4=np.nan)  # an inf, an empty column
    raises_one_line(DataError, lambda: Preprocessor.fit(bad, list(frame.columns), path=Path("f.csv")),
                    "'x1'", "infinite")


# The data package's modules from the bottom up: each may import only modules before it (no circles).
DATA_LAYERS = ["messages", "cells", "tables", "table_writers", "formats", "text_bytes", "text_encoding", "text_numbers",
               "whitespace", "text_dialect", "text",
               "columnar", "arrow_ipc", "orc", "jsonl", "statistical", "excel", "read", "dates", "outcomes", "designs",
               "split", "encoding", "diagnostics", "preprocess"]


def test_data_modules_import_only_the_modules_below_them():
    folder = Path(__file__).resolve().parents[1] / "survmom" / "data"
    assert sorted(DATA_LAYERS) == sorted(p.stem for p in folder.glob("*.py") if p.stem != "__init__")
    wrong = []
    for rank, name in enumerate(DATA_LAYERS):
        for node in ast.walk(ast.parse((folder / f"{name}.py").read_text())):
            if not isinstance(node, ast.ImportFrom) or not (node.module or "").startswith("survmom.data"):
                continue
            package = node.module == "survmom.data"
            used = [alias.name for alias in node.names] if package else [node.module.split(".")[2]]
            wrong += [f"{name} imports {module}" for module in used if module not in DATA_LAYERS[:rank]]
    assert wrong == []
