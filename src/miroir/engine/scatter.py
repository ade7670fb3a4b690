"""Scatter: one sub-request per node of a covering set, gathered under deadlines (design §6).

A read of index `uid` becomes a plan (which node answers for which shards), then one
sub-request per planned *part* (a node and the shards it answers for), all in one trio
nursery, each under its own cancel scope with the deadline `scatter.node_timeout_ms`.

Structure (issue 8: a search's scatter is on the hot path). One call is one `_Scatter`
object; its tasks run its methods and keep their state on it and on small per-part
objects (`_Race`, `_Sub`). Nothing refers back to the `_Scatter`, and the common path
(every part answers) raises no exception, so a call leaves no reference cycle: all of
its garbage goes with reference counting, none waits for the cyclic GC.
- One task per part (`first`); a retry or a hedge sub-request is one more task.
- Hedge timers cost no task: the calling task, inside the nursery, waits for "no part
  is waiting for its hedge time any more" (a `trio.Event`) under one `move_on_at` set to
  the earliest pending hedge time; when that passes it sends the hedges now due and
  waits again.
- A race's loser is cancelled through its sub-request's deadline scope (`_Sub.scope`),
  so racing costs no scope of its own.
- A sub-request's outcome is a value (`_FAILED` for no usable answer), not an exception;
  only a client error is raised (and it cancels the nursery).

Planning
- Group: round-robin over the groups (sorted by name), starting at a per-process turn
  counter; the first group whose owners cover every needed shard is used. When none
  covers all of them (a group lost a shard's only owner), each shard is taken from the
  first group, in the same round-robin order, that has an owner for it.
- Replica: among the owners of a shard in the chosen group, `(turn + i) % RF`, so
  replicas share the load (`routing.covering_set`).
- Turn: a search passes an `affinity` (a hash of the query without its page window), so
  one query always gets the same covering set while the healthy nodes stay the same;
  other reads take the next value of a per-process counter.
- Shards: all of the index's, or only those a primary-key-pinning filter names.

Shard filter. A part whose node does not answer for *every* shard of the index gets
`_miroir_shard IN [its shards]` ANDed to the client filter (`send` receives the shard
list; `None` means "no filter needed"). The rule is deliberately stricter than "unless it
answers for every shard it owns": during a migration a node may hold a copy of a shard it
does not own yet (or any more), which the topology cannot see, and the filter is cheap.

Health. Nodes that `cluster.healthy_nodes()` excludes (down, or held while handoff
repairs them) are left out of the plan; every sub-request's outcome is reported to
`cluster.health` (`report_failure` / `report_success`), as the write path does.

Failures
- `NodeUnavailable` (connect error, reset, timeout), the deadline, or a node error with
  status >= 500: the part is retried once, on other owners of the same shards (same group
  first, then the other groups; never a node that already failed in this scatter). Shards
  whose retry fails too, or that have no other owner, are *unavailable*.
- `NodeError` with a 4xx status is the client's fault (bad filter, unknown sort field,
  index not found on the nodes): the scatter stops (the other parts are cancelled) and
  the node's Meilisearch error is raised once, as a plain `MeiliError`.
- Unavailable shards: `Gathered.check(policy)` raises 503 `miroir_shard_unavailable`
  under the `error` policy, or returns the `X-Miroir-Degraded: shards=1,5` header under
  `partial`.

Hedging (reads only: scatter is only used by reads). A first-attempt part that has not
answered within the *hedge delay* is sent again, same shards, to other owners of them
(`plan_retry`'s choice: same group first, then the others; only healthy nodes, never one
that failed in this scatter); each alternative gets the shard filter for the shards *it*
answers for, so it never counts a document twice. The first complete answer (the
primary's, or every hedge sub-request's) wins and cancels the rest; later answers of the
part are ignored. The hedge delay is `scatter.hedge_after_ms` when set, else the node's
recent p95 latency from the health table, clamped to [HEDGE_FLOOR_S, HEDGE_CAP_FRACTION *
node_timeout]; a node with no latency history is not hedged (the deadline retry covers
it). No hedge is sent when some shard of the part has no other healthy owner, or when the
delay reaches the deadline.
- A cancelled loser reports nothing to the health table: a slow node that lost a race is
  not failed; the deadline rule (a part that runs into `node_timeout_ms`) is unchanged.
- Failures inside a race: the primary failing before the hedge was sent is the ordinary
  retry-once case; once the hedge is in flight it *is* the one retry, so the primary's
  failure just waits for it, and shards whose hedge sub-request failed too (after the
  primary did) are unavailable. A hedge sub-request that fails while the primary still
  runs only leaves the primary to finish.
"""

from __future__ import annotations

import contextvars
import math
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import trio

from miroir.core.errors import MeiliError
from miroir.core.model import IndexMeta
from miroir.core.placement import Layout
from miroir.core.reserved import hide_shard_field
from miroir.core.routing import covering_set
from miroir.engine.cluster import Cluster
from miroir.engine.topology import Topology
from miroir.instruments import HOT
from miroir.net.node import NodeClient, NodeError, NodeUnavailable

DEGRADED_HEADER = "X-Miroir-Degraded"

# `send(client, shards_or_None, timeout_s)`: one sub-request; returns the decoded answer.
# `timeout_s` is the node call's own deadline: `math.inf`, since `_Scatter._one` holds it.
Send = Callable[[NodeClient, "list[int] | None", float], Awaitable[Any]]

# Floor of the p95-derived hedge delay: below it the duplicate load is not worth the
# few milliseconds saved (loopback answers in ~1 ms, a scheduler hiccup costs more).
HEDGE_FLOOR_S = 0.05
# Cap of the p95-derived delay, as a fraction of node_timeout_ms: a node slow enough to
# have a huge p95 should still be raced well before its deadline.
HEDGE_CAP_FRACTION = 0.5

# Sub-requests sent for the current HTTP request (the request log's `fanout`). A route
# calls `count_fanout()` first; the holder is a list so that child tasks (multi-search
# runs its queries in a nursery) add to the same count.
_fanout: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("miroir_fanout", default=None)


def count_fanout() -> list[int]:
    """Start counting sub-requests in this context; read the count from `[0]` later."""
    holder = [0]
    _fanout.set(holder)
    return holder


@dataclass
class Part:
    """One node answering for some shards; `result` is its decoded answer."""

    node_id: str
    shards: list[int]
    result: Any = None


@dataclass
class Gathered:
    """What came back: answers in plan order (by first shard) and the shards lost."""

    parts: list[Part] = field(default_factory=list)
    unavailable: list[int] = field(default_factory=list)
    nodes_asked: int = 0
    hedges: int = 0  # parts whose hedge was sent
    hedges_won: int = 0  # ... and answered first

    @property
    def results(self) -> list[Any]:
        return [p.result for p in self.parts]

    def check(self, policy: str, uid: str) -> dict[str, str]:
        """Apply `scatter.unavailable_shard_policy`: the degraded header, or raise 503."""
        if not self.unavailable:
            return {}
        listed = ",".join(str(s) for s in self.unavailable)
        if policy == "error":
            raise MeiliError(
                "miroir_shard_unavailable",
                f"Shards {listed} of index `{uid}` have no reachable owner; the answer would be incomplete.",
            )
        return {DEGRADED_HEADER: f"shards={listed}"}


def merge_degraded(headers: Iterable[dict[str, str]]) -> dict[str, str]:
    """One degraded header for several scatters (multi-search): the union of shards."""
    shards: set[int] = set()
    for h in headers:
        v = h.get(DEGRADED_HEADER)
        if v:
            shards.update(int(s) for s in v.removeprefix("shards=").split(",") if s)
    return {DEGRADED_HEADER: "shards=" + ",".join(str(s) for s in sorted(shards))} if shards else {}


def plan_cover(
    topology: Topology, shards: Layout, needed: Sequence[int], *, turn: int, healthy: frozenset[str] | None
) -> tuple[dict[str, list[int]], list[int]]:
    """(node -> shards it answers for, shards no group can serve). Pure given topology."""
    groups = sorted(topology.groups)
    if not groups or not needed:
        return {}, list(needed)
    order = [groups[(turn + i) % len(groups)] for i in range(len(groups))]
    for g in order:
        cover = covering_set([topology.owners(shards, s, g) for s in needed], turn, healthy)
        if cover is not None:
            return {node: [needed[i] for i in idx] for node, idx in cover.items()}, []
    # No single group covers everything: take each shard from the first group that can.
    plan: dict[str, list[int]] = {}
    missing: list[int] = []
    for i, s in enumerate(needed):
        for g in order:
            cands = [n for n in topology.owners(shards, s, g) if healthy is None or n in healthy]
            if cands:
                plan.setdefault(cands[(turn + i) % len(cands)], []).append(s)
                break
        else:
            missing.append(s)
    return plan, missing


def plan_retry(
    topology: Topology, shards: Layout, lost: Sequence[int], *, home_group: str | None, exclude: set[str],
    healthy: frozenset[str] | None,
) -> tuple[dict[str, list[int]], list[int]]:
    """Other owners for `lost` shards (home group first, healthy first), never `exclude`."""
    groups = sorted(topology.groups)
    if home_group in groups:
        groups.remove(home_group)
        groups.insert(0, home_group)
    plan: dict[str, list[int]] = {}
    missing: list[int] = []
    for s in lost:
        cands = [n for g in groups for n in topology.owners(shards, s, g) if n not in exclude]
        if healthy is not None:
            cands.sort(key=lambda n: n not in healthy)  # stable: healthy ones first
        if cands:
            plan.setdefault(cands[0], []).append(s)
        else:
            missing.append(s)
    return plan, missing


def hedge_delay(
    hedge_after_ms: int | None, p95_s: float | None, timeout_s: float
) -> float | None:
    """Seconds to wait before hedging a part, or None for no hedge (see module doc)."""
    if hedge_after_ms is not None:
        delay = hedge_after_ms / 1000
    elif p95_s is None:
        return None
    else:
        delay = min(max(p95_s, HEDGE_FLOOR_S), HEDGE_CAP_FRACTION * timeout_s)
    return delay if delay < timeout_s else None


# What `_one` returns for a sub-request without a usable answer (unavailable, deadline,
# node 5xx, or cancelled because it lost its race): a value, not an exception, so that
# no traceback (and its frames) outlives the call.
_FAILED: Any = object()
# A hedge sub-request still running.
_PENDING: Any = object()


class _Sub:
    """One sub-request: a node and the shards it answers for.

    `scope` is the sub-request's deadline scope (see `_Scatter._one`); a race cancels
    its loser through it, so racing costs no scope of its own. `lost` tells that
    cancellation apart from the deadline: a loser reports nothing to health.
    """

    __slots__ = ("lost", "node_id", "scope", "shards")

    def __init__(self, node_id: str, shards: list[int]):
        self.node_id = node_id
        self.shards = shards
        self.scope: trio.CancelScope | None = None
        self.lost = False

    def cancel(self) -> None:
        self.lost = True
        if self.scope is not None:
            self.scope.cancel()


class _Race:
    """A first-attempt part and, once sent, its hedge (see the module doc)."""

    __slots__ = ("answers", "hedge", "hedge_at", "over", "primary", "primary_failed")

    def __init__(self, primary: _Sub, hedge_at: float | None):
        self.primary = primary
        # When the hedge is due; None once it was sent, judged impossible, or the
        # primary finished first (or never, for a node with no hedge delay).
        self.hedge_at = hedge_at
        self.hedge: list[_Sub] | None = None
        self.answers: list[Any] = []  # per hedge sub-request: _PENDING, _FAILED or the answer
        self.primary_failed = False
        self.over = False  # decided: later answers of this part are ignored


class _Scatter:
    """The state of one `scatter` call.

    Tasks run bound methods and share state through `self`. Nothing the call leaves
    behind refers back to the `_Scatter`: no closures; the nursery and a client error are
    dropped before `scatter` returns or raises. So a call leaves no reference cycle and
    its garbage is freed by reference counting (test_scatter checks it).
    """

    def __init__(self, cluster: Cluster, send: Send, layout: Layout, per_shard: bool, healthy: frozenset[str] | None):
        self.cluster = cluster
        self.send = send
        self.layout = layout
        self.S = layout.shards
        self.per_shard = per_shard
        self.healthy = healthy
        self.topology = cluster.topology
        scatter_config = cluster.config.scatter
        self.timeout_s = scatter_config.node_timeout_ms / 1000
        self.hedge_after_ms = scatter_config.hedge_after_ms
        self.health = cluster.health
        self.fanout = _fanout.get()
        self.gathered = Gathered()
        self.failed_nodes: set[str] = set()
        self.client_error: MeiliError | None = None
        self.nursery: trio.Nursery | None = None
        self.races: list[_Race] = []
        self.unhedged = 0  # races whose hedge time has not come while the primary runs
        self.idle: trio.Event | None = None  # set when `unhedged` drops to 0
        self.hedging = True

    # --- planning helpers ---------------------------------------------------------------

    def units(self, plan: dict[str, list[int]]) -> list[tuple[str, list[int]]]:
        out = [(n, sorted(ss)) for n, ss in plan.items()]
        if self.per_shard:
            out = [(n, [s]) for n, ss in out for s in ss]
        return sorted(out, key=_first_shard)

    def alternatives(self, sub: _Sub) -> list[tuple[str, list[int]]] | None:
        """Other healthy owners answering for all of `sub`'s shards (decided when the
        hedge is due, so nodes that failed in this scatter meanwhile are left out), or None."""
        healthy = self.healthy
        unhealthy = set() if healthy is None else set(self.topology.all_nodes()) - healthy
        alt, lost = plan_retry(
            self.topology, self.layout, sub.shards, home_group=self.topology.group_of(sub.node_id),
            exclude=self.failed_nodes | unhealthy | {sub.node_id}, healthy=healthy,
        )
        if lost or not alt:
            return None  # a shard with no other healthy owner: nothing to race with
        return self.units(alt)

    def asked(self) -> None:
        self.gathered.nodes_asked += 1
        if self.fanout is not None:
            self.fanout[0] += 1

    def launch(self, task: Callable[..., Awaitable[None]], *args: Any) -> None:
        self.asked()
        assert self.nursery is not None
        self.nursery.start_soon(task, *args)

    # --- the call -----------------------------------------------------------------------

    async def run(self, plan: dict[str, list[int]]) -> None:
        now = trio.current_time()
        for node_id, ss in self.units(plan):
            p95 = self.health.latency_p95(node_id) if self.health is not None else None
            delay = hedge_delay(self.hedge_after_ms, p95, self.timeout_s) if self.hedging else None
            self.races.append(_Race(_Sub(node_id, ss), None if delay is None else now + delay))
        self.unhedged = sum(r.hedge_at is not None for r in self.races)
        if self.unhedged:
            self.idle = trio.Event()
        try:
            async with trio.open_nursery() as nursery:
                self.nursery = nursery
                for race in self.races:
                    self.launch(self.first, race)
                # One wait in this task stands for every part's hedge timer.
                while self.unhedged:
                    assert self.idle is not None
                    with trio.move_on_at(min(r.hedge_at for r in self.races if r.hedge_at is not None)):
                        await self.idle.wait()
                    now = trio.current_time()
                    for race in self.races:
                        if race.hedge_at is not None and race.hedge_at <= now:
                            self.send_hedge(race)
        finally:
            self.nursery = None

    def client_mistake(self, e: MeiliError) -> None:
        if self.client_error is None:
            self.client_error = e
        assert self.nursery is not None
        self.nursery.cancel_scope.cancel()

    def not_waiting(self, race: _Race) -> None:
        """`race` no longer needs its hedge timer."""
        if race.hedge_at is not None:
            race.hedge_at = None
            self.unhedged -= 1
            if not self.unhedged and self.idle is not None:
                self.idle.set()

    async def first(self, race: _Race) -> None:
        """A part's first attempt (the primary of its race, if a hedge gets sent)."""
        sub = race.primary
        try:
            result = await self._one(sub)
        except MeiliError as e:
            self.client_mistake(e)
            return
        self.not_waiting(race)
        if race.over:
            return  # the hedge won (this was cancelled, or answered too late)
        if result is not _FAILED:
            race.over = True
            for h in race.hedge or ():
                h.cancel()
            self.gathered.parts.append(Part(sub.node_id, sub.shards, result))
            return
        self.failed_nodes.add(sub.node_id)
        if race.hedge is None:
            race.over = True
            self.retry(sub)
        else:
            # The hedge in flight is the one retry: wait for it.
            race.primary_failed = True
            self.settle(race)

    def send_hedge(self, race: _Race) -> None:
        self.not_waiting(race)
        alts = self.alternatives(race.primary)
        if alts is None:
            return  # the primary is on its own
        race.hedge = [_Sub(n, ss) for n, ss in alts]
        race.answers = [_PENDING] * len(alts)
        self.gathered.hedges += 1
        HOT.hedges += 1
        for i in range(len(alts)):
            self.launch(self.hedge_part, race, i)

    async def hedge_part(self, race: _Race, i: int) -> None:
        sub = race.hedge[i]  # type: ignore[index]
        try:
            result = await self._one(sub)
        except MeiliError as e:
            self.client_mistake(e)
            return
        if result is _FAILED and not sub.lost:
            self.failed_nodes.add(sub.node_id)
        if race.over:
            return
        race.answers[i] = result
        self.settle(race)

    def settle(self, race: _Race) -> None:
        """Decide `race` once its hedge answered in full (the hedge wins), or once the
        primary failed and every hedge sub-request is done (keep what the hedge got)."""
        answers = race.answers
        # Identity tests: an answer's own `==` is never called.
        if any(a is _PENDING for a in answers):
            return
        complete = not any(a is _FAILED for a in answers)
        if not complete and not race.primary_failed:
            return  # the primary may still answer for everything
        race.over = True
        if complete:
            self.gathered.hedges_won += 1
            race.primary.cancel()
        assert race.hedge is not None
        for sub, answer in zip(race.hedge, answers):
            if answer is _FAILED:
                self.gathered.unavailable.extend(sub.shards)
            else:
                self.gathered.parts.append(Part(sub.node_id, sub.shards, answer))

    def retry(self, sub: _Sub) -> None:
        alt, lost = plan_retry(
            self.topology, self.layout, sub.shards, home_group=self.topology.group_of(sub.node_id),
            exclude=self.failed_nodes, healthy=self.healthy,
        )
        self.gathered.unavailable.extend(lost)
        HOT.retries += 1
        for n2, ss2 in self.units(alt):
            self.launch(self.second, _Sub(n2, ss2))

    async def second(self, sub: _Sub) -> None:
        """A retry: no hedge, no further retry."""
        try:
            result = await self._one(sub)
        except MeiliError as e:
            self.client_mistake(e)
            return
        if result is _FAILED:
            self.failed_nodes.add(sub.node_id)
            self.gathered.unavailable.extend(sub.shards)
        else:
            self.gathered.parts.append(Part(sub.node_id, sub.shards, result))

    async def _one(self, sub: _Sub) -> Any:
        """One sub-request under its deadline; the answer, or _FAILED. The outcome is
        reported to the health table, unless the sub-request lost its race."""
        node_id = sub.node_id
        client = self.cluster.fleet.get(node_id)
        if client is None or sub.lost:
            return _FAILED
        health = self.health
        started = trio.current_time()
        # This scope is the sub-request's deadline and how a race cancels its loser (only
        # it can tell a lost race from a timeout), so the node call gets no deadline of
        # its own (`math.inf`: the pool then opens no second scope).
        with trio.move_on_after(self.timeout_s) as sub.scope:
            try:
                result = await self.send(client, None if len(sub.shards) == self.S else sub.shards, math.inf)
            except (NodeUnavailable, NodeError) as e:
                if sub.lost:
                    # The race was decided in the same scheduler step as this answer came
                    # back: a loser reports nothing, and its 4xx is not the client's answer.
                    return _FAILED
                if isinstance(e, NodeError):
                    if health is not None:
                        health.report_success(node_id, trio.current_time() - started)
                    if e.status >= 500:
                        return _FAILED
                    # The client's mistake: surface the node's error as Miroir's own.
                    raise MeiliError(e.code, hide_shard_field(e.message), status=e.status, type=e.type) from None
                if health is not None:
                    health.report_failure(node_id, e.reason, timed_out=e.reason.startswith("timeout"))
                return _FAILED
            if sub.lost:
                return _FAILED  # answered too late: the race was decided (see above)
            if health is not None:
                health.report_success(node_id, trio.current_time() - started)
            return result
        if not sub.lost and health is not None:
            health.report_failure(node_id, "timeout (scatter deadline)", timed_out=True)
        return _FAILED


def _first_shard(unit: tuple[str, list[int]]) -> int:
    return unit[1][0]


async def scatter(
    cluster: Cluster,
    meta: IndexMeta,
    send: Send,
    *,
    shards: Iterable[int] | None = None,
    per_shard: bool = False,
    affinity: int | None = None,
    hedge: bool = True,
) -> Gathered:
    """Run `send` on a covering set of `meta`'s shards (all, or `shards`); see module doc.

    `per_shard=True` sends one sub-request per shard instead of one per node (document
    listing pages each shard on its own). `hedge=False` never races a part on another
    copy (a listing pass must read each shard from one copy). Raises the node's `MeiliError` for a client
    error; never raises for unavailable shards (see `Gathered.check`).
    """
    S = meta.shards
    needed = sorted(set(range(S) if shards is None else shards))
    healthy: frozenset[str] | None = cluster.healthy_nodes()
    # The same query (whatever page of it) gets the same covering set while the healthy
    # nodes stay the same, so its ties come in the same order on every page; different
    # queries still spread over groups and replicas.
    turn = next(cluster.scatter_turns) if affinity is None else affinity
    plan, missing = plan_cover(cluster.topology, meta.layout, needed, turn=turn, healthy=healthy)
    s = _Scatter(cluster, send, meta.layout, per_shard, healthy)
    s.hedging = hedge
    s.gathered.unavailable.extend(missing)
    await s.run(plan)
    error, s.client_error = s.client_error, None  # raised without `s` holding it: no cycle
    if error is not None:
        raise error
    gathered = s.gathered
    gathered.parts.sort(key=_part_order)
    gathered.unavailable.sort()
    return gathered


def _part_order(p: Part) -> int:
    return p.shards[0]
