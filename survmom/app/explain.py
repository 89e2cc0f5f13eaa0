"""``survmom explain``: permutation importance of each input column of a checkpoint on a labelled file.

For an input column j, the rows of its block of model inputs are shuffled together (a numeric column with its
``<name>__missing`` indicator, a categorical column's whole one-hot block) while every other input stays in
place, and the model's Harrell C (or its design's concordance) on the file drops by

.. math::

    \\Delta_j = C(x) - C(x^{\\pi, j}),

where :math:`x^{\\pi, j}` is the input matrix with column j's block taken from the rows in the order of a
random permutation :math:`\\pi` (Breiman 2001, "Random forests", Machine Learning 45:5-32, section 10;
Fisher, Rudin & Dominici 2019, "All models are wrong, but many are useful", JMLR 20(177): "model reliance").
A column the model does not use has :math:`\\Delta_j = 0` exactly; a negative value is chance. For a model
with a study design (entry times, weights, strata), C is the design's concordance, as ``survmom evaluate``
reports it (:func:`~survmom.core.metrics.concordance_index`).

R permutations of the rows are drawn once from ``numpy.random.default_rng(seed)`` and used for every column
(common random numbers: two columns are compared on the same shuffles). The interval is the 95% Student-t
interval ``mean ± t(0.975, R-1) · sd / sqrt(R)`` (sd with R-1 degrees of freedom) of the R drops: it covers
the importance averaged over all permutations of *these* rows, given *this* model; it says how precisely R
shuffles pinned that average down, not how the importance would vary over new samples of patients (that
needs a bootstrap of the rows, or one held-out file per fold). Measure importance on rows the model was not
trained on: on its training rows it also measures what the model memorised.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from survmom.app.evaluate import design_notes, features_and_design
from survmom.app.predict import LoadedModel, load_model
from survmom.core import metrics
from survmom.data import fingerprint, text_notice
from survmom.errors import ConfigError, DataError

RISK_MEANING = {"cox": "log hazard", "weibull": "−log median time"}


def permutation_drops(risk: Callable[[np.ndarray], np.ndarray], x: np.ndarray, event: np.ndarray, time: np.ndarray,
                      blocks: list[slice], repeats: int, seed: int, design: dict[str, torch.Tensor] | None = None
                      ) -> tuple[float, np.ndarray]:
    """Harrell's C of ``risk(x)`` and the drop in C (k, repeats) when each of the k ``blocks`` is permuted.

    ``risk``: maps inputs (m, p) float32 to risks (m,), higher = earlier event; ``x`` (n, p) float32, ``event``
    (n,) bool, ``time`` (n,). Repeat r permutes the rows of a block by the r-th of ``repeats`` permutations
    drawn from ``numpy.random.default_rng(seed)``, the same for every block: one ``risk`` call (forward pass)
    per block and repeat, on one working copy of ``x`` whose block is overwritten and then put back.
    (One call on the stacked repeats would be no faster: its activations no longer fit in the cache.)
    ``design``: the rows' entry, weight and strata tensors (n,) that the model uses; C is then the design's
    concordance (:func:`~survmom.core.metrics.concordance_index`).
    """
    event, time = torch.tensor(event), torch.tensor(time)  # copies: parsed outcomes may be read-only views
    design = design or {}
    baseline = _concordance(risk(x), event, time, design)
    if math.isnan(baseline):  # no comparable pair: no C, permuted or not
        return baseline, np.full((len(blocks), repeats), math.nan)
    rng = np.random.default_rng(seed)
    perms = [rng.permutation(len(x)) for _ in range(repeats)]
    work = x.copy()
    drops = np.empty((len(blocks), repeats))
    for k, cols in enumerate(blocks):
        for r, perm in enumerate(perms):
            work[:, cols] = x[perm, cols]
            drops[k, r] = baseline - _concordance(risk(work), event, time, design)
        work[:, cols] = x[:, cols]
    return baseline, drops


def _concordance(risk: np.ndarray, event: torch.Tensor, time: torch.Tensor, design: dict[str, torch.Tensor]
                 ) -> float:
    return metrics.concordance_index(torch.from_numpy(np.asarray(risk, dtype=np.float64)), event, time, **design)


def t_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float] | tuple[None, None]:
    """``mean ± t((1 + level) / 2, R - 1) · sd / sqrt(R)`` of R ``values`` (sd with ddof 1); (None, None) for R < 2."""
    count = len(values)
    if count < 2:
        return None, None
    half = student_t_quantile((1 + level) / 2, count - 1) * float(np.std(values, ddof=1)) / math.sqrt(count)
    mean = float(np.mean(values))
    return mean - half, mean + half


def student_t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile (0.5 < p < 1) of Student's t with ``df`` (integer >= 1) degrees of freedom.

    Solves ``A(t | df) = 2p - 1`` by bisection on ``theta = atan(t / sqrt(df))``, where ``A(t | df) = P(|T| <= t)``
    is the finite series of Abramowitz & Stegun (1964), 26.7.3 (odd df) and 26.7.4 (even df), exact for integer
    df, so no special-function library is needed.

    >>> round(student_t_quantile(0.975, 4), 4), round(student_t_quantile(0.975, 1), 3)
    (2.7764, 12.706)
    """
    if not 0.5 < p < 1 or df < 1:
        raise ValueError(f"need 0.5 < p < 1 and df >= 1, got p={p}, df={df}")

    def two_sided(theta: float) -> float:
        c2, term, total = math.cos(theta) ** 2, 1.0, 1.0
        if df % 2:
            for k in range(1, (df - 1) // 2):  # 1 + (2/3) c² + (2·4)/(3·5) c⁴ + ...
                term *= c2 * (2 * k) / (2 * k + 1)
                total += term
            return 2 / math.pi * (theta + (math.sin(theta) * math.cos(theta) * total if df > 1 else 0.0))
        for k in range(1, df // 2):  # 1 + (1/2) c² + (1·3)/(2·4) c⁴ + ...
            term *= c2 * (2 * k - 1) / (2 * k)
            total += term
        return math.sin(theta) * total

    lo, hi = 0.0, math.pi / 2
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if two_sided(mid) < 2 * p - 1 else (lo, mid)
    return math.sqrt(df) * math.tan((lo + hi) / 2)


def model_risk(model: LoadedModel) -> Callable[[np.ndarray], np.ndarray]:
    """The model's risk (n,) float64 of preprocessed inputs (n, p); see :meth:`LoadedModel.risk`."""
    return lambda x: model.risk(model.estimates(x)).numpy()


def explain_file(checkpoint: Path, data: Path, *, repeats: int = 5, seed: int = 0, delimiter: str | None = None,
                 encoding: str | None = None, sheet: str | None = None,
                 warn: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Permutation importance of every input column of ``checkpoint`` on the labelled file ``data``.

    Returns plain data (what ``--json`` prints): the file's rows and events, the baseline C (``harrell_c``:
    Harrell's, or with a study design the design's concordance, described under ``design``), and per
    input column (sorted by mean drop, largest first) its inputs, the ``repeats`` drops in C, their mean, sd
    and 95% t-interval. DataError when C is undefined on ``data`` (no event, or no comparable pair).
    """
    if repeats < 1:
        raise ConfigError(f"--repeats must be >= 1, got {repeats}")
    model = load_model(checkpoint)
    outcomes = model.read_outcomes(data, delimiter=delimiter, encoding=encoding, sheet=sheet, warn=warn)
    x, design = features_and_design(outcomes)
    config = model.config
    designed = {"design": {"entry_col": config.entry_col, "weight_col": config.weight_col,
                           "strata": config.strata, "concordance": design_notes(design)["concordance"]}
                } if design else {}
    name = concordance_name(designed)
    events = int(outcomes.event.sum())
    if events == 0:
        raise DataError(f"{data}: no events in the event column '{model.config.event_col}' ({len(outcomes)} rows, "
                        f"all censored): {name}, and so permutation importance, is undefined without events")
    pre = model.preprocessor
    blocks = pre.input_slices()
    baseline, drops = permutation_drops(model_risk(model), x, outcomes.event, outcomes.time,
                                        [cols for _, cols in blocks], repeats, seed, design)
    if math.isnan(baseline):
        raise DataError(f"{data}: no pair of rows can be compared (a row with an event before another row's "
                        f"time), so {name}, and so permutation importance, is undefined")
    names = pre.feature_names
    columns = []
    for (name, cols), row in zip(blocks, drops):
        low, high = t_interval(row)
        columns.append({"column": name, "inputs": names[cols], "mean_drop": float(row.mean()),
                        "sd": float(row.std(ddof=1)) if repeats > 1 else None, "ci95": [low, high],
                        "drops": row.tolist()})
    columns.sort(key=lambda entry: -entry["mean_drop"])  # stable: ties keep the model's column order
    if warn is not None:
        notice = text_notice(data, delimiter=delimiter, encoding=encoding, sheet=sheet)
        if notice:
            warn(notice)
        if fingerprint(data) == model.checkpoint.data.get("fingerprint"):
            warn(f"{data} is the file the model was trained on: the importance also credits what the model "
                 "memorised; explain on held-out rows to see what it learnt")
    return {
        "checkpoint": str(checkpoint),
        "data": str(data),
        "rows": len(outcomes),
        "events": events,
        "loss": model.config.loss,
        "risk": RISK_MEANING[model.config.loss],
        "harrell_c": baseline,
        "repeats": repeats,
        "seed": seed,
        "interval": "95% t-interval over the repeats: mean ± t(0.975, R-1) · sd / sqrt(R)",
        "columns": columns,
        **designed,
    }


def concordance_name(result: dict[str, Any]) -> str:
    """The name of the C in ``result`` (:func:`explain_file`'s): Harrell's C, or for a model with a study design
    the design's concordance, named as ``survmom evaluate`` names it."""
    return "C-index (with the design)" if result.get("design") else "Harrell's C"


def render_importance(result: dict[str, Any]) -> None:
    """The importance table on stderr (Rich); file and column names are shown literally."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    def fmt(value: float | None) -> str:
        return "n/a" if value is None else f"{value:+.4f}"

    title = Text(f"Permutation importance on {result['data']} ({result['rows']} rows, {result['events']} events)",
                 style="table.title")
    design = f"; {result['design']['concordance']}" if result.get("design") else ""
    caption = (f"{concordance_name(result)} {result['harrell_c']:.4f} unpermuted{design}; the drop in C when a "
               f"column's rows are shuffled: mean and 95% t-interval over {result['repeats']} permutation(s), "
               f"seed {result['seed']}")
    table = Table(title=title, caption=Text(caption))
    for name, justify in (("#", "right"), ("column", "left"), ("mean drop in C", "right"), ("95% interval", "right"),
                          ("inputs", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for rank, entry in enumerate(result["columns"], start=1):
        low, high = entry["ci95"]
        table.add_row(str(rank), Text(entry["column"]), fmt(entry["mean_drop"]),
                      "n/a" if low is None else f"{fmt(low)} to {fmt(high)}", str(len(entry["inputs"])))
    Console(stderr=True, markup=False, emoji=False).print(table)
