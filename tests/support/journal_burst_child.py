"""Child process of test_journal.py: append forever, print every acknowledged uid.

    python journal_burst_child.py DIRECTORY SNAPSHOT_EVERY

Prints ``ready <next_task_uid>`` once the journal is loaded and the writer runs, then one
line per acknowledged append (the task uid), flushed at once, from several concurrent
producers so that group commit batches them. Runs until killed (the test uses SIGKILL).
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import trio

from miroir.core.model import MiroirState, Record, TaskEnqueued, TaskRecord, apply_record, new_state
from miroir.store.journal import Journal

PRODUCERS = 8


async def main(directory: Path, snapshot_every: int) -> None:
    journal = Journal(
        directory,
        record_type=Record,
        state_type=MiroirState,
        apply=apply_record,
        initial=new_state,
        snapshot_every=snapshot_every,
    )
    state = journal.load()
    uids = itertools.count(state.next_task_uid)

    async def produce() -> None:
        while True:
            uid = next(uids)
            task = TaskRecord(uid=uid, index_uid="burst", type="documentAdditionOrUpdate", details={"pad": "x" * 200})
            await journal.append(TaskEnqueued(task=task))
            sys.stdout.write(f"{uid}\n")
            sys.stdout.flush()

    async with trio.open_nursery() as nursery:
        await nursery.start(journal.run)
        sys.stdout.write(f"ready {state.next_task_uid}\n")
        sys.stdout.flush()
        for _ in range(PRODUCERS):
            nursery.start_soon(produce)


if __name__ == "__main__":
    import logging

    import structlog

    # Keep stdout for the acknowledgements only.
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr),
                        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    trio.run(main, Path(sys.argv[1]), int(sys.argv[2]))
