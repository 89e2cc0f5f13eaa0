"""Training configuration: every option of ``survmom train`` with its default and help, YAML loading, validation.

:class:`TrainConfig` is the one source of the options: the CLI builds ``survmom train``'s options (names,
defaults, help) from its fields, and checkpoints save it as plain data.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from survmom.choices import ACTIVATIONS, DEVICES, LOSSES, RATE_SCHEDULES, TIES, TIME_UNITS, text_codec, unknown_codec
from survmom.errors import ConfigError

DEFAULT_BANK_SIZE = 2048
SMALL_DATA_BATCH = 32
MAX_SEED = 2**32 - 1  # numpy's and torch's seeds fit; the trainer derives per-epoch seeds from it
# The default batch by training rows (auto_batch): epochs of 100 steps from 3,200 rows, the batch capped at 128
# until an epoch reaches 500 steps (64,000 rows), then epochs of 500 steps.
STEPS_PER_EPOCH_MID_DATA = 100
MID_DATA_BATCH_CAP = 128
STEPS_PER_EPOCH_LARGE_DATA = 500
MAX_ENSEMBLE = 50
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
    """Default rows per step: ``max(32, min(128, ceil(rows / 100)), ceil(rows / 500))``.

    That is 32 up to 3,200 training rows (small batches are what the memory bank is for); epochs of 100 steps
    up to 12,800 rows; 128 up to 64,000 rows; then epochs of 500 steps. From a few thousand rows a batch of
    50–128 rows holds plenty of events, and fewer, larger steps reach the validation C-index of batch 32 in
    a fraction of the time (BENCHMARKS.md, "The default batch by data size").
    """
    def batch_for(steps_per_epoch: int) -> int:
        return -(-train_rows // steps_per_epoch)

    return max(SMALL_DATA_BATCH, min(MID_DATA_BATCH_CAP, batch_for(STEPS_PER_EPOCH_MID_DATA)),
               batch_for(STEPS_PER_EPOCH_LARGE_DATA))


def cli(help: str, *flags: str, path: bool = False) -> dict[str, Any]:
    """A :class:`TrainConfig` field's metadata for the CLI: its ``help``; ``flags``, option names where not
    ``--field-name`` (a short form, say); ``path``: the text is a file path."""
    return {"help": help, "flags": flags, "path": path}


def _one_of(values) -> str:
    return ", ".join(values[:-1]) + f" or {values[-1]}"


@dataclass
class TrainConfig:
    """Every option of ``survmom train``; field names are the CLI option names with ``_`` for ``-``.

    A list field is a comma-separated value on the command line (``--hidden 64,64``) and a list in YAML; an item
    in double quotes may hold commas (a column named "dose, mg").
    """

    time_col: str = field(default="time", metadata=cli(
        "Column with the event or censoring time (> 0 for weibull); with --origin-col, its date."))
    event_col: str = field(default="event", metadata=cli("Column with the event flag: 1/0, true/false, yes/no."))
    event_value: str | None = field(default=None, metadata=cli(
        "The event column's value that means an event (2 for R's 1 = censored / 2 = event, or a word such as "
        "dead); every other value is then censored."))
    id_col: str | None = field(default=None, metadata=cli("Identifier column: not a feature, copied to predictions."))
    entry_col: str | None = field(default=None, metadata=cli(
        "Entry-time column (delayed entry / left truncation; the start of counting-process rows): a row is at risk "
        "on (entry, time]; entry < time in every row."))
    weight_col: str | None = field(default=None, metadata=cli(
        "Case-weight column (finite, >= 0; lifelines' weights_col): weighted likelihood and metrics."))
    strata: list[str] | None = field(default=None, metadata=cli(
        "Comma-separated stratum columns (Cox): one baseline hazard per combination of their values; risk sets "
        "never cross strata."))
    origin_col: str | None = field(default=None, metadata=cli(
        "Column with each subject's origin date (diagnosis, randomisation): the time column (and --entry-col) "
        "then hold dates too, and time = time date - origin date in --time-unit (not features)."))
    time_unit: str = field(default="days", metadata=cli(
        f"Unit of times computed from dates (--origin-col): {_one_of(list(TIME_UNITS))} (a week is 7 days, a "
        "month 30.4375, a year 365.25; datetimes keep fractions of a day); predict's and evaluate's --times and "
        "the times they print are in it."))
    date_format: str | None = field(default=None, metadata=cli(
        "strptime format of dates written as text in the origin, time and entry columns when not ISO 8601 "
        "(2020-12-31, 2020-12-31 14:05), e.g. %d/%m/%Y; ISO dates are read either way."))
    features: list[str] | None = field(
        default=None, metadata=cli("Comma-separated feature columns (default: all others)."))
    exclude: list[str] | None = field(
        default=None, metadata=cli("Comma-separated columns to leave out of the features."))
    categorical: list[str] | None = field(
        default=None, metadata=cli(
            "Comma-separated feature columns to treat as categories whatever their values (codes: a centre, a ZIP)."))
    numeric: list[str] | None = field(default=None, metadata=cli(
        "Comma-separated feature columns to treat as numbers (text values must parse as numbers)."))
    # None: the workbook's first sheet (survmom.data.excel); saved for the training file (and a --val workbook).
    sheet: str | None = field(default=None, metadata=cli(
        "Sheet of .xlsx/.xlsm workbooks: its name, or its number from 1 (default: the first sheet)."))
    # None: detected per file from its first lines (survmom.data.text.dialect).
    delimiter: str | None = field(default=None, metadata=cli(
        "Delimiter of .csv/.tsv/.txt/.dat files (one character, 'tab', or 'space' for runs of spaces and tabs); "
        "default: detected per file from its first lines (comma, semicolon with decimal commas, tab, or spaces)."))
    # None: UTF-8, or UTF-16/32 by the file's byte-order mark (survmom.data.text_encoding.file_encoding).
    encoding: str | None = field(default=None, metadata=cli(
        "Text encoding of .csv/.tsv/.txt/.dat files: a Python codec name (cp1252 for a CSV from Excel on Windows, "
        "latin-1, utf-16, shift_jis); default: UTF-8, or UTF-16 when the file starts with its byte-order mark."))
    loss: str = field(default="cox", metadata=cli("Survival loss: cox (partial likelihood) or weibull (AFT)."))
    ties: str = field(default="efron", metadata=cli(f"Cox tie handling: {_one_of(TIES)}."))
    # None: auto_batch(training rows), resolved before training and saved.
    batch: int | None = field(
        default=None, metadata=cli("Rows per training step (default: 32 up to 3,200 training rows; then rows/100 "
                                   "up to 128, and rows/500 from 64,000 rows)."))
    epochs: int = field(default=40, metadata=cli("Maximum number of passes over the training rows."))
    lr: float = field(default=1e-3, metadata=cli("AdamW learning rate."))
    weight_decay: float = field(default=1e-4, metadata=cli("AdamW weight decay."))
    grad_clip: float = field(
        default=5.0, metadata=cli("Scale each step's gradient to at most this L2 norm (inf: no clipping)."))
    hidden: list[int] = field(
        default_factory=lambda: [64, 64],
        metadata=cli("Hidden layer widths, comma-separated ('' for a linear model)."))
    dropout: float = field(default=0.1, metadata=cli("Dropout after each hidden layer (online network only)."))
    activation: str = field(default="relu", metadata=cli(f"Hidden activation: {_one_of(list(ACTIVATIONS))}."))
    batchnorm: bool = field(default=False, metadata=cli("BatchNorm after each hidden layer."))
    linear_skip: bool = field(
        default=True, metadata=cli("Add a linear path: output = linear(x) + MLP(x), MLP starting at zero."))
    linear_init: bool = field(default=True, metadata=cli(
        "Start the linear path (or a network without hidden layers) at a ridge-penalised linear Cox / Weibull "
        "AFT fit."))
    linear_penalty: float = field(default=0.1, metadata=cli(
        "Ridge penalty of that fit: mean negative log-likelihood + penalty/2 × ||w||² (standardised x)."))
    linear_frozen: bool = field(
        default=True, metadata=cli("Keep the fitted linear path fixed; train only the MLP correction."))
    bank_steps: int | None = field(
        default=None, metadata=cli("Memory bank size in batches (bank = steps × batch)."))
    bank_size: int | None = field(
        default=None, metadata=cli(f"Memory bank size in samples (default: {DEFAULT_BANK_SIZE}); 0 disables."))
    rate: float = field(default=0.999, metadata=cli("EMA rate m of the target network, in [0, 1]."))
    rate_schedule: str = field(
        default="constant", metadata=cli(f"EMA rate schedule: {_one_of(RATE_SCHEDULES)} (towards 1)."))
    rate_warmup: bool = field(
        default=True, metadata=cli("Warm the EMA rate up as min(m, (1+n)/(10+n)) over n updates."))
    val_frac: float = field(
        default=0.2, metadata=cli("Fraction of rows held out for validation, stratified by event "
                                  "(by stratum and event with --strata)."))
    val: str | None = field(default=None, metadata=cli("Validation file instead of a random split.", path=True))
    ensemble: int = field(default=1, metadata=cli(
        "Members of a cross-fitted ensemble: K > 1 deals the rows into K folds and trains K models, member k "
        "validated (and early-stopped) on fold k and trained on the others, so every row is trained on; "
        "predictions average the members' survival curves. Takes K times as long; --val-frac is then 1/K."))
    patience: int | None = field(
        default=10, metadata=cli("Stop after this many epochs without a better validation C-index."))
    start_margin: float = field(default=0.0, metadata=cli(
        "Keep the fitted linear start unless a trained epoch's validation C-index beats it by more than this many "
        "standard errors of the start's C (1: the one-standard-error rule, for a model no more complex than the "
        "data show it needs); 0: the best epoch wins by any margin."))
    seed: int = field(default=0, metadata=cli("Random seed (split, initialisation, batches, dropout)."))
    device: str = field(default="auto", metadata=cli("auto (CUDA when available), cpu or cuda."))
    nproc: int = field(default=1, metadata=cli(
        "Train with this many processes on this machine (torch.distributed through torch's launcher, as torchrun "
        "--standalone does: gloo on CPU, NCCL on CUDA); --batch is per process. Across machines: torchrun."))
    # None: 1 thread for training steps (small tensors gain nothing from more).
    threads: int | None = field(default=None, metadata=cli(
        "CPU threads for training (default: 1, fastest for small batches; 0: torch's default; at most the usable "
        "cores: more are capped to them)."))
    out: str = field(default="model.pt", metadata=cli("Checkpoint file to write.", "--out", "-o", path=True))
    quiet: bool = field(
        default=False, metadata=cli("No progress display: warnings, errors and the final 'done:' line only.",
                                    "--quiet", "-q"))

    def to_dict(self) -> dict[str, Any]:
        """Plain-data copy (lists copied)."""
        return dataclasses.asdict(self)

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

    def member(self, index: int) -> TrainConfig:
        """The config member ``index`` of an ensemble trains with: this one with its own seed (initialisation,
        batches, dropout); the folds come from this config's seed."""
        return dataclasses.replace(self, seed=(self.seed + index) % (MAX_SEED + 1))

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
            (math.isfinite(self.start_margin) and self.start_margin >= 0,
             f"--start-margin must be a finite number >= 0 (standard errors), got {self.start_margin}"),
            (self.threads is None or self.threads >= 0, f"--threads must be >= 0, got {self.threads}"),
            (1 <= self.ensemble <= MAX_ENSEMBLE,
             f"--ensemble must be an integer from 1 to {MAX_ENSEMBLE}, got {self.ensemble}"),
            (self.ensemble == 1 or self.val is None,
             "--ensemble needs the random split (each member validates on its own fold), not a --val file"),
            (self.ensemble == 1 or self.nproc == 1,
             "--ensemble trains its members one after another in one process; drop --nproc"),
            (self.nproc >= 1, f"--nproc must be at least 1, got {self.nproc}"),
            (0 <= self.seed <= MAX_SEED, f"--seed must be an integer from 0 to {MAX_SEED}, got {self.seed}"),
            (self.encoding is None or text_codec(self.encoding) is not None, unknown_codec(str(self.encoding))),
            (self.grad_clip > 0, f"--grad-clip must be positive (inf: no clipping), got {self.grad_clip}"),
            (bool(self.time_col) and bool(self.event_col), "--time-col and --event-col must not be empty"),
            (self.time_col != self.event_col, f"--time-col and --event-col are both {self.time_col!r}"),
            (self.id_col not in (self.time_col, self.event_col),
             f"--id-col {self.id_col!r} is also the time or event column; an id column only labels predictions"),
            (not self.strata or self.loss == "cox",
             "--strata needs --loss cox (a stratified baseline hazard); a weibull model takes strata as features"),
            _distinct_roles(self),
            *_date_checks(self),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"{source}: {message}" if source != "options" else message)


def design_roles(config: TrainConfig) -> dict[str, list[str]]:
    """The outcome and design columns of a config, role -> column names (none of them is a feature):
    time, event, id, entry, weight, strata and origin (only those given)."""
    roles = {"time": [config.time_col], "event": [config.event_col], "id": [config.id_col],
             "entry": [config.entry_col], "weight": [config.weight_col], "strata": list(config.strata or []),
             "origin": [config.origin_col]}
    return {role: [name for name in names if name is not None] for role, names in roles.items()
            if any(name is not None for name in names)}


def _date_checks(config: TrainConfig) -> list[tuple[bool, str]]:
    """(ok, message) of the date options: a known unit and a strptime format (that they come with --origin-col
    is :func:`check_dates_named`'s check: a SurvivalModel's unit is set before fit names the origin)."""
    return [
        (config.time_unit in TIME_UNITS,
         f"--time-unit must be one of {', '.join(TIME_UNITS)}, got {config.time_unit!r}"),
        (config.date_format is None or "%" in config.date_format,
         f"--date-format is a strptime format such as %d/%m/%Y, got {config.date_format!r}"),
    ]


def check_dates_named(config: TrainConfig) -> None:
    """ConfigError for --time-unit or --date-format without --origin-col: with numeric times they would do nothing."""
    if config.origin_col is None and (config.time_unit != "days" or config.date_format is not None):
        raise ConfigError("--time-unit and --date-format apply to dates: give --origin-col, the column of each "
                          "subject's origin date (the time column then holds end dates)")


def _distinct_roles(config: TrainConfig) -> tuple[bool, str]:
    """(ok, message): each column has at most one of the roles time, event, id, entry, weight, strata."""
    seen: dict[str, str] = {}
    for role, names in design_roles(config).items():
        for name in names:
            if name in seen:
                other = seen[name]
                return False, (f"column {name!r} is given twice: as the {other} column and as the {role} column"
                               if other != role else f"--{role.replace('_', '-')} names {name!r} twice")
            seen[name] = role
    return True, ""


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
    # safe_load keeps the last of two equal keys: `epochs: 1 ... epochs: 3` would train 3 epochs without a word.
    seen: set[str] = set()
    for key_node, _ in yaml.compose(text, Loader=yaml.SafeLoader).value:
        if key_node.value in seen:
            raise ConfigError(f"{path}: option {key_node.value} is given twice (again on line "
                              f"{key_node.start_mark.line + 1}); keep one")
        seen.add(key_node.value)
    options: dict[str, Any] = {}
    for key, value in values.items():
        name = str(key).replace("-", "_")
        if name in options:
            raise ConfigError(f"{path}: option {name.replace('_', '-')} is given twice (as {key!r} and another "
                              "spelling); keep one")
        options[name] = value
    return options


def parse_list(text: str | list | None, kind: type = str, option: str = "option") -> list | None:
    """'a,b,c' (or a YAML list) → ['a', 'b', 'c'] converted with ``kind``; None stays None. An item in double
    quotes may hold commas (``'"dose, mg",age'``)."""
    if text is None:
        return None
    if isinstance(text, list):
        items = text
    elif '"' in str(text):  # CSV quoting: '"dose, mg",age' names a column holding a comma
        items = [part.strip() for part in next(csv.reader([str(text)], skipinitialspace=True), [])]
    else:
        items = [part.strip() for part in str(text).split(",")]
    if kind is not str and "" in items and any(item != "" for item in items):  # `--times 365,,730`: a value lost
        raise ConfigError(f"{option} has an empty item in {text!r}; give numbers like 365,730")
    items = [item for item in items if item != ""]
    # int() would truncate 16.7 and read true as 1: list items are numbers of the right kind, or their text.
    if kind is int and any(isinstance(item, bool) or (isinstance(item, float) and not item.is_integer())
                           for item in items):
        raise ConfigError(f"{option} expects a comma-separated list of int, got {text!r}")
    try:
        return [kind(item) for item in items]
    except (TypeError, ValueError):
        raise ConfigError(f"{option} expects a comma-separated list of {kind.__name__}, got {text!r}") from None


def _option_types() -> dict[str, tuple[type, type | None]]:
    """Each option's value type (None allowed or not) from TrainConfig's annotations, and a list's item type."""
    types_ = {}
    for name, hint in typing.get_type_hints(TrainConfig).items():
        args = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
        (kind,) = [arg for arg in args if arg is not type(None)]
        types_[name] = (list, typing.get_args(kind)[0]) if typing.get_origin(kind) is list else (kind, None)
    return types_


# name -> (str, int, float, bool or list; the item type of a list, else None)
OPTION_TYPES = _option_types()
# The options whose value may be None (not given): `epochs: null` in YAML names no epochs.
NULLABLE_OPTIONS = frozenset(name for name, hint in typing.get_type_hints(TrainConfig).items()
                             if type(None) in typing.get_args(hint))


def _normalise(key: str, value: Any, source: str) -> Any:
    option = f"--{key.replace('_', '-')}"
    kind, item = OPTION_TYPES[key]
    if value is None and key not in NULLABLE_OPTIONS and key != "hidden":
        raise ConfigError(f"{source}: {option} needs a value, got none (null); leave it out for its default")
    if kind is list:
        if key == "hidden" and value in (None, "", "none", []):
            return []
        if key == "hidden" and isinstance(value, str) and any(part.strip() == "" for part in value.split(",")):
            raise ConfigError(f"{source}: {option} has an empty layer size in {value!r}; give sizes like 64,64")
        return parse_list(value, item, option)
    if kind in (int, float) and value is not None:
        if isinstance(value, bool) or (kind is int and isinstance(value, float) and not value.is_integer()):
            raise ConfigError(f"{source}: {option} must be {kind.__name__}, got {value!r}")
        try:
            return kind(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{source}: {option} must be {kind.__name__}, got {value!r}") from None
    if kind is str and value is not None and not isinstance(value, str):
        # YAML reads `time_col: 5` or `event_col: 2020-01-01` as a number or a date: the header text is meant.
        if isinstance(value, bool) or not isinstance(value, (int, float, datetime.date)):
            raise ConfigError(f"{source}: {option} must be text, got {value!r}")
        return value.isoformat() if isinstance(value, datetime.date) else str(value)
    if kind is bool and not isinstance(value, bool):
        raise ConfigError(f"{source}: {option} must be true or false, got {value!r}")
    return value
