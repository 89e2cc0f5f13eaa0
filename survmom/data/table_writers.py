"""Write a stream of Arrow tables (predictions) to a binary stream as CSV, TSV, Parquet, Feather or .xlsx, by suffix.

Each writer takes the tables one at a time (memory holds one), takes its schema from the first table, and
returns the number of rows written; the caller owns the stream (``predict`` passes an atomic temporary file,
or stdout). Formats: ``.csv`` (comma, header, values quoted when needed), ``.tsv`` (tab-separated, quoted the
same way), ``.parquet``/``.pq`` (dictionary-encoded non-float columns only), ``.feather``/``.arrow`` (Arrow
IPC file format, which Feather version 2 is; LZ4-compressed when pyarrow has the codec, as
``pyarrow.feather.write_feather`` does), ``.xlsx`` (one sheet "predictions" through openpyxl's write-only mode,
which holds the rows in a temporary file until the workbook is saved; at most :data:`EXCEL_MAX_ROWS` rows).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from survmom.errors import DataError

EXCEL_MAX_ROWS = 1_048_575  # a sheet's 1,048,576 rows less the header


def write_tables(tables: Iterable[pa.Table], stream: BinaryIO, make_writer: Callable[[BinaryIO, pa.Schema], Any]
                 ) -> int:
    """Stream tables into one writer made from the first table's schema; returns the row count."""
    rows, writer = 0, None
    try:
        for table in tables:
            if writer is None:
                writer = make_writer(stream, table.schema)
            writer.write_table(table)
            rows += table.num_rows
    except BaseException:
        if writer is not None:  # closed now, while its stream is open: not later, by the garbage collector
            with contextlib.suppress(Exception):
                writer.close()
        raise
    if writer is not None:
        writer.close()
    stream.flush()
    return rows


def write_csv(tables: Iterable[pa.Table], stream: BinaryIO) -> int:
    return write_tables(tables, stream, pa_csv.CSVWriter)


def write_tsv(tables: Iterable[pa.Table], stream: BinaryIO) -> int:
    options = pa_csv.WriteOptions(delimiter="\t")
    return write_tables(tables, stream, lambda sink, schema: pa_csv.CSVWriter(sink, schema, write_options=options))


def write_parquet(tables: Iterable[pa.Table], stream: BinaryIO) -> int:
    def parquet_writer(sink: BinaryIO, schema: pa.Schema) -> pq.ParquetWriter:
        # Unique floats make pyarrow try a dictionary and fall back, which costs time and size: ids only.
        encoded = [f.name for f in schema if not pa.types.is_floating(f.type)]
        return pq.ParquetWriter(sink, schema, use_dictionary=encoded)

    return write_tables(tables, stream, parquet_writer)


def write_feather(tables: Iterable[pa.Table], stream: BinaryIO) -> int:
    options = ipc.IpcWriteOptions(compression="lz4" if pa.Codec.is_available("lz4") else None)
    return write_tables(tables, stream, lambda sink, schema: ipc.new_file(sink, schema, options=options))


class _ExcelWriter:
    """A one-sheet workbook written row by row (openpyxl write-only mode); saved to the stream on close."""

    def __init__(self, stream: BinaryIO, schema: pa.Schema) -> None:
        from openpyxl import Workbook  # imported on first use, as the readers do

        self.stream, self.rows = stream, 0
        self.book: Any = Workbook(write_only=True)
        self.sheet = self.book.create_sheet("predictions")
        self.sheet.append(schema.names)

    def write_table(self, table: pa.Table) -> None:
        self.rows += table.num_rows
        if self.rows > EXCEL_MAX_ROWS:
            self.sheet.close()  # the sheet's rows so far are in openpyxl's temporary file: removed, nothing saved
            self.sheet._writer.cleanup()
            self.book = None
            raise DataError(f"more than {EXCEL_MAX_ROWS:,} predictions, the most rows an Excel sheet holds; write "
                            ".csv or .parquet instead (nothing was written)")
        columns = [c.to_pylist() for c in table.columns]
        for row in zip(*columns, strict=True):
            self.sheet.append([_cell(v) for v in row])

    def close(self) -> None:
        if self.book is not None:
            self.book.save(self.stream)


def _cell(value: object) -> object:
    """A value as a cell: NaN empty, an infinite median as the text "inf" (Excel has no infinity)."""
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None if value != value else str(value)
    return value


def write_xlsx(tables: Iterable[pa.Table], stream: BinaryIO) -> int:
    return write_tables(tables, stream, _ExcelWriter)


WRITERS: dict[str, Callable[[Iterable[pa.Table], BinaryIO], int]] = {
    ".csv": write_csv,
    ".tsv": write_tsv,
    ".parquet": write_parquet,
    ".pq": write_parquet,
    ".feather": write_feather,
    ".arrow": write_feather,
    ".xlsx": write_xlsx,
}


def writer_for(path: Path) -> Callable[[Iterable[pa.Table], BinaryIO], int] | None:
    """The writer for ``path``'s suffix (any case), or None."""
    return WRITERS.get(Path(path).suffix.lower())
