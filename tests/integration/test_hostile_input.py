"""Hostile input (issue 15 item 4): every answer is a Meilisearch-shaped error or success,
no 5xx, no traceback in any log, no partial write on any node.

One Miroir over three devnodes (RF 2: every write reaches two copies). Each refused write
is checked on the nodes themselves: their task counts and document counts do not move.
The totals (requests, cases, 5xx, tracebacks, partial writes) are printed by the last
test (`-s` shows them) and asserted there.
"""

from __future__ import annotations

import json
import socket
import time
from urllib.parse import quote

import httpx
import pytest
import trio
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from tests.support.devnodes import wait_task
from tests.support.miroir_proc import start_cluster

HYP = hsettings(
    max_examples=25, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
INDEX = "books"
SEED = [{"id": i, "title": f"book {i}", "tag": f"t{i % 3}"} for i in range(12)]
ERROR_KEYS = {"message", "code", "type", "link"}


def meili_uid_ok(uid: str) -> bool:
    """1.50's rule (meilisearch-types/src/index_uid.rs), written out here rather than taken
    from core.index_uid: the fuzz below must not agree with Miroir's check by construction."""
    return 0 < len(uid) <= 400 and all((c.isascii() and c.isalnum()) or c in "-_" for c in uid)
TOTALS = {"requests": 0, "cases": 0, "5xx": 0, "tracebacks": 0, "partial_writes": 0}


class Probe:
    """An HTTP client that counts requests and checks every answer's shape."""

    def __init__(self, cluster):
        self.c = cluster
        self.http = httpx.Client(base_url=cluster.url, timeout=30)
        self.direct = httpx.Client(timeout=10)  # to the nodes themselves

    def send(self, method: str, path: str, **kw) -> httpx.Response:
        TOTALS["requests"] += 1
        r = self.http.request(method, path, **kw)
        if r.status_code >= 500:
            TOTALS["5xx"] += 1
        shaped(r)
        return r

    def nodes(self) -> list[tuple[int, dict]]:
        """Per node: task total, documents per index."""
        out = []
        for d in self.c.devnodes:
            total = self.direct.get(f"{d.url}/tasks", params={"limit": 1}).json()["total"]
            stats = self.direct.get(f"{d.url}/stats").json()["indexes"]
            out.append((total, {uid: s["numberOfDocuments"] for uid, s in stats.items()}))
        return out

    def refused(self, method: str, path: str, status: int | tuple[int, ...], code: str | None = None, **kw) -> dict:
        """Send a request that must be refused synchronously and leave every node as it was."""
        TOTALS["cases"] += 1
        before = self.nodes()
        r = self.send(method, path, **kw)
        want = (status,) if isinstance(status, int) else status
        assert r.status_code in want, (method, path, r.status_code, r.text[:300])
        body = r.json()
        if code is not None:
            assert body["code"] == code, body
        if self.nodes() != before:
            TOTALS["partial_writes"] += 1
            pytest.fail(f"{method} {path} refused with {r.status_code} but a node changed")
        return body

    def failed(self, method: str, path: str, code: str, *, nodes_unchanged: bool = True, **kw) -> dict:
        """Send a write 1.50 accepts and then fails (checked when its batch is processed):
        the task fails with `code` and no document reaches any node."""
        TOTALS["cases"] += 1
        before = self.nodes()
        task = self.task(self.send(method, path, **kw))
        assert (task["status"], task["error"]["code"]) == ("failed", code), task
        after = self.nodes()
        if nodes_unchanged and after != before:
            TOTALS["partial_writes"] += 1
            pytest.fail(f"{method} {path} failed its task but a node changed")
        # A missing index is created (as 1.50 does) but holds no document.
        assert all(docs.get(uid, 0) == before_docs.get(uid, 0) for (_, docs), (_, before_docs) in zip(after, before)
                   for uid in docs)
        return task

    def task(self, r: httpx.Response) -> dict:
        assert r.status_code == 202, r.text[:300]
        return wait_task(self.c.url, r.json()["taskUid"], timeout=30)


def shaped(r: httpx.Response) -> None:
    if r.status_code >= 400:
        body = r.json()
        assert set(body) == ERROR_KEYS, (r.status_code, r.text[:300])
        assert body["link"] == "https://docs.meilisearch.com/errors#" + body["code"]


@pytest.fixture(scope="module")
def probe():
    with start_cluster(nodes=3, groups=1, rf=2, shards=8) as c:
        p = Probe(c)
        p.task(p.send("POST", "/indexes", json={"uid": INDEX, "primaryKey": "id"}))
        p.task(p.send("PATCH", f"/indexes/{INDEX}/settings", json={"filterableAttributes": ["tag"]}))
        p.task(p.send("POST", f"/indexes/{INDEX}/documents", json=SEED))
        yield p
        for d in c.devnodes:
            TOTALS["tracebacks"] += d.output().count("Traceback")
        p.http.close()
        p.direct.close()


@pytest.fixture(autouse=True)
def count_tracebacks(capfd):
    """Miroir runs in this process: its log lines reach our stderr."""
    yield
    out, err = capfd.readouterr()
    TOTALS["tracebacks"] += (out + err).count("Traceback")


def raw_json(body: bytes) -> dict:
    return {"content": body, "headers": {"Content-Type": "application/json"}}


def docs_path(uid: str = INDEX) -> str:
    return f"/indexes/{uid}/documents"


# --- malformed and deeply nested JSON ---------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [b"[{\"id\": 1,", b"{\"id\": 1}}", b"[1, 2]", b"\"text\"", b"null", b"[{\"id\": 1} {\"id\": 2}]", b"{\"id\": NaN}",
     b"{'id': 1}", b"\xef\xbb\xbf[{\"id\": 1}]", b"[{\"id\": 1, \"id\": }]"],
)
def test_malformed_documents(probe, body):
    probe.refused("POST", docs_path(), 400, **raw_json(body))


DEEP = 10**5


def deep(open_: bytes, close: bytes, inner: bytes = b"1") -> bytes:
    return open_ * DEEP + inner + close * DEEP


def test_deeply_nested_documents(probe):
    for body in (b'[{"id": 1, "v": ' + deep(b"[", b"]") + b"}]", b'{"id": 1, "v": ' + deep(b'{"a":', b"}") + b"}"):
        for ctype in ("application/json", "application/x-ndjson"):
            probe.refused("POST", docs_path(), 400, "malformed_payload", content=body, headers={"Content-Type": ctype})
    # Nested within what a decoder takes: stored, found, and the node survives a read.
    t = probe.task(probe.send("POST", docs_path(), json=[{"id": "nest", "v": json.loads("[" * 200 + "]" * 200)}]))
    assert t["status"] == "succeeded"
    assert probe.send("GET", docs_path() + "/nest").status_code == 200


@pytest.mark.parametrize(
    "method, path",
    [
        ("POST", f"/indexes/{INDEX}/search"), ("POST", "/multi-search"), ("PATCH", f"/indexes/{INDEX}/settings"),
        ("POST", "/indexes"), ("POST", "/swap-indexes"), ("POST", f"/indexes/{INDEX}/documents/delete-batch"),
        ("POST", f"/indexes/{INDEX}/documents/delete"), ("POST", f"/indexes/{INDEX}/documents/fetch"),
        ("POST", f"/indexes/{INDEX}/facet-search"), ("PATCH", f"/indexes/{INDEX}"),
    ],
)
def test_deeply_nested_json_elsewhere(probe, method, path):
    # serde_json's own answer on every JSON route (core/jsonlimits), and no node touched.
    body = probe.refused(method, path, 400, "malformed_payload", **raw_json(deep(b"[", b"]")))
    assert body["message"] == "The json payload provided is malformed. `recursion limit exceeded at line 1 column 128`."


# --- numbers ---------------------------------------------------------------------------


def test_huge_numbers_in_documents(probe):
    big = [{"id": "big1", "v": 2**64}, {"id": "big2", "v": -(2**63) - 1}, {"id": "big3", "v": [10**30, {"x": 2**100}]},
           {"id": "big4", "v": 1.7e308}, {"id": "big5", "v": 5e-324}]
    TOTALS["cases"] += 1
    assert probe.task(probe.send("POST", docs_path(), json=big))["status"] == "succeeded"
    assert probe.send("GET", docs_path() + "/big1").json()["v"] == 2.0**64  # an f64, as Meilisearch keeps it
    for body in (b'[{"id": "x", "v": 1e400}]', b'[{"id": "x", "v": -1e400}]', b'[{"id": "x", "v": 1' + b"0" * 400 + b"}]"):
        probe.refused("POST", docs_path(), 400, "malformed_payload", **raw_json(body))
    for bad_id in (2**64, -(2**63) - 1, 1.5, 1e30, True, None, [1], {"a": 1}):
        probe.failed("POST", docs_path(), "invalid_document_id", json=[{"id": "ok"}, {"id": bad_id}])
    for good_id in (2**64 - 1, -(2**63), 0, -1):
        TOTALS["cases"] += 1
        assert probe.task(probe.send("POST", docs_path(), json=[{"id": good_id, "n": 1}]))["status"] == "succeeded"
        assert probe.send("GET", docs_path() + f"/{good_id}").json()["id"] == good_id


def test_huge_numbers_elsewhere(probe):
    TOTALS["cases"] += 3
    r = probe.send("POST", f"/indexes/{INDEX}/search", json={"q": "", "limit": 2**64, "offset": 2**70})
    assert r.status_code in (200, 400)
    for flt in ("tag > 1e400", "tag = 99999999999999999999999999999", "tag IN [1e-400, -1e400]"):
        TOTALS["cases"] += 1
        r = probe.send("POST", f"/indexes/{INDEX}/search", json={"q": "", "filter": flt})
        assert r.status_code in (200, 400), r.text
    TOTALS["cases"] += 1
    assert probe.send("GET", docs_path() + "/a%00b").status_code in (400, 404)
    r = probe.send("POST", docs_path() + "/delete-batch", json=[2**70, 10**30])
    assert r.status_code in (202, 400)
    if r.status_code == 202:
        assert probe.task(r)["status"] in ("succeeded", "failed")
    probe.refused("PATCH", f"/indexes/{INDEX}/settings", 400, "invalid_settings_pagination",
                  json={"pagination": {"maxTotalHits": 2**64}})


# --- encodings, NUL bytes, sizes ------------------------------------------------------


def test_non_utf8_and_nul_bytes(probe):
    probe.refused("POST", docs_path(), 400, "malformed_payload", **raw_json(b'[{"id": "a", "t": "\xff\xfe"}]'))
    probe.refused("POST", docs_path(), 400, "malformed_payload", content=b"id,t\n1,\xff\n", headers={"Content-Type": "text/csv"})
    probe.refused("POST", docs_path(), 400, "malformed_payload", **raw_json(b'[{"id": "a", "t": "x\x00y"}]'))
    probe.failed("POST", docs_path(), "invalid_document_id", json=[{"id": "a\x00b"}])
    TOTALS["cases"] += 1
    t = probe.task(probe.send("POST", docs_path(), json=[{"id": "nul", "t": "x\x00y", "\x00": "k", "é": "\ud7ff"}]))
    assert t["status"] == "succeeded"
    assert probe.send("GET", docs_path() + "/nul").json()["t"] == "x\x00y"
    TOTALS["cases"] += 1
    r = probe.send("POST", f"/indexes/{INDEX}/search", content=b'{"q": "\xff"}', headers={"Content-Type": "application/json"})
    assert r.status_code == 400


def test_bodies_over_100_mb(probe):
    limit = probe.c.config.server.max_body_bytes
    assert limit == 100 * 1024 * 1024
    chunk = b'{"id": "z", "t": "' + b"a" * (1 << 20) + b'"},'

    def chunks():
        yield b"["
        for _ in range(limit // len(chunk) + 2):
            yield chunk
        yield b'{"id": "end"}]'

    # Streamed (no Content-Length): the limit is found while reading.
    probe.refused("POST", docs_path(), 413, "payload_too_large", content=chunks(), headers={"Content-Type": "application/json"})
    # Announced: refused before the body is read.
    TOTALS["cases"] += 1
    with socket.create_connection(("127.0.0.1", int(probe.c.url.rsplit(":", 1)[1])), timeout=10) as s:
        s.sendall(f"POST {docs_path()} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  f"Content-Length: {limit + 1}\r\n\r\n".encode() + b"[" * 1000)
        head = s.recv(65536)
    TOTALS["requests"] += 1
    assert head.startswith(b"HTTP/1.1 413"), head[:200]


# --- index uids --------------------------------------------------------------------------

ODD_UIDS = ["..", "../books", "%2e%2e", "%2E%2E%2Fbooks", "a" * 401, "a" * 512, "a" * 5000, "é", "书", "a b", "a\x00b",
            "a.b", "-", "_", "a" * 400, "A-Z_0-9"]


@pytest.mark.parametrize("uid", ODD_UIDS, ids=[repr(u[:12]) + f"/{len(u)}" for u in ODD_UIDS])
def test_odd_uids_in_paths_and_bodies(probe, uid):
    path_uid = quote(uid, safe="").replace(".", "%2E")
    if meili_uid_ok(uid):
        TOTALS["cases"] += 1
        assert probe.send("GET", f"/indexes/{path_uid}").json()["code"] == "index_not_found"
        return
    body = probe.refused("POST", "/indexes", 400, "invalid_index_uid", json={"uid": uid})
    assert body["message"].startswith(f"Invalid value at `.uid`: `{uid}` is not a valid index uid.")
    probe.refused("POST", f"/indexes/{path_uid}/documents", (400, 404), json=[{"id": 1}])
    probe.refused("PATCH", f"/indexes/{path_uid}/settings", (400, 404), json={})
    probe.refused("DELETE", f"/indexes/{path_uid}", (400, 404))
    probe.refused("POST", "/swap-indexes", 400, "invalid_index_uid", json=[{"indexes": [INDEX, uid]}])


@HYP
@given(uid=st.text(min_size=0, max_size=420) | st.text(alphabet="ab-_.%/\\", max_size=10))
def test_any_uid_is_valid_or_refused(probe, uid):
    path_uid = quote(uid, safe="").replace(".", "%2E")
    r = probe.send("GET", f"/indexes/{path_uid}/search")
    TOTALS["cases"] += 1
    if meili_uid_ok(uid):
        assert r.json()["code"] == "index_not_found"
    elif "/" in uid or not uid:  # not one path segment: the router's answer (`//` is redirected)
        assert r.status_code in (308, 400, 404, 405)
    else:
        assert r.status_code == 400 and r.json()["code"] == "invalid_index_uid", r.text
    if not meili_uid_ok(uid):
        body = probe.refused("POST", "/indexes", 400, "invalid_index_uid", json={"uid": uid})
        assert body["message"].startswith(f"Invalid value at `.uid`: `{uid}` is not a valid index uid.")


# --- primary keys and ids ------------------------------------------------------------------


def test_ids_at_and_past_the_limit(probe):
    TOTALS["cases"] += 1
    at = "k" * 511
    assert probe.task(probe.send("POST", docs_path(), json=[{"id": at}]))["status"] == "succeeded"
    assert probe.send("GET", docs_path() + "/" + at).json() == {"id": at}
    for bad in ("k" * 512, "", "a/b", "a b", "é", "a.b"):
        probe.failed("POST", docs_path(), "invalid_document_id", json=[{"id": "fine"}, {"id": bad}])
    probe.failed("POST", docs_path(), "missing_document_id", json=[{"id": "fine"}, {"title": "no id"}])
    # A fresh index whose primary key is given oddly.
    probe.failed("POST", docs_path("pk_odd"), "missing_document_id", nodes_unchanged=False, params={"primaryKey": "x" * 1000},
                 json=[{"id": 1}])
    probe.refused("POST", docs_path("pk_odd"), 400, "miroir_reserved_field", params={"primaryKey": "_miroir_shard"},
                  json=[{"_miroir_shard": 1}])


def test_string_and_integer_ids_are_one_document(probe):
    TOTALS["cases"] += 1

    def total() -> int:
        return probe.send("POST", f"/indexes/{INDEX}/search", json={"q": "", "limit": 0}).json()["estimatedTotalHits"]

    before = total()
    probe.task(probe.send("POST", docs_path(), json=[{"id": 4242, "v": "int"}]))
    probe.task(probe.send("POST", docs_path(), json=[{"id": "4242", "v": "str"}]))
    assert probe.send("GET", docs_path() + "/4242").json() == {"id": "4242", "v": "str"}
    assert total() == before + 1


# --- reserved names ----------------------------------------------------------------------------


def test_reserved_names_in_documents(probe):
    for doc in ({"id": 1, "_miroir_shard": 3}, {"id": 1, "_miroir_": 1}, {"id": 1, "_miroir_anything": None}):
        probe.refused("POST", docs_path(), 400, "miroir_reserved_field", json=[{"id": "ok"}, doc])
        probe.refused("PUT", docs_path(), 400, "miroir_reserved_field", json=[doc])
    probe.refused("POST", docs_path(), 400, "miroir_reserved_field", content=b"id,_miroir_shard\n1,2\n",
                  headers={"Content-Type": "text/csv"})


@pytest.mark.parametrize(
    "settings",
    [{"filterableAttributes": ["_miroir_shard"]}, {"sortableAttributes": ["_miroir_shard"]},
     {"distinctAttribute": "_miroir_shard"}, {"searchableAttributes": ["_miroir_shard"]},
     {"rankingRules": ["_miroir_shard:asc"]}, {"displayedAttributes": ["_miroir_shard"]}],
)
def test_reserved_names_in_settings(probe, settings):
    probe.refused("PATCH", f"/indexes/{INDEX}/settings", 400, "miroir_reserved_field", json=settings)


# --- CSV and NDJSON batches ------------------------------------------------------------------


def test_csv_with_mismatched_columns(probe):
    for body in (b"id,title\n100,a\n101,b,extra\n", b"id,title\n100,a\n101\n", b"id,title,x\n100,a\n"):
        probe.refused("POST", docs_path(), 400, "malformed_payload", content=body, headers={"Content-Type": "text/csv"})
    probe.refused("POST", docs_path(), 400, "malformed_payload", content=b"id,n:number\n100,abc\n",
                  headers={"Content-Type": "text/csv"})


def test_ndjson_batch_with_one_bad_line(probe):
    good = b"".join(json.dumps({"id": 200 + i, "title": "nd"}).encode() + b"\n" for i in range(50))
    ndjson = {"Content-Type": "application/x-ndjson"}
    for bad in (b'{"id": 999, "title": \n', b"[1]\n", b'{"id": 1, "_miroir_shard": 1}\n'):
        body = good[: len(good) // 2] + bad + good[len(good) // 2 :]
        probe.refused("POST", docs_path(), 400, content=body, headers=ndjson)
    # Ids are checked as 1.50 checks them, when the batch is processed: the task fails whole.
    for bad, code in ((b'{"id": "a b"}\n', "invalid_document_id"), (b"{}\n", "missing_document_id")):
        body = good[: len(good) // 2] + bad + good[len(good) // 2 :]
        probe.failed("POST", docs_path(), code, content=body, headers=ndjson)
    assert probe.send("GET", docs_path() + "/200").status_code == 404


@HYP
@given(body=st.binary(max_size=200) | st.text(max_size=200).map(str.encode),
       ctype=st.sampled_from(["application/json", "application/x-ndjson", "text/csv"]))
def test_arbitrary_bodies(probe, body, ctype):
    r = probe.send("POST", docs_path(), content=body, headers={"Content-Type": ctype})
    TOTALS["cases"] += 1
    assert r.status_code in (202, 400), r.text
    if r.status_code == 202:
        assert probe.task(r)["status"] in ("succeeded", "failed")


_leaf = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
         | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20))
_json = st.recursive(_leaf, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
                     max_leaves=12)


@HYP
@given(docs=st.lists(st.dictionaries(st.text(max_size=8), _json, max_size=5), min_size=1, max_size=4),
       ids=st.lists(st.integers(min_value=-(2**65), max_value=2**65) | st.text(max_size=12), min_size=4, max_size=4))
def test_arbitrary_documents(probe, docs, ids):
    for doc, id_ in zip(docs, ids):
        doc["id"] = id_
    TOTALS["cases"] += 1
    before = probe.nodes()
    r = probe.send("POST", docs_path(), json=docs)
    if r.status_code == 400:
        assert probe.nodes() == before, "refused batch reached a node"
        return
    task = probe.task(r)
    if task["status"] == "failed":  # an id 1.50 refuses when it processes the batch
        assert task["error"]["code"] == "invalid_document_id", task
        assert probe.nodes() == before, "failed batch reached a node"
        return
    assert task["status"] == "succeeded", task


# --- the HTTP layer ---------------------------------------------------------------------------


def _raw(probe, data: bytes) -> bytes:
    """Send raw bytes; the answer's head (or b"" if the connection closes unanswered)."""
    TOTALS["requests"] += 1
    with socket.create_connection(("127.0.0.1", int(probe.c.url.rsplit(":", 1)[1])), timeout=5) as s:
        s.sendall(data)
        out = b""
        try:
            while b"\r\n\r\n" not in out:
                part = s.recv(65536)
                if not part:
                    break
                out += part
        except (TimeoutError, ConnectionResetError):
            pass
    return out


@pytest.mark.parametrize(
    "head, want",
    [
        # Read as chunked, as RFC 9112 section 6.3 says: a whole, ordinary write.
        (b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", b"202"),
        (b"Content-Length: 5\r\nContent-Length: 7\r\n", b"400"),
        (b"Content-Length: -1\r\n", b"400"),
        (b"Content-Length: abc\r\n", b"400"),
        (b"Transfer-Encoding: gzip, chunked\r\n", b"400"),
        (b"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n", b"400"),
    ],
)
def test_conflicting_length_headers(probe, head, want):
    before = probe.nodes()
    body = b'[{"id": "smuggled"}]'
    out = _raw(probe, b"POST " + docs_path().encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               + head + b"Connection: close\r\n\r\n" + b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n")
    status = out[9:12]
    if status == b"202":
        probe.task(probe.send("POST", docs_path() + "/delete-batch", json=["smuggled"]))
    elif probe.nodes() != before:
        TOTALS["partial_writes"] += 1
        pytest.fail(f"refused with {status!r} but a node changed")
    if status.startswith(b"5"):
        TOTALS["5xx"] += 1
    TOTALS["cases"] += 1
    assert status == want, out[:300]


def test_slow_clients_do_not_stop_searches(probe):
    port = int(probe.c.url.rsplit(":", 1)[1])
    TOTALS["cases"] += 1

    async def main() -> list[float]:
        held = []
        for _ in range(200):
            s = await trio.open_tcp_stream("127.0.0.1", port)
            await s.send_all(b"POST /indexes/books/search HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n")
            held.append(s)
        timings = []
        async with httpx.AsyncClient(base_url=probe.c.url, timeout=10) as client:
            for i in range(20):
                for s in held[i * 10 : (i + 1) * 10]:  # the slow clients trickle a byte now and then
                    await s.send_all(b"X")
                t0 = time.perf_counter()
                r = await client.post(f"/indexes/{INDEX}/search", json={"q": "book", "limit": 3})
                timings.append(time.perf_counter() - t0)
                TOTALS["requests"] += 1
                assert r.status_code == 200 and r.json()["hits"], r.text
        for s in held:
            await s.aclose()
        TOTALS["requests"] += 200
        return timings

    timings = trio.run(main)
    assert max(timings) < 5.0, timings


# --- the figures --------------------------------------------------------------------------------


def test_zz_totals(probe):
    """Runs last in this module (pytest keeps file order): the counts the issue asks for."""
    for d in probe.c.devnodes:
        assert "Traceback" not in d.output()
    print(f"\nhostile-input totals: {TOTALS}")
    assert TOTALS["5xx"] == 0 and TOTALS["partial_writes"] == 0 and TOTALS["tracebacks"] == 0, TOTALS
