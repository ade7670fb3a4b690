"""Moving one migration unit: copy, reconcile, switch, drop (design §7).

A unit is one shard number of every index with S shards (and one placement), in one group, gaining
`targets`. Dual writes to the targets are on from the moment the plan is journaled (the
topology puts them in `write_targets`), so the copy only has to bring what existed
before; per index and target:

1. copy the shard page by page from a healthy source (`documents/fetch` with
   `filter=_miroir_shard = s`, offset cursor, `rebalancer.page_size`), writing each page
   to the target with an explicit `primaryKey` and waiting for the target's task; the
   cursor is journaled after each page, so a restart resumes there;
2. reconcile under the index's write lock (no write can interleave): wait until source
   and target have no pending task for the index, then compare the two copies document
   by document: ids only on the target are deleted there (a delete that raced the copy
   is not resurrected), ids missing or different on the target are copied (an update
   that raced a page is not lost). After the lock is released, every write reaches
   both, so the copies stay equal.

Then the switch is journaled (the targets answer reads), and after `DROP_GRACE_S` (reads
planned before the switch finish) the copies of nodes that lost the shard are deleted
(`documents/delete` with the shard filter) and the unit is journaled done.

The `Mover` owns nothing but its counters; node clients belong to the fleet. A node
that does not answer fails the unit's attempt with `MoveFailed`; the rebalancer retries.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import structlog
import trio

from miroir.core.model import (
    MigrationProgress,
    MigrationSwitched,
    MigrationUnit,
    MigrationUnitDone,
)
from miroir.core.settings import RESERVED_PREFIX
from miroir.engine.cluster import Cluster
from miroir.engine.indexes import index_lock
from miroir.net.node import NodeError, NodeUnavailable

log = structlog.get_logger("miroir.mover")

SHARD_FIELD = f"{RESERVED_PREFIX}shard"
# Deadline of one node call of the mover (a page is at most `page_size` documents).
NODE_CALL_TIMEOUT_S = 30.0
# How long the mover waits for one node task (a page write, a deletion) to finish.
NODE_TASK_TIMEOUT_S = 120.0
# How long the reconciliation waits for a node's queue of the index to drain before it
# compares anyway (the compare is repeated at the next attempt if it was wrong).
SETTLE_TIMEOUT_S = 60.0
TASK_POLL_S = 0.01
TASK_POLL_MAX_S = 0.1
# Page size of the reconciliation's reads (documents, both sides).
RECONCILE_PAGE = 1_000
# Reads planned just before a switch may still reach an old owner; its copy is deleted
# only after this delay (well above a loopback search, below any client timeout).
DROP_GRACE_S = 1.0


class MoveFailed(Exception):
    """A unit could not progress now (a node unreachable or refusing); retried later.

    `code` is the node's error code when a node refused or failed the task (e.g.
    `index_already_exists`), None when it did not answer.
    """

    def __init__(self, message: str, *, code: str | None = None):
        super().__init__(message)
        self.code = code


def shard_filter(shard: int) -> str:
    return f"{SHARD_FIELD} = {shard}"


async def call(cluster: Cluster, node: str, method: str, path: str, **kwargs: Any) -> Any:
    client = cluster.fleet.get(node)
    if client is None:
        raise MoveFailed(f"node `{node}` is not in the fleet")
    try:
        with trio.fail_after(NODE_CALL_TIMEOUT_S):
            return await client.call(method, path, timeout_s=NODE_CALL_TIMEOUT_S, **kwargs)
    except trio.TooSlowError:
        raise MoveFailed(f"node `{node}`: no answer to {method} {path} within {NODE_CALL_TIMEOUT_S:g}s") from None
    except NodeUnavailable as e:
        raise MoveFailed(str(e)) from None


async def wait_task(cluster: Cluster, node: str, task_uid: int) -> dict:
    """Poll one node task until it is finished; raise MoveFailed unless it succeeded."""
    delay = TASK_POLL_S
    with trio.move_on_after(NODE_TASK_TIMEOUT_S):
        while True:
            view = await call(cluster, node, "GET", f"/tasks/{task_uid}")
            status = view.get("status")
            if status == "succeeded":
                return view
            if status in ("failed", "canceled"):
                error = view.get("error")
                code = error.get("code") if isinstance(error, dict) else None
                raise MoveFailed(f"node `{node}` task {task_uid} {status}: {error}", code=code)
            await trio.sleep(delay)
            delay = min(delay * 2, TASK_POLL_MAX_S)
    raise MoveFailed(f"node `{node}` task {task_uid} not finished within {NODE_TASK_TIMEOUT_S:g}s")


async def enqueue_and_wait(cluster: Cluster, node: str, method: str, path: str, **kwargs: Any) -> None:
    try:
        body = await call(cluster, node, method, path, **kwargs)
    except NodeError as e:
        raise MoveFailed(f"node `{node}` refused {method} {path}: {e.message}", code=e.code) from None
    await wait_task(cluster, node, int(body["taskUid"]))


async def settle(cluster: Cluster, node: str, uid: str) -> None:
    """Wait until `node` has no enqueued or processing task for index `uid` (bounded)."""
    delay = TASK_POLL_S
    with trio.move_on_after(SETTLE_TIMEOUT_S):
        while True:
            body = await call(
                cluster, node, "GET", "/tasks", params={"indexUids": uid, "statuses": "enqueued,processing", "limit": 1}
            )
            if not body.get("results"):
                return
            await trio.sleep(delay)
            delay = min(delay * 2, TASK_POLL_MAX_S)
    log.warning("mover.settle_timeout", node=node, index=uid)


async def fetch_page(cluster: Cluster, node: str, uid: str, shard: int, offset: int, limit: int) -> tuple[list[dict], int]:
    try:
        body = await call(
            cluster,
            node,
            "POST",
            f"/indexes/{uid}/documents/fetch",
            # retrieveVectors: embeddings travel with their documents (none computed again)
            json={"filter": shard_filter(shard), "offset": offset, "limit": limit, "retrieveVectors": True},
        )
    except NodeError as e:
        raise MoveFailed(f"node `{node}` refused to list shard {shard} of `{uid}`: {e.message}") from None
    return list(body.get("results") or []), int(body.get("total") or 0)


async def fetch_shard(cluster: Cluster, node: str, uid: str, shard: int, pk: str) -> dict[str, dict]:
    """Every document of one shard on one node, by canonical id."""
    out: dict[str, dict] = {}
    offset = 0
    while True:
        docs, _ = await fetch_page(cluster, node, uid, shard, offset, RECONCILE_PAGE)
        for d in docs:
            out[str(d.get(pk))] = d
        if len(docs) < RECONCILE_PAGE:
            return out
        offset += len(docs)


class Mover:
    """Runs units of the current plan; `throttle(n)` and `gate()` come from the rebalancer."""

    def __init__(
        self,
        cluster: Cluster,
        *,
        refresh: Callable[[], Awaitable[None]],
        throttle: Callable[[int], Awaitable[None]],
        gate: Callable[[], Awaitable[None]],
        on_total: Callable[[str, str, str, int], None],
        healthy: Callable[[], frozenset[str] | None],
    ):
        self.cluster = cluster
        self._refresh = refresh
        self._throttle = throttle
        self._gate = gate
        self._on_total = on_total
        self._healthy = healthy

    def _indexes(self, unit: MigrationUnit) -> list[tuple[str, str]]:
        """(uid, primary key) of every index the unit moves (its S and placement) that
        has documents' key."""
        return [
            (uid, meta.primary_key)
            for uid, meta in sorted(self.cluster.state.indexes.items())
            if (meta.shards, meta.placement) == (unit.shards, unit.placement) and meta.primary_key is not None
            and not meta.own_table  # being resharded: its own table (engine/reshard.py)
        ]

    def _sources(self, unit: MigrationUnit) -> list[str]:
        """Candidates in order: healthy first, then the rest (a probe may be stale)."""
        cands = [
            n
            for n in dict.fromkeys([*unit.sources, *unit.fallbacks])
            if n not in unit.targets and n in self.cluster.fleet and not self._removed(n)
        ]
        healthy = self._healthy()
        if healthy is not None:
            cands.sort(key=lambda n: n not in healthy)
        return cands

    async def run_unit(self, plan_id: int, key: str, unit: MigrationUnit) -> None:
        if unit.status in ("pending", "copying"):
            for uid, pk in self._indexes(unit):
                for target in unit.targets:
                    if unit.cursors.get(uid, {}).get(target, 0) == -1:
                        continue
                    if target not in self.cluster.fleet or self._removed(target):
                        continue  # force-removed meanwhile: the next plan takes it out
                    await self._copy(plan_id, key, unit, uid, pk, target)
            refilling = [t for t in unit.targets if self._refilling(t)]
            if refilling:
                # A refill of a target (its disk lost mid-move) reconciles with the shard's
                # readable owners: they must stay the old ones, up to date, until it ends.
                raise MoveFailed(f"unit {key}: target(s) {refilling} being refilled; switch postponed")
            await self.cluster.journal.append(MigrationSwitched(plan_id=plan_id, unit=key))
            await self._refresh()
            log.info("mover.switched", unit=key, targets=unit.targets, copied=unit.copied)
        if unit.status == "switched":
            indexes = self._indexes(unit)
            drops = [n for n in unit.drops if n in self.cluster.fleet and not self._removed(n)]
            if indexes and drops:
                await trio.sleep(DROP_GRACE_S)
            for node in drops:
                for uid, _ in indexes:
                    await self._drop(node, uid, unit.shard)
            await self.cluster.journal.append(MigrationUnitDone(plan_id=plan_id, unit=key))
            log.info("mover.dropped", unit=key, nodes=drops)

    def _refilling(self, node: str) -> bool:
        rep = self.cluster.state.repairs.get(node)
        return rep is not None and rep.refill

    def _removed(self, node: str) -> bool:
        meta = self.cluster.state.nodes.get(node)
        return meta is None or meta.state == "removed"

    async def _drop(self, node: str, uid: str, shard: int) -> None:
        try:
            await enqueue_and_wait(
                self.cluster, node, "POST", f"/indexes/{uid}/documents/delete", json={"filter": shard_filter(shard)}
            )
        except MoveFailed as e:
            if e.code == "index_not_found":
                return
            raise

    async def _copy(self, plan_id: int, key: str, unit: MigrationUnit, uid: str, pk: str, target: str) -> None:
        page_size = self.cluster.config.rebalancer.page_size
        errors: list[str] = []
        sources = self._sources(unit)
        if not sources:
            # Every copy was on nodes that are gone (RF 1, one group, a dead node forced
            # out): there is nothing left to copy; the target starts from dual writes.
            log.warning("mover.no_source", unit=key, index=uid, target=target)
            await self.cluster.journal.append(
                MigrationProgress(plan_id=plan_id, unit=key, index=uid, target=target, cursor=-1, copied=0)
            )
            return
        for source in sources:
            try:
                cursor = unit.cursors.get(uid, {}).get(target, 0)
                while True:
                    await self._gate()
                    docs, total = await fetch_page(self.cluster, source, uid, unit.shard, cursor, page_size)
                    self._on_total(key, uid, target, total)
                    if docs:
                        await self._throttle(len(docs))
                        await enqueue_and_wait(
                            self.cluster,
                            target,
                            "POST",
                            f"/indexes/{uid}/documents",
                            params={"primaryKey": pk},
                            json=docs,
                        )
                        cursor += len(docs)
                        await self.cluster.journal.append(
                            MigrationProgress(
                                plan_id=plan_id, unit=key, index=uid, target=target, cursor=cursor, copied=len(docs)
                            )
                        )
                    if len(docs) < page_size:
                        break
                await self._gate()
                await self._reconcile(
                    uid, pk, unit.shard, source, target,
                    done=lambda fixed: MigrationProgress(
                        plan_id=plan_id, unit=key, index=uid, target=target, cursor=-1, copied=fixed
                    ),
                )
                return
            except MoveFailed as e:
                errors.append(str(e))
                log.warning("mover.source_failed", unit=key, index=uid, source=source, target=target, error=str(e))
        raise MoveFailed(f"unit {key}, index `{uid}` -> `{target}`: no source could be copied: {'; '.join(errors) or 'none'}")

    async def _reconcile(
        self, uid: str, pk: str, shard: int, source: str, target: str, done: Callable[[int], Any]
    ) -> int:
        """Make the target's copy of the shard equal to the source's; returns docs copied.

        `done(fixed)` is the record that says so, journaled before the lock is released:
        from that record on, the target's copy counts as complete (a node-loss check or a
        refill of the target includes the shard), so no write may slip between the two.
        """
        async with index_lock(self.cluster, uid):
            healthy = self._healthy()
            if healthy is not None and source not in healthy:
                # Behind (a backlog, a refill) or down: writes the target took directly
                # but the source has yet to replay would be undone on the target.
                raise MoveFailed(f"source `{source}` is not readable: not reconciling from it")
            await settle(self.cluster, source, uid)
            await settle(self.cluster, target, uid)
            src = await fetch_shard(self.cluster, source, uid, shard, pk)
            dst = await fetch_shard(self.cluster, target, uid, shard, pk)
            stale = sorted(i for i in dst if i not in src)
            missing = [d for i, d in src.items() if dst.get(i) != d]
            if stale:
                await enqueue_and_wait(
                    self.cluster, target, "POST", f"/indexes/{uid}/documents/delete-batch", json=_ids(stale, dst, pk)
                )
            for i in range(0, len(missing), RECONCILE_PAGE):
                await enqueue_and_wait(
                    self.cluster,
                    target,
                    "POST",
                    f"/indexes/{uid}/documents",
                    params={"primaryKey": pk},
                    json=missing[i : i + RECONCILE_PAGE],
                )
            record = done(len(missing))
            if record is not None:  # a reshard journals its switch itself (engine/reshard.py)
                await self.cluster.journal.append(record)
        if stale or missing:
            log.info("mover.reconciled", index=uid, shard=shard, target=target, deleted=len(stale), copied=len(missing))
        return len(missing)


def _ids(ids: Sequence[str], docs: dict[str, dict], pk: str) -> list[Any]:
    return [docs[i].get(pk, i) for i in ids]
