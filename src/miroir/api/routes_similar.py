"""`/indexes/{uid}/similar` (GET and POST): the documents nearest one document's embedding,
across every shard (engine.reads.similar)."""

from __future__ import annotations

from quart import Blueprint, Response, request

from miroir.api import auth
from miroir.api.http import json_body, read_response
from miroir.api.routes_tasks import current_cluster
from miroir.core.keys import fuse_filters
from miroir.core.similar import similar_body_from_query, validate_similar_body
from miroir.engine import reads

bp = Blueprint("similar", __name__)


@bp.get("/indexes/<uid>/similar")
async def similar_get(uid: str) -> Response:
    body = similar_body_from_query(list(request.args.items(multi=True)))
    body["filter"] = fuse_filters(body.get("filter"), auth.access().rule_filter(uid))  # a tenant token's rule
    return read_response(await reads.similar(current_cluster(), uid, body))


@bp.post("/indexes/<uid>/similar")
async def similar_post(uid: str) -> Response:
    body = validate_similar_body(await json_body())
    body["filter"] = fuse_filters(body.get("filter"), auth.access().rule_filter(uid))
    return read_response(await reads.similar(current_cluster(), uid, body))
