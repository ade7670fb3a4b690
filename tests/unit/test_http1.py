"""Http1Pool against real servers on 127.0.0.1: a scripted trio+h11 server (so the tests
control exactly when connections close) and a tiny hypercorn app (interop).

No timing is asserted; deadlines only bound the tests.
"""

from __future__ import annotations

import math
import socket
from urllib.parse import parse_qs, urlsplit

import h11
import pytest
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve

from miroir.net.http1 import Http1Pool, PoolClosed, PoolConnectionError, PoolTimeout

# Upper bound for each test body; far above what any of them needs.
TEST_DEADLINE_S = 20


class ScriptedServer:
    """HTTP/1.1 server whose behaviour is chosen by the request target.

    /echo            200, the request body (Content-Length)
    /chunked?n=&k=   200, n bytes in k chunks (Transfer-Encoding: chunked)
    /big?n=          200, n bytes (Content-Length)
    /slow            never answers (sleeps until cancelled)
    /close           200 with `Connection: close`
    /headers         200, the request headers (repr of the sorted list)
    /drop            closes without answering
    /partial         announces 100 bytes, sends 10, closes
    Knobs: `close_after_response` closes each connection after one answer *without*
    `Connection: close` (a server expiring idle connections); `drop_reused` closes a
    connection that receives its second request without answering (the idle-close race).
    """

    def __init__(self) -> None:
        self.port = 0
        self.connections = 0
        self.closed_connections = 0
        self.requests: list[tuple[str, str]] = []
        self.close_after_response = False
        self.drop_reused = 0  # how many more reused-connection requests to drop

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started(self.port)
        await trio.serve_listeners(self._handle, listeners)

    async def _handle(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        conn = h11.Connection(our_role=h11.SERVER)
        served = 0
        try:
            while True:
                req, body = await self._read_request(stream, conn)
                if req is None:
                    return
                target = req.target.decode()
                self.requests.append((req.method.decode(), target))
                if served and self.drop_reused:
                    self.drop_reused -= 1
                    return
                url = urlsplit(target)
                q = {k: int(v[0]) for k, v in parse_qs(url.query).items()}
                out = b""
                if url.path == "/echo":
                    out = self._response(conn, 200, body)
                elif url.path == "/big" and req.method == b"HEAD":
                    head = h11.Response(status_code=200, headers=[(b"content-length", b"%d" % q["n"])])
                    out = conn.send(head) + conn.send(h11.EndOfMessage())
                elif url.path == "/big":
                    out = self._response(conn, 200, b"x" * q["n"])
                elif url.path == "/chunked":
                    n, k = q["n"], q["k"]
                    out = conn.send(h11.Response(status_code=200, headers=[(b"transfer-encoding", b"chunked")]))
                    size = n // k
                    for i in range(k):
                        piece = bytes([97 + i % 26]) * (size if i < k - 1 else n - size * (k - 1))
                        await stream.send_all(out + conn.send(h11.Data(data=piece)))
                        out = b""
                    out = conn.send(h11.EndOfMessage())
                elif url.path == "/slow":
                    await trio.sleep_forever()
                elif url.path == "/close":
                    headers = [(b"content-length", b"2"), (b"connection", b"close")]
                    out = conn.send(h11.Response(status_code=200, headers=headers)) + conn.send(h11.Data(data=b"ok")) + conn.send(h11.EndOfMessage())
                elif url.path == "/headers":
                    out = self._response(conn, 200, repr(sorted(req.headers)).encode())
                elif url.path == "/drop":
                    return
                elif url.path == "/partial":
                    head = conn.send(h11.Response(status_code=200, headers=[(b"content-length", b"100")]))
                    await stream.send_all(head + b"0123456789")
                    return
                else:
                    out = self._response(conn, 404, b"{}")
                await stream.send_all(out)
                served += 1
                if self.close_after_response or conn.our_state is not h11.DONE:
                    return
                conn.start_next_cycle()
        except (trio.BrokenResourceError, h11.RemoteProtocolError):
            return
        finally:
            self.closed_connections += 1
            await trio.aclose_forcefully(stream)

    @staticmethod
    def _response(conn: h11.Connection, status: int, body: bytes) -> bytes:
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        return conn.send(h11.Response(status_code=status, headers=headers)) + conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage())

    @staticmethod
    async def _read_request(stream: trio.SocketStream, conn: h11.Connection):
        req = None
        chunks = []
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await stream.receive_some(65536)
                conn.receive_data(data)
                continue
            if isinstance(event, h11.Request):
                req = event
            elif isinstance(event, h11.Data):
                chunks.append(event.data)
            elif isinstance(event, h11.EndOfMessage):
                return req, b"".join(chunks)
            elif isinstance(event, h11.ConnectionClosed):
                return None, b""


async def _with_server(fn):
    server = ScriptedServer()
    with trio.fail_after(TEST_DEADLINE_S):
        async with trio.open_nursery() as nursery:
            await nursery.start(server.run)
            try:
                await fn(server)
            finally:
                nursery.cancel_scope.cancel()


async def test_concurrent_requests_bounded_connections():
    async def body(server: ScriptedServer):
        results: dict[int, tuple[int, bytes]] = {}
        async with Http1Pool("127.0.0.1", server.port, max_connections=8) as pool:

            async def one(i: int) -> None:
                status, _headers, data = await pool.request("POST", "/echo", [(b"content-type", b"text/plain")], b"req-%d" % i, timeout_s=10)
                results[i] = (status, data)

            async with trio.open_nursery() as n:
                for i in range(300):
                    n.start_soon(one, i)
            assert pool.opened <= 8
        assert results == {i: (200, b"req-%d" % i) for i in range(300)}
        assert 1 <= server.connections <= 8
        assert len(server.requests) == 300

    await _with_server(body)


async def test_keepalive_reuses_one_connection():
    async def body(server: ScriptedServer):
        async with Http1Pool("127.0.0.1", server.port) as pool:
            for i in range(25):
                status, headers, data = await pool.request("GET", f"/big?n={i}", [], b"", timeout_s=10)
                assert (status, data) == (200, b"x" * i)
                assert (b"content-length", str(i).encode()) in headers
            assert pool.opened == 1
        assert server.connections == 1

    await _with_server(body)


async def test_server_closing_idle_connections_is_transparent():
    async def body(server: ScriptedServer):
        server.close_after_response = True
        async with Http1Pool("127.0.0.1", server.port) as pool:
            for i in range(10):
                status, _, data = await pool.request("POST", "/echo", [], b"%d" % i, timeout_s=10)
                assert (status, data) == (200, b"%d" % i)
        # Every request needed its own connection. Usually the pool sees the close at
        # checkout; if the close races with the send, the request is retried once and the
        # server counts it twice, hence `>=`.
        assert server.connections >= 10
        assert [t for _, t in server.requests].count("/echo") >= 10

    await _with_server(body)


async def test_concurrent_requests_while_server_closes_every_connection():
    async def body(server: ScriptedServer):
        server.close_after_response = True
        async with Http1Pool("127.0.0.1", server.port, max_connections=4) as pool:
            got = []

            async def one(i: int) -> None:
                got.append((await pool.request("PUT", "/echo", [], b"%d" % i, timeout_s=10))[2])

            async with trio.open_nursery() as n:
                for i in range(60):
                    n.start_soon(one, i)
            assert sorted(got) == sorted(b"%d" % i for i in range(60))
            assert pool.connection_count <= 4

    await _with_server(body)


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_reused_connection_dying_before_answer_is_retried_once(method):
    async def body(server: ScriptedServer):
        async with Http1Pool("127.0.0.1", server.port) as pool:
            assert (await pool.request(method, "/echo", [], b"a", timeout_s=10))[2] == b"a"
            server.drop_reused = 1  # the next request on a kept-alive connection gets no answer
            status, _, data = await pool.request(method, "/echo", [], b"b", timeout_s=10)
            assert (status, data) == (200, b"b")
            assert pool.retried == 1
            assert pool.opened == 2
        assert server.requests == [(method, "/echo")] * 3  # a, b (dropped), b (retried)

    await _with_server(body)


async def test_fresh_connection_failure_is_not_retried():
    async def body(server: ScriptedServer):
        async with Http1Pool("127.0.0.1", server.port) as pool:
            with pytest.raises(PoolConnectionError):
                await pool.request("POST", "/drop", [], b"{}", timeout_s=10)
            assert pool.retried == 0
        assert server.requests == [("POST", "/drop")]

    await _with_server(body)


async def test_failure_after_response_bytes_is_not_retried():
    async def body(server: ScriptedServer):
        async with Http1Pool("127.0.0.1", server.port) as pool:
            await pool.request("GET", "/echo", [], b"", timeout_s=10)  # make the next one reuse
            with pytest.raises(PoolConnectionError):
                await pool.request("POST", "/partial", [], b"{}", timeout_s=10)
            assert pool.retried == 0
            # The pool recovers on a new connection.
            assert (await pool.request("POST", "/echo", [], b"ok", timeout_s=10))[2] == b"ok"
        assert [t for _, t in server.requests].count("/partial") == 1

    await _with_server(body)


async def test_timeout_raises_clear_error_and_pool_recovers():
    async def body(server: ScriptedServer):
        async with Http1Pool("127.0.0.1", server.port, max_connections=1) as pool:
            with pytest.raises(PoolTimeout, match=r"GET http://127\.0\.0\.1:\d+/slow: no complete answer within 0\.2 s"):
                await pool.request("GET", "/slow", [], b"", timeout_s=0.2)
            assert pool.connection_count == 0  # the timed-out connection was closed
            # The only slot was released: the next call gets a fresh connection.
            assert (await pool.request("POST", "/echo", [], b"after", timeout_s=10))[2] == b"after"
            assert pool.opened == 2
        try:
            raise PoolTimeout("x")
        except TimeoutError:
            pass

    await _with_server(body)


async def test_no_deadline_of_its_own_leaves_it_to_the_caller():
    # timeout_s=inf (what the scatter passes): the caller's scope is the deadline; the
    # cancelled call's connection is closed and the slot released, as with a timeout.
    async def body(server: ScriptedServer):
        async with Http1Pool("127.0.0.1", server.port, max_connections=1) as pool:
            assert (await pool.request("POST", "/echo", [], b"one", timeout_s=math.inf))[2] == b"one"
            with trio.move_on_after(0.2) as scope:
                await pool.request("GET", "/slow", [], b"", timeout_s=math.inf)
            assert scope.cancelled_caught
            assert pool.connection_count == 0
            assert (await pool.request("POST", "/echo", [], b"after", timeout_s=math.inf))[2] == b"after"

    await _with_server(body)


async def test_a_caller_already_cancelled_sends_nothing():
    # The writes go straight to the descriptor (no checkpoint): a request made from a
    # cancelled scope must still not leave, and the idle connection stays usable.
    async def body(server: ScriptedServer):
        async with Http1Pool("127.0.0.1", server.port, max_connections=1) as pool:
            assert (await pool.request("POST", "/echo", [], b"warm", timeout_s=math.inf))[2] == b"warm"
            with trio.CancelScope() as scope:
                scope.cancel()
                await pool.request("POST", "/echo", [], b"while-cancelled", timeout_s=math.inf)
            assert scope.cancelled_caught
            assert (await pool.request("POST", "/echo", [], b"after", timeout_s=math.inf))[2] == b"after"
            assert pool.opened == 1
        assert len(server.requests) == 2

    await _with_server(body)


async def test_large_bodies_and_chunked_responses():
    async def body(server: ScriptedServer):
        big = bytes(range(256)) * (20 * 1024)  # 5 MiB
        async with Http1Pool("127.0.0.1", server.port) as pool:
            status, _, data = await pool.request("PUT", "/echo", [(b"content-type", b"application/octet-stream")], big, timeout_s=15)
            assert status == 200 and data == big
            status, headers, data = await pool.request("GET", "/chunked?n=3000000&k=47", [], b"", timeout_s=15)
            assert status == 200 and len(data) == 3_000_000
            assert (b"transfer-encoding", b"chunked") in headers
            assert data[:1] == b"a" and data[-1:] == bytes([97 + 46 % 26])
            assert pool.opened == 1  # the chunked response left the connection reusable
            status, _, data = await pool.request("GET", "/chunked?n=10&k=10", [], b"", timeout_s=15)
            assert data == b"abcdefghij"
            assert pool.opened == 1

    await _with_server(body)


async def test_connection_close_header_is_honoured():
    async def body(server: ScriptedServer):
        async with Http1Pool("127.0.0.1", server.port) as pool:
            for _ in range(3):
                status, _headers, data = await pool.request("GET", "/close", [], b"", timeout_s=10)
                assert (status, data) == (200, b"ok")
                assert pool.connection_count == 0  # not kept: the server said close
            assert pool.opened == 3 and pool.retried == 0
        assert server.connections == 3

    await _with_server(body)


async def test_request_framing_headers():
    async def body(server: ScriptedServer):
        async with Http1Pool("127.0.0.1", server.port) as pool:
            _, _, data = await pool.request("GET", "/headers", [(b"X-Trace", b"1")], b"", timeout_s=10)
            assert data == repr(sorted([(b"host", b"127.0.0.1:%d" % server.port), (b"x-trace", b"1")])).encode()
            # A caller's Host is kept; a caller's Content-Length is replaced by the real one.
            _, _, data = await pool.request(
                "POST", "/headers", [(b"Host", b"node-1"), (b"Content-Length", b"999")], b"abc", timeout_s=10
            )
            assert data == repr(sorted([(b"host", b"node-1"), (b"content-length", b"3")])).encode()
            # POST without a body still says Content-Length: 0 (some servers insist).
            _, _, data = await pool.request("POST", "/headers", [], b"", timeout_s=10)
            assert (b"content-length", b"0") in eval(data)
            status, headers, data = await pool.request("HEAD", "/big?n=5", [], b"", timeout_s=10)
            assert (status, data) == (200, b"") and (b"content-length", b"5") in headers
            assert pool.opened == 1

    await _with_server(body)


async def test_waiting_for_a_connection_counts_against_the_deadline():
    async def body(server: ScriptedServer):
        async with Http1Pool("127.0.0.1", server.port, max_connections=1) as pool:
            async with trio.open_nursery() as n:
                n.start_soon(pool.request, "GET", "/slow", [], b"", 60)
                while not server.requests:  # the only connection is now busy on /slow
                    await trio.sleep(0.01)
                with pytest.raises(PoolTimeout):
                    await pool.request("GET", "/echo", [], b"", timeout_s=0.1)
                n.cancel_scope.cancel()  # the caller of /slow gives up
            assert [t for _, t in server.requests] == ["/slow"]
            assert pool.connection_count == 0  # the cancelled call closed its connection
            assert (await pool.request("POST", "/echo", [], b"x", timeout_s=10))[2] == b"x"

    await _with_server(body)


async def test_connect_refused():
    # Bound and never listening: a connect is refused, and no other process can take the
    # port meanwhile (a closed socket's port is free for anyone's next bind or connect).
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        with trio.fail_after(TEST_DEADLINE_S):
            async with Http1Pool("127.0.0.1", port) as pool:
                with pytest.raises(PoolConnectionError, match="cannot connect"):
                    await pool.request("GET", "/", [], b"", timeout_s=5)


async def test_aclose_closes_idle_connections_and_refuses_requests():
    async def body(server: ScriptedServer):
        pool = Http1Pool("127.0.0.1", server.port, max_connections=4)
        async with trio.open_nursery() as n:
            for _ in range(4):
                n.start_soon(pool.request, "GET", "/echo", [], b"", 10)
        opened = pool.opened
        await pool.aclose()
        assert pool.connection_count == 0
        with pytest.raises(PoolClosed):
            await pool.request("GET", "/echo", [], b"", timeout_s=5)
        # The server sees every connection end.
        while server.closed_connections < opened:
            await trio.sleep(0.01)
        assert server.closed_connections == server.connections == opened

    await _with_server(body)


# ----------------------------------------------------------------- hypercorn interop


async def _asgi_app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    _asgi_app.clients.add(scope["client"])  # (host, port): one per TCP connection
    if scope["path"] == "/stream":
        # No content-length: hypercorn answers with Transfer-Encoding: chunked.
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        for i in range(5):
            await send({"type": "http.response.body", "body": b"part%d;" % i, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    out = b'{"len":%d}' % len(body)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(out)).encode())]})
    await send({"type": "http.response.body", "body": out})


_asgi_app.clients = set()


async def test_against_hypercorn():
    config = HypercornConfig()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.errorlog = None
    config.keep_alive_timeout = 0.2  # hypercorn closes idle connections quickly
    _asgi_app.clients.clear()
    with trio.fail_after(TEST_DEADLINE_S):
        async with trio.open_nursery() as nursery:
            binds = await nursery.start(hypercorn_serve, _asgi_app, config)
            port = int(binds[0].rsplit(":", 1)[1])
            async with Http1Pool("127.0.0.1", port, max_connections=4) as pool:
                results = []

                async def one(i: int) -> None:
                    results.append(await pool.request("POST", "/search", [(b"content-type", b"application/json")], b"x" * i, timeout_s=10))

                async with trio.open_nursery() as n:
                    for i in range(100):
                        n.start_soon(one, i)
                assert sorted(r[2] for r in results) == sorted(b'{"len":%d}' % i for i in range(100))
                assert len(_asgi_app.clients) <= 4
                status, _headers, data = await pool.request("GET", "/stream", [], b"", timeout_s=10)
                assert (status, data) == (200, b"part0;part1;part2;part3;part4;")
                # Let hypercorn expire the idle connections, then use the pool again.
                await trio.sleep(0.5)
                status, _, data = await pool.request("POST", "/search", [], b"abc", timeout_s=10)
                assert (status, data) == (200, b'{"len":3}')
            nursery.cancel_scope.cancel()
