#!/usr/bin/env bash
# Single-GPU check (issue 19), for a machine with CUDA: training throughput on the GPU against the CPU, and
# the test C-index of both models on a held-out file. Writes a markdown table to ${OUT:-bench_results}/gpu_check.md.
# Run from the repository root with the environment installed (make setup, or pip install -e . with a CUDA torch).
set -euo pipefail
OUT="${OUT:-bench_results}"
mkdir -p "$OUT"
PY="${PYTHON:-python}"
"$PY" - "$OUT" <<'PYTHON'
import json, subprocess, sys, time
from pathlib import Path
import torch
sys.path.insert(0, "benchmarks")
from _common import generate_cohort

out = Path(sys.argv[1])
if not torch.cuda.is_available():
    raise SystemExit("no CUDA device here: nothing to check")
frame = generate_cohort(220_000, seed=5)
frame.iloc[:200_000].to_parquet(out / "gpu_train.parquet", index=False)
frame.iloc[200_000:].to_parquet(out / "gpu_test.parquet", index=False)
rows = []
for device in ("cpu", "cuda"):
    model = out / f"gpu_check_{device}.pt"
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "survmom", "train", str(out / "gpu_train.parquet"), "--device", device,
                    "--batch", "256", "--epochs", "3", "--out", str(model), "--quiet"], check=True)
    wall = time.perf_counter() - start
    history = torch.load(model, weights_only=True)["history"]
    rate = sum(r["samples_per_s"] * r["seconds"] for r in history) / sum(r["seconds"] for r in history)
    scored = subprocess.run([sys.executable, "-m", "survmom", "evaluate", str(model), str(out / "gpu_test.parquet"),
                             "--json"], check=True, capture_output=True, text=True)
    rows.append((device, rate, wall, json.loads(scored.stdout)["harrell_c"]))
table = ["| device | samples/s | wall s | test C |", "|---|---:|---:|---:|"]
table += [f"| {d} | {r:,.0f} | {w:.1f} | {c:.4f} |" for d, r, w, c in rows]
table.append(f"\n{torch.cuda.get_device_name(0)}, torch {torch.__version__}; GPU/CPU samples/s "
             f"{rows[1][1] / rows[0][1]:.2f}x, test C difference {rows[1][3] - rows[0][3]:+.4f}")
(out / "gpu_check.md").write_text("\n".join(table) + "\n")
print("\n".join(table))
PYTHON
