"""Momentum: an online network, its EMA target, and a memory bank pooled into the survival loss.

The MoCo idea (He et al. 2020) applied to survival, as in torchsurv's ``Momentum``. One call of
:meth:`Momentum.forward` does, in torchsurv's order:

1. online estimates of the batch (with gradients);
2. the loss over bank + batch (gradients flow only through the batch rows);
3. EMA update of the target from the online network;
4. target estimates of the batch pushed into the bank (in distributed training, with ``defer_push``, they
   are left in ``pending`` for the trainer, which all-gathers every process's rows and pushes them in rank
   order before the next step, so that every process holds the same bank).

Differences from torchsurv, all deliberate:

* the bank is a preallocated tensor ring buffer (:class:`~survmom.core.bank.MemoryBank`), part of
  ``state_dict`` and moved by ``.to(device)``; any batch size works, including a short last batch;
* the capacity counts *past* rows: ``Momentum(b, "cox", 16, 4)`` pools 64 bank rows + the current batch,
  which is torchsurv's ``Momentum(b, loss, batchsize=16, steps=5)``;
* Cox ``mean`` divides by the number of pooled events (torchsurv: distinct event times, when tied);
* Weibull: the likelihood is a sum over samples, so bank rows are constants that add nothing to the
  gradient; pooling them would only shrink the step by B/(B + C). The Weibull loss is therefore the plain
  batch loss, and its gradient equals the plain batch gradient whatever the bank holds. The bank is still
  filled, so bank state means the same thing for both losses;
* the target network always runs in eval mode (no dropout noise in the bank; BatchNorm uses running
  statistics, which are copied from the online network at every EMA update).

Study designs (``entry``, ``weight``, ``strata`` flags): the bank keeps each row's entry time, case weight and
stratum, and the pooled Cox loss applies the risk-set rules of :func:`~survmom.core.losses.cox_loss` to bank +
batch rows (pooled loss == the one-batch loss of the same rows). Weibull takes entry and weights in its batch
loss; strata are a Cox notion and refused for Weibull.

Example:
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(5, 1))
    >>> model = Momentum(net, "cox", batchsize=8, steps=4)
    >>> x, e, t = torch.randn(8, 5), torch.ones(8, dtype=torch.bool), torch.rand(8)
    >>> loss = model(x, e, t)
    >>> loss.backward()
    >>> model.infer(x).shape
    torch.Size([8, 1])
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from survmom import choices
from survmom.core.bank import BankDesign, MemoryBank, MergedRows, SortedRows
from survmom.core.ema import EMA
from survmom.core.losses import cox_loss, cox_loss_sorted, weibull_loss
from survmom.core.sorting import block_order, merge_order, merge_runs
from survmom.errors import ConfigError, StateError, SurvmomError

LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
PendingRows = tuple[torch.Tensor, torch.Tensor, torch.Tensor, BankDesign | None]  # estimates, event, time, design
BUILTIN_LOSSES = choices.LOSSES


class Momentum(nn.Module):
    """Online/target networks with an EMA and a memory bank; ``forward`` returns the pooled loss.

    Args:
        backbone: network mapping inputs (B, ...) to estimates (B, d); deep-copied into ``online`` and
            ``target``.
        loss: ``"cox"``, ``"weibull"`` or a callable ``loss(estimates, event, time) -> scalar``; a callable
            receives the pooled bank + batch rows.
        batchsize, steps: bank capacity = ``batchsize × steps`` past rows, unless ``bank_size`` is given.
        rate: EMA rate m in [0, 1] (0: target = online; 1: target frozen).
        bank_size: bank capacity in samples (overrides batchsize × steps).
        rate_schedule: ``"constant"`` or ``"cosine"`` (BYOL, towards 1 over ``total_steps``).
        total_steps: number of training steps, for the cosine schedule.
        warmup: torch_ema's warm-up ``min(m, (1 + n)/(10 + n))``.
        ties: ``"efron"`` or ``"breslow"`` for the Cox loss.
        out_dim: width d of the estimates; default: the last ``nn.Linear``'s ``out_features``.
        entry, weight, strata: the study design the rows carry (delayed entry / counting-process start,
            case weights, Cox strata); :meth:`forward` then needs exactly these fields.

    ``ema`` is the :class:`~survmom.core.ema.EMA` of ``online`` whose averaged network is ``target``.
    """

    def __init__(
        self,
        backbone: nn.Module,
        loss: str | LossFn = "cox",
        batchsize: int = 16,
        steps: int = 10,
        rate: float = 0.999,
        *,
        bank_size: int | None = None,
        rate_schedule: str = "constant",
        total_steps: int = 0,
        warmup: bool = False,
        ties: str = "efron",
        out_dim: int | None = None,
        entry: bool = False,
        weight: bool = False,
        strata: bool = False,
    ) -> None:
        super().__init__()
        capacity = batchsize * steps if bank_size is None else bank_size
        if capacity < 0:
            raise ConfigError(f"bank size must be >= 0, got {capacity}")
        if (entry or weight or strata) and not isinstance(loss, str):
            raise ConfigError("entry, weight and strata need the built-in cox or weibull loss, not a callable")
        if strata and loss == "weibull":
            raise ConfigError("strata apply to the cox loss only (a stratified baseline hazard), not weibull")
        self.loss_name = loss if isinstance(loss, str) else "custom"
        self.loss_fn = _resolve_loss(loss, ties)
        self.ties = ties
        self.online = copy.deepcopy(backbone)
        self.target = copy.deepcopy(backbone)
        for param in self.target.parameters():
            param.requires_grad_(False)
        self.target.eval()
        # The target network is the EMA's averaged network: the EMA updates it in place from the online one.
        self.ema = EMA(self.online, rate, rate_schedule, total_steps, warmup, averaged=self.target)
        dtype = next((p.dtype for p in backbone.parameters() if p.is_floating_point()), None)
        self.bank = MemoryBank(capacity, out_dim or _output_width(backbone), dtype=dtype, entry=entry,
                               weight=weight, strata=strata)
        self._merged: MergedRows | None = None  # this step's bank + batch run, for the push
        # Distributed training (:mod:`survmom.training.distributed`): forward leaves the rows it would push in
        # ``pending``; the caller pushes every process's rows (:meth:`MemoryBank.push`) before the next step.
        self.defer_push = False
        self.pending: PendingRows | None = None

    def _apply(self, fn: Any, recurse: bool = True) -> Momentum:
        super()._apply(fn, recurse)
        self.ema.relist()  # .to(), .double(), ... replace buffers (and may replace parameters)
        return self

    def train(self, mode: bool = True) -> Momentum:
        """Set the online network's mode; the target always stays in eval mode."""
        super().train(mode)
        self.target.eval()
        return self

    def forward(self, inputs: torch.Tensor, event: torch.Tensor, time: torch.Tensor, *,
                entry: torch.Tensor | None = None, weight: torch.Tensor | None = None,
                strata: torch.Tensor | None = None) -> torch.Tensor:
        """Loss of the batch pooled with the bank; then EMA update and push. inputs (B, ...), event/time (B,);
        entry, weight, strata (B,): the design fields this model was built with (see :class:`Momentum`)."""
        online, target = self.online, self.target
        design = None
        if entry is not None or weight is not None or strata is not None or self.bank.design_fields:
            design = self._batch_design(time, entry, weight, strata)
        online_estimates = online(inputs)
        self._merged = None
        loss = self.pooled_loss(online_estimates, event, time, design=design)
        with torch.no_grad():
            self.ema.update()
            estimates = target(inputs)
            if self.defer_push:
                self.pending = (estimates, event, time, design)
            else:
                self.bank.push(estimates, event, time, merged=self._merged, design=design)
        self._merged = None
        return loss

    def _batch_design(self, time: torch.Tensor, entry: torch.Tensor | None, weight: torch.Tensor | None,
                      strata: torch.Tensor | None) -> BankDesign:
        """The batch's design fields, checked against the constructor's flags, as float64 / int64 (B,)."""
        design = BankDesign(entry, weight, strata)
        self.bank.check_design(design)
        for name, values in design._asdict().items():
            if values is not None and values.shape != time.shape:
                raise SurvmomError(f"{name} must have shape {tuple(time.shape)} like time, got {tuple(values.shape)}")
        device = self.bank.times.device
        return BankDesign(*(None if v is None else v.to(device=device, dtype=kind)
                            for v, kind in zip(design, (torch.float64, torch.float64, torch.int64), strict=True)))

    def pooled_loss(self, estimates: torch.Tensor, event: torch.Tensor, time: torch.Tensor, *,
                    design: BankDesign | None = None) -> torch.Tensor:
        """Loss over bank rows (constants) + batch rows (with gradient); see the module notes for Weibull.
        ``design``: the batch's design fields (those the bank keeps)."""
        if self.loss_name == "weibull":
            if design is None:
                return self.loss_fn(estimates, event, time)
            return weibull_loss(estimates, event, time, entry=design.entry, weight=design.weight)
        if self.loss_name == "cox":
            return self._pooled_cox_loss(estimates, event, time, design)
        bank_estimates, bank_events, bank_times = self.bank.contents()
        estimates = estimates.reshape(estimates.shape[0], -1)
        pooled = torch.cat([bank_estimates.to(estimates), estimates])
        pooled_events = torch.cat([bank_events, event.to(device=bank_events.device, dtype=torch.bool)])
        pooled_times = torch.cat([bank_times, time.to(bank_times)])
        return self.loss_fn(pooled, pooled_events, pooled_times)

    def _pooled_cox_loss(self, estimates: torch.Tensor, event: torch.Tensor, time: torch.Tensor,
                         design: BankDesign | None) -> torch.Tensor:
        """Cox loss over bank + batch merged by time (the bank is kept sorted; with strata, both are in block
        order: by stratum, then by time); gradient to the batch only.

        The merged run is kept for this step's push, which then needs no merge of its own. A batch already in
        order of descending time (as :class:`~survmom.training.trainer.Trainer` hands them) is not sorted again
        (without strata); with strata, only the batch is sorted into block order, never bank + batch.
        """
        if estimates.dim() == 2 and estimates.shape[1] == 1:
            log_hz = estimates.reshape(-1)  # (B,): one view, one backward node
        else:
            log_hz = estimates.reshape(estimates.shape[0], -1)[:, 0]
        bank = self.bank
        rows = bank.by_time()
        if time.dtype != rows.keys.dtype or time.device != rows.keys.device:
            time = time.to(rows.keys)
        bank_design = None if design is None else bank.design_by_time(rows)
        strata = None if design is None else design.strata
        # order: None when the batch rows are in the bank's order already (a batch sorted by time, no strata)
        batch_keys, order, batch_strata = block_order(torch.neg(time), strata)

        def in_order(batch_field: torch.Tensor) -> torch.Tensor:
            return batch_field if order is None else batch_field.index_select(0, order)

        gather, sorted_position = merge_order(rows.keys, batch_keys, None if strata is None else bank_design.strata,
                                              batch_strata)
        position = sorted_position
        if order is not None:
            position = torch.empty_like(sorted_position).index_copy_(0, order, sorted_position)

        def merged(bank_field: torch.Tensor, batch_field: torch.Tensor) -> torch.Tensor:
            """A bank field (n,) and a batch field (B,) in batch row order, merged: (n + B,)."""
            return merge_runs(bank_field, in_order(batch_field), gather, sorted_position)

        keys = merge_runs(rows.keys, batch_keys, gather, sorted_position)
        values = merged(rows.values, log_hz.detach().to(rows.values))
        if event.dtype != torch.bool or event.device != rows.events.device:
            event = event.to(device=rows.events.device, dtype=torch.bool)
        events = merged(rows.events, event)
        if 0 < log_hz.shape[0] <= bank.capacity:
            # The batch rows' sequence numbers are bank.incoming_seq(B), in batch row order.
            seq = merged(rows.seq, bank.incoming_seq(log_hz.shape[0]))
            self._merged = MergedRows(SortedRows(keys, values, events, seq), position)
        if design is None:
            return cox_loss_sorted(log_hz, position, keys, values, events, ties=self.ties)
        entry_keys = None if design.entry is None else merged(bank_design.entry, design.entry).neg_()
        weight = None if design.weight is None else merged(bank_design.weight, design.weight)
        if batch_strata is not None:
            strata = merge_runs(bank_design.strata, batch_strata, gather, sorted_position)
        return cox_loss_sorted(log_hz, position, keys, values, events, ties=self.ties, entry=entry_keys,
                               weight=weight, strata=strata)

    @torch.no_grad()
    def infer(self, inputs: torch.Tensor) -> torch.Tensor:
        """Target network estimates (B, d) in eval mode, without gradients."""
        self.target.eval()
        return self.target(inputs)

    @property
    def current_rate(self) -> float:
        """The EMA rate the next step will use."""
        return self.ema.current_rate()

    def get_extra_state(self) -> dict[str, Any]:
        # The EMA's schedule and count only: its averaged weights are the target network's, saved as target.*
        return {"ema": self.ema.state_dict(weights=False), "loss": self.loss_name, "ties": self.ties}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        if not isinstance(state, dict) or set(state) != {"ema", "loss", "ties"}:
            raise StateError(f"Momentum extra state must hold ema, loss and ties, got {state!r}")
        if (state["loss"], state["ties"]) != (self.loss_name, self.ties):
            raise StateError(
                f"state is for loss {state['loss']!r} (ties {state['ties']!r}), "
                f"this model uses {self.loss_name!r} (ties {self.ties!r})"
            )
        self.ema.load_state_dict(state["ema"])

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        """``nn.Module.load_state_dict`` that reports mismatched keys or shapes as :class:`StateError`."""
        try:
            result = super().load_state_dict(state_dict, strict=strict, assign=assign)
        except RuntimeError as error:
            first = str(error).strip().splitlines()
            detail = " ".join(line.strip() for line in first[:3])
            raise StateError(f"Momentum state does not match this model: {detail}") from error
        self.ema.relist()  # assign=True replaces the networks' tensors
        return result


def _resolve_loss(loss: str | LossFn, ties: str) -> LossFn:
    if callable(loss):
        return loss
    if loss == "cox":
        return functools.partial(cox_loss, ties=ties)
    if loss == "weibull":
        return weibull_loss
    raise ConfigError(f"loss must be one of {', '.join(BUILTIN_LOSSES)} or a callable, got {loss!r}")


def _output_width(backbone: nn.Module) -> int:
    linears = [m for m in backbone.modules() if isinstance(m, nn.Linear)]
    return linears[-1].out_features if linears else 1
