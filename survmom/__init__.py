"""survmom: deep survival models trained with a Momentum (MoCo-style) target network and memory bank.

The names below are imported on first use (PEP 562), so ``import survmom`` and ``survmom --help`` load no
torch or pandas: ``from survmom import SurvivalModel`` (the Python API of the CLI's engine),
``SurvivalEstimator`` (the same behind scikit-learn's estimator protocol), or the core
library: ``from survmom import Momentum, cox_loss, weibull_loss``.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    "SurvivalModel": "survmom.app.survival_model",
    "SurvmomWarning": "survmom.app.survival_model",
    "SurvivalEstimator": "survmom.app.estimator",
    "SurvmomError": "survmom.errors",
    "Momentum": "survmom.core.momentum",
    "MemoryBank": "survmom.core.bank",
    "EMA": "survmom.core.ema",
    "build_mlp": "survmom.core.model",
    "build_backbone": "survmom.core.model",
    "cox_loss": "survmom.core.losses",
    "weibull_loss": "survmom.core.losses",
    "breslow_baseline": "survmom.core.losses",
    "cox_survival": "survmom.core.losses",
    "cox_median": "survmom.core.losses",
    "weibull_survival": "survmom.core.losses",
    "weibull_median": "survmom.core.losses",
    "concordance_index": "survmom.core.metrics",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'survmom' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
