"""``survmom plot km``: Kaplan-Meier curves of predicted-risk groups of a labelled file, with the model's
mean predicted survival per group, numbers at risk and the log-rank test.

The rows of the file are put into ``k`` groups by their predicted risk (predict's ``risk`` column), cut at
the k-quantiles of the *training* rows' risks stored in the checkpoint (numpy's default, linear
interpolation), so that "high risk" means the same risk range on every file: group g (1 = lowest) holds the
rows with ``cut[g-1] < risk <= cut[g]``. Per group: the Kaplan-Meier curve with its 95% log(-log) Greenwood
band and the numbers at risk (rows with time >= t, at the x ticks), all from
:mod:`survmom.core.kaplan_meier`; the mean over the group's rows of the predicted S(t) (dashed), up to the
longest training follow-up. The log-rank test (:mod:`survmom.core.logrank`) compares the groups' curves.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from survmom.app.figures import time_axis
from survmom.app.plots.survival import survival_grid
from survmom.app.predict import LoadedModel, load_model, refuse_design, time_unit
from survmom.core.kaplan_meier import kaplan_meier
from survmom.core.logrank import logrank_test
from survmom.data import text_notice
from survmom.errors import CheckpointError, ConfigError, DataError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MAX_GROUPS = 7  # the colours of the colour-blind safe palette
# Lowest risk to highest: blue, bluish green, orange, reddish purple, sky blue, black; the highest is vermillion.
GROUP_COLOURS = ("#0072B2", "#009E73", "#E69F00", "#CC79A7", "#56B4E9", "#000000")
HIGHEST_COLOUR = "#D55E00"


def group_labels(k: int) -> list[str]:
    """Names of ``k`` risk groups from the lowest risk to the highest."""
    if k == 2:
        return ["low risk", "high risk"]
    if k == 3:
        return ["low risk", "middle", "high risk"]
    return [f"group {g}" + (" (lowest risk)" if g == 1 else " (highest risk)" if g == k else "")
            for g in range(1, k + 1)]


def risk_groups(risk: np.ndarray, train_risk: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The cut points (k - 1,): the k-quantiles of ``train_risk``; and each row's group (n,) 0..k-1:
    ``cut[g-1] < risk <= cut[g]``."""
    cuts = np.quantile(np.asarray(train_risk, dtype=np.float64), np.arange(1, k) / k)
    return cuts, np.searchsorted(cuts, risk, side="left")


def nice_ticks(end: float, target: int = 8) -> list[float]:
    """Round tick positions 0, s, 2s, ... <= ``end``, with a step s of 1, 2, 2.5 or 5 times a power of ten
    chosen so that there are at most about ``target`` + 1 of them."""
    if not end > 0 or not math.isfinite(end):
        return [0.0]
    raw = end / target
    magnitude = 10.0 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1.0, 2.0, 2.5, 5.0, 10.0) if m * magnitude >= raw)
    return [round(i * step, 12) for i in range(int(end / step + 1e-9) + 1)]


def km_data(checkpoint: Path, data: Path, groups: int = 3, *, delimiter: str | None = None,
            encoding: str | None = None, sheet: str | None = None,
            warn: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The numbers behind the figure (what ``--json`` prints).

    Returns ``cuts`` (k - 1,) in risk units and, per group (lowest risk first): ``label``, ``risk_above`` /
    ``risk_at_most`` (its range; None: unbounded), ``rows``, ``events``, ``km`` (``times``: the group's
    distinct times, ascending; ``survival``, ``lower``, ``upper``: S and its 95% band just after each;
    ``at_risk``, ``events``: counts there) and ``predicted`` (``times``, ``survival``: the mean predicted
    S(t) of its rows); ``at_risk`` (``times``: the x ticks; ``counts``: per group, rows with time >= tick);
    ``logrank`` (``statistic``, ``df``, ``p_value``).
    """
    if not 2 <= groups <= MAX_GROUPS:
        raise ConfigError(f"--groups must be 2 to {MAX_GROUPS}, got {groups}")
    model = load_model(checkpoint)
    saved, config = model.checkpoint, model.config
    if saved.train_risk is None:
        raise CheckpointError(f"{checkpoint}: checkpoint has no training risks (written by an older survmom), so "
                              "risk groups cannot be cut at training quantiles; train the model again")
    refuse_design(model, checkpoint, "plot km")
    outcomes = model.read_outcomes(data, delimiter=delimiter, encoding=encoding, sheet=sheet, warn=warn)
    notice = text_notice(data, delimiter=delimiter, encoding=encoding, sheet=sheet)
    if notice and warn is not None:
        warn(notice)
    n = len(outcomes.time)
    if n == 0:
        raise DataError(f"{data}: no data rows")
    if not outcomes.event.any():
        raise DataError(f"{data}: no events in column '{config.event_col}' (all {n} rows censored); Kaplan-Meier "
                        "curves of risk groups need events")
    x = outcomes.x if outcomes.x.flags.writeable else outcomes.x.copy()
    est = model.estimates(x)
    risk = model.risk(est).numpy()
    if np.isnan(risk).any():
        raise DataError(f"{data}: the model's risk is not a number for {int(np.isnan(risk).sum())} row(s); check "
                        "the values of those rows and their unit")
    cuts, group = risk_groups(risk, saved.train_risk.numpy(), groups)
    labels = group_labels(groups)
    event = torch.tensor(outcomes.event, dtype=torch.bool)  # copies: parsed arrays may be read-only views
    time = torch.tensor(outcomes.time, dtype=torch.float64)
    end = float(time.max())
    follow_up = float(saved.train_time.max())
    grid, steps = survival_grid(model, min(end, follow_up))
    ticks = nice_ticks(end)
    ranges = [(float(cuts[g - 1]) if g > 0 else None, float(cuts[g]) if g < groups - 1 else None)
              for g in range(groups)]
    empty = [g for g in range(groups) if not (group == g).any()]
    if empty:
        named = ", ".join(f"'{labels[g]}' ({_risk_range(*ranges[g])})" for g in empty)
        which = f"risk group {named} has" if len(empty) == 1 else f"risk groups {named} have"
        raise DataError(f"{data}: {which} no rows among the {n} "
                        f"rows of this file (groups are cut at the {groups}-quantiles of the training risks); draw "
                        "fewer --groups")
    entries, at_ticks = [], []
    for g, label in enumerate(labels):
        rows = np.flatnonzero(group == g)
        above, at_most = ranges[g]
        index = torch.from_numpy(rows)
        km = kaplan_meier(event[index], time[index])
        predicted = _mean_survival(model, est[:, index], grid,
                                   None if outcomes.strata is None else outcomes.strata[rows])
        entries.append({
            "label": label, "risk_above": above, "risk_at_most": at_most,
            "training_quantiles": [g / groups, (g + 1) / groups],
            "rows": len(rows), "events": int(event[index].sum()),
            "km": {"times": km.times.tolist(), "survival": km.survival.tolist(), "lower": km.lower.tolist(),
                   "upper": km.upper.tolist(), "at_risk": km.at_risk.tolist(), "events": km.events.tolist()},
            "predicted": {"times": grid, "survival": predicted.tolist(), "steps": steps},
        })
        at_ticks.append(km.at_risk_at(torch.tensor(ticks, dtype=torch.float64)).tolist())
    test = logrank_test(event, time, torch.from_numpy(group))
    return {
        "checkpoint": str(checkpoint), "data": str(data), "loss": config.loss, "time_column": config.time_col,
        "time_unit": time_unit(config),
        "rows": n, "events": int(event.sum()), "follow_up": follow_up, "end": end,
        "cuts": cuts.tolist(), "groups": entries, "at_risk": {"times": ticks, "counts": at_ticks},
        "logrank": {"statistic": test.statistic, "df": test.df, "p_value": test.p_value},
    }


def _mean_survival(model: LoadedModel, est: torch.Tensor, times: list[float], strata: np.ndarray | None = None,
                   chunk: int = 8192) -> torch.Tensor:
    """The mean over rows of S(t | x) (m,) at ``times`` from target estimates ``est`` (K, n, d), ``chunk`` rows at
    a time (the whole (n, m) matrix of a large file would not fit in memory)."""
    total = torch.zeros(len(times), dtype=torch.float64)
    rows = est.shape[1]
    for start in range(0, rows, chunk):
        codes = None if strata is None else strata[start : start + chunk]
        total += model.survival(est[:, start : start + chunk], times, codes).sum(0)
    return total / rows


def _risk_range(above: float | None, at_most: float | None) -> str:
    if above is None:
        return f"risk <= {at_most:.4g}"
    if at_most is None:
        return f"risk > {above:.4g}"
    return f"{above:.4g} < risk <= {at_most:.4g}"


def format_p(p: float) -> str:
    """A p-value for a legend: ``p = 0.012``, ``p = 3.4e-07``, ``p < 1e-300`` where it underflows."""
    if p <= 0:
        return "p < 1e-300"
    return f"p = {p:.2g}" if p >= 1e-3 else f"p = {p:.1e}"


def draw_km(data: dict[str, Any]) -> Figure:
    """The figure of :func:`km_data`'s numbers: per group the Kaplan-Meier step curve with its shaded 95% band
    and the mean predicted S(t) dashed, the log-rank test in the title, the numbers at risk in a table
    under the time axis, aligned with its ticks."""
    from matplotlib.lines import Line2D

    from survmom.app.figures import new_figure

    groups = data["groups"]
    k = len(groups)
    colours = [*GROUP_COLOURS[: k - 1], HIGHEST_COLOUR]
    ticks, end = data["at_risk"]["times"], data["end"]
    with new_figure(10.0, 5.6 + 0.28 * k) as figure:
        ax, table = figure.subplots(2, 1, gridspec_kw={"height_ratios": [5.0, 0.45 + 0.3 * k]})
        for entry, colour in zip(groups, colours):
            km = entry["km"]
            times = [0.0, *km["times"]]
            ax.step(times, [1.0, *km["survival"]], where="post", color=colour, linewidth=2.0)
            ax.fill_between(times, [1.0, *km["lower"]], [1.0, *km["upper"]], step="post", color=colour, alpha=0.18,
                            linewidth=0)
            predicted = entry["predicted"]
            ax.plot(predicted["times"], predicted["survival"], color=colour, linestyle="--", linewidth=1.5,
                    drawstyle="steps-post" if predicted["steps"] else "default")
        handles = [Line2D([], [], color=c, linewidth=2.0) for c in colours]
        names = [f"{e['label']}: {e['rows']:,} rows, {e['events']:,} events" for e in groups]
        handles += [Line2D([], [], color="0.3", linewidth=2.0), Line2D([], [], color="0.3", linestyle="--")]
        names += ["Kaplan-Meier, 95% band", "mean predicted S(t)"]
        # Outside the axes: no corner of a Kaplan-Meier plot is reliably free.
        ax.legend(handles, names, loc="upper left", bbox_to_anchor=(1.02, 1.0))
        ax.set_xlim(0.0, end)
        ax.set_ylim(0.0, 1.02)
        ax.set_xticks(ticks)
        ax.set_xlabel(f"time ({time_axis(data)})")
        ax.set_ylabel("survival probability")
        ax.set_title(_title(data))
        _draw_at_risk(table, data, colours)
    return figure


def _draw_at_risk(table: Any, data: dict[str, Any], colours: list[str]) -> None:
    """The number-at-risk table: one row per group, a count under each x tick of the curves' axis."""
    groups, counts = data["groups"], data["at_risk"]["counts"]
    table.set_xlim(0.0, data["end"])
    table.set_ylim(len(groups) - 0.5, -0.5)
    table.set_yticks(range(len(groups)), [e["label"] for e in groups])
    for label, colour in zip(table.get_yticklabels(), colours):
        label.set_color(colour)
    table.set_xticks([])
    table.grid(False)
    for spine in table.spines.values():
        spine.set_visible(False)
    widest = max(len(f"{int(row[0]):,}") for row in counts)  # the counts at the first tick, centred on it
    table.tick_params(axis="y", length=0, pad=6 + 3.5 * widest)
    for row, (row_counts, colour) in enumerate(zip(counts, colours)):
        for tick, count in zip(data["at_risk"]["times"], row_counts):
            table.text(tick, row, f"{int(count):,}", ha="center", va="center", color=colour, fontsize=10)
    table.set_title("number at risk", loc="left", fontsize=10)


def _title(data: dict[str, Any]) -> str:
    k, test = len(data["groups"]), data["logrank"]
    return (f"Kaplan-Meier by predicted risk group: {Path(data['data']).name} ({data['rows']:,} rows, "
            f"{data['events']:,} events)\n{k} groups cut at the training risk quantiles of "
            f"{Path(data['checkpoint']).name}; log-rank {format_p(test['p_value'])} (chi-square "
            f"{test['statistic']:.1f}, {test['df']} df)")
