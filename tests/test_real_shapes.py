"""Shapes of real users' files that the other test files do not cover: durations and dates as the time column.

A registry export often holds follow-up as a duration (exit - entry) or as dates: refused in one line that
says how to make the number the model needs.
"""

from __future__ import annotations

import pandas as pd
import pytest
from lifelines.datasets import load_rossi

from cli_runner import run_survmom


@pytest.mark.parametrize(("kind", "message"), [
    ("duration", "column 'week' holds durations, not numbers; convert it to a number in the unit you mean "
                 "(e.g. days: its total seconds / 86400)"),
    ("date", "column 'week' holds dates/times, not numbers; convert it to a number (e.g. days since a reference "
             "date, or follow-up days as exit date - entry date)"),
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
