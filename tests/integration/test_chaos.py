"""Chaos: real SIGKILLs of nodes and of Miroir itself during streams of reads and writes.

Every process is real and on loopback; every wait is bounded; each test prints the
figures it saw. Expected document sets are checked on the nodes themselves against the
routing assignment (chaos_helpers.check_copies): acknowledged writes must be there;
writes refused with 503 may or may not be (the client was told to retry), but every
copy of a shard must agree.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import httpx
import pytest

from miroir.core import routing
from tests.support.chaos_helpers import (
    MiroirProcess,
    assignment,
    check_copies,
    create_index,
    durable_cluster,
    node_docs,
    node_repaired,
    topology_nodes,
    wait_until,
)
from tests.support.devnodes import start_devnodes, wait_task

pytestmark = pytest.mark.timeout(140)

S = 8
DEGRADED = "X-Miroir-Degraded"


class Stream:
    """Background searches and single-document writes against Miroir, until stopped."""

    def __init__(self, url_of, uid: str, first_id: int, search: bool = True):
        self.url_of = url_of  # callable: Miroir's current URL
        self.uid = uid
        self.next_id = first_id
        self.stop = threading.Event()
        self.searches = 0
        self.search_failures: list[str] = []
        self.acked: dict[str, tuple[int, dict]] = {}  # id -> (task uid, doc)
        self.refused: dict[str, dict] = {}  # 503 miroir_no_quorum
        self.write_errors: list[str] = []
        self.slowest_write_s = 0.0
        self.threads = [threading.Thread(target=self._writer, daemon=True)]
        if search:
            self.threads.append(threading.Thread(target=self._searcher, daemon=True))

    def __enter__(self) -> Stream:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(60)  # beyond the clients' own timeouts: a request in flight ends first
        # A thread still running would change `acked` under the checks that follow.
        if exc_type is None:
            assert not any(t.is_alive() for t in self.threads), "a stream thread did not stop"

    def _searcher(self) -> None:
        with httpx.Client(timeout=15) as http:
            while not self.stop.is_set():
                r = http.post(f"{self.url_of()}/indexes/{self.uid}/search", json={"q": "book", "limit": 5})
                self.searches += 1
                if r.status_code != 200 or DEGRADED in r.headers:
                    self.search_failures.append(f"{r.status_code} {r.headers.get(DEGRADED)} {r.text[:200]}")

    def _writer(self) -> None:
        with httpx.Client(timeout=40) as http:
            while not self.stop.is_set():
                i = self.next_id
                self.next_id += 1
                doc = {"id": i, "title": f"book {i}"}
                t0 = time.monotonic()
                try:
                    r = http.post(f"{self.url_of()}/indexes/{self.uid}/documents", json=[doc])
                    self.slowest_write_s = max(self.slowest_write_s, time.monotonic() - t0)
                except httpx.TransportError as e:
                    self.write_errors.append(f"{i}: {e!r}")
                    self.refused[str(i)] = doc  # outcome unknown
                    time.sleep(0.05)
                    continue
                if r.status_code == 202:
                    self.acked[str(i)] = (r.json()["taskUid"], doc)
                elif r.status_code == 503 and r.json()["code"] == "miroir_no_quorum":
                    self.refused[str(i)] = doc
                else:
                    self.write_errors.append(f"{i}: {r.status_code} {r.text[:200]}")

    def expected(self, base: dict[str, dict], present: set[str]) -> dict[str, dict]:
        """Base documents + acknowledged ones + refused ones that some node holds."""
        out = dict(base)
        out.update({i: d for i, (_, d) in self.acked.items()})
        out.update({i: d for i, d in self.refused.items() if i in present})
        return out


def present_ids(c, uid: str) -> set[str]:
    out: set[str] = set()
    for d in c.devnodes:
        if d.proc is not None and d.proc.poll() is None:
            out |= set(node_docs(d.url, uid))
    return out


def load_base(url: str, uid: str, n: int) -> dict[str, dict]:
    docs = [{"id": i, "title": f"book {i}"} for i in range(n)]
    r = httpx.post(f"{url}/indexes/{uid}/documents", json=docs, timeout=30)
    assert r.status_code == 202, r.text
    assert wait_task(url, r.json()["taskUid"], timeout=30)["status"] == "succeeded"
    return {str(d["id"]): d for d in docs}


def test_rf2_node_sigkill_during_searches_and_writes(tmp_path):
    """RF=2, 3 nodes: searches stay complete; acknowledged writes survive; the node
    comes back, replays its backlog and holds exactly its shards again."""
    with durable_cluster(3, rf=2, shards=S, tmp=tmp_path) as c:
        create_index(c.url, "books")
        base = load_base(c.url, "books", 200)
        seen_states: set[tuple[str, str, bool]] = set()
        with Stream(lambda: c.url, "books", 10_000) as stream:
            time.sleep(1.0)
            c.node("n2").kill()
            wait_until(lambda: topology_nodes(c.url)["n2"]["health"]["state"] == "down", what="n2 down")
            # At least 2 s down, and until the stream has written for n2 (a condition, so
            # a loaded machine cannot end the outage before any write was hinted).
            t_end, deadline = time.monotonic() + 2.0, time.monotonic() + 60.0
            while time.monotonic() < t_end or (
                time.monotonic() < deadline and topology_nodes(c.url)["n2"]["repair"]["backlogOps"] == 0
            ):
                n2 = topology_nodes(c.url)["n2"]
                seen_states.add((n2["health"]["state"], n2["repair"]["state"], n2["readable"]))
                time.sleep(0.1)
            backlog_while_down = topology_nodes(c.url)["n2"]["repair"]["backlogOps"]
            c.node("n2").restart()
            wait_until(lambda: node_repaired(c.url, "n2"), what="n2 repaired")
            time.sleep(1.0)  # the stream goes on with n2 serving again
        # Read once the stream has stopped and n2 is repaired: a probe missed on a loaded
        # machine (300 ms probe timeout) hints a write or two more, replayed at once.
        n2 = wait_until(lambda: node_repaired(c.url, "n2") and topology_nodes(c.url)["n2"], what="n2 repaired")
        assert not stream.write_errors, stream.write_errors[:5]
        for uid, (task, _) in list(stream.acked.items()):
            view = wait_task(c.url, task, timeout=30)
            assert view["status"] == "succeeded", f"{uid}: {json.dumps(view)}"
        expected = stream.expected(base, present_ids(c, "books"))
        counts = check_copies(c, "books", expected, S)
        # While down: never readable, health down, repair state held or backlog.
        assert all(not readable for h, _, readable in seen_states if h == "down"), seen_states
        assert {r for h, r, _ in seen_states if h == "down"} <= {"held", "backlog"}, seen_states
        assert n2["repair"]["replayedOps"] >= backlog_while_down
        # Writes went on while n2 was down: the backlog was visible, and is empty once replayed.
        assert backlog_while_down > 0
        assert n2["repair"]["state"] == "ok" and n2["repair"]["backlogOps"] == 0, n2["repair"]
        assert n2["health"]["state"] == "up" and n2["readable"] and n2["state"] == "active", n2
        held = assignment(c, S)
        print(
            f"\nsearches={stream.searches} search_failures={len(stream.search_failures)} "
            f"writes_acked={len(stream.acked)} writes_refused_503={len(stream.refused)} "
            f"backlog_ops_while_down={backlog_while_down} replayed={n2['repair']['replayedOps']} "
            f"documents_verified={sum(counts.values())} per_node={counts} "
            f"shards_per_node={ {n: len(s) for n, s in held.items()} }"
        )
        assert not stream.search_failures, stream.search_failures[:5]
        # The stream really ran through the outage.
        assert stream.searches > 0 and stream.acked


def test_rf1_dead_node_refuses_only_its_shards(tmp_path):
    """RF=1: writes for the dead node's shards -> 503 miroir_no_quorum at once; the
    other shards' writes succeed."""
    with durable_cluster(3, rf=1, shards=S, tmp=tmp_path, durable=False) as c:
        create_index(c.url, "books")
        held = assignment(c, S)["n1"]
        c.node("n1").kill()
        wait_until(lambda: topology_nodes(c.url)["n1"]["health"]["state"] == "down", what="n1 down")
        refused = accepted = 0
        bound = c.config.scatter.node_timeout_ms / 1000 + 5.0
        with httpx.Client(base_url=c.url, timeout=40) as http:
            for i in range(40):
                t0 = time.monotonic()
                r = http.post("/indexes/books/documents", json=[{"id": i, "title": f"book {i}"}])
                assert time.monotonic() - t0 < bound, "a write waited on the dead node"
                if routing.shard_for_key(str(i), S) in held:
                    assert r.status_code == 503 and r.json()["code"] == "miroir_no_quorum", r.text
                    refused += 1
                else:
                    assert r.status_code == 202, r.text
                    assert wait_task(c.url, r.json()["taskUid"], timeout=30)["status"] == "succeeded"
                    accepted += 1
        # Nothing was taken by anyone for the refused writes: nothing to hand off.
        assert topology_nodes(c.url)["n1"]["repair"]["backlogOps"] == 0
        # Not ready while shards have no reachable owner; the answer names them.
        ready = httpx.get(c.url + "/_miroir/ready", timeout=10)
        assert ready.status_code == 503 and ready.json()["code"] == "miroir_not_ready", ready.text
        assert ", ".join(map(str, sorted(held))) in ready.json()["message"]
        c.node("n1").restart()
        wait_until(lambda: httpx.get(c.url + "/_miroir/ready", timeout=10).status_code == 200, what="ready again")
        print(f"\nwrites_refused_503={refused} writes_acked={accepted} dead_node_shards={sorted(held)}")
        assert refused and accepted


def test_empty_node_is_refilled_before_serving(tmp_path):
    """A node restarted with an empty data dir is detected, refilled from a healthy
    owner (with writes going on), then serves again; no document is missing."""
    with durable_cluster(3, rf=2, shards=S, tmp=tmp_path, durable=False) as c:
        create_index(c.url, "books")
        base = load_base(c.url, "books", 300)
        c.node("n1").kill()
        wait_until(lambda: topology_nodes(c.url)["n1"]["health"]["state"] == "down", what="n1 down")
        states: list[str] = []
        with Stream(lambda: c.url, "books", 20_000, search=False) as stream:
            c.node("n1").restart()  # no data dir: everything is gone
            deadline = time.monotonic() + 45
            while not node_repaired(c.url, "n1"):
                assert time.monotonic() < deadline, "n1 not refilled in time"
                n1 = topology_nodes(c.url)["n1"]
                if not states or states[-1] != n1["repair"]["state"]:
                    states.append(n1["repair"]["state"])
                assert not n1["readable"] or n1["repair"]["state"] == "ok"
                time.sleep(0.02)
            time.sleep(0.5)
        n1 = topology_nodes(c.url)["n1"]["repair"]
        assert n1["refills"] == 1 and "missing" in (n1.get("refillReason") or "missing"), n1
        assert not stream.write_errors, stream.write_errors[:5]
        expected = stream.expected(base, present_ids(c, "books"))
        counts = check_copies(c, "books", expected, S)
        with httpx.Client(base_url=c.url, timeout=10) as http:
            searches = 0
            for _ in range(6):  # every replica rotation, n1 included
                r = http.post("/indexes/books/search", json={"q": "", "limit": 0})
                assert r.status_code == 200 and DEGRADED not in r.headers
                assert r.json()["estimatedTotalHits"] == len(expected)
                searches += 1
        print(
            f"\nrepair_states_seen={states} writes_acked={len(stream.acked)} writes_refused_503={len(stream.refused)} "
            f"documents_verified={sum(counts.values())} per_node={counts} searches={searches}"
        )


def test_sigstopped_node_does_not_hold_writes(tmp_path):
    """RG=2, RF=1: a hung node (SIGSTOP) is marked down by its probes; writes in flight
    to it stop waiting and are hinted, searches complete from the other group; after
    SIGCONT the node replays its backlog and holds exactly its shards."""
    with durable_cluster(4, groups=2, rf=1, shards=S, tmp=tmp_path) as c:
        create_index(c.url, "books")
        base = load_base(c.url, "books", 100)
        n1 = c.node("n1")
        with Stream(lambda: c.url, "books", 30_000) as stream:
            time.sleep(0.5)
            os.kill(n1.proc.pid, signal.SIGSTOP)
            try:
                wait_until(lambda: topology_nodes(c.url)["n1"]["health"]["state"] == "down", what="n1 down")
                time.sleep(2.0)
                # And until the stream has written for n1, however loaded the machine.
                wait_until(lambda: topology_nodes(c.url)["n1"]["repair"]["backlogOps"] > 0, what="n1 backlog")
                backlog = topology_nodes(c.url)["n1"]["repair"]["backlogOps"]
            finally:
                os.kill(n1.proc.pid, signal.SIGCONT)
            wait_until(lambda: node_repaired(c.url, "n1"), what="n1 repaired")
            time.sleep(0.5)
        assert not stream.write_errors and not stream.refused, (stream.write_errors[:5], len(stream.refused))
        for _, (task, _) in stream.acked.items():
            assert wait_task(c.url, task, timeout=30)["status"] == "succeeded"
        # Once repaired with the stream stopped (a probe missed under load hints more).
        n1_view = wait_until(lambda: node_repaired(c.url, "n1") and topology_nodes(c.url)["n1"], what="n1 repaired")
        counts = check_copies(c, "books", stream.expected(base, set()), S)
        assert n1_view["repair"]["backlogOps"] == 0 and n1_view["repair"]["replayedOps"] >= backlog, n1_view
        assert n1_view["health"]["state"] == "up" and n1_view["readable"], n1_view
        bound = c.config.scatter.node_timeout_ms / 1000 + 8.0
        print(
            f"\nsearches={stream.searches} search_failures={len(stream.search_failures)} "
            f"writes_acked={len(stream.acked)} backlog_ops={backlog} slowest_write_s={stream.slowest_write_s:.2f} "
            f"documents_verified={sum(counts.values())} per_node={counts}"
        )
        assert stream.slowest_write_s < bound, "a write waited for the hung node's deadline"
        assert backlog > 0 and not stream.search_failures, stream.search_failures[:5]


# --- Miroir itself killed ---------------------------------------------------------------------


def test_miroir_sigkill_mid_write_stream(tmp_path):
    """SIGKILL Miroir during a write stream; after a restart every acknowledged task is
    there and succeeds, and no document of an acknowledged task is missing."""
    with start_devnodes(3) as devs:
        nodes = "".join(
            f'[[nodes]]\nid = "n{i + 1}"\nurl = "{d.url}"\ngroup = "g0"\n' for i, d in enumerate(devs)
        )
        cfg = tmp_path / "miroir.toml"
        cfg.write_text(
            '[server]\nbind = "127.0.0.1:0"\n'
            f'[store]\ndata_dir = "{tmp_path / "journal"}"\n'
            f"[cluster]\nshards = {S}\nreplication_factor = 2\n"
            '[log]\nlevel = "info"\n' + nodes
        )
        procs: list[MiroirProcess] = []
        try:
            procs.append(MiroirProcess(cfg))
            url = procs[-1].wait_ready()
            create_index(url, "books")
            current = {"url": url}
            writers = [Stream(lambda: current["url"], "books", 100_000 * (k + 1), search=False) for k in range(3)]
            for w in writers:
                w.__enter__()
            try:
                time.sleep(1.5)
                wait_until(lambda: all(len(w.acked) >= 3 for w in writers), what="writes acknowledged")
                procs[-1].kill()
                time.sleep(0.3)
            finally:
                for w in writers:
                    w.__exit__(None, None, None)
            acked_before = sum(len(w.acked) for w in writers)
            procs.append(MiroirProcess(cfg))
            url = procs[-1].wait_ready()
            succeeded = 0
            for w in writers:
                for _, (task, _) in w.acked.items():
                    view = wait_task(url, task, timeout=30)
                    assert view["status"] == "succeeded", view
                    succeeded += 1
            # Unacknowledged writes (in flight at the kill) may or may not have landed.
            present: set[str] = set()
            for d in devs:
                present |= set(node_docs(d.url, "books"))
            acked_ids = {i for w in writers for i in w.acked}
            missing = acked_ids - present
            assert not missing, sorted(missing)[:10]
            # Copies agree with the assignment (RF=2 over 3 nodes).
            from miroir.config import load_config
            from tests.support.miroir_proc import MiroirCluster

            config = load_config(str(cfg))
            c = MiroirCluster(url=url, config=config, devnodes=devs, node_ids=["n1", "n2", "n3"], groups={"g0": ["n1", "n2", "n3"]})
            expected = {}
            for w in writers:
                expected.update(w.expected({}, present))
            counts = check_copies(c, "books", expected, S)
            in_flight = sum(len(w.refused) for w in writers)  # outcome unknown: in flight at the kill
            # Every acknowledged task is listed by GET /tasks, and new uids continue above
            # every uid handed out before the kill (the counter is journaled before a 202).
            acked_uids = sorted(task for w in writers for task, _ in w.acked.values())
            listed: set[int] = set()
            with httpx.Client(base_url=url, timeout=30) as http:
                for k in range(0, len(acked_uids), 200):
                    chunk = acked_uids[k : k + 200]
                    r = http.get("/tasks", params={"uids": ",".join(map(str, chunk)), "limit": 1000})
                    assert r.status_code == 200, r.text
                    listed |= {t["uid"] for t in r.json()["results"] if t["status"] == "succeeded"}
                assert listed == set(acked_uids), sorted(set(acked_uids) - listed)[:10]
                r = http.post("/indexes/books/documents", json=[{"id": 1, "title": "after the kill"}])
                assert r.status_code == 202, r.text
                first_after = r.json()["taskUid"]
            assert first_after > acked_uids[-1], (first_after, acked_uids[-1])
            assert wait_task(url, first_after, timeout=30)["status"] == "succeeded"

            # kill -9 right after one acknowledged write: listed, succeeds, uids go on.
            with httpx.Client(base_url=url, timeout=30) as http:
                r = http.post("/indexes/books/documents", json=[{"id": 2, "title": "acked then killed"}])
            assert r.status_code == 202, r.text
            last_acked = r.json()["taskUid"]
            procs[-1].kill()
            procs.append(MiroirProcess(cfg))
            url = procs[-1].wait_ready()
            with httpx.Client(base_url=url, timeout=30) as http:
                r = http.get("/tasks", params={"indexUids": "books", "limit": 5})
                assert r.status_code == 200 and r.json()["results"][0]["uid"] == last_acked, r.text
                assert wait_task(url, last_acked, timeout=30)["status"] == "succeeded"
                r = http.post("/indexes/books/documents", json=[{"id": 3, "title": "after the second kill"}])
                assert r.status_code == 202, r.text
                next_uid = r.json()["taskUid"]
                assert next_uid > last_acked, (next_uid, last_acked)
                assert wait_task(url, next_uid, timeout=30)["status"] == "succeeded"
                assert http.get("/indexes/books/documents/2").json()["title"] == "acked then killed"
            print(
                f"\nwrites_acked={acked_before} tasks_succeeded_after_restart={succeeded} "
                f"unacked_in_flight={in_flight} documents_verified={sum(counts.values())} per_node={counts} "
                f"max_acked_uid={acked_uids[-1]} first_uid_after_restart={first_after} "
                f"acked_then_killed_uid={last_acked} next_uid={next_uid}"
            )
            assert acked_before > 0
        finally:
            for p in procs:
                p.kill()
