"""`/dynamic-search-rules` (1.50, the `dynamicSearchRules` experimental feature).

`POST /dynamic-search-rules` lists, `GET /{uid}` reads, `PATCH /{uid}` creates or
updates (202, `dsrUpdate`), `DELETE /{uid}` (202, `dsrUpdate`) and `DELETE` on the root
(202, `dsrClear`) delete. Every route is refused with 1.50's `feature_not_enabled` unless
the feature is on (Miroir's journaled view of `/experimental-features`). Rules live in
Miroir's journal (engine/dsr.py); their effect on search (pins) is not applied yet.
"""

from __future__ import annotations

from quart import Blueprint, Response, request

from miroir.api.http import json_body, json_response
from miroir.api.routes_indexes import accepted, checked_uid, unknown_param
from miroir.api.routes_tasks import current_cluster
from miroir.core import dsr as core
from miroir.engine import dsr
from miroir.engine.cluster import Cluster

bp = Blueprint("dsr", __name__)
_WRITE_PARAMS = ("customMetadata",)
_WRITE_ACTION = "Using the `/dynamic-search-rules` routes"


def _enabled(action: str) -> Cluster:
    cluster = current_cluster()
    if not cluster.state.experimental_features.get("dynamicSearchRules", False):
        raise core.feature_not_enabled(action)
    return cluster


def _custom_metadata() -> str | None:
    for name in request.args:
        if name not in _WRITE_PARAMS:
            raise unknown_param(name, _WRITE_PARAMS)
    return request.args.get("customMetadata")


@bp.post("/dynamic-search-rules")
async def list_rules() -> Response:
    body = await json_body()
    cluster = _enabled("Calling the `POST /dynamic-search-rules` route")
    offset, limit, query, active = core.validate_list(body)
    return json_response(core.list_rules(cluster.state.dynamic_search_rules, offset, limit, query, active))


@bp.delete("/dynamic-search-rules")
async def clear_rules() -> Response:
    cluster = _enabled(_WRITE_ACTION)
    return accepted(await dsr.clear_rules(cluster, _custom_metadata()))


@bp.get("/dynamic-search-rules/<uid>")
async def get_rule(uid: str) -> Response:
    cluster = _enabled("Calling the `GET /dynamic-search-rules/{:ruleUid}` route")
    rule = cluster.state.dynamic_search_rules.get(checked_uid(uid))
    if rule is None:
        raise core.rule_not_found(uid)
    return json_response(rule)


@bp.patch("/dynamic-search-rules/<uid>")
async def update_rule(uid: str) -> Response:
    body = await json_body()
    cluster = _enabled(_WRITE_ACTION)
    meta = _custom_metadata()
    update = core.validate_update(body)
    return accepted(await dsr.update_rule(cluster, checked_uid(uid), update, meta))


@bp.delete("/dynamic-search-rules/<uid>")
async def delete_rule(uid: str) -> Response:
    cluster = _enabled(_WRITE_ACTION)
    meta = _custom_metadata()
    return accepted(await dsr.delete_rule(cluster, checked_uid(uid), meta))
