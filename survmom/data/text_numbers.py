"""Numbers held as text in a delimited file: parsed in Arrow as training parses text (:mod:`survmom.data.cells`).

A file read with a decimal comma (the semicolon-separated European spreadsheet export) may also group
thousands with points, as Excel writes them there: ``"1.234,5"`` is 1234.5. Such a value is read only in that
dialect, and only where the points group digits in threes (``"1.5"`` stays a non-number).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from survmom.data.cells import NA_LOWER, numbers_from_text

_NA_TEXT = pa.array(sorted(NA_LOWER), pa.string())
# A number written with a decimal comma, its thousands optionally grouped by points: 12, 1,5, 1.234,5, -1.234.567
_COMMA_NUMBER = r"^[-+]?(\d{1,3}(\.\d{3})+|\d+)(,\d+)?$"


def decimal_point(trimmed: pa.Array | pa.ChunkedArray, decimal: str) -> pa.Array | pa.ChunkedArray:
    """Text with ``decimal`` made ".": with a decimal comma, grouping points (1.234,5) dropped first."""
    if decimal == ",":
        trimmed = pc.utf8_trim_whitespace(trimmed)
        grouped = pc.fill_null(pc.match_substring_regex(trimmed, _COMMA_NUMBER), False)
        trimmed = pc.if_else(grouped, pc.replace_substring(trimmed, ".", ""), trimmed)
    return pc.replace_substring(trimmed, decimal, ".") if decimal != "." else trimmed


def text_to_float(values: pa.Array | pa.ChunkedArray, *, path: Path, column: str, start: int, decimal: str = "."
                  ) -> pa.Array | pa.ChunkedArray:
    """A text column of a numeric feature as float64, read exactly as training reads text.

    Fast path in Arrow: surrounding whitespace trimmed, missing-value spellings (any case, e.g. ``" NA"``,
    ``"null"``, ``"   "``) made missing, the decimal comma (and its grouping points) made a point, then a
    strict cast. Where that cast refuses a value (Python's ``float`` accepts a little more, e.g. ``"1_000"``),
    the column is parsed by :func:`~survmom.data.cells.numbers_from_text`, which raises a DataError naming rows
    (from ``start``) and values that are not numbers.
    """
    text = values.cast(pa.string()) if not pa.types.is_string(values.type) else values
    trimmed = pc.utf8_trim_whitespace(text)
    missing = pc.is_in(pc.utf8_lower(trimmed), value_set=_NA_TEXT)
    try:
        number = decimal_point(pc.if_else(missing, pa.scalar(None, pa.string()), trimmed), decimal)
        return pc.cast(number, pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    series = pd.Series(decimal_point(trimmed, decimal).to_numpy(zero_copy_only=False),
                       index=pd.RangeIndex(start, start + len(text)), dtype=object)
    parsed = numbers_from_text(series, path=path, column=column, context="should be numeric but")
    return pa.array(parsed, pa.float64(), from_pandas=True)


def numbers_in_text_columns(table: pa.Table | pa.RecordBatch, columns: set[str], *, path: Path, start: int,
                            decimal: str = ".") -> pa.Table | pa.RecordBatch:
    """``table`` with its text columns among ``columns`` (numeric features read as text) made float64."""
    if not columns:
        return table
    arrays = []
    for name, values in zip(table.schema.names, table.columns, strict=True):
        if name in columns and (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
            values = text_to_float(values, path=path, column=name, start=start, decimal=decimal)
        arrays.append(values)
    return type(table).from_arrays(arrays, names=table.schema.names)


def grouped_comma_columns(table: pa.Table, skip: set[str]) -> set[str]:
    """Text columns (not in ``skip``) of a decimal-comma file whose every value is a number and at least one
    groups its thousands with points (``"1.234,5"``): pyarrow's own inference leaves them as text."""
    found = set()
    for name, values in zip(table.schema.names, table.columns, strict=True):
        if name in skip or not pa.types.is_string(values.type):
            continue
        trimmed = pc.drop_null(pc.utf8_trim_whitespace(values))
        trimmed = pc.filter(trimmed, pc.invert(pc.is_in(pc.utf8_lower(trimmed), value_set=_NA_TEXT)))
        if len(trimmed) and pc.all(pc.match_substring_regex(trimmed, _COMMA_NUMBER)).as_py() and \
                pc.any(pc.match_substring(trimmed, ".")).as_py():
            found.add(name)
    return found
