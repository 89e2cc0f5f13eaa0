"""``survmom plot calibration MODEL DATA --time t``: predicted against observed survival at one time.

The numbers (:func:`calibration_numbers`, what ``--json`` prints) come from :mod:`survmom.core.calibration`:
the rows grouped by quantiles of predicted S(t) (deciles by default), each group's mean prediction against
its Kaplan–Meier S(t) with the 95% log(-log) band; Austin et al.'s (2020) smoothed calibration curve with its
ICI, E50 and E90; calibration in the large; a histogram of the predictions. :func:`draw_calibration` draws
them: x = predicted S(t), y = observed S(t), the diagonal for perfect calibration, the predictions'
histogram underneath.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from survmom.app.evaluate import check_follow_up, outcome_tensors
from survmom.app.figures import PALETTE, new_figure, time_axis
from survmom.app.predict import check_times, load_model, refuse_design, time_text, time_texts, time_unit
from survmom.core import calibration
from survmom.data import text_notice
from survmom.errors import ConfigError, DataError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

HISTOGRAM_BINS = 40


def calibration_numbers(checkpoint: Path, data: Path, t: float, *, groups: int = 10, delimiter: str | None = None,
                        encoding: str | None = None, sheet: str | None = None,
                        warn: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The numbers behind the calibration plot of the checkpoint's predictions on ``data`` at time ``t``.

    ``t`` (training time unit) must lie in the file's follow-up ``[min, max)`` and not beyond the last
    training time (where the model was never fitted): ConfigError naming ``--time`` and the limit. A file
    without events: DataError. ``groups``: quantile groups of predicted S(t) (10: deciles).
    """
    (t,) = check_times([t], "--time")
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 2:
        raise ConfigError(f"--bins: the number of groups must be an integer >= 2, got {groups!r}")
    model = load_model(checkpoint)
    train_max = float(model.checkpoint.train_time.max())
    if t > train_max:
        given, last = time_texts([t, train_max], [None, "floor"])
        raise ConfigError(f"--time: {given} is beyond the training follow-up of {checkpoint} (last "
                          f"training time {last}); use --time <= {last}")
    refuse_design(model, checkpoint, "plot calibration")
    outcomes = model.read_outcomes(data, delimiter=delimiter, encoding=encoding, sheet=sheet, warn=warn)
    notice = text_notice(data, delimiter=delimiter, encoding=encoding, sheet=sheet)
    if notice and warn is not None:
        warn(notice)
    event, time = outcome_tensors(outcomes.event, outcomes.time, data)
    if not bool(event.any()):
        raise DataError(f"{data}: no events in column '{model.config.event_col}' ({len(time)} rows, all "
                        f"censored); a calibration plot needs observed events")
    check_follow_up([t], "--time", "", data, time)
    x = outcomes.x if outcomes.x.flags.writeable else outcomes.x.copy()
    pred = model.survival(model.estimates(x), [t], outcomes.strata)[:, 0]
    numbers = _numbers(checkpoint, data, model.config.time_col, t, pred, event, time, groups)
    return {**numbers, "time_unit": time_unit(model.config)}


def _numbers(checkpoint: Path, data: Path, time_col: str, t: float, pred: torch.Tensor, event: torch.Tensor,
             time: torch.Tensor, groups: int) -> dict[str, Any]:
    """The JSON-able numbers from the predictions ``pred`` (n,) of S(t) and the outcomes."""
    large = calibration.calibration_in_the_large(pred, event, time, t)
    numbers: dict[str, Any] = {
        "checkpoint": str(checkpoint), "data": str(data), "rows": len(time), "events": int(event.sum()),
        "time": t, "time_column": time_col,
        "groups": [{
            "rows": g.rows, "events": g.events, "at_risk": g.at_risk, "predicted_range": [g.low, g.high],
            "mean_predicted": g.mean_predicted, "km": g.km, "km_ci95": [g.km_lower, g.km_upper],
        } for g in calibration.calibration_groups(pred, event, time, t, groups)],
        "ici": None, "e50": None, "e90": None, "calibration_note": None, "smoothed": None,
        "mean_predicted_survival": large.mean_predicted, "km_survival": large.km,
        "km_survival_ci95": [large.km_lower, large.km_upper],
    }
    try:
        smooth = calibration.smoothed_calibration(pred, event, time, t)
        numbers.update(ici=smooth.ici, e50=smooth.e50, e90=smooth.e90,
                       smoothed={"predicted": smooth.grid.tolist(), "observed": smooth.curve.tolist()})
    except calibration.CalibrationUndefined as why:
        numbers["calibration_note"] = str(why)
    counts, edges = np.histogram(pred.numpy(), bins=HISTOGRAM_BINS)
    numbers["histogram"] = {"edges": edges.tolist(), "counts": counts.tolist()}
    return numbers


def summary_line(numbers: dict[str, Any]) -> str:
    """ICI, E50 and E90 in one line (or why they are missing), for stderr and the figure."""
    at = f"at time {time_text(numbers['time'])}"
    if numbers["ici"] is None:
        return f"ICI, E50, E90 {at}: n/a ({numbers['calibration_note']})"
    return f"ICI {numbers['ici']:.4f}, E50 {numbers['e50']:.4f}, E90 {numbers['e90']:.4f} {at}"


def draw_calibration(numbers: dict[str, Any]) -> Figure:
    """The calibration plot of :func:`calibration_numbers`' output: groups with 95% CI whiskers, the smoothed
    curve, the diagonal, ICI/E50/E90 written on the axes, and the predictions' histogram underneath."""
    t = time_text(numbers["time"])
    groups = numbers["groups"]
    mean = np.array([g["mean_predicted"] for g in groups])
    km = np.array([g["km"] for g in groups])
    band = np.array([g["km_ci95"] for g in groups]).reshape(-1, 2)
    smoothed = numbers["smoothed"]
    edges, counts = np.array(numbers["histogram"]["edges"]), np.array(numbers["histogram"]["counts"])
    shown = [mean, km, band.ravel(), edges] + ([np.array(smoothed["observed"]), np.array(smoothed["predicted"])]
                                        if smoothed else [])
    low, high = float(min(v.min() for v in shown)), float(max(v.max() for v in shown))
    pad = max(0.02, 0.05 * (high - low))
    lo, hi = max(0.0, low - pad), min(1.0, high + pad)
    lo, hi = (0.0 if lo < 0.1 else lo), (1.0 if hi > 0.9 else hi)  # near an end: show the whole way to it
    with new_figure(6.4, 7.0) as fig:
        axes, hist_axes = fig.subplots(2, 1, sharex=True, height_ratios=[4, 1])
        axes.plot([lo, hi], [lo, hi], color="0.45", linestyle="--", linewidth=1, label="perfect calibration")
        if smoothed:
            axes.plot(smoothed["predicted"], smoothed["observed"], color=PALETTE[1], linewidth=2,
                      label="smoothed calibration curve\n(Austin et al. 2020)")
        axes.errorbar(mean, km, yerr=np.abs(band.T - km), fmt="o", color=PALETTE[0], ecolor=PALETTE[0],
                      capsize=3, markersize=5,
                      label=f"{len(groups)} groups of predicted S(t):\nKaplan–Meier, 95% CI")
        text = summary_line(numbers).replace(f" at time {t}", "").replace(", E", "\nE") if numbers["ici"] is not None \
            else "ICI, E50, E90: n/a\n" + _wrap(numbers["calibration_note"], 34)
        text += (f"\nmean predicted S({t}) {numbers['mean_predicted_survival']:.3f}"
                 f"\nKaplan–Meier S({t}) {numbers['km_survival']:.3f}")
        axes.text(0.98, 0.03, text, transform=axes.transAxes, ha="right", va="bottom", fontsize=10,
                  bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": "0.7"})
        axes.set_xlim(lo, hi)
        axes.set_ylim(lo, hi)
        axes.tick_params(labelbottom=True)  # the x axis is shared with the histogram, at the same width
        axes.set_ylabel(f"observed S({t}) (Kaplan–Meier)")
        axes.legend(loc="upper left", fontsize=9, frameon=False)
        axes.set_title(f"Calibration at time {t} ({_time_unit(numbers)})\n{Path(numbers['data']).name}: "
                       f"{numbers['rows']:,} rows, {numbers['events']:,} events")
        hist_axes.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color=PALETTE[5],
                      edgecolor="white", linewidth=0.3)
        hist_axes.set_ylabel("rows")
        hist_axes.set_xlabel(f"predicted S({t}): probability of no event by time {t}")
        hist_axes.tick_params(labelbottom=True)
        return fig


def _time_unit(numbers: dict[str, Any]) -> str:
    return time_axis(numbers)


def _wrap(text: str, width: int) -> str:
    """``text`` broken into lines of at most about ``width`` characters, at spaces."""
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return "\n".join([*lines, line])
