"""The persistent state of Miroir and the journal records that change it (design §8).

``MiroirState`` is never mutated directly: a change is a ``Record`` appended to the journal,
and ``apply_record`` folds it into the state once it is durable. So the state is always
``replay(journal)``, after a restart too.

Extending (write path, rebalancer, keys, ...):

- a new record type is a ``JournalRecord`` subclass with a new, never reused ``tag``, plus
  one function decorated with ``@applies(ThatRecord)``; the ``Record`` union below is built
  from the registry, so replay of old journals keeps working (old tags still decode);
- a new field of an existing struct must have a default, or old journals and snapshots stop
  decoding;
- a handler must be total: for any well-typed record it must not raise (an unknown uid is a
  no-op). A handler that raises on a durable record would make the journal unreplayable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, TypeVar, Union

import msgspec

TaskStatus = Literal["enqueued", "processing", "succeeded", "failed", "canceled"]
NodeState = Literal["joining", "active", "draining", "removed"]

FINISHED_STATUSES: frozenset[str] = frozenset({"succeeded", "failed", "canceled"})


class TaskRecord(msgspec.Struct, kw_only=True):
    """One Miroir task: what the client sees at ``GET /tasks/{uid}``, plus node task uids."""

    uid: int
    index_uid: str | None
    type: str  # Meilisearch task type, e.g. "documentAdditionOrUpdate"
    status: TaskStatus = "enqueued"
    node_tasks: dict[str, int] = msgspec.field(default_factory=dict)  # node id -> node task uid
    details: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    enqueued_at: str | None = None  # RFC 3339
    started_at: str | None = None
    finished_at: str | None = None
    canceled_by: int | None = None


class IndexMeta(msgspec.Struct, kw_only=True):
    uid: str
    primary_key: str | None
    shards: int  # S, fixed at creation (design §3)
    settings_version: int = 0
    created_at: str
    updated_at: str


class NodeMeta(msgspec.Struct, kw_only=True):
    id: str
    url: str
    group: str
    state: NodeState = "joining"


class MiroirState(msgspec.Struct, kw_only=True):
    next_task_uid: int = 0
    tasks: dict[int, TaskRecord] = msgspec.field(default_factory=dict)
    indexes: dict[str, IndexMeta] = msgspec.field(default_factory=dict)
    nodes: dict[str, NodeMeta] = msgspec.field(default_factory=dict)  # topology + node states
    # index uid -> the client view of its settings (see miroir.core.settings), set by
    # IndexSettingsPut; the merge reads rankingRules, distinct, faceting from it.
    index_settings: dict[str, dict[str, Any]] = msgspec.field(default_factory=dict)


def new_state() -> MiroirState:
    return MiroirState()


# --- records ---------------------------------------------------------------------------

# The tag field is not "type": TaskRecord and future records have a field of that name.
class JournalRecord(msgspec.Struct, tag_field="rec", kw_only=True):
    """Base of every journal record; subclasses set a unique ``tag``."""


class TaskEnqueued(JournalRecord, tag="task_enqueued"):
    task: TaskRecord


class TaskUpdated(JournalRecord, tag="task_updated"):
    """Progress of a task; a field left at None keeps its current value."""

    uid: int
    status: TaskStatus
    started_at: str | None = None
    finished_at: str | None = None
    error: dict[str, Any] | None = None
    details: dict[str, Any] | None = None
    canceled_by: int | None = None


class TaskDeleted(JournalRecord, tag="task_deleted"):
    uids: list[int]


class IndexPut(JournalRecord, tag="index_put"):
    meta: IndexMeta


class IndexRemoved(JournalRecord, tag="index_removed"):
    uid: str


class NodePut(JournalRecord, tag="node_put"):
    node: NodeMeta


class NodeRemoved(JournalRecord, tag="node_removed"):
    id: str


# --- apply: one dispatch table ---------------------------------------------------------

R = TypeVar("R", bound=JournalRecord)
_HANDLERS: dict[type[JournalRecord], Callable[[MiroirState, Any], None]] = {}


def applies(record_type: type[R]) -> Callable[[Callable[[MiroirState, R], None]], Callable[[MiroirState, R], None]]:
    """Register the handler of one record type (exactly one per type)."""

    def register(fn: Callable[[MiroirState, R], None]) -> Callable[[MiroirState, R], None]:
        assert record_type not in _HANDLERS, f"two handlers for {record_type.__name__}"
        _HANDLERS[record_type] = fn
        return fn

    return register


def apply_record(state: MiroirState, rec: JournalRecord) -> None:
    """Fold one durable record into ``state`` (the ``apply`` of the Journal)."""
    _HANDLERS[type(rec)](state, rec)


@applies(TaskEnqueued)
def _task_enqueued(state: MiroirState, rec: TaskEnqueued) -> None:
    state.tasks[rec.task.uid] = rec.task
    # max(): the counter never goes back, even if records carry uids out of order.
    state.next_task_uid = max(state.next_task_uid, rec.task.uid + 1)


@applies(TaskUpdated)
def _task_updated(state: MiroirState, rec: TaskUpdated) -> None:
    task = state.tasks.get(rec.uid)
    if task is None:  # deleted meanwhile: nothing to update
        return
    task.status = rec.status
    if rec.started_at is not None:
        task.started_at = rec.started_at
    if rec.finished_at is not None:
        task.finished_at = rec.finished_at
    if rec.error is not None:
        task.error = rec.error
    if rec.details is not None:
        task.details = rec.details
    if rec.canceled_by is not None:
        task.canceled_by = rec.canceled_by


@applies(TaskDeleted)
def _task_deleted(state: MiroirState, rec: TaskDeleted) -> None:
    for uid in rec.uids:
        state.tasks.pop(uid, None)


@applies(IndexPut)
def _index_put(state: MiroirState, rec: IndexPut) -> None:
    state.indexes[rec.meta.uid] = rec.meta


@applies(IndexRemoved)
def _index_removed(state: MiroirState, rec: IndexRemoved) -> None:
    state.indexes.pop(rec.uid, None)
    state.index_settings.pop(rec.uid, None)


@applies(NodePut)
def _node_put(state: MiroirState, rec: NodePut) -> None:
    state.nodes[rec.node.id] = rec.node


@applies(NodeRemoved)
def _node_removed(state: MiroirState, rec: NodeRemoved) -> None:
    state.nodes.pop(rec.id, None)


class TaskNodeTasksAdded(JournalRecord, tag="task_node_tasks_added"):
    """Node tasks a multi-step (driven) task enqueued after it was itself enqueued."""

    uid: int
    node_tasks: dict[str, int]


@applies(TaskNodeTasksAdded)
def _task_node_tasks_added(state: MiroirState, rec: TaskNodeTasksAdded) -> None:
    task = state.tasks.get(rec.uid)
    if task is not None:
        task.node_tasks.update(rec.node_tasks)


class IndexSettingsPut(JournalRecord, tag="index_settings_put"):
    """The client view of an index's settings after a successful update (or creation)."""

    uid: str
    settings: dict[str, Any]
    version: int  # becomes IndexMeta.settings_version
    updated_at: str | None = None  # becomes IndexMeta.updated_at when given


@applies(IndexSettingsPut)
def _index_settings_put(state: MiroirState, rec: IndexSettingsPut) -> None:
    meta = state.indexes.get(rec.uid)
    if meta is None:  # removed meanwhile: settings of a deleted index are dropped
        return
    state.index_settings[rec.uid] = rec.settings
    meta.settings_version = rec.version
    if rec.updated_at is not None:
        meta.updated_at = rec.updated_at


# Built from the registry so that adding a record type is one class and one handler.
# Keep this line after every handler.
Record = Union[tuple(_HANDLERS)]  # type: ignore[valid-type]
