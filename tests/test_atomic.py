"""atomic_write: all-or-nothing replacement with normal permissions."""

import os
import stat

import pytest

from survmom.atomic import atomic_write


def test_replaces_content_and_uses_umask_permissions_not_0600(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    previous = os.umask(0o022)
    try:
        with atomic_write(target) as stream:
            stream.write(b"new content")
    finally:
        os.umask(previous)
    assert target.read_bytes() == b"new content"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_a_failing_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_write(target) as stream:
        stream.write(b"partial")
        raise RuntimeError("disk full")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]
