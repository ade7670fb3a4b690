"""Shard-routed document writes, broadcast deletions and the routed single-document read.

(Document listing `GET /documents` and `POST /documents/fetch` are scatter reads and live
with the read path.)
"""

from __future__ import annotations

from typing import Any

from quart import Blueprint, Response, request

from miroir.api.http import body_bytes, decode_json, json_body, json_bytes, json_response
from miroir.api.routes_indexes import accepted, checked_uid, unknown_param
from miroir.api.routes_tasks import current_cluster
from miroir.core.documents import ids_not_a_list
from miroir.core.errors import MeiliError, body_type_error
from miroir.engine import writes

bp = Blueprint("documents", __name__)

DEGRADED_HEADER = "X-Miroir-Degraded"
_WRITE_PARAMS = ("primaryKey", "csvDelimiter", "customMetadata", "skipCreation")
_DELETE_PARAMS = ("customMetadata",)
_GET_PARAMS = ("fields", "retrieveVectors", "useNetwork")  # useNetwork: accepted, never forwarded


def _custom_metadata(allowed: tuple[str, ...] = _DELETE_PARAMS) -> str | None:
    """1.50's `customMetadata` (kept on the task), after refusing unknown parameters."""
    for name in request.args:
        if name not in allowed:
            raise unknown_param(name, allowed)
    return request.args.get("customMetadata")


def _skip_creation() -> bool:
    value = request.args.get("skipCreation")
    if value is None or value.lower() == "false":
        return False
    if value.lower() == "true":
        return True
    raise MeiliError("invalid_skip_creation", f"skipCreation must be either `true` or `false`. Found: `{value}`")


def _answer(result: writes.WriteResult) -> Response:
    return accepted(result.task, {DEGRADED_HEADER: result.degraded} if result.degraded else None)


async def _batch(uid: str) -> tuple[list[dict], bool]:
    """The decoded documents of a write and whether they are flat (see
    `writes.decode_batch_flat`); the raw body is not kept past the decode."""
    body = await body_bytes(cache=False)
    checked_uid(uid)
    _custom_metadata(_WRITE_PARAMS)
    _skip_creation()
    return writes.decode_batch_flat(body, request.headers.get("Content-Type"), request.args.get("csvDelimiter"))


async def _write(uid: str, *, partial: bool) -> Response:
    docs, flat = await _batch(uid)
    result = await writes.add_documents(
        current_cluster(), uid, docs, primary_key=request.args.get("primaryKey"), partial=partial, flat=flat,
        custom_metadata=request.args.get("customMetadata"), skip_creation=_skip_creation(),
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
    checked_uid(uid)
    return _answer(await writes.delete_all(current_cluster(), uid, _custom_metadata()))


@bp.post("/indexes/<uid>/documents/delete-batch")
async def delete_batch(uid: str) -> Response:
    raw = await json_bytes()
    ids: Any = decode_json(raw)
    checked_uid(uid)
    meta = _custom_metadata()
    if not isinstance(ids, list):
        raise ids_not_a_list(raw, ids)
    return _answer(await writes.delete_ids(current_cluster(), uid, ids, custom_metadata=meta))


@bp.post("/indexes/<uid>/documents/delete")
async def delete_by_filter(uid: str) -> Response:
    body: Any = await json_body()
    checked_uid(uid)
    meta = _custom_metadata()
    if not isinstance(body, dict):
        raise body_type_error(body)
    return _answer(await writes.delete_by_filter(current_cluster(), uid, body, meta))


@bp.delete("/indexes/<uid>/documents/<doc_id>")
async def delete_one(uid: str, doc_id: str) -> Response:
    checked_uid(uid)
    meta = _custom_metadata()
    return _answer(await writes.delete_ids(current_cluster(), uid, [doc_id], single=True, custom_metadata=meta))


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
