"""Atomic file replacement: write a temporary file in the destination folder, fsync it, rename it.

Readers see either the old complete file or the new complete one, never a partial write; concurrent
writers to one path each use their own temporary name, and the last rename wins. A write that fails or is
interrupted removes its temporary file (a SIGKILL can leave one behind: it is never read).
Also: checking an output path before long work, and putting a file back when the work that replaces it fails.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from survmom.errors import ConfigError


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_write(path: Path) -> Iterator[BinaryIO]:
    """Yield a binary stream whose content replaces ``path`` atomically when the block ends without error.

    The new file gets the usual permissions (0666 minus the umask), not mkstemp's private 0600. ConfigError if
    ``path`` is a device, a pipe or a folder, which the rename would replace.
    """
    path = Path(path)
    if path.exists() and not path.is_file():  # the rename would replace a device, pipe or folder
        raise ConfigError(f"{path} is not a regular file; give a file name")
    folder = path.parent if str(path.parent) else Path(".")
    handle, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(handle, "wb") as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(tmp_name, 0o666 & ~_current_umask())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    _fsync_folder(folder)


def _fsync_folder(folder: Path) -> None:
    """Make the rename durable (best effort: not every platform can fsync a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def restored_on_error(path: Path) -> Iterator[bool]:
    """Keep the file at ``path`` until the block ends; if the block raises, put it back as it was.

    Yields whether there was a file. The old file is kept under a hidden name in the same folder (a hard link,
    or a copy where links are not supported) and removed once the block ends without error. Where there was
    no file, whatever the block wrote to ``path`` stays.
    """
    path = Path(path)
    if not path.is_file():
        yield False
        return
    kept = path.with_name(f".{path.name}.{os.getpid()}.previous")
    kept.unlink(missing_ok=True)
    try:
        os.link(path, kept)
    except OSError:
        shutil.copy2(path, kept)
    try:
        yield True
    except BaseException:
        if path.is_file() and os.path.samefile(kept, path):  # never replaced (and a rename of a link is a no-op)
            kept.unlink()
        else:
            os.replace(kept, path)
            _fsync_folder(path.parent if str(path.parent) else Path("."))
        raise
    kept.unlink(missing_ok=True)


def check_output_path(out: Path, inputs: list[Path], *, option: str, example: str) -> None:
    """ConfigError (naming ``option``) unless ``out`` can take a new file: its folder exists and accepts new files
    (a temporary file is created and removed), it is not a folder, a device or a pipe, and it is none of the
    ``inputs``.

    Run before long work whose result goes to ``out``. ``example``: a file name to suggest when ``out`` is a folder.
    """
    out = Path(out)
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():
        raise ConfigError(f"{option} {out}: folder {folder} does not exist")
    if out.is_dir():
        raise ConfigError(f"{option} {out} is a folder; give a file name such as {out / example}")
    if out.exists() and not out.is_file():  # a rename would replace the device or pipe with a regular file
        raise ConfigError(f"{option} {out} is not a regular file (a device, pipe or socket); give a file name "
                          f"such as {example}")
    for path in inputs:
        if out.resolve() == Path(path).resolve():
            raise ConfigError(f"{option} {out} is the input file {path}; refusing to overwrite it")
    try:
        _probe_folder(folder, out.name)
    except OSError as error:
        raise ConfigError(f"{option} {out}: cannot write in its folder ({error.strerror or error})") from None


def _probe_folder(folder: Path, name: str) -> None:
    """Create and remove a temporary file in ``folder``; OSError if the folder does not accept new files."""
    with tempfile.TemporaryFile(prefix=f".{name}.", suffix=".probe", dir=folder):
        pass
