"""Training across processes on PyTorch's own engine: ``torch.distributed`` under ``torchrun``.

One process per rank, started by ``torchrun`` (or ``survmom train --nproc N``, which calls torch's launcher
API, :func:`launch_here`). :func:`from_environment` joins the process group that torchrun's environment
describes (gloo on CPU, NCCL on CUDA) and returns the :class:`Ranks` the trainer and the data preparation
use for the few collectives a run needs:

* :meth:`Ranks.exchange`: run a piece of local work on every rank and all-gather its results, or the first
  rank's :class:`~survmom.errors.SurvmomError`, which every rank then raises (no rank waits forever on a
  rank that failed; every rank stops with the one message);
* :meth:`Ranks.gather_rows`: rows (n_rank, ...) of every rank, concatenated in rank order;
* :meth:`Ranks.share_step`: a training step's one collective: DistributedDataParallel's gradient averaging
  and MoCo's all-gather of the rows for the memory bank in one all-gather (with the step's loss, so that a
  non-finite loss on any rank stops every rank at the same step), used by :func:`share_step`. One
  all-gather rather than DDP's all-reduce plus a second collective for the bank: on a 2-core machine each
  gloo collective costs a fixed 1.5-3 ms, as much as half a step (BENCHMARKS.md, "Distributed training").

References: Li et al. 2020, "PyTorch Distributed: Experiences on Accelerating Data Parallel Training" (DDP's
all-reduce of averaged gradients); He et al. 2020 (MoCo's ``concat_all_gather`` of the queue's keys).
"""

from __future__ import annotations

import atexit
import os
import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from survmom.core.bank import BankDesign
from survmom.core.momentum import Momentum
from survmom.errors import ConfigError, SurvmomError

T = TypeVar("T")
# A rank waits this long for the others at a collective before giving up (gloo's and NCCL's timeout).
TIMEOUT = timedelta(minutes=10)


@dataclass
class Ranks:
    """This process's place in a distributed run: ``rank`` in [0, ``size``), on ``device``."""

    rank: int
    size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0 writes the checkpoint and talks to the user."""
        return self.rank == 0

    def exchange(self, work: Callable[[], T]) -> list[T]:
        """Run ``work`` here and return every rank's result, in rank order; if ``work`` raised a SurvmomError
        on any rank, every rank raises the lowest rank's error instead."""
        try:
            outcome: tuple[SurvmomError | None, Any] = (None, work())
        except SurvmomError as error:
            outcome = (error, None)
        outcomes: list[Any] = [None] * self.size
        dist.all_gather_object(outcomes, outcome)
        for error, _ in outcomes:
            if error is not None:
                raise error
        return [result for _, result in outcomes]

    def together(self, work: Callable[[], T]) -> T:
        """Run ``work`` here and return its result; if it raised a SurvmomError on any rank, every rank raises
        the lowest rank's error (what :meth:`exchange` does, without sending the results)."""
        kept: list[T] = []
        self.exchange(lambda: kept.append(work()))
        return kept[0]

    def gather_rows(self, rows: torch.Tensor) -> torch.Tensor:
        """Every rank's ``rows`` (n_rank, ...) concatenated in rank order (n_rank may differ by rank)."""
        local = rows.to(self.device).contiguous()
        count = torch.tensor([local.shape[0]], device=self.device)
        counts = [torch.zeros_like(count) for _ in range(self.size)]
        dist.all_gather(counts, count)
        sizes = [int(c) for c in counts]
        longest = max(sizes)
        padded = local if local.shape[0] == longest else torch.cat(
            [local, local.new_zeros((longest - local.shape[0], *local.shape[1:]))])
        pieces = [torch.empty_like(padded) for _ in range(self.size)]
        dist.all_gather(pieces, padded)
        return torch.cat([piece[:size] for piece, size in zip(pieces, sizes, strict=True)]).to(rows.device)

    def gather_to_places(self, fields: Sequence[torch.Tensor | None], places: torch.Tensor
                         ) -> list[torch.Tensor | None]:
        """Rows of every rank put in one order: this rank's row i goes to place ``places[i]`` (int64 (n_rank,);
        -1: the row is left out). Returns each of ``fields`` (n_rank, ...) (None stays None) as (n, ...) with
        n the number of places given over all ranks (each place 0..n-1 given once)."""
        picked = (places >= 0).nonzero().view(-1)
        where = self.gather_rows(places.index_select(0, picked))
        out: list[torch.Tensor | None] = []
        for values in fields:
            if values is None:
                out.append(None)
                continue
            gathered = self.gather_rows(values.index_select(0, picked.to(values.device)))
            out.append(torch.empty_like(gathered).index_copy_(0, where.to(gathered.device), gathered))
        return out

    def gather_equal(self, rows: torch.Tensor) -> torch.Tensor:
        """:meth:`gather_rows` for rows of the same shape on every rank (one collective)."""
        pieces = [torch.empty_like(rows) for _ in range(self.size)]
        dist.all_gather(pieces, rows.contiguous())
        return torch.cat(pieces)

    def share_step(self, grads: Sequence[torch.Tensor], rows: torch.Tensor, loss: float, stop: bool
                   ) -> tuple[torch.Tensor, float, bool]:
        """The one collective of a training step: every rank's gradients, ``rows`` (B, k) float64 (the bank's
        new rows; B the same on every rank), ``loss`` and ``stop`` flag, all-gathered as one float64 tensor.

        Each gradient is replaced in place by its mean over ranks (DistributedDataParallel's averaging; summed
        in rank order, so bit-identical on every rank and the optimizer keeps the ranks' weights identical).
        Returns (every rank's rows in rank order (size × B, k), the mean loss, whether any rank asked to stop).
        A non-finite loss on any rank makes the mean non-finite on every rank: they all stop at the same step.
        """
        width = sum(g.numel() for g in grads)
        packed = torch.cat([*(g.reshape(-1).double() for g in grads),
                            torch.tensor([loss, float(stop)], dtype=torch.float64, device=rows.device),
                            rows.reshape(-1)])
        every = self.gather_equal(packed[None, :])  # (size, width + 2 + B k)
        mean = every[:, : width + 2].sum(0).div_(self.size)
        offset = 0
        for g in grads:
            g.copy_(mean[offset : offset + g.numel()].view_as(g))
            offset += g.numel()
        shared_rows = every[:, width + 2 :].reshape(-1, rows.shape[1])
        return shared_rows, float(mean[width]), bool(every[:, width + 1].any())

    def all_true(self, flag: bool) -> bool:
        """True when ``flag`` is true on every rank."""
        value = torch.tensor([1 if flag else 0], device=self.device)
        dist.all_reduce(value, op=dist.ReduceOp.MIN)
        return bool(value.item())

    def broadcast(self, value: T) -> T:
        """Rank 0's ``value`` on every rank."""
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]


def share_step(ranks: Ranks, momentum: Momentum, grads: Sequence[torch.Tensor], loss: float, stop: bool
               ) -> tuple[float, bool]:
    """After a distributed step's backward: average ``grads`` over ranks and push every rank's new bank rows
    (``momentum.pending``, left by ``Momentum.defer_push``), in rank order, into this rank's bank, with one
    all-gather (:meth:`Ranks.share_step`); returns (the mean loss, whether any rank asked to stop).

    The rows travel packed in float64 columns (estimates, event, time, then the design's fields), which holds
    each of them exactly.
    """
    assert momentum.pending is not None
    estimates, event, time, design = momentum.pending
    momentum.pending = None
    fields = [] if design is None else [(name, v) for name, v in design._asdict().items() if v is not None]
    packed = torch.cat([estimates.double(), event.double()[:, None], time.double()[:, None],
                        *(v.double()[:, None] for _, v in fields)], dim=1)
    rows, loss, stop = ranks.share_step(grads, packed, loss, stop)
    width = estimates.shape[1]
    shared = {name: rows[:, width + 2 + i].to(v.dtype) for i, (name, v) in enumerate(fields)}
    momentum.bank.push(rows[:, :width].to(estimates.dtype), rows[:, width].bool(), rows[:, width + 1].to(time.dtype),
                       design=None if design is None else BankDesign(**shared))
    return loss, stop


def world_size() -> int:
    """The number of ranks torchrun's environment describes (1 outside torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def from_environment(device_option: str) -> Ranks | None:
    """Join the process group of a torchrun launch (None for a plain single process).

    ``device_option``: ``auto`` takes this rank's CUDA device (``LOCAL_RANK``) and NCCL where CUDA is
    available, else the CPU and gloo; ``cpu`` and ``cuda`` force it.
    """
    size = world_size()
    if size <= 1:
        return None
    use_cuda = device_option == "cuda" or (device_option == "auto" and torch.cuda.is_available())
    if use_cuda and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for, but no CUDA device is available")
    if use_cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if local >= torch.cuda.device_count():
            raise ConfigError(f"process {local} of this machine has no GPU of its own ({torch.cuda.device_count()} "
                              "CUDA device(s)): start at most one process per GPU, or train with --device cpu")
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if not dist.is_initialized():
        # torchrun's env:// store, with keys of their own for each restart of the workers: the agent keeps one
        # store for all of them, and a restarted rank could otherwise read a dead rank's address left there.
        store, rank, size = next(dist.rendezvous("env://", timeout=TIMEOUT))
        attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
        dist.init_process_group("nccl" if use_cuda else "gloo", store=dist.PrefixStore(f"survmom/{attempt}", store),
                                rank=rank, world_size=size, timeout=TIMEOUT)
        # Shut gloo's threads down before the interpreter does: a process that exits with them running can
        # abort ("terminate called without an active exception"), which torchrun counts as a failed rank.
        atexit.register(_leave_process_group)
    return Ranks(dist.get_rank(), dist.get_world_size(), device)


def _leave_process_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def launch_token() -> str | None:
    """What names this launch among restarts of its workers (None outside torchrun): torchrun's run id,
    unless it is the default ``none`` (then the launching agent's host and process id)."""
    if "TORCHELASTIC_RUN_ID" not in os.environ:
        return None
    run_id = os.environ["TORCHELASTIC_RUN_ID"]
    return run_id if run_id != "none" else f"{socket.gethostname()}:{os.getppid()}"


def is_restart() -> bool:
    """True in workers that torchrun restarted after a failure (``--max-restarts``)."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")) > 0


def launch_here(nproc: int, argv: Sequence[str]) -> None:
    """Run ``python -m survmom <argv>`` as ``nproc`` ranks on this machine through torch's launcher API (what
    ``torchrun --standalone --nproc-per-node nproc`` does); returns when every rank has finished.

    A failed rank has already told the user why (rank 0 prints the one error line); SystemExit(2) then.
    """
    import uuid

    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=str(uuid.uuid4()),
                          rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0,
                          monitor_interval=0.1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        elastic_launch(config, sys.executable)("-m", "survmom", *argv)
    except ChildFailedError as error:
        codes = [failure.exitcode for failure in error.failures.values()]
        raise SystemExit(2 if 2 in codes else max(codes)) from None
