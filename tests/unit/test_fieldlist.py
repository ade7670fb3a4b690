"""core/fieldlist.py's field view, on the points where 1.50's metadata differs from a
wildcard-anywhere reading (crates/milli/src/fields_ids_map/metadata.rs): the distinct
attribute matches its name alone, sortable and string filterable entries have no
wildcard, `*` means "all" in displayed and searchable."""

from __future__ import annotations

from miroir.core.fieldlist import field_view
from miroir.core.settings import DEFAULTS


def _view(name: str, **settings) -> dict:
    return field_view(name, {**DEFAULTS, **settings})


def test_distinct_is_the_attribute_itself_only():
    assert _view("author", distinctAttribute="author")["distinct"] == {"enabled": True}
    assert _view("author.name", distinctAttribute="author")["distinct"] == {"enabled": False}
    assert _view("title", distinctAttribute="*")["distinct"] == {"enabled": False}


def test_sortable_and_filterable_strings_are_legacy_fields():
    assert _view("price", sortableAttributes=["*"])["sortable"] == {"enabled": False}
    assert _view("price.eur", sortableAttributes=["price"])["sortable"] == {"enabled": True}
    assert _view("price", filterableAttributes=["*"])["filterable"]["enabled"] is False
    assert _view("price.eur", filterableAttributes=["price"])["filterable"] == {
        "enabled": True, "sortBy": "alpha", "facetSearch": True, "equality": True, "comparison": True,
    }


def test_first_filterable_rule_decides_and_patterns_match():
    rules = [
        {"attributePatterns": ["price*"], "features": {"facetSearch": False, "filter": {"equality": False, "comparison": False}}},
        "price",
    ]
    assert _view("price", filterableAttributes=rules)["filterable"]["enabled"] is False
    rules = [{"attributePatterns": ["*_at"], "features": {"filter": {"comparison": True}}}]
    got = _view("created_at", filterableAttributes=rules, faceting={"sortFacetValuesBy": {"*": "count"}})["filterable"]
    assert got == {"enabled": True, "sortBy": "count", "facetSearch": False, "equality": True, "comparison": True}


def test_displayed_and_searchable_star_is_every_field():
    v = _view("anything.deep")
    assert v["displayed"] == v["searchable"] == {"enabled": True}
    v = _view("body", displayedAttributes=["title"], searchableAttributes=["title", "*"])
    assert v["displayed"] == {"enabled": False} and v["searchable"] == {"enabled": True}
    assert _view("title.sub", displayedAttributes=["title"])["displayed"] == {"enabled": True}


def test_localized_by_pattern():
    rules = [{"attributePatterns": ["*_fr"], "locales": ["fra"]}, {"attributePatterns": ["*"], "locales": ["eng"]}]
    assert _view("title_fr", localizedAttributes=rules)["localized"] == {"locales": ["fra"]}
    assert _view("title", localizedAttributes=rules)["localized"] == {"locales": ["eng"]}

