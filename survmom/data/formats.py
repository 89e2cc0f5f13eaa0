"""What a file format gives the reader dispatch: four operations on a path, returning typed Arrow data.

Each format module (:mod:`survmom.data.arrow_ipc`, :mod:`survmom.data.statistical`, :mod:`survmom.data.excel`)
exposes one :class:`FormatReader` per format; the dispatch picks one by suffix (:func:`reader_for`), turns its
Arrow tables into frames, and takes the type rule's input from :meth:`FormatReader.declared_types`. A reader raises
:class:`~survmom.errors.DataError` (file, column, what to do) for a file that cannot be used, and never runs
Python per row (except Excel's: openpyxl parses every cell in Python).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from survmom.data.messages import first_line
from survmom.errors import ConfigError, DataError


@dataclass(frozen=True)
class FormatReader:
    """The three operations of one file format; ``columns`` may be None in ``read`` and ``iter_batches``.

    * ``columns(path) -> list[str]``: the stripped column names, from the header or schema only.
    * ``schema(path) -> pa.Schema``: the names and Arrow types ``read`` gives, without reading the data.
    * ``read(path, columns) -> pa.Table``: the whole file, ``columns`` in the given order (all when None).
    * ``iter_batches(path, columns, batch_rows) -> Iterator[pa.Table]``: the same rows, ``batch_rows`` at a
      time (the last batch may be shorter); file and column problems are raised by the call, problems in the
      rows when their batch is reached. Memory is bounded by the batch (and the format's own block), not the file.
    """

    name: str
    suffixes: tuple[str, ...]
    columns: Callable[[Path], list[str]]
    schema: Callable[[Path], pa.Schema]
    read: Callable[[Path, list[str] | None], pa.Table]
    iter_batches: Callable[[Path, list[str] | None, int], Iterator[pa.Table]]

    def declared_types(self, path: Path) -> dict[str, str]:
        """Column -> "category" or "numeric" as the file declares it (see :func:`declared_types`)."""
        return declared_types(self.schema(path))


INFERRED = b"survmom.inferred"  # field metadata: text by a mix of kinds (an Excel column of numbers and words)


def declared_types(schema: pa.Schema) -> dict[str, str]:
    """Column -> "category" (text, dictionary, binary) or "numeric" (integer, float, decimal) by Arrow type.

    A typed source's statement of each column's type. Other types (bool, dates, times, nested, null) are not
    listed: the reader's dtype decides for them; nor are fields marked :data:`INFERRED`, whose type the reader
    guessed from a mix of values, as for a CSV column.
    """
    types = {}
    for field in schema:
        if INFERRED in (field.metadata or {}):
            continue
        kind = field.type
        if (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)
                or pa.types.is_dictionary(kind) or pa.types.is_binary(kind) or pa.types.is_large_binary(kind)
                or pa.types.is_fixed_size_binary(kind)):
            types[field.name] = "category"
        elif pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
            types[field.name] = "numeric"
    return types


def reader_for(path: Path, readers: Iterable[FormatReader]) -> FormatReader | None:
    """The reader whose suffix ends the file name (any case), or None."""
    name = Path(path).name.lower()
    return next((r for r in readers if any(name.endswith(s) for s in r.suffixes)), None)


def check_batch_rows(batch_rows: int) -> None:
    if batch_rows < 1:
        raise ConfigError(f"batch_rows must be >= 1, got {batch_rows}")


def rebatch(parts: Iterable[pa.Table | pa.RecordBatch], batch_rows: int) -> Iterator[pa.Table]:
    """Tables of exactly ``batch_rows`` rows (the last one shorter) from parts of any length; zero-copy slices."""
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    for part in parts:
        pending.extend(part.to_batches() if isinstance(part, pa.Table) else [part])
        pending_rows += part.num_rows
        if pending_rows < batch_rows:
            continue
        table = pa.Table.from_batches(pending)
        whole = table.num_rows - table.num_rows % batch_rows
        for lo in range(0, whole, batch_rows):
            yield table.slice(lo, batch_rows)
        rest = table.slice(whole)
        pending, pending_rows = rest.to_batches(), rest.num_rows
    if pending_rows:
        yield pa.Table.from_batches(pending)


def selected_batches(parts: Iterable[pa.Table | pa.RecordBatch], batch_rows: int, wanted: list[str],
                     selected: list[str], path: Path, kind: str) -> Iterator[pa.Table]:
    """``parts`` re-cut into tables of ``batch_rows`` rows (:func:`rebatch`) holding the raw columns ``wanted``
    named ``selected``, without schema metadata; DataError for a corrupted ``kind`` file ("ORC") and for one
    without rows."""
    rows = 0
    try:
        for table in rebatch(parts, batch_rows):
            rows += table.num_rows
            yield table.select(wanted).replace_schema_metadata(None).rename_columns(selected)
    except (pa.ArrowException, OSError, EOFError) as exc:
        raise DataError(f"{path}: corrupted {kind} file ({first_line(exc)})") from None
    if rows == 0:
        raise DataError(f"{path}: has no data rows")
