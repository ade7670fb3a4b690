"""The cluster's shape as routing sees it: groups of owning nodes and shard owners.

Built from `MiroirState.nodes` (the journal's view of the fleet), RF and the rebalance
state (`MiroirState.rebalance`); immutable. A topology change builds a new `Topology`
(cheap), so readers never see a half-updated one. Owner lists are computed on demand and
cached per S (indexes have their own S).

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
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from miroir.core import routing
from miroir.core.routing import NodeRef
from miroir.core.model import MiroirState, NodeMeta, RebalanceState, unit_key

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


def _clean(groups: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    return {g: sorted(ids) for g, ids in sorted(groups.items()) if ids}


class Topology:
    def __init__(self, nodes: Mapping[str, NodeMeta], rf: int, rebalance: RebalanceState | None = None):
        assert rf >= 1
        self.rf = rf
        self.nodes: dict[str, NodeMeta] = dict(sorted(nodes.items()))
        plan = rebalance.plan if rebalance is not None else None
        self.plan_id: int | None = plan.id if plan is not None else None
        if plan is None:
            self._old = committed_members(self.nodes, rebalance)
            self._new = self._old
        else:
            self._old = _clean(plan.old_groups)
            self._new = _clean(plan.new_groups)
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
        self._assignments: dict[int, dict[str, list[list[str]]]] = {}

    @classmethod
    def from_state(cls, state: MiroirState, rf: int) -> Topology:
        return cls(state.nodes, rf, state.rebalance)

    def all_nodes(self) -> list[str]:
        """Every known node id (any state but removed), sorted."""
        return [i for i, n in self.nodes.items() if n.state != "removed"]

    def group_of(self, node_id: str) -> str | None:
        n = self.nodes.get(node_id)
        return n.group if n is not None else None

    def _owners(self, shards: int, shard: int, group: str) -> list[str]:
        if unit_key(shards, shard, group) in self._switched:
            return routing.owners(shard, self._new.get(group, ()), self.rf)
        return routing.owners(shard, self._old.get(group, ()), self.rf)

    def shard_map(self, shards: int) -> dict[str, list[list[str]]]:
        """Group -> owners of each shard 0..S-1 in that group (cached per S): reads."""
        m = self._assignments.get(shards)
        if m is None:
            m = {g: [self._owners(shards, s, g) for s in range(shards)] for g in self.groups}
            self._assignments[shards] = m
        return m

    def owners(self, shards: int, shard: int, group: str) -> list[str]:
        """The nodes of `group` that answer reads for `shard` (never a joining target)."""
        assert 0 <= shard < shards
        return self.shard_map(shards).get(group, [[]] * shards)[shard]

    def read_targets(self, shards: int, shard: int) -> dict[str, list[str]]:
        """Group -> nodes that may answer a routed read of `shard` (owners only)."""
        return {g: per_shard[shard] for g, per_shard in self.shard_map(shards).items() if per_shard[shard]}

    def write_targets(self, shards: int, shard: int) -> dict[str, list[str]]:
        """Group -> every copy a write of `shard` must reach in that group: its owners,
        plus the targets of a migration of the shard that is not switched yet."""
        out: dict[str, list[str]] = {}
        for g in self._write_groups:
            key = unit_key(shards, shard, g)
            nodes = self._owners(shards, shard, g)
            extra = [t for t in self._dual.get(key, ()) if t not in nodes]
            if nodes or extra:
                out[g] = nodes + extra
        return out

    def holders(self, shards: int) -> dict[str, list[int]]:
        """Node -> the shards it should hold now (owners and dual-write targets)."""
        held: dict[str, set[int]] = {}
        for s in range(shards):
            for nodes in self.write_targets(shards, s).values():
                for n in nodes:
                    held.setdefault(n, set()).add(s)
        return {n: sorted(ss) for n, ss in sorted(held.items())}

    def nodes_of_group(self, group: str) -> list[str]:
        return list(self.groups.get(group, []))

    @property
    def members(self) -> dict[str, list[str]]:
        """The membership reads are planned on (old membership while a plan runs)."""
        return {g: list(ids) for g, ids in self._old.items()}
