"""Local routes answered by Miroir itself: health, version, readiness."""

from __future__ import annotations

from quart import Blueprint, Response, request

from miroir import __version__
from miroir.api.auth import is_admin
from miroir.api.context import current_miroir
from miroir.api.http import json_response
from miroir.core.errors import MeiliError, journal_not_replayed
from miroir.engine.cluster import cluster_is_ready, cluster_uncovered

bp = Blueprint("system", __name__)

# The Meilisearch API version Miroir speaks. SDKs read `pkgVersion` to pick features,
# so it names the API we are compatible with, not Miroir's own version (in commitSha).
MEILISEARCH_API_VERSION = "1.50.0"
COMMIT_DATE = "2025-01-01T00:00:00Z"


@bp.get("/health")
async def health() -> Response:
    # 200 only once every route is served (journal replayed, engine running), the moment
    # systemd gets READY=1: a load balancer or an orchestrator that sends writes on the
    # first 200 must not get 503 `miroir_not_ready` (issue 15). Meilisearch answers nothing
    # until it can serve; 503 tells the same to a probe while /_miroir/ready says why.
    if not current_miroir().ready:
        return json_response({"status": "unavailable"}, status=503)
    return json_response({"status": "available"})


@bp.get("/version")
async def version() -> Response:
    return json_response(
        {"commitSha": f"miroir-{__version__}", "commitDate": COMMIT_DATE, "pkgVersion": MEILISEARCH_API_VERSION}
    )


@bp.get("/_miroir/ready")
async def ready() -> Response:
    ctx = current_miroir()
    if not ctx.ready:
        raise journal_not_replayed()
    cluster = ctx.engine
    if cluster is not None and not cluster_is_ready(cluster, cluster.health):
        uncovered = cluster_uncovered(cluster, cluster.health)
        if not uncovered:
            raise MeiliError("miroir_not_ready", "Some shards have no reachable owner in any group: no node is reachable.")
        listed = [(uid, "shards " + ", ".join(map(str, shards))) for uid, shards in sorted(uncovered.items())]
        # The route is open (probes carry no key): index uids only for a request holding
        # the admin key (with no key configured, `GET /_miroir/topology` names them).
        keys = ctx.config.auth
        if (keys.admin_key is not None or keys.master_key is not None) and is_admin(keys, request.headers):
            detail = "; ".join(f"`{uid}` {shards}" for uid, shards in listed)
        else:
            n = len(listed)
            detail = f"{n} index{'es' if n > 1 else ''} ({'; '.join(s for _, s in listed)}), named to the admin key"
        raise MeiliError("miroir_not_ready", "Some shards have no reachable owner in any group: " + detail + ".")
    return json_response({"status": "ready"})
