"""Oracle for vector search: Miroir over 3 devnodes answers like one devnode holding all.

A few hundred Debian packages, with two embedders: `rest` (the local embedder of
src/miroir/embedder.py, started here on loopback: the devnodes embed the documents and
the queries) and `manual` (`userProvided`: two documents in three bring `_vectors`, made
by the same hashing function). Generated queries mix semantic searches (`vector`, or a
query embedded by the rest embedder, `semanticRatio` 1), hybrid searches at several
`semanticRatio` values, filters, facets, offset/limit and page/hitsPerPage windows,
thresholds, and `/similar` (GET and POST). Answers must be equal as in test_oracle.py
(ties of hybrid searches compared as sets). Also: `_vectors` come back intact through Miroir's document
routes, and stats count the embeddings.
"""

from __future__ import annotations

import random

import httpx
import pytest

from miroir.embedder import embed
from tests.integration.test_rebalance import wait_idle
from tests.oracle.test_oracle import compare
from tests.support import miroir_proc
from tests.support.corpus import CORPUS, read_docs
from tests.support.devnodes import start_devnodes, wait_task
from tests.support.embedder import local_embedder

UID = "packages"
N_DOCS = 300
N_QUERIES = 192  # + 8 federated: 200 generated per layout, then 11 refusals
N_COUNTED = 100  # hybrid searches whose embedder calls are counted
SEED = 18
FILTERABLE = ["section", "priority", "architecture", "tags"]
RATIOS = [0.1, 0.3, 0.5, 0.7, 0.9]

pytestmark = pytest.mark.skipif(not CORPUS.exists(), reason=f"corpus not found: {CORPUS}")


@pytest.fixture(scope="module")
def embedder_url():
    with local_embedder() as url:
        yield url


def settings(embedder_url: str) -> dict:
    return {
        "filterableAttributes": FILTERABLE,
        "embedders": {
            "rest": {
                "source": "rest",
                "url": embedder_url,
                "request": {"input": ["{{text}}", "{{..}}"]},
                "response": {"embeddings": ["{{embedding}}", "{{..}}"]},
                "documentTemplate": "{{doc.name}} {{doc.summary}}",
            },
            "manual": {"source": "userProvided", "dimensions": 256},
        },
    }


def documents() -> list[dict]:
    docs = []
    for d in read_docs(N_DOCS, stride=7):
        d = {k: d[k] for k in ("id", "name", "section", "priority", "architecture", "summary", "tags")}
        # 1.50 refuses a document without embeddings for a userProvided embedder unless
        # it opts out (`null`)
        d["_vectors"] = {"manual": embed(f"{d['name']} {d['summary']}") if d["id"] % 3 else None}
        docs.append(d)
    return docs


def _load(client: httpx.Client, embedder_url: str, docs: list[dict]) -> None:
    def task(resp: httpx.Response) -> None:
        assert resp.status_code == 202, resp.text
        done = wait_task(str(client.base_url), resp.json()["taskUid"], timeout=60)
        assert done["status"] == "succeeded", done

    r = client.patch("/experimental-features", json={"multimodal": True})  # `_vectors` filters
    assert r.status_code == 200, r.text
    task(client.post("/indexes", json={"uid": UID, "primaryKey": "id"}))
    task(client.patch(f"/indexes/{UID}/settings", json=settings(embedder_url)))
    task(client.post(f"/indexes/{UID}/documents", json=docs))


def _filters(rng: random.Random, sections: list[str]) -> list:
    """Keyword filters, `_vectors` filters (1.50, behind `multimodal`) and mixes of both."""
    sec = lambda: '"' + rng.choice(sections) + '"'  # noqa: E731
    return [
        f"section = {sec()}",
        'priority = "optional"',
        f'section != "{sections[0]}"',
        "_vectors EXISTS",
        "_vectors.manual EXISTS",
        "_vectors.manual NOT EXISTS",
        "_vectors.manual.userProvided EXISTS AND priority = \"optional\"",
        "_vectors.rest.documentTemplate EXISTS",
        f"_vectors.rest.regenerate EXISTS AND NOT section = {sec()}",
        ["_vectors.manual.regenerate NOT EXISTS", [f"section = {sec()}", "_vectors.rest.userProvided EXISTS"]],
    ]


def generate(docs: list[dict], n: int, seed: int) -> list[tuple[str, dict]]:
    rng = random.Random(seed)
    words = sorted({w for d in docs for w in f"{d['name']} {d['summary']}".lower().split() if w.isalpha() and len(w) > 3})
    sections = sorted({d["section"] for d in docs})
    ids = [d["id"] for d in docs]
    out: list[tuple[str, dict]] = []
    for i in range(n):
        q = " ".join(rng.sample(words, rng.randint(1, 3)))
        body: dict = {}
        kind = i % 6
        if kind == 0:  # semantic, explicit vector on the userProvided embedder
            body = {"vector": embed(q), "hybrid": {"embedder": "manual", "semanticRatio": 1.0}}
            if rng.random() < 0.5:
                body["q"] = q  # its words are highlighted, the vector ranks
        elif kind == 1:  # semantic, the rest embedder embeds the query
            body = {"q": q, "hybrid": {"embedder": "rest", "semanticRatio": 1.0}}
        elif kind in (2, 3):  # hybrid, the query embedded by the rest embedder
            body = {"q": q, "hybrid": {"embedder": "rest", "semanticRatio": rng.choice(RATIOS)}}
        elif kind == 4:  # hybrid with an explicit vector
            body = {"q": q, "vector": embed(q), "hybrid": {"embedder": "manual", "semanticRatio": rng.choice(RATIOS)}}
        else:
            body = {"id": rng.choice(ids), "embedder": rng.choice(["manual", "rest"])}
        if rng.random() < 0.5:
            body["filter"] = rng.choice(_filters(rng, sections))
        if kind != 5 and rng.random() < 0.3:
            body["facets"] = ["section", "priority"]
        if kind != 5 and rng.random() < 0.2:
            body["hitsPerPage"] = rng.choice([5, 10])
            body["page"] = rng.randint(1, 3)
        else:
            body["offset"] = rng.choice([0, 0, 3, 10, 25])
            body["limit"] = rng.choice([5, 10, 20])
        if rng.random() < 0.5:
            body["showRankingScore"] = True
        if rng.random() < 0.15:
            body["rankingScoreThreshold"] = rng.choice([0.5, 0.6, 0.7])
        if rng.random() < 0.2:
            body["attributesToRetrieve"] = ["id", "name", "section"]
        if kind != 5 and rng.random() < 0.25:  # semantic hits' _formatted as keyword ones'
            body["attributesToHighlight"] = ["name", "summary"]
            if rng.random() < 0.5:
                body.update(attributesToCrop=["summary"], cropLength=6, showMatchesPosition=True)
        if rng.random() < 0.2:
            body["retrieveVectors"] = True
        out.append(("similar" if kind == 5 else "search", body))
    # Federated searches mixing a hybrid query and a keyword or vector one.
    for j in range(8):
        q1, q2 = (" ".join(rng.sample(words, 2)) for _ in range(2))
        first = {"indexUid": UID, "q": q1, "hybrid": {"embedder": "rest", "semanticRatio": rng.choice(RATIOS)}}
        second: dict = {"indexUid": UID, "q": q2, "filter": rng.choice(_filters(rng, sections))}
        if j % 2:
            second.update(vector=embed(q2), hybrid={"embedder": "manual", "semanticRatio": rng.choice([0.5, 1.0])})
        for sub in (first, second):
            sub["showRankingScore"] = True
        out.append(("multi-search", {"federation": {"offset": rng.choice([0, 3]), "limit": rng.choice([5, 10])},
                                     "queries": [first, second]}))
    # Refusals must be the same too.
    out += [
        ("similar", {"id": "nope", "embedder": "manual"}),
        ("similar", {"id": ids[0], "embedder": "nope"}),
        ("similar", {"id": ids[0], "embedder": "manual", "limit": "x"}),
        ("search", {"q": "python", "hybrid": {"embedder": "nope", "semanticRatio": 0.5}}),
        ("search", {"q": "python", "hybrid": {"embedder": "manual", "semanticRatio": 1.0}}),
        ("search", {"q": "python", "hybrid": {"embedder": "manual", "semanticRatio": 0.5}}),
        ("search", {"q": "python", "vector": [1.0], "hybrid": {"embedder": "manual", "semanticRatio": 1.0}}),
        ("search", {"q": "python", "filter": "_vectors.nope EXISTS"}),
        ("search", {"q": "python", "filter": "section = admin AND _vectors.manual.regenrate EXISTS"}),
        ("search", {"q": "python", "filter": ["_vectors.rest.fragments.x EXISTS"], "hybrid": {"embedder": "rest"}}),
        ("similar", {"id": ids[0], "embedder": "manual", "filter": "_vectors.mannual EXISTS"}),
    ]
    return out


def with_details(route: str, body: dict) -> dict:
    """The body the oracle is asked (ranking details find the ties)."""
    if route == "multi-search":
        return {**body, "queries": [{**q, "showRankingScoreDetails": True} for q in body["queries"]]}
    return {**body, "showRankingScoreDetails": True}


def compared(route: str, body: dict) -> dict:
    """What `compare` reads of a request: a federated one's window and scores."""
    if route == "multi-search":
        fed = body["federation"]
        return {"offset": fed["offset"], "limit": fed["limit"], "showRankingScore": True}
    return body


def ask(client: httpx.Client, route: str, body: dict) -> tuple[int, dict]:
    if route == "multi-search":
        r = client.post("/multi-search", json=body)
    elif route == "similar" and body.get("_get"):
        params = {k: (",".join(v) if isinstance(v, list) else str(v).lower() if isinstance(v, bool) else str(v))
                  for k, v in body.items() if k != "_get"}
        r = client.get(f"/indexes/{UID}/similar", params=params)
    else:
        r = client.post(f"/indexes/{UID}/{route}", json={k: v for k, v in body.items() if k != "_get"})
    assert "X-Miroir-Degraded" not in r.headers
    return r.status_code, r.json()


@pytest.fixture(scope="module")
def oracle(embedder_url):
    """One devnode holding every document, and its answers to the generated queries."""
    docs = documents()
    queries = generate(docs, N_QUERIES, SEED)
    for i, (route, body) in enumerate(queries):
        if route == "similar" and i % 2 and not isinstance(body.get("filter"), list):  # GET: string filters
            body["_get"] = True
    with start_devnodes(1) as (node,), httpx.Client(base_url=node.url, timeout=60) as o:
        _load(o, embedder_url, docs)
        answers = [ask(o, route, with_details(route, body)) for route, body in queries]
        yield o, docs, queries, answers


@pytest.mark.parametrize("nodes,groups,rf", [(3, 1, 1), (4, 2, 2)], ids=["3-nodes", "2-groups-rf2"])
def test_vector_and_hybrid_answers_equal_one_node(embedder_url, oracle, nodes, groups, rf):
    o, docs, queries, answers = oracle
    with (
        miroir_proc.start_cluster(nodes=nodes, groups=groups, rf=rf) as mc,
        httpx.Client(base_url=mc.url, timeout=60) as m,
    ):
        _load(m, embedder_url, docs)
        problems = []
        kinds = {"semantic": 0, "hybrid": 0, "similar": 0, "federated": 0}
        refusals = 0
        for (route, body), oracle_answer in zip(queries, answers):
            got = ask(m, route, body)
            if oracle_answer[0] != 200:
                refusals += 1
            elif route == "similar":
                kinds["similar"] += 1
            elif route == "multi-search":
                kinds["federated"] += 1
            elif body["hybrid"]["semanticRatio"] == 1.0:
                kinds["semantic"] += 1
            else:
                kinds["hybrid"] += 1
            # Hybrid searches combine their halves by score, ties not by insertion order (README);
            # federated ones may hold hybrid queries.
            hybrid_ratio = route == "multi-search" or (
                route != "similar" and (body.get("hybrid") or {}).get("semanticRatio") != 1.0
            )
            diff = compare(compared(route, body), None, oracle_answer, got, ties_as_sets=hybrid_ratio)
            if diff:
                problems.append((route, body, diff[:3]))
        assert not problems, f"{len(problems)} of {len(queries)} differ; first: {problems[:3]}"
        assert min(kinds.values()) >= 8 and refusals >= 10, (kinds, refusals)
        if groups > 1:
            return  # embedder calls and document routes: checked once, on the first layout

        # The query is embedded once per search by Miroir, not once per node.
        calls = lambda: httpx.get(f"{embedder_url}/stats").json()["calls"]  # noqa: E731
        rng = random.Random(SEED + 1)
        words = sorted({w for d in docs for w in d["summary"].lower().split() if w.isalpha()})
        texts = sorted({" ".join(rng.sample(words, 3)) for _ in range(150)})[:N_COUNTED]
        before = calls()
        for i, text in enumerate(texts):
            ratio = 1.0 if i % 4 == 0 else RATIOS[i % len(RATIOS)]
            r = m.post(f"/indexes/{UID}/search", json={"q": text, "hybrid": {"embedder": "rest", "semanticRatio": ratio}})
            assert r.status_code == 200, r.text
        assert calls() - before == len(texts) == N_COUNTED
        before = calls()
        for text in texts[:20]:  # the same queries again (a next page): embedded a moment ago
            m.post(f"/indexes/{UID}/search", json={"q": text, "offset": 20, "hybrid": {"embedder": "rest"}})
        assert calls() == before

        # Documents keep their `_vectors` through Miroir, and stats count embeddings.
        one = next(d for d in docs if d["_vectors"]["manual"] is not None)
        od = o.get(f"/indexes/{UID}/documents/{one['id']}", params={"retrieveVectors": "true"}).json()
        md = m.get(f"/indexes/{UID}/documents/{one['id']}", params={"retrieveVectors": "true"}).json()
        assert od == md and set(md["_vectors"]) == {"rest", "manual"}
        assert md["_vectors"]["manual"]["regenerate"] is False
        assert md["_vectors"]["rest"]["regenerate"] is True
        ol = o.post(f"/indexes/{UID}/documents/fetch", json={"retrieveVectors": True, "limit": 1000}).json()
        ml = m.post(f"/indexes/{UID}/documents/fetch", json={"retrieveVectors": True, "limit": 1000}).json()
        key = lambda d: d["id"]  # noqa: E731
        assert sorted(ol["results"], key=key) == sorted(ml["results"], key=key)
        ostats = o.get(f"/indexes/{UID}/stats").json()
        assert ostats["numberOfEmbeddedDocuments"] == N_DOCS
        assert ostats["numberOfEmbeddings"] == N_DOCS + sum(d["_vectors"]["manual"] is not None for d in docs)
        mstats = m.get(f"/indexes/{UID}/stats").json()
        assert {k: mstats[k] for k in ("numberOfEmbeddings", "numberOfEmbeddedDocuments")} == \
            {k: ostats[k] for k in ("numberOfEmbeddings", "numberOfEmbeddedDocuments")}


def test_vectors_survive_a_rebalance(embedder_url):
    """A shard copied to a joining node keeps its documents' embeddings as they were:
    userProvided ones intact, rest ones copied (the embedder is not called again)."""
    docs = documents()[:120]
    calls = lambda: httpx.get(f"{embedder_url}/stats").json()["calls"]  # noqa: E731
    with start_devnodes(1) as (spare,), miroir_proc.start_cluster(nodes=3) as mc, \
            httpx.Client(base_url=mc.url, timeout=60) as m:
        _load(m, embedder_url, docs)

        def listing() -> list[dict]:
            got = m.post(f"/indexes/{UID}/documents/fetch", json={"retrieveVectors": True, "limit": 1000}).json()
            return sorted(got["results"], key=lambda d: d["id"])

        similar = {"id": docs[1]["id"], "embedder": "manual", "showRankingScore": True, "showRankingScoreDetails": True}
        before, similar_before, calls_before = listing(), ask(m, "similar", similar), calls()
        assert len(before) == len(docs) and all("_vectors" in d for d in before)
        r = m.post("/_miroir/nodes", json={"id": "n4", "url": spare.url, "group": "g0"})
        assert r.status_code == 202, r.text
        wait_idle(m)
        on_new = httpx.post(f"{spare.url}/indexes/{UID}/documents/fetch", json={"retrieveVectors": True, "limit": 1000}).json()
        assert on_new["total"] > 0  # the new node holds shards now
        assert listing() == before
        # ties as sets: the new node holds the moved shards after its own (README)
        assert compare(similar, None, similar_before, ask(m, "similar", similar), ties_as_sets=True) == []
        assert calls() == calls_before

