"""How one fitted column becomes model inputs: the column specs, their arithmetic and their plain-data state.

A numeric column gives ``(x - mean) / scale`` (missing -> the training median) and, when training saw
missing values, a 0/1 ``<name>__missing`` input; a categorical column gives one 0/1 input per training
category, all zeros for missing and unseen values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from survmom.data.cells import label, lookup_labels, text_view
from survmom.errors import StateError

FLOAT32_MAX = float(np.finfo(np.float32).max)
_HUGE_SCALE = 1e250


@dataclass(frozen=True)
class NumericColumn:
    """A numeric input: output ``(x - mean) / scale``, missing -> median; optional 0/1 ``<name>__missing``."""

    name: str
    mean: float
    scale: float
    median: float
    missing_indicator: bool


@dataclass(frozen=True)
class CategoricalColumn:
    """A text or boolean input: one 0/1 output per training category (sorted); missing/unseen -> all zeros."""

    name: str
    categories: tuple[str, ...]
    boolean: bool = False


def standardise(x: np.ndarray, mean: float, scale: float) -> np.ndarray:
    """``(x - mean) / scale``, or ``x / scale - mean / scale`` for a scale above ``_HUGE_SCALE``.

    ``x - mean`` could overflow there (x = 1e308, mean = -1e308); neither form overflows where the result
    fits float32.
    """
    if scale > _HUGE_SCALE:
        return x / scale - mean / scale
    return (x - mean) / scale


def within(x: np.ndarray, spec: NumericColumn, limit: float) -> bool:
    """Whether every standardised value of ``x`` but NaN lies within ±``limit``.

    Standardising is monotonic, so only the smallest and largest value are standardised: two passes over
    ``x``, no temporary array.
    """
    if not x.size:
        return True
    ends = np.array([np.fmin.reduce(x), np.fmax.reduce(x)])  # NaN only when every value is NaN
    with np.errstate(over="ignore", invalid="ignore"):
        z = standardise(ends, spec.mean, spec.scale)
    return bool(np.all((np.abs(z) <= limit) | np.isnan(ends)))


def category_codes(
    values: pd.Series, categories: Sequence[str], boolean: bool, *, path: Path, column: str
) -> np.ndarray:
    """(n,) int64 position of each row's label in ``categories``; -1 for missing or unseen. A whole number
    written with a zero fraction (``"2.0"``) is the category ``"2"`` and the other way round."""
    codes, uniques = text_view(values, path=path, column=column)
    if not len(uniques):
        return np.full(len(values), -1, dtype=np.int64)
    mapped = lookup_labels([label(u, boolean) for u in uniques], categories)  # "2.0" is the category "2"
    return np.where(codes >= 0, mapped[np.maximum(codes, 0)], -1)


def column_state(spec: NumericColumn | CategoricalColumn) -> dict[str, Any]:
    """One column as plain data; its ``kind`` ("numeric", "category" or "bool") is the column's type."""
    if isinstance(spec, NumericColumn):
        return {"name": spec.name, "kind": "numeric", "mean": float(spec.mean), "scale": float(spec.scale),
                "median": float(spec.median), "missing_indicator": bool(spec.missing_indicator)}
    return {"name": spec.name, "kind": "bool" if spec.boolean else "category", "categories": list(spec.categories)}


def column_from_state(entry: Any, i: int) -> NumericColumn | CategoricalColumn:
    """Rebuild entry ``i`` of a state's columns; StateError naming what is malformed."""
    where = f"preprocessor state columns[{i}]"
    if not isinstance(entry, dict):
        raise StateError(f"{where} must be a dict, got {type(entry).__name__}")
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise StateError(f"{where}.name must be a non-empty string, got {name!r}")
    kind = entry.get("kind")
    expected = {
        "numeric": {"name", "kind", "mean", "scale", "median", "missing_indicator"},
        "category": {"name", "kind", "categories"},
        "bool": {"name", "kind", "categories"},
    }
    if kind not in expected:
        raise StateError(f"{where}.kind must be 'numeric', 'category' or 'bool', got {kind!r}")
    if set(entry) != expected[kind]:
        raise StateError(f"{where} ('{name}') must have keys {sorted(expected[kind])}, got {sorted(entry)}")
    if kind == "numeric":
        nums = {}
        for key in ("mean", "scale", "median"):
            v = entry[key]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise StateError(f"{where}.{key} ('{name}') must be a finite number, got {v!r}")
            nums[key] = float(v)
        if nums["scale"] <= 0:
            raise StateError(f"{where}.scale ('{name}') must be > 0, got {nums['scale']!r}")
        if not isinstance(entry["missing_indicator"], bool):
            raise StateError(f"{where}.missing_indicator ('{name}') must be a bool")
        return NumericColumn(name, nums["mean"], nums["scale"], nums["median"], entry["missing_indicator"])
    cats = entry["categories"]
    if not isinstance(cats, list) or not cats or not all(isinstance(c, str) and c for c in cats):
        raise StateError(f"{where}.categories ('{name}') must be a non-empty list of non-empty strings")
    if cats != sorted(set(cats)):
        raise StateError(f"{where}.categories ('{name}') must be sorted and unique")
    return CategoricalColumn(name, tuple(cats), kind == "bool")
