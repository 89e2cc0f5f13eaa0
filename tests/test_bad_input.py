"""Bad input fails loudly and cleanly: one line on stderr, exit code 2, no traceback, nothing written.

Every case is one row of :data:`CASES` (train, predict, resume, evaluate, inspect): the files it puts in a
fresh folder, the command line, and substrings the single stderr line must contain (the file, the column,
offending values or row numbers). Each case also checks that the folder is byte-for-byte unchanged
afterwards: no checkpoint or prediction file is created, an existing one keeps its bytes, and no temporary
file is left behind.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from cli_runner import run_survmom

ROOT = Path(__file__).resolve().parents[1]
SENTINEL = b"an earlier file that must keep its bytes\n"


survmom = run_survmom  # finished process, stdout and stderr captured; exit code not checked


def tiny_frame(n: int = 40, seed: int = 0) -> pd.DataFrame:
    """A small cohort: id, two numeric and one text feature, a constant feature, time (days) and event."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "id": [f"P{i:03d}" for i in range(n)],
        "age": rng.integers(30, 90, n),
        "sex": rng.choice(["F", "M"], n),
        "bmi": np.round(rng.normal(27, 4, n), 1),
        "centre": ["A"] * n,
        "time": rng.integers(1, 1000, n),
        "event": np.tile([1, 0], n // 2),
    })


def csv_bytes(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def with_values(column: str, values: dict[int, object]) -> bytes:
    """The tiny cohort as CSV with ``values`` ({0-based row: value}) written into ``column``."""
    frame = tiny_frame().astype({column: object})
    for row, value in values.items():
        frame.loc[row, column] = value
    return csv_bytes(frame)


def overwrite(data: bytes, start: int, stop: int, byte: int = 0xFF) -> bytes:
    return data[:start] + bytes([byte]) * (stop - start) + data[stop:]


def checkpoint_with(model: Path, **changes: object) -> bytes:
    """A real checkpoint with top-level keys replaced, written by torch.save."""
    state = torch.load(model, weights_only=True)
    state.update(changes)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


# A file's content: bytes, or a function of the trained checkpoint's path returning bytes.
Content = bytes | Callable[[Path], bytes]


@dataclass
class Case:
    """One malformed input: files to create, the command (``{dir}`` = the case folder), expected stderr."""

    name: str
    args: list[str]
    expect: list[str]
    files: dict[str, Content] = field(default_factory=dict)


TRAIN = ["--epochs", "1", "--hidden", "8", "--id-col", "id", "--quiet"]
GOOD = csv_bytes(tiny_frame())


def _cases() -> list[Case]:
    frame = tiny_frame()
    header = b"id,age,sex,bmi,centre,time,event\n"
    latin1 = GOOD.replace(b",F,", b",F\xe9,", 1)
    return [
        # --- train: the data file -----------------------------------------------------------------------
        Case("empty file", ["train", "{dir}/d.csv", "--out", "{dir}/m.pt", *TRAIN],
             ["d.csv", "empty"], {"d.csv": b""}),
        Case("header only", ["train", "{dir}/d.csv", "--out", "{dir}/m.pt", *TRAIN],
             ["d.csv", "no data rows"], {"d.csv": header}),
        Case("unknown extension", ["train", "{dir}/d.xml", "--out", "{dir}/m.pt", *TRAIN],
             ["d.xml", "unsupported file type '.xml'", ".csv", ".parquet", ".jsonl", ".orc"], {"d.xml": GOOD}),
        Case("csv that is parquet", ["train", "{dir}/d.csv", "--out", "{dir}/m.pt", *TRAIN],
             ["d.csv", "not a CSV text file", "Parquet"], {"d.csv": parquet_bytes(frame)}),
        Case("truncated parquet", ["train", "{dir}/d.parquet", "--out", "{dir}/m.pt", *TRAIN],
             ["d.parquet", "not a readable Parquet file"],
             {"d.parquet": parquet_bytes(frame)[: len(parquet_bytes(frame)) // 2]}),
        Case("corrupted parquet pages", ["train", "{dir}/d.parquet", "--out", "{dir}/m.pt", *TRAIN],
             ["d.parquet", "corrupted Parquet file"], {"d.parquet": overwrite(parquet_bytes(frame), 4, 400)}),
        Case("missing time column", ["train", "{dir}/d.csv", "--out", "{dir}/m.pt", *TRAIN],
             ["d.csv", "time column 'time' not found", "'event'"], {"d.csv": csv_bytes(frame.drop(columns="time"))}),
        Case("missing event column", ["train", "{dir}/d.csv", "--out", "{dir}/m.pt", *TRAIN],
             ["d.csv", "event column 'event' not found", "'status'"],
             {"d.csv": csv_bytes(frame.rename(columns={"event": "status"}))}),
        Case("time missing", ["train", "{dir}/d.csv", "--out", "{dir}/m.pt", *TRAIN],
             ["d.csv", "column 'time'", "2 missing values", "rows 3, 8"],
             {"d.csv": with_values("time", {2: "", 7: "NA"})}),
        Case("time negative", ["train", "{dir}/d.csv", "--out", "{dir}/m.pt", *TRAIN],
             ["d.csv", "column 'time'", "negative value", "row 2: -5.0"], {"d.csv": with_values("time", {1: -5})}),
        Case("time zero with weibull", ["train", "{dir}/d.csv", "--out", "{dir}/m.pt", "--loss", "weibull", *TRAIN],
             ["d.csv", "column 'time'", "<= 0", "row 4: 0.0", "time > 0"], {"d.csv": with_values("time", {3: 0})}),
        Case("time infinite", ["train", "{dir}/d.csv", "--out", "{dir}/m.pt", *TRAIN],
             ["d.csv", "column 'time'", "infinite value", "row 5: inf"], {"d.csv": with_values("time", {4: "inf"})}),
        Case("time text", ["train", "{dir}/d.csv", "--out", "{dir}/m.pt", *TRAIN],
             ["d.csv", "column 'time'", "non-numeric value", "row 6", "'soon'"],
             {"d.csv": with_values("time", {5: "soon"})}),
        Case("event spelling", ["train", "{dir}/d.csv", "--out", "{dir}/m.pt", *TRAIN],
             ["d.csv", "column 'event'", "2 invalid event values", "rows 1, 9", "'maybe'", "'2'", "1/0"],
             {"d.csv": with_values("event", {0: "maybe", 8: 2})}),
        Case("every row censored (cox)", ["train", "{dir}/d.csv", "--out", "{dir}/m.pt", *TRAIN],
             ["d.csv", "every training row is censored", "cox model cannot learn"],
             {"d.csv": csv_bytes(frame.assign(event=0))}),
        Case("single row", ["train", "{dir}/d.csv", "--out", "{dir}/m.pt", *TRAIN],
             ["d.csv", "1 data row", "at least 2"], {"d.csv": csv_bytes(frame.head(1))}),
        Case("feature entirely missing", ["train", "{dir}/d.csv", "--out", "{dir}/m.pt", *TRAIN],
             ["d.csv", "feature column 'bmi'", "missing in all", "--exclude"],
             {"d.csv": csv_bytes(frame.assign(bmi=np.nan))}),
        Case("duplicate column names", ["train", "{dir}/d.csv", "--out", "{dir}/m.pt", *TRAIN],
             ["d.csv", "duplicate column names", "'age' (columns 2, 3)"],
             {"d.csv": csv_bytes(frame.rename(columns={"sex": "age"}))}),
        Case("not utf-8", ["train", "{dir}/d.csv", "--out", "{dir}/m.pt", *TRAIN],
             ["d.csv", "column 'sex'", "not valid UTF-8", "0xe9", "iconv"], {"d.csv": latin1}),
        # --- train: options -----------------------------------------------------------------------------
        Case("--features names a missing column", ["train", "{dir}/d.csv", "--out", "{dir}/m.pt", "--features",
                                                   "age,weight", *TRAIN],
             ["d.csv", "--features names 1 column not in the file: 'weight'", "'bmi'"], {"d.csv": GOOD}),
        Case("--batch 0", ["train", "{dir}/d.csv", "--out", "{dir}/m.pt", "--batch", "0", *TRAIN],
             ["--batch must be at least 1, got 0"], {"d.csv": GOOD}),
        Case("negative --lr", ["train", "{dir}/d.csv", "--out", "{dir}/m.pt", "--lr", "-0.01", *TRAIN],
             ["--lr must be a positive number, got -0.01"], {"d.csv": GOOD}),
        Case("--rate above 1", ["train", "{dir}/d.csv", "--out", "{dir}/m.pt", "--rate", "1.5", *TRAIN],
             ["--rate must be in [0, 1], got 1.5"], {"d.csv": GOOD}),
        Case("negative --start-margin", ["train", "{dir}/d.csv", "--out", "{dir}/m.pt", "--start-margin", "-1",
                                         *TRAIN],
             ["--start-margin must be a finite number >= 0 (standard errors), got -1.0"], {"d.csv": GOOD}),
        Case("train --out in a missing folder", ["train", "{dir}/d.csv", "--out", "{dir}/nowhere/m.pt", *TRAIN],
             ["nowhere", "does not exist"], {"d.csv": GOOD}),
        Case("train --features empty", ["train", "{dir}/d.csv", "--out", "{dir}/m.pt", *TRAIN, "--features", ""],
             ["d.csv: no feature columns left: --features names no column (columns: 'id', ",
              "time 'time', event 'event', id 'id')"], {"d.csv": GOOD}),
        Case("train --out is the data file", ["train", "{dir}/d.csv", "--out", "{dir}/d.csv", *TRAIN],
             ["d.csv", "is the input file", "refusing to overwrite"], {"d.csv": GOOD}),
        Case("train over an existing checkpoint, bad data", ["train", "{dir}/d.csv", "--out", "{dir}/m.pt", *TRAIN],
             ["d.csv", "column 'time'", "negative value"],
             {"d.csv": with_values("time", {0: -1}), "m.pt": lambda model: model.read_bytes()}),
        # --- predict ------------------------------------------------------------------------------------
        Case("predict: feature columns missing", ["predict", "{dir}/m.pt", "{dir}/new.csv", "-o", "{dir}/p.csv"],
             ["new.csv", "missing 2 columns the model was trained on", "'bmi'", "'sex'"],
             {"new.csv": csv_bytes(frame.drop(columns=["bmi", "sex"])), "p.csv": SENTINEL}),
        Case("predict: text where numbers were", ["predict", "{dir}/m.pt", "{dir}/new.csv", "-o", "{dir}/p.csv"],
             ["new.csv", "column 'age'", "non-numeric value", "row 3", "'old'"],
             {"new.csv": with_values("age", {2: "old"})}),
        Case("predict: not a checkpoint", ["predict", "{dir}/m.pt", "{dir}/new.csv", "-o", "{dir}/p.csv"],
             ["m.pt", "not a readable survmom checkpoint (not a PyTorch file)"], {"m.pt": GOOD, "new.csv": GOOD}),
        Case("predict: data file and checkpoint swapped", ["predict", "{dir}/new.csv", "{dir}/m.pt"],
             ["new.csv", "not a readable survmom checkpoint (not a PyTorch file)"],
             {"new.csv": b"age,time,event\n61,5.0,1\n"}),
        Case("inspect: a folder", ["inspect", "{dir}"], ["is a folder, not a checkpoint"], {}),
        Case("predict: truncated checkpoint", ["predict", "{dir}/m.pt", "{dir}/new.csv", "-o", "{dir}/p.csv"],
             ["m.pt", "not a readable survmom checkpoint (the file is truncated or corrupted)"],
             {"m.pt": lambda model: model.read_bytes()[: model.stat().st_size // 2], "new.csv": GOOD}),
        Case("predict: newer checkpoint format", ["predict", "{dir}/m.pt", "{dir}/new.csv", "-o", "{dir}/p.csv"],
             ["m.pt", "format version 3 is newer", "upgrade survmom"],
             {"m.pt": lambda model: checkpoint_with(model, format_version=3), "new.csv": GOOD}),
        Case("predict: format 1 checkpoint", ["predict", "{dir}/m.pt", "{dir}/new.csv", "-o", "{dir}/p.csv"],
             ["m.pt", "checkpoint format version 1 is older than this survmom reads (2); retrain"],
             {"m.pt": lambda model: checkpoint_with(model, format_version=1), "new.csv": GOOD}),
        Case("predict: edited checkpoint", ["predict", "{dir}/m.pt", "{dir}/new.csv", "-o", "{dir}/p.csv"],
             ["m.pt", "checkpoint content does not match its checksum (the file is damaged)"],
             {"m.pt": lambda model: checkpoint_with(model, time_scale=2.0), "new.csv": GOOD}),
        Case("predict: -o in a missing folder", ["predict", "{dir}/m.pt", "{dir}/new.csv", "-o", "{dir}/no/p.csv"],
             ["no/p.csv", "does not exist"], {"new.csv": GOOD}),
        Case("predict: -o is the input", ["predict", "{dir}/m.pt", "{dir}/new.csv", "-o", "{dir}/new.csv"],
             ["new.csv", "is the input file", "refusing to overwrite"], {"new.csv": GOOD}),
        # --- resume -------------------------------------------------------------------------------------
        Case("resume: not a checkpoint", ["resume", "{dir}/m.pt", "--quiet"],
             ["m.pt", "not a readable survmom checkpoint (not a PyTorch file)"], {"m.pt": bytes(range(256)) * 4}),
        Case("resume: --data missing", ["resume", "{dir}/m.pt", "--data", "{dir}/gone.csv", "--epochs", "2"],
             ["--data", "gone.csv: file not found"]),
        Case("resume: --data a folder", ["resume", "{dir}/m.pt", "--data", "{dir}", "--epochs", "2"],
             ["--data", "is a folder"]),
        Case("resume: --data lacks a feature", ["resume", "{dir}/m.pt", "--data", "{dir}/d.csv", "--epochs", "2"],
             ["d.csv", "missing column(s) 'bmi'"], {"d.csv": csv_bytes(frame.drop(columns="bmi"))}),
        # --- evaluate -----------------------------------------------------------------------------------
        Case("evaluate: event spelling", ["evaluate", "{dir}/m.pt", "{dir}/test.csv", "--json"],
             ["test.csv", "column 'event'", "1 invalid event value", "row 3: 'maybe'"],
             {"test.csv": with_values("event", {2: "maybe"})}),
        Case("evaluate: no time column", ["evaluate", "{dir}/m.pt", "{dir}/test.csv", "--json"],
             ["test.csv", "missing column(s) 'time'"], {"test.csv": csv_bytes(frame.drop(columns="time"))}),
        Case("evaluate: --times not numbers", ["evaluate", "{dir}/m.pt", "{dir}/test.csv", "--times", "10,abc"],
             ["--times expects a comma-separated list of float, got '10,abc'"], {"test.csv": GOOD}),
        Case("evaluate: --times with an empty item", ["evaluate", "{dir}/m.pt", "{dir}/test.csv", "--times", "10,,20"],
             ["--times has an empty item in '10,,20'"], {"test.csv": GOOD}),
        Case("predict: --times with a trailing comma", ["predict", "{dir}/m.pt", "{dir}/new.csv", "--times", "10,20,"],
             ["--times has an empty item in '10,20,'"], {"new.csv": GOOD}),
        # --- inspect ------------------------------------------------------------------------------------
        Case("inspect: truncated checkpoint", ["inspect", "{dir}/m.pt"],
             ["m.pt", "not a readable survmom checkpoint (the file is truncated or corrupted)"],
             {"m.pt": lambda model: model.read_bytes()[: model.stat().st_size // 3]}),
        Case("inspect: a plain torch file", ["inspect", "{dir}/m.pt", "--json"],
             ["m.pt", "not a survmom checkpoint"],
             {"m.pt": lambda model: checkpoint_with(model, format="something-else")}),
    ]


CASES = _cases()


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    """One real training run on 40 rows (batch 64, a constant feature): its checkpoint, exit code and stderr."""
    folder = tmp_path_factory.mktemp("trained")
    data, model = folder / "tiny.csv", folder / "model.pt"
    data.write_bytes(GOOD)
    result = survmom("train", data, "--out", model, "--batch", "64", "--epochs", "1", "--hidden", "8",
                     "--id-col", "id", "--quiet")
    return {"model": model, "result": result}


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (hidden ones included) → sha256 of its bytes."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _setup(case: Case, folder: Path, model: Path) -> list[str]:
    for name, content in case.files.items():
        (folder / name).write_bytes(content(model) if callable(content) else content)
    if "{dir}/m.pt" in case.args and "m.pt" not in case.files:
        shutil.copyfile(model, folder / "m.pt")
    return [arg.replace("{dir}", str(folder)) for arg in case.args]


@dataclass
class Outcome:
    """A finished case: the process result and its folder before and after."""

    result: subprocess.CompletedProcess
    before: dict[str, str]
    after: dict[str, str]


@pytest.fixture(scope="module")
def outcomes(request, trained, tmp_path_factory) -> dict[str, Outcome]:
    """Run the selected cases, one after another in this process (``run_survmom`` swaps the process's streams)."""
    selected = [item.callspec.params["case"] for item in request.session.items
                if isinstance(getattr(item, "callspec", None) and item.callspec.params.get("case"), Case)]

    def run(case: Case) -> Outcome:
        folder = tmp_path_factory.mktemp("case")
        args = _setup(case, folder, trained["model"])
        before = snapshot(folder)
        result = survmom(*args)
        return Outcome(result, before, snapshot(folder))

    return {case.name: run(case) for case in selected}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_gives_one_line_exit_2_and_writes_nothing(case: Case, outcomes):
    outcome = outcomes[case.name]
    stderr = outcome.result.stderr
    lines = stderr.strip().splitlines()
    assert outcome.result.returncode == 2, stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    for text in case.expect:
        assert text in lines[0], f"{text!r} not in {lines[0]!r}"
    assert outcome.after == outcome.before


def test_debug_flag_shows_the_traceback_and_still_writes_nothing(tmp_path):
    data = tmp_path / "d.csv"
    data.write_bytes(with_values("time", {1: -5}))
    result = survmom("train", data, "--out", tmp_path / "m.pt", *TRAIN, "--debug")
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "DataError" in result.stderr and "negative value" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.csv"]


def test_fewer_rows_than_the_batch_trains_with_a_warning(trained):
    result = trained["result"]
    assert result.returncode == 0, result.stderr
    assert "warning: 32 training rows is fewer than --batch 64: each epoch is one batch of 32" in result.stderr
    assert torch.load(trained["model"], weights_only=True)["progress"]["step"] == 1


def test_a_constant_feature_is_kept_with_a_warning(trained):
    assert trained["result"].returncode == 0
    assert "warning: constant feature 'centre' (every value is 'A'); kept" in trained["result"].stderr
    state = torch.load(trained["model"], weights_only=True)
    assert "centre=A" in state["preprocessing"]["feature_names"]
