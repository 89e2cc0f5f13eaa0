"""Read a table by file suffix, fingerprint a file, and choose the feature columns and their stated types.

A format gives ``column_names(path)``, ``read(path, columns, column_types)``, ``batches(path, columns,
batch_rows, column_types)`` (frames) and ``declared_types(path)`` ({} for untyped text). Delimited text
(:mod:`~survmom.data.text`) and Parquet (:mod:`~survmom.data.columnar`) give frames themselves; a
:class:`~survmom.data.formats.FormatReader` (Arrow IPC, ORC, JSON Lines, Stata, SPSS, SAS, Excel) gives Arrow
tables, made frames here by :class:`_ArrowFormat`. To add a format, write a FormatReader and list it in :data:`_TYPED`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from survmom.data import arrow_ipc, columnar, excel, statistical, text
from survmom.data.arrow_ipc import ARROW_IPC
from survmom.data.formats import FormatReader, reader_for
from survmom.data.jsonl import JSONL
from survmom.data.messages import SAMPLE, closest_name, plural, quote_list
from survmom.data.orc import ORC
from survmom.data.statistical import value_codes
from survmom.data.tables import check_file, to_pandas
from survmom.errors import ConfigError, DataError

_TYPED: tuple[FormatReader, ...] = (ARROW_IPC, ORC, JSONL, *statistical.READERS, excel.EXCEL)
_COLUMNAR = (".parquet", ".pq")
BLOCK_ROWS = 65536  # rows per block read when a typed file is dealt out to processes (read_table_share)
SUPPORTED = (*text.TEXT_SUFFIXES, *_COLUMNAR, *(s for r in _TYPED for s in r.suffixes))
_SUPPORTED_TEXT = ".csv, .tsv, .tab, .txt, .dat (each also .gz, .bz2, .zst, .xz, .zip), " + ", ".join(
    s for s in SUPPORTED if s not in text.TEXT_SUFFIXES)
# read as float64, as Categorical text, as object text; "code": as the file has it, but a value-labelled column
# (Stata, SPSS) gives its codes, not its labels (outcome columns: status 1 labelled "dead" is the event 1);
# "quantity": a code that is an amount (time, entry, weight), where a code labelled with a word is refused
COLUMN_TYPES = ("numeric", "category", "string", "code", "quantity")
_PARQUET_FROM_R = 'arrow::write_parquet(df, "x.parquet") or write.csv(df, "x.csv")'
_NOT_READ = {  # files users bring that survmom does not read, and how to convert them
    ".json": ('a JSON file (a JSON array, as pandas\' to_json(orient="records") writes, must be loaded whole); write '
              'JSON Lines instead: df.to_json("x.jsonl", orient="records", lines=True), or Parquet'),
    ".rds": f"an R data file; write it from R as {_PARQUET_FROM_R}",
    ".rdata": f"an R workspace; write the data frame from R as {_PARQUET_FROM_R}",
    ".rda": f"an R workspace; write the data frame from R as {_PARQUET_FROM_R}",
    ".sas7bcat": "a SAS format catalog, which holds value labels, not data; read the .sas7bdat data file",
    ".zip": "a ZIP archive; one holding a single CSV or text file is read when named for it (cohort.csv.zip), "
            "else extract the data file",
}


def read_table(
    path: Path, columns: list[str] | None = None, *, column_types: dict[str, str] | None = None,
    delimiter: str | None = None, encoding: str | None = None, sheet: str | None = None,
) -> pd.DataFrame:
    """Read a whole file into a DataFrame with a RangeIndex (row i is data row i + 1).

    ``columns`` selects (and orders) columns; missing ones raise a DataError naming all of them.
    ``column_types`` maps column name -> "numeric" (read as float64), "category" or "string" (read as text),
    or "code" (as read, but a value-labelled column's codes rather than its labels; "numeric" gives the codes
    too); pass :meth:`Preprocessor.column_types` at prediction time so types do not depend on the new file.
    Text columns come back as pandas ``Categorical`` unless ``column_types`` marks them "string".
    ``delimiter`` (``--delimiter``) and ``encoding`` (``--encoding``) apply to delimited text only (see
    :func:`~survmom.data.text.dialect`); ``sheet`` (``--sheet``: a name or 1-based number; None: the first
    visible sheet) to Excel workbooks only.
    """
    path = Path(path)
    reader = _format(path, delimiter, encoding, sheet)
    return reader.read(path, columns, _check_column_types(column_types))


def read_table_share(
    path: Path, columns: list[str] | None, *, share: int, shares: int, column_types: dict[str, str] | None = None,
    delimiter: str | None = None, encoding: str | None = None, sheet: str | None = None,
) -> pd.DataFrame:
    """The rows of one share of a file dealt out to ``shares`` (a process of a distributed run reads its own).

    Row ``i`` of the file goes to share ``i % shares``, so every share holds n/shares rows (± 1) whatever the
    file's size; the frame's index holds each row's position in the file, so error messages name file rows.
    Typed formats (Parquet, Arrow, Stata, SPSS, SAS) are streamed in blocks of :data:`BLOCK_ROWS` rows: memory
    holds this share only. Delimited text is read whole and then dealt, because its column types are inferred
    from all of its rows (a share read alone could infer another type); convert a large CSV to Parquet for
    the memory to scale.
    """
    path = Path(path)
    if _is_text(path):
        table = read_table(path, columns, column_types=column_types, delimiter=delimiter, encoding=encoding)
        return table[table.index.to_numpy() % shares == share]
    reader = _format(path, delimiter, encoding, sheet)
    pieces, rows = [], 0
    for batch in reader.arrow_batches(path, columns, BLOCK_ROWS):  # only this share's rows are kept (Arrow)
        pieces.append(batch.take(pa.array(np.arange((share - rows) % shares, batch.num_rows, shares))))
        rows += batch.num_rows
    if not pieces:
        raise DataError(f"{path}: has no data rows")
    table = pa.Table.from_batches(pieces) if isinstance(pieces[0], pa.RecordBatch) else pa.concat_tables(pieces)
    del pieces
    frame = reader.frame(table, path, _check_column_types(column_types))
    frame.index = pd.RangeIndex(share, rows, shares)  # each row's place in the file
    return frame


def concat_frames(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Frames of one file's rows (same columns) as one frame in file order (by index); a text column keeps
    its Categorical type, with the union of the frames' categories (in order of first appearance)."""
    if len(frames) == 1:
        return frames[0]
    frames = [frame.copy(deep=False) for frame in frames]  # categories are set on the copies, not the inputs
    for name in frames[0].columns:
        if all(isinstance(frame[name].dtype, pd.CategoricalDtype) for frame in frames):
            categories = pd.Index(np.concatenate([frame[name].cat.categories.to_numpy() for frame in frames]))
            for frame in frames:
                frame[name] = frame[name].cat.set_categories(categories.unique())
    whole = pd.concat(frames)
    return whole if whole.index.is_monotonic_increasing else whole.sort_index(kind="stable")


def iter_table_batches(
    path: Path,
    columns: list[str] | None,
    batch_rows: int = 65536,
    *,
    column_types: dict[str, str] | None = None,
    delimiter: str | None = None,
    encoding: str | None = None,
    sheet: str | None = None,
) -> Iterator[pd.DataFrame]:
    """Stream a file as DataFrames of at most ``batch_rows`` rows; memory stays flat.

    Each frame's RangeIndex continues the previous one, so error row numbers refer to the whole file. For CSV
    every block must have the same types: columns in ``column_types`` are read as numeric (float64) or text,
    and columns not listed are read as text (parse_time/parse_event and the Preprocessor accept numbers as
    text). Errors are those of :func:`read_table`: file, header and column problems are raised by this call,
    problems in the rows when the offending block is reached.
    """
    path = Path(path)
    reader = _format(path, delimiter, encoding, sheet)
    if batch_rows < 1:
        raise ConfigError(f"batch_rows must be >= 1, got {batch_rows}")
    return reader.batches(path, columns, batch_rows, _check_column_types(column_types))


def table_columns(path: Path, *, delimiter: str | None = None, encoding: str | None = None,
                  sheet: str | None = None) -> list[str]:
    """The column names of a file (stripped), from its header or schema; no rows are read (but a workbook's
    sheet is, once: its used columns and their types are known from its cells)."""
    path = Path(path)
    return _format(path, delimiter, encoding, sheet).column_names(path)


def declared_types(path: Path, *, sheet: str | None = None) -> dict[str, str]:
    """Column -> "numeric" or "category" as a typed file's schema states it; {} for untyped text (CSV)."""
    path = Path(path)
    if _is_text(path):
        check_file(path)
        return {}
    return _format(path, None, None, sheet).declared_types(path)


def value_labels(path: Path) -> dict[str, list[str]]:
    """Column -> its value labels, for the value-labelled columns of a Stata or SPSS file; {} for other files."""
    path = Path(path)
    return {} if reader_for(path, statistical.READERS) is None else statistical.value_labels(path)


def nominal_numbers(path: Path) -> list[str]:
    """The number columns of an SPSS file whose measurement level is "nominal" (category codes, such as a region
    1 ... 7; :func:`~survmom.data.statistical.nominal_numbers`); [] for other files."""
    path = Path(path)
    return [] if reader_for(path, [statistical.SPSS]) is None else statistical.nominal_numbers(path)


def nominal_notice_line(columns: list[str], path: Path) -> str:
    """The line saying which SPSS numbers (:func:`nominal_numbers`) are read as categories."""
    one = len(columns) == 1
    return (f"{path}: {'column' if one else 'columns'} {quote_list(columns)} {'is' if one else 'are'} nominal "
            f"({'its' if one else 'their'} SPSS measurement level): treated as categorical, one input per value; "
            f"--numeric {','.join(columns)} reads {'it as a number' if one else 'them as numbers'}")


def pandas_index_columns(path: Path) -> list[str]:
    """The columns a Parquet or Arrow IPC/Feather file records as the pandas index it was written with
    (``df.set_index("pid").to_parquet(...)`` records ``pid``), in index-level order, and a Stata file's column
    ``index`` holding 0 ... n-1 (``df.to_stata(...)`` writes a RangeIndex so by default); [] otherwise."""
    path = Path(path)
    if path.name.lower().endswith(_COLUMNAR):
        return columnar.index_names(path)
    if reader_for(path, [ARROW_IPC]) is not None:
        return arrow_ipc.index_names(path)
    if reader_for(path, [statistical.STATA]) is not None and "index" in table_columns(path):
        # DataFrame.to_stata writes its index by default, as a column "index"; a RangeIndex holds 0 ... n-1
        index = read_table(path, ["index"])["index"]
        if pd.api.types.is_numeric_dtype(index.dtype) and np.array_equal(index.to_numpy(), np.arange(len(index))):
            return ["index"]
    return []


def text_notice(path: Path, *, delimiter: str | None = None, encoding: str | None = None,
                sheet: str | None = None) -> str | None:
    """One line saying how a delimited text file was read when it is not plain comma-separated (a
    semicolon-separated file with decimal commas, say), or how a workbook's sheet was (which sheet of several,
    rows above the header, error cells: :func:`~survmom.data.excel.notice`), for the command's warnings; None
    otherwise."""
    path = Path(path)
    if is_workbook(Path(path)):
        _format(path, delimiter, encoding, sheet)
        return excel.notice(path, sheet)
    return _format(path, delimiter, encoding, sheet).notice if _is_text(path) else None


def fingerprint(path: Path) -> str:
    """``"blake2b:<32 hex digits>:<size in bytes>"`` of the file's content, read in 1 MiB chunks."""
    path = Path(path)
    check_file(path)
    digest = hashlib.blake2b(digest_size=16)
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return f"blake2b:{digest.hexdigest()}:{size}"


def _is_text(path: Path) -> bool:
    return path.name.lower().endswith(text.TEXT_SUFFIXES)


def is_workbook(path: Path) -> bool:
    """Whether ``path`` names an Excel workbook (.xlsx, .xlsm) by its suffix."""
    return reader_for(path, [excel.EXCEL]) is not None


def _format(path: Path, delimiter: str | None, encoding: str | None = None, sheet: str | None = None) -> Any:
    """The reader of an existing file ``path`` by its suffix (any case: ``.CSV.GZ`` too); DataError for other
    files. ``delimiter`` and ``encoding`` are for delimited text, other formats ignore them; ``sheet`` is for a
    workbook only (ConfigError for another file)."""
    name = path.name.lower()
    typed = reader_for(path, _TYPED)
    if sheet is not None and typed is not excel.EXCEL:
        raise ConfigError(f"--sheet {sheet!r} is for Excel workbooks (.xlsx, .xlsm); {path} is not one")
    refused = excel.refusal(path)
    if refused is not None:
        raise refused
    if path.suffix.lower() in _NOT_READ and not name.endswith(text.TEXT_SUFFIXES):
        raise DataError(f"{path}: not read: {_NOT_READ[path.suffix.lower()]}")
    if not (name.endswith(text.TEXT_SUFFIXES) or name.endswith(_COLUMNAR) or typed):
        suffix = "".join(path.suffixes) or "(none)"
        raise DataError(f"{path}: unsupported file type '{suffix}' (supported: {_SUPPORTED_TEXT})")
    check_file(path)
    if name.endswith(text.TEXT_SUFFIXES):
        return _TextFormat(text.dialect(path, delimiter, encoding))
    if name.endswith(_COLUMNAR):
        return columnar
    return _ArrowFormat(excel.for_sheet(sheet) if typed is excel.EXCEL else typed)


class _TextFormat:
    """Delimited text read with one :class:`~survmom.data.text.Dialect`."""

    def __init__(self, how: text.Dialect) -> None:
        self.how = how
        self.notice = how.notice

    def column_names(self, path: Path) -> list[str]:
        return text.column_names(path, self.how)

    def read(self, path: Path, columns: list[str] | None, column_types: dict[str, str]) -> pd.DataFrame:
        return text.read(path, columns, column_types, self.how)

    def batches(self, path: Path, columns: list[str] | None, batch_rows: int, column_types: dict[str, str]
                ) -> Iterator[pd.DataFrame]:
        return text.batches(path, columns, batch_rows, column_types, self.how)


class _ArrowFormat:
    """A :class:`~survmom.data.formats.FormatReader` (typed Arrow tables) as frames, like Parquet's."""

    def __init__(self, reader: FormatReader) -> None:
        self.reader = reader

    def column_names(self, path: Path) -> list[str]:
        return self.reader.columns(path)

    def declared_types(self, path: Path) -> dict[str, str]:
        return self.reader.declared_types(path)

    def read(self, path: Path, columns: list[str] | None, column_types: dict[str, str]) -> pd.DataFrame:
        return _frame(self.reader.read(path, columns), path, column_types, 0)

    def arrow_batches(self, path: Path, columns: list[str] | None, batch_rows: int) -> Iterator[pa.Table]:
        return self.reader.iter_batches(path, columns, batch_rows)

    def frame(self, table: pa.Table, path: Path, column_types: dict[str, str], start: int = 0) -> pd.DataFrame:
        return _frame(table, path, column_types, start)

    def batches(self, path: Path, columns: list[str] | None, batch_rows: int, column_types: dict[str, str]
                ) -> Iterator[pd.DataFrame]:
        tables = self.reader.iter_batches(path, columns, batch_rows)  # file and columns checked now

        def generate() -> Iterator[pd.DataFrame]:
            start = 0
            for table in tables:
                rows = table.num_rows  # before to_pandas(self_destruct=True), after which the table is gone
                yield _frame(table, path, column_types, start)
                start += rows

        return generate()


def _frame(table: pa.Table, path: Path, column_types: dict[str, str], start: int) -> pd.DataFrame:
    """A typed reader's table as a frame; its binary columns (rare) must hold UTF-8 text."""
    def not_text(column: str, rows: str) -> DataError:
        return DataError(f"{path}: column '{column}' holds binary data, not UTF-8 text ({rows}); "
                         f"store it as text, or leave the column out")

    return to_pandas(value_codes(table, path, column_types), path, column_types, start, not_text=not_text)


def _check_column_types(column_types: dict[str, str] | None) -> dict[str, str]:
    if not column_types:
        return {}
    bad = {k: v for k, v in column_types.items() if v not in COLUMN_TYPES}
    if bad:
        raise ConfigError(f"column_types values must be one of {COLUMN_TYPES}, got {bad}")
    return dict(column_types)


# --------------------------------------------------------------------------------------------- columns


def select_feature_columns(
    columns: list[str],
    *,
    time_col: str,
    event_col: str,
    id_col: str | None,
    features: list[str] | None,
    exclude: list[str] | None,
    path: Path,
    design: dict[str, list[str]] | None = None,
    row_names: list[str] | None = None,
) -> list[str]:
    """Feature columns: ``features`` (default: all but time, event, id, the ``design`` columns, role ->
    names: entry, weight, strata, and the ``row_names``, a file's pandas index) minus ``exclude``, in file
    order.

    Unknown names in ``features``/``exclude`` and a missing time/event/id/design column raise DataError.
    """
    columns = list(columns)
    roles = {"time": time_col, "event": event_col, "id": id_col}
    if time_col == event_col:
        raise ConfigError(f"time and event columns must differ (both are '{time_col}')")
    named = [(role, name) for role, name in roles.items() if name is not None]
    named += [(role, name) for role, names in (design or {}).items() for name in names]
    for role, name in named:
        if name not in columns:
            raise _not_found(path, role, name, columns)
    reserved = {name for _, name in named}
    for option, names in (("features", features), ("exclude", exclude)):
        _check_known(option, names, columns, path)
    if features is not None:
        clash = [n for n in features if n in reserved]
        if clash:
            role = next(role for role, name in named if name == clash[0])
            raise ConfigError(f"features must not include the time, event, id, entry, weight, strata or origin column: "
                              f"{quote_list(clash)}" + (f" (the {role} column); to use it as a feature too (an age "
                              "at entry, say), copy it to a column of another name and list that" if
                              role == "entry" else ""))
        wanted = set(features)
        chosen = [c for c in columns if c in wanted]
    else:
        chosen = [c for c in columns if c not in reserved.union(row_names or [])]
    dropped = set(exclude or [])
    chosen = [c for c in chosen if c not in dropped]
    if not chosen:
        roles_text = [f"time '{time_col}'", f"event '{event_col}'", *([f"id '{id_col}'"] if id_col else []),
                      *([f"excluded {quote_list(sorted(dropped))}"] if dropped else [])]
        why = ": --features names no column" if features == [] else ""
        raise DataError(f"{path}: no feature columns left{why} (columns: {quote_list(columns)}; "
                        f"{', '.join(roles_text)})")
    return chosen


def forced_types(
    columns: list[str],
    *,
    categorical: list[str] | None,
    numeric: list[str] | None,
    roles: dict[str, str | list[str] | None],
    features: list[str],
    path: Path,
) -> dict[str, str]:
    """Column -> "category" or "numeric" as the user forces it (``--categorical``, ``--numeric``).

    ``roles`` maps "time", "event", "id" (and the design roles: entry, weight, strata) to their column(s).
    DataError for a name that is not a column of ``path``; ConfigError for a column in both lists, for a column
    with a role, and for a column that is not among the ``features`` (excluded, or left out of ``--features``).
    """
    given = {"categorical": categorical or [], "numeric": numeric or []}
    for option, names in given.items():
        _check_known(option, names, columns, path)
    both = [n for n in given["categorical"] if n in set(given["numeric"])]
    if both:
        raise ConfigError(f"--categorical and --numeric both name {quote_list(both)}; give each column one type")
    role_of = {name: role for role, names in roles.items()
               for name in ([names] if isinstance(names, str) else names or [])}
    used = set(features)
    for option, names in given.items():
        for name in names:
            if name in role_of:
                raise ConfigError(f"--{option} names '{name}', the {role_of[name]} column; only feature columns "
                                  "take a type")
            if name not in used:
                raise ConfigError(f"--{option} names '{name}', which is not a feature (excluded, or not in "
                                  "--features)")
    return {**dict.fromkeys(given["categorical"], "category"), **dict.fromkeys(given["numeric"], "numeric")}


def rejoin_split_names(names: list[str] | None, columns: list[str]) -> list[str] | None:
    """``names`` (a comma-separated option split into items) with each run of items that is not a column but
    is, joined by commas, the name of one (spaces around its commas ignored) made that name: ``--features
    dose, mg,age`` on a file with the column "dose, mg" gives ["dose, mg", "age"]. A name that is a column
    stays itself (quote the other: ``'"a,b",c'``)."""
    if not names:
        return names
    with_commas = {_comma_key(c): c for c in columns if "," in c}
    known, out, i = set(columns), [], 0
    while i < len(names):
        joined = None if names[i] in known else next(
            ((j, with_commas[key]) for j in range(len(names), i + 1, -1)
             if (key := _comma_key(",".join(names[i:j]))) in with_commas), None)
        out.append(names[i] if joined is None else joined[1])
        i = i + 1 if joined is None else joined[0]
    return out


def _comma_key(name: str) -> str:
    return re.sub(r"\s*,\s*", ",", name.strip())


def _check_known(option: str, names: list[str] | None, columns: list[str], path: Path) -> None:
    unknown = [n for n in names or [] if n not in columns]
    if unknown:
        close = {n: closest_name(n, columns) for n in unknown}
        hints = [f"'{n}': did you mean '{m}'?" for n, m in close.items() if m][:SAMPLE]
        quote = "; quote a name holding a comma: '\"a, b\",c'" if any("," in c for c in columns) else ""
        raise DataError(
            f"{path}: --{option} names {plural(len(unknown), 'column')} not in the file: {quote_list(unknown)} "
            f"(available: {quote_list(columns)}){'; ' if hints else ''}{'; '.join(hints)}{quote}"
        )


def _not_found(path: Path, what: str, name: str, available: list[str]) -> DataError:
    close = closest_name(name, available)
    hint = f"; did you mean '{close}'?" if close else ""
    header = text.header_line_below(path, name) if _is_text(path) and not close else None
    if header is not None:  # a title line above the header
        hint = (f"; line {header} holds '{name}': is it the header, under a title? remove the line(s) above it")
    elif len(available) == 1 and not close and _is_text(path):  # a title line above the header, or another delimiter
        hint = ("; the file has one column: is its first line a title (remove the lines above the header), or are "
                "its fields separated otherwise (--delimiter)?")
    hint += excel.first_sheet_hint(path)
    return DataError(f"{path}: {what} column '{name}' not found (available: {quote_list(available)}){hint}")
