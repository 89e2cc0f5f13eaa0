"""The trainer's epoch order: seeded batches, each in order of descending time for Cox."""

from pathlib import Path

import pytest
import torch

from survmom.training.config import TrainConfig
from survmom.training.trainer import Tensors, Trainer


def _trainer(loss: str, n: int = 1000, batch: int = 64, batchnorm: bool = False) -> Trainer:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, generator=gen)
    event = torch.rand(n, generator=gen) < 0.6
    time = torch.randint(1, 40, (n,), generator=gen).double()  # heavy ties
    config = TrainConfig(loss=loss, batch=batch, epochs=2, hidden=[4], threads=1, linear_skip=False,
                         batchnorm=batchnorm, seed=7)
    return Trainer(config, 3, Tensors(x, event, time), None, torch.device("cpu"))


def _permutation(trainer: Trainer, epoch: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(trainer.config.seed * 1_000_003 + epoch)
    return torch.randperm(len(trainer.train_data.time), generator=generator)


@pytest.mark.parametrize("batchnorm", [False, True])
def test_cox_batches_hold_the_permutations_rows_by_descending_time_ties_in_permutation_order(batchnorm):
    # 961 rows in batches of 64: with BatchNorm the last 1-row batch joins the one before (bounds differ).
    trainer = _trainer("cox", n=961, batchnorm=batchnorm)
    time = trainer.train_data.time
    for epoch in (0, 3):
        order, raw = trainer.epoch_permutation(epoch), _permutation(trainer, epoch)
        for start, stop in trainer.batch_bounds():
            rows = raw[start:stop]
            expected = rows[torch.sort(-time[rows], stable=True).indices]
            assert torch.equal(order[start:stop], expected)
    assert trainer.batch_bounds()[-1][1] - trainer.batch_bounds()[-1][0] == (65 if batchnorm else 1)


def test_weibull_batches_keep_the_permutation_order():
    trainer = _trainer("weibull")
    assert torch.equal(trainer.epoch_permutation(2), _permutation(trainer, 2))


def test_a_single_row_and_a_single_time_are_batched():
    trainer = _trainer("cox", n=1)
    assert trainer.epoch_permutation(0).tolist() == [0]
    trainer = _trainer("cox", n=100)
    trainer.train_data.time.fill_(5.0)
    trainer._batch_sort_key = None  # ranks were computed from the old times
    assert torch.equal(trainer.epoch_permutation(1), _permutation(trainer, 1))  # all tied: permutation order


def test_large_inference_runs_on_two_threads_only_with_the_default_threads_option(monkeypatch) -> None:
    """Validation and the Cox baseline's forward pass use 2 threads for >= 32,768 rows when --threads was not
    given; a given --threads, small inputs and a 1-core machine keep the thread count; it is restored after."""
    import torch

    from survmom.training import process as train

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        monkeypatch.setattr(train, "usable_cores", lambda: 2)
        cpu = torch.device("cpu")
        seen = {}
        for name, option, rows in [("default", None, 40_000), ("given", 1, 40_000), ("small", None, 1_000)]:
            with train.inference_threads(option, rows, cpu):
                seen[name] = torch.get_num_threads()
            assert torch.get_num_threads() == 1
        monkeypatch.setattr(train, "usable_cores", lambda: 1)
        with train.inference_threads(None, 40_000, cpu):
            seen["one core"] = torch.get_num_threads()
        assert seen == {"default": 2, "given": 1, "small": 1, "one core": 1}
    finally:
        torch.set_num_threads(before)


def test_threads_above_the_usable_cores_are_capped_to_them_with_one_warning(monkeypatch, tmp_path) -> None:
    """--threads 999 on a machine where the process may use 2 cores trains on 2 threads (more only wait for each
    other: 999 trained the sample cohort ~10x slower than 1 on a 2-core machine) and says so once; the saved
    config keeps the option as given, so that a resume on a larger machine uses what was asked for."""
    from survmom.training import workflow
    from survmom.training.checkpoint import read_checkpoint

    from cli_runner import run_survmom

    calls: list[int] = []
    real = torch.set_num_threads
    monkeypatch.setattr(torch, "set_num_threads", lambda n: (calls.append(n), real(n))[1])
    monkeypatch.setattr(workflow, "usable_cores", lambda: 2)
    sample = Path(__file__).resolve().parents[1] / "sample_data" / "cohort.csv"
    args = ["train", sample, "--id-col", "id", "--epochs", "1", "--hidden", "8", "--out", tmp_path / "m.pt"]
    result = run_survmom(*args, "--threads", "999", check=True)
    assert 999 not in calls and 2 in calls
    warned = [line for line in result.stderr.splitlines() if "--threads" in line]
    assert warned == ["warning: --threads 999 is more than the 2 CPU cores this process may use: training runs on 2 "
                      "threads (more threads than cores only wait for each other)"]
    assert read_checkpoint(tmp_path / "m.pt").config.threads == 999
    calls.clear()
    quiet = run_survmom(*args, "--threads", "1", check=True)
    assert "--threads" not in quiet.stderr and calls[0] == 1
