"""`GET /metrics`: Prometheus text exposition (engine/metrics.py), as Meilisearch serves it:
the master key or a key with the `metrics.get` action (api/auth.py ROUTE_ACTIONS).

Requests are counted by the request pipeline's log step (api/pipeline.py), both paths.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry
from quart import Blueprint, Response

from miroir.api.routes_tasks import current_cluster
from miroir.engine.metrics import ClusterCollector, node_documents

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
async def metrics() -> Response:
    cluster = current_cluster()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ClusterCollector(cluster, await node_documents(cluster)))
    return Response(generate_latest(registry), status=200, content_type=CONTENT_TYPE_LATEST)
