"""Meilisearch 1.50's document features (issue 13 item 2), Miroir against one devnode.

`customMetadata` on every write route (202, task view), `skipCreation` (also replayed
by hinted handoff to a node that missed the write), `sort` on GET /documents and POST
/documents/fetch (merged across shards by the sort values), and request bodies with
`Content-Encoding` gzip, deflate and br. Real processes on loopback: one devnode (the
single-node answer) and Miroir over 3 devnodes with 4 shards.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator

import brotli
import httpx
import pytest

from tests.support.chaos_helpers import (
    create_index,
    durable_cluster,
    node_docs,
    node_repaired,
    settle_nodes,
    topology_nodes,
    wait_until,
)
from tests.support.devnodes import wait_task
from tests.support.pairs import devnode_and_miroir, done, index_with
from tests.support.paths import DATA

pytestmark = pytest.mark.timeout(120)

MOVIES = [
    {"id": i, "title": f"movie {i}", "rating": (i * 37) % 11 + (i % 3) / 10, "year": 1990 + (i * 7) % 30}
    for i in range(1, 61)
]


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[httpx.Client, httpx.Client]]:
    """(one devnode, Miroir over 3 devnodes), each with index `movies` sortable by rating/year."""
    with devnode_and_miroir(nodes=3, shards=4) as (one, many):
        for c in (one, many):
            index_with(c, "movies", MOVIES, {"sortableAttributes": ["rating", "year"], "filterableAttributes": ["year"]})
        yield one, many


def test_custom_metadata_on_every_write_route(pair):
    for c in pair:
        writes = [
            c.post("/indexes/movies/documents", params={"customMetadata": "add"}, json=[{"id": 100}]),
            c.put("/indexes/movies/documents", params={"customMetadata": "update"}, json=[{"id": 100, "x": 1}]),
            c.delete("/indexes/movies/documents/100", params={"customMetadata": "one"}),
            c.post("/indexes/movies/documents/delete-batch", params={"customMetadata": "batch"}, json=[101]),
            c.post("/indexes/movies/documents/delete", params={"customMetadata": "filter"}, json={"filter": "year = 3000"}),
            c.delete("/indexes/nothing_here/documents", params={"customMetadata": ""}),  # fails in its task
        ]
        for resp, meta in zip(writes, ["add", "update", "one", "batch", "filter", ""]):
            assert resp.status_code == 202, resp.text
            summary = resp.json()
            assert list(summary) == ["taskUid", "indexUid", "status", "type", "enqueuedAt", "customMetadata"]
            assert summary["customMetadata"] == meta
            task = wait_task(str(c.base_url), summary["taskUid"], timeout=30)
            assert task["customMetadata"] == meta and list(task)[-1] == "customMetadata"
            assert isinstance(task["batchUid"], int)
        # Without it, the key is absent (not null), in the answer and the task.
        resp = c.post("/indexes/movies/documents", json=[{"id": 100}])
        assert "customMetadata" not in resp.json()
        assert "customMetadata" not in done(c, c.delete("/indexes/movies/documents/100"))
        # Deletion routes take no other parameter (1.50's CustomMetadataQuery).
        bad = c.delete("/indexes/movies/documents/1", params={"doggo": "x"})
        assert bad.status_code == 400 and bad.json()["code"] == "bad_request", bad.text
        assert bad.json()["message"] == "Unknown parameter `doggo`: expected one of `customMetadata`"


def test_skip_creation(pair):
    answers = []
    for c in pair:
        done(c, c.post("/indexes/movies/documents", params={"skipCreation": "true"}, json=[{"id": 1, "title": "kept"}, {"id": 500}]))
        done(c, c.put("/indexes/movies/documents", params={"skipCreation": "TRUE"}, json=[{"id": 2, "seen": True}, {"id": 501}]))
        assert c.get("/indexes/movies/documents/500").status_code == 404
        assert c.get("/indexes/movies/documents/501").status_code == 404
        one, two = c.get("/indexes/movies/documents/1").json(), c.get("/indexes/movies/documents/2").json()
        assert one == {"id": 1, "title": "kept"} and two["seen"] is True and two["title"] == "movie 2"
        done(c, c.post("/indexes/movies/documents", params={"skipCreation": "false"}, json=[MOVIES[0]]))
        done(c, c.put("/indexes/movies/documents", json=[{"id": 2, "seen": None}]))
        bad = c.post("/indexes/movies/documents", params={"skipCreation": "yes"}, json=[{"id": 1}])
        answers.append((bad.status_code, bad.json()))
    assert answers[0] == answers[1]
    assert answers[0][0] == 400 and answers[0][1]["code"] == "invalid_skip_creation"
    assert answers[0][1]["message"] == "skipCreation must be either `true` or `false`. Found: `yes`"


@pytest.mark.parametrize("how", ["get", "fetch"])
def test_sorted_listing_merged_like_one_node(pair, how):
    cases = [
        (["rating:desc", "year:asc"], None, 0, 20),
        (["year:asc", "rating:desc"], ["title", "year"], 7, 13),
        (["rating:asc"], ["title"], 50, 20),
    ]
    for sort, fields, offset, limit in cases:
        pages = []
        for c in pair:
            if how == "get":
                params: dict = {"sort": ",".join(sort), "offset": offset, "limit": limit}
                if fields:
                    params["fields"] = ",".join(fields)
                r = c.get("/indexes/movies/documents", params=params)
            else:
                r = c.post("/indexes/movies/documents/fetch", json={"sort": sort, "fields": fields, "offset": offset, "limit": limit})
            assert r.status_code == 200, r.text
            pages.append(r.json())
        one, many = pages
        # Ties (same rating) may come in another order: compare the sort values, then the sets.
        keys = [s.split(":")[0] for s in sort if fields is None or s.split(":")[0] in fields]
        assert [[d.get(k) for k in keys] for d in many["results"]] == [[d.get(k) for k in keys] for d in one["results"]]
        assert many["total"] == one["total"] == len(MOVIES) and many["offset"] == offset and many["limit"] == limit
        if fields:
            assert all(set(d) <= set(fields) for d in many["results"]), many["results"][:2]  # sort values not leaked
    for c in pair:
        r = c.post("/indexes/movies/documents/fetch", json={"sort": ["title:asc"]})
        assert r.status_code == 400 and r.json()["code"] == "invalid_document_sort"
        assert r.json()["message"] == "Attribute `title` is not sortable. Available sortable attributes are: `rating, year`."


def test_content_encodings(pair):
    body = b'[{"id": 900, "title": "zipped"}]'
    encoded = {"gzip": gzip.compress(body), "deflate": zlib.compress(body), "br": brotli.compress(body)}
    for c in pair:
        for name, data in encoded.items():
            headers = {"Content-Type": "application/json", "Content-Encoding": name}
            done(c, c.post("/indexes/movies/documents", content=data, headers=headers))
            assert c.get("/indexes/movies/documents/900").json() == {"id": 900, "title": "zipped"}
            done(c, c.delete("/indexes/movies/documents/900"))
        # JSON routes decode it too (a listing included).
        fetched = c.post(
            "/indexes/movies/documents/fetch", content=gzip.compress(b'{"ids": [3], "fields": ["id"]}'),
            headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        )
        assert fetched.status_code == 200 and fetched.json()["results"] == [{"id": 3}], fetched.text
        r = c.post(
            "/indexes/movies/documents/delete-batch", content=gzip.compress(b"[900]"),
            headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        )
        done(c, r)
        bad = c.post(
            "/indexes/movies/documents", content=b"not gzip",
            headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        )
        assert bad.status_code == 400, bad.text
        assert bad.json()["code"] == "bad_request"
        assert bad.json()["message"] == "The provided payload is incomplete and cannot be parsed"


def test_skip_creation_replayed_by_hinted_handoff(tmp_path):
    """A node down during a `skipCreation` write gets it replayed with the parameter: it
    creates none of the missing documents either."""
    with durable_cluster(2, groups=1, rf=2, shards=2, tmp=tmp_path) as c:
        http = httpx.Client(base_url=c.url, timeout=10)
        create_index(c.url, "books")
        done(http, http.post("/indexes/books/documents", json=[{"id": 1, "v": 0}]))
        c.node("n2").kill()
        wait_until(lambda: topology_nodes(c.url)["n2"]["health"]["state"] == "down", what="n2 down")
        resp = http.post("/indexes/books/documents", params={"skipCreation": "true"}, json=[{"id": 1, "v": 1}, {"id": 2}])
        assert resp.headers.get("X-Miroir-Degraded"), resp.headers  # n2 missed it: hinted
        done(http, resp)
        c.node("n2").restart()
        wait_until(lambda: node_repaired(c.url, "n2"), what="n2 replayed")
        settle_nodes(c, "books")
        seqs = set()
        for node in c.devnodes:
            docs = node_docs(node.url, "books")
            held = {k: {f: v for f, v in d.items() if not f.startswith("_miroir_")} for k, d in docs.items()}
            assert held == {"1": {"id": 1, "v": 1}}, node.url
            seqs.add(docs["1"].get("_miroir_seq"))
        assert len(seqs) == 1 and isinstance(seqs.pop(), int)  # the hint carried the insertion sequence


RECIPE = {
    "id": 1, "title": "Spaghetti Carbonara",
    "description": "A classic Italian pasta dish with eggs, cheese, pancetta, and black pepper.",
    "difficulty": "medium", "preparation_time_minutes": 15, "cooking_time_minutes": 20, "total_time_minutes": 35,
    "servings": 4, "calories_per_serving": 450,
    "cuisine": {"type": "Italian", "region": "Rome", "is_authentic": True},
    "ingredients": [{"name": "spaghetti"}], "instructions": [{"step": 1, "description": "Bring water to boil"}],
    "tags": ["pasta", "italian"], "nutrition": {"calories": 450, "protein": 20, "carbs": 45, "fat": 20},
    "is_vegetarian": False, "is_vegan": False, "is_gluten_free": False, "is_dairy_free": False,
    "created_at": "2023-01-10T14:30:00Z", "updated_at": "2023-06-15T09:15:30Z",
    "image_url": "http://localhost:6666/images/spaghetti-carbonara.jpg",
}
RECIPE_SETTINGS = {
    "displayedAttributes": [
        "id", "title", "description", "difficulty", "preparation_time_minutes", "cooking_time_minutes",
        "total_time_minutes", "servings", "calories_per_serving", "cuisine", "tags", "nutrition",
        "is_vegetarian", "is_vegan", "is_gluten_free", "is_dairy_free", "image_url",
    ],
    "searchableAttributes": [
        "title", "tags", "description", "ingredients.name", "cuisine.type", "cuisine.region", "instructions.description",
    ],
    "filterableAttributes": [
        {"attributePatterns": ["nutrition.*", "*_time_minutes"],
         "features": {"facetSearch": False, "filter": {"equality": True, "comparison": True}}},
    ],
    "sortableAttributes": [
        "preparation_time_minutes", "cooking_time_minutes", "total_time_minutes", "calories_per_serving", "servings",
        "created_at", "nutrition.calories", "nutrition.protein", "nutrition.carbs", "nutrition.fat",
    ],
}


def test_fields_devnode_matches_1_50_snapshot_and_miroir_matches_devnode(pair):
    """1.50's `fields_after_uploading_recipe_and_settings` answer (tests/support/data), from the
    devnode; Miroir's union over its nodes, paginated and filtered, equals the devnode's."""
    snapshot = json.loads((DATA / "fields_recipe_1_50.json").read_text())
    answers = []
    for c in pair:
        done(c, c.post("/indexes", json={"uid": "recipes", "primaryKey": "id"}))
        done(c, c.post("/indexes/recipes/documents", json=[RECIPE, {"id": 2, "title": "toast", "extra": {"x": 1}}]))
        done(c, c.delete("/indexes/recipes/documents/2"))
        done(c, c.patch("/indexes/recipes/settings", json=RECIPE_SETTINGS))
        r = c.post("/indexes/recipes/fields", json={"limit": 500})
        assert r.status_code == 200, r.text
        answers.append(r.json())
        queries = [
            {},
            {"offset": 3, "limit": 4},
            {"filter": {"attributePatterns": ["*_time_minutes", "nutrition.*"], "sortable": True}},
            {"filter": {"searchable": True, "displayed": False}},
        ]
        answers.append([c.post("/indexes/recipes/fields", json=q).json() for q in queries])
        errors = [
            c.post("/indexes/recipes/fields", json={"filter": {"doggo": True}}),
            c.post("/indexes/recipes/fields", json={"limit": -1}),
            c.post("/indexes/nope/fields", json={}),
        ]
        answers.append([(e.status_code, e.json()) for e in errors])
    one_full, one_rest, one_errors, many_full, many_rest, many_errors = answers
    # Known difference: the devnode lists the fields its documents hold now (document 2
    # and its `extra` are gone); 1.50 keeps a field in its field map once seen.
    assert one_full == snapshot["answer"]
    assert many_full == one_full and many_rest == one_rest
    assert many_errors == one_errors
    assert [s for s, _ in one_errors] == [400, 400, 404]
    assert [e["code"] for _, e in one_errors] == ["invalid_index_fields_filter", "invalid_index_limit", "index_not_found"]
    assert not any(f["name"].startswith("_miroir") for f in many_full["results"])


# 1.50's documents/get_documents.rs::get_document_with_invalid_ids (GET and fetch alike).
ILLEGAL_ID = (
    "In `.ids[1]`: Document identifier `\"illegal/docid\"` is invalid. A document identifier can be of type integer "
    "or string, only composed of alphanumeric characters (a-z A-Z 0-9), hyphens (-) and underscores (_), and can not "
    "be more than 511 bytes."
)


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        ({"ids": ["0", "illegal/docid"]}, "invalid_document_ids", ILLEGAL_ID),
        ({"ids": [1, 1.5]}, "invalid_document_ids", ILLEGAL_ID.replace('`"illegal/docid"`', "`1.5`")),
        ({"fields": ["title", 1]}, "invalid_document_fields",
         "Invalid value type at `.fields[1]`: expected a string, but found a positive integer: `1`"),
        ({"sort": [True]}, "invalid_document_sort", "Invalid value type at `.sort[0]`: expected a string, but found a boolean: `true`"),
        # the decoder's errors come before the ids are checked
        ({"ids": [{}], "fields": [2]}, "invalid_document_fields",
         "Invalid value type at `.fields[0]`: expected a string, but found a positive integer: `2`"),
    ],
)
def test_fetch_refuses_bad_list_elements(pair, body, code, message):
    """Before: Miroir answered each of these with a 500 (msgspec's ValidationError); the
    devnode took any id and worded a bad field as "expected an array, but found an array"."""
    for c in pair:
        r = c.post("/indexes/movies/documents/fetch", json=body)
        assert r.status_code == 400, (c.base_url, r.text)
        assert (r.json()["code"], r.json()["message"]) == (code, message), c.base_url
    for c in pair:
        r = c.get("/indexes/movies/documents", params={"ids": "0,illegal/docid"})
        assert r.status_code == 400, (c.base_url, r.text)
        assert (r.json()["code"], r.json()["message"]) == ("invalid_document_ids", ILLEGAL_ID)
