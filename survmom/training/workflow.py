"""Train and resume end to end: data files → Trainer → checkpoint file. Used by the CLI."""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from survmom.atomic import check_output_path as check_writable_output
from survmom.atomic import restored_on_error
from survmom.data import Preprocessor, fingerprint
from survmom.errors import CheckpointError, ConfigError, DataError, SurvmomError, TrainingDiverged
from survmom.system import usable_cores
from survmom.training.checkpoint import data_state, load_state, read_checkpoint, write_checkpoint
from survmom.training.config import TrainConfig, auto_batch, check_id_column_name
from survmom.training.distributed import Ranks, from_environment, is_restart, launch_token, world_size
from survmom.training.prepare import Outcomes, PreparedData, prepare_training_data
from survmom.training.trainer import Interrupted, Reporter, Tensors, Trainer, resolve_device

# Suffixes of data files: a checkpoint written under one of these names would be mistaken for data.
DATA_SUFFIXES = (".csv", ".parquet", ".pq", ".tsv", ".txt", ".json", ".gz")


@dataclass
class RunResult:
    """Summary of a finished (or interrupted) run."""

    checkpoint: Path
    epochs_done: int
    best_epoch: int
    best_metric: float | None
    interrupted: bool
    stopped_early: bool
    warnings: list[str]
    # A cross-fitted ensemble: (best epoch, best validation C-index) of each trained member, and its size
    members: list[tuple[int, float | None]] = field(default_factory=list)
    ensemble: int = 1


def check_output_path(out: Path, inputs: list[Path]) -> None:
    """Refuse a checkpoint path that cannot be written (see :func:`survmom.atomic.check_output_path`), or that
    is named like a data file."""
    if out.suffix.lower() in DATA_SUFFIXES and not any(out.resolve() == Path(p).resolve() for p in inputs):
        raise ConfigError(f"--out {out} names a data file; a checkpoint is a PyTorch file, "
                          f"e.g. {out.with_suffix('.pt')}")
    check_writable_output(out, inputs, option="--out", example="model.pt")


def train_from_file(config: TrainConfig, data_path: Path, make_reporter) -> RunResult:
    """Fit preprocessing, build a Trainer and train; checkpoints go to ``config.out``.

    Under torchrun (``WORLD_SIZE`` > 1) this process is one rank of a distributed run
    (:mod:`survmom.training.distributed`); a rank that torchrun restarted after a failure continues from the
    checkpoint this launch wrote at ``--out``, if there is one.
    """
    started = time.perf_counter()
    out = Path(config.out)
    check_id_column_name(config.id_col)
    ranks = from_environment(config.device)
    if ranks is not None and is_restart() and ranks.broadcast(_written_by_this_launch(out)):
        return resume_from_checkpoint(out, None, None, None, make_reporter, {}, restarted=True)
    check_output_path(out, [data_path, *([Path(config.val)] if config.val else [])])
    if config.ensemble > 1:
        if ranks is not None:
            raise ConfigError("--ensemble does not run under torchrun: its members train one after another in one "
                              "process")
        return _train_members(config, data_path, out, make_reporter, started, [], None, None, None)
    trainer, prepared = build_trainer(config, data_path, ranks)
    extra = data_state(prepared)
    return _run(trainer, config.epochs, out, extra, make_reporter(config), prepared.warnings, started)


def build_trainer(config: TrainConfig, data_path: Path, ranks: Ranks | None = None) -> tuple[Trainer, PreparedData]:
    """The prepared data of ``data_path`` and a new Trainer on it (``ranks``: this process's part of a
    distributed run); resolves the default ``--batch`` into ``config``."""
    prepared = prepare_training_data(config, data_path, ranks=ranks)
    _resolve_batch(config, prepared, ranks)
    return _new_trainer(config, prepared, ranks), prepared


def _resolve_batch(config: TrainConfig, prepared: PreparedData, ranks: Ranks | None) -> None:
    """The default ``--batch`` from the training rows, into ``config`` (and so into the checkpoint); per process:
    a distributed epoch has as many steps as a single process's."""
    if config.batch is None:
        whole = prepared.all_train or prepared.train
        config.batch = auto_batch(-(-len(whole) // (1 if ranks is None else ranks.size)))


def _new_trainer(config: TrainConfig, prepared: PreparedData, ranks: Ranks | None = None, fit_start: bool = True,
                 time_scale: float | None = None) -> Trainer:
    """A Trainer on ``prepared`` (this process's rows of a distributed run with ``ranks``); ``time_scale``: a
    resumed run's (None: from the training rows); ``fit_start=False`` for a trainer about to load a state."""
    device = resolve_device(config.device) if ranks is None else ranks.device
    capped = _set_threads(config)
    if capped is not None:
        prepared.warnings.append(capped)
    if time_scale is None:
        time_scale = _time_scale(prepared.all_train or prepared.train, config.loss)
    return Trainer(config, prepared.train.x.shape[1], _tensors(prepared.train, device, time_scale, config.loss),
                   _tensors(prepared.val, device, time_scale, config.loss), device, time_scale, fit_start=fit_start,
                   ranks=ranks)


def resume_from_checkpoint(checkpoint_path: Path, epochs: int | None, data_path: Path | None,
                           out: Path | None, make_reporter, overrides: dict[str, Any], restarted: bool = False
                           ) -> RunResult:
    """Continue a run from its checkpoint; refuses changed data unless ``data_path`` has the same schema.

    Under torchrun every rank resumes; with another number of processes than the checkpoint's it continues
    with a warning (the batches differ, so it is no longer bit-identical to an uninterrupted run).
    ``restarted``: torchrun restarted this launch's workers; a run that had ended is then done, not refused.
    """
    started = time.perf_counter()
    ranks = from_environment(overrides.get("device") or "auto") if world_size() > 1 else None
    saved = read_checkpoint(checkpoint_path)
    config = TrainConfig.from_dict({**saved.config.to_dict(), **overrides}, source=str(checkpoint_path))
    if epochs is not None:
        if epochs < 1:
            raise ConfigError(f"--epochs must be at least 1, got {epochs}")
        config.epochs = epochs
    out = out or checkpoint_path
    info = saved.data
    source = Path(data_path) if data_path is not None else Path(info["path"])
    if data_path is not None and not source.is_file():
        raise DataError(f"--data {source}: {'is a folder' if source.is_dir() else 'file not found'}")
    if not source.is_file():
        raise DataError(f"{source}: training data not found; pass --data PATH to resume with a copy of it")
    if data_path is None and fingerprint(source) != info["fingerprint"]:
        raise DataError(f"{source}: the training data changed since the checkpoint was written "
                        "(content fingerprint differs); pass --data PATH to train on a file with the same schema")
    if config.val is not None:
        config.val = str(_unchanged_validation_file(Path(info["val_path"]), info["val_fingerprint"]))
    check_output_path(Path(out), [source])
    if saved.ensemble_size > 1:
        record = saved.state["ensemble"]
        done = list(record["members"])
        if len(done) >= saved.ensemble_size:
            raise ConfigError(f"{checkpoint_path}: nothing to resume (all {saved.ensemble_size} members of the "
                              "ensemble are trained; a finished ensemble is not trained further: train a new one "
                              "with a larger --epochs)")
        partial = saved.state if record["current"] == len(done) else None  # the member in training, if begun
        return _train_members(config, source, Path(out), make_reporter, started, done, partial,
                              saved.preprocessor, saved.strata_levels,
                              fresh_patience=overrides.get("patience") is not None)
    prepared = prepare_training_data(config, source, saved.preprocessor, saved.strata_levels, ranks=ranks)
    if list(prepared.data_info["columns"]) != list(info["columns"]) and data_path is not None:
        missing = sorted(set(info["columns"]) - set(prepared.data_info["columns"]))
        if missing:
            raise DataError(f"{source}: schema differs from the training data (missing {', '.join(missing)})")
    trainer = _new_trainer(config, prepared, ranks, fit_start=False, time_scale=saved.time_scale)
    try:
        trainer.load_state_dict(saved.state)
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise CheckpointError(
            f"{checkpoint_path}: checkpoint does not match its own configuration ({error})"
        ) from error
    stopped = trainer.stopped_early and trainer.epoch < config.epochs  # by --patience, with epochs left or added
    fresh_patience = overrides.get("patience") is not None
    if fresh_patience:  # --patience N: N more epochs without improvement, counted from here
        trainer.epochs_without_improvement = 0
    if epochs is not None or fresh_patience:
        trainer.stopped_early = False
    finished = trainer.epoch >= config.epochs or trainer.stopped_early
    if restarted and finished:  # the failure came after the last checkpoint of a complete run
        return RunResult(Path(out), trainer.epoch, trainer.best_epoch, trainer.best_metric, False,
                         trainer.stopped_early, [])
    saved_size = saved.state["progress"].get("world_size", 1)
    if saved_size != trainer.world_size:
        prepared.warnings.append(f"{checkpoint_path} was trained by {saved_size} process(es), this run has "
                                 f"{trainer.world_size}: training continues, but not bit-identically to an "
                                 "uninterrupted run (each process's batches differ)")
    if finished and trainer.stopped_early:
        raise ConfigError(f"{checkpoint_path}: nothing to resume (early stopping ended it at epoch {trainer.epoch}); "
                          "pass --patience N to allow N more epochs without improvement (up to epoch "
                          f"{config.epochs}; --epochs N to go further)")
    if finished:
        raise ConfigError(f"{checkpoint_path}: nothing to resume ({trainer.epoch} of {config.epochs} epochs done); "
                          f"pass --epochs N with N > {trainer.epoch} to train further")
    if stopped and not fresh_patience:  # its patience is spent: the next epoch that is not better stops it again
        prepared.warnings.append(
            f"{checkpoint_path}: training stopped early at epoch {trainer.epoch} (--patience {config.patience}: "
            f"{trainer.epochs_without_improvement} epochs without a better validation C-index than epoch "
            f"{trainer.best_epoch}'s); it stops again at the next epoch that is not better: pass --patience N to "
            "allow N more epochs without improvement")
    return _run(trainer, config.epochs, Path(out), data_state(prepared), make_reporter(config), prepared.warnings,
                started)


def _run(trainer: Trainer, epochs: int, out: Path, extra: dict[str, Any], reporter: Reporter,
         warnings: list[str], started: float) -> RunResult:
    """Train to ``epochs``; every checkpoint also records seconds from command start to the first step."""

    main = trainer.ranks is None or trainer.ranks.is_main  # rank 0 writes and reports
    launch = launch_token()

    def save(state: dict[str, Any]) -> None:
        first = trainer.first_step_done
        timings = {"time_to_first_step_s": None if first is None else first - started}
        if main:
            write_checkpoint(out, {**state, **({"launch": launch} if launch else {})}, extra, timings)

    for message in warnings:
        reporter.warn(message)
    interrupted = False
    try:
        # A run that fails (diverges) leaves a checkpoint that was already at ``out`` as it was.
        with restored_on_error(out) if main else nullcontext(False) as had_checkpoint:
            try:
                trainer.fit(epochs, reporter, save)
            except Interrupted:
                interrupted = True
                save(trainer.state_dict())
    except TrainingDiverged as error:
        if had_checkpoint:
            kept = f"{out} is left as it was before this run"
        elif out.is_file():
            kept = f"{out} holds this run up to epoch {trainer.epoch} (the best epoch so far is in it)"
        else:
            kept = "no checkpoint was written"
        raise TrainingDiverged(f"{error}; {kept}") from error
    finally:
        reporter.close()
    return RunResult(out, trainer.epoch, trainer.best_epoch, trainer.best_metric, interrupted,
                     trainer.stopped_early, warnings)


def _train_members(config: TrainConfig, data_path: Path, out: Path, make_reporter, started: float,
                   done: list[dict[str, Any]], partial: dict[str, Any] | None, preprocessor: Preprocessor | None,
                   strata_levels: list[tuple[str, ...]] | None, fresh_patience: bool = False) -> RunResult:
    """Train the members of a cross-fitted ensemble one after another, from member ``len(done)`` on.

    Member k is validated on fold k of ``config.ensemble`` and trained on the others with seed
    ``config.member(k).seed``. Every checkpoint holds the trained members (``done``: each member's trainer
    state and its risks of every row, in file order) and the trainer state of the member in training at the top
    level, which ``partial`` is when resuming it (None: it starts afresh). ``preprocessor``/``strata_levels``:
    the ensemble's (None: fitted on every row by the first member). ``fresh_patience`` (resume --patience): the
    member resumed counts its epochs without improvement from the resume point.
    """
    size = config.ensemble
    result: RunResult | None = None
    first = len(done)
    for member in range(first, size):
        prepared = prepare_training_data(config, data_path, preprocessor, strata_levels, fold=(member, size))
        preprocessor, strata_levels = prepared.preprocessor, prepared.strata_levels
        _resolve_batch(config, prepared, None)  # once, from the first member's training rows, and saved
        trainer = _new_trainer(config.member(member), prepared, fit_start=partial is None)
        if partial is not None:
            trainer.load_state_dict(partial)
            if fresh_patience:
                trainer.epochs_without_improvement = 0
            partial = None
        shared = {**data_state(prepared), "config": config.to_dict()}  # the ensemble's config, not the member's
        reporter = make_reporter(config)
        reporter.start_member(member, size)
        warnings = prepared.warnings if member == first else []
        if member == first and config.val_frac != TrainConfig().val_frac:
            warnings = [f"--val-frac {config.val_frac} is not used by --ensemble {size}: member k validates on fold k "
                        f"(1/{size} of the rows)", *warnings]
        result = _run(trainer, config.epochs, out, {**shared, "ensemble": _record(size, done, member)}, reporter,
                      warnings, started)
        if result.interrupted:
            break
        done = [*done, {"state": trainer.state_dict(), "risk": _every_row_risks(trainer, prepared)}]
        write_checkpoint(out, trainer.state_dict(), {**shared, "ensemble": _record(size, done, member)},
                         {"time_to_first_step_s": None})
    assert result is not None
    result.ensemble = size
    result.members = [(int(m["state"]["best"]["epoch"]), m["state"]["best"]["metric"]) for m in done]
    return result


def _record(size: int, members: list[dict[str, Any]], current: int) -> dict[str, Any]:
    """A checkpoint's ensemble record: K, the trained members, the member whose trainer state is at the top."""
    return {"size": size, "members": members, "current": current}


def _every_row_risks(trainer: Trainer, prepared: PreparedData) -> torch.Tensor:
    """A member's risks (n,) float64 of every row of the file, in file order (the ``risk`` column)."""
    assert prepared.rows is not None and prepared.every_row is not None and trainer.val_data is not None
    train_rows, val_rows = prepared.rows
    risk = torch.empty(len(prepared.every_row), dtype=torch.float64)
    risk[torch.from_numpy(train_rows)] = trainer.prediction_risks(trainer.train_data.x)
    risk[torch.from_numpy(val_rows)] = trainer.prediction_risks(trainer.val_data.x)
    return risk


def _written_by_this_launch(out: Path) -> bool:
    """True when ``out`` is a checkpoint that this torchrun launch wrote (not an older file at that path)."""
    if not out.is_file():
        return False
    try:
        return load_state(out).get("launch") == launch_token()
    except SurvmomError:
        return False


def _unchanged_validation_file(path: Path, expected: str) -> Path:
    """The ``--val`` file a run validated on, if it is still there with the same content: resuming on other
    validation rows would compare C-indexes of different data when picking the best epoch."""
    if not path.is_file():
        raise DataError(f"{path}: validation data (--val) not found; resume needs the file this run was validated on")
    if fingerprint(path) != expected:
        raise DataError(f"{path}: the validation data (--val) changed since the checkpoint was written (content "
                        "fingerprint differs); best epochs would be chosen on different rows")
    return path


def _set_threads(config: TrainConfig) -> str | None:
    """Training steps work on small tensors: one CPU thread is as fast on an idle machine and far faster on a
    busy one (torch's intra-op threads wait for each other). ``--threads N`` overrides; 0 keeps torch's choice.
    An N above the cores this process may use is capped to them (the config keeps N: a checkpoint or YAML file
    may move to a larger machine); the warning saying so is returned (None when not capped)."""
    threads = 1 if config.threads is None else config.threads
    cores = usable_cores()
    warning = None
    if threads > cores:
        warning = (f"--threads {threads} is more than the {cores} CPU core{'s' if cores > 1 else ''} this process "
                   f"may use: training runs on {cores} thread{'s' if cores > 1 else ''} (more threads than cores "
                   "only wait for each other)")
        threads = cores
    if threads > 0:
        torch.set_num_threads(threads)
    return warning


def _time_scale(train: Outcomes, loss: str) -> float:
    """Internal time unit for Weibull: the median training time (so scaled times are O(1))."""
    if loss != "weibull":
        return 1.0
    scale = float(np.median(train.time))
    return scale if scale > 0 and np.isfinite(scale) else 1.0


def _tensors(split: Outcomes | None, device: torch.device, time_scale: float, loss: str) -> Tensors | None:
    if split is None:
        return None
    time_dtype = torch.float64 if loss == "cox" else torch.float32

    def on_device(values: np.ndarray | None, dtype: torch.dtype) -> torch.Tensor | None:
        return None if values is None else torch.from_numpy(values).to(device=device, dtype=dtype)

    return Tensors(
        torch.from_numpy(split.x).to(device),
        torch.from_numpy(split.event).to(device),
        torch.from_numpy(split.time / time_scale).to(device=device, dtype=time_dtype),
        entry=on_device(None if split.entry is None else split.entry / time_scale, time_dtype),
        weight=on_device(split.weight, time_dtype),
        strata=on_device(split.strata, torch.int64),
        position=None if split.position is None else torch.from_numpy(split.position),
    )
