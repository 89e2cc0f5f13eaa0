"""Reading an Excel workbook: openpyxl's own pass, survmom's read (one pass, values kept) and its streamed read
(a sheet over CACHE_CELLS: two passes), on a generated sheet of --rows rows x 10 columns written by openpyxl.

    python benchmarks/bench_excel.py [--rows 100000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import openpyxl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, markdown_table, write_json

from survmom.data import excel
from survmom.data.read import iter_table_batches, read_table


def write_sheet(path: Path, rows: int) -> None:
    """time, event, 4 numeric and 4 text columns (three levels), one sheet, openpyxl write-only mode."""
    rng = np.random.default_rng(0)
    numbers = np.round(rng.normal(size=(rows, 4)), 6).tolist()
    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet("data")
    sheet.append(["time", "event", *(f"x{i}" for i in range(4)), *(f"c{i}" for i in range(4))])
    levels = ["a", "b", "c"]
    for i in range(rows):
        sheet.append([i % 365 + 1, i % 3 == 0, *numbers[i], *(levels[(i + j) % 3] for j in range(4))])
    book.save(path)


def timed(step) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--json", type=Path, default=RESULTS / "bench_excel.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "cohort.xlsx"
        results = {"write (openpyxl write-only)": timed(lambda: write_sheet(path, args.rows))}

        def openpyxl_pass() -> None:
            book = openpyxl.load_workbook(path, read_only=True, data_only=True)
            for _ in book.worksheets[0].iter_rows(values_only=True):
                pass
            book.close()

        results["openpyxl iter_rows alone"] = timed(openpyxl_pass)
        results["survmom read_table (one pass)"] = timed(lambda: read_table(path))
        excel.CACHE_CELLS, excel._last = 0, None  # as a sheet too large to keep
        results["survmom iter_table_batches (two passes)"] = timed(
            lambda: sum(len(b) for b in iter_table_batches(path, None, 65_536)))
    print(markdown_table(["step", "seconds"], [[k, f"{v:.1f}"] for k, v in results.items()]))
    write_json(args.json, {"rows": args.rows, "seconds": results})


if __name__ == "__main__":
    main()
