"""Optimisers without ``torch.optim``: AdamW for training, L-BFGS for the small full-batch fits.

Why not ``torch.optim``: constructing any of its optimisers, and every ``step``, imports ``torch._dynamo``
(about 1.5 s on the 2-core machine survmom targets, as long as ``import torch`` itself), a cost every
``survmom train`` would pay before its first step although nothing is compiled.

:class:`AdamW` is Loshchilov & Hutter's decoupled-weight-decay Adam (ICLR 2019). It runs torch's fused
AdamW kernel where torch has one for the parameters' device (CPU from torch 2.4, CUDA): one operation per
step instead of about ten over every parameter, with the arithmetic of ``torch.optim.AdamW(fused=True)``.
Elsewhere it runs ``torch.optim.AdamW``'s default (foreach) arithmetic in the same order. Either way the
updates are bit-identical to the matching torch optimiser (tested), and ``state_dict`` /
``load_state_dict`` use ``torch.optim``'s format. :func:`lbfgs_minimize` is the two-loop-recursion L-BFGS
of Nocedal & Wright, *Numerical Optimization* (2006), algorithm 7.4, with a backtracking Armijo line search.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor


class AdamW:
    """AdamW over ``params`` (tensors; those whose ``.grad`` is None at a step are left alone, as in torch)."""

    def __init__(self, params: Iterable[Tensor], lr: float = 1e-3, weight_decay: float = 1e-2,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, fused: bool | None = None) -> None:
        """``fused``: True / False forces the fused kernel / the foreach arithmetic; None (default) uses the
        fused kernel unless torch lacks it for these parameters (then foreach, from the first step on)."""
        self.params = list(params)
        self.lr, self.weight_decay, self.betas, self.eps = lr, weight_decay, betas, eps
        self.fused = fused
        self.state: dict[int, dict[str, Tensor]] = {}  # param index → exp_avg, exp_avg_sq
        self.steps: dict[int, float] = {}  # param index → steps taken (torch keeps a 0-d float32 tensor)
        self._step_tensor: Tensor | None = None  # the fused kernel reads step counts from tensors

    def zero_grad(self, set_to_none: bool = True) -> None:
        for param in self.params:
            if set_to_none:
                param.grad = None
            elif param.grad is not None:
                param.grad.zero_()

    @torch.no_grad()
    def step(self) -> None:
        """One update of every parameter that has a gradient."""
        beta1, beta2 = self.betas
        active = [i for i, p in enumerate(self.params) if p.grad is not None]
        if not active:
            return
        for i in active:
            if i not in self.state:
                param = self.params[i]
                self.state[i] = {"exp_avg": torch.zeros_like(param), "exp_avg_sq": torch.zeros_like(param)}
                self.steps[i] = 0.0
            self.steps[i] += 1.0  # a float32 count in torch: exact far beyond any training's step count
        params = [self.params[i] for i in active]
        grads = [p.grad for p in params]
        states = [self.state[i] for i in active]
        exp_avgs = [s["exp_avg"] for s in states]
        exp_avg_sqs = [s["exp_avg_sq"] for s in states]
        counts = [self.steps[i] for i in active]
        if self.fused is not False and self._fused_step(params, grads, exp_avgs, exp_avg_sqs, counts):
            return
        if self.weight_decay != 0:
            torch._foreach_mul_(params, 1 - self.lr * self.weight_decay)
        torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)
        torch._foreach_mul_(exp_avg_sqs, beta2)
        torch._foreach_addcmul_(exp_avg_sqs, grads, grads, 1 - beta2)
        step_sizes = [(self.lr / (1 - beta1**step)) * -1 for step in counts]
        denominators = torch._foreach_sqrt(exp_avg_sqs)
        torch._foreach_div_(denominators, [(1 - beta2**step) ** 0.5 for step in counts])
        torch._foreach_add_(denominators, self.eps)
        torch._foreach_addcdiv_(params, exp_avgs, denominators, step_sizes)

    def _fused_step(self, params: list[Tensor], grads: list[Tensor], exp_avgs: list[Tensor],
                    exp_avg_sqs: list[Tensor], counts: list[float]) -> bool:
        """torch's fused AdamW kernel over all parameters (steps already counted); False if it cannot run
        (no kernel for this device in this torch, mixed devices or dtypes): the caller does the foreach step."""
        first = params[0]
        kernel = getattr(torch, "_fused_adamw_", None)
        if kernel is None or any(t.device != first.device or t.dtype != first.dtype
                                 for group in (params, grads) for t in group):
            return self._no_fused_kernel()
        # The kernel only reads the counts: one shared tensor serves parameters that took as many steps.
        if all(count == counts[0] for count in counts):
            if self._step_tensor is None or self._step_tensor.device != first.device:
                self._step_tensor = torch.zeros((), dtype=torch.float32, device=first.device)
            steps = [self._step_tensor.fill_(counts[0])] * len(counts)
        else:
            steps = [torch.tensor(count, dtype=torch.float32, device=first.device) for count in counts]
        beta1, beta2 = self.betas
        try:
            kernel(params, grads, exp_avgs, exp_avg_sqs, [], steps, lr=self.lr, beta1=beta1, beta2=beta2,
                   weight_decay=self.weight_decay, eps=self.eps, amsgrad=False, maximize=False)
        except (RuntimeError, NotImplementedError):  # raised before any tensor is touched
            return self._no_fused_kernel()
        return True

    def _no_fused_kernel(self) -> bool:
        if self.fused:
            raise RuntimeError("this torch has no fused AdamW kernel for these parameters")
        self.fused = False
        return False

    def state_dict(self) -> dict[str, Any]:
        """``torch.optim.AdamW.state_dict()``'s layout: per-index state and one parameter group."""
        group = {"lr": self.lr, "betas": self.betas, "eps": self.eps, "weight_decay": self.weight_decay,
                 "amsgrad": False, "maximize": False, "foreach": None, "capturable": False,
                 "differentiable": False, "fused": None, "decoupled_weight_decay": True,
                 "params": list(range(len(self.params)))}
        state = {i: {"step": torch.tensor(self.steps[i], dtype=torch.float32), **s} for i, s in self.state.items()}
        return {"state": state, "param_groups": [group]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state written by :meth:`state_dict` or by ``torch.optim.AdamW`` over the same parameters."""
        groups = state_dict["param_groups"]
        if len(groups) != 1 or len(groups[0]["params"]) != len(self.params):
            raise ValueError(f"optimizer state is for {sum(len(g['params']) for g in groups)} parameters "
                             f"in {len(groups)} group(s), not {len(self.params)} in one")
        group = groups[0]
        self.lr, self.weight_decay, self.eps = group["lr"], group["weight_decay"], group["eps"]
        self.betas = tuple(group["betas"])
        self.state, self.steps = {}, {}
        for position, key in enumerate(group["params"]):
            saved = state_dict["state"].get(key)
            if saved is None:
                continue
            param = self.params[position]
            self.steps[position] = float(torch.as_tensor(saved["step"], dtype=torch.float32))
            self.state[position] = {
                "exp_avg": saved["exp_avg"].to(param.device, param.dtype).clone(),
                "exp_avg_sq": saved["exp_avg_sq"].to(param.device, param.dtype).clone(),
            }


@torch.no_grad()
def clip_grad_norm(params: Iterable[Tensor], max_norm: float) -> Tensor:
    """Scale the gradients of ``params`` so that their joint L2 norm is at most ``max_norm``; returns the norm.

    ``torch.nn.utils.clip_grad_norm_``'s arithmetic in its order (bit-identical results; tested), without its
    per-call grouping by device and dtype, which cost ~0.1 ms per training step: tensors of one device and
    dtype go through one ``_foreach_norm`` and one ``_foreach_mul_``; anything else is handed to torch.
    """
    params = list(params)
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    first = grads[0]
    if any(g.device != first.device or g.dtype != first.dtype or g.is_sparse for g in grads):
        return torch.nn.utils.clip_grad_norm_(params, max_norm)
    total_norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads, 2.0)), 2.0)
    # torch multiplies by min(max_norm / (norm + 1e-6), 1) in the norm's dtype, always. A factor of exactly 1
    # changes nothing: skip it when the factor is clearly >= 1 (a float64 margin far above float32 rounding).
    norm = float(total_norm)
    if norm + 1e-6 <= max_norm * (1.0 - 1e-4):
        return total_norm
    clip_coef = max_norm / (total_norm + 1e-6)
    torch._foreach_mul_(grads, torch.clamp(clip_coef, max=1.0))
    return total_norm


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
