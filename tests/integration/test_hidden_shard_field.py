"""Issue 20 point 8: the hidden `_miroir_shard` field is not the client's.

Every document on the nodes carries `_miroir_shard` (filterable on every node, for
Miroir's own sub-queries). A client naming it in a filter, sort, facet, facet search,
distinct or setting gets the error Meilisearch gives for an attribute that is not
filterable (or sortable), or `miroir_reserved_field` for settings; `facets: ["*"]` does
not list it; a delete-by-filter on it fails as its task and deletes nothing. The open
`/_miroir/ready` answer names no index. Real processes: devnodes + Miroir, real HTTP on
loopback, one node SIGKILLed for the readiness check.
"""

from __future__ import annotations

import httpx
import pytest

from tests.support.chaos_helpers import FAST_HEALTH, wait_until
from tests.support.devnodes import wait_task
from tests.support.miroir_proc import start_cluster

pytestmark = pytest.mark.timeout(120)

KEY = "a-master-key-for-the-hidden-field-test"
INDEX = "books"
N_DOCS = 200
GENRES = ["sf", "poetry", "crime", "history"]
NOT_FILTERABLE = (
    "Attribute `_miroir_shard` is not filterable. Available filterable attribute patterns are: `genre`.\n"
    "1:14 _miroir_shard = 1"
)
# A search's: 1.50 names the index, and its position line points into the filter it
# re-serializes (every token quoted, AND's operands in parentheses).
SEARCH_NOT_FILTERABLE = (
    f"Index `{INDEX}`: Attribute `_miroir_shard` is not filterable. Available filterable attribute patterns are: "
    '`genre`.\n2:15 "_miroir_shard" = "1"'
)


def _docs() -> list[dict]:
    return [{"id": i, "title": f"book {i}", "genre": GENRES[i % 4], "year": 1900 + i} for i in range(N_DOCS)]


def _ok(c, h: httpx.Client, r: httpx.Response) -> dict:
    assert r.status_code == 202, r.text
    return wait_task(c.url, r.json()["taskUid"], key=KEY, timeout=60)


# Every check is counted and the failures listed at the end (the old code failed most).
PROBLEMS: list[str] = []
CHECKS = [0]


def _check(ok: bool, what: str) -> None:
    CHECKS[0] += 1
    if not ok:
        PROBLEMS.append(what)


def _refused(r: httpx.Response, code: str, message: str | None = None, status: int = 400) -> None:
    body = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
    good = (
        r.status_code == status
        and body.get("code") == code
        and body.get("type") == "invalid_request"
        and body.get("link", "").endswith(code)
        and (message is None or body.get("message") == message)
    )
    _check(good, f"{r.request.method} {r.request.url.path} {r.request.content[:80]!r}: {r.status_code} {r.text[:200]}")


def _settle(h: httpx.Client) -> None:
    wait_until(
        lambda: h.get("/tasks", params={"statuses": "enqueued,processing"}).json()["total"] == 0, what="tasks done"
    )


def _count(h: httpx.Client) -> int:
    r = h.post(f"/indexes/{INDEX}/documents/fetch", json={"limit": 0})
    assert r.status_code == 200, r.text
    return r.json()["total"]


def test_hidden_shard_field_is_refused_everywhere():
    with start_cluster(nodes=2, rf=1, shards=4, master_key=KEY, extra=FAST_HEALTH) as c:
        h = httpx.Client(base_url=c.url, timeout=30, headers={"Authorization": f"Bearer {KEY}"})
        assert _ok(c, h, h.post("/indexes", json={"uid": INDEX, "primaryKey": "id"}))["status"] == "succeeded"
        settings = {"filterableAttributes": ["genre"], "sortableAttributes": ["year"]}
        assert _ok(c, h, h.patch(f"/indexes/{INDEX}/settings", json=settings))["status"] == "succeeded"
        assert _ok(c, h, h.post(f"/indexes/{INDEX}/documents", json=_docs()))["status"] == "succeeded"
        before = h.get(f"/indexes/{INDEX}/settings").json()

        # Settings: every attribute list, the distinct attribute, custom ranking rules.
        reserved_settings = [
            {"filterableAttributes": ["genre", "_miroir_shard"]},
            {"filterableAttributes": [{"attributePatterns": ["_miroir_*"]}]},
            {"sortableAttributes": ["_miroir_shard"]},
            {"searchableAttributes": ["title", "_miroir_shard"]},
            {"displayedAttributes": ["_miroir_shard"]},
            {"distinctAttribute": "_miroir_shard"},
            {"rankingRules": ["words", "_miroir_shard:desc"]},
            {"typoTolerance": {"disableOnAttributes": ["_miroir_shard"]}},
            {"faceting": {"sortFacetValuesBy": {"_miroir_shard": "count"}}},
        ]
        for body in reserved_settings:
            _refused(h.patch(f"/indexes/{INDEX}/settings", json=body), "miroir_reserved_field")
        _refused(
            h.put(f"/indexes/{INDEX}/settings/distinct-attribute", json="_miroir_shard"),
            "miroir_reserved_field",
            "Invalid value: attribute `_miroir_shard` is reserved by Miroir (attributes starting with `_miroir_` "
            "cannot be used in settings).",
        )
        _refused(h.put(f"/indexes/{INDEX}/settings/filterable-attributes", json=["_miroir_shard"]), "miroir_reserved_field")
        _refused(h.put(f"/indexes/{INDEX}/settings/ranking-rules", json=["_miroir_shard:asc"]), "miroir_reserved_field")
        _refused(h.post("/indexes", json={"uid": "other", "primaryKey": "_miroir_shard"}), "miroir_reserved_field")
        _refused(h.patch(f"/indexes/{INDEX}", json={"primaryKey": "_miroir_shard"}), "miroir_reserved_field")
        _settle(h)  # whatever was accepted is applied before the settings are compared
        _check(h.get(f"/indexes/{INDEX}/settings").json() == before, "settings changed")

        # Filters: search (POST, GET), multi-search, facet search, document fetch and listing.
        search = f"/indexes/{INDEX}/search"
        _refused(h.post(search, json={"filter": "_miroir_shard = 1"}), "invalid_search_filter", SEARCH_NOT_FILTERABLE)
        _refused(h.get(search, params={"filter": "_miroir_shard = 1"}), "invalid_search_filter", SEARCH_NOT_FILTERABLE)
        _refused(
            h.post(search, json={"filter": ["genre = sf", ["_miroir_shard = 1"]]}),
            "invalid_search_filter",
            SEARCH_NOT_FILTERABLE.replace('2:15 "_miroir_shard" = "1"', '24:37 ("genre" = "sf") AND ("_miroir_shard" = "1")'),
        )
        _refused(
            h.post("/multi-search", json={"queries": [{"indexUid": INDEX, "filter": "_miroir_shard = 1"}]}),
            "invalid_search_filter", "Inside `.queries[0]`: " + SEARCH_NOT_FILTERABLE,
        )
        _refused(
            h.post(f"/indexes/{INDEX}/facet-search", json={"facetName": "genre", "filter": "_miroir_shard = 1"}),
            "invalid_search_filter", NOT_FILTERABLE,
        )
        _refused(h.post(f"/indexes/{INDEX}/documents/fetch", json={"filter": "_miroir_shard = 1"}), "invalid_document_filter", NOT_FILTERABLE)
        _refused(h.get(f"/indexes/{INDEX}/documents", params={"filter": "_miroir_shard = 1"}), "invalid_document_filter", NOT_FILTERABLE)
        # An attribute that really is not filterable gets the same code from the nodes.
        _refused(h.post(search, json={"filter": "title = x"}), "invalid_search_filter")

        # Facets, facet search, distinct, sort.
        r = h.post(search, json={"q": "", "facets": ["*"], "limit": 0})
        assert r.status_code == 200, r.text
        _check(set(r.json()["facetDistribution"]) == {"genre"}, f"facets [*]: {r.json()['facetDistribution']}")
        _check("_miroir_shard" not in (r.json().get("facetStats") or {}), "facetStats")
        _check(sum(r.json()["facetDistribution"].get("genre", {}).values()) == N_DOCS, "genre facet")
        r = h.post("/multi-search", json={"federation": {"facetsByIndex": {INDEX: ["*"]}}, "queries": [{"indexUid": INDEX}]})
        assert r.status_code == 200, r.text
        distribution = r.json()["facetsByIndex"][INDEX]["distribution"]
        _check(set(distribution) == {"genre"}, f"federated facets [*]: {distribution}")
        _refused(
            h.post(search, json={"facets": ["_miroir_shard"]}),
            "invalid_search_facets",
            "Invalid facet distribution: Pattern `_miroir_shard` is not filterable. Available filterable attributes "
            "patterns are: `genre`.",
        )
        _refused(
            h.post(f"/indexes/{INDEX}/facet-search", json={"facetName": "_miroir_shard"}),
            "invalid_facet_search_facet_name",
            "Attribute `_miroir_shard` is not facet-searchable. Available facet-searchable attributes patterns are: "
            "`genre`. To make it facet-searchable add it to the `filterableAttributes` index settings.",
        )
        _refused(
            h.post(search, json={"distinct": "_miroir_shard"}),
            "invalid_search_distinct",
            f"Index `{INDEX}`: Attribute `_miroir_shard` is not filterable and thus, cannot be used as distinct "
            "attribute. Available filterable attributes patterns are: `genre`.",
        )
        _refused(
            h.post(search, json={"sort": ["_miroir_shard:asc"]}),
            "invalid_search_sort",
            f"Index `{INDEX}`: Attribute `_miroir_shard` is not sortable. Available sortable attributes are: `year`.",
        )

        # Delete-by-filter: its task fails as Meilisearch's does, and deletes nothing.
        task = _ok(c, h, h.post(f"/indexes/{INDEX}/documents/delete", json={"filter": "_miroir_shard = 1"}))
        _check(task["status"] == "failed" and task["details"]["deletedDocuments"] == 0, f"delete by filter: {task}")
        _check(
            (task.get("error") or {}).get("code") == "invalid_document_filter"
            and task["error"]["message"] == f"Index `{INDEX}`: " + NOT_FILTERABLE,
            f"delete by filter error: {task.get('error')}",
        )
        left = _count(h)
        _check(left == N_DOCS, f"delete by filter: {N_DOCS - left} documents deleted")

        # Miroir's own sub-queries still use the field: filtered reads, listing, deletes work
        # (checked once the client could not change the settings: the old code let it).
        if not PROBLEMS:
            listed = h.get(f"/indexes/{INDEX}/documents", params={"limit": 1000, "fields": "id,genre"}).json()["results"]
            assert len({d["id"] for d in listed}) == left
            r = h.post(search, json={"filter": "genre = sf", "limit": 0})
            assert r.status_code == 200, r.text
            assert r.json()["estimatedTotalHits"] == sum(d.get("genre") == "sf" for d in listed), r.text
            poetry = sum(d.get("genre") == "poetry" for d in listed)
            assert _ok(c, h, h.post(f"/indexes/{INDEX}/documents/delete", json={"filter": "genre = poetry"}))["status"] == "succeeded"
            assert _count(h) == left - poetry

        # The open readiness answer names no index; the admin's does.
        c.node("n2").kill()
        open_ready = wait_until(
            lambda: (r := httpx.get(c.url + "/_miroir/ready", timeout=10)).status_code == 503 and r, what="not ready"
        )
        assert open_ready.json()["code"] == "miroir_not_ready", open_ready.text
        _check(INDEX not in open_ready.text, f"open ready: {open_ready.text}")
        admin = h.get("/_miroir/ready")
        assert admin.status_code == 503 and f"`{INDEX}` shards" in admin.json()["message"], admin.text
        print(f"\nopen /_miroir/ready: {open_ready.json()['message']!r}; admin: {admin.json()['message']!r}")
        print(f"{CHECKS[0] - len(PROBLEMS)}/{CHECKS[0]} checks passed")
        assert not PROBLEMS, f"{len(PROBLEMS)}/{CHECKS[0]} checks failed:\n" + "\n".join(PROBLEMS)


# --- the pure decisions (core/reserved.py, core/settings.py) -----------------------------


def test_filter_refusal_follows_meilisearch_order_and_positions():
    from miroir.core import reserved

    # Quoted, escaped, in the array form: found with its own position.
    e = reserved.filter_error('genre = a AND "_miroir_shard" IN [1, 2]', ["genre"])
    assert e.code == "invalid_search_filter"
    assert e.message.endswith('\n16:29 genre = a AND "_miroir_shard" IN [1, 2]'), e.message
    e = reserved.filter_error('"_mir\\x6Fir_shard" = 1', ["*"], "invalid_document_filter")
    assert e.code == "invalid_document_filter" and "Attribute `_miroir_shard` is not filterable" in e.message
    assert "patterns are: `*`." in e.message  # `*` does not make it filterable
    e = reserved.filter_error(["genre = a", ["x = 1", "_miroir_shard EXISTS"]], ["x", "genre"])
    assert e.message == (
        "Attribute `_miroir_shard` is not filterable. Available filterable attribute patterns are: `genre`, `x`.\n"
        "1:14 _miroir_shard EXISTS"
    )
    e = reserved.filter_error("_miroir_shard EXISTS", [])
    assert e.message.startswith("Attribute `_miroir_shard` is not filterable. This index does not have configured")
    # A non-filterable attribute before it: the nodes' own error comes first.
    assert reserved.filter_error("nope = 1 AND _miroir_shard = 1", ["genre"]) is None
    assert reserved.filter_error("genre = _miroir_shard", ["genre"]) is None  # a value, not an attribute
    assert reserved.filter_error("genre = ", ["genre"]) is None  # syntax: the nodes word it


def test_settings_naming_hidden_fields_are_refused_before_any_node():
    from miroir.core import settings
    from miroir.core.errors import MeiliError

    for body in (
        {"localizedAttributes": [{"attributePatterns": ["_miroir_shard"], "locales": ["fra"]}]},
        {"filterableAttributes": ["genre", {"attributePatterns": ["a", "_miroir_x"]}]},
    ):
        with pytest.raises(MeiliError) as e:
            settings.decode_settings(body)
        assert e.value.code == "miroir_reserved_field"
    with pytest.raises(MeiliError) as e:
        settings.decode_sub_route("typo-tolerance", {"disableOnAttributes": ["_miroir_shard"]})
    assert "at `.disableOnAttributes[0]`" in e.value.message
    assert settings.decode_settings({"filterableAttributes": ["*"], "rankingRules": ["year:desc"]})
