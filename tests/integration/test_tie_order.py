"""Miroir's own order for tied hits is deterministic (issue 5: "documented tie order").

Hits whose ranking details are identical are ordered by the covering set (its nodes
sorted by the lowest shard each answers for), then by each node's own order; a search
keeps the same covering set for every page of itself (scatter's `affinity`). With
replicas (RF=2, and two groups) that means: the same query gives the same order every
time, and consecutive pages tile the longer page exactly.
"""

from __future__ import annotations

import httpx
import pytest

from tests.support import miroir_proc
from tests.support.devnodes import wait_task

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
