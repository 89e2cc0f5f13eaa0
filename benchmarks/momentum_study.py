"""Does momentum decouple batch size? survmom with and without momentum across batch sizes, through the CLI.

For each batch size B in {4, 8, 16, 32, 128, full} (full = every training row in one batch) and each data set
and seeded 80/20 split (stratified by event; see ``benchmarks/_datasets.py``), the same network is trained
twice with ``survmom train --batch B``:

* ``momentum``: survmom's defaults (EMA target, memory bank pooled into the Cox loss);
* ``plain``: ``--bank-size 0 --rate 0``: with rate 0 the EMA update copies the online weights into the target
  after every step (``lerp`` with weight 1; the warm-up ``min(0, ...)`` stays 0), so the target *is* the
  online network, and with an empty bank the loss is the plain Cox loss of the batch: ordinary mini-batch
  Cox training, predictions from the online network in eval mode.

Both read the same CSV files, both validate on survmom's default 20% split with early stopping, and both are
scored by Harrell's C on the test split (``survmom predict``). Optimizer steps per epoch differ by three
orders of magnitude between B = 4 and full batch, so the epoch budget is set in steps: ``--epochs`` gives at
least ``--min-steps`` steps and at least 40 epochs, but at most ``--max-steps`` steps (which bounds a run's
time); ``--patience`` is at least 10 epochs and at least ``--patience-steps`` steps.

Usage::

    python benchmarks/momentum_study.py                  # 4 data sets x 5 splits x 6 batch sizes x 2 modes
    python benchmarks/momentum_study.py --quick          # 2 splits
    python benchmarks/momentum_study.py --datasets gbsg2,aids --batches 8,full --survmom-args "--rate 0.99"
    python benchmarks/momentum_study.py --from-json bench_results/momentum_study.json   # tables + plot again

Prints markdown tables (mean ± sd of test C; the paired difference momentum − plain) averaged over data sets
and per data set, saves a PNG plot (C against batch size, log x axis) and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import subprocess
import sys
import tempfile
import time as clock
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _datasets as data
from accuracy import checkpoint_info

DATASETS = ("gbsg2", "whas500", "aids", "rossi")
BATCHES = ("4", "8", "16", "32", "128", "full")
MODES = {"momentum": [], "plain": ["--bank-size", "0", "--rate", "0"]}
VAL_FRAC = 0.2  # survmom's default --val-frac


def budget(n_train: int, batch: int, min_steps: int, max_steps: int, patience_steps: int) -> tuple[int, int]:
    """(epochs, patience) for ``batch`` rows per step on the rows survmom trains on after its validation split."""
    steps_per_epoch = math.ceil(round(n_train * (1 - VAL_FRAC)) / batch)
    epochs = max(40, math.ceil(min_steps / steps_per_epoch))
    epochs = max(1, min(epochs, max_steps // steps_per_epoch))
    patience = max(10, math.ceil(patience_steps / steps_per_epoch))
    return epochs, patience


def run_task(task: tuple) -> dict[str, Any]:
    """Train and score one (data set, split, batch, mode) through the CLI; errors are recorded."""
    import torch

    from survmom.core.metrics import concordance_index

    dataset, k, batch_label, mode, extra, limits, threads = task
    frame = data.load(dataset)
    train_rows, test_rows = data.splits(frame["event"].to_numpy(), k + 1)[k]
    train, test = frame.iloc[train_rows].reset_index(drop=True), frame.iloc[test_rows].reset_index(drop=True)
    batch = len(train) if batch_label == "full" else int(batch_label)
    epochs, patience = budget(len(train), batch, *limits)
    flags = ["--batch", str(batch), "--epochs", str(epochs), "--patience", str(patience), *MODES[mode], *extra]
    record: dict[str, Any] = {"dataset": dataset, "split": k, "batch": batch_label, "mode": mode, "cindex": None,
                              "seconds": None, "flags": flags, "error": None}
    env = dict(os.environ)
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    cli = [sys.executable, "-m", "survmom"]
    with tempfile.TemporaryDirectory(prefix="survmom_mom_") as folder:
        work = Path(folder)
        train.to_csv(work / "train.csv", index=False)
        test.to_csv(work / "test.csv", index=False)
        started = clock.perf_counter()
        run = subprocess.run([*cli, "train", str(work / "train.csv"), "-o", str(work / "m.pt"), "-q", *flags],
                             capture_output=True, text=True, env=env, cwd=work)
        record["seconds"] = clock.perf_counter() - started
        if run.returncode != 0:
            record["error"] = f"train exit {run.returncode}: {run.stderr.strip()[-400:]}"
            return record
        run = subprocess.run([*cli, "predict", str(work / "m.pt"), str(work / "test.csv"), "-o",
                              str(work / "p.csv")], capture_output=True, text=True, env=env, cwd=work)
        if run.returncode != 0:
            record["error"] = f"predict exit {run.returncode}: {run.stderr.strip()[-400:]}"
            return record
        risk = pd.read_csv(work / "p.csv")["risk"].to_numpy(float)
        record["info"] = checkpoint_info(work / "m.pt")
    record["cindex"] = concordance_index(torch.as_tensor(risk), torch.as_tensor(test["event"].to_numpy() == 1),
                                         torch.as_tensor(test["time"].to_numpy(float)))
    return record


# ---------------------------------------------------------------------------------------------- reports
def _c(records, **match) -> list[float]:
    return [r["cindex"] for r in records if r["cindex"] is not None and all(r[k] == v for k, v in match.items())]


def _paired(records, dataset, batch) -> list[float]:
    by_split = {}
    for r in records:
        if r["dataset"] == dataset and r["batch"] == batch and r["cindex"] is not None:
            by_split.setdefault(r["split"], {})[r["mode"]] = r["cindex"]
    return [v["momentum"] - v["plain"] for v in by_split.values() if len(v) == 2]


def averaged(records, datasets, batch, mode) -> tuple[float, float]:
    """Mean over data sets of the per-data-set mean C, and the mean over data sets of the per-data-set sd."""
    stats = [data.mean_sd(_c(records, dataset=d, batch=batch, mode=mode)) for d in datasets]
    return float(np.mean([s[0] for s in stats])), float(np.mean([s[1] for s in stats]))


def tables(records, datasets, batches) -> str:
    lines = ["Averaged over data sets (mean of per-data-set means ± mean of per-data-set sd over splits); "
             "Δ = momentum − plain, paired by split, mean ± sd over data sets × splits", "",
             "| batch | momentum | plain | Δ | momentum − plain full batch |", "|---|---|---|---|---|"]
    plain_full = averaged(records, datasets, "full", "plain")[0]
    for batch in batches:
        mom, plain = averaged(records, datasets, batch, "momentum"), averaged(records, datasets, batch, "plain")
        deltas = [x for d in datasets for x in _paired(records, d, batch)]
        lines.append(f"| {batch} | {mom[0]:.4f} ± {mom[1]:.4f} | {plain[0]:.4f} ± {plain[1]:.4f} | "
                     f"{data.cell(deltas, 4)} | {mom[0] - plain_full:+.4f} |")
    for dataset in datasets:
        lines += ["", f"{dataset} (mean ± sd over splits)", "", "| batch | momentum | plain | Δ |", "|---|---|---|---|"]
        for batch in batches:
            lines.append(f"| {batch} | {data.cell(_c(records, dataset=dataset, batch=batch, mode='momentum'), 4)} | "
                         f"{data.cell(_c(records, dataset=dataset, batch=batch, mode='plain'), 4)} | "
                         f"{data.cell(_paired(records, dataset, batch), 4)} |")
    return "\n".join(lines)


def plot(records, datasets, batches, path: Path, sizes: dict[str, float]) -> None:
    """C against batch size (log x; full batch at the mean training size): average panel + one per data set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = ["mean over data sets", *datasets]
    fig, axes = plt.subplots(1, len(panels) + 1, figsize=(4.2 * (len(panels) + 1), 3.8), squeeze=False)
    delta_ax = axes[0][-1]
    xs = [float(np.mean([sizes[d] for d in datasets])) if b == "full" else float(b) for b in batches]
    deltas = [[x for d in datasets for x in _paired(records, d, b)] for b in batches]
    means = [float(np.mean(v)) if v else np.nan for v in deltas]
    errors = [float(np.std(v, ddof=1) / np.sqrt(len(v))) if len(v) > 1 else np.nan for v in deltas]
    delta_ax.errorbar(xs, means, yerr=errors, marker="o", capsize=3, color="tab:green")
    delta_ax.axhline(0.0, color="grey", lw=0.8)
    delta_ax.set_xscale("log")
    delta_ax.set_title("momentum − plain (paired by split)")
    delta_ax.set_xlabel("batch size (rightmost point: full batch)")
    delta_ax.set_ylabel("Δ test C (error bars: s.e. over data sets × splits)")
    delta_ax.grid(alpha=0.3)
    for ax, panel in zip(axes[0], panels):
        for mode, colour in (("momentum", "tab:blue"), ("plain", "tab:orange")):
            xs, ys, es = [], [], []
            for batch in batches:
                if panel == panels[0]:
                    mean, sd = averaged(records, datasets, batch, mode)
                    x = float(np.mean([sizes[d] for d in datasets])) if batch == "full" else float(batch)
                else:
                    mean, sd = data.mean_sd(_c(records, dataset=panel, batch=batch, mode=mode))
                    x = sizes[panel] if batch == "full" else float(batch)
                if np.isfinite(mean):
                    xs.append(x)
                    ys.append(mean)
                    es.append(sd)
            label = "momentum (survmom)" if mode == "momentum" else "plain (--bank-size 0 --rate 0)"
            ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, color=colour, label=label)
        ax.set_xscale("log")
        ax.set_title(panel)
        ax.set_xlabel("batch size (rightmost point: full batch)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("test Harrell C (error bars: sd over splits)")
    axes[0][0].legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def report(records, datasets, batches, n_splits, survmom_args, plot_path: Path) -> dict[str, Any]:
    """Print the tables and the batch 4 / 8 checks, save the plot; returns the checks."""
    print(f"\nTest Harrell C, survmom args: {survmom_args or '(defaults)'}; {n_splits} splits\n")
    print(tables(records, datasets, batches))
    plain_full = averaged(records, datasets, "full", "plain")[0] if "full" in batches else float("nan")
    checks = {}
    for batch in ("4", "8"):
        if batch in batches:
            mom = averaged(records, datasets, batch, "momentum")[0]
            plain = averaged(records, datasets, batch, "plain")[0]
            deltas = [x for d in datasets for x in _paired(records, d, batch)]
            se = float(np.std(deltas, ddof=1) / np.sqrt(len(deltas))) if len(deltas) > 1 else float("nan")
            checks[batch] = {"momentum": mom, "plain": plain, "momentum_minus_plain": mom - plain,
                             "paired_se": se, "momentum_minus_plain_full": mom - plain_full}
            print(f"\nbatch {batch}: momentum − plain = {mom - plain:+.4f} (paired s.e. {se:.4f}); "
                  f"momentum − plain full batch = {mom - plain_full:+.4f}")
    sizes = {d: float(round(len(data.load(d)) * 0.8)) for d in datasets}
    plot(records, datasets, batches, plot_path, sizes)
    return checks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 splits")
    parser.add_argument("--datasets", default=",".join(DATASETS), help=f"from {', '.join(data.DATASETS)}")
    parser.add_argument("--batches", default=",".join(BATCHES), help="batch sizes; 'full' = all training rows")
    parser.add_argument("--splits", type=int, help="number of 80/20 splits (default 5; --quick 2)")
    parser.add_argument("--survmom-args", default="", help="extra flags for every survmom run (both modes)")
    parser.add_argument("--min-steps", type=int, default=1000, help="epochs give at least this many steps")
    parser.add_argument("--max-steps", type=int, default=20_000, help="and at most this many (bounds run time)")
    parser.add_argument("--patience-steps", type=int, default=150, help="patience is at least this many steps")
    parser.add_argument("--jobs", type=int, default=1, help="parallel runs (each then uses 1 thread)")
    parser.add_argument("--json", default="bench_results/momentum_study.json")
    parser.add_argument("--plot", default="bench_results/momentum_study.png")
    parser.add_argument("--from-json", metavar="JSON", help="no training: tables and plot from an earlier run's JSON")
    args = parser.parse_args()
    if args.from_json:
        saved = json.loads(Path(args.from_json).read_text())
        report(saved["records"], saved["args"]["datasets"].split(","), saved["args"]["batches"].split(","),
               saved["splits"], saved["args"]["survmom_args"], Path(args.plot))
        return

    datasets, batches = args.datasets.split(","), args.batches.split(",")
    if set(datasets) - set(data.DATASETS):
        parser.error(f"unknown data set(s): {', '.join(sorted(set(datasets) - set(data.DATASETS)))}")
    n_splits = args.splits or (2 if args.quick else 5)
    threads = 1 if args.jobs > 1 else None
    limits = (args.min_steps, args.max_steps, args.patience_steps)
    extra = shlex.split(args.survmom_args)
    # most steps per epoch first, so that the long small-batch runs on big data sets do not end up alone at the end
    rows = {d: len(data.load(d)) for d in datasets}
    tasks = [(d, k, b, m, extra, limits, threads) for b in batches for d in datasets for k in range(n_splits)
             for m in MODES]
    tasks.sort(key=lambda t: -(1 if t[2] == "full" else rows[t[0]] / int(t[2])))
    started = clock.perf_counter()
    records = []
    with ProcessPoolExecutor(args.jobs) as pool:
        for record in pool.map(run_task, tasks):
            records.append(record)
            c = "nan" if record["cindex"] is None else f"{record['cindex']:.4f}"
            info = record.get("info", {})
            print(f"[{len(records)}/{len(tasks)}] {record['dataset']} split {record['split']} batch {record['batch']} "
                  f"{record['mode']}: C {c}  {record['seconds']:.1f}s  epochs {info.get('epochs')} "
                  f"(best {info.get('best_epoch')})  {record['error'] or ''}", file=sys.stderr, flush=True)
    elapsed = clock.perf_counter() - started

    checks = report(records, datasets, batches, n_splits, args.survmom_args, Path(args.plot))
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "splits": n_splits, "elapsed_s": elapsed, "checks": checks,
                               "survmom_source": data.survmom_source(),
                               "records": records}, indent=1))
    print(f"\n{len(records)} runs in {elapsed:.0f} s; plot {args.plot}; JSON {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
