"""Issue 4's "Done when", end to end: the official `meilisearch` client, unchanged, against
`miroir dev` run as a real subprocess (devnodes and Miroir in one process, as a developer
runs it); placement checked on the nodes themselves with the routing functions.

- 20,000 Debian packages over 3 nodes and 16 shards: every task succeeds, stats count
  them all, every document comes back (pages of ids through `get_documents`, and a few
  hundred single `get_document` calls), each node holds exactly the shards it owns.
- 2 groups x RF 2 over 6 nodes: 4 copies of every document, each on its owners.

Loopback only; every wait is bounded; the subprocess is stopped (SIGTERM, then SIGKILL)
even on failure. Each test prints the figures it saw.
"""

from __future__ import annotations

import contextlib
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import meilisearch
import pytest

from miroir.core.routing import shard_for_key
from tests.support.chaos_helpers import fresh_owners
from tests.support.corpus import CORPUS, read_docs
from tests.support.devnodes import free_port

pytestmark = [
    pytest.mark.skipif(not CORPUS.exists(), reason=f"corpus not found: {CORPUS}"),
    pytest.mark.timeout(240),
]

SHARDS = 16
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0
TASK_TIMEOUT_MS = 120_000
BATCH = 2_000
FETCH_PAGE = 1_000
SINGLE_GETS = 300


@contextlib.contextmanager
def miroir_dev(tmp: Path, *args: str) -> Iterator[tuple[str, dict[str, str], dict[str, list[str]]]]:
    """`miroir dev --port P ... --data-dir D` as a subprocess; yields (Miroir URL,
    node id -> URL, group -> node ids) as printed on its stdout."""
    port = free_port()
    cmd = [
        sys.executable, "-m", "miroir", "dev", "--port", str(port), "--log-format", "json",
        "--data-dir", str(tmp), *args,
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    out: list[str] = []
    err: list[str] = []

    def pump(stream, sink: list[str]) -> None:
        for line in stream:
            sink.append(line.rstrip("\n"))

    threads = [threading.Thread(target=pump, args=(s, k), daemon=True) for s, k in ((proc.stdout, out), (proc.stderr, err))]
    for t in threads:
        t.start()
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not any(line.startswith("data:") for line in out):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"miroir dev did not start ({proc.poll()}):\n" + "\n".join(out + err[-30:]))
            time.sleep(0.02)
        url = None
        nodes: dict[str, str] = {}
        groups: dict[str, list[str]] = {}
        for line in out:
            if m := re.match(r"Miroir: (http://\S+)", line):
                url = m.group(1)
            elif m := re.match(r"\s+node (\S+) \((\S+)\): (http://\S+)", line):
                nodes[m.group(1)] = m.group(3)
                groups.setdefault(m.group(2), []).append(m.group(1))
        assert url == f"http://127.0.0.1:{port}", out
        yield url, nodes, groups
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
            code = None
        for t in threads:
            t.join(5)
    assert code == 0, f"miroir dev exited with {code}:\n" + "\n".join(err[-30:])


def node_placement(url: str, uid: str) -> dict[str, int]:
    """id -> `_miroir_shard` of every document one node holds (asked of the node)."""
    out: dict[str, int] = {}
    offset = 0
    with httpx.Client(base_url=url, timeout=60) as http:
        while True:
            r = http.post(
                f"/indexes/{uid}/documents/fetch",
                json={"offset": offset, "limit": 5_000, "fields": ["id", "_miroir_shard"]},
            )
            r.raise_for_status()
            page = r.json()["results"]
            for d in page:
                assert str(d["id"]) not in out, (url, d["id"])
                out[str(d["id"])] = d["_miroir_shard"]
            if len(page) < 5_000:
                return out
            offset += len(page)


def check_placement(nodes: dict[str, str], groups: dict[str, list[str]], uid: str, ids: set[str], rf: int) -> dict[str, int]:
    """Each node holds only documents of shards it owns, with the right `_miroir_shard`;
    every document is on exactly its owners in every group. Returns node -> count."""
    held: dict[str, set[str]] = {}
    counts: dict[str, int] = {}
    for node_id, url in nodes.items():
        group = next(g for g, members in groups.items() if node_id in members)
        docs = node_placement(url, uid)
        counts[node_id] = len(docs)
        for doc_id, shard in docs.items():
            assert shard == shard_for_key(doc_id, SHARDS), (node_id, doc_id, shard)
            assert node_id in fresh_owners(shard, groups[group], rf, SHARDS), f"{node_id} holds {doc_id} of shard {shard} it does not own"
            held.setdefault(doc_id, set()).add(node_id)
    assert set(held) == ids, (len(held), len(ids), sorted(ids - set(held))[:10])
    for doc_id, where in held.items():
        shard = shard_for_key(doc_id, SHARDS)
        want = {n for members in groups.values() for n in fresh_owners(shard, members, rf, SHARDS)}
        assert where == want, (doc_id, shard, where, want)
        assert len(where) == len(groups) * rf
    return counts


def load_with_sdk(client: meilisearch.Client, uid: str, docs: list[dict]) -> list[int]:
    """Batches enqueued back to back, then every task awaited: all must succeed."""
    index = client.index(uid)
    uids = [index.add_documents(docs[i : i + BATCH], primary_key="id").task_uid for i in range(0, len(docs), BATCH)]
    for task_uid in uids:
        task = client.wait_for_task(task_uid, timeout_in_ms=TASK_TIMEOUT_MS, interval_in_ms=50)
        assert task.status == "succeeded", task
        assert task.details["indexedDocuments"] == task.details["receivedDocuments"], task
    assert uids == sorted(uids) and len(set(uids)) == len(uids)
    return uids


def fetch_all_by_ids(index, docs: list[dict]) -> int:
    """Every document by id, FETCH_PAGE ids per `get_documents` call; equal to what was sent."""
    calls = 0
    for i in range(0, len(docs), FETCH_PAGE):
        chunk = docs[i : i + FETCH_PAGE]
        page = index.get_documents({"ids": [d["id"] for d in chunk], "limit": FETCH_PAGE})
        calls += 1
        got = {d.id: dict(d) for d in page.results}
        assert page.total == len(chunk), (i, page.total)
        assert len(got) == len(chunk)
        for d in chunk:
            doc = got[d["id"]]
            assert "_miroir_shard" not in doc
            assert {k: v for k, v in doc.items() if not k.startswith("_")} == d, d["id"]
    return calls


def test_dev_20000_debian_documents_with_the_sdk(tmp_path):
    docs = read_docs(20_000)
    by_id = {d["id"]: d for d in docs}
    with miroir_dev(tmp_path, "--nodes", "3", "--shards", str(SHARDS)) as (url, nodes, groups):
        assert sorted(nodes) == ["n1", "n2", "n3"] and groups == {"g0": ["n1", "n2", "n3"]}
        client = meilisearch.Client(url, timeout=120)
        t0 = time.monotonic()
        task_uids = load_with_sdk(client, "debian", docs)
        load_s = time.monotonic() - t0
        index = client.index("debian")
        assert index.get_stats().number_of_documents == 20_000
        assert client.get_all_stats()["indexes"]["debian"]["numberOfDocuments"] == 20_000
        assert index.get_documents({"limit": 0}).total == 20_000

        calls = fetch_all_by_ids(index, docs)
        rng = random.Random(4)
        for doc_id in rng.sample(sorted(by_id), SINGLE_GETS):
            doc = dict(index.get_document(doc_id))
            assert doc == by_id[doc_id], doc_id

        counts = check_placement(nodes, groups, "debian", {str(i) for i in by_id}, rf=1)
        assert sum(counts.values()) == 20_000 and all(0 < n < 20_000 for n in counts.values())
        print(
            f"\nloaded 20000 docs in {len(task_uids)} tasks ({load_s:.1f}s); fetched by ids in {calls} calls, "
            f"{SINGLE_GETS} single gets; per node {counts}"
        )


def test_dev_two_groups_rf2_four_copies_with_the_sdk(tmp_path):
    docs = read_docs(5_000, stride=3)
    # Groups of 3: RF 2 picks 2 of 3 nodes per shard, so placement is not trivial.
    args = ("--nodes", "6", "--groups", "2", "--rf", "2", "--shards", str(SHARDS))
    with miroir_dev(tmp_path, *args) as (url, nodes, groups):
        assert groups == {"g0": ["n1", "n3", "n5"], "g1": ["n2", "n4", "n6"]}
        client = meilisearch.Client(url, timeout=120)
        load_with_sdk(client, "copies", docs)
        index = client.index("copies")
        assert index.get_stats().number_of_documents == 5_000
        calls = fetch_all_by_ids(index, docs)
        rng = random.Random(5)
        by_id = {d["id"]: d for d in docs}
        for doc_id in rng.sample(sorted(by_id), 100):
            assert dict(index.get_document(doc_id)) == by_id[doc_id]
        counts = check_placement(nodes, groups, "copies", {str(i) for i in by_id}, rf=2)
        assert sum(counts.values()) == 4 * 5_000 and all(0 < n < 5_000 for n in counts.values())
        print(f"\n5000 docs x 4 copies: per node {counts}; fetched by ids in {calls} calls")
