"""Sorted document listings: 1.50's `sort` on GET /documents and POST /documents/fetch.

Each shard's node sorts its own documents (`core.documents.document_sort_key`, the same
key the devnode uses); Miroir asks every shard for its first `offset + limit` documents
and merges the sorted pages by their sort values, so the global page is the one a single
node holding every document would give. Ties are in insertion order, as on one node
(`core.reserved.document_seq`; each node breaks them by its internal ids, which follow
it), then shard order and each node's own order for documents without a sequence. Every shard is read from one copy for the whole pass (`listing_affinity`, no
hedging), as unsorted listings are.

Cost: a page at depth `offset` reads `offset + limit` documents from every shard (a
sorted page cannot be located in a shard without the documents before it).
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from typing import Any

import msgspec

from miroir.core.documents import document_sort_key, parse_document_sort
from miroir.core.filter import and_filters
from miroir.core.merge import merge_documents
from miroir.core.model import IndexMeta
from miroir.core.reserved import SEQ_FIELDS, document_seq
from miroir.core.routing import listing_affinity
from miroir.engine.cluster import Cluster
from miroir.engine.scatter import merge_degraded, scatter
from miroir.net.node import NodeClient


def _sortable(settings: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    for entry in settings.get("sortableAttributes") or ():
        if isinstance(entry, str):
            out.append(entry)
    return out


async def list_sorted(
    cluster: Cluster, uid: str, meta: IndexMeta, query: Any, settings: Mapping[str, Any]
) -> tuple[dict, dict[str, str]]:
    """A sorted global page `{results, offset, limit, total}` and its degradation headers."""
    criteria = parse_document_sort(query.sort or [], _sortable(settings))  # refused before any node is asked
    offset, limit = query.offset, query.limit
    base = msgspec.to_builtins(query)
    requested = query.fields
    added: list[str] = []
    if requested is not None and "*" not in requested:
        # The merge reads the sort values: fetched, then removed from the answer.
        tops = {f.split(".", 1)[0] for f in requested}
        added = sorted(({name.split(".", 1)[0] for name, _ in criteria} | set(SEQ_FIELDS)) - tops)
        base["fields"] = [*requested, *added]

    async def send(client: NodeClient, ss: list[int] | None, timeout_s: float) -> dict:
        s = ss[0] if ss is not None else 0
        body = dict(base, offset=0, limit=offset + limit)
        body["filter"] = and_filters(query.filter, f"_miroir_shard = {s}")
        page = await client.call("POST", f"/indexes/{uid}/documents/fetch", json=body, timeout_s=timeout_s)
        page["_shard"] = s
        return page

    g = await scatter(
        cluster, meta, send, per_shard=True, affinity=listing_affinity(uid), hedge=False
    )
    headers = merge_degraded([g.check(cluster.config.scatter.unavailable_shard_policy, uid)])
    pages = sorted(g.results, key=lambda p: p["_shard"])
    total = sum(p.get("total", 0) for p in pages)
    merged = heapq.merge(
        *[(p.get("results") or []) for p in pages], key=lambda d: (document_sort_key(d, criteria), document_seq(d))
    )
    window = [d for i, d in zip(range(offset + limit), merged) if i >= offset]
    for doc in window:
        for name in added:
            doc.pop(name, None)
    answer = merge_documents([{"results": window, "offset": 0, "total": len(window)}], offset=0, limit=len(window))
    return {"results": answer["results"], "offset": offset, "limit": limit, "total": total}, headers
