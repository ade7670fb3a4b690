"""Index settings as Miroir sees them: decoding, client <-> node views, canonical hash.

Miroir keeps two views of one index's settings:

- the *client view*: what the client set, answered by `GET /settings*`;
- the *node view*: what every node holds. It differs in three places, all needed by
  the scatter/merge path:
  * a `displayedAttributes` list (not `*`) also names the insertion sequence's fields
    (core/reserved.py), which the merge reads from every hit and then removes;
  * `filterableAttributes` always contains `_miroir_shard` (shard-restricted sub-queries,
    stats and migrations filter on it), whatever the client sends, also on reset;
  * `faceting.maxValuesPerFacet` is `NODE_MAX_VALUES_PER_FACET`, so that every node
    returns all its facet values and the merged counts are exact; the client's value
    is applied by the merge, after summing.

A settings request is decoded into `Settings` (msgspec, mirrors Meilisearch's settings
object) before any node is touched; decoding errors are Meilisearch's
`invalid_settings_<field>` / `bad_request`. In a patch, an absent field is `UNSET` and
`null` means "reset to the default", as in Meilisearch. Pure module: no I/O.
"""

from __future__ import annotations

import copy
import re
from typing import Annotated, Any, Literal

import msgspec
import xxhash
from msgspec import UNSET, Meta, UnsetType

from miroir.core import embedders as embedders_mod, locales as locales_mod
from miroir.core.errors import MeiliError, body_type_error, json_kind, type_text

SHARD_FIELD = "_miroir_shard"
RESERVED_PREFIX = "_miroir_"
# The insertion sequence's fields (core/reserved.py, which imports this module).
SEQ_FIELDS = ("_miroir_seq", "_miroir_useq")
# What nodes are told to return per facet. The merge sums counts across shards, so each
# node must return every value it has; 10k distinct values per facet per node covers
# real facets (Meilisearch itself caps answers at `maxValuesPerFacet`, default 100) while
# bounding the size of one node answer.
NODE_MAX_VALUES_PER_FACET = 10_000
DEFAULT_MAX_VALUES_PER_FACET = 100

UInt = Annotated[int, Meta(ge=0)]
# Meilisearch: `oneTypo`/`twoTypos` are u8.
U8 = Annotated[int, Meta(ge=0, le=255)]


class _Patch(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True, rename="camel"):
    """Base of every settings object: absent = UNSET, null = reset."""


class MinWordSizeForTypos(_Patch):
    one_typo: U8 | None | UnsetType = UNSET
    two_typos: U8 | None | UnsetType = UNSET


class TypoTolerance(_Patch):
    enabled: bool | None | UnsetType = UNSET
    min_word_size_for_typos: MinWordSizeForTypos | None | UnsetType = UNSET
    disable_on_words: list[str] | None | UnsetType = UNSET
    disable_on_attributes: list[str] | None | UnsetType = UNSET
    disable_on_numbers: bool | None | UnsetType = UNSET


class Faceting(_Patch):
    max_values_per_facet: UInt | None | UnsetType = UNSET
    sort_facet_values_by: dict[str, Literal["alpha", "count"]] | None | UnsetType = UNSET


class Pagination(_Patch):
    max_total_hits: UInt | None | UnsetType = UNSET


class LocalizedAttributes(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    attribute_patterns: list[str]
    locales: list[str]


class ForeignKey(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    foreign_index_uid: str
    field_name: str


class ChatSearchParameters(_Patch):
    hybrid: dict[str, Any] | None | UnsetType = UNSET
    limit: UInt | None | UnsetType = UNSET
    sort: list[str] | None | UnsetType = UNSET
    distinct: str | None | UnsetType = UNSET
    matching_strategy: Literal["last", "all", "frequency"] | None | UnsetType = UNSET
    attributes_to_search_on: list[str] | None | UnsetType = UNSET
    ranking_score_threshold: float | None | UnsetType = UNSET


class Chat(_Patch):
    description: str | None | UnsetType = UNSET
    document_template: str | None | UnsetType = UNSET
    document_template_max_bytes: UInt | None | UnsetType = UNSET
    search_parameters: ChatSearchParameters | None | UnsetType = UNSET


class Settings(_Patch):
    """Meilisearch's settings object (API 1.50), every field optional, in 1.50's order."""

    displayed_attributes: list[str] | None | UnsetType = UNSET
    searchable_attributes: list[str] | None | UnsetType = UNSET
    # Newer Meilisearch also accepts `{"attributePatterns": [...], "features": {...}}`.
    filterable_attributes: list[str | dict[str, Any]] | None | UnsetType = UNSET
    sortable_attributes: list[str] | None | UnsetType = UNSET
    foreign_keys: list[ForeignKey] | None | UnsetType = UNSET
    ranking_rules: list[str] | None | UnsetType = UNSET
    stop_words: list[str] | None | UnsetType = UNSET
    non_separator_tokens: list[str] | None | UnsetType = UNSET
    separator_tokens: list[str] | None | UnsetType = UNSET
    dictionary: list[str] | None | UnsetType = UNSET
    synonyms: dict[str, list[str]] | None | UnsetType = UNSET
    distinct_attribute: str | None | UnsetType = UNSET
    proximity_precision: Literal["byWord", "byAttribute"] | None | UnsetType = UNSET
    typo_tolerance: TypoTolerance | None | UnsetType = UNSET
    faceting: Faceting | None | UnsetType = UNSET
    pagination: Pagination | None | UnsetType = UNSET
    embedders: dict[str, Any] | None | UnsetType = UNSET
    search_cutoff_ms: UInt | None | UnsetType = UNSET
    localized_attributes: list[LocalizedAttributes] | None | UnsetType = UNSET
    facet_search: bool | None | UnsetType = UNSET
    prefix_search: Literal["indexingTime", "disabled"] | None | UnsetType = UNSET
    chat: Chat | None | UnsetType = UNSET


class _FilterFeatures(msgspec.Struct, forbid_unknown_fields=True):
    equality: bool = True
    comparison: bool = False


class _FilterableFeatures(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    facet_search: bool = False
    filter: _FilterFeatures | None = None


class _FilterablePatterns(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    attribute_patterns: list[str]
    features: _FilterableFeatures | None = None


class _FilterableCheck(msgspec.Struct, rename="camel"):
    """Validation only: the object form of a filterable attribute (kept a dict in
    Settings, so it is forwarded as the client wrote it)."""

    filterable_attributes: list[str | _FilterablePatterns]


# camelCase field -> (sub-route, update verb of the sub-route). Order = GET /settings order.
ROUTES: dict[str, tuple[str, str]] = {
    "displayedAttributes": ("displayed-attributes", "PUT"),
    "searchableAttributes": ("searchable-attributes", "PUT"),
    "filterableAttributes": ("filterable-attributes", "PUT"),
    "sortableAttributes": ("sortable-attributes", "PUT"),
    "foreignKeys": ("foreign-keys", "PUT"),
    "rankingRules": ("ranking-rules", "PUT"),
    "stopWords": ("stop-words", "PUT"),
    "nonSeparatorTokens": ("non-separator-tokens", "PUT"),
    "separatorTokens": ("separator-tokens", "PUT"),
    "dictionary": ("dictionary", "PUT"),
    "synonyms": ("synonyms", "PUT"),
    "distinctAttribute": ("distinct-attribute", "PUT"),
    "proximityPrecision": ("proximity-precision", "PUT"),
    "typoTolerance": ("typo-tolerance", "PATCH"),
    "faceting": ("faceting", "PATCH"),
    "pagination": ("pagination", "PATCH"),
    "embedders": ("embedders", "PATCH"),
    "searchCutoffMs": ("search-cutoff-ms", "PUT"),
    "localizedAttributes": ("localized-attributes", "PUT"),
    "facetSearch": ("facet-search", "PUT"),
    "prefixSearch": ("prefix-search", "PUT"),
    "chat": ("chat", "PATCH"),
}
FIELD_OF_ROUTE: dict[str, str] = {route: name for name, (route, _) in ROUTES.items()}
assert set(ROUTES) == {f.encode_name for f in msgspec.structs.fields(Settings)}

# Meilisearch >= 1.36: `attribute` split into `attributeRank` and `wordPosition`, with
# `sort` between them (milli/src/criterion.rs::default_criteria).
DEFAULT_RANKING_RULES = ["words", "typo", "proximity", "attributeRank", "sort", "wordPosition", "exactness"]
BUILTIN_RANKING_RULES = ("words", "typo", "proximity", "attribute", "attributeRank", "wordPosition", "sort", "exactness")
# Settings keys GET /settings shows only while an experimental feature is on, and that
# only that feature lets a client set: key -> (feature, feature's label, discussion).
GATED_KEYS = {
    "chat": ("chatCompletions", "chat completions", 835),
    "foreignKeys": ("foreignKeys", "foreign_keys", 873),
}
# Settings no node holds: Miroir keeps them as it keeps a gated key a node hides (what the
# client last set, `client_view`). A node given `foreignKeys` would join on its own shard
# of the foreign index (engine/foreign.py).
MIROIR_HELD = frozenset({"foreignKeys"})
assert GATED_KEYS.keys() >= MIROIR_HELD  # kept by the gated keys' road in client_view
DEFAULT_CHAT = {
    "description": "",
    "documentTemplate": embedders_mod.DEFAULT_DOCUMENT_TEMPLATE,
    "documentTemplateMaxBytes": embedders_mod.DEFAULT_DOCUMENT_TEMPLATE_MAX_BYTES,
    "searchParameters": {},
}

# Meilisearch's defaults: the client view of an index nobody configured.
DEFAULTS: dict[str, Any] = {
    "displayedAttributes": ["*"],
    "searchableAttributes": ["*"],
    "filterableAttributes": [],
    "sortableAttributes": [],
    "foreignKeys": [],
    "rankingRules": DEFAULT_RANKING_RULES,
    "stopWords": [],
    "nonSeparatorTokens": [],
    "separatorTokens": [],
    "dictionary": [],
    "synonyms": {},
    "distinctAttribute": None,
    "proximityPrecision": "byWord",
    "typoTolerance": {
        "enabled": True,
        "minWordSizeForTypos": {"oneTypo": 5, "twoTypos": 9},
        "disableOnWords": [],
        "disableOnAttributes": [],
        "disableOnNumbers": False,
    },
    "faceting": {"maxValuesPerFacet": DEFAULT_MAX_VALUES_PER_FACET, "sortFacetValuesBy": {"*": "alpha"}},
    "pagination": {"maxTotalHits": 1000},
    "embedders": {},
    "searchCutoffMs": None,
    "localizedAttributes": None,
    "facetSearch": True,
    "prefixSearch": "indexingTime",
    "chat": DEFAULT_CHAT,
}
assert list(DEFAULTS) == list(ROUTES)

_RANKING_RULES = frozenset(BUILTIN_RANKING_RULES)
# Lists whose order means nothing (Meilisearch stores them as sets).
_SET_LIKE = ("filterableAttributes", "sortableAttributes", "stopWords", "nonSeparatorTokens", "separatorTokens", "dictionary")


# --- decoding ----------------------------------------------------------------------------


def _snake(name: str) -> str:
    return re.sub(r"[A-Z]", lambda m: "_" + m.group(0).lower(), name)


def error_code(field: str) -> str:
    if field == "chat":
        return "invalid_settings_index_chat"  # 1.50's name for it
    return f"invalid_settings_{_snake(field)}"


_kind = json_kind


_EXPECTED = {
    "array": "an array",
    "str": "a string",
    "int": "a positive integer",
    "bool": "a boolean",
    "object": "an object",
    "null": "null",
    "float": "a number",
}
_PATH_PART = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|\[\.\.\.\]")


_UNKNOWN = object()


def _value_at(raw: Any, path: str) -> Any:
    cur = raw
    for m in _PATH_PART.finditer(path):
        key, idx = m.group(1), m.group(2)
        if key is None and idx is None:  # "[...]": some value of a map, msgspec does not say which
            return _UNKNOWN
        try:
            cur = cur[key] if key is not None else cur[int(idx)]
        except (KeyError, IndexError, TypeError, ValueError):
            return None
    return cur


def _text(value: Any) -> str:
    return msgspec.json.encode(value).decode()


def _translate(err: msgspec.ValidationError, raw: Any, sub_route: bool) -> MeiliError:
    """msgspec's error -> Meilisearch's code and wording for the field it is about."""
    text = str(err)
    msg, sep, loc = text.rpartition(" - at `")
    path = loc.rstrip("`")[1:] if sep else ""  # "$.rankingRules[0]" -> ".rankingRules[0]"
    if not sep:
        msg = text
    top = _PATH_PART.match(path)
    field = top.group(1) if top else None
    shown = path
    if sub_route and field:
        shown = path[len(field) + 1 :]  # a sub-route body *is* the field
    m = re.fullmatch(r"Object contains unknown field `(.*)`", msg)  # `{"": 1}` too
    if m:
        if field is None:
            listed = ", ".join(f"`{n}`" for n in ROUTES)
            return MeiliError("bad_request", f"Unknown field `{m.group(1)}`: expected one of {listed}")
        where = f" inside `{shown}`" if shown else ""
        listed = _known_fields(path)
        return MeiliError(error_code(field), f"Unknown field `{m.group(1)}`{where}: expected one of {listed}")
    assert field is not None, text
    m = re.fullmatch(r"Object missing required field `(.+)`", msg)
    if m:
        where = f" inside `{shown}`" if shown else ""
        return MeiliError(error_code(field), f"Missing field `{m.group(1)}`{where}")
    value = _value_at(raw, path)
    m = re.fullmatch(r"Invalid enum value (.+)", msg)
    if m:
        choices = _enum_choices(path)
        where = f" at `{shown}`" if shown else ""
        found = m.group(1).strip("'") if value is _UNKNOWN else value
        return MeiliError(error_code(field), f"Unknown value `{found}`{where}: expected one of {choices}")
    m = re.match(r"Expected `([^`]+)`", msg)
    wanted = m.group(1) if m else "valid value"
    expected = " or ".join(_EXPECTED.get(w.strip(), w.strip()) for w in wanted.split("|") if w.strip() != "null")
    if "<=" in msg or ">=" in msg:
        expected = "a positive integer"
    where = f" at `{shown}`" if shown else ""
    if value is _UNKNOWN:
        return MeiliError(error_code(field), f"Invalid value type{where}: expected {expected}")
    return MeiliError(error_code(field), type_text(shown, value, expected))


def _struct_at(path: str) -> type | None:
    """The Struct type a JSON path points into (for listing its fields)."""
    cur: Any = _FilterableCheck if path.startswith(".filterableAttributes") else Settings
    for m in _PATH_PART.finditer(path):
        key = m.group(1)
        if key is None:  # `[0]`: an item of the list _struct_in already stepped into
            continue
        if not (isinstance(cur, type) and issubclass(cur, msgspec.Struct)):
            return None
        f = next((f for f in msgspec.structs.fields(cur) if f.encode_name == key), None)
        if f is None:
            return None
        cur = _struct_in(f.type)
    return cur if isinstance(cur, type) and issubclass(cur, msgspec.Struct) else None


def _struct_in(tp: Any) -> Any:
    for arg in getattr(tp, "__args__", ()) or ():
        if isinstance(arg, type) and issubclass(arg, msgspec.Struct):
            return arg
        inner = _struct_in(arg)
        if inner is not None:
            return inner
    return tp if isinstance(tp, type) and issubclass(tp, msgspec.Struct) else None


def _known_fields(path: str) -> str:
    st = _struct_at(path)
    names = [f.encode_name for f in msgspec.structs.fields(st)] if st is not None else []
    return ", ".join(f"`{n}`" for n in names)


def _enum_choices(path: str) -> str:
    field = _PATH_PART.match(path).group(1)  # type: ignore[union-attr]
    choices = {
        "proximityPrecision": ("byWord", "byAttribute"),
        "prefixSearch": ("indexingTime", "disabled"),
        "faceting": ("alpha", "count"),
        "chat": ("last", "all", "frequency"),
    }.get(field, ())
    return ", ".join(f"`{c}`" for c in choices)


def _attribute_names(s: Settings) -> list[tuple[str, str]]:
    """(JSON path, attribute name or pattern) for every attribute the settings name."""
    out: list[tuple[str, str]] = []

    def listed(field: str, values: Any) -> None:
        if isinstance(values, list):
            out.extend((f".{field}[{i}]", v) for i, v in enumerate(values) if isinstance(v, str))

    listed("displayedAttributes", s.displayed_attributes)
    listed("searchableAttributes", s.searchable_attributes)
    listed("sortableAttributes", s.sortable_attributes)
    if isinstance(s.filterable_attributes, list):
        for i, rule in enumerate(s.filterable_attributes):
            if isinstance(rule, str):
                out.append((f".filterableAttributes[{i}]", rule))
            elif isinstance(rule.get("attributePatterns"), list):
                out.extend(
                    (f".filterableAttributes[{i}].attributePatterns[{j}]", p)
                    for j, p in enumerate(rule["attributePatterns"])
                    if isinstance(p, str)
                )
    if isinstance(s.ranking_rules, list):
        out.extend((f".rankingRules[{i}]", r.rpartition(":")[0]) for i, r in enumerate(s.ranking_rules) if ":" in r)
    if isinstance(s.distinct_attribute, str):
        out.append((".distinctAttribute", s.distinct_attribute))
    if isinstance(s.typo_tolerance, TypoTolerance):
        listed("typoTolerance.disableOnAttributes", s.typo_tolerance.disable_on_attributes)
    if isinstance(s.faceting, Faceting) and isinstance(s.faceting.sort_facet_values_by, dict):
        out.extend((".faceting.sortFacetValuesBy", k) for k in s.faceting.sort_facet_values_by)
    if isinstance(s.localized_attributes, list):
        for i, rule in enumerate(s.localized_attributes):
            listed(f"localizedAttributes[{i}].attributePatterns", rule.attribute_patterns)
    if isinstance(s.foreign_keys, list):
        out.extend((f".foreignKeys[{i}].fieldName", fk.field_name) for i, fk in enumerate(s.foreign_keys))
    if isinstance(s.chat, Chat) and isinstance(s.chat.search_parameters, ChatSearchParameters):
        sp = s.chat.search_parameters
        listed("chat.searchParameters.attributesToSearchOn", sp.attributes_to_search_on)
        if isinstance(sp.distinct, str):
            out.append((".chat.searchParameters.distinct", sp.distinct))
        if isinstance(sp.sort, list):
            out.extend((f".chat.searchParameters.sort[{i}]", r.rpartition(":")[0] or r) for i, r in enumerate(sp.sort))
    return out


def _check_reserved(s: Settings, sub_route: bool) -> None:
    """No setting may name Miroir's hidden `_miroir_*` fields (issue 20 point 8):
    `_miroir_shard` as distinct attribute collapses every search to one hit per shard,
    as a ranking rule or searchable attribute it changes every ranking."""
    for path, name in _attribute_names(s):
        if name.startswith(RESERVED_PREFIX):
            at = re.sub(r"^\.[A-Za-z]+", "", path) if sub_route else path
            where = f" at `{at}`" if at else ""
            raise MeiliError(
                "miroir_reserved_field",
                f"Invalid value{where}: attribute `{name}` is reserved by Miroir (attributes starting with "
                f"`{RESERVED_PREFIX}` cannot be used in settings).",
            )


def _check_filterable(s: Settings, raw: dict, sub_route: bool) -> None:
    value = s.filterable_attributes
    if isinstance(value, list) and any(isinstance(a, dict) for a in value):
        try:
            msgspec.convert({"filterableAttributes": value}, _FilterableCheck)
        except msgspec.ValidationError as e:
            raise _translate(e, raw, sub_route) from None


_MIXED_RULES = (
    "Mixed usage of the attribute, attributeRank, and wordPosition ranking rules. You must either use the "
    "attribute ranking rule alone or the attributeRank and wordPosition ranking rules."
)
# deserr's texts for a zero `maxTotalHits` and for `oneTypo` above `twoTypos` (Miroir's
# settings checks and the devnode's word them alike).
NON_ZERO = "a non-zero integer value lower than `18446744073709551615` was expected, but found a zero"


def min_word_sizes_error(one: int, two: int) -> str:
    return (
        "`minWordSizeForTypos` setting is invalid. `oneTypo` and `twoTypos` fields should be between `0` and "
        "`255`, and `twoTypos` should be greater or equals to `oneTypo` but found "
        f"`oneTypo: {one}` and twoTypos: {two}`."
    )


# milli's AscDesc parser: geo names are refused as ranking rules, each with its reason.
_GEO_FOR_SORT = ("_geoPoint",)
_GEO_FOR_FILTER = ("_geoRadius", "_geoBoundingBox")
_GEO_RESERVED = ("_geo", "_geoDistance")


def ranking_rule_error(rule: str) -> str | None:
    """milli's `CriterionError` text for a ranking rule, None when the rule is valid."""
    if rule in _RANKING_RULES:
        return None
    name, _, order = rule.rpartition(":")
    if not name or order not in ("asc", "desc"):
        return (
            f"`{rule}` ranking rule is invalid. Valid ranking rules are words, typo, sort, proximity, attribute, "
            "exactness and custom ranking rules."
        )
    base = name.partition("(")[0]
    if base in _GEO_FOR_SORT:
        return (
            f"`{base}` is a reserved keyword and thus can't be used as a ranking rule. `{base}` can only be used "
            "for sorting at search time"
        )
    if base in _GEO_FOR_FILTER:
        return (
            f"`{base}` is a reserved keyword and thus can't be used as a ranking rule. `{base}` can only be used "
            "for filtering at search time"
        )
    if name in _GEO_RESERVED:
        return f"`{name}` is a reserved keyword and thus can't be used as a ranking rule"
    return None


def attribute_rules_mixed(rules: list[str]) -> bool:
    """1.50 refuses `attribute` together with `attributeRank` or `wordPosition`."""
    return "attribute" in rules and ("attributeRank" in rules or "wordPosition" in rules)


def _check_decoded(s: Settings, sub_route: bool) -> None:
    """What deserr checks while decoding and types cannot say: ranking rule names,
    non-zero maxTotalHits, the typo word sizes, embedder fields."""
    def at(path: str) -> str:
        shown = re.sub(r"^\.[A-Za-z]+", "", path) if sub_route else path
        return f" at `{shown}`" if shown else ""

    if isinstance(s.ranking_rules, list):
        for i, rule in enumerate(s.ranking_rules):
            text = ranking_rule_error(rule)
            if text is not None:
                raise MeiliError("invalid_settings_ranking_rules", f"Invalid value{at(f'.rankingRules[{i}]')}: {text}")
    if isinstance(s.typo_tolerance, TypoTolerance) and isinstance(s.typo_tolerance.min_word_size_for_typos, MinWordSizeForTypos):
        mw = s.typo_tolerance.min_word_size_for_typos
        one, two = mw.one_typo, mw.two_typos
        if isinstance(one, int) and isinstance(two, int) and one > two:
            raise MeiliError(
                "invalid_settings_typo_tolerance",
                f"Invalid value{at('.typoTolerance.minWordSizeForTypos')}: {min_word_sizes_error(one, two)}",
            )
    if isinstance(s.pagination, Pagination) and s.pagination.max_total_hits == 0:
        raise MeiliError(
            "invalid_settings_pagination",
            f"Invalid value{at('.pagination.maxTotalHits')}: {NON_ZERO}",
        )
    if s.embedders is not UNSET:
        embedders_mod.check_types(s.embedders, "" if sub_route else ".embedders")
    if isinstance(s.localized_attributes, list):
        for i, rule in enumerate(s.localized_attributes):
            path = at(f".localizedAttributes[{i}].locales").removeprefix(" at `").removesuffix("`")
            locales_mod.check_body(rule.locales, path, "invalid_settings_localized_attributes")
    _check_reserved(s, sub_route)


def check_update(s: Settings, features: frozenset[str] | set[str] = frozenset()) -> None:
    """1.50's `validate_settings` (route) then `Settings::validate`: feature gates,
    the ranking-rule mix, the embedders' fields per source. Synchronous 400s."""
    embedders_mod.check_gates(s.embedders, features)
    for key, name in (("chat", "chat"), ("foreignKeys", "foreign_keys")):
        value = getattr(s, name)
        feature, label, discussion = GATED_KEYS[key]
        if value is not UNSET and value is not None and feature not in features:
            raise embedders_mod.feature_not_enabled(f"setting `{key}` in the index settings", label, discussion)
    if isinstance(s.ranking_rules, list) and attribute_rules_mixed(s.ranking_rules):
        raise MeiliError("invalid_settings_ranking_rules", _MIXED_RULES)
    if isinstance(s.embedders, dict):
        embedders_mod.validate(s.embedders)


def decode_settings(raw: Any, features: frozenset[str] | set[str] = frozenset()) -> Settings:
    """Body of `PATCH /indexes/{uid}/settings` (already JSON-decoded) -> Settings,
    validated as 1.50 does with `features` (the experimental features enabled)."""
    if not isinstance(raw, dict):
        raise body_type_error(raw)
    try:
        s = msgspec.convert(raw, Settings)
    except msgspec.ValidationError as e:
        raise _translate(e, raw, sub_route=False) from None
    _check_filterable(s, raw, sub_route=False)
    _check_decoded(s, sub_route=False)
    check_update(s, features)
    return s


def decode_sub_route(route: str, raw: Any, features: frozenset[str] | set[str] = frozenset()) -> Settings:
    """Body of `PUT|PATCH /indexes/{uid}/settings/<route>` -> a one-field Settings."""
    field = FIELD_OF_ROUTE[route]
    wrapped = {field: raw}
    try:
        s = msgspec.convert(wrapped, Settings)
    except msgspec.ValidationError as e:
        raise _translate(e, wrapped, sub_route=True) from None
    _check_filterable(s, wrapped, sub_route=True)
    _check_decoded(s, sub_route=True)
    check_update(s, features)
    return s


def reset_all() -> Settings:
    """What `DELETE /settings` stands for: every field reset."""
    return Settings(**{f.name: None for f in msgspec.structs.fields(Settings)})


def reset_field(route: str) -> Settings:
    field = FIELD_OF_ROUTE[route]
    name = next(f.name for f in msgspec.structs.fields(Settings) if f.encode_name == field)
    return Settings(**{name: None})


def to_patch(s: Settings) -> dict[str, Any]:
    """Settings -> the JSON patch (camelCase, absent fields dropped, null = reset)."""
    return msgspec.to_builtins(s)


def task_details(patch: dict[str, Any]) -> dict[str, Any]:
    """A settings task's details: the patch with embedder secrets masked, as 1.50 shows."""
    if isinstance(patch.get("embedders"), dict):
        return {**patch, "embedders": embedders_mod.masked(patch["embedders"])}
    return patch


# --- client view <-> node view -----------------------------------------------------------


def _with_shard_field(filterable: list) -> list:
    if any(a == SHARD_FIELD for a in filterable):
        return list(filterable)
    return [*filterable, SHARD_FIELD]


def node_patch(patch: dict[str, Any]) -> dict[str, Any]:
    """The patch every node receives for a client patch (see module doc)."""
    out = copy.deepcopy({k: v for k, v in patch.items() if k not in MIROIR_HELD})
    if "filterableAttributes" in out:
        out["filterableAttributes"] = _with_shard_field(out["filterableAttributes"] or [])
    displayed = out.get("displayedAttributes")
    if isinstance(displayed, list) and "*" not in displayed:
        # The merge orders ties by the insertion sequence read from the hits (core/reserved.py).
        out["displayedAttributes"] = [*displayed, *SEQ_FIELDS]
    if "faceting" in out:
        faceting = out["faceting"]
        if faceting is None:
            # Reset the client-visible part only; nodes keep returning every value.
            out["faceting"] = {"maxValuesPerFacet": NODE_MAX_VALUES_PER_FACET, "sortFacetValuesBy": None}
        elif "maxValuesPerFacet" in faceting:
            faceting["maxValuesPerFacet"] = NODE_MAX_VALUES_PER_FACET
    return out


def creation_patch() -> dict[str, Any]:
    """The settings a new index gets on every node, before any client setting."""
    return {"filterableAttributes": [SHARD_FIELD], "faceting": {"maxValuesPerFacet": NODE_MAX_VALUES_PER_FACET}}


def client_max_values(previous: int, patch: dict[str, Any]) -> int:
    """The client's `maxValuesPerFacet` after `patch` (nodes never hold it)."""
    if "faceting" not in patch:
        return previous
    faceting = patch["faceting"]
    if faceting is None:
        return DEFAULT_MAX_VALUES_PER_FACET
    if "maxValuesPerFacet" not in faceting:
        return previous
    value = faceting["maxValuesPerFacet"]
    return DEFAULT_MAX_VALUES_PER_FACET if value is None else value


def hide_shard_field(filterable: Any) -> Any:
    """`filterableAttributes` without Miroir's shard field (a pattern list left empty: dropped)."""
    if not isinstance(filterable, list):
        return filterable
    out = []
    for a in filterable:
        if a == SHARD_FIELD:
            continue
        if isinstance(a, dict) and isinstance(a.get("attributePatterns"), list):
            patterns = [p for p in a["attributePatterns"] if p != SHARD_FIELD]
            if not patterns:
                continue
            a = {**a, "attributePatterns": patterns}
        out.append(a)
    return out


def client_view(
    node_settings: dict[str, Any],
    max_values_per_facet: int,
    previous: dict[str, Any] | None = None,
    patch: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A node's full settings -> what the client sees (defaults for missing fields).

    Only 1.50's keys are kept: a key a newer engine adds would make `GET /settings`
    unacceptable to `PATCH /settings`. A node hides the feature-gated keys (`chat`,
    `foreignKeys`) while its feature is off: for those, what the client last set
    (`previous`, then `patch`) is kept."""
    out: dict[str, Any] = {}
    for name, default in DEFAULTS.items():
        if name in node_settings and name not in MIROIR_HELD:
            value = node_settings[name]
        elif name in GATED_KEYS and patch is not None and name in patch:
            value = default if patch[name] is None else patch[name]
        elif name in GATED_KEYS and previous is not None and name in previous:
            value = previous[name]
        else:
            value = default
        out[name] = copy.deepcopy(value)
    if isinstance(out.get("typoTolerance"), dict):  # an engine older than disableOnNumbers
        out["typoTolerance"] = {**DEFAULTS["typoTolerance"], **out["typoTolerance"]}
    out["filterableAttributes"] = hide_shard_field(out["filterableAttributes"])
    if isinstance(out.get("displayedAttributes"), list):
        out["displayedAttributes"] = [a for a in out["displayedAttributes"] if a not in SEQ_FIELDS]
    faceting = out.get("faceting")
    faceting = dict(faceting) if isinstance(faceting, dict) else dict(DEFAULTS["faceting"])
    faceting["maxValuesPerFacet"] = max_values_per_facet
    out["faceting"] = with_default_facet_order(faceting)
    return out


def with_default_facet_order(faceting: dict[str, Any]) -> dict[str, Any]:
    """1.50 keeps `sortFacetValuesBy` as a map sorted by pattern where `*` is always
    present (`alpha` unless set): a client's `{"genre": "count"}` reads back with it.
    Miroir's client view and the devnode's stored settings both show it so."""
    order = faceting.get("sortFacetValuesBy")
    if isinstance(order, dict):
        faceting = {**faceting, "sortFacetValuesBy": dict(sorted({"*": "alpha", **order}.items()))}
    return faceting


def default_client_view() -> dict[str, Any]:
    return copy.deepcopy(DEFAULTS)


def visible(settings: dict[str, Any], features: frozenset[str] | set[str] = frozenset()) -> dict[str, Any]:
    """The answer of `GET /settings` for a stored client view: 1.50's keys in 1.50's
    order (defaults for keys a view journaled before them lacks), the feature-gated
    keys only while their feature is on. Embedder secrets are already masked: the view
    is read back from the nodes, which mask them as 1.50 does."""
    out: dict[str, Any] = {}
    for name, default in DEFAULTS.items():
        if name in GATED_KEYS and GATED_KEYS[name][0] not in features:
            continue
        out[name] = settings.get(name, default)
    if isinstance(out.get("typoTolerance"), dict) and "disableOnNumbers" not in out["typoTolerance"]:
        out["typoTolerance"] = {**DEFAULTS["typoTolerance"], **out["typoTolerance"]}
    return out


def visible_field(settings: dict[str, Any], field: str) -> Any:
    """The answer of `GET /settings/<route>` (always answered, gated keys included)."""
    value = settings.get(field, DEFAULTS[field])
    if field == "typoTolerance" and isinstance(value, dict):
        return {**DEFAULTS["typoTolerance"], **value}
    return value


def _canonical(value: Any, name: str | None = None) -> Any:
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        items = [_canonical(v) for v in value]
        if name in _SET_LIKE:
            items.sort(key=lambda v: msgspec.json.encode(v, order="sorted"))
        return items
    return value


def settings_hash(node_settings: dict[str, Any]) -> str:
    """A hash equal on two nodes iff they hold the same settings (set-like lists unordered)."""
    canon = {k: _canonical(v, k) for k, v in node_settings.items()}
    return xxhash.xxh64_hexdigest(msgspec.json.encode(canon, order="sorted"))
