"""Scatter: one sub-request per node of a covering set, gathered under deadlines (design §6).

A read of index `uid` becomes a plan (which node answers for which shards), then one
sub-request per planned *part* (a node and the shards it answers for), all in one trio
nursery, each under its own cancel scope with the deadline `scatter.node_timeout_ms`.

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
answers for, so it never counts a document twice. Primary and hedge race in their own
nursery; the first complete answer wins and cancels the rest. The hedge delay is
`scatter.hedge_after_ms` when set, else the node's recent p95 latency from the health
table, clamped to [HEDGE_FLOOR_S, HEDGE_CAP_FRACTION * node_timeout]; a node with no
latency history is not hedged (the deadline retry covers it). No hedge is sent when some
shard of the part has no other healthy owner, or when the delay reaches the deadline.
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
import itertools
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import trio

from miroir.core.errors import MeiliError
from miroir.core.routing import covering_set
from miroir.net.node import NodeClient, NodeError, NodeUnavailable
from miroir.store.state import IndexMeta

DEGRADED_HEADER = "X-Miroir-Degraded"

# `send(client, shards_or_None, timeout_s)`: one sub-request; returns the decoded answer.
Send = Callable[[NodeClient, "list[int] | None", float], Awaitable[Any]]

# Floor of the p95-derived hedge delay: below it the duplicate load is not worth the
# few milliseconds saved (loopback answers in ~1 ms, a scheduler hiccup costs more).
HEDGE_FLOOR_S = 0.05
# Cap of the p95-derived delay, as a fraction of node_timeout_ms: a node slow enough to
# have a huge p95 should still be raced well before its deadline.
HEDGE_CAP_FRACTION = 0.5

# Shared by all reads of this process: which group and which replica go next.
_turns = itertools.count()

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


def _healthy(cluster: Any) -> frozenset[str] | None:
    """Nodes the health prober believes up; None (everyone) when there is no prober."""
    probe = getattr(cluster, "healthy_nodes", None)
    if probe is None:
        return None
    nodes = probe() if callable(probe) else probe
    return frozenset(nodes) if nodes is not None else None


def plan_cover(
    topology: Any, shards: int, needed: Sequence[int], *, turn: int, healthy: frozenset[str] | None
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
    topology: Any, shards: int, lost: Sequence[int], *, home_group: str | None, exclude: set[str],
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


def _hide_shard_field(message: str) -> str:
    """Node errors list filterable attributes; `_miroir_shard` is not the client's."""
    return re.sub(r"(?:, | )?_miroir_shard", "", message.replace("_miroir_shard, ", "").replace("_miroir_shard ", ""))


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


class _Failed(Exception):
    """A part got no usable answer (unavailable, deadline, or a node 5xx)."""


async def _one(cluster: Any, node_id: str, shards_arg: list[int] | None, send: Send, timeout_s: float) -> Any:
    """One sub-request under its own deadline; the outcome is reported to the health table."""
    client = cluster.fleet.get(node_id)
    if client is None:
        raise _Failed(node_id)
    health = getattr(cluster, "health", None)
    started = trio.current_time()
    with trio.move_on_after(timeout_s):
        try:
            result = await send(client, shards_arg, timeout_s)
        except NodeUnavailable as e:
            if health is not None:
                health.report_failure(node_id, e.reason, timed_out=e.reason.startswith("timeout"))
            raise _Failed(node_id) from None
        except NodeError as e:
            if health is not None:
                health.report_success(node_id, trio.current_time() - started)
            if e.status >= 500:
                raise _Failed(node_id) from None
            # The client's mistake: surface the node's error as Miroir's own.
            raise MeiliError(e.code, _hide_shard_field(e.message), status=e.status, type=e.type) from None
        if health is not None:
            health.report_success(node_id, trio.current_time() - started)
        return result
    if health is not None:
        health.report_failure(node_id, "timeout (scatter deadline)", timed_out=True)
    raise _Failed(node_id)


async def scatter(
    cluster: Any,
    meta: IndexMeta,
    send: Send,
    *,
    shards: Iterable[int] | None = None,
    per_shard: bool = False,
    affinity: int | None = None,
) -> Gathered:
    """Run `send` on a covering set of `meta`'s shards (all, or `shards`); see module doc.

    `per_shard=True` sends one sub-request per shard instead of one per node (document
    listing pages each shard on its own). Raises the node's `MeiliError` for a client
    error; never raises for unavailable shards (see `Gathered.check`).
    """
    S = meta.shards
    needed = sorted(set(range(S) if shards is None else shards))
    topology = cluster.topology
    healthy = _healthy(cluster)
    timeout_s = cluster.config.scatter.node_timeout_ms / 1000
    # The same query (whatever page of it) gets the same covering set while the healthy
    # nodes stay the same, so its ties come in the same order on every page; different
    # queries still spread over groups and replicas.
    turn = next(_turns) if affinity is None else affinity

    plan, missing = plan_cover(topology, S, needed, turn=turn, healthy=healthy)
    gathered = Gathered(unavailable=list(missing))
    failed_nodes: set[str] = set()
    client_error: list[MeiliError] = []

    def units(p: dict[str, list[int]]) -> list[tuple[str, list[int]]]:
        out = [(n, sorted(ss)) for n, ss in p.items()]
        if per_shard:
            out = [(n, [s]) for n, ss in out for s in ss]
        return sorted(out, key=lambda u: u[1][0])

    def shard_arg(ss: list[int]) -> list[int] | None:
        return None if len(ss) == S else ss

    fanout = _fanout.get()
    health = getattr(cluster, "health", None)
    hedge_after_ms = cluster.config.scatter.hedge_after_ms

    def asked() -> None:
        gathered.nodes_asked += 1
        if fanout is not None:
            fanout[0] += 1

    def hedge_after(node_id: str) -> float | None:
        p95 = health.latency_p95(node_id) if health is not None else None
        return hedge_delay(hedge_after_ms, p95, timeout_s)

    def alternatives(node_id: str, ss: list[int]) -> list[tuple[str, list[int]]] | None:
        """Other healthy owners answering for all of `ss` (decided when the hedge fires,
        so nodes that failed in this scatter meanwhile are left out), or None."""
        unhealthy = set() if healthy is None else set(topology.all_nodes()) - healthy
        alt, lost = plan_retry(
            topology, S, ss, home_group=topology.group_of(node_id),
            exclude=failed_nodes | unhealthy | {node_id}, healthy=healthy,
        )
        if lost or not alt:
            return None  # a shard with no other healthy owner: nothing to race with
        return units(alt)

    def client_mistake(e: MeiliError, nursery: trio.Nursery) -> None:
        client_error.append(e)
        nursery.cancel_scope.cancel()

    async def race(node_id: str, ss: list[int], delay: float, nursery: trio.Nursery) -> None:
        """The primary part against a hedge sent after `delay`; see the module doc."""
        alts: list[tuple[str, list[int]]] = []
        primary_failed = False
        hedge_sent = False
        answered: dict[int, Any] = {}  # hedge unit index -> answer
        lost: set[int] = set()  # hedge units that failed
        won: list[Part] | None = None

        async with trio.open_nursery() as arena:

            def settle() -> None:
                # All of the hedge answered: it wins. Primary failed and every hedge
                # unit is done: take what the hedge got, the rest is unavailable.
                nonlocal won
                if len(answered) == len(alts) or (primary_failed and len(answered) + len(lost) == len(alts)):
                    won = [Part(n, s, answered[i]) for i, (n, s) in enumerate(alts) if i in answered]
                    gathered.hedges_won += len(answered) == len(alts)
                    gathered.unavailable.extend(s for i in lost for s in alts[i][1])
                    arena.cancel_scope.cancel()

            async def primary() -> None:
                nonlocal primary_failed, won
                try:
                    result = await _one(cluster, node_id, shard_arg(ss), send, timeout_s)
                except MeiliError as e:
                    client_mistake(e, nursery)
                    return
                except _Failed:
                    failed_nodes.add(node_id)
                    primary_failed = True
                    if not hedge_sent:
                        arena.cancel_scope.cancel()  # the ordinary retry, below
                    else:
                        settle()
                    return
                won = [Part(node_id, ss, result)]
                arena.cancel_scope.cancel()

            async def hedge_unit(i: int, n2: str, ss2: list[int]) -> None:
                asked()
                try:
                    answered[i] = await _one(cluster, n2, shard_arg(ss2), send, timeout_s)
                except MeiliError as e:
                    client_mistake(e, nursery)
                    return
                except _Failed:
                    failed_nodes.add(n2)
                    lost.add(i)
                settle()

            async def hedge() -> None:
                nonlocal hedge_sent, alts
                await trio.sleep(delay)
                found = alternatives(node_id, ss)
                if found is None:
                    return  # the primary is on its own
                alts = found
                hedge_sent = True
                gathered.hedges += 1
                for i, (n2, ss2) in enumerate(alts):
                    arena.start_soon(hedge_unit, i, n2, ss2)

            arena.start_soon(primary)
            arena.start_soon(hedge)

        if won is not None:
            gathered.parts.extend(won)
        elif primary_failed and not client_error:
            await retry(node_id, ss, nursery)

    async def retry(node_id: str, ss: list[int], nursery: trio.Nursery) -> None:
        alt, lost = plan_retry(
            topology, S, ss, home_group=topology.group_of(node_id), exclude=failed_nodes, healthy=healthy
        )
        gathered.unavailable.extend(lost)
        for n2, ss2 in units(alt):
            nursery.start_soon(run, n2, ss2, False, nursery)

    async def run(node_id: str, ss: list[int], first: bool, nursery: trio.Nursery) -> None:
        asked()
        delay = hedge_after(node_id) if first else None
        if delay is not None:
            await race(node_id, ss, delay, nursery)
            return
        try:
            result = await _one(cluster, node_id, shard_arg(ss), send, timeout_s)
        except MeiliError as e:
            client_mistake(e, nursery)
            return
        except _Failed:
            failed_nodes.add(node_id)
            if not first:
                gathered.unavailable.extend(ss)
                return
            await retry(node_id, ss, nursery)
            return
        gathered.parts.append(Part(node_id, ss, result))

    async with trio.open_nursery() as nursery:
        for node_id, ss in units(plan):
            nursery.start_soon(run, node_id, ss, True, nursery)
    if client_error:
        raise client_error[0]
    gathered.parts.sort(key=lambda p: p.shards[0])
    gathered.unavailable.sort()
    return gathered
