"""`/indexes/{uid}/similar` (GET and POST): the documents nearest one document's embedding,
across every shard (engine.reads.similar)."""

from __future__ import annotations

from quart import Blueprint, Response, request

from miroir.api import auth
from miroir.api.context import current_miroir
from miroir.api.http import decode_json, json_response
from miroir.core.errors import MeiliError
from miroir.core.keys import fuse_filters
from miroir.core.searchplan import json_content_type_error
from miroir.core.similar import similar_body_from_query, validate_similar_body
from miroir.engine import reads

bp = Blueprint("similar", __name__)


def _cluster():
    cluster = current_miroir().engine
    if cluster is None:
        raise MeiliError("miroir_not_ready", "Miroir is starting: the journal is not replayed yet.")
    return cluster


def _answer(result: tuple[dict, dict[str, str]]) -> Response:
    answer, headers = result
    return json_response(answer, headers=headers)


@bp.get("/indexes/<uid>/similar")
async def similar_get(uid: str) -> Response:
    body = similar_body_from_query(list(request.args.items(multi=True)))
    body["filter"] = fuse_filters(body.get("filter"), auth.access().rule_filter(uid))  # a tenant token's rule
    return _answer(await reads.similar(_cluster(), uid, body))


@bp.post("/indexes/<uid>/similar")
async def similar_post(uid: str) -> Response:
    raw = await request.get_data(cache=True, as_text=False, parse_form_data=False)
    refused = json_content_type_error(request.headers.get("Content-Type"))
    if refused is not None:
        raise refused
    body = validate_similar_body(decode_json(raw))
    body["filter"] = fuse_filters(body.get("filter"), auth.access().rule_filter(uid))
    return _answer(await reads.similar(_cluster(), uid, body))
