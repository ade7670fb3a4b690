"""`MiroirState.open_tasks`: the unfinished tasks, kept by the task records' handlers.

The reconciler polls only these (it used to scan every task ever kept, every 10 ms), so
a task missing from the set would never be polled again: the set must follow every
record, and be rebuilt from the tasks after a load from a snapshot written before it
existed.
"""

from __future__ import annotations

import random

import msgspec

from miroir.core.model import (
    MiroirState,
    TaskDeleted,
    TaskEnqueued,
    TaskRecord,
    TaskUpdated,
    apply_record,
    index_open_tasks,
    new_state,
)
from miroir.core.taskfold import TERMINAL

STATUSES = ["enqueued", "processing", "succeeded", "failed", "canceled"]


def expected(state: MiroirState) -> set[int]:
    return {uid for uid, t in state.tasks.items() if t.status not in TERMINAL}


def test_lifecycle():
    s = new_state()
    apply_record(s, TaskEnqueued(task=TaskRecord(uid=0, index_uid="a", type="documentAdditionOrUpdate")))
    apply_record(s, TaskEnqueued(task=TaskRecord(uid=1, index_uid="a", type="indexDeletion", status="succeeded")))
    assert s.open_tasks == {0}
    apply_record(s, TaskUpdated(uid=0, status="processing"))
    assert s.open_tasks == {0}
    apply_record(s, TaskUpdated(uid=0, status="succeeded"))
    assert s.open_tasks == set()
    apply_record(s, TaskUpdated(uid=7, status="processing"))  # unknown (deleted) task: nothing
    assert s.open_tasks == set()
    apply_record(s, TaskEnqueued(task=TaskRecord(uid=2, index_uid="b", type="settingsUpdate")))
    apply_record(s, TaskDeleted(uids=[2]))
    assert s.open_tasks == set() and 2 not in s.tasks


def test_random_records_keep_the_set_exact():
    rng = random.Random(8)
    s = new_state()
    for step in range(3000):
        roll = rng.random()
        if roll < 0.4 or not s.tasks:
            uid = s.next_task_uid
            rec = TaskEnqueued(task=TaskRecord(uid=uid, index_uid="x", type="documentAdditionOrUpdate",
                                               status=rng.choice(STATUSES[:2])))
        elif roll < 0.9:
            rec = TaskUpdated(uid=rng.choice(list(s.tasks)), status=rng.choice(STATUSES))
        else:
            rec = TaskDeleted(uids=rng.sample(list(s.tasks), k=min(3, len(s.tasks))))
        apply_record(s, rec)
        assert s.open_tasks == expected(s), step


def test_rebuilt_after_loading_a_snapshot_without_it():
    s = new_state()
    for uid, status in enumerate(["enqueued", "succeeded", "processing", "failed"]):
        apply_record(s, TaskEnqueued(task=TaskRecord(uid=uid, index_uid="x", type="t", status=status)))
    raw = msgspec.to_builtins(s)
    del raw["open_tasks"]  # as written by a Miroir before this field
    old = msgspec.convert(raw, MiroirState)
    assert old.open_tasks == set()
    index_open_tasks(old)
    assert old.open_tasks == {0, 2}
    # ... and a snapshot that has it round-trips it.
    again = msgspec.msgpack.decode(msgspec.msgpack.encode(s), type=MiroirState)
    assert again.open_tasks == {0, 2}


def test_node_shards_dropped_once_finished():
    s = new_state()
    task = TaskRecord(uid=0, index_uid="x", type="documentAdditionOrUpdate", node_shards={"n1": [0, 3], "n2": [1]})
    apply_record(s, TaskEnqueued(task=task))
    apply_record(s, TaskUpdated(uid=0, status="processing"))
    assert s.tasks[0].node_shards == {"n1": [0, 3], "n2": [1]}  # the fold still needs it
    apply_record(s, TaskUpdated(uid=0, status="succeeded"))
    assert s.tasks[0].node_shards is None
