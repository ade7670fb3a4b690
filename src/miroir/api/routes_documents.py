"""Shard-routed document writes, broadcast deletions and the routed single-document read.

(Document listing `GET /documents` and `POST /documents/fetch` are scatter reads and live
with the read path.)
"""

from __future__ import annotations

from typing import Any

from quart import Blueprint, Response, request

from miroir.api.http import json_response
from miroir.api.routes_indexes import accepted, body_bytes, checked_uid, json_body, unknown_param
from miroir.api.routes_tasks import current_cluster
from miroir.core.errors import MeiliError
from miroir.engine import writes

bp = Blueprint("documents", __name__)

DEGRADED_HEADER = "X-Miroir-Degraded"
_WRITE_PARAMS = ("primaryKey", "csvDelimiter")
_GET_PARAMS = ("fields", "retrieveVectors")


def _answer(result: writes.WriteResult) -> Response:
    return accepted(result.task, {DEGRADED_HEADER: result.degraded} if result.degraded else None)


async def _batch(uid: str) -> tuple[list[dict], bool]:
    """The decoded documents of a write and whether they are flat (see
    `writes.decode_batch_flat`); the raw body is not kept past the decode."""
    body = await body_bytes(cache=False)
    checked_uid(uid)
    for name in request.args:
        if name not in _WRITE_PARAMS:
            raise unknown_param(name, _WRITE_PARAMS)
    return writes.decode_batch_flat(body, request.headers.get("Content-Type"), request.args.get("csvDelimiter"))


async def _write(uid: str, *, partial: bool) -> Response:
    docs, flat = await _batch(uid)
    result = await writes.add_documents(
        current_cluster(), uid, docs, primary_key=request.args.get("primaryKey"), partial=partial, flat=flat
    )
    return _answer(result)


@bp.post("/indexes/<uid>/documents")
async def add_or_replace(uid: str) -> Response:
    return await _write(uid, partial=False)


@bp.put("/indexes/<uid>/documents")
async def add_or_update(uid: str) -> Response:
    return await _write(uid, partial=True)


@bp.delete("/indexes/<uid>/documents")
async def delete_all(uid: str) -> Response:
    return _answer(await writes.delete_all(current_cluster(), checked_uid(uid)))


@bp.post("/indexes/<uid>/documents/delete-batch")
async def delete_batch(uid: str) -> Response:
    ids: Any = await json_body()
    checked_uid(uid)
    if not isinstance(ids, list):
        raise MeiliError("bad_request", "Invalid value type: expected an array of document ids.")
    return _answer(await writes.delete_ids(current_cluster(), uid, ids))


@bp.post("/indexes/<uid>/documents/delete")
async def delete_by_filter(uid: str) -> Response:
    body: Any = await json_body()
    checked_uid(uid)
    if not isinstance(body, dict):
        raise MeiliError("bad_request", "Invalid value type: expected an object.")
    return _answer(await writes.delete_by_filter(current_cluster(), uid, body))


@bp.delete("/indexes/<uid>/documents/<doc_id>")
async def delete_one(uid: str, doc_id: str) -> Response:
    return _answer(await writes.delete_ids(current_cluster(), checked_uid(uid), [doc_id], single=True))


@bp.get("/indexes/<uid>/documents/<doc_id>")
async def get_document(uid: str, doc_id: str) -> Response:
    checked_uid(uid)
    for name in request.args:
        if name not in _GET_PARAMS:
            raise unknown_param(name, _GET_PARAMS)
    doc = await writes.get_document(
        current_cluster(), uid, doc_id, request.args.get("fields"), request.args.get("retrieveVectors")
    )
    return json_response(doc)
