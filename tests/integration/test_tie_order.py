"""Miroir's own order for tied hits is deterministic (issue 5: "documented tie order").

Hits whose ranking details are identical are ordered by the covering set (its nodes
sorted by the lowest shard each answers for), then by each node's own order; a search
keeps the same covering set for every page of itself (scatter's `affinity`). With
replicas (RF=2, and two groups) that means: the same query gives the same order every
time, and consecutive pages tile the longer page exactly.
"""

from __future__ import annotations

import tempfile

import httpx
import pytest

from miroir.engine.writes import DOC_SEQ_RANGE
from tests.support import miroir_proc
from tests.support.devnodes import start_devnodes, wait_task
from tests.support.pairs import devnode_and_miroir, done, index_with

N_DOCS = 240
SHARDS = 8
UID = "ties"


def _docs() -> list[dict]:
    # Every document matches "same words" identically: one big tie group.
    return [{"id": i, "title": "same words", "n": i % 3} for i in range(N_DOCS)]


@pytest.mark.parametrize("shape", [dict(nodes=3, groups=1, rf=2), dict(nodes=4, groups=2, rf=1)], ids=["rf2", "2groups"])
def test_tied_hits_keep_one_order_across_calls_and_pages(shape):
    # The property holds while the same nodes answer: a hedge that wins (a loaded machine
    # slower than the 50 ms hedge floor) may answer from other replicas, which is allowed
    # to change the order of ties (README). Hedging is tested in test_hedging.py.
    no_hedging = {"scatter": {"hedge_after_ms": 3_600_000}}
    with miroir_proc.start_cluster(shards=SHARDS, extra=no_hedging, **shape) as c, httpx.Client(base_url=c.url, timeout=30) as client:
        for method, path, body in [
            ("POST", "/indexes", {"uid": UID, "primaryKey": "id"}),
            ("POST", f"/indexes/{UID}/documents", _docs()),
        ]:
            r = client.request(method, path, json=body)
            assert r.status_code == 202, r.text
            assert wait_task(c.url, r.json()["taskUid"], timeout=60)["status"] == "succeeded"

        def ids(**params) -> list[int]:
            r = client.post(f"/indexes/{UID}/search", json={"q": "same words", **params})
            assert r.status_code == 200, r.text
            assert "X-Miroir-Degraded" not in r.headers
            return [h["id"] for h in r.json()["hits"]]

        for query in ({}, {"filter": None}, {"attributesToRetrieve": ["id"]}):
            long_page = ids(limit=60, **query)
            assert len(long_page) == 60
            for _ in range(6):  # round-robin turns would change the covering set each call
                assert ids(limit=60, **query) == long_page
            pages = [ids(offset=o, limit=20, **query) for o in (0, 20, 40)]
            assert pages[0] + pages[1] + pages[2] == long_page
            assert ids(page=2, hitsPerPage=20, **query) == long_page[20:40]
        # A placeholder search ties everything too.
        assert ids(q="", limit=30) == ids(q="", limit=30)


# --- issue 16: ties and listings in insertion order, as one node gives them ------------------

N_INSERTED = 230  # past the single-round listing depth (reads.DOCUMENTS_ONE_ROUND_MAX = 200)
LISTING_DEPTH = 200


def _inserted(keys: list[int]) -> list[dict]:
    return [{"id": k, "title": "same words", "n": k % 3} for k in keys]


def test_ties_and_listings_follow_insertion_order_as_on_one_node():
    """Miroir over 3 devnodes gives one devnode's order wherever the README says it is
    equal: tied hits (placeholder, words, sort, filter), fetch by ids, GET /documents
    pages, after partial updates and documents created by them."""
    keys = [(i * 7919) % 1009 for i in range(N_INSERTED)]  # distinct, unrelated to shards or key order
    first, second = keys[:150], keys[150:225]
    created_by_update = keys[225:]
    with devnode_and_miroir(nodes=3, shards=8) as (one, many):
        for c in (one, many):
            index_with(c, UID, _inserted(first), {"sortableAttributes": ["n"], "filterableAttributes": ["n"]})
            done(c, c.post(f"/indexes/{UID}/documents", json=_inserted(second)))
            # Partial updates keep a document's place; documents they create go last.
            updates = [{"id": k, "extra": "x"} for k in first[10:20]] + _inserted(created_by_update)
            done(c, c.put(f"/indexes/{UID}/documents", json=updates))

        def both(method: str, path: str, **kw) -> tuple[dict, dict]:
            a, b = one.request(method, path, **kw), many.request(method, path, **kw)
            assert a.status_code == b.status_code == 200, (a.text, b.text)
            return a.json(), b.json()

        # The devnode itself lists by internal id: insertion order, kept on update.
        single, _ = both("GET", f"/indexes/{UID}/documents", params={"limit": 1000})
        assert [d["id"] for d in single["results"]] == keys
        assert not any(k.startswith("_miroir_") for d in single["results"] for k in d)

        searches = [
            {"q": "", "limit": 100},
            {"q": "same words", "offset": 30, "limit": 50},
            {"q": "", "sort": ["n:desc"], "limit": 120},
            {"q": "same", "filter": "n = 1", "limit": 80, "attributesToRetrieve": ["id"]},
            {"q": "", "page": 2, "hitsPerPage": 40},
        ]
        for body in searches:
            a, b = both("POST", f"/indexes/{UID}/search", json=body)
            assert [h["id"] for h in b["hits"]] == [h["id"] for h in a["hits"]], body
            assert b["hits"] == a["hits"], body  # no `_miroir_*` field shown

        wanted = [keys[i] for i in (200, 3, 77, 150, 229, 0, 41)]
        for path, kw in [
            ("/documents/fetch", {"json": {"ids": wanted}}),
            ("/documents/fetch", {"json": {"ids": [str(k) for k in wanted], "fields": ["n"]}}),
            ("/documents/fetch", {"json": {"filter": "n = 2", "limit": 60, "offset": 5}}),
            ("/documents/fetch", {"json": {"sort": ["n:asc"], "limit": 90}}),
            ("/documents", {"params": {"offset": 13, "limit": 40, "fields": "id,extra"}}),
        ]:
            a, b = both("GET" if path == "/documents" else "POST", f"/indexes/{UID}{path}", **kw)
            assert b == a, (path, kw)

        # GET /documents paging: within the first 200 positions, one node's order; past
        # them each shard's rest follows (README), and pages still tile the listing.
        pages = [both("GET", f"/indexes/{UID}/documents", params={"offset": o, "limit": 30})[1] for o in range(0, 240, 30)]
        listed = [d["id"] for p in pages for d in p["results"]]
        assert listed[:LISTING_DEPTH] == keys[:LISTING_DEPTH]
        assert sorted(listed) == sorted(keys) and pages[0]["total"] == N_INSERTED
        deep = both("GET", f"/indexes/{UID}/documents", params={"offset": 190, "limit": 25})[1]
        assert [d["id"] for d in deep["results"]] == listed[190:215]

        # With displayed attributes narrowed, the nodes still show the merge the sequence.
        for c in (one, many):
            done(c, c.patch(f"/indexes/{UID}/settings", json={"displayedAttributes": ["id", "n"]}))
        a, b = both("POST", f"/indexes/{UID}/search", json={"q": "", "limit": 60, "attributesToHighlight": ["*"]})
        assert b["hits"] == a["hits"]
        a, b = both("GET", f"/indexes/{UID}/settings/displayed-attributes")
        assert b == a == ["id", "n"]
        a, b = both("GET", f"/indexes/{UID}/documents", params={"limit": 50})
        assert b == a

        # Deleted documents' ids are reused by one node (milli's lowest free id first):
        # new documents list in their place there, last through Miroir (README).
        for c in (one, many):
            index_with(c, "reuse", [{"id": k} for k in (5, 1, 4, 2, 3)])
            done(c, c.post("/indexes/reuse/documents/delete-batch", json=[1, 2]))
            done(c, c.post("/indexes/reuse/documents", json=[{"id": 9}, {"id": 7}, {"id": 8}]))
        a, b = both("GET", "/indexes/reuse/documents")
        assert [d["id"] for d in a["results"]] == [5, 9, 4, 7, 3, 8]
        assert [d["id"] for d in b["results"]] == [5, 4, 3, 9, 7, 8]


def test_sequence_is_reserved_in_ranges_and_continues_after_a_restart():
    """One journal record per range of sequence numbers, and a restarted Miroir hands out
    numbers after every one it may have used: later documents still list after."""
    batches = [[{"id": k} for k in ks] for ks in ([9, 3, 7], [1, 8], [5, 2, 6])]
    with start_devnodes(2) as devs, tempfile.TemporaryDirectory() as tmp:
        config = miroir_proc.make_config(devs, groups=1, rf=1, shards=4, data_dir=tmp)
        with miroir_proc.serve_miroir(config) as (url, cluster), httpx.Client(base_url=url, timeout=30) as c:
            index_with(c, "seq", batches[0])
            top = cluster.state.doc_seq_top
            assert cluster.doc_seq_next + DOC_SEQ_RANGE == top  # one range reserved for this write and later ones
            done(c, c.post("/indexes/seq/documents", json=batches[1]))
            assert cluster.state.doc_seq_top == top  # taken from the reserved range
        with miroir_proc.serve_miroir(config) as (url, cluster), httpx.Client(base_url=url, timeout=30) as c:
            done(c, c.post("/indexes/seq/documents", json=batches[2]))
            assert cluster.state.doc_seq_top >= top + 3 + DOC_SEQ_RANGE  # the rest of the old range skipped
            listed = c.get("/indexes/seq/documents").json()["results"]
            assert [d["id"] for d in listed] == [d["id"] for b in batches for d in b]
            hits = c.post("/indexes/seq/search", json={"q": ""}).json()["hits"]
            assert [h["id"] for h in hits] == [d["id"] for b in batches for d in b]
