"""`POST /indexes/{uid}/fields` (Meilisearch 1.50): what each field of an index does.

One definition for the devnode (over the fields it holds) and Miroir (over the union of
its nodes' fields, with the client's settings), so both answer alike. A field's view is
computed from the index settings the way 1.50 computes it from its metadata, with
core/patterns.py's matchers: legacy matching (a field covers itself and what is nested
under it, no wildcard) for displayed, searchable, sortable and string filterable
entries, `*` standing for "all" in displayed and searchable only; the distinct
attribute by its name alone; `attributePatterns` rules for filterable objects and
localized attributes. Fields are sorted by name, then paginated. Pure module.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from miroir.core import patterns
from miroir.core.errors import MeiliError, type_error, type_text
from miroir.core.facets import facet_order

DEFAULT_LIMIT = 20
_BODY = ("offset", "limit", "filter")
_FILTER = ("attributePatterns", "displayed", "searchable", "sortable", "distinct", "rankingRule", "filterable")


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name)


class FieldsQuery:
    __slots__ = ("filter", "limit", "offset")

    def __init__(self, offset: int, limit: int, filter: dict[str, Any] | None):
        self.offset, self.limit, self.filter = offset, limit, filter


def parse_fields_query(body: Any) -> FieldsQuery:
    """The request body, refused with 1.50's codes and texts."""
    if not isinstance(body, dict):
        raise MeiliError(
            "bad_request", type_text("", body, "an object")
        )
    for key in body:
        if key not in _BODY:
            raise MeiliError("bad_request", f"Unknown field `{key}`: expected one of {_listed(_BODY)}")
    out: dict[str, Any] = {"offset": 0, "limit": DEFAULT_LIMIT}
    for name in ("offset", "limit"):
        value = body.get(name, out[name])
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise type_error(f"invalid_index_{name}", f".{name}", value, "a positive integer")
        out[name] = value
    flt = body.get("filter")
    if flt is not None:
        if not isinstance(flt, dict):
            raise type_error("invalid_index_fields_filter", ".filter", flt, "an object")
        for key, value in flt.items():
            if key not in _FILTER:
                raise MeiliError(
                    "invalid_index_fields_filter",
                    f"Unknown field `{key}` inside `.filter`: expected one of {_listed(_FILTER)}",
                )
            code = f"invalid_index_fields_filter_{_snake(key)}"
            if value is None:
                continue
            if key == "attributePatterns":
                if not isinstance(value, list):
                    raise type_error(code, ".filter.attributePatterns", value, "an array")
                for i, p in enumerate(value):
                    if not isinstance(p, str):
                        raise type_error(code, f".filter.attributePatterns[{i}]", p, "a string")
            elif not isinstance(value, bool):
                raise type_error(code, f".filter.{key}", value, "a boolean")
        flt = {k: v for k, v in flt.items() if v is not None}
    return FieldsQuery(out["offset"], out["limit"], flt or None)


def _shown(value: Any) -> str:
    return msgspec.json.encode(value).decode()


def _listed(names: Iterable[str]) -> str:
    return ", ".join(f"`{n}`" for n in names)


# --- matching: core/patterns.py, as Miroir's reads and the devnode match ----------------


def _legacy_or_all(fields: list[str], name: str) -> bool:
    """`displayedAttributes`/`searchableAttributes`: `*` anywhere is 1.50's unset (every
    field); otherwise the legacy reading (a field and what is nested in it)."""
    return "*" in fields or patterns.legacy_match_any(fields, name)


def _filterable(rules: Iterable[Any], name: str) -> tuple[bool, bool, bool]:
    """(facetSearch, equality, comparison) of the first rule matching `name` (1.50's
    `filterable_rule_with_index`: a plain field allows all three)."""
    rule = patterns.matching_rule(rules, name)
    if rule is None:
        return False, False, False
    if isinstance(rule, str):
        return True, True, True
    features = rule.get("features") or {}
    filt = features.get("filter") or {}
    return bool(features.get("facetSearch", False)), bool(filt.get("equality", True)), bool(filt.get("comparison", False))


def _matches_any(pattern_list: Iterable[Any], name: str) -> bool:
    return any(isinstance(p, str) and patterns.match_pattern(p, name) is patterns.MATCH for p in pattern_list)


def field_view(name: str, settings: Mapping[str, Any]) -> dict[str, Any]:
    """1.50's `Field` for `name` under `settings` (the index's full settings)."""
    displayed = settings.get("displayedAttributes") or ["*"]
    searchable = settings.get("searchableAttributes") or ["*"]
    sortable = settings.get("sortableAttributes") or []
    distinct = settings.get("distinctAttribute")
    ranking = {"enabled": False}
    for rule in settings.get("rankingRules") or ():
        attr, sep, order = rule.rpartition(":")
        if sep and order in ("asc", "desc") and attr == name:
            ranking = {"enabled": True, "order": order}
            break
    facet_search, equality, comparison = _filterable(settings.get("filterableAttributes") or [], name)
    sort_by = (settings.get("faceting") or {}).get("sortFacetValuesBy")
    locales: list[str] = []
    for rule in settings.get("localizedAttributes") or ():
        if isinstance(rule, dict) and _matches_any(rule.get("attributePatterns") or (), name):
            locales = list(rule.get("locales") or [])
            break
    return {
        "name": name,
        "displayed": {"enabled": _legacy_or_all(displayed, name)},
        "searchable": {"enabled": _legacy_or_all(searchable, name)},
        "sortable": {"enabled": patterns.legacy_match_any(sortable, name)},  # no wildcard
        "distinct": {"enabled": distinct == name},  # 1.50's `match_distinct_field`: the name alone
        "rankingRule": ranking,
        "filterable": {
            "enabled": facet_search or equality or comparison,
            "sortBy": facet_order(sort_by, name),
            "facetSearch": facet_search,
            "equality": equality,
            "comparison": comparison,
        },
        "localized": {"locales": locales},
    }


def _kept(field: dict[str, Any], flt: Mapping[str, Any] | None) -> bool:
    if not flt:
        return True
    wanted = flt.get("attributePatterns")
    if wanted is not None and not _matches_any(wanted, field["name"]):
        return False
    return all(field[key]["enabled"] == want for key, want in flt.items() if key != "attributePatterns")


def list_fields(names: Iterable[str], settings: Mapping[str, Any], query: FieldsQuery) -> dict[str, Any]:
    """The paginated answer `{results, offset, limit, total}` over the field `names`."""
    fields = [field_view(n, settings) for n in sorted(set(names))]
    fields = [f for f in fields if _kept(f, query.filter)]
    page = fields[query.offset : query.offset + query.limit]
    return {"results": page, "offset": query.offset, "limit": query.limit, "total": len(fields)}
