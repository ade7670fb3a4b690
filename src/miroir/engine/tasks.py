"""Miroir tasks: allocation, multi-step (driven) tasks, queries, cancel and delete (§5).

Two kinds of Miroir tasks:

- plain tasks (`enqueue`): the request already enqueued its node tasks; the reconciler
  (`engine/reconciler.py`) polls the nodes and folds them until the task is terminal;
- driven tasks (`enqueue_driven`): a multi-step operation (index creation with rollback,
  two-phase settings, task cancelation/deletion) run by a `driver(handle)` coroutine in
  this service's nursery. The driver owns the task's status until it calls
  `handle.finish(...)` or hands the task over to the reconciler (`handle.hand_over()`,
  when what is left is exactly folding the node tasks it recorded). A driver that raises
  a `MeiliError` fails its task with that error; any other exception is a bug and fails
  the task as `internal`. Driven tasks of the
  same index run one at a time, in enqueue order, as Meilisearch processes an index's
  tasks. Cancelations and deletions of tasks have their own queue.

While a driver owns a task, its details carry the private key `_miroir_driven` (hidden
from clients by `task_view`). After a restart no driver exists any more: such a task is
failed with a message saying so (a handed-over task is folded as usual).
"""

from __future__ import annotations

import builtins
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import msgspec
import structlog
import trio

from miroir.core.errors import MeiliError
from miroir.core.model import (
    MiroirState,
    TaskDeleted,
    TaskEnqueued,
    TaskNodeTasksAdded,
    TaskRecord,
    TaskStatus,
    TaskUpdated,
    index_open_tasks,
)
from miroir.core.taskfold import PRIVATE_PREFIX, TERMINAL, fold, parse_ts, public_details, task_view
from miroir.core.taskquery import TaskQuery, apply_task_query, matches, missing_filters, rfc3339
from miroir.engine.topology import Topology
from miroir.net.fleet import Fleet
from miroir.net.node import NodeError, NodeUnavailable
from miroir.store.journal import Journal

log = structlog.get_logger("miroir.tasks")

DRIVEN_KEY = f"{PRIVATE_PREFIX}_driven"
# A driven task whose service resumes it after a restart (engine/reshard.py): not orphaned.
RESUMABLE_KEY = f"{PRIVATE_PREFIX}_resumable"
# Queue of taskCancelation/taskDeletion: never behind an index's long-running work.
TASKS_QUEUE = "\x00tasks"
# First and largest pause between polls of node tasks in `wait_node_tasks`.
WAIT_POLL_MIN_S = 0.01
WAIT_POLL_MAX_S = 0.1
# Per-request deadline when polling or forwarding to a node.
NODE_CALL_TIMEOUT_S = 5.0
# How long cancelation waits for nodes to process their own cancel tasks.
CANCEL_WAIT_S = 30.0
# Node ids per `GET /tasks?uids=` request (keeps URLs short).
UIDS_PER_REQUEST = 200
# Meilisearch's bound on its task queue (config `[tasks]`).
MAX_KEPT_TASKS = 1_000_000
DELETE_BATCH = 100_000
# How long a taskDeletion waits for the earlier tasks it matches to finish.
DELETION_SETTLE_S = 10.0
# How long a driven task of an index waits, before it is reported finished, for the
# earlier tasks of its index to be reported finished (the reconciler folds them).
EARLIER_SETTLE_S = 30.0
# How long a write waits for the driven tasks queued before it on its index (settings,
# deletion, ...) to run before it sends its own batches to the nodes.
DRIVEN_FIRST_WAIT_S = 60.0

Driver = Callable[["DrivenTask"], Awaitable[None]]


def task_not_found(uid: int) -> MeiliError:
    return MeiliError("task_not_found", f"Task `{uid}` not found.")


def _internal_error(message: str) -> dict[str, Any]:
    return MeiliError("internal", message).to_dict()


class DrivenTask:
    """What a driver uses to move its task through the lifecycle. Every call is journaled."""

    def __init__(self, service: TaskService, uid: int):
        self.service = service
        self.uid = uid
        self.finished = False

    @property
    def record(self) -> TaskRecord | None:
        return self.service.state.tasks.get(self.uid)

    async def set_processing(self) -> None:
        await self.service.journal.append(
            TaskUpdated(uid=self.uid, status="processing", started_at=self.service.now_rfc3339())
        )

    async def add_node_tasks(self, node_tasks: Mapping[str, int]) -> None:
        """Record node tasks (a later step on the same node replaces the earlier uid)."""
        if node_tasks:
            await self.service.journal.append(TaskNodeTasksAdded(uid=self.uid, node_tasks=dict(node_tasks)))

    async def wait_node_tasks(self, node_tasks: Mapping[str, int], timeout_s: float) -> dict[str, dict]:
        return await self.service.wait_node_tasks(node_tasks, timeout_s)

    async def finish(self, status: TaskStatus, error: dict | MeiliError | None = None, details: dict | None = None) -> None:
        assert status in TERMINAL, status
        if isinstance(error, MeiliError):
            error = error.to_dict()
        rec = self.record
        if rec is not None and rec.index_uid is not None:
            # A finished task implies every earlier task of its index finished (as in
            # Meilisearch): the nodes applied the earlier writes first, the reconciler
            # may not have folded them yet.
            await self.service.earlier_settled(rec.index_uid, self.uid, EARLIER_SETTLE_S)
            rec = self.record
        now = self.service.now_rfc3339()
        base = details if details is not None else (rec.details if rec is not None else None)
        await self.service.journal.append(
            TaskUpdated(
                uid=self.uid,
                status=status,
                started_at=None if rec is not None and rec.started_at else now,
                finished_at=now,
                error=error,
                details=public_details(base) or ({} if base is not None else None),
            )
        )
        self.finished = True

    async def hand_over(self) -> None:
        """Let the reconciler fold the recorded node tasks into the final status."""
        rec = self.record
        if rec is not None:
            await self.service.journal.append(
                TaskUpdated(uid=self.uid, status=rec.status, details=public_details(rec.details) or {})
            )
        self.finished = True
        self.service.wake()


class TaskService:
    """Owns Miroir task uids and lifecycles. `run` must be running for driven tasks."""

    def __init__(
        self,
        journal: Journal[MiroirState],
        fleet: Fleet,
        topology: Callable[[], Topology],
        *,
        clock: Callable[[], float] = time.time,
        max_kept: int = MAX_KEPT_TASKS,
        delete_batch: int = DELETE_BATCH,
    ):
        self.journal = journal
        self.fleet = fleet
        self.topology = topology
        self.clock = clock
        self._next_uid = journal.state.next_task_uid
        index_open_tasks(journal.state)  # whatever the snapshot it was loaded from
        self._nursery: trio.Nursery | None = None
        self._queues: dict[str, deque[tuple[int, Driver]]] = {}
        self._reconciler_wakeup = trio.Event()
        # Held while deciding on and journaling the status of a plain task from outside a
        # driver (reconciler, cancelation), so one never overwrites a newer decision.
        self.status_lock = trio.Lock()
        self._driving: set[int] = set()  # driven tasks whose driver has started
        # Plain tasks waiting on a node that cannot be asked (the reconciler's last round):
        # later tasks of their index do not wait for them (see `earlier_open`).
        self.stalled: set[int] = set()
        self.max_kept = max_kept
        self.delete_batch = delete_batch
        # The automatic taskDeletion not finished yet (-1 while it is being enqueued). Not
        # journaled: after a restart it is an orphan, failed by `_fail_orphans`.
        self._auto_deletion: int | None = None

    @property
    def state(self) -> MiroirState:
        return self.journal.state

    def now_rfc3339(self) -> str:
        return rfc3339(self.clock())

    # --- background ----------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Host driven tasks until cancelled. Fails the driven tasks a restart orphaned."""
        await self._fail_orphans()
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            try:
                task_status.started()
                await trio.sleep_forever()
            finally:
                self._nursery = None

    async def _fail_orphans(self) -> None:
        orphans = [
            t for t in self.open_tasks() if (t.details or {}).get(DRIVEN_KEY) and not (t.details or {}).get(RESUMABLE_KEY)
        ]
        now = self.now_rfc3339()
        for t in orphans:
            log.warning("task.orphaned", uid=t.uid, type=t.type, index_uid=t.index_uid)
            await self.journal.append(
                TaskUpdated(
                    uid=t.uid,
                    status="failed",
                    started_at=None if t.started_at else now,
                    finished_at=now,
                    error=_internal_error(
                        "Miroir restarted while this task was being processed; it was not completed. "
                        "Check the index and retry the operation."
                    ),
                    details=public_details(t.details) or {},
                )
            )

    def wake(self) -> None:
        """Tell the reconciler there is new work (it otherwise backs off while idle)."""
        self._reconciler_wakeup.set()

    async def wait_for_work(self, timeout_s: float) -> bool:
        """Sleep up to `timeout_s`; True when woken by `wake()` (new work)."""
        with trio.move_on_after(timeout_s):
            await self._reconciler_wakeup.wait()
        woken = self._reconciler_wakeup.is_set()
        self._reconciler_wakeup = trio.Event()
        return woken

    def open_tasks(self) -> list[TaskRecord]:
        """The tasks not finished yet, by uid."""
        tasks = self.state.tasks
        return [tasks[uid] for uid in sorted(self.state.open_tasks) if uid in tasks]

    def is_driven(self, task: TaskRecord) -> bool:
        return bool((task.details or {}).get(DRIVEN_KEY))

    def earlier_open(self, index_uid: str, uid: int) -> bool:
        """Whether a task of `index_uid` enqueued before task `uid` is not finished (and
        not stalled on a node that cannot be asked)."""
        tasks, stalled = self.state.tasks, self.stalled
        return any(
            u < uid and u not in stalled and (t := tasks.get(u)) is not None and t.index_uid == index_uid
            for u in self.state.open_tasks
        )

    async def earlier_settled(self, index_uid: str, uid: int, timeout_s: float) -> None:
        """Wait (bounded) until every task of `index_uid` before `uid` is finished.

        Each wake makes the reconciler poll every node at once: the pause between them
        grows to `WAIT_POLL_MAX_S`, as in `wait_node_tasks`, so that an earlier task that
        runs long on a node does not have the nodes polled a hundred times a second."""
        pause = WAIT_POLL_MIN_S
        with trio.move_on_after(timeout_s):
            while self.earlier_open(index_uid, uid):
                self.wake()
                await trio.sleep(pause)
                pause = min(pause * 2, WAIT_POLL_MAX_S)
        if self.earlier_open(index_uid, uid):
            log.warning("task.earlier_unfinished", uid=uid, index_uid=index_uid)

    async def driven_first(self, index_uid: str) -> None:
        """Wait (bounded) until the driven tasks queued on `index_uid` have run.

        A write is sent to the nodes at once, a driven task (settings, index deletion,
        ...) when its turn comes: without this, a batch sent after a settings update or
        an index deletion was enqueued would reach the nodes before it, and Meilisearch
        applies an index's tasks in the order they were enqueued."""
        with trio.move_on_after(DRIVEN_FIRST_WAIT_S):
            # Bounded poll, as in earlier_settled above: the queues keep no per-index event.
            while self._queues.get(index_uid):  # noqa: ASYNC110
                await trio.sleep(WAIT_POLL_MIN_S)
        if self._queues.get(index_uid):
            log.warning("write.driven_tasks_pending", index_uid=index_uid)

    # --- enqueue ---------------------------------------------------------------------

    def _allocate(self) -> int:
        # In memory, no await in between: concurrent enqueues never share a uid even
        # before their TaskEnqueued records are durable.
        uid = max(self._next_uid, self.state.next_task_uid)
        self._next_uid = uid + 1
        return uid

    async def enqueue(
        self,
        *,
        index_uid: str | None,
        type: str,
        node_tasks: Mapping[str, int],
        details: dict | None,
        enqueued_at: str | None = None,
        node_shards: Mapping[str, list[int]] | None = None,
        custom_metadata: str | None = None,
    ) -> TaskRecord:
        """Journal a plain task (durable when this returns) for the reconciler to fold.

        `enqueued_at` (RFC 3339): when the request arrived, if the caller took it before
        sending to the nodes; default now. `node_shards` (writes): node id -> the shards
        of the write its node task covers (a lost node task is then judged by quorum).
        """
        record = TaskRecord(
            uid=self._allocate(),
            index_uid=index_uid,
            type=type,
            status="enqueued",
            node_tasks=dict(node_tasks),
            details=details,
            enqueued_at=enqueued_at or self.now_rfc3339(),
            node_shards=dict(node_shards) if node_shards is not None else None,
            custom_metadata=custom_metadata,
        )
        await self.journal.append(TaskEnqueued(task=record))
        self.wake()
        await self._bound_history()
        return self.state.tasks.get(record.uid, record)

    def reserve(
        self, *, index_uid: str | None, type: str, details: dict | None, custom_metadata: str | None = None
    ) -> TaskRecord:
        """A plain task with its uid allocated now and journaled later (`enqueue_reserved`):
        a write journals it first in its intent, before any node sees the write
        (engine/intents.py), and enqueues it with its node tasks once they are known."""
        return TaskRecord(
            uid=self._allocate(), index_uid=index_uid, type=type, status="enqueued", details=details,
            enqueued_at=self.now_rfc3339(), custom_metadata=custom_metadata,
        )

    def enqueue_reserved(
        self, task: TaskRecord, node_tasks: Mapping[str, int], node_shards: Mapping[str, list[int]]
    ) -> Callable[[], Awaitable[TaskRecord]]:
        """Queue the journaling of a task from `reserve` (it settles its write's intent)
        for the reconciler to fold; returns what waits until it is durable.

        A write queues it under its index lock and waits after releasing the lock: the
        next write of the index journals its intent behind it, in the same group commit
        (one fsync on the index's critical path per write, not two)."""
        record = msgspec.structs.replace(task, node_tasks=dict(node_tasks), node_shards=dict(node_shards))
        durable = self.journal.append_queued(TaskEnqueued(task=record))

        async def enqueued() -> TaskRecord:
            await durable()
            self.wake()
            await self._bound_history()
            return self.state.tasks.get(record.uid, record)

        return enqueued

    async def enqueue_driven(
        self,
        *,
        index_uid: str | None,
        type: str,
        details: dict | None,
        driver: Driver,
        queue: str | None = None,
        custom_metadata: str | None = None,
    ) -> TaskRecord:
        """Journal a task and queue `driver(handle)`; returns once the task is durable."""
        if self._nursery is None:
            raise MeiliError("miroir_not_ready", "Miroir's task service is not running.")
        record = TaskRecord(
            uid=self._allocate(),
            index_uid=index_uid,
            type=type,
            status="enqueued",
            details={**(details or {}), DRIVEN_KEY: True},
            enqueued_at=self.now_rfc3339(),
            custom_metadata=custom_metadata,
        )
        await self.journal.append(TaskEnqueued(task=record))
        key = queue if queue is not None else (index_uid or "")
        q = self._queues.get(key)
        if q is None:
            q = self._queues[key] = deque()
            q.append((record.uid, driver))
            self._nursery.start_soon(self._drain, key)
        else:
            q.append((record.uid, driver))
        await self._bound_history()
        return self.state.tasks.get(record.uid, record)

    async def _drain(self, key: str) -> None:
        q = self._queues[key]
        try:
            while q:
                uid, driver = q[0]
                await self._drive(uid, driver)
                q.popleft()
        finally:
            del self._queues[key]

    async def _drive(self, uid: int, driver: Driver) -> None:
        handle = DrivenTask(self, uid)
        rec = handle.record
        if rec is None or rec.status in TERMINAL:  # canceled (or deleted) before it ran
            return
        self._driving.add(uid)
        try:
            await driver(handle)
            if not handle.finished:
                raise RuntimeError("driver returned without finishing its task")
        except MeiliError as exc:  # the operation failed the way Meilisearch reports it
            if not handle.finished:
                await handle.finish("failed", error=exc)
        except Exception as exc:  # a bug in one driver must not stop the others
            log.error("task.driver_failed", uid=uid, exc_info=exc)
            if not handle.finished:
                await handle.finish("failed", error=_internal_error(f"Internal error while processing the task: {exc}"))
        finally:
            self._driving.discard(uid)

    # --- node task polling -----------------------------------------------------------

    async def fetch_node_views(self, node_id: str, uids: Iterable[int]) -> dict[int, dict] | None:
        """Node task uid -> the node's task view; None when the node cannot be asked."""
        client = self.fleet.get(node_id)
        if client is None:
            return None
        wanted = sorted(set(uids))
        out: dict[int, dict] = {}
        try:
            for i in range(0, len(wanted), UIDS_PER_REQUEST):
                chunk = wanted[i : i + UIDS_PER_REQUEST]
                body = await client.call(
                    "GET",
                    "/tasks",
                    params={"uids": chunk, "limit": len(chunk)},
                    timeout_s=NODE_CALL_TIMEOUT_S,
                )
                for view in (body or {}).get("results", []):
                    out[view["uid"]] = view
        except (NodeError, NodeUnavailable) as exc:
            log.debug("tasks.poll_failed", node=node_id, error=str(exc))
            return None
        return out

    async def wait_node_tasks(self, node_tasks: Mapping[str, int], timeout_s: float) -> dict[str, dict]:
        """Poll until every node task is terminal or `timeout_s` passed.

        Returns node -> its last view. A node that could not be asked, or does not know
        the task, gets a synthetic `failed` view (code `miroir_node_unavailable`) at the
        deadline; a task still running at the deadline keeps its last (non-terminal) view.
        """
        views: dict[str, dict] = {}
        pending = dict(node_tasks)
        delay = WAIT_POLL_MIN_S
        with trio.move_on_after(timeout_s):
            while pending:
                async with trio.open_nursery() as nursery:
                    for node_id, node_uid in list(pending.items()):
                        nursery.start_soon(self._poll_one, node_id, node_uid, views)
                for node_id in [n for n in pending if views.get(n, {}).get("status") in TERMINAL]:
                    del pending[node_id]
                if pending:
                    await trio.sleep(delay)
                    delay = min(delay * 2, WAIT_POLL_MAX_S)
        for node_id, node_uid in node_tasks.items():
            if node_id not in views:
                views[node_id] = {
                    "uid": node_uid,
                    "status": "failed",
                    "error": MeiliError(
                        "miroir_node_unavailable", f"Node `{node_id}` did not report task {node_uid}."
                    ).to_dict(),
                }
        return views

    async def _poll_one(self, node_id: str, node_uid: int, views: dict[str, dict]) -> None:
        got = await self.fetch_node_views(node_id, [node_uid])
        if got and node_uid in got:
            views[node_id] = got[node_uid]

    # --- queries ---------------------------------------------------------------------

    def get(self, uid: int) -> dict:
        rec = self.state.tasks.get(uid)
        if rec is None:
            raise task_not_found(uid)
        return task_view(rec)

    def list(self, query: TaskQuery) -> dict:
        return apply_task_query(query, (task_view(t) for t in self.state.tasks.values()))

    def _matched(self, query: TaskQuery) -> builtins.list[TaskRecord]:  # `list` is a method here
        return [t for t in self.state.tasks.values() if matches(query, task_view(t))]

    # --- cancel and delete -----------------------------------------------------------

    async def cancel(self, query: TaskQuery) -> TaskRecord:
        """`POST /tasks/cancel`: a taskCancelation task over the matched Miroir tasks."""
        if not query.has_filters:
            raise missing_filters("cancel")
        # 1.50 counts every task the query matched; only those not finished are canceled.
        every = self._matched(query)
        matched = [t.uid for t in every if t.status not in TERMINAL]
        details = {"matchedTasks": len(every), "canceledTasks": None, "originalFilter": _original(query)}

        async def driver(handle: DrivenTask) -> None:
            await handle.set_processing()
            canceled = await self._cancel_tasks(handle.uid, matched)
            await handle.finish("succeeded", details={**details, "canceledTasks": canceled})

        return await self.enqueue_driven(
            index_uid=None, type="taskCancelation", details=details, driver=driver, queue=TASKS_QUEUE
        )

    async def _cancel_tasks(self, canceler: int, uids: builtins.list[int]) -> int:
        now = self.now_rfc3339()
        canceled = 0
        targets: list[TaskRecord] = []
        for uid in uids:
            t = self.state.tasks.get(uid)
            if t is None or t.status in TERMINAL:
                continue
            if self.is_driven(t) and t.status == "enqueued" and uid not in self._driving:
                # Its driver has not started: it will see the terminal status and skip.
                await self.journal.append(
                    TaskUpdated(
                        uid=uid,
                        status="canceled",
                        finished_at=now,
                        canceled_by=canceler,
                        details=public_details(t.details) or {},
                    )
                )
                canceled += 1
            elif t.node_tasks:
                targets.append(t)
        per_node: dict[str, list[int]] = {}
        for t in targets:
            for node_id, node_uid in t.node_tasks.items():
                per_node.setdefault(node_id, []).append(node_uid)
        node_cancels: dict[str, int] = {}

        async def forward(node_id: str, node_uids: list[int]) -> None:
            client = self.fleet.get(node_id)
            if client is None:
                return
            try:
                body = await client.call(
                    "POST", "/tasks/cancel", params={"uids": sorted(node_uids)}, timeout_s=NODE_CALL_TIMEOUT_S
                )
                node_cancels[node_id] = body["taskUid"]
            except (NodeError, NodeUnavailable) as exc:
                log.warning("tasks.cancel_forward_failed", node=node_id, error=str(exc))

        async with trio.open_nursery() as nursery:
            for node_id, node_uids in per_node.items():
                nursery.start_soon(forward, node_id, node_uids)
        await self.wait_node_tasks(node_cancels, CANCEL_WAIT_S)
        # The nodes have processed their cancelations: what they canceled is terminal.
        for t in targets:
            if self.is_driven(t):
                continue  # its driver sees the canceled node tasks and finishes it
            views = await self.wait_node_tasks(t.node_tasks, NODE_CALL_TIMEOUT_S)
            topo = self.topology()
            f = fold(t.type, t.details, views, group_of={n: m.group for n, m in topo.nodes.items()}, rf=topo.rf)
            if f.status != "canceled":
                continue  # it finished before the node could cancel it: the reconciler folds it
            async with self.status_lock:
                current = self.state.tasks.get(t.uid)
                if current is None or (current.status in TERMINAL and current.status != "canceled"):
                    continue
                await self.journal.append(
                    TaskUpdated(
                        uid=t.uid,
                        status="canceled",
                        started_at=f.started_at,
                        finished_at=f.finished_at or now,
                        details=f.details,
                        canceled_by=canceler,
                    )
                )
                canceled += 1
        return canceled

    async def delete(self, query: TaskQuery) -> TaskRecord:
        """`DELETE /tasks`: a taskDeletion task removing the matched finished tasks."""
        if not query.has_filters:
            raise missing_filters("delete")
        return await self._enqueue_deletion([t.uid for t in self._matched(query)], _original(query))

    async def _bound_history(self) -> None:
        """At `max_kept` tasks, enqueue a taskDeletion of the oldest finished ones.

        As Meilisearch (index-scheduler `cleanup_task_queue`, v1.2+): the oldest
        `delete_batch` tasks that are succeeded, failed or canceled, none when fewer than
        2 can go (it could only delete the previous automatic deletion), and the filter
        reported as `?beforeEnqueuedAt=<newest of them + 1 tick>&statuses=...`.
        """
        tasks = self.state.tasks
        if len(tasks) < self.max_kept or self._nursery is None:
            return
        pending = self._auto_deletion
        if pending is not None:
            rec = tasks.get(pending)
            if pending < 0 or (rec is not None and rec.status not in TERMINAL):
                return
        # Insertion order is uid order but for concurrent enqueues: stopping early keeps
        # this cheap at a million tasks, for at most a few uids out of order.
        doomed: list[TaskRecord] = []
        for t in tasks.values():
            if t.status in TERMINAL:
                doomed.append(t)
                if len(doomed) == self.delete_batch:
                    break
        if len(doomed) < 2:
            log.warning("tasks.history_full", kept=len(tasks), finished=len(doomed))
            return
        doomed.sort(key=lambda t: t.uid)
        enqueued = [ts for t in doomed if (ts := parse_ts(t.enqueued_at)) is not None]
        # One tick after the newest (Meilisearch adds 1 ns; our timestamps stop at 1 us).
        before = rfc3339(max(enqueued) + 1e-6) if enqueued else self.now_rfc3339()
        log.info("tasks.history_pruned", kept=len(tasks), deleting=len(doomed))
        self._auto_deletion = -1
        try:
            task = await self._enqueue_deletion(
                [t.uid for t in doomed], f"?beforeEnqueuedAt={before}&statuses=succeeded,failed,canceled"
            )
            self._auto_deletion = task.uid
        except BaseException:
            self._auto_deletion = None
            raise

    async def _enqueue_deletion(self, matched: builtins.list[int], original_filter: str) -> TaskRecord:
        details = {"matchedTasks": len(matched), "deletedTasks": None, "originalFilter": original_filter}

        async def driver(handle: DrivenTask) -> None:
            await handle.set_processing()
            # Meilisearch runs one queue: the tasks enqueued before a deletion that it
            # matches are being processed and finish first. Miroir's already run on the
            # nodes: they are given a bounded while to finish.
            await self._settle(handle.uid, matched)
            # Only tasks finished when the deletion runs are deleted, as in Meilisearch.
            doomed = [
                t for uid in matched if (t := self.state.tasks.get(uid)) is not None and t.status in TERMINAL
            ]
            if doomed:
                await self.journal.append(TaskDeleted(uids=[t.uid for t in doomed]))
                await self._forward_deletion(doomed)
            await handle.finish("succeeded", details={**details, "deletedTasks": len(doomed)})

        return await self.enqueue_driven(
            index_uid=None, type="taskDeletion", details=details, driver=driver, queue=TASKS_QUEUE
        )

    async def _settle(self, before: int, uids: builtins.list[int]) -> None:
        deadline = trio.current_time() + DELETION_SETTLE_S
        while trio.current_time() < deadline:
            tasks = self.state.tasks
            if not any(u < before and (t := tasks.get(u)) is not None and t.status not in TERMINAL for u in uids):
                return
            self.wake()
            await trio.sleep(WAIT_POLL_MAX_S)

    async def _forward_deletion(self, tasks: builtins.list[TaskRecord]) -> None:
        """Best effort: nodes keep their task lists short too; a miss only costs space."""
        per_node: dict[str, list[int]] = {}
        for t in tasks:
            for node_id, node_uid in t.node_tasks.items():
                per_node.setdefault(node_id, []).append(node_uid)

        async def forward(node_id: str, node_uids: list[int]) -> None:
            client = self.fleet.get(node_id)
            if client is None:
                return
            try:
                for i in range(0, len(node_uids), UIDS_PER_REQUEST):
                    chunk = sorted(node_uids)[i : i + UIDS_PER_REQUEST]
                    await client.call("DELETE", "/tasks", params={"uids": chunk}, timeout_s=NODE_CALL_TIMEOUT_S)
            except (NodeError, NodeUnavailable) as exc:
                log.warning("tasks.delete_forward_failed", node=node_id, error=str(exc))

        async with trio.open_nursery() as nursery:
            for node_id, node_uids in per_node.items():
                nursery.start_soon(forward, node_id, node_uids)


def _original(query: TaskQuery) -> str:
    text = query.original
    return text if text.startswith("?") else f"?{text}"

