"""1.50's refusal of federated queries whose ranking rules cannot be compared (core/rankrules.py)."""

import pytest

from miroir.core.errors import MeiliError
from miroir.core.rankrules import check_compatible, coalesced, query_rules

SORT_FIRST = ["sort", "words", "typo", "proximity", "attribute", "exactness"]


def test_opposite_sorts_on_one_index_are_refused_with_1_50s_text():
    queries = [
        query_rules(0, "dogs", {"q": "pésti", "sort": ["mother:asc"]}, SORT_FIRST),
        query_rules(1, "dogs", {"q": "jean", "sort": ["mother:desc"]}, SORT_FIRST),
    ]
    with pytest.raises(MeiliError) as e:
        check_compatible(queries)
    assert e.value.code == "invalid_multi_search_query_ranking_rules" and e.value.status == 400
    assert e.value.message == (
        "Inside `.queries[1]`: The results of queries #0 and #1 are incompatible: \n"
        "  1. `queries[0].sort[0]`, `dogs.rankingRules[0]`: ascending sort rule(s) on field `mother`\n"
        "  2. `queries[1].sort[0]`, `dogs.rankingRules[0]`: descending sort rule(s) on field `mother`\n"
        "  - cannot compare two sort rules in opposite directions\n"
    )


def test_placeholder_notes_and_compatible_queries():
    rules = query_rules(0, "dogs", {"q": "", "sort": ["mother:asc"]}, SORT_FIRST).rules
    assert rules.criteria == ["sort"] and len(rules.notes) == 5
    # Same direction, or no sort against relevancy-only: nothing to refuse.
    check_compatible([
        query_rules(0, "dogs", {"q": "a", "sort": ["mother:asc"]}, SORT_FIRST),
        query_rules(1, "dogs", {"q": "b", "sort": ["father:asc"]}, SORT_FIRST),
    ])
    default = ["words", "typo", "proximity", "attributeRank", "sort", "wordPosition", "exactness"]
    relevancy = query_rules(0, "movies", {"q": "the bat"}, default).rules
    assert coalesced(relevancy) == [(("coalesced", 0, 5), "relevancy")]
