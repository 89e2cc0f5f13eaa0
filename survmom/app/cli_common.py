"""What every survmom command shares: error handling and exit codes, warnings and JSON output, the lazy
import of the heavy libraries, and the help texts of the options that several commands take."""

from __future__ import annotations

import contextlib
import errno
import functools
import gc
import json
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

import typer

from survmom.training.config import TrainConfig

DEBUG_HELP = "Show the full traceback on errors."
FORMATS_HELP = (".csv, .tsv/.tab, .txt/.dat (also .gz, .bz2, .zst, .xz, .zip), .parquet, .feather/.arrow/.ipc, .orc, "
                "JSON Lines .jsonl/.ndjson (also .gz), Stata .dta, SPSS .sav, SAS .sas7bdat/.xpt, Excel .xlsx/.xlsm.")
DELIMITER_HELP = TrainConfig.__dataclass_fields__["delimiter"].metadata["help"]
ENCODING_HELP = TrainConfig.__dataclass_fields__["encoding"].metadata["help"]
SHEET_HELP = TrainConfig.__dataclass_fields__["sheet"].metadata["help"]


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Import the heavy libraries (torch, pandas, pyarrow) with the cyclic garbage collector off.

    Importing them allocates hundreds of thousands of long-lived objects, and every burst of allocations
    starts a collection that finds nothing to free. The objects alive afterwards (modules, classes,
    functions) are then frozen (``gc.freeze``), so that no later collection walks them again, and the
    collector is back on, as the caller had it, before any data is read or trained on. What this saves end
    to end is in BENCHMARKS.md.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def fail(message: str, code: int) -> None:
    if is_main_process():  # in a distributed run every rank stops with the same error: rank 0 tells it
        typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def is_main_process() -> bool:
    """False in the ranks other than 0 of a torchrun launch (``RANK`` set by torchrun)."""
    return os.environ.get("RANK", "0") == "0"


OUT_OF_MEMORY = "out of memory; try a smaller --batch, --bank-size or --hidden, or fewer rows"


def is_allocation_failure(error: Exception) -> bool:
    """torch reports a failed allocation as a RuntimeError (CPU) or its OutOfMemoryError subclass (GPU)."""
    text = str(error)
    return isinstance(error, RuntimeError) and ("can't allocate memory" in text or "out of memory" in text.lower())


# OS errors that are about the machine, not survmom: no space, no permission, read-only file system, quota.
_ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EACCES, errno.EPERM, errno.EROFS, errno.EDQUOT, errno.EFBIG}


def silence_stdout() -> None:
    """Point stdout at /dev/null, so that Python's flush at exit does not fail on the closed pipe again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


class ClosedOutput:
    """``sys.stdout`` of a process started with its standard output closed (``survmom predict ... >&-``): Python
    leaves it None; writing data to it is then a one-line error instead of an AttributeError."""

    def _refuse(self, *_: Any) -> Any:
        from survmom.errors import ConfigError

        raise ConfigError("standard output is closed; write to a file with -o/--out, or redirect the output")

    write = writelines = _refuse
    buffer = property(_refuse)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def handles_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn project errors into one line on stderr + exit 2; other errors into exit 1; --debug re-raises."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from survmom.errors import SurvmomError

        debug = kwargs.get("debug", False)
        if sys.stdout is None:
            sys.stdout = ClosedOutput()  # type: ignore[assignment]
        try:
            return command(*args, **kwargs)
        except typer.Exit:
            raise
        except SurvmomError as error:
            if debug:
                raise
            fail(str(error).replace("\n", " "), 2)
        except KeyboardInterrupt:
            if debug:
                raise
            fail("interrupted", 130)
        except BrokenPipeError:
            # The reader of stdout went away (`survmom predict ... | head`): stop quietly, as a pipeline expects.
            silence_stdout()
            raise typer.Exit(141) from None
        except MemoryError:
            if debug:
                raise
            fail(OUT_OF_MEMORY, 2)
        except Exception as error:
            if debug:
                raise
            if is_allocation_failure(error):
                fail(OUT_OF_MEMORY, 2)
            if os.environ.get("WORLD_SIZE", "1") != "1" and is_peer_failure(error):
                fail("another process of this distributed run stopped or cannot be reached "
                     f"({str(error).splitlines()[0][:160]}); under torchrun --max-restarts K the run restarts from "
                     "its last checkpoint", 1)
            if isinstance(error, OSError) and error.errno in _ENVIRONMENT_ERRNOS:
                where = f"{error.filename}: " if error.filename else ""
                fail(f"{where}{error.strerror or error}", 2)
            fail(f"internal error ({type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ''}); "
                  "rerun with --debug for the traceback", 1)

    return wrapper


def is_peer_failure(error: Exception) -> bool:
    """Whether torch.distributed raised ``error`` because a peer process died or hung (gloo reports it as a
    RuntimeError naming its transport)."""
    import torch.distributed as dist

    return isinstance(error, dist.DistError) or (isinstance(error, RuntimeError) and "gloo" in str(error))


def warn(message: str) -> None:
    """A warning: one line on stderr."""
    typer.echo(f"warning: {message}", err=True)


def write_json(value: Any) -> None:
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
