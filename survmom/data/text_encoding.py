"""The text encoding of a delimited file: the name ``--encoding`` gives (any Python codec), the one a byte-order
mark states, and where the bytes stop being text in it.

Without ``--encoding`` a file is UTF-8 (a UTF-8 byte-order mark is skipped), or UTF-16/UTF-32 when it starts
with their byte-order mark (Excel's "Unicode Text", PowerShell): a mark leaves no doubt. Nothing else is
guessed: cp1252 and Latin-1 decode any byte, so a wrong guess would silently change category labels ("Genève"
read as "GenÃ¨ve" makes a new category). A file that is not UTF-8 is refused with its first bad byte, the line
and the text around it, and the option that reads it.
"""

from __future__ import annotations

import codecs
import re
from pathlib import Path
from typing import BinaryIO

from survmom.choices import text_codec, unknown_codec
from survmom.errors import ConfigError, DataError

UTF8 = "utf-8"
_CHUNK = 1 << 20  # bytes read at a time
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),  # before UTF-16's: FF FE 00 00
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
_MARK = "survmom.mark"  # codec error handler: a bad byte b becomes the lone surrogate U+DC00 + b
_MARKED = re.compile("[\udc00-\udcff]")
_AROUND = 30  # characters of text shown on each side of a bad byte


def _mark(exc: UnicodeError) -> tuple[str, int]:
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    return chr(0xDC00 + exc.object[exc.start]), exc.start + 1


codecs.register_error(_MARK, _mark)


def codec_name(encoding: str) -> str:
    """Python's name of the text codec ``encoding`` (``"cp1252"``, ``"latin-1"`` -> ``"iso8859-1"``);
    ConfigError for a name Python does not know or a codec that is not a text encoding (``base64``)."""
    name = text_codec(encoding)
    if name is None:
        raise ConfigError(unknown_codec(encoding))
    return name


def file_encoding(chunk: bytes, encoding: str | None) -> str:
    """The codec to read a file whose first bytes are ``chunk`` with: ``encoding`` (``--encoding``) when given,
    else UTF-16/UTF-32 when ``chunk`` starts with their byte-order mark, else UTF-8."""
    if encoding is not None:
        return codec_name(encoding)
    return next((name for bom, name in _BOMS if chunk.startswith(bom)), UTF8)


def is_utf8(encoding: str) -> bool:
    return codec_name(encoding) == UTF8


def wide(encoding: str) -> bool:
    """Whether ``encoding`` writes ASCII with NUL bytes (UTF-16, UTF-32): NULs are then not binary data."""
    return codec_name(encoding).startswith(("utf-16", "utf-32"))


def decode_lenient(chunk: bytes, encoding: str) -> str:
    """``chunk`` (a file's first bytes, maybe cut inside a character) as text, bad bytes replaced; no BOM."""
    text = codecs.getincrementaldecoder(encoding)(errors="replace").decode(chunk, final=False)
    return text.removeprefix("\ufeff")


def first_bad_byte(fh: BinaryIO, encoding: str) -> tuple[int, int, str, int | None] | None:
    """(byte value, 1-based line, the text around it, 0-based byte offset) of the first byte of the binary
    stream ``fh`` (read to its end in 1 MiB chunks) that is not text in ``encoding``, or None. The text shows
    the bad byte as ``\\xNN``; the offset is known for UTF-8 only (None otherwise)."""
    decoder = codecs.getincrementaldecoder(encoding)(errors=_MARK)
    utf8 = is_utf8(encoding)
    lines, offset = 1, 0
    tail = ""  # the end of the previous chunk's last line, for the text before a bad byte
    while True:
        chunk = fh.read(_CHUNK)
        text = decoder.decode(chunk, final=not chunk)
        found = _MARKED.search(text)
        if found is not None:
            before = (tail + text[: found.start()]).rsplit("\n", 1)[-1][-_AROUND:]
            after = text[found.end() :]
            while len(after) < _AROUND and "\n" not in after and (more := fh.read(_CHUNK)):
                after += decoder.decode(more)
            after = after[:_AROUND].split("\n", 1)[0].rstrip("\r")
            sample = _shown(before + text[found.start()] + after)
            at = offset + len(text[: found.start()].encode(UTF8)) if utf8 else None  # valid UTF-8 re-encodes as read
            return ord(text[found.start()]) - 0xDC00, lines + text[: found.start()].count("\n"), sample, at
        if not chunk:
            return None
        lines += text.count("\n")
        offset += len(text.encode(UTF8)) if utf8 else 0
        tail = (tail + text).rsplit("\n", 1)[-1][-_AROUND:]


def _shown(text: str) -> str:
    """``text`` quoted, bad bytes (marks) as ``\\xNN``."""
    return "'" + _MARKED.sub(lambda m: f"\\x{ord(m.group()) - 0xDC00:02x}", text).replace("'", "\\'") + "'"


def not_text_error(path: Path, fh: BinaryIO, encoding: str, column: str | None = None,
                   detail: str = "") -> DataError:
    """The file ``path`` (its bytes in ``fh``) is not text in ``encoding``: the first bad byte, its line and the
    text around it, ``detail`` (rows and values, say) and what to do: for UTF-8, the ``--encoding`` of Excel's
    Windows CSV; for another encoding, to check it."""
    try:
        found = first_bad_byte(fh, encoding)
        at = "" if found is None or found[3] is None else f" at byte offset {found[3]},"
        parts = [f"first bad byte 0x{found[0]:02x}{at} on line {found[1]}: {found[2]}"] if found else []
    except UnicodeError as exc:  # not a byte: "UTF-16 stream does not start with BOM"
        parts = [str(exc)]
    parts += [detail] if detail else []
    where = f" ({'; '.join(parts)})" if parts else ""
    col = f" column '{column}'" if column else ""
    if not is_utf8(encoding):
        return DataError(f"{path}:{col} is not valid {encoding} text{where}; check --encoding (the encoding the "
                         "file was saved in: utf-8, cp1252, latin-1, utf-16, ...)")
    return DataError(
        f"{path}:{col} is not valid UTF-8 text{where}; pass --encoding cp1252 (a CSV from Excel on Windows) or "
        f"--encoding latin-1 (other Western European text), or re-encode it (iconv -f cp1252 -t utf-8)"
    )
