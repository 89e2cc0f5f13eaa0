"""Warnings about features: what fitting a column suggests is wrong with it, and what new rows bring that
training did not see. Every function returns message text (or counts); none changes how a column is encoded.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from survmom.data.cells import DOT, NA_MARKERS, is_missing_text, label, parses_as_float, text_view
from survmom.data.dates import mostly_dates
from survmom.data.encoding import CategoricalColumn, NumericColumn, standardise, within
from survmom.data.messages import SAMPLE, plural, quote_list, show_value

# Predict warns about values this many training standard deviations from the training mean: far beyond any
# real tail (a skewed lab value may reach 10), so most likely a unit error (days for years, g for kg) or a typo.
FAR_FROM_TRAINING = 50.0

# A categorical column with more categories than this (or more than 10 and over half the rows) looks like an
# identifier or free text: each category is one more model input.
MANY_CATEGORIES = 100

# Name words of columns that usually hold codes (a centre, a site, a ZIP or ICD-9 code, a batch): an integer
# column of an untyped source (CSV) with such a name and few distinct values is likely a label, not a quantity.
# Matched on whole words of the name ("hospital_id", "centreCode", "zip5"); "icd" also starts words ("icd9").
CODE_WORDS = frozenset({
    "id", "code", "codes", "center", "centre", "site", "inst", "institution", "hospital", "clinic", "region",
    "zip", "zipcode", "postcode", "postal", "batch", "icd",
})


def constant(column: str, value: str) -> str:
    """The warning for a column with one value (``value`` as shown)."""
    return f"constant feature '{column}' (every value is {value}); kept, it carries no information"


def row_numbers_as_feature(column: str, observed: np.ndarray) -> str | None:
    """A warning when a numeric column looks like row numbers or an identifier; else None.

    Whole numbers, all different, packed into a range not much wider than their count. A split keeps a
    part of the rows, so the range may be up to 1.5 times the count of the values seen.
    """
    n = len(observed)
    if n < 20 or float(observed.max()) - float(observed.min()) + 1 > 1.5 * n:  # cheap tests first
        return None
    if not (np.all(observed == np.round(observed)) and len(np.unique(observed)) == n):
        return None
    return (f"column '{column}' looks like an identifier (a different whole number in every row, "
            f"{int(observed.min())} to {int(observed.max())}); it is used as a feature: --exclude it, or name it "
            "with --id-col to copy it into the predictions")


def name_words(column: str) -> list[str]:
    """Lower-case words of a column name: split at non-letters, digits and camelCase (``"zipCode5"`` -> zip, code,
    5)."""
    return [word.lower() for word in re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+", column)]


def looks_like_code_name(column: str) -> bool:
    """Whether a word of the name is in :data:`CODE_WORDS` (or starts with "icd")."""
    return any(word in CODE_WORDS or word.startswith("icd") for word in name_words(column))


def code_like_numbers(column: str, observed: np.ndarray) -> str | None:
    """A warning when an inferred-numeric column is probably a code: a name from :data:`CODE_WORDS`, whole
    numbers (or any numbers for an ``icd...`` name: ICD-9 codes such as 250.01 have decimals), and between 3 and
    as many distinct values as a categorical column may have without looking like an identifier; else None. Two
    values encode the same either way, so they are not flagged."""
    whole = bool(np.all(observed == np.round(observed)))
    icd = any(word.startswith("icd") for word in name_words(column))
    if not looks_like_code_name(column) or not (whole or icd):
        return None
    levels = len(np.unique(observed))
    if levels < 3 or _too_many_categories(levels, len(observed)):
        return None
    kind = "whole numbers" if whole else "numbers"
    return (f"column '{column}' holds {levels} distinct {kind} and its name suggests codes (a centre, site or "
            f"diagnosis code?); read as one numeric input, so the model sees a trend in the code values: if they "
            f"are labels, pass --categorical {column}")


def _too_many_categories(levels: int, n_observed: int) -> bool:
    return levels > MANY_CATEGORIES or (levels > 10 and levels > 0.5 * n_observed)


def categorical(column: str, categories: Sequence[str], n_observed: int, *, boolean: bool, stated: bool
                ) -> list[str]:
    """Warnings for a fitted categorical column: one category; too many (an identifier or free text?);
    categories differing only in case. For a column whose type was not stated (by the file or the user), also
    numbers written with separators or '%', and numbers with a few text values."""
    warnings: list[str] = []
    formatted = None if boolean or stated else _formatted_numbers(column, categories)
    dates = None if boolean else _dates_as_text(column, categories)
    if len(categories) == 1:
        warnings.append(constant(column, f"'{categories[0]}'"))
    elif dates is not None:  # one input per date: the high-cardinality warning would call it an identifier
        warnings.append(dates)
    elif formatted is None and _too_many_categories(len(categories), n_observed):
        # numbers written as "55,000" are many categories too, but not an identifier: that warning says why
        warnings.append(
            f"high-cardinality categorical feature '{column}' ({len(categories)} categories "
            f"in {n_observed} rows) adds {len(categories)} inputs; an identifier? --exclude it"
        )
    if formatted is not None:
        warnings.append(formatted)
    elif not boolean and not stated and len(categories) >= 3:
        numeric = [c for c in categories if parses_as_float(c)]
        text = [c for c in categories if not parses_as_float(c)]
        if text and len(numeric) >= 0.9 * len(categories):
            fix = "fix or blank those values to use it as numeric"
            if text == [DOT]:
                fix = f"'.' is SAS's and Stata's missing number: --numeric {column} reads it as numbers, '.' missing"
            warnings.append(
                f"column '{column}' is mostly numbers but has text values ({quote_list(text, 5)}); "
                f"treated as categorical, {fix}"
            )
    if not boolean:
        case = _case_variants(column, categories)
        if case:
            warnings.append(case)
    return warnings


def _dates_as_text(column: str, categories: Sequence[str]) -> str | None:
    """A warning when at least 3 categories, 90% of them, are dates written as text (:func:`mostly_dates`);
    else None."""
    dates = mostly_dates(list(categories))
    if len(dates) < 3:
        return None
    return (f"column '{column}' holds dates written as text ({quote_list(dates, 3)}); treated as categorical, one "
            f"input per date: convert it to a number (e.g. days since a reference "
            f"date) or --exclude it")


# Numbers as spreadsheets and reports write them. Not converted: "1,234" may be 1234 or 1.234.
_GROUPED = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?"  # 55,000 or 1,234.5
_DECIMAL_COMMA = r"\d+,\d+|\d{1,3}(?:\.\d{3})+,\d+"  # 1,5 or 1.234,5 (not matching _GROUPED)
_FORMATS = (
    ("percent signs", re.compile(rf"[+-]?(?:{_GROUPED}|{_DECIMAL_COMMA}|\d+(?:\.\d*)?|\.\d+)\s*%")),
    ("thousands separators", re.compile(rf"[+-]?{_GROUPED}")),
    ("decimal commas", re.compile(rf"[+-]?(?:{_DECIMAL_COMMA})")),
)
_FIXES = {"thousands separators": "no thousands separators", "decimal commas": "'.' as the decimal point",
          "percent signs": "no '%'"}  # in the order the warning names them


def _formatted_numbers(column: str, categories: Sequence[str]) -> str | None:
    """A warning when a text column looks like numbers written with thousands separators, decimal commas or
    percent signs (at least one such value, and 90% of the categories numbers either way); else None."""
    found: dict[str, list[str]] = {}
    plain = 0
    for category in categories:
        kind = next((name for name, pattern in _FORMATS if pattern.fullmatch(category)), None)
        if kind is not None:
            found.setdefault(kind, []).append(category)
        elif parses_as_float(category):
            plain += 1
    written = sum(len(v) for v in found.values())
    if len(categories) < 2 or not written or written + plain < 0.9 * len(categories):
        return None
    kinds = [kind for kind in _FIXES if kind in found]
    how = kinds[0] if len(kinds) == 1 else ", ".join(kinds[:-1]) + " and " + kinds[-1]
    fixes = ", ".join(_FIXES[kind] for kind in kinds)
    examples = [category for kind in kinds for category in found[kind][:3]][:5]
    return (
        f"column '{column}' looks like numbers written with {how} ({quote_list(examples, 5)}); treated as "
        f"categorical (one input per value), not as numbers: convert it to plain numbers ({fixes}) to use it "
        f"as numeric"
    )


def _case_variants(column: str, categories: Sequence[str]) -> str | None:
    """A warning naming the groups of categories that differ only in case ('Male', 'male'); else None."""
    groups: dict[str, list[str]] = {}
    for category in categories:  # sorted: groups in order of their first member, members sorted
        groups.setdefault(category.casefold(), []).append(category)
    clashes = [members for members in groups.values() if len(members) > 1]
    if not clashes:
        return None
    shown = "; ".join(", ".join(f"'{member}'" for member in members) for members in clashes[:SAMPLE])
    more = f"; and {len(clashes) - SAMPLE} more groups" if len(clashes) > SAMPLE else ""
    return (
        f"column '{column}' has categories that differ only in case ({shown}{more}): kept apart; "
        f"fix the spelling if they mean the same"
    )


def numbers_as_text(values: pd.Series, *, path: Path, column: str) -> bool:
    """Whether every non-missing value of a text or categorical column is the text of a finite number."""
    _, uniques = text_view(values, path=path, column=column)
    labels = [lab for lab in (label(u, False) for u in uniques) if lab is not None]
    return bool(labels) and all(parses_as_float(lab) and math.isfinite(float(lab)) for lab in labels)


def read_as_numbers(values: pd.Series, rows: np.ndarray | None, *, path: Path, column: str) -> str:
    """The warning for a text column of an untyped source read as numbers, with the text read as missing.

    Counts cells in the ``rows`` whose text is not one of :data:`NA_MARKERS` (which a CSV reader makes
    missing anyway) but reads as missing, e.g. ``" NA"``, ``"null"``, ``"   "``: reading them as missing is
    a guess.
    """
    codes, uniques = text_view(values, path=path, column=column)
    codes = codes if rows is None else codes[rows]
    spelled = np.array([isinstance(u, str) and u not in NA_MARKERS and is_missing_text(u) for u in uniques]
                       + [False])
    guessed = ""
    if spelled[:-1].any():
        counts = np.bincount(codes[spelled[codes]], minlength=len(uniques))  # codes of -1 pick the trailing False
        order = [int(k) for k in np.argsort(-counts, kind="stable") if counts[k]]
        shown = ", ".join(show_value(uniques[k]) for k in order[:3])
        guessed = f" ({plural(int(counts.sum()), 'value')} such as {shown} read as missing)"
    return f"column '{column}' holds numbers stored as text{guessed}; read as numbers"


@dataclass
class NewValues:
    """What a fitted preprocessor met in new rows that training did not prepare it for (counts)."""

    rows: int = 0
    unseen: dict[str, dict[str, int]] = field(default_factory=dict)  # categorical column -> new label -> rows
    missing: dict[str, int] = field(default_factory=dict)  # numeric column -> rows without a value
    missing_categories: dict[str, int] = field(default_factory=dict)  # categorical column -> rows without a value
    known: dict[str, tuple[str, ...]] = field(default_factory=dict)  # categorical column -> training categories
    # numeric column -> (rows more than FAR_FROM_TRAINING training stds from the training mean, the furthest
    # value, its distance in stds)
    far: dict[str, tuple[int, float, float]] = field(default_factory=dict)

    def count(self, specs: Sequence[NumericColumn | CategoricalColumn], decoded: list[np.ndarray],
              df: pd.DataFrame) -> None:
        """Add the rows of ``df`` (decoded column by column as the specs encode them) to the counts."""
        self.rows += len(df)
        for spec, values in zip(specs, decoded, strict=True):
            if isinstance(spec, NumericColumn):
                self._count_numeric(spec, values)
            elif (values < 0).any():  # missing or unseen: the labels of those rows only, per distinct value
                self._count_categorical(spec, df[spec.name].to_numpy()[values < 0])

    def _count_numeric(self, spec: NumericColumn, values: np.ndarray) -> None:
        self.missing[spec.name] = self.missing.get(spec.name, 0) + int(np.isnan(values).sum())
        if within(values, spec, FAR_FROM_TRAINING):  # the usual case: no per-row work
            return
        with np.errstate(over="ignore", invalid="ignore"):
            distance = np.abs(standardise(values, spec.mean, spec.scale))
        far = distance > FAR_FROM_TRAINING  # NaN compares False
        if far.any():
            worst = int(np.flatnonzero(far)[np.argmax(distance[far])])
            count, value, furthest = self.far.get(spec.name, (0, 0.0, 0.0))
            if distance[worst] > furthest:
                value, furthest = float(values[worst]), float(distance[worst])
            self.far[spec.name] = (count + int(far.sum()), value, furthest)

    def _count_categorical(self, spec: CategoricalColumn, cells: np.ndarray) -> None:
        codes, uniques = pd.factorize(pd.Series(cells), use_na_sentinel=True)
        rows = np.bincount(codes[codes >= 0], minlength=len(uniques))
        missing = int(np.count_nonzero(codes < 0))
        for value, count in zip(uniques, rows.tolist(), strict=True):
            category = label(value, spec.boolean)
            if category is None:  # text that reads as missing ("", "NA") is a missing value, not a category
                missing += count
            else:
                seen = self.unseen.setdefault(spec.name, {})
                seen[category] = seen.get(category, 0) + count
        self.missing_categories[spec.name] = self.missing_categories.get(spec.name, 0) + missing
        self.known[spec.name] = spec.categories

    def warnings(self, path: Path) -> list[str]:
        """One line per column with categories never seen in training, with no value in any row, or with values
        far from the training ones."""
        lines = []
        for column, labels in self.unseen.items():
            common = sorted(labels, key=lambda name: (-labels[name], name))
            shown = ", ".join(repr(name) for name in common[:SAMPLE])
            more = f" and {len(common) - SAMPLE} more" if len(common) > SAMPLE else ""
            rows = sum(labels.values())
            verb = "holds" if rows == 1 else "hold"
            # No row matching: the column is coded otherwise than in training (codes for labels, another language)
            coded = (f"; no row matches a training category ({quote_list(list(self.known[column]), SAMPLE)}): is "
                     "the column coded as in training?") if rows == self.rows > 1 else ""
            lines.append(f"{path}: column '{column}': {plural(rows, 'row')} {verb} categories not seen in "
                         f"training ({shown}{more}); encoded as no category, like a missing value{coded}")
        for column, count in self.missing.items():
            if self.rows and count == self.rows:
                lines.append(f"{path}: column '{column}' has no value in any row; the training median was used")
        for column, count in self.missing_categories.items():
            if self.rows and count == self.rows:
                lines.append(f"{path}: column '{column}' has no value in any row; encoded as no category in every row")
        for column, (count, extreme, _) in self.far.items():
            lines.append(f"{path}: column '{column}': {plural(count, 'row')} more than {FAR_FROM_TRAINING:g} "
                         f"training standard deviations from the training mean (furthest: {show_value(extreme)}); the "
                         "model extrapolates there: check the values and their unit")
        return lines
