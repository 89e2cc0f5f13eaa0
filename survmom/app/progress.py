"""Progress reporting on stderr: a Rich live display on a terminal, one plain line per epoch otherwise."""

from __future__ import annotations

import sys
import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

SMOOTHING = 0.9  # exponential smoothing of the displayed loss


def make_reporter(quiet: bool = False, console: Console | None = None, silent: bool = False):
    """Rich display when stderr is a terminal, plain lines otherwise; nothing but warnings when quiet; nothing
    at all when ``silent`` (the ranks other than 0 of a distributed run: rank 0 reports)."""
    console = console or Console(stderr=True)
    if silent:
        return SilentReporter(console)
    if quiet:
        return QuietReporter(console)
    if console.is_terminal:
        return RichReporter(console)
    return PlainReporter(console)


def _format_metric(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


class QuietReporter:
    """Reports only warnings."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def warn(self, message: str) -> None:
        self.console.print(f"warning: {message}", style="yellow", highlight=False, soft_wrap=True, markup=False)

    def start_epoch(self, epoch: int, epochs: int, steps: int, done: int) -> None:
        pass

    def step(self, samples: int, loss: float) -> None:
        pass

    def end_epoch(self, record: dict[str, Any]) -> None:
        pass

    def start_validated(self, cindex: float) -> None:
        """The untrained network (the linear start) scored ``cindex`` on the validation rows."""

    def start_member(self, member: int, members: int) -> None:
        """Member ``member`` (from 0) of a cross-fitted ensemble of ``members`` starts or continues training."""

    def close(self) -> None:
        pass


class SilentReporter(QuietReporter):
    """Reports nothing."""

    def warn(self, message: str) -> None:
        pass


class PlainReporter(QuietReporter):
    """One line per epoch: epoch, loss, validation C-index, samples/s, seconds."""

    def __init__(self, console: Console) -> None:
        super().__init__(console)
        self.epochs = 0

    def start_epoch(self, epoch: int, epochs: int, steps: int, done: int) -> None:
        self.epochs = epochs

    def end_epoch(self, record: dict[str, Any]) -> None:
        speed = record.get("samples_per_s")
        line = (
            f"epoch {record['epoch']}/{self.epochs}  loss {record['loss']:.4f}  "
            f"val C-index {_format_metric(record['val_cindex'])}{' *' if record.get('best') else ''}  "
            f"{'n/a' if speed is None else f'{speed:,.0f}'} samples/s  {record['seconds']:.1f}s"
        )
        print(line, file=sys.stderr, flush=True)

    def start_validated(self, cindex: float) -> None:
        print(_start_line(cindex), file=sys.stderr, flush=True)

    def start_member(self, member: int, members: int) -> None:
        print(_member_line(member, members), file=sys.stderr, flush=True)


class RichReporter(PlainReporter):
    """A live display: epoch, step bar, smoothed loss, last validation C-index, samples/s and ETA."""

    def __init__(self, console: Console) -> None:
        super().__init__(console)
        self.progress = Progress(
            TextColumn("epoch {task.fields[epoch]}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} steps"),
            TextColumn("loss {task.fields[loss]}"),
            TextColumn("val C {task.fields[val]}"),
            TextColumn("{task.fields[speed]} samples/s"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self.task = None
        self.smoothed: float | None = None
        self.val: float | None = None
        self.samples = 0
        self.started = time.perf_counter()
        self.last_refresh = 0.0
        self.pending = 0
        self.progress.start()

    def start_epoch(self, epoch: int, epochs: int, steps: int, done: int) -> None:
        self.epochs = epochs
        fields = {"epoch": f"{epoch}/{epochs}", "loss": "-", "val": _format_metric(self.val), "speed": "-"}
        if self.task is None:
            self.task = self.progress.add_task("train", total=steps, completed=done, **fields)
        else:
            self.progress.reset(self.task, total=steps, completed=done, **fields)
        self.samples, self.started, self.pending = 0, time.perf_counter(), 0

    def step(self, samples: int, loss: float) -> None:
        self.smoothed = loss if self.smoothed is None else SMOOTHING * self.smoothed + (1 - SMOOTHING) * loss
        self.samples += samples
        self.pending += 1
        now = time.perf_counter()
        if now - self.last_refresh > 0.1:
            speed = self.samples / max(now - self.started, 1e-9)
            self.progress.update(self.task, advance=self.pending, loss=f"{self.smoothed:.4f}",
                                 speed=f"{speed:,.0f}")
            self.pending, self.last_refresh = 0, now

    def end_epoch(self, record: dict[str, Any]) -> None:
        self.val = record["val_cindex"]
        self.progress.update(self.task, advance=self.pending, val=_format_metric(self.val))
        self.pending = 0

    def start_validated(self, cindex: float) -> None:
        self.val = cindex
        self.progress.console.print(_start_line(cindex), highlight=False, markup=False)

    def start_member(self, member: int, members: int) -> None:
        self.progress.console.print(_member_line(member, members), highlight=False, markup=False)

    def warn(self, message: str) -> None:
        self.progress.console.print(f"warning: {message}", style="yellow", highlight=False, soft_wrap=True,
                                    markup=False)  # user text (column names, values) is shown as is

    def close(self) -> None:
        self.progress.stop()


def _start_line(cindex: float) -> str:
    """The epoch-0 line: the untrained network (the linear start) is the best so far by construction."""
    return f"epoch 0 (linear start)  val C-index {_format_metric(cindex)} *"


def _member_line(member: int, members: int) -> str:
    return f"ensemble member {member + 1} of {members} (validated on fold {member + 1})"
