"""Arrow IPC/Feather, Stata, SPSS and SAS XPORT readers, and the prediction writers, against a Parquet truth.

Each format is written by a writer other than survmom (pandas, pyreadstat, pyarrow) from one cohort with
numbers, value-labelled codes, coded strings and missing values; reading it back must give the frame that the
Parquet reader gives for the same data (labels as categories, code strings as text, numbers bit for bit).
No Python package ships a ``.sas7bdat`` file and none writes one: SAS data are tested through ``.xpt`` (the
same ReadStat path), ``.sas7bdat`` only for its errors.
"""

from __future__ import annotations

import io
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.feather as feather
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pyreadstat
import pytest

from survmom.data import read_table
from survmom.data import statistical as stat
from survmom.data.arrow_ipc import ARROW_IPC
from survmom.data.formats import declared_types, reader_for, rebatch
from survmom.data.statistical import READERS, SAS, SPSS, STATA, XPORT
from survmom.data.table_writers import WRITERS, write_csv, writer_for
from survmom.errors import ConfigError, DataError

SEX = {1: "female", 2: "male"}
STAGE = {1: "I", 2: "II", 3: "III", 4: "IV"}  # code 9 has no label
N = 101


def _cohort(n: int = N, seed: int = 7) -> pd.DataFrame:
    """Codes as the statistical packages store them: numbers with value labels, text codes, NaN/None missing."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "id": [f"P{i:04d}" for i in range(n)],
        "time": rng.exponential(900.0, n),
        "event": rng.integers(0, 2, n).astype(float),
        "age": rng.integers(25, 95, n).astype(float),
        "bmi": rng.normal(27.0, 4.5, n),
        "sex": rng.choice([1.0, 2.0], n),
        "stage": rng.choice([1.0, 2.0, 3.0, 4.0, 9.0], n),
        "center": rng.choice(["120", "130", "250"], n).astype(object),
    })
    for column, every in (("age", 9), ("bmi", 7), ("sex", 11), ("stage", 13), ("center", 5)):
        df.loc[df.index % every == 3, column] = None
    return df


def _truth_frame(df: pd.DataFrame) -> pd.DataFrame:
    """The cohort as a typed source means it: labels instead of codes (unlabelled code 9 as "9")."""
    out = df.copy()
    out["sex"] = df["sex"].map(SEX)
    out["stage"] = df["stage"].map(lambda c: STAGE.get(c, "9") if c == c else None)
    return out


LABELS = {"sex": SEX, "stage": STAGE}


def _write(kind: str, df: pd.DataFrame, path: Path) -> None:
    if kind == "dta":
        df.to_stata(path, write_index=False, value_labels=LABELS, version=118)
    elif kind == "sav":
        pyreadstat.write_sav(df, path, variable_value_labels=LABELS)
    elif kind == "zsav":
        pyreadstat.write_sav(df, path, variable_value_labels=LABELS, compress=True)
    elif kind == "xpt5":
        pyreadstat.write_xport(df, path, file_format_version=5)
    elif kind == "xpt8":
        pyreadstat.write_xport(df, path, file_format_version=8)
    elif kind == "feather":  # several record batches, LZ4 (Feather's default)
        feather.write_feather(_truth_table(df), path, chunksize=17)
    elif kind == "arrow":  # uncompressed, memory-mapped without copying
        feather.write_feather(_truth_table(df), path, compression="uncompressed")
    elif kind == "arrows":  # the IPC stream format
        table = _truth_table(df)
        with pa.OSFile(str(path), "wb") as sink, ipc.new_stream(sink, table.schema) as writer:
            for batch in table.to_batches(max_chunksize=30):
                writer.write_batch(batch)
    else:
        raise AssertionError(kind)


def _truth_table(df: pd.DataFrame) -> pa.Table:
    table = pa.Table.from_pandas(_truth_frame(df), preserve_index=False)
    return table.set_column(5, "sex", table.column("sex").dictionary_encode())  # a dictionary column too


SUFFIX = {"dta": ".dta", "sav": ".sav", "zsav": ".zsav", "xpt5": ".xpt", "xpt8": ".xpt", "feather": ".feather",
          "arrow": ".arrow", "arrows": ".arrows"}
KINDS = sorted(SUFFIX)
LABELLED = {"dta", "sav", "zsav", "feather", "arrow", "arrows"}  # XPORT has no value labels


def _reader(path: Path):
    reader = reader_for(path, [ARROW_IPC, *READERS])
    assert reader is not None
    return reader


@pytest.fixture(scope="module")
def truth(tmp_path_factory) -> pd.DataFrame:
    """The cohort through survmom's Parquet reader: the frame every format must reproduce."""
    path = tmp_path_factory.mktemp("truth") / "cohort.parquet"
    pq.write_table(pa.Table.from_pandas(_truth_frame(_cohort()), preserve_index=False), path)
    return read_table(path)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("formats")
    paths = {}
    for kind in KINDS:
        paths[kind] = folder / f"cohort_{kind}{SUFFIX[kind]}"
        _write(kind, _cohort(), paths[kind])
    return paths


def _frame(table: pa.Table) -> pd.DataFrame:
    return table.to_pandas(strings_to_categorical=True)  # as the dispatch turns any typed table into a frame


def _assert_same(frame: pd.DataFrame, truth: pd.DataFrame, labelled: bool) -> None:
    assert list(frame.columns) == list(truth.columns)
    for column in truth.columns:
        got, want = frame[column], truth[column]
        if column in ("sex", "stage") and not labelled:  # XPORT: the codes, as numbers
            want = _cohort()[column]
        if isinstance(want.dtype, pd.CategoricalDtype):
            assert isinstance(got.dtype, pd.CategoricalDtype), column
            assert got.astype(object).where(got.notna(), None).tolist() == want.astype(object).where(
                want.notna(), None).tolist(), column
        else:
            assert pd.api.types.is_float_dtype(got.dtype), column
            expected = want.to_numpy(dtype=np.float64)
            values = got.to_numpy(dtype=np.float64)
            assert np.array_equal(np.isnan(values), np.isnan(expected)), column
            assert np.array_equal(values.view(np.int64)[~np.isnan(values)],
                                  expected.view(np.int64)[~np.isnan(expected)]), column  # bit for bit


@pytest.mark.parametrize("kind", KINDS)
def test_each_format_reads_as_the_parquet_truth(kind, files, truth):
    reader = _reader(files[kind])
    assert reader.columns(files[kind]) == list(truth.columns)
    _assert_same(_frame(reader.read(files[kind], None)), truth, kind in LABELLED)


@pytest.mark.parametrize("kind", KINDS)
def test_schema_is_what_read_gives_and_declares_the_type_rule(kind, files):
    reader = _reader(files[kind])
    assert reader.schema(files[kind]) == reader.read(files[kind], None).schema
    declared = reader.declared_types(files[kind])
    coded = "category" if kind in LABELLED else "numeric"
    assert declared == {"id": "category", "time": "numeric", "event": "numeric", "age": "numeric",
                        "bmi": "numeric", "sex": coded, "stage": coded, "center": "category"}


def test_declared_types_leave_dates_and_booleans_to_the_reader():
    schema = pa.schema([("d", pa.timestamp("ns")), ("b", pa.bool_()), ("n", pa.int8()), ("s", pa.large_string()),
                        ("c", pa.dictionary(pa.int32(), pa.string())), ("x", pa.decimal128(5, 2))])
    assert declared_types(schema) == {"n": "numeric", "s": "category", "c": "category", "x": "numeric"}


@pytest.mark.parametrize("kind", KINDS)
def test_batches_concatenate_to_the_whole_read_in_batch_rows_pieces(kind, files):
    reader = _reader(files[kind])
    whole = reader.read(files[kind], ["center", "time", "sex"])
    batches = list(reader.iter_batches(files[kind], ["center", "time", "sex"], 20))
    assert [b.num_rows for b in batches] == [20] * (N // 20) + [N % 20]
    assert [b.column_names for b in batches] == [["center", "time", "sex"]] * len(batches)
    joined = pa.concat_tables(batches)
    for name in whole.column_names:
        assert joined.column(name).to_pylist() == whole.column(name).to_pylist(), name


@pytest.mark.parametrize("kind", ["dta", "feather"])
def test_each_batch_survives_the_dispatch_destroying_the_one_before(kind, files):
    # The dispatch converts each table with self_destruct=True; batches are slices of shared buffers.
    reader = _reader(files[kind])
    frames = []
    for table in reader.iter_batches(files[kind], None, 30):
        frames.append(table.to_pandas(strings_to_categorical=True, split_blocks=True, self_destruct=True))
        del table
    whole = _frame(reader.read(files[kind], None))
    joined = pd.concat(frames, ignore_index=True)
    for column in whole.columns:
        pd.testing.assert_series_equal(joined[column].astype(object), whole[column].astype(object))


@pytest.mark.parametrize("kind", ["dta", "sav", "feather", "arrows"])
def test_value_labels_are_categories_and_coded_strings_stay_text(kind, files):
    table = _reader(files[kind]).read(files[kind], ["sex", "stage", "center"])
    assert pa.types.is_dictionary(table.schema.field("sex").type)
    assert set(table.column("sex").drop_null().to_pylist()) == {"female", "male"}
    assert "9" in table.column("stage").to_pylist()  # the code without a label, as text
    assert table.schema.field("center").type == pa.string()  # "120": a code, not a number
    assert set(table.column("center").drop_null().to_pylist()) == {"120", "130", "250"}


def test_statistical_categories_are_the_labels_present_in_code_order(tmp_path):
    path = tmp_path / "d.sav"
    pyreadstat.write_sav(pd.DataFrame({"g": [9.0, 2.0, 2.0, np.nan, 1.0]}), path,
                         variable_value_labels={"g": {1: "one", 2: "two", 3: "three"}})
    column = SPSS.read(path, None).column("g").combine_chunks()
    assert column.dictionary.to_pylist() == ["one", "two", "9"]
    assert column.to_pylist() == ["9", "two", "two", None, "one"]


def test_statistical_dates_are_timestamps(tmp_path):
    path = tmp_path / "d.dta"
    pd.DataFrame({"dx": pd.to_datetime(["2020-01-31", None]), "x": [1.0, 2.0]}).to_stata(
        path, write_index=False, convert_dates={"dx": "td"})
    table = STATA.read(path, None)
    assert table.schema.field("dx").type == pa.timestamp("ns")
    assert table.column("dx").to_pylist() == [pd.Timestamp("2020-01-31"), None]


def test_statistical_streaming_reads_blocks_and_keeps_memory_flat(tmp_path, monkeypatch):
    path = tmp_path / "big.sav"
    pyreadstat.write_sav(_cohort(20_000), path, variable_value_labels=LABELS)
    monkeypatch.setattr(stat, "BLOCK_ROWS", 1000)
    tracemalloc.start()
    try:
        SPSS.read(path, None)
        whole = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        rows = sum(t.num_rows for t in SPSS.iter_batches(path, None, 500))
        streamed = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert rows == 20_000
    assert streamed < whole / 4, (streamed, whole)


def test_arrow_ipc_streaming_decodes_one_record_batch_at_a_time(tmp_path):
    path = tmp_path / "big.feather"
    feather.write_feather(_truth_table(_cohort(50_000)), path, chunksize=1000)  # LZ4: every batch is decoded
    before = pa.total_allocated_bytes()
    whole = ARROW_IPC.read(path, None)
    whole_bytes = pa.total_allocated_bytes() - before
    del whole
    peak = 0
    for table in ARROW_IPC.iter_batches(path, None, 1000):
        peak = max(peak, pa.total_allocated_bytes() - before)
        del table
    assert peak < whole_bytes / 10, (peak, whole_bytes)


# --------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("kind", KINDS)
def test_a_missing_column_is_named_with_the_available_ones(kind, files):
    reader = _reader(files[kind])
    with pytest.raises(DataError, match=r"missing 1 column 'weight' \(available: 'id', 'time'"):
        reader.read(files[kind], ["time", "weight"])
    with pytest.raises(DataError, match="missing 1 column 'weight'"):
        reader.iter_batches(files[kind], ["weight"], 10)


@pytest.mark.parametrize("kind", KINDS)
def test_a_truncated_file_is_refused_naming_it(kind, files, tmp_path):
    path = tmp_path / f"cut{SUFFIX[kind]}"
    data = files[kind].read_bytes()
    cut = len(data) // 2
    path.write_bytes(data[: cut - cut % 80 + 37 if kind.startswith("xpt") else cut])  # XPORT: inside a record
    reader = _reader(path)
    if kind == "arrows":  # a stream cut inside a batch is an error; between batches it cannot be told
        with pytest.raises(DataError, match=f"{path}: corrupted Arrow IPC"):
            reader.read(path, None)
        return
    with pytest.raises(DataError, match=str(path)) as caught:
        reader.read(path, None)
        list(reader.iter_batches(path, None, 10))
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("suffix", [".feather", ".arrow", ".dta", ".sav", ".zsav", ".xpt", ".sas7bdat"])
def test_a_file_of_another_kind_is_refused_naming_the_format(suffix, tmp_path):
    path = tmp_path / f"notes{suffix}"
    path.write_bytes(b"id,time,event\n1,2,1\n" * 20)  # 400 bytes: whole XPORT records
    reader = _reader(path)
    with pytest.raises(DataError, match=f"{path}: not a readable {reader.name}"):
        reader.columns(path)


def test_an_idl_save_file_is_not_taken_for_spss(tmp_path):
    idl = Path(__import__("scipy").__file__).parent / "io" / "tests" / "data" / "scalar_float32.sav"
    if not idl.exists():
        pytest.skip("scipy's IDL test files are not installed")
    with pytest.raises(DataError, match=f"{idl}: not a readable SPSS file"):
        SPSS.read(idl, None)


def test_feather_version_1_is_refused_with_how_to_rewrite_it(tmp_path):
    path = tmp_path / "old.feather"
    path.write_bytes(b"FEA1\x00\x00\x00\x00" + b"\x00" * 64)
    with pytest.raises(DataError, match=r"Feather version 1.*write_feather"):
        ARROW_IPC.columns(path)


@pytest.mark.parametrize("kind", ["dta", "sav", "xpt8", "feather", "arrows"])
def test_a_file_with_no_rows_is_refused(kind, tmp_path):
    path = tmp_path / f"empty{SUFFIX[kind]}"
    _write(kind, _cohort().iloc[:0], path)
    reader = _reader(path)
    assert reader.columns(path) == list(_cohort().columns)
    assert reader.schema(path).names == list(_cohort().columns)
    with pytest.raises(DataError, match=f"{path}: has no data rows"):
        reader.read(path, None)
    with pytest.raises(DataError, match=f"{path}: has no data rows"):
        list(reader.iter_batches(path, None, 10))


def test_text_that_does_not_decode_is_refused_with_how_to_fix_it(tmp_path):
    path = tmp_path / "latin.sav"
    pyreadstat.write_sav(pd.DataFrame({"site": ["zzzzzz", "abc"]}), path)
    data = path.read_bytes()
    path.write_bytes(data.replace(b"zzzzzz", b"z\xe9\xff\xfezz"))  # not UTF-8, which the file declares
    with pytest.raises(DataError, match=rf"{path}: text that cannot be decoded.*UTF-8"):
        SPSS.read(path, None)


def test_missing_file_and_bad_batch_rows(tmp_path, files):
    for reader in (ARROW_IPC, STATA, SPSS, SAS, XPORT):
        with pytest.raises(DataError, match="file not found"):
            reader.columns(tmp_path / f"none{reader.suffixes[0]}")
    with pytest.raises(ConfigError, match="batch_rows"):
        STATA.iter_batches(files["dta"], None, 0)


# --------------------------------------------------------------------------------------------- helpers


def test_reader_for_matches_suffixes_in_any_case():
    readers = [ARROW_IPC, *READERS]
    assert reader_for(Path("a/B.FEATHER"), readers) is ARROW_IPC
    assert reader_for(Path("x.ZSAV"), readers) is SPSS
    assert reader_for(Path("x.sas7bdat"), readers) is SAS
    assert reader_for(Path("x.csv"), readers) is None


def test_rebatch_cuts_and_joins_parts_into_exact_batches():
    parts = [pa.table({"x": list(range(a, b))}) for a, b in ((0, 3), (3, 3), (3, 11), (11, 12))]
    out = list(rebatch(parts, 4))
    assert [t.num_rows for t in out] == [4, 4, 4]
    assert pa.concat_tables(out).column("x").to_pylist() == list(range(12))


# --------------------------------------------------------------------------------------------- writers


def _predictions() -> list[pa.Table]:
    ids = pa.array(["a", "b\tc", 'q"t', "d"])
    risk = pa.array([0.1, -2.5, 1e300, float("inf")])
    table = pa.table({"id": ids, "risk": risk, "surv_365": pa.array([0.9, 0.5, 0.0, 1.0])})
    return [table.slice(0, 3), table.slice(3)]


def _read_back(suffix: str, data: bytes) -> pa.Table:
    if suffix in (".csv", ".tsv"):
        options = pa_csv.ParseOptions(delimiter="\t" if suffix == ".tsv" else ",")
        return pa_csv.read_csv(io.BytesIO(data), parse_options=options)
    if suffix in (".parquet", ".pq"):
        return pq.read_table(io.BytesIO(data))
    return ipc.open_file(pa.BufferReader(data)).read_all()


@pytest.mark.parametrize("suffix", sorted(set(WRITERS) - {".xlsx"}))  # .xlsx: tests/test_excel.py
def test_each_writer_streams_the_chunks_and_reads_back_equal(suffix):
    stream = io.BytesIO()
    assert writer_for(Path(f"out{suffix.upper()}"))(iter(_predictions()), stream) == 4
    back = _read_back(suffix, stream.getvalue())
    assert back.to_pydict() == pa.concat_tables(_predictions()).to_pydict()


def test_tsv_is_tab_separated_with_quoted_tabs():
    stream = io.BytesIO()
    WRITERS[".tsv"](iter(_predictions()), stream)
    lines = stream.getvalue().decode().splitlines()
    assert lines[0] == '"id"\t"risk"\t"surv_365"'
    assert lines[2].startswith('"b\tc"\t-2.5\t')


def test_a_writer_given_no_tables_writes_nothing():
    stream = io.BytesIO()
    assert write_csv(iter([]), stream) == 0
    assert stream.getvalue() == b""


def test_a_failing_chunk_stops_the_writer_and_propagates():
    def chunks():
        yield _predictions()[0]
        raise DataError("bad row")

    with pytest.raises(DataError, match="bad row"):
        WRITERS[".feather"](chunks(), io.BytesIO())


def test_stata_integers_with_missing_values_are_numbers_and_labelled_codes(tmp_path):
    """Stata byte/int/long columns with missing values (pandas' nullable integers, a categorical with NaN written
    as labelled bytes) come from ReadStat as Python objects: numbers, not times of day. Oracle: pandas.read_stata."""
    frame = pd.DataFrame({"age": pd.array([61, None, 70, 58, None], dtype="Int8"),
                          "nodes": pd.array([None, 3, 12, 0, 300], dtype="Int16"),
                          "grade": pd.Categorical(["II", "III", None, "I", "II"]),
                          "time": [5.0, 6.0, 7.0, 8.0, 9.0]})
    path = tmp_path / "ints.dta"
    frame.to_stata(path, write_index=False)
    want = pd.read_stata(path)
    got = read_table(path)
    for column in ("age", "nodes"):
        assert got[column].dtype == np.float64, column
        np.testing.assert_array_equal(got[column].to_numpy(), want[column].to_numpy(dtype=float))
    assert list(got["grade"].astype(object).where(got["grade"].notna(), None)) == \
        list(want["grade"].astype(object).where(want["grade"].notna(), None))
