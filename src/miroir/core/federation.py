"""Federated multi-search: one ranked list across queries (design §6).

Each query of ``POST /multi-search`` with ``federation`` first runs through the normal
read path (plan, scatter, ``merge.merge_search``) with ``offset=0``,
``limit=federation.offset+federation.limit``, ``showRankingScore`` and
``showRankingScoreDetails`` forced on; this
module merges those per-query lists the way Meilisearch merges its per-query results:

- hits are ordered as 1.50 orders them (core/fedscores.py): their ranking details read
  as a sequence of weighted scores (``_rankingScore * weight`` when no sort splits them)
  and sort values, compared in turn; the queries of one index are merged first (a
  document they both match shown once), then the indexes; ties go to query position;
- each hit gets ``_federation: {indexUid, queriesPosition, weightedRankingScore}``;
  ``_rankingScore`` stays only if that query asked for it;
- ``estimatedTotalHits`` sums the indexes' totals; an index counts the union of the
  documents its queries match (1.50's candidates), exactly where every query's documents
  are known (``FederatedQuery.candidates``, or all its hits in the window), else the
  documents seen plus what each query matches past its window;
- ``federation.distinct`` first drops, within each index, a hit whose value a better hit
  of that index took (out of the index's total and facets), then across indexes (out of
  the total, and its facet values out of the counts, as 1.50's `remove_hits`);
- facets: ``facetsByIndex`` returns each index's facets as
  ``{"distribution": ..., "stats": ...}``; with ``mergeFacets`` they are merged into
  one ``facetDistribution`` / ``facetStats`` instead (counts summed, stats min/max,
  values ordered per ``sortFacetValuesBy``, cut to ``mergeFacets.maxValuesPerFacet``).

Pure module: no I/O.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable, Container, Iterator, Mapping, Sequence
from typing import Any

import msgspec

from miroir.core import fedscores
from miroir.core.errors import (
    MeiliError,
    body_type_error,
    invalid_index_uid,
    type_error,
    valid_index_uid,
)
from miroir.core.facets import (
    facet_leaves,
    facet_order,
    merge_facet_distribution,
    merge_facet_stats,
    order_values,
)
from miroir.core.searchplan import SEARCH_FIELDS, check_personalize, rust_duration

DEFAULT_WEIGHT = 1.0


class FederatedQuery(msgspec.Struct, kw_only=True):
    """One query's merged answer, ready to be federated."""

    index_uid: str
    hits: list[dict]  # in the query's rank order, each with `_rankingScore`
    weight: float = DEFAULT_WEIGHT
    estimated_total_hits: int = 0
    show_ranking_score: bool = False  # what the client asked, not what was forced
    show_ranking_score_details: bool = True  # False: details were only forced for `semanticHitCount`
    semantic: bool = False  # a hybrid or vector query (its hits carry their details)
    # Each hit's document within its index (aligned with `hits`), when known: 1.50 shows a
    # document matched by several queries of one index once, at its best weighted score.
    doc_ids: list[Any] | None = None
    # Fields retrieved only so that `federation.distinct` can see them: they leave the hit.
    added_fields: tuple[str, ...] = ()
    # Every document of the index the query matches (the same keys as `doc_ids`), when
    # known: the index's total is their union over its queries. None: only the hits'
    # documents are known, complete when the window holds them all.
    candidates: frozenset | None = None
    retrieve_vectors: bool = False
    query_vector: list[float] | None = None  # the query's embedding, when it has one

    def known_documents(self) -> tuple[set, int] | None:
        """(documents known to match, how many more match unseen), or None when the hits
        carry no document ids."""
        if self.candidates is not None:
            return set(self.candidates), 0
        if self.doc_ids is None:
            return None
        return set(self.doc_ids), max(0, self.estimated_total_hits - len(self.doc_ids))


def hit_document_ids(
    hits: list[dict], primary_key: str | None, *, added: bool, formatted: Sequence[str] = ()
) -> list[Any] | None:
    """Each hit's primary key (None when one lacks it: no deduplication), so that a
    document several queries of one index match is shown once. Where Miroir added the
    key to the retrieved fields (`added`) it leaves the hit again, and `_formatted` unless
    the query highlights or crops it (`formatted`: those attribute names)."""
    if not primary_key:
        return None
    ids: list[Any] | None = [h[primary_key] for h in hits if primary_key in h]
    if ids is not None and len(ids) != len(hits):
        ids = None
    if added:
        keep_formatted = "*" in formatted or primary_key in formatted
        for h in hits:
            h.pop(primary_key, None)
            f = h.get("_formatted")
            if not keep_formatted and isinstance(f, dict):
                f.pop(primary_key, None)
    return ids


def retrieval_with(wanted: Sequence[str] | None, attr: str | None) -> list[str] | None:
    """`attributesToRetrieve` extended with `attr` (the federation's distinct attribute,
    which the merge reads in every hit), or None when nothing needs adding."""
    if attr is None or wanted is None or "*" in wanted:
        return None
    if any(attr == w or attr.startswith(w + ".") for w in wanted):
        return None
    return [*wanted, attr]


def distinct_fields(federation: Federation, uid: str) -> list[str]:
    """The fields a query of index `uid` retrieves for `federation.distinct`: the
    attribute, and the facets asked of the index (a rejected hit's values leave their
    counts). Patterns (`*`) are left out: their fields are not known here."""
    if federation.distinct is None:
        return []
    named = [f for f in federation.facets_by_index.get(uid) or () if "*" not in f]
    return list(dict.fromkeys([federation.distinct, *named]))


def drop_field(doc: dict, path: str) -> None:
    """Remove the dotted `path` from `doc` (a flat key and a nested one alike, through
    arrays of objects), and the objects and arrays it leaves empty."""
    doc.pop(path, None)
    for key in [k for k in doc if path.startswith(k) and path[len(k):len(k) + 1] == "."]:
        rest = path[len(key) + 1:]
        value = doc[key]
        if isinstance(value, dict):
            drop_field(value, rest)
            if not value:
                del doc[key]
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for v in value:
                drop_field(v, rest)
            if all(not v for v in value):
                del doc[key]


class IndexFacets(msgspec.Struct, kw_only=True):
    """One index's facets (already merged over its shards)."""

    distribution: dict[str, dict[str, int]] = msgspec.field(default_factory=dict)
    stats: dict[str, dict[str, float]] = msgspec.field(default_factory=dict)


class MergedHits(msgspec.Struct, kw_only=True):
    """The federated list before its facets: what the facets of each index depend on."""

    hits: list[dict]
    total: int
    semantic_hits: int = 0
    # Index uid -> the documents the index-level distinct dropped (1.50 takes them out
    # of the index's candidates before counting its facets); keys of `doc_ids`.
    dropped: dict[str, set] = msgspec.field(default_factory=dict)
    # Index uid -> hits the federation-level distinct rejected: their facet values leave
    # the counts (`drop_rejected`).
    rejected: dict[str, list[dict]] = msgspec.field(default_factory=dict)


def merge_hits(queries: Sequence[FederatedQuery], federation: Federation) -> MergedHits:
    """Merge the queries' hits (request order = queriesPosition) into the federated
    window, with each index's total and what distinct dropped."""
    skip, take = federation.window()
    distinct = federation.distinct
    by_index: dict[str, list[int]] = {}
    for pos, q in enumerate(queries):
        by_index.setdefault(q.index_uid, []).append(pos)
    dropped: dict[str, set] = {uid: set() for uid in by_index}
    dropped_count: dict[str, int] = dict.fromkeys(by_index, 0)
    streams = [
        _index_stream(queries, positions, distinct, skip + take, dropped[uid], dropped_count, uid)
        for uid, positions in by_index.items()
    ]
    seen_values: set = set()
    rejected: dict[str, list[dict]] = {}
    hits: list[dict] = []
    semantic_hits = 0
    accepted = rejected_count = 0
    for weighted, pos, hit in _kmerge(streams):
        q = queries[pos]
        if distinct is not None:
            values = facet_values(hit, distinct)
            if any(v in seen_values for v in values):
                rejected_count += 1
                rejected.setdefault(q.index_uid, []).append(hit)
                continue
            seen_values.update(values)
        accepted += 1
        if accepted <= skip:
            continue
        if accepted > skip + take:
            if distinct is None:
                break
            continue  # with distinct, every hit is looked at: the total counts the rejected out
        if q.semantic and "vectorSort" in (hit.get("_rankingScoreDetails") or {}):
            semantic_hits += 1
        hits.append(_shown(hit, q, pos, weighted))
    total = sum(
        _index_total([queries[p] for p in positions], dropped[uid], dropped_count[uid])
        for uid, positions in by_index.items()
    )
    return MergedHits(
        hits=hits,
        total=max(0, total - rejected_count),
        semantic_hits=semantic_hits,
        dropped={uid: ids for uid, ids in dropped.items() if ids},
        rejected=rejected,
    )


def _shown(hit: dict, q: FederatedQuery, pos: int, weighted: float) -> dict:
    """`hit` as the answer shows it: fields added for the merge gone, scores only where
    the query asked, its `_federation`."""
    for name in q.added_fields:
        drop_field(hit, name)
        if isinstance(hit.get("_formatted"), dict):
            drop_field(hit["_formatted"], name)
    if not q.show_ranking_score:
        hit.pop("_rankingScore", None)
    if not q.show_ranking_score_details:
        hit.pop("_rankingScoreDetails", None)
    hit["_federation"] = {"indexUid": q.index_uid, "queriesPosition": pos, "weightedRankingScore": weighted}
    return hit


def _index_total(queries: Sequence[FederatedQuery], dropped: set, dropped_count: int) -> int:
    """One index's total: the union of its queries' documents (1.50's candidates), less
    those its distinct dropped. One query: its own total."""
    if len(queries) == 1:
        return max(0, queries[0].estimated_total_hits - dropped_count)
    union: set = set()
    unseen = 0
    for q in queries:
        known = q.known_documents()
        if known is None:  # no ids: no union either
            return max(0, sum(x.estimated_total_hits for x in queries) - dropped_count)
        union |= known[0]
        unseen += known[1]
    return len(union - dropped) + unseen


def union_documents(queries: Sequence[FederatedQuery], uid: str, dropped: set | None = None) -> set | None:
    """Every document the queries of index `uid` match, less `dropped`, when all are
    known (else None): the set 1.50 counts that index's facets on."""
    union: set = set()
    for q in queries:
        if q.index_uid != uid:
            continue
        known = q.known_documents()
        if known is None or known[1]:
            return None
        union |= known[0]
    return union - (dropped or set())


def merge_federated(
    queries: Sequence[FederatedQuery],
    *,
    offset: int = 0,
    limit: int = 20,
    processing_time_ms: int,
    index_facets: Mapping[str, IndexFacets] | None = None,
    merge_facets: Mapping | None = None,
    sort_facet_values_by: Mapping[str, str] | None = None,
    federation: Federation | None = None,
    request_uid: str | None = None,
    metadata: list[dict] | None = None,
    merged: MergedHits | None = None,
) -> dict:
    """The federated answer. ``queries`` are in request order (their queriesPosition).

    ``federation`` (else ``offset``/``limit``) gives the window (offset/limit or page
    mode) and ``distinct`` (see `merge_hits`; ``merged``: its result, when the caller
    needed it first to count facets); ``index_facets`` holds the facets of the indexes
    named in ``facetsByIndex``; ``merge_facets`` is the request's
    ``federation.mergeFacets`` object (or None). ``semanticHitCount`` (hybrid or vector
    queries) counts the page's hits that vector similarity ranked.
    """
    if federation is None:
        federation = Federation(offset=offset, limit=limit)
    if merged is None:
        merged = merge_hits(queries, federation)
    out: dict = {"hits": merged.hits}
    if any(q.retrieve_vectors for q in queries):  # 1.50: by query position, when one asks for vectors
        out["queryVectors"] = {
            str(pos): q.query_vector for pos, q in enumerate(queries) if q.retrieve_vectors and q.query_vector is not None
        }
    out.update(processingTimeMs=processing_time_ms, **federation.hits_info(merged.total))
    if index_facets:
        facets = {uid: drop_rejected(index_facets[uid], merged.rejected.get(uid, ())) for uid in sorted(index_facets)}
        if merge_facets is not None:
            every = [h for uid in sorted(merged.rejected) for h in merged.rejected[uid]]
            out["facetDistribution"] = drop_rejected(
                IndexFacets(distribution=merge_facet_distribution(
                    (f.distribution for f in map(index_facets.__getitem__, sorted(index_facets))),
                    sort_facet_values_by=sort_facet_values_by,
                    max_values_per_facet=merge_facets.get("maxValuesPerFacet"),
                )),
                every,
            ).distribution
            out["facetStats"] = merge_facet_stats(f.stats for f in facets.values())
        else:
            out["facetsByIndex"] = {uid: msgspec.to_builtins(f) for uid, f in facets.items()}
    if request_uid is not None:
        out["requestUid"] = request_uid
    if metadata is not None:
        out["metadata"] = metadata
    if any(q.semantic for q in queries):
        out["semanticHitCount"] = merged.semantic_hits
    return out


def facet_values(doc: Mapping, path: str) -> list:
    """The facet values of `doc` at `path` as 1.50 reads a hit's (`facet_leaves`):
    strings normalized (trimmed, NFKD, lower-cased), booleans as `true`/`false`."""
    out: list = []
    for value in facet_leaves(doc, path):
        if isinstance(value, bool):
            out.append(("s", "true" if value else "false"))
        elif isinstance(value, (int, float)):
            out.append(("n", value))
        elif isinstance(value, str):
            out.append(("s", unicodedata.normalize("NFKD", value.strip()).lower()))
    return out


def _number_key(n: int | float) -> str:
    if isinstance(n, float) and n.is_integer() and abs(n) < 2**53:
        return str(int(n))
    return str(n)


def drop_rejected(facets: IndexFacets, hits: Sequence[Mapping], *, once_per_value: bool = False) -> IndexFacets:
    """`facets` less one count per facet value of each of `hits` (rejected by the
    federation's distinct), values at zero removed; stats stay (1.50's `remove_hits`,
    which takes a value off once per leaf; `once_per_value`: once per document)."""
    if not hits:
        return facets
    distribution: dict[str, dict[str, int]] = {}
    for name, counts in facets.distribution.items():
        counts = dict(counts)
        by_norm = {unicodedata.normalize("NFKD", v.strip()).lower(): v for v in counts}
        for hit in hits:
            values = facet_values(hit, name)
            for kind, v in dict.fromkeys(values) if once_per_value else values:
                key = by_norm.get(v, v) if kind == "s" else _number_key(v)
                if key in counts:
                    counts[key] = max(0, counts[key] - 1)
        distribution[name] = {v: c for v, c in counts.items() if c}
    return IndexFacets(distribution=distribution, stats=facets.stats)


def facet_fields(hit: Mapping, names: Sequence[str]) -> dict[str, list]:
    """The facet values of `hit` for `names`, kept apart from the hit (which the merge
    strips of the fields it added): what `union_facets` and `drop_rejected` read."""
    return {name: facet_leaves(hit, name) for name in names}


def union_facets(
    parts: Sequence[tuple[IndexFacets, Mapping[Any, Mapping]]],
    dropped: set,
    *,
    sort_facet_values_by: Mapping[str, str] | None,
    max_values: int | None,
) -> IndexFacets:
    """An index's facets on the union of its queries' documents less `dropped` (1.50's
    candidates), from each query's own facets: a document several queries match
    counts once (its values taken off for each extra query), one the index's distinct
    dropped not at all. `parts`: per query, its facets and {document: its facet values}
    for the documents known to match it (exact when all are known)."""
    times: dict[Any, int] = {}
    fields: dict[Any, Mapping] = {}
    for _, docs in parts:
        for doc, values in docs.items():
            times[doc] = times.get(doc, 0) + 1
            fields.setdefault(doc, values)
    extra = [fields[doc] for doc, n in times.items() for _ in range(n - 1 + (doc in dropped))]
    summed = merge_facet_distribution(
        (f.distribution for f, _ in parts), sort_facet_values_by=sort_facet_values_by, max_values_per_facet=None
    )
    less = drop_rejected(IndexFacets(distribution=summed), extra, once_per_value=True).distribution
    return IndexFacets(
        distribution={
            name: order_values(counts, facet_order(sort_facet_values_by, name), max_values) for name, counts in less.items()
        },
        stats=merge_facet_stats(f.stats for f, _ in parts),
    )


def _query_stream(pos: int, q: FederatedQuery) -> Iterator[tuple]:
    for rank, hit in enumerate(q.hits):
        weighted = (hit.get("_rankingScore") or 0.0) * q.weight
        doc = q.doc_ids[rank] if q.doc_ids is not None else None
        yield fedscores.score_values(hit, q.weight), weighted, pos, hit, doc


def _index_stream(
    queries: Sequence[FederatedQuery],
    positions: list[int],
    distinct: str | None,
    required: int,
    dropped: set,
    dropped_count: dict[str, int],
    uid: str,
) -> Iterator[tuple]:
    """One index's hits, its queries merged as 1.50 merges them before the indexes: a
    document several queries match kept at its first place, a hit whose distinct value
    a better hit of the index took dropped (into `dropped`), `required` hits at most."""
    seen: set[Any] = set()
    dedupe = all(queries[p].doc_ids is not None for p in positions) and len(positions) > 1
    values_seen: set = set()
    taken = 0
    for item in _kmerge([_query_stream(p, queries[p]) for p in positions], full=True):
        if taken >= required:
            return
        doc = item[4]
        if dedupe:
            if doc in seen:
                continue
            seen.add(doc)
        if distinct is not None and len(positions) > 1:
            values = facet_values(item[3], distinct)
            if any(v in values_seen for v in values):
                dropped_count[uid] += 1
                if doc is not None:
                    dropped.add(doc)
                continue
            values_seen.update(values)
        taken += 1
        yield item


def _kmerge(streams: list[Iterator[tuple]], *, full: bool = False) -> Iterator[Any]:
    """Merge streams of (values, weighted, pos, hit, doc), best head first (1.50's
    comparison, ties to the lower query position)."""
    heads = [next(s, None) for s in streams]
    while True:
        best = -1
        for i, h in enumerate(heads):
            if h is None:
                continue
            if best < 0:
                best = i
                continue
            b = heads[best]
            assert b is not None
            c = fedscores.compare(h[0], h[1], b[0], b[1])
            if c > 0 or (c == 0 and h[2] < b[2]):
                best = i
        if best < 0:
            return
        item = heads[best]
        assert item is not None
        heads[best] = next(streams[best], None)
        yield item if full else (item[1], item[2], item[3])


class Federation(msgspec.Struct, kw_only=True):
    """The `federation` object of a multi-search, checked (1.50's `Federation`)."""

    limit: int = 20
    offset: int = 0
    page: int | None = None
    hits_per_page: int | None = None
    facets_by_index: dict[str, list[str] | None] = msgspec.field(default_factory=dict)
    merge_facets: dict | None = None
    distinct: str | None = None
    show_performance_details: bool = False
    personalize: dict | None = None

    @property
    def page_mode(self) -> bool:
        return self.page is not None or self.hits_per_page is not None

    def window(self) -> tuple[int, int]:
        """(skip, take) of the merged list, as 1.50 reads offset/limit or page/hitsPerPage."""
        if not self.page_mode:
            return self.offset, self.limit
        hpp = 20 if self.hits_per_page is None else self.hits_per_page
        page = 1 if self.page is None else self.page
        if page == 0:
            return 0, 0
        return (page - 1) * hpp, hpp

    def hits_info(self, total: int) -> dict:
        """The pagination keys of the federated answer for `total` hits."""
        if not self.page_mode:
            return {"limit": self.limit, "offset": self.offset, "estimatedTotalHits": total}
        hpp = 20 if self.hits_per_page is None else self.hits_per_page
        page = 1 if self.page is None else self.page
        return {"hitsPerPage": hpp, "page": page, "totalPages": -(-total // hpp) if hpp else 0, "totalHits": total}


_FEDERATION_FIELDS = ("limit", "offset", "page", "hitsPerPage", "facetsByIndex", "mergeFacets", "distinct",
                      "showPerformanceDetails", "personalize")


def _uint_or_none(value: Any) -> bool:
    return value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 0)


def parse_federation(value: Any) -> Federation:
    """The request's `federation` object, or 1.50's error for it (Miroir and devnode)."""
    if not isinstance(value, dict):
        raise type_error("bad_request", ".federation", value, "an object")
    for key in value:
        if key not in _FEDERATION_FIELDS:
            listed = ", ".join(f"`{f}`" for f in _FEDERATION_FIELDS)
            raise MeiliError("bad_request", f"Unknown field `{key}` inside `.federation`: expected one of {listed}")
    out = Federation()
    for name, code, attr, required in (
        ("limit", "invalid_search_limit", "limit", True),
        ("offset", "invalid_search_offset", "offset", True),
        ("page", "invalid_search_page", "page", False),
        ("hitsPerPage", "invalid_search_hits_per_page", "hits_per_page", False),
    ):
        if name in value:
            v = value[name]
            if not _uint_or_none(v) or (required and v is None):
                raise type_error(code, f".federation.{name}", v, "a positive integer")
            setattr(out, attr, v)
    fbi = value.get("facetsByIndex")
    if fbi is not None:
        if not isinstance(fbi, dict):
            raise type_error("invalid_multi_search_facets_by_index", ".federation.facetsByIndex", fbi, "an object")
        for uid, facets in fbi.items():
            if not valid_index_uid(uid):
                raise MeiliError(
                    "invalid_multi_search_facets_by_index",
                    f"Invalid value at `.federation.facetsByIndex`: {invalid_index_uid(uid).message}",
                )
            if facets is not None and (not isinstance(facets, list) or not all(isinstance(f, str) for f in facets)):
                raise type_error(
                    "invalid_multi_search_facets_by_index", f".federation.facetsByIndex.{uid}", facets, "an array"
                )
        out.facets_by_index = fbi
    mf = value.get("mergeFacets")
    if mf is not None:
        if not isinstance(mf, dict):
            raise type_error("invalid_multi_search_merge_facets", ".federation.mergeFacets", mf, "an object")
        for key in mf:
            if key != "maxValuesPerFacet":
                raise MeiliError(
                    "bad_request",
                    f"Unknown field `{key}` inside `.federation.mergeFacets`: expected one of `maxValuesPerFacet`",
                )
        if not _uint_or_none(mf.get("maxValuesPerFacet")):
            raise type_error(
                "invalid_multi_search_max_values_per_facet",
                ".federation.mergeFacets.maxValuesPerFacet",
                mf.get("maxValuesPerFacet"),
                "a positive integer",
            )
        out.merge_facets = mf
    distinct = value.get("distinct")
    if distinct is not None and not isinstance(distinct, str):
        raise type_error("invalid_search_distinct", ".federation.distinct", distinct, "a string")
    out.distinct = distinct
    spd = value.get("showPerformanceDetails", False)
    if not isinstance(spd, bool):
        raise type_error("invalid_search_show_performance_details", ".federation.showPerformanceDetails", spd, "a boolean")
    out.show_performance_details = spd
    personalize = value.get("personalize")
    if personalize is not None:
        if not isinstance(personalize, dict):
            raise type_error("invalid_search_personalize", ".federation.personalize", personalize, "an object")
        try:
            check_personalize(personalize)
        except MeiliError as e:
            raise MeiliError(e.code, e.message.replace("`.personalize", "`.federation.personalize")) from None
        out.personalize = personalize
    return out


def multi_search_body(body: Any) -> tuple[list[Any], Any]:
    """`POST /multi-search`'s body -> (`queries`, the raw `federation` or None), with
    1.50's errors for its shape (the entries and the federation are checked after)."""
    if not isinstance(body, dict):
        raise body_type_error(body)
    for key in body:
        if key not in ("queries", "federation"):
            raise MeiliError("bad_request", f"Unknown field `{key}`: expected one of `queries`, `federation`")
    queries = body.get("queries")
    if queries is None:
        raise MeiliError("bad_request", "Missing field `queries`")
    if not isinstance(queries, list):
        raise type_error("bad_request", ".queries", queries, "an array")
    return queries, body.get("federation")


def check_facet_indexes(federation: Federation, known: Container[str]) -> None:
    """1.50's error for a `facetsByIndex` index that does not exist (an index no query
    uses is still looked up there)."""
    for uid in federation.facets_by_index:
        if uid not in known:
            raise MeiliError(
                "index_not_found",
                f"Inside `.federation.facetsByIndex.{uid}`: Index `{uid}` not found.\n"
                f" - Note: index `{uid}` is not used in queries",
                status=400,
            )


_ORDER_WORDS = {"alpha": "alphabetically", "count": "by count"}


def check_facet_order(
    federation: Federation,
    index_uids: Sequence[str],
    filterable: Callable[[str], Sequence[Any]],
    sort_facet_values_by: Callable[[str], Mapping[str, str] | None],
) -> None:
    """1.50's refusal (`invalid_multi_search_facet_order`) of `mergeFacets` over indexes
    that order one facet's values differently (`faceting.sortFacetValuesBy`).
    `index_uids`: each query's index, in request order. Indexes are looked at in uid
    order, those of the queries first; only facets filterable in the index count."""
    if federation.merge_facets is None:
        return
    first_query: dict[str, int] = {}
    for i, uid in enumerate(index_uids):
        first_query.setdefault(uid, i)
    named = federation.facets_by_index
    used = sorted(uid for uid in named if uid in first_query)
    unused = sorted(uid for uid in named if uid not in first_query)
    chosen: dict[str, tuple[str, str]] = {}
    for uid in used + unused:
        facets = named.get(uid)
        if not facets:
            continue
        table = sort_facet_values_by(uid)
        for facet in _filterable_facets(facets, filterable(uid)):
            order = facet_order(table, facet)
            first_uid, first_order = chosen.setdefault(facet, (uid, order))
            if first_order == order:
                continue
            text = (
                f"Inconsistent order for values in facet `{facet}`: index `{first_uid}` orders "
                f"{_ORDER_WORDS.get(first_order, first_order)}, but index `{uid}` orders {_ORDER_WORDS.get(order, order)}.\n"
                " - Hint: Remove `federation.mergeFacets` or change `faceting.sortFacetValuesBy` to be consistent in settings."
            )
            if uid in first_query:
                message = f"Inside `.queries[{first_query[uid]}]`: Inside `.federation.facetsByIndex.{uid}`: {text}"
            else:
                message = f"Inside `.federation.facetsByIndex.{uid}`: {text}\n - Note: index `{uid}` is not used in queries"
            raise MeiliError("invalid_multi_search_facet_order", message)


def _filterable_facets(facets: Sequence[str], filterable: Sequence[Any]) -> list[str]:
    """The facets asked (names, or `*`) that the index can facet on (its filterable
    attributes given as names)."""
    names = [f for f in filterable if isinstance(f, str)]
    if "*" in facets:
        return [n for n in names if n != "*"]
    return [f for f in facets if f in names or "*" in names]


def merged_facet_order(
    federation: Federation, sort_facet_values_by: Callable[[str], Mapping[str, str] | None]
) -> dict[str, str] | None:
    """Facet -> `alpha`/`count` for `mergeFacets` (None without it), from the
    `faceting.sortFacetValuesBy` (`sort_facet_values_by(uid)`) of the first index in
    `facetsByIndex` order that asks for the facet.

    Indexes that disagree were refused before (`check_facet_order`).
    """
    if federation.merge_facets is None:
        return None
    chosen: dict[str, str] = {}
    for uid, facets in federation.facets_by_index.items():
        if not facets:
            continue
        table = sort_facet_values_by(uid)
        for facet in facets:
            chosen.setdefault(facet, facet_order(table, facet))
    return chosen


def performance_details(started: float, merging: float, done: float) -> dict[str, str]:
    """A federated search's `performanceDetails` (`showPerformanceDetails`): the searches
    from `started` to `merging`, then their merge until `done` (perf_counter seconds)."""
    return {
        "federated search": rust_duration(done - started),
        "federated search > search": rust_duration(merging - started),
        "federated search > merge results": rust_duration(done - merging),
    }


def personalization_disabled() -> MeiliError:
    """1.50's answer to `personalize` on an instance without a personalization key
    (Miroir reranks nothing, and its nodes have no key either)."""
    return MeiliError(
        "feature_not_enabled",
        "reranking search results requires enabling the `personalization` experimental feature. "
        "See https://github.com/orgs/meilisearch/discussions/866",
    )


def network_disabled(action: str) -> MeiliError:
    return MeiliError(
        "feature_not_enabled",
        f"{action} requires enabling the `network` experimental feature. See https://github.com/orgs/meilisearch/discussions/805",
    )


# Per-query options a federated search does not allow (the federation pages).
FEDERATED_PAGINATION = ("offset", "limit", "page", "hitsPerPage")


def facets_error(uid: str, e: MeiliError, position: int | None) -> MeiliError:
    """`e` (from computing the facets `federation.facetsByIndex.<uid>` asks) as 1.50
    words it: under the first query of that index, or noted as used by none (`position`
    None). Any other error of the search stays the query's."""
    if e.code != "invalid_search_facets":
        return e if position is None else inside(position, e)
    message = f"Inside `.federation.facetsByIndex.{uid}`: {e.message}"
    if position is None:
        return MeiliError(e.code, f"{message}\n - Note: index `{uid}` is not used in queries", status=e.status, type=e.type)
    return inside(position, MeiliError(e.code, message, status=e.status, type=e.type))


def inside(i: int, e: MeiliError) -> MeiliError:
    """`e` as the error of `queries[i]` of a multi-search. An unknown index is 400 there
    (1.50 answers 404 only on the single-index routes)."""
    status = 400 if e.code == "index_not_found" else e.status
    return MeiliError(e.code, f"Inside `.queries[{i}]`: {e.message}", status=status, type=e.type)


_QUERY_FIELDS = ("indexUid", *SEARCH_FIELDS, "federationOptions")
_AT_PATH = re.compile(r"^(Invalid value type at|Invalid value at|Unknown value `[^`]*` at|Missing field `[^`]*` inside) `\.")


def at_query(i: int, e: MeiliError) -> MeiliError:
    """A decoding error of `queries[i]`'s search parameters, with the path 1.50's decoder
    gives it (`.queries[i].field`), or prefixed `Inside` for a check after decoding."""
    where = f"`.queries[{i}]"
    m = _AT_PATH.match(e.message)
    if m:
        return MeiliError(e.code, e.message[: m.end() - 2] + where + e.message[m.end() - 2 + 1 :], status=e.status)
    unknown = re.match(r"^Unknown field `(.*)`: expected one of ", e.message)
    if unknown:
        listed = ", ".join(f"`{f}`" for f in _QUERY_FIELDS)
        return MeiliError(e.code, f"Unknown field `{unknown.group(1)}` inside {where}`: expected one of {listed}")
    return inside(i, e)


class QueryEntry(msgspec.Struct, kw_only=True):
    """One entry of `queries`: its index, search parameters and federation options."""

    index_uid: str
    params: dict[str, Any]
    weight: float = DEFAULT_WEIGHT
    has_options: bool = False
    remote: str | None = None
    query_position: int | None = None


def query_entry(i: int, q: Any, *, federated: bool) -> tuple[str, dict[str, Any], float]:
    """(index uid, search parameters, weight) of `queries[i]` (see `decode_entry`)."""
    e = decode_entry(i, q)
    check_entry(i, e, federated=federated, federation=None)
    return e.index_uid, e.params, e.weight


def decode_entry(i: int, q: Any) -> QueryEntry:
    """`queries[i]` decoded as 1.50's deserializer does: an object with a valid
    `indexUid`, `federationOptions` of the right shape. Errors carry the path."""
    where = f".queries[{i}]"
    if not isinstance(q, dict):
        raise type_error("bad_request", where, q, "an object")
    if "indexUid" not in q:
        raise MeiliError("missing_index_uid", f"Missing field `indexUid` inside `{where}`")
    uid = q["indexUid"]
    if not isinstance(uid, str):
        raise type_error("invalid_index_uid", f"{where}.indexUid", uid, "a string")
    if not valid_index_uid(uid):
        raise MeiliError("invalid_index_uid", f"Invalid value at `{where}.indexUid`: {invalid_index_uid(uid).message}")
    entry = QueryEntry(index_uid=uid, params={k: v for k, v in q.items() if k not in ("indexUid", "federationOptions")})
    options = q.get("federationOptions")
    if options is None:
        return entry
    if not isinstance(options, dict):
        raise type_error("invalid_multi_search_federation_options", f"{where}.federationOptions", options, "an object")
    for key in options:
        if key not in ("weight", "remote", "queryPosition"):
            raise MeiliError(
                "bad_request",
                f"Unknown field `{key}` inside `{where}.federationOptions`: expected one of `weight`, `remote`, `queryPosition`",
            )
    entry.has_options = True
    weight = options.get("weight", DEFAULT_WEIGHT)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)):
        raise type_error("invalid_multi_search_weight", f"{where}.federationOptions.weight", weight, "a number")
    if weight < 0:
        raise MeiliError(
            "invalid_multi_search_weight",
            f"Invalid value at `{where}.federationOptions.weight`: the value of `weight` is invalid, "
            "expected a positive float (>= 0.0).",
        )
    entry.weight = float(weight)
    remote = options.get("remote")
    if remote is not None and not isinstance(remote, str):
        raise type_error("invalid_multi_search_remote", f"{where}.federationOptions.remote", remote, "a string")
    entry.remote = remote
    position = options.get("queryPosition")
    if not _uint_or_none(position):
        raise type_error(
            "invalid_multi_search_query_position", f"{where}.federationOptions.queryPosition", position, "a positive integer"
        )
    entry.query_position = position
    return entry


def check_entry(i: int, e: QueryEntry, *, federated: bool, federation: Federation | None) -> None:
    """1.50's checks of a decoded query before it runs (each ``Inside `.queries[i]` ``)."""
    p = e.params
    if not federated:
        if e.has_options:
            raise inside(i, MeiliError(
                "invalid_multi_search_federation_options",
                "Using `federationOptions` is not allowed in a non-federated search.\n"
                " - Hint: remove `federationOptions` from the query or add `federation` to the request.",
            ))
        return
    for key in FEDERATED_PAGINATION:
        if p.get(key) is not None:
            raise inside(i, MeiliError(
                "invalid_multi_search_query_pagination",
                "Using pagination options is not allowed in federated queries.\n"
                f" - Hint: remove `{key}` from the query or remove `federation` from the request\n"
                " - Hint: pass `federation.limit` and `federation.offset` for pagination in federated search",
            ))
    facets = p.get("facets")
    if facets:
        shown = "[" + ", ".join(json.dumps(f, ensure_ascii=False) for f in facets) + "]"
        raise inside(i, MeiliError(
            "invalid_multi_search_query_facets",
            "Using facet options is not allowed in federated queries.\n"
            " - Hint: remove `facets` from the query or remove `federation` from the request\n"
            f" - Hint: pass `federation.facetsByIndex.{e.index_uid}: {shown}` for facets in federated search",
        ))
    if p.get("personalize") is not None:
        raise inside(i, MeiliError(
            "invalid_multi_search_query_personalization",
            "Using `.personalize` is not allowed in federated queries.\n"
            " - Hint: remove `personalize` from the query or remove `federation` from the request\n"
            " - Hint: pass `federation.personalize` for personalization in federated search",
        ))
    if p.get("useNetwork") is True and e.remote is not None:
        raise inside(i, MeiliError(
            "invalid_multi_search_federation_options",
            "Using `.useNetwork` is not allowed as the same time as `.federationOptions.remote`.\n"
            "  - Hint: to perform an explicit query against a remote, remove `.useNetwork`.\n"
            "  - Hint: to automatically perform queries against the entire network, remove `.federationOptions.remote`.",
        ))
    if p.get("showPerformanceDetails") is not None:
        raise inside(i, MeiliError(
            "invalid_multi_search_query_show_performance_details",
            "Using `.showPerformanceDetails` is not allowed in federated queries.\n"
            " - Hint: remove `showPerformanceDetails` from the query or remove `federation` from the request",
        ))
    if p.get("distinct") is not None and federation is not None and federation.distinct is not None:
        raise inside(i, MeiliError(
            "invalid_multi_search_distinct",
            "Using `distinct` options is not allowed in federated queries when it also appears in `.federation.distinct`.\n"
            " - Hint: remove `distinct` from the query or remove `federation` from the request\n"
            "  - Note: `distinct` at the query level is discouraged in federated search.",
        ))
    # Miroir is the network; it has no remotes to name (1.50 without `network`).
    if e.remote is not None:
        raise inside(i, network_disabled("Performing a remote federated search"))
    if e.query_position is not None:
        raise inside(i, network_disabled("Using `federationOptions.queryPosition`"))
