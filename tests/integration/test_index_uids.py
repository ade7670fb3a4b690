"""Issue 20 point 7: no uid, id or number a client can send crashes a node.

`POST /indexes {"uid": "x" * 400}` (a uid Meilisearch accepts: its rule is 1 to 400
bytes of [A-Za-z0-9_-]) used to kill every devnode with `[Errno 36] File name too long`
and again on every restart replaying the task; integers past 2**64 crashed the devnode's
snapshot encoder. Both checked on a devnode directly (kill -9 and restart included) and
through Miroir.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from miroir.core.documents import decode_documents
from miroir.core.errors import MeiliError
from miroir.core.index_uid import valid_index_uid
from tests.support.devnodes import start_devnodes, wait_task
from tests.support.miroir_proc import start_cluster

LONG_UID = "x" * 400  # the longest uid Meilisearch 1.50 accepts
UID_MESSAGE = (
    "`{}` is not a valid index uid. Index uid can be an integer or a string containing only alphanumeric "
    "characters, hyphens (-) and underscores (_), and can not be more than 512 bytes."
)


@pytest.mark.parametrize(
    "uid, ok",
    [
        ("a", True), ("A-z_09", True), (LONG_UID, True), ("9" * 400, True),
        ("", False), (LONG_UID + "x", False), ("x" * 512, False), ("a.b", False), ("..", False), ("../a", False),
        ("%2e%2e", False), ("é", False), ("a b", False), ("a\x00b", False), ("a\n", False), ("ａ", False),
        (1, False), (None, False),
    ],
)
def test_uid_rule_is_meilisearch_150(uid, ok):
    assert valid_index_uid(uid) is ok


def test_document_numbers_as_serde_json_reads_them():
    body = b'[{"id": -5, "big": 18446744073709551616, "max": 18446744073709551615, "neg": -9223372036854775809,' \
           b' "deep": [{"n": 100000000000000000000}]}]'
    (doc,) = decode_documents(body, "json")
    assert doc == {"id": -5, "big": 2.0**64, "max": 2**64 - 1, "neg": -(2.0**63), "deep": [{"n": 1e20}]}
    assert type(doc["max"]) is int and type(doc["big"]) is float
    for bad in (b'[{"id": 1, "v": 1e400}]', b'[{"id": 1, "v": 1' + b"0" * 400 + b"}]", b'{"id": 1, "v": ' + b"[" * 10**5 + b"]" * 10**5 + b"}"):
        with pytest.raises(MeiliError) as e:
            decode_documents(bad, "json")
        assert e.value.code == "malformed_payload"
    rows = decode_documents(b"id,n:number\n1,18446744073709551616\n2,1e400\n3,-7\n4,nan\n", "csv")
    assert [r["n"] for r in rows] == [2.0**64, None, -7, None]


def _write(url: str, method: str, path: str, **kw) -> dict:
    r = httpx.request(method, url + path, timeout=10.0, **kw)
    assert r.status_code == 202, r.text
    return wait_task(url, r.json()["taskUid"])


def test_devnode_survives_long_uid_and_big_numbers_across_kill_9(tmp_path):
    with start_devnodes(1, data_dirs=[str(tmp_path / "data")]) as (node,):
        url = node.url
        assert _write(url, "POST", "/indexes", json={"uid": LONG_UID, "primaryKey": "id"})["status"] == "succeeded"
        docs = [{"id": 1, "v": 2**64}, {"id": -2, "v": -(2**63) - 1}, {"id": "3", "v": [2**70]}]
        assert _write(url, "POST", f"/indexes/{LONG_UID}/documents", json=docs)["status"] == "succeeded"
        bad = _write(url, "POST", f"/indexes/{LONG_UID}/documents", json=[{"id": 2**64}])
        assert bad["status"] == "failed" and bad["error"]["code"] == "invalid_document_id"
        assert "`1.8446744073709552e19`" in bad["error"]["message"]
        r = httpx.post(url + "/indexes", json={"uid": LONG_UID + "x"})
        assert r.status_code == 400 and r.json()["message"] == "Invalid value at `.uid`: " + UID_MESSAGE.format(LONG_UID + "x")
        r = httpx.patch(f"{url}/indexes/{LONG_UID}", json={"uid": "a.b"})
        assert r.status_code == 400 and r.json()["code"] == "invalid_index_uid"
        before = httpx.get(f"{url}/indexes/{LONG_UID}/documents", params={"limit": 10}).json()
        assert before["total"] == 3 and before["results"][0]["v"] == 2.0**64

        node.kill()
        node.restart()  # used to crash again here, replaying the index creation
        assert httpx.get(f"{url}/indexes/{LONG_UID}").json()["uid"] == LONG_UID
        assert httpx.get(f"{url}/indexes/{LONG_UID}/documents", params={"limit": 10}).json() == before
        assert "Traceback" not in node.output()


def test_devnode_fails_a_batch_it_cannot_persist_and_never_replays_it(tmp_path):
    """A snapshot that cannot be written fails its task (as Meilisearch fails a task); the
    node keeps serving, the failure is what a restart finds, nothing is replayed."""
    data = tmp_path / "data"
    with start_devnodes(1, data_dirs=[str(data)]) as (node,):
        url = node.url
        assert _write(url, "POST", "/indexes/books/documents", json=[{"id": 1}])["status"] == "succeeded"
        blocker = Path(data, "indexes", "books.idx.tmp")
        blocker.mkdir()  # the atomic write's temporary file cannot be created
        task = _write(url, "POST", "/indexes/books/documents", json=[{"id": 2}])
        assert task["status"] == "failed" and task["error"]["code"] == "internal"
        assert httpx.get(url + "/health").status_code == 200
        assert httpx.get(url + "/indexes/books/documents/2").status_code == 404  # rolled back to the disk
        blocker.rmdir()
        node.kill()
        node.restart()
        assert httpx.get(f"{url}/tasks/{task['uid']}").json()["status"] == "failed"
        assert httpx.get(url + "/indexes/books/documents", params={"limit": 5}).json()["total"] == 1
        assert _write(url, "POST", "/indexes/books/documents", json=[{"id": 3}])["status"] == "succeeded"


def test_miroir_refuses_bad_uids_before_any_node_and_serves_long_ones():
    with start_cluster(nodes=2, groups=1, rf=1, shards=4) as c:
        http = httpx.Client(base_url=c.url, timeout=15)

        def node_tasks() -> list[int]:
            return [httpx.get(f"{d.url}/tasks", params={"limit": 1}).json()["total"] for d in c.devnodes]

        before = node_tasks()
        too_long = LONG_UID + "x"
        for method, path, body in [
            ("POST", "/indexes", {"uid": too_long}),
            ("POST", "/indexes", {"uid": "a.b"}),
            ("POST", "/indexes", {"uid": "é"}),
            ("PATCH", f"/indexes/{too_long}", {"primaryKey": "id"}),
            ("PATCH", "/indexes/books", {"uid": too_long}),  # a rename's target
            ("DELETE", f"/indexes/{too_long}", None),
            ("POST", f"/indexes/{too_long}/documents", [{"id": 1}]),
            ("PUT", f"/indexes/{too_long}/documents", [{"id": 1}]),
            ("DELETE", f"/indexes/{too_long}/documents", None),
            ("POST", f"/indexes/{too_long}/documents/delete-batch", [1]),
            ("POST", f"/indexes/{too_long}/documents/delete", {"filter": "a = 1"}),
            ("DELETE", f"/indexes/{too_long}/documents/1", None),
            ("GET", f"/indexes/{too_long}/documents/1", None),
            ("GET", f"/indexes/{too_long}/documents", None),
            ("POST", f"/indexes/{too_long}/documents/fetch", {}),
            ("GET", f"/indexes/{too_long}", None),
            ("GET", f"/indexes/{too_long}/search", None),
            ("POST", f"/indexes/{too_long}/search", {}),
            ("POST", f"/indexes/{too_long}/facet-search", {"facetName": "a"}),
            ("GET", f"/indexes/{too_long}/settings", None),
            ("PATCH", f"/indexes/{too_long}/settings", {}),
            ("DELETE", f"/indexes/{too_long}/settings", None),
            ("GET", f"/indexes/{too_long}/stats", None),
            ("GET", "/indexes/%2e%2e", None),
            ("POST", "/swap-indexes", [{"indexes": ["books", too_long]}]),
        ]:
            r = http.request(method, path, json=body)
            assert r.status_code == 400, (method, path, r.status_code, r.text)
            assert r.json()["code"] == "invalid_index_uid", (method, path, r.text)
        assert node_tasks() == before

        r = http.post("/indexes", json={"uid": LONG_UID, "primaryKey": "id"})
        assert wait_task(c.url, r.json()["taskUid"])["status"] == "succeeded"
        r = http.post(f"/indexes/{LONG_UID}/documents", json=[{"id": i, "v": 2**64 + i} for i in range(20)])
        assert wait_task(c.url, r.json()["taskUid"])["status"] == "succeeded"
        r = http.post(f"/indexes/{LONG_UID}/documents", json=[{"id": 2**64}])
        failed = wait_task(c.url, r.json()["taskUid"])  # 1.50 fails the task, not the request
        assert (failed["status"], failed["error"]["code"]) == ("failed", "invalid_document_id")
        assert http.get(f"/indexes/{LONG_UID}/documents/7").json() == {"id": 7, "v": 2.0**64}
        assert http.post(f"/indexes/{LONG_UID}/search", json={"limit": 0}).json()["estimatedTotalHits"] == 20
        for d in c.devnodes:
            assert httpx.get(f"{d.url}/indexes/{LONG_UID}").status_code == 200
            assert "Traceback" not in d.output()
        http.close()
