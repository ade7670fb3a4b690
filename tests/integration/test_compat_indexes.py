"""Meilisearch 1.50's index features (issue 13 item 3), Miroir against one devnode.

Rename by `PATCH /indexes/{uid}` with `uid` and by `swap-indexes` with `rename: true`
(one Miroir task, journaled: it survives a restart of Miroir), `POST /indexes/{uid}/compact`,
and stats with 1.50's fields, `showInternalDatabaseSizes` and `sizeFormat`. Real
processes on loopback: one devnode and Miroir over 3 devnodes (RF 1, 4 shards).
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support.chaos_helpers import durable_cluster
from tests.support.pairs import devnode_and_miroir, done, index_with

pytestmark = pytest.mark.timeout(120)

DOCS = [{"id": i, "title": f"book {i}", "genre": ["drama", "poetry", "essay"][i % 3]} for i in range(90)]
STATS_KEYS = [
    "numberOfDocuments", "rawDocumentDbSize", "avgDocumentSize", "isIndexing", "numberOfEmbeddings",
    "numberOfEmbeddedDocuments", "fieldDistribution",
]


def load(c: httpx.Client, uid: str, docs: list[dict]) -> None:
    index_with(c, uid, docs, {"filterableAttributes": ["genre"]})


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[httpx.Client, httpx.Client]]:
    with devnode_and_miroir(nodes=3, shards=4) as pair:
        yield pair


def test_rename_by_patch(pair):
    views = []
    for c in pair:
        load(c, "old_books", DOCS)
        load(c, "taken", DOCS[:3])
        task = done(c, c.patch("/indexes/old_books", json={"uid": "new_books"}))
        assert task["type"] == "indexUpdate"
        assert task["details"] == {"primaryKey": None, "oldIndexUid": "old_books", "newIndexUid": "new_books"}
        assert c.get("/indexes/old_books").status_code == 404
        assert c.get("/indexes/new_books").json()["primaryKey"] == "id"
        assert c.get("/indexes/new_books/documents/7").json() == DOCS[7]
        hits = c.post("/indexes/new_books/search", json={"q": "book", "filter": "genre = poetry", "limit": 100}).json()
        assert hits["estimatedTotalHits"] == 30  # settings kept: genre is still filterable
        # Writes go to the new name; the old one is free again.
        done(c, c.post("/indexes/new_books/documents", json=[{"id": 500, "title": "late"}]))
        assert c.get("/indexes/new_books/stats").json()["numberOfDocuments"] == len(DOCS) + 1
        conflict = done(c, c.patch("/indexes/new_books", json={"uid": "taken"}), "failed")
        missing = done(c, c.patch("/indexes/nope", json={"uid": "fresh"}), "failed")
        bad = c.patch("/indexes/new_books", json={"uid": "not valid!"})
        immutable = c.patch("/indexes/new_books", json={"createdAt": "x"})
        unknown = c.patch("/indexes/new_books", json={"doggo": 1})
        views.append((
            conflict["error"], missing["error"], bad.status_code, bad.json(), immutable.json(), unknown.json(),
        ))
    assert views[0] == views[1]
    conflict, missing, bad_status, bad, immutable, unknown = views[0]
    assert conflict["code"] == "index_already_exists" and conflict["message"] == "Index `taken` already exists."
    assert missing["code"] == "index_not_found"
    assert bad_status == 400 and bad["code"] == "invalid_index_uid"
    assert immutable["code"] == "immutable_index_created_at"
    assert immutable["message"] == "Immutable field `createdAt`: expected one of `primaryKey`, `uid`"
    assert unknown["message"] == "Unknown field `doggo`: expected one of `primaryKey`, `uid`"


def test_swap_with_rename(pair):
    answers = []
    for c in pair:
        load(c, "swap_src", DOCS[:10])
        load(c, "swap_b1", DOCS[:1])
        load(c, "swap_b2", DOCS[:2])
        task = done(c, c.post("/swap-indexes", json=[
            {"indexes": ["swap_src", "swap_dst"], "rename": True}, {"indexes": ["swap_b1", "swap_b2"]},
        ]))
        assert task["details"] == {"swaps": [
            {"indexes": ["swap_src", "swap_dst"], "rename": True}, {"indexes": ["swap_b1", "swap_b2"], "rename": False},
        ]}
        assert c.get("/indexes/swap_src").status_code == 404
        assert c.get("/indexes/swap_dst/stats").json()["numberOfDocuments"] == 10
        assert c.get("/indexes/swap_b1/stats").json()["numberOfDocuments"] == 2
        taken = done(c, c.post("/swap-indexes", json=[{"indexes": ["swap_b1", "swap_b2"], "rename": True}]), "failed")
        bad = c.post("/swap-indexes", json=[{"indexes": ["swap_b1", "swap_x"], "rename": "hello"}])
        answers.append((taken["error"], bad.status_code, bad.json()))
    assert answers[0] == answers[1]
    taken, status, bad = answers[0]
    assert taken["message"] == (
        "Cannot rename `swap_b1` to `swap_b2` as the index already exists. Hint: You can remove `swap_b2` first and "
        "then do your remove."
    )
    assert status == 400 and bad["code"] == "invalid_swap_rename"
    assert bad["message"] == 'Invalid value type at `[0].rename`: expected a boolean, but found a string: `"hello"`'


def test_compact_and_stats(pair):
    stats = []
    for c in pair:
        load(c, "sized", DOCS)
        task = done(c, c.post("/indexes/sized/compact"))
        assert task["type"] == "indexCompaction" and task["indexUid"] == "sized"
        assert set(task["details"]) == {"preCompactionSize", "postCompactionSize"}
        assert task["details"]["preCompactionSize"].endswith("KiB")
        assert done(c, c.post("/indexes/nothing/compact"), "failed")["error"]["code"] == "index_not_found"
        plain = c.get("/indexes/sized/stats").json()
        human = c.get("/indexes/sized/stats", params={"sizeFormat": "human", "showInternalDatabaseSizes": "true"}).json()
        every = c.get("/stats", params={"sizeFormat": "human"}).json()
        raw_every = c.get("/stats").json()
        bad = [
            c.get("/indexes/sized/stats", params={"sizeFormat": "doggo"}).json()["code"],
            c.get("/indexes/sized/stats", params={"showInternalDatabaseSizes": "maybe"}).json()["code"],
            c.get("/stats", params={"doggo": "1"}).json()["code"],
        ]
        stats.append((plain, human, every, raw_every, bad))
    (one, one_h, one_all, one_raw, one_bad), (many, many_h, many_all, many_raw, many_bad) = stats
    assert list(one) == list(many) == STATS_KEYS
    assert many["numberOfDocuments"] == one["numberOfDocuments"] == len(DOCS)
    assert many["fieldDistribution"] == one["fieldDistribution"] == {"genre": 90, "id": 90, "title": 90}
    # Miroir's documents carry `_miroir_shard` and the insertion sequence on the nodes: more
    # than one node's bytes, about twice for these 40-byte documents.
    assert one["rawDocumentDbSize"] > 0 and 1.0 <= many["rawDocumentDbSize"] / one["rawDocumentDbSize"] < 2.5
    assert many["avgDocumentSize"] == many["rawDocumentDbSize"] // len(DOCS)
    for h in (one_h, many_h):
        assert list(h)[:5] == ["numberOfDocuments", "rawDocumentDbSize", "avgDocumentSize", "isIndexing", "internalDatabaseSizes"]
        assert h["rawDocumentDbSize"].endswith(" KiB") and h["avgDocumentSize"].endswith(" B")
    assert isinstance(one_all["databaseSize"], str) and isinstance(many_all["databaseSize"], str)
    assert many_raw["databaseSize"] > 0 and one_raw["databaseSize"] > 0
    assert one_bad == many_bad == ["invalid_stats_size_format", "invalid_stats_show_internal_database_sizes", "bad_request"]


def test_rename_survives_a_miroir_restart(tmp_path):
    """The rename is journaled: after a restart Miroir knows only the new name, with its
    settings, and routes its documents as before."""
    with durable_cluster(2, rf=1, shards=4, tmp=tmp_path) as c:
        http = httpx.Client(base_url=c.url, timeout=10)
        load(http, "before", DOCS[:20])
        done(http, http.patch("/indexes/before", json={"uid": "after"}))
        c.restart_miroir()
        http = httpx.Client(base_url=c.url, timeout=10)
        assert [i["uid"] for i in http.get("/indexes").json()["results"]] == ["after"]
        assert http.get("/indexes/after/stats").json()["numberOfDocuments"] == 20
        assert http.get("/indexes/after/settings").json()["filterableAttributes"] == ["genre"]
        for d in DOCS[:20]:
            assert http.get(f"/indexes/after/documents/{d['id']}").json() == d
