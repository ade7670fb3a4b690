"""`/tasks` routes: Miroir tasks, with Meilisearch's parameters, errors and shapes (§5)."""

from __future__ import annotations

from quart import Blueprint, Response, request

from miroir.api import auth
from miroir.api.context import current_miroir
from miroir.api.http import json_response
from miroir.core.errors import MeiliError, journal_not_replayed
from miroir.core.taskfold import summarized
from miroir.core.taskquery import TaskQuery, parse_task_query
from miroir.engine.cluster import Cluster

bp = Blueprint("tasks", __name__)


def current_cluster() -> Cluster:
    """The cluster of the running daemon; 503 until the journal is replayed."""
    cluster = current_miroir().engine
    if cluster is None:
        raise journal_not_replayed()
    return cluster


def _query(*, paging: bool) -> TaskQuery:
    query = parse_task_query(
        request.args.items(multi=True), paging=paging, query_string=request.query_string.decode("utf-8", "replace")
    )
    return auth.visible_tasks(query, current_cluster())  # a key limited to some indexes sees their tasks


def invalid_task_uid(text: str) -> MeiliError:
    return MeiliError("invalid_task_uids", f"Task uid `{text}` is invalid. It should only contain numeric characters.")


@bp.get("/tasks")
async def list_tasks() -> Response:
    return json_response(current_cluster().tasks.list(_query(paging=True)))


@bp.get("/tasks/<uid>")
async def get_task(uid: str) -> Response:
    if not uid.isascii() or not uid.isdigit() or int(uid) >= 2**32:
        raise invalid_task_uid(uid)
    return json_response(auth.visible_task(current_cluster().tasks.get(int(uid))))


@bp.post("/tasks/cancel")
async def cancel_tasks() -> Response:
    task = await current_cluster().tasks.cancel(_query(paging=False))
    return json_response(summarized(task), status=200)  # 1.50 answers 200 here (a FIXME of its own)


@bp.delete("/tasks")
async def delete_tasks() -> Response:
    task = await current_cluster().tasks.delete(_query(paging=False))
    return json_response(summarized(task), status=200)  # as cancel_tasks
