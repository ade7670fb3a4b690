"""Single-node equivalence of the other scatter reads: multi-search, federated search,
facet search and document listing; plus the read path's error behaviour.

One devnode (the oracle) and one Miroir over 3 devnodes (RF 1, 16 shards) hold the same
two indexes: `pa` (the first 2,500 Debian packages, default ranking) and `pb` (the next
2,500, a custom ranking rule and count-ordered facets cut at 5 values).

Allowed differences are those of tests/oracle/test_oracle.py (processingTimeMs; order inside
tie groups); document listings follow Miroir's documented order (shard ascending, then
each node's order), so they are compared as sets and by paging invariants.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

import httpx
import pytest

from miroir.core.routing import shard_for_key
from tests.support import miroir_proc
from tests.support.corpus import CORPUS, read_docs
from tests.support.devnodes import start_devnodes, wait_task

N_DOCS = 5_000
SHARDS = 16
TASK_TIMEOUT_S = 120.0
FILTERABLE = ["section", "priority", "architecture", "tags", "installed_size_kb", "source", "id"]
SETTINGS = {
    "pa": {"filterableAttributes": FILTERABLE, "sortableAttributes": ["installed_size_kb", "name"]},
    "pb": {
        "filterableAttributes": FILTERABLE,
        "sortableAttributes": ["installed_size_kb", "name"],
        "rankingRules": ["words", "typo", "size_bytes:asc", "proximity", "attribute", "sort", "exactness"],
        "faceting": {"maxValuesPerFacet": 5, "sortFacetValuesBy": {"*": "count"}},
    },
}

pytestmark = pytest.mark.skipif(not CORPUS.exists(), reason=f"corpus not found: {CORPUS}")


def _load_docs() -> list[dict]:
    return read_docs(N_DOCS)


def _task(client: httpx.Client, resp: httpx.Response) -> None:
    assert resp.status_code == 202, resp.text
    task = wait_task(str(client.base_url), resp.json()["taskUid"], timeout=TASK_TIMEOUT_S)
    assert task["status"] == "succeeded", task


def _setup(client: httpx.Client, docs: list[dict]) -> None:
    half = len(docs) // 2
    for uid, part in (("pa", docs[:half]), ("pb", docs[half:])):
        _task(client, client.post("/indexes", json={"uid": uid, "primaryKey": "id"}))
        _task(client, client.patch(f"/indexes/{uid}/settings", json=SETTINGS[uid]))
        _task(client, client.post(f"/indexes/{uid}/documents", json=part))


@pytest.fixture(scope="module")
def docs() -> list[dict]:
    return _load_docs()


@pytest.fixture(scope="module")
def pair(docs) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    """(oracle devnode client, Miroir client), both loaded with `pa` and `pb`."""
    with contextlib.ExitStack() as stack:
        (node,) = stack.enter_context(start_devnodes(1))
        cluster = stack.enter_context(miroir_proc.start_cluster(nodes=3, groups=1, rf=1, shards=SHARDS))
        one = stack.enter_context(httpx.Client(base_url=node.url, timeout=60))
        many = stack.enter_context(httpx.Client(base_url=cluster.url, timeout=60))
        _setup(one, docs)
        _setup(many, docs)
        yield one, many


# ------------------------------------------------------------------- comparison helpers


def _tie_groups(hits: list[dict], key) -> list[list[int]]:
    groups: list[list[int]] = []
    last = object()
    for i, h in enumerate(hits):
        k = key(h)
        if groups and k == last:
            groups[-1].append(i)
        else:
            groups.append([i])
        last = k
    return groups


def assert_same_hits(expected: list[dict], got: list[dict], *, tie_key, full_page: bool, cut_first: bool = False) -> None:
    """Equal hits, ties compared as sets of ids (groups cut by the page: by size)."""
    assert len(expected) == len(got)
    groups = _tie_groups(expected, tie_key)
    for gi, idx in enumerate(groups):
        cut = (gi == 0 and cut_first) or (gi == len(groups) - 1 and full_page)
        if not cut:
            assert sorted(expected[i]["id"] for i in idx) == sorted(got[i]["id"] for i in idx)
        by_id = {expected[i]["id"]: expected[i] for i in idx}
        for i in idx:
            if got[i]["id"] in by_id:
                assert got[i] == by_id[got[i]["id"]]


def _details_key(h: dict) -> str:
    return json.dumps(h.get("_rankingScoreDetails"), sort_keys=True)


def _no_time(answer: dict) -> dict:
    return {k: v for k, v in answer.items() if k not in ("processingTimeMs", "hits", "requestUid")}


def _facet_items(answer: dict) -> dict:
    return {f: list(v.items()) for f, v in (answer.get("facetDistribution") or {}).items()}


# ------------------------------------------------------------------- multi-search

MULTI_QUERIES = [
    {"indexUid": "pa", "q": "python", "limit": 7, "showRankingScoreDetails": True},
    {"indexUid": "pb", "q": "lib", "facets": ["section", "priority"], "showRankingScoreDetails": True},
    {"indexUid": "pa", "q": "", "filter": "section = 'utils'", "sort": ["installed_size_kb:desc"], "page": 2,
     "hitsPerPage": 4, "showRankingScoreDetails": True},
    {"indexUid": "pb", "q": "gnome desk", "attributesToRetrieve": ["id", "name"], "showRankingScoreDetails": True},
]


def test_multi_search_equals_single_node(pair):
    one, many = pair
    body = {"queries": MULTI_QUERIES}
    a, b = one.post("/multi-search", json=body), many.post("/multi-search", json=body)
    assert a.status_code == b.status_code == 200, b.text
    ra, rb = a.json()["results"], b.json()["results"]
    assert [r["indexUid"] for r in rb] == [q["indexUid"] for q in MULTI_QUERIES]
    for q, x, y in zip(MULTI_QUERIES, ra, rb):
        assert _no_time(x) == _no_time(y)
        assert _facet_items(x) == _facet_items(y)
        full = len(x["hits"]) == q.get("hitsPerPage", q.get("limit", 20))
        assert_same_hits(x["hits"], y["hits"], tie_key=_details_key, full_page=full, cut_first="page" in q)


@pytest.mark.parametrize(
    "body, want",
    [
        ({"queries": [{"indexUid": "pa", "q": "x"}, {"indexUid": "nope", "q": "x"}]}, (400, "index_not_found")),
        ({"queries": [{"indexUid": "pa", "q": "x", "filter": "nosuch = 1"}]}, (400, "invalid_search_filter")),
        ({"queries": [{"indexUid": "pa", "q": "x", "sort": ["summary:asc"]}]}, (400, "invalid_search_sort")),
        ({"queries": [{"indexUid": "pa", "q": "x", "federationOptions": {"weight": 2}}]}, (400, "invalid_multi_search_federation_options")),
        ({"queries": [{"q": "x"}]}, (400, "missing_index_uid")),
        ({"queries": [{"indexUid": "pa", "q": "x"}], "federation": {}, "other": 1}, (400, "bad_request")),
        ({"queries": [{"indexUid": "pa", "q": "x", "limit": 3}], "federation": {}}, (400, "invalid_multi_search_query_pagination")),
        # The per-query checks shared by Miroir and the devnode (core/federation.query_entry),
        # including which error wins when a query has several.
        ({"queries": ["pa"]}, (400, "bad_request")),
        ({"queries": [{"indexUid": "not a uid!", "q": "x"}]}, (400, "invalid_index_uid")),
        ({"queries": [{"indexUid": "pa", "federationOptions": {"weight": -1}}], "federation": {}}, (400, "invalid_multi_search_weight")),
        ({"queries": [{"indexUid": "pa", "federationOptions": {"weight": True}, "page": 2}], "federation": {}}, (400, "invalid_multi_search_weight")),
        ({"queries": [{"indexUid": "nope", "federationOptions": {"weight": 2}}]}, (400, "invalid_multi_search_federation_options")),
        ({"queries": [{"indexUid": "nope", "hitsPerPage": 2}], "federation": {}}, (400, "invalid_multi_search_query_pagination")),
        # mergeFacets over indexes that order one facet differently (pa: alphabetically, pb: by count).
        ({"queries": [{"indexUid": "pa", "q": "x"}, {"indexUid": "pb", "q": "x"}],
          "federation": {"facetsByIndex": {"pa": ["section"], "pb": ["section"]}, "mergeFacets": {}}},
         (400, "invalid_multi_search_facet_order")),
    ],
)
def test_multi_search_errors_equal_single_node(pair, body, want):
    one, many = pair
    a, b = one.post("/multi-search", json=body), many.post("/multi-search", json=body)
    assert (a.status_code, a.json()["code"]) == want, a.text  # 1.50's status and code
    assert (b.status_code, b.json()) == (a.status_code, a.json())


# ------------------------------------------------------------------- federated search


@pytest.mark.parametrize(
    "federation, weights",
    [
        ({}, (1.0, 1.0)),
        ({"offset": 5, "limit": 12}, (1.0, 0.4)),
        ({"limit": 10, "facetsByIndex": {"pa": ["section", "installed_size_kb"], "pb": ["priority"]}}, (1.0, 1.0)),
        # Facets the two indexes both order would be refused (pb sorts by count; below).
        ({"limit": 10, "facetsByIndex": {"pa": ["section"], "pb": ["architecture"]}, "mergeFacets": {}}, (2.0, 1.0)),
    ],
)
def test_federated_search_equals_single_node(pair, federation, weights):
    one, many = pair
    queries = [
        {"indexUid": "pa", "q": "python library", "showRankingScoreDetails": True,
         "federationOptions": {"weight": weights[0]}},
        {"indexUid": "pb", "q": "data", "filter": "installed_size_kb > 100", "showRankingScoreDetails": True,
         "federationOptions": {"weight": weights[1]}},
    ]
    body = {"queries": queries, "federation": federation}
    a, b = one.post("/multi-search", json=body), many.post("/multi-search", json=body)
    assert a.status_code == b.status_code == 200, b.text
    x, y = a.json(), b.json()
    assert _no_time(x) == _no_time(y)
    if "facetDistribution" in x:
        assert {f: dict(v) for f, v in x["facetDistribution"].items()} == y["facetDistribution"]

    def key(h: dict) -> tuple:
        return (h["_federation"]["weightedRankingScore"], h["_federation"]["queriesPosition"], _details_key(h))

    assert_same_hits(
        x["hits"], y["hits"], tie_key=key, full_page=len(x["hits"]) == federation.get("limit", 20),
        cut_first=federation.get("offset", 0) > 0,
    )


# ------------------------------------------------------------------- facet search


@pytest.mark.parametrize("uid", ["pa", "pb"])
@pytest.mark.parametrize(
    "body",
    [
        {"facetName": "section"},
        {"facetName": "section", "facetQuery": "li"},
        {"facetName": "tags", "facetQuery": "role"},
        {"facetName": "priority", "q": "python"},
        {"facetName": "architecture", "filter": "installed_size_kb > 1000"},
        {"facetName": "source", "filter": "id IN [3, 5, 2600, 4000]"},
        {"facetName": "section", "q": "lib", "filter": ["priority = optional", ["section = libs", "section = devel"]]},
        {"facetName": "nosuch"},
    ],
)
def test_facet_search_equals_single_node(pair, uid, body):
    one, many = pair
    a = one.post(f"/indexes/{uid}/facet-search", json=body)
    b = many.post(f"/indexes/{uid}/facet-search", json=body)
    assert b.status_code == a.status_code, b.text
    x, y = a.json(), b.json()
    x.pop("processingTimeMs", None)
    y.pop("processingTimeMs", None)
    x.pop("requestUid", None)
    y.pop("requestUid", None)
    assert y == x


# ------------------------------------------------------------------- documents


LISTING_DEPTH = 200  # engine/reads.py DOCUMENTS_ONE_ROUND_MAX


def _all_documents(client: httpx.Client, uid: str, **params) -> dict:
    r = client.get(f"/indexes/{uid}/documents", params={"limit": 10_000, **params})
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.parametrize(
    "params",
    [{}, {"fields": "id,name,section"}, {"filter": "section = 'utils'"}, {"filter": "installed_size_kb > 5000", "fields": "id"}],
)
def test_documents_listing_matches_single_node(pair, params):
    one, many = pair
    x, y = _all_documents(one, "pa", **params), _all_documents(many, "pa", **params)
    assert y["total"] == x["total"] > 0
    assert (y["offset"], y["limit"]) == (x["offset"], x["limit"])
    by_id = {d["id"]: d for d in x["results"]}
    assert sorted(by_id) == sorted(d["id"] for d in y["results"])
    for d in y["results"]:
        assert d == by_id[d["id"]]
        assert "_miroir_shard" not in d


def test_documents_order_is_insertion_then_shard_ascending_and_pages_tile(pair):
    one, many = pair
    full = _all_documents(many, "pa")["results"]
    ids = [d["id"] for d in full]
    # Documented order: one node's (insertion order) for the first 200 positions, then
    # what is left of each shard, shard ascending.
    assert ids[:LISTING_DEPTH] == [d["id"] for d in _all_documents(one, "pa")["results"][:LISTING_DEPTH]]
    shards = [shard_for_key(i, SHARDS) for i in ids[LISTING_DEPTH:]]
    assert shards == sorted(shards)
    # Shallow pages (one round) and deep pages (totals first, then windows) tile the list.
    for offset, limit in [(0, 20), (13, 7), (150, 50), (190, 30), (640, 333), (1200, 500), (2490, 100), (5000, 10)]:
        r = many.get("/indexes/pa/documents", params={"offset": offset, "limit": limit})
        assert r.status_code == 200, r.text
        page = r.json()
        assert page["total"] == len(full)
        assert [d["id"] for d in page["results"]] == ids[offset : offset + limit], (offset, limit)


def test_documents_fetch_matches_single_node(pair):
    one, many = pair
    cases = [
        {"ids": [1, 2, 3, 999999, "17"], "fields": ["id", "name"]},
        {"filter": "priority = required", "limit": 1000},
        {"filter": ["section = utils", ["priority = optional", "priority = important"]], "limit": 1000, "fields": ["id"]},
        {"ids": ["5", "6"], "filter": "section = nosuch"},
        {"limit": 3, "offset": 300, "fields": ["id"]},
    ]
    for body in cases:
        a = one.post("/indexes/pa/documents/fetch", json=body)
        b = many.post("/indexes/pa/documents/fetch", json=body)
        assert a.status_code == b.status_code == 200, b.text
        x, y = a.json(), b.json()
        assert (y["total"], y["offset"], y["limit"]) == (x["total"], x["offset"], x["limit"])
        exact = max(0, LISTING_DEPTH - body.get("offset", 0))  # one node's order down to position 200
        assert y["results"][:exact] == x["results"][:exact]
        if body.get("limit", 20) >= x["total"]:
            assert sorted(json.dumps(d, sort_keys=True) for d in y["results"]) == sorted(
                json.dumps(d, sort_keys=True) for d in x["results"]
            )
        else:
            assert len(y["results"]) == len(x["results"])


@pytest.mark.parametrize(
    "method, path, payload, want",
    [
        ("GET", "/indexes/pa/documents?offset=-1", None, (400, "invalid_document_offset")),
        ("GET", "/indexes/pa/documents?what=1", None, (400, "bad_request")),
        ("GET", "/indexes/pa/documents?filter=nosuch%20%3D%201", None, (400, "invalid_document_filter")),
        ("POST", "/indexes/pa/documents/fetch", {"limit": "x"}, (400, "invalid_document_limit")),
        ("POST", "/indexes/pa/documents/fetch", {"filter": "nosuch = 1"}, (400, "invalid_document_filter")),
        ("GET", "/indexes/nope/documents", None, (404, "index_not_found")),
        ("POST", "/indexes/nope/documents/fetch", {}, (404, "index_not_found")),
        # Swap bodies: one validation (core/swaps.py) for Miroir and the devnode.
        ("POST", "/swap-indexes", {"indexes": ["pa", "pb"]}, (400, "bad_request")),
        ("POST", "/swap-indexes", [1], (400, "bad_request")),
        ("POST", "/swap-indexes", [{"indexes": ["pa"]}], (400, "invalid_swap_indexes")),
        ("POST", "/swap-indexes", [{"indexes": ["pa", "pa"]}], (400, "invalid_swap_duplicate_index_found")),
        ("POST", "/swap-indexes", [{"indexes": ["pa", "pb"], "x": 1}], (400, "bad_request")),
        ("POST", "/swap-indexes", [{"swap": ["pa", "pb"]}], (400, "bad_request")),
        ("POST", "/swap-indexes", [{"indexes": ["pa", "b d"]}], (400, "invalid_index_uid")),
    ],
)
def test_documents_errors_equal_single_node(pair, method, path, payload, want):
    one, many = pair
    a = one.request(method, path, json=payload)
    b = many.request(method, path, json=payload)
    assert (a.status_code, a.json()["code"]) == want, a.text  # 1.50's status and code
    assert (b.status_code, b.json()) == (a.status_code, a.json())


@pytest.mark.parametrize(
    "body, message",
    [
        # tests/swap_indexes/errors.rs::swap_indexes_bad_indexes (1.50), with our uids.
        ([{"indexes": ["pa"]}], 'Two indexes must be given for each swap. The list `["pa"]` contains 1 indexes.'),
        (
            [{"indexes": ["pa", "pb", "pc"]}],
            'Two indexes must be given for each swap. The list `["pa", "pb", "pc"]` contains 3 indexes.',
        ),
        ([{"indexes": ["pa", "pa"]}], "Indexes must be declared only once during a swap. `pa` was specified several times."),
    ],
)
def test_swap_errors_word_for_word_as_1_50(pair, body, message):
    """Miroir and the devnode share core/swaps.py: comparing them cannot find its text wrong."""
    for c in pair:
        r = c.post("/swap-indexes", json=body)
        assert (r.status_code, r.json()["message"]) == (400, message), r.text


# ------------------------------------------------------------------- search errors and shapes


@pytest.mark.parametrize(
    "method, path, payload, want",
    [
        ("POST", "/indexes/nope/search", {"q": "x"}, (404, "index_not_found")),
        ("GET", "/indexes/nope/search?q=x", None, (404, "index_not_found")),
        ("POST", "/indexes/pa/search", {"q": "x", "filter": "nosuch = 1"}, (400, "invalid_search_filter")),
        ("POST", "/indexes/pa/search", {"q": "x", "sort": ["summary:asc"]}, (400, "invalid_search_sort")),
        ("POST", "/indexes/pa/search", {"q": "x", "limit": "ten"}, (400, "invalid_search_limit")),
        ("GET", "/indexes/pa/search?limit=x", None, (400, "invalid_search_limit")),
        ("POST", "/indexes/pa/search", {"q": "x", "limit": -1}, (400, "invalid_search_limit")),
        ("POST", "/indexes/pa/search", {"q": "x", "offset": -5}, (400, "invalid_search_offset")),
        ("POST", "/indexes/pa/search", {"q": "x", "showPerformanceDetails": "yes"}, (400, "invalid_search_show_performance_details")),
        ("POST", "/indexes/nope/facet-search", {"facetName": "section"}, (404, "index_not_found")),
    ],
)
def test_search_errors_equal_single_node(pair, method, path, payload, want):
    one, many = pair
    a = one.request(method, path, json=payload)
    b = many.request(method, path, json=payload)
    assert (a.status_code, a.json()["code"]) == want, a.text  # 1.50's status and code
    assert (b.status_code, b.json()) == (a.status_code, a.json())
    assert "_miroir" not in b.text


@pytest.mark.parametrize(
    "params",
    [
        {"q": "python", "limit": "5", "showRankingScoreDetails": "true"},
        {"q": "lib", "facets": "section,priority", "sort": "installed_size_kb:desc", "showRankingScoreDetails": "true"},
        {"q": "", "filter": "id IN [3, 4, 5, 6, 7, 8]", "attributesToRetrieve": "id,name"},
        {"q": "", "filter": "id = 42"},
    ],
)
def test_get_search_equals_single_node(pair, params):
    one, many = pair
    a, b = one.get("/indexes/pa/search", params=params), many.get("/indexes/pa/search", params=params)
    assert a.status_code == b.status_code == 200, b.text
    x, y = a.json(), b.json()
    assert _no_time(x) == _no_time(y)
    assert_same_hits(x["hits"], y["hits"], tie_key=_details_key, full_page=len(x["hits"]) == int(params.get("limit", 20)))
    assert all("_miroir_shard" not in h for h in y["hits"])


def test_search_hides_ranking_fields_unless_asked(pair):
    _, many = pair
    r = many.post("/indexes/pa/search", json={"q": "python", "sort": ["name:asc"], "attributesToRetrieve": ["id"]})
    assert r.status_code == 200
    hits = r.json()["hits"]
    assert hits and all(set(h) == {"id"} for h in hits)
