"""The composition root of the engine: create the cluster, run its background services.

`create_cluster(config, journal)` needs a loaded journal whose writer runs. At the first
start (no node in the journal) it journals the config's `[[nodes]]` as active; after that
the journal wins over the config, since topology changes made at run time are journaled
(design §1), and a difference is logged as a warning. One exception: a node the journal
knows whose config url differs has moved, and its new url is journaled (logged
`node.url_changed`, engine/nodeurl.py).

`run_services(cluster)` runs the background services in its own nursery (the daemon
starts it in its service nursery) and closes the node clients when it stops:
- the task service (`cluster.tasks`) and the reconciler folding node task states;
- the health probers, one per node, feeding `cluster.health`; once they had their
  first probes, the writes a killed Miroir left in flight are rolled forward
  (engine/intents.py) before anything else runs;
- the rebalancer, reachable as `cluster.rebalancer` while it runs;
- the hinted-handoff repair loop over `cluster.handoff`;
- the webhook deliveries of finished tasks (engine/webhooks.py).
This is the only module that imports the services; they import `Cluster` (engine/cluster.py).
"""

from __future__ import annotations

from typing import NoReturn

import structlog
import trio

from miroir.config import Config, HealthConfig
from miroir.core.model import MiroirState, NodeMeta, NodePut
from miroir.engine import keys, nodeurl
from miroir.engine.cluster import Cluster
from miroir.engine.handoff import Handoff
from miroir.engine.health import HealthTable, Probe, run_health
from miroir.engine.intents import settle_interrupted
from miroir.engine.rebalancer import run_rebalancer
from miroir.engine.reconciler import Reconciler
from miroir.engine.reshard import run_resharder
from miroir.engine.webhooks import WebhookService
from miroir.net.fleet import Fleet
from miroir.store.journal import Journal

log = structlog.get_logger("miroir.cluster")

# Default deadline of a node call that does not pass its own (writes, admin calls).
NODE_TIMEOUT_S = 30.0
# Bound on closing the node clients at shutdown.
CLOSE_TIMEOUT_S = 5.0


async def create_cluster(config: Config, journal: Journal[MiroirState]) -> Cluster:
    await _bootstrap_nodes(config, journal)
    await keys.bootstrap(journal)  # 1.50's default API keys at the first start
    fleet = Fleet(api_key=config.auth.node_master_key, timeout_s=NODE_TIMEOUT_S)
    cluster = Cluster(config, journal, fleet)
    await cluster.refresh_topology()
    return cluster


async def run_services(cluster: Cluster, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Run the background services until cancelled; then close the node clients."""
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(cluster.tasks.run)
            await nursery.start(Reconciler(cluster.tasks).run)
            await nursery.start(run_cluster_health, cluster, cluster.health)
            # Writes a kill -9 interrupted mid-fan-out, before Miroir is ready (issue 20).
            await settle_interrupted(cluster)
            await nursery.start(run_rebalancer, cluster)
            await nursery.start(run_resharder, cluster)
            await nursery.start(Handoff(cluster).run)
            await nursery.start(WebhookService(cluster).run)
            task_status.started()
    finally:
        with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_TIMEOUT_S):
            await cluster.fleet.aclose()


def cluster_probe(cluster: Cluster, timeout_s: float) -> Probe:
    """`GET /health` through the cluster's pooled NodeClient of that node."""

    async def probe(node_id: str) -> None:
        client = cluster.fleet.get(node_id)
        if client is None:
            raise LookupError(f"no client for node `{node_id}`")
        await client.call("GET", "/health", timeout_s=timeout_s)

    return probe


async def run_cluster_health(
    cluster: Cluster, table: HealthTable, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> NoReturn:
    """`run_health` over every known node of `cluster.topology`, timings from config."""
    cfg: HealthConfig = cluster.config.health
    timeout_s = cfg.timeout_ms / 1000
    await run_health(
        table,
        lambda: cluster.topology.all_nodes(),
        cluster_probe(cluster, timeout_s),
        interval_s=cfg.interval_ms / 1000,
        timeout_s=timeout_s,
        task_status=task_status,
    )


async def _bootstrap_nodes(config: Config, journal: Journal[MiroirState]) -> None:
    state = journal.state
    configured = {n.id: (n.url, n.group) for n in config.nodes}
    if not state.nodes:
        records = [
            NodePut(node=NodeMeta(id=n.id, url=n.url, group=n.group, state="active", weight=n.weight))
            for n in config.nodes
        ]
        await journal.append(*records)
        log.info("cluster.bootstrapped", nodes=sorted(configured))
        return
    # A node the journal knows but the config places at another address has moved: the
    # config's url wins (the only other way to say so is `miroir nodes set-url`).
    moves = [
        nodeurl.moved(n, configured[i][0])
        for i, n in sorted(state.nodes.items())
        if n.state != "removed" and i in configured and n.url.rstrip("/") != configured[i][0].rstrip("/")
        and nodeurl.url_taken(state, i, configured[i][0]) is None
    ]
    for rec in moves:
        log.warning("node.url_changed", node=rec.node.id, old_url=state.nodes[rec.node.id].url,
                    new_url=rec.node.url, source="config")
    if moves:
        await journal.append(*moves)
    journaled = {i: (n.url.rstrip("/"), n.group) for i, n in state.nodes.items() if n.state != "removed"}
    configured = {i: (u.rstrip("/"), g) for i, (u, g) in configured.items()}
    if journaled != configured:
        log.warning(
            "cluster.config_differs_from_journal",
            note="the journal wins: nodes added/removed at run time are journaled",
            journal_nodes={i: f"{u} ({g})" for i, (u, g) in sorted(journaled.items())},
            config_nodes={i: f"{u} ({g})" for i, (u, g) in sorted(configured.items())},
        )
