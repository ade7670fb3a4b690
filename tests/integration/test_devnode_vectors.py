"""The devnode's vector search against Meilisearch 1.50's own tests (same data, same
answers): crates/meilisearch/tests/search/hybrid.rs (simple_search, limit_offset,
query_combination, distinct_is_applied) and tests/similar/mod.rs (basic), plus a `rest`
embedder served by the local embedder (src/miroir/embedder.py)."""

from __future__ import annotations

import itertools
import threading

import httpx
import pytest

from miroir.embedder import make_server
from tests.support.devnodes import start_devnodes, wait_task

_uids = itertools.count()

SIMPLE = [
    {"title": "Shazam!", "desc": "a Captain Marvel ersatz", "id": "1", "_vectors": {"default": [1.0, 3.0]}},
    {"title": "Captain Planet", "desc": "He's not part of the Marvel Cinematic Universe", "id": "2",
     "_vectors": {"default": [1.0, 2.0]}},
    {"title": "Captain Marvel", "desc": "a Shazam ersatz", "id": "3", "_vectors": {"default": [2.0, 3.0]}},
]
DISTINCT = [
    {"id": 0, "search": "Captain Planet", "desc": "#2 for keyword search, #3 for hybrid search",
     "_vectors": {"default": [-1.0, 0.0]}, "distinct": 0},
    {"id": 1, "search": "Captain Marvel", "desc": "#1 for keyword search, #4 for hybrid search",
     "_vectors": {"default": [-1.0, -1.0]}, "distinct": 1},
    {"id": 2, "search": "Some Captain at least", "desc": "#3 for keyword search, #1 for hybrid search",
     "_vectors": {"default": [1.0, 1.0]}, "distinct": 0},
    {"id": 3, "search": "Irrelevant Capitaine", "desc": "#4 for keyword search, #2 for hybrid search",
     "_vectors": {"default": [1.0, 0.0]}, "distinct": 1},
]
MOVIES = [
    {"title": "Shazam!", "release_year": 2019, "id": "287947", "_vectors": {"manual": [0.8, 0.4, -0.5]}},
    {"title": "Captain Marvel", "release_year": 2019, "id": "299537", "_vectors": {"manual": [0.6, 0.8, -0.2]}},
    {"title": "Escape Room", "release_year": 2019, "id": "522681", "_vectors": {"manual": [0.1, 0.6, 0.8]}},
    {"title": "How to Train Your Dragon: The Hidden World", "release_year": 2019, "id": "166428",
     "_vectors": {"manual": [0.7, 0.7, -0.4]}},
    {"title": "All Quiet on the Western Front", "release_year": 1930, "id": "143",
     "_vectors": {"manual": [-0.5, 0.3, 0.85]}},
]


def _index(node, settings: dict, docs: list[dict]) -> tuple[httpx.Client, str]:
    uid = f"vec{next(_uids)}"
    client = httpx.Client(base_url=node.url, timeout=30)
    for method, path, body in (("PATCH", f"/indexes/{uid}/settings", settings), ("POST", f"/indexes/{uid}/documents", docs)):
        r = client.request(method, path, json=body)
        assert r.status_code == 202, r.text
        assert wait_task(node.url, r.json()["taskUid"])["status"] == "succeeded"
    return client, uid


def _user_provided(node, docs, dims=2, **extra):
    return _index(node, {"embedders": {"default": {"source": "userProvided", "dimensions": dims}}, **extra}, docs)


def _ids(answer: dict) -> list:
    return [h["id"] for h in answer["hits"]]


def test_simple_search_and_limit_offset(devnode):
    client, uid = _user_provided(devnode, SIMPLE)

    def search(body):
        r = client.post(f"/indexes/{uid}/search", json=body)
        assert r.status_code == 200, r.text
        return r.json()

    base = {"q": "Captain", "vector": [1.0, 1.0], "retrieveVectors": True}
    a = search({**base, "hybrid": {"semanticRatio": 0.2, "embedder": "default"}})
    assert (_ids(a), a["semanticHitCount"], a["estimatedTotalHits"]) == (["2", "3", "1"], 0, 3)
    assert a["hits"][1]["_vectors"] == {"default": {"embeddings": [[2.0, 3.0]], "regenerate": False}}
    a = search({**base, "hybrid": {"semanticRatio": 0.5, "embedder": "default"}, "showRankingScore": True})
    assert (_ids(a), a["semanticHitCount"]) == (["3", "2", "1"], 2)
    assert [h["_rankingScore"] for h in a["hits"]] == pytest.approx([0.990290343761444, 0.9848484848484848, 0.9472135901451112])
    a = search({**base, "hybrid": {"semanticRatio": 0.8, "embedder": "default"}, "showRankingScore": True})
    assert (_ids(a), a["semanticHitCount"]) == (["3", "2", "1"], 3)
    assert [h["_rankingScore"] for h in a["hits"]] == pytest.approx([0.990290343761444, 0.974341630935669, 0.9472135901451112])
    a = search({**base, "hybrid": {"semanticRatio": 0.2, "embedder": "default"}, "offset": 1, "limit": 1})
    assert (_ids(a), a["semanticHitCount"]) == (["3"], 0)
    a = search({**base, "hybrid": {"semanticRatio": 0.9, "embedder": "default"}, "offset": 1, "limit": 1})
    assert (_ids(a), a["semanticHitCount"]) == (["2"], 1)
    a = search({**base, "hybrid": {"semanticRatio": 1.0, "embedder": "default"}, "showRankingScoreDetails": True})
    assert a["hits"][0]["_rankingScoreDetails"]["vectorSort"]["similarity"] == pytest.approx(0.990290343761444)


def test_query_combination(devnode):
    client, uid = _user_provided(devnode, SIMPLE)
    path = f"/indexes/{uid}/search"
    r = client.post(path, json={"hybrid": {"embedder": "default", "semanticRatio": 1.0}})
    assert r.status_code == 200 and "semanticHitCount" not in r.json()  # placeholder: keyword
    r = client.post(path, json={"vector": [1.0, 0.0], "hybrid": {"embedder": "default", "semanticRatio": 1.0}})
    assert r.json()["semanticHitCount"] == 3
    r = client.post(path, json={"vector": [1.0, 0.0], "hybrid": {"embedder": "default", "semanticRatio": 0.0}})
    assert r.status_code == 200 and "semanticHitCount" not in r.json()
    r = client.post(path, json={"q": "Captain", "vector": [1.0, 0.0], "showRankingScore": True})
    assert (r.status_code, r.json()["code"]) == (400, "missing_search_hybrid")
    r = client.post(path, json={"q": "Captain", "hybrid": {"semanticRatio": 1.0, "embedder": "default"}})
    assert r.status_code == 400
    assert r.json()["code"] == "vector_embedding_error"
    assert r.json()["message"] == (
        "Error while generating embeddings: user error: attempt to embed the following text in a configuration "
        "where embeddings must be user provided:\n  - `Captain`"
    )
    r = client.post(path, json={"q": "Planet", "hybrid": {"semanticRatio": 0.99, "embedder": "default"}})
    assert (r.status_code, r.json()["semanticHitCount"], _ids(r.json())) == (200, 0, ["2"])


def test_distinct_is_applied(devnode):
    client, uid = _user_provided(devnode, DISTINCT, distinctAttribute="distinct")
    path = f"/indexes/{uid}/search"
    body = {"q": "Captain Marvel", "vector": [1.0, 1.0]}
    a = client.post(path, json={**body, "hybrid": {"semanticRatio": 0.0, "embedder": "default"}}).json()
    assert (_ids(a), a.get("semanticHitCount"), a["estimatedTotalHits"]) == ([1, 0], None, 2)
    a = client.post(path, json={**body, "hybrid": {"semanticRatio": 1.0, "embedder": "default"}}).json()
    assert (_ids(a), a["semanticHitCount"], a["estimatedTotalHits"]) == ([2, 3], 2, 2)
    a = client.post(path, json={**body, "hybrid": {"semanticRatio": 0.5, "embedder": "default"}}).json()
    assert (_ids(a), a["semanticHitCount"]) == ([2, 1], 1)


def test_similar_basic(devnode):
    client, uid = _index(
        devnode, {"embedders": {"manual": {"source": "userProvided", "dimensions": 3}}, "filterableAttributes": ["title"]},
        MOVIES,
    )
    r = client.post(f"/indexes/{uid}/similar", json={"id": 143, "retrieveVectors": True, "embedder": "manual"})
    assert r.status_code == 200, r.text
    assert _ids(r.json()) == ["522681", "299537", "166428", "287947"]
    assert r.json()["hits"][0]["_vectors"]["manual"]["embeddings"] == [[0.10000000149011612, 0.6000000238418579, 0.800000011920929]]
    r = client.get(f"/indexes/{uid}/similar", params={"id": "299537", "embedder": "manual"})
    assert _ids(r.json()) == ["166428", "287947", "522681", "143"]
    r = client.post(f"/indexes/{uid}/similar", json={"id": "definitely-doesnt-exist", "embedder": "manual"})
    assert (r.status_code, r.json()["code"], r.json()["message"]) == (
        400, "not_found_similar_id", "Document `definitely-doesnt-exist` not found.")
    r = client.post(f"/indexes/{uid}/similar", json={"id": 143, "embedder": "auto"})
    assert (r.status_code, r.json()["message"]) == (400, "Cannot find embedder with name `auto`.")
    stats = client.get(f"/indexes/{uid}/stats").json()
    assert (stats["numberOfEmbeddings"], stats["numberOfEmbeddedDocuments"]) == (5, 5)


def test_rest_embedder_embeds_documents_and_queries(devnode):
    server = make_server(0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        conf = {"source": "rest", "url": url, "request": {"input": "{{text}}"}, "response": {"embedding": "{{embedding}}"},
                "documentTemplate": "{{doc.title}}"}
        client, uid = _index(devnode, {"embedders": {"rest": conf}}, [{"id": d["id"], "title": d["title"]} for d in MOVIES])
        assert httpx.get(f"{url}/stats").json()["calls"] == len(MOVIES)  # one call per document (no batch form)
        a = client.post(f"/indexes/{uid}/search", json={"q": "escape room", "hybrid": {"embedder": "rest", "semanticRatio": 1.0},
                                                        "showRankingScore": True}).json()
        assert _ids(a)[0] == "522681" and a["hits"][0]["_rankingScore"] == pytest.approx(1.0)
        doc = client.get(f"/indexes/{uid}/documents/143", params={"retrieveVectors": "true"}).json()
        assert doc["_vectors"]["rest"]["regenerate"] is True and len(doc["_vectors"]["rest"]["embeddings"][0]) == 256
        # A source the devnode cannot run is stored (as 1.50 accepts it); given embeddings
        # are kept, and documents without any are simply not embedded.
        r = client.patch(f"/indexes/{uid}/settings", json={"embedders": {"hf": {"source": "huggingFace"}}})
        assert wait_task(devnode.url, r.json()["taskUid"])["status"] == "succeeded"
        r = client.post(f"/indexes/{uid}/documents", json=[{"id": "9", "title": "x", "_vectors": {"hf": [0.5, 0.5]}}])
        assert wait_task(devnode.url, r.json()["taskUid"])["status"] == "succeeded"
        doc = client.get(f"/indexes/{uid}/documents/9", params={"retrieveVectors": "true"}).json()
        assert doc["_vectors"]["hf"] == {"embeddings": [[0.5, 0.5]], "regenerate": False}
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_embeddings_survive_a_restart_without_the_embedder(tmp_path):
    """A devnode with a data dir keeps every embedding (rest ones too, as Meilisearch's
    dumps keep them): restarted while the embedder is down, it embeds nothing again."""
    server = make_server(0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    conf = {"source": "rest", "url": url, "documentTemplate": "{{doc.title}}",
            "request": {"input": "{{text}}"}, "response": {"embedding": "{{embedding}}"}}
    with start_devnodes(1, data_dirs=[str(tmp_path)]) as (node,):
        client, uid = _index(node, {"embedders": {"rest": conf, "manual": {"source": "userProvided", "dimensions": 3}}}, MOVIES)
        before = client.get(f"/indexes/{uid}/documents", params={"retrieveVectors": "true"}).json()
        server.shutdown()
        server.server_close()
        thread.join(5)
        node.kill()
        node.restart()
        after = client.get(f"/indexes/{uid}/documents", params={"retrieveVectors": "true"}).json()
        assert after == before and len(after["results"]) == len(MOVIES)
        r = client.post(f"/indexes/{uid}/similar", json={"id": "143", "embedder": "rest"})
        assert r.status_code == 200 and len(r.json()["hits"]) == len(MOVIES) - 1
        client.close()


SIMILAR_ORDER = ["522681", "299537", "166428", "287947"]  # nearest `143` first
SIMILAR_SCORES = [0.890957772731781, 0.39060014486312866, 0.2819308042526245, 0.1662663221359253]


def test_similar_threshold_filter_window_and_details(devnode):
    """tests/similar/mod.rs: ranking_score_threshold, filter, limit_and_offset,
    performance_details (same documents, same answers)."""
    client, uid = _index(
        devnode,
        {"embedders": {"manual": {"source": "userProvided", "dimensions": 3}}, "filterableAttributes": ["title", "release_year"]},
        MOVIES,
    )

    def similar(body):
        r = client.post(f"/indexes/{uid}/similar", json={"embedder": "manual", **body})
        assert r.status_code == 200, r.text
        return r.json()

    a = similar({"id": 143, "showRankingScore": True, "rankingScoreThreshold": 0, "retrieveVectors": True})
    assert _ids(a) == SIMILAR_ORDER
    assert [h["_rankingScore"] for h in a["hits"]] == pytest.approx(SIMILAR_SCORES)
    for threshold, total in ((0.2, 3), (0.3, 2), (0.6, 1), (0.9, 0)):
        a = similar({"id": 143, "showRankingScore": True, "rankingScoreThreshold": threshold, "retrieveVectors": True})
        assert (_ids(a), a["estimatedTotalHits"]) == (SIMILAR_ORDER[:total], total)
    a = similar({"id": 522681, "filter": "release_year = 2019", "retrieveVectors": True})
    assert _ids(a) == ["299537", "166428", "287947"] and "_rankingScore" not in a["hits"][0]
    a = similar({"id": 522681, "filter": "release_year < 2000", "retrieveVectors": True})
    assert _ids(a) == ["143"]
    assert a["hits"][0]["_vectors"]["manual"]["embeddings"] == [[-0.5, 0.30000001192092896, 0.8500000238418579]]
    assert _ids(similar({"id": 143, "limit": 1, "retrieveVectors": True})) == ["522681"]
    assert _ids(similar({"id": 143, "limit": 1, "offset": 1, "retrieveVectors": True})) == ["299537"]
    a = similar({"id": 143, "showPerformanceDetails": True})
    assert a["hits"][0] == {"title": "Escape Room", "release_year": 2019, "id": "522681"}
    assert {k: a[k] for k in ("id", "limit", "offset", "estimatedTotalHits")} == \
        {"id": "143", "limit": 20, "offset": 0, "estimatedTotalHits": 4}
    assert list(a) == ["hits", "id", "processingTimeMs", "limit", "offset", "estimatedTotalHits", "performanceDetails"]


def test_user_provided_vectors_required(devnode):
    """tests/vector/mod.rs user_provided_vectors_error: a userProvided embedder's
    documents must bring embeddings (or opt out with null); the task fails otherwise."""
    client, uid = _index(devnode, {"embedders": {"manual": {"source": "userProvided", "dimensions": 3}}},
                         [{"id": 1, "name": "opted out", "_vectors": {"manual": None}}])
    note = ("- Note: `manual` has `source: userProvided`, so documents must provide embeddings as an array in "
            "`_vectors.manual`.\n- Hint: ")
    for docs, message in (
        ([{"id": i, "name": n} for i, n in zip(range(40, 45), ["kefir", "intel", "max", "venus", "eva"])],
         "no vectors provided for document `40` and at least 4 other document(s)\n" + note
         + "opt-out for a document with `_vectors.manual: null`"),
        ([{"id": 42, "name": "kefir", "_vector": {"manaul": [0, 0, 0]}}],
         "no vectors provided for document `42`\n" + note + "try replacing `_vector` by `_vectors` in 1 document(s)."),
        ([{"id": 42, "name": "kefir", "_vectors": {"manaul": [0, 0, 0]}}],
         "no vectors provided for document `42`\n" + note
         + "try replacing `_vectors.manaul` by `_vectors.manual` in 1 document(s)."),
    ):
        r = client.post(f"/indexes/{uid}/documents", json=docs)
        task = wait_task(devnode.url, r.json()["taskUid"])
        assert task["status"] == "failed"
        assert task["error"] == {
            "message": f"Index `{uid}`: While embedding documents for embedder `manual`: " + message,
            "code": "vector_embedding_error", "type": "invalid_request",
            "link": "https://docs.meilisearch.com/errors#vector_embedding_error"}
    # the opted-out document may be updated without embeddings
    r = client.post(f"/indexes/{uid}/documents", json=[{"id": 1, "name": "still opted out"}])
    assert wait_task(devnode.url, r.json()["taskUid"])["status"] == "succeeded"


BAD_CONFIG = "Bad embedder configuration in the document with id: `0`. "
MISSING_REGENERATE = ("Missing field `._vectors.manual.regenerate`\n  - note: `._vectors.manual` must be an array of "
                      "floats, an array of arrays of floats, or an object with field `regenerate`")


@pytest.mark.parametrize(("vectors", "code", "message"), [
    # user_provide_mismatched_embedding_dimension
    ([0, 0], "invalid_vector_dimensions", "Invalid vector dimensions in document with id `0` in `._vectors.manual`.\n"
     "  - note: embedding #0 has dimensions 2\n  - note: embedder `manual` requires 3"),
    ([[0, 0], [1, 1], [2, 2]], "invalid_vector_dimensions", "Invalid vector dimensions in document with id `0` in "
     "`._vectors.manual`.\n  - note: embedding #0 has dimensions 2\n  - note: embedder `manual` requires 3"),
    # user_provided_embeddings_error
    ({"embeddings": [0, 0, 0]}, "invalid_vectors_type", BAD_CONFIG + MISSING_REGENERATE),
    ({}, "invalid_vectors_type", BAD_CONFIG + MISSING_REGENERATE),
    ({"regenerate": "yes please"}, "invalid_vectors_type", BAD_CONFIG + "Could not parse `._vectors.manual.regenerate`: "
     'invalid type: string "yes please", expected a boolean at line 1 column 26'),
    ({"embeddings": True, "regenerate": True}, "invalid_vectors_type", BAD_CONFIG + "Invalid value type at "
     "`._vectors.manual.embeddings`: expected null or an array, but found a boolean: `true`"),
    ({"embeddings": [True], "regenerate": True}, "invalid_vectors_type", BAD_CONFIG + "Invalid value type at "
     "`._vectors.manual.embeddings[0]`: expected a number or an array, but found a boolean: `true`"),
    ({"embeddings": [[True]], "regenerate": False}, "invalid_vectors_type", BAD_CONFIG + "Invalid value type at "
     "`._vectors.manual.embeddings[0][0]`: expected a number, but found a boolean: `true`"),
    ({"regenerate": False, "embeddings": [0.1, [0.2, 0.3]]}, "invalid_vectors_type", BAD_CONFIG + "Invalid value type "
     "at `._vectors.manual.embeddings[1]`: expected a number, but found an array: `[0.2,0.3]`"),
    ({"regenerate": False, "embeddings": [[0.1, 0.2], 0.3]}, "invalid_vectors_type", BAD_CONFIG + "Invalid value type "
     "at `._vectors.manual.embeddings[1]`: expected an array, but found a number: `0.3`"),
    ({"regenerate": False, "embeddings": [[0.1, True], 0.3]}, "invalid_vectors_type", BAD_CONFIG + "Invalid value type "
     "at `._vectors.manual.embeddings[0][1]`: expected a number, but found a boolean: `true`"),
    ({"embeddings": [23, 0.1, -12], "regenerate": True}, None, None),
    ({"regenerate": False}, None, None),
])
def test_user_provided_embedding_errors(devnode, vectors, code, message):
    """tests/vector/mod.rs user_provided_embeddings_error and
    user_provide_mismatched_embedding_dimension: each bad `_vectors` fails its task."""
    client, uid = _index(devnode, {"embedders": {"manual": {"source": "userProvided", "dimensions": 3}}},
                         [{"id": 99, "name": "opted out", "_vectors": {"manual": None}}])
    r = client.post(f"/indexes/{uid}/documents", json=[{"id": 0, "name": "kefir", "_vectors": {"manual": vectors}}])
    task = wait_task(devnode.url, r.json()["taskUid"])
    if code is None:
        assert task["status"] == "succeeded", task
    else:
        assert task["error"] == {"message": f"Index `{uid}`: {message}", "code": code, "type": "invalid_request",
                                 "link": f"https://docs.meilisearch.com/errors#{code}"}


def test_add_remove_user_provided_and_clear(devnode):
    """tests/vector/mod.rs add_remove_user_provided, add_remove_one_vector_4588 and
    clear_documents: embeddings replaced, removed with null, gone with the documents."""
    manual = lambda *e: {"manual": {"embeddings": [list(x) for x in e], "regenerate": False}}  # noqa: E731
    client, uid = _index(devnode, {"embedders": {"manual": {"source": "userProvided", "dimensions": 3}}},
                         [{"id": 0, "name": "kefir", "_vectors": {"manual": [0, 0, 0]}},
                          {"id": 1, "name": "echo", "_vectors": {"manual": [1, 1, 1]}}])

    def listing() -> list:
        got = client.get(f"/indexes/{uid}/documents", params={"retrieveVectors": "true"}).json()
        return [(d["id"], d["_vectors"]) for d in got["results"]]

    assert listing() == [(0, manual((0.0, 0.0, 0.0))), (1, manual((1.0, 1.0, 1.0)))]
    r = client.post(f"/indexes/{uid}/documents", json=[{"id": 0, "name": "kefir", "_vectors": {"manual": [10, 10, 10]}},
                                                       {"id": 1, "name": "echo", "_vectors": {"manual": None}}])
    assert wait_task(devnode.url, r.json()["taskUid"])["status"] == "succeeded"
    assert listing() == [(0, manual((10.0, 10.0, 10.0))), (1, manual())]
    # a document without embeddings is still a semantic hit (issue 4588), without a similarity
    body = {"vector": [1, 1, 1], "hybrid": {"semanticRatio": 1.0, "embedder": "manual"}, "filter": None}
    a = client.post(f"/indexes/{uid}/search", json=body).json()
    assert (_ids(a), a["estimatedTotalHits"], a["semanticHitCount"]) == ([0, 1], 2, 2)
    r = client.delete(f"/indexes/{uid}/documents/0")
    assert wait_task(devnode.url, r.json()["taskUid"])["status"] == "succeeded"
    assert listing() == [(1, manual())]
    r = client.delete(f"/indexes/{uid}/documents")
    assert wait_task(devnode.url, r.json()["taskUid"])["status"] == "succeeded"
    assert listing() == []
    a = client.post(f"/indexes/{uid}/search", json={"vector": [1, 1, 1], "hybrid": {"embedder": "manual"}}).json()
    assert (a["hits"], a["estimatedTotalHits"], a["semanticHitCount"]) == ([], 0, 0)


def test_federated_vectors_as_1_50_shows_them(devnode):
    """Meilisearch's federation_vector_two_indexes, its semantic queries alone: the
    similarity in f32 (p.q / (|p| |q|) as 1.50's store: D scores 0.97284794, not the
    f64 0.97284788), `queryVectors` by query position (f32 as serde prints them), and a
    `_vectors` entry naming no embedder of the index shown as the document gave it."""
    docs = [{"id": "D", "_vectors": {"animal": [0.8, 0.09, 0.8], "sentiment": [0.8, 0.3]}},
            {"id": "A", "_vectors": {"animal": [0.9, 0.8, 0.05], "sentiment": [-0.1, 0.55]}}]
    client, animal = _index(devnode, {"embedders": {"animal": {"source": "userProvided", "dimensions": 3}}}, docs)
    _, sentiment = _index(devnode, {"embedders": {"sentiment": {"source": "userProvided", "dimensions": 2}}}, docs)
    r = client.post("/multi-search", json={"federation": {}, "queries": [
        {"indexUid": animal, "vector": [1.0, 0.0, 0.5], "hybrid": {"semanticRatio": 1.0, "embedder": "animal"},
         "retrieveVectors": True},
        {"indexUid": sentiment, "vector": [0.8, 0.6], "hybrid": {"semanticRatio": 1.0, "embedder": "sentiment"}},
    ]})
    assert r.status_code == 200, r.text
    out = r.json()
    assert list(out)[:2] == ["hits", "queryVectors"] and out["queryVectors"] == {"0": [1.0, 0.0, 0.5]}
    first = next(h for h in out["hits"] if h["_federation"]["indexUid"] == animal and h["id"] == "D")
    assert first["_federation"]["weightedRankingScore"] == 0.9728479385375977
    assert first["_vectors"] == {"sentiment": [0.8, 0.3],
                                 "animal": {"embeddings": [[0.800000011920929, 0.09000000357627869, 0.800000011920929]],
                                            "regenerate": False}}
    assert all("_vectors" not in h for h in out["hits"] if h["_federation"]["indexUid"] == sentiment)
    client.close()
