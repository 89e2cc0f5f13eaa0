"""``survmom evaluate``: discrimination and calibration of a checkpoint's target network on a labelled file.

Reports Harrell's C with a 95% CI (asymptotic, infinitesimal jackknife), Uno's C truncated at the largest
evaluation time, cumulative/dynamic AUC(t), Brier(t) and the integrated Brier score over
[first, last] evaluation time (trapezoid rule on a 50-point grid). IPCW weights use the Kaplan–Meier of the
censoring distribution of the *training* rows stored in the checkpoint. Default evaluation times: the 25th,
50th and 75th percentiles of the training event times (stored in the checkpoint).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from survmom import metrics
from survmom.errors import ConfigError, SurvmomError
from survmom.predict import load_model
from survmom.prepare import read_outcomes

IBS_GRID_POINTS = 50


def evaluate_file(checkpoint: Path, data: Path, times: list[float] | None = None) -> dict[str, Any]:
    """All metrics of the checkpoint's target network on ``data`` (needs time and event columns)."""
    model = load_model(checkpoint)
    state = model.state
    times = sorted(times) if times else list(state.get("event_time_quantiles", []))
    if not times:
        raise ConfigError(f"{checkpoint}: no default evaluation times stored; pass --times")
    if len(set(times)) != len(times):
        raise ConfigError(f"--times must be distinct, got {times}")
    outcomes = read_outcomes(data, model.config, model.preprocessor)
    event = torch.from_numpy(outcomes.event)
    time = torch.from_numpy(outcomes.time)
    train_event, train_time = state["train_outcomes"]["event"], state["train_outcomes"]["time"]
    risk = torch.from_numpy(model.outputs(outcomes.x, [])["risk"])
    grid = torch.linspace(times[0], times[-1], IBS_GRID_POINTS, dtype=torch.float64)
    try:
        c, low, high = metrics.concordance_index_ci(risk, event, time)
        uno = metrics.uno_concordance_index(risk, event, time, train_event, train_time, tau=max(times))
        auc, mean_auc = metrics.cumulative_dynamic_auc(risk, event, time, train_event, train_time,
                                                       torch.tensor(times, dtype=torch.float64))
        est = model.estimates(outcomes.x)
        surv = model.survival(est, times)
        brier = metrics.brier_score(surv, event, time, train_event, train_time, torch.tensor(times))
        ibs = None
        if len(times) > 1:
            grid_surv = model.survival(est, grid.tolist())
            ibs = metrics.integrated_brier_score(grid_surv, event, time, train_event, train_time, grid)
    except SurvmomError as error:
        raise type(error)(f"{data}: {error}") from error
    return {
        "checkpoint": str(checkpoint),
        "data": str(data),
        "rows": len(time),
        "events": int(event.sum()),
        "harrell_c": c,
        "harrell_c_ci95": [low, high],
        "uno_c": uno,
        "uno_tau": max(times),
        "times": times,
        "auc": [float(v) for v in auc],
        "mean_auc": mean_auc,
        "brier": [float(v) for v in brier],
        "integrated_brier": ibs,
    }


def render_evaluation(result: dict[str, Any]) -> None:
    """Print the metrics as a Rich table on stderr."""
    from rich.console import Console
    from rich.table import Table

    def fmt(value: float | None) -> str:
        return "n/a" if value is None or value != value else f"{value:.4f}"

    console = Console(stderr=True)
    summary = Table(title=f"{result['data']}: {result['rows']} rows, {result['events']} events", show_header=False)
    summary.add_column("metric", style="bold")
    summary.add_column("value")
    low, high = result["harrell_c_ci95"]
    summary.add_row("Harrell's C (95% CI)", f"{fmt(result['harrell_c'])} ({fmt(low)}–{fmt(high)})")
    summary.add_row(f"Uno's C (tau = {result['uno_tau']:g})", fmt(result["uno_c"]))
    summary.add_row("mean AUC(t)", fmt(result["mean_auc"]))
    summary.add_row("integrated Brier score", fmt(result["integrated_brier"]))
    console.print(summary)
    per_time = Table(title="by time")
    for name in ("time", "AUC(t)", "Brier(t)"):
        per_time.add_column(name, justify="right")
    for t, auc, brier in zip(result["times"], result["auc"], result["brier"]):
        per_time.add_row(f"{t:g}", fmt(auc), fmt(brier))
    console.print(per_time)
