"""Test-wide settings: Hypothesis draws the same examples on every run, so CI is reproducible.

Set HYPOTHESIS_PROFILE=explore to draw fresh random examples locally.
"""

import os

from hypothesis import settings

settings.register_profile("deterministic", derandomize=True, print_blob=True)
settings.register_profile("explore", derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))
