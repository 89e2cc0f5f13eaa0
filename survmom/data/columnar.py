"""Parquet files (``.parquet``, ``.pq``): a typed source, whose schema states each column's type.

Binary columns holding UTF-8 text are read as text; other binary data is refused. The pandas index columns
that ``DataFrame.to_parquet`` may add (``__index_level_0__``) are not data columns.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from survmom.data import formats
from survmom.data.messages import first_line
from survmom.data.tables import INDEX_COLUMN, clean_names, pandas_index_names, select, to_pandas
from survmom.errors import DataError


def column_names(path: Path) -> list[str]:
    """The stripped column names from the schema; no rows are read."""
    return _open(path)[2]


def index_names(path: Path) -> list[str]:
    """The named pandas index columns the file records (:func:`~survmom.data.tables.pandas_index_names`)."""
    return pandas_index_names(_open(path)[0].schema_arrow)


def declared_types(path: Path) -> dict[str, str]:
    """Column -> "category" or "numeric" as the schema states it (:func:`survmom.data.formats.declared_types`)."""
    pf, raw, names = _open(path)
    fields = [pf.schema_arrow.field(r).with_name(n) for r, n in zip(raw, names, strict=True)]
    return formats.declared_types(pa.schema(fields))


def read(path: Path, columns: list[str] | None, column_types: dict[str, str]) -> pd.DataFrame:
    """The selected columns of the whole file, as :func:`survmom.data.read.read_table` describes."""
    pf, raw, names = _open(path)
    selected = select(names, columns, path)
    raw_of = dict(zip(names, raw, strict=True))
    try:
        table = pf.read(columns=[raw_of[c] for c in selected], use_threads=True, use_pandas_metadata=False)
    except (pa.ArrowException, OSError, EOFError) as exc:
        raise DataError(f"{path}: corrupted Parquet file ({first_line(exc)})") from None
    if table.num_rows == 0:
        raise DataError(f"{path}: has no data rows")
    # Dropping pandas metadata keeps CSV and Parquet frames alike (plain RangeIndex, same dtypes).
    table = table.replace_schema_metadata(None).rename_columns(selected)
    return to_pandas(table, path, column_types, not_text=lambda column, rows: _binary_data(path, column, rows))


def batches(
    path: Path, columns: list[str] | None, batch_rows: int, column_types: dict[str, str]
) -> Iterator[pd.DataFrame]:
    """Open the file and check the columns now; return a generator of frames of ``batch_rows`` rows."""
    tables = arrow_batches(path, columns, batch_rows)

    def generate() -> Iterator[pd.DataFrame]:
        start = 0
        for batch in tables:
            yield frame(batch, path, column_types, start)
            start += batch.num_rows

    return generate()


def arrow_batches(path: Path, columns: list[str] | None, batch_rows: int) -> Iterator[pa.RecordBatch]:
    """Open the file and check the columns now; return a generator of Arrow record batches of ``batch_rows``
    rows, with the selected columns' clean names."""
    pf, raw, names = _open(path, streaming=True)
    selected = select(names, columns, path)
    raw_of = dict(zip(names, raw, strict=True))
    if pf.metadata.num_rows == 0:
        raise DataError(f"{path}: has no data rows")

    def generate() -> Iterator[pa.RecordBatch]:
        try:
            for batch in pf.iter_batches(
                batch_size=batch_rows, columns=[raw_of[c] for c in selected], use_threads=True
            ):
                yield batch.replace_schema_metadata(None).rename_columns(selected)
        except (pa.ArrowException, OSError, EOFError) as exc:
            raise DataError(f"{path}: corrupted Parquet file ({first_line(exc)})") from None

    return generate()


def frame(table: pa.Table | pa.RecordBatch, path: Path, column_types: dict[str, str], start: int = 0
          ) -> pd.DataFrame:
    """Arrow rows of this file as a frame (index from ``start``), as :func:`read` makes them."""
    return to_pandas(table, path, column_types, start, not_text=lambda column, rows: _binary_data(path, column, rows))


def _open(path: Path, streaming: bool = False) -> tuple[pq.ParquetFile, list[str], list[str]]:
    """The file, its raw column names and their stripped names (pandas index columns left out).

    ``streaming`` reads column chunks through a 1 MiB buffer instead of pre-buffering whole row groups, so
    iterating over a file written as one huge row group does not hold that row group in memory.
    """
    try:
        pf = pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20) if streaming else pq.ParquetFile(path)
    except (pa.ArrowException, OSError, EOFError) as exc:
        raise DataError(f"{path}: not a readable Parquet file ({first_line(exc)})") from None
    raw = [n for n in pf.schema_arrow.names if not INDEX_COLUMN.match(n)]
    return pf, raw, clean_names(raw, path)


def _binary_data(path: Path, column: str, rows: str) -> DataError:
    return DataError(
        f"{path}: column '{column}' holds binary data, not UTF-8 text ({rows}); "
        f"store it as UTF-8 strings, or leave the column out"
    )
