"""One devnode (the single-node answer) beside Miroir over a few devnodes: the setup and
task waits the compatibility and fidelity tests share.

    with devnode_and_miroir(nodes=3, shards=4) as (one, many):
        for c in (one, many):
            index_with(c, "movies", DOCS, {"filterableAttributes": ["year"]})

Loopback only; every wait bounded; every process stopped at exit.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import httpx

from tests.support.devnodes import start_devnodes, wait_task
from tests.support.miroir_proc import start_cluster

TASK_WAIT_S = 60.0


def task_of(client: httpx.Client, resp: httpx.Response) -> dict:
    """The finished view of the task `resp` (a 202) enqueued on `client`'s server."""
    assert resp.status_code == 202, resp.text
    return wait_task(str(client.base_url), resp.json()["taskUid"], timeout=TASK_WAIT_S)


def done(client: httpx.Client, resp: httpx.Response, status: str = "succeeded") -> dict:
    """`task_of`, which must end as `status`."""
    task = task_of(client, resp)
    assert task["status"] == status, task
    return task


def index_with(client: httpx.Client, uid: str, docs: list[dict] | None = None, settings: dict | None = None) -> None:
    """Create index `uid` (primary key `id`), apply `settings`, add `docs`: each task succeeded."""
    done(client, client.post("/indexes", json={"uid": uid, "primaryKey": "id"}))
    if settings:
        done(client, client.patch(f"/indexes/{uid}/settings", json=settings))
    if docs:
        done(client, client.post(f"/indexes/{uid}/documents", json=docs))


def search_answer(client: httpx.Client, uid: str, body: dict) -> dict:
    """A search's 200 answer without what differs between any two runs (time, request uid)."""
    r = client.post(f"/indexes/{uid}/search", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    out.pop("processingTimeMs", None)
    out.pop("requestUid", None)
    return out


@contextlib.contextmanager
def devnode_and_miroir(nodes: int, shards: int, timeout: float = 60.0) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    """(a client of one devnode, a client of Miroir over `nodes` devnodes, one group, RF 1)."""
    with (
        start_devnodes(1) as (node,),
        start_cluster(nodes=nodes, groups=1, rf=1, shards=shards) as cluster,
        httpx.Client(base_url=node.url, timeout=timeout) as one,
        httpx.Client(base_url=cluster.url, timeout=timeout) as many,
    ):
        yield one, many
