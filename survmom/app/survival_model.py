"""``SurvivalModel``: the engine of ``survmom train / predict / evaluate`` for Python users and notebooks.

There is no second code path: a DataFrame is written to a private Parquet file (a typed source, so its
dtypes decide the column types: text and ``category`` columns are categorical, numbers numeric) and that
file goes through exactly what the CLI runs (:func:`survmom.training.workflow.train_from_file`,
:func:`survmom.app.predict.predict_file`, :func:`survmom.app.evaluate.evaluate_file`). The model *is* its
checkpoint, the file ``survmom train`` writes: :meth:`SurvivalModel.save` and :meth:`SurvivalModel.load`
read and write that format, so ``survmom predict model.pt`` works on a model fitted here and the other way
round. Method names follow lifelines (``predict_survival_function``, ``predict_median``, ``score``).

Example::

    from survmom import SurvivalModel
    model = SurvivalModel(loss="cox", hidden=(64, 64), batch=32, epochs=40)
    model.fit(df, time_col="time", event_col="event", id_col="id")
    # study designs: entry_col= (delayed entry, counting process), weight_col=, strata=["centre"]
    # dates: fit(df, time_col="last_seen", origin_col="diagnosed") with SurvivalModel(time_unit="years")
    model.predict(new_df, times=[365, 730])          # the columns `survmom predict` writes
    model.predict_survival_function(new_df, times=[365, 730])   # rows x times
    model.score(test_df)                              # Harrell's C, as `survmom evaluate`
    model.save("model.pt"); SurvivalModel.load("model.pt")
"""

from __future__ import annotations

import dataclasses
import functools
import re
import shutil
import tempfile
import warnings
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from survmom.atomic import atomic_write
from survmom.data.messages import SAMPLE, show_rows
from survmom.errors import ConfigError, DataError, SurvmomError
from survmom.training.checkpoint import read_checkpoint
from survmom.training.config import TrainConfig

Data = pd.DataFrame | str | Path
_READING = ("delimiter", "encoding", "sheet")  # how predict, evaluate, score... read a file path


# A DataFrame's private file is named <role>_dataframe.parquet; messages call it "<role> DataFrame".
_FRAME_SUFFIX = "_dataframe.parquet"
_FRAME_PATH = re.compile(r"\S*/(\w+)" + re.escape(_FRAME_SUFFIX))


def _frame_names(message: str) -> str:
    """``message`` with the private files of DataFrames named as the DataFrames they hold."""
    return _FRAME_PATH.sub(lambda match: f"{match.group(1)} DataFrame", message)


def _naming_frames(method: Callable[..., Any]) -> Callable[..., Any]:
    """Errors of ``method`` name a DataFrame argument as such, not by the private file it was written to."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except SurvmomError as error:
            renamed = _frame_names(str(error))
            if renamed == str(error):
                raise
            raise type(error)(renamed) from error

    return wrapper


class SurvmomWarning(UserWarning):
    """A warning survmom's commands print on stderr (a column that looks like an id, unseen categories, ...)."""


class SurvivalModel:
    """A neural survival model (Cox or Weibull AFT) trained inside survmom's Momentum wrapper.

    Args:
        verbose: show training progress (Rich, on stderr; works in notebooks). Warnings are issued as
            :class:`SurvmomWarning` either way.
        **options: the options of ``survmom train``, with ``_`` for ``-`` and the same defaults
            (``loss="cox"``, ``hidden=(64, 64)``, ``batch=None`` (auto), ``epochs=40``, ``seed=0``, ...; see
            ``survmom train --help``). ``out`` is not an option here: use :meth:`save`.
    """

    def __init__(self, verbose: bool = True, **options: Any) -> None:
        if "out" in options or "quiet" in options:
            raise ConfigError("SurvivalModel takes no 'out' or 'quiet' option: use save(path) and verbose=False")
        values = {key: list(value) if isinstance(value, tuple) else value for key, value in options.items()}
        self.config = TrainConfig.from_dict(values, source="SurvivalModel")
        self.verbose = verbose
        self._folder = tempfile.TemporaryDirectory(prefix="survmom-")
        # removed with the model, quietly (left to itself, TemporaryDirectory warns "Implicitly cleaning up")
        weakref.finalize(self, self._folder.cleanup)
        self._checkpoint: Path | None = None

    def __getstate__(self) -> dict[str, Any]:
        """Pickling (``pickle``, ``joblib.dump``, worker processes) carries the checkpoint's bytes, not the path of
        this model's private folder, which is removed with it."""
        weights = None if self._checkpoint is None else self._checkpoint.read_bytes()
        return {"config": self.config, "verbose": self.verbose, "checkpoint": weights}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.config, self.verbose = state["config"], state["verbose"]
        self._folder = tempfile.TemporaryDirectory(prefix="survmom-")
        weakref.finalize(self, self._folder.cleanup)
        self._checkpoint = None
        if state["checkpoint"] is not None:
            self._checkpoint = Path(self._folder.name) / "model.pt"
            self._checkpoint.write_bytes(state["checkpoint"])

    def __repr__(self) -> str:
        fitted = "fitted" if self._checkpoint is not None else "not fitted"
        return f"SurvivalModel(loss={self.config.loss!r}, hidden={tuple(self.config.hidden)}, {fitted})"

    # ------------------------------------------------------------------------------------------------ training

    @_naming_frames
    def fit(self, data: Data, time_col: str | None = None, event_col: str | None = None, id_col: str | None = None,
            val: Data | None = None, *, entry_col: str | None = None, weight_col: str | None = None,
            strata: Sequence[str] | str | None = None, origin_col: str | None = None) -> SurvivalModel:
        """Train on ``data`` (a DataFrame, or a path to any file ``survmom train`` reads); returns ``self``.

        ``time_col``, ``event_col``, ``id_col`` and the study design's ``entry_col``, ``weight_col``, ``strata``
        (a list of columns, or "a,b"): as the options of the same names (default: the model's). ``origin_col``:
        the column of each subject's origin date; ``time_col`` (and ``entry_col``) then hold dates, and the times
        are the days since the origin (``time_unit`` of the model: days, weeks, months or years).
        ``val``: validation rows instead of the ``val_frac`` split (a DataFrame or a path).
        """
        from survmom.training import workflow
        from survmom.training.config import parse_list

        columns = {"time_col": time_col, "event_col": event_col, "id_col": id_col, "entry_col": entry_col,
                   "weight_col": weight_col, "origin_col": origin_col,
                   "strata": parse_list(list(strata) if isinstance(strata, (list, tuple)) else strata,
                                        str, "strata")}
        config = dataclasses.replace(self.config, **{k: v for k, v in columns.items() if v is not None})
        if isinstance(data, pd.DataFrame):
            _not_the_index(data, [config.time_col, config.event_col, config.id_col, config.entry_col,
                                  config.weight_col, config.origin_col, *(config.strata or [])])
        path = self._as_file(data, "train")
        config.val = None if val is None else str(self._as_file(val, "val"))
        out = Path(self._folder.name) / "model.pt"
        config.out = str(out)
        config.quiet = not self.verbose
        config.validate("SurvivalModel")
        result = workflow.train_from_file(config, path, self._reporter)
        self.config = config
        self._checkpoint = result.checkpoint
        return self

    # ---------------------------------------------------------------------------------------------- prediction

    @_naming_frames
    def predict(self, data: Data, times: float | Sequence[float] | None = None, **reading: str | None) -> pd.DataFrame:
        """Predictions for every row of ``data``: exactly the columns ``survmom predict`` writes (the id column
        if the model has one, ``log_hazard`` or ``log_scale``/``log_shape``, ``risk``, ``median_time`` and
        ``surv_<t>`` for each of ``times``), one row per input row, in order, indexed as a DataFrame ``data``
        (so ``df["risk"] = model.predict(df)["risk"]`` aligns) or 0..n-1 for a file path.

        ``reading``: how to read a file path, as ``survmom predict``'s options: ``delimiter=``, ``encoding=``
        (delimited text), ``sheet=`` (a workbook); each of the other methods that takes data takes them too."""
        from survmom.app.predict import predict_file

        checkpoint = self._fitted()
        out = Path(self._folder.name) / "predictions.parquet"
        try:
            predict_file(checkpoint, self._as_file(data, "predict", reading), out, _time_list(times) or [],
                         warn=_warn, **reading)
            predictions = pd.read_parquet(out)
        finally:
            out.unlink(missing_ok=True)
        if isinstance(data, pd.DataFrame):
            predictions.index = data.index
        return predictions

    def predict_survival_function(self, data: Data, times: float | Sequence[float], **reading: str | None
                                  ) -> pd.DataFrame:
        """S(t | x): a (rows × times) DataFrame, one column per time (float column labels), rows in the input's
        order. lifelines' ``predict_survival_function`` returns the transpose (times × rows)."""
        times = _time_list(times)
        if not times:
            raise ConfigError("predict_survival_function needs at least one time")
        predictions = self.predict(data, times, **reading)
        surv = predictions[[c for c in predictions.columns if c.startswith("surv_")]]
        surv.columns = pd.Index(times, name="time")
        return surv

    def predict_median(self, data: Data, **reading: str | None) -> pd.Series:
        """Median survival time of every row (``inf`` where S(t) stays above 0.5), in the training time unit."""
        return self.predict(data, **reading)["median_time"]

    @_naming_frames
    def score(self, data: Data, **reading: str | None) -> float:
        """Harrell's C-index on labelled rows (time and event columns), as ``survmom evaluate`` reports it (with
        the model's design); computed alone, so it needs no evaluation times."""
        from survmom.app.evaluate import concordance_file

        return concordance_file(self._fitted(), self._as_file(data, "evaluate", reading), warn=_warn, **reading)

    @_naming_frames
    def evaluate(self, data: Data, times: float | Sequence[float] | None = None, **reading: str | None
                 ) -> dict[str, Any]:
        """Every metric of ``survmom evaluate --json`` on labelled rows, as a dict (``data``: the path, or
        "evaluate DataFrame")."""
        from survmom.app.evaluate import evaluate_file

        result = evaluate_file(self._fitted(), self._as_file(data, "evaluate", reading), _time_list(times),
                               warn=_warn, **reading)
        return {**result, "data": "evaluate DataFrame"} if isinstance(data, pd.DataFrame) else result

    # ------------------------------------------------------------------------------------------------ the file

    def save(self, path: str | Path) -> None:
        """Write the checkpoint (the CLI's format, readable by ``survmom predict``) to ``path`` atomically."""
        checkpoint = self._fitted()
        with atomic_write(Path(path)) as stream, open(checkpoint, "rb") as source:
            shutil.copyfileobj(source, stream)

    @classmethod
    def load(cls, path: str | Path, verbose: bool = True) -> SurvivalModel:
        """A model from a checkpoint written by :meth:`save` or ``survmom train`` (checked: format, checksum)."""
        saved = read_checkpoint(Path(path))
        options = {k: v for k, v in saved.config.to_dict().items() if k not in ("out", "quiet")}
        model = cls(verbose=verbose, **options)
        model.config = saved.config
        model._checkpoint = Path(model._folder.name) / "model.pt"
        shutil.copyfile(path, model._checkpoint)
        return model

    # --------------------------------------------------------------------------------------------- internals

    def _fitted(self) -> Path:
        if self._checkpoint is None:
            raise ConfigError("this SurvivalModel is not fitted yet: call fit(data) or SurvivalModel.load(path)")
        return self._checkpoint

    def _as_file(self, data: Data, name: str, reading: dict[str, str | None] | None = None) -> Path:
        """A path as it is; a DataFrame written to a Parquet file in the model's private folder (to predict or
        evaluate, without the columns whose names are not text: extra columns, as no model reads them). ``reading``:
        the read options given with it (``delimiter``, ``encoding``, ``sheet``): for a path only."""
        unknown = sorted(set(reading or {}) - set(_READING))
        if unknown:
            raise ConfigError(f"unknown option{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
                              f"the options for reading a file are {', '.join(_READING)}")
        if isinstance(data, (str, Path)):
            return Path(data)
        given = [key for key, value in (reading or {}).items() if value is not None]
        if given:
            raise ConfigError(f"{', '.join(given)} {'is' if len(given) == 1 else 'are'} for reading a file path, not "
                              "a DataFrame")
        if not isinstance(data, pd.DataFrame):
            raise DataError(f"data must be a pandas DataFrame or a file path, got {type(data).__name__}")
        named = [isinstance(c, str) and bool(c.strip()) for c in data.columns]
        if not all(named) and name not in ("train", "val"):  # no model reads such a column: extra, not read
            data = data.iloc[:, np.flatnonzero(named)]
        elif not all(named):
            bad = [str(c) for c, ok in zip(data.columns, named, strict=True) if not ok]
            raise DataError(f"DataFrame: column names must be non-empty text, got {', '.join(map(repr, bad[:5]))}")
        path = Path(self._folder.name) / f"{name}{_FRAME_SUFFIX}"
        data = _storable(data)
        try:
            data.to_parquet(path, index=False)
        except (ValueError, TypeError, ImportError, NotImplementedError, pa.ArrowException) as error:
            raise _mixed_types(data) or DataError(
                f"DataFrame: cannot be stored as a typed table ({str(error).splitlines()[0][:200]}); give each "
                "column one type of numbers, text, true/false or categories") from error
        return path

    def _reporter(self, config: TrainConfig) -> Any:
        from survmom.app.progress import make_reporter

        reporter = make_reporter(config.quiet)
        reporter.warn = _warn  # warnings as Python warnings, whether progress is shown or not
        return reporter


def _not_the_index(data: pd.DataFrame, names: Sequence[str | None]) -> None:
    """DataError for a named column that is not a column of ``data`` but a level of its index (an id set as the
    index): only columns are written, so it would be reported as not found."""
    levels = {str(name) for name in data.index.names if name is not None}
    indexed = [name for name in names if name is not None and name not in data.columns and name in levels]
    if indexed:
        raise DataError(f"DataFrame: {', '.join(repr(n) for n in indexed)} is the DataFrame's index, not a column; "
                        "pass df.reset_index()")


def _time_list(times: float | Sequence[float] | None) -> list[float] | None:
    """``times`` as a list of floats: one number, any sequence of numbers (a list, a NumPy array, a Series) or
    their text ("10,20"); None stays None. ConfigError for anything else."""
    if times is None:
        return None
    if isinstance(times, (int, float, np.number)) and not isinstance(times, bool):
        return [float(times)]
    if isinstance(times, str):  # "10,20" as on the command line (iterating it would give 1, 0, 2, 0)
        from survmom.training.config import parse_list

        try:
            return parse_list(times, float, "times")
        except ConfigError:
            raise ConfigError(f"times must be a number or a list of numbers, got {times!r}") from None
    try:
        return [float(t) for t in times]
    except (TypeError, ValueError):
        raise ConfigError(f"times must be a number or a list of numbers, got {times!r}") from None


def _storable(data: pd.DataFrame) -> pd.DataFrame:
    """``data`` as Parquet stores it: sparse columns made dense (a storage detail; Parquet has none), categories
    that are intervals (``pd.cut``, ``pd.qcut``) as their labels ("(50, 65]", as a CSV holds them; pyarrow cannot
    write them); DataError for duplicate column names."""
    seen: dict[str, list[int]] = {}
    for position, name in enumerate(data.columns):
        seen.setdefault(str(name), []).append(position + 1)
    duplicated = {name: places for name, places in seen.items() if len(places) > 1}
    if duplicated:
        shown = "; ".join(f"'{n}' (columns {', '.join(map(str, p))})" for n, p in list(duplicated.items())[:SAMPLE])
        raise DataError(f"DataFrame: duplicate column names: {shown}; rename or drop the copies")
    sparse = {name: data[name].dtype.subtype for name in data.columns if isinstance(data[name].dtype, pd.SparseDtype)}
    data = data.astype(sparse) if sparse else data
    intervals = [position for position, dtype in enumerate(data.dtypes)
                 if isinstance(dtype, pd.CategoricalDtype) and isinstance(dtype.categories.dtype, pd.IntervalDtype)]
    if not intervals:
        return data
    data = data.copy(deep=False)
    for position in intervals:
        data.isetitem(position, data.iloc[:, position].cat.rename_categories(str))
    return data


def _mixed_types(data: pd.DataFrame) -> DataError | None:
    """DataError naming the first object column whose values mix Python types (text and numbers, say), with
    the first row of each type; None if there is none (error path only: a Python loop over the cells)."""
    for name in data.columns:
        if data[name].dtype != object:
            continue
        first: dict[str, tuple[int, Any]] = {}
        for position, value in enumerate(data[name].array):
            if value is not None and value is not pd.NA and not (isinstance(value, float) and value != value):
                first.setdefault(_kind_of(value), (position, value))
        if len(first) > 1:
            rows = [position + 1 for position, _ in first.values()]
            return DataError(f"DataFrame: column '{name}' mixes {' and '.join(first)} values "
                             f"({show_rows(np.asarray(rows), [value for _, value in first.values()])}); "
                             "give the column one type (e.g. df[col].astype(str) for labels, pd.to_numeric for "
                             "numbers)")
    return None


def _kind_of(value: Any) -> str:
    if isinstance(value, str):
        return "text"
    if isinstance(value, (bool, np.bool_)):
        return "true/false"
    if isinstance(value, (int, float, np.integer, np.floating)):
        return "number"
    return type(value).__name__


def _warn(message: str) -> None:
    warnings.warn(_frame_names(message), SurvmomWarning, stacklevel=3)




__all__ = ["SurvivalModel", "SurvmomError", "SurvmomWarning"]
