"""`_miroir_shard` never matches a query, and attribute order never changes a ranking.

Miroir stores `_miroir_shard: <int>` in every document on the nodes; under the client's
`searchableAttributes: ["*"]` the nodes would index that number as a word. Sub-queries
therefore carry `attributesToSearchOn` = every attribute the index has seen (journaled,
engine/fields.py). Since Meilisearch 1.8 every field weighs the same under `["*"]`, so
the order in which attributes first appeared (which differs per node) does not matter,
and an explicit node list (which would weigh fields by position) is not used: the nodes
keep `["*"]`. Oracle: one devnode holding the same documents.
"""

from __future__ import annotations

import contextlib
import tempfile

import httpx
import pytest

from miroir.core import fields
from tests.support.devnodes import start_devnodes, wait_task
from tests.support.miroir_proc import make_config, serve_miroir

SHARDS = 8
TIMEOUT = 20

WORDS = ["river", "stone", "maple", "harbor", "lantern", "copper", "meadow", "falcon"]


def batches() -> list[list[dict]]:
    """Batch 1 {id, title, body}, batch 2 {id, body, title, extra}: attributes appear in
    other orders, and on each node in the order its shards' documents arrived."""
    one = [
        {"id": i, "title": f"{WORDS[i % 8]} {i % 5} route", "body": f"{WORDS[(i + 3) % 8]} walk {i % 3}"}
        for i in range(40)
    ]
    two = [
        {
            "id": 100 + i,
            "body": f"{WORDS[(i + 1) % 8]} {i % 4} trail",
            "title": f"{WORDS[(i + 5) % 8]} lake",
            "extra": {"note": f"{WORDS[i % 8]} {i % 6}", "tags": ["route", WORDS[(i + 2) % 8]]},
        }
        for i in range(40)
    ]
    return [one, two]


QUERIES = [
    {"q": "3"},
    {"q": "7"},
    {"q": "0"},
    {"q": "5 route"},
    {"q": "river"},  # title in batch 1, body/extra elsewhere
    {"q": "lake"},  # title of batch 2 only
    {"q": "walk"},  # body of batch 1 only
    {"q": "route maple"},
    {"q": "falc"},  # prefix
    {"q": "coper"},  # typo
    {"q": "2", "filter": "kind = b"},
    {"q": "1", "attributesToSearchOn": ["title", "body"]},
    {"q": "4", "page": 1, "hitsPerPage": 5},
]


def _tie_groups(hits: list[dict]) -> list[list[dict]]:
    groups: list[list[dict]] = []
    for h in hits:
        if groups and groups[-1][0]["_rankingScoreDetails"] == h["_rankingScoreDetails"]:
            groups[-1].append(h)
        else:
            groups.append([h])
    return groups


def same_answer(one: dict, got: dict) -> None:
    """Equal hits, scores, details and totals; inside a tie the order is internal-id order
    on one node, which a sharded index cannot reproduce: ties compare as sets."""
    assert got.get("estimatedTotalHits") == one.get("estimatedTotalHits")
    assert got.get("totalHits") == one.get("totalHits")
    assert [h["_rankingScoreDetails"] for h in got["hits"]] == [h["_rankingScoreDetails"] for h in one["hits"]]
    assert [h["_rankingScore"] for h in got["hits"]] == [h["_rankingScore"] for h in one["hits"]]
    full = len(one["hits"]) < (one.get("limit") or one.get("hitsPerPage") or 20)
    groups = _tie_groups(one["hits"])
    pos = 0
    for i, g in enumerate(groups):
        ids_one = sorted(h["id"] for h in g)
        ids_got = sorted(h["id"] for h in got["hits"][pos : pos + len(g)])
        if i < len(groups) - 1 or full:  # the last group may be cut by the page end
            assert ids_got == ids_one, (g[0]["_rankingScoreDetails"], ids_one, ids_got)
        pos += len(g)
    for h in got["hits"]:
        assert not any(k.startswith("_miroir") for k in h)


def _ok(client: httpx.Client, r: httpx.Response) -> None:
    assert r.status_code == 202, r.text
    task = wait_task(str(client.base_url), r.json()["taskUid"], timeout=TIMEOUT)
    assert task["status"] == "succeeded", task


def load(client: httpx.Client) -> None:
    _ok(client, client.post("/indexes", json={"uid": "trails", "primaryKey": "id"}))
    _ok(client, client.patch("/indexes/trails/settings", json={"filterableAttributes": ["kind"]}))
    for n, batch in enumerate(batches()):
        docs = [{**d, "kind": "ab"[n]} for d in batch]
        _ok(client, client.post("/indexes/trails/documents", json=docs))


def ask(client: httpx.Client, query: dict) -> dict:
    r = client.post("/indexes/trails/search", json={**query, "showRankingScore": True, "showRankingScoreDetails": True})
    assert r.status_code == 200, r.text
    return r.json()


@contextlib.contextmanager
def miroir(devs, data_dir: str):
    config = make_config(devs, groups=1, rf=1, shards=SHARDS, data_dir=data_dir)
    with serve_miroir(config) as (url, cluster), httpx.Client(base_url=url, timeout=TIMEOUT) as client:
        yield client, cluster


@pytest.fixture(scope="module")
def setup():
    with (
        start_devnodes(1) as single,
        start_devnodes(3) as devs,
        tempfile.TemporaryDirectory() as tmp,
        httpx.Client(base_url=single[0].url, timeout=TIMEOUT) as oracle,
    ):
        load(oracle)
        with miroir(devs, tmp) as (client, cluster):
            load(client)
            yield oracle, client, cluster, devs, tmp


# ---------------------------------------------------------------- pure


def test_batch_fields_first_appearance_nested_reserved_excluded():
    docs = [
        {"id": 1, "title": "a", "_miroir_shard": 3},
        {"id": 2, "body": "b", "title": "c", "meta": {"x": 1, "y": [{"z": 2}]}},
        {"id": 3, "title": "d"},
    ]
    assert list(fields.batch_fields(docs)) == ["id", "title", "body", "meta", "meta.x", "meta.y", "meta.y.z"]
    assert fields.new_fields(["id", "body"], fields.batch_fields(docs)) == ["title", "meta", "meta.x", "meta.y", "meta.y.z"]


def test_search_on_rules():
    seen = ["id", "title"]
    assert fields.search_on(["*"], seen, None) == seen
    assert fields.search_on(["*"], seen, ["*", "title"]) == seen
    assert fields.search_on(["*"], seen, ["title"]) is None  # kept as requested
    assert fields.search_on(["*"], seen, ["title", "_miroir_shard"]) == ["title"]
    assert fields.search_on(["*"], [], None) is None  # nothing seen: untouched
    assert fields.search_on(["title", "id"], seen, None) is None  # explicit list: nodes hold it


# ---------------------------------------------------------------- through Miroir


@pytest.mark.parametrize("query", QUERIES, ids=[str(q) for q in QUERIES])
def test_same_ranking_as_one_node(setup, query):
    oracle, client, *_ = setup
    one, got = ask(oracle, query), ask(client, query)
    same_answer(one, got)


def test_shard_number_matches_nothing_by_itself(setup):
    oracle, client, *_ = setup
    # Every shard number as a query: the totals of one node (no such field there).
    for q in [str(s) for s in range(SHARDS)]:
        assert ask(client, {"q": q})["estimatedTotalHits"] == ask(oracle, {"q": q})["estimatedTotalHits"], q
    # Batch 2 (kind b) ids are 100.., bodies hold 0..3, notes 0..5: only a shard number
    # could match "7" there.
    assert ask(oracle, {"q": "7", "filter": "kind = b"})["estimatedTotalHits"] == 0
    assert ask(client, {"q": "7", "filter": "kind = b"})["estimatedTotalHits"] == 0


def test_facet_search_ignores_shard_numbers(setup):
    oracle, client, *_ = setup
    for q in ("7", "3"):
        body = {"facetName": "kind", "q": q}
        one = oracle.post("/indexes/trails/facet-search", json=body).json()["facetHits"]
        got = client.post("/indexes/trails/facet-search", json=body).json()["facetHits"]
        assert got == one, q


def test_settings_keep_the_wildcard(setup):
    _oracle, client, cluster, devs, _ = setup
    assert client.get("/indexes/trails/settings").json()["searchableAttributes"] == ["*"]
    for d in devs:
        s = httpx.get(f"{d.url}/indexes/trails/settings", timeout=TIMEOUT).json()
        assert s["searchableAttributes"] == ["*"]  # equal weights, as on one node
    seen = cluster.state.index_fields["trails"]
    assert seen[:3] == ["id", "title", "body"] and "extra.note" in seen and "kind" in seen
    assert not any(f.startswith("_miroir") for f in seen)


def test_later_batch_appends_new_attributes(setup):
    _oracle, client, cluster, *_ = setup
    before = list(cluster.state.index_fields["trails"])
    _ok(client, client.post("/indexes/trails/documents", json=[{"id": 999, "late": "zephyr", "kind": "c"}]))
    assert cluster.state.index_fields["trails"] == [*before, "late"]
    hits = client.post("/indexes/trails/search", json={"q": "zephyr"}).json()["hits"]
    assert [h["id"] for h in hits] == [999]
    _ok(client, client.delete("/indexes/trails/documents/999"))


def test_restart_replays_the_journal():
    docs = [{"id": i, "title": f"word {i}"} for i in range(20)]
    with start_devnodes(2) as devs, tempfile.TemporaryDirectory() as tmp:
        with miroir(devs, tmp) as (client, cluster):
            _ok(client, client.post("/indexes/t/documents", json=docs))
            _ok(client, client.post("/indexes/t/documents", json=[{"id": 50, "other": "x", "title": "y"}]))
            before = list(cluster.state.index_fields["t"])
            assert before == ["id", "title", "other"]
        with miroir(devs, tmp) as (client, cluster):
            assert cluster.state.index_fields["t"] == before
            hits = client.post("/indexes/t/search", json={"q": "1 "}).json()["hits"]  # no prefix
            assert [h["id"] for h in hits] == [1]  # "1" only in doc 1's title, never a shard


def test_swap_carries_the_fields():
    with start_devnodes(2) as devs, tempfile.TemporaryDirectory() as tmp, miroir(devs, tmp) as (client, cluster):
        _ok(client, client.post("/indexes/a/documents", json=[{"id": 1, "alpha": "one"}]))
        _ok(client, client.post("/indexes/b/documents", json=[{"id": 1, "beta": "two"}]))
        _ok(client, client.post("/swap-indexes", json=[{"indexes": ["a", "b"]}]))
        assert "beta" in cluster.state.index_fields["a"] and "alpha" in cluster.state.index_fields["b"]
        hits = client.post("/indexes/a/search", json={"q": "two"}).json()["hits"]
        assert [h["id"] for h in hits] == [1]


def test_devnode_wildcard_weights_ignore_first_appearance():
    """Meilisearch >= 1.8 (meilisearch/meilisearch#4631): under `["*"]` every field weighs
    the same, whatever order attributes first appeared in; the devnode does the same."""
    from miroir.devnode.engine import IndexEngine

    def scores(first: list[dict]) -> dict:
        eng = IndexEngine("x", "id")
        eng.add_documents(first, None, partial=False)
        eng.add_documents([{"id": 9, "body": "white", "name": "spirit"}], None, partial=False)
        hits = eng.search({"q": "white", "showRankingScoreDetails": True})["hits"]
        return {h["id"]: h["_rankingScoreDetails"] for h in hits}

    a = scores([{"id": 1, "name": "white", "body": "kefir"}])
    b = scores([{"id": 1, "body": "kefir", "name": "white"}])
    assert a == b
    assert a[1]["attributeRank"] == a[9]["attributeRank"]  # 1.50 default rules: the Fid part alone
