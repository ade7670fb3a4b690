"""The document join (1.50 `foreignKeys`, `_foreign(...)` filters) through Miroir over 3
devnodes: the authors a book names mostly live on other nodes than the book, so a node
cannot join on its own shard (before engine/foreign.py, each node hydrated from its own
shard of `authors`, `{}` for every remote author, and evaluated `_foreign` there too).
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support.devnodes import wait_task
from tests.support.miroir_proc import MiroirCluster, start_cluster

AUTHORS = [{"id": f"a{i}", "name": f"Author {i}", "born": 1900 + 10 * i} for i in range(12)]
BOOKS = [
    {"id": f"b{i}", "title": f"Book {i}", "author": f"a{(i * 5) % 12}", "coauthors": [f"a{(i + 1) % 12}", "a99"]}
    for i in range(12)
]
BY_ID = {a["id"]: a for a in AUTHORS}


def _done(c: httpx.Client, r: httpx.Response) -> None:
    assert r.status_code == 202, r.text
    task = wait_task(str(c.base_url), r.json()["taskUid"])
    assert task["status"] == "succeeded", task


@pytest.fixture(scope="module")
def joined() -> Iterator[tuple[MiroirCluster, httpx.Client]]:
    with start_cluster(3, shards=8) as mc, httpx.Client(base_url=mc.url, timeout=30) as c:
        assert c.patch("/experimental-features", json={"foreignKeys": True}).status_code == 200
        _done(c, c.post("/indexes", json={"uid": "authors", "primaryKey": "id"}))
        _done(c, c.patch("/indexes/authors/settings", json={"filterableAttributes": ["born"]}))
        _done(c, c.post("/indexes/authors/documents", json=AUTHORS))
        _done(c, c.post("/indexes", json={"uid": "books", "primaryKey": "id"}))
        keys = [{"foreignIndexUid": "authors", "fieldName": f} for f in ("author", "coauthors")]
        _done(c, c.patch("/indexes/books/settings", json={"foreignKeys": keys, "filterableAttributes": ["author"]}))
        _done(c, c.post("/indexes/books/documents", json=BOOKS))
        yield mc, c


def _holder(mc: MiroirCluster, uid: str, doc_id: str) -> int:
    held = [i for i, d in enumerate(mc.devnodes) if httpx.get(f"{d.url}/indexes/{uid}/documents/{doc_id}").status_code == 200]
    assert len(held) == 1, (uid, doc_id, held)
    return held[0]


def test_foreign_documents_live_elsewhere(joined):
    """The premise: most books' authors are on another node (placement is deterministic)."""
    mc, _ = joined
    remote = [b["id"] for b in BOOKS if _holder(mc, "books", b["id"]) != _holder(mc, "authors", b["author"])]
    assert len(remote) >= 4, remote
    for d in mc.devnodes:  # no node holds the setting: it would join on its own shard
        assert httpx.get(f"{d.url}/indexes/books/settings").json().get("foreignKeys") in (None, [])


def test_hits_are_hydrated_from_every_shard(joined):
    _, c = joined
    r = c.post("/indexes/books/search", json={"q": "", "limit": 20, "attributesToHighlight": ["title"]})
    assert r.status_code == 200, r.text
    hits = r.json()["hits"]
    assert len(hits) == len(BOOKS)
    for hit in hits:
        book = next(b for b in BOOKS if b["id"] == hit["id"])
        assert hit["author"] == BY_ID[book["author"]]
        assert hit["coauthors"] == [BY_ID[book["coauthors"][0]], {}]  # a99: no such author
        assert hit["_formatted"]["author"] == BY_ID[book["author"]]
    assert c.get("/indexes/books/settings").json()["foreignKeys"][0]["fieldName"] == "author"


def test_foreign_filter_reads_the_whole_foreign_index(joined):
    _, c = joined
    old = {a["id"] for a in AUTHORS if a["born"] < 1950}
    want = sorted(b["id"] for b in BOOKS if b["author"] in old)
    body = {"q": "", "limit": 20, "filter": "_foreign(author, born < 1950)", "attributesToRetrieve": ["id"]}
    r = c.post("/indexes/books/search", json=body)
    assert r.status_code == 200, r.text
    assert sorted(h["id"] for h in r.json()["hits"]) == want
    query = {"indexUid": "books", "filter": body["filter"], "attributesToRetrieve": ["id"]}
    fed = c.post("/multi-search", json={"federation": {"limit": 20}, "queries": [query]})
    assert fed.status_code == 200, fed.text
    assert sorted(h["id"] for h in fed.json()["hits"]) == want
    bad = c.post("/multi-search", json={"federation": {}, "queries": [{"indexUid": "books", "filter": "_foreign(title, born < 1)"}]})
    assert bad.status_code == 400
    assert bad.json()["message"] == "Index `books`: Field `title` is not a foreign key"
