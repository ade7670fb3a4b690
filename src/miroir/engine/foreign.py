"""Miroir's document join (core/foreign.py). The foreign index is sharded like any other,
so no node can join on its own: nodes never hold the `foreignKeys` setting (Miroir keeps
it in the index's journaled settings), and Miroir

- resolves a search's `_foreign(field, <filter>)` before planning it: <filter> is listed on
  the foreign index through Miroir's own read path, and the search then runs with
  `"field" IN [the ids listed]`;
- hydrates the merged page: the ids its hits' foreign-key fields name are listed on each
  foreign index (through the read path again) and swapped for those documents.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from miroir.core import foreign as core
from miroir.core.errors import MeiliError, index_not_found
from miroir.core.filter import check_filterable, route_filter
from miroir.core.searchplan import SearchRequest
from miroir.core.settings import hide_shard_field
from miroir.engine.cluster import Cluster
from miroir.engine.settings import index_settings

# Lists documents of an index as `POST /documents/fetch` does: (uid, filter, ids, limit)
# -> its answer ({"results": [...], "total": n}).
Lister = Callable[[str, str | None, list[str] | None, int], Awaitable[dict]]


def _features(cluster: Cluster) -> dict[str, Any]:
    return cluster.state.experimental_features


async def resolve(cluster: Cluster, uid: str, req: SearchRequest, lister: Lister) -> SearchRequest:
    """`req` with each foreign filter replaced by `"field" IN [ids]`; unchanged without
    one (or the feature). A filter the route refuses (syntax, a gate) is left to the
    nodes, which word it as 1.50 does."""
    value = req.filter
    features = _features(cluster)
    if value is None or "_foreign" not in str(value) or not core.enabled(features):
        return req
    try:
        expr = route_filter(value, "invalid_search_filter", features)
    except MeiliError:
        return req
    nodes = core.plan(expr, uid, core.keys_of(index_settings(cluster, uid)))
    if not nodes or expr is None:
        return req
    ids: dict[int, list[str]] = {}
    per_index: dict[str, set[str]] = {}
    for node, f_uid in nodes:
        meta = cluster.state.indexes.get(f_uid)
        if meta is None:
            raise core.inner_error(f_uid, index_not_found(f_uid))
        filterable = hide_shard_field(index_settings(cluster, f_uid).get("filterableAttributes") or [])
        try:
            check_filterable(node.item, filterable)  # worded on the client's filter, as 1.50
            listed = await lister(f_uid, core.inner_filter(node), None, core.MAX_FOREIGN_IDS + 1)
        except MeiliError as e:
            raise core.inner_error(f_uid, e) from None
        pk = meta.primary_key
        got = [str(doc[pk]) for doc in listed.get("results") or () if pk and pk in doc]
        ids[id(node)] = got
        seen = per_index.setdefault(f_uid, set())
        seen.update(got)
        core.check_count(f_uid, max(len(seen), int(listed.get("total") or 0)))
    return msgspec.structs.replace(req, filter=core.rewritten(expr, ids))


async def hydrate(cluster: Cluster, uid: str, hits: list[dict], lister: Lister) -> None:
    """Swap, in place, the foreign-key values of `hits` (and their `_formatted`) for the
    foreign documents, as 1.50 does with the feature on."""
    if not hits or not core.enabled(_features(cluster)):
        return
    keys = core.keys_of(index_settings(cluster, uid))
    if not keys:
        return
    found: dict[str, dict[str, dict]] = {}
    for f_uid, wanted in core.wanted_ids(hits, keys).items():
        meta = cluster.state.indexes.get(f_uid)
        if meta is None:
            raise index_not_found(f_uid)
        listed = await lister(f_uid, None, sorted(wanted), len(wanted))
        pk = meta.primary_key
        found[f_uid] = {str(doc[pk]): doc for doc in listed.get("results") or () if pk and pk in doc}
    core.hydrate(hits, keys, found)
