"""Cluster, node client, TaskService and reconciler against real devnode subprocesses.

Each test gets its own journal directory; the devnodes are shared by the module (index
uids differ per test). Every wait is bounded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from miroir.api.app import create_app
from miroir.api.context import Miroir
from miroir.config import config_from_dict
from miroir.core.errors import MeiliError
from miroir.core.model import MiroirState, TaskEnqueued, TaskRecord
from miroir.core.placement import Layout
from miroir.core.taskquery import parse_task_query
from miroir.engine.cluster import Cluster
from miroir.engine.services import create_cluster, run_services
from miroir.engine.tasks import DRIVEN_KEY, DrivenTask
from miroir.net.node import NodeClient, NodeError, NodeUnavailable
from miroir.store.journal import Journal
from tests.support.devnodes import free_port, start_devnodes
from tests.support.journals import miroir_journal

KEY = "node-key-123"
WAIT_S = 10.0


@pytest.fixture(scope="module")
def devnodes():
    with start_devnodes(2, master_key=KEY) as nodes:
        yield nodes


def make_config(devnodes, **cluster) -> object:
    return config_from_dict(
        {
            "auth": {"node_master_key": KEY},
            "cluster": {"shards": 4, "replication_factor": 1, **cluster},
            "nodes": [{"id": f"n{i + 1}", "url": d.url, "group": "g0"} for i, d in enumerate(devnodes)],
        }
    )


def open_journal(path: Path) -> Journal[MiroirState]:
    j = miroir_journal(path)
    j.load()
    return j


@asynccontextmanager
async def running_cluster(path: Path, config) -> AsyncIterator[Cluster]:
    journal = open_journal(path)
    async with trio.open_nursery() as root:
        await root.start(journal.run)
        cluster = await create_cluster(config, journal)
        async with trio.open_nursery() as services:
            await services.start(run_services, cluster)
            try:
                yield cluster
            finally:
                services.cancel_scope.cancel()
        await journal.aclose()


async def wait_finished(cluster: Cluster, uid: int) -> dict:
    with trio.fail_after(WAIT_S):
        while True:
            view = cluster.tasks.get(uid)
            if view["status"] in ("succeeded", "failed", "canceled"):
                return view
            await trio.sleep(0.01)


async def node_add(cluster: Cluster, node: str, index: str, docs: list[dict]) -> int:
    body = await cluster.fleet[node].call(
        "POST", f"/indexes/{index}/documents", params={"primaryKey": "id"}, json=docs
    )
    return body["taskUid"]


# --- node client ----------------------------------------------------------------------


async def test_node_client_errors_and_unavailable(devnodes):
    client = NodeClient("n1", devnodes[0].url, api_key=KEY, timeout_s=5)
    try:
        assert (await client.call("GET", "/health")) == {"status": "available"}
        with pytest.raises(NodeError) as info:
            await client.call("GET", "/indexes/nope")
        err = info.value
        assert (err.code, err.status, err.type, err.node_id) == ("index_not_found", 404, "invalid_request", "n1")
        assert isinstance(err, MeiliError)
    finally:
        await client.aclose()
    bad = NodeClient("n1", devnodes[0].url, api_key="wrong")
    try:
        with pytest.raises(NodeError) as info:
            await bad.call("GET", "/indexes")
        assert info.value.code == "invalid_api_key"
    finally:
        await bad.aclose()
    dead = NodeClient("gone", f"http://127.0.0.1:{free_port()}", timeout_s=2)
    try:
        with pytest.raises(NodeUnavailable) as info:
            await dead.call("GET", "/health")
        assert info.value.node_id == "gone"
    finally:
        await dead.aclose()


# --- cluster bootstrap -----------------------------------------------------------------


async def test_bootstrap_then_journal_wins(devnodes, tmp_path):
    config = make_config(devnodes)
    async with running_cluster(tmp_path, config) as cluster:
        assert {i: (n.url, n.group, n.state) for i, n in cluster.state.nodes.items()} == {
            "n1": (devnodes[0].url, "g0", "active"),
            "n2": (devnodes[1].url, "g0", "active"),
        }
        assert cluster.topology.groups == {"g0": ["n1", "n2"]}
        targets = cluster.topology.write_targets(Layout(4, 2), 1)
        assert list(targets) == ["g0"] and len(targets["g0"]) == 1
        assert cluster.topology.owners(Layout(4, 2), 1, "g0") == targets["g0"]
    # A later start with a different node list keeps the journaled topology.
    other = config_from_dict({"nodes": [{"id": "x9", "url": "http://127.0.0.1:1", "group": "g0"}]})
    async with running_cluster(tmp_path, other) as cluster:
        assert sorted(cluster.state.nodes) == ["n1", "n2"]
        assert sorted(cluster.fleet) == ["n1", "n2"]


# --- plain tasks: enqueue + reconciler ---------------------------------------------------


async def test_plain_task_folds_to_succeeded(devnodes, tmp_path):
    async with running_cluster(tmp_path, make_config(devnodes)) as cluster:
        n1 = await node_add(cluster, "n1", "plain", [{"id": 1}, {"id": 2}])
        n2 = await node_add(cluster, "n2", "plain", [{"id": 3}])
        rec = await cluster.tasks.enqueue(
            index_uid="plain",
            type="documentAdditionOrUpdate",
            node_tasks={"n1": n1, "n2": n2},
            details={"receivedDocuments": 3, "indexedDocuments": None},
        )
        assert rec.status == "enqueued" and rec.enqueued_at
        view = await wait_finished(cluster, rec.uid)
        assert view["status"] == "succeeded", view
        assert view["details"] == {"receivedDocuments": 3, "indexedDocuments": 3}
        assert view["startedAt"] and view["finishedAt"] and view["duration"].startswith("P")
        second = await cluster.tasks.enqueue(index_uid="plain", type="indexDeletion", node_tasks={}, details=None)
        assert second.uid == rec.uid + 1


async def test_plain_task_failure_carries_the_node_error(devnodes, tmp_path):
    async with running_cluster(tmp_path, make_config(devnodes)) as cluster:
        ok = await node_add(cluster, "n1", "failing", [{"id": 1}])
        bad = await node_add(cluster, "n2", "failing", [{"name": "no id"}])
        rec = await cluster.tasks.enqueue(
            index_uid="failing",
            type="documentAdditionOrUpdate",
            node_tasks={"n1": ok, "n2": bad},
            details={"receivedDocuments": 2, "indexedDocuments": None},
        )
        view = await wait_finished(cluster, rec.uid)
        assert view["status"] == "failed"
        assert view["error"]["code"] == "missing_document_id"
        assert view["details"]["indexedDocuments"] == 0


# --- driven tasks ------------------------------------------------------------------------


async def test_driven_tasks_run_in_order_per_index(devnodes, tmp_path):
    events: list[str] = []
    gate = trio.Event()

    def driver(name: str, wait: trio.Event | None = None):
        async def run(handle: DrivenTask) -> None:
            events.append(f"start {name}")
            await handle.set_processing()
            if wait is not None:
                await wait.wait()
            body = await handle.service.fleet["n1"].call("POST", "/indexes", json={"uid": f"drv-{name}"})
            await handle.add_node_tasks({"n1": body["taskUid"]})
            views = await handle.wait_node_tasks({"n1": body["taskUid"]}, timeout_s=WAIT_S)
            assert views["n1"]["status"] == "succeeded"
            events.append(f"end {name}")
            await handle.finish("succeeded", details={"primaryKey": None})

        return run

    async with running_cluster(tmp_path, make_config(devnodes)) as cluster:
        tasks = cluster.tasks
        a = await tasks.enqueue_driven(index_uid="ordered", type="indexCreation", details={"primaryKey": None}, driver=driver("a", gate))
        b = await tasks.enqueue_driven(index_uid="ordered", type="indexCreation", details={"primaryKey": None}, driver=driver("b"))
        other = await tasks.enqueue_driven(index_uid="elsewhere", type="indexCreation", details={}, driver=driver("c"))
        await wait_finished(cluster, other.uid)  # another index is not blocked by `a`
        assert tasks.get(b.uid)["status"] == "enqueued"
        assert tasks.get(a.uid)["status"] == "processing"
        assert tasks.get(a.uid)["details"] == {"primaryKey": None}  # private marker hidden
        gate.set()
        view_b = await wait_finished(cluster, b.uid)
        assert events.index("end a") < events.index("start b")
        assert view_b["status"] == "succeeded" and view_b["startedAt"] and view_b["finishedAt"]
        assert cluster.state.tasks[b.uid].node_tasks["n1"] >= 0
        assert DRIVEN_KEY not in cluster.state.tasks[b.uid].details


async def test_driver_exception_fails_the_task(devnodes, tmp_path):
    async def broken(handle: DrivenTask) -> None:
        await handle.set_processing()
        raise ValueError("boom")

    async with running_cluster(tmp_path, make_config(devnodes)) as cluster:
        rec = await cluster.tasks.enqueue_driven(index_uid="x", type="settingsUpdate", details={}, driver=broken)
        view = await wait_finished(cluster, rec.uid)
        assert view["status"] == "failed" and view["error"]["code"] == "internal"
        assert "boom" in view["error"]["message"]


async def test_unfinished_driven_task_fails_after_restart(devnodes, tmp_path):
    journal = open_journal(tmp_path)
    async with trio.open_nursery() as n:
        await n.start(journal.run)
        await journal.append(
            TaskEnqueued(
                task=TaskRecord(uid=0, index_uid="x", type="indexCreation", details={"primaryKey": None, DRIVEN_KEY: True},
                                enqueued_at="2024-01-01T00:00:00.000000Z")
            )
        )
        await journal.aclose()
    async with running_cluster(tmp_path, make_config(devnodes)) as cluster:
        view = await wait_finished(cluster, 0)
        assert view["status"] == "failed" and "restarted" in view["error"]["message"]
        assert view["details"] == {"primaryKey": None}


# --- cancel, delete and the HTTP routes -------------------------------------------------


async def test_cancel_delete_and_routes(devnodes, tmp_path):
    gate = trio.Event()

    async def blocked(handle: DrivenTask) -> None:
        await handle.set_processing()
        await gate.wait()
        await handle.finish("succeeded")

    async def never(handle: DrivenTask) -> None:  # must be skipped once canceled
        raise AssertionError("canceled task ran")

    async with running_cluster(tmp_path, make_config(devnodes)) as cluster:
        ctx = Miroir(cluster.config)
        ctx.engine = cluster
        app = create_app(ctx)
        client = app.test_client()

        n1 = await node_add(cluster, "n1", "routes", [{"id": 1}])
        done = await cluster.tasks.enqueue(index_uid="routes", type="documentAdditionOrUpdate", node_tasks={"n1": n1},
                                           details={"receivedDocuments": 1, "indexedDocuments": None})
        await wait_finished(cluster, done.uid)
        first = await cluster.tasks.enqueue_driven(index_uid="q", type="settingsUpdate", details={}, driver=blocked)
        second = await cluster.tasks.enqueue_driven(index_uid="q", type="settingsUpdate", details={}, driver=never)

        r = await client.post("/tasks/cancel")
        assert r.status_code == 400 and (await r.get_json())["code"] == "missing_task_filters"
        r = await client.post(f"/tasks/cancel?uids={second.uid},{done.uid}")
        assert r.status_code == 200  # not 202: 1.50's tasks routes answer Ok
        summary = await r.get_json()
        assert summary["type"] == "taskCancelation" and summary["status"] == "enqueued" and summary["indexUid"] is None
        cancel_view = await wait_finished(cluster, summary["taskUid"])
        assert cancel_view["status"] == "succeeded"
        assert cancel_view["details"] == {
            # 1.50 counts every matched task (the finished one too); only `second` is canceled.
            "matchedTasks": 2, "canceledTasks": 1, "originalFilter": f"?uids={second.uid},{done.uid}",
        }
        r = await client.get(f"/tasks/{second.uid}")
        assert (await r.get_json())["status"] == "canceled"
        assert (await r.get_json())["canceledBy"] == summary["taskUid"]
        gate.set()
        await wait_finished(cluster, first.uid)

        r = await client.get("/tasks?indexUids=q&limit=1")
        page = await r.get_json()
        assert page["total"] == 2 and [t["uid"] for t in page["results"]] == [second.uid] and page["next"] == first.uid
        r = await client.get("/tasks?statuses=nope")
        assert r.status_code == 400 and (await r.get_json())["code"] == "invalid_task_statuses"
        r = await client.get("/tasks/abc")
        assert r.status_code == 400 and (await r.get_json())["code"] == "invalid_task_uids"
        r = await client.get("/tasks/999999")
        assert r.status_code == 404 and (await r.get_json())["code"] == "task_not_found"

        r = await client.delete(f"/tasks?uids={done.uid}")
        assert r.status_code == 200  # as 1.50
        deletion = await wait_finished(cluster, (await r.get_json())["taskUid"])
        assert deletion["type"] == "taskDeletion"
        assert deletion["details"] == {"matchedTasks": 1, "deletedTasks": 1, "originalFilter": f"?uids={done.uid}"}
        r = await client.get(f"/tasks/{done.uid}")
        assert r.status_code == 404
        # Forwarded: the node's own task is gone too (eventually: its deletion is a task).
        with trio.fail_after(WAIT_S):
            while True:
                try:
                    await cluster.fleet["n1"].call("GET", f"/tasks/{n1}")
                except NodeError as e:
                    assert e.code == "task_not_found"
                    break
                await trio.sleep(0.02)

        r = await client.get("/_miroir/topology")
        topo = await r.get_json()
        assert [n["id"] for n in topo["nodes"]] == ["n1", "n2"] and topo["groups"] == {"g0": ["n1", "n2"]}


async def test_list_uses_meilisearch_filters(devnodes, tmp_path):
    async with running_cluster(tmp_path, make_config(devnodes)) as cluster:
        for i in range(3):
            await cluster.tasks.enqueue(index_uid=f"i{i}", type="indexDeletion", node_tasks={}, details={"deletedDocuments": None})
        await wait_finished(cluster, 2)
        page = cluster.tasks.list(parse_task_query({"indexUids": "i0,i2"}))
        assert [t["uid"] for t in page["results"]] == [2, 0]
        assert page["results"][0]["details"] == {"deletedDocuments": 0}


async def test_lost_and_unknown_node_tasks_fail(devnodes, tmp_path):
    async with running_cluster(tmp_path, make_config(devnodes)) as cluster:
        real = await node_add(cluster, "n1", "lost", [{"id": 1}])
        lost = await cluster.tasks.enqueue(
            index_uid="lost", type="documentAdditionOrUpdate", node_tasks={"n1": real, "n2": 10**9},
            details={"receivedDocuments": 2, "indexedDocuments": None},
        )
        gone = await cluster.tasks.enqueue(index_uid="lost", type="indexDeletion", node_tasks={"n7": 1}, details=None)
        view = await wait_finished(cluster, lost.uid)
        assert view["status"] == "failed" and view["error"]["code"] == "miroir_node_unavailable"
        assert "n2" in view["error"]["message"]
        view = await wait_finished(cluster, gone.uid)
        assert view["status"] == "failed" and "n7" in view["error"]["message"]


async def test_task_never_starts_before_it_was_enqueued(devnodes, tmp_path):
    async with running_cluster(tmp_path, make_config(devnodes)) as cluster:
        n1 = await node_add(cluster, "n1", "clock", [{"id": 1}])
        await cluster.fleet["n1"].call("GET", f"/tasks/{n1}")
        late = "2999-01-01T00:00:00.000000Z"  # the node's times are all earlier than this
        rec = await cluster.tasks.enqueue(index_uid="clock", type="documentAdditionOrUpdate", node_tasks={"n1": n1},
                                          details={"receivedDocuments": 1, "indexedDocuments": None}, enqueued_at=late)
        view = await wait_finished(cluster, rec.uid)
        assert view["enqueuedAt"] == view["startedAt"] == view["finishedAt"] == late
        assert view["duration"] == "PT0.000000S"
