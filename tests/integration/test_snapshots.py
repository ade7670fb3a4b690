"""Cluster snapshots (issue 19, item 3): `POST /snapshots` cuts the cluster at a barrier
while a writer streams, and `miroir restore` brings back exactly that cut.

Real processes: 3 devnodes with data dirs (RF = 2, so every shard has two copies to
compare), Miroir on loopback, `miroir restore` as a subprocess (the operator's command).
After the restore, onto new node processes (new ports, same node ids) started from the
snapshots the nodes wrote: every write acknowledged before the snapshot was asked for is
there, nothing sent after it succeeded is, and the cut is one cut: a write's document is
on the nodes exactly when its task is in Miroir's restored journal, and both copies of
every shard hold the same documents.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from tests.support.devnodes import start_devnodes, wait_task
from tests.support.miroir_proc import make_config, serve_miroir

MASTER_KEY = "snapshot-tests-master-key-0123456789"
H = {"Authorization": f"Bearer {MASTER_KEY}"}
INDEX = "docs"
SHARDS = 8


class Writer(threading.Thread):
    """One document per request, as fast as Miroir answers: (id, task uid, sent, acked)."""

    def __init__(self, url: str):
        super().__init__(name="writer", daemon=True)
        self.url = url
        self.stop = threading.Event()
        self.writes: list[tuple[int, int, float, float]] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with httpx.Client(base_url=self.url, headers=H, timeout=30.0) as c:
                i = 0
                while not self.stop.is_set():
                    sent = time.monotonic()
                    r = c.post(f"/indexes/{INDEX}/documents", json=[{"id": i, "n": i}])
                    assert r.status_code == 202, r.text
                    self.writes.append((i, r.json()["taskUid"], sent, time.monotonic()))
                    i += 1
        except BaseException as e:  # reported by the test
            self.error = e


def _wait_writes(writer: Writer, n: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while len(writer.writes) < n:
        assert writer.error is None, writer.error
        assert time.monotonic() < deadline, f"only {len(writer.writes)} of {n} writes in {timeout} s"
        time.sleep(0.02)


def _node_shards(url: str) -> dict[int, set[int]]:
    r = httpx.get(f"{url}/indexes/{INDEX}/documents", params={"limit": 100_000}, timeout=30.0)
    r.raise_for_status()
    shards: dict[int, set[int]] = {}
    for d in r.json()["results"]:
        shards.setdefault(d["_miroir_shard"], set()).add(d["id"])
    return shards


def test_snapshot_under_writes_restores_one_consistent_cut(tmp_path: Path) -> None:
    node_dirs = [str(tmp_path / f"node{i}") for i in range(3)]
    with start_devnodes(3, data_dirs=node_dirs) as devs:
        config = make_config(devs, groups=1, rf=2, shards=SHARDS, data_dir=str(tmp_path / "miroir"),
                             master_key=MASTER_KEY)
        with serve_miroir(config) as (url, _):
            r = httpx.post(f"{url}/indexes", json={"uid": INDEX, "primaryKey": "id"}, headers=H)
            wait_task(url, r.json()["taskUid"], MASTER_KEY)
            writer = Writer(url)
            writer.start()
            # Conditions, not sleeps: under load a fixed pause may see no write at all.
            _wait_writes(writer, 40)
            asked = time.monotonic()
            r = httpx.post(f"{url}/snapshots", headers=H)
            assert r.status_code == 202, r.text
            summary = r.json()
            assert summary["type"] == "snapshotCreation" and summary["indexUid"] is None
            snap_uid = summary["taskUid"]
            task = wait_task(url, snap_uid, MASTER_KEY, timeout=60)
            done = time.monotonic()
            assert task["status"] == "succeeded", task
            # Each node took its snapshot as a 1.50 task of its own.
            for d in devs:
                node_tasks = httpx.get(f"{d.url}/tasks", params={"types": "snapshotCreation"}).json()["results"]
                assert [t["status"] for t in node_tasks] == ["succeeded"]
            _wait_writes(writer, len(writer.writes) + 20)  # writes go on after the barrier
            writer.stop.set()
            writer.join(60)  # beyond the client's timeout: a request in flight ends first
            assert not writer.is_alive() and writer.error is None, writer.error
            wait_task(url, writer.writes[-1][1], MASTER_KEY, timeout=60)
            before = [w for w in writer.writes if w[3] < asked]
            after = [w for w in writer.writes if w[2] > done]
            during = [w for w in writer.writes if w[2] <= done and w[3] >= asked]
            assert before and after, (len(before), len(after))
            # Writes went on while the snapshot was taken (paused for the barrier only).
            assert len(during) >= 1

    manifest_path = tmp_path / "miroir" / "snapshots" / f"{snap_uid}.snapshot" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    assert manifest["taskUid"] == snap_uid and set(manifest["nodes"]) == {"n1", "n2", "n3"}
    assert manifest["indexes"] == {INDEX: SHARDS}

    # The operator's restore: refused over an existing journal, then into a fresh data dir.
    restore = [sys.executable, "-m", "miroir", "restore", str(manifest_path), "--data-dir"]
    refused = subprocess.run([*restore, str(tmp_path / "miroir")], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "already holds a journal" in refused.stderr, refused.stderr
    out = subprocess.run([*restore, str(tmp_path / "restored")], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "node n2" in out.stdout and "--import-snapshot" in out.stdout
    new_dirs = []
    for i, d in enumerate(node_dirs):
        new_dirs.append(str(tmp_path / f"restored-node{i}"))
        shutil.copytree(Path(d) / "snapshots" / manifest["nodes"][f"n{i + 1}"]["snapshot"], new_dirs[-1])

    with start_devnodes(3, data_dirs=new_dirs) as devs:
        # Both copies of every shard hold the same documents, as of the same cut.
        per_node = [_node_shards(d.url) for d in devs]
        for shard in range(SHARDS):
            copies = [s[shard] for s in per_node if shard in s]
            # A shard no write of the cut reached is on no node (an empty shard lists nothing).
            assert len(copies) in (0, 2) and copies[:1] == copies[1:], shard
        assert any(shard in s for s in per_node for shard in range(SHARDS))
        on_nodes = set().union(*(ids for s in per_node for ids in s.values()))
        config = make_config(devs, groups=1, rf=2, shards=SHARDS, data_dir=str(tmp_path / "restored"),
                             master_key=MASTER_KEY)
        with serve_miroir(config) as (url, _), httpx.Client(base_url=url, headers=H, timeout=30.0) as c:
            # As in Meilisearch, the snapshot leaves its own task out.
            assert c.get(f"/tasks/{snap_uid}").status_code == 404
            known = {}
            for doc_id, task_uid, _, _ in writer.writes:
                r = c.get(f"/tasks/{task_uid}")
                assert r.status_code in (200, 404), r.text
                known[doc_id] = r.status_code == 200
                if known[doc_id]:
                    assert wait_task(url, task_uid, MASTER_KEY, timeout=30)["status"] == "succeeded"
            # One cut: a write is on the nodes exactly when Miroir's journal knows its task.
            assert {i for i, k in known.items() if k} == on_nodes
            assert {w[0] for w in before} <= on_nodes
            assert not {w[0] for w in after} & on_nodes
            listed = c.get(f"/indexes/{INDEX}/documents", params={"limit": 100_000}).json()
            assert listed["total"] == len(on_nodes)
            # The restored cluster takes writes, with task uids it never handed out before.
            r = c.post(f"/indexes/{INDEX}/documents", json=[{"id": -1, "n": -1}])
            assert r.status_code == 202 and r.json()["taskUid"] >= manifest["nextTaskUid"]
            assert wait_task(url, r.json()["taskUid"], MASTER_KEY, timeout=30)["status"] == "succeeded"
            print(f"snapshot: {len(writer.writes)} writes, {len(before)} before, {len(during)} during, "
                  f"{len(after)} after; {len(on_nodes)} documents in the cut; snapshot task {done - asked:.2f}s")


def test_snapshot_with_a_node_down_fails_and_releases_the_barrier(tmp_path: Path) -> None:
    node_dirs = [str(tmp_path / f"node{i}") for i in range(3)]
    with start_devnodes(3, data_dirs=node_dirs) as devs:
        config = make_config(devs, groups=1, rf=2, shards=SHARDS, data_dir=str(tmp_path / "miroir"),
                             master_key=MASTER_KEY)
        with serve_miroir(config) as (url, _), httpx.Client(base_url=url, headers=H, timeout=30.0) as c:
            wait_task(url, c.post("/indexes", json={"uid": INDEX, "primaryKey": "id"}).json()["taskUid"], MASTER_KEY)
            devs[2].kill()
            uid = c.post("/snapshots").json()["taskUid"]
            task = wait_task(url, uid, MASTER_KEY, timeout=60)
            assert task["status"] == "failed", task
            assert task["error"]["code"] == "miroir_node_unavailable" and "n3" in task["error"]["message"], task
            assert not (tmp_path / "miroir" / "snapshots" / f"{uid}.snapshot" / "manifest.json").exists()
            # The barrier is gone with the failed task: writes are accepted again at once.
            started = time.monotonic()
            r = c.post(f"/indexes/{INDEX}/documents", json=[{"id": 1}])
            assert r.status_code == 202 and time.monotonic() - started < 5
            # The node back, the write lands and the next snapshot is taken.
            devs[2].restart()
            assert wait_task(url, r.json()["taskUid"], MASTER_KEY, timeout=60)["status"] == "succeeded"
            uid = c.post("/snapshots").json()["taskUid"]
            assert wait_task(url, uid, MASTER_KEY, timeout=60)["status"] == "succeeded"
            assert (tmp_path / "miroir" / "snapshots" / f"{uid}.snapshot" / "manifest.json").exists()


def test_restore_refuses_what_is_not_a_manifest_in_one_line(tmp_path: Path, capsys) -> None:
    from miroir.cli import main

    bad = tmp_path / "notes.json"
    bad.write_text('{"hello": 1}')
    for path, reason in ((tmp_path / "missing.json", "no such manifest"), (bad, "not a snapshot manifest")):
        assert main(["restore", str(path), "--data-dir", str(tmp_path / "d")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("miroir: error: ") and reason in err and err.count("\n") == 1, err
    assert not (tmp_path / "d").exists()
