"""Search speaks Meilisearch 1.50 (issue 13, items 1 and 6): Miroir over 2 devnodes
(4 shards) compared with one devnode, and both with answers from 1.50's own tests
(`crates/meilisearch/tests/search/{errors,metadata,multi/mod}.rs`, `tests/content_type.rs`).

Covered: `/version`; the 1.50 field lists (POST, GET, multi-search queries, the
federation object, facet search's ignored fields); `requestUid`, `metadata` with
`Meili-Include-Metadata`, `performanceDetails`; federation page mode with exact totals
and federation `distinct`; `_formatted` holding highlighted attributes that are not
retrieved; 415 on the search routes; `semanticHitCount` counted on the returned page.
"""

from __future__ import annotations

import gzip
import uuid
from collections.abc import Iterator

import httpx
import pytest

from miroir.core.merge import merge_search
from miroir.core.searchplan import SearchRequest
from tests.support.pairs import devnode_and_miroir, index_with

GENRES = ["drama", "comedy", "horror", "action"]
DOCS = [
    {"id": i, "title": f"{['blue', 'red', 'green'][i % 3]} movie number {i}", "genre": GENRES[i % 4],
     "overview": f"a long story about a {['dog', 'cat', 'bird'][i % 3]} and a glass", "year": 1990 + i % 20}
    for i in range(120)
]
SETTINGS = {"filterableAttributes": ["genre", "year"], "sortableAttributes": ["year"]}


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[httpx.Client, httpx.Client]]:
    """(one devnode, Miroir over 2 devnodes), both holding `ca` and `cb`."""
    with devnode_and_miroir(nodes=2, shards=4) as (one, many):
        for client in (one, many):
            for uid in ("ca", "cb"):
                index_with(client, uid, DOCS, SETTINGS)
        yield one, many


def _both(pair, method: str, path: str, **kw) -> tuple[httpx.Response, httpx.Response]:
    one, many = pair
    return one.request(method, path, **kw), many.request(method, path, **kw)


def _is_uuid7(text: str) -> bool:
    return uuid.UUID(text).version == 7


def _comparable(answer: dict) -> dict:
    """An answer without what may differ: timing, uids, and hits (this corpus is full of
    ties, which one node and Miroir cut differently; tests/integration/test_reads.py compares hits)."""
    out = {k: v for k, v in answer.items() if k not in ("processingTimeMs", "requestUid", "performanceDetails", "hits")}
    if "metadata" in out:
        meta = out["metadata"]
        out["metadata"] = [dict(m, queryUid="*") for m in meta] if isinstance(meta, list) else dict(meta, queryUid="*")
    return out


def test_version_is_1_50(pair):
    for r in _both(pair, "GET", "/version"):
        assert r.status_code == 200 and r.json()["pkgVersion"] == "1.50.0"
        assert list(r.json()) == ["commitSha", "commitDate", "pkgVersion"]


def test_request_uid_and_metadata(pair):
    # tests/search/metadata.rs: `requestUid` always; `metadata` only for `true`/`1`.
    for headers, with_meta in (({}, False), ({"Meili-Include-Metadata": "false"}, False),
                               ({"Meili-Include-Metadata": "true"}, True), ({"Meili-Include-Metadata": "1"}, True)):
        a, b = _both(pair, "POST", "/indexes/ca/search", json={"q": "glass", "limit": 3}, headers=headers)
        assert a.status_code == b.status_code == 200, b.text
        for x in (a.json(), b.json()):
            assert _is_uuid7(x["requestUid"])
            assert ("metadata" in x) is with_meta
            keys = list(x)
            assert keys[keys.index("estimatedTotalHits") + 1] == "requestUid"
            if with_meta:
                assert list(x["metadata"]) == ["query", "queryUid", "indexUid", "primaryKey"]
                assert x["metadata"]["query"] == "glass" and x["metadata"]["primaryKey"] == "id"
                assert _is_uuid7(x["metadata"]["queryUid"])
        assert _comparable(a.json()) == _comparable(b.json())
    # A placeholder search names no query; GET reads the header too.
    a, b = _both(pair, "GET", "/indexes/ca/search?limit=1", headers={"Meili-Include-Metadata": "TRUE"})
    for x in (a.json(), b.json()):
        assert list(x["metadata"]) == ["queryUid", "indexUid", "primaryKey"]
    # multi-search: every result has the request's uid and its own metadata.
    body = {"queries": [{"indexUid": "ca", "q": "red"}, {"indexUid": "cb", "q": "dog"}]}
    a, b = _both(pair, "POST", "/multi-search", json=body, headers={"Meili-Include-Metadata": "true"})
    for x in (a.json(), b.json()):
        assert {r["requestUid"] for r in x["results"]} == {x["results"][0]["requestUid"]}
        assert [r["metadata"]["indexUid"] for r in x["results"]] == ["ca", "cb"]
    assert [_comparable(r) for r in a.json()["results"]] == [_comparable(r) for r in b.json()["results"]]


def test_new_fields_accepted_and_refused_as_1_50(pair):
    one, many = pair
    # showPerformanceDetails: Miroir's own steps, with each node's.
    a, b = _both(pair, "POST", "/indexes/ca/search", json={"q": "red", "showPerformanceDetails": True})
    assert a.status_code == b.status_code == 200
    for x in (a.json(), b.json()):
        assert isinstance(x["performanceDetails"], dict) and x["performanceDetails"]
        assert list(x)[-1] == "performanceDetails"
    assert {"search", "search > scatter", "search > merge"} <= set(b.json()["performanceDetails"])
    assert any(k.startswith("search > scatter > node `") for k in b.json()["performanceDetails"])
    # useNetwork: Miroir is the network (accepted, never forwarded); a node without the
    # `network` feature refuses it, as 1.50 does.
    r = many.post("/indexes/ca/search", json={"q": "red", "useNetwork": True})
    assert r.status_code == 200, r.text
    r = many.get("/indexes/ca/search", params={"q": "red", "useNetwork": "false"})
    assert r.status_code == 200, r.text
    r = one.post("/indexes/ca/search", json={"q": "red", "useNetwork": True})
    assert r.status_code == 400 and r.json()["code"] == "feature_not_enabled"
    assert r.json()["message"] == ("passing `useNetwork` in a search query requires enabling the `network` experimental "
                                   "feature. See https://github.com/orgs/meilisearch/discussions/805")
    # Forwarded untouched: what 1.50 answers without a personalization key or `hybrid`.
    cases = [
        ({"q": "red", "personalize": {"userContext": "likes dogs"}}, 400, "feature_not_enabled"),
        ({"q": "red", "personalize": {}}, 400, "invalid_search_personalize"),
        ({"q": "red", "media": {"image": "x"}}, 400, "missing_search_hybrid"),
        ({"q": "red", "useNetwork": "yes"}, 400, "invalid_search_use_network"),
        ({"q": "red", "showPerformanceDetails": 1}, 400, "invalid_search_show_performance_details"),
        ({"q": "red", "doggo": 1}, 400, "bad_request"),
    ]
    for body, status, code in cases:
        a, b = _both(pair, "POST", "/indexes/ca/search", json=body)
        assert (b.status_code, b.json()) == (a.status_code, a.json())
        assert (a.status_code, a.json()["code"]) == (status, code), (body, a.text)
    assert a.json()["message"].startswith(
        "Unknown field `doggo`: expected one of `q`, `offset`, `limit`, `page`, `hitsPerPage`, `attributesToRetrieve`, "
        "`attributesToCrop`, `cropLength`, `cropMarker`, `attributesToHighlight`, ")
    assert a.json()["message"].endswith("`media`, `personalize`, `useNetwork`, `showRankingScore`, "
                                        "`showRankingScoreDetails`, `showPerformanceDetails`")
    # tests/search/errors.rs snapshot.
    r = many.post("/indexes/ca/search", json={"q": "the", "personalize": {}})
    assert r.json()["message"] == "Missing field `userContext` inside `.personalize`"
    # GET: 1.50's parameter names and texts.
    for query, code, message in (
        ("vector=1,2", "missing_search_hybrid", "`hybridEmbedder` is mandatory when `vector` is present"),
        ("hybridSemanticRatio=0.5", "invalid_search_hybrid_query",
         "`hybridEmbedder` is mandatory when `hybridSemanticRatio` is present"),
        ("rankingScoreThreshold=2", "invalid_search_ranking_score_threshold",
         "Invalid value in parameter `rankingScoreThreshold`: the value of `rankingScoreThreshold` is invalid, "
         "expected a float between `0.0` and `1.0`."),
        ("retrieveVectors=", "invalid_search_retrieve_vectors",
         "Invalid value in parameter `retrieveVectors`: could not parse `` as a boolean, expected either `true` or `false`"),
    ):
        a, b = _both(pair, "GET", f"/indexes/ca/search?{query}")
        assert (b.status_code, b.json()) == (a.status_code, a.json())
        assert (a.json()["code"], a.json()["message"]) == (code, message)


def test_formatted_holds_highlighted_attributes_not_retrieved(pair):
    body = {"q": "glass", "attributesToRetrieve": ["id"], "attributesToHighlight": ["overview"], "limit": 5,
            "sort": ["year:asc"]}
    a, b = _both(pair, "POST", "/indexes/ca/search", json=body)
    assert a.status_code == b.status_code == 200, b.text
    for x in (a.json(), b.json()):
        for h in x["hits"]:
            assert set(h) == {"id", "_formatted"}
            assert "<em>glass</em>" in h["_formatted"]["overview"]
            assert "year" not in h["_formatted"]  # added by Miroir for the merge only
    assert _comparable(a.json()) == _comparable(b.json())


def test_federation_counts_the_union_of_an_index_s_queries(pair):
    """1.50 counts a document two queries of one index match once, in the total and in
    the index's facets: `red` (40 documents) and `drama` (30, 10 of them red) make 60 in
    `ca`, `dog` 40 in `cb`. Miroir sees every id when the window holds them all, and
    asks again for the ids of a query whose window does not (`limit: 5`)."""
    queries = [{"indexUid": "ca", "q": "red"}, {"indexUid": "ca", "q": "drama"}, {"indexUid": "cb", "q": "dog"}]
    genres = {"action": 10, "comedy": 10, "drama": 30, "horror": 10}
    for federation, key in (({"hitsPerPage": 1}, "totalHits"), ({"page": 0}, "totalHits"),
                            ({"limit": 200}, "estimatedTotalHits"), ({"limit": 5}, "estimatedTotalHits")):
        federation = {**federation, "facetsByIndex": {"ca": ["genre"]}}
        a, b = _both(pair, "POST", "/multi-search", json={"queries": queries, "federation": federation})
        assert a.status_code == b.status_code == 200, b.text
        for x in (a.json(), b.json()):
            assert x[key] == 100, (federation, x[key])
            assert x["facetsByIndex"]["ca"]["distribution"] == {"genre": genres}, federation
            assert x["facetsByIndex"]["ca"]["stats"] == {}


def test_federation_page_mode_distinct_and_checks(pair):
    queries = [{"indexUid": "ca", "q": "red"}, {"indexUid": "cb", "q": "dog"}]
    for federation in ({"page": 2, "hitsPerPage": 7}, {"hitsPerPage": 0}, {"page": 0},
                       {"distinct": "genre", "limit": 10}, {"distinct": "genre", "page": 1, "hitsPerPage": 5}):
        a, b = _both(pair, "POST", "/multi-search", json={"queries": queries, "federation": federation})
        assert a.status_code == b.status_code == 200, b.text
        x, y = a.json(), b.json()
        assert _is_uuid7(y["requestUid"])
        for key in ("totalHits", "totalPages", "hitsPerPage", "page", "estimatedTotalHits", "limit", "offset"):
            assert x.get(key) == y.get(key), (federation, key)
        assert len(x["hits"]) == len(y["hits"])
        if "distinct" in federation:
            values = [h[federation["distinct"]] for h in y["hits"]]
            assert len(values) == len(set(values))
    x = b.json()
    assert list(x)[:6] == ["hits", "processingTimeMs", "hitsPerPage", "page", "totalPages", "totalHits"]
    # tests/search/multi/mod.rs texts, equal on both sides.
    hint = " - Hint: remove `{}` from the query or remove `federation` from the request\n"
    for body, code, message in (
        ({"queries": [queries[0], {"indexUid": "cb", "hitsPerPage": 3}], "federation": {}},
         "invalid_multi_search_query_pagination",
         "Inside `.queries[1]`: Using pagination options is not allowed in federated queries.\n" + hint.format("hitsPerPage")
         + " - Hint: pass `federation.limit` and `federation.offset` for pagination in federated search"),
        ({"queries": [queries[0], {"indexUid": "cb", "facets": ["genre"]}], "federation": {}},
         "invalid_multi_search_query_facets",
         "Inside `.queries[1]`: Using facet options is not allowed in federated queries.\n" + hint.format("facets")
         + ' - Hint: pass `federation.facetsByIndex.cb: ["genre"]` for facets in federated search'),
        ({"queries": [{"indexUid": "ca", "showPerformanceDetails": False}], "federation": {}},
         "invalid_multi_search_query_show_performance_details",
         "Inside `.queries[0]`: Using `.showPerformanceDetails` is not allowed in federated queries.\n"
         + hint.format("showPerformanceDetails").rstrip("\n")),
        ({"queries": [queries[0], {"indexUid": "cb", "distinct": "genre"}], "federation": {"distinct": "genre"}},
         "invalid_multi_search_distinct",
         "Inside `.queries[1]`: Using `distinct` options is not allowed in federated queries when it also appears in "
         "`.federation.distinct`.\n" + hint.format("distinct")
         + "  - Note: `distinct` at the query level is discouraged in federated search."),
        ({"queries": [queries[0], {"indexUid": "cb", "federationOptions": {}}]}, "invalid_multi_search_federation_options",
         "Inside `.queries[1]`: Using `federationOptions` is not allowed in a non-federated search.\n"
         " - Hint: remove `federationOptions` from the query or add `federation` to the request."),
        ({"queries": [queries[0], {"indexUid": "nested"}]}, "index_not_found", "Inside `.queries[1]`: Index `nested` not found."),
        ({"queries": [{"q": "x"}]}, "missing_index_uid", "Missing field `indexUid` inside `.queries[0]`"),
        ({"queries": [queries[0], {"indexUid": "cb", "federationOptions": {"weight": -1}}], "federation": {}},
         "invalid_multi_search_weight",
         "Invalid value at `.queries[1].federationOptions.weight`: the value of `weight` is invalid, expected a positive "
         "float (>= 0.0)."),
        ({"queries": queries, "federation": {"limit": "x"}}, "invalid_search_limit",
         'Invalid value type at `.federation.limit`: expected a positive integer, but found a string: `"x"`'),
        ({"queries": [{"indexUid": "ca", "q": 3}]}, "invalid_search_q",
         "Invalid value type at `.queries[0].q`: expected a string, but found a positive integer: `3`"),
    ):
        a, b = _both(pair, "POST", "/multi-search", json=body)
        assert (b.status_code, b.json()) == (a.status_code, a.json())
        assert (a.status_code, a.json()["code"], a.json()["message"]) == (400, code, message)


def test_facet_search_ignores_search_params(pair):
    # What InstantSearch and meilisearch-python-sdk send along: ignored by 1.50.
    body = {"facetName": "genre", "facetQuery": "d", "attributesToRetrieve": ["*"], "limit": 3, "highlightPreTag": "<b>",
            "facets": ["genre"], "useNetwork": False, "q": ""}
    a, b = _both(pair, "POST", "/indexes/ca/facet-search", json=body)
    assert a.status_code == 400 and a.json()["code"] == "feature_not_enabled"  # the node has no `network`
    assert b.status_code == 200, b.text
    body.pop("useNetwork")
    a, b = _both(pair, "POST", "/indexes/ca/facet-search", json=body)
    assert a.status_code == b.status_code == 200, b.text
    assert b.json()["facetHits"] == a.json()["facetHits"] == [{"value": "drama", "count": 30}]
    a, b = _both(pair, "POST", "/indexes/ca/facet-search", json={"facetName": "genre", "exhaustiveFacetCount": "yes"})
    assert (b.status_code, b.json()) == (a.status_code, a.json())
    assert a.json()["code"] == "invalid_facet_search_exhaustive_facet_count"


def test_non_json_content_type_is_415(pair):
    # tests/content_type.rs: 415 with 1.50's texts on every JSON-only route.
    for path in ("/indexes/ca/search", "/multi-search", "/indexes/ca/facet-search", "/indexes", "/indexes/ca/similar",
                 "/indexes/ca/documents/fetch", "/indexes/ca/documents/delete-batch"):
        for headers, code, message in (
            ({"Content-Type": "text/plain"}, "invalid_content_type",
             "The Content-Type `text/plain` is invalid. Accepted values for the Content-Type header are: `application/json`"),
            ({}, "missing_content_type",
             "A Content-Type header is missing. Accepted values for the Content-Type header are: `application/json`"),
        ):
            a, b = _both(pair, "POST", path, content=b"{}", headers=headers)
            assert (b.status_code, b.json()) == (a.status_code, a.json()) == (415, {
                "message": message, "code": code, "type": "invalid_request",
                "link": f"https://docs.meilisearch.com/errors#{code}"})
    a, b = _both(pair, "POST", "/indexes/ca/search", content=b'{"q": "red"}',
                 headers={"Content-Type": "application/json; charset=utf-8"})
    assert a.status_code == b.status_code == 200


def test_search_body_with_content_encoding(pair):
    # 1.50 decodes a gzip search body; the fast path (api/fast.py) did not: malformed_payload.
    body = gzip.compress(b'{"q": "red", "attributesToRetrieve": ["id"], "limit": 200}')
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    a, b = _both(pair, "POST", "/indexes/ca/search", content=body, headers=headers)
    assert a.status_code == b.status_code == 200, b.text
    ids = sorted(h["id"] for h in a.json()["hits"])
    assert sorted(h["id"] for h in b.json()["hits"]) == ids == [i for i in range(120) if i % 3 == 1]


def test_semantic_hit_count_is_counted_on_the_page():
    """Two nodes each answer 3 hits (their window, offset 0 to 3) and report 3 semantic
    hits; the client's page (offset 2, limit 1) holds one hit, a keyword one: 0."""
    def hit(i: int, score: float, semantic: bool) -> dict:
        details = {"vectorSort": {"order": 0, "similarity": score}} if semantic else {"words": {"order": 0, "score": score}}
        return {"id": i, "_rankingScore": score, "_rankingScoreDetails": details}

    nodes = [
        {"hits": [hit(1, 0.99, True), hit(2, 0.97, True), hit(3, 0.90, False)], "estimatedTotalHits": 3,
         "semanticHitCount": 2},
        {"hits": [hit(4, 0.98, True), hit(5, 0.95, False), hit(6, 0.80, True)], "estimatedTotalHits": 3,
         "semanticHitCount": 2},
    ]
    req = SearchRequest(q="x", offset=2, limit=1, hybrid={"embedder": "default", "semanticRatio": 0.5})
    out = merge_search(req, ranking_rules=[], node_responses=nodes, distinct_attribute=None, max_values_per_facet=100,
                       sort_facet_values_by={}, processing_time_ms=0, added_fields=set(), by_score=True)
    assert [h["id"] for h in out["hits"]] == [2] and out["semanticHitCount"] == 1
    assert "_rankingScoreDetails" not in out["hits"][0]
