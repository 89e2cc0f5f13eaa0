"""Pieces of the one-line error and warning messages of the data layer (the bottom of the package).

Messages name the file, the column and a sample of offending values with their 1-based data row numbers
(the header row is not counted), e.g. ``"d.csv: column 'age' has 2 negative values (rows 4, 17: -1.0, -3.5)"``.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from survmom.errors import DataError

SAMPLE = 5  # offending rows and values shown in a message


def show_value(value: Any) -> str:
    """A short printable form of one cell value: ``<missing>``, ``1.5``, ``7`` or a quoted, shortened text."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return "<missing>"
    if isinstance(value, (np.floating, float)):
        return repr(float(value))
    if isinstance(value, (np.integer, int)) and not isinstance(value, bool):
        return str(int(value))
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def show_rows(rows: np.ndarray, values: Sequence[Any]) -> str:
    """``"rows 4, 17, 92: -1.0, -3.5, -0.2"``: the first few 1-based row numbers and their values."""
    more = ", ..." if len(rows) > SAMPLE else ""
    shown_rows = ", ".join(str(int(r)) for r in rows[:SAMPLE])
    shown_values = ", ".join(show_value(v) for v in list(values)[:SAMPLE])
    word = "row" if len(rows) == 1 else "rows"
    return f"{word} {shown_rows}{more}: {shown_values}{more}"


def row_numbers(index: pd.Index, positions: np.ndarray) -> np.ndarray:
    """1-based data row numbers of ``positions``: from an integer index (readers set one), else positional."""
    if pd.api.types.is_integer_dtype(index.dtype):
        return np.asarray(index.take(positions), dtype=np.int64) + 1
    return np.asarray(positions, dtype=np.int64) + 1


def sample_rows(values: pd.Series, positions: np.ndarray) -> str:
    """``"rows 4, 17: 1e+300, -1e+300"``: the 1-based data row numbers and values of ``values`` at ``positions``."""
    positions = np.asarray(positions)
    return show_rows(row_numbers(values.index, positions), values.iloc[positions[:SAMPLE]].tolist())


def quote_list(names: Sequence[str], limit: int = 10) -> str:
    """``"'a', 'b', ... (12 in all)"``."""
    shown = ", ".join(f"'{n}'" for n in list(names)[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def first_line(exc: BaseException) -> str:
    """First line of an exception message, shortened for a one-line error."""
    lines = str(exc).strip().splitlines()
    first = lines[0] if lines else type(exc).__name__
    return first if len(first) <= 200 else first[:197] + "..."


def plural(count: int, word: str) -> str:
    """``"1 row"``, ``"2 rows"``."""
    return f"{count} {word}" + ("" if count == 1 else "s")


def column_phrase(column: str, context: str) -> str:
    """``"column 'x'"`` followed by ``context`` (e.g. "should be numeric but") when there is one."""
    return f"column '{column}'" + (f" {context}" if context else "")


def refuse_rows(
    values: pd.Series, mask: np.ndarray, *, path: Path, column: str, what: str, shown: np.ndarray, hint: str = ""
) -> None:
    """Raise a DataError if ``mask`` (n,) marks any row of ``values``: count, row numbers and ``shown`` values.

    ``what`` is a noun phrase with ``{s}`` where the plural "s" goes, e.g. ``"negative value{s}"``.
    """
    pos = np.flatnonzero(mask)
    if len(pos):
        sample = show_rows(row_numbers(values.index, pos), shown[pos[:SAMPLE]])
        phrase = what.format(s="" if len(pos) == 1 else "s")
        if list(pos) == [0] and values.index[0] == 0 and len(values) > 1 and isinstance(shown[0], str):
            hint += "; it is the first row under the header: a row of units or labels? delete it"
        raise DataError(f"{path}: column '{column}' has {len(pos)} {phrase} ({sample}){hint}")


def closest_name(name: str, available: Sequence[str]) -> str | None:
    """The name among ``available`` that ``name`` most likely means: the same ignoring case and surrounding
    spaces, else the closest by :func:`difflib.get_close_matches`; None when none is close."""
    folded = {other.casefold().strip(): other for other in available}
    return folded.get(name.casefold().strip()) or next(iter(difflib.get_close_matches(name, available, 1)), None)


def renamed_hint(missing: Sequence[str], available: Sequence[str]) -> str:
    """``" ('age': the file has 'Age'; renamed?)"`` for the missing names that an available, otherwise unused
    name matches (:func:`closest_name`); "" when none does."""
    unused = [name for name in available if name not in set(missing)]
    close = {name: closest_name(name, unused) for name in missing}
    hints = [f"'{name}': the file has '{other}'" for name, other in close.items() if other][:SAMPLE]
    return f" ({'; '.join(hints)}; renamed?)" if hints else ""
