"""A pooled keep-alive HTTP/1.1 client for one host, over trio streams (Miroir's node client;
net/h11pool.py before it parsed HTTP/1.1 itself instead of through h11).

Why: under concurrency an `httpx.AsyncClient` call to a local node costs ~2.4 ms of CPU,
while one keep-alive connection does several thousand calls/s
(issue 8; `python benchmarks/run.py --only P` measures both on this machine). A scatter
makes one node call per shard and the node client is on every request's hot path.

Layers, one job each (after httpcore):
- `_Connection`: one TCP stream; writes one request, parses one response (a small
  hand-written HTTP/1.1 client parser: h11's state machine was the pool's largest CPU
  cost), knows whether it can be reused;
- `Http1Pool`: at most `max_connections` connections to `host:port`; idle ones are kept
  (LIFO, so a burst leaves the hottest ones warm) and reused; the deadline; the retry.

`await pool.request(method, target, headers, body, timeout_s)` returns
`(status, headers, body)`; headers are `(lowercase name, value)` byte pairs (as h11's) and the
body is fully read (Content-Length and chunked responses alike). Requests always carry a
`Content-Length` (no chunked request bodies) and a `Host` header unless given.

Errors (all subclasses of `PoolError`):
- `PoolTimeout` (also a `TimeoutError`): the whole call, including waiting for a free
  connection, connecting and reading the body, did not finish within `timeout_s`. The
  connection it was using is closed: its state is unknown.
- `PoolConnectionError`: connect refused/reset, the peer closed mid-response, or an HTTP
  protocol violation. The connection is closed.
- `PoolClosed`: `request` after `aclose()`.

Retry, once, on a fresh connection — and only in these two cases:
1. an idle connection is found closed (or readable: the peer said something unsolicited,
   which can only be a close) when it is checked out, before any byte is sent: it is
   dropped and another one is used. Nothing was sent, so this is safe for every method.
2. a *reused* keep-alive connection fails (EOF, reset, broken pipe) before a single byte
   of the response arrived. That is the signature of the server closing an idle
   connection while our request was in flight. For idempotent methods (GET, HEAD, PUT,
   DELETE, OPTIONS) a retry is always safe. For POST/PATCH it is the same trade-off as
   Go's net/http and browsers make: the server may in theory have received and acted on
   the request before dying without answering on a connection it had kept alive. Miroir
   accepts that because its POSTs to nodes are searches (read-only) or document writes
   that are idempotent by primary key (a repeat costs a duplicate node task, not wrong
   data). A failure on a *fresh* connection, or after any response byte, is never
   retried: the server is broken or slow, not just closing an idle connection, and the
   caller (the scatter engine) owns the decision to try another replica.

Limits: the request is written completely before the response is read, so a server
that answers early (e.g. 413) and resets the connection while a large body is still being
sent surfaces as `PoolConnectionError`, not as its answer. No HTTP/2, TLS, proxies,
redirects or cookies: this talks to Meilisearch nodes on a trusted network.

Idle connections are closed after `KEEPALIVE_EXPIRY_S` so that we, not the server, close
them in the common case (no race at all). Ownership: the pool owns every connection it
opened; `aclose()` (or leaving `async with`) closes the idle ones at once and any busy
one as soon as its request ends. Single-threaded trio state: no locks beyond the
semaphore that bounds the connection count.
"""

from __future__ import annotations

import errno
import math
import os
import select
from collections.abc import Sequence

import trio

# Most TCP receive windows on loopback hand out up to 64 KiB per read; larger buffers only
# help huge bodies, which the node API rarely sends.
RECV_BYTES = 64 * 1024
# Closed by us before the server does: actix-web (Meilisearch) and hypercorn both close
# idle keep-alive connections after 5 s by default.
KEEPALIVE_EXPIRY_S = 4.0
# Enough parallel connections for a scatter burst plus writes and polling to one node.
DEFAULT_MAX_CONNECTIONS = 32

# A response head (status line and headers) larger than this is a protocol error.
MAX_HEAD_BYTES = 64 * 1024
# Request bodies up to this size leave in the same write as the head (copying them is
# cheaper than a second send); larger ones are sent as they are, without a copy.
_INLINE_BODY_MAX = 64 * 1024
_BAD_TARGET_BYTES = frozenset(b" \r\n\t\x00")

Headers = list[tuple[bytes, bytes]]

_NO_BODY_METHODS = frozenset({b"GET", b"HEAD"})
# OS errors that mean "this TCP connection is dead" rather than a programming error.
_DEAD_CONNECTION_ERRNOS = frozenset({errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED, errno.ENOTCONN})


class PoolError(Exception):
    """Base of the pool's errors; the message names the host, method and target."""


class PoolTimeout(PoolError, TimeoutError):
    """The call did not complete within its deadline."""


class PoolConnectionError(PoolError):
    """No (complete) answer: connect failure, peer closed or reset, protocol error."""


class PoolClosed(PoolError):
    """The pool was closed."""


class _Stale(Exception):
    """A reused connection died before the first response byte (internal: retry signal)."""


def _socket_is_readable(sock: trio.socket.SocketType) -> bool:
    """True when an idle connection has something to read, i.e. the peer closed it.

    An idle HTTP/1.1 connection never receives data legitimately, so readable means EOF,
    a reset, or garbage: in every case the connection must not be reused.
    """
    fd = sock.fileno()
    if fd < 0:
        return True
    if hasattr(select, "poll"):
        p = select.poll()
        p.register(fd, select.POLLIN | select.POLLPRI)
        return bool(p.poll(0))
    readable, _, _ = select.select([fd], [], [], 0)
    return bool(readable)


class _Connection:
    """One keep-alive HTTP/1.1 connection. Handles requests strictly one at a time.

    The client side of HTTP/1.1 that a node API needs, parsed by hand: h11's generic
    state machine cost more CPU per call than everything else the pool does (issue 8).
    Requests are written as one buffer (head + small body; a large body is a second
    write, never copied). Responses: status line and headers, then a body framed by
    `Content-Length`, by `Transfer-Encoding: chunked`, or (without either) by the end of
    the connection; no body for HEAD, 1xx, 204 and 304. A response that is not clearly
    reusable (`Connection: close`, HTTP/1.0, close-delimited, bytes past its end) closes
    the connection after it. Anything malformed is `PoolConnectionError`.
    """

    __slots__ = ("stream", "fd", "buf", "got", "reusable", "idle_since", "requests")

    def __init__(self, stream: trio.SocketStream):
        self.stream = stream
        # Reads and writes go straight to the non-blocking descriptor, waiting with
        # trio's wait_readable/wait_writable only when the kernel says so: trio's
        # stream methods add scheduler round trips to every call (issue 8, ~10 us of
        # CPU per node call); one connection serves one request at a time, so their
        # conflict detection has nothing to catch here. The stream still owns the
        # descriptor (connect, options, close).
        self.fd = stream.socket.fileno()
        self.buf = b""  # bytes received but not parsed yet
        self.got = False  # some byte of the current response arrived
        self.reusable = False
        self.idle_since = trio.current_time()
        self.requests = 0  # completed request/response cycles

    def is_reusable(self, now: float) -> bool:
        if now - self.idle_since > KEEPALIVE_EXPIRY_S:
            return False
        return not _socket_is_readable(self.stream.socket)

    def close(self) -> None:
        """Synchronous close: safe inside a cancelled scope and in `finally`."""
        self.stream.socket.close()

    async def round_trip(self, method: bytes, target: bytes, headers: Headers, body: bytes) -> tuple[int, Headers, bytes]:
        """Send one request, read the whole response.

        Raises `_Stale` when a reused connection fails before any response byte,
        `PoolConnectionError` for every other transport or protocol failure.
        """
        reused = self.requests > 0
        self.reusable = False
        self.got = False
        head = _request_head(method, target, headers)
        try:
            if len(body) <= _INLINE_BODY_MAX:
                # One write: the request line, headers and body leave in as few segments
                # as the kernel allows (TCP_NODELAY is on for trio's SocketStream).
                await self._send_all(head + body if body else head)
            else:
                await self._send_all(head)
                await self._send_all(body)
            self.buf = b""
            while True:
                status, resp_headers, version = await self._read_head(reused)
                if 100 <= status < 200:
                    if status == 101:
                        raise PoolConnectionError("unexpected 101 Switching Protocols")
                    continue  # 100 Continue and friends: the real answer follows
                break
            data, delimited = await self._read_body(method, status, resp_headers)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as e:
            cause = e.__cause__ if isinstance(e, trio.BrokenResourceError) and e.__cause__ else e
            if reused and not self.got and _is_dead_connection(cause):
                raise _Stale() from e
            raise PoolConnectionError(f"{type(cause).__name__}: {cause}") from e
        self.requests += 1
        self.reusable = delimited and version == b"HTTP/1.1" and not self.buf and not _says_close(resp_headers)
        return status, resp_headers, data

    async def _send_all(self, data: bytes) -> None:
        fd = self.fd
        view = memoryview(data)
        while view:
            try:
                sent = os.write(fd, view)
            except BlockingIOError:
                await trio.lowlevel.wait_writable(fd)
                continue
            view = view[sent:]

    async def _receive(self) -> bytes:
        # A response's first read always waits in wait_readable (an answer is never
        # there the instant the request left): every call is a trio checkpoint
        # (cancellation, fairness). Later reads of the same response try first.
        fd = self.fd
        if self.got:
            try:
                return os.read(fd, RECV_BYTES)
            except BlockingIOError:
                pass
        while True:
            await trio.lowlevel.wait_readable(fd)
            try:
                data = os.read(fd, RECV_BYTES)
            except BlockingIOError:
                continue
            break
        if data:
            self.got = True
        return data

    async def _read_head(self, reused: bool) -> tuple[int, Headers, bytes]:
        buf = self.buf
        while True:
            end = buf.find(b"\r\n\r\n")
            if end >= 0:
                break
            if len(buf) > MAX_HEAD_BYTES:
                raise PoolConnectionError("HTTP protocol error: response head too large")
            data = await self._receive()
            if not data:
                if not self.got and reused:
                    raise _Stale()
                raise PoolConnectionError("connection closed before the response was complete")
            buf = buf + data if buf else data
        self.buf = buf[end + 4 :]
        lines = buf[:end].split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit() or len(parts[1]) != 3:
            raise PoolConnectionError(f"HTTP protocol error: bad status line {lines[0][:80]!r}")
        headers: Headers = []
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep or not name or name != name.strip():
                raise PoolConnectionError(f"HTTP protocol error: bad header line {line[:80]!r}")
            headers.append((name.lower(), value.strip(b" \t")))
        return int(parts[1]), headers, parts[0]

    async def _read_exactly(self, n: int) -> bytes:
        """The next `n` bytes (from the buffer, then the socket)."""
        buf = self.buf
        if len(buf) >= n:
            self.buf = buf[n:]
            return buf[:n] if len(buf) > n else buf
        chunks = [buf] if buf else []
        have = len(buf)
        while have < n:
            data = await self._receive()
            if not data:
                raise PoolConnectionError("connection closed before the response was complete")
            chunks.append(data)
            have += len(data)
        joined = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self.buf = joined[n:]
        return joined[:n] if have > n else joined

    async def _read_line(self) -> bytes:
        buf = self.buf
        while True:
            end = buf.find(b"\r\n")
            if end >= 0:
                self.buf = buf[end + 2 :]
                return buf[:end]
            if len(buf) > MAX_HEAD_BYTES:
                raise PoolConnectionError("HTTP protocol error: chunk line too long")
            data = await self._receive()
            if not data:
                raise PoolConnectionError("connection closed before the response was complete")
            buf = buf + data

    async def _read_body(self, method: bytes, status: int, headers: Headers) -> tuple[bytes, bool]:
        """(body, whether its end was framed); the connection's leftovers stay in `buf`."""
        if method == b"HEAD" or status in (204, 304):
            return b"", True
        length: bytes | None = None
        chunked = False
        for name, value in headers:
            if name == b"content-length":
                if length is not None and value != length:
                    raise PoolConnectionError("HTTP protocol error: conflicting Content-Length headers")
                length = value
            elif name == b"transfer-encoding":
                if value.lower() != b"chunked":
                    raise PoolConnectionError(f"HTTP protocol error: unsupported Transfer-Encoding {value[:40]!r}")
                chunked = True
        if chunked:
            chunks: list[bytes] = []
            while True:
                line = await self._read_line()
                size_text = line.split(b";", 1)[0].strip()
                try:
                    size = int(size_text, 16)
                except ValueError:
                    raise PoolConnectionError(f"HTTP protocol error: bad chunk size {line[:40]!r}") from None
                if size == 0:
                    while await self._read_line():  # trailers, up to the empty line
                        pass
                    break
                chunks.append(await self._read_exactly(size))
                if await self._read_exactly(2) != b"\r\n":
                    raise PoolConnectionError("HTTP protocol error: chunk not followed by CRLF")
            return (chunks[0] if len(chunks) == 1 else b"".join(chunks)), True
        if length is not None:
            if not length.isdigit():
                raise PoolConnectionError(f"HTTP protocol error: bad Content-Length {length[:40]!r}")
            return await self._read_exactly(int(length)), True
        # Neither: the body ends when the server closes the connection.
        chunks = [self.buf] if self.buf else []
        self.buf = b""
        while True:
            data = await self._receive()
            if not data:
                break
            chunks.append(data)
        return b"".join(chunks), False

    def finish_cycle(self) -> bool:
        """After a complete response: True if the connection can serve another request."""
        if self.reusable:
            self.idle_since = trio.current_time()
            return True
        return False  # `Connection: close`, HTTP/1.0 peer, or a close-delimited body


def _says_close(headers: Headers) -> bool:
    for name, value in headers:
        if name == b"connection" and b"close" in value.lower():
            return True
    return False


def _request_head(method: bytes, target: bytes, headers: Headers) -> bytes:
    if not target or any(c in target for c in _BAD_TARGET_BYTES):
        raise PoolConnectionError(f"invalid request target {target[:80]!r}")
    parts = [method, b" ", target, b" HTTP/1.1\r\n"]
    for name, value in headers:
        if b"\r" in value or b"\n" in value or b"\r" in name or b"\n" in name or b":" in name:
            raise PoolConnectionError(f"invalid request header {name[:40]!r}")
        parts += (name, b": ", value, b"\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


def _is_dead_connection(e: BaseException) -> bool:
    if isinstance(e, (trio.BrokenResourceError, trio.ClosedResourceError, ConnectionError)):
        return True
    return isinstance(e, OSError) and e.errno in _DEAD_CONNECTION_ERRNOS


class Http1Pool:
    """Keep-alive HTTP/1.1 connections to one `host:port`, at most `max_connections`.

    Usable as `async with Http1Pool(...) as pool:`; otherwise the creator calls `aclose()`.
    """

    def __init__(self, host: str, port: int, *, max_connections: int = DEFAULT_MAX_CONNECTIONS):
        assert max_connections >= 1
        self.host = host
        self.port = port
        self.max_connections = max_connections
        self._host_header = f"{host}:{port}".encode("ascii") if ":" not in host else f"[{host}]:{port}".encode("ascii")
        # Bounds busy connections; idle ones are only created by a checkout that found no
        # idle one, so busy + idle <= max_connections always holds.
        self._slots = trio.Semaphore(max_connections)
        self._idle: list[_Connection] = []
        self._busy: set[_Connection] = set()
        self._closed = False
        # Counters for benchmarks and tests: connections opened, stale ones dropped/retried.
        self.opened = 0
        self.retried = 0

    def __repr__(self) -> str:
        return f"Http1Pool({self.host!r}, {self.port}, idle={len(self._idle)}, busy={len(self._busy)})"

    async def __aenter__(self) -> Http1Pool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @property
    def connection_count(self) -> int:
        return len(self._idle) + len(self._busy)

    async def request(
        self,
        method: str | bytes,
        target: str | bytes,
        headers: Sequence[tuple[bytes, bytes]] = (),
        body: bytes = b"",
        timeout_s: float = math.inf,
    ) -> tuple[int, Headers, bytes]:
        """One request; returns `(status, headers, body)`. See the module doc for errors."""
        m = method.encode("ascii") if isinstance(method, str) else method
        t = target.encode("ascii") if isinstance(target, str) else target
        hdrs = self._request_headers(m, headers, body)
        if timeout_s == math.inf:
            # No deadline of its own: the caller holds one (the scatter's per-sub-request
            # scope), and a second cancel scope per call is measurable (issue 8).
            return await self._request(m, t, hdrs, body)
        with trio.move_on_after(timeout_s) as scope:
            return await self._request(m, t, hdrs, body)
        assert scope.cancelled_caught
        raise PoolTimeout(
            f"{m.decode()} http://{self.host}:{self.port}{t.decode(errors='replace')}: no complete answer within {timeout_s:g} s"
        )

    def _request_headers(self, method: bytes, headers: Sequence[tuple[bytes, bytes]], body: bytes) -> Headers:
        out: Headers = []
        has_host = False
        for name, value in headers:
            lname = name.lower()
            if lname == b"host":
                has_host = True
            elif lname in (b"content-length", b"transfer-encoding"):
                continue  # we frame the body ourselves
            out.append((name, value))
        if not has_host:
            out.insert(0, (b"host", self._host_header))
        if body or method not in _NO_BODY_METHODS:
            out.append((b"content-length", str(len(body)).encode("ascii")))
        return out

    async def _request(self, method: bytes, target: bytes, headers: Headers, body: bytes) -> tuple[int, Headers, bytes]:
        if self._closed:
            raise PoolClosed(f"pool for {self.host}:{self.port} is closed")
        # The raw writes below are not checkpoints: a caller already cancelled must not
        # send anything (trio's send_all checked this before).
        await trio.lowlevel.checkpoint_if_cancelled()
        # A free slot is taken without a scheduling round trip (the socket I/O below
        # checkpoints anyway); only a full pool waits.
        try:
            self._slots.acquire_nowait()
        except trio.WouldBlock:
            await self._slots.acquire()
        try:
            conn = await self._checkout()
            try:
                result = await self._round_trip(conn, method, target, headers, body)
            except _Stale:
                # Case 2 of the module doc: a reused connection died before any answer.
                self._discard(conn)
                self.retried += 1
                conn = await self._connect()
                result = await self._round_trip(conn, method, target, headers, body)
            return result
        finally:
            self._slots.release()

    async def _round_trip(
        self, conn: _Connection, method: bytes, target: bytes, headers: Headers, body: bytes
    ) -> tuple[int, Headers, bytes]:
        ok = False
        try:
            result = await conn.round_trip(method, target, headers, body)
            ok = True
        finally:
            # Cancelled (deadline), failed, or done: a connection goes back to the pool
            # only after a complete response on a connection that stays open.
            if ok and not self._closed and conn.finish_cycle():
                self._busy.discard(conn)
                self._idle.append(conn)
            else:
                self._discard(conn)
        return result

    async def _checkout(self) -> _Connection:
        now = trio.current_time()
        while self._idle:
            conn = self._idle.pop()
            if conn.is_reusable(now):
                self._busy.add(conn)
                return conn
            conn.close()  # case 1: expired or closed by the server while idle
        return await self._connect()

    async def _connect(self) -> _Connection:
        try:
            stream = await trio.open_tcp_stream(self.host, self.port)
        except OSError as e:
            raise PoolConnectionError(f"cannot connect to {self.host}:{self.port}: {e.strerror or e}") from e
        conn = _Connection(stream)
        self.opened += 1
        if self._closed:  # closed while we were connecting
            conn.close()
            raise PoolClosed(f"pool for {self.host}:{self.port} is closed")
        self._busy.add(conn)
        return conn

    def _discard(self, conn: _Connection) -> None:
        self._busy.discard(conn)
        conn.close()

    async def aclose(self) -> None:
        """Close idle connections now; busy ones close when their request ends."""
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
        await trio.lowlevel.checkpoint()


__all__ = [
    "DEFAULT_MAX_CONNECTIONS",
    "KEEPALIVE_EXPIRY_S",
    "Http1Pool",
    "PoolClosed",
    "PoolConnectionError",
    "PoolError",
    "PoolTimeout",
]
