"""How a delimited text file is written, from its first lines: the delimiter (comma, semicolon, tab or runs of
blanks), the decimal mark, the encoding, and a header that differs from the rows (trailing empty fields, R's
row names). :mod:`survmom.data.text` reads the file so described; its docstring says how each is detected."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from survmom.data.messages import first_line
from survmom.data.text_bytes import COMPRESSION, check_text, compression, open_bytes
from survmom.data.text_encoding import decode_lenient, file_encoding, not_text_error, wide
from survmom.data.whitespace import split_fields, split_widths
from survmom.errors import ConfigError, DataError

HEADER_PROBE = 1 << 20  # bytes read to find the header row
PROBE_LINES = 50  # lines (header included) that delimiter detection looks at
CANDIDATES = {",": "comma", ";": "semicolon", "\t": "tab"}
_WHITESPACE = ("space", "whitespace", " ")  # --delimiter values for runs of spaces and tabs
ROW_NAMES = "\x00row names"  # pyarrow's name for a nameless first column of row names, never read
TEXT_SUFFIXES = tuple(f"{t}{c}" for t in (".csv", ".tsv", ".tab", ".txt", ".dat") for c in ("", *COMPRESSION))
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
    the header (``a,b`` over ``1,2,``) or the header in more than the rows (``a,b,`` over ``1,2``), else None;
    ``encoding``: the file's codec; ``whitespace``: fields are
    separated by runs of spaces and tabs (the file is read as tab-separated: :mod:`~survmom.data.whitespace`),
    ``row_names``: its data rows start with R's row names, which are dropped. A delimited file whose header leaves
    the first column nameless over a different value in every row (R's write.csv, pandas' to_csv) has those row
    names as :data:`ROW_NAMES` first in ``names``: never read."""

    delimiter: str = ","
    decimal: str = "."
    notice: str | None = None
    comma_later: bool = False
    names: tuple[str, ...] | None = None  # given to pyarrow for a header and rows differing by trailing empties
    encoding: str = "utf-8"
    whitespace: bool = False
    row_names: bool = False


def dialect(path: Path, delimiter: str | None = None, encoding: str | None = None) -> Dialect:
    """The dialect of ``path`` from its first :data:`PROBE_LINES` lines; ``delimiter`` (``--delimiter``)
    overrides detection, ``encoding`` (``--encoding``) the UTF-8 default. DataError when two delimiters split
    the sample equally well."""
    whitespace = delimiter is not None and delimiter.lower() in _WHITESPACE
    if delimiter is not None and not whitespace:
        delimiter = {"\\t": "\t", "tab": "\t"}.get(delimiter, delimiter)
        if len(delimiter) != 1 or delimiter in "\"\r\n":
            raise ConfigError(f"--delimiter must be one character, 'tab' or 'space' (runs of spaces and tabs), "
                              f"got {delimiter!r}")
    lines, codec = _first_lines(path, encoding)
    tabbed = path.name.lower().split(".")[-2 if compression(path) else -1] in ("tsv", "tab")
    if delimiter is None and tabbed:
        delimiter = "\t"
    if delimiter is None:
        fits: dict[str, int] = {}
        for bare in (False, True):  # then widths without trailing empty fields (every row ending in ";")
            for candidate in CANDIDATES if not fits else ():
                widths = {_filled(r) if bare else len(r) for r in csv.reader(lines, delimiter=candidate)}
                if len(widths) == 1 and widths != {1}:
                    fits[candidate] = widths.pop()
        if len(fits) > 1:
            shown = " and ".join(f"{CANDIDATES[c]}s ({n} fields)" for c, n in fits.items())
            raise DataError(f"{path}: the first lines split equally well by {shown}; pass --delimiter "
                            f"(e.g. --delimiter ';') to say which")
        whitespace = not fits and split_widths(lines) is not None
        delimiter = next(iter(fits), ",")
    row_names = False
    if whitespace:
        delimiter, row_names = "\t", bool((split_widths(lines) or (0, False))[1])
    decimal, comma_later = ".", False
    if delimiter != ",":
        rows = [split_fields(line) for line in lines] if whitespace else csv.reader(lines, delimiter=delimiter)
        cells = [c for r in list(rows)[1:] for c in r]
        points = any(_DECIMAL_POINT.match(c) and not _GROUPED_POINTS.match(c) for c in cells)
        if any(_DECIMAL_COMMA.match(c) for c in cells) and not points:
            decimal = ","
        comma_later = decimal == "." and not points
    notice = None
    if whitespace or ((delimiter, decimal) != (",", ".") and not (tabbed and (delimiter, decimal) == ("\t", "."))):
        name = "whitespace" if whitespace else CANDIDATES.get(delimiter, repr(delimiter))
        comma = " with decimal commas" if decimal == "," else ""
        names = (", the first field of each data row (one more than the header has) taken as row names and dropped "
                 "(R's write.table)") if row_names else ""
        notice = (f"{path}: read as {name}-separated{comma}{names} (detected from the first lines; --delimiter "
                  "overrides)")
    trailing = None if whitespace else _trailing_names(lines, delimiter)
    if not whitespace and trailing is None and _index_first(lines, delimiter):
        trailing = (ROW_NAMES, *next(csv.reader(lines[:1], delimiter=delimiter))[1:])
        index = (f"{path}: column 1 has no name in the header: read as row names (the index R's write.csv and "
                 "pandas' to_csv write by default) and left out")
        notice = index if notice is None else f"{notice}; {index.split(': ', 1)[1]}"
    return Dialect(delimiter, decimal, notice, comma_later, trailing, codec, whitespace, row_names)


def _index_first(lines: list[str], delimiter: str) -> bool:
    """Whether the header names every column but the first, and the first lines fill that one in every row with
    a different value: a row index (``"","time",...`` over ``"1",5,...``)."""
    try:
        header, *rows = csv.reader(lines, delimiter=delimiter)
    except (csv.Error, ValueError):
        return False
    if len(header) < 2 or header[0].strip() or not all(name.strip() for name in header[1:]) or not rows:
        return False
    firsts = [row[0].strip() for row in rows if len(row) == len(header)]
    return len(firsts) == len(rows) and all(firsts) and len(set(firsts)) == len(firsts)


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


def header_line_below(path: Path, name: str, encoding: str | None = None) -> int | None:
    """The line number (from 1) of the first of the file's first :data:`PROBE_LINES` lines, after the first, that
    holds ``name`` as a field (split at commas, semicolons, tabs or runs of whitespace; quotes stripped): the
    header under a title line. None when no line does or the file cannot be read as text."""
    try:
        lines = _first_lines(path, encoding, blank=True)[0]
    except (DataError, OSError):
        return None
    for number, line in enumerate(lines[1:], start=2):
        if name in {field.strip().strip("\"'") for field in re.split(r"[,;\t]|\s{2,}", line)}:
            return number
    return None


def _first_lines(path: Path, encoding: str | None, blank: bool = False) -> tuple[list[str], str]:
    """The non-blank lines among the first :data:`PROBE_LINES` complete lines (fewer for a short file; ``blank``:
    all of them, so that list positions are line numbers), decoded leniently, and the codec of the file
    (:func:`~survmom.data.text_encoding.file_encoding`)."""
    with open_bytes(path) as fh:
        try:
            chunk = fh.read(HEADER_PROBE)
        except (OSError, EOFError) as exc:
            raise DataError(f"{path}: cannot read file ({first_line(exc)})") from None
    codec = file_encoding(chunk, encoding)
    check_text(path, chunk, wide(codec))
    try:
        lines = decode_lenient(chunk, codec).splitlines()
    except UnicodeError:  # not a bad byte, that "replace" would replace: UTF-16 without a byte-order mark
        with open_bytes(path) as fh:
            raise not_text_error(path, fh, codec) from None
    if len(chunk) == HEADER_PROBE and len(lines) > 1:
        lines = lines[:-1]  # the last line may be cut
    return [line for line in lines[:PROBE_LINES] if blank or line.strip()], codec
