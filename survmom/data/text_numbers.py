"""Numbers held as text in a delimited file: parsed in Arrow as training parses text (:mod:`survmom.data.cells`).

A file read with a decimal comma (the semicolon-separated European spreadsheet export) may also group
thousands with points, as Excel writes them there: ``"1.234,5"`` is 1234.5. Such a value is read only in that
dialect, and only where the points group digits in threes (``"1.5"`` stays a non-number).

Where the first lines of a semicolon or tab file held whole numbers only (the decimal undecided there), a
column whose every value is a number with a decimal comma, at least one cell holding a comma, reads with that
comma (a first ``"1,5"`` after line 50 made the column categorical). A lone ``"."`` (SAS and Stata write it
for a missing number) is missing wherever a number is read, and a text column holding only numbers and ``"."``
reads as numbers.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from survmom.data.cells import DOT, NA_LOWER, numbers_from_text
from survmom.data.messages import first_line
from survmom.errors import DataError

_NA_TEXT = pa.array(sorted(NA_LOWER | {DOT}), pa.string())  # missing where a number is read
# A number written with a decimal comma, its thousands optionally grouped by points: 12, 1,5, 1.234,5, -1.234.567
_COMMA_NUMBER = r"^[-+]?(\d{1,3}(\.\d{3})+|\d+)(,\d+)?$"
# Where the decimal comma shows only after the first lines, no points: "12.345" may have been a decimal point there
_LATE_COMMA_NUMBER = r"^[-+]?\d+(,\d+)?$"


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
    """``table`` with its text columns among ``columns`` (numeric features read as text) made float64 (boolean
    where the text is only true/false: a 0/1 flag written TRUE/FALSE, which the preprocessor reads as 1/0)."""
    if not columns:
        return table
    arrays = []
    for name, values in zip(table.schema.names, table.columns, strict=True):
        if name in columns and (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
            try:
                values = text_to_float(values, path=path, column=name, start=start, decimal=decimal)
            except DataError:
                values = _true_false(values)  # TRUE/FALSE for a 0/1 flag: the preprocessor decides
                if values is None:
                    raise
        arrays.append(values)
    return type(table).from_arrays(arrays, names=table.schema.names)


def _true_false(values: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray | None:
    """A text column of only true/false (any case, missing allowed) as booleans, else None."""
    words = pc.utf8_lower(pc.utf8_trim_whitespace(values))
    words = pc.if_else(pc.is_in(words, value_set=_NA_TEXT), pa.scalar(None, pa.string()), words)
    if not pc.all(pc.is_in(pc.drop_null(words), value_set=pa.array(["true", "false"]))).as_py():
        return None
    return pc.equal(words, "true")


def text_columns_as_numbers(table: pa.Table | pa.RecordBatch, as_text: set[str], text: set[str], *, path: Path,
                            start: int, decimal: str, comma_later: bool) -> pa.Table | pa.RecordBatch:
    """``table`` with its numeric columns read as text (``as_text``) and its text columns that hold numbers made
    float64; columns in ``text`` (stated categorical or text) stay text.

    ``decimal`` is the file's; ``comma_later``: its first lines held no decimal point (see the module
    docstring). A text column is a number column when every value is a number in that file's writing and it
    has a cell pyarrow's inference could not read: Excel's ``"1.234,5"`` (decimal-comma files), a decimal
    comma (``comma_later``), or a lone ``"."``.
    """
    comma: set[str] = set()
    for name, values in zip(table.schema.names, table.columns, strict=True):
        if name in text or not pa.types.is_string(values.type):
            continue
        # cheap tests on the raw cells first: most text columns hold none of these characters
        if (decimal == "," and pc.any(pc.match_substring(values, ".")).as_py()) or \
                (comma_later and pc.any(pc.match_substring(values, ",")).as_py()):
            trimmed = pc.drop_null(pc.utf8_trim_whitespace(values))
            given = pc.filter(trimmed, pc.invert(pc.is_in(pc.utf8_lower(trimmed), value_set=_NA_TEXT)))
            pattern = _COMMA_NUMBER if decimal == "," else _LATE_COMMA_NUMBER
            if len(given) and pc.all(pc.match_substring_regex(given, pattern)).as_py():
                (as_text if decimal == "," else comma).add(name)
                continue
        if name not in as_text and pc.any(pc.match_substring(values, DOT)).as_py() and \
                pc.any(pc.equal(pc.utf8_trim_whitespace(values), DOT)).as_py():
            try:
                text_to_float(values, path=path, column=name, start=start, decimal=decimal)
            except DataError:
                continue
            as_text.add(name)
    table = numbers_in_text_columns(table, as_text - comma, path=path, start=start, decimal=decimal)
    return numbers_in_text_columns(table, comma, path=path, start=start, decimal=",")


def unconverted(exc: BaseException, names: list[str], numeric: list[str], as_text: set[str]) -> list[str]:
    """Numeric columns to read as text after pyarrow failed to convert one to float64 (``exc``); [] if none.

    pyarrow names the column by its position in the file; without one, every numeric column not yet read as
    text is.
    """
    reason = first_line(exc)
    if "conversion error" not in reason:
        return []
    match = re.search(r"In CSV column #(\d+): CSV conversion error", reason)
    if match and int(match.group(1)) < len(names):
        name = names[int(match.group(1))]
        return [name] if name in numeric and name not in as_text else []
    return [c for c in numeric if c not in as_text]
