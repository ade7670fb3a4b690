"""The task history is bounded as Meilisearch bounds it (v1.2+, index-scheduler
`cleanup_task_queue`): at `tasks.max_kept` kept tasks, a `taskDeletion` task deletes the
oldest `tasks.delete_batch` finished tasks; unfinished tasks are never deleted.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import trio

from miroir.config import config_from_dict
from miroir.core.errors import MeiliError
from miroir.core.model import TaskUpdated
from miroir.core.taskfold import TERMINAL, parse_ts
from miroir.core.taskquery import parse_task_query, rfc3339
from miroir.engine.tasks import TASKS_QUEUE, DrivenTask, TaskService
from miroir.net.fleet import Fleet
from tests.support.journals import miroir_journal
from tests.support.miroir_proc import start_cluster

MAX_KEPT = 30
BATCH = 10
WAIT_S = 10.0
FILTER_TAIL = "&statuses=succeeded,failed,canceled"


@asynccontextmanager
async def task_service(path: Path) -> AsyncIterator[TaskService]:
    journal = miroir_journal(path)
    journal.load()
    async with trio.open_nursery() as root:
        await root.start(journal.run)
        svc = TaskService(journal, Fleet(), lambda: None, max_kept=MAX_KEPT, delete_batch=BATCH)
        async with trio.open_nursery() as services:
            await services.start(svc.run)
            try:
                yield svc
            finally:
                services.cancel_scope.cancel()
        await journal.aclose()


async def add(svc: TaskService, *, finish: bool = True) -> int:
    t = await svc.enqueue(index_uid="movies", type="documentAdditionOrUpdate", node_tasks={}, details={})
    if finish:
        now = svc.now_rfc3339()
        await svc.journal.append(TaskUpdated(uid=t.uid, status="succeeded", started_at=now, finished_at=now))
    return t.uid


def deletions(svc: TaskService) -> list[dict]:
    return svc.list(parse_task_query({"types": "taskDeletion", "limit": "1000"}))["results"]


async def settle(svc: TaskService) -> None:
    with trio.fail_after(WAIT_S):
        while any(d["status"] not in TERMINAL for d in deletions(svc)):
            await trio.sleep(0.01)


def gone(svc: TaskService, uid: int) -> bool:
    try:
        svc.get(uid)
    except MeiliError as exc:
        assert exc.code == "task_not_found"
        return True
    return False


async def test_oldest_finished_tasks_deleted_then_bounded_and_after_restart(tmp_path):
    async with task_service(tmp_path) as svc:
        unfinished = set()
        uids = []
        for i in range(MAX_KEPT - 1):
            uids.append(await add(svc, finish=i not in (2, 5)))
            if i in (2, 5):
                unfinished.add(uids[-1])
        assert deletions(svc) == []
        uids.append(await add(svc))  # the 30th kept task
        enqueued = {u: svc.state.tasks[u].enqueued_at for u in uids}
        await settle(svc)
        [auto] = deletions(svc)
        assert auto["uid"] == MAX_KEPT and auto["indexUid"] is None and auto["status"] == "succeeded"
        details = auto["details"]
        assert details["matchedTasks"] == BATCH and details["deletedTasks"] == BATCH
        assert details["originalFilter"].startswith("?beforeEnqueuedAt=")
        assert details["originalFilter"].endswith(FILTER_TAIL)
        doomed = [u for u in uids if u not in unfinished][:BATCH]
        assert all(gone(svc, u) for u in doomed)
        assert not any(gone(svc, u) for u in uids if u not in doomed)
        # The filter describes what was deleted: every doomed task is before it, the next one is not.
        before = details["originalFilter"].removeprefix("?beforeEnqueuedAt=").removesuffix(FILTER_TAIL)
        assert svc.state.tasks[uids[-1]].enqueued_at >= before
        # ... exactly one tick after the newest deleted one, as Meilisearch's (1 ns there).
        assert before == rfc3339(max(parse_ts(enqueued[u]) for u in doomed) + 1e-6)

        # More writes: the history stays bounded, uids keep increasing.
        last = auto["uid"]
        seen = {auto["uid"]}
        for _ in range(5 * MAX_KEPT):
            uid = await add(svc)
            assert uid > last
            last = uid
            assert len(svc.state.tasks) <= MAX_KEPT + 1
            await settle(svc)
            assert len(svc.state.tasks) <= MAX_KEPT
            seen.update(d["uid"] for d in deletions(svc))
            assert all(d["details"]["deletedTasks"] == BATCH for d in deletions(svc))
        # Earlier automatic deletions are finished tasks too: later ones delete them.
        assert len(seen) >= 5 * MAX_KEPT // BATCH and len(deletions(svc)) < len(seen)
        assert all(not gone(svc, u) for u in unfinished)
        kept = dict(svc.state.tasks)

    async with task_service(tmp_path) as svc:  # journal replay
        assert set(svc.state.tasks) == set(kept)
        assert all(gone(svc, u) for u in doomed)
        assert all(svc.get(u)["status"] == "enqueued" for u in unfinished)
        assert (await add(svc)) > last


async def test_one_automatic_deletion_while_it_is_pending(tmp_path):
    async with task_service(tmp_path) as svc:
        release = trio.Event()

        async def blocker(handle: DrivenTask) -> None:
            await release.wait()
            await handle.finish("succeeded")

        # Holds the queue of task deletions, so the automatic one stays enqueued.
        await svc.enqueue_driven(index_uid=None, type="dumpCreation", details={}, driver=blocker, queue=TASKS_QUEUE)
        for _ in range(MAX_KEPT + 5):
            await add(svc)
        [auto] = deletions(svc)
        assert auto["status"] == "enqueued"
        assert auto["details"] == {
            "matchedTasks": BATCH,
            "deletedTasks": None,
            "originalFilter": auto["details"]["originalFilter"],
        }
        assert len(svc.state.tasks) > MAX_KEPT
        release.set()
        await settle(svc)
        assert deletions(svc)[0]["details"]["deletedTasks"] == BATCH
        assert len(svc.state.tasks) < MAX_KEPT
        while len(svc.state.tasks) < MAX_KEPT:  # the next deletion comes at the limit again
            assert len(deletions(svc)) == 1
            await add(svc)
        await settle(svc)
        assert len(deletions(svc)) == 2


async def test_nothing_finished_nothing_deleted(tmp_path):
    async with task_service(tmp_path) as svc:
        for _ in range(MAX_KEPT + 3):
            await add(svc, finish=False)
        assert deletions(svc) == []
        assert len(svc.state.tasks) == MAX_KEPT + 3


def test_defaults_are_meilisearch_s():
    assert TaskService.__init__.__kwdefaults__["max_kept"] == 1_000_000
    assert TaskService.__init__.__kwdefaults__["delete_batch"] == 100_000
    c = config_from_dict({})
    assert (c.tasks.max_kept, c.tasks.delete_batch) == (1_000_000, 100_000)


def wait_http(http: httpx.Client, uid: int) -> None:
    deadline = time.monotonic() + WAIT_S
    while http.get(f"/tasks/{uid}").json()["status"] not in TERMINAL:
        assert time.monotonic() < deadline, f"task {uid} not finished"
        time.sleep(0.01)


def test_over_http_with_config_section():
    with start_cluster(nodes=1, shards=2, extra={"tasks": {"max_kept": MAX_KEPT, "delete_batch": BATCH}}) as c:
        assert c.cluster.tasks.max_kept == MAX_KEPT  # the config section reaches the engine
        with httpx.Client(base_url=c.url, timeout=10) as http:
            uids = []
            for i in range(MAX_KEPT + 5):
                r = http.post("/indexes/movies/documents", json=[{"id": i}])
                assert r.status_code == 202, r.text
                uids.append(r.json()["taskUid"])
                wait_http(http, uids[-1])
            assert uids == sorted(uids)
            autos = http.get("/tasks", params={"types": "taskDeletion"}).json()["results"]
            assert autos and autos[-1]["details"]["originalFilter"].endswith(FILTER_TAIL)
            wait_http(http, autos[0]["uid"])
            assert http.get(f"/tasks/{uids[0]}").status_code == 404
            assert http.get("/tasks", params={"limit": 1000}).json()["total"] <= MAX_KEPT + 1
