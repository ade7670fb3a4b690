"""`/keys`: API keys, owned by Miroir and journaled (engine/keys.py); never forwarded."""

from __future__ import annotations

from quart import Blueprint, Response, current_app, request

from miroir.api.context import current_miroir
from miroir.api.http import json_body, json_response
from miroir.api.routes_indexes import query_uint, unknown_param
from miroir.core.errors import journal_not_replayed
from miroir.core.keys import key_view
from miroir.engine import keys

bp = Blueprint("keys", __name__)

DEFAULT_LIMIT = 20


def _journal():
    journal = current_miroir().journal
    if journal is None:
        raise journal_not_replayed()
    return journal


def _ring() -> keys.KeyRing:
    return current_app.config["MIROIR_KEYRING"]


@bp.get("/keys")
async def list_keys() -> Response:
    offset, limit = 0, DEFAULT_LIMIT
    for name, value in request.args.items(multi=True):
        if name == "offset":
            offset = query_uint("invalid_api_key_offset", name, value)
        elif name == "limit":
            limit = query_uint("invalid_api_key_limit", name, value)
        else:
            raise unknown_param(name, ("offset", "limit"))
    return json_response(keys.list_keys(_journal().state, _ring().master_key, offset, limit))


@bp.post("/keys")
async def create_key() -> Response:
    body = await json_body()
    return json_response(await keys.create(_journal(), body, _ring().master_key), status=201)


@bp.get("/keys/<ref>")
async def get_key(ref: str) -> Response:
    ring = _ring()
    return json_response(key_view(keys.resolve(_journal().state, ring, ref), ring.master_key))


@bp.patch("/keys/<ref>")
async def patch_key(ref: str) -> Response:
    body = await json_body()
    return json_response(await keys.patch(_journal(), _ring(), ref, body))


@bp.delete("/keys/<ref>")
async def delete_key(ref: str) -> Response:
    await keys.delete(_journal(), _ring(), ref)
    return Response(b"", status=204)
