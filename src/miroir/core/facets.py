"""Merging facet answers from the nodes of a covering set (design §6).

Every document lives on exactly one answering node (the `_miroir_shard IN` filter sees
to it), so a value's count over the index is the sum of the nodes' counts. That sum is
exact only if no node cut the value off; ``distribution_is_exact`` tells.

Value order (``sortFacetValuesBy``), as one Meilisearch node orders them:
- ``alpha``: values that are numbers first, in numeric order (Meilisearch keeps number
  facets apart from string facets and lists them first), then strings by their
  lower-cased form (Meilisearch's normalized facet value), then by the value itself so
  the order is total.
- ``count``: count descending, ties in ``alpha`` order.
The per-facet setting is ``sortFacetValuesBy[facet]``, else ``sortFacetValuesBy["*"]``,
else ``alpha``.

Pure module: no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

DEFAULT_MAX_VALUES_PER_FACET = 100


# First characters with which ``float()`` cannot parse a string (after its leading
# whitespace): every printable ASCII character but digits, signs, ".", and the "i"/"n"
# of inf/nan. Most facet values start with one, and skip the failing float() call (an
# exception is the dearest part of the key).
_NOT_A_NUMBER_START = frozenset(chr(c) for c in range(33, 127)) - frozenset("0123456789+-.iInN")


def facet_leaves(doc: Any, path: str) -> list:
    """The leaf values a facet on the dotted `path` reads in `doc`, as milli's permissive
    pointer visits them: through flat keys (`"a.b"`) and nested objects (`a: {b}`)
    alike, and through arrays of objects; array values one by one."""
    out: list = []
    _visit(doc, path, out)
    return out


def _visit(obj: Any, path: str, out: list) -> None:
    if isinstance(obj, list):
        for item in obj:
            _visit(item, path, out)
        return
    if not isinstance(obj, Mapping):
        return
    for key, value in obj.items():
        if key == path:
            _leaves(value, out)
        elif path.startswith(key) and path[len(key):len(key) + 1] == ".":
            _visit(value, path[len(key) + 1:], out)


def _leaves(value: Any, out: list) -> None:
    if isinstance(value, list):
        for v in value:
            if isinstance(v, (bool, int, float, str)):
                out.append(v)
    elif isinstance(value, (bool, int, float, str)):
        out.append(value)


def _alpha_key(value: str) -> tuple:
    if value[:1] in _NOT_A_NUMBER_START:
        return (1, value.lower(), value)
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isnan(number) and not math.isinf(number):
        return (0, number, value)
    return (1, value.lower(), value)


class _Counts:
    """Counts per facet value, case-insensitively like Meilisearch (which counts the
    normalized value): "Drama" on one node and "drama" on another are one value, shown
    with the casing met first (first node in covering-set order)."""

    __slots__ = ("counts", "display")

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.display: dict[str, str] = {}

    def add(self, value: str, count: int) -> None:
        norm = value.lower()
        if norm in self.counts:
            self.counts[norm] += count
        else:
            self.counts[norm] = count
            self.display[norm] = value

    def shown(self) -> dict[str, int]:
        return {self.display[k]: c for k, c in self.counts.items()}


def facet_order(sort_facet_values_by: Mapping[str, str] | None, facet: str) -> str:
    """``"alpha"`` or ``"count"`` for one facet, per the index's faceting setting."""
    table = sort_facet_values_by or {}
    return table.get(facet) or table.get("*") or "alpha"


def order_values(counts: Mapping[str, int], order: str, max_values: int | None) -> dict[str, int]:
    """Counts in Meilisearch's order for ``order``, cut to ``max_values``."""
    # Every key ends with the value itself, so keys are unique and sorting the
    # decorated tuples gives the order a key function would.
    if order == "count":
        decorated = sorted([(-c, _alpha_key(v), v, c) for v, c in counts.items()])
    else:
        decorated = sorted([(_alpha_key(v), v, c) for v, c in counts.items()])
    if max_values is not None:
        decorated = decorated[:max_values]
    return {t[-2]: t[-1] for t in decorated}


def merge_facet_distribution(
    distributions: Iterable[Mapping[str, Mapping[str, int]] | None],
    *,
    sort_facet_values_by: Mapping[str, str] | None,
    max_values_per_facet: int | None,
) -> dict[str, dict[str, int]]:
    """Sum ``facetDistribution`` objects per facet and value, then order and cut.

    Facets are listed by name, as Meilisearch lists them (a node lists only the fields
    its documents brought, so a facet may come from some nodes only).
    """
    # _Counts.add inlined: normalized value -> count, and -> the casing met first.
    summed: dict[str, tuple[dict[str, int], dict[str, str]]] = {}
    for dist in distributions:
        if not dist:
            continue
        for facet, values in dist.items():
            acc = summed.get(facet)
            if acc is None:
                acc = summed[facet] = ({}, {})
            counts, display = acc
            for value, count in values.items():
                norm = value.lower()
                if norm in counts:
                    counts[norm] += count
                else:
                    counts[norm] = count
                    display[norm] = value
    return {
        facet: order_values(
            {display[k]: c for k, c in counts.items()}, facet_order(sort_facet_values_by, facet), max_values_per_facet
        )
        for facet, (counts, display) in sorted(summed.items())
    }


def merge_facet_stats(stats: Iterable[Mapping[str, Mapping[str, float]] | None]) -> dict[str, dict[str, float]]:
    """``facetStats``: min of the nodes' mins, max of their maxes, per facet."""
    out: dict[str, dict[str, float]] = {}
    for node_stats in stats:
        for facet, s in (node_stats or {}).items():
            cur = out.get(facet)
            if cur is None:
                out[facet] = {"min": s["min"], "max": s["max"]}
            else:
                cur["min"] = min(cur["min"], s["min"])
                cur["max"] = max(cur["max"], s["max"])
    return dict(sorted(out.items()))


def distribution_is_exact(
    distributions: Iterable[Mapping[str, Mapping[str, int]] | None], node_max_values_per_facet: int
) -> bool:
    """True when no node hit its own cap for any facet, so the sums are exact counts."""
    return all(len(values) < node_max_values_per_facet for dist in distributions for values in (dist or {}).values())


def merge_facet_search(
    responses: Iterable[Mapping],
    *,
    facet_query: str | None,
    order: str = "alpha",
    max_values: int | None = DEFAULT_MAX_VALUES_PER_FACET,
    processing_time_ms: int = 0,
) -> dict:
    """POST /facet-search: sum ``facetHits`` counts per value across nodes.

    ``order`` is the facet's ``sortFacetValuesBy`` (``facet_order(...)``): Meilisearch's
    facet search lists values in that order, and cuts them to ``maxValuesPerFacet``.
    """
    acc = _Counts()
    for resp in responses:
        for hit in resp.get("facetHits") or ():
            acc.add(hit["value"], hit["count"])
    ordered = order_values(acc.shown(), order, max_values)
    return {
        "facetHits": [{"value": v, "count": c} for v, c in ordered.items()],
        "facetQuery": facet_query,
        "processingTimeMs": processing_time_ms,
    }
