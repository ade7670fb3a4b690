"""The devnode's HTTP API through raw HTTP: shapes, status codes, error codes, tasks."""

from __future__ import annotations

import gzip

import httpx
import pytest
import trio

from miroir.core import taskquery
from miroir.devnode import tasks as t
from miroir.devnode.engine import default_settings
from tests.support.devnodes import start_devnodes, wait_task

ERROR_KEYS = {"message", "code", "type", "link"}
TASK_KEYS = [
    "uid", "batchUid", "indexUid", "status", "type", "canceledBy", "details", "error", "duration",
    "enqueuedAt", "startedAt", "finishedAt",
]


@pytest.fixture(scope="module")
def client(devnode):
    with httpx.Client(base_url=devnode.url, timeout=10.0) as c:
        yield c


def err(r: httpx.Response, status: int, code: str) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == ERROR_KEYS and body["code"] == code, body
    assert body["link"] == f"https://docs.meilisearch.com/errors#{code}"
    return body


def write(client, method: str, path: str, status: int = 202, **kw) -> dict:
    """Send a write, check the summarized task, wait for it to finish."""
    r = client.request(method, path, **kw)
    assert r.status_code == status, r.text
    summary = r.json()
    assert list(summary) == ["taskUid", "indexUid", "status", "type", "enqueuedAt"]
    assert summary["status"] == "enqueued"
    return wait_task(str(client.base_url), summary["taskUid"])


def ok(task: dict) -> dict:
    assert task["status"] == "succeeded", task
    return task


def load(client, uid: str, docs: list[dict], settings: dict | None = None) -> None:
    if settings:
        ok(write(client, "PATCH", f"/indexes/{uid}/settings", json=settings))
    ok(write(client, "POST", f"/indexes/{uid}/documents", json=docs))


MOVIES = [
    {"id": 1, "title": "Carol", "genre": "drama", "year": 1990},
    {"id": 2, "title": "Wonder Woman", "genre": "action", "year": 2017},
    {"id": 3, "title": "Life of Pi", "genre": "drama", "year": 2012},
    {"id": 4, "title": "Mad Max", "genre": "action", "year": 1979},
]


# -- system -----------------------------------------------------------------------------


def test_health_version_stats(client):
    assert client.get("/health").json() == {"status": "available"}
    assert set(client.get("/version").json()) == {"commitSha", "commitDate", "pkgVersion"}
    load(client, "sys_stats", MOVIES)
    stats = client.get("/stats").json()
    assert {"databaseSize", "lastUpdate", "indexes"} <= set(stats)
    assert stats["indexes"]["sys_stats"]["numberOfDocuments"] == 4
    one = client.get("/indexes/sys_stats/stats").json()
    assert one["numberOfDocuments"] == 4 and one["isIndexing"] is False
    assert one["fieldDistribution"] == {"genre": 4, "id": 4, "title": 4, "year": 4}


def test_unknown_route_and_method(client):
    assert client.get("/nope").status_code == 404
    assert client.get("/indexes/x/settings/not-a-setting").status_code == 404
    assert client.put("/indexes/x/settings/typo-tolerance", json={}).status_code == 405
    assert client.patch("/indexes/x/settings/ranking-rules", json=[]).status_code == 405


# -- indexes ------------------------------------------------------------------------------


def test_index_lifecycle(client):
    task = ok(write(client, "POST", "/indexes", json={"uid": "life", "primaryKey": "key"}))
    assert list(task) == TASK_KEYS
    assert task["type"] == "indexCreation" and task["details"] == {"primaryKey": "key"}
    assert task["duration"].startswith("PT") and task["duration"].endswith("S")
    assert task["enqueuedAt"].endswith("Z") and "." in task["finishedAt"]
    index = client.get("/indexes/life").json()
    assert set(index) == {"uid", "createdAt", "updatedAt", "primaryKey"}
    assert index["uid"] == "life" and index["primaryKey"] == "key"

    again = write(client, "POST", "/indexes", json={"uid": "life"})
    assert again["status"] == "failed" and again["error"]["code"] == "index_already_exists"
    assert set(again["error"]) == ERROR_KEYS

    upd = ok(write(client, "PATCH", "/indexes/life", json={"primaryKey": "other"}))
    assert upd["type"] == "indexUpdate" and upd["details"] == {"primaryKey": "other"}
    assert client.get("/indexes/life").json()["primaryKey"] == "other"

    ok(write(client, "POST", "/indexes/life/documents", json=[{"other": "a"}, {"other": "b"}]))
    clash = write(client, "PATCH", "/indexes/life", json={"primaryKey": "third"})
    assert clash["error"]["code"] == "index_primary_key_already_exists"

    deleted = ok(write(client, "DELETE", "/indexes/life"))
    assert deleted["type"] == "indexDeletion" and deleted["details"] == {"deletedDocuments": 2}
    err(client.get("/indexes/life"), 404, "index_not_found")
    gone = write(client, "DELETE", "/indexes/life")
    assert gone["status"] == "failed" and gone["error"]["code"] == "index_not_found"
    assert gone["details"] == {"deletedDocuments": 0}


def test_index_list_pagination(client):
    for uid in ("list_a", "list_b", "list_c"):
        ok(write(client, "POST", "/indexes", json={"uid": uid}))
    page = client.get("/indexes", params={"offset": 1, "limit": 2}).json()
    assert set(page) == {"results", "offset", "limit", "total"}
    assert page["offset"] == 1 and page["limit"] == 2 and len(page["results"]) == 2
    uids = [i["uid"] for i in client.get("/indexes", params={"limit": 1000}).json()["results"]]
    assert uids == sorted(uids) and {"list_a", "list_b", "list_c"} <= set(uids)
    err(client.get("/indexes", params={"limit": "x"}), 400, "invalid_index_limit")
    err(client.get("/indexes", params={"offset": "-1"}), 400, "invalid_index_offset")


def test_index_request_errors(client):
    err(client.post("/indexes", json={"uid": "bad uid!"}), 400, "invalid_index_uid")
    err(client.get("/indexes/bad%20uid"), 400, "invalid_index_uid")
    err(client.post("/indexes", json={"primaryKey": "id"}), 400, "missing_index_uid")
    err(client.post("/indexes", json={"uid": "x", "foo": 1}), 400, "bad_request")
    err(client.post("/indexes", json={"uid": "x", "primaryKey": 3}), 400, "invalid_index_primary_key")
    err(client.post("/indexes", content=b"{", headers={"content-type": "application/json"}), 400, "malformed_payload")
    err(client.post("/indexes", content=b"", headers={"content-type": "application/json"}), 400, "missing_payload")
    err(client.post("/indexes", content=b"{}", headers={"content-type": "text/plain"}), 415, "invalid_content_type")
    err(client.post("/indexes", content=b"{}"), 415, "missing_content_type")


def test_swap_indexes(client):
    load(client, "swap_a", [{"id": 1, "side": "a"}])
    load(client, "swap_b", [{"id": 1, "side": "b"}, {"id": 2, "side": "b"}])
    task = ok(write(client, "POST", "/swap-indexes", json=[{"indexes": ["swap_a", "swap_b"]}]))
    assert task["type"] == "indexSwap" and task["indexUid"] is None
    assert task["details"] == {"swaps": [{"indexes": ["swap_a", "swap_b"], "rename": False}]}  # 1.50: always present
    assert client.get("/indexes/swap_a/documents/1").json()["side"] == "b"
    assert client.get("/indexes/swap_b/stats").json()["numberOfDocuments"] == 1
    missing = write(client, "POST", "/swap-indexes", json=[{"indexes": ["swap_a", "swap_nope"]}])
    assert missing["error"]["code"] == "index_not_found"
    err(client.post("/swap-indexes", json=[{"indexes": ["swap_a"]}]), 400, "invalid_swap_indexes")
    err(
        client.post("/swap-indexes", json=[{"indexes": ["swap_a", "swap_b"]}, {"indexes": ["swap_a", "x"]}]),
        400, "invalid_swap_duplicate_index_found",
    )


# -- documents ------------------------------------------------------------------------------


def test_document_content_types(client):
    add = ok(write(client, "POST", "/indexes/docs_ct/documents", json={"id": 1, "name": "object"}))
    assert add["type"] == "documentAdditionOrUpdate"
    assert add["details"] == {"receivedDocuments": 1, "indexedDocuments": 1}
    ndjson = b'{"id": 2, "name": "nd one"}\n{"id": 3, "name": "nd two"}\n'
    ok(write(client, "POST", "/indexes/docs_ct/documents", content=ndjson, headers={"content-type": "application/x-ndjson"}))
    csv = b"id;name;price:number;ok:boolean\n4;csv row;12.5;true\n"
    ok(write(client, "POST", "/indexes/docs_ct/documents", params={"csvDelimiter": ";"}, content=csv,
             headers={"content-type": "text/csv"}))
    assert client.get("/indexes/docs_ct/documents/4").json() == {"id": "4", "name": "csv row", "price": 12.5, "ok": True}
    assert client.get("/indexes/docs_ct/documents").json()["total"] == 4

    base = "/indexes/docs_ct/documents"
    err(client.post(base, content=b"[]"), 415, "missing_content_type")
    err(client.post(base, content=b"[]", headers={"content-type": "text/plain"}), 415, "invalid_content_type")
    err(client.post(base, content=b"", headers={"content-type": "application/json"}), 400, "missing_payload")
    err(client.post(base, content=b"[{", headers={"content-type": "application/json"}), 400, "malformed_payload")
    err(client.post(base, content=b"{\"a\":", headers={"content-type": "application/x-ndjson"}), 400, "malformed_payload")
    err(client.post(base, params={"csvDelimiter": ";"}, json=[{"id": 9}]), 415, "invalid_content_type")  # 1.50: a 415


def test_gzip_request_body(client):
    body = gzip.compress(b'[{"id": 1, "z": "zipped"}]')
    headers = {"content-type": "application/json", "content-encoding": "gzip"}
    ok(write(client, "POST", "/indexes/docs_gz/documents", content=body, headers=headers))
    assert client.get("/indexes/docs_gz/documents/1").json() == {"id": 1, "z": "zipped"}
    # 1.50: a broken stream is `bad_request` "The provided payload is incomplete and cannot be parsed".
    err(client.post("/indexes/docs_gz/documents", content=b"not gzip", headers=headers), 400, "bad_request")


def test_replace_and_partial_update(client):
    load(client, "docs_upd", [{"id": 1, "a": 1, "b": 1}])
    ok(write(client, "PUT", "/indexes/docs_upd/documents", json=[{"id": 1, "b": 2}]))
    assert client.get("/indexes/docs_upd/documents/1").json() == {"id": 1, "a": 1, "b": 2}
    ok(write(client, "POST", "/indexes/docs_upd/documents", json=[{"id": 1, "c": 3}]))
    assert client.get("/indexes/docs_upd/documents/1").json() == {"id": 1, "c": 3}


def test_document_reads(client):
    load(client, "docs_read", MOVIES, {"filterableAttributes": ["genre", "year"]})
    page = client.get("/indexes/docs_read/documents", params={"offset": 1, "limit": 2, "fields": "id,title"}).json()
    assert page == {
        "results": [{"id": 2, "title": "Wonder Woman"}, {"id": 3, "title": "Life of Pi"}],
        "offset": 1, "limit": 2, "total": 4,
    }
    filtered = client.get("/indexes/docs_read/documents", params={"filter": "genre = drama", "fields": "id"}).json()
    assert filtered["results"] == [{"id": 1}, {"id": 3}] and filtered["total"] == 2
    fetched = client.post("/indexes/docs_read/documents/fetch", json={"filter": "year > 2000", "fields": ["title"], "limit": 1}).json()
    assert fetched == {"results": [{"title": "Wonder Woman"}], "offset": 0, "limit": 1, "total": 2}
    assert client.get("/indexes/docs_read/documents/3", params={"fields": "title"}).json() == {"title": "Life of Pi"}
    err(client.get("/indexes/docs_read/documents/99"), 404, "document_not_found")
    err(client.get("/indexes/nope_read/documents"), 404, "index_not_found")
    err(client.get("/indexes/docs_read/documents", params={"filter": "title = x"}), 400, "invalid_document_filter")
    err(client.get("/indexes/docs_read/documents", params={"limit": "many"}), 400, "invalid_document_limit")
    err(client.post("/indexes/docs_read/documents/fetch", json={"offset": "1"}), 400, "invalid_document_offset")


def test_document_deletions(client):
    load(client, "docs_del", MOVIES, {"filterableAttributes": ["genre"]})
    one = ok(write(client, "DELETE", "/indexes/docs_del/documents/1"))
    assert one["type"] == "documentDeletion" and one["details"] == {"providedIds": 1, "deletedDocuments": 1, "originalFilter": None}
    batch = ok(write(client, "POST", "/indexes/docs_del/documents/delete-batch", json=[2, "77"]))
    assert batch["details"] == {"providedIds": 2, "deletedDocuments": 1, "originalFilter": None}
    by_filter = ok(write(client, "POST", "/indexes/docs_del/documents/delete", json={"filter": "genre = drama"}))
    assert by_filter["details"] == {"providedIds": 0, "deletedDocuments": 1, "originalFilter": '"genre = drama"'}
    assert [d["id"] for d in client.get("/indexes/docs_del/documents").json()["results"]] == [4]
    bad = write(client, "POST", "/indexes/docs_del/documents/delete", json={"filter": "title = x"})
    assert bad["status"] == "failed" and bad["error"]["code"] == "invalid_document_filter"
    err(client.post("/indexes/docs_del/documents/delete", json={}), 400, "missing_document_filter")
    err(client.post("/indexes/docs_del/documents/delete", json={"filter": 3}), 400, "invalid_document_filter")
    clear = ok(write(client, "DELETE", "/indexes/docs_del/documents"))
    assert clear["details"] == {"deletedDocuments": 1}
    missing = write(client, "DELETE", "/indexes/docs_nope/documents/1")
    assert missing["error"]["code"] == "index_not_found"


@pytest.mark.parametrize(
    ("docs", "params", "code"),
    [
        ([{"id": 1}, {"name": "no id"}], {}, "missing_document_id"),
        ([{"id": "not valid!"}], {}, "invalid_document_id"),
        ([{"id": 1, "uid": 2}], {}, "index_primary_key_multiple_candidates_found"),
        ([{"name": "x"}], {}, "index_primary_key_no_candidate_found"),
    ],
)
def test_document_task_errors(client, docs, params, code):
    uid = "docs_err_" + code[:20]
    task = write(client, "POST", f"/indexes/{uid}/documents", json=docs, params=params)
    assert task["status"] == "failed" and task["error"]["code"] == code
    assert task["details"]["indexedDocuments"] == 0
    # The documents are rolled back, not the index: 1.50 creates it before reading them.
    index = client.get(f"/indexes/{uid}")
    assert index.status_code == 200 and index.json()["primaryKey"] is None
    assert client.get(f"/indexes/{uid}/documents").json()["total"] == 0


# -- search --------------------------------------------------------------------------------


def test_search_get_and_post(client):
    load(client, "srch", MOVIES, {"filterableAttributes": ["genre", "year"], "sortableAttributes": ["year"]})
    post = client.post("/indexes/srch/search", json={
        "q": "", "filter": "genre = action", "sort": ["year:asc"], "facets": ["genre"],
        "attributesToRetrieve": ["title"], "limit": 5,
    }).json()
    assert [h["title"] for h in post["hits"]] == ["Mad Max", "Wonder Woman"]
    assert post["facetDistribution"] == {"genre": {"action": 2}}
    get = client.get("/indexes/srch/search", params={
        "q": "", "filter": "genre = action", "sort": "year:asc", "facets": "genre",
        "attributesToRetrieve": "title", "limit": "5",
    }).json()
    assert get["hits"] == post["hits"] and get["facetDistribution"] == post["facetDistribution"]
    paged = client.get("/indexes/srch/search", params={"q": "", "hitsPerPage": "3", "page": "2"}).json()
    assert paged["totalHits"] == 4 and paged["totalPages"] == 2 and len(paged["hits"]) == 1
    scored = client.post("/indexes/srch/search", json={"q": "wonder", "showRankingScore": True}).json()
    assert scored["hits"][0]["title"] == "Wonder Woman" and 0 < scored["hits"][0]["_rankingScore"] <= 1

    err(client.post("/indexes/srch/search", json={"filter": "title = x"}), 400, "invalid_search_filter")
    err(client.post("/indexes/srch/search", json={"sort": ["title:asc"]}), 400, "invalid_search_sort")
    err(client.post("/indexes/srch/search", json={"facets": "genre"}), 400, "invalid_search_facets")
    err(client.get("/indexes/srch/search", params={"limit": "x"}), 400, "invalid_search_limit")
    err(client.get("/indexes/srch/search", params={"showRankingScore": "yes"}), 400, "invalid_search_show_ranking_score")
    err(client.get("/indexes/nope_srch/search"), 404, "index_not_found")
    err(client.post("/indexes/srch/search", content=b"{}", headers={"content-type": "text/plain"}), 415, "invalid_content_type")


def test_facet_search(client):
    load(client, "fsrch", MOVIES, {"filterableAttributes": ["genre"]})
    r = client.post("/indexes/fsrch/facet-search", json={"facetName": "genre", "facetQuery": "act"})
    assert r.status_code == 200, r.text
    assert r.json()["facetHits"] == [{"value": "action", "count": 2}]


def test_multi_search(client):
    load(client, "ms_a", MOVIES)
    load(client, "ms_b", [{"id": 1, "title": "Carol of the bells"}])
    plain = client.post("/multi-search", json={"queries": [
        {"indexUid": "ms_a", "q": "carol"}, {"indexUid": "ms_b", "q": "carol", "limit": 1},
    ]}).json()
    assert [r["indexUid"] for r in plain["results"]] == ["ms_a", "ms_b"]
    assert plain["results"][0]["hits"][0]["title"] == "Carol" and plain["results"][1]["limit"] == 1
    fed = client.post("/multi-search", json={
        "federation": {"limit": 2},
        "queries": [{"indexUid": "ms_a", "q": "carol"}, {"indexUid": "ms_b", "q": "carol", "federationOptions": {"weight": 0.5}}],
    }).json()
    assert [h["_federation"]["indexUid"] for h in fed["hits"]] == ["ms_a", "ms_b"]
    assert fed["limit"] == 2 and fed["offset"] == 0 and fed["estimatedTotalHits"] == 2
    assert "_rankingScore" not in fed["hits"][0]
    body = err(client.post("/multi-search", json={"queries": [{"indexUid": "ms_a"}, {"indexUid": "ms_nope"}]}), 400, "index_not_found")  # 1.50: 400 in multi-search
    assert body["message"].startswith("Inside `.queries[1]`")


# -- settings ------------------------------------------------------------------------------

SUB_ROUTES = [
    ("displayed-attributes", "displayedAttributes", "PUT", ["title", "id"]),
    ("searchable-attributes", "searchableAttributes", "PUT", ["title"]),
    ("filterable-attributes", "filterableAttributes", "PUT", ["genre"]),
    ("sortable-attributes", "sortableAttributes", "PUT", ["year"]),
    ("ranking-rules", "rankingRules", "PUT", ["year:desc", "words", "typo", "proximity", "attribute", "sort", "exactness"]),
    ("stop-words", "stopWords", "PUT", ["the", "a"]),
    ("synonyms", "synonyms", "PUT", {"film": ["movie"]}),
    ("distinct-attribute", "distinctAttribute", "PUT", "genre"),
    ("typo-tolerance", "typoTolerance", "PATCH", {"enabled": False}),
    ("pagination", "pagination", "PATCH", {"maxTotalHits": 50}),
    ("faceting", "faceting", "PATCH", {"maxValuesPerFacet": 7}),
    ("proximity-precision", "proximityPrecision", "PUT", "byAttribute"),
    ("separator-tokens", "separatorTokens", "PUT", ["|"]),
    ("non-separator-tokens", "nonSeparatorTokens", "PUT", ["@"]),
    ("dictionary", "dictionary", "PUT", ["J.R.R."]),
]


# Meilisearch keeps these as sets (BTreeSet): shown sorted, in the task and in the settings.
SET_LIKE = frozenset({"sortableAttributes", "stopWords", "separatorTokens", "nonSeparatorTokens", "dictionary"})


@pytest.mark.parametrize(("route", "name", "method", "value"), SUB_ROUTES, ids=[r[0] for r in SUB_ROUTES])
def test_setting_sub_route_roundtrip(client, route, name, method, value):
    uid = "set_" + route.replace("-", "_")
    path = f"/indexes/{uid}/settings/{route}"
    task = ok(write(client, method, path, json=value))  # a settings update creates the index
    shown = sorted(value) if name in SET_LIKE else value
    assert task["type"] == "settingsUpdate" and task["details"] == {name: shown}
    got = client.get(path).json()
    if isinstance(value, dict) and method == "PATCH":
        assert got == {**default_settings()[name], **value}
    else:
        assert got == shown
    assert client.get(f"/indexes/{uid}/settings").json()[name] == got
    reset = ok(write(client, "DELETE", path))
    assert reset["details"] == {name: None}
    assert client.get(path).json() == default_settings()[name]


def test_settings_whole_object(client):
    defaults = client.get("/indexes/srch_defaults/settings")
    err(defaults, 404, "index_not_found")
    ok(write(client, "PATCH", "/indexes/set_all/settings", json={
        "filterableAttributes": ["a"], "typoTolerance": {"minWordSizeForTypos": {"oneTypo": 3}},
    }))
    got = client.get("/indexes/set_all/settings").json()
    assert list(got)[:3] == ["displayedAttributes", "searchableAttributes", "filterableAttributes"]
    assert got["filterableAttributes"] == ["a"]
    assert got["typoTolerance"]["minWordSizeForTypos"] == {"oneTypo": 3, "twoTypos": 9}
    ok(write(client, "PATCH", "/indexes/set_all/settings", json={"filterableAttributes": None}))
    assert client.get("/indexes/set_all/settings").json()["filterableAttributes"] == []
    ok(write(client, "PATCH", "/indexes/set_all/settings", json={"sortableAttributes": ["b"]}))
    ok(write(client, "DELETE", "/indexes/set_all/settings"))
    hidden = ("chat", "foreignKeys")  # while their experimental features are off
    assert client.get("/indexes/set_all/settings").json() == {
        k: v for k, v in default_settings().items() if k not in hidden
    }


@pytest.mark.parametrize(
    ("method", "path", "body", "code"),
    [
        ("PATCH", "/settings", {"foo": 1}, "bad_request"),
        ("PATCH", "/settings", {"filterableAttributes": "a"}, "invalid_settings_filterable_attributes"),
        ("PATCH", "/settings", {"rankingRules": ["nope"]}, "invalid_settings_ranking_rules"),
        ("PATCH", "/settings", {"typoTolerance": {"bogus": 1}}, "invalid_settings_typo_tolerance"),
        ("PUT", "/settings/searchable-attributes", [1], "invalid_settings_searchable_attributes"),
        ("PUT", "/settings/synonyms", ["x"], "invalid_settings_synonyms"),
        ("PUT", "/settings/distinct-attribute", 3, "invalid_settings_distinct_attribute"),
        ("PUT", "/settings/proximity-precision", "byLetter", "invalid_settings_proximity_precision"),
        ("PATCH", "/settings/pagination", {"maxTotalHits": -1}, "invalid_settings_pagination"),
        ("PATCH", "/settings/faceting", {"maxValuesPerFacet": "x"}, "invalid_settings_faceting"),
        ("PUT", "/settings/stop-words", {"a": 1}, "invalid_settings_stop_words"),
    ],
)
def test_settings_errors(client, method, path, body, code):
    body_out = err(client.request(method, "/indexes/set_err" + path, json=body), 400, code)
    if code == "bad_request":
        assert body_out["message"].startswith("Unknown field `foo`: expected one of `displayedAttributes`")


# -- tasks -----------------------------------------------------------------------------------


def test_task_list_filters_and_pagination(client):
    ids = [write(client, "POST", "/indexes", json={"uid": f"tq_{i}"})["uid"] for i in range(3)]
    failed = write(client, "POST", "/indexes", json={"uid": "tq_0"})["uid"]
    r = client.get("/tasks", params={"indexUids": "tq_0,tq_1,tq_2", "limit": 2}).json()
    assert set(r) == {"results", "total", "limit", "from", "next"}
    assert [x["uid"] for x in r["results"]] == [failed, ids[2]] and r["total"] == 4
    assert r["from"] == failed and r["next"] == ids[1] and r["limit"] == 2
    r2 = client.get("/tasks", params={"indexUids": "tq_0,tq_1,tq_2", "limit": 2, "from": r["next"]}).json()
    assert [x["uid"] for x in r2["results"]] == [ids[1], ids[0]] and r2["next"] is None
    only_failed = client.get("/tasks", params={"statuses": "failed", "indexUids": "tq_0"}).json()
    assert [x["uid"] for x in only_failed["results"]] == [failed]
    by_uid = client.get("/tasks", params={"uids": f"{ids[0]},{ids[2]}", "types": "indexCreation"}).json()
    assert [x["uid"] for x in by_uid["results"]] == [ids[2], ids[0]]
    enqueued = client.get(f"/tasks/{ids[1]}").json()["enqueuedAt"]
    after = client.get("/tasks", params={"afterEnqueuedAt": enqueued, "indexUids": "tq_0,tq_1,tq_2"}).json()
    assert [x["uid"] for x in after["results"]] == [failed, ids[2]]
    before = client.get("/tasks", params={"beforeEnqueuedAt": enqueued, "indexUids": "*", "uids": ",".join(map(str, ids))}).json()
    assert [x["uid"] for x in before["results"]] == [ids[0]]
    assert client.get("/tasks", params={"beforeFinishedAt": "2000-01-01"}).json()["total"] == 0
    assert client.get("/tasks", params={"reverse": "true", "uids": f"{ids[0]},{ids[1]}"}).json()["from"] == ids[0]


@pytest.mark.parametrize(
    ("param", "value", "code"),
    [
        ("uids", "x", "invalid_task_uids"),
        ("statuses", "done", "invalid_task_statuses"),
        ("types", "indexFrobnication", "invalid_task_types"),
        ("indexUids", "bad uid", "invalid_index_uid"),  # 1.50 (tests/tasks/errors.rs)
        ("canceledBy", "-1", "invalid_task_canceled_by"),
        ("beforeEnqueuedAt", "yesterday", "invalid_task_before_enqueued_at"),
        ("afterStartedAt", "2024-13-01", "invalid_task_after_started_at"),
        ("afterFinishedAt", "2024-01-01T00:00:00", "invalid_task_after_finished_at"),
        ("limit", "-3", "invalid_task_limit"),
        ("from", "z", "invalid_task_from"),
        ("bogus", "1", "bad_request"),
    ],
)
def test_task_query_errors(client, param, value, code):
    err(client.get("/tasks", params={param: value}), 400, code)


def test_get_task_errors(client):
    err(client.get("/tasks/999999"), 404, "task_not_found")
    err(client.get("/tasks/abc"), 400, "invalid_task_uids")


def test_cancel_and_delete_tasks(client):
    done = ok(write(client, "POST", "/indexes", json={"uid": "tdel"}))
    cancel = ok(write(client, "POST", f"/tasks/cancel?uids={done['uid']}", status=200))  # 1.50: 200, not 202
    assert cancel["type"] == "taskCancelation" and cancel["indexUid"] is None
    assert cancel["details"] == {"matchedTasks": 1, "canceledTasks": 0, "originalFilter": f"?uids={done['uid']}"}  # 1.50 counts the finished task it matched
    deletion = ok(write(client, "DELETE", f"/tasks?uids={done['uid']},{cancel['uid']}", status=200))
    assert deletion["type"] == "taskDeletion"
    assert deletion["details"] == {"matchedTasks": 2, "deletedTasks": 2, "originalFilter": f"?uids={done['uid']},{cancel['uid']}"}
    err(client.get(f"/tasks/{done['uid']}"), 404, "task_not_found")
    err(client.post("/tasks/cancel"), 400, "missing_task_filters")
    err(client.delete("/tasks"), 400, "missing_task_filters")
    err(client.delete("/tasks", params={"limit": 1}), 400, "bad_request")


async def test_cancelation_runs_first_and_cancels_enqueued():
    """In-process: tasks enqueued before the worker starts, so the order is deterministic."""
    q = t.TaskQueue()
    first = await q.enqueue("indexCreation", "c1", t.CreateIndex(None), {"primaryKey": None})
    docs = await q.enqueue(
        "documentAdditionOrUpdate", "c1", t.AddDocuments([{"id": 1}], None, False),
        {"receivedDocuments": 1, "indexedDocuments": None},
    )
    query = taskquery.parse_task_query({"uids": f"{docs.uid}"}, paging=False)
    cancel = await q.enqueue("taskCancelation", None, t.CancelTasks(q.matching(query)), {"matchedTasks": 1, "canceledTasks": None, "originalFilter": "?uids=1"})
    async with trio.open_nursery() as nursery:
        await nursery.start(q.run)
        with trio.fail_after(5):
            while q.tasks[first.uid].status != "succeeded":
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    assert q.tasks[cancel.uid].details["canceledTasks"] == 1
    assert q.tasks[cancel.uid].batch_uid < q.tasks[first.uid].batch_uid  # cancelations go first
    canceled = q.tasks[docs.uid]
    assert canceled.status == "canceled" and canceled.canceled_by == cancel.uid
    assert canceled.details == {"receivedDocuments": 1, "indexedDocuments": 0}
    assert q.indexes["c1"].engine.stats()["numberOfDocuments"] == 0


async def test_autobatching_shares_batch_uid():
    q = t.TaskQueue()
    recs = [
        await q.enqueue("documentAdditionOrUpdate", "ab", t.AddDocuments([{"id": i}], None, False),
                        {"receivedDocuments": 1, "indexedDocuments": None})
        for i in range(3)
    ]
    async with trio.open_nursery() as nursery:
        await nursery.start(q.run)
        with trio.fail_after(5):
            while any(q.tasks[r.uid].status != "succeeded" for r in recs):
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    assert len({q.tasks[r.uid].batch_uid for r in recs}) == 1


# -- auth and limits ---------------------------------------------------------------------------


def test_master_key_and_payload_limit():
    with (
        start_devnodes(1, master_key="s3cret", extra_args=["--http-payload-size-limit", "2000"]) as (node,),
        httpx.Client(base_url=node.url, timeout=10.0) as c,
    ):
        assert c.get("/health").status_code == 200
        err(c.get("/indexes"), 401, "missing_authorization_header")
        err(c.get("/indexes", headers={"Authorization": "Bearer nope"}), 403, "invalid_api_key")
        err(c.get("/tasks", headers={"Authorization": "s3cret"}), 403, "invalid_api_key")
        auth = {"Authorization": "Bearer s3cret"}
        assert c.get("/indexes", headers=auth).status_code == 200
        r = c.post("/indexes/big/documents", headers=auth, json=[{"id": i, "text": "x" * 50} for i in range(100)])
        err(r, 413, "payload_too_large")
        small = c.post("/indexes/big/documents", headers=auth, json=[{"id": 1}])
        assert small.status_code == 202
        assert wait_task(node.url, small.json()["taskUid"], key="s3cret")["status"] == "succeeded"


# -- pure helpers ---------------------------------------------------------------------------------


def test_time_helpers():
    assert taskquery.rfc3339(0.5) == "1970-01-01T00:00:00.500000Z"
    assert taskquery.format_duration(0.012345) == "PT0.012345S"
    assert taskquery.format_duration(86401.5) == "P1DT1.500000S"


def test_task_query_dates_and_matching():
    q = taskquery.parse_task_query({"afterEnqueuedAt": "2024-01-01", "statuses": "succeeded,failed"})
    task = {"uid": 1, "status": "failed", "type": "indexCreation", "indexUid": "a", "enqueuedAt": "2024-01-01T12:00:00.000000Z"}
    assert not taskquery.matches(q, task)  # `after` a bare date means after that whole day
    assert taskquery.matches(q, {**task, "enqueuedAt": "2024-01-02T00:00:00.000000Z"})
    swap = {"uid": 2, "status": "succeeded", "type": "indexSwap", "indexUid": None,
            "details": {"swaps": [{"indexes": ["x", "y"]}]}}
    assert taskquery.matches(taskquery.parse_task_query({"indexUids": "y"}), swap)
    star = taskquery.parse_task_query({"statuses": "*"}, paging=False)
    assert star.has_filters and star.statuses is None
