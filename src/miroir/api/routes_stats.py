"""`/stats` and `/indexes/{uid}/stats`: aggregated so every shard counts once (§6)."""

from __future__ import annotations

from quart import Blueprint, Response, request

from miroir.api import auth
from miroir.api.http import json_response
from miroir.api.routes_indexes import checked_uid
from miroir.api.routes_tasks import current_cluster
from miroir.core import statsview
from miroir.engine import stats

bp = Blueprint("stats", __name__)


@bp.get("/stats")
async def global_stats() -> Response:
    params = statsview.parse_stats_params(request.args.items(multi=True))
    answer, headers = await stats.global_stats(current_cluster())
    return json_response(statsview.global_stats_view(auth.visible_stats(answer), params), headers=headers)


@bp.get("/indexes/<uid>/stats")
async def index_stats(uid: str) -> Response:
    checked_uid(uid)
    params = statsview.parse_stats_params(request.args.items(multi=True))
    answer, headers = await stats.index_stats(current_cluster(), uid)
    return json_response(statsview.index_stats_view(answer, params), headers=headers)
