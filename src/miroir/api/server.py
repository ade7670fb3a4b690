"""Serving the ASGI app on a bound socket: hypercorn's HTTP/1.1 connection handling, with a
cap on open client connections (issue 20).

`serve(app, config, sock, ...)` is hypercorn's trio `worker_serve` for one plain-TCP socket
(same lifespan, same `TCPServer` per connection, same graceful shutdown), plus one thing
hypercorn has no setting for: at most `max_connections` client connections are open at
once. At the cap we stop calling accept(2); further clients wait in the kernel's listen
backlog (they cost us no descriptor) and are accepted as connections close. Without it,
anyone can open connections until the process is out of descriptors, and then the journal
and the node connections fail too.

The keep-alive timeout is hypercorn's `keep_alive_timeout` (see daemon.py); it closes a
connection idle that long, whether it never sent a request or sent its last one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from itertools import chain
from typing import Any

import h11
import msgspec
import trio
from h11._readers import ChunkedReader
from hypercorn.config import Config as HypercornConfig
from hypercorn.protocol.h11 import H11Protocol
from hypercorn.trio.lifespan import Lifespan
from hypercorn.trio.statsd import StatsdLogger
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import AppWrapper, ConnectionState, LifespanState

from miroir.api.pipeline import payload_too_large
from miroir.core.errors import MeiliError
from miroir.logsetup import get_logger

log = get_logger("miroir.http")


class _CappedChunkedReader(ChunkedReader):
    """h11's chunked body reader, refusing a body whose announced chunks exceed `limit`.

    A chunk size is read before its bytes: `ffffffffffffffff` announces 16 EiB, and h11
    then waits for bytes that never come while the request holds its connection (Quart
    gave up after 60 s, without an answer). The body can only end over the limit: 413 at
    once, as for an announced Content-Length over it.
    """

    def __init__(self, limit: int):
        super().__init__()
        self.limit = limit
        self.received = 0

    def __call__(self, buf: Any) -> Any:
        event = super().__call__(buf)
        if isinstance(event, h11.Data):
            self.received += len(event.data)
        if self.received + self._bytes_in_chunk > self.limit:
            raise h11.RemoteProtocolError("chunked body over the payload limit", error_status_hint=413)
        return event


class _ServerConnection(h11.Connection):
    """h11's server side, with chunked request bodies read by `_CappedChunkedReader`."""

    def __init__(self, max_body: int, **kwargs: Any):
        super().__init__(h11.SERVER, **kwargs)
        self.max_body = max_body

    def _get_io_object(self, role: Any, event: Any, io_dict: Any) -> Any:
        obj = super()._get_io_object(role, event, io_dict)
        if type(obj) is ChunkedReader:
            return _CappedChunkedReader(self.max_body)
        return obj


def _error_body(status: int, max_body: int) -> bytes:
    if status == 413:
        err = payload_too_large(max_body)
    else:
        err = MeiliError("bad_request", "The request could not be parsed as HTTP/1.1.", status=status)
    return msgspec.json.encode(err.body())


class _TCPServer(TCPServer):
    """hypercorn's connection handler, that lets go of a connection the client closed.

    hypercorn keeps its keep-alive timer running after the client's EOF, and the handler
    (and the socket) lives until the timer fires: a closed connection held its descriptor
    and its slot under the cap for up to `keep_alive_timeout`. Nothing more can arrive
    once the read side has ended, so the timer is stopped there; requests still being
    answered finish as before.
    """

    max_body: int = 0  # set by `serve`: server.max_body_bytes

    async def _read_data(self) -> None:
        # Nothing was read yet: the h11 connection can still be swapped for ours, and
        # hypercorn's empty-bodied protocol errors made Meilisearch-shaped.
        protocol = self.protocol.protocol
        if isinstance(protocol, H11Protocol) and self.max_body:
            protocol.connection = _ServerConnection(
                self.max_body, max_incomplete_event_size=self.config.h11_max_incomplete_size
            )
            protocol._send_error_response = _meili_error_response(protocol, self.max_body)  # type: ignore[method-assign,assignment]
        try:
            await super()._read_data()
        finally:
            await self.idle_task.stop()


def _meili_error_response(protocol: H11Protocol, max_body: int) -> Callable[[int], Awaitable[None]]:
    """hypercorn's answer to a request h11 cannot parse (status only, empty body), with
    the body Meilisearch's errors have."""

    async def send(status_code: int) -> None:
        # h11 says 501 for a transfer coding it does not know: a request the client
        # framed wrong, answered 400 as every other request that cannot be parsed.
        status_code = 400 if status_code == 501 else status_code
        body = _error_body(status_code, max_body)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        await protocol._send_h11_event(
            h11.Response(status_code=status_code, headers=list(chain(headers, protocol.config.response_headers("h11"))))
        )
        await protocol._send_h11_event(h11.Data(data=body))
        await protocol._send_h11_event(h11.EndOfMessage())

    return send


class CappedListener(trio.abc.Listener[trio.SocketStream]):
    """A listener that accepts only while fewer than `limit` accepted streams are open.

    Each accepted stream holds one token until `release()` (called when its connection
    handler ends, after hypercorn closed the socket).
    """

    def __init__(self, inner: trio.SocketListener, limit: int):
        self.inner = inner
        self.slots = trio.Semaphore(limit)
        self.limit = limit
        self._warned = False

    @property
    def open_connections(self) -> int:
        return self.limit - self.slots.value

    async def accept(self) -> trio.SocketStream:
        if self.slots.value == 0 and not self._warned:
            # Once per saturation episode: the log must not become the next flood.
            self._warned = True
            log.warning("connection cap reached", max_connections=self.limit, detail="new clients wait in the listen backlog")
        await self.slots.acquire()
        try:
            return await self.inner.accept()
        except BaseException:
            self.slots.release()
            raise

    def release(self) -> None:
        self.slots.release()
        if self.slots.value > self.limit // 10:
            self._warned = False

    async def aclose(self) -> None:
        await self.inner.aclose()


async def serve(
    app: AppWrapper,
    config: HypercornConfig,
    sock: Any,
    *,
    max_connections: int,
    max_body: int,
    shutdown_trigger: Callable[[], Awaitable[object]],
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve `app` on the listening socket `sock` (closed on return) until
    `shutdown_trigger` returns; then stop accepting, close idle connections and give
    in-flight requests `config.graceful_timeout` seconds to finish."""
    config.set_statsd_logger_class(StatsdLogger)
    lifespan_state: LifespanState = {}
    lifespan = Lifespan(app, config, lifespan_state)
    context = WorkerContext(None)
    listener = CappedListener(trio.SocketListener(trio.socket.from_stdlib_socket(sock)), max_connections)

    async def connection(stream: trio.SocketStream) -> None:
        try:
            tcp = _TCPServer(app, config, context, ConnectionState(lifespan_state.copy()), stream)  # type: ignore[arg-type]
            tcp.max_body = max_body
            await tcp
        finally:
            listener.release()  # TCPServer has closed the socket by now

    async with trio.open_nursery() as lifespan_nursery:
        await lifespan_nursery.start(lifespan.handle_lifespan)
        await lifespan.wait_for_startup()
        async with trio.open_nursery() as server_nursery:
            task_status.started()
            try:
                async with trio.open_nursery() as accepting:
                    accepting.start_soon(
                        partial(trio.serve_listeners, connection, [listener], handler_nursery=server_nursery)
                    )
                    await shutdown_trigger()
                    accepting.cancel_scope.cancel()  # closes the listening socket
            finally:
                # Idle connections close now, busy ones after their response.
                await context.terminated.set()
                server_nursery.cancel_scope.deadline = trio.current_time() + config.graceful_timeout
        await lifespan.wait_for_shutdown()
        lifespan_nursery.cancel_scope.cancel()
