"""The task reconciler: folds node tasks into Miroir task statuses (design §5).

One loop: take every unfinished plain task, ask each node about all its node tasks in
one batched `GET /tasks?uids=...`, fold each task (`core/taskfold.py`) and journal a
`TaskUpdated` when what the client sees changes. A terminal status is journaled once and
the task is never polled again. Driven tasks are left to their drivers.

Failures: a node that cannot be asked keeps its last known view (the task stays
unfinished until it answers); a node that answers but does not know a node task for
`LOST_AFTER_POLLS` rounds in a row has lost it (data loss, task deleted on the node), and
that node task counts as failed.
"""

from __future__ import annotations

import structlog
import trio

from miroir.core.errors import MeiliError
from miroir.core.taskfold import TERMINAL, Fold, fold, parse_ts
from miroir.engine.tasks import TaskService
from miroir.store.state import TaskRecord, TaskUpdated

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
        folds = []
        for t in pending:
            views = {n: self._view(n, u, answers.get(n)) for n, u in t.node_tasks.items()}
            f = fold(t.type, t.details, views, group_of=group_of, rf=topo.rf)
            if f.status in TERMINAL and f.finished_at is None:  # nothing ran on any node
                f.finished_at = f.started_at = self.tasks.now_rfc3339()
            _not_before(f, t.enqueued_at)
            folds.append((t.uid, f))
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

    def _view(self, node_id: str, node_uid: int, answer: dict[int, dict] | None) -> dict:
        key = (node_id, node_uid)
        if node_id not in self.tasks.fleet:
            return _failed(node_uid, f"Node `{node_id}` is no longer part of the cluster.")
        if answer is None:  # node unreachable: keep what we knew
            return self._views.get(key, {"uid": node_uid, "status": "enqueued"})
        view = answer.get(node_uid)
        if view is None:
            misses = self._misses[key] = self._misses.get(key, 0) + 1
            if misses >= LOST_AFTER_POLLS:
                log.warning("reconciler.node_task_lost", node=node_id, node_task=node_uid)
                return _failed(node_uid, f"Node `{node_id}` lost task {node_uid}.")
            return self._views.get(key, {"uid": node_uid, "status": "enqueued"})
        self._misses.pop(key, None)
        self._views[key] = view
        return view


def _failed(node_uid: int, message: str) -> dict:
    return {"uid": node_uid, "status": "failed", "error": MeiliError("miroir_node_unavailable", message).to_dict()}


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
