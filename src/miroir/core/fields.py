"""Which document attributes an index has seen, and what a node may search in (pure).

Miroir stores `_miroir_shard` in every document on the nodes. With the client's default
`searchableAttributes: ["*"]` a node would index that number as a word, so `q=7` would
match documents of shard 7; one Meilisearch holding the same documents has no such field.

The fix cannot be a node-side `searchableAttributes` list: since Meilisearch 1.8
(meilisearch/meilisearch#4631) every field weighs the same under `["*"]`, while an
explicit list weighs fields by their position in it, so the attribute rule would rank
differently from one node. Instead the sub-query names the fields to search in:
`attributesToSearchOn` = every attribute path the index has seen except `_miroir_*`.
Under `["*"]` Meilisearch keeps the fields' (equal) weights for a restricted search and
skips names a node does not know yet, so the ranking is the one of an unrestricted search
on one node without the reserved field.

Meilisearch matches `attributesToSearchOn` names exactly against its field ids map, which
holds nested paths (`a.b`) as well as top-level names, so both are recorded.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from miroir.core.patterns import MATCH, is_nested_in, match_pattern

RESERVED_PREFIX = "_miroir_"


# Value types that hold no attribute path. A value of any other type (dict, list, or a
# subclass or a type this module does not know) goes through the generic walk, which
# decides with isinstance as before.
_SCALARS = frozenset({str, int, float, bool, type(None)})


def _walk(prefix: str, value: Any, out: dict[str, None], known: dict[str, set[str]]) -> None:
    """Record the paths under `prefix` (the attribute `value` sits at) into `out`.

    `known[p]` holds the keys already recorded under path `p`, so a nested object whose
    keys were all seen at that path and whose values are all scalars is skipped in one
    set comparison (arrays of similar objects, the same sub-object in every document).
    """
    if isinstance(value, dict):
        seen = known.get(prefix)
        if seen is None:
            seen = known[prefix] = set()
        elif value.keys() <= seen and _SCALARS.issuperset(map(type, value.values())):
            return
        for k, v in value.items():
            path = f"{prefix}.{k}"
            if k not in seen:
                seen.add(k)
                out[path] = None
            if type(v) not in _SCALARS:
                _walk(path, v, out, known)
    elif isinstance(value, list):
        if _SCALARS.issuperset(map(type, value)):
            return  # a list of scalars holds no path
        scalars = _SCALARS
        for v in value:
            if type(v) is dict:
                seen = known.get(prefix)
                if seen is not None and v.keys() <= seen and scalars.issuperset(map(type, v.values())):
                    continue  # an array of similar objects: nothing new in this one
                _walk(prefix, v, out, known)
            elif isinstance(v, (dict, list)):
                _walk(prefix, v, out, known)


def batch_fields(docs: Iterable[dict]) -> dict[str, None]:
    """Every attribute path of `docs` (top-level and nested), in first-appearance order,
    without `_miroir_*` (an ordered set: dict keys).

    First-appearance order is the order of a depth-first walk of the documents in turn:
    an attribute's nested paths come right after it, before the document's next
    attribute. Documents whose values are all scalars or arrays of scalars (the common
    case) cost a few C-level set operations each; only objects, and arrays holding
    objects or arrays, are walked.
    """
    out: dict[str, None] = {}
    top: set[str] = set()  # top-level names already handled (reserved ones included)
    known: dict[str, set[str]] = {}
    scalars = _SCALARS
    for doc in docs:
        types = set(map(type, doc.values()))
        if not types <= scalars:
            if types - scalars == {list} and all(
                scalars.issuperset(map(type, v)) for v in doc.values() if type(v) is list
            ):
                pass  # only arrays of scalars: no nested path, only the names below
            else:
                for k, v in doc.items():
                    if k not in top:
                        top.add(k)
                        if k.startswith(RESERVED_PREFIX):
                            continue
                        out[k] = None
                    elif k.startswith(RESERVED_PREFIX):
                        continue
                    if type(v) not in scalars:
                        _walk(k, v, out, known)
                continue
        if doc.keys() <= top:
            continue
        for k in doc:
            if k not in top:
                top.add(k)
                if not k.startswith(RESERVED_PREFIX):
                    out[k] = None
    return out


def new_fields(seen: Sequence[str], batch: Iterable[str]) -> list[str]:
    """The attributes of `batch` not in `seen`, in `batch` order."""
    known = set(seen)
    return [f for f in batch if f not in known]


def search_on(
    client_searchable: Sequence[str], seen: Sequence[str], requested: Sequence[str] | None
) -> list[str] | None:
    """The `attributesToSearchOn` to send to nodes, or None to leave the request alone.

    Only the client's `["*"]` needs a restriction (an explicit list never names a reserved
    field: the nodes hold it as given). A request that names fields keeps them, minus any
    reserved one; a request for everything (absent, or holding `"*"`) becomes every seen
    field. Nothing seen yet (an index written before fields were tracked): unchanged.

    Under an explicit list, a pattern (`details.*`) becomes the searchable fields it
    matches that the index has seen: Meilisearch accepts a pattern only if one of its
    fields matches it, and a node whose documents lack them would refuse it where one
    Meilisearch holding every document accepts it; a listed name a node lacks is skipped.
    """
    if "*" not in client_searchable:
        return _expand_patterns(client_searchable, seen, requested)
    if requested is not None and "*" not in requested:
        kept = [a for a in requested if not a.startswith(RESERVED_PREFIX)]
        return kept if len(kept) != len(requested) else None
    if not seen:
        return None
    return list(seen)


def _expand_patterns(client_searchable: Sequence[str], seen: Sequence[str], requested: Sequence[str] | None) -> list[str] | None:
    if requested is None or not any("*" in a and a != "*" for a in requested):
        return None
    searchable = [f for f in seen if any(is_nested_in(f, s) for s in client_searchable)]
    out: list[str] = []
    for a in requested:
        matched = [f for f in searchable if match_pattern(a, f) is MATCH] if "*" in a and a != "*" else []
        out.extend(matched or [a])
    return list(dict.fromkeys(out))
