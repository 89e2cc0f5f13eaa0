"""A checkpoint is data, never code: crafted pickles are refused by every command and their payload never runs.

Each payload below creates a marker file when unpickled. The control test proves it does so under an unsafe
``torch.load(weights_only=False)``; every survmom entry point must refuse it with a clear one-line error
(exit code 2) and leave the marker uncreated.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import operator
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from survmom.errors import CheckpointError
from survmom.training.checkpoint import FORMAT, FORMAT_VERSION, read_checkpoint

ROOT = Path(__file__).resolve().parents[1]
REFUSAL = "it contains pickled objects that are not plain data; refusing to run them"


class ShellTouch:
    """Unpickling runs ``touch <marker>`` in a shell."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch '{self.marker}'",)


class ExecTouch:
    """Unpickling runs Python source that creates the marker."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return builtins.exec, (f"open({str(self.marker)!r}, 'w').close()",)


class MethodTouch:
    """Unpickling calls ``Path(marker).touch()`` through operator.methodcaller (no shell, no exec)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return operator.methodcaller("touch"), (Path(self.marker),)


def looks_like_a_checkpoint(payload: object) -> dict:
    """A dict with every key a survmom checkpoint needs, one value replaced by ``payload``."""
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "config": {"loss": "cox", "note": payload},
            "momentum": {"online.0.weight": torch.zeros(2, 2)}, "preprocessing": {}, "progress": {"epoch": 1},
            "data": {"path": "train.csv"}}


def write_torch(obj: object, path: Path) -> Path:
    torch.save(obj, path)
    return path


def write_pickle(obj: object, path: Path) -> Path:
    with open(path, "wb") as stream:
        pickle.dump(obj, stream, protocol=2)
    return path


VARIANTS = {
    "torch.save of a shell payload": lambda marker, path: write_torch(ShellTouch(marker), path),
    "plain pickle of an exec payload": lambda marker, path: write_pickle(ExecTouch(marker), path),
    "payload inside a checkpoint-shaped dict": lambda marker, path: write_torch(
        looks_like_a_checkpoint(MethodTouch(marker)), path),
    "plain pickle of a checkpoint-shaped dict": lambda marker, path: write_pickle(
        looks_like_a_checkpoint(ShellTouch(marker)), path),
}


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_payload_is_real_when_loaded_unsafely(variant, tmp_path):
    marker = tmp_path / "pwned"
    path = VARIANTS[variant](marker, tmp_path / "evil.pt")
    with contextlib.suppress(RuntimeError):  # a bare pickle runs its payload, then fails torch's magic check
        torch.load(path, weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize("variant", VARIANTS)
def test_read_checkpoint_refuses_the_payload_without_running_it(variant, tmp_path):
    marker = tmp_path / "pwned"
    path = VARIANTS[variant](marker, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="refusing to run them") as error:
        read_checkpoint(path)
    assert str(error.value).startswith(f"{path}: not a readable survmom checkpoint")
    assert not marker.exists()


def test_every_torch_load_in_the_package_is_weights_only():
    calls = []
    for source in sorted((ROOT / "survmom").rglob("*.py")):
        text = source.read_text()
        assert "pickle.load" not in text and "weights_only=False" not in text, str(source)
        for node in ast.walk(ast.parse(text, filename=str(source))):
            if isinstance(node, ast.Call) and ast.unparse(node.func) == "torch.load":
                keywords = {k.arg: ast.unparse(k.value) for k in node.keywords}
                calls.append((source.name, node.lineno, keywords.get("weights_only")))
    assert calls, "no torch.load call found: did loading move?"
    assert all(weights_only == "True" for _, _, weights_only in calls), calls


COMMANDS = {
    "predict": lambda evil, folder: ["predict", evil, folder / "new.csv", "-o", folder / "p.csv"],
    "resume": lambda evil, folder: ["resume", evil, "--quiet"],
    "inspect": lambda evil, folder: ["inspect", evil, "--json"],
    "evaluate": lambda evil, folder: ["evaluate", evil, folder / "new.csv", "--json"],
}


@pytest.mark.parametrize(("command", "variant"), [
    ("predict", "payload inside a checkpoint-shaped dict"),
    ("resume", "torch.save of a shell payload"),
    ("inspect", "plain pickle of a checkpoint-shaped dict"),
    ("evaluate", "plain pickle of an exec payload"),
])
def test_the_cli_refuses_a_crafted_checkpoint_with_exit_2_and_runs_nothing(command, variant, tmp_path):
    marker = tmp_path / "pwned"
    evil = VARIANTS[variant](marker, tmp_path / "evil.pt")
    (tmp_path / "new.csv").write_text("age,sex\n50,F\n")
    before = evil.read_bytes()
    args = [*map(str, COMMANDS[command](evil, tmp_path))]
    result = subprocess.run([sys.executable, "-m", "survmom", *args], capture_output=True, text=True, cwd=ROOT,
                            timeout=300)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == f"error: {evil}: not a readable survmom checkpoint ({REFUSAL})"
    assert result.stdout == ""
    assert not marker.exists()
    assert evil.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.pt", "new.csv"]
