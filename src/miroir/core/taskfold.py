"""Folding node task views into one Miroir task (design §5). Pure: no I/O, no trio.

A Miroir task maps to one task per node (`{node_id: node_task_uid}`). The reconciler
fetches each node's view of its task (Meilisearch's task JSON) and `fold` computes what
the client sees:

- status: terminal only when every node task is terminal. Then `failed` if any failed
  (error of the first failure in node-id order), else `canceled` if any was canceled,
  else `succeeded`. Before that: `processing` as soon as one node task started or
  finished, `enqueued` while none did. (A failure is not reported early: the other nodes
  are still applying the batch, and a terminal task is never polled again.)
- startedAt = earliest start, finishedAt = latest finish (when terminal).
- details: the client sees the details of ITS request, which the caller gives at
  enqueue (e.g. receivedDocuments = the client's batch size, not × RG × RF). The fold
  fills the counters Meilisearch fills when the task ends:
    * indexedDocuments (documentAdditionOrUpdate/documentEdition): = receivedDocuments
      on success, 0 otherwise (nodes each index only a slice; writes that reached a
      quorum count as indexed);
    * deletedDocuments (documentDeletion, indexDeletion): each document lives on RF
      nodes in every group, so per group sum(node counts) // RF, and the largest group
      total (a group that lagged or lost a node must not hide deletions); capped by
      providedIds for deletions by id. 0 when the task did not succeed.
  Counters are null while the task is not finished, as in Meilisearch.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from typing import Any

import msgspec

from miroir.core.taskquery import format_duration

TERMINAL = frozenset({"succeeded", "failed", "canceled"})

# details keys reserved for Miroir's bookkeeping; never shown to clients.
PRIVATE_PREFIX = "_miroir"


class Fold(msgspec.Struct, kw_only=True):
    status: str
    started_at: str | None = None
    finished_at: str | None = None
    error: dict[str, Any] | None = None
    details: dict[str, Any] | None = None


def parse_ts(text: str | None) -> float | None:
    """RFC 3339 (any fraction length, `Z` or offset) -> epoch seconds."""
    if not text:
        return None
    return _dt.datetime.fromisoformat(text).timestamp()


def _earliest(values: list[str | None]) -> str | None:
    present = [v for v in values if v]
    return min(present, key=lambda v: parse_ts(v) or 0.0) if present else None


def _latest(values: list[str | None]) -> str | None:
    present = [v for v in values if v]
    return max(present, key=lambda v: parse_ts(v) or 0.0) if present else None


def fold_status(statuses: list[str]) -> str:
    """The Miroir status of a task whose node tasks have these statuses."""
    if not statuses:
        return "succeeded"  # nothing to wait for (e.g. an empty broadcast)
    if all(s in TERMINAL for s in statuses):
        if "failed" in statuses:
            return "failed"
        if "canceled" in statuses:
            return "canceled"
        return "succeeded"
    if any(s != "enqueued" for s in statuses):
        return "processing"
    return "enqueued"


def _deleted_count(
    views: Mapping[str, Mapping[str, Any]], group_of: Mapping[str, str], rf: int
) -> int:
    per_group: dict[str, int] = {}
    for node_id, view in views.items():
        n = (view.get("details") or {}).get("deletedDocuments") or 0
        g = group_of.get(node_id, "?")
        per_group[g] = per_group.get(g, 0) + int(n)
    return max((total // max(rf, 1) for total in per_group.values()), default=0)


def fold_details(
    task_type: str,
    base: Mapping[str, Any] | None,
    status: str,
    views: Mapping[str, Mapping[str, Any]],
    group_of: Mapping[str, str],
    rf: int,
) -> dict[str, Any] | None:
    if base is None:
        return None
    details = dict(base)
    finished = status in TERMINAL
    ok = status == "succeeded"
    if "indexedDocuments" in details and task_type in ("documentAdditionOrUpdate", "documentEdition"):
        received = details.get("receivedDocuments") or 0
        details["indexedDocuments"] = (received if ok else 0) if finished else None
    if "deletedDocuments" in details and task_type in ("documentDeletion", "indexDeletion"):
        if not finished:
            details["deletedDocuments"] = None
        elif not ok:
            details["deletedDocuments"] = 0
        else:
            n = _deleted_count(views, group_of, rf)
            provided = details.get("providedIds")
            if isinstance(provided, int) and provided > 0:
                n = min(n, provided)
            details["deletedDocuments"] = n
    return details


def fold(
    task_type: str,
    base_details: Mapping[str, Any] | None,
    views: Mapping[str, Mapping[str, Any]],
    *,
    group_of: Mapping[str, str] | None = None,
    rf: int = 1,
) -> Fold:
    """Fold node task views (node id -> Meilisearch task JSON) into the Miroir task."""
    order = sorted(views)
    statuses = [views[n].get("status", "enqueued") for n in order]
    status = fold_status(statuses)
    started = _earliest([views[n].get("startedAt") for n in order]) if status != "enqueued" else None
    finished = _latest([views[n].get("finishedAt") for n in order]) if status in TERMINAL else None
    if status in TERMINAL and started is None:
        started = finished
    error = None
    if status == "failed":
        first = next(n for n in order if views[n].get("status") == "failed")
        error = views[first].get("error") or {
            "message": f"The task failed on node `{first}`.",
            "code": "internal",
            "type": "internal",
            "link": "https://docs.meilisearch.com/errors#internal",
        }
    details = fold_details(task_type, base_details, status, views, group_of or {}, rf)
    return Fold(status=status, started_at=started, finished_at=finished, error=error, details=details)


def duration(started_at: str | None, finished_at: str | None) -> str | None:
    s, f = parse_ts(started_at), parse_ts(finished_at)
    if s is None or f is None:
        return None
    return format_duration(f - s)


def public_details(details: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if details is None:
        return None
    return {k: v for k, v in details.items() if not k.startswith(PRIVATE_PREFIX)}


def task_view(record: Any) -> dict[str, Any]:
    """Meilisearch's task object for a `TaskRecord` (GET /tasks/{uid})."""
    return {
        "uid": record.uid,
        "batchUid": None,
        "indexUid": record.index_uid,
        "status": record.status,
        "type": record.type,
        "canceledBy": record.canceled_by,
        "details": public_details(record.details),
        "error": record.error,
        "duration": duration(record.started_at, record.finished_at),
        "enqueuedAt": record.enqueued_at,
        "startedAt": record.started_at,
        "finishedAt": record.finished_at,
    }


def summarized(record: Any) -> dict[str, Any]:
    """The summarized task a write answers with (202)."""
    return {
        "taskUid": record.uid,
        "indexUid": record.index_uid,
        "status": record.status,
        "type": record.type,
        "enqueuedAt": record.enqueued_at,
    }
