"""Node health end to end (issue 6): the probers against real devnode subprocesses through
the NodeClient, one killed with SIGKILL and restarted (the pure state machine, table and
probers are tests/unit/test_health.py)."""

from __future__ import annotations

from types import SimpleNamespace

import trio

from miroir.config import Config, HealthConfig
from miroir.core.model import IndexMeta, MiroirState, NodeMeta
from miroir.engine.cluster import cluster_is_ready, cluster_uncovered
from miroir.engine.health import HealthTable
from miroir.engine.services import run_cluster_health
from miroir.engine.topology import Topology
from miroir.net.fleet import Fleet
from tests.support.devnodes import start_devnodes

# Generous bounds on waits for real processes; never the subject of an assertion.
WAIT_S = 15.0


# --- end to end: real devnodes, SIGKILL, restart -------------------------------------------


def cluster_like(nodes, index_shards: int) -> SimpleNamespace:
    """What `run_cluster_health` reads of a Cluster: config, topology, fleet, state."""
    metas = {f"n{i}": NodeMeta(id=f"n{i}", url=n.url, group="g0", state="active") for i, n in enumerate(nodes)}
    state = MiroirState(
        nodes=metas,
        indexes={"idx": IndexMeta(uid="idx", primary_key="id", shards=index_shards, created_at="", updated_at="")},
    )
    # A short interval keeps the test quick; a long deadline keeps a slow answer on a
    # loaded machine from counting as a failure (a killed node refuses at once anyway).
    config = Config(health=HealthConfig(interval_ms=100, timeout_ms=3_000, unhealthy_threshold=3, recovery_threshold=2))
    return SimpleNamespace(config=config, state=state, topology=Topology(metas, 1), fleet=Fleet(timeout_s=5.0))


async def test_prober_against_killed_and_restarted_devnode():
    with start_devnodes(2) as nodes:
        cluster = cluster_like(nodes, index_shards=8)
        for node_id, meta in cluster.state.nodes.items():
            await cluster.fleet.add(node_id, meta.url)
        table = HealthTable.from_config(cluster.config.health)
        transitions: list[tuple[str, str]] = []
        table.listeners.append(lambda n, s: transitions.append((n, s)))
        victim_shards = [s for s in range(8) if cluster.topology.owners(8, s, "g0") == ["n1"]]
        assert victim_shards, "fixture: n1 must own some shard"
        try:
            async with trio.open_nursery() as nursery:
                with trio.fail_after(WAIT_S):
                    await nursery.start(run_cluster_health, cluster, table)
                assert table.state("n0") == table.state("n1") == "up"
                assert cluster_is_ready(cluster, table)

                mark = len(transitions)
                await trio.to_thread.run_sync(nodes[1].kill)
                with trio.fail_after(WAIT_S):
                    await table.wait_for(lambda t: not t.is_available("n1"))
                # Detected by probes alone (nothing else reports here): a failure streak
                # that reached the threshold, through `suspect` unless a slow probe on a
                # loaded machine had already made it suspect.
                n1_states = [s for n, s in transitions[mark:] if n == "n1"]
                assert n1_states in (["suspect", "down"], ["down"])
                assert table.get("n1").consecutive_failures >= 3
                assert not cluster_is_ready(cluster, table)
                assert cluster_uncovered(cluster, table) == {"idx": victim_shards}
                assert table.is_available("n0")

                await trio.to_thread.run_sync(nodes[1].restart)
                with trio.fail_after(WAIT_S):
                    await table.wait_for(lambda t: t.is_available("n1"))
                assert table.get("n1").consecutive_successes >= 2
                assert cluster_is_ready(cluster, table)

                # Passive evidence: one unanswered real request takes n0 out at once;
                # the prober (the node is fine) brings it back.
                table.report_failure("n0", "NodeUnavailable: RemoteProtocolError")
                assert not table.is_available("n0")
                with trio.fail_after(WAIT_S):
                    await table.wait_for(lambda t: t.is_available("n0"))
                assert table.snapshot()["n0"]["state"] == "up"
                nursery.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):
                await cluster.fleet.aclose()
