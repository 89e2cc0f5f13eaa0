"""The named choices of survmom's options, in one place: the config validates against them, the CLI's help
lists them, and the core checks its arguments against them. Plain Python (no torch), so every layer may
import it."""

from __future__ import annotations

LOSSES = ("cox", "weibull")
TIES = ("efron", "breslow")
DEVICES = ("auto", "cpu", "cuda")
RATE_SCHEDULES = ("constant", "cosine")
# Hidden activations: option value -> name of the torch.nn module class.
ACTIVATIONS = {"relu": "ReLU", "selu": "SELU", "gelu": "GELU", "silu": "SiLU", "tanh": "Tanh", "elu": "ELU"}
