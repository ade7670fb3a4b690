"""Shared fixtures. Keep small: helpers live in their own modules (tests/support/devnodes.py)."""

from __future__ import annotations

import pytest

from tests.support.devnodes import Devnode, start_devnodes


@pytest.fixture(scope="module")
def devnode() -> Devnode:
    """One devnode subprocess per test module; tests use distinct index uids."""
    with start_devnodes(1) as nodes:
        yield nodes[0]
