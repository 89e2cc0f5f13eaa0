"""``survmom inspect``: a checkpoint summary as plain data, and its Rich rendering on stderr."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from survmom.errors import CheckpointError, SurvmomError
from survmom.training.checkpoint import read_checkpoint


def checkpoint_summary(path: Path) -> dict[str, Any]:
    """Config, data schema, progress, best validation C-index, bank fill, EMA state and versions."""
    from survmom.core.ema import next_rate

    saved = read_checkpoint(path)
    progress, bank = saved.progress, saved.bank
    try:
        current_rate = next_rate(saved.ema)
    except (KeyError, TypeError, ValueError, SurvmomError) as error:
        raise CheckpointError(f"{path}: checkpoint has a damaged EMA state ({error})") from error
    return {
        "checkpoint": str(path),
        "format_version": saved.state["format_version"],
        "versions": saved.versions,
        "config": saved.config.to_dict(),
        "data": {k: v for k, v in saved.data.items() if k != "columns"},
        "schema": {
            "input_columns": list(saved.preprocessor.input_columns),
            "column_types": saved.preprocessor.column_types(),
            "features": len(saved.preprocessor.feature_names),
        },
        "progress": {
            "epochs_done": progress["epoch"],
            "steps": progress["step"],
            "batch_in_epoch": progress["batch_index"],
            "stopped_early": progress["stopped_early"],
            "linear_start_fitted": progress["fitted_start"],
            # distributed training: --batch is per process; the global batch is what one step sees in all
            "world_size": progress.get("world_size", 1),
            "batch_per_process": saved.config.batch,
            "global_batch": None if saved.config.batch is None else saved.config.batch * progress.get("world_size", 1),
        },
        "validation": {"best_cindex": saved.best_metric, "best_epoch": saved.best_epoch,
                       # the linear start's validation C and its standard error (--start-margin); None if absent
                       "start_cindex": progress.get("start_val_cindex"), "start_se": progress.get("start_val_se")},
        "bank": {"capacity": bank["capacity"], "filled": bank["count"],
                 "fill": bank["count"] / bank["capacity"] if bank["capacity"] else 1.0},
        "ema": {**saved.ema, "current_rate": current_rate},
        "history": saved.history,
        **({"design": _design(saved)} if _design(saved) else {}),
        **({"ensemble": _ensemble(saved)} if saved.ensemble_size > 1 else {}),
    }


def _ensemble(saved: Any) -> dict[str, Any]:
    """A cross-fitted ensemble's members (absent from a single model's summary): its size, the trained members'
    best epochs and validation C-indexes (each on its own fold), and which member the progress, bank and EMA
    entries describe (the one in training, or the last one)."""
    record = saved.state["ensemble"]
    trained = [{"member": k + 1, "best_epoch": m["state"]["best"]["epoch"], "best_cindex": m["state"]["best"]["metric"],
                "epochs_done": m["state"]["progress"]["epoch"]} for k, m in enumerate(record["members"])]
    return {"size": saved.ensemble_size, "trained": trained, "shown_member": int(record["current"]) + 1}


def _design(saved: Any) -> dict[str, Any]:
    """The study design of a checkpoint (absent from a plain model's summary): its entry, weight and stratum
    columns and the stratum levels (code order) with their training rows and events."""
    config = saved.config
    design: dict[str, Any] = {key: value for key, value in (("entry_col", config.entry_col),
                                                            ("weight_col", config.weight_col),
                                                            ("strata", config.strata)) if value}
    if saved.strata_levels is not None:
        codes = saved.train_design["strata"]
        design["strata_levels"] = [
            {"values": dict(zip(config.strata, level)), "train_rows": int((codes == k).sum()),
             "train_events": int(saved.train_event[codes == k].sum())} for k, level in enumerate(saved.strata_levels)]
    return design


def render_summary(summary: dict[str, Any]) -> None:
    """Print the summary as Rich tables on stderr."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(stderr=True)
    # Paths, column names and types are user text: escaped, so that "[kg]" is shown rather than read as markup.
    overview = Table(title=f"survmom checkpoint {escape(str(summary['checkpoint']))}", show_header=False)
    overview.add_column("item", style="bold")
    overview.add_column("value")
    config, progress, validation = summary["config"], summary["progress"], summary["validation"]
    start = ": the linear start" if validation["best_epoch"] == 0 else ""
    margin, start_c, start_se = config.get("start_margin", 0.0), validation["start_cindex"], validation["start_se"]
    if margin and start_c is not None and start_se:
        start += (f"; a trained epoch had to beat {start_c + margin * start_se:.4f} (--start-margin {margin:g} x "
                  f"standard error {start_se:.4f})")
    best = validation["best_cindex"]
    rows = [
        ("loss", f"{config['loss']}" + (f" ({config['ties']} ties)" if config["loss"] == "cox" else "")),
        ("network", f"hidden {config['hidden']}, {config['activation']}, dropout {config['dropout']}, "
                    f"batchnorm {config['batchnorm']}"),
        ("linear path", _linear_path(config, progress["linear_start_fitted"])),
        ("training data", f"{summary['data'].get('path', '?')} ({summary['data'].get('rows', '?')} rows)"),
        ("features", f"{summary['schema']['features']} from {len(summary['schema']['input_columns'])} columns"),
        ("epochs done", f"{progress['epochs_done']} of {config['epochs']}"
                        + (" (early stopping)" if progress["stopped_early"] else "")
                        + (f"; interrupted in epoch {progress['epochs_done'] + 1} after {progress['batch_in_epoch']} "
                           f"step(s): survmom resume continues it" if progress["batch_in_epoch"] else "")),
        ("steps", str(progress["steps"])),
        ("batch", f"{progress['batch_per_process']}" if progress["world_size"] == 1 else
                  f"{progress['batch_per_process']} per process × {progress['world_size']} processes = "
                  f"{progress['global_batch']} per step"),
        ("best validation C-index", "n/a" if best is None else f"{best:.4f} (epoch {validation['best_epoch']}{start})"),
        ("bank", f"{summary['bank']['filled']}/{summary['bank']['capacity']} ({summary['bank']['fill']:.0%})"),
        ("EMA", f"{summary['ema']['schedule']} rate {summary['ema']['rate']}, warm-up {summary['ema']['warmup']}, "
                f"{summary['ema']['num_updates']} updates, current rate {summary['ema']['current_rate']:.6f}"),
        ("versions", ", ".join(f"{k} {v}" for k, v in summary["versions"].items())),
    ]
    if config.get("origin_col"):  # times from dates
        dates = (f"{config['time_unit']} from the date in '{config['origin_col']}' to the date in "
                 f"'{config['time_col']}'" + (f" (dates as {config['date_format']} or ISO)" if config["date_format"]
                                              else ""))
        rows.insert(4, ("time", escape(dates)))
    design = summary.get("design", {})
    rows += [(name, str(design[key])) for name, key in (("entry column", "entry_col"), ("weight column", "weight_col"))
             if key in design]
    if "strata" in design:
        rows.append(("strata", f"{', '.join(design['strata'])}: {len(design['strata_levels'])} strata, each with "
                               "its own baseline hazard"))
    if "ensemble" in summary:
        ensemble = summary["ensemble"]
        scores = ", ".join("n/a" if m["best_cindex"] is None else f"{m['best_cindex']:.4f}"
                           for m in ensemble["trained"])
        rows.insert(0, ("ensemble", f"{ensemble['size']} cross-fitted members, {len(ensemble['trained'])} trained"
                                    + (f" (validation C-index {scores}, each on its own fold)" if scores else "")
                                    + f"; epochs, steps, best C, bank and EMA below are member "
                                      f"{ensemble['shown_member']}'s"))
    for item, value in rows:
        overview.add_row(item, escape(value))
    console.print(overview)
    columns = Table(title="input columns")
    columns.add_column("column")
    columns.add_column("type")
    for name in summary["schema"]["input_columns"]:
        columns.add_row(escape(str(name)), escape(str(summary["schema"]["column_types"].get(name, "?"))))
    console.print(columns)
    if "strata_levels" in design:
        console.print(_strata_table(design["strata_levels"]))


STRATA_SHOWN = 10


def _strata_table(levels: list[dict[str, Any]]) -> Any:
    """The first :data:`STRATA_SHOWN` strata with their training rows and events, then a count of the rest."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="strata (training rows)")
    table.add_column("stratum")
    table.add_column("rows", justify="right")
    table.add_column("events", justify="right")
    for level in levels[:STRATA_SHOWN]:
        name = ", ".join(f"{column}={value!r}" for column, value in level["values"].items())
        table.add_row(escape(name), f"{level['train_rows']:,}", f"{level['train_events']:,}")
    if len(levels) > STRATA_SHOWN:
        table.add_row(f"... and {len(levels) - STRATA_SHOWN} more", "", "")
    return table


def _linear_path(config: dict, fitted: bool) -> str:
    """How the checkpoint's linear path was set up."""
    if not config["linear_skip"] or not config["hidden"]:
        return "none (plain MLP)"
    if not fitted:
        return "random start, trained with the MLP"
    frozen = "kept fixed" if config["linear_frozen"] else "then trained with the MLP"
    return f"ridge-penalised linear fit (penalty {config['linear_penalty']}), {frozen}"
