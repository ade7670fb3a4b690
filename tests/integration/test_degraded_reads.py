"""Reads when devnodes die (SIGKILL) or hang (SIGSTOP): degradation, 503, retries.

Each test starts its own small cluster (600 documents, 16 shards) and really signals a
devnode process. Expected shards come from the routing functions, never from Miroir.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator

import httpx
import pytest

from miroir.core.routing import shard_for_key
from tests.support import miroir_proc
from tests.support.chaos_helpers import fresh_owners
from tests.support.corpus import CORPUS, read_docs
from tests.support.pairs import index_with

N_DOCS = 600
SHARDS = 16
UID = "pk"
# Short enough that a hung node costs the test little, long enough for a loaded machine.
NODE_TIMEOUT_MS = 1_500
HEADER = "X-Miroir-Degraded"
# Bound on waiting for a resumed node to serve reads again (probes, then handoff checks).
RECOVERY_TIMEOUT_S = 30.0

pytestmark = pytest.mark.skipif(not CORPUS.exists(), reason=f"corpus not found: {CORPUS}")


@pytest.fixture(scope="module")
def docs() -> list[dict]:
    return read_docs(N_DOCS)


@contextlib.contextmanager
def loaded_cluster(docs: list[dict], **shape) -> Iterator[tuple[miroir_proc.MiroirCluster, httpx.Client]]:
    with miroir_proc.start_cluster(shards=SHARDS, **shape) as c, httpx.Client(base_url=c.url, timeout=30) as client:
        index_with(client, UID, docs, {"filterableAttributes": ["section", "id"]})
        yield c, client


def shards_of(c: miroir_proc.MiroirCluster, node_id: str, rf: int) -> list[int]:
    group = next(g for g, ids in c.groups.items() if node_id in ids)
    return [s for s in range(SHARDS) if node_id in fresh_owners(s, c.groups[group], rf, SHARDS)]


def ids_outside(docs: list[dict], lost: list[int]) -> list[int]:
    return sorted(d["id"] for d in docs if shard_for_key(d["id"], SHARDS) not in lost)


def all_hits(client: httpx.Client, **extra) -> httpx.Response:
    return client.post(f"/indexes/{UID}/search", json={"q": "", "limit": 1000, "attributesToRetrieve": ["id"], **extra})


def hit_ids(resp: httpx.Response) -> list[int]:
    return sorted(h["id"] for h in resp.json()["hits"])


def test_killed_node_partial_answers_name_exactly_its_shards(docs):
    with loaded_cluster(docs, nodes=3, rf=1, extra={"scatter": {"node_timeout_ms": NODE_TIMEOUT_MS}}) as (c, client):
        complete = all_hits(client)
        assert complete.status_code == 200 and HEADER not in complete.headers
        assert hit_ids(complete) == sorted(d["id"] for d in docs)

        c.node("n2").kill()
        lost = shards_of(c, "n2", 1)
        assert lost, "n2 owns shards"
        expected_header = "shards=" + ",".join(map(str, lost))
        alive = ids_outside(docs, lost)

        r = all_hits(client)
        assert r.status_code == 200
        assert r.headers[HEADER] == expected_header
        assert hit_ids(r) == alive
        assert r.json()["estimatedTotalHits"] == len(alive)

        r = client.post(f"/indexes/{UID}/facet-search", json={"facetName": "section"})
        assert r.status_code == 200 and r.headers[HEADER] == expected_header
        assert sum(h["count"] for h in r.json()["facetHits"]) == len(alive)

        r = client.get(f"/indexes/{UID}/documents", params={"limit": 1000, "fields": "id"})
        assert r.status_code == 200 and r.headers[HEADER] == expected_header
        assert sorted(d["id"] for d in r.json()["results"]) == alive

        r = client.post("/multi-search", json={"queries": [{"indexUid": UID, "q": "", "limit": 1}]})
        assert r.status_code == 200 and r.headers[HEADER] == expected_header

        # A pinned filter whose shard is alive never asks the dead node: complete answer.
        keep = alive[0]
        r = all_hits(client, filter=f"id = {keep}")
        assert r.status_code == 200 and HEADER not in r.headers
        assert hit_ids(r) == [keep]

        # The client's own mistakes come back once, as the node's error, not as degradation.
        r = all_hits(client, filter="nosuch = 1")
        assert r.status_code == 400 and r.json()["code"] == "invalid_search_filter"
        assert HEADER not in r.headers and "_miroir" not in r.text


def test_stopped_node_times_out_and_recovers(docs):
    with loaded_cluster(docs, nodes=3, rf=1, extra={"scatter": {"node_timeout_ms": NODE_TIMEOUT_MS}}) as (c, client):
        node = c.node("n1")
        lost = shards_of(c, "n1", 1)
        os.kill(node.proc.pid, signal.SIGSTOP)
        try:
            r = all_hits(client)
            assert r.status_code == 200
            assert r.headers[HEADER] == "shards=" + ",".join(map(str, lost))
            assert hit_ids(r) == ids_outside(docs, lost)
        finally:
            os.kill(node.proc.pid, signal.SIGCONT)
        # Health may hold the node back until it is verified; then answers are complete.
        deadline = time.monotonic() + RECOVERY_TIMEOUT_S
        while True:
            r = all_hits(client)
            assert r.status_code == 200
            if HEADER not in r.headers or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert HEADER not in r.headers, "the node did not come back in time"
        assert hit_ids(r) == sorted(d["id"] for d in docs)


def test_error_policy_answers_503(docs):
    extra = {"scatter": {"node_timeout_ms": NODE_TIMEOUT_MS, "unavailable_shard_policy": "error"}}
    with loaded_cluster(docs, nodes=3, rf=1, extra=extra) as (c, client):
        c.node("n3").kill()
        lost = shards_of(c, "n3", 1)
        for resp in (
            all_hits(client),
            client.get(f"/indexes/{UID}/search", params={"q": "lib"}),
            client.post(f"/indexes/{UID}/facet-search", json={"facetName": "section"}),
            client.get(f"/indexes/{UID}/documents"),
        ):
            assert resp.status_code == 503, resp.text
            body = resp.json()
            assert body["code"] == "miroir_shard_unavailable" and body["type"] == "system"
            assert ",".join(map(str, lost)) in body["message"]
        # Shard-aware planning: a query pinned to live shards still answers.
        keep = ids_outside(docs, lost)[0]
        r = all_hits(client, filter=f"id IN [{keep}]")
        assert r.status_code == 200 and hit_ids(r) == [keep]


@pytest.mark.parametrize(
    "shape, victim",
    [
        (dict(nodes=3, groups=1, rf=2), "n1"),  # another replica in the same group
        (dict(nodes=4, groups=2, rf=1), "n1"),  # the owner in the other group
    ],
    ids=["rf2", "two-groups"],
)
def test_killed_replica_is_retried_and_answers_stay_complete(docs, shape, victim):
    extra = {"scatter": {"node_timeout_ms": NODE_TIMEOUT_MS}}
    with loaded_cluster(docs, extra=extra, **shape) as (c, client):
        before = client.post(f"/indexes/{UID}/facet-search", json={"facetName": "section"}).json()["facetHits"]
        c.node(victim).kill()
        everything = sorted(d["id"] for d in docs)
        # Several reads, so that round-robin (groups, replicas) passes the dead node too.
        for _ in range(4):
            r = all_hits(client)
            assert r.status_code == 200 and HEADER not in r.headers, r.headers
            assert hit_ids(r) == everything
            r = client.post(f"/indexes/{UID}/facet-search", json={"facetName": "section"})
            assert r.status_code == 200 and HEADER not in r.headers
            assert r.json()["facetHits"] == before
            r = client.get(f"/indexes/{UID}/documents", params={"limit": 1000, "fields": "id"})
            assert r.status_code == 200 and HEADER not in r.headers
            assert sorted(d["id"] for d in r.json()["results"]) == everything


def test_stopped_replica_times_out_then_retries_elsewhere(docs):
    extra = {"scatter": {"node_timeout_ms": NODE_TIMEOUT_MS}}
    with loaded_cluster(docs, nodes=3, groups=1, rf=2, extra=extra) as (c, client):
        node = c.node("n2")
        os.kill(node.proc.pid, signal.SIGSTOP)
        try:
            for _ in range(2):  # the replica rotation reaches n2 at least once
                r = all_hits(client)
                assert r.status_code == 200 and HEADER not in r.headers, r.headers
                assert hit_ids(r) == sorted(d["id"] for d in docs)
        finally:
            os.kill(node.proc.pid, signal.SIGCONT)
