"""Scatter reads: search, multi-search, facet search, document listing (design §6, §9).

Each handler decodes the request, calls one function of `engine.reads`, and encodes the
answer with the degradation header the engine returned (if any).
"""

from __future__ import annotations

from quart import Blueprint, Response, request

from miroir.api import auth, fast
from miroir.api.context import current_miroir
from miroir.api.http import decode_json, json_body, json_bytes, read_response
from miroir.api.routes_tasks import current_cluster
from miroir.core.searchplan import decode_search_request, metadata_wanted, parse_search_query_string
from miroir.engine import reads

bp = Blueprint("search", __name__)


def _metadata() -> bool:
    return metadata_wanted(request.headers.get("Meili-Include-Metadata"))


# The search route is answered by api/fast.py in front of Quart; these rules serve its
# trailing-slash form (a search in Meilisearch too) and HEAD, with the same handler.
@bp.get("/indexes/<uid>/search")
async def search_get(uid: str) -> Response:
    req = parse_search_query_string(fast.query_args(request.query_string))
    return read_response(await fast.search(current_miroir(), uid, auth.access(), req, include_metadata=_metadata()))


@bp.post("/indexes/<uid>/search")
async def search_post(uid: str) -> Response:
    # The body is read before anything can fail: an unread body left on a keep-alive
    # connection stalls the client's next request. Body errors come first, as in Meilisearch.
    req = decode_search_request(await json_bytes())
    return read_response(await fast.search(current_miroir(), uid, auth.access(), req, include_metadata=_metadata()))


@bp.post("/multi-search")
async def multi_search() -> Response:
    body = auth.multi_search_body(await json_body())  # every query's index and rule
    return read_response(await reads.multi_search(current_cluster(), body, include_metadata=_metadata()))


@bp.post("/indexes/<uid>/facet-search")
async def facet_search(uid: str) -> Response:
    body = await json_bytes()
    reads.index_meta(current_cluster(), uid)
    return read_response(await reads.facet_search(current_cluster(), uid, auth.facet_search_body(uid, decode_json(body))))


@bp.get("/indexes/<uid>/documents")
async def documents_get(uid: str) -> Response:
    query = reads.documents_query_from_params(request.args.to_dict(flat=True))
    return read_response(await reads.list_documents(current_cluster(), uid, query))


@bp.post("/indexes/<uid>/documents/fetch")
async def documents_fetch(uid: str) -> Response:
    body = await json_bytes()  # 1.50's 415s, as every JSON body route
    reads.index_meta(current_cluster(), uid)
    query = reads.documents_query_from_body(decode_json(body))
    return read_response(await reads.list_documents(current_cluster(), uid, query))
