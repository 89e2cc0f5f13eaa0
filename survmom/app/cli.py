"""The ``survmom`` command line: thin Typer commands mapping options to the library.

Nothing heavy is imported at module level (no torch, pandas or pyarrow), so ``survmom --help`` is fast.
Exit codes: 0 success, 1 internal error, 2 bad input or options (one line on stderr), 130 interrupted.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from inspect import Parameter, Signature, signature
from pathlib import Path
from typing import Any, Optional

import typer

from survmom.app.cli_common import (
    DEBUG_HELP,
    DELIMITER_HELP,
    ENCODING_HELP,
    FORMATS_HELP,
    SHEET_HELP,
    handles_errors,
    is_main_process,
    write_json,
)
from survmom.app.cli_common import collector_paused as _collector_paused
from survmom.app.cli_common import warn as _warn
from survmom.app.plot_cli import REPEATS_HELP, SEED_HELP, check_figure_request, draw_importance, plot_app
from survmom.choices import DEVICES
from survmom.training.config import OPTION_TYPES, TrainConfig

app = typer.Typer(
    name="survmom",
    help="Train deep survival models (Cox, Weibull AFT) with a Momentum target network and memory bank.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

app.add_typer(plot_app, name="plot")



def _print_version(value: bool) -> None:
    if value:
        from survmom import __version__

        typer.echo(f"survmom {__version__}")
        raise typer.Exit()


@app.callback()
def _survmom(
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="Print survmom's version and exit."),
) -> None:
    """Train deep survival models (Cox, Weibull AFT) with a Momentum target network and memory bank."""


def _explicit(ctx: typer.Context, name: str) -> bool:
    source = ctx.get_parameter_source(name)  # an enum of click (or of the click Typer vendors)
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")


def _config_options(overrides: dict[str, tuple[Any, str | None]] | None = None) -> Callable[..., Any]:
    """Give a command one option per :class:`~survmom.training.config.TrainConfig` field, with the field's
    default, help and option names, placed before the command's own options; the command takes them as
    ``**options``. ``overrides``: only these fields, each with its own (default, help); help None: the field's.
    """

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        own = [p for p in signature(command, eval_str=True).parameters.values() if p.kind is not p.VAR_KEYWORD]
        first = next(i for i, p in enumerate(own) if isinstance(p.default, typer.models.OptionInfo))
        added = []
        for field in dataclasses.fields(TrainConfig):
            if overrides is None:
                default = field.default_factory() if field.default is dataclasses.MISSING else field.default
                added.append(_option(field, default, field.metadata["help"]))
            elif field.name in overrides:
                default, help_ = overrides[field.name]
                added.append(_option(field, default, help_ or field.metadata["help"]))
        parameters = [*own[:first], *added, *own[first:]]
        command.__signature__ = Signature(  # type: ignore[attr-defined]
            [p if p.name == "ctx" else p.replace(kind=p.KEYWORD_ONLY) for p in parameters])
        return command

    return decorate


def _option(field: dataclasses.Field, default: Any, help_: str) -> Parameter:
    """The Typer option of a config field: a list is comma-separated text (``--hidden 64,64``), a file path a
    Path; the option names are ``--field-name`` (``--x/--no-x`` for a flag) unless the field gives its own."""
    kind, _ = OPTION_TYPES[field.name]
    if field.metadata["path"]:
        kind = Path
    elif kind is list:
        kind = str
        default = default if default is None else ",".join(map(str, default))
    option = typer.Option(default, *field.metadata["flags"], help=help_)
    return Parameter(field.name, Parameter.KEYWORD_ONLY, default=option,
                     annotation=kind if default is not None else Optional[kind])


@app.command()
@handles_errors
@_config_options()
def train(
    ctx: typer.Context,
    data: Path = typer.Argument(..., help="Training data, one row per subject: " + FORMATS_HELP),
    config: Optional[Path] = typer.Option(None, help="YAML file of options; flags given here override it."),
    debug: bool = typer.Option(False, help=DEBUG_HELP),
    **options: Any,
) -> None:
    """Train a survival MLP inside the Momentum wrapper and save a resumable checkpoint."""
    from survmom.training.config import load_yaml

    values: dict[str, Any] = {}
    if config is not None:
        values.update(load_yaml(config))
    for name, value in options.items():
        if _explicit(ctx, name) or name not in values:
            values[name] = str(value) if isinstance(value, Path) else value
    resolved = TrainConfig.from_dict(values, source=str(config) if config else "options")
    if _launches(resolved.nproc):
        return
    _train_or_resume(lambda make: _workflow().train_from_file(resolved, data, make))


@app.command()
@handles_errors
@_config_options({
    "epochs": (None, "Train until this many epochs in total (default: as saved)."),
    "out": (None, "Write to this file (default: the checkpoint)."),
    "device": (None, f"{', '.join(DEVICES[:-1])} or {DEVICES[-1]} (default: as saved)."),
    "quiet": (False, None),
    "patience": (None, "Allow this many more epochs without a better validation C-index, counted from the resume "
                       "point (default: as saved, with the count saved: a run that stopped early stops again at the "
                       "next epoch that is not better)."),
    "nproc": (None, "Continue with this many processes on this machine (default: as saved, the number training ran "
                       "with; see train --nproc)."),
    "sheet": (None, "Sheet of the --data workbook (default: as training read the saved file; the first sheet of "
                    "another file)."),
    "delimiter": (None, "Delimiter of the --data file (default: as training read the saved file; detected for "
                        "another file)."),
    "encoding": (None, "Text encoding of the --data file (default: as training read the saved file; UTF-8 or by "
                       "byte-order mark for another file)."),
})
def resume(
    checkpoint: Path = typer.Argument(..., help="Checkpoint written by survmom train."),
    data: Optional[Path] = typer.Option(None, help="Training data to use instead of the saved path (same schema)."),
    debug: bool = typer.Option(False, help=DEBUG_HELP),
    **options: Any,
) -> None:
    """Continue training from a checkpoint, exactly where it stopped."""
    epochs, out = options.pop("epochs"), options["out"]
    overrides = {name: str(value) if isinstance(value, Path) else value
                 for name, value in options.items() if value is not None}
    if data is not None:  # the saved sheet is the saved file's: another file's first sheet is read
        overrides.setdefault("sheet", None)
    if data is not None:  # the saved delimiter and encoding are the saved file's: another is detected on its own
        overrides.setdefault("delimiter", None)
        overrides.setdefault("encoding", None)
    if _launches(overrides["nproc"] if "nproc" in overrides else _saved_nproc(checkpoint)):
        return
    _train_or_resume(lambda make: _workflow().resume_from_checkpoint(checkpoint, epochs, data, out, make, overrides))


def _workflow():
    with _collector_paused():
        from survmom.training import workflow

    return workflow


def _launches(nproc: int) -> bool:
    """With ``--nproc N`` > 1 outside torchrun: run this same command as N ranks on this machine (torch's
    launcher API; each rank sees torchrun's environment and trains) and return True when they are done."""
    from survmom.training.distributed import launch_here, world_size

    if nproc <= 1 or world_size() > 1:
        return False
    launch_here(nproc, sys.argv[1:])
    return True


def _saved_nproc(checkpoint: Path) -> int:
    """The ``--nproc`` a checkpoint was trained with (1 where it cannot be read: resume then says why)."""
    from survmom.errors import SurvmomError
    from survmom.training.checkpoint import load_state

    try:
        return int(load_state(checkpoint)["config"].get("nproc", 1))
    except (SurvmomError, TypeError, ValueError, AttributeError):
        return 1


def _train_or_resume(run: Callable[[Callable[..., Any]], Any]) -> None:
    from survmom.app.progress import make_reporter

    main = is_main_process()
    result = run(lambda cfg: make_reporter(cfg.quiet, silent=not main))
    if not main:
        if result.interrupted:
            raise typer.Exit(130)
        return
    metric = "n/a" if result.best_metric is None else f"{result.best_metric:.4f}"
    if result.ensemble > 1:
        _ensemble_done(result)
        return
    if result.interrupted:
        typer.echo(f"interrupted after {result.epochs_done} complete epoch(s); resumable checkpoint saved to "
                   f"{result.checkpoint} (continue with: survmom resume {result.checkpoint})", err=True)
        raise typer.Exit(130)
    stop = " (early stopping)" if result.stopped_early else ""
    if result.best_metric is None:  # nothing validated: predictions come from the last epoch's target network
        typer.echo(f"done: {result.epochs_done} epoch(s){stop}; no validation C-index (no validation rows, no "
                   f"event among them, or no pair of them that can be compared), so the last epoch's target network "
                   f"is kept; checkpoint {result.checkpoint}", err=True)
        return
    best = f"{result.best_epoch} (the linear start: no trained epoch beat it)" if result.best_epoch == 0 else (
        str(result.best_epoch))
    typer.echo(f"done: {result.epochs_done} epoch(s){stop}; best epoch {best}, validation C-index "
               f"{metric}; checkpoint {result.checkpoint}", err=True)


def _ensemble_done(result: Any) -> None:
    """The last line of a cross-fitted ensemble's training (or its interruption)."""
    if result.interrupted:
        typer.echo(f"interrupted in ensemble member {len(result.members) + 1} of {result.ensemble} after "
                   f"{result.epochs_done} complete epoch(s) of it; resumable checkpoint saved to {result.checkpoint} "
                   f"(continue with: survmom resume {result.checkpoint})", err=True)
        raise typer.Exit(130)
    scores = [c for _, c in result.members if c is not None]
    shown = ", ".join("n/a" if c is None else f"{c:.4f}" for _, c in result.members)
    mean = f" (mean {sum(scores) / len(scores):.4f}, each on its own fold)" if scores else ""
    typer.echo(f"done: ensemble of {result.ensemble} members; validation C-index per member {shown}{mean}; "
               f"checkpoint {result.checkpoint}", err=True)


PREDICT_HELP = (
    "Predict with the target network: risk, median time and survival probabilities.\n\n"
    "A stratified model (--strata) reads its stratum columns and predicts S(t) and the median from each row's "
    "stratum's baseline. Counting-process rows are predicted one by one: the hazard of that interval's covariates, "
    "S(t) from time 0 as if they held from the start.")
EVALUATE_HELP = (
    "Evaluate the target network: Harrell's and Uno's C, AUC(t), Brier(t), integrated Brier, calibration.\n\n"
    "A model with a study design reads its entry, weight and stratum columns from the file. Its C-index is the "
    "design's concordance: with entry times a row is compared only with the events in its interval (entry, time] "
    "(time-dependent concordance, Therneau & Atkinson; counting-process rows are scored per interval), with "
    "weights a pair (i, j) counts w_i w_j, with strata only rows of one stratum are compared. Brier(t) and the "
    "integrated Brier score are weighted (null with entry times); the C-index's CI, Uno's C, AUC(t) and the "
    "calibration numbers, which do not take the design, are null, and the JSON says why (metric_note, "
    "calibration_note).")


@app.command(help=PREDICT_HELP)
@handles_errors
def predict(
    checkpoint: Path = typer.Argument(..., help="Checkpoint written by survmom train."),
    data: Path = typer.Argument(..., help="Rows to predict, with the training feature columns: " + FORMATS_HELP),
    out: Optional[Path] = typer.Option(
        None, "--out", "-o", help="Output .csv, .tsv, .parquet, .feather or .xlsx (default: CSV on stdout)."
    ),
    times: Optional[str] = typer.Option(None, help="Comma-separated times for surv_<t> columns (training time unit: "
                                                  "the time column's, or train's --time-unit for dates)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No warnings and no summary line; errors only."),
    delimiter: Optional[str] = typer.Option(None, help=DELIMITER_HELP),
    encoding: Optional[str] = typer.Option(None, help=ENCODING_HELP),
    sheet: Optional[str] = typer.Option(None, help=SHEET_HELP),
    debug: bool = typer.Option(False, help=DEBUG_HELP),
) -> None:
    """Predict with the target network: risk, median time and survival probabilities."""
    from survmom.training.config import parse_list

    with _collector_paused():
        from survmom.app.predict import predict_file

    rows = predict_file(checkpoint, data, out, parse_list(times, float, "--times"), warn=None if quiet else _warn,
                        delimiter=delimiter, encoding=encoding, sheet=sheet)
    if out is not None and not quiet:
        typer.echo(f"wrote {rows} prediction(s) to {out}", err=True)


@app.command()
@handles_errors
def inspect(
    checkpoint: Path = typer.Argument(..., help="Checkpoint written by survmom train."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
    debug: bool = typer.Option(False, help=DEBUG_HELP),
) -> None:
    """Summarise a checkpoint: config, data schema, design (strata), progress, validation, bank, EMA, versions."""
    with _collector_paused():
        from survmom.app.summary import checkpoint_summary, render_summary

    summary = checkpoint_summary(checkpoint)
    if as_json:
        write_json(summary)
    else:
        render_summary(summary)


@app.command(help=EVALUATE_HELP)
@handles_errors
def evaluate(
    checkpoint: Path = typer.Argument(..., help="Checkpoint written by survmom train."),
    data: Path = typer.Argument(..., help="Labelled rows with the time and event columns: " + FORMATS_HELP),
    times: Optional[str] = typer.Option(
        None, help="Comma-separated evaluation times, in the training time unit (default: 25/50/75th percentiles "
                   "of training event times)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON on stdout."),
    delimiter: Optional[str] = typer.Option(None, help=DELIMITER_HELP),
    encoding: Optional[str] = typer.Option(None, help=ENCODING_HELP),
    sheet: Optional[str] = typer.Option(None, help=SHEET_HELP),
    debug: bool = typer.Option(False, help=DEBUG_HELP),
) -> None:
    """Evaluate the target network: Harrell's and Uno's C, AUC(t), Brier(t), integrated Brier, calibration."""
    from survmom.training.config import parse_list

    with _collector_paused():
        from survmom.app.evaluate import evaluate_file, render_evaluation

    result = evaluate_file(checkpoint, data, parse_list(times, float, "--times"), delimiter=delimiter,
                           encoding=encoding, sheet=sheet, warn=_warn)
    if as_json:
        write_json(result)
    else:
        render_evaluation(result)


@app.command()
@handles_errors
def explain(
    checkpoint: Path = typer.Argument(..., help="Checkpoint written by survmom train."),
    data: Path = typer.Argument(..., help="Labelled rows with the time and event columns (preferably rows the "
                                          "model was not trained on): " + FORMATS_HELP),
    repeats: int = typer.Option(5, help=REPEATS_HELP),
    seed: int = typer.Option(0, help=SEED_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the importances as JSON on stdout."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Also draw the importances to this .png, .svg "
                                                                 "or .pdf file."),
    delimiter: Optional[str] = typer.Option(None, help=DELIMITER_HELP),
    encoding: Optional[str] = typer.Option(None, help=ENCODING_HELP),
    sheet: Optional[str] = typer.Option(None, help=SHEET_HELP),
    debug: bool = typer.Option(False, help=DEBUG_HELP),
) -> None:
    """Permutation importance of each input column: the drop in C (Harrell's, or with --entry-col, --weight-col
    or --strata the design's, as evaluate) when its rows are shuffled."""
    if out is not None:
        check_figure_request(out, as_json, [checkpoint, data])
    with _collector_paused():
        from survmom.app.explain import explain_file, render_importance

    result = explain_file(checkpoint, data, repeats=repeats, seed=seed, delimiter=delimiter, encoding=encoding,
                          sheet=sheet,
                          warn=_warn)
    render_importance(result)
    if out is not None:
        draw_importance(result, out)
    if as_json:
        write_json(result)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
