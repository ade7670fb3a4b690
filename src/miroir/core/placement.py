"""Shard owners per placement version (issue 17): the one place owner tables come from.

Pure, no I/O. An index records the placement it was created with (`IndexMeta.placement`),
so changing the placement of new indexes never moves the data of existing ones.

- **Version 1**: rendezvous alone (`core.routing.owners`): each shard's owners are the
  `rf` nodes of the group with the highest score. Unweighted, and with few shards per
  node the busiest node holds up to 2x its share (issue 17). Frozen by the golden
  vectors in tests/test_routing.py; computed from the membership alone.
- **Version 2**: balanced and weighted. Every node has a *quota* of shard copies, its
  weighted share of S x rf rounded down or up (largest remainder; Σ quotas = S x rf), so
  no node holds more than one copy above its share. The table is kept (journaled with the
  membership, `RebalanceState.tables`) because the fewest moves depend on where shards
  are: `rebalance_table` takes the current table to one that meets the new quotas,
  moving only the copies over quota and those of departed nodes (the minimum), to the
  nodes under quota that score highest (weighted rendezvous). With no table yet, the
  proposal is rendezvous (`initial_table`), balanced the same way.

`owner_table` is the dispatch for a layout (S, placement) and one group.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

from miroir.core.routing import owners as rendezvous_owners, score

# New indexes are created with this placement; existing ones keep theirs.
CURRENT_PLACEMENT = 2
PLACEMENTS = frozenset({1, 2})
DEFAULT_WEIGHT = 1.0

Table = list[list[str]]  # per shard: its owners in one group, best first

_TWO64 = float(2**64)


class Layout(NamedTuple):
    """What decides where an index's documents live: its shard count and placement.

    `table` names an index whose owner table is its own (an index being resharded,
    `MiroirState.reshards`): its shards' owners follow that reshard, not the shared table.
    """

    shards: int
    placement: int = 1
    table: str = ""


def table_key(shards: int, group: str) -> str:
    """Key of a journaled placement-2 table (`RebalanceState.tables`)."""
    return f"{shards}:{group}"


def weighted_score(shard: int, node_id: str, weight: float) -> float:
    """Weighted rendezvous (a node of weight w wins a shard w times as often as one of
    weight 1): ``-w / ln(u)``, ``u`` the pair's hash in (0, 1). For equal weights the
    order is that of `routing.score`."""
    u = (score(shard, node_id) + 0.5) / _TWO64
    return -weight / math.log(u)


def quotas(weights: Mapping[str, float], copies: int, load: Mapping[str, int] | None = None) -> dict[str, int]:
    """Node -> copies it should hold: its weighted share of `copies`, rounded so that the
    quotas add up to `copies` (largest remainder). Equal remainders go to the nodes that
    hold more now (`load`), so rounding never moves a copy, then by id."""
    total = sum(weights.values())
    exact = {n: w / total * copies for n, w in weights.items()}
    out = {n: math.floor(x + 1e-9) for n, x in exact.items()}
    left = copies - sum(out.values())
    cur = load or {}
    order = sorted(exact, key=lambda n: (-round(exact[n] - out[n], 9), -cur.get(n, 0), n))
    for n in order[:left]:
        out[n] += 1
    return out


def rebalance_table(table: Sequence[Sequence[str]], weights: Mapping[str, float], rf: int) -> Table:
    """The table meeting `weights`' quotas reached from `table` with the fewest moves.

    Copies on nodes not in `weights` are dropped; a node over quota gives up the shards
    it scores lowest on; each shard short of owners takes the highest-scoring node under
    quota that does not own it yet; when the only nodes with room already own a shard
    (rf > 1), a node without it trades one of its shards for it (`_swap_in`).
    """
    ids = sorted(weights)
    r = min(rf, len(ids))
    out: Table = [[n for n in owners if n in weights][:r] for owners in table]
    if r == 0:
        return [[] for _ in table]
    load = dict.fromkeys(ids, 0)
    for owners in out:
        for n in owners:
            load[n] += 1
    quota = quotas(weights, len(out) * r, load)

    def ws(s: int, n: str) -> float:
        return weighted_score(s, n, weights[n])

    for n in ids:
        excess = load[n] - quota[n]
        if excess <= 0:
            continue
        # Lowest score first, but not a shard another node gave up already: a shard short
        # of two owners could need a node that is full (rf > 1).
        held = sorted(
            (s for s, owners in enumerate(out) if n in owners), key=lambda s: (len(out[s]) < r, ws(s, n), s)
        )
        for s in held[:excess]:
            out[s].remove(n)
            load[n] -= 1
    pairs = sorted((-ws(s, n), n, s) for s, owners in enumerate(out) if len(owners) < r for n in ids)
    for _, n, s in pairs:
        if len(out[s]) < r and n not in out[s] and load[n] < quota[n]:
            out[s].append(n)
            load[n] += 1
    for s, owners in enumerate(out):
        while len(owners) < r:
            _swap_in(out, s, ids, load, quota, ws)
    # Best score first, as routing orders owners (the first owner answers reads first).
    return [sorted(owners, key=lambda n: (-ws(s, n), n)) for s, owners in enumerate(out)]


def _swap_in(
    out: Table, s: int, ids: Sequence[str], load: dict[str, int], quota: Mapping[str, int], ws: Callable[[int, str], float]
) -> None:
    """Give short shard `s` one more owner when every node with room already owns it:
    a node `n` without `s` hands one of its shards `t` to a node `m` with room (best
    scores first), then takes `s`. Two moves instead of one, but every quota holds. With
    no such exchange (fewer nodes than rf would need), `s` takes its best node over quota."""
    roomy = [m for m in ids if load[m] < quota[m]]
    donors = sorted((n for n in ids if n not in out[s]), key=lambda n: (-ws(s, n), n))
    best: tuple[float, str, int, str] | None = None
    for n in donors:
        for t, owners in enumerate(out):
            if n not in owners:
                continue
            for m in roomy:
                if m not in owners:
                    cand = (-ws(t, m), n, t, m)
                    if best is None or cand < best:
                        best = cand
        if best is not None:
            break
    if best is None:
        n = donors[0]
        out[s].append(n)
        load[n] += 1
        return
    _, n, t, m = best
    out[t].remove(n)
    out[t].append(m)
    load[m] += 1
    out[s].append(n)


def initial_table(shards: int, weights: Mapping[str, float], rf: int) -> Table:
    """Placement 2 of a group that has no table yet: weighted rendezvous, balanced."""
    ids = sorted(weights)
    proposal = [
        sorted(ids, key=lambda n: (-weighted_score(s, n, weights[n]), n))[: min(rf, len(ids))] for s in range(shards)
    ]
    return rebalance_table(proposal, weights, rf)


def owner_table(
    layout: Layout,
    group_nodes: Sequence[str],
    rf: int,
    weights: Mapping[str, float] | None = None,
    kept: Sequence[Sequence[str]] | None = None,
) -> Table:
    """Owners of every shard of `layout` in one group (`group_nodes`: its owning ids).

    Placement 2 uses `kept`, the group's journaled table for S, when there is one.
    """
    if layout.placement == 1:
        return [rendezvous_owners(s, group_nodes, rf) for s in range(layout.shards)]
    if layout.placement == 2:
        if kept is not None and len(kept) == layout.shards:
            return [list(o) for o in kept]
        w = weights or {}
        return initial_table(layout.shards, {n: w.get(n, DEFAULT_WEIGHT) for n in group_nodes}, rf)
    raise ValueError(f"unknown placement version {layout.placement}")
