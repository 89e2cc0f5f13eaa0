"""Dates as the survival clock: the time from each subject's origin date (diagnosis, randomisation) to its end
date (event or last follow-up), and to its entry date, in days, weeks, months or years (``--origin-col``).

A date column is typed (Parquet ``date32``/``timestamp``, Feather, Stata/SPSS/SAS dates: ``datetime64`` or
Python ``date`` cells) or text. Text in ISO 8601 (``2020-01-31``, ``2020-01-31 14:05``, ``2020-01-31T14:05:00``,
with an optional UTC offset or ``Z``) is read as what it says, as pyarrow's CSV inference reads it; any other
spelling needs a strptime ``date_format`` (``%d/%m/%Y``), because ``01/02/2020`` is 1 February in one country
and January 2 in another.

The time is ``(end - origin) / unit`` with the unit's length in days from :data:`~survmom.choices.TIME_UNITS`
(a week is 7 days, a month 30.4375, a year 365.25); datetimes keep their fractions of a day. Timezone-aware
values are compared in UTC; aware and naive values together are refused (their difference is not known).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from survmom.choices import TIME_UNITS
from survmom.data.cells import as_number, is_missing_text, per_row, text_view
from survmom.data.messages import SAMPLE, plural, row_numbers, show_rows
from survmom.errors import DataError

_US_PER_DAY = 86_400 * 1_000_000
_EPOCH = dt.datetime(1970, 1, 1)
_ISO = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?")
# Day, month and year in some order (31/12/2020, 12-31-20, 31.12.2020 14:05): a date, but which one?
_LOCAL = re.compile(r"(\d{1,2})([-/.])(\d{1,2})\2(\d{4}|\d{2})([ T]\d{1,2}:\d{2}(?::\d{2})?)?")
_YEAR_FIRST = re.compile(r"\d{4}([-/.])\d{1,2}\1\d{1,2}(?:[ T]\d{1,2}:\d{2}(?::\d{2})?)?")  # 2020/12/31


@dataclass
class Dates:
    """One column's dates: ``us`` (n,) int64 microseconds since 1970-01-01 (UTC for aware values; 0 where
    missing), ``missing`` (n,) bool, ``aware`` whether the values carry a timezone (None: every value missing)."""

    us: np.ndarray
    missing: np.ndarray
    aware: bool | None


def times_from_dates(table: pd.DataFrame, *, origin: str, time: str, entry: str | None, unit: str,
                     date_format: str | None, path: Path, min_exclusive: bool = True
                     ) -> tuple[np.ndarray, np.ndarray | None]:
    """(time (n,) float64, entry (n,) float64 or None): the end dates of column ``time`` and the entry dates
    of column ``entry`` minus the origin dates of column ``origin``, in ``unit`` (a key of ``TIME_UNITS``).

    Every row needs an origin and an end date (a missing end date is refused, not taken as censored) with the
    end after the origin (``min_exclusive``: time > 0, a Weibull model's log time) or on it (time 0, as a
    numeric time of 0 is for Cox: a death on the day of diagnosis); the entry column's checks against the time
    are left to the caller.
    """
    start = read_dates(table[origin], path=path, column=origin, date_format=date_format)
    end = read_dates(table[time], path=path, column=time, date_format=date_format)
    _refuse_missing(table[origin], start, path, origin, "origin date{s}",
                    "; every row needs the date its clock starts (--origin-col)")
    _refuse_missing(table[time], end, path, time, "end date{s}",
                    "; every row needs the date of its event or last follow-up (a missing end date is not taken "
                    "as censored)")
    _same_clock(start, end, path, origin, time)
    length = _US_PER_DAY * TIME_UNITS[unit]
    late = np.flatnonzero(end.us <= start.us if min_exclusive else end.us < start.us)
    if len(late):
        sign = "<=" if min_exclusive else "<"
        pairs = [f"{_show(e)} {sign} {_show(s)}" for e, s in zip(end.us[late[:SAMPLE]], start.us[late[:SAMPLE]])]
        sample = show_rows(row_numbers(table[time].index, late), pairs).replace("'", "")
        same = int((end.us[late] == start.us[late]).sum())
        raise DataError(f"{path}: column '{time}' has {plural(len(late), 'end date')} "
                        f"{'on or before' if min_exclusive else 'before'} the origin date in '{origin}' ({sample}); "
                        + ("every row needs follow-up time after its origin" if min_exclusive
                           else "an end cannot precede its origin")
                        + (f" (time > 0 for this model: {same} of them on the origin date)" if same else ""))
    times = (end.us - start.us) / length
    if entry is None:
        return times, None
    enter = read_dates(table[entry], path=path, column=entry, date_format=date_format)
    _refuse_missing(table[entry], enter, path, entry, "entry date{s}", "; every row needs the date it enters the "
                    "risk set (--entry-col)")
    _same_clock(start, enter, path, origin, entry)
    return times, (enter.us - start.us) / length


def read_dates(values: pd.Series, *, path: Path, column: str, date_format: str | None = None) -> Dates:
    """The dates of one column (see the module docstring); DataError naming the rows that hold no date, and
    for a column mixing timezone-aware and naive values."""
    dtype = values.dtype
    if isinstance(dtype, pd.DatetimeTZDtype):
        naive = values.dt.tz_convert("UTC").dt.tz_localize(None)
        return _from_datetime64(naive.to_numpy(dtype="datetime64[us]"), aware=True)
    if pd.api.types.is_datetime64_dtype(dtype):
        return _from_datetime64(values.to_numpy(dtype="datetime64[us]"), aware=False)
    if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
        what = "true/false values" if pd.api.types.is_bool_dtype(dtype) else "durations"
        raise DataError(f"{path}: column '{column}' holds {what}, not dates; with --origin-col the origin, time and "
                        "entry columns hold dates")
    codes, uniques = text_view(values, path=path, column=column)
    us = np.zeros(len(uniques), dtype=np.int64)
    missing, bad, aware = (np.zeros(len(uniques), dtype=bool) for _ in range(3))
    for k, value in enumerate(uniques):  # per distinct value, not per row
        try:
            parsed = _one_date(value, date_format)
        except ValueError:
            bad[k] = True
            continue
        if parsed is None:
            missing[k] = True
        else:
            us[k], aware[k] = parsed
    rows = np.flatnonzero(per_row(bad, codes, False))
    if len(rows):
        raise DataError(_not_dates(values, rows, uniques[codes[rows]], path, column, date_format))
    present = ~missing
    if aware[present].any() and not aware[present].all():
        raise DataError(f"{path}: column '{column}' mixes timezone-aware and naive datetimes "
                        f"({_both_kinds(values, codes, uniques, aware, present)}); give every value a UTC offset, "
                        "or none")
    return Dates(per_row(us, codes, 0), per_row(missing, codes, True),
                 bool(aware[present].any()) if present.any() else None)


def looks_like_dates(values: pd.Series) -> bool:
    """Whether a column holds dates: a date/time dtype, or mostly dates (:func:`mostly_dates`) among its first
    1,000 distinct values. For the advice to use --origin-col."""
    dtype = values.dtype
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return True
    if pd.api.types.is_numeric_dtype(dtype) and not isinstance(dtype, pd.CategoricalDtype):
        return False
    try:
        distinct = (values.cat.categories.to_numpy(dtype=object) if isinstance(dtype, pd.CategoricalDtype)
                    else pd.unique(values.dropna().to_numpy(dtype=object)))[:1000]
    except TypeError:  # nested values (lists): not dates; the number check says what they are
        return False
    return bool(mostly_dates(list(distinct)))


def mostly_dates(distinct: list[Any]) -> list[Any]:
    """The values of ``distinct`` that are dates (date cells, or text in ISO 8601, day/month/year order or
    2020/12/31) when they are at least 90% of them and 3 (or all of fewer), else []."""
    dated = [v for v in distinct if isinstance(v, dt.date) or (isinstance(v, str) and any(
        pattern.fullmatch(v.strip()) for pattern in (_ISO, _LOCAL, _YEAR_FIRST)))]
    return dated if distinct and len(dated) >= 0.9 * len(distinct) and len(dated) >= min(3, len(distinct)) else []


def refuse_dates_as_numbers(values: pd.Series, *, path: Path, column: str) -> None:
    """DataError when a column read as numbers (time, entry) holds dates (:func:`looks_like_dates`): the
    advice is ``--origin-col``, which makes times of them."""
    if looks_like_dates(values):
        present = np.flatnonzero(values.notna().to_numpy())[:3]
        shown = [_show_cell(values.iloc[k]) for k in present]
        raise DataError(f"{path}: column '{column}' holds dates, not numbers "
                        f"({show_rows(row_numbers(values.index, present), shown).replace(chr(39), '')}): name "
                        "the column of each subject's origin date (diagnosis, randomisation) with --origin-col, and "
                        "the time becomes the days from it (or --time-unit weeks, months, years); or convert the "
                        "column to a number")


def _one_date(value: Any, date_format: str | None) -> tuple[int, bool] | None:
    """(microseconds since 1970-01-01, aware) of one distinct cell; None when missing; ValueError when it holds
    no date."""
    if isinstance(value, np.datetime64):
        value = pd.Timestamp(value)
    if is_missing_text(value) or value is pd.NaT:
        return None
    if isinstance(value, dt.datetime):
        return _micros(value)
    if isinstance(value, dt.date):
        return (value - _EPOCH.date()).days * _US_PER_DAY, False
    if date_format is not None and isinstance(value, (int, float, np.integer, np.floating)) \
            and not isinstance(value, (bool, np.bool_)) and float(value).is_integer():
        value = str(int(value))  # 20201231 with --date-format %Y%m%d
    if not isinstance(value, str):
        raise ValueError(value)
    text = value.strip()
    if _ISO.fullmatch(text):
        return _micros(dt.datetime.fromisoformat(text))  # ValueError for 2020-02-30
    if date_format is not None:
        return _micros(dt.datetime.strptime(text, date_format))
    raise ValueError(text)


def _micros(moment: dt.datetime) -> tuple[int, bool]:
    """(microseconds since 1970-01-01, aware): an aware datetime in UTC."""
    aware = moment.tzinfo is not None and moment.utcoffset() is not None
    if aware:
        moment = moment.astimezone(dt.timezone.utc).replace(tzinfo=None)
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds, aware


def _from_datetime64(values: np.ndarray, aware: bool) -> Dates:
    missing = np.isnat(values)
    us = np.where(missing, 0, values.view(np.int64))
    return Dates(us, missing, aware if not missing.all() else None)


def _refuse_missing(values: pd.Series, dates: Dates, path: Path, column: str, what: str, hint: str) -> None:
    rows = np.flatnonzero(dates.missing)
    if len(rows):
        shown = show_rows(row_numbers(values.index, rows), values.iloc[rows[:SAMPLE]].tolist())
        phrase = what.format(s="" if len(rows) == 1 else "s")
        raise DataError(f"{path}: column '{column}' has {len(rows)} missing {phrase} ({shown}){hint}")


def _same_clock(first: Dates, second: Dates, path: Path, one: str, other: str) -> None:
    """DataError when one column's values carry a timezone and the other's do not."""
    if first.aware is not None and second.aware is not None and first.aware != second.aware:
        aware, naive = (one, other) if first.aware else (other, one)
        raise DataError(f"{path}: column '{aware}' holds timezone-aware datetimes and column '{naive}' naive ones: "
                        "their difference is not known; give both a UTC offset, or neither")


def _show(us: int) -> str:
    """A date as ISO text, to the minute or second only where it has them."""
    return np.datetime_as_string(np.datetime64(int(us), "us"), unit="auto").replace("T", " ")


def _show_cell(value: Any) -> str:
    """A date cell as ISO text (``2020-01-31``, ``2020-01-31 14:05:00``), other cells as their text."""
    if isinstance(value, (dt.datetime, np.datetime64)):
        return str(pd.Timestamp(value)).removesuffix(" 00:00:00")
    return value.isoformat() if isinstance(value, dt.date) else str(value)


def _both_kinds(values: pd.Series, codes: np.ndarray, uniques: np.ndarray, aware: np.ndarray,
                present: np.ndarray) -> str:
    """``"row 1: '2020-01-01T10:00+01:00'; row 2: '2020-01-02'"``: the first aware and the first naive row."""
    shown = []
    for kind in (True, False):
        code = np.flatnonzero(present & (aware == kind))[0]
        row = int(np.flatnonzero(codes == code)[0])
        shown.append(show_rows(row_numbers(values.index, np.array([row])), [uniques[code]]))
    return "; ".join(shown)


def _not_dates(values: pd.Series, rows: np.ndarray, cells: np.ndarray, path: Path, column: str,
               date_format: str | None) -> str:
    """The message for rows of ``values`` that hold no date: numbers, dates in a local order, or other text."""
    sample = show_rows(row_numbers(values.index, rows), cells[:SAMPLE])
    head = f"{path}: column '{column}' has {plural(len(rows), 'value')} that {'is' if len(rows) == 1 else 'are'}"
    distinct = list(dict.fromkeys(cells.tolist()))
    if date_format is None and all(isinstance(v, str) and _LOCAL.fullmatch(v.strip()) for v in distinct):
        match = _LOCAL.fullmatch(distinct[0].strip())
        sep, year = match.group(2), "%Y" if len(match.group(4)) == 4 else "%y"
        clock = " %H:%M" + (":%S" if match.group(5) and match.group(5).count(":") == 2 else "") \
            if match.group(5) else ""
        day_first = any(int(_LOCAL.fullmatch(v.strip()).group(1)) > 12 for v in distinct)
        month_first = any(int(_LOCAL.fullmatch(v.strip()).group(3)) > 12 for v in distinct)
        order = ("day first" if day_first and not month_first else "month first" if month_first and not day_first
                 else "day or month first")
        return (f"{head} dates not in ISO 8601 ({sample}; {order}): pass --date-format with their spelling, "
                f"--date-format '%d{sep}%m{sep}{year}{clock}' (day first) or '%m{sep}%d{sep}{year}{clock}' (month "
                "first)")
    if date_format is None and all(as_number(v) is not None for v in distinct):
        return (f"{head} numbers, not dates ({sample}); with --origin-col the origin, time and entry columns hold "
                "dates: leave out --origin-col to read numbers as times (or --date-format %Y%m%d for dates written "
                "as 20201231)")
    spelling = f"in --date-format {date_format!r} or ISO 8601" if date_format else (
        "in ISO 8601 (2020-12-31, 2020-12-31 14:05); pass --date-format for another spelling, e.g. %d/%m/%Y")
    return f"{head} not {'a date' if len(rows) == 1 else 'dates'} {spelling} ({sample})"
