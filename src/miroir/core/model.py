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

from miroir.core.keys import ApiKey
from miroir.core.placement import Layout, table_key
from miroir.core.taskfold import TERMINAL

TaskStatus = Literal["enqueued", "processing", "succeeded", "failed", "canceled"]
NodeState = Literal["joining", "active", "draining", "removed"]


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
    # Writes: node id -> the shards of the write its node task covers (journaled at
    # enqueue), so the fold judges a lost node task by the write's quorum. None for
    # other tasks, in journals older than this field, and once the task is finished.
    node_shards: dict[str, list[int]] | None = None
    # 1.50's `customMetadata` query parameter of the request that made the task.
    custom_metadata: str | None = None


class IndexMeta(msgspec.Struct, kw_only=True):
    uid: str
    primary_key: str | None
    shards: int  # S, fixed at creation (design §3)
    settings_version: int = 0
    created_at: str
    updated_at: str
    # Placement version (core/placement.py): 1 in journals older than placement 2, so
    # indexes created before it keep where their documents are.
    placement: int = 1
    # Resharding (core/reshard.py): while `split_from` is set, the index already has
    # `shards` shards but documents written before the split may still carry their
    # tag under `split_from` (their parent shard): reads pinned to a shard ask them all.
    # While `own_table` is set, the owners come from `MiroirState.reshards[uid]`.
    split_from: int = 0
    own_table: bool = False

    @property
    def layout(self) -> Layout:
        """What owner lookups of this index are keyed by (engine/topology.py)."""
        return Layout(self.shards, self.placement, self.uid if self.own_table else "")


class NodeMeta(msgspec.Struct, kw_only=True):
    id: str
    url: str
    group: str
    state: NodeState = "joining"
    # Relative capacity: placement 2 gives the node this share of its group's shard
    # copies (weight / sum of the group's weights). Fixed when the node is added.
    weight: float = 1.0


MigrationStatus = Literal["pending", "copying", "switched", "done"]


class MigrationUnit(msgspec.Struct, kw_only=True):
    """One shard of every index with S = `shards`, in one group, gaining `targets`.

    `pending` -> `copying` (dual writes reach the targets from the moment the plan is
    journaled) -> `switched` (the new owners answer reads) -> `done` (the copies of
    `drops` deleted). `cursors[index][target]` is the copy offset reached, -1 once the
    copy and reconciliation of that index on that target are complete.
    """

    shards: int
    shard: int
    group: str
    targets: list[str]
    sources: list[str]  # old owners in the group, staying ones first
    fallbacks: list[str] = msgspec.field(default_factory=list)  # owners in other groups
    drops: list[str] = msgspec.field(default_factory=list)  # old owners losing the shard
    status: MigrationStatus = "pending"
    cursors: dict[str, dict[str, int]] = msgspec.field(default_factory=dict)
    copied: int = 0  # documents written to targets by the copy (dual writes not counted)
    # The unit moves the indexes with this placement (and S = `shards`) only.
    placement: int = 1


class MigrationPlan(msgspec.Struct, kw_only=True):
    id: int
    old_groups: dict[str, list[str]]  # owning membership before the plan
    new_groups: dict[str, list[str]]  # ... and once it is done
    units: dict[str, MigrationUnit]  # unit_key(S, shard, group, placement) -> unit
    created_at: str | None = None
    # Placement-2 owner tables (core/placement.py), table_key(S, group) -> per shard its
    # owners: before the plan, and once it is done (committed by MigrationDone).
    old_tables: dict[str, list[list[str]]] = msgspec.field(default_factory=dict)
    new_tables: dict[str, list[list[str]]] = msgspec.field(default_factory=dict)


class RebalanceState(msgspec.Struct, kw_only=True):
    # Committed owning membership (group -> node ids); None until the first plan: the
    # active and draining nodes own then.
    members: dict[str, list[str]] | None = None
    plan: MigrationPlan | None = None
    paused: bool = False
    next_plan_id: int = 1
    last: dict[str, Any] | None = None  # summary of the last finished plan
    # Committed placement-2 tables, table_key(S, group) -> per shard its owners; a
    # group and S without one use placement 2's initial table of the membership.
    tables: dict[str, list[list[str]]] = msgspec.field(default_factory=dict)


ReshardPhase = Literal["splitting", "moving"]


class Reshard(msgspec.Struct, kw_only=True):
    """An index going from `old_shards` to `shards` shards and to placement 2 (issue 17).

    `splitting`: the index has `shards` shards (writes are tagged and routed by them), each
    new shard owned by its parent's owners (`owners`), and the documents written before
    are re-tagged in place, node by node and parent by parent (`retagged`: "node:parent").
    `moving`: every document carries its new tag; shards whose `final` owners differ are
    copied to them (dual writes on), switched (`owners` takes `final`), and dropped from
    the nodes that lost them. Then `ReshardDone` makes `final` the shared placement-2 table.
    """

    uid: str
    task: int
    old_shards: int
    old_placement: int
    shards: int
    phase: ReshardPhase = "splitting"
    owners: dict[str, list[list[str]]]  # group -> per new shard its owners now
    inherited: dict[str, list[list[str]]]  # group -> per new shard its parent's owners
    final: dict[str, list[list[str]]]  # group -> per new shard its owners at the end
    retagged: list[str] = msgspec.field(default_factory=list)
    switched: dict[str, list[int]] = msgspec.field(default_factory=dict)  # group -> shards
    dropped: dict[str, list[int]] = msgspec.field(default_factory=dict)  # group -> shards
    retagged_docs: int = 0
    copied: int = 0


def unit_key(shards: int, shard: int, group: str, placement: int = 1) -> str:
    # Placement-1 keys keep their old form: plans journaled before placement 2 resume.
    base = f"{shards}:{shard}:{group}"
    return base if placement == 1 else f"{base}:p{placement}"


class MiroirState(msgspec.Struct, kw_only=True):
    next_task_uid: int = 0
    tasks: dict[int, TaskRecord] = msgspec.field(default_factory=dict)
    indexes: dict[str, IndexMeta] = msgspec.field(default_factory=dict)
    nodes: dict[str, NodeMeta] = msgspec.field(default_factory=dict)  # topology + node states
    # index uid -> the client view of its settings (see miroir.core.settings), set by
    # IndexSettingsPut; the merge reads rankingRules, distinct, faceting from it.
    index_settings: dict[str, dict[str, Any]] = msgspec.field(default_factory=dict)
    # Rebalancing (engine/rebalancer.py): committed shard-owning membership and the
    # migration plan in progress. Defaulted, so older journals and snapshots decode.
    rebalance: RebalanceState = msgspec.field(default_factory=lambda: RebalanceState())
    # Per node: missed writes to replay and refills (engine/handoff.py). Defaulted.
    repairs: dict[str, NodeRepair] = msgspec.field(default_factory=dict)
    # index uid -> every document attribute path seen, first appearance first, without
    # `_miroir_*` (core/fields.py: what nodes search in under `["*"]`). Defaulted.
    index_fields: dict[str, list[str]] = msgspec.field(default_factory=dict)
    # Uids of the tasks not finished yet, kept by the task records' handlers: the
    # reconciler polls these every few milliseconds, and scanning every task ever kept
    # grew its cost with the task history. Derived from `tasks`; `index_open_tasks`
    # rebuilds it after a load (a snapshot older than this field has none).
    open_tasks: set[int] = msgspec.field(default_factory=set)
    # API keys by uid (core/keys.py; their values are derived, never journaled). Defaulted.
    keys: dict[str, ApiKey] = msgspec.field(default_factory=dict)
    # 1.50's `/experimental-features` flags turned on or off (core/features.py). Defaulted.
    experimental_features: dict[str, bool] = msgspec.field(default_factory=dict)
    # Webhooks by uuid and their deliveries not acknowledged yet (engine/webhooks.py).
    # Defaulted.
    webhooks: dict[str, Webhook] = msgspec.field(default_factory=dict)
    webhook_outbox: dict[int, WebhookDelivery] = msgspec.field(default_factory=dict)
    webhook_next_seq: int = 1
    # Where the webhook service's look for finished tasks stood at the last delivery
    # queued: uids from `webhook_cursor` on, and the open ones below it. A restart resumes
    # from there, so a task that finished just before a crash is still delivered.
    webhook_cursor: int | None = None
    webhook_watching: list[int] = msgspec.field(default_factory=list)
    # 1.50's dynamic search rules by uid, each as its view (core/dsr.py), in creation
    # order (ties of the listing's sort). Miroir owns them; nodes never see them. Defaulted.
    dynamic_search_rules: dict[str, dict[str, Any]] = msgspec.field(default_factory=dict)
    # Reshards in progress by index uid (core/reshard.py, engine/reshard.py). Defaulted.
    reshards: dict[str, Reshard] = msgspec.field(default_factory=dict)
    # Write batches sent (or about to be) to their owners whose outcome is not journaled
    # yet, by the uid reserved for their task (engine/intents.py). Defaulted.
    intents: dict[int, WriteIntent] = msgspec.field(default_factory=dict)
    # Document sequence numbers (`_miroir_seq`, core/reserved.py) below this are taken or
    # reserved: after a restart the write path continues from here. One counter for every
    # index, so that an index swap or re-creation never gives a later write a lower number
    # than a document already held. Defaulted.
    doc_seq_top: int = 1


def new_state() -> MiroirState:
    return MiroirState()


def index_open_tasks(state: MiroirState) -> None:
    """Rebuild `state.open_tasks` from `state.tasks`."""
    state.open_tasks = {uid for uid, t in state.tasks.items() if t.status not in TERMINAL}


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
    if rec.task.status in TERMINAL:
        state.open_tasks.discard(rec.task.uid)
    else:
        state.open_tasks.add(rec.task.uid)
    # max(): the counter never goes back, even if records carry uids out of order.
    state.next_task_uid = max(state.next_task_uid, rec.task.uid + 1)
    # The task of a write is its outcome: the write's intent is settled (engine/intents.py).
    state.intents.pop(rec.task.uid, None)


@applies(TaskUpdated)
def _task_updated(state: MiroirState, rec: TaskUpdated) -> None:
    task = state.tasks.get(rec.uid)
    if task is None:  # deleted meanwhile: nothing to update
        return
    task.status = rec.status
    if rec.status in TERMINAL:
        state.open_tasks.discard(rec.uid)
        # Only the fold of an unfinished write reads it; a million kept tasks would
        # otherwise carry node x shard lists forever (memory and snapshots).
        task.node_shards = None
    else:
        state.open_tasks.add(rec.uid)
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
        state.open_tasks.discard(uid)


@applies(IndexPut)
def _index_put(state: MiroirState, rec: IndexPut) -> None:
    state.indexes[rec.meta.uid] = rec.meta


@applies(IndexRemoved)
def _index_removed(state: MiroirState, rec: IndexRemoved) -> None:
    state.indexes.pop(rec.uid, None)
    state.reshards.pop(rec.uid, None)
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


# --- rebalancing (engine/rebalancer.py, engine/mover.py) ---------------------------------


class MigrationPlanned(JournalRecord, tag="migration_planned"):
    plan: MigrationPlan


@applies(MigrationPlanned)
def _migration_planned(state: MiroirState, rec: MigrationPlanned) -> None:
    state.rebalance.plan = rec.plan
    state.rebalance.next_plan_id = max(state.rebalance.next_plan_id, rec.plan.id + 1)


def _unit(state: MiroirState, plan_id: int, key: str) -> MigrationUnit | None:
    plan = state.rebalance.plan
    if plan is None or plan.id != plan_id:
        return None
    return plan.units.get(key)


class MigrationProgress(JournalRecord, tag="migration_progress"):
    """The copy of `index` to `target` reached `cursor` (-1: complete); `copied` more docs."""

    plan_id: int
    unit: str
    index: str
    target: str
    cursor: int
    copied: int = 0


@applies(MigrationProgress)
def _migration_progress(state: MiroirState, rec: MigrationProgress) -> None:
    unit = _unit(state, rec.plan_id, rec.unit)
    if unit is None:
        return
    unit.cursors.setdefault(rec.index, {})[rec.target] = rec.cursor
    unit.copied += rec.copied
    if unit.status == "pending":
        unit.status = "copying"


class MigrationSwitched(JournalRecord, tag="migration_switched"):
    """The unit's new owners answer reads from now on."""

    plan_id: int
    unit: str


@applies(MigrationSwitched)
def _migration_switched(state: MiroirState, rec: MigrationSwitched) -> None:
    unit = _unit(state, rec.plan_id, rec.unit)
    if unit is not None and unit.status in ("pending", "copying"):
        unit.status = "switched"


class MigrationUnitDone(JournalRecord, tag="migration_unit_done"):
    """The copies of nodes that no longer own the unit's shard are deleted."""

    plan_id: int
    unit: str


@applies(MigrationUnitDone)
def _migration_unit_done(state: MiroirState, rec: MigrationUnitDone) -> None:
    unit = _unit(state, rec.plan_id, rec.unit)
    if unit is not None:
        unit.status = "done"


class MigrationDone(JournalRecord, tag="migration_done"):
    """The plan is complete: its new membership becomes the committed one."""

    plan_id: int
    summary: dict[str, Any] | None = None


@applies(MigrationDone)
def _migration_done(state: MiroirState, rec: MigrationDone) -> None:
    plan = state.rebalance.plan
    if plan is None or plan.id != rec.plan_id:
        return
    state.rebalance.members = {g: list(ids) for g, ids in plan.new_groups.items() if ids}
    if plan.new_tables:
        state.rebalance.tables = {k: [list(o) for o in t] for k, t in plan.new_tables.items()}
    state.rebalance.plan = None
    state.rebalance.last = rec.summary


class MembershipCommitted(JournalRecord, tag="membership_committed"):
    """Pins the owning membership (before the first node state change at run time)."""

    members: dict[str, list[str]]


@applies(MembershipCommitted)
def _membership_committed(state: MiroirState, rec: MembershipCommitted) -> None:
    state.rebalance.members = {g: list(ids) for g, ids in rec.members.items() if ids}


class RebalancePaused(JournalRecord, tag="rebalance_paused"):
    paused: bool


@applies(RebalancePaused)
def _rebalance_paused(state: MiroirState, rec: RebalancePaused) -> None:
    state.rebalance.paused = rec.paused


# --- repair of nodes that missed writes (engine/handoff.py, engine/refill.py) ------------


class NodeRequest(msgspec.Struct, kw_only=True):
    """One node request of the write path, exactly as it is (or would have been) sent:
    documents already carry `_miroir_shard`, params carry `primaryKey`."""

    index: str
    method: str
    path: str
    params: dict[str, str] | None = None
    body: Any = None


class Hint(msgspec.Struct, kw_only=True):
    """A node request that could not be delivered (hinted handoff), in backlog order."""

    seq: int
    request: NodeRequest
    size: int = 0  # encoded bytes, counted against `health.max_backlog_bytes`


class NodeRepair(msgspec.Struct, kw_only=True):
    """What one node must receive before it may serve reads again.

    `hints`: requests it missed, replayed in `seq` order. `refill`: its copy is lost (disk
    lost, or backlog over the bound): every shard it holds is copied from a healthy owner;
    `refilled` lists the indexes already copied and reconciled in the current refill.
    """

    hints: list[Hint] = msgspec.field(default_factory=list)
    next_seq: int = 1
    bytes: int = 0
    refill: bool = False
    refill_reason: str | None = None
    refilled: list[str] = msgspec.field(default_factory=list)
    replayed: int = 0  # hints delivered since the journal started (operators' counter)
    refills: int = 0  # refills completed


def _repair(state: MiroirState, node: str) -> NodeRepair:
    rep = state.repairs.get(node)
    if rep is None:
        rep = state.repairs[node] = NodeRepair()
    return rep


class HintsAdded(JournalRecord, tag="hints_added"):
    """Requests appended to a node's backlog; seq numbers are assigned by the handler."""

    node: str
    requests: list[NodeRequest]
    sizes: list[int] = msgspec.field(default_factory=list)


@applies(HintsAdded)
def _hints_added(state: MiroirState, rec: HintsAdded) -> None:
    rep = _repair(state, rec.node)
    for i, req in enumerate(rec.requests):
        size = rec.sizes[i] if i < len(rec.sizes) else 0
        rep.hints.append(Hint(seq=rep.next_seq, request=req, size=size))
        rep.next_seq += 1
        rep.bytes += size


class HintsReplayed(JournalRecord, tag="hints_replayed"):
    """The node accepted every hint up to `through` (seq), in order."""

    node: str
    through: int


@applies(HintsReplayed)
def _hints_replayed(state: MiroirState, rec: HintsReplayed) -> None:
    rep = state.repairs.get(rec.node)
    if rep is None:
        return
    kept = [h for h in rep.hints if h.seq > rec.through]
    rep.replayed += len(rep.hints) - len(kept)
    rep.hints = kept
    rep.bytes = sum(h.size for h in kept)


class RefillStarted(JournalRecord, tag="refill_started"):
    """The node's copy is to be rebuilt from healthy owners; its backlog is dropped."""

    node: str
    reason: str


@applies(RefillStarted)
def _refill_started(state: MiroirState, rec: RefillStarted) -> None:
    rep = _repair(state, rec.node)
    rep.hints = []
    rep.bytes = 0
    rep.refill = True
    rep.refill_reason = rec.reason
    rep.refilled = []
    # A refill copies what the peers hold, maybe still under parent tags: a reshard that
    # is splitting re-tags the node again once it is readable (engine/reshard.py).
    for r in state.reshards.values():
        if r.phase == "splitting":
            r.retagged = [k for k in r.retagged if k.rsplit(":", 1)[0] != rec.node]


class RefillIndexDone(JournalRecord, tag="refill_index_done"):
    """Index `index` is copied and reconciled on the node; writes reach it again."""

    node: str
    index: str


@applies(RefillIndexDone)
def _refill_index_done(state: MiroirState, rec: RefillIndexDone) -> None:
    rep = state.repairs.get(rec.node)
    if rep is not None and rep.refill and rec.index not in rep.refilled:
        rep.refilled.append(rec.index)


class RefillDone(JournalRecord, tag="refill_done"):
    node: str


@applies(RefillDone)
def _refill_done(state: MiroirState, rec: RefillDone) -> None:
    rep = state.repairs.get(rec.node)
    if rep is not None and rep.refill:
        rep.refill = False
        rep.refill_reason = None
        rep.refilled = []
        rep.refills += 1


class IndexFieldsSeen(JournalRecord, tag="index_fields_seen"):
    """Attributes a batch of `uid` brings that the index had not seen (appended in order)."""

    uid: str
    fields: list[str]


@applies(IndexFieldsSeen)
def _index_fields_seen(state: MiroirState, rec: IndexFieldsSeen) -> None:
    if rec.uid not in state.indexes:
        return
    seen = state.index_fields.setdefault(rec.uid, [])
    known = set(seen)
    seen.extend(f for f in dict.fromkeys(rec.fields) if f not in known)


class KeyPut(JournalRecord, tag="key_put"):
    """An API key created, or its name/description patched (the whole key)."""

    key: ApiKey


@applies(KeyPut)
def _key_put(state: MiroirState, rec: KeyPut) -> None:
    state.keys[rec.key.uid] = rec.key


class KeyDeleted(JournalRecord, tag="key_deleted"):
    uid: str


@applies(KeyDeleted)
def _key_deleted(state: MiroirState, rec: KeyDeleted) -> None:
    state.keys.pop(rec.uid, None)


class TaskCounterRaised(JournalRecord, tag="task_counter_raised"):
    """Recovery (`miroir serve --recover`): task uids continue from `floor` at least, past
    every uid a client may hold from before the journal was damaged (engine/recovery.py)."""

    floor: int


@applies(TaskCounterRaised)
def _task_counter_raised(state: MiroirState, rec: TaskCounterRaised) -> None:
    state.next_task_uid = max(state.next_task_uid, rec.floor)


class ExperimentalFeaturesSet(JournalRecord, tag="experimental_features_set"):
    """Flags a `PATCH /experimental-features` set, once every node took them."""

    features: dict[str, bool]


@applies(ExperimentalFeaturesSet)
def _experimental_features_set(state: MiroirState, rec: ExperimentalFeaturesSet) -> None:
    state.experimental_features.update(rec.features)


class DynamicSearchRulePut(JournalRecord, tag="dynamic_search_rule_put"):
    """A rule created or updated by its `dsrUpdate` task (the whole rule after the update)."""

    rule: dict[str, Any]


@applies(DynamicSearchRulePut)
def _dynamic_search_rule_put(state: MiroirState, rec: DynamicSearchRulePut) -> None:
    state.dynamic_search_rules[rec.rule["uid"]] = rec.rule


class DynamicSearchRuleDeleted(JournalRecord, tag="dynamic_search_rule_deleted"):
    """A rule deleted (`dsrUpdate` deletion), or every rule (`dsrClear`: `uid` None)."""

    uid: str | None = None


@applies(DynamicSearchRuleDeleted)
def _dynamic_search_rule_deleted(state: MiroirState, rec: DynamicSearchRuleDeleted) -> None:
    if rec.uid is None:
        state.dynamic_search_rules.clear()
    else:
        state.dynamic_search_rules.pop(rec.uid, None)


# --- resharding (engine/reshard.py) ------------------------------------------------------


class ReshardStarted(JournalRecord, tag="reshard_started"):
    """The index switches to `meta` (S2 shards, placement 2, its own table) at once."""

    reshard: Reshard
    meta: IndexMeta


@applies(ReshardStarted)
def _reshard_started(state: MiroirState, rec: ReshardStarted) -> None:
    if rec.meta.uid not in state.indexes:
        return
    state.indexes[rec.meta.uid] = rec.meta
    state.reshards[rec.meta.uid] = rec.reshard


class ReshardRetagged(JournalRecord, tag="reshard_retagged"):
    """Every document of `parent` on `node` carries its tag under the new shard count."""

    uid: str
    node: str
    parent: int
    docs: int = 0


@applies(ReshardRetagged)
def _reshard_retagged(state: MiroirState, rec: ReshardRetagged) -> None:
    r = state.reshards.get(rec.uid)
    key = f"{rec.node}:{rec.parent}"
    if r is not None and key not in r.retagged:
        r.retagged.append(key)
        r.retagged_docs += rec.docs


class ReshardSplit(JournalRecord, tag="reshard_split"):
    """Re-tagging is complete: reads pin shards again; moves begin (dual writes on)."""

    uid: str


@applies(ReshardSplit)
def _reshard_split(state: MiroirState, rec: ReshardSplit) -> None:
    r = state.reshards.get(rec.uid)
    meta = state.indexes.get(rec.uid)
    if r is None or meta is None:
        return
    r.phase = "moving"
    meta.split_from = 0


class ReshardSwitched(JournalRecord, tag="reshard_switched"):
    """Shard `shard` of `group` is copied to its final owners: they answer from now on."""

    uid: str
    group: str
    shard: int
    copied: int = 0


@applies(ReshardSwitched)
def _reshard_switched(state: MiroirState, rec: ReshardSwitched) -> None:
    r = state.reshards.get(rec.uid)
    if r is None or rec.group not in r.final or not 0 <= rec.shard < r.shards:
        return
    done = r.switched.setdefault(rec.group, [])
    if rec.shard not in done:
        done.append(rec.shard)
        r.owners[rec.group][rec.shard] = list(r.final[rec.group][rec.shard])
        r.copied += rec.copied


class ReshardDropped(JournalRecord, tag="reshard_dropped"):
    """The copies of `shard` on nodes of `group` that lost it are deleted."""

    uid: str
    group: str
    shard: int


@applies(ReshardDropped)
def _reshard_dropped(state: MiroirState, rec: ReshardDropped) -> None:
    r = state.reshards.get(rec.uid)
    if r is not None:
        done = r.dropped.setdefault(rec.group, [])
        if rec.shard not in done:
            done.append(rec.shard)


class ReshardDone(JournalRecord, tag="reshard_done"):
    """The index uses the shared placement-2 table of its S2, which is `final` from now on."""

    uid: str


@applies(ReshardDone)
def _reshard_done(state: MiroirState, rec: ReshardDone) -> None:
    r = state.reshards.pop(rec.uid, None)
    meta = state.indexes.get(rec.uid)
    if r is None or meta is None:
        return
    meta.own_table = False
    meta.split_from = 0
    for group, table in r.final.items():
        state.rebalance.tables[table_key(r.shards, group)] = [list(o) for o in table]


# --- write-ahead intents (engine/intents.py) ---------------------------------------------


class WriteIntent(msgspec.Struct, kw_only=True):
    """A write batch journaled before any of it is sent to its owners, so that a Miroir
    killed under it can make every copy agree afterwards (engine/intents.py).

    `task`: the task the write becomes (its uid reserved, node tasks not known yet).
    Each owner's request is `request` with, when `items` is set, the body made of the
    items of the shards it holds (`owners`), in batch order; otherwise `request` as is
    (a single delete, a delete by filter, a delete of all documents). Each document is
    stored once however many owners it has. `primary_key`: the key this write sets on
    an index that had none (journaled by the write after the fan-out).
    """

    task: TaskRecord
    request: NodeRequest
    owners: dict[str, list[int]]
    items: list[tuple[int, Any]] | None = None
    primary_key: str | None = None


class IntentJournaled(JournalRecord, tag="intent_journaled"):
    # Applied without the journal's decoded copy (store/journal.py): it holds a whole
    # batch, which the write path never changes once it is routed.
    APPLY_ORIGINAL = True

    intent: WriteIntent


@applies(IntentJournaled)
def _intent_journaled(state: MiroirState, rec: IntentJournaled) -> None:
    state.intents[rec.intent.task.uid] = rec.intent
    # The uid is reserved from now on, across restarts too.
    state.next_task_uid = max(state.next_task_uid, rec.intent.task.uid + 1)


class IntentSettled(JournalRecord, tag="intent_settled"):
    """The write took effect nowhere (refused for certain) or was settled otherwise;
    a write that took effect is settled by its `TaskEnqueued` instead."""

    uid: int


@applies(IntentSettled)
def _intent_settled(state: MiroirState, rec: IntentSettled) -> None:
    state.intents.pop(rec.uid, None)


class DocSeqReserved(JournalRecord, tag="doc_seq_reserved"):
    """Document sequence numbers below `top` reserved by the write path (engine/docseq.py):
    one record per range, not per write."""

    top: int


@applies(DocSeqReserved)
def _doc_seq_reserved(state: MiroirState, rec: DocSeqReserved) -> None:
    state.doc_seq_top = max(state.doc_seq_top, rec.top)


# Built from the registry so that adding a record type is one class and one handler.
# Keep this line after every handler.
# --- webhooks (engine/webhooks.py) ------------------------------------------------------


class Webhook(msgspec.Struct, kw_only=True):
    """A webhook as 1.50 keeps it: where to POST finished tasks, with which headers."""

    uuid: str
    url: str
    headers: dict[str, str] = msgspec.field(default_factory=dict)


class WebhookDelivery(msgspec.Struct, kw_only=True):
    """Finished tasks one webhook has not acknowledged yet, sent in `seq` order."""

    seq: int
    webhook: str  # uuid
    task_uids: list[int]


class WebhookPut(JournalRecord, tag="webhook_put"):
    webhook: Webhook


class WebhookDeleted(JournalRecord, tag="webhook_deleted"):
    uuid: str


class WebhookDeliveriesQueued(JournalRecord, tag="webhook_deliveries_queued"):
    """One delivery per webhook of the tasks that just finished (seq numbers assigned on
    apply), and where the look for finished tasks stands now."""

    webhooks: list[str]
    task_uids: list[int]
    cursor: int | None = None
    watching: list[int] = msgspec.field(default_factory=list)


class WebhookDelivered(JournalRecord, tag="webhook_delivered"):
    """Acknowledged by the receiver, or given up after the last retry."""

    seq: int


@applies(WebhookPut)
def _webhook_put(state: MiroirState, rec: WebhookPut) -> None:
    if not state.webhooks:  # the first webhook: tasks finished before it are not its business
        state.webhook_cursor = state.next_task_uid
        state.webhook_watching = sorted(state.open_tasks)
    state.webhooks[rec.webhook.uuid] = rec.webhook


@applies(WebhookDeleted)
def _webhook_deleted(state: MiroirState, rec: WebhookDeleted) -> None:
    state.webhooks.pop(rec.uuid, None)
    for seq in [s for s, d in state.webhook_outbox.items() if d.webhook == rec.uuid]:
        del state.webhook_outbox[seq]


@applies(WebhookDeliveriesQueued)
def _webhook_deliveries_queued(state: MiroirState, rec: WebhookDeliveriesQueued) -> None:
    for uuid in rec.webhooks:
        if uuid in state.webhooks:
            seq = state.webhook_next_seq
            state.webhook_next_seq += 1
            state.webhook_outbox[seq] = WebhookDelivery(seq=seq, webhook=uuid, task_uids=list(rec.task_uids))
    if rec.cursor is not None:
        state.webhook_cursor = rec.cursor
        state.webhook_watching = list(rec.watching)


@applies(WebhookDelivered)
def _webhook_delivered(state: MiroirState, rec: WebhookDelivered) -> None:
    state.webhook_outbox.pop(rec.seq, None)


Record = Union[tuple(_HANDLERS)]  # type: ignore[valid-type]  # noqa: UP007 - built at import time, no `|` form

