"""Ranking rules and scores for the devnode, after milli's graph-based ranking rules.

Every rule turns (query, one document's matches, settings) into a `Rank` — an integer
`rank` in 1..max_rank, higher better — exactly like milli's `ScoreDetails`; the global
`_rankingScore` folds the ranks with milli's `Rank::global_score`. Nothing here looks at
other documents (no IDF, no maximum over the result set): Miroir relies on that to rank a
sharded index exactly like one node. (milli's ExactAttribute rule also ignores a query word
found in no document; the engine does not, for that reason: see exact_match_type.)

The per-rule comparison used to order documents is derived from the same details we emit
(`detail_keys`), so Miroir's merge, which compares emitted `_rankingScoreDetails` rule by
rule, orders hits exactly like this engine does. Pure module.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field

from miroir.core import geo
from miroir.core.sortvalue import MISSING, field_value, sort_key

MAX_DISTANCE = 4  # milli (proximity.rs): pairs 4+ apart (or in other attributes) are "far"
MAX_POSITION_COST = 10  # milli's position rule: cost_from_distance() tops out at 10

# `attribute` is milli's two rules Fid then Position, shown as one details entry;
# since Meilisearch 1.36 they can be placed apart as `attributeRank` (Fid) and
# `wordPosition` (Position), each its own entry (score_details.rs, AttributeState).
TEXT_RULES = ("words", "typo", "proximity", "attribute", "attributeRank", "wordPosition", "exactness")
ATTRIBUTE_RULES = ("attribute", "attributeRank", "wordPosition")


@dataclass(frozen=True, slots=True)
class Rank:
    rank: int
    max_rank: int

    def local_score(self) -> float:
        return self.rank / self.max_rank


def merge(outer: Rank, inner: Rank) -> Rank:
    """milli's Rank::merge: `inner` refines the bucket of `outer`."""
    return Rank(max(outer.rank - 1, 0) * inner.max_rank + inner.rank, outer.max_rank * inner.max_rank)


def global_score(ranks) -> float:
    # merge() folded over `ranks` from Rank(1, 1), on plain ints (no Rank per step).
    rank = max_rank = 1
    for r in ranks:
        rank = (rank - 1 if rank > 0 else 0) * r.max_rank + r.rank
        max_rank *= r.max_rank
    return rank / max_rank


def cost_from_distance(distance: int) -> int:
    """milli's position cost of a word `distance` positions away from its place in the query."""
    if distance <= 1:
        return distance
    if distance <= 4:
        return 2
    if distance <= 7:
        return 3
    if distance <= 11:
        return 4
    if distance <= 16:
        return 5
    if distance <= 24:
        return 6
    if distance <= 64:
        return 7
    if distance <= 256:
        return 8
    if distance <= 1024:
        return 9
    return 10


def bucketed_position(pos: int) -> int:
    """milli's bucketed_position: word positions are indexed exactly up to 15, then 16..23
    as 24, then as the next power of two (the position rule measures from these)."""
    if pos < 16:
        return pos
    if pos < 24:
        return 24
    return 1 << (pos - 1).bit_length()


def position_cost(pos: int, query_pos: int) -> int:
    """The position rule's cost of a word found at `pos` for the query word at `query_pos`."""
    return cost_from_distance(abs(bucketed_position(pos) - query_pos))


def positions_proximity(lhs: int, rhs: int) -> int:
    """milli: distance of two positions in reading order; the wrong order costs one more."""
    if lhs < rhs:
        return min(rhs - lhs, MAX_DISTANCE)
    return min(lhs - rhs + 1, MAX_DISTANCE)


@dataclass(slots=True)
class TermHit:
    """How one query term matches one document."""

    typos: int  # fewest typos among the derivations found in the document
    occ: list  # sorted (fid, pos) of every matching occurrence
    weights: list  # attribute weight (0 = most important) per distinct fid found
    exact_occ: frozenset  # (fid, pos) matched by the query word itself, no typo, no prefix


@dataclass(slots=True)
class QueryTerm:
    index: int  # position of the word in the query (for the position rule)
    word: str
    max_typos: int
    prefix: bool
    in_phrase: bool = False  # a word of a quoted phrase: matched exactly, no typo budget

    def typo_budget(self) -> int:
        """The term's share of maxTypoCount, milli's max_typo_cost: the typos its length
        allows, and 1 for a word allowed none (split into two words counts as a typo),
        except in a phrase."""
        if self.max_typos:
            return self.max_typos
        return 0 if self.in_phrase else 1


@dataclass(slots=True)
class Context:
    """What the rules need besides the document: settings-derived constants."""

    max_weight: int  # largest attribute weight among searchable attributes
    by_attribute: bool  # proximityPrecision == "byAttribute"
    field_word_counts: dict = field(default_factory=dict)  # fid -> words in that field (for exactness)


def words_detail(kept: int, total: int) -> dict:
    return {"matchingWords": kept, "maxMatchingWords": total, "_ranks": [Rank(kept, total)]}


def typo_detail(terms: list[QueryTerm], hits: list[TermHit]) -> dict:
    return typo_detail_from_count(terms, sum(h.typos for h in hits))


def typo_detail_from_count(terms: list[QueryTerm], count: int) -> dict:
    max_count = sum(t.typo_budget() for t in terms)
    rank = Rank(max(max_count + 1 - count, 0), max_count + 1)
    return {"typoCount": count, "maxTypoCount": max_count, "_ranks": [rank]}


def proximity_rank(terms: list[QueryTerm], hits: list[TermHit], by_attribute: bool) -> Rank:
    return _proximity(terms, [h.occ for h in hits], by_attribute, _pair_cost)


def proximity_rank_packed(terms: list[QueryTerm], occs: list[list[int]], by_attribute: bool) -> Rank:
    """proximity_rank over each term's sorted distinct occurrences packed as
    `fid << pos_bits | pos` (the engine's postings), without building TermHits."""
    return _proximity(terms, occs, by_attribute, _pair_cost_packed)


def _proximity(terms: list[QueryTerm], occs: list, by_attribute: bool, pair_cost) -> Rank:
    cost = 0
    max_cost = 0
    for i in range(1, len(terms)):
        # A pair only counts when the two words are adjacent in the query (milli skips the
        # pair when the words rule removed a word in between).
        if terms[i].index != terms[i - 1].index + 1:
            continue
        max_cost += MAX_DISTANCE - 1
        cost += pair_cost(occs[i - 1], occs[i], by_attribute)
    return Rank(max_cost - cost + 1, max_cost + 1)


def _pair_cost(left: list, right: list, by_attribute: bool) -> int:
    if by_attribute:
        lf = {f for f, _ in left}
        return 0 if any(f in lf for f, _ in right) else MAX_DISTANCE - 1
    best = MAX_DISTANCE
    # Both lists are sorted by (fid, pos): for each left occurrence look at its nearest
    # right neighbours in the same attribute.
    for f, p in left:
        j = bisect_left(right, (f, p))
        for k in (j - 1, j, j + 1):
            if 0 <= k < len(right):
                rf, rp = right[k]
                if rf == f and rp != p:
                    d = positions_proximity(p, rp)
                    if d < best:
                        best = d
                        if best == 1:
                            return 0
    return best - 1


PACK_BITS = 20  # the engine's `fid << 20 | pos` packing (engine.POS_BITS)
_PACK_MASK = (1 << PACK_BITS) - 1


def _pair_cost_packed(left: list[int], right: list[int], by_attribute: bool) -> int:
    """_pair_cost on packed occurrences: (fid, pos) order is packed-integer order."""
    if by_attribute:
        lf = {o >> PACK_BITS for o in left}
        return 0 if any((o >> PACK_BITS) in lf for o in right) else MAX_DISTANCE - 1
    best = MAX_DISTANCE
    n = len(right)
    for o in left:
        f = o >> PACK_BITS
        j = bisect_left(right, o)
        for k in (j - 1, j, j + 1):
            if 0 <= k < n:
                ro = right[k]
                if (ro >> PACK_BITS) == f and ro != o:
                    d = positions_proximity(o & _PACK_MASK, ro & _PACK_MASK)
                    if d < best:
                        best = d
                        if best == 1:
                            return 0
    return best - 1


def attribute_ranks(terms: list[QueryTerm], hits: list[TermHit], max_weight: int) -> tuple[Rank, Rank]:
    fid_cost = 0
    pos_cost = 0
    for t, h in zip(terms, hits):
        fid_cost += min(h.weights)
        pos_cost += min(position_cost(p, t.index) for _, p in h.occ)
    return attribute_ranks_from_costs(len(terms), fid_cost, pos_cost, max_weight)


def attribute_ranks_from_costs(n_terms: int, fid_cost: int, pos_cost: int, max_weight: int) -> tuple[Rank, Rank]:
    fid_max = max_weight * n_terms
    pos_max = MAX_POSITION_COST * n_terms
    return Rank(fid_max - fid_cost + 1, fid_max + 1), Rank(pos_max - pos_cost + 1, pos_max + 1)


def attribute_detail(fid: Rank, pos: Rank) -> dict:
    return {
        "attributeRankingOrderScore": fid.local_score(),
        "queryWordDistanceScore": pos.local_score(),
        "_ranks": [fid, pos],
    }


def attribute_rule_detail(rule: str, fid: Rank, pos: Rank) -> dict:
    """The details of one of the ATTRIBUTE_RULES from the two ranks they are made of."""
    if rule == "attribute":
        return attribute_detail(fid, pos)
    return {"_ranks": [fid if rule == "attributeRank" else pos]}


def exact_match_type(ids: list[int], qpos: list[int], exact_occs: list, field_word_counts: dict) -> str:
    """milli's ExactAttribute rule for one document. Per kept term, in query order: its
    term id, its query position, and the packed (`fid << PACK_BITS | pos`) occurrences of
    the query word itself in the searchable fields, or None when the rule ignores the
    term (a stop word, or a word the document matched with typos only; milli also
    ignores a word in no document, which would tie the answer to what a shard holds).

    The terms left must start the query without a hole; each word must stand at its
    query position (bucketed) in some field, and one field must hold them all:
    `matchesStart`, or `exactMatch` when that field has that many words."""
    ex = [(i, q, o) for i, q, o in zip(ids, qpos, exact_occs) if o is not None]
    if not ex or ex[0][0] != 0:
        return "noExactMatch"
    prev = 0
    for i, _, _ in ex:
        if i - prev > 1:
            return "noExactMatch"
        prev = i
    fields: set | None = None
    for _, q, occs in ex:
        qb = bucketed_position(q)
        if not any(bucketed_position(o & _PACK_MASK) == qb for o in occs):
            return "noExactMatch"
        fs = {o >> PACK_BITS for o in occs}
        fields = fs if fields is None else fields & fs
        if not fields:
            return "noExactMatch"
    n = len(ex)
    return "exactMatch" if any(field_word_counts.get(f) == n for f in fields or ()) else "matchesStart"


def exactness_detail(
    ids: list[int], terms: list[QueryTerm], hits: list[TermHit], ruled: list[bool], field_word_counts: dict
) -> dict:
    """The exactness detail from the kept terms' ids and TermHits; `ruled[i]`: the
    ExactAttribute rule considers term i (see exact_match_type)."""
    occs = [[f << PACK_BITS | p for f, p in h.exact_occ] if ok else None for h, ok in zip(hits, ruled)]
    match_type = exact_match_type(ids, [t.index for t in terms], occs, field_word_counts)
    return exactness_from_match(match_type, sum(1 for h in hits if h.exact_occ), len(hits))


def exactness_from_match(match_type: str, exact_words: int, k: int) -> dict:
    attr_rank = Rank({"exactMatch": 3, "matchesStart": 2, "noExactMatch": 1}[match_type], 3)
    words_rank = Rank(exact_words + 1, k + 1)
    out = {"matchType": match_type, "_ranks": [attr_rank, words_rank]}
    if match_type == "noExactMatch":
        out["matchingWords"] = exact_words
        out["maxMatchingWords"] = k
        out["score"] = global_score([attr_rank, words_rank])
    else:
        out["score"] = attr_rank.local_score()
    return out


def sort_entry(doc: dict, field_name: str | tuple[float, float], ascending: bool) -> dict:
    """One `field:asc|desc` detail: the value that decided the order (null when missing).
    A geo criterion (`field_name` is its target point) gives milli's point and distance."""
    if isinstance(field_name, tuple):
        pt = geo.point_of(doc)
        if pt is None:
            return {"value": None, "distance": None}
        return {"value": {"lat": pt[0], "lng": pt[1]}, "distance": geo.distance_m(field_name, pt)}
    value = field_value(doc, field_name)
    return {"value": decisive_value(value, ascending)}


def decisive_value(value, ascending: bool):
    if value is MISSING or value is None:
        return None
    if isinstance(value, list):
        nums = [v for v in _flat(value) if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if nums:
            return min(nums) if ascending else max(nums)
        strs = [v for v in _flat(value) if isinstance(v, str)]
        if strs:
            return (min if ascending else max)(strs, key=str.lower)
        return None
    if isinstance(value, (bool, dict)):
        return None
    return value


def _flat(value):
    for v in value:
        if isinstance(v, list):
            yield from _flat(v)
        else:
            yield v


def rule_key(name: str, detail: dict, ascending: bool | None = None):
    """Comparison key of one emitted detail; smaller sorts first (better)."""
    if ascending is not None:
        if "distance" in detail:  # geo: nearest (asc) or farthest (desc) first, no point last
            d = detail["distance"]
            return (1, 0.0) if d is None else (0, d if ascending else -d)
        return sort_key(detail["value"], ascending)
    return -detail["score"]


def finish_detail(order: int, detail: dict) -> dict:
    """Public shape of a rule detail: order first, rule fields, score last (like milli)."""
    out = {"order": order}
    for k, v in detail.items():
        if k not in ("_ranks", "score"):
            out[k] = v
    if "score" in detail:
        out["score"] = detail["score"]
    return out


def with_score(detail: dict) -> dict:
    """Attach the rule's public score computed from its ranks, unless already set."""
    if "score" not in detail and "_ranks" in detail:
        detail["score"] = global_score(detail["_ranks"])
    return detail


def parse_custom_rule(rule: str) -> tuple[str, bool] | None:
    """`price:asc` -> ("price", True); None for the built-in rules."""
    if rule in TEXT_RULES or rule == "sort":
        return None
    name, _, direction = rule.rpartition(":")
    if direction == "asc":
        return name, True
    if direction == "desc":
        return name, False
    return None
