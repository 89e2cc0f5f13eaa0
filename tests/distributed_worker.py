"""One rank of a distributed training run, started under torchrun by tests/test_distributed.py (not collected).

    python -m torch.distributed.run --standalone --nproc-per-node 2 tests/distributed_worker.py DATA OUT OPTIONS

OPTIONS is a JSON object of train options. Each rank trains (no checkpoint) and saves to OUT/rank<r>.pt what
must be the same on every rank (weights, optimizer, bank, preprocessing, outcomes of all training rows) and
what is its own (its training rows).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from rich.console import Console

from survmom.app.progress import SilentReporter
from survmom.training.config import TrainConfig
from survmom.training.distributed import from_environment
from survmom.training.workflow import build_trainer


def main(data: str, out: str, options: str) -> None:
    config = TrainConfig.from_dict({**json.loads(options), "out": str(Path(out) / "model.pt")})
    ranks = from_environment(config.device)
    assert ranks is not None, "run under torchrun"
    trainer, prepared = build_trainer(config, Path(data), ranks)
    start_linear = {k: v.clone() for k, v in trainer.momentum.online.state_dict().items() if k.startswith("linear.")}
    trainer.fit(config.epochs, SilentReporter(Console(stderr=True)), lambda state: None)
    torch.save({
        "momentum": trainer.momentum.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "preprocessing": prepared.preprocessor.to_state(),
        "warnings": prepared.warnings,
        "all_train_time": torch.from_numpy(prepared.all_train.time),
        "all_train_event": torch.from_numpy(prepared.all_train.event),
        "train_rows": len(prepared.train),
        "start_linear": start_linear,
        "steps": trainer.step,
        "history": trainer.history,
    }, Path(out) / f"rank{ranks.rank}.pt")


if __name__ == "__main__":
    main(*sys.argv[1:4])
