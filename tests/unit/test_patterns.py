"""The one attribute-pattern matcher (core/patterns.py) against Meilisearch 1.50's rules.

The tables restate crates/milli/src/attribute_patterns.rs (`match_pattern`,
`match_field_legacy`, its unit tests) and filterable_attributes_rules.rs (first matching
rule decides, legacy fields allow everything, pattern rules default to equality without
facet search, `facets` patterns checked by intersection). The cross-checks at the end run
the same names through every caller (the filter check, the `_miroir_*` refusals, the
planner's distinct counting, the devnode) so that none can drift from the table again.
"""

from __future__ import annotations

import pytest

from miroir.core import patterns as pt
from miroir.core.patterns import MATCH, NO_MATCH, PARENT

# (pattern, attribute, expected): match_pattern, the wildcard reading.
PATTERN_TABLE = [
    # `*` matches everything
    ("*", "test", MATCH),
    ("*", "doggos.age", MATCH),
    ("*", "", MATCH),
    # exact
    ("title", "title", MATCH),
    ("title", "titles", NO_MATCH),
    ("title", "Title", NO_MATCH),
    # prefix*
    ("test*", "test", MATCH),
    ("test*", "testa", MATCH),
    ("test*", "atest", NO_MATCH),
    ("doggos.*", "doggos.age", MATCH),
    ("doggos.*", "doggos", PARENT),  # `doggos` holds what `doggos.*` matches
    # *suffix
    ("*test", "test", MATCH),
    ("*test", "atest", MATCH),
    ("*test", "testa", NO_MATCH),
    ("*_date", "release_date", MATCH),
    # *infix*: the case the three old matchers disagreed on
    ("*foo*", "xfooy", MATCH),
    ("*test*", "test", MATCH),
    ("*test*", "atesta", MATCH),
    ("*test*", "atest", MATCH),
    ("*test*", "testa", MATCH),
    ("*test*", "tes", NO_MATCH),
    ("**", "anything", MATCH),  # `*` + empty infix
    # a `*` inside is a literal character
    ("test*test", "test", NO_MATCH),
    ("test*test", "testxtest", NO_MATCH),
    ("test*test", "test*test", MATCH),
    # nested parents
    ("doggos.age", "doggos.age", MATCH),
    ("doggos.age", "doggos", PARENT),
    ("a.b.c", "a.b", PARENT),
    ("a.b.c", "a", PARENT),
    ("doggos.age", "dog", NO_MATCH),  # a prefix, not a parent object
    ("doggos.age", "doggos.age.x", NO_MATCH),  # patterns do not reach below themselves
    ("doggos", "doggos.age", NO_MATCH),
]

# (field, attribute, expected): match_field_legacy, the plain-string reading.
LEGACY_TABLE = [
    ("title", "title", MATCH),
    ("doggos", "doggos.age", MATCH),  # nested fields are covered
    ("doggos", "doggos.a.b", MATCH),
    ("doggos", "doggosx", NO_MATCH),
    ("doggos.age", "doggos", PARENT),
    ("*", "title", NO_MATCH),  # no wildcards in a plain field
    ("doggos.*", "doggos.age", NO_MATCH),
    ("*", "*", MATCH),
]


@pytest.mark.parametrize(("pattern", "name", "expected"), PATTERN_TABLE)
def test_match_pattern(pattern, name, expected):
    assert pt.match_pattern(pattern, name) is expected


@pytest.mark.parametrize(("field", "name", "expected"), LEGACY_TABLE)
def test_match_field_legacy(field, name, expected):
    assert pt.match_field_legacy(field, name) is expected


def test_covers_is_a_match_or_a_nested_field():
    names = ["", "a", "ab", "a.b", "a.b.c", "ba", "*", "a*", "*a", "x.a", "a.*", "foo", "xfooy"]
    pats = [*names, "**", "*.b", "a.*", "*b*", "*oo*", "f*", "*y"]
    for p in pats:
        for n in names:
            expected = pt.match_pattern(p, n) is MATCH or pt.is_nested_in(n, p)
            assert pt.covers(p, n) is expected, (p, n)


def test_highlight_and_crop_selectors():
    assert pt.selects("*", "a.b") and pt.selects("a", "a.b") and pt.selects("a.b", "a.b")
    assert not pt.selects("a*", "ab") and not pt.selects("a.b", "a")


def test_rules_plain_strings_are_legacy_fields_objects_are_patterns():
    assert pt.rule_match("doggos", "doggos.age") is MATCH
    assert pt.rule_match("*", "title") is NO_MATCH
    assert pt.rule_match({"attributePatterns": ["*"]}, "title") is MATCH
    assert pt.rule_match({"attributePatterns": ["x", "*foo*"]}, "xfooy") is MATCH
    assert pt.rule_match({"attributePatterns": ["doggos.age"]}, "doggos") is PARENT
    assert pt.rule_match({"attributePatterns": ["doggos"]}, "doggos.age") is NO_MATCH


def test_first_matching_rule_decides():
    # Meilisearch's tests/search/filters.rs::test_filterable_attributes_priority
    rules = [
        {"attributePatterns": ["doggos.a*"], "features": {"facetSearch": False, "filter": {"equality": False, "comparison": False}}},
        {"attributePatterns": ["doggos.*"]},
    ]
    assert pt.is_filterable(rules, "doggos.name")
    assert not pt.is_filterable(rules, "doggos.age")  # the first rule matches and forbids it
    assert not pt.is_filterable(rules, "cattos")
    assert pt.is_filterable(["genre"], "genre") and not pt.is_filterable([], "genre")
    assert pt.is_filterable([{"attributePatterns": ["p"], "features": {"filter": {"equality": False, "comparison": True}}}], "p")


def test_facet_search_feature():
    assert pt.is_facet_searchable(["genre"], "genre")  # legacy fields allow everything
    assert not pt.is_facet_searchable([{"attributePatterns": ["genre"]}], "genre")  # default: off
    assert pt.is_facet_searchable([{"attributePatterns": ["genre"], "features": {"facetSearch": True}}], "genre")
    assert pt.filterable_patterns(["a", {"attributePatterns": ["b"]}, {"attributePatterns": ["c"], "features": {"facetSearch": True}}],
                                  feature="facetSearch") == ["a", "c"]


def test_facets_request_patterns_intersect_rules():
    assert pt.facet_allowed(["genre"], "*")
    assert pt.facet_allowed(["genre"], "gen*")
    assert pt.facet_allowed(["doggos"], "doggos.age")
    assert pt.facet_allowed([{"attributePatterns": ["doggos.*"]}], "doggos.age")
    assert pt.facet_allowed([{"attributePatterns": ["*_date"]}], "*date")
    assert not pt.facet_allowed(["genre"], "year")
    off = {"attributePatterns": ["year"], "features": {"filter": {"equality": False}}}
    assert not pt.facet_allowed([off, "year"], "year")  # matched by a rule that forbids it


# ------------------------------------------------------------ every caller agrees


CALLER_CASES = [
    # (filterableAttributes, attribute, filterable?)
    ([{"attributePatterns": ["*foo*"]}], "xfooy", True),
    ([{"attributePatterns": ["*_date"]}], "release_date", True),
    ([{"attributePatterns": ["pre*"]}], "prefix", True),
    ([{"attributePatterns": ["*"]}], "anything", True),
    (["doggos"], "doggos.age", True),
    (["genre"], "genres", False),
    (["*"], "genre", False),  # a plain string is never a wildcard
    (["doggos.*"], "doggos.age", False),
]


@pytest.mark.parametrize(("rules", "attr", "expected"), CALLER_CASES)
def test_filter_check_and_planner_agree(rules, attr, expected):
    from miroir.core.filter import FilterError, check_filterable, parse_filter
    from miroir.engine.reads import _SearchSettings

    assert pt.is_filterable(rules, attr) is expected
    assert _SearchSettings({"filterableAttributes": rules}).is_filterable(attr) is expected
    try:
        check_filterable(parse_filter(f"{attr} = 1"), rules)
        checked = True
    except FilterError:
        checked = False
    assert checked is expected


@pytest.mark.parametrize(("rules", "attr", "expected"), CALLER_CASES)
def test_devnode_agrees(rules, attr, expected):
    from miroir.core.errors import MeiliError
    from miroir.devnode.engine import IndexEngine

    eng = IndexEngine("t", settings={"filterableAttributes": rules})
    eng.add_documents([{"id": 1, attr.split(".")[0]: 1}], "id", partial=False)
    try:
        eng.search({"q": "", "filter": f"{attr} = 1", "distinct": attr})
        answered = True
    except MeiliError as e:
        assert e.code in ("invalid_search_filter", "invalid_search_distinct"), e
        answered = False
    assert answered is expected


def test_devnode_facets_by_pattern():
    from miroir.devnode.engine import IndexEngine

    eng = IndexEngine("t", settings={"filterableAttributes": ["genre", {"attributePatterns": ["*_date"]}]})
    eng.add_documents([{"id": 1, "genre": "drama", "genus": "x", "release_date": 5, "end_date": 6}], "id", partial=False)
    res = eng.search({"q": "", "facets": ["gen*", "*_date"]})
    assert set(res["facetDistribution"]) == {"genre", "release_date", "end_date"}  # not `genus`: not filterable


def test_document_sort_and_fields_view_read_sortable_as_legacy_fields():
    """GET /documents `sort` (core/documents.parse_document_sort: milli's documents/sort.rs
    checks `is_faceted`) and the fields view's `sortable` (core/fieldlist.py): the field or
    one nested in it, no wildcard, as `legacy_match_any`."""
    from miroir.core.documents import parse_document_sort
    from miroir.core.errors import MeiliError
    from miroir.core.fieldlist import field_view
    from miroir.core.settings import DEFAULTS

    for sortable, name, expected in [(["price"], "price.eur", True), (["*"], "price", False), (["price"], "prices", False)]:
        assert pt.legacy_match_any(sortable, name) is expected
        assert field_view(name, {**DEFAULTS, "sortableAttributes": sortable})["sortable"]["enabled"] is expected
        try:
            assert parse_document_sort([f"{name}:desc"], sortable) == [(name, False)]
            accepted = True
        except MeiliError as e:
            assert e.code == "invalid_document_sort"
            accepted = False
        assert accepted is expected
