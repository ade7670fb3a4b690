"""Scatter reads: search, multi-search, facet search, document listing (design §6, §9).

Each handler decodes the request, calls one function of `engine.reads`, and encodes the
answer with the degradation header the engine returned (if any).
"""

from __future__ import annotations

from typing import Any

from quart import Blueprint, Response, request

from miroir.api import auth, fast
from miroir.api.context import current_miroir
from miroir.api.http import decode_json, json_response
from miroir.api.routes_indexes import body_bytes
from miroir.core.errors import MeiliError
from miroir.core.searchplan import (
    decode_search_request,
    json_content_type_error,
    metadata_wanted,
    parse_search_query_string,
)
from miroir.engine import reads

bp = Blueprint("search", __name__)


def _cluster():
    cluster = current_miroir().engine
    if cluster is None:
        raise MeiliError("miroir_not_ready", "Miroir is starting: the journal is not replayed yet.")
    return cluster


async def _body() -> bytes:
    return await body_bytes()  # decodes Content-Encoding (1.50)


async def _json_body() -> bytes:
    """The body of a JSON-only route, read first (see search_post), then its 415."""
    body = await _body()
    refused = json_content_type_error(request.headers.get("Content-Type"))
    if refused is not None:
        raise refused
    return body


def _metadata() -> bool:
    return metadata_wanted(request.headers.get("Meili-Include-Metadata"))


def _answer(result: tuple[Any, dict[str, str] | None]) -> Response:
    answer, headers = result
    return json_response(answer, headers=headers)


# The search route is answered by api/fast.py in front of Quart; these rules serve its
# trailing-slash form (a search in Meilisearch too) and HEAD, with the same handler.
@bp.get("/indexes/<uid>/search")
async def search_get(uid: str) -> Response:
    req = parse_search_query_string(fast.query_args(request.query_string))
    return _answer(await fast.search(current_miroir(), uid, auth.access(), req, include_metadata=_metadata()))


@bp.post("/indexes/<uid>/search")
async def search_post(uid: str) -> Response:
    # The body is read before anything can fail: an unread body left on a keep-alive
    # connection stalls the client's next request. Body errors come first, as in Meilisearch.
    req = decode_search_request(await _json_body())
    return _answer(await fast.search(current_miroir(), uid, auth.access(), req, include_metadata=_metadata()))


@bp.post("/multi-search")
async def multi_search() -> Response:
    body = auth.multi_search_body(decode_json(await _json_body()))  # every query's index and rule
    return _answer(await reads.multi_search(_cluster(), body, include_metadata=_metadata()))


@bp.post("/indexes/<uid>/facet-search")
async def facet_search(uid: str) -> Response:
    body = await _json_body()
    reads.index_meta(_cluster(), uid)
    return _answer(await reads.facet_search(_cluster(), uid, auth.facet_search_body(uid, decode_json(body))))


@bp.get("/indexes/<uid>/documents")
async def documents_get(uid: str) -> Response:
    query = reads.documents_query_from_params(request.args.to_dict(flat=True))
    return _answer(await reads.list_documents(_cluster(), uid, query))


@bp.post("/indexes/<uid>/documents/fetch")
async def documents_fetch(uid: str) -> Response:
    body = await _body()
    reads.index_meta(_cluster(), uid)
    query = reads.documents_query_from_body(decode_json(body))
    return _answer(await reads.list_documents(_cluster(), uid, query))
