"""The cluster's shape as routing sees it: groups of active nodes and shard owners.

Built from `MiroirState.nodes` (the journal's view of the fleet) and RF; immutable. A
topology change builds a new `Topology` (cheap), so readers never see a half-updated one.
Owner lists are computed on demand and cached per S (indexes have their own S).
"""

from __future__ import annotations

from collections.abc import Mapping

from miroir.core import routing
from miroir.core.routing import NodeRef
from miroir.store.state import NodeMeta

# Node states that own shards. A `joining` node receives dual writes during a migration
# (the rebalancer adds those targets itself), `draining` still owns until its shards moved.
OWNING_STATES = frozenset({"active", "draining"})


class Topology:
    def __init__(self, nodes: Mapping[str, NodeMeta], rf: int):
        assert rf >= 1
        self.rf = rf
        self.nodes: dict[str, NodeMeta] = dict(sorted(nodes.items()))
        active = [NodeRef(n.id, n.group) for n in self.nodes.values() if n.state in OWNING_STATES]
        self.groups: dict[str, list[str]] = routing.groups_of(active)
        self._assignments: dict[int, dict[str, list[list[str]]]] = {}

    def all_nodes(self) -> list[str]:
        """Every known node id (any state but removed), sorted."""
        return [i for i, n in self.nodes.items() if n.state != "removed"]

    def group_of(self, node_id: str) -> str | None:
        n = self.nodes.get(node_id)
        return n.group if n is not None else None

    def shard_map(self, shards: int) -> dict[str, list[list[str]]]:
        """Group -> owners of each shard 0..S-1 in that group (cached per S)."""
        m = self._assignments.get(shards)
        if m is None:
            m = routing.assignment(shards, self.groups, self.rf)
            self._assignments[shards] = m
        return m

    def owners(self, shards: int, shard: int, group: str) -> list[str]:
        assert 0 <= shard < shards
        return self.shard_map(shards).get(group, [[]] * shards)[shard]

    def write_targets(self, shards: int, shard: int) -> dict[str, list[str]]:
        """Group -> owners of `shard` in that group: every copy a write must reach."""
        return {g: per_shard[shard] for g, per_shard in self.shard_map(shards).items()}

    def nodes_of_group(self, group: str) -> list[str]:
        return list(self.groups.get(group, []))
