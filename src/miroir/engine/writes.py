"""The write path: documents routed to the owners of their shard (design §4).

Add/replace (POST) and partial update (PUT), delete one, delete by ids: the batch is
decoded, its primary key decided by Miroir, and EVERY document validated before any node
is touched (core/batches.py). Then, under the index's lock (so that every node receives
the index's batches in one order), one request per target node, all in parallel, each
under a deadline. A write takes effect or is refused, never both (`_send`): the write
consistency rule (`cluster.write_consistency`: `one`, `majority`, `all`; design §4.5) is
checked against the owners that can take the write BEFORE anything is sent (503
`miroir_no_quorum`, nothing sent, nothing journaled, when some shard cannot meet it);
once any owner took it, it is acknowledged, with hints journaled for the owners that
missed it and `X-Miroir-Degraded` naming them. The Miroir task is journaled with every
node task uid, and the shards of the write each covers, before the 202; the reconciler
folds the node tasks into its status.

Delete by filter and delete all are broadcast to every node, with the same rule over
all shards. Getting one document is a routed read to one owner (readable first).

Node failures (design §4.5, hinted handoff): each node's part is a `NodeRequest` (the
exact request, `_miroir_shard` injected). `Handoff.delivery` says whether to send it, or
to hint it (node down, held after coming back, or behind a backlog: no wait on a dead
node, and the node sees its operations in order), or to skip it (the node is refilled
for that index). A send that gets no answer becomes a hint too; every real call is
reported to the health table (passive health). Hints are journaled before the 202, so
that every copy converges; a refused write journals none. Hinted and skipped nodes are
not acks: they are named in `X-Miroir-Degraded`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

import msgspec
import structlog
import trio

from miroir.core import batches, reserved
from miroir.core.documents import decode_documents, documents_format, narrowed_documents, resolve_primary_key
from miroir.core.errors import MeiliError, index_not_found, invalid_index_uid, valid_index_uid
from miroir.core.filter import deletion_filter
from miroir.core.intents import make_intent
from miroir.core.model import (
    DocSeqReserved,
    IndexMeta,
    IndexPut,
    IntentJournaled,
    IntentSettled,
    NodeRequest,
    TaskRecord,
)
from miroir.core.placement import CURRENT_PLACEMENT, Layout
from miroir.core.routing import shard_for_key
from miroir.core.settings import RESERVED_PREFIX
from miroir.engine.cluster import Cluster
from miroir.engine.fields import prepare_batch_fields  # attributes seen
from miroir.engine.indexes import ensure_index, index_lock, now
from miroir.engine.tasks import DrivenTask
from miroir.net.node import NodeError, NodeUnavailable

log = structlog.get_logger("miroir.writes")

# Deadline of one node's part of a write. The node parses and queues the batch (up to
# `server.max_body_bytes`, split over the nodes), it does not index it before answering.
NODE_WRITE_TIMEOUT_S = 30.0
# Deadline of a routed read (one document) per owner tried.
NODE_READ_TIMEOUT_S = 5.0

class Sent(msgspec.Struct):
    """The nodes that took a write: its task (uid reserved by its intent, not journaled
    yet), node -> node task uid, node -> the write's shards it holds (what the task fold
    judges a lost node task by), X-Miroir-Degraded value."""

    task: TaskRecord
    node_tasks: dict[str, int]
    node_shards: dict[str, list[int]]
    degraded: str | None


class WriteResult(msgspec.Struct):
    task: TaskRecord
    degraded: str | None = None  # X-Miroir-Degraded value, when some owner missed the write


def _targets(cluster: Cluster, meta: IndexMeta, shards: Sequence[int]) -> dict[int, dict[str, list[str]]]:
    topo = cluster.topology
    return {s: topo.write_targets(meta.layout, s) for s in shards}


Spec = Callable[[str, list[Any]], NodeRequest]
TaskOf = Callable[[], TaskRecord]  # reserves the write's task uid


async def deliver(cluster: Cluster, node: str, req: NodeRequest, timeout_s: float = NODE_WRITE_TIMEOUT_S) -> Any:
    """Send one node request as recorded (also used to replay hints).

    Reports the outcome to the health table (passive health): no answer is a failure,
    any answer a success. Gives up as soon as the health table marks the node down (a
    hung node must not hold a write for the whole deadline; the request is hinted and
    replayed, which is harmless if the node did get it). Raises NodeUnavailable
    (deadline and "marked down" included) or NodeError.
    """
    client = cluster.fleet.get(node)
    if client is None:
        raise NodeUnavailable(node, "not in the fleet")
    start = trio.current_time()
    outcome: list[Any] = []
    with trio.move_on_after(timeout_s) as deadline:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_cancel_when_down, cluster, node, nursery.cancel_scope)
            try:
                outcome.append(
                    await client.call(req.method, req.path, params=req.params, json=req.body, timeout_s=timeout_s)
                )
            except (NodeUnavailable, NodeError) as exc:
                outcome.append(exc)
            nursery.cancel_scope.cancel()
    if not outcome:
        if deadline.cancelled_caught:
            reason = f"no answer within {timeout_s:g}s"
            cluster.health.report_failure(node, reason, timed_out=True)
            raise NodeUnavailable(node, reason)
        raise NodeUnavailable(node, "marked down while the request was in flight")
    result = outcome[0]
    if isinstance(result, NodeUnavailable):
        cluster.health.report_failure(node, result.reason, timed_out=result.reason.startswith("timeout"))
        raise result
    cluster.health.report_success(node, trio.current_time() - start)
    if isinstance(result, NodeError):
        raise result
    return result


async def _cancel_when_down(cluster: Cluster, node: str, scope: trio.CancelScope) -> None:
    await cluster.health.wait_for(lambda table: not table.is_available(node))
    scope.cancel()


def _never_sent(exc: NodeUnavailable) -> bool:
    """The request cannot have reached the node: the connection was never opened."""
    return "cannot connect to" in exc.reason or exc.reason == "not in the fleet"


def _refuse_unless_writable(
    cluster: Cluster, uid: str, targets: batches.Targets, ways: Mapping[str, str] | None = None
) -> None:
    """Raise 503 `miroir_no_quorum` when the owners that can take a write now (per the
    health table and the handoff service: `delivery` says "send") cannot meet the write
    consistency rule for some shard of `targets`. Asked before anything of the request
    is sent or journaled. `ways`: node -> delivery, when the caller has it."""
    if ways is None:
        nodes = {n for groups in targets.values() for owners in groups.values() for n in owners}
        ways = {n: cluster.handoff.delivery(n, uid) for n in nodes}
    sendable = {n for n, way in ways.items() if way == "send"}
    rule = cluster.config.cluster.write_consistency
    short = batches.unmet(list(targets), targets, sendable, cluster.topology.rf, rule)
    if short:
        log.warning("write.refused", index=uid, rule=rule, shards=short, unavailable=sorted(set(ways) - sendable))
        raise batches.no_quorum(short, rule)


async def _send(
    cluster: Cluster,
    meta: IndexMeta,
    routed: batches.Routed,
    spec: Spec,
    task: TaskOf,
    *,
    all_shards: bool = False,
    items: Sequence[tuple[int, Any]] | None = None,
    primary_key: str | None = None,
) -> Sent:
    """Deliver `spec(node, items)` to every node of the plan, under the write
    consistency rule (`cluster.write_consistency`, core/batches.py). Caller holds the
    index lock. A write takes effect or is refused, never both:

    1. Before anything is sent: a node that is down, held by the handoff service, or
       behind a backlog cannot take its part now (its part would be hinted), one being
       refilled skips it. When some shard's sendable owners cannot meet the rule, the
       whole request is refused (503 `miroir_no_quorum`): nothing sent, nothing journaled.
    2. Sent in parallel. Once any node took its part, the request takes effect: every
       node that did not answer (or answered 5xx) gets its part journaled as a hint
       before the 202, even a shard none of whose owners took it (the other shards'
       parts are applied already), and the missed owners are named in
       `X-Miroir-Degraded`. Only when no node took anything is the request refused,
       with nothing journaled (or with the nodes' common 4xx refusal).

    A node that took its part but whose answer was lost (deadline) counts as missed:
    its part is hinted and replayed, which is harmless (upserts and deletes replayed in
    order). When no node acknowledged anything but some node got the request and
    stopped answering (hung, SIGSTOP), it may apply it once it resumes: the write is
    then hinted to every owner, the hung one included, and acknowledged (degraded), so
    that every copy converges to it; a refusal there would leave the copies differing.
    Write-ahead intent (engine/intents.py): once the write may be sent, its task uid is
    reserved and its intent (`items`: the batch as (shard, item) pairs when each owner
    gets the items of its shards; `primary_key`: set by this write) journaled before any
    node sees it; a certain refusal settles it here, the caller's `enqueue_reserved`
    otherwise. Returns the nodes that took the write (`Sent`).
    """
    shards = list(range(meta.shards)) if all_shards else routed.shards
    targets = _targets(cluster, meta, shards)
    rule = cluster.config.cluster.write_consistency
    rf = cluster.topology.rf
    handoff = cluster.handoff
    ways = {node: handoff.delivery(node, meta.uid) for node in routed.items}
    _refuse_unless_writable(cluster, meta.uid, targets, ways)
    requests: dict[str, NodeRequest] = {}
    missed: dict[str, NodeRequest] = {}
    every = {node: spec(node, part) for node, part in routed.items.items()}
    for node, req in every.items():
        if ways[node] == "skip":
            continue  # the refill's reconciliation brings it
        (requests if ways[node] == "send" else missed)[node] = req
    held: dict[str, list[int]] = {n: [] for n in every}
    for shard in sorted(shards):
        for owners in targets[shard].values():
            for n in owners:
                if n in held:
                    held[n].append(shard)
    record = task()
    if every:
        await cluster.journal.append(IntentJournaled(intent=make_intent(record, every, held, items, primary_key)))

    acked: dict[str, int] = {}
    errors: dict[str, Exception] = {}

    async def one(node: str) -> None:
        try:
            body = await deliver(cluster, node, requests[node])
            acked[node] = int(body["taskUid"])
        except (NodeError, NodeUnavailable) as exc:
            errors[node] = exc
            if isinstance(exc, NodeUnavailable) or exc.status >= 500:
                missed[node] = requests[node]

    async with trio.open_nursery() as nursery:
        for node in requests:
            nursery.start_soon(one, node)

    for node, exc in sorted(errors.items()):
        log.warning("write.node_failed", index=meta.uid, node=node, error=str(exc))
    if not acked:
        refusals = [e for e in errors.values() if isinstance(e, NodeError) and 400 <= e.status < 500]
        if refusals and len(refusals) == len(errors):
            # Every node refused the request itself: that is the answer.
            first = errors[sorted(errors)[0]]
            assert isinstance(first, NodeError)
            await cluster.journal.append(IntentSettled(uid=record.uid))  # nothing applied
            raise MeiliError(first.code, first.message, status=first.status, type=first.type)
        # A node that answered (an error) did not take it; one that never got a
        # connection did not see it: nothing was written, the refusal is certain.
        if all(isinstance(e, NodeError) or _never_sent(e) for e in errors.values()):
            await cluster.journal.append(IntentSettled(uid=record.uid))
            raise batches.no_owner_took(shards)
        # Some node got the request and stopped answering (hung, deadline): it may apply
        # it once it resumes, and no other owner would. A refusal would leave the copies
        # differing for good, so the outcome is made certain instead: every owner that
        # did not acknowledge (the hung one too: a replay is harmless) gets it as a hint,
        # journaled before the 202, and the write takes effect as any degraded write.
        log.warning("write.outcome_uncertain", index=meta.uid, hinted=sorted(missed))
    if missed:
        await handoff.add_hints(missed)
    verdict = batches.assess(shards, targets, set(acked), rf, rule)
    if not verdict.ok:
        # Taken by some owner, so it takes effect (hinted above): acknowledged, degraded.
        log.warning("write.consistency_missed", index=meta.uid, rule=rule, shards=verdict.lost, acked=sorted(acked))
    degraded = batches.degraded_header(verdict.degraded) if verdict.degraded else None
    node_shards = {n: held[n] for n in acked}
    return Sent(task=record, node_tasks=acked, node_shards=node_shards, degraded=degraded)


def _task_of(cluster: Cluster, uid: str, kind: str, details: dict, custom_metadata: str | None) -> TaskOf:
    return lambda: cluster.tasks.reserve(index_uid=uid, type=kind, details=details, custom_metadata=custom_metadata)


def _enqueue(cluster: Cluster, sent: Sent) -> Callable[[], Awaitable[TaskRecord]]:
    """Queue the task of a sent write (it settles its intent); the caller awaits what
    this returns once it released the index lock (TaskService.enqueue_reserved)."""
    return cluster.tasks.enqueue_reserved(sent.task, sent.node_tasks, sent.node_shards)


async def _index_or_fail(cluster: Cluster, uid: str) -> IndexMeta | None:
    """The index (None if missing), once the driven tasks enqueued before this write on
    it (settings, deletion, ...) ran: the nodes then see the index's tasks in order."""
    if not valid_index_uid(uid):
        raise invalid_index_uid(uid)
    await cluster.tasks.driven_first(uid)
    return cluster.state.indexes.get(uid)


async def _failed_task(
    cluster: Cluster, uid: str, type: str, details: dict, error: MeiliError, custom_metadata: str | None = None
) -> WriteResult:
    """A task that fails as Meilisearch's would (e.g. deleting from a missing index)."""

    async def driver(handle: DrivenTask) -> None:
        await handle.set_processing()
        await handle.finish("failed", error=error, details=_failed_details(details))

    task = await cluster.tasks.enqueue_driven(
        index_uid=uid, type=type, details=details, driver=driver, custom_metadata=custom_metadata
    )
    return WriteResult(task=task)


def _failed_details(details: dict) -> dict:
    out = dict(details)
    for key in ("deletedDocuments", "indexedDocuments"):
        if key in out:
            out[key] = 0
    return out


# --- add / replace / update ------------------------------------------------------------


def decode_batch(body: bytes, content_type: str | None, csv_delimiter: str | None) -> list[dict]:
    return decode_batch_flat(body, content_type, csv_delimiter)[0]


def decode_batch_flat(body: bytes, content_type: str | None, csv_delimiter: str | None) -> tuple[list[dict], bool]:
    """(documents, flat): `flat` is True when no document holds an object at any depth.

    CSV cells are scalars. JSON and NDJSON are first decoded with a type that admits
    only scalars and lists of scalars as values; a batch that does not fit (or is not
    valid: the error comes from the generic decode) is decoded again, generically.
    """
    fmt = documents_format(content_type, csv_delimiter)
    if fmt == "csv":
        return decode_documents(body, fmt, csv_delimiter=csv_delimiter if csv_delimiter is not None else ","), True
    try:
        # One decode that also proves the batch flat (checked in C by msgspec); the same
        # dicts, lists and scalars as an untyped decode.
        if fmt == "json":
            value = _flat_json.decode(body)
            docs = [value] if isinstance(value, dict) else value
        else:
            docs = _flat_ndjson.decode_lines(body)
        if docs:
            return narrowed_documents(docs, body, fmt), True
    except msgspec.DecodeError:  # ValidationError included: not flat, or not valid at all
        pass
    return decode_documents(body, fmt), False


_Scalar = str | int | float | bool | None
_FlatDoc = dict[str, _Scalar | list[_Scalar]]
_flat_json = msgspec.json.Decoder(list[_FlatDoc] | _FlatDoc)
_flat_ndjson = msgspec.json.Decoder(_FlatDoc)


async def add_documents(
    cluster: Cluster,
    uid: str,
    docs: list[dict],
    *,
    primary_key: str | None,
    partial: bool,
    flat: bool = False,
    custom_metadata: str | None = None,
    skip_creation: bool = False,
) -> WriteResult:
    """Add or replace (`partial=False`, POST) or update (`partial=True`, PUT) documents.

    `docs` is consumed: once validated and routed, each document gets `_miroir_shard`
    in place (no copy of the batch is made). `flat` (see `decode_batch_flat`) promises
    that no document holds an object at any depth. `skip_creation` (1.50's
    `skipCreation`) is forwarded: each node skips the documents it does not hold, and
    the hint of a node that missed the write carries it too (it is part of the request).
    """
    meta = await _index_or_fail(cluster, uid)
    # Everything that can reject the batch runs before any node is touched, the index
    # creation included.
    details = {"receivedDocuments": len(docs), "indexedDocuments": None}
    kind = "documentAdditionOrUpdate"
    shards = meta.shards if meta is not None else cluster.config.cluster.shards
    try:
        pk = resolve_primary_key(meta.primary_key if meta else None, primary_key, docs, uid) if docs else None
        doc_shards, sources = batches.plan_documents(docs, pk, shards, flat=flat) if pk is not None else ([], docs)
    except MeiliError as err:
        if err.code not in TASK_TIME_ERRORS:
            raise
        return await _failed_batch(cluster, uid, meta, details, err, custom_metadata)
    if meta is None and doc_shards:
        # A write that would be refused creates no index either.
        _refuse_unless_writable(
            cluster, uid, {s: cluster.topology.write_targets(Layout(shards, CURRENT_PLACEMENT), s) for s in sorted(set(doc_shards))}
        )
    if meta is None:
        meta = await ensure_index(cluster, uid)
    async with index_lock(cluster, uid):
        meta = cluster.state.indexes.get(uid)
        if meta is None:  # deleted meanwhile
            raise index_not_found(uid)
        replan = False
        try:
            if pk is not None and meta.primary_key not in (None, pk):
                # Another batch set the key meanwhile: decide again against it (and
                # validate and route by it).
                pk = resolve_primary_key(meta.primary_key, primary_key, docs, uid)
                replan = True
            if pk is not None and (replan or meta.shards != shards):
                doc_shards, sources = batches.plan_documents(docs, pk, meta.shards, flat=flat)
        except MeiliError as err:
            if err.code not in TASK_TIME_ERRORS:
                raise
            return await _failed_task(cluster, uid, kind, details, err, custom_metadata)
        if not doc_shards:
            if primary_key is not None and meta.primary_key is None:
                # 1.50 sets the given key even from an empty batch (the nodes get it
                # with the next batch, which names it).
                await cluster.journal.append(
                    IndexPut(meta=msgspec.structs.replace(meta, primary_key=primary_key, updated_at=now(cluster)))
                )
            task = await cluster.tasks.enqueue(
                index_uid=uid, type=kind, node_tasks={}, details=details, custom_metadata=custom_metadata
            )
            return WriteResult(task=task)
        # Refused before anything is journaled (the attributes seen included).
        _refuse_unless_writable(cluster, uid, _targets(cluster, meta, sorted(set(doc_shards))))
        await prepare_batch_fields(cluster, uid, sources)  # before the injection
        del sources
        routed = batches.inject_and_route(docs, doc_shards, _targets(cluster, meta, sorted(set(doc_shards))))
        # Insertion order (core/reserved.py): the documents are the routed ones, in place.
        seq_field = reserved.UPDATE_SEQ_FIELD if partial else reserved.SEQ_FIELD
        for seq, doc in enumerate(docs, await take_doc_seqs(cluster, len(docs))):
            doc[seq_field] = seq
        method = "PUT" if partial else "POST"
        params = {"primaryKey": pk, **({"skipCreation": "true"} if skip_creation else {})}

        def request(node: str, items: list[dict]) -> NodeRequest:
            return NodeRequest(
                index=uid, method=method, path=f"/indexes/{uid}/documents", params=params, body=items
            )

        new_key = pk if meta.primary_key is None else None
        # Shielded from the intent to the task (engine/intents.py): a client that hangs
        # up must not leave the write applied by some owners and journaled nowhere.
        with trio.CancelScope(shield=True):
            sent = await _send(
                cluster, meta, routed, request, _task_of(cluster, uid, kind, details, custom_metadata),
                items=list(zip(doc_shards, docs)), primary_key=new_key,
            )
            if new_key is not None:
                await cluster.journal.append(
                    IndexPut(meta=msgspec.structs.replace(meta, primary_key=new_key, updated_at=now(cluster)))
                )
            enqueued = _enqueue(cluster, sent)
    with trio.CancelScope(shield=True):
        task = await enqueued()  # durable: the 202 may go
    return WriteResult(task=task, degraded=sent.degraded)


# What 1.50 checks when the batch is processed, not when it is received: the write is
# accepted (202) and its task fails with the error; the whole batch fails, so no node is
# sent any of it.
TASK_TIME_ERRORS = frozenset({
    "invalid_document_id",
    "missing_document_id",
    "index_primary_key_no_candidate_found",
    "index_primary_key_multiple_candidates_found",
    "index_primary_key_already_exists",
})


async def _failed_batch(
    cluster: Cluster, uid: str, meta: IndexMeta | None, details: dict, error: MeiliError, custom_metadata: str | None
) -> WriteResult:
    """A batch refused by 1.50's task-time checks: its task fails with the error. 1.50
    creates a missing index before it reads the documents, so the index exists after
    (without a primary key: the batch that would have set it failed)."""
    if meta is None:
        await ensure_index(cluster, uid)
    return await _failed_task(cluster, uid, "documentAdditionOrUpdate", details, error, custom_metadata)


# Sequence numbers reserved by one journal record: writes journal nothing more until
# the range is used up; a restart skips what was left of it (gaps keep the order).
DOC_SEQ_RANGE = 1 << 16


async def take_doc_seqs(cluster: Cluster, n: int) -> int:
    """The first of `n` consecutive document sequence numbers, durably reserved (a
    number is never handed out twice, a restart included).

    After a start the numbers continue from the journal's reservation, or from the
    clock in microseconds when that is higher: a journal rebuilt by `--recover` has no
    reservation, and the documents on the nodes keep their numbers (below the clock
    unless more than a million documents a second were written on average)."""
    first = cluster.doc_seq_next
    if first is None:
        first = max(cluster.state.doc_seq_top, time.time_ns() // 1000)
    cluster.doc_seq_next = first + n  # before any await: concurrent writes take the next ones
    if first + n > cluster.state.doc_seq_top:
        await cluster.journal.append(DocSeqReserved(top=first + n + DOC_SEQ_RANGE))
    return first


# --- deletions ------------------------------------------------------------------------------


def _deletion_details(provided: int | None, original_filter: Any = None, with_filter: bool = False) -> dict:
    details: dict[str, Any] = {}
    if provided is not None:
        details["providedIds"] = provided
    details["deletedDocuments"] = None
    if with_filter:
        details["originalFilter"] = original_filter
    return details


async def delete_ids(
    cluster: Cluster, uid: str, ids: list[Any], *, single: bool = False, custom_metadata: str | None = None
) -> WriteResult:
    """Delete one document (`single`) or a batch of ids, each routed to its shard's owners."""
    details = _deletion_details(len(ids), with_filter=True)  # 1.50 shows `originalFilter: null`
    meta = await _index_or_fail(cluster, uid)
    if meta is None:
        return await _failed_task(cluster, uid, "documentDeletion", details, index_not_found(uid), custom_metadata)
    async with index_lock(cluster, uid):
        meta = cluster.state.indexes.get(uid) or meta
        pairs = batches.shard_ids(ids, meta.shards)
        if not pairs:
            task = await cluster.tasks.enqueue(
                index_uid=uid, type="documentDeletion", node_tasks={}, details=details, custom_metadata=custom_metadata
            )
            return WriteResult(task=task)
        routed = batches.route(pairs, _targets(cluster, meta, sorted({s for s, _ in pairs})))

        def request(node: str, items: list[Any]) -> NodeRequest:
            if single:
                return NodeRequest(
                    index=uid, method="DELETE", path=f"/indexes/{uid}/documents/{quote(str(items[0]), safe='')}"
                )
            return NodeRequest(index=uid, method="POST", path=f"/indexes/{uid}/documents/delete-batch", body=items)

        with trio.CancelScope(shield=True):  # as in add_documents
            sent = await _send(
                cluster, meta, routed, request, _task_of(cluster, uid, "documentDeletion", details, custom_metadata),
                items=None if single else pairs,
            )
            enqueued = _enqueue(cluster, sent)
    with trio.CancelScope(shield=True):
        task = await enqueued()  # durable: the 202 may go
    return WriteResult(task=task, degraded=sent.degraded)


async def _broadcast_write(
    cluster: Cluster, uid: str, details: dict, request: Spec, custom_metadata: str | None = None
) -> WriteResult:
    meta = await _index_or_fail(cluster, uid)
    if meta is None:
        return await _failed_task(cluster, uid, "documentDeletion", details, index_not_found(uid), custom_metadata)
    async with index_lock(cluster, uid):
        meta = cluster.state.indexes.get(uid) or meta
        routed = batches.Routed(items={n: [] for n in cluster.topology.all_nodes()}, shards=list(range(meta.shards)))
        with trio.CancelScope(shield=True):  # as in add_documents
            sent = await _send(
                cluster, meta, routed, request, _task_of(cluster, uid, "documentDeletion", details, custom_metadata),
                all_shards=True,
            )
            enqueued = _enqueue(cluster, sent)
    with trio.CancelScope(shield=True):
        task = await enqueued()  # durable: the 202 may go
    return WriteResult(task=task, degraded=sent.degraded)


async def delete_by_filter(
    cluster: Cluster, uid: str, body: Mapping[str, Any], custom_metadata: str | None = None
) -> WriteResult:
    """`POST /indexes/{uid}/documents/delete` {filter}: broadcast to every node."""
    if "filter" not in body or body["filter"] is None:
        raise MeiliError("missing_document_filter", "Missing field `filter`")
    unknown = [k for k in body if k != "filter"]
    if unknown:
        raise MeiliError("bad_request", f"Unknown field `{unknown[0]}`: expected one of `filter`")
    filt = body["filter"]
    deletion_filter(filt, cluster.state.experimental_features)  # its syntax now, as 1.50 (the nodes check its attributes)
    # Meilisearch reports the filter as the client sent it, JSON-encoded (a string
    # filter in quotes, an array as compact JSON).
    details = _deletion_details(0, msgspec.json.encode(filt).decode(), with_filter=True)
    refused = reserved.delete_filter_error(uid, filt, cluster.state)  # `_miroir_shard = 1` is a whole shard
    if refused is not None:
        return await _failed_task(cluster, uid, "documentDeletion", details, refused, custom_metadata)

    def request(node: str, _items: list) -> NodeRequest:
        return NodeRequest(index=uid, method="POST", path=f"/indexes/{uid}/documents/delete", body={"filter": filt})

    return await _broadcast_write(cluster, uid, details, request, custom_metadata)


async def delete_all(cluster: Cluster, uid: str, custom_metadata: str | None = None) -> WriteResult:
    """`DELETE /indexes/{uid}/documents`: broadcast to every node."""
    details = _deletion_details(None)

    def request(node: str, _items: list) -> NodeRequest:
        return NodeRequest(index=uid, method="DELETE", path=f"/indexes/{uid}/documents")

    return await _broadcast_write(cluster, uid, details, request, custom_metadata)


# --- routed read ------------------------------------------------------------------------------


def strip_reserved(doc: dict) -> dict:
    return {k: v for k, v in doc.items() if not k.startswith(RESERVED_PREFIX)}


async def get_document(
    cluster: Cluster, uid: str, doc_id: str, fields: str | None, retrieve_vectors: str | None = None
) -> dict:
    """`GET /indexes/{uid}/documents/{id}` from one owner of the id's shard.

    Owners are tried in turn (replicas of the shard's group first, then other groups)
    when one does not answer; a node's answer (document or document_not_found) is final.
    """
    meta = cluster.state.indexes.get(uid)
    if meta is None:
        raise index_not_found(uid)
    shard = shard_for_key(doc_id, meta.shards)
    targets = cluster.topology.write_targets(meta.layout, shard)
    rot = next(cluster.read_rotation)  # rotates routed reads over the replicas of a shard
    groups = list(targets)
    candidates: list[str] = []
    for i in range(len(groups)):
        owners = targets[groups[(rot + i) % len(groups)]]
        candidates += [owners[(rot + j) % len(owners)] for j in range(len(owners))]
    # Nodes being repaired (backlog, refill) answer only when no readable owner is left.
    readable = cluster.healthy_nodes()
    candidates.sort(key=lambda n: n not in readable)
    params = {"fields": fields} if fields is not None else {}
    if retrieve_vectors is not None:  # the node validates it; `_vectors` come back as stored
        params["retrieveVectors"] = retrieve_vectors
    last: NodeUnavailable | None = None
    for node in candidates:
        client = cluster.fleet.get(node)
        if client is None:
            continue
        try:
            with trio.fail_after(NODE_READ_TIMEOUT_S):
                doc = await client.call("GET", f"/indexes/{uid}/documents/{quote(doc_id, safe='')}", params=params or None)
        except NodeUnavailable as exc:
            last = exc
            continue
        except trio.TooSlowError:
            last = NodeUnavailable(node, f"no answer within {NODE_READ_TIMEOUT_S:g}s")
            continue
        except NodeError as exc:
            raise MeiliError(exc.code, exc.message, status=exc.status, type=exc.type) from None
        return strip_reserved(doc)
    if last is not None:
        raise MeiliError("miroir_shard_unavailable", f"No owner of shard {shard} answered: {last}.")
    raise MeiliError("miroir_shard_unavailable", f"Shard {shard} has no owner.")
