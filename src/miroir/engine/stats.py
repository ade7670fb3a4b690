"""Stats that count every shard exactly once (design §6, "Stats count each shard exactly once").

A node's own stats count every document it holds, and with RF > 1 (or during a
migration) a document lives on several nodes. So:

- numberOfDocuments: pick a covering set (one owner per shard, all in one group) and
  ask each of its nodes `POST /indexes/{uid}/documents/fetch` with
  `filter: _miroir_shard IN [the shards it answers for]` and `limit: 0`; the `total`
  of those answers is exact and disjoint, their sum is the count.
- fieldDistribution: nodes only report it for all they hold. Each covering node's
  distribution is scaled by (documents it answers for / documents it holds). Exact
  with RF = 1 and for fields every document has; an estimate (rounded, never above the
  count) for sparse fields with RF > 1.
- `_miroir_*` fields are never shown.
The covering set is planned, retried and degraded by `engine.scatter`, as for a search:
nodes known down are left out, a part that fails is retried on other owners, and shards
no reachable node holds are left out of the counts and named in `X-Miroir-Degraded`
(or 503 `miroir_shard_unavailable` under `scatter.unavailable_shard_policy = "error"`).
A node error never becomes a 500.
"""

from __future__ import annotations

from typing import Any

import trio

from miroir.core.errors import MeiliError, index_not_found
from miroir.core.routing import listing_affinity
from miroir.core.settings import RESERVED_PREFIX, SHARD_FIELD
from miroir.engine.cluster import Cluster
from miroir.engine.indexes import broadcast
from miroir.engine.scatter import Part, merge_degraded, scatter
from miroir.net.node import NodeClient, NodeError, NodeUnavailable

# Every node answers sizes as raw bytes with each database's size: Miroir sums them
# and formats the answer as the client asked (core/statsview.py).
_RAW_SIZES = {"showInternalDatabaseSizes": "true", "sizeFormat": "raw"}

# Deadline of each node call of `GET /stats` (database sizes); index stats use the
# scatter's `scatter.node_timeout_ms`.
NODE_STATS_TIMEOUT_S = 5.0

Headers = dict[str, str]


async def _node_part(client: NodeClient, uid: str, shards: list[int], timeout_s: float) -> dict[str, Any]:
    """The count of `shards` on one node and its own stats, asked in parallel.

    Raises the first call's `NodeUnavailable` / `NodeError` as itself (not in a group),
    so the scatter retries the part elsewhere or surfaces a client error.
    """
    out: dict[str, Any] = {}
    failed: list[NodeUnavailable | NodeError] = []

    async def count() -> None:
        try:
            body = await client.call(
                "POST",
                f"/indexes/{uid}/documents/fetch",
                json={"filter": f"{SHARD_FIELD} IN [{', '.join(str(s) for s in shards)}]", "limit": 0},
                timeout_s=timeout_s,
            )
            out["count"] = int(body["total"])
        except (NodeUnavailable, NodeError) as exc:
            failed.append(exc)

    async def stats() -> None:
        try:
            out["stats"] = await client.call(
                "GET", f"/indexes/{uid}/stats", params=_RAW_SIZES, timeout_s=timeout_s
            )
        except (NodeUnavailable, NodeError) as exc:
            failed.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(count)
        nursery.start_soon(stats)
    if failed:
        raise failed[0]
    return out


def _combine(parts: list[Part]) -> dict[str, Any]:
    """One answer from the parts; a node answering two parts (a retry gave it more
    shards) is weighted once per part, by the documents of that part."""
    total = sum(p.result["count"] for p in parts)
    dist: dict[str, float] = {}
    scaled: dict[str, float] = {}  # raw document bytes and embeddings, weighted like fields
    internal: dict[str, float] = {}
    indexing = False
    for part in parts:
        p = part.result
        st = p["stats"]
        indexing = indexing or bool(st.get("isIndexing"))
        held = int(st.get("numberOfDocuments") or 0)
        if held <= 0:
            # No document to weigh by: the node's own databases (settings, maps) count once.
            for db, value in (st.get("internalDatabaseSizes") or {}).items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    internal[db] = internal.get(db, 0.0) + value
            continue
        weight = min(1.0, p["count"] / held)
        for field, n in (st.get("fieldDistribution") or {}).items():
            if not field.startswith(RESERVED_PREFIX):
                dist[field] = dist.get(field, 0.0) + n * weight
        for key in _SCALED:
            value = st.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                scaled[key] = scaled.get(key, 0.0) + value * weight
        for db, value in (st.get("internalDatabaseSizes") or {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                internal[db] = internal.get(db, 0.0) + value * weight
    fields = {f: min(total, round(v)) for f, v in sorted(dist.items())}
    raw_size = round(scaled.get("rawDocumentDbSize", 0.0))
    return {
        "numberOfDocuments": total,
        "rawDocumentDbSize": raw_size,
        "avgDocumentSize": raw_size // total if total else 0,
        "isIndexing": indexing,
        "internalDatabaseSizes": {db: round(v) for db, v in sorted(internal.items())},
        "numberOfEmbeddings": round(scaled.get("numberOfEmbeddings", 0.0)),
        "numberOfEmbeddedDocuments": min(total, round(scaled.get("numberOfEmbeddedDocuments", 0.0))),
        "fieldDistribution": {f: n for f, n in fields.items() if n > 0},
    }


# Node stats summed with each covering node's weight (the share of its documents it
# answers for): each document's bytes and embeddings count once, as the count does.
_SCALED = ("rawDocumentDbSize", "numberOfEmbeddings", "numberOfEmbeddedDocuments")


async def index_stats(cluster: Cluster, uid: str) -> tuple[dict[str, Any], Headers]:
    """`GET /indexes/{uid}/stats`: (answer, headers); see the module doc."""
    meta = cluster.state.indexes.get(uid)
    if meta is None:
        raise index_not_found(uid)
    if not cluster.topology.groups:
        raise MeiliError("miroir_shard_unavailable", "The cluster has no active node.")
    every = list(range(meta.shards))

    async def send(client: NodeClient, shards: list[int] | None, timeout_s: float) -> dict[str, Any]:
        # Always filtered: a node may hold a copy of a shard it does not own (migration).
        return await _node_part(client, uid, every if shards is None else shards, timeout_s)

    # A fixed covering set per index (while the healthy nodes stay the same): the
    # weighted estimates (sparse fields, bytes with RF > 1) give the same answer each time.
    gathered = await scatter(cluster, meta, send, affinity=listing_affinity(uid))
    headers = gathered.check(cluster.config.scatter.unavailable_shard_policy, uid)
    result = _combine(gathered.parts)
    if not result["isIndexing"]:
        result["isIndexing"] = _miroir_indexing(cluster, uid)
    return result, headers


def _miroir_indexing(cluster: Cluster, uid: str) -> bool:
    return any(t.index_uid == uid and t.status == "processing" for t in cluster.tasks.open_tasks())


async def global_stats(cluster: Cluster) -> tuple[dict[str, Any], Headers]:
    """`GET /stats`: every index's stats, database sizes summed over the nodes that
    answer; (answer, headers), the degraded shards of every index in one header."""
    uids = sorted(cluster.state.indexes)
    indexes: dict[str, Any] = {}
    degraded: list[Headers] = []
    failed: dict[str, MeiliError] = {}

    async def one(uid: str) -> None:
        # Collected, not raised in the nursery: the client gets one index's error, the
        # same whichever index failed first, not an exception group.
        try:
            indexes[uid], headers = await index_stats(cluster, uid)
        except MeiliError as exc:
            if exc.code != "index_not_found":  # deleted meanwhile: not listed
                failed[uid] = exc
            return
        degraded.append(headers)

    async def node_stats(node: str) -> dict[str, Any]:
        return await cluster.fleet[node].call("GET", "/stats", params=_RAW_SIZES, timeout_s=NODE_STATS_TIMEOUT_S)

    sizes: dict[str, Any] = {}

    async def collect() -> None:
        # Nodes known down are not waited for; a size missing is not an error either.
        up = sorted(cluster.health.available(cluster.topology.all_nodes()))
        results, _ = await broadcast(cluster, up, node_stats, timeout_s=NODE_STATS_TIMEOUT_S)
        sizes.update(results)

    async with trio.open_nursery() as nursery:
        for uid in uids:
            nursery.start_soon(one, uid)
        nursery.start_soon(collect)
    if failed:
        raise failed[min(failed)]  # e.g. 503 under the `error` unavailable-shard policy
    last_updates = [s.get("lastUpdate") for s in sizes.values() if s.get("lastUpdate")]
    # Every document is held by RF nodes in each group: the nodes' sizes summed, divided
    # by that many copies, are the size of one copy of the data (the nodes' own task and
    # key stores included, an approximation while a rebalance holds extra copies).
    topo = cluster.topology
    copies = max(1, sum(min(topo.rf, len(members)) for members in topo.groups.values()))
    answer = {
        "databaseSize": sum(int(s.get("databaseSize") or 0) for s in sizes.values()) // copies,
        "usedDatabaseSize": sum(int(s.get("usedDatabaseSize") or 0) for s in sizes.values()) // copies,
        "lastUpdate": max(last_updates) if last_updates else None,
        "indexes": {uid: indexes[uid] for uid in uids if uid in indexes},
    }
    return answer, merge_degraded(degraded)
