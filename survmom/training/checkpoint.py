"""The checkpoint file: its schema, its one writer (:func:`write_checkpoint`) and its one reader
(:func:`read_checkpoint`), used by predict, inspect, evaluate and resume.

A checkpoint is a plain dict of tensors and Python data, so ``torch.load(path, weights_only=True)`` reads it and
a crafted pickle cannot run code. Format version 2 holds:

- ``format``, ``format_version``, ``versions``: what wrote it;
- the trainer's state (:meth:`~survmom.training.trainer.Trainer.state_dict`): ``config``, ``momentum``,
  ``optimizer``, ``rng``, ``progress``, ``best``, ``history``, ``time_scale`` and ``prediction`` (the
  training rows' risks and the Cox Breslow baseline);
- the data's state: ``preprocessing``, ``data`` (path, fingerprint, rows, columns), ``train_outcomes`` and
  ``event_time_quantiles``; ``timings``;
- for a model with a study design (``--entry-col``, ``--weight-col``, ``--strata``; optional keys, absent
  from a plain model's file): ``train_outcomes`` also holds ``entry``/``weight``/``strata`` (n,); ``strata``:
  ``{"levels": [[label, ...], ...]}`` (stratum code -> the labels of the config's ``strata`` columns); and
  ``prediction`` holds ``strata_baselines`` (one ``{"times", "cumhaz"}`` per stratum code) instead of the
  single ``baseline_times``/``baseline_cumhaz``;
- distributed training (optional keys): ``progress`` holds ``world_size`` and ``global_batch`` (``--batch``
  × processes), ``rng`` holds ``ranks`` (every rank's CPU generator state), and ``launch`` names the torchrun
  launch that wrote the file (a restarted worker continues only from its own launch's file);
- a cross-fitted ensemble (``--ensemble K``; optional key): ``ensemble`` = ``{"size": K, "members": [{"state":
  a trained member's trainer state, "risk": its risks (n,) of every row in file order}, ...], "current": the
  member whose trainer state is at the top level}``; the top-level ``config`` is the ensemble's, and the data's
  state holds every row (``train_outcomes`` in file order);
- ``checksum``: SHA-256 of all of the above (:func:`content_checksum`), so that a damaged byte anywhere, in
  a tensor's data too, is refused instead of predicting with it.

Writing is atomic (:func:`survmom.atomic.atomic_write`): readers see the old or the new complete file. Older
format versions are refused: no release wrote them.
"""

from __future__ import annotations

import errno
import hashlib
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from survmom import __version__
from survmom.atomic import atomic_write
from survmom.data import Preprocessor
from survmom.errors import CheckpointError, ConfigError
from survmom.training.config import TrainConfig
from survmom.training.prepare import PreparedData

FORMAT = "survmom-checkpoint"
FORMAT_VERSION = 2
REQUIRED_KEYS = ("format", "format_version", "versions", "config", "momentum", "optimizer", "rng", "progress",
                 "best", "history", "time_scale", "prediction", "preprocessing", "data", "train_outcomes",
                 "event_time_quantiles", "checksum")


@dataclass
class Checkpoint:
    """A checkpoint read and checked: what predict, inspect, evaluate and resume use.

    ``target_weights``: the target network's state dict for prediction (the best validated target, else the
    last one). ``baseline_times``/``baseline_cumhaz`` (m,) float64: the Cox Breslow baseline in the user's
    time unit (None for Weibull). ``train_time`` (n,) float64 and ``train_event`` (n,) bool: the training
    rows' outcomes, for IPCW weights; ``train_design`` their design fields (entry, weight, strata), if used.
    ``strata_levels``: stratum code -> labels of the ``--strata`` columns; ``strata_baselines``: (times, cumhaz)
    per stratum code (then ``baseline_times``/``baseline_cumhaz`` are None); both None without strata.
    ``train_risk`` (n,) float64: the same rows' risks at the prediction
    weights (predict's ``risk`` column), for risk groups cut at training quantiles; None in a checkpoint
    written before survmom kept them. ``state``: the whole dict, for :meth:`Trainer.load_state_dict`.
    """

    path: Path
    config: TrainConfig
    preprocessor: Preprocessor
    data: dict[str, Any]
    time_scale: float
    target_weights: dict[str, torch.Tensor]
    baseline_times: torch.Tensor | None
    baseline_cumhaz: torch.Tensor | None
    train_time: torch.Tensor
    train_event: torch.Tensor
    train_risk: torch.Tensor | None
    event_time_quantiles: list[float]
    strata_levels: list[tuple[str, ...]] | None
    strata_baselines: list[tuple[torch.Tensor, torch.Tensor]] | None
    train_design: dict[str, torch.Tensor]
    progress: dict[str, Any]
    best_metric: float | None
    best_epoch: int
    history: list[dict[str, Any]]
    bank: dict[str, Any]
    ema: dict[str, Any]
    versions: dict[str, str]
    state: dict[str, Any]
    # A cross-fitted ensemble (``--ensemble K``): K, and the members that predict (else [self] and 1)
    members: list[Checkpoint] = field(default_factory=list)
    ensemble_size: int = 1


def write_checkpoint(path: Path, training: dict[str, Any], data: dict[str, Any], timings: dict[str, Any]) -> None:
    """Write the checkpoint of a run to ``path`` atomically: the trainer's state (``Trainer.state_dict()``),
    the data's state (:func:`data_state`) and ``timings``, with their checksum."""
    save_state({"format": FORMAT, "format_version": FORMAT_VERSION,
                "versions": {"survmom": __version__, "torch": str(torch.__version__)},
                **training, **data, "timings": timings}, path)


def data_state(prepared: PreparedData) -> dict[str, Any]:
    """The data's part of a checkpoint: preprocessing state, data info, training outcomes (for IPCW weights)
    and the quartiles of the training event times (evaluate's default times)."""
    # every training row (distributed: of every process; a member of an ensemble: every row of the file)
    train = next(rows for rows in (prepared.every_row, prepared.all_train, prepared.train) if rows is not None)
    event_times = train.time[train.event]
    design = {name: torch.from_numpy(getattr(train, name).copy()) for name in ("entry", "weight", "strata")
              if getattr(train, name) is not None}
    # Observed event times ("lower"), not interpolations: 68.3 rather than 68.30000000000001 in every report.
    quantiles = np.quantile(event_times, [0.25, 0.5, 0.75], method="lower").tolist() if len(event_times) else []
    state = {
        "preprocessing": prepared.preprocessor.to_state(),
        "data": dict(prepared.data_info),
        "train_outcomes": {"time": torch.from_numpy(train.time.astype(np.float64)),
                           "event": torch.from_numpy(train.event.astype(bool)), **design},
        "event_time_quantiles": [float(q) for q in quantiles],
    }
    if prepared.strata_levels is not None:
        state["strata"] = {"levels": [list(level) for level in prepared.strata_levels]}
    return state


def save_state(state: dict[str, Any], path: Path) -> None:
    """Write a complete checkpoint dict to ``path`` atomically, with the checksum of its content."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise CheckpointError(f"{path}: folder {folder} does not exist")
    content = {key: value for key, value in state.items() if key != "checksum"}
    with atomic_write(path) as stream:
        torch.save({**content, "checksum": content_checksum(content)}, stream)


def read_checkpoint(path: Path) -> Checkpoint:
    """Load, verify and unpack a checkpoint; any problem is a one-line :class:`CheckpointError`.

    A cross-fitted ensemble's :attr:`Checkpoint.members` are its trained members (the member in training when
    none is); its ``train_risk`` is the members' mean risk of every row, the ensemble's ``risk``.
    """
    path = Path(path)
    state = load_state(path)
    try:
        record = state.get("ensemble")
        checkpoint = _unpack(state, path, member=record is not None)
        if record is not None:
            size, members = int(record["size"]), list(record["members"])
            if size < 2 or len(members) > size or not isinstance(record["current"], int):
                raise CheckpointError(f"{path}: checkpoint's ensemble record is damaged")
            checkpoint.ensemble_size = size
            if members:
                checkpoint.members = [_unpack({**state, **member["state"]}, path, member=True) for member in members]
                risks = torch.stack([torch.as_tensor(member["risk"], dtype=torch.float64) for member in members])
                if risks.shape[1:] != checkpoint.train_time.shape:
                    raise CheckpointError(f"{path}: checkpoint's ensemble risks do not match its "
                                          f"{len(checkpoint.train_time)} rows (the ensemble record is damaged)")
                checkpoint.train_risk = risks.mean(0)
        return checkpoint
    except (CheckpointError, ConfigError) as error:
        raise CheckpointError(str(error)) from error
    except Exception as error:
        raise CheckpointError(f"{path}: checkpoint content is inconsistent ({type(error).__name__}: "
                              f"{str(error).splitlines()[0][:160] if str(error) else ''})") from error


def _unpack(state: dict[str, Any], path: Path, member: bool = False) -> Checkpoint:
    """The :class:`Checkpoint` of a checkpoint dict; ``member``: the trainer state in it is one member's of an
    ensemble (its training risks are of its own training rows, not of the saved outcomes: left out)."""
    best, prediction, outcomes = state["best"], state["prediction"], state["train_outcomes"]
    config = TrainConfig.from_dict(state["config"], source=f"{path}: saved config")
    momentum = state["momentum"]
    target = best["target"] or {key[len("target."):]: value for key, value in momentum.items()
                                if key.startswith("target.")}
    baseline = [prediction.get(key) for key in ("baseline_times", "baseline_cumhaz")]
    levels, strata_baselines = _strata(state, config, path)
    if config.loss == "cox" and strata_baselines is None and not all(
            isinstance(value, torch.Tensor) for value in baseline):
        raise CheckpointError(f"{path}: checkpoint has no Cox baseline hazard (its 'prediction' entry is "
                              "missing or damaged); it cannot give survival probabilities")
    train_time = torch.as_tensor(outcomes["time"], dtype=torch.float64)
    train_risk = None if member else prediction.get("train_risk")
    if train_risk is not None and not (isinstance(train_risk, torch.Tensor)
                                       and train_risk.shape == train_time.shape):
        raise CheckpointError(f"{path}: checkpoint's training risks do not match its {len(train_time)} training "
                              "rows (its 'prediction' entry is damaged)")
    _require(state["progress"], ("epoch", "batch_index", "step", "stopped_early", "fitted_start"), "progress")
    _require(momentum["bank._extra_state"], ("capacity", "count"), "bank")
    checkpoint = Checkpoint(
        path=path, config=config, preprocessor=Preprocessor.from_state(state["preprocessing"]),
        data=dict(state["data"]), time_scale=float(state["time_scale"]), target_weights=dict(target),
        baseline_times=baseline[0], baseline_cumhaz=baseline[1],
        train_time=train_time, train_event=torch.as_tensor(outcomes["event"], dtype=torch.bool),
        train_risk=None if train_risk is None else train_risk.to(torch.float64),
        event_time_quantiles=[float(t) for t in state["event_time_quantiles"]],
        strata_levels=levels, strata_baselines=strata_baselines,
        train_design={name: outcomes[name] for name in ("entry", "weight", "strata") if name in outcomes},
        progress=dict(state["progress"]), best_metric=best["metric"], best_epoch=int(best["epoch"]),
        history=list(state["history"]), bank=dict(momentum["bank._extra_state"]),
        ema=dict(momentum["_extra_state"]["ema"]), versions=dict(state["versions"]), state=state,
    )
    checkpoint.members = [checkpoint]
    return checkpoint


def load_state(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The checkpoint dict at ``path``, checked for its marker, version, keys and checksum (weights-only load)."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, not a checkpoint; give the .pt file written by train")
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:
        reason = "not a PyTorch file" if _not_torch_bytes(path) else _reason(error)
        raise CheckpointError(f"{path}: not a readable survmom checkpoint ({reason})") from error
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a survmom checkpoint (no '{FORMAT}' marker)")
    version = state.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {version!r} is newer than this survmom "
                              f"understands ({FORMAT_VERSION}); upgrade survmom")
    if version < FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {version} is older than this survmom reads "
                              f"({FORMAT_VERSION}); retrain")
    missing = [key for key in REQUIRED_KEYS if key not in state]
    if missing:
        raise CheckpointError(f"{path}: checkpoint is incomplete (missing {', '.join(missing)})")
    content = {key: value for key, value in state.items() if key != "checksum"}
    if state["checksum"] != content_checksum(content):
        raise CheckpointError(f"{path}: checkpoint content does not match its checksum (the file is damaged)")
    return state


def content_checksum(value: Any) -> str:
    """SHA-256 (hex) of plain data and tensors in a canonical order: dict items sorted by key; a tensor by its
    dtype, shape and bytes (CPU, contiguous); floats by their IEEE bits, so -0.0, NaN and inf count exactly."""
    digest = hashlib.sha256()
    for chunk in _canonical(value):
        digest.update(chunk)
    return digest.hexdigest()


def _canonical(value: Any) -> Iterator[bytes | memoryview]:
    """Type-tagged, length-prefixed bytes of ``value``: two different values never give the same stream."""
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu().contiguous()
        data = memoryview(tensor.reshape(-1).view(torch.uint8).numpy()) if tensor.numel() else b""
        yield from _tagged(b"T", f"{tensor.dtype}{tuple(tensor.shape)}".encode())
        yield from _tagged(b"D", data)
    elif isinstance(value, dict):
        yield b"M" + struct.pack("<Q", len(value))
        for key in sorted(value, key=lambda k: (type(k).__name__, repr(k))):
            yield from _canonical(key)
            yield from _canonical(value[key])
    elif isinstance(value, (list, tuple)):
        yield (b"L" if isinstance(value, list) else b"U") + struct.pack("<Q", len(value))
        for item in value:
            yield from _canonical(item)
    elif value is None or isinstance(value, bool):
        yield {None: b"N", True: b"1", False: b"0"}[value]
    elif isinstance(value, int):
        yield from _tagged(b"I", str(value).encode())
    elif isinstance(value, float):
        yield b"F" + struct.pack("<d", value)
    elif isinstance(value, str):
        yield from _tagged(b"S", value.encode("utf-8", "surrogatepass"))
    elif isinstance(value, bytes):
        yield from _tagged(b"B", value)
    else:  # torch.dtype, torch.Size and the like, which weights-only loading also allows
        yield from _tagged(b"O", f"{type(value).__name__}:{value!r}".encode())


def _strata(state: dict[str, Any], config: TrainConfig, path: Path
            ) -> tuple[list[tuple[str, ...]] | None, list[tuple[torch.Tensor, torch.Tensor]] | None]:
    """(levels, per-stratum baselines) of a stratified model's checkpoint; (None, None) without strata."""
    if not config.strata:
        return None, None
    levels = [tuple(str(label) for label in level) for level in state["strata"]["levels"]]
    baselines = [(entry["times"], entry["cumhaz"]) for entry in state["prediction"].get("strata_baselines") or []]
    if len(baselines) != len(levels) or not all(isinstance(t, torch.Tensor) and isinstance(h, torch.Tensor)
                                                for t, h in baselines):
        raise CheckpointError(f"{path}: checkpoint has no baseline hazard for each of its {len(levels)} strata "
                              "(its 'prediction' entry is missing or damaged)")
    return levels, baselines


def _require(mapping: dict[str, Any], keys: tuple[str, ...], what: str) -> None:
    missing = [key for key in keys if key not in mapping]
    if missing:
        raise KeyError(f"{what} lacks {', '.join(missing)}")


def _tagged(tag: bytes, data: bytes | memoryview) -> Iterator[bytes | memoryview]:
    yield tag + struct.pack("<Q", len(data))
    yield data


def _not_torch_bytes(path: Path) -> bool:
    """Whether the file starts as neither a zip archive (torch.save) nor a pickle (the legacy format): a data
    file given as the checkpoint, whose first bytes the unpickler would otherwise report as some opcode error."""
    with open(path, "rb") as stream:
        head = stream.read(2)
    return bool(head) and not head.startswith((b"PK", b"\x80"))


def _reason(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    if isinstance(error, torch.serialization.pickle.UnpicklingError) or "weights_only" in str(error):
        if "Unsupported operand" in str(error):  # not pickle data at all, e.g. a CSV file
            return "not a PyTorch file"
        return "it contains pickled objects that are not plain data; refusing to run them"
    if isinstance(error, EOFError) or (isinstance(error, OSError) and error.errno == errno.EINVAL) or (
            "PytorchStreamReader failed" in str(error)):
        return "the file is truncated or corrupted"
    first = text[0] if text else type(error).__name__
    return first[:200]

