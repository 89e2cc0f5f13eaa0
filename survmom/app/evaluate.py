"""``survmom evaluate``: discrimination and calibration of a checkpoint's target network on a labelled file.

Reports Harrell's C with a 95% CI (asymptotic, infinitesimal jackknife), Uno's C truncated at the largest
evaluation time, cumulative/dynamic AUC(t), Brier(t) and the integrated Brier score over
[first, last] evaluation time (trapezoid rule on a 50-point grid). IPCW weights use the Kaplan–Meier of the
censoring distribution of the *training* rows stored in the checkpoint. Default evaluation times: the 25th,
50th and 75th percentiles of the training event times (stored in the checkpoint).

Calibration (:mod:`survmom.core.calibration`): at each evaluation time the ICI, E50 and E90 of the smoothed
calibration curve (Austin et al. 2020; null with the reason in ``calibration_note`` where the curve cannot be
estimated) and calibration in the large (mean predicted S(t) against the file's Kaplan–Meier S(t) and its 95%
band); once per file, D-calibration (Haider et al. 2020) with 10 bins.

Study designs (the model's ``--entry-col``, ``--weight-col``, ``--strata``; their columns are read from the
file): the C-index is the concordance with the design (:func:`survmom.core.metrics.concordance_index`):
with entry times a row is compared only with the events in its interval ``(entry, time]`` (the time-dependent
/ counting-process concordance of Therneau & Atkinson, R survival's "Concordance" vignette; counting-process
rows are scored per interval, each with its own covariates), with weights pair (i, j) counts ``w_i w_j``, and
with strata only rows of one stratum are compared (their log hazards share a baseline). Its confidence
interval, Uno's C and AUC(t) have no design-aware estimator here: null, with the reason in ``metric_note``.
Brier(t) and the IBS are weighted by the case weights; with entry times they are null (a row's S(t) is from
time 0, and the IPCW weights ignore left truncation). The calibration numbers (ICI, E50, E90, in the large,
D-calibration) take neither entry times nor weights: null with the reason in ``calibration_note``. Strata
alone change no metric's definition: each row's S(t) is from its stratum's baseline.

Every time (data, training rows, evaluation times, IBS grid) is float64: a float32 evaluation time such as
100.1 rounds below the deaths recorded at exactly 100.1, and times above ~3.4e38 overflow. Evaluation times
are checked here, before any metric, so that a bad ``--times`` is reported against the option.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from survmom.app.predict import SHOWN_TIMES, check_times, load_model, show_times, time_text, time_texts, time_unit
from survmom.core import calibration, metrics
from survmom.data import text_notice
from survmom.errors import ConfigError, DataError, SurvmomError

IBS_GRID_POINTS = 50
D_CALIBRATION_BINS = 10


def evaluate_file(checkpoint: Path, data: Path, times: list[float] | None = None, *, delimiter: str | None = None,
                  encoding: str | None = None, sheet: str | None = None,
                  warn: Callable[[str], None] | None = None) -> dict[str, Any]:
    """All metrics of the checkpoint's target network on ``data`` (needs time and event columns).

    ``times=None`` uses the evaluation times stored in the checkpoint; an empty list is an error.
    ``delimiter``, ``encoding``: ``--delimiter``, ``--encoding`` for a delimited text file (None: detected);
    ``warn`` gets the line saying how such a file was read when it is not plain comma-separated.
    """
    given = times is not None
    source, hint = "--times", ""
    if given and not times:
        raise ConfigError(f"{source}: no evaluation times given; pass comma-separated numbers, e.g. --times 100,200")
    if given:
        check_times(times, source, hint)
    model = load_model(checkpoint, warn)
    saved = model.checkpoint
    if not given:
        source, hint = f"{checkpoint}: default evaluation times", "; pass --times"
        times = list(saved.event_time_quantiles)
        if not times:
            raise ConfigError(f"{checkpoint}: no default evaluation times stored; pass --times")
        check_times(times, source, hint)
    times = sorted(float(t) for t in times)
    outcomes = model.read_outcomes(data, delimiter=delimiter, encoding=encoding, sheet=sheet, warn=warn)
    notice = text_notice(data, delimiter=delimiter, encoding=encoding, sheet=sheet)
    if notice and warn is not None:
        warn(notice)
    event, time = outcome_tensors(outcomes.event, outcomes.time, data)
    train_event, train_time = saved.train_event, saved.train_time
    check_follow_up(times, source, hint, data, time)
    _check_censoring(times, source, hint, checkpoint, train_event, train_time)
    eval_times = torch.tensor(times, dtype=torch.float64)
    x, design = features_and_design(outcomes)
    strata = design.get("strata")
    # Weighted Brier: the file's rows by their weights, the IPCW censoring Kaplan-Meier by the training weights.
    weight = {} if "weight" not in design else {
        "weight": design["weight"], "train_weight": saved.train_design["weight"].to(torch.float64)}
    notes = design_notes(design)
    grid = torch.linspace(times[0], times[-1], IBS_GRID_POINTS, dtype=torch.float64)
    missing = [None] * len(times)
    try:
        est = model.estimates(x)
        risk = model.risk(est)
        if design:
            c, low, high = metrics.concordance_index(risk, event, time, **design), None, None
            uno, auc, mean_auc = None, missing, None
        else:
            c, low, high = metrics.concordance_index_ci(risk, event, time)
            uno = metrics.uno_concordance_index(risk, event, time, train_event, train_time, tau=times[-1])
            auc, mean_auc = metrics.cumulative_dynamic_auc(risk, event, time, train_event, train_time, eval_times)
        surv = model.survival(est, times, strata)
        brier, ibs = missing, None
        if "entry" not in design:
            brier = metrics.brier_score(surv, event, time, train_event, train_time, eval_times, **weight)
            if len(times) > 1:
                grid_surv = model.survival(est, grid.tolist(), strata)
                ibs = metrics.integrated_brier_score(grid_surv, event, time, train_event, train_time, grid, **weight)
        if "entry" in design or "weight" in design:
            calibrated = [_no_calibration(notes["calibration"]) for _ in times]
            d_calibration = None
        else:
            calibrated = [_calibration_at(surv[:, k], event, time, t) for k, t in enumerate(times)]
            d_cal = calibration.d_calibration(model.survival_at_own_times(est, time, strata), event,
                                              D_CALIBRATION_BINS)
            d_calibration = {"bins": D_CALIBRATION_BINS, "counts": d_cal.counts.tolist(), "chi2": d_cal.chi2,
                             "df": d_cal.df, "p_value": d_cal.p_value}
    except SurvmomError as error:
        raise type(error)(f"{data}: {error}") from error
    config = model.config
    designed = {"design": {"entry_col": config.entry_col, "weight_col": config.weight_col,
                           "strata": config.strata, "concordance": notes["concordance"]},
                "metric_note": notes["metrics"]} if design else {}
    return {
        "checkpoint": str(checkpoint),
        "data": str(data),
        "rows": len(time),
        "events": int(event.sum()),
        "harrell_c": c,
        "harrell_c_ci95": [low, high],
        "uno_c": uno,
        "uno_tau": times[-1],
        "times": times,
        "time_unit": time_unit(config),
        "auc": [None if v is None else float(v) for v in auc],
        "mean_auc": mean_auc,
        "brier": [None if v is None else float(v) for v in brier],
        "integrated_brier": ibs,
        **{key: [row[key] for row in calibrated] for key in calibrated[0]},
        "d_calibration": d_calibration,
        **designed,
    }


def concordance_file(checkpoint: Path, data: Path, *, delimiter: str | None = None, encoding: str | None = None,
                     sheet: str | None = None, warn: Callable[[str], None] | None = None) -> float:
    """The C-index :func:`evaluate_file` reports as ``harrell_c`` (with the model's design), and nothing else:
    no evaluation times, so no check of the follow-up against them; NaN without a comparable pair."""
    model = load_model(checkpoint, warn)
    outcomes = model.read_outcomes(data, delimiter=delimiter, encoding=encoding, sheet=sheet, warn=warn)
    notice = text_notice(data, delimiter=delimiter, encoding=encoding, sheet=sheet)
    if notice and warn is not None:
        warn(notice)
    event, time = outcome_tensors(outcomes.event, outcomes.time, data)
    x, design = features_and_design(outcomes)
    try:
        return metrics.concordance_index(model.risk(model.estimates(x)), event, time, **design)
    except SurvmomError as error:
        raise type(error)(f"{data}: {error}") from error


def features_and_design(outcomes: Any) -> tuple[Any, dict[str, torch.Tensor]]:
    """The preprocessed features (a writeable array) and the design tensors (entry, weight, strata: those the
    model has) of parsed ``outcomes``."""
    x = outcomes.x if outcomes.x.flags.writeable else outcomes.x.copy()
    design = {name: torch.tensor(getattr(outcomes, name)) for name in ("entry", "weight", "strata")
              if getattr(outcomes, name) is not None}
    return x, design


def design_notes(design: dict[str, torch.Tensor]) -> dict[str, str | None]:
    """What evaluate's numbers mean for a design with the fields ``design`` (entry, weight, strata): how the
    C-index compares rows, why some metrics are null (``metrics``) and why calibration is (``calibration``)."""
    fields = set(design)
    how = []
    if "entry" in fields:
        how.append("a row is compared only with the events in its interval (entry, time] (time-dependent "
                   "concordance, Therneau & Atkinson; counting-process rows are scored per interval)")
    if "weight" in fields:
        how.append("pair (i, j) counts w_i * w_j")
    if "strata" in fields:
        how.append("only rows of one stratum are compared")
    used = ", ".join(f"--{name}-col" if name != "strata" else "--strata" for name in sorted(fields))
    metrics_note = (f"the model has {used}: no design-aware confidence interval of the C-index, Uno's C or AUC(t) "
                    "here (null)")
    if "entry" in fields:
        metrics_note += ("; Brier(t) and the integrated Brier score are null too: S(t) is predicted from time 0 "
                         "and the IPCW weights ignore entry times")
    calibration_note = None
    if fields & {"entry", "weight"}:
        calibration_note = ("not computed with " + " and ".join(
            name for name, used_ in (("entry times", "entry" in fields), ("case weights", "weight" in fields))
            if used_) + ": the smoothed calibration curve, the Kaplan-Meier of calibration in the large and "
            "D-calibration here take neither")
    return {"concordance": "; ".join(how) or None, "metrics": metrics_note, "calibration": calibration_note}


def _no_calibration(note: str | None) -> dict[str, Any]:
    """The calibration numbers of one time when the design rules them out: null, with ``note`` saying why."""
    return {"ici": None, "e50": None, "e90": None, "calibration_note": note, "mean_predicted_survival": None,
            "km_survival": None, "km_survival_ci95": [None, None]}


def _calibration_at(pred: torch.Tensor, event: torch.Tensor, time: torch.Tensor, t: float) -> dict[str, Any]:
    """The calibration numbers at ``t`` of the predicted S(t) ``pred`` (n,): ICI, E50, E90 (None, with the
    reason in ``calibration_note``, where the smoothed curve cannot be estimated) and calibration in the large."""
    large = calibration.calibration_in_the_large(pred, event, time, t)
    row: dict[str, Any] = {"ici": None, "e50": None, "e90": None, "calibration_note": None}
    try:
        smooth = calibration.smoothed_calibration(pred, event, time, t)
        row.update(ici=smooth.ici, e50=smooth.e50, e90=smooth.e90)
    except calibration.CalibrationUndefined as why:
        row["calibration_note"] = str(why)
    return {**row, "mean_predicted_survival": large.mean_predicted, "km_survival": large.km,
            "km_survival_ci95": [large.km_lower, large.km_upper]}


def outcome_tensors(event: Any, time: Any, data: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Copies of the parsed outcomes as (bool, float64) tensors: parsed arrays may be read-only views."""
    if len(time) == 0:
        raise DataError(f"{data}: no data rows; evaluate needs labelled rows")
    return torch.tensor(event, dtype=torch.bool), torch.tensor(time, dtype=torch.float64)


def check_follow_up(times: list[float], source: str, hint: str, data: Path, time: torch.Tensor) -> None:
    """Sorted ``times`` must lie in the follow-up ``[min, max)`` of the data (as the metrics require)."""
    lo, hi = float(time.min()), float(time.max())
    if lo == hi:
        raise DataError(f"{data}: every row has the time {time_text(lo)}; time-dependent metrics need rows followed "
                        "for different lengths of time")
    outside = [t for t in times if not lo <= t < hi]
    if outside:
        shown = outside[:SHOWN_TIMES]  # shown apart from the bounds, the bounds on their allowed side
        *texts, low, high = time_texts([*shown, lo, hi], [None] * len(shown) + ["ceiling", "floor"])
        raise ConfigError(
            f"{source}: {show_times(outside, texts)} outside the follow-up of {data} "
            f"(times {low} to {high}); evaluation times must be >= {low} and < {high}{hint}"
        )


def _check_censoring(
    times: list[float], source: str, hint: str, checkpoint: Path, train_event: torch.Tensor, train_time: torch.Tensor
) -> None:
    """The training censoring survival G must be known and > 0 at every time (IPCW weights 1 / G)."""
    at = torch.tensor(times, dtype=torch.float64)
    t_max = float(train_time.max())
    g = metrics.censoring_survival(train_event, train_time, at.clamp(max=t_max))
    bad = (at > t_max) | (g <= 0)
    if bool(bad.any()):
        g_end = float(metrics.censoring_survival(train_event, train_time, train_time.new_tensor([t_max]))[0])
        shown = at[bad].tolist()[:SHOWN_TIMES]
        *texts, last = time_texts([*shown, t_max], [None] * len(shown) + ["floor"])
        limit = f"<= {last}" if g_end > 0 else f"< {last}"
        raise ConfigError(
            f"{source}: {show_times(at[bad].tolist(), texts)} beyond the training rows stored in {checkpoint}: "
            f"their censoring survival G(t), used for the IPCW weights, is 0 or unknown there (last training "
            f"follow-up time {last}); evaluation times must be {limit}{hint}"
        )


def render_evaluation(result: dict[str, Any]) -> None:
    """Print the metrics as Rich tables on stderr; user-provided text (the file name) is shown literally."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    def fmt(value: float | None) -> str:
        return "n/a" if value is None or value != value else f"{value:.4f}"

    console = Console(stderr=True, markup=False, emoji=False)
    title = Text(f"{result['data']}: {result['rows']} rows, {result['events']} events", style="table.title")
    summary = Table(title=title, show_header=False)
    summary.add_column("metric", style="bold")
    summary.add_column("value")
    low, high = result["harrell_c_ci95"]
    if result.get("design"):
        summary.add_row("C-index (with the design)", fmt(result["harrell_c"]))
    else:
        summary.add_row("Harrell's C (95% CI)", f"{fmt(result['harrell_c'])} ({fmt(low)}–{fmt(high)})")
    summary.add_row(f"Uno's C (tau = {time_text(result['uno_tau'])})", fmt(result["uno_c"]))
    summary.add_row("mean AUC(t)", fmt(result["mean_auc"]))
    summary.add_row("integrated Brier score", fmt(result["integrated_brier"]))
    d_cal = result["d_calibration"]
    if d_cal is not None:
        summary.add_row(f"D-calibration chi2 (df {d_cal['df']})",
                        f"{d_cal['chi2']:.2f} (p = {d_cal['p_value']:.3g})")
    console.print(summary)
    if result.get("design"):
        console.print(Text(f"C-index with the study design: {result['design']['concordance']}"))
        console.print(Text(f"n/a metrics: {result['metric_note']}"))
    per_time = Table(title=f"by time ({result['time_unit']})" if result.get("time_unit") else "by time")
    for name in ("time", "AUC(t)", "Brier(t)", "ICI", "E50", "E90"):
        per_time.add_column(name, justify="right")
    labels = time_texts(result["times"])  # nearby times stay apart
    for k, label in enumerate(labels):
        per_time.add_row(label, *(fmt(result[key][k]) for key in ("auc", "brier", "ici", "e50", "e90")))
    console.print(per_time)
    large = Table(title="calibration in the large")
    for name in ("time", "mean predicted S(t)", "Kaplan–Meier S(t) (95% CI)"):
        large.add_column(name, justify="right")
    for k, label in enumerate(labels):
        low, high = result["km_survival_ci95"][k]
        large.add_row(label, fmt(result["mean_predicted_survival"][k]),
                      f"{fmt(result['km_survival'][k])} ({fmt(low)}–{fmt(high)})")
    console.print(large)
    notes = dict(zip(labels, result["calibration_note"]))
    if len(set(notes.values())) == 1 and None not in notes.values() and len(notes) > 1:
        console.print(Text(f"calibration at every time: n/a, {next(iter(notes.values()))}"))
        return
    for label, note in notes.items():
        if note is not None:
            console.print(Text(f"ICI, E50, E90 at time {label}: n/a, {note}"))
