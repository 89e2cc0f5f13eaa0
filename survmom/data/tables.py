"""What every file reader shares: header names, column selection, and Arrow tables made pandas frames."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from survmom.data.messages import SAMPLE, plural, quote_list, show_rows
from survmom.errors import ConfigError, DataError

# The pandas index columns that ``DataFrame.to_parquet``/``to_feather`` may add: not data columns.
INDEX_COLUMN = re.compile(r"^__index_level_\d+__$")


def pandas_index_names(schema: pa.Schema) -> list[str]:
    """The named index columns pandas recorded in an Arrow schema's metadata (``df.set_index("pid")`` then
    ``to_parquet``: ``["pid"]``), stripped as :func:`clean_names` strips; [] without such metadata.

    Unnamed levels (``__index_level_0__``) and a RangeIndex stored as metadata are not listed: they are
    never data columns.
    """
    try:
        recorded = json.loads((schema.metadata or {}).get(b"pandas", b"{}")).get("index_columns", [])
    except (ValueError, AttributeError):
        return []
    present = set(schema.names)
    return [name.strip() for name in recorded
            if isinstance(name, str) and name in present and not INDEX_COLUMN.match(name)]


# (column, sample of rows and values) -> the reader's error for bytes that are not UTF-8 text
NotText = Callable[[str, str], DataError]


def check_file(path: Path) -> None:
    """DataError unless ``path`` is a regular, non-empty file."""
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if not path.is_file():
        raise DataError(f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: file is empty (0 bytes)")


def clean_names(raw: Sequence[str], path: Path) -> list[str]:
    """Names stripped of surrounding whitespace; DataError for empty and duplicate names (after stripping)."""
    names = [str(n).strip() for n in raw]
    empty = [i + 1 for i, n in enumerate(names) if n == ""]
    if empty:
        which = ", ".join(str(i) for i in empty[:SAMPLE]) + (", ..." if len(empty) > SAMPLE else "")
        what = f"column {which} has an empty name" if len(empty) == 1 else f"columns {which} have empty names"
        index = empty == [1]  # a nameless first column: the row index R's write.csv and pandas' to_csv write
        hint = (" (a row index, as R's write.csv and pandas' to_csv write by default? write the file without it: "
                "row.names = FALSE, index=False; or name the column)") if index else " (name it, or remove it)"
        raise DataError(f"{path}: {what} in the header{hint}")
    seen: dict[str, list[int]] = {}
    for i, n in enumerate(names):
        seen.setdefault(n, []).append(i + 1)
    dups = {n: pos for n, pos in seen.items() if len(pos) > 1}
    if dups:
        shown = "; ".join(
            f"'{n}' (columns {', '.join(map(str, pos))})" for n, pos in list(dups.items())[:SAMPLE]
        )
        raise DataError(f"{path}: duplicate column names in the header: {shown}")
    return names


def select(names: list[str], columns: list[str] | None, path: Path) -> list[str]:
    """The requested columns in request order (all when None); DataError naming every missing one."""
    if columns is None:
        return list(names)
    if not columns:
        raise ConfigError(f"{path}: no columns requested (pass None to read all)")
    missing = [c for c in columns if c not in names]
    if missing:
        raise DataError(
            f"{path}: missing {plural(len(missing), 'column')} {quote_list(missing)} "
            f"(available: {quote_list(names)})"
        )
    return list(dict.fromkeys(columns))


def to_pandas(
    table: pa.Table | pa.RecordBatch, path: Path, column_types: dict[str, str], start: int = 0, *,
    not_text: NotText,
) -> pd.DataFrame:
    """Arrow -> pandas with text as Categorical (except "string" columns) and a RangeIndex from ``start``.

    Binary columns holding UTF-8 text are read as text; for another binary column the reader's ``not_text``
    error is raised.
    """
    if any(is_binary(f.type) for f in table.schema):
        table = _binary_as_text(table, start, not_text)
    if isinstance(table, pa.Table):
        df = table.to_pandas(strings_to_categorical=True, split_blocks=True, self_destruct=True)
    else:
        df = table.to_pandas(strings_to_categorical=True, split_blocks=True)
    for name, kind in column_types.items():
        if kind == "string" and name in df.columns and isinstance(df[name].dtype, pd.CategoricalDtype):
            df[name] = df[name].astype(object)
    df.index = pd.RangeIndex(start, start + len(df))
    return df


def is_binary(kind: pa.DataType) -> bool:
    """Whether an Arrow type holds bytes (binary, large or fixed-size)."""
    return pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or pa.types.is_fixed_size_binary(kind)


def _binary_as_text(table: pa.Table | pa.RecordBatch, start: int, not_text: NotText) -> pa.Table:
    """``table`` with its binary columns cast to text; ``not_text`` for the first one that is not UTF-8."""
    columns = []
    for name, values in zip(table.schema.names, table.columns, strict=True):
        if is_binary(values.type):
            text = pa.large_string() if pa.types.is_large_binary(values.type) else pa.string()
            try:
                values = values.cast(pa.binary()) if pa.types.is_fixed_size_binary(values.type) else values
                values = values.cast(text)
            except pa.ArrowInvalid:
                raise not_text(name, _not_utf8_sample(table.column(name), start)) from None
        columns.append(values)
    return pa.Table.from_arrays(columns, names=table.schema.names)


def _not_utf8_sample(values: pa.Array | pa.ChunkedArray, start: int) -> str:
    """``"rows 2, 4: b'\\xff'..."``: the first rows (numbered from ``start``) whose bytes are not UTF-8."""
    rows: list[int] = []
    samples: list[Any] = []
    for i, v in enumerate(values.to_pylist()):  # error path only
        if v is None:
            continue
        try:
            v.decode("utf-8")
        except UnicodeDecodeError:
            rows.append(start + i + 1)
            samples.append(v)
            if len(rows) > SAMPLE:
                break
    return show_rows(np.asarray(rows), samples) if rows else ""
