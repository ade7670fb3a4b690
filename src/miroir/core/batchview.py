"""`/batches` (Meilisearch 1.50): batch views built from task views. Pure module.

Shared by the devnode (whose worker processes several tasks in one batch) and Miroir
(one batch per Miroir task, numbered as the task: every task view's `batchUid`). A batch
is the group of task views with one `batchUid`; it is listed, filtered and paginated
with the `/tasks` query language (`core/taskquery.py`), 1.50's `TasksFilterQuery`: a
batch matches when one of its tasks does (`uids` are task uids, `batchUids` batch uids),
and `from`/`limit` count batches, newest first.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable, Mapping
from typing import Any

from miroir.core.errors import MeiliError
from miroir.core.taskquery import TaskQuery, format_duration, matches

# 1.50 names how its scheduler chose a batch; a batch of one Miroir task has no such choice.
BATCH_STRATEGY = "unspecified"


def batch_not_found(uid: int) -> MeiliError:
    return MeiliError("batch_not_found", f"Batch `{uid}` not found.")


def invalid_batch_uid(text: str) -> MeiliError:
    return MeiliError("invalid_batch_uids", f"Batch uid `{text}` is invalid. It should only contain numeric characters.")


def _epoch(text: str | None) -> float:
    return 0.0 if text is None else _dt.datetime.fromisoformat(text).timestamp()


def _details(tasks: list[Mapping[str, Any]]) -> dict[str, Any]:
    """The tasks' details accumulated: counts summed, other values as the last task has them."""
    out: dict[str, Any] = {}
    for t in tasks:
        for key, value in (t.get("details") or {}).items():
            prev = out.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and isinstance(prev, int) and not isinstance(prev, bool):
                out[key] = prev + value
            else:
                out[key] = value
    return out


def batch_view(uid: int, tasks: list[Mapping[str, Any]], strategy: str = BATCH_STRATEGY) -> dict[str, Any]:
    """1.50's `BatchView` of batch `uid` from its task views (oldest first)."""
    status: dict[str, int] = {}
    types: dict[str, int] = {}
    index_uids: dict[str, int] = {}
    for t in tasks:
        status[t["status"]] = status.get(t["status"], 0) + 1
        types[t["type"]] = types.get(t["type"], 0) + 1
        if t.get("indexUid") is not None:
            index_uids[t["indexUid"]] = index_uids.get(t["indexUid"], 0) + 1
    started = [t["startedAt"] for t in tasks if t.get("startedAt")]
    started_at = min(started, key=_epoch) if started else None
    done = all(t.get("finishedAt") for t in tasks)
    finished_at = max((t["finishedAt"] for t in tasks), key=_epoch) if tasks and done else None
    duration = None
    if started_at is not None and finished_at is not None:
        duration = format_duration(max(0.0, (_epoch(finished_at) or 0.0) - (_epoch(started_at) or 0.0)))
    return {
        "uid": uid,
        "progress": None,
        "details": _details(tasks),
        "stats": {
            "totalNbTasks": len(tasks),
            "status": status,
            "types": types,
            "indexUids": index_uids,
            "progressTrace": {},
        },
        "duration": duration,
        "startedAt": started_at,
        "finishedAt": finished_at,
        "batchStrategy": strategy,
    }


def group_batches(task_views: Iterable[Mapping[str, Any]]) -> dict[int, list[Mapping[str, Any]]]:
    """Batch uid -> its task views (oldest first); tasks not batched yet are left out."""
    out: dict[int, list[Mapping[str, Any]]] = {}
    for t in task_views:
        b = t.get("batchUid")
        if b is not None:
            out.setdefault(b, []).append(t)
    for tasks in out.values():
        tasks.sort(key=lambda t: t["uid"])
    return out


def list_batches(query: TaskQuery, task_views: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """`GET /batches`: `{results, total, limit, from, next}`, newest batch first."""
    batches = group_batches(task_views)
    selected = sorted(
        (b for b, tasks in batches.items() if any(matches(query, t) for t in tasks)),
        reverse=not query.reverse,
    )
    total = len(selected)
    if query.from_ is not None:
        selected = [b for b in selected if (b >= query.from_ if query.reverse else b <= query.from_)]
    page = selected[: query.limit]
    return {
        "results": [batch_view(b, batches[b]) for b in page],
        "total": total,
        "limit": query.limit,
        "from": page[0] if page else None,
        "next": selected[query.limit] if len(selected) > query.limit else None,
    }


def get_batch(uid: int, task_views: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    tasks = [t for t in task_views if t.get("batchUid") == uid]
    if not tasks:
        raise batch_not_found(uid)
    tasks.sort(key=lambda t: t["uid"])
    return batch_view(uid, tasks)
