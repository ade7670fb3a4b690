"""Client connections of a real `miroir serve` (issue 20 point 6): idle ones are closed after
`server.keep_alive_ms`, `Connection: close` is honoured, at most `server.max_connections`
are open at once.

Before the fix no connection that had carried a request was ever closed: Quart-Trio
cancelled hypercorn's recycling of the connection, so 2,000 idle clients held 2,000
descriptors forever.
"""

from __future__ import annotations

import json
import os
import re
import resource
import selectors
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.integration.test_serve import write_config
from tests.support.devnodes import start_devnodes, wait_task
from tests.support.miroir_proc import Daemon

HELD = 2_000
KEEP_ALIVE_MS = 4_000
# Descriptors the test process needs beyond the held sockets (pytest, httpx, pipes).
FD_MARGIN = 512
SEARCH = b'{"q": "dune"}'


def _raise_nofile(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} < {needed}: cannot hold {HELD} connections")
    # The daemon inherits it: it must hold as many descriptors as we do.
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def read_response(sock: socket.socket) -> tuple[bytes, bytes]:
    """(head, body) of one response with a Content-Length."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response: {buf!r}"
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    assert m, head
    while len(body) < int(m.group(1)):
        chunk = sock.recv(65536)
        assert chunk, "connection closed inside a body"
        body += chunk
    return head, body


def closed_within(sock: socket.socket, timeout: float) -> bool:
    """True when the server closes `sock` (EOF or reset) within `timeout`."""
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def wait_all_closed(socks: list[socket.socket], timeout: float) -> tuple[int, float]:
    """(how many of `socks` the server closed within `timeout`, seconds until the last)."""
    sel = selectors.DefaultSelector()
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    start = time.monotonic()
    closed = 0
    last = 0.0
    try:
        while closed < len(socks):
            left = start + timeout - time.monotonic()
            if left <= 0:
                break
            for key, _ in sel.select(left):
                s = key.fileobj
                try:
                    data = s.recv(4096)
                except (BlockingIOError, InterruptedError):
                    continue
                except ConnectionResetError:
                    data = b""
                assert data == b"", f"unexpected bytes on an idle connection: {data!r}"
                sel.unregister(s)
                closed += 1
                last = time.monotonic() - start
    finally:
        sel.close()
    return closed, last


@pytest.fixture(scope="module")
def miroir(tmp_path_factory) -> Iterator[tuple[Daemon, str]]:
    _raise_nofile(HELD + FD_MARGIN)
    tmp = tmp_path_factory.mktemp("conn")
    with start_devnodes(1) as (node,):
        extra = (
            f'[cluster]\nshards = 2\n[[nodes]]\nid = "n1"\nurl = "{node.url}"\n'
        )
        cfg = write_config(tmp / "miroir.toml", tmp / "data", extra=extra)
        text = cfg.read_text().replace("[server]\n", f"[server]\nkeep_alive_ms = {KEEP_ALIVE_MS}\n", 1)
        cfg.write_text(text.replace("max_body_bytes = 1024", "max_body_bytes = 65536"))
        d = Daemon(cfg)
        try:
            url = f"http://127.0.0.1:{d.wait_ready()}"
            with httpx.Client(base_url=url, timeout=10) as c:
                r = c.post("/indexes/books/documents", json=[{"id": 1, "title": "Dune"}, {"id": 2, "title": "Emma"}])
                assert r.status_code == 202, r.text
                wait_task(url, r.json()["taskUid"])
            yield d, url
        finally:
            d.kill()


def test_idle_connections_closed_after_keep_alive_with_searches_answered(miroir):
    d, url = miroir
    port = int(url.rsplit(":", 1)[1])
    pid = d.proc.pid
    baseline = open_fds(pid)
    peak = [baseline]
    sampling = threading.Event()

    def sample() -> None:  # Miroir's open descriptors, every 50 ms
        while not sampling.wait(0.05):
            peak[0] = max(peak[0], open_fds(pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    socks: list[socket.socket] = []
    try:
        started = time.monotonic()
        # 3 in 4 carry one request first (the case that was never closed), the rest none.
        for i in range(HELD):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            socks.append(s)
            if i % 4:
                s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        for i, s in enumerate(socks):
            if i % 4:
                head, body = read_response(s)
                assert head.startswith(b"HTTP/1.1 200") and json.loads(body) == {"status": "available"}
        opened_s = time.monotonic() - started

        # Searches are answered while the 2,000 connections are held (fast path and Quart).
        with httpx.Client(base_url=url, timeout=10) as c:
            for _ in range(10):
                r = c.post("/indexes/books/search", content=SEARCH, headers={"Content-Type": "application/json"})
                assert r.status_code == 200 and [h["id"] for h in r.json()["hits"]] == [1], r.text
                assert c.get("/indexes/books/search", params={"q": "emma"}).json()["hits"][0]["id"] == 2

        # Every held connection is closed by the server after the keep-alive timeout.
        closed, last_s = wait_all_closed(socks, timeout=KEEP_ALIVE_MS / 1000 + 15)
        assert closed == HELD, f"{HELD - closed} of {HELD} connections still open"
        deadline = time.monotonic() + 10
        while open_fds(pid) > baseline + 20 and time.monotonic() < deadline:
            time.sleep(0.1)
        after_fds = open_fds(pid)
        sampling.set()
        sampler.join()
        held_fds = peak[0]
        # Early ones may time out while the last are still being opened (slow on a loaded
        # machine); still, many are held at once.
        assert held_fds >= baseline + HELD // 4, (baseline, held_fds)
        assert after_fds <= baseline + 20, (baseline, held_fds, after_fds)
        print(
            f"\n{HELD} connections opened in {opened_s:.2f}s; Miroir fds {baseline} -> peak {held_fds} -> {after_fds}; "
            f"all closed {last_s:.2f}s after the wait began (keep-alive {KEEP_ALIVE_MS} ms)"
        )
    finally:
        sampling.set()
        for s in socks:
            s.close()


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",  # through Quart
        b"POST /indexes/books/search HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(SEARCH), SEARCH),  # the fast path
    ],
    ids=["quart", "fast-path"],
)
def test_connection_close_is_honoured(miroir, request_bytes):
    _, url = miroir
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request_bytes)
        head, _ = read_response(s)
        assert head.startswith(b"HTTP/1.1 200"), head
        assert re.search(rb"(?im)^connection:\s*close", head), head
        # Closed at once, not at the keep-alive timeout.
        assert closed_within(s, KEEP_ALIVE_MS / 1000 / 2), "server kept the connection open after Connection: close"


def test_connection_cap(tmp_path):
    cap = 20
    cfg = write_config(tmp_path / "miroir.toml", tmp_path / "data")
    cfg.write_text(cfg.read_text().replace("[server]\n", f"[server]\nmax_connections = {cap}\nkeep_alive_ms = 30000\n", 1))
    d = Daemon(cfg)
    socks: list[socket.socket] = []
    try:
        port = d.wait_ready()
        for _ in range(cap + 5):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            socks.append(s)
        for s in socks[:cap]:
            assert read_response(s)[0].startswith(b"HTTP/1.1 200")
        # Over the cap: connected (kernel backlog) but not accepted, so not answered.
        waiting = socks[cap:]
        for s in waiting:
            s.settimeout(0.3)
            with pytest.raises(TimeoutError):
                s.recv(1)
        assert open_fds(d.proc.pid) < 100
        # As accepted connections close, the waiting ones are served.
        for s in socks[: len(waiting)]:
            s.close()
        for s in waiting:
            s.settimeout(10)
            assert read_response(s)[0].startswith(b"HTTP/1.1 200")
        rec = d.wait_event("connection cap reached", timeout=10)
        assert rec is not None and rec["max_connections"] == cap
    finally:
        for s in socks:
            s.close()
        d.kill()
