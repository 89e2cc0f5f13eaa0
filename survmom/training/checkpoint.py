"""One checkpoint file: a plain dict of tensors and Python data, saved atomically, loaded weights-only.

Saving writes a temporary file in the destination folder (unique per process), flushes and fsyncs it,
then renames it over the destination, so readers see either the old or the new complete file, never a
partial one; concurrent writers to one path: the last rename wins. A writer killed mid-write may leave its
``.<name>.<random>.tmp`` behind: it is never read, later saves pick new names, and it can be deleted (survmom
leaves it, as it may belong to a concurrent writer that is still running). Loading always uses
``torch.load(weights_only=True)``: a crafted pickle cannot run code, it is refused.
"""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import torch

from survmom.atomic import atomic_write
from survmom.errors import CheckpointError

FORMAT = "survmom-checkpoint"
FORMAT_VERSION = 1
REQUIRED_KEYS = ("format", "format_version", "config", "momentum", "preprocessing", "progress")


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """Write ``state`` to ``path`` atomically (tmp file in the same folder, fsync, rename)."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise CheckpointError(f"{path}: folder {folder} does not exist")
    with atomic_write(path) as stream:
        torch.save(state, stream)


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and validate a survmom checkpoint; any problem is a one-line :class:`CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:
        raise CheckpointError(f"{path}: not a readable survmom checkpoint ({_reason(error)})") from error
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a survmom checkpoint (no '{FORMAT}' marker)")
    version = state.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {version!r} is newer than this survmom understands "
            f"({FORMAT_VERSION}); upgrade survmom"
        )
    missing = [key for key in REQUIRED_KEYS if key not in state]
    if missing:
        raise CheckpointError(f"{path}: checkpoint is incomplete (missing {', '.join(missing)})")
    return state


def _reason(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    if isinstance(error, torch.serialization.pickle.UnpicklingError) or "weights_only" in str(error):
        if "Unsupported operand" in str(error):  # not pickle data at all, e.g. a CSV file
            return "not a PyTorch file"
        return "it contains pickled objects that are not plain data; refusing to run them"
    if isinstance(error, EOFError) or (isinstance(error, OSError) and error.errno == errno.EINVAL) or (
            "PytorchStreamReader failed" in str(error)):
        return "the file is truncated or corrupted"
    first = text[0] if text else type(error).__name__
    return first[:200]
