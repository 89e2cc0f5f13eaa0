"""The survival outcome: times and event indicators, validated with the rows and values of every problem."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from survmom.data.cells import FALSE_WORDS, TRUE_WORDS, as_float, is_missing_text, per_row, text_view
from survmom.data.messages import refuse_rows

_EVENT_HINT = "; use 1/0, true/false or yes/no (1 = event, 0 = censored)"


def parse_time(values: pd.Series, *, path: Path, column: str, min_exclusive: bool) -> np.ndarray:
    """Survival/censoring times, (n,) float64 in the file's time unit.

    Must be numeric (numbers stored as text are accepted when every value parses), finite, not missing and
    ``>= 0`` (``> 0`` when ``min_exclusive``, e.g. for Weibull models that take log(time)).
    """
    time = as_float(values, path=path, column=column)
    where = {"values": values, "path": path, "column": column, "shown": time}
    refuse_rows(mask=np.isnan(time), what="missing value{s}", **where)
    refuse_rows(mask=np.isinf(time), what="infinite value{s}", **where)
    if min_exclusive:
        refuse_rows(mask=time <= 0, what="value{s} <= 0", hint="; this model needs time > 0", **where)
    else:
        refuse_rows(mask=time < 0, what="negative value{s}", **where)
    return np.ascontiguousarray(time, dtype=np.float64)


def parse_event(values: pd.Series, *, path: Path, column: str) -> np.ndarray:
    """Event indicators, (n,) bool: True = event observed, False = censored.

    Accepts bool, 0/1 (int or float) and the text spellings true/false, yes/no, t/f, y/n, 1/0 (any case,
    surrounding whitespace ignored). Anything else, missing values included, raises a DataError.
    """
    where = {"values": values, "path": path, "column": column, "what": "invalid event value{s}"}
    if values.dtype == np.bool_:
        return values.to_numpy(dtype=bool, copy=True)
    if pd.api.types.is_numeric_dtype(values.dtype) and not isinstance(values.dtype, pd.CategoricalDtype):
        num = values.to_numpy(dtype=np.float64, na_value=np.nan)
        refuse_rows(mask=~((num == 0) | (num == 1)), shown=num, hint=_EVENT_HINT, **where)
        return num == 1
    codes, uniques = text_view(values, path=path, column=column)
    flags = per_row(_bool_codes(uniques), codes, -1)
    refuse_rows(mask=flags < 0, shown=per_row(uniques, codes, None), hint=_EVENT_HINT, **where)
    return flags == 1


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
