"""Test-set accuracy of ``survmom train`` against peer survival models on real and large generated data sets.

For every data set (see ``benchmarks/_datasets.py``: the 8 real ones ship inside scikit-survival or lifelines,
nothing is downloaded; ``--large`` runs the generated ``synth20k`` and ``synth100k`` instead: no package here
ships a large real survival data set) and every seeded 80/20 split (stratified by event), each method is fitted
on the training split and scored on the test split:

* Harrell's C (``survmom.core.metrics.concordance_index``; risk higher = earlier event);
* the integrated Brier score (``survmom.core.metrics.integrated_brier_score``, IPCW from the training split) on 20
  evenly spaced times from the 10th to the 90th percentile of the test event times (kept inside the test and
  training follow-up), for every method that yields survival curves; Cox-type peers get them from a Breslow
  baseline on their training rows;
* fit seconds (wall clock of the whole fit; for survmom the whole ``survmom train`` process, ~2-3 s of it
  Python start-up).

On generated data sets the column ``truth`` is the ceiling, not a method (no seconds): the test C of the true
log hazard and the IBS of the true survival (``_datasets.true_log_hazard``, ``true_survival``); the truth never
reaches any method's features.

Methods:

1. ``survmom``: ``survmom train`` with default settings, run as a user would: the split written to CSV with
   raw columns (categorical as text, missing values as empty cells), then ``survmom predict --times``;
2. ``survmom_weibull``: the same with ``--loss weibull``;
3. ``coxph``: lifelines ``CoxPHFitter(penalizer=0.01)``, Newton step size 0.5 (0.1 if that still warns): the
   default full steps fail to converge on flchain (test C 0.66 instead of 0.79);
4. ``deepsurv``: pycox ``CoxPH`` with ``tt.practical.MLPVanilla`` 32,32 (its defaults: batch norm; dropout
   0.1), Adam lr 1e-3, batch 256, at most 100 epochs, early stopping (patience 10, best weights) on the
   partial likelihood of 10% of the training split;
5. ``torchsurv_momentum``: torchsurv ``Momentum(mlp, neg_partial_log_likelihood, batchsize=16, steps=10,
   rate=0.999)``, MLP 32,32 (ReLU, dropout 0.1), Adam lr 1e-3, batch 16 (torchsurv needs full batches),
   at most 50 epochs, early stopping (patience 10, best target weights) on the C-index of 10% of the
   training split; predictions from ``model.infer``;
6. ``cox_mlp_b16``: the same MLP, optimiser and early stopping with the plain batch-16 Cox loss (torchsurv's
   ``neg_partial_log_likelihood``), no momentum;
7. ``xgboost``: ``objective="survival:cox"``, eta 0.05, max_depth 3, at most 1000 rounds with early stopping
   (50 rounds) on 10% of the training split;
8. ``xgboost_aft``: ``objective="survival:aft"``, normal error, the same eta, depth, rounds and early stopping;
   risk = minus the predicted log time; survival curves from the normal AFT law with its scale re-fitted on the
   validation rows (``benchmarks/_tree_peers.py``);
9. ``rsf``: scikit-survival ``RandomSurvivalForest``, 100 trees, min_samples_leaf 15, max_features sqrt; a
   training split over 20,000 rows is replaced by a seeded 20,000-row subsample, and times are coarsened to at
   most 100 distinct event times for the forest (memory); both said in the record's ``info``.

Peers 3-9 share one design matrix fitted on the training split: numeric columns median-imputed and
standardised, categorical columns one-hot encoded over the training categories (missing → most frequent).
Threads: with ``--jobs 1`` every peer uses the default (all cores: torch, XGBoost nthread 0, the forest's n_jobs
-1); with more jobs each task uses one.

Usage::

    python benchmarks/accuracy.py                       # 8 data sets x 5 splits x 9 methods
    python benchmarks/accuracy.py --quick               # 3 data sets x 2 splits
    python benchmarks/accuracy.py --large --splits 3    # synth20k, synth100k + the truth ceiling
    python benchmarks/accuracy.py --datasets synth20k --rows 2000 --splits 1 --methods truth,xgboost_aft,rsf
    python benchmarks/accuracy.py --methods survmom --survmom-args "--rate 0.99" --json bench_results/r099.json
    python benchmarks/accuracy.py --datasets gbsg2,lung --splits 3 --jobs 2
    python benchmarks/accuracy.py --methods survmom --variant r99="--rate 0.99" --variant h32="--hidden 32,32"
    python benchmarks/accuracy.py --jobs 2 --readme README.md  # the README's table (make accuracy)
    python benchmarks/accuracy.py --speed 10000           # target: default train on 10,000 rows in < 30 s
    python benchmarks/accuracy.py --reuse bench_results/accuracy.json --variant best="--batch 64"  # reuse the rest

Prints markdown tables (test C, IBS, fit seconds; cells ``mean ± sd`` over splits) and writes JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
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
from _cox_peers import fit_cox_mlp_b16, fit_coxph, fit_deepsurv, fit_torchsurv_momentum, fit_xgboost
from _tree_peers import fit_rsf, fit_xgboost_aft

METHODS = ("survmom", "survmom_weibull", "coxph", "deepsurv", "torchsurv_momentum", "cox_mlp_b16", "xgboost",
           "xgboost_aft", "rsf")
PEERS = METHODS[2:]
TRUTH = "truth"  # the ceiling column of generated data sets: scored like a method, never fitted
QUICK_DATASETS = ("gbsg2", "whas500", "aids")
IBS_POINTS = 20
_WARM: set[str] = set()  # peer methods already fitted once in this process


# ------------------------------------------------------------------------------------------ shared helpers
def design_matrix(train: pd.DataFrame, test: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(train, test) float32 matrices: numeric median-imputed + standardised, categorical one-hot (train fit)."""
    features = [c for c in train.columns if c not in ("time", "event")]
    parts_train, parts_test, names = [], [], []
    for column in features:
        if train[column].dtype == object:
            values = train[column].dropna().astype(str)
            mode = values.mode().iloc[0]
            categories = sorted(values.unique())
            for frame, parts in ((train, parts_train), (test, parts_test)):
                filled = frame[column].astype(object).where(frame[column].notna(), mode).astype(str)
                parts.append(np.stack([(filled == c).to_numpy(float) for c in categories], axis=1))
            names += [f"{column}={c}" for c in categories]
        else:
            median = train[column].median()
            filled_train = train[column].fillna(median).to_numpy(float)
            mean, sd = filled_train.mean(), filled_train.std()
            sd = sd if sd > 0 else 1.0
            parts_train.append(((filled_train - mean) / sd)[:, None])
            parts_test.append(((test[column].fillna(median).to_numpy(float) - mean) / sd)[:, None])
            names.append(column)
    x_train, x_test = np.hstack(parts_train), np.hstack(parts_test)
    keep = x_train.std(axis=0) > 0  # a category absent from (or universal in) the training split says nothing
    kept = [name for name, k in zip(names, keep) if k]
    return x_train[:, keep].astype(np.float32), x_test[:, keep].astype(np.float32), kept


def evaluation_times(train: pd.DataFrame, test: pd.DataFrame) -> np.ndarray:
    """IBS grid: evenly spaced from the 10th to the 90th percentile of test event times, inside follow-up."""
    event_times = test.loc[test["event"] == 1, "time"].to_numpy(float)
    if len(event_times) < 2:
        return np.array([])
    lo, hi = np.quantile(event_times, [0.1, 0.9])
    hi = min(hi, np.nextafter(test["time"].max(), -np.inf), train["time"].max())
    lo = max(lo, test["time"].min())
    grid = np.unique(np.array([float(f"{t:.6g}") for t in np.linspace(lo, hi, IBS_POINTS)]))
    grid = grid[(grid >= test["time"].min()) & (grid < test["time"].max())]
    return grid if len(grid) >= 2 else np.array([])


# ------------------------------------------------------------------------------------------------ methods
def fit_survmom(train: pd.DataFrame, test: pd.DataFrame, times: np.ndarray, extra: list[str],
                threads: int | None) -> dict[str, Any]:
    """``survmom train`` + ``survmom predict`` through the CLI on CSV files of the raw split.

    The benchmark-only marker ``@refit`` in ``extra`` emulates a proposed option: train as usual, then train
    again on every training row (``--val-frac 0``) for the best epoch count found, and predict with that.
    """
    refit = "@refit" in extra
    extra = [flag for flag in extra if flag != "@refit"]
    with tempfile.TemporaryDirectory(prefix="survmom_acc_") as folder:
        work = Path(folder)
        train.to_csv(work / "train.csv", index=False)
        test.to_csv(work / "test.csv", index=False)
        env = dict(os.environ)
        if threads:
            env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        cli = [sys.executable, "-m", "survmom"]
        started = clock.perf_counter()
        run = subprocess.run([*cli, "train", str(work / "train.csv"), "-o", str(work / "model.pt"), "-q", *extra],
                             capture_output=True, text=True, env=env, cwd=work)
        if run.returncode == 0 and refit:
            best_epoch = max(checkpoint_info(work / "model.pt")["best_epoch"], 1)
            run = subprocess.run([*cli, "train", str(work / "train.csv"), "-o", str(work / "model.pt"), "-q", *extra,
                                  "--val-frac", "0", "--epochs", str(best_epoch)], capture_output=True, text=True,
                                 env=env, cwd=work)
        seconds = clock.perf_counter() - started
        if run.returncode != 0:
            raise RuntimeError(f"survmom train exit {run.returncode}: {run.stderr.strip()[-500:]}")
        predict = [*cli, "predict", str(work / "model.pt"), str(work / "test.csv"), "-o", str(work / "pred.csv")]
        if len(times):
            predict += ["--times", ",".join(f"{t:.6g}" for t in times)]
        run = subprocess.run(predict, capture_output=True, text=True, env=env, cwd=work)
        if run.returncode != 0:
            raise RuntimeError(f"survmom predict exit {run.returncode}: {run.stderr.strip()[-500:]}")
        pred = pd.read_csv(work / "pred.csv")
        info = checkpoint_info(work / "model.pt")
    surv_cols = [c for c in pred.columns if c.startswith("surv_")]
    surv = pred[surv_cols].to_numpy(float) if len(times) and len(surv_cols) == len(times) else None
    return {"risk": pred["risk"].to_numpy(float), "surv": surv, "seconds": seconds, "info": info}


def checkpoint_info(path: Path) -> dict[str, Any]:
    """Epochs and steps run, best epoch and validation C of a survmom checkpoint (read as plain data)."""
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    progress, best = state["progress"], state["best"]
    return {"epochs": progress["epoch"], "steps": progress["step"], "best_epoch": best["epoch"],
            "val_cindex": best["metric"], "stopped_early": progress["stopped_early"]}



PEER_FITS = {"coxph": fit_coxph, "deepsurv": fit_deepsurv, "torchsurv_momentum": fit_torchsurv_momentum,
             "cox_mlp_b16": fit_cox_mlp_b16, "xgboost": fit_xgboost, "xgboost_aft": fit_xgboost_aft, "rsf": fit_rsf}
THREADED = ("xgboost", "xgboost_aft", "rsf")  # peers that take ``threads`` (torch ones: torch.set_num_threads)


# --------------------------------------------------------------------------------------------- one task
def run_task(task: tuple[str, int, str, str, int | None, int | None]) -> dict[str, Any]:
    """Fit ``method`` on split ``k`` of ``dataset`` (its first ``rows`` rows if set) and score it.

    Errors are recorded, not raised. Method ``truth`` scores the true log hazard of a generated data set.
    """
    import torch

    from survmom.core.metrics import concordance_index, integrated_brier_score
    from survmom.errors import SurvmomError

    dataset, k, method, survmom_args, threads, rows = task
    if threads:
        torch.set_num_threads(threads)
    frame = data.load(dataset)
    truth = data.true_log_hazard(dataset)
    if rows:
        frame = frame.iloc[:rows]
        truth = None if truth is None else truth[:rows]
    train_rows, test_rows = data.splits(frame["event"].to_numpy(), k + 1)[k]
    train, test = frame.iloc[train_rows].reset_index(drop=True), frame.iloc[test_rows].reset_index(drop=True)
    times = evaluation_times(train, test)
    record: dict[str, Any] = {"dataset": dataset, "split": k, "method": method, "cindex": None, "ibs": None,
                              "seconds": None, "error": None, "n_train": len(train), "n_test": len(test)}
    if method.startswith("survmom"):
        record["survmom_args"] = survmom_args
        record["survmom_source"] = data.survmom_source()["sha256"]
    try:
        if method == TRUTH:
            if truth is None:
                raise ValueError("no known truth: not a generated data set")
            risk = truth[test_rows]
            surv = data.true_survival(risk, times) if len(times) else None
            result = {"risk": risk, "surv": surv, "seconds": None}
        elif method.startswith("survmom"):
            extra = shlex.split(survmom_args) + (["--loss", "weibull"] if method == "survmom_weibull" else [])
            result = fit_survmom(train, test, times, extra, threads)
        else:
            x_train, x_test, names = design_matrix(train, test)
            fit = PEER_FITS[method]
            if method in THREADED:
                fit = functools.partial(fit, threads=threads)
            if method not in _WARM:  # first fit in this process: pay imports and JIT outside the timer
                _WARM.add(method)
                with contextlib.suppress(Exception):
                    fit(train.iloc[:100], test, x_train[:100], x_test, names, np.array([]), k)
            result = fit(train, test, x_train, x_test, names, times, k)
    except Exception as error:  # a failing method must not stop the benchmark
        record["error"] = f"{type(error).__name__}: {str(error)[:500]}"
        return record
    event, time = test["event"].to_numpy() == 1, test["time"].to_numpy(float)
    record["seconds"] = result["seconds"]
    if "info" in result:
        record["info"] = result["info"]
    record["cindex"] = concordance_index(torch.as_tensor(result["risk"]), torch.as_tensor(event),
                                         torch.as_tensor(time))
    if result["surv"] is not None:
        try:
            record["ibs"] = integrated_brier_score(
                torch.as_tensor(result["surv"]), torch.as_tensor(event), torch.as_tensor(time),
                torch.as_tensor(train["event"].to_numpy() == 1), torch.as_tensor(train["time"].to_numpy(float)),
                torch.as_tensor(times))
        except SurvmomError as error:
            record["error"] = f"IBS skipped: {error}"
    return record


# ---------------------------------------------------------------------------------------------- reports
def _values(records, dataset, method, key):
    return [r[key] for r in records if r["dataset"] == dataset and r["method"] == method and r[key] is not None]


def table(records: list[dict], datasets: list[str], methods: list[str], key: str, digits: int = 3) -> str:
    """Markdown table: data sets x methods, ``mean ± sd`` over splits, and the mean over data sets."""
    lines = ["| data set | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
    for dataset in datasets:
        cells = [data.cell(_values(records, dataset, m, key), digits) for m in methods]
        lines.append(f"| {dataset} | " + " | ".join(cells) + " |")
    means = []
    for method in methods:
        per_dataset = [data.mean_sd(_values(records, d, method, key))[0] for d in datasets]
        means.append(data.cell(per_dataset, digits) if all(np.isfinite(per_dataset)) else "–")
    lines.append("| **mean over data sets** | " + " | ".join(means) + " |")
    return "\n".join(lines)


README_START = "<!-- accuracy-table: start (benchmarks/accuracy.py --readme) -->"
README_END = "<!-- accuracy-table: end -->"


def method_label(method: str, survmom_args: dict[str, str]) -> str:
    """A README column name: the survmom command's flags (``survmom --ensemble 5``), or the peer's name."""
    if method.startswith("survmom"):
        flags = (survmom_args.get(method, "") + (" --loss weibull" if method == "survmom_weibull" else "")).strip()
        return f"survmom {flags}" if flags else "survmom (default)"
    return method


def readme_table(records: list[dict], datasets: list[str], methods: list[str], survmom_args: dict[str, str],
                 n_splits: int) -> str:
    """The README's results block: how it was made, then the test C table (``mean ± sd`` over splits, the mean
    over data sets in bold) and the IBS means, ready to go between :data:`README_START` and :data:`README_END`."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parent).stdout.strip() or "not a git checkout"
    peers = [m for m in methods if m in PEERS]
    best = best_peers(records, datasets, peers, n_splits) if len(peers) > 1 else {}
    picked = ("on_test", "other_splits") if best and len(best) == len(datasets) else ()
    headers = [method_label(m, survmom_args) for m in methods]
    headers += ["best peer (picked on these splits)", "best peer (picked on the other splits)"][: len(picked)]
    lines = [f"Generated by `python benchmarks/accuracy.py --readme README.md` on {clock.strftime('%Y-%m-%d')} "
             f"(commit {commit}, survmom source {data.survmom_source()['sha256']}): test Harrell C over "
             f"{n_splits} split{'s' if n_splits != 1 else ''} of {len(datasets)} data sets.", "",
             "| data set | " + " | ".join(headers) + " |", "|---|" + "---:|" * len(headers)]
    for dataset in datasets:
        cells = [data.cell(_values(records, dataset, m, "cindex")) for m in methods]
        if picked:
            cells.append(f"{data.cell(best[dataset]['on_test']['cindex'])} ({best[dataset]['on_test']['peer']})")
            picks = best[dataset]["other_splits"]["picks"]
            names = "/".join(sorted(set(picks), key=lambda p: (-picks.count(p), p)))
            cells.append(f"{data.cell(best[dataset]['other_splits']['cindex'])} ({names})")
        lines.append(f"| {dataset} | " + " | ".join(cells) + " |")
    for key, name in (("cindex", "mean"), ("ibs", "mean integrated Brier score (lower is better)")):
        means = [np.mean([data.mean_sd(_values(records, d, m, key))[0] for d in datasets]) for m in methods]
        means += [np.mean([np.mean(best[d][how][key]) for d in datasets]) for how in picked]
        lines.append(f"| **{name}** | " + " | ".join("–" if not np.isfinite(v) else f"**{v:.3f}**" for v in means)
                     + " |")
    return "\n".join(lines)


def best_peers(records: list[dict], datasets: list[str], peers: list[str], n_splits: int) -> dict[str, dict]:
    """The best peer of each data set, picked two ways, with the C and IBS of what was picked.

    ``on_test``: the peer with the highest mean test C over all splits (what a target "the best peer of each data
    set" names; picking on the splits it is scored on makes it optimistic: the maximum of several noisy means).
    ``other_splits``: for each split k, the peer with the highest mean test C over the *other* splits, scored on
    split k (leave-one-split-out, as a user would have to pick before seeing new data); ``cindex`` and ``ibs``
    are then per split, ``picks`` the peer picked for each split.
    """
    def mean_of(dataset: str, peer: str, key: str, splits: set[int]) -> float:
        values = [r[key] for r in records if r["dataset"] == dataset and r["method"] == peer and r["split"] in splits
                  and r[key] is not None]
        return float(np.mean(values)) if values else float("nan")

    out: dict[str, dict] = {}
    all_splits = set(range(n_splits))
    for dataset in datasets:
        ranked = [p for p in peers if np.isfinite(mean_of(dataset, p, "cindex", all_splits))]
        if not ranked:
            continue
        on_test = max(ranked, key=lambda p: mean_of(dataset, p, "cindex", all_splits))
        picks = [max(ranked, key=lambda p: mean_of(dataset, p, "cindex", all_splits - {k})) if n_splits > 1 else on_test
                 for k in range(n_splits)]
        out[dataset] = {
            "on_test": {"peer": on_test, "cindex": _values(records, dataset, on_test, "cindex"),
                        "ibs": _values(records, dataset, on_test, "ibs")},
            "other_splits": {"picks": picks,
                             "cindex": [mean_of(dataset, p, "cindex", {k}) for k, p in enumerate(picks)],
                             "ibs": [mean_of(dataset, p, "ibs", {k}) for k, p in enumerate(picks)]},
        }
    return out


def write_readme_table(path: Path, block: str) -> None:
    """Replace the text between the README's markers with ``block`` (atomically); ValueError without markers."""
    text = path.read_text(encoding="utf-8")
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        raise ValueError(f"{path}: no '{README_START}' ... '{README_END}' block to replace")
    new = text[: start + len(README_START)] + "\n" + block + "\n" + text[end:]
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(new, encoding="utf-8")
    temporary.replace(path)


def summary(records: list[dict], datasets: list[str], methods: list[str]) -> dict[str, Any]:
    """Per data set and method mean/sd of C, IBS and seconds; plus the acceptance check for ``survmom``."""
    out: dict[str, Any] = {"per_dataset": {}, "mean_over_datasets": {}}
    for dataset in datasets:
        out["per_dataset"][dataset] = {
            m: {key: data.mean_sd(_values(records, dataset, m, key)) for key in ("cindex", "ibs", "seconds")}
            for m in methods}
    for method in methods:
        out["mean_over_datasets"][method] = {
            key: float(np.mean([out["per_dataset"][d][method][key][0] for d in datasets]))
            for key in ("cindex", "ibs", "seconds")}
    peers = [m for m in methods if m in PEERS]
    out["best_peers"] = best_peers(records, datasets, peers, max((r["split"] for r in records), default=0) + 1)
    out["target_a"] = {}
    for method in [m for m in methods if m == "survmom" or m.startswith("survmom:")] if peers else []:
        best_peer = max(peers, key=lambda m: out["mean_over_datasets"][m]["cindex"])
        gaps = {d: out["per_dataset"][d][method]["cindex"][0]
                - max(out["per_dataset"][d][m]["cindex"][0] for m in peers) for d in datasets}
        out["target_a"][method] = {
            "best_peer": best_peer,
            "minus_best_peer_mean": out["mean_over_datasets"][method]["cindex"]
            - out["mean_over_datasets"][best_peer]["cindex"],
            "minus_best_peer_per_dataset": gaps,
            "worst_gap": min(gaps.values()),
            "minus_mean_of_best_peer_per_dataset": {
                how: out["mean_over_datasets"][method]["cindex"]
                - float(np.mean([np.mean(out["best_peers"][d][how]["cindex"]) for d in datasets]))
                for how in ("on_test", "other_splits") if len(out["best_peers"]) == len(datasets)},
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=f"2 splits on {', '.join(QUICK_DATASETS)}")
    parser.add_argument("--large", action="store_true",
                        help=f"the generated data sets {', '.join(data.LARGE_DATASETS)} (+ the truth column)")
    parser.add_argument("--datasets", help=f"comma-separated, from {', '.join(data.DATASETS + data.LARGE_DATASETS)}")
    parser.add_argument("--methods", help=f"comma-separated, from {', '.join((*METHODS, TRUTH))}")
    parser.add_argument("--rows", type=int, help=argparse.SUPPRESS)  # debug: first ROWS rows of each data set
    parser.add_argument("--splits", type=int, help="number of 80/20 splits (default 5; --quick 2)")
    parser.add_argument("--survmom-args", default="", help='extra flags for both survmom runs, e.g. "--rate 0.99"')
    parser.add_argument("--variant", action="append", default=[], metavar='NAME="ARGS"',
                        help='add a column survmom:NAME (cox) run with these extra flags; repeatable')
    parser.add_argument("--reuse", help="comma-separated JSON files (or .records.jsonl of interrupted runs) of "
                        "earlier runs: reuse their records (survmom ones: same flags and code) instead of refitting")
    parser.add_argument("--speed", type=int, metavar="ROWS",
                        help="only time survmom train (+ --survmom-args) on a generated file of ROWS rows")
    parser.add_argument("--repeats", type=int, default=3, help="--speed repetitions (median reported)")
    parser.add_argument("--jobs", type=int, default=1, help="parallel tasks (each then uses 1 thread)")
    parser.add_argument("--json", default="bench_results/accuracy.json", help="output JSON file")
    parser.add_argument("--readme", metavar="README.md",
                        help="also write the C table into this file, between its accuracy-table markers")
    args = parser.parse_args()

    if args.speed:
        result = speed_check(args.speed, shlex.split(args.survmom_args), args.repeats)
        print(json.dumps(result, indent=1))
        print(f"survmom train on {args.speed} rows ({args.survmom_args or 'defaults'}): median "
              f"{result['median_s']:.1f} s wall of {', '.join(f'{s:.1f}' for s in result['seconds'])}")
        return
    default_datasets = data.LARGE_DATASETS if args.large else QUICK_DATASETS if args.quick else data.DATASETS
    datasets = args.datasets.split(",") if args.datasets else list(default_datasets)
    generated = any(d in data.SYNTHETIC for d in datasets)
    methods = args.methods.split(",") if args.methods else [*([TRUTH] if generated else []), *METHODS]
    unknown = (sorted(set(methods) - {*METHODS, TRUTH})
               + sorted(set(datasets) - {*data.DATASETS, *data.LARGE_DATASETS}))
    if unknown:
        parser.error(f"unknown method(s)/data set(s): {', '.join(unknown)}")
    extra_args = {m: args.survmom_args for m in methods}
    for variant in args.variant:
        name, _, flags = variant.partition("=")
        if not name or not flags:
            parser.error(f'--variant expects NAME="FLAGS", got {variant!r}')
        methods.append(f"survmom:{name}")
        extra_args[f"survmom:{name}"] = f"{args.survmom_args} {flags}".strip()
    if args.rows and args.reuse:
        parser.error("--rows and --reuse do not mix: reused records may come from full-size data sets")
    n_splits = args.splits or (2 if args.quick else 5)
    threads = 1 if args.jobs > 1 else None
    reused = _reusable(args.reuse, datasets, n_splits, extra_args)
    tasks = [(d, k, m, extra_args[m], threads, args.rows) for d in datasets for k in range(n_splits) for m in methods
             if (d, k, m) not in reused]
    started = clock.perf_counter()
    records = list(reused.values())
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(".records.jsonl")  # every finished fit, so that an interrupted run can be --reused
    with partial.open("a") as log, contextlib.ExitStack() as stack:
        pool = stack.enter_context(ProcessPoolExecutor(args.jobs)) if args.jobs > 1 else None
        fits = pool.map(run_task, tasks) if pool else map(run_task, tasks)
        for i, record in enumerate(fits):
            records.append(record)
            log.write(json.dumps(record) + "\n")
            log.flush()
            _progress(record, i + 1, len(tasks))
    elapsed = clock.perf_counter() - started

    print(f"\nTest Harrell C (mean ± sd over {n_splits} splits); survmom args: {args.survmom_args or '(defaults)'}\n")
    print(table(records, datasets, methods, "cindex"))
    print("\nIntegrated Brier score (lower is better)\n")
    print(table(records, datasets, methods, "ibs"))
    print("\nFit seconds (wall; survmom includes process start-up)\n")
    print(table(records, datasets, methods, "seconds", digits=1))
    result = summary(records, datasets, methods)
    for method, a in result["target_a"].items():
        print(f"\nTarget (a) for {method}: minus the best peer ({a['best_peer']}) mean C = "
              f"{a['minus_best_peer_mean']:+.4f}; worst gap to the best peer of a data set = {a['worst_gap']:+.4f}")
        for how, gap in a["minus_mean_of_best_peer_per_dataset"].items():
            print(f"  minus the mean of each data set's best peer picked {how.replace('_', ' ')}: {gap:+.4f}")
    errors = [r for r in records if r["error"]]
    for r in errors:
        print(f"note: {r['dataset']} split {r['split']} {r['method']}: {r['error']}", file=sys.stderr)
    out.write_text(json.dumps({"args": vars(args), "datasets": datasets, "methods": methods, "splits": n_splits,
                               "survmom_args": {m: a for m, a in extra_args.items() if m.startswith("survmom")},
                               "survmom_source": data.survmom_source(),
                               "elapsed_s": elapsed, "summary": result, "records": records}, indent=1))
    print(f"\n{len(records)} fits in {elapsed:.0f} s; JSON written to {out}", file=sys.stderr)
    if args.readme:
        survmom_args = {m: a for m, a in extra_args.items() if m.startswith("survmom")}
        write_readme_table(Path(args.readme), readme_table(records, datasets, methods, survmom_args, n_splits))
        print(f"results table written to {args.readme}", file=sys.stderr)


def speed_check(rows: int, extra: list[str], repeats: int) -> dict[str, Any]:
    """Wall seconds of ``survmom train`` (+ flags) on a ``rows``-row CSV made like ``sample_data/generate.py``."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("generate", Path(__file__).resolve().parents[1]
                                                  / "sample_data" / "generate.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    rng = np.random.default_rng(gen.SEED)
    frame = gen.covariates(rng, rows, 1)
    t_event = gen.weibull_times(rng, gen.true_log_risk(frame))
    t_censor = gen.censoring_times(rng, t_event)
    frame["time"] = np.maximum(np.ceil(np.minimum(t_event, t_censor)), 1.0).astype(np.int64)
    frame["event"] = (t_event <= t_censor).astype(np.int64)
    frame = gen.punch_missing(rng, frame, {"bmi": 0.05, "crp": 0.05, "albumin": 0.04})
    seconds, infos = [], []
    with tempfile.TemporaryDirectory(prefix="survmom_speed_") as folder:
        path = Path(folder) / "cohort.csv"
        frame.to_csv(path, index=False)
        for _ in range(repeats):
            started = clock.perf_counter()
            subprocess.run([sys.executable, "-m", "survmom", "train", str(path), "--id-col", "id", "-q",
                            "-o", str(Path(folder) / "model.pt"), *extra], check=True, cwd=folder)
            seconds.append(clock.perf_counter() - started)
            infos.append(checkpoint_info(Path(folder) / "model.pt"))
    return {"rows": rows, "flags": extra, "seconds": seconds, "median_s": float(np.median(seconds)),
            "threads": os.environ.get("OMP_NUM_THREADS", "torch default"), "cpus": os.cpu_count(), "runs": infos}


def _reusable(path: str | None, datasets: list[str], n_splits: int, extra_args: dict[str, str]) -> dict[tuple, dict]:
    """Records of earlier runs (comma-separated files) for the requested data sets, splits and methods."""
    if not path:
        return {}
    source = data.survmom_source()["sha256"]
    records = []
    for name in path.split(","):
        text = Path(name).read_text()
        if name.endswith(".jsonl"):
            records += [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            previous = json.loads(text)
            args = previous.get("survmom_args", {})
            records += [{"survmom_args": args.get(r["method"]), **r} if r["method"] in args else r
                        for r in previous["records"]]

    def same(record: dict) -> bool:
        method = record["method"]
        if method not in extra_args or record["cindex"] is None:
            return False
        return not method.startswith("survmom") or (record.get("survmom_args") == extra_args[method]
                                                     and record.get("survmom_source") == source)

    return {(r["dataset"], r["split"], r["method"]): r for r in records
            if r["dataset"] in datasets and r["split"] < n_splits and same(r)}


def _progress(record: dict, done: int, total: int) -> None:
    c = "nan" if record["cindex"] is None else f"{record['cindex']:.3f}"
    s = "" if record["seconds"] is None else f" {record['seconds']:.1f}s"
    err = f"  [{record['error'][:120]}]" if record["error"] else ""
    print(f"[{done}/{total}] {record['dataset']} split {record['split']} {record['method']}: C {c}{s}{err}",
          file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
