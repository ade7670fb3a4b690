"""Local routes answered by Miroir itself: health, version, readiness."""

from __future__ import annotations

from quart import Blueprint, Response

from miroir import __version__
from miroir.api.context import current_miroir
from miroir.api.http import json_response
from miroir.core.errors import MeiliError

bp = Blueprint("system", __name__)

# The Meilisearch API version Miroir speaks. SDKs read `pkgVersion` to pick features,
# so it names the API we are compatible with, not Miroir's own version (in commitSha).
MEILISEARCH_API_VERSION = "1.12.0"
COMMIT_DATE = "2025-01-01T00:00:00Z"


@bp.get("/health")
async def health() -> Response:
    return json_response({"status": "available"})


@bp.get("/version")
async def version() -> Response:
    return json_response(
        {"commitSha": f"miroir-{__version__}", "commitDate": COMMIT_DATE, "pkgVersion": MEILISEARCH_API_VERSION}
    )


@bp.get("/_miroir/ready")
async def ready() -> Response:
    if not current_miroir().ready:
        raise MeiliError("miroir_not_ready", "Miroir is starting: the journal is not replayed yet.")
    return json_response({"status": "ready"})
