"""Optimisers: AdamW for training (torch's arithmetic), L-BFGS for the small full-batch fits.

:class:`AdamW` is Loshchilov & Hutter's decoupled-weight-decay Adam (ICLR 2019). Its arithmetic is torch's
public functional ``torch.optim.adamw.adamw``, so updates are bit-identical to ``torch.optim.AdamW`` with
the same ``fused`` choice (tested), and ``state_dict`` / ``load_state_dict`` use ``torch.optim``'s format.
What it leaves out is ``torch.optim.Optimizer`` itself: constructing one, and its ``step``, import
``torch._dynamo``, a cost as long as ``import torch`` that every ``survmom train`` would pay before its first
step although nothing is compiled; the functional does not import it (tested).

:func:`lbfgs_minimize` is the two-loop-recursion L-BFGS of Nocedal & Wright, *Numerical Optimization* (2006),
algorithm 7.4, with a backtracking Armijo line search.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor
from torch.optim.adamw import adamw

from survmom.errors import StateError

# Device types with a fused AdamW kernel that survmom trains on (torch has both from 2.4).
FUSED_DEVICE_TYPES = ("cpu", "cuda")


class AdamW:
    """AdamW over ``params`` (tensors; those whose ``.grad`` is None at a step are left alone, as in torch).

    ``fused``: True runs torch's fused kernel, as ``torch.optim.AdamW(fused=True)``; False runs
    ``torch.optim.AdamW()``'s default (a loop over parameters on the CPU, foreach kernels on CUDA); None
    (default) means True when every parameter is on a device in :data:`FUSED_DEVICE_TYPES`, else False.
    ``state``: per-parameter index, torch's ``step`` (0-d float32), ``exp_avg`` and ``exp_avg_sq``.
    """

    def __init__(self, params: Iterable[Tensor], lr: float = 1e-3, weight_decay: float = 1e-2,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, fused: bool | None = None) -> None:
        self.params = list(params)
        self.lr, self.weight_decay, self.betas, self.eps = lr, weight_decay, tuple(betas), eps
        if fused is None:
            fused = all(p.device.type in FUSED_DEVICE_TYPES for p in self.params)
        self.fused = fused
        self.state: dict[int, dict[str, Tensor]] = {}
        # The indices of the parameters that had gradients at the last step, and their tensor lists for adamw.
        self._active: tuple[int, ...] = ()
        self._lists: tuple[list[Tensor], list[Tensor], list[Tensor], list[Tensor]] = ([], [], [], [])

    def zero_grad(self, set_to_none: bool = True) -> None:
        for param in self.params:
            if set_to_none:
                param.grad = None
            elif param.grad is not None:
                param.grad.zero_()

    @torch.no_grad()
    def step(self) -> None:
        """One update of every parameter that has a gradient."""
        grads = [p.grad for p in self.params]
        active = tuple(i for i, grad in enumerate(grads) if grad is not None)
        if not active:
            return
        if active != self._active:  # the first step, or other parameters have gradients than at the last one
            for i in active:
                if i not in self.state:
                    self.state[i] = self._new_state(self.params[i])
            states = [self.state[i] for i in active]
            self._active = active
            self._lists = ([self.params[i] for i in active], [s["exp_avg"] for s in states],
                           [s["exp_avg_sq"] for s in states], [s["step"] for s in states])
        params, exp_avgs, exp_avg_sqs, steps = self._lists
        beta1, beta2 = self.betas
        adamw(params, [grads[i] for i in active], exp_avgs, exp_avg_sqs, [], steps, fused=self.fused or None,
              amsgrad=False, beta1=beta1, beta2=beta2, lr=self.lr, weight_decay=self.weight_decay, eps=self.eps,
              maximize=False)

    def _new_state(self, param: Tensor, step: float = 0.0) -> dict[str, Tensor]:
        """torch.optim.AdamW's initial state: the step count lives on the parameter's device when fused."""
        return {"step": torch.tensor(step, dtype=torch.float32, device=param.device if self.fused else "cpu"),
                "exp_avg": torch.zeros_like(param, memory_format=torch.preserve_format),
                "exp_avg_sq": torch.zeros_like(param, memory_format=torch.preserve_format)}

    def state_dict(self) -> dict[str, Any]:
        """``torch.optim.AdamW.state_dict()``'s layout: per-index state and one parameter group (references)."""
        group = {"lr": self.lr, "betas": self.betas, "eps": self.eps, "weight_decay": self.weight_decay,
                 "amsgrad": False, "maximize": False, "foreach": None, "capturable": False,
                 "differentiable": False, "fused": True if self.fused else None, "decoupled_weight_decay": True,
                 "params": list(range(len(self.params)))}
        return {"state": {i: dict(s) for i, s in self.state.items()}, "param_groups": [group]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state written by :meth:`state_dict` or by ``torch.optim.AdamW`` over the same parameters;
        raises :class:`StateError`, changing nothing, if it is for other parameters (count or shapes)."""
        groups = state_dict["param_groups"]
        if len(groups) != 1 or len(groups[0]["params"]) != len(self.params):
            raise StateError(f"optimizer state is for {sum(len(g['params']) for g in groups)} parameters "
                             f"in {len(groups)} group(s), not {len(self.params)} in one")
        group = groups[0]
        state: dict[int, dict[str, Tensor]] = {}
        for position, key in enumerate(group["params"]):
            saved = state_dict["state"].get(key)
            if saved is None:
                continue
            param = self.params[position]
            for name in ("exp_avg", "exp_avg_sq"):
                if tuple(saved[name].shape) != tuple(param.shape):
                    raise StateError(f"optimizer state {name} of parameter {position} has shape "
                                     f"{tuple(saved[name].shape)}, the parameter {tuple(param.shape)}")
            state[position] = self._new_state(param, float(torch.as_tensor(saved["step"])))
            state[position]["exp_avg"].copy_(saved["exp_avg"])
            state[position]["exp_avg_sq"].copy_(saved["exp_avg_sq"])
        self.lr, self.weight_decay, self.eps = group["lr"], group["weight_decay"], group["eps"]
        self.betas = tuple(group["betas"])
        self.state = state
        self._active = ()


def lbfgs_minimize(
    objective: Callable[[Tensor], Tensor],
    start: Tensor,
    *,
    max_iter: int = 200,
    history: int = 20,
    grad_tol: float = 1e-9,
    rel_tol: float = 1e-13,
) -> Tensor:
    """Minimise a smooth ``objective`` of a float64 tensor from ``start``; returns the minimiser (start's shape).

    Stops when the largest gradient entry is at most ``grad_tol``, when an accepted step changes the value by
    at most ``rel_tol`` relative to it, when no descent step is found, or after ``max_iter`` iterations. A
    non-finite value counts as a failed trial step (the step is halved), so objectives that overflow far
    from the optimum are safe.
    """

    shape = start.shape

    def value_and_grad(point: Tensor) -> tuple[float, Tensor]:
        leaf = point.detach().reshape(shape).requires_grad_(True)
        with torch.enable_grad():
            value = objective(leaf)
            (grad,) = torch.autograd.grad(value, leaf)
        return value.item(), grad.reshape(-1)

    x = start.detach().clone().reshape(-1)
    f, g = value_and_grad(x)
    if not math.isfinite(f):
        return x.reshape(shape)
    s_list: list[Tensor] = []
    y_list: list[Tensor] = []
    for _ in range(max_iter):
        if g.abs().max().item() <= grad_tol:
            break
        direction = -_two_loop(g, s_list, y_list)
        slope = g.dot(direction).item()
        if not slope < 0:  # not a descent direction: restart from steepest descent
            s_list.clear()
            y_list.clear()
            direction = -g / max(1.0, g.abs().sum().item())
            slope = g.dot(direction).item()
        step = 1.0
        while True:
            trial = x + step * direction
            f_new, g_new = value_and_grad(trial)
            if math.isfinite(f_new) and f_new <= f + 1e-4 * step * slope:
                break
            step *= 0.5
            if step < 1e-12:
                return x.reshape(shape)
        s, y = trial - x, g_new - g
        if y.dot(s).item() > 1e-12 * y.dot(y).item():
            s_list.append(s)
            y_list.append(y)
            if len(s_list) > history:
                s_list.pop(0)
                y_list.pop(0)
        converged = abs(f - f_new) <= rel_tol * max(1.0, abs(f))
        x, f, g = trial, f_new, g_new
        if converged:
            break
    return x.reshape(shape)


def _two_loop(grad: Tensor, s_list: list[Tensor], y_list: list[Tensor]) -> Tensor:
    """H @ grad for the L-BFGS inverse-Hessian estimate H (first iteration: a step of at most 1 per entry)."""
    if not s_list:
        return grad / max(1.0, grad.abs().sum().item())
    q = grad.clone()
    alphas = []
    for s, y in zip(reversed(s_list), reversed(y_list)):
        rho = 1.0 / y.dot(s).item()
        alpha = rho * s.dot(q).item()
        q -= alpha * y
        alphas.append((rho, alpha))
    q *= s_list[-1].dot(y_list[-1]).item() / y_list[-1].dot(y_list[-1]).item()
    for (s, y), (rho, alpha) in zip(zip(s_list, y_list), reversed(alphas)):
        beta = rho * y.dot(q).item()
        q += (alpha - beta) * s
    return q
