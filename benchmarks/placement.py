"""Placement balance and movement (issue 17): busiest / mean documents per node, weighted
shares and documents moved when a node joins, for placement 1 (rendezvous alone) and 2
(balanced, weighted, fewest moves), over the Debian corpus.

Pure computation, no process: a document's shard is `xxh64(id) % S` (core/routing.py) and
a node holds the documents of the shards the placement gives it, exactly what a load of
the corpus into devnodes puts on each node (tests/test_placement_rebalance.py checks
that on real devnodes). Run:

    PYTHONPATH=src python benchmarks/placement.py [--docs N] [--json]
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from collections import Counter
from pathlib import Path

from miroir.core.placement import Layout, owner_table, rebalance_table
from miroir.core.routing import shard_for_key

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "debian-packages.ndjson.gz"
NODE_COUNTS = (3, 4, 6, 8, 12, 16)
SHARD_COUNTS = (16, 48, 64, 256)


def corpus_ids(limit: int | None) -> list[object]:
    with gzip.open(CORPUS, "rt", encoding="utf-8") as f:
        out = []
        for line in f:
            out.append(json.loads(line)["id"])
            if limit is not None and len(out) >= limit:
                break
        return out


def per_shard(ids: list[object], shards: int) -> list[int]:
    c = Counter(shard_for_key(i, shards) for i in ids)
    return [c.get(s, 0) for s in range(shards)]


def node_docs(table: list[list[str]], sizes: list[int]) -> Counter:
    out: Counter = Counter()
    for s, owners in enumerate(table):
        for n in owners:
            out[n] += sizes[s]
    return out


def nodes(n: int) -> list[str]:
    return [f"n{i}" for i in range(1, n + 1)]


def balance(sizes: list[int], placement: int, rf: int) -> dict[int, dict[str, float]]:
    shards = len(sizes)
    out = {}
    for n in NODE_COUNTS:
        docs = node_docs(owner_table(Layout(shards, placement), nodes(n), rf), sizes)
        mean = sum(sizes) * min(rf, n) / n
        out[n] = {"busiest": max(docs.values()) / mean, "emptiest": min(docs.get(x, 0) for x in nodes(n)) / mean}
    return out


def weighted(sizes: list[int], placement: int) -> dict[str, float]:
    weights = {"a": 1.0, "b": 1.0, "c": 2.0}
    docs = node_docs(owner_table(Layout(len(sizes), placement), list(weights), 1, weights), sizes)
    return {n: docs[n] / sum(sizes) for n in weights}


def join_moves(sizes: list[int], rf: int) -> dict[int, float]:
    """Documents copied when node N+1 joins N, over the minimum (1/(N+1) of the copies)."""
    shards = len(sizes)
    out = {}
    for n in NODE_COUNTS:
        before = owner_table(Layout(shards, 2), nodes(n), rf)
        after = rebalance_table(before, dict.fromkeys(nodes(n + 1), 1.0), rf)
        moved = sum(sizes[s] * len(set(b) - set(a)) for s, (a, b) in enumerate(zip(before, after)))
        out[n] = moved / (sum(sizes) * min(rf, n + 1) / (n + 1))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=None, help="first N documents of the corpus (default all)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    ids = corpus_ids(args.docs)
    results: dict = {"documents": len(ids), "shards": {}}
    for shards in SHARD_COUNTS:
        sizes = per_shard(ids, shards)
        results["shards"][shards] = {
            f"p{p}_rf{rf}": balance(sizes, p, rf) for p in (1, 2) for rf in (1, 2)
        } | {
            "weights_1_1_2": {f"p{p}": weighted(sizes, p) for p in (1, 2)},
            "join_moves_rf1": join_moves(sizes, 1),
            "join_moves_rf2": join_moves(sizes, 2),
        }
    if args.json:
        json.dump(results, sys.stdout, indent=1)
        return 0
    print(f"{len(ids)} documents of the Debian corpus; busiest / mean documents per node (equal nodes)")
    header = "| S | placement | RF | " + " | ".join(f"{n} nodes" for n in NODE_COUNTS) + " |"
    print(header)
    print("|" + "---|" * (3 + len(NODE_COUNTS)))
    for shards, r in results["shards"].items():
        for p in (1, 2):
            for rf in (1, 2):
                row = r[f"p{p}_rf{rf}"]
                print(f"| {shards} | {p} | {rf} | " + " | ".join(f"{row[n]['busiest']:.2f}" for n in NODE_COUNTS) + " |")
    print("\nweights 1:1:2, RF 1: share of the documents (target 25% / 25% / 50%)")
    print("| S | placement | a | b | c |\n|---|---|---|---|---|")
    for shards, r in results["shards"].items():
        for p in (1, 2):
            w = r["weights_1_1_2"][f"p{p}"]
            print(f"| {shards} | {p} | {w['a']:.1%} | {w['b']:.1%} | {w['c']:.1%} |")
    print("\nplacement 2, one node joins N: documents copied / minimum (1/(N+1) of the copies)")
    print("| S | RF | " + " | ".join(f"{n}->{n + 1}" for n in NODE_COUNTS) + " |")
    print("|" + "---|" * (2 + len(NODE_COUNTS)))
    for shards, r in results["shards"].items():
        for rf in (1, 2):
            row = r[f"join_moves_rf{rf}"]
            print(f"| {shards} | {rf} | " + " | ".join(f"{row[n]:.2f}" for n in NODE_COUNTS) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
