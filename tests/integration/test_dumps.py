"""Dumps and migration (issue 19, item 2): real Meilisearch dumps into Miroir, Miroir's
`POST /dumps`, and a Miroir dump imported into a fresh devnode answering like the cluster.

Real processes throughout: 3 devnodes behind a Miroir, `miroir import-dump` as a
subprocess (the operator's command), `miroir devnode --import-dump` as a subprocess.
Read-backs are compared with the dump files themselves (read here with tarfile/json, not
with Miroir's reader).
"""

from __future__ import annotations

import gzip
import hashlib
import hmac
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import httpx
import pytest

from tests.support import oracle_queries as oq
from tests.support.corpus import CORPUS, read_docs
from tests.support.devnodes import Devnode, free_port, wait_task
from tests.support.miroir_proc import start_cluster
from tests.support.paths import SHARED

DUMPS = SHARED / "datasets" / "meilisearch-dumps"
MASTER_KEY = "dump-tests-master-key-0123456789abcdef"
H = {"Authorization": f"Bearer {MASTER_KEY}"}
TASK_TIMEOUT_S = 120.0


# --- reading a dump file independently of Miroir's code -------------------------------------


def _members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path, "r:gz") as tar:
        return {m.name.removeprefix("./"): tar.extractfile(m).read() for m in tar.getmembers()
                if m.isfile() and not os.path.basename(m.name).startswith("._")}


def _jsonl(data: bytes) -> list[dict]:
    return [json.loads(line) for line in data.splitlines() if line.strip()]


def dump_contents(path: Path) -> dict:
    """{version, indexes: {uid: (primaryKey, settings, [documents])}, keys: [...]}"""
    m = _members(path)
    meta = json.loads(m["metadata.json"])
    indexes = {}
    if meta["dumpVersion"] == "V6":
        for name in m:
            parts = name.split("/")
            if len(parts) == 3 and parts[0] == "indexes" and parts[2] == "metadata.json":
                im = json.loads(m[name])
                base = f"indexes/{parts[1]}"
                indexes[im["uid"]] = (im["primaryKey"], json.loads(m[f"{base}/settings.json"]),
                                      _jsonl(m[f"{base}/documents.jsonl"]))
        keys = _jsonl(m["keys.jsonl"])
    else:  # V5: directories by uuid
        for entry in _jsonl(m["index_uuids/data.jsonl"]):
            base = f"indexes/{entry['index_meta']['uuid']}"
            im = json.loads(m[f"{base}/meta.json"])
            indexes[entry["uid"]] = (im["primary_key"], im["settings"], _jsonl(m[f"{base}/documents.jsonl"]))
        keys = _jsonl(m["keys"])
    return {"version": meta["dumpVersion"], "indexes": indexes, "keys": keys, "members": m}


def _covers(current, wanted, name=None) -> bool:
    """Read-back settings hold the dump's: more keys allowed (newer settings), set-like
    lists in any order."""
    if isinstance(wanted, dict):
        return isinstance(current, dict) and all(k in current and _covers(current[k], v, k) for k, v in wanted.items())
    if isinstance(wanted, list) and name in ("filterableAttributes", "sortableAttributes", "stopWords",
                                             "disableOnWords", "disableOnAttributes"):
        return sorted(map(json.dumps, current)) == sorted(map(json.dumps, wanted))
    return current == wanted


# --- helpers against a running Miroir ---------------------------------------------------------


def import_dump(url: str, path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "miroir", "import-dump", str(path), "--url", url, "--admin-key", MASTER_KEY, *args],
        check=False, capture_output=True, text=True, timeout=300,
    )


def all_documents(client: httpx.Client, uid: str) -> list[dict]:
    out, offset = [], 0
    while True:
        r = client.get(f"/indexes/{uid}/documents", params={"offset": offset, "limit": 1000})
        assert r.status_code == 200, r.text
        page = r.json()["results"]
        out += page
        offset += len(page)
        if len(page) < 1000:
            return out


def check_read_back(client: httpx.Client, uid: str, pk: str, settings: dict, docs: list[dict]) -> None:
    index = client.get(f"/indexes/{uid}").json()
    assert index["primaryKey"] == pk
    got = {json.dumps(d[pk]): d for d in all_documents(client, uid)}
    # 1.50 shows `_vectors` with retrieveVectors only, embedders or not (RetrieveVectors::Hide
    # removes the field from every document).
    docs = [{k: v for k, v in d.items() if k != "_vectors"} for d in docs]
    want = {json.dumps(d[pk]): d for d in docs}
    assert len(got) == len(want), (uid, len(got), len(want))
    diff = [k for k in want if got.get(k) != want[k]]
    assert not diff, (uid, diff[:3], [got.get(k) for k in diff[:3]], [want[k] for k in diff[:3]])
    current = client.get(f"/indexes/{uid}/settings").json()
    assert _covers(current, settings), (uid, settings, current)


def check_keys(client: httpx.Client, keys: list[dict]) -> None:
    for k in keys:
        r = client.get(f"/keys/{k['uid']}")
        assert r.status_code == 200, r.text
        got = r.json()
        # Same uid, same master key: the same key value as on the Meilisearch that wrote it.
        assert got["key"] == hmac.new(MASTER_KEY.encode(), k["uid"].encode(), hashlib.sha256).hexdigest()
        assert (got["name"], got["actions"], got["indexes"]) == (k["name"], k["actions"], k["indexes"])


# --- every real dump ----------------------------------------------------------------------------


REAL_DUMPS = sorted(p.name for p in DUMPS.glob("*.dump"))


@pytest.mark.skipif(not REAL_DUMPS, reason=f"no dumps in {DUMPS}")
def test_real_dumps_import_and_read_back_equal():
    results = {}
    with start_cluster(nodes=3, shards=8, master_key=MASTER_KEY) as c, \
            httpx.Client(base_url=c.url, headers=H, timeout=60) as client:
        for name in REAL_DUMPS:
            path = DUMPS / name
            dump = dump_contents(path)
            started = time.monotonic()
            proc = import_dump(c.url, path, "--force", "--json")
            elapsed = time.monotonic() - started
            assert proc.returncode == 0, proc.stderr
            out = json.loads(proc.stdout)
            assert out["version"] == dump["version"]
            for uid, (pk, settings, docs) in dump["indexes"].items():
                check_read_back(client, uid, pk, settings, docs)
            check_keys(client, dump["keys"])
            # Progress went to stderr? Only with the text output; --json keeps stderr quiet.
            results[name] = f"ok: {sum(len(d) for _, _, d in dump['indexes'].values())} documents in {elapsed:.1f}s"
        print(results)

        # Without --force/--resume, an import over existing indexes changes nothing.
        before = client.get("/indexes/movies/stats").json()["numberOfDocuments"]
        proc = import_dump(c.url, DUMPS / "v5.dump")
        assert proc.returncode == 1
        assert "`movies`" in proc.stderr and "already exist" in proc.stderr, proc.stderr
        assert client.get("/indexes/movies/stats").json()["numberOfDocuments"] == before

        # --resume: a complete index is skipped; an incomplete one is completed.
        v6 = DUMPS / "v6_v1.6.0_use_deactivated_experimental_setting.dump"
        proc = import_dump(c.url, v6, "--resume", "--json")
        assert proc.returncode == 0, proc.stderr
        assert [i["status"] for i in json.loads(proc.stdout)["indexes"]] == ["skipped"]
        r = client.post("/indexes/movies/documents/delete-batch", json=[1])
        assert wait_task(c.url, r.json()["taskUid"], MASTER_KEY)["status"] == "succeeded"
        proc = import_dump(c.url, v6)  # text mode: progress lines on stderr
        assert proc.returncode == 0 or "already exist" in proc.stderr
        proc = import_dump(c.url, v6, "--resume")
        assert proc.returncode == 0, proc.stderr
        assert "index movies: imported, 3/3 documents" in proc.stderr, proc.stderr
        pk, settings, docs = dump_contents(v6)["indexes"]["movies"]
        check_read_back(client, "movies", pk, settings, docs)


def test_not_a_dump_or_an_old_format_is_refused(tmp_path):
    junk = tmp_path / "junk.dump"
    junk.write_bytes(b"not a tar")
    old = tmp_path / "v4.dump"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        data = json.dumps({"dumpVersion": "V4", "dbVersion": "0.27.0", "dumpDate": "2022-01-01T00:00:00Z"}).encode()
        info = tarfile.TarInfo("metadata.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    old.write_bytes(buf.getvalue())
    for path, words in ((junk, "not a dump archive"), (old, "dump format V4")):
        proc = import_dump("http://127.0.0.1:9", path)
        assert proc.returncode == 2, proc.stderr
        assert words in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
        assert proc.stderr.count("\n") == 1


# --- Miroir's own dump, into a fresh devnode ------------------------------------------------------

N_DOCS = 2_000
UID = "packages"
N_QUERIES = 25
SEED = 19_2


@pytest.mark.skipif(not CORPUS.exists(), reason=f"corpus not found: {CORPUS}")
def test_miroir_dump_round_trip_to_a_devnode(tmp_path):
    from tests.oracle.test_oracle import compare, oracle_body

    # Every 5th package: the first 2,000 alone lack values some generated filters need.
    docs = read_docs(N_DOCS, stride=5)
    queries = oq.generate(docs, N_QUERIES, SEED)
    with start_cluster(nodes=3, shards=16, master_key=MASTER_KEY,
                       extra={"dumps": {"dir": str(tmp_path / "dumps")}}) as c, \
            httpx.Client(base_url=c.url, headers=H, timeout=60) as client:

        def task(r: httpx.Response) -> dict:
            assert r.status_code == 202, r.text
            t = wait_task(c.url, r.json()["taskUid"], MASTER_KEY, timeout=TASK_TIMEOUT_S)
            assert t["status"] == "succeeded", t
            return t

        task(client.post("/indexes", json={"uid": UID, "primaryKey": oq.PRIMARY_KEY}))
        task(client.patch(f"/indexes/{UID}/settings", json=oq.BASE_SETTINGS))
        for start in range(0, N_DOCS, 1000):
            task(client.post(f"/indexes/{UID}/documents", json=docs[start:start + 1000]))

        r = client.post("/dumps")
        assert r.status_code == 202
        summary = r.json()
        assert (summary["type"], summary["indexUid"], summary["status"]) == ("dumpCreation", None, "enqueued")
        done = task(r)
        dump_uid = done["details"]["dumpUid"]
        path = tmp_path / "dumps" / f"{dump_uid}.dump"
        assert path.exists() and not list((tmp_path / "dumps").glob("*.tmp"))

        # The v6 layout, each document once, nothing of Miroir's.
        dump = dump_contents(path)
        members = dump["members"]
        for name in ("metadata.json", "instance_uid.uuid", "keys.jsonl", "tasks/queue.jsonl",
                     "batches/queue.jsonl", "experimental-features.json"):
            assert name in members, name
        assert json.loads(members["metadata.json"])["dumpVersion"] == "V6"
        pk, settings, dumped = dump["indexes"][UID]
        assert pk == "id" and len(dumped) == N_DOCS
        assert sorted(d["id"] for d in dumped) == sorted(d["id"] for d in docs)
        assert all("_miroir_shard" not in d for d in dumped)
        assert {json.dumps(d, sort_keys=True) for d in dumped} == {json.dumps(d, sort_keys=True) for d in docs}
        assert "_miroir_shard" not in json.dumps(settings)
        assert sorted(settings["filterableAttributes"]) == sorted(oq.FILTERABLE)
        keys = {k["uid"] for k in dump["keys"]}
        assert keys == {k["uid"] for k in client.get("/keys").json()["results"]}
        tasks = _jsonl(members["tasks/queue.jsonl"])
        assert [t["type"] for t in tasks[:2]] == [{"indexCreation": {"primary_key": "id"}},
                                                  {"settings": {"settings": tasks[1]["details"]["SettingsUpdate"]["settings"],
                                                                "is_deletion": False, "allow_index_creation": True}}]

        # A fresh devnode imports it before it listens, and answers like the cluster.
        node = Devnode(free_port(), None, None, ["--import-dump", str(path), "--dump-dir", str(tmp_path / "dn")])
        try:
            node.start()
            node.wait_ready(timeout=60)
            with httpx.Client(base_url=node.url, timeout=60) as dn:
                assert dn.get(f"/indexes/{UID}/stats").json()["numberOfDocuments"] == N_DOCS
                problems = []
                for q in queries:
                    r_dn = dn.post(f"/indexes/{UID}/search", json=oracle_body(q))
                    r_m = client.post(f"/indexes/{UID}/search", json=q)
                    # The dump lists documents shard by shard (README): the devnode's tie order is that one.
                    problems += compare(q, None, (r_dn.status_code, r_dn.json()), (r_m.status_code, r_m.json()),
                                        ties_as_sets=True)
                assert not problems, problems[:5]
                # And the devnode writes the same format back.
                t = dn.post("/dumps").json()
                assert wait_task(node.url, t["taskUid"], timeout=30)["status"] == "succeeded"
                (again,) = (tmp_path / "dn").glob("*.dump")
                _, _, redumped = dump_contents(again)["indexes"][UID]
                assert {d["id"] for d in redumped} == {d["id"] for d in docs}
        finally:
            node.close()


def test_dump_command_and_layout_of_an_empty_cluster(tmp_path):
    """`miroir dump` waits for the task; the file is what Meilisearch's reader needs before
    anything else: a gzipped tar with an `indexes/` directory (it lists it), even empty."""
    with start_cluster(nodes=1, shards=2, master_key=MASTER_KEY,
                       extra={"dumps": {"dir": str(tmp_path)}}) as c:
        proc = subprocess.run([sys.executable, "-m", "miroir", "dump", "--url", c.url, "--admin-key", MASTER_KEY,
                               "--json"], check=False, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        t = json.loads(proc.stdout)  # `miroir dump` waited for the task
        assert (t["type"], t["status"]) == ("dumpCreation", "succeeded") and t["details"]["dumpUid"]
        path = tmp_path / f"{t['details']['dumpUid']}.dump"
        with gzip.open(path) as f:
            f.read(10)
        with tarfile.open(path) as tar:
            dirs = {m.name for m in tar.getmembers() if m.isdir()}
        assert "indexes" in dirs
        base = [sys.executable, "-m", "miroir", "dump", "--url", c.url, "--admin-key", MASTER_KEY]
        proc = subprocess.run(base, check=False, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        written = re.fullmatch(r"dump (\S+) written \(task (\d+)\)\n", proc.stdout)
        assert written and (tmp_path / f"{written[1]}.dump").is_file(), proc.stdout
        proc = subprocess.run([*base, "--no-wait"], check=False, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0 and re.fullmatch(r"dump task \d+ enqueued\n", proc.stdout), proc
        # An unauthenticated client cannot ask for one.
        assert httpx.post(c.url + "/dumps").status_code == 401


# --- an import interrupted by kill -9 of Miroir, resumed -------------------------------------------


def write_v6_dump(path: Path, uid: str, pk: str, settings: dict, docs: list[dict], keys: list[dict]) -> None:
    """A v6 dump as Meilisearch lays it out, written here without Miroir's code."""
    files = {
        "metadata.json": {"dumpVersion": "V6", "dbVersion": "1.13.0", "dumpDate": "2025-02-04T10:22:31.331764736Z"},
        "keys.jsonl": keys,
        "tasks/queue.jsonl": [],
        f"indexes/{uid}/metadata.json": {"uid": uid, "primaryKey": pk, "createdAt": "2025-02-04T10:14:43.56Z",
                                          "updatedAt": "2025-02-04T10:15:21.39Z"},
        f"indexes/{uid}/settings.json": settings,
        f"indexes/{uid}/documents.jsonl": docs,
    }
    with tarfile.open(path, "w:gz") as tar:
        for name, content in files.items():
            data = (b"".join(json.dumps(d).encode() + b"\n" for d in content) if name.endswith(".jsonl")
                    else json.dumps(content).encode())
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


@pytest.mark.skipif(not CORPUS.exists(), reason=f"corpus not found: {CORPUS}")
def test_import_killed_with_miroir_resumes_without_duplicates(tmp_path):
    from tests.integration.test_chaos import MiroirProcess
    from tests.support.devnodes import start_devnodes

    docs = read_docs(3_000, stride=3)
    key = {"description": None, "name": "ops", "uid": "0f8b5f41-2b1a-4a51-9d3e-2c6a3c1f1e01", "actions": ["search"],
           "indexes": ["pkgs"], "expires_at": None, "created_at": "2025-02-04T10:14:11Z", "updated_at": "2025-02-04T10:14:11Z"}
    dump = tmp_path / "pkgs.dump"
    write_v6_dump(dump, "pkgs", "id", {"filterableAttributes": ["section"], "rankingRules": ["words", "typo"]},
                  docs, [key])
    with start_devnodes(3) as devs:
        nodes = "".join(f'[[nodes]]\nid = "n{i + 1}"\nurl = "{d.url}"\ngroup = "g0"\n' for i, d in enumerate(devs))
        cfg = tmp_path / "miroir.toml"
        cfg.write_text(
            '[server]\nbind = "127.0.0.1:0"\n'
            f'[auth]\nmaster_key = "{MASTER_KEY}"\n'
            f'[store]\ndata_dir = "{tmp_path / "journal"}"\n'
            '[cluster]\nshards = 8\n[log]\nlevel = "info"\n' + nodes
        )
        miroir = MiroirProcess(cfg)
        try:
            url = miroir.wait_ready()
            proc = subprocess.Popen(
                [sys.executable, "-m", "miroir", "import-dump", str(dump), "--url", url, "--admin-key", MASTER_KEY,
                 "--batch-size", "250"], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
            try:
                for line in proc.stderr:
                    if "index pkgs: importing" in line:
                        break  # some batches are in, more are in flight
                miroir.kill()
                rest = proc.stderr.read()
                assert proc.wait(timeout=60) == 1, rest
            finally:
                if proc.poll() is None:
                    proc.kill()
            assert "rerun with --resume" in rest and "Traceback" not in rest, rest

            miroir = MiroirProcess(cfg)
            url = miroir.wait_ready()
            with httpx.Client(base_url=url, headers=H, timeout=60) as client:
                partial = client.get("/indexes/pkgs/stats").json()["numberOfDocuments"]
                assert 0 < partial < len(docs), partial
                done = import_dump(url, dump, "--resume", "--batch-size", "1000", "--json")
                assert done.returncode == 0, done.stderr
                assert json.loads(done.stdout)["indexes"] == [{"uid": "pkgs", "status": "imported", "documents": len(docs)}]
                got = all_documents(client, "pkgs")
                assert len(got) == len({d["id"] for d in got}) == len(docs)  # nothing twice, nothing missing
                check_read_back(client, "pkgs", "id", {"filterableAttributes": ["section"],
                                                       "rankingRules": ["words", "typo"]}, docs)
                check_keys(client, [key])
                # A second --resume finds everything complete.
                again = import_dump(url, dump, "--resume", "--json")
                assert json.loads(again.stdout)["indexes"][0]["status"] == "skipped"
                print(f"\nkilled after {partial}/{len(docs)} documents; resumed to {len(got)}")
        finally:
            miroir.kill()


def test_dump_with_an_unreachable_shard_fails_and_leaves_no_file(tmp_path):
    """RF 1 and a node killed: some shard has no owner to read, so the dump task fails
    (saying which shard) rather than writing a dump that silently lacks documents."""
    with start_cluster(nodes=3, shards=4, master_key=MASTER_KEY,
                       extra={"dumps": {"dir": str(tmp_path)}}) as c, \
            httpx.Client(base_url=c.url, headers=H, timeout=30) as client:
        r = client.post("/indexes/books/documents", json=[{"id": i, "t": f"book {i}"} for i in range(200)])
        assert wait_task(c.url, r.json()["taskUid"], MASTER_KEY, timeout=30)["status"] == "succeeded"
        c.devnodes[1].kill()
        t = wait_task(c.url, client.post("/dumps").json()["taskUid"], MASTER_KEY, timeout=60)
        assert t["status"] == "failed", t
        assert t["error"]["code"] == "miroir_shard_unavailable" and "of index `books`" in t["error"]["message"], t
        assert t["details"] == {"dumpUid": None}
        assert list(tmp_path.iterdir()) == []


def test_dump_of_four_copies_holds_each_document_once(tmp_path):
    """2 groups x RF 2: every document is on 4 nodes, and once in the dump."""
    with start_cluster(nodes=4, groups=2, rf=2, shards=4, master_key=MASTER_KEY,
                       extra={"dumps": {"dir": str(tmp_path)}}) as c, \
            httpx.Client(base_url=c.url, headers=H, timeout=30) as client:
        docs = [{"id": i, "t": f"book {i}", "n": i % 7} for i in range(300)]
        r = client.post("/indexes/books/documents", json=docs)
        assert wait_task(c.url, r.json()["taskUid"], MASTER_KEY, timeout=30)["status"] == "succeeded"
        t = wait_task(c.url, client.post("/dumps").json()["taskUid"], MASTER_KEY, timeout=60)
        assert t["status"] == "succeeded", t
        _, _, dumped = dump_contents(tmp_path / f"{t['details']['dumpUid']}.dump")["indexes"]["books"]
        assert sorted(dumped, key=lambda d: d["id"]) == docs
