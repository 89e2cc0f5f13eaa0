"""JSON Lines and ORC readers against pandas' own readers (pd.read_json(lines=True), pd.read_orc), their streaming
and memory, their errors, and the one-line refusals of .json, R and SAS catalog files."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.orc as pa_orc
import pytest

from survmom.data import read_table
from survmom.data.jsonl import JSONL
from survmom.data.orc import ORC
from survmom.data.read import declared_types, iter_table_batches
from survmom.errors import DataError

from cli_runner import run_survmom

N = 101


def _cohort(n: int = N, seed: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "id": np.arange(n),
        "time": rng.exponential(900.0, n),
        "event": rng.integers(0, 2, n),
        "age": rng.integers(25, 95, n).astype(float),
        "center": rng.choice(["north", "south", "west"], n).astype(object),
    })
    df.loc[df.index % 9 == 3, "age"] = np.nan
    df.loc[df.index % 7 == 2, "center"] = None
    return df


def _write(kind: str, df: pd.DataFrame, path: Path) -> None:
    text = df.to_json(orient="records", lines=True, double_precision=15)
    if kind == "jsonl.gz":
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    elif kind == "orc":  # several stripes
        pa_orc.write_table(pa.Table.from_pandas(df, preserve_index=False), path, stripe_size=4096, batch_size=16)
    else:
        path.write_text(text)


def _oracle(kind: str, path: Path) -> pd.DataFrame:
    return pd.read_orc(path) if kind == "orc" else pd.read_json(path, lines=True)


KINDS = ["jsonl", "ndjson", "jsonl.gz", "orc"]


@pytest.mark.parametrize("kind", KINDS)
def test_each_format_reads_as_pandas_reads_it(kind, tmp_path):
    path = tmp_path / f"cohort.{kind}"
    _write(kind, _cohort(), path)
    got, want = read_table(path), _oracle(kind, path)
    assert list(got.columns) == list(want.columns) == ["id", "time", "event", "age", "center"]
    for column in ("id", "time", "event", "age"):
        np.testing.assert_array_equal(got[column].to_numpy(np.float64), want[column].to_numpy(np.float64))
    assert isinstance(got["center"].dtype, pd.CategoricalDtype)
    assert got["center"].astype(object).where(got["center"].notna(), None).tolist() == \
        want["center"].where(want["center"].notna(), None).tolist()
    assert declared_types(path) == {"id": "numeric", "time": "numeric", "event": "numeric", "age": "numeric",
                                    "center": "category"}


@pytest.mark.parametrize("kind", KINDS)
def test_batches_concatenate_to_the_whole_read(kind, tmp_path):
    path = tmp_path / f"cohort.{kind}"
    _write(kind, _cohort(), path)
    reader = ORC if kind == "orc" else JSONL
    whole = reader.read(path, ["center", "time"])
    batches = list(reader.iter_batches(path, ["center", "time"], 20))
    assert [b.num_rows for b in batches] == [20] * (N // 20) + [N % 20]
    assert [b.column_names for b in batches] == [["center", "time"]] * len(batches)
    joined = pa.concat_tables(batches)
    for name in whole.column_names:
        assert joined.column(name).to_pylist() == whole.column(name).to_pylist(), name
    frames = list(iter_table_batches(path, None, 30))
    assert [f.index[0] for f in frames] == [0, 30, 60, 90]
    pd.testing.assert_frame_equal(pd.concat(frames), read_table(path), check_categorical=False)


@pytest.mark.parametrize("kind", ["jsonl", "orc"])
def test_streaming_keeps_arrow_memory_to_a_block(kind, tmp_path):
    path = tmp_path / f"big.{kind}"
    df = _cohort(200_000)
    if kind == "orc":
        pa_orc.write_table(pa.Table.from_pandas(df, preserve_index=False), path, stripe_size=1 << 16)
        assert pa_orc.ORCFile(str(path)).nstripes > 10
    else:
        _write(kind, df, path)
    reader = ORC if kind == "orc" else JSONL
    before = pa.total_allocated_bytes()
    whole = reader.read(path, None)
    whole_bytes = pa.total_allocated_bytes() - before
    del whole
    peak = 0
    for table in reader.iter_batches(path, None, 1000):
        peak = max(peak, pa.total_allocated_bytes() - before)
        del table
    if kind == "orc":
        assert peak < whole_bytes / 2, (peak, whole_bytes)
    else:  # the blocks pyarrow reads ahead, not the file: a file four times as long holds as much
        path.write_bytes(path.read_bytes() * 4)
        peak_long = 0
        for table in reader.iter_batches(path, None, 1000):
            peak_long = max(peak_long, pa.total_allocated_bytes() - before)
            del table
        assert peak_long < min(1.2 * peak, whole_bytes), (peak_long, peak, whole_bytes)


def test_a_line_longer_than_a_block_is_refused_naming_it(tmp_path):
    path = tmp_path / "wide.jsonl"
    path.write_text('{"time": 1, "event": 1}\n{"time": 2, "event": 0, "note": "' + "x" * 300_000 + '"}\n')
    with pytest.raises(DataError, match=f"{path}: line 2 is longer than 128 KiB"):
        read_table(path)


def test_a_bad_line_is_named_by_its_number_in_one_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    lines = _cohort(30_000).to_json(orient="records", lines=True).splitlines()
    lines[24_999] = '{"id": 1, "time": oops}'  # beyond pyarrow's first block
    path.write_text("\n".join(lines) + "\n")
    for call in (lambda: read_table(path), lambda: list(iter_table_batches(path, None, 100)),
                 lambda: JSONL.columns(path)):
        with pytest.raises(DataError, match=f"{path}: line 25000 is not a JSON object") as caught:
            call()
        assert "\n" not in str(caught.value)
    array = tmp_path / "array.jsonl"  # a pandas records array under a JSON Lines name
    array.write_text(_cohort(3).to_json(orient="records"))
    with pytest.raises(DataError, match=f"{array}: line 1 is not a JSON object, one per line"):
        read_table(array)


def test_a_file_not_in_utf8_is_refused_naming_the_line(tmp_path):
    path = tmp_path / "latin.jsonl"
    text = "{\"time\": 1, \"event\": 1, \"c\": \"cafe\"}\n{\"time\": 2, \"event\": 0, \"c\": \"caf\xe9\"}\n"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(UnicodeDecodeError):
        pd.read_json(path, lines=True, encoding="utf-8")
    with pytest.raises(DataError, match=rf"{path}: line 2 is not UTF-8 \(byte 0xe9\)"):
        read_table(path)


def test_types_are_unified_over_blocks_and_mixed_kinds_refused(tmp_path):
    path = tmp_path / "mixed.jsonl"  # integers in the first block, a float far below: a float column
    rows = [f'{{"time": {i + 1}, "event": 1, "x": {i % 5}}}' for i in range(40_000)]
    rows[-1] = '{"time": 7, "event": 1, "x": 2.5}'
    path.write_text("\n".join(rows) + "\n")
    got, want = read_table(path), pd.read_json(path, lines=True)
    np.testing.assert_array_equal(got["x"].to_numpy(), want["x"].to_numpy())
    assert got["x"].dtype == np.float64
    rows[-1] = '{"time": 7, "event": 1, "x": "two"}'
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError, match=f"{path}: key 'x' holds values of two kinds"):
        read_table(path)


def test_missing_keys_are_missing_values_and_columns_are_named(tmp_path):
    path = tmp_path / "sparse.jsonl"
    path.write_text('{"time": 1, "event": 1}\n{"time": 2, "event": 0, "age": 40}\n')
    got = read_table(path)
    assert got["age"].isna().tolist() == pd.read_json(path, lines=True)["age"].isna().tolist() == [True, False]
    with pytest.raises(DataError, match=r"missing 1 column 'weight' \(available: 'time', 'event', 'age'"):
        read_table(path, ["time", "weight"])


@pytest.mark.parametrize(("name", "hint"), [
    ("records.json", 'to_json("x.jsonl", orient="records", lines=True)'),
    ("cohort.rds", 'arrow::write_parquet(df, "x.parquet")'),
    ("session.RData", 'write.csv(df, "x.csv")'),
    ("formats.sas7bcat", "read the .sas7bdat data file"),
    ("download.zip", "is read when named for it (cohort.csv.zip)"),
])
def test_files_not_read_are_refused_in_one_line_with_the_conversion(name, hint, tmp_path):
    path = tmp_path / name
    path.write_bytes(b'[{"time": 1, "event": 1}]')
    with pytest.raises(DataError, match=f"{path}: not read: ") as caught:
        read_table(path)
    assert hint in str(caught.value) and "\n" not in str(caught.value)
    out = tmp_path / "model.pt"
    result = run_survmom("train", path, "--quiet", "-o", out)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and hint in result.stderr
    assert not out.exists()


def test_an_orc_file_cut_short_or_of_another_kind_is_refused_in_one_line(tmp_path):
    whole = tmp_path / "whole.orc"
    _write("orc", _cohort(), whole)
    cut, csv = tmp_path / "cut.orc", tmp_path / "notes.orc"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    csv.write_bytes(b"id,time,event\n1,2,1\n" * 20)
    for path in (cut, csv):
        with pytest.raises(Exception):  # noqa: B017 -- the oracle refuses it too
            pd.read_orc(path)
        with pytest.raises(DataError, match=f"{path}: not a readable ORC file") as caught:
            read_table(path)
        assert "\n" not in str(caught.value)
