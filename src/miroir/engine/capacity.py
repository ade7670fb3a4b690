"""Gathers the capacity report (core/capacity.py) of a running cluster: owner tables from
the topology, documents and bytes from each readable owning node's `GET /stats` (one
call per node, all at once, short deadline: a node that does not answer is reported
without documents and its group falls back to shard shares)."""

from __future__ import annotations

from typing import Any

import trio

from miroir.core import capacity as core
from miroir.core.placement import CURRENT_PLACEMENT, Layout
from miroir.engine.cluster import Cluster
from miroir.net.node import NodeError, NodeUnavailable

STATS_TIMEOUT_S = 2.0


async def _stats(cluster: Cluster, node: str, out: dict[str, tuple[int, int | None]]) -> None:
    client = cluster.fleet.get(node)
    if client is None:
        return
    with trio.move_on_after(STATS_TIMEOUT_S):
        try:
            body = await client.call("GET", "/stats", timeout_s=STATS_TIMEOUT_S)
        except (NodeError, NodeUnavailable):
            return
        known = cluster.state.indexes
        indexes = body.get("indexes") or {}
        docs = sum(int((v or {}).get("numberOfDocuments") or 0) for k, v in indexes.items() if k in known)
        size = body.get("databaseSize")
        out[node] = (docs, int(size) if isinstance(size, int) else None)


async def capacity_report(cluster: Cluster) -> dict[str, Any]:
    topo = cluster.topology
    layouts = {uid: meta.layout for uid, meta in sorted(cluster.state.indexes.items())}
    if not layouts:  # no index yet: what a new index would get
        layouts = {"": Layout(cluster.config.cluster.shards, CURRENT_PLACEMENT)}
    stats: dict[str, tuple[int, int | None]] = {}
    # Only nodes known to answer: a hung node would hold every topology read for the
    # deadline (its group is then reported by shard shares).
    readable = cluster.healthy_nodes()
    async with trio.open_nursery() as nursery:
        for ids in topo.groups.values():
            for n in ids:
                if n in readable:
                    nursery.start_soon(_stats, cluster, n, stats)
    loads: list[core.NodeLoad] = []
    for group, ids in sorted(topo.groups.items()):
        tables = {uid: [topo.owners(lay, s, group) for s in range(lay.shards)] for uid, lay in layouts.items()}
        copies, share = core.copy_shares(tables)
        for n in ids:
            docs, size = stats.get(n, (None, None))
            loads.append(
                core.NodeLoad(
                    id=n, group=group, weight=topo.weights.get(n, 1.0), shards=copies.get(n, 0),
                    copy_share=share.get(n, 0.0), documents=docs, bytes=size,
                )
            )
    return core.report(loads)
