"""1.50's dynamic search rules, `/render-template` and phrase / negative search (issue 13).

- `/dynamic-search-rules` and `/render-template` are Miroir's own (the devnode serves
  neither): their answers are checked against 1.50's snapshots
  (`crates/meilisearch/tests/dynamic_search_rules/mod.rs`,
  `tests/documents/render_documents.rs`); the rules survive a restart of Miroir (journal).
- Phrase and negative search run on the devnodes: Miroir over 2 devnodes (4 shards) is
  compared with one devnode (same hits, same per-document scores), and both with 1.50's
  answers (`tests/search/mod.rs`: `phrase_search_with_stop_word`,
  `negative_phrase_search`, `negative_word_search`, `non_negative_search`).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator

import httpx
import pytest

from tests.support import miroir_proc
from tests.support.devnodes import start_devnodes
from tests.support.pairs import devnode_and_miroir, done, index_with, task_of

# 1.50's `DOCUMENTS` (tests/common/mod.rs), without vectors.
DOCUMENTS = [
    {"title": "Shazam!", "id": "287947", "color": ["green", "blue"]},
    {"title": "Captain Marvel", "id": "299537", "color": ["yellow", "blue"]},
    {"title": "Escape Room", "id": "522681", "color": ["yellow", "red"]},
    {"title": "How to Train Your Dragon: The Hidden World", "id": "166428", "color": ["green", "red"]},
    {"title": "Gläss", "id": "450465", "color": ["blue", "red"]},
]
WORDS = ["red", "blue", "green", "dog", "cat", "house", "river", "stone", "light", "night"]
CORPUS = [
    {"id": i, "title": " ".join(WORDS[(i * k + k) % len(WORDS)] for k in range(1, 5)),
     "overview": " ".join(WORDS[(i + 3 * k) % len(WORDS)] for k in range(6))}
    for i in range(200)
]
OPERATOR_QUERIES = [
    '"blue green"', '"green blue"', 'dog "blue green"', '"cat river" light', "dog -red", '-"blue green"', "-dog",
    'river -"cat river"', '"light green', 'stone "dog" -cat', "- dog", '"green dog cat"',
]


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[httpx.Client, httpx.Client]]:
    """(one devnode, Miroir over 2 devnodes), both with the same three indexes."""
    with devnode_and_miroir(nodes=2, shards=4) as (one, many):
        for client in (one, many):
            index_with(client, "movies", DOCUMENTS)
            index_with(client, "stops", DOCUMENTS, {"stopWords": ["the", "of"]})
            index_with(client, "corpus", CORPUS)
        yield one, many


def _ids(answer: dict) -> list[str]:
    return [h["id"] for h in answer["hits"]]


# ---------------------------------------------------------------- phrase and negative


@pytest.mark.parametrize(
    "index,q,expected",
    [
        # 1.50's answers, in its order where its test checks the order.
        ("stops", 'how "to" train "the', ["166428"]),
        ("movies", '-"train your dragon"', ["287947", "299537", "522681", "450465"]),
        ("movies", "-escape", ["287947", "299537", "166428", "450465"]),
        ("movies", "-escape escape", []),
        ("movies", "- escape", ["522681"]),
        ("movies", '- "train your dragon"', ["166428"]),
        # The client suite's `test_phrase_search` shape: a word and a phrase, `last`
        # strategy (the phrase is never dropped).
        ("movies", 'room "escape"', ["522681"]),
        ("movies", 'captain "escape room"', ["522681"]),
        ("movies", '"room escape"', []),
    ],
)
def test_operators_match_150(pair, index: str, q: str, expected: list[str]) -> None:
    for client in pair:
        resp = client.post(f"/indexes/{index}/search", json={"q": q})
        assert resp.status_code == 200, resp.text
        got = _ids(resp.json())
        if q.startswith("-") and len(expected) > 1:
            assert sorted(got) == sorted(expected), (str(client.base_url), q, got)
        else:
            assert got == expected, (str(client.base_url), q, got)


def test_operators_sharded_equal_one_node(pair) -> None:
    """Same documents, same per-document scores and totals on one node and on Miroir."""
    one, many = pair
    for q in OPERATOR_QUERIES:
        body = {"q": q, "limit": 500, "showRankingScore": True}
        a = one.post("/indexes/corpus/search", json=body).json()
        b = many.post("/indexes/corpus/search", json=body).json()
        assert a["estimatedTotalHits"] == b["estimatedTotalHits"], q
        assert {h["id"]: h["_rankingScore"] for h in a["hits"]} == {h["id"]: h["_rankingScore"] for h in b["hits"]}, q
        scores = [h["_rankingScore"] for h in b["hits"]]
        assert scores == sorted(scores, reverse=True), q
    # What the operators mean, on the answers.
    docs = {d["id"]: d for d in CORPUS}
    for phrase in ("blue green", "green dog cat", "cat river"):
        hits = _ids(many.post("/indexes/corpus/search", json={"q": f'"{phrase}"', "limit": 500}).json())
        holders = [d["id"] for d in CORPUS if phrase in d["title"] or phrase in d["overview"]]
        assert holders and sorted(hits) == sorted(holders), phrase
    assert many.post("/indexes/corpus/search", json={"q": '"green blue"'}).json()["hits"] == []
    hits = _ids(many.post("/indexes/corpus/search", json={"q": "dog -red", "limit": 500}).json())
    assert hits and all("red" not in (docs[i]["title"] + " " + docs[i]["overview"]).split() for i in hits)


# ---------------------------------------------------------------- dynamic search rules

RULE = {
    "description": "Black Friday 2025 rules",
    "precedence": 10,
    "active": True,
    "conditions": {"query": {"isEmpty": True}, "time": {"start": "2025-11-28T00:00:00Z", "end": "2025-11-28T23:59:59Z"}},
    "actions": [
        {"selector": {"indexUid": "products", "id": "123"}, "action": {"type": "pin", "position": 1}},
        {"selector": {"id": "789"}, "action": {"type": "pin", "position": 3}},
    ],
}


def _simple(uid: str, active: bool, doc: str) -> dict:
    return {"description": uid, "active": active, "actions": [{"selector": {"id": doc}, "action": {"type": "pin", "position": 0}}]}


def _no_time(value: dict) -> dict:
    if "results" in value:
        return dict(value, results=[{k: v for k, v in r.items() if k != "lastUpdatedAt"} for r in value["results"]])
    return {k: v for k, v in value.items() if k != "lastUpdatedAt"}


def test_dynamic_search_rules(pair) -> None:
    _, many = pair
    resp = many.post("/dynamic-search-rules", json={})
    assert resp.status_code == 400
    assert resp.json() == {
        "message": "Calling the `POST /dynamic-search-rules` route requires enabling the `dynamic search rules` "
        "experimental feature. See https://github.com/orgs/meilisearch/discussions/884",
        "code": "feature_not_enabled", "type": "invalid_request",
        "link": "https://docs.meilisearch.com/errors#feature_not_enabled",
    }
    assert many.patch("/dynamic-search-rules/x", json={}).json()["message"].startswith("Using the `/dynamic-search-rules` routes")
    resp = many.patch("/experimental-features", json={"dynamicSearchRules": True})
    assert resp.status_code == 200 and resp.json()["dynamicSearchRules"] is True
    try:
        assert many.post("/dynamic-search-rules", json={}).json() == {"results": [], "offset": 0, "limit": 20, "total": 0}
        for uid, active, doc in (("promo-active", True, "1"), ("promo-inactive", False, "2"), ("standard-active", True, "3")):
            task = task_of(many, many.patch(f"/dynamic-search-rules/{uid}", json=_simple(uid, active, doc)))
            assert task["status"] == "succeeded" and task["type"] == "dsrUpdate" and task["indexUid"] is None
            assert task["details"] == {"rule": _simple(uid, active, doc), "updatedRules": 1}
        page = many.post("/dynamic-search-rules", json={"offset": 1, "limit": 1}).json()
        assert _no_time(page) == {"results": [dict(uid="promo-inactive", **_simple("promo-inactive", False, "2"), conditions={})],
                                  "offset": 1, "limit": 1, "total": 3}
        assert [r["uid"] for r in page["results"]] == ["promo-inactive"] and page["total"] == 3
        listed = many.post("/dynamic-search-rules", json={"filter": {"query": "promo"}}).json()
        assert [r["uid"] for r in listed["results"]] == ["promo-inactive", "promo-active"] and listed["total"] == 2
        listed = many.post("/dynamic-search-rules", json={"filter": {"active": True}}).json()
        assert [r["uid"] for r in listed["results"]] == ["standard-active", "promo-active"]
        listed = many.post("/dynamic-search-rules", json={"filter": {"query": "promo", "active": True}}).json()
        assert [r["uid"] for r in listed["results"]] == ["promo-active"]
        # create_full_rule: 1.50's view of it (key order included).
        meta = done(many, many.patch("/dynamic-search-rules/black-friday", params={"customMetadata": "bf"}, json=RULE))
        assert meta["customMetadata"] == "bf"
        rule = many.get("/dynamic-search-rules/black-friday").json()
        assert list(rule) == ["uid", "description", "lastUpdatedAt", "precedence", "active", "conditions", "actions"]
        assert list(rule["conditions"]) == ["time", "query"]
        assert _no_time(rule) == {"uid": "black-friday", **RULE, "conditions": {"time": RULE["conditions"]["time"], "query": {"isEmpty": True}}}
        # patch_preserves_fields, then null resets.
        done(many, many.patch("/dynamic-search-rules/black-friday", json={"description": "updated"}))
        rule = many.get("/dynamic-search-rules/black-friday").json()
        assert rule["description"] == "updated" and rule["precedence"] == 10 and rule["actions"] == RULE["actions"]
        done(many, many.patch("/dynamic-search-rules/black-friday", json={"precedence": None, "conditions": None}))
        rule = many.get("/dynamic-search-rules/black-friday").json()
        assert "precedence" not in rule and rule["conditions"] == {}
        # Bad input: 1.50's errors, nothing enqueued.
        before = many.get("/tasks", params={"limit": 1}).json()["results"][0]["uid"]
        resp = many.patch("/dynamic-search-rules/rule-x", json={"actions": [], "unknownField": True})
        assert resp.status_code == 400 and resp.json()["message"] == (
            "Unknown field `unknownField`: expected one of `description`, `precedence`, `active`, `conditions`, `actions`"
        ) and resp.json()["code"] == "bad_request"
        resp = many.patch("/dynamic-search-rules/q", json={"conditions": {"query": {"isEmpty": True, "words": "batman"}}})
        assert resp.status_code == 400 and resp.json()["message"] == (
            "Invalid value at `.conditions.query`: either `isEmpty` or `words` can be used, not both at once"
        )
        resp = many.patch("/dynamic-search-rules/q", json={"precedence": -1})
        assert resp.status_code == 400 and resp.json()["code"] == "invalid_dynamic_search_rule_priority"
        resp = many.patch("/dynamic-search-rules/q", json={"conditions": {"time": {"start": "2025-11-28"}}})
        assert resp.status_code == 400 and resp.json()["code"] == "invalid_dynamic_search_rule_conditions"
        assert "`2025-11-28` is not a valid date. It should follow the RFC 3339 format" in resp.json()["message"]
        assert many.get("/tasks", params={"limit": 1}).json()["results"][0]["uid"] == before
        resp = many.get("/dynamic-search-rules/no-such-rule")
        assert resp.status_code == 404 and resp.json() == {
            "message": "Dynamic search rule `no-such-rule` not found.", "code": "dynamic_search_rule_not_found",
            "type": "invalid_request", "link": "https://docs.meilisearch.com/errors#dynamic_search_rule_not_found",
        }
        # Deletions: one (a missing one succeeds too), then all.
        task = task_of(many, many.delete("/dynamic-search-rules/promo-active"))
        assert task["status"] == "succeeded" and task["type"] == "dsrUpdate" and task["details"] == {"updatedRules": 1}
        assert task_of(many, many.delete("/dynamic-search-rules/phantom"))["status"] == "succeeded"
        assert many.get("/dynamic-search-rules/promo-active").status_code == 404
        assert many.post("/dynamic-search-rules", json={}).json()["total"] == 3
        task = done(many, many.delete("/dynamic-search-rules"))
        assert task["type"] == "dsrClear" and task["details"] == {"deletedDocuments": 3}
        assert many.post("/dynamic-search-rules", json={}).json()["total"] == 0
    finally:
        many.patch("/experimental-features", json={"dynamicSearchRules": False})


def test_rules_survive_a_restart() -> None:
    """The rules are journaled: a restarted Miroir lists the same rules."""
    with start_devnodes(1) as devs, tempfile.TemporaryDirectory() as tmp:
        config = miroir_proc.make_config(devs, groups=1, rf=1, shards=2, data_dir=tmp)
        with miroir_proc.serve_miroir(config) as (url, _), httpx.Client(base_url=url, timeout=30) as c:
            c.patch("/experimental-features", json={"dynamicSearchRules": True})
            done(c, c.patch("/dynamic-search-rules/a", json=_simple("a", True, "1")))
            done(c, c.patch("/dynamic-search-rules/b", json=RULE))
            done(c, c.delete("/dynamic-search-rules/a"))
            before = c.post("/dynamic-search-rules", json={}).json()
        with miroir_proc.serve_miroir(config) as (url, _), httpx.Client(base_url=url, timeout=30) as c:
            assert c.post("/dynamic-search-rules", json={}).json() == before
            assert [r["uid"] for r in before["results"]] == ["b"]


# ---------------------------------------------------------------- render-template


def test_render_template(pair) -> None:
    _, many = pair
    inline = {"kind": "inlineDocumentTemplate", "inline": "Rendered on {{doc.id}}: {{ doc.title }}"}
    resp = many.post("/render-template", json={"template": inline})
    assert resp.status_code == 400 and resp.json() == {
        "message": "calling the /render-template route requires enabling the `render_route` experimental feature. "
        "See https://github.com/orgs/meilisearch/discussions/888",
        "code": "feature_not_enabled", "type": "invalid_request", "link": "https://docs.meilisearch.com/errors#feature_not_enabled",
    }
    assert many.patch("/experimental-features", json={"renderRoute": True}).status_code == 200
    try:
        assert many.post("/render-template", json={"template": inline}).json() == {"template": inline["inline"], "rendered": None}
        got = many.post("/render-template", json={"template": inline, "input": {"kind": "inlineDocument", "inline": {"id": "42", "title": "x"}}})
        assert got.json() == {"template": inline["inline"], "rendered": "Rendered on 42: x"}
        # A document of an index, read from the owner of its shard.
        got = many.post("/render-template", json={"template": inline, "input": {"kind": "indexDocument", "indexUid": "movies", "id": "166428"}})
        assert got.json()["rendered"] == "Rendered on 166428: How to Train Your Dragon: The Hidden World"
        resp = many.post("/render-template", json={"template": inline, "input": {"kind": "indexDocument", "indexUid": "movies", "id": "9"}})
        assert resp.status_code == 404 and resp.json()["code"] == "render_document_not_found"
        # wrong_params: 1.50's messages.
        for body, code, message in [
            ({}, "bad_request", "Missing field `template`"),
            ({"template": {}}, "invalid_render_template", "Missing field `kind` inside `.template`"),
            ({"template": {"kind": "bad"}}, "invalid_render_template",
             "Unknown value `bad` at `.template.kind`: expected one of `documentTemplate`, `chatDocumentTemplate`, "
             "`indexingFragment`, `searchFragment`, `inlineDocumentTemplate`, `inlineFragment`"),
            ({"template": {"kind": "documentTemplate", "embedder": "test"}}, "invalid_render_template",
             "error while fetching template: parameter `index_uid` missing for kind `documentTemplate`"),
            ({"template": {"kind": "documentTemplate", "indexUid": "test", "embedder": "test", "fragment": "bad"}},
             "invalid_render_template", "error while fetching template: parameter `fragment` disallowed for kind `documentTemplate`"),
            ({"template": {"kind": "inlineDocumentTemplate"}}, "invalid_render_template",
             "error while fetching template: parameter `inline` missing for kind `inlineDocumentTemplate`"),
            ({"template": {"kind": "inlineDocumentTemplate", "fragment": "test"}}, "invalid_render_template",
             "error while fetching template: parameter `fragment` disallowed for kind `inlineDocumentTemplate`"),
            ({"template": {"kind": "inlineDocumentTemplate", "inline": "nothing to render"}, "input": {"kind": "inlineDocument", "inline": None}},
             "invalid_render_input", "error while fetching input: parameter `inline` missing for kind `inlineDocument`"),
            ({"template": {"kind": "documentTemplate", "indexUid": "movies", "embedder": "wrong"}}, "invalid_render_template",
             "error while fetching template: cannot find embedder `wrong` in index `movies`"),
        ]:
            resp = many.post("/render-template", json=body)
            assert resp.status_code == 400, (body, resp.text)
            assert (resp.json()["code"], resp.json()["message"]) == (code, message)
    finally:
        many.patch("/experimental-features", json={"renderRoute": False})
