"""Stata, SPSS and SAS files through pyreadstat (ReadStat): :data:`STATA`, :data:`SPSS`, :data:`SAS`, :data:`XPORT`.

Types follow what the file declares (the type rule: a typed source decides):

* numbers (SPSS and SAS store doubles; Stata's byte/int/long/float/double) -> float64, exact;
* text (``str``/``strL``, SPSS ``A``, SAS character) -> string, so categorical downstream even when its values
  look like numbers (centre "120"); an empty string is missing, as these formats have no other missing text;
* an SPSS number whose measurement level is "nominal" stays a number here; :func:`nominal_numbers` names these
  columns, which training reads as categories (a region 1 ... 7);
* a column with value labels (Stata, SPSS) -> categorical (Arrow dictionary of the labels); a value without a
  label keeps its code as text ("3"); the categories are the labels present in the batch, in code order; the
  field keeps the label -> code pairs, so that :func:`value_codes` gives the codes where they are meant
  (outcome columns, ``--numeric``); labels of missing codes (SPSS user-missing, Stata ``.a``-``.z``) do not
  count, so a number whose only label names a kind of missing (999 "not recorded") stays a number;
* Stata integers (byte/int/long) with missing values, which ReadStat gives as Python objects -> float64;
* missing values of every kind (Stata ``.`` and ``.a``-``.z``, SPSS system- and user-missing, SAS ``.`` and
  ``.A``-``.Z``) -> null;
* dates and datetimes (by their display format: Stata ``%td``/``%tc``, SPSS ``DATE``/``DATETIME``, SAS
  ``DATE9.``/``DATETIME20.`` ...) -> timestamps, which the preprocessing refuses as features and as time with
  a message naming the column (convert them to a number such as days since a reference date); SAS and SPSS
  times of day -> time64, refused the same way.

SAS keeps user-defined formats (its value labels) in a separate catalog file (``.sas7bcat``); survmom reads
the data file alone, so a formatted SAS number stays a number. Text is decoded with the encoding the file
declares (ReadStat's default); a file whose text does not decode is refused. XPORT files carry no row
count: one cut short is refused when its size is not a whole number of 80-byte records (SAS pads them), but
one cut at a record boundary reads as fewer rows.

Streaming reads the file in blocks of :data:`BLOCK_ROWS` rows (or ``batch_rows`` when larger) through
ReadStat's ``row_offset``/``row_limit``; each block is one library call that has to find its first row.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from survmom.data.cells import as_number
from survmom.data.formats import FormatReader, check_batch_rows, reader_for, rebatch
from survmom.data.messages import first_line
from survmom.data.tables import check_file, clean_names, select
from survmom.errors import DataError

CODES_KEY = b"survmom.value_codes"  # a labelled column's field metadata: JSON [[label, code], ...]

SAMPLE_CODES = 3  # special codes named in an error
BLOCK_ROWS = 1 << 18  # rows per ReadStat call when streaming: few calls, each block a few tens of MB


def _library() -> Any:
    import pyreadstat  # imported on first use: a CLI that never reads these formats does not load it

    return pyreadstat


def _read_function(kind: str) -> Callable[..., Any]:
    lib = _library()
    return {"Stata": lib.read_dta, "SPSS": lib.read_sav, "SAS": lib.read_sas7bdat, "SAS XPORT": lib.read_xport}[kind]


def _failure(path: Path, kind: str, exc: BaseException) -> DataError:
    reason = first_line(exc)
    if isinstance(exc, UnicodeError) or "encoding" in reason.lower():
        return DataError(f"{path}: text that cannot be decoded ({reason}); save the file again with UTF-8 "
                         f"text (Stata 14+: unicode translate; SPSS: SET UNICODE ON; SAS: ENCODING=UTF8)")
    return DataError(f"{path}: not a readable {kind} file, or a truncated one ({reason})")


def _call(path: Path, kind: str, **options: Any) -> tuple[pd.DataFrame, Any]:
    """One ReadStat read of ``path``: (frame, metadata); dates as datetime64, every missing value as NaN."""
    lib = _library()
    try:
        return _read_function(kind)(str(path), dates_as_pandas_datetime=True, **options)
    except (lib.ReadstatError, lib.PyreadstatError, OSError, UnicodeError, ValueError) as exc:
        raise _failure(path, kind, exc) from None


def _metadata(path: Path, kind: str) -> Any:
    check_file(path)
    if kind == "SAS XPORT" and path.stat().st_size % 80:
        raise DataError(f"{path}: a truncated SAS XPORT file (its size, {path.stat().st_size} bytes, is not a whole "
                        f"number of 80-byte records)")
    options = {"user_missing": True} if kind == "SPSS" else {}  # only then does the metadata hold missing_ranges
    return _call(path, kind, metadataonly=True, **options)[1]


def _code_text(value: Any) -> str:
    """A code without a label, as text: 3.0 -> "3", 2.5 -> "2.5", "x" -> "x"."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return value if isinstance(value, str) else repr(value)


def _labelled(array: pa.Array, labels: dict[Any, str]) -> pa.DictionaryArray:
    """Codes -> a dictionary array of their labels (a code without one: its text); Python runs per unique code."""
    encoded = array.dictionary_encode()
    codes = encoded.dictionary.to_pylist()
    texts = [str(labels[c]) if c in labels else _code_text(c) for c in codes]
    categories = list(dict.fromkeys(texts[i] for i in sorted(range(len(codes)), key=codes.__getitem__)))
    position = {text: i for i, text in enumerate(categories)}
    indices = pc.take(pa.array([position[t] for t in texts], pa.int32()), encoded.indices)
    return pa.DictionaryArray.from_arrays(indices, pa.array(categories, pa.string()))


def _data_labels(meta: Any, raw: str) -> dict[Any, str] | None:
    """The value labels of column ``raw`` less those of missing codes, which the data never holds (they are read
    as missing): a code in one of SPSS's user-missing ranges, and a text code on a Stata number (``.a``-``.z``)."""
    labels = meta.variable_value_labels.get(raw)
    if not labels:
        return None
    text = meta.readstat_variable_types[raw] == "string"
    ranges = [(r["lo"], r["hi"]) for r in (meta.missing_ranges or {}).get(raw, [])
              if isinstance(r["lo"], str) == text and isinstance(r["hi"], str) == text]
    kept = {code: label for code, label in labels.items()
            if isinstance(code, str) == text and not any(lo <= code <= hi for lo, hi in ranges)}
    return kept or None


def _column(values: pd.Series, declared: str, labels: dict[Any, str] | None) -> pa.Array:
    """One column of a ReadStat frame as a typed Arrow array (see the module docstring)."""
    if declared == "string":
        array = pa.array(values.to_numpy(dtype=object), type=pa.string(), from_pandas=True)
        array = pc.if_else(pc.equal(array, ""), pa.scalar(None, pa.string()), array)
    elif pd.api.types.is_datetime64_any_dtype(values.dtype):
        return pa.array(values, type=pa.timestamp("ns"), from_pandas=True)
    elif values.dtype == object and pd.api.types.infer_dtype(values, skipna=True) == "time":  # times of day
        return pa.array(values.to_numpy(dtype=object), type=pa.time64("us"), from_pandas=True)
    else:
        array = pa.array(values.to_numpy(dtype=np.float64), type=pa.float64(), from_pandas=True)
    return _labelled(array, labels) if labels else array


def _table(frame: pd.DataFrame, meta: Any, wanted: list[str], selected: list[str]) -> pa.Table:
    """The typed table of ``frame``; a labelled column's field keeps its label -> code pairs (:func:`value_codes`)."""
    arrays, fields = [], []
    for raw, name in zip(wanted, selected, strict=True):
        labels = _data_labels(meta, raw)
        array = _column(frame[raw], meta.readstat_variable_types[raw], labels)
        labelled = pa.types.is_dictionary(array.type)
        pairs = [[str(label), code] for code, label in labels.items()] if labels and labelled else None
        fields.append(pa.field(name, array.type, metadata={CODES_KEY: json.dumps(pairs)} if pairs else None))
        arrays.append(array)
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def value_labels(path: Path) -> dict[str, list[str]]:
    """Column -> its value labels (those :func:`_data_labels` keeps), for the value-labelled columns of ``path``."""
    meta, wanted, selected = _plan(Path(path), reader_for(path, READERS).name, None)
    return {name: [str(label) for label in labels.values()]
            for raw, name in zip(wanted, selected, strict=True) if (labels := _data_labels(meta, raw))}


def nominal_numbers(path: Path) -> list[str]:
    """The number columns of ``path`` (no value labels, not dates) whose measurement level is "nominal" (SPSS's
    ``VARIABLE LEVEL``; Stata and SAS files have none): codes of categories, such as a region 1 ... 7."""
    path = Path(path)
    kind = reader_for(path, READERS).name
    meta, wanted, selected = _plan(path, kind, None)
    measures = meta.variable_measure or {}
    if "nominal" not in measures.values():
        return []
    schema = _schema(path, kind)
    return [name for raw, name in zip(wanted, selected, strict=True)
            if measures.get(raw) == "nominal" and schema.field(name).type == pa.float64()]


def value_codes(table: pa.Table, path: Path, column_types: dict[str, str]) -> pa.Table:
    """``table`` with each value-labelled column that ``column_types`` marks "code", "quantity" or "numeric" as its
    codes (float64 for numeric codes, else text): the outcome columns of a Stata or SPSS file mean their codes (status
    1 labelled "dead" is an event), and so does a labelled feature forced ``--numeric`` (a scale 1-5 labelled
    "never" ... "always"). Where every label is a number, the labels are the values (codes 0-3 labelled "70" ...
    "100"). A value without a label is its code already (as text). A "quantity" (time, entry, weight) holding a
    code labelled with a word is refused. Other columns are unchanged."""
    for index, field in enumerate(table.schema):
        wanted = column_types.get(field.name)
        if wanted not in ("code", "quantity", "numeric") or CODES_KEY not in (field.metadata or {}):
            continue
        pairs = json.loads(field.metadata[CODES_KEY])
        numbers = {label: as_number(label) for label, _ in pairs}
        codes: dict[str, Any] = {}
        if all(number is not None and np.isfinite(number) for number in numbers.values()):
            # Every label is a number: the labels are the values (pandas' to_stata writes a categorical of the
            # numbers 70 ... 100 as codes 0 ... 3 labelled "70" ... "100").
            codes, kind = numbers, pa.float64()
        else:
            for label, code in pairs:
                if codes.setdefault(label, code) != code:
                    raise DataError(f"{path}: column '{field.name}' labels codes {_code_text(codes[label])} and "
                                    f"{_code_text(code)} both {label!r}: its codes cannot be told apart from the "
                                    "labels; give each code its own label")
            kind = pa.float64() if all(isinstance(code, (int, float)) for _, code in pairs) else pa.string()
        chunks = pa.chunked_array([_decoded(chunk, codes, kind) for chunk in table.column(index).chunks], kind)
        if wanted == "quantity" and kind == pa.float64():
            _refuse_special_codes(path, field.name, pairs, chunks)
        table = table.set_column(index, pa.field(field.name, kind), chunks)
    return table


def _refuse_special_codes(path: Path, column: str, pairs: list[list[Any]], values: pa.ChunkedArray) -> None:
    """DataError when a time, entry or weight column holds a code labelled with a word (9999 "lost to
    follow-up"): a special code, not an amount, which would otherwise be read as the number 9999."""
    words = {float(code): label for label, code in pairs
             if as_number(label) is None and isinstance(code, (int, float))}
    if not words:
        return
    held = pc.is_in(values, value_set=pa.array(list(words), pa.float64()))
    count = pc.sum(held).as_py() or 0
    if count:
        present = [code for code in words if pc.any(pc.equal(values, code)).as_py()]
        shown = ", ".join(f"{_code_text(code)} {words[code]!r}" for code in present[:SAMPLE_CODES])
        raise DataError(f"{path}: column '{column}' holds codes with value labels ({shown}) in {count} row(s): "
                        "a special code, not an amount; make these codes missing (Stata: a .a-.z code; SPSS: "
                        "MISSING VALUES) or drop those rows")


def _decoded(chunk: pa.Array, codes: dict[str, Any], kind: pa.DataType) -> pa.Array:
    """A labelled chunk (labels; a code without a label as its text) as codes of type ``kind``."""
    chunk = chunk if pa.types.is_dictionary(chunk.type) else chunk.cast(pa.string()).dictionary_encode()
    texts = chunk.dictionary.to_pylist()
    values = [codes[text] if text in codes else float(text) if kind == pa.float64() else text for text in texts]
    return pc.take(pa.array(values, kind), chunk.indices)


def _plan(path: Path, kind: str, columns: list[str] | None) -> tuple[Any, list[str], list[str]]:
    """(metadata, the raw names to read in request order, the stripped names to give them)."""
    meta = _metadata(path, kind)
    names = clean_names(meta.column_names, path)
    selected = select(names, columns, path)
    raw_of = dict(zip(names, meta.column_names, strict=True))
    return meta, [raw_of[c] for c in selected], selected


def _columns(path: Path, kind: str) -> list[str]:
    path = Path(path)
    return clean_names(_metadata(path, kind).column_names, path)


def _schema(path: Path, kind: str) -> pa.Schema:
    """The Arrow schema :func:`_read` gives, from the metadata and the first row (dates are known by format)."""
    path = Path(path)
    meta, wanted, selected = _plan(path, kind, None)
    frame, _ = _call(path, kind, row_limit=1)
    return _table(frame, meta, wanted, selected).schema


def _read(path: Path, kind: str, columns: list[str] | None) -> pa.Table:
    path = Path(path)
    meta, wanted, selected = _plan(path, kind, columns)
    frame, _ = _call(path, kind, usecols=wanted)
    if len(frame) == 0:
        raise DataError(f"{path}: has no data rows")
    return _table(frame, meta, wanted, selected)


def _iter_batches(path: Path, kind: str, columns: list[str] | None, batch_rows: int) -> Iterator[pa.Table]:
    path = Path(path)
    check_batch_rows(batch_rows)
    meta, wanted, selected = _plan(path, kind, columns)
    if meta.number_rows == 0:
        raise DataError(f"{path}: has no data rows")
    block = max(batch_rows, BLOCK_ROWS)

    def blocks() -> Iterator[pa.Table]:
        offset = 0
        while meta.number_rows is None or meta.number_rows < 0 or offset < meta.number_rows:
            frame, _ = _call(path, kind, usecols=wanted, row_offset=offset, row_limit=block)
            if len(frame):
                yield _table(frame, meta, wanted, selected)
            offset += len(frame)
            if len(frame) < block:
                break
        if offset == 0:
            raise DataError(f"{path}: has no data rows")

    return rebatch(blocks(), batch_rows)


def _reader(kind: str, suffixes: tuple[str, ...]) -> FormatReader:
    return FormatReader(
        kind,
        suffixes,
        lambda path: _columns(path, kind),
        lambda path: _schema(path, kind),
        lambda path, columns=None: _read(path, kind, columns),
        lambda path, columns, batch_rows=65536: _iter_batches(path, kind, columns, batch_rows),
    )


STATA = _reader("Stata", (".dta",))
SPSS = _reader("SPSS", (".sav", ".zsav"))
SAS = _reader("SAS", (".sas7bdat",))
XPORT = _reader("SAS XPORT", (".xpt",))
READERS = (STATA, SPSS, SAS, XPORT)
