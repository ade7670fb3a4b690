"""Meilisearch 1.50's `/batches` and `/experimental-features` (issue 13 item 5), Miroir
against one devnode, and the devnode against 1.50's snapshots.

Miroir answers one batch per task, numbered as the task (README, compatibility notes):
`batchUid` on every task once it left `enqueued`, `/batches` filtered and paginated with
the `/tasks` parameters. `/experimental-features` answers Miroir's view; a PATCH reaches
every node and is journaled (kept across a restart).
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support.chaos_helpers import durable_cluster
from tests.support.pairs import devnode_and_miroir, done

pytestmark = pytest.mark.timeout(120)

BATCH_KEYS = ["uid", "progress", "details", "stats", "duration", "startedAt", "finishedAt", "batchStrategy"]
# tests/features/mod.rs::experimental_features, all flags off (1.50).
FEATURES_OFF = {
    "metrics": False, "logsRoute": False, "editDocumentsByFunction": False, "containsFilter": False,
    "dynamicSearchRules": False, "network": False, "getTaskDocumentsRoute": False, "taskQueueCompactionRoute": False,
    "compositeEmbedders": False, "chatCompletions": False, "multimodal": False, "foreignKeys": False,
    "disableDocumentsFetchQueue": False, "legacySearch": False, "renderRoute": False,
}


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[httpx.Client, httpx.Client]]:
    with devnode_and_miroir(nodes=2, shards=2) as pair:
        yield pair


def test_batches_views_filters_and_errors(pair):
    shapes = []
    for c in pair:
        done(c, c.post("/indexes", json={"uid": "batched", "primaryKey": "id"}))
        add = done(c, c.post("/indexes/batched/documents", json=[{"id": 42, "content": "doggos & fluff"}]))
        assert isinstance(add["batchUid"], int)
        batch = c.get(f"/batches/{add['batchUid']}").json()
        assert list(batch) == BATCH_KEYS
        # 1.50's `test_summarized_document_addition_or_update`, redactions aside.
        assert batch["progress"] is None
        assert batch["details"] == {"receivedDocuments": 1, "indexedDocuments": 1}
        stats = batch["stats"]
        assert (stats["totalNbTasks"], stats["status"], stats["types"], stats["indexUids"]) == (
            1, {"succeeded": 1}, {"documentAdditionOrUpdate": 1}, {"batched": 1}
        )
        assert batch["duration"].startswith("PT") and batch["startedAt"] and batch["finishedAt"]
        listed = c.get("/batches", params={"types": "documentAdditionOrUpdate", "indexUids": "batched"}).json()
        assert list(listed) == ["results", "total", "limit", "from", "next"]
        assert [b["uid"] for b in listed["results"]] == [add["batchUid"]]
        by_task = c.get("/batches", params={"uids": add["uid"]}).json()["results"]
        assert [b["uid"] for b in by_task] == [add["batchUid"]]
        newest = c.get("/batches", params={"limit": 1}).json()
        oldest = c.get("/batches", params={"limit": 1, "reverse": "true"}).json()
        assert newest["results"][0]["uid"] >= oldest["results"][0]["uid"] and newest["next"] is not None
        errors = [
            c.get("/batches/doggo"),
            c.get("/batches/99999"),
            c.get("/batches", params={"types": "doggo"}),
            c.get("/batches", params={"doggo": "1"}),
        ]
        shapes.append([(e.status_code, e.json()) for e in errors])
    assert shapes[0] == shapes[1]
    (s1, e1), (s2, e2), (s3, e3), (s4, _) = shapes[0]
    assert (s1, e1["code"], e1["message"]) == (
        400, "invalid_batch_uids", "Batch uid `doggo` is invalid. It should only contain numeric characters."
    )
    assert (s2, e2["code"], e2["message"]) == (404, "batch_not_found", "Batch `99999` not found.")
    assert s3 == 400 and e3["code"] == "invalid_task_types" and e3["message"].endswith(
        "`indexCompaction`, `networkTopologyChange`, `dsrUpdate`, `dsrClear`."
    )
    assert s4 == 400


def test_experimental_features(pair):
    for c in pair:
        assert c.get("/experimental-features").json() == FEATURES_OFF
        r = c.patch("/experimental-features", json={"containsFilter": True, "metrics": None})
        assert r.status_code == 200 and r.json() == {**FEATURES_OFF, "containsFilter": True}
        assert c.get("/experimental-features").json()["containsFilter"] is True
        bad = c.patch("/experimental-features", json={"NotAFeature": True})
        assert bad.status_code == 400 and bad.json()["code"] == "bad_request"
        assert bad.json()["message"].startswith("Unknown field `NotAFeature`: expected one of `metrics`, `logsRoute`")
        typed = c.patch("/experimental-features", json={"metrics": 42}).json()
        assert typed["message"] == "Invalid value type at `.metrics`: expected a boolean, but found a positive integer: `42`"
        assert c.patch("/experimental-features", json={"containsFilter": False}).json() == FEATURES_OFF


def test_features_reach_every_node_and_survive_a_restart(tmp_path):
    with durable_cluster(2, rf=1, shards=2, tmp=tmp_path) as c:
        r = httpx.patch(f"{c.url}/experimental-features", json={"containsFilter": True}, timeout=10)
        assert r.status_code == 200, r.text
        for node in c.devnodes:  # broadcast: every node has it on
            assert httpx.get(f"{node.url}/experimental-features", timeout=5).json()["containsFilter"] is True
        c.restart_miroir()
        assert httpx.get(f"{c.url}/experimental-features", timeout=10).json()["containsFilter"] is True


def test_contains_filter_once_enabled(pair):
    """`CONTAINS` / `STARTS WITH` (1.50, `containsFilter`): refused with 1.50's text until
    enabled (tests/search/errors.rs snapshot), then the same hits from Miroir as from one node."""
    docs = [{"id": i, "doggo": n} for i, n in enumerate(["Kefir", "kefirette", "Echo", "a kefir b", "Fluff", "flute"])]
    answers = []
    for c in pair:
        done(c, c.post("/indexes", json={"uid": "dogs", "primaryKey": "id"}))
        done(c, c.patch("/indexes/dogs/settings", json={"filterableAttributes": ["doggo"]}))
        done(c, c.post("/indexes/dogs/documents", json=docs))
        off = c.post("/indexes/dogs/search", json={"filter": "doggo != echo AND doggo CONTAINS kefir"})
        assert off.status_code == 400, off.text
        assert off.json()["code"] == "feature_not_enabled"
        assert off.json()["message"] == (
            "Using `CONTAINS` in a filter requires enabling the `contains filter` experimental feature. "
            "See https://github.com/orgs/meilisearch/discussions/763\n25:33 doggo != echo AND doggo CONTAINS kefir"
        )
        assert c.patch("/experimental-features", json={"containsFilter": True}).status_code == 200
        got = []
        for flt in ("doggo CONTAINS kefir", "doggo STARTS WITH flu", "doggo NOT CONTAINS kefir", ["doggo CONTAINS e", "doggo STARTS WITH k"]):
            r = c.post("/indexes/dogs/search", json={"filter": flt, "limit": 20})
            assert r.status_code == 200, r.text
            got.append(sorted(h["id"] for h in r.json()["hits"]))
        listed = c.post("/indexes/dogs/documents/fetch", json={"filter": "doggo STARTS WITH kef"}).json()
        got.append(sorted(d["id"] for d in listed["results"]))
        answers.append(got)
        assert c.patch("/experimental-features", json={"containsFilter": False}).status_code == 200
    assert answers[0] == answers[1] == [[0, 1, 3], [4, 5], [2, 4, 5], [0, 1], [0, 1]], answers
