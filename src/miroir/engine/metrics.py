"""Prometheus metrics of a running Miroir (`GET /metrics`, api/routes_metrics.py).

Built at scrape time, so serving traffic pays nothing for them beyond the plain counters
of miroir/instruments.py:
- from `HOT` (bumped on the hot paths): client requests by route and status with their
  latency, fan-out width, hedges and retries, node sub-request latency, journal append
  and commit (write + fsync) latency;
- from the Cluster's state, read when scraped: node state, health and probe round trip,
  hinted-handoff backlog, rebalance progress, open tasks by status, indexes;
- from the nodes, asked when scraped (`node_documents`, one `GET /stats` per reachable
  node, short deadline): documents each node holds per index. Per shard counts are not
  kept anywhere and would cost a scatter per shard, so they are not exported;
- webhooks and their deliveries not acknowledged yet.

Every metric is named `miroir_*`; `METRIC_NAMES` lists them (the Grafana dashboard in
packaging/ is checked against it).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import trio
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from miroir.engine.cluster import Cluster
from miroir.instruments import HOT, Hist, HotStats
from miroir.net.node import NodeError, NodeUnavailable

# Deadline of one node's `GET /stats` during a scrape: a slow node must not stall it.
NODE_STATS_TIMEOUT_S = 1.0

HEALTH_STATES = ("up", "suspect", "down")
TASK_STATES = ("enqueued", "processing")
REPAIR_STATES = ("ok", "held", "catching_up", "backlog", "refilling")

# name -> (type, help). The single list of what /metrics exposes.
METRICS: dict[str, tuple[str, str]] = {
    "miroir_http_request_duration_seconds": ("histogram", "Client requests by method, route and status: latency."),
    "miroir_fanout_nodes": ("histogram", "Nodes asked by one client request (searches, fetches, stats)."),
    "miroir_hedges": ("counter", "Hedge sub-requests sent to another owner of a slow part."),
    "miroir_retries": ("counter", "Parts sent again to another owner after a node failed."),
    "miroir_node_request_duration_seconds": ("histogram", "Answered sub-requests to a node: latency."),
    "miroir_journal_commit_duration_seconds": ("histogram", "One journal group commit: write + fsync."),
    "miroir_journal_append_duration_seconds": ("histogram", "journal append until durable and applied."),
    "miroir_journal_records": ("counter", "Journal records acknowledged since start."),
    "miroir_journal_commits": ("counter", "Journal write+fsync rounds since start."),
    "miroir_node_info": ("gauge", "1 per known node, with its url, group and membership state."),
    "miroir_node_health_state": ("gauge", "1 for the node's current health state (up, suspect, down)."),
    "miroir_node_up": ("gauge", "1 while the node may receive requests (health not down)."),
    "miroir_node_readable": ("gauge", "1 while the node answers reads (up and not being repaired)."),
    "miroir_node_probe_rtt_seconds": ("gauge", "Round trip of the node's last successful /health probe."),
    "miroir_node_latency_p95_seconds": ("gauge", "p95 of the node's recent answered sub-requests."),
    "miroir_node_consecutive_failures": ("gauge", "Failed probes or requests in a row."),
    "miroir_handoff_backlog_records": ("gauge", "Missed writes queued for the node (hinted handoff)."),
    "miroir_handoff_backlog_bytes": ("gauge", "Bytes of missed writes queued for the node."),
    "miroir_handoff_repair_state": ("gauge", "1 for the node's repair state (ok, held, catching_up, backlog, refilling)."),
    "miroir_handoff_replayed_records": ("counter", "Missed writes replayed to the node."),
    "miroir_handoff_refills": ("counter", "Refills of the node's copy from other owners."),
    "miroir_rebalance_running": ("gauge", "1 while a migration plan runs."),
    "miroir_rebalance_paused": ("gauge", "1 while the rebalance is paused."),
    "miroir_rebalance_units": ("gauge", "Units of the running plan by status."),
    "miroir_rebalance_documents_copied": ("gauge", "Documents copied by the running plan."),
    "miroir_rebalance_documents_remaining": ("gauge", "Documents left to copy by the running plan (estimate)."),
    "miroir_rebalance_copy_rate": ("gauge", "Documents copied per second over the last seconds."),
    "miroir_tasks_open": ("gauge", "Miroir tasks not finished, by status."),
    "miroir_tasks_kept": ("gauge", "Miroir tasks kept in the task history."),
    "miroir_next_task_uid": ("gauge", "The uid the next task will get."),
    "miroir_indexes": ("gauge", "Indexes."),
    "miroir_index_shards": ("gauge", "Shards of each index."),
    "miroir_node_index_documents": ("gauge", "Documents a node holds of an index (all its shards, as the node counts)."),
    "miroir_webhooks": ("gauge", "Webhooks configured."),
    "miroir_webhook_deliveries_pending": ("gauge", "Webhook deliveries not acknowledged yet, by webhook."),
}
METRIC_NAMES = frozenset(METRICS)


def _hist(name: str, labels: list[str], series: Mapping[tuple[str, ...], Hist]) -> HistogramMetricFamily:
    fam = HistogramMetricFamily(name, METRICS[name][1], labels=labels)
    for values, h in sorted(series.items()):
        fam.add_metric(list(values), h.buckets(), h.total)
    return fam


def _gauge(name: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, METRICS[name][1], labels=labels)


def _counter(name: str, labels: list[str]) -> CounterMetricFamily:
    return CounterMetricFamily(name, METRICS[name][1], labels=labels)


def _value(name: str, value: float) -> Metric:
    """A metric of one sample without labels (a gauge or a counter, as METRICS says)."""
    family = CounterMetricFamily if METRICS[name][0] == "counter" else GaugeMetricFamily
    return family(name, METRICS[name][1], value=value)


def hot_metrics(hot: HotStats = HOT) -> Iterator[Metric]:
    yield _hist(
        "miroir_http_request_duration_seconds", ["method", "route", "status"],
        {(m, r, str(s)): h for (m, r, s), h in hot.requests.items()},
    )
    yield _hist("miroir_fanout_nodes", [], {(): hot.fanout})
    yield _value("miroir_hedges", hot.hedges)
    yield _value("miroir_retries", hot.retries)
    yield _hist("miroir_node_request_duration_seconds", ["node"], {(n,): h for n, h in hot.node_latency.items()})
    yield _hist("miroir_journal_commit_duration_seconds", [], {(): hot.journal_commit})
    yield _hist("miroir_journal_append_duration_seconds", [], {(): hot.journal_append})


def cluster_metrics(cluster: Cluster, documents: Mapping[str, Mapping[str, int]] | None = None) -> Iterator[Metric]:
    """Gauges read from `cluster` now; `documents`: node -> index -> count (node_documents)."""
    state = cluster.state
    stats = cluster.journal.stats
    yield _value("miroir_journal_records", stats.records)
    yield _value("miroir_journal_commits", stats.batches)

    nodes = cluster.topology.nodes
    info = _gauge("miroir_node_info", ["node", "url", "group", "state"])
    health_state = _gauge("miroir_node_health_state", ["node", "state"])
    up = _gauge("miroir_node_up", ["node"])
    readable_g = _gauge("miroir_node_readable", ["node"])
    rtt = _gauge("miroir_node_probe_rtt_seconds", ["node"])
    p95 = _gauge("miroir_node_latency_p95_seconds", ["node"])
    fails = _gauge("miroir_node_consecutive_failures", ["node"])
    health = cluster.health.snapshot()
    readable = cluster.healthy_nodes()
    for node_id, n in nodes.items():
        if n.state == "removed":
            continue
        info.add_metric([node_id, n.url, n.group, n.state], 1)
        h = health.get(node_id)
        current = h["state"] if h else "up"  # never probed yet: a node starts up
        for s in HEALTH_STATES:
            health_state.add_metric([node_id, s], 1 if s == current else 0)
        up.add_metric([node_id], 0 if current == "down" else 1)
        readable_g.add_metric([node_id], 1 if node_id in readable else 0)
        if h and h.get("probe_rtt_ms") is not None:
            rtt.add_metric([node_id], h["probe_rtt_ms"] / 1000)
        if h and h.get("latency_p95_ms") is not None:
            p95.add_metric([node_id], h["latency_p95_ms"] / 1000)
        fails.add_metric([node_id], h["consecutive_failures"] if h else 0)
    yield from (info, health_state, up, readable_g, rtt, p95, fails)

    records = _gauge("miroir_handoff_backlog_records", ["node"])
    size = _gauge("miroir_handoff_backlog_bytes", ["node"])
    repair = _gauge("miroir_handoff_repair_state", ["node", "state"])
    replayed = _counter("miroir_handoff_replayed_records", ["node"])
    refills = _counter("miroir_handoff_refills", ["node"])
    for node_id, n in nodes.items():
        if n.state == "removed":
            continue
        v = cluster.handoff.view(node_id)
        records.add_metric([node_id], v["backlogOps"])
        size.add_metric([node_id], v["backlogBytes"])
        for s in REPAIR_STATES:
            repair.add_metric([node_id, s], 1 if s == v["state"] else 0)
        replayed.add_metric([node_id], v["replayedOps"])
        refills.add_metric([node_id], v["refills"])
    yield from (records, size, repair, replayed, refills)

    yield from _rebalance(cluster)

    open_by: dict[str, int] = dict.fromkeys(TASK_STATES, 0)
    for uid in state.open_tasks:
        t = state.tasks.get(uid)
        if t is not None:
            open_by[t.status] = open_by.get(t.status, 0) + 1
    tasks = _gauge("miroir_tasks_open", ["status"])
    for s, count in sorted(open_by.items()):
        tasks.add_metric([s], count)
    yield tasks
    yield _value("miroir_tasks_kept", len(state.tasks))
    yield _value("miroir_next_task_uid", state.next_task_uid)
    yield _value("miroir_indexes", len(state.indexes))
    shards = _gauge("miroir_index_shards", ["index"])
    for index_uid, meta in sorted(state.indexes.items()):
        shards.add_metric([index_uid], meta.shards)
    yield shards
    docs = _gauge("miroir_node_index_documents", ["node", "index"])
    for node_id, per_index in sorted((documents or {}).items()):
        for index_uid, count in sorted(per_index.items()):
            if index_uid in state.indexes:
                docs.add_metric([node_id, index_uid], count)
    yield docs

    yield _value("miroir_webhooks", len(state.webhooks))
    pending = _gauge("miroir_webhook_deliveries_pending", ["webhook"])
    per_hook = dict.fromkeys(state.webhooks, 0)
    for d in state.webhook_outbox.values():
        per_hook[d.webhook] = per_hook.get(d.webhook, 0) + 1
    for uuid, count in sorted(per_hook.items()):
        pending.add_metric([uuid], count)
    yield pending


def _rebalance(cluster: Cluster) -> Iterator[Metric]:
    rb = cluster.state.rebalance
    plan = rb.plan
    yield _value("miroir_rebalance_running", 1 if plan is not None else 0)
    yield _value("miroir_rebalance_paused", 1 if rb.paused else 0)
    progress = None
    if plan is not None and cluster.rebalancer is not None:
        progress = cluster.rebalancer.status().get("progress")
    progress = progress or {}
    units = _gauge("miroir_rebalance_units", ["status"])
    for s in ("pending", "copying", "switched", "done"):
        units.add_metric([s], progress.get(s, 0))
    yield units
    yield _value("miroir_rebalance_documents_copied", progress.get("documentsCopied", 0))
    yield _value("miroir_rebalance_documents_remaining", progress.get("documentsRemaining", 0))
    yield _value("miroir_rebalance_copy_rate", progress.get("rate", 0.0))


async def node_documents(cluster: Cluster) -> dict[str, dict[str, int]]:
    """Node -> index -> numberOfDocuments, from each reachable node's `GET /stats`."""
    out: dict[str, dict[str, int]] = {}
    reachable = cluster.health.available(cluster.topology.all_nodes())

    async def one(node_id: str) -> None:
        client = cluster.fleet.get(node_id)
        if client is None:
            return
        try:
            body = await client.call("GET", "/stats", timeout_s=NODE_STATS_TIMEOUT_S)
        except (NodeUnavailable, NodeError):
            return  # a scrape reports what it can; health metrics say why
        indexes = body.get("indexes") if isinstance(body, dict) else None
        if isinstance(indexes, dict):
            out[node_id] = {
                uid: int(s.get("numberOfDocuments", 0)) for uid, s in indexes.items() if isinstance(s, dict)
            }

    async with trio.open_nursery() as nursery:
        for node_id in sorted(reachable):
            nursery.start_soon(one, node_id)
    return out


class ClusterCollector(Collector):
    """A one-scrape collector: the hot numbers and the cluster's state as of now."""

    def __init__(self, cluster: Cluster, documents: Mapping[str, Mapping[str, int]] | None = None):
        self.cluster = cluster
        self.documents = documents

    def collect(self) -> Iterator[Metric]:
        yield from hot_metrics()
        yield from cluster_metrics(self.cluster, self.documents)
