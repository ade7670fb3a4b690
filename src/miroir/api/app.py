"""The Quart-Trio application: route modules, auth, errors, request logging.

To add a route module: write `src/miroir/api/routes_x.py` with a `bp = Blueprint(...)`
and add its name to `ROUTE_MODULES`.
"""

from __future__ import annotations

import importlib
from typing import Any

import trio
from quart import Response, g, request
from quart.asgi import ASGIHTTPConnection
from quart_trio import QuartTrio
from quart_trio.asgi import TrioASGIHTTPConnection
from werkzeug.exceptions import HTTPException

from miroir.api import auth, pipeline
from miroir.api.context import Miroir
from miroir.api.http import error_response
from miroir.api.pipeline import Pipeline

ROUTE_MODULES: list[str] = [
    "miroir.api.routes_system",
    "miroir.api.routes_tasks",
    "miroir.api.routes_batches",  # issue 13: /batches
    "miroir.api.routes_experimental",  # issue 13: /experimental-features
    "miroir.api.routes_admin",
    "miroir.api.routes_indexes",
    "miroir.api.routes_settings",
    "miroir.api.routes_documents",
    "miroir.api.routes_stats",
    "miroir.api.routes_search",
    "miroir.api.routes_similar",
    "miroir.api.routes_keys",
    "miroir.api.routes_dumps",
    "miroir.api.routes_snapshots",
    "miroir.api.routes_metrics",
    "miroir.api.routes_webhooks",
    "miroir.api.routes_dsr",  # issue 13: /dynamic-search-rules
    "miroir.api.routes_render",  # issue 13: /render-template
]

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


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
    """The Quart app; its hooks run the steps of api/pipeline.py (the fast path in
    api/fast.py runs the same steps for the search route)."""
    app = QuartTrio("miroir")
    app.asgi_http_class = _HTTPConnection  # type: ignore[assignment]
    pipe = Pipeline(ctx)
    app.config["MIROIR"] = ctx
    app.config["MIROIR_PIPELINE"] = pipe  # fast.wrap shares it
    app.config["MIROIR_KEYRING"] = pipe.ring  # routes_keys forgets a deleted key's digest
    # A chunked body that grows past the limit is stopped by Quart while it is read.
    app.config["MAX_CONTENT_LENGTH"] = pipe.limit
    # Meilisearch never redirects `/indexes/` to `/indexes`; neither do we.
    app.url_map.strict_slashes = False

    @app.before_request
    async def _begin() -> Response | None:
        headers = request.headers
        g.request_id, g.started, g.fanout = pipeline.begin(headers)
        allowed = pipeline.preflight(request.method, headers)
        if allowed is not None:
            g.preflight = True
            return Response(b"", status=200, headers=dict(allowed))
        rule = request.url_rule
        action = None
        index = None
        if rule is not None:
            action = auth.ROUTE_ACTIONS.get(auth.route_key(request.method, rule.rule))
            if rule.rule.startswith("/indexes/<") and request.view_args:
                index = next(iter(request.view_args.values()))
        g.access = pipe.authorize(action, request.path, headers, index)
        pipe.check_length(request.content_length)
        return None

    @app.errorhandler(HTTPException)
    @app.errorhandler(Exception)
    async def _error(exc: Exception) -> Response:
        err = pipe.error_for(exc, getattr(g, "request_id", None), request.method, request.path)
        return error_response(err)

    @app.after_request
    async def _end(resp: Response) -> Response:
        close = False
        if resp.status_code >= 400 and request.method in _BODY_METHODS:
            # An error answered before the handler read the body (auth, bad parameter)
            # leaves the body unread on a keep-alive connection, and the client's next
            # request on it hangs. Read it (it is within the limit), or close when it is
            # over the limit.
            if resp.status_code == 413:
                close = True
            else:
                try:
                    await request.get_data()
                except Exception:  # a broken body only means: close
                    close = True
        rid = getattr(g, "request_id", None)
        # A preflight's answer has its own CORS headers (pipeline.preflight).
        cors_from: auth.RequestHeaders = {} if getattr(g, "preflight", False) else request.headers
        for k, v in pipeline.answer_headers(rid, cors_from, close=close):
            resp.headers[k] = v
        rule = request.url_rule.rule if request.url_rule is not None else None
        # The scatter reads (routes_search.py) report how many node calls they made.
        fanout = g.fanout[0] if request.blueprint == "search" and hasattr(g, "fanout") else None
        pipeline.log_request(rid, request.method, request.path, rule, resp.status_code, getattr(g, "started", None), fanout)
        return resp

    for name in ROUTE_MODULES:
        app.register_blueprint(importlib.import_module(name).bp)
    return app
