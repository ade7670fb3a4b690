"""`/_miroir/*` admin routes (admin key, see api/auth.py): the cluster's shape."""

from __future__ import annotations

from quart import Blueprint, Response

from miroir.api.http import json_response
from miroir.api.routes_tasks import current_cluster

bp = Blueprint("admin", __name__)


@bp.get("/_miroir/topology")
async def topology() -> Response:
    """Nodes with their states, and per index and group the owners of every shard."""
    cluster = current_cluster()
    topo = cluster.topology
    indexes = {
        uid: {"shards": meta.shards, "primaryKey": meta.primary_key, "owners": topo.shard_map(meta.shards)}
        for uid, meta in sorted(cluster.state.indexes.items())
    }
    return json_response(
        {
            "replicationFactor": topo.rf,
            "defaultShards": cluster.config.cluster.shards,
            "groups": topo.groups,
            "nodes": [{"id": n.id, "url": n.url, "group": n.group, "state": n.state} for n in topo.nodes.values()],
            "indexes": indexes,
        }
    )
