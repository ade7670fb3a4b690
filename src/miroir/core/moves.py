"""The rebalance planner: which shard copies a topology change creates and deletes (§7).

Pure. Given the active nodes of every group before and after a change (a node joins,
drains, dies; a group appears or goes away), RF and each index's S, it lists:

- `Move` (index, shard, group, sources, target): ``target`` becomes an owner of the
  shard in ``group`` and must receive a copy. ``sources`` are the old owners of that
  shard in the same group, the ones that stay owners first (they are not going away,
  so the mover is least likely to lose them mid-copy); the mover picks a healthy one.
  ``fallbacks`` are the shard's owners in the other groups (every group holds a full
  copy), for when no source in the group answers, e.g. the only owner died (RF = 1).
- `Drop` (index, shard, group, node): ``node`` no longer owns the shard; its copy is
  deleted after the switch of ownership, never before.

Moves happen only inside the group whose membership changed: routing (§3) ranks nodes of
one group only, so other groups' owner sets cannot change. A whole new group has no old
owners: each of its shards is copied from other groups' owners (`plan_new_group`).
A shard with no source and no fallback (a brand-new cluster) still gets a `Move` with
empty sources: there is nothing to copy, the mover just switches ownership.

Owners come from routing (placement 1) unless `tables` gives each index's owner tables
before and after the change (the rebalancer passes placement 2's, core/placement.py):
the plan is the difference of the two, whatever placement made them.

Applying a plan to the old assignment (owners + targets - drops) gives exactly the new
assignment (`apply_plan`, and the property tests in tests/unit/test_moves.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import msgspec

from miroir.core.model import MigrationPlan
from miroir.core.placement import Layout
from miroir.core.routing import owners

Groups = Mapping[str, Sequence[str]]  # group -> its active node ids
# (index, group, after the change?) -> per shard, the owners in that group
Tables = Callable[[str, str, bool], Sequence[Sequence[str]]]


class Move(msgspec.Struct, frozen=True, kw_only=True):
    index: str
    shard: int
    group: str
    target: str
    sources: tuple[str, ...]  # old owners in `group`, staying owners first
    fallbacks: tuple[str, ...] = ()  # owners in other groups, group by group (sorted)


class Drop(msgspec.Struct, frozen=True, kw_only=True):
    index: str
    shard: int
    group: str
    node: str


class MovePlan(msgspec.Struct, frozen=True, kw_only=True):
    moves: tuple[Move, ...] = ()
    drops: tuple[Drop, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.moves or self.drops)


def rendezvous_tables(indexes: Mapping[str, int], old_groups: Groups, new_groups: Groups, rf: int) -> Tables:
    """Placement 1's tables (routing over each membership)."""
    cache: dict[tuple[str, str, bool], list[list[str]]] = {}

    def table(uid: str, group: str, new: bool) -> list[list[str]]:
        t = cache.get((uid, group, new))
        if t is None:
            ids = (new_groups if new else old_groups).get(group, ())
            t = cache[(uid, group, new)] = [owners(s, ids, rf) for s in range(indexes[uid])]
        return t

    return table


def plan_change(
    indexes: Mapping[str, int], old_groups: Groups, new_groups: Groups, rf: int, tables: Tables | None = None
) -> MovePlan:
    """Every move and drop that takes `old_groups` to `new_groups` (see module doc).

    A group present only in `new_groups` is planned as a new group (sources from the
    other old groups); a group present only in `old_groups` is dropped entirely.
    Deterministic order: by index, group, shard, then target/node.
    """
    assert rf >= 1
    table = tables or rendezvous_tables(indexes, old_groups, new_groups, rf)
    moves: list[Move] = []
    drops: list[Drop] = []
    for uid in sorted(indexes):
        n_shards = indexes[uid]
        assert n_shards >= 1, f"index `{uid}` has S={n_shards}"
        for group in sorted(set(old_groups) | set(new_groups)):
            if list(old_groups.get(group, ())) == list(new_groups.get(group, ())):
                continue  # an untouched group: nothing can move in it
            old_t, new_t = table(uid, group, False), table(uid, group, True)
            for shard in range(n_shards):
                before = list(old_t[shard]) if group in old_groups else []
                after = list(new_t[shard]) if group in new_groups else []
                gained = [n for n in after if n not in before]
                if gained:
                    kept = [n for n in before if n in after]
                    leaving = [n for n in before if n not in after]
                    sources = tuple(kept + leaving)
                    fallbacks = tuple(
                        n for g in sorted(old_groups) if g != group for n in table(uid, g, False)[shard]
                    )
                    if not sources:
                        # A group without old owners: copy from the other groups.
                        sources, fallbacks = fallbacks, ()
                    for target in sorted(gained):
                        moves.append(
                            Move(index=uid, shard=shard, group=group, target=target, sources=sources, fallbacks=fallbacks)
                        )
                for node in sorted(n for n in before if n not in after):
                    drops.append(Drop(index=uid, shard=shard, group=group, node=node))
    return MovePlan(moves=tuple(moves), drops=tuple(drops))


def plan_moves(indexes: Mapping[str, int], old_groups: Groups, new_groups: Groups, rf: int) -> list[Move]:
    """The copies a change needs (see `plan_change`)."""
    return list(plan_change(indexes, old_groups, new_groups, rf).moves)


def plan_drops(indexes: Mapping[str, int], old_groups: Groups, new_groups: Groups, rf: int) -> list[Drop]:
    """The copies a change makes obsolete, deleted after the switch (see `plan_change`)."""
    return list(plan_change(indexes, old_groups, new_groups, rf).drops)


def plan_new_group(
    indexes: Mapping[str, int], groups: Groups, new_group: str, new_nodes: Sequence[str], rf: int
) -> list[Move]:
    """Moves that fill a whole new group: every shard copied from other groups' owners."""
    assert new_group not in groups, f"group `{new_group}` already exists"
    new_groups = {**groups, new_group: list(new_nodes)}
    return plan_moves(indexes, groups, new_groups, rf)


def apply_plan(
    indexes: Mapping[str, int], old_groups: Groups, rf: int, plan: MovePlan, tables: Tables | None = None
) -> dict[str, dict[str, list[frozenset[str]]]]:
    """Owner *sets* once `plan` is done: index -> group -> per shard, old + targets - drops.

    The old owners come from routing over `old_groups`. Groups left without any owner
    are omitted, so the result compares equal to the new assignment as sets.
    """
    table = tables or rendezvous_tables(indexes, old_groups, old_groups, rf)
    out: dict[str, dict[str, list[frozenset[str]]]] = {}
    for uid in sorted(indexes):
        n_shards = indexes[uid]
        sets = {g: [set(table(uid, g, False)[s]) for s in range(n_shards)] for g in old_groups}
        for m in plan.moves:
            if m.index == uid:
                sets.setdefault(m.group, [set() for _ in range(n_shards)])[m.shard].add(m.target)
        for d in plan.drops:
            if d.index == uid:
                sets[d.group][d.shard].discard(d.node)
        out[uid] = {g: [frozenset(x) for x in v] for g, v in sorted(sets.items()) if any(v)}
    return out


def copy_in_progress(plan: MigrationPlan | None, shards: int | Layout, shard: int, index: str, node: str) -> bool:
    """Whether `node` is the target of a move of `shard` (indexes of layout `shards`; an
    int is S under placement 1) whose copy of `index` is not complete yet.

    Such a copy is partial by design (the mover's pages so far plus dual writes): it is
    not lost, and completing it is the mover's job (its reconciliation brings every write
    the node missed meanwhile). A node-loss check or a refill that counted it would take
    a joining node for a node that lost its disk and race the mover.
    """
    if plan is None:
        return False
    layout = shards if isinstance(shards, Layout) else Layout(shards)
    for unit in plan.units.values():
        if (unit.shards, unit.placement) != layout[:2] or layout.table or unit.shard != shard or node not in unit.targets:
            continue
        if unit.status in ("pending", "copying") and unit.cursors.get(index, {}).get(node, 0) != -1:
            return True
    return False


def settled_shards(
    held: Sequence[int], plan: MigrationPlan | None, shards: int | Layout, index: str, node: str
) -> list[int]:
    """Of the shards `node` holds (owner or move target), those it must hold completely
    now: every one but those whose copy to it is in progress (`copy_in_progress`)."""
    return [s for s in held if not copy_in_progress(plan, shards, s, index, node)]
