"""Every readable format, through the CLI: the same data as CSV and as each format train bit-identical models.

One small cohort (values exact in every format: quarters and integers, which SAS XPORT's IBM floats hold
exactly) is written as plain CSV and as each other format by a writer other than survmom (pandas, pyarrow,
pyreadstat, Python's compressors). Training with the same options and seed must give the same tensors in the
checkpoint, and ``predict`` must give the same risks; a semicolon CSV with decimal commas is detected and says
so in one line on stderr; an ambiguous delimiter is refused (exit 2, one line, nothing written).
"""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pyreadstat
import pytest
import torch

from cli_runner import run_survmom

pytestmark = pytest.mark.slow

N = 90
TRAIN = ("--epochs", "2", "--batch", "16", "--hidden", "8", "--bank-size", "32", "--seed", "3", "--quiet")


def _cohort() -> pd.DataFrame:
    rng = np.random.default_rng(11)
    df = pd.DataFrame({
        "id": np.arange(1, N + 1),
        "time": rng.integers(4, 4000, N) / 4.0,
        "event": rng.integers(0, 2, N).astype(float),
        "age": rng.integers(25, 95, N).astype(float),
        "bmi": rng.integers(120, 320, N) / 8.0,
        "centre": rng.choice(["north", "south", "west"], N).astype(object),
    })
    df.loc[df.index % 9 == 4, "age"] = np.nan
    return df


def _csv_text(df: pd.DataFrame, sep: str = ",", decimal: str = ".") -> str:
    return df.to_csv(index=False, sep=sep, decimal=decimal, float_format="%.17g" if decimal == "." else None)


def _compressed(opener, sep: str = ","):
    def write(df: pd.DataFrame, path: Path) -> None:
        with opener(path, "wt") as fh:
            fh.write(_csv_text(df, sep))

    return write


def _zstd(df: pd.DataFrame, path: Path) -> None:
    with pa.output_stream(str(path), compression="zstd") as out:
        out.write(_csv_text(df).encode())


WRITERS = {
    "data.tsv": lambda df, p: p.write_text(_csv_text(df, "\t")),
    "data.TAB": lambda df, p: p.write_text(_csv_text(df, "\t")),
    "data.csv.gz": _compressed(gzip.open),
    "data.tsv.gz": _compressed(gzip.open, "\t"),
    "data.csv.bz2": _compressed(bz2.open),
    "data.csv.zst": _zstd,
    "data.CSV.XZ": _compressed(lzma.open),
    "european.csv": lambda df, p: p.write_text(_csv_text(df, ";", ",")),
    "data.parquet": lambda df, p: pq.write_table(pa.Table.from_pandas(df, preserve_index=False), p),
    "data.feather": lambda df, p: feather.write_feather(pa.Table.from_pandas(df, preserve_index=False), p),
    "data.dta": lambda df, p: df.to_stata(p, write_index=False, version=118),
    "data.sav": lambda df, p: pyreadstat.write_sav(df, p),
    "data.xpt": lambda df, p: pyreadstat.write_xport(df, p, file_format_version=5),
    "data.jsonl": lambda df, p: df.to_json(p, orient="records", lines=True),
    "data.ndjson.gz": lambda df, p: df.to_json(p, orient="records", lines=True, compression="gzip"),
    "data.orc": lambda df, p: df.to_orc(p, index=False),
}


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor in a checkpoint, by its key path."""
    found: dict[str, torch.Tensor] = {}

    def walk(value, key: str) -> None:
        if isinstance(value, torch.Tensor):
            found[key] = value
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(v, f"{key}/{k}")
        elif isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                walk(v, f"{key}/{i}")

    walk(torch.load(path, weights_only=True), "")
    return found


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("reference")
    data = folder / "data.csv"
    data.write_text(_csv_text(_cohort()))
    model = folder / "model.pt"
    run_survmom("train", data, "--id-col", "id", *TRAIN, "-o", model, check=True)
    preds = folder / "preds.csv"
    run_survmom("predict", model, data, "-o", preds, "--quiet", check=True)
    return {"data": data, "model": model, "preds": preds}


@pytest.mark.parametrize("name", list(WRITERS))
def test_each_format_trains_the_model_the_csv_trains_and_predicts_the_same(name, reference, tmp_path):
    data = tmp_path / name
    WRITERS[name](_cohort(), data)
    model = tmp_path / "model.pt"
    trained = run_survmom("train", data, "--id-col", "id", *TRAIN, "-o", model, check=True)
    want = _tensors(reference["model"])
    got = _tensors(model)
    assert got.keys() == want.keys()
    for key in want:
        assert torch.equal(got[key], want[key]), key
    # Only the European export is read otherwise than by its suffix, and it says so in one line.
    detected = [line for line in trained.stderr.splitlines() if "read as" in line]
    assert detected == ([f"warning: {data}: read as semicolon-separated with decimal commas (detected from the "
                         "first lines; --delimiter overrides)"] if name == "european.csv" else [])
    # A model predicts on any format (here the reference model, trained on the CSV).
    preds = tmp_path / "preds.csv"
    run_survmom("predict", reference["model"], data, "-o", preds, "--quiet", check=True)
    got_preds, want_preds = pd.read_csv(preds), pd.read_csv(reference["preds"])
    assert got_preds["id"].astype(float).tolist() == want_preds["id"].astype(float).tolist()
    np.testing.assert_array_equal(got_preds["risk"], want_preds["risk"])


def test_a_parquet_file_written_with_its_id_as_the_pandas_index_trains_as_the_csv(reference, tmp_path):
    """``df.set_index("id").to_parquet()`` stores the id as a column the schema's pandas metadata calls the index:
    an id, not a feature. Left out by default (one line says so), it is the --id-col when named so, and a
    feature only when --features names it."""
    data = tmp_path / "indexed.parquet"
    _cohort().set_index("id").to_parquet(data)
    model = tmp_path / "model.pt"
    trained = run_survmom("train", data, *TRAIN, "-o", model, check=True)
    assert [line for line in trained.stderr.splitlines() if "pandas index" in line] == [
        f"warning: {data}: column 'id' is the pandas index the file was written with: left out of the "
        "features (name it in --features to use it, or as --id-col to copy an id into the predictions)"]
    want, got = _tensors(reference["model"]), _tensors(model)  # the reference names it --id-col
    assert got.keys() == want.keys() and all(torch.equal(got[key], want[key]) for key in want)
    named = run_survmom("train", data, "--id-col", "id", *TRAIN, "-o", tmp_path / "named.pt", check=True)
    assert "pandas index" not in named.stderr
    preds = tmp_path / "preds.csv"
    run_survmom("predict", tmp_path / "named.pt", data, "-o", preds, "--quiet", check=True)
    got_preds, want_preds = pd.read_csv(preds), pd.read_csv(reference["preds"])
    assert got_preds["id"].tolist() == want_preds["id"].tolist()
    np.testing.assert_array_equal(got_preds["risk"], want_preds["risk"])
    features = "id,age,bmi,centre"
    run_survmom("train", data, "--features", features, *TRAIN, "-o", tmp_path / "feature.pt", check=True)
    shown = json.loads(run_survmom("inspect", tmp_path / "feature.pt", "--json", check=True).stdout)
    assert sorted(shown["schema"]["input_columns"]) == ["age", "bmi", "centre", "id"]


def test_a_stata_file_written_with_pandas_default_index_trains_as_the_file_without_it(tmp_path):
    """``df.to_stata(path)`` writes the RangeIndex as a column ``index`` (0 ... n-1): left out of the default
    features with one line, as a Parquet file's pandas index; a column ``index`` of other values stays a feature."""
    frame = _cohort().drop(columns="id")
    plain, indexed = tmp_path / "plain.parquet", tmp_path / "indexed.dta"
    frame.to_parquet(plain, index=False)
    frame.to_stata(indexed)
    assert list(pd.read_stata(indexed).columns[:1]) == ["index"]
    trained = run_survmom("train", indexed, *TRAIN, "-o", tmp_path / "indexed.pt", check=True)
    assert f"warning: {indexed}: column 'index' is the pandas index the file was written with" in trained.stderr
    run_survmom("train", plain, *TRAIN, "-o", tmp_path / "plain.pt", check=True)
    want, got = _tensors(tmp_path / "plain.pt"), _tensors(tmp_path / "indexed.pt")
    assert got.keys() == want.keys() and all(torch.equal(got[key], want[key]) for key in want)
    shuffled = tmp_path / "shuffled.dta"  # not 0 ... n-1: a column that happens to be called index
    frame.assign(index=np.arange(len(frame))[::-1]).to_stata(shuffled, write_index=False)
    other = run_survmom("train", shuffled, *TRAIN, "-o", tmp_path / "other.pt", check=True)
    assert "pandas index" not in other.stderr
    shown = json.loads(run_survmom("inspect", tmp_path / "other.pt", "--json", check=True).stdout)
    assert "index" in shown["schema"]["input_columns"]


@pytest.mark.parametrize("suffix", [".tsv", ".feather"])
def test_predict_writes_each_output_format_by_suffix(suffix, reference, tmp_path):
    out = tmp_path / f"preds{suffix}"
    run_survmom("predict", reference["model"], reference["data"], "-o", out, "--quiet", check=True)
    if suffix == ".tsv":  # the CSV's text, tab-separated
        assert out.read_text() == reference["preds"].read_text().replace(",", "\t")
    else:  # binary formats hold the values exactly, as Parquet does
        truth = tmp_path / "preds.parquet"
        run_survmom("predict", reference["model"], reference["data"], "-o", truth, "--quiet", check=True)
        assert feather.read_table(out).equals(pq.read_table(truth))


def test_an_ambiguous_delimiter_is_refused_naming_the_option(reference, tmp_path):
    data = tmp_path / "ambiguous.csv"
    data.write_text("time,event;age,x\n" + "".join(f"{i},1;{i},2\n" for i in range(1, 30)))
    out = tmp_path / "model.pt"
    result = run_survmom("train", data, "--quiet", "-o", out)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "--delimiter" in result.stderr and "commas (3 fields)" in result.stderr
    assert "semicolons (2 fields)" in result.stderr
    assert not out.exists()
    preds = tmp_path / "preds.csv"
    result = run_survmom("predict", reference["model"], data, "-o", preds)
    assert result.returncode == 2 and "--delimiter" in result.stderr and not preds.exists()


def test_delimiter_option_reads_what_detection_refuses(tmp_path):
    data = tmp_path / "ambiguous.csv"
    data.write_text("time;event;x,y\n" + "".join(f"{i};{i % 2};{i % 7},{i % 3}\n" for i in range(1, 40)))
    out = tmp_path / "model.pt"
    run_survmom("train", data, "--delimiter", ";", "--epochs", "1", "--quiet", "-o", out, check=True)
    assert torch.load(out, weights_only=True)["config"]["delimiter"] == ";"
    # Resuming on the saved file reads it as training did; other files are read by the resume's own option.
    run_survmom("resume", out, "--epochs", "2", "--quiet", check=True)
    assert torch.load(out, weights_only=True)["progress"]["epoch"] == 2
    result = run_survmom("resume", out, "--epochs", "3", "--data", data, "--quiet")
    assert result.returncode == 2 and "--delimiter" in result.stderr
    run_survmom("resume", out, "--epochs", "3", "--data", data, "--delimiter", ";", "--quiet", check=True)


@pytest.mark.parametrize("name", ["european.csv", "data.dta"])
def test_evaluate_reads_each_format_as_the_csv(name, reference, tmp_path):
    data = tmp_path / name
    WRITERS[name](_cohort(), data)
    want = run_survmom("evaluate", reference["model"], reference["data"], "--json", check=True)
    got = run_survmom("evaluate", reference["model"], data, "--json", check=True)
    assert got.stdout.replace(str(data), "DATA") == want.stdout.replace(str(reference["data"]), "DATA")
    assert ("read as semicolon-separated with decimal commas" in got.stderr) == (name == "european.csv")
