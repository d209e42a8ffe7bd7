"""Hypothesis profiles of the fuzz suite.

``ci`` (the default) is derandomized: the same examples on every run, so a CI failure
reproduces locally with the same command. ``large`` (``FASTJAC_FUZZ_PROFILE=large``) draws
ten times as many random examples and keeps a database of failures; ``FASTJAC_FUZZ_EXAMPLES``
overrides the per-test example count of either profile.
"""

import os
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

_EXAMPLES = os.environ.get("FASTJAC_FUZZ_EXAMPLES")
_SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
            HealthCheck.differing_executors]

settings.register_profile(
    "ci", derandomize=True, database=None, deadline=None, print_blob=True,
    max_examples=int(_EXAMPLES or 200), suppress_health_check=_SLOW_OK,
)
settings.register_profile(
    "large", derandomize=False, deadline=None, print_blob=True,
    max_examples=int(_EXAMPLES or 1500), suppress_health_check=_SLOW_OK,
)
settings.load_profile(os.environ.get("FASTJAC_FUZZ_PROFILE", "ci"))


@pytest.fixture(autouse=True)
def _quiet_numpy():
    """Overflow in a cast of a huge Python float to float32 is expected here, not a bug."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield
