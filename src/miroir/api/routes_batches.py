"""`/batches` (Meilisearch 1.50): one batch per Miroir task, numbered as the task
(README, compatibility notes); listed and filtered with the `/tasks` query language."""

from __future__ import annotations

from quart import Blueprint, Response, request

from miroir.api import auth
from miroir.api.http import json_response
from miroir.api.routes_tasks import current_cluster
from miroir.core import batchview
from miroir.core.errors import MeiliError
from miroir.core.taskfold import task_view
from miroir.core.taskquery import parse_task_query

bp = Blueprint("batches", __name__)


def _batched_views() -> list[dict]:
    """The views of every task that has left `enqueued` (each is its own batch)."""
    return [task_view(t) for t in current_cluster().state.tasks.values() if t.status != "enqueued"]


@bp.get("/batches")
async def list_batches() -> Response:
    query = parse_task_query(request.args.items(multi=True), query_string=request.query_string.decode("utf-8", "replace"))
    query = auth.visible_tasks(query, current_cluster())  # a key limited to some indexes sees their batches
    return json_response(batchview.list_batches(query, _batched_views()))


@bp.get("/batches/<uid>")
async def get_batch(uid: str) -> Response:
    if not uid.isascii() or not uid.isdigit() or int(uid) >= 2**32:
        raise batchview.invalid_batch_uid(uid)
    cluster = current_cluster()
    record = cluster.state.tasks.get(int(uid))
    if record is None or record.status == "enqueued":
        raise batchview.batch_not_found(int(uid))
    view = task_view(record)
    try:
        auth.visible_task(view)
    except MeiliError:  # a task the key may not see: its batch does not exist for it either
        raise batchview.batch_not_found(int(uid)) from None
    return json_response(batchview.batch_view(int(uid), [view]))
