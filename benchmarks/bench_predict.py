"""`survmom predict` throughput and peak memory: CSV → CSV and Parquet → Parquet, on two file sizes.

A model is trained for one epoch on 50,000 generated rows, then `survmom predict` runs through the CLI on
N and N/10 rows. Rows/s counts the whole command (process start, torch import, read, predict, write);
"marginal rows/s" is (N - N/10) / (wall at N - wall at N/10): the rate once the fixed start-up (about 1.2 s:
Python, torch import, checkpoint load) is paid, i.e. what each extra row costs. Peak RSS is the child's
maximum resident set. Memory must not grow with the number of rows: besides the two sizes, one more run per
format on N rows records the peak RSS so far after every 65,536-row chunk, printed after 25/50/75/100% of
the rows (flat after the first chunks = bounded by the chunk, not the file).

    python benchmarks/bench_predict.py            # 1,000,000 and 100,000 rows
    python benchmarks/bench_predict.py --quick    # 200,000 and 20,000 rows
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, cohort_files, markdown_table, run_measured, survmom_command, write_json


def predict_once(model: Path, source: Path, out: Path) -> tuple[float, float]:
    measured = run_measured(survmom_command("predict", model, source, "-o", out, "--times", "365,730"))
    if measured.returncode != 0:
        raise SystemExit(f"survmom predict failed: {measured.stderr}")
    return measured.wall_s, measured.peak_rss_mb


# Runs predict_file in a child process and prints the process's peak RSS (MB) so far after every chunk.
_TRACE = """
import json, resource, sys
from pathlib import Path
import survmom.app.predict as predict
chunks, peaks = predict._prediction_chunks, []
def traced(*args, **kwargs):
    for chunk in chunks(*args, **kwargs):
        yield chunk
        peaks.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
predict._prediction_chunks = traced
predict.predict_file(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), [365.0, 730.0])
print(json.dumps(peaks))
"""


def peak_rss_trace(model: Path, source: Path, out: Path) -> list[float]:
    """Peak RSS (MB) of one predict run after each of its chunks (65,536 rows): flat once warm = no growth."""
    measured = run_measured([sys.executable, "-c", _TRACE, str(model), str(source), str(out)])
    if measured.returncode != 0:
        raise SystemExit(f"traced predict failed: {measured.stderr}")
    return json.loads(measured.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, default=RESULTS / "bench_predict.json")
    args = parser.parse_args()
    large = 200_000 if args.quick else 1_000_000
    sizes = [large // 10, large]
    train_parquet, _ = cohort_files(50_000)
    rows_out = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model = folder / "model.pt"
        trained = run_measured(survmom_command("train", train_parquet, "--epochs", "1", "--batch", "256",
                                               "--out", model, "--quiet"))
        if trained.returncode != 0:
            raise SystemExit(f"survmom train failed: {trained.stderr}")
        for rows in sizes:
            parquet, csv = cohort_files(rows)
            for kind, source, suffix in (("Parquet → Parquet", parquet, ".parquet"), ("CSV → CSV", csv, ".csv")):
                runs = [predict_once(model, source, folder / f"out{suffix}") for _ in range(args.repeats)]
                wall = statistics.median(r[0] for r in runs)
                rss = max(r[1] for r in runs)
                rows_out.append({"kind": kind, "rows": rows, "wall_s": wall, "rows_per_s": rows / wall,
                                 "peak_rss_mb": rss})
                print(f"{kind} {rows:,}: {wall:.2f} s, {rows / wall:,.0f} rows/s, {rss:.0f} MB", file=sys.stderr)
        traces = {kind: peak_rss_trace(model, source, folder / f"trace{source.suffix}")
                  for kind, source in zip(("Parquet → Parquet", "CSV → CSV"), cohort_files(large), strict=True)}
    print(f"\n`survmom predict` (median of {args.repeats}; whole command incl. start-up), cox model, 2 times\n")
    print(markdown_table(["input → output", "rows", "wall s", "rows/s", "peak RSS MB"],
                         [[r["kind"], f"{r['rows']:,}", f"{r['wall_s']:.2f}", f"{r['rows_per_s']:,.0f}",
                           f"{r['peak_rss_mb']:.0f}"] for r in rows_out]))
    summary = {}
    for kind in ("Parquet → Parquet", "CSV → CSV"):
        small, big = (r for r in rows_out if r["kind"] == kind)
        marginal = (big["rows"] - small["rows"]) / max(big["wall_s"] - small["wall_s"], 1e-9)
        growth = big["peak_rss_mb"] / small["peak_rss_mb"]
        summary[kind] = {"marginal_rows_per_s": marginal, "rss_growth": growth}
        print(f"\n{kind}: marginal {marginal:,.0f} rows/s; peak RSS at {big['rows']:,} rows / at "
              f"{small['rows']:,} rows = {growth:.2f}")
        trace = traces[kind]
        quarters = [trace[max(round(len(trace) * q) - 1, 0)] for q in (0.25, 0.5, 0.75, 1.0)]
        summary[kind]["peak_rss_after_quarters_mb"] = quarters
        print(f"{kind}, {large:,} rows, {len(trace)} chunks: peak RSS after 25/50/75/100% of the rows "
              f"{' / '.join(f'{q:.0f}' for q in quarters)} MB")
    write_json(args.json, {"rows": rows_out, "summary": summary})


if __name__ == "__main__":
    main()
