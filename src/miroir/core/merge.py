"""Merging the answers of a covering set into the answer of one big node (design §6).

Search. Each node returns its hits already in Meilisearch's order. A hit's position
is fixed by a key computed once, when the k-way merge first looks at it:

1. the index's ``rankingRules`` in order:
   - a built-in rule (``words``, ``typo``, ``proximity``, ``attribute`` or its 1.36
     halves ``attributeRank`` and ``wordPosition``, ``exactness``, and any other rule
     without a direction; ``words`` first, as milli ranks, see
     ``searchplan.effective_ranking_rules``): the rule's ``score`` in
     ``_rankingScoreDetails``, descending (Meilisearch's buckets follow those scores;
     a rule absent from the details ties, which is what a placeholder search gets);
   - ``sort``: the client's ``sort`` criteria in order, then
   - a custom ``attr:asc|desc`` rule: the field value,
   both compared with ``sortvalue.sort_key``. The value is read from the hit (the
   planner adds the field to ``attributesToRetrieve``); when the hit lacks it (e.g. not
   displayed) the ``value`` of the rule's details entry is used. Geo criteria
   (``_geoPoint(...)``) compare the details' ``distance``, else ``_geoDistance``;
2. ``_rankingScore`` descending;
3. insertion order (``reserved.document_seq``: one Meilisearch orders tied hits by its
   internal document id, which follows insertion order); then, for documents without
   a sequence (written before Miroir kept one), the node's position in
   ``node_responses`` (the covering set's order, which the engine keeps
   deterministic), then the hit's rank on its node.
Searches that ``searchplan.ordered_by_score`` (query terms with only rules that score,
no custom rule, no sort criteria; hybrid and vector searches) skip step 1: the score
alone is the nodes' order (Meilisearch itself merges keyword and semantic results by
``_rankingScore``), and their sub-queries do not ask for the details.

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
the caller and not reused) rather than copying them: the search merge strips each hit
as it takes it, before the offset too. Pure: no I/O.
"""

from __future__ import annotations

import functools
import heapq
import math
from collections.abc import Callable, Iterable, Sequence
from heapq import heapify, heappop, heapreplace
from itertools import islice
from operator import neg
from typing import Any

from miroir.core import geo
from miroir.core.facets import merge_facet_distribution, merge_facet_stats
from miroir.core.reserved import NO_SEQ, SEQ_FIELD, SEQ_FIELDS, UPDATE_SEQ_FIELD, document_seq
from miroir.core.searchplan import (
    SearchRequest,
    custom_rule,
    effective_ranking_rules,
    ordered_by_score,
    parse_sort_criterion,
)
from miroir.core.sortvalue import (
    MISSING,
    _Reversed,  # the shared wrapper, so keys from both paths compare
    field_value,
    sort_key,
)

DETAILS = "_rankingScoreDetails"
SCORE = "_rankingScore"
_EMPTY: dict = {}
_NO_HITS: list = []

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


def _geo_details_key(attr: str, ascending: bool) -> str | None:
    """The details key a node gives a `_geoPoint(...)` criterion (None: malformed, which
    the nodes refuse before any merge)."""
    try:
        point = geo.parse_sort_member(attr)
    except geo.SortError:
        return None
    return None if point is None else geo.details_key(point, ascending)


def _geo_distance(h: dict, d: dict, details_key: str | None) -> Any:
    """The distance a node sorted the hit by: its details' exact `distance` (nodes round
    `_geoDistance` to the meter, and give none when `_geo` is not retrieved), else
    `_geoDistance`; missing for a document without a point (last either way)."""
    entry = d.get(details_key) if details_key is not None else None
    if type(entry) is dict and "distance" in entry:
        v = entry["distance"]
        return MISSING if v is None else v
    return h.get("_geoDistance", MISSING)


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


def _namer(names: list[str]) -> Callable[[str], str]:
    """name -> the local (``k0``, ``k1``, ...) the generated code reads it from;
    ``names`` collects them in order."""

    def k(name: str) -> str:
        if name not in names:
            names.append(name)
        return f"k{names.index(name)}"

    return k


def _key_body(
    ranking_rules: Sequence[str], sort: Sequence[str] | None, *, fast: bool, k: Callable[[str], str]
) -> tuple[list[str], list[str]]:
    """(statements, key components); ``fast`` assumes every field and detail is present,
    and reads them with the dict keys held in the locals ``k`` names."""
    stmts: list[str] = []
    parts: list[str] = []

    def field(attr: str, details_key: str, ascending: bool) -> None:
        j = len(parts)
        if fast and "." not in attr:
            read = f"h[{k(attr)}]"
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
                    stmts.extend(_value_code(j, f"_geo_distance(h, d, {_geo_details_key(attr, asc)!r})", asc))
                    parts.extend([f"a{j}", f"b{j}"])
                else:
                    field(attr, criterion, asc)
            continue
        cr = custom_rule(rule)
        if cr is None:
            if fast:
                # A full score (the common case for the first rules) becomes one shared
                # constant: no float allocated, and equal components compare by identity.
                j = len(parts)
                stmts.append(f"s{j} = d[{k(rule)}][{k('score')}]")
                parts.append(f"(-1.0 if s{j} == 1.0 else -s{j})")
            else:
                parts.append(f"-(d.get({rule!r}) or _EMPTY).get('score', 0.0)")
        else:
            field(cr[0], rule, cr[1])
    return stmts, parts


def _key_variants(
    ranking_rules: tuple[str, ...], sort: tuple[str, ...], by_score_only: bool, k: Callable[[str], str]
) -> tuple[tuple, tuple]:
    """(fast, careful) key code for a hit ``h``, each (statements, tuple components)."""
    # The final tie-break: insertion order (``reserved.document_seq``), inline.
    seq = f"(h.get({k(SEQ_FIELD)}) or h.get({k(UPDATE_SEQ_FIELD)}) or {NO_SEQ})"
    if by_score_only:
        part = f"-(h.get({SCORE!r}) or 0.0)"
        return ([], [part, seq]), ([], [part, seq])
    fast_stmts, fast = _key_body(ranking_rules, sort, fast=True, k=k)
    safe_stmts, safe = _key_body(ranking_rules, sort, fast=False, k=k)
    return (fast_stmts, [*fast, f"-h[{k(SCORE)}]", seq]), (safe_stmts, [*safe, f"-(h.get({SCORE!r}) or 0.0)", seq])


def _entry_code(variants: tuple[tuple, tuple], tail: str, k: Callable[[str], str]) -> list[str]:
    """Statements setting ``e`` to the key of hit ``h`` followed by ``tail``: the fast
    variant, or the careful one when a field or detail is absent (or not a dict)."""
    (fast_stmts, fast), (safe_stmts, safe) = variants
    if not fast_stmts and fast == safe:
        return [f"e = ({', '.join(fast)}{tail})"]
    return [
        "try:",
        f"    d = h[{k(DETAILS)}]",
        *("    " + x for x in fast_stmts),
        f"    e = ({', '.join(fast)}{tail})",
        "except (KeyError, TypeError):",
        f"    d = h.get({DETAILS!r}) or _EMPTY",
        *("    " + x for x in safe_stmts),
        f"    e = ({', '.join(safe)}{tail})",
    ]


# The k-way merge with the key code pasted in twice (``{HEAD}`` for the first hit of
# each node, ``{NEXT}`` for the hit after the one just taken). An entry is (key...,
# node position i, rank r, hit); the tie-break makes entries unique before the hit, so
# comparisons never reach the hit dicts. At every step the smallest head goes out, as
# in ``heapq.merge``, but on a heap of the entries themselves (``heapq.merge`` wraps
# each head in a list, and every comparison then walked the key tuples twice), and a
# key is only computed for a hit that becomes a head. ``keep`` (``None``: every hit)
# filters hits as they go out, for ``distinct``. Once a single list is left its hits
# need no keys: the rest of the page is read from it in order. ``{CLEAN16}``,
# ``{CLEAN20}`` and ``{TAIL_CLEAN}`` strip each hit as it is taken (``_clean_code``):
# its details are freed while still in the CPU cache from its key. A pass over the page
# afterwards freed them cold: on figure D (3 × 1,000 hits) that cost ~160 µs more.
_MERGE_SOURCE = """\
def first_hits(node_hits, n, keep, keys):
    {UNPACK}
    out = []
    if n <= 0:
        return out
    append = out.append
    heap = []
    for i, hits in enumerate(node_hits):
        if hits:
            r = 0
            h = hits[0]
{HEAD}
            heap.append(e)
    heapify(heap)
    live = len(heap)
    left = n
    while live > 1:
        while True:  # until the list of the hit just taken runs out
            e = heap[0]
            h = e[{H}]
            if keep is None or keep(h):
                append(h)
{CLEAN16}
                left -= 1
                if not left:
                    return out
            i = e[{I}]
            r = e[{R}] + 1
            try:
                h = node_hits[i][r]
            except IndexError:
                break
{NEXT}
            heapreplace(heap, e)
        heappop(heap)
        live -= 1
    if live:
        e = heap[0]
        r = e[{R}]
        rest = node_hits[e[{I}]]
        if keep is None:
            tail = rest[r : r + left]
            out += tail
{TAIL_CLEAN}
        else:
            for h in islice(rest, r, None):
                if keep(h):
                    append(h)
{CLEAN20}
                    left -= 1
                    if not left:
                        break
    return out
"""


def _clean_code(drop: tuple[str, ...], k: Callable[[str], str]) -> list[str]:
    """Statements doing to hit ``h`` what ``clean_hit`` does without added fields, with
    ``drop`` the top-level fields it removes."""
    lines = [f"h.pop({k(f)}, None)" for f in drop]
    lines += ["if '_formatted' in h:", "    f = h['_formatted']", "    if type(f) is dict:"]
    lines += [f"        f.pop({k(f)}, None)" for f in MIROIR_FIELDS] or ["        pass"]
    return lines


def _indent(lines: list[str], n: int) -> str:
    return "\n".join(" " * n + x for x in lines)


@functools.lru_cache(maxsize=256)
def _compiled(
    ranking_rules: tuple[str, ...], sort: tuple[str, ...], by_score_only: bool, drop: tuple[str, ...] | None = None
) -> tuple[HitKey, Callable, tuple[str, ...]]:
    """(key, first_hits, names): ``key(h)`` is the hit's comparison key; ``first_hits(
    node_hits, n, keep, keys)`` is the first ``n`` hits of the merged order that ``keep``
    accepts, ``keys`` being ``names`` or equal strings (``_key_objects``). With ``drop``,
    every hit taken is cleaned (``_clean_code``), the ones before the page's offset too."""
    # The key is computed for every merged hit, so it is generated as flat code building
    # a flat tuple of numbers and strings (compared in C): a closure per rule costs about
    # three times as much, nested tuples and a Python-level reversed-string class more
    # again. The merge loop gets the key code inline: a call per hit cost about as much
    # as the key itself. The fast variant uses plain subscripts and falls back to the
    # careful one when a field or detail is absent. Names from the request only enter
    # the source as repr() literals.
    names: list[str] = []
    k = _namer(names)
    variants = _key_variants(ranking_rules, sort, by_score_only, k)
    n_parts = len(variants[0][1])
    key_code = _entry_code(variants, ",", k)
    entry = _indent(_entry_code(variants, ", i, r, h", k), 12)
    clean = _clean_code(drop, k) if drop is not None else []
    unpack = f"{', '.join(f'k{j}' for j in range(len(names)))}, = keys" if names else "pass"
    key_src = "\n".join(["def key(h, keys=_NAMES):", "    " + unpack, *("    " + x for x in key_code), "    return e"])
    merge_src = _MERGE_SOURCE.format(
        HEAD=entry, NEXT=entry, CLEAN16=_indent(clean, 16), CLEAN20=_indent(clean, 20),
        TAIL_CLEAN=_indent(["for h in tail:", *("    " + x for x in clean)], 12) if clean else "",
        I=n_parts, R=n_parts + 1, H=n_parts + 2, UNPACK=unpack,
    )
    env = {"_pair": _pair, "_rev": _rev, "_fallback": _fallback, "_geo_distance": _geo_distance, "_EMPTY": _EMPTY,
           "_MISSING": MISSING,
           "heapify": heapify, "heappop": heappop, "heapreplace": heapreplace, "islice": islice, "_NAMES": tuple(names)}
    exec(compile(key_src + "\n" + merge_src, "<miroir hit key>", "exec"), env)
    return env["key"], env["first_hits"], tuple(names)


# From this many hits on, a merge reads the hits with their own key objects
# (``_key_objects``): finding them costs about what ~15 lookups with literals lose.
_OWN_KEYS_FROM = 32


def _key_objects(node_hits: Sequence[list[dict]]) -> dict[str, str]:
    """The dict keys of a sample hit (top level, details, one rule's details), each
    mapped to itself.

    msgspec decodes every occurrence of a short dict key to one cached string object,
    but not to the interned string a literal in the code is: a lookup with the literal
    finds the entry by hash, then compares the characters; with the hits' own key
    object it stops at the identity check. Any equal string gives the same answers:
    this is only about speed.
    """
    h = next((hits[0] for hits in node_hits if hits), None)
    if type(h) is not dict:
        return {}
    found = dict(zip(h, h))
    d = h.get(DETAILS)
    if type(d) is dict:
        found.update(zip(d, d))
        rule = next(iter(d.values()), None)
        if type(rule) is dict:
            found.update(zip(rule, rule))
    return found


def _own(names: tuple[str, ...], found: dict[str, str]) -> tuple[str, ...]:
    return tuple([found.get(n, n) for n in names]) if found else names


def hit_key_function(ranking_rules: Sequence[str], sort: Sequence[str] | None, *, by_score_only: bool = False) -> HitKey:
    """hit -> comparison key (smaller first), per the module docstring's steps 1–2."""
    return _compiled(effective_ranking_rules(ranking_rules), tuple(sort or ()), by_score_only)[0]


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


def _distinct_filter(attr: str) -> Callable[[dict], bool]:
    """hit -> whether it is the first, in merged order, of every distinct value it has."""
    seen: set = set()

    def keep(h: dict) -> bool:
        values = _distinct_values(field_value(h, attr))
        if values:
            if any(v in seen for v in values):
                return False
            seen.update(values)
        return True

    return keep


def distinct_count(node_hits: Iterable[Iterable[dict]], attr: str) -> int:
    """How many hits one node holding every document would keep with ``distinct`` on
    ``attr``, from every node's complete distinct hit list: each value once over all
    nodes, every hit without the attribute."""
    values: set = set()
    without = 0
    for hits in node_hits:
        for h in hits:
            vs = _distinct_values(field_value(h, attr))
            if vs:
                values.update(vs)
            else:
                without += 1
    return len(values) + without


def listed_distinct_total(node_responses: Sequence[dict], attr: str, max_total_hits: int | None) -> int | None:
    """The distinct total one node would report, when every node listed all its hits
    (each asked from offset 0 and answering no more hits than it found): a node that
    runs out of candidates has checked each one for distinct, so its count is exact,
    and so is the union's. None when some node's list is cut."""
    for r in node_responses:
        total = r.get("totalHits", r.get("estimatedTotalHits", 0)) or 0
        if len(r.get("hits") or ()) < total:
            return None
    total = distinct_count((r.get("hits") or () for r in node_responses), attr)
    return min(total, max_total_hits) if max_total_hits is not None else total


def _facet_key(value: tuple) -> str:
    """A distinct value as a node's facet distribution names it (lowercased)."""
    kind, v = value
    if kind == "b":
        return "true" if v else "false"
    if kind == "n":
        return str(int(v)) if float(v).is_integer() else repr(v)
    return v


def distinct_walk_estimate(responses: Sequence[dict], attr: str, wanted: int) -> int | None:
    """`estimatedTotalHits` of a search without ranking rules under distinct, as one node
    holding every document answers it: milli walks the documents in id order (insertion
    order here) until it has `wanted` hits, and counts every document but those sharing
    a value with a hit it took. Each node did the same walk over its own documents and
    answered its hits from the first one with the facet counts of `attr`, which give back
    how many documents it searched; the global walk's hits are the first `wanted` of all
    nodes' hits in insertion order. None when a node's answer cannot tell."""
    universe = 0
    counts: dict[str, int] = {}
    hits: list[dict] = []
    for r in responses:
        dist = r.get("facetDistribution")
        total = r.get("estimatedTotalHits")
        if dist is None or total is None:
            return None
        own = {k.lower(): c for k, c in (dist.get(attr) or {}).items()}
        for k, c in own.items():
            counts[k] = counts.get(k, 0) + c
        node_hits = r.get("hits") or []
        hits.extend(node_hits)
        shared = 0
        for h in node_hits:
            values = {_facet_key(v) for v in _distinct_values(field_value(h, attr))}
            if values:
                shared += sum(own.get(k, 0) for k in values) - 1
        universe += total + shared
    keep = _distinct_filter(attr)
    taken = [h for h in sorted(hits, key=document_seq) if keep(h)][:wanted]
    estimate = universe
    for h in taken:
        values = {_facet_key(v) for v in _distinct_values(field_value(h, attr))}
        if values:
            estimate -= sum(counts.get(k, 0) for k in values) - 1
    return estimate


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
MIROIR_FIELDS = ("_miroir_shard", *SEQ_FIELDS)


def _strip_miroir(obj: dict) -> None:
    for k in MIROIR_FIELDS:
        obj.pop(k, None)


def _dropped(keep_score: bool, keep_details: bool) -> tuple[str, ...]:
    """The top-level fields ``clean_hit`` removes from every hit."""
    return (*MIROIR_FIELDS, *(() if keep_score else (SCORE,)), *(() if keep_details else (DETAILS,)))


def clean_hit(
    hit: dict, *, keep_score: bool, keep_details: bool, added_fields: Iterable[str], formatted_kept: Any = ()
) -> dict:
    """Remove what only Miroir needed; the rest (`_formatted`, `_geoDistance`, ...) stays.

    `formatted_kept`: fields the client highlights or crops, which stay in `_formatted`
    even when Miroir added them to the retrieved fields (1.50 formats them whether
    retrieved or not); `ALL` keeps every one."""
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
        if isinstance(formatted, dict) and formatted_kept is not ALL and f not in formatted_kept:
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
    by_score: bool | None = None,
) -> dict:
    """The client's answer, from the answers of the covering set (in covering-set order).

    ``distinct_attribute`` is the index's setting (``req.distinct`` overrides it);
    ``added_fields`` comes from ``searchplan.retrieval_additions``;
    ``max_total_hits`` is the index's ``pagination.maxTotalHits``: like Meilisearch,
    no hit past it is returned and totals are capped at it;
    ``by_score`` is the planner's ``searchplan.ordered_by_score`` (whether the nodes were
    asked for ranking details).
    """
    offset, limit = req.window()
    if max_total_hits is not None:
        offset = min(offset, max_total_hits)
        limit = min(limit, max_total_hits - offset)
    distinct = req.distinct or distinct_attribute
    node_hits = [r.get("hits") or _NO_HITS for r in node_responses]
    # The planner's decision (it asked the nodes for details or not); by default only
    # hybrid and vector searches, which never need the details.
    by_score_only = ordered_by_score(req, ranking_rules) if by_score is None else by_score
    keep_score, keep_details = req.show_ranking_score, req.show_ranking_score_details
    semantic = any("semanticHitCount" in r for r in node_responses)
    # Without added fields (the common case) the merge loop cleans the hits it takes;
    # a semantic search reads the page's details first (semantic hits are counted there).
    drop = None if added_fields or semantic else _dropped(keep_score, keep_details)
    rules = effective_ranking_rules(ranking_rules, req.matching_strategy)
    _, first_hits, names = _compiled(rules, tuple(req.sort or ()), by_score_only, drop)
    keep = _distinct_filter(distinct) if distinct else None
    found = _key_objects(node_hits) if offset + limit >= _OWN_KEYS_FROM else {}
    page = first_hits(node_hits, offset + limit, keep, _own(names, found))[offset:]
    semantic_hits = semantic_hit_count(page) if semantic else 0
    if drop is None:
        kept = formatted_fields(req)
        for h in page:
            clean_hit(h, keep_score=keep_score, keep_details=keep_details, added_fields=added_fields, formatted_kept=kept)

    out: dict[str, Any] = {"hits": page, "query": req.q or ""}
    for r in node_responses:
        if "queryVector" in r:  # the same embedding on every node
            out["queryVector"] = r["queryVector"]
            break
    out["processingTimeMs"] = processing_time_ms
    if req.page_mode:
        page_no, hpp = req.page_window()
        total = 0
        for r in node_responses:
            total += r.get("totalHits", 0)
        if max_total_hits is not None and max_total_hits < total:
            total = max_total_hits
        out["hitsPerPage"] = hpp
        out["page"] = page_no
        out["totalPages"] = math.ceil(total / hpp) if hpp else 0
        out["totalHits"] = total
    else:
        total = 0
        for r in node_responses:
            total += r.get("estimatedTotalHits", 0)
        if max_total_hits is not None and max_total_hits < total:
            total = max_total_hits
        out["limit"] = req.limit
        out["offset"] = req.offset
        out["estimatedTotalHits"] = total
    facets = stats = False
    for r in node_responses:
        if "facetDistribution" in r:
            facets = True
        if "facetStats" in r:
            stats = True
    if facets:
        out["facetDistribution"] = merge_facet_distribution(
            [r.get("facetDistribution") for r in node_responses],
            sort_facet_values_by=sort_facet_values_by,
            max_values_per_facet=max_values_per_facet,
        )
    if stats:
        out["facetStats"] = merge_facet_stats([r.get("facetStats") for r in node_responses])
    if semantic:
        # Counted on the page returned, as 1.50 counts it: the nodes' counts cover their
        # own windows (offset 0 to offset+limit), not this page.
        out["semanticHitCount"] = semantic_hits
    return out


ALL = object()  # every field (a `*` in attributesToHighlight or attributesToCrop)


def formatted_fields(req: SearchRequest) -> Any:
    """The fields 1.50 puts in `_formatted` whatever `attributesToRetrieve` says: the
    highlighted and cropped ones (`attr:length` names `attr`); `ALL` for `*`."""
    names: set[str] = set()
    for entry in (*(req.attributes_to_highlight or ()), *(req.attributes_to_crop or ())):
        name = entry.split(":", 1)[0] if ":" in entry else entry
        if name == "*":
            return ALL
        names.add(name)
    return names


def semantic_hit_count(hits: Iterable[dict]) -> int:
    """How many hits a semantic search ranked by vector similarity: milli names that
    ranking step `vectorSort` in `_rankingScoreDetails` (the planner asks the nodes for
    details on every hybrid or vector search)."""
    n = 0
    for h in hits:
        d = h.get(DETAILS)
        if isinstance(d, dict) and "vectorSort" in d:
            n += 1
    return n


# ---------------------------------------------------------------- documents


def _seq_order(lists: Sequence[Sequence[dict]]) -> Iterable[tuple[int, int, int, dict]]:
    """(seq, list index, rank, document) in listing order: insertion order
    (``reserved.document_seq``), documents without a sequence after, by list then rank.
    Each list's own order is kept (the merge only interleaves the lists)."""
    return heapq.merge(*[[(document_seq(d), i, r, d) for r, d in enumerate(docs)] for i, docs in enumerate(lists)])


def merge_listing(pages: list[dict], *, offset: int, limit: int) -> dict:
    """GET /documents in insertion order: one page per shard, in shard order, each the
    shard's first ``offset + limit`` documents in its node's order (the node's internal
    ids, which follow the order it received them in: insertion order)."""
    total = sum(p.get("total", 0) for p in pages)
    merged = _seq_order([p.get("results") or _NO_HITS for p in pages])
    results = [e[3] for e in islice(merged, offset, offset + limit)]
    for doc in results:
        _strip_miroir(doc)
    return {"results": results, "offset": offset, "limit": limit, "total": total}


def plan_deep_listing(
    heads: Sequence[Sequence[dict]], totals: Sequence[int], *, depth: int, offset: int, limit: int
) -> tuple[list[tuple[int, int]], dict[int, tuple[int, int]]]:
    """A documents page past ``depth``: ``heads`` are each shard's first ``depth``
    documents (their sequences are enough), ``totals`` each shard's count.

    Listing order: the first ``depth`` positions in insertion order (what
    ``merge_listing`` gives every page within them), then what is left of each shard,
    shard after shard, in its node's order (an exact merge that deep would read every
    shard down to the page). Returns the page's (shard index, rank in shard) in order
    and, per shard index, the window ``(offset, limit)`` to fetch.
    """
    depth = min(depth, sum(len(h) for h in heads))
    taken = [0] * len(heads)
    order: list[tuple[int, int]] = []
    for pos, (_, i, r, _) in enumerate(islice(_seq_order(heads), depth)):
        taken[i] += 1
        if offset <= pos < offset + limit:
            order.append((i, r))
    start = depth  # global position of the current shard's rest
    end = offset + limit
    for i, total in enumerate(totals):
        rest = max(total - taken[i], 0)
        lo, hi = max(offset, start), min(end, start + rest)
        order.extend((i, taken[i] + lo - start + j) for j in range(max(hi - lo, 0)))
        start += rest
    windows: dict[int, tuple[int, int]] = {}
    for i, r in order:
        lo, n = windows.get(i, (r, 0))
        windows[i] = (min(lo, r), max(lo + n, r + 1) - min(lo, r))
    return order, windows


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
