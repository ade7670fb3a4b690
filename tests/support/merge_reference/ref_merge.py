# Frozen copy of src/miroir/core/merge.py before the issue-8 speed work: the reference
# that tests/oracle/test_merge_speed_equivalence.py compares the optimized module against.
"""Merging the answers of a covering set into the answer of one big node (design §6).

Search. Each node returns its hits already in Meilisearch's order. A hit's position
is fixed by a key computed once, when the k-way merge first looks at it:

1. the index's ``rankingRules`` in order:
   - a built-in rule (``words``, ``typo``, ``proximity``, ``attribute``, ``exactness``,
     and any other rule without a direction): the rule's ``score`` in
     ``_rankingScoreDetails``, descending (Meilisearch's buckets follow those scores;
     a rule absent from the details ties, which is what a placeholder search gets);
   - ``sort``: the client's ``sort`` criteria in order, then
   - a custom ``attr:asc|desc`` rule: the field value,
   both compared with ``sortvalue.sort_key``. The value is read from the hit (the
   planner adds the field to ``attributesToRetrieve``); when the hit lacks it (e.g. not
   displayed) the ``value`` of the rule's details entry is used. Geo criteria
   (``_geoPoint(...)``) compare the hit's ``_geoDistance``;
2. ``_rankingScore`` descending;
3. tie-break: the node's position in ``node_responses`` (the covering set's order,
   which the engine keeps deterministic), then the hit's rank on its node.
Hybrid and vector searches skip step 1: Meilisearch itself merges keyword and semantic
results by ``_rankingScore``.

``distinct`` across nodes: each node already returns the best hit per distinct value
among its documents; in the merged order the first hit of a value is the global best,
later ones are dropped; hits without the attribute are all kept. Totals are summed
per node, so with ``distinct`` they may count a value once per node that holds it —
as estimates, like Meilisearch's own.

Documents listing. Nodes list documents in their internal order, which is not the
primary-key order and differs between replicas, so no key-based merge is stable.
Miroir's global order is (shard ascending, then the answering node's order inside the
shard): every shard is asked separately (filter ``_miroir_shard = s``), so the page at
``offset`` is exact given each shard's ``total``. ``merge_documents`` accepts one page
per shard in shard order, each with the ``offset`` it was fetched at — either every
shard fetched at ``offset=0, limit=offset+limit`` (one round), or only the windows that
``searchplan.plan_document_windows`` picked from the totals (two rounds, less data).
Caveat: a node's internal order changes when documents are re-added, exactly as it
would on one Meilisearch node.

This module mutates the hits it is given (they are the decoded node answers, owned by
the caller and not reused) rather than copying them. Pure: no I/O.
"""

from __future__ import annotations

import functools
import heapq
import math
from collections.abc import Callable, Iterable, Sequence
from itertools import count, islice, repeat
from operator import itemgetter, neg
from typing import Any

# effective_ranking_rules: milli ranks by `words` before any text rule, skips repeats (issue 13).
from miroir.core.searchplan import SearchRequest, custom_rule, effective_ranking_rules, parse_sort_criterion

# core/sortvalue.py was not changed by the speed work: the reference uses it as it is.
from miroir.core.sortvalue import (
    MISSING,
    _Reversed,  # the shared wrapper, so keys from both paths compare
    field_value,
    sort_key,
)
from tests.support.merge_reference.ref_facets import merge_facet_distribution, merge_facet_stats

DETAILS = "_rankingScoreDetails"
SCORE = "_rankingScore"
_EMPTY: dict = {}
_LAST = itemgetter(-1)  # the hit of a merge entry

HitKey = Callable[[dict], tuple]


# ---------------------------------------------------------------- hit keys


def _rev(s: str) -> tuple:
    """A key ordering strings in reverse, compared in C (no Python-level ``__lt__``).

    Negated code points reverse the order of the first differing character; the final
    ``1`` (above every negated code point) puts a longer string before its own prefix.
    """
    return (*map(neg, map(ord, s)), 1)


def _pair(v: Any, ascending: bool) -> tuple:
    """``sortvalue.sort_key`` as exactly two components, reversed strings as ``_rev``.

    Keys are flat tuples, two components per criterion (kind, value), so they compare in
    C; a missing value is ``(2, 0)``, which ties with another missing value as before.
    """
    k = sort_key(v, ascending)
    if len(k) == 1:
        return (k[0], 0)
    if isinstance(k[1], _Reversed):
        return (1, _rev(k[1].s))
    return k


def _fallback(h: dict, d: dict, attr: str, details_key: str) -> Any:
    """Field value when the hit has no top-level `attr`: dotted path, else the details."""
    v = field_value(h, attr) if "." in attr else MISSING
    if v is MISSING:
        entry = d.get(details_key)
        if entry is not None:
            v = entry.get("value", MISSING)
    return v


def _value_code(j: int, read: str, ascending: bool) -> list[str]:
    """Statements setting ``aJ, bJ`` (kind, value) for one sort criterion, inline for the
    common scalar cases (same result as ``_pair``)."""
    num = "v" if ascending else "-v"
    text = "v.lower()" if ascending else "_rev(v.lower())"
    return [
        f"v = {read}",
        "t = type(v)",
        f"if t is int or t is float: a{j} = 0; b{j} = {num}",
        f"elif t is str: a{j} = 1; b{j} = {text}",
        f"else: a{j}, b{j} = _pair(v, {ascending!r})",
    ]


def _key_body(ranking_rules: Sequence[str], sort: Sequence[str] | None, *, fast: bool) -> tuple[list[str], list[str]]:
    """(statements, key components); ``fast`` assumes every field and detail is present."""
    stmts: list[str] = []
    parts: list[str] = []

    def field(attr: str, details_key: str, ascending: bool) -> None:
        j = len(parts)
        if fast and "." not in attr:
            read = f"h[{attr!r}]"
        else:
            read = f"h[{attr!r}] if {attr!r} in h else _fallback(h, d, {attr!r}, {details_key!r})"
        stmts.extend(_value_code(j, read, ascending))
        parts.extend([f"a{j}", f"b{j}"])

    for rule in ranking_rules:
        if rule == "sort":
            for criterion in sort or ():
                attr, asc = parse_sort_criterion(criterion)
                if attr.startswith("_geoPoint("):
                    j = len(parts)
                    stmts.extend(_value_code(j, "h.get('_geoDistance', _MISSING)", asc))
                    parts.extend([f"a{j}", f"b{j}"])
                else:
                    field(attr, criterion, asc)
            continue
        cr = custom_rule(rule)
        if cr is None:
            parts.append(f"-d[{rule!r}]['score']" if fast else f"-(d.get({rule!r}) or _EMPTY).get('score', 0.0)")
        else:
            field(cr[0], rule, cr[1])
    return stmts, parts


@functools.lru_cache(maxsize=256)
def _compiled(ranking_rules: tuple[str, ...], sort: tuple[str, ...], by_score_only: bool) -> tuple[HitKey, Callable]:
    """(key, entry): ``key(h)`` is the hit's comparison key; ``entry(h, i, r)`` is the same
    tuple extended with the tie-break (node position ``i``, rank ``r``) and the hit, the
    one object per hit the k-way merge needs."""
    # The key runs once per merged hit, so it is generated as flat code returning a flat
    # tuple of numbers and strings (compared in C): a closure per rule costs about three
    # times as much, nested tuples and a Python-level reversed-string class more again.
    # The fast variant uses plain subscripts and falls back to the careful one when a
    # field or detail is absent. Names from the request only enter the source as repr()
    # literals.
    env = {"_pair": _pair, "_rev": _rev, "_fallback": _fallback, "_EMPTY": _EMPTY, "_MISSING": MISSING}
    if by_score_only:
        src = (
            f"def key(h):\n    return (-(h.get({SCORE!r}) or 0.0),)\n"
            f"def entry(h, i, r):\n    return (-(h.get({SCORE!r}) or 0.0), i, r, h)\n"
        )
    else:
        fast_stmts, fast = _key_body(ranking_rules, sort, fast=True)
        safe_stmts, safe = _key_body(ranking_rules, sort, fast=False)
        fast.append(f"-h[{SCORE!r}]")
        safe.append(f"-(h.get({SCORE!r}) or 0.0)")

        def function(name: str, args: str, tail: str) -> list[str]:
            lines = [f"def {name}({args}):", "    try:", f"        d = h[{DETAILS!r}]"]
            lines += ["        " + x for x in fast_stmts]
            lines += ["        return (" + ", ".join(fast) + tail + ")"]
            lines += ["    except (KeyError, TypeError):", f"        d = h.get({DETAILS!r}) or _EMPTY"]
            lines += ["        " + x for x in safe_stmts]
            lines += ["        return (" + ", ".join(safe) + tail + ")"]
            return lines

        src = "\n".join(function("key", "h", ",") + function("entry", "h, i, r", ", i, r, h")) + "\n"
    exec(compile(src, "<miroir hit key>", "exec"), env)
    return env["key"], env["entry"]


def hit_key_function(ranking_rules: Sequence[str], sort: Sequence[str] | None, *, by_score_only: bool = False) -> HitKey:
    """hit -> comparison key (smaller first), per the module docstring's steps 1–2."""
    return _compiled(effective_ranking_rules(ranking_rules), tuple(sort or ()), by_score_only)[0]


def merged_hits(
    node_hits: Sequence[list[dict]], ranking_rules: Sequence[str], sort: Sequence[str] | None, *, by_score_only: bool = False
) -> Iterable[dict]:
    """The hits of all nodes in merged order, lazily: keys are computed once, on demand.

    Entries are (key..., node position, rank on node, hit); the tie-break makes every
    entry unique before the hit, so the comparison never reaches the hit dicts.
    """
    entry = _compiled(effective_ranking_rules(ranking_rules), tuple(sort or ()), by_score_only)[1]
    streams = [map(entry, hits, repeat(i), count()) for i, hits in enumerate(node_hits)]
    if len(streams) == 1:
        return map(_LAST, streams[0])
    return map(_LAST, heapq.merge(*streams))


# ---------------------------------------------------------------- distinct


def _distinct_values(v: Any) -> list:
    """The values a hit is distinct by; Meilisearch compares normalized facet values."""
    if isinstance(v, list):
        out: list = []
        for x in v:
            out.extend(_distinct_values(x))
        return out
    if isinstance(v, bool):
        return [("b", v)]
    if isinstance(v, (int, float)):
        return [("n", float(v))]
    if isinstance(v, str):
        return [("s", v.lower())]
    return []


def _take(hits: Iterable[dict], n: int, distinct: str | None) -> list[dict]:
    if not distinct:
        return list(islice(hits, n))
    seen: set = set()
    out: list[dict] = []
    for h in hits:
        if len(out) >= n:
            break
        values = _distinct_values(field_value(h, distinct))
        if values:
            if any(v in seen for v in values):
                continue
            seen.update(values)
        out.append(h)
    return out


# ---------------------------------------------------------------- stripping


def _remove_path(obj: dict, path: str) -> None:
    """Delete a (possibly dotted) field, and parents it leaves empty."""
    if path in obj:
        del obj[path]
        return
    head, sep, rest = path.partition(".")
    if not sep:
        return
    child = obj.get(head)
    if isinstance(child, dict):
        _remove_path(child, rest)
        if not child:
            del obj[head]
    elif isinstance(child, list):
        for item in child:
            if isinstance(item, dict):
                _remove_path(item, rest)


# Writes reject documents carrying any `_miroir_*` field (design §4), so the fields
# Miroir injects itself are all there is to strip; popping them beats scanning keys.
MIROIR_FIELDS = ("_miroir_shard",)


def _strip_miroir(obj: dict) -> None:
    for k in MIROIR_FIELDS:
        obj.pop(k, None)


def clean_hit(hit: dict, *, keep_score: bool, keep_details: bool, added_fields: Iterable[str]) -> dict:
    """Remove what only Miroir needed; the rest (`_formatted`, `_geoDistance`, ...) stays."""
    _strip_miroir(hit)
    if not keep_score:
        hit.pop(SCORE, None)
    if not keep_details:
        hit.pop(DETAILS, None)
    formatted = hit.get("_formatted")
    if isinstance(formatted, dict):
        _strip_miroir(formatted)
    matches = hit.get("_matchesPosition")
    for f in added_fields:
        _remove_path(hit, f)
        if isinstance(formatted, dict):
            _remove_path(formatted, f)
        if isinstance(matches, dict):
            prefix = f + "."
            for k in [k for k in matches if k == f or k.startswith(prefix)]:
                del matches[k]
    return hit


# ---------------------------------------------------------------- search


def merge_search(
    req: SearchRequest,
    *,
    ranking_rules: list[str],
    node_responses: list[dict],
    distinct_attribute: str | None,
    max_values_per_facet: int,
    sort_facet_values_by: dict,
    processing_time_ms: int,
    added_fields: set[str],
    max_total_hits: int | None = None,
) -> dict:
    """The client's answer, from the answers of the covering set (in covering-set order).

    ``distinct_attribute`` is the index's setting (``req.distinct`` overrides it);
    ``added_fields`` comes from ``searchplan.retrieval_additions``;
    ``max_total_hits`` is the index's ``pagination.maxTotalHits``: like Meilisearch,
    no hit past it is returned and totals are capped at it.
    """
    offset, limit = req.window()
    if max_total_hits is not None:
        offset = min(offset, max_total_hits)
        limit = min(limit, max_total_hits - offset)
    distinct = req.distinct or distinct_attribute
    ordered = merged_hits(
        [r.get("hits") or [] for r in node_responses],
        ranking_rules,
        req.sort,
        by_score_only=req.hybrid is not None or req.vector is not None,
    )
    page = _take(ordered, offset + limit, distinct)[offset:]
    keep_score, keep_details = req.show_ranking_score, req.show_ranking_score_details
    if added_fields:
        for h in page:
            clean_hit(h, keep_score=keep_score, keep_details=keep_details, added_fields=added_fields)
    else:  # the common case, inline: what clean_hit does without added fields
        for h in page:
            for k in MIROIR_FIELDS:
                h.pop(k, None)
            if not keep_score:
                h.pop(SCORE, None)
            if not keep_details:
                h.pop(DETAILS, None)
            formatted = h.get("_formatted")
            if formatted is not None and type(formatted) is dict:
                for k in MIROIR_FIELDS:
                    formatted.pop(k, None)

    out: dict[str, Any] = {"hits": page, "query": req.q or "", "processingTimeMs": processing_time_ms}
    if req.page_mode:
        page_no, hpp = req.page_window()
        total = sum(r.get("totalHits", 0) for r in node_responses)
        if max_total_hits is not None:
            total = min(total, max_total_hits)
        out["hitsPerPage"] = hpp
        out["page"] = page_no
        out["totalPages"] = math.ceil(total / hpp) if hpp else 0
        out["totalHits"] = total
    else:
        total = sum(r.get("estimatedTotalHits", 0) for r in node_responses)
        if max_total_hits is not None:
            total = min(total, max_total_hits)
        out["limit"] = req.limit
        out["offset"] = req.offset
        out["estimatedTotalHits"] = total
    if any("facetDistribution" in r for r in node_responses):
        out["facetDistribution"] = merge_facet_distribution(
            (r.get("facetDistribution") for r in node_responses),
            sort_facet_values_by=sort_facet_values_by,
            max_values_per_facet=max_values_per_facet,
        )
    if any("facetStats" in r for r in node_responses):
        out["facetStats"] = merge_facet_stats(r.get("facetStats") for r in node_responses)
    if any("semanticHitCount" in r for r in node_responses):
        out["semanticHitCount"] = sum(r.get("semanticHitCount") or 0 for r in node_responses)
    return out


# ---------------------------------------------------------------- documents


def merge_documents(pages: list[dict], *, offset: int, limit: int) -> dict:
    """GET /documents: one page per shard, in shard order (see module docstring).

    Each page is a node's answer ``{"results", "offset", "limit", "total"}`` for one
    shard; ``offset`` is where in that shard it starts. Shards are laid end to end.
    """
    results: list[dict] = []
    start = 0  # global position of the current shard's first document
    end = offset + limit
    for p in pages:
        first = start + p.get("offset", 0)
        for i, doc in enumerate(p.get("results") or ()):
            pos = first + i
            if offset <= pos < end:
                _strip_miroir(doc)
                results.append(doc)
        start += p.get("total", 0)
    return {"results": results, "offset": offset, "limit": limit, "total": start}
