"""Delimited text in other encodings than UTF-8: ``--encoding NAME`` (any Python codec, transcoded by pyarrow),
UTF-16/UTF-32 read by their byte-order mark, and the one-line refusal of a file that is not UTF-8 (or not text
in the named encoding) with its first bad byte, line, the text around it and the option that reads it."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from lifelines.datasets import load_rossi

from survmom import SurvivalModel
from survmom.data import iter_table_batches, read_table, text_encoding
from survmom.data.text_encoding import codec_name, first_bad_byte
from survmom.errors import ConfigError, DataError

from cli_runner import run_survmom

ROSSI = ["--time-col", "week", "--event-col", "arrest", "--epochs", "2", "--hidden", "8", "--seed", "3", "-q"]
CITIES = ["Genève", "Zürich", "Besançon", "Malmö", "Kraków – Nord"]  # cp1252 holds them all (the dash too)


def cohort() -> pd.DataFrame:
    """Rossi's recidivism data with a category column of accented labels."""
    rossi = load_rossi()
    rossi["city"] = [CITIES[i % len(CITIES)] for i in range(len(rossi))]
    return rossi


def one_error_line(result, *expected: str) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    for text in expected:
        assert text in lines[0], f"{text!r} not in {lines[0]!r}"
    return lines[0]


def predictions(result) -> pd.DataFrame:
    assert result.returncode == 0, result.stderr
    assert "not seen in training" not in result.stderr, result.stderr
    return pd.read_csv(io.StringIO(result.stdout))


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """The cohort as UTF-8, cp1252, gzip-compressed cp1252, UTF-16 (Excel's "Unicode Text": tabs, a mark) and
    UTF-32 files; a model trained on the UTF-8 file and one on the cp1252 file."""
    folder = tmp_path_factory.mktemp("encodings")
    frame = cohort()
    paths = {"utf8": folder / "utf8.csv", "cp1252": folder / "excel.csv", "gz": folder / "excel.csv.gz",
             "utf16": folder / "unicode.txt", "utf32": folder / "wide.csv"}
    frame.to_csv(paths["utf8"], index=False)
    frame.to_csv(paths["cp1252"], index=False, encoding="cp1252")
    paths["gz"].write_bytes(gzip.compress(paths["cp1252"].read_bytes()))
    frame.to_csv(paths["utf16"], index=False, sep="\t", encoding="utf-16")
    frame.to_csv(paths["utf32"], index=False, encoding="utf-32")
    paths["model_utf8"], paths["model_cp1252"] = folder / "m8.pt", folder / "mcp.pt"
    run_survmom("train", paths["utf8"], *ROSSI, "-o", paths["model_utf8"], check=True)
    run_survmom("train", paths["cp1252"], *ROSSI, "--encoding", "cp1252", "-o", paths["model_cp1252"], check=True)
    return paths


# --------------------------------------------------------------------------------------------- reading


@pytest.mark.parametrize(("name", "encoding"), [("cp1252", "cp1252"), ("gz", "cp1252"), ("cp1252", "windows-1252"),
                                                ("utf16", None), ("utf32", None), ("utf16", "utf-16")])
def test_a_file_in_another_encoding_reads_as_its_utf8_copy(files, name, encoding):
    expected = read_table(files["utf8"])
    pd.testing.assert_frame_equal(read_table(files[name], encoding=encoding), expected)
    assert sorted(expected["city"].cat.categories) == sorted(CITIES)


def test_streamed_batches_of_a_cp1252_file_are_the_whole_file(files):
    """The streaming reader (predict's) transcodes block by block: 7-row batches give the same rows."""
    types = {"city": "category", "age": "numeric"}
    whole = read_table(files["utf8"], column_types=types)
    parts = list(iter_table_batches(files["gz"], None, 7, column_types=types, encoding="cp1252"))
    assert len(parts) == -(-len(whole) // 7)
    streamed = pd.concat(parts)
    assert streamed["city"].astype(str).tolist() == whole["city"].astype(str).tolist()
    np.testing.assert_array_equal(streamed["age"].to_numpy(), whole["age"].to_numpy())


def test_latin1_reads_every_byte_as_a_character(tmp_path):
    path = tmp_path / "l.csv"
    path.write_bytes("time,event,site\n1,1,Troms\xf8\n2,0,\xc5lesund\n".encode("latin-1"))
    assert read_table(path, encoding="latin-1")["site"].astype(str).tolist() == ["Tromsø", "Ålesund"]


def test_a_semicolon_file_in_cp1252_is_detected_with_the_encoding(tmp_path):
    """Delimiter and decimal-comma detection decode the first lines with the same encoding."""
    path = tmp_path / "eu.csv"
    path.write_bytes("zeit;ereignis;stadt\n1,5;1;Köln\n2,25;0;Düsseldorf\n".encode("cp1252"))
    frame = read_table(path, encoding="cp1252")
    assert frame["zeit"].tolist() == [1.5, 2.25] and frame["stadt"].astype(str).tolist() == ["Köln", "Düsseldorf"]


def test_unknown_and_non_text_codec_names_are_config_errors():
    assert codec_name("latin-1") == "iso8859-1" and codec_name("UTF8") == "utf-8"
    for name in ("klingon", "base64", "rot13", ""):
        with pytest.raises(ConfigError, match=r"--encoding .* is not a text encoding"):
            codec_name(name)


def test_first_bad_byte_counts_lines_across_chunks(monkeypatch):
    """The scan reads 1 MiB at a time (here 5 bytes): the line, the offset and the text around the byte span
    chunk boundaries, and a character cut by a boundary is not a bad byte."""
    monkeypatch.setattr(text_encoding, "_CHUNK", 5)
    data = "a,b\nGenève,1\nZürich,2\n".encode() + b"Ma\xefmo,3\n"
    assert first_bad_byte(io.BytesIO(data), "utf-8") == (0xEF, 4, "'Ma\\xefmo,3'", data.index(b"\xef"))
    assert first_bad_byte(io.BytesIO("a\nGenève\n".encode()), "utf-8") is None
    assert first_bad_byte(io.BytesIO(b"x\n1\n\x81\n"), "cp1252") == (0x81, 3, "'\\x81'", None)


# --------------------------------------------------------------------------------------------- end to end


def test_train_on_cp1252_gives_the_utf8_model_and_predictions(files):
    """The same rows in cp1252 (--encoding) and in UTF-8: the same model, so the same predictions, and the
    categories are the same labels (the cp1252 model predicts the UTF-8 file without unseen categories)."""
    expected = predictions(run_survmom("predict", files["model_utf8"], files["utf8"], "--times", "20,40"))
    got = predictions(run_survmom("predict", files["model_cp1252"], files["cp1252"], "--encoding", "cp1252",
                                  "--times", "20,40"))
    pd.testing.assert_frame_equal(got, expected)
    pd.testing.assert_frame_equal(predictions(run_survmom("predict", files["model_cp1252"], files["utf8"],
                                                          "--times", "20,40")), expected)


@pytest.mark.parametrize(("name", "options"), [("gz", ["--encoding", "cp1252"]), ("utf16", []), ("utf32", []),
                                               ("cp1252", ["--encoding", "latin-1"])])
def test_predict_on_other_encodings_equals_predict_on_utf8(files, name, options):
    """latin-1 reads cp1252's accented letters alike; only its dash (a C1 control in latin-1) would differ, and
    the dash is in one label of five: a new category, so checked apart."""
    expected = predictions(run_survmom("predict", files["model_utf8"], files["utf8"]))
    result = run_survmom("predict", files["model_utf8"], files[name], *options)
    if "latin-1" in options:
        assert "'city'" in result.stderr and "not seen in training" in result.stderr
        got = pd.read_csv(io.StringIO(result.stdout))
        keep = cohort()["city"] != "Kraków – Nord"
        pd.testing.assert_frame_equal(got[keep.to_numpy()], expected[keep.to_numpy()])
    else:
        pd.testing.assert_frame_equal(predictions(result), expected)


def test_evaluate_on_cp1252_equals_evaluate_on_utf8(files):
    def metrics(*args) -> dict:
        result = run_survmom("evaluate", files["model_utf8"], *args, "--json")
        assert result.returncode == 0, result.stderr
        return {k: v for k, v in json.loads(result.stdout).items() if k != "data"}

    assert metrics(files["cp1252"], "--encoding", "cp1252") == metrics(files["utf8"])
    assert metrics(files["utf16"]) == metrics(files["utf8"])


def test_resume_reads_the_saved_file_with_the_saved_encoding(files, tmp_path):
    out = tmp_path / "more.pt"
    result = run_survmom("resume", files["model_cp1252"], "--epochs", "3", "-q", "-o", out)
    assert result.returncode == 0, result.stderr
    inspected = json.loads(run_survmom("inspect", out, "--json", check=True).stdout)
    assert inspected["config"]["encoding"] == "cp1252"


def test_the_python_api_takes_encoding_as_a_train_option(files):
    model = SurvivalModel(encoding="cp1252", time_col="week", event_col="arrest", epochs=1, hidden=[8], seed=3,
                          verbose=False).fit(files["cp1252"])
    assert model.predict(files["utf8"]).shape[0] == len(cohort())
    # a later file in its own encoding: the keyword, as predict's --encoding
    pd.testing.assert_frame_equal(model.predict(files["cp1252"], encoding="cp1252"), model.predict(files["utf8"]))
    assert model.score(files["cp1252"], encoding="cp1252") == model.score(files["utf8"])


# --------------------------------------------------------------------------------------------- refusals


def test_a_cp1252_file_without_encoding_is_refused_with_the_option_that_reads_it(files, tmp_path):
    out = tmp_path / "m.pt"
    line = one_error_line(run_survmom("train", files["cp1252"], *ROSSI, "-o", out), "excel.csv", "column 'city'",
                          "not valid UTF-8 text", "first bad byte 0xe8", "on line 2", "Gen\\xe8ve",
                          "--encoding cp1252", "--encoding latin-1", "iconv")
    assert not out.exists() and "byte offset" in line
    pred = tmp_path / "p.csv"
    one_error_line(run_survmom("predict", files["model_utf8"], files["cp1252"], "-o", pred), "--encoding cp1252")
    assert not pred.exists()


@pytest.mark.parametrize("command", ["train", "predict", "evaluate"])
def test_an_unknown_encoding_is_one_line_naming_it(files, tmp_path, command):
    args = [files["utf8"], *ROSSI, "-o", tmp_path / "m.pt"] if command == "train" else [files["model_utf8"],
                                                                                         files["utf8"]]
    one_error_line(run_survmom(command, *args, "--encoding", "klingon"), "--encoding 'klingon'",
                   "not a text encoding")
    assert not (tmp_path / "m.pt").exists()


def test_bytes_not_in_the_named_encoding_are_one_line_with_file_encoding_and_line(tmp_path):
    """0x81 is undefined in cp1252 (pyarrow's transcoding raises; the scan says where)."""
    path = tmp_path / "bad.csv"
    path.write_bytes(b"week,arrest,city\n" + b"".join(b"%d,1,Gen\xe8ve\n" % (i + 1) for i in range(40))
                     + b"50,0,Gen\x81ve\n")
    out = tmp_path / "m.pt"
    one_error_line(run_survmom("train", path, *ROSSI, "--encoding", "cp1252", "-o", out), "bad.csv",
                   "not valid cp1252 text", "0x81", "on line 42", "Gen\\x81ve", "check --encoding")
    assert not out.exists()
    with pytest.raises(DataError, match=r"not valid cp1252 text .*on line 42"):
        list(iter_table_batches(path, None, 8, encoding="cp1252"))


def test_utf16_named_for_a_file_without_its_mark_is_one_line(files):
    with pytest.raises(DataError, match=r"utf8\.csv: is not valid utf-16 text \(UTF-16 stream does not start"):
        read_table(files["utf8"], encoding="utf-16")


def test_utf8_named_explicitly_gets_the_utf8_advice(files):
    with pytest.raises(DataError, match=r"not valid UTF-8 text .*pass --encoding cp1252"):
        read_table(files["cp1252"], encoding="utf8")
