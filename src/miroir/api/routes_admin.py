"""`/_miroir/*` admin routes (admin key, see api/auth.py): the cluster's shape, nodes
joining and leaving, and the rebalance that follows (engine/rebalancer.py).

| route | what |
|---|---|
| `GET /_miroir/topology` | nodes, states, health, repair backlog; per index and group the owners of every shard |
| `POST /_miroir/nodes` `{id, url, group, weight}` | a node joins; a rebalance is planned (202) |
| `POST /_miroir/nodes/{id}/drain` | its shards move away (202) |
| `DELETE /_miroir/nodes/{id}[?force=true]` | once drained; `force` for a dead node |
| `PATCH /_miroir/nodes/{id}` `{url}` | the node moved: its new address (engine/nodeurl.py) |
| `GET /_miroir/rebalance` | plan, per-unit progress, documents copied, rate, ETA; nodes with the shards they hold |
| `POST /_miroir/rebalance/pause`, `/resume` | hold / continue the moves |
| `POST /_miroir/indexes/{uid}/reshard` `{shards}` | split the index to `shards` (a multiple of S) on placement 2 (202, an `indexReshard` task) |
"""

from __future__ import annotations

import msgspec
import structlog
from quart import Blueprint, Response, request

from miroir.api.http import body_bytes, decode_json, json_response
from miroir.api.routes_tasks import current_cluster
from miroir.engine import nodeurl, rebalancer as rebalance
from miroir.engine.capacity import capacity_report
from miroir.engine.reshard import start_reshard

log = structlog.get_logger("miroir.admin")

bp = Blueprint("admin", __name__)


class NodeBody(msgspec.Struct, forbid_unknown_fields=True):
    id: str
    url: str
    group: str | None = None
    weight: float | None = None


@bp.get("/_miroir/topology")
async def topology() -> Response:
    """Nodes with their states, and per index and group the owners of every shard."""
    cluster = current_cluster()
    topo = cluster.topology
    indexes = {
        uid: {
            "shards": meta.shards, "placement": meta.placement, "primaryKey": meta.primary_key,
            "owners": topo.shard_map(meta.layout),
        }
        for uid, meta in sorted(cluster.state.indexes.items())
    }
    health = cluster.health.snapshot()
    readable = cluster.healthy_nodes()
    return json_response(
        {
            "replicationFactor": topo.rf,
            "defaultShards": cluster.config.cluster.shards,
            "groups": topo.groups,
            "nodes": [
                {
                    "id": n.id,
                    "url": n.url,
                    "group": n.group,
                    "state": n.state,
                    "weight": n.weight,
                    "health": health.get(n.id),
                    # hinted handoff / refill (engine/handoff.py): backlog sizes, refill state
                    "repair": cluster.handoff.view(n.id),
                    "readable": n.id in readable,
                }
                for n in topo.nodes.values()
            ],
            "indexes": indexes,
            # Per node: weight, shards, documents, share vs target; usable capacity (issue 17).
            "capacity": await capacity_report(cluster),
        }
    )


@bp.post("/_miroir/nodes")
async def add_node() -> Response:
    body = decode_json(await body_bytes(), NodeBody, code="bad_request")
    out = await rebalance.add_node(current_cluster(), body.id, body.url, body.group, body.weight)
    return json_response(out, status=202)


@bp.post("/_miroir/nodes/<node_id>/drain")
async def drain_node(node_id: str) -> Response:
    return json_response(await rebalance.drain_node(current_cluster(), node_id), status=202)


@bp.delete("/_miroir/nodes/<node_id>")
async def remove_node(node_id: str) -> Response:
    force = request.args.get("force", "false").lower() in ("true", "1", "yes")
    return json_response(await rebalance.remove_node(current_cluster(), node_id, force), status=202)


class NodeUrlBody(msgspec.Struct, forbid_unknown_fields=True):
    url: str


@bp.patch("/_miroir/nodes/<node_id>")
async def set_node_url(node_id: str) -> Response:
    body = decode_json(await body_bytes(), NodeUrlBody, code="bad_request")
    return json_response(await nodeurl.set_url(current_cluster(), node_id, body.url))


@bp.get("/_miroir/rebalance")
async def rebalance_status() -> Response:
    cluster = current_cluster()
    out = rebalance.rebalancer_of(cluster).status()
    out["nodes"] = [rebalance.node_view(cluster, n) for n in cluster.topology.nodes.values()]
    return json_response(out)


@bp.post("/_miroir/rebalance/pause")
async def pause() -> Response:
    return json_response(await rebalance.set_paused(current_cluster(), True), status=202)


@bp.post("/_miroir/rebalance/resume")
async def resume() -> Response:
    return json_response(await rebalance.set_paused(current_cluster(), False), status=202)


class ReshardBody(msgspec.Struct, forbid_unknown_fields=True):
    shards: int


@bp.post("/_miroir/indexes/<uid>/reshard")
async def reshard(uid: str) -> Response:
    """Split `uid` to `shards` shards in place, then balance it (engine/reshard.py)."""
    body = decode_json(await body_bytes(), ReshardBody, code="bad_request")
    return json_response(await start_reshard(current_cluster(), uid, body.shards), status=202)
