"""Training configuration: defaults, YAML loading, validation. Plain data only (saved in checkpoints)."""

from __future__ import annotations

import dataclasses
import datetime
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from survmom.errors import ConfigError

LOSSES = ("cox", "weibull")
TIES = ("efron", "breslow")
DEVICES = ("auto", "cpu", "cuda")
RATE_SCHEDULES = ("constant", "cosine")
DEFAULT_BANK_SIZE = 2048
SMALL_DATA_BATCH = 32
MAX_SEED = 2**32 - 1  # numpy's and torch's seeds fit; the trainer derives per-epoch seeds from it
STEPS_PER_EPOCH_LARGE_DATA = 500
ACTIVATIONS = ("relu", "selu", "gelu", "silu", "tanh", "elu")
# The columns predict writes for each loss, in order, before one ``surv_<t>`` column per --times value.
PREDICTION_COLUMNS = {"cox": ("log_hazard", "risk", "median_time"),
                      "weibull": ("log_scale", "log_shape", "risk", "median_time")}


def check_id_column_name(id_col: str | None) -> None:
    """ConfigError if ``--id-col`` has a name predict writes its own column under (it would replace the ids)."""
    reserved = {name for names in PREDICTION_COLUMNS.values() for name in names}
    if id_col is not None and (id_col in reserved or id_col.startswith("surv_")):
        raise ConfigError(f"--id-col {id_col!r} is also the name of a prediction column "
                          f"({', '.join(sorted(reserved))}, surv_<time>), which would replace the ids in the "
                          "predictions; rename the id column")


def auto_batch(train_rows: int) -> int:
    """Default rows per step: 32, or for more than 16,000 training rows ``ceil(rows / 500)``.

    Small batches are what the memory bank is for; on large cohorts every batch of a few hundred rows holds
    plenty of events, and ~500 steps per epoch keeps an epoch (and early stopping) on a sensible time scale.
    """
    return max(SMALL_DATA_BATCH, -(-train_rows // STEPS_PER_EPOCH_LARGE_DATA))


# Options added after checkpoint format 1 was fixed, with the values that reproduce how older checkpoints trained.
OPTIONS_ADDED_LATER: dict[str, Any] = {
    "linear_skip": False, "linear_init": False, "linear_penalty": 0.1, "linear_frozen": False, "threads": None,
    "delimiter": None,
}


@dataclass
class TrainConfig:
    """Every option of ``survmom train``; field names are the CLI option names with ``_`` for ``-``."""

    time_col: str = "time"
    event_col: str = "event"
    id_col: str | None = None
    features: list[str] | None = None
    exclude: list[str] | None = None
    categorical: list[str] | None = None  # feature columns read as categories whatever their values
    numeric: list[str] | None = None  # feature columns read as numbers (text parsed; non-numbers refused)
    delimiter: str | None = None  # of delimited text files; None: detected per file (comma, semicolon, tab)
    loss: str = "cox"
    ties: str = "efron"
    batch: int | None = None  # None: auto_batch(training rows), resolved before training and saved
    epochs: int = 40
    lr: float = 1e-3
    weight_decay: float = 1e-4
    hidden: list[int] = field(default_factory=lambda: [64, 64])
    dropout: float = 0.1
    activation: str = "relu"
    batchnorm: bool = False
    linear_skip: bool = True
    linear_init: bool = True
    linear_penalty: float = 0.1
    linear_frozen: bool = True
    bank_steps: int | None = None
    bank_size: int | None = None
    rate: float = 0.999
    rate_schedule: str = "constant"
    rate_warmup: bool = True
    grad_clip: float = 5.0
    val_frac: float = 0.2
    val: str | None = None
    patience: int | None = 10
    seed: int = 0
    device: str = "auto"
    threads: int | None = None  # CPU threads for training; None: 1 (small tensors gain nothing from more)
    out: str = "model.pt"
    quiet: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Plain-data copy (lists copied)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_checkpoint(cls, values: dict[str, Any], source: str = "checkpoint") -> TrainConfig:
        """:meth:`from_dict` for a saved config: options added since it was saved take their old behaviour."""
        return cls.from_dict({**OPTIONS_ADDED_LATER, **values}, source=source)

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config") -> TrainConfig:
        """Build from a mapping; unknown keys raise :class:`ConfigError` naming them and ``source``."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        config = cls(**{k: _normalise(k, v, source) for k, v in values.items()})
        config.validate(source)
        return config

    def bank_capacity(self) -> int:
        """Bank size in samples: ``bank_size``, else ``bank_steps × batch``, else :data:`DEFAULT_BANK_SIZE`."""
        if self.bank_size is not None:
            return self.bank_size
        if self.bank_steps is not None:
            return self.bank_steps * (self.batch or SMALL_DATA_BATCH)
        return DEFAULT_BANK_SIZE

    def validate(self, source: str = "options") -> None:
        """Raise :class:`ConfigError` for the first invalid value, naming the option."""
        checks: list[tuple[bool, str]] = [
            (self.loss in LOSSES, f"--loss must be one of {', '.join(LOSSES)}, got {self.loss!r}"),
            (self.ties in TIES, f"--ties must be one of {', '.join(TIES)}, got {self.ties!r}"),
            (self.device in DEVICES, f"--device must be one of {', '.join(DEVICES)}, got {self.device!r}"),
            (self.rate_schedule in RATE_SCHEDULES,
             f"--rate-schedule must be one of {', '.join(RATE_SCHEDULES)}, got {self.rate_schedule!r}"),
            (self.activation in ACTIVATIONS,
             f"--activation must be one of {', '.join(ACTIVATIONS)}, got {self.activation!r}"),
            (self.batch is None or self.batch >= 1, f"--batch must be at least 1, got {self.batch}"),
            (self.epochs >= 1, f"--epochs must be at least 1, got {self.epochs}"),
            (self.lr > 0 and self.lr < float("inf"), f"--lr must be a positive number, got {self.lr}"),
            (0 <= self.weight_decay < float("inf"),
             f"--weight-decay must be a finite number >= 0, got {self.weight_decay}"),
            (0 <= self.linear_penalty < float("inf"),
             f"--linear-penalty must be a finite number >= 0, got {self.linear_penalty}"),
            (0 <= self.dropout < 1, f"--dropout must be in [0, 1), got {self.dropout}"),
            (all(h >= 1 for h in self.hidden), f"--hidden sizes must be positive integers, got {self.hidden}"),
            (0 <= self.rate <= 1, f"--rate must be in [0, 1], got {self.rate}"),
            (self.bank_size is None or self.bank_size >= 0, f"--bank-size must be >= 0, got {self.bank_size}"),
            (self.bank_steps is None or self.bank_steps >= 0,
             f"--bank-steps must be >= 0, got {self.bank_steps}"),
            (self.bank_size is None or self.bank_steps is None,
             "give --bank-steps or --bank-size, not both"),
            (0 <= self.val_frac < 1, f"--val-frac must be in [0, 1), got {self.val_frac}"),
            (self.patience is None or self.patience >= 1, f"--patience must be at least 1, got {self.patience}"),
            (self.threads is None or self.threads >= 0, f"--threads must be >= 0, got {self.threads}"),
            (0 <= self.seed <= MAX_SEED, f"--seed must be an integer from 0 to {MAX_SEED}, got {self.seed}"),
            (self.grad_clip > 0, f"--grad-clip must be positive (inf: no clipping), got {self.grad_clip}"),
            (bool(self.time_col) and bool(self.event_col), "--time-col and --event-col must not be empty"),
            (self.time_col != self.event_col, f"--time-col and --event-col are both {self.time_col!r}"),
            (self.id_col not in (self.time_col, self.event_col),
             f"--id-col {self.id_col!r} is also the time or event column; an id column only labels predictions"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"{source}: {message}" if source != "options" else message)


def load_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping of options (keys with ``-`` or ``_``); clear errors for bad files."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read config file ({error})") from None
    try:
        values = yaml.safe_load(text)
    except yaml.YAMLError as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ConfigError(f"{path}: not valid YAML ({first})") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: a config file must be a mapping of option: value, got {type(values).__name__}")
    options: dict[str, Any] = {}
    for key, value in values.items():
        name = str(key).replace("-", "_")
        if name in options:
            raise ConfigError(f"{path}: option {name.replace('_', '-')} is given twice (as {key!r} and another "
                              "spelling); keep one")
        options[name] = value
    return options


def parse_list(text: str | list | None, kind: type = str, option: str = "option") -> list | None:
    """'a,b,c' (or a YAML list) → ['a', 'b', 'c'] converted with ``kind``; None stays None."""
    if text is None:
        return None
    items = text if isinstance(text, list) else [part.strip() for part in str(text).split(",")]
    items = [item for item in items if item != ""]
    # int() would truncate 16.7 and read true as 1: list items are numbers of the right kind, or their text.
    if kind is int and any(isinstance(item, bool) or (isinstance(item, float) and not item.is_integer())
                           for item in items):
        raise ConfigError(f"{option} expects a comma-separated list of int, got {text!r}")
    try:
        return [kind(item) for item in items]
    except (TypeError, ValueError):
        raise ConfigError(f"{option} expects a comma-separated list of {kind.__name__}, got {text!r}") from None


_LIST_OPTIONS = {"features": str, "exclude": str, "categorical": str, "numeric": str, "hidden": int}
_NUMBER_OPTIONS = {"batch": int, "epochs": int, "lr": float, "weight_decay": float, "dropout": float,
                   "bank_steps": int, "bank_size": int, "rate": float, "grad_clip": float,
                   "val_frac": float, "patience": int, "seed": int, "threads": int}


# Options whose value is text: column names, choices and paths.
_TEXT_OPTIONS = {"time_col", "event_col", "id_col", "loss", "ties", "activation", "rate_schedule", "val", "device",
                 "out", "delimiter"}


def _normalise(key: str, value: Any, source: str) -> Any:
    option = f"--{key.replace('_', '-')}"
    if key in _LIST_OPTIONS:
        if key == "hidden" and value in (None, "", "none", []):
            return []
        if key == "hidden" and isinstance(value, str) and any(part.strip() == "" for part in value.split(",")):
            raise ConfigError(f"{source}: {option} has an empty layer size in {value!r}; give sizes like 64,64")
        return parse_list(value, _LIST_OPTIONS[key], option)
    if key in _NUMBER_OPTIONS and value is not None:
        kind = _NUMBER_OPTIONS[key]
        if isinstance(value, bool) or (kind is int and isinstance(value, float) and not value.is_integer()):
            raise ConfigError(f"{source}: {option} must be {kind.__name__}, got {value!r}")
        try:
            return kind(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{source}: {option} must be {kind.__name__}, got {value!r}") from None
    if key in _TEXT_OPTIONS and value is not None and not isinstance(value, str):
        # YAML reads `time_col: 5` or `event_col: 2020-01-01` as a number or a date: the header text is meant.
        if isinstance(value, bool) or not isinstance(value, (int, float, datetime.date)):
            raise ConfigError(f"{source}: {option} must be text, got {value!r}")
        return value.isoformat() if isinstance(value, datetime.date) else str(value)
    flags = ("batchnorm", "linear_skip", "linear_init", "linear_frozen", "rate_warmup", "quiet")
    if key in flags and not isinstance(value, bool):
        raise ConfigError(f"{source}: {option} must be true or false, got {value!r}")
    return value
