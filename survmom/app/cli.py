"""The ``survmom`` command line: thin Typer commands mapping options to the library.

Nothing heavy is imported at module level (no torch, pandas or pyarrow), so ``survmom --help`` is fast.
Exit codes: 0 success, 1 internal error, 2 bad input or options (one line on stderr), 130 interrupted.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import functools
import gc
import json
import os
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Optional

import typer

app = typer.Typer(
    name="survmom",
    help="Train deep survival models (Cox, Weibull AFT) with a Momentum target network and memory bank.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

DEBUG_HELP = "Show the full traceback on errors."
FORMATS_HELP = (".csv, .tsv/.tab (also .gz, .bz2, .zst, .xz), .parquet, .feather/.arrow/.ipc, Stata .dta, "
                "SPSS .sav, SAS .sas7bdat/.xpt.")
DELIMITER_HELP = ("Delimiter of .csv/.tsv files (one character, or 'tab'); default: detected per file from its "
                  "first lines (comma, semicolon with decimal commas, or tab).")


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Import the heavy libraries (torch, pandas, pyarrow) with the cyclic garbage collector off.

    Importing them allocates hundreds of thousands of long-lived objects, and every burst of allocations
    starts a collection that finds nothing to free: ``import torch, pandas`` takes ~0.15 s less this way
    (2 cores). The objects alive afterwards (modules, classes, functions) are then frozen (``gc.freeze``),
    so that no later collection walks them again (the first one after the imports would take ~0.1 s), and
    the collector is back on, as the caller had it, before any data is read or trained on.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def _fail(message: str, code: int) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


OUT_OF_MEMORY = "out of memory; try a smaller --batch, --bank-size or --hidden, or fewer rows"


def _is_allocation_failure(error: Exception) -> bool:
    """torch reports a failed allocation as a RuntimeError (CPU) or its OutOfMemoryError subclass (GPU)."""
    text = str(error)
    return isinstance(error, RuntimeError) and ("can't allocate memory" in text or "out of memory" in text.lower())


# OS errors that are about the machine, not survmom: no space, no permission, read-only file system, quota.
_ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EACCES, errno.EPERM, errno.EROFS, errno.EDQUOT, errno.EFBIG}


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that Python's flush at exit does not fail on the closed pipe again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def handles_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn project errors into one line on stderr + exit 2; other errors into exit 1; --debug re-raises."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from survmom.errors import SurvmomError

        debug = kwargs.get("debug", False)
        try:
            return command(*args, **kwargs)
        except typer.Exit:
            raise
        except SurvmomError as error:
            if debug:
                raise
            _fail(str(error).replace("\n", " "), 2)
        except KeyboardInterrupt:
            if debug:
                raise
            _fail("interrupted", 130)
        except BrokenPipeError:
            # The reader of stdout went away (`survmom predict ... | head`): stop quietly, as a pipeline expects.
            _silence_stdout()
            raise typer.Exit(141) from None
        except MemoryError:
            if debug:
                raise
            _fail(OUT_OF_MEMORY, 2)
        except Exception as error:
            if debug:
                raise
            if _is_allocation_failure(error):
                _fail(OUT_OF_MEMORY, 2)
            if isinstance(error, OSError) and error.errno in _ENVIRONMENT_ERRNOS:
                where = f"{error.filename}: " if error.filename else ""
                _fail(f"{where}{error.strerror or error}", 2)
            _fail(f"internal error ({type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ''}); "
                  "rerun with --debug for the traceback", 1)

    return wrapper


def _explicit(ctx: typer.Context, name: str) -> bool:
    source = ctx.get_parameter_source(name)  # an enum of click (or of the click Typer vendors)
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")


@app.command()
@handles_errors
def train(
    ctx: typer.Context,
    data: Path = typer.Argument(..., help="Training data, one row per subject: " + FORMATS_HELP),
    time_col: str = typer.Option("time", help="Column with the event or censoring time (> 0 for weibull)."),
    event_col: str = typer.Option("event", help="Column with the event flag: 1/0, true/false, yes/no."),
    id_col: Optional[str] = typer.Option(None, help="Identifier column: not a feature, copied to predictions."),
    features: Optional[str] = typer.Option(None, help="Comma-separated feature columns (default: all others)."),
    exclude: Optional[str] = typer.Option(None, help="Comma-separated columns to leave out of the features."),
    categorical: Optional[str] = typer.Option(
        None, help="Comma-separated feature columns to treat as categories (codes such as a centre or ZIP)."
    ),
    numeric: Optional[str] = typer.Option(
        None, help="Comma-separated feature columns to treat as numbers (text must parse as numbers)."
    ),
    delimiter: Optional[str] = typer.Option(None, help=DELIMITER_HELP),
    loss: str = typer.Option("cox", help="Survival loss: cox (partial likelihood) or weibull (AFT)."),
    ties: str = typer.Option("efron", help="Cox tie handling: efron or breslow."),
    batch: Optional[int] = typer.Option(
        None, help="Rows per training step (default: 32; above 16,000 training rows: rows/500)."
    ),
    epochs: int = typer.Option(40, help="Maximum number of passes over the training rows."),
    lr: float = typer.Option(1e-3, help="AdamW learning rate."),
    weight_decay: float = typer.Option(1e-4, help="AdamW weight decay."),
    grad_clip: float = typer.Option(5.0, help="Scale each step's gradient to at most this L2 norm (inf: no clipping)."),
    hidden: str = typer.Option("64,64", help="Hidden layer widths, comma-separated ('' for a linear model)."),
    dropout: float = typer.Option(0.1, help="Dropout after each hidden layer (online network only)."),
    activation: str = typer.Option("relu", help="Hidden activation: relu, selu, gelu, silu, tanh or elu."),
    batchnorm: bool = typer.Option(False, "--batchnorm/--no-batchnorm", help="BatchNorm after each hidden layer."),
    linear_skip: bool = typer.Option(True, "--linear-skip/--no-linear-skip",
                                     help="Add a linear path: output = linear(x) + MLP(x), MLP starting at zero."),
    linear_init: bool = typer.Option(True, "--linear-init/--no-linear-init",
                                     help="Start the linear path (or a network without hidden layers) at a "
                                          "ridge-penalised linear Cox / Weibull AFT fit."),
    linear_penalty: float = typer.Option(
        0.1, help="Ridge penalty of that fit: mean negative log-likelihood + penalty/2 × ||w||² (standardised x)."
    ),
    linear_frozen: bool = typer.Option(True, "--linear-frozen/--no-linear-frozen",
                                       help="Keep the fitted linear path fixed; train only the MLP correction."),
    bank_steps: Optional[int] = typer.Option(None, help="Memory bank size in batches (bank = steps × batch)."),
    bank_size: Optional[int] = typer.Option(None, help="Memory bank size in samples (default: 2048); 0 disables."),
    rate: float = typer.Option(0.999, help="EMA rate m of the target network, in [0, 1]."),
    rate_schedule: str = typer.Option("constant", help="EMA rate schedule: constant or cosine (towards 1)."),
    rate_warmup: bool = typer.Option(True, "--rate-warmup/--no-rate-warmup",
                                      help="Warm the EMA rate up as min(m, (1+n)/(10+n)) over n updates."),
    val_frac: float = typer.Option(0.2, help="Fraction of rows held out for validation, stratified by event."),
    val: Optional[Path] = typer.Option(None, help="Validation file instead of a random split."),
    patience: Optional[int] = typer.Option(10, help="Stop after this many epochs without a better validation C-index."),
    seed: int = typer.Option(0, help="Random seed (split, initialisation, batches, dropout)."),
    device: str = typer.Option("auto", help="auto (CUDA when available), cpu or cuda."),
    threads: Optional[int] = typer.Option(
        None, help="CPU threads for training (default: 1, fastest for small batches; 0: torch's default)."
    ),
    out: Path = typer.Option(Path("model.pt"), "--out", "-o", help="Checkpoint file to write."),
    config: Optional[Path] = typer.Option(None, help="YAML file of options; flags given here override it."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display; warnings and errors only."),
    debug: bool = typer.Option(False, help=DEBUG_HELP),
) -> None:
    """Train a survival MLP inside the Momentum wrapper and save a resumable checkpoint."""
    from survmom.training.config import TrainConfig, load_yaml

    values: dict[str, Any] = {}
    if config is not None:
        values.update(load_yaml(config))
    names = [f for f in TrainConfig.__dataclass_fields__ if f in ctx.params]
    for name in names:
        if _explicit(ctx, name) or name not in values:
            values[name] = ctx.params[name]
    for name in ("val", "out"):
        if values.get(name) is not None:
            values[name] = str(values[name])
    resolved = TrainConfig.from_dict(values, source=str(config) if config else "options")
    _train_or_resume(lambda make: _workflow().train_from_file(resolved, data, make))


@app.command()
@handles_errors
def resume(
    checkpoint: Path = typer.Argument(..., help="Checkpoint written by survmom train."),
    epochs: Optional[int] = typer.Option(None, help="Train until this many epochs in total (default: as saved)."),
    data: Optional[Path] = typer.Option(None, help="Training data to use instead of the saved path (same schema)."),
    delimiter: Optional[str] = typer.Option(None, help=DELIMITER_HELP),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write to this file (default: the checkpoint)."),
    device: Optional[str] = typer.Option(None, help="auto, cpu or cuda (default: as saved)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display; warnings and errors only."),
    debug: bool = typer.Option(False, help=DEBUG_HELP),
) -> None:
    """Continue training from a checkpoint, exactly where it stopped."""
    overrides: dict[str, Any] = {"quiet": quiet}
    if delimiter is not None or data is not None:  # the saved one is for the saved data file only
        overrides["delimiter"] = delimiter
    if device is not None:
        overrides["device"] = device
    if out is not None:
        overrides["out"] = str(out)
    _train_or_resume(
        lambda make: _workflow().resume_from_checkpoint(checkpoint, epochs, data, out, make, overrides)
    )


def _workflow():
    with _collector_paused():
        from survmom.training import workflow

    return workflow


def _train_or_resume(run: Callable[[Callable[..., Any]], Any]) -> None:
    from survmom.app.progress import make_reporter

    result = run(lambda cfg: make_reporter(cfg.quiet))
    metric = "n/a" if result.best_metric is None else f"{result.best_metric:.4f}"
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


@app.command()
@handles_errors
def predict(
    checkpoint: Path = typer.Argument(..., help="Checkpoint written by survmom train."),
    data: Path = typer.Argument(..., help="Rows to predict, with the training feature columns: " + FORMATS_HELP),
    out: Optional[Path] = typer.Option(
        None, "--out", "-o", help="Output .csv, .tsv, .parquet or .feather (default: CSV on stdout)."
    ),
    times: Optional[str] = typer.Option(None, help="Comma-separated times for surv_<t> columns (training time unit)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No warnings and no summary line; errors only."),
    delimiter: Optional[str] = typer.Option(None, help=DELIMITER_HELP),
    debug: bool = typer.Option(False, help=DEBUG_HELP),
) -> None:
    """Predict with the target network: risk, median time and survival probabilities."""
    from survmom.training.config import parse_list

    with _collector_paused():
        from survmom.app.predict import predict_file

    def warn(message: str) -> None:
        typer.echo(f"warning: {message}", err=True)

    rows = predict_file(checkpoint, data, out, parse_list(times, float, "--times"), warn=None if quiet else warn,
                        delimiter=delimiter)
    if out is not None and not quiet:
        typer.echo(f"wrote {rows} prediction(s) to {out}", err=True)


@app.command()
@handles_errors
def inspect(
    checkpoint: Path = typer.Argument(..., help="Checkpoint written by survmom train."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
    debug: bool = typer.Option(False, help=DEBUG_HELP),
) -> None:
    """Summarise a checkpoint: config, data schema, progress, validation, bank, EMA, versions."""
    with _collector_paused():
        from survmom.app.summary import checkpoint_summary, render_summary

    summary = checkpoint_summary(checkpoint)
    if as_json:
        _write_json(summary)
    else:
        render_summary(summary)


@app.command()
@handles_errors
def evaluate(
    checkpoint: Path = typer.Argument(..., help="Checkpoint written by survmom train."),
    data: Path = typer.Argument(..., help="Labelled rows with the time and event columns: " + FORMATS_HELP),
    times: Optional[str] = typer.Option(
        None, help="Comma-separated evaluation times (default: 25/50/75th percentiles of training event times)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON on stdout."),
    delimiter: Optional[str] = typer.Option(None, help=DELIMITER_HELP),
    debug: bool = typer.Option(False, help=DEBUG_HELP),
) -> None:
    """Evaluate the target network: Harrell's and Uno's C, AUC(t), Brier(t) and integrated Brier score."""
    from survmom.training.config import parse_list

    with _collector_paused():
        from survmom.app.evaluate import evaluate_file, render_evaluation

    def warn(message: str) -> None:
        typer.echo(f"warning: {message}", err=True)

    result = evaluate_file(checkpoint, data, parse_list(times, float, "--times"), delimiter=delimiter, warn=warn)
    if as_json:
        _write_json(result)
    else:
        render_evaluation(result)


def _write_json(value: Any) -> None:
    """Strict JSON on stdout: NaN and infinities (an undefined metric, e.g. C-index without events) become null,
    which every JSON parser reads; anything else that is not JSON (paths, numpy scalars) is written as text."""
    sys.stdout.write(json.dumps(_json_safe(value), indent=2, default=str, allow_nan=False) + "\n")


def _json_safe(value: Any) -> Any:
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    return value


def main() -> None:
    """Console-script entry point.

    When a command has finished (its files written and closed, or its error reported), the process ends
    without the interpreter's teardown: after torch, pandas and pyarrow are loaded, tearing down their
    modules and objects takes 0.15-0.4 s of every command, and frees memory that the operating system takes
    back anyway. The standard streams are flushed and the ``atexit`` handlers run first; the exit code is the
    command's. Anything else (an exception that escaped the commands) takes the usual way out.
    """
    try:
        app()
    except SystemExit as done:
        gc.freeze()  # should the fast exit below not be taken, the final collection skips these objects
        _exit_now(done.code)
        raise


def _exit_now(code: Any) -> None:
    """Flush stdout and stderr, run the ``atexit`` handlers and end the process with ``code`` (as ``sys.exit``
    reads it: None is 0, an int itself, anything else is printed to stderr and gives 1).

    Returns without exiting while another non-daemon thread runs: the interpreter's own exit waits for it.
    """
    if any(thread.is_alive() and not thread.daemon and thread is not threading.main_thread()
           for thread in threading.enumerate()):
        return
    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    status = 0 if code is None else code
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nothing more can reach its reader
            if stream is sys.stdout and status == 0:
                status = 141
    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)
    if run_exit_handlers is not None:
        run_exit_handlers()
    os._exit(status)


if __name__ == "__main__":
    main()
