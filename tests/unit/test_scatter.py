"""scatter() against fake in-process nodes, under trio's autojump clock (virtual time:
deterministic and instant).

The cluster is the real `Topology` with fake fleet, health table and config. Each node
follows a script of (delay, outcome) per call. Unless a test says otherwise, the layout
is two groups with RF 1 and 4 shards; with `affinity=0` the plan is group g1:
a answers for shards 0 and 1, b for 2 and 3. In g2, d owns 0 and 3, c owns 1 and 2, so
retrying or hedging a's part sends two sub-requests: d for [0] and c for [1].
"""

from __future__ import annotations

import gc
from types import SimpleNamespace
from typing import Any

import pytest
import trio

from miroir.core.errors import MeiliError
from miroir.core.model import IndexMeta, NodeMeta
from miroir.engine import scatter as scatter_mod
from miroir.engine.scatter import (
    DEGRADED_HEADER,
    HEDGE_CAP_FRACTION,
    HEDGE_FLOOR_S,
    Gathered,
    count_fanout,
    hedge_delay,
    merge_degraded,
    scatter,
)
from miroir.engine.topology import Topology
from miroir.net.node import NodeError, NodeUnavailable

TWO_GROUPS = {"g1": ["a", "b"], "g2": ["c", "d"]}
FAST = 0.01  # a node's default answer time (s)
SLOW = 5.0  # slower than any hedge delay used here, faster than the deadline
TIMEOUT_MS = 10_000


class FakeHealth:
    def __init__(self, p95: dict[str, float] | None = None):
        self.p95 = p95 or {}
        self.events: list[tuple] = []

    def report_success(self, node_id: str, latency_s: float) -> None:
        self.events.append(("ok", node_id))

    def report_failure(self, node_id: str, reason: str, *, timed_out: bool = False) -> None:
        self.events.append(("fail", node_id, reason, timed_out))

    def latency_p95(self, node_id: str) -> float | None:
        return self.p95.get(node_id)

    def reported(self, node_id: str) -> list[tuple]:
        return [e for e in self.events if e[1] == node_id]


class FakeCluster:
    """What scatter reads of a cluster, with nodes that follow a script."""

    def __init__(
        self,
        groups: dict[str, list[str]] = TWO_GROUPS,
        rf: int = 1,
        *,
        script: dict[str, list[tuple[float, Any]]] | None = None,
        hedge_after_ms: int | None = None,
        p95: dict[str, float] | None = None,
        healthy: set[str] | None = None,
        timeout_ms: int = TIMEOUT_MS,
    ):
        nodes = {n: NodeMeta(id=n, url=f"http://{n}", group=g, state="active") for g, ns in groups.items() for n in ns}
        self.topology = Topology(nodes, rf)
        self.fleet = {n: SimpleNamespace(node_id=n) for n in nodes}  # `.get(node_id)`
        self.health = FakeHealth(p95)
        self.config = SimpleNamespace(
            scatter=SimpleNamespace(node_timeout_ms=timeout_ms, hedge_after_ms=hedge_after_ms)
        )
        self._healthy = healthy
        self.script = {n: list(steps) for n, steps in (script or {}).items()}
        self.calls: list[tuple[str, list[int] | None]] = []

    def healthy_nodes(self) -> set[str] | None:
        return self._healthy

    async def send(self, client: Any, shards: list[int] | None, timeout_s: float) -> dict:
        node = client.node_id
        self.calls.append((node, shards))
        steps = self.script.get(node)
        delay, outcome = steps.pop(0) if steps else (FAST, "ok")
        await trio.sleep(delay)
        if outcome == "down":
            raise NodeUnavailable(node, "ConnectError: refused")
        if isinstance(outcome, int):
            raise NodeError(node, "invalid_search_filter", f"Attribute `x` is not filterable. Available filterable attribute patterns are: `_miroir_shard`, `y`. (from {node})", outcome, "invalid_request")
        return {"node": node, "shards": shards}


def meta(shards: int = 4) -> IndexMeta:
    return IndexMeta(uid="i", primary_key="id", shards=shards, created_at="", updated_at="")


async def run(cluster: FakeCluster, S: int = 4, **kw: Any) -> Gathered:
    kw.setdefault("affinity", 0)
    return await scatter(cluster, meta(S), cluster.send, **kw)


def answered(g: Gathered) -> list[tuple[str, list[int]]]:
    """(node, shards) of each part, in the order scatter returns them."""
    return [(p.node_id, p.shards) for p in g.parts]


# --- no failure --------------------------------------------------------------------------


async def test_all_parts_answer(autojump_clock):
    c = FakeCluster()
    fanout = count_fanout()
    t0 = trio.current_time()
    g = await run(c)
    assert trio.current_time() - t0 == pytest.approx(FAST)
    assert answered(g) == [("a", [0, 1]), ("b", [2, 3])]
    assert g.results == [{"node": "a", "shards": [0, 1]}, {"node": "b", "shards": [2, 3]}]
    assert g.unavailable == [] and g.nodes_asked == 2 and fanout == [2]
    assert g.hedges == g.hedges_won == 0
    assert sorted(c.health.events) == [("ok", "a"), ("ok", "b")]
    assert g.check("error", "i") == {}


async def test_a_node_answering_for_every_shard_gets_no_shard_filter(autojump_clock):
    c = FakeCluster({"g1": ["a"]})
    g = await run(c)
    assert answered(g) == [("a", [0, 1, 2, 3])]
    assert c.calls == [("a", None)]


async def test_parts_are_ordered_by_first_shard(autojump_clock):
    # b answers first; the order is still the plan's.
    c = FakeCluster(script={"a": [(0.5, "ok")]})
    g = await run(c)
    assert answered(g) == [("a", [0, 1]), ("b", [2, 3])]


async def test_per_shard(autojump_clock):
    c = FakeCluster()
    g = await run(c, per_shard=True)
    assert answered(g) == [("a", [0]), ("a", [1]), ("b", [2]), ("b", [3])]
    assert sorted(c.calls) == [("a", [0]), ("a", [1]), ("b", [2]), ("b", [3])]
    assert g.nodes_asked == 4


async def test_shards_subset(autojump_clock):
    c = FakeCluster()
    g = await run(c, shards=[3, 1, 3])
    assert answered(g) == [("a", [1]), ("b", [3])]
    assert sorted(c.calls) == [("a", [1]), ("b", [3])]


# --- failures and the one retry ------------------------------------------------------------


async def test_failed_node_is_retried_on_other_owners(autojump_clock):
    c = FakeCluster(script={"a": [(FAST, "down")]})
    fanout = count_fanout()
    g = await run(c)
    assert answered(g) == [("d", [0]), ("c", [1]), ("b", [2, 3])]
    assert g.unavailable == [] and g.nodes_asked == 4 and fanout == [4]
    assert c.health.reported("a") == [("fail", "a", "ConnectError: refused", False)]
    assert g.hedges == 0


async def test_node_5xx_is_retried(autojump_clock):
    c = FakeCluster(script={"b": [(FAST, 502)]})
    g = await run(c)
    assert answered(g) == [("a", [0, 1]), ("c", [2]), ("d", [3])]
    assert c.health.reported("b") == [("ok", "b")]  # it answered, with an error


async def test_deadline_is_a_failure_then_retried(autojump_clock):
    c = FakeCluster(script={"a": [(60.0, "ok")]}, timeout_ms=1000)
    t0 = trio.current_time()
    g = await run(c)
    assert trio.current_time() - t0 == pytest.approx(1.0 + FAST)
    assert answered(g) == [("d", [0]), ("c", [1]), ("b", [2, 3])]
    assert c.health.reported("a") == [("fail", "a", "timeout (scatter deadline)", True)]


async def test_failed_retry_makes_shards_unavailable(autojump_clock):
    c = FakeCluster(script={"a": [(FAST, "down")], "d": [(FAST, "down")]})
    g = await run(c)
    assert answered(g) == [("c", [1]), ("b", [2, 3])]
    assert g.unavailable == [0]
    assert g.check("partial", "i") == {DEGRADED_HEADER: "shards=0"}
    with pytest.raises(MeiliError) as e:
        g.check("error", "i")
    assert e.value.code == "miroir_shard_unavailable" and e.value.status == 503


async def test_no_other_owner_makes_shards_unavailable(autojump_clock):
    c = FakeCluster({"g1": ["a", "b", "c"]}, script={"a": [(FAST, "down")]})
    g = await run(c, S=3)
    assert answered(g) == [("c", [2])]
    assert g.unavailable == [0, 1] and g.nodes_asked == 2


async def test_unhealthy_nodes_are_left_out_of_the_plan(autojump_clock):
    c = FakeCluster(healthy={"b", "c", "d"})
    g = await run(c)
    assert "a" not in {n for n, _ in c.calls}
    assert sorted(s for p in g.parts for s in p.shards) == [0, 1, 2, 3]


async def test_client_error_cancels_everything_and_is_raised_once(autojump_clock):
    c = FakeCluster(script={"a": [(FAST, 400)], "b": [(FAST, 400)], "d": [(SLOW, "ok")]}, hedge_after_ms=1)
    t0 = trio.current_time()
    with pytest.raises(MeiliError) as e:
        await run(c)
    assert trio.current_time() - t0 == pytest.approx(FAST)
    assert type(e.value) is MeiliError  # not the NodeError, nor an exception group
    assert e.value.code == "invalid_search_filter" and e.value.status == 400
    assert "_miroir_shard" not in e.value.message and "patterns are: `y`." in e.value.message


async def test_client_error_of_a_retry(autojump_clock):
    c = FakeCluster(script={"a": [(FAST, "down")], "c": [(FAST, 404)]})
    with pytest.raises(MeiliError) as e:
        await run(c)
    assert e.value.status == 404


# --- hedging ---------------------------------------------------------------------------


async def test_hedge_wins_over_a_slow_primary(autojump_clock):
    c = FakeCluster(script={"a": [(SLOW, "ok")]}, hedge_after_ms=100)
    fanout = count_fanout()
    t0 = trio.current_time()
    g = await run(c)
    assert trio.current_time() - t0 == pytest.approx(0.1 + FAST)
    assert answered(g) == [("d", [0]), ("c", [1]), ("b", [2, 3])]
    assert ("d", [0]) in c.calls and ("c", [1]) in c.calls  # shard filter for their shards
    assert g.hedges == 1 and g.hedges_won == 1 and g.unavailable == []
    assert g.nodes_asked == 4 and fanout == [4]
    assert c.health.reported("a") == []  # a cancelled loser is not a failure


async def test_primary_wins_after_its_hedge_was_sent(autojump_clock):
    c = FakeCluster(script={"a": [(0.15, "ok")], "c": [(0.2, "ok")], "d": [(0.2, "ok")]}, hedge_after_ms=100)
    t0 = trio.current_time()
    g = await run(c)
    assert trio.current_time() - t0 == pytest.approx(0.15)
    assert answered(g) == [("a", [0, 1]), ("b", [2, 3])]
    assert g.hedges == 1 and g.hedges_won == 0
    assert c.health.reported("c") == c.health.reported("d") == []  # cancelled


async def test_primary_failing_after_its_hedge_was_sent_waits_for_the_hedge(autojump_clock):
    c = FakeCluster(script={"a": [(0.15, "down")], "c": [(0.2, "ok")], "d": [(0.2, "ok")]}, hedge_after_ms=100)
    t0 = trio.current_time()
    g = await run(c)
    assert trio.current_time() - t0 == pytest.approx(0.3)
    assert answered(g) == [("d", [0]), ("c", [1]), ("b", [2, 3])]
    assert g.nodes_asked == 4  # the hedge was the retry: no other sub-request
    assert g.hedges == 1 and g.hedges_won == 1
    assert c.health.reported("a") == [("fail", "a", "ConnectError: refused", False)]


async def test_hedge_and_primary_both_failing_makes_the_hedges_lost_shards_unavailable(autojump_clock):
    c = FakeCluster(script={"a": [(0.15, "down")], "c": [(0.2, "ok")], "d": [(FAST, "down")]}, hedge_after_ms=100)
    g = await run(c)
    assert answered(g) == [("c", [1]), ("b", [2, 3])]
    assert g.unavailable == [0] and g.nodes_asked == 4
    assert g.hedges == 1 and g.hedges_won == 0


async def test_hedge_failing_leaves_the_primary_to_finish(autojump_clock):
    c = FakeCluster(script={"a": [(0.3, "ok")], "d": [(FAST, "down")]}, hedge_after_ms=100)
    t0 = trio.current_time()
    g = await run(c)
    assert trio.current_time() - t0 == pytest.approx(0.3)
    assert answered(g) == [("a", [0, 1]), ("b", [2, 3])]
    assert g.unavailable == [] and g.hedges == 1 and g.hedges_won == 0
    assert c.health.reported("d") == [("fail", "d", "ConnectError: refused", False)]
    assert c.health.reported("c") == [("ok", "c")]  # answered, then its answer was dropped


async def test_primary_failing_before_its_hedge_time_is_retried_and_not_hedged(autojump_clock):
    c = FakeCluster(script={"a": [(FAST, "down")], "c": [(SLOW, "ok")]}, hedge_after_ms=100)
    t0 = trio.current_time()
    g = await run(c)
    # A retry is never hedged: the slow retry on c is waited for.
    assert trio.current_time() - t0 == pytest.approx(FAST + SLOW)
    assert answered(g) == [("d", [0]), ("c", [1]), ("b", [2, 3])]
    assert g.hedges == 0 and g.nodes_asked == 4


async def test_no_hedge_without_another_healthy_owner(autojump_clock):
    c = FakeCluster(script={"a": [(SLOW, "ok")]}, hedge_after_ms=100, healthy={"a", "b", "c"})
    g = await run(c)
    assert answered(g) == [("a", [0, 1]), ("b", [2, 3])]
    assert g.hedges == 0 and g.nodes_asked == 2


async def test_hedge_delay_follows_p95(autojump_clock):
    c = FakeCluster(script={"a": [(SLOW, "ok")], "b": [(SLOW, "ok")]}, p95={"a": 0.2})
    t0 = trio.current_time()
    g = await run(c)
    # a is hedged after its p95; b has no latency history: not hedged.
    assert trio.current_time() - t0 == pytest.approx(SLOW)
    assert answered(g) == [("d", [0]), ("c", [1]), ("b", [2, 3])]
    assert g.hedges == 1 and g.hedges_won == 1


async def test_parts_are_hedged_at_their_own_times(autojump_clock):
    c = FakeCluster(script={"a": [(SLOW, "ok")], "b": [(SLOW, "ok")]}, p95={"a": 0.2, "b": 0.4})
    g = await run(c)
    assert answered(g) == [("d", [0]), ("c", [1]), ("c", [2]), ("d", [3])]
    assert g.hedges == 2 and g.hedges_won == 2 and g.nodes_asked == 6


def test_hedge_delay():
    assert hedge_delay(100, None, 1.0) == 0.1
    assert hedge_delay(1000, 0.01, 1.0) is None  # reaches the deadline
    assert hedge_delay(None, None, 1.0) is None  # no history
    assert hedge_delay(None, 0.001, 1.0) == HEDGE_FLOOR_S
    assert hedge_delay(None, 0.9, 1.0) == HEDGE_CAP_FRACTION * 1.0


def test_merge_degraded():
    assert merge_degraded([{}, {DEGRADED_HEADER: "shards=3,1"}, {DEGRADED_HEADER: "shards=1,2"}]) == {
        DEGRADED_HEADER: "shards=1,2,3"
    }
    assert merge_degraded([{}, {}]) == {}


# --- cost: no reference cycles ----------------------------------------------------------------


def _alive() -> int:
    kinds = (scatter_mod._Scatter, scatter_mod._Race, scatter_mod._Sub)
    return sum(isinstance(o, kinds) for o in gc.get_objects())


@pytest.mark.parametrize(
    "script",
    [{}, {"a": [(SLOW, "ok")]}],
    ids=["all-answer", "hedged"],
)
async def test_a_scatter_leaves_no_reference_cycle(autojump_clock, script):
    """With the cyclic GC off, everything a scatter allocated is freed by reference
    counting as soon as its result is dropped (issue 8: the GC cost ~20% of a search)."""
    await run(FakeCluster())  # warm-up: module-level caches
    gc.collect()
    gc.disable()
    try:
        for _ in range(20):
            c = FakeCluster(script={n: list(s) for n, s in script.items()}, hedge_after_ms=100)
            g = await run(c)
            assert len(g.parts) >= 2
            del g, c
        assert _alive() == 0
        found = gc.collect()
    finally:
        gc.enable()
    assert found == 0


@pytest.mark.parametrize("outcome", ["ok", "down", 400])
async def test_a_loser_answering_in_the_winners_scheduler_step_is_ignored(autojump_clock, outcome):
    # The primary's answer (or reset, or 4xx) arrives in the same scheduler step as the
    # hedge that wins: the loser was already woken, so cancelling it stops nothing. It
    # must still report nothing to health, and its 4xx is not the client's answer.
    c = FakeCluster(hedge_after_ms=100)
    primary_answers = trio.Event()

    async def send(client: Any, shards: list[int] | None, timeout_s: float) -> dict:
        node = client.node_id
        c.calls.append((node, shards))
        if node == "a":  # the primary of shards 0 and 1: slow
            await primary_answers.wait()
            if outcome == "down":
                raise NodeUnavailable(node, "PoolConnectionError: reset")
            if outcome == 400:
                raise NodeError(node, "index_not_found", "gone", 400, "invalid_request")
            return {"node": node}
        if node == "c":  # the hedge for shard 1
            await trio.sleep(0.05)
        if node == "d":  # the hedge for shard 0, last to answer: the hedge wins
            await trio.sleep(0.1)
            primary_answers.set()
        return {"node": node}

    g = await scatter(c, meta(4), send, affinity=0)
    assert answered(g) == [("d", [0]), ("c", [1]), ("b", [2, 3])]
    assert g.hedges_won == 1 and not g.unavailable
    assert c.health.reported("a") == []
