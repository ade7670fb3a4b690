"""The document join's pure parts (core/foreign.py) and the `_foreign(...)` grammar
(core/filter.py), with 1.50's texts (crates/meilisearch/tests/search/document_join.rs)."""

from __future__ import annotations

import pytest

from miroir.core import filter as f, foreign
from miroir.core.errors import MeiliError
from miroir.core.settings import client_view, node_patch

KEYS = [("author", "authors"), ("related_authors", "authors")]
ON = {"foreignKeys": True}


def test_parse_foreign_node():
    expr = f.parse_filter('genres = action AND _foreign(author, birthday STARTS WITH "1958-" AND popularity >= 3.5)')
    assert isinstance(expr, f.And)
    node = expr.items[1]
    assert isinstance(node, f.Foreign) and node.attr == "author"
    assert f.to_filter_string(f.parse_filter("_foreign(a, x = 1)")) == "_foreign(a, x = 1)"


def test_malformed_foreign_is_final():
    with pytest.raises(f.FilterError) as e:
        f.parse_filter("_foreign(author)")
    assert e.value.message.startswith(
        "Was expecting a field name and an condition inside `_foreign(..)` filter but instead found `(author)`."
    )
    assert f.parse_filter("_foreign = 3") == f.Compare("_foreign", "=", "3")  # an attribute named so


def test_feature_gate_quotes_from_the_foreign_on():
    flt = 'genres = action AND _foreign(author, birthday STARTS WITH "1958-" AND popularity >= 3.5)'
    with pytest.raises(MeiliError) as e:
        f.route_filter(flt, "invalid_search_filter", {})
    assert e.value.code == "feature_not_enabled"
    assert e.value.message.endswith('\n30:36 _foreign(author, birthday STARTS WITH "1958-" AND popularity >= 3.5)')
    assert f.route_filter(flt, "invalid_search_filter", ON) is not None  # STARTS WITH is not gated


def test_contains_inside_foreign_is_gated():
    with pytest.raises(MeiliError) as e:
        f.route_filter("_foreign(author, name CONTAINS b)", "invalid_search_filter", ON)
    assert e.value.message.startswith("Using `CONTAINS` in a filter requires")


def test_plan_errors_and_order():
    with pytest.raises(foreign.JoinError) as e:
        foreign.plan(f.parse_filter("_foreign(title, id = a1)"), "books", KEYS)
    assert (e.value.code, e.value.message) == ("invalid_search_filter", "Index `books`: Field `title` is not a foreign key")
    with pytest.raises(foreign.JoinError) as e:
        foreign.plan(f.parse_filter("_foreign(author, id = a1 AND _foreign(related_authors, id = a2))"), "books", KEYS)
    assert e.value.message == "Index `books`: Nested foreign filters are not supported"
    expr = f.parse_filter("_foreign(author, id = a1) OR _foreign(related_authors, id = a2)")
    assert [(n.attr, uid) for n, uid in foreign.plan(expr, "books", KEYS)] == [
        ("related_authors", "authors"), ("author", "authors"),  # 1.50's stack: last first
    ]


def test_inner_error_quotes_the_client_filter():
    expr = f.parse_filter('_foreign(author, birthday = "1958-06-15")')
    with pytest.raises(f.FilterError) as e:
        f.check_filterable(expr.item, ["id"])
    err = foreign.inner_error("authors", e.value)
    assert err.code == "invalid_document_filter"
    assert err.message == (
        "Index `authors`: Attribute `birthday` is not filterable. Available filterable attribute patterns are: `id`."
        '\n18:26 _foreign(author, birthday = "1958-06-15")'
    )


def test_rewrite_and_its_error_text():
    expr = f.parse_filter("genres = action AND _foreign(author, id = a1)")
    node = foreign.plan(expr, "books", KEYS)[0][0]
    text = foreign.rewritten(expr, {id(node): ["a1", "a2"]})
    assert text == '("genres" = "action") AND ("author" IN ["a1", "a2"])'
    alone = f.parse_filter("_foreign(author, id = a1)")
    again = f.parse_filter(foreign.rewritten(alone, {id(alone): ["a1"]}))
    with pytest.raises(f.FilterError) as e:
        f.check_search_filterable(again, [])
    assert e.value.message.endswith('\n2:8 "author" IN ["a1"]')


def test_too_many_ids():
    foreign.check_count("authors", foreign.MAX_FOREIGN_IDS)
    with pytest.raises(foreign.JoinError) as e:
        foreign.check_count("authors", foreign.MAX_FOREIGN_IDS + 1)
    assert e.value.message.startswith("Index `authors`: Foreign filter is retrieving too many documents")


def test_hydrate_hits_and_formatted():
    hits = [{
        "title": "Rust", "author": "a1", "related_authors": ["a2", "a9", 3.5, True],
        "_formatted": {"title": "<em>Rust</em>", "author": "a1", "related_authors": ["a2", "a9", "3.5", "true"]},
    }]
    assert foreign.wanted_ids(hits, KEYS) == {"authors": {"a1", "a2", "a9"}}
    found = {"authors": {"a1": {"id": "a1", "name": "Alice"}, "a2": {"id": "a2", "name": "Bob"}}}
    foreign.hydrate(hits, KEYS, found)
    assert hits[0]["author"] == {"id": "a1", "name": "Alice"}
    # an id no document has: {}; a value that is no document id stays
    assert hits[0]["related_authors"] == [{"id": "a2", "name": "Bob"}, {}, 3.5, True]
    assert hits[0]["_formatted"]["author"] == {"id": "a1", "name": "Alice"}
    assert hits[0]["_formatted"]["related_authors"][:2] == [{"id": "a2", "name": "Bob"}, {}]
    assert hits[0]["title"] == "Rust"


def test_hydrate_nested_field_and_integer_ids():
    hits = [{"meta": {"owner": 7}, "owners": [{"owner": 8}]}]
    foreign.hydrate(hits, [("meta.owner", "people"), ("owners.owner", "people")], {"people": {"7": {"id": 7}}})
    assert hits == [{"meta": {"owner": {"id": 7}}, "owners": [{"owner": {}}]}]


def test_deletion_filter_refuses_foreign():
    with pytest.raises(f.FilterError) as e:
        f.deletion_filter("_foreign(author, id = a1)", ON)
    assert e.value.code == "invalid_document_filter"
    assert e.value.message == "Filter condition `_foreign` is not supported for this endpoint.\n10:16 _foreign(author, id = a1)"


def test_nodes_never_hold_foreign_keys():
    keys = [{"foreignIndexUid": "authors", "fieldName": "author"}]
    assert "foreignKeys" not in node_patch({"foreignKeys": keys, "stopWords": ["a"]})
    view = client_view({"foreignKeys": []}, 100, None, {"foreignKeys": keys})
    assert view["foreignKeys"] == keys
    assert client_view({}, 100, view, {"stopWords": ["a"]})["foreignKeys"] == keys  # kept
    assert client_view({}, 100, view, {"foreignKeys": None})["foreignKeys"] == []  # reset
