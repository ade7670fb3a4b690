"""Sort keys for Meilisearch's `sort` and custom `attr:asc|desc` ranking rules.

One definition shared by the devnode (which sorts documents) and Miroir's merge (which
sorts hits from several nodes), so both order values identically. Meilisearch's rules:
numbers come before strings whatever the direction; a document whose field is missing
or null comes last whatever the direction; an array sorts by its smallest value when
ascending and its largest when descending. Pure module.
"""

from __future__ import annotations

from typing import Any

_MISSING = object()


def field_value(doc: dict[str, Any], path: str) -> Any:
    """Value at a dotted path (``a.b.c``), looking through arrays of objects; _MISSING if absent."""
    if path in doc:
        return doc[path]
    cur: Any = doc
    for part in path.split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        else:
            return _MISSING
    return cur


def _scalars(value: Any) -> list[Any]:
    if isinstance(value, list):
        out: list[Any] = []
        for v in value:
            out.extend(_scalars(v))
        return out
    if isinstance(value, bool) or value is None or isinstance(value, dict):
        return []
    if isinstance(value, (int, float, str)):
        return [value]
    return []


def sort_key(value: Any, ascending: bool) -> tuple[Any, ...]:
    """A key such that sorting keys ascending gives Meilisearch's order for this criterion."""
    if value is _MISSING:
        return (2,)
    vals = _scalars(value)
    nums = [v for v in vals if not isinstance(v, str)]
    if nums:
        v = min(nums) if ascending else max(nums)
        return (0, v if ascending else -v)
    strs = [v.lower() for v in vals if isinstance(v, str)]
    if strs:
        s = min(strs) if ascending else max(strs)
        return (1, s) if ascending else (1, _Reversed(s))
    return (2,)


class _Reversed:
    """Wraps a string so that it compares in reverse order."""

    __slots__ = ("s",)

    def __init__(self, s: str):
        self.s = s

    def __lt__(self, other: _Reversed) -> bool:
        return self.s > other.s

    def __gt__(self, other: _Reversed) -> bool:
        return self.s < other.s

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Reversed) and self.s == other.s

    def __hash__(self) -> int:
        return hash(self.s)


MISSING = _MISSING
