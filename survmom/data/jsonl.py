"""JSON Lines (``.jsonl``, ``.ndjson``, each also gzip-compressed ``.gz``): :data:`JSONL`.

One JSON object per line, its keys the columns; a key missing from a line is a missing value there. pyarrow's
streaming reader (``pyarrow.json.open_json``) takes the first block's types for every block, so that an integer
key with a float far down would fail: the file is parsed twice, first block by block for each block's types,
unified (integers and floats: floats; a block of nulls takes the others' type), then streamed with that schema.
Types are then as Parquet's: strings categorical, numbers numeric. Blocks are 128 KiB of text and pyarrow reads
about 32 ahead, so streaming holds some 4 MiB and a batch whatever the file's size; a line longer than a block
is refused. Refused with their line number: a line that is not a JSON object, one that is not UTF-8 (pyarrow's
parser does not check), and a key holding numbers in some lines and text in others.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.json as pa_json

from survmom.data.formats import FormatReader, check_batch_rows, rebatch
from survmom.data.messages import first_line
from survmom.data.tables import check_file, clean_names, select
from survmom.errors import DataError

_BLOCK_BYTES = 1 << 17  # pyarrow reads ahead about 32 blocks: 4 MiB held, whatever the file's size

_MIXED = re.compile(r"Column\(/([^)]*)\) changed from (?:number|string|boolean) to (?:number|string|boolean)")

def _stream(path: Path) -> pa.NativeFile:
    """The file's bytes, decompressed when its name ends in .gz."""
    return pa.input_stream(str(path), compression="gzip" if path.name.lower().endswith(".gz") else None)


def _open(path: Path, schema: pa.Schema) -> pa_json.JSONStreamingReader:
    """A streaming reader of the file's rows as ``schema`` types them."""
    try:
        return pa_json.open_json(_stream(path), read_options=pa_json.ReadOptions(block_size=_BLOCK_BYTES),
                                 parse_options=pa_json.ParseOptions(explicit_schema=schema))
    except (pa.ArrowException, OSError, EOFError) as exc:
        raise _bad(path, exc) from None


def _bad(path: Path, exc: BaseException) -> DataError:
    """The error for a file pyarrow could not parse, naming the first line that is not a JSON object."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8") as fh:
            for number, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                if len(line.encode()) > _BLOCK_BYTES:
                    return DataError(f"{path}: line {number} is longer than {_BLOCK_BYTES // 1024} KiB, the longest "
                                     f"line read; write such wide rows as Parquet")
                try:
                    value = json.loads(line)
                except ValueError as why:
                    return DataError(f"{path}: line {number} is not a JSON object ({first_line(why)}): "
                                     f"{line.strip()[:60]!r}")
                if not isinstance(value, dict):
                    return DataError(f"{path}: line {number} is not a JSON object, one per line as JSON Lines "
                                     f"holds: {line.strip()[:60]!r}")
    except (OSError, EOFError, UnicodeDecodeError) as why:
        return DataError(f"{path}: not readable JSON Lines ({first_line(why)})")
    return DataError(f"{path}: not readable JSON Lines ({first_line(exc)})")


def _chunks(path: Path) -> Iterator[bytes]:
    """The file's bytes in whole lines, about a block at a time (decompressed when its name ends in .gz)."""
    rest = b""
    with _stream(path) as fh:
        while block := fh.read(_BLOCK_BYTES):
            rest += block
            cut = rest.rfind(b"\n") + 1
            if cut:
                yield rest[:cut]
                rest = rest[cut:]
            elif len(rest) > _BLOCK_BYTES:
                raise _bad(path, ValueError("a line longer than a block"))
    if rest.strip():
        yield rest


def _check_utf8(chunk: bytes, lines_before: int, path: Path) -> None:
    """DataError naming the line of the first byte in ``chunk`` that is not UTF-8 (JSON text is UTF-8)."""
    try:
        chunk.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = lines_before + chunk.count(b"\n", 0, exc.start) + 1
        raise DataError(f"{path}: line {line} is not UTF-8 (byte 0x{chunk[exc.start]:02x}); JSON text is UTF-8: "
                        f"write the file as UTF-8, or convert it (iconv -f cp1252 -t utf-8)") from None


def _raw_schema(path: Path) -> pa.Schema:
    """The file's schema, each block's types inferred on its own and all unified (one streaming pass; the last
    file's is kept, by path, size and modification time, as a command asks for it several times).

    pyarrow's streaming reader takes the first block's types for all blocks, so that an integer column with a
    float far down would be an error; here the blocks are parsed one by one, and only their schemas kept.
    """
    global _last
    check_file(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if _last is None or _last[0] != key:
        _last = (key, _unified_schema(path))
    return _last[1]


_last: tuple[tuple[str, int, int], pa.Schema] | None = None  # the last file's key and schema


def _unified_schema(path: Path) -> pa.Schema:
    """:func:`_raw_schema` of ``path``, read."""
    options = pa_json.ReadOptions(block_size=2 * _BLOCK_BYTES, use_threads=False)
    schemas = []
    try:
        lines = 0
        for chunk in _chunks(path):
            _check_utf8(chunk, lines, path)  # pyarrow's parser does not check, and pandas would fail later
            lines += chunk.count(b"\n")
            if chunk.strip():
                schemas.append(pa_json.read_json(pa.BufferReader(chunk), read_options=options).schema)
        if not schemas:
            raise DataError(f"{path}: has no data rows")
        return pa.unify_schemas(schemas, promote_options="permissive")
    except (pa.ArrowException, OSError, EOFError) as exc:
        mixed = _MIXED.search(str(exc))
        if isinstance(exc, pa.ArrowTypeError) or mixed:
            key = f"key '{mixed[1]}'" if mixed else "a key"
            raise DataError(f"{path}: {key} holds values of two kinds in different lines, numbers and text say "
                            f"({first_line(exc)}); write one kind per key") from None
        raise _bad(path, exc) from None


def schema(path: Path) -> pa.Schema:
    """The stripped names and the unified types :func:`read` gives (the whole file is parsed once)."""
    path = Path(path)
    raw = _raw_schema(path)
    names = clean_names(raw.names, path)
    return pa.schema([f.with_name(n) for f, n in zip(raw, names, strict=True)])


def columns(path: Path) -> list[str]:
    """The stripped keys, in order of first appearance."""
    return schema(path).names


def iter_batches(path: Path, columns: list[str] | None, batch_rows: int = 65536) -> Iterator[pa.Table]:
    """The file as tables of ``batch_rows`` rows; keys checked now (a first pass), rows when read."""
    path = Path(path)
    check_batch_rows(batch_rows)
    raw = _raw_schema(path)
    names = clean_names(raw.names, path)
    selected = select(names, columns, path)
    raw_of = dict(zip(names, raw.names, strict=True))
    wanted = [raw_of[c] for c in selected]
    reader = _open(path, raw)

    def batches() -> Iterator[pa.Table]:
        rows = 0
        try:
            for table in rebatch(reader, batch_rows):
                rows += table.num_rows
                yield table.select(wanted).rename_columns(selected)
        except (pa.ArrowException, OSError, EOFError) as exc:
            raise _bad(path, exc) from None
        if rows == 0:
            raise DataError(f"{path}: has no data rows")

    return batches()


def read(path: Path, columns: list[str] | None = None) -> pa.Table:
    """The whole file, ``columns`` in the given order (all when None); DataError when it has no rows."""
    parts = list(iter_batches(path, columns, 1 << 62))
    return parts[0] if len(parts) == 1 else pa.concat_tables(parts)


JSONL = FormatReader("JSON Lines", (".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz"), columns, schema, read,
                     iter_batches)
