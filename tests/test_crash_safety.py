"""A finished epoch is never lost: SIGKILL, Ctrl-C, divergence and concurrent writers leave a good checkpoint.

Decided behaviour, checked here:

* Checkpoints are written to a unique hidden temporary file ``.<name>.<random>.tmp`` next to the target,
  fsynced and renamed over it. A process killed mid-write leaves the previous checkpoint intact and may
  leave its temporary file behind: it is never read, the next save uses a new unique name and is not
  disturbed by it, and it can be deleted at any time (survmom does not delete other processes' temporary
  files, since a concurrent writer may still be using its own).
* ``survmom resume`` after a kill or a Ctrl-C reaches the same final checkpoint, tensor for tensor, as a run
  that was never stopped (mid-epoch resume included: progress holds the batch index).
* NaN/inf in the loss or the weights stops training with exit code 2 naming the epoch and step; the last good
  checkpoint on disk keeps its bytes (a NaN checkpoint is never written).
* Two runs writing the same ``--out`` at once both succeed and the file is one complete run (last writer wins).
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from rich.console import Console

from survmom.app.progress import QuietReporter
from survmom.errors import TrainingDiverged
from survmom.training import workflow
from survmom.training.checkpoint import read_checkpoint
from survmom.training.config import TrainConfig
from survmom.training.trainer import Trainer

from cli_runner import SignalAtStep, checkpoint_tensors, first_rows

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data"
# 300 rows (240 for training): 15 steps of 16 rows per epoch, 6 epochs, so 6 checkpoint writes per run.
ARGS = ["--id-col", "id", "--hidden", "16", "--epochs", "6", "--batch", "16", "--seed", "7", "--patience", "20"]


# One intra-op thread: CI has 2 cores and these tests run several training processes at once. Every run that is
# compared with another uses the same setting, so results stay bit-for-bit comparable.
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def command(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "survmom", *map(str, args)]


def survmom(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run(command(*args), capture_output=True, text=True, cwd=ROOT, env=ENV, timeout=300)


def start(*args: str | Path) -> subprocess.Popen:
    """Start ``survmom`` with stderr piped (line by line) and stdout discarded."""
    return subprocess.Popen(command(*args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT, env=ENV)


def assert_same_model(path: Path, reference: Path) -> None:
    """Every tensor of the two checkpoints is equal (bit for bit), and so are steps and per-epoch losses."""
    got, want = torch.load(path, weights_only=True), torch.load(reference, weights_only=True)
    got_tensors, want_tensors = dict(checkpoint_tensors(got)), dict(checkpoint_tensors(want))
    assert got_tensors.keys() == want_tensors.keys()
    for key, tensor in want_tensors.items():
        assert torch.equal(got_tensors[key], tensor), f"{path}: {key} differs from the uninterrupted run"
    assert got["progress"]["step"] == want["progress"]["step"]
    assert [h["loss"] for h in got["history"]] == [h["loss"] for h in want["history"]]


def silent() -> QuietReporter:
    """A reporter that prints nothing, for in-process runs."""
    return QuietReporter(Console(file=io.StringIO()))


def temporary_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """The first 300 rows of the sample cohort."""
    return first_rows(SAMPLE / "cohort.csv", tmp_path_factory.mktemp("data") / "cohort300.csv", 300)


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory) -> Path:
    """The uninterrupted run every stopped-and-resumed run must reproduce exactly."""
    out = tmp_path_factory.mktemp("reference") / "model.pt"
    result = survmom("train", data, *ARGS, "--out", out)
    assert result.returncode == 0, result.stderr
    return out


# --------------------------------------------------------------------------------------------- SIGKILL


@dataclass
class Trial:
    """One training run killed at a random moment, then resumed."""

    number: int
    epoch: int  # the epoch line after which it was killed (0: killed before the first one)
    moment: str
    existed: bool = False
    epoch_on_disk: int | None = None
    leftovers: tuple[str, ...] = ()
    resume: subprocess.CompletedProcess | None = None


def _kill_and_resume(number: int, data: Path, folder: Path) -> Trial:
    """Kill ``survmom train`` with SIGKILL at a seeded random moment, check the file, resume if it exists.

    Trial 0 dies before the first checkpoint; trial k > 0 dies shortly after the line of epoch ((k-1) % 6) + 1.
    That line is printed just before the epoch's checkpoint is written, so many kills land during a write.
    """
    rng = random.Random(20240601 + number)
    out = folder / "model.pt"
    process = start("train", data, *ARGS, "--out", out)
    epoch = 0 if number == 0 else (number - 1) % 6 + 1
    if epoch == 0:
        delay = rng.uniform(0.5, 1.5)
        time.sleep(delay)
        moment = f"{delay:.2f}s after start"
    else:
        for line in process.stderr:
            if line.startswith(f"epoch {epoch}/"):
                break
        delay = rng.uniform(0.0, 0.05)
        time.sleep(delay)
        moment = f"{delay:.3f}s after the epoch {epoch} line"
    process.kill()
    process.communicate()
    trial = Trial(number, epoch, moment, existed=out.exists(), leftovers=tuple(temporary_files(folder)))
    if trial.existed:
        trial.epoch_on_disk = torch.load(out, weights_only=True)["progress"]["epoch"]
        read_checkpoint(out)  # a complete survmom checkpoint, not just a loadable pickle
        if trial.epoch_on_disk < 6:  # a finished run has nothing left to resume
            trial.resume = survmom("resume", out)
    return trial


@pytest.mark.slow
def test_sigkill_at_random_moments_leaves_a_loadable_checkpoint_that_resumes_bit_identically(
        data, reference, tmp_path):
    folders = [tmp_path / f"trial{n}" for n in range(10)]
    for folder in folders:
        folder.mkdir()
    with ThreadPoolExecutor(max_workers=2) as pool:
        trials = list(pool.map(lambda n: _kill_and_resume(n, data, folders[n]), range(10)))
    for trial in trials:
        where = f"trial {trial.number} (killed {trial.moment})"
        if not trial.existed:
            # Killed before or while the first checkpoint was written: nothing to resume, nothing broken.
            assert trial.epoch <= 1, f"{where}: no checkpoint although epoch {trial.epoch - 1} had been saved"
            continue
        assert trial.epoch_on_disk >= trial.epoch - 1, where
        assert trial.resume is None or trial.resume.returncode == 0, f"{where}: {trial.resume.stderr}"
        assert_same_model(folders[trial.number] / "model.pt", reference)
        # A temporary file left by the killed write is still there, untouched, and broke nothing.
        assert set(trial.leftovers) <= set(temporary_files(folders[trial.number])), where


_DIE_DURING_SECOND_SAVE = """
import io, os, signal, sys
import torch
real_save, calls = torch.save, []
def save_half_then_die(obj, stream, *args, **kwargs):
    calls.append(1)
    if len(calls) < 2:
        return real_save(obj, stream, *args, **kwargs)
    buffer = io.BytesIO()
    real_save(obj, buffer, *args, **kwargs)
    stream.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    stream.flush()
    os.kill(os.getpid(), signal.SIGKILL)
torch.save = save_half_then_die
from survmom.app.cli import main
sys.argv = ["survmom", *sys.argv[1:]]
main()
"""


def test_a_kill_in_the_middle_of_a_checkpoint_write_keeps_the_previous_checkpoint(data, reference, tmp_path):
    out = tmp_path / "model.pt"
    died = subprocess.run([sys.executable, "-c", _DIE_DURING_SECOND_SAVE, "train", str(data), *ARGS,
                           "--out", str(out)], capture_output=True, text=True, cwd=ROOT, env=ENV, timeout=300)
    assert died.returncode == -signal.SIGKILL, died.stderr
    assert torch.load(out, weights_only=True)["progress"]["epoch"] == 1
    leftovers = temporary_files(tmp_path)
    assert len(leftovers) == 1 and leftovers[0].startswith(".model.pt.")  # the half-written epoch 2
    half_written = (tmp_path / leftovers[0]).read_bytes()
    resumed = survmom("resume", out)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_model(out, reference)
    assert (tmp_path / leftovers[0]).read_bytes() == half_written  # left alone, and it disturbed nothing
    assert temporary_files(tmp_path) == leftovers


# --------------------------------------------------------------------------------------------- SIGINT


def test_ctrl_c_saves_a_resumable_checkpoint_exits_130_and_resume_is_bit_identical(data, reference, tmp_path):
    out = tmp_path / "model.pt"
    process = start("train", data, *ARGS, "--out", out)
    seen = []
    for line in process.stderr:
        seen.append(line)
        if line.startswith("epoch 1/"):
            process.send_signal(signal.SIGINT)
            break
    stderr = "".join(seen) + process.communicate(timeout=300)[1]
    assert process.returncode == 130, stderr
    assert "interrupted after" in stderr and f"survmom resume {out}" in stderr and "Traceback" not in stderr
    progress = read_checkpoint(out).progress
    assert 1 <= progress["epoch"] < 6
    resumed = survmom("resume", out)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_model(out, reference)


def _config(out: Path, **changes) -> TrainConfig:
    values = {"id_col": "id", "hidden": [16], "epochs": 3, "batch": 16, "seed": 7, "device": "cpu",
              "quiet": True, "out": str(out)}
    return TrainConfig.from_dict({**values, **changes})


def test_an_interrupt_in_the_middle_of_an_epoch_resumes_exactly_at_that_batch(data, tmp_path):
    full, stopped = tmp_path / "full.pt", tmp_path / "stopped.pt"
    workflow.train_from_file(_config(full), data, lambda config: silent())
    result = workflow.train_from_file(_config(stopped), data, lambda config: SignalAtStep(15 + 6))
    assert result.interrupted
    progress = read_checkpoint(stopped).progress
    assert (progress["epoch"], progress["batch_index"], progress["step"]) == (1, 6, 21)
    workflow.resume_from_checkpoint(stopped, None, None, None, lambda config: silent(), {})
    assert_same_model(stopped, full)


# --------------------------------------------------------------------------------------------- divergence


def test_divergence_stops_with_epoch_and_step_and_keeps_the_last_good_checkpoint(data, reference, tmp_path):
    out = tmp_path / "model.pt"
    shutil.copyfile(reference, out)
    before = digest(out)
    diverged = survmom("train", data, *ARGS, "--lr", "1e30", "--out", out, "--quiet")
    assert diverged.returncode == 2, diverged.stderr
    line = diverged.stderr.strip()
    assert len(line.splitlines()) == 1 and "Traceback" not in line
    assert line.startswith("error: loss became") and "at epoch 1, step 2" in line and "--lr" in line
    assert digest(out) == before
    assert temporary_files(tmp_path) == []


def _poison_at(monkeypatch, epoch: int, batch: int, network: str) -> None:
    """Fill the first weight of ``network`` (online or target) with NaN just before (epoch, batch) runs."""
    original = Trainer.train_step

    def train_step(self: Trainer, rows: torch.Tensor) -> float:
        if (self.epoch, self.batch_index) == (epoch, batch):
            with torch.no_grad():
                next(getattr(self.momentum, network).parameters()).fill_(float("nan"))
        return original(self, rows)

    monkeypatch.setattr(Trainer, "train_step", train_step)


def _saves(monkeypatch) -> list[bytes]:
    """Record the bytes of the checkpoint file after every successful save."""
    saved: list[bytes] = []
    original = workflow.write_checkpoint

    def save(path, *parts):
        original(path, *parts)
        saved.append(Path(path).read_bytes())

    monkeypatch.setattr(workflow, "write_checkpoint", save)
    return saved


def test_a_nan_loss_in_epoch_2_names_epoch_and_step_and_keeps_the_epoch_1_checkpoint(data, tmp_path, monkeypatch):
    out = tmp_path / "model.pt"
    saved = _saves(monkeypatch)
    _poison_at(monkeypatch, epoch=1, batch=4, network="online")
    with pytest.raises(TrainingDiverged, match=r"loss became nan at epoch 2, step 5"):
        workflow.train_from_file(_config(out), data, lambda config: silent())
    assert len(saved) == 1 and out.read_bytes() == saved[0]
    assert read_checkpoint(out).progress["epoch"] == 1
    assert temporary_files(tmp_path) == []


def test_nan_weights_at_the_end_of_an_epoch_are_never_saved(data, tmp_path, monkeypatch):
    out = tmp_path / "model.pt"
    saved = _saves(monkeypatch)
    # The target network is not in the loss of its own step: only the end-of-epoch weight check can catch it.
    _poison_at(monkeypatch, epoch=1, batch=14, network="target")
    with pytest.raises(TrainingDiverged, match=r"weights became non-finite \(target\.[^)]*\) at epoch 2, step 15"):
        workflow.train_from_file(_config(out), data, lambda config: silent())
    assert len(saved) == 1 and out.read_bytes() == saved[0]


def test_nan_weights_when_interrupted_mid_epoch_are_never_saved(data, tmp_path, monkeypatch):
    out = tmp_path / "model.pt"
    saved = _saves(monkeypatch)
    _poison_at(monkeypatch, epoch=1, batch=3, network="target")
    with pytest.raises(TrainingDiverged, match=r"at epoch 2, step 4"):
        workflow.train_from_file(_config(out), data, lambda config: SignalAtStep(15 + 4))
    assert len(saved) == 1 and out.read_bytes() == saved[0]


# --------------------------------------------------------------------------------------------- concurrency


def test_two_runs_writing_the_same_out_at_once_leave_one_complete_run(data, reference, tmp_path):
    shared = tmp_path / "shared.pt"
    runs = {  # seed 7 is the reference run's seed; seed 8 alone gives the other complete run
        "seed 7": start("train", data, *ARGS, "--out", shared, "--quiet"),
        "seed 8": start("train", data, *ARGS, "--seed", "8", "--out", shared, "--quiet"),
        "seed 8 alone": start("train", data, *ARGS, "--seed", "8", "--out", tmp_path / "seed8.pt", "--quiet"),
    }
    for name, process in runs.items():
        stderr = process.communicate(timeout=300)[1]
        assert process.returncode == 0, f"{name}: {stderr}"
    read_checkpoint(shared)
    matches = []
    for complete in (reference, tmp_path / "seed8.pt"):
        try:
            assert_same_model(shared, complete)
            matches.append(complete)
        except AssertionError:
            pass
    assert len(matches) == 1, "the shared file is not exactly one of the two runs"
    assert temporary_files(tmp_path) == []


def test_a_stale_temporary_file_does_not_disturb_the_next_save(tmp_path):
    from survmom.training.checkpoint import save_state

    out = tmp_path / "model.pt"
    stale = tmp_path / ".model.pt.abc123.tmp"
    stale.write_bytes(b"half a checkpoint")
    state = {"format": "survmom-checkpoint", "momentum": {"w": torch.ones(3)}}
    save_state(state, out)
    assert torch.equal(torch.load(out, weights_only=True)["momentum"]["w"], torch.ones(3))
    assert stale.read_bytes() == b"half a checkpoint"
    shutil.copyfile(out, tmp_path / "copy.pt")
    save_state(state, out)
    assert out.read_bytes() == (tmp_path / "copy.pt").read_bytes()
    assert temporary_files(tmp_path) == [stale.name]
