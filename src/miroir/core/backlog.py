"""Hinted handoff, the pure part: where a node's part of a write goes, how big a hint
is, and whether a node that came back has lost its copy (design §4.5, §7). No I/O.

A write's part for one node is either *sent* now, *hinted* (kept in the node's backlog
in the journal and replayed in order once the node is back), or *skipped* (the node is
being refilled for that index: the refill's final reconciliation brings every write).

Order is the invariant: once a node has a backlog, every later part for it goes to the
backlog too, until the backlog is drained, so the node sees its operations in the order
Miroir accepted them. Under a sustained write rate the backlog is never empty by itself:
the handoff service (engine/handoff.py) sends its short tail while holding the write
locks of the tail's indexes, journals it replayed and clears `held` before releasing
them, so the next write sees an empty backlog, is sent, and lands on the node after the
tail (the node answers reads only once it has applied the tail).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal

import msgspec

from miroir.core.model import Hint, NodeRepair, NodeRequest
from miroir.core.settings import SHARD_FIELD

Delivery = Literal["send", "hint", "skip"]

# A shard whose copy on a node that came back holds less than this fraction of a healthy
# peer's documents counts as lost (the node is refilled rather than replayed). Replay can
# only add what the backlog holds; a node far behind is cheaper to copy anyway.
LOST_FRACTION = 0.5

_encoder = msgspec.json.Encoder()


def delivery(repair: NodeRepair | None, index: str, *, available: bool, held: bool, copying: bool) -> Delivery:
    """Where a write's part for a node goes.

    `available`: the health table lets traffic through; `held`: the node came back and
    is not verified yet, or its backlog is not handed over yet (writes wait in its
    backlog); `copying`: a refill of `index`
    on the node has created the index and its settings, so the node takes dual writes
    (the refill's reconciliation fixes any write that raced a copied page).
    """
    if repair is not None and repair.refill:
        if index not in repair.refilled:
            return "send" if available and copying else "skip"
        held = False  # a refilling node is verified: it is lost, and being rebuilt
    if repair is not None and repair.hints:
        return "hint"  # keep the order: behind what is already waiting
    return "send" if available and not held else "hint"


def request_size(req: NodeRequest) -> int:
    """Bytes a hint weighs against `health.max_backlog_bytes` (its JSON encoding)."""
    return len(_encoder.encode(req))


def needs_repair(repair: NodeRepair | None) -> bool:
    return repair is not None and (bool(repair.hints) or repair.refill)


def shard_lost(node_count: int, peer_count: int, pending: int = 0) -> bool:
    """A node's copy of a shard is lost when a healthy peer holds far more of it than
    the node will once its backlog (`pending` documents added) is replayed."""
    return peer_count > 0 and node_count + pending < peer_count * LOST_FRACTION


def lost_shards(
    node_counts: Mapping[int, int], peer_counts: Mapping[int, int], pending: Mapping[int, int] | None = None
) -> list[int]:
    """Shards (of one index) whose copy on the node is lost; peers unknown are skipped."""
    pending = pending or {}
    return sorted(
        s for s, peer in peer_counts.items() if shard_lost(node_counts.get(s, 0), peer, pending.get(s, 0))
    )


def pending_additions(hints: Iterable[Hint], index: str) -> dict[int, int]:
    """Shard -> documents the backlog adds or updates in `index` (an upper bound)."""
    out: dict[int, int] = {}
    for h in hints:
        req = h.request
        if req.index != index or req.method not in ("POST", "PUT") or not req.path.endswith("/documents"):
            continue
        for doc in req.body or ():
            if isinstance(doc, dict) and isinstance(doc.get(SHARD_FIELD), int):
                out[doc[SHARD_FIELD]] = out.get(doc[SHARD_FIELD], 0) + 1
    return out
