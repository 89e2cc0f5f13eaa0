"""Times from dates (``--origin-col``, ``--time-unit``, ``--date-format``): the durations against lifelines'
``datetimes_to_durations``, every date spelling and file type end to end against the model trained on the
numeric durations of the same rows (lifelines' rossi, weeks made days), and the refusals in one line.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyreadstat
import pytest
import torch
from lifelines.datasets import load_rossi
from lifelines.utils import datetimes_to_durations

from survmom.data.dates import read_dates, times_from_dates
from survmom.errors import ConfigError, DataError
from survmom.training.checkpoint import read_checkpoint
from survmom.training.config import TrainConfig

from cli_runner import run_survmom

PATH = Path("d.csv")
LATER = "2100-01-01"  # lifelines censors end dates after its fill_date (default: today)
FAST = ["--epochs", "2", "--hidden", "8", "--batch", "64", "--quiet"]


def since(origin: list, end: list, unit: str = "days", date_format: str | None = None,
          entry: list | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    table = pd.DataFrame({"start": origin, "end": end, **({"entry": entry} if entry is not None else {})})
    return times_from_dates(table, origin="start", time="end", entry="entry" if entry is not None else None,
                            unit=unit, date_format=date_format, path=PATH)


def refusal(origin: list, end: list, **options) -> str:
    with pytest.raises(DataError) as error:
        since(origin, end, **options)
    return str(error.value)


# ------------------------------------------------------------------------------------------- the durations


def random_dates(n: int, seed: int = 0) -> tuple[pd.Series, pd.Series]:
    """n origin dates over 1990-2014 and end dates 1 to 4,000 days later (leap years and month ends included)."""
    rng = np.random.default_rng(seed)
    origin = pd.Series(pd.Timestamp("1990-01-01") + pd.to_timedelta(rng.integers(0, 9000, n), unit="D"))
    return origin, origin + pd.to_timedelta(rng.integers(1, 4000, n), unit="D")


@pytest.mark.parametrize("cells", ["iso text", "date objects", "datetime64", "timestamps in a timezone"])
def test_days_since_the_origin_are_lifelines_datetimes_to_durations(cells):
    origin, end = random_dates(500)
    expected, _ = datetimes_to_durations(origin.dt.strftime("%Y-%m-%d"), end.dt.strftime("%Y-%m-%d"), freq="D",
                                         fill_date=LATER)
    as_cells = {"iso text": lambda s: s.dt.strftime("%Y-%m-%d").tolist(),
                "date objects": lambda s: s.dt.date.tolist(),
                "datetime64": lambda s: s, "timestamps in a timezone": lambda s: s.dt.tz_localize("UTC")}
    times, entry = since(as_cells[cells](origin), as_cells[cells](end))
    assert entry is None and times.dtype == np.float64
    np.testing.assert_array_equal(times, expected)


def test_a_date_format_reads_day_first_dates_as_lifelines_does_with_the_same_format():
    origin, end = random_dates(300, seed=1)
    day_first = [s.dt.strftime("%d/%m/%Y").tolist() for s in (origin, end)]
    expected, _ = datetimes_to_durations(*day_first, freq="D", format="%d/%m/%Y", fill_date=LATER)
    np.testing.assert_array_equal(since(*day_first, date_format="%d/%m/%Y")[0], expected)


@pytest.mark.parametrize(("unit", "days"), [("days", 1), ("weeks", 7), ("months", 30.4375), ("years", 365.25)])
def test_a_time_unit_divides_the_days_by_its_length(unit, days):
    origin, end = random_dates(50, seed=2)
    expected, _ = datetimes_to_durations(origin, end, freq="D", fill_date=LATER)
    np.testing.assert_allclose(since(origin, end, unit=unit)[0], expected / days, rtol=1e-15)


def test_datetimes_keep_their_fractions_of_a_day_and_iso_spellings_agree():
    origin = ["2020-01-31", "2020-01-31 06:00", "2020-01-31T06:00:00", "2020-02-28", "2020-01-01 00:00:00.5"]
    end = ["2020-02-01 12:00", "2020-02-01T18:00", "2020-01-31 18:00:30", "2020-03-01", "2020-01-02"]
    np.testing.assert_allclose(since(origin, end)[0], [1.5, 1.5, 0.5 + 30 / 86400, 2.0, 1 - 0.5 / 86400],
                               rtol=1e-13)


def test_datetimes_with_utc_offsets_are_compared_in_utc():
    """Elapsed time: across a daylight-saving change a day in Paris lasts 23 hours."""
    origin = ["2020-01-01T00:00:00+01:00", "2020-03-28T12:00+01:00"]
    end = ["2020-01-01T00:00Z", "2020-03-29T12:00+02:00"]
    np.testing.assert_allclose(since(origin, end)[0], [1 / 24, 23 / 24], rtol=1e-13)


def test_entry_dates_are_days_since_the_origin_too():
    times, entry = since(["2020-01-01", "2020-01-01"], ["2020-03-01", "2021-01-01"],
                         entry=["2020-01-11", "2019-12-31"], unit="weeks")
    np.testing.assert_allclose(times, [60 / 7, 366 / 7])
    np.testing.assert_allclose(entry, [10 / 7, -1 / 7])


def test_pyarrow_s_csv_inference_and_the_text_reading_give_the_same_dates(tmp_path):
    """A CSV read without --origin-col lets pyarrow type ISO dates (date32, timestamp); with it, the columns are
    text parsed by survmom: one set of values either way."""
    from survmom.data import read_table

    path = tmp_path / "d.csv"
    path.write_text("a,b\n2020-01-31,2020-01-31 14:05\n2021-12-01,2020-01-31T14:05:00.5\n,2020-02-01\n")
    typed = read_table(path, None, column_types={"a": "code", "b": "code"})
    text = read_table(path, None, column_types={"a": "string", "b": "string"})
    assert text["a"].tolist()[:2] == ["2020-01-31", "2021-12-01"]
    for column in "ab":
        inferred, parsed = (read_dates(t[column], path=path, column=column) for t in (typed, text))
        np.testing.assert_array_equal(inferred.us, parsed.us)
        np.testing.assert_array_equal(inferred.missing, parsed.missing)


# ---------------------------------------------------------------------------------------------- refusals


def test_missing_origin_and_end_dates_are_refused_by_row():
    assert refusal(["2020-01-01", None, "2020-01-03"], ["2020-02-01"] * 3) == (
        "d.csv: column 'start' has 1 missing origin date (row 2: <missing>); every row needs the date its clock "
        "starts (--origin-col)")
    assert refusal(["2020-01-01"] * 3, ["2020-02-01", "NA", ""]) == (
        "d.csv: column 'end' has 2 missing end dates (rows 2, 3: 'NA', ''); every row needs the date of its event "
        "or last follow-up (a missing end date is not taken as censored)")


def test_an_end_on_or_before_the_origin_is_refused():
    assert refusal(["2020-01-01", "2020-05-01", "2020-01-01 12:00"], ["2020-02-01", "2020-05-01", "2020-01-01"]) == (
        "d.csv: column 'end' has 2 end dates on or before the origin date in 'start' (rows 2, 3: 2020-05-01 <= "
        "2020-05-01, 2020-01-01 <= 2020-01-01 12:00); every row needs follow-up time after its origin (time > 0 for "
        "this model: 1 of them on the origin date)")


def test_day_month_order_without_a_date_format_is_refused_with_the_format_to_pass():
    assert refusal(["31/12/2020", "01/02/2021"], ["2021-01-05", "2021-03-01"]) == (
        "d.csv: column 'start' has 2 values that are dates not in ISO 8601 (rows 1, 2: '31/12/2020', '01/02/2021'; "
        "day first): pass --date-format with their spelling, --date-format '%d/%m/%Y' (day first) or "
        "'%m/%d/%Y' (month first)")
    assert "12.31.2020 10:00'; month first): pass --date-format with their spelling, --date-format " \
           "'%d.%m.%Y %H:%M' (day first)" in refusal(["12.31.2020 10:00"], ["2021-01-05"])


def test_text_that_is_no_date_is_refused_naming_the_format():
    assert refusal(["2020-01-01", "2020-02-30", "soon"], ["2021-01-01"] * 3) == (
        "d.csv: column 'start' has 2 values that are not dates in ISO 8601 (2020-12-31, 2020-12-31 14:05); pass "
        "--date-format for another spelling, e.g. %d/%m/%Y (rows 2, 3: '2020-02-30', 'soon')")
    assert refusal(["31/12/2020", "12/31/2020"], ["2021-01-01"] * 2, date_format="%d/%m/%Y") == (
        "d.csv: column 'start' has 1 value that is not a date in --date-format '%d/%m/%Y' or ISO 8601 "
        "(row 2: '12/31/2020')")


def test_numbers_are_not_dates_unless_a_format_says_how():
    assert refusal([1, 2], [3, 4]).startswith(
        "d.csv: column 'start' has 2 values that are numbers, not dates (rows 1, 2: 1, 2); with --origin-col the "
        "origin, time and entry columns hold dates: leave out --origin-col to read numbers as times")
    np.testing.assert_array_equal(since([20200101, 20201231], ["2020-01-02", "2021-01-01"],
                                        date_format="%Y%m%d")[0], [1, 1])


def test_timezone_aware_and_naive_values_are_refused_together():
    assert refusal(["2020-01-01T10:00+01:00", "2020-01-02"], ["2021-01-01T00:00Z"] * 2) == (
        "d.csv: column 'start' mixes timezone-aware and naive datetimes (row 1: '2020-01-01T10:00+01:00'; row 2: "
        "'2020-01-02'); give every value a UTC offset, or none")
    assert refusal(["2020-01-01T10:00+01:00"], ["2021-01-01"]) == (
        "d.csv: column 'start' holds timezone-aware datetimes and column 'end' naive ones: their difference is not "
        "known; give both a UTC offset, or neither")


@pytest.mark.parametrize(("options", "message"), [
    ({"origin_col": "start", "time_unit": "decades"}, "--time-unit must be one of days, weeks, months, years"),
    ({"origin_col": "start", "date_format": "dd/mm/yyyy"}, "--date-format is a strptime format such as %d/%m/%Y"),
    ({"origin_col": "time"}, "column 'time' is given twice: as the time column and as the origin column"),
])
def test_date_options_are_checked(options, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig.from_dict(options)


# ------------------------------------------------------------------------------------------------ end to end


@pytest.fixture(scope="module")
def rossi_files(tmp_path_factory) -> dict[str, Path]:
    """rossi with its weeks as days (``days``), and the same rows with origin dates spread over 2000-2010 and
    end dates = origin + days, in every file type."""
    folder = tmp_path_factory.mktemp("rossi")
    rossi = load_rossi()
    days = rossi.pop("week") * 7
    rng = np.random.default_rng(7)
    origin = pd.Series(pd.Timestamp("2000-01-01") + pd.to_timedelta(rng.integers(0, 3650, len(rossi)), unit="D"))
    end = origin + pd.to_timedelta(days, unit="D")
    numeric = rossi.assign(days=days)
    dated = pd.concat([pd.DataFrame({"start": origin, "end": end}), rossi], axis=1)
    files = {"numeric": folder / "numeric.csv"}
    numeric.to_csv(files["numeric"], index=False)
    files["iso.csv"] = folder / "iso.csv"
    dated.to_csv(files["iso.csv"], index=False, date_format="%Y-%m-%d")
    files["dmy.csv"] = folder / "dmy.csv"
    dated.to_csv(files["dmy.csv"], index=False, date_format="%d/%m/%Y")
    files["date32.parquet"] = folder / "date32.parquet"
    dated.assign(start=origin.dt.date, end=end.dt.date).to_parquet(files["date32.parquet"])
    files["timestamp.parquet"] = folder / "timestamp.parquet"
    dated.to_parquet(files["timestamp.parquet"])
    files["dates.feather"] = folder / "dates.feather"
    dated.assign(start=origin.dt.date, end=end.dt.date).to_feather(files["dates.feather"])
    files["dates.dta"] = folder / "dates.dta"
    pyreadstat.write_dta(dated.assign(start=origin.dt.date, end=end.dt.date), files["dates.dta"])
    return files


def train(data: Path, out: Path, *args: str) -> Path:
    run_survmom("train", data, "--event-col", "arrest", "--out", out, *FAST, *args, check=True)
    return out


def predictions(model: Path, data: Path, folder: Path, times: str = "100,300") -> pd.DataFrame:
    out = folder / f"{model.stem}-{data.stem}.csv"
    run_survmom("predict", model, data, "--times", times, "--out", out, "--quiet", check=True)
    return pd.read_csv(out)


@pytest.fixture(scope="module")
def numeric_model(rossi_files, tmp_path_factory) -> Path:
    return train(rossi_files["numeric"], tmp_path_factory.mktemp("numeric") / "numeric.pt", "--time-col", "days")


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["iso.csv", "dmy.csv", "date32.parquet", "timestamp.parquet", "dates.feather",
                                  "dates.dta"])
def test_a_model_trained_on_dates_is_the_model_trained_on_their_days(kind, rossi_files, numeric_model, tmp_path):
    fmt = ["--date-format", "%d/%m/%Y"] if kind == "dmy.csv" else []
    model = train(rossi_files[kind], tmp_path / "dates.pt", "--time-col", "end", "--origin-col", "start", *fmt)
    dated, reference = read_checkpoint(model), read_checkpoint(numeric_model)
    torch.testing.assert_close(dated.train_time, reference.train_time, rtol=0, atol=0)
    assert dated.best_metric == reference.best_metric and dated.best_metric > 0.55
    assert dated.preprocessor.input_columns == reference.preprocessor.input_columns  # start, end: no features
    assert dated.config.origin_col == "start" and dated.config.time_unit == "days"
    pd.testing.assert_frame_equal(predictions(model, rossi_files[kind], tmp_path),
                                  predictions(numeric_model, rossi_files["numeric"], tmp_path))


@pytest.mark.slow
def test_evaluate_and_explain_read_a_later_file_s_dates_as_training_did(rossi_files, numeric_model, tmp_path):
    import json

    model = train(rossi_files["date32.parquet"], tmp_path / "dates.pt", "--time-col", "end", "--origin-col", "start")
    for command in (["evaluate"], ["explain", "--repeats", "1"], ["plot", "km"]):
        dated = run_survmom(*command, model, rossi_files["iso.csv"], "--json", check=True)
        reference = run_survmom(*command, numeric_model, rossi_files["numeric"], "--json", check=True)
        assert json.loads(dated.stdout).keys() == json.loads(reference.stdout).keys()
        ignore = {"checkpoint", "data", "time_column", "time_unit"}
        dated, reference = json.loads(dated.stdout), json.loads(reference.stdout)
        assert {k: v for k, v in dated.items() if k not in ignore} == {
            k: v for k, v in reference.items() if k not in ignore}
        if command != ["explain", "--repeats", "1"]:
            assert (dated["time_unit"], reference["time_unit"]) == ("days since 'start'", None)


@pytest.mark.slow
def test_years_scale_the_times_and_medians_and_leave_the_risks(rossi_files, numeric_model, tmp_path):
    model = train(rossi_files["iso.csv"], tmp_path / "years.pt", "--time-col", "end", "--origin-col", "start",
                  "--time-unit", "years")
    years, days = read_checkpoint(model), read_checkpoint(numeric_model)
    torch.testing.assert_close(years.train_time, days.train_time / 365.25, rtol=1e-15, atol=0)
    assert years.best_metric == days.best_metric
    in_years = predictions(model, rossi_files["iso.csv"], tmp_path, times=f"{100 / 365.25},{300 / 365.25}")
    in_days = predictions(numeric_model, rossi_files["numeric"], tmp_path)
    np.testing.assert_allclose(in_years["log_hazard"], in_days["log_hazard"], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(in_years["median_time"], in_days["median_time"] / 365.25, rtol=1e-12)
    np.testing.assert_allclose(in_years.filter(like="surv_").to_numpy(), in_days.filter(like="surv_").to_numpy(),
                               rtol=1e-6)
    assert np.isfinite(in_days["median_time"]).sum() > 10
    shown = run_survmom("inspect", model, check=True).stderr
    assert "years from the date in 'start' to the date in" in shown and "'end'" in shown


@pytest.mark.slow
def test_entry_dates_train_the_model_of_numeric_entry_times(tmp_path):
    rossi = load_rossi().drop(columns=["race", "mar"])
    days = rossi.pop("week") * 7
    entry = (days * np.random.default_rng(3).uniform(0, 0.5, len(days))).round()
    origin = pd.Series(pd.Timestamp("2005-03-01") + pd.to_timedelta(np.arange(len(days)) * 3, unit="D"))
    rossi.assign(days=days, entry=entry).to_csv(tmp_path / "numeric.csv", index=False)
    pd.concat([pd.DataFrame({"start": origin.dt.date, "end": (origin + pd.to_timedelta(days, unit="D")).dt.date,
                             "enrolled": (origin + pd.to_timedelta(entry, unit="D")).dt.date}), rossi],
              axis=1).to_parquet(tmp_path / "dated.parquet")
    numeric = train(tmp_path / "numeric.csv", tmp_path / "n.pt", "--time-col", "days", "--entry-col", "entry")
    dated = train(tmp_path / "dated.parquet", tmp_path / "d.pt", "--time-col", "end", "--entry-col", "enrolled",
                  "--origin-col", "start")
    a, b = read_checkpoint(dated), read_checkpoint(numeric)
    torch.testing.assert_close(a.train_design["entry"], b.train_design["entry"], rtol=0, atol=0)
    assert a.best_metric == b.best_metric
    pd.testing.assert_frame_equal(predictions(dated, tmp_path / "dated.parquet", tmp_path),
                                  predictions(numeric, tmp_path / "numeric.csv", tmp_path))


def test_the_python_api_takes_origin_col_and_the_time_unit(tmp_path):
    """fit(origin_col=) on datetime64 columns, in weeks: the model fitted on rossi's own weeks."""
    from survmom import SurvivalModel

    rossi = load_rossi()
    weeks = rossi.pop("week")
    origin = pd.Series(pd.Timestamp("2001-01-01") + pd.to_timedelta(np.arange(len(weeks)), unit="D"))
    frame = pd.concat([pd.DataFrame({"diagnosed": origin, "last_seen": origin + pd.to_timedelta(weeks * 7, "D")}),
                       rossi], axis=1)
    dated = SurvivalModel(verbose=False, epochs=1, hidden=(8,), time_unit="weeks")
    dated.fit(frame, time_col="last_seen", event_col="arrest", origin_col="diagnosed")
    numeric = SurvivalModel(verbose=False, epochs=1, hidden=(8,)).fit(rossi.assign(week=weeks), "week", "arrest")
    saved, reference = read_checkpoint(dated._fitted()), read_checkpoint(numeric._fitted())
    torch.testing.assert_close(saved.train_time, reference.train_time, rtol=0, atol=0)
    assert saved.config.origin_col == "diagnosed" and saved.config.time_unit == "weeks"
    assert saved.preprocessor.input_columns == reference.preprocessor.input_columns
    pd.testing.assert_frame_equal(dated.predict(frame, times=[20, 40]), numeric.predict(rossi, times=[20, 40]))


# --------------------------------------------------------------------------------------- refusals from the CLI


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> pd.DataFrame:
    rossi = load_rossi().head(60)
    days = rossi.pop("week") * 7
    origin = pd.Series(pd.Timestamp("2010-06-01") + pd.to_timedelta(np.arange(60) * 11, unit="D"))
    return pd.concat([pd.DataFrame({"start": origin.dt.date, "end": (origin + pd.to_timedelta(days, "D")).dt.date,
                                    "days": days}), rossi], axis=1)


def refused(data: Path, *args: str) -> str:
    out = data.parent / "model.pt"
    result = run_survmom("train", data, "--event-col", "arrest", "--out", out, *FAST, *args)
    assert result.returncode == 2 and not out.exists(), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    return result.stderr.strip()


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_a_date_time_column_without_origin_col_suggests_it(small, suffix, tmp_path):
    path = tmp_path / f"d{suffix}"
    small.to_parquet(path) if suffix == ".parquet" else small.to_csv(path, index=False)
    assert refused(path, "--time-col", "end") == (
        f"error: {path}: column 'end' holds dates, not numbers (rows 1, 2, 3: 2010-10-19, 2010-10-09, 2010-12-15): "
        "name the column of each subject's origin date (diagnosis, randomisation) with --origin-col, and the time "
        "becomes the days from it (or --time-unit weeks, months, years); or convert the column to a number")


def test_origin_col_with_a_numeric_time_column_is_refused(small, tmp_path):
    path = tmp_path / "d.csv"
    small.to_csv(path, index=False)
    assert refused(path, "--time-col", "days", "--origin-col", "start") == (
        f"error: {path}: column 'days' has 60 values that are numbers, not dates (rows 1, 2, 3, 4, 5, ...: '140', "
        "'119', '175', '364', '364', ...); with --origin-col the origin, time and entry columns hold dates: leave out "
        "--origin-col to read numbers as times (or --date-format %Y%m%d for dates written as 20201231)")


def test_a_missing_end_date_in_a_file_is_refused_not_censored(small, tmp_path):
    path = tmp_path / "d.parquet"
    small.assign(end=small["end"].where(small.index != 4)).to_parquet(path)
    assert refused(path, "--time-col", "end", "--origin-col", "start") == (
        f"error: {path}: column 'end' has 1 missing end date (row 5: <missing>); every row needs the date of its "
        "event or last follow-up (a missing end date is not taken as censored)")


@pytest.mark.parametrize("option", [["--time-unit", "years"], ["--date-format", "%d/%m/%Y"]])
def test_a_time_unit_or_date_format_without_origin_col_is_refused(small, option, tmp_path):
    path = tmp_path / "d.csv"
    small.to_csv(path, index=False)
    assert refused(path, "--time-col", "days", *option) == (
        "error: --time-unit and --date-format apply to dates: give --origin-col, the column of each subject's origin "
        "date (the time column then holds end dates)")


def test_the_entry_column_as_a_feature_is_refused_with_how_to_keep_it(small, tmp_path):
    path = tmp_path / "d.csv"
    small.assign(entry_age=small["age"] - 1, time=1.0 + np.arange(len(small))).to_csv(path, index=False)
    assert refused(path, "--entry-col", "entry_age", "--features", "entry_age,age") == (
        "error: features must not include the time, event, id, entry, weight, strata or origin column: 'entry_age' "
        "(the entry column); to use it as a feature too (an age at entry, say), copy it to a column of another name "
        "and list that")


def test_the_origin_column_is_no_feature_and_must_exist(small, tmp_path):
    path = tmp_path / "d.parquet"
    small.to_parquet(path)
    dates = ["--time-col", "end", "--origin-col"]
    assert refused(path, *dates, "start", "--features", "start,age") == (
        "error: features must not include the time, event, id, entry, weight, strata or origin column: 'start'")
    assert refused(path, *dates, "start", "--categorical", "start") == (
        "error: --categorical names 'start', the origin column; only feature columns take a type")
    assert refused(path, *dates, "started").startswith(
        f"error: {path}: origin column 'started' not found (available: 'start', 'end', 'days', ")


def test_day_first_dates_in_a_csv_name_the_file_column_and_option(small, tmp_path):
    path = tmp_path / "d.csv"
    small.assign(start=pd.to_datetime(small["start"]).dt.strftime("%d/%m/%Y")).to_csv(path, index=False)
    assert refused(path, "--time-col", "end", "--origin-col", "start") == (
        f"error: {path}: column 'start' has 60 values that are dates not in ISO 8601 (rows 1, 2, 3, 4, 5, ...: "
        "'01/06/2010', '12/06/2010', '23/06/2010', '04/07/2010', '15/07/2010', ...; day first): pass --date-format "
        "with their spelling, --date-format '%d/%m/%Y' (day first) or '%m/%d/%Y' (month first)")
    train(path, tmp_path / "m.pt", "--time-col", "end", "--origin-col", "start", "--date-format", "%d/%m/%Y",
          "--val-frac", "0")
    np.testing.assert_array_equal(np.sort(read_checkpoint(tmp_path / "m.pt").train_time.numpy()),
                                  np.sort(small["days"].to_numpy(dtype=float)))


def test_an_end_on_the_origin_date_is_time_0_for_cox_as_a_numeric_0_is(tmp_path):
    """lifelines' lupus (dates to the month; 4 patients last seen in their month of diagnosis, time 0 in the data
    set's own years column): a Cox model takes time 0 from dates as it does from numbers, and is lifelines' fit on
    pandas' durations; a Weibull model (log time) still refuses those rows by number."""
    from lifelines import CoxPHFitter
    from lifelines.datasets import load_lupus

    lupus = load_lupus().dropna().reset_index(drop=True)  # one age at diagnosis is missing
    origin, end = "year_month_of_diagnosis", "year_month_of_last_observation"
    years = (pd.to_datetime(lupus[end]) - pd.to_datetime(lupus[origin])).dt.days / 365.25
    own = "time_between_diagnosis_and_last_observation_(years)"
    zero = np.flatnonzero(years == 0)
    assert zero.tolist() == np.flatnonzero(lupus[own] == 0).tolist() and len(zero) == 4
    features = ["is_male", "is_white", "age_at_diagnosis"]
    path = tmp_path / "lupus.csv"
    lupus[[origin, end, "dead", *features]].to_csv(path, index=False)
    dates = ["--origin-col", origin, "--time-col", end, "--event-col", "dead", "--date-format", "%Y-%m",
             "--time-unit", "years"]
    linear = ["--hidden", "", "--linear-penalty", "0", "--lr", "1e-12", "--weight-decay", "0", "--epochs", "1",
              "--val-frac", "0", "--quiet"]
    run_survmom("train", path, *dates, *linear, "-o", tmp_path / "cox.pt", check=True)
    run_survmom("predict", tmp_path / "cox.pt", path, "-o", tmp_path / "p.csv", check=True)
    ours = pd.read_csv(tmp_path / "p.csv")["log_hazard"].to_numpy()
    frame = lupus[["dead", *features]].astype(float).assign(years=years)
    fitter = CoxPHFitter().fit(frame, "years", "dead")
    theirs = frame[features].to_numpy() @ fitter.params_[features].to_numpy()
    np.testing.assert_allclose(ours - ours.mean(), theirs - theirs.mean(), atol=1e-5)
    result = run_survmom("train", path, *dates, "--loss", "weibull", *FAST, "-o", tmp_path / "w.pt")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    rows = ", ".join(str(r) for r in zero + 1)
    assert (f"{path}: column '{end}' has 4 end dates on or before the origin date in '{origin}' (rows {rows}:"
            in result.stderr and "(time > 0 for this model: 4 of them on the origin date)" in result.stderr), \
        result.stderr
    assert not (tmp_path / "w.pt").exists()


def test_for_cox_an_end_before_the_origin_is_refused_and_one_on_it_is_time_0():
    table = pd.DataFrame({"start": ["2020-01-01", "2020-05-01", "2020-03-01"],
                          "end": ["2020-01-11", "2020-05-01", "2020-02-01"]})
    with pytest.raises(DataError) as error:
        times_from_dates(table, origin="start", time="end", entry=None, unit="days", date_format=None, path=PATH,
                         min_exclusive=False)
    assert str(error.value) == ("d.csv: column 'end' has 1 end date before the origin date in 'start' (row 3: "
                                "2020-02-01 < 2020-03-01); an end cannot precede its origin")
    times, _ = times_from_dates(table.iloc[:2], origin="start", time="end", entry=None, unit="days",
                                date_format=None, path=PATH, min_exclusive=False)
    assert times.tolist() == [10.0, 0.0]


def test_times_in_years_are_shown_to_six_digits_and_kept_exact_in_the_data(tmp_path):
    """Years from dates (days / 365.25): evaluate's tables on stderr show each time to 6 significant digits, its
    JSON and predict's surv_<t> columns keep them exact; a time outside the follow-up names the bounds rounded
    towards the inside (ceiling of the first time, floor of the last)."""
    import json
    import re

    rng = np.random.default_rng(0)
    origin = pd.Timestamp("2000-01-01") + pd.to_timedelta(rng.integers(0, 3650, 300), unit="D")
    days = rng.integers(50, 1999, 300)
    days[:2] = [41, 1999]
    frame = pd.DataFrame({"start": origin.strftime("%Y-%m-%d"),
                          "end": (origin + pd.to_timedelta(days, unit="D")).strftime("%Y-%m-%d"),
                          "x": rng.normal(size=300), "arrest": (rng.random(300) < 0.6).astype(int)})
    frame.to_csv(tmp_path / "dates.csv", index=False)
    model = tmp_path / "years.pt"
    train(tmp_path / "dates.csv", model, "--time-col", "end", "--origin-col", "start", "--time-unit", "years",
          "--val-frac", "0")
    result = run_survmom("evaluate", model, tmp_path / "dates.csv", "--json", check=True)
    times = json.loads(result.stdout)["times"]
    assert times == read_checkpoint(model).event_time_quantiles and any(len(repr(t)) > 12 for t in times)
    shown = run_survmom("evaluate", model, tmp_path / "dates.csv", check=True).stderr
    rows = re.findall(r"^│\s*([0-9.]+)\s*│\s*0\.\d{4}\s*│", shown, flags=re.MULTILINE)
    assert rows == [f"{t:.6g}" for t in times] * 2, shown  # by time, calibration in the large
    assert not re.search(r"\d\.\d{7,}", shown), shown
    outside = run_survmom("evaluate", model, tmp_path / "dates.csv", "--times", "9")
    assert outside.returncode == 2
    assert ("--times: 9 outside the follow-up of " in outside.stderr
            and "(times 0.112252 to 5.47296); evaluation times must be >= 0.112252 and < 5.47296" in outside.stderr)
    assert 0.112252 > 41 / 365.25 > 0.112251 and 5.47296 < 1999 / 365.25 < 5.47297
    exact = 366 / 365.25
    run_survmom("predict", model, tmp_path / "dates.csv", "--times", repr(exact), "-o", tmp_path / "p.csv",
                "--quiet", check=True)
    assert f"surv_{exact!r}" in pd.read_csv(tmp_path / "p.csv").columns
