"""The named choices of survmom's options, in one place: the config validates against them, the CLI's help
lists them, and the core checks its arguments against them. Plain Python (no torch), so every layer may
import it."""

from __future__ import annotations

import codecs

LOSSES = ("cox", "weibull")
TIES = ("efron", "breslow")
DEVICES = ("auto", "cpu", "cuda")
RATE_SCHEDULES = ("constant", "cosine")
# Hidden activations: option value -> name of the torch.nn module class.
ACTIVATIONS = {"relu": "ReLU", "selu": "SELU", "gelu": "GELU", "silu": "SiLU", "tanh": "Tanh", "elu": "ELU"}
# Units of times computed from dates (--time-unit): days per unit. A month is 365.25 / 12 days, a year 365.25
# days (the Julian year, lifelines' and R's lubridate's convention for durations in years).
TIME_UNITS = {"days": 1.0, "weeks": 7.0, "months": 30.4375, "years": 365.25}


def text_codec(name: str) -> str | None:
    """Python's name of the text codec ``name`` (``"latin-1"`` -> ``"iso8859-1"``) for ``--encoding``; None for a
    name Python does not know or a codec that is not a text encoding (``base64``)."""
    try:
        info = codecs.lookup(name)
    except (LookupError, TypeError, ValueError):
        return None
    return info.name if getattr(info, "_is_text_encoding", True) else None


def unknown_codec(name: str) -> str:
    """The message for an ``--encoding`` that :func:`text_codec` does not know."""
    return (f"--encoding {name!r} is not a text encoding Python knows (e.g. utf-8, cp1252 for Excel on Windows, "
            "latin-1, utf-16, shift_jis)")
