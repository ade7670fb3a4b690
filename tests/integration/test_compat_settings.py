"""Settings as Meilisearch 1.50 has them (issue 13 item 4), on Miroir and on one devnode.

One devnode (the oracle) and one Miroir over two devnodes (RF 1, 4 shards) get the same
requests; each answer is compared between them and, where Meilisearch's own tests
snapshot one, with 1.50's (crates/meilisearch/tests/settings/{get_settings,errors}.rs,
tests/vector/settings.rs):

- the default `GET /settings` (20 keys, the 1.36 ranking rules, `disableOnNumbers`);
- `GET /settings` fed back to `PATCH /settings` unchanged is accepted, and changes nothing;
- the texts and codes of refused settings, and a refused setting reaches no node;
- the split `attributeRank` / `wordPosition` rules: same hits, same `_rankingScoreDetails`
  (entries `{order, score}`) from Miroir's merge as from one node, `sort` between them;
- the devnode applies `typoTolerance.disableOnNumbers` and `searchCutoffMs`.
"""

from __future__ import annotations

import httpx
import pytest

from miroir.devnode.engine import IndexEngine
from tests.support.devnodes import start_devnodes
from tests.support.miroir_proc import start_cluster
from tests.support.pairs import done, index_with

TEMPLATE = (
    "{% for field in fields %}{% if field.is_searchable and field.value != nil %}{{ field.name }}: "
    "{{ field.value }}\n{% endif %}{% endfor %}"
)
# tests/settings/get_settings.rs::get_settings and secrets_are_hidden_in_settings.
DEFAULT_150 = {
    "displayedAttributes": ["*"],
    "searchableAttributes": ["*"],
    "filterableAttributes": [],
    "sortableAttributes": [],
    "rankingRules": ["words", "typo", "proximity", "attributeRank", "sort", "wordPosition", "exactness"],
    "stopWords": [],
    "nonSeparatorTokens": [],
    "separatorTokens": [],
    "dictionary": [],
    "synonyms": {},
    "distinctAttribute": None,
    "proximityPrecision": "byWord",
    "typoTolerance": {
        "enabled": True,
        "minWordSizeForTypos": {"oneTypo": 5, "twoTypos": 9},
        "disableOnWords": [],
        "disableOnAttributes": [],
        "disableOnNumbers": False,
    },
    "faceting": {"maxValuesPerFacet": 100, "sortFacetValuesBy": {"*": "alpha"}},
    "pagination": {"maxTotalHits": 1000},
    "embedders": {},
    "searchCutoffMs": None,
    "localizedAttributes": None,
    "facetSearch": True,
    "prefixSearch": "indexingTime",
}
MIXED = (
    "Mixed usage of the attribute, attributeRank, and wordPosition ranking rules. You must either use the "
    "attribute ranking rule alone or the attributeRank and wordPosition ranking rules."
)
DOCS = [
    {"id": 1, "title": "rust book", "body": "learn the rust language", "n": 3},
    {"id": 2, "title": "the book", "body": "rust", "n": 1},
    {"id": 3, "title": "a guide to rust and cargo", "body": "book", "n": 2},
    {"id": 4, "title": "cargo", "body": "the rust book of cargo", "n": 5},
    {"id": 5, "title": "python", "body": "not this one", "n": 4},
    {"id": 6, "title": "serial 1234", "body": "part 98765", "n": 6},
    {"id": 7, "title": "rust", "body": "book rust book", "n": 0},
]


@pytest.fixture(scope="module")
def both():
    """(Miroir client, devnode client, Miroir cluster)."""
    with (
        start_devnodes(1) as (oracle,),
        start_cluster(nodes=2, shards=4) as cluster,
        httpx.Client(base_url=cluster.url, timeout=20) as m,
        httpx.Client(base_url=oracle.url, timeout=20) as d,
    ):
        yield m, d, cluster


def test_default_settings_are_150s(both):
    m, d, _ = both
    for c in (m, d):
        index_with(c, "defaults")
        got = c.get("/indexes/defaults/settings").json()
        assert got == DEFAULT_150 and list(got) == list(DEFAULT_150)
        assert c.get("/indexes/defaults/settings/ranking-rules").json() == DEFAULT_150["rankingRules"]
        # Sub-routes of feature-gated keys always answer.
        assert c.get("/indexes/defaults/settings/foreign-keys").json() == []
        chat = c.get("/indexes/defaults/settings/chat").json()
        assert chat == {"description": "", "documentTemplate": TEMPLATE, "documentTemplateMaxBytes": 400, "searchParameters": {}}


def test_get_settings_fed_back_to_patch_is_accepted(both):
    m, d, _ = both
    configured = {
        "searchableAttributes": ["title", "body"],
        "sortableAttributes": ["n"],
        "rankingRules": ["words", "typo", "proximity", "attributeRank", "sort", "wordPosition", "exactness", "n:desc"],
        "typoTolerance": {"disableOnNumbers": True, "minWordSizeForTypos": {"oneTypo": 4, "twoTypos": 8}},
        "faceting": {"sortFacetValuesBy": {"title": "count"}},
        "pagination": {"maxTotalHits": 50},
        "searchCutoffMs": 800,
        "localizedAttributes": [{"attributePatterns": ["title"], "locales": ["eng"]}],
        "embedders": {
            "manual": {"source": "userProvided", "dimensions": 3, "distribution": {"mean": 0.5, "sigma": 0.1}},
            "remote": {"source": "rest", "url": "https://localhost:7777", "dimensions": 4, "request": "{{text}}",
                       "response": "{{embedding}}"},
        },
    }
    answers = []
    for c in (m, d):
        index_with(c, "roundtrip")
        done(c, c.patch("/indexes/roundtrip/settings", json=configured))
        first = c.get("/indexes/roundtrip/settings").json()
        done(c, c.patch("/indexes/roundtrip/settings", json=first))
        assert c.get("/indexes/roundtrip/settings").json() == first
        # A secret is shown masked (fed back, the mask would become the secret, as in 1.50).
        secret = {"remote": {"apiKey": "My super secret value you will never guess"}}
        done(c, c.patch("/indexes/roundtrip/settings/embedders", json=secret))
        answers.append(c.get("/indexes/roundtrip/settings").json())
    assert answers[0] == answers[1]
    got = answers[0]
    assert got["typoTolerance"]["disableOnNumbers"] is True
    assert got["faceting"]["sortFacetValuesBy"] == {"*": "alpha", "title": "count"}  # `*` always shown
    # The shape 1.50 shows (secrets_are_hidden_in_settings).
    assert got["embedders"]["remote"] == {
        "source": "rest", "apiKey": "My suXXXXXX...", "dimensions": 4, "documentTemplate": TEMPLATE,
        "documentTemplateMaxBytes": 400, "url": "https://localhost:7777", "request": "{{text}}",
        "response": "{{embedding}}", "headers": {},
    }
    assert got["embedders"]["manual"] == {"source": "userProvided", "dimensions": 3,
                                          "distribution": {"mean": 0.5, "sigma": 0.1}}
    assert "foreignKeys" not in got and "chat" not in got  # their features are off


# (method, route under /indexes/x/settings, body, code, message), 1.50's texts.
REFUSED = [
    ("PATCH", "", {"rankingRules": ["words", "attribute", "attributeRank"]}, "invalid_settings_ranking_rules", MIXED),
    ("PATCH", "", {"rankingRules": ["typo", "attribute", "wordPosition", "exactness"]}, "invalid_settings_ranking_rules", MIXED),
    ("PUT", "/ranking-rules", ["attribute", "attributeRank"], "invalid_settings_ranking_rules", MIXED),
    ("PATCH", "", {"rankingRules": ["manyTheFish"]}, "invalid_settings_ranking_rules",
     ("Invalid value at `.rankingRules[0]`: `manyTheFish` ranking rule is invalid. Valid ranking rules are words, typo, "
     "sort, proximity, attribute, exactness and custom ranking rules.")),
    ("PATCH", "", {"rankingRules": ["_geoPoint(1,2):asc"]}, "invalid_settings_ranking_rules",
     ("Invalid value at `.rankingRules[0]`: `_geoPoint` is a reserved keyword and thus can't be used as a ranking rule. "
     "`_geoPoint` can only be used for sorting at search time")),
    ("PATCH", "/pagination", {"maxTotalHits": 0}, "invalid_settings_pagination",
     ("Invalid value at `.maxTotalHits`: a non-zero integer value lower than `18446744073709551615` was expected, "
     "but found a zero")),
    ("PATCH", "/typo-tolerance", {"typoTolerance": {"minWordSizeForTypos": "doggo"}}, "invalid_settings_typo_tolerance",
     ("Unknown field `typoTolerance`: expected one of `enabled`, `minWordSizeForTypos`, `disableOnWords`, "
     "`disableOnAttributes`, `disableOnNumbers`")),
    ("PATCH", "", {"typoTolerance": {"minWordSizeForTypos": {"oneTypo": 9, "twoTypos": 5}}}, "invalid_settings_typo_tolerance",
     ("Invalid value at `.typoTolerance.minWordSizeForTypos`: `minWordSizeForTypos` setting is invalid. `oneTypo` and "
     "`twoTypos` fields should be between `0` and `255`, and `twoTypos` should be greater or equals to `oneTypo` but "
     "found `oneTypo: 9` and twoTypos: 5`.")),
    ("PATCH", "", {"doggo": 1}, "bad_request",
     ("Unknown field `doggo`: expected one of `displayedAttributes`, `searchableAttributes`, `filterableAttributes`, "
     "`sortableAttributes`, `foreignKeys`, `rankingRules`, `stopWords`, `nonSeparatorTokens`, `separatorTokens`, "
     "`dictionary`, `synonyms`, `distinctAttribute`, `proximityPrecision`, `typoTolerance`, `faceting`, `pagination`, "
     "`embedders`, `searchCutoffMs`, `localizedAttributes`, `facetSearch`, `prefixSearch`, `chat`")),
    ("PATCH", "", {"embedders": {"manual": {"source": "userProvided", "dimensions": 128, "documentTemplate": "{{doc.x}}"}}},
     "invalid_settings_embedders",
     ("`.embedders.manual`: Field `documentTemplate` unavailable for source `userProvided`.\n  - note: `documentTemplate` "
     "is available for sources: `openAi`, `huggingFace`, `ollama`, `rest`\n  - note: available fields for source "
     "`userProvided`: `source`, `dimensions`, `distribution`, `binaryQuantized`")),
    ("PATCH", "", {"embedders": {"r": {"source": "rest", "request": "{{text}}", "response": "{{embedding}}"}}},
     "invalid_settings_embedders", "`.embedders.r`: Missing field `url` (note: this field is mandatory for source `rest`)"),
]


@pytest.mark.parametrize("method,route,body,code,message", REFUSED, ids=range(len(REFUSED)))
def test_refused_like_150(both, method, route, body, code, message):
    m, d, cluster = both
    for c in (m, d):
        r = c.request(method, f"/indexes/refused/settings{route}", json=body)
        assert r.status_code == 400, r.text
        assert r.json()["code"] == code and r.json()["message"] == message, r.json()
    # Refused before any node is touched: no node holds the index.
    for node in cluster.devnodes:
        assert httpx.get(f"{node.url}/indexes/refused", timeout=5).status_code == 404


def test_gated_keys_need_their_feature(both):
    for c in both[:2]:
        r = c.patch("/indexes/refused/settings", json={"foreignKeys": [{"foreignIndexUid": "a", "fieldName": "b"}]})
        assert r.status_code == 400 and r.json()["code"] == "feature_not_enabled", r.text
        assert r.json()["message"] == (
            "setting `foreignKeys` in the index settings requires enabling the `foreign_keys` experimental feature. "
            "See https://github.com/orgs/meilisearch/discussions/873"
        )
        r = c.patch("/indexes/refused/settings/chat", json={"description": "movies"})
        assert r.status_code == 400 and r.json()["code"] == "feature_not_enabled", r.text


def _search(c: httpx.Client, uid: str, **body) -> dict:
    r = c.post(f"/indexes/{uid}/search", json={"showRankingScore": True, "showRankingScoreDetails": True, **body})
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.parametrize("rules", [
    None,  # 1.50's defaults: attributeRank, sort, wordPosition
    ["words", "typo", "proximity", "attribute", "sort", "exactness"],
    ["wordPosition", "n:desc", "attributeRank"],  # words ranked first all the same
], ids=["default", "unified", "split-apart"])
def test_split_rules_merge_like_one_node(both, rules):
    m, d, _ = both
    uid = f"rank{0 if rules is None else len(rules)}"
    settings = {"searchableAttributes": ["title", "body"], "sortableAttributes": ["n"]}
    if rules is not None:
        settings["rankingRules"] = rules
    for c in (m, d):
        index_with(c, uid, DOCS)
        done(c, c.patch(f"/indexes/{uid}/settings", json=settings))
    for body in ({"q": "rust book"}, {"q": "cargo rust"}, {"q": "book", "sort": ["n:asc"]}, {"q": "the rust"},
                 {"q": "rust book", "matchingStrategy": "all"}):
        if "sort" in body and rules is not None and "sort" not in rules:
            continue
        got, want = _search(m, uid, **body), _search(d, uid, **body)
        assert [h["id"] for h in got["hits"]] == [h["id"] for h in want["hits"]], body
        assert [h["_rankingScoreDetails"] for h in got["hits"]] == [h["_rankingScoreDetails"] for h in want["hits"]]
        assert [h["_rankingScore"] for h in got["hits"]] == [h["_rankingScore"] for h in want["hits"]]
        details = want["hits"][0]["_rankingScoreDetails"]
        if rules is None or "attributeRank" in rules:
            assert "attribute" not in details and details["attributeRank"].keys() == {"order", "score"}
            assert details["wordPosition"].keys() == {"order", "score"}
        else:
            assert list(details["attribute"]) == ["order", "attributeRankingOrderScore", "queryWordDistanceScore", "score"]


def test_disable_on_numbers_applies(both):
    m, d, _ = both
    for c in (m, d):
        index_with(c, "numbers", DOCS)
        assert [h["id"] for h in _search(c, "numbers", q="98766")["hits"]] == [6]  # one typo away
        done(c, c.patch("/indexes/numbers/settings/typo-tolerance", json={"disableOnNumbers": True}))
        assert _search(c, "numbers", q="98766")["hits"] == []
        assert [h["id"] for h in _search(c, "numbers", q="98765")["hits"]] == [6]
        assert [h["id"] for h in _search(c, "numbers", q="pyhton")["hits"]] == [5]  # words keep their typos


def test_search_cutoff_skips_the_rules_left():
    eng = IndexEngine("cutoff", settings={"searchCutoffMs": 0})
    eng.add_documents([dict(doc) for doc in DOCS], "id", partial=False)
    hits = eng.search({"q": "rust book", "showRankingScore": True, "showRankingScoreDetails": True})["hits"]
    assert [h["id"] for h in hits] == sorted(h["id"] for h in hits)  # not ranked: internal order
    assert all(h["_rankingScoreDetails"] == {"skipped": {"order": 0}} and h["_rankingScore"] == 0.0 for h in hits)
    eng.set_settings({**eng.settings, "searchCutoffMs": None})
    hits = eng.search({"q": "rust book", "showRankingScoreDetails": True})["hits"]
    assert all("skipped" not in h["_rankingScoreDetails"] for h in hits)


def test_client_view_keeps_150_keys_only():
    """A node of a newer engine may show keys 1.50 does not know: `GET /settings` must
    stay acceptable to `PATCH /settings`, so Miroir leaves them out; a journaled view
    from before `disableOnNumbers` reads back with it."""
    from miroir.core import settings as core

    node = {**core.DEFAULTS, "vectorStore": "experimental", "executeAfterUpdate": True}
    view = core.client_view(node, 100)
    assert "vectorStore" not in view and "executeAfterUpdate" not in view
    core.decode_settings(core.visible(view))  # accepted as it is
    old = {k: v for k, v in core.DEFAULTS.items() if k not in ("foreignKeys", "chat")}
    old["typoTolerance"] = {k: v for k, v in old["typoTolerance"].items() if k != "disableOnNumbers"}
    assert core.visible(old) == DEFAULT_150
