"""``survmom plot importance`` (and ``survmom explain -o``): permutation importance of each input column.

The numbers are :func:`survmom.app.explain.explain_file`'s; the figure is a horizontal dot plot, one row per
input column, largest mean drop in C (Harrell's, or the design's) at the top, with its 95% interval as a
whisker and a line at zero (no effect).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from survmom.app.explain import concordance_name, explain_file
from survmom.app.figures import PALETTE, literal, new_figure, write_figure

__all__ = ["draw_importance", "explain_file"]


def draw_importance(result: dict[str, Any], out: Path) -> None:
    """Draw ``result`` (from :func:`explain_file`) and write it to ``out`` (.png, .svg or .pdf)."""
    entries = result["columns"]
    count = len(entries)
    with new_figure(7.0, 1.6 + 0.32 * count) as fig:
        ax = fig.add_subplot()
        ys = list(range(count))[::-1]  # the largest at the top
        means = [entry["mean_drop"] for entry in entries]
        lows = [entry["ci95"][0] for entry in entries]
        if lows and lows[0] is not None:
            xerr = [[m - entry["ci95"][0] for m, entry in zip(means, entries)],
                    [entry["ci95"][1] - m for m, entry in zip(means, entries)]]
            ax.errorbar(means, ys, xerr=xerr, fmt="none", ecolor=PALETTE[0], elinewidth=1.5, capsize=3,
                        label="95% interval over the repeats")
        ax.plot(means, ys, "o", color=PALETTE[0], markersize=6, label="mean drop")
        ax.axvline(0.0, color="0.35", linewidth=1, linestyle="--", label="no effect")
        ax.set_yticks(ys, [literal(entry["column"]) for entry in entries])
        ax.set_ylim(-0.7, count - 0.3)
        ax.grid(axis="y", visible=False)
        ax.set_xlabel(f"drop in {concordance_name(result)} when the column is permuted "
                      f"(C = {result['harrell_c']:.3f} unpermuted)")
        ax.set_title(f"Permutation importance of the input columns of {literal(Path(result['checkpoint']).name)}\n"
                     f"on {literal(Path(result['data']).name)} ({result['rows']:,} rows, {result['events']:,} events); "
                     f"{result['repeats']} permutation(s), seed {result['seed']}")
        ax.legend(loc="lower right", frameon=False)
        write_figure(fig, out)
