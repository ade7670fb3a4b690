"""Rejected writes: Meilisearch's status and code, and no node receives any part of them.

"No node touched" is checked on the nodes themselves: their task count does not move.
"""

from __future__ import annotations

import httpx
import pytest

from tests.support.devnodes import wait_task
from tests.support.miroir_proc import start_cluster


@pytest.fixture(scope="module")
def c():
    with start_cluster(nodes=2, groups=1, rf=1, shards=8) as cluster:
        http = httpx.Client(base_url=cluster.url, timeout=10)
        r = http.post("/indexes", json={"uid": "books", "primaryKey": "id"})
        assert wait_task(cluster.url, r.json()["taskUid"])["status"] == "succeeded"
        r = http.post("/indexes/books/documents", json=[{"id": 1, "title": "one"}])
        assert wait_task(cluster.url, r.json()["taskUid"])["status"] == "succeeded"
        cluster.http = http
        yield cluster
        http.close()


def node_task_totals(c) -> list[int]:
    return [httpx.get(f"{d.url}/tasks", params={"limit": 1}, timeout=5).json()["total"] for d in c.devnodes]


GOOD = [{"id": 2, "title": "two"}, {"id": "three", "title": "three"}]

CASES = [
    # (name, index, params, content type, body, status, code)
    ("reserved shard field", "books", {}, "application/json", [*GOOD, {"id": 9, "_miroir_shard": 3}], 400, "miroir_reserved_field"),
    ("reserved field", "books", {}, "application/json", [{"id": 9, "_miroir_x": 1}], 400, "miroir_reserved_field"),
    ("malformed json", "books", {}, "application/json", b"[{\"id\": 1,", 400, "malformed_payload"),
    ("not objects", "books", {}, "application/json", b"[1, 2]", 400, "malformed_payload"),
    ("empty body", "books", {}, "application/json", b"", 400, "missing_payload"),
    ("wrong content type", "books", {}, "text/plain", b"[]", 415, "invalid_content_type"),
    ("no content type", "books", {}, None, b"[]", 415, "missing_content_type"),
    ("csv delimiter with json", "books", {"csvDelimiter": ";"}, "application/json", GOOD, 415, "invalid_content_type"),
    ("bad csv delimiter", "books", {"csvDelimiter": ";;"}, "text/csv", b"id\n1\n", 400, "invalid_document_csv_delimiter"),
    ("malformed csv", "books", {}, "text/csv", b"id,title\n1,a,b\n", 400, "malformed_payload"),
    ("malformed ndjson", "books", {}, "application/x-ndjson", b"{\"id\": 1}\n{\"id\":", 400, "malformed_payload"),
    ("unknown parameter", "books", {"foo": "1"}, "application/json", GOOD, 400, "bad_request"),
    ("invalid index uid", "bad.uid", {}, "application/json", GOOD, 400, "invalid_index_uid"),
]

# Checked by 1.50 when the batch is processed: 202, then the task fails with the error and
# the whole batch is dropped. A missing index is created first (1.50 commits its creation
# before it reads the documents), without a primary key.
FAILED = [
    # (name, index, params, content type, body, code)
    ("missing id", "books", {}, "application/json", [*GOOD, {"title": "no id"}], "missing_document_id"),
    ("invalid id", "books", {}, "application/json", [*GOOD, {"id": "a.b"}], "invalid_document_id"),
    ("id past u64", "books", {}, "application/json", [{"id": 2**64}], "invalid_document_id"),
    ("float id", "books", {}, "application/json", [{"id": 1.5}], "invalid_document_id"),
    ("pk mismatch", "books", {"primaryKey": "title"}, "application/json", GOOD, "index_primary_key_already_exists"),
    ("no pk candidate", "fresh1", {}, "application/json", [{"title": "x"}], "index_primary_key_no_candidate_found"),
    ("two pk candidates", "fresh2", {}, "application/json", [{"id": 1, "uid": 2}], "index_primary_key_multiple_candidates_found"),
    ("bad doc on missing index", "fresh3", {"primaryKey": "id"}, "application/json", [{"id": "ok"}, {"x": 1}], "missing_document_id"),
    ("csv missing id", "books", {}, "text/csv", b"id,title\n5,a\n,b\n", "invalid_document_id"),
]


@pytest.mark.parametrize("method", ["POST", "PUT"])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_rejected_batch_touches_no_node(c, case, method):
    _, index, params, ctype, body, status, code = case
    before = node_task_totals(c)
    headers = {"Content-Type": ctype} if ctype else {}
    content = body if isinstance(body, bytes) else httpx.Request("POST", "/", json=body).content
    r = c.http.request(method, f"/indexes/{index}/documents", params=params, content=content, headers=headers)
    assert r.status_code == status, r.text
    err = r.json()
    assert err["code"] == code, err
    assert set(err) == {"message", "code", "type", "link"}
    assert node_task_totals(c) == before
    if index.startswith("fresh"):  # a refused batch does not create the index either
        assert c.http.get(f"/indexes/{index}").status_code == 404
        assert all(httpx.get(f"{d.url}/indexes/{index}", timeout=5).status_code == 404 for d in c.devnodes)


def test_content_type_errors_word_as_meilisearch(c):
    # 1.50's tests/documents/add_documents.rs: the accepted types listed, "is missing".
    accepted = "Accepted values for the Content-Type header are: `application/json`, `application/x-ndjson`, `text/csv`"
    r = c.http.post("/indexes/books/documents", content=b"[]")
    assert (r.status_code, r.json()["message"]) == (415, f"A Content-Type header is missing. {accepted}")
    r = c.http.post("/indexes/books/documents", content=b"[]", headers={"Content-Type": "text/plain"})
    assert (r.status_code, r.json()["message"]) == (415, f"The Content-Type `text/plain` is invalid. {accepted}")


def test_index_uid_and_existing_index(c):
    before = node_task_totals(c)
    r = c.http.post("/indexes", json={"uid": "no good"})
    assert (r.status_code, r.json()["code"]) == (400, "invalid_index_uid")
    r = c.http.post("/indexes", json={"primaryKey": "id"})
    assert (r.status_code, r.json()["code"]) == (400, "missing_index_uid")
    r = c.http.post("/indexes", json={"uid": "x", "foo": 1})
    assert (r.status_code, r.json()["code"]) == (400, "bad_request")
    assert node_task_totals(c) == before
    # index_already_exists fails the task, not the HTTP answer (as Meilisearch).
    r = c.http.post("/indexes", json={"uid": "books"})
    assert r.status_code == 202
    task = wait_task(c.url, r.json()["taskUid"])
    assert task["status"] == "failed" and task["error"]["code"] == "index_already_exists"
    assert node_task_totals(c) == before


def test_missing_index_reads_and_deletes(c):
    r = c.http.get("/indexes/nope/documents/1")
    assert (r.status_code, r.json()["code"]) == (404, "index_not_found")
    r = c.http.get("/indexes/books/documents/404")
    assert (r.status_code, r.json()["code"]) == (404, "document_not_found")
    for method, path, body in [
        ("DELETE", "/indexes/nope/documents/1", None),
        ("POST", "/indexes/nope/documents/delete-batch", [1]),
        ("DELETE", "/indexes/nope/documents", None),
    ]:
        r = c.http.request(method, path, json=body)
        assert r.status_code == 202, r.text
        task = wait_task(c.url, r.json()["taskUid"])
        assert (task["status"], task["error"]["code"], task["type"]) == ("failed", "index_not_found", "documentDeletion")
    r = c.http.post("/indexes/books/documents/delete", json={})
    assert (r.status_code, r.json()["code"]) == (400, "missing_document_filter")
    r = c.http.post("/indexes/books/documents/delete-batch", json={"ids": [1]})
    assert (r.status_code, r.json()["code"]) == (400, "bad_request")


@pytest.mark.parametrize("method", ["POST", "PUT"])
@pytest.mark.parametrize("case", FAILED, ids=[c[0] for c in FAILED])
def test_batch_failing_its_task_writes_nothing(c, case, method):
    _, index, params, ctype, body, code = case
    index = f"{index}_{method.lower()}" if index.startswith("fresh") else index
    fresh = index.startswith("fresh")
    before = node_task_totals(c)
    content = body if isinstance(body, bytes) else httpx.Request("POST", "/", json=body).content
    r = c.http.request(method, f"/indexes/{index}/documents", params=params, content=content, headers={"Content-Type": ctype})
    assert r.status_code == 202, r.text
    task = wait_task(c.url, r.json()["taskUid"])
    assert (task["status"], task["type"], task["error"]["code"]) == ("failed", "documentAdditionOrUpdate", code), task
    assert set(task["error"]) == {"message", "code", "type", "link"}
    assert task["details"]["indexedDocuments"] == 0
    if not fresh:
        assert node_task_totals(c) == before  # no node was sent any part of the batch
        assert c.http.get("/indexes/books/documents", params={"limit": 0}).json()["total"] == 1
    else:
        # Created as 1.50 creates it, with no primary key and no document on any node.
        assert c.http.get(f"/indexes/{index}").json()["primaryKey"] is None
        assert c.http.get(f"/indexes/{index}/documents", params={"limit": 0}).json()["total"] == 0
        for d in c.devnodes:
            assert httpx.get(f"{d.url}/indexes/{index}/documents", params={"limit": 0}, timeout=5).json()["total"] == 0
