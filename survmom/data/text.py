"""Delimited text with a header row: ``.csv``, ``.tsv``/``.tab``, ``.txt``, ``.dat``, each also
``.gz``/``.bz2``/``.zst``/``.xz``.

The delimiter of a ``.csv`` (``.txt``, ``.dat``) is detected from its first lines (:func:`dialect`): comma,
semicolon or tab, the one that splits the header and the first rows into the same number of fields (more than
one); where none does but runs of spaces and tabs do, the file is whitespace-separated
(:mod:`~survmom.data.whitespace`; R's ``write.table`` row names are dropped); a
semicolon-separated file whose numbers use a decimal comma (the European spreadsheet export) is read with
``decimal_point=","`` (where those lines hold whole numbers only, a column written with decimal commas further
down is read with them: :mod:`~survmom.data.text_numbers`). A file that two delimiters split equally well is
refused: pass ``--delimiter``.
``.tsv``/``.tab`` files are tab-separated. ``--delimiter`` overrides both (``space``: runs of blanks).
The text is UTF-8, UTF-16/32 with a byte-order mark, or what ``--encoding`` names, which pyarrow transcodes
(:mod:`~survmom.data.text_encoding`).

Cells equal to one of :data:`~survmom.data.cells.NA_MARKERS` are missing, and a lone ``"."`` where a number is
read. A file is parsed by pyarrow's
streaming reader, a few 1 MiB blocks at a time, so memory does not grow with the file. Columns typed
"numeric" are converted by pyarrow; a column holding values pyarrow refuses but training accepts (``" NA"``,
``"1_000"``) is read as text and parsed as training parses it (:func:`~survmom.data.cells.parse_numbers`).
A file that is not UTF-8 (or not text in ``--encoding``) is refused with its first bad byte, the line, the
text around it, and the column and rows: guessing an encoding would silently change category labels.
Quoted values should not hold line breaks: pyarrow cuts its parse blocks at line ends, and a row cut in two
is refused with the line whose field count is wrong.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

from survmom.data.cells import NA_MARKERS, parse_numbers, per_row
from survmom.data.formats import rebatch
from survmom.data.messages import SAMPLE, first_line, plural, quote_list, show_rows
from survmom.data.tables import clean_names, select, to_pandas
from survmom.data.text_bytes import check_text, open_bytes
from survmom.data.text_dialect import (
    CANDIDATES,
    HEADER_PROBE,
    PROBE_LINES,
    ROW_NAMES,
    TEXT_SUFFIXES,
    Dialect,
    dialect,
    header_line_below,
)
from survmom.data.text_encoding import not_text_error, wide
from survmom.data.text_numbers import decimal_point, text_columns_as_numbers, unconverted
from survmom.data.whitespace import TabbedStream
from survmom.errors import DataError

__all__ = ["TEXT_SUFFIXES", "Dialect", "batches", "column_names", "dialect", "header_line_below", "read"]
_STREAM_BLOCK = 1 << 20  # bytes per parse block of the streaming reader

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
            with _input(path, how) as source:
                reader = pa_csv.open_csv(source, read_options=read_options, parse_options=_parse(how),
                                         convert_options=convert)
                table = pa.Table.from_batches(list(reader), schema=reader.schema)
        except UnicodeError:  # pyarrow's transcoding from --encoding
            raise _bad_text(path, how) from None
        except (pa.ArrowException, OSError, EOFError):
            try:
                with _input(path, how) as source:
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
    return to_pandas(table, path, column_types, not_text=lambda column, rows: _bad_text(path, how, column, rows))


def batches(
    path: Path, columns: list[str] | None, batch_rows: int, column_types: dict[str, str], how: Dialect
) -> Iterator[pd.DataFrame]:
    """Check the header now; return a generator of frames of ``batch_rows`` rows (the last one shorter)."""
    raw = _header(path, how)
    names = clean_names(raw, path)
    selected = select(names, columns, path)
    numeric = [c for c in selected if column_types.get(c) == "numeric"]

    def frame(table: pa.Table, start: int) -> pd.DataFrame:
        return to_pandas(table, path, column_types, start,
                         not_text=lambda column, rows: _bad_text(path, how, column, rows))

    def generate() -> Iterator[pd.DataFrame]:
        start = 0
        blocks = _blocks(path, raw, names, selected, column_types, how)
        try:
            for table in rebatch(blocks, batch_rows):
                rows = table.num_rows  # read before the conversion, which may release the table
                yield frame(table, start)
                start += rows
        except (pa.ArrowException, OSError, EOFError) as exc:
            raise _read_error(exc, path, raw, names, numeric, how) from None
        except UnicodeError:
            raise _bad_text(path, how) from None
        finally:  # the reader's threads stopped and the file closed now, also on an error (not at exit)
            blocks.close()
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
            with _input(path, how) as source:
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


def _open_text(path: Path, how: Dialect) -> io.BufferedIOBase | pa.NativeFile:
    """The bytes pyarrow parses: the file's, or a whitespace-separated file's as tab-separated UTF-8."""
    if not how.whitespace:
        return open_bytes(path)
    return io.BufferedReader(TabbedStream(open_bytes(path), how.encoding, how.row_names,  # type: ignore[arg-type]
                                          lambda: _bad_text(path, how)))


def _input(path: Path, how: Dialect) -> pa.NativeFile:
    """The file as a pyarrow input stream, decompressed by its suffix in any case.

    Given a path, pyarrow infers the compression from a lowercase suffix only: ``d.csv.GZ`` was parsed as
    compressed bytes. Every pyarrow CSV reader here gets this stream instead of the path.
    """
    source = _open_text(path, how)
    return source if isinstance(source, pa.NativeFile) else pa.PythonFile(source, mode="r")


def _encoding(how: Dialect) -> str:
    """The encoding of the bytes pyarrow parses (a whitespace-separated file's are rewritten as UTF-8)."""
    return "utf-8" if how.whitespace else how.encoding


def _parse(how: Dialect) -> pa_csv.ParseOptions:
    """pyarrow's parse options; a line of only spaces or tabs is blank, as an empty line is (was a ragged row)."""
    return pa_csv.ParseOptions(delimiter=how.delimiter,
                               invalid_row_handler=lambda row: "error" if row.text.strip() else "skip")


def _header(path: Path, how: Dialect) -> list[str]:
    """The raw header names; DataError for files that are empty, binary, not text or not delimited."""
    with _open_text(path, how) as fh:
        try:
            chunk = fh.read(HEADER_PROBE)
            while b"\n" not in chunk and b"\r" not in chunk and len(chunk) < 64 * HEADER_PROBE:
                more = fh.read(HEADER_PROBE)
                if not more:
                    break
                chunk += more
        except (OSError, EOFError) as exc:
            raise DataError(f"{path}: cannot read file ({first_line(exc)})") from None
    check_text(path, chunk, wide(_encoding(how)))
    try:
        text = codecs.getincrementaldecoder(_encoding(how))().decode(chunk, final=False)
    except UnicodeDecodeError as exc:
        # Bad bytes in data rows are reported later: per column where pyarrow reads them as bytes (UTF-8).
        text = chunk[: exc.start].decode(_encoding(how), errors="replace")
        if "\n" not in text and "\r" not in text:
            raise _bad_text(path, how, detail="in the header row") from None
    except UnicodeError:  # not a byte: UTF-16 without its byte-order mark
        raise _bad_text(path, how) from None
    text = text.removeprefix("\ufeff")
    first = re.match(r"[^\r\n]*", text)[0]
    if re.fullmatch(r"sep=.", first, flags=re.IGNORECASE):  # Excel's delimiter line: Excel reads it, pandas does not
        shown = first.replace("\t", "\\t")
        raise DataError(f"{path}: the first line '{shown}' is Excel's note of the delimiter, not a header; delete "
                        "that line")
    try:
        rows = csv.reader(io.StringIO(text, newline=""), delimiter=how.delimiter)  # \r, \n or \r\n
        names = next(rows)
        # A spreadsheet's export may end every line in empty fields ("a,b,,"): unnamed columns that are empty
        # in the first lines are not columns (pyarrow reads only the named ones).
        named = len(names)
        while named > 1 and not names[named - 1].strip():
            named -= 1
        if named < len(names) and names[named - 1].strip() and all(
                not "".join(row[named:]).strip() for row in itertools.islice(rows, PROBE_LINES)):
            names = names[:named]
    except (csv.Error, StopIteration) as exc:
        raise DataError(f"{path}: cannot parse the CSV header ({first_line(exc)})") from None
    if how.names and how.names[0] == ROW_NAMES:  # a nameless index column (R's write.csv): not a column
        names = names[1:]
    if len(names) == 1:
        for sep, label in CANDIDATES.items():
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
    read_options = pa_csv.ReadOptions(use_threads=True, encoding=_encoding(how),
                                      **({"block_size": block_size} if block_size else {}), **names)
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
        elif kind in ("category", "string") or (stream and kind in (None, "code", "quantity")):
            types[raw_of[name]] = pa.string()
    return types


# --------------------------------------------------------------------------------------------- errors


def _read_error(
    exc: BaseException, path: Path, raw: list[str], names: list[str], numeric: list[str], how: Dialect
) -> DataError:
    """Turn a pyarrow CSV error into a DataError naming the column and, for bad numbers, rows and values."""
    reason = first_line(exc)
    # pyarrow counts the file's columns: those of the header, or how.names (with a nameless index column first)
    in_file = [names[raw.index(n)] if n in raw else None for n in how.names] if how.names else names
    if "invalid UTF8" in reason:
        match = re.search(r"column #(\d+)", reason)
        column = in_file[int(match.group(1))] if match and int(match.group(1)) < len(in_file) else None
        return _bad_text(path, how, column)
    if "conversion error" in reason and numeric:
        located = _locate_non_numeric(path, raw, names, numeric, how)
        if located is not None:
            return located
    match = re.search(r"In CSV column #(\d+): (.*)", reason)
    if match and int(match.group(1)) < len(in_file) and in_file[int(match.group(1))] is not None:
        return DataError(f"{path}: column '{in_file[int(match.group(1))]}' cannot be read: {match.group(2)}")
    where = _locate_ragged_row(path, len(names), how) if "Expected" in reason else ""
    if how.whitespace:  # blanks separate fields, so an empty cell of a fixed-width layout shifts the row
        hint = ("; in a whitespace-separated file an empty cell cannot be seen: write NA (or .) in it"
                if where else "")
        return DataError(f"{path}: not a readable whitespace-separated file{where}{hint}: {reason}")
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
        with _input(path, how) as source:
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
    except (pa.ArrowException, OSError, EOFError, UnicodeError, DataError):
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
        with _open_text(path, how) as fh:
            text = io.TextIOWrapper(fh, encoding=_encoding(how), errors="replace", newline="")
            reader = csv.reader(text, delimiter=how.delimiter)
            if how.names:  # the header differs from the rows by trailing empty fields: the rows count
                n_columns = len(how.names)
                next(reader, None)
            for record in reader:
                if record and len(record) != n_columns:
                    expected = "the first rows have" if how.names else "the header has"
                    return f" (line {reader.line_num} has {len(record)} fields, {expected} {n_columns})"
    except (OSError, EOFError, csv.Error, DataError):
        pass
    return ""


def _bad_text(path: Path, how: Dialect, column: str | None = None, detail: str = "") -> DataError:
    """The file is not text in its encoding: where the first bad byte is, plus ``detail`` (rows and values)."""
    with open_bytes(path) as fh:
        return not_text_error(path, fh, how.encoding, column, detail)
