"""Arrow IPC files and streams (``.feather``, ``.arrow``, ``.ipc``, ``.arrows``): :data:`ARROW_IPC`.

Feather version 2 *is* the Arrow IPC file format; both IPC layouts are read, told apart by their first bytes
(the file format starts with ``ARROW1``). Only the requested columns are decoded
(``IpcReadOptions.included_fields``). A whole read memory-maps the file (an uncompressed file is read without
copying); streaming reads, and decompresses (Feather's default is LZ4), one record batch at a time, so peak
memory follows the largest record batch, not the file. Types are the file's own: strings and dictionaries
become categorical columns downstream, numbers stay numbers, dates stay dates (which features refuse).
Feather version 1 (``FEA1``, written by pyarrow < 0.17 and R's feather package) is refused: pyarrow
deprecated it.

A stream cut exactly between two record batches cannot be told from a complete stream (the end-of-stream
marker is optional); the file format's footer makes a truncated file an error.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc

from survmom.data.formats import FormatReader, check_batch_rows, selected_batches
from survmom.data.messages import first_line
from survmom.data.tables import INDEX_COLUMN, check_file, clean_names, pandas_index_names, select
from survmom.errors import DataError

_FILE_MAGIC = b"ARROW1"
_FEATHER_V1_MAGIC = b"FEA1"


def _open(path: Path, fields: list[int] | None = None, mapped: bool = False
          ) -> ipc.RecordBatchFileReader | ipc.RecordBatchStreamReader:
    """A reader of the file or stream at ``path``, decoding only the top-level ``fields`` (all when None).

    ``mapped``: memory-map the file (a whole read of an uncompressed file then copies nothing); otherwise each
    record batch is read into memory of its own, freed with the batch, so streaming keeps memory flat.
    """
    check_file(path)
    with open(path, "rb") as fh:
        magic = fh.read(6)
    if magic.startswith(_FEATHER_V1_MAGIC):
        raise DataError(
            f"{path}: a Feather version 1 file, which pyarrow no longer reads reliably; rewrite it as "
            f"Feather version 2 (Python: pyarrow.feather.write_feather; R: arrow::write_feather)"
        )
    options = ipc.IpcReadOptions(included_fields=fields)
    try:
        source = pa.memory_map(str(path)) if mapped else pa.OSFile(str(path))
        if magic == _FILE_MAGIC:
            return ipc.open_file(source, options=options)
        return ipc.open_stream(source, options=options)
    except (pa.ArrowException, OSError, EOFError) as exc:
        raise DataError(
            f"{path}: not a readable Arrow IPC/Feather file, or a truncated one ({first_line(exc)})"
        ) from None


def _plan(path: Path, columns: list[str] | None) -> tuple[list[int], list[str], list[str]]:
    """(field indices to decode, their raw names in request order, the stripped names to give them)."""
    schema = _open(path).schema
    raw = [n for n in schema.names if not INDEX_COLUMN.match(n)]
    names = clean_names(raw, path)
    selected = select(names, columns, path)
    raw_of = dict(zip(names, raw, strict=True))
    wanted = [raw_of[c] for c in selected]
    fields = sorted(schema.get_field_index(n) for n in wanted)
    return fields, wanted, selected


def _batches(reader: ipc.RecordBatchFileReader | ipc.RecordBatchStreamReader) -> Iterator[pa.RecordBatch]:
    if isinstance(reader, ipc.RecordBatchFileReader):
        for i in range(reader.num_record_batches):
            yield reader.get_batch(i)
    else:
        yield from reader


def columns(path: Path) -> list[str]:
    """The stripped column names, from the schema (no record batch is read)."""
    return schema(path).names


def index_names(path: Path) -> list[str]:
    """The named pandas index columns the file records (:func:`~survmom.data.tables.pandas_index_names`)."""
    return pandas_index_names(_open(Path(path)).schema)


def schema(path: Path) -> pa.Schema:
    """The file's schema as :func:`read` gives it: stripped names, no pandas index columns, no metadata."""
    path = Path(path)
    fields = [f for f in _open(path).schema if not INDEX_COLUMN.match(f.name)]
    names = clean_names([f.name for f in fields], path)
    return pa.schema([f.with_name(n) for f, n in zip(fields, names, strict=True)])


def read(path: Path, columns: list[str] | None = None) -> pa.Table:
    """The whole file, ``columns`` in the given order (all when None); DataError when it has no rows."""
    path = Path(path)
    fields, wanted, selected = _plan(path, columns)
    try:
        table = _open(path, fields, mapped=True).read_all()
    except (pa.ArrowException, OSError, EOFError) as exc:
        raise DataError(f"{path}: corrupted Arrow IPC/Feather file ({first_line(exc)})") from None
    if table.num_rows == 0:
        raise DataError(f"{path}: has no data rows")
    return table.select(wanted).replace_schema_metadata(None).rename_columns(selected)


def iter_batches(path: Path, columns: list[str] | None, batch_rows: int = 65536) -> Iterator[pa.Table]:
    """The file as tables of ``batch_rows`` rows; columns checked now, rows when read."""
    path = Path(path)
    check_batch_rows(batch_rows)
    fields, wanted, selected = _plan(path, columns)
    reader = _open(path, fields)

    return selected_batches(_batches(reader), batch_rows, wanted, selected, path, "Arrow IPC/Feather")


ARROW_IPC = FormatReader(
    "Arrow IPC/Feather", (".feather", ".arrow", ".arrows", ".ipc"), columns, schema, read, iter_batches
)
