"""Training throughput, time to first step and peak memory of `survmom train`, side by side with peers.

In one run, on generated data (N rows × 20 numeric + 2 categorical columns, Parquet and CSV):
- `survmom train` through the CLI for a fixed number of epochs (batch 256, default bank): samples/s of the
  training loop (from the checkpoint's history), time from command start to the first step (file read +
  preprocessing, from the checkpoint's timings), wall time and peak RSS of the process; with the default
  network, and once more (Parquet) with pycox's network: MLP 64,64 without dropout and without the linear
  path (`--dropout 0 --no-linear-skip`), default bank;
- pycox CoxPH (if installed) on the same preprocessed matrix, MLP and batch, for one epoch;
- a plain PyTorch loop (randperm index batches, Cox loss, no momentum) on the same matrix: a reference;
- lifelines CoxPHFitter on 200,000 rows, and a full default `survmom train` (CSV) on the same 200,000 rows;
  twice: with the times in whole days, and with the same cohort's times left continuous. lifelines picks
  its Efron routine by the share of tied times: with many ties a batched one (≈ 1.5 s here), without ties
  one that loops over the rows in Python (≈ 12 s here; the issue quotes ≈ 16 s). Medians of ``--repeats``
  runs; lifelines' time is its fit alone (no import, no file read), survmom's the whole command.

    python benchmarks/bench_train.py            # 1,000,000 rows
    python benchmarks/bench_train.py --quick    # 100,000 rows, 50,000 for the lifelines comparison
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, cohort_files, markdown_table, run_measured, survmom_command, write_json

from survmom.core.losses import cox_loss
from survmom.core.model import build_mlp
from survmom.data import Preprocessor

FEATURES = [f"x{i:02d}" for i in range(20)] + ["group", "region"]


def survmom_run(path: Path, epochs: int, batch: int, folder: Path, extra: list[str] | None = None) -> dict:
    out = folder / f"{path.stem}_{path.suffix[1:]}.pt"
    args = ["train", path, "--epochs", str(epochs), "--batch", str(batch), "--out", out, "--quiet", *(extra or [])]
    measured = run_measured(survmom_command(*args))
    if measured.returncode != 0:
        raise SystemExit(f"survmom train failed: {measured.stderr}")
    state = torch.load(out, weights_only=True)
    history = state["history"]
    return {
        "wall_s": measured.wall_s,
        "peak_rss_mb": measured.peak_rss_mb,
        "samples_per_s": statistics.median(h["samples_per_s"] for h in history),
        "time_to_first_step_s": state["timings"]["time_to_first_step_s"],
        "epochs": len(history),
        "best_val_cindex": state["best"]["metric"],
    }


def preprocessed(frame: pd.DataFrame, path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The matrix survmom trains on (fitted on all rows), events (n,) and times (n,)."""
    pre = Preprocessor.fit(frame, FEATURES, path=path)
    return pre.transform(frame, path=path), frame["event"].to_numpy(bool), frame["time"].to_numpy(np.float64)


def plain_loop(x: np.ndarray, event: np.ndarray, time_: np.ndarray, batch: int) -> float:
    """Samples/s of one epoch of a plain Cox MLP loop with randperm index batches (no momentum)."""
    torch.manual_seed(0)
    xt, et, tt = torch.from_numpy(x), torch.from_numpy(event), torch.from_numpy(time_)
    net = build_mlp(x.shape[1], (64, 64), 1)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    order = torch.randperm(len(xt))
    start = time.perf_counter()
    for i in range(0, len(xt), batch):
        rows = order[i : i + batch]
        loss = cox_loss(net(xt[rows]), et[rows], tt[rows])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return len(xt) / (time.perf_counter() - start)


def pycox_epoch(x: np.ndarray, event: np.ndarray, time_: np.ndarray, batch: int) -> float | None:
    """Samples/s of one pycox CoxPH epoch (MLP 64,64, Adam), or None when pycox is not installed."""
    try:
        import torchtuples as tt
        from pycox.models import CoxPH
    except ImportError:
        return None
    torch.manual_seed(0)
    net = tt.practical.MLPVanilla(x.shape[1], [64, 64], 1, batch_norm=False, dropout=None)
    model = CoxPH(net, tt.optim.Adam(lr=1e-3))
    start = time.perf_counter()
    model.fit(x, (time_.astype(np.float32), event.astype(np.float32)), batch_size=batch, epochs=1, verbose=False)
    return len(x) / (time.perf_counter() - start)


def lifelines_fits(path: Path, repeats: int) -> list[float]:
    """Seconds of ``repeats`` lifelines CoxPHFitter fits (Efron ties) on survmom's preprocessed matrix of
    ``path`` (read and preprocessed once)."""
    from lifelines import CoxPHFitter

    x, event, time_ = preprocessed(pd.read_parquet(path), path)
    data = pd.DataFrame(x)
    data["time"], data["event"] = time_, event
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        CoxPHFitter(penalizer=0.01).fit(data, "time", "event")
        seconds.append(time.perf_counter() - start)
    return seconds


def versus_lifelines(rows: int, whole_days: bool, repeats: int, folder: Path) -> dict:
    """lifelines' fit and a full default `survmom train` (the CSV, whole command) on the same rows."""
    parquet, csv = cohort_files(rows, whole_days=whole_days)
    fits = lifelines_fits(parquet, repeats)
    walls, epochs = [], 0
    for _ in range(repeats):
        default = run_measured(survmom_command("train", csv, "--out", folder / "default.pt", "--quiet"))
        if default.returncode != 0:
            raise SystemExit(f"default survmom train failed: {default.stderr}")
        walls.append(default.wall_s)
        epochs = len(torch.load(folder / "default.pt", weights_only=True)["history"])
    result = {"rows": rows, "distinct_times": int(pd.read_parquet(parquet, columns=["time"])["time"].nunique()),
              "lifelines_fit_s": statistics.median(fits), "lifelines_runs_s": fits,
              "survmom_default_s": statistics.median(walls), "survmom_runs_s": walls, "survmom_epochs": epochs}
    print(f"versus lifelines ({'whole days' if whole_days else 'continuous'}): {result}", file=sys.stderr, flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="100,000 rows (50,000 for the lifelines comparison)")
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--device", default="auto", help="passed to survmom train (auto uses a GPU if present)")
    parser.add_argument("--json", type=Path, default=RESULTS / "bench_train.json")
    parser.add_argument("--repeats", type=int, default=None,
                        help="runs of the lifelines comparison, median reported (default 3, 1 with --quick)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads for the in-process peers (survmom trains on 1 by default)")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    rows = args.rows or (100_000 if args.quick else 1_000_000)
    compare_rows = 50_000 if args.quick else 200_000
    parquet, csv = cohort_files(rows)
    repeats = args.repeats or (1 if args.quick else 3)
    results: dict = {"rows": rows, "batch": args.batch, "epochs": args.epochs, "torch": str(torch.__version__),
                     "threads": torch.get_num_threads(), "device": args.device}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name, path in (("parquet", parquet), ("csv", csv)):
            results[f"survmom_{name}"] = survmom_run(path, args.epochs, args.batch, folder,
                                                     ["--device", args.device])
            print(f"survmom {name}: {results[f'survmom_{name}']}", file=sys.stderr, flush=True)
        same_mlp = ["--device", args.device, "--dropout", "0", "--no-linear-skip"]
        results["survmom_pycox_mlp"] = survmom_run(parquet, args.epochs, args.batch, folder, same_mlp)
        print(f"survmom, pycox's MLP: {results['survmom_pycox_mlp']}", file=sys.stderr, flush=True)
        # pycox's loss leaves tied times in sort order (no Efron correction): Breslow is the closest survmom loss.
        results["survmom_pycox_mlp_breslow"] = survmom_run(parquet, args.epochs, args.batch, folder,
                                                           [*same_mlp, "--ties", "breslow"])
        print(f"survmom, pycox's MLP, Breslow: {results['survmom_pycox_mlp_breslow']}", file=sys.stderr, flush=True)
        x, event, time_ = preprocessed(pd.read_parquet(parquet), parquet)
        results["plain_loop_samples_per_s"] = statistics.median(plain_loop(x, event, time_, args.batch)
                                                                for _ in range(2))
        results["pycox_samples_per_s"] = pycox_epoch(x, event, time_, args.batch)
        del x, event, time_
        results["versus_lifelines"] = {
            times: versus_lifelines(compare_rows, whole_days, repeats, folder)
            for times, whole_days in (("whole days", True), ("continuous", False))
        }
    sp, sc, same = results["survmom_parquet"], results["survmom_csv"], results["survmom_pycox_mlp"]
    breslow = results["survmom_pycox_mlp_breslow"]
    pycox = results["pycox_samples_per_s"]
    def survmom_row(name: str, run: dict) -> list[str]:
        return [name, f"{run['samples_per_s']:,.0f}", f"{run['time_to_first_step_s']:.2f}",
                f"{run['peak_rss_mb']:,.0f}", f"{run['wall_s']:.1f}"]

    table = [
        survmom_row("survmom train (Parquet)", sp),
        survmom_row("survmom train (CSV)", sc),
        survmom_row("survmom train (Parquet), pycox's MLP", same),
        survmom_row("survmom train (Parquet), pycox's MLP, Breslow ties", breslow),
        ["plain loop, no momentum", f"{results['plain_loop_samples_per_s']:,.0f}", "-", "-", "-"],
        ["pycox CoxPH", "-" if pycox is None else f"{pycox:,.0f}", "-", "-", "-"],
    ]
    print(f"\n{rows:,} rows × 22 columns, batch {args.batch}, MLP 64,64, {args.epochs} epoch(s), "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    print(markdown_table(["run", "samples/s", "time to first step s", "peak RSS MB", "wall s"], table))
    if pycox is not None:
        print(f"\nsurvmom / pycox samples/s, same MLP (64,64, no dropout, no linear path), default bank: "
              f"{same['samples_per_s'] / pycox:.2f} (Efron, survmom's default), "
              f"{breslow['samples_per_s'] / pycox:.2f} (Breslow); survmom's default network (dropout 0.1, "
              f"linear path): {sp['samples_per_s'] / pycox:.2f}")
    print(f"\n{compare_rows:,} rows, median of {repeats}: lifelines CoxPHFitter fit against a full default "
          "`survmom train` (whole command, CSV)\n")
    versus = [[times, f"{r['distinct_times']:,}", f"{r['lifelines_fit_s']:.1f}", f"{r['survmom_default_s']:.1f}",
               str(r["survmom_epochs"]), f"{r['survmom_default_s'] / r['lifelines_fit_s']:.2f}"]
              for times, r in results["versus_lifelines"].items()]
    print(markdown_table(["times", "distinct times", "lifelines s", "survmom s", "survmom epochs",
                          "survmom / lifelines"], versus))
    write_json(args.json, results)


if __name__ == "__main__":
    main()
