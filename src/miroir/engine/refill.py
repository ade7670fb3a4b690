"""Refill: rebuild the copy of a node that lost it (disk lost, or backlog over its bound).

Run by the handoff service (engine/handoff.py) while the node is up and excluded from
reads. Detection (`check_lost`): an index missing on the node, or a shard it holds with
far fewer documents than on a readable peer (core/backlog.py `shard_lost`).

The refill of one index on node N reuses the mover's machinery (engine/mover.py) and its
argument:

1. create the index on N (a leftover counts) and give it the full settings read from a
   readable peer (`_miroir_shard` filterable included); from then on N takes dual writes
   for the index (`Handoff.copying`), exactly like a migration target;
2. copy every shard N holds page by page from a readable owner (`filter=_miroir_shard = s`);
3. reconcile every shard under the index's write lock (no write interleaves): ids only
   on N are deleted, ids missing or different on N are copied; then `RefillIndexDone` is
   journaled while the lock is still held, so no write slips between the check and the
   switch.

Progress is journaled per index; after a Miroir restart the refill resumes with the
indexes not done yet (an index cut short is copied again: page writes are upserts).
Failures raise `MoveFailed`; the handoff service retries.
"""

from __future__ import annotations

from typing import Any

import structlog
import trio

from miroir.core import backlog
from miroir.core.model import RefillDone, RefillIndexDone
from miroir.core.moves import settled_shards
from miroir.core.placement import Layout
from miroir.core.settings import creation_patch
from miroir.engine.cluster import Cluster
from miroir.engine.indexes import index_lock
from miroir.engine.mover import (
    RECONCILE_PAGE,
    MoveFailed,
    _ids,
    call,
    enqueue_and_wait,
    fetch_page,
    fetch_shard,
    settle,
    shard_filter,
    wait_task,
)
from miroir.net.node import NodeError

log = structlog.get_logger("miroir.refill")


def _peers(cluster: Cluster, node: str, shards: Layout, shard: int) -> list[str]:
    """Readable holders of `shard` other than `node`: same group first."""
    group = cluster.topology.group_of(node)
    readable = cluster.healthy_nodes()
    out: list[str] = []
    targets = cluster.topology.read_targets(shards, shard)
    for g in sorted(targets, key=lambda g: g != group):
        out += [n for n in targets[g] if n != node and n in readable and n not in out]
    return out


def expected_shards(cluster: Cluster, node: str, uid: str, shards: Layout) -> list[int]:
    """The shards of `uid` the node must hold completely now: those it owns or takes
    writes for, but not those a migration is still copying to it (core/moves.py
    `copy_in_progress`): a joining node lacks those legitimately, and the mover, not a
    refill, completes them."""
    held = cluster.topology.holders(shards).get(node, [])
    if shards.table:
        # An index being resharded: a shard the node only takes dual writes for is being
        # copied to it by the reshard (engine/reshard.py), not lost.
        topo = cluster.topology
        held = [s for s in held if any(node in ids for ids in topo.read_targets(shards, s).values())]
    return settled_shards(held, cluster.state.rebalance.plan, shards, uid, node)


async def shard_count(cluster: Cluster, node: str, uid: str, shard: int) -> int:
    try:
        body = await call(
            cluster, node, "POST", f"/indexes/{uid}/documents/fetch", json={"filter": shard_filter(shard), "limit": 0}
        )
    except NodeError as e:
        raise MoveFailed(f"node `{node}` cannot count shard {shard} of `{uid}`: {e.message}") from None
    return int(body.get("total") or 0)


async def _count_copies(
    cluster: Cluster, node: str, uid: str, shards: Layout, s: int,
    mine: dict[int, int], peers: dict[int, int], refused: list[str],
) -> None:
    """Shard `s` of `uid` counted on the node (into `mine`) and on a peer (into `peers`).
    Never raises (a nursery would wrap it): failures are collected in `refused`."""
    cands = _peers(cluster, node, shards, s)
    if not cands:
        return
    try:
        mine[s] = await shard_count(cluster, node, uid, s)
    except MoveFailed as e:
        refused.append(str(e))  # e.g. `_miroir_shard` not filterable: settings lost
        return
    try:
        peers[s] = await shard_count(cluster, cands[0], uid, s)
    except MoveFailed as e:
        log.info("refill.peer_count_failed", node=cands[0], index=uid, shard=s, error=str(e))


async def check_lost(cluster: Cluster, node: str) -> str | None:
    """Why the node's copy is lost (missing index, shards far below a peer), or None."""
    for uid, meta in sorted(cluster.state.indexes.items()):
        if not cluster.topology.holders(meta.layout).get(node):
            continue  # holds nothing of it (a node joining before its plan): nothing to lose
        try:
            await call(cluster, node, "GET", f"/indexes/{uid}")
        except NodeError as e:
            if e.code == "index_not_found":
                return f"index `{uid}` is missing on the node"
            raise MoveFailed(f"node `{node}`: {e.message}") from None
        if meta.split_from:
            # Mid-split (engine/reshard.py) an owner not re-tagged yet holds a child's
            # documents under its parent's tag: per-shard counts do not compare.
            continue
        held = expected_shards(cluster, node, uid, meta.layout)
        mine: dict[int, int] = {}
        peers: dict[int, int] = {}
        refused: list[str] = []
        async with trio.open_nursery() as nursery:
            for s in held:
                nursery.start_soon(_count_copies, cluster, node, uid, meta.layout, s, mine, peers, refused)
        if refused:
            return refused[0]
        rep = cluster.state.repairs.get(node)
        pending = backlog.pending_additions(rep.hints if rep is not None else (), uid)
        lost = backlog.lost_shards(mine, peers, pending)
        if lost:
            missing = sum(peers[s] - mine.get(s, 0) for s in lost)
            return f"index `{uid}`: shards {lost} lack {missing} documents held by healthy owners"
    return None


async def _ensure_index_and_settings(cluster: Cluster, node: str, uid: str, pk: str | None, peer: str | None) -> None:
    try:
        body = await call(cluster, node, "POST", "/indexes", json={"uid": uid, "primaryKey": pk})
        await wait_task(cluster, node, int(body["taskUid"]))
    except MoveFailed as e:
        if e.code != "index_already_exists":
            raise
    except NodeError as e:
        raise MoveFailed(f"node `{node}` refused to create `{uid}`: {e.message}") from None
    if peer is None:
        settings: dict[str, Any] = creation_patch()
    else:
        settings = await call(cluster, peer, "GET", f"/indexes/{uid}/settings")
    await enqueue_and_wait(cluster, node, "PATCH", f"/indexes/{uid}/settings", json=settings)


async def refill_index(cluster: Cluster, node: str, uid: str, copying: set[tuple[str, str]]) -> int:
    """Steps 1-3 of the module doc for one index; returns documents copied.

    Shards and sources are decided from the topology of the moment: once for the page
    copy, and again under the index lock for the reconciliation, so that a migration
    that completed or switched meanwhile is seen (a former owner is never a source: it
    stops taking writes at the switch, its copy goes stale).
    """
    meta = cluster.state.indexes.get(uid)
    if meta is None:
        return 0
    held = expected_shards(cluster, node, uid, meta.layout)
    any_peer = next((p for s in held for p in _peers(cluster, node, meta.layout, s)), None)
    if any_peer is None:
        any_peer = next((n for n in cluster.healthy_nodes() if n != node), None)
    await _ensure_index_and_settings(cluster, node, uid, meta.primary_key, any_peer)
    copying.add((node, uid))
    pk = meta.primary_key
    copied = 0
    if pk is not None:
        page_size = cluster.config.rebalancer.page_size
        for s in held:
            sources = _peers(cluster, node, meta.layout, s)
            if not sources:
                log.warning("refill.no_source", node=node, index=uid, shard=s)
                continue
            source, cursor = sources[0], 0
            while True:
                docs, _ = await fetch_page(cluster, source, uid, s, cursor, page_size)
                if docs:
                    await enqueue_and_wait(
                        cluster, node, "POST", f"/indexes/{uid}/documents", params={"primaryKey": pk}, json=docs
                    )
                    cursor += len(docs)
                    copied += len(docs)
                if len(docs) < page_size:
                    break
    async with index_lock(cluster, uid):
        if pk is not None:
            for s in expected_shards(cluster, node, uid, meta.layout):
                sources = _peers(cluster, node, meta.layout, s)
                if sources:
                    copied += await _reconcile(cluster, uid, pk, s, sources[0], node)
        await cluster.journal.append(RefillIndexDone(node=node, index=uid))
    copying.discard((node, uid))
    log.info("refill.index_done", node=node, index=uid, shards=len(held), copied=copied)
    return copied


async def _reconcile(cluster: Cluster, uid: str, pk: str, shard: int, source: str, target: str) -> int:
    """The mover's reconciliation of one shard (caller holds the index lock)."""
    await settle(cluster, source, uid)
    await settle(cluster, target, uid)
    src = await fetch_shard(cluster, source, uid, shard, pk)
    dst = await fetch_shard(cluster, target, uid, shard, pk)
    stale = sorted(i for i in dst if i not in src)
    missing = [d for i, d in src.items() if dst.get(i) != d]
    if stale:
        await enqueue_and_wait(cluster, target, "POST", f"/indexes/{uid}/documents/delete-batch", json=_ids(stale, dst, pk))
    for i in range(0, len(missing), RECONCILE_PAGE):
        await enqueue_and_wait(
            cluster, target, "POST", f"/indexes/{uid}/documents", params={"primaryKey": pk},
            json=missing[i : i + RECONCILE_PAGE],
        )
    return len(missing)


async def refill_node(cluster: Cluster, node: str, copying: set[tuple[str, str]]) -> None:
    """Refill every index not done yet, then journal `RefillDone`. Raises MoveFailed."""
    while True:
        rep = cluster.state.repairs.get(node)
        if rep is None or not rep.refill:
            return
        todo = [uid for uid in sorted(cluster.state.indexes) if uid not in rep.refilled]
        if not todo:
            await cluster.journal.append(RefillDone(node=node))
            log.info("refill.done", node=node)
            return
        await refill_index(cluster, node, todo[0], copying)
