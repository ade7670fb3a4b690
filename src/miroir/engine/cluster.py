"""The cluster: the data every part of the engine shares, and the queries over it.

Config, journal-backed state, the fleet of node clients, the topology, the health table,
the task service, the hinted-handoff state, the per-index write locks, the round-robin
turns of reads, and a handle on the running rebalancer. Nothing here starts a task or
imports a service: engine/services.py creates the cluster and runs the background
services (task service, reconciler, health probers, rebalancer, handoff loop) over it,
so services may import this module and never the other way round.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any, Protocol

import trio

from miroir.config import Config
from miroir.core.health import cluster_ready, uncovered_shards
from miroir.core.model import MiroirState
from miroir.engine.handoffstate import HandoffState
from miroir.engine.health import HealthTable
from miroir.engine.tasks import TaskService
from miroir.engine.topology import Topology
from miroir.net.fleet import Fleet
from miroir.store.journal import Journal


class RebalancerHandle(Protocol):
    """What the admin routes ask of the running rebalancer (engine/rebalancer.py)."""

    def wake(self) -> None: ...

    def status(self) -> dict[str, Any]: ...

    async def ensure_plan(self) -> bool: ...

    async def gate(self) -> None: ...

    async def throttle(self, n: int) -> None: ...


class Cluster:
    def __init__(self, config: Config, journal: Journal[MiroirState], fleet: Fleet):
        self.config = config
        self.journal = journal
        self.fleet = fleet
        self.topology = Topology.from_state(journal.state, config.cluster.replication_factor)
        self.health = HealthTable.from_config(config.health)
        self.tasks = TaskService(
            journal, fleet, lambda: self.topology,
            max_kept=config.tasks.max_kept, delete_batch=config.tasks.delete_batch,
        )
        self.handoff = HandoffState(journal, self.health, config.health)
        # Set by engine/services.py while the rebalancer runs; admin routes answer
        # `miroir_not_ready` without it.
        self.rebalancer: RebalancerHandle | None = None
        # Set by engine/services.py while the reshard service runs (engine/reshard.py).
        self.resharder: Any = None
        # Serializes what must not interleave on one index (engine/indexes.py index_lock).
        self.index_locks: dict[str, trio.Lock] = {}
        # Round-robin turns: which group/replica a scatter starts at (engine/scatter.py),
        # which owner a document read asks first (engine/writes.py).
        self.scatter_turns = itertools.count()
        self.read_rotation = itertools.count()
        # The next document sequence number to hand out (engine/writes.py `take_doc_seqs`);
        # None until the first write after a start, which continues from the journal's.
        self.doc_seq_next: int | None = None

    @property
    def state(self) -> MiroirState:
        return self.journal.state

    @property
    def rf(self) -> int:
        return self.config.cluster.replication_factor

    async def refresh_topology(self) -> None:
        """Rebuild the node clients and the topology from the journal (nodes + migrations).

        A removed node keeps its client while a migration plan still names it as a holder.
        """
        state = self.state
        referenced: set[str] = set()
        rb = state.rebalance
        for groups in [rb.members or {}] + ([rb.plan.old_groups, rb.plan.new_groups] if rb.plan else []):
            for ids in groups.values():
                referenced.update(ids)
        keep = {i: n for i, n in state.nodes.items() if n.state != "removed" or i in referenced}
        for node_id in list(self.fleet):
            if node_id not in keep:
                await self.fleet.remove(node_id)
        for node in keep.values():
            await self.fleet.add(node.id, node.url)
        self.topology = Topology.from_state(state, self.rf)

    def healthy_nodes(self) -> frozenset[str]:
        """Nodes that may answer reads now: not marked down by probes or failed calls, and
        not being repaired (held after coming back, backlog to replay, refill running:
        engine/handoff.py). Writes ask `handoff.delivery` instead."""
        unreadable = self.handoff.unreadable()
        return frozenset(n for n in self.health.available(self.topology.all_nodes()) if n not in unreadable)


# --- readiness (/_miroir/ready) ----------------------------------------------------------------


def index_shard_maps(cluster: Cluster) -> dict[str, Mapping[str, Any]]:
    """Index uid -> the topology's shard map of that index (for readiness)."""
    topo = cluster.topology
    return {uid: topo.shard_map(meta.layout) for uid, meta in cluster.state.indexes.items()}


def cluster_is_ready(cluster: Cluster, table: HealthTable) -> bool:
    """The /_miroir/ready rule (miroir.core.health.cluster_ready) for a live cluster."""
    nodes = cluster.topology.all_nodes()
    return cluster_ready(index_shard_maps(cluster), table.available(nodes), nodes)


def cluster_uncovered(cluster: Cluster, table: HealthTable) -> dict[str, list[int]]:
    """Index uid -> shards no available node can serve (for the 503 message)."""
    return uncovered_shards(index_shard_maps(cluster), table.available(cluster.topology.all_nodes()))
