"""Miroir's own journal (records, state, fold) on a directory, for tests that read or
write it without a daemon. With `high_water`, as `miroir serve` opens it (daemon.py): the
next task uid is the high-water mark its start-up checks compare."""

from __future__ import annotations

from pathlib import Path

from miroir.core.model import MiroirState, Record, apply_record, new_state
from miroir.store.journal import Journal


def miroir_journal(directory: Path, snapshot_every: int = 10_000, *, high_water: bool = False) -> Journal[MiroirState]:
    return Journal(
        directory,
        record_type=Record,
        state_type=MiroirState,
        apply=apply_record,
        initial=new_state,
        snapshot_every=snapshot_every,
        high_water=(lambda s: s.next_task_uid) if high_water else None,
    )
