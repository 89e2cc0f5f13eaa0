"""atomic_write: all-or-nothing replacement with normal permissions."""

import os
import stat

import pytest

from survmom.atomic import atomic_write, check_output_path, restored_on_error
from survmom.errors import ConfigError


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


def _rewrite(path, text):
    with atomic_write(path) as stream:
        stream.write(text)


@pytest.mark.parametrize("writes", [0, 1, 3])
def test_a_failing_block_puts_the_old_file_back_and_leaves_nothing_else(tmp_path, writes):
    path = tmp_path / "model.pt"
    path.write_bytes(b"good")
    with pytest.raises(RuntimeError), restored_on_error(path) as had_file:
        assert had_file
        for i in range(writes):
            _rewrite(path, f"epoch {i}".encode())
        raise RuntimeError("diverged")
    assert path.read_bytes() == b"good"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]


def test_a_block_that_succeeds_keeps_its_writes_and_drops_the_old_file(tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(b"good")
    with restored_on_error(path):
        _rewrite(path, b"new")
    assert path.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]


def test_without_an_old_file_the_writes_of_a_failing_block_stay(tmp_path):
    path = tmp_path / "model.pt"
    with pytest.raises(RuntimeError), restored_on_error(path) as had_file:
        assert not had_file
        _rewrite(path, b"epoch 1")
        raise RuntimeError("diverged")
    assert path.read_bytes() == b"epoch 1"


def test_an_output_path_is_checked_without_leaving_anything(tmp_path):
    check_output_path(tmp_path / "model.pt", [], option="--out", example="model.pt")
    assert list(tmp_path.iterdir()) == []
    for out, inputs, message in ((tmp_path / "missing" / "m.pt", [], "folder .* does not exist"),
                                 (tmp_path, [], "is a folder; give a file name such as .*model.pt"),
                                 (tmp_path / "d.csv", [tmp_path / "d.csv"], "is the input file")):
        with pytest.raises(ConfigError, match=f"^--out {out}.*{message}"):
            check_output_path(out, inputs, option="--out", example="model.pt")


def test_an_output_path_that_is_not_a_regular_file_is_refused_and_kept(tmp_path):
    """A rename onto a FIFO or a device (``--out /dev/full`` run as root) would replace it with a regular file."""
    fifo = tmp_path / "pipe.pt"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match=f"^--out {fifo} is not a regular file .*give a file name"):
        check_output_path(fifo, [], option="--out", example="model.pt")
    with pytest.raises(ConfigError, match=f"^{fifo} is not a regular file"), atomic_write(fifo) as stream:
        stream.write(b"new")
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert [p.name for p in tmp_path.iterdir()] == ["pipe.pt"]
