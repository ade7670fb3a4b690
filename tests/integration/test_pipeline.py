"""One request pipeline (issue 12 item 3): the search fast path (api/fast.py) and the Quart
app (api/app.py) answer the same request identically: status, body, headers, and the
`request` log line.

`/indexes/{uid}/search` is answered by the fast path; `/indexes/{uid}/search/` (a search
in Meilisearch too, it trims the slash) goes through Quart's routing and hooks to the same
handler. Every case is sent to both on a real `miroir serve` over one devnode (master
key, API keys, a tenant token, 1 KiB body limit) and the answers compared field by field.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

import httpx
import jwt
import pytest

from tests.integration.test_serve import write_config
from tests.support.devnodes import start_devnodes, wait_task
from tests.support.miroir_proc import Daemon

MASTER = "master-key-pipeline-0123456789"
M = {"Authorization": f"Bearer {MASTER}"}
JSON = {"Content-Type": "application/json"}
ORIGIN = {"Origin": "http://app.example"}
# Headers that differ between any two answers, whoever serves them.
VOLATILE = {"date"}


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> Iterator[tuple[Daemon, str, dict[str, dict[str, str]]]]:
    tmp = tmp_path_factory.mktemp("pipeline")
    with start_devnodes(1) as (node,):
        extra = f'[cluster]\nshards = 2\n[[nodes]]\nid = "n1"\nurl = "{node.url}"\n'
        d = Daemon(write_config(tmp / "miroir.toml", tmp / "data", extra=extra), env={"MIROIR_MASTER_KEY": MASTER})
        try:
            url = f"http://127.0.0.1:{d.wait_ready()}"
            with httpx.Client(base_url=url, headers=M, timeout=30) as c:
                docs = [{"id": i, "title": f"dune part {i}", "genre": "sf" if i % 2 else "drama"} for i in range(6)]
                wait_task(url, c.post("/indexes/movies/documents", json=docs).json()["taskUid"], MASTER, timeout=30)
                r = c.patch("/indexes/movies/settings", json={"filterableAttributes": ["genre"]})
                wait_task(url, r.json()["taskUid"], MASTER, timeout=30)
                search = c.post("/keys", json={"actions": ["search"], "indexes": ["movies"], "expiresAt": None}).json()
                other = c.post("/keys", json={"actions": ["search"], "indexes": ["books"], "expiresAt": None}).json()
                docs_only = c.post("/keys", json={"actions": ["documents.get"], "indexes": ["*"], "expiresAt": None}).json()
            rule = {"movies": {"filter": "genre = sf"}}
            tenant = jwt.encode({"apiKeyUid": search["uid"], "searchRules": rule, "exp": None}, search["key"], "HS256")
            bad_tenant = jwt.encode({"apiKeyUid": search["uid"], "searchRules": rule}, "wrong-secret-" * 3, "HS256")
            keys = {
                "search": {"Authorization": f"Bearer {search['key']}"},
                "other": {"Authorization": f"Bearer {other['key']}"},
                "docs_only": {"Authorization": f"Bearer {docs_only['key']}"},
                "tenant": {"Authorization": f"Bearer {tenant}"},
                "bad_tenant": {"Authorization": f"Bearer {bad_tenant}"},
            }
            yield d, url, keys
        finally:
            d.kill()


# (name, method, uid and query, credentials, extra headers, body)
CASES: list[tuple[str, str, str, str | None, dict[str, str], bytes | None]] = [
    # authorization
    ("no key", "POST", "movies", None, {}, b'{"q":"dune"}'),
    ("wrong key", "POST", "movies", "wrong", {}, b'{"q":"dune"}'),
    ("not bearer", "POST", "movies", "basic", {}, b'{"q":"dune"}'),
    ("bearer alone", "POST", "movies", "bearer alone", {}, b'{"q":"dune"}'),
    ("key for another index", "POST", "movies", "other", {}, b'{"q":"dune"}'),
    ("key without search", "POST", "movies", "docs_only", {}, b'{"q":"dune"}'),
    ("tenant token, bad signature", "POST", "movies", "bad_tenant", {}, b'{"q":"dune"}'),
    ("GET no key", "GET", "movies?q=dune", None, {}, None),
    # the body
    ("body too large", "POST", "movies", "master", {}, b'{"q":"' + b"a" * 2000 + b'"}'),
    ("body too large, no key", "POST", "movies", None, {}, b'{"q":"' + b"a" * 2000 + b'"}'),
    ("malformed json", "POST", "movies", "master", {}, b'{"q":'),
    ("empty body", "POST", "movies", "master", {}, b""),
    ("not an object", "POST", "movies", "master", {}, b"[1,2]"),
    ("too deep", "POST", "movies", "master", {}, b'{"filter":' + b"[" * 200 + b"]" * 200 + b"}"),
    # parameters
    ("bad field type", "POST", "movies", "master", {}, b'{"limit":"ten"}'),
    ("unknown field", "POST", "movies", "master", {}, b'{"nope":1}'),
    ("bad filter", "POST", "movies", "master", {}, b'{"filter":"title = x"}'),
    ("GET bad limit", "GET", "movies?limit=abc", "master", {}, None),
    ("GET bad bool", "GET", "movies?showRankingScore=yes", "master", {}, None),
    ("unknown index", "POST", "series", "master", {}, b'{"q":"dune"}'),
    ("bad uid", "POST", "bad%20uid", "master", {}, b'{"q":"dune"}'),
    # answers
    ("success", "POST", "movies", "master", {}, b'{"q":"dune","sort":[],"limit":3}'),
    ("success GET", "GET", "movies?q=dune&limit=2&attributesToRetrieve=id", "master", {}, None),
    ("success, search key", "POST", "movies", "search", {}, b'{"q":"dune"}'),
    ("success, tenant token", "POST", "movies", "tenant", {}, b'{"q":"dune"}'),
    ("CORS on success", "POST", "movies", "master", ORIGIN, b'{"q":"dune"}'),
    ("CORS on an error", "POST", "movies", None, ORIGIN, b'{"q":"dune"}'),
    ("CORS preflight", "OPTIONS", "movies", None,
     {**ORIGIN, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization, content-type"}, None),
    ("no request id given", "POST", "movies", "master", {"X-Request-Id": ""}, b'{"q":"dune"}'),
]


def _credentials(keys: dict[str, dict[str, str]], which: str | None) -> dict[str, str]:
    if which is None:
        return {}
    return {
        "master": M,
        "wrong": {"Authorization": "Bearer not-a-key"},
        "basic": {"Authorization": f"Basic {MASTER}"},
        "bearer alone": {"Authorization": "Bearer"},
    }.get(which) or keys[which]


def _path(uid_and_query: str, slash: bool) -> str:
    uid, _, query = uid_and_query.partition("?")
    return f"/indexes/{uid}/search" + ("/" if slash else "") + (f"?{query}" if query else "")


def _logged(d: Daemon, request_id: str, n: int) -> list[dict[str, Any]]:
    """The `request` log lines of `request_id` (logged after the answer: poll, bounded)."""
    found: list[dict[str, Any]] = []
    for _ in range(200):
        found = []
        for line in list(d.lines):
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict) and rec.get("event") == "request" and rec.get("request_id") == request_id:
                found.append(rec)
        if len(found) >= n:
            break
        time.sleep(0.05)
    return found


def _comparable(r: httpx.Response) -> tuple[int, Any, dict[str, str]]:
    body: Any = r.content
    if r.headers.get("content-type") == "application/json" and r.content:
        body = r.json()
        if isinstance(body, dict):
            body.pop("processingTimeMs", None)  # a measurement, different every time
            body.pop("requestUid", None)  # a fresh UUID v7 per search
    headers = {k: v for k, v in r.headers.items() if k not in VOLATILE}
    if body != r.content:
        headers.pop("content-length")  # processingTimeMs's digits
    return r.status_code, body, headers


@pytest.mark.parametrize(("name", "method", "uid", "cred", "extra", "body"), CASES, ids=[c[0] for c in CASES])
def test_fast_path_and_quart_answer_alike(env, name, method, uid, cred, extra, body):
    d, url, keys = env
    rid = "" if extra.get("X-Request-Id") == "" else f"rid-{name.replace(' ', '-').replace(',', '')}"
    headers = {**(JSON if body is not None else {}), **_credentials(keys, cred), **extra}
    if rid:
        headers["X-Request-Id"] = rid
    else:
        headers.pop("X-Request-Id")
    answers = []
    for slash in (False, True):
        with httpx.Client(base_url=url, timeout=10) as c:
            r = c.request(method, _path(uid, slash), content=body, headers=headers)
            answers.append(r)
            if r.headers.get("connection") != "close":
                # The body was consumed: the connection serves the next request.
                assert c.get("/health").status_code == 200
    fast, quart = map(_comparable, answers)
    if not rid:  # a fresh id for each request: 32 hex digits, different
        ids = [h.pop("x-request-id") for _, _, h in (fast, quart)]
        assert all(len(i) == 32 for i in ids) and ids[0] != ids[1]
    assert fast == quart, name
    status, answer, hdrs = fast
    if rid:
        assert hdrs["x-request-id"] == rid
    if method != "OPTIONS" and status != 200:
        assert list(answer) == ["message", "code", "type", "link"], answer
    if "Origin" in extra:
        assert hdrs["access-control-allow-origin"] == "*"
    if name.startswith("success"):
        assert status == 200 and answer["hits"], answer
    if name == "success, tenant token":
        assert {h["genre"] for h in answer["hits"]} == {"sf"}  # the token's rule applies
    if name == "body too large":
        assert (status, answer["code"], hdrs["connection"]) == (413, "payload_too_large", "close")
    if name == "body too large, no key":  # the key first, as Meilisearch; the rest is not read
        assert (status, answer["code"], hdrs["connection"]) == (401, "missing_authorization_header", "close")
    if rid:
        lines = _logged(d, rid, 2)
        assert len(lines) == 2, lines
        for rec in lines:
            rec.pop("timestamp", None)
            assert isinstance(rec.pop("duration_ms"), float)
        by_path = {rec.pop("path"): rec for rec in lines}
        paths = {unquote(_path(uid, slash).partition("?")[0]) for slash in (False, True)}
        assert set(by_path) == paths
        one, other = by_path.values()
        assert one == other
        assert (one["method"], one["route"], one["status"]) == (method, "/indexes/<uid>/search", status)
        if status == 200 and method != "OPTIONS":
            assert one["fanout"] == 1  # one node holds both shards
        if status in (401, 403, 413):
            assert one["fanout"] == 0  # refused before any node is asked


def test_chunked_body_over_the_limit_on_both_paths(env):
    _, url, _ = env

    def chunks() -> Iterator[bytes]:
        for _ in range(40):
            yield b" " * 100

    answers = []
    for slash in (False, True):
        with httpx.Client(base_url=url, timeout=10) as c:
            answers.append(c.post(_path("movies", slash), content=chunks(), headers={**JSON, **M, "X-Request-Id": "rid-chunked"}))
    fast, quart = map(_comparable, answers)
    assert fast == quart
    assert fast[0] == 413 and fast[1]["code"] == "payload_too_large"


def test_error_answer_keeps_the_connection_for_the_next_request(env):
    """An early error (the key) on a keep-alive connection: the body is read, and the
    next request on the same socket is answered (both paths)."""
    _, url, _ = env
    port = int(url.rsplit(":", 1)[1])
    for path in (_path("movies", False), _path("movies", True)):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            body = b'{"q":"dune"}'
            first = (
                f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode() + body
            s.sendall(first + b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            data = b""
            deadline = time.monotonic() + 10
            while data.count(b"HTTP/1.1 ") < 2 or not data.endswith(b"}"):
                assert time.monotonic() < deadline, data
                chunk = s.recv(65536)
                assert chunk, data
                data += chunk
            assert data.startswith(b"HTTP/1.1 401"), data
            assert b"HTTP/1.1 200" in data and data.endswith(b'{"status":"available"}'), data
