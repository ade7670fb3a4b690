"""The cluster's shape as routing sees it: groups of owning nodes and shard owners.

Built from `MiroirState.nodes` (the journal's view of the fleet), RF and the rebalance
state (`MiroirState.rebalance`); immutable. A topology change builds a new `Topology`
(cheap), so readers never see a half-updated one. Owner lists are computed on demand and
cached per layout: an index's S and placement version (core/placement.py), which every
method takes -- `IndexMeta.layout`. Placement 2 reads the journaled owner tables
(`RebalanceState.tables`, and the plan's old and new tables while one runs).

Membership: the committed `rebalance.members` when there is one, else the active and
draining nodes (before the first rebalance). While a migration plan runs (design §7),
ownership is decided per unit (S, shard, group):

- a unit not switched yet: the plan's OLD owners answer reads and own the shard; its
  targets (joining nodes) only receive dual writes: they are in `write_targets`, never
  in `owners` nor in `groups`;
- a switched unit: the NEW owners (targets included) answer reads and receive writes;
  old owners that lost the shard get nothing more and have their copy deleted;
- a group that has no old member (a whole new group) serves reads only once the plan is
  done; until then it only receives writes.

An index being resharded (`Layout.table` names it) has its own table, `Reshard.owners`;
while the reshard moves shards, a shard not switched yet also gets writes on its `final`
owners (dual writes), as a unit of a plan does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from miroir.core import routing
from miroir.core.model import MiroirState, NodeMeta, RebalanceState, Reshard, unit_key
from miroir.core.placement import Layout, owner_table, table_key
from miroir.core.routing import NodeRef

# Node states that own shards when no rebalance has committed a membership yet. A
# `joining` node receives dual writes during a migration, `draining` still owns until
# its shards moved.
OWNING_STATES = frozenset({"active", "draining"})


def derived_members(nodes: Mapping[str, NodeMeta]) -> dict[str, list[str]]:
    """The owning membership implied by node states (before any rebalance)."""
    return routing.groups_of(NodeRef(n.id, n.group) for n in nodes.values() if n.state in OWNING_STATES)


def committed_members(nodes: Mapping[str, NodeMeta], rebalance: RebalanceState | None) -> dict[str, list[str]]:
    if rebalance is not None and rebalance.members is not None:
        return {g: sorted(ids) for g, ids in sorted(rebalance.members.items()) if ids}
    return derived_members(nodes)


def _fits(table: Sequence[Sequence[str]], members: Sequence[str], rf: int) -> bool:
    """Whether a journaled table is one of `members`: every shard owned by min(rf, n)
    distinct members."""
    ids = set(members)
    r = min(rf, len(ids))
    return all(len(o) == r and len(set(o)) == r and ids.issuperset(o) for o in table)


def _reshard_dual(r: Reshard, group: str, shard: int) -> list[str]:
    """The final owners of a shard being moved by a reshard (they take writes already)."""
    if r.phase != "moving" or shard in r.switched.get(group, ()):
        return []
    final = r.final.get(group)
    return list(final[shard]) if final is not None and shard < len(final) else []


def _clean(groups: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    return {g: sorted(ids) for g, ids in sorted(groups.items()) if ids}


class Topology:
    def __init__(
        self, nodes: Mapping[str, NodeMeta], rf: int, rebalance: RebalanceState | None = None,
        reshards: Mapping[str, Reshard] | None = None,
    ):
        assert rf >= 1
        self._reshards: dict[str, Reshard] = dict(reshards or {})
        self.rf = rf
        self.nodes: dict[str, NodeMeta] = dict(sorted(nodes.items()))
        plan = rebalance.plan if rebalance is not None else None
        self.plan_id: int | None = plan.id if plan is not None else None
        committed_tables = rebalance.tables if rebalance is not None else {}
        if plan is None:
            self._old = committed_members(self.nodes, rebalance)
            self._new = self._old
            self._old_tables = self._new_tables = committed_tables
        else:
            self._old = _clean(plan.old_groups)
            self._new = _clean(plan.new_groups)
            self._old_tables, self._new_tables = plan.old_tables, plan.new_tables
        self.weights: dict[str, float] = {i: n.weight for i, n in self.nodes.items()}
        self._tables: dict[tuple[Layout, str, bool], list[list[str]]] = {}
        # Groups that answer reads: those with old members (a new group waits for the end).
        self.groups: dict[str, list[str]] = dict(self._old)
        # Every group a write must reach (a new group receives dual writes from the start).
        self._write_groups = sorted(set(self._old) | set(self._new))
        # Per unit key: switched or not, and the targets of units not switched yet.
        self._switched: set[str] = set()
        self._dual: dict[str, list[str]] = {}
        if plan is not None:
            for key, unit in plan.units.items():
                if unit.status in ("switched", "done"):
                    self._switched.add(key)
                else:
                    self._dual[key] = list(unit.targets)
        self._assignments: dict[Layout, dict[str, list[list[str]]]] = {}

    @classmethod
    def from_state(cls, state: MiroirState, rf: int) -> Topology:
        return cls(state.nodes, rf, state.rebalance, state.reshards)

    def all_nodes(self) -> list[str]:
        """Every known node id (any state but removed), sorted."""
        return [i for i, n in self.nodes.items() if n.state != "removed"]

    def group_of(self, node_id: str) -> str | None:
        n = self.nodes.get(node_id)
        return n.group if n is not None else None

    def table(self, layout: Layout, group: str, new: bool) -> list[list[str]]:
        """Per shard, the owners of `group` under the old (or new) membership of a plan
        (the committed one when no plan runs); cached."""
        assert isinstance(layout, Layout), f"owner lookups take a Layout, not {layout!r}"
        key = (layout, group, new)
        t = self._tables.get(key)
        if t is None and layout.table:
            r = self._reshards.get(layout.table)
            if r is not None and r.shards == layout.shards:
                t = self._tables[key] = r.owners.get(group) or [[] for _ in range(layout.shards)]
                return t
        if t is None:
            members = (self._new if new else self._old).get(group, [])
            kept = (self._new_tables if new else self._old_tables).get(table_key(layout.shards, group))
            if kept is not None and not _fits(kept, members, self.rf):
                kept = None  # a table of another membership (a plan journaled before it)
            t = owner_table(layout, members, self.rf, self.weights, kept)
            self._tables[key] = t
        return t

    def _owners(self, layout: Layout, shard: int, group: str) -> list[str]:
        if layout.table:
            return self.table(layout, group, False)[shard]
        switched = unit_key(layout.shards, shard, group, layout.placement) in self._switched
        return self.table(layout, group, switched)[shard]

    def shard_map(self, layout: Layout) -> dict[str, list[list[str]]]:
        """Group -> owners of each shard 0..S-1 in that group (cached per layout): reads."""
        assert isinstance(layout, Layout), f"owner lookups take a Layout, not {layout!r}"
        m = self._assignments.get(layout)
        if m is None:
            m = {g: [self._owners(layout, s, g) for s in range(layout.shards)] for g in self.groups}
            self._assignments[layout] = m
        return m

    def owners(self, layout: Layout, shard: int, group: str) -> list[str]:
        """The nodes of `group` that answer reads for `shard` (never a joining target)."""
        per_group = self.shard_map(layout)
        assert 0 <= shard < layout.shards
        return per_group.get(group, [[]] * layout.shards)[shard]

    def read_targets(self, layout: Layout, shard: int) -> dict[str, list[str]]:
        """Group -> nodes that may answer a routed read of `shard` (owners only)."""
        return {g: per_shard[shard] for g, per_shard in self.shard_map(layout).items() if per_shard[shard]}

    def write_targets(self, layout: Layout, shard: int) -> dict[str, list[str]]:
        """Group -> every copy a write of `shard` must reach in that group: its owners,
        plus the targets of a migration of the shard that is not switched yet."""
        out: dict[str, list[str]] = {}
        r = self._reshards.get(layout.table) if layout.table else None
        for g in self._write_groups:
            key = unit_key(layout.shards, shard, g, layout.placement)
            nodes = self._owners(layout, shard, g)
            dual = self._dual.get(key, ()) if r is None else _reshard_dual(r, g, shard)
            extra = [t for t in dual if t not in nodes]
            if nodes or extra:
                out[g] = nodes + extra
        return out

    def holders(self, layout: Layout) -> dict[str, list[int]]:
        """Node -> the shards it should hold now (owners and dual-write targets)."""
        held: dict[str, set[int]] = {}
        for s in range(layout.shards):
            for nodes in self.write_targets(layout, s).values():
                for n in nodes:
                    held.setdefault(n, set()).add(s)
        return {n: sorted(ss) for n, ss in sorted(held.items())}

    def nodes_of_group(self, group: str) -> list[str]:
        return list(self.groups.get(group, []))

    @property
    def members(self) -> dict[str, list[str]]:
        """The membership reads are planned on (old membership while a plan runs)."""
        return {g: list(ids) for g, ids in self._old.items()}
