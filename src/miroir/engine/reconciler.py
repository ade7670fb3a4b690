"""The task reconciler: folds node tasks into Miroir task statuses (design §5).

One loop: take every unfinished plain task, ask each node about all its node tasks in
one batched `GET /tasks?uids=...`, fold each task (`core/taskfold.py`) and journal a
`TaskUpdated` when what the client sees changes. A terminal status is journaled once and
the task is never polled again. Driven tasks are left to their drivers.

Failures: a node that cannot be asked keeps its last known view (the task stays
unfinished until it answers); a node that answers but does not know a node task for
`LOST_AFTER_POLLS` rounds in a row has lost it (data loss, task deleted on the node), as
has a node no longer in the cluster. A lost node task stays lost (a node that lost its
disk numbers its tasks from 0 again: a later task with the same uid is another task),
and for a write the node's answer must be a task of the write's type and index (else it
is that other task: not ours). The fold (`core/taskfold.py`) then judges a lost node
task by the write's quorum: a write whose surviving node tasks still make its quorum
succeeds (the lost copy is refilled); otherwise, or for a task that is not a write, the
lost node task counts as failed.
"""

from __future__ import annotations

import structlog
import trio

from miroir.core.model import TaskRecord, TaskUpdated
from miroir.core.taskfold import TERMINAL, Fold, fold, lost_view, parse_ts
from miroir.engine.tasks import TaskService

log = structlog.get_logger("miroir.reconciler")

# Pause after a round that changed something: tasks tend to finish in bursts.
ACTIVE_DELAY_S = 0.01
# Largest pause while tasks are pending but nothing moves; an enqueue wakes us at once.
IDLE_DELAY_S = 0.2
# Rounds a node may answer without a node task before we call it lost (a node's task
# list is consistent right after enqueue; several rounds guard against a race anyway).
LOST_AFTER_POLLS = 3


class Reconciler:
    def __init__(self, tasks: TaskService):
        self.tasks = tasks
        # (node id, node task uid) -> last view seen; forgotten when the task finishes.
        self._views: dict[tuple[str, int], dict] = {}
        self._misses: dict[tuple[str, int], int] = {}
        # (task uid, node id, node task uid) -> its lost view: lost for good (a node that
        # lost its disk reuses the uid for other tasks, later writes included).
        self._lost: dict[tuple[int, str, int], dict] = {}

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Poll until cancelled. Never raises for node trouble; journal errors propagate."""
        task_status.started()
        delay = ACTIVE_DELAY_S
        while True:
            pending = self.pending()
            changed = await self.round(pending) if pending else 0
            delay = ACTIVE_DELAY_S if changed else min(delay * 2, IDLE_DELAY_S)
            if await self.tasks.wait_for_work(delay):
                delay = ACTIVE_DELAY_S

    def pending(self) -> list[TaskRecord]:
        return [t for t in self.tasks.open_tasks() if not self.tasks.is_driven(t)]

    async def round(self, pending: list[TaskRecord]) -> int:
        """One poll-and-fold pass over `pending`; returns how many tasks changed."""
        per_node: dict[str, list[int]] = {}
        for t in pending:
            for node_id, node_uid in t.node_tasks.items():
                per_node.setdefault(node_id, []).append(node_uid)
        answers: dict[str, dict[int, dict] | None] = {}

        async def poll(node_id: str, uids: list[int]) -> None:
            answers[node_id] = await self.tasks.fetch_node_views(node_id, uids)

        async with trio.open_nursery() as nursery:
            for node_id, uids in per_node.items():
                nursery.start_soon(poll, node_id, uids)

        topo = self.tasks.topology()
        group_of = {n: m.group for n, m in topo.nodes.items()}
        live = {(n, u) for t in pending for n, u in t.node_tasks.items()}
        for cache in (self._views, self._misses):
            for key in [k for k in cache if k not in live]:
                del cache[key]  # finished, canceled or deleted meanwhile
        open_uids = {t.uid for t in pending}
        for lost in [k for k in self._lost if k[0] not in open_uids]:
            del self._lost[lost]
        folds = []
        stalled: set[int] = set()
        for t in pending:
            views = {n: self._view(t, n, u, answers.get(n)) for n, u in t.node_tasks.items()}
            if any(answers.get(n) is None and views[n].get("status") not in TERMINAL for n in t.node_tasks):
                stalled.add(t.uid)
            f = fold(t.type, t.details, views, group_of=group_of, rf=topo.rf, node_shards=t.node_shards)
            if f.status in TERMINAL and f.finished_at is None:  # nothing ran on any node
                f.finished_at = f.started_at = self.tasks.now_rfc3339()
            _not_before(f, t.enqueued_at)
            folds.append((t.uid, f))
        self.tasks.stalled = stalled
        _in_index_order(folds, self.tasks.open_tasks(), stalled)
        # Under the status lock: a cancelation that finished a task meanwhile is seen here,
        # and one fsync covers every change of the round.
        async with self.tasks.status_lock:
            records = []
            for uid, f in folds:
                current = self.tasks.state.tasks.get(uid)
                if current is None or current.status in TERMINAL or self.tasks.is_driven(current):
                    continue  # deleted, canceled or taken over meanwhile
                if (f.status, f.started_at, f.finished_at) == (current.status, current.started_at, current.finished_at):
                    continue
                records.append(
                    TaskUpdated(
                        uid=uid,
                        status=f.status,  # type: ignore[arg-type]
                        started_at=f.started_at,
                        finished_at=f.finished_at,
                        error=f.error,
                        details=f.details if f.status in TERMINAL else None,
                    )
                )
            await self.tasks.journal.append(*records)
        return len(records)

    def _view(self, task: TaskRecord, node_id: str, node_uid: int, answer: dict[int, dict] | None) -> dict:
        key = (node_id, node_uid)
        if node_id not in self.tasks.fleet:
            return lost_view(node_uid, f"Node `{node_id}` is no longer part of the cluster.")
        lost = self._lost.get((task.uid, node_id, node_uid))
        if lost is not None:
            return lost
        if answer is None:  # node unreachable: keep what we knew
            return self._views.get(key, {"uid": node_uid, "status": "enqueued"})
        view = answer.get(node_uid)
        if view is not None and not _same_task(task, view):
            view = None  # the uid was reused by a node that lost its tasks
        if view is None:
            misses = self._misses[key] = self._misses.get(key, 0) + 1
            if misses >= LOST_AFTER_POLLS:
                log.warning("reconciler.node_task_lost", node=node_id, node_task=node_uid, task=task.uid)
                lost = lost_view(node_uid, f"Node `{node_id}` lost task {node_uid}.")
                self._lost[(task.uid, node_id, node_uid)] = lost
                return lost
            return self._views.get(key, {"uid": node_uid, "status": "enqueued"})
        self._misses.pop(key, None)
        self._views[key] = view
        return view


def _in_index_order(folds: list[tuple[int, Fold]], open_tasks: list[TaskRecord], stalled: set[int]) -> None:
    """A task is reported finished only once every earlier task of its index is (as in
    Meilisearch, where a finished task implies its index's earlier tasks finished): a
    node may finish its part of a later write before another node finishes its part of
    an earlier one. Such a fold is held at `processing` until its turn.

    Except behind a `stalled` task (waiting on a node that cannot be asked): one node
    down must not stop every later task of the index from being reported; the stalled
    task finishes when its node answers or is judged lost."""
    by_uid = dict(folds)
    blocked: set[str] = set()
    last_finish: dict[str, str] = {}
    for t in open_tasks:  # by uid
        if t.index_uid is None:
            continue
        f = by_uid.get(t.uid)
        if f is None or f.status not in TERMINAL:
            if t.uid not in stalled:
                blocked.add(t.index_uid)  # driven, or still running on some node
            continue
        if t.index_uid in blocked:
            f.status, f.finished_at, f.error = "processing", None, None
            f.started_at = f.started_at or t.started_at
            continue
        # Tasks finish in order: never before the earlier one finished this round.
        earlier = last_finish.get(t.index_uid)
        if earlier is not None and f.finished_at is not None and (parse_ts(f.finished_at) or 0.0) < (parse_ts(earlier) or 0.0):
            f.finished_at = earlier
        if f.finished_at is not None:
            last_finish[t.index_uid] = f.finished_at


def _same_task(task: TaskRecord, view: dict) -> bool:
    """Whether a node's view can be the node task of `task`: for a write (the node task
    has the write's type and index), a task of another type or index is not."""
    if task.node_shards is None:
        return True  # index, settings, handed-over tasks: node task types vary
    return view.get("type", task.type) == task.type and view.get("indexUid", task.index_uid) == task.index_uid


def _not_before(f: Fold, enqueued_at: str | None) -> None:
    """Node clocks and our enqueue stamp (taken after the nodes acknowledged) disagree
    by a little; a client must never see a task start before it was enqueued."""
    floor = parse_ts(enqueued_at)
    if floor is None:
        return
    if f.started_at is not None and (parse_ts(f.started_at) or 0.0) < floor:
        f.started_at = enqueued_at
    if f.finished_at is not None and (parse_ts(f.finished_at) or 0.0) < (parse_ts(f.started_at) or floor):
        f.finished_at = f.started_at
