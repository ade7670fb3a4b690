"""The devnode's indexes and its task queue: one worker applies writes strictly in order.

Every write is a task (Meilisearch's lifecycle: enqueued -> processing -> succeeded |
failed | canceled). HTTP handlers validate the request, `enqueue` it with an `Op`, and
answer 202 at once; `TaskQueue.run` is the only code that mutates indexes. Consecutive
document writes to one index are processed as one batch (Meilisearch autobatches them
too), which also means one snapshot write per batch with `--data-dir`.

A finished task's status becomes visible only after it is durable (see persist.py).
"""

from __future__ import annotations

import time
from typing import Any

import msgspec
import structlog
import trio
import trio.lowlevel

from miroir.core import statsview, taskquery
from miroir.core.errors import MeiliError, in_index, index_not_found
from miroir.core.taskquery import format_duration, rfc3339
from miroir.devnode import persist, settings as settings_mod
from miroir.devnode.engine import IndexEngine, default_settings

log = structlog.get_logger("miroir.devnode.tasks")

# Upper bound of tasks in one autobatch: keeps a single batch (and its pause of the
# event loop) short while still amortising snapshot writes.
MAX_BATCH_TASKS = 64
FINISHED = ("succeeded", "failed", "canceled")


class TaskRecord(msgspec.Struct, rename="camel", omit_defaults=True):
    """Meilisearch's task view, field for field and in its order (`customMetadata` only
    when the request carried one)."""

    uid: int
    batch_uid: int | None
    index_uid: str | None
    status: str
    type: str
    canceled_by: int | None
    details: dict | None
    error: dict | None
    duration: str | None
    enqueued_at: str
    started_at: str | None
    finished_at: str | None
    custom_metadata: str | None = None

    def view(self) -> dict:
        return msgspec.to_builtins(self)

    def summary(self) -> dict:
        return {
            "taskUid": self.uid,
            "indexUid": self.index_uid,
            "status": self.status,
            "type": self.type,
            "enqueuedAt": self.enqueued_at,
            **({"customMetadata": self.custom_metadata} if self.custom_metadata is not None else {}),
        }


# -- operations: what a task does, kept apart from the public record ------------------


class AddDocuments(msgspec.Struct, tag=True):
    documents: list[dict]
    primary_key: str | None
    partial: bool
    skip_creation: bool = False


class DeleteIds(msgspec.Struct, tag=True):
    ids: list[str]


class DeleteFilter(msgspec.Struct, tag=True):
    filter: Any


class ClearDocuments(msgspec.Struct, tag=True):
    pass


class CreateIndex(msgspec.Struct, tag=True):
    primary_key: str | None


class UpdateIndex(msgspec.Struct, tag=True):
    primary_key: str | None
    new_uid: str | None = None  # 1.50's rename (`PATCH /indexes/{uid}` with `uid`)


class DeleteIndex(msgspec.Struct, tag=True):
    pass


class UpdateSettings(msgspec.Struct, tag=True):
    patch: dict
    create: bool = True  # False for a reset (DELETE): 1.50 fails it on a missing index


class SwapIndexes(msgspec.Struct, tag=True):
    swaps: list[tuple[str, str]]
    renames: list[bool] | None = None  # per pair: `rename: true` moves [0] to the name [1]


class CompactIndex(msgspec.Struct, tag=True):
    """1.50's `POST /indexes/{uid}/compact`: nothing to reclaim in memory; the details
    give the documents' size before and after."""


class CancelTasks(msgspec.Struct, tag=True):
    matched: list[int]


class DeleteTasks(msgspec.Struct, tag=True):
    matched: list[int]


class CreateDump(msgspec.Struct, tag=True):
    directory: str
    dump_uid: str


class CreateSnapshot(msgspec.Struct, tag=True):
    directory: str


Op = (
    AddDocuments | DeleteIds | DeleteFilter | ClearDocuments | CreateIndex | UpdateIndex | DeleteIndex
    | UpdateSettings | SwapIndexes | CancelTasks | DeleteTasks | CreateDump | CompactIndex
    | CreateSnapshot
)


_op_encoder = msgspec.msgpack.Encoder()
_size_encoder = msgspec.json.Encoder()
_op_decoder = msgspec.msgpack.Decoder(Op)


class IndexEntry(msgspec.Struct):
    engine: Any  # IndexEngine
    created_at: str
    updated_at: str

    def view(self, uid: str) -> dict:
        return {"uid": uid, "createdAt": self.created_at, "updatedAt": self.updated_at, "primaryKey": self.engine.primary_key}


def _finalize_details(type_: str, details: dict | None) -> dict | None:
    """Counts still unknown when a task fails or is canceled are reported as 0."""
    if details is None:
        return None
    out = dict(details)
    for key in ("indexedDocuments", "deletedDocuments", "canceledTasks", "deletedTasks"):
        if key in out and out[key] is None:
            out[key] = 0
    return out


# Task types whose application reads or changes the task table itself.
# snapshotCreation reads the task table, which enqueues change: on the event loop too.
_LOOP_ONLY = frozenset({"taskCancelation", "taskDeletion", "snapshotCreation"})


class TaskQueue:
    """Owns the indexes and the task list of one devnode.

    `run()` is the single worker; it must be started in a nursery that outlives every
    request handler. With a `persist.Store`, state is reloaded from it at construction.
    """

    def __init__(self, store: persist.Store | None = None):
        self.store = store
        self.indexes: dict[str, IndexEntry] = {}
        self.tasks: dict[int, TaskRecord] = {}
        self._ops: dict[int, Op] = {}
        self._queue: list[int] = []  # enqueued uids, oldest first
        self._next_uid = 0
        self._next_batch = 0
        self._wake = trio.Event()
        # Held while a batch mutates engines in a worker thread, and by request handlers that
        # read engines; everything else (health, task polls, enqueues) runs without it.
        self.engine_lock = trio.Lock()
        self._enqueue_lock = trio.Lock()
        self.processing_index: set[str] = set()
        self.last_update: str | None = None
        # `/experimental-features` flags (1.50), kept in the data dir when there is one.
        self.features: dict[str, bool] = {}
        if store is not None:
            self._restore(store.load())
            self.features.update(store.read_features())

    def _restore(self, loaded: persist.Loaded) -> None:
        for uid in sorted(loaded.tasks):
            raw = dict(loaded.tasks[uid])
            op = raw.pop("op", None)
            rec = msgspec.convert(raw, TaskRecord)
            if rec.status in ("enqueued", "processing"):
                if op is None:  # an old log without the operation: cannot be redone
                    continue
                # Accepted before the crash, not finished: processed again, in uid order.
                rec.status, rec.started_at, rec.batch_uid = "enqueued", None, None
                self._ops[uid] = _op_decoder.decode(op)
                self._queue.append(uid)
            self.tasks[uid] = rec
            if rec.batch_uid is not None:
                self._next_batch = max(self._next_batch, rec.batch_uid + 1)
        for snap in loaded.indexes:
            engine = IndexEngine.restore(snap["engine"])
            engine.features = self.features
            self.indexes[snap["uid"]] = IndexEntry(engine, snap["createdAt"], snap["updatedAt"])
        self._next_uid = loaded.next_uid
        log.info("devnode state restored", tasks=len(self.tasks), indexes=len(self.indexes))

    # -- enqueueing (called by request handlers) --------------------------------------

    async def enqueue(
        self, type_: str, index_uid: str | None, op: Op, details: dict | None, custom_metadata: str | None = None
    ) -> TaskRecord:
        if self.store is None:
            return self._enqueue(type_, index_uid, op, details, custom_metadata=custom_metadata)
        # One at a time: uids reach the log and the queue in order, and the answer waits
        # until the task (with its operation) is on disk.
        try:
            blob = _op_encoder.encode(op)
        except (OverflowError, RecursionError, msgspec.EncodeError) as e:
            # Refused before it has a uid: a task that cannot be stored would otherwise be
            # held in memory only, or fail the node when its batch is written.
            raise MeiliError("bad_request", f"The request cannot be stored by this node: {e}.") from None
        async with self._enqueue_lock:
            rec = self._enqueue(type_, index_uid, op, details, queued=False, custom_metadata=custom_metadata)
            view = rec.view()
            await trio.to_thread.run_sync(self.store.append_enqueued, view, blob)
            self._queue.append(rec.uid)
            self._wake.set()
            return rec

    def _enqueue(
        self,
        type_: str,
        index_uid: str | None,
        op: Op,
        details: dict | None,
        *,
        queued: bool = True,
        custom_metadata: str | None = None,
    ) -> TaskRecord:
        uid = self._next_uid
        self._next_uid += 1
        if self.store is not None and uid + 1 > self.store.reserved:
            # Synchronous on purpose: once per UID_BLOCK tasks, and awaiting here would
            # let a later uid reach the queue first.
            self.store.reserve(uid + 1)
        rec = TaskRecord(
            uid=uid, batch_uid=None, index_uid=index_uid, status="enqueued", type=type_, canceled_by=None,
            details=details, error=None, duration=None, enqueued_at=rfc3339(time.time()), started_at=None,
            finished_at=None, custom_metadata=custom_metadata,
        )
        self.tasks[uid] = rec
        self._ops[uid] = op
        if queued:
            self._queue.append(uid)
            self._wake.set()
        return rec

    def matching(self, query: taskquery.TaskQuery) -> list[int]:
        return [uid for uid, rec in self.tasks.items() if taskquery.matches(query, rec.view())]

    def list_tasks(self, query: taskquery.TaskQuery) -> dict:
        if query.uids is not None:  # the common poll (`?uids=...`): skip the full scan
            candidates = [self.tasks[u] for u in query.uids if u in self.tasks]
        else:
            candidates = list(self.tasks.values())
        return taskquery.apply_task_query(query, (r.view() for r in candidates))

    def is_indexing(self, index_uid: str) -> bool:
        return index_uid in self.processing_index

    # -- the worker ---------------------------------------------------------------------

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Process tasks in order until cancelled."""
        task_status.started()
        while True:
            batch = self._take_batch()
            if not batch:
                await self._wake.wait()
                self._wake = trio.Event()
                continue
            await self._process(batch)
            await trio.lowlevel.checkpoint()  # let requests run between batches

    def _take_batch(self) -> list[int]:
        if not self._queue:
            return []
        # Meilisearch runs cancelations first, then deletions, then everything in order.
        for kind in ("taskCancelation", "taskDeletion"):
            for uid in self._queue:
                if self.tasks[uid].type == kind:
                    self._queue.remove(uid)
                    return [uid]
        head = self.tasks[self._queue[0]]
        batch = [self._queue[0]]
        if head.type in ("documentAdditionOrUpdate", "documentDeletion"):
            for uid in self._queue[1:MAX_BATCH_TASKS]:
                rec = self.tasks[uid]
                if rec.type != head.type or rec.index_uid != head.index_uid:
                    break
                batch.append(uid)
        del self._queue[: len(batch)]
        return batch

    async def _process(self, batch: list[int]) -> None:
        batch_uid = self._next_batch
        self._next_batch += 1
        started = time.time()
        started_at = rfc3339(started)
        for uid in batch:
            rec = self.tasks[uid]
            rec.status, rec.started_at, rec.batch_uid = "processing", started_at, batch_uid
            if rec.index_uid is not None:
                self.processing_index.add(rec.index_uid)
        # Results are computed into copies; the live records flip only once durable.
        finished: list[TaskRecord] = []
        touched: dict[str, list[dict]] = {}
        side_records: list[TaskRecord] = []
        deleted: list[int] = []
        ops = {uid: self._ops.pop(uid) for uid in batch}

        def apply_batch() -> None:
            for uid in batch:
                rec = self.tasks[uid]
                op = ops[uid]
                out = msgspec.structs.replace(rec)
                try:
                    out.details = self._apply(rec, op, side_records, deleted)
                    out.status = "succeeded"
                except MeiliError as e:
                    err = in_index(rec.index_uid, e) if rec.index_uid else e
                    out.status, out.error = "failed", err.to_dict()
                    out.details = _finalize_details(rec.type, rec.details)
                except Exception as e:  # an engine bug must fail one task, not the node
                    log.exception("task failed with an internal error", uid=uid)
                    out.status = "failed"
                    out.error = MeiliError("internal", f"Internal error: {e!r}").to_dict()
                    out.details = _finalize_details(rec.type, rec.details)
                now = time.time()
                out.finished_at = rfc3339(now)
                out.duration = format_duration(now - started)
                finished.append(out)
                for idx in self._concerned(rec, ops[uid]):
                    touched.setdefault(idx, [])

        async with self.engine_lock:
            if any(self.tasks[uid].type in _LOOP_ONLY for uid in batch):
                apply_batch()  # touches the task table and queue: stay on the event loop
            else:
                # Indexing is CPU-bound Python: in a thread the event loop keeps answering
                # /health and /tasks while a large batch is indexed.
                await trio.to_thread.run_sync(apply_batch)
            await self._finish_batch(finished, touched, side_records, deleted)

    async def _finish_batch(self, finished, touched, side_records, deleted) -> None:
        views = {r.uid: r.view() for r in finished}
        for idx, recs in touched.items():
            recs.extend(views[r.uid] for r in finished if idx in self._concerned_uids(r))
        if self.store is not None:
            try:
                await self._persist(touched, list(views.values()) + [r.view() for r in side_records], deleted)
            except (OverflowError, RecursionError, msgspec.EncodeError, OSError) as e:
                # The batch cannot be made durable: it fails, as a Meilisearch task would,
                # and its failure is what gets recorded. Crashing instead would crash again
                # on every restart, replaying the same task.
                finished = await self._fail_unpersisted(finished, touched, e)
                side_records, deleted = [], []
        for rec in finished + side_records:
            self.tasks[rec.uid] = rec
        for uid in deleted:
            self.tasks.pop(uid, None)
        self.processing_index.clear()
        self.last_update = finished[-1].finished_at

    async def _fail_unpersisted(self, finished: list[TaskRecord], touched: dict, error: BaseException) -> list[TaskRecord]:
        log.error("batch could not be persisted; its tasks fail", error=repr(error), tasks=[r.uid for r in finished])
        store = self.store
        for idx in touched:  # back to what the disk holds
            snap = await trio.to_thread.run_sync(store.read_index, idx)
            if snap is None:
                self.indexes.pop(idx, None)
            else:
                engine = IndexEngine.restore(snap["engine"])
                engine.features = self.features
                self.indexes[idx] = IndexEntry(engine, snap["createdAt"], snap["updatedAt"])
        failed = []
        for rec in finished:
            out = msgspec.structs.replace(rec, status="failed")
            out.error = MeiliError("internal", f"Internal error: the task could not be stored: {error}").to_dict()
            out.details = _finalize_details(rec.type, self.tasks[rec.uid].details)
            failed.append(out)
        await trio.to_thread.run_sync(store.append_tasks, [r.view() for r in failed])
        return failed

    def _concerned(self, rec: TaskRecord, op: Op) -> list[str]:
        if isinstance(op, SwapIndexes):
            return [name for pair in op.swaps for name in pair]
        if isinstance(op, UpdateIndex) and op.new_uid is not None and rec.index_uid is not None:
            return [rec.index_uid, op.new_uid]  # a rename: the old name's file goes, the new one is written
        return [rec.index_uid] if rec.index_uid is not None else []

    def _concerned_uids(self, rec: TaskRecord) -> list[str]:
        if rec.type == "indexSwap":
            return [n for s in (rec.details or {}).get("swaps", ()) for n in s["indexes"]]
        renamed = (rec.details or {}).get("newIndexUid") if rec.type == "indexUpdate" else None
        if renamed is not None and rec.index_uid is not None:
            return [rec.index_uid, renamed]
        return [rec.index_uid] if rec.index_uid is not None else []

    async def _persist(self, touched: dict[str, list[dict]], records: list[dict], deleted: list[int]) -> None:
        # Encode on the event loop (a consistent view), write in a thread.
        blobs = []
        for idx, recs in touched.items():
            entry = self.indexes.get(idx)
            if entry is None:
                blobs.append((idx, persist.encode_tombstone(idx, recs)))
            else:
                blobs.append((idx, persist.encode_snapshot(idx, entry.created_at, entry.updated_at, entry.engine.dump(), recs)))
        store = self.store

        def write() -> None:
            for idx, blob in blobs:
                store.write_index(idx, blob)
            store.append_tasks(records, deleted)

        await trio.to_thread.run_sync(write)

    # -- applying one operation (synchronous; raises MeiliError for task errors) -------

    def _entry(self, uid: str) -> IndexEntry:
        entry = self.indexes.get(uid)
        if entry is None:
            raise index_not_found(uid)
        return entry

    def _create(self, uid: str, primary_key: str | None) -> IndexEntry:
        now = rfc3339(time.time())
        entry = IndexEntry(IndexEngine(uid, primary_key=primary_key), now, now)
        entry.engine.features = self.features  # shared: a PATCH reaches every index at once
        self.indexes[uid] = entry
        return entry

    def _apply(self, rec: TaskRecord, op: Op, side_records: list[TaskRecord], deleted: list[int]) -> dict | None:
        uid = rec.index_uid
        details = dict(rec.details) if rec.details is not None else None
        if isinstance(op, AddDocuments):
            created = uid not in self.indexes
            entry = self.indexes[uid] if not created else self._create(uid, None)
            try:
                written = entry.engine.add_documents(
                    op.documents, op.primary_key, partial=op.partial, skip_creation=op.skip_creation
                )
            except MeiliError:
                # Meilisearch rolls the documents back, but it created the index before
                # reading them (in a transaction of its own): the index stays.
                raise
            except BaseException:
                if created:
                    del self.indexes[uid]
                raise
            details["indexedDocuments"] = written
        elif isinstance(op, DeleteIds):
            details["deletedDocuments"] = self._entry(uid).engine.delete_documents(op.ids)
        elif isinstance(op, DeleteFilter):
            details["deletedDocuments"] = self._entry(uid).engine.delete_by_filter(op.filter)
        elif isinstance(op, ClearDocuments):
            details["deletedDocuments"] = self._entry(uid).engine.clear()
        elif isinstance(op, CreateIndex):
            if uid in self.indexes:
                raise MeiliError("index_already_exists", f"Index `{uid}` already exists.")
            self._create(uid, op.primary_key)
        elif isinstance(op, UpdateIndex):
            entry = self._entry(uid)
            if op.new_uid is not None and op.new_uid != uid and op.new_uid in self.indexes:
                raise MeiliError("index_already_exists", f"Index `{op.new_uid}` already exists.")
            current = entry.engine.primary_key
            if op.primary_key is not None and op.primary_key != current:
                if current is not None and entry.engine.stats().get("numberOfDocuments", 0) > 0:
                    raise MeiliError("index_primary_key_already_exists", f"Index `{uid}`: Index already has a primary key: `{current}`.")
                entry.engine.primary_key = op.primary_key
            if op.new_uid is not None and op.new_uid != uid:
                self._rename(uid, op.new_uid)
                uid = op.new_uid
        elif isinstance(op, DeleteIndex):
            entry = self._entry(uid)
            details["deletedDocuments"] = entry.engine.stats().get("numberOfDocuments", 0)
            del self.indexes[uid]
        elif isinstance(op, UpdateSettings):
            entry = self.indexes.get(uid)
            if entry is None:
                if not op.create:
                    raise index_not_found(uid)
                entry = self._create(uid, None)
            full = settings_mod.merge(entry.engine.settings, op.patch, default_settings())
            entry.engine.set_settings(full)
        elif isinstance(op, SwapIndexes):
            self._swap(op, side_records)
        elif isinstance(op, CompactIndex):
            entry = self._entry(uid)
            size = sum(len(_size_encoder.encode(d)) for d in entry.engine.documents())
            human = statsview.size(size, "human")
            details.update(preCompactionSize=human, postCompactionSize=human)
        elif isinstance(op, CancelTasks):
            details["canceledTasks"] = self._cancel(rec, op, side_records)
        elif isinstance(op, CreateDump):
            from miroir.devnode.dumps import write_dump

            write_dump(self.indexes, op.directory, op.dump_uid)
        elif isinstance(op, CreateSnapshot):
            from miroir.devnode.snapshots import write_snapshot

            done = [r.view() for _, r in sorted(self.tasks.items()) if r.status in FINISHED]
            write_snapshot(self.indexes, done, self._next_uid, self.features, op.directory)
        elif isinstance(op, DeleteTasks):
            gone = [u for u in op.matched if u in self.tasks and self.tasks[u].status in FINISHED]
            deleted.extend(gone)
            details["deletedTasks"] = len(gone)
        else:  # pragma: no cover
            raise AssertionError(op)
        # A created index keeps createdAt == updatedAt (1.50's get_index.rs checks it).
        if uid is not None and uid in self.indexes and not isinstance(op, (CancelTasks, DeleteTasks, CreateIndex)):
            self.indexes[uid].updated_at = rfc3339(time.time())
        return details

    def _rename(self, old: str, new: str) -> None:
        entry = self.indexes.pop(old)
        self.indexes[new] = entry
        if hasattr(entry.engine, "uid"):
            entry.engine.uid = new

    def _swap(self, op: SwapIndexes, side_records: list[TaskRecord]) -> None:
        renames = op.renames or [False] * len(op.swaps)
        missing = [
            n for (a, b), rename in zip(op.swaps, renames) for n in ((a,) if rename else (a, b)) if n not in self.indexes
        ]
        if missing:
            unique = sorted(set(missing))  # 1.50 lists them sorted (as Miroir's swap does)
            names = ", ".join(f"`{n}`" for n in unique)
            raise MeiliError("index_not_found", f"Indexes {names} not found." if len(unique) > 1 else f"Index {names} not found.")
        taken = [b for (_, b), rename in zip(op.swaps, renames) if rename and b in self.indexes]
        if len(taken) == 1:
            a = next(a for (a, b), r in zip(op.swaps, renames) if r and b == taken[0])
            raise MeiliError(
                "index_already_exists",
                f"Cannot rename `{a}` to `{taken[0]}` as the index already exists. Hint: You can remove "
                f"`{taken[0]}` first and then do your remove.",
            )
        if taken:
            names = ", ".join(f"`{a}`" for (a, b), r in zip(op.swaps, renames) if r and b in taken)
            raise MeiliError(
                "index_already_exists",
                "The following indexes are being renamed but cannot because their new name conflicts with an "
                f"already existing index: {names}. Renaming doesn't overwrite the other index name.",
            )
        rename: dict[str, str] = {}
        for (a, b), moved in zip(op.swaps, renames):
            if moved:
                self._rename(a, b)
                rename[a] = b
                continue
            self.indexes[a], self.indexes[b] = self.indexes[b], self.indexes[a]
            rename[a], rename[b] = b, a
            for name in (a, b):
                if hasattr(self.indexes[name].engine, "uid"):
                    self.indexes[name].engine.uid = name
        # Meilisearch rewrites the history too: past tasks follow their documents.
        for task in self.tasks.values():
            if task.index_uid in rename and task.type != "indexSwap":
                task.index_uid = rename[task.index_uid]
                if task.status in FINISHED:
                    side_records.append(task)

    def _cancel(self, rec: TaskRecord, op: CancelTasks, side_records: list[TaskRecord]) -> int:
        now = rfc3339(time.time())
        canceled = 0
        for uid in op.matched:
            task = self.tasks.get(uid)
            if task is None or task.status != "enqueued":
                continue
            self._queue.remove(uid)
            self._ops.pop(uid, None)
            out = msgspec.structs.replace(
                task, status="canceled", canceled_by=rec.uid, finished_at=now, started_at=None,
                details=_finalize_details(task.type, task.details),
            )
            side_records.append(out)
            canceled += 1
        return canceled
