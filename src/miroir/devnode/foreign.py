"""The devnode's document join (core/foreign.py): every index it joins is its own, so a
foreign filter reads the foreign index's documents here and hydration looks ids up here."""

from __future__ import annotations

from typing import Any

from miroir.core import filter as filter_mod, foreign as core
from miroir.core.errors import MeiliError, index_not_found


def resolve(indexes: dict, uid: str, params: dict) -> dict:
    """`params` with each `_foreign(field, <filter>)` of its filter replaced by
    `"field" IN [ids]` (core.rewritten); unchanged without foreign filter or feature."""
    entry = indexes.get(uid)
    value = params.get("filter")
    if entry is None or value is None or "_foreign" not in str(value) or not core.enabled(entry.engine.features):
        return params
    expr = filter_mod.route_filter(value, "invalid_search_filter", entry.engine.features)
    nodes = core.plan(expr, uid, core.keys_of(entry.engine.settings))
    if not nodes:
        return params
    ids: dict[int, list[str]] = {}
    per_index: dict[str, set[str]] = {}
    for node, f_uid in nodes:
        target = indexes.get(f_uid)
        if target is None:
            raise core.inner_error(f_uid, index_not_found(f_uid))
        engine = target.engine
        try:
            filter_mod.check_filterable(node.item, engine.settings["filterableAttributes"])
            matches = filter_mod.compile_filter(node.item)
        except MeiliError as e:
            raise core.inner_error(f_uid, e) from None
        pk = engine.primary_key
        got = [str(doc[pk]) for doc in engine.documents() if pk in doc and matches(doc)]
        ids[id(node)] = got
        seen = per_index.setdefault(f_uid, set())
        seen.update(got)
        core.check_count(f_uid, len(seen))
    assert expr is not None
    return {**params, "filter": core.rewritten(expr, ids)}


def hydrate(indexes: dict, uid: str, hits: list[dict]) -> None:
    """Replace, in place, the hits' foreign-key values by the foreign documents."""
    entry = indexes.get(uid)
    if entry is None or not hits or not core.enabled(entry.engine.features):
        return
    keys = core.keys_of(entry.engine.settings)
    if not keys:
        return
    found: dict[str, dict[str, Any]] = {}
    for f_uid, wanted in core.wanted_ids(hits, keys).items():
        target = indexes.get(f_uid)
        if target is None:
            raise index_not_found(f_uid)
        docs: dict[str, Any] = {}
        for doc_id in wanted:
            try:
                docs[doc_id] = target.engine.get_document(doc_id)
            except MeiliError:
                continue  # no such document: 1.50 shows `{}`
        found[f_uid] = docs
    core.hydrate(hits, keys, found)
