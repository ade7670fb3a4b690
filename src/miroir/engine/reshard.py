"""Online resharding of one index: S -> S2 = k x S, and to placement 2 (issue 17).

`start_reshard` (the admin route, `miroir reshard`) checks the request, then under the
index's write lock (no write in flight) journals one `ReshardStarted`: from that record on
the index has S2 shards, so every write is tagged and routed by S2, and each new shard is
owned by its parent's owners (core/reshard.py), who already hold its documents. The
service (`ReshardService`, one per cluster) then takes the reshard through its phases,
each step journaled, so a restart after `kill -9` resumes where it stood:

1. **splitting**: on every owner of every parent shard, under the index lock (a write
   cannot interleave), the documents still tagged with the parent are read and those that
   belong to another child are written back with their new tag (`ReshardRetagged` per
   node and parent; a pair redone after a crash finds only what is left). A node that is
   down, or has missed writes to replay, is waited for: its backlog may hold writes
   tagged before the split. Then `ReshardSplit`: reads pin shards again.
2. **moving**: shards whose final owners differ (the shared placement-2 table of S2, or
   the balanced table reached with the fewest moves) get dual writes on their new
   owners from `ReshardSplit` on; each is copied and reconciled under the index lock
   (engine/mover.py), switched (`ReshardSwitched`), and after `DROP_GRACE_S` deleted from
   the nodes that lost it (`ReshardDropped`).
3. `ReshardDone`: the index uses the shared table of S2, which the reshard's final
   table becomes; its `indexReshard` task succeeds.

The reshard is a task of `/tasks` (type `indexReshard`, no index uid: an index's later
writes are reported without waiting for it; `details.indexUid` names it). A membership
change waits for it (the rebalancer plans none while one runs), and one cannot start
while a rebalance runs.
"""

from __future__ import annotations

from typing import Any

import msgspec
import structlog
import trio

from miroir.core import reshard as plan
from miroir.core.errors import MeiliError, index_not_found
from miroir.core.model import (
    Reshard,
    ReshardDone,
    ReshardDropped,
    ReshardRetagged,
    ReshardSplit,
    ReshardStarted,
    ReshardSwitched,
    TaskUpdated,
)
from miroir.core.placement import Layout
from miroir.core.settings import SHARD_FIELD
from miroir.core.taskfold import summarized
from miroir.engine.cluster import Cluster
from miroir.engine.indexes import index_lock
from miroir.engine.mover import (
    DROP_GRACE_S,
    RECONCILE_PAGE,
    MoveFailed,
    Mover,
    call,
    enqueue_and_wait,
    fetch_page,
    settle,
    shard_filter,
)
from miroir.engine.rebalancer import desired_members
from miroir.engine.tasks import DRIVEN_KEY, RESUMABLE_KEY
from miroir.engine.topology import committed_members
from miroir.net.node import NodeError

log = structlog.get_logger("miroir.reshard")

TASK_TYPE = "indexReshard"
RETRY_DELAY_S = 1.0
# Parent shards re-tagged on one node per hold of the index's write lock.
RETAG_PARENTS = 4


def _refused(code: str, message: str, status: int = 400) -> MeiliError:
    return MeiliError(code, message, status=status, type="invalid_request")


async def start_reshard(cluster: Cluster, uid: str, shards: object) -> dict[str, Any]:
    """Journal the start of a reshard of `uid` to `shards`; the summarized task (202)."""
    service = cluster.resharder
    if service is None:
        raise MeiliError("miroir_not_ready", "The reshard service is not running yet.")
    async with index_lock(cluster, uid):
        state = cluster.state
        meta = state.indexes.get(uid)
        if meta is None:
            raise index_not_found(uid)
        why = plan.check_shards(meta.shards, shards)
        if why is not None:
            raise _refused("miroir_invalid_shards", why)
        assert isinstance(shards, int)
        if shards == meta.shards and meta.placement == 2:
            raise _refused(
                "miroir_invalid_shards",
                f"Index `{uid}` already has {shards} shards on placement 2: nothing to do.",
            )
        if uid in state.reshards:
            raise _refused("miroir_reshard_running", f"Index `{uid}` is being resharded already.", 409)
        if state.rebalance.paused:
            raise _refused("miroir_rebalance_paused", "The rebalance is paused: resume it first.", 409)
        rb = state.rebalance
        if rb.plan is not None or desired_members(cluster) != committed_members(state.nodes, rb):
            raise _refused(
                "miroir_rebalance_running",
                "A rebalance is running or waiting to be planned: reshard once it is done "
                "(`miroir rebalance --watch`).",
                409,
            )
        topo = cluster.topology
        shared_used = shards == cluster.config.cluster.shards or any(
            m.uid != uid and m.layout == Layout(shards, 2) for m in state.indexes.values()
        )
        owners: dict[str, list[list[str]]] = {}
        final: dict[str, list[list[str]]] = {}
        for g, ids in topo.groups.items():
            owners[g] = plan.inherited_table(topo.table(meta.layout, g, False), shards)
            shared = topo.table(Layout(shards, 2), g, False) if shared_used else None
            weights = {n: topo.weights.get(n, 1.0) for n in ids}
            final[g] = plan.final_table(owners[g], weights, cluster.rf, shared)
        # Two reshards ending on the same S2 each write the shared table at their end:
        # only ones that agree on it may run together.
        clash = [o.uid for o in state.reshards.values() if o.shards == shards and o.final != final]
        if clash:
            raise _refused(
                "miroir_reshard_running",
                f"Index `{clash[0]}` is being resharded to {shards} shards from another table: reshard `{uid}` once it is done.",
                409,
            )
        details = {
            "indexUid": uid, "oldShards": meta.shards, "newShards": shards,
            "oldPlacement": meta.placement, "newPlacement": 2,
            DRIVEN_KEY: True, RESUMABLE_KEY: True,
        }
        task = await cluster.tasks.enqueue(index_uid=None, type=TASK_TYPE, node_tasks={}, details=details)
        answer = summarized(task)  # as enqueued (Meilisearch answers a new task so)
        if (t := cluster.state.tasks.get(task.uid)) is not None and t.status == "canceled":
            return answer  # canceled in the instant it was enqueued: nothing starts
        r = Reshard(
            uid=uid, task=task.uid, old_shards=meta.shards, old_placement=meta.placement, shards=shards,
            owners=owners, final=final, inherited={g: [list(o) for o in t] for g, t in owners.items()},
        )
        new_meta = msgspec.structs.replace(
            meta, shards=shards, placement=2, split_from=meta.shards if shards != meta.shards else 0, own_table=True
        )
        now = cluster.tasks.now_rfc3339()
        await cluster.journal.append(
            ReshardStarted(reshard=r, meta=new_meta), TaskUpdated(uid=task.uid, status="processing", started_at=now)
        )
        await cluster.refresh_topology()
    log.info("reshard.started", index=uid, old=meta.shards, new=shards, placement=meta.placement,
             moves=len(plan.moves(r.inherited, r.final)))
    service.wake()
    return answer


def reshard_status(cluster: Cluster, errors: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Per reshard in progress: its phase and what is done (`GET /_miroir/rebalance`)."""
    out = []
    for uid, r in sorted(cluster.state.reshards.items()):
        pairs = plan.retag_pairs(r.inherited, r.old_shards, r.shards)
        mv = plan.moves(r.inherited, r.final)
        switched = sum(1 for m in mv if m.shard in r.switched.get(m.group, ()))
        dropped = sum(1 for m in mv if m.shard in r.dropped.get(m.group, ()))
        out.append({
            "indexUid": uid, "taskUid": r.task, "oldShards": r.old_shards, "newShards": r.shards,
            "oldPlacement": r.old_placement, "phase": r.phase,
            "retagged": len([p for p in pairs if f"{p[0]}:{p[1]}" in r.retagged]), "toRetag": len(pairs),
            "documentsRetagged": r.retagged_docs,
            "moves": len(mv), "switched": switched, "dropped": dropped, "documentsCopied": r.copied,
            "error": (errors or {}).get(uid),
        })
    return out


class ReshardService:
    """Takes every reshard of the journal to its end (see module doc)."""

    def __init__(self, cluster: Cluster):
        self.cluster = cluster
        self._wake = trio.Event()
        self.errors: dict[str, str] = {}

        async def nothing(*_: Any) -> None:
            return None

        self.mover = Mover(
            cluster, refresh=cluster.refresh_topology, throttle=nothing, gate=nothing,
            on_total=lambda *_: None, healthy=cluster.healthy_nodes,
        )

    def wake(self) -> None:
        self._wake.set()

    def status(self) -> list[dict[str, Any]]:
        return reshard_status(self.cluster, self.errors)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await self._fail_lost_tasks()
        task_status.started()
        while True:
            failed = False
            await self._fail_lost_tasks()  # an index deleted mid-reshard
            for uid in sorted(self.cluster.state.reshards):
                try:
                    await self._advance(uid)
                    self.errors.pop(uid, None)
                except (MoveFailed, NodeError) as e:
                    failed = True
                    self.errors[uid] = str(e)
                    log.warning("reshard.step_failed", index=uid, error=str(e))
            with trio.move_on_after(RETRY_DELAY_S if failed else float("inf")):
                await self._wake.wait()
            self._wake = trio.Event()

    async def _fail_lost_tasks(self) -> None:
        """An `indexReshard` task whose reshard is gone (the index deleted, or a crash
        between the task and the start record) fails; one whose reshard ended succeeds."""
        state = self.cluster.state
        for t in list(self.cluster.tasks.open_tasks()):
            if t.type != TASK_TYPE:
                continue
            uid = (t.details or {}).get("indexUid")
            # Under the index's lock: `start_reshard` journals the task and the start in it.
            async with index_lock(self.cluster, str(uid)):
                if not any(r.task == t.uid for r in state.reshards.values()):
                    await self._finish(t.uid, uid, ok=False)

    async def _finish(self, task_uid: int, uid: str | None, *, ok: bool) -> None:
        rec = self.cluster.state.tasks.get(task_uid)
        if rec is None or rec.status in ("succeeded", "failed", "canceled"):
            return
        now = self.cluster.tasks.now_rfc3339()
        error = None if ok else MeiliError(
            "index_not_found" if uid not in self.cluster.state.indexes else "internal",
            f"Index `{uid}` not found." if uid not in self.cluster.state.indexes else "The reshard did not start.",
        ).to_dict()
        details = {k: v for k, v in (rec.details or {}).items() if not k.startswith("_miroir")}
        await self.cluster.journal.append(
            TaskUpdated(uid=task_uid, status="succeeded" if ok else "failed", finished_at=now, error=error,
                        details=details, started_at=None if rec.started_at else now)
        )

    async def _advance(self, uid: str) -> None:
        cluster = self.cluster
        r = cluster.state.reshards.get(uid)
        meta = cluster.state.indexes.get(uid)
        if r is None or meta is None:
            return
        pk = meta.primary_key
        if r.phase == "splitting":
            if pk is not None:
                todo: dict[str, list[int]] = {}
                for node, parent in plan.retag_pairs(r.inherited, r.old_shards, r.shards):
                    if f"{node}:{parent}" not in r.retagged:
                        todo.setdefault(node, []).append(parent)
                # A few parents at a time: the index's writes wait while a batch is re-tagged.
                for node, parents in sorted(todo.items()):
                    for i in range(0, len(parents), RETAG_PARENTS):
                        await self._retag(uid, pk, node, parents[i : i + RETAG_PARENTS], r.shards)
            await cluster.journal.append(ReshardSplit(uid=uid))
            await cluster.refresh_topology()
            log.info("reshard.split", index=uid, retagged=r.retagged_docs)
        mv = plan.moves(r.inherited, r.final)
        for m in mv:
            if m.shard in r.switched.get(m.group, ()):
                continue
            copied = 0
            if pk is not None:
                for target in m.targets:
                    copied += await self._copy(uid, pk, m, target)
            await cluster.journal.append(ReshardSwitched(uid=uid, group=m.group, shard=m.shard, copied=copied))
            await cluster.refresh_topology()
        pending = [m for m in mv if m.shard not in r.dropped.get(m.group, ())]
        if pending and any(m.drops for m in pending):
            await trio.sleep(DROP_GRACE_S)  # reads planned before the switches finish
        for m in pending:
            for node in m.drops:
                if node in cluster.fleet:
                    await self._drop(node, uid, m.shard)
            await cluster.journal.append(ReshardDropped(uid=uid, group=m.group, shard=m.shard))
        await cluster.journal.append(ReshardDone(uid=uid))
        await cluster.refresh_topology()
        await self._finish(r.task, uid, ok=True)
        log.info("reshard.done", index=uid, shards=r.shards, moves=len(mv), copied=r.copied)
        if cluster.rebalancer is not None:
            cluster.rebalancer.wake()  # a membership change may have waited for the reshard

    async def _pace(self, docs: int) -> None:
        """The rebalancer's pause (`docs` 0: never under the index lock) and docs/s
        throttle (`rebalancer.docs_per_second`) hold for a reshard's work too."""
        rb = self.cluster.rebalancer
        if rb is None:
            return
        if docs:
            await rb.throttle(docs)
        else:
            await rb.gate()

    async def _retag(self, uid: str, pk: str, node: str, parents: list[int], shards: int) -> None:
        """Re-tag the documents of `parents` on `node`, under the index lock (settled: no
        write of the index pending on the node, none can start)."""
        cluster = self.cluster
        await self._pace(0)
        async with index_lock(cluster, uid):
            if node not in cluster.healthy_nodes():
                raise MoveFailed(f"node `{node}` is not readable (down or replaying writes): its re-tag waits")
            await settle(cluster, node, uid)
            pending = await call(
                cluster, node, "GET", "/tasks", params={"indexUids": uid, "statuses": "enqueued,processing", "limit": 1}
            )
            if pending.get("results"):
                # A write not applied yet would be undone by the old version read here.
                raise MoveFailed(f"node `{node}` still has writes of `{uid}` to apply: its re-tag waits")
            kept = changed = 0
            filt = f"{SHARD_FIELD} IN [{', '.join(map(str, parents))}]"
            while True:
                try:
                    body = await call(
                        cluster, node, "POST", f"/indexes/{uid}/documents/fetch",
                        json={"filter": filt, "offset": kept, "limit": RECONCILE_PAGE, "retrieveVectors": True},
                    )
                except NodeError as e:
                    raise MoveFailed(f"node `{node}` refused to list shards {parents} of `{uid}`: {e.message}") from None
                docs = list(body.get("results") or [])
                wrong = []
                for d in docs:
                    tag = plan.needs_retag(d.get(pk), d.get(SHARD_FIELD), shards)
                    if tag is None:
                        kept += 1  # stays in the filter: the next page starts after it
                    else:
                        d[SHARD_FIELD] = tag
                        wrong.append(d)
                if wrong:
                    await self._pace(len(wrong))
                    await enqueue_and_wait(
                        cluster, node, "POST", f"/indexes/{uid}/documents", params={"primaryKey": pk}, json=wrong
                    )
                    changed += len(wrong)
                if len(docs) < RECONCILE_PAGE:
                    break
            await cluster.journal.append(
                *[ReshardRetagged(uid=uid, node=node, parent=p, docs=changed if i == 0 else 0) for i, p in enumerate(parents)]
            )
        log.info("reshard.retagged", index=uid, node=node, parents=parents, docs=changed)

    async def _copy(self, uid: str, pk: str, m: plan.Move, target: str) -> int:
        """Copy shard `m.shard` to `target` from one of its owners, then reconcile."""
        cluster = self.cluster
        page_size = cluster.config.rebalancer.page_size
        healthy = cluster.healthy_nodes()
        sources = sorted((n for n in m.sources if n != target and n in cluster.fleet), key=lambda n: n not in healthy)
        errors: list[str] = []
        for source in sources:
            try:
                offset = 0
                while True:
                    await self._pace(0)
                    docs, _ = await fetch_page(cluster, source, uid, m.shard, offset, page_size)
                    if docs:
                        await self._pace(len(docs))
                        await enqueue_and_wait(
                            cluster, target, "POST", f"/indexes/{uid}/documents", params={"primaryKey": pk}, json=docs
                        )
                        offset += len(docs)
                    if len(docs) < page_size:
                        break
                await self.mover._reconcile(uid, pk, m.shard, source, target, done=lambda _fixed: None)
                return offset
            except MoveFailed as e:
                errors.append(str(e))
        raise MoveFailed(f"reshard of `{uid}`: shard {m.shard} -> `{target}`: no source could be copied: {'; '.join(errors) or 'none'}")

    async def _drop(self, node: str, uid: str, shard: int) -> None:
        try:
            await enqueue_and_wait(
                self.cluster, node, "POST", f"/indexes/{uid}/documents/delete", json={"filter": shard_filter(shard)}
            )
        except MoveFailed as e:
            if e.code != "index_not_found":
                raise


async def run_resharder(cluster: Cluster, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """The reshard service of `cluster` (one per cluster)."""
    if cluster.resharder is not None:
        task_status.started()
        return
    service = ReshardService(cluster)
    cluster.resharder = service
    try:
        await service.run(task_status=task_status)
    finally:
        if cluster.resharder is service:
            cluster.resharder = None
