"""`POST /snapshots`: a consistent snapshot of the whole cluster, taken at a barrier.

A `snapshotCreation` task, driven on its own queue. The barrier: every index's write lock
is taken (sorted, as swaps take them), so no write is enqueued on any node meanwhile;
every node's queue then drains what was enqueued before; each node takes its own
snapshot (its `POST /snapshots` task, which sees exactly those writes); and Miroir's
journal state, which knows exactly those tasks, is copied beside them (without the
snapshot's own task, as a Meilisearch snapshot leaves it out). Only then are the
locks released: writes wait for the barrier, not for anything after it.

Written to `<snapshots.dir>/<task uid>.snapshot/` (default `<data dir>/snapshots`):
`journal/` (a journal directory that `miroir restore` puts in place) and `manifest.json`
(the nodes, their URLs, groups and snapshot task uids, the shape, the time), written last:
a directory without a manifest is an interrupted snapshot. Node snapshots stay on the
nodes, in their own snapshot dirs (Meilisearch: `data.ms.snapshot`), as Miroir does not
run the nodes; the manifest names the node task that wrote each.
"""

from __future__ import annotations

import os
import time
from contextlib import AsyncExitStack
from typing import Any

import msgspec
import structlog
import trio

from miroir.core.errors import MeiliError
from miroir.core.model import TaskRecord
from miroir.core.taskquery import rfc3339
from miroir.engine.cluster import Cluster
from miroir.engine.indexes import index_lock
from miroir.engine.mover import MoveFailed, call, wait_task
from miroir.engine.tasks import DrivenTask
from miroir.net.node import NodeError

log = structlog.get_logger("miroir.snapshots")

SNAPSHOTS_QUEUE = "\x00snapshots"
MANIFEST = "manifest.json"
JOURNAL_DIR = "journal"
MANIFEST_FORMAT = 1
# How long a node may take to drain what was enqueued before the barrier.
DRAIN_TIMEOUT_S = 60.0
DRAIN_POLL_S = 0.02


class NodeSnapshot(msgspec.Struct, rename="camel"):
    url: str
    group: str
    task_uid: int  # the node's snapshotCreation task
    # Where the node wrote it, in its own snapshot dir (`--snapshot-dir`).
    snapshot: str = "data.ms.snapshot"


class Manifest(msgspec.Struct, rename="camel"):
    format: int
    task_uid: int  # Miroir's snapshotCreation task
    created_at: str
    journal: str  # Miroir's journal copy, relative to the manifest
    next_task_uid: int
    replication_factor: int
    nodes: dict[str, NodeSnapshot]
    indexes: dict[str, int]  # index uid -> shards


def snapshots_dir(cluster: Cluster) -> str:
    configured = cluster.config.snapshots.dir
    return configured if configured else os.path.join(cluster.config.store.data_dir, "snapshots")


def snapshot_path(cluster: Cluster, task_uid: int) -> str:
    return os.path.join(snapshots_dir(cluster), f"{task_uid}.snapshot")


async def create_snapshot(cluster: Cluster) -> TaskRecord:
    async def driver(handle: DrivenTask) -> None:
        await handle.set_processing()
        path = await take_snapshot(cluster, handle.uid)
        log.info("snapshot.written", task_uid=handle.uid, path=path)
        await handle.finish("succeeded")

    return await cluster.tasks.enqueue_driven(
        index_uid=None, type="snapshotCreation", details=None, driver=driver, queue=SNAPSHOTS_QUEUE
    )


async def _drain(cluster: Cluster, node: str) -> None:
    """Wait until `node` has no enqueued or processing task at all."""
    with trio.move_on_after(DRAIN_TIMEOUT_S):
        while True:
            body = await call(cluster, node, "GET", "/tasks", params={"statuses": "enqueued,processing", "limit": 1})
            if not body.get("results"):
                return
            await trio.sleep(DRAIN_POLL_S)
    raise MoveFailed(f"node `{node}` did not drain its queue within {DRAIN_TIMEOUT_S:g}s")


async def _node_snapshot(cluster: Cluster, node: str, out: dict[str, int]) -> None:
    await _drain(cluster, node)
    try:
        body = await call(cluster, node, "POST", "/snapshots")
    except NodeError as e:
        raise MoveFailed(f"node `{node}` refused POST /snapshots: {e.message}") from None
    uid = int(body["taskUid"])
    await wait_task(cluster, node, uid)
    out[node] = uid


def _without_own_task(state: Any, task_uid: int) -> Any:
    """The state without this snapshot's own task, as a Meilisearch snapshot leaves its
    snapshotCreation task out (the next task uid stays past it)."""
    if task_uid not in state.tasks:
        return state
    return msgspec.structs.replace(state, tasks={u: t for u, t in state.tasks.items() if u != task_uid})


async def take_snapshot(cluster: Cluster, task_uid: int) -> str:
    started = time.monotonic()
    directory = snapshot_path(cluster, task_uid)
    nodes = sorted(cluster.topology.all_nodes())
    node_tasks: dict[str, int] = {}
    async with AsyncExitStack() as locks:
        for uid in sorted(cluster.state.indexes):
            await locks.enter_async_context(index_lock(cluster, uid))
        paused = time.monotonic()
        try:
            async with trio.open_nursery() as nursery:
                for node in nodes:
                    nursery.start_soon(_node_snapshot, cluster, node, node_tasks)
        except MoveFailed as e:
            raise MeiliError("miroir_node_unavailable", f"Cannot take a cluster snapshot: {e}") from None
        except BaseExceptionGroup as group:
            reasons = "; ".join(str(e) for e in group.exceptions)
            raise MeiliError("miroir_node_unavailable", f"Cannot take a cluster snapshot: {reasons}") from None
        state = cluster.state
        created = rfc3339(time.time())
        await cluster.journal.write_copy(os.path.join(directory, JOURNAL_DIR), _without_own_task(state, task_uid))
        shape = {name: meta.shards for name, meta in sorted(state.indexes.items())}
        next_uid = state.next_task_uid
        barrier_s = time.monotonic() - paused
    manifest = Manifest(
        format=MANIFEST_FORMAT, task_uid=task_uid, created_at=created, journal=JOURNAL_DIR,
        next_task_uid=next_uid, replication_factor=cluster.config.cluster.replication_factor,
        nodes={n: NodeSnapshot(url=state.nodes[n].url, group=state.nodes[n].group, task_uid=node_tasks[n])
               for n in nodes},
        indexes=shape,
    )
    await trio.to_thread.run_sync(_write_manifest, directory, msgspec.json.format(msgspec.json.encode(manifest)))
    log.info("snapshot.done", task_uid=task_uid, nodes=len(nodes), indexes=len(shape),
             barrier_seconds=round(barrier_s, 3), seconds=round(time.monotonic() - started, 3))
    return directory


def _write_manifest(directory: str, data: bytes) -> None:
    tmp = os.path.join(directory, MANIFEST + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        os.fsync(f.fileno())
    os.replace(tmp, os.path.join(directory, MANIFEST))
