"""Who may call what: Meilisearch 1.50's API keys and tenant tokens, plus the admin key.

- No `auth.master_key`: the API is open (as Meilisearch without a master key), but the
  `/keys` routes are 401 `missing_master_key`.
- With it, each route needs the action `ROUTE_ACTIONS` gives it (`authorize`): the master
  key may do anything; an API key needs the action and, on a route under
  `/indexes/{uid}`, the index; a tenant token (a JWT signed with a search key) works on
  search routes only. A missing header is 401 `missing_authorization_header`, a wrong,
  expired or insufficient key 403 `invalid_api_key`, with Meilisearch's texts.
- Routes that name indexes elsewhere (multi-search queries, swaps, `/indexes`, `/stats`,
  `/tasks`) check them in the handler with the request's `Access` (`access()`).
- `/_miroir/*` (admin routes) need `auth.admin_key` when it is set, given as Bearer or in
  `X-Admin-Key`; else the master key. API keys never reach them.
- `/health` and `/_miroir/ready` are always open: load balancers and systemd probe them.
- CORS as Meilisearch (actix-cors: any origin, method and header, max age 24 h); a
  preflight is answered before any key is asked for (api/pipeline.py runs these checks
  for both front ends).

Keys are compared in constant time (or looked up by digest), and no key, token or
`Authorization` value goes into an error text or a log line.
"""

from __future__ import annotations

import hmac
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

from quart import g
from werkzeug.datastructures import Headers

from miroir.api.context import Miroir
from miroir.config import AuthConfig
from miroir.core import keys as core
from miroir.core.errors import MeiliError, journal_not_replayed
from miroir.core.model import MiroirState
from miroir.core.taskfold import task_view
from miroir.core.taskquery import TaskQuery
from miroir.engine.cluster import Cluster
from miroir.engine.keys import KeyRing, now_utc

# A request's headers as either front end holds them (names case-insensitive).
RequestHeaders = Mapping[str, str] | Headers
OPEN_PATHS = frozenset({"/health", "/_miroir/ready"})
ADMIN_PREFIX = "/_miroir/"
ALL = core.Access()

# (method, route rule with every `<param>` written `<>`) -> the action it needs.
# Every 1.50 route is listed, also those Miroir does not serve yet, so a route module
# added later is guarded as Meilisearch guards it; a rule not listed needs the master key.
ROUTE_ACTIONS: dict[tuple[str, str], str] = {
    ("GET", "/version"): "version",
    ("GET", "/stats"): "stats.get",
    ("GET", "/indexes/<>/stats"): "stats.get",
    ("GET", "/indexes"): "indexes.get",
    ("POST", "/indexes"): "indexes.create",
    ("GET", "/indexes/<>"): "indexes.get",
    ("PATCH", "/indexes/<>"): "indexes.update",
    ("DELETE", "/indexes/<>"): "indexes.delete",
    ("POST", "/swap-indexes"): "indexes.swap",
    ("POST", "/indexes/<>/compact"): "indexes.compact",
    ("POST", "/indexes/<>/fields"): "fields.post",
    ("GET", "/indexes/<>/search"): "search",
    ("POST", "/indexes/<>/search"): "search",
    ("POST", "/indexes/<>/facet-search"): "search",
    ("GET", "/indexes/<>/similar"): "search",
    ("POST", "/indexes/<>/similar"): "search",
    ("POST", "/multi-search"): "search",
    ("GET", "/indexes/<>/documents"): "documents.get",
    ("POST", "/indexes/<>/documents/fetch"): "documents.get",
    ("GET", "/indexes/<>/documents/<>"): "documents.get",
    ("POST", "/indexes/<>/documents"): "documents.add",
    ("PUT", "/indexes/<>/documents"): "documents.add",
    ("POST", "/indexes/<>/documents/edit"): "documents.add",
    ("DELETE", "/indexes/<>/documents"): "documents.delete",
    ("DELETE", "/indexes/<>/documents/<>"): "documents.delete",
    ("POST", "/indexes/<>/documents/delete-batch"): "documents.delete",
    ("POST", "/indexes/<>/documents/delete"): "documents.delete",
    ("GET", "/indexes/<>/settings"): "settings.get",
    ("PATCH", "/indexes/<>/settings"): "settings.update",
    ("DELETE", "/indexes/<>/settings"): "settings.update",
    ("GET", "/indexes/<>/settings/<>"): "settings.get",
    ("PUT", "/indexes/<>/settings/<>"): "settings.update",
    ("PATCH", "/indexes/<>/settings/<>"): "settings.update",
    ("DELETE", "/indexes/<>/settings/<>"): "settings.update",
    ("GET", "/tasks"): "tasks.get",
    ("GET", "/tasks/<>"): "tasks.get",
    ("POST", "/tasks/cancel"): "tasks.cancel",
    ("DELETE", "/tasks"): "tasks.delete",
    ("POST", "/tasks/compact"): "tasks.compact",
    ("GET", "/batches"): "tasks.get",
    ("GET", "/batches/<>"): "tasks.get",
    ("POST", "/dumps"): "dumps.create",
    ("POST", "/snapshots"): "snapshots.create",
    ("POST", "/export"): "export",
    ("GET", "/metrics"): "metrics.get",
    ("POST", "/logs/stream"): "metrics.get",
    ("DELETE", "/logs/stream"): "metrics.get",
    ("POST", "/logs/stderr"): "metrics.get",
    ("GET", "/experimental-features"): "experimental.get",
    ("PATCH", "/experimental-features"): "experimental.update",
    ("GET", "/network"): "network.get",
    ("PATCH", "/network"): "network.update",
    ("GET", "/webhooks"): "webhooks.get",
    ("POST", "/webhooks"): "webhooks.create",
    ("GET", "/webhooks/<>"): "webhooks.get",
    ("PATCH", "/webhooks/<>"): "webhooks.update",
    ("DELETE", "/webhooks/<>"): "webhooks.delete",
    ("POST", "/dynamic-search-rules"): "dynamicSearchRules.get",
    ("DELETE", "/dynamic-search-rules"): "dynamicSearchRules.delete",
    ("GET", "/dynamic-search-rules/<>"): "dynamicSearchRules.get",
    ("PATCH", "/dynamic-search-rules/<>"): "dynamicSearchRules.update",
    ("DELETE", "/dynamic-search-rules/<>"): "dynamicSearchRules.delete",
    ("POST", "/render-template"): "settings.get",
    ("GET", "/keys"): "keys.get",
    ("POST", "/keys"): "keys.create",
    ("GET", "/keys/<>"): "keys.get",
    ("PATCH", "/keys/<>"): "keys.update",
    ("DELETE", "/keys/<>"): "keys.delete",
}
# Actions a tenant token may be used for (Meilisearch: search and chat completions).
_TOKEN_ACTIONS = frozenset({"search", "chatCompletions"})
_PARAM = re.compile(r"<[^>]*>")


def route_key(method: str, rule: str) -> tuple[str, str]:
    return method, _PARAM.sub("<>", rule.rstrip("/") or "/")


def missing_authorization() -> MeiliError:
    return MeiliError(
        "missing_authorization_header",
        "The Authorization header is missing. It must use the bearer authorization method.",
    )


def invalid_api_key() -> MeiliError:
    return core.invalid_api_key()


def missing_master_key() -> MeiliError:
    return MeiliError(
        "missing_master_key",
        "Meilisearch is running without a master key. To access this API endpoint, you must have set a master key at launch.",
    )


def admin_key_required() -> MeiliError:
    return MeiliError("miroir_admin_key_required", "This route needs the Miroir admin key.")


def bearer_token(authorization: str | None) -> str | None:
    """The key of a `Bearer <key>` header (None: no header). Another scheme is Meilisearch's
    `missing_authorization_header`, `Bearer` alone its `invalid_api_key`."""
    if authorization is None:
        return None
    scheme, sep, token = authorization.partition(" ")
    if scheme != "Bearer":
        raise missing_authorization()
    if not sep:
        raise invalid_api_key()
    return token


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8", "surrogateescape"), b.encode("utf-8", "surrogateescape"))


def _admin(auth: AuthConfig, headers: RequestHeaders) -> None:
    """`/_miroir/*`: the admin key when one is set, else the master key."""
    if auth.admin_key is not None:
        raw = headers.get("Authorization")
        token = raw.partition(" ")[2] if raw and raw.startswith("Bearer ") else None
        candidates = [t for t in (headers.get("X-Admin-Key"), token) if t]
        if not candidates:
            raise missing_authorization()
        if any(_same(t, auth.admin_key) for t in candidates):
            return
        if auth.master_key is not None and any(_same(t, auth.master_key) for t in candidates):
            raise admin_key_required()
        raise invalid_api_key()
    if auth.master_key is None:
        return
    token = bearer_token(headers.get("Authorization"))
    if token is None:
        raise missing_authorization()
    if not _same(token, auth.master_key):
        raise invalid_api_key()


def is_admin(auth: AuthConfig, headers: RequestHeaders) -> bool:
    """Whether the request holds the rights of `/_miroir/*` (for open routes that tell
    the admin more than anyone else, as `/_miroir/ready` does)."""
    try:
        _admin(auth, headers)
    except MeiliError:
        return False
    return True


def authorize(
    auth: AuthConfig,
    ring: KeyRing,
    state: MiroirState | None,
    path: str,
    headers: RequestHeaders,
    action: str | None,
    index: str | None = None,
) -> core.Access:
    """The rights of this request, or raise the Meilisearch error that refuses it.

    `action` None: a route with no action (Miroir's own, or unknown): the master key only.
    `state` is the journal state holding the keys (None before the journal is replayed:
    only the master key works then).
    """
    if path in OPEN_PATHS:
        return ALL
    if path.startswith(ADMIN_PREFIX):
        _admin(auth, headers)
        return ALL
    master = auth.master_key
    if master is None:
        if action in core.KEYS_ACTIONS:
            raise missing_master_key()
        return ALL
    token = bearer_token(headers.get("Authorization"))
    if token is None:
        raise missing_authorization()
    if _same(token, master):
        return ALL
    if action is None:
        raise invalid_api_key()
    if state is None:  # the keys are in the journal, not replayed yet
        raise journal_not_replayed()
    rules = None
    key = None
    if action in _TOKEN_ACTIONS:
        uid = core.token_key_uid(token)
        if uid is not None:
            rules, _ = core.verify_tenant_token(token, core.derive_key(uid, master), int(time.time()))
            key = state.keys.get(uid)
            if key is None:
                raise invalid_api_key()
    if key is None:
        key = ring.find(state, token)
        if key is None:
            raise invalid_api_key()
    access = core.Access(key.indexes, rules)
    if index is not None:
        access.check_index(index)
    if action not in core.expand(key.actions) or core.is_expired(key, now_utc()):
        raise invalid_api_key()
    # A global action needs a key on every index; one the handler narrows, a key on
    # some index (`indexes: []` grants nothing, as in Meilisearch).
    if index is None and access.indexes is not None and (action not in core.HANDLER_CHECKED or not access.indexes):
        raise invalid_api_key()
    return access


def access() -> core.Access:
    """The rights of the current Quart request (set by app.py's `_begin` hook, api/pipeline.py)."""
    return getattr(g, "access", ALL)


def visible_indexes(names: Any) -> list:
    """`names` narrowed to the indexes the current request may see."""
    a = access()
    return list(names) if a.all_indexes else [n for n in names if a.allows(n)]


def check_indexes(names: Any) -> None:
    """Each index named in the body must be allowed (swaps: both indexes)."""
    a = access()
    if a.all_indexes:
        return
    for name in names:
        if isinstance(name, str) and not a.allows(name):
            raise invalid_api_key()


def visible_page(listing: Callable[[int, int], dict[str, Any]], offset: int, limit: int) -> dict[str, Any]:
    """`GET /indexes`: `listing(offset, limit)`'s page, counting only the visible indexes."""
    a = access()
    if a.all_indexes:
        return listing(offset, limit)
    full = listing(0, 2**63)
    shown = [r for r in full["results"] if a.allows(r["uid"])]
    return {**full, "results": shown[offset : offset + limit], "offset": offset, "limit": limit, "total": len(shown)}


def visible_stats(stats: dict[str, Any]) -> dict[str, Any]:
    """`GET /stats`: only the visible indexes are listed (Meilisearch's rule)."""
    a = access()
    if a.all_indexes:
        return stats
    return {**stats, "indexes": {uid: s for uid, s in stats.get("indexes", {}).items() if a.allows(uid)}}


def task_visible(a: core.Access, task: Mapping[str, Any]) -> bool:
    """Meilisearch: a key limited to some indexes sees only the tasks of exactly one of
    them (swaps, dumps, task cancelations and deletions are left out)."""
    if a.all_indexes:
        return True
    uid = task.get("indexUid")
    return uid is not None and task.get("type") != "indexSwap" and a.allows(uid)


def visible_tasks(query: TaskQuery, cluster: Cluster) -> TaskQuery:
    """A task query narrowed to the tasks the current request may see (list, cancel,
    delete all go through it)."""
    a = access()
    if a.all_indexes:
        return query
    seen = frozenset(uid for uid, t in cluster.state.tasks.items() if task_visible(a, task_view(t)))
    query.uids = seen if query.uids is None else query.uids & seen
    return query


def visible_task(task: dict[str, Any]) -> dict[str, Any]:
    """`GET /tasks/{uid}`: a task the key may not see does not exist for it."""
    if not task_visible(access(), task):
        raise MeiliError("task_not_found", f"Task `{task['uid']}` not found.")
    return task


def facet_search_body(index: str, body: Any) -> Any:
    """A facet search's body with the tenant token's rule ANDed into its filter."""
    rule = access().rule_filter(index)
    if rule is not None and isinstance(body, dict):
        body = {**body, "filter": core.fuse_filters(body.get("filter"), rule)}
    return body


def multi_search_body(body: Any) -> Any:
    """Every query of a multi-search (federated or not) checked against the key, with the
    tenant token's rule ANDed into its filter (Meilisearch's multi_search route)."""
    a = access()
    if a.all_indexes and not isinstance(a.rules, dict):
        return body
    queries = body.get("queries") if isinstance(body, dict) else None
    if not isinstance(queries, list):
        return body  # the engine reports the shape error
    for i, q in enumerate(queries):
        if not isinstance(q, dict) or not isinstance(q.get("indexUid"), str):
            continue
        index = q["indexUid"]
        if not a.allows(index):
            err = invalid_api_key()
            err.message = f"Inside `.queries[{i}]`: {err.message}"
            raise err
        rule = a.rule_filter(index)
        if rule is not None:
            q["filter"] = core.fuse_filters(q.get("filter"), rule)
    return body


# --- CORS ------------------------------------------------------------------------------

CORS_MAX_AGE = "86400"  # Meilisearch's 24 h
_ANY_METHODS = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"


def is_preflight(method: str, headers: RequestHeaders) -> bool:
    return method == "OPTIONS" and headers.get("Access-Control-Request-Method") is not None


def preflight_headers(headers: RequestHeaders) -> list[tuple[str, str]]:
    """actix-cors's answer with any origin, method and header allowed (`send_wildcard`)."""
    out = [
        ("access-control-allow-origin", "*"),
        ("access-control-allow-methods", headers.get("Access-Control-Request-Method") or _ANY_METHODS),
        ("access-control-max-age", CORS_MAX_AGE),
        ("vary", "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"),
    ]
    asked = headers.get("Access-Control-Request-Headers")
    if asked:
        out.append(("access-control-allow-headers", asked))
    return out


def cors_headers(headers: RequestHeaders) -> list[tuple[str, str]]:
    """Headers for an actual cross-origin request's answer (errors included)."""
    if headers.get("Origin") is None:
        return []
    return [("access-control-allow-origin", "*"), ("vary", "Origin")]


def redact_path(path: str) -> str:
    """The path as logged: `/keys/{key}` may carry a key's value."""
    if path.startswith("/keys/"):
        return "/keys/[redacted]"
    return path


def key_state(ctx: Miroir) -> MiroirState | None:
    """The journal state holding the keys, once the journal writer runs (before that
    only the master key is accepted)."""
    journal = ctx.journal
    return journal.state if journal is not None else None

