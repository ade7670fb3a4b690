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
If a group cannot answer (a node down), the next group is tried.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

import trio

from miroir.core.errors import MeiliError, index_not_found
from miroir.core.routing import covering_set
from miroir.core.settings import RESERVED_PREFIX, SHARD_FIELD
from miroir.engine.indexes import broadcast, error_of
from miroir.net.node import NodeUnavailable

if TYPE_CHECKING:
    from miroir.engine.cluster import Cluster

# Deadline of each node call of a stats request.
NODE_STATS_TIMEOUT_S = 5.0

_rotation = itertools.count()


async def _node_part(cluster: Cluster, uid: str, node: str, shards: list[int]) -> dict[str, Any]:
    client = cluster.fleet[node]
    out: dict[str, Any] = {}

    async def count() -> None:
        body = await client.call(
            "POST",
            f"/indexes/{uid}/documents/fetch",
            json={"filter": f"{SHARD_FIELD} IN [{', '.join(str(s) for s in shards)}]", "limit": 0},
            timeout_s=NODE_STATS_TIMEOUT_S,
        )
        out["count"] = int(body["total"])

    async def stats() -> None:
        out["stats"] = await client.call("GET", f"/indexes/{uid}/stats", timeout_s=NODE_STATS_TIMEOUT_S)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(count)
        nursery.start_soon(stats)
    return out


def _combine(parts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    total = sum(p["count"] for p in parts.values())
    dist: dict[str, float] = {}
    indexing = False
    for p in parts.values():
        st = p["stats"]
        indexing = indexing or bool(st.get("isIndexing"))
        held = int(st.get("numberOfDocuments") or 0)
        if held <= 0:
            continue
        weight = min(1.0, p["count"] / held)
        for field, n in (st.get("fieldDistribution") or {}).items():
            if not field.startswith(RESERVED_PREFIX):
                dist[field] = dist.get(field, 0.0) + n * weight
    fields = {f: min(total, round(v)) for f, v in sorted(dist.items())}
    return {"numberOfDocuments": total, "isIndexing": indexing, "fieldDistribution": {f: n for f, n in fields.items() if n > 0}}


async def index_stats(cluster: Cluster, uid: str) -> dict[str, Any]:
    """`GET /indexes/{uid}/stats`."""
    meta = cluster.state.indexes.get(uid)
    if meta is None:
        raise index_not_found(uid)
    topo = cluster.topology
    shard_map = topo.shard_map(meta.shards)
    groups = list(shard_map)
    if not groups:
        raise MeiliError("miroir_shard_unavailable", "The cluster has no active node.")
    rot = next(_rotation)
    last: MeiliError | None = None
    for i in range(len(groups)):
        group = groups[(rot + i) % len(groups)]
        plan = covering_set(shard_map[group], rotation=rot)
        if plan is None:
            continue

        async def call(node: str, plan: dict[str, list[int]] = plan) -> dict[str, Any]:
            return await _node_part(cluster, uid, node, plan[node])

        parts, errors = await broadcast(cluster, list(plan), call, timeout_s=NODE_STATS_TIMEOUT_S)
        if not errors:
            result = _combine(parts)
            if not result["isIndexing"]:
                result["isIndexing"] = _miroir_indexing(cluster, uid)
            return result
        node = sorted(errors)[0]
        if not isinstance(errors[node], NodeUnavailable) and getattr(errors[node], "status", 500) < 500:
            raise error_of(errors[node])
        last = error_of(errors[node])
    raise last or MeiliError("miroir_shard_unavailable", "No replica group covers every shard.")


def _miroir_indexing(cluster: Cluster, uid: str) -> bool:
    return any(t.index_uid == uid and t.status == "processing" for t in cluster.tasks.open_tasks())


async def global_stats(cluster: Cluster) -> dict[str, Any]:
    """`GET /stats`: every index's stats, database sizes summed over the nodes."""
    uids = sorted(cluster.state.indexes)
    indexes: dict[str, Any] = {}

    async def one(uid: str) -> None:
        try:
            indexes[uid] = await index_stats(cluster, uid)
        except MeiliError as exc:
            if exc.code != "index_not_found":  # deleted meanwhile: not listed
                raise

    async def node_stats(node: str) -> dict[str, Any]:
        return await cluster.fleet[node].call("GET", "/stats", timeout_s=NODE_STATS_TIMEOUT_S)

    async with trio.open_nursery() as nursery:
        for uid in uids:
            nursery.start_soon(one, uid)
        sizes: dict[str, Any] = {}

        async def collect() -> None:
            results, _ = await broadcast(cluster, cluster.topology.all_nodes(), node_stats, timeout_s=NODE_STATS_TIMEOUT_S)
            sizes.update(results)

        nursery.start_soon(collect)
    last_updates = [s.get("lastUpdate") for s in sizes.values() if s.get("lastUpdate")]
    return {
        "databaseSize": sum(int(s.get("databaseSize") or 0) for s in sizes.values()),
        "usedDatabaseSize": sum(int(s.get("usedDatabaseSize") or 0) for s in sizes.values()),
        "lastUpdate": max(last_updates) if last_updates else None,
        "indexes": {uid: indexes[uid] for uid in uids if uid in indexes},
    }
