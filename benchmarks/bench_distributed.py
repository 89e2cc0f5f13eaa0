"""Distributed training (issue 19): one process against two (`survmom train --nproc 2`, torch.distributed with
gloo on the CPU, one thread each), on the 1M-row cohort (``_common.generate_cohort``) cut into a training
file (90 %) and a held-out test file (10 %), Parquet.

Per run: training samples/s (all processes together, the epochs' steps only, from the checkpoint's history),
peak RSS (the largest of the processes: ``wait4``'s rusage of the command includes its waited-for children,
so for two processes it is the larger rank or the launcher), wall time of the whole command, and Harrell's C
on the test file (``survmom evaluate``). Same options for both: ``--batch`` rows per process (256), the same
number of epochs and seed. Targets on a 2-core machine: throughput >= 1.5x, peak RSS per rank <= 0.65x, test
C within 0.005.

    python benchmarks/bench_distributed.py            # 1,000,000 rows, 3 epochs
    python benchmarks/bench_distributed.py --quick    # 200,000 rows, 1 epoch
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch
from _common import DATA, RESULTS, generate_cohort, markdown_table, run_measured, survmom_command, write_json


def split_files(rows: int) -> tuple[Path, Path]:
    """Training (first 90 % of rows) and test (last 10 %) Parquet files of the generated cohort (cached)."""
    DATA.mkdir(parents=True, exist_ok=True)
    train, test = DATA / f"distributed_{rows}_train.parquet", DATA / f"distributed_{rows}_test.parquet"
    if not (train.exists() and test.exists()):
        frame = generate_cohort(rows, seed=11)
        cut = int(0.9 * rows)
        frame.iloc[:cut].to_parquet(train, index=False)
        frame.iloc[cut:].to_parquet(test, index=False)
    return train, test


def run(train: Path, test: Path, processes: int, args: argparse.Namespace, folder: Path) -> dict:
    out = folder / f"model_{processes}.pt"
    measured = run_measured(survmom_command("train", train, "--nproc", processes, "--batch", args.batch,
                                            "--epochs", args.epochs, "--device", "cpu", "--seed", args.seed,
                                            "--out", out, "--quiet"))
    if measured.returncode != 0:
        raise SystemExit(f"{processes} process(es): survmom train failed: {measured.stderr}")
    history = torch.load(out, weights_only=True)["history"]
    samples = sum(record["samples_per_s"] * record["seconds"] for record in history)
    seconds = sum(record["seconds"] for record in history)
    scored = run_measured(survmom_command("evaluate", out, test, "--json"))
    if scored.returncode != 0:
        raise SystemExit(f"survmom evaluate failed: {scored.stderr}")
    result = {"processes": processes, "samples_per_s": samples / seconds, "peak_rss_mb": measured.peak_rss_mb,
              "wall_s": measured.wall_s, "test_cindex": json.loads(scored.stdout)["harrell_c"],
              "epochs": len(history)}
    print(f"{processes} process(es): {result}", file=sys.stderr, flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="200,000 rows, 1 epoch")
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--batch", type=int, default=256, help="rows per step per process")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=RESULTS / "bench_distributed.json")
    args = parser.parse_args()
    rows = args.rows or (200_000 if args.quick else 1_000_000)
    args.epochs = args.epochs or (1 if args.quick else 3)
    train, test = split_files(rows)
    with tempfile.TemporaryDirectory() as tmp:
        one, two = (run(train, test, processes, args, Path(tmp)) for processes in (1, 2))
    ratios = {"throughput": two["samples_per_s"] / one["samples_per_s"],
              "peak_rss": two["peak_rss_mb"] / one["peak_rss_mb"],
              "test_cindex_difference": two["test_cindex"] - one["test_cindex"]}
    write_json(args.json, {"rows": rows, "batch_per_process": args.batch, "epochs": args.epochs,
                           "torch": str(torch.__version__), "one": one, "two": two, "ratios": ratios})
    print(f"\n{rows:,} rows ({int(0.9 * rows):,} train, the rest held out) × 22 columns, batch {args.batch} per "
          f"process, {args.epochs} epoch(s), gloo on CPU, 1 thread per process, torch {torch.__version__}\n")
    print(markdown_table(
        ["processes", "samples/s", "peak RSS MB (largest process)", "wall s", "test C (Harrell)"],
        [[str(r["processes"]), f"{r['samples_per_s']:,.0f}", f"{r['peak_rss_mb']:,.0f}", f"{r['wall_s']:.1f}",
          f"{r['test_cindex']:.4f}"] for r in (one, two)]))
    print(f"\n2 / 1 processes: throughput {ratios['throughput']:.2f}x (target >= 1.5), peak RSS "
          f"{ratios['peak_rss']:.2f}x (target <= 0.65), test C {ratios['test_cindex_difference']:+.4f} "
          f"(target within 0.005)")


if __name__ == "__main__":
    main()
