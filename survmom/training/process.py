"""What a training process does around its loop: threads for large forward passes, and stop requests
(SIGINT/SIGTERM) that the loop honours between steps."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

import torch

from survmom.system import usable_cores

# From this many rows, a forward pass is large enough matrix work for a second thread to pay (160,000 rows of
# the default network: 94 -> 56 ms on 2 cores); training steps stay on one thread.
_THREADED_INFERENCE_ROWS = 32_768


@contextmanager
def inference_threads(threads_option: int | None, rows: int, device: torch.device) -> Iterator[None]:
    """Run a large CPU forward pass (validation, the Cox baseline's pass over the training rows) on 2 threads
    when ``--threads`` was left at its default (1 for training) and 2 cores are available."""
    before = torch.get_num_threads()
    if threads_option is not None or device.type != "cpu" or rows < _THREADED_INFERENCE_ROWS or before >= 2 \
            or usable_cores() < 2:
        yield
        return
    torch.set_num_threads(2)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def stop_requests() -> Iterator[Callable[[], bool]]:
    """SIGINT/SIGTERM set a flag the loop checks after each step (never mid-step); handlers restored."""
    requested = {"stop": False}

    def handler(signum: int, frame: Any) -> None:
        requested["stop"] = True

    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        with suppress(ValueError):  # not the main thread: no signal handling
            previous[sig] = signal.signal(sig, handler)
    try:
        yield lambda: requested["stop"]
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
