"""Placement 2 (issue 17): balanced and weighted shard owners, fewest moves when nodes
come and go, recorded per index so that existing indexes keep placement 1.

Pure: core/placement.py, the planner over its tables (core/moves.py), the topology's
dispatch on an index's layout (engine/topology.py) and the journal's defaults.
"""

from __future__ import annotations

import math
from collections import Counter

import msgspec
import pytest

from miroir.core.model import (
    IndexMeta,
    MigrationDone,
    MigrationPlan,
    MiroirState,
    NodeMeta,
    apply_record,
)
from miroir.core.moves import apply_plan, plan_change
from miroir.core.placement import (
    Layout,
    initial_table,
    owner_table,
    rebalance_table,
    table_key,
)
from miroir.core.routing import owners as rendezvous_owners
from miroir.engine.topology import Topology

NODE_COUNTS = (3, 4, 6, 8, 12, 16)


def ids(n: int) -> list[str]:
    return [f"n{i}" for i in range(1, n + 1)]


def loads(table) -> Counter:
    return Counter(n for owners in table for n in owners)


def busiest_over_mean(table, nodes) -> float:
    c = loads(table)
    mean = sum(c.values()) / len(nodes)
    return max(c.get(n, 0) for n in nodes) / mean


def moved(before, after) -> int:
    return sum(len(set(b) - set(a)) for a, b in zip(before, after))


def valid(table, nodes, rf) -> bool:
    r = min(rf, len(nodes))
    return all(len(o) == r and len(set(o)) == r and set(o) <= set(nodes) for o in table)


# --- golden vectors: placement 2 places stored data, it must never change ----------------

GOLDEN_V2 = {
    (16, 4, 1): [["n3"], ["n1"], ["n4"], ["n3"], ["n2"], ["n1"], ["n3"], ["n2"]],
    (16, 4, 2): [["n4", "n2"], ["n1", "n3"], ["n4", "n1"], ["n3", "n1"], ["n2", "n4"], ["n1", "n2"], ["n3", "n4"], ["n1", "n2"]],
}  # fmt: skip


@pytest.mark.parametrize(("key", "expected"), GOLDEN_V2.items(), ids=str)
def test_golden_initial_table(key, expected):
    shards, n, rf = key
    assert owner_table(Layout(shards, 2), ids(n), rf)[:8] == expected


def test_placement_1_is_rendezvous_unchanged():
    for s in range(16):
        assert owner_table(Layout(16, 1), ids(6), 2)[s] == rendezvous_owners(s, ids(6), 2)


# --- balance --------------------------------------------------------------------------------


@pytest.mark.parametrize("rf", [1, 2, 3])
@pytest.mark.parametrize("shards", [16, 64, 256])
def test_every_node_within_one_copy_of_its_share(shards, rf):
    for n in (*NODE_COUNTS, 2, 5, 7):
        nodes = ids(n)
        table = owner_table(Layout(shards, 2), nodes, rf)
        assert valid(table, nodes, rf)
        share = shards * min(rf, n) / n
        c = loads(table)
        assert max(c.values()) == math.ceil(share - 1e-9), (n, c)
        assert min(c.get(x, 0) for x in nodes) == math.floor(share + 1e-9), (n, c)


def busiest_256(placement: int) -> dict[int, float]:
    return {n: busiest_over_mean(owner_table(Layout(256, placement), ids(n), 1), ids(n)) for n in NODE_COUNTS}


def test_busiest_over_mean_within_10_percent():
    """Issue 17's bar (busiest / mean <= 1.10 for 3..16 equal nodes) where the shard count
    allows it: 256 shards (RF 1, the hardest case)."""
    worst = busiest_256(2)
    assert max(worst.values()) <= 1.10, worst


def test_rendezvous_alone_misses_the_bar():
    """The check above fails on placement 1: 1.15..1.50 at 256 shards, and empty nodes at
    16 (issue 17's table)."""
    assert max(busiest_256(1).values()) > 1.10
    assert len(loads(owner_table(Layout(16, 1), ids(12), 1))) < 12
    assert not weights_within_10_percent(owner_table(Layout(64, 1), ["a", "b", "c"], 1, WEIGHTS))


def test_default_16_shards_as_balanced_as_16_allows():
    """With 16 shards a node holds whole shards: placement 2 reaches ceil(16/N)/(16/N),
    the best possible, and no node is empty."""
    for n in NODE_COUNTS:
        table = owner_table(Layout(16, 2), ids(n), 1)
        assert busiest_over_mean(table, ids(n)) == math.ceil(16 / n) / (16 / n), (n, loads(table))
        assert len(loads(table)) == n


WEIGHTS = {"a": 1.0, "b": 1.0, "c": 2.0}


def weights_within_10_percent(table) -> bool:
    c, total = loads(table), len(table)
    return all(abs(c[n] / total - t) <= 0.1 * t for n, t in (("a", 0.25), ("b", 0.25), ("c", 0.5)))


@pytest.mark.parametrize("shards", [16, 64, 256])
def test_weights_1_1_2(shards):
    table = owner_table(Layout(shards, 2), list(WEIGHTS), 1, WEIGHTS)
    assert weights_within_10_percent(table), loads(table)


# --- fewest moves -------------------------------------------------------------------------


@pytest.mark.parametrize("rf", [1, 2, 3])
@pytest.mark.parametrize("shards", [16, 64, 256])
def test_adding_a_node_moves_at_most_1_25_of_the_minimum(shards, rf):
    for n in range(2, 17):
        nodes = ids(n)
        before = owner_table(Layout(shards, 2), nodes, rf)
        after = rebalance_table(before, dict.fromkeys(ids(n + 1), 1.0), rf)
        assert valid(after, ids(n + 1), rf)
        minimum = shards * min(rf, n + 1) / (n + 1)
        assert moved(before, after) <= 1.25 * minimum, (n, moved(before, after), minimum)
        c = loads(after)
        assert max(c.values()) == math.ceil(minimum - 1e-9)


@pytest.mark.parametrize("rf", [1, 2])
@pytest.mark.parametrize("shards", [16, 64, 256])
def test_removing_a_node_moves_only_its_copies(shards, rf):
    for n in range(3, 17):
        nodes = ids(n)
        before = owner_table(Layout(shards, 2), nodes, rf)
        gone = nodes[n // 2]
        after = rebalance_table(before, {x: 1.0 for x in nodes if x != gone}, rf)
        assert valid(after, [x for x in nodes if x != gone], rf)
        held = loads(before)[gone]
        # Each of its copies moves once; with rf > 1 a shard whose only roomy nodes
        # already own it costs one exchange more (rare).
        assert moved(before, after) <= 1.05 * held + 1, (n, moved(before, after), held)


def test_unchanged_membership_moves_nothing():
    for n in NODE_COUNTS:
        table = owner_table(Layout(64, 2), ids(n), 2)
        assert rebalance_table(table, dict.fromkeys(ids(n), 1.0), 2) == table


def test_a_heavier_node_joining_takes_its_weighted_share():
    before = owner_table(Layout(64, 2), ids(3), 1)
    weights = {**dict.fromkeys(ids(3), 1.0), "big": 3.0}
    after = rebalance_table(before, weights, 1)
    assert loads(after)["big"] == 32  # 3 / 6 of 64
    assert moved(before, after) == 32


# --- the planner over placement 2's tables -------------------------------------------------


def test_plan_is_the_difference_of_the_tables():
    old, new = {"g0": ids(3)}, {"g0": ids(4)}
    t_old = owner_table(Layout(16, 2), ids(3), 2)
    t_new = rebalance_table(t_old, dict.fromkeys(ids(4), 1.0), 2)

    def tables(index, group, after):
        return t_new if after else t_old

    plan = plan_change({"16p2": 16}, old, new, 2, tables=tables)
    assert len(plan.moves) == moved(t_old, t_new) == len(plan.drops)
    assert sum(m.target == "n4" for m in plan.moves) == loads(t_new)["n4"]
    done = apply_plan({"16p2": 16}, old, 2, plan, tables=tables)
    assert done["16p2"]["g0"] == [frozenset(o) for o in t_new]


# --- per index: the journal records the placement; the topology dispatches on it ------------


def test_old_journal_records_decode_as_placement_1_and_weight_1():
    meta = msgspec.json.decode(
        b'{"uid":"a","primary_key":"id","shards":16,"created_at":"t","updated_at":"t"}', type=IndexMeta
    )
    assert meta.placement == 1 and meta.layout == Layout(16, 1)
    node = msgspec.json.decode(b'{"id":"n1","url":"http://x","group":"g0","state":"active"}', type=NodeMeta)
    assert node.weight == 1.0


def test_topology_owners_follow_the_index_placement():
    nodes = {i: NodeMeta(id=i, url="http://x", group="g0", state="active") for i in ids(12)}
    topo = Topology(nodes, 1)
    v1 = [topo.owners(Layout(16, 1), s, "g0") for s in range(16)]
    v2 = [topo.owners(Layout(16, 2), s, "g0") for s in range(16)]
    assert v1 == [rendezvous_owners(s, ids(12), 1) for s in range(16)]  # no data moves on upgrade
    assert v2 == owner_table(Layout(16, 2), ids(12), 1)
    assert len(loads(v2)) == 12 and len(loads(v1)) < 12
    with pytest.raises(AssertionError):
        topo.owners(16, 0, "g0")  # type: ignore[arg-type]  # an S alone is ambiguous


def test_committed_tables_are_used_and_weights_read_from_nodes():
    nodes = {i: NodeMeta(id=i, url="http://x", group="g0", state="active") for i in ids(3)}
    nodes["n3"].weight = 2.0
    topo = Topology(nodes, 1)
    assert loads(topo.shard_map(Layout(16, 2))["g0"]) == {"n1": 4, "n2": 4, "n3": 8}
    # A plan's new tables become the committed ones and the topology follows them.
    state = MiroirState(nodes=nodes)
    kept = initial_table(16, {"n1": 1.0, "n2": 1.0, "n3": 1.0}, 1)
    state.rebalance.plan = MigrationPlan(
        id=1, old_groups={"g0": ids(3)}, new_groups={"g0": ids(3)}, units={}, new_tables={table_key(16, "g0"): kept}
    )
    apply_record(state, MigrationDone(plan_id=1))
    assert state.rebalance.tables == {"16:g0": kept}
    assert Topology.from_state(state, 1).shard_map(Layout(16, 2))["g0"] == kept
