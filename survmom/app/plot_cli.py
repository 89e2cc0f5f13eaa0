"""``survmom plot ...``: thin Typer commands over :mod:`survmom.app.plots` (one module per figure).

Every command takes ``-o FILE`` (.png, .svg or .pdf, checked before any work and written atomically) and/or
``--json`` (the numbers behind the figure on stdout). Nothing heavy is imported until a command runs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

import typer

from survmom.app.cli_common import (
    DEBUG_HELP,
    DELIMITER_HELP,
    ENCODING_HELP,
    FORMATS_HELP,
    SHEET_HELP,
    collector_paused,
    handles_errors,
    warn,
    write_json,
)

plot_app = typer.Typer(
    name="plot",
    help="Draw figures of a checkpoint (and a data file): .png, .svg or .pdf by the suffix of -o.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

FIGURE_OUT_HELP = "Write the figure to this .png, .svg or .pdf file."
FIGURE_JSON_HELP = "Print the numbers behind the figure as JSON on stdout."
REPEATS_HELP = "Permutations of the rows per column; the 95% interval is a t-interval over them."
SEED_HELP = "Seed of the random permutations (numpy default_rng)."


def check_figure_request(out: Optional[Path], as_json: bool, inputs: list[Path]) -> None:
    """Before any work: -o or --json asked for (else ConfigError), and -o a figure file that can be written."""
    from survmom.errors import ConfigError

    if out is None and not as_json:
        raise ConfigError("give -o FILE.png (.svg, .pdf) or --json")
    if out is not None:
        from survmom.app.figures import check_figure_path

        check_figure_path(out, inputs)


def figure_outputs(data: dict[str, Any], draw: Callable[[dict[str, Any]], Any], out: Optional[Path], as_json: bool,
                    what: str) -> None:
    """Draw ``data`` and write it to ``out`` (a line on stderr says so); then its JSON on stdout if asked."""
    if out is not None:
        from survmom.app.figures import write_figure

        write_figure(draw(data), out)
        typer.echo(f"wrote {what} to {out}", err=True)
    if as_json:
        write_json(data)


@plot_app.command("history")
@handles_errors
def plot_history(
    checkpoint: Path = typer.Argument(..., help="Checkpoint written by survmom train."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help=FIGURE_OUT_HELP),
    as_json: bool = typer.Option(False, "--json", help=FIGURE_JSON_HELP),
    member: int = typer.Option(1, help="The member of a cross-fitted ensemble (--ensemble) to draw, from 1."),
    debug: bool = typer.Option(False, help=DEBUG_HELP),
) -> None:
    """Training loss and validation C-index per epoch; the linear start as epoch 0, the best epoch marked."""
    check_figure_request(out, as_json, [checkpoint])
    with collector_paused():
        from survmom.app.plots.history import draw_history, history_data

    figure_outputs(history_data(checkpoint, member), draw_history, out, as_json, "the training history")


@plot_app.command("survival")
@handles_errors
def plot_survival(
    checkpoint: Path = typer.Argument(..., help="Checkpoint written by survmom train."),
    data: Path = typer.Argument(..., help="Rows with the training feature columns: " + FORMATS_HELP),
    ids: Optional[str] = typer.Option(None, help="Comma-separated ids (of the training --id-col) of the rows to "
                                                 "draw."),
    rows: Optional[int] = typer.Option(None, help="Draw the first N rows of the file (default 5, at most 7)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help=FIGURE_OUT_HELP),
    as_json: bool = typer.Option(False, "--json", help=FIGURE_JSON_HELP),
    delimiter: Optional[str] = typer.Option(None, help=DELIMITER_HELP),
    encoding: Optional[str] = typer.Option(None, help=ENCODING_HELP),
    sheet: Optional[str] = typer.Option(None, help=SHEET_HELP),
    debug: bool = typer.Option(False, help=DEBUG_HELP),
) -> None:
    """Predicted survival curves S(t) of a few rows, medians marked, up to the longest training follow-up."""
    from survmom.training.config import parse_list

    check_figure_request(out, as_json, [checkpoint, data])
    with collector_paused():
        from survmom.app.plots.survival import draw_survival, survival_data

    chosen = parse_list(ids, str, "--ids") if ids is not None else None
    numbers = survival_data(checkpoint, data, chosen, rows, delimiter=delimiter, encoding=encoding, sheet=sheet,
                            warn=warn)
    figure_outputs(numbers, draw_survival, out, as_json, f"the survival curves of {len(numbers['rows'])} row(s)")


@plot_app.command("km")
@handles_errors
def plot_km(
    checkpoint: Path = typer.Argument(..., help="Checkpoint written by survmom train."),
    data: Path = typer.Argument(..., help="Labelled rows with the time and event columns: " + FORMATS_HELP),
    groups: int = typer.Option(3, help="Number of risk groups, cut at quantiles of the training risks (2 to 7)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help=FIGURE_OUT_HELP),
    as_json: bool = typer.Option(False, "--json", help=FIGURE_JSON_HELP),
    delimiter: Optional[str] = typer.Option(None, help=DELIMITER_HELP),
    encoding: Optional[str] = typer.Option(None, help=ENCODING_HELP),
    sheet: Optional[str] = typer.Option(None, help=SHEET_HELP),
    debug: bool = typer.Option(False, help=DEBUG_HELP),
) -> None:
    """Kaplan-Meier curves of predicted-risk groups with 95% bands, numbers at risk and the log-rank test."""
    check_figure_request(out, as_json, [checkpoint, data])
    with collector_paused():
        from survmom.app.plots.km import draw_km, km_data

    numbers = km_data(checkpoint, data, groups, delimiter=delimiter, encoding=encoding, sheet=sheet, warn=warn)
    figure_outputs(numbers, draw_km, out, as_json, f"Kaplan-Meier curves of {groups} risk groups")


@plot_app.command("calibration")
@handles_errors
def plot_calibration(
    checkpoint: Path = typer.Argument(..., help="Checkpoint written by survmom train."),
    data: Path = typer.Argument(..., help="Labelled rows with the time and event columns: " + FORMATS_HELP),
    time: Optional[str] = typer.Option(None, "--time", help="The time t at which predicted and observed S(t) are "
                                       "compared (training time unit; required)."),
    bins: int = typer.Option(10, "--bins", help="Groups of rows by quantiles of predicted S(t) (10: deciles)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help=FIGURE_OUT_HELP),
    as_json: bool = typer.Option(False, "--json", help=FIGURE_JSON_HELP),
    delimiter: Optional[str] = typer.Option(None, help=DELIMITER_HELP),
    encoding: Optional[str] = typer.Option(None, help=ENCODING_HELP),
    sheet: Optional[str] = typer.Option(None, help=SHEET_HELP),
    debug: bool = typer.Option(False, help=DEBUG_HELP),
) -> None:
    """Calibration at one time: Kaplan-Meier S(t) in groups of predicted S(t), smoothed curve, ICI/E50/E90."""
    from survmom.errors import ConfigError
    from survmom.training.config import parse_list

    check_figure_request(out, as_json, [checkpoint, data])
    times = parse_list(time, float, "--time")
    if not times or len(times) != 1:
        raise ConfigError("--time: give one time t at which to compare predicted and observed S(t), e.g. --time 365")
    with collector_paused():
        from survmom.app.plots.calibration import calibration_numbers, draw_calibration, summary_line

    numbers = calibration_numbers(checkpoint, data, times[0], groups=bins, delimiter=delimiter, encoding=encoding,
                                  sheet=sheet,
                                  warn=warn)
    typer.echo(summary_line(numbers), err=True)
    figure_outputs(numbers, draw_calibration, out, as_json, "the calibration plot")


def draw_importance(result: dict[str, Any], out: Path) -> None:
    """Draw permutation importances (``survmom explain``'s result) to ``out``; a line on stderr says so."""
    with collector_paused():
        from survmom.app.plots.importance import draw_importance

    draw_importance(result, out)
    typer.echo(f"wrote the permutation importance figure to {out}", err=True)


@plot_app.command("importance")
@handles_errors
def plot_importance(
    checkpoint: Path = typer.Argument(..., help="Checkpoint written by survmom train."),
    data: Path = typer.Argument(..., help="Labelled rows with the time and event columns: " + FORMATS_HELP),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help=FIGURE_OUT_HELP),
    as_json: bool = typer.Option(False, "--json", help=FIGURE_JSON_HELP),
    repeats: int = typer.Option(5, help=REPEATS_HELP),
    seed: int = typer.Option(0, help=SEED_HELP),
    delimiter: Optional[str] = typer.Option(None, help=DELIMITER_HELP),
    encoding: Optional[str] = typer.Option(None, help=ENCODING_HELP),
    sheet: Optional[str] = typer.Option(None, help=SHEET_HELP),
    debug: bool = typer.Option(False, help=DEBUG_HELP),
) -> None:
    """Permutation importance of each input column (as survmom explain), drawn sorted with 95% intervals."""
    check_figure_request(out, as_json, [checkpoint, data])
    with collector_paused():
        from survmom.app.plots.importance import explain_file

    result = explain_file(checkpoint, data, repeats=repeats, seed=seed, delimiter=delimiter, encoding=encoding,
                          sheet=sheet,
                          warn=warn)
    if out is not None:
        draw_importance(result, out)
    if as_json:
        write_json(result)


@plot_app.command("effect")
@handles_errors
def plot_effect(
    checkpoint: Path = typer.Argument(..., help="Checkpoint written by survmom train."),
    data: Path = typer.Argument(..., help="Rows whose other columns are averaged over: " + FORMATS_HELP),
    feature: str = typer.Option(..., help="The input column whose effect is drawn."),
    time: Optional[float] = typer.Option(None, help="Also draw the effect on S(time), the predicted survival "
                                                    "(training time unit)."),
    grid: int = typer.Option(30, help="Values of a numeric column: evenly spaced from its 5th to 95th percentile "
                                      "in the file (its distinct values there, when it has no more)."),
    sample: int = typer.Option(50, help="Rows whose own curves (ICE) are drawn faint behind the mean."),
    seed: int = typer.Option(0, help="Seed of the sample of rows (numpy default_rng)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help=FIGURE_OUT_HELP),
    as_json: bool = typer.Option(False, "--json", help=FIGURE_JSON_HELP),
    delimiter: Optional[str] = typer.Option(None, help=DELIMITER_HELP),
    encoding: Optional[str] = typer.Option(None, help=ENCODING_HELP),
    sheet: Optional[str] = typer.Option(None, help=SHEET_HELP),
    debug: bool = typer.Option(False, help=DEBUG_HELP),
) -> None:
    """Partial dependence of the risk (and of S(t)) on one input column, with individual rows' curves."""
    check_figure_request(out, as_json, [checkpoint, data])
    with collector_paused():
        from survmom.app.plots.effect import draw_effect, partial_dependence

    result = partial_dependence(checkpoint, data, feature, time=time, grid=grid, sample=sample, seed=seed,
                                delimiter=delimiter, encoding=encoding, sheet=sheet, warn=warn)
    if out is not None:
        draw_effect(result, out)
        typer.echo(f"wrote the partial dependence figure of '{feature}' to {out}", err=True)
    if as_json:
        write_json(result)
