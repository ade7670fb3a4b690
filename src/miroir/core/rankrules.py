"""Whether the queries of a federated search can be merged (1.50's ranking rules check).

Before it merges, 1.50 puts each query's ranking rules in canonical form (what the
rules become for that query: a placeholder search drops the relevancy rules, `sort`
expands to the query's sort criteria, a keyword search gets `words` first, duplicates
go), folds consecutive relevancy rules into one, and refuses two queries whose rules
differ in kind at the same place (a relevancy rule against a sort rule, ascending
against descending...) with `invalid_multi_search_query_ranking_rules`, naming both
rules and the canonicalization that led there. Queries are checked index by index (in
index uid order), each against the most constrained query seen so far.

Pure module: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from miroir.core.errors import MeiliError

RELEVANCY = ("words", "typo", "proximity", "attribute", "attributeRank", "wordPosition", "exactness")
PLACEHOLDER, KEYWORD, VECTOR = "placeholder", "keyword", "vector"

# A rule's source: ("criterion", i) | ("coalesced", begin, end) | ("sort", criterion_index, sort_index)
Source = tuple[Any, ...]


@dataclass
class RankingRules:
    source_criteria: list[str]
    source_sort: list[str] | None
    criteria: list[str] = field(default_factory=list)  # canonical
    sort: list[str] | None = None  # canonical
    notes: list[tuple[Any, ...]] = field(default_factory=list)  # canonicalization actions, in order


def _field_of(rule: str) -> tuple[str, str] | None:
    """`price:asc` -> ("price", "asc"); None for a built-in rule."""
    if rule in RELEVANCY or rule == "sort":
        return None
    name, _, direction = rule.rpartition(":")
    return (name, direction) if name and direction in ("asc", "desc") else None


def _is_geo(name: str) -> bool:
    return name.startswith("_geoPoint(") or name.startswith("_geo(")


def canonicalize(criteria: Sequence[str], sort: Sequence[str] | None, kind: str, *, all_words: bool = False) -> RankingRules:
    """One query's rules in canonical form (`kind`: placeholder, keyword or vector search;
    `all_words`: `matchingStrategy` is `all`)."""
    rr = RankingRules(list(criteria), list(sort) if sort is not None else None)
    sorted_fields: dict[str, Source] = {}
    seen: dict[str, int] = {}  # relevancy rule -> where it was kept
    sort_at: int | None = None
    words: int | None = None  # where `words` is (-1: prepended)
    vector_at: int | None = None
    for i, rule in enumerate(criteria):
        if rule in RELEVANCY:
            if kind == PLACEHOLDER:
                rr.notes.append(("removedPlaceholder", ("criterion", i)))
            elif kind == VECTOR:
                if vector_at is None:
                    rr.criteria.append(rule)
                    vector_at = i
                elif not sorted_fields:
                    rr.notes.append(("removedVector", ("criterion", vector_at), ("criterion", i)))
                else:
                    rr.notes.append(("truncatedVector", ("criterion", vector_at), ("criterion", i)))
                    break
            elif rule == "words":
                if all_words:
                    rr.notes.append(("removedWordsAll", ("criterion", i)))
                    continue
                if words is not None:
                    if words >= 0:
                        rr.notes.append(("removedDuplicate", ("criterion", words), ("criterion", i)))
                        continue
                    rr.notes.append(("removedWordsPrepended", ("criterion", i)))
                words = i
                rr.criteria.append(rule)
            else:
                if not all_words and words is None:
                    rr.notes.append(("prependedWords", ("criterion", i)))
                    rr.criteria.append("words")
                    words = -1
                if rule in seen:
                    rr.notes.append(("removedDuplicate", ("criterion", seen[rule]), ("criterion", i)))
                else:
                    seen[rule] = i
                    rr.criteria.append(rule)
            continue
        if rule == "sort":
            if sort_at is not None:
                rr.notes.append(("removedDuplicate", ("criterion", sort_at), ("criterion", i)))
            elif sort is not None:
                sort_at = i
                rr.criteria.append(rule)
                rr.sort = _canonical_sort(sorted_fields, sort, i, rr.notes)
            else:
                rr.notes.append(("removedSort", ("criterion", i)))
            continue
        parsed = _field_of(rule)
        if parsed is None:
            continue
        if parsed[0] in sorted_fields:
            rr.notes.append(("removedDuplicate", sorted_fields[parsed[0]], ("criterion", i)))
        else:
            sorted_fields[parsed[0]] = ("criterion", i)
            rr.criteria.append(rule)
    return rr


def _canonical_sort(sorted_fields: dict[str, Source], sort: Sequence[str], at: int, notes: list[tuple[Any, ...]]) -> list[str]:
    out: list[str] = []
    geo: int | None = None
    for j, s in enumerate(sort):
        name = s.rpartition(":")[0]
        source = ("sort", at, j)
        if _is_geo(name):
            if geo is not None:
                notes.append(("removedDuplicate", ("sort", at, geo), source))
            else:
                geo = j
                out.append(s)
        elif name in sorted_fields:
            notes.append(("removedDuplicate", sorted_fields[name], source))
        else:
            sorted_fields[name] = source
            out.append(s)
    return out


def _kind_of(rule: str) -> str:
    if rule in RELEVANCY:
        return "relevancy"
    name, _, direction = rule.rpartition(":")
    geo = name == "_geo" or _is_geo(name)
    return ("ascending" if direction == "asc" else "descending") + (" geo sort" if geo else " sort")


def coalesced(rr: RankingRules) -> list[tuple[Source, str]]:
    """(source, kind) of the canonical rules, consecutive relevancy rules folded."""
    out: list[tuple[Source, str]] = []
    for i, rule in enumerate(rr.criteria):
        if rule == "sort":
            out.extend((("sort", i, j), _kind_of(s)) for j, s in enumerate(rr.sort or ()))
            continue
        kind = _kind_of(rule)
        if out and kind == "relevancy" and out[-1][1] == "relevancy":
            prev = out[-1][0]
            begin = prev[1]
            out[-1] = (("coalesced", begin, i) if prev[0] in ("criterion", "coalesced") else ("criterion", i), kind)
        else:
            out.append((("criterion", i), kind))
    return out


_REASONS = {
    frozenset({"relevancy", "ascending sort"}): "cannot compare a relevancy rule with a sort rule",
    frozenset({"relevancy", "descending sort"}): "cannot compare a relevancy rule with a sort rule",
    frozenset({"relevancy", "ascending geo sort"}): "cannot compare a relevancy rule with a geosort rule",
    frozenset({"relevancy", "descending geo sort"}): "cannot compare a relevancy rule with a geosort rule",
    frozenset({"ascending sort", "descending sort"}): "cannot compare two sort rules in opposite directions",
    frozenset({"ascending geo sort", "descending geo sort"}): "cannot compare two geosort rules in opposite directions",
}


def _reason(a: str, b: str) -> str:
    return _REASONS.get(frozenset({a, b}), "cannot compare a sort rule with a geosort rule")


def _rule_text(rr: RankingRules, source: Source, kind: str, query: int, uid: str) -> str:
    if source[0] == "criterion":
        where = f"`queries[{query}]`, `{uid}.rankingRules[{source[1]}]`"
        name = rr.criteria[source[1]] if source[1] < len(rr.criteria) else None
    elif source[0] == "coalesced":
        where = f"`queries[{query}]`, `{uid}.rankingRules[{source[1]}..={source[2]}]`"
        name = ", ".join(rr.criteria[source[1] : source[2] + 1]) or None
    else:
        where = f"`queries[{query}].sort[{source[2]}]`, `{uid}.rankingRules[{source[1]}]`"
        s = (rr.sort or [])[source[2]] if source[2] < len(rr.sort or []) else None
        field_name = s.rpartition(":")[0] if s else ""
        name = f"on field `{field_name}`" if s and not _is_geo(field_name) else None
    return f"{where}: {kind} rule(s) {name or 'default'}"


def _source_name(rr: RankingRules, source: Source) -> str:
    if source[0] == "criterion":
        return rr.source_criteria[source[1]] if source[1] < len(rr.source_criteria) else "unknown"
    s = (rr.source_sort or [])[source[2]] if source[2] < len(rr.source_sort or []) else None
    if s is None:
        return "unknown"
    name, _, direction = s.rpartition(":")
    return f"_geo(..):{direction}" if _is_geo(name) else s


def _position(source: Source) -> str:
    if source[0] == "criterion":
        return f"#{source[1]} in ranking rules"
    return f"#{source[2]} in `query.sort` (as `sort` is #{source[1]} in ranking rules)"


def _notes(rr: RankingRules) -> str:
    lines = []
    for n, note in enumerate(rr.notes, 1):
        what = note[0]
        if what == "prependedWords":
            line = f"    {n}. Prepended rule `words` before first relevancy rule `{_source_name(rr, note[1])}` at position {_position(note[1])}"
        elif what == "removedDuplicate":
            line = (f"    {n}. Removed duplicate rule `{_source_name(rr, note[1])}` at position {_position(note[2])} "
                    f"as it already appears at position {_position(note[1])}")
        elif what == "removedWordsAll":
            line = f"    {n}. Removed rule `words` at position {_position(note[1])} because `query.matchingWords` is set to `all`"
        elif what == "removedWordsPrepended":
            line = f"    {n}. Removed rule `words` at position {_position(note[1])} because it was previously prepended"
        elif what == "removedPlaceholder":
            line = (f"    {n}. Removed relevancy rule `{_source_name(rr, note[1])}` at position {_position(note[1])} "
                    'because the query is a placeholder search (`q`: "")')
        elif what == "truncatedVector":
            line = (f"    {n}. Truncated relevancy rule `{_source_name(rr, note[2])}` at position {_position(note[2])} and "
                    f"later rules because the query is a vector search and `vector` was inserted at position {_position(note[1])}")
        elif what == "removedVector":
            line = (f"    {n}. Removed relevancy rule `{_source_name(rr, note[2])}` at position {_position(note[2])} because "
                    f"the query is a vector search and `vector` was already inserted at position {_position(note[1])}")
        else:  # removedSort (1.50 indents this one by three spaces)
            line = f"   {n}. Removed rule `sort` at position {_position(note[1])} because `query.sort` is empty"
        lines.append(line + "\n")
    return "".join(lines)


@dataclass
class QueryRules:
    position: int  # in the request
    index_uid: str
    rules: RankingRules


def check_compatible(queries: Sequence[QueryRules]) -> None:
    """1.50's refusal of queries whose rules cannot be compared (see the module
    docstring): `queries` in request order; raises the `Inside .queries[i]` error."""
    order = sorted(queries, key=lambda q: (q.index_uid, q.position))
    previous: QueryRules | None = None
    for q in order:
        if previous is not None:
            current_rules, previous_rules = coalesced(q.rules), coalesced(previous.rules)
            for (cur_src, cur_kind), (prev_src, prev_kind) in zip(current_rules, previous_rules):
                if cur_kind != prev_kind:
                    raise _incompatible(previous, prev_src, prev_kind, q, cur_src, cur_kind)
            if len(previous_rules) > len(current_rules):
                continue
        previous = q


def _incompatible(prev: QueryRules, prev_src: Source, prev_kind: str, cur: QueryRules, cur_src: Source, cur_kind: str) -> MeiliError:
    msg = (
        f"The results of queries #{prev.position} and #{cur.position} are incompatible: \n"
        f"  1. {_rule_text(prev.rules, prev_src, prev_kind, prev.position, prev.index_uid)}\n"
        f"  2. {_rule_text(cur.rules, cur_src, cur_kind, cur.position, cur.index_uid)}\n"
        f"  - {_reason(prev_kind, cur_kind)}\n"
    )
    if prev.rules.notes:
        msg += f"  - note: The ranking rules of query #{prev.position} were modified during canonicalization:\n{_notes(prev.rules)}"
    if cur.rules.notes:
        msg += f"  - note: The ranking rules of query #{cur.position} were modified during canonicalization:\n{_notes(cur.rules)}"
    return MeiliError("invalid_multi_search_query_ranking_rules", f"Inside `.queries[{cur.position}]`: {msg}")


def query_kind(params: dict[str, Any]) -> str:
    """Placeholder, keyword or vector search, as 1.50 canonicalizes a query's rules."""
    hybrid = params.get("hybrid")
    if isinstance(hybrid, dict) and hybrid.get("semanticRatio") == 1.0:
        return VECTOR
    q = params.get("q")
    return KEYWORD if isinstance(q, str) and q.strip() else PLACEHOLDER


def query_rules(position: int, index_uid: str, params: dict[str, Any], criteria: Sequence[str]) -> QueryRules:
    """One federated query's canonical rules, from its parameters and its index's
    `rankingRules`."""
    sort = params.get("sort")
    rules = canonicalize(
        criteria,
        list(sort) if isinstance(sort, list) else None,
        query_kind(params),
        all_words=params.get("matchingStrategy") == "all",
    )
    return QueryRules(position, index_uid, rules)
