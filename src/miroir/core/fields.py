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

RESERVED_PREFIX = "_miroir_"


def _walk(prefix: str, value: Any, out: dict[str, None]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            path = f"{prefix}.{k}"
            out[path] = None
            _walk(path, v, out)
    elif isinstance(value, list):
        for v in value:
            if isinstance(v, (dict, list)):
                _walk(prefix, v, out)


def batch_fields(docs: Iterable[dict]) -> dict[str, None]:
    """Every attribute path of `docs` (top-level and nested), in first-appearance order,
    without `_miroir_*` (an ordered set: dict keys)."""
    out: dict[str, None] = {}
    top: set[str] = set()
    for doc in docs:
        keys = doc.keys()
        if keys <= top and not any(isinstance(doc[k], (dict, list)) for k in keys):
            continue  # the common case: a flat document with known keys
        for k, v in doc.items():
            if k.startswith(RESERVED_PREFIX):
                continue
            top.add(k)
            out[k] = None
            _walk(k, v, out)
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
    """
    if "*" not in client_searchable:
        return None
    if requested is not None and "*" not in requested:
        kept = [a for a in requested if not a.startswith(RESERVED_PREFIX)]
        return kept if len(kept) != len(requested) else None
    if not seen:
        return None
    return list(seen)
