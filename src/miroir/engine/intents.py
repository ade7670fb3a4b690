"""Write-ahead intents: a write in flight when Miroir dies still ends the same on every
copy (issue 20's follow-up).

A document write (engine/writes.py) journals its intent (`IntentJournaled`: the task it
becomes, with a reserved uid, and what each owner is sent) before any node sees it, and
settles it with its outcome: the write's `TaskEnqueued` (journaled after the hints of the
owners that missed it), or `IntentSettled` when it was refused for certain (nothing
applied). The fan-out and that outcome run shielded from cancellation (a client that
hangs up does not interrupt them), so while Miroir runs an intent is never left open.

Only a Miroir killed between the two leaves an intent open: the client got no answer
(no 202 is ever given before the task is journaled), and some owners may have applied the
write while others have not. At start-up (`settle_interrupted`, run by engine/services.py
once the health table had its first probes, before Miroir is ready) each open intent is
*rolled forward*: the write is sent again to every owner, as recorded, directly when the
owner can take it (a node that had applied it applies the same upserts or deletes again:
no change) and as a hint when it cannot (down, or behind a backlog: the hinted handoff
replays it in order), then its task is journaled with the node tasks of the owners that
took it, and the reconciler folds it as any write's. So the outcome of an interrupted
write is always "it took effect, everywhere": deterministic, whatever each owner got, and
the only outcome that can be reached when one owner applied it and cannot be asked to
undo it. Its task (a uid no client saw) succeeds once the owners applied it, and fails
only as any write's task fails (every owner refused it: nothing applied). A delete by
filter or of every document is re-sent as such: deleting what matches again is a no-op
on an owner that already did it, and no later write of the index ran in between.

An open intent whose index has a later document task (never expected: the index lock is
held from the intent to its outcome) is dropped with a warning rather than replayed over
newer writes.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
import structlog
import trio

from miroir.core.errors import MeiliError
from miroir.core.intents import node_request, superseded
from miroir.core.model import IndexPut, IntentSettled, NodeRequest, TaskEnqueued, WriteIntent
from miroir.engine.cluster import Cluster
from miroir.engine.indexes import index_lock, now
from miroir.engine.writes import deliver
from miroir.net.node import NodeError, NodeUnavailable

log = structlog.get_logger("miroir.intents")

# Deadline of one owner's replay at start-up: a node that does not take it by then gets
# it as a hint (harmless if it did take it).
REPLAY_TIMEOUT_S = 5.0


async def settle_interrupted(cluster: Cluster) -> int:
    """Roll forward every open intent (a Miroir killed mid-write); returns how many.
    Indexes in parallel, each index's intents in uid order."""
    pending = sorted(cluster.state.intents.values(), key=lambda i: i.task.uid)
    if not pending:
        return 0
    by_index: dict[str, list[WriteIntent]] = {}
    for intent in pending:
        by_index.setdefault(intent.request.index, []).append(intent)

    async def one_index(uid: str, intents: Sequence[WriteIntent]) -> None:
        async with index_lock(cluster, uid):
            for intent in intents:
                await roll_forward(cluster, intent)

    async with trio.open_nursery() as nursery:
        for uid, intents in sorted(by_index.items()):
            nursery.start_soon(one_index, uid, intents)
    return len(pending)


async def roll_forward(cluster: Cluster, intent: WriteIntent) -> None:
    """Make the write of `intent` take effect on every owner, then journal its task (see
    the module doc). Caller holds the index lock."""
    task_uid, index = intent.task.uid, intent.request.index
    meta = cluster.state.indexes.get(index)
    if meta is None or superseded(cluster.state, intent):
        log.warning("intent.dropped", task_uid=task_uid, index=index,
                    why="index deleted" if meta is None else "a later write of the index exists")
        await cluster.journal.append(IntentSettled(uid=task_uid))
        return
    acked: dict[str, int] = {}
    missed: dict[str, NodeRequest] = {}
    refused: dict[str, NodeError] = {}

    async def one(node: str) -> None:
        req = node_request(intent, node)
        way = cluster.handoff.delivery(node, index)
        if way == "skip":
            return  # being refilled for this index: the refill's reconciliation brings it
        if way == "hint":
            missed[node] = req  # behind a backlog or down: in order, once it is back
            return
        try:
            body = await deliver(cluster, node, req, timeout_s=REPLAY_TIMEOUT_S)
            acked[node] = int(body["taskUid"])
        except NodeUnavailable:
            missed[node] = req
        except NodeError as exc:
            if exc.status >= 500:
                missed[node] = req
            else:
                refused[node] = exc

    async with trio.open_nursery() as nursery:
        for node in sorted(intent.owners):
            nursery.start_soon(one, node)
    if missed:
        await cluster.handoff.add_hints(missed)
    if intent.primary_key is not None and meta.primary_key is None:
        await cluster.journal.append(
            IndexPut(meta=msgspec.structs.replace(meta, primary_key=intent.primary_key, updated_at=now(cluster)))
        )
    task = msgspec.structs.replace(
        intent.task, node_tasks=acked, node_shards={n: list(intent.owners[n]) for n in acked}
    )
    if refused and not acked and not missed:
        # Every owner refused it itself (as they would have the first time): nothing applied.
        first = refused[min(refused)]
        error = MeiliError(first.code, first.message, status=first.status, type=first.type).to_dict()
        stamp = cluster.tasks.now_rfc3339()
        details = {k: 0 if k in ("indexedDocuments", "deletedDocuments") else v for k, v in (task.details or {}).items()}
        task = msgspec.structs.replace(task, status="failed", error=error, started_at=stamp, finished_at=stamp,
                                       node_shards=None, details=details if task.details is not None else None)
    log.warning(
        "intent.rolled_forward", task_uid=task_uid, index=index, sent=sorted(acked), hinted=sorted(missed),
        refused=sorted(refused),
    )
    await cluster.journal.append(TaskEnqueued(task=task))
    cluster.tasks.wake()
