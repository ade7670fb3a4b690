"""Ranking of the devnode engine: scores follow milli's model, depend only on the query,
the document and the settings, and the emitted details order hits exactly like the engine."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from miroir.core.sortvalue import sort_key
from miroir.devnode import ranking
from miroir.devnode.engine import IndexEngine
from miroir.devnode.ranking import Rank, global_score
from tests.support.corpus import CORPUS as DEBIAN, read_docs


def test_global_score_matches_milli_fold():
    # words 2/3 then typo 1/2: milli merges (rank-1)*inner_max + inner_rank over max product.
    assert global_score([Rank(2, 3), Rank(1, 2)]) == pytest.approx(3 / 6)
    assert global_score([]) == 1.0
    assert global_score([Rank(3, 3), Rank(2, 2), Rank(8, 8)]) == 1.0


def test_cost_from_distance_buckets():
    assert [ranking.cost_from_distance(d) for d in (0, 1, 2, 4, 5, 8, 12, 17, 25, 65, 257, 2000)] == [
        0, 1, 2, 2, 3, 4, 5, 6, 7, 8, 9, 10,
    ]


def test_position_cost_on_bucketed_positions():
    # milli indexes positions 16..23 as 24, then as the next power of two.
    assert [ranking.bucketed_position(p) for p in (0, 15, 16, 23, 24, 32, 33, 1000)] == [0, 15, 24, 24, 32, 32, 64, 1024]
    assert ranking.position_cost(20, 0) == ranking.cost_from_distance(24)
    assert ranking.position_cost(3, 1) == 2


def test_exact_match_type_as_milli_exact_attribute():
    b = ranking.PACK_BITS
    counts = {0: 2, 1: 3}
    # Both words at their query positions in field 0, which holds 2 words.
    assert ranking.exact_match_type([0, 1], [0, 1], [[0 << b | 0], [0 << b | 1]], counts) == "exactMatch"
    # The words may stand at their positions in different fields if one field holds both.
    assert ranking.exact_match_type([0, 1], [0, 1], [[0 << b | 0, 1 << b | 2], [1 << b | 1]], counts) == "matchesStart"
    # A term the rule ignores (None) at the end leaves the others to decide...
    assert ranking.exact_match_type([0, 1], [0, 1], [[0 << b | 0], None], {0: 1}) == "exactMatch"
    # ...but not first, nor as a hole; a word missing from the document is no match.
    assert ranking.exact_match_type([0, 1], [0, 1], [None, [0 << b | 1]], counts) == "noExactMatch"
    assert ranking.exact_match_type([0, 1, 2], [0, 1, 2], [[0], None, [2]], counts) == "noExactMatch"
    assert ranking.exact_match_type([0, 1], [0, 1], [[0], ()], counts) == "noExactMatch"


def test_hard_separators_are_charabia_0_9_9s():
    from miroir.devnode.text import Tokenizer

    positions = lambda text: [p for p, _ in Tokenizer().words(text)]  # noqa: E731
    assert positions("returns: Part 1") == [0, 1, 2]  # a colon is soft
    assert positions("a.b a,b a\nb") == [0, 1, 2, 3, 4, 5]  # lone period, comma, newline: soft
    assert positions("a. b, c; d! e") == [0, 8, 16, 24, 32]


def _engine(docs, **settings):
    eng = IndexEngine("t", settings=settings or None)
    eng.add_documents(docs, "id", partial=False)
    return eng


def _search(eng, **params):
    params.setdefault("showRankingScore", True)
    params.setdefault("showRankingScoreDetails", True)
    return eng.search(params)


OLD_RULES = ["words", "typo", "proximity", "attribute", "sort", "exactness"]


def test_details_shape_and_global_score():
    eng = _engine([{"id": 1, "title": "hello world"}, {"id": 2, "title": "world hello there"}], rankingRules=OLD_RULES)
    hits = _search(eng, q="hello world")["hits"]
    d = hits[0]["_rankingScoreDetails"]
    assert list(d) == ["words", "typo", "proximity", "attribute", "exactness"]
    assert d["words"] == {"order": 0, "matchingWords": 2, "maxMatchingWords": 2, "score": 1.0}
    assert d["typo"] == {"order": 1, "typoCount": 0, "maxTypoCount": 2, "score": 1.0}
    assert d["proximity"] == {"order": 2, "score": 1.0}
    assert list(d["attribute"]) == ["order", "attributeRankingOrderScore", "queryWordDistanceScore", "score"]
    assert d["exactness"] == {"order": 4, "matchType": "exactMatch", "score": 1.0}
    assert hits[0]["_rankingScore"] == 1.0
    second = hits[1]["_rankingScoreDetails"]
    # "world hello": reversed pair costs proximity 2 -> cost 1 of max 3 -> rank 3/4.
    assert second["proximity"]["score"] == pytest.approx(3 / 4)
    assert second["exactness"]["matchType"] == "noExactMatch"
    assert list(second["exactness"]) == ["order", "matchType", "matchingWords", "maxMatchingWords", "score"]
    assert hits[1]["_rankingScore"] < 1.0


def test_default_rules_split_attribute_details():
    """1.36+ defaults: `attributeRank` and `wordPosition` are entries of their own,
    `{order, score}` each, with `sort` between them (score_details.rs, Separated)."""
    eng = _engine([{"id": 1, "title": "x", "body": "rust lang"}, {"id": 2, "title": "rust lang", "body": "x"}],
                  searchableAttributes=["title", "body"])
    hits = _search(eng, q="lang")["hits"]
    assert [h["id"] for h in hits] == [2, 1]
    d = hits[1]["_rankingScoreDetails"]
    assert list(d) == ["words", "typo", "proximity", "attributeRank", "wordPosition", "exactness"]
    assert d["attributeRank"] == {"order": 3, "score": 0.5}  # 2nd of 2 attributes
    # "lang" is the 2nd word of its attribute, the 1st of the query: cost 1 of 10.
    assert d["wordPosition"] == {"order": 4, "score": pytest.approx(10 / 11)}
    # typo: "lang" allows no typo, but milli budgets a split into two words as one (2/2).
    assert hits[1]["_rankingScore"] == pytest.approx(global_score([Rank(2, 2), Rank(1, 2), Rank(10, 11), Rank(1, 3), Rank(2, 2)]))


def test_split_rules_rank_apart_around_sort():
    """`attributeRank, sort, wordPosition`: a sort criterion decides before the word
    position does, which `attribute` (both at once) cannot express."""
    docs = [{"id": 1, "t": "x x x x x rust", "n": 1}, {"id": 2, "t": "rust", "n": 2}]
    split = _engine(docs, sortableAttributes=["n"])
    assert [h["id"] for h in split.search({"q": "rust", "sort": ["n:asc"]})["hits"]] == [1, 2]
    unified = _engine(docs, sortableAttributes=["n"], rankingRules=OLD_RULES)
    assert [h["id"] for h in unified.search({"q": "rust", "sort": ["n:asc"]})["hits"]] == [2, 1]
    only_position = _engine(docs, rankingRules=["wordPosition"])
    d = _search(only_position, q="rust")["hits"][0]["_rankingScoreDetails"]
    assert list(d) == ["words", "wordPosition"]  # milli ranks by words before any text rule


def test_placeholder_search_scores_one_and_keeps_insertion_order():
    eng = _engine([{"id": i, "t": "x"} for i in (5, 3, 9)])
    res = _search(eng, q="")
    assert [h["id"] for h in res["hits"]] == [5, 3, 9]
    assert all(h["_rankingScore"] == 1.0 and h["_rankingScoreDetails"] == {} for h in res["hits"])


def test_sort_and_custom_rule_details():
    eng = _engine(
        [{"id": 1, "p": 3, "t": "a b"}, {"id": 2, "p": 1, "t": "a"}, {"id": 3, "t": "a"}],
        sortableAttributes=["p"],
        rankingRules=["sort", "words", "p:desc"],
    )
    res = _search(eng, q="a", sort=["p:asc"])
    assert [h["id"] for h in res["hits"]] == [2, 1, 3]
    d = res["hits"][0]["_rankingScoreDetails"]
    assert d["p:asc"] == {"order": 0, "value": 1}
    assert d["words"]["order"] == 1 and d["p:desc"] == {"order": 2, "value": 1}
    assert res["hits"][2]["_rankingScoreDetails"]["p:asc"] == {"order": 0, "value": None}


def test_custom_rule_orders_text_search():
    eng = _engine([{"id": i, "t": "apple", "price": p} for i, p in enumerate([5, 1, 9])],
                  rankingRules=["words", "price:desc"])
    assert [h["price"] for h in eng.search({"q": "apple"})["hits"]] == [9, 5, 1]


def test_attribute_weights_follow_searchable_order():
    eng = _engine(
        [{"id": 1, "title": "x", "body": "rust"}, {"id": 2, "title": "rust", "body": "x"}],
        searchableAttributes=["title", "body"],
        rankingRules=OLD_RULES,
    )
    hits = _search(eng, q="rust")["hits"]
    assert [h["id"] for h in hits] == [2, 1]
    assert hits[0]["_rankingScoreDetails"]["attribute"]["attributeRankingOrderScore"] == 1.0
    assert hits[1]["_rankingScoreDetails"]["attribute"]["attributeRankingOrderScore"] == 0.5


def test_ranking_score_threshold_drops_low_scores():
    eng = _engine([{"id": 1, "t": "big fat cat"}, {"id": 2, "t": "big dog"}])
    res = eng.search({"q": "big fat cat", "rankingScoreThreshold": 0.9, "showRankingScore": True})
    assert [h["id"] for h in res["hits"]] == [1]
    assert res["estimatedTotalHits"] == 1


def _load_debian(n):
    return read_docs(n)


PROBE = {
    "id": 99_999_999,
    "name": "pylibrary-viewer",
    "summary": "Python library for image viewing over the network",
    "description": "A small viewer. The python library reads images; network transparent.",
    "section": "python",
    "installed_size_kb": 12,
    "tags": ["role::program"],
}
PROBE_QUERIES = ["python library", "image viewr", "network", "librar", "python image network", "viewing python", "pyth"]


@pytest.mark.skipif(not DEBIAN.exists(), reason="Debian corpus not available")
@pytest.mark.parametrize("extra", [{}, {"searchableAttributes": ["name", "summary", "description"], "rankingRules": ["words", "typo", "attribute", "proximity", "exactness", "installed_size_kb:asc"]}])
def test_score_depends_only_on_query_document_and_settings(extra):
    # The probe is found by a filter: the crowd stays in the index (what could sway a
    # score), and the probe needs not rank in the first 1,000 hits.
    settings = {**extra, "filterableAttributes": ["id"]}
    alone = IndexEngine("alone", settings=settings)
    alone.add_documents([PROBE], "id", partial=False)
    crowd = IndexEngine("crowd", settings=settings)
    crowd.add_documents(_load_debian(10_000), "id", partial=False)
    crowd.add_documents([PROBE], "id", partial=False)
    for q in PROBE_QUERIES:
        params = {"q": q, "filter": None, "showRankingScore": True, "showRankingScoreDetails": True,
                  "attributesToRetrieve": ["id"]}
        a = alone.search(dict(params))["hits"]
        probe_filter = {**params, "filter": f"id = {PROBE['id']}"}
        b = crowd.search(probe_filter)["hits"]
        assert len(a) == 1 and len(b) == 1, q
        assert a[0]["_rankingScoreDetails"] == b[0]["_rankingScoreDetails"], q
        assert a[0]["_rankingScore"] == b[0]["_rankingScore"], q


def details_key(details: dict):
    """How Miroir's merge compares two hits: rule by rule in `order`, scores descending,
    sort/custom values with sortvalue.sort_key."""
    key = []
    for name, d in sorted(details.items(), key=lambda kv: kv[1]["order"]):
        if "score" in d:
            key.append((0, -d["score"]))
        else:
            asc = name.rsplit(":", 1)[1] == "asc"
            key.append(sort_key(d["value"], asc))
    return key


WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "alphas", "gama", "betamax", "zeta", "eta"]
doc_st = st.fixed_dictionaries({
    "title": st.lists(st.sampled_from(WORDS), max_size=6).map(" ".join),
    "body": st.lists(st.sampled_from(WORDS), max_size=12).map(" ".join),
    "n": st.one_of(st.none(), st.integers(0, 5)),
})
rules_st = st.one_of(
    st.permutations(["words", "typo", "proximity", "attribute", "sort", "exactness", "n:desc"]),
    st.permutations(["words", "typo", "proximity", "attributeRank", "sort", "wordPosition", "exactness", "n:desc"]),
    st.permutations(["typo", "wordPosition", "sort", "n:desc"]),
)


@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    docs=st.lists(doc_st, min_size=1, max_size=14),
    rules=rules_st,
    q=st.lists(st.sampled_from([*WORDS, "alp", "gam", "epsilom"]), min_size=0, max_size=3).map(" ".join),
    strategy=st.sampled_from(["last", "all", "frequency"]),
    sort=st.sampled_from([None, ["n:asc"], ["n:desc"]]),
    searchable=st.sampled_from([["*"], ["title", "body"], ["body", "title"]]),
)
def test_engine_order_equals_order_of_emitted_details(docs, rules, q, strategy, sort, searchable):
    eng = IndexEngine("p", settings={"rankingRules": rules, "sortableAttributes": ["n"], "searchableAttributes": searchable})
    eng.add_documents([{"id": i, **d} for i, d in enumerate(docs)], "id", partial=False)
    params = {"q": q, "matchingStrategy": strategy, "showRankingScoreDetails": True, "limit": 100}
    if sort:
        params["sort"] = sort
    hits = eng.search(params)["hits"]
    expected = sorted(hits, key=lambda h: (details_key(h["_rankingScoreDetails"]), h["id"]))
    assert [h["id"] for h in hits] == [h["id"] for h in expected]


def test_all_words_strategy_has_no_words_rule():
    """milli does not add `words` with `matchingStrategy: all` (every hit holds every
    word), so its details have no `words` entry and it counts in no score."""
    eng = _engine([{"id": 1, "t": "big fat cat"}, {"id": 2, "t": "cat fat big"}])
    hits = _search(eng, q="big cat", matchingStrategy="all")["hits"]
    d = hits[0]["_rankingScoreDetails"]
    assert "words" not in d and d["typo"]["order"] == 0
    last = _search(eng, q="big cat", matchingStrategy="last")["hits"][0]
    assert "words" in last["_rankingScoreDetails"]
    assert [h["id"] for h in hits] == [h["id"] for h in _search(eng, q="big cat", matchingStrategy="last")["hits"]]
