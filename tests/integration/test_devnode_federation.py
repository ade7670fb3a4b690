"""The devnode's federated multi-search `mergeFacets`: value order and the cut.

Merged facet values follow the `faceting.sortFacetValuesBy` of the first index asking
for the facet (Meilisearch refuses indexes that disagree; see devnode/app.py) and are cut at `mergeFacets.maxValuesPerFacet`
(100 by default), as `core.federation` does for Miroir.
"""

from __future__ import annotations

import httpx
import pytest

from tests.support.devnodes import wait_task

# Index a: colours with counts 3,2,1; index b: more of `red` and a new `blue`.
DOCS_A = [{"id": i, "colour": c} for i, c in enumerate(["green", "green", "green", "red", "red", "Yellow"])]
DOCS_B = [{"id": i, "colour": c} for i, c in enumerate(["red", "red", "blue"])]
MANY = [{"id": i, "n": f"v{i:03d}"} for i in range(130)]


@pytest.fixture(scope="module")
def client(devnode):
    with httpx.Client(base_url=devnode.url, timeout=10.0) as c:
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
                assert wait_task(devnode.url, r.json()["taskUid"])["status"] == "succeeded"
        yield c


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


def test_merged_values_are_cut_at_100_by_default(client):
    r = federated(client, ["fm"], {"facetsByIndex": {"fm": ["n"]}, "mergeFacets": {}})
    assert r.status_code == 200, r.text
    values = list(r.json()["facetDistribution"]["n"])
    assert values == [f"v{i:03d}" for i in range(100)]


def test_first_index_sets_the_order_and_bad_options_are_refused(client):
    # `fa` orders colour by count, `fc` alphabetically: the first index named wins.
    by_index = {"fa": ["colour"], "fc": ["colour"]}
    r = federated(client, ["fa", "fc"], {"facetsByIndex": by_index, "mergeFacets": {}})
    assert r.status_code == 200, r.text
    assert list(r.json()["facetDistribution"]["colour"]) == ["red", "green", "blue", "Yellow"]
    r = federated(client, ["fa", "fc"], {"facetsByIndex": dict(reversed(by_index.items())), "mergeFacets": {}})
    assert list(r.json()["facetDistribution"]["colour"]) == ["blue", "green", "red", "Yellow"]
    r = federated(client, ["fa"], {"facetsByIndex": {"fa": ["colour"]}, "mergeFacets": True})
    assert r.status_code == 400 and r.json()["code"] == "invalid_multi_search_merge_facets"
    r = federated(client, ["fa"], {"facetsByIndex": {"fa": ["colour"]}, "mergeFacets": {"maxValuesPerFacet": -1}})
    assert r.status_code == 400 and r.json()["code"] == "invalid_multi_search_max_values_per_facet"
    assert "found a negative integer: `-1`" in r.json()["message"]
