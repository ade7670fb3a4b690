"""One request pipeline for both HTTP front ends (issue 12): the Quart app (api/app.py) and
the search fast path (api/fast.py) run the same steps, in the same order, by calling
this module:

1. `begin`: the request id (the client's `X-Request-Id`, else a fresh one), the clock,
   and the count of node calls (`fanout`);
2. `preflight`: a CORS preflight is answered before any key is asked for;
3. `authorize`: the route's action (auth.ROUTE_ACTIONS) checked against the key;
4. the body limit: `check_length` refuses an announced `Content-Length` over
   `server.max_body_bytes` before a byte is read; `read_body` (the fast path) or Quart's
   MAX_CONTENT_LENGTH (the app) stops a body that grows past it: 413 `payload_too_large`
   with `Connection: close` either way;
5. `error_for`: any exception -> the Meilisearch error the client gets (a 500 `internal`
   quoting the request id, with the traceback logged, for one we did not expect);
6. `answer_headers`: `X-Request-Id`, the engine's extra headers (`X-Miroir-Degraded`),
   `Connection: close`, CORS;
7. `log_request`: one `request` log line per request.

What differs is only how each front end reads a request and writes an answer: Quart's
request/response objects and hooks, or raw ASGI messages on the hot path.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from typing import Any

from werkzeug.exceptions import HTTPException

from miroir.api import auth
from miroir.api.context import Miroir
from miroir.core.errors import MeiliError
from miroir.core.jsonlimits import recursion_error
from miroir.core.keys import Access
from miroir.engine.keys import KeyRing
from miroir.engine.scatter import count_fanout
from miroir.instruments import HOT
from miroir.logsetup import get_logger

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]

log = get_logger("miroir.http")


class Headers(dict[str, str]):
    """Request headers by lower-case name (latin-1 text); `get` is case-insensitive.

    Repeated headers keep the first value, as werkzeug's `headers.get` does.
    """

    @classmethod
    def from_asgi(cls, raw: Iterable[tuple[bytes, bytes]]) -> Headers:
        headers = cls()
        for name, value in raw:
            key = name.decode("latin-1").lower()
            if key not in headers:
                headers[key] = value.decode("latin-1")
        return headers

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return dict.get(self, key.lower(), default)


class BodyTooLarge(Exception):
    """The body is over `server.max_body_bytes` (announced or while read)."""


class Disconnected(Exception):
    """The client left before its body was read: there is no one to answer."""


def payload_too_large(limit: int) -> MeiliError:
    return MeiliError(
        "payload_too_large",
        f"The provided payload reached the size limit. The maximum accepted payload size is {_human_size(limit)}.",
    )


def _human_size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:g} {unit}" if unit == "B" else f"{n:.2f} {unit}".replace(".00 ", " ")
        n /= 1024
    raise AssertionError("unreachable")


def begin(headers: auth.RequestHeaders) -> tuple[str, float, list[int]]:
    """Step 1: the request's id, its start time, and the count of node calls its scatter
    makes (`[0]`, read after the answer: the log line's `fanout`)."""
    return headers.get("x-request-id") or uuid.uuid4().hex, time.perf_counter(), count_fanout()


def preflight(method: str, headers: auth.RequestHeaders) -> list[tuple[str, str]] | None:
    """Step 2: the headers of a CORS preflight's 200 answer, or None (not a preflight)."""
    if auth.is_preflight(method, headers):
        return auth.preflight_headers(headers)
    return None


class Pipeline:
    """The steps that need the daemon's configuration: one per daemon, shared by both
    front ends (so both use one key cache)."""

    def __init__(self, ctx: Miroir):
        self.ctx = ctx
        self.auth = ctx.config.auth
        self.limit = ctx.config.server.max_body_bytes
        self.ring = KeyRing(self.auth.master_key)  # API keys (issue 14)

    def authorize(self, action: str | None, path: str, headers: auth.RequestHeaders, index: str | None) -> Access:
        """Step 3: the request's rights, or raise the error that refuses it."""
        return auth.authorize(self.auth, self.ring, auth.key_state(self.ctx), path, headers, action, index)

    def check_length(self, length: int | None) -> None:
        """Step 4, before reading: an announced length over the limit is refused at once."""
        if length is not None and length > self.limit:
            raise BodyTooLarge()

    async def read_body(self, receive: Receive) -> bytes:
        """Step 4 for an ASGI front end: the whole body, or BodyTooLarge as soon as it
        grows past the limit, or Disconnected."""
        chunks: list[bytes] = []
        size = 0
        limit = self.limit
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise Disconnected()
            chunk = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > limit:
                    raise BodyTooLarge()
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        if len(chunks) == 1:
            return chunks[0]
        return b"".join(chunks)

    def error_for(self, exc: BaseException, request_id: str | None, method: str, path: str) -> MeiliError:
        """Step 5: the Meilisearch error the client gets for `exc`."""
        if isinstance(exc, MeiliError):
            return exc
        if isinstance(exc, BodyTooLarge):
            return payload_too_large(self.limit)
        if isinstance(exc, RecursionError):
            # Only a client's deeply nested JSON recurses this far (bodies that decode_json
            # scans are refused before); e.g. a document batch: a user mistake, not a 500.
            return recursion_error()
        if isinstance(exc, HTTPException):
            return self._http_error(exc, method, path)
        # The client gets a request id to quote, never our traceback.
        log.error("unhandled exception", request_id=request_id, path=auth.redact_path(path), exc_info=exc)
        return MeiliError("internal", f"Internal error (request id {request_id}).")

    def _http_error(self, exc: HTTPException, method: str, path: str) -> MeiliError:
        """Quart's own errors (routing, body limit) in Meilisearch's shape."""
        code = exc.code or 500
        if code == 404:
            return MeiliError("not_found", "Not Found", status=404)
        if code == 405:
            return MeiliError("method_not_allowed", f"Method `{method}` is not allowed on `{path}`.", status=405)
        if code == 413:
            return payload_too_large(self.limit)
        if code == 408:
            return MeiliError("bad_request", "The request body was not received in time.", status=408)
        if code >= 500:
            return MeiliError("internal", exc.description or "Internal error.", status=code)
        return MeiliError("bad_request", exc.description or exc.name, status=code)


def answer_headers(
    request_id: str | None,
    headers: auth.RequestHeaders,
    *,
    close: bool = False,
    extra: Mapping[str, str] | None = None,
) -> list[tuple[str, str]]:
    """Step 6: the headers every answer carries besides its content type and length."""
    out: list[tuple[str, str]] = []
    if request_id:
        out.append(("x-request-id", request_id))
    if extra:
        out.extend((k.lower(), str(v)) for k, v in extra.items())
    if close:
        out.append(("connection", "close"))
    out.extend(auth.cors_headers(headers))  # CORS (issue 14)
    return out


def log_request(
    request_id: str | None,
    method: str,
    path: str,
    route: str | None,
    status: int,
    started: float | None,
    fanout: int | None,
) -> None:
    """Step 7: the one `request` line (`route` is the matched rule; `fanout`, the node
    calls a scatter made, is given for the scatter-read routes)."""
    elapsed = time.perf_counter() - started if started else None
    duration_ms = round(elapsed * 1000, 3) if elapsed is not None else None
    if elapsed is not None:
        HOT.request(method, route or "(unmatched)", status, elapsed, fanout)  # /metrics (plain counters)
    fields: dict[str, Any] = {
        "request_id": request_id,
        "method": method,
        "path": auth.redact_path(path),
        "route": route,
        "status": status,
        "duration_ms": duration_ms,
    }
    if fanout is not None:
        fields["fanout"] = fanout
    log.info("request", **fields)
