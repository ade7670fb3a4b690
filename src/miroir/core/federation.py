"""Federated multi-search: one ranked list across queries (design §6).

Each query of ``POST /multi-search`` with ``federation`` first runs through the normal
read path (plan, scatter, ``merge.merge_search``) with ``offset=0``,
``limit=federation.offset+federation.limit`` and ``showRankingScore`` forced on; this
module merges those per-query lists the way Meilisearch merges its per-query results:

- a hit's weighted score is ``_rankingScore * weight`` (``federationOptions.weight``,
  default 1.0); hits are ordered by it, descending;
- ties: by query position, then by the hit's rank inside its query (deterministic;
  Meilisearch compares the detailed scores there, which for equal global scores is
  close to query order);
- each hit gets ``_federation: {indexUid, queriesPosition, weightedRankingScore}``;
  ``_rankingScore`` stays only if that query asked for it;
- ``estimatedTotalHits`` is the sum over queries;
- facets: ``facetsByIndex`` returns each index's facets as
  ``{"distribution": ..., "stats": ...}``; with ``mergeFacets`` they are merged into
  one ``facetDistribution`` / ``facetStats`` instead (counts summed, stats min/max,
  values ordered per ``sortFacetValuesBy``, cut to ``mergeFacets.maxValuesPerFacet``).

Pure module: no I/O.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from itertools import count, islice, repeat
from typing import Any

import msgspec

from miroir.core.errors import (
    MeiliError,
    invalid_index_uid,
    json_kind,
    type_error,
    valid_index_uid,
)
from miroir.core.facets import merge_facet_distribution, merge_facet_stats

DEFAULT_WEIGHT = 1.0


class FederatedQuery(msgspec.Struct, kw_only=True):
    """One query's merged answer, ready to be federated."""

    index_uid: str
    hits: list[dict]  # in the query's rank order, each with `_rankingScore`
    weight: float = DEFAULT_WEIGHT
    estimated_total_hits: int = 0
    show_ranking_score: bool = False  # what the client asked, not what was forced


class IndexFacets(msgspec.Struct, kw_only=True):
    """One index's facets (already merged over its shards)."""

    distribution: dict[str, dict[str, int]] = msgspec.field(default_factory=dict)
    stats: dict[str, dict[str, float]] = msgspec.field(default_factory=dict)


def merge_federated(
    queries: Sequence[FederatedQuery],
    *,
    offset: int,
    limit: int,
    processing_time_ms: int,
    index_facets: Mapping[str, IndexFacets] | None = None,
    merge_facets: Mapping | None = None,
    sort_facet_values_by: Mapping[str, str] | None = None,
) -> dict:
    """The federated answer. ``queries`` are in request order (their queriesPosition).

    ``index_facets`` holds the facets of the indexes named in ``facetsByIndex``;
    ``merge_facets`` is the request's ``federation.mergeFacets`` object (or None).
    """

    def stream(pos: int, q: FederatedQuery):
        w = q.weight
        keys = (-(h.get("_rankingScore") or 0.0) * w for h in q.hits)
        return zip(keys, repeat(pos), count(), q.hits)

    merged = heapq.merge(*[stream(pos, q) for pos, q in enumerate(queries)])
    hits = []
    for neg_weighted, pos, _rank, hit in islice(merged, offset, offset + limit):
        q = queries[pos]
        if not q.show_ranking_score:
            hit.pop("_rankingScore", None)
        hit["_federation"] = {
            "indexUid": q.index_uid,
            "queriesPosition": pos,
            "weightedRankingScore": -neg_weighted,
        }
        hits.append(hit)

    out: dict = {
        "hits": hits,
        "processingTimeMs": processing_time_ms,
        "limit": limit,
        "offset": offset,
        "estimatedTotalHits": sum(q.estimated_total_hits for q in queries),
    }
    if index_facets:
        ordered = [index_facets[uid] for uid in sorted(index_facets)]
        if merge_facets is not None:
            out["facetDistribution"] = merge_facet_distribution(
                (f.distribution for f in ordered),
                sort_facet_values_by=sort_facet_values_by,
                max_values_per_facet=merge_facets.get("maxValuesPerFacet"),
            )
            out["facetStats"] = merge_facet_stats(f.stats for f in ordered)
        else:
            out["facetsByIndex"] = {uid: msgspec.to_builtins(index_facets[uid]) for uid in sorted(index_facets)}
    return out


def federation_window(federation: Any) -> tuple[int, int]:
    """The `federation` object's (offset, limit), or Meilisearch's errors (Miroir and devnode)."""
    if not isinstance(federation, dict):
        raise type_error("invalid_multi_search_federated", ".federation", federation, "an object")
    offset = federation.get("offset", 0)
    limit = federation.get("limit", 20)
    for name, value in (("offset", offset), ("limit", limit)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise type_error(f"invalid_multi_search_{name}", f".federation.{name}", value, "a positive integer")
    return offset, limit


# Per-query options a federated search does not allow (the federation pages).
FEDERATED_PAGINATION = ("offset", "limit", "page", "hitsPerPage")


def inside(i: int, e: MeiliError) -> MeiliError:
    """`e` as the error of `queries[i]` of a multi-search."""
    return MeiliError(e.code, f"Inside `.queries[{i}]`: {e.message}", status=e.status, type=e.type)


def query_entry(i: int, q: Any, *, federated: bool) -> tuple[str, dict[str, Any], float]:
    """(index uid, search parameters, weight) of `queries[i]`, checked as Meilisearch does
    before searching (Miroir and devnode): an object with a valid `indexUid`;
    `federationOptions` only in a federated search, with a positive weight; no
    pagination in a federated query. Whether the index exists is the caller's check."""
    if not isinstance(q, dict):
        raise inside(i, MeiliError("bad_request", f"Invalid value type: expected an object, but found {json_kind(q)}"))
    uid = q.get("indexUid")
    if uid is None:
        raise inside(i, MeiliError("missing_index_uid", "Missing field `indexUid`"))
    if not isinstance(uid, str) or not valid_index_uid(uid):
        raise inside(i, invalid_index_uid(str(uid)))
    weight = DEFAULT_WEIGHT
    if "federationOptions" in q:
        if not federated:
            raise MeiliError(
                "invalid_multi_search_federation_options",
                f"Inside `.queries[{i}]`: Using `federationOptions` is not allowed in a non-federated search.\n"
                f" - Hint: remove `federationOptions` from query #{i} or add `federation` to the request.",
            )
        weight = (q.get("federationOptions") or {}).get("weight", DEFAULT_WEIGHT)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
            raise inside(i, type_error("invalid_multi_search_weight", ".federationOptions.weight", weight, "a positive number"))
    params = {k: v for k, v in q.items() if k not in ("indexUid", "federationOptions")}
    if federated:
        for key in FEDERATED_PAGINATION:
            if key in params:
                raise MeiliError(
                    "invalid_multi_search_query_pagination",
                    f"Inside `.queries[{i}]`: Using pagination options is not allowed in federated queries.\n"
                    f" - Hint: remove `{key}` from query #{i} or remove `federation` from the request",
                )
    return uid, params, float(weight)
