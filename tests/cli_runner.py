"""Run the ``survmom`` command as the end-to-end tests do (imported by them, not collected).

By default a command runs inside the test process (its own stdout, stderr, argv, working directory and
environment for the call), which spares each call the ~3 s of importing torch and pandas again; it exits
through the same Typer app as ``python -m survmom``. ``isolated=True`` (and every ``--nproc`` command) runs a
real ``python -m survmom`` subprocess instead: for what only a process shows (signals, torchrun, exit paths);
so does a call from a thread other than the main one (the streams are the process's; signal handlers can
only be set from the main thread).
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from rich.console import Console

from survmom.app.progress import QuietReporter

ROOT = Path(__file__).resolve().parents[1]
# A wide terminal (help and tables are not wrapped) and one intra-op thread: several of these processes run at
# once on a 2-core CI machine.
ENV = {**os.environ, "COLUMNS": "300", "OMP_NUM_THREADS": "1"}


def run_survmom(*args: str | Path, cwd: Path | None = None, check: bool = False, timeout: float = 600,
                isolated: bool = False) -> subprocess.CompletedProcess:
    """The finished command, stdout and stderr captured separately; ``check``: raise unless it exited 0;
    ``timeout``: seconds (a subprocess only); ``isolated``: in a ``python -m survmom`` subprocess."""
    texts = [str(arg) for arg in args]
    if isolated or "--nproc" in texts or threading.current_thread() is not threading.main_thread():
        result = subprocess.run([sys.executable, "-m", "survmom", *texts], capture_output=True, text=True,
                                cwd=cwd or ROOT, env=ENV, timeout=timeout)
    else:
        result = _in_process(texts, cwd or ROOT)
    if check and result.returncode != 0:
        raise AssertionError(f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}")
    return result


def _in_process(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """``survmom *args`` through the CLI's Typer app in this process, as a subprocess would see it: exit code,
    stdout and stderr as text with universal newlines; an exception that escapes the app prints its traceback
    and exits 1, as Python does. What a command changes process-wide is put back afterwards: streams, argv,
    working directory, environment, warning filters, torch's thread count and frozen objects (``gc.freeze``)."""
    import gc
    import traceback
    import warnings

    from survmom.app.cli import app

    streams = {name: io.TextIOWrapper(io.BytesIO(), encoding="utf-8", write_through=True)
               for name in ("stdout", "stderr")}
    saved = sys.stdout, sys.stderr, sys.argv, os.getcwd(), os.environ.copy()
    threads = sys.modules["torch"].get_num_threads() if "torch" in sys.modules else None
    code: int | str | None = 0
    sys.stdout, sys.stderr, sys.argv = streams["stdout"], streams["stderr"], ["survmom", *args]
    os.environ.update({key: ENV[key] for key in ("COLUMNS", "OMP_NUM_THREADS")})
    os.chdir(cwd)
    try:
        with warnings.catch_warnings():
            app(args=args, prog_name="python -m survmom")  # as click names a `python -m` run
    except SystemExit as stop:
        code = stop.code
    except BaseException:  # what the interpreter would print, for the test to see
        traceback.print_exc(file=sys.stderr)
        code = 1
    finally:
        for stream in streams.values():
            stream.flush()
        sys.stdout, sys.stderr, sys.argv = saved[:3]
        os.chdir(saved[3])
        os.environ.clear()
        os.environ.update(saved[4])
        gc.unfreeze()
        if threads is not None:
            sys.modules["torch"].set_num_threads(threads)
    if isinstance(code, str):  # sys.exit("message"): printed, exit 1
        streams["stderr"].write(code + "\n")
        code = 1
    text = {name: stream.buffer.getvalue().decode().replace("\r\n", "\n").replace("\r", "\n")
            for name, stream in streams.items()}
    return subprocess.CompletedProcess(["survmom", *args], code or 0, text["stdout"], text["stderr"])


def checkpoint_tensors(value, prefix: str = ""):
    """(path, tensor) for every tensor in a nested checkpoint dict / list / tuple, e.g. ``/momentum/bank.times``."""
    import torch

    if isinstance(value, torch.Tensor):
        yield prefix, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from checkpoint_tensors(item, f"{prefix}/{key}")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from checkpoint_tensors(item, f"{prefix}/{i}")


def first_rows(source: Path, target: Path, rows: int) -> Path:
    """``target``: the header and the first ``rows`` data rows of the CSV ``source``."""
    lines = Path(source).read_text().splitlines(keepends=True)
    target.write_text("".join(lines[: rows + 1]))
    return target


class SignalAtStep(QuietReporter):
    """A quiet reporter (for in-process training) that sends this process SIGINT after its ``at_step``-th
    optimizer step, like a Ctrl-C; it counts over every member of an ensemble when it is their reporter."""

    def __init__(self, at_step: int) -> None:
        super().__init__(Console(file=io.StringIO()))
        self.steps, self.at_step = 0, at_step

    def step(self, samples: int, loss: float) -> None:
        self.steps += 1
        if self.steps == self.at_step:
            os.kill(os.getpid(), signal.SIGINT)
