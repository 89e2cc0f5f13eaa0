"""Feature preprocessing: fitted on the training rows, applied to any rows, saved and loaded as plain data.

A column's type is the one stated for it (by a typed file's schema, or by the user's ``--categorical`` and
``--numeric``), else inferred from its values: numeric dtypes are numeric, booleans boolean, text
categorical unless every value is a number (an untyped source such as CSV read a numeric column as text,
e.g. for ``" NA"`` cells). So a Parquet string column of codes ("120", "250") stays categorical.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from survmom.data import diagnostics
from survmom.data.cells import as_float, text_view
from survmom.data.cells import label as category_label
from survmom.data.diagnostics import NewValues
from survmom.data.encoding import (
    FLOAT32_MAX,
    CategoricalColumn,
    NumericColumn,
    category_codes,
    column_from_state,
    column_state,
    standardise,
    within,
)
from survmom.data.messages import plural, quote_list, refuse_rows, renamed_hint, show_value
from survmom.errors import DataError, StateError

_STATE_VERSION = 1
_STATE_KEYS = {"version", "columns", "warnings", "input_columns", "column_types", "feature_names"}


@dataclass
class Preprocessor:
    """Fitted feature encoding: numeric inputs standardised, text/boolean inputs one-hot encoded.

    Fit on training rows only. Numeric: ``(x - mean) / std`` (population std; a constant column keeps std 1
    and is reported in ``warnings``); missing values become the training median, and a 0/1 feature
    ``<name>__missing`` follows the column when the *training* column had missing values (a column without
    one still imputes the median at transform). Categorical: one 0/1 feature ``<name>=<category>`` per
    training category in sorted order; missing and unseen categories give all zeros. Boolean columns are
    categorical with categories "False"/"True" (text spellings like yes/no are understood at transform).
    Mean and std are computed without overflow for any finite column (e.g. values near 1e300); at transform,
    values whose standardised value does not fit float32 are refused (DataError with rows and values).
    """

    columns: list[NumericColumn | CategoricalColumn]
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def fit(
        cls, df: pd.DataFrame, feature_cols: list[str], *, path: Path, rows: np.ndarray | None = None,
        types: Mapping[str, str] | None = None,
    ) -> Preprocessor:
        """Learn the encoding of ``feature_cols`` from the training rows of ``df``.

        ``df`` is a DataFrame, or any table that gives ``columns``, ``len(df)`` and a Series per ``df[name]``
        (a distributed run passes :class:`~survmom.training.prepare.SharedTable`, which gathers each column of
        every process's rows when asked for it).

        ``rows``: optional (n,) bool mask of the training rows (default: all); the same as fitting on
        ``df[rows]`` without copying the frame. At least one training row is needed. ``types``: column ->
        "numeric" or "category" where the file or the user states the type; other columns are inferred.
        """
        feature_cols = list(dict.fromkeys(feature_cols))
        missing = [c for c in feature_cols if c not in df.columns]
        if missing:
            raise DataError(f"{path}: missing feature {plural(len(missing), 'column')} {quote_list(missing)}")
        if rows is not None and rows.shape != (len(df),):
            raise ValueError(f"rows must be a bool mask of shape ({len(df)},), got shape {rows.shape}")
        if len(df) == 0 or (rows is not None and not rows.any()):
            raise DataError(f"{path}: no training rows")
        types = types or {}
        specs, warnings = [], []
        for name in feature_cols:
            spec, found = _fit_column(df[name], rows, path, name, types.get(name))
            specs.append(spec)
            warnings += found
        return cls(specs, warnings)

    @property
    def input_columns(self) -> list[str]:
        """Names of the input columns transform needs, in order."""
        return [c.name for c in self.columns]

    @property
    def feature_names(self) -> list[str]:
        """Names of the p output features, in output column order."""
        names: list[str] = []
        for c in self.columns:
            if isinstance(c, NumericColumn):
                names += [c.name] + ([f"{c.name}__missing"] if c.missing_indicator else [])
            else:
                names += [f"{c.name}={cat}" for cat in c.categories]
        return names

    def input_slices(self) -> list[tuple[str, slice]]:
        """Each input column with the slice of its outputs in :attr:`feature_names`, in order: a numeric
        column's standardised value (and its ``__missing`` indicator), a categorical column's one-hot block."""
        slices, start = [], 0
        for c in self.columns:
            width = len(c.categories) if isinstance(c, CategoricalColumn) else 1 + int(c.missing_indicator)
            slices.append((c.name, slice(start, start + width)))
            start += width
        return slices

    def column_types(self) -> dict[str, str]:
        """Input column -> "numeric" or "category", for reading new files with the training types."""
        return {c.name: "numeric" if isinstance(c, NumericColumn) else "category" for c in self.columns}

    def check_columns(self, columns: Sequence[str], *, path: Path) -> None:
        """DataError naming every input column missing from ``columns`` (the columns of ``path``)."""
        present = set(columns)
        missing = [c for c in self.input_columns if c not in present]
        if missing:
            unused = [c for c in columns if c not in set(self.input_columns)]
            raise DataError(
                f"{path}: missing {plural(len(missing), 'column')} the model was trained on: "
                f"{quote_list(missing)}{renamed_hint(missing, unused)}"
            )

    def transform(self, df: pd.DataFrame, *, path: Path, new_values: NewValues | None = None) -> np.ndarray:
        """Encode ``df`` (n rows; extra columns ignored) into an (n, p) float32 C-contiguous matrix.

        ``new_values``: if given, unseen categories and missing values of these rows are added to it.
        """
        return self.transform_parts(df, path=path, parts=[None], new_values=new_values)[0]

    def transform_parts(
        self, df: pd.DataFrame, *, path: Path, parts: Sequence[np.ndarray | None], chunk: int = 32_768,
        new_values: NewValues | None = None,
    ) -> list[np.ndarray]:
        """Encode the rows of ``df`` picked by each of ``parts`` ((n,) bool masks; None = all rows).

        Returns one (rows in part, p) float32 C-contiguous matrix per part, rows in file order: the same
        as ``transform(df)[mask]`` for each mask. Every column is checked and decoded once; the matrices are
        then filled ``chunk`` rows at a time, so each block of output is written while it is in cache and
        no full-size intermediate matrix is made.
        """
        self.check_columns(list(df.columns), path=path)
        decoded = [self._decode(spec, df[spec.name], path) for spec in self.columns]
        if new_values is not None:
            new_values.count(self.columns, decoded, df)
        outs = []
        for part in parts:
            rows = None if part is None else np.flatnonzero(part)
            size = len(df) if rows is None else len(rows)
            out = np.empty((size, len(self.feature_names)), dtype=np.float32)
            for start in range(0, size, chunk):
                pick = slice(start, start + chunk) if rows is None else rows[start : start + chunk]
                self._encode_rows(out[start : start + chunk], decoded, pick)
            outs.append(out)
        return outs

    @staticmethod
    def _decode(spec: NumericColumn | CategoricalColumn, values: pd.Series, path: Path) -> np.ndarray:
        """A column as (n,) float64 (numeric; NaN where missing) or int64 category codes (-1 missing/unseen).

        Raises DataError for non-numeric text in a numeric column, for infinite values and for values whose
        standardised value does not fit float32 (e.g. 1e300 for a column of ages).
        """
        if isinstance(spec, CategoricalColumn):
            return category_codes(values, spec.categories, spec.boolean, path=path, column=spec.name)
        flag = spec.median in (0.0, 1.0) and 0.0 <= spec.mean <= 1.0  # a 0/1 column in training (or looks it)
        if flag and (pd.api.types.is_bool_dtype(values.dtype) or (
                values.dtype == object and pd.api.types.infer_dtype(values, skipna=True) == "boolean")):
            # true/false for a 0/1 flag (made bool since): 1.0 and 0.0, as NumPy reads them
            x = values.astype("boolean").to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            x = as_float(values, path=path, column=spec.name, context="was numeric in training but")
        if not within(x, spec, FLOAT32_MAX):  # rare: find the offending rows
            where = {"path": path, "column": spec.name, "shown": x}
            refuse_rows(values, np.isinf(x), what="infinite value{s}", **where)
            with np.errstate(over="ignore", invalid="ignore"):
                extreme = ~(np.abs(standardise(x, spec.mean, spec.scale)) <= FLOAT32_MAX) & ~np.isnan(x)
            refuse_rows(values, extreme, what="value{s} too extreme for the model", **where,
                        hint=f"; standardised with the training mean {spec.mean:.6g} and std {spec.scale:.6g} "
                             f"they are beyond the float32 range (±{FLOAT32_MAX:.3g}): check the values and "
                             "their unit")
        return x

    def _encode_rows(self, out: np.ndarray, decoded: list[np.ndarray], pick: slice | np.ndarray) -> None:
        """Write the features of the rows ``pick`` of every decoded column into ``out`` (rows, p)."""
        column = 0
        for spec, values in zip(self.columns, decoded, strict=True):
            block = values[pick]
            if isinstance(spec, NumericColumn):
                gaps = np.isnan(block)
                standard = standardise(block, spec.mean, spec.scale)
                if gaps.any():
                    standard[gaps] = standardise(np.array([spec.median]), spec.mean, spec.scale)[0]
                out[:, column] = standard
                if spec.missing_indicator:
                    out[:, column + 1] = gaps
                    column += 1
                column += 1
            else:
                width = len(spec.categories)
                out[:, column : column + width] = 0.0
                hit = np.flatnonzero(block >= 0)
                out[hit, column + block[hit]] = 1.0
                column += width

    def to_state(self) -> dict:
        """Plain data (str, int, float, bool, list, dict), loadable by ``torch.load(weights_only=True)``."""
        return {
            "version": _STATE_VERSION,
            "columns": [column_state(c) for c in self.columns],
            "warnings": [str(w) for w in self.warnings],
            # Derived, stored for readers of the checkpoint (``survmom inspect``); checked by from_state.
            "input_columns": self.input_columns,
            "column_types": self.column_types(),
            "feature_names": self.feature_names,
        }

    @classmethod
    def from_state(cls, state: dict) -> Preprocessor:
        """Rebuild from :meth:`to_state` output; StateError naming the first malformed entry."""
        if not isinstance(state, dict):
            raise StateError(f"preprocessor state must be a dict, got {type(state).__name__}")
        if state.get("version") != _STATE_VERSION:
            raise StateError(f"preprocessor state version {state.get('version')!r} is not {_STATE_VERSION}")
        unknown = set(state) - _STATE_KEYS
        if unknown:
            raise StateError(f"preprocessor state has unknown keys {sorted(unknown)}")
        cols = state.get("columns")
        if not isinstance(cols, list) or not cols:
            raise StateError("preprocessor state 'columns' must be a non-empty list")
        warnings = state.get("warnings", [])
        if not isinstance(warnings, list) or not all(isinstance(w, str) for w in warnings):
            raise StateError("preprocessor state 'warnings' must be a list of strings")
        specs = [column_from_state(c, i) for i, c in enumerate(cols)]
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise StateError(f"preprocessor state has duplicate column names {names}")
        pre = cls(specs, list(warnings))
        derived = {
            "input_columns": pre.input_columns,
            "column_types": pre.column_types(),
            "feature_names": pre.feature_names,
        }
        for key, value in derived.items():
            if key in state and state[key] != value:
                raise StateError(f"preprocessor state '{key}' does not match its 'columns'")
        return pre


# --------------------------------------------------------------------------------------------- fitting one column


def _fit_column(values: pd.Series, rows: np.ndarray | None, path: Path, column: str, stated: str | None
                ) -> tuple[NumericColumn | CategoricalColumn, list[str]]:
    """The fitted spec of one column and its warnings; ``stated`` is its given type ("numeric", "category")."""
    warnings: list[str] = []
    # Types of text columns are inferred from their values: look only at the training rows.
    kind = _kind(values if rows is None or values.dtype != object else values[rows], path=path, column=column)
    if stated == "numeric":
        kind = "numeric"
    elif stated == "category":
        kind = "bool" if kind == "bool" else "category"
    elif kind == "category" and diagnostics.numbers_as_text(values, path=path, column=column):
        # As a CSV reader would: text such as "61" or "0.5" in every row of an untyped source is a number.
        warnings.append(diagnostics.read_as_numbers(values, rows, path=path, column=column))
        kind = "numeric"
    if kind == "numeric":
        return _fit_numeric(values, rows, path, column, warnings, stated=stated is not None), warnings
    return _fit_categorical(values, rows, path, column, kind == "bool", warnings, stated=stated is not None), warnings


def _kind(values: pd.Series, *, path: Path, column: str) -> str:
    """ "numeric", "category" or "bool" for a training column; DataError for dates and times."""
    dtype = values.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return "category"
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_numeric_dtype(dtype):
        return "numeric"
    inferred = "datetime" if pd.api.types.is_datetime64_any_dtype(dtype) else pd.api.types.infer_dtype(values)
    if inferred in ("timedelta", "timedelta64"):
        raise DataError(f"{path}: column '{column}' holds durations; convert it to a number in the unit you mean "
                        "(e.g. days: its total seconds / 86400) or --exclude it")
    if inferred in ("datetime", "datetime64", "date", "time", "period"):
        raise DataError(
            f"{path}: column '{column}' holds dates/times; convert it to a number "
            f"(e.g. days since a reference date) or --exclude it"
        )
    if inferred == "boolean":
        return "bool"
    if inferred in ("integer", "floating", "mixed-integer-float", "decimal"):
        return "numeric"
    return "category"


def _entirely_missing(n_rows: int, path: Path, column: str) -> DataError:
    return DataError(
        f"{path}: feature column '{column}' is missing in all {n_rows} training rows; "
        f"nothing can be learnt from it, --exclude it"
    )


def _fit_numeric(values: pd.Series, rows: np.ndarray | None, path: Path, column: str, warnings: list[str], *,
                 stated: bool) -> NumericColumn:
    x = as_float(values, path=path, column=column, context="was given as numeric but" if stated else "")
    inf = np.isinf(x)
    refuse_rows(values, inf if rows is None else inf & rows, path=path, column=column, what="infinite value{s}",
                shown=x)
    x = x if rows is None else x[rows]
    observed = x[~np.isnan(x)]
    if not len(observed):
        raise _entirely_missing(len(x), path, column)
    mean, std, median = _scaled_stats(observed)
    if not (math.isfinite(mean) and math.isfinite(std) and math.isfinite(median)):
        extreme = np.abs(x) > 0.5 * np.finfo(np.float64).max
        where = {"path": path, "column": column, "shown": x, "what": "value{s} too large to standardise"}
        refuse_rows(values if rows is None else values[rows], extreme, **where, hint="; rescale the column")
        raise DataError(f"{path}: column '{column}' cannot be standardised (its mean or spread is not finite)")
    if not std > 0:
        warnings.append(diagnostics.constant(column, show_value(observed[0])))
        std = 1.0
    else:
        found = diagnostics.row_numbers_as_feature(column, observed)
        if found is None and not stated:
            found = diagnostics.code_like_numbers(column, observed)
        warnings += [found] if found else []
    return NumericColumn(column, mean, std, median, bool(len(observed) < len(x)))


def _scaled_stats(observed: np.ndarray) -> tuple[float, float, float]:
    """(mean, population std, median) of finite values, without overflow (e.g. squares of 1e200) or underflow.

    Values beyond 1e±100 are first divided by a power of two near their largest magnitude: that is exact, so
    the results are bit for bit those of the unscaled arithmetic wherever that does not overflow.
    """
    peak = max(-float(np.fmin.reduce(observed)), float(np.fmax.reduce(observed)))
    power = 1.0 if peak == 0 or 1e-100 < peak < 1e100 else math.ldexp(1.0, math.frexp(peak)[1] - 1)
    scaled = observed if power == 1.0 else observed / power
    with np.errstate(over="ignore"):
        stats = np.array([scaled.mean(), scaled.std(), np.median(scaled)]) * power
    return float(stats[0]), float(stats[1]), float(stats[2])


def _fit_categorical(values: pd.Series, rows: np.ndarray | None, path: Path, column: str, boolean: bool,
                     warnings: list[str], *, stated: bool) -> CategoricalColumn:
    codes, uniques = text_view(values, path=path, column=column)
    codes = codes if rows is None else codes[rows]
    labels = [category_label(u, boolean) for u in uniques]
    present = np.zeros(len(uniques), dtype=bool)
    present[np.unique(codes[codes >= 0])] = True
    categories = tuple(sorted({lab for lab, p in zip(labels, present, strict=True) if p and lab is not None}))
    if not categories:
        raise _entirely_missing(len(codes), path, column)
    label_present = np.array([lab is not None for lab in labels] + [False])
    n_observed = int(np.count_nonzero(label_present[codes]))  # codes of -1 pick the trailing False
    warnings += diagnostics.categorical(column, categories, n_observed, boolean=boolean, stated=stated)
    return CategoricalColumn(column, categories, boolean)
