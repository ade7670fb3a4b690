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

from miroir.core import embedders as embedders_mod, locales as locales_mod, settings as core_settings
from miroir.core.errors import MeiliError, body_type_error, json_kind, type_text

Validator = Callable[[Any, str], Any]


_kind = json_kind


class _Invalid(Exception):
    """Raised by validators; turned into invalid_settings_<field> with the right path."""

    def __init__(self, path: str, message: str, kind: str = "type"):
        self.path, self.message, self.kind = path, message, kind


def _type_error(value: Any, path: str, expected: str) -> _Invalid:
    # deserr's words after "Invalid value type at `path`: " (`_Invalid` adds the prefix)
    return _Invalid(path, type_text("", value, expected).removeprefix("Invalid value type: "))


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


def _str_set(value: Any, path: str) -> list[str]:
    """A list Meilisearch keeps as a set: answered sorted, without repeats."""
    return sorted(set(_str_list(value, path)))


def _with_default_features(rule: dict) -> dict:
    """A pattern rule as 1.50 keeps it: omitted features filled with their defaults
    (no facet search; equality filtering, no comparison)."""
    features = rule.get("features", {})
    if features is None:
        features = {}
    if not isinstance(features, dict):
        return rule
    filt = features.get("filter", {})
    if filt is None:
        filt = {}
    if not isinstance(filt, dict):
        return rule
    filled = {
        "facetSearch": features.get("facetSearch", False),
        "filter": {"equality": filt.get("equality", True), "comparison": filt.get("comparison", False)},
    }
    return {**rule, "features": filled}


def _filterable(value: Any, path: str) -> list:
    # Newer Meilisearch also accepts `{"attributePatterns": [...], "features": {...}}`
    # entries; they are passed through for the engine to interpret.
    if not isinstance(value, list):
        raise _type_error(value, path, "an array")
    out = []
    for i, v in enumerate(value):
        if isinstance(v, dict) and "attributePatterns" in v:
            out.append(_with_default_features(v))
        else:
            out.append(_str(v, f"{path}[{i}]"))
    return out


def _ranking_rules(value: Any, path: str) -> list[str]:
    rules = _str_list(value, path)
    for i, rule in enumerate(rules):
        text = core_settings.ranking_rule_error(rule)
        if text is not None:
            raise _Invalid(f"{path}[{i}]", text, kind="value")
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


def _min_word_size(value: Any, path: str) -> dict:
    out = _object({"oneTypo": _u8, "twoTypos": _u8})(value, path)
    one, two = out.get("oneTypo"), out.get("twoTypos")
    if one is not None and two is not None and one > two:
        raise _Invalid(path, core_settings.min_word_sizes_error(one, two), kind="value")
    return out


def _u8(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 255:
        raise _type_error(value, path, "a positive integer")
    return value


def _non_zero(value: Any, path: str) -> int:
    n = _uint(value, path)
    if n == 0:
        raise _Invalid(path, core_settings.NON_ZERO, kind="value")
    return n


def _embedders(value: Any, path: str) -> dict:
    """Checked as 1.50 checks them (core/embedders.py); stored as a 1.50 node shows them.
    The devnode does not embed: vectors are another matter."""
    embedders_mod.check_types(value, path)
    embedders_mod.validate(value)
    return value


def _merge_embedders(current: dict, patch: dict) -> dict:
    """1.50 updates an embedder field by field (`null`: that field reset, a whole
    embedder `null`: removed), then shows it with its source's defaults."""
    out = dict(current)
    for name, e in patch.items():
        if e is None:
            out.pop(name, None)
            continue
        merged = {**out.get(name, {}), **e}
        out[name] = embedders_mod.stored_view(merged)
    return out


def _object_list(spec: dict[str, Validator]) -> Validator:
    """An array of objects with exactly `spec`'s keys, every one required, read as deserr
    reads them: an unknown key or a bad value where it stands, then a missing key."""
    listed = ", ".join(f"`{k}`" for k in spec)

    def check(value: Any, path: str) -> list:
        if not isinstance(value, list):
            raise _type_error(value, path, "an array")
        out = []
        for i, item in enumerate(value):
            at = f"{path}[{i}]"
            if not isinstance(item, dict):
                raise _type_error(item, at, "an object")
            got = {}
            for key, sub in item.items():
                if key not in spec:
                    raise _Invalid(at, f"Unknown field `{key}` inside `{at}`: expected one of {listed}", kind="raw")
                got[key] = spec[key](sub, f"{at}.{key}")
            for key in spec:
                if key not in got:
                    raise _Invalid(at, f"Missing field `{key}` inside `{at}`", kind="raw")
            out.append({key: got[key] for key in spec})
        return out

    return check


def _locale_list(value: Any, path: str) -> list[str]:
    out = _str_list(value, path)
    try:
        locales_mod.check_body(out, path, "")
    except MeiliError as e:
        raise _Invalid(path, e.message, kind="raw") from None
    return out


_localized = _object_list({"attributePatterns": _str_list, "locales": _locale_list})
_foreign_keys = _object_list({"foreignIndexUid": _str, "fieldName": _str})


def _float(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _type_error(value, path, "a number")
    return value


def _any_object(value: Any, path: str) -> dict:
    if not isinstance(value, dict):
        raise _type_error(value, path, "an object")
    return value


def _opt_uint(value: Any, path: str) -> int | None:
    return None if value is None else _uint(value, path)


_TYPO = _object(
    {
        "enabled": _bool,
        "minWordSizeForTypos": _min_word_size,
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
    Field("sortableAttributes", "sortable-attributes", "PUT", _str_set),
    Field("foreignKeys", "foreign-keys", "PUT", _foreign_keys),
    Field("rankingRules", "ranking-rules", "PUT", _ranking_rules),
    Field("stopWords", "stop-words", "PUT", _str_set),
    Field("nonSeparatorTokens", "non-separator-tokens", "PUT", _str_set),
    Field("separatorTokens", "separator-tokens", "PUT", _str_set),
    Field("dictionary", "dictionary", "PUT", _str_set),
    Field("synonyms", "synonyms", "PUT", _synonyms),
    Field("distinctAttribute", "distinct-attribute", "PUT", _opt_str),
    Field("proximityPrecision", "proximity-precision", "PUT", _enum("byWord", "byAttribute")),
    Field("typoTolerance", "typo-tolerance", "PATCH", _TYPO),
    Field("faceting", "faceting", "PATCH", _object({"maxValuesPerFacet": _uint, "sortFacetValuesBy": _sort_facets_by})),
    Field("pagination", "pagination", "PATCH", _object({"maxTotalHits": _non_zero})),
    Field("embedders", "embedders", "PATCH", _embedders),
    Field("searchCutoffMs", "search-cutoff-ms", "PUT", _opt_uint),
    Field("localizedAttributes", "localized-attributes", "PUT", _localized),
    Field("facetSearch", "facet-search", "PUT", _bool),
    Field("prefixSearch", "prefix-search", "PUT", _enum("indexingTime", "disabled")),
    Field("chat", "chat", "PATCH", _object({
        "description": _str,
        "documentTemplate": _str,
        "documentTemplateMaxBytes": _uint,
        "searchParameters": _object({
            "hybrid": _any_object,
            "limit": _uint,
            "sort": _str_list,
            "distinct": _str,
            "matchingStrategy": _enum("last", "all", "frequency"),
            "attributesToSearchOn": _str_list,
            "rankingScoreThreshold": _float,
        }),
    })),
)
BY_NAME = {f.name: f for f in FIELDS}
BY_ROUTE = {f.route: f for f in FIELDS}


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name)


def _error(field: Field, err: _Invalid) -> MeiliError:
    code = core_settings.error_code(field.name)
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


def _check_patch(patch: dict, features: frozenset[str] | None) -> dict:
    """1.50's checks of a whole update (route and `Settings::validate`): feature gates
    (`features`: the experimental features on; None: the devnode does not know them,
    no gate), then the ranking-rule mix."""
    if features is not None:
        embedders_mod.check_gates(patch.get("embedders"), features)
        for key, (feature, label, discussion) in core_settings.GATED_KEYS.items():
            if patch.get(key) is not None and feature not in features:
                raise embedders_mod.feature_not_enabled(f"setting `{key}` in the index settings", label, discussion)
    rules = patch.get("rankingRules")
    if isinstance(rules, list) and core_settings.attribute_rules_mixed(rules):
        raise MeiliError("invalid_settings_ranking_rules", core_settings._MIXED_RULES)
    return patch


def hidden_keys(features: frozenset[str] | None) -> tuple[str, ...]:
    """Keys `GET /settings` leaves out while their feature is off."""
    on = features or frozenset()
    return tuple(k for k, (feature, _, _) in core_settings.GATED_KEYS.items() if feature not in on)


def validate_settings(body: Any, known: tuple[str, ...] | None = None, features: frozenset[str] | None = None) -> dict:
    """Body of `PATCH /settings` -> normalized patch (`None` = reset)."""
    if not isinstance(body, dict):
        raise body_type_error(body)
    names = known or tuple(BY_NAME)
    patch = {}
    for key, value in body.items():
        if key not in BY_NAME or key not in names:
            listed = ", ".join(f"`{n}`" for n in names)
            raise MeiliError("bad_request", f"Unknown field `{key}`: expected one of {listed}")
        patch[key] = _check(BY_NAME[key], value, f".{key}")
    return _check_patch(patch, features)


def validate_route(route: str, body: Any, features: frozenset[str] | None = None) -> dict:
    """Body of `PUT|PATCH /settings/<route>` -> a one-field patch."""
    field = BY_ROUTE[route]
    return _check_patch({field.name: _check(field, body, "")}, features)


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
        elif name == "embedders":
            out[name] = _merge_embedders(out.get(name) or {}, value)
        elif name == "faceting" and isinstance(value, dict) and isinstance(default, dict):
            out[name] = core_settings.with_default_facet_order(_merge_object(out.get(name) or default, value, default))
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


def shown(settings: dict, features: frozenset[str] | None) -> dict:
    """`GET /settings`: 1.50's order, gated keys hidden while their feature is off,
    embedder secrets masked."""
    hidden = hidden_keys(features)
    out = {k: v for k, v in ordered(settings).items() if k not in hidden}
    if "embedders" in out:
        out["embedders"] = embedders_mod.masked(out["embedders"])
    return out


def shown_field(settings: dict, name: str) -> Any:
    value = settings.get(name)
    return embedders_mod.masked(value) if name == "embedders" else value
