"""Test helpers for node failures: a Miroir over devnodes that keep (or lose) their data,
node-side checks against the routing assignment, bounded waits.

    with durable_cluster(nodes=3, rf=2, tmp=tmp_path) as c:   # devnodes with --data-dir
        c.node("n1").kill(); ...; c.node("n1").restart()
        check_copies(c, "books", expected_ids)

Everything is loopback; every wait is bounded; devnodes are SIGCONTed and SIGKILLed at exit.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx

from miroir.core import routing
from miroir.core.placement import CURRENT_PLACEMENT, Layout, owner_table, rebalance_table
from tests.support.devnodes import start_devnodes, wait_task
from tests.support.miroir_proc import MiroirCluster, make_config, serve_miroir

# Fast failure detection for tests: a killed node is down within ~0.5 s.
FAST_HEALTH = {
    "health": {"interval_ms": 150, "timeout_ms": 300, "unhealthy_threshold": 2, "recovery_threshold": 1},
    "scatter": {"node_timeout_ms": 2000},
}
WAIT_S = 45.0


def wait_until(pred: Callable[[], Any], timeout: float = WAIT_S, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout}s")
        time.sleep(0.05)


@contextlib.contextmanager
def durable_cluster(
    nodes: int, *, groups: int = 1, rf: int = 1, shards: int = 8, tmp: Path, durable: bool = True, extra: dict | None = None
) -> Iterator[MiroirCluster]:
    """Devnodes (with their own data dir when `durable`) + Miroir in a thread."""
    dirs = [str(tmp / f"node{i}") for i in range(nodes)] if durable else None
    cfg_extra = {k: dict(v) for k, v in FAST_HEALTH.items()}
    for k, v in (extra or {}).items():
        cfg_extra[k] = {**cfg_extra.get(k, {}), **v}
    journal_dir = tmp / "miroir"
    journal_dir.mkdir(exist_ok=True)
    with start_devnodes(nodes, data_dirs=dirs) as devs, contextlib.ExitStack() as stack:
        try:
            config = make_config(devs, groups=groups, rf=rf, shards=shards, data_dir=str(journal_dir), extra=cfg_extra)
            by_group: dict[str, list[str]] = {}
            for n in config.nodes:
                by_group.setdefault(n.group, []).append(n.id)
            url, cluster = stack.enter_context(serve_miroir(config))
            c = MiroirCluster(
                url=url, config=config, devnodes=devs, node_ids=[n.id for n in config.nodes], groups=by_group,
                cluster=cluster,
            )

            def restart_miroir(between: Callable[[], None] | None = None) -> None:
                """Stop Miroir (graceful), run `between`, start it again on the same journal."""
                nonlocal stack
                stack.close()
                if between is not None:
                    between()
                stack = contextlib.ExitStack()
                c.url, c.cluster = stack.enter_context(serve_miroir(config))

            c.restart_miroir = restart_miroir  # type: ignore[attr-defined]
            try:
                yield c
            finally:
                stack.close()
        finally:
            for d in devs:  # a stopped node must be continued before it can be killed cleanly
                if d.proc is not None and d.proc.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(d.proc.pid, signal.SIGCONT)


@functools.lru_cache(maxsize=64)
def _fresh(shards: int, ids: tuple[str, ...], rf: int) -> tuple[tuple[str, ...], ...]:
    return tuple(tuple(o) for o in owner_table(Layout(shards, CURRENT_PLACEMENT), ids, rf))


def fresh_owners(shard: int, ids: Sequence[str], rf: int, shards: int) -> list[str]:
    """Owners in one group (`ids`, equal weights) of `shard` of an index created on that
    membership (the placement new indexes get), computed by the pure placement."""
    return list(_fresh(shards, tuple(sorted(ids)), rf)[shard])


def owners_after(shard: int, before: Sequence[str], after: Sequence[str], rf: int, shards: int) -> list[str]:
    """Owners of `shard` once one group's membership went from `before` to `after`
    (equal weights): the table is rebalanced with the fewest moves, not recomputed."""
    table = rebalance_table(_fresh(shards, tuple(sorted(before)), rf), dict.fromkeys(after, 1.0), rf)
    return table[shard]


def assignment(c: MiroirCluster, shards: int, before: Sequence[str] | None = None) -> dict[str, set[int]]:
    """Node id -> shards it must hold (every group, RF owners), from the placement rules;
    `before`: the membership of a group before the one change it went through."""
    rf = c.config.cluster.replication_factor
    held: dict[str, set[int]] = {n: set() for n in c.node_ids}
    for s in range(shards):
        for ids in c.groups.values():
            changed = before is not None and set(before) & set(ids)
            owners = owners_after(s, before, ids, rf, shards) if changed else fresh_owners(s, ids, rf, shards)
            for n in owners:
                held[n].add(s)
    return held


def node_docs(url: str, uid: str) -> dict[str, dict]:
    """Every document of `uid` on one node, by id (asked of the node directly)."""
    out: dict[str, dict] = {}
    offset = 0
    with httpx.Client(base_url=url, timeout=10) as http:
        while True:
            r = http.post(f"/indexes/{uid}/documents/fetch", json={"offset": offset, "limit": 1000})
            r.raise_for_status()
            page = r.json()["results"]
            for d in page:
                out[str(d["id"])] = d
            if len(page) < 1000:
                return out
            offset += len(page)


def settle_nodes(c: MiroirCluster, uid: str) -> None:
    """Wait until no node has an unfinished task for `uid`."""
    for d in c.devnodes:
        def idle(url: str = d.url) -> bool:
            r = httpx.get(f"{url}/tasks", params={"indexUids": uid, "statuses": "enqueued,processing"}, timeout=5)
            return r.status_code == 200 and not r.json()["results"]

        wait_until(idle, what=f"{d.url} idle")


def check_copies(
    c: MiroirCluster, uid: str, expected: dict[str, dict], shards: int, before: Sequence[str] | None = None
) -> dict[str, int]:
    """Every node holds exactly the expected documents of the shards it owns (and no
    other); returns node -> document count. `expected` is id -> document (client view).
    `before`: see `assignment`."""
    settle_nodes(c, uid)
    held = assignment(c, shards, before)
    counts: dict[str, int] = {}
    for node_id, d in zip(c.node_ids, c.devnodes):
        docs = node_docs(d.url, uid)
        want = {i: doc for i, doc in expected.items() if routing.shard_for_key(i, shards) in held[node_id]}
        assert set(docs) == set(want), (
            f"{node_id}: missing {sorted(set(want) - set(docs))[:10]}, extra {sorted(set(docs) - set(want))[:10]}"
        )
        for i, doc in want.items():
            got = {k: v for k, v in docs[i].items() if not k.startswith("_miroir")}
            assert got == doc, (node_id, i, got, doc)
            assert docs[i]["_miroir_shard"] == routing.shard_for_key(i, shards)
        counts[node_id] = len(docs)
    return counts


def topology_nodes(url: str) -> dict[str, dict]:
    r = httpx.get(f"{url}/_miroir/topology", timeout=5)
    r.raise_for_status()
    return {n["id"]: n for n in r.json()["nodes"]}


def node_repaired(url: str, node_id: str) -> bool:
    n = topology_nodes(url)[node_id]
    return n["health"]["state"] == "up" and n["repair"]["state"] == "ok" and n["readable"]


def create_index(url: str, uid: str, primary_key: str = "id") -> None:
    r = httpx.post(f"{url}/indexes", json={"uid": uid, "primaryKey": primary_key}, timeout=10)
    assert r.status_code == 202, r.text
    assert wait_task(url, r.json()["taskUid"], timeout=30)["status"] == "succeeded"


class MiroirProcess:
    """`miroir serve` as a subprocess (kill -9 able); its JSON log lines are collected by
    a thread (`lines`, e.g. to look for a warning after a restart)."""

    def __init__(self, config: Path):
        self._q: queue.Queue[str | None] = queue.Queue()
        self.lines: list[str] = []
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MIROIR_", "NOTIFY_", "WATCHDOG_"))}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "miroir", "serve", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            self._q.put(line)
        self._q.put(None)

    def wait_ready(self, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            line = self._q.get(timeout=max(0.1, deadline - time.monotonic()))
            assert line is not None, "miroir exited before ready"
            with contextlib.suppress(ValueError):
                rec = json.loads(line)
                if isinstance(rec, dict) and rec.get("event") == "ready":
                    return f"http://127.0.0.1:{rec['port']}"

    def events(self, name: str) -> list[dict]:
        """The log records of one event (JSON lines)."""
        out = []
        for line in list(self.lines):
            with contextlib.suppress(ValueError):
                rec = json.loads(line)
                if isinstance(rec, dict) and rec.get("event") == name:
                    out.append(rec)
        return out

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
