"""How a federated search orders two hits of different queries (1.50's weighted scores).

1.50 does not merge federated hits by their global score alone: each hit's ranking
details become a sequence of values, compared in order — a run of consecutive ranking
rules (words, typo, proximity, attribute, exactness) folds into one weighted score
(its local score times the query's weight), a sort rule gives its decisive value, a
geo sort its distance, a vector sort its similarity times the weight. Two hits compare
value by value; values of different kinds (a score against a sort value, ascending
against descending) are incomparable: then the hit with more values left wins, and
if both have as many, the weighted global scores decide.

Here the values are rebuilt from the public `_rankingScoreDetails` (what a node
answers). A run of several rules needs each rule's rank and rank count, which the
details give for `words` and `typo` (and `proximity`, `exactness` from the word
counts); where a rule's count cannot be read back, later rules of its run only break
its ties. A hit with one run (sort first or last, or no sort) takes the exact
`_rankingScore` for it.

Pure module: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

EPSILON = 2.220446049250313e-16  # f64::EPSILON: scores this close are equal
_RANK_RULES = frozenset({"words", "typo", "proximity", "attribute", "attributeRank", "wordPosition", "exactness"})
# A rule whose rank count cannot be read back: its successors in the run only break ties.
_UNKNOWN_MAX = 1 << 40

# A value: ("score", float) | ("sort", asc, value) | ("geo", asc, distance) | ("vector", float)
Value = tuple[Any, ...]


def score_values(hit: Mapping[str, Any], weight: float) -> list[Value]:
    """The weighted values of one hit (see the module docstring), from its
    `_rankingScoreDetails` (absent: one run scored `_rankingScore`)."""
    global_score = float(hit.get("_rankingScore") or 0.0)
    details = hit.get("_rankingScoreDetails")
    if not isinstance(details, Mapping) or not details:
        return [("score", global_score * weight)]
    ordered = sorted(
        ((d.get("order", 0), name, d) for name, d in details.items() if isinstance(d, Mapping)),
        key=lambda t: t[0],
    )
    groups: list[Any] = []
    run: list[tuple[str, Mapping[str, Any]]] = []
    for _, name, d in ordered:
        if name in _RANK_RULES:
            run.append((name, d))
            continue
        if run:
            groups.append(run)
            run = []
        if name == "vectorSort":
            groups.append(("vector", float(d.get("similarity") or 0.0) * weight))
        elif name.endswith(":asc") or name.endswith(":desc"):
            asc = name.endswith(":asc")
            if name.startswith("_geo"):
                groups.append(("geo", asc, d.get("distance")))
            else:
                groups.append(("sort", asc, d.get("value")))
    if run:
        groups.append(run)
    runs = sum(1 for g in groups if isinstance(g, list))
    words = details.get("words") if isinstance(details.get("words"), Mapping) else None
    out: list[Value] = []
    for g in groups:
        if isinstance(g, list):
            score = global_score if runs == 1 else _run_score(g, words)
            out.append(("score", score * weight))
        else:
            out.append(g)
    return out


def _run_score(run: list[tuple[str, Mapping[str, Any]]], words: Mapping[str, Any] | None) -> float:
    """milli's local score of the ranks of `run` merged (Rank::merge folded)."""
    rank, max_rank = 1, 1
    for i, (name, d) in enumerate(run):
        score = float(d.get("score", _score_of(name, d)) or 0.0)
        if i == len(run) - 1:
            return (rank - 1) / max_rank + score / max_rank
        r = _rank_of(name, d, words)
        if r is None:
            r = (round(score * _UNKNOWN_MAX), _UNKNOWN_MAX)
        rank = (rank - 1) * r[1] + r[0]
        max_rank *= r[1]
    return rank / max_rank


def _score_of(name: str, d: Mapping[str, Any]) -> float:
    r = _rank_of(name, d, None)
    return r[0] / r[1] if r else 0.0


def _rank_of(name: str, d: Mapping[str, Any], words: Mapping[str, Any] | None) -> tuple[int, int] | None:
    """(rank, rank count) of one rule, where the details tell them."""
    if name == "words":
        return int(d["matchingWords"]), max(int(d["maxMatchingWords"]), 1)
    if name == "typo":
        top = int(d["maxTypoCount"]) + 1
        return top - int(d["typoCount"]), top
    if name == "proximity" and words is not None:
        top = (max(int(words["matchingWords"]) - 1, 0)) * 3 + 1  # milli: each adjacent pair costs 0..3 (MAX_DISTANCE 4)
        return round(float(d["score"]) * top), top
    if name == "exactness" and "maxMatchingWords" in d:
        k = int(d["maxMatchingWords"]) + 1
        return int(d["matchingWords"]) + 1, 3 * k
    return None


def compare_values(left: Value, right: Value) -> int | None:
    """1 (left first), -1 (right first), 0 (equal) or None (incomparable)."""
    lk, rk = left[0], right[0]
    if lk in ("score", "vector") and rk in ("score", "vector"):
        a, b = left[1], right[1]
        if abs(a - b) <= EPSILON:
            return 0
        return 1 if a > b else -1
    if lk != rk:
        return None
    if left[1] != right[1]:  # ascending against descending
        return None
    if lk == "geo":
        a, b = left[2], right[2]
        if a is None or b is None:
            return 0 if a is b else (-1 if a is None else 1)
        if abs(a - b) <= EPSILON:
            return 0
        return 1 if a > b else -1  # as 1.50 compares them, whatever the direction
    return _compare_sort(left[1], left[2], right[2])


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _compare_sort(asc: bool, a: Any, b: Any) -> int:
    if a is None or b is None:
        return 0 if a is b else (-1 if a is None else 1)
    if _is_number(a) and isinstance(b, str):
        return 1  # numbers before strings
    if isinstance(a, str) and _is_number(b):
        return -1
    if (_is_number(a) and _is_number(b)) or (isinstance(a, str) and isinstance(b, str)):
        order: int = (a > b) - (a < b)
        return -order if asc else order
    return 0


def compare(left: list[Value], left_global: float, right: list[Value], right_global: float) -> int:
    """1.50's comparison of two hits' weighted values: 1 when `left` goes first."""
    n = min(len(left), len(right))
    for i in range(n):
        c = compare_values(left[i], right[i])
        if c is None:
            rest_l, rest_r = len(left) - i - 1, len(right) - i - 1
            if rest_l != rest_r:
                return 1 if rest_l > rest_r else -1
            return (left_global > right_global) - (left_global < right_global)
        if c:
            return c
    return (len(left) > len(right)) - (len(left) < len(right))
