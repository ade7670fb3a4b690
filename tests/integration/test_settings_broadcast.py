"""Settings and index lifecycle broadcast to every node: the client sees Meilisearch's
settings, the nodes hold Miroir's (`_miroir_shard` filterable, all facet values), every
node holds the same, and bad input never reaches a node.
"""

from __future__ import annotations

import httpx
import meilisearch
import pytest

from miroir.core.settings import DEFAULTS, GATED_KEYS, NODE_MAX_VALUES_PER_FACET, settings_hash
from tests.support.devnodes import wait_task
from tests.support.miroir_proc import start_cluster

VERSION = "X-Miroir-Settings-Version"


@pytest.fixture(scope="module")
def c():
    with start_cluster(nodes=3, groups=1, rf=1, shards=8) as cluster:
        cluster.http = httpx.Client(base_url=cluster.url, timeout=10)
        cluster.ms = meilisearch.Client(cluster.url, timeout=20)
        yield cluster
        cluster.http.close()


def ok(c, r_or_info) -> dict:
    uid = r_or_info.json()["taskUid"] if isinstance(r_or_info, httpx.Response) else r_or_info.task_uid
    task = wait_task(c.url, uid, timeout=20)
    assert task["status"] == "succeeded", task
    return task


def node_settings(c, index: str) -> list[dict]:
    return [httpx.get(f"{d.url}/indexes/{index}/settings", timeout=5).json() for d in c.devnodes]


def node_task_totals(c) -> list[int]:
    return [httpx.get(f"{d.url}/tasks", params={"limit": 1}, timeout=5).json()["total"] for d in c.devnodes]


def test_settings_client_view_node_view_and_version(c):
    ok(c, c.ms.create_index("movies", {"primaryKey": "id"}))
    r = c.http.get("/indexes/movies/settings")
    # Keys behind an experimental feature (chat, foreignKeys) are hidden while it is off.
    assert r.json() == {k: v for k, v in DEFAULTS.items() if k not in GATED_KEYS} and r.headers[VERSION] == "0"
    for s in node_settings(c, "movies"):
        assert s["filterableAttributes"] == ["_miroir_shard"]
        assert s["faceting"]["maxValuesPerFacet"] == NODE_MAX_VALUES_PER_FACET

    index = c.ms.index("movies")
    ok(c, index.update_settings({
        "filterableAttributes": ["genre", "year"],
        "sortableAttributes": ["year"],
        "rankingRules": ["words", "sort", "year:desc", "typo", "proximity", "attribute", "exactness"],
        "distinctAttribute": "title",
        "faceting": {"maxValuesPerFacet": 7, "sortFacetValuesBy": {"genre": "count"}},
        "stopWords": ["the"],
    }))
    got = index.get_settings()
    assert got["filterableAttributes"] == ["genre", "year"]
    assert got["faceting"]["maxValuesPerFacet"] == 7  # the client's value, not the nodes'
    assert got["faceting"]["sortFacetValuesBy"]["genre"] == "count"
    assert got["rankingRules"][2] == "year:desc" and got["distinctAttribute"] == "title"
    assert c.http.get("/indexes/movies/settings").headers[VERSION] == "1"
    nodes = node_settings(c, "movies")
    assert len({settings_hash(s) for s in nodes}) == 1
    assert set(nodes[0]["filterableAttributes"]) == {"genre", "year", "_miroir_shard"}
    assert nodes[0]["faceting"]["maxValuesPerFacet"] == NODE_MAX_VALUES_PER_FACET

    # Sub-routes, with the verb Meilisearch uses for each.
    ok(c, index.update_filterable_attributes(["genre"]))
    assert index.get_filterable_attributes() == ["genre"]
    ok(c, index.update_faceting_settings({"maxValuesPerFacet": 3}))
    assert index.get_faceting_settings().max_values_per_facet == 3
    ok(c, index.update_typo_tolerance({"enabled": False}))
    assert index.get_typo_tolerance().enabled is False
    ok(c, index.reset_filterable_attributes())
    assert index.get_filterable_attributes() == []
    assert all(s["filterableAttributes"] == ["_miroir_shard"] for s in node_settings(c, "movies"))
    assert c.http.get("/indexes/movies/settings/faceting").json()["maxValuesPerFacet"] == 3

    ok(c, index.reset_settings())
    assert index.get_settings() == {k: v for k, v in DEFAULTS.items() if k not in GATED_KEYS}
    for s in node_settings(c, "movies"):
        assert s["filterableAttributes"] == ["_miroir_shard"]
        assert s["faceting"]["maxValuesPerFacet"] == NODE_MAX_VALUES_PER_FACET
    assert int(c.http.get("/indexes/movies/settings").headers[VERSION]) == 6


BAD = [
    ("PATCH", "/settings", {"rankingRules": ["nope"]}, 400, "invalid_settings_ranking_rules"),
    ("PATCH", "/settings", {"rankingRules": "words"}, 400, "invalid_settings_ranking_rules"),
    ("PATCH", "/settings", {"unknownThing": 1}, 400, "bad_request"),
    ("PATCH", "/settings", {"filterableAttributes": [1]}, 400, "invalid_settings_filterable_attributes"),
    ("PATCH", "/settings", {"faceting": {"maxValuesPerFacet": -1}}, 400, "invalid_settings_faceting"),
    ("PATCH", "/settings", {"typoTolerance": {"bogus": True}}, 400, "invalid_settings_typo_tolerance"),
    ("PATCH", "/settings", {"proximityPrecision": "byLetter"}, 400, "invalid_settings_proximity_precision"),
    ("PATCH", "/settings", [1], 400, "bad_request"),
    ("PUT", "/settings/ranking-rules", ["words", "bad rule"], 400, "invalid_settings_ranking_rules"),
    ("PUT", "/settings/synonyms", {"a": "b"}, 400, "invalid_settings_synonyms"),
    ("PATCH", "/settings/pagination", {"maxTotalHits": "x"}, 400, "invalid_settings_pagination"),
    ("PUT", "/settings/faceting", {"maxValuesPerFacet": 1}, 405, "method_not_allowed"),
    ("PATCH", "/settings/stop-words", ["a"], 405, "method_not_allowed"),
]


@pytest.mark.parametrize("case", BAD, ids=[f"{b[0]} {b[1]} {b[4]}" for b in BAD])
def test_bad_settings_touch_no_node(c, case):
    method, path, body, status, code = case
    before = node_task_totals(c)
    r = c.http.request(method, f"/indexes/movies{path}", json=body)
    assert (r.status_code, r.json()["code"]) == (status, code), r.text
    assert node_task_totals(c) == before


def test_divergent_node_is_repaired(c):
    ok(c, c.http.post("/indexes", json={"uid": "drift"}))
    # Behind Miroir's back, one node gets different stop words.
    r = httpx.put(f"{c.devnodes[1].url}/indexes/drift/settings/stop-words", json=["zzz"], timeout=5)
    wait_task(c.devnodes[1].url, r.json()["taskUid"])
    ok(c, c.http.put("/indexes/drift/settings/sortable-attributes", json=["a"]))
    nodes = node_settings(c, "drift")
    assert len({settings_hash(s) for s in nodes}) == 1
    assert nodes[1]["stopWords"] == [] and nodes[1]["sortableAttributes"] == ["a"]


def test_settings_on_missing_index_create_it(c):
    ok(c, c.http.patch("/indexes/implicit/settings", json={"searchableAttributes": ["title"]}))
    assert c.http.get("/indexes/implicit").status_code == 200
    for s in node_settings(c, "implicit"):
        assert s["searchableAttributes"] == ["title"] and s["filterableAttributes"] == ["_miroir_shard"]


def test_creation_rolls_back_and_deletion_broadcasts(c):
    # A leftover index on one node: creation fails with that node's error, and the
    # other nodes do not keep a half-created index.
    r = httpx.post(f"{c.devnodes[2].url}/indexes", json={"uid": "leftover"}, timeout=5)
    wait_task(c.devnodes[2].url, r.json()["taskUid"])
    r = c.http.post("/indexes", json={"uid": "leftover"})
    task = wait_task(c.url, r.json()["taskUid"], timeout=20)
    assert task["status"] == "failed" and task["error"]["code"] == "index_already_exists"
    assert [httpx.get(f"{d.url}/indexes/leftover", timeout=5).status_code for d in c.devnodes] == [404, 404, 200]
    assert c.http.get("/indexes/leftover").status_code == 404

    ok(c, c.http.post("/indexes", json={"uid": "doomed", "primaryKey": "id"}))
    ok(c, c.http.post("/indexes/doomed/documents", json=[{"id": i} for i in range(30)]))
    task = ok(c, c.http.delete("/indexes/doomed"))
    assert task["details"] == {"deletedDocuments": 30}
    assert all(httpx.get(f"{d.url}/indexes/doomed", timeout=5).status_code == 404 for d in c.devnodes)
    r = c.http.get("/indexes/doomed")
    assert (r.status_code, r.json()["code"]) == (404, "index_not_found")
    r = c.http.delete("/indexes/doomed")
    task = wait_task(c.url, r.json()["taskUid"])
    assert task["status"] == "failed" and task["error"]["code"] == "index_not_found"


def test_list_update_and_swap(c):
    ok(c, c.http.post("/indexes", json={"uid": "swap-a", "primaryKey": "id"}))
    ok(c, c.http.post("/indexes", json={"uid": "swap-b"}))
    ok(c, c.http.patch("/indexes/swap-b", json={"primaryKey": "key"}))
    assert c.http.get("/indexes/swap-b").json()["primaryKey"] == "key"
    ok(c, c.http.post("/indexes/swap-a/documents", json=[{"id": 1, "v": "a"}]))
    ok(c, c.http.post("/indexes/swap-b/documents", json=[{"key": "k1", "v": "b"}]))
    r = c.http.post("/swap-indexes", json=[{"indexes": ["swap-a", "swap-b"]}])
    ok(c, r)
    assert c.http.get("/indexes/swap-a").json()["primaryKey"] == "key"
    assert c.http.get("/indexes/swap-a/documents/k1").json() == {"key": "k1", "v": "b"}
    assert c.http.get("/indexes/swap-b/documents/1").json() == {"id": 1, "v": "a"}
    r = c.http.post("/swap-indexes", json=[{"indexes": ["swap-a"]}])
    assert (r.status_code, r.json()["code"]) == (400, "invalid_swap_indexes")

    listing = c.http.get("/indexes", params={"limit": 2, "offset": 1}).json()
    uids = sorted(c.ms.get_raw_indexes({"limit": 100})["results"], key=lambda i: i["uid"])
    assert listing["total"] == len(uids) and listing["limit"] == 2 and listing["offset"] == 1
    assert [i["uid"] for i in listing["results"]] == [i["uid"] for i in uids[1:3]]
    assert set(listing["results"][0]) == {"uid", "primaryKey", "createdAt", "updatedAt"}
    r = c.http.get("/indexes", params={"limit": "x"})
    assert (r.status_code, r.json()["code"]) == (400, "invalid_index_limit")
