"""Distributed training (torch.distributed, gloo on CPU) with two processes started by torchrun: identical
weights and banks on every rank, the preprocessing a single process fits, resume exactness, a rank killed and
restarted by torchrun, and a rank's error stopping every rank with one message.

Every test here starts 2-process jobs (a few seconds each), so the module is marked slow.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from survmom.data.read import read_table, read_table_share
from survmom.data.split import stratified_split
from survmom.training.checkpoint import load_state
from survmom.training.config import TrainConfig
from survmom.training.workflow import build_trainer

from cli_runner import ENV, ROOT, checkpoint_tensors
from cli_runner import run_survmom as _run_survmom


def run_survmom(*args, **kwargs):
    """Every command here in its own process: torchrun's workers, and resumes that start them again."""
    return _run_survmom(*args, isolated=True, **kwargs)


pytestmark = pytest.mark.slow

WORKER = ROOT / "tests" / "distributed_worker.py"
SMALL = {"epochs": 2, "batch": 32, "bank_size": 256, "hidden": [16], "device": "cpu", "seed": 3}


def cohort(rows: int, seed: int = 0) -> pd.DataFrame:
    """Numeric and text covariates with a Cox outcome (whole-day times: ties), some missing values."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, 4))
    frame = pd.DataFrame(x, columns=["a", "b", "c", "d"])
    frame["group"] = rng.choice(np.array(["g1", "g2", "g3"]), rows)
    frame.loc[rng.random(rows) < 0.05, "c"] = np.nan
    eta = 0.7 * x[:, 0] - 0.5 * x[:, 1] + 0.4 * (frame["group"] == "g2").to_numpy()
    event_time = 100 * rng.exponential(1, rows) * np.exp(-eta)
    censor = rng.exponential(150, rows)
    frame["time"] = np.ceil(np.minimum(event_time, censor))
    frame["event"] = (event_time <= censor).astype(int)
    return frame


def torchrun(*args: str | Path, restarts: int = 0) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
            "--max-restarts", str(restarts), *map(str, args)]


def run(command: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=ENV, timeout=timeout)


def tensors(path: Path) -> dict[str, torch.Tensor]:
    return dict(checkpoint_tensors(torch.load(path, weights_only=True)))


def assert_same_training(a: Path, b: Path) -> None:
    """Two checkpoints hold the same model, bank, optimizer and history (timings and the launch aside)."""
    left, right = load_state(a), load_state(b)
    for key in ("momentum", "optimizer", "best", "prediction", "train_outcomes"):
        ta, tb = dict(checkpoint_tensors(left[key])), dict(checkpoint_tensors(right[key]))
        assert ta.keys() == tb.keys()
        for name in ta:
            assert torch.equal(ta[name], tb[name]), f"{key}{name} differs"
    assert [r["val_cindex"] for r in left["history"]] == [r["val_cindex"] for r in right["history"]]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("distributed")
    path = folder / "cohort.parquet"
    cohort(1500).to_parquet(path, index=False)
    return path


def test_read_table_share_deals_rows_and_keeps_types(tmp_path: Path) -> None:
    frame = cohort(200_000, seed=1)  # more rows than one block, so the shares come from several blocks
    frame["group"] = frame["group"].where(frame.index < 150_000, "late")  # a category only in later blocks
    path = tmp_path / "c.parquet"
    frame.to_parquet(path, index=False)
    whole = read_table(path)
    shares = [read_table_share(path, None, share=k, shares=3) for k in range(3)]
    assert [len(s) for s in shares] == [66_667, 66_667, 66_666]
    for k, share in enumerate(shares):
        assert (share.index.to_numpy() % 3 == k).all()
        pd.testing.assert_frame_equal(share.drop(columns="group"), whole.iloc[k::3].drop(columns="group"))
        assert isinstance(share["group"].dtype, pd.CategoricalDtype)
        assert share["group"].astype(str).tolist() == whole["group"].iloc[k::3].astype(str).tolist()


@pytest.mark.parametrize("suffix", [".csv", ".feather"])
def test_read_table_share_of_text_and_arrow_files(tmp_path: Path, suffix: str) -> None:
    frame = cohort(1000, seed=2)
    path = tmp_path / f"c{suffix}"
    frame.to_csv(path, index=False) if suffix == ".csv" else frame.to_feather(path)
    whole = read_table(path)
    for k in range(2):
        share = read_table_share(path, ["a", "group", "time"], share=k, shares=2)
        assert share.index.tolist() == list(range(k, 1000, 2))
        assert share["a"].equals(whole["a"].iloc[k::2]) and share["time"].equals(whole["time"].iloc[k::2])
        assert share["group"].astype(str).tolist() == whole["group"].iloc[k::2].astype(str).tolist()


def test_ranks_hold_identical_weights_banks_and_the_single_process_preprocessing(data: Path, tmp_path: Path) -> None:
    result = run(torchrun(WORKER, data, tmp_path, json.dumps(SMALL)))
    assert result.returncode == 0, result.stderr
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1)]
    for name in ("momentum", "optimizer"):
        first, second = dict(checkpoint_tensors(ranks[0][name])), dict(checkpoint_tensors(ranks[1][name]))
        assert first.keys() == second.keys()
        for key in first:
            assert torch.equal(first[key], second[key]), f"{name}{key} differs between ranks"
    bank = {key: value for key, value in ranks[0]["momentum"].items() if key.startswith("bank.")}
    assert "bank.times" in bank and bank["bank._extra_state"] == ranks[1]["momentum"]["bank._extra_state"]
    assert bank["bank._extra_state"]["count"] == SMALL["bank_size"]  # full, from both ranks' rows
    assert [r["val_cindex"] for r in ranks[0]["history"]] == [r["val_cindex"] for r in ranks[1]["history"]]
    # The preprocessing, split and linear start are those a single process fits on the same file.
    single, prepared = build_trainer(TrainConfig.from_dict({**SMALL, "out": str(tmp_path / "x.pt")}), data)
    for rank in ranks:
        assert rank["preprocessing"] == prepared.preprocessor.to_state()
        assert rank["warnings"] == prepared.warnings
        assert torch.equal(rank["all_train_time"], torch.from_numpy(prepared.train.time))
        assert torch.equal(rank["all_train_event"], torch.from_numpy(prepared.train.event))
        start = {k: v for k, v in single.momentum.online.state_dict().items() if k.startswith("linear.")}
        assert rank["start_linear"].keys() == start.keys()
        for key in start:
            assert torch.equal(rank["start_linear"][key], start[key])
    # Each rank trained on about half of the training rows; an epoch has the steps of the larger half.
    sizes = [rank["train_rows"] for rank in ranks]
    assert sum(sizes) == len(prepared.train) and abs(sizes[0] - sizes[1]) <= 0.1 * len(prepared.train)
    assert ranks[0]["steps"] == SMALL["epochs"] * -(-max(sizes) // SMALL["batch"])


def test_ranks_agree_with_a_study_design(tmp_path: Path) -> None:
    """Delayed entry, weights and strata travel through the shared bank: ranks stay identical."""
    frame = cohort(1200, seed=5)
    rng = np.random.default_rng(5)
    frame["entry"] = np.floor(frame["time"] * rng.uniform(0, 0.5, len(frame)))
    frame["w"] = rng.uniform(0.5, 2.0, len(frame))
    frame["site"] = rng.choice(np.array(["s1", "s2"]), len(frame))
    path = tmp_path / "design.parquet"
    frame.to_parquet(path, index=False)
    options = {**SMALL, "entry_col": "entry", "weight_col": "w", "strata": ["site"]}
    result = run(torchrun(WORKER, path, tmp_path, json.dumps(options)))
    assert result.returncode == 0, result.stderr
    first, second = (dict(checkpoint_tensors(torch.load(tmp_path / f"rank{r}.pt")["momentum"])) for r in (0, 1))
    assert {key for key in first if key.startswith("/bank.")} >= {"/bank.entries", "/bank.weights", "/bank.strata"}
    for key in first:
        assert torch.equal(first[key], second[key]), key


def test_weibull_with_entry_and_weights_agrees_across_ranks_and_starts_as_one_process(tmp_path: Path) -> None:
    frame = cohort(1200, seed=6)
    rng = np.random.default_rng(6)
    frame["entry"] = np.floor(frame["time"] * rng.uniform(0, 0.5, len(frame)))
    frame["w"] = rng.uniform(0.5, 2.0, len(frame))
    path = tmp_path / "weibull.parquet"
    frame.to_parquet(path, index=False)
    options = {**SMALL, "loss": "weibull", "entry_col": "entry", "weight_col": "w"}
    result = run(torchrun(WORKER, path, tmp_path, json.dumps(options)))
    assert result.returncode == 0, result.stderr
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1)]
    first, second = (dict(checkpoint_tensors(rank["momentum"])) for rank in ranks)
    for key in first:
        assert torch.equal(first[key], second[key]), key
    # The constant Weibull fit and the linear start see every training row, as in one process.
    single, _ = build_trainer(TrainConfig.from_dict({**options, "out": str(tmp_path / "x.pt")}), path)
    start = {k: v for k, v in single.momentum.online.state_dict().items() if k.startswith("linear.")}
    for key in start:
        assert torch.equal(ranks[0]["start_linear"][key], start[key]), key


def test_resume_with_the_same_processes_is_exact(data: Path, tmp_path: Path) -> None:
    flags = ["--epochs", "3", "--batch", "32", "--bank-size", "256", "--hidden", "16", "--device", "cpu",
             "--patience", "100", "--quiet"]
    whole = run_survmom("train", data, *flags, "--nproc", "2", "--out", tmp_path / "whole.pt")
    assert whole.returncode == 0, whole.stderr
    stopped = run_survmom("train", data, *flags[:1], "2", *flags[2:], "--nproc", "2", "--out", tmp_path / "part.pt")
    assert stopped.returncode == 0, stopped.stderr
    resumed = run_survmom("resume", tmp_path / "part.pt", "--epochs", "3", "--quiet")  # 2 processes, as saved
    assert resumed.returncode == 0, resumed.stderr
    assert_same_training(tmp_path / "whole.pt", tmp_path / "part.pt")
    assert load_state(tmp_path / "part.pt")["progress"]["world_size"] == 2
    # With one process it continues, saying that it is no longer bit-identical.
    other = run_survmom("resume", tmp_path / "part.pt", "--epochs", "4", "--nproc", "1", "--out", tmp_path / "one.pt")
    assert other.returncode == 0, other.stderr
    assert "not bit-identically" in other.stderr
    assert load_state(tmp_path / "one.pt")["progress"]["world_size"] == 1


def _workers(parent: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(parent)], capture_output=True, text=True).stdout.split()
    return [int(pid) for pid in found]


def test_a_killed_rank_restarts_from_this_runs_checkpoint(data: Path, tmp_path: Path) -> None:
    flags = ["train", data, "--epochs", "4", "--batch", "16", "--bank-size", "256", "--hidden", "16",
             "--device", "cpu", "--patience", "100", "--quiet"]
    reference = run(torchrun("-m", "survmom", *flags, "--out", tmp_path / "reference.pt"))
    assert reference.returncode == 0, reference.stderr
    out = tmp_path / "model.pt"
    old = run_survmom("train", data, "--epochs", "1", "--hidden", "8", "--quiet", "--out", out)  # an older file
    assert old.returncode == 0, old.stderr
    before = out.stat().st_mtime_ns
    job = subprocess.Popen(torchrun("-m", "survmom", *flags, "--out", out, restarts=1), cwd=ROOT, env=ENV,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 90
    while out.stat().st_mtime_ns == before and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # until this run's first checkpoint (end of epoch 1) replaces the older file
    workers = _workers(job.pid)
    assert job.poll() is None and len(workers) == 2, "the job ended before a rank could be killed"
    os.kill(workers[1], signal.SIGKILL)  # mid-epoch 2
    _, stderr = job.communicate(timeout=120)
    assert job.returncode == 0, stderr
    assert load_state(out)["progress"]["epoch"] == 4
    assert_same_training(tmp_path / "reference.pt", out)


def test_a_rank_error_stops_every_rank_with_one_message(data: Path, tmp_path: Path) -> None:
    frame = pd.read_parquet(data)
    _, val = stratified_split(frame["event"].to_numpy(), 0.2, SMALL["seed"])
    bad = int(val[val % 2 == 1][0])  # a validation row of rank 1: only rank 1 transforms it
    frame.loc[bad, "a"] = 1e300  # beyond float32 once standardised with the training rows' mean and std
    path = tmp_path / "bad.parquet"
    frame.to_parquet(path, index=False)
    args = ["train", path, "--seed", str(SMALL["seed"]), "--epochs", "1", "--device", "cpu", "--quiet"]
    single = run_survmom(*args, "--out", tmp_path / "single.pt")
    assert single.returncode == 2
    both = run_survmom(*args, "--nproc", "2", "--out", tmp_path / "model.pt")
    assert both.returncode == 2
    errors = [line for line in both.stderr.splitlines() if line.startswith("error:")]
    assert errors == [line for line in single.stderr.splitlines() if line.startswith("error:")]
    assert f"row {bad + 2}" in errors[0] or str(bad + 2) in errors[0]
    assert "Traceback" not in both.stderr
    assert not (tmp_path / "model.pt").exists()
