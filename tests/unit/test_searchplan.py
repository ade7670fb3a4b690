"""Search request decoding (Meilisearch's errors) and sub-query planning."""

from __future__ import annotations

import json

import pytest

from miroir.core.errors import MeiliError
from miroir.core.searchplan import (
    SearchRequest,
    decode_search_request,
    effective_ranking_rules,
    needs_ranking_details,
    ordered_by_score,
    parse_search_query_string,
    plan_document_windows,
    plan_subquery,
    query_words,
    retrieval_additions,
    score_order_fits,
)


def decode(obj) -> SearchRequest:
    return decode_search_request(json.dumps(obj).encode())


def error_of(fn, *args) -> MeiliError:
    with pytest.raises(MeiliError) as info:
        fn(*args)
    return info.value


# ---------------------------------------------------------------- POST body


def test_decode_camel_case_and_defaults():
    req = decode({"q": "hello", "hitsPerPage": 5, "attributesToRetrieve": ["a"], "showRankingScore": True})
    assert req.q == "hello" and req.hits_per_page == 5 and req.attributes_to_retrieve == ["a"]
    assert req.show_ranking_score is True
    assert req.offset == 0 and req.limit == 20 and req.crop_marker == "…" and req.matching_strategy == "last"
    assert req.page_mode


def test_null_is_accepted_for_optional_fields():
    req = decode({"q": None, "filter": None, "sort": None, "page": None})
    assert req.q is None and not req.page_mode


def test_limit_not_an_integer():
    e = error_of(decode, {"limit": "doggo"})
    assert e.code == "invalid_search_limit" and e.status == 400 and e.type == "invalid_request"
    assert e.message == 'Invalid value type at `.limit`: expected a positive integer, but found a string: `"doggo"`'


@pytest.mark.parametrize(
    "body, code, message",
    [
        ({"offset": -1}, "invalid_search_offset",
         "Invalid value type at `.offset`: expected a positive integer, but found a negative integer: `-1`"),
        ({"hitsPerPage": 1.5}, "invalid_search_hits_per_page",
         "Invalid value type at `.hitsPerPage`: expected a positive integer, but found a number: `1.5`"),
        ({"q": ["doggo"]}, "invalid_search_q",
         'Invalid value type at `.q`: expected a string, but found an array: `["doggo"]`'),
        ({"attributesToRetrieve": "doggo"}, "invalid_search_attributes_to_retrieve",
         'Invalid value type at `.attributesToRetrieve`: expected an array, but found a string: `"doggo"`'),
        ({"retrieveVectors": [True]}, "invalid_search_retrieve_vectors",
         "Invalid value type at `.retrieveVectors`: expected a boolean, but found an array: `[true]`"),
        ({"sort": [1]}, "invalid_search_sort",
         "Invalid value type at `.sort[0]`: expected a string, but found a positive integer: `1`"),
        ({"filter": True}, "invalid_search_filter",
         "Invalid syntax for the filter parameter: `expected String, Array, found: true`."),
        ({"matchingStrategy": "doggo"}, "invalid_search_matching_strategy",
         "Unknown value `doggo` at `.matchingStrategy`: expected one of `last`, `all`, `frequency`"),
        ({"matchingStrategy": {"doggo": "doggo"}}, "invalid_search_matching_strategy",
         'Invalid value type at `.matchingStrategy`: expected a string, but found an object: `{"doggo":"doggo"}`'),
        ({"rankingScoreThreshold": "doggo"}, "invalid_search_ranking_score_threshold",
         'Invalid value type at `.rankingScoreThreshold`: expected a number, but found a string: `"doggo"`'),
        ({"rankingScoreThreshold": 42}, "invalid_search_ranking_score_threshold",
         "Invalid value at `.rankingScoreThreshold`: the value of `rankingScoreThreshold` is invalid, "
         "expected a float between `0.0` and `1.0`."),
        ({"showRankingScoreDetails": "x"}, "invalid_search_show_ranking_score_details",
         'Invalid value type at `.showRankingScoreDetails`: expected a boolean, but found a string: `"x"`'),
    ],
)
def test_type_errors_match_meilisearch(body, code, message):
    e = error_of(decode, body)
    assert (e.code, e.message) == (code, message)


def test_unknown_field_is_bad_request():
    e = error_of(decode, {"marin": "hello"})
    assert e.code == "bad_request" and e.status == 400
    assert e.message.startswith("Unknown field `marin`: expected one of `q`, `offset`, `limit`, `page`, `hitsPerPage`")
    assert "`locales`" in e.message


def test_malformed_json_and_wrong_shapes():
    assert error_of(decode_search_request, b'{"q": ').code == "malformed_payload"
    assert error_of(decode_search_request, b"").code == "missing_payload"
    e = error_of(decode_search_request, b"[]")
    assert e.code == "bad_request" and e.message == "Invalid value type: expected an object, but found an array: `[]`"


# ---------------------------------------------------------------- GET query string


def test_query_string_types():
    req = parse_search_query_string(
        {
            "q": "a b",
            "limit": "5",
            "offset": "2",
            "attributesToRetrieve": "title, id",
            "facets": "genres,year",
            "showRankingScore": "true",
            "sort": "price:asc,_geoPoint(48.8, 2.3):desc",
            "rankingScoreThreshold": "0.5",
            "hybridEmbedder": "default",
            "hybridSemanticRatio": "0.3",
            "vector": "0.1,0.2",
        }
    )
    assert (req.q, req.limit, req.offset) == ("a b", 5, 2)
    assert req.attributes_to_retrieve == ["title", "id"] and req.facets == ["genres", "year"]
    assert req.show_ranking_score is True
    assert req.sort == ["price:asc", "_geoPoint(48.8, 2.3):desc"]
    assert req.ranking_score_threshold == 0.5
    assert req.hybrid == {"embedder": "default", "semanticRatio": 0.3} and req.vector == [0.1, 0.2]


def test_query_string_filter_array_and_string():
    assert parse_search_query_string({"filter": '["a = 1", ["b = 2", "c = 3"]]'}).filter == ["a = 1", ["b = 2", "c = 3"]]
    assert parse_search_query_string({"filter": "a = 1 AND b = 2"}).filter == "a = 1 AND b = 2"


@pytest.mark.parametrize(
    "params, code, message",
    [
        ({"limit": "doggo"}, "invalid_search_limit",
         "Invalid value in parameter `limit`: could not parse `doggo` as a positive integer"),
        ({"page": "-1"}, "invalid_search_page", "Invalid value in parameter `page`: could not parse `-1` as a positive integer"),
        ({"showMatchesPosition": "doggo"}, "invalid_search_show_matches_position",
         "Invalid value in parameter `showMatchesPosition`: could not parse `doggo` as a boolean, expected either `true` or `false`"),
        ({"matchingStrategy": "doggo"}, "invalid_search_matching_strategy",
         "Unknown value `doggo` for parameter `matchingStrategy`: expected one of `last`, `all`, `frequency`"),
    ],
)
def test_query_string_errors(params, code, message):
    e = error_of(parse_search_query_string, params)
    assert (e.code, e.message) == (code, message)


def test_query_string_unknown_parameter():
    e = error_of(parse_search_query_string, {"marin": "x"})
    assert e.code == "bad_request" and e.message.startswith("Unknown parameter `marin`: expected one of `q`")


# ---------------------------------------------------------------- sub-queries


def plan(req, **kw):
    args = dict(shards_for_node=None, distinct_attribute=None, facet_values_limit=None, needs_details=False)
    args.update(kw)
    return plan_subquery(req, **args)


def test_offset_mode_window_becomes_offset_zero():
    body = plan(SearchRequest(q="x", offset=30, limit=7))
    assert body["offset"] == 0 and body["limit"] == 37
    assert body["showRankingScore"] is True and "showRankingScoreDetails" not in body
    assert "page" not in body and "hitsPerPage" not in body and body["q"] == "x"


def test_page_mode_keeps_exact_totals():
    body = plan(SearchRequest(page=3, hits_per_page=10))
    assert body["page"] == 1 and body["hitsPerPage"] == 30
    assert "offset" not in body and "limit" not in body
    body = plan(SearchRequest(page=2))  # hitsPerPage defaults to 20
    assert body["hitsPerPage"] == 40


def test_details_requested_when_needed_or_asked():
    assert plan(SearchRequest(q="x"), needs_details=True)["showRankingScoreDetails"] is True
    assert plan(SearchRequest(show_ranking_score_details=True))["showRankingScoreDetails"] is True


DEFAULT_RULES = ["words", "typo", "proximity", "attribute", "sort", "exactness"]
SPLIT_RULES = ["words", "typo", "proximity", "attributeRank", "sort", "wordPosition", "exactness"]


def details(req: SearchRequest, rules: list[str], searchable: int | None = None) -> bool:
    return needs_ranking_details(req, ordered_by_score(req, rules, searchable))


def test_needs_ranking_details():
    # Rules that score only: the score orders the hits, no details needed.
    assert not details(SearchRequest(q="hello"), DEFAULT_RULES, 15)
    assert ordered_by_score(SearchRequest(q="hello"), DEFAULT_RULES, 15)
    assert ordered_by_score(SearchRequest(q="hello"), [], 15)  # the defaults
    # A sort criterion or a custom rule breaks ties between scoring rules: details.
    assert details(SearchRequest(q="hello", sort=["n:asc"]), DEFAULT_RULES, 15)
    assert details(SearchRequest(q="hello"), [*DEFAULT_RULES, "n:desc"], 15)
    assert not ordered_by_score(SearchRequest(q="hello", sort=["n:asc"]), DEFAULT_RULES, 15)
    # Unknown searchable attributes, or a rule this bound does not know: details.
    assert details(SearchRequest(q="hello"), DEFAULT_RULES)
    assert details(SearchRequest(q="hello"), [*DEFAULT_RULES, "futureRule"], 15)
    # Placeholder searches are ordered by sort and custom rules, read from the hits.
    assert not details(SearchRequest(q=""), DEFAULT_RULES, 15)
    assert not details(SearchRequest(), [*DEFAULT_RULES, "n:desc"], 15)
    assert not ordered_by_score(SearchRequest(), DEFAULT_RULES, 15)
    # Hybrid and vector: merged by score, as Meilisearch does.
    assert not details(SearchRequest(q="x", hybrid={"embedder": "e"}), [*DEFAULT_RULES, "n:desc"])
    assert ordered_by_score(SearchRequest(q="x", hybrid={"embedder": "e"}), [*DEFAULT_RULES, "n:desc"])


def test_score_order_only_while_millis_u32_fold_cannot_overflow():
    # milli folds the rules' ranks in u32 (Rank::merge): long queries over many
    # attributes could overflow it, and then only the details keep the bucket order.
    ten_words = "a b c d e f g h i j k l"
    assert query_words(ten_words) == 10 and query_words("foo-bar baz") == 3
    assert query_words("日本語の検索") == 10  # segmented without spaces: assume the most
    assert ordered_by_score(SearchRequest(q=ten_words), DEFAULT_RULES, 2)
    assert not ordered_by_score(SearchRequest(q=ten_words), DEFAULT_RULES, 20)
    assert not ordered_by_score(SearchRequest(q=ten_words), DEFAULT_RULES, 500)
    assert ordered_by_score(SearchRequest(q=ten_words), SPLIT_RULES, 2)
    assert not ordered_by_score(SearchRequest(q=ten_words), SPLIT_RULES, 20)
    assert ordered_by_score(SearchRequest(q="two words"), DEFAULT_RULES, 500)
    assert score_order_fits(["words", "typo"], 10, 10**6)
    assert not score_order_fits(["attribute", "wordPosition", "attributeRank"], 10, 10**6)


def test_split_attribute_rules_bound_like_attribute():
    """milli's Fid rank grows with the words (each costs its attribute's weight) and the
    split rules fold the same ranks as `attribute`: the same bound, the same answer."""
    for words, searchable in ((1, 3), (3, 10), (10, 2), (10, 20), (6, 100)):
        assert score_order_fits(DEFAULT_RULES, words, searchable) == score_order_fits(SPLIT_RULES, words, searchable)
    # 4 words over 1,000 attributes: the Fid rank alone reaches ~4,000, not ~1,000.
    assert not score_order_fits(["words", "typo", "proximity", "attributeRank", "wordPosition", "exactness"], 4, 1000)
    # The planner's default rules are 1.50's.
    assert ordered_by_score(SearchRequest(q="hello"), [], 15) == score_order_fits(SPLIT_RULES, 1, 15)


def test_effective_rules_put_words_first_and_skip_repeats():
    assert effective_ranking_rules(["typo", "words", "attributeRank"]) == ("words", "typo", "attributeRank")
    assert effective_ranking_rules(["n:desc", "wordPosition", "wordPosition"]) == ("n:desc", "words", "wordPosition")
    assert effective_ranking_rules(["sort", "n:asc"]) == ("sort", "n:asc")


def test_narrowed_attributes_get_merge_fields():
    req = SearchRequest(attributes_to_retrieve=["title"], sort=["price:asc", "_geoPoint(1,2):asc", "title:desc"])
    rules = ["words", "sort", "rank:desc"]
    body = plan(req, distinct_attribute="sku", ranking_rules=rules)
    # The insertion sequence too (the merge's last tie-break, stripped with `_miroir_shard`)
    assert body["attributesToRetrieve"] == ["title", "price", "rank", "sku", "_miroir_seq", "_miroir_useq"]
    assert retrieval_additions(req, distinct_attribute="sku", ranking_rules=rules) == {"price", "rank", "sku"}
    # the client's own distinct wins over the index's
    req2 = SearchRequest(attributes_to_retrieve=["title"], distinct="brand")
    assert retrieval_additions(req2, distinct_attribute="sku") == {"brand"}


def test_wide_attributes_are_left_alone():
    for wanted in (None, ["*"], ["title", "*"]):
        req = SearchRequest(attributes_to_retrieve=wanted, sort=["price:asc"])
        assert retrieval_additions(req, distinct_attribute="sku") == set()
        assert plan(req, distinct_attribute="sku").get("attributesToRetrieve") == wanted


def test_client_parameters_pass_through():
    req = decode({"q": "x", "facets": ["a"], "filter": "a = 1", "attributesToHighlight": ["*"], "locales": ["fra"]})
    body = plan(req)
    assert body["facets"] == ["a"] and body["filter"] == "a = 1"
    assert body["attributesToHighlight"] == ["*"] and body["locales"] == ["fra"]


def test_shard_filter_is_anded():
    filt = pytest.importorskip("miroir.core.filter")
    req = SearchRequest(filter="genre = drama")
    body = plan(req, shards_for_node=[3, 1])
    assert body["filter"] == filt.and_filters("genre = drama", filt.shard_filter([1, 3]))
    body = plan(SearchRequest(), shards_for_node=[0])
    assert body["filter"] == filt.and_filters(None, filt.shard_filter([0]))
    assert "filter" not in plan(SearchRequest(), shards_for_node=None)


def test_document_windows():
    # shards of 5, 0, 7, 4 documents: the global page [3, 13) spans shards 0, 2 and 3
    assert plan_document_windows([5, 0, 7, 4], offset=3, limit=10) == [(0, 3, 2), (2, 0, 7), (3, 0, 1)]
    assert plan_document_windows([5, 5], offset=20, limit=10) == []
    assert plan_document_windows([5, 5], offset=0, limit=0) == []
