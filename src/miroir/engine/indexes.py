"""Index lifecycle: create, update, delete, swap — broadcast to every node (design §9).

Each operation is a driven Miroir task (`cluster.tasks.enqueue_driven`): the request
validates synchronously (as Meilisearch does), answers 202, and the driver does the work
in the task service's nursery, one task of an index at a time.

- Creation: create the index on every node, then make `_miroir_shard` filterable and
  set the nodes' `maxValuesPerFacet` (core/settings.py says why), wait for every node.
  A node that fails fails the task with its error, and the nodes where the index was
  created get it deleted again: no half-created index is left behind. Journal IndexPut
  (S = `cluster.shards`) and the client view of the settings.
- Deletion: delete on every node (a node that never had it counts as done), IndexRemoved.
- Adding documents or settings to a missing index creates it first (`ensure_index`),
  as Meilisearch creates an index implicitly; no extra Miroir task is shown for that.

Also the fan-out helpers every broadcast uses (`broadcast`, `wait_all`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import msgspec
import structlog
import trio

from miroir.core import reserved, settings as core_settings, swaps as core_swaps
from miroir.core.errors import (
    MeiliError,
    index_not_found,
    invalid_index_uid,
    valid_index_uid,
)
from miroir.core.model import (
    IndexFieldsSeen,
    IndexMeta,
    IndexPut,
    IndexRemoved,
    IndexSettingsPut,
    TaskRecord,
)
from miroir.core.placement import CURRENT_PLACEMENT
from miroir.core.taskfold import TERMINAL, fold
from miroir.engine.cluster import Cluster
from miroir.engine.tasks import DrivenTask
from miroir.net.node import NodeError, NodeUnavailable

log = structlog.get_logger("miroir.indexes")

# Deadline of one node request of a broadcast (an enqueue: the node only parses and queues).
NODE_CALL_TIMEOUT_S = 10.0
# How long a broadcast waits for the nodes to process their tasks. Index creation and
# settings are quick on an empty index; a settings change re-indexes every document, so
# this is generous. The Miroir task fails at the deadline, naming the late node.
NODE_TASK_TIMEOUT_S = 300.0
# How long a write to a missing index waits for an index creation already queued for it.
PENDING_CREATION_WAIT_S = 60.0
PENDING_POLL_S = 0.01


def index_already_exists(uid: str) -> MeiliError:
    return MeiliError("index_already_exists", f"Index `{uid}` already exists.")


def now(cluster: Cluster) -> str:
    return cluster.tasks.now_rfc3339()


# --- fan-out helpers -------------------------------------------------------------------


async def broadcast(
    cluster: Cluster,
    nodes: Iterable[str],
    call: Callable[[str], Awaitable[Any]],
    *,
    timeout_s: float = NODE_CALL_TIMEOUT_S,
) -> tuple[dict[str, Any], dict[str, Exception]]:
    """Run `call(node)` on every node in parallel, each under its own deadline.

    Returns (node -> result, node -> NodeError | NodeUnavailable). Other exceptions are bugs
    and propagate.
    """
    results: dict[str, Any] = {}
    errors: dict[str, Exception] = {}

    async def one(node: str) -> None:
        with trio.move_on_after(timeout_s) as scope:
            try:
                results[node] = await call(node)
            except (NodeError, NodeUnavailable) as exc:
                errors[node] = exc
        if scope.cancelled_caught:
            errors[node] = NodeUnavailable(node, f"no answer within {timeout_s:g}s")

    async with trio.open_nursery() as nursery:
        for node in nodes:
            nursery.start_soon(one, node)
    return results, errors


def error_of(exc: Exception) -> MeiliError:
    if isinstance(exc, NodeUnavailable):
        return exc.to_error()
    assert isinstance(exc, MeiliError)
    return MeiliError(exc.code, exc.message, status=exc.status, type=exc.type)


def error_from_view(node: str, view: Mapping[str, Any]) -> MeiliError:
    """A failed node task's error as a MeiliError (kept as the node reported it)."""
    err = view.get("error") or {}
    code = err.get("code") or "internal"
    message = err.get("message") or f"The task failed on node `{node}` ({view.get('status')})."
    return MeiliError(code, message, type=err.get("type"))


def first_error(errors: Mapping[str, Exception]) -> MeiliError:
    """The error a client sees for a fan-out: the first failed node's, in node-id order."""
    node = sorted(errors)[0]
    return error_of(errors[node])


async def enqueue_on(
    cluster: Cluster, nodes: Iterable[str], method: str, path: str, **kwargs: Any
) -> tuple[dict[str, int], dict[str, Exception]]:
    """Send one task-creating request to every node: node -> node task uid, and errors."""

    async def call(node: str) -> int:
        body = await cluster.fleet[node].call(method, path, timeout_s=NODE_CALL_TIMEOUT_S, **kwargs)
        return int(body["taskUid"])

    return await broadcast(cluster, nodes, call)


async def wait_all(
    cluster: Cluster, node_tasks: Mapping[str, int], timeout_s: float = NODE_TASK_TIMEOUT_S
) -> tuple[dict[str, dict], dict[str, MeiliError]]:
    """Wait for node tasks; returns (views, node -> error of each task that did not succeed)."""
    views = await cluster.tasks.wait_node_tasks(node_tasks, timeout_s) if node_tasks else {}
    failed: dict[str, MeiliError] = {}
    for node, view in views.items():
        status = view.get("status")
        if status == "succeeded":
            continue
        if status not in TERMINAL:
            failed[node] = MeiliError(
                "miroir_node_unavailable", f"Node `{node}` did not finish task {view.get('uid')} in {timeout_s:g}s."
            )
        else:
            failed[node] = error_from_view(node, view)
    return views, failed


async def run_on(
    cluster: Cluster, handle: DrivenTask, nodes: Iterable[str], method: str, path: str, **kwargs: Any
) -> None:
    """A driven task's step on every node of `nodes`: enqueue, record the node tasks on
    the task, wait for them; the first refusal or failure (node-id order) is raised."""
    node_tasks, errors = await enqueue_on(cluster, nodes, method, path, **kwargs)
    await handle.add_node_tasks(node_tasks)
    if errors:
        raise first_error(errors)
    _, failed = await wait_all(cluster, node_tasks)
    if failed:
        raise first_error(failed)


# --- per-index locks --------------------------------------------------------------------

def index_lock(cluster: Cluster, uid: str) -> trio.Lock:
    """Serializes what must not interleave on one index: implicit creation, and the
    enqueue of writes (so every node receives an index's batches in the same order)."""
    locks = cluster.index_locks
    lock = locks.get(uid)
    if lock is None:
        lock = locks[uid] = trio.Lock()
    return lock


# --- reads ------------------------------------------------------------------------------


def index_view(meta: IndexMeta) -> dict[str, Any]:
    return {"uid": meta.uid, "createdAt": meta.created_at, "updatedAt": meta.updated_at, "primaryKey": meta.primary_key}


def get_index(cluster: Cluster, uid: str) -> IndexMeta:
    meta = cluster.state.indexes.get(uid)
    if meta is None:
        raise index_not_found(uid)
    return meta


def list_indexes(cluster: Cluster, offset: int, limit: int) -> dict[str, Any]:
    metas = sorted(cluster.state.indexes.values(), key=lambda m: m.uid)
    page = metas[offset : offset + limit]
    return {"results": [index_view(m) for m in page], "offset": offset, "limit": limit, "total": len(metas)}


# --- creation -----------------------------------------------------------------------------


async def _delete_on(cluster: Cluster, uid: str, nodes: Iterable[str]) -> None:
    """Roll back a creation: best effort, logged (the operator sees leftovers in logs)."""
    nodes = list(nodes)
    if not nodes:
        return
    node_tasks, errors = await enqueue_on(cluster, nodes, "DELETE", f"/indexes/{uid}")
    _, failed = await wait_all(cluster, node_tasks, NODE_CALL_TIMEOUT_S)
    for node, err in {**errors, **failed}.items():
        log.warning("index.rollback_failed", index=uid, node=node, error=str(err))


async def create_on_nodes(
    cluster: Cluster, uid: str, primary_key: str | None, handle: DrivenTask | None = None, *, implicit: bool = False
) -> None:
    """Create `uid` on every node with Miroir's settings, and journal it. Raises the
    first node's error after rolling back. `implicit`: a node that already has the index
    (a leftover, or a race with another creation) counts as created."""
    nodes = cluster.topology.all_nodes()
    if not nodes:
        raise MeiliError("miroir_node_unavailable", "The cluster has no nodes to create the index on.")
    body: dict[str, Any] = {"uid": uid, "primaryKey": primary_key}
    node_tasks, errors = await enqueue_on(cluster, nodes, "POST", "/indexes", json=body)
    if handle is not None:
        await handle.add_node_tasks(node_tasks)
    _, failed = await wait_all(cluster, node_tasks)
    if implicit:
        failed = {n: e for n, e in failed.items() if e.code != "index_already_exists"}
    problems: dict[str, Exception] = {**errors, **failed}
    created = [n for n in node_tasks if n not in failed]
    if problems:
        await _delete_on(cluster, uid, created)
        raise first_error(problems)

    node_tasks, errors = await enqueue_on(
        cluster, nodes, "PATCH", f"/indexes/{uid}/settings", json=core_settings.creation_patch()
    )
    if handle is not None:
        await handle.add_node_tasks(node_tasks)
    _, failed = await wait_all(cluster, node_tasks)
    problems = {**errors, **failed}
    if problems:
        await _delete_on(cluster, uid, created)
        raise first_error(problems)

    readback = await read_node_settings(cluster, uid, nodes[:1])
    stamp = now(cluster)
    meta = IndexMeta(
        uid=uid, primary_key=primary_key, shards=cluster.config.cluster.shards, created_at=stamp, updated_at=stamp,
        placement=CURRENT_PLACEMENT,
    )
    client = core_settings.client_view(readback[nodes[0]], core_settings.DEFAULT_MAX_VALUES_PER_FACET)
    await cluster.journal.append(
        IndexPut(meta=meta), IndexSettingsPut(uid=uid, settings=client, version=0, updated_at=stamp)
    )
    log.info("index.created", index=uid, nodes=len(nodes), shards=meta.shards, implicit=implicit)


async def read_node_settings(cluster: Cluster, uid: str, nodes: Iterable[str]) -> dict[str, dict]:
    """GET the full settings of `uid` from each node (raises the first failure)."""

    async def call(node: str) -> dict:
        return await cluster.fleet[node].call("GET", f"/indexes/{uid}/settings", timeout_s=NODE_CALL_TIMEOUT_S)

    results, errors = await broadcast(cluster, nodes, call)
    if errors:
        raise first_error(errors)
    return results


def _pending_creation(cluster: Cluster, uid: str, before: int | None) -> bool:
    return any(
        t.index_uid == uid
        and t.type in ("indexCreation", "settingsUpdate")
        and (before is None or t.uid < before)
        for t in cluster.tasks.open_tasks()
    )


async def ensure_index(
    cluster: Cluster, uid: str, primary_key: str | None = None, *, task_uid: int | None = None
) -> IndexMeta:
    """The index, created implicitly on every node if it does not exist yet.

    A creation (or settings update) already queued for the index runs first: it was
    asked for first, and it would fail with `index_already_exists` otherwise. A driven
    task calling this passes its own `task_uid`: only the tasks before it are awaited.
    """
    meta = cluster.state.indexes.get(uid)
    if meta is not None:
        return meta
    if not valid_index_uid(uid):
        raise invalid_index_uid(uid)
    with trio.move_on_after(PENDING_CREATION_WAIT_S):
        # Bounded poll of the task list: it keeps no event per index.
        while uid not in cluster.state.indexes and _pending_creation(cluster, uid, task_uid):  # noqa: ASYNC110
            await trio.sleep(PENDING_POLL_S)
    async with index_lock(cluster, uid):
        meta = cluster.state.indexes.get(uid)
        if meta is None:
            await create_on_nodes(cluster, uid, primary_key, implicit=True)
            meta = cluster.state.indexes[uid]
    return meta


async def create_index(cluster: Cluster, uid: Any, primary_key: str | None) -> TaskRecord:
    """`POST /indexes`: the uid is checked now; `index_already_exists` fails the task."""
    if not valid_index_uid(uid):
        raise invalid_index_uid(str(uid))
    refused = reserved.primary_key_error(primary_key)
    if refused is not None:
        raise refused

    async def driver(handle: DrivenTask) -> None:
        await handle.set_processing()
        if uid in cluster.state.indexes:
            await handle.finish("failed", error=index_already_exists(uid))
            return
        async with index_lock(cluster, uid):
            if uid in cluster.state.indexes:  # created implicitly meanwhile
                raise index_already_exists(uid)
            await create_on_nodes(cluster, uid, primary_key, handle)
        await handle.finish("succeeded")

    return await cluster.tasks.enqueue_driven(
        index_uid=uid, type="indexCreation", details={"primaryKey": primary_key}, driver=driver
    )


# --- update -------------------------------------------------------------------------------


async def _has_documents(cluster: Cluster, uid: str) -> bool:
    async def call(node: str) -> int:
        body = await cluster.fleet[node].call("GET", f"/indexes/{uid}/stats", timeout_s=NODE_CALL_TIMEOUT_S)
        return int(body.get("numberOfDocuments") or 0)

    counts, errors = await broadcast(cluster, cluster.topology.all_nodes(), call)
    if errors:
        raise first_error(errors)
    return any(counts.values())


async def update_index(
    cluster: Cluster, uid: str, primary_key: str | None, new_uid: str | None = None
) -> TaskRecord:
    """`PATCH /indexes/{uid}`: change the primary key (only while the index is empty),
    and/or rename the index to `new_uid` (1.50): one Miroir task, the rename broadcast to
    every node and journaled once all took it."""
    refused = reserved.primary_key_error(primary_key)
    if refused is not None:
        raise refused
    details: dict[str, Any] = {"primaryKey": primary_key}
    if new_uid is not None and new_uid != uid:
        details.update(oldIndexUid=uid, newIndexUid=new_uid)
    else:
        new_uid = None

    async def driver(handle: DrivenTask) -> None:
        await handle.set_processing()
        meta = get_index(cluster, uid)
        if new_uid is not None:
            await _rename(cluster, handle, uid, new_uid, primary_key)
            await handle.finish("succeeded")
            return
        if primary_key is not None and primary_key != meta.primary_key:
            if meta.primary_key is not None and await _has_documents(cluster, uid):
                raise MeiliError(
                    "index_primary_key_already_exists", f"Index `{uid}`: Index already has a primary key: `{meta.primary_key}`."
                )
            await run_on(
                cluster, handle, cluster.topology.all_nodes(), "PATCH", f"/indexes/{uid}", json={"primaryKey": primary_key}
            )
            meta = get_index(cluster, uid)
            # replace: a reshard's fields (split_from, own_table) stay as they are
            updated = msgspec.structs.replace(meta, primary_key=primary_key, updated_at=now(cluster))
            await cluster.journal.append(IndexPut(meta=updated))
        await handle.finish("succeeded")

    return await cluster.tasks.enqueue_driven(index_uid=uid, type="indexUpdate", details=details, driver=driver)


# --- rename (1.50) ----------------------------------------------------------------------------


def _rename_blocked(cluster: Cluster, uids: Iterable[str]) -> MeiliError | None:
    """A rename while a node still has to receive missed writes of the index (their
    requests name it), or while a rebalance moves shards, would send those to a name
    that no longer exists: refused until the cluster is repaired."""
    names = set(uids)
    for node, rep in sorted(cluster.state.repairs.items()):
        if rep.refill or any(h.request.index in names for h in rep.hints):
            return MeiliError(
                "miroir_node_unavailable",
                f"Node `{node}` is being repaired (missed writes to replay or a refill): an index cannot be renamed "
                "until it is. Retry once `/_miroir/topology` shows it repaired.",
            )
    if cluster.state.rebalance.plan is not None:
        return MeiliError(
            "miroir_node_unavailable", "A rebalance is in progress: an index cannot be renamed until it finishes."
        )
    resharding = sorted(names & set(cluster.state.reshards))
    if resharding:
        return MeiliError(
            "miroir_node_unavailable",
            f"Index `{resharding[0]}` is being resharded: it cannot be renamed until the reshard finishes.",
        )
    return None


def moved_records(state: Any, src: str, dst: str, stamp: str) -> list[Any]:
    """Journal records that give name `dst` the index now named `src` (metadata, settings
    and the attributes seen); the caller removes or overwrites `src`."""
    meta = state.indexes[src]
    settings = state.index_settings.get(src)
    moved = IndexMeta(
        uid=dst,
        primary_key=meta.primary_key,
        shards=meta.shards,  # documents keep the placement of their S
        placement=meta.placement,
        settings_version=meta.settings_version + 1,
        created_at=meta.created_at,
        updated_at=stamp,
    )
    return [
        IndexPut(meta=moved),
        IndexFieldsSeen(uid=dst, fields=list(state.index_fields.get(src, ()))),
        IndexSettingsPut(
            uid=dst, settings=settings or core_settings.default_client_view(), version=moved.settings_version
        ),
    ]


async def _rename(cluster: Cluster, handle: DrivenTask, uid: str, new_uid: str, primary_key: str | None) -> None:
    if new_uid in cluster.state.indexes:
        raise index_already_exists(new_uid)
    blocked = _rename_blocked(cluster, (uid,))
    if blocked is not None:
        raise blocked
    first, second = sorted((uid, new_uid))
    # Both names held: no write of `uid` is sent (or implicitly creates `new_uid`) between
    # the nodes' rename and Miroir's.
    async with index_lock(cluster, first), index_lock(cluster, second):
        body: dict[str, Any] = {"uid": new_uid}
        if primary_key is not None:
            body["primaryKey"] = primary_key
        await run_on(cluster, handle, cluster.topology.all_nodes(), "PATCH", f"/indexes/{uid}", json=body)
        records = moved_records(cluster.state, uid, new_uid, now(cluster))
        if primary_key is not None:
            meta = records[0].meta
            records[0] = IndexPut(meta=msgspec.structs.replace(meta, primary_key=primary_key))
        await cluster.journal.append(*records, IndexRemoved(uid=uid))


# --- deletion -----------------------------------------------------------------------------


async def delete_index(cluster: Cluster, uid: str) -> TaskRecord:
    """`DELETE /indexes/{uid}`: delete on every node, then forget the index."""
    details: dict[str, Any] = {"deletedDocuments": None}

    async def driver(handle: DrivenTask) -> None:
        await handle.set_processing()
        try:
            get_index(cluster, uid)
            node_tasks, errors = await enqueue_on(cluster, cluster.topology.all_nodes(), "DELETE", f"/indexes/{uid}")
            errors = {n: e for n, e in errors.items() if getattr(e, "code", None) != "index_not_found"}
            await handle.add_node_tasks(node_tasks)
            if errors:
                raise first_error(errors)
            views, failed = await wait_all(cluster, node_tasks)
            failed = {n: e for n, e in failed.items() if e.code != "index_not_found"}
            if failed:
                raise first_error(failed)
            # Count each document once: per group sum // RF (the fold's rule).
            ok_views = {n: {**v, "status": "succeeded"} for n, v in views.items()}
            topo = cluster.topology
            folded = fold(
                "indexDeletion",
                {"deletedDocuments": 0},
                ok_views,
                group_of={n: m.group for n, m in topo.nodes.items()},
                rf=topo.rf,
            )
            async with index_lock(cluster, uid):
                await cluster.journal.append(IndexRemoved(uid=uid))
        except MeiliError as exc:
            await handle.finish("failed", error=exc, details={"deletedDocuments": 0})
            return
        await handle.finish("succeeded", details=folded.details)

    return await cluster.tasks.enqueue_driven(index_uid=uid, type="indexDeletion", details=details, driver=driver)


# --- swap -----------------------------------------------------------------------------------


validate_swaps = core_swaps.validate_swaps  # shared with the devnode


async def swap_indexes(
    cluster: Cluster, pairs: list[tuple[str, str]], renames: list[bool] | None = None
) -> TaskRecord:
    """`POST /swap-indexes`: swap (or, with 1.50's `rename: true`, move `a` to the free
    name `b`) on every node, then in Miroir's metadata: one task, one journal append."""
    renames = list(renames) if renames is not None else [False] * len(pairs)
    details = {"swaps": [{"indexes": [a, b], "rename": r} for (a, b), r in zip(pairs, renames)]}

    async def driver(handle: DrivenTask) -> None:
        await handle.set_processing()
        state = cluster.state
        needed = [u for (a, b), r in zip(pairs, renames) for u in ((a,) if r else (a, b))]
        missing = sorted({u for u in needed if u not in state.indexes})
        if missing:
            names = ", ".join(f"`{u}`" for u in missing)
            raise MeiliError("index_not_found", f"Indexes {names} not found." if len(missing) > 1 else f"Index {names} not found.")
        taken = [(a, b) for (a, b), r in zip(pairs, renames) if r and b in state.indexes]
        if len(taken) == 1:
            a, b = taken[0]
            raise MeiliError(
                "index_already_exists",
                f"Cannot rename `{a}` to `{b}` as the index already exists. Hint: You can remove `{b}` first and "
                "then do your remove.",
            )
        if taken:
            names = ", ".join(f"`{a}`" for a, _ in taken)
            raise MeiliError(
                "index_already_exists",
                "The following indexes are being renamed but cannot because their new name conflicts with an already "
                f"existing index: {names}. Renaming doesn't overwrite the other index name.",
            )
        if any(renames):
            blocked = _rename_blocked(cluster, [a for (a, _), r in zip(pairs, renames) if r])
            if blocked is not None:
                raise blocked
        async with contextlib.AsyncExitStack() as locks:
            for name in sorted({u for pair in pairs for u in pair}):
                await locks.enter_async_context(index_lock(cluster, name))
            resharding = sorted({u for pair in pairs for u in pair} & set(state.reshards))
            if resharding:  # its reshard is journaled under its name (engine/reshard.py)
                raise MeiliError(
                    "miroir_node_unavailable",
                    f"Index `{resharding[0]}` is being resharded: it cannot be swapped until the reshard finishes.",
                )
            await run_on(cluster, handle, cluster.topology.all_nodes(), "POST", "/swap-indexes", json=details["swaps"])
            stamp = now(cluster)
            records: list[Any] = []
            for (a, b), rename in zip(pairs, renames):
                if rename:
                    records += moved_records(state, a, b, stamp)
                    records.append(IndexRemoved(uid=a))
                else:
                    records += moved_records(state, b, a, stamp) + moved_records(state, a, b, stamp)
            await cluster.journal.append(*records)
        await handle.finish("succeeded")

    return await cluster.tasks.enqueue_driven(index_uid=None, type="indexSwap", details=details, driver=driver)
