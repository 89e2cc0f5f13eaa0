"""The columns of a study design: entry times, case weights, strata, and the intervals of one subject.

- **entry** (``--entry-col``): the time a row enters the risk set (delayed entry / left truncation, or the
  start of a counting-process row); the row is at risk on ``(entry, time]``, so ``entry < time`` in every row.
- **weight** (``--weight-col``): case weights, finite and ``>= 0`` (lifelines' ``weights_col``).
- **strata** (``--strata a,b``): the combination of the values of one or more columns. Each column's values
  are labels (:func:`~survmom.data.cells.label`: ``1``, ``1.0`` and ``"1"`` are one level); a missing value is
  refused (a row without a stratum has no baseline hazard). Levels are kept as sorted tuples of labels and
  coded 0..S-1 in that order.
- **intervals** (``--entry-col`` with ``--id-col``): rows of one subject (same id) are counting-process
  intervals ``(entry, time]`` that must not overlap (Andersen & Gill 1982; Therneau & Grambsch 2000, ch. 3).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from survmom.data.cells import DOT, as_float, label, lookup_labels, text_view, whole_number_key
from survmom.data.dates import refuse_dates_as_numbers
from survmom.data.messages import SAMPLE, plural, quote_list, refuse_rows, row_numbers, show_rows, show_value
from survmom.errors import DataError


def parse_entry(values: pd.Series, time: np.ndarray, *, path: Path, column: str, time_column: str,
                nonnegative: bool = False) -> np.ndarray:
    """Entry times (n,) float64, same unit as ``time`` (n,): numeric, finite, not missing, ``< time`` per row
    (``>= 0`` too when ``nonnegative``, as a Weibull model's log S(entry) needs)."""
    refuse_dates_as_numbers(values, path=path, column=column)
    entry = as_float(values, path=path, column=column)
    where = {"values": values, "path": path, "column": column, "shown": entry}
    refuse_rows(mask=np.isnan(entry), what="missing value{s}", **where)
    refuse_rows(mask=np.isinf(entry), what="infinite value{s}", **where)
    if nonnegative:
        refuse_rows(mask=entry < 0, what="negative value{s}", hint="; a weibull model needs entry times >= 0",
                    **where)
    late = np.flatnonzero(entry >= time)
    if len(late):
        pairs = [f"{show_value(float(a))} >= {show_value(float(b))}" for a, b in zip(entry[late], time[late])]
        sample = show_rows(row_numbers(values.index, late), pairs).replace("'", "")
        zero = int(np.count_nonzero(entry[late] == time[late]))
        same = (f"; zero-length rows (entry = time: {plural(zero, 'row')}) hold no time at risk: drop them, or move "
                "an event's entry back (e.g. by half a time unit)" if zero else "")
        raise DataError(f"{path}: column '{column}' has {len(late)} entry time(s) at or after the time in "
                        f"'{time_column}' ({sample}); a row is at risk on (entry, time], so entry < time{same}")
    return np.ascontiguousarray(entry, dtype=np.float64)


def parse_weight(values: pd.Series, *, path: Path, column: str) -> np.ndarray:
    """Case weights (n,) float64: numeric, finite, not missing, ``>= 0``, not all zero."""
    weight = as_float(values, path=path, column=column)
    where = {"values": values, "path": path, "column": column, "shown": weight}
    refuse_rows(mask=np.isnan(weight), what="missing weight{s}", **where)
    refuse_rows(mask=np.isinf(weight), what="infinite weight{s}", **where)
    refuse_rows(mask=weight < 0, what="negative weight{s}", hint="; case weights must be >= 0", **where)
    if len(weight) and not (weight > 0).any():
        raise DataError(f"{path}: column '{column}' has weight 0 in every row; at least one row needs a "
                        "positive weight")
    return np.ascontiguousarray(weight, dtype=np.float64)


def stratum_keys(table: pd.DataFrame, columns: Sequence[str], *, path: Path) -> tuple[np.ndarray, list[tuple]]:
    """(per-row index (n,) int64 into the keys, the distinct keys): a key is the tuple of labels of ``columns``.

    A missing value in a stratum column is a DataError naming the column and rows.
    """
    labels = []
    for column in columns:
        values = table[column]
        codes, uniques = text_view(values, path=path, column=column)
        # "." is SAS's and Stata's missing number: a missing stratum, not a stratum named "."
        texts = np.array([None if (text := label(value, False)) == DOT else text for value in uniques] + [None],
                         dtype=object)
        per_row = texts[codes]  # code -1 (missing) picks the trailing None
        refuse_rows(values, mask=pd.isna(per_row), path=path, column=column, what="missing value{s}",
                    shown=values.to_numpy(dtype=object), hint="; every row needs a stratum")
        labels.append(per_row)
    if not labels:
        return np.zeros(len(table), dtype=np.int64), [()]
    index, keys = pd.MultiIndex.from_arrays(labels).factorize()
    return index.astype(np.int64), [tuple(map(str, key)) if isinstance(key, tuple) else (str(key),)
                                    for key in keys]


def fit_strata(table: pd.DataFrame, columns: Sequence[str], *, path: Path) -> tuple[np.ndarray, list[tuple]]:
    """(codes (n,) int64 in 0..S-1, levels): the strata of a training file, levels sorted."""
    index, keys = stratum_keys(table, columns, path=path)
    order = sorted(range(len(keys)), key=lambda k: keys[k])
    code_of_key = np.empty(len(keys), dtype=np.int64)
    code_of_key[order] = np.arange(len(keys))
    return code_of_key[index], [keys[k] for k in order]


def apply_strata(table: pd.DataFrame, columns: Sequence[str], levels: Sequence[Sequence[str]], *,
                 path: Path) -> np.ndarray:
    """Codes (n,) int64 of the saved ``levels`` (from :func:`fit_strata`); a stratum not among them is a
    DataError naming the value(s), the column(s) and rows."""
    index, keys = stratum_keys(table, columns, path=path)
    codes = lookup_labels([tuple(key) for key in keys], [tuple(level) for level in levels],
                          key=lambda level: tuple(map(whole_number_key, level)))  # "2.0" is the stratum "2"
    unseen = np.flatnonzero(codes < 0)
    if len(unseen):
        rows = np.flatnonzero(np.isin(index, unseen))
        shown = ", ".join(describe_stratum(columns, keys[k]) for k in unseen[:SAMPLE])
        numbers = ", ".join(str(r) for r in row_numbers(table.index, rows[:SAMPLE]))
        raise DataError(f"{path}: {len(unseen)} stratum value(s) the model was not trained on in column(s) "
                        f"{quote_list(list(columns))}: {shown} ({'row' if len(rows) == 1 else 'rows'} {numbers}"
                        f"{', ...' if len(rows) > SAMPLE else ''}); a stratified model has baselines for "
                        f"{describe_levels(columns, levels)} only")
    return codes[index]


def describe_stratum(columns: Sequence[str], level: Sequence[str]) -> str:
    """``"sex='F', centre='2'"``: one stratum for a message."""
    return ", ".join(f"{column}={value!r}" for column, value in zip(columns, level))


def describe_levels(columns: Sequence[str], levels: Sequence[Sequence[str]], limit: int = 5) -> str:
    """The first ``limit`` strata, ``"(sex='F'), (sex='M')"``, with a count of the rest."""
    shown = ", ".join(f"({describe_stratum(columns, level)})" for level in list(levels)[:limit])
    return shown + (f" and {len(levels) - limit} more" if len(levels) > limit else "")


def check_intervals(ids: pd.Series, entry: np.ndarray, time: np.ndarray, *, path: Path, column: str) -> None:
    """DataError if two rows with the same id (``column``) have overlapping intervals ``(entry, time]``.

    Sorted by (id, entry), any overlap shows between neighbours: the row after a row starts before it ends.
    Rows without an id are separate subjects.
    """
    codes, uniques = text_view(ids, path=path, column=column)
    order = np.lexsort((time, entry, codes))
    same = (codes[order][1:] == codes[order][:-1]) & (codes[order][1:] >= 0)
    overlap = np.flatnonzero(same & (entry[order][1:] < time[order][:-1]))
    if not len(overlap):
        return
    first, second = order[overlap[0]], order[overlap[0] + 1]
    subjects = len(np.unique(codes[order][overlap]))
    rows = row_numbers(ids.index, np.array([first, second]))
    raise DataError(
        f"{path}: id {show_value(uniques[codes[first]])} in column '{column}' has overlapping intervals: row "
        f"{rows[0]} ({show_value(float(entry[first]))}, {show_value(float(time[first]))}] and row {rows[1]} "
        f"({show_value(float(entry[second]))}, {show_value(float(time[second]))}]"
        + (f" ({subjects} ids in all)" if subjects > 1 else "")
        + "; the intervals (entry, time] of one subject must not overlap")


def interval_warnings(ids: pd.Series, event: np.ndarray, *, path: Path, column: str) -> list[str]:
    """Warnings about counting-process rows (``--entry-col`` with ``--id-col``): rows without an id (not joined
    to any subject's other intervals), and an event flag on every row of every subject that has several rows and
    an event (at least 5 subjects): the subject's status copied onto each interval, which makes every earlier
    interval end in an event. Recurrent events put events on several rows, but not on all rows of all subjects."""
    codes, uniques = text_view(ids, path=path, column=column)
    warnings = []
    missing = np.flatnonzero(codes < 0)
    if len(missing):
        rows = ", ".join(str(r) for r in row_numbers(ids.index, missing[:SAMPLE]))
        have = "row has" if len(missing) == 1 else "rows have"
        warnings.append(f"{path}: {len(missing):,} {have} no id in column "
                        f"'{column}' (row{'s' if len(missing) > 1 else ''} {rows}"
                        f"{', ...' if len(missing) > SAMPLE else ''}): each is taken as a subject of its own, its "
                        "interval not joined to others")
    known = codes >= 0
    count = np.bincount(codes[known], minlength=len(uniques))
    events = np.bincount(codes[known], weights=event[known].astype(np.float64), minlength=len(uniques))
    several = (count > 1) & (events > 0)
    if several.sum() >= 5 and np.all(events[several] == count[several]):
        first = int(np.flatnonzero(several)[0])
        rows = ", ".join(str(r) for r in row_numbers(ids.index, np.flatnonzero(codes == first)[:SAMPLE]))
        warnings.append(
            f"{path}: all {int(several.sum()):,} subjects in column '{column}' with several rows and an event have "
            f"the event on every one of their rows (id {show_value(uniques[first])}: rows {rows}); --event-col "
            "marks the interval that ends in the event, so with a terminal event (death) only a subject's last "
            "interval has it: a subject's status copied onto each row makes every earlier interval an event "
            "(fine for recurrent events)")
    return warnings


def subject_codes(ids: pd.Series, *, path: Path, column: str) -> np.ndarray | None:
    """Subject codes (n,) int64 (rows with the same id share one; rows without an id get their own), or None
    when no id is on more than one row."""
    codes, _ = text_view(ids, path=path, column=column)
    missing = codes < 0
    codes = codes.copy()
    codes[missing] = codes.max(initial=-1) + 1 + np.arange(int(missing.sum()))
    return None if len(np.unique(codes)) == len(codes) else codes
