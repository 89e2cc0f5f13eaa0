"""``survmom plot effect``: partial dependence of the risk (and of S(t)) on one input column, with the
individual curves of a sample of rows behind it.

For each grid value v of the input column j, every row of the file gets ``x_j = v`` in the raw column, is
encoded by the checkpoint's preprocessing and predicted; the partial dependence (Friedman 2001, "Greedy
function approximation", Ann. Statist. 29:1189, section 8.2) is the mean over the rows,

.. math::

    \\mathrm{PD}(v) = \\frac{1}{n} \\sum_i f(v, x_{i, -j}),

and the individual conditional expectation (ICE) curve of row i is :math:`v \\mapsto f(v, x_{i,-j})`
(Goldstein et al. 2015, "Peeking inside the black box", J. Comput. Graph. Statist. 24:44). f is the risk
(Cox: log hazard; Weibull: -log median time) or, with ``--time t``, the predicted survival S(t | x).
Parallel ICE curves mean the column acts additively on that scale; crossing ones, an interaction.

Grid: a categorical column takes every training category. A numeric column spans the 5th to the 95th
percentile of its values in the file (the sparse tails are left out rather than extrapolated into): ``grid``
evenly spaced values, or, when the file has at most ``grid`` distinct values, those of them in that range
(all of them if fewer than two are: a rare 0/1 column keeps both values).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from survmom.app.explain import RISK_MEANING
from survmom.app.figures import PALETTE, literal, new_figure, write_figure
from survmom.app.predict import check_times, load_model, time_text, time_texts, time_unit
from survmom.data import CategoricalColumn, NewValues, Preprocessor, read_table, table_columns, text_notice
from survmom.data.messages import quote_list
from survmom.errors import ConfigError, DataError
from survmom.training.prepare import check_encoded_size

QUANTILES = (0.05, 0.95)
DECILES = tuple(k / 10 for k in range(1, 10))


def partial_dependence(checkpoint: Path, data: Path, feature: str, *, time: float | None = None, grid: int = 30,
                       sample: int = 50, seed: int = 0, delimiter: str | None = None, encoding: str | None = None,
                           sheet: str | None = None,
                       warn: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The partial dependence of the risk (and of S(``time``)) of ``checkpoint`` on ``feature`` over ``data``.

    ``data`` needs the model's input columns only (labels are not used). Returns plain data (what ``--json``
    prints): the grid (numbers, or category labels), the PD curve(s) (one value per grid value), the ICE
    curves of ``sample`` rows drawn without replacement by ``numpy.random.default_rng(seed)`` (their 1-based
    data row numbers), and the file's distribution of the column (deciles and missing count, or rows per
    category). ConfigError for a ``feature`` that is not an input column, or a ``time`` outside the training
    follow-up; DataError for a file without rows, or without a value of a numeric ``feature``.
    """
    if grid < 2:
        raise ConfigError(f"--grid must be >= 2, got {grid}")
    if sample < 0:
        raise ConfigError(f"--sample must be >= 0, got {sample}")
    model = load_model(checkpoint)
    pre = model.preprocessor
    if feature not in pre.input_columns:
        raise ConfigError(f"--feature '{feature}' is not an input column of {checkpoint}; its input columns are "
                          f"{quote_list(pre.input_columns, limit=20)}")
    times = [] if time is None else check_times([time], "--time")
    train_end = float(model.checkpoint.train_time.max())
    if times and times[0] > train_end:
        given, last = time_texts([times[0], train_end], [None, "floor"])
        raise ConfigError(f"--time {given} is beyond the training follow-up of {checkpoint} (last "
                          f"training time {last}); S(t) is not estimated there")
    present = table_columns(data, delimiter=delimiter, encoding=encoding, sheet=sheet)
    pre.check_columns(present, path=data)
    if times:  # S(t) of a stratified model is each row's stratum's
        model.check_strata_columns(present, data)
    strata_columns = list(model.config.strata or []) if times else []
    table = read_table(data, list(dict.fromkeys(pre.input_columns + strata_columns)),
                       column_types=model.column_types(), delimiter=delimiter, encoding=encoding, sheet=sheet)
    if len(table) == 0:
        raise DataError(f"{data}: no data rows")
    check_encoded_size(pre, len(table), data)
    new_values = NewValues()
    x = pre.transform(table, path=data, new_values=new_values)
    strata = model.strata_of(table, data) if times else None

    spec = pre.columns[pre.input_columns.index(feature)]
    categorical = isinstance(spec, CategoricalColumn)
    values = list(spec.categories) if categorical else _numeric_grid(table[feature], grid, data, feature)
    # The grid through the saved encoding of this one column: each grid value's block of inputs.
    blocks = Preprocessor([spec]).transform(pd.DataFrame({feature: pd.Series(values, dtype=object)}), path=data)
    cols = dict(pre.input_slices())[feature]
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(x), size=min(sample, len(x)), replace=False))

    curves = {"risk": np.empty((len(values), len(x)))}  # (grid, rows): ICE of every row, averaged to PD
    if times:
        curves["survival"] = np.empty((len(values), len(x)))
    for g, block in enumerate(blocks):
        x[:, cols] = block
        est = model.estimates(x)
        curves["risk"][g] = model.risk(est).numpy()
        if times:
            curves["survival"][g] = model.survival(est, times, strata)[:, 0].numpy()

    result: dict[str, Any] = {
        "checkpoint": str(checkpoint),
        "data": str(data),
        "rows": len(x),
        "feature": feature,
        "kind": "categorical" if categorical else "numeric",
        "loss": model.config.loss,
        "risk": RISK_MEANING[model.config.loss],
        "time": times[0] if times else None,
        "time_col": model.config.time_col,
        "time_unit": time_unit(model.config),
        "grid": values,
        "partial_dependence": {key: curve.mean(axis=1).tolist() for key, curve in curves.items()},
        "ice": {"rows": (rows + 1).tolist(), **{key: curve[:, rows].T.tolist() for key, curve in curves.items()}},
        "sample": len(rows),
        "seed": seed,
        "distribution": _distribution(table[feature], spec, data),
    }
    notice = text_notice(data, delimiter=delimiter, encoding=encoding, sheet=sheet)
    for message in ([notice] if notice else []) + new_values.warnings(data) if warn is not None else []:
        warn(message)
    return result


def _numeric_grid(column: pd.Series, grid: int, data: Path, feature: str) -> list[float]:
    """The grid of a numeric column (see the module docstring); DataError if the file has no value of it."""
    observed = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    observed = observed[~np.isnan(observed)]
    if not len(observed):
        raise DataError(f"{data}: column '{feature}' has no value in any of its {len(column)} rows; a grid for "
                        "its partial dependence needs observed values")
    distinct = np.unique(observed)
    low, high = np.quantile(observed, QUANTILES)
    if len(distinct) <= grid:
        inside = distinct[(distinct >= low) & (distinct <= high)]
        return (inside if len(inside) >= 2 else distinct).tolist()
    return np.linspace(low, high, grid).tolist()


def _distribution(column: pd.Series, spec: Any, data: Path) -> dict[str, Any]:
    """How the file's values of the column are spread: rows per training category (and missing or unseen)
    for a categorical column; deciles and the number of missing values for a numeric one."""
    if isinstance(spec, CategoricalColumn):
        codes = Preprocessor([spec]).transform(column.to_frame(), path=data)
        counts = {category: int(n) for category, n in zip(spec.categories, codes.sum(axis=0).round().astype(int))}
        return {"counts": counts, "missing_or_unseen": int(len(column) - sum(counts.values()))}
    observed = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    missing = np.isnan(observed)
    return {"deciles": np.quantile(observed[~missing], DECILES).tolist(), "missing": int(missing.sum())}


def draw_effect(result: dict[str, Any], out: Path) -> None:
    """Draw ``result`` (from :func:`partial_dependence`) and write it to ``out`` (.png, .svg or .pdf): one panel
    for the risk, and one for S(t) when a time was given."""
    unit = f"time in {literal(result['time_unit'])}" if result.get("time_unit") else (
        f"time in the unit of '{literal(result['time_col'])}'")
    risk_label = ("risk: log hazard\n(differences are log hazard ratios)" if result["loss"] == "cox" else
                  f"risk: −log median time\n({unit})")
    panels = [("risk", risk_label)]
    if result["time"] is not None:
        panels.append(("survival", f"predicted survival S(t | x) at t = {time_text(result['time'])}\n({unit})"))
    with new_figure(5.4 * len(panels) + 1.6 * (len(panels) == 1), 4.8) as fig:
        axes = fig.subplots(1, len(panels), squeeze=False)[0]
        for ax, (key, label) in zip(axes, panels):
            if result["kind"] == "numeric":
                _numeric_panel(ax, result, key)
            else:
                _categorical_panel(ax, result, key)
            ax.set_ylabel(label)
        if result["time"] is not None:
            axes[1].set_ylim(-0.02, 1.02)
        fig.suptitle(f"Partial dependence on '{literal(result['feature'])}': "
                     f"{literal(Path(result['checkpoint']).name)} on {literal(Path(result['data']).name)} "
                     f"({result['rows']:,} rows)")
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncols=len(labels), frameon=False)
        write_figure(fig, out)


def _numeric_panel(ax: Any, result: dict[str, Any], key: str) -> None:
    grid = result["grid"]
    for i, curve in enumerate(result["ice"][key]):
        ax.plot(grid, curve, color="0.55", linewidth=0.7, alpha=0.35,
                label=f"{result['sample']} individual rows (ICE)" if i == 0 else None)
    ax.plot(grid, result["partial_dependence"][key], color=PALETTE[0], linewidth=2.5,
            label=f"mean over all {result['rows']:,} rows (partial dependence)")
    deciles = result["distribution"]["deciles"]
    ax.plot(deciles, [0.0] * len(deciles), "|", color=PALETTE[1], markersize=12, markeredgewidth=1.5,
            transform=ax.get_xaxis_transform(), label="deciles of the file's values", clip_on=False)
    ax.set_xlabel(f"{literal(result['feature'])} (set to this value in every row)")


def _categorical_panel(ax: Any, result: dict[str, Any], key: str) -> None:
    categories = result["grid"]
    positions = np.arange(len(categories))
    jitter = np.random.default_rng(0).uniform(-0.15, 0.15, size=len(result["ice"][key]))
    for i, points in enumerate(result["ice"][key]):
        ax.plot(positions + jitter[i], points, "o", color="0.55", markersize=3, alpha=0.4,
                label=f"{result['sample']} individual rows (ICE)" if i == 0 else None)
    ax.plot(positions, result["partial_dependence"][key], "D", color=PALETTE[0], markersize=9,
            label=f"mean over all {result['rows']:,} rows (partial dependence)")
    counts = result["distribution"]["counts"]
    ax.set_xticks(positions, [f"{literal(c)}\n({counts[c]:,} rows)" for c in categories])
    ax.set_xlim(-0.6, len(categories) - 0.4)
    ax.grid(axis="x", visible=False)
    ax.set_xlabel(f"{literal(result['feature'])} (set to this category in every row)")
