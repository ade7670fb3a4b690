"""What a damaged or lost journal held, rebuilt from what the nodes hold (issue 20), pure.

The nodes keep every document (with its `_miroir_shard`), every index with its primary key
and settings, and their own task history. They do not keep Miroir's task uids: a Miroir
task becomes node tasks with the nodes' own uids. So the task counter after a recovery
is a bound, not a copy (`task_uid_floor`), and the tasks themselves are gone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import msgspec

from miroir.core.placement import CURRENT_PLACEMENT, Layout, owner_table, table_key
from miroir.core.routing import shard_for_text

# The shard counts tried when the configured one does not fit the documents.
MAX_SHARDS = 4096
# The least the task counter moves past the nodes' bound (see `task_uid_floor`).
MIN_UID_MARGIN = 100_000


class IndexHoldings(msgspec.Struct, kw_only=True):
    """One index as one node holds it."""

    uid: str
    primary_key: str | None
    created_at: str | None = None
    updated_at: str | None = None
    documents: int = 0
    fields: list[str] = msgspec.field(default_factory=list)  # without `_miroir_*`
    settings: dict[str, Any] | None = None  # the node's full settings
    # (primary key value as hashed, `_miroir_shard`) of some of its documents.
    samples: list[tuple[str, int]] = msgspec.field(default_factory=list)


class NodeHoldings(msgspec.Struct, kw_only=True):
    node: str
    url: str
    next_task_uid: int = 0  # its highest task uid + 1; 0 without tasks
    indexes: dict[str, IndexHoldings] = msgspec.field(default_factory=dict)
    error: str | None = None  # did not answer: nothing is known of it

    def holds_data(self) -> bool:
        return bool(self.indexes) or self.next_task_uid > 0


def task_uid_floor(journal_next: int, marker_high_water: int, node_next: Iterable[int]) -> int:
    """The first task uid a recovered Miroir may hand out: past every uid a client holds.

    - `journal_next`: what the salvaged journal replays to (exact, but maybe short);
    - `marker_high_water`: the next task uid as of the last acknowledged commit, from the
      commit marker when it survived. It is fsynced before any answer carries a uid, so
      it alone bounds every uid a client holds;
    - the nodes: every Miroir task that reached a node made at least one node task there,
      and node uids never go back, so the sum over nodes of (highest node task uid + 1)
      bounds the Miroir tasks that reached a node. It misses the tasks Miroir finished
      without a node (failed before any node call) and the tasks of nodes no longer in
      the cluster; the margin, as large as the sum itself and at least
      `MIN_UID_MARGIN`, covers that many again. Gaps in task uids are harmless.
    """
    total = sum(node_next)
    nodes_bound = total + max(MIN_UID_MARGIN, total) if total else 0
    return max(journal_next, marker_high_water, nodes_bound)


def infer_shards(samples: Sequence[tuple[str, int]], configured: int) -> int:
    """The shard count S the documents were written with: `_miroir_shard` = hash(key) % S.

    The configured count if it fits every sample (it is what an index is created with),
    else the smallest S that fits; the configured count when nothing fits (documents
    written by something else) or there is no document.
    """
    if not samples:
        return configured
    highest = max(shard for _, shard in samples)

    def fits(s: int) -> bool:
        return s > highest and all(shard_for_text(key, s) == shard for key, shard in samples)

    if fits(configured):
        return configured
    return next((s for s in range(highest + 1, MAX_SHARDS + 1) if fits(s)), configured)


def merged_indexes(holdings: Sequence[NodeHoldings]) -> dict[str, list[IndexHoldings]]:
    """Index uid -> how each node that answered holds it."""
    out: dict[str, list[IndexHoldings]] = {}
    for h in holdings:
        for uid, ih in h.indexes.items():
            out.setdefault(uid, []).append(ih)
    return dict(sorted(out.items()))


def holders_summary(holdings: Sequence[NodeHoldings]) -> str:
    """`n1 (url) holds 2 indexes (a, b) and node tasks up to uid 56` for the first holder."""
    parts = []
    for h in holdings:
        if not h.holds_data():
            continue
        names = ", ".join(sorted(h.indexes)[:5]) + (", ..." if len(h.indexes) > 5 else "")
        what = f"{len(h.indexes)} index(es) ({names})" if h.indexes else "no index"
        tasks = f" and node tasks up to uid {h.next_task_uid - 1}" if h.next_task_uid else ""
        parts.append(f"node {h.node} ({h.url}) holds {what}{tasks}")
    return "; ".join(parts)


def infer_placement(
    samples_by_node: Mapping[str, Sequence[tuple[str, int]]],
    groups: Mapping[str, Sequence[str]],
    weights: Mapping[str, float],
    rf: int,
    shards: int,
    tables: Mapping[str, Sequence[Sequence[str]]],
) -> int:
    """The placement version an index's documents were placed by: the first (newest
    first) under which every sampled document sits on an owner of its shard. Placement
    2's tables went with the journal unless `tables` (what survived of it) has them; its
    initial table of the membership is the best guess then. The newest placement when
    no version fits every sample (documents moved after the last table was lost)."""
    group_of = {n: g for g, ids in groups.items() for n in ids}
    for version in (CURRENT_PLACEMENT, *(v for v in range(CURRENT_PLACEMENT - 1, 0, -1))):
        layout = Layout(shards, version)
        owned = {
            g: owner_table(layout, sorted(ids), rf, weights, tables.get(table_key(shards, g)))
            for g, ids in groups.items()
        }
        if all(
            node in group_of and node in owned[group_of[node]][shard]
            for node, samples in samples_by_node.items()
            for _, shard in samples
            if 0 <= shard < shards
        ):
            return version
    return CURRENT_PLACEMENT
