"""Milliseconds per Momentum step with a study design (issue 21), as ratios to the plain step of the same run.

MLP 32→64→64→1 (→2 for Weibull), Adam, the default bank (2,048 rows, ``training.config.DEFAULT_BANK_SIZE``)
pre-filled to capacity, batch 32 (the default batch of small data). Variants: Cox plain, delayed entry,
case weights, 4 strata, all three; Weibull plain and with entry + weights. Blocks of 20 steps of every variant
alternate (round robin, new rows in every block); a variant's ratio is the median over blocks of its block
time / the plain Cox block time of the same round, which sees (nearly) the same load on a shared machine.
The issue's target: every design within 1.3x of plain. Prints a markdown table and writes JSON.

    python benchmarks/bench_designs.py            # 15 rounds
    python benchmarks/bench_designs.py --quick    # 5 rounds
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from torch import nn

from survmom.core.bank import BankDesign
from survmom.core.momentum import Momentum
from survmom.training.config import DEFAULT_BANK_SIZE, SMALL_DATA_BATCH

VARIANTS = {  # name: (loss, design fields)
    "cox plain": ("cox", ()),
    "cox entry": ("cox", ("entry",)),
    "cox weights": ("cox", ("weight",)),
    "cox strata": ("cox", ("strata",)),
    "cox entry+weights+strata": ("cox", ("entry", "weight", "strata")),
    "weibull plain": ("weibull", ()),
    "weibull entry+weights": ("weibull", ("entry", "weight")),
}


def make_mlp(out: int) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, out))


def rows(n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """Inputs (n, 32), event, time in (0.01, 100], and every design field for n rows."""
    x = torch.randn(n, 32, generator=gen)
    event = torch.rand(n, generator=gen) < 0.7
    time_ = torch.rand(n, generator=gen) * 100 + 0.01
    design = {"entry": time_ * torch.rand(n, generator=gen) * 0.5,
              "weight": torch.rand(n, generator=gen) * 1.5 + 0.5,
              "strata": torch.randint(0, 4, (n,), generator=gen)}
    return x, event, time_, design


def stepper(loss: str, fields: tuple[str, ...], batch: int, bank: int):
    model = Momentum(make_mlp(1 if loss == "cox" else 2), loss, batch, bank_size=bank, rate=0.999,
                     **{name: True for name in fields})
    gen = torch.Generator().manual_seed(1)
    _, event, time_, design = rows(bank, gen)
    estimates = torch.randn(bank, model.bank.dim, generator=gen)
    model.bank.push(estimates, event, time_,
                    design=BankDesign(**{name: design[name] for name in fields}) if fields else None)
    opt = torch.optim.Adam(model.online.parameters(), lr=1e-3)

    def step(x, e, t, d):
        loss_value = model(x, e, t, **{name: d[name] for name in fields})
        opt.zero_grad()
        loss_value.backward()
        opt.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="5 rounds instead of 15")
    parser.add_argument("--json", type=Path, default=Path("bench_results/bench_designs.json"))
    parser.add_argument("--batch", type=int, default=SMALL_DATA_BATCH)
    parser.add_argument("--bank", type=int, default=DEFAULT_BANK_SIZE)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1, as survmom trains)")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    rounds = 5 if args.quick else 15
    gen = torch.Generator().manual_seed(0)
    steps = {name: stepper(loss, fields, args.batch, args.bank) for name, (loss, fields) in VARIANTS.items()}
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for round_ in range(rounds + 1):
        block = [rows(args.batch, gen) for _ in range(20)]
        for name, step in steps.items():
            start = time.perf_counter()
            for batch in block:
                step(*batch)
            if round_:  # the first round warms up
                times[name].append((time.perf_counter() - start) / len(block) * 1e3)
    plain, weibull = times["cox plain"], times["weibull plain"]
    results = [{"variant": name, "ms": statistics.median(ms),
                "over_cox_plain": statistics.median(a / b for a, b in zip(ms, plain, strict=True)),
                "over_weibull_plain": (statistics.median(a / b for a, b in zip(ms, weibull, strict=True))
                                       if name.startswith("weibull") else None)}
               for name, ms in times.items()]
    print(f"ms per Momentum step, batch {args.batch}, bank {args.bank:,} (full), MLP 32-64-64-1, Adam; medians of "
          f"{rounds} round-robin blocks of 20 steps; {torch.get_num_threads()} thread(s), torch {torch.__version__}")
    print()
    print("| variant | ms | / cox plain | / weibull plain |")
    print("|---|---:|---:|---:|")
    for r in results:
        other = "-" if r["over_weibull_plain"] is None else f"{r['over_weibull_plain']:.2f}"
        print(f"| {r['variant']} | {r['ms']:.3f} | {r['over_cox_plain']:.2f} | {other} |")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"batch": args.batch, "bank": args.bank, "torch": torch.__version__,
                                     "threads": torch.get_num_threads(), "rows": results}, indent=2))


if __name__ == "__main__":
    main()
