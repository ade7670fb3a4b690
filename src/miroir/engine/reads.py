"""The read path: search, multi-search, facet search and document listing (design §6).

Each read is plan -> scatter -> merge:
- plan: which shards (all, or the owners of the primary keys a filter pins) and the
  sub-request each node gets (`searchplan.plan_subquery` for searches);
- scatter: `engine.scatter.scatter` (covering set, deadlines, one retry, degradation);
- merge: the pure `core.merge` / `core.facets` / `core.federation` functions.

Every function returns `(answer, headers)`; `headers` carries `X-Miroir-Degraded` when
shards were unavailable under the `partial` policy (the `error` policy raises 503).

Document listing order: insertion order, as one Meilisearch lists (its internal
document ids), from the sequence Miroir keeps with each document (`core.reserved`):
every shard's node lists its own documents in that order, and `core.merge.merge_listing`
merges them; past `DOCUMENTS_ONE_ROUND_MAX` positions, what is left of each shard follows
shard after shard (`core.merge.plan_deep_listing`). `total` is exact. The copies of a
shard need not share their order (a copy made by a rebalance takes the documents written
during the copy before the ones not copied yet), so every page of a listing reads each shard from
the same copy: the covering set comes from a fixed turn per index (`listing_affinity`)
and the same shard list in every round, and no part is hedged on another copy. The copy
changes only when the healthy nodes do (a retry after a failure is another copy too).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import msgspec
import trio
import xxhash

from miroir.core import federation as fed, hybrid, patterns, rankrules, reserved
from miroir.core.documents import check_listing_ids
from miroir.core.errors import (
    MeiliError,
    body_type_error,
    in_index,
    index_not_found,
    invalid_index_uid,
    json_kind,
    query_bool,
    query_uint,
    type_error,
    unknown_param,
    valid_index_uid,
)
from miroir.core.facets import (
    DEFAULT_MAX_VALUES_PER_FACET,
    facet_order,
    merge_facet_search,
)
from miroir.core.filter import (
    FilterError,
    and_filters,
    check_filter_shape,
    parse_filter,
    pinned_keys,
    shard_filter,
    vector_filter_error,
)
from miroir.core.merge import (
    MIROIR_FIELDS,
    _distinct_filter,
    distinct_count,
    distinct_walk_estimate,
    listed_distinct_total,
    merge_listing,
    merge_search,
    plan_deep_listing,
)
from miroir.core.model import IndexMeta
from miroir.core.reserved import SEQ_FIELDS
from miroir.core.routing import listing_affinity, shard_for_key
from miroir.core.searchplan import (
    SearchRequest,
    facet_search_params,
    finish_answer,
    hidden_field_error,
    needs_ranking_details,
    ordered_by_score,
    plan_subquery,
    request_uid as new_request_uid,
    retrieval_additions,
    rust_duration,
    search_metadata,
    search_request_from_dict,
    subquery_for_shards,
    unfilterable_error,
)
from miroir.engine import fields, foreign, frequencypin, semanticties
from miroir.engine.cluster import Cluster
from miroir.engine.doclisting import list_sorted  # sorted listings: one merge by sort values
from miroir.engine.queryvectors import with_query_vector
from miroir.engine.scatter import Gathered, merge_degraded, scatter
from miroir.engine.settings import index_settings
from miroir.engine.writes import get_document
from miroir.net.node import NodeClient

Headers = dict[str, str]

# Document pages up to this depth are fetched in one round (every shard from offset 0);
# deeper pages first ask each shard for its total (limit 0), then fetch only the windows.
DOCUMENTS_ONE_ROUND_MAX = 200
# Meilisearch's default page for GET /documents.
DEFAULT_DOCUMENTS_LIMIT = 20
DOCUMENT_PARAMS = ("offset", "limit", "fields", "retrieveVectors", "ids", "filter", "sort", "useNetwork")


# ---------------------------------------------------------------- shared helpers


def index_meta(cluster: Cluster, uid: str) -> IndexMeta:
    """The index's metadata, or Meilisearch's error for a bad or unknown uid."""
    if not valid_index_uid(uid):
        raise invalid_index_uid(uid)
    meta = cluster.state.indexes.get(uid)
    if meta is None:
        raise index_not_found(uid)
    return meta


def _faceting(settings: Mapping) -> tuple[int, dict]:
    faceting = settings.get("faceting") or {}
    max_values = faceting.get("maxValuesPerFacet", DEFAULT_MAX_VALUES_PER_FACET)
    return int(max_values), dict(faceting.get("sortFacetValuesBy") or {"*": "alpha"})


class _SearchSettings:
    """What a search reads from an index's settings, derived once per settings object.

    The journal's settings dict of an index is replaced (never modified) when settings
    change, so the derived values are cached by the dict's identity (the dict itself is
    kept, so its id cannot be reused while cached).
    """

    __slots__ = ("settings", "ranking_rules", "distinct_attribute", "max_values", "sort_values_by",
                 "max_total_hits", "filterable")

    def __init__(self, settings: Mapping):
        self.settings = settings
        self.ranking_rules = list(settings.get("rankingRules") or ())
        self.distinct_attribute = settings.get("distinctAttribute")
        self.max_values, self.sort_values_by = _faceting(settings)
        self.max_total_hits = (settings.get("pagination") or {}).get("maxTotalHits")
        self.filterable: dict[str, bool] = {}

    def is_filterable(self, attr: str) -> bool:
        known = self.filterable.get(attr)
        if known is None:
            known = self.filterable[attr] = patterns.is_filterable(self.settings.get("filterableAttributes"), attr)
        return known


_SEARCH_SETTINGS_CACHE_MAX = 256
_search_settings: dict[int, _SearchSettings] = {}


def _search_settings_of(settings: Mapping) -> _SearchSettings:
    cached = _search_settings.get(id(settings))
    if cached is not None and cached.settings is settings:
        return cached
    if len(_search_settings) >= _SEARCH_SETTINGS_CACHE_MAX:
        _search_settings.clear()
    cached = _search_settings[id(settings)] = _SearchSettings(settings)
    return cached


def pinned_shards(filter_value: Any, meta: IndexMeta) -> list[int] | None:
    """Shards a filter confines the answer to (it pins the primary key), else None.

    An unparsable filter pins nothing: the nodes answer with Meilisearch's error.
    An empty pin set (``id IN []``) still asks shard 0, so the query is validated.
    """
    if filter_value is None or not meta.primary_key or meta.split_from:
        # Mid-split (core/reshard.py) a document may still carry its parent shard's tag.
        return None
    try:
        keys = pinned_keys(parse_filter(filter_value), meta.primary_key)
    except FilterError:
        return None
    if keys is None:
        return None
    return sorted({shard_for_key(k, meta.shards) for k in keys}) or [0]


def _elapsed_ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)


def _degraded(cluster: Cluster, g: Gathered, uid: str) -> Headers:
    return g.check(cluster.config.scatter.unavailable_shard_policy, uid)


# ---------------------------------------------------------------- search


def query_affinity(req: SearchRequest) -> int:
    """A stable hash of a search without its page window (see scatter's `affinity`).

    Hits with identical ranking are ordered by the covering set (its nodes sorted by the
    lowest shard each answers for), then by each node's own order; pinning the covering
    set per query keeps that order the same from one page of the query to the next.
    """
    window_free = msgspec.structs.replace(req, offset=0, limit=0, page=None, hits_per_page=None)
    return xxhash.xxh64_intdigest(msgspec.json.encode(window_free)) & 0xFFFF_FFFF


async def search(
    cluster: Cluster, uid: str, req: SearchRequest, *, include_metadata: bool = False, request_uid: str | None = None
) -> tuple[dict, Headers]:
    """One search over every shard of `uid`, answered like one node holding them all.

    `include_metadata`: the client sent `Meili-Include-Metadata` (1.50's `metadata`);
    `request_uid`: the multi-search's own, shared by its results (else a fresh one).
    """
    started = time.perf_counter()
    meta = index_meta(cluster, uid)
    settings = index_settings(cluster, uid)
    ss = _search_settings_of(settings)
    req = await foreign.resolve(cluster, uid, req, _lister(cluster))
    refused = (
        hidden_field_error(req, ss.settings)
        or unfilterable_error(req, ss.settings, cluster.state.experimental_features)
        or vector_filter_error(req.filter, uid=uid, settings=ss.settings, features=_features(cluster))
    )
    if refused is not None:
        raise in_index(uid, refused)
    req = await with_query_vector(req, settings)  # embedded once here, not once per node
    if hybrid.is_hybrid(req):
        return await _hybrid_search(cluster, uid, req, meta, ss, started, include_metadata, request_uid)
    ranking_rules = ss.ranking_rules
    distinct_attribute = ss.distinct_attribute
    max_total_hits = ss.max_total_hits
    by_score = ordered_by_score(req, ranking_rules, _searchable_count(cluster, uid, settings))
    details = needs_ranking_details(req, by_score)
    distinct = req.distinct or distinct_attribute
    # With distinct, a node's total counts each value once *on that node*; the values
    # themselves (a facet on the distinct attribute) let the merge count them once overall.
    counted = distinct if distinct and req.ranking_score_threshold is None and ss.is_filterable(distinct) else None
    count_distinct = counted is not None
    sub_req = req
    search_on = fields.search_on(cluster, uid, req.attributes_to_search_on)  # never `_miroir_*`
    if search_on is not None:
        sub_req = msgspec.structs.replace(req, attributes_to_search_on=search_on)
    if count_distinct and distinct not in (req.facets or ()):
        sub_req = msgspec.structs.replace(sub_req, facets=[*(req.facets or ()), distinct])
    tied_embedder = semanticties.needed(req, ss.settings)
    if tied_embedder is not None:
        sub_req = msgspec.structs.replace(sub_req, retrieve_vectors=True)
    # Planned once; each node only adds its shard filter (subquery_for_shards).
    base = plan_subquery(
        sub_req,
        shards_for_node=None,
        distinct_attribute=distinct_attribute,
        facet_values_limit=ss.max_values,
        needs_details=details,
        ranking_rules=ranking_rules,
    )
    client_filter = sub_req.filter
    path = f"/indexes/{uid}/search"
    affinity = query_affinity(req)
    fp = None
    if req.matching_strategy == "frequency" and req.q:
        fp = await frequencypin.plan(cluster, meta, uid, req, ss.settings, distinct, search_on, affinity, ranking_rules)

    async def send(client: NodeClient, shards: list[int] | None, timeout_s: float) -> dict:
        body = subquery_for_shards(base, client_filter, shards)
        if fp is not None:
            strategy = await frequencypin.strategy(client, fp, timeout_s)
            if strategy == "split":
                return await frequencypin.answer_split(client, fp, body, path, timeout_s)
            body = {**body, "matchingStrategy": strategy}
        return await client.call("POST", path, json=body, timeout_s=timeout_s)

    planned = time.perf_counter()
    gathered = await scatter(cluster, meta, send, shards=pinned_shards(req.filter, meta), affinity=affinity)
    gathered_at = time.perf_counter()
    headers = _degraded(cluster, gathered, uid)
    responses = gathered.results
    node_details = [(p.node_id, p.result.pop("performanceDetails", None)) for p in gathered.parts] if req.show_performance_details else ()
    walked = None
    if counted is not None and not req.page_mode and not req.q and not req.sort and not any(":" in r for r in ranking_rules):
        # No ranking rule applies: the nodes estimate from a walk in id order, not by counting.
        walked = distinct_walk_estimate(responses, counted, req.offset + req.limit)
    distinct_total: int | None = None
    if walked is not None:
        distinct_total = walked if max_total_hits is None else min(walked, max_total_hits)
    elif counted is not None:
        distinct_total = _distinct_total(responses, counted, req, max_total_hits)
    elif distinct and req.ranking_score_threshold is None:
        distinct_total = listed_distinct_total(responses, distinct, max_total_hits)
    if distinct_total is None and distinct and not count_distinct and req.page_mode and req.ranking_score_threshold is None:
        distinct_total = await _distinct_total_by_hits(cluster, meta, req, base, path, distinct, responses, max_total_hits)
    shown = semanticties.order_by_similarity(responses, tied_embedder, req.vector or []) if tied_embedder else None
    answer = merge_search(
        req,
        ranking_rules=ranking_rules,
        node_responses=responses,
        distinct_attribute=distinct_attribute,
        max_values_per_facet=ss.max_values,
        sort_facet_values_by=ss.sort_values_by,
        processing_time_ms=_elapsed_ms(started),
        added_fields=retrieval_additions(req, distinct_attribute=distinct_attribute, ranking_rules=ranking_rules),
        max_total_hits=max_total_hits,
        by_score=by_score,
    )
    if shown is not None:
        semanticties.restore(answer["hits"], shown, keep_score=req.show_ranking_score,
                             keep_vectors=req.retrieve_vectors)
        if not req.retrieve_vectors:
            answer.pop("queryVector", None)
    if req.facets:
        reserved.strip_facets(answer)  # `["*"]` or a pattern: the nodes count `_miroir_shard`
    if distinct_total is not None:
        if req.page_mode:
            hpp = answer["hitsPerPage"]
            answer["totalHits"] = distinct_total
            answer["totalPages"] = -(-distinct_total // hpp) if hpp else 0
        else:
            answer["estimatedTotalHits"] = distinct_total
    await foreign.hydrate(cluster, uid, answer["hits"], _lister(cluster))
    finish_answer(
        answer,
        request_uid or new_request_uid(),
        search_metadata(req.q, uid, meta.primary_key) if include_metadata else None,
        performance_details(started, planned, gathered_at, time.perf_counter(), node_details)
        if req.show_performance_details
        else None,
    )
    return answer, headers


def performance_details(started: float, planned: float, gathered: float, merged: float, node_details) -> dict[str, str]:
    """1.50's `performanceDetails` for a scattered search: Miroir's own steps (`plan`,
    `scatter`, `merge`; 1.50's keys are lower-case steps joined by ` > `), then each
    node's details, its keys prefixed by ``node `<id>` > ``."""
    out = {
        "search": rust_duration(merged - started),
        "search > plan": rust_duration(planned - started),
        "search > scatter": rust_duration(gathered - planned),
        "search > merge": rust_duration(merged - gathered),
    }
    for node_id, details in node_details:
        for key, value in (details or {}).items():
            out[f"search > scatter > node `{node_id}` > {key}"] = value
    return out


def _searchable_count(cluster: Cluster, uid: str, settings: Mapping) -> int:
    """At least as many attributes as the nodes can search in `uid` (every path seen, or
    the explicit `searchableAttributes`): bounds milli's attribute rank."""
    explicit = settings.get("searchableAttributes") or ()
    return max(len(cluster.state.index_fields.get(uid, ())), len(explicit))


# Left out of the round that lists every node's distinct hits: only the set matters.
_COUNT_ROUND_DROPPED = frozenset({
    "facets", "attributesToHighlight", "attributesToCrop", "showMatchesPosition", "showRankingScore",
    "showRankingScoreDetails", "retrieveVectors", "sort", "showPerformanceDetails",
})


async def _distinct_total_by_hits(
    cluster: Cluster, meta: IndexMeta, req: SearchRequest, base: dict, path: str, attr: str,
    responses: list[dict], max_total_hits: int | None,
) -> int | None:
    """Page mode's exact `totalHits` with a distinct attribute that is not filterable
    (the index's `distinctAttribute` needs not be: no facet can list its values): a
    second round asks every node for its whole distinct hit list (its `totalHits` hits,
    within `maxTotalHits`), the attribute alone retrieved, and counts each value once.
    None when at most one node has hits: its total is exact already."""
    totals = [int(r.get("totalHits") or 0) for r in responses]
    if sum(1 for t in totals if t) <= 1:
        return None
    body = {k: v for k, v in base.items() if k not in _COUNT_ROUND_DROPPED}
    body.update(page=1, hitsPerPage=max(totals), attributesToRetrieve=[attr])

    async def send(client: NodeClient, shards: list[int] | None, timeout_s: float) -> dict:
        return await client.call("POST", path, json=subquery_for_shards(body, req.filter, shards), timeout_s=timeout_s)

    gathered = await scatter(cluster, meta, send, shards=pinned_shards(req.filter, meta), affinity=query_affinity(req))
    total = distinct_count((r.get("hits") or () for r in gathered.results), attr)
    return min(total, max_total_hits) if max_total_hits is not None else total


def _distinct_total(responses: list[dict], attr: str, req: SearchRequest, max_total_hits: int | None) -> int | None:
    """The exact distinct count over all nodes; removes the helper facet from the answers.

    A node's distinct total is (its distinct values) + (its hits without the attribute);
    its facet on the attribute lists those values. Counting the union of values once plus
    every node's hits without the attribute gives the total one node would report. A node
    at the `maxTotalHits` cap already proves the global total reaches it. A node whose
    documents never had the attribute lists no such facet (as Meilisearch): all its hits
    lack it. None when some node cannot tell (no facet distribution in its answer).
    """
    asked = req.facets is not None and attr in req.facets
    values: set[str] = set()
    without = 0
    capped = False
    ok = True
    for r in responses:
        dist = r.get("facetDistribution")
        own = None if dist is None else dist.get(attr, {})
        dist = dist or {}
        node_total = r.get("totalHits", r.get("estimatedTotalHits", 0))
        if own is None:
            ok = False
        else:
            values.update(v.lower() for v in own)
            without += max(0, node_total - len(own))
        if max_total_hits is not None and node_total >= max_total_hits:
            capped = True
        if not asked:
            dist.pop(attr, None)
            (r.get("facetStats") or {}).pop(attr, None)
            if req.facets is None:
                r.pop("facetDistribution", None)
                r.pop("facetStats", None)
    if not ok:
        return None
    # A document with several values takes them all: the count never exceeds the nodes'
    # own totals summed (one node with hits: its total is exact).
    total = min(len(values) + without, sum(int(r.get("totalHits", r.get("estimatedTotalHits", 0)) or 0) for r in responses))
    if max_total_hits is not None and (capped or total > max_total_hits):
        total = max_total_hits
    return total


# ---------------------------------------------------------------- multi-search


_kind = json_kind
_type_error = type_error


def _decode_queries(cluster: Cluster, queries: list, *, federated: bool, federation: fed.Federation | None = None):
    """Every entry of `queries` decoded (errors carry their path, as 1.50's decoder
    reports them), then checked query by query (errors ``Inside `.queries[i]` ``)."""
    entries: list[tuple[fed.QueryEntry, SearchRequest]] = []
    for i, q in enumerate(queries):
        entry = fed.decode_entry(i, q)
        try:
            req = search_request_from_dict(entry.params)
        except MeiliError as e:
            raise fed.at_query(i, e) from None
        entries.append((entry, req))
    for i, (entry, _) in enumerate(entries):
        fed.check_entry(i, entry, federated=federated, federation=federation)
        try:
            index_meta(cluster, entry.index_uid)
        except MeiliError as e:
            raise fed.inside(i, e) from None
    return entries


async def _run_all(
    cluster: Cluster,
    jobs: list[tuple[str, SearchRequest]],
    *,
    include_metadata: bool = False,
    request_uid: str | None = None,
    wrap: Callable[[int, MeiliError], MeiliError] = fed.inside,
) -> list[tuple[dict, Headers]]:
    """Run searches in parallel; the error of the first failing query (by position) wins,
    worded by `wrap` (default: `Inside .queries[i]`)."""
    results: list[Any] = [None] * len(jobs)

    async def one(i: int, uid: str, req: SearchRequest) -> None:
        try:
            results[i] = await search(cluster, uid, req, include_metadata=include_metadata, request_uid=request_uid)
        except MeiliError as e:
            results[i] = e

    async with trio.open_nursery() as nursery:
        for i, (uid, req) in enumerate(jobs):
            nursery.start_soon(one, i, uid, req)
    for i, r in enumerate(results):
        if isinstance(r, MeiliError):
            raise r if r.code.startswith("miroir_") else wrap(i, r)
    return results


async def multi_search(cluster: Cluster, body: Any, *, include_metadata: bool = False) -> tuple[dict, Headers]:
    """`POST /multi-search`: one result per query, or one federated list."""
    started = time.perf_counter()
    queries, federation = fed.multi_search_body(body)
    request_uid = new_request_uid()
    if federation is None:
        decoded = _decode_queries(cluster, queries, federated=False)
        answers = await _run_all(
            cluster, [(e.index_uid, req) for e, req in decoded], include_metadata=include_metadata, request_uid=request_uid
        )
        results = [{"indexUid": e.index_uid, **answer} for (e, _), (answer, _) in zip(decoded, answers)]
        return {"results": results}, merge_degraded(h for _, h in answers)
    return await _federated(cluster, queries, federation, started, include_metadata, request_uid)


async def _federated(
    cluster: Cluster, queries: list, federation_body: Any, started: float, include_metadata: bool, request_uid: str
) -> tuple[dict, Headers]:
    federation = fed.parse_federation(federation_body)
    decoded = _decode_queries(cluster, queries, federated=True, federation=federation)
    fed.check_facet_indexes(federation, cluster.state.indexes)
    fed.check_facet_order(
        federation,
        [entry.index_uid for entry, _ in decoded],
        lambda uid: index_settings(cluster, uid).get("filterableAttributes") or [],
        lambda uid: (index_settings(cluster, uid).get("faceting") or {}).get("sortFacetValuesBy"),
    )
    rankrules.check_compatible([
        rankrules.query_rules(i, entry.index_uid, entry.params, index_settings(cluster, entry.index_uid)["rankingRules"])
        for i, (entry, _) in enumerate(decoded)
    ])
    # 1.50 joins every query's foreign filters before any query runs; their errors name
    # no query.
    lister = _lister(cluster)
    decoded = [(entry, await foreign.resolve(cluster, entry.index_uid, req, lister)) for entry, req in decoded]
    skip, take = federation.window()
    facets_by_index = federation.facets_by_index
    jobs: list[tuple[str, SearchRequest]] = []
    facet_source: dict[str, int] = {}  # index uid -> the query whose facets it reports
    # An index several queries search shows each document once: their hits need their
    # primary key, added to the retrieved fields where the client left it out.
    queries_of: dict[str, int] = {}
    for entry, _ in decoded:
        queries_of[entry.index_uid] = queries_of.get(entry.index_uid, 0) + 1
    # 1.50 counts such an index's facets on the union of its queries' documents: each
    # query counts its own, and the documents several match are taken off again by
    # their values (named facets only: a pattern's fields are not known here).
    union_faceted = {
        uid for uid, names in facets_by_index.items()
        if queries_of.get(uid, 0) > 1 and names and not any("*" in n for n in names)
    }
    pk_added: set[int] = set()
    added_fields: dict[int, tuple[str, ...]] = {}  # fields retrieved for the merge only
    for i, (entry, req) in enumerate(decoded):
        uid = entry.index_uid
        # The details order hits of different queries (sort values, core/fedscores.py)
        # and mark semantic ones (`vectorSort`).
        changes: dict[str, Any] = {
            "show_ranking_score": True, "show_ranking_score_details": True, "show_performance_details": False,
        }
        pk = cluster.state.indexes[uid].primary_key if queries_of[uid] > 1 else None
        wanted = req.attributes_to_retrieve
        if pk and wanted is not None and "*" not in wanted and pk not in wanted:
            changes["attributes_to_retrieve"] = [*wanted, pk]
            pk_added.add(i)
        if federation.page_mode:
            # Page mode gives every query's exact total (1.50 counts exhaustively there).
            changes.update(page=1, hits_per_page=skip + take)
        else:
            changes.update(offset=0, limit=skip + take)
        extra = fed.distinct_fields(federation, uid)
        if federation.distinct is not None:
            changes["distinct"] = federation.distinct
        if uid in union_faceted:
            changes["facets"] = list(facets_by_index[uid] or ())
            extra = list(dict.fromkeys([*extra, *(facets_by_index[uid] or ())]))
        for attr in extra:
            retrieve = fed.retrieval_with(changes.get("attributes_to_retrieve", wanted), attr)
            if retrieve is not None:
                changes["attributes_to_retrieve"] = retrieve
                added_fields[i] = (*added_fields.get(i, ()), attr)
        if uid in facets_by_index and uid not in facet_source:
            facet_source[uid] = i
            if facets_by_index[uid]:
                changes["facets"] = list(facets_by_index[uid] or ())
        jobs.append((uid, msgspec.structs.replace(req, **changes)))
    for uid, facets in facets_by_index.items():
        if uid not in facet_source:  # an index no query uses: 1.50 still computes its facets
            facet_source[uid] = len(jobs)
            jobs.append((uid, SearchRequest(limit=0, facets=list(facets) if facets else None)))
    facet_jobs = {i: uid for uid, i in facet_source.items()}

    def wrap(i: int, e: MeiliError) -> MeiliError:
        if i in facet_jobs:
            return fed.facets_error(facet_jobs[i], e, i if i < len(decoded) else None)
        return fed.inside(i, e)

    answers = await _run_all(cluster, jobs, wrap=wrap)
    if federation.personalize is not None:
        raise fed.personalization_disabled()  # after the searches, as 1.50 reranks their merge

    def primary_key(uid: str) -> str | None:
        return cluster.state.indexes[uid].primary_key if queries_of[uid] > 1 else None

    per_query = [
        fed.FederatedQuery(
            index_uid=entry.index_uid,
            hits=answer["hits"],
            weight=entry.weight,
            estimated_total_hits=answer.get("totalHits", answer.get("estimatedTotalHits", 0)),
            show_ranking_score=req.show_ranking_score,
            show_ranking_score_details=req.show_ranking_score_details,
            semantic=req.hybrid is not None or req.vector is not None,
            added_fields=added_fields.get(i, ()),
            retrieve_vectors=req.retrieve_vectors,
            query_vector=answer.get("queryVector"),
            doc_ids=fed.hit_document_ids(
                answer["hits"],
                primary_key(entry.index_uid),
                added=i in pk_added,
                formatted=[a.split(":", 1)[0] for a in (*(req.attributes_to_highlight or ()), *(req.attributes_to_crop or ()))],
            ),
        )
        for i, ((entry, req), (answer, _)) in enumerate(zip(decoded, answers))
    ]
    # Each query's documents with their facet values, read before the merge strips them.
    known: dict[int, dict[Any, dict]] = {}
    for i, q in enumerate(per_query):
        if q.index_uid in union_faceted and q.doc_ids is not None:
            names = facets_by_index[q.index_uid] or ()
            known[i] = {d: fed.facet_fields(h, names) for d, h in zip(q.doc_ids, q.hits)}
    await _federated_documents(
        cluster, decoded, jobs, per_query, known, facets_by_index, union_faceted, page_mode=federation.page_mode
    )
    merged = fed.merge_hits(per_query, federation)
    index_facets = {
        uid: fed.IndexFacets(
            distribution=answers[i][0].get("facetDistribution") or {},
            stats=answers[i][0].get("facetStats") or {},
        )
        for uid, i in facet_source.items()
    }
    for uid in union_faceted:
        max_values, order = _faceting(index_settings(cluster, uid))
        index_facets[uid] = fed.union_facets(
            [
                (fed.IndexFacets(distribution=a.get("facetDistribution") or {}, stats=a.get("facetStats") or {}),
                 known.get(i, {}))
                for i, (q, (a, _)) in enumerate(zip(per_query, answers))
                if q.index_uid == uid
            ],
            merged.dropped.get(uid, set()),
            sort_facet_values_by=order,
            max_values=max_values,
        )
    metadata = None
    if include_metadata:
        metadata = [
            search_metadata(req.q, entry.index_uid, cluster.state.indexes[entry.index_uid].primary_key)
            for entry, req in decoded
        ]
    merging = time.perf_counter()
    out = fed.merge_federated(
        per_query,
        processing_time_ms=_elapsed_ms(started),
        index_facets=index_facets or None,
        merge_facets=federation.merge_facets,
        sort_facet_values_by=fed.merged_facet_order(
            federation, lambda uid: (index_settings(cluster, uid).get("faceting") or {}).get("sortFacetValuesBy")
        ),
        federation=federation,
        request_uid=request_uid,
        metadata=metadata,
        merged=merged,
    )
    if federation.show_performance_details:
        out["performanceDetails"] = fed.performance_details(started, merging, time.perf_counter())
    return out, merge_degraded(h for _, h in answers)


async def _federated_documents(
    cluster: Cluster,
    decoded: list,
    jobs: list[tuple[str, SearchRequest]],
    per_query: list[fed.FederatedQuery],
    known: dict[int, dict[Any, dict]],
    facets_by_index: Mapping[str, list[str] | None],
    union_faceted: set[str],
    *,
    page_mode: bool,
) -> None:
    """The exact union of an index's queries (1.50 counts each index's candidates as one
    set, in either pagination mode): a query of an index several queries search whose
    window left some of its documents out is asked again for all of them (`maxTotalHits`
    at most, in page mode so that the nodes count them all), primary key and facet
    fields alone; they become its `candidates` (and `known` facet values). Only a
    federated search with several queries of one index pays for this round."""
    again: list[tuple[int, str, SearchRequest]] = []
    for i, q in enumerate(per_query):
        pk = cluster.state.indexes[q.index_uid].primary_key
        if not pk or q.doc_ids is None or len(q.doc_ids) >= q.estimated_total_hits:
            continue
        if q.semantic and not page_mode:
            # A semantic query's estimate is not a candidate set to list: the nodes
            # answer it from their own semantic window (the devnode as 1.50).
            continue
        if sum(1 for x in per_query if x.index_uid == q.index_uid) < 2:
            continue
        cap = (index_settings(cluster, q.index_uid).get("pagination") or {}).get("maxTotalHits")
        count = q.estimated_total_hits if cap is None else min(q.estimated_total_hits, cap)
        names = list(facets_by_index.get(q.index_uid) or ()) if q.index_uid in union_faceted else []
        req = msgspec.structs.replace(
            jobs[i][1], page=1, hits_per_page=count, attributes_to_retrieve=list(dict.fromkeys([pk, *names])),
            facets=None, attributes_to_highlight=None, attributes_to_crop=None, show_matches_position=False,
            show_ranking_score=False, show_ranking_score_details=False, retrieve_vectors=False,
        )
        again.append((i, pk, req))
    if not again:
        return
    answers = await _run_all(cluster, [(per_query[i].index_uid, req) for i, _, req in again])
    for (i, pk, _req), (answer, _) in zip(again, answers):
        hits = answer.get("hits") or []
        if any(pk not in h for h in hits):
            continue
        per_query[i].candidates = frozenset(h[pk] for h in hits)
        if i in known:
            facet_names = facets_by_index.get(per_query[i].index_uid) or ()
            known[i] = {h[pk]: fed.facet_fields(h, facet_names) for h in hits}


# ---------------------------------------------------------------- facet search


async def facet_search(cluster: Cluster, uid: str, body: Any) -> tuple[dict, Headers]:
    """`POST /indexes/{uid}/facet-search`: counts summed per value over the covering set."""
    started = time.perf_counter()
    meta = index_meta(cluster, uid)
    body = facet_search_params(body)  # 1.50's checks; ignored fields and `useNetwork` dropped
    settings = index_settings(cluster, uid)
    max_values, sort_values_by = _faceting(settings)
    client_filter = body.get("filter")
    filterable = settings.get("filterableAttributes") or ()
    refused = reserved.facet_name_error(body.get("facetName"), filterable) or reserved.filter_error(client_filter, filterable)
    if refused is not None:
        raise refused
    search_on = fields.search_on(cluster, uid, body.get("attributesToSearchOn"))  # never `_miroir_*`

    async def send(client: NodeClient, shards: list[int] | None, timeout_s: float) -> dict:
        sub = dict(body)
        if search_on is not None:
            sub["attributesToSearchOn"] = search_on
        if shards is not None:
            sub["filter"] = and_filters(client_filter, shard_filter(shards))
        return await client.call("POST", f"/indexes/{uid}/facet-search", json=sub, timeout_s=timeout_s)

    gathered = await scatter(cluster, meta, send, shards=pinned_shards(client_filter, meta))
    headers = _degraded(cluster, gathered, uid)
    name = body.get("facetName")
    answer = merge_facet_search(
        gathered.results,
        facet_query=body.get("facetQuery"),
        order=facet_order(sort_values_by, name if isinstance(name, str) else ""),
        max_values=max_values,
        processing_time_ms=_elapsed_ms(started),
    )
    return answer, headers


# ---------------------------------------------------------------- documents


class DocumentsQuery(msgspec.Struct, omit_defaults=True, rename="camel"):
    """GET /documents parameters and POST /documents/fetch body, validated."""

    offset: int = 0
    limit: int = DEFAULT_DOCUMENTS_LIMIT
    fields: list[str] | None = None
    filter: str | list | None = None
    ids: list[str | int] | None = None
    retrieve_vectors: bool | None = None
    sort: list[str] | None = None  # 1.50; `useNetwork` is accepted and dropped (Miroir is the network)


def documents_query_from_params(params: Mapping[str, str]) -> DocumentsQuery:
    """GET /indexes/{uid}/documents query string -> DocumentsQuery (Meilisearch's errors)."""
    q = DocumentsQuery()
    for name, value in params.items():
        if name in ("offset", "limit"):
            setattr(q, name, query_uint(f"invalid_document_{name}", name, value))
        elif name == "fields":
            q.fields = [p.strip() for p in value.split(",") if p.strip()]
        elif name == "filter":
            q.filter = value
        elif name == "ids":
            q.ids = [p.strip() for p in value.split(",") if p.strip()]
            check_listing_ids(q.ids)
        elif name == "retrieveVectors":
            q.retrieve_vectors = query_bool("invalid_document_retrieve_vectors", name, value)
        elif name == "sort":
            q.sort = [p.strip() for p in value.split(",") if p.strip()]
        elif name == "useNetwork":
            query_bool("invalid_document_use_network", name, value)
        else:
            raise unknown_param(name, DOCUMENT_PARAMS)
    return q


def documents_query_from_body(body: Any) -> DocumentsQuery:
    """POST /indexes/{uid}/documents/fetch body -> DocumentsQuery (Meilisearch's errors)."""
    if not isinstance(body, dict):
        raise body_type_error(body)
    for name, value in body.items():
        code = "invalid_document_" + "".join("_" + c.lower() if c.isupper() else c for c in name)
        if name in ("offset", "limit"):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise _type_error(code, f".{name}", value, "a positive integer")
        elif name in ("fields", "ids", "sort"):
            if value is not None and not isinstance(value, list):
                raise _type_error(code, f".{name}", value, "an array")
            for i, v in enumerate(value or () if name != "ids" else ()):
                if not isinstance(v, str):
                    raise _type_error(code, f".{name}[{i}]", v, "a string")
        elif name == "filter":
            check_filter_shape(value, code)
        elif name == "retrieveVectors":
            if not isinstance(value, bool):
                raise _type_error(code, ".retrieveVectors", value, "a boolean")
        elif name == "useNetwork":
            if value is not None and not isinstance(value, bool):
                raise _type_error(code, ".useNetwork", value, "a boolean")
        else:
            listed = ", ".join(f"`{p}`" for p in DOCUMENT_PARAMS)
            raise MeiliError("bad_request", f"Unknown field `{name}`: expected one of {listed}")
    check_listing_ids(body.get("ids"))  # any JSON values decode (1.50: `Vec<Value>`), then each is checked
    return msgspec.convert({k: v for k, v in body.items() if v is not None and k != "useNetwork"}, DocumentsQuery)


async def list_documents(cluster: Cluster, uid: str, query: DocumentsQuery) -> tuple[dict, Headers]:
    """A global page of documents with an exact `total` (order: see module docstring)."""
    meta = index_meta(cluster, uid)
    settings = index_settings(cluster, uid)
    refused = reserved.filter_error(query.filter, settings.get("filterableAttributes") or (), "invalid_document_filter")
    if refused is not None:
        raise refused
    if query.sort:
        return await list_sorted(cluster, uid, meta, query, settings)
    offset, limit = query.offset, query.limit
    shards: list[int] | None = None
    if query.ids is not None and meta.split_from:
        shards = None  # mid-split: a document may still carry its parent shard's tag
    elif query.ids is not None:
        shards = sorted({shard_for_key(i, meta.shards) for i in query.ids if _valid_key(i)}) or [0]
    else:
        shards = pinned_shards(query.filter, meta)
    base = msgspec.to_builtins(query)
    if query.fields is not None and "*" not in query.fields:
        base["fields"] = [*query.fields, *SEQ_FIELDS]  # the order's key; stripped by the merge

    def sender(windows: dict[int, tuple[int, int]] | None, default_limit: int, fields: list[str] | None = None):
        async def send(client: NodeClient, ss: list[int] | None, timeout_s: float) -> dict:
            assert (ss is not None and len(ss) == 1) or meta.shards == 1
            s = ss[0] if ss is not None else 0
            if windows is not None and s not in windows:
                return {"results": [], "offset": 0, "total": 0, "_shard": s}
            off, lim = windows[s] if windows is not None else (0, default_limit)
            body = dict(base, offset=off, limit=lim)
            if fields is not None:
                body["fields"] = fields
            body["filter"] = and_filters(query.filter, f"_miroir_shard = {s}")
            page = await client.call("POST", f"/indexes/{uid}/documents/fetch", json=body, timeout_s=timeout_s)
            page["_shard"] = s
            return page

        return send

    affinity = listing_affinity(uid)

    async def gather(send: Any) -> Any:
        return await scatter(cluster, meta, send, shards=shards, per_shard=True, affinity=affinity, hedge=False)

    headers_list: list[Headers] = []
    if offset + limit <= DOCUMENTS_ONE_ROUND_MAX:
        g = await gather(sender(None, offset + limit))
        headers_list.append(_degraded(cluster, g, uid))
        by_shard = {p["_shard"]: p for p in g.results}
        return merge_listing([by_shard[s] for s in sorted(by_shard)], offset=offset, limit=limit), merge_degraded(headers_list)
    # Round 1: each shard's total and the sequences of its first documents; round 2:
    # only the windows the page overlaps (merge.plan_deep_listing).
    g = await gather(sender(None, DOCUMENTS_ONE_ROUND_MAX, list(SEQ_FIELDS)))
    headers_list.append(_degraded(cluster, g, uid))
    by_shard = {p["_shard"]: p for p in g.results}
    ordered = sorted(by_shard)
    order, wanted = plan_deep_listing(
        [by_shard[s].get("results") or [] for s in ordered], [by_shard[s].get("total", 0) for s in ordered],
        depth=DOCUMENTS_ONE_ROUND_MAX, offset=offset, limit=limit,
    )
    windows = {ordered[i]: w for i, w in wanted.items()}
    fetched: dict[int, dict] = {}
    if windows:
        # Planned over the same shards as round 1 (so each comes from the same copy);
        # shards outside the page are answered without asking their node.
        g2 = await gather(sender(windows, 0))
        headers_list.append(_degraded(cluster, g2, uid))
        fetched = {p["_shard"]: p for p in g2.results}
    results = []
    for i, r in order:
        s = ordered[i]
        docs = (fetched.get(s) or {}).get("results") or []
        k = r - windows[s][0]
        if k < len(docs):  # a shard that shrank between the rounds has fewer
            results.append(docs[k])
    page = merge_listing([{"results": results}], offset=0, limit=len(results))  # strips `_miroir_*`
    total = sum(by_shard[s].get("total", 0) for s in ordered)  # round 1's, as the positions
    return {"results": page["results"], "offset": offset, "limit": limit, "total": total}, merge_degraded(headers_list)


def _valid_key(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


# --- vector search ------------------------------------------------------------------------


async def _hybrid_search(
    cluster: Cluster, uid: str, req: SearchRequest, meta: IndexMeta, ss: _SearchSettings, started: float,
    include_metadata: bool, request_uid: str | None,
) -> tuple[dict, Headers]:
    """A hybrid search as one node would answer it (core/hybrid.py): its keyword and its
    semantic halves each searched across the shards and merged exactly, then combined."""
    offset, limit = req.window()
    if ss.max_total_hits is not None:
        offset = min(offset, ss.max_total_hits)
        limit = min(limit, ss.max_total_hits - offset)
    pk = meta.primary_key
    distinct = req.distinct or ss.distinct_attribute
    wanted = req.attributes_to_retrieve
    added: list[str] = []
    if wanted is not None and "*" not in wanted:
        added = [f for f in dict.fromkeys([pk, distinct]) if f and f not in wanted]
    side = dict(
        offset=0, limit=offset + limit, page=None, hits_per_page=None, show_ranking_score=True,
        show_ranking_score_details=True, show_performance_details=False,
        attributes_to_retrieve=None if wanted is None else [*wanted, *added],
    )
    keyword_req = msgspec.structs.replace(req, hybrid=None, vector=None, **side)
    semantic_req = msgspec.structs.replace(req, hybrid={**(req.hybrid or {}), "semanticRatio": 1.0}, **side)
    answers: dict[str, Any] = {}

    async def run(name: str, r: SearchRequest) -> None:
        try:
            answers[name] = await search(cluster, uid, r)
        except MeiliError as e:
            answers[name] = e

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run, "keyword", keyword_req)
        nursery.start_soon(run, "semantic", semantic_req)
    headers: Headers = {}
    for name in ("keyword", "semantic"):
        got = answers[name]
        if isinstance(got, MeiliError):
            # milli answers the keyword results when the query cannot be embedded
            if name == "semantic" and got.code == "vector_embedding_error":
                answers[name] = None
                continue
            raise got
        headers.update(got[1])
        answers[name] = got[0]
    keep = _distinct_filter(distinct) if distinct else None
    page, total, source, semantic_hits = hybrid.combine(
        answers["keyword"], answers["semantic"], ratio=hybrid.semantic_ratio(req), offset=offset, limit=limit,
        identity=(lambda h: str(h.get(pk))) if pk else (lambda h: id(h)), keep=keep,
    )
    if semantic_hits and answers["semantic"] is not None:
        await _format_semantic_hits(cluster, uid, meta, ss, msgspec.structs.replace(req, **side), page,
                                    answers["keyword"], answers["semantic"])
    for h in page:
        for f in added:
            h.pop(f, None)
        if not req.show_ranking_score:
            h.pop(hybrid.SCORE, None)
        if not req.show_ranking_score_details:
            h.pop(hybrid.DETAILS, None)
    out: dict[str, Any] = {"hits": page, "query": req.q or ""}
    if "queryVector" in source:  # present when the semantic search took part (retrieveVectors)
        out["queryVector"] = source["queryVector"]
    out["processingTimeMs"] = _elapsed_ms(started)
    if ss.max_total_hits is not None:
        total = min(total, ss.max_total_hits)
    if req.page_mode:
        _, hpp = req.page_window()
        out.update(hitsPerPage=hpp, page=req.page_window()[0], totalPages=-(-total // hpp) if hpp else 0,
                   totalHits=total)
    else:
        out.update(limit=req.limit, offset=req.offset, estimatedTotalHits=total)
    for key in ("facetDistribution", "facetStats"):
        if key in source:
            out[key] = source[key]
    out["semanticHitCount"] = semantic_hits
    finish_answer(
        out,
        request_uid or new_request_uid(),
        search_metadata(req.q, uid, meta.primary_key) if include_metadata else None,
        None,
    )
    return out, headers


_FORMAT_KEYS = ("_formatted", "_matchesPosition")


def _lister(cluster: Cluster) -> foreign.Lister:
    """The document join's read path: a documents listing of an index (ids or filter)."""

    async def lister(uid: str, filter_value: str | None, ids: list[str] | None, limit: int) -> dict:
        answer, _ = await list_documents(cluster, uid, DocumentsQuery(limit=limit, filter=filter_value, ids=list(ids) if ids is not None else None))
        return answer

    return lister


def _features(cluster: Cluster) -> frozenset[str]:
    return frozenset(name for name, on in cluster.state.experimental_features.items() if on)


async def _format_semantic_hits(
    cluster: Cluster, uid: str, meta: IndexMeta, ss: _SearchSettings, hybrid_req: SearchRequest, page: list[dict],
    keyword: dict, semantic: dict,
) -> None:
    """Semantic hits highlighted as a node's hybrid answer highlights them: with the
    keyword query's matching words (milli's merged result keeps the keyword search's),
    which the semantic half (`semanticRatio` 1, no matching words) did not use. A hit
    the keyword half also found takes its formatting from there; the others from their
    shards' own hybrid search (`hybrid_req`: the user's ratio, `offset + limit` hits from
    0), where they rank no lower than in the whole index, hence are on its page."""
    if not (hybrid_req.attributes_to_highlight or hybrid_req.attributes_to_crop or hybrid_req.show_matches_position):
        return
    pk = meta.primary_key
    if not pk:
        return
    from_semantic = {id(h) for h in semantic.get("hits") or []}
    twins = {str(h.get(pk)): h for h in keyword.get("hits") or []}
    missing: dict[str, dict] = {}
    for h in page:
        if id(h) not in from_semantic:
            continue
        twin = twins.get(str(h.get(pk)))
        if twin is None:
            missing[str(h.get(pk))] = h
            continue
        for key in _FORMAT_KEYS:
            if key in twin:
                h[key] = twin[key]
    if not missing:
        return
    req = msgspec.structs.replace(hybrid_req, show_ranking_score=False, show_ranking_score_details=False, facets=None)
    base = plan_subquery(req, shards_for_node=None, distinct_attribute=ss.distinct_attribute,
                         facet_values_limit=ss.max_values, needs_details=False, ranking_rules=ss.ranking_rules)
    path = f"/indexes/{uid}/search"

    async def send(client: NodeClient, shards: list[int] | None, timeout_s: float) -> dict:
        return await client.call("POST", path, json=subquery_for_shards(base, req.filter, shards), timeout_s=timeout_s)

    shards = sorted({shard_for_key(k, meta.shards) for k in missing})
    gathered = await scatter(cluster, meta, send, shards=shards)
    for answer in gathered.results:
        for got in answer.get("hits") or []:
            twin = missing.get(str(got.get(pk)))
            if twin is None:
                continue
            for key in _FORMAT_KEYS:
                value = got.get(key)
                if isinstance(value, dict):
                    for field in MIROIR_FIELDS:  # the node's own answer: Miroir's fields in it
                        value.pop(field, None)
                    twin[key] = value


async def similar(cluster: Cluster, uid: str, body: dict) -> tuple[dict, Headers]:
    """`/similar` across shards: the reference document's embedding read from an owner of
    its shard, then a semantic search of every shard for one more hit than the page,
    from which the reference document itself is dropped (it is its own nearest)."""
    started = time.perf_counter()
    meta = index_meta(cluster, uid)
    settings = index_settings(cluster, uid)
    name = body["embedder"]
    embedders = settings.get("embedders") or {}
    if not isinstance(embedders, dict) or name not in embedders:
        raise MeiliError("invalid_similar_embedder", f"Cannot find embedder with name `{name}`.")
    doc_id = str(body["id"])
    try:
        doc = await get_document(cluster, uid, doc_id, None, "true")
    except MeiliError as e:
        if e.code == "document_not_found":
            raise MeiliError("not_found_similar_id", f"Document `{doc_id}` not found.") from None
        raise
    embeddings = ((doc.get("_vectors") or {}).get(name) or {}).get("embeddings") or []
    if not embeddings:
        raise MeiliError("not_found_similar_id", f"Document `{doc_id}` not found.")
    refused = vector_filter_error(body.get("filter"), uid=uid, settings=settings, features=_features(cluster),
                                  code="invalid_similar_filter")
    if refused is not None:
        raise refused
    pk = meta.primary_key or ""
    offset = body.get("offset", 0)
    limit = body.get("limit", 20)
    wanted = body.get("attributesToRetrieve")
    add_pk = wanted is not None and "*" not in wanted and pk not in wanted
    raw: dict[str, Any] = {
        "vector": embeddings[0], "hybrid": {"embedder": name, "semanticRatio": 1.0},
        "offset": 0, "limit": offset + limit + 1, "showRankingScore": True,
    }
    for key in ("filter", "retrieveVectors", "showRankingScoreDetails", "rankingScoreThreshold"):
        if body.get(key) is not None:
            raw[key] = body[key]
    if wanted is not None:
        raw["attributesToRetrieve"] = [*wanted, pk] if add_pk else wanted
    answer, headers = await search(cluster, uid, search_request_from_dict(raw))
    hits = answer.get("hits") or []
    total = answer.get("estimatedTotalHits", 0)
    kept = [h for h in hits if str(h.get(pk)) != doc_id]
    if len(kept) < len(hits):
        total -= 1
    page = kept[offset:offset + limit]
    for h in page:
        if add_pk:
            h.pop(pk, None)
        if not body.get("showRankingScore"):
            h.pop("_rankingScore", None)
    out = {"hits": page, "id": doc_id, "processingTimeMs": _elapsed_ms(started), "limit": limit,  # 1.50: a string
           "offset": offset, "estimatedTotalHits": total}
    if body.get("showPerformanceDetails") is True:
        out["performanceDetails"] = {"similar": rust_duration(time.perf_counter() - started)}
    return out, headers
