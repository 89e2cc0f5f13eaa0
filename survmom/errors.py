"""Project error types.

Every error a user can act on is a :class:`SurvmomError`; the CLI prints its message as one line on stderr
and exits with code 2. Library callers can catch it like any other exception.
"""

from __future__ import annotations


class SurvmomError(Exception):
    """A problem the user can fix (bad input, bad option, bad file); message is one actionable line."""


class DataError(SurvmomError):
    """A data file or column cannot be used: message names the file, the column and sample values."""


class ConfigError(SurvmomError):
    """An option or configuration value is invalid."""


class CheckpointError(SurvmomError):
    """A checkpoint file is missing, unreadable, untrusted, or from an incompatible version."""


class StateError(SurvmomError):
    """A state dict does not match the object it is loaded into (keys, shapes or types)."""


class TrainingDiverged(SurvmomError):
    """Loss or weights became NaN/inf during training."""
