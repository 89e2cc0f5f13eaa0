"""Predictions from the target network of a checkpoint, streamed in chunks from any readable file to CSV, TSV,
Parquet, Feather or an Excel workbook (by the output's suffix; CSV on stdout).

Output columns: the id column (if configured or present); cox → ``log_hazard``; weibull → ``log_scale``,
``log_shape`` (log scale in the user's time unit); both → ``risk`` (higher = earlier event),
``median_time`` (user's time unit; ``inf`` where the survival curve never reaches 0.5) and ``surv_<t>``
for each requested time t (labelled by :func:`time_label`). Only the columns the model needs (its features
and the id column) are read; others are ignored. Memory does not grow with the number of rows.

Study designs: a stratified Cox model (``--strata``) reads its stratum columns too and gives each row S(t)
and the median from its own stratum's baseline hazard (a stratum it was not trained on is an error). Entry
times and weights do not change a row's prediction and are not read. Counting-process rows (one row per
interval of a subject, with time-varying covariates) are predicted per row: the row's hazard, and S(t) from
time 0 as if its covariates held from the start.
"""

from __future__ import annotations

import decimal
import errno
import math
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from survmom.atomic import atomic_write, check_output_path
from survmom.core.losses import cox_median, cox_survival, weibull_log_median, weibull_survival
from survmom.core.mixture import median_by_bisection, median_on_grid
from survmom.data import (
    NewValues,
    Preprocessor,
    apply_strata,
    iter_table_batches,
    sample_rows,
    table_columns,
    text_notice,
)
from survmom.data.table_writers import WRITERS, write_csv, writer_for
from survmom.errors import CheckpointError, ConfigError, DataError
from survmom.training.checkpoint import Checkpoint, read_checkpoint
from survmom.training.config import PREDICTION_COLUMNS, TrainConfig
from survmom.training.designs import stratified_median, stratified_survival
from survmom.training.prepare import Outcomes, read_outcomes, strata_types
from survmom.training.trainer import backbone_from_config, user_weibull_params

OUTPUT_SUFFIXES = tuple(WRITERS)
SHOWN_TIMES = 5  # times shown in a message


def time_unit(config: TrainConfig) -> str | None:
    """The unit of a model's times where survmom knows it (the ``time_unit`` of the JSON numbers):
    ``"days since 'start'"`` for times computed from dates (``--origin-col``, ``--time-unit``); None: the unit of
    the file's time column."""
    return None if config.origin_col is None else f"{config.time_unit} since '{config.origin_col}'"


def time_label(t: float) -> str:
    """Exact label of a time for ``surv_<t>``, so distinct times never share a label.

    ``f"{t:g}"`` when it reads back as ``t`` (365, 100.5, 1e+20), else the shortest repr that does, without
    a trailing ".0" (1234567, 100.0000001).
    """
    short = f"{t:g}"
    if float(short) == t:
        return short
    text = repr(float(t))
    return text[:-2] if text.endswith(".0") else text


READABLE_DIGITS = 6  # significant digits of a time shown to people (the data and column names stay exact)


def time_texts(times: list[float], rounding: list[str | None] | None = None) -> list[str]:
    """``times`` for people (stderr tables and messages): :data:`READABLE_DIGITS` significant digits (1.00205,
    365, 0.25), more where fewer would show two distinct times alike.

    ``rounding``: per time, None (to nearest), ``"floor"`` or ``"ceiling"``: a bound ("must be <= t") shown
    on its allowed side, so that the number shown is itself allowed. Exact labels are :func:`time_label`'s.
    """
    rounding = rounding or [None] * len(times)
    for digits in range(READABLE_DIGITS, 18):
        texts = [_rounded(t, digits, way) for t, way in zip(times, rounding)]
        if len(set(texts)) == len(set(times)) == len(set(zip(times, texts))):
            return texts
    return [time_label(t) for t in times]


def time_text(t: float, rounding: str | None = None) -> str:
    """One time for people, as :func:`time_texts`."""
    return time_texts([t], [rounding])[0]


def _rounded(t: float, digits: int, way: str | None) -> str:
    nearest = f"{t:.{digits}g}"
    if way is None or not math.isfinite(t) or (float(nearest) >= t if way == "ceiling" else float(nearest) <= t):
        return nearest  # as floats compare: 1e+300 for 1e300, though its binary value's decimals go on
    context = decimal.Context(prec=digits, rounding=decimal.ROUND_FLOOR if way == "floor" else decimal.ROUND_CEILING)
    return f"{float(context.create_decimal(t)):.{digits}g}"


def check_times(times: list[float], source: str = "--times", hint: str = "") -> list[float]:
    """``times`` as floats (-0.0 as 0.0), each finite, >= 0 and given once; else a ConfigError that starts with
    ``source`` (the option, or where default times came from) and ends with ``hint``."""
    times = [float(t) + 0.0 for t in times]
    checks = (
        ([t for t in times if not math.isfinite(t)], "times must be finite numbers"),
        ([t for t in times if t < 0], "times must be >= 0"),
        (sorted(t for t, count in Counter(times).items() if count > 1), "times must be distinct"),
    )
    for bad, rule in checks:
        if bad:
            raise ConfigError(f"{source}: {rule}, got {show_times(bad)}{hint}")
    return times


def show_times(values: list[float], texts: list[str] | None = None) -> str:
    """The first few ``values`` for a message, by :func:`time_texts` (or their ``texts``), with a count of the
    rest."""
    texts = time_texts(values[:SHOWN_TIMES]) if texts is None else texts
    shown = ", ".join(texts[:SHOWN_TIMES])
    return shown + (f" (and {len(values) - SHOWN_TIMES} more)" if len(values) > SHOWN_TIMES else "")


@dataclass
class Member:
    """One network that predicts: the target network of a model, or of one member of an ensemble, with what turns
    its outputs into survival (its time scale and Cox baseline hazards)."""

    network: torch.nn.Module
    time_scale: float
    baseline_times: torch.Tensor | None
    baseline_cumhaz: torch.Tensor | None
    strata_baselines: list[tuple[torch.Tensor, torch.Tensor]] | None


@dataclass
class LoadedModel:
    """A checkpoint ready for inference: config, preprocessor and its members (one network, or the K members of
    a cross-fitted ensemble, whose survival curves are averaged).

    Target estimates ``est`` are (K, n, d): member k's network outputs for n rows.
    """

    config: TrainConfig
    preprocessor: Preprocessor
    members: list[Member]
    checkpoint: Checkpoint

    @property
    def stratified(self) -> bool:
        """Whether the model has one baseline hazard per stratum (``--strata``)."""
        return bool(self.config.strata)

    @property
    def baseline_times(self) -> torch.Tensor | None:
        """The times (m,) ascending where a Cox model's survival curves step (every member's and stratum's
        baseline times); None for Weibull."""
        if self.config.loss != "cox":
            return None
        times = [t for m in self.members for t in ([m.baseline_times] if m.strata_baselines is None
                                                   else [times for times, _ in m.strata_baselines])]
        return torch.unique(torch.cat([t.to(torch.float64) for t in times]))

    def column_types(self) -> dict[str, str]:
        """How to read a file for this model: the input columns' saved types, stratum columns as categories."""
        return {**self.preprocessor.column_types(), **strata_types(self.config)}

    def check_strata_columns(self, present: list[str], data: Path) -> None:
        """DataError if a stratified model's stratum columns are not all among ``present`` (``data``'s)."""
        missing = [name for name in self.config.strata or [] if name not in present]
        if missing:
            raise DataError(f"{data}: missing stratum column(s) {', '.join(map(repr, missing))}; the model was "
                            f"trained with --strata {','.join(self.config.strata)} and predicts S(t) from each "
                            "row's stratum")

    def strata_of(self, frame: Any, data: Path) -> torch.Tensor | None:
        """Stratum codes (n,) int64 of the rows of ``frame`` (read with :meth:`column_types`); None unstratified."""
        if not self.stratified:
            return None
        codes = apply_strata(frame, self.config.strata, self.checkpoint.strata_levels, path=data)
        return torch.from_numpy(codes)

    def read_outcomes(self, data: Path, *, delimiter: str | None = None, encoding: str | None = None,
                      sheet: str | None = None, warn: Callable[[str], None] | None = None) -> Outcomes:
        """A labelled file's features, outcomes and design columns (:func:`~survmom.training.prepare.read_outcomes`
        with this model's stratum levels); ``warn`` gets predict's warnings about values training did not see."""
        new_values = NewValues()
        outcomes = read_outcomes(data, self.config, self.preprocessor, delimiter=delimiter, encoding=encoding,
                                 sheet=sheet, strata_levels=self.checkpoint.strata_levels, trained=True,
                                 new_values=new_values)
        for message in new_values.warnings(data) if warn is not None else []:
            warn(message)
        return outcomes

    def _strata(self, strata: Any, rows: int) -> torch.Tensor | None:
        if not self.stratified:
            return None
        if strata is None:
            raise DataError(f"{self.checkpoint.path}: a stratified model needs each row's stratum "
                            f"({', '.join(self.config.strata)}) to give survival probabilities")
        strata = torch.as_tensor(strata, dtype=torch.int64)
        if len(strata) != rows:
            raise ValueError(f"{len(strata)} stratum codes for {rows} rows")
        return strata

    @torch.no_grad()
    def estimates(self, x: np.ndarray) -> torch.Tensor:
        """Target network outputs (K, n, d) of the K members for preprocessed features x (n, p)."""
        features = torch.from_numpy(x)
        return torch.stack([member.network(features) for member in self.members])

    def user_params(self, est: torch.Tensor) -> torch.Tensor:
        """Weibull (log scale, log shape) (K, n, 2) in the user's time unit, from internal estimates (K, n, 2)."""
        return torch.stack([user_weibull_params(e, m.time_scale) for e, m in zip(est, self.members, strict=True)])

    def survival(self, est: torch.Tensor, times: list[float], strata: Any = None) -> torch.Tensor:
        """S(t | x) (n, m) float64 at ``times`` (user's time unit) from target estimates (K, n, d), the members'
        mean; ``strata`` (n,) int64: each row's stratum code (required by a stratified model, else ignored)."""
        at = torch.tensor(times, dtype=torch.float64)
        return self._mean_survival(est, at, strata, paired=False)

    def survival_at_own_times(self, est: torch.Tensor, time: torch.Tensor, strata: Any = None) -> torch.Tensor:
        """S(t_i | x_i) (n,) float64: row i's predicted survival at its own time ``time[i]`` (user's time unit),
        as D-calibration needs; ``strata`` as in :meth:`survival`."""
        return self._mean_survival(est, time.to(torch.float64), strata, paired=True)

    def _mean_survival(self, est: torch.Tensor, at: torch.Tensor, strata: Any, paired: bool) -> torch.Tensor:
        codes = self._strata(strata, est.shape[1])
        curves = []
        for e, member in zip(est, self.members, strict=True):
            if codes is not None:
                curves.append(stratified_survival(e[:, 0].double(), codes, member.strata_baselines, at,
                                                  paired=paired))
            elif self.config.loss == "cox":
                curves.append(cox_survival(e[:, 0].double(), member.baseline_times, member.baseline_cumhaz, at,
                                           paired=paired))
            else:
                curves.append(weibull_survival(user_weibull_params(e, member.time_scale), at, paired=paired))
        return curves[0] if len(curves) == 1 else torch.stack(curves).mean(0)

    def risk(self, est: torch.Tensor) -> torch.Tensor:
        """Risk (n,) float64 from target estimates (K, n, d), higher = earlier event, the members' mean: cox the
        log hazard, weibull ``-log median`` (computed in log space, so it stays finite and ordered where the
        median overflows)."""
        if self.config.loss == "cox":
            return est[:, :, 0].double().mean(0)
        return -self._log_medians(est).mean(0)

    def _log_medians(self, est: torch.Tensor) -> torch.Tensor:
        """Each Weibull member's log median time (K, n) in the user's unit."""
        return weibull_log_median(self.user_params(est).reshape(-1, 2)).reshape(est.shape[:2])

    def median(self, est: torch.Tensor, strata: Any = None) -> torch.Tensor:
        """Median survival time (n,) float64 (user's unit; inf where the curve never reaches 0.5): one member's
        own, or the smallest time where the members' mean curve reaches 0.5 (:mod:`survmom.core.mixture`)."""
        codes = self._strata(strata, est.shape[1])
        if len(self.members) == 1:
            member, log_hz = self.members[0], est[0, :, 0].double()
            if codes is not None:
                return stratified_median(log_hz, codes, member.strata_baselines)
            if self.config.loss == "cox":
                return cox_median(log_hz, member.baseline_times, member.baseline_cumhaz)
            return torch.exp(self._log_medians(est)[0])

        def survival_at(t: torch.Tensor) -> torch.Tensor:
            return self._mean_survival(est, t, strata, paired=True)

        if self.config.loss == "cox":
            return median_on_grid(survival_at, self.baseline_times, est.shape[1])
        members = torch.exp(self._log_medians(est))
        return median_by_bisection(survival_at, members.min(0).values, members.max(0).values)

    def output_names(self, times: list[float]) -> list[str]:
        """The names of the prediction columns :meth:`outputs` gives for ``times``, in order."""
        fixed = PREDICTION_COLUMNS["cox" if self.config.loss == "cox" else "weibull"]
        return [*fixed, *(f"surv_{time_label(t)}" for t in times)]

    def outputs(self, x: np.ndarray, times: list[float], strata: Any = None) -> dict[str, np.ndarray]:
        """Named prediction columns for features x (n, p) at ``times`` (user's time unit); ``strata`` as in
        :meth:`survival`. An ensemble's log_hazard / log_scale / log_shape and risk are its members' means; its
        median_time and surv_<t> come from the members' mean survival curve."""
        est = self.estimates(x).double()
        columns: dict[str, np.ndarray] = {}
        if self.config.loss == "cox":
            columns["log_hazard"] = est[:, :, 0].mean(0).numpy()
        else:
            params = self.user_params(est).mean(0)
            columns["log_scale"] = params[:, 0].numpy()
            columns["log_shape"] = params[:, 1].numpy()
        columns["risk"] = self.risk(est).numpy()
        columns["median_time"] = self.median(est, strata).numpy()
        if times:
            surv = self.survival(est, times, strata).numpy()
            for j, t in enumerate(times):
                columns[f"surv_{time_label(t)}"] = surv[:, j]
        return columns


def refuse_design(model: LoadedModel, checkpoint: Path, command: str) -> None:
    """ConfigError for a model trained with entry times or case weights, which ``command`` (a figure built on
    the unweighted Kaplan-Meier of a file) would ignore; strata are fine (each row's S(t) is its stratum's)."""
    used = [option for option, value in (("--entry-col", model.config.entry_col),
                                         ("--weight-col", model.config.weight_col)) if value is not None]
    if used:
        # evaluate's Brier scores are null with entry times (S(t) is from time 0; the IPCW weights ignore entry)
        scored = ("its C-index takes the entry times" if model.config.entry_col is not None
                  else "its C-index and Brier score take the weights")
        raise ConfigError(f"{checkpoint}: {command} does not take a model trained with {' and '.join(used)}: its "
                          f"Kaplan-Meier curves ignore entry times and case weights; use survmom evaluate ({scored})")


def load_model(path: Path, warn: Callable[[str], None] | None = None) -> LoadedModel:
    """The checkpoint's target network (best validated weights), or an ensemble's members', with its
    preprocessing, ready to predict; ``warn`` is told when an ensemble's training is unfinished."""
    saved = read_checkpoint(path)
    trained = len(saved.state["ensemble"]["members"]) if saved.ensemble_size > 1 else 1
    if warn is not None and trained < saved.ensemble_size:
        using = (f"its {trained} trained member(s) predict" if trained else
                 "the first member, still in training, predicts")
        warn(f"{path}: an unfinished ensemble ({trained} of {saved.ensemble_size} members trained): {using}; "
             f"finish it with: survmom resume {path}")
    return LoadedModel(saved.config, saved.preprocessor, [_member(saved, member) for member in saved.members], saved)


def _member(saved: Checkpoint, member: Checkpoint) -> Member:
    """The network of one (member) checkpoint, ready to predict."""
    try:
        network = backbone_from_config(member.config, len(saved.preprocessor.feature_names))
        network.load_state_dict(member.target_weights)
    except Exception as error:
        raise CheckpointError(f"{saved.path}: checkpoint content is inconsistent ({type(error).__name__}: "
                              f"{str(error).splitlines()[0][:160] if str(error) else ''})") from error
    network.eval()
    return Member(network, member.time_scale, member.baseline_times, member.baseline_cumhaz, member.strata_baselines)


def predict_file(checkpoint: Path, data: Path, out: Path | None, times: list[float] | None = None,
                 chunk_rows: int = 65_536, warn: Callable[[str], None] | None = None, *,
                 delimiter: str | None = None, encoding: str | None = None, sheet: str | None = None) -> int:
    """Write predictions for every row of ``data`` to ``out`` (by suffix) or CSV on stdout; returns rows.

    ``warn`` (optional) gets how a delimited text file was read when it is not plain comma-separated, and
    is called once per column whose new values training did not prepare the model for (categories never
    seen, or no value in any row), after the predictions are written. ``delimiter``, ``encoding``:
    ``--delimiter``, ``--encoding`` for a delimited text ``data`` (None: detected from the file, whatever
    training read).
    """
    times = check_times(times or [])
    if out is not None:
        _check_output(out, data, checkpoint)
    model = load_model(checkpoint, warn)
    id_col = model.config.id_col
    present = table_columns(data, delimiter=delimiter, encoding=encoding, sheet=sheet)
    notice = text_notice(data, delimiter=delimiter, encoding=encoding, sheet=sheet)
    if notice and warn is not None:
        warn(notice)
    if id_col is not None and id_col in present and id_col in model.output_names(times):
        raise DataError(f"{data}: the id column '{id_col}' has the name of a prediction column, which would "
                        f"replace the ids; rename the id column (in this file and for training)")
    if id_col is not None and warn is not None and id_col not in present:
        warn(f"{data}: no id column '{id_col}' (the model was trained with --id-col {id_col}); the predictions "
             "are in the file's row order, without ids")
    new_values = NewValues()
    chunks = _prediction_chunks(model, data, present, id_col, times, chunk_rows, new_values, delimiter, encoding,
                                sheet)
    if out is None:
        stdout = sys.stdout.buffer
        try:
            rows = write_csv(chunks, stdout)
        except BrokenPipeError:
            raise
        except OSError as error:
            if error.filename is not None or error.errno not in (errno.ENOSPC, errno.EIO, errno.EDQUOT, errno.EFBIG):
                raise
            raise DataError(f"standard output: {error.strerror}; write the predictions to a file with -o") from None
    else:
        with atomic_write(out) as stream:
            rows = writer_for(out)(chunks, stream)
    for message in new_values.warnings(data) if warn is not None else []:
        warn(message)
    return rows


def _prediction_chunks(model: LoadedModel, data: Path, present: list[str], id_col: str | None, times: list[float],
                       chunk_rows: int, new_values: NewValues | None = None, delimiter: str | None = None,
                       encoding: str | None = None, sheet: str | None = None) -> Iterator[Any]:
    """Arrow tables of predictions, ``chunk_rows`` rows at a time; ``present``: the columns of ``data``."""
    import pyarrow as pa

    pre = model.preprocessor
    pre.check_columns(present, path=data)
    model.check_strata_columns(present, data)
    # Only the columns the model uses are read and checked: extra columns are ignored, whatever they hold.
    copy_id = id_col is not None and id_col in present
    wanted = list(dict.fromkeys(pre.input_columns + ([id_col] if copy_id else []) + list(model.config.strata or [])))
    for frame in iter_table_batches(data, wanted, chunk_rows, column_types=model.column_types(), delimiter=delimiter,
                                    encoding=encoding, sheet=sheet):
        x = pre.transform(frame, path=data, new_values=new_values)
        columns = model.outputs(x, times, model.strata_of(frame, data))
        _check_finite(columns, x, frame, pre, data)
        arrays: dict[str, Any] = {}
        if copy_id:
            arrays[id_col] = _id_array(frame[id_col], data, id_col)
        arrays.update({name: pa.array(values) for name, values in columns.items()})
        yield pa.table(arrays)


def _id_array(values: Any, data: Path, column: str) -> Any:
    """The id column as an Arrow array; DataError for nested values (lists, structs), which CSV cannot hold."""
    import pyarrow as pa

    array = pa.array(values.to_numpy(), from_pandas=True)
    if pa.types.is_nested(array.type):
        raise DataError(f"{data}: id column '{column}' holds nested values ({array.type}); "
                        f"nested/list columns are not supported as ids")
    return array


# Outputs that are infinite only through overflow: median_time (and weibull's risk = -log median) may be inf.
_FINITE_OUTPUTS = ("log_hazard", "log_scale", "log_shape")


def _check_finite(columns: dict[str, np.ndarray], x: np.ndarray, frame: Any, pre: Preprocessor, data: Path) -> None:
    """DataError if a prediction is NaN or a network output infinite, instead of writing it silently.

    Names the rows and the input column with the most extreme standardised value in them.
    """
    bad = np.zeros(len(x), dtype=bool)
    for name, values in columns.items():
        bad |= ~np.isfinite(values) if name in _FINITE_OUTPUTS else np.isnan(values)
    if not bad.any():
        return
    rows = np.flatnonzero(bad)
    column = _input_column(pre, int(np.argmax(np.abs(x[rows]).max(axis=0))))
    raise DataError(f"{data}: the model's predictions are not finite for {len(rows)} row(s); column '{column}' "
                    f"has the most extreme values there ({sample_rows(frame[column], rows)}): check the values "
                    f"and their unit")


def _input_column(pre: Preprocessor, feature: int) -> str:
    """The input column that feature ``feature`` (position in ``pre.feature_names``) comes from."""
    return next(name for name, cols in pre.input_slices() if cols.start <= feature < cols.stop)


def _check_output(out: Path, data: Path, checkpoint: Path) -> None:
    if out.suffix.lower() not in OUTPUT_SUFFIXES:
        raise ConfigError(f"-o {out}: unknown output type; use one of {', '.join(OUTPUT_SUFFIXES)}")
    check_output_path(out, [data, checkpoint], option="-o", example="predictions.csv")
