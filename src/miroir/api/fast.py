"""ASGI fast path for the hottest route: `POST|GET /indexes/{uid}/search` (issue 8).

`FastSearch(app, pipe)` is a raw ASGI callable in front of the Quart-Trio app: it answers
the search route itself and hands every other request (and every other scope type) to
Quart unchanged. Per search it skips Quart's request/response objects, its hooks and its
routing, but runs the same request pipeline (api/pipeline.py: request id, auth with the
`search` action on `uid`, body limit, error shaping, answer headers, the log line) and
the same handler (`search`, which the Quart routes in routes_search.py call too):
what the client sees is the same as through Quart. A preflight is an OPTIONS: Quart
answers it.

The body is always read completely before answering (the Quart app does the same for
errors), so a keep-alive connection never holds an unread body. Other methods on the path
(HEAD, PUT...) and the trailing-slash form go to Quart, which answers as Meilisearch does
(its trailing-slash form is a search too: routes_search.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

import msgspec

from miroir.api import pipeline
from miroir.api.context import Miroir
from miroir.api.pipeline import BodyTooLarge, Disconnected, Headers, Pipeline
from miroir.core.documents import decode_content_encoding
from miroir.core.errors import MeiliError, journal_not_replayed
from miroir.core.keys import Access, fuse_filters
from miroir.core.searchplan import (
    SearchRequest,
    decode_search_request,
    json_content_type_error,
    metadata_wanted,
    parse_search_query_string,
)
from miroir.engine import reads

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

ROUTE = "/indexes/<uid>/search"
_PREFIX = "/indexes/"
_SUFFIX = "/search"

_encode = msgspec.json.Encoder().encode
_JSON_HEADER = (b"content-type", b"application/json")


def _search_uid(path: str) -> str | None:
    """`uid` when `path` is exactly `/indexes/{uid}/search` (uid without `/`), else None."""
    if not (path.startswith(_PREFIX) and path.endswith(_SUFFIX)):
        return None
    uid = path[len(_PREFIX) : -len(_SUFFIX)]
    if not uid or "/" in uid:
        return None
    return uid


def query_args(query_string: bytes) -> dict[str, str]:
    """A GET search's parameters (a repeated one keeps its first value)."""
    args: dict[str, str] = {}
    for k, v in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True, encoding="utf-8", errors="replace"):
        args.setdefault(k, v)
    return args


async def search(
    ctx: Miroir, uid: str, access: Access, req: SearchRequest, *, include_metadata: bool = False
) -> tuple[Any, dict[str, str] | None]:
    """The search handler of both front ends: the answer and the engine's extra headers.
    `include_metadata`: the client sent `Meili-Include-Metadata` (1.50's `metadata`)."""
    req.filter = fuse_filters(req.filter, access.rule_filter(uid))  # a tenant token's rule
    cluster = ctx.engine
    if cluster is None:
        raise journal_not_replayed()
    return await reads.search(cluster, uid, req, include_metadata=include_metadata)


class FastSearch:
    """ASGI app: the search route answered directly, everything else by `app` (Quart)."""

    def __init__(self, app: ASGIApp, pipe: Pipeline):
        self.app = app
        self.pipe = pipe
        self.ctx = pipe.ctx

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            method = scope["method"]
            if method == "POST" or method == "GET":
                uid = _search_uid(scope["path"])
                if uid is not None:
                    await self._search(scope, receive, send, method, uid)
                    return
        await self.app(scope, receive, send)

    async def _search(self, scope: Scope, receive: Receive, send: Send, method: str, uid: str) -> None:
        pipe = self.pipe
        headers = Headers.from_asgi(scope["headers"])
        request_id, started, fanout = pipeline.begin(headers)
        path = scope["path"]
        extra: dict[str, str] | None = None
        close = False
        try:
            try:
                access = pipe.authorize("search", path, headers, uid)
                length = headers.get("content-length")
                pipe.check_length(int(length) if length is not None and length.isdigit() else None)
                body = await pipe.read_body(receive) if method == "POST" else b""
            except MeiliError:
                # As app.py's `_end`: an early error still reads a body within the limit
                # (or closes), so the connection stays usable.
                if method == "POST":
                    try:
                        await pipe.read_body(receive)
                    except (BodyTooLarge, Disconnected):
                        close = True
                raise
            if method == "POST":
                refused = json_content_type_error(headers.get("content-type"))  # 1.50's 415
                if refused is not None:
                    raise refused
                encoding = headers.get("content-encoding")
                if encoding:  # 1.50 decodes gzip/deflate/br bodies, as api/http.body_bytes
                    body = decode_content_encoding(body, encoding, pipe.limit)
                req = decode_search_request(body)
                del body
            else:
                req = parse_search_query_string(query_args(scope.get("query_string", b"")))
            answer, extra = await search(
                self.ctx, uid, access, req, include_metadata=metadata_wanted(headers.get("meili-include-metadata"))
            )
            status, payload = 200, _encode(answer)
        except Disconnected:
            return  # the client left: nothing to answer
        except Exception as exc:
            err = pipe.error_for(exc, request_id, method, path)
            status, payload = err.status, _encode(err.body())
            if status == 413:
                close = True  # the rest of the body is not read
        out = [_JSON_HEADER, (b"content-length", str(len(payload)).encode())]
        out += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in pipeline.answer_headers(request_id, headers, close=close, extra=extra)]
        await send({"type": "http.response.start", "status": status, "headers": out})
        await send({"type": "http.response.body", "body": payload, "more_body": False})
        pipeline.log_request(request_id, method, path, ROUTE, status, started, fanout[0])


def wrap(app: ASGIApp, ctx: Miroir) -> FastSearch:
    """The ASGI app the daemon serves: `app` (create_app's Quart app) behind the fast path,
    sharing its pipeline."""
    pipe = app.config["MIROIR_PIPELINE"]  # type: ignore[attr-defined]
    assert pipe.ctx is ctx
    return FastSearch(app, pipe)
