"""Settings broadcast: two phases, then a check that every node holds the same settings.

A settings update is a driven Miroir task (`settingsUpdate`):

1. apply: send the node view of the patch (core/settings.py: `_miroir_shard` stays
   filterable, nodes return every facet value) to every node and wait for their tasks;
   a node that fails fails the Miroir task with its error;
2. verify: read the full settings back from every node and compare a canonical hash.
   Nodes that differ from the majority (a node that missed an earlier update, say) get
   the majority's full settings re-applied once; if they still differ the task fails
   naming them.
On success the client view is journaled (`IndexSettingsPut`) with the index's settings
version bumped: the merge reads rankingRules, distinctAttribute and faceting from it, and
`GET /settings*` answers from it (no node call).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import structlog

from miroir.core import settings as core
from miroir.core.errors import MeiliError, index_not_found
from miroir.core.model import IndexSettingsPut, TaskRecord
from miroir.engine.cluster import Cluster
from miroir.engine.indexes import ensure_index, now, read_node_settings, run_on
from miroir.engine.tasks import DrivenTask

log = structlog.get_logger("miroir.settings")

DIVERGED_CODE = "miroir_settings_diverged"


def index_settings(cluster: Cluster, uid: str) -> dict[str, Any]:
    """The client view of an index's settings, with Meilisearch's defaults filled in.

    Raises index_not_found. The returned dict is the journal's: do not modify it.
    """
    if uid not in cluster.state.indexes:
        raise index_not_found(uid)
    return cluster.state.index_settings.get(uid) or core.DEFAULTS


def settings_version(cluster: Cluster, uid: str) -> int:
    meta = cluster.state.indexes.get(uid)
    if meta is None:
        raise index_not_found(uid)
    return meta.settings_version


def _majority(hashes: dict[str, str]) -> str:
    """The hash most nodes hold (ties: the one of the lowest node id)."""
    counts = Counter(hashes.values())
    best = max(counts.values())
    return next(h for n, h in sorted(hashes.items()) if counts[h] == best)


async def _apply(cluster: Cluster, uid: str, nodes: list[str], patch: dict, handle: DrivenTask) -> None:
    await run_on(cluster, handle, nodes, "PATCH", f"/indexes/{uid}/settings", json=patch)


async def _converge(cluster: Cluster, uid: str, nodes: list[str], handle: DrivenTask) -> dict:
    """Phase 2: read back, re-apply once on divergence. Returns the agreed node settings."""
    readback = await read_node_settings(cluster, uid, nodes)
    hashes = {n: core.settings_hash(s) for n, s in readback.items()}
    reference = _majority(hashes)
    diverging = sorted(n for n, h in hashes.items() if h != reference)
    if not diverging:
        return next(s for n, s in sorted(readback.items()) if hashes[n] == reference)
    good = next(s for n, s in sorted(readback.items()) if hashes[n] == reference)
    log.warning("settings.diverged", index=uid, nodes=diverging, action="re-apply")
    await _apply(cluster, uid, diverging, good, handle)
    again = await read_node_settings(cluster, uid, diverging)
    still = sorted(n for n, s in again.items() if core.settings_hash(s) != reference)
    if still:
        raise MeiliError(
            DIVERGED_CODE,
            "The settings differ across nodes after being re-applied once; diverging node(s): "
            + ", ".join(f"`{n}`" for n in still)
            + ".",
            status=500,
            type="internal",
        )
    return good


async def update_settings(cluster: Cluster, uid: str, s: core.Settings, *, create: bool = True) -> TaskRecord:
    """Enqueue a settings update (already validated). Missing index: created first,
    unless `create` is False (a reset: 1.50 fails it with `index_not_found`)."""
    patch = core.to_patch(s)

    async def driver(handle: DrivenTask) -> None:
        await handle.set_processing()
        if not create and uid not in cluster.state.indexes:
            raise index_not_found(uid)
        await ensure_index(cluster, uid, task_uid=handle.uid)
        nodes = cluster.topology.all_nodes()
        node_patch = core.node_patch(patch)
        if any(v is None for v in node_patch.values()):
            # Resetting a setting the nodes do not have (an older engine) is a no-op
            # for them, and some refuse the unknown field: leave it out.
            known = (await read_node_settings(cluster, uid, nodes[:1]))[nodes[0]]
            node_patch = {k: v for k, v in node_patch.items() if v is not None or k in known}
        await _apply(cluster, uid, nodes, node_patch, handle)
        agreed = await _converge(cluster, uid, nodes, handle)
        meta = cluster.state.indexes.get(uid)
        if meta is None:
            raise index_not_found(uid)
        previous = index_settings(cluster, uid)
        max_values = core.client_max_values(previous["faceting"]["maxValuesPerFacet"], patch)
        await cluster.journal.append(
            IndexSettingsPut(
                uid=uid,
                settings=core.client_view(agreed, max_values, previous, patch),
                version=meta.settings_version + 1,
                updated_at=now(cluster),
            )
        )
        await handle.finish("succeeded")

    return await cluster.tasks.enqueue_driven(index_uid=uid, type="settingsUpdate", details=core.task_details(patch), driver=driver)
