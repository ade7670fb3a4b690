"""The cluster: config, journal-backed state, topology, node clients and task service.

`Cluster.create(config, journal)` needs a loaded journal whose writer runs. At the first
start (no node in the journal) it journals the config's `[[nodes]]` as active; after that
the journal wins over the config, since topology changes made at run time are journaled
(design §1), and a difference is logged as a warning.

`run()` hosts the background services (task service, reconciler, health probers, the
rebalancer, the hinted-handoff/refill service) in its own nursery and closes the node
clients when it stops. A cluster that was created but never run is closed with `aclose()`.
"""

from __future__ import annotations

import structlog
import trio

from miroir.config import Config
from miroir.engine.reconciler import Reconciler
from miroir.engine.tasks import TaskService
from miroir.engine.handoff import Handoff
from miroir.engine.health import HealthTable, run_cluster_health
from miroir.engine.rebalancer import run_rebalancer
from miroir.engine.topology import Topology
from miroir.net.fleet import Fleet
from miroir.engine import keys
from miroir.store.journal import Journal
from miroir.core.model import MiroirState, NodeMeta, NodePut

log = structlog.get_logger("miroir.cluster")

# Default deadline of a node call that does not pass its own (writes, admin calls).
NODE_TIMEOUT_S = 30.0
# Bound on closing the node clients at shutdown.
CLOSE_TIMEOUT_S = 5.0


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
        self.reconciler = Reconciler(self.tasks)
        self.handoff = Handoff(self)
        self._closed = False

    @property
    def state(self) -> MiroirState:
        return self.journal.state

    @property
    def rf(self) -> int:
        return self.config.cluster.replication_factor

    @classmethod
    async def create(cls, config: Config, journal: Journal[MiroirState]) -> Cluster:
        await _bootstrap_nodes(config, journal)
        await keys.bootstrap(journal)  # 1.50's default API keys at the first start
        fleet = Fleet(api_key=config.auth.node_master_key, timeout_s=NODE_TIMEOUT_S)
        cluster = cls(config, journal, fleet)
        await cluster.refresh_topology()
        return cluster

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

    readable_nodes = healthy_nodes

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the background services until cancelled; then close the node clients."""
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(self.tasks.run)
                await nursery.start(self.reconciler.run)
                await nursery.start(run_cluster_health, self, self.health)
                await nursery.start(run_rebalancer, self)
                await nursery.start(self.handoff.run)
                task_status.started()
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_TIMEOUT_S):
                await self.aclose()

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await self.fleet.aclose()


async def _bootstrap_nodes(config: Config, journal: Journal[MiroirState]) -> None:
    state = journal.state
    configured = {n.id: (n.url, n.group) for n in config.nodes}
    if not state.nodes:
        records = [NodePut(node=NodeMeta(id=n.id, url=n.url, group=n.group, state="active")) for n in config.nodes]
        await journal.append(*records)
        log.info("cluster.bootstrapped", nodes=sorted(configured))
        return
    journaled = {i: (n.url, n.group) for i, n in state.nodes.items() if n.state != "removed"}
    if journaled != configured:
        log.warning(
            "cluster.config_differs_from_journal",
            note="the journal wins: nodes added/removed at run time are journaled",
            journal_nodes={i: f"{u} ({g})" for i, (u, g) in sorted(journaled.items())},
            config_nodes={i: f"{u} ({g})" for i, (u, g) in sorted(configured.items())},
        )
