"""Node health (issue 6): the pure state machine, the table, the probers, readiness.

The state machine is driven with explicit times. The prober logic runs under trio's
autojump clock with an in-test probe function (virtual time: deterministic, instant).
The end-to-end test against real devnodes is tests/integration/test_health_e2e.py.
"""

from __future__ import annotations

import trio
import trio.lowlevel

from miroir.config import HealthConfig
from miroir.core.health import NodeHealth, Thresholds, cluster_ready, percentile, uncovered_shards
from miroir.core.routing import assignment
from miroir.engine.health import HealthTable, run_health, run_prober

T = Thresholds(unhealthy_threshold=3, recovery_threshold=2)


# --- the state machine (driven time) -----------------------------------------------------


def probed_up(t: float = 0.0) -> NodeHealth:
    h = NodeHealth(T, now=t)
    assert h.probe_succeeded(t, 0.001) is False  # already up
    return h


def test_probe_failures_go_suspect_then_down_at_threshold():
    h = probed_up()
    assert h.probe_failed(1.0, "ConnectError: refused") is True
    assert h.state == "suspect" and h.available
    assert h.probe_failed(2.0, "ConnectError: refused") is False
    assert h.state == "suspect"
    assert h.probe_failed(3.0, "timeout") is True
    assert h.state == "down" and not h.available
    assert h.last_error == "timeout" and h.last_error_at == 3.0 and h.state_since == 3.0
    assert h.probe_failed(4.0, "timeout") is False  # stays down


def test_a_success_breaks_a_failure_streak():
    h = probed_up()
    h.probe_failed(1.0, "x")
    h.probe_failed(2.0, "x")
    assert h.probe_succeeded(3.0, 0.002) is True and h.state == "up"
    h.probe_failed(4.0, "x")
    h.probe_failed(5.0, "x")
    assert h.state == "suspect"  # the streak restarted: 2 < 3


def test_recovery_needs_consecutive_successes():
    h = probed_up()
    for t in (1.0, 2.0, 3.0):
        h.probe_failed(t, "x")
    assert h.state == "down"
    assert h.probe_succeeded(4.0, 0.001) is False and h.state == "down"
    h.probe_failed(5.0, "x")  # resets the success streak
    assert h.probe_succeeded(6.0, 0.001) is False
    assert h.probe_succeeded(7.0, 0.001) is True
    assert h.state == "up" and h.state_since == 7.0 and h.consecutive_failures == 0


def test_first_probe_is_decisive():
    h = NodeHealth(T, now=0.0)
    assert h.state == "up" and h.available  # optimistic before any evidence
    assert h.probe_failed(0.5, "ConnectError") is True
    assert h.state == "down"
    h2 = NodeHealth(T, now=0.0)
    h2.probe_succeeded(0.5, 0.001)
    h2.probe_failed(1.5, "x")
    assert h2.state == "suspect"  # only the very first probe is decisive


def test_passive_failure_marks_down_at_once_and_only_probes_recover():
    h = probed_up()
    assert h.request_unanswered(1.0, "NodeUnavailable: ConnectError") is True
    assert h.state == "down" and not h.available
    # Real requests that still get through (writes) do not lift `down`...
    assert h.request_succeeded(1.1, 0.010) is False and h.state == "down"
    # ...spaced probes do.
    h.probe_succeeded(2.0, 0.001)
    assert h.state == "down"
    h.probe_succeeded(3.0, 0.001)
    assert h.state == "up"


def test_passive_deadline_counts_toward_the_threshold():
    h = probed_up()
    assert h.request_unanswered(1.0, "deadline", timed_out=True) is True
    assert h.state == "suspect" and h.available  # one slow query does not take it out
    h.probe_failed(2.0, "timeout")
    assert h.request_unanswered(2.5, "deadline", timed_out=True) is True
    assert h.state == "down"  # third failure in a row, probes and requests together


def test_passive_success_clears_suspect():
    h = probed_up()
    h.probe_failed(1.0, "x")
    assert h.state == "suspect"
    assert h.request_succeeded(1.5, 0.02) is True and h.state == "up"
    assert h.consecutive_failures == 0


def test_latency_ring_and_view():
    h = probed_up()
    assert h.latency_p95() is None
    for i in range(1, 101):  # more than the window: only the last 64 count
        h.request_succeeded(10.0, i / 1000)
    assert len(h.latencies) == 64
    assert h.latency_p95() == percentile([i / 1000 for i in range(37, 101)], 0.95)
    h.probe_failed(11.0, "e" * 1000)
    v = h.view(now=12.0)
    assert v.state == "suspect" and v.last_error_age_s == 1.0 and v.last_ok_age_s == 2.0
    assert len(v.last_error) <= 300 and v.probe_rtt_ms == 1.0
    assert v.latency_p95_ms == round(h.latency_p95() * 1000, 3)


def test_percentile_nearest_rank():
    assert percentile([], 0.95) is None
    assert percentile([5.0], 0.95) == 5.0
    assert percentile(range(1, 101), 0.95) == 95
    assert percentile(range(1, 101), 0.5) == 50


# --- readiness (pure) --------------------------------------------------------------------


def test_readiness_needs_an_available_owner_for_every_shard():
    groups = {"g0": ["a", "b"], "g1": ["c"]}
    maps = {"i": assignment(8, groups, 1), "j": assignment(3, {"g0": ["a", "b"]}, 1)}
    assert cluster_ready(maps, {"a", "b", "c"})
    # g1 (c) covers all of i, but j lives only in g0: losing a loses some of j's shards.
    a_shards_j = [s for s in range(3) if maps["j"]["g0"][s] == ["a"]]
    assert a_shards_j, "the fixture needs a to own something of j"
    assert uncovered_shards(maps, {"b", "c"}) == {"j": a_shards_j}
    assert not cluster_ready(maps, {"b", "c"})
    # Reads fall back across groups: i stays covered by c alone.
    assert "i" not in uncovered_shards(maps, {"c"})
    assert not cluster_ready({"i": {}}, {"a"})  # an index with no group at all


def test_readiness_without_indexes():
    assert cluster_ready({}, set(), known_nodes=())  # nothing to wait for
    assert cluster_ready({}, {"a"}, known_nodes=("a", "b"))
    assert not cluster_ready({}, set(), known_nodes=("a", "b"))


# --- the table ---------------------------------------------------------------------------


def test_table_unknown_nodes_are_available_and_changes_are_reported():
    now = [0.0]
    table = HealthTable(T, clock=lambda: now[0])
    seen: list[tuple[str, str]] = []
    table.listeners.append(lambda n, s: seen.append((n, s)))
    assert table.is_available("nobody") and table.state("nobody") == "up"
    table.probe_succeeded("a", 0.001)
    table.probe_succeeded("b", 0.001)
    v0 = table.version
    now[0] = 1.0
    table.report_failure("a", "ConnectError: refused")
    assert seen == [("a", "down")] and table.version == v0 + 1
    assert table.available(["a", "b", "c"]) == {"b", "c"} and table.down() == {"a"}
    table.report_success("b", 0.004)
    assert table.latency_p95("b") == 0.004 and table.version == v0 + 1  # no change
    snap = table.snapshot()
    assert list(snap) == ["a", "b"]
    assert snap["a"]["state"] == "down" and snap["a"]["last_error"] == "ConnectError: refused"
    assert snap["b"]["latency_p95_ms"] == 4.0
    table.remove("a")
    assert "a" not in table and table.is_available("a")


def test_table_from_config():
    table = HealthTable.from_config(HealthConfig(unhealthy_threshold=5, recovery_threshold=4), clock=lambda: 0.0)
    assert table.thresholds == Thresholds(unhealthy_threshold=5, recovery_threshold=4)


async def test_wait_for_wakes_on_state_change():
    table = HealthTable(T)
    table.probe_succeeded("a", 0.001)
    woke: list[int] = []

    async def waiter() -> None:
        await table.wait_for(lambda t: not t.is_available("a"))
        woke.append(table.version)

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(waiter)
            await trio.lowlevel.checkpoint()
            table.probe_failed("a", "x")  # suspect: a change, but the predicate is false
            await trio.lowlevel.checkpoint()
            assert woke == []
            table.report_failure("a", "refused")
    assert woke == [table.version]


# --- probers under the autojump clock ----------------------------------------------------


class FakeFleet:
    """The probe side of the test: which node ids answer, hang, or refuse."""

    def __init__(self) -> None:
        self.dead: set[str] = set()
        self.hung: set[str] = set()
        self.calls: dict[str, int] = {}

    async def probe(self, node_id: str) -> None:
        self.calls[node_id] = self.calls.get(node_id, 0) + 1
        await trio.sleep(0.01)
        if node_id in self.hung:
            await trio.sleep_forever()
        if node_id in self.dead:
            raise ConnectionRefusedError(f"{node_id} refused")


async def test_prober_detects_dead_and_hung_nodes_and_recovery(autojump_clock):
    fleet = FakeFleet()
    table = HealthTable(T)
    interval, timeout = 1.0, 0.25
    async with trio.open_nursery() as nursery:
        for n in ("a", "b"):
            await nursery.start(run_prober, table, n, fleet.probe, interval, timeout)
        assert table.state("a") == table.state("b") == "up"

        t0 = trio.current_time()
        fleet.dead.add("a")
        fleet.hung.add("b")
        with trio.fail_after(60):
            await table.wait_for(lambda t: not t.is_available("a") and not t.is_available("b"))
        # Virtual time: down within threshold x interval (+ one probe's deadline).
        assert trio.current_time() - t0 <= T.unhealthy_threshold * interval + timeout
        assert table.get("a").last_error == "ConnectionRefusedError: a refused"
        assert table.get("b").last_error == "no answer within 0.25s"

        fleet.dead.clear()
        fleet.hung.clear()
        t1 = trio.current_time()
        with trio.fail_after(60):
            await table.wait_for(lambda t: t.is_available("a") and t.is_available("b"))
        assert trio.current_time() - t1 <= T.recovery_threshold * interval + timeout
        nursery.cancel_scope.cancel()


async def test_run_health_follows_the_node_list(autojump_clock):
    fleet = FakeFleet()
    fleet.dead.add("c")
    table = HealthTable(T)
    nodes = ["a", "c"]
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: run_health(
            table, lambda: list(nodes), fleet.probe, interval_s=1.0, timeout_s=0.5, task_status=task_status
        ))
        # started() comes after the first probe round: c's failed first probe counts.
        assert table.node_ids() == ["a", "c"]
        assert table.state("a") == "up" and table.state("c") == "down"

        nodes.append("b")
        nodes.remove("c")
        with trio.fail_after(60):
            await table.wait_for(lambda t: "b" in t and "c" not in t)
        calls_c = fleet.calls["c"]
        await trio.sleep(10.0)  # ten more intervals: c's prober is gone for good
        assert fleet.calls["c"] == calls_c and "c" not in table
        assert fleet.calls["b"] >= 10 and table.state("b") == "up"
        nursery.cancel_scope.cancel()
    assert table.node_ids() == ["a", "b"]
