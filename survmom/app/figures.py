"""What every survmom figure shares: the output check, the style, the palette and the atomic write.

Figures are drawn on a bare :class:`matplotlib.figure.Figure` (no pyplot, so no global state and no GUI
backend, also inside a notebook) and written by the suffix of ``-o``: ``.png``, ``.svg`` or ``.pdf``.
matplotlib is imported only here and only when a figure is drawn, so ``survmom --help`` stays fast.

The palette is Okabe & Ito's colour-blind safe set (Okabe & Ito 2008, "Color Universal Design").
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from survmom.atomic import atomic_write, check_output_path
from survmom.errors import ConfigError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FIGURE_SUFFIXES = (".png", ".svg", ".pdf")
# Okabe-Ito, without the yellow that vanishes on white: blue, vermillion, bluish green, reddish purple,
# orange, sky blue, black.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
STYLE = {
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "legend.fontsize": 10,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    "svg.hashsalt": "survmom",  # the same figure gives the same .svg bytes
    "pdf.compression": 6,
}


def check_figure_path(out: Path, inputs: list[Path]) -> None:
    """ConfigError naming ``-o`` unless ``out`` has a figure suffix and its folder can take a new file.

    Run before any work, so a bad ``-o`` fails fast and nothing is written."""
    if Path(out).suffix.lower() not in FIGURE_SUFFIXES:
        raise ConfigError(f"-o {out}: unknown figure type; use one of {', '.join(FIGURE_SUFFIXES)}")
    check_output_path(out, inputs, option="-o", example="figure.png")


@contextmanager
def new_figure(width: float = 7.0, height: float = 4.5) -> Iterator[Figure]:
    """A bare Figure of ``width`` x ``height`` inches, drawn (and later saved) in survmom's style."""
    import matplotlib

    with matplotlib.rc_context(STYLE):
        from matplotlib.figure import Figure

        yield Figure(figsize=(width, height), layout="constrained")


def write_figure(figure: Figure, out: Path) -> None:
    """Write ``figure`` to ``out`` atomically, in the format its suffix names (checked by
    :func:`check_figure_path`); readers see the old file or the complete new one."""
    import matplotlib

    out = Path(out)
    with matplotlib.rc_context(STYLE), atomic_write(out) as stream:
        # PNG metadata would carry the matplotlib version; a fixed date keeps PDFs reproducible.
        metadata = {"Software": None} if out.suffix.lower() == ".png" else (
            {"CreationDate": None} if out.suffix.lower() == ".pdf" else {"Date": None})
        figure.savefig(stream, format=out.suffix.lower()[1:], metadata=metadata)


def literal(text: str) -> str:
    """``text`` (a file, column or category name) shown as written: matplotlib would read a pair of ``$``
    in it as mathematics."""
    return str(text).replace("$", r"\$")


def time_axis(numbers: dict[str, Any]) -> str:
    """The unit of a figure's times: its numbers' ``time_unit``, else the same unit as their ``time_column``."""
    return literal(numbers.get("time_unit") or f"same unit as '{numbers['time_column']}'")
