"""`_vectors` filters on the devnode against Meilisearch 1.50's own tests
(crates/meilisearch/tests/search/filters.rs, the `vector_filter_*` functions) and the
filter parser's snapshots (crates/filter-parser/src/lib.rs). The index is the suite's
four dogs with a `rest` embedder named `rest` (served by the local embedder); 1.50's
shared index also declares fragments, which the devnode does not embed, so the tests
that read fragments are not reproduced."""

from __future__ import annotations

import threading

import httpx
import pytest

from miroir.embedder import make_server
from tests.support.devnodes import wait_task

DOGS = [
    {"id": 0, "name": "kefir"},
    {"id": 1, "name": "echo", "_vectors": {"rest": [1, 1, 1]}},
    {"id": 2, "name": "intel", "breed": "labrador"},
    {"id": 3, "name": "dustin", "breed": "bulldog"},
]


@pytest.fixture(scope="module")
def dogs(devnode):
    server = make_server(0, dimensions=3)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    client = httpx.Client(base_url=devnode.url, timeout=30)
    try:
        conf = {"source": "rest", "url": url, "dimensions": 3, "documentTemplate": "{{doc.name}}",
                "request": {"input": "{{text}}"}, "response": {"embedding": "{{embedding}}"}}
        for method, path, body in (
            ("PATCH", "/indexes/dogs/settings", {"embedders": {"rest": conf}}),
            ("POST", "/indexes/dogs/documents", DOGS),
        ):
            r = client.request(method, path, json=body)
            assert r.status_code == 202, r.text
            assert wait_task(devnode.url, r.json()["taskUid"])["status"] == "succeeded"
        yield client
    finally:
        client.patch("/experimental-features", json={"multimodal": False})
        client.close()
        server.shutdown()
        server.server_close()
        thread.join(5)


def _search(client: httpx.Client, flt, index: str = "dogs") -> tuple[int, dict]:
    r = client.post(f"/indexes/{index}/search", json={"filter": flt, "attributesToRetrieve": ["name"]})
    return r.status_code, r.json()


def _names(answer: dict) -> list[str]:
    return [h["name"] for h in answer["hits"]]


def _error(code: str, message: str) -> dict:
    return {"message": message, "code": code, "type": "invalid_request",
            "link": f"https://docs.meilisearch.com/errors#{code}"}


def test_feature_gate(dogs):
    """vector_filter_feature_gate"""
    assert dogs.patch("/experimental-features", json={"multimodal": False}).status_code == 200
    status, body = _search(dogs, "_vectors EXISTS")
    assert (status, body) == (400, _error(
        "feature_not_enabled",
        "using a vector filter requires enabling the `multimodal` experimental feature. "
        "See https://github.com/orgs/meilisearch/discussions/846\n1:9 _vectors EXISTS"))
    # the gate points at `_vectors` wherever it is
    status, body = _search(dogs, ["name = kefir", "NOT _vectors.rest EXISTS"])
    assert body["message"].endswith("\n5:13 NOT _vectors.rest EXISTS")


@pytest.mark.parametrize(("flt", "names"), [
    ("_vectors EXISTS", ["kefir", "echo", "intel", "dustin"]),  # vector_filter_all_embedders
    ("_vectors.rest EXISTS", ["kefir", "echo", "intel", "dustin"]),  # vector_filter_specific_embedder
    ("_vectors.rest.userProvided EXISTS", ["echo"]),  # vector_filter_user_provided
    ("_vectors.rest.userProvided NOT EXISTS", ["kefir", "intel", "dustin"]),  # vector_filter_negation
    ("_vectors.rest.regenerate EXISTS", ["kefir", "intel", "dustin"]),  # vector_filter_regenerate
    ("_vectors.rest.documentTemplate EXISTS", ["kefir", "intel", "dustin"]),
    ("NOT _vectors EXISTS", []),
    ('_vectors."rest".userProvided EXISTS OR _vectors.rest.documentTemplate NOT EXISTS', ["echo"]),
])
def test_vector_filters(dogs, flt, names):
    assert dogs.patch("/experimental-features", json={"multimodal": True}).status_code == 200
    status, body = _search(dogs, flt)
    assert (status, _names(body), body["estimatedTotalHits"]) == (200, names, len(names))


@pytest.mark.parametrize(("flt", "message"), [
    # vector_filter_missing_fragment
    ("_vectors.rest.fragments EXISTS", "The vector filter is missing a fragment name.\n24:31 _vectors.rest.fragments EXISTS"),
    # vector_filter_nonexistent_embedder
    ("_vectors.other EXISTS",
     "Index `dogs`: The embedder `other` does not exist. Available embedders are: `rest`.\n11:16 _vectors.\"other\" EXISTS"),
    # vector_filter_all_embedders_user_provided (`userProvided` is an embedder name there)
    ("_vectors.userProvided EXISTS",
     "Index `dogs`: The embedder `userProvided` does not exist. Available embedders are: `rest`.\n"
     "11:23 _vectors.\"userProvided\" EXISTS"),
    ("_vectors.rset EXISTS",
     "Index `dogs`: The embedder `rset` does not exist. Available embedders are: `rest`. Did you mean `rest`?\n"
     "11:15 _vectors.\"rset\" EXISTS"),
    ("_vectors.rest.fragments.basic EXISTS",
     "Index `dogs`: The fragment `basic` does not exist on embedder `rest`. This embedder does not have any "
     "configured fragments.\n28:33 _vectors.\"rest\".fragments.\"basic\" EXISTS"),
    # the parser's own snapshots (crates/filter-parser/src/lib.rs)
    ("_vectors _vectors EXISTS",
     "Was expecting an operation like `EXISTS` or `NOT EXISTS` after the vector filter.\n10:25 _vectors _vectors EXISTS"),
    ("_vectors. embedderName EXISTS", "Was expecting embedder name but found nothing.\n10:11 _vectors. embedderName EXISTS"),
    ("_vectors.embedderName. EXISTS",
     "Was expecting one of `.fragments`, `.userProvided`, `.documentTemplate`, `.regenerate` or nothing, but instead "
     "found a point without a valid value.\n22:23 _vectors.embedderName. EXISTS"),
    ('_vectors."embedderName EXISTS', 'The quotes in one of the values are inconsistent.\n10:30 _vectors."embedderName EXISTS'),
    ('_vectors."embedderNam"e EXISTS', 'The vector filter has leftover tokens.\n23:31 _vectors."embedderNam"e EXISTS'),
    ("_vectors.embedderName.fragments. test EXISTS",
     "The vector filter's fragment name is invalid.\n33:45 _vectors.embedderName.fragments. test EXISTS"),
    ("_vectors.embedderName.fargments.test EXISTS",
     "Was expecting one of `fragments`, `userProvided`, `documentTemplate`, `regenerate` or nothing, but instead found "
     "`fargments`. Did you mean `fragments`?\n23:32 _vectors.embedderName.fargments.test EXISTS"),
    ('_vectors.embedderName."userProvided" EXISTS',
     'Was expecting this part to be unquoted.\n24:36 _vectors.embedderName."userProvided" EXISTS'),
    ("_vectors.embedderName.userProvided.fragments.test EXISTS",
     "Vector filter can only accept one of `fragments`, `userProvided`, `documentTemplate` or `regenerate`, but found "
     "both `userProvided` and `fragments`.\n36:45 _vectors.embedderName.userProvided.fragments.test EXISTS"),
])
def test_vector_filter_errors(dogs, flt, message):
    assert dogs.patch("/experimental-features", json={"multimodal": True}).status_code == 200
    assert _search(dogs, flt) == (400, _error("invalid_search_filter", message))


def test_document_template_and_documents_route(dogs):
    """vector_filter_document_template: given embeddings are user-provided, the others
    came from the template; the documents route and delete-by-filter read the same."""
    assert dogs.patch("/experimental-features", json={"multimodal": True}).status_code == 200
    r = dogs.post("/indexes/dogs/documents/fetch", json={"filter": "_vectors.rest.documentTemplate EXISTS", "fields": ["name"]})
    assert r.status_code == 200, r.text
    assert [d["name"] for d in r.json()["results"]] == ["kefir", "intel", "dustin"]
    r = dogs.post("/indexes/dogs/documents", json=[{"id": 9, "name": "iko", "_vectors": {"rest": {"embeddings": [0.1, 0.2, 0.3], "regenerate": True}}}])
    assert wait_task(str(dogs.base_url), r.json()["taskUid"])["status"] == "succeeded"
    # embeddings given with `regenerate: true`: user-provided, and regenerated on change
    assert _names(_search(dogs, "_vectors.rest.userProvided EXISTS")[1]) == ["echo", "iko"]
    assert _names(_search(dogs, "_vectors.rest.regenerate EXISTS")[1]) == ["kefir", "intel", "dustin", "iko"]
    r = dogs.post("/indexes/dogs/documents/delete", json={"filter": "_vectors.rest.userProvided EXISTS AND _vectors.rest.regenerate EXISTS"})
    assert wait_task(str(dogs.base_url), r.json()["taskUid"])["status"] == "succeeded"
    assert _names(_search(dogs, "_vectors EXISTS")[1]) == ["kefir", "echo", "intel", "dustin"]
