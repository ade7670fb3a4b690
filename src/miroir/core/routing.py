"""Where documents live: shard of a key, owners of a shard (design §3, normative).

Pure functions, no I/O. Changing any output here misplaces data that is already stored,
so the golden vectors in tests/unit/test_routing.py must never change.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import msgspec
import xxhash

_xxh64 = xxhash.xxh64_intdigest


class NodeRef(msgspec.Struct, frozen=True):
    """What routing needs to know of a node: its stable id and its replica group."""

    id: str
    group: str


def canonical_key(value: object) -> str:
    """Primary-key value -> the string that is hashed.

    Meilisearch treats ``1`` and ``"1"`` as the same document id, so integers hash as
    their decimal text. Booleans are not integers here (Meilisearch rejects them).
    """
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise TypeError(f"primary key value must be a string or an integer, not {type(value).__name__}")


def shard_for_key(value: object, shards: int) -> int:
    return shard_for_text(canonical_key(value), shards)


def shard_for_text(key: str, shards: int) -> int:
    """Shard of a key already in canonical form (`canonical_key`): the write path's hot
    loop calls this directly for ids it has validated itself."""
    return _xxh64(key.encode("utf-8"), seed=0) % shards


def score(shard: int, node_id: str) -> int:
    return _xxh64(shard.to_bytes(4, "little") + node_id.encode("utf-8"), seed=0)


def owners(shard: int, group_nodes: Iterable[str], rf: int) -> list[str]:
    """The ``rf`` node ids of one group with the highest score; ties by id ascending.

    ``group_nodes`` must be the *active* nodes of a single group.
    """
    ranked = sorted(group_nodes, key=lambda n: (-score(shard, n), n))
    return ranked[:rf]


def groups_of(nodes: Iterable[NodeRef]) -> dict[str, list[str]]:
    """Group name -> node ids, groups and ids in sorted order (deterministic)."""
    out: dict[str, list[str]] = {}
    for n in nodes:
        out.setdefault(n.group, []).append(n.id)
    return {g: sorted(ids) for g, ids in sorted(out.items())}


def write_targets(shard: int, groups: dict[str, Sequence[str]], rf: int) -> dict[str, list[str]]:
    """Group -> owners of ``shard`` in that group: every copy a write must reach."""
    return {g: owners(shard, ids, rf) for g, ids in groups.items()}


def assignment(shards: int, groups: Mapping[str, Sequence[str]], rf: int) -> dict[str, list[list[str]]]:
    """Group -> per-shard owners list, for every shard of an index."""
    return {g: [owners(s, ids, rf) for s in range(shards)] for g, ids in groups.items()}


def covering_set(
    shard_owners: Sequence[Sequence[str]],
    rotation: int = 0,
    healthy: frozenset[str] | set[str] | None = None,
) -> dict[str, list[int]] | None:
    """One owner per shard, inside one group: node id -> the shards it answers for.

    ``shard_owners[s]`` are the owners of shard s in the chosen group. ``rotation``
    spreads load across replicas (pass a counter). Returns None when some shard has no
    healthy owner in this group.
    """
    plan: dict[str, list[int]] = {}
    for s, owners_s in enumerate(shard_owners):
        candidates = [n for n in owners_s if healthy is None or n in healthy]
        if not candidates:
            return None
        node = candidates[(rotation + s) % len(candidates)]
        plan.setdefault(node, []).append(s)
    return plan


def listing_affinity(uid: str) -> int:
    """The fixed scatter turn of `uid`'s listings: the same copy of each shard on every
    page while the healthy nodes stay the same; indexes still spread over replicas."""
    return xxhash.xxh64_intdigest(uid.encode()) & 0xFFFF_FFFF
