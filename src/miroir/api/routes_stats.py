"""`/stats` and `/indexes/{uid}/stats`: aggregated so every shard counts once (§6)."""

from __future__ import annotations

from quart import Blueprint, Response

from miroir.api import auth
from miroir.api.http import json_response
from miroir.api.routes_indexes import checked_uid
from miroir.api.routes_tasks import current_cluster
from miroir.engine import stats

bp = Blueprint("stats", __name__)


@bp.get("/stats")
async def global_stats() -> Response:
    answer, headers = await stats.global_stats(current_cluster())
    return json_response(auth.visible_stats(answer), headers=headers)


@bp.get("/indexes/<uid>/stats")
async def index_stats(uid: str) -> Response:
    answer, headers = await stats.index_stats(current_cluster(), checked_uid(uid))
    return json_response(answer, headers=headers)
