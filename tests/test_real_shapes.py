"""Shapes of real users' files that the other test files do not cover: durations and dates as the time column.

A registry export often holds follow-up as a duration (exit - entry) or as dates: refused in one line that
says how to make the number the model needs (for dates: --origin-col, tests/test_dates.py).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lifelines.datasets import load_rossi

from cli_runner import run_survmom


@pytest.mark.parametrize(("kind", "message"), [
    ("duration", "column 'week' holds durations, not numbers; convert it to a number in the unit you mean "
                 "(e.g. days: its total seconds / 86400)"),
    ("date", "column 'week' holds dates, not numbers (rows 1, 2, 3: 2000-05-20, 2000-04-29, 2000-06-24): name the "
             "column of each subject's origin date (diagnosis, randomisation) with --origin-col, and the time becomes "
             "the days from it (or --time-unit weeks, months, years); or convert the column to a number"),
])
def test_a_time_column_of_durations_or_dates_says_how_to_make_it_a_number(kind, message, tmp_path):
    rossi = load_rossi()
    weeks = pd.to_timedelta(rossi["week"] * 7, unit="D")
    rossi["week"] = weeks if kind == "duration" else pd.Timestamp("2000-01-01") + weeks
    path, out = tmp_path / "rossi.parquet", tmp_path / "m.pt"
    rossi.to_parquet(path)
    result = run_survmom("train", path, "--time-col", "week", "--event-col", "arrest", "--out", out)
    assert result.returncode == 2 and result.stderr.strip() == f"error: {path}: {message}"
    assert not out.exists()


def test_numbers_stored_as_text_in_a_parquet_file_are_warned_about(tmp_path):
    """A Parquet file written from read_csv(dtype=str): every column text. The file's type decides (categorical),
    but a quantity with many values (age) gets a warning naming --numeric; with it, no warning."""
    path = tmp_path / "text.parquet"
    rossi = load_rossi()
    rng = np.random.default_rng(0)
    rossi["zip"] = rng.choice([str(94100 + k) for k in range(15)], len(rossi))  # codes by name: not warned about
    rossi["postal"] = rng.choice([f"0{2100 + k}" for k in range(15)], len(rossi))  # leading zeros: codes
    rossi.astype(str).to_parquet(path)
    args = ["train", path, "--time-col", "week", "--event-col", "arrest", "--epochs", "1", "--hidden", "8"]
    result = run_survmom(*args, "--out", tmp_path / "a.pt", check=True)
    warned = [line for line in result.stderr.splitlines() if "stored as text" in line]
    assert warned == [
        f"warning: {path}: column 'age' is stored as text but all its 27 values are numbers ('17', '18', '19', "
        "... (27 in all)); treated as categorical, one input per value: --numeric age reads it as a number",
        f"warning: {path}: column 'prio' is stored as text but all its 17 values are numbers ('0', '1', '10', "
        "... (17 in all)); treated as categorical, one input per value: --numeric prio reads it as a number"]
    numeric = run_survmom(*args, "--numeric", "age,prio", "--out", tmp_path / "b.pt", check=True)
    assert "stored as text" not in numeric.stderr
