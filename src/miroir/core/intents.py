"""Write-ahead intents, the pure part: what an intent holds and each owner's request
rebuilt from it (engine/intents.py says when they are journaled and settled). No I/O."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from miroir.core.model import MiroirState, NodeRequest, TaskRecord, WriteIntent


def make_intent(
    task: TaskRecord,
    requests: Mapping[str, NodeRequest],
    owners: Mapping[str, Sequence[int]],
    items: Sequence[tuple[int, Any]] | None,
    primary_key: str | None = None,
) -> WriteIntent:
    """The intent of a write whose owners get `requests` (node -> its request).

    `items`: the batch as (shard, item) pairs when each owner's body is the items of
    its shards (documents, ids to delete); None when every owner gets the same request.
    """
    first = requests[min(requests)]
    template = msgspec.structs.replace(first, body=None) if items is not None else first
    return WriteIntent(
        task=task,
        request=template,
        owners={n: sorted(set(owners.get(n, ()))) for n in sorted(requests)},
        items=list(items) if items is not None else None,
        primary_key=primary_key,
    )


def node_request(intent: WriteIntent, node: str) -> NodeRequest:
    """The request `node` got (or was to get) for this write."""
    if intent.items is None:
        return intent.request
    held = set(intent.owners.get(node, ()))
    return msgspec.structs.replace(intent.request, body=[item for shard, item in intent.items if shard in held])


def superseded(state: MiroirState, intent: WriteIntent) -> bool:
    """A later task of the intent's index exists: the index moved on without settling
    it (never expected: a write settles its intent before releasing the index lock).
    Replaying it then could overwrite newer writes, so it must not be."""
    uid, index = intent.task.uid, intent.task.index_uid
    return any(u > uid and t.index_uid == index and t.type in WRITE_TYPES for u, t in state.tasks.items())


# The task types of the document writes that journal intents (engine/writes.py).
WRITE_TYPES = ("documentAdditionOrUpdate", "documentDeletion")
