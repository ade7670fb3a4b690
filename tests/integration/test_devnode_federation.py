"""Federated multi-search `mergeFacets`: value order and the cut, on the devnode and on
Miroir (core/federation.py merges for both).

Merged facet values follow the `faceting.sortFacetValuesBy` of the first index asking
for the facet (Meilisearch refuses indexes that disagree; see core/federation.py's
`merged_facet_order`) and are cut at `mergeFacets.maxValuesPerFacet`; without it they
are not cut (1.50's `FederatedFacets::merge` truncates only when it is given).
"""

from __future__ import annotations

import httpx
import pytest

from tests.support import miroir_proc
from tests.support.devnodes import wait_task

# Index a: colours with counts 3,2,1; index b: more of `red` and a new `blue`.
DOCS_A = [{"id": i, "colour": c} for i, c in enumerate(["green", "green", "green", "red", "red", "Yellow"])]
DOCS_B = [{"id": i, "colour": c} for i, c in enumerate(["red", "red", "blue"])]
MANY = [{"id": i, "n": f"v{i:03d}"} for i in range(130)]


@pytest.fixture(scope="module", params=["devnode", "miroir"])
def client(request):
    if request.param == "devnode":
        url = request.getfixturevalue("devnode").url
    else:
        url = request.getfixturevalue("miroir_url")
    with httpx.Client(base_url=url, timeout=10.0) as c:
        for uid, docs, settings in [
            ("fa", DOCS_A, {"filterableAttributes": ["colour"], "faceting": {"sortFacetValuesBy": {"*": "count"}}}),
            ("fb", DOCS_B, {"filterableAttributes": ["colour"], "faceting": {"sortFacetValuesBy": {"colour": "count"}}}),
            ("fc", DOCS_B, {"filterableAttributes": ["colour"]}),  # alpha
            ("fm", MANY, {"filterableAttributes": ["n"], "faceting": {"maxValuesPerFacet": 1000}}),
        ]:
            for method, path, body in [
                ("PATCH", f"/indexes/{uid}/settings", settings),
                ("POST", f"/indexes/{uid}/documents", docs),
            ]:
                r = c.request(method, path, json=body)
                assert r.status_code == 202, r.text
                assert wait_task(url, r.json()["taskUid"])["status"] == "succeeded"
        yield c


@pytest.fixture(scope="module")
def miroir_url():
    with miroir_proc.start_cluster(nodes=2, shards=4) as cluster:
        yield cluster.url


def federated(client, uids: list[str], federation: dict) -> httpx.Response:
    body = {"queries": [{"indexUid": u, "q": ""} for u in uids], "federation": federation}
    return client.post("/multi-search", json=body)


def test_merged_values_follow_sort_facet_values_by(client):
    r = federated(client, ["fa", "fb"], {"facetsByIndex": {"fa": ["colour"], "fb": ["colour"]}, "mergeFacets": {}})
    assert r.status_code == 200, r.text
    # count order: red 4, green 3, then the 1s in alpha order (blue, Yellow)
    assert list(r.json()["facetDistribution"]["colour"].items()) == [("red", 4), ("green", 3), ("blue", 1), ("Yellow", 1)]
    r = federated(
        client, ["fa", "fb"],
        {"facetsByIndex": {"fa": ["colour"], "fb": ["colour"]}, "mergeFacets": {"maxValuesPerFacet": 2}},
    )
    assert list(r.json()["facetDistribution"]["colour"]) == ["red", "green"]


def test_merged_values_are_not_cut_without_max_values_per_facet(client):
    # `fm` shows up to 1,000 values per facet: all 130 stay, 1.50 cuts only when told.
    r = federated(client, ["fm"], {"facetsByIndex": {"fm": ["n"]}, "mergeFacets": {}})
    assert r.status_code == 200, r.text
    values = list(r.json()["facetDistribution"]["n"])
    assert values == [f"v{i:03d}" for i in range(130)]
    r = federated(client, ["fm"], {"facetsByIndex": {"fm": ["n"]}, "mergeFacets": {"maxValuesPerFacet": 100}})
    assert list(r.json()["facetDistribution"]["n"]) == [f"v{i:03d}" for i in range(100)]


def test_inconsistent_orders_and_bad_options_are_refused(client):
    # `fa` orders colour by count, `fc` alphabetically: 1.50 refuses to merge them
    # (indexes in uid order, whatever the order they are named in); without
    # mergeFacets each index keeps its own order.
    by_index = {"fa": ["colour"], "fc": ["colour"]}
    for named in (by_index, dict(reversed(by_index.items()))):
        r = federated(client, ["fa", "fc"], {"facetsByIndex": named, "mergeFacets": {}})
        assert r.status_code == 400, r.text
        assert r.json()["code"] == "invalid_multi_search_facet_order"
        assert r.json()["message"].startswith(
            "Inside `.queries[1]`: Inside `.federation.facetsByIndex.fc`: Inconsistent order for values in facet "
            "`colour`: index `fa` orders by count, but index `fc` orders alphabetically.\n"
        )
    r = federated(client, ["fa", "fc"], {"facetsByIndex": by_index})
    assert r.status_code == 200, r.text
    r = federated(client, ["fa"], {"facetsByIndex": {"fa": ["colour"]}, "mergeFacets": True})
    assert r.status_code == 400 and r.json()["code"] == "invalid_multi_search_merge_facets"
    r = federated(client, ["fa"], {"facetsByIndex": {"fa": ["colour"]}, "mergeFacets": {"maxValuesPerFacet": -1}})
    assert r.status_code == 400 and r.json()["code"] == "invalid_multi_search_max_values_per_facet"
    assert "found a negative integer: `-1`" in r.json()["message"]


def test_unknown_facets_index_and_performance_details(client):
    r = federated(client, ["fa"], {"facetsByIndex": {"nope": ["colour"]}})
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "index_not_found"
    assert r.json()["message"] == (
        "Inside `.federation.facetsByIndex.nope`: Index `nope` not found.\n - Note: index `nope` is not used in queries"
    )
    r = federated(client, ["fa"], {"showPerformanceDetails": True})
    assert r.status_code == 200, r.text
    assert list(r.json()["performanceDetails"]) == [
        "federated search", "federated search > search", "federated search > merge results",
    ]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "Invalid value type: expected an object, but found an array: `[]`"),
        ({"queries": [], "x": 1}, "Unknown field `x`: expected one of `queries`, `federation`"),
        ({"federation": {}}, "Missing field `queries`"),
        ({"queries": {}}, "Invalid value type at `.queries`: expected an array, but found an object: `{}`"),
    ],
)
def test_multi_search_body_shape(client, body, message):
    r = client.post("/multi-search", json=body)
    assert r.status_code == 400, r.text
    assert (r.json()["code"], r.json()["message"]) == ("bad_request", message)
