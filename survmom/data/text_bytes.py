"""The bytes of a delimited text file: not text at all (binary, compressed, UTF-16), and where it stops being
UTF-8. What :mod:`survmom.data.text` checks before and after parsing."""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import BinaryIO

from survmom.errors import DataError

_CHUNK = 1 << 20  # bytes read at a time

MAGIC = {
    b"PK\x03\x04": "a ZIP/Excel file; a workbook is read when named .xlsx",
    b"\x1f\x8b": "gzip-compressed (name it .csv.gz)",
    b"BZh": "bzip2-compressed (name it .csv.bz2)",
    b"\x28\xb5\x2f\xfd": "zstd-compressed (name it .csv.zst)",
    b"\xfd7zXZ\x00": "xz-compressed (name it .csv.xz)",
    b"PAR1": "a Parquet file",
}


def check_text(path: Path, chunk: bytes) -> None:
    """DataError when the file's first bytes ``chunk`` are empty, or binary or compressed data."""
    if not chunk.strip():
        raise DataError(f"{path}: file is empty (no header row)")
    if chunk.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):  # Excel's "Unicode Text", PowerShell's default
        raise DataError(f"{path}: is UTF-16 text, not UTF-8; re-encode the file as UTF-8 (e.g. iconv -f utf-16 -t "
                        "utf-8 in.csv > out.csv, or save it from Excel as 'CSV UTF-8')")
    for prefix, what in MAGIC.items():
        if chunk.startswith(prefix):
            raise DataError(f"{path}: not a CSV text file (looks like {what})")
    if b"\x00" in chunk:
        raise DataError(f"{path}: not a CSV text file (contains NUL bytes; binary or compressed data?)")


def first_bad_utf8(fh: BinaryIO) -> tuple[int, int, int] | None:
    """(byte offset, byte value, 1-based line) of the first invalid UTF-8 byte of the (decompressed) binary
    stream ``fh``, read to its end in 1 MiB chunks, or None."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0  # file offset of the current chunk
    lines = 1
    while True:
        chunk = fh.read(_CHUNK)
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
