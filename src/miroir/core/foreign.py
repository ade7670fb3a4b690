"""1.50's document join (`foreignKeys` index setting, `foreign_keys` experimental feature).
Pure module, shared by the devnode and Miroir.

An index's `foreignKeys` (`[{"foreignIndexUid", "fieldName"}]`) names fields holding ids of
another index's documents. With the feature on, two things follow:

- a filter may hold `_foreign(field, <filter>)`: <filter> runs on the foreign index and the
  node stands for `"field" IN [ids it matched]` (`plan` lists them and checks them as 1.50
  does; `rewritten` gives the filter then run, re-serialized as 1.50 does, so an error of
  the rewritten filter quotes `"field" IN ["a1"]`);
- each hit's foreign-key values (and the same values in `_formatted`) are replaced by the
  foreign document, its displayed fields (`{}` for an id no document has; a value that is
  no document id stays): `hydrate`.

Where the join runs, the caller fetches: the devnode from its own indexes, Miroir through
its read path (the foreign index is sharded too).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from miroir.core.documents import valid_document_id
from miroir.core.errors import MeiliError
from miroir.core.filter import Expr, Foreign, foreign_filters, index_filter_string, replace_foreign

# 1.50 refuses a foreign filter matching more documents than this (per foreign index).
MAX_FOREIGN_IDS = 100


def enabled(features: Mapping[str, Any] | Iterable[str]) -> bool:
    if isinstance(features, Mapping):
        return bool(features.get("foreignKeys"))
    return "foreignKeys" in features


def keys_of(settings: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(fieldName, foreignIndexUid) of an index's `foreignKeys` setting."""
    out = []
    for fk in settings.get("foreignKeys") or ():
        if isinstance(fk, dict):
            out.append((str(fk.get("fieldName")), str(fk.get("foreignIndexUid"))))
    return out


class JoinError(MeiliError):
    """An error of the join itself: a federated search answers it without naming the
    query (1.50 evaluates every query's foreign filters before it runs any query)."""


def _search_filter_error(uid: str, text: str) -> JoinError:
    return JoinError("invalid_search_filter", f"Index `{uid}`: {text}")


def plan(expr: Expr | None, uid: str, keys: Sequence[tuple[str, str]]) -> list[tuple[Foreign, str]]:
    """Each foreign filter of index `uid`'s filter with the index it runs on, in 1.50's
    order; its errors (a field no foreign key names, a foreign filter inside another)."""
    out = []
    for node in foreign_filters(expr):
        target = next((f_uid for field, f_uid in keys if field == node.attr), None)
        if target is None:
            raise _search_filter_error(uid, f"Field `{node.attr}` is not a foreign key")
        if foreign_filters(node.item):
            raise _search_filter_error(uid, "Nested foreign filters are not supported")
        out.append((node, target))
    return out


def inner_error(foreign_uid: str, err: MeiliError) -> JoinError:
    """An error of a foreign filter's inner filter, as 1.50 answers it: milli's, on the
    foreign index (`invalid_document_filter`, its uid before the text)."""
    if err.code == "index_not_found":
        return JoinError(err.code, err.message, status=err.status, type=err.type)
    text = err.message if err.message.startswith("Index `") else f"Index `{foreign_uid}`: {err.message}"
    return JoinError("invalid_document_filter", text)


def check_count(foreign_uid: str, count: int) -> None:
    if count > MAX_FOREIGN_IDS:
        raise _search_filter_error(
            foreign_uid,
            "Foreign filter is retrieving too many documents, foreign filters can't retrieve more "
            f"than {MAX_FOREIGN_IDS} documents per index",
        )


def inner_filter(node: Foreign) -> str:
    """The text a foreign filter's inner filter is run with on the foreign index."""
    return index_filter_string(node.item)


def rewritten(expr: Expr, ids: Mapping[int, Sequence[str]]) -> str:
    """The filter once each foreign filter (keyed by id(node)) is `"field" IN [ids]`, as
    1.50 re-serializes it before the search runs it."""
    return index_filter_string(replace_foreign(expr, ids))


# --------------------------------------------------------------------------- hydration


def _doc_id(value: Any) -> str | None:
    """The document id a foreign-key value names (1.50's ExternalDocumentId), else None."""
    if isinstance(value, str | int) and valid_document_id(value):
        return value if isinstance(value, str) else str(value)
    return None


def _leaves(value: Any, fn: Callable[[Any], Any]) -> Any:
    if isinstance(value, dict):
        return {k: _leaves(v, fn) for k, v in value.items()}
    if isinstance(value, list):
        return [_leaves(v, fn) for v in value]
    return fn(value)


def _map_field(obj: dict[str, Any], field: str, prefix: str, fn: Callable[[Any], Any]) -> None:
    """Replace every leaf value under `field` (a dotted path) of obj with fn(leaf);
    arrays are walked, as permissive-json-pointer's map_leaf_values does."""
    for key, value in list(obj.items()):
        path = prefix + key
        if path == field or path.startswith(field + "."):
            obj[key] = _leaves(value, fn)
        elif field.startswith(path + "."):
            for inner in value if isinstance(value, list) else [value]:
                if isinstance(inner, dict):
                    _map_field(inner, field, path + ".", fn)


def wanted_ids(hits: Iterable[dict[str, Any]], keys: Sequence[tuple[str, str]]) -> dict[str, set[str]]:
    """foreign index uid -> the ids the hits' foreign-key fields name (documents only:
    `_formatted` holds the same values)."""
    out: dict[str, set[str]] = {}
    for hit in hits:
        for field, f_uid in keys:

            def note(value: Any, f_uid: str = f_uid) -> Any:
                doc_id = _doc_id(value)
                if doc_id is not None:
                    out.setdefault(f_uid, set()).add(doc_id)
                return value

            _map_field(dict(hit), field, "", note)
    return out


def hydrate(
    hits: Iterable[dict[str, Any]], keys: Sequence[tuple[str, str]], found: Mapping[str, Mapping[str, dict[str, Any]]]
) -> None:
    """Replace, in place, each hit's foreign-key values (in the hit and its `_formatted`)
    with the foreign document found[foreign uid][id]; `{}` when no document has the id."""
    for hit in hits:
        for field, f_uid in keys:
            docs = found.get(f_uid, {})

            def swap(value: Any, docs: Mapping[str, dict[str, Any]] = docs) -> Any:
                doc_id = _doc_id(value)
                if doc_id is None:
                    return value
                doc = docs.get(doc_id)
                return dict(doc) if doc is not None else {}

            _map_field(hit, field, "", swap)
            formatted = hit.get("_formatted")
            if isinstance(formatted, dict):
                _map_field(formatted, field, "", swap)
