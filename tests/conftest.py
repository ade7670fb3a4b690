"""Shared fixtures. Keep small: helpers live in their own modules (tests/support/devnodes.py)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings

from tests.support.devnodes import Devnode, start_devnodes

# Every property test runs the same examples on every run (CI runs the suite once: a
# failure must not depend on the draw), with no wall-clock check (a loaded machine makes
# generation slow, not wrong) and no example database carried over from an earlier run.
# A test's own @settings overrides only the keys it names.
settings.register_profile(
    "miroir", derandomize=True, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("miroir")


@pytest.fixture(scope="module")
def devnode() -> Devnode:
    """One devnode subprocess per test module; tests use distinct index uids."""
    with start_devnodes(1) as nodes:
        yield nodes[0]
