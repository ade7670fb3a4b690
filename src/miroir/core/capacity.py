"""The capacity report (issue 17 item 4): each node's share of the data against its
weighted target, and the fleet's usable capacity. Pure: the engine gathers the figures.

A group holds a full copy of every index, so shares are taken inside a group: a node's
*target* is its weight over the group's weights; its *share* is its documents over the
group's documents when every node of the group reported them, else the share of shard
copies the placement gives it (documents being spread uniformly over shards). The
busiest node fills first: when it is full the fleet holds `1 / (busiest share / target)`
of its total capacity -- the *usable capacity*.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import msgspec

# A node whose share is over its target by more than this is reported (issue 17: ±10%).
BOUND = 0.10


class NodeLoad(msgspec.Struct, kw_only=True):
    id: str
    group: str
    weight: float
    shards: int  # shard copies it owns, every index
    # Per index it owns shards of: the fraction of that index's copies in its group.
    copy_share: float  # mean over indexes (or of the default layout with no index)
    documents: int | None = None  # from the node's /stats; None if it did not answer
    bytes: int | None = None


def report(nodes: Sequence[NodeLoad], bound: float = BOUND) -> dict[str, object]:
    by_group: dict[str, list[NodeLoad]] = {}
    for n in nodes:
        by_group.setdefault(n.group, []).append(n)
    rows: list[dict[str, object]] = []
    warnings: list[str] = []
    usable: list[float] = []
    for group, members in sorted(by_group.items()):
        weights = sum(n.weight for n in members)
        docs = [n.documents for n in members]
        total_docs = sum(d for d in docs if d is not None)
        by_docs = all(d is not None for d in docs) and total_docs > 0
        busiest = 0.0
        for n in sorted(members, key=lambda m: m.id):
            target = n.weight / weights
            share = (n.documents or 0) / total_docs if by_docs else n.copy_share
            ratio = share / target if target > 0 else 0.0
            busiest = max(busiest, ratio)
            over = ratio > 1 + bound
            if over:
                warnings.append(
                    f"node `{n.id}` holds {share:.1%} of group `{group}` against a target of {target:.1%} "
                    f"({ratio:.2f}x, bound {1 + bound:.2f}x)"
                )
            rows.append(
                {
                    "id": n.id, "group": group, "weight": n.weight, "shards": n.shards, "documents": n.documents,
                    "bytes": n.bytes, "share": round(share, 4), "target": round(target, 4),
                    "ratio": round(ratio, 3), "overBound": over, "basis": "documents" if by_docs else "shards",
                }
            )
        if busiest > 0:
            usable.append(1 / busiest)
    return {
        "nodes": rows,
        "usableCapacity": round(min(usable), 3) if usable else None,
        "bound": bound,
        "warnings": warnings,
    }


def copy_shares(tables: Mapping[str, Sequence[Sequence[str]]]) -> tuple[dict[str, int], dict[str, float]]:
    """From one group's owner tables (index -> per shard its owners): node -> shard copies
    it owns, and node -> mean over indexes of its fraction of the index's copies."""
    copies: dict[str, int] = {}
    share: dict[str, float] = {}
    for table in tables.values():
        total = sum(len(o) for o in table) or 1
        for owners in table:
            for n in owners:
                copies[n] = copies.get(n, 0) + 1
                share[n] = share.get(n, 0.0) + 1 / total / len(tables)
    return copies, share
