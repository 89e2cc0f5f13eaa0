"""A ridge-penalised linear survival fit that the linear path of a network starts from.

With ``linear_skip`` the network is ``linear(x) + MLP(x)`` with the MLP's output starting at zero
(:func:`survmom.core.model.build_backbone`). :func:`fit_linear_start` sets ``linear`` to the maximum of the
penalised log-likelihood of a linear model on the training rows, so that training starts from the linear Cox
model (or Weibull AFT model) a statistician would fit first; the trainer validates that start as epoch 0, so
early stopping keeps it when the MLP does not beat it on the validation rows, and by default keeps the linear
path fixed so the MLP learns only a correction to it (an offset, as in boosting from a linear model).

Objective, on the mean per training row as in glmnet and scikit-learn (so ``penalty`` keeps its relative weight
whatever the number of rows; it shrinks all weights, which changes risk rankings only through correlated
features)::

    cox:     -l_partial(x @ w) / n + penalty / 2 * ||w||^2                      (Efron or Breslow ties)
    weibull: -l(log_scale = x @ w + b_scale, log_shape = b_shape) / n + penalty / 2 * ||w||^2

The Weibull fit, like lifelines' ``WeibullAFTFitter`` without ancillary covariates, lets only the scale depend
on the covariates; the shape stays one constant. Solved in float64 with L-BFGS
(:func:`survmom.core.optim.lbfgs_minimize`) on at most ``max_rows`` rows, fewer for wide data so the float64 copy
stays under ``MAX_ENTRIES`` numbers (a seeded random subset beyond that; 100,000 rows pin down a linear model's
few coefficients, and the MLP, trained on every row, corrects what is left).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from survmom.core.losses import cox_loss, weibull_loss
from survmom.core.optim import lbfgs_minimize
from survmom.core.sorting import descending_time_key
from survmom.errors import SurvmomError

PENALTY = 0.1
MAX_ROWS = 100_000
MAX_ENTRIES = 20_000_000  # rows x features of the float64 design copy (160 MB): wide one-hot data use fewer rows


def start_rows(n: int, p: int, seed: int, max_rows: int = MAX_ROWS) -> Tensor:
    """The rows (int64, in the order the fit takes them) that :func:`fit_linear_start` fits on, of ``n`` rows
    with ``p`` features: all of them, or a seeded random subset of at most ``max_rows`` (fewer for wide data)."""
    max_rows = min(max_rows, max(2_000, MAX_ENTRIES // max(p, 1)))
    if n <= max_rows:
        return torch.arange(n)
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:max_rows]


def fit_linear_start(
    linear: nn.Linear,
    x: Tensor,
    event: Tensor,
    time: Tensor,
    loss: str,
    *,
    ties: str = "efron",
    penalty: float = PENALTY,
    max_rows: int = MAX_ROWS,
    seed: int = 0,
    entry: Tensor | None = None,
    weight: Tensor | None = None,
    strata: Tensor | None = None,
) -> bool:
    """Overwrite ``linear`` (p → 1 for cox, p → 2 for weibull) with the penalised linear fit; True if it did.

    Args:
        linear: the layer to set; its current bias is the Weibull starting point (a constant fit).
        x: (n, p) standardised features; event: (n,) bool; time: (n,) internal time units (> 0 for weibull).
        loss: ``"cox"`` or ``"weibull"``.
        entry, weight, strata: optional (n,) study design of the rows, passed to the loss (strata: cox only):
            entry times < time, case weights >= 0 (the objective's mean is then per unit of weight),
            int64 stratum codes.

    The layer is left unchanged (and False returned) when there is no event or the fit is not finite.
    """
    if not bool(event.any()) or len(time) < 2:
        return False
    rows = start_rows(len(time), x.shape[1], seed, max_rows)
    # Rows sorted once by descending time, so each Cox evaluation skips the sort; one gather of x.
    time64 = time.detach()[rows.to(time.device)].cpu().double()
    keys, order = torch.sort(descending_time_key(time64))
    rows, time64 = rows[order].to(x.device), time64[order]
    x64, event64 = x.detach()[rows].cpu().double(), event[rows].cpu()
    n, p = x64.shape
    design = {name: None if values is None else values.detach()[rows.to(values.device)].cpu()
              for name, values in (("entry", entry), ("weight", weight), ("strata", strata))}
    if design["entry"] is not None:
        design["entry"] = design["entry"].double()
    if design["weight"] is not None:
        design["weight"] = design["weight"].double()
        n = design["weight"].sum().item()
        if n <= 0:
            return False
    if loss == "weibull" and design.pop("strata") is not None:
        raise SurvmomError("strata apply to the cox loss only, not weibull")
    presorted = (keys, torch.arange(x64.shape[0]))
    start = torch.zeros(p + 2 if loss == "weibull" else p, dtype=torch.float64)
    if loss == "weibull":
        start[p:] = linear.bias.detach().double().cpu()

    def objective(params: Tensor) -> Tensor:
        weights = params[:p]
        if loss == "cox":
            nll = cox_loss(x64 @ weights, event64, time64, ties=ties, reduction="sum", presorted=presorted,
                           **design) / n
        else:
            log_params = torch.stack([x64 @ weights + params[p], params[p + 1].expand(x64.shape[0])], dim=1)
            nll = weibull_loss(log_params, event64, time64, reduction="sum", **design) / n
        return nll + 0.5 * penalty * weights.square().sum()

    solution = lbfgs_minimize(objective, start)
    weights, bias = solution[:p], solution[p:]
    with torch.no_grad():
        value = objective(solution).item()
        if not (math.isfinite(value) and bool(torch.isfinite(solution).all())):
            return False
        linear.weight.zero_()
        linear.weight[0].copy_(weights.to(linear.weight.dtype))
        if loss == "weibull":
            linear.bias.copy_(bias.to(linear.bias.dtype))
        else:
            linear.bias.zero_()  # a Cox model's scale is free: the baseline hazard absorbs it
    return True
