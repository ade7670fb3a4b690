"""The write path: documents routed to the owners of their shard (design §4).

Add/replace (POST) and partial update (PUT), delete one, delete by ids: the batch is
decoded, its primary key decided by Miroir, and EVERY document validated before any node
is touched (core/batches.py). Then, under the index's lock (so that every node receives
the index's batches in one order), one request per target node, all in parallel, each
under a deadline. Quorum per shard per group (floor(RF/2)+1 owner acks); the write
succeeds when every shard of the batch has a group at quorum, else 503
`miroir_no_quorum` and nothing is journaled. Groups short of quorum are named in
`X-Miroir-Degraded`. The Miroir task is journaled with every node task uid before the
202; the reconciler folds the node tasks into its status.

Delete by filter and delete all are broadcast to every node, with the same quorum rule
over all shards. Getting one document is a routed read to one owner.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import msgspec
import structlog
import trio

from miroir.core import batches
from miroir.core.documents import decode_documents, payload_format, resolve_primary_key
from miroir.core.errors import MeiliError, index_not_found, invalid_index_uid, valid_index_uid
from miroir.core.routing import shard_for_key
from miroir.core.settings import RESERVED_PREFIX
from miroir.engine.indexes import broadcast, ensure_index, index_lock, now
from miroir.net.node import NodeError, NodeUnavailable
from miroir.store.state import IndexMeta, IndexPut, TaskRecord

if TYPE_CHECKING:
    from miroir.engine.cluster import Cluster
    from miroir.engine.tasks import DrivenTask

log = structlog.get_logger("miroir.writes")

# Deadline of one node's part of a write. The node parses and queues the batch (up to
# `server.max_body_bytes`, split over the nodes), it does not index it before answering.
NODE_WRITE_TIMEOUT_S = 30.0
# Deadline of a routed read (one document) per owner tried.
NODE_READ_TIMEOUT_S = 5.0

# Rotates routed reads over the replicas of a shard.
_read_rotation = itertools.count()


class WriteResult(msgspec.Struct):
    task: TaskRecord
    degraded: str | None = None  # X-Miroir-Degraded value, when a group missed quorum


def _targets(cluster: Cluster, meta: IndexMeta, shards: Sequence[int]) -> dict[int, dict[str, list[str]]]:
    topo = cluster.topology
    return {s: topo.write_targets(meta.shards, s) for s in shards}


async def _send(
    cluster: Cluster,
    meta: IndexMeta,
    routed: batches.Routed,
    request: Any,
    *,
    all_shards: bool = False,
) -> tuple[dict[str, int], str | None]:
    """Send `request(node, items)` to every node of the plan; check quorum.

    Returns (node -> node task uid, degraded header). Raises no_quorum (or the nodes'
    common refusal) when some shard has no group at quorum.
    """
    shards = list(range(meta.shards)) if all_shards else routed.shards
    targets = _targets(cluster, meta, shards)

    async def call(node: str) -> int:
        body = await request(node, routed.items[node])
        return int(body["taskUid"])

    acked, errors = await broadcast(cluster, list(routed.items), call, timeout_s=NODE_WRITE_TIMEOUT_S)
    verdict = batches.assess(shards, targets, set(acked), cluster.topology.rf)
    for node, exc in sorted(errors.items()):
        log.warning("write.node_failed", index=meta.uid, node=node, error=str(exc))
    if not verdict.ok:
        refusals = [e for e in errors.values() if isinstance(e, NodeError) and 400 <= e.status < 500]
        if refusals and len(refusals) == len(errors):
            # Every node that failed refused the request itself: that is the answer.
            first = errors[sorted(errors)[0]]
            assert isinstance(first, NodeError)
            raise MeiliError(first.code, first.message, status=first.status, type=first.type)
        if acked:
            log.warning("write.no_quorum", index=meta.uid, lost=verdict.lost, acked=sorted(acked))
        raise batches.no_quorum(verdict.lost)
    degraded = batches.degraded_header(verdict.degraded) if verdict.degraded else None
    return acked, degraded


def _index_or_fail(cluster: Cluster, uid: str) -> IndexMeta | None:
    if not valid_index_uid(uid):
        raise invalid_index_uid(uid)
    return cluster.state.indexes.get(uid)


async def _failed_task(cluster: Cluster, uid: str, type: str, details: dict, error: MeiliError) -> WriteResult:
    """A task that fails as Meilisearch's would (e.g. deleting from a missing index)."""

    async def driver(handle: DrivenTask) -> None:
        await handle.set_processing()
        await handle.finish("failed", error=error, details=_failed_details(details))

    task = await cluster.tasks.enqueue_driven(index_uid=uid, type=type, details=details, driver=driver)
    return WriteResult(task=task)


def _failed_details(details: dict) -> dict:
    out = dict(details)
    for key in ("deletedDocuments", "indexedDocuments"):
        if key in out:
            out[key] = 0
    return out


# --- add / replace / update ------------------------------------------------------------


def decode_batch(body: bytes, content_type: str | None, csv_delimiter: str | None) -> list[dict]:
    fmt = payload_format(content_type)
    if csv_delimiter is not None and fmt != "csv":
        raise MeiliError(
            "invalid_document_csv_delimiter",
            f"The Content-Type `{content_type}` does not support the use of a csv delimiter. The csv delimiter can only "
            "be used with the Content-Type `text/csv`.",
        )
    return decode_documents(body, fmt, csv_delimiter=csv_delimiter if csv_delimiter is not None else ",")


async def add_documents(
    cluster: Cluster,
    uid: str,
    docs: list[dict],
    *,
    primary_key: str | None,
    partial: bool,
) -> WriteResult:
    """Add or replace (`partial=False`, POST) or update (`partial=True`, PUT) documents."""
    meta = _index_or_fail(cluster, uid)
    # Everything that can reject the batch runs before any node is touched, the index
    # creation included.
    pk = resolve_primary_key(meta.primary_key if meta else None, primary_key, docs, uid) if docs else None
    shards = meta.shards if meta is not None else cluster.config.cluster.shards
    pairs = batches.shard_documents(docs, pk, shards) if pk is not None else []
    if meta is None:
        meta = await ensure_index(cluster, uid)
    details = {"receivedDocuments": len(docs), "indexedDocuments": None}
    kind = "documentAdditionOrUpdate"
    async with index_lock(cluster, uid):
        meta = cluster.state.indexes.get(uid)
        if meta is None:  # deleted meanwhile
            raise index_not_found(uid)
        if pk is not None and meta.primary_key not in (None, pk):
            # Another batch set the key meanwhile: decide again against it.
            pk = resolve_primary_key(meta.primary_key, primary_key, docs, uid)
        if pk is not None and meta.shards != shards:
            pairs = batches.shard_documents(docs, pk, meta.shards)
        if not pairs:
            task = await cluster.tasks.enqueue(index_uid=uid, type=kind, node_tasks={}, details=details)
            return WriteResult(task=task)
        routed = batches.route(pairs, _targets(cluster, meta, sorted({s for s, _ in pairs})))
        method = "PUT" if partial else "POST"

        async def request(node: str, items: list[dict]) -> Any:
            return await cluster.fleet[node].call(
                method,
                f"/indexes/{uid}/documents",
                params={"primaryKey": pk},
                json=items,
                timeout_s=NODE_WRITE_TIMEOUT_S,
            )

        node_tasks, degraded = await _send(cluster, meta, routed, request)
        if meta.primary_key is None:
            await cluster.journal.append(IndexPut(meta=msgspec.structs.replace(meta, primary_key=pk, updated_at=now(cluster))))
        task = await cluster.tasks.enqueue(index_uid=uid, type=kind, node_tasks=node_tasks, details=details)
    return WriteResult(task=task, degraded=degraded)


# --- deletions ------------------------------------------------------------------------------


def _deletion_details(provided: int | None, original_filter: Any = None, with_filter: bool = False) -> dict:
    details: dict[str, Any] = {}
    if provided is not None:
        details["providedIds"] = provided
    details["deletedDocuments"] = None
    if with_filter:
        details["originalFilter"] = original_filter
    return details


async def delete_ids(cluster: Cluster, uid: str, ids: list[Any], *, single: bool = False) -> WriteResult:
    """Delete one document (`single`) or a batch of ids, each routed to its shard's owners."""
    details = _deletion_details(len(ids))
    meta = _index_or_fail(cluster, uid)
    if meta is None:
        return await _failed_task(cluster, uid, "documentDeletion", details, index_not_found(uid))
    async with index_lock(cluster, uid):
        meta = cluster.state.indexes.get(uid) or meta
        pairs = batches.shard_ids(ids, meta.shards)
        if not pairs:
            task = await cluster.tasks.enqueue(index_uid=uid, type="documentDeletion", node_tasks={}, details=details)
            return WriteResult(task=task)
        routed = batches.route(pairs, _targets(cluster, meta, sorted({s for s, _ in pairs})))

        async def request(node: str, items: list[Any]) -> Any:
            client = cluster.fleet[node]
            if single:
                return await client.call(
                    "DELETE", f"/indexes/{uid}/documents/{quote(str(items[0]), safe='')}", timeout_s=NODE_WRITE_TIMEOUT_S
                )
            return await client.call(
                "POST", f"/indexes/{uid}/documents/delete-batch", json=items, timeout_s=NODE_WRITE_TIMEOUT_S
            )

        node_tasks, degraded = await _send(cluster, meta, routed, request)
        task = await cluster.tasks.enqueue(index_uid=uid, type="documentDeletion", node_tasks=node_tasks, details=details)
    return WriteResult(task=task, degraded=degraded)


async def _broadcast_write(cluster: Cluster, uid: str, details: dict, request: Any) -> WriteResult:
    meta = _index_or_fail(cluster, uid)
    if meta is None:
        return await _failed_task(cluster, uid, "documentDeletion", details, index_not_found(uid))
    async with index_lock(cluster, uid):
        meta = cluster.state.indexes.get(uid) or meta
        routed = batches.Routed(items={n: [] for n in cluster.topology.all_nodes()}, shards=list(range(meta.shards)))
        node_tasks, degraded = await _send(cluster, meta, routed, request, all_shards=True)
        task = await cluster.tasks.enqueue(index_uid=uid, type="documentDeletion", node_tasks=node_tasks, details=details)
    return WriteResult(task=task, degraded=degraded)


async def delete_by_filter(cluster: Cluster, uid: str, body: Mapping[str, Any]) -> WriteResult:
    """`POST /indexes/{uid}/documents/delete` {filter}: broadcast to every node."""
    if "filter" not in body or body["filter"] is None:
        raise MeiliError("missing_document_filter", "Missing field `filter`")
    unknown = [k for k in body if k != "filter"]
    if unknown:
        raise MeiliError("bad_request", f"Unknown field `{unknown[0]}`: expected one of `filter`")
    filt = body["filter"]
    if not isinstance(filt, (str, list)):
        raise MeiliError(
            "invalid_document_filter",
            "Invalid syntax for the filter parameter: `expected String, Array, found: "
            f"{msgspec.json.encode(filt).decode()}`.",
        )
    details = _deletion_details(0, filt, with_filter=True)

    async def request(node: str, _items: list) -> Any:
        return await cluster.fleet[node].call(
            "POST", f"/indexes/{uid}/documents/delete", json={"filter": filt}, timeout_s=NODE_WRITE_TIMEOUT_S
        )

    return await _broadcast_write(cluster, uid, details, request)


async def delete_all(cluster: Cluster, uid: str) -> WriteResult:
    """`DELETE /indexes/{uid}/documents`: broadcast to every node."""
    details = _deletion_details(None)

    async def request(node: str, _items: list) -> Any:
        return await cluster.fleet[node].call("DELETE", f"/indexes/{uid}/documents", timeout_s=NODE_WRITE_TIMEOUT_S)

    return await _broadcast_write(cluster, uid, details, request)


# --- routed read ------------------------------------------------------------------------------


def strip_reserved(doc: dict) -> dict:
    return {k: v for k, v in doc.items() if not k.startswith(RESERVED_PREFIX)}


async def get_document(cluster: Cluster, uid: str, doc_id: str, fields: str | None) -> dict:
    """`GET /indexes/{uid}/documents/{id}` from one owner of the id's shard.

    Owners are tried in turn (replicas of the shard's group first, then other groups)
    when one does not answer; a node's answer (document or document_not_found) is final.
    """
    meta = cluster.state.indexes.get(uid)
    if meta is None:
        raise index_not_found(uid)
    shard = shard_for_key(doc_id, meta.shards)
    targets = cluster.topology.write_targets(meta.shards, shard)
    rot = next(_read_rotation)
    groups = list(targets)
    candidates: list[str] = []
    for i in range(len(groups)):
        owners = targets[groups[(rot + i) % len(groups)]]
        candidates += [owners[(rot + j) % len(owners)] for j in range(len(owners))]
    params = {"fields": fields} if fields is not None else None
    last: NodeUnavailable | None = None
    for node in candidates:
        client = cluster.fleet.get(node)
        if client is None:
            continue
        try:
            with trio.fail_after(NODE_READ_TIMEOUT_S):
                doc = await client.call("GET", f"/indexes/{uid}/documents/{quote(doc_id, safe='')}", params=params)
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
