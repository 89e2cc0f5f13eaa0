"""Shared helpers for the benchmark scripts: timed child processes with peak RSS, generated data, tables."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

RESULTS = Path("bench_results")
DATA = RESULTS / "data"


@dataclass
class Measured:
    """One child process: wall seconds, peak resident memory (MB), exit code and captured output."""

    wall_s: float
    peak_rss_mb: float
    returncode: int
    stdout: str
    stderr: str


def run_measured(args: list[str], env: dict | None = None) -> Measured:
    """Run ``args`` as a child process; peak RSS comes from ``wait4``'s rusage of that child alone."""
    start = time.perf_counter()
    with open(os.devnull, "rb") as stdin:
        process = subprocess.Popen(args, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   env={**os.environ, **(env or {})})
        out_chunks: list[bytes] = []
        err_chunks: list[bytes] = []

        # communicate() would reap the child itself: drain the pipes in threads, then wait4 for its rusage.
        def drain(stream, chunks):
            for block in iter(lambda: stream.read(65536), b""):
                chunks.append(block)

        readers = [threading.Thread(target=drain, args=(process.stdout, out_chunks)),
                   threading.Thread(target=drain, args=(process.stderr, err_chunks))]
        for reader in readers:
            reader.start()
        _, status, usage = os.wait4(process.pid, 0)
        for reader in readers:
            reader.join()
        process.returncode = os.waitstatus_to_exitcode(status)
        stdout, stderr = b"".join(out_chunks), b"".join(err_chunks)
    wall = time.perf_counter() - start
    return Measured(wall, usage.ru_maxrss / 1024, process.returncode, stdout.decode(errors="replace"),
                    stderr.decode(errors="replace"))


def survmom_command(*args: str | Path) -> list[str]:
    """The CLI as a user runs it (the console script next to this Python)."""
    script = Path(sys.executable).with_name("survmom")
    base = [str(script)] if script.exists() else [sys.executable, "-m", "survmom"]
    return [*base, *map(str, args)]


def generate_cohort(rows: int, seed: int = 0, whole_days: bool = True) -> pd.DataFrame:
    """``rows`` × (20 numeric + 2 categorical) covariates with a Cox-Weibull outcome, ~30% censored.

    Times are rounded up to whole days (many tied times: 4,649 distinct among 200,000 rows), or with
    ``whole_days=False`` left continuous (no ties; the same covariates and events).
    """
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, 20)).astype(np.float64)
    frame = pd.DataFrame(x.copy(), columns=[f"x{i:02d}" for i in range(20)])
    frame["group"] = rng.choice(np.array(["a", "b", "c", "d", "e"]), rows)
    frame["region"] = rng.choice(np.array(["north", "south", "east", "west"]), rows)
    frame.loc[rng.random(rows) < 0.05, "x03"] = np.nan
    eta = 0.5 * x[:, 0] - 0.4 * x[:, 1] + 0.3 * x[:, 2] * x[:, 3] + 0.3 * (frame["group"] == "b").to_numpy()
    event_time = 1000 * (-np.log(rng.random(rows)) * np.exp(-eta)) ** (1 / 1.3)
    censor_time = rng.exponential(2500, rows)
    time = np.minimum(event_time, censor_time)
    frame["time"] = np.maximum(np.ceil(time), 1.0) if whole_days else time
    frame["event"] = (event_time <= censor_time).astype(np.int8)
    return frame


def cohort_files(rows: int, whole_days: bool = True) -> tuple[Path, Path]:
    """Parquet and CSV files of :func:`generate_cohort` (cached under bench_results/data)."""
    DATA.mkdir(parents=True, exist_ok=True)
    name = f"cohort_{rows}" if whole_days else f"cohort_{rows}_continuous"
    parquet, csv = DATA / f"{name}.parquet", DATA / f"{name}.csv"
    if not (parquet.exists() and csv.exists()):
        frame = generate_cohort(rows, whole_days=whole_days)
        frame.to_parquet(parquet, index=False)
        frame.to_csv(csv, index=False)
    return parquet, csv


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    """A markdown table with right-aligned columns after the first."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" + "---:|" * (len(header) - 1)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=str))
