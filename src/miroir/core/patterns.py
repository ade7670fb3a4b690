"""Attribute patterns: does a setting's pattern cover an attribute (Meilisearch 1.50's rules).

The one matcher Miroir's planner and reads, the filter checks and the devnode use, so
that they cannot disagree about an attribute. Meilisearch 1.50 has two kinds of rule
(crates/milli/src/attribute_patterns.rs, filterable_attributes_rules.rs):

- a *pattern* (`{"attributePatterns": [...]}` rules, facet requests, localized
  attributes): `*` matches everything, `prefix*`, `*suffix` and `*infix*` match by
  prefix, suffix and substring, anything else only the exact name; a `*` elsewhere is a
  literal character;
- a *legacy field* (a plain string in `filterableAttributes`, `sortableAttributes`): the
  name itself or any attribute nested in it (`doggos` covers `doggos.age`), no
  wildcards at all.

Both also answer `PARENT` for an attribute that is an object holding a covered one
(`doggos` for the pattern `doggos.age`): Meilisearch keeps such objects so that it can
reach the nested fields. Pure module: no I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from typing import Any


class PatternMatch(enum.Enum):
    NO_MATCH = 0
    PARENT = 1  # the attribute is an object holding a matching nested field
    MATCH = 2


NO_MATCH = PatternMatch.NO_MATCH
PARENT = PatternMatch.PARENT
MATCH = PatternMatch.MATCH


def is_nested_in(name: str, parent: str) -> bool:
    """`name` is `parent` itself or a field nested in it (`a.b` in `a`, not `ab` in `a`)."""
    return name.startswith(parent) and (len(name) == len(parent) or name[len(parent)] == ".")


def match_pattern(pattern: str, name: str) -> PatternMatch:
    """A wildcard pattern against an attribute name."""
    if pattern == "*":
        return MATCH
    starts, ends = pattern.startswith("*"), pattern.endswith("*")
    if starts and ends:
        if pattern[1:-1] in name:
            return MATCH
    elif starts:
        if name.endswith(pattern[1:]):
            return MATCH
    elif ends:
        if name.startswith(pattern[:-1]):
            return MATCH
    elif pattern == name:
        return MATCH
    return PARENT if is_nested_in(pattern, name) else NO_MATCH


def match_field_legacy(field: str, name: str) -> PatternMatch:
    """A plain field of a legacy rule against an attribute name: no wildcards."""
    if is_nested_in(name, field):
        return MATCH
    return PARENT if is_nested_in(field, name) else NO_MATCH


def covers(pattern: str, name: str) -> bool:
    """`name` is matched by `pattern` or nested in a field it names: the devnode's rule
    for displayed, retrieved, searchable and typo-disabled attributes (both readings).

    `match_pattern(pattern, name) is MATCH or is_nested_in(name, pattern)`, inlined: the
    devnode asks it for every attribute of every hit it returns."""
    if pattern == name or pattern == "*":
        return True
    n = len(pattern)
    if len(name) > n and name[n] == "." and name.startswith(pattern):
        return True
    if pattern.startswith("*"):
        return pattern[1:-1] in name if pattern.endswith("*") else name.endswith(pattern[1:])
    return pattern.endswith("*") and name.startswith(pattern[:-1])


def covers_any(patterns: Iterable[str], name: str) -> bool:
    for p in patterns:
        if covers(p, name):
            return True
    return False


def selects(selector: str, name: str) -> bool:
    """An `attributesToHighlight`/`attributesToCrop` selector (Meilisearch's permissive
    JSON pointer): `*`, the name itself, or an object holding it. No other wildcard."""
    return selector == "*" or is_nested_in(name, selector)


def legacy_match_any(fields: Iterable[str], name: str) -> bool:
    """`sortableAttributes` and the like: exact names and what is nested in them."""
    return any(is_nested_in(name, f) for f in fields)


# ------------------------------------------------------------ filterableAttributes rules

Rule = str | Mapping[str, Any]


def rule_match(rule: Rule, name: str) -> PatternMatch:
    """One `filterableAttributes` rule against an attribute name."""
    if isinstance(rule, str):
        return match_field_legacy(rule, name)
    best = NO_MATCH
    for pattern in _rule_patterns(rule):
        found = match_pattern(pattern, name)
        if found is MATCH:
            return MATCH
        if found is PARENT:
            best = PARENT
    return best


def _rule_patterns(rule: Mapping[str, Any]) -> list[str]:
    return [p for p in rule.get("attributePatterns") or () if isinstance(p, str)]


def _features(rule: Rule) -> tuple[bool, bool]:
    """(filterable, facet-searchable) for a rule: a plain field allows everything; a
    pattern rule defaults to equality filtering without facet search."""
    if isinstance(rule, str):
        return True, True
    features = rule.get("features") or {}
    filt = features.get("filter") or {}
    filterable = bool(filt.get("equality", True)) or bool(filt.get("comparison", False))
    return filterable, bool(features.get("facetSearch", False))


def matching_rule(rules: Iterable[Rule] | None, name: str) -> Rule | None:
    """The first rule that matches `name`: it alone decides (a rule disabling filtering
    listed before a broader one wins)."""
    for rule in rules or ():
        if isinstance(rule, str | Mapping) and rule_match(rule, name) is MATCH:
            return rule
    return None


def filter_features(rules: Iterable[Rule] | None, name: str) -> tuple[int, bool, bool] | None:
    """(index of the first rule matching `name`, equality allowed, comparison allowed), or
    None. A plain field allows both; a pattern rule defaults to equality only."""
    for i, rule in enumerate(rules or ()):
        if isinstance(rule, str | Mapping) and rule_match(rule, name) is MATCH:
            if isinstance(rule, str):
                return i, True, True
            filt = (rule.get("features") or {}).get("filter") or {}
            return i, bool(filt.get("equality", True)), bool(filt.get("comparison", False))
    return None


def is_filterable(rules: Iterable[Rule] | None, name: str) -> bool:
    rule = matching_rule(rules, name)
    return rule is not None and _features(rule)[0]


def is_facet_searchable(rules: Iterable[Rule] | None, name: str) -> bool:
    rule = matching_rule(rules, name)
    return rule is not None and _features(rule)[1]


def intersects(rule: Rule, pattern: str) -> bool:
    """A requested facet pattern and a rule cover some attribute in common (either one
    matching the other, or one holding the other's fields)."""
    if isinstance(rule, str):
        return match_field_legacy(pattern, rule) is not NO_MATCH or match_pattern(pattern, rule) is not NO_MATCH
    return any(
        match_pattern(pattern, p) is not NO_MATCH or match_pattern(p, pattern) is not NO_MATCH
        for p in _rule_patterns(rule)
    )


def facet_allowed(rules: Iterable[Rule] | None, pattern: str) -> bool:
    """May a search's `facets` name `pattern`? The first filterable rule it intersects
    allows it; a rule that matches it but forbids filtering refuses it."""
    for rule in rules or ():
        if not isinstance(rule, str | Mapping):
            continue
        if _features(rule)[0]:
            if intersects(rule, pattern):
                return True
        elif rule_match(rule, pattern) is MATCH:
            return False
    return False


def filterable_patterns(rules: Iterable[Any] | None, *, feature: str | None = None) -> list[str]:
    """The patterns of the rules enabling `feature` (`facetSearch`; by default filtering:
    equality or comparison), in order, as milli's error messages list them."""
    out: list[str] = []
    for rule in rules or ():
        if isinstance(rule, str):
            out.append(rule)
        elif isinstance(rule, Mapping):
            filterable, facet_searchable = _features(rule)
            if not (facet_searchable if feature == "facetSearch" else filterable):
                continue
            out.extend(_rule_patterns(rule))
    return out
