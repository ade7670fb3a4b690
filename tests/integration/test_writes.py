"""The write path end to end: the official `meilisearch` client, unchanged, against Miroir
over real devnode subprocesses; placement checked on the nodes with the routing functions.
"""

from __future__ import annotations

import json
import re

import httpx
import meilisearch
import pytest
from meilisearch.errors import MeilisearchApiError

from miroir.core.routing import shard_for_key
from tests.support.chaos_helpers import fresh_owners
from tests.support.corpus import read_docs
from tests.support.miroir_proc import start_cluster

WAIT_MS = 20_000


def debian(n: int) -> list[dict]:
    return read_docs(n)


def package_key(name: str) -> str:
    """Package names may hold `.` and `+` (invalid in document ids): a derived, unique id."""
    return re.sub(r"[^A-Za-z0-9_-]", lambda m: f"_{ord(m.group(0)):02x}", name)


def wait_ok(client: meilisearch.Client, info) -> None:
    uid = info if isinstance(info, int) else info.task_uid
    task = client.wait_for_task(uid, timeout_in_ms=WAIT_MS, interval_in_ms=20)
    assert task.status == "succeeded", task


def node_docs(url: str, index: str, pk: str) -> dict[str, int]:
    """id -> `_miroir_shard` of every document one node holds (read on the node itself)."""
    r = httpx.get(f"{url}/indexes/{index}/documents", params={"limit": 100_000, "fields": f"{pk},_miroir_shard"}, timeout=10)
    if r.status_code == 404:
        return {}
    r.raise_for_status()
    return {str(d[pk]): d["_miroir_shard"] for d in r.json()["results"]}


def assert_placement(c, index: str, pk: str, expected_ids: set[str], shards: int, rf: int) -> None:
    """Every document is exactly on its shard's owners in every group, nowhere else."""
    held: dict[str, set[str]] = {}
    for node_id, dev in zip(c.node_ids, c.devnodes):
        for doc_id, shard in node_docs(dev.url, index, pk).items():
            assert shard == shard_for_key(doc_id, shards), (node_id, doc_id)
            held.setdefault(doc_id, set()).add(node_id)
    assert set(held) == expected_ids
    for doc_id, nodes in held.items():
        shard = shard_for_key(doc_id, shards)
        want = {n for ids in c.groups.values() for n in fresh_owners(shard, ids, rf, shards)}
        assert nodes == want, (doc_id, shard)
        assert len(nodes) == len(c.groups) * rf


@pytest.fixture(scope="module")
def one_group():
    with start_cluster(nodes=3, groups=1, rf=1, shards=16) as c:
        yield c


def test_debian_2000_documents_sdk(one_group):
    c = one_group
    client = meilisearch.Client(c.url, timeout=30)
    wait_ok(client, client.create_index("debian"))
    docs = debian(2000)
    index = client.index("debian")
    for i in range(0, len(docs), 500):
        wait_ok(client, index.add_documents(docs[i : i + 500]))  # primary key `id` inferred
    assert client.get_index("debian").primary_key == "id"

    stats = index.get_stats()
    assert stats.number_of_documents == 2000
    dist = httpx.get(f"{c.url}/indexes/debian/stats", timeout=10).json()["fieldDistribution"]
    assert dist["name"] == 2000 and dist["id"] == 2000
    assert not any(k.startswith("_miroir") for k in dist)
    glob = client.get_all_stats()
    assert glob["indexes"]["debian"]["numberOfDocuments"] == 2000

    doc = dict(index.get_document(docs[123]["id"]))
    assert doc["name"] == docs[123]["name"] and "_miroir_shard" not in doc
    narrow = dict(index.get_document(docs[7]["id"], {"fields": ["name"]}))
    assert narrow == {"name": docs[7]["name"]}
    with pytest.raises(MeilisearchApiError) as err:
        index.get_document(999_999)
    assert err.value.code == "document_not_found"

    assert_placement(c, "debian", "id", {str(d["id"]) for d in docs}, 16, 1)
    # One node does not hold everything: the index really is striped.
    per_node = [len(node_docs(d.url, "debian", "id")) for d in c.devnodes]
    assert sum(per_node) == 2000 and all(0 < n < 2000 for n in per_node)


def test_formats_partial_update_and_deletions(one_group):
    c = one_group
    client = meilisearch.Client(c.url, timeout=30)
    index = client.index("pkgs")
    docs = debian(60)
    rows = [{"pkg": package_key(d["name"]), "name": d["name"], "section": d["section"]} for d in docs]
    ndjson = "\n".join(json.dumps(r) for r in rows[:30]).encode()
    wait_ok(client, index.add_documents_ndjson(ndjson, primary_key="pkg"))  # implicit creation
    csv = "pkg;name;section\n" + "\n".join(f"{r['pkg']};{r['name']};{r['section']}" for r in rows[30:])
    wait_ok(client, index.add_documents_csv(csv.encode(), csv_delimiter=";"))
    assert index.get_stats().number_of_documents == 60
    assert client.get_index("pkgs").primary_key == "pkg"

    wait_ok(client, index.update_documents([{"pkg": rows[0]["pkg"], "extra": 1}]))
    doc = dict(index.get_document(rows[0]["pkg"]))
    assert doc["extra"] == 1 and doc["name"] == rows[0]["name"]  # merged, not replaced

    wait_ok(client, index.delete_document(rows[0]["pkg"]))
    wait_ok(client, index.delete_documents([r["pkg"] for r in rows[1:5]]))
    assert index.get_stats().number_of_documents == 55
    wait_ok(client, index.update_filterable_attributes(["section"]))
    doomed = sum(1 for r in rows[5:] if r["section"] == rows[5]["section"])
    wait_ok(client, index.delete_documents(filter=f"section = '{rows[5]['section']}'"))
    assert index.get_stats().number_of_documents == 55 - doomed
    assert_placement(c, "pkgs", "pkg", {r["pkg"] for r in rows[5:] if r["section"] != rows[5]["section"]}, 16, 1)
    info = index.delete_all_documents()
    wait_ok(client, info)
    assert index.get_stats().number_of_documents == 0
    assert all(node_docs(d.url, "pkgs", "pkg") == {} for d in c.devnodes)


def test_two_groups_rf2_four_copies():
    with start_cluster(nodes=4, groups=2, rf=2, shards=16) as c:
        client = meilisearch.Client(c.url, timeout=30)
        index = client.index("copies")
        rows = [{"pkg": package_key(d["name"]), **{k: d[k] for k in ("name", "section", "version")}} for d in debian(400)]
        r = httpx.post(f"{c.url}/indexes/copies/documents", params={"primaryKey": "pkg"}, json=rows[:200], timeout=30)
        assert r.status_code == 202 and "X-Miroir-Degraded" not in r.headers
        wait_ok(client, r.json()["taskUid"])
        wait_ok(client, index.add_documents(rows[200:]))
        stats = index.get_stats()
        assert stats.number_of_documents == 400
        assert_placement(c, "copies", "pkg", {r["pkg"] for r in rows}, 16, 2)
        task = client.get_tasks({"indexUids": ["copies"], "types": ["documentAdditionOrUpdate"]}).results[0]
        assert task.details == {"receivedDocuments": 200, "indexedDocuments": 200}

        # One node of g0 down: write consistency `one` (the default) acknowledges every
        # shard, g0's missed copies are hinted and named in X-Miroir-Degraded.
        c.node("n1").kill()
        r = httpx.post(f"{c.url}/indexes/copies/documents", json=[{"pkg": "late", "name": "late"}], timeout=30)
        assert r.status_code == 202, r.text
        assert r.headers["X-Miroir-Degraded"].startswith("groups=g0;")
        wait_ok(client, r.json()["taskUid"])
        # One node of each group down: every shard still has an owner up: accepted.
        c.node("n2").kill()
        r = httpx.post(f"{c.url}/indexes/copies/documents", json=[{"pkg": "both", "name": "both"}], timeout=30)
        assert r.status_code == 202, r.text
        assert r.headers["X-Miroir-Degraded"].startswith("groups=g0,g1;")
        wait_ok(client, r.json()["taskUid"])
        assert index.get_document("both").name == "both"
