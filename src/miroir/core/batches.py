"""A write batch, planned: which documents (or ids) go to which node, and whether the
owners that can take it (before sending) or took it (after) meet the write consistency
rule (design §4.5). Pure module: no I/O.

The engine validates and plans the whole batch here *before* touching any node, so one
bad document rejects the batch and no node ever sees part of it.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping, Sequence
from typing import Any, Literal

import msgspec

from miroir.core.documents import ID_PATTERN, MAX_INT, MIN_INT, document_id, narrow_numbers
from miroir.core.errors import MeiliError
from miroir.core.routing import shard_for_key, shard_for_text
from miroir.core.settings import RESERVED_PREFIX, SHARD_FIELD

# shard -> group -> owners of that shard in that group (every copy a write must reach)
Targets = Mapping[int, Mapping[str, Sequence[str]]]
Doc = dict[str, Any]  # a decoded JSON document


def reserved_field(field: str, doc: Doc) -> MeiliError:
    return MeiliError(
        "miroir_reserved_field",
        f"Document field `{field}` is reserved by Miroir (fields starting with `{RESERVED_PREFIX}` cannot be "
        f"stored): `{msgspec.json.encode(doc).decode()[:200]}`.",
    )


class Routed(msgspec.Struct):
    """A batch planned per node. `items[node]` keeps the batch order (last write wins)."""

    items: dict[str, list[Any]]
    shards: list[int]  # the shards the batch touches, sorted


def document_shards(docs: Sequence[Doc], primary_key: str, shards: int) -> list[int]:
    """Validate every document and return its shard, in order; the documents are not
    modified. Raises the first problem (missing/invalid id, reserved field)."""
    return plan_documents(docs, primary_key, shards, flat=False)[0]


def plan_documents(
    docs: Sequence[Doc], primary_key: str, shards: int, *, flat: bool
) -> tuple[list[int], Sequence[Doc]]:
    """(shard of each document, the documents that show the batch's attributes), in one
    pass; raises the first problem (reserved field, then missing/invalid id).

    Field names are checked once per batch, not once per document: a document whose
    names were all seen before (the common case) costs one set comparison. A `flat`
    batch (no object at any depth) has only top-level attribute names, so the documents
    that bring a new name, reduced to their names, list the same attributes in the same
    first-appearance order as the whole batch (what `prepare_batch_fields` records);
    otherwise the documents themselves are returned. Ids of the common kinds (a
    64-bit int, a valid string) are checked and hashed here; any other value goes
    through `document_id`, which accepts it or raises Meilisearch's error.
    """
    checked: set[str] = set()
    sources: list[Doc] = []
    out: list[int] = []
    append = out.append
    valid_text = ID_PATTERN.fullmatch
    top_level = "." not in primary_key
    for doc in docs:
        if not doc.keys() <= checked:
            for field in doc:
                if field.startswith(RESERVED_PREFIX):
                    raise reserved_field(field, doc)
            checked.update(doc)
            if flat:
                sources.append(dict.fromkeys(doc))
        value: Any = doc.get(primary_key) if top_level else None
        cls = value.__class__
        if cls is int and MIN_INT <= value <= MAX_INT:
            append(shard_for_text(str(value), shards))
        elif cls is str and valid_text(value) is not None:
            append(shard_for_text(value, shards))
        else:
            append(shard_for_key(document_id(doc, primary_key), shards))
    return out, (sources if flat else docs)


def inject_shards(docs: Sequence[Doc], doc_shards: Sequence[int]) -> list[tuple[int, Doc]]:
    """Add `_miroir_shard` to each (validated) document IN PLACE; (shard, document) pairs.

    The write path owns the decoded batch, so it injects rather than copies (a 50 MB batch
    would otherwise live twice); call it only once nothing needs the documents as sent.
    """
    for doc, shard in zip(docs, doc_shards):
        doc[SHARD_FIELD] = shard
    return list(zip(doc_shards, docs))


def shard_documents(docs: Sequence[Doc], primary_key: str, shards: int) -> list[tuple[int, Doc]]:
    """Validate every document and return (shard, document with `_miroir_shard`) in order.

    Raises the first problem (missing/invalid id, reserved field) for the whole batch.
    The input documents are not modified (see `inject_shards` for the in-place variant).
    """
    return [(s, {**doc, SHARD_FIELD: s}) for doc, s in zip(docs, document_shards(docs, primary_key, shards))]


def shard_ids(ids: Iterable[Any], shards: int) -> list[tuple[int, Any]]:
    """Document ids of a delete -> (shard, id). Ids that cannot exist are still routed
    (shard of their text) so the nodes answer exactly as Meilisearch would."""
    out: list[tuple[int, Any]] = []
    for value in ids:
        if not isinstance(value, str):
            # An integer past i64/u64 is an f64 to serde_json, whose text Meilisearch then
            # matches; msgpack (the journal's hints) could not hold the Python int anyway.
            try:
                value = narrow_numbers(value)
            except OverflowError:
                value = str(value)
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            text = msgspec.json.encode(value).decode()
        else:
            text = str(value)
        out.append((shard_for_key(text, shards), value))
    return out


def inject_and_route(docs: Sequence[Doc], doc_shards: Sequence[int], targets: Targets) -> Routed:
    """`route(inject_shards(docs, doc_shards), targets)` in one pass: `_miroir_shard`
    added to each (validated) document IN PLACE, the same per-node lists in the same
    order (nodes in order of first use, documents in batch order)."""
    items: dict[str, list[Any]] = {}
    per_shard: dict[int, list[list[Any]]] = {}  # shard -> the node lists it goes to
    for doc, shard in zip(docs, doc_shards):
        doc[SHARD_FIELD] = shard
        lists = per_shard.get(shard)
        if lists is None:
            lists = per_shard[shard] = []
            for owners in targets[shard].values():
                for node in owners:
                    lst = items.get(node)
                    if lst is None:
                        lst = items[node] = []
                    lists.append(lst)
        for lst in lists:
            lst.append(doc)
    return Routed(items=items, shards=sorted(per_shard))


def route(pairs: Sequence[tuple[int, Any]], targets: Targets) -> Routed:
    """(shard, item) pairs -> one list per target node, each in batch order."""
    items: dict[str, list[Any]] = {}
    for shard, item in pairs:
        for owners in targets[shard].values():
            for node in owners:
                items.setdefault(node, []).append(item)
    return Routed(items=items, shards=sorted({s for s, _ in pairs}))


def quorum_size(rf: int) -> int:
    """Acks a group needs for one shard: a strict majority of its RF copies."""
    return rf // 2 + 1


# `cluster.write_consistency` (design §4.5): which owners of a shard must take a write.
#   one       at least one owner (the others get a journaled hint): RF = 2 keeps
#             accepting every write with one node down per group
#   majority  floor(RF/2)+1 owners in at least one group
#   all       every owner in every group
WriteConsistency = Literal["one", "majority", "all"]
CONSISTENCY_LEVELS: tuple[WriteConsistency, ...] = ("one", "majority", "all")


def shard_meets(rule: WriteConsistency, owners: Mapping[str, Sequence[str]], took: Container[str], rf: int) -> bool:
    """Whether the owners in `took` satisfy `rule` for one shard (`owners`: group ->
    owners of the shard in that group)."""
    everyone = [n for group in owners.values() for n in group]
    if not everyone:
        return False
    if rule == "one":
        return any(n in took for n in everyone)
    if rule == "all":
        return all(n in took for n in everyone)
    need = quorum_size(rf)
    return any(group and sum(1 for n in group if n in took) >= need for group in owners.values())


def unmet(
    shards: Iterable[int], targets: Targets, took: Container[str], rf: int, rule: WriteConsistency = "majority"
) -> list[int]:
    """The shards (sorted) whose owners in `took` do not satisfy `rule`.

    The write path asks it twice: before sending, with the owners it can send to (a
    shard listed then refuses the whole request, and nothing is sent), and after, with
    the owners that took the write (a request no owner took is refused)."""
    return [s for s in sorted(shards) if not shard_meets(rule, targets[s], took, rf)]


def missed_owners(shards: Iterable[int], targets: Targets, took: Container[str]) -> dict[str, list[int]]:
    """group -> shards (sorted) of which some owner in that group did not take the
    write: what `X-Miroir-Degraded` names."""
    out: dict[str, list[int]] = {}
    for shard in sorted(shards):
        for group, owners in targets[shard].items():
            if any(n not in took for n in owners):
                out.setdefault(group, []).append(shard)
    return dict(sorted(out.items()))


class Quorum(msgspec.Struct):
    ok: bool  # every shard meets the rule
    degraded: dict[str, list[int]]  # group -> shards of which an owner in that group missed the write
    lost: list[int]  # shards that do not meet the rule


def assess(
    shards: Iterable[int],
    targets: Targets,
    acked: set[str] | frozenset[str],
    rf: int,
    rule: WriteConsistency = "majority",
) -> Quorum:
    """Judge acknowledgements against `rule` (the task fold judges lost node tasks by
    `majority`, its default)."""
    shards = sorted(shards)
    lost = unmet(shards, targets, acked, rf, rule)
    return Quorum(ok=not lost, degraded=missed_owners(shards, targets, acked), lost=lost)


def degraded_header(degraded: Mapping[str, Sequence[int]]) -> str:
    """`X-Miroir-Degraded` value: `groups=g1,g2; shards=g1:3,5 g2:7`."""
    groups = ",".join(degraded)
    per_group = " ".join(f"{g}:{','.join(str(s) for s in shards)}" for g, shards in degraded.items())
    return f"groups={groups}; shards={per_group}"


def _shown(shards: Sequence[int]) -> str:
    return ", ".join(str(s) for s in shards[:20]) + (" ..." if len(shards) > 20 else "")


def no_quorum(lost: Sequence[int], rule: WriteConsistency = "one") -> MeiliError:
    """Refused before anything was sent: too few owners of these shards can take it."""
    return MeiliError(
        "miroir_no_quorum",
        f"The write was refused: write consistency `{rule}` cannot be met for shard(s) {_shown(lost)} "
        "(too few of their owners are up and caught up). Nothing was written; it may be retried.",
    )


def no_owner_took(shards: Sequence[int]) -> MeiliError:
    """Refused after sending: every node refused or could not be reached, so none can
    apply it (a node that may have received it gets a hint instead: engine/writes.py)."""
    return MeiliError(
        "miroir_no_quorum",
        f"The write was refused: no owner of shard(s) {_shown(shards)} accepted it. Nothing was written; it may be "
        "retried.",
    )
