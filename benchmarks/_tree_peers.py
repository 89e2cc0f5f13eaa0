"""Two more peers for ``accuracy.py``: XGBoost's accelerated failure time model and a random survival forest.

Both take the shared design matrix of ``accuracy.design_matrix`` and return ``{"risk", "surv", "seconds"}``
(+ ``"info"``), like the other peers; ``seconds`` is the wall time of the whole fit.

* ``fit_xgboost_aft``: ``objective="survival:aft"`` with interval labels (event: [t, t]; censored: [t, inf)),
  a normal error on log time (``aft_loss_distribution_scale`` 1), eta 0.05, max_depth 3, at most 1000 rounds
  with early stopping (50 rounds) on the AFT negative log likelihood of 10% of the training split. Risk is minus
  the predicted log time. XGBoost keeps the error scale fixed, so for survival curves the scale sigma is
  re-fitted by maximum likelihood on the validation rows, margins fixed:
  ``S(t | x) = 1 - Phi((log t - mu(x)) / sigma)`` (Kalbfleisch & Prentice, *The Statistical Analysis of Failure
  Time Data*, 2nd ed., 2002, ch. 2.3).
* ``fit_rsf``: scikit-survival ``RandomSurvivalForest(n_estimators=100, min_samples_leaf=15,
  max_features="sqrt")`` (Ishwaran et al. 2008, Ann. Appl. Stat. 2:841). A training split above
  ``RSF_MAX_ROWS`` rows is replaced by a seeded subsample of that size, and times are coarsened to at most
  ``RSF_TIME_BINS`` distinct event times (each time moved up to the next quantile of the event times): every
  tree node stores a curve over the distinct event times, several GB for 100 trees on 20,000 rows with
  daily times otherwise. Both are noted in the record's ``info``. Risk is the sum of the predicted cumulative
  hazard over the forest's times (scikit-survival's ``predict``); survival curves from
  ``predict_survival_function``.
"""

from __future__ import annotations

import time as clock
from typing import Any

import numpy as np
import pandas as pd
from _datasets import step_function_at, validation_rows

RSF_MAX_ROWS = 20_000
RSF_TIME_BINS = 100


def fit_xgboost_aft(train: pd.DataFrame, test: pd.DataFrame, x_train: np.ndarray, x_test: np.ndarray,
                    names: list[str], times: np.ndarray, seed: int, threads: int | None = None) -> dict[str, Any]:
    """XGBoost ``survival:aft`` (normal error); survival curves with sigma re-fitted on the validation rows."""
    import xgboost as xgb

    duration = train["time"].to_numpy(float)
    event = train["event"].to_numpy() == 1
    upper = np.where(event, duration, np.inf)
    fit_rows, val_rows = validation_rows(train["event"].to_numpy(), seed)

    def matrix(rows: np.ndarray) -> xgb.DMatrix:
        out = xgb.DMatrix(x_train[rows])
        out.set_float_info("label_lower_bound", duration[rows])
        out.set_float_info("label_upper_bound", upper[rows])
        return out

    params = {"objective": "survival:aft", "eval_metric": "aft-nloglik", "aft_loss_distribution": "normal",
              "aft_loss_distribution_scale": 1.0, "eta": 0.05, "max_depth": 3, "seed": seed, "nthread": threads or 0}
    started = clock.perf_counter()
    booster = xgb.train(params, matrix(fit_rows), num_boost_round=1000, evals=[(matrix(val_rows), "val")],
                        early_stopping_rounds=50, verbose_eval=False)
    best = (0, booster.best_iteration + 1)
    mu_val = booster.predict(xgb.DMatrix(x_train[val_rows]), output_margin=True, iteration_range=best)
    sigma = aft_normal_scale(mu_val.astype(float), duration[val_rows], event[val_rows])
    seconds = clock.perf_counter() - started
    mu = booster.predict(xgb.DMatrix(x_test), output_margin=True, iteration_range=best).astype(float)
    surv = aft_normal_survival(mu, sigma, times) if len(times) else None
    return {"risk": -mu, "surv": surv, "seconds": seconds,
            "info": {"rounds": best[1], "sigma": sigma, "distribution": "normal"}}


def aft_normal_scale(mu: np.ndarray, time: np.ndarray, event: np.ndarray) -> float:
    """Maximum-likelihood sigma of ``log T = mu + sigma Z``, Z standard normal, right-censored, ``mu`` (n,) fixed."""
    from scipy.optimize import minimize_scalar
    from scipy.stats import norm

    log_t = np.log(time)

    def negative_log_likelihood(log_sigma: float) -> float:
        sigma = np.exp(log_sigma)
        z = (log_t - mu) / sigma
        return -float(np.sum(norm.logpdf(z[event]) - log_sigma) + np.sum(norm.logsf(z[~event])))

    return float(np.exp(minimize_scalar(negative_log_likelihood, bounds=(-5.0, 3.0), method="bounded").x))


def aft_normal_survival(mu: np.ndarray, sigma: float, times: np.ndarray) -> np.ndarray:
    """(n, m) ``S(t | x) = 1 - Phi((log t - mu) / sigma)`` at ``times`` (m,), same unit as the training times."""
    from scipy.stats import norm

    return norm.sf((np.log(times)[None, :] - mu[:, None]) / sigma)


def coarse_times(time: np.ndarray, event: np.ndarray, bins: int = RSF_TIME_BINS) -> np.ndarray:
    """``time`` (n,) moved up to the next of at most ``bins`` event-time quantiles (unchanged past the last)."""
    event_times = np.unique(time[event])
    if len(event_times) <= bins:
        return time
    grid = np.unique(np.quantile(event_times, np.linspace(0, 1, bins), method="higher"))
    moved = grid[np.minimum(np.searchsorted(grid, time, side="left"), len(grid) - 1)]
    return np.where(time <= grid[-1], moved, time)


def fit_rsf(train: pd.DataFrame, test: pd.DataFrame, x_train: np.ndarray, x_test: np.ndarray, names: list[str],
            times: np.ndarray, seed: int, threads: int | None = None) -> dict[str, Any]:
    """scikit-survival random survival forest; a seeded subsample of ``RSF_MAX_ROWS`` on larger training splits."""
    from sksurv.ensemble import RandomSurvivalForest
    from sksurv.util import Surv

    started = clock.perf_counter()
    rows = np.arange(len(train))
    info: dict[str, Any] = {"trees": 100, "min_samples_leaf": 15, "max_features": "sqrt"}
    if len(rows) > RSF_MAX_ROWS:
        rows = np.sort(np.random.default_rng(seed).choice(len(rows), RSF_MAX_ROWS, replace=False))
        info["subsample"] = f"fitted on a seeded subsample of {RSF_MAX_ROWS} of {len(train)} training rows"
    event = train["event"].to_numpy()[rows] == 1
    duration = coarse_times(train["time"].to_numpy(float)[rows], event)
    info["distinct_event_times"] = len(np.unique(duration[event]))
    forest = RandomSurvivalForest(n_estimators=100, min_samples_leaf=15, max_features="sqrt",
                                  n_jobs=threads or -1, random_state=seed)
    forest.fit(x_train[rows], Surv.from_arrays(event, duration))
    seconds = clock.perf_counter() - started
    risk = forest.predict(x_test).astype(float)
    surv = None
    if len(times):
        curves = forest.predict_survival_function(x_test, return_array=True)  # (n_test, len(unique_times_))
        surv = step_function_at(np.asarray(forest.unique_times_, float), curves.T, times)
    return {"risk": risk, "surv": surv, "seconds": seconds, "info": info}
