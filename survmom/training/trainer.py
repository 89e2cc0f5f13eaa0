"""The training loop: seeded index batches, Momentum steps, validation, early stopping, checkpoints.

Reads top to bottom: :class:`Trainer` builds the network, the Momentum wrapper and AdamW from a config;
:meth:`Trainer.fit` runs epochs of index batches over tensors already on the device, validates the target
network after each epoch, keeps the best target weights, and hands a checkpoint dict to a save callback
at the end of every epoch. Everything needed to continue exactly is in :meth:`Trainer.state_dict`.
"""

from __future__ import annotations

import math
import time as clock
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from survmom.core.linear_start import fit_linear_start, start_rows
from survmom.core.losses import breslow_baseline, weibull_log_median, weibull_loss
from survmom.core.metrics import concordance_index, concordance_index_se
from survmom.core.model import LinearSkip, build_backbone, set_output_bias
from survmom.core.momentum import Momentum
from survmom.core.optim import AdamW, lbfgs_minimize
from survmom.core.sorting import descending_time_key
from survmom.errors import ConfigError, TrainingDiverged
from survmom.training.config import TrainConfig
from survmom.training.designs import design_kwargs, stratified_baselines
from survmom.training.distributed import Ranks, share_step
from survmom.training.process import inference_threads, stop_requests


class Reporter(Protocol):
    """What the loop tells the user about (implemented in :mod:`survmom.app.progress`)."""

    def start_epoch(self, epoch: int, epochs: int, steps: int, done: int) -> None: ...
    def step(self, samples: int, loss: float) -> None: ...
    def end_epoch(self, record: dict[str, Any]) -> None: ...
    def start_validated(self, cindex: float) -> None: ...


class Interrupted(Exception):
    """Training was stopped by SIGINT/SIGTERM after a complete step; the state is resumable."""


@dataclass
class Tensors:
    """One split on the device: x (n, p) float32, event (n,) bool, time (n,) in internal time units; the
    design's fields where used (else None): entry (n,) (time's dtype and unit), weight (n,) float64,
    strata (n,) int64 codes (:mod:`survmom.training.designs`)."""

    x: torch.Tensor
    event: torch.Tensor
    time: torch.Tensor
    entry: torch.Tensor | None = None
    weight: torch.Tensor | None = None
    strata: torch.Tensor | None = None
    position: torch.Tensor | None = None  # distributed: each row's place among all training rows (int64, CPU)


def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for, but no CUDA device is available")
    return torch.device(name)


def risk_from_estimates(estimates: torch.Tensor, loss: str) -> torch.Tensor:
    """Risk score (n,), higher = earlier event: the log hazard (cox) or minus the log median time (weibull)."""
    return estimates[:, 0] if loss == "cox" else -weibull_log_median(estimates)


def user_weibull_params(estimates: torch.Tensor, time_scale: float) -> torch.Tensor:
    """Weibull (log scale, log shape) (n, 2) float64 in the user's time unit, from the network's estimates
    (n, 2) in internal units (times divided by ``time_scale``)."""
    params = estimates.double().clone()
    params[:, 0] += math.log(time_scale)
    return params


def backbone_from_config(config: TrainConfig, in_features: int) -> torch.nn.Module:
    """The network a config describes: (n, in_features) → (n, 1) log hazard or (n, 2) Weibull parameters."""
    return build_backbone(in_features, config.hidden, 1 if config.loss == "cox" else 2, dropout=config.dropout,
                          activation=config.activation, batchnorm=config.batchnorm, linear_skip=config.linear_skip)


def fit_constant_weibull(event: torch.Tensor, time: torch.Tensor, **design: torch.Tensor) -> tuple[float, float]:
    """Maximum-likelihood (log scale, log shape) of a Weibull without covariates, time in internal units;
    ``design``: ``entry`` and/or ``weight`` (n,)."""
    event64, time64 = event.double().cpu(), time.double().cpu()
    design = {name: value.double().cpu() for name, value in design.items() if name != "strata"}
    params = lbfgs_minimize(lambda p: weibull_loss(p.expand(len(time64), 2), event64, time64, **design),
                            torch.zeros(1, 2, dtype=torch.float64), grad_tol=1e-10)
    log_scale, log_shape = params[0].tolist()
    if not (math.isfinite(log_scale) and math.isfinite(log_shape)):
        return 0.0, 0.0
    return log_scale, max(min(log_shape, 3.0), -3.0)


class Trainer:
    """Holds the network, Momentum wrapper, optimizer, RNG and progress; one object per training run."""

    def __init__(self, config: TrainConfig, in_features: int, train: Tensors, val: Tensors | None,
                 device: torch.device, time_scale: float = 1.0, fit_start: bool = True,
                 ranks: Ranks | None = None) -> None:
        """``fit_start=False`` skips the starting fits (constant Weibull, linear start): a caller about to
        :meth:`load_state_dict` a checkpoint would overwrite them. ``ranks``: a distributed run
        (:mod:`survmom.training.distributed`); ``train`` and ``val`` are then this process's rows, and
        ``train.position`` places them among all training rows."""
        self.config = config
        self.device = device
        self.ranks = ranks
        self.train_data = train
        self.val_data = val
        self.time_scale = time_scale
        # Every training row's outcomes (no features): this process's rows, or in a distributed run all of
        # them, gathered in the order of a single process's training rows.
        self.all_train = train if ranks is None else Tensors(
            torch.empty(0), *(None if v is None else self.in_train_order(v)
                              for v in (train.event, train.time, train.entry, train.weight, train.strata)))
        # Every rank runs the same number of steps per epoch: as many rows as the rank with the most.
        self.epoch_rows = len(train.time)
        if ranks is not None:
            sizes = ranks.exchange(lambda: len(train.time))
            if min(sizes) == 0:
                raise ConfigError(f"{sum(sizes)} training rows cannot be shared by {ranks.size} processes (one "
                                  "would get none); train with fewer processes")
            self.epoch_rows = max(sizes)
        torch.manual_seed(config.seed)
        backbone = backbone_from_config(config, in_features)
        if fit_start and config.loss == "weibull":
            whole = self.all_train
            set_output_bias(backbone, fit_constant_weibull(whole.event, whole.time, **design_kwargs(whole)))
        self.fitted_start = False  # True when the network starts as a fitted linear model (worth validating)
        # The linear layer to start at the penalised linear fit: a LinearSkip's linear path, or the whole network
        # when it is linear (no hidden layers).
        start_layer = (backbone.linear if isinstance(backbone, LinearSkip)
                       else backbone[-1] if not config.hidden else None)
        if fit_start and config.linear_init and start_layer is not None:
            sample = train if ranks is None else self._start_sample()
            self.fitted_start = fit_linear_start(
                start_layer, sample.x, sample.event, sample.time, config.loss, ties=config.ties,
                penalty=config.linear_penalty, seed=config.seed, **design_kwargs(sample),
            )
        _freeze_linear_path(backbone, self.fitted_start and config.linear_frozen)
        self.steps_per_epoch = len(self.batch_bounds())
        self.momentum = Momentum(
            backbone, config.loss, bank_size=config.bank_capacity(), rate=config.rate,
            rate_schedule=config.rate_schedule, total_steps=config.epochs * self.steps_per_epoch,
            warmup=config.rate_warmup, ties=config.ties,
            **{name: True for name in design_kwargs(train)},
        ).to(device)
        self.optimizer = AdamW(self.momentum.online.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        if ranks is not None:
            self.momentum.defer_push = True
            torch.manual_seed(config.seed + 7919 * (ranks.rank + 1))  # each rank its own dropout masks
        self._stopping = False  # a stop (SIGINT/SIGTERM) was asked for, on any rank
        self._stop_requested: Callable[[], bool] = lambda: False  # set by fit
        self.epoch = 0  # completed epochs
        self.batch_index = 0  # next batch inside the current epoch
        self.step = 0  # optimizer steps so far
        self.epoch_loss_sum = 0.0
        self.epoch_samples = 0
        self.epoch_seconds = 0.0
        self.best_metric: float | None = None
        self.best_epoch = 0
        self.best_target: dict[str, torch.Tensor] | None = None
        self.start_metric: float | None = None  # the validation C of the untrained network (epoch 0)
        self.start_se = 0.0  # its standard error (0 when not validated)
        self.epochs_without_improvement = 0
        self.stopped_early = False
        self.history: list[dict[str, Any]] = []
        self.first_step_done: float | None = None  # perf_counter() when this process finished its first step
        # The last prediction state, and the best-target dict it was computed from (a new dict on every new
        # best and on load_state_dict, never changed in place).
        self._prediction: tuple[dict[str, torch.Tensor], dict[str, Any]] | None = None
        self._batch_sort_key: tuple[torch.Tensor, torch.Tensor] | None = None  # see epoch_permutation

    # --- batches -------------------------------------------------------------------------------------
    def batch_bounds(self) -> list[tuple[int, int]]:
        """(start, stop) of each batch in an epoch; the short last batch is kept (merged if 1 row + BN)."""
        n, size = self.epoch_rows, self.config.batch
        bounds = [(start, min(start + size, n)) for start in range(0, n, size)]
        if self.config.batchnorm and len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1:
            bounds[-2:] = [(bounds[-2][0], n)]
        return bounds

    def epoch_permutation(self, epoch: int) -> torch.Tensor:
        """The row order of ``epoch``: a permutation seeded by (seed, epoch), so resuming needs no state.

        For Cox, the rows of each batch (:meth:`batch_bounds`) are then put in order of descending time, ties
        in permutation order: the pooled loss needs every batch sorted by time, and one sort per epoch costs
        less than one per step (the batches hold the same rows either way).
        """
        generator = torch.Generator().manual_seed(self.config.seed * 1_000_003 + epoch)
        order = torch.randperm(len(self.train_data.time), generator=generator)
        if len(order) < self.epoch_rows:  # distributed, fewer rows here than on another rank: repeat some
            order = order.repeat(-(-self.epoch_rows // max(len(order), 1)))[: self.epoch_rows]
        if self.config.loss == "cox":
            if self._batch_sort_key is None:
                self._batch_sort_key = _batch_sort_key(self.train_data.time, self.batch_bounds())
            batch_base, time_rank = self._batch_sort_key
            _, by_time = torch.sort(time_rank.index_select(0, order).add_(batch_base), stable=True)
            order = order.index_select(0, by_time)
        return order.to(self.device)

    # --- the loop ------------------------------------------------------------------------------------
    def fit(self, epochs: int, reporter: Reporter, save: Callable[[dict[str, Any]], None]) -> None:
        """Train until ``epochs`` epochs are complete or early stopping; ``save`` gets each checkpoint."""
        bounds = self.batch_bounds()
        # The untrained network (the linear start) is a candidate for early stopping. It is scored after the
        # first epoch's steps (or at an interruption) from a copy, so that training starts without waiting.
        start_weights = None
        if self.step == 0 and self.best_metric is None and self.fitted_start:
            start_weights = _state_copy(self.momentum.target)

        def score_start() -> None:
            nonlocal start_weights
            if start_weights is not None:
                self.validate_start(start_weights)
                start_weights = None
                if self.best_metric is not None:
                    reporter.start_validated(self.best_metric)

        with stop_requests() as stop_requested:
            self._stop_requested = stop_requested
            while self.epoch < epochs and not self.stopped_early:
                order = self.epoch_permutation(self.epoch)
                reporter.start_epoch(self.epoch + 1, epochs, len(bounds), self.batch_index)
                started = clock.perf_counter()
                self.momentum.train()
                while self.batch_index < len(bounds):
                    start, stop = bounds[self.batch_index]
                    loss = self.train_step(order[start:stop])
                    if self.first_step_done is None:
                        self.first_step_done = clock.perf_counter()
                    reporter.step((stop - start) * self.world_size, loss)
                    # distributed: the stop request of any rank, agreed in the step's collective
                    if stop_requested() if self.ranks is None else self._stopping:
                        self.epoch_seconds += clock.perf_counter() - started
                        self._check_finite_weights()  # the caller saves this state: never a NaN checkpoint
                        score_start()
                        raise Interrupted
                self.epoch_seconds += clock.perf_counter() - started
                score_start()
                record = self.finish_epoch()
                reporter.end_epoch(record)
                save(self.state_dict())
                if self._agreed(stop_requested()):
                    raise Interrupted
            score_start()  # no epoch left to run

    def train_step(self, rows: torch.Tensor) -> float:
        """One optimizer step on the rows ``rows`` (B,); returns the loss (distributed: its mean over ranks);
        raises on NaN/inf. Distributed: afterwards ``_stopping`` says whether a stop (SIGINT/SIGTERM) was asked
        for during :meth:`fit` on any rank."""
        data = self.train_data
        loss = self.momentum(data.x.index_select(0, rows), data.event.index_select(0, rows),
                             data.time.index_select(0, rows), **design_kwargs(data, rows))
        value = loss.item()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ranks is None:
            self._check_finite_loss(value)
            loss.backward()
        else:  # DDP: gradients averaged over ranks; the loss (and any stop request) travel with them
            loss.backward()
            grads = [p.grad for p in self.optimizer.params if p.grad is not None]
            value, self._stopping = share_step(self.ranks, self.momentum, grads, value, self._stop_requested())
            self._check_finite_loss(value)
        torch.nn.utils.clip_grad_norm_(self.optimizer.params, self.config.grad_clip)
        self.optimizer.step()
        self.step += 1
        self.batch_index += 1
        samples = len(rows) * self.world_size
        self.epoch_loss_sum += value * samples
        self.epoch_samples += samples
        return value

    def _check_finite_loss(self, value: float) -> None:
        if not math.isfinite(value):
            raise TrainingDiverged(
                f"loss became {value} at epoch {self.epoch + 1}, step {self.batch_index + 1}; "
                "try a lower --lr or check the data for extreme values"
            )

    @property
    def world_size(self) -> int:
        """The number of processes training this model (1 without torch.distributed)."""
        return 1 if self.ranks is None else self.ranks.size

    def _agreed(self, flag: bool) -> bool:
        """``flag`` on this rank, or in a distributed run: true on any rank."""
        return flag if self.ranks is None else not self.ranks.all_true(not flag)

    # --- distributed -------------------------------------------------------------------------------
    def in_train_order(self, values: torch.Tensor) -> torch.Tensor:
        """Values (n_rank, ...) of this rank's training rows -> (n, ...) of every training row, in the order a
        single process holds them (:attr:`Tensors.position`)."""
        assert self.ranks is not None and self.train_data.position is not None
        return self.ranks.gather_to_places([values], self.train_data.position)[0]

    def _start_sample(self) -> Tensors:
        """The training rows the linear start fits on (:func:`~survmom.core.linear_start.start_rows` of all
        training rows), gathered from every rank in the order a single process takes them."""
        assert self.ranks is not None and self.train_data.position is not None
        train = self.train_data
        chosen = start_rows(len(self.all_train.time), train.x.shape[1], self.config.seed)
        slot = torch.full((len(self.all_train.time),), -1, dtype=torch.int64)
        slot[chosen] = torch.arange(len(chosen))
        return Tensors(*self.ranks.gather_to_places(
            [train.x, train.event, train.time, train.entry, train.weight, train.strata], slot[train.position]))

    def finish_epoch(self) -> dict[str, Any]:
        """Validate, update best/early stopping, append to history, reset the per-epoch counters."""
        self._check_finite_weights()
        self.epoch += 1
        metric = self.validation_cindex()
        improved = metric is not None and (self.best_metric is None or metric > self.best_metric + self._margin())
        if improved:
            self.best_metric, self.best_epoch = metric, self.epoch
            self.best_target = _state_copy(self.momentum.target)
            self.epochs_without_improvement = 0
        elif metric is not None:
            self.epochs_without_improvement += 1
        patience = self.config.patience
        if patience is not None and metric is not None and self.epochs_without_improvement >= patience:
            self.stopped_early = True
        record = {
            "epoch": self.epoch,
            "loss": self.epoch_loss_sum / max(self.epoch_samples, 1),
            "val_cindex": metric,
            "seconds": self.epoch_seconds,
            "samples_per_s": self.epoch_samples / self.epoch_seconds if self.epoch_seconds > 0 else None,
            "rate": self.momentum.current_rate,
            "best": improved,
        }
        self.history.append(record)
        self.batch_index, self.epoch_loss_sum, self.epoch_samples, self.epoch_seconds = 0, 0.0, 0, 0.0
        return record

    def _margin(self) -> float:
        """How much an epoch's validation C must exceed the best so far to replace it: ``--start-margin``
        standard errors of the start's C while the linear start is the best (the one-standard-error rule:
        Breiman et al. 1984, *Classification and Regression Trees*, 3.4.3; Hastie, Tibshirani & Friedman,
        *The Elements of Statistical Learning*, 7.10), else 0. The best of many epochs' noisy validation C is an
        optimistic estimate; the simpler start is kept unless training beats it by more than that noise."""
        start_is_best = self.best_epoch == 0 and self.start_metric is not None  # only the start is epoch 0
        return self.config.start_margin * self.start_se if start_is_best else 0.0

    def validate_start(self, start_weights: dict[str, torch.Tensor]) -> None:
        """Score the untrained target (epoch 0: the linear start, if any) so early stopping can keep it.

        ``start_weights``: the target's state before the first step.
        """
        with self._target_weights(start_weights):
            scored = self._validation_risks()
        metric = self._cindex(scored)
        self.start_metric = metric
        if scored is not None and metric is not None and self.config.start_margin > 0:
            # the standard error of the plain Harrell C of the same rows (with a design: its scale, not its value)
            risk, val = scored
            se = concordance_index_se(risk.cpu(), val.event.cpu(), val.time.cpu())[1]
            self.start_se = se if math.isfinite(se) else 0.0
        if metric is not None and (self.best_metric is None or metric > self.best_metric):
            self.best_metric, self.best_epoch = metric, 0
            self.best_target = start_weights

    def validation_cindex(self) -> float | None:
        """Harrell's C of the target network on the validation rows (None without usable validation); with a
        design, its concordance (:func:`~survmom.core.metrics.concordance_index`)."""
        return self._cindex(self._validation_risks())

    @staticmethod
    def _cindex(scored: tuple[torch.Tensor, Tensors] | None) -> float | None:
        """:meth:`validation_cindex` of :meth:`_validation_risks`' output."""
        if scored is None:
            return None
        risk, val = scored
        design = {name: value.cpu() for name, value in design_kwargs(val).items()}
        value = concordance_index(risk.cpu(), val.event.cpu(), val.time.cpu(), **design)
        return None if math.isnan(value) else float(value)

    def _validation_risks(self) -> tuple[torch.Tensor, Tensors] | None:
        """The target network's risks (n_val,) of the validation rows and those rows (distributed: of every
        rank), or None without rows or events."""
        val = self.val_data
        if self.ranks is not None and val is not None:  # every rank scores its rows; C of all of them
            risk = self.ranks.gather_rows(risk_from_estimates(self.infer(val.x), self.config.loss))
            val = Tensors(torch.empty(0), *(None if v is None else self.ranks.gather_rows(v)
                                            for v in (val.event, val.time, val.entry, val.weight, val.strata)))
        elif val is not None and len(val.time) and bool(val.event.any()):
            risk = risk_from_estimates(self.infer(val.x), self.config.loss)
        if val is None or len(val.time) == 0 or not bool(val.event.any()):
            return None
        return risk, val

    def infer(self, x: torch.Tensor, chunk: int = 262_144) -> torch.Tensor:
        """Target estimates (n, d) in chunks, eval mode, no gradients."""
        if len(x) == 0:
            return x.new_empty((0, self.momentum.bank.dim))  # a rank of a distributed run without such rows
        with inference_threads(self.config.threads, len(x), x.device):
            return torch.cat([self.momentum.infer(x[i : i + chunk]) for i in range(0, len(x), chunk)])

    def _check_finite_weights(self) -> None:
        for name, tensor in self.momentum.state_dict().items():
            if isinstance(tensor, torch.Tensor) and tensor.is_floating_point() and not torch.isfinite(tensor).all():
                raise TrainingDiverged(
                    f"weights became non-finite ({name}) at epoch {self.epoch + 1}, step {self.batch_index}; "
                    "the last good checkpoint is kept; try a lower --lr"
                )

    # --- state ---------------------------------------------------------------------------------------
    def final_target_state(self) -> dict[str, torch.Tensor]:
        """Weights used for prediction: the best validated target, else the current target."""
        return self.best_target if self.best_target is not None else self.momentum.target.state_dict()

    def state_dict(self) -> dict[str, Any]:
        """The training part of a checkpoint (:func:`survmom.training.checkpoint.write_checkpoint` adds the
        format, the data's state and the checksum)."""
        return {
            "config": self.config.to_dict(),
            "momentum": _to_cpu(self.momentum.state_dict()),
            "optimizer": _to_cpu(self.optimizer.state_dict()),
            "rng": {"torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [],
                    # distributed: every rank's CPU generator, in rank order
                    **({} if self.ranks is None else {"ranks": self.ranks.exchange(torch.get_rng_state)})},
            "progress": {
                "epoch": self.epoch, "batch_index": self.batch_index, "step": self.step,
                "steps_per_epoch": self.steps_per_epoch, "epoch_loss_sum": self.epoch_loss_sum,
                "epoch_samples": self.epoch_samples, "epoch_seconds": self.epoch_seconds,
                "epochs_without_improvement": self.epochs_without_improvement,
                "stopped_early": self.stopped_early, "fitted_start": self.fitted_start,
                "start_val_cindex": self.start_metric, "start_val_se": self.start_se, "world_size": self.world_size,
                "global_batch": self.config.batch * self.world_size,  # rows per step over all processes
            },
            "best": {"metric": self.best_metric, "epoch": self.best_epoch,
                     "target": None if self.best_target is None else _to_cpu(self.best_target)},
            "history": [dict(record) for record in self.history],
            "time_scale": self.time_scale,
            "prediction": self.prediction_state(),
        }

    def prediction_state(self) -> dict[str, Any]:
        """What predict and the plots need beyond the weights, from one forward pass over the training rows at
        the prediction weights (:meth:`final_target_state`).

        ``train_risk`` (n,) float64: each training row's risk as ``survmom predict`` gives it (the ``risk``
        column: Cox log hazard; Weibull minus the log median time in the user's unit), in the order of the
        training outcomes, so that risk groups can be cut at training quantiles on any file. Cox also gets the
        Breslow baseline (``baseline_times`` in the user's time unit, ``baseline_cumhaz``). The pass is run
        again only when the weights it depends on change: every epoch without validation (the current
        target), else when the best validated target does (a new best dict, never changed in place).
        """
        best, cached = self.best_target, self._prediction
        if best is not None and cached is not None and cached[0] is best:
            return dict(cached[1])
        with self._target_weights(self.final_target_state()):
            estimates = self.infer(self.train_data.x).double()
        estimates = (estimates if self.ranks is None else self.in_train_order(estimates)).cpu()
        risk = self._risk_of(estimates)
        state = {**self._cox_baselines(risk), "train_risk": risk} if self.config.loss == "cox" else {"train_risk": risk}
        self._prediction = None if best is None else (best, state)
        return dict(state)

    def prediction_risks(self, x: torch.Tensor) -> torch.Tensor:
        """Risk (n,) float64 on the CPU of rows ``x`` (n, p) at the prediction weights, as the ``risk`` column
        of ``survmom predict`` gives it (Cox log hazard; Weibull minus the log median in the user's unit)."""
        with self._target_weights(self.final_target_state()):
            estimates = self.infer(x).double().cpu()
        return self._risk_of(estimates)

    def _risk_of(self, estimates: torch.Tensor) -> torch.Tensor:
        """The ``risk`` column (n,) of target estimates (n, d) float64."""
        if self.config.loss == "cox":
            return estimates[:, 0]
        return -weibull_log_median(user_weibull_params(estimates, self.time_scale))

    def _cox_baselines(self, log_hz: torch.Tensor) -> dict[str, Any]:
        """The Breslow baseline (``baseline_times`` in the user's time unit, ``baseline_cumhaz``) of the training
        rows with the design's risk sets; stratified: ``strata_baselines``, one {times, cumhaz} per stratum."""
        data = self.all_train
        event, time = data.event.cpu(), data.time.double().cpu()
        design = {name: value.cpu().double() for name, value in design_kwargs(data).items() if name != "strata"}
        if data.strata is None:
            times, cumhaz = breslow_baseline(log_hz, event, time, **design)
            return {"baseline_times": times * self.time_scale, "baseline_cumhaz": cumhaz}
        strata = data.strata.cpu()
        baselines = stratified_baselines(log_hz, event, time, strata, int(strata.max()) + 1, **design)
        return {"strata_baselines": [{"times": times * self.time_scale, "cumhaz": cumhaz}
                                     for times, cumhaz in baselines]}

    @contextmanager
    def _target_weights(self, state: dict[str, torch.Tensor]) -> Iterator[None]:
        """Run the body with ``state`` (a target state dict: the best or the starting weights) in the target
        network, then put the target's own weights back: the EMA's store / restore."""
        ema, target = self.momentum.ema, self.momentum.target
        ema.store(target)
        try:
            target.load_state_dict(state)
            yield
        finally:
            ema.restore(target)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore everything :meth:`state_dict` saved (same config and data shape)."""
        self.momentum.load_state_dict(state["momentum"])
        self.optimizer.load_state_dict(state["optimizer"])
        ranks_rng = state["rng"].get("ranks")
        if self.ranks is None or ranks_rng is None:
            torch.set_rng_state(state["rng"]["torch"])
        elif self.ranks.rank < len(ranks_rng):  # a rank beyond the saved ones keeps its seeded generator
            torch.set_rng_state(ranks_rng[self.ranks.rank])
        if state["rng"]["cuda"] and self.device.type == "cuda":
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        progress = state["progress"]
        self.epoch, self.batch_index, self.step = progress["epoch"], progress["batch_index"], progress["step"]
        self.epoch_loss_sum, self.epoch_samples = progress["epoch_loss_sum"], progress["epoch_samples"]
        self.epoch_seconds = progress["epoch_seconds"]
        self.epochs_without_improvement = progress["epochs_without_improvement"]
        self.stopped_early = progress["stopped_early"]
        self.fitted_start = progress["fitted_start"]
        self.start_metric = progress.get("start_val_cindex")  # absent from checkpoints written before it was kept
        self.start_se = progress.get("start_val_se", 0.0)  # absent before --start-margin: the best epoch won
        _freeze_linear_path(self.momentum.online, self.fitted_start and self.config.linear_frozen)
        best = state["best"]
        self.best_metric, self.best_epoch = best["metric"], best["epoch"]
        self.best_target = None if best["target"] is None else {
            k: v.to(self.device) for k, v in best["target"].items()
        }
        self.history = [dict(record) for record in state["history"]]
        self.time_scale = state["time_scale"]


def _batch_sort_key(time: torch.Tensor, bounds: list[tuple[int, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """(batch base, time rank), int64 (n,) on the CPU: ``batch_base[i] + time_rank[row]`` for the row at
    position i of an epoch's order sorts the positions by batch, then by descending time within a batch.

    ``time_rank`` is the dense rank of each row's time in descending order (0 for the latest time; equal times,
    equal ranks); ``batch_base`` is the batch of each position times the number of distinct times.
    """
    key, order = torch.sort(descending_time_key(time.detach().cpu()))
    distinct = torch.ones_like(key, dtype=torch.bool)
    torch.ne(key[1:], key[:-1], out=distinct[1:])
    rank = torch.cumsum(distinct, 0).sub_(1)
    time_rank = torch.empty_like(rank).index_copy_(0, order, rank)
    sizes = torch.tensor([stop - start for start, stop in bounds])
    distinct_times = int(rank[-1]) + 1 if rank.numel() else 1
    batch_base = torch.repeat_interleave(torch.arange(len(bounds)).mul_(distinct_times), sizes)
    return batch_base, time_rank


def _freeze_linear_path(backbone: torch.nn.Module, frozen: bool) -> None:
    """Keep a :class:`LinearSkip`'s fitted linear path out of training (no gradient, so AdamW skips it)."""
    if isinstance(backbone, LinearSkip):
        backbone.linear.requires_grad_(not frozen)


def _state_copy(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of ``module``'s state dict (its tensors stay on their device)."""
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _to_cpu(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_cpu(v) for v in value]
    return value
