"""ASGI fast path for the hottest route: `POST|GET /indexes/{uid}/search` (issue 8).

`FastSearch(app, ctx)` is a raw ASGI callable in front of the Quart-Trio app: it answers
the search route itself and hands every other request (and every other scope type) to
Quart unchanged. Per search it skips Quart's request/response objects, its hooks and its
routing; what the client sees is the same as through Quart:

- auth first, with the same pure `auth.authorize` (so unknown keys get the same errors),
  the `search` action on `uid`; a tenant token's rule is ANDed into the filter; CORS
  headers as `auth.cors_headers` (a preflight is an OPTIONS: Quart answers it);
- the body limit: an announced `Content-Length` over `server.max_body_bytes`, or a body
  that grows past it while read, is 413 `payload_too_large` with `Connection: close`;
- Meilisearch-shaped errors (`MeiliError` -> its status and body; anything else is a
  500 `internal` quoting the request id, logged with the traceback);
- the `X-Request-Id` header (the client's, else a fresh one) and `X-Miroir-Degraded`
  when the engine reports lost shards;
- one `request` log line with the same fields as `app.py`'s (`route` is the Quart rule
  `/indexes/<uid>/search`, plus `fanout`).

The body is always read completely before answering (the Quart app does the same for
errors), so a keep-alive connection never holds an unread body. Other methods on the path
(HEAD, PUT...) and the trailing-slash form go to Quart, which answers as before.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

import msgspec

from miroir.api import auth
from miroir.api.app import payload_too_large
from miroir.api.context import Miroir
from miroir.core.errors import MeiliError
from miroir.core.jsonlimits import recursion_error
from miroir.core.keys import fuse_filters
from miroir.core.searchplan import decode_search_request, json_content_type_error, metadata_wanted, parse_search_query_string
from miroir.engine import reads
from miroir.engine.keys import KeyRing
from miroir.engine.scatter import count_fanout
from miroir.instruments import HOT
from miroir.logsetup import get_logger

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

ROUTE = "/indexes/<uid>/search"
_PREFIX = "/indexes/"
_SUFFIX = "/search"

log = get_logger("miroir.http")
_encode = msgspec.json.Encoder().encode
_JSON_HEADER = (b"content-type", b"application/json")


class _Headers(dict):
    """Request headers by lower-case name (latin-1 text); `get` is case-insensitive.

    Repeated headers keep the first value, as werkzeug's `headers.get` does.
    """

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return dict.get(self, key.lower(), default)


def _search_uid(path: str) -> str | None:
    """`uid` when `path` is exactly `/indexes/{uid}/search` (uid without `/`), else None."""
    if not (path.startswith(_PREFIX) and path.endswith(_SUFFIX)):
        return None
    uid = path[len(_PREFIX) : -len(_SUFFIX)]
    if not uid or "/" in uid:
        return None
    return uid


class _TooLarge(Exception):
    pass


class _Disconnected(Exception):
    pass


class FastSearch:
    """ASGI app: the search route answered directly, everything else by `app` (Quart)."""

    def __init__(self, app: ASGIApp, ctx: Miroir):
        self.app = app
        self.ctx = ctx
        self.limit = ctx.config.server.max_body_bytes
        self.auth = ctx.config.auth
        self.ring = KeyRing(self.auth.master_key)  # API keys (issue 14)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            method = scope["method"]
            if method == "POST" or method == "GET":
                uid = _search_uid(scope["path"])
                if uid is not None:
                    await self._search(scope, receive, send, method, uid)
                    return
        await self.app(scope, receive, send)

    async def _read_body(self, receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        limit = self.limit
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected()
            chunk = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > limit:
                    raise _TooLarge()
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        if len(chunks) == 1:
            return chunks[0]
        return b"".join(chunks)

    async def _search(self, scope: Scope, receive: Receive, send: Send, method: str, uid: str) -> None:
        started = time.perf_counter()
        headers = _Headers()
        for name, value in scope["headers"]:
            key = name.decode("latin-1").lower()
            if key not in headers:
                headers[key] = value.decode("latin-1")
        request_id = headers.get("x-request-id") or uuid.uuid4().hex
        path = scope["path"]
        holder = count_fanout()
        extra: dict[str, str] | None = None
        close = False
        try:
            try:
                access = auth.authorize(self.auth, self.ring, auth.key_state(self.ctx), path, headers, "search", uid)
                length = headers.get("content-length")
                if length is not None and length.isdigit() and int(length) > self.limit:
                    raise _TooLarge()
                body = await self._read_body(receive) if method == "POST" else b""
            except MeiliError:
                # As app.py's `_finish_body`: an early error still reads a body within
                # the limit (or closes), so the connection stays usable.
                if method == "POST":
                    try:
                        await self._read_body(receive)
                    except (_TooLarge, _Disconnected):
                        close = True
                raise
            if method == "POST":
                refused = json_content_type_error(headers.get("content-type"))  # 1.50's 415
                if refused is not None:
                    raise refused
                req = decode_search_request(body)
                del body
            else:
                qs = scope.get("query_string", b"").decode("latin-1")
                args: dict[str, str] = {}
                for k, v in parse_qsl(qs, keep_blank_values=True, encoding="utf-8", errors="replace"):
                    args.setdefault(k, v)
                req = parse_search_query_string(args)
            req.filter = fuse_filters(req.filter, access.rule_filter(uid))  # tenant token
            cluster = self.ctx.engine
            if cluster is None:
                raise MeiliError("miroir_not_ready", "Miroir is starting: the journal is not replayed yet.")
            answer, extra = await reads.search(
                cluster, uid, req, include_metadata=metadata_wanted(headers.get("meili-include-metadata"))
            )
            status, payload = 200, _encode(answer)
        except _Disconnected:
            return  # the client left: nothing to answer
        except _TooLarge:
            err = payload_too_large(self.limit)
            status, payload, close = err.status, _encode(err.body()), True
        except MeiliError as err:
            status, payload = err.status, _encode(err.body())
        except RecursionError:  # deeply nested JSON (see app.py's handler)
            err = recursion_error()
            status, payload = err.status, _encode(err.body())
        except Exception as exc:
            log.error("unhandled exception", request_id=request_id, path=path, exc_info=exc)
            err = MeiliError("internal", f"Internal error (request id {request_id}).")
            status, payload = err.status, _encode(err.body())
        out = [_JSON_HEADER, (b"content-length", str(len(payload)).encode()), (b"x-request-id", request_id.encode("latin-1"))]
        if extra:
            out.extend((k.lower().encode("latin-1"), str(v).encode("latin-1")) for k, v in extra.items())
        if close:
            out.append((b"connection", b"close"))
        out.extend((k.encode(), v.encode()) for k, v in auth.cors_headers(headers))  # CORS (issue 14)
        await send({"type": "http.response.start", "status": status, "headers": out})
        await send({"type": "http.response.body", "body": payload, "more_body": False})
        HOT.request(method, ROUTE, status, time.perf_counter() - started, holder[0])
        log.info(
            "request",
            request_id=request_id,
            method=method,
            path=path,
            route=ROUTE,
            status=status,
            duration_ms=round((time.perf_counter() - started) * 1000, 3),
            fanout=holder[0],
        )


def wrap(app: ASGIApp, ctx: Miroir) -> FastSearch:
    """The ASGI app the daemon serves: `app` (create_app's Quart app) behind the fast path."""
    return FastSearch(app, ctx)
