"""`/indexes/{uid}/settings` and its sub-routes (§9, broadcast).

Reads answer from the journal (the client view); updates are decoded and validated here
before any node is touched, then broadcast as a driven task. Every answer carries
`X-Miroir-Settings-Version` (the version of the settings the answer reflects; a 202
carries the version the update starts from).
"""

from __future__ import annotations

from quart import Blueprint, Response, request

from miroir.api.http import body_bytes, json_body, json_response
from miroir.api.routes_indexes import accepted, checked_uid
from miroir.api.routes_tasks import current_cluster
from miroir.core import settings as core
from miroir.core.errors import MeiliError
from miroir.engine import settings as engine

bp = Blueprint("settings", __name__)

VERSION_HEADER = "X-Miroir-Settings-Version"


def _version(uid: str) -> dict[str, str]:
    meta = current_cluster().state.indexes.get(uid)
    return {VERSION_HEADER: str(meta.settings_version if meta is not None else 0)}


def _features() -> frozenset[str]:
    """The experimental features enabled on the cluster (`/experimental-features`,
    journaled): they gate the `chat` and `foreignKeys` keys and some embedder fields."""
    return frozenset(name for name, on in current_cluster().state.experimental_features.items() if on)


def _field(route: str) -> str:
    field = core.FIELD_OF_ROUTE.get(route)
    if field is None:
        raise MeiliError("not_found", "Not Found", status=404)
    return field


@bp.get("/indexes/<uid>/settings")
async def get_settings(uid: str) -> Response:
    settings = engine.index_settings(current_cluster(), checked_uid(uid))
    return json_response(core.visible(settings, _features()), headers=_version(uid))


@bp.patch("/indexes/<uid>/settings")
async def update_settings(uid: str) -> Response:
    raw = await json_body()
    checked_uid(uid)
    s = core.decode_settings(raw, _features())
    task = await engine.update_settings(current_cluster(), uid, s)
    return accepted(task, _version(uid))


@bp.delete("/indexes/<uid>/settings")
async def reset_settings(uid: str) -> Response:
    checked_uid(uid)
    task = await engine.update_settings(current_cluster(), uid, core.reset_all(), create=False)
    return accepted(task, _version(uid))


@bp.get("/indexes/<uid>/settings/<route>")
async def get_setting(uid: str, route: str) -> Response:
    field = _field(route)
    settings = engine.index_settings(current_cluster(), checked_uid(uid))
    return json_response(core.visible_field(settings, field), headers=_version(uid))


@bp.route("/indexes/<uid>/settings/<route>", methods=["PUT", "PATCH"])
async def update_setting(uid: str, route: str) -> Response:
    await body_bytes()
    field = _field(route)
    if request.method != core.ROUTES[field][1]:
        raise MeiliError(
            "method_not_allowed", f"Method `{request.method}` is not allowed on `{request.path}`.", status=405
        )
    raw = await json_body()
    checked_uid(uid)
    s = core.decode_sub_route(route, raw, _features())
    task = await engine.update_settings(current_cluster(), uid, s)
    return accepted(task, _version(uid))


@bp.delete("/indexes/<uid>/settings/<route>")
async def reset_setting(uid: str, route: str) -> Response:
    _field(route)
    checked_uid(uid)
    task = await engine.update_settings(current_cluster(), uid, core.reset_field(route), create=False)
    return accepted(task, _version(uid))
