"""`POST /snapshots`: a `snapshotCreation` task taking a consistent cluster snapshot
(engine/snapshots.py). Answered 202 with the summarized task, as Meilisearch; the snapshot
is `<snapshots.dir>/<task uid>.snapshot/manifest.json` once the task succeeded."""

from __future__ import annotations

from quart import Blueprint, Response

from miroir.api.routes_indexes import accepted
from miroir.api.routes_tasks import current_cluster
from miroir.engine import snapshots

bp = Blueprint("snapshots", __name__)


@bp.post("/snapshots")
async def create_snapshot() -> Response:
    return accepted(await snapshots.create_snapshot(current_cluster()))
