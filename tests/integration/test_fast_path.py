"""The ASGI fast path for `/indexes/{uid}/search` answers exactly as the Quart route does.

`/indexes/{uid}/search/` (trailing slash) is not taken by the fast path, so Quart serves
it with the same handler: every case below is sent to both and the answers compared.
A real `miroir serve` process on 127.0.0.1 (no nodes, master key, 1 KiB body limit).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.miroir_proc import Daemon, json_line

MASTER = "master-key-fast-0123456789"
START_TIMEOUT_S = 30.0


@pytest.fixture(scope="module")
def daemon(tmp_path_factory) -> Iterator[tuple[str, list[str]]]:
    tmp = tmp_path_factory.mktemp("fast")
    cfg = tmp / "miroir.toml"
    cfg.write_text(
        '[server]\nbind = "127.0.0.1:0"\nmax_body_bytes = 1024\nshutdown_grace_ms = 1000\n'
        f'[store]\ndata_dir = "{tmp / "data"}"\n'
    )
    d = Daemon(cfg, env={"MIROIR_MASTER_KEY": MASTER})
    try:
        port = d.wait_ready(START_TIMEOUT_S)
        yield f"http://127.0.0.1:{port}", d.lines
    finally:
        d.kill()


AUTH = {"Authorization": f"Bearer {MASTER}"}
JSON = {"Content-Type": "application/json"}

CASES = [
    ("no key", "POST", "movies", {}, b'{"q":"a"}'),
    ("wrong key", "POST", "movies", {"Authorization": "Bearer nope"}, b'{"q":"a"}'),
    ("not bearer", "POST", "movies", {"Authorization": MASTER}, b'{"q":"a"}'),
    ("unknown index", "POST", "movies", AUTH, b'{"q":"a"}'),
    ("bad uid", "POST", "bad%20uid", AUTH, b'{"q":"a"}'),
    ("malformed json", "POST", "movies", AUTH, b'{"q":'),
    ("empty body", "POST", "movies", AUTH, b""),
    ("not an object", "POST", "movies", AUTH, b"[1,2]"),
    ("bad field type", "POST", "movies", AUTH, b'{"limit":"ten"}'),
    ("unknown field", "POST", "movies", AUTH, b'{"nope":1}'),
    ("GET unknown index", "GET", "movies", AUTH, None),
    ("GET bad limit", "GET", "movies?limit=abc", AUTH, None),
    ("GET bad bool", "GET", "movies?showRankingScore=yes", AUTH, None),
    ("GET no key", "GET", "movies", {}, None),
]


def _ask(c: httpx.Client, method: str, uid_and_query: str, headers: dict, body: bytes | None, slash: bool):
    uid, _, query = uid_and_query.partition("?")
    path = f"/indexes/{uid}/search" + ("/" if slash else "") + (f"?{query}" if query else "")
    h = {**JSON, **headers} if body is not None else dict(headers)
    return c.request(method, path, content=body, headers=h)


@pytest.mark.parametrize(("name", "method", "uid", "headers", "body"), CASES, ids=[c[0] for c in CASES])
def test_same_answer_as_quart(daemon, name, method, uid, headers, body):
    url, _ = daemon
    with httpx.Client(base_url=url, timeout=10) as c:
        fast = _ask(c, method, uid, headers, body, slash=False)
        quart = _ask(c, method, uid, headers, body, slash=True)
        assert (fast.status_code, fast.json()) == (quart.status_code, quart.json()), name
        assert fast.status_code >= 400
        assert fast.headers["content-type"] == "application/json"
        assert list(fast.json()) == ["message", "code", "type", "link"]
        # The connection is still usable after the error (the body was consumed).
        again = _ask(c, method, uid, headers, body, slash=False)
        assert again.status_code == fast.status_code


def test_body_limit(daemon):
    url, _ = daemon
    big = b'{"q":"' + b"a" * 2000 + b'"}'
    for headers in (AUTH, {}):  # over the limit: 413 whether or not the key is right
        with httpx.Client(base_url=url, timeout=10) as c:
            fast = c.post("/indexes/movies/search", content=big, headers={**JSON, **headers})
        with httpx.Client(base_url=url, timeout=10) as c:
            quart = c.post("/indexes/movies/search/", content=big, headers={**JSON, **headers})
        assert fast.status_code == quart.status_code
        assert fast.json() == quart.json()
        if headers:
            assert fast.status_code == 413 and fast.json()["code"] == "payload_too_large"
            assert fast.headers.get("connection") == "close"

    # A chunked body that grows past the limit is stopped too.
    def chunks():
        for _ in range(40):
            yield b" " * 100

    with httpx.Client(base_url=url, timeout=10) as c:
        r = c.post("/indexes/movies/search", content=chunks(), headers={**JSON, **AUTH})
    assert r.status_code == 413 and r.json()["code"] == "payload_too_large"


def test_request_id_and_log_line(daemon):
    url, lines = daemon
    with httpx.Client(base_url=url, timeout=10) as c:
        r = c.post("/indexes/movies/search", content=b'{"q":"x"}', headers={**JSON, **AUTH, "X-Request-Id": "rid-fast-1"})
        assert r.status_code == 404 and r.json()["code"] == "index_not_found"
        assert r.headers["x-request-id"] == "rid-fast-1"
        r2 = c.post("/indexes/movies/search", content=b'{"q":"x"}', headers={**JSON, **AUTH})
        assert len(r2.headers["x-request-id"]) == 32  # a fresh one
    logged: list[dict] = []
    for _ in range(100):  # logged after the answer is sent: poll, bounded
        logged = [rec for rec in map(json_line, list(lines)) if rec and rec.get("request_id") == "rid-fast-1"]
        if logged:
            break
        time.sleep(0.05)
    [rec] = logged
    assert rec["event"] == "request"
    assert (rec["method"], rec["path"], rec["route"], rec["status"]) == (
        "POST", "/indexes/movies/search", "/indexes/<uid>/search", 404,
    )
    assert isinstance(rec["duration_ms"], float)
    assert rec["fanout"] == 0


def test_other_methods_still_go_to_quart(daemon):
    url, _ = daemon
    with httpx.Client(base_url=url, timeout=10) as c:
        r = c.put("/indexes/movies/search", content=b"{}", headers={**JSON, **AUTH})
        assert r.status_code == 405 and r.json()["code"] == "method_not_allowed"
        assert c.get("/health").json() == {"status": "available"}


def test_node_client_query_string():
    from miroir.net.node import _query_string

    assert _query_string({"a": None}) == ""
    qs = _query_string({"limit": 1, "uids": [1, 2, 3], "flag": True, "off": False, "q": "a b&c=d/é", "f": ("x", "y")})
    assert qs == "limit=1&uids=1,2,3&flag=true&off=false&q=a%20b%26c%3Dd%2F%C3%A9&f=x,y"
