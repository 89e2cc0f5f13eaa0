"""Run ``python -m survmom`` in a subprocess, as the end-to-end tests do (imported by them, not collected)."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from pathlib import Path

from rich.console import Console

from survmom.app.progress import QuietReporter

ROOT = Path(__file__).resolve().parents[1]
# A wide terminal (help and tables are not wrapped) and one intra-op thread: several of these processes run at
# once on a 2-core CI machine.
ENV = {**os.environ, "COLUMNS": "300", "OMP_NUM_THREADS": "1"}


def run_survmom(*args: str | Path, cwd: Path | None = None, check: bool = False,
                timeout: float = 600) -> subprocess.CompletedProcess:
    """The finished process, stdout and stderr captured separately; ``check``: raise unless it exited 0."""
    result = subprocess.run([sys.executable, "-m", "survmom", *map(str, args)], capture_output=True, text=True,
                            cwd=cwd or ROOT, env=ENV, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}")
    return result


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
