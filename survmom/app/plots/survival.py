"""``survmom plot survival``: the predicted survival curves S(t | x) of a few rows of a file, medians marked.

The rows are the first ``--rows N`` of the file, or those whose id (the training ``--id-col``) is listed in
``--ids``. The file needs the model's feature columns only (time and event are not read), as for
``survmom predict``. S(t) comes from the checkpoint's target network (:meth:`LoadedModel.survival`: Cox
through the stored Breslow baseline, a step function; Weibull in closed form) on a time grid from 0 to the
longest training follow-up, in the unit of the training time column. The median is predict's
``median_time``, marked where it is reached within that range.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from survmom.app.figures import time_axis
from survmom.app.predict import LoadedModel, load_model, time_unit
from survmom.data import NewValues, iter_table_batches, table_columns, text_notice
from survmom.data.messages import quote_list
from survmom.errors import ConfigError, DataError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DEFAULT_ROWS = 5
MAX_CURVES = 7  # the colour-blind safe palette's colours: more curves could not be told apart
GRID_POINTS = 1000  # a Cox curve with more steps than this is drawn from this many evenly spaced times
SHOWN_IDS = 5


def survival_grid(model: LoadedModel, end: float) -> tuple[list[float], bool]:
    """Times (user's unit) from 0 to ``end`` at which to draw predicted S(t), and whether S is a step function
    there (draw with steps).

    Cox: 0, every jump of the Breslow baseline up to ``end``, and ``end`` (exact steps), unless there are over
    :data:`GRID_POINTS` jumps; then, as for Weibull, :data:`GRID_POINTS` evenly spaced times.
    """
    if model.config.loss == "cox" and model.baseline_times is not None:
        jumps = [t for t in model.baseline_times.tolist() if 0.0 < t < end]
        if len(jumps) <= GRID_POINTS:
            return [0.0, *jumps, end], True
    return np.linspace(0.0, end, GRID_POINTS).tolist(), False


def survival_data(checkpoint: Path, data: Path, ids: list[str] | None = None, rows: int | None = None, *,
                  delimiter: str | None = None,
                  encoding: str | None = None, sheet: str | None = None, warn: Callable[[str],
                      None] | None = None) -> dict[str, Any]:
    """The numbers behind the figure (what ``--json`` prints).

    ``ids``: the id values to draw (compared as text with the file's id column); else the first ``rows`` rows
    (default :data:`DEFAULT_ROWS`). Returns ``times`` (the grid), ``steps`` (Cox: S is a step function of
    them), ``follow_up`` (the longest training time) and, per row, ``row`` (1-based data row number), ``id``,
    ``risk``, ``median_time`` (``None`` where S(t) stays above 0.5 within the baseline) and ``survival`` at
    ``times``.
    """
    selection = _check_selection(ids, rows)
    model = load_model(checkpoint)
    pre, id_col = model.preprocessor, model.config.id_col
    columns = table_columns(data, delimiter=delimiter, encoding=encoding, sheet=sheet)
    if ids is not None:
        if id_col is None:
            raise ConfigError(f"--ids: {checkpoint} was trained without --id-col, so its rows have no ids; "
                              "use --rows N (the first N rows of the file)")
        if id_col not in columns:
            raise DataError(f"{data}: no id column '{id_col}' (the model's --id-col) to find --ids in; "
                            "use --rows N (the first N rows of the file)")
    pre.check_columns(columns, path=data)
    model.check_strata_columns(columns, data)
    notice = text_notice(data, delimiter=delimiter, encoding=encoding, sheet=sheet)
    if notice and warn is not None:
        warn(notice)
    copy_id = id_col is not None and id_col in columns
    wanted = list(dict.fromkeys(pre.input_columns + ([id_col] if copy_id else []) + list(model.config.strata or [])))
    batches = iter_table_batches(data, wanted, 65_536, column_types=model.column_types(), delimiter=delimiter,
                                 encoding=encoding, sheet=sheet)
    frame = _find_ids(batches, ids, id_col, data) if ids is not None else _first_rows(batches, selection, data)
    new_values = NewValues()
    x = pre.transform(frame, path=data, new_values=new_values)
    for message in new_values.warnings(data) if warn is not None else []:
        warn(message)
    est = model.estimates(x)
    strata = model.strata_of(frame, data)  # a stratified model: each row's S(t) from its stratum's baseline
    outputs = model.outputs(x, [], strata)
    follow_up = float(model.checkpoint.train_time.max())
    times, steps = survival_grid(model, follow_up)
    surv = model.survival(est, times, strata).numpy()
    labels = _id_texts(frame[id_col]) if copy_id else [None] * len(frame)
    curves = []
    for i in range(len(frame)):
        median = float(outputs["median_time"][i])
        curves.append({"row": int(frame.index[i]) + 1, "id": labels[i], "risk": float(outputs["risk"][i]),
                       "median_time": median if math.isfinite(median) else None, "survival": surv[i].tolist()})
    return {"checkpoint": str(checkpoint), "data": str(data), "loss": model.config.loss,
            "time_column": model.config.time_col, "time_unit": time_unit(model.config), "follow_up": follow_up,
            "times": times, "steps": steps,
            "rows": curves}


def _check_selection(ids: list[str] | None, rows: int | None) -> int:
    """The number of curves asked for; ConfigError for both options, none left, or too many curves."""
    if ids is not None and rows is not None:
        raise ConfigError("give --ids or --rows, not both")
    if ids is not None:
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if not ids:
            raise ConfigError("--ids: no id given; pass comma-separated ids, e.g. --ids P0001,P0002")
        if repeated:
            raise ConfigError(f"--ids: {quote_list(repeated)} given more than once")
    count = len(ids) if ids is not None else DEFAULT_ROWS if rows is None else rows
    option = "--ids" if ids is not None else "--rows"
    if not 1 <= count <= MAX_CURVES:
        raise ConfigError(f"{option}: {count} curves asked for; draw 1 to {MAX_CURVES} (more cannot be told apart)")
    return count


def _first_rows(batches: Iterator[pd.DataFrame], count: int, data: Path) -> pd.DataFrame:
    """The first ``count`` rows of the file (fewer if it has fewer); DataError if it has none."""
    for frame in batches:
        if len(frame):
            return frame.iloc[:count]
    raise DataError(f"{data}: no data rows")


def _find_ids(batches: Iterator[pd.DataFrame], ids: list[str], id_col: str, data: Path) -> pd.DataFrame:
    """The first row of each id in ``ids`` (in that order), read until all are found; DataError naming the ids
    not in the file, with a sample of those that are."""
    found: dict[str, pd.DataFrame] = {}
    seen: list[str] = []
    for frame in batches:
        texts = _id_texts(frame[id_col])
        seen += [t for t in texts[: SHOWN_IDS - len(seen)] if t is not None]
        for position, text in enumerate(texts):
            if text in ids and text not in found:
                found[text] = frame.iloc[[position]]
        if len(found) == len(ids):
            break
    missing = [i for i in ids if i not in found]
    if missing:
        sample = f"its first ids: {quote_list(seen)}" if seen else "it has no ids"
        raise DataError(f"{data}: {quote_list(missing)} not in the id column '{id_col}' ({sample})")
    return pd.concat([found[i] for i in ids])


def _id_texts(values: pd.Series) -> list[str | None]:
    """Each id as the text a user types: ``"P0001"``, ``"17"`` (an integer, also one stored as a float),
    ``"2.5"``; None where missing."""
    texts: list[str | None] = []
    for value in values.tolist():
        if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
            texts.append(None)
        elif isinstance(value, float) and value.is_integer():
            texts.append(str(int(value)))
        else:
            texts.append(str(value))
    return texts


def draw_survival(data: dict[str, Any]) -> Figure:
    """The figure of :func:`survival_data`'s numbers: one curve per row, each median as a dot at S = 0.5 with
    a dotted line down to the time axis."""
    from survmom.app.figures import PALETTE, new_figure

    times = data["times"]
    end = data["follow_up"]
    with new_figure(7.5, 4.8) as figure:
        ax = figure.subplots()
        for i, row in enumerate(data["rows"]):
            colour = PALETTE[i % len(PALETTE)]
            median = row["median_time"]
            shown = median is not None and median <= end
            name = row["id"] if row["id"] is not None else f"row {row['row']}"
            label = f"{name}: median {median:.4g}" if shown else f"{name}: median beyond {end:.4g}"
            ax.plot(times, row["survival"], color=colour, linewidth=1.8, label=label,
                    drawstyle="steps-post" if data["steps"] else "default")
            if shown:
                ax.plot([median, median], [0.0, 0.5], color=colour, linestyle=":", linewidth=1.3)
                ax.plot([median], [0.5], marker="o", markersize=6, color=colour, zorder=3)
        ax.axhline(0.5, color="0.5", linewidth=0.8, linestyle="--", zorder=0)
        ax.set_xlim(0.0, end)
        ax.set_ylim(0.0, 1.02)
        ax.set_xlabel(f"time ({time_axis(data)}), up to the longest training follow-up")
        ax.set_ylabel("predicted survival probability S(t)")
        ax.legend(loc="upper right" if _upper_right_free(data) else "lower left", title="row: median time")
        ax.set_title(_title(data))
    return figure


def _upper_right_free(data: dict[str, Any]) -> bool:
    """Whether the curves have dropped below 0.55 by 60% of the x range, leaving the upper right corner empty."""
    late = min(int(np.searchsorted(data["times"], 0.6 * data["follow_up"])), len(data["times"]) - 1)
    return all(row["survival"][late] < 0.55 for row in data["rows"])


def _title(data: dict[str, Any]) -> str:
    count = len(data["rows"])
    what = "row" if count == 1 else "rows"
    model = f"{Path(data['checkpoint']).name} ({data['loss']})"
    return f"Predicted survival of {count} {what} of {Path(data['data']).name}\nmodel {model}; dots: median survival"
