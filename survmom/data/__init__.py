"""Read CSV/Parquet tables, validate the survival columns, and fit/apply feature preprocessing.

Everything here returns numpy arrays or pandas frames (no torch). Every problem a user can fix is raised as a
one-line :class:`~survmom.errors.DataError` naming the file, the column and a sample of offending values with
their 1-based data row numbers (the header is not counted).

Reading rules:

* CSV is comma-separated UTF-8 with a header row (``.csv``, or gzip-compressed ``.csv.gz``); Parquet is
  ``.parquet`` or ``.pq``. Suffixes are matched in any case (``.CSV.GZ`` is decompressed too). Column names
  are stripped of surrounding whitespace.
* CSV cells equal to one of :data:`NA_MARKERS` are missing. ``"."`` is *not* missing: a numeric column holding
  one is read as text and the :class:`Preprocessor` treats it as categorical (with a warning).
* Numbers in text (:func:`_parse_numbers`) are read one way everywhere: training a column whose every value is
  a number or a missing-value spelling (any case, surrounding spaces: ``" NA"``, ``"null"``, ``"   "``), and
  every reader given ``column_types`` "numeric" (predict), which converts with pyarrow first and parses only
  the columns pyarrow refuses as text.
* Text columns that look like formatted numbers (``"55,000"``, ``"1,5"``, ``"12%"``) stay categorical (``"1,234"``
  is ambiguous), with a warning; so do categories that differ only in case (``"Male"``, ``"male"``).
* A file that is not UTF-8 is refused with the (0-based) byte offset of the first bad byte, the column and the
  rows; re-encode it (e.g. ``iconv -f latin1 -t utf-8 in.csv > out.csv``). Guessing an encoding would
  silently change category labels.
* Quoted values may not contain line breaks (that keeps multithreaded CSV parsing fast); such a file is
  refused with the line whose field count is wrong.
* Text columns come back as pandas ``Categorical`` (fast to encode, small in memory) unless
  ``column_types`` marks them ``"string"``. Parquet binary columns holding UTF-8 text are read as text; other
  binary data is refused. Nested columns (lists, structs, maps) are refused where they are used (time,
  event, features), so a column left out of the model may hold anything.
"""

from __future__ import annotations

import codecs
import csv
import difflib
import gzip
import hashlib
import io
import math
import re
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from survmom.errors import ConfigError, DataError, StateError
from survmom.system import usable_cores

SUPPORTED = (".csv", ".csv.gz", ".parquet", ".pq")
NA_MARKERS = ("", "NA", "N/A", "NaN", "nan", "null", "NULL", "None")
COLUMN_TYPES = ("numeric", "category", "string")

_TRUE_WORDS = frozenset({"true", "yes", "1", "t", "y", "1.0"})
_FALSE_WORDS = frozenset({"false", "no", "0", "f", "n", "0.0"})
_NA_LOWER = frozenset(m.lower() for m in NA_MARKERS)
_SAMPLE = 5
_HEADER_PROBE = 1 << 20
_INDEX_COLUMN = re.compile(r"^__index_level_\d+__$")
_STATE_VERSION = 1


# --------------------------------------------------------------------------------------------- messages


def _show(value: Any) -> str:
    """A short printable form of one cell value for error messages."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return "<missing>"
    if isinstance(value, (np.floating, float)):
        return repr(float(value))
    if isinstance(value, (np.integer, int)) and not isinstance(value, bool):
        return str(int(value))
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _sample(rows: np.ndarray, values: Sequence[Any]) -> str:
    """``"rows 4, 17, 92: -1.0, -3.5, -0.2"``: the first few 1-based row numbers and their values."""
    more = ", ..." if len(rows) > _SAMPLE else ""
    shown_rows = ", ".join(str(int(r)) for r in rows[:_SAMPLE])
    shown_values = ", ".join(_show(v) for v in list(values)[:_SAMPLE])
    word = "row" if len(rows) == 1 else "rows"
    return f"{word} {shown_rows}{more}: {shown_values}{more}"


def sample_rows(values: pd.Series, positions: np.ndarray) -> str:
    """``"rows 4, 17: 1e+300, -1e+300"``: the 1-based data row numbers and values of ``values`` at ``positions``."""
    positions = np.asarray(positions)
    return _sample(_row_numbers(values.index, positions), values.iloc[positions[:_SAMPLE]].tolist())


def _row_numbers(index: pd.Index, positions: np.ndarray) -> np.ndarray:
    """1-based data row numbers of ``positions``: from an integer index (readers set one), else positional."""
    if pd.api.types.is_integer_dtype(index.dtype):
        return np.asarray(index.take(positions), dtype=np.int64) + 1
    return np.asarray(positions, dtype=np.int64) + 1


def _quote_list(names: Sequence[str], limit: int = 10) -> str:
    shown = ", ".join(f"'{n}'" for n in list(names)[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def _reason(exc: BaseException) -> str:
    """First line of an exception message, shortened for a one-line error."""
    lines = str(exc).strip().splitlines()
    first = lines[0] if lines else type(exc).__name__
    return first if len(first) <= 200 else first[:197] + "..."


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


# --------------------------------------------------------------------------------------------- files


def _file_format(path: Path) -> str:
    """``"csv"`` or ``"parquet"`` from the extension (case-insensitive); DataError otherwise."""
    name = path.name.lower()
    if name.endswith(".csv") or name.endswith(".csv.gz"):
        return "csv"
    if name.endswith(".parquet") or name.endswith(".pq"):
        return "parquet"
    suffix = "".join(path.suffixes) or "(none)"
    raise DataError(f"{path}: unsupported file type '{suffix}' (supported: {', '.join(SUPPORTED)})")


def _check_file(path: Path) -> None:
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if not path.is_file():
        raise DataError(f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: file is empty (0 bytes)")


def _clean_names(raw: Sequence[str], path: Path) -> list[str]:
    """Strip names; refuse empty and duplicate names (after stripping)."""
    names = [str(n).strip() for n in raw]
    empty = [i + 1 for i, n in enumerate(names) if n == ""]
    if empty:
        which = ", ".join(str(i) for i in empty[:_SAMPLE])
        raise DataError(
            f"{path}: column {which} has an empty name in the header "
            f"(name it, or remove it if it is a row index)"
        )
    seen: dict[str, list[int]] = {}
    for i, n in enumerate(names):
        seen.setdefault(n, []).append(i + 1)
    dups = {n: pos for n, pos in seen.items() if len(pos) > 1}
    if dups:
        shown = "; ".join(
            f"'{n}' (columns {', '.join(map(str, pos))})" for n, pos in list(dups.items())[:_SAMPLE]
        )
        raise DataError(f"{path}: duplicate column names in the header: {shown}")
    return names


def _select(names: list[str], columns: list[str] | None, path: Path) -> list[str]:
    """The requested columns in request order (all when None); DataError naming every missing one."""
    if columns is None:
        return list(names)
    if not columns:
        raise ConfigError(f"{path}: no columns requested (pass None to read all)")
    missing = [c for c in columns if c not in names]
    if missing:
        raise DataError(
            f"{path}: missing {_plural(len(missing), 'column')} {_quote_list(missing)} "
            f"(available: {_quote_list(names)})"
        )
    return list(dict.fromkeys(columns))


def _check_column_types(column_types: dict[str, str] | None) -> dict[str, str]:
    if not column_types:
        return {}
    bad = {k: v for k, v in column_types.items() if v not in COLUMN_TYPES}
    if bad:
        raise ConfigError(f"column_types values must be one of {COLUMN_TYPES}, got {bad}")
    return dict(column_types)


def _to_pandas(
    table: pa.Table | pa.RecordBatch, path: Path, column_types: dict[str, str], start: int = 0
) -> pd.DataFrame:
    """Arrow -> pandas with text as Categorical (except "string" columns) and a RangeIndex from ``start``.

    Binary columns holding UTF-8 text are read as text; other binary columns raise a DataError.
    """
    if any(_is_binary(f.type) for f in table.schema):
        table = _binary_as_text(table, path, start)
    if isinstance(table, pa.Table):
        df = table.to_pandas(strings_to_categorical=True, split_blocks=True, self_destruct=True)
    else:
        df = table.to_pandas(strings_to_categorical=True, split_blocks=True)
    for name, kind in column_types.items():
        if kind == "string" and name in df.columns and isinstance(df[name].dtype, pd.CategoricalDtype):
            df[name] = df[name].astype(object)
    df.index = pd.RangeIndex(start, start + len(df))
    return df


# --------------------------------------------------------------------------------------------- CSV


def _is_gzip_name(path: Path) -> bool:
    """Whether the file name ends in ``.gz`` in any case (``.csv.GZ`` too)."""
    return path.name.lower().endswith(".gz")


def _open_bytes(path: Path) -> io.BufferedIOBase:
    if _is_gzip_name(path):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


def _csv_input(path: Path) -> pa.NativeFile:
    """The CSV file as a pyarrow input stream, decompressed when its name ends in ``.gz`` in any case.

    Given a path, pyarrow infers the compression from a lowercase suffix only: ``d.csv.GZ`` was parsed as
    compressed bytes. Every pyarrow CSV reader here gets this stream instead of the path.
    """
    return pa.input_stream(str(path), compression="gzip" if _is_gzip_name(path) else None)


def _first_bad_utf8(path: Path) -> tuple[int, int, int] | None:
    """(byte offset, byte value, 1-based line) of the first invalid UTF-8 byte in the file, or None."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0  # file offset of the current chunk
    lines = 1
    with _open_bytes(path) as fh:
        while True:
            chunk = fh.read(_HEADER_PROBE)
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                # exc.object is the decoder's carried-over partial character followed by this chunk.
                carried = len(exc.object) - len(chunk)
                line = lines + exc.object[carried : max(exc.start, carried)].count(b"\n")
                return offset - carried + exc.start, exc.object[exc.start], line
            if not chunk:
                return None
            lines += chunk.count(b"\n")
            offset += len(chunk)


def _not_utf8(path: Path, column: str | None = None, detail: str = "") -> DataError:
    """The file is not UTF-8: where the first bad byte is, plus ``detail`` (e.g. rows and values)."""
    found = _first_bad_utf8(path)
    parts = [f"first bad byte 0x{found[1]:02x} at byte offset {found[0]}, line {found[2]}"] if found else []
    parts += [detail] if detail else []
    where = f" ({'; '.join(parts)})" if parts else ""
    col = f" column '{column}'" if column else ""
    return DataError(
        f"{path}:{col} is not valid UTF-8 text{where}; re-encode the file as UTF-8 "
        f"(e.g. iconv -f latin1 -t utf-8 in.csv > out.csv)"
    )


def _is_binary(kind: pa.DataType) -> bool:
    return pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or pa.types.is_fixed_size_binary(kind)


def _binary_as_text(table: pa.Table | pa.RecordBatch, path: Path, start: int) -> pa.Table:
    """``table`` with its binary columns cast to text; DataError for the first one that is not UTF-8."""
    columns = []
    for name, values in zip(table.schema.names, table.columns, strict=True):
        if _is_binary(values.type):
            text = pa.large_string() if pa.types.is_large_binary(values.type) else pa.string()
            try:
                values = values.cast(pa.binary()) if pa.types.is_fixed_size_binary(values.type) else values
                values = values.cast(text)
            except pa.ArrowInvalid:
                raise _binary_column_error(path, table, name, start) from None
        columns.append(values)
    return pa.Table.from_arrays(columns, names=table.schema.names)


def _binary_column_error(path: Path, table: pa.Table | pa.RecordBatch, column: str, start: int) -> DataError:
    """A column read as bytes that are not UTF-8: a CSV file in another encoding, or Parquet binary data."""
    values = table.column(column).to_pylist()
    rows: list[int] = []
    samples: list[Any] = []
    for i, v in enumerate(values):
        if v is None:
            continue
        try:
            v.decode("utf-8")
        except UnicodeDecodeError:
            rows.append(start + i + 1)
            samples.append(v)
            if len(rows) > _SAMPLE:
                break
    sample = _sample(np.asarray(rows), samples) if rows else ""
    if _file_format(path) == "parquet":
        return DataError(
            f"{path}: column '{column}' holds binary data, not UTF-8 text ({sample}); "
            f"store it as UTF-8 strings, or leave the column out"
        )
    return _not_utf8(path, column, sample)


def _csv_header(path: Path) -> tuple[list[str], float]:
    """Raw header names and the mean bytes per line in the first MiB (to size streaming blocks)."""
    with _open_bytes(path) as fh:
        try:
            chunk = fh.read(_HEADER_PROBE)
            while b"\n" not in chunk and len(chunk) < 64 * _HEADER_PROBE:
                more = fh.read(_HEADER_PROBE)
                if not more:
                    break
                chunk += more
        except (OSError, EOFError) as exc:
            raise DataError(f"{path}: cannot read file ({_reason(exc)})") from None
    if not chunk.strip():
        raise DataError(f"{path}: file is empty (no header row)")
    magic = {
        b"PK\x03\x04": "a ZIP/Excel file",
        b"\x1f\x8b": "gzip-compressed (name it .csv.gz)",
        b"PAR1": "a Parquet file",
    }
    for prefix, what in magic.items():
        if chunk.startswith(prefix):
            raise DataError(f"{path}: not a CSV text file (looks like {what})")
    if b"\x00" in chunk:
        raise DataError(f"{path}: not a CSV text file (contains NUL bytes; binary or compressed data?)")
    if chunk.startswith(codecs.BOM_UTF8):
        chunk = chunk[len(codecs.BOM_UTF8) :]
    try:
        text = codecs.getincrementaldecoder("utf-8")().decode(chunk, final=False)
    except UnicodeDecodeError as exc:
        # Bad bytes in data rows are reported per column later, where pyarrow reads them as bytes.
        text = chunk[: exc.start].decode("utf-8")
        if "\n" not in text:
            raise _not_utf8(path, detail="in the header row") from None
    try:
        names = next(csv.reader(io.StringIO(text)))
    except (csv.Error, StopIteration) as exc:
        raise DataError(f"{path}: cannot parse the CSV header ({_reason(exc)})") from None
    if len(names) == 1:
        for sep, label in ((";", "semicolons"), ("\t", "tabs")):
            if sep in names[0]:
                raise DataError(
                    f"{path}: header '{names[0][:60]}' looks separated by {label}; "
                    f"survmom reads comma-separated files"
                )
    bytes_per_line = len(chunk) / max(chunk.count(b"\n"), 1)
    return names, bytes_per_line


def _csv_options(
    raw_selected: list[str], arrow_types: dict[str, pa.DataType], block_size: int | None,
    column_names: list[str] | None = None,
) -> tuple[pa_csv.ReadOptions, pa_csv.ConvertOptions]:
    """Read and convert options; ``column_names`` for a stream that starts after the header row."""
    read = pa_csv.ReadOptions(use_threads=True, column_names=column_names,
                              **({"block_size": block_size} if block_size else {}))
    convert = pa_csv.ConvertOptions(
        include_columns=raw_selected,
        column_types=arrow_types,
        null_values=list(NA_MARKERS),
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
        true_values=["true", "True", "TRUE"],
        false_values=["false", "False", "FALSE"],
    )
    return read, convert


def _arrow_types(
    raw_of: dict[str, str], selected: list[str], column_types: dict[str, str], stream: bool
) -> dict:
    """Arrow type per raw column: numeric -> float64, text -> string; when streaming, untyped -> string."""
    types: dict[str, pa.DataType] = {}
    for name in selected:
        kind = column_types.get(name)
        if kind == "numeric":
            types[raw_of[name]] = pa.float64()
        elif kind in ("category", "string") or (stream and kind is None):
            types[raw_of[name]] = pa.string()
    return types


def _csv_read_error(
    exc: BaseException, path: Path, raw: list[str], names: list[str], numeric: list[str]
) -> DataError:
    """Turn a pyarrow CSV error into a DataError naming the column and, for bad numbers, rows and values."""
    reason = _reason(exc)
    if "invalid UTF8" in reason:
        match = re.search(r"column #(\d+)", reason)
        column = names[int(match.group(1))] if match and int(match.group(1)) < len(names) else None
        return _not_utf8(path, column)
    if "conversion error" in reason and numeric:
        located = _locate_non_numeric(path, raw, names, numeric)
        if located is not None:
            return located
    match = re.search(r"In CSV column #(\d+): (.*)", reason)
    if match and int(match.group(1)) < len(names):
        return DataError(f"{path}: column '{names[int(match.group(1))]}' cannot be read: {match.group(2)}")
    where = _locate_ragged_row(path, len(names)) if "Expected" in reason else ""
    return DataError(f"{path}: not a readable CSV file{where}: {reason}")


def _locate_non_numeric(path: Path, raw: list[str], names: list[str], numeric: list[str]) -> DataError | None:
    """Re-scan ``numeric`` columns as text (error path only) to report rows holding non-numbers.

    A value is a non-number exactly when training would refuse it (:func:`_parse_numbers`): missing-value
    spellings such as ``" NA"`` and numbers with surrounding spaces are fine.
    """
    raw_of = dict(zip(names, raw, strict=True))
    read, convert = _csv_options(
        [raw_of[c] for c in numeric], {raw_of[c]: pa.string() for c in numeric}, None
    )
    bad: dict[str, tuple[int, list[int], list[str]]] = {}
    start = 0
    try:
        with _csv_input(path) as source:
            for batch in pa_csv.open_csv(source, read_options=read, convert_options=convert):
                for name in numeric:
                    text = batch.column(raw_of[name]).to_pandas()
                    codes, uniques = pd.factorize(text, use_na_sentinel=True)
                    not_numbers = _parse_numbers(np.asarray(uniques, dtype=object))[1]
                    pos = np.flatnonzero(_per_row(not_numbers, codes.astype(np.int64), False))
                    if len(pos):
                        count, rows, values = bad.get(name, (0, [], []))
                        rows += [start + int(p) + 1 for p in pos[: _SAMPLE + 1]]
                        values += [text.iloc[p] for p in pos[: _SAMPLE + 1]]
                        bad[name] = (count + len(pos), rows, values)
                start += batch.num_rows
    except (pa.ArrowException, OSError, EOFError):
        return None
    if not bad:
        return None
    name, (count, rows, values) = next(iter(bad.items()))
    others = f"; also {_quote_list(list(bad)[1:])}" if len(bad) > 1 else ""
    return DataError(
        f"{path}: column '{name}' should be numeric but has {_plural(count, 'non-numeric value')} "
        f"({_sample(np.asarray(rows), values)}){others}"
    )


def _unconverted(exc: BaseException, names: list[str], numeric: list[str], as_text: set[str]) -> list[str]:
    """Numeric columns to read as text after pyarrow failed to convert one to float64 (``exc``); [] if none.

    pyarrow names the column by its position in the file; without one, every numeric column not yet read as
    text is.
    """
    reason = _reason(exc)
    if "conversion error" not in reason:
        return []
    match = re.search(r"In CSV column #(\d+): CSV conversion error", reason)
    if match and int(match.group(1)) < len(names):
        name = names[int(match.group(1))]
        return [name] if name in numeric and name not in as_text else []
    return [c for c in numeric if c not in as_text]


_NA_TEXT = pa.array(sorted(_NA_LOWER), pa.string())


def _text_to_float(values: pa.Array | pa.ChunkedArray, *, path: Path, column: str, start: int
                   ) -> pa.Array | pa.ChunkedArray:
    """A text column of a numeric feature as float64, read exactly as training reads text (:func:`_as_float`).

    Fast path in Arrow: surrounding whitespace trimmed, missing-value spellings (any case, e.g. ``" NA"``,
    ``"null"``, ``"   "``) made missing, then a strict cast. Where that cast refuses a value (Python's
    ``float`` accepts a little more, e.g. ``"1_000"``), the column is parsed by :func:`_numbers_from_text`,
    which raises a DataError naming rows (from ``start``) and values that are not numbers.
    """
    text = values.cast(pa.string()) if not pa.types.is_string(values.type) else values
    trimmed = pc.utf8_trim_whitespace(text)
    missing = pc.is_in(pc.utf8_lower(trimmed), value_set=_NA_TEXT)
    try:
        return pc.cast(pc.if_else(missing, pa.scalar(None, pa.string()), trimmed), pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    series = pd.Series(text.to_numpy(zero_copy_only=False), index=pd.RangeIndex(start, start + len(text)),
                       dtype=object)
    parsed = _numbers_from_text(series, path=path, column=column, context="should be numeric but")
    return pa.array(parsed, pa.float64(), from_pandas=True)


def _numbers_in_text_columns(table: pa.Table | pa.RecordBatch, columns: set[str], *, path: Path, start: int
                             ) -> pa.Table | pa.RecordBatch:
    """``table`` with its text columns among ``columns`` (numeric features read as text) made float64."""
    if not columns:
        return table
    arrays = []
    for name, values in zip(table.schema.names, table.columns, strict=True):
        if name in columns and (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
            values = _text_to_float(values, path=path, column=name, start=start)
        arrays.append(values)
    return type(table).from_arrays(arrays, names=table.schema.names)


def _locate_ragged_row(path: Path, n_columns: int) -> str:
    """ " (line 7 has 4 fields, the header has 3)" for the first record with a wrong field count, else ""."""
    try:
        with _open_bytes(path) as fh:
            text = io.TextIOWrapper(fh, encoding="utf-8", errors="replace", newline="")
            reader = csv.reader(text)
            for record in reader:
                if record and len(record) != n_columns:
                    return f" (line {reader.line_num} has {len(record)} fields, the header has {n_columns})"
    except (OSError, EOFError, csv.Error):
        pass
    return ""


_CSV_STREAM_BLOCK = 1 << 20  # bytes per parse block of the streaming CSV reader
_CSV_PARALLEL_MIN = 32 << 20  # CSV files from this size are parsed as two halves in two threads


def _read_csv(path: Path, columns: list[str] | None, column_types: dict[str, str]) -> pa.Table:
    """The selected columns; "numeric" columns pyarrow cannot convert are read as text and parsed as training does.
    """
    raw, _ = _csv_header(path)
    names = _clean_names(raw, path)
    selected = _select(names, columns, path)
    raw_of = dict(zip(names, raw, strict=True))
    numeric = [c for c in selected if column_types.get(c) == "numeric"]
    as_text: set[str] = set()  # numeric columns holding values pyarrow's conversion refuses (" NA", "1_000")
    while True:
        types = _arrow_types(raw_of, selected, {**column_types, **dict.fromkeys(as_text, "string")}, False)
        read, convert = _csv_options([raw_of[c] for c in selected], types, _CSV_STREAM_BLOCK)
        try:
            # Streaming holds a few 1 MiB blocks at a time; read_csv buffers the whole file (a 407 MB file peaked
            # at +900 MB). The streaming reader fixes the types from its first block, read_csv from all of them:
            # if a later block does not fit (or anything else goes wrong), read_csv decides, errors included.
            table = _stream_csv(path, raw, read, convert)
        except (pa.ArrowException, OSError, EOFError):
            try:
                with _csv_input(path) as source:
                    table = pa_csv.read_csv(source, read_options=read, convert_options=convert)
            except (pa.ArrowException, OSError, EOFError) as exc:
                failed = _unconverted(exc, names, numeric, as_text)
                if failed:
                    as_text.update(failed)
                    continue
                raise _csv_read_error(exc, path, raw, names, numeric) from None
        break
    table = table.rename_columns(selected)
    try:
        return _numbers_in_text_columns(table, as_text, path=path, start=0)
    except DataError as exc:
        raise _locate_non_numeric(path, raw, names, numeric) or exc from None


class _ByteRange(io.RawIOBase):
    """The bytes [start, stop) of a file as a readable stream."""

    def __init__(self, path: Path, start: int, stop: int) -> None:
        super().__init__()
        self._file = open(path, "rb")  # noqa: SIM115 (closed in close())
        self._file.seek(start)
        self._left = stop - start

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        size = min(len(buffer), self._left)
        if size <= 0:
            return 0
        got = self._file.readinto(memoryview(buffer)[:size]) or 0
        self._left -= got
        return got

    def close(self) -> None:
        self._file.close()
        super().close()


def _line_start_after(path: Path, offset: int) -> int | None:
    """Byte offset of the first line that starts after ``offset`` (None if there is none)."""
    with open(path, "rb") as fh:
        fh.seek(offset)
        while chunk := fh.read(1 << 16):
            newline = chunk.find(b"\n")
            if newline >= 0:
                return offset + newline + 1
            offset += len(chunk)
    return None


def _has_byte_before(path: Path, byte: bytes, stop: int) -> bool:
    """Whether ``byte`` occurs in the first ``stop`` bytes of the file (read through one reused 1 MiB buffer)."""
    buffer = bytearray(1 << 20)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as fh:
        while stop > 0:
            got = fh.readinto(view[: min(len(buffer), stop)])
            if not got:
                return False
            if buffer.find(byte, 0, got) >= 0:
                return True
            stop -= got
    return False


def _stream_csv(path: Path, raw: list[str], read: pa_csv.ReadOptions, convert: pa_csv.ConvertOptions
                ) -> pa.Table:
    """Stream-parse a CSV file; from ``_CSV_PARALLEL_MIN`` bytes, its two halves in two threads.

    The halves meet at the first line start after the middle, and only when no quote character comes
    before it: a quoted field may hold newlines, and pyarrow silently accepts a quote left open at the end
    of a range, so a split inside quotes could cut a row in two. The second half is parsed with the column
    types the first half's reader inferred from its first block, exactly as one streaming reader would; if
    its rows do not fit them, the ArrowInvalid goes to the caller (which falls back to ``read_csv``). Rows
    keep their file order.
    """
    size = path.stat().st_size
    middle = _line_start_after(path, size // 2) if size >= _CSV_PARALLEL_MIN and path.suffix.lower() == ".csv" \
        else None
    if middle is not None and _has_byte_before(path, b'"', middle):
        middle = None
    if middle is None or middle >= size:
        with _csv_input(path) as source:
            reader = pa_csv.open_csv(source, read_options=read, convert_options=convert)
            return pa.Table.from_batches(list(reader), schema=reader.schema)
    with io.BufferedReader(_ByteRange(path, 0, middle), _CSV_STREAM_BLOCK) as first_stream:
        first = pa_csv.open_csv(first_stream, read_options=read, convert_options=convert)
        second_read, second_convert = _csv_options(
            list(convert.include_columns), dict(zip(first.schema.names, first.schema.types, strict=True)),
            read.block_size, column_names=raw,
        )

        def second_half() -> list[pa.RecordBatch]:
            with io.BufferedReader(_ByteRange(path, middle, size), _CSV_STREAM_BLOCK) as stream:
                reader = pa_csv.open_csv(stream, read_options=second_read, convert_options=second_convert)
                return list(reader)

        with ThreadPoolExecutor(max_workers=1) as pool:
            later = pool.submit(second_half)
            batches = list(first)
            batches += later.result()
    return pa.Table.from_batches(batches, schema=first.schema)


def _iter_csv(
    path: Path, columns: list[str] | None, batch_rows: int, column_types: dict[str, str]
) -> Iterator[pd.DataFrame]:
    """Check the header now; return a generator of the batches."""
    raw, _ = _csv_header(path)
    names = _clean_names(raw, path)
    selected = _select(names, columns, path)
    numeric = [c for c in selected if column_types.get(c) == "numeric"]

    def batches() -> Iterator[pd.DataFrame]:
        start, pending, pending_rows = 0, [], 0
        try:
            for block in _csv_blocks(path, raw, names, selected, column_types):
                pending.append(block)
                pending_rows += block.num_rows
                if pending_rows < batch_rows:
                    continue
                table = pa.Table.from_batches(pending)
                whole = table.num_rows - table.num_rows % batch_rows
                for lo in range(0, whole, batch_rows):
                    yield _to_pandas(table.slice(lo, batch_rows), path, column_types, start)
                    start += batch_rows
                rest = table.slice(whole)
                pending, pending_rows = rest.to_batches(), rest.num_rows
            if pending_rows:
                yield _to_pandas(pa.Table.from_batches(pending), path, column_types, start)
                start += pending_rows
        except (pa.ArrowException, OSError, EOFError) as exc:
            raise _csv_read_error(exc, path, raw, names, numeric) from None
        if start == 0:
            raise DataError(f"{path}: has a header but no data rows")

    return batches()


def _csv_blocks(path: Path, raw: list[str], names: list[str], selected: list[str], column_types: dict[str, str]
                ) -> Iterator[pa.RecordBatch]:
    """The parse blocks of a CSV file, columns renamed to ``selected``, "numeric" columns as float64.

    Numeric columns are converted by pyarrow (fast). When it refuses a value that training accepts (a
    missing-value spelling such as ``" NA"`` or ``"null"``, ``"1_000"``), that column is read as text from
    then on and parsed as training parses it (:func:`_text_to_float`): the file is opened again and the rows
    already delivered are skipped. Text that is not a number is a DataError over the whole file.
    """
    raw_of = dict(zip(names, raw, strict=True))
    numeric = [c for c in selected if column_types.get(c) == "numeric"]
    as_text: set[str] = set()
    done = 0  # rows delivered
    # Small parse blocks, regrouped into batches by the caller: pyarrow's streaming reader holds several
    # blocks in flight, so blocks sized to a whole batch (tens of MB) made memory grow with the file.
    while True:
        types = _arrow_types(raw_of, selected, {**column_types, **dict.fromkeys(as_text, "string")}, True)
        read, convert = _csv_options([raw_of[c] for c in selected], types, _CSV_STREAM_BLOCK)
        skip = done  # rows a fresh reader must pass over (counting parsed rows: blank lines are not rows)
        try:
            with _csv_input(path) as source:
                for block in pa_csv.open_csv(source, read_options=read, convert_options=convert):
                    if skip >= block.num_rows:
                        skip -= block.num_rows
                        continue
                    block = block.slice(skip).rename_columns(selected)
                    skip = 0
                    try:
                        block = _numbers_in_text_columns(block, as_text, path=path, start=done)
                    except DataError as exc:
                        raise _locate_non_numeric(path, raw, names, numeric) or exc from None
                    done += block.num_rows
                    yield block
            return
        except pa.ArrowInvalid as exc:
            failed = _unconverted(exc, names, numeric, as_text)
            if not failed:
                raise
            as_text.update(failed)


# --------------------------------------------------------------------------------------------- Parquet


def _open_parquet(path: Path, streaming: bool = False) -> tuple[pq.ParquetFile, list[str], list[str]]:
    """The file, its raw column names and their stripped names (pandas index columns left out).

    ``streaming`` reads column chunks through a 1 MiB buffer instead of pre-buffering whole row groups, so
    iterating over a file written as one huge row group does not hold that row group in memory.
    """
    try:
        pf = pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20) if streaming else pq.ParquetFile(path)
    except (pa.ArrowException, OSError, EOFError) as exc:
        raise DataError(f"{path}: not a readable Parquet file ({_reason(exc)})") from None
    raw = [n for n in pf.schema_arrow.names if not _INDEX_COLUMN.match(n)]
    return pf, raw, _clean_names(raw, path)


def _read_parquet(path: Path, columns: list[str] | None) -> pa.Table:
    pf, raw, names = _open_parquet(path)
    selected = _select(names, columns, path)
    raw_of = dict(zip(names, raw, strict=True))
    try:
        table = pf.read(columns=[raw_of[c] for c in selected], use_threads=True, use_pandas_metadata=False)
    except (pa.ArrowException, OSError, EOFError) as exc:
        raise DataError(f"{path}: corrupted Parquet file ({_reason(exc)})") from None
    # Dropping pandas metadata keeps CSV and Parquet frames alike (plain RangeIndex, same dtypes).
    return table.replace_schema_metadata(None).rename_columns(selected)


def _iter_parquet(
    path: Path, columns: list[str] | None, batch_rows: int, column_types: dict[str, str]
) -> Iterator[pd.DataFrame]:
    """Open the file and check the columns now; return a generator of the batches."""
    pf, raw, names = _open_parquet(path, streaming=True)
    selected = _select(names, columns, path)
    raw_of = dict(zip(names, raw, strict=True))
    if pf.metadata.num_rows == 0:
        raise DataError(f"{path}: has no data rows")

    def batches() -> Iterator[pd.DataFrame]:
        start = 0
        try:
            for batch in pf.iter_batches(
                batch_size=batch_rows, columns=[raw_of[c] for c in selected], use_threads=True
            ):
                batch = batch.replace_schema_metadata(None).rename_columns(selected)
                yield _to_pandas(batch, path, column_types, start)
                start += batch.num_rows
        except (pa.ArrowException, OSError, EOFError) as exc:
            raise DataError(f"{path}: corrupted Parquet file ({_reason(exc)})") from None

    return batches()


# --------------------------------------------------------------------------------------------- public readers


def read_table(
    path: Path, columns: list[str] | None = None, *, column_types: dict[str, str] | None = None
) -> pd.DataFrame:
    """Read a whole CSV or Parquet file into a DataFrame with a RangeIndex (row i is data row i + 1).

    ``columns`` selects (and orders) columns; missing ones raise a DataError naming all of them.
    ``column_types`` maps column name -> "numeric" (read as float64), "category" or "string" (read as text);
    pass :meth:`Preprocessor.column_types` at prediction time so types do not depend on the new file.
    """
    path = Path(path)
    fmt = _file_format(path)
    _check_file(path)
    types = _check_column_types(column_types)
    table = _read_csv(path, columns, types) if fmt == "csv" else _read_parquet(path, columns)
    if table.num_rows == 0:
        raise DataError(f"{path}: has {'a header but ' if fmt == 'csv' else ''}no data rows")
    return _to_pandas(table, path, types)


def iter_table_batches(
    path: Path,
    columns: list[str] | None,
    batch_rows: int = 65536,
    *,
    column_types: dict[str, str] | None = None,
) -> Iterator[pd.DataFrame]:
    """Stream a CSV or Parquet file as DataFrames of at most ``batch_rows`` rows; memory stays flat.

    Each frame's RangeIndex continues the previous one, so error row numbers refer to the whole file. For CSV
    every block must have the same types: columns in ``column_types`` are read as numeric (float64) or text,
    and columns not listed are read as text (parse_time/parse_event and the Preprocessor accept numbers as
    text). Errors are those of :func:`read_table`: file, header and column problems are raised by this call,
    problems in the rows when the offending block is reached.
    """
    path = Path(path)
    fmt = _file_format(path)
    _check_file(path)
    if batch_rows < 1:
        raise ConfigError(f"batch_rows must be >= 1, got {batch_rows}")
    types = _check_column_types(column_types)
    if fmt == "csv":
        return _iter_csv(path, columns, batch_rows, types)
    return _iter_parquet(path, columns, batch_rows, types)


def table_columns(path: Path) -> list[str]:
    """The column names of a CSV or Parquet file (stripped), from its header or schema; no rows are read."""
    path = Path(path)
    fmt = _file_format(path)
    _check_file(path)
    if fmt == "csv":
        return _clean_names(_csv_header(path)[0], path)
    return _open_parquet(path)[2]


def fingerprint(path: Path) -> str:
    """``"blake2b:<32 hex digits>:<size in bytes>"`` of the file's content, read in 1 MiB chunks."""
    path = Path(path)
    _check_file(path)
    digest = hashlib.blake2b(digest_size=16)
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return f"blake2b:{digest.hexdigest()}:{size}"


# --------------------------------------------------------------------------------------------- columns


def _not_found(path: Path, what: str, name: str, available: list[str]) -> DataError:
    close = difflib.get_close_matches(name, available, n=1) or [
        a for a in available if a.lower() == name.lower()
    ]
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return DataError(f"{path}: {what} column '{name}' not found (available: {_quote_list(available)}){hint}")


def select_feature_columns(
    columns: list[str],
    *,
    time_col: str,
    event_col: str,
    id_col: str | None,
    features: list[str] | None,
    exclude: list[str] | None,
    path: Path,
) -> list[str]:
    """Feature columns: ``features`` (default: all but time, event and id) minus ``exclude``, in file order.

    Unknown names in ``features``/``exclude`` and a missing time/event/id column raise DataError.
    """
    columns = list(columns)
    roles = {"time": time_col, "event": event_col, "id": id_col}
    if time_col == event_col:
        raise ConfigError(f"time and event columns must differ (both are '{time_col}')")
    for role, name in roles.items():
        if name is not None and name not in columns:
            raise _not_found(path, role, name, columns)
    reserved = {n for n in roles.values() if n is not None}
    for option, names in (("features", features), ("exclude", exclude)):
        unknown = [n for n in names or [] if n not in columns]
        if unknown:
            raise DataError(
                f"{path}: --{option} names {_plural(len(unknown), 'column')} not in the file: {_quote_list(unknown)} "
                f"(available: {_quote_list(columns)})"
            )
    if features is not None:
        clash = [n for n in features if n in reserved]
        if clash:
            raise ConfigError(f"features must not include the time, event or id column: {_quote_list(clash)}")
        wanted = set(features)
        chosen = [c for c in columns if c in wanted]
    else:
        chosen = [c for c in columns if c not in reserved]
    dropped = set(exclude or [])
    chosen = [c for c in chosen if c not in dropped]
    if not chosen:
        raise DataError(
            f"{path}: no feature columns left (columns: {_quote_list(columns)}; "
            f"time '{time_col}', event '{event_col}', id {id_col!r}, excluded {_quote_list(sorted(dropped))})"
        )
    return chosen


# --------------------------------------------------------------------------------------------- time and event


def _text_view(values: pd.Series, *, path: Path, column: str) -> tuple[np.ndarray, np.ndarray]:
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
            if len(positions) > _SAMPLE:
                break
    if not positions:
        return None
    pos = np.asarray(positions)
    sample = _sample(_row_numbers(values.index, pos), [values.array[i] for i in positions])
    return DataError(
        f"{path}: column '{column}' holds nested values (lists, structs or maps: {sample}); nested/list columns "
        f"are not supported: flatten it into one column per value, or --exclude it"
    )


def _is_missing_text(value: Any) -> bool:
    if value is None or value is pd.NA:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip().lower() in _NA_LOWER


def _per_row(per_unique: np.ndarray, codes: np.ndarray, missing: Any) -> np.ndarray:
    """Expand a per-unique-value array to rows; rows with code -1 get ``missing``."""
    return np.append(per_unique, np.array([missing], dtype=per_unique.dtype))[codes]


def _parse_numbers(uniques: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(numbers, not numbers) per distinct cell value: float64 (NaN for missing) and a bool mask of refusals.

    The one definition of what a numeric column may hold as text, used by training and by every reader:
    missing-value spellings in any case with any surrounding whitespace (``" NA"``, ``"null"``, ``"   "``)
    are missing; anything Python's ``float`` reads (surrounding whitespace ignored) is a number.
    """
    parsed = np.full(len(uniques), np.nan)
    bad = np.zeros(len(uniques), dtype=bool)
    for k, value in enumerate(uniques):  # per distinct value, not per row
        if _is_missing_text(value):
            continue
        if isinstance(value, (bool, np.bool_)):
            bad[k] = True
            continue
        try:
            parsed[k] = float(value.strip() if isinstance(value, str) else value)
        except (TypeError, ValueError):
            bad[k] = True
    return parsed, bad


def _numbers_from_text(values: pd.Series, *, path: Path, column: str, context: str) -> np.ndarray:
    """(n,) float64 from a text/object/categorical column; DataError listing values that are not numbers."""
    codes, uniques = _text_view(values, path=path, column=column)
    parsed, bad = _parse_numbers(uniques)
    bad_rows = np.flatnonzero(_per_row(bad, codes, False))
    if len(bad_rows):
        sample = _sample(_row_numbers(values.index, bad_rows), uniques[codes[bad_rows[:_SAMPLE]]])
        raise DataError(
            f"{path}: {_column_phrase(column, context)} has {_plural(len(bad_rows), 'non-numeric value')} "
            f"({sample})"
        )
    return _per_row(parsed, codes, np.nan)


def _column_phrase(column: str, context: str) -> str:
    return f"column '{column}'" + (f" {context}" if context else "")


def _as_float(values: pd.Series, *, path: Path, column: str, context: str = "") -> np.ndarray:
    """(n,) float64 with NaN for missing; numeric dtypes directly, text parsed (DataError on non-numbers)."""
    dtype = values.dtype
    if pd.api.types.is_bool_dtype(dtype):
        raise DataError(f"{path}: {_column_phrase(column, context)} holds true/false values, not numbers")
    if pd.api.types.is_numeric_dtype(dtype) and not isinstance(dtype, pd.CategoricalDtype):
        if isinstance(dtype, np.dtype):
            return values.to_numpy(dtype=np.float64, copy=False)
        return values.to_numpy(dtype=np.float64, na_value=np.nan)
    if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
        raise DataError(f"{path}: {_column_phrase(column, context)} holds dates/times, not numbers")
    return _numbers_from_text(values, path=path, column=column, context=context)


def _report(
    values: pd.Series,
    mask: np.ndarray,
    *,
    path: Path,
    column: str,
    what: str,
    shown: np.ndarray,
    hint: str = "",
) -> None:
    """Raise a DataError if ``mask`` (n,) marks any row: count, row numbers and values.

    ``what`` is a noun phrase with ``{s}`` where the plural "s" goes, e.g. ``"negative value{s}"``.
    """
    pos = np.flatnonzero(mask)
    if len(pos):
        sample = _sample(_row_numbers(values.index, pos), shown[pos[:_SAMPLE]])
        phrase = what.format(s="" if len(pos) == 1 else "s")
        raise DataError(f"{path}: column '{column}' has {len(pos)} {phrase} ({sample}){hint}")


def parse_time(values: pd.Series, *, path: Path, column: str, min_exclusive: bool) -> np.ndarray:
    """Survival/censoring times, (n,) float64 in the file's time unit.

    Must be numeric (numbers stored as text are accepted when every value parses), finite, not missing and
    ``>= 0`` (``> 0`` when ``min_exclusive``, e.g. for Weibull models that take log(time)).
    """
    time = _as_float(values, path=path, column=column)
    where = {"values": values, "path": path, "column": column, "shown": time}
    _report(mask=np.isnan(time), what="missing value{s}", **where)
    _report(mask=np.isinf(time), what="infinite value{s}", **where)
    if min_exclusive:
        _report(mask=time <= 0, what="value{s} <= 0", hint="; this model needs time > 0", **where)
    else:
        _report(mask=time < 0, what="negative value{s}", **where)
    return np.ascontiguousarray(time, dtype=np.float64)


def _bool_codes(uniques: np.ndarray) -> np.ndarray:
    """Per unique value: 1 true, 0 false, -1 not a recognised spelling (missing counts as not recognised)."""
    out = np.full(len(uniques), -1, dtype=np.int8)
    for k, value in enumerate(uniques):
        if isinstance(value, (bool, np.bool_)):
            out[k] = int(value)
        elif isinstance(value, (int, float, np.integer, np.floating)) and not _is_missing_text(value):
            out[k] = int(value) if value in (0, 1) else -1
        elif isinstance(value, str):
            word = value.strip().lower()
            out[k] = 1 if word in _TRUE_WORDS else 0 if word in _FALSE_WORDS else -1
    return out


_EVENT_HINT = "; use 1/0, true/false or yes/no (1 = event, 0 = censored)"


def parse_event(values: pd.Series, *, path: Path, column: str) -> np.ndarray:
    """Event indicators, (n,) bool: True = event observed, False = censored.

    Accepts bool, 0/1 (int or float) and the text spellings true/false, yes/no, t/f, y/n, 1/0 (any case,
    surrounding whitespace ignored). Anything else, missing values included, raises a DataError.
    """
    where = {"values": values, "path": path, "column": column, "what": "invalid event value{s}"}
    if values.dtype == np.bool_:
        return values.to_numpy(dtype=bool, copy=True)
    if pd.api.types.is_numeric_dtype(values.dtype) and not isinstance(values.dtype, pd.CategoricalDtype):
        num = values.to_numpy(dtype=np.float64, na_value=np.nan)
        _report(mask=~((num == 0) | (num == 1)), shown=num, hint=_EVENT_HINT, **where)
        return num == 1
    codes, uniques = _text_view(values, path=path, column=column)
    flags = _per_row(_bool_codes(uniques), codes, -1)
    _report(mask=flags < 0, shown=_per_row(uniques, codes, None), hint=_EVENT_HINT, **where)
    return flags == 1


# --------------------------------------------------------------------------------------------- preprocessing


@dataclass(frozen=True)
class NumericColumn:
    """A numeric input: output ``(x - mean) / scale``, missing -> median; optional 0/1 ``<name>__missing``."""

    name: str
    mean: float
    scale: float
    median: float
    missing_indicator: bool


@dataclass(frozen=True)
class CategoricalColumn:
    """A text or boolean input: one 0/1 output per training category (sorted); missing/unseen -> all zeros."""

    name: str
    categories: tuple[str, ...]
    boolean: bool = False


def _label(value: Any, boolean: bool) -> str | None:
    """Category label of a cell (None = missing): stripped text, ints without ".0", "True"/"False"."""
    if _is_missing_text(value):
        return None
    if isinstance(value, (bool, np.bool_)):
        return "True" if value else "False"
    if boolean:
        word = str(value).strip().lower()
        if word in _TRUE_WORDS:
            return "True"
        if word in _FALSE_WORDS:
            return "False"
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    text = str(value).strip()
    return text or None


# Predict warns about values this many training standard deviations from the training mean: far beyond any
# real tail (a skewed lab value may reach 10), so most likely a unit error (days for years, g for kg) or a typo.
FAR_FROM_TRAINING = 50.0


def _count_new_values(counts: NewValues, specs: Sequence[NumericColumn | CategoricalColumn],
                      decoded: list[np.ndarray], df: pd.DataFrame) -> None:
    """Add the rows of ``df`` to ``counts``: missing numeric values, and labels outside the categories."""
    counts.rows += len(df)
    for spec, values in zip(specs, decoded, strict=True):
        if isinstance(spec, NumericColumn):
            counts.missing[spec.name] = counts.missing.get(spec.name, 0) + int(np.isnan(values).sum())
            if _within(values, spec, FAR_FROM_TRAINING):  # the usual case: no per-row work
                continue
            with np.errstate(over="ignore", invalid="ignore"):
                distance = np.abs(_standardise(values, spec.mean, spec.scale))
            far = distance > FAR_FROM_TRAINING  # NaN compares False
            if far.any():
                worst = int(np.flatnonzero(far)[np.argmax(distance[far])])
                count, value, furthest = counts.far.get(spec.name, (0, 0.0, 0.0))
                if distance[worst] > furthest:
                    value, furthest = float(values[worst]), float(distance[worst])
                counts.far[spec.name] = (count + int(far.sum()), value, furthest)
        elif (values < 0).any():  # missing or unseen: look at the labels of those rows only, per distinct value
            codes, uniques = pd.factorize(pd.Series(df[spec.name].to_numpy()[values < 0]), use_na_sentinel=True)
            rows = np.bincount(codes[codes >= 0], minlength=len(uniques))
            missing = int(np.count_nonzero(codes < 0))
            for value, count in zip(uniques, rows.tolist(), strict=True):
                label = _label(value, spec.boolean)
                if label is None:  # text that reads as missing ("", "NA") is a missing value, not a category
                    missing += count
                else:
                    seen = counts.unseen.setdefault(spec.name, {})
                    seen[label] = seen.get(label, 0) + count
            counts.missing_categories[spec.name] = counts.missing_categories.get(spec.name, 0) + missing


def _category_codes(
    values: pd.Series, categories: Sequence[str], boolean: bool, *, path: Path, column: str
) -> np.ndarray:
    """(n,) int64 position of each row's label in ``categories``; -1 for missing or unseen."""
    codes, uniques = _text_view(values, path=path, column=column)
    if not len(uniques):
        return np.full(len(values), -1, dtype=np.int64)
    labels = [_label(u, boolean) for u in uniques]
    lookup = {c: i for i, c in enumerate(categories)}
    mapped = np.array([lookup.get(lab, -1) if lab is not None else -1 for lab in labels], dtype=np.int64)
    return np.where(codes >= 0, mapped[np.maximum(codes, 0)], -1)


def _kind(values: pd.Series, *, path: Path, column: str) -> str:
    """ "numeric", "category" or "bool" for a training column; DataError for dates and times."""
    dtype = values.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return "category"
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_numeric_dtype(dtype):
        return "numeric"
    inferred = "datetime" if pd.api.types.is_datetime64_any_dtype(dtype) else pd.api.types.infer_dtype(values)
    if inferred in ("datetime", "datetime64", "date", "time", "timedelta", "timedelta64", "period"):
        raise DataError(
            f"{path}: column '{column}' holds dates/times; convert it to a number "
            f"(e.g. days since a reference date) or --exclude it"
        )
    if inferred == "boolean":
        return "bool"
    if inferred in ("integer", "floating", "mixed-integer-float", "decimal"):
        return "numeric"
    return "category"


def _entirely_missing(n_rows: int, path: Path, column: str) -> DataError:
    return DataError(
        f"{path}: feature column '{column}' is missing in all {n_rows} training rows; "
        f"nothing can be learnt from it, --exclude it"
    )


# Threads for the column-wise and block-wise work of preprocessing (2 cores here; more rarely pay off, as
# the Python between NumPy calls holds the GIL).
_PREPARE_THREADS = min(2, usable_cores())
# Below this many rows per task in all, threads cost more than they save.
_THREADED_FROM_ROWS = 200_000


def _in_threads(work: Callable[[Any], Any], items: Sequence[Any], rows_per_item: int) -> list[Any]:
    """``[work(item) for item in items]``, in up to ``_PREPARE_THREADS`` threads when there is enough work;
    results in order, and the first item's error (in order) is raised, as from the loop."""
    if _PREPARE_THREADS < 2 or len(items) < 2 or rows_per_item * len(items) < _THREADED_FROM_ROWS:
        return [work(item) for item in items]
    with ThreadPoolExecutor(max_workers=_PREPARE_THREADS) as pool:
        return list(pool.map(work, items))


def _fit_numeric(
    values: pd.Series, rows: np.ndarray | None, path: Path, column: str, warnings: list[str]
) -> NumericColumn:
    x = _as_float(values, path=path, column=column)
    inf = np.isinf(x)
    _report(values, inf if rows is None else inf & rows, path=path, column=column, what="infinite value{s}",
            shown=x)
    x = x if rows is None else x[rows]
    observed = x[~np.isnan(x)]
    if not len(observed):
        raise _entirely_missing(len(x), path, column)
    mean, std, median = _scaled_stats(observed)
    if not (math.isfinite(mean) and math.isfinite(std) and math.isfinite(median)):
        extreme = np.abs(x) > 0.5 * np.finfo(np.float64).max
        where = {"path": path, "column": column, "shown": x, "what": "value{s} too large to standardise"}
        _report(values if rows is None else values[rows], extreme, **where, hint="; rescale the column")
        raise DataError(f"{path}: column '{column}' cannot be standardised (its mean or spread is not finite)")
    if not std > 0:
        warnings.append(
            f"constant feature '{column}' (every value is {_show(observed[0])}); kept, it carries no information"
        )
        std = 1.0
    elif _looks_like_row_numbers(observed):
        warnings.append(
            f"column '{column}' looks like an identifier (a different whole number in every row, "
            f"{int(observed.min())} to {int(observed.max())}); it is used as a feature: --exclude it, or name it "
            "with --id-col to copy it into the predictions"
        )
    return NumericColumn(column, mean, std, median, bool(len(observed) < len(x)))


def _looks_like_row_numbers(observed: np.ndarray) -> bool:
    """Whole numbers, all different, packed into a range not much wider than their count (row numbers, ids).

    A split keeps a part of the rows, so the range may be up to 1.5 times the count of the values seen.
    """
    n = len(observed)
    if n < 20 or float(observed.max()) - float(observed.min()) + 1 > 1.5 * n:  # cheap tests first
        return False
    return bool(np.all(observed == np.round(observed))) and len(np.unique(observed)) == n


def _scaled_stats(observed: np.ndarray) -> tuple[float, float, float]:
    """(mean, population std, median) of finite values, without overflow (e.g. squares of 1e200) or underflow.

    Values beyond 1e±100 are first divided by a power of two near their largest magnitude: that is exact, so
    the results are bit for bit those of the unscaled arithmetic wherever that does not overflow.
    """
    peak = max(-float(np.fmin.reduce(observed)), float(np.fmax.reduce(observed)))
    power = 1.0 if peak == 0 or 1e-100 < peak < 1e100 else math.ldexp(1.0, math.frexp(peak)[1] - 1)
    scaled = observed if power == 1.0 else observed / power
    with np.errstate(over="ignore"):
        stats = np.array([scaled.mean(), scaled.std(), np.median(scaled)]) * power
    return float(stats[0]), float(stats[1]), float(stats[2])


_FLOAT32_MAX = float(np.finfo(np.float32).max)
_HUGE_SCALE = 1e250


def _standardise(x: np.ndarray, mean: float, scale: float) -> np.ndarray:
    """``(x - mean) / scale``, or ``x / scale - mean / scale`` for a scale above ``_HUGE_SCALE``.

    ``x - mean`` could overflow there (x = 1e308, mean = -1e308); neither form overflows where the result
    fits float32.
    """
    if scale > _HUGE_SCALE:
        return x / scale - mean / scale
    return (x - mean) / scale


def _within(x: np.ndarray, spec: NumericColumn, limit: float) -> bool:
    """Whether every standardised value of ``x`` but NaN lies within ±``limit``.

    Standardising is monotonic, so only the smallest and largest value are standardised: two passes over
    ``x``, no temporary array.
    """
    if not x.size:
        return True
    ends = np.array([np.fmin.reduce(x), np.fmax.reduce(x)])  # NaN only when every value is NaN
    with np.errstate(over="ignore", invalid="ignore"):
        z = _standardise(ends, spec.mean, spec.scale)
    return bool(np.all((np.abs(z) <= limit) | np.isnan(ends)))


def _fit_categorical(
    values: pd.Series, rows: np.ndarray | None, path: Path, column: str, boolean: bool, warnings: list[str]
) -> CategoricalColumn:
    codes, uniques = _text_view(values, path=path, column=column)
    codes = codes if rows is None else codes[rows]
    labels = [_label(u, boolean) for u in uniques]
    present = np.zeros(len(uniques), dtype=bool)
    present[np.unique(codes[codes >= 0])] = True
    categories = tuple(sorted({lab for lab, p in zip(labels, present, strict=True) if p and lab is not None}))
    if not categories:
        raise _entirely_missing(len(codes), path, column)
    label_present = np.array([lab is not None for lab in labels] + [False])
    n_observed = int(np.count_nonzero(label_present[codes]))  # codes of -1 pick the trailing False
    formatted = None if boolean else _formatted_numbers(column, categories)
    if len(categories) == 1:
        warnings.append(
            f"constant feature '{column}' (every value is '{categories[0]}'); kept, it carries no information"
        )
    elif formatted is None and (
        len(categories) > 100 or (len(categories) > 10 and len(categories) > 0.5 * n_observed)
    ):  # numbers written as "55,000" are many categories too, but not an identifier: the warning below says why
        warnings.append(
            f"high-cardinality categorical feature '{column}' ({len(categories)} categories "
            f"in {n_observed} rows) adds {len(categories)} inputs; an identifier? --exclude it"
        )
    if formatted is not None:
        warnings.append(formatted)
    elif not boolean and len(categories) >= 3:
        numeric = [c for c in categories if _parses_as_float(c)]
        text = [c for c in categories if not _parses_as_float(c)]
        if text and len(numeric) >= 0.9 * len(categories):
            warnings.append(
                f"column '{column}' is mostly numbers but has text values ({_quote_list(text, 5)}); "
                f"treated as categorical, fix or blank those values to use it as numeric"
            )
    if not boolean:
        case = _case_variants(column, categories)
        if case:
            warnings.append(case)
    return CategoricalColumn(column, categories, boolean)


# Numbers as spreadsheets and reports write them. Not converted: "1,234" may be 1234 or 1.234.
_GROUPED = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?"  # 55,000 or 1,234.5
_DECIMAL_COMMA = r"\d+,\d+|\d{1,3}(?:\.\d{3})+,\d+"  # 1,5 or 1.234,5 (not matching _GROUPED)
_FORMATS = (
    ("percent signs", re.compile(rf"[+-]?(?:{_GROUPED}|{_DECIMAL_COMMA}|\d+(?:\.\d*)?|\.\d+)\s*%")),
    ("thousands separators", re.compile(rf"[+-]?{_GROUPED}")),
    ("decimal commas", re.compile(rf"[+-]?(?:{_DECIMAL_COMMA})")),
)
_FIXES = {"thousands separators": "no thousands separators", "decimal commas": "'.' as the decimal point",
          "percent signs": "no '%'"}  # in the order the warning names them


def _formatted_numbers(column: str, categories: Sequence[str]) -> str | None:
    """A warning when a text column looks like numbers written with thousands separators, decimal commas or
    percent signs (at least one such value, and 90% of the categories numbers either way); else None."""
    found: dict[str, list[str]] = {}
    plain = 0
    for label in categories:
        kind = next((name for name, pattern in _FORMATS if pattern.fullmatch(label)), None)
        if kind is not None:
            found.setdefault(kind, []).append(label)
        elif _parses_as_float(label):
            plain += 1
    written = sum(len(v) for v in found.values())
    if len(categories) < 2 or not written or written + plain < 0.9 * len(categories):
        return None
    kinds = [kind for kind in _FIXES if kind in found]
    how = kinds[0] if len(kinds) == 1 else ", ".join(kinds[:-1]) + " and " + kinds[-1]
    fixes = ", ".join(_FIXES[kind] for kind in kinds)
    examples = [label for kind in kinds for label in found[kind][:3]][:5]
    return (
        f"column '{column}' looks like numbers written with {how} ({_quote_list(examples, 5)}); treated as "
        f"categorical (one input per value), not as numbers: convert it to plain numbers ({fixes}) to use it "
        f"as numeric"
    )


def _case_variants(column: str, categories: Sequence[str]) -> str | None:
    """A warning naming the groups of categories that differ only in case ('Male', 'male'); else None."""
    groups: dict[str, list[str]] = {}
    for label in categories:  # sorted: groups in order of their first member, members sorted
        groups.setdefault(label.casefold(), []).append(label)
    clashes = [labels for labels in groups.values() if len(labels) > 1]
    if not clashes:
        return None
    shown = "; ".join(", ".join(f"'{label}'" for label in labels) for labels in clashes[:_SAMPLE])
    more = f"; and {len(clashes) - _SAMPLE} more groups" if len(clashes) > _SAMPLE else ""
    return (
        f"column '{column}' has categories that differ only in case ({shown}{more}): kept apart; "
        f"fix the spelling if they mean the same"
    )


def _numbers_as_text(values: pd.Series, *, path: Path, column: str) -> bool:
    """Whether every non-missing value of a text or categorical column is the text of a finite number."""
    _, uniques = _text_view(values, path=path, column=column)
    labels = [label for label in (_label(u, False) for u in uniques) if label is not None]
    return bool(labels) and all(_parses_as_float(label) and math.isfinite(float(label)) for label in labels)


def _missing_spellings(values: pd.Series, rows: np.ndarray | None, *, path: Path, column: str) -> str:
    """``" (3 values such as ' NA' read as missing)"`` for text read as missing in the ``rows``, else ``""``.

    Counts cells whose text is not one of :data:`NA_MARKERS` (which a CSV reader makes missing anyway) but
    reads as missing, e.g. ``" NA"``, ``"null"``, ``"   "``: reading them as missing is a guess.
    """
    codes, uniques = _text_view(values, path=path, column=column)
    codes = codes if rows is None else codes[rows]
    spelled = np.array([isinstance(u, str) and u not in NA_MARKERS and _is_missing_text(u) for u in uniques]
                       + [False])
    if not spelled[:-1].any():
        return ""
    counts = np.bincount(codes[spelled[codes]], minlength=len(uniques))  # codes of -1 pick the trailing False
    order = [int(k) for k in np.argsort(-counts, kind="stable") if counts[k]]
    shown = ", ".join(_show(uniques[k]) for k in order[:3])
    total = int(counts.sum())
    return f" ({_plural(total, 'value')} such as {shown} read as missing)"


def _parses_as_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@dataclass
class NewValues:
    """What a fitted :class:`Preprocessor` met in new rows that training did not prepare it for (counts)."""

    rows: int = 0
    unseen: dict[str, dict[str, int]] = field(default_factory=dict)  # categorical column -> new label -> rows
    missing: dict[str, int] = field(default_factory=dict)  # numeric column -> rows without a value
    missing_categories: dict[str, int] = field(default_factory=dict)  # categorical column -> rows without a value
    # numeric column -> (rows more than FAR_FROM_TRAINING training stds from the training mean, the furthest
    # value, its distance in stds)
    far: dict[str, tuple[int, float, float]] = field(default_factory=dict)

    def warnings(self, path: Path) -> list[str]:
        """One line per column with categories never seen in training, with no value in any row, or with values
        far from the training ones."""
        lines = []
        for column, labels in self.unseen.items():
            common = sorted(labels, key=lambda label: (-labels[label], label))
            shown = ", ".join(repr(label) for label in common[:_SAMPLE])
            more = f" and {len(common) - _SAMPLE} more" if len(common) > _SAMPLE else ""
            rows = sum(labels.values())
            verb = "holds" if rows == 1 else "hold"
            lines.append(f"{path}: column '{column}': {_plural(rows, 'row')} {verb} categories not seen in "
                         f"training ({shown}{more}); encoded as no category, like a missing value")
        for column, count in self.missing.items():
            if self.rows and count == self.rows:
                lines.append(f"{path}: column '{column}' has no value in any row; the training median was used")
        for column, count in self.missing_categories.items():
            if self.rows and count == self.rows:
                lines.append(f"{path}: column '{column}' has no value in any row; encoded as no category in every row")
        for column, (count, extreme, _) in self.far.items():
            lines.append(f"{path}: column '{column}': {_plural(count, 'row')} more than {FAR_FROM_TRAINING:g} "
                         f"training standard deviations from the training mean (furthest: {_show(extreme)}); the "
                         "model extrapolates there: check the values and their unit")
        return lines


@dataclass
class Preprocessor:
    """Fitted feature encoding: numeric inputs standardised, text/boolean inputs one-hot encoded.

    Fit on training rows only. Numeric: ``(x - mean) / std`` (population std; a constant column keeps std 1
    and is reported in ``warnings``); missing values become the training median, and a 0/1 feature
    ``<name>__missing`` follows the column when the *training* column had missing values (a column without
    one still imputes the median at transform). Categorical: one 0/1 feature ``<name>=<category>`` per
    training category in sorted order; missing and unseen categories give all zeros. Boolean columns are
    categorical with categories "False"/"True" (text spellings like yes/no are understood at transform).
    Mean and std are computed without overflow for any finite column (e.g. values near 1e300); at transform,
    values whose standardised value does not fit float32 are refused (DataError with rows and values).
    """

    columns: list[NumericColumn | CategoricalColumn]
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def fit(
        cls, df: pd.DataFrame, feature_cols: list[str], *, path: Path, rows: np.ndarray | None = None
    ) -> Preprocessor:
        """Learn the encoding of ``feature_cols`` from the training rows of ``df``.

        ``rows``: optional (n,) bool mask of the training rows (default: all); the same as fitting on
        ``df[rows]`` without copying the frame. At least one training row is needed.
        """
        feature_cols = list(dict.fromkeys(feature_cols))
        missing = [c for c in feature_cols if c not in df.columns]
        if missing:
            raise DataError(
                f"{path}: missing feature {_plural(len(missing), 'column')} {_quote_list(missing)}"
            )
        if rows is not None and rows.shape != (len(df),):
            raise ValueError(f"rows must be a bool mask of shape ({len(df)},), got shape {rows.shape}")
        if len(df) == 0 or (rows is not None and not rows.any()):
            raise DataError(f"{path}: no training rows")

        def fit_column(name_values: tuple[str, pd.Series]) -> tuple[NumericColumn | CategoricalColumn, list[str]]:
            name, values = name_values
            warnings: list[str] = []
            # Types of text columns are inferred from their values: look only at the training rows.
            kind_of = values if rows is None or values.dtype != object else values[rows]
            kind = _kind(kind_of, path=path, column=name)
            if kind == "category" and _numbers_as_text(values, path=path, column=name):
                # As a CSV reader would: text such as "61" or "0.5" in every row is a number (e.g. a Parquet
                # column written from strings), not a category per value.
                warnings.append(f"column '{name}' holds numbers stored as text"
                                f"{_missing_spellings(values, rows, path=path, column=name)}; read as numbers")
                kind = "numeric"
            if kind == "numeric":
                return _fit_numeric(values, rows, path, name, warnings), warnings
            return _fit_categorical(values, rows, path, name, kind == "bool", warnings), warnings

        # Columns are fitted in threads (NumPy's medians and sums release the GIL); results, warnings and the
        # first error come in column order, as from a loop. The frame is only read here, column by column.
        columns = [(name, df[name]) for name in feature_cols]
        fitted = _in_threads(fit_column, columns, rows_per_item=len(df))
        return cls([spec for spec, _ in fitted], [warning for _, found in fitted for warning in found])

    @property
    def input_columns(self) -> list[str]:
        """Names of the input columns transform needs, in order."""
        return [c.name for c in self.columns]

    @property
    def feature_names(self) -> list[str]:
        """Names of the p output features, in output column order."""
        names: list[str] = []
        for c in self.columns:
            if isinstance(c, NumericColumn):
                names += [c.name] + ([f"{c.name}__missing"] if c.missing_indicator else [])
            else:
                names += [f"{c.name}={cat}" for cat in c.categories]
        return names

    def column_types(self) -> dict[str, str]:
        """Input column -> "numeric" or "category", for reading new files with fixed types."""
        return {c.name: "numeric" if isinstance(c, NumericColumn) else "category" for c in self.columns}

    def check_columns(self, columns: Sequence[str], *, path: Path) -> None:
        """DataError naming every input column missing from ``columns`` (the columns of ``path``)."""
        present = set(columns)
        missing = [c for c in self.input_columns if c not in present]
        if missing:
            raise DataError(
                f"{path}: missing {_plural(len(missing), 'column')} the model was trained on: "
                f"{_quote_list(missing)}"
            )

    def transform(self, df: pd.DataFrame, *, path: Path, new_values: NewValues | None = None) -> np.ndarray:
        """Encode ``df`` (n rows; extra columns ignored) into an (n, p) float32 C-contiguous matrix.

        ``new_values``: if given, unseen categories and missing values of these rows are added to it.
        """
        return self.transform_parts(df, path=path, parts=[None], new_values=new_values)[0]

    def transform_parts(
        self, df: pd.DataFrame, *, path: Path, parts: Sequence[np.ndarray | None], chunk: int = 32_768,
        new_values: NewValues | None = None,
    ) -> list[np.ndarray]:
        """Encode the rows of ``df`` picked by each of ``parts`` ((n,) bool masks; None = all rows).

        Returns one (rows in part, p) float32 C-contiguous matrix per part, rows in file order: the same
        as ``transform(df)[mask]`` for each mask. Every column is checked and decoded once; the matrices are
        then filled ``chunk`` rows at a time, so each block of output is written while it is in cache and
        no full-size intermediate matrix is made (fresh memory is slow to touch on some machines).
        """
        self.check_columns(list(df.columns), path=path)
        decoded = [self._decode(spec, df[spec.name], path) for spec in self.columns]
        if new_values is not None:
            _count_new_values(new_values, self.columns, decoded, df)
        outs = []
        blocks: list[tuple[np.ndarray, slice | np.ndarray]] = []
        for part in parts:
            rows = None if part is None else np.flatnonzero(part)
            size = len(df) if rows is None else len(rows)
            out = np.empty((size, len(self.feature_names)), dtype=np.float32)
            for start in range(0, size, chunk):
                pick = slice(start, start + chunk) if rows is None else rows[start : start + chunk]
                blocks.append((out[start : start + chunk], pick))
            outs.append(out)
        # Blocks write disjoint rows: they are filled in threads (NumPy releases the GIL in its loops).
        _in_threads(lambda block: self._encode_rows(block[0], decoded, block[1]), blocks, rows_per_item=chunk)
        return outs

    @staticmethod
    def _decode(spec: NumericColumn | CategoricalColumn, values: pd.Series, path: Path) -> np.ndarray:
        """A column as (n,) float64 (numeric; NaN where missing) or int64 category codes (-1 missing/unseen).

        Raises DataError for non-numeric text in a numeric column, for infinite values and for values whose
        standardised value does not fit float32 (e.g. 1e300 for a column of ages).
        """
        if isinstance(spec, CategoricalColumn):
            return _category_codes(values, spec.categories, spec.boolean, path=path, column=spec.name)
        x = _as_float(values, path=path, column=spec.name, context="was numeric in training but")
        if not _within(x, spec, _FLOAT32_MAX):  # rare: find the offending rows
            where = {"path": path, "column": spec.name, "shown": x}
            _report(values, np.isinf(x), what="infinite value{s}", **where)
            with np.errstate(over="ignore", invalid="ignore"):
                extreme = ~(np.abs(_standardise(x, spec.mean, spec.scale)) <= _FLOAT32_MAX) & ~np.isnan(x)
            _report(values, extreme, what="value{s} too extreme for the model", **where,
                    hint=f"; standardised with the training mean {spec.mean:.6g} and std {spec.scale:.6g} they "
                         f"are beyond the float32 range (±{_FLOAT32_MAX:.3g}): check the values and their unit")
        return x

    def _encode_rows(self, out: np.ndarray, decoded: list[np.ndarray], pick: slice | np.ndarray) -> None:
        """Write the features of the rows ``pick`` of every decoded column into ``out`` (rows, p)."""
        column = 0
        for spec, values in zip(self.columns, decoded, strict=True):
            block = values[pick]
            if isinstance(spec, NumericColumn):
                gaps = np.isnan(block)
                standard = _standardise(block, spec.mean, spec.scale)
                if gaps.any():
                    standard[gaps] = _standardise(np.array([spec.median]), spec.mean, spec.scale)[0]
                out[:, column] = standard
                if spec.missing_indicator:
                    out[:, column + 1] = gaps
                    column += 1
                column += 1
            else:
                width = len(spec.categories)
                out[:, column : column + width] = 0.0
                hit = np.flatnonzero(block >= 0)
                out[hit, column + block[hit]] = 1.0
                column += width

    def to_state(self) -> dict:
        """Plain data (str, int, float, bool, list, dict), loadable by ``torch.load(weights_only=True)``."""
        cols: list[dict] = []
        for c in self.columns:
            if isinstance(c, NumericColumn):
                cols.append(
                    {
                        "name": c.name,
                        "kind": "numeric",
                        "mean": float(c.mean),
                        "scale": float(c.scale),
                        "median": float(c.median),
                        "missing_indicator": bool(c.missing_indicator),
                    }
                )
            else:
                cols.append(
                    {
                        "name": c.name,
                        "kind": "bool" if c.boolean else "category",
                        "categories": list(c.categories),
                    }
                )
        return {
            "version": _STATE_VERSION,
            "columns": cols,
            "warnings": [str(w) for w in self.warnings],
            # Derived, stored for readers of the checkpoint (``survmom inspect``); checked by from_state.
            "input_columns": self.input_columns,
            "column_types": self.column_types(),
            "feature_names": self.feature_names,
        }

    @classmethod
    def from_state(cls, state: dict) -> Preprocessor:
        """Rebuild from :meth:`to_state` output; StateError naming the first malformed entry."""
        if not isinstance(state, dict):
            raise StateError(f"preprocessor state must be a dict, got {type(state).__name__}")
        if state.get("version") != _STATE_VERSION:
            raise StateError(f"preprocessor state version {state.get('version')!r} is not {_STATE_VERSION}")
        unknown = set(state) - {
            "version",
            "columns",
            "warnings",
            "input_columns",
            "column_types",
            "feature_names",
        }
        if unknown:
            raise StateError(f"preprocessor state has unknown keys {sorted(unknown)}")
        cols = state.get("columns")
        if not isinstance(cols, list) or not cols:
            raise StateError("preprocessor state 'columns' must be a non-empty list")
        warnings = state.get("warnings", [])
        if not isinstance(warnings, list) or not all(isinstance(w, str) for w in warnings):
            raise StateError("preprocessor state 'warnings' must be a list of strings")
        specs = [_column_from_state(c, i) for i, c in enumerate(cols)]
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise StateError(f"preprocessor state has duplicate column names {names}")
        pre = cls(specs, list(warnings))
        derived = {
            "input_columns": pre.input_columns,
            "column_types": pre.column_types(),
            "feature_names": pre.feature_names,
        }
        for key, value in derived.items():
            if key in state and state[key] != value:
                raise StateError(f"preprocessor state '{key}' does not match its 'columns'")
        return pre


def _column_from_state(entry: Any, i: int) -> NumericColumn | CategoricalColumn:
    where = f"preprocessor state columns[{i}]"
    if not isinstance(entry, dict):
        raise StateError(f"{where} must be a dict, got {type(entry).__name__}")
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise StateError(f"{where}.name must be a non-empty string, got {name!r}")
    kind = entry.get("kind")
    expected = {
        "numeric": {"name", "kind", "mean", "scale", "median", "missing_indicator"},
        "category": {"name", "kind", "categories"},
        "bool": {"name", "kind", "categories"},
    }
    if kind not in expected:
        raise StateError(f"{where}.kind must be 'numeric', 'category' or 'bool', got {kind!r}")
    if set(entry) != expected[kind]:
        raise StateError(f"{where} ('{name}') must have keys {sorted(expected[kind])}, got {sorted(entry)}")
    if kind == "numeric":
        nums = {}
        for key in ("mean", "scale", "median"):
            v = entry[key]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise StateError(f"{where}.{key} ('{name}') must be a finite number, got {v!r}")
            nums[key] = float(v)
        if nums["scale"] <= 0:
            raise StateError(f"{where}.scale ('{name}') must be > 0, got {nums['scale']!r}")
        if not isinstance(entry["missing_indicator"], bool):
            raise StateError(f"{where}.missing_indicator ('{name}') must be a bool")
        return NumericColumn(name, nums["mean"], nums["scale"], nums["median"], entry["missing_indicator"])
    cats = entry["categories"]
    if not isinstance(cats, list) or not cats or not all(isinstance(c, str) and c for c in cats):
        raise StateError(f"{where}.categories ('{name}') must be a non-empty list of non-empty strings")
    if cats != sorted(set(cats)):
        raise StateError(f"{where}.categories ('{name}') must be sorted and unique")
    return CategoricalColumn(name, tuple(cats), kind == "bool")


# --------------------------------------------------------------------------------------------- splitting


def stratified_split(event: np.ndarray, frac: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, val_idx), sorted int64 row indices; ``frac`` of rows to validation, stratified by event.

    Deterministic for a seed. ``frac == 0`` gives an empty validation set; otherwise validation gets at least
    one row, training keeps at least one row, and when there are >= 2 events both sides get at least one.
    """
    event = np.asarray(event).astype(bool).ravel()
    n = len(event)
    if not 0.0 <= frac < 1.0:
        raise ConfigError(f"validation fraction must be in [0, 1), got {frac}")
    if n == 0:
        raise DataError("no rows to split")
    everything = np.arange(n, dtype=np.int64)
    if frac == 0.0 or n == 1:
        return everything, np.empty(0, dtype=np.int64)
    rng = np.random.default_rng(seed)
    events = rng.permutation(np.flatnonzero(event))
    censored = rng.permutation(np.flatnonzero(~event))
    n_val = min(max(round(frac * n), 1), n - 1)
    val_events = round(n_val * len(events) / n)
    if len(events) >= 2:
        val_events = min(max(val_events, 1), len(events) - 1)
    val_events = max(min(val_events, len(events), n_val), n_val - len(censored))
    val = np.concatenate([events[:val_events], censored[: n_val - val_events]])
    mask = np.zeros(n, dtype=bool)
    mask[val] = True
    return everything[~mask], everything[mask]
