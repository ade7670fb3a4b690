"""`GET /metrics`: Prometheus text exposition (engine/metrics.py), as Meilisearch serves it:
the master key or a key with the `metrics.get` action (api/auth.py ROUTE_ACTIONS).

Also counts every request Quart answers (`after_app_request`: one histogram observe);
the search fast path (api/fast.py) counts its own.
"""

from __future__ import annotations

import time

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry
from quart import Blueprint, Response, g, request

from miroir.api.routes_tasks import current_cluster
from miroir.engine.metrics import ClusterCollector, node_documents
from miroir.instruments import HOT

bp = Blueprint("metrics", __name__)


@bp.after_app_request
async def _count(resp: Response) -> Response:
    started = getattr(g, "started", None)
    if started is not None:
        rule = request.url_rule.rule if request.url_rule is not None else "(unmatched)"
        HOT.request(request.method, rule, resp.status_code, time.perf_counter() - started, getattr(g, "fanout", None))
    return resp


@bp.get("/metrics")
async def metrics() -> Response:
    cluster = current_cluster()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ClusterCollector(cluster, await node_documents(cluster)))
    return Response(generate_latest(registry), status=200, content_type=CONTENT_TYPE_LATEST)
