"""The Quart-Trio application: route modules, auth, errors, request logging.

To add a route module: write `src/miroir/api/routes_x.py` with a `bp = Blueprint(...)`
and add its name to `ROUTE_MODULES`.
"""

from __future__ import annotations

import importlib
import time
import uuid
from typing import Any

import trio
from quart import Response, g, request
from quart.asgi import ASGIHTTPConnection
from quart_trio import QuartTrio
from quart_trio.asgi import TrioASGIHTTPConnection
from werkzeug.exceptions import HTTPException

from miroir.api import auth
from miroir.api.context import Miroir
from miroir.api.http import error_response
from miroir.core.errors import MeiliError
from miroir.core.jsonlimits import recursion_error
from miroir.logsetup import get_logger

ROUTE_MODULES: list[str] = [
    "miroir.api.routes_system",
    "miroir.api.routes_tasks",
    "miroir.api.routes_admin",
    "miroir.api.routes_indexes",
    "miroir.api.routes_settings",
    "miroir.api.routes_documents",
    "miroir.api.routes_stats",
    "miroir.api.routes_search",
    "miroir.api.routes_similar",
    "miroir.api.routes_keys",
    "miroir.api.routes_dumps",
]

log = get_logger("miroir.http")

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def payload_too_large(limit: int) -> MeiliError:
    return MeiliError(
        "payload_too_large",
        f"The provided payload reached the size limit. The maximum accepted payload size is {_human_size(limit)}.",
    )


def _human_size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:g} {unit}" if unit == "B" else f"{n:.2f} {unit}".replace(".00 ", " ")
        n /= 1024  # type: ignore[assignment]
    raise AssertionError("unreachable")


def _http_error(exc: HTTPException, limit: int) -> MeiliError:
    """Quart's own errors (routing, body limit) in Meilisearch's shape."""
    code = exc.code or 500
    if code == 404:
        return MeiliError("not_found", "Not Found", status=404)
    if code == 405:
        return MeiliError("method_not_allowed", f"Method `{request.method}` is not allowed on `{request.path}`.", status=405)
    if code == 413:
        return payload_too_large(limit)
    if code == 408:
        return MeiliError("bad_request", "The request body was not received in time.", status=408)
    if code >= 500:
        return MeiliError("internal", exc.description or "Internal error.", status=code)
    return MeiliError("bad_request", exc.description or exc.name, status=code)


class _HTTPConnection(TrioASGIHTTPConnection):
    """Quart-Trio's request runner, that lets hypercorn finish the last send (issue 20).

    Sending the last body message makes hypercorn end the request: it tells Quart's
    receive loop `http.disconnect`, and that loop cancelled the request's nursery while
    the send was still inside hypercorn, recycling the connection. Cancelled there,
    hypercorn neither closed a `Connection: close` socket nor re-armed its keep-alive
    timer: every connection stayed open forever. Once the last message is on its way the
    receive loop no longer cancels (the request task ends the nursery itself when the
    send returns); a client leaving before that still cancels the request.
    """

    async def __call__(self, receive: Any, send: Any) -> None:
        self._answered = False

        async def send_marking_the_end(message: Any) -> None:
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                self._answered = True
            await send(message)

        await super().__call__(receive, send_marking_the_end)

    async def handle_messages(self, nursery: trio.Nursery, request: Any, receive: Any) -> None:  # type: ignore[override]
        await ASGIHTTPConnection.handle_messages(self, request, receive)
        if not self._answered:
            nursery.cancel_scope.cancel()


def create_app(ctx: Miroir) -> QuartTrio:
    app = QuartTrio("miroir")
    app.asgi_http_class = _HTTPConnection  # type: ignore[assignment]
    limit = ctx.config.server.max_body_bytes
    app.config["MIROIR"] = ctx
    app.config["MAX_CONTENT_LENGTH"] = limit
    # Meilisearch never redirects `/indexes/` to `/indexes`; neither do we.
    app.url_map.strict_slashes = False

    @app.before_request
    async def _start() -> None:
        g.request_id = request.headers.get("X-Request-Id") or uuid.uuid4().hex
        g.started = time.perf_counter()

    auth.install(app, ctx.config.auth, ctx)  # keys, tenant tokens, CORS

    @app.before_request
    async def _body_limit() -> None:
        # Reject on the announced length before reading a byte; a chunked body that grows
        # past the limit is stopped by Quart (MAX_CONTENT_LENGTH) while it is read.
        length = request.content_length
        if length is not None and length > limit:
            raise payload_too_large(limit)

    @app.after_request
    async def _log(resp: Response) -> Response:
        rid = getattr(g, "request_id", None)
        if rid:
            resp.headers["X-Request-Id"] = rid
        started = getattr(g, "started", None)
        rule = request.url_rule.rule if request.url_rule is not None else None
        fields = dict(
            request_id=rid,
            method=request.method,
            path=auth.redact_path(request.path),
            route=rule,
            status=resp.status_code,
            duration_ms=round((time.perf_counter() - started) * 1000, 3) if started else None,
        )
        fanout = getattr(g, "fanout", None)  # set by scatter routes: nodes asked
        if fanout is not None:
            fields["fanout"] = fanout
        log.info("request", **fields)
        return resp

    @app.errorhandler(MeiliError)
    async def _meili_error(err: MeiliError) -> Response:
        return error_response(err)

    @app.errorhandler(HTTPException)
    async def _quart_error(exc: HTTPException) -> Response:
        return error_response(_http_error(exc, limit))

    @app.after_request
    async def _finish_body(resp: Response) -> Response:
        # An error answered before the handler read the body (auth, bad parameter) leaves
        # the body unread on a keep-alive connection, and the client's next request on it
        # hangs. Read it (it is within the limit), or close when it is over the limit.
        if resp.status_code >= 400 and request.method in _BODY_METHODS:
            if resp.status_code == 413:
                resp.headers["Connection"] = "close"
            else:
                try:
                    await request.get_data()
                except Exception:  # noqa: BLE001 - a broken body only means: close
                    resp.headers["Connection"] = "close"
        return resp

    @app.errorhandler(RecursionError)
    async def _too_deep(exc: RecursionError) -> Response:
        # Only a client's deeply nested JSON recurses this far (bodies that decode_json
        # scans are refused before); e.g. a document batch: a user mistake, not a 500.
        return error_response(recursion_error())

    @app.errorhandler(Exception)
    async def _unexpected(exc: Exception) -> Response:
        # The client gets a request id to quote, never our traceback.
        rid = getattr(g, "request_id", None)
        log.error("unhandled exception", request_id=rid, path=auth.redact_path(request.path), exc_info=exc)
        return error_response(MeiliError("internal", f"Internal error (request id {rid})."))

    for name in ROUTE_MODULES:
        app.register_blueprint(importlib.import_module(name).bp)
    return app
