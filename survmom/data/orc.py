"""Apache ORC files (``.orc``): :data:`ORC`, typed as Parquet.

Read with ``pyarrow.orc``: only the requested columns are decoded, and streaming reads one stripe at a time
(ORC's row group, 64 MiB by default), so peak memory follows the largest stripe, not the file. Types are the
file's own: strings categorical, numbers numeric, dates and timestamps dates.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.orc as pa_orc

from survmom.data.formats import FormatReader, check_batch_rows, selected_batches
from survmom.data.messages import first_line
from survmom.data.tables import INDEX_COLUMN, check_file, clean_names, select
from survmom.errors import DataError


def _open(path: Path) -> pa_orc.ORCFile:
    check_file(path)
    try:
        return pa_orc.ORCFile(str(path))
    except (pa.ArrowException, OSError, EOFError) as exc:
        raise DataError(f"{path}: not a readable ORC file, or a truncated one ({first_line(exc)})") from None


def schema(path: Path) -> pa.Schema:
    """The file's schema as :func:`read` gives it: stripped names, no pandas index columns, no metadata."""
    path = Path(path)
    fields = [f for f in _open(path).schema if not INDEX_COLUMN.match(f.name)]
    names = clean_names([f.name for f in fields], path)
    return pa.schema([f.with_name(n) for f, n in zip(fields, names, strict=True)])


def columns(path: Path) -> list[str]:
    """The stripped column names, from the file's footer (no stripe is read)."""
    return schema(path).names


def _plan(path: Path, columns: list[str] | None) -> tuple[pa_orc.ORCFile, list[str], list[str]]:
    """(the open file, the raw names to decode in request order, the stripped names to give them)."""
    file = _open(path)
    raw = [n for n in file.schema.names if not INDEX_COLUMN.match(n)]
    names = clean_names(raw, path)
    selected = select(names, columns, path)
    raw_of = dict(zip(names, raw, strict=True))
    return file, [raw_of[c] for c in selected], selected


def iter_batches(path: Path, columns: list[str] | None, batch_rows: int = 65536) -> Iterator[pa.Table]:
    """The file as tables of ``batch_rows`` rows, one stripe decoded at a time; columns checked now."""
    path = Path(path)
    check_batch_rows(batch_rows)
    file, wanted, selected = _plan(path, columns)

    def stripes() -> Iterator[pa.RecordBatch]:
        for i in range(file.nstripes):
            yield file.read_stripe(i, columns=wanted)

    return selected_batches(stripes(), batch_rows, wanted, selected, path, "ORC")


def read(path: Path, columns: list[str] | None = None) -> pa.Table:
    """The whole file, ``columns`` in the given order (all when None); DataError when it has no rows."""
    path = Path(path)
    file, wanted, selected = _plan(path, columns)
    try:
        table = file.read(columns=wanted)
    except (pa.ArrowException, OSError, EOFError) as exc:
        raise DataError(f"{path}: corrupted ORC file ({first_line(exc)})") from None
    if table.num_rows == 0:
        raise DataError(f"{path}: has no data rows")
    return table.select(wanted).replace_schema_metadata(None).rename_columns(selected)


ORC = FormatReader("ORC", (".orc",), columns, schema, read, iter_batches)
