"""`--data-dir`: a task that reached `succeeded` survives kill -9 (design §10)."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from functools import partial

import httpx
import pytest
import trio

from miroir.devnode.server import serve_devnode
from tests.support.devnodes import free_port, start_devnodes, wait_task


@pytest.fixture
def node(tmp_path):
    with start_devnodes(1, data_dirs=[str(tmp_path / "data")]) as (n,):
        yield n


def write(url: str, method: str, path: str, **kw) -> dict:
    r = httpx.request(method, url + path, timeout=10.0, **kw)
    assert r.status_code == 202, r.text
    return wait_task(url, r.json()["taskUid"])


def test_state_survives_kill_9(node):
    url = node.url
    assert write(url, "POST", "/indexes", json={"uid": "keep", "primaryKey": "id"})["status"] == "succeeded"
    write(url, "PATCH", "/indexes/keep/settings", json={"filterableAttributes": ["tag"], "stopWords": ["a"]})
    write(url, "POST", "/indexes/keep/documents", json=[{"id": i, "tag": f"t{i % 3}"} for i in range(50)])
    write(url, "POST", "/indexes/keep/documents/delete", json={"filter": "tag = t0"})
    write(url, "POST", "/indexes/gone/documents", json=[{"id": 1}])
    write(url, "DELETE", "/indexes/gone")
    write(url, "POST", "/indexes/swap_x/documents", json=[{"id": 1, "side": "x"}])
    write(url, "POST", "/indexes/swap_y/documents", json=[{"id": 1, "side": "y"}])
    write(url, "POST", "/swap-indexes", json=[{"indexes": ["swap_x", "swap_y"]}])
    failed = write(url, "POST", "/indexes", json={"uid": "keep"})
    assert failed["status"] == "failed"
    before_tasks = httpx.get(url + "/tasks", params={"limit": 1000}).json()
    before_index = httpx.get(url + "/indexes/keep").json()
    before_docs = httpx.get(url + "/indexes/keep/documents", params={"limit": 100}).json()

    node.kill()
    node.restart()

    assert httpx.get(url + "/tasks", params={"limit": 1000}).json() == before_tasks
    assert httpx.get(url + "/indexes/keep").json() == before_index
    assert httpx.get(url + "/indexes/keep/documents", params={"limit": 100}).json() == before_docs
    assert before_docs["total"] == 33
    settings = httpx.get(url + "/indexes/keep/settings").json()
    assert settings["filterableAttributes"] == ["tag"] and settings["stopWords"] == ["a"]
    assert httpx.get(url + "/indexes/gone").status_code == 404
    assert httpx.get(url + "/indexes/swap_x/documents/1").json()["side"] == "y"
    search = httpx.post(url + "/indexes/keep/search", json={"filter": "tag = t1", "limit": 0}).json()
    assert search["estimatedTotalHits"] == 17
    # New tasks continue the numbering, the worker runs again.
    newer = write(url, "POST", "/indexes/keep/documents", json=[{"id": 1000}])
    assert newer["uid"] > max(t["uid"] for t in before_tasks["results"]) and newer["status"] == "succeeded"


def test_every_succeeded_task_of_a_burst_survives(node):
    url = node.url
    with httpx.Client(base_url=url, timeout=10.0) as c:
        uids = [c.post("/indexes/burst/documents", json=[{"id": i, "n": i}]).json()["taskUid"] for i in range(30)]
        wait_task(url, uids[14])
        # Kill while the rest may still be running: whatever is succeeded now must survive.
        statuses = {u: c.get(f"/tasks/{u}").json()["status"] for u in uids}
    node.kill()
    node.restart()
    with httpx.Client(base_url=url, timeout=10.0) as c:
        survivors = {d["id"] for d in c.get("/indexes/burst/documents", params={"limit": 100}).json()["results"]}
        for i, u in enumerate(uids):
            if statuses[u] == "succeeded":
                assert c.get(f"/tasks/{u}").json()["status"] == "succeeded"
                assert i in survivors
        fresh = c.post("/indexes/burst/documents", json=[{"id": 999}]).json()["taskUid"]
    assert fresh > max(uids)  # a uid handed out before the crash is never reused


def test_every_accepted_task_survives_kill_9_and_is_processed(node):
    # Like Meilisearch's queue: a 202 means the task is on disk, finished or not.
    url = node.url
    with httpx.Client(base_url=url, timeout=10.0) as c:
        uids = [
            c.post("/indexes/acc/documents", json=[{"id": i, "n": i} for i in range(i * 50, i * 50 + 50)]).json()["taskUid"]
            for i in range(20)
        ]
    node.kill()  # right after the last 202: most tasks are still enqueued
    node.restart()
    for u in uids:
        assert wait_task(url, u, timeout=30)["status"] == "succeeded"
    total = httpx.get(url + "/indexes/acc/documents", params={"limit": 0}).json()["total"]
    assert total == 1000


def test_torn_tail_of_task_log_is_dropped(node, tmp_path):
    write(node.url, "POST", "/indexes", json={"uid": "torn"})
    node.kill()
    with open(tmp_path / "data" / "tasks.log", "ab") as f:
        f.write(b"\x40\x00\x00\x00\x01\x02\x03\x04abc")  # a header promising 64 bytes, then 3
    node.restart()
    assert httpx.get(node.url + "/indexes/torn").status_code == 200
    assert write(node.url, "POST", "/indexes/torn/documents", json=[{"id": 1}])["status"] == "succeeded"


async def test_serve_devnode_in_process(tmp_path):
    """serve_devnode reports its real port, and reloads its data directory."""
    data = str(tmp_path / "inproc")
    async with httpx.AsyncClient(timeout=10.0) as client:
        async with trio.open_nursery() as nursery:
            port = await nursery.start(partial(serve_devnode, port=0, data_dir=data))
            r = await client.post(f"http://127.0.0.1:{port}/indexes/p/documents", json=[{"id": 1}])
            uid = r.json()["taskUid"]
            with trio.fail_after(10):
                while (await client.get(f"http://127.0.0.1:{port}/tasks/{uid}")).json()["status"] != "succeeded":
                    await trio.sleep(0.02)
            nursery.cancel_scope.cancel()
        async with trio.open_nursery() as nursery:
            port = await nursery.start(partial(serve_devnode, port=0, data_dir=data))
            r = await client.get(f"http://127.0.0.1:{port}/indexes/p/documents/1")
            assert r.json() == {"id": 1}
            nursery.cancel_scope.cancel()


def test_cli_port_in_use_and_sigterm():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "miroir.devnode.server", "--port", str(port)],
            capture_output=True, text=True, timeout=30,
        )
    assert proc.returncode == 1
    assert "address already in use" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1

    with start_devnodes(1) as (n,):
        n.proc.send_signal(signal.SIGTERM)
        assert n.proc.wait(timeout=10) == 0
    assert free_port() > 0
