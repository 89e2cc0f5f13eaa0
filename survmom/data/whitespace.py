"""Whitespace-delimited text: fields separated by runs of spaces and/or tabs, as R's ``write.table()`` writes
by default and as the classic textbook survival data files (``.dat``) are laid out.

pyarrow's CSV reader splits on one character, so such a file is read through :class:`TabbedStream`: the file's
lines, decoded, are rewritten one for one as tab-separated UTF-8 (spaces around fields dropped, a field in double
quotes kept whole: ``"New York"``), and pyarrow parses that stream as it parses a tab-separated file: the same
types, missing-value spellings, checks and line numbers, in the same bounded memory. R writes the row names as
an extra first field under a header that lacks it (``"time" "event"`` over ``"1" 5 1``): detected from the
first lines (:func:`split_widths`), that field is dropped from every data row.
"""

from __future__ import annotations

import codecs
import io
import re
from collections.abc import Callable
from typing import BinaryIO

_CHUNK = 1 << 20  # bytes read from the source at a time
# A field: double-quoted (R escapes a quote inside as \" by default, or doubles it), else a run of non-blanks.
_FIELD = re.compile(r'"(?:[^"\\]|\\.|"")*"|[^ \t\r]+')
_RUNS = re.compile(r"[ \t]+")


def split_fields(line: str) -> list[str]:
    """The fields of one whitespace-separated ``line``, quotes removed: ``'"a b" 1'`` -> ``["a b", "1"]``."""
    return [_unquote(f) if f.startswith('"') and len(f) > 1 and f.endswith('"') else f for f in _FIELD.findall(line)]


def split_widths(lines: list[str]) -> tuple[int, bool] | None:
    """(fields of the header, whether the rows hold one more: R's row names) when ``lines`` (the header first)
    split on runs of blanks consistently into two or more fields, else None."""
    if not lines:
        return None
    header, *rows = (len(_FIELD.findall(line)) for line in lines)
    widths = set(rows)
    if header < 2 or len(widths) > 1:
        return None
    row_names = widths == {header + 1}
    return (header, row_names) if not widths or row_names or widths == {header} else None


def _unquote(field: str) -> str:
    return field[1:-1].replace('\\"', '"').replace('""', '"')


def _quoted(field: str) -> str:
    """A field as pyarrow reads it: as it is without quotes or in plain quotes (``"New York"``), else in quotes
    with a quote inside doubled (R's ``\\"``)."""
    quotes = field.count('"')
    if quotes == 0 or (quotes == 2 and len(field) > 1 and field[0] == field[-1] == '"'):
        return field
    inner = _unquote(field) if len(field) > 1 and field[0] == field[-1] == '"' else field
    return '"' + inner.replace('"', '""') + '"'


def _tabbed_line(line: str, start: int) -> str:
    """One line as tab-separated fields from its ``start``-th: ``str.split`` (fast) for a line of ASCII without
    quotes (other Unicode blanks than spaces and tabs, a no-break space say, are text)."""
    if '"' in line:
        fields = [f if '"' not in f else _quoted(f) for f in _FIELD.findall(line)]
    else:
        fields = line.split() if line.isascii() else _RUNS.split(line.strip(" \t\r"))
    return "\t".join(fields[start:])


def tabbed(text: str, drop_first: bool) -> str:
    """Complete lines of whitespace-separated ``text`` as tab-separated lines (as many lines, ``\\n`` ends);
    ``drop_first``: without each line's first field (row names; blank lines stay blank)."""
    start = 1 if drop_first else 0
    return "\n".join(_tabbed_line(line, start) for line in text.split("\n"))


class TabbedStream(io.RawIOBase):
    """The binary stream ``source`` (text in ``encoding``) read as tab-separated UTF-8 lines (:func:`tabbed`).

    ``row_names``: drop the first field of every line after the header (the first non-blank line).
    ``bad_bytes``: called (with no arguments) for the exception to raise when the source is not text in
    ``encoding``; it reads the file again to say where.
    """

    def __init__(self, source: BinaryIO, encoding: str, row_names: bool,
                 bad_bytes: Callable[[], Exception]) -> None:
        super().__init__()
        self._source = source
        self._decoder = codecs.getincrementaldecoder(encoding)()
        self._row_names = row_names
        self._bad_bytes = bad_bytes
        self._header_seen = False
        self._carry = ""  # decoded text after the last complete line
        self._out = b""  # rewritten bytes not yet read, from self._at on
        self._at = 0
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        while self._at == len(self._out) and not self._done:
            self._out, self._at = self._next_block(), 0
        n = min(len(buffer), len(self._out) - self._at)
        buffer[:n] = memoryview(self._out)[self._at : self._at + n]
        self._at += n
        return n

    def _next_block(self) -> bytes:
        chunk = self._source.read(_CHUNK)
        try:
            text = self._carry + self._decoder.decode(chunk, final=not chunk)
        except UnicodeError:
            raise self._bad_bytes() from None
        held = "\r" if chunk and text.endswith("\r") else ""  # maybe the first half of a \r\n
        text = text[: len(text) - len(held)].replace("\r\n", "\n").replace("\r", "\n")  # lines end in \n
        if not chunk:
            self._done, self._carry = True, ""
        else:
            cut = text.rfind("\n") + 1
            text, self._carry = text[:cut], text[cut:] + held
        if not text:
            return b""
        head = ""
        if not self._header_seen:
            blank, header, text = _split_header(text.removeprefix("\ufeff"))
            if header is None:
                return tabbed(blank, False).encode()
            self._header_seen = True
            head = tabbed(blank + header, False) + "\n"
        return (head + tabbed(text, self._row_names)).encode()

    def close(self) -> None:
        if not self.closed:
            self._source.close()
        super().close()


def _split_header(text: str) -> tuple[str, str | None, str]:
    """(the blank lines before the header, the header line, the lines after it) of complete lines ``text``;
    the header None when ``text`` holds blank lines only."""
    position = 0
    while position < len(text):
        end = text.find("\n", position)
        end = len(text) if end < 0 else end
        if text[position:end].strip():
            return text[:position], text[position:end], text[end + 1 :]
        position = end + 1
    return text, None, ""
