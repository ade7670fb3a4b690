"""Where the tests find the repository, their data files and the datasets beside the checkout.

One place, so that moving a test file between tests/unit, tests/integration and tests/oracle
changes no path in it.
"""

from __future__ import annotations

from pathlib import Path

SUPPORT = Path(__file__).resolve().parent
REPO = SUPPORT.parents[1]
DATA = SUPPORT / "data"  # frozen answers, pages and scripts the tests feed to real programs
SHARED = REPO.parent / "shared"  # ../shared: datasets laid out next to the repository
