"""`POST /indexes/{uid}/fields` (Meilisearch 1.50): what each field of an index does.

One definition for the devnode (over the fields it holds) and Miroir (over the union of
its nodes' fields, with the client's settings), so both answer alike. A field's view is
computed from the index settings the way 1.50 computes it from its metadata: legacy
pattern matching (a pattern covers itself and what is nested under it) for displayed,
searchable, sortable and string filterable entries; `attributePatterns` rules for
filterable objects and localized attributes. Fields are sorted by name, then paginated.
Pure module.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from miroir.core.errors import MeiliError, json_kind, type_error

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
            "bad_request", f"Invalid value type: expected an object, but found {json_kind(body)}: `{_shown(body)}`"
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


# --- matching ------------------------------------------------------------------------------


def _legacy(pattern: str, field: str) -> bool:
    """1.50's legacy match: the pattern itself, or a field nested under it."""
    return pattern == "*" or field == pattern or field.startswith(pattern + ".")


def _pattern(pattern: str, field: str) -> bool:
    """1.50's `match_pattern` (Match only): `*`, `*x*`, `*x`, `x*`, or exact."""
    if pattern == "*":
        return True
    if len(pattern) > 1 and pattern.startswith("*") and pattern.endswith("*"):
        return pattern[1:-1] in field
    if pattern.startswith("*"):
        return field.endswith(pattern[1:])
    if pattern.endswith("*"):
        return field.startswith(pattern[:-1])
    return pattern == field


def _filterable(rules: Iterable[Any], field: str) -> tuple[bool, bool, bool]:
    """(facetSearch, equality, comparison) of the first rule covering `field`."""
    for rule in rules or ():
        if isinstance(rule, str) and _legacy(rule, field):
            return True, True, True
        elif isinstance(rule, dict):  # noqa: SIM102 - one rule kind per branch
            if any(_pattern(p, field) for p in rule.get("attributePatterns") or () if isinstance(p, str)):
                features = rule.get("features") or {}
                filt = features.get("filter") or {}
                return (
                    bool(features.get("facetSearch", False)),
                    bool(filt.get("equality", True)),
                    bool(filt.get("comparison", False)),
                )
    return False, False, False


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
    sort_by = (settings.get("faceting") or {}).get("sortFacetValuesBy") or {}
    locales: list[str] = []
    for rule in settings.get("localizedAttributes") or ():
        if isinstance(rule, dict) and any(_pattern(p, name) for p in rule.get("attributePatterns") or ()):
            locales = list(rule.get("locales") or [])
            break
    return {
        "name": name,
        "displayed": {"enabled": any(_legacy(p, name) for p in displayed)},
        "searchable": {"enabled": any(_legacy(p, name) for p in searchable)},
        "sortable": {"enabled": any(_legacy(p, name) for p in sortable)},
        "distinct": {"enabled": distinct is not None and _legacy(distinct, name)},
        "rankingRule": ranking,
        "filterable": {
            "enabled": facet_search or equality or comparison,
            "sortBy": sort_by.get(name, sort_by.get("*", "alpha")),
            "facetSearch": facet_search,
            "equality": equality,
            "comparison": comparison,
        },
        "localized": {"locales": locales},
    }


def _kept(field: dict[str, Any], flt: Mapping[str, Any] | None) -> bool:
    if not flt:
        return True
    patterns = flt.get("attributePatterns")
    if patterns is not None and not any(_pattern(p, field["name"]) for p in patterns):
        return False
    return all(field[key]["enabled"] == want for key, want in flt.items() if key != "attributePatterns")


def list_fields(names: Iterable[str], settings: Mapping[str, Any], query: FieldsQuery) -> dict[str, Any]:
    """The paginated answer `{results, offset, limit, total}` over the field `names`."""
    fields = [field_view(n, settings) for n in sorted(set(names))]
    fields = [f for f in fields if _kept(f, query.filter)]
    page = fields[query.offset : query.offset + query.limit]
    return {"results": page, "offset": query.offset, "limit": query.limit, "total": len(fields)}
