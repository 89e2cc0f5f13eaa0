"""Whitespace-separated text (.txt, .dat, also compressed): fields separated by runs of spaces and tabs, as R's
``write.table()`` writes them (quoted strings, row names under a header one field shorter) and as textbook
survival data files are laid out; detected when no single delimiter fits, or forced by ``--delimiter space``."""

from __future__ import annotations

import bz2
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from lifelines.datasets import load_rossi

from survmom.data import iter_table_batches, read_table, table_columns, text_notice, whitespace
from survmom.data.whitespace import split_fields, split_widths, tabbed
from survmom.errors import ConfigError, DataError

from cli_runner import run_survmom

ROSSI = ["--time-col", "week", "--event-col", "arrest", "--epochs", "2", "--hidden", "8", "--seed", "5", "-q"]
CITIES = ["New York", "Le Mans", "Genève", "Oslo"]


def cohort() -> pd.DataFrame:
    """Rossi's data with a text column whose labels hold spaces, and a few missing ages."""
    rossi = load_rossi()
    rossi["city"] = [CITIES[i % len(CITIES)] for i in range(len(rossi))]
    rossi["age"] = rossi["age"].astype(float).where(np.arange(len(rossi)) % 50 != 7)
    return rossi


def write_table(frame: pd.DataFrame, row_names: bool = True) -> str:
    """``frame`` as R's ``write.table(frame)`` writes it: names and strings in double quotes, one space between
    fields, NA for missing, and (by default) quoted row names "1", "2", ... under a header without them."""
    def cell(value) -> str:
        if isinstance(value, str):
            return '"' + value.replace('"', '\\"') + '"'
        return "NA" if pd.isna(value) else repr(value) if isinstance(value, float) else str(value)

    lines = [" ".join(f'"{name}"' for name in frame.columns)]
    for i, row in enumerate(frame.itertuples(index=False), start=1):
        lines.append(" ".join(([f'"{i}"'] if row_names else []) + [cell(v) for v in row]))
    return "\n".join(lines) + "\n"


def textbook(frame: pd.DataFrame) -> str:
    """``frame`` as a classic .dat file: right-aligned columns padded with spaces (a tab here and there), no
    quotes, "." for a missing number; text without spaces."""
    shown = frame.astype(object).where(frame.notna(), ".").astype(str)
    widths = {c: max(len(c), shown[c].str.len().max()) + 2 for c in shown.columns}
    lines = ["".join(c.rjust(widths[c]) for c in shown.columns)]
    lines += ["".join(v.rjust(widths[c]) for c, v in zip(shown.columns, row, strict=True)).replace("    ", "\t", 1)
              for row in shown.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def predictions(result) -> pd.DataFrame:
    assert result.returncode == 0, result.stderr
    return pd.read_csv(io.StringIO(result.stdout))


def one_error_line(result, *expected: str) -> str:
    """Exit 2 and one ``error:`` line holding every ``expected`` text (after the how-it-was-read notice, if any)."""
    lines = [line for line in result.stderr.strip().splitlines() if "read as whitespace-separated" not in line]
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.stderr, result.stderr
    for text in expected:
        assert text in lines[0], f"{text!r} not in {lines[0]!r}"
    return lines[0]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """The cohort as CSV, as R's write.table .txt (and bzip2-compressed), as a textbook .dat; a model trained on
    the CSV and one on the .txt."""
    folder = tmp_path_factory.mktemp("whitespace")
    frame = cohort()
    paths = {"csv": folder / "cohort.csv", "txt": folder / "cohort.txt", "bz2": folder / "cohort.txt.bz2",
             "dat": folder / "cohort.dat"}
    frame.to_csv(paths["csv"], index=False)
    paths["txt"].write_text(write_table(frame))
    paths["bz2"].write_bytes(bz2.compress(write_table(frame).encode()))
    paths["dat"].write_text(textbook(frame.assign(city=frame["city"].str.replace(" ", "_"))))
    paths["model_csv"], paths["model_txt"] = folder / "csv.pt", folder / "txt.pt"
    run_survmom("train", paths["csv"], *ROSSI, "-o", paths["model_csv"], check=True)
    result = run_survmom("train", paths["txt"], *ROSSI, "-o", paths["model_txt"], check=True)
    paths["train_stderr"] = result.stderr  # type: ignore[assignment]
    return paths


# --------------------------------------------------------------------------------------------- splitting


def test_fields_split_on_runs_of_blanks_and_keep_quoted_text_whole():
    assert split_fields('  "1"  5.5\t1   "New York"  NA ') == ["1", "5.5", "1", "New York", "NA"]
    assert split_fields(r'"say \"hi\"" "a ""b"""') == ['say "hi"', 'a "b"']
    assert split_fields('""  x') == ["", "x"]


def test_widths_say_whether_rows_carry_row_names():
    assert split_widths(['"a" "b"', '"1" 2 3', '"2" 4 5']) == (2, True)
    assert split_widths(["a b", "2 3", "  4\t5"]) == (2, False)
    assert split_widths(["a b", "2 3 4", "5 6"]) is None  # ragged: not whitespace-separated
    assert split_widths(["x", "John Smith"]) is None  # one column: no delimiter at all


def test_tabbed_rewrites_line_for_line():
    assert tabbed(' a  b\r\n1\t 2 \n\n', False) == "a\tb\n1\t2\n\n"
    assert tabbed('"1" 2 "x y"\n"2" 3 "z"\n', True) == '2\t"x y"\n3\t"z"\n'


@pytest.mark.parametrize("end", ["\r\n", "\r"])
def test_lines_may_end_in_crlf_or_cr(tmp_path, monkeypatch, end):
    """Windows and old Mac line ends, a \\r\\n cut by a chunk boundary too (3-byte chunks here)."""
    monkeypatch.setattr(whitespace, "_CHUNK", 3)
    path = tmp_path / "w.dat"
    path.write_bytes(end.join(["time  status", " 5  1", "", " 6  0", "7 1 9", ""]).encode())
    with pytest.raises(DataError, match="line 5 has 3 fields"):
        read_table(path, delimiter="space")
    path.write_bytes(end.join(["time  status", " 5  1", "", " 6  0", ""]).encode())
    assert read_table(path)["time"].tolist() == [5, 6]


def test_the_stream_splits_lines_and_characters_cut_by_its_chunks(files, monkeypatch):
    """The rewrite reads 1 MiB at a time (here 7 bytes, cutting lines, quoted fields and "è" in two): the rows
    are those of the CSV, whole file and 16-row batches alike."""
    monkeypatch.setattr(whitespace, "_CHUNK", 7)
    expected = read_table(files["csv"])
    pd.testing.assert_frame_equal(read_table(files["txt"]), expected)
    types = {"city": "category", "age": "numeric"}
    streamed = pd.concat(iter_table_batches(files["txt"], None, 16, column_types=types))
    assert streamed["city"].astype(str).tolist() == expected["city"].astype(str).tolist()
    np.testing.assert_array_equal(streamed["age"].to_numpy(), expected["age"].to_numpy())


# --------------------------------------------------------------------------------------------- reading


@pytest.mark.parametrize("name", ["txt", "bz2", "dat"])
def test_a_whitespace_file_reads_as_its_csv(files, name):
    expected = read_table(files["csv"])
    if name == "dat":
        expected["city"] = expected["city"].astype(str).str.replace(" ", "_").astype("category")
    got = read_table(files[name])
    pd.testing.assert_frame_equal(got, expected, check_categorical=False)
    assert got["age"].isna().sum() == cohort()["age"].isna().sum() > 0


def test_the_notice_says_whitespace_and_row_names(files):
    assert text_notice(files["txt"]) == (
        f"{files['txt']}: read as whitespace-separated, the first field of each data row (one more than the header "
        "has) taken as row names and dropped (R's write.table) (detected from the first lines; --delimiter overrides)")
    assert text_notice(files["dat"]) == (f"{files['dat']}: read as whitespace-separated (detected from the first "
                                         "lines; --delimiter overrides)")


def test_row_names_and_quoted_names_with_spaces_are_handled(tmp_path):
    path = tmp_path / "r.txt"
    path.write_text('"age at entry" "time" "status"\n"a" 40 5 1\n"b" NA 6 0\n')
    assert table_columns(path) == ["age at entry", "time", "status"]
    frame = read_table(path)
    assert frame["time"].tolist() == [5, 6] and frame["age at entry"].isna().tolist() == [False, True]


def test_delimiter_space_forces_whitespace_on_a_csv_named_file(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("time status age\n5 1 61\n7 0 62\n")
    for option in ("space", "whitespace", "SPACE", " "):
        assert read_table(path, delimiter=option)["age"].tolist() == [61, 62]
    assert read_table(path)["age"].tolist() == [61, 62]  # detected as well: nothing else splits it


def test_a_single_delimiter_that_fits_still_wins(tmp_path):
    """A tab file with spaces inside values stays tab-separated; a comma file with spaces after commas, comma."""
    tabs, commas = tmp_path / "t.txt", tmp_path / "c.dat"
    tabs.write_text("time\tcity\n5\tNew York\n6\tLe Mans\n")
    commas.write_text("time, city\n5, New York\n6, Le Mans\n")
    assert read_table(tabs)["city"].astype(str).tolist() == ["New York", "Le Mans"]
    assert read_table(commas)["city"].astype(str).str.strip().tolist() == ["New York", "Le Mans"]


def test_decimal_commas_are_detected_in_whitespace_files(tmp_path):
    path = tmp_path / "eu.dat"
    path.write_text("zeit ereignis alter\n1,5 1 61,5\n2,25 0 62\n")
    assert read_table(path)["zeit"].tolist() == [1.5, 2.25]
    assert "whitespace-separated with decimal commas" in text_notice(path)


def test_a_cp1252_whitespace_file_reads_with_encoding(tmp_path):
    path = tmp_path / "w.txt"
    path.write_bytes('"time" "status" "city"\n"1" 5 1 "Genève"\n"2" 6 0 "Zürich"\n'.encode("cp1252"))
    assert read_table(path, encoding="cp1252")["city"].astype(str).tolist() == ["Genève", "Zürich"]


# --------------------------------------------------------------------------------------------- end to end


def test_train_on_write_table_text_gives_the_csv_model(files):
    """The same rows as R's write.table .txt and as CSV: the same model (same seed), so the same predictions,
    and predictions from a .txt/.dat file equal those from the CSV."""
    assert "whitespace-separated" in files["train_stderr"] and "row names" in files["train_stderr"]
    expected = predictions(run_survmom("predict", files["model_csv"], files["csv"], "--times", "20,40"))
    got = predictions(run_survmom("predict", files["model_txt"], files["txt"], "--times", "20,40"))
    pd.testing.assert_frame_equal(got, expected)
    pd.testing.assert_frame_equal(
        predictions(run_survmom("predict", files["model_csv"], files["bz2"], "--times", "20,40")), expected)


def test_evaluate_on_whitespace_files_equals_evaluate_on_csv(files):
    def metrics(path: Path) -> dict:
        result = run_survmom("evaluate", files["model_csv"], path, "--json")
        assert result.returncode == 0, result.stderr
        return {k: v for k, v in json.loads(result.stdout).items() if k != "data"}

    assert metrics(files["txt"]) == metrics(files["csv"])


def test_a_textbook_dat_file_trains_end_to_end(files, tmp_path):
    out = tmp_path / "dat.pt"
    result = run_survmom("train", files["dat"], *ROSSI, "-o", out)
    assert result.returncode == 0 and "read as whitespace-separated" in result.stderr, result.stderr
    rows = predictions(run_survmom("predict", out, files["dat"]))
    assert len(rows) == len(cohort()) and rows["risk"].notna().all()


# --------------------------------------------------------------------------------------------- refusals


def test_a_row_with_an_extra_field_is_one_line_naming_the_line(files, tmp_path):
    path = tmp_path / "ragged.txt"
    lines = files["dat"].read_text().splitlines()
    lines[120] += " 99"
    path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "m.pt"
    one_error_line(run_survmom("train", path, *ROSSI, "--delimiter", "space", "-o", out), "ragged.txt",
                   "line 121 has 11 fields, the header has 10")
    assert not out.exists()


def test_an_empty_cell_of_a_fixed_width_layout_says_to_write_na(tmp_path):
    rossi = load_rossi().head(120)
    cells = [f"{r.week:6d}{r.arrest:7d}{r.fin:5d}{r.age:5d}{'' if i == 80 else str(r.prio):>6s}"
             for i, r in rossi.iterrows()]
    lines = ["  week arrest  fin  age  prio", *cells]
    path = tmp_path / "fixed.dat"
    path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "m.pt"
    one_error_line(run_survmom("train", path, "--time-col", "week", "--event-col", "arrest", "-o", out), "fixed.dat",
                   "not a readable whitespace-separated file", "line 82 has 4 fields, the header has 5",
                   "an empty cell cannot be seen: write NA (or .) in it")
    assert not out.exists()
    path.write_text("\n".join([*lines[:81], lines[81] + "    NA", *lines[82:]]) + "\n")  # the cell written: read
    assert read_table(path)["prio"].isna().sum() == 1


def test_a_word_in_a_numeric_column_is_named_with_its_row(files, tmp_path):
    path = tmp_path / "word.txt"
    path.write_text(files["txt"].read_text().replace('"5" 52 0 0 19.0', '"5" 52 0 0 nineteen', 1))
    one_error_line(run_survmom("predict", files["model_csv"], path), "word.txt", "column 'age'", "'nineteen'")


def test_bytes_that_are_not_utf8_are_one_line_with_the_line(tmp_path):
    path = tmp_path / "latin.txt"
    path.write_bytes(b"week arrest city\n5 1 Oslo\n6 0 Gen\xe8ve\n")
    one_error_line(run_survmom("train", path, *ROSSI, "-o", tmp_path / "m.pt"), "latin.txt", "not valid UTF-8",
                   "on line 3", "Gen\\xe8ve", "--encoding cp1252")
    assert not (tmp_path / "m.pt").exists()


def test_a_delimiter_of_several_characters_is_refused(tmp_path):
    path = tmp_path / "d.txt"
    path.write_text("a b\n1 2\n")
    with pytest.raises(ConfigError, match="'tab' or 'space'"):
        read_table(path, delimiter="  ")


def test_a_bad_byte_far_down_is_found_by_the_streamed_rewrite(tmp_path, monkeypatch):
    """Past the header's chunk the rewrite raises inside pyarrow's reader; the error comes out whole."""
    monkeypatch.setattr(whitespace, "_CHUNK", 64)
    path = tmp_path / "late.txt"
    path.write_bytes(b"time status city\n" + b"".join(b"%d 1 Oslo\n" % i for i in range(1, 200)) + b"5 0 Gen\xe8ve\n")
    for read in (lambda: read_table(path), lambda: list(iter_table_batches(path, None, 10))):
        with pytest.raises(DataError, match=r"late\.txt: is not valid UTF-8 text .*on line 201: '5 0 Gen\\xe8ve'"):
            read()
