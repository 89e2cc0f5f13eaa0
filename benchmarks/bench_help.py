"""Wall time of `survmom --help` and of `survmom train --help` (the CLI must not import torch to show help).

    python benchmarks/bench_help.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, markdown_table, run_measured, survmom_command, write_json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="3 repeats")
    parser.add_argument("--json", type=Path, default=RESULTS / "bench_help.json")
    args = parser.parse_args()
    repeats = 3 if args.quick else args.repeats
    results = {}
    for label, extra in (("survmom --help", ["--help"]), ("survmom train --help", ["train", "--help"])):
        walls = []
        for _ in range(repeats):
            measured = run_measured(survmom_command(*extra))
            if measured.returncode != 0:
                raise SystemExit(measured.stderr)
            walls.append(measured.wall_s)
        results[label] = {"median_s": statistics.median(walls), "min_s": min(walls)}
    print(markdown_table(["command", "median s", "min s"],
                         [[k, f"{v['median_s']:.3f}", f"{v['min_s']:.3f}"] for k, v in results.items()]))
    write_json(args.json, results)


if __name__ == "__main__":
    main()
