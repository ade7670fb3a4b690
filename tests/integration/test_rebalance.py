"""Rebalancing with real processes: nodes join, drain and leave while clients write and
search; Miroir is killed (SIGKILL) in the middle of a move and resumes it.

Checks after every change: each node holds exactly the shards it owns, no document is
lost, duplicated or resurrected, and the number of documents copied is within 10% of
the theoretical minimum (documents of the shards whose owners changed).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.support.devnodes import free_port, start_devnodes, wait_task
from tests.support.miroir_proc import start_cluster

# The issue asks for 30,000 documents; the default keeps the suite fast on 2 cores.
N_DOCS = int(os.environ.get("MIROIR_REBALANCE_DOCS", "5000"))
# Documents the writer never touches: every search during a move must return each once.
N_STABLE = 600
SHARDS = 16
INDEX = "items"
BATCH = 1000
WAIT_S = 90.0  # bound on any single wait in these tests (never a timing assertion)
POLL_S = 0.05


def make_doc(i: int, v: int = 0) -> dict:
    stable = i < N_STABLE
    return {"id": i, "title": f"{'stable' if stable else 'mutable'} item {i}", "v": v}


def load(url: str, docs: list[dict], headers: dict | None = None) -> None:
    with httpx.Client(base_url=url, timeout=30, headers=headers) as h:
        for k in range(0, len(docs), BATCH):
            r = h.post(f"/indexes/{INDEX}/documents", json=docs[k : k + BATCH])
            r.raise_for_status()
            assert wait_task(url, r.json()["taskUid"], timeout=WAIT_S)["status"] == "succeeded"


def wait_idle(h: httpx.Client) -> dict:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        r = h.get("/_miroir/rebalance")
        if r.status_code == 200:
            s = r.json()
            if s["status"] == "idle" and not s["pendingChange"]:
                return s
        time.sleep(POLL_S)
    raise TimeoutError(f"rebalance not finished: {h.get('/_miroir/rebalance').text[:2000]}")


def node_docs(url: str) -> list[dict]:
    out: list[dict] = []
    with httpx.Client(base_url=url, timeout=30) as h:
        offset = 0
        while True:
            r = h.post(f"/indexes/{INDEX}/documents/fetch", json={"offset": offset, "limit": 5000})
            if r.status_code == 404:
                return out
            r.raise_for_status()
            page = r.json()["results"]
            out += page
            if len(page) < 5000:
                return out
            offset += len(page)


def check_placement(h: httpx.Client, node_urls: dict[str, str], expected: dict[int, dict]) -> dict[int, int]:
    """Every node holds exactly its shards; the union is `expected`, each doc once.

    Returns shard -> document count.
    """
    topo = h.get("/_miroir/topology").json()
    owners = topo["indexes"][INDEX]["owners"]
    owned: dict[str, set[int]] = {n: set() for n in node_urls}
    for per_shard in owners.values():
        for s, nodes in enumerate(per_shard):
            for n in nodes:
                owned[n].add(s)
    seen: dict[int, dict] = {}
    per_shard_count: dict[int, int] = {}
    for node, url in node_urls.items():
        docs = node_docs(url)
        shards = {d["_miroir_shard"] for d in docs}
        assert shards <= owned[node], f"{node} holds shards {sorted(shards - owned[node])} it does not own"
        for d in docs:
            assert d["id"] not in seen, f"document {d['id']} on two nodes"
            seen[d["id"]] = d
            per_shard_count[d["_miroir_shard"]] = per_shard_count.get(d["_miroir_shard"], 0) + 1
    lost = sorted(set(expected) - set(seen))
    extra = sorted(set(seen) - set(expected))
    assert not lost, f"{len(lost)} documents lost, e.g. {lost[:10]}"
    assert not extra, f"{len(extra)} deleted/unknown documents present, e.g. {extra[:10]}"
    stale = [i for i, d in expected.items() if seen[i]["v"] != d["v"] or seen[i]["title"] != d["title"]]
    assert not stale, f"{len(stale)} documents with a stale version, e.g. {stale[:10]}"
    return per_shard_count


def minimum_copies(summary: dict, per_shard_count: dict[int, int]) -> int:
    return sum(len(u["targets"]) * per_shard_count.get(u["shard"], 0) for u in summary["movedUnits"])


class Writer(threading.Thread):
    """Adds, updates and deletes mutable documents; `expected` is the acknowledged state."""

    def __init__(self, url: str, expected: dict[int, dict]):
        super().__init__(daemon=True)
        self.url = url
        self.expected = expected
        self.stop = threading.Event()
        self.errors: list[str] = []
        self.ops = 0
        self.rng = random.Random(7)
        self.next_id = N_DOCS

    def _apply(self, h: httpx.Client, method: str, path: str, body: object) -> bool:
        r = h.request(method, path, json=body)
        if r.status_code != 202:
            self.errors.append(f"{method} {path}: {r.status_code} {r.text[:200]}")
            return False
        task = wait_task(self.url, r.json()["taskUid"], timeout=WAIT_S)
        if task["status"] != "succeeded":
            self.errors.append(f"{method} {path}: task {task}")
            return False
        return True

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as h:
            while not self.stop.is_set():
                new = [make_doc(i) for i in range(self.next_id, self.next_id + 20)]
                self.next_id += 20
                if self._apply(h, "POST", f"/indexes/{INDEX}/documents", new):
                    self.expected.update({d["id"]: d for d in new})
                mutable = [i for i in self.expected if i >= N_STABLE]
                upd = self.rng.sample(mutable, 10)
                changes = [{"id": i, "v": self.expected[i]["v"] + 1} for i in upd]
                if self._apply(h, "PUT", f"/indexes/{INDEX}/documents", changes):
                    for c in changes:
                        self.expected[c["id"]] = {**self.expected[c["id"]], "v": c["v"]}
                gone = self.rng.sample([i for i in mutable if i not in upd], 5)
                if self._apply(h, "POST", f"/indexes/{INDEX}/documents/delete-batch", gone):
                    for i in gone:
                        self.expected.pop(i, None)
                self.ops += 3


class Reader(threading.Thread):
    """Searches the stable documents: each must come back exactly once, every time."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url = url
        self.stop = threading.Event()
        self.errors: list[str] = []
        self.searches = 0

    def run(self) -> None:
        want = list(range(N_STABLE))
        with httpx.Client(base_url=self.url, timeout=30) as h:
            while not self.stop.is_set():
                r = h.post(f"/indexes/{INDEX}/search", json={"q": "stable", "limit": 1000, "attributesToRetrieve": ["id"]})
                if r.status_code != 200:
                    self.errors.append(f"search: {r.status_code} {r.text[:200]}")
                    continue
                ids = sorted(hit["id"] for hit in r.json()["hits"])
                if ids != want:
                    dup = len(ids) - len(set(ids))
                    missing = len(set(want) - set(ids))
                    self.errors.append(f"search got {len(ids)} hits: {dup} duplicated, {missing} missing")
                self.searches += 1


def test_add_drain_remove_under_load():
    with start_devnodes(1) as spare, start_cluster(nodes=3, shards=SHARDS, extra={"rebalancer": {"page_size": 250}}) as c:
        h = httpx.Client(base_url=c.url, timeout=60)
        expected = {i: make_doc(i) for i in range(N_DOCS)}
        load(c.url, list(expected.values()))
        urls = {n: c.node(n).url for n in c.node_ids}

        # --- 3 -> 4 nodes while a writer and a reader run ---------------------------------
        writer, reader = Writer(c.url, expected), Reader(c.url)
        writer.start()
        reader.start()
        try:
            r = h.post("/_miroir/nodes", json={"id": "n4", "url": spare[0].url, "group": "g0"})
            assert r.status_code == 202, r.text
            assert r.json()["node"]["state"] == "joining"
            # Not drained: refused, Meilisearch-shaped.
            r = h.delete("/_miroir/nodes/n2")
            assert r.status_code == 409
            assert r.json()["code"] == "miroir_node_not_drained" and set(r.json()) >= {"message", "type", "link"}
            status = wait_idle(h)
        finally:
            writer.stop.set()
            reader.stop.set()
            writer.join(WAIT_S)
            reader.join(WAIT_S)
        assert not writer.errors, writer.errors[:5]
        assert not reader.errors, reader.errors[:5]
        assert writer.ops > 0 and reader.searches > 0
        urls["n4"] = spare[0].url
        nodes = {n["id"]: n["state"] for n in h.get("/_miroir/topology").json()["nodes"]}
        assert nodes == {"n1": "active", "n2": "active", "n3": "active", "n4": "active"}
        counts = check_placement(h, urls, expected)
        summary = status["last"]
        minimum = minimum_copies(summary, counts)
        copied = summary["documentsCopied"]
        print(f"\n3->4 nodes: copied {copied} documents, theoretical minimum {minimum}, "
              f"{writer.ops} writes and {reader.searches} searches during the move")
        assert minimum > 0
        assert copied <= 1.1 * minimum, (copied, minimum)
        assert copied >= 0.5 * minimum, (copied, minimum)  # the copy really happened

        # --- drain n1 to 0 shards, then remove it -------------------------------------------
        r = h.post("/_miroir/nodes/n1/drain")
        assert r.status_code == 202, r.text
        status = wait_idle(h)
        urls_left = {n: u for n, u in urls.items() if n != "n1"}
        assert node_docs(urls["n1"]) == []  # its copies are deleted after the switch
        counts = check_placement(h, urls_left, expected)
        minimum = minimum_copies(status["last"], counts)
        copied = status["last"]["documentsCopied"]
        print(f"drain n1: copied {copied} documents, theoretical minimum {minimum}")
        assert copied <= 1.1 * minimum, (copied, minimum)
        [n1] = [n for n in h.get("/_miroir/rebalance").json()["nodes"] if n["id"] == "n1"]
        assert n1["state"] == "draining" and n1["shards"] == []
        r = h.delete("/_miroir/nodes/n1")
        assert r.status_code == 202, r.text
        assert "n1" not in {n["id"] for n in h.get("/_miroir/topology").json()["nodes"]}
        r = h.delete("/_miroir/nodes/n1")
        assert r.status_code == 404 and r.json()["code"] == "miroir_node_not_found"
        # Reads after all this: the stable documents once each.
        hits = h.post(f"/indexes/{INDEX}/search", json={"q": "stable", "limit": 1000}).json()["hits"]
        assert sorted(x["id"] for x in hits) == list(range(N_STABLE))


# --- kill -9 in the middle of a move --------------------------------------------------------


def _toml_config(path: Path, port: int, data_dir: Path, nodes: list[tuple[str, str]], dps: int, page: int) -> None:
    lines = [
        "[server]", f'bind = "127.0.0.1:{port}"',
        "[cluster]", f"shards = {SHARDS}", "replication_factor = 1",
        "[store]", f'data_dir = "{data_dir}"',
        "[log]", 'level = "warning"',
        "[rebalancer]", f"docs_per_second = {dps}", f"page_size = {page}", "max_concurrent_migrations = 2",
    ]
    for node_id, url in nodes:
        lines += ["[[nodes]]", f'id = "{node_id}"', f'url = "{url}"', 'group = "g0"']
    path.write_text("\n".join(lines) + "\n")


def _start_miroir(config: Path, log) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "miroir", "serve", "--config", str(config)],
        stdout=log, stderr=log, stdin=subprocess.DEVNULL,
    )


def _wait_ready(url: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        assert proc.poll() is None, "miroir exited"
        try:
            if httpx.get(url + "/_miroir/rebalance", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(POLL_S)
    raise TimeoutError("miroir did not start")


def test_kill9_mid_move_resumes():
    n_docs = min(N_DOCS, 3000)
    with start_devnodes(3) as devs, tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        config = tmp_path / "miroir.toml"
        # Slow moves (a throttle), so that the kill lands in the middle of one.
        _toml_config(config, port, tmp_path / "data", [("n1", devs[0].url), ("n2", devs[1].url)], dps=400, page=50)
        log = open(tmp_path / "miroir.log", "wb")  # noqa: SIM115 - closed in the finally below
        proc = _start_miroir(config, log)
        try:
            _wait_ready(url, proc)
            expected = {i: make_doc(i) for i in range(n_docs)}
            load(url, list(expected.values()))
            h = httpx.Client(base_url=url, timeout=30)
            r = h.post("/_miroir/nodes", json={"id": "n3", "url": devs[2].url})
            assert r.status_code == 202, r.text
            deadline = time.monotonic() + WAIT_S
            while True:
                s = h.get("/_miroir/rebalance").json()
                assert s["status"] == "running", s  # the throttle keeps it running long enough
                if s["progress"]["documentsCopied"] >= 100:
                    break
                assert time.monotonic() < deadline
                time.sleep(POLL_S)
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            copied_before = s["progress"]["documentsCopied"]

            proc = _start_miroir(config, log)
            _wait_ready(url, proc)
            s = h.get("/_miroir/rebalance").json()
            assert s["status"] == "running"
            # Resumed, not restarted: the journaled cursors are where the copy continues.
            assert s["progress"]["documentsCopied"] >= copied_before - 50
            status = wait_idle(h)
            urls = {"n1": devs[0].url, "n2": devs[1].url, "n3": devs[2].url}
            counts = check_placement(h, urls, expected)
            minimum = minimum_copies(status["last"], counts)
            copied = status["last"]["documentsCopied"]
            print(f"\nkill -9 mid-move: copied {copied} documents, theoretical minimum {minimum}")
            assert minimum <= copied <= 1.1 * minimum, (copied, minimum)
            nodes = {n["id"]: n["state"] for n in h.get("/_miroir/topology").json()["nodes"]}
            assert nodes == {"n1": "active", "n2": "active", "n3": "active"}
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
            log.close()


@pytest.mark.parametrize("force", [True])
def test_force_remove_dead_node_recreates_from_other_group(force):
    """Two groups; a node of g0 dies and is forced out: its shards are copied from g1."""
    with start_cluster(nodes=4, groups=2, shards=SHARDS) as c:
        h = httpx.Client(base_url=c.url, timeout=60)
        expected = {i: make_doc(i) for i in range(1000)}
        load(c.url, list(expected.values()))
        dead = c.groups["g0"][0]
        c.node(dead).kill()
        r = h.delete(f"/_miroir/nodes/{dead}")
        assert r.status_code == 409
        r = h.delete(f"/_miroir/nodes/{dead}", params={"force": "true"})
        assert r.status_code == 202, r.text
        wait_idle(h)
        assert dead not in {n["id"] for n in h.get("/_miroir/topology").json()["nodes"]}
        for group in ("g0", "g1"):
            urls = {n: c.node(n).url for n in c.groups[group] if n != dead}
            seen = [d["id"] for u in urls.values() for d in node_docs(u)]
            assert sorted(seen) == sorted(expected), group
