"""Facet values for the devnode: distribution, numeric stats, facet search.

Meilisearch counts facet strings case-insensitively and shows the casing of the first
value it met (here: first in internal-id order); numbers are counted as numbers; a
document counts once per distinct value. Pure module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from miroir.core.filter import values_at


def facet_keys(value) -> list:
    """Normalized facet keys of one field value: ("n", number) or ("s", lowercased string)."""
    out = []
    if isinstance(value, list):
        for v in value:
            out.extend(facet_keys(v))
        return out
    if isinstance(value, bool):
        return [("s", "true" if value else "false")]
    if isinstance(value, (int, float)):
        return [("n", float(value))]
    if isinstance(value, str):
        return [("s", value.lower())]
    return out


def _display(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        f = float(value)
        return str(int(f)) if f.is_integer() else repr(f)
    return value


def _originals(value) -> list:
    if isinstance(value, list):
        out = []
        for v in value:
            out.extend(_originals(v))
        return out
    if isinstance(value, (bool, int, float, str)):
        return [value]
    return []


@dataclass
class FacetIndex:
    """One field's facet values per document, built on first use after a write."""

    per_doc: dict = field(default_factory=dict)  # iid -> tuple of distinct keys
    display: dict = field(default_factory=dict)  # key -> shown text (first casing seen)
    by_key: dict = field(default_factory=dict)  # key -> set of iids

    @classmethod
    def build(cls, name: str, docs: dict) -> FacetIndex:
        idx = cls()
        for iid in sorted(docs):
            keys = []
            for orig in _originals(values_at(docs[iid], name)):
                k = facet_keys(orig)[0]
                if k not in idx.display:
                    idx.display[k] = _display(orig)
                keys.append(k)
            if keys:
                distinct = idx.per_doc[iid] = tuple(dict.fromkeys(keys))
                for k in distinct:
                    ids = idx.by_key.get(k)
                    if ids is None:
                        idx.by_key[k] = {iid}
                    else:
                        ids.add(iid)
        return idx


def count(index: FacetIndex, candidates, everything: bool = False) -> tuple[dict, float | None, float | None]:
    """Value -> number of `candidates` holding it, and the numeric min/max. `everything`
    says the candidates are all the documents of the index."""
    if everything or len(index.by_key) * 2 < len(candidates):
        return _count_by_value(index, candidates, everything)
    counts: dict = {}
    lo = hi = None
    per_doc = index.per_doc
    for iid in candidates:
        keys = per_doc.get(iid)
        if not keys:
            continue
        for k in keys:
            counts[k] = counts.get(k, 0) + 1
            if k[0] == "n":
                v = k[1]
                if lo is None or v < lo:
                    lo = v
                if hi is None or v > hi:
                    hi = v
    return counts, lo, hi


def _count_by_value(index: FacetIndex, candidates, everything: bool) -> tuple[dict, float | None, float | None]:
    """count() value by value: one set intersection per value instead of a dict update
    per candidate and value (the same counts)."""
    counts: dict = {}
    cset = None if everything else (candidates if isinstance(candidates, (set, frozenset)) else set(candidates))
    for k, ids in index.by_key.items():
        n = len(ids) if cset is None else len(ids & cset)
        if n:
            counts[k] = n
    lo = hi = None
    for k in counts:
        if k[0] == "n":
            v = k[1]
            if lo is None or v < lo:
                lo = v
            if hi is None or v > hi:
                hi = v
    return counts, lo, hi


def _ordered(counts: dict, order: str) -> list:
    alpha = sorted(counts)  # numbers ("n") before strings ("s"), each in natural order
    if order == "count":
        return sorted(alpha, key=lambda k: -counts[k])  # stable: ties stay alphabetical
    return alpha


def distribution(counts: dict, display: dict, order: str, max_values: int) -> dict:
    return {display[k]: counts[k] for k in _ordered(counts, order)[:max_values]}


def search_values(counts: dict, display: dict, matches: Callable[[str], bool] | None, order: str, max_values: int) -> list[dict]:
    """Facet search: the values `matches` accepts (every value when None)."""
    hits = []
    for k in _ordered(counts, order):
        shown = display[k]
        if matches is not None and not matches(shown):
            continue
        hits.append({"value": shown, "count": counts[k]})
        if len(hits) >= max_values:
            break
    return hits
