"""The journal (design §8) under a real SIGKILL mid-burst: a child process appends and
prints each acknowledged task uid; every acknowledged append survives the kill, twice."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from miroir.core.model import MiroirState
from tests.support.journals import miroir_journal
from tests.support.paths import SUPPORT

CHILD = SUPPORT / "journal_burst_child.py"
TIMEOUT = 20  # seconds; every wait in this file is bounded by it


def load(directory: Path) -> MiroirState:
    """The state a restarted Miroir would load (as tests/unit/test_journal.py's `load`)."""
    return miroir_journal(directory).load()


def read_acks(proc: subprocess.Popen[bytes], want: int, deadline: float) -> list[int]:
    """Acknowledged uids printed by the child, until ``want`` of them or the deadline."""
    assert proc.stdout is not None
    acks: list[int] = []
    buf = b""
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while len(acks) < want:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"child too slow: {len(acks)} acks"
            if not sel.select(remaining):
                continue
            chunk = os.read(proc.stdout.fileno(), 65536)
            assert chunk, f"child exited early: {proc.wait(TIMEOUT)} {proc.stderr.read() if proc.stderr else ''}"
            buf += chunk
            *lines, buf = buf.split(b"\n")
            acks += [int(line) for line in lines if not line.startswith(b"ready")]
    return acks


def drain(proc: subprocess.Popen[bytes]) -> list[int]:
    """Complete lines the killed child had written (each one an acknowledgement)."""
    assert proc.stdout is not None
    rest = proc.stdout.read()
    return [int(line) for line in rest.split(b"\n")[:-1] if line and not line.startswith(b"ready")]


@pytest.mark.parametrize("snapshot_every", [64, 10_000])
def test_sigkill_mid_burst_keeps_every_acknowledged_append(tmp_path: Path, snapshot_every: int) -> None:
    acked: set[int] = set()
    for round_ in range(2):  # the second round recovers the killed journal, then is killed too
        proc = subprocess.Popen(
            [sys.executable, str(CHILD), str(tmp_path), str(snapshot_every)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            got = read_acks(proc, 300, time.monotonic() + TIMEOUT)
            proc.send_signal(signal.SIGKILL)
            proc.wait(TIMEOUT)
            got += drain(proc)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(TIMEOUT)
            proc.stdout.close()  # type: ignore[union-attr]
            proc.stderr.close()  # type: ignore[union-attr]
        assert proc.returncode == -signal.SIGKILL, round_
        assert len(got) == len(set(got)) and not acked & set(got), "uids are never reused"
        acked |= set(got)
        state = load(tmp_path)
        missing = acked - set(state.tasks)
        assert not missing, f"round {round_}: acknowledged but lost: {sorted(missing)[:10]}"
        assert state.next_task_uid > max(acked)
