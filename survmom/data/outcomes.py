"""The survival outcome: times and event indicators, validated with the rows and values of every problem."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from survmom.data.cells import FALSE_WORDS, TRUE_WORDS, as_float, as_number, is_missing_text, per_row, text_view
from survmom.data.dates import refuse_dates_as_numbers
from survmom.data.messages import refuse_rows
from survmom.errors import DataError

_EVENT_HINT = "; use 1/0, true/false or yes/no (1 = event, 0 = censored)"


def parse_time(values: pd.Series, *, path: Path, column: str, min_exclusive: bool,
               entry_column: str | None = None) -> np.ndarray:
    """Survival/censoring times, (n,) float64 in the file's time unit.

    Must be numeric (numbers stored as text are accepted when every value parses), finite, not missing and
    ``>= 0`` (``> 0`` when ``min_exclusive``, e.g. for Weibull models that take log(time)). Dates are refused
    with the advice to name an origin column (times from dates: :mod:`~survmom.data.dates`). With an
    ``entry_column``, negative times are refused with the advice to shift the time scale.
    """
    refuse_dates_as_numbers(values, path=path, column=column)
    time = as_float(values, path=path, column=column)
    where = {"values": values, "path": path, "column": column, "shown": time}
    refuse_rows(mask=np.isnan(time), what="missing value{s}", **where)
    refuse_rows(mask=np.isinf(time), what="infinite value{s}", **where)
    if min_exclusive:
        refuse_rows(mask=time <= 0, what="value{s} <= 0", hint="; this model needs time > 0", **where)
    else:
        shift = "" if entry_column is None else (
            f"; time counts from the origin (0), so it is >= 0: add one constant to the time and the entry column "
            f"('{entry_column}') to start the time scale at 0 or later (a Cox fit with entry times does not change)")
        refuse_rows(mask=time < 0, what="negative value{s}", hint=shift, **where)
    return np.ascontiguousarray(time, dtype=np.float64)


def parse_event(values: pd.Series, *, path: Path, column: str, event_value: str | None = None,
                trained: bool = False) -> np.ndarray:
    """Event indicators, (n,) bool: True = event observed, False = censored.

    Accepts bool, 0/1 (int or float) and the text spellings true/false, yes/no, t/f, y/n, 1/0 (any case,
    surrounding whitespace ignored). Anything else, missing values included, raises a DataError.
    ``event_value`` (``--event-value``): the value that means an event instead (R's ``Surv(time, status == 2)``:
    "2"; or a word such as "dead"); every other value is censored, a missing value is an error, and so is a
    column where no row holds it. ``trained``: the coding is a saved model's (evaluate, explain, the plots, which
    have no ``--event-value``), so the advice is to recode the file rather than to pass the option.
    """
    where = {"values": values, "path": path, "column": column, "what": "invalid event value{s}"}
    if event_value is not None:
        return _event_is(values, event_value, where, trained)
    if values.dtype == np.bool_:
        return values.to_numpy(dtype=bool, copy=True)
    if pd.api.types.is_numeric_dtype(values.dtype) and not isinstance(values.dtype, pd.CategoricalDtype):
        num = values.to_numpy(dtype=np.float64, na_value=np.nan)
        bad = ~((num == 0) | (num == 1))
        refuse_rows(mask=bad, shown=num, **_event_problem(where, np.isnan(num[bad]).all(),
                                                         np.unique(num[~np.isnan(num)]), trained))
        return num == 1
    codes, uniques = text_view(values, path=path, column=column)
    flags = per_row(_bool_codes(uniques), codes, -1)
    missing = per_row(np.array([is_missing_text(v) for v in uniques], dtype=bool), codes, True)
    refuse_rows(mask=flags < 0, shown=per_row(uniques, codes, None),
                **_event_problem(where, missing[flags < 0].all(), uniques, trained))
    return flags == 1


def _event_problem(where: dict, only_missing: bool, uniques: np.ndarray, trained: bool) -> dict:
    """``where`` with what is wrong and the advice: missing flags (nothing to recode), or unrecognised values."""
    if only_missing:
        return {**where, "what": "missing event value{s}", "hint": "; every row needs one (1 = event, 0 = censored)"}
    return {**where, "hint": _event_hint(uniques, trained, where["column"])}


MAX_CAUSES = 10  # more codes than this in an event column are not kinds of event


def _event_hint(uniques: np.ndarray, trained: bool, column: str) -> str:
    """The advice for unrecognised event values; R's coding (1 censored, 2 event) and competing causes (0
    censored, 1, 2, ... one code per kind of event) get their own."""
    numbers = {as_number(value) for value in uniques if not is_missing_text(value)}
    r_coding = numbers == {1.0, 2.0}
    if None not in numbers and len(numbers) > MAX_CAUSES + 1:  # a time or a count (interval bounds, swapped columns)
        advice = (f"this model reads its event column '{column}' as 1/0, true/false or yes/no: are the time and "
                  "event columns swapped?" if trained else "--event-col names the column of 1/0, true/false or "
                  "yes/no (1 = event, 0 = censored), --time-col the time")
        return (f"; it holds {len(numbers)} different numbers ({min(numbers):g} to {max(numbers):g}): a time or a "
                f"count, not an event flag? {advice}")
    causes = (None not in numbers and 0.0 in numbers and len(numbers) >= 3
              and all(float(v).is_integer() and v >= 0 for v in numbers))
    if causes:
        listed = ", ".join(f"{v:g}" for v in sorted(numbers) if v > 0)
        recode = "recode the column to 1/0 for one cause" if trained else "train with --event-value 1"
        return ("; 0 = censored and codes " + listed + " for different events (competing risks)? survmom models one "
                f"event: {recode} (the other causes then count as censored: a cause-specific hazard model), one "
                "model per cause")
    if trained:
        recode = "recode the column (R's coding: 2 -> 1, 1 -> 0)" if r_coding else "recode the column"
        return ("; this model reads 1/0, true/false or yes/no (1 = event, 0 = censored), as in its training file: "
                f"{recode}, or train a model with --event-value")
    if r_coding:
        return (_EVENT_HINT + "; with R's coding (1 = censored, 2 = event) pass --event-value 2")
    return _EVENT_HINT + ", or name the value meaning an event with --event-value (e.g. --event-value dead)"


def _event_is(values: pd.Series, event_value: str, where: dict, trained: bool) -> np.ndarray:
    """Rows equal to ``event_value``: as numbers where both are numbers (2 = "2.0"), else as text ignoring case
    and surrounding spaces. Missing values are refused; so is a column where no row holds the value."""
    target_number, target_word = as_number(event_value), str(event_value).strip().lower()
    codes, uniques = text_view(values, path=where["path"], column=where["column"])
    matches = np.array([_bool_is(v, target_word) if isinstance(v, (bool, np.bool_))
                        else (as_number(v) is not None and as_number(v) == target_number)
                        or (isinstance(v, str) and v.strip().lower() == target_word) for v in uniques], dtype=bool)
    missing = np.array([is_missing_text(v) for v in uniques], dtype=bool)
    shown = per_row(uniques, codes, None)
    refuse_rows(mask=per_row(missing, codes, True), shown=shown,
                **{**where, "what": "missing event value{s}"})
    event = per_row(matches, codes, False)
    if not event.any():
        present = ", ".join(repr(v) for v in list(dict.fromkeys(u for u in uniques if u is not None))[:5])
        option = "the model was trained with (train's --event-value)" if trained else "(--event-value)"
        raise DataError(f"{where['path']}: no row of column '{where['column']}' holds the event value "
                        f"{event_value!r} {option}; its values are {present}")
    return np.asarray(event, dtype=bool)


def _bool_is(value: bool | np.bool_, word: str) -> bool:
    """Whether a boolean cell is the event value ``word``: True is "true"/"yes"/"1"..., False "false"/"no"/"0"..."""
    return word in (TRUE_WORDS if value else FALSE_WORDS)


def _bool_codes(uniques: np.ndarray) -> np.ndarray:
    """Per unique value: 1 true, 0 false, -1 not a recognised spelling (missing counts as not recognised)."""
    out = np.full(len(uniques), -1, dtype=np.int8)
    for k, value in enumerate(uniques):
        if isinstance(value, (bool, np.bool_)):
            out[k] = int(value)
        elif isinstance(value, (int, float, np.integer, np.floating)) and not is_missing_text(value):
            out[k] = int(value) if value in (0, 1) else -1
        elif isinstance(value, str):
            word = value.strip().lower()
            out[k] = 1 if word in TRUE_WORDS else 0 if word in FALSE_WORDS else -1
    return out
