"""Hedged reads: a hung replica (SIGSTOP) costs a search the hedge delay, not its deadline.

Each test starts its own small cluster (600 documents, 16 shards, a replica for every
shard), records the answers, really stops one devnode and checks that searches come back
complete (no degraded header), identical, and before `node_timeout_ms` (10 s here),
a bound only a hedge can meet. The health prober runs with a long interval so that it
cannot be what routes around the stopped node: the hedge has to.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support import miroir_proc
from tests.support.corpus import CORPUS, read_docs
from tests.support.pairs import index_with

N_DOCS = 600
SHARDS = 16
UID = "pk"
HEADER = "X-Miroir-Degraded"
# Deadline of a sub-query: far longer than any answer the tests accept.
NODE_TIMEOUT_MS = 10_000
# Without a hedge the stopped node's part waits for its deadline (the test after proves
# it), so any answer before the deadline was hedged. The bound is the deadline itself (a
# margin for the clock), not a guess at how fast a loaded machine answers.
ANSWER_BOUND_S = NODE_TIMEOUT_MS / 1000 * 0.9
# Probes far apart: the stopped node stays "available", so only hedging can help.
QUIET_HEALTH = {"interval_ms": 60_000}

pytestmark = pytest.mark.skipif(not CORPUS.exists(), reason=f"corpus not found: {CORPUS}")


@pytest.fixture(scope="module")
def docs() -> list[dict]:
    return read_docs(N_DOCS)


@contextlib.contextmanager
def loaded_cluster(docs: list[dict], scatter: dict, **shape) -> Iterator[tuple[miroir_proc.MiroirCluster, httpx.Client]]:
    extra = {"scatter": scatter, "health": QUIET_HEALTH}
    with miroir_proc.start_cluster(shards=SHARDS, extra=extra, **shape) as c, httpx.Client(
        base_url=c.url, timeout=30
    ) as client:
        index_with(client, UID, docs, {"filterableAttributes": ["section", "id"]})
        yield c, client


@contextlib.contextmanager
def stopped(c: miroir_proc.MiroirCluster, node_id: str) -> Iterator[None]:
    pid = c.node(node_id).proc.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


# The reads compared before/after: (method, path, body or params). Each goes through
# scatter: ranked search with facets, filtered search, the full hit list, facet search,
# multi-search. Not the document listing: it is never hedged, as a listing pass reads
# each shard from one copy (test_listing_after_rebalance). Every search returns all of
# its hits: hits with equal scores are ordered by the covering set that answered
# (core/merge.py's tie-break), so a page cut inside a tie may differ between two runs.
RANKED = {"limit": 1000, "attributesToRetrieve": ["id"], "showRankingScore": True}
READS = [
    ("POST", f"/indexes/{UID}/search", {"q": "lib", "facets": ["section"], **RANKED}),
    ("POST", f"/indexes/{UID}/search", {"q": "", "filter": "section = utils", **RANKED}),
    ("POST", f"/indexes/{UID}/search", {"q": "", **RANKED}),
    ("POST", f"/indexes/{UID}/facet-search", {"facetName": "section"}),
    ("POST", "/multi-search", {"queries": [{"indexUid": UID, "q": "python", **RANKED}, {"indexUid": UID, "q": "gnu", **RANKED}]}),
]


def read(client: httpx.Client, method: str, path: str, arg: dict) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    if method == "GET":
        r = client.get(path, params=arg)
    else:
        r = client.post(path, json=arg)
    return r, time.monotonic() - started


def comparable(body: dict) -> dict:
    """The answer without what legitimately varies between two runs: the timing, and
    the order of hits inside a run of equal scores (kept: the score sequence and the ids)."""
    body = dict(body)
    body.pop("processingTimeMs", None)
    body.pop("requestUid", None)  # fresh per search (1.50)
    for key in ("hits", "results"):
        rows = body.get(key)
        if isinstance(rows, list) and rows and "indexUid" in rows[0]:
            body[key] = [comparable(x) for x in rows]
        elif isinstance(rows, list):
            scores = [h.get("_rankingScore") for h in rows]
            assert scores == sorted(scores, key=lambda x: -(x or 0)), "hits out of score order"
            body[key] = {"scores": scores, "ids": sorted(h["id"] for h in rows)}
    return body


def answers(client: httpx.Client) -> list[dict]:
    out = []
    for method, path, arg in READS:
        r, _ = read(client, method, path, arg)
        assert r.status_code == 200 and HEADER not in r.headers, (path, r.status_code, r.text[:300])
        out.append(comparable(r.json()))
    return out


def assert_fast_and_same(client: httpx.Client, before: list[dict], rounds: int) -> None:
    # Several rounds, so that the replica/group rotation puts the stopped node in the plan.
    for _ in range(rounds):
        for (method, path, arg), expected in zip(READS, before):
            r, took = read(client, method, path, arg)
            assert r.status_code == 200, (path, r.status_code, r.text[:300])
            assert HEADER not in r.headers, (path, r.headers[HEADER])
            assert took < ANSWER_BOUND_S, f"{path} took {took:.1f}s: not hedged"
            assert comparable(r.json()) == expected, path


@pytest.mark.parametrize(
    "shape, victim",
    [
        (dict(nodes=3, groups=1, rf=2), "n2"),  # the hedge goes to the other replica
        (dict(nodes=4, groups=2, rf=1), "n1"),  # the hedge goes to the other group
    ],
    ids=["rf2", "two-groups"],
)
def test_stopped_replica_is_hedged(docs, shape, victim):
    scatter = {"node_timeout_ms": NODE_TIMEOUT_MS, "hedge_after_ms": 100}
    with loaded_cluster(docs, scatter, **shape) as (c, client):
        before = answers(client)
        with stopped(c, victim):
            assert_fast_and_same(client, before, rounds=2)
            # Passive health: losing a race is not a failure, the node is not marked down.
            assert c.cluster.health.state(victim) != "down"
        # Resumed: it answers again (its backlog of cancelled sub-queries included).
        assert_fast_and_same(client, before, rounds=2)


def test_default_hedge_delay_follows_p95(docs):
    """hedge_after_ms unset: the delay is the node's p95 (floored), once it has history."""
    with loaded_cluster(docs, {"node_timeout_ms": NODE_TIMEOUT_MS}, nodes=3, groups=1, rf=2) as (c, client):
        before = answers(client)
        for _ in range(3):  # latency history for every node (replicas rotate)
            answers(client)
        assert c.cluster.health.latency_p95("n3") is not None
        with stopped(c, "n3"):
            assert_fast_and_same(client, before, rounds=2)
        assert_fast_and_same(client, before, rounds=1)


def test_hedging_disabled_waits_for_the_deadline(docs):
    """An explicit hedge delay beyond the deadline disables hedging: the stopped node's
    part waits for `node_timeout_ms`, then the retry-once rule still completes it."""
    timeout_ms = 1_500
    scatter = {"node_timeout_ms": timeout_ms, "hedge_after_ms": 60_000}
    with loaded_cluster(docs, scatter, nodes=3, groups=1, rf=2) as (c, client):
        method, path, arg = READS[2]
        expected = answers(client)[2]
        with stopped(c, "n1"):
            r, took = read(client, method, path, arg)
        assert r.status_code == 200 and HEADER not in r.headers
        assert comparable(r.json()) == expected
        # Correctness, not speed: with no hedge the answer cannot precede the deadline.
        assert took >= timeout_ms / 1000 * 0.9, f"answered in {took:.2f}s: something hedged"
