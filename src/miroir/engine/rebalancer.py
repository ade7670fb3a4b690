"""The rebalancer: node admin operations, migration plans and the service that runs them.

Admin operations (`add_node`, `drain_node`, `remove_node`, `set_paused`) journal node
state changes (`NodePut` / `NodeRemoved`) and then plan: the *desired* membership is the
joining and active nodes by group; the *committed* one is `rebalance.members` (design
§7). When they differ and no plan runs, `plan_change` (core/moves.py) gives the copies
and drops, grouped into units (S, shard, group) -- one unit moves that shard of every
index with S shards. Before the plan is journaled, every index is created on every
joining node with the settings of a node that has it, so that the dual writes that start
with `MigrationPlanned` land in a configured index.

`run_rebalancer(cluster)` is the service: it runs the units of the plan,
`rebalancer.max_concurrent_migrations` at a time, with a docs/s throttle shared by all
(`rebalancer.docs_per_second`, 0 = unthrottled). A unit that fails (a node down) is
retried after `RETRY_DELAY_S`; paused plans wait at the next page. When every unit is
done, `MigrationDone` commits the new membership and joining nodes become active (one
append); force-removed nodes are forgotten. A plan that was queued meanwhile (a node
added during a move) is planned next. Everything is journaled, so after a restart the
service resumes the plan where the cursors stand.
"""

from __future__ import annotations

import collections
import time
from typing import Any

import msgspec
import structlog
import trio

from miroir.core.errors import MeiliError
from miroir.core.model import (
    MembershipCommitted,
    MigrationDone,
    MigrationPlan,
    MigrationPlanned,
    MigrationUnit,
    NodeMeta,
    NodePut,
    NodeRemoved,
    RebalancePaused,
    unit_key,
)
from miroir.core.moves import Tables, plan_change, rendezvous_tables
from miroir.core.placement import CURRENT_PLACEMENT, Layout, initial_table, rebalance_table, table_key
from miroir.core.routing import NodeRef, groups_of
from miroir.engine import nodeurl
from miroir.engine.cluster import Cluster, RebalancerHandle
from miroir.engine.mover import MoveFailed, Mover, call, enqueue_and_wait
from miroir.engine.topology import committed_members
from miroir.net.node import NodeError

log = structlog.get_logger("miroir.rebalancer")

# A unit that failed (node down, refused) is tried again after this long.
RETRY_DELAY_S = 1.0
# Window of the copy rate shown by GET /_miroir/rebalance.
RATE_WINDOW_S = 10.0
DEFAULT_GROUP = "g0"


def conflict(code: str, message: str) -> MeiliError:
    return MeiliError(code, message, status=409, type="invalid_request")


def node_not_found(node_id: str) -> MeiliError:
    return MeiliError("miroir_node_not_found", f"Node `{node_id}` not found.")


def desired_members(cluster: Cluster) -> dict[str, list[str]]:
    """The owning membership asked for: joining and active nodes, by group."""
    nodes = cluster.state.nodes.values()
    return groups_of(NodeRef(n.id, n.group) for n in nodes if n.state in ("joining", "active"))


def planned_layouts(cluster: Cluster) -> list[Layout]:
    """Every layout a plan must move: those of the indexes, and the one new indexes get."""
    default = Layout(cluster.config.cluster.shards, CURRENT_PLACEMENT)
    return sorted({m.layout for m in cluster.state.indexes.values()} | {default})


def layout_name(layout: Layout) -> str:
    return str(layout.shards) if layout.placement == 1 else f"{layout.shards}p{layout.placement}"


def placement_tables(
    cluster: Cluster, layouts: list[Layout], old: dict[str, list[str]], new: dict[str, list[str]]
) -> tuple[dict[str, list[list[str]]], dict[str, list[list[str]]]]:
    """Placement 2's tables before the change (the topology's) and after it: each group's
    table rebalanced to its new members and weights with the fewest moves (a group whose
    members stay keeps its table; a new group gets the table of a fresh cluster)."""
    topo = cluster.topology
    weights = {i: n.weight for i, n in cluster.state.nodes.items()}
    before: dict[str, list[list[str]]] = {}
    after: dict[str, list[list[str]]] = {}
    for lay in layouts:
        if lay.placement != 2:
            continue
        for g in old:
            before[table_key(lay.shards, g)] = topo.table(lay, g, False)
        for g, ids in new.items():
            key, w = table_key(lay.shards, g), {n: weights.get(n, 1.0) for n in ids}
            if key not in before:  # a new group: placed as a fresh cluster would be
                after[key] = initial_table(lay.shards, w, cluster.rf)
            elif old.get(g) == ids:
                after[key] = [list(o) for o in before[key]]
            else:
                after[key] = rebalance_table(before[key], w, cluster.rf)
    return before, after


def _tables_of(
    names: dict[str, Layout], old: dict[str, list[str]], new: dict[str, list[str]], rf: int,
    old_tables: dict[str, list[list[str]]], new_tables: dict[str, list[list[str]]],
) -> Tables:
    """The planner's owner tables: routing's for placement 1, the given ones for 2."""
    v1 = rendezvous_tables({n: lay.shards for n, lay in names.items()}, old, new, rf)

    def table(name: str, group: str, after: bool) -> list[list[str]]:
        lay = names[name]
        if lay.placement == 1:
            return [list(o) for o in v1(name, group, after)]
        t = (new_tables if after else old_tables).get(table_key(lay.shards, group))
        return t if t is not None else [[] for _ in range(lay.shards)]

    return table


def node_change(cluster: Cluster, node: NodeMeta) -> list[Any]:
    """Records of a node state change; the first one also pins the current membership,
    so that what owns shards no longer follows node states (a draining or force-removed
    node owns until its shards moved)."""
    records: list[Any] = []
    rb = cluster.state.rebalance
    if rb.members is None:
        records.append(MembershipCommitted(members=committed_members(cluster.state.nodes, rb)))
    records.append(NodePut(node=node))
    return records


class Rebalancer:
    """Plans and runs migrations for one cluster (see module doc)."""

    def __init__(self, cluster: Cluster):
        self.cluster = cluster
        self._wake = trio.Event()
        self._plan_lock = trio.Lock()
        self._next_page = 0.0  # throttle: when the next page may start (trio clock)
        self._samples: collections.deque[tuple[float, int]] = collections.deque()
        self._totals: dict[tuple[str, str, str], int] = {}  # (unit, index, target) -> docs
        self.errors: dict[str, str] = {}  # unit -> last error
        self.mover = Mover(
            cluster,
            refresh=cluster.refresh_topology,
            throttle=self.throttle,
            gate=self.gate,
            on_total=self._on_total,
            healthy=cluster.healthy_nodes,
        )

    # --- plumbing for the mover ------------------------------------------------------

    def wake(self) -> None:
        self._wake.set()

    async def _wait_wake(self, wait_s: float | None = None) -> None:
        with trio.move_on_after(wait_s if wait_s is not None else float("inf")):
            await self._wake.wait()
        self._wake = trio.Event()

    async def gate(self) -> None:
        """Return when the rebalance is not paused."""
        while self.cluster.state.rebalance.paused:
            await self._wait_wake(1.0)

    async def throttle(self, n: int) -> None:
        dps = self.cluster.config.rebalancer.docs_per_second
        if dps <= 0:
            return
        now = trio.current_time()
        start = max(now, self._next_page)
        self._next_page = start + n / dps
        await trio.sleep_until(start)

    def _on_total(self, key: str, uid: str, target: str, total: int) -> None:
        self._totals[(key, uid, target)] = total

    # --- planning ----------------------------------------------------------------------

    async def ensure_plan(self) -> bool:
        """Journal a plan if the desired membership differs and none runs; True if one runs."""
        async with self._plan_lock:
            cluster = self.cluster
            rb = cluster.state.rebalance
            if rb.plan is not None:
                return True
            if cluster.state.reshards:
                return False  # a reshard moves an index on its own table: changes wait for it
            old = committed_members(cluster.state.nodes, rb)
            new = desired_members(cluster)
            if old == new:
                await self._fixups()
                return False
            layouts = planned_layouts(cluster)
            old_tables, new_tables = placement_tables(cluster, layouts, old, new)
            names = {layout_name(lay): lay for lay in layouts}
            change = plan_change(
                {name: lay.shards for name, lay in names.items()}, old, new, cluster.rf,
                tables=_tables_of(names, old, new, cluster.rf, old_tables, new_tables),
            )
            units: dict[str, MigrationUnit] = {}
            for m in change.moves:
                lay = names[m.index]
                key = unit_key(lay.shards, m.shard, m.group, lay.placement)
                u = units.get(key)
                if u is None:
                    u = units[key] = MigrationUnit(
                        shards=lay.shards, shard=m.shard, group=m.group, targets=[], sources=list(m.sources),
                        fallbacks=list(m.fallbacks), placement=lay.placement,
                    )
                u.targets.append(m.target)
            for d in change.drops:
                lay = names[d.index]
                key = unit_key(lay.shards, d.shard, d.group, lay.placement)
                u = units.get(key)
                if u is None:  # a pure drop (a node leaves, RF copies stay): nothing to copy
                    u = units[key] = MigrationUnit(
                        shards=lay.shards, shard=d.shard, group=d.group, targets=[], sources=[],
                        placement=lay.placement,
                    )
                u.drops.append(d.node)
            plan = MigrationPlan(
                id=rb.next_plan_id,
                old_groups=old,
                new_groups=new,
                units=dict(
                    sorted(units.items(), key=lambda kv: (kv[1].placement, kv[1].shards, kv[1].group, kv[1].shard))
                ),
                created_at=cluster.tasks.now_rfc3339(),
                old_tables=old_tables,
                new_tables=new_tables,
            )
            await self._prepare(plan)
            await cluster.journal.append(MigrationPlanned(plan=plan))
            await cluster.refresh_topology()
            self._totals.clear()
            self._samples.clear()
            log.info(
                "rebalance.planned", plan=plan.id, units=len(units), old=old, new=new,
                moves=sum(len(u.targets) for u in units.values()),
            )
            self.wake()
            return True

    async def _prepare(self, plan: MigrationPlan) -> None:
        """Every index exists, configured, on every node that gains shards (or joins)."""
        cluster = self.cluster
        targets = sorted({t for u in plan.units.values() for t in u.targets} | self._joining())
        if not targets:
            return
        await cluster.refresh_topology()
        for uid, meta in sorted(cluster.state.indexes.items()):
            donors = [n for g in plan.old_groups.values() for n in g if n not in targets and n in cluster.fleet]
            settings: dict | None = None
            for donor in donors:
                try:
                    settings = await call(cluster, donor, "GET", f"/indexes/{uid}/settings")
                    break
                except (MoveFailed, NodeError) as e:
                    log.warning("rebalance.settings_donor_failed", index=uid, node=donor, error=str(e))
            for target in targets:
                if target not in cluster.fleet:
                    continue
                await self._ensure_index(target, uid, meta.primary_key, settings)

    def _joining(self) -> set[str]:
        return {i for i, n in self.cluster.state.nodes.items() if n.state == "joining"}

    async def _ensure_index(self, node: str, uid: str, pk: str | None, settings: dict | None) -> None:
        cluster = self.cluster
        try:
            await call(cluster, node, "GET", f"/indexes/{uid}")
        except NodeError as e:
            if e.code != "index_not_found":
                raise MoveFailed(f"node `{node}`: {e.message}") from None
            try:
                await enqueue_and_wait(cluster, node, "POST", "/indexes", json={"uid": uid, "primaryKey": pk})
            except MoveFailed as e2:
                if e2.code != "index_already_exists":
                    raise
        if settings is not None:
            await enqueue_and_wait(cluster, node, "PATCH", f"/indexes/{uid}/settings", json=settings)

    async def _fixups(self) -> None:
        """Node states that follow the committed membership (also after a torn append)."""
        cluster = self.cluster
        rb = cluster.state.rebalance
        if rb.members is None or rb.plan is not None:
            return
        records = self._node_records(rb.members)
        if records:
            await cluster.journal.append(*records)
            await cluster.refresh_topology()

    def _node_records(self, members: dict[str, list[str]]) -> list[Any]:
        """Joining owners become active; removed nodes that own nothing are forgotten."""
        owning = {n for ids in members.values() for n in ids}
        records: list[Any] = []
        for n in self.cluster.state.nodes.values():
            if n.state == "joining" and n.id in owning:
                records.append(NodePut(node=msgspec.structs.replace(n, state="active")))
            elif n.state == "removed" and n.id not in owning:
                records.append(NodeRemoved(id=n.id))
        return records

    # --- the service -----------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await self.cluster.refresh_topology()
        task_status.started()
        while True:
            try:
                running = await self.ensure_plan()
            except (MoveFailed, NodeError) as e:
                log.warning("rebalance.plan_failed", error=str(e))
                await self._wait_wake(RETRY_DELAY_S)
                continue
            if not running:
                await self._wait_wake()
                continue
            await self.gate()
            await self._run_plan()

    async def _run_plan(self) -> None:
        cluster = self.cluster
        plan = cluster.state.rebalance.plan
        assert plan is not None
        limit = trio.CapacityLimiter(cluster.config.rebalancer.max_concurrent_migrations)
        failed = False

        async def one(key: str, unit: MigrationUnit) -> None:
            nonlocal failed
            async with limit:
                try:
                    await self.mover.run_unit(plan.id, key, unit)
                    self.errors.pop(key, None)
                except (MoveFailed, NodeError) as e:
                    failed = True
                    self.errors[key] = str(e)
                    log.warning("rebalance.unit_failed", unit=key, error=str(e))

        async with trio.open_nursery() as nursery:
            for key, unit in plan.units.items():
                if unit.status != "done":
                    nursery.start_soon(one, key, unit)
        if failed:
            await trio.sleep(RETRY_DELAY_S)
            return
        assert all(u.status == "done" for u in plan.units.values())
        summary = self._summary(plan)
        # One append: the new membership and the node states that follow from it.
        await cluster.journal.append(
            MigrationDone(plan_id=plan.id, summary=summary), *self._node_records(plan.new_groups)
        )
        await cluster.refresh_topology()
        log.info("rebalance.done", **summary)

    def _summary(self, plan: MigrationPlan) -> dict[str, Any]:
        return {
            "plan": plan.id,
            "units": len(plan.units),
            "moves": sum(len(u.targets) for u in plan.units.values()),
            "documentsCopied": sum(u.copied for u in plan.units.values()),
            "createdAt": plan.created_at,
            "finishedAt": self.cluster.tasks.now_rfc3339(),
            "oldGroups": plan.old_groups,
            "newGroups": plan.new_groups,
            "movedUnits": [
                {
                    "shards": u.shards, "placement": u.placement, "shard": u.shard, "group": u.group,
                    "targets": u.targets, "copied": u.copied,
                }
                for u in plan.units.values()
                if u.targets
            ],
        }

    # --- status --------------------------------------------------------------------------

    def rate(self, copied: int) -> float:
        now = time.monotonic()
        self._samples.append((now, copied))
        while len(self._samples) > 2 and now - self._samples[0][0] > RATE_WINDOW_S:
            self._samples.popleft()
        t0, c0 = self._samples[0]
        return (copied - c0) / (now - t0) if now > t0 else 0.0

    def status(self) -> dict[str, Any]:
        rb = self.cluster.state.rebalance
        plan = rb.plan
        out: dict[str, Any] = {"paused": rb.paused, "last": rb.last}
        resharder = self.cluster.resharder
        out["reshards"] = resharder.status() if resharder is not None else []
        if plan is None:
            idle = "resharding" if out["reshards"] else "idle"
            out.update(status="paused" if rb.paused else idle, plan=None, progress=None)
            pending = desired_members(self.cluster) != committed_members(self.cluster.state.nodes, rb)
            # The plan is journaled done but the topology not rebuilt yet (an await away):
            # owners already switched, membership not; not settled for a reader.
            pending = pending or self.cluster.topology.plan_id is not None
            out["pendingChange"] = pending
            return out
        units = []
        counts = collections.Counter(u.status for u in plan.units.values())
        copied = sum(u.copied for u in plan.units.values())
        remaining = 0
        known = [v for v in self._totals.values()]
        avg = (sum(known) / len(known)) if known else 0
        for key, u in plan.units.items():
            per_target: list[dict[str, Any]] = []
            for target in u.targets:
                done_idx = [i for i, c in u.cursors.items() if c.get(target) == -1]
                cursor = sum(max(c.get(target, 0), 0) for c in u.cursors.values())
                total = sum(v for (k, _i, t), v in self._totals.items() if k == key and t == target)
                per_target.append({"target": target, "indexesDone": len(done_idx), "cursor": cursor, "total": total})
                if u.status in ("pending", "copying"):
                    if total:
                        remaining += max(total - cursor, 0)
                    else:
                        remaining += int(avg)
            units.append(
                {
                    "unit": key,
                    "shards": u.shards,
                    "placement": u.placement,
                    "shard": u.shard,
                    "group": u.group,
                    "targets": u.targets,
                    "sources": u.sources,
                    "drops": u.drops,
                    "status": u.status,
                    "copied": u.copied,
                    "progress": per_target,
                    "error": self.errors.get(key),
                }
            )
        rate = self.rate(copied)
        out.update(
            status="paused" if rb.paused else "running",
            plan={
                "id": plan.id,
                "createdAt": plan.created_at,
                "oldGroups": plan.old_groups,
                "newGroups": plan.new_groups,
                "units": units,
            },
            progress={
                "units": len(plan.units),
                "pending": counts.get("pending", 0),
                "copying": counts.get("copying", 0),
                "switched": counts.get("switched", 0),
                "done": counts.get("done", 0),
                "moves": sum(len(u.targets) for u in plan.units.values()),
                "documentsCopied": copied,
                "documentsRemaining": remaining,
                "rate": round(rate, 1),
                "etaSeconds": round(remaining / rate, 1) if rate > 0 else None,
            },
        )
        return out


# --- the service and its lookup ------------------------------------------------------------


async def run_rebalancer(cluster: Cluster, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """The rebalancer service of `cluster` (one per cluster; a second start is a no-op)."""
    if cluster.rebalancer is not None:
        task_status.started()
        return
    rb = Rebalancer(cluster)
    cluster.rebalancer = rb
    try:
        await rb.run(task_status=task_status)
    finally:
        if cluster.rebalancer is rb:
            cluster.rebalancer = None


def rebalancer_of(cluster: Cluster) -> RebalancerHandle:
    rb = cluster.rebalancer
    if rb is None:
        raise MeiliError("miroir_not_ready", "The rebalancer is not running yet.")
    return rb


# --- admin operations (called by api/routes_admin.py) -----------------------------------------


def node_view(cluster: Cluster, n: NodeMeta) -> dict[str, Any]:
    """A node and the shards it holds of the layout new indexes get."""
    default = Layout(cluster.config.cluster.shards, CURRENT_PLACEMENT)
    held = cluster.topology.holders(default).get(n.id, [])
    return {"id": n.id, "url": n.url, "group": n.group, "state": n.state, "weight": n.weight, "shards": held}


MAX_WEIGHT = 1_000_000.0


async def add_node(
    cluster: Cluster, node_id: str, url: str, group: str | None, weight: float | None = None
) -> dict[str, Any]:
    rb = rebalancer_of(cluster)
    if not node_id or not isinstance(node_id, str):
        raise MeiliError("miroir_invalid_node", "A node needs a non-empty string `id`.")
    if weight is None:
        weight = 1.0
    if not (isinstance(weight, (int, float)) and 0 < weight <= MAX_WEIGHT):
        raise MeiliError(
            "miroir_invalid_node", f"A node's `weight` must be a number above 0 and at most {MAX_WEIGHT:g}, not {weight}."
        )
    nodeurl.check_scheme(url)
    group = group or DEFAULT_GROUP
    existing = cluster.state.nodes.get(node_id)
    if existing is not None:
        raise conflict(
            "miroir_node_already_exists", f"Node `{node_id}` already exists (state `{existing.state}`)."
        )
    if nodeurl.url_taken(cluster.state, node_id, url) is not None:
        raise conflict("miroir_node_already_exists", f"A node with url `{url}` already exists.")
    await nodeurl.check_reachable(cluster, node_id, url)
    node = NodeMeta(id=node_id, url=url, group=group, state="joining", weight=float(weight))
    await cluster.journal.append(*node_change(cluster, node))
    await cluster.refresh_topology()
    log.info("node.added", node=node_id, url=url, group=group, weight=weight)
    await rb.ensure_plan()
    rb.wake()
    return {"node": node_view(cluster, cluster.state.nodes[node_id]), "rebalance": rb.status()}


async def drain_node(cluster: Cluster, node_id: str) -> dict[str, Any]:
    rb = rebalancer_of(cluster)
    n = cluster.state.nodes.get(node_id)
    if n is None or n.state == "removed":
        raise node_not_found(node_id)
    if n.state != "draining":
        others = [m for m in cluster.state.nodes.values() if m.id != node_id and m.state in ("joining", "active")]
        if not others:
            raise conflict(
                "miroir_cannot_drain", f"Node `{node_id}` is the last node: its shards would have nowhere to go."
            )
        await cluster.journal.append(*node_change(cluster, msgspec.structs.replace(n, state="draining")))
        await cluster.refresh_topology()
        log.info("node.draining", node=node_id)
    await rb.ensure_plan()
    rb.wake()
    return {"node": node_view(cluster, cluster.state.nodes[node_id]), "rebalance": rb.status()}


def _holds_shards(cluster: Cluster, node_id: str) -> bool:
    rb = cluster.state.rebalance
    groups = [committed_members(cluster.state.nodes, rb)]
    if rb.plan is not None:
        groups += [rb.plan.old_groups, rb.plan.new_groups]
    return any(node_id in ids for g in groups for ids in g.values())


async def remove_node(cluster: Cluster, node_id: str, force: bool) -> dict[str, Any]:
    rb = rebalancer_of(cluster)
    n = cluster.state.nodes.get(node_id)
    if n is None:
        raise node_not_found(node_id)
    if not _holds_shards(cluster, node_id):
        await cluster.journal.append(NodeRemoved(id=node_id))
        await cluster.refresh_topology()
        log.info("node.removed", node=node_id)
        return {"node": {**node_view(cluster, n), "state": "removed"}, "rebalance": rb.status()}
    if not force:
        raise conflict(
            "miroir_node_not_drained",
            f"Node `{node_id}` still holds shards (state `{n.state}`): drain it first "
            f"(POST /_miroir/nodes/{node_id}/drain), or remove it with `?force=true` if it is dead "
            "(its shards are then re-created from the other owners).",
        )
    others = [m for m in cluster.state.nodes.values() if m.id != node_id and m.state in ("joining", "active")]
    if not others:
        raise conflict("miroir_cannot_drain", f"Node `{node_id}` is the last node: nothing could take its shards.")
    # Removed but still an owner until the plan that re-creates its shards is done.
    await cluster.journal.append(*node_change(cluster, msgspec.structs.replace(n, state="removed")))
    await cluster.refresh_topology()
    log.warning("node.force_removed", node=node_id)
    await rb.ensure_plan()
    rb.wake()
    return {"node": node_view(cluster, cluster.state.nodes[node_id]), "rebalance": rb.status()}


async def set_paused(cluster: Cluster, paused: bool) -> dict[str, Any]:
    rb = rebalancer_of(cluster)
    if cluster.state.rebalance.paused != paused:
        await cluster.journal.append(RebalancePaused(paused=paused))
        log.info("rebalance.paused" if paused else "rebalance.resumed")
    rb.wake()
    return rb.status()
