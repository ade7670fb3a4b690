"""Online resharding: the split plan (issue 17). Pure, no I/O.

An index of S shards goes to S2 = k x S. Routing is ``hash % S``, so a document of shard
`p` under S lands under S2 in one of ``p, p + S, ..., p + (k-1)S`` (its *children*): the
split can happen in place. The index switches to S2 at once with an owner table in which
every child starts owned by its parent's owners (`inherited_table`), so the nodes already
hold every document of the shards they own; each owner then re-tags the documents of
its parents (`needs_retag`). A read that asks a node for a set of shards filters
``_miroir_shard IN [those]``: a child's owners are its parent's, so whichever tag a
document has (its parent's, before the re-tag, or its own) one node answers for it, once.
Only a read pinned to one child by key could miss a document still tagged with its parent:
while the split runs those are not pinned (`IndexMeta.split_from`).

Then `final_table` is where balance wants the shards (the shared placement-2 table of S2
when other indexes already use it, else the fewest moves from the inherited one), and
`moves` lists what changes owner.

S2 == S is allowed: it only moves the index to placement 2 (nothing to re-tag).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import msgspec

from miroir.core.placement import rebalance_table
from miroir.core.routing import shard_for_key

# A shard count above this is refused (a filter of `_miroir_shard IN [...]` grows with it).
MAX_SHARDS = 4096


def check_shards(old: int, new: object) -> str | None:
    """Why `new` cannot follow `old` shards (a message for the 400), or None."""
    if isinstance(new, bool) or not isinstance(new, int) or new < 1:
        return f"`shards` must be a positive integer, not `{new}`."
    if new > MAX_SHARDS:
        return f"`shards` must be at most {MAX_SHARDS}, not {new}."
    if new % old != 0:
        return f"`shards` must be a multiple of the index's current shard count ({old}), not {new}."
    return None


def children(parent: int, old: int, new: int) -> list[int]:
    """The shards of S2 = `new` that documents of shard `parent` under `old` land in."""
    return list(range(parent, new, old))


def parent_of(shard: int, old: int) -> int:
    return shard % old


def inherited_table(parent_table: Sequence[Sequence[str]], new: int) -> list[list[str]]:
    """Per new shard, its parent's owners (one group's table)."""
    old = len(parent_table)
    return [list(parent_table[parent_of(s, old)]) for s in range(new)]


def final_table(
    inherited: Sequence[Sequence[str]], weights: Mapping[str, float], rf: int,
    shared: Sequence[Sequence[str]] | None = None,
) -> list[list[str]]:
    """Where the new shards end: `shared` (the table other indexes of S2 use) when
    there is one, else the balanced table reached from `inherited` with the fewest moves."""
    if shared is not None:
        return [list(o) for o in shared]
    return rebalance_table(inherited, weights, rf)


def needs_retag(key: object, parent: int, new: int) -> int | None:
    """The new tag of a document tagged `parent` whose key is `key`, or None if it keeps it."""
    s = shard_for_key(key, new)
    return None if s == parent else s


class Move(msgspec.Struct, frozen=True):
    """Shard `shard` of `group` gains `targets` and leaves `drops`; `sources` hold it now."""

    group: str
    shard: int
    sources: list[str]
    targets: list[str]
    drops: list[str]


def moves(owners: Mapping[str, Sequence[Sequence[str]]], final: Mapping[str, Sequence[Sequence[str]]]) -> list[Move]:
    """Every shard whose owners change between `owners` and `final`, by group and shard."""
    out: list[Move] = []
    for g in sorted(final):
        cur = owners.get(g, [])
        for s, want in enumerate(final[g]):
            have = list(cur[s]) if s < len(cur) else []
            targets = [n for n in want if n not in have]
            drops = [n for n in have if n not in want]
            if targets or drops:
                out.append(Move(group=g, shard=s, sources=have, targets=targets, drops=drops))
    return out


def retag_pairs(owners: Mapping[str, Sequence[Sequence[str]]], old: int, new: int) -> list[tuple[str, int]]:
    """(node, parent) pairs to re-tag: every node holding a parent shard (any group),
    from the inherited tables (child `p` of parent `p` has the parent's owners). None
    when the shard count stays (a move to placement 2 only)."""
    if new == old:
        return []
    pairs = {(n, p) for table in owners.values() for p in range(old) for n in table[p]}
    return sorted(pairs, key=lambda x: (x[1], x[0]))
