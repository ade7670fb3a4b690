"""Set-at-a-time filtering for the devnode: a parsed filter evaluated on sets of internal ids.

The filter module (miroir.core.filter) compiles a filter into a per-document predicate;
calling it on every candidate is what made filtered searches slow. Here the parse tree is
walked with sets: `AND` narrows, `OR` unites, negations (`NOT`, `!=`, `NOT IN`, `NOT
EXISTS`…) take the complement within the current universe, and each positive leaf gives
the set of ALL documents it matches, computed once per index version:

- `attr = v` / `attr IN [...]` on a top-level attribute through a `ValueIndex` (value ->
  ids), keyed exactly like the filter module compares (trimmed lowercase strings,
  booleans as "true"/"false", numbers numerically);
- every other leaf (ranges, EXISTS, IS NULL, IS EMPTY, geo, dotted names) by running the
  filter module's own predicate over all documents.

A small universe is filtered with the predicate directly (cheaper than building a leaf
set for all documents). Both roads give the same documents: the predicate is the
definition. Pure module.
"""

from __future__ import annotations

from collections.abc import Callable

from miroir.core import filter as f

# Below this many candidates, calling the predicate per document beats building (and
# caching) all-document sets for leaves not seen yet.
PREDICATE_UNIVERSE = 512
# Bound on the ids held by the cached all-document leaf sets of one index version (a
# few tens of MB); past it the cache starts over.
MAX_CACHED_IDS = 2_000_000

# The filter evaluator's own value rules, so that sets and predicates agree.
_normalize = f._normalize
_parse_number = f._parse_number


class ValueIndex:
    """One top-level attribute's filter values -> internal ids, as `=`/`IN` see them."""

    __slots__ = ("strings", "numbers")

    def __init__(self) -> None:
        self.strings: dict[str, set[int]] = {}
        self.numbers: dict[float, set[int]] = {}

    @classmethod
    def build(cls, attr: str, docs: dict[int, dict]) -> ValueIndex:
        idx = cls()
        strings, numbers = idx.strings, idx.numbers
        missing = object()

        def add(v, iid: int) -> None:
            t = type(v)
            if t is str:
                key = _normalize(v)
                s = strings.get(key)
                if s is None:
                    strings[key] = {iid}
                else:
                    s.add(iid)
            elif t is int or t is float:
                s = numbers.get(v)
                if s is None:
                    numbers[v] = {iid}
                else:
                    s.add(iid)
            elif t is bool:
                add("true" if v else "false", iid)
            elif t is list:
                for x in v:
                    add(x, iid)

        norm = _normalize
        for iid, doc in docs.items():
            v = doc.get(attr, missing)
            if type(v) is str:  # the common case, inline
                key = norm(v)
                s = strings.get(key)
                if s is None:
                    strings[key] = {iid}
                else:
                    s.add(iid)
            elif v is not missing:
                add(v, iid)
        return idx

    def equal(self, value: str) -> set[int]:
        out: set[int] = set()
        s = self.strings.get(_normalize(value))
        if s:
            out |= s
        num = _parse_number(value)
        if num is not None:
            s = self.numbers.get(num)
            if s:
                out |= s
        return out


class FilterSets:
    """Evaluates parsed filters on id sets for one index version (drop it on write)."""

    def __init__(self, docs: dict[int, dict], vector_ids: Callable[[f.VectorExists], set[int]] | None = None):
        self.docs = docs
        # `_vectors` filters read the vector store (live: never cached here)
        self.vector_ids = vector_ids
        self._all: set[int] | None = None
        self._values: dict[str, ValueIndex] = {}
        self._leaves: dict[object, set[int]] = {}
        self._cached_ids = 0

    def all_ids(self) -> set[int]:
        if self._all is None:
            self._all = set(self.docs)
        return self._all

    def select(self, expr, candidates: list[int] | None) -> list[int]:
        """The ids of `candidates` (sorted; None = every document) matching `expr`, sorted."""
        docs = self.docs
        if candidates is not None and len(candidates) <= PREDICATE_UNIVERSE and f.vector_filter_position(expr) is None:
            pred = f.compile_filter(expr)
            return [i for i in candidates if pred(docs[i])]
        universe = self.all_ids() if candidates is None else set(candidates)
        out = self._eval(expr, universe)
        if len(out) == len(universe):
            return list(docs) if candidates is None else candidates
        return sorted(out)

    def _eval(self, expr, u: set[int]) -> set[int]:
        t = type(expr)
        if t is f.And:
            for item in expr.items:
                u = self._eval(item, u)
                if not u:
                    break
            return u
        if t is f.Or:
            out: set[int] = set()
            for item in expr.items:
                out |= self._eval(item, u)
            return out
        if t is f.Not:
            return u - self._eval(expr.item, u)
        if t is f.Compare and expr.op == "!=":
            return u - self._eval(f.Compare(expr.attr, "=", expr.value), u)
        negated = getattr(expr, "negated", False)
        if negated:
            return u - self._eval(type(expr)(**{**_fields(expr), "negated": False}), u)
        if t is f.VectorExists:
            if self.vector_ids is None:
                raise TypeError("this index has no vector store")
            return u & self.vector_ids(expr)
        if len(u) <= PREDICATE_UNIVERSE and expr not in self._leaves:
            pred = f.compile_filter(expr)
            docs = self.docs
            return {i for i in u if pred(docs[i])}
        full = self._leaf(expr)
        return full & u if len(u) < len(self.docs) else full

    def _leaf(self, expr) -> set[int]:
        """Every document matching the positive leaf `expr`."""
        got = self._leaves.get(expr)
        if got is not None:
            return got
        t = type(expr)
        if ((t is f.Compare and expr.op == "=") or t is f.In) and "." not in expr.attr:
            idx = self._value_index(expr.attr)
            if t is f.Compare:
                got = idx.equal(expr.value)
            else:
                got = set()
                for v in expr.values:
                    got |= idx.equal(v)
        else:
            pred: Callable[[dict], bool] = f.compile_filter(expr)
            got = {i for i, d in self.docs.items() if pred(d)}
        if self._cached_ids + len(got) > MAX_CACHED_IDS:
            self._leaves.clear()
            self._cached_ids = 0
        self._leaves[expr] = got
        self._cached_ids += len(got)
        return got

    def _value_index(self, attr: str) -> ValueIndex:
        idx = self._values.get(attr)
        if idx is None:
            idx = self._values[attr] = ValueIndex.build(attr, self.docs)
        return idx


def _fields(expr) -> dict:
    return {name: getattr(expr, name) for name in expr.__struct_fields__}
