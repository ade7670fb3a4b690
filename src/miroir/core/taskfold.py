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

Lost node tasks (a node that lost its disk, or left the cluster, no longer knows its
task: the reconciler gives it a `lost_view`) are judged by the write's quorum rule
(core/batches.py `assess`, the rule the write was acknowledged by), when the task knows
which shards each node task covered (`node_shards`, journaled by the write path). Once
every other node task is terminal, if the node tasks that succeeded still make the
write's quorum (every shard with a group at quorum), the lost ones are left out of the
fold: the data is durable on a quorum, and a lost copy is refilled from it. Otherwise
(or without `node_shards`: old journals, index and settings tasks) a lost node task
counts as failed. A node task that ran and failed is always a failure, quorum or not.
For deletions, a group's count is divided by the copies of the write's shards its
surviving node tasks hold (exact when that is the same for every shard, a lower bound
otherwise), not by RF.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from miroir.core import batches
from miroir.core.errors import MeiliError
from miroir.core.reserved import hide_shard_field_in
from miroir.core.taskquery import format_duration

TERMINAL = frozenset({"succeeded", "failed", "canceled"})

# details keys reserved for Miroir's bookkeeping; never shown to clients.
PRIVATE_PREFIX = "_miroir"
# Marks the view of a node task its node no longer knows (see `lost_view`).
LOST_KEY = f"{PRIVATE_PREFIX}_lost"


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


def lost_view(node_uid: int, message: str) -> dict[str, Any]:
    """The view of a node task its node lost (disk lost, node gone): failed, unless the
    write's quorum holds without it (see the module doc)."""
    return {
        "uid": node_uid,
        "status": "failed",
        "error": MeiliError("miroir_node_unavailable", message).to_dict(),
        LOST_KEY: True,
    }


def _group(group_of: Mapping[str, str], node: str) -> str:
    return group_of.get(node, "?")  # no group known (no topology given): one group, as ever


def write_targets(node_shards: Mapping[str, Sequence[int]], group_of: Mapping[str, str]) -> dict[int, dict[str, list[str]]]:
    """shard -> group -> nodes whose node task covers it: the write's targets (as
    `batches.assess` takes them) restricted to the nodes that took the write."""
    targets: dict[int, dict[str, list[str]]] = {}
    for node in sorted(node_shards):
        group = _group(group_of, node)
        for shard in node_shards[node]:
            targets.setdefault(shard, {}).setdefault(group, []).append(node)
    return targets


def quorum_without_lost(
    views: Mapping[str, Mapping[str, Any]],
    node_shards: Mapping[str, Sequence[int]] | None,
    group_of: Mapping[str, str],
    rf: int,
) -> list[str]:
    """The lost node tasks the fold may leave out: all of them when every other node task
    is terminal and the succeeded ones make the write's quorum; else none."""
    lost = sorted(n for n, view in views.items() if view.get(LOST_KEY))
    if not lost or node_shards is None:
        return []
    rest = [view.get("status", "enqueued") for n, view in views.items() if n not in lost]
    if any(status not in TERMINAL for status in rest):
        return []
    succeeded = {n for n, view in views.items() if n not in lost and view.get("status") == "succeeded"}
    targets = write_targets({n: node_shards.get(n, ()) for n in views}, group_of)
    shards = {s for n in views for s in node_shards.get(n, ())}
    if not shards or not batches.assess(shards, targets, succeeded, rf).ok:
        return []
    return lost


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
    views: Mapping[str, Mapping[str, Any]],
    group_of: Mapping[str, str],
    rf: int,
    node_shards: Mapping[str, Sequence[int]] | None = None,
) -> int:
    per_group: dict[str, int] = {}
    for node_id, view in views.items():
        n = (view.get("details") or {}).get("deletedDocuments") or 0
        g = _group(group_of, node_id)
        per_group[g] = per_group.get(g, 0) + int(n)
    copies: dict[str, int] = {}  # group -> most node tasks of `views` covering one shard
    if node_shards is not None:
        for shard_groups in write_targets({n: node_shards.get(n, ()) for n in views}, group_of).values():
            for g, nodes in shard_groups.items():
                copies[g] = max(copies.get(g, 0), len(nodes))
    return max((total // max(copies.get(g, rf), 1) for g, total in per_group.items()), default=0)


def fold_details(
    task_type: str,
    base: Mapping[str, Any] | None,
    status: str,
    views: Mapping[str, Mapping[str, Any]],
    group_of: Mapping[str, str],
    rf: int,
    node_shards: Mapping[str, Sequence[int]] | None = None,
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
            n = _deleted_count(views, group_of, rf, node_shards)
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
    node_shards: Mapping[str, Sequence[int]] | None = None,
) -> Fold:
    """Fold node task views (node id -> Meilisearch task JSON) into the Miroir task.

    `node_shards` (writes): node id -> the shards of the write its node task covers;
    with it, lost node tasks are judged by the write's quorum (module doc)."""
    group_of = group_of or {}
    left_out = quorum_without_lost(views, node_shards, group_of, rf)
    if left_out:
        views = {n: view for n, view in views.items() if n not in left_out}
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
        error = hide_shard_field_in(views[first].get("error")) or {
            "message": f"The task failed on node `{first}`.",
            "code": "internal",
            "type": "internal",
            "link": "https://docs.meilisearch.com/errors#internal",
        }
    details = fold_details(task_type, base_details, status, views, group_of, rf, node_shards)
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
    view = {
        "uid": record.uid,
        "batchUid": batch_uid(record),
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
    if getattr(record, "custom_metadata", None) is not None:
        view["customMetadata"] = record.custom_metadata
    return view


def batch_uid(record: Any) -> int | None:
    """Miroir answers one batch per task, numbered as the task: it exists from the
    moment the task leaves `enqueued` (1.50 shows `batchUid: null` until batched)."""
    return None if record.status == "enqueued" else record.uid


def summarized(record: Any) -> dict[str, Any]:
    """The summarized task a write answers with (202)."""
    out = {
        "taskUid": record.uid,
        "indexUid": record.index_uid,
        # 1.50 summarizes the task as registered: always enqueued, even when this answer leaves
        # after the task finished (a fast write raced the reply: the port's 202 answers flaked)
        "status": "enqueued",
        "type": record.type,
        "enqueuedAt": record.enqueued_at,
    }
    if getattr(record, "custom_metadata", None) is not None:
        out["customMetadata"] = record.custom_metadata
    return out
