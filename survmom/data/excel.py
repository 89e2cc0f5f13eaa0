"""Excel workbooks (``.xlsx``, ``.xlsm``) through openpyxl: :data:`EXCEL`, and :func:`for_sheet` for ``--sheet``.

One sheet is read: ``--sheet NAME`` or ``--sheet N`` (1-based, hidden sheets counted; a sheet named "2" wins
over the second sheet), by default the workbook's first visible sheet (in tab order; not the sheet that was
active when it was saved, which changes without the user noticing). :func:`notice` says which sheet was read
when there are several.

The table:

* the header is the first non-empty row that fills more than half of the columns the table fills (the most
  cells filled in one of its first 20 non-empty rows): rows above it (a title, a date) are skipped with a
  notice; a header row chosen so that holds numbers or dates is refused as ambiguous. Names are stripped;
  a column with data below an empty name is refused naming its letter; a column without name and data (a
  spacer, Excel's used range) is left out; duplicate names are refused as by every reader; a row under the
  header holding text in two or more columns of numbers (a row of units) is refused (on a sheet of at most
  :data:`CACHE_CELLS` cells).
* empty rows (anywhere) are not rows, as blank lines in a CSV file; data rows are numbered from 1 after the
  header in messages, as by every reader (the notice gives the header's sheet row).
* cells spelled missing (:data:`~survmom.data.cells.NA_MARKERS`: empty, ``NA``, ``#N/A`` ...) are missing;
  Excel's error values (``#DIV/0!``, ``#VALUE!``, ``#REF!`` ...) are missing too, counted per column in the
  notice; formulas give their saved results (a workbook whose formulas were never calculated, written by a
  program and not saved by Excel, is refused).

Column types from the cells (the type rule: a typed source decides): numbers -> int64 (whole numbers only) or
float64, also with numbers stored as text ("12") and ``"."`` among them; true/false -> bool; dates and
datetimes -> timestamps, times of day -> time64, durations -> duration, which the preprocessing refuses as
features and as time (as for Stata's dates); text, and any mix of kinds -> text (categorical downstream), a
number written as Excel shows it (2.0 -> "2"). A column of text cells that all read as numbers stays text (a
code formatted as Text: "007"); the training's warning about numbers stored as text names such columns. A mix
is not declared text (:data:`~survmom.data.formats.INFERRED`): training checks it as a CSV column, and warns
about numbers with a few words among them.

openpyxl parses every cell in Python, which makes workbooks the slowest format (README, "Excel workbooks").
Types need a pass over the sheet before the first row can be typed; a sheet of at most :data:`CACHE_CELLS`
cells keeps that pass's values (the last sheet read), so it is read once; a larger sheet is read twice,
streamed in ``batch_rows`` with memory bounded by the batch.
"""

from __future__ import annotations

import datetime
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from survmom.data.cells import DOT, NA_LOWER, is_missing_text, parses_as_float
from survmom.data.formats import INFERRED, FormatReader, check_batch_rows, rebatch
from survmom.data.messages import first_line, plural
from survmom.data.tables import check_file, clean_names, select
from survmom.errors import DataError

SUFFIXES = (".xlsx", ".xlsm")
REFUSED = {".xls": "an old binary Excel file (.xls)", ".xlsb": "a binary Excel workbook (.xlsb)",
           ".ods": "an OpenDocument spreadsheet (.ods)"}
ERROR_VALUES = frozenset({"#NULL!", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#GETTING_DATA", "#SPILL!",
                          "#CALC!", "#FIELD!", "#BLOCKED!", "#CONNECT!", "#UNKNOWN!", "#BUSY!", "#PYTHON!"})
CACHE_CELLS = 2_000_000  # a sheet of at most this many cells keeps the values of its typing pass
_BLOCK_ROWS = 4096  # rows typed at a time by the typing pass
HEADER_WINDOW = 20  # non-empty rows looked at to find the header
_NA_TEXT = pa.array(sorted(NA_LOWER), pa.string())
_ERROR_TEXT = pa.array(sorted(ERROR_VALUES), pa.string())
_OLE2 = b"\xd0\xcf\x11\xe0"  # an .xls file, or an encrypted workbook (both are OLE2 containers)


@dataclass
class _Column:
    """What one sheet column holds: the Python types of its cells, and what its text cells spell."""

    kinds: set[type] = field(default_factory=set)
    text: bool = False  # text that is not missing (nor an error value)
    words: bool = False  # such text that is not a number (nor ".")
    errors: int = 0  # cells holding an Excel error value
    error_values: set[str] = field(default_factory=set)  # which (#DIV/0! ...)
    values: list[Any] | None = None  # the cells, while the sheet is small enough to keep (CACHE_CELLS)


@dataclass
class Layout:
    """One sheet as the typing pass found it: the sheet, the header's row, the kept columns and their types."""

    sheet: str
    sheets: list[str]  # every sheet's name, in tab order; hidden ones followed by " (hidden)"
    header_row: int  # 1-based sheet row
    positions: list[int]  # 0-based sheet columns read, in order
    names: list[str]
    types: list[pa.DataType]
    rows: int
    errors: dict[str, tuple[int, list[str]]]  # column -> (cells, values) of Excel errors read as missing
    table: pa.Table | None  # the whole sheet, when it had at most CACHE_CELLS cells
    mixed: frozenset[str] = frozenset()  # text columns with other cells too: typed as a CSV's, not declared


_last: tuple[tuple[Any, ...], Layout] | None = None  # the last sheet's layout (a command reads it several times)


def refusal(path: Path) -> DataError | None:
    """The error for a spreadsheet format survmom does not read (.xls, .xlsb, .ods), else None."""
    what = REFUSED.get(Path(path).suffix.lower())
    if what is None:
        return None
    return DataError(f"{path}: {what} is not read; save it as .xlsx (Excel workbook) or .csv (CSV UTF-8) "
                     "and read that")


def _letter(position: int) -> str:
    from openpyxl.utils import get_column_letter

    return get_column_letter(position + 1)


def _open(path: Path) -> Any:
    """The workbook at ``path``, read-only with the formulas' saved results; DataError for an unreadable one."""
    check_file(path)
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic == _OLE2:
        raise DataError(f"{path}: a password-protected (encrypted) workbook or an old .xls file renamed; remove the "
                        "password, or save it from Excel as .xlsx or .csv")
    import openpyxl  # imported on first use: a CLI that never reads a workbook does not load it

    try:
        return openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError, TypeError, openpyxl.utils.exceptions.InvalidFileException
            ) as exc:
        raise DataError(f"{path}: not a readable Excel workbook, or a corrupt one ({first_line(exc)})") from None


def _worksheet(path: Path, book: Any, sheet: str | None) -> Any:
    """The sheet named ``sheet``, or numbered (1-based, hidden sheets counted), or the first visible one;
    DataError listing the sheets."""
    sheets = book.worksheets
    if not sheets:
        raise DataError(f"{path}: the workbook has no worksheets (only charts)")
    if sheet is None:
        return next((ws for ws in sheets if ws.sheet_state == "visible"), sheets[0])
    named = [ws for ws in sheets if ws.title == sheet] or [ws for ws in sheets if ws.title.strip() == sheet.strip()]
    if named:
        return named[0]
    if sheet.strip().isdigit() and 1 <= int(sheet) <= len(sheets):
        return sheets[int(sheet) - 1]
    raise DataError(f"{path}: no sheet {sheet!r} (--sheet takes a name or a number from 1 to {len(sheets)}; "
                    f"sheets: {', '.join(_sheet_names(book))})")


def _sheet_names(book: Any) -> list[str]:
    """The sheets' names, quoted, in tab order; a hidden sheet's followed by " (hidden)"."""
    return [f"'{ws.title}'" + ("" if ws.sheet_state == "visible" else " (hidden)") for ws in book.worksheets]


def _rows(ws: Any) -> Iterator[tuple[int, list[Any]]]:
    """(1-based sheet row, cells without trailing empty ones) of the sheet's non-empty rows."""
    ws.reset_dimensions()  # the saved used range may be wrong or padded: rows are as long as their last cell
    for number, row in enumerate(ws.iter_rows(values_only=True), start=1):
        cells = [None if isinstance(v, str) and not v.strip() else v for v in row]
        while cells and cells[-1] is None:
            cells.pop()
        if cells:
            yield number, cells


def cell_text(value: Any) -> str:
    """A cell as Excel shows it in a General column: 2.0 -> "2", 0.1 -> "0.1", True -> "TRUE"."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 2**53 else f"{value:.15g}"
    if isinstance(value, datetime.datetime) and value.time() == datetime.time():
        return value.date().isoformat()
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    return str(value)


def _header(path: Path, title: str, first: list[tuple[int, list[Any]]]) -> int:
    """The index in ``first`` (the first non-empty rows) of the header row (see the module docstring)."""
    filled = [sum(v is not None for v in cells) for _, cells in first]
    widest = max(filled)
    index = next(i for i, count in enumerate(filled) if 2 * count > widest or widest == 1)
    number, cells = first[index]
    if index and any(not isinstance(v, str) for v in cells if v is not None):
        value = next(v for v in cells if v is not None and not isinstance(v, str))
        raise DataError(f"{path}: sheet {title!r}: cannot tell its header row (row {number}, the first to fill most "
                        f"columns, holds {cell_text(value)}, not a name); put the column names in one row directly "
                        "above the data")
    return index


def _kind(column: _Column) -> pa.DataType:
    """The Arrow type of a column from its cells' types and texts (see the module docstring)."""
    kinds = column.kinds if column.text else column.kinds - {str}
    cells = kinds - {str}  # a column of text alone stays text, whatever it spells
    if cells and cells <= {int, float} and not column.words:
        return pa.int64() if kinds == {int} else pa.float64()
    if kinds == {bool}:
        return pa.bool_()
    if kinds and kinds <= {datetime.datetime, datetime.date}:
        return pa.timestamp("us")
    if kinds == {datetime.time}:
        return pa.time64("us")
    if kinds == {datetime.timedelta}:
        return pa.duration("us")
    return pa.string()


def _array(values: list[Any], kind: pa.DataType) -> pa.Array:
    """One column's cells as an Arrow array of ``kind``; missing spellings and error values -> null."""
    def missing(v: Any) -> bool:
        return v is None or (isinstance(v, str) and (is_missing_text(v) or v.strip() in ERROR_VALUES))

    if pa.types.is_string(kind):
        try:
            array = pa.array(values, kind)
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # numbers, dates ... among the text: as Excel shows them
            array = pa.array([v if v is None or type(v) is str else cell_text(v) for v in values], kind)
        stripped = pc.utf8_trim_whitespace(array)
        spelled = pc.or_(pc.is_in(pc.utf8_lower(stripped), _NA_TEXT), pc.is_in(stripped, _ERROR_TEXT))
        return pc.if_else(spelled, pa.scalar(None, kind), array)
    if not pa.types.is_timestamp(kind):
        try:  # a column of numbers (or true/false) alone: no Python per cell
            return pa.array(values, kind)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            pass
    if pa.types.is_floating(kind):
        return pa.array([None if missing(v) or (isinstance(v, str) and v.strip() == DOT) else float(v)
                         for v in values], kind)
    if pa.types.is_timestamp(kind):
        values = [datetime.datetime.combine(v, datetime.time()) if type(v) is datetime.date else v for v in values]
    return pa.array([None if missing(v) else v for v in values], kind)


def _absorb(columns: list[_Column], block: list[list[Any]], count: int, keep: bool) -> bool:
    """Add a block of rows (cells, without trailing empty ones) after ``count`` rows to the column summaries;
    their values are kept while the sheet has at most :data:`CACHE_CELLS` cells. Returns whether they are."""
    width = max((len(cells) for cells in block), default=0)
    columns += [_Column(values=[None] * count if keep else None) for _ in range(width - len(columns))]
    keep = keep and (count + len(block)) * len(columns) <= CACHE_CELLS
    for i, column in enumerate(columns):
        values = [cells[i] if i < len(cells) else None for cells in block]
        column.kinds.update(map(type, values))
        column.kinds.discard(type(None))
        texts = [v for v in values if type(v) is str]
        column.errors += sum(v[:1] == "#" and v.strip() in ERROR_VALUES for v in texts)
        for text in set(texts):  # per distinct text of the block: memory does not grow with the sheet
            if text.strip() in ERROR_VALUES:
                column.error_values.add(text.strip())
            elif not is_missing_text(text):
                column.text = True
                column.words = column.words or not (text.strip() == DOT or parses_as_float(text))
        if keep and column.values is not None:
            column.values.extend(values)
        else:
            column.values = None
    return keep


def _scan(path: Path, sheet: str | None) -> Layout:
    """The typing pass over one sheet (see :class:`Layout`)."""
    book = _open(path)
    try:
        ws = _worksheet(path, book, sheet)
        sheets = _sheet_names(book)
        try:
            return _scan_sheet(path, ws, sheets)
        except DataError as error:  # a cover or notes sheet first: say which sheets there are
            if sheet is not None or len(sheets) < 2:
                raise
            others = [s for s in sheets if s.removesuffix(" (hidden)") != f"'{ws.title}'"]
            raise DataError(f"{error}; it is the workbook's first sheet, read by default (others: "
                            f"{', '.join(others)}): --sheet NAME or --sheet N reads another") from error
    finally:
        book.close()


def _scan_sheet(path: Path, ws: Any, sheets: list[str]) -> Layout:
    """The typing pass over the worksheet ``ws`` of an open workbook (``sheets``: its sheets, as listed)."""
    rows = _rows(ws)
    first = [row for _, row in zip(range(HEADER_WINDOW), rows, strict=False)]
    if not first:
        raise DataError(f"{path}: sheet {ws.title!r} is empty")
    at = _header(path, ws.title, first)
    header_row, header = first[at]
    columns: list[_Column] = []
    count, keep, block = 0, True, list(first[at + 1:])
    for row in rows:
        block.append(row)
        if len(block) == _BLOCK_ROWS:
            keep = _absorb(columns, [cells for _, cells in block], count, keep)
            count += len(block)
            block = []
    keep = _absorb(columns, [cells for _, cells in block], count, keep)
    count += len(block)
    title = ws.title
    below = first[at + 1][0] if at + 1 < len(first) else header_row + 1  # the sheet row of the first data row
    return _layout(path, title, sheets, (header_row, below), header, columns, count)


def _layout(path: Path, title: str, sheets: list[str], rows: tuple[int, int], header: list[Any],
            columns: list[_Column], count: int) -> Layout:
    """The kept columns (named, or holding data), their names and types, from the typing pass; ``rows``: the
    sheet rows of the header and of the first data row."""
    header_row = rows[0]
    kept = all(column.values is not None for column in columns)
    columns += [_Column(values=[None] * count if kept else None) for _ in range(len(header) - len(columns))]
    named = [None if v is None else cell_text(v).strip() for v in header] + [None] * (len(columns) - len(header))
    unnamed = [i for i, name in enumerate(named) if not name and columns[i].kinds]
    if unnamed:
        one = len(unnamed) == 1
        index = " (a row index, as pandas' to_excel writes by default? write the sheet with index=False)"
        raise DataError(f"{path}: sheet {title!r}: {'column' if one else 'columns'} "
                        f"{', '.join(_letter(i) for i in unnamed[:5])} {'has' if one else 'have'} data but no name in "
                        f"the header (row {header_row}); name {'it' if one else 'them'}, or delete "
                        f"{'it' if one else 'them'}{index if unnamed == [0] else ''}")
    positions = [i for i, name in enumerate(named) if name]
    names = clean_names([named[i] for i in positions], path)
    if count == 0:
        raise DataError(f"{path}: sheet {title!r} has no data rows (header on row {header_row})")
    kinds = [_kind(columns[i]) for i in positions]
    errors = {name: (columns[i].errors, sorted(columns[i].error_values))
              for name, i in zip(names, positions, strict=True) if columns[i].errors}
    numeric_cells = [(name, columns[i].values, kind) for name, i, kind in zip(names, positions, kinds, strict=True)
                     if columns[i].kinds & {int, float}]
    _check_units_row(path, title, rows[1], numeric_cells)
    empty = [name for name, i in zip(names, positions, strict=True) if not columns[i].kinds]
    if empty:
        _check_formulas(path, title, header_row, [positions[names.index(n)] for n in empty], empty)
    table = None
    if all(columns[i].values is not None for i in positions):
        table = pa.table([_array(columns[i].values, kind) for i, kind in zip(positions, kinds, strict=True)],
                         names=names)
    mixed = frozenset(name for name, i, kind in zip(names, positions, kinds, strict=True)
                      if kind == pa.string() and columns[i].kinds - {str})
    return Layout(title, sheets, header_row, positions, names, kinds, count, errors, table, mixed)


def _check_units_row(path: Path, title: str, row: int, columns: list[tuple[str, list[Any] | None, pa.DataType]]
                     ) -> None:
    """DataError when the first data row (sheet row ``row``) holds text in two or more text columns whose other
    rows hold numbers only: a second header row (units). Checked on a sheet whose values were kept."""
    suspects = []
    for name, values, kind in columns:
        if values is None or len(values) < 2 or not pa.types.is_string(kind):
            continue
        head = values[0]
        if not isinstance(head, str) or is_missing_text(head) or head.strip() in ERROR_VALUES:
            continue
        rest: list[_Column] = []
        _absorb(rest, [[v] for v in values[1:]], 0, False)
        if rest and (pa.types.is_integer(_kind(rest[0])) or pa.types.is_floating(_kind(rest[0]))):
            suspects.append(f"'{name}': {head!r}")
    if len(suspects) >= 2:
        raise DataError(f"{path}: sheet {title!r}: row {row}, under the header, holds text where the rows below hold "
                        f"numbers ({', '.join(suspects[:5])}): a second header row (units?); delete it, or put what "
                        "it says in the column names")


def _check_formulas(path: Path, title: str, header_row: int, positions: list[int], names: list[str]) -> None:
    """DataError when an empty column's cells are formulas never calculated (no saved results)."""
    import openpyxl

    book = openpyxl.load_workbook(path, read_only=True, data_only=False)
    try:
        ws = book[title]
        ws.reset_dimensions()
        for number, row in enumerate(ws.iter_rows(min_row=header_row + 1, max_row=header_row + 1000,
                                                  values_only=True), start=header_row + 1):
            formulas = [n for n, i in zip(names, positions, strict=True)
                        if i < len(row) and isinstance(row[i], str) and row[i].startswith("=")]
            if formulas:
                raise DataError(f"{path}: sheet {title!r}: column '{formulas[0]}' holds formulas without saved "
                                f"results (row {number}: {row[positions[names.index(formulas[0])]]}): the workbook "
                                "was written by a program and never calculated; open and save it in Excel or "
                                "LibreOffice, or write values instead of formulas")
    finally:
        book.close()


def layout(path: Path, sheet: str | None = None) -> Layout:
    """The sheet's :class:`Layout` (the last one is kept while its file is unchanged)."""
    global _last
    path = Path(path)
    check_file(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size, sheet)
    if _last is None or _last[0] != key:
        _last = None  # the previous sheet's values are freed before this one is read
        _last = (key, _scan(path, sheet))
    return _last[1]


def first_sheet_hint(path: Path) -> str:
    """For a message about missing columns: ``"; read sheet 'Notes', the first of 2 (others: 'Data'); --sheet
    chooses"`` when the last sheet read was ``path``'s first by default among several, else ""."""
    if _last is None or _last[0][0] != str(Path(path).resolve()) or _last[0][3] is not None:
        return ""
    return f"; {_chosen(_last[1])}" if len(_last[1].sheets) > 1 else ""


def _chosen(found: Layout) -> str:
    others = [s for s in found.sheets if s.removesuffix(" (hidden)") != f"'{found.sheet}'"]
    first = "first visible" if found.sheets[0].endswith(" (hidden)") else "first"
    return (f"read sheet {found.sheet!r}, the {first} of {len(found.sheets)} (others: {', '.join(others)}; "
            "--sheet chooses)")


def notice(path: Path, sheet: str | None = None) -> str | None:
    """One line saying how the sheet was read, when it is not plainly the only sheet from its first row: the
    sheet chosen among several, the rows skipped above the header, error cells read as missing; else None."""
    found = layout(path, sheet)
    parts = []
    if sheet is None and len(found.sheets) > 1:
        parts.append(_chosen(found))
    if found.header_row > 1:
        parts.append(f"header on row {found.header_row} of sheet {found.sheet!r}, the rows above it skipped")
    if found.errors:
        parts.append("Excel error values read as missing: " + ", ".join(
            f"column '{name}' {plural(n, 'cell')} ({', '.join(values)})" for name, (n, values) in found.errors.items()))
    return f"{path}: " + "; ".join(parts) if parts else None


def _tables(path: Path, found: Layout, selected: list[str], batch_rows: int) -> Iterator[pa.Table]:
    """The sheet's rows as tables of ``selected`` columns: from the kept values, or a second pass."""
    if found.table is not None:
        yield from rebatch([found.table.select(selected)], batch_rows)
        return
    book = _open(path)
    try:
        ws = book[found.sheet]
        where = [found.positions[found.names.index(name)] for name in selected]
        kinds = [found.types[found.names.index(name)] for name in selected]

        def table(block: list[list[Any]]) -> pa.Table:
            return pa.table([_array([cells[i] if i < len(cells) else None for cells in block], kind)
                             for i, kind in zip(where, kinds, strict=True)], names=selected)

        block: list[list[Any]] = []
        for number, cells in _rows(ws):
            if number > found.header_row:
                block.append(cells)
            if len(block) == batch_rows:
                yield table(block)
                block = []
        if block:
            yield table(block)
    finally:
        book.close()


def _read(path: Path, sheet: str | None, columns: list[str] | None) -> pa.Table:
    path = Path(path)
    found = layout(path, sheet)
    selected = select(found.names, columns, path)
    if found.table is not None:
        return found.table.select(selected)
    return pa.concat_tables(_tables(path, found, selected, 1 << 16))


def _iter_batches(path: Path, sheet: str | None, columns: list[str] | None, batch_rows: int) -> Iterator[pa.Table]:
    path = Path(path)
    check_batch_rows(batch_rows)
    found = layout(path, sheet)
    return _tables(path, found, select(found.names, columns, path), batch_rows)


def _schema(path: Path, sheet: str | None) -> pa.Schema:
    found = layout(Path(path), sheet)
    return pa.schema([pa.field(n, t, metadata={INFERRED: b"1"} if n in found.mixed else None)
                      for n, t in zip(found.names, found.types, strict=True)])


def for_sheet(sheet: str | None) -> FormatReader:
    """The Excel reader of sheet ``sheet`` (a name, or a 1-based number as text; None: the first sheet)."""
    return FormatReader(
        "Excel",
        SUFFIXES,
        lambda path: layout(Path(path), sheet).names,
        lambda path: _schema(path, sheet),
        lambda path, columns=None: _read(path, sheet, columns),
        lambda path, columns, batch_rows=65536: _iter_batches(path, sheet, columns, batch_rows),
    )


EXCEL = for_sheet(None)
