"""Delimited text: the delimiter and decimal mark detected from the first lines, --delimiter, compression."""

from __future__ import annotations

import bz2
import gzip
import lzma
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from survmom.data import iter_table_batches, read_table, table_columns, text_notice
from survmom.data.text_dialect import PROBE_LINES, dialect
from survmom.errors import ConfigError, DataError

from cli_runner import checkpoint_tensors, run_survmom

PLAIN = "id,time,age\n1,2.5,40\n2,3.25,NA\n3,10,61.5\n"
EUROPEAN = "id;time;age\n1;2,5;40\n2;3,25;NA\n3;10;61,5\n"


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_a_semicolon_csv_with_decimal_commas_reads_as_the_comma_csv(tmp_path):
    want = read_table(write(tmp_path, "plain.csv", PLAIN))
    got = read_table(write(tmp_path, "european.csv", EUROPEAN))
    assert got.equals(want)
    assert got["time"].tolist() == [2.5, 3.25, 10.0]


def test_the_detection_is_one_line_naming_the_file_and_the_option(tmp_path):
    path = write(tmp_path, "european.csv", EUROPEAN)
    assert text_notice(path) == (f"{path}: read as semicolon-separated with decimal commas (detected from the "
                                 "first lines; --delimiter overrides)")
    assert text_notice(write(tmp_path, "plain.csv", PLAIN)) is None
    assert text_notice(write(tmp_path, "plain.tsv", PLAIN.replace(",", "\t"))) is None


def test_semicolons_with_decimal_points_keep_the_point(tmp_path):
    path = write(tmp_path, "s.csv", PLAIN.replace(",", ";"))
    assert (dialect(path).delimiter, dialect(path).decimal) == (";", ".")
    assert read_table(path)["time"].tolist() == [2.5, 3.25, 10.0]
    assert text_notice(path) == f"{path}: read as semicolon-separated (detected from the first lines; --delimiter " \
                                "overrides)"


def test_numeric_columns_with_decimal_commas_stream_and_parse_missing_spellings(tmp_path):
    # " NA" makes pyarrow's float conversion refuse the column: it is then parsed as text, decimal comma included.
    path = write(tmp_path, "e.csv", "id;time;age\n" + "".join(f"{i};{i},5; NA\n" for i in range(1, 8))
                 + "8;1,25;3,5\n")
    types = {"time": "numeric", "age": "numeric"}
    whole = read_table(path, column_types=types)
    parts = list(iter_table_batches(path, None, 3, column_types=types))
    assert [len(p) for p in parts] == [3, 3, 2]
    for frame in (whole, pd.concat(parts)):
        assert frame["time"].tolist() == [1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 1.25]
        np.testing.assert_array_equal(frame["age"], [np.nan] * 7 + [3.5])


# Excel's export where the decimal mark is a comma: thousands grouped by points, "1.234,5" = 1234.5
EXCEL = "id;time;income;site\n1;1.234,5;12.000;A\n2;3,25;NA;B\n3;10;1.500.000,75;C\n"


def test_excel_numbers_with_grouped_thousands_read_as_numbers(tmp_path):
    path = write(tmp_path, "excel.csv", EXCEL)
    assert (dialect(path).delimiter, dialect(path).decimal) == (";", ",")
    whole = read_table(path)
    assert whole["time"].tolist() == [1234.5, 3.25, 10.0]
    np.testing.assert_array_equal(whole["income"], [12000.0, np.nan, 1500000.75])
    assert list(whole["site"].astype(str)) == ["A", "B", "C"]
    types = {"time": "numeric", "income": "numeric"}  # as predict reads them: typed, streamed
    streamed = pd.concat(list(iter_table_batches(path, None, 2, column_types=types)))
    np.testing.assert_array_equal(streamed["income"], whole["income"])
    assert streamed["time"].tolist() == whole["time"].tolist()
    with pytest.raises(DataError, match=r"excel.csv: column 'time' should be numeric but has 1 non-numeric value "
                                        r"\(row 2: 'abc'\)"):
        read_table(write(tmp_path, "excel.csv", EXCEL.replace(";3,25;", ";abc;")), column_types=types)


def test_tsv_and_tab_are_tab_separated_in_any_case(tmp_path):
    want = read_table(write(tmp_path, "plain.csv", PLAIN))
    for name in ("d.tsv", "d.TAB", "d.Tsv"):
        assert read_table(write(tmp_path, name, PLAIN.replace(",", "\t"))).equals(want)


def test_a_tab_separated_csv_is_detected(tmp_path):
    path = write(tmp_path, "t.csv", PLAIN.replace(",", "\t"))
    assert table_columns(path) == ["id", "time", "age"]
    assert "tab-separated" in text_notice(path)


@pytest.mark.parametrize("name, opener", [("d.csv.gz", gzip.open), ("d.csv.bz2", bz2.open), ("d.CSV.XZ", lzma.open),
                                          ("d.tsv.gz", gzip.open), ("d.csv.zst", None)])
def test_compressed_files_read_as_the_plain_file(name, opener, tmp_path):
    text = PLAIN.replace(",", "\t") if ".tsv" in name else PLAIN
    path = tmp_path / name
    if opener is None:
        with pa.output_stream(str(path), compression="zstd") as out:
            out.write(text.encode())
    else:
        with opener(path, "wt") as fh:
            fh.write(text)
    want = read_table(write(tmp_path, "plain.csv", PLAIN))
    assert read_table(path).equals(want)
    assert pd.concat(list(iter_table_batches(path, None, 2))).shape == (3, 3)


def _zipped(path: Path, members: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, text in members.items():
            archive.writestr(name, text)
    return path


def test_a_zipped_csv_reads_as_the_plain_file(tmp_path):
    want = read_table(write(tmp_path, "plain.csv", PLAIN))
    for name, text in (("d.csv.zip", PLAIN), ("t.TSV.ZIP", PLAIN.replace(",", "\t"))):
        path = _zipped(tmp_path / name, {"inner/data.csv": text})
        assert read_table(path).equals(want)
        plain = list(iter_table_batches(tmp_path / "plain.csv", None, 2))
        for got, expected in zip(iter_table_batches(path, None, 2), plain, strict=True):
            pd.testing.assert_frame_equal(got, expected)


def test_a_zip_archive_of_several_files_or_none_is_refused_naming_them(tmp_path):
    two = _zipped(tmp_path / "two.csv.zip", {"a.csv": PLAIN, "readme.txt": "x"})
    with pytest.raises(DataError, match=r"two.csv.zip: a ZIP archive must hold exactly one data file to be read, "
                                        r"this one holds 2: 'a.csv', 'readme.txt'; extract the one to use"):
        read_table(two)
    with pytest.raises(DataError, match=r"empty.csv.zip: .* holds 0; extract"):
        read_table(_zipped(tmp_path / "empty.csv.zip", {}))
    with pytest.raises(DataError, match=r"bad.csv.zip: not a ZIP archive"):
        read_table(write(tmp_path, "bad.csv.zip", PLAIN))
    zipped_as_csv = tmp_path / "z.csv"
    zipped_as_csv.write_bytes(_zipped(tmp_path / "z.zip", {"a.csv": PLAIN}).read_bytes())
    with pytest.raises(DataError, match=r"a zipped CSV is read when named .csv.zip"):
        read_table(zipped_as_csv)


def test_a_compressed_file_without_its_suffix_says_which_suffix(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes(bz2.compress(PLAIN.encode()))
    with pytest.raises(DataError, match=r"bzip2-compressed \(name it \.csv\.bz2\)"):
        read_table(path)


def test_two_delimiters_that_split_equally_well_are_refused(tmp_path):
    path = write(tmp_path, "a.csv", "a,b;c\n1,2;3\n4,5;6\n")
    with pytest.raises(DataError) as info:
        read_table(path)
    message = str(info.value)
    assert "\n" not in message
    assert message == (f"{path}: the first lines split equally well by commas (2 fields) and semicolons (2 fields); "
                       "pass --delimiter (e.g. --delimiter ';') to say which")


def test_the_delimiter_option_overrides_detection(tmp_path):
    path = write(tmp_path, "a.csv", "a,b;c\n1,2;3\n4,5;6\n")
    assert table_columns(path, delimiter=";") == ["a,b", "c"]
    assert table_columns(path, delimiter=",") == ["a", "b;c"]
    assert table_columns(write(tmp_path, "t.csv", "a\tb\n1\t2\n"), delimiter="tab") == ["a", "b"]


@pytest.mark.parametrize("bad", ["", ";;", '"', "\n"])
def test_a_delimiter_that_is_not_one_character_is_a_config_error(bad, tmp_path):
    with pytest.raises(ConfigError, match="--delimiter must be one character"):
        read_table(write(tmp_path, "p.csv", PLAIN), delimiter=bad)


def test_detection_reads_only_the_first_lines(tmp_path):
    # Past the probed lines every row also splits by semicolons: detection never sees them.
    rows = [f"{i},{i}.5" for i in range(PROBE_LINES + 5)] + [f"{i},{i};5" for i in range(2000)]
    path = write(tmp_path, "long.csv", "a,b\n" + "\n".join(rows) + "\n")
    assert dialect(path).delimiter == ","


def test_the_delimiter_option_is_ignored_by_typed_formats(tmp_path):
    import pyarrow.parquet as pq

    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"a": [1.0, 2.0], "b": ["x", "y"]}), path)
    assert read_table(path, delimiter=";")["a"].tolist() == [1.0, 2.0]


def test_a_spreadsheets_empty_trailing_columns_are_not_columns(tmp_path):
    """Excel's export "a,b,," with nothing under the unnamed trailing columns reads as "a,b"; unnamed columns
    holding values, or in the middle, stay an error naming every one of them."""
    want = read_table(write(tmp_path, "plain.csv", PLAIN))
    trailing = write(tmp_path, "trailing.csv", PLAIN.replace("\n", ",,\n"))
    assert table_columns(trailing) == ["id", "time", "age"]
    assert read_table(trailing).equals(want)
    streamed = pd.concat(list(iter_table_batches(trailing, None, 2, column_types={"time": "numeric"})))
    assert streamed["time"].tolist() == want["time"].tolist() and list(streamed.columns) == ["id", "time", "age"]
    with pytest.raises(DataError, match=r"full.csv: column 4 has an empty name in the header \(name it"):
        read_table(write(tmp_path, "full.csv", PLAIN.replace("\n", ",\n").replace("40,", "40,7")))
    with pytest.raises(DataError, match=r"middle.csv: columns 2, 4 have empty names in the header"):
        read_table(write(tmp_path, "middle.csv", "id,,time,\n1,,2,5\n"))


def test_a_nameless_index_column_written_by_r_or_pandas_is_left_out(tmp_path):
    """pandas' to_csv (",time,..." over "0,2.5,...") and R's write.csv ('"","time"' over '"1",2.5') write a
    nameless first column of row names: read as the file without it, saying so; a nameless first column that
    repeats a value is not an index and stays an error."""
    from survmom.data.text_dialect import ROW_NAMES

    frame = pd.read_csv(write(tmp_path, "plain.csv", PLAIN))
    want = read_table(tmp_path / "plain.csv")
    frame.to_csv(tmp_path / "pandas.csv")
    frame.set_axis(range(1, 4)).to_csv(tmp_path / "r.csv", index_label="", quoting=2)  # write.csv's quoting
    for name in ("pandas.csv", "r.csv"):
        path = tmp_path / name
        assert table_columns(path) == ["id", "time", "age"]
        assert read_table(path).equals(want)
        streamed = pd.concat(list(iter_table_batches(path, None, 2, column_types={"time": "numeric"})))
        assert list(streamed.columns) == ["id", "time", "age"] and streamed["time"].tolist() == [2.5, 3.25, 10.0]
        assert text_notice(path) == (f"{path}: column 1 has no name in the header: read as row names (the index "
                                     "R's write.csv and pandas' to_csv write by default) and left out")
        assert dialect(path).names[0] == ROW_NAMES
    rows = EUROPEAN.splitlines()
    semicolons = write(tmp_path, "eu.csv", "\n".join([";" + rows[0]] + [f"r{i};{r}" for i, r in enumerate(rows[1:])])
                       + "\n")  # with decimal commas too
    assert read_table(semicolons).equals(want)
    assert "semicolon-separated with decimal commas" in text_notice(semicolons)
    assert "overrides); column 1 has no name in the header: read as row names" in text_notice(semicolons)
    with pytest.raises(DataError, match=r"repeat.csv: column 1 has an empty name in the header \(a row index"):
        read_table(write(tmp_path, "repeat.csv", ",time,age\na,2.5,40\na,3.25,NA\n"))


def test_errors_in_a_file_with_an_index_column_name_the_right_column_and_line(tmp_path):
    lines = [",id,time,city"] + [f"{i},{i},{i + 1.5},Oslo" for i in range(80)]
    path = tmp_path / "bad.csv"
    path.write_bytes(("\n".join(lines) + "\n").encode()[:-5] + "Troms\xf8\n".encode("latin-1"))  # the last row
    with pytest.raises(DataError, match=r"bad.csv: column 'city' is not valid UTF-8"):
        read_table(path)
    ragged = write(tmp_path, "ragged.csv", "\n".join([*lines[:70], lines[70] + ",9", *lines[71:]]) + "\n")
    with pytest.raises(DataError, match=r"ragged.csv: not a readable CSV file \(line 71 has 5 fields, the first "
                                        r"rows have 4\)"):
        read_table(ragged)


@pytest.mark.slow
def test_training_on_a_file_with_its_index_gives_the_model_of_the_file_without(tmp_path):
    from lifelines.datasets import load_rossi

    rossi = load_rossi()
    rossi.to_csv(tmp_path / "plain.csv", index=False)
    rossi.to_csv(tmp_path / "indexed.csv")  # pandas' default: the index as a nameless first column
    flags = ["--time-col", "week", "--event-col", "arrest", "--epochs", "2", "--hidden", "8", "--seed", "3", "-q"]
    run_survmom("train", tmp_path / "plain.csv", *flags, "-o", tmp_path / "plain.pt", check=True)
    trained = run_survmom("train", tmp_path / "indexed.csv", *flags, "-o", tmp_path / "indexed.pt", check=True)
    assert "column 1 has no name in the header: read as row names" in trained.stderr
    import torch

    def tensors(name: str) -> dict:
        state = torch.load(tmp_path / name, weights_only=True)
        return dict(checkpoint_tensors({k: v for k, v in state.items() if k not in ("data", "checksum")}))

    plain, indexed = tensors("plain.pt"), tensors("indexed.pt")
    assert plain.keys() == indexed.keys() and all(torch.equal(plain[k], indexed[k]) for k in plain)
    one = run_survmom("predict", tmp_path / "plain.pt", tmp_path / "indexed.csv", check=True).stdout
    assert one == run_survmom("predict", tmp_path / "plain.pt", tmp_path / "plain.csv", check=True).stdout


def test_excels_sep_line_above_the_header_is_named_with_the_fix(tmp_path):
    """Excel writes (and reads) a first line "sep=;" that names the delimiter: it is not the header. The error
    said the rows were not separated by semicolons, which they are."""
    path = write(tmp_path, "a.csv", "sep=;\n" + EUROPEAN)
    with pytest.raises(DataError) as info:
        read_table(path)
    assert str(info.value) == (f"{path}: the first line 'sep=;' is Excel's note of the delimiter, not a header; "
                               "delete that line")


@pytest.mark.parametrize("title", ["Rossi recidivism export, 2024-01-01\n", "Rossi recidivism export\n\n"])
def test_a_title_above_the_header_is_named_with_the_line_of_the_header(tmp_path, title):
    """A title line (with a comma in it, or followed by a blank line) is read as the header: the missing-column
    error names the line that holds the column, the header under the title."""
    from lifelines.datasets import load_rossi

    path = tmp_path / "titled.csv"
    path.write_text(title + load_rossi().to_csv(index=False))
    line = title.count("\n") + 1
    result = run_survmom("train", path, "--time-col", "week", "--event-col", "arrest", "-o", tmp_path / "m.pt")
    assert result.returncode == 2 and not (tmp_path / "m.pt").exists()
    assert result.stderr.strip().endswith(f"line {line} holds 'week': is it the header, under a title? remove the "
                                          "line(s) above it"), result.stderr
