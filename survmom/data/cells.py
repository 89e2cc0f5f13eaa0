"""What a cell means, read one way everywhere: missing-value spellings, numbers in text, true/false words,
category labels. Works per distinct value (pandas factorize), never per row.

A lone ``"."`` (SAS's and Stata's missing number) is missing where a number is read (:func:`parse_numbers`), and
a label elsewhere: a text column holding only numbers and ``"."`` is read as numbers
(:mod:`~survmom.data.text_numbers`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from survmom.data.messages import SAMPLE, column_phrase, plural, row_numbers, show_rows
from survmom.errors import DataError

# Missing in every reader; "#N/A" is Excel's (a failed lookup, exported as text)
NA_MARKERS = ("", "NA", "N/A", "#N/A", "NaN", "nan", "null", "NULL", "None")
NA_LOWER = frozenset(m.lower() for m in NA_MARKERS)  # missing in text, any case and surrounding whitespace
TRUE_WORDS = frozenset({"true", "yes", "1", "t", "y", "1.0"})
DOT = "."  # SAS's and Stata's missing number: missing where a number is read, not in text
FALSE_WORDS = frozenset({"false", "no", "0", "f", "n", "0.0"})


def is_missing_text(value: Any) -> bool:
    """None, NA, NaN, or text that is one of :data:`NA_MARKERS` in any case with any surrounding whitespace."""
    if value is None or value is pd.NA:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip().lower() in NA_LOWER


_WHOLE_NUMBER = re.compile(r"^([+-]?\d+)\.0+$")


def whole_number_key(text: str) -> str:
    """A label as a whole number is written without a zero fraction: ``"2.0"`` -> ``"2"`` (pandas writes a code
    column holding a missing value as floats), other text unchanged. For matching labels only: a model's
    categories and strata are kept as training wrote them."""
    match = _WHOLE_NUMBER.match(text)
    return match.group(1) if match else text


def lookup_labels(labels: Sequence[Any], known: Sequence[Any], key: Callable[[Any], Any] = whole_number_key
                  ) -> np.ndarray:
    """(len(labels),) int64: each label's position in ``known`` (None and unknown labels: -1). A label not in
    ``known`` matches the one known label with the same ``key`` (``"2.0"`` and ``"2"``), if exactly one has it."""
    exact = {value: i for i, value in enumerate(known)}
    found = np.array([exact.get(value, -1) if value is not None else -1 for value in labels], dtype=np.int64)
    loose = [k for k, value in enumerate(labels) if found[k] < 0 and value is not None]
    if loose:
        by_key: dict[Any, int] = {}
        for i, value in enumerate(known):
            by_key[key(value)] = -1 if key(value) in by_key else i
        for k in loose:
            found[k] = by_key.get(key(labels[k]), -1)
    return found


def per_row(per_unique: np.ndarray, codes: np.ndarray, missing: Any) -> np.ndarray:
    """Expand a per-unique-value array to rows; rows with code -1 get ``missing``."""
    return np.append(per_unique, np.array([missing], dtype=per_unique.dtype))[codes]


def as_number(value: object) -> float | None:
    """``value`` as a float when it is a number or a number's text ("2", " 2.0 "), else None."""
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, (int, float, np.integer, np.floating)):
        return None if is_missing_text(value) else float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        return None


def parses_as_float(text: str) -> bool:
    """Whether Python's ``float`` reads ``text``."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def parse_numbers(uniques: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(numbers, not numbers) per distinct cell value: float64 (NaN for missing) and a bool mask of refusals.

    The one definition of what a numeric column may hold as text, used by training and by every reader:
    missing-value spellings in any case with any surrounding whitespace (``" NA"``, ``"null"``, ``"   "``)
    and a lone :data:`DOT` are missing; anything Python's ``float`` reads (surrounding whitespace ignored) is a number.
    """
    parsed = np.full(len(uniques), np.nan)
    bad = np.zeros(len(uniques), dtype=bool)
    for k, value in enumerate(uniques):  # per distinct value, not per row
        if is_missing_text(value) or (isinstance(value, str) and value.strip() == DOT):
            continue
        if isinstance(value, (bool, np.bool_)):
            bad[k] = True
            continue
        try:
            parsed[k] = float(value.strip() if isinstance(value, str) else value)
        except (TypeError, ValueError):
            bad[k] = True
    return parsed, bad


def text_view(values: pd.Series, *, path: Path, column: str) -> tuple[np.ndarray, np.ndarray]:
    """(codes (n,) int64 with -1 for missing, unique values) of any column, without per-row Python.

    Raises DataError for a column of nested values (lists, structs, maps: unhashable cells).
    """
    if isinstance(values.dtype, pd.CategoricalDtype):
        return values.cat.codes.to_numpy(dtype=np.int64), np.asarray(values.cat.categories, dtype=object)
    try:
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
    except TypeError:
        nested = _nested_error(values, path, column)
        if nested is None:
            raise
        raise nested from None
    return codes.astype(np.int64, copy=False), np.asarray(uniques, dtype=object)


def _nested_error(values: pd.Series, path: Path, column: str) -> DataError | None:
    """DataError showing the first cells of ``values`` that are nested (unhashable); None if there are none."""
    positions: list[int] = []
    for i, value in enumerate(values.array):  # error path only
        try:
            hash(value)
        except TypeError:
            positions.append(i)
            if len(positions) > SAMPLE:
                break
    if not positions:
        return None
    sample = show_rows(row_numbers(values.index, np.asarray(positions)), [values.array[i] for i in positions])
    return DataError(
        f"{path}: column '{column}' holds nested values (lists, structs or maps: {sample}); nested/list columns "
        f"are not supported: flatten it into one column per value, or --exclude it"
    )


def numbers_from_text(values: pd.Series, *, path: Path, column: str, context: str) -> np.ndarray:
    """(n,) float64 from a text/object/categorical column; DataError listing values that are not numbers."""
    codes, uniques = text_view(values, path=path, column=column)
    parsed, bad = parse_numbers(uniques)
    bad_rows = np.flatnonzero(per_row(bad, codes, False))
    if len(bad_rows):
        sample = show_rows(row_numbers(values.index, bad_rows), uniques[codes[bad_rows[:SAMPLE]]])
        raise DataError(
            f"{path}: {column_phrase(column, context)} has {plural(len(bad_rows), 'non-numeric value')} "
            f"({sample}){_comma_hint(uniques[bad])}"
        )
    return per_row(parsed, codes, np.nan)


_COMMA_WRITTEN = re.compile(r"\s*[-+]?(\d+,\d+|\d{1,3}(,\d{3})+(\.\d+)?)\s*")  # 1,5 or 1,234.5


def _comma_hint(refused: np.ndarray) -> str:
    """Advice when every refused value is a number written with a comma (a decimal comma, or thousands
    separators: "1,234" may be either); else ""."""
    if len(refused) and all(isinstance(v, str) and _COMMA_WRITTEN.fullmatch(v) for v in refused):
        return ("; numbers written with decimal commas or thousands separators: write them with '.' as the decimal "
                "point and no separators (a semicolon-separated file reads decimal commas)")
    return ""


def as_float(values: pd.Series, *, path: Path, column: str, context: str = "") -> np.ndarray:
    """(n,) float64 with NaN for missing; numeric dtypes directly, text parsed (DataError on non-numbers)."""
    dtype = values.dtype
    if pd.api.types.is_bool_dtype(dtype):
        raise DataError(f"{path}: {column_phrase(column, context)} holds true/false values, not numbers")
    if pd.api.types.is_numeric_dtype(dtype) and not isinstance(dtype, pd.CategoricalDtype):
        if isinstance(dtype, np.dtype):
            return values.to_numpy(dtype=np.float64, copy=False)
        return values.to_numpy(dtype=np.float64, na_value=np.nan)
    if pd.api.types.is_timedelta64_dtype(dtype):
        raise DataError(f"{path}: {column_phrase(column, context)} holds durations, not numbers; convert it to a "
                        "number in the unit you mean (e.g. days: its total seconds / 86400)")
    if pd.api.types.is_datetime64_any_dtype(dtype):
        raise DataError(f"{path}: {column_phrase(column, context)} holds dates/times, not numbers; convert it to a "
                        "number (e.g. days since a reference date, or follow-up days as exit date - entry date)")
    return numbers_from_text(values, path=path, column=column, context=context)


def label(value: Any, boolean: bool) -> str | None:
    """Category label of a cell (None = missing): stripped text, ints without ".0", "True"/"False"."""
    if is_missing_text(value):
        return None
    if isinstance(value, (bool, np.bool_)):
        return "True" if value else "False"
    if boolean:
        word = str(value).strip().lower()
        if word in TRUE_WORDS:
            return "True"
        if word in FALSE_WORDS:
            return "False"
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    text = str(value).strip()
    return text or None
