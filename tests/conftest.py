"""Shared fixtures."""

from __future__ import annotations

import pytest

from survmom.core import losses


@pytest.fixture(params=["numpy", "tensor"])
def cpu_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with the per-step work on NumPy views (the CPU default), then on tensors (other devices' path).

    See ``survmom.core.losses._NUMPY_ON_CPU``: merge_order, merge_runs, the bank's push and cox_loss_sorted.
    """
    monkeypatch.setattr(losses, "_NUMPY_ON_CPU", request.param == "numpy")
    return request.param
