"""Miroir answers as one Meilisearch node answers (issue 16 item 1): the differences that
are Miroir's own (task order, task outcomes, index auto-creation, fetch order, task
details, distinct counting), each checked against one devnode.

Real processes on loopback: one devnode (the single-node answer) and Miroir over 3
devnodes with 16 shards.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support import miroir_proc
from tests.support.devnodes import wait_task
from tests.support.pairs import devnode_and_miroir, done, task_of

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[httpx.Client, httpx.Client]]:
    """(one devnode, Miroir over 3 devnodes, 16 shards)."""
    with devnode_and_miroir(nodes=3, shards=16) as pair:
        yield pair


def both(pair, fn):
    """fn(client) on the devnode and on Miroir; the two answers."""
    return [fn(c) for c in pair]


def test_finished_task_implies_earlier_tasks_of_its_index_finished(pair):
    """Documents, two settings updates (the first slow: the index is reindexed), then
    one more document; waiting only for the last task: the settings' tasks are finished
    and the settings are in effect (a sorted, filtered search works)."""
    docs = [{"id": i, "title": f"title {i} word{i % 50}", "rank": i} for i in range(3000)]

    def run(c: httpx.Client) -> tuple[str, list]:
        done(c, c.post("/indexes/order/documents", json=docs))
        c.patch("/indexes/order/settings", json={"searchableAttributes": ["title"], "filterableAttributes": ["rank"]})
        first = c.patch("/indexes/order/settings", json={"sortableAttributes": ["rank"]})
        last = c.post("/indexes/order/documents", json=[{"id": 5000, "title": "last", "rank": -1}]).json()["taskUid"]
        while c.get(f"/tasks/{last}").json()["status"] not in ("succeeded", "failed", "canceled"):
            time.sleep(0.002)  # seen as soon as it finishes
        settings_task = c.get(f"/tasks/{first.json()['taskUid']}").json()
        hits = c.post("/indexes/order/search", json={"sort": ["rank:asc"], "filter": "rank < 3", "limit": 5}).json()
        return settings_task["status"], [h["id"] for h in hits.get("hits", [hits])]

    one, many = both(pair, run)
    assert one == ("succeeded", [5000, 0, 1, 2])
    assert many == one


def test_deleting_a_missing_document_succeeds_with_zero(pair):
    """Also right after the index's creation was enqueued (not waited for): the index
    exists by the time the deletion runs."""

    def run(c: httpx.Client) -> list:
        done(c, c.post("/indexes/gone/documents", json=[{"id": 1}]))
        single = task_of(c, c.delete("/indexes/gone/documents/4242"))
        batch = task_of(c, c.post("/indexes/gone/documents/delete-batch", json=[4242, 4343]))
        c.post("/indexes", json={"uid": "fresh", "primaryKey": "id"})
        fresh = task_of(c, c.delete("/indexes/fresh/documents/7"))
        return [(t["status"], t["details"], t["error"]) for t in (single, batch, fresh)]

    one, many = both(pair, run)
    assert one[0] == one[2] == ("succeeded", {"providedIds": 1, "deletedDocuments": 0, "originalFilter": None}, None)
    assert one[1] == ("succeeded", {"providedIds": 2, "deletedDocuments": 0, "originalFilter": None}, None)
    assert many == one


def test_adding_documents_right_after_deleting_the_index_creates_it(pair):
    def run(c: httpx.Client) -> tuple:
        done(c, c.post("/indexes/again/documents", json=[{"id": 1, "a": "x"}]))
        c.delete("/indexes/again")  # not waited for
        added = c.post("/indexes/again/documents", json=[{"id": 2, "a": "y"}])
        task = task_of(c, added)
        docs = c.get("/indexes/again/documents").json()["results"]
        return added.status_code, task["status"], docs

    one, many = both(pair, run)
    assert one == (202, "succeeded", [{"id": 2, "a": "y"}]), one
    assert many == one


def test_original_filter_as_meilisearch_writes_it(pair):
    def run(c: httpx.Client) -> list:
        done(c, c.post("/indexes/filtered/documents", json=[{"id": i, "g": i % 3} for i in range(9)]))
        done(c, c.patch("/indexes/filtered/settings", json={"filterableAttributes": ["g"]}))
        out = []
        for filt in ("g = 1", ["g = 2", ["g = 0", "g = 5"]]):
            task = done(c, c.post("/indexes/filtered/documents/delete", json={"filter": filt}))
            out.append(task["details"])
        return out

    one, many = both(pair, run)
    assert one[0] == {"providedIds": 0, "deletedDocuments": 3, "originalFilter": '"g = 1"'}
    # An array filter, compact JSON (1.50's tests/documents/delete_documents.rs); g = 2 AND
    # (g = 0 OR g = 5) holds no document.
    assert one[1] == {"providedIds": 0, "deletedDocuments": 0, "originalFilter": '["g = 2",["g = 0","g = 5"]]'}
    assert many == one


@pytest.mark.parametrize("filterable", [True, False], ids=["filterable", "setting_only"])
def test_distinct_with_page_mode_counts_distinct_values(pair, filterable):
    """`distinctAttribute` (as Meilisearch's `distinct_search_with_pagination_no_ranking`:
    the attribute need not be filterable), then pages of 2 and 3: totalHits counts the
    distinct values, no value repeats across pages."""
    docs = [{"id": i, "color": f"c{(i * 7) % 6}", "n": i} for i in range(30)]
    index = f"distinct_{filterable}"

    def run(c: httpx.Client) -> list:
        settings = {"distinctAttribute": "color", "filterableAttributes": ["color"] if filterable else []}
        done(c, c.patch(f"/indexes/{index}/settings", json=settings))
        done(c, c.post(f"/indexes/{index}/documents", json=docs))
        out = []
        for page, hpp in ((0, 2), (1, 2), (2, 2), (3, 2), (4, 2), (2, 3)):
            body = c.post(f"/indexes/{index}/search", json={"hitsPerPage": hpp, "page": page}).json()
            out.append((body["totalHits"], body["totalPages"], sorted(h["color"] for h in body["hits"])))
        return out

    one, many = both(pair, run)
    assert [t for t, _, _ in one] == [6] * 6
    # Tie order (all hits tie without a query) is shard order in Miroir: compare the
    # values per page only once every page is seen exactly once.
    assert [(t, p) for t, p, _ in many] == [(t, p) for t, p, _ in one]
    assert sorted(c for _, _, cs in many[1:4] for c in cs) == sorted(f"c{i}" for i in range(6))


def test_a_node_down_does_not_hold_later_tasks():
    """The one exception to task order (README): a task waiting on a node that cannot be
    asked (killed after taking its part) does not hold the later tasks of its index,
    which the other copies finish; it finishes itself once its node is back."""
    docs = [{"id": i, "title": f"title {i} word{i % 50}"} for i in range(10000)]
    with miroir_proc.start_cluster(nodes=3, groups=1, rf=3, shards=4) as cluster, httpx.Client(
        base_url=cluster.url, timeout=30
    ) as c:
        done(c, c.post("/indexes", json={"uid": "down", "primaryKey": "id"}))
        first = c.post("/indexes/down/documents", json=docs).json()["taskUid"]
        cluster.devnodes[2].kill()  # took its part, had no time to index it
        second = c.post("/indexes/down/documents", json=[{"id": 9000, "title": "later"}])
        assert second.json()["status"] == "enqueued", second.text
        assert task_of(c, second)["status"] == "succeeded"
        if c.get(f"/tasks/{first}").json()["status"] == "succeeded":
            pytest.skip("the node finished its part before it was killed: nothing stalled")
        cluster.devnodes[2].restart()
        assert wait_task(cluster.url, first, timeout=30)["status"] == "succeeded"
