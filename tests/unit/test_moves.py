"""The rebalance planner (design §7, issue 7): minimal moves, only in the changed group."""

from __future__ import annotations

import random
import statistics

from hypothesis import given, settings, strategies as st

from miroir.core.moves import Drop, Move, MovePlan, apply_plan, plan_change, plan_drops, plan_moves, plan_new_group
from miroir.core.routing import owners


def new_assignment(indexes, groups, rf):
    return {
        uid: {g: [frozenset(owners(s, nodes, rf)) for s in range(S)] for g, nodes in sorted(groups.items()) if nodes}
        for uid, S in sorted(indexes.items())
    }


def node_ids(rng: random.Random, n: int, prefix: str = "n") -> list[str]:
    return [f"{prefix}-{rng.getrandbits(48):012x}" for _ in range(n)]


# --- concrete cases --------------------------------------------------------------------


def test_no_change_no_plan():
    groups = {"g0": ["a", "b", "c"], "g1": ["d", "e"]}
    plan = plan_change({"i": 16}, groups, groups, 1)
    assert plan == MovePlan() and not plan


def test_adding_a_node_moves_only_to_it_and_only_in_its_group():
    old = {"g0": ["a", "b", "c"], "g1": ["d", "e", "f"]}
    new = {"g0": ["a", "b", "c", "x"], "g1": ["d", "e", "f"]}
    plan = plan_change({"i": 64, "j": 7}, old, new, 1)
    assert plan.moves
    assert {m.target for m in plan.moves} == {"x"}
    assert {m.group for m in plan.moves} | {d.group for d in plan.drops} == {"g0"}
    for m in plan.moves:
        # RF=1: the single old owner is the source; the other group is the fallback.
        assert m.sources == tuple(owners(m.shard, old["g0"], 1))
        assert m.fallbacks == tuple(owners(m.shard, old["g1"], 1))
    # Each move has exactly one matching drop (the displaced old owner), and vice versa.
    assert sorted((m.index, m.shard) for m in plan.moves) == sorted((d.index, d.shard) for d in plan.drops)
    assert plan_moves({"i": 64, "j": 7}, old, new, 1) == list(plan.moves)
    assert plan_drops({"i": 64, "j": 7}, old, new, 1) == list(plan.drops)


def test_removing_a_node_moves_only_the_shards_it_held():
    old = {"g0": ["a", "b", "c", "d"], "g1": ["e", "f"]}
    new = {"g0": ["a", "b", "c"], "g1": ["e", "f"]}
    for rf in (1, 2, 3):
        held = {s for s in range(32) if "d" in owners(s, old["g0"], rf)}
        plan = plan_change({"i": 32}, old, new, rf)
        assert {m.shard for m in plan.moves} == held
        assert {(d.shard, d.node) for d in plan.drops} == {(s, "d") for s in held}
        assert all(m.group == "g0" and m.target != "d" for m in plan.moves)
        for m in plan.moves:
            # Staying owners first: the leaving node may already be dead.
            assert m.sources[-1] == "d"
            assert set(m.sources) == set(owners(m.shard, old["g0"], rf))


def test_new_group_copies_every_shard_from_other_groups():
    groups = {"g0": ["a", "b", "c"], "g1": ["d", "e"]}
    moves = plan_new_group({"i": 16, "j": 3}, groups, "g2", ["x", "y"], 1)
    assert len(moves) == 16 + 3  # RF=1: one new copy per shard
    for m in moves:
        assert m.group == "g2" and m.target in ("x", "y")
        assert m.sources == tuple(owners(m.shard, groups["g0"], 1) + owners(m.shard, groups["g1"], 1))
        assert m.fallbacks == ()
    assert plan_drops({"i": 16, "j": 3}, groups, {**groups, "g2": ["x", "y"]}, 1) == []
    moves_rf2 = plan_new_group({"i": 16}, groups, "g2", ["x", "y", "z"], 2)
    assert len(moves_rf2) == 32


def test_first_group_of_an_empty_cluster_has_nothing_to_copy():
    moves = plan_new_group({"i": 4}, {}, "g0", ["a"], 1)
    assert [(m.shard, m.target, m.sources) for m in moves] == [(s, "a", ()) for s in range(4)]


def test_removing_a_group_drops_everything_in_it_only():
    old = {"g0": ["a", "b"], "g1": ["c", "d"]}
    plan = plan_change({"i": 8}, old, {"g0": ["a", "b"]}, 1)
    assert plan.moves == ()
    assert len(plan.drops) == 8 and {d.group for d in plan.drops} == {"g1"}


def test_plan_is_deterministic_and_structs_are_frozen_values():
    old = {"g0": ["a", "b", "c"]}
    new = {"g0": ["c", "b", "a", "x"]}  # order of the node list does not matter
    assert plan_change({"i": 16}, old, new, 2) == plan_change({"i": 16}, {"g0": ["a", "b", "c"]}, new, 2)
    m = Move(index="i", shard=1, group="g0", target="x", sources=("a",))
    assert hash(m) == hash(Move(index="i", shard=1, group="g0", target="x", sources=("a",)))
    assert Drop(index="i", shard=1, group="g0", node="a") in {Drop(index="i", shard=1, group="g0", node="a")}


# --- movement bounds over many seeds -----------------------------------------------------


def test_adding_the_n_plus_1th_node_moves_about_s_over_n_plus_1():
    S, trials = 64, 150
    for n in (2, 4, 7):
        expected = S / (n + 1)
        counts = []
        for seed in range(trials):
            rng = random.Random(seed * 1000 + n)
            base = node_ids(rng, n)
            other = node_ids(rng, 3, "o")
            extra = node_ids(rng, 1, "x")[0]
            moves = plan_moves({"i": S}, {"g0": base, "g1": other}, {"g0": [*base, extra], "g1": other}, 1)
            assert all(m.target == extra and m.group == "g0" for m in moves)
            counts.append(len(moves))
            assert len(moves) <= 2.5 * expected, (n, seed, len(moves))
        mean = statistics.mean(counts)
        assert abs(mean - expected) <= 0.15 * expected, (n, mean, expected)


# --- properties ------------------------------------------------------------------------

node_pool = [f"n{i}" for i in range(10)]
group_st = st.lists(st.sampled_from(node_pool), unique=True, max_size=6)


@st.composite
def topology_change(draw):
    groups_old = draw(st.dictionaries(st.sampled_from(["g0", "g1", "g2"]), group_st, max_size=3))
    groups_new = {}
    for g in ("g0", "g1", "g2"):
        if draw(st.booleans()):
            groups_new[g] = list(groups_old.get(g, []))
        else:
            groups_new[g] = draw(group_st)
    groups_new = {g: v for g, v in groups_new.items() if v or g in groups_old}
    indexes = draw(st.dictionaries(st.sampled_from(["a", "b", "c"]), st.integers(1, 12), min_size=1, max_size=3))
    rf = draw(st.integers(1, 3))
    return indexes, groups_old, groups_new, rf


@settings(max_examples=200, deadline=None)
@given(topology_change())
def test_applying_the_plan_yields_the_new_assignment(change):
    indexes, old, new, rf = change
    plan = plan_change(indexes, old, new, rf)
    assert apply_plan(indexes, old, rf, plan) == new_assignment(indexes, new, rf)


@settings(max_examples=200, deadline=None)
@given(topology_change())
def test_plan_is_minimal_and_local(change):
    indexes, old, new, rf = change
    plan = plan_change(indexes, old, new, rf)
    for m in plan.moves:
        before = owners(m.shard, old.get(m.group, []), rf)
        # Only new owners receive copies; only the changed group is touched.
        assert m.target in owners(m.shard, new[m.group], rf) and m.target not in before
        assert list(old.get(m.group, [])) != list(new.get(m.group, []))
        # Sources: the old owners in the group when there are any, else other groups.
        if before:
            assert set(m.sources) == set(before)
        else:
            assert set(m.sources) <= {n for g, ns in old.items() if g != m.group for n in ns}
    for d in plan.drops:
        assert d.node in owners(d.shard, old[d.group], rf)
        assert d.node not in owners(d.shard, new.get(d.group, []), rf)
    # No duplicates.
    assert len(set(plan.moves)) == len(plan.moves) and len(set(plan.drops)) == len(plan.drops)
