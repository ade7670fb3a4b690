"""Stats with a node killed answer 200 and degrade as searches do (issue 15).

`GET /indexes/{uid}/stats` and `GET /stats` over three devnode processes, one `kill -9`ed:
asked at once (Miroir learns of the death from the call) and once the health prober marks
the node down. RF = 2: the other owners answer, the count is exact, nothing is degraded.
RF = 1: the dead node's shards are left out of the count and named in `X-Miroir-Degraded`,
exactly as a search names them.
"""

from __future__ import annotations

import httpx
import pytest

from tests.support.chaos_helpers import (
    assignment,
    create_index,
    durable_cluster,
    node_docs,
    topology_nodes,
    wait_until,
)
from tests.support.devnodes import wait_task

UID = "films"
SHARDS = 8
DOCS = [{"id": i, "title": f"film {i}", "genre": ["drama", "comedy"][i % 2]} for i in range(400)]
DEGRADED = "X-Miroir-Degraded"


@pytest.mark.parametrize("rf", [1, 2])
def test_stats_answer_200_with_a_node_killed(tmp_path, rf):
    with durable_cluster(3, rf=rf, shards=SHARDS, tmp=tmp_path, durable=False) as c:
        create_index(c.url, UID)
        r = httpx.post(f"{c.url}/indexes/{UID}/documents", json=DOCS, timeout=10)
        assert r.status_code == 202, r.text
        assert wait_task(c.url, r.json()["taskUid"], timeout=30)["status"] == "succeeded"
        whole = httpx.get(f"{c.url}/indexes/{UID}/stats", timeout=10)
        assert whole.status_code == 200 and DEGRADED not in whole.headers
        assert whole.json()["numberOfDocuments"] == len(DOCS)

        dead = "n2"
        if rf == 1:
            lost = sorted(assignment(c, SHARDS)[dead])
            expected = sum(len(node_docs(c.node(n).url, UID)) for n in c.node_ids if n != dead)
            header = "shards=" + ",".join(str(s) for s in lost)
        else:
            expected, header = len(DOCS), None
        c.node(dead).kill()

        for phase in ("at once", "known down"):
            if phase == "known down":
                wait_until(lambda: topology_nodes(c.url)[dead]["health"]["state"] == "down", timeout=15, what="n2 down")
            one = httpx.get(f"{c.url}/indexes/{UID}/stats", timeout=10)
            assert one.status_code == 200, (phase, one.text)
            assert one.headers.get(DEGRADED) == header, phase
            assert one.json()["numberOfDocuments"] == expected, phase
            dist = one.json()["fieldDistribution"]
            assert dist == {"genre": expected, "id": expected, "title": expected}, phase

            every = httpx.get(f"{c.url}/stats", timeout=10)
            assert every.status_code == 200, (phase, every.text)
            assert every.headers.get(DEGRADED) == header, phase
            assert every.json()["indexes"][UID] == one.json(), phase

            search = httpx.post(f"{c.url}/indexes/{UID}/search", json={"limit": 0}, timeout=10)
            assert search.headers.get(DEGRADED) == header  # stats degrade exactly as searches do


def test_stats_under_the_error_policy_answer_503_like_searches(tmp_path):
    policy = {"scatter": {"unavailable_shard_policy": "error"}}
    with durable_cluster(3, rf=1, shards=SHARDS, tmp=tmp_path, durable=False, extra=policy) as c:
        for uid in (UID, "series"):
            create_index(c.url, uid)
            r = httpx.post(f"{c.url}/indexes/{uid}/documents", json=DOCS[:100], timeout=10)
            assert r.status_code == 202, r.text
            assert wait_task(c.url, r.json()["taskUid"], timeout=30)["status"] == "succeeded"
        c.node("n2").kill()
        search = httpx.post(f"{c.url}/indexes/{UID}/search", json={"limit": 0}, timeout=10)
        assert search.status_code == 503 and search.json()["code"] == "miroir_shard_unavailable", search.text
        for path in (f"/indexes/{UID}/stats", "/stats"):
            r = httpx.get(c.url + path, timeout=10)
            assert r.status_code == 503, (path, r.text)
            assert r.json()["code"] == "miroir_shard_unavailable", (path, r.text)
            assert r.json()["message"].startswith("Shards "), r.text
