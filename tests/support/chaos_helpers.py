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
import os
import random
import signal
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx

from miroir.core import routing
from miroir.core.placement import CURRENT_PLACEMENT, Layout, owner_table, rebalance_table
from tests.support.devnodes import start_devnodes, wait_task
from tests.support.miroir_proc import Daemon, MiroirCluster, make_config, serve_miroir

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


class MiroirProcess(Daemon):
    """`miroir serve` as a subprocess (miroir_proc.Daemon) whose `wait_ready` answers its URL."""

    def wait_ready(self, timeout: float = 30.0) -> str:  # type: ignore[override]
        return f"http://127.0.0.1:{super().wait_ready(timeout)}"


# What a 503 says when the write cannot have reached any node (core/batches.py).
NOTHING_WRITTEN = "Nothing was written"
WRITE_KINDS = ("add", "update", "delete")


def versioned_doc(i: str, version: int) -> dict:
    return {"id": int(i), "v": version, "title": f"item {i} v{version}"}


class StreamWriter(threading.Thread):
    """Adds, updates and deletes single documents of `uid` through Miroir, one at a time,
    until stopped; what it may expect on the nodes afterwards (see `verify_writes`):

    - `model`: id -> document of its last acknowledged write (None: deleted). A write never
      sent (no connection) or refused for certain (a 503 saying nothing was written) leaves
      it as it was; `verify_writes` finds such a write if it took effect all the same.
    - `uncertain`: id -> (its last acknowledged state, the write whose outcome the client
      cannot know: no answer, Miroir died under it; or a 503 that says a node may still
      apply it). Either state may be on the nodes, the same on every copy; the id is not
      written again.
    - `tasks` (acknowledged task uids), `refused` ((time sent, time answered, code) of every
      503), `other` (answers neither 202 nor 503), `acked_by_life` (Miroir process -> writes
      it acknowledged), `counts`."""

    def __init__(
        self, miroir_of: Callable[[], tuple[str, int]], uid: str, seed: int, base: dict[str, dict],
        n_pick: int, interval_s: float,
    ):
        super().__init__(daemon=True)
        self.miroir_of = miroir_of  # () -> (URL, how many times Miroir was restarted)
        self.uid = uid
        self.interval_s = interval_s
        self.rng = random.Random(seed)
        self.n_pick = n_pick  # updates and deletes go to ids 0 .. n_pick - 1
        self.model: dict[str, dict | None] = dict(base)
        self.uncertain: dict[str, tuple[dict | None, dict | None]] = {}
        self.why: dict[str, str] = {}
        self.tasks: list[int] = []
        self.refused: list[tuple[float, float, str]] = []
        self.other: list[str] = []
        self.acked_by_life: dict[int, int] = {}
        self.next_id = 1_000_000
        self.stop = threading.Event()
        self.counts = dict.fromkeys(
            (*WRITE_KINDS, "not_connected", "no_answer", "refused_503", "refused_503_uncertain", "other"), 0
        )

    def _pick(self) -> str | None:
        for _ in range(20):
            i = str(self.rng.randrange(self.n_pick))
            if i not in self.uncertain:
                return i
        return None

    def run(self) -> None:
        with httpx.Client(timeout=30) as http:
            while not self.stop.is_set():
                roll = self.rng.random()
                if roll < 0.3:
                    i, kind = str(self.next_id), "add"
                    self.next_id += 1
                else:
                    picked = self._pick()
                    if picked is None:
                        continue
                    i = picked
                    kind = "delete" if roll < 0.55 and self.model.get(i) is not None else "update"
                prev = self.model.get(i)
                doc = None if kind == "delete" else versioned_doc(i, (prev["v"] + 1) if prev else 1)
                t0 = time.monotonic()
                url, life = self.miroir_of()
                try:
                    if kind == "delete":
                        r = http.delete(f"{url}/indexes/{self.uid}/documents/{i}")
                    else:
                        r = http.post(f"{url}/indexes/{self.uid}/documents", json=[doc])
                except httpx.ConnectError:
                    # Miroir is restarting: the request never left, the id keeps its state.
                    self.counts["not_connected"] += 1
                    time.sleep(0.05)
                    continue
                except httpx.TransportError:
                    r = None
                if r is not None and r.status_code == 202:
                    self.model[i] = doc
                    self.tasks.append(r.json()["taskUid"])
                    self.counts[kind] += 1
                    self.acked_by_life[life] = self.acked_by_life.get(life, 0) + 1
                elif r is None:
                    self._uncertain(i, prev, doc, "no_answer", f"no answer {kind} {doc}")
                elif r.status_code == 503:
                    body = r.json()
                    self.refused.append((t0, time.monotonic(), body.get("code", "?")))
                    if NOTHING_WRITTEN in body.get("message", ""):
                        self.counts["refused_503"] += 1
                    else:
                        self._uncertain(i, prev, doc, "refused_503_uncertain", f"503 {kind} {doc} {body['message']}")
                else:
                    self._uncertain(i, prev, doc, "other", f"{r.status_code} {kind} {doc}")
                    self.other.append(f"{kind} {i}: {r.status_code} {r.text[:200]}")
                time.sleep(self.interval_s)

    def _uncertain(self, i: str, prev: dict | None, doc: dict | None, count: str, why: str) -> None:
        self.uncertain[i] = (prev, doc)
        self.why[i] = why
        self.counts[count] += 1


def _client_view(doc: dict | None) -> dict | None:
    return None if doc is None else {k: v for k, v in doc.items() if not k.startswith("_miroir")}


def verify_writes(
    writer: StreamWriter, nodes: dict[str, str], owners: Callable[[int], Collection[str]], shards: int
) -> dict:
    """Every node's documents of `writer.uid` (asked of each node directly) against what the
    writer was told. Counts, each of which must be 0:
    lost / stale / resurrected: an id's last acknowledged write missing, older, or a deleted
    id back, on an owner of its shard (a refused update or delete that took effect shows here);
    uncertain_bad: an id whose last write's outcome is unknown holds, on some owner, neither
    its previous state nor that write;
    misplaced: a copy on a node that does not own its shard, or tagged with another shard;
    phantom: an add never acknowledged (refused or never sent) that took effect.
    `checked` counts the copies compared. Reported, not required (`uncertain_diverged`):
    owners that hold different ones of those two states. A write in flight when Miroir is
    killed can reach one copy and never the other (seen with RF = 2 in
    test_chaos_restarts: a delete applied on one owner only, for good); a test may assert
    it once Miroir replays or rolls back such a write."""
    held = {n: node_docs(u, writer.uid) for n, u in nodes.items()}
    owners_of = {s: set(owners(s)) for s in range(shards)}
    out: dict = dict.fromkeys(
        ("checked", "lost", "stale", "resurrected", "uncertain_bad", "misplaced", "phantom", "uncertain_diverged"),
        0,
    )
    out["examples"] = []

    def bad(kind: str, line: str) -> None:
        out[kind] += 1
        if len(out["examples"]) < 5:
            out["examples"].append(f"{kind} {line}")

    for i in writer.model.keys() | writer.uncertain.keys():
        doc = writer.model.get(i)
        copies = {n: _client_view(held[n].get(i)) for n in sorted(owners_of[routing.shard_for_key(i, shards)])}
        out["checked"] += len(copies)
        if i in writer.uncertain:
            either = writer.uncertain[i]
            if any(c not in either for c in copies.values()):
                bad("uncertain_bad", f"id={i} ({writer.why[i]}): want one of {either} on every owner, got {copies}")
            elif len({repr(c) for c in copies.values()}) > 1:
                bad("uncertain_diverged", f"id={i} ({writer.why[i]}): copies differ: {copies}")
            continue
        for node, got in copies.items():
            if doc is None and got is not None:
                bad("resurrected", f"id={i} on {node}: got {got}")
            elif doc is not None and got is None:
                bad("lost", f"id={i} on {node}: want {doc}")
            elif got != doc:
                bad("stale", f"id={i} on {node}: want {doc} got {got}")
    for n, docs in held.items():
        for i, d in docs.items():
            shard = routing.shard_for_key(i, shards)
            if n not in owners_of[shard] or d.get("_miroir_shard") != shard:
                bad("misplaced", f"id={i} on {n}: {d}")
            if i not in writer.model and i not in writer.uncertain:
                bad("phantom", f"id={i} on {n}: {d}")
    return out


def settle_urls(urls: Sequence[str], timeout: float = WAIT_S) -> None:
    """Wait until no node (by URL) has an unfinished task."""
    for url in urls:
        wait_until(
            lambda url=url: not httpx.get(
                f"{url}/tasks", params={"statuses": "enqueued,processing"}, timeout=5
            ).json()["results"],
            timeout=timeout, what=f"{url} idle",
        )
