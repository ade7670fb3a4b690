"""The read-path merge: hits, totals, facets, stripping, documents, federation."""

from __future__ import annotations

import copy
import functools
import itertools
import math

from hypothesis import given, settings, strategies as st

from miroir.core.facets import (
    distribution_is_exact,
    facet_order,
    merge_facet_distribution,
    merge_facet_search,
    merge_facet_stats,
)
from miroir.core.federation import FederatedQuery, IndexFacets, hit_document_ids, merge_federated
from miroir.core.merge import hit_key_function, merge_documents, merge_listing, merge_search, plan_deep_listing
from miroir.core.searchplan import SearchRequest, custom_rule, parse_sort_criterion
from miroir.core.sortvalue import field_value, sort_key

DEFAULT_RULES = ["words", "typo", "proximity", "attribute", "sort", "exactness"]


def details(words=1.0, typo=1.0, proximity=1.0, attribute=1.0, exactness=1.0, **extra):
    d = {
        "words": {"order": 0, "matchingWords": 1, "maxMatchingWords": 1, "score": words},
        "typo": {"order": 1, "typoCount": 0, "maxTypoCount": 1, "score": typo},
        "proximity": {"order": 2, "score": proximity},
        "attribute": {"order": 3, "attributeRankingOrderScore": 1.0, "queryWordDistanceScore": 1.0, "score": attribute},
        "exactness": {"order": 5, "matchType": "exactMatch", "score": exactness},
    }
    d.update(extra)
    return d


def hit(id, score=1.0, det=None, shard=0, **fields):
    h = {"id": id, **fields, "_miroir_shard": shard, "_rankingScore": score}
    if det is not None:
        h["_rankingScoreDetails"] = det
    return h


def node(hits, total=None, **extra):
    return {"hits": hits, "query": "", "processingTimeMs": 1, "limit": 20, "offset": 0,
            "estimatedTotalHits": len(hits) if total is None else total, **extra}


def merge(req, nodes, *, rules=DEFAULT_RULES, distinct=None, max_values=100, sort_by=None, added=(), max_total_hits=None,
          by_score=None):
    return merge_search(
        req, ranking_rules=rules, node_responses=nodes, distinct_attribute=distinct, max_values_per_facet=max_values,
        sort_facet_values_by=sort_by or {}, processing_time_ms=7, added_fields=set(added), max_total_hits=max_total_hits,
        by_score=by_score,
    )


def ids(resp):
    return [h["id"] for h in resp["hits"]]


# ---------------------------------------------------------------- sort


def test_sort_one_numeric_field_asc_missing_last():
    a = [hit(1, price=1), hit(3, price=5), hit(5)]
    b = [hit(2, price=2), hit(4, price=7), hit(6, price=None)]
    resp = merge(SearchRequest(sort=["price:asc"]), [node(a), node(b)])
    assert ids(resp) == [1, 2, 3, 4, 5, 6]


def test_sort_desc_numbers_before_strings_missing_last():
    a = [hit(1, v=10), hit(3, v="b"), hit(5)]
    b = [hit(2, v=3.5), hit(4, v="a")]
    resp = merge(SearchRequest(sort=["v:desc"]), [node(a), node(b)])
    assert ids(resp) == [1, 2, 3, 4, 5]


def test_sort_strings_case_insensitive_asc():
    a = [hit(1, name="apple"), hit(3, name="Cherry")]
    b = [hit(2, name="Banana"), hit(4, name="date")]
    assert ids(merge(SearchRequest(sort=["name:asc"]), [node(a), node(b)])) == [1, 2, 3, 4]


def test_sort_two_fields():
    # genre asc, then year desc
    a = [hit(1, genre="a", year=2000), hit(4, genre="b", year=2010), hit(6, genre="b", year=1990)]
    b = [hit(2, genre="a", year=1999), hit(3, genre="b", year=2020), hit(5, genre="b", year=2000)]
    resp = merge(SearchRequest(sort=["genre:asc", "year:desc"]), [node(a), node(b)])
    assert ids(resp) == [1, 2, 3, 4, 5, 6]


def test_sort_value_from_details_when_field_not_displayed():
    def d(v):
        return {"price:asc": {"order": 0, "value": v}}

    a = [hit(1, det=d(1)), hit(3, det=d(3))]
    b = [hit(2, det=d(2))]
    assert ids(merge(SearchRequest(sort=["price:asc"]), [node(a), node(b)])) == [1, 2, 3]


def test_dotted_sort_field():
    a = [hit(1, info={"rank": 1}), hit(3, info={"rank": 3})]
    b = [hit(2, info={"rank": 2})]
    assert ids(merge(SearchRequest(sort=["info.rank:asc"]), [node(a), node(b)])) == [1, 2, 3]


def test_geo_sort_uses_geo_distance():
    a = [hit(1, _geoDistance=10), hit(3, _geoDistance=300)]
    b = [hit(2, _geoDistance=20)]
    resp = merge(SearchRequest(sort=["_geoPoint(1.0,2.0):asc"]), [node(a), node(b)])
    assert ids(resp) == [1, 2, 3] and resp["hits"][0]["_geoDistance"] == 10


# ---------------------------------------------------------------- ranking rules


def test_rule_order_decides_between_words_and_sort():
    # hit 2 matches more words; with words before sort it wins despite a worse price
    a = [hit(1, 0.5, details(words=0.5), price=1)]
    b = [hit(2, 0.9, details(words=1.0), price=9)]
    req = SearchRequest(q="two words", sort=["price:asc"])
    assert ids(merge(req, copy.deepcopy([node(a), node(b)]))) == [2, 1]
    rules = ["sort", "words", "typo", "proximity", "attribute", "exactness"]
    assert ids(merge(req, [node(a), node(b)], rules=rules)) == [1, 2]


def test_detail_scores_compared_rule_by_rule_when_a_custom_rule_breaks_ties():
    # A custom rule's values do not enter the score, so the details decide, rule by rule:
    # hit 1 has fewer typos (typo comes first), whatever the global scores say.
    rules = [*DEFAULT_RULES, "n:desc"]
    a = [hit(1, 0.80, details(typo=1.0, proximity=0.2), n=1)]
    b = [hit(2, 0.85, details(typo=0.5, proximity=1.0), n=9)]
    assert ids(merge(SearchRequest(q="x"), [node(a), node(b)], rules=rules)) == [1, 2]
    # ... and equal details leave the order to the custom rule.
    c = [hit(3, 0.80, details(), n=1)]
    d = [hit(4, 0.80, details(), n=9)]
    assert ids(merge(SearchRequest(q="x"), [node(c), node(d)], rules=rules)) == [4, 3]


def test_text_search_with_scoring_rules_only_is_merged_by_score():
    # No custom rule, no sort criteria: a node's order is its score order (the score is
    # milli's fold of the rules' ranks), so no details are needed, and none are asked for.
    a = [hit(1, 0.9), hit(3, 0.5), hit(4, 0.2)]
    b = [hit(2, 0.7), hit(5, 0.5)]
    assert ids(merge(SearchRequest(q="x"), [node(a), node(b)], by_score=True)) == [1, 2, 3, 5, 4]
    # By score, details (when sent anyway) are not compared.
    def nodes():  # fresh hits each time: the merge strips the hits it takes
        return [node([hit(6, 0.6, details(typo=0.1))]), node([hit(7, 0.5, details(typo=1.0))])]

    assert ids(merge(SearchRequest(q="x"), nodes(), by_score=True)) == [6, 7]
    assert ids(merge(SearchRequest(q="x"), nodes(), by_score=False)) == [7, 6]


def test_custom_ranking_rule_placeholder_without_details():
    rules = ["words", "typo", "proximity", "attribute", "sort", "exactness", "popularity:desc"]
    a = [hit(1, popularity=90), hit(4, popularity=10)]
    b = [hit(2, popularity=50), hit(3, popularity=20), hit(5)]
    assert ids(merge(SearchRequest(), [node(a), node(b)], rules=rules)) == [1, 2, 3, 4, 5]


def test_ranking_score_then_node_order_then_rank():
    a = [hit(1, 0.9), hit(3, 0.5), hit(4, 0.5)]
    b = [hit(2, 0.9), hit(5, 0.5)]
    # placeholder, no sort: only _rankingScore, ties by node position then rank on node
    assert ids(merge(SearchRequest(), [node(a), node(b)])) == [1, 2, 3, 4, 5]


def test_hybrid_merges_by_score_only():
    a = [hit(1, 0.9, details(words=0.1)), hit(3, 0.2, details(words=1.0))]
    b = [hit(2, 0.5, details(words=1.0))]
    req = SearchRequest(q="x", hybrid={"embedder": "default", "semanticRatio": 0.5})
    assert ids(merge(req, [node(a), node(b)])) == [1, 2, 3]


# ---------------------------------------------------------------- distinct and windows


def test_distinct_across_nodes_first_occurrence_wins():
    a = [hit(1, 0.9, sku="x"), hit(3, 0.7, sku="y"), hit(6, 0.1)]
    b = [hit(2, 0.8, sku="X"), hit(4, 0.6, sku="z"), hit(5, 0.2)]
    resp = merge(SearchRequest(), copy.deepcopy([node(a), node(b)]), distinct="sku")
    assert ids(resp) == [1, 3, 4, 5, 6]  # 2 duplicates "x" (normalized); missing values all kept
    resp = merge(SearchRequest(distinct="sku", limit=2, offset=1), copy.deepcopy([node(a), node(b)]))
    assert ids(resp) == [3, 4]


def test_hits_stripped_wherever_the_merge_takes_them():
    """The merge strips each hit as it takes it: from the heap, from the tail of the last
    list left, with and without distinct, on short pages and long ones (hits read with
    their own key objects)."""
    for n in (3, 40):
        a = [hit(i, 1 - i / 1000, details(), shard=1, sku=i % 7, _formatted={"_miroir_shard": 1})
             for i in range(0, 2 * n, 2)]
        b = [hit(i, 1 - i / 1000, details(), shard=2, sku=i % 5) for i in range(1, n, 2)]  # runs out first
        for distinct in (None, "sku"):
            req = SearchRequest(q="x", offset=1, limit=2 * n, show_ranking_score=True)
            resp = merge(req, copy.deepcopy([node(a), node(b)]), distinct=distinct)
            assert len(resp["hits"]) >= 3
            for h in resp["hits"]:
                assert "_miroir_shard" not in h and "_rankingScoreDetails" not in h and "_rankingScore" in h
                assert h.get("_formatted", {}) == {}


def test_deep_offset():
    a = [hit(i, 1 - i / 100) for i in range(0, 30, 2)]
    b = [hit(i, 1 - i / 100) for i in range(1, 30, 2)]
    resp = merge(SearchRequest(offset=17, limit=5), [node(a, total=400), node(b, total=380)])
    assert ids(resp) == [17, 18, 19, 20, 21]
    assert (resp["offset"], resp["limit"], resp["estimatedTotalHits"]) == (17, 5, 780)
    assert "totalHits" not in resp and "page" not in resp


def test_page_mode_totals():
    a = [hit(i, 1 - i / 100) for i in range(0, 20, 2)]
    b = [hit(i, 1 - i / 100) for i in range(1, 20, 2)]
    nodes = [node(a, totalHits=21), node(b, totalHits=24)]
    for n in nodes:
        del n["estimatedTotalHits"]
    resp = merge(SearchRequest(page=2, hits_per_page=4), nodes)
    assert ids(resp) == [4, 5, 6, 7]
    assert {k: resp[k] for k in ("hitsPerPage", "page", "totalPages", "totalHits")} == {
        "hitsPerPage": 4, "page": 2, "totalPages": math.ceil(45 / 4), "totalHits": 45}
    assert "limit" not in resp and "estimatedTotalHits" not in resp
    assert list(resp)[:7] == ["hits", "query", "processingTimeMs", "hitsPerPage", "page", "totalPages", "totalHits"]


def test_page_zero_and_hits_per_page_zero():
    nodes = [node([hit(1)], totalHits=3)]
    resp = merge(SearchRequest(page=0), copy.deepcopy(nodes))
    assert resp["hits"] == [] and resp["totalHits"] == 3
    resp = merge(SearchRequest(hits_per_page=0), nodes)
    assert resp["hits"] == [] and resp["totalPages"] == 0 and resp["totalHits"] == 3


def test_max_total_hits_caps_window_and_totals():
    a = [hit(i, 1 - i / 100) for i in range(10)]
    resp = merge(SearchRequest(offset=6, limit=10), [node(a, total=900), node([], total=900)], max_total_hits=8)
    assert ids(resp) == [6, 7] and resp["estimatedTotalHits"] == 8 and resp["limit"] == 10


def test_response_echo_and_shape():
    resp = merge(SearchRequest(q="hey", offset=1, limit=1), [node([hit(1), hit(2)])])
    assert list(resp) == ["hits", "query", "processingTimeMs", "limit", "offset", "estimatedTotalHits"]
    assert resp["query"] == "hey" and resp["processingTimeMs"] == 7


# ---------------------------------------------------------------- stripping


def test_strips_miroir_fields_scores_and_added_fields():
    h = hit(1, 0.5, details(), title="t", price=3, info={"a": 1, "b": 2},
            _formatted={"title": "<em>t</em>", "price": "3", "info": {"a": "1", "b": "2"}, "_miroir_shard": "0"},
            _matchesPosition={"title": [{"start": 0, "length": 1}], "price": [{"start": 0, "length": 1}],
                              "info.a": [{"start": 0, "length": 1}]},
            _geoDistance=12)
    resp = merge(SearchRequest(sort=["price:asc"]), [node([h])], added=["price", "info.a"])
    out = resp["hits"][0]
    assert out == {
        "id": 1, "title": "t", "info": {"b": 2}, "_geoDistance": 12,
        "_formatted": {"title": "<em>t</em>", "info": {"b": "2"}},
        "_matchesPosition": {"title": [{"start": 0, "length": 1}]},
    }


def test_added_parent_removed_when_left_empty():
    h = hit(1, info={"rank": 1}, title="t")
    out = merge(SearchRequest(), [node([h])], added=["info.rank"])["hits"][0]
    assert out == {"id": 1, "title": "t"}


def test_keeps_scores_when_asked():
    h = hit(1, 0.5, details())
    req = SearchRequest(show_ranking_score=True, show_ranking_score_details=True)
    out = merge(req, [node([h])])["hits"][0]
    assert out["_rankingScore"] == 0.5 and out["_rankingScoreDetails"] == details() and "_miroir_shard" not in out


# ---------------------------------------------------------------- facets


def test_facet_distribution_sum_alpha_and_cut():
    n1 = node([], facetDistribution={"genre": {"drama": 3, "comedy": 1}, "year": {"2000": 1, "10": 2}})
    n2 = node([], facetDistribution={"genre": {"Action": 2, "drama": 4}, "year": {"9": 5}})
    resp = merge(SearchRequest(facets=["genre", "year"]), [n1, n2], max_values=2)
    assert resp["facetDistribution"] == {"genre": {"Action": 2, "comedy": 1}, "year": {"9": 5, "10": 2}}
    assert list(resp["facetDistribution"]["genre"]) == ["Action", "comedy"]
    assert list(resp["facetDistribution"]["year"]) == ["9", "10"]  # numbers in numeric order
    assert "facetStats" not in resp


def test_facet_distribution_count_order():
    n1 = node([], facetDistribution={"genre": {"drama": 3, "comedy": 1, "b": 1}})
    n2 = node([], facetDistribution={"genre": {"action": 2, "drama": 4, "a": 2}})
    resp = merge(SearchRequest(facets=["genre"]), [n1, n2], sort_by={"genre": "count", "*": "alpha"})
    assert list(resp["facetDistribution"]["genre"].items()) == [
        ("drama", 7), ("a", 2), ("action", 2), ("b", 1), ("comedy", 1)]


def test_facet_order_setting_lookup():
    assert facet_order({"*": "count"}, "x") == "count"
    assert facet_order({"*": "count", "x": "alpha"}, "x") == "alpha"
    assert facet_order(None, "x") == "alpha"


def test_facet_stats_min_max():
    n1 = node([], facetDistribution={}, facetStats={"price": {"min": 2.0, "max": 10.0}})
    n2 = node([], facetDistribution={}, facetStats={"price": {"min": 1.5, "max": 8.0}, "year": {"min": 1990, "max": 2000}})
    n3 = node([], facetDistribution={}, facetStats={})
    resp = merge(SearchRequest(facets=["price", "year"]), [n1, n2, n3])
    assert resp["facetStats"] == {"price": {"min": 1.5, "max": 10.0}, "year": {"min": 1990, "max": 2000}}
    assert merge_facet_stats([None]) == {}


def test_distribution_exactness():
    assert distribution_is_exact([{"g": {"a": 1, "b": 2}}, None], node_max_values_per_facet=3)
    assert not distribution_is_exact([{"g": {"a": 1, "b": 2, "c": 1}}], node_max_values_per_facet=3)
    assert merge_facet_distribution([], sort_facet_values_by=None, max_values_per_facet=None) == {}


def test_facet_search_merge():
    r1 = {"facetHits": [{"value": "Drama", "count": 3}, {"value": "Comedy", "count": 1}], "facetQuery": "d",
          "processingTimeMs": 1}
    r2 = {"facetHits": [{"value": "Drama", "count": 2}, {"value": "Doc", "count": 9}], "facetQuery": "d",
          "processingTimeMs": 1}
    out = merge_facet_search([r1, r2], facet_query="d", processing_time_ms=4)
    assert out == {"facetHits": [{"value": "Comedy", "count": 1}, {"value": "Doc", "count": 9},
                                 {"value": "Drama", "count": 5}], "facetQuery": "d", "processingTimeMs": 4}
    out = merge_facet_search([r1, r2], facet_query="d", order="count", max_values=2)
    assert out["facetHits"] == [{"value": "Doc", "count": 9}, {"value": "Drama", "count": 5}]


# ---------------------------------------------------------------- documents


def docs(shard, n, start=0):
    return [{"id": f"s{shard}-{i}", "_miroir_shard": shard} for i in range(start, start + n)]


def test_documents_one_round_all_shards_from_zero():
    totals = [3, 0, 4]
    pages = [{"results": docs(s, min(t, 6)), "offset": 0, "limit": 6, "total": t} for s, t in enumerate(totals)]
    out = merge_documents(pages, offset=2, limit=4)
    assert [d["id"] for d in out["results"]] == ["s0-2", "s2-0", "s2-1", "s2-2"]
    assert out["total"] == 7 and (out["offset"], out["limit"]) == (2, 4)
    assert all("_miroir_shard" not in d for d in out["results"])


def test_documents_windowed_pages():
    # shard 0 fetched from its offset 2, shard 1 empty page (not fetched), shard 2 from 0
    pages = [
        {"results": docs(0, 1, start=2), "offset": 2, "limit": 1, "total": 3},
        {"results": [], "offset": 0, "limit": 0, "total": 5},
        {"results": docs(2, 2), "offset": 0, "limit": 2, "total": 4},
    ]
    out = merge_documents(pages, offset=2, limit=20)
    # global order: s0-2 (pos 2), shard 1 positions 3..7 were not fetched, shard 2 at 8, 9
    assert [d["id"] for d in out["results"]] == ["s0-2", "s2-0", "s2-1"] and out["total"] == 12


# ---------------------------------------------------------------- insertion order (issue 16)


def test_tied_hits_follow_insertion_sequence_then_shard_order():
    # Three nodes, every hit tied: the merge interleaves them by `_miroir_seq`
    # (`_miroir_useq` for a document created by a partial update); documents without a
    # sequence (written before Miroir kept one) come last, in covering-set order.
    a = [hit(1, _miroir_seq=1), hit(4, _miroir_seq=4), hit(9)]
    b = [hit(2, _miroir_seq=2), hit(3, _miroir_useq=3), hit(8)]
    c = [hit(5, _miroir_seq=5, _miroir_useq=99), hit(6, _miroir_seq=6)]
    for req in (SearchRequest(q=""), SearchRequest(q="", attributes_to_retrieve=["id"])):
        out = merge(req, [node(copy.deepcopy(x)) for x in (a, b, c)], by_score=False)
        assert ids(out) == [1, 2, 3, 4, 5, 6, 9, 8]
        assert not any(k.startswith("_miroir_") for h in out["hits"] for k in h)
    out = merge(SearchRequest(q="x"), [node(copy.deepcopy(x)) for x in (a, b, c)], by_score=True)
    assert ids(out) == [1, 2, 3, 4, 5, 6, 9, 8]
    # a better rank still wins over an earlier insertion
    d = [hit(7, score=0.5, det=details(words=0.5), _miroir_seq=1), hit(10, det=details(), _miroir_seq=10)]
    out = merge(SearchRequest(q="x"), [node([hit(11, det=details(), _miroir_seq=11)]), node(d[::-1])], by_score=False)
    assert ids(out) == [10, 11, 7]


def seqdocs(seqs):
    return [{"id": q, "_miroir_shard": 0, **({"_miroir_seq": q} if q < 1000 else {})} for q in seqs]


def test_listing_merges_shards_by_sequence():
    pages = [{"results": seqdocs([1, 4, 5, 1001]), "total": 4}, {"results": seqdocs([2, 3, 1000]), "total": 3}]
    out = merge_listing(copy.deepcopy(pages), offset=0, limit=20)
    assert [d["id"] for d in out["results"]] == [1, 2, 3, 4, 5, 1001, 1000] and out["total"] == 7
    assert all(set(d) == {"id"} for d in out["results"])
    assert [d["id"] for d in merge_listing(copy.deepcopy(pages), offset=2, limit=2)["results"]] == [3, 4]


def test_deep_listing_extends_the_merged_prefix_shard_by_shard():
    shards = [seqdocs([1, 4, 5, 7, 9]), seqdocs([2, 3, 6]), seqdocs([8, 10])]
    totals = [len(x) for x in shards]
    depth = 4  # merged prefix: 1 2 3 4, then shard 0 from 5, shard 1 from 6, shard 2 from 8
    expected = [1, 2, 3, 4, 5, 7, 9, 6, 8, 10]
    heads = [x[:depth] for x in shards]
    for offset in range(0, 11):
        for limit in (1, 3, 20):
            order, windows = plan_deep_listing(heads, totals, depth=depth, offset=offset, limit=limit)
            got = []
            for i, r in order:
                lo, n = windows[i]
                assert lo <= r < lo + n
                got.append(shards[i][r]["id"])
            assert got == expected[offset : offset + limit]
    # the prefix is what every shallow page gives
    pages = [{"results": copy.deepcopy(x), "total": len(x)} for x in shards]
    assert [d["id"] for d in merge_listing(pages, offset=0, limit=depth)["results"]] == expected[:depth]


# ---------------------------------------------------------------- federation


def test_federated_merge_by_weighted_score():
    q0 = FederatedQuery(index_uid="movies", hits=[{"id": 1, "_rankingScore": 0.9}, {"id": 2, "_rankingScore": 0.5}],
                        estimated_total_hits=10)
    q1 = FederatedQuery(index_uid="books", weight=2.0, hits=[{"id": 7, "_rankingScore": 0.4}, {"id": 8, "_rankingScore": 0.2}],
                        estimated_total_hits=5, show_ranking_score=True)
    out = merge_federated([q0, q1], offset=1, limit=2, processing_time_ms=3)
    assert out["hits"] == [
        {"id": 7, "_rankingScore": 0.4, "_federation": {"indexUid": "books", "queriesPosition": 1, "weightedRankingScore": 0.8}},
        {"id": 2, "_federation": {"indexUid": "movies", "queriesPosition": 0, "weightedRankingScore": 0.5}},
    ]
    assert (out["offset"], out["limit"], out["estimatedTotalHits"], out["processingTimeMs"]) == (1, 2, 15, 3)
    assert "facetsByIndex" not in out and "facetDistribution" not in out


def test_federated_shows_a_document_once_per_index():
    """Two queries of one index that both match document 1: it is shown once, from the
    query that scores it higher; the same id in another index is another document."""
    q0 = FederatedQuery(index_uid="movies", hits=[{"id": 1, "_rankingScore": 0.6}, {"id": 2, "_rankingScore": 0.5}],
                        estimated_total_hits=2, doc_ids=[1, 2])
    q1 = FederatedQuery(index_uid="movies", hits=[{"id": 1, "_rankingScore": 0.9}], estimated_total_hits=1, doc_ids=[1])
    q2 = FederatedQuery(index_uid="books", hits=[{"id": 1, "_rankingScore": 0.1}], estimated_total_hits=1, doc_ids=[1])
    out = merge_federated([q0, q1, q2], processing_time_ms=0)
    assert [(h["_federation"]["indexUid"], h["id"], h["_federation"]["queriesPosition"]) for h in out["hits"]] == [
        ("movies", 1, 1), ("movies", 2, 0), ("books", 1, 2),
    ]
    assert out["estimatedTotalHits"] == 3


def test_hit_document_ids_reads_and_strips_the_primary_key():
    hits = [{"title": "a", "id": 1, "_formatted": {"title": "a", "id": "1"}}, {"title": "b", "id": 2}]
    assert hit_document_ids(hits, "id", added=True, formatted=["title"]) == [1, 2]
    assert hits == [{"title": "a", "_formatted": {"title": "a"}}, {"title": "b"}]
    kept = [{"id": 1, "_formatted": {"id": "1"}}]
    assert hit_document_ids(kept, "id", added=True, formatted=["*"]) == [1]
    assert kept == [{"_formatted": {"id": "1"}}]
    assert hit_document_ids([{"title": "a"}], "id", added=False) is None
    assert hit_document_ids([{"id": 1}], None, added=False) is None


def test_federated_facets_by_index_and_merged():
    facets = {
        "movies": IndexFacets(distribution={"genre": {"drama": 2, "comedy": 1}}, stats={"year": {"min": 1990, "max": 2000}}),
        "books": IndexFacets(distribution={"genre": {"drama": 1, "essay": 4}}, stats={"year": {"min": 1800, "max": 1999}}),
    }
    q = [FederatedQuery(index_uid="movies", hits=[])]
    out = merge_federated(q, offset=0, limit=20, processing_time_ms=0, index_facets=facets)
    assert list(out["facetsByIndex"]) == ["books", "movies"]
    assert out["facetsByIndex"]["movies"] == {"distribution": {"genre": {"drama": 2, "comedy": 1}},
                                              "stats": {"year": {"min": 1990, "max": 2000}}}
    out = merge_federated(q, offset=0, limit=20, processing_time_ms=0, index_facets=facets,
                          merge_facets={"maxValuesPerFacet": 2}, sort_facet_values_by={"*": "count"})
    assert out["facetDistribution"] == {"genre": {"essay": 4, "drama": 3}}
    assert out["facetStats"] == {"year": {"min": 1800, "max": 2000}}
    assert "facetsByIndex" not in out


# ---------------------------------------------------------------- property: k shards merge back into one node's order


def reference_cmp(rules, sort):
    """An independent statement of one node's order, written rule by rule."""
    crits = []
    for rule in rules:
        if rule == "sort":
            crits += [parse_sort_criterion(c) for c in sort]
        elif custom_rule(rule):
            crits.append(custom_rule(rule))
        else:
            crits.append(rule)

    def cmp(a, b):
        for c in crits:
            if isinstance(c, str):
                x, y = -a["_rankingScoreDetails"][c]["score"], -b["_rankingScoreDetails"][c]["score"]
            else:
                attr, asc = c
                x, y = sort_key(field_value(a, attr), asc), sort_key(field_value(b, attr), asc)
            if x != y:
                return -1 if x < y else 1
        x, y = -a["_rankingScore"], -b["_rankingScore"]
        return (x > y) - (x < y)

    return cmp


values = st.one_of(st.none(), st.integers(0, 4), st.sampled_from(["a", "B", "c", "ab"]),
                   st.lists(st.integers(0, 4), min_size=1, max_size=2))
scores = st.sampled_from([0.0, 0.5, 1.0])


@st.composite
def scenarios(draw):
    rules = draw(st.sampled_from([DEFAULT_RULES, ["sort", "words", "typo"], ["words", "pop:desc", "sort", "exactness"]]))
    sort = draw(st.sampled_from([[], ["price:asc"], ["name:desc"], ["name:asc", "price:desc"]]))
    n = draw(st.integers(0, 40))
    hits = []
    for i in range(n):
        h = {"id": i, "_rankingScore": draw(scores),
             "_rankingScoreDetails": {r: {"order": j, "score": draw(scores)} for j, r in enumerate(DEFAULT_RULES) if r != "sort"}}
        for f in ("price", "name", "pop"):
            v = draw(values)
            if v is not None:
                h[f] = v
        hits.append(h)
    k = draw(st.integers(1, 4))
    shard_of = [draw(st.integers(0, k - 1)) for _ in hits]
    return rules, sort, hits, k, shard_of


@settings(derandomize=True, max_examples=200, deadline=None)
@given(scenarios())
def test_property_shards_merge_back_into_one_node_order(scenario):
    rules, sort, hits, k, shard_of = scenario
    cmp = reference_cmp(rules, sort)
    one_node = sorted(hits, key=functools.cmp_to_key(cmp))
    shards = [[h for h, s in zip(one_node, shard_of) if s == i] for i in range(k)]
    nodes = [node(copy.deepcopy(s)) for s in shards]
    req = SearchRequest(sort=sort or None, limit=len(hits), show_ranking_score=True, show_ranking_score_details=True)
    merged = merge(req, nodes, rules=rules)["hits"]
    assert sorted(h["id"] for h in merged) == list(range(len(hits)))
    by_id = {h["id"]: h for h in hits}
    for a, b in itertools.pairwise(merged):
        assert cmp(by_id[a["id"]], by_id[b["id"]]) <= 0
    # and the precomputed key agrees with the reference on every pair
    key = hit_key_function(rules, sort)
    for a in hits[:10]:
        for b in hits[:10]:
            assert (key(a) < key(b)) == (cmp(a, b) < 0)


def test_facet_values_merge_case_insensitively():
    n1 = node([], facetDistribution={"genre": {"Drama": 2}})
    n2 = node([], facetDistribution={"genre": {"drama": 3, "Comedy": 1}})
    resp = merge(SearchRequest(facets=["genre"]), [n1, n2])
    assert resp["facetDistribution"] == {"genre": {"Comedy": 1, "Drama": 5}}


def test_federated_total_counts_the_union_of_an_index_s_queries():
    """1.50 counts an index's candidates once over its queries: exact where each query's
    documents are known (all its hits in the window, or `candidates`), else the documents
    seen plus what each query matches past its window."""
    def q(uid, ids, total, candidates=None):
        return FederatedQuery(index_uid=uid, hits=[{"id": i, "_rankingScore": 0.5} for i in ids],
                              estimated_total_hits=total, doc_ids=list(ids), candidates=candidates)
    out = merge_federated([q("m", [1, 2], 2), q("m", [2, 3], 2), q("b", [1], 1)], processing_time_ms=0)
    assert out["estimatedTotalHits"] == 4  # {1, 2, 3} + books' 1
    # a window of one: documents past it are unknown, but the candidates tell them
    out = merge_federated([q("m", [1], 2, frozenset({1, 2})), q("m", [2], 2, frozenset({2, 3}))],
                          processing_time_ms=0, offset=0, limit=1)
    assert out["estimatedTotalHits"] == 3
    out = merge_federated([q("m", [1], 2), q("m", [2], 2)], processing_time_ms=0, offset=0, limit=1)
    assert out["estimatedTotalHits"] == 4  # {1, 2} seen, one unseen each


def test_federated_distinct_drops_within_the_index_first_then_across():
    """A hit whose distinct value a better hit of its index took leaves that index (its
    total and facets); across indexes the rejected hit's values leave the facet counts."""
    from miroir.core.federation import Federation, drop_rejected, merge_hits

    def q(uid, doc, score, colors):
        return FederatedQuery(index_uid=uid, hits=[{"id": doc, "color": colors, "_rankingScore": score}],
                              estimated_total_hits=1, doc_ids=[doc], added_fields=("color",))
    queries = [q("a", 1, 1.0, ["green", "blue"]), q("a", 2, 0.9, ["yellow", "blue"]), q("b", 7, 0.95, ["Green"]),
               q("b", 8, 0.8, ["red"])]
    merged = merge_hits(queries, Federation(distinct="color"))
    assert [(h["_federation"]["indexUid"], h["id"]) for h in merged.hits] == [("a", 1), ("b", 8)]
    assert merged.dropped == {"a": {2}}
    assert [h["id"] for h in merged.rejected["b"]] == [7]
    assert merged.total == 2
    assert "color" not in merged.hits[0]
    facets = IndexFacets(distribution={"color": {"Green": 1, "red": 1}}, stats={})
    assert drop_rejected(facets, merged.rejected["b"]).distribution == {"color": {"red": 1}}


def test_facet_leaves_read_flat_and_nested_keys_and_arrays():
    from miroir.core.facets import facet_leaves
    doc = {"root": {"nested": 0}, "root.nested": 1, "doggos": [{"age": 2}, {"age": [4, None]}], "x": None}
    assert sorted(facet_leaves(doc, "root.nested")) == [0, 1]
    assert facet_leaves(doc, "doggos.age") == [2, 4]
    assert facet_leaves(doc, "x") == [] and facet_leaves(doc, "rootx") == []


def test_drop_field_removes_flat_nested_and_array_paths():
    from miroir.core.federation import drop_field
    doc = {"id": 1, "root": {"nested": 0, "other": 1}, "root.nested": 1, "doggos": [{"age": 2}, {"age": 4}]}
    drop_field(doc, "root.nested")
    drop_field(doc, "doggos.age")
    assert doc == {"id": 1, "root": {"other": 1}}
    doc = {"root": {"nested": 0}}
    drop_field(doc, "root.nested")
    assert doc == {}


def test_union_facets_count_a_document_of_several_queries_once():
    """Each query counted its own documents: one both match is taken off once (per value,
    not per leaf), one the index's distinct dropped is taken off from every query."""
    from miroir.core.federation import facet_fields, union_facets
    a = {"mother": "Michelle", "age": [2, 2]}
    b = {"mother": "sophie", "age": [5]}
    c = {"mother": "michelle", "age": [6]}
    q0 = (IndexFacets(distribution={"age": {"2": 1, "5": 1}, "mother": {"Michelle": 1, "sophie": 1}},
                      stats={"age": {"min": 2.0, "max": 5.0}}),
          {1: facet_fields(a, ["age", "mother"]), 2: facet_fields(b, ["age", "mother"])})
    q1 = (IndexFacets(distribution={"age": {"2": 1, "6": 1}, "mother": {"michelle": 2}},
                      stats={"age": {"min": 2.0, "max": 6.0}}),
          {1: facet_fields(a, ["age", "mother"]), 3: facet_fields(c, ["age", "mother"])})
    out = union_facets([q0, q1], set(), sort_facet_values_by={"*": "count"}, max_values=10)
    assert out.distribution == {"age": {"2": 1, "5": 1, "6": 1}, "mother": {"Michelle": 2, "sophie": 1}}
    assert out.stats == {"age": {"min": 2.0, "max": 6.0}}
    out = union_facets([q0, q1], {3}, sort_facet_values_by=None, max_values=10)
    assert out.distribution == {"age": {"2": 1, "5": 1}, "mother": {"Michelle": 1, "sophie": 1}}
