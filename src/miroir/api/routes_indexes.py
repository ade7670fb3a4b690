"""`/indexes` and `/swap-indexes`: index lifecycle, broadcast as driven tasks (§9)."""

from __future__ import annotations

from typing import Any

from quart import Blueprint, Response, request

from miroir.api import auth
from miroir.api.http import body_bytes, json_body, json_response
from miroir.api.routes_tasks import current_cluster
from miroir.core.errors import MeiliError, invalid_index_uid, query_uint, type_error, unknown_param, valid_index_uid
from miroir.core.model import TaskRecord
from miroir.core.swaps import swap_renames
from miroir.core.taskfold import summarized
from miroir.engine import compaction, fieldlisting, indexes

bp = Blueprint("indexes", __name__)

def unknown_field(key: str, known: tuple[str, ...]) -> MeiliError:
    listed = ", ".join(f"`{k}`" for k in known)
    return MeiliError("bad_request", f"Unknown field `{key}`: expected one of {listed}")


def _object(body: Any, known: tuple[str, ...]) -> dict:
    if not isinstance(body, dict):
        raise MeiliError("bad_request", "Invalid value type: expected an object, but found " + _kind(body) + ".")
    for key in body:
        if key not in known:
            raise unknown_field(key, known)
    return body


def _kind(value: Any) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", int: "a positive integer"}.get(type(value), "null" if value is None else "a value")


def _primary_key(body: dict) -> str | None:
    pk = body.get("primaryKey")
    if pk is not None and not isinstance(pk, str):
        raise type_error("invalid_index_primary_key", ".primaryKey", pk, "a string")
    return pk


def checked_uid(uid: str) -> str:
    if not valid_index_uid(uid):
        raise invalid_index_uid(uid)
    return uid


def accepted(task: TaskRecord, headers: dict[str, str] | None = None) -> Response:
    return json_response(summarized(task), status=202, headers=headers)


@bp.get("/indexes")
async def list_indexes() -> Response:
    offset, limit = 0, 20
    for name, value in request.args.items(multi=True):
        if name == "offset":
            offset = query_uint("invalid_index_offset", name, value)
        elif name == "limit":
            limit = query_uint("invalid_index_limit", name, value)
        else:
            raise unknown_param(name, ("offset", "limit"))
    return json_response(auth.visible_page(lambda o, n: indexes.list_indexes(current_cluster(), o, n), offset, limit))


@bp.post("/indexes")
async def create_index() -> Response:
    body = _object(await json_body(), ("uid", "primaryKey"))
    if "uid" not in body:
        raise MeiliError("missing_index_uid", "Missing field `uid`")
    uid = body["uid"]
    if not isinstance(uid, str):
        raise type_error("invalid_index_uid", ".uid", uid, "a string")
    if not valid_index_uid(uid):
        raise invalid_index_uid(uid, ".uid")
    auth.check_indexes([uid])  # a key limited to some indexes creates only those
    return accepted(await indexes.create_index(current_cluster(), uid, _primary_key(body)))


@bp.get("/indexes/<uid>")
async def get_index(uid: str) -> Response:
    return json_response(indexes.index_view(indexes.get_index(current_cluster(), checked_uid(uid))))


@bp.patch("/indexes/<uid>")
async def update_index(uid: str) -> Response:
    raw = await json_body()
    checked_uid(uid)
    if isinstance(raw, dict):
        for key in ("createdAt", "updatedAt"):
            if key in raw:
                raise MeiliError(
                    "immutable_index_created_at" if key == "createdAt" else "immutable_index_updated_at",
                    f"Immutable field `{key}`: expected one of `primaryKey`, `uid`",
                )
    body = _object(raw, ("primaryKey", "uid"))
    primary_key = _primary_key(body)
    new_uid = body.get("uid")
    if new_uid is not None:
        if not isinstance(new_uid, str):
            raise type_error("invalid_index_uid", ".uid", new_uid, "a string")
        checked_uid(new_uid)  # 1.50 renames: the new name is checked now
        auth.check_indexes([new_uid])  # a key limited to some indexes renames only into them
    return accepted(await indexes.update_index(current_cluster(), uid, primary_key, new_uid))


@bp.delete("/indexes/<uid>")
async def delete_index(uid: str) -> Response:
    return accepted(await indexes.delete_index(current_cluster(), checked_uid(uid)))


@bp.post("/swap-indexes")
async def swap_indexes() -> Response:
    body = await json_body()
    pairs = indexes.validate_swaps(body)
    renames = swap_renames(body)
    auth.check_indexes([uid for pair in pairs for uid in pair])  # both indexes of every swap
    return accepted(await indexes.swap_indexes(current_cluster(), pairs, renames))


@bp.post("/indexes/<uid>/fields")
async def list_fields(uid: str) -> Response:
    body = await json_body()
    checked_uid(uid)
    answer, headers = await fieldlisting.list_fields(current_cluster(), uid, body)
    return json_response(answer, headers=headers)


@bp.post("/indexes/<uid>/compact")
async def compact_index(uid: str) -> Response:
    await body_bytes()  # no body; read so the connection stays usable
    return accepted(await compaction.compact_index(current_cluster(), checked_uid(uid)))
