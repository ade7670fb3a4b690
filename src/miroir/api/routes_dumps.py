"""`POST /dumps`: a `dumpCreation` task writing one Meilisearch dump of the whole cluster
(engine/dumps.py). Answered 202 with the summarized task, as Meilisearch; the task's
`details.dumpUid` names the file once it succeeded."""

from __future__ import annotations

from quart import Blueprint, Response

from miroir.api.routes_indexes import accepted
from miroir.api.routes_tasks import current_cluster
from miroir.engine import dumps

bp = Blueprint("dumps", __name__)


@bp.post("/dumps")
async def create_dump() -> Response:
    return accepted(await dumps.create_dump(current_cluster()))
