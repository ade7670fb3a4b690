"""Bad input over real HTTP against a real `miroir serve` (issue 20 point 9): a 4xx with
Meilisearch's error shape, nothing changed, no traceback in Miroir's log.

Before the fix: JSON nested 10^5 deep was a 500 (RecursionError) on every JSON route,
settings `{"": 1}` a 500 (AssertionError), an integer beyond 64 bits in the filterable
attributes a 500 (OverflowError in the journal encoder), and a chunk size of 16 EiB was
never answered.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator

import httpx
import pytest

from tests.integration.test_serve import assert_meili_error, write_config
from tests.support.devnodes import start_devnodes, wait_task
from tests.support.miroir_proc import Daemon

MASTER = "master-key-0123456789"
AUTH = {"Authorization": f"Bearer {MASTER}", "Content-Type": "application/json"}
DEEP_ARRAY = b"[" * 100_000 + b"]" * 100_000
DEEP_OBJECT = b'{"a":' * 100_000 + b"1" + b"}" * 100_000
# Every route that reads a JSON body.
JSON_ROUTES = [
    ("POST", "/indexes"),
    ("PATCH", "/indexes/books"),
    ("POST", "/swap-indexes"),
    ("PATCH", "/indexes/books/settings"),
    ("PUT", "/indexes/books/settings/filterable-attributes"),
    ("PUT", "/indexes/books/settings/synonyms"),
    ("POST", "/indexes/books/documents/delete-batch"),
    ("POST", "/indexes/books/documents/delete"),
    ("POST", "/indexes/books/search"),  # the fast path
    ("POST", "/indexes/books/search/"),  # the same route through Quart
    ("POST", "/multi-search"),
    ("POST", "/indexes/books/facet-search"),
    ("POST", "/indexes/books/documents/fetch"),
    ("POST", "/keys"),
    ("PATCH", "/keys/00000000-0000-0000-0000-000000000000"),
    ("POST", "/_miroir/nodes"),
]
DOCUMENT_ROUTES = [("POST", "/indexes/books/documents"), ("PUT", "/indexes/books/documents")]


@pytest.fixture(scope="module")
def miroir(tmp_path_factory) -> Iterator[tuple[Daemon, str]]:
    tmp = tmp_path_factory.mktemp("bad")
    with start_devnodes(1) as (node,):
        cfg = write_config(tmp / "miroir.toml", tmp / "data", extra=f'[cluster]\nshards = 2\n[[nodes]]\nid = "n1"\nurl = "{node.url}"\n')
        # 10^5-deep bodies are 200 KB: room for them, still a limit to test chunks against.
        cfg.write_text(cfg.read_text().replace("max_body_bytes = 1024", "max_body_bytes = 1048576"))
        d = Daemon(cfg, env={"MIROIR_MASTER_KEY": MASTER})
        try:
            url = f"http://127.0.0.1:{d.wait_ready()}"
            with httpx.Client(base_url=url, headers=AUTH, timeout=30) as c:
                r = c.post("/indexes/books/documents", json=[{"id": 1, "title": "Dune"}])
                assert r.status_code == 202, r.text
                wait_task(url, r.json()["taskUid"], MASTER)
                r = c.put("/indexes/books/settings/filterable-attributes", json=["title"])
                wait_task(url, r.json()["taskUid"], MASTER)
            yield d, url
        finally:
            d.kill()


@pytest.fixture()
def client(miroir) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=miroir[1], headers=AUTH, timeout=30) as c:
        yield c


def no_traceback(d: Daemon) -> None:
    log = d.stderr()
    assert "Traceback" not in log and '"level":"error"' not in log.replace(" ", ""), log[-3000:]


@pytest.mark.parametrize("body", [DEEP_ARRAY, DEEP_OBJECT], ids=["array", "object"])
def test_deep_nesting_is_malformed_payload_on_every_json_route(miroir, client, body):
    d, _ = miroir
    for method, path in JSON_ROUTES:
        r = client.request(method, path, content=body)
        assert_meili_error(r, 400, "malformed_payload")
        # serde_json's own limit and position: the 128th nested bracket.
        column = 128 if body is DEEP_ARRAY else 127 * 5 + 1
        assert r.json()["message"] == (
            f"The json payload provided is malformed. `recursion limit exceeded at line 1 column {column}`."
        ), (method, path)
    for method, path in DOCUMENT_ROUTES:
        assert_meili_error(client.request(method, path, content=body), 400, "malformed_payload")
    assert client.get("/indexes/books/documents").json()["total"] == 1  # nothing changed
    no_traceback(d)


def test_nesting_below_the_limit_still_reaches_validation(client):
    # 127 deep is valid JSON for serde_json: the route's own validation answers.
    body = b"[" * 127 + b"]" * 127
    r = client.post("/indexes/books/search", content=body)
    assert_meili_error(r, 400, "bad_request")
    assert r.json()["message"].startswith("Invalid value type: expected an object, but found an array")


def test_settings_with_an_empty_field_name(miroir, client):
    r = client.patch("/indexes/books/settings", content=b'{"": 1}')
    assert_meili_error(r, 400, "bad_request")
    assert r.json()["message"].startswith("Unknown field ``: expected one of `displayedAttributes`, ")
    no_traceback(miroir[0])


@pytest.mark.parametrize(
    "body, code",
    [
        # serde_json reads an integer beyond u64 as a float: a number, not an array.
        (b'[{"attributePatterns": 100000000000000000000000000000000000}]', "invalid_settings_filterable_attributes"),
        (b'[{"attributePatterns": ["a"], "features": {"facetSearch": 18446744073709551616}}]',
         "invalid_settings_filterable_attributes"),
        (b"[18446744073709551616]", "invalid_settings_filterable_attributes"),
        (b"[1" + b"0" * 400 + b"]", "malformed_payload"),  # beyond a float too
        (b"[1e400]", "malformed_payload"),
    ],
)
def test_overflowing_numbers_on_filterable_attributes(miroir, client, body, code):
    r = client.put("/indexes/books/settings/filterable-attributes", content=body)
    assert_meili_error(r, 400, code)
    assert client.get("/indexes/books/settings/filterable-attributes").json() == ["title"]
    no_traceback(miroir[0])


def raw_exchange(url: str, request: bytes, timeout: float = 10) -> tuple[bytes, bytes]:
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request)
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            assert chunk, f"closed without an answer: {buf!r}"
            buf += chunk
        head, _, body = buf.partition(b"\r\n\r\n")
        n = int(re.search(rb"(?im)^content-length:\s*(\d+)", head).group(1))
        while len(body) < n:
            body += s.recv(65536)
        return head, body


@pytest.mark.parametrize("path", ["/indexes", "/indexes/books/search", "/indexes/books/documents"])
def test_chunk_size_overflow_is_answered_at_once(miroir, path):
    d, url = miroir
    head, body = raw_exchange(
        url,
        f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {MASTER}\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n{}".encode(),
    )
    assert head.startswith(b"HTTP/1.1 413"), head
    r = httpx.Response(413, content=body)
    assert_meili_error(r, 413, "payload_too_large")
    no_traceback(d)


def test_unparsable_chunk_header_is_a_meilisearch_error(miroir):
    _, url = miroir
    head, body = raw_exchange(
        url,
        b"POST /indexes HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"f" * 40 + b"\r\n{}",
    )
    assert head.startswith(b"HTTP/1.1 400"), head
    assert_meili_error(httpx.Response(400, content=body), 400, "bad_request")


# Python's `str.isdigit` takes `²` (which `int` refuses: a 500 before) and `١` (which
# `int` reads as 1); 1.50 parses ASCII digits only.
QUERY_INTEGERS = [
    ("/indexes/books/search", "limit", "invalid_search_limit"),
    ("/indexes/books/search", "page", "invalid_search_page"),
    ("/indexes/books/documents", "limit", "invalid_document_limit"),
    ("/indexes/books/documents", "offset", "invalid_document_offset"),
    ("/indexes/books/similar", "limit", "invalid_similar_limit"),
    ("/indexes", "limit", "invalid_index_limit"),
]


@pytest.mark.parametrize("value", ["²", "١"])
def test_non_ascii_digits_in_query_integers(miroir, client, devnode, value):
    with httpx.Client(base_url=devnode.url, timeout=30) as node:
        r = node.post("/indexes", json={"uid": "books"})
        assert r.status_code == 202, r.text
        wait_task(devnode.url, r.json()["taskUid"])
        for c in (client, node):
            for path, name, code in QUERY_INTEGERS:
                r = c.get(path, params={name: value, **({"id": "1"} if path.endswith("/similar") else {})})
                assert_meili_error(r, 400, code)
                assert r.json()["message"] == (
                    f"Invalid value in parameter `{name}`: could not parse `{value}` as a positive integer"
                ), (path, r.text)
    no_traceback(miroir[0])
