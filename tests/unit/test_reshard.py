"""The split plan of an online reshard (core/reshard.py) and the records that carry it
(core/model.py): pure, no I/O."""

from __future__ import annotations

import msgspec
import pytest

from miroir.core import reshard as rs
from miroir.core.model import (
    IndexMeta,
    IndexPut,
    IndexRemoved,
    RefillStarted,
    Reshard,
    ReshardDone,
    ReshardDropped,
    ReshardRetagged,
    ReshardSplit,
    ReshardStarted,
    ReshardSwitched,
    apply_record,
    new_state,
)
from miroir.core.placement import Layout, initial_table, quotas
from miroir.core.routing import shard_for_key
from miroir.engine.topology import Topology


def test_check_shards_wants_a_multiple():
    assert rs.check_shards(16, 64) is None
    assert rs.check_shards(16, 16) is None  # placement 2 only
    assert "multiple" in (rs.check_shards(16, 40) or "")
    assert "multiple" in (rs.check_shards(16, 8) or "")
    for bad in (0, -16, True, "64", 1.5, None):
        assert "positive integer" in (rs.check_shards(16, bad) or ""), bad
    assert "at most" in (rs.check_shards(16, rs.MAX_SHARDS * 2) or "")


@pytest.mark.parametrize(("old", "new"), [(16, 64), (16, 32), (4, 12), (16, 16)])
def test_a_document_lands_in_a_child_of_its_shard(old, new):
    for i in range(3_000):
        key = f"doc-{i}" if i % 2 else i
        parent, child = shard_for_key(key, old), shard_for_key(key, new)
        assert child in rs.children(parent, old, new)
        assert rs.parent_of(child, old) == parent
        assert rs.needs_retag(key, parent, new) == (None if child == parent else child)
    # Children partition the new shards.
    every = sorted(c for p in range(old) for c in rs.children(p, old, new))
    assert every == list(range(new))


def _weights(n: int) -> dict[str, float]:
    return {f"n{i}": 1.0 for i in range(1, n + 1)}


@pytest.mark.parametrize("rf", [1, 2])
def test_split_then_balance_moves_only_what_balance_needs(rf):
    w = _weights(3)
    parent = initial_table(16, w, rf)
    inherited = rs.inherited_table(parent, 64)
    # Each child starts where its parent is: nothing to copy for the split itself.
    assert all(inherited[c] == parent[c % 16] for c in range(64))
    final = rs.final_table(inherited, w, rf)
    load = {n: sum(n in o for o in final) for n in w}
    assert load == quotas(w, 64 * rf, load)  # every node at its quota
    mv = rs.moves({"g0": inherited}, {"g0": final})
    # Only copies over quota move: the fewest moves (with rf > 1 a trade can take two,
    # placement._swap_in).
    before = {n: sum(n in o for o in inherited) for n in w}
    excess = sum(max(before[n] - load[n], 0) for n in w)
    copies = sum(len(m.targets) for m in mv)
    assert copies == excess if rf == 1 else excess <= copies <= 2 * excess
    for m in mv:
        assert m.sources == inherited[m.shard] and set(m.targets).isdisjoint(m.sources)
        assert set(final[m.shard]) == (set(m.sources) - set(m.drops)) | set(m.targets)


def test_final_table_is_the_shared_one_when_other_indexes_use_it():
    w = _weights(4)
    shared = initial_table(16, w, 1)
    inherited = rs.inherited_table([[n] for n in ["n1"] * 16], 16)  # placement 1 (say) on n1
    assert rs.final_table(inherited, w, 1, shared) == shared
    mv = rs.moves({"g0": inherited}, {"g0": shared})
    assert sorted(m.shard for m in mv) == [s for s in range(16) if shared[s] != ["n1"]]


def test_retag_pairs_every_holder_of_every_parent_once():
    owners = {"g0": rs.inherited_table([["a", "b"], ["b", "c"]], 4), "g1": rs.inherited_table([["x"], ["y"]], 4)}
    assert rs.retag_pairs(owners, 2, 4) == [("a", 0), ("b", 0), ("x", 0), ("b", 1), ("c", 1), ("y", 1)]
    assert rs.retag_pairs(owners, 4, 4) == []  # same S: placement 2 only, nothing to re-tag


def _meta(uid: str = "items", shards: int = 16, placement: int = 2) -> IndexMeta:
    return IndexMeta(uid=uid, primary_key="id", shards=shards, created_at="t", updated_at="t", placement=placement)


def _started(state, rf: int = 1):
    w = _weights(3)
    parent = initial_table(16, w, rf)
    inherited = rs.inherited_table(parent, 64)
    final = rs.final_table(inherited, w, rf)
    r = Reshard(
        uid="items", task=7, old_shards=16, old_placement=2, shards=64, owners={"g0": [list(o) for o in inherited]},
        inherited={"g0": inherited}, final={"g0": final},
    )
    meta = msgspec.structs.replace(state.indexes["items"], shards=64, split_from=16, own_table=True)
    apply_record(state, ReshardStarted(reshard=r, meta=meta))
    return inherited, final


def test_records_take_the_index_through_its_phases():
    state = new_state()
    apply_record(state, IndexPut(meta=_meta()))
    _, final = _started(state)
    meta = state.indexes["items"]
    assert (meta.shards, meta.placement, meta.split_from, meta.layout) == (64, 2, 16, Layout(64, 2, "items"))
    apply_record(state, ReshardRetagged(uid="items", node="n1", parent=3, docs=5))
    apply_record(state, ReshardRetagged(uid="items", node="n1", parent=3, docs=5))  # replayed: once
    r = state.reshards["items"]
    assert (r.retagged, r.retagged_docs) == (["n1:3"], 5)
    # A refill of n1 copies what its peers hold, maybe under parent tags: re-tag it again.
    apply_record(state, ReshardRetagged(uid="items", node="n2", parent=3))
    apply_record(state, RefillStarted(node="n1", reason="disk lost"))
    assert r.retagged == ["n2:3"]
    apply_record(state, ReshardSplit(uid="items"))
    assert (r.phase, meta.split_from) == ("moving", 0)
    mv = rs.moves(r.inherited, r.final)
    assert mv, "3 nodes, 16 -> 64: some shards move"
    first = mv[0]
    apply_record(state, ReshardSwitched(uid="items", group="g0", shard=first.shard, copied=10))
    assert r.owners["g0"][first.shard] == final[first.shard] and r.copied == 10
    apply_record(state, ReshardSwitched(uid="items", group="g0", shard=999))  # total: no-op
    apply_record(state, ReshardDropped(uid="items", group="g0", shard=first.shard))
    apply_record(state, ReshardDone(uid="items"))
    assert "items" not in state.reshards and not meta.own_table
    assert meta.layout == Layout(64, 2) and state.rebalance.tables["64:g0"] == final
    # A record of a reshard no longer there changes nothing.
    apply_record(state, ReshardSplit(uid="items"))
    apply_record(state, ReshardDone(uid="items"))


def test_index_removed_mid_reshard_forgets_it():
    state = new_state()
    apply_record(state, IndexPut(meta=_meta()))
    _started(state)
    apply_record(state, IndexRemoved(uid="items"))
    assert state.reshards == {}
    apply_record(state, ReshardRetagged(uid="items", node="n1", parent=0))  # total


def test_topology_of_a_splitting_index():
    """Children are owned by their parent's owners; once moving, a shard not switched yet
    also takes writes on its final owners, and after the switch only there."""
    from miroir.core.model import NodeMeta

    state = new_state()
    for i in (1, 2, 3):
        state.nodes[f"n{i}"] = NodeMeta(id=f"n{i}", url=f"http://n{i}", group="g0", state="active")
    apply_record(state, IndexPut(meta=_meta()))
    inherited, final = _started(state)
    lay = state.indexes["items"].layout
    topo = Topology.from_state(state, 1)
    assert topo.shard_map(lay)["g0"] == inherited
    assert all(topo.write_targets(lay, s) == {"g0": inherited[s]} for s in range(64))
    apply_record(state, ReshardSplit(uid="items"))
    topo = Topology.from_state(state, 1)
    m = rs.moves(state.reshards["items"].inherited, state.reshards["items"].final)[0]
    assert topo.owners(lay, m.shard, "g0") == inherited[m.shard]
    assert sorted(topo.write_targets(lay, m.shard)["g0"]) == sorted(set(inherited[m.shard]) | set(final[m.shard]))
    apply_record(state, ReshardSwitched(uid="items", group="g0", shard=m.shard))
    topo = Topology.from_state(state, 1)
    assert topo.owners(lay, m.shard, "g0") == final[m.shard]
    assert topo.write_targets(lay, m.shard) == {"g0": final[m.shard]}
    apply_record(state, ReshardDone(uid="items"))
    topo = Topology.from_state(state, 1)
    assert topo.shard_map(state.indexes["items"].layout)["g0"] == final
