"""Assertions the test modules share (imported by them, not collected)."""

from __future__ import annotations

from collections.abc import Callable

import pytest


def raises_one_line(exc_type: type[Exception], func: Callable[[], object], *parts: str) -> str:
    """Call ``func``; it must raise ``exc_type`` with a one-line message containing every part. Returns it."""
    with pytest.raises(exc_type) as info:
        func()
    message = str(info.value)
    assert "\n" not in message, message
    for part in parts:
        assert part in message, f"{part!r} not in {message!r}"
    return message
