"""Index settings: validation per route, PATCH merge into the full object, reset.

The devnode validates a settings request when it is received (bad types are a 400, like
Meilisearch) and applies it when its task runs: `merge(current, patch, defaults)` gives
the full settings object the engine receives. In a patch, `None` means "reset to the
default" — that is how Meilisearch reads `null` and how DELETE routes are expressed.
Pure module: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from miroir.core.errors import MeiliError, json_kind

_RULES = ("words", "typo", "proximity", "attribute", "sort", "exactness")

Validator = Callable[[Any, str], Any]


_kind = json_kind


class _Invalid(Exception):
    """Raised by validators; turned into invalid_settings_<field> with the right path."""

    def __init__(self, path: str, message: str, kind: str = "type"):
        self.path, self.message, self.kind = path, message, kind


def _type_error(value: Any, path: str, expected: str) -> _Invalid:
    text = msgspec.json.encode(value).decode()
    return _Invalid(path, f"expected {expected}, but found {_kind(value)}: `{text}`")


def _str(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise _type_error(value, path, "a string")
    return value


def _bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise _type_error(value, path, "a boolean")
    return value


def _uint(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _type_error(value, path, "a positive integer")
    return value


def _str_list(value: Any, path: str) -> list[str]:
    if not isinstance(value, list):
        raise _type_error(value, path, "an array")
    return [_str(v, f"{path}[{i}]") for i, v in enumerate(value)]


def _filterable(value: Any, path: str) -> list:
    # Newer Meilisearch also accepts `{"attributePatterns": [...], "features": {...}}`
    # entries; they are passed through for the engine to interpret.
    if not isinstance(value, list):
        raise _type_error(value, path, "an array")
    out = []
    for i, v in enumerate(value):
        if isinstance(v, dict) and "attributePatterns" in v:
            out.append(v)
        else:
            out.append(_str(v, f"{path}[{i}]"))
    return out


def _ranking_rules(value: Any, path: str) -> list[str]:
    rules = _str_list(value, path)
    for i, rule in enumerate(rules):
        name, _, order = rule.rpartition(":")
        if rule in _RULES or (name and order in ("asc", "desc")):
            continue
        raise _Invalid(
            f"{path}[{i}]",
            f"`{rule}` ranking rule is invalid. Valid ranking rules are words, typo, sort, proximity, attribute, "
            "exactness and custom ranking rules.",
            kind="value",
        )
    return rules


def _synonyms(value: Any, path: str) -> dict[str, list[str]]:
    if not isinstance(value, dict):
        raise _type_error(value, path, "an object")
    return {k: _str_list(v, f"{path}.{k}") for k, v in value.items()}


def _opt_str(value: Any, path: str) -> str | None:
    return None if value is None else _str(value, path)


def _enum(*choices: str) -> Validator:
    def check(value: Any, path: str) -> str:
        if not isinstance(value, str):
            raise _type_error(value, path, "a string")
        if value not in choices:
            listed = ", ".join(f"`{c}`" for c in choices)
            raise _Invalid(path, f"Unknown value `{value}`: expected one of {listed}", kind="raw")
        return value

    return check


def _object(spec: dict[str, Validator]) -> Validator:
    """An object setting: known keys only; `null` inside means reset that key."""

    def check(value: Any, path: str) -> dict:
        if not isinstance(value, dict):
            raise _type_error(value, path, "an object")
        out = {}
        for key, sub in value.items():
            if key not in spec:
                listed = ", ".join(f"`{k}`" for k in spec)
                where = f" inside `{path}`" if path else ""
                raise _Invalid(path, f"Unknown field `{key}`{where}: expected one of {listed}", kind="raw")
            out[key] = None if sub is None else spec[key](sub, f"{path}.{key}")
        return out

    return check


def _sort_facets_by(value: Any, path: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise _type_error(value, path, "an object")
    return {k: _enum("alpha", "count")(v, f"{path}.{k}") for k, v in value.items()}


def _passthrough(value: Any, path: str) -> Any:
    return value


def _opt_uint(value: Any, path: str) -> int | None:
    return None if value is None else _uint(value, path)


_TYPO = _object(
    {
        "enabled": _bool,
        "minWordSizeForTypos": _object({"oneTypo": _uint, "twoTypos": _uint}),
        "disableOnWords": _str_list,
        "disableOnAttributes": _str_list,
        "disableOnNumbers": _bool,
    }
)


class Field(msgspec.Struct, frozen=True):
    name: str  # camelCase key in the settings object
    route: str  # sub-route under /settings/
    method: str  # the update verb of the sub-route: "PUT" or "PATCH" (object merge)
    check: Validator


# Order is the order of Meilisearch's `GET /settings` answer.
FIELDS: tuple[Field, ...] = (
    Field("displayedAttributes", "displayed-attributes", "PUT", _str_list),
    Field("searchableAttributes", "searchable-attributes", "PUT", _str_list),
    Field("filterableAttributes", "filterable-attributes", "PUT", _filterable),
    Field("sortableAttributes", "sortable-attributes", "PUT", _str_list),
    Field("rankingRules", "ranking-rules", "PUT", _ranking_rules),
    Field("stopWords", "stop-words", "PUT", _str_list),
    Field("nonSeparatorTokens", "non-separator-tokens", "PUT", _str_list),
    Field("separatorTokens", "separator-tokens", "PUT", _str_list),
    Field("dictionary", "dictionary", "PUT", _str_list),
    Field("synonyms", "synonyms", "PUT", _synonyms),
    Field("distinctAttribute", "distinct-attribute", "PUT", _opt_str),
    Field("proximityPrecision", "proximity-precision", "PUT", _enum("byWord", "byAttribute")),
    Field("typoTolerance", "typo-tolerance", "PATCH", _TYPO),
    Field("faceting", "faceting", "PATCH", _object({"maxValuesPerFacet": _uint, "sortFacetValuesBy": _sort_facets_by})),
    Field("pagination", "pagination", "PATCH", _object({"maxTotalHits": _uint})),
    Field("embedders", "embedders", "PATCH", _passthrough),
    Field("searchCutoffMs", "search-cutoff-ms", "PUT", _opt_uint),
    Field("localizedAttributes", "localized-attributes", "PUT", _passthrough),
    Field("facetSearch", "facet-search", "PUT", _bool),
    Field("prefixSearch", "prefix-search", "PUT", _enum("indexingTime", "disabled")),
)
BY_NAME = {f.name: f for f in FIELDS}
BY_ROUTE = {f.route: f for f in FIELDS}


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name)


def _error(field: Field, err: _Invalid) -> MeiliError:
    code = f"invalid_settings_{_snake(field.name)}"
    if err.kind == "raw":
        message = err.message
    else:
        label = "Invalid value type" if err.kind == "type" else "Invalid value"
        message = f"{label} at `{err.path}`: {err.message}" if err.path else f"{label}: {err.message}"
    return MeiliError(code, message)


def _check(field: Field, value: Any, path: str) -> Any:
    if value is None:
        return None
    try:
        return field.check(value, path)
    except _Invalid as e:
        raise _error(field, e) from None


def validate_settings(body: Any, known: tuple[str, ...] | None = None) -> dict:
    """Body of `PATCH /settings` -> normalized patch (`None` = reset)."""
    if not isinstance(body, dict):
        text = msgspec.json.encode(body).decode()
        raise MeiliError("bad_request", f"Invalid value type: expected an object, but found {_kind(body)}: `{text}`")
    names = known or tuple(BY_NAME)
    patch = {}
    for key, value in body.items():
        if key not in BY_NAME or key not in names:
            listed = ", ".join(f"`{n}`" for n in names)
            raise MeiliError("bad_request", f"Unknown field `{key}`: expected one of {listed}")
        patch[key] = _check(BY_NAME[key], value, f".{key}")
    return patch


def validate_route(route: str, body: Any) -> dict:
    """Body of `PUT|PATCH /settings/<route>` -> a one-field patch."""
    field = BY_ROUTE[route]
    return {field.name: _check(field, body, "")}


def reset_patch(route: str | None = None) -> dict:
    """The patch a DELETE route stands for: reset one field, or all of them."""
    if route is None:
        return {f.name: None for f in FIELDS}
    return {BY_ROUTE[route].name: None}


def _merge_object(current: dict, patch: dict, default: dict) -> dict:
    out = dict(current)
    for key, value in patch.items():
        if value is None:
            if key in default:
                out[key] = default[key]
            else:
                out.pop(key, None)
        elif isinstance(value, dict) and isinstance(default.get(key), dict) and key != "sortFacetValuesBy":
            out[key] = _merge_object(out.get(key) or {}, value, default[key])
        else:
            out[key] = value
    return out


def merge(current: dict, patch: dict, defaults: dict) -> dict:
    """Apply a normalized patch to a full settings object (neither input is modified)."""
    out = dict(current)
    for name, value in patch.items():
        default = defaults.get(name)
        if value is None:
            out[name] = default
        elif BY_NAME[name].method == "PATCH" and isinstance(value, dict) and isinstance(default, dict):
            out[name] = _merge_object(out.get(name) or default, value, default)
        else:
            out[name] = value
    return out


def ordered(settings: dict) -> dict:
    """Settings in Meilisearch's field order (unknown engine keys last, as they came)."""
    out = {f.name: settings[f.name] for f in FIELDS if f.name in settings}
    out.update((k, v) for k, v in settings.items() if k not in out)
    return out
