"""The devnode's `/similar` refusals against Meilisearch 1.50's own
crates/meilisearch/tests/similar/errors.rs (same requests, same answers). The cases
whose texts the devnode words otherwise (the filterable-patterns wording, the operator
list naming CONTAINS / STARTS WITH / _geoPolygon) are not listed here."""

from __future__ import annotations

import httpx
import pytest

from tests.support.devnodes import wait_task

MOVIES = [
    {"title": "Shazam!", "release_year": 2019, "id": "287947", "_vectors": {"manual": [0.8, 0.4, -0.5]}},
    {"title": "Captain Marvel", "release_year": 2019, "id": "299537", "_vectors": {"manual": [0.6, 0.8, -0.2]}},
]
DOC_ID = ("Document identifier `{}` is invalid. A document identifier can be of type integer or string, only composed "
          "of alphanumeric characters (a-z A-Z 0-9), hyphens (-) and underscores (_), and can not be more than 511 bytes.")
RESERVED = ("`{}` is a reserved keyword and thus can't be used as a filter expression. Use the `_geoRadius(latitude, "
            "longitude, distance)` or `_geoBoundingBox([latitude, longitude], [latitude, longitude])` built-in rules to "
            "filter on `_geo` coordinates.\n{}")

CASES = [
    # similar_bad_id, similar_invalid_id
    ("POST", {"id": ["doggo"], "embedder": "manual"}, "invalid_similar_id",
     "Invalid value at `.id`: " + DOC_ID.format('["doggo"]')),
    ("POST", {"id": "http://invalid-docid/", "embedder": "manual"}, "invalid_similar_id",
     "Invalid value at `.id`: " + DOC_ID.format('"http://invalid-docid/"')),
    # similar_bad_ranking_score_threshold, similar_invalid_ranking_score_threshold
    ("POST", {"rankingScoreThreshold": ["doggo"]}, "invalid_similar_ranking_score_threshold",
     'Invalid value type at `.rankingScoreThreshold`: expected a number, but found an array: `["doggo"]`'),
    ("POST", {"rankingScoreThreshold": 42}, "invalid_similar_ranking_score_threshold",
     "Invalid value at `.rankingScoreThreshold`: the value of `rankingScoreThreshold` is invalid, expected a float "
     "between `0.0` and `1.0`."),
    # similar_not_found_id
    ("POST", {"id": "definitely-doesnt-exist", "embedder": "manual"}, "not_found_similar_id",
     "Document `definitely-doesnt-exist` not found."),
    # similar_bad_offset, similar_bad_limit
    ("POST", {"id": 287947, "offset": "doggo", "embedder": "manual"}, "invalid_similar_offset",
     'Invalid value type at `.offset`: expected a positive integer, but found a string: `"doggo"`'),
    ("GET", "id=287947&offset=doggo&embedder=manual", "invalid_similar_offset",
     "Invalid value in parameter `offset`: could not parse `doggo` as a positive integer"),
    ("POST", {"id": 287947, "limit": "doggo", "embedder": "manual"}, "invalid_similar_limit",
     'Invalid value type at `.limit`: expected a positive integer, but found a string: `"doggo"`'),
    ("GET", "id=287946&limit=doggo&embedder=manual", "invalid_similar_limit",
     "Invalid value in parameter `limit`: could not parse `doggo` as a positive integer"),
    # similar_bad_filter, filter_invalid_syntax_string
    ("POST", {"id": 287947, "filter": True, "embedder": "manual"}, "invalid_similar_filter",
     "Invalid syntax for the filter parameter: `expected String, Array, found: true`."),
    ("POST", {"id": 287947, "filter": "title = Glass XOR title = Glass", "embedder": "manual"}, "invalid_similar_filter",
     "Found unexpected characters at the end of the filter: `XOR title = Glass`. You probably forgot an `OR` or an "
     "`AND` rule.\n15:32 title = Glass XOR title = Glass"),
    # filter_reserved_{geo_attribute,attribute,geo_point}_{array,string}
    *[("POST", {"id": 287947, "filter": f, "embedder": "manual"}, "invalid_similar_filter",
       RESERVED.format(word, pos))
      for word, pos, text in (("_geo", "1:13 _geo = Glass", "_geo = Glass"),
                              ("_geoDistance", "1:21 _geoDistance = Glass", "_geoDistance = Glass"),
                              ("_geoPoint", "1:18 _geoPoint = Glass", "_geoPoint = Glass"))
      for f in (text, [text])],
    # similar_bad_retrieve_vectors
    ("POST", {"retrieveVectors": "doggo", "embedder": "manual"}, "invalid_similar_retrieve_vectors",
     'Invalid value type at `.retrieveVectors`: expected a boolean, but found a string: `"doggo"`'),
    ("POST", {"retrieveVectors": [True], "embedder": "manual"}, "invalid_similar_retrieve_vectors",
     "Invalid value type at `.retrieveVectors`: expected a boolean, but found an array: `[true]`"),
    ("GET", "retrieveVectors=", "invalid_similar_retrieve_vectors",
     "Invalid value in parameter `retrieveVectors`: could not parse `` as a boolean, expected either `true` or `false`"),
    ("GET", "retrieveVectors=doggo", "invalid_similar_retrieve_vectors",
     "Invalid value in parameter `retrieveVectors`: could not parse `doggo` as a boolean, expected either `true` or `false`"),
    # similar_bad_embedder
    ("POST", {"id": 287947, "embedder": "auto"}, "invalid_similar_embedder", "Cannot find embedder with name `auto`."),
    ("GET", "id=287947&embedder=auto", "invalid_similar_embedder", "Cannot find embedder with name `auto`."),
    ("POST", {"id": 287947, "embedder": 42}, "invalid_similar_embedder",
     "Invalid value type at `.embedder`: expected a string, but found a positive integer: `42`"),
    ("POST", {"id": 287947, "embedder": None}, "invalid_similar_embedder",
     "Invalid value type at `.embedder`: expected a string, but found null"),
    ("POST", {"id": 287947}, "bad_request", "Missing field `embedder`"),
    ("GET", "id=287947", "bad_request", "Missing parameter `embedder`"),
]


@pytest.fixture(scope="module")
def movies(devnode):
    client = httpx.Client(base_url=devnode.url, timeout=30)
    settings = {"embedders": {"manual": {"source": "userProvided", "dimensions": 3}}, "filterableAttributes": ["title"]}
    for method, path, body in (("PATCH", "/indexes/simerr/settings", settings), ("POST", "/indexes/simerr/documents", MOVIES)):
        r = client.request(method, path, json=body)
        assert r.status_code == 202, r.text
        assert wait_task(devnode.url, r.json()["taskUid"])["status"] == "succeeded"
    yield client
    client.close()


@pytest.mark.parametrize(("method", "request_", "code", "message"), CASES)
def test_similar_refusals(movies, method, request_, code, message):
    if method == "GET":
        r = movies.get(f"/indexes/simerr/similar?{request_}")
    else:
        r = movies.post("/indexes/simerr/similar", json=request_)
    assert (r.status_code, r.json()) == (400, {"message": message, "code": code, "type": "invalid_request",
                                               "link": f"https://docs.meilisearch.com/errors#{code}"})


def test_similar_unexisting_index_and_parameter(movies):
    """similar_unexisting_index, similar_unexisting_parameter"""
    r = movies.post("/indexes/nope/similar", json={"id": 287947, "embedder": "manual"})
    assert (r.status_code, r.json()["code"], r.json()["message"]) == (404, "index_not_found", "Index `nope` not found.")
    r = movies.post("/indexes/simerr/similar", json={"id": 287947, "marin": "hello"})
    assert (r.status_code, r.json()["code"]) == (400, "bad_request")
