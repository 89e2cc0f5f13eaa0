"""From files to tensors: read, validate, split, fit or apply preprocessing (used by train and resume)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from survmom.data import (
    CategoricalColumn,
    NewValues,
    Preprocessor,
    apply_strata,
    as_number,
    check_intervals,
    concat_frames,
    declared_types,
    describe_stratum,
    fingerprint,
    fit_strata,
    forced_types,
    interval_warnings,
    is_workbook,
    nominal_notice_line,
    nominal_numbers,
    pandas_index_columns,
    parse_entry,
    parse_event,
    parse_time,
    parse_weight,
    read_table,
    read_table_share,
    rejoin_split_names,
    select_feature_columns,
    subject_codes,
    subject_folds,
    subject_split,
    table_columns,
    text_notice,
    value_labels,
)
from survmom.data.dates import times_from_dates
from survmom.data.diagnostics import looks_like_code_name
from survmom.data.excel import first_sheet_hint
from survmom.data.messages import SAMPLE, plural, quote_list, renamed_hint, row_numbers
from survmom.errors import DataError
from survmom.system import memory_limit
from survmom.training.config import TrainConfig, check_dates_named, design_roles

if TYPE_CHECKING:
    from survmom.training.distributed import Ranks


@dataclass
class Outcomes:
    """Features and outcomes of one split: x (n, p) float32, event (n,) bool, time (n,) float64; and the
    design's columns where the config names them (else None): entry (n,) float64 (same unit as time),
    weight (n,) float64, strata (n,) int64 codes of the model's stratum levels."""

    x: np.ndarray
    event: np.ndarray
    time: np.ndarray
    entry: np.ndarray | None = None
    weight: np.ndarray | None = None
    strata: np.ndarray | None = None
    position: np.ndarray | None = None  # distributed: each row's place among all training rows (int64)

    def __len__(self) -> int:
        return len(self.time)

    def rows(self, x: np.ndarray, index: np.ndarray) -> Outcomes:
        """The outcomes of rows ``index`` with their features ``x`` (already those rows)."""
        entry, weight, strata = (None if a is None else a[index] for a in (self.entry, self.weight, self.strata))
        return Outcomes(x, self.event[index], self.time[index], entry, weight, strata)


class SharedTable:
    """The columns of a file that a distributed run shares out: ``here`` holds this process's rows (index: the
    rows' places in the file); ``table[name]`` is the whole column, all-gathered in file order (kept for the
    ``keep`` columns, the outcomes; a feature column is gathered when asked for, for the preprocessor's fit)."""

    def __init__(self, ranks: Ranks, here: pd.DataFrame, keep: list[str]) -> None:
        self.ranks, self.here = ranks, here
        self.columns = here.columns
        self._kept: dict[str, pd.Series] = {}
        self._keep = set(keep)
        self._rows = sum(ranks.exchange(lambda: len(here)))

    def __len__(self) -> int:
        return self._rows

    def __getitem__(self, name: str) -> pd.Series:
        if name in self._kept:
            return self._kept[name]
        pieces = self.ranks.exchange(lambda: self.here[[name]])
        column = concat_frames([piece for piece in pieces if len(piece)] or pieces[:1])[name]
        if name in self._keep:
            self._kept[name] = column
        return column


@dataclass
class PreparedData:
    """Everything the trainer needs from the data files."""

    preprocessor: Preprocessor
    train: Outcomes
    val: Outcomes | None
    data_info: dict
    warnings: list[str] = field(default_factory=list)
    strata_levels: list[tuple[str, ...]] | None = None  # code -> the labels of the --strata columns
    all_train: Outcomes | None = None  # distributed: every process's training outcomes (x empty), in file order
    # A member of a cross-fitted ensemble: every row's outcomes (x empty), and the file rows of train and val
    every_row: Outcomes | None = None
    rows: tuple[np.ndarray, np.ndarray] | None = None


def design_columns(config: TrainConfig) -> dict[str, list[str]]:
    """The design's columns (entry, weight, strata) and the origin column a config names, role -> names."""
    return {role: names for role, names in design_roles(config).items()
            if role in ("entry", "weight", "strata", "origin")}


def prepare_training_data(
    config: TrainConfig, data_path: Path, preprocessor: Preprocessor | None = None,
    strata_levels: list[tuple[str, ...]] | None = None, ranks: Ranks | None = None,
    fold: tuple[int, int] | None = None,
) -> PreparedData:
    """Read ``data_path`` (and ``config.val``), split, fit preprocessing (or apply a stored one, and the stored
    ``strata_levels``).

    ``ranks`` (a distributed run): this process reads its share of the file's rows
    (:func:`~survmom.data.read_table_share`) and returns them as ``train`` and ``val``; the checks, the split,
    the strata and the preprocessing are those of the whole file, as a single process gets them: the outcome
    columns are all-gathered, and the preprocessor is fitted on each feature column all-gathered in turn
    (one column in memory at a time). ``all_train`` then holds the outcomes of every training row.

    ``fold`` (member k, K): member k of a cross-fitted ensemble; the rows are dealt into K folds by
    ``config.seed`` (:func:`~survmom.data.subject_folds`), fold k is the validation split, and a preprocessor
    is fitted on every row (unsupervised, and then the same for all members). ``every_row`` and ``rows`` are
    set for it.
    """
    check_dates_named(config)
    # The content hash runs in a thread while the file is parsed (hashlib and file reads release the GIL).
    columns = table_columns(data_path, delimiter=config.delimiter, encoding=config.encoding, sheet=config.sheet)
    for option in ("features", "exclude", "categorical", "numeric", "strata"):  # "dose, mg" split at its comma
        setattr(config, option, rejoin_split_names(getattr(config, option), columns))
    stated: dict[str, str] = {}  # feature column -> type given by the user or the file's schema
    text_in_file: set[str] = set()  # feature columns a typed file stores as text, the user not saying otherwise
    labels: dict[str, list[str]] = {}  # a Stata/SPSS file's value-labelled columns -> their labels
    index_notice = nominal_notice = None
    if preprocessor is None:
        # A Parquet/Feather file's named pandas index (df.set_index("pid")) names rows: not a default feature.
        row_names = [] if config.features is not None else _unused_index(data_path, config)
        feature_cols = select_feature_columns(
            columns, time_col=config.time_col, event_col=config.event_col, id_col=config.id_col,
            features=config.features, exclude=config.exclude, path=data_path, design=design_columns(config),
            row_names=row_names,
        )
        if row_names:
            one = len(row_names) == 1
            them = "it" if one else "them"
            index_notice = (f"{data_path}: {'column' if one else 'columns'} {quote_list(row_names)} "
                            f"{'is' if one else 'are'} the pandas index the file was written with: "
                            f"left out of the features (name {them} in --features to use "
                            f"{them}, or as --id-col to copy an id into the predictions)")
        roles = design_roles(config)
        forced = forced_types(columns, categorical=config.categorical, numeric=config.numeric, roles=roles,
                              features=feature_cols, path=data_path)
        # An SPSS number whose measurement level is nominal (a region 1 ... 7) holds categories: as --categorical.
        nominal = [name for name in nominal_numbers(data_path) if name in feature_cols and name not in forced]
        if nominal:
            forced = {**forced, **dict.fromkeys(nominal, "category")}
            nominal_notice = nominal_notice_line(nominal, data_path)
        # The user's types, then a typed file's own (Parquet), decide; other columns are inferred.
        declared = declared_types(data_path, sheet=config.sheet)
        stated = {name: forced.get(name, declared.get(name, "")) for name in feature_cols
                  if name in forced or name in declared}
        text_in_file = {name for name in feature_cols if declared.get(name) == "category" and name not in forced}
        labels = value_labels(data_path)
        reading = forced  # a forced-categorical CSV column is read as text: "007" stays "007"
    else:
        feature_cols = preprocessor.input_columns
        reading = preprocessor.column_types()  # as predict reads: the types do not depend on the file
    reading = {**reading, **strata_types(config), **outcome_types(config)}
    design = [name for names in design_columns(config).values() for name in names]
    _require_columns(columns, [config.time_col, config.event_col, *feature_cols, *design], data_path)
    with ThreadPoolExecutor(max_workers=1) as pool:
        hashing = pool.submit(fingerprint, data_path)
        # Only the columns used are read: an excluded column is never parsed, whatever it holds.
        ids = [config.id_col] if config.id_col is not None and config.id_col in columns else []
        used = _used(columns, [config.time_col, config.event_col, *feature_cols, *ids, *design])
        if ranks is None:
            table = read_table(data_path, used, column_types=reading, delimiter=config.delimiter,
                               encoding=config.encoding, sheet=config.sheet)
        else:
            here = ranks.together(lambda: read_table_share(data_path, used, share=ranks.rank, shares=ranks.size,
                                                           column_types=reading, delimiter=config.delimiter,
                                                           encoding=config.encoding, sheet=config.sheet))
            table = SharedTable(ranks, here, keep=[config.time_col, config.event_col, *ids, *design])
        data_fingerprint = hashing.result()
    # Counting-process data (--entry-col with --id-col) has several rows per subject by design.
    id_warnings = [_repeated_ids(table[config.id_col], data_path, config.id_col)] if (
        ids and config.entry_col is None) else []
    outcomes = parse_outcomes(table, config, data_path, strata_levels)
    event, time = outcomes.event, outcomes.time
    if outcomes.entry is not None and not ids and isinstance(table, pd.DataFrame):  # one process: columns at hand
        id_warnings.append(_subjects_among_features(table, feature_cols, outcomes.entry, event, time, data_path))
    if config.strata and strata_levels is None:
        outcomes.strata, strata_levels = fit_strata(table, config.strata, path=data_path)
    if len(time) < 2:
        raise DataError(f"{data_path}: {len(time)} data row(s); training needs at least 2")
    subjects = None
    if ids:
        subjects = subject_codes(table[config.id_col], path=data_path, column=config.id_col)
        if config.entry_col is not None:
            check_intervals(table[config.id_col], outcomes.entry, time, path=data_path, column=config.id_col)
            id_warnings += interval_warnings(table[config.id_col], event, path=data_path, column=config.id_col)
    if fold is not None:
        member, folds = fold
        if config.val is not None or ranks is not None:
            raise ValueError("an ensemble member's split is its fold: no --val file, one process")
        units = len(time) if subjects is None else len(np.unique(subjects))
        if units < folds:
            raise DataError(f"{data_path}: {units} {'row' if subjects is None else 'subject'}(s) are too few for "
                            f"--ensemble {folds}: each member validates on a fold of its own")
        assignment = subject_folds(subjects, event, folds, config.seed)
        in_fold = assignment == member
        train_idx, val_idx = np.flatnonzero(~in_fold), np.flatnonzero(in_fold)
    elif config.val is None and config.val_frac > 0:
        # Every row of a subject on one side: rows of one subject are not independent.
        # With --strata, stratified by (stratum, event): each stratum keeps training events.
        train_idx, val_idx = subject_split(subjects, event, config.val_frac, config.seed, outcomes.strata)
    else:
        train_idx, val_idx = np.arange(len(time)), np.arange(0)
    split = len(val_idx) > 0
    # Row masks of the splits: train_idx and val_idx are sorted, so masks keep their row order.
    in_val = np.zeros(len(time), dtype=bool)
    in_val[val_idx] = True
    parts = [~in_val, in_val] if split else [None]
    if preprocessor is None:  # fitted on the training rows only (an ensemble: on every row)
        preprocessor = Preprocessor.fit(table, feature_cols, path=data_path, rows=None if fold else parts[0],
                                        types=stated)
    check_encoded_size(preprocessor, len(time) if ranks is None else len(time) // ranks.size, data_path)
    all_train = None
    if ranks is None:
        # One pass over the columns writes every split: no full-size matrix, no row gather.
        x_parts = preprocessor.transform_parts(table, path=data_path, parts=parts)
        train = outcomes.rows(x_parts[0], train_idx)
    else:  # this process's rows only
        local = table.here
        rows_here = local.index.to_numpy()
        parts_here = [~in_val[rows_here], in_val[rows_here]] if split else [None]
        x_parts = ranks.together(lambda: preprocessor.transform_parts(local, path=data_path, parts=parts_here))
        all_train = outcomes.rows(np.empty((len(train_idx), 0), dtype=np.float32), train_idx)
        train_here = rows_here[~in_val[rows_here]]
        train = outcomes.rows(x_parts[0], train_here)
        train.position = np.searchsorted(train_idx, train_here)
    # how a text file was read, if not plain CSV; which sheet of a workbook
    notice = text_notice(data_path, delimiter=config.delimiter, encoding=config.encoding, sheet=config.sheet)
    warnings = [line for line in (notice, index_notice, nominal_notice) if line]
    warnings += list(preprocessor.warnings) + [warning for warning in id_warnings if warning]
    warnings += _numbers_stored_as_text(preprocessor, text_in_file - set(labels), data_path)
    warnings += _numbers_labelled_in_part(preprocessor, text_in_file, labels, data_path)
    whole = train if all_train is None else all_train  # every training row, also in a distributed run
    if fold is None or not event.any():
        _require_events(whole, data_path, config.loss)
    if fold is None:
        _require_design_events(whole, data_path, config, strata_levels)
    else:  # every member's training rows, checked before the first member trains and is saved
        for other in range(fold[1]):
            rows = np.flatnonzero(assignment != other)
            if not event[rows].any():
                raise DataError(f"{data_path}: the training rows of ensemble member {other + 1} (its fold held "
                                f"out) have no events ({plural(int(event.sum()), 'event')} in the file); use "
                                "fewer --ensemble members")
            _require_design_events(outcomes.rows(np.empty((len(rows), 0), dtype=np.float32), rows), data_path,
                                   config, strata_levels, f" of ensemble member {other + 1} (its fold held out)")
    inputs = train.x.shape[1]
    if inputs >= len(whole):
        warnings.append(f"{inputs:,} inputs for {len(whole):,} training rows: with at least as many inputs as rows "
                        "a model can fit the training rows exactly; rely on the validation C-index, and --exclude "
                        "columns that cannot matter")
    val: Outcomes | None = None
    info = {"path": str(Path(data_path).resolve()), "fingerprint": data_fingerprint,
            "rows": len(time), "train_rows": len(whole), "columns": columns}
    if config.val is not None:
        val_path = Path(config.val)
        val_sheet = config.sheet if is_workbook(val_path) else None  # --sheet: the training file's, and a --val's
        unseen = NewValues()
        val = read_outcomes(val_path, config, preprocessor, delimiter=config.delimiter, encoding=config.encoding,
                            strata_levels=strata_levels, sheet=val_sheet, new_values=unseen)
        notice = text_notice(val_path, delimiter=config.delimiter, encoding=config.encoding, sheet=val_sheet)
        warnings += ([notice] if notice else []) + unseen.warnings(val_path)
        val_fingerprint = fingerprint(val_path)
        if val_fingerprint == data_fingerprint:
            warnings.append(f"--val {val_path} holds the training rows themselves: the validation C-index then "
                            "measures fit, not prediction, and early stopping cannot see overfitting")
        info.update(val_path=str(val_path.resolve()), val_fingerprint=val_fingerprint)
    elif split:
        val = outcomes.rows(x_parts[1], val_idx if ranks is None else rows_here[in_val[rows_here]])
    # The events of every validation row (a distributed run's split holds this process's share only).
    val_events = None if val is None else (
        outcomes.event[val_idx] if ranks is not None and config.val is None else val.event)
    info["val_rows"] = 0 if val_events is None else len(val_events)
    if val_events is not None and not val_events.any():
        warnings.append("the validation rows have no events: C-index cannot be computed, no early stopping")
    if config.batch is not None and len(train) < config.batch:
        warnings.append(f"{len(train)} training rows is fewer than --batch {config.batch}: "
                        f"each epoch is one batch of {len(train)}")
    if ranks is not None and val is not None and config.val is not None:  # this process's share of the file
        pick = np.arange(ranks.rank, len(val), ranks.size)  # dealt out by row, as read_table_share does
        val = val.rows(np.ascontiguousarray(val.x[pick]), pick)
    prepared = PreparedData(preprocessor, train, val, info, warnings, strata_levels, all_train)
    if fold is not None:
        prepared.every_row, prepared.rows = outcomes, (train_idx, val_idx)
    return prepared


def read_outcomes(path: Path, config: TrainConfig, preprocessor: Preprocessor, *, delimiter: str | None = None,
                  encoding: str | None = None, strata_levels: list[tuple[str, ...]] | None = None,
                  sheet: str | None = None, trained: bool = False,
                  new_values: NewValues | None = None) -> Outcomes:
    """Read a file with features, time and event (and the design's columns), and apply a fitted preprocessor.

    ``delimiter`` and ``encoding`` are the command's ``--delimiter`` and ``--encoding`` (None: detected), not the
    ones saved with the model; ``sheet`` the command's ``--sheet`` (None: the first visible sheet of a workbook).
    ``strata_levels``: the model's stratum levels (required when the config has strata). ``trained``: the command
    scores a saved model, whose event coding the file must follow (:func:`~survmom.data.parse_event`).
    ``new_values``: if given, gets the categories, missing values and far values training did not see (predict's
    warnings).
    """
    columns = table_columns(path, delimiter=delimiter, encoding=encoding, sheet=sheet)
    design = [name for names in design_columns(config).values() for name in names]
    _require_columns(columns, [config.time_col, config.event_col, *design], path)
    preprocessor.check_columns(columns, path=path)
    used = [config.time_col, config.event_col, *preprocessor.input_columns, *design]
    table = read_table(path, _used(columns, used), delimiter=delimiter, encoding=encoding, sheet=sheet,
                       column_types={**preprocessor.column_types(), **strata_types(config), **outcome_types(config)})
    outcomes = parse_outcomes(table, config, path, strata_levels, trained=trained)
    check_encoded_size(preprocessor, len(outcomes), path)
    outcomes.x = preprocessor.transform(table, path=path, new_values=new_values)
    return outcomes


def outcome_types(config: TrainConfig) -> dict[str, str]:
    """Time, event, entry and weight columns are read as codes: a value-labelled column of a Stata or SPSS file
    gives its codes (status 1 labelled "dead" is the event 1), any other column as the file has it; time, entry
    and weight as "quantity", so that a code labelled with a word (9999 "lost") is refused. With an
    ``--event-value`` that is a word ("dead"), the event column keeps its labels, so the word can name one."""
    by_label = config.event_value is not None and as_number(config.event_value) is None
    amounts = [config.time_col, config.entry_col, config.weight_col]
    types = dict.fromkeys((name for name in amounts if name is not None), "quantity")
    if not by_label:
        types[config.event_col] = "code"
    if config.origin_col is not None:  # dates: text in a delimited file, parsed by data.dates (typed files keep theirs)
        types.update(dict.fromkeys((n for n in (config.origin_col, config.time_col, config.entry_col) if n), "string"))
    return types


def strata_types(config: TrainConfig) -> dict[str, str]:
    """Stratum columns are read as categories (text labels), whatever their values: "007" stays "007"."""
    return dict.fromkeys(config.strata or [], "category")


def parse_outcomes(table: pd.DataFrame, config: TrainConfig, path: Path,
                   strata_levels: list[tuple[str, ...]] | None, *, trained: bool = False) -> Outcomes:
    """Time, event and the design's columns of ``table`` (x left empty); strata coded by ``strata_levels``
    (None: left for the caller to fit)."""
    if isinstance(table, pd.DataFrame) and table[config.event_col].isna().any():  # a spreadsheet's cleared rows?
        _refuse_empty_rows(table, path)
    if isinstance(table[config.event_col].dtype, pd.CategoricalDtype) and \
            config.event_col in table[config.event_col].cat.categories:  # files concatenated with their headers?
        _refuse_repeated_header(table, config, path)
    event = parse_event(table[config.event_col], path=path, column=config.event_col, event_value=config.event_value,
                        trained=trained)
    entry = None if config.entry_col is None else table[config.entry_col]
    if config.origin_col is None:
        time = parse_time(table[config.time_col], path=path, column=config.time_col,
                          min_exclusive=config.loss == "weibull", entry_column=config.entry_col)
    else:  # times (and entry times) from dates, in --time-unit
        time, entry_times = times_from_dates(
            table, origin=config.origin_col, time=config.time_col, entry=config.entry_col, unit=config.time_unit,
            date_format=config.date_format, path=path, min_exclusive=config.loss == "weibull")
        entry = None if entry_times is None else pd.Series(entry_times, index=entry.index)
    outcomes = Outcomes(np.empty((len(time), 0), dtype=np.float32), event, time)
    if entry is not None:
        outcomes.entry = parse_entry(entry, time, path=path, column=config.entry_col,
                                     time_column=config.time_col, nonnegative=config.loss == "weibull")
    if config.weight_col is not None:
        outcomes.weight = parse_weight(table[config.weight_col], path=path, column=config.weight_col)
    if config.strata and strata_levels is not None:
        outcomes.strata = apply_strata(table, config.strata, strata_levels, path=path)
    return outcomes


def _refuse_empty_rows(table: pd.DataFrame, path: Path) -> None:
    """DataError naming the rows of ``table`` missing in every column read (the rows of ``,,,,`` a spreadsheet
    exports below its data), which would otherwise be refused as missing event values."""
    empty = np.flatnonzero(table.isna().all(axis=1).to_numpy())
    if len(empty):
        rows = ", ".join(str(r) for r in row_numbers(table.index, empty[:SAMPLE]))
        word = "rows" if len(empty) > 1 else "row"
        raise DataError(f"{path}: {plural(len(empty), 'row')} empty in every column ({word} {rows}"
                        f"{', ...' if len(empty) > SAMPLE else ''}; e.g. a spreadsheet's cleared rows exported as "
                        "',,,,'): delete them")


def _refuse_repeated_header(table: pd.DataFrame, config: TrainConfig, path: Path) -> None:
    """DataError naming the rows whose event and time cells are the names of their columns: the header row
    repeated inside the file (exports concatenated with ``cat``), which the event check would call an invalid
    event value."""
    rows = np.flatnonzero(((table[config.event_col] == config.event_col)
                           & (table[config.time_col].astype(str).str.strip() == config.time_col)).to_numpy())
    if len(rows):
        shown = ", ".join(str(r) for r in row_numbers(table[config.event_col].index, rows[:SAMPLE]))
        more = ", ..." if len(rows) > SAMPLE else ""
        which = f"rows {shown}{more} repeat" if len(rows) > 1 else f"row {shown} repeats"
        raise DataError(f"{path}: {which} the header ('{config.time_col}', '{config.event_col}', ...): files joined "
                        "with their header rows? delete the repeated header")


def check_encoded_size(preprocessor: Preprocessor, rows: int, path: Path, memory: int | None = None) -> None:
    """DataError if the encoded matrix of ``rows`` rows would take more than half of the memory (bytes,
    default: :func:`memory_limit`), naming the categorical columns that widen it most.

    One-hot encoding a column with a distinct value per row (free text, a date, an identifier) adds one
    input per value: 200,000 such rows need 160,000 inputs and 128 GB. Without this check the allocation
    fails with a bare "out of memory", or, where it fits in virtual memory, the machine starts swapping.
    """
    needed = 4 * rows * len(preprocessor.feature_names)  # float32
    memory = memory_limit() if memory is None else memory
    if memory is None or needed <= memory // 2:
        return
    widths = sorted(((len(spec.categories), spec.name) for spec in preprocessor.columns
                     if isinstance(spec, CategoricalColumn) and len(spec.categories) > 100), reverse=True)
    culprits = ", ".join(f"'{name}' ({count:,} categories)" for count, name in widths[:3])
    advice = (f"widest categorical columns: {culprits}; --exclude them (free text, dates and identifiers become "
              "one input per distinct value)" if culprits else "--exclude columns or train on fewer rows")
    raise DataError(f"{path}: the encoded features would take {_size(needed)} ({rows:,} rows × "
                    f"{len(preprocessor.feature_names):,} inputs, float32), more than half of the "
                    f"{_size(memory)} of memory here; {advice}")


def _size(size: int) -> str:
    return f"{size / 1e9:.1f} GB" if size >= 1e9 else f"{size / 1e6:.1f} MB"


def _repeated_ids(ids: pd.Series, path: Path, column: str) -> str | None:
    """A warning when an id appears on more than one row (the data may hold several rows per subject, as
    long-format or counting-process data do); None when every id is unique. Missing ids are not counted."""
    repeated = ids.duplicated(keep=False) & ids.notna()
    if not repeated.any():
        return None
    counts = ids[repeated].value_counts()
    counts = counts[counts > 0]  # a categorical column also counts its absent categories
    shown = ", ".join(f"{value!r} ×{count}" for value, count in counts.head(3).items())
    return (f"{path}: {int(repeated.sum()):,} rows share {len(counts):,} id(s) in the id column '{column}' "
            f"({shown}): survmom expects one row per subject (e.g. its last follow-up); rows with the same id "
            "are trained on as different subjects (kept on one side of the validation split); for "
            "counting-process rows (start, stop] give --entry-col start")


def _subjects_among_features(table: pd.DataFrame, features: list[str], entry: np.ndarray, event: np.ndarray,
                             time: np.ndarray, path: Path) -> str | None:
    """With --entry-col and no --id-col: a warning naming a feature column whose equal values join intervals end
    to end, as a subject id does in counting-process rows (at least 90% of the 20 or more rows that enter after
    0 start where a censored row with their value ends, and the intervals of one value do not overlap); None when
    no column does. Such a column would be trained on as a feature, and a subject's intervals would fall on both
    sides of the validation split. Whole-number and text columns of 20 or more values are tried: not a measurement
    that a subject keeps (stanford's age), nor an age in years that many subjects share."""
    late = entry > 0
    if int(late.sum()) < 20:
        return None
    ends = ~event
    for column in features:
        values = table[column]
        if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
            numbers = values.to_numpy(dtype=np.float64, na_value=np.nan)
            if not np.all(numbers[~np.isnan(numbers)] % 1 == 0):
                continue
        if values.nunique() < 20 or not values.duplicated().any():
            continue
        stops = pd.MultiIndex.from_arrays([values[ends].to_numpy(), time[ends]])
        starts = pd.MultiIndex.from_arrays([values[late].to_numpy(), entry[late]])
        if starts.isin(stops).mean() >= 0.9 and not _overlapping(pd.factorize(values)[0], entry, time):
            return (f"{path}: the rows look like the intervals of subjects in column '{column}' (rows with one value "
                    "follow on from each other: one starts where another ends); name it with --id-col "
                    f"{column}: otherwise it is a feature and a subject's intervals fall on both sides of the "
                    "validation split")
    return None


def _overlapping(codes: np.ndarray, entry: np.ndarray, time: np.ndarray) -> bool:
    """Whether more than 1% of the rows that share a value (``codes`` (n,)) overlap the interval before them: a
    subject's intervals do not, those of the many subjects of one age do."""
    order = np.lexsort((entry, codes))
    same = codes[order][1:] == codes[order][:-1]
    overlap = same & (entry[order][1:] < time[order][:-1])
    return bool(overlap.sum() > 0.01 * max(int(same.sum()), 1))


def _used(columns: list[str], used: list[str]) -> list[str]:
    """The ``used`` columns, each once, in the file's order."""
    wanted = set(used)
    return [name for name in columns if name in wanted]


def _numbers_stored_as_text(preprocessor: Preprocessor, text_in_file: set[str], path: Path) -> list[str]:
    """A warning per text column of a typed file (Parquet written from ``read_csv(dtype=str)``) whose more than
    10 categories are all numbers: a quantity (age) made one input per value, unless the user says --numeric.
    Codes are left alone: a name that reads as a code (``zip``, ``icd9``, ``centre``) or a value with a leading
    zero ("02134")."""
    return [f"{path}: column '{spec.name}' is stored as text but all its {len(spec.categories)} values are "
            f"numbers ({quote_list(list(spec.categories), 3)}); treated as categorical, one input per value: "
            f"--numeric {spec.name} reads it as a number"
            for spec in preprocessor.columns if isinstance(spec, CategoricalColumn) and spec.name in text_in_file
            and len(spec.categories) > 10 and not looks_like_code_name(spec.name)
            and all(as_number(c) is not None and not _leading_zero(str(c)) for c in spec.categories)]


def _numbers_labelled_in_part(preprocessor: Preprocessor, text_in_file: set[str], labels: dict[str, list[str]],
                              path: Path) -> list[str]:
    """A warning per value-labelled column (Stata, SPSS) of more than 10 categories, most of them numbers
    without a label: a quantity whose labels name special codes (age 999 "not recorded") made one input per
    value. Codes by name (``icd``, ``centre``) are left alone, as in :func:`_numbers_stored_as_text`."""
    warnings = []
    for spec in preprocessor.columns:
        if not (isinstance(spec, CategoricalColumn) and spec.name in text_in_file and spec.name in labels
                and len(spec.categories) > 10 and not looks_like_code_name(spec.name)):
            continue
        named = set(labels[spec.name])
        bare = [c for c in spec.categories if c not in named]
        if len(bare) > len(spec.categories) / 2 and all(as_number(c) is not None for c in bare):
            warnings.append(
                f"{path}: column '{spec.name}' has value labels ({quote_list(labels[spec.name], 3)}) but {len(bare)} "
                f"of its {len(spec.categories)} values are numbers without one ({quote_list(bare, 3)}); treated as "
                f"categorical, one input per value: --numeric {spec.name} reads its codes as numbers (the labelled "
                "codes too: make them missing first)")
    return warnings


def _leading_zero(text: str) -> bool:
    """Whether a number's text starts with a zero that a number would drop ("007", "02134"; not "0" or "0.5")."""
    digits = text.strip().lstrip("+-")
    return len(digits) > 1 and digits[0] == "0" and digits[1].isdigit()


def _unused_index(path: Path, config: TrainConfig) -> list[str]:
    """The file's named pandas index columns (:func:`~survmom.data.pandas_index_columns`) that the configuration
    gives no role (time, event, id, design, origin) and does not exclude."""
    roles = {config.time_col, config.event_col, config.id_col,
             *(name for names in design_columns(config).values() for name in names), *(config.exclude or [])}
    return [name for name in pandas_index_columns(path) if name not in roles]


def _require_columns(present, needed: list[str], path: Path) -> None:
    missing = [name for name in needed if name not in set(present)]
    if missing:
        shown = ", ".join(list(map(str, present))[:8])
        raise DataError(f"{path}: missing column(s) {', '.join(map(repr, missing))}; columns are: {shown}"
                        f"{renamed_hint(missing, list(map(str, present)))}{first_sheet_hint(path)}")


def _require_design_events(train: Outcomes, path: Path, config: TrainConfig,
                           strata_levels: list[tuple[str, ...]] | None, member: str = "") -> None:
    """Weighted data needs an event row with a positive weight; a Cox stratum needs an event among the
    training rows (its baseline hazard is estimated from them; the --val-frac split keeps one per stratum);
    ``member`` says whose training rows."""
    if train.weight is not None and not (train.weight[train.event] > 0).any():
        raise DataError(f"{path}: every event row among the training rows has weight 0 in '{config.weight_col}'; "
                        "a model cannot learn without weighted events")
    if train.strata is not None and strata_levels is not None:
        events = np.bincount(train.strata[train.event], minlength=len(strata_levels))
        empty = np.flatnonzero(events == 0)
        if len(empty):
            rows = np.bincount(train.strata, minlength=len(strata_levels))
            shown = "; ".join(f"{describe_stratum(config.strata, strata_levels[k])} ({rows[k]} training "
                              f"row{'' if rows[k] == 1 else 's'})"
                              for k in empty[:5])
            raise DataError(f"{path}: {len(empty)} {'stratum has' if len(empty) == 1 else 'strata have'} no event "
                            f"among the training rows{member} in "
                            f"column(s) {', '.join(map(repr, config.strata))}: {shown}; each stratum's baseline "
                            "hazard needs events (merge small strata, or drop them"
                            f"{', or use fewer --ensemble members' if member else ''})")


def _require_events(train: Outcomes, path: Path, loss: str) -> None:
    if not train.event.any():
        raise DataError(
            f"{path}: every training row is censored (no events in the event column): "
            f"a {loss} model cannot learn without events"
        )
