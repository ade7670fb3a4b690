"""`openAi` and `ollama` embedders through Miroir: the query embedded once per search by
Miroir itself (1.50 runs both sources as rest embedders of fixed request and response
shapes), the vector sent to every node; the answers equal one node's. The embedder is the
local service of src/miroir/embedder.py, which also speaks the OpenAI `/v1/embeddings`
and Ollama `/api/embed` and `/api/embeddings` shapes, on loopback."""

from __future__ import annotations

import httpx
import pytest

from tests.oracle.test_oracle import compare
from tests.support.devnodes import start_devnodes
from tests.support.embedder import local_embedder
from tests.support.miroir_proc import start_cluster
from tests.support.pairs import done, index_with

DOCS = [{"id": i, "title": t} for i, t in enumerate([
    "red apple pie", "green apple tart", "blue berry jam", "sweet cherry pie", "sour lemon tart",
    "apple cider vinegar", "berry smoothie bowl", "cherry blossom tea", "lemon ginger tea", "pie crust recipe",
    "tart shell recipe", "jam on toast", "cider press", "smoothie with banana", "ginger snap cookies",
])]
QUERIES = ["apple pie", "lemon tea", "cherry tart recipe", "toast with jam", "banana smoothie", "sweet pie crust"]
API_KEY = "sk-local-test"


@pytest.fixture(scope="module")
def embedder_url():
    with local_embedder() as url:
        yield url


def _settings(url: str) -> dict:
    template = "{{doc.title}}"
    return {"embedders": {
        "openai": {"source": "openAi", "url": f"{url}/v1/embeddings", "model": "text-embedding-3-small",
                   "dimensions": 256, "documentTemplate": template},
        "openai_key": {"source": "openAi", "url": f"{url}/v1/embeddings", "apiKey": API_KEY, "dimensions": 256,
                       "documentTemplate": template},
        "ollama": {"source": "ollama", "url": f"{url}/api/embed", "model": "nomic-embed-text", "documentTemplate": template},
        "ollama_single": {"source": "ollama", "url": f"{url}/api/embeddings", "model": "nomic-embed-text",
                          "documentTemplate": template},
    }}


def test_openai_and_ollama_queries_embedded_once_by_miroir(embedder_url):
    stats = lambda: httpx.get(f"{embedder_url}/stats").json()  # noqa: E731
    with (
        start_devnodes(1) as (node,),
        start_cluster(nodes=3) as cluster,
        httpx.Client(base_url=node.url, timeout=30) as one,
        httpx.Client(base_url=cluster.url, timeout=30) as many,
    ):
        for client in (one, many):
            index_with(client, "food", DOCS, _settings(embedder_url))
        embedded = stats()["texts"]
        assert embedded == 2 * 4 * len(DOCS)  # each document once per embedder, on each side
        for name in ("openai", "openai_key", "ollama", "ollama_single"):
            for ratio in (0.5, 1.0) if name == "openai" else (0.5,):
                before = stats()["calls"]
                answers = []
                for q in QUERIES:
                    body = {"q": q, "hybrid": {"embedder": name, "semanticRatio": ratio}, "showRankingScore": True}
                    r = many.post("/indexes/food/search", json=body)
                    assert r.status_code == 200, r.text
                    answers.append((body, (200, r.json())))
                if name == "openai_key":
                    # Miroir holds the masked key the nodes show (1.50's GET settings):
                    # the nodes, which hold the secret, embed the query, one call each
                    assert stats()["calls"] - before == 3 * len(QUERIES), (name, ratio)
                    assert stats()["authorization"] == f"Bearer {API_KEY}"
                else:  # one call per search though 3 nodes answer it; none for a query
                    # embedded a moment ago (the same texts at the other ratio)
                    assert stats()["calls"] - before == (len(QUERIES) if ratio == 0.5 else 0), (name, ratio)
                for body, got in answers:
                    r = one.post("/indexes/food/search", json={**body, "showRankingScoreDetails": True})
                    assert compare(body, None, (r.status_code, r.json()), got) == [], body
                    assert got[1]["semanticHitCount"] > 0 or ratio < 1.0
        # a settings change reaches Miroir's embedding too (the new model is in the request)
        done(many, many.patch("/indexes/food/settings", json={"embedders": {"ollama": {"model": "other-model"}}}))
        r = many.post("/indexes/food/search", json={"q": "apple", "hybrid": {"embedder": "ollama", "semanticRatio": 1.0}})
        assert r.status_code == 200 and r.json()["hits"]
