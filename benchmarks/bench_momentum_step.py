"""Milliseconds per training step (forward, backward, Adam): plain batch Cox vs survmom and torchsurv Momentum.

MLP 32→64→64→1, Cox (Efron) loss. Banks are pre-filled to capacity with random rows so every timed step
pools a full bank. Plain and survmom blocks of 20 steps alternate; survmom / plain is the median of the
ratios of adjacent blocks (steadier on a shared machine than a ratio of medians). Every block feeds new
rows, as training on a cohort larger than the bank does: the bank never holds a row twice. A second table
repeats batch 64, bank 8,192 with the same 20 batches cycled (every row ~6 times in the bank, so many tied
times), for Efron and Breslow. torchsurv pools ``batchsize × steps`` rows including the current batch, so
a bank of C past rows is ``steps = C / batch + 1`` there. Prints markdown tables with the ratios of the
same run and writes JSON.

    python benchmarks/bench_momentum_step.py            # full grid, banks up to 65,536
    python benchmarks/bench_momentum_step.py --quick    # smaller grid, fewer repeats
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from torch import nn

from survmom.core.losses import cox_loss
from survmom.core.momentum import Momentum


def make_mlp(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))


def batch_data(batch: int, gen: torch.Generator):
    x = torch.randn(batch, 32, generator=gen)
    event = torch.rand(batch, generator=gen) < 0.7
    time_ = torch.rand(batch, generator=gen) * 100 + 0.01
    return x, event, time_


def time_steps(step, batches, repeats: int) -> float:
    """Median ms per step over ``repeats`` timed blocks of len(batches) steps (after one warm-up block)."""
    for b in batches:
        step(*b)
    blocks = []
    for _ in range(repeats):
        start = time.perf_counter()
        for b in batches:
            step(*b)
        blocks.append((time.perf_counter() - start) / len(batches) * 1e3)
    return statistics.median(blocks)


def paired_times(reference, step, blocks) -> tuple[float, float, float]:
    """Alternate timed blocks of ``reference`` and ``step``: (median ms of each, median of per-pair ratios).

    ``blocks``: lists of batches; the first warms both up, each later one is timed once for each. On a shared
    machine the load drifts within a run; a ratio of adjacent blocks sees (nearly) the same load, so the
    median of those ratios is steadier than a ratio of two medians taken minutes apart.
    """
    for batch in blocks[0]:
        reference(*batch)
        step(*batch)
    ref_ms, step_ms = [], []
    for block in blocks[1:]:
        for run, times in ((reference, ref_ms), (step, step_ms)):
            start = time.perf_counter()
            for batch in block:
                run(*batch)
            times.append((time.perf_counter() - start) / len(block) * 1e3)
    ratios = [s / r for s, r in zip(step_ms, ref_ms, strict=True)]
    return statistics.median(ref_ms), statistics.median(step_ms), statistics.median(ratios)


def cycled_times(reference, step, batches, repeats: int) -> tuple[float, float, float]:
    """:func:`paired_times` over the same ``batches`` every block (each block also run once untimed first)."""
    ref_ms, step_ms = [], []
    for _ in range(repeats):
        ref_ms.append(time_steps(reference, batches, 1))
        step_ms.append(time_steps(step, batches, 1))
    ratios = [s / r for s, r in zip(step_ms, ref_ms, strict=True)]
    return statistics.median(ref_ms), statistics.median(step_ms), statistics.median(ratios)


def plain_stepper(ties: str):
    net = make_mlp()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)

    def step(x, e, t):
        loss = cox_loss(net(x), e, t, ties=ties)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def survmom_stepper(batch: int, bank: int, ties: str):
    model = Momentum(make_mlp(), "cox", batch, bank_size=bank, rate=0.999, ties=ties)
    gen = torch.Generator().manual_seed(1)
    model.bank.push(torch.randn(bank, 1, generator=gen), torch.rand(bank, generator=gen) < 0.7,
                    torch.rand(bank, generator=gen) * 100)
    opt = torch.optim.Adam(model.online.parameters(), lr=1e-3)

    def step(x, e, t):
        loss = model(x, e, t)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def torchsurv_stepper(batch: int, bank: int, ties: str):
    from torchsurv.loss.cox import neg_partial_log_likelihood
    from torchsurv.loss.momentum import Momentum as TorchsurvMomentum

    def loss_fn(log_hz, event, time_):
        return neg_partial_log_likelihood(log_hz, event, time_, ties_method=ties)

    model = TorchsurvMomentum(make_mlp(), loss_fn, batchsize=batch, steps=bank // batch + 1)
    gen = torch.Generator().manual_seed(1)
    est, ev, tt = torch.randn(bank, 1, generator=gen), torch.rand(bank, generator=gen) < 0.7, torch.rand(bank) * 100
    for row in zip(est, ev, tt):
        model.memory_k.append(model.survtuple(*row))
    opt = torch.optim.Adam(model.online.parameters(), lr=1e-3)

    def step(x, e, t):
        loss = model(x, e, t)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="batches {16, 64}, banks {1024, 8192}, fewer repeats")
    parser.add_argument("--json", type=Path, default=Path("bench_results/bench_momentum_step.json"))
    parser.add_argument("--ties", default="efron", choices=["efron", "breslow"])
    parser.add_argument("--no-torchsurv", action="store_true", help="skip torchsurv (if not installed)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads for all three (default 1, as survmom trains; 0: torch's default)")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    batches = [16, 64] if args.quick else [16, 64, 256]
    banks = [1024, 8192] if args.quick else [160, 1024, 8192, 65536]
    repeats = 3 if args.quick else 5
    gen = torch.Generator().manual_seed(0)
    rows = []
    for batch in batches:
        plain_step = plain_stepper(args.ties)
        for bank in banks:
            blocks = [[batch_data(batch, gen) for _ in range(20)] for _ in range(2 * repeats + 2)]
            ours_step = survmom_stepper(batch, bank, args.ties)
            plain, ours, ratio = paired_times(plain_step, ours_step, blocks)
            theirs = None
            if not args.no_torchsurv:
                few = blocks[0][: 3 if bank >= 65536 else 10]
                theirs = time_steps(torchsurv_stepper(batch, bank, args.ties), few, max(1, repeats - 2))
            rows.append({"batch": batch, "bank": bank, "plain_ms": plain, "survmom_ms": ours,
                         "torchsurv_ms": theirs, "survmom_over_plain": ratio,
                         "torchsurv_over_survmom": None if theirs is None else theirs / ours})
            print(f"batch {batch} bank {bank}: plain {plain:.3f} ms, survmom {ours:.3f} ms, "
                  f"torchsurv {'-' if theirs is None else f'{theirs:.2f}'} ms", flush=True)
    cycled = []
    data = [batch_data(64, gen) for _ in range(20)]
    for ties in ("efron", "breslow"):
        plain, ours, ratio = cycled_times(plain_stepper(ties), survmom_stepper(64, 8192, ties), data,
                                          2 * repeats + 1)
        cycled.append({"ties": ties, "plain_ms": plain, "survmom_ms": ours, "survmom_over_plain": ratio})
        print(f"cycled, {ties}: plain {plain:.3f} ms, survmom {ours:.3f} ms", flush=True)
    print()
    print(f"ms per step (medians of {2 * repeats + 1} alternating plain / survmom blocks of 20 steps, new rows in "
          f"every block; survmom / plain: median ratio of adjacent blocks), MLP 32-64-64-1, Cox {args.ties}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}")
    print()
    print("| batch | bank | plain ms | survmom ms | torchsurv ms | survmom / plain | torchsurv / survmom |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        ts = "-" if r["torchsurv_ms"] is None else f"{r['torchsurv_ms']:.2f}"
        ratio = "-" if r["torchsurv_over_survmom"] is None else f"{r['torchsurv_over_survmom']:.1f}"
        print(f"| {r['batch']} | {r['bank']:,} | {r['plain_ms']:.3f} | {r['survmom_ms']:.3f} | {ts} | "
              f"{r['survmom_over_plain']:.2f} | {ratio} |")
    print()
    print("Batch 64, bank 8,192, the same 20 batches in every block (each row ~6 times in the bank: many ties)")
    print()
    print("| ties | plain ms | survmom ms | survmom / plain |")
    print("|---|---:|---:|---:|")
    for r in cycled:
        print(f"| {r['ties']} | {r['plain_ms']:.3f} | {r['survmom_ms']:.3f} | {r['survmom_over_plain']:.2f} |")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"ties": args.ties, "torch": torch.__version__,
                                     "threads": torch.get_num_threads(), "rows": rows, "cycled": cycled},
                                    indent=2))


if __name__ == "__main__":
    main()
