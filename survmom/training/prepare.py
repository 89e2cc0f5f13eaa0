"""From files to tensors: read, validate, split, fit or apply preprocessing (used by train and resume)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from survmom.data import (
    CategoricalColumn,
    Preprocessor,
    declared_types,
    fingerprint,
    forced_types,
    parse_event,
    parse_time,
    read_table,
    select_feature_columns,
    stratified_split,
    table_columns,
    text_notice,
)
from survmom.errors import DataError
from survmom.system import memory_limit
from survmom.training.config import TrainConfig


@dataclass
class Outcomes:
    """Features and outcomes of one split: x (n, p) float32, event (n,) bool, time (n,) float64."""

    x: np.ndarray
    event: np.ndarray
    time: np.ndarray

    def __len__(self) -> int:
        return len(self.time)


@dataclass
class PreparedData:
    """Everything the trainer needs from the data files."""

    preprocessor: Preprocessor
    train: Outcomes
    val: Outcomes | None
    data_info: dict
    warnings: list[str] = field(default_factory=list)


def prepare_training_data(
    config: TrainConfig, data_path: Path, preprocessor: Preprocessor | None = None
) -> PreparedData:
    """Read ``data_path`` (and ``config.val``), split, fit preprocessing (or apply a stored one)."""
    # The content hash runs in a thread while the file is parsed (hashlib and file reads release the GIL).
    columns = table_columns(data_path, delimiter=config.delimiter)
    stated: dict[str, str] = {}  # feature column -> type given by the user or the file's schema
    if preprocessor is None:
        feature_cols = select_feature_columns(
            columns, time_col=config.time_col, event_col=config.event_col, id_col=config.id_col,
            features=config.features, exclude=config.exclude, path=data_path,
        )
        roles = {"time": config.time_col, "event": config.event_col, "id": config.id_col}
        forced = forced_types(columns, categorical=config.categorical, numeric=config.numeric, roles=roles,
                              features=feature_cols, path=data_path)
        # The user's types, then a typed file's own (Parquet), decide; other columns are inferred.
        declared = declared_types(data_path)
        stated = {name: forced.get(name, declared.get(name, "")) for name in feature_cols
                  if name in forced or name in declared}
        reading = forced  # a forced-categorical CSV column is read as text: "007" stays "007"
    else:
        feature_cols = preprocessor.input_columns
        reading = preprocessor.column_types()  # as predict reads: the types do not depend on the file
    _require_columns(columns, [config.time_col, config.event_col, *feature_cols], data_path)
    with ThreadPoolExecutor(max_workers=1) as pool:
        hashing = pool.submit(fingerprint, data_path)
        # Only the columns used are read: an excluded column is never parsed, whatever it holds.
        ids = [config.id_col] if config.id_col is not None and config.id_col in columns else []
        table = read_table(data_path, _used(columns, [config.time_col, config.event_col, *feature_cols, *ids]),
                           column_types=reading, delimiter=config.delimiter)
        data_fingerprint = hashing.result()
    repeated_ids = [_repeated_ids(table[config.id_col], data_path, config.id_col)] if ids else []
    event = parse_event(table[config.event_col], path=data_path, column=config.event_col)
    time = parse_time(table[config.time_col], path=data_path, column=config.time_col,
                      min_exclusive=config.loss == "weibull")
    if len(time) < 2:
        raise DataError(f"{data_path}: {len(time)} data row(s); training needs at least 2")
    if config.val is None and config.val_frac > 0:
        train_idx, val_idx = stratified_split(event, config.val_frac, config.seed)
    else:
        train_idx, val_idx = np.arange(len(time)), np.arange(0)
    split = len(val_idx) > 0
    # Row masks of the splits: train_idx and val_idx are sorted, so masks keep their row order.
    in_val = np.zeros(len(time), dtype=bool)
    in_val[val_idx] = True
    parts = [~in_val, in_val] if split else [None]
    if preprocessor is None:  # fitted on the training rows only
        preprocessor = Preprocessor.fit(table, feature_cols, path=data_path, rows=parts[0], types=stated)
    check_encoded_size(preprocessor, len(time), data_path)
    # One pass over the columns writes every split: no full-size matrix, no row gather.
    x_parts = preprocessor.transform_parts(table, path=data_path, parts=parts)
    train = Outcomes(x_parts[0], event[train_idx], time[train_idx])
    notice = text_notice(data_path, delimiter=config.delimiter)  # how a text file was read, if not plain CSV
    warnings = [notice] if notice else []
    warnings += list(preprocessor.warnings) + [warning for warning in repeated_ids if warning]
    _require_events(train, data_path, config.loss)
    inputs = train.x.shape[1]
    if inputs >= len(train):
        warnings.append(f"{inputs:,} inputs for {len(train):,} training rows: with at least as many inputs as rows "
                        "a model can fit the training rows exactly; rely on the validation C-index, and --exclude "
                        "columns that cannot matter")
    val: Outcomes | None = None
    info = {"path": str(Path(data_path).resolve()), "fingerprint": data_fingerprint,
            "rows": len(time), "train_rows": len(train), "columns": columns}
    if config.val is not None:
        val_path = Path(config.val)
        val = read_outcomes(val_path, config, preprocessor, delimiter=config.delimiter)
        notice = text_notice(val_path, delimiter=config.delimiter)
        warnings += [notice] if notice else []
        val_fingerprint = fingerprint(val_path)
        if val_fingerprint == data_fingerprint:
            warnings.append(f"--val {val_path} holds the training rows themselves: the validation C-index then "
                            "measures fit, not prediction, and early stopping cannot see overfitting")
        info.update(val_path=str(val_path.resolve()), val_fingerprint=val_fingerprint)
    elif split:
        val = Outcomes(x_parts[1], event[val_idx], time[val_idx])
    info["val_rows"] = 0 if val is None else len(val)
    if val is not None and not val.event.any():
        warnings.append("the validation rows have no events: C-index cannot be computed, no early stopping")
    if config.batch is not None and len(train) < config.batch:
        warnings.append(f"{len(train)} training rows is fewer than --batch {config.batch}: "
                        f"each epoch is one batch of {len(train)}")
    return PreparedData(preprocessor, train, val, info, warnings)


def read_outcomes(path: Path, config: TrainConfig, preprocessor: Preprocessor, *, delimiter: str | None = None
                  ) -> Outcomes:
    """Read a file with features, time and event, and apply a fitted preprocessor.

    ``delimiter`` is the command's ``--delimiter`` (None: detected), not the one saved with the model.
    """
    columns = table_columns(path, delimiter=delimiter)
    _require_columns(columns, [config.time_col, config.event_col], path)
    preprocessor.check_columns(columns, path=path)
    table = read_table(path, _used(columns, [config.time_col, config.event_col, *preprocessor.input_columns]),
                       column_types=preprocessor.column_types(), delimiter=delimiter)
    event = parse_event(table[config.event_col], path=path, column=config.event_col)
    time = parse_time(table[config.time_col], path=path, column=config.time_col,
                      min_exclusive=config.loss == "weibull")
    check_encoded_size(preprocessor, len(time), path)
    return Outcomes(preprocessor.transform(table, path=path), event, time)


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
            "are trained on as different subjects")


def _used(columns: list[str], used: list[str]) -> list[str]:
    """The ``used`` columns, each once, in the file's order."""
    wanted = set(used)
    return [name for name in columns if name in wanted]


def _require_columns(present, needed: list[str], path: Path) -> None:
    missing = [name for name in needed if name not in set(present)]
    if missing:
        shown = ", ".join(list(map(str, present))[:8])
        raise DataError(f"{path}: missing column(s) {', '.join(map(repr, missing))}; columns are: {shown}")


def _require_events(train: Outcomes, path: Path, loss: str) -> None:
    if not train.event.any():
        raise DataError(
            f"{path}: every training row is censored (no events in the event column): "
            f"a {loss} model cannot learn without events"
        )
