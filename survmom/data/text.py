"""Delimited UTF-8 text with a header row: ``.csv``, ``.tsv``/``.tab``, each also ``.gz``/``.bz2``/``.zst``/``.xz``.

The delimiter of a ``.csv`` is detected from its first lines (:func:`dialect`): comma, semicolon or tab, the
one that splits the header and the first rows into the same number of fields (more than one); a
semicolon-separated file whose numbers use a decimal comma (the European spreadsheet export) is read with
``decimal_point=","`` (where those lines hold whole numbers only, a column written with decimal commas further
down is read with them: :mod:`~survmom.data.text_numbers`). A file that two delimiters split equally well is
refused: pass ``--delimiter``.
``.tsv``/``.tab`` files are tab-separated. ``--delimiter`` overrides both.

Cells equal to one of :data:`~survmom.data.cells.NA_MARKERS` are missing, and a lone ``"."`` where a number is
read. A file is parsed by pyarrow's
streaming reader, a few 1 MiB blocks at a time, so memory does not grow with the file. Columns typed
"numeric" are converted by pyarrow; a column holding values pyarrow refuses but training accepts (``" NA"``,
``"1_000"``) is read as text and parsed as training parses it (:func:`~survmom.data.cells.parse_numbers`).
A file that is not UTF-8 is refused with the (0-based) byte offset of the first bad byte, the column and the
rows: guessing an encoding would silently change category labels. Quoted values should not hold line breaks:
pyarrow cuts its parse blocks at line ends, and a row cut in two is refused with the line whose field count is
wrong.
"""

from __future__ import annotations

import bz2
import codecs
import csv
import gzip
import io
import itertools
import lzma
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

from survmom.data.cells import NA_MARKERS, parse_numbers, per_row
from survmom.data.formats import rebatch
from survmom.data.messages import SAMPLE, first_line, plural, quote_list, show_rows
from survmom.data.tables import clean_names, select, to_pandas
from survmom.data.text_bytes import check_text, first_bad_utf8
from survmom.data.text_numbers import decimal_point, text_columns_as_numbers, unconverted
from survmom.errors import ConfigError, DataError

_HEADER_PROBE = 1 << 20  # bytes read to find the header row
_STREAM_BLOCK = 1 << 20  # bytes per parse block of the streaming reader
_PROBE_LINES = 50  # lines (header included) that delimiter detection looks at
_CANDIDATES = {",": "comma", ";": "semicolon", "\t": "tab"}
# Suffix after the text suffix -> (pyarrow codec, Python opener); pyarrow builds usually lack lzma (xz).
_COMPRESSION = {".gz": ("gzip", gzip.open), ".bz2": ("bz2", bz2.open), ".zst": ("zstd", None),
                ".xz": (None, lzma.open)}
TEXT_SUFFIXES = tuple(f"{t}{c}" for t in (".csv", ".tsv", ".tab") for c in ("", *_COMPRESSION))
_DECIMAL_COMMA = re.compile(r"^\s*[-+]?(\d{1,3}(\.\d{3})+|\d*),\d+\s*$")  # 1,5 and Excel's 1.234,5
_GROUPED_POINTS = re.compile(r"^\s*[-+]?\d{1,3}(\.\d{3})+\s*$")  # 1.234: 1234 beside decimal commas
_DECIMAL_POINT = re.compile(r"^\s*[-+]?\d*\.\d+([eE][-+]?\d+)?\s*$")


@dataclass(frozen=True)
class Dialect:
    """How a delimited file is written: ``delimiter`` (one character), ``decimal`` ("." or ","), and
    ``notice``: one line saying what was detected when it is not a plain comma-separated file, else None;
    ``comma_later``: a semicolon or tab file whose first lines held no decimal point, so a column whose every
    value is a number with a decimal comma reads as numbers (:mod:`~survmom.data.text_numbers`); ``names``: the
    column names pyarrow is given (the header then skipped) when every data row ends in more empty fields than
    the header (``a,b`` over ``1,2,``) or the header in more than the rows (``a,b,`` over ``1,2``), else None."""

    delimiter: str = ","
    decimal: str = "."
    notice: str | None = None
    comma_later: bool = False
    names: tuple[str, ...] | None = None  # given to pyarrow for a header and rows differing by trailing empties


def dialect(path: Path, delimiter: str | None = None) -> Dialect:
    """The dialect of ``path`` from its first :data:`_PROBE_LINES` lines; ``delimiter`` (``--delimiter``)
    overrides detection. DataError when two delimiters split the sample equally well."""
    if delimiter is not None:
        delimiter = {"\\t": "\t", "tab": "\t"}.get(delimiter, delimiter)
        if len(delimiter) != 1 or delimiter in "\"\r\n":
            raise ConfigError(f"--delimiter must be one character (or 'tab'), got {delimiter!r}")
    lines = _first_lines(path)
    tabbed = path.name.lower().split(".")[-2 if _compression(path) else -1] in ("tsv", "tab")
    if delimiter is None and tabbed:
        delimiter = "\t"
    if delimiter is None:
        fits: dict[str, int] = {}
        for bare in (False, True):  # then widths without trailing empty fields (every row ending in ";")
            for candidate in _CANDIDATES if not fits else ():
                widths = {_filled(r) if bare else len(r) for r in csv.reader(lines, delimiter=candidate)}
                if len(widths) == 1 and widths != {1}:
                    fits[candidate] = widths.pop()
        if len(fits) > 1:
            shown = " and ".join(f"{_CANDIDATES[c]}s ({n} fields)" for c, n in fits.items())
            raise DataError(f"{path}: the first lines split equally well by {shown}; pass --delimiter "
                            f"(e.g. --delimiter ';') to say which")
        delimiter = next(iter(fits), ",")
    decimal, comma_later = ".", False
    if delimiter != ",":
        cells = [c for r in list(csv.reader(lines, delimiter=delimiter))[1:] for c in r]
        points = any(_DECIMAL_POINT.match(c) and not _GROUPED_POINTS.match(c) for c in cells)
        if any(_DECIMAL_COMMA.match(c) for c in cells) and not points:
            decimal = ","
        comma_later = decimal == "." and not points
    notice = None
    if (delimiter, decimal) != (",", ".") and not (tabbed and (delimiter, decimal) == ("\t", ".")):
        name = _CANDIDATES.get(delimiter, repr(delimiter))
        comma = " with decimal commas" if decimal == "," else ""
        notice = f"{path}: read as {name}-separated{comma} (detected from the first lines; --delimiter overrides)"
    return Dialect(delimiter, decimal, notice, comma_later, _trailing_names(lines, delimiter))


def _filled(row: list[str]) -> int:
    """The number of fields of ``row`` without its trailing empty ones (at least one)."""
    width = len(row)
    while width > 1 and not row[width - 1].strip():
        width -= 1
    return width


def _trailing_names(lines: list[str], delimiter: str) -> tuple[str, ...] | None:
    """The names for pyarrow when the first data rows all differ from the header by trailing empty fields (a
    trailing delimiter on every row, or on the header only); None when they have the header's width."""
    try:
        header, *rows = csv.reader(lines, delimiter=delimiter)
    except (csv.Error, ValueError):
        return None
    widths = {len(row) for row in rows}
    if len(widths) != 1 or (width := widths.pop()) == len(header):
        return None
    if width < len(header):
        return tuple(header[:width]) if not "".join(header[width:]).strip() else None
    if "".join(cell for row in rows for cell in row[len(header):]).strip():
        return None
    return (*header, *(f"\x00unnamed {k}" for k in range(width - len(header))))


def _first_lines(path: Path) -> list[str]:
    """The first :data:`_PROBE_LINES` complete lines (fewer for a short file), decoded leniently."""
    with _open_bytes(path) as fh:
        try:
            chunk = fh.read(_HEADER_PROBE)
        except (OSError, EOFError) as exc:
            raise DataError(f"{path}: cannot read file ({first_line(exc)})") from None
    check_text(path, chunk)
    if chunk.startswith(codecs.BOM_UTF8):
        chunk = chunk[len(codecs.BOM_UTF8):]
    lines = chunk.decode("utf-8", errors="replace").splitlines()
    if len(chunk) == _HEADER_PROBE and len(lines) > 1:
        lines = lines[:-1]  # the last line may be cut
    return [line for line in lines[:_PROBE_LINES] if line.strip()]


def column_names(path: Path, how: Dialect) -> list[str]:
    """The stripped header names; no rows are read."""
    return clean_names(_header(path, how), path)


def read(path: Path, columns: list[str] | None, column_types: dict[str, str], how: Dialect) -> pd.DataFrame:
    """The selected columns of the whole file, as :func:`survmom.data.read.read_table` describes."""
    raw = _header(path, how)
    names = clean_names(raw, path)
    selected = select(names, columns, path)
    raw_of = dict(zip(names, raw, strict=True))
    numeric = [c for c in selected if column_types.get(c) == "numeric"]
    as_text: set[str] = set()  # numeric columns holding values pyarrow's conversion refuses (" NA", "1_000")
    while True:
        types = _arrow_types(raw_of, selected, {**column_types, **dict.fromkeys(as_text, "string")}, False)
        read_options, convert = _options([raw_of[c] for c in selected], types, _STREAM_BLOCK, how)
        try:
            # The streaming reader holds a few blocks at a time (read_csv buffers the whole file) but fixes the
            # types from its first block; if a later block does not fit (or anything else goes wrong),
            # read_csv, which infers types from every block, decides, errors included.
            with _input(path) as source:
                reader = pa_csv.open_csv(source, read_options=read_options, parse_options=_parse(how),
                                         convert_options=convert)
                table = pa.Table.from_batches(list(reader), schema=reader.schema)
        except (pa.ArrowException, OSError, EOFError):
            try:
                with _input(path) as source:
                    table = pa_csv.read_csv(source, read_options=read_options, parse_options=_parse(how),
                                            convert_options=convert)
            except (pa.ArrowException, OSError, EOFError) as exc:
                failed = unconverted(exc, names, numeric, as_text)
                if failed:
                    as_text.update(failed)
                    continue
                raise _read_error(exc, path, raw, names, numeric, how) from None
        break
    if table.num_rows == 0:
        raise DataError(f"{path}: has a header but no data rows")
    table = table.rename_columns(selected)
    text = {c for c in selected if column_types.get(c) in ("category", "string")}
    try:  # "1.234,5", a late "1,5" and "." are text to pyarrow: numbers (and a missing one) to a statistician
        table = text_columns_as_numbers(table, as_text, text, path=path, start=0, decimal=how.decimal,
                                        comma_later=how.comma_later)
    except DataError as exc:
        raise _locate_non_numeric(path, raw, names, numeric, how) or exc from None
    return to_pandas(table, path, column_types, not_text=lambda column, rows: _not_utf8(path, column, rows))


def batches(
    path: Path, columns: list[str] | None, batch_rows: int, column_types: dict[str, str], how: Dialect
) -> Iterator[pd.DataFrame]:
    """Check the header now; return a generator of frames of ``batch_rows`` rows (the last one shorter)."""
    raw = _header(path, how)
    names = clean_names(raw, path)
    selected = select(names, columns, path)
    numeric = [c for c in selected if column_types.get(c) == "numeric"]

    def frame(table: pa.Table, start: int) -> pd.DataFrame:
        return to_pandas(table, path, column_types, start, not_text=lambda column, rows: _not_utf8(path, column,
                                                                                                     rows))

    def generate() -> Iterator[pd.DataFrame]:
        start = 0
        try:
            for table in rebatch(_blocks(path, raw, names, selected, column_types, how), batch_rows):
                rows = table.num_rows  # read before the conversion, which may release the table
                yield frame(table, start)
                start += rows
        except (pa.ArrowException, OSError, EOFError) as exc:
            raise _read_error(exc, path, raw, names, numeric, how) from None
        if start == 0:
            raise DataError(f"{path}: has a header but no data rows")

    return generate()


def _blocks(path: Path, raw: list[str], names: list[str], selected: list[str], column_types: dict[str, str],
            how: Dialect) -> Iterator[pa.RecordBatch]:
    """The parse blocks of the file, columns renamed to ``selected``, "numeric" columns as float64.

    Numeric columns are converted by pyarrow (fast). When it refuses a value that training accepts (a
    missing-value spelling such as ``" NA"`` or ``"null"``, ``"1_000"``), that column is read as text from
    then on and parsed as training parses it (:func:`~survmom.data.text_numbers.text_to_float`): the file is
    opened again and the rows already delivered are skipped. Text that is not a number is a DataError over
    the whole file.
    """
    raw_of = dict(zip(names, raw, strict=True))
    numeric = [c for c in selected if column_types.get(c) == "numeric"]
    as_text: set[str] = set()
    done = 0  # rows delivered
    # Small parse blocks, regrouped into batches by the caller: pyarrow's streaming reader holds several
    # blocks in flight, so blocks sized to a whole batch (tens of MB) made memory grow with the file.
    while True:
        types = _arrow_types(raw_of, selected, {**column_types, **dict.fromkeys(as_text, "string")}, True)
        read_options, convert = _options([raw_of[c] for c in selected], types, _STREAM_BLOCK, how)
        skip = done  # rows a fresh reader must pass over (counting parsed rows: blank lines are not rows)
        try:
            with _input(path) as source:
                for block in pa_csv.open_csv(source, read_options=read_options, parse_options=_parse(how),
                                             convert_options=convert):
                    if skip >= block.num_rows:
                        skip -= block.num_rows
                        continue
                    block = block.slice(skip).rename_columns(selected)
                    skip = 0
                    try:
                        block = text_columns_as_numbers(block, set(as_text), set(selected) - as_text, path=path,
                                                        start=done, decimal=how.decimal, comma_later=how.comma_later)
                    except DataError as exc:
                        raise _locate_non_numeric(path, raw, names, numeric, how) or exc from None
                    done += block.num_rows
                    yield block
            return
        except pa.ArrowInvalid as exc:
            failed = unconverted(exc, names, numeric, as_text)
            if not failed:
                raise
            as_text.update(failed)


# --------------------------------------------------------------------------------------------- the file


def _compression(path: Path) -> str | None:
    """The compression suffix of the file name in any case (``.csv.GZ`` too), or None."""
    suffix = path.suffix.lower()
    return suffix if suffix in _COMPRESSION else None


def _open_bytes(path: Path) -> io.BufferedIOBase | pa.NativeFile:
    """The file's (decompressed) bytes as a binary file object."""
    compression = _compression(path)
    if compression is None:
        return open(path, "rb")
    codec, opener = _COMPRESSION[compression]
    if codec is not None and pa.Codec.is_available(codec):
        return pa.input_stream(str(path), compression=codec)
    if opener is None:
        raise DataError(f"{path}: this pyarrow build cannot read {codec} compression; decompress the file first")
    return opener(path, "rb")  # type: ignore[return-value]


def _input(path: Path) -> pa.NativeFile:
    """The file as a pyarrow input stream, decompressed by its suffix in any case.

    Given a path, pyarrow infers the compression from a lowercase suffix only: ``d.csv.GZ`` was parsed as
    compressed bytes. Every pyarrow CSV reader here gets this stream instead of the path.
    """
    source = _open_bytes(path)
    return source if isinstance(source, pa.NativeFile) else pa.PythonFile(source, mode="r")


def _parse(how: Dialect) -> pa_csv.ParseOptions:
    """pyarrow's parse options; a line of only spaces or tabs is blank, as an empty line is (was a ragged row)."""
    return pa_csv.ParseOptions(delimiter=how.delimiter,
                               invalid_row_handler=lambda row: "error" if row.text.strip() else "skip")


def _header(path: Path, how: Dialect) -> list[str]:
    """The raw header names; DataError for files that are empty, binary, not UTF-8 or not delimited."""
    with _open_bytes(path) as fh:
        try:
            chunk = fh.read(_HEADER_PROBE)
            while b"\n" not in chunk and b"\r" not in chunk and len(chunk) < 64 * _HEADER_PROBE:
                more = fh.read(_HEADER_PROBE)
                if not more:
                    break
                chunk += more
        except (OSError, EOFError) as exc:
            raise DataError(f"{path}: cannot read file ({first_line(exc)})") from None
    check_text(path, chunk)
    if chunk.startswith(codecs.BOM_UTF8):
        chunk = chunk[len(codecs.BOM_UTF8) :]
    try:
        text = codecs.getincrementaldecoder("utf-8")().decode(chunk, final=False)
    except UnicodeDecodeError as exc:
        # Bad bytes in data rows are reported per column later, where pyarrow reads them as bytes.
        text = chunk[: exc.start].decode("utf-8")
        if "\n" not in text and "\r" not in text:
            raise _not_utf8(path, detail="in the header row") from None
    try:
        rows = csv.reader(io.StringIO(text, newline=""), delimiter=how.delimiter)  # \r, \n or \r\n
        names = next(rows)
        # A spreadsheet's export may end every line in empty fields ("a,b,,"): unnamed columns that are empty
        # in the first lines are not columns (pyarrow reads only the named ones).
        named = len(names)
        while named > 1 and not names[named - 1].strip():
            named -= 1
        if named < len(names) and names[named - 1].strip() and all(
                not "".join(row[named:]).strip() for row in itertools.islice(rows, _PROBE_LINES)):
            names = names[:named]
    except (csv.Error, StopIteration) as exc:
        raise DataError(f"{path}: cannot parse the CSV header ({first_line(exc)})") from None
    if len(names) == 1:
        for sep, label in _CANDIDATES.items():
            if sep != how.delimiter and sep in names[0]:
                raise DataError(
                    f"{path}: header '{names[0][:60]}' looks separated by {label}s, but the rows are not; "
                    f"check the file, or pass --delimiter"
                )
    return names


def _options(
    raw_selected: list[str], arrow_types: dict[str, pa.DataType], block_size: int | None, how: Dialect,
) -> tuple[pa_csv.ReadOptions, pa_csv.ConvertOptions]:
    """pyarrow's read and convert options for the raw columns ``raw_selected``."""
    names = {"column_names": list(how.names), "skip_rows": 1} if how.names else {}
    read_options = pa_csv.ReadOptions(use_threads=True, **({"block_size": block_size} if block_size else {}), **names)
    convert = pa_csv.ConvertOptions(
        include_columns=raw_selected,
        column_types=arrow_types,
        null_values=list(NA_MARKERS),
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
        true_values=["true", "True", "TRUE"],
        false_values=["false", "False", "FALSE"],
        decimal_point=how.decimal,
    )
    return read_options, convert


def _arrow_types(
    raw_of: dict[str, str], selected: list[str], column_types: dict[str, str], stream: bool
) -> dict[str, pa.DataType]:
    """Arrow type per raw column: numeric -> float64, text -> string; when streaming, untyped -> string."""
    types: dict[str, pa.DataType] = {}
    for name in selected:
        kind = column_types.get(name)
        if kind == "numeric":
            types[raw_of[name]] = pa.float64()
        elif kind in ("category", "string") or (stream and kind in (None, "code")):
            types[raw_of[name]] = pa.string()
    return types


# --------------------------------------------------------------------------------------------- errors


def _read_error(
    exc: BaseException, path: Path, raw: list[str], names: list[str], numeric: list[str], how: Dialect
) -> DataError:
    """Turn a pyarrow CSV error into a DataError naming the column and, for bad numbers, rows and values."""
    reason = first_line(exc)
    if "invalid UTF8" in reason:
        match = re.search(r"column #(\d+)", reason)
        column = names[int(match.group(1))] if match and int(match.group(1)) < len(names) else None
        return _not_utf8(path, column)
    if "conversion error" in reason and numeric:
        located = _locate_non_numeric(path, raw, names, numeric, how)
        if located is not None:
            return located
    match = re.search(r"In CSV column #(\d+): (.*)", reason)
    if match and int(match.group(1)) < len(names):
        return DataError(f"{path}: column '{names[int(match.group(1))]}' cannot be read: {match.group(2)}")
    where = _locate_ragged_row(path, len(names), how) if "Expected" in reason else ""
    return DataError(f"{path}: not a readable CSV file{where}: {reason}")


def _locate_non_numeric(path: Path, raw: list[str], names: list[str], numeric: list[str], how: Dialect
                        ) -> DataError | None:
    """Re-scan ``numeric`` columns as text (error path only) to report rows holding non-numbers.

    A value is a non-number exactly when training would refuse it (:func:`~survmom.data.cells.parse_numbers`):
    missing-value spellings such as ``" NA"`` and numbers with surrounding spaces are fine.
    """
    raw_of = dict(zip(names, raw, strict=True))
    read_options, convert = _options([raw_of[c] for c in numeric], {raw_of[c]: pa.string() for c in numeric}, None,
                                     how)
    bad: dict[str, tuple[int, list[int], list[str]]] = {}
    start = 0
    try:
        with _input(path) as source:
            for batch in pa_csv.open_csv(source, read_options=read_options, parse_options=_parse(how),
                                         convert_options=convert):
                for name in numeric:
                    text = decimal_point(batch.column(raw_of[name]), how.decimal).to_pandas()
                    codes, uniques = pd.factorize(text, use_na_sentinel=True)
                    not_numbers = parse_numbers(np.asarray(uniques, dtype=object))[1]
                    pos = np.flatnonzero(per_row(not_numbers, codes.astype(np.int64), False))
                    if len(pos):
                        count, rows, values = bad.get(name, (0, [], []))
                        rows += [start + int(p) + 1 for p in pos[: SAMPLE + 1]]
                        values += [text.iloc[p] for p in pos[: SAMPLE + 1]]
                        bad[name] = (count + len(pos), rows, values)
                start += batch.num_rows
    except (pa.ArrowException, OSError, EOFError):
        return None
    if not bad:
        return None
    name, (count, rows, values) = next(iter(bad.items()))
    others = f"; also {quote_list(list(bad)[1:])}" if len(bad) > 1 else ""
    return DataError(
        f"{path}: column '{name}' should be numeric but has {plural(count, 'non-numeric value')} "
        f"({show_rows(np.asarray(rows), values)}){others}"
    )


def _locate_ragged_row(path: Path, n_columns: int, how: Dialect) -> str:
    """ " (line 7 has 4 fields, the header has 3)" for the first record with a wrong field count, else ""."""
    try:
        with _open_bytes(path) as fh:
            text = io.TextIOWrapper(fh, encoding="utf-8", errors="replace", newline="")
            reader = csv.reader(text, delimiter=how.delimiter)
            if how.names:  # the header differs from the rows by trailing empty fields: the rows count
                n_columns = len(how.names)
                next(reader, None)
            for record in reader:
                if record and len(record) != n_columns:
                    expected = "the first rows have" if how.names else "the header has"
                    return f" (line {reader.line_num} has {len(record)} fields, {expected} {n_columns})"
    except (OSError, EOFError, csv.Error):
        pass
    return ""


def _not_utf8(path: Path, column: str | None = None, detail: str = "") -> DataError:
    """The file is not UTF-8: where the first bad byte is, plus ``detail`` (e.g. rows and values)."""
    with _open_bytes(path) as fh:
        found = first_bad_utf8(fh)
    parts = [f"first bad byte 0x{found[1]:02x} at byte offset {found[0]}, line {found[2]}"] if found else []
    parts += [detail] if detail else []
    where = f" ({'; '.join(parts)})" if parts else ""
    col = f" column '{column}'" if column else ""
    return DataError(
        f"{path}:{col} is not valid UTF-8 text{where}; re-encode the file as UTF-8 "
        f"(e.g. iconv -f cp1252 -t utf-8 in.csv > out.csv for Excel's Windows CSV, -f latin1 for others; or save "
        f"it from Excel as 'CSV UTF-8')"
    )
