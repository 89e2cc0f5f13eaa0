"""A library example: train a Momentum Cox model on generated data and print its test C-index.

    python examples/library_example.py
"""

from __future__ import annotations

import torch

from survmom.core.losses import cox_loss
from survmom.core.metrics import concordance_index
from survmom.core.model import build_mlp
from survmom.core.momentum import Momentum


def generate(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Features x (n, 8), event (n,), time (n,) and the true log risk (n,) of a non-linear Cox model."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=gen)
    log_risk = x[:, 0] - 0.8 * x[:, 1] ** 2 + x[:, 2] * x[:, 3]
    event_time = -torch.log(torch.rand(n, generator=gen)) / torch.exp(log_risk)
    censor_time = -torch.log(torch.rand(n, generator=gen)) * 2.0
    return x, event_time <= censor_time, torch.minimum(event_time, censor_time), log_risk


def main() -> None:
    torch.manual_seed(0)
    x, event, time, true_risk = generate(3000, seed=1)
    train, test = slice(0, 2400), slice(2400, None)
    model = Momentum(build_mlp(8, (32, 32)), "cox", batchsize=16, steps=64, rate=0.99, warmup=True)
    optimizer = torch.optim.AdamW(model.online.parameters(), lr=1e-3)
    for _epoch in range(15):
        order = torch.randperm(2400)
        for start in range(0, 2400, 16):
            rows = order[start : start + 16]
            loss = model(x[train][rows], event[train][rows], time[train][rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    risk = model.infer(x[test])[:, 0]
    print(f"test C-index: {concordance_index(risk, event[test], time[test]):.4f} "
          f"(true risk: {concordance_index(true_risk[test], event[test], time[test]):.4f}); "
          f"test Cox loss {cox_loss(risk, event[test], time[test]).item():.4f}")


if __name__ == "__main__":
    main()
