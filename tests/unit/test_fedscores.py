"""1.50's federated order from ranking details (core/fedscores.py, core/federation.py)."""

from miroir.core import fedscores
from miroir.core.federation import FederatedQuery, Federation, merge_federated


def _sorted_hit(title: str, asc: bool = True) -> dict:
    key = "title:asc" if asc else "title:desc"
    return {"title": title, "_rankingScore": 1.0, "_rankingScoreDetails": {key: {"order": 0, "value": title}}}


def test_sort_values_order_hits_of_different_queries():
    # Every score is 1.0: only the sort values tell the queries' hits apart.
    a = FederatedQuery(index_uid="movies", hits=[_sorted_hit("Captain Marvel"), _sorted_hit("Shazam!")],
                       show_ranking_score_details=False)
    b = FederatedQuery(index_uid="batman", hits=[_sorted_hit("Badman"), _sorted_hit("Batman")],
                       show_ranking_score_details=False)
    out = merge_federated([a, b], processing_time_ms=0)
    assert [h["title"] for h in out["hits"]] == ["Badman", "Batman", "Captain Marvel", "Shazam!"]
    assert [h["_federation"]["queriesPosition"] for h in out["hits"]] == [1, 1, 0, 0]
    assert all("_rankingScoreDetails" not in h for h in out["hits"])  # only forced, not asked


def test_relevancy_against_sort_falls_back_to_more_values_then_global_score():
    relevancy = [("score", 0.5)]
    sort_then_score = [("sort", True, "a"), ("score", 0.2)]
    assert fedscores.compare(sort_then_score, 0.2, relevancy, 0.5) == 1  # more values left
    assert fedscores.compare([("sort", True, "a")], 0.2, [("sort", False, "b")], 0.5) == -1  # global score
    assert fedscores.compare([("sort", True, 3)], 1.0, [("sort", True, "b")], 1.0) == 1  # numbers first


def test_score_values_split_at_the_sort_rule():
    hit = {
        "_rankingScore": 0.75,
        "_rankingScoreDetails": {
            "words": {"order": 0, "matchingWords": 1, "maxMatchingWords": 2, "score": 0.5},
            "year:desc": {"order": 1, "value": 2019},
            "typo": {"order": 2, "typoCount": 0, "maxTypoCount": 1, "score": 1.0},
        },
    }
    assert fedscores.score_values(hit, 2.0) == [("score", 1.0), ("sort", False, 2019), ("score", 2.0)]
    assert fedscores.score_values({"_rankingScore": 0.75}, 2.0) == [("score", 1.5)]


def test_distinct_attribute_retrieved_for_the_merge_then_dropped():
    from miroir.core.federation import drop_field, retrieval_with

    assert retrieval_with(["title"], "color") == ["title", "color"]
    assert retrieval_with(["title", "color"], "color") is None
    assert retrieval_with(None, "color") is None and retrieval_with(["*"], "color") is None
    assert retrieval_with(["root"], "root.nested") is None
    hit = {"title": "Shazam!", "root": {"nested": 1}}
    drop_field(hit, "root.nested")
    assert hit == {"title": "Shazam!"}
    # Only fetched for `distinct`: the hit shows only what the query retrieves.
    a = FederatedQuery(index_uid="movies", hits=[{"title": "A", "color": "red", "_rankingScore": 1.0}],
                       added_fields=("color",), show_ranking_score_details=False)
    b = FederatedQuery(index_uid="movies2", hits=[{"title": "B", "color": "red", "_rankingScore": 0.5}],
                       added_fields=("color",), show_ranking_score_details=False)
    out = merge_federated([a, b], processing_time_ms=0, federation=Federation(distinct="color"))
    assert [h["title"] for h in out["hits"]] == ["A"] and "color" not in out["hits"][0]


def test_merge_facets_over_indexes_ordering_a_facet_differently_is_refused():
    import pytest

    from miroir.core.errors import MeiliError
    from miroir.core.federation import check_facet_order

    fed = Federation(facets_by_index={"a": ["title", "color"], "b": ["title"], "c": ["title", "color"]}, merge_facets={})
    orders = {"a": None, "b": None, "c": {"color": "count"}}
    with pytest.raises(MeiliError) as e:
        check_facet_order(fed, ["a", "b", "c"], lambda uid: ["title", "color"], orders.get)
    assert e.value.code == "invalid_multi_search_facet_order" and e.value.status == 400
    assert e.value.message.startswith(
        "Inside `.queries[2]`: Inside `.federation.facetsByIndex.c`: Inconsistent order for values in facet `color`: "
        "index `a` orders alphabetically, but index `c` orders by count.\n"
    )
    check_facet_order(Federation(facets_by_index=fed.facets_by_index), ["a", "b", "c"], lambda uid: ["color"], orders.get)


def test_facets_by_index_errors_name_the_index():
    from miroir.core.errors import MeiliError
    from miroir.core.federation import facets_error

    e = MeiliError("invalid_search_facets", "Invalid facet distribution: Pattern `name` is not filterable.")
    assert facets_error("fruits", e, 1).message == (
        "Inside `.queries[1]`: Inside `.federation.facetsByIndex.fruits`: Invalid facet distribution: "
        "Pattern `name` is not filterable."
    )
    assert facets_error("fruits", e, None).message.endswith("\n - Note: index `fruits` is not used in queries")
    other = MeiliError("invalid_search_filter", "bad filter")
    assert facets_error("fruits", other, 2).message == "Inside `.queries[2]`: bad filter"
