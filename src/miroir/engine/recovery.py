"""Start-up checks against the nodes, and recovery from them (issue 20).

- `check_new_cluster`: a journal with no record is a new cluster, unless the configured
  nodes hold an index or a task: then Miroir's data dir was emptied (or pointed at the
  wrong place) and starting would hand out task uids clients already hold and forget
  every index. Refused, naming what the nodes hold. A node that does not answer within
  `PROBE_WAIT_S` is refused too: nobody can tell what it holds.
- `recover` (`miroir serve --recover`, the operator's consent): after the journal was
  salvaged (store/journal.py), read what the nodes hold and journal it: the task counter
  raised past every uid a client may hold (core/recovery.py says how far and why), and
  every index the nodes hold that the journal lost (uid, primary key, shard count from the
  documents' `_miroir_shard`, settings, attributes). Tasks themselves are not recovered.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import structlog
import trio

from miroir.config import Config
from miroir.core import recovery as core, settings as core_settings
from miroir.core.model import (
    IndexFieldsSeen,
    IndexMeta,
    IndexPut,
    IndexSettingsPut,
    JournalRecord,
    MiroirState,
    TaskCounterRaised,
)
from miroir.core.routing import canonical_key
from miroir.core.settings import RESERVED_PREFIX, SHARD_FIELD
from miroir.net.node import NodeClient, NodeError, NodeUnavailable
from miroir.store.journal import Journal

log = structlog.get_logger("miroir.recovery")

CALL_TIMEOUT_S = 5.0
# How long start-up waits for a node that does not answer (it may be starting too).
PROBE_WAIT_S = 10.0
PROBE_RETRY_S = 0.25
PAGE = 1000
SAMPLES_PER_NODE = 200


class RecoveryRefused(Exception):
    """One line for the operator: why Miroir does not start (the CLI prints it)."""


def nodes_to_probe(config: Config, state: MiroirState) -> dict[str, str]:
    """Node id -> url: the configured nodes and those the journal still knows."""
    out = {n.id: n.url for n in config.nodes}
    for n in state.nodes.values():
        if n.state != "removed":
            out.setdefault(n.id, n.url)
    return dict(sorted(out.items()))


async def _probe(client: NodeClient, tasks: Any, *, deep: bool) -> core.NodeHoldings:
    """What one node holds, from its answer to `GET /tasks?limit=1` on."""
    h = core.NodeHoldings(node=client.node_id, url=client.url)
    results = (tasks or {}).get("results") or []
    if results:
        h.next_task_uid = int(results[0]["uid"]) + 1
    offset = 0
    while True:
        page = await client.call("GET", "/indexes", params={"offset": offset, "limit": PAGE}, timeout_s=CALL_TIMEOUT_S)
        for ix in page.get("results") or []:
            h.indexes[ix["uid"]] = core.IndexHoldings(
                uid=ix["uid"], primary_key=ix.get("primaryKey"), created_at=ix.get("createdAt"), updated_at=ix.get("updatedAt")
            )
        offset += PAGE
        if not deep or offset >= int(page.get("total") or 0):
            break
    if deep:
        for ih in h.indexes.values():
            await _probe_index(client, ih)
    return h


async def _probe_index(client: NodeClient, ih: core.IndexHoldings) -> None:
    path = f"/indexes/{ih.uid}"
    stats = await client.call("GET", f"{path}/stats", timeout_s=CALL_TIMEOUT_S)
    ih.documents = int(stats.get("numberOfDocuments") or 0)
    ih.fields = [f for f in (stats.get("fieldDistribution") or {}) if not f.startswith(RESERVED_PREFIX)]
    ih.settings = await client.call("GET", f"{path}/settings", timeout_s=CALL_TIMEOUT_S)
    if ih.primary_key and ih.documents:
        page = await client.call(
            "GET",
            f"{path}/documents",
            params={"fields": [ih.primary_key, SHARD_FIELD], "limit": SAMPLES_PER_NODE},
            timeout_s=CALL_TIMEOUT_S,
        )
        for doc in page.get("results") or []:
            key, shard = doc.get(ih.primary_key), doc.get(SHARD_FIELD)
            if isinstance(shard, int) and isinstance(key, (str, int)) and not isinstance(key, bool):
                ih.samples.append((canonical_key(key), shard))


async def probe_nodes(
    nodes: dict[str, str], api_key: str | None, *, deep: bool, wait_s: float = PROBE_WAIT_S
) -> list[core.NodeHoldings]:
    """Ask every node what it holds, in parallel; a node that does not answer is retried
    until `wait_s`, then reported with its `error`."""
    out: dict[str, core.NodeHoldings] = {}

    async def one(node: str, url: str) -> None:
        client = NodeClient(node, url, api_key=api_key, timeout_s=CALL_TIMEOUT_S)
        error: str | None = "no answer"
        tasks: Any = None
        try:
            # Wait for the node to answer at all (it may be starting too) ...
            with trio.move_on_after(wait_s):
                while True:
                    try:
                        tasks = await client.call("GET", "/tasks", params={"limit": 1}, timeout_s=CALL_TIMEOUT_S)
                        error = None
                        break
                    except NodeUnavailable as e:
                        error = e.reason
                    except NodeError as e:  # answered, refused (a wrong key?): no retry helps
                        error = str(e)
                        break
                    await trio.sleep(PROBE_RETRY_S)
            # ... then read it, each call under its own deadline.
            if error is None:
                try:
                    out[node] = await _probe(client, tasks, deep=deep)
                    return
                except NodeUnavailable as e:
                    error = e.reason
                except (NodeError, KeyError, TypeError, ValueError, AttributeError) as e:
                    error = f"not a Meilisearch answer: {e!r}" if not isinstance(e, NodeError) else str(e)
            out[node] = core.NodeHoldings(node=node, url=url, error=error)
        finally:
            with trio.CancelScope(shield=True):
                await client.aclose()

    async with trio.open_nursery() as nursery:
        for node, url in nodes.items():
            nursery.start_soon(one, node, url)
    return [out[n] for n in nodes]


def _placement_of(
    uid: str, state: MiroirState, answered: Sequence[core.NodeHoldings], shards: int, config: Config | None
) -> int:
    """Which placement put `uid`'s documents where the nodes hold them (its record is
    lost): the membership from the journal's nodes, else the config's."""
    groups: dict[str, list[str]] = {}
    weights: dict[str, float] = {}
    live = [n for n in state.nodes.values() if n.state != "removed"]
    members = state.rebalance.members
    if members:
        for g, ids in members.items():
            groups[g] = list(ids)
            weights.update({i: state.nodes[i].weight for i in ids if i in state.nodes})
    elif live:
        for n in live:
            groups.setdefault(n.group, []).append(n.id)
            weights[n.id] = n.weight
    elif config is not None:
        for cn in config.nodes:
            groups.setdefault(cn.group, []).append(cn.id)
            weights[cn.id] = cn.weight
    rf = config.cluster.replication_factor if config is not None else 1
    samples = {h.node: h.indexes[uid].samples for h in answered if uid in h.indexes}
    return core.infer_placement(samples, groups, weights, rf, shards, state.rebalance.tables)


async def check_new_cluster(config: Config, state: MiroirState, data_dir: str) -> None:
    """Refuse to start a new cluster over nodes that hold this cluster's data."""
    nodes = nodes_to_probe(config, state)
    if not nodes:
        return
    holdings = await probe_nodes(nodes, config.auth.node_master_key, deep=False)
    held = core.holders_summary(holdings)
    hint = "restore the data dir, or start with `miroir serve --recover` to rebuild the journal from the nodes"
    if held:
        raise RecoveryRefused(
            f"the journal in `{data_dir}` is empty (no snapshot, no record), but {held}: "
            f"this is not a new cluster; {hint}"
        )
    silent = [h for h in holdings if h.error is not None]
    if silent:
        h = silent[0]
        raise RecoveryRefused(
            f"the journal in `{data_dir}` is empty and node {h.node} ({h.url}) did not say what it holds "
            f"(tried for {PROBE_WAIT_S:g}s: {h.error}): it may hold this cluster's data; start the node or fix its "
            f"key, or {hint}"
        )


def recovery_records(
    state: MiroirState,
    holdings: Sequence[core.NodeHoldings],
    *,
    configured_shards: int,
    marker_high_water: int,
    now: str,
    config: Config | None = None,
) -> tuple[list[JournalRecord], dict[str, Any]]:
    """The records that bring `state` up to what the nodes hold, and a summary to log."""
    answered = [h for h in holdings if h.error is None]
    floor = core.task_uid_floor(state.next_task_uid, marker_high_water, (h.next_task_uid for h in answered))
    records: list[JournalRecord] = []
    if floor > state.next_task_uid:
        records.append(TaskCounterRaised(floor=floor))
    added: dict[str, int] = {}
    for uid, copies in core.merged_indexes(answered).items():
        if uid in state.indexes:
            continue
        pk = next((c.primary_key for c in copies if c.primary_key), None)
        samples = [s for c in copies for s in c.samples]
        shards = core.infer_shards(samples, configured_shards)
        created = min((c.created_at for c in copies if c.created_at), default=now)
        updated = max((c.updated_at for c in copies if c.updated_at), default=now)
        placement = _placement_of(uid, state, answered, shards, config)
        meta = IndexMeta(
            uid=uid, primary_key=pk, shards=shards, placement=placement, created_at=created, updated_at=updated
        )
        records.append(IndexPut(meta=meta))
        node_settings = next((c.settings for c in copies if c.settings is not None), None)
        if node_settings is not None:
            view = core_settings.client_view(node_settings, core_settings.DEFAULT_MAX_VALUES_PER_FACET)
            records.append(IndexSettingsPut(uid=uid, settings=view, version=0, updated_at=updated))
        fields = list(dict.fromkeys(f for c in copies for f in c.fields))
        if fields:
            records.append(IndexFieldsSeen(uid=uid, fields=fields))
        added[uid] = shards
    summary = {
        "placements": {r.meta.uid: r.meta.placement for r in records if isinstance(r, IndexPut)},
        "task_uid_floor": max(floor, state.next_task_uid),
        "journal_next_task_uid": state.next_task_uid,
        "marker_high_water": marker_high_water,
        "node_task_uids": {h.node: h.next_task_uid for h in answered},
        "indexes_added": added,
        "nodes_silent": {h.node: h.error for h in holdings if h.error is not None},
    }
    return records, summary


async def recover(config: Config, journal: Journal[MiroirState], now: str) -> list[JournalRecord]:
    """Read the nodes and bring the loaded (maybe salvaged) journal up to what they hold.

    Before the journal's writer starts. A salvaged journal gets the records in its new
    snapshot (`Journal.finish_salvage`: one commit point, nothing changed on disk before);
    otherwise they are returned, for the caller to append once the writer runs.
    """
    nodes = nodes_to_probe(config, journal.state)
    holdings = await probe_nodes(nodes, config.auth.node_master_key, deep=True)
    salvage = journal.salvage
    mark = salvage.mark if salvage is not None else journal.mark
    records, summary = recovery_records(
        journal.state,
        holdings,
        configured_shards=config.cluster.shards,
        marker_high_water=mark.high_water if mark is not None else 0,
        now=now,
        config=config,
    )
    if salvage is not None:
        await trio.to_thread.run_sync(journal.finish_salvage, records)
        summary.update(damage=salvage.damage, records_kept=salvage.records, moved_to=salvage.moved_to)
        records = []
    log.warning("recovery.done", **summary)
    return records
