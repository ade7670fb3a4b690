"""Routing (design §3): golden vectors, movement properties, uniformity.

The golden vectors were computed once from src/miroir/core/routing.py and frozen here.
They must NEVER be edited to make a test pass: a change means stored data is misplaced.
"""

from __future__ import annotations

import random
import statistics

import pytest
from hypothesis import given, settings, strategies as st

from miroir.core.routing import (
    NodeRef,
    assignment,
    canonical_key,
    covering_set,
    groups_of,
    owners,
    score,
    shard_for_key,
    write_targets,
)

# --- golden vectors ----------------------------------------------------------------------

SHARD_COUNTS = (1, 7, 16, 64, 256)

# key -> shard for S in SHARD_COUNTS
GOLDEN_SHARDS: list[tuple[object, list[int]]] = [
    (1, [0, 3, 4, 20, 212]),
    ("1", [0, 3, 4, 20, 212]),
    (0, [0, 1, 12, 44, 236]),
    (42, [0, 3, 9, 57, 185]),
    ("42", [0, 3, 9, 57, 185]),
    (-7, [0, 0, 15, 15, 143]),
    ("doc-1", [0, 4, 10, 42, 170]),
    ("abc_DEF", [0, 1, 2, 18, 210]),
    ("éclair", [0, 2, 15, 15, 79]),
    ("日本語", [0, 6, 1, 33, 225]),
    (12345678901234567890, [0, 2, 2, 34, 34]),
    ("", [0, 6, 9, 25, 153]),
]

GOLDEN_NODES = ["n0", "n1", "n2", "n3", "n4", "node-é"]

# rf -> owners of shards 0..7 among GOLDEN_NODES
GOLDEN_OWNERS: dict[int, list[list[str]]] = {
    1: [["node-é"], ["n1"], ["n0"], ["n3"], ["n2"], ["n0"], ["n3"], ["n0"]],
    2: [
        ["node-é", "n4"], ["n1", "n0"], ["n0", "n4"], ["n3", "n1"],
        ["n2", "n1"], ["n0", "n1"], ["n3", "n1"], ["n0", "n1"],
    ],
    3: [
        ["node-é", "n4", "n0"], ["n1", "n0", "node-é"], ["n0", "n4", "n1"], ["n3", "n1", "node-é"],
        ["n2", "n1", "n4"], ["n0", "n1", "n2"], ["n3", "n1", "n2"], ["n0", "n1", "n2"],
    ],
}  # fmt: skip


@pytest.mark.parametrize(("key", "expected"), GOLDEN_SHARDS, ids=repr)
def test_golden_shard_for_key(key: object, expected: list[int]) -> None:
    assert [shard_for_key(key, s) for s in SHARD_COUNTS] == expected


def test_integer_and_string_keys_are_the_same_document() -> None:
    assert canonical_key(1) == canonical_key("1") == "1"
    for s in SHARD_COUNTS:
        assert shard_for_key(123456, s) == shard_for_key("123456", s)


@pytest.mark.parametrize("bad", [True, False, 1.0, None, b"1", ["1"]])
def test_non_key_values_are_rejected(bad: object) -> None:
    with pytest.raises(TypeError):
        shard_for_key(bad, 16)


@pytest.mark.parametrize("rf", [1, 2, 3])
def test_golden_owners(rf: int) -> None:
    assert [owners(s, GOLDEN_NODES, rf) for s in range(8)] == GOLDEN_OWNERS[rf]
    # The input order of the group's nodes does not matter.
    assert [owners(s, list(reversed(GOLDEN_NODES)), rf) for s in range(8)] == GOLDEN_OWNERS[rf]


def test_owners_is_a_prefix_across_rf() -> None:
    # Raising RF adds copies without moving the existing ones.
    for s in range(64):
        assert owners(s, GOLDEN_NODES, 3)[:2] == owners(s, GOLDEN_NODES, 2)
        assert owners(s, GOLDEN_NODES, 2)[:1] == owners(s, GOLDEN_NODES, 1)


def test_rf_larger_than_group_takes_everyone() -> None:
    assert sorted(owners(5, ["a", "b"], 3)) == ["a", "b"]
    assert owners(5, [], 2) == []


def test_write_targets_and_groups() -> None:
    nodes = [NodeRef("b1", "g1"), NodeRef("a0", "g0"), NodeRef("a1", "g0"), NodeRef("b0", "g1")]
    groups = groups_of(nodes)
    assert groups == {"g0": ["a0", "a1"], "g1": ["b0", "b1"]}
    targets = write_targets(3, groups, 1)
    assert set(targets) == {"g0", "g1"}
    assert targets["g0"][0] in groups["g0"] and targets["g1"][0] in groups["g1"]
    table = assignment(16, groups, 2)
    assert all(sorted(o) == groups[g] for g in groups for o in table[g])


def test_covering_set_one_owner_per_shard() -> None:
    shard_owners = [owners(s, GOLDEN_NODES, 2) for s in range(16)]
    for rotation in range(3):
        plan = covering_set(shard_owners, rotation)
        assert plan is not None
        covered = sorted(s for shards in plan.values() for s in shards)
        assert covered == list(range(16))
        assert all(node in shard_owners[s] for node, shards in plan.items() for s in shards)
    # Without a healthy owner for shard 0, there is no covering set in this group.
    assert covering_set(shard_owners, healthy=set(GOLDEN_NODES) - set(shard_owners[0])) is None


# --- properties --------------------------------------------------------------------------

node_ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-é", min_size=1, max_size=8)
groups_st = st.lists(node_ids, min_size=1, max_size=8, unique=True)
PROPS = settings(derandomize=True, max_examples=60, deadline=None)
PROP_SHARDS = 64


@PROPS
@given(key=st.one_of(st.integers(min_value=-(2**63), max_value=2**64), st.text(max_size=20)), s=st.integers(1, 512))
def test_shard_is_deterministic_and_in_range(key: object, s: int) -> None:
    shard = shard_for_key(key, s)
    assert 0 <= shard < s
    assert shard == shard_for_key(key, s)
    if isinstance(key, int):
        assert shard == shard_for_key(str(key), s)


@PROPS
@given(group=groups_st, rf=st.integers(1, 3), data=st.data())
def test_owners_deterministic_and_order_independent(group: list[str], rf: int, data: st.DataObject) -> None:
    shuffled = data.draw(st.permutations(group))
    for s in range(PROP_SHARDS):
        got = owners(s, group, rf)
        assert got == owners(s, shuffled, rf)
        assert len(got) == min(rf, len(group)) and len(set(got)) == len(got)


@PROPS
@given(group=groups_st, other=groups_st, new=node_ids, rf=st.integers(1, 3))
def test_adding_a_node_moves_only_shards_it_gains(group: list[str], other: list[str], new: str, rf: int) -> None:
    if new in group:
        return
    other = [f"x-{n}" for n in other]  # disjoint ids for the second group
    before = write_targets_for(group, other, rf)
    after = write_targets_for([*group, new], other, rf)
    for s in range(PROP_SHARDS):
        old, cur = before["g0"][s], after["g0"][s]
        if new in cur:
            # The newcomer displaced exactly the weakest copy; the others stay.
            assert set(cur) - {new} <= set(old) and len(set(old) - set(cur)) == (len(old) == rf)
        else:
            assert cur == old
        assert after["g1"][s] == before["g1"][s], "another group must not move"


@PROPS
@given(group=groups_st.filter(lambda g: len(g) >= 2), other=groups_st, rf=st.integers(1, 3), data=st.data())
def test_removing_a_node_moves_only_shards_it_held(
    group: list[str], other: list[str], rf: int, data: st.DataObject
) -> None:
    gone = data.draw(st.sampled_from(group))
    other = [f"x-{n}" for n in other]
    before = write_targets_for(group, other, rf)
    after = write_targets_for([n for n in group if n != gone], other, rf)
    for s in range(PROP_SHARDS):
        old, cur = before["g0"][s], after["g0"][s]
        if gone in old:
            # Survivors keep their copies; at most one new node takes the lost one.
            assert set(old) - {gone} <= set(cur) and len(set(cur) - set(old)) <= 1
        else:
            assert cur == old
        assert after["g1"][s] == before["g1"][s], "another group must not move"


def write_targets_for(g0: list[str], g1: list[str], rf: int) -> dict[str, list[list[str]]]:
    return assignment(PROP_SHARDS, {"g0": g0, "g1": g1}, rf)


# --- statistics --------------------------------------------------------------------------


def random_group(rng: random.Random) -> list[str]:
    n = rng.randint(3, 12)
    ids: set[str] = set()
    while len(ids) < n:
        ids.add(f"node-{rng.getrandbits(40):010x}")
    return sorted(ids)


def test_uniform_share_and_binomial_spread() -> None:
    """Per node, the shard count of S=64, RF=1 is Binomial(S, 1/n).

    Over 1,000 random groups: the mean share per node times n is 1, and the observed
    variance, normalized by S*p*(1-p), is 1 (within a tolerance ~6 standard errors wide).
    """
    rng = random.Random(20240611)
    shards = 64
    share_ratios: list[float] = []
    first_node_ratios: list[float] = []  # ties go to the smallest id: it must not be favoured
    variance_ratios: list[float] = []
    for _ in range(1_000):
        group = random_group(rng)
        n = len(group)
        p = 1 / n
        counts = dict.fromkeys(group, 0)
        for s in range(shards):
            counts[owners(s, group, 1)[0]] += 1
        first_node_ratios.append(counts[group[0]] / shards * n)
        for c in counts.values():
            share_ratios.append(c / shards * n)
            variance_ratios.append((c - shards * p) ** 2 / (shards * p * (1 - p)))
    assert statistics.fmean(share_ratios) == pytest.approx(1.0, abs=1e-9)  # counts sum to S
    assert statistics.fmean(variance_ratios) == pytest.approx(1.0, abs=0.1)
    assert statistics.fmean(first_node_ratios) == pytest.approx(1.0, abs=0.1)


def test_adding_a_node_moves_about_one_share() -> None:
    """Design §3: adding a node to a group of n moves about 1/(n+1) of its shards."""
    rng = random.Random(7)
    shards = 64
    moved = expected = 0.0
    for _ in range(300):
        group = random_group(rng)
        newcomer = f"new-{rng.getrandbits(40):010x}"
        moved += sum(owners(s, group, 1) != owners(s, [*group, newcomer], 1) for s in range(shards))
        expected += shards / (len(group) + 1)
    assert moved / expected == pytest.approx(1.0, abs=0.1)


def test_score_golden() -> None:
    # Frozen: the rendezvous score itself, so a change of hash or byte layout is caught.
    assert score(0, "n0") == GOLDEN_SCORE_0_N0
    assert score(255, "node-é") == GOLDEN_SCORE_255_NODE


GOLDEN_SCORE_0_N0 = 7990259282478542178
GOLDEN_SCORE_255_NODE = 15755609355475214847
