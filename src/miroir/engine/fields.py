"""Attributes an index has seen, journaled, and the fields a sub-query searches in.

The write path calls `prepare_batch_fields` once per accepted batch, after validation and
before any document is sent, under the index's write lock (so the journal's order is the
order batches are accepted). New attributes are journaled (`IndexFieldsSeen`) and awaited
durable; a batch with no new attribute costs one pass over its keys and no I/O.

The read path asks `search_on` what to put in a sub-query's `attributesToSearchOn` so that
no node matches the query words against `_miroir_shard` (see core/fields.py for why this
is a query-time restriction and not a node `searchableAttributes` list).
"""

from __future__ import annotations

from collections.abc import Sequence

from miroir.core import fields as core
from miroir.core.model import IndexFieldsSeen
from miroir.engine.cluster import Cluster
from miroir.engine.settings import index_settings


async def prepare_batch_fields(cluster: Cluster, uid: str, docs: Sequence[dict]) -> None:
    """Journal the attributes of `docs` that index `uid` has not seen yet (caller holds the
    index lock; the documents are validated)."""
    seen = cluster.state.index_fields.get(uid, ())
    new = core.new_fields(seen, core.batch_fields(docs))
    if new:
        await cluster.journal.append(IndexFieldsSeen(uid=uid, fields=new))


def search_on(cluster: Cluster, uid: str, requested: Sequence[str] | None) -> list[str] | None:
    """The `attributesToSearchOn` for a node sub-query of index `uid` (None: as requested)."""
    if requested is not None and not (isinstance(requested, list) and all(isinstance(a, str) for a in requested)):
        return None  # malformed: the nodes answer with Meilisearch's error
    client = index_settings(cluster, uid).get("searchableAttributes") or ["*"]
    return core.search_on(client, cluster.state.index_fields.get(uid, ()), requested)
