"""Meilisearch 1.50's own integration test cases (tests/port/cases/), each replayed against
one devnode and against Miroir over 3 devnodes (16 shards): see tests/port/runner.py.

A case listed in known_failures.json is expected to fail (xfail, with its reason); the test
fails when such a case passes, so the list only shrinks (`python -m tests.port.runner
--update-known` rewrites it). Each target is started once per session and runs its selected
cases a few at a time when the first test needs them (each case has its own index).
"""

from __future__ import annotations

import pytest

from tests.port.runner import (
    MAX_DIFFS,
    TARGETS,
    Case,
    Outcome,
    known_key,
    load_cases,
    load_known,
    run_target,
)

CASES = load_cases()
BY_ID = {c.id: c for c in CASES}
KNOWN = load_known()


class _Runs:
    """Outcomes per target for the cases this session selected, computed on first use (each
    target started, run and stopped in turn)."""

    def __init__(self, session: pytest.Session) -> None:
        self.session = session
        self.outcomes: dict[str, dict[str, Outcome]] | None = None

    def of(self, target: str) -> dict[str, Outcome]:
        if self.outcomes is None:
            selected: dict[str, list[Case]] = {}
            for item in self.session.items:
                if getattr(item, "originalname", None) == "test_port":
                    params = item.callspec.params
                    selected.setdefault(params["target"], []).append(BY_ID[params["case_id"]])
            # one target after the other: Miroir runs in this process, and the other target's
            # case threads would take the interpreter from it (measured slower at once)
            self.outcomes = {t: run_target(t, cases) for t, cases in selected.items()}
        return self.outcomes[target]


@pytest.fixture(scope="session")
def port_runs(request: pytest.FixtureRequest) -> _Runs:
    return _Runs(request.session)


# The first test of a target runs all its cases (about 90 s for Miroir on a loaded machine).
@pytest.mark.timeout(900)
@pytest.mark.parametrize("case_id", [c.id for c in CASES])
@pytest.mark.parametrize("target", TARGETS)
def test_port(target: str, case_id: str, port_runs: _Runs) -> None:
    case: Case = BY_ID[case_id]
    if case.skip:
        pytest.skip(case.skip)
    outcome = port_runs.of(target)[case_id]
    reason = KNOWN.get(known_key(target, case))
    if reason is not None:
        if outcome.passed:
            pytest.fail(f"{known_key(target, case)} now passes: remove it from tests/port/known_failures.json")
        pytest.xfail(reason)
    if not outcome.passed:
        shown = outcome.diffs[:MAX_DIFFS] + (
            [f"... {len(outcome.diffs) - MAX_DIFFS} more"] if len(outcome.diffs) > MAX_DIFFS else []
        )
        pytest.fail(f"{target}::{case_id} differs from Meilisearch 1.50:\n  " + "\n  ".join(shown), pytrace=False)
