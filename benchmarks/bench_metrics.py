"""Benchmark Harrell's C: ``survmom.core.metrics.concordance_index`` against ``lifelines.utils.concordance_index``.

Random data with ties in time and risk and ~30% censoring, n = 10^4, 10^5, 10^6 (``--quick``: 10^4, 10^5).
Each timing is the median of ``--repeats`` runs; both implementations must agree to 1e-9. Prints a markdown
table on stdout and writes the results as JSON to ``--json``. torch runs on one thread by default, the
same as lifelines; on a small shared machine extra threads mostly wait for each other.

    .venv/bin/python benchmarks/bench_metrics.py [--quick] [--json PATH] [--repeats 3] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import lifelines
import numpy as np
import torch
from lifelines.utils import concordance_index as lifelines_concordance_index

from survmom.core.metrics import concordance_index


def make_data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(risk, event, time)`` (n,): risk rounded to 0.01, time to 0.1 (many ties), P(censored) = 0.3."""
    rng = np.random.default_rng(seed)
    risk = np.round(rng.normal(size=n), 2)
    time = np.round(rng.exponential(10.0 * np.exp(-risk)), 1)
    event = rng.random(n) >= 0.3
    return risk, event, time


def median_seconds(fn: Callable[[], float], repeats: int) -> tuple[float, list[float], float]:
    """Median wall time of ``repeats`` calls of ``fn``, all the times, and ``fn``'s value."""
    runs = []
    value = float("nan")
    for _ in range(repeats):
        start = time.perf_counter()
        value = fn()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs), runs, value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="only n = 10^4 and 10^5")
    parser.add_argument(
        "--json",
        type=Path,
        default=Path("bench_results/bench_metrics.json"),
        help="where to write the results (default: bench_results/bench_metrics.json)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per n and implementation (default: 3)")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads (default: 1, like lifelines; 0 keeps torch's own choice)",
    )
    args = parser.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    sizes = [10**4, 10**5] if args.quick else [10**4, 10**5, 10**6]
    warm = make_data(1000)
    concordance_index(*(torch.from_numpy(a) for a in warm))  # first-call overhead is not what we measure

    rows = []
    for n in sizes:
        risk, event, t = make_data(n)

        def ours(risk: np.ndarray = risk, event: np.ndarray = event, t: np.ndarray = t) -> float:
            return concordance_index(torch.from_numpy(risk), torch.from_numpy(event), torch.from_numpy(t))

        def theirs(risk: np.ndarray = risk, event: np.ndarray = event, t: np.ndarray = t) -> float:
            return lifelines_concordance_index(t, -risk, event)

        ours_s, ours_runs, c_ours = median_seconds(ours, args.repeats)
        theirs_s, theirs_runs, c_theirs = median_seconds(theirs, args.repeats)
        if abs(c_ours - c_theirs) > 1e-9:
            print(f"n={n}: survmom C {c_ours!r} != lifelines C {c_theirs!r}", file=sys.stderr)
            return 1
        prev = rows[-1] if rows else None
        rows.append(
            {
                "n": n,
                "survmom_s": ours_s,
                "lifelines_s": theirs_s,
                "speedup": theirs_s / ours_s,
                "growth": ours_s / prev["survmom_s"] if prev else None,
                "lifelines_growth": theirs_s / prev["lifelines_s"] if prev else None,
                "c_index": c_ours,
                "survmom_runs": ours_runs,
                "lifelines_runs": theirs_runs,
            }
        )
        print(f"n={n:>8}: survmom {ours_s:.4f} s, lifelines {theirs_s:.4f} s", file=sys.stderr)

    print(f"Harrell's C, median of {args.repeats}; torch threads = {torch.get_num_threads()}\n")
    print("| n | survmom s | lifelines s | speedup | growth vs previous n |")
    print("|---:|---:|---:|---:|---:|")
    for r in rows:
        growth = "-" if r["growth"] is None else f"{r['growth']:.1f}x"
        times = f"{r['survmom_s']:.4f} | {r['lifelines_s']:.4f}"
        print(f"| {r['n']:,} | {times} | {r['speedup']:.1f}x | {growth} |")

    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "benchmark": "concordance_index",
                "repeats": args.repeats,
                "torch": torch.__version__,
                "lifelines": lifelines.__version__,
                "torch_threads": torch.get_num_threads(),
                "python": platform.python_version(),
                "machine": platform.machine(),
                "results": rows,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"\nwrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
