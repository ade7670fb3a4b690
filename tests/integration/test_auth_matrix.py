"""Every route × every kind of credential -> Meilisearch 1.50's status and error code.

A real Miroir (over 2 devnodes) with a master key and a Miroir admin key. Columns: no
key, a wrong key, an expired key (`*` on `*`), the default search key, a key with `*`
on another index only, the default admin key, the master key, a tenant token (signed
with the default search key, rules `["products"]`), Miroir's admin key. Each cell is
either ("ok": the answer the master key gets on the same route, not an auth error) or
the (status, code[, message]) 1.50 answers. Routes that change state act on a target
named after the column (`{k}`), so every column meets the same state.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from typing import Any

import httpx
import jwt
import pytest

from tests.support.miroir_proc import start_cluster

MASTER = "matrix-master-key-0123456789"
ADMIN = "matrix-miroir-admin-key-0123"
COLUMNS = ("none", "wrong", "expired", "search", "other_index", "admin", "master", "tenant", "miroir_admin")

OK = "ok"
NO_HEADER = (401, "missing_authorization_header", "The Authorization header is missing. It must use the bearer authorization method.")
INVALID = (403, "invalid_api_key", "The provided API key is invalid.")


def _other(index: str) -> tuple:
    return (403, "invalid_api_key", f'The API key cannot acces the index `{index}`, authorized indexes are ["sales"].')


def _query(i: int) -> tuple:
    return (403, "invalid_api_key", f"Inside `.queries[{i}]`: The provided API key is invalid.")


# kind: "search" routes take tenant tokens; "index" routes on `products`; "global" routes
# deny index-scoped keys; "listed" routes filter what an index-scoped key sees.
# (method, path, json body, kind, override cells)
ROUTES: list[tuple[str, str, Any, str, dict[str, Any]]] = [
    ("GET", "/health", None, "open", {}),
    ("GET", "/version", None, "global", {}),
    ("GET", "/stats", None, "listed", {}),
    ("GET", "/indexes", None, "listed", {}),
    ("POST", "/indexes", {"uid": "created_{k}"}, "listed", {"other_index": INVALID}),
    ("GET", "/indexes/products", None, "index", {}),
    ("PATCH", "/indexes/gone_{k}", {"primaryKey": "id"}, "index", {}),
    ("DELETE", "/indexes/gone_{k}", None, "index", {}),
    ("GET", "/indexes/products/stats", None, "index", {}),
    ("POST", "/swap-indexes", [{"indexes": ["swap_a_{k}", "swap_b_{k}"]}], "listed", {"other_index": INVALID}),
    ("GET", "/indexes/products/search?q=a", None, "search", {}),
    ("POST", "/indexes/products/search", {"q": "a"}, "search", {}),
    ("POST", "/indexes/products/facet-search", {"facetName": "section"}, "search", {}),
    ("POST", "/multi-search", {"queries": [{"indexUid": "products", "q": "a"}]}, "search", {"other_index": _query(0)}),
    (
        "POST",
        "/multi-search",
        {"federation": {}, "queries": [{"indexUid": "products"}, {"indexUid": "sales"}]},
        "search",
        {"other_index": _query(0), "tenant": _query(1)},
    ),
    ("GET", "/indexes/products/documents", None, "index", {}),
    ("POST", "/indexes/products/documents/fetch", {}, "index", {}),
    ("GET", "/indexes/products/documents/1", None, "index", {}),
    ("POST", "/indexes/gone_{k}/documents", [{"id": 1}], "index", {}),
    ("PUT", "/indexes/gone_{k}/documents", [{"id": 1}], "index", {}),
    ("DELETE", "/indexes/gone_{k}/documents", None, "index", {}),
    ("DELETE", "/indexes/gone_{k}/documents/1", None, "index", {}),
    ("POST", "/indexes/gone_{k}/documents/delete-batch", [1], "index", {}),
    ("POST", "/indexes/gone_{k}/documents/delete", {"filter": "id = 1"}, "index", {}),
    ("GET", "/indexes/products/settings", None, "index", {}),
    ("PATCH", "/indexes/gone_{k}/settings", {"rankingRules": ["words"]}, "index", {}),
    ("DELETE", "/indexes/gone_{k}/settings", None, "index", {}),
    ("GET", "/indexes/products/settings/ranking-rules", None, "index", {}),
    ("PUT", "/indexes/gone_{k}/settings/ranking-rules", ["words"], "index", {}),
    ("PATCH", "/indexes/gone_{k}/settings/typo-tolerance", {"enabled": True}, "index", {}),
    ("DELETE", "/indexes/gone_{k}/settings/stop-words", None, "index", {}),
    ("GET", "/tasks", None, "listed", {}),
    ("GET", "/tasks/{products_task}", None, "listed", {"other_index": (404, "task_not_found")}),
    ("POST", "/tasks/cancel?uids=999999", None, "listed", {}),
    ("DELETE", "/tasks?uids=999999", None, "listed", {}),
    ("GET", "/keys", None, "keys", {}),
    ("POST", "/keys", {"actions": ["search"], "indexes": ["*"], "expiresAt": None}, "keys", {}),
    ("GET", "/keys/{throwaway}", None, "keys", {}),
    ("PATCH", "/keys/{throwaway}", {"name": "renamed"}, "keys", {}),
    ("DELETE", "/keys/{throwaway}", None, "keys", {}),
    ("GET", "/_miroir/topology", None, "miroir", {}),
    ("GET", "/_miroir/rebalance", None, "miroir", {}),
]


def expected(kind: str, column: str, index: str | None) -> Any:
    """Meilisearch 1.50's decision for a route kind and a credential."""
    if kind == "open":
        return OK
    if kind == "miroir":  # Miroir's admin routes: its admin key only
        return {
            "none": NO_HEADER,
            "miroir_admin": OK,
            "master": (403, "miroir_admin_key_required"),
        }.get(column, (403, "invalid_api_key"))
    if column == "none":
        return NO_HEADER
    if column in ("wrong", "expired", "miroir_admin"):
        return INVALID
    if column in ("master", "admin"):
        return OK
    if column == "search":
        return OK if kind == "search" else INVALID
    if column == "tenant":
        return OK if kind == "search" else INVALID
    assert column == "other_index"  # `*` on `sales` only
    if kind in ("global", "keys"):
        return INVALID  # global actions need a key on every index
    if kind == "listed":
        return OK  # the handler narrows the answer
    return _other(index or "products")


def _index_of(path: str) -> str | None:
    if path.startswith("/indexes/"):
        return path.split("/")[2].split("?")[0]
    return None


@pytest.fixture(scope="module")
def matrix_env():
    with start_cluster(nodes=2, shards=4, master_key=MASTER, extra={"auth": {"admin_key": ADMIN}}) as c:
        m = {"Authorization": f"Bearer {MASTER}"}
        with httpx.Client(base_url=c.url, timeout=30) as h:
            t = h.post("/indexes/products/documents", headers=m, json=[{"id": 1, "title": "a b", "section": "web"}]).json()
            products_task = t["taskUid"]
            h.post("/indexes/sales/documents", headers=m, json=[{"id": 1, "title": "a"}])
            _wait(h, m, products_task)
            _wait(h, m, h.patch("/indexes/products/settings", headers=m, json={"filterableAttributes": ["section"]}).json()["taskUid"])
            keys = {k["name"]: k for k in h.get("/keys", headers=m).json()["results"]}
            search, admin = keys["Default Search API Key"], keys["Default Admin API Key"]
            expired = _expiring_key(h, m)
            other = h.post("/keys", headers=m, json={"actions": ["*"], "indexes": ["sales"], "expiresAt": None}).json()
            token = jwt.encode({"apiKeyUid": search["uid"], "searchRules": ["products"], "exp": None}, search["key"], "HS256")
            creds = {
                "none": None,
                "wrong": "not-a-key",
                "expired": expired["key"],
                "search": search["key"],
                "other_index": other["key"],
                "admin": admin["key"],
                "master": MASTER,
                "tenant": token,
                "miroir_admin": ADMIN,
            }
            throwaway = {
                col: h.post("/keys", headers=m, json={"actions": ["search"], "indexes": ["*"], "expiresAt": None}).json()["uid"]
                for col in COLUMNS
            }
            deadline = time.monotonic() + 10
            while h.get("/version", headers={"Authorization": f"Bearer {expired['key']}"}).status_code != 403:
                assert time.monotonic() < deadline, "the expiring key never expired"
                time.sleep(0.1)
            yield h, creds, {"products_task": products_task, "throwaway": throwaway}


def _expiring_key(h: httpx.Client, m: dict) -> dict:
    """A key expiring 1.5 s from now. A date already past when the request is read is
    refused (`invalid_api_key_expires_at`): on a machine that slow, ask again."""
    for _ in range(10):
        soon = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1.5)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        r = h.post("/keys", headers=m, json={"actions": ["*"], "indexes": ["*"], "expiresAt": soon})
        if r.status_code != 400 or r.json()["code"] != "invalid_api_key_expires_at":
            break
    assert r.status_code == 201, r.text
    return r.json()


def _wait(h: httpx.Client, m: dict, uid: int) -> None:
    deadline = time.monotonic() + 30
    while h.get(f"/tasks/{uid}", headers=m).json()["status"] in ("enqueued", "processing"):
        assert time.monotonic() < deadline
        time.sleep(0.05)


def _send(h: httpx.Client, method: str, path: str, body: Any, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return h.request(method, path, headers=headers, json=body) if body is not None else h.request(method, path, headers=headers)


def _fill(value: Any, column: str, extra: dict) -> Any:
    if isinstance(value, str):
        return value.format(k=column, products_task=extra["products_task"], throwaway=extra["throwaway"][column])
    if isinstance(value, list):
        return [_fill(v, column, extra) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, column, extra) for k, v in value.items()}
    return value


def test_every_route_every_credential(matrix_env):
    h, creds, extra = matrix_env
    failures = []
    cells = 0
    for method, path, body, kind, overrides in ROUTES:
        master_status = None
        # The master key first: "ok" cells must give its answer on the same route.
        for column in ("master", *[c for c in COLUMNS if c != "master"]):
            p, b = _fill(path, column, extra), _fill(body, column, extra)
            want = overrides.get(column, expected(kind, column, _index_of(p)))
            r = _send(h, method, p, b, creds[column])
            cells += 1
            got = (r.status_code, r.json().get("code") if r.content and r.status_code >= 400 else None)
            if column == "master":
                master_status = r.status_code
            if want == OK:
                ok_status = master_status if kind != "miroir" else (200 if method == "GET" else None)
                if r.status_code in (401, 403) or (ok_status is not None and r.status_code != ok_status):
                    failures.append(f"{method} {p} [{column}]: {got} {r.text[:200]}, want the master's {ok_status}")
            else:
                if got != (want[0], want[1]):
                    failures.append(f"{method} {p} [{column}]: {got} {r.text[:200]}, want {want[:2]}")
                elif len(want) > 2 and r.json()["message"] != want[2]:
                    failures.append(f"{method} {p} [{column}]: message {r.json()['message']!r}, want {want[2]!r}")
    assert not failures, f"{len(failures)} of {cells} cells:\n" + "\n".join(failures)
    assert cells == len(ROUTES) * len(COLUMNS)


def test_listed_routes_show_only_the_keys_indexes(matrix_env):
    h, creds, _ = matrix_env
    other = {"Authorization": f"Bearer {creds['other_index']}"}
    assert [i["uid"] for i in h.get("/indexes", headers=other).json()["results"]] == ["sales"]
    assert set(h.get("/stats", headers=other).json()["indexes"]) == {"sales"}
    tasks = h.get("/tasks?limit=1000", headers=other).json()["results"]
    assert tasks and {t["indexUid"] for t in tasks} == {"sales"}
    master = {"Authorization": f"Bearer {MASTER}"}
    assert {"products", "sales"} <= {i["uid"] for i in h.get("/indexes", headers=master).json()["results"]}


def test_bad_authorization_headers(matrix_env):
    h, creds, _ = matrix_env
    for header, want in (
        ("Basic abc", NO_HEADER),
        ("bearer " + MASTER, NO_HEADER),  # the scheme is case-sensitive in Meilisearch
        ("Bearer", INVALID),
    ):
        r = h.get("/version", headers={"Authorization": header})
        assert (r.status_code, r.json()["code"], r.json()["message"]) == want, header
    # A JWT on a route that is not a search is just a wrong API key.
    r = h.get("/indexes/products/documents", headers={"Authorization": f"Bearer {creds['tenant']}"})
    assert (r.status_code, r.json()["message"]) == (403, "The provided API key is invalid.")


def test_tenant_token_errors(matrix_env):
    h, creds, _ = matrix_env
    search_uid = jwt.decode(creds["tenant"], options={"verify_signature": False})["apiKeyUid"]

    def ask(token: str, index: str = "products") -> tuple[int, str]:
        r = h.post(f"/indexes/{index}/search", headers={"Authorization": f"Bearer {token}"}, json={})
        return r.status_code, r.json().get("message")

    assert ask(jwt.encode({"tamo": "kefir"}, "tamo-" * 8, "HS256")) == (
        403, "Could not decode tenant token, JSON error: missing field `searchRules` at line 1 column 16.")
    assert ask(jwt.encode({"searchRules": ["products"], "apiKeyUid": search_uid}, "wrong-secret-" * 4, "HS256")) == (
        403, "Could not decode tenant token, InvalidSignature.")
    past = int(time.time()) - 10
    status, message = ask(jwt.encode({"searchRules": ["products"], "apiKeyUid": search_uid, "exp": past}, creds["search"], "HS512"))
    assert status == 403 and message.startswith(f"Tenant token expired. Was valid up to `{past}`")
    assert ask(creds["tenant"], "sales") == (
        403, 'The provided tenant token cannot acces the index `sales`, allowed indexes are ["products"].')
    for alg in ("HS256", "HS384", "HS512"):
        token = jwt.encode({"searchRules": {"*": None}, "apiKeyUid": search_uid, "exp": None}, creds["search"], alg)
        assert ask(token)[0] == 200, alg
    unknown = str(uuid.uuid4())
    assert ask(jwt.encode({"searchRules": ["*"], "apiKeyUid": unknown}, "x" * 32, "HS256"))[0] == 403


def test_cors_preflight_on_every_route_without_a_key(matrix_env):
    h, _, extra = matrix_env
    for method, path, _, _, _ in ROUTES:
        p = _fill(path, "master", extra)
        r = h.options(p, headers={
            "Origin": "http://app.example",
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization, content-type, x-meilisearch-client",
        })
        assert r.status_code == 200, (method, p, r.status_code, r.text)
        assert r.headers["access-control-allow-origin"] == "*"
        assert method in r.headers["access-control-allow-methods"]
        assert r.headers["access-control-allow-headers"] == "authorization, content-type, x-meilisearch-client"
        assert r.headers["access-control-max-age"] == "86400"


def test_cors_headers_on_answers_of_both_paths(matrix_env):
    h, creds, _ = matrix_env
    origin = {"Origin": "http://app.example"}
    search = {"Authorization": f"Bearer {creds['search']}", **origin}
    # The search fast path (GET and POST /indexes/{uid}/search) and the Quart app, errors too.
    for r in (
        h.post("/indexes/products/search", headers=search, json={"q": "a"}),
        h.get("/indexes/products/search?q=a", headers=search),
        h.post("/multi-search", headers=search, json={"queries": [{"indexUid": "products"}]}),
        h.post("/indexes/products/search", headers=origin, json={}),
        h.get("/indexes", headers=origin),
        h.get("/health", headers=origin),
    ):
        assert r.headers.get("access-control-allow-origin") == "*", (r.request.url, r.status_code)
    assert "access-control-allow-origin" not in h.get("/health").headers  # no Origin: not a CORS request


def test_tenant_token_filter_in_every_sub_query(matrix_env):
    h, creds, _ = matrix_env
    search_uid = jwt.decode(creds["tenant"], options={"verify_signature": False})["apiKeyUid"]

    def token(rule: str) -> dict:
        t = jwt.encode({"apiKeyUid": search_uid, "searchRules": {"products": {"filter": rule}, "sales": None}, "exp": None}, creds["search"], "HS256")
        return {"Authorization": f"Bearer {t}"}

    for rule, expect in (("section = web", 1), ("section = nope", 0)):
        hdr = token(rule)
        assert len(h.post("/indexes/products/search", headers=hdr, json={"q": "a"}).json()["hits"]) == expect
        assert len(h.get("/indexes/products/search", headers=hdr).json()["hits"]) == expect  # the fast path's GET
        # The client's own filter is kept and ANDed with the rule.
        assert h.post("/indexes/products/search", headers=hdr, json={"filter": "section = other"}).json()["hits"] == []
        multi = h.post("/multi-search", headers=hdr, json={"queries": [{"indexUid": "products"}, {"indexUid": "products", "q": "b"}]}).json()
        assert [len(r["hits"]) for r in multi["results"]] == [expect, expect]
        fed = h.post("/multi-search", headers=hdr, json={"federation": {}, "queries": [{"indexUid": "products"}, {"indexUid": "sales"}]}).json()
        assert sorted(hit["_federation"]["indexUid"] for hit in fed["hits"]) == ["products"] * expect + ["sales"], fed
        facets = h.post("/indexes/products/facet-search", headers=hdr, json={"facetName": "section"}).json()["facetHits"]
        assert [f["value"] for f in facets] == (["web"] if expect else [])
