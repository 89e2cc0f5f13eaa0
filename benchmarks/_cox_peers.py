"""The Cox-type and neural peers of ``accuracy.py``: lifelines CoxPH, pycox DeepSurv, the batch-16 Cox MLPs
(torchsurv Momentum and plain) and XGBoost ``survival:cox`` (settings in ``accuracy.py``'s docstring).

Each takes the training and test frames, the shared design matrix of ``accuracy.design_matrix``, the evaluation
times and a seed, and returns ``{"risk", "surv", "seconds"}``; ``seconds`` is the wall time of the whole fit.
Cox-type peers without curves of their own get them from a Breslow baseline on their training log hazards.
"""

from __future__ import annotations

import math
import time as clock
import warnings

import numpy as np
import pandas as pd
from _datasets import step_function_at, validation_rows


def breslow_survival(risk_train: np.ndarray, train: pd.DataFrame, risk_test: np.ndarray,
                     times: np.ndarray) -> np.ndarray | None:
    """Cox survival (n_test, m) at ``times`` from a Breslow baseline fitted on the training log hazards."""
    import torch

    from survmom.core.losses import breslow_baseline, cox_survival

    if len(times) == 0:
        return None
    base_t, base_h = breslow_baseline(torch.as_tensor(risk_train, dtype=torch.float64),
                                      torch.as_tensor(train["event"].to_numpy() == 1),
                                      torch.as_tensor(train["time"].to_numpy(float)))
    return cox_survival(torch.as_tensor(risk_test, dtype=torch.float64), base_t, base_h,
                        torch.as_tensor(times)).numpy()


def fit_coxph(train, test, x_train, x_test, names, times, seed):
    from lifelines import CoxPHFitter

    frame = pd.DataFrame(x_train, columns=names).assign(time=train["time"].to_numpy(), event=train["event"].to_numpy())
    started = clock.perf_counter()
    for step_size in (0.5, 0.1):  # lifelines' tip for Newton-Raphson that fails to converge (flchain does)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = CoxPHFitter(penalizer=0.01).fit(frame, "time", "event", fit_options={"step_size": step_size})
        if not any("converge" in str(w.message) for w in caught):
            break
    seconds = clock.perf_counter() - started
    x = pd.DataFrame(x_test, columns=names)
    risk = model.predict_log_partial_hazard(x).to_numpy(float)
    surv = model.predict_survival_function(x, times=times).to_numpy(float).T if len(times) else None
    return {"risk": risk, "surv": surv, "seconds": seconds}


def fit_deepsurv(train, test, x_train, x_test, names, times, seed):
    import torch
    import torchtuples as tt
    from pycox.models import CoxPH

    torch.manual_seed(seed)
    np.random.seed(seed)
    event, duration = train["event"].to_numpy(np.float32), train["time"].to_numpy(np.float32)
    fit_rows, val_rows = validation_rows(train["event"].to_numpy(), seed)
    net = tt.practical.MLPVanilla(x_train.shape[1], [32, 32], 1, batch_norm=True, dropout=0.1, output_bias=False)
    model = CoxPH(net, tt.optim.Adam(lr=1e-3))
    started = clock.perf_counter()
    model.fit(x_train[fit_rows], (duration[fit_rows], event[fit_rows]), batch_size=256, epochs=100,
              callbacks=[tt.callbacks.EarlyStopping(patience=10)], verbose=False,
              val_data=(x_train[val_rows], (duration[val_rows], event[val_rows])), val_batch_size=100_000)
    seconds = clock.perf_counter() - started
    risk = model.predict(x_test).reshape(-1).astype(float)
    surv = None
    if len(times):
        model.compute_baseline_hazards(x_train, (duration, event))
        curves = model.predict_surv_df(x_test)
        surv = step_function_at(curves.index.to_numpy(float), curves.to_numpy(float), times)
    return {"risk": risk, "surv": surv, "seconds": seconds}


def _mlp(in_features: int):
    from torch import nn

    return nn.Sequential(nn.Linear(in_features, 32), nn.ReLU(), nn.Dropout(0.1), nn.Linear(32, 32), nn.ReLU(),
                         nn.Dropout(0.1), nn.Linear(32, 1))


def _fit_batch16(train, x_train, seed, momentum: bool):
    """Batch-16 Cox MLP (torchsurv Momentum or plain); early stopping on validation C; returns the scorer."""
    import torch
    from torchsurv.loss.cox import neg_partial_log_likelihood
    from torchsurv.loss.momentum import Momentum

    from survmom.core.metrics import concordance_index

    torch.manual_seed(seed)
    fit_rows, val_rows = validation_rows(train["event"].to_numpy(), seed)
    x = torch.as_tensor(x_train)
    event = torch.as_tensor(train["event"].to_numpy() == 1)
    time = torch.as_tensor(train["time"].to_numpy(np.float32))
    net = _mlp(x.shape[1])
    if momentum:
        model = Momentum(net, neg_partial_log_likelihood, batchsize=16, steps=10, rate=0.999)
        params, scorer = model.online.parameters(), model.infer
    else:
        model = net
        params = net.parameters()

        def scorer(inputs):
            net.eval()
            with torch.no_grad():
                return net(inputs)

    optimizer = torch.optim.Adam(params, lr=1e-3)
    scored = model.target if momentum else net
    best, best_state, waited = -1.0, None, 0
    generator = torch.Generator().manual_seed(seed)
    fit_idx = torch.as_tensor(fit_rows)
    x_val, e_val, t_val = x[val_rows], event[val_rows], time[val_rows]
    for _ in range(50):
        model.train()
        order = fit_idx[torch.randperm(len(fit_idx), generator=generator)]
        for start in range(0, len(order) - 15, 16):  # full batches only: torchsurv's queue assumes them
            rows = order[start : start + 16]
            if momentum:
                loss = model(x[rows], event[rows], time[rows])
            else:
                loss = neg_partial_log_likelihood(net(x[rows]), event[rows], time[rows])
            if loss.requires_grad:
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        metric = concordance_index(scorer(x_val).reshape(-1), e_val, t_val)
        if math.isfinite(metric) and metric > best:
            best, waited = metric, 0
            best_state = {k: v.detach().clone() for k, v in scored.state_dict().items()}
        else:
            waited += 1
            if waited >= 10:
                break
    if best_state is not None:
        scored.load_state_dict(best_state)
    return lambda inputs: scorer(torch.as_tensor(inputs)).reshape(-1).double().numpy()


def _fit_torch_cox(train, test, x_train, x_test, times, seed, momentum):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchsurv warns on every batch without events
        started = clock.perf_counter()
        predict = _fit_batch16(train, x_train, seed, momentum)
        seconds = clock.perf_counter() - started
    risk = predict(x_test)
    return {"risk": risk, "surv": breslow_survival(predict(x_train), train, risk, times), "seconds": seconds}


def fit_torchsurv_momentum(train, test, x_train, x_test, names, times, seed):
    return _fit_torch_cox(train, test, x_train, x_test, times, seed, momentum=True)


def fit_cox_mlp_b16(train, test, x_train, x_test, names, times, seed):
    return _fit_torch_cox(train, test, x_train, x_test, times, seed, momentum=False)


def fit_xgboost(train, test, x_train, x_test, names, times, seed, threads=None):
    import xgboost as xgb

    duration = train["time"].to_numpy(float)
    label = np.where(train["event"].to_numpy() == 1, duration, -duration)
    fit_rows, val_rows = validation_rows(train["event"].to_numpy(), seed)
    params = {"objective": "survival:cox", "eval_metric": "cox-nloglik", "eta": 0.05, "max_depth": 3,
              "seed": seed, "nthread": threads or 0}
    dfit = xgb.DMatrix(x_train[fit_rows], label=label[fit_rows])
    dval = xgb.DMatrix(x_train[val_rows], label=label[val_rows])
    started = clock.perf_counter()
    booster = xgb.train(params, dfit, num_boost_round=1000, evals=[(dval, "val")], early_stopping_rounds=50,
                        verbose_eval=False)
    seconds = clock.perf_counter() - started
    best = (0, booster.best_iteration + 1)
    risk = booster.predict(xgb.DMatrix(x_test), output_margin=True, iteration_range=best).astype(float)
    risk_train = booster.predict(xgb.DMatrix(x_train), output_margin=True, iteration_range=best).astype(float)
    return {"risk": risk, "surv": breslow_survival(risk_train, train, risk, times), "seconds": seconds}
