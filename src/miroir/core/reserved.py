"""Miroir's hidden document fields (`_miroir_*`) are not the client's (issue 20 point 8).

Every document on the nodes carries `_miroir_shard`, filterable on every node so that
Miroir's own sub-queries can name shards. A client must not see or use it: a filter, sort,
facet, facet search or distinct naming a `_miroir_*` attribute gets the error Meilisearch
gives for an attribute that is not filterable (or sortable), worded with the client's own
filterable attributes; facet answers never list it; settings cannot name it. Miroir's own
sub-queries are built after these checks and are never checked.

Every document also carries its insertion sequence, the order one Meilisearch gives
tied hits and document listings (its internal document ids follow insertion order and
survive updates): `_miroir_seq` is set by each add or replace (POST), from one counter
Miroir journals in ranges (engine/writes.py); a partial update (PUT) must not reset it,
so it sets `_miroir_useq` instead, which orders only a document created by a partial
update (it has no `_miroir_seq`). `document_seq` is the resulting order key; a document
written before sequences existed has none and sorts after every other, as before.

Each check returns the error, or None when the request names no hidden field (other
mistakes are left to the nodes, which word them). Pure module: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from miroir.core.errors import (
    NO_FILTERABLE,
    MeiliError,
    distinct_not_filterable,
    facet_not_filterable,
    index_scoped,
    not_facet_searchable,
    not_filterable_text,
    not_sortable,
)
from miroir.core.filter import FilterError, attribute_uses, index_filter_string, parse_filter
from miroir.core.patterns import filterable_patterns, is_filterable
from miroir.core.settings import RESERVED_PREFIX, SEQ_FIELDS as SEQ_FIELDS, SHARD_FIELD  # re-exported

_F = re.escape(SHARD_FIELD)
# `_miroir_shard` in the attribute lists of milli's errors: each pattern quoted (the
# filter's), or the whole list quoted once (facet distribution, distinct).
_ALONE = re.compile(rf"Available filterable attributes? patterns are: `{_F}`\.")
_ALONE_FACET_SEARCH = re.compile(rf"Available facet-searchable attributes patterns are: `{_F}`\.")
_QUOTED_ITEM = re.compile(rf"`{_F}`, |, `{_F}`")
_LIST_ITEM = re.compile(rf"(?<=`){_F}, |, {_F}(?=[`,])")


def hide_shard_field(message: str) -> str:
    """A node's error without `_miroir_shard` in the attributes it lists (every index of
    Miroir's nodes has it filterable; it is not the client's)."""
    if SHARD_FIELD not in message:
        return message
    message = _ALONE.sub(NO_FILTERABLE, message)
    message = _ALONE_FACET_SEARCH.sub("This index does not have configured facet-searchable attributes.", message)
    message = _QUOTED_ITEM.sub("", message)
    return _LIST_ITEM.sub("", message)


def hide_shard_field_in(error: dict[str, Any] | None) -> dict[str, Any] | None:
    """`hide_shard_field` for an error as a task view holds it."""
    if error is None or SHARD_FIELD not in str(error.get("message", "")):
        return error
    return {**error, "message": hide_shard_field(error["message"])}


SEQ_FIELD, UPDATE_SEQ_FIELD = SEQ_FIELDS
# The order key of a document without a sequence: after every numbered one.
NO_SEQ = 1 << 62


def document_seq(doc: dict[str, Any]) -> int:
    """A document's insertion order key (see module docstring); numbers start at 1."""
    return doc.get(SEQ_FIELD) or doc.get(UPDATE_SEQ_FIELD) or NO_SEQ


def is_reserved(name: Any) -> bool:
    return isinstance(name, str) and name.startswith(RESERVED_PREFIX)


def _may_name_reserved(value: Any) -> bool:
    """Cheap test before parsing: a filter naming `_miroir_*` spells it out or escapes it."""
    if isinstance(value, str):
        return RESERVED_PREFIX in value or "\\" in value
    if isinstance(value, list):
        return any(_may_name_reserved(v) for v in value)
    return False


def _patterns(filterable: Iterable[Any], *, feature: str | None = None) -> list[str]:
    """The client's filterable patterns (granular rules: those enabling `feature`), sorted."""
    return sorted({p for p in filterable_patterns(filterable, feature=feature) if not is_reserved(p)})


def primary_key_error(primary_key: Any) -> MeiliError | None:
    """An index keyed by `_miroir_*`: no document could ever carry its id."""
    if not is_reserved(primary_key):
        return None
    return MeiliError(
        "miroir_reserved_field",
        f"Invalid value at `.primaryKey`: attribute `{primary_key}` is reserved by Miroir (attributes starting with "
        f"`{RESERVED_PREFIX}` cannot be used as primary key).",
    )


def filter_error(
    value: Any, filterable: Iterable[Any], code: str = "invalid_search_filter", *, search: bool = False
) -> MeiliError | None:
    """A filter whose first attribute Meilisearch would refuse is a `_miroir_*` one.
    `search`: a search's filter, whose position line points into its re-serialized text."""
    if not _may_name_reserved(value):
        return None
    try:
        expr = parse_filter(value)
        if search and expr is not None:
            expr = parse_filter(index_filter_string(expr))
    except FilterError:
        return None  # the nodes answer with the syntax error
    patterns = _patterns(filterable)
    for attr, position in attribute_uses(expr):
        if is_reserved(attr):
            message = not_filterable_text(attr, patterns)
            return index_scoped(FilterError(message + ("\n" + position if position else ""), code))
        if attr != "_vectors" and not is_filterable(filterable, attr):  # milli lets `_vectors` through
            return None  # refused by the nodes first, with their own words
    return None


def delete_filter_error(uid: str, value: Any, state: Any) -> MeiliError | None:
    """Delete-by-filter naming a `_miroir_*` attribute: the error its task fails with, as
    Meilisearch's task for an attribute that is not filterable (None for a missing index:
    that error comes first)."""
    if uid not in state.indexes:
        return None
    settings = state.index_settings.get(uid) or {}
    refused = filter_error(value, settings.get("filterableAttributes") or (), "invalid_document_filter")
    if refused is None:
        return None
    return MeiliError(refused.code, f"Index `{uid}`: {refused.message}")


def facets_error(facets: Any, filterable: Iterable[Any]) -> MeiliError | None:
    """`facets` naming a `_miroir_*` attribute (patterns are filtered from the answer)."""
    if not isinstance(facets, list):
        return None
    for name in facets:
        if is_reserved(name) and "*" not in name:
            return facet_not_filterable(name, _patterns(filterable))
    return None


def distinct_error(distinct: Any, filterable: Iterable[Any]) -> MeiliError | None:
    if not is_reserved(distinct):
        return None
    return distinct_not_filterable(distinct, _patterns(filterable))


def sort_error(sort: Any, sortable: Iterable[Any]) -> MeiliError | None:
    if not isinstance(sort, list):
        return None
    for criterion in sort:
        if not isinstance(criterion, str):
            return None
        name, sep, direction = criterion.rpartition(":")
        if sep and direction in ("asc", "desc") and is_reserved(name):
            valid = [a for a in sortable or () if isinstance(a, str) and not is_reserved(a)]
            return index_scoped(not_sortable("invalid_search_sort", name, valid))
    return None


def facet_name_error(name: Any, filterable: Iterable[Any]) -> MeiliError | None:
    """Facet search on a `_miroir_*` attribute: not facet-searchable."""
    if not is_reserved(name):
        return None
    return not_facet_searchable(name, _patterns(filterable, feature="facetSearch"))


def strip_facets(answer: dict[str, Any]) -> None:
    """Drop `_miroir_*` from a search answer's `facetDistribution` and `facetStats`
    (a `["*"]` or pattern facet request makes the nodes count them)."""
    for key in ("facetDistribution", "facetStats"):
        facets = answer.get(key)
        if isinstance(facets, dict):
            for name in [n for n in facets if is_reserved(n)]:
                del facets[name]
