"""A node task lost with its node's disk does not fail a write that kept its quorum.

Real processes on loopback (devnodes without a data dir: a restart is an empty disk),
Miroir in a thread. RG=2, RF=1 over 2 nodes: every shard has one owner per group, so
one group's acknowledgement is a quorum. The write is acknowledged by both nodes; n2 is
kept from finishing its node task (a large batch of another index is ahead of it in n2's
queue), then SIGKILLed and restarted empty. Miroir then cannot find n2's node task; the
Miroir task must still succeed (n1 applied the write; the refill brings n2's copy back).
"""

from __future__ import annotations

import time

import httpx
import pytest

from tests.support.chaos_helpers import (
    check_copies,
    create_index,
    durable_cluster,
    node_repaired,
    topology_nodes,
    wait_until,
)
from tests.support.devnodes import wait_task

pytestmark = pytest.mark.timeout(90)

S = 4
DEGRADED = "X-Miroir-Degraded"
# Tasks created on n2 before the write: its node task uid stays above every uid the
# refill creates on the emptied node (which starts again at 0) within this test.
PAD_TASKS = 60
BLOCKER_DOCS = 100_000  # a few seconds of indexing on a devnode


def test_write_with_quorum_succeeds_although_a_wiped_node_lost_its_task(tmp_path):
    t_start = time.monotonic()
    with durable_cluster(2, groups=2, rf=1, shards=S, tmp=tmp_path, durable=False) as c:
        assert c.groups == {"g0": ["n1"], "g1": ["n2"]}
        create_index(c.url, "books")
        base = [{"id": i, "title": f"book {i}"} for i in range(20)]
        r = httpx.post(f"{c.url}/indexes/books/documents", json=base, timeout=30)
        assert r.status_code == 202 and wait_task(c.url, r.json()["taskUid"], timeout=30)["status"] == "succeeded"

        n2 = c.node("n2")
        with httpx.Client(base_url=n2.url, timeout=30) as node:
            for k in range(PAD_TASKS):
                assert node.post("/indexes/pad/documents", json=[{"id": k}]).status_code == 202
            blocker = [{"id": i, "t": f"w{i % 500} x{i}"} for i in range(BLOCKER_DOCS)]
            blocker_uid = node.post("/indexes/blocker/documents", json=blocker).json()["taskUid"]

            docs = [{"id": 1000 + i, "title": f"new book {i}"} for i in range(10)]
            r = httpx.post(f"{c.url}/indexes/books/documents", json=docs, timeout=30)
            assert r.status_code == 202, r.text
            assert DEGRADED not in r.headers, r.headers[DEGRADED]  # both owners took it
            task_uid = r.json()["taskUid"]
            # n2 holds the write's node task, not finished (behind the blocker).
            unfinished = node.get("/tasks", params={"indexUids": "books", "statuses": "enqueued,processing"}).json()
            assert [t["uid"] for t in unfinished["results"]], "n2 already applied the write"
            assert min(t["uid"] for t in unfinished["results"]) > blocker_uid
            assert node.get(f"/tasks/{blocker_uid}").json()["status"] in ("enqueued", "processing")
        n2.kill()  # its disk is gone with it (no data dir)
        wait_until(lambda: topology_nodes(c.url)["n2"]["health"]["state"] == "down", timeout=20, what="n2 down")
        n2.restart()

        view = wait_task(c.url, task_uid, timeout=30)
        assert view["status"] == "succeeded", view
        assert view["error"] is None
        assert view["details"] == {"receivedDocuments": 10, "indexedDocuments": 10}
        assert view["startedAt"] and view["finishedAt"] and view["duration"]

        # The refill restored n2's copy, the write included.
        wait_until(lambda: node_repaired(c.url, "n2"), timeout=30, what="n2 refilled")
        assert topology_nodes(c.url)["n2"]["repair"]["refills"] == 1
        expected = {str(d["id"]): d for d in base + docs}
        counts = check_copies(c, "books", expected, S)
        assert counts == {"n1": 30, "n2": 30}
    print(f"\ntask={view['status']} per_node={counts} elapsed_s={time.monotonic() - t_start:.1f}")


# --- the reconciler's view of a node task its node lost (no I/O: `_view` alone) --------


class _Tasks:
    def __init__(self) -> None:
        self.fleet = {"n1": object(), "n2": object()}


def _write(uid: int, node_shards=None):
    from miroir.core.model import TaskRecord

    return TaskRecord(uid=uid, index_uid="books", type="documentAdditionOrUpdate", node_tasks={"n2": 5},
                      node_shards=node_shards)


def test_reconciler_lost_node_task_is_lost_for_good_and_uids_reused_are_not_ours():
    from miroir.core.taskfold import LOST_KEY
    from miroir.engine.reconciler import LOST_AFTER_POLLS, Reconciler

    r = Reconciler(_Tasks())  # type: ignore[arg-type]
    write = _write(1, {"n2": [0, 1]})
    ours = {"uid": 5, "status": "processing", "type": "documentAdditionOrUpdate", "indexUid": "books"}
    assert r._view(write, "n2", 5, {5: ours}) is ours
    assert r._view(write, "n2", 5, None) is ours  # unreachable: last view kept
    # Wiped: the node numbers its tasks from 0 again; uid 5 is now the refill's index
    # creation, which is not the write's node task.
    reused = {"uid": 5, "status": "succeeded", "type": "indexCreation", "indexUid": "books"}
    views = [r._view(write, "n2", 5, {5: reused}) for _ in range(LOST_AFTER_POLLS)]
    assert all(not v.get(LOST_KEY) for v in views[:-1]) and views[-1][LOST_KEY]
    assert views[-1]["error"]["code"] == "miroir_node_unavailable"
    # Once lost, always lost for this task, whatever the node answers later...
    again = {"uid": 5, "status": "succeeded", "type": "documentAdditionOrUpdate", "indexUid": "books"}
    assert r._view(write, "n2", 5, {5: again})[LOST_KEY]
    # ... while a later write that got uid 5 from the emptied node sees its own task.
    assert r._view(_write(2, {"n2": [0]}), "n2", 5, {5: again}) is again
    # Not a write (no node_shards): node task types vary, any view with the uid counts.
    assert r._view(_write(3), "n2", 5, {5: reused}) is reused
    # A node gone from the cluster lost its tasks too.
    assert r._view(_write(4, {"n9": [0]}), "n9", 5, {})[LOST_KEY]
