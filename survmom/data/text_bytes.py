"""The bytes of a delimited text file: opened (decompressed by suffix), and not text at all (binary,
compressed). What :mod:`survmom.data.text` checks before parsing; :mod:`~survmom.data.text_encoding` decodes."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import zipfile
from pathlib import Path

import pyarrow as pa

from survmom.errors import DataError


def open_zip_member(path: Path, mode: str = "rb") -> io.BufferedIOBase:
    """The one file of a ZIP archive (``cohort.csv.zip``, as registries and browsers hand them out), streamed;
    DataError when the archive holds no file or several (naming them) or is not a ZIP archive."""
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as error:
        raise DataError(f"{path}: not a ZIP archive ({error})") from error
    members = [info for info in archive.infolist() if not info.is_dir()]
    if len(members) != 1:
        names = ", ".join(repr(info.filename) for info in members[:5]) + (", ..." if len(members) > 5 else "")
        archive.close()
        raise DataError(f"{path}: a ZIP archive must hold exactly one data file to be read, this one holds "
                        f"{len(members)}{': ' + names if members else ''}; extract the one to use")
    try:
        return archive.open(members[0])  # type: ignore[return-value]  # the archive closes with its last member
    except (NotImplementedError, RuntimeError) as error:  # an unsupported method, or encrypted
        raise DataError(f"{path}: cannot read {members[0].filename!r} in this ZIP archive ({error}); extract it "
                        "first") from error


# Suffix after the text suffix -> (pyarrow codec, Python opener); pyarrow builds usually lack lzma (xz).
COMPRESSION = {".gz": ("gzip", gzip.open), ".bz2": ("bz2", bz2.open), ".zst": ("zstd", None),
               ".xz": (None, lzma.open), ".zip": (None, open_zip_member)}

MAGIC = {
    b"PK\x03\x04": "a ZIP archive or Excel workbook: a zipped CSV is read when named .csv.zip, a workbook when "
                     "named .xlsx",
    b"\x1f\x8b": "gzip-compressed (name it .csv.gz)",
    b"BZh": "bzip2-compressed (name it .csv.bz2)",
    b"\x28\xb5\x2f\xfd": "zstd-compressed (name it .csv.zst)",
    b"\xfd7zXZ\x00": "xz-compressed (name it .csv.xz)",
    b"PAR1": "a Parquet file",
}


def check_text(path: Path, chunk: bytes, wide: bool = False) -> None:
    """DataError when the file's first bytes ``chunk`` are empty, or binary or compressed data; ``wide``: the
    encoding is UTF-16 or UTF-32, whose ASCII holds NUL bytes."""
    if not chunk.strip(b"\x00\xff\xfe\r\n\t " if wide else None):
        raise DataError(f"{path}: file is empty (no header row)")
    for prefix, what in MAGIC.items():
        if chunk.startswith(prefix):
            raise DataError(f"{path}: not a CSV text file (looks like {what})")
    if b"\x00" in chunk and not wide:
        raise DataError(f"{path}: not a CSV text file (contains NUL bytes; binary or compressed data?)")


def compression(path: Path) -> str | None:
    """The compression suffix of the file name in any case (``.csv.GZ`` too), or None."""
    suffix = path.suffix.lower()
    return suffix if suffix in COMPRESSION else None


def open_bytes(path: Path) -> io.BufferedIOBase | pa.NativeFile:
    """The file's (decompressed) bytes as a binary file object."""
    suffix = compression(path)
    if suffix is None:
        return open(path, "rb")
    codec, opener = COMPRESSION[suffix]
    if codec is not None and pa.Codec.is_available(codec):
        return pa.input_stream(str(path), compression=codec)
    if opener is None:
        raise DataError(f"{path}: this pyarrow build cannot read {codec} compression; decompress the file first")
    return opener(path, "rb")  # type: ignore[return-value]
