"""Placement 2 on real devnodes (issue 17): documents per node follow the weighted quotas,
a joining node receives no more than 1.25 x the minimum, a heavier node its weighted
share, and the capacity report (`/_miroir/topology`, `miroir status`) says so.

Debian corpus, 16 shards, RF 1; 3 nodes -> + n4 (weight 1) -> + n5 (weight 2, by the CLI).
"""

from __future__ import annotations

import os
import subprocess
import sys

import httpx

from miroir.core.placement import rebalance_table
from miroir.core.routing import shard_for_key
from tests.support.chaos_helpers import fresh_owners, owners_after, wait_until
from tests.support.corpus import read_docs
from tests.support.devnodes import start_devnodes, wait_task
from tests.support.miroir_proc import start_cluster

INDEX = "packages"
SHARDS = 16
N_DOCS = 2000
WAIT_S = 120.0
ADMIN_KEY = "admin-secret"


def node_ids_by_shard(url: str) -> dict[str, int]:
    out: dict[str, int] = {}
    with httpx.Client(base_url=url, timeout=30) as h:
        offset = 0
        while True:
            r = h.post(f"/indexes/{INDEX}/documents/fetch", json={"offset": offset, "limit": 2000, "fields": ["id", "_miroir_shard"]})
            if r.status_code == 404:
                return out
            r.raise_for_status()
            page = r.json()["results"]
            out.update({str(d["id"]): d["_miroir_shard"] for d in page})
            if len(page) < 2000:
                return out
            offset += len(page)


def settled(h: httpx.Client) -> dict:
    def idle() -> dict | None:
        s = h.get("/_miroir/rebalance").json()
        return s if s["status"] == "idle" and not s["pendingChange"] else None

    return wait_until(idle, timeout=WAIT_S, what="rebalance idle")


def check_nodes(urls: dict[str, str], owners: dict[str, list[int]], ids: set[str]) -> dict[str, int]:
    """Each node holds exactly the documents of its shards, every document once."""
    seen: set[str] = set()
    counts: dict[str, int] = {}
    for node, url in urls.items():
        held = node_ids_by_shard(url)
        want = {i for i in ids if shard_for_key(i, SHARDS) in owners.get(node, [])}
        assert set(held) == want, (node, len(held), len(want))
        assert not seen & set(held)
        seen |= set(held)
        counts[node] = len(held)
    assert seen == ids
    return counts


def shards_of(table: list[list[str]]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for s, o in enumerate(table):
        for n in o:
            out.setdefault(n, []).append(s)
    return out


def test_join_and_weighted_join_on_devnodes():
    extra = {"auth": {"admin_key": ADMIN_KEY}, "rebalancer": {"page_size": 500}}
    with start_devnodes(2) as spare, start_cluster(nodes=3, shards=SHARDS, extra=extra) as c:
        h = httpx.Client(base_url=c.url, timeout=60, headers={"Authorization": f"Bearer {ADMIN_KEY}"})
        docs = read_docs(N_DOCS)
        r = h.post(f"/indexes/{INDEX}/documents", json=docs, params={"primaryKey": "id"})
        assert wait_task(c.url, r.json()["taskUid"], timeout=WAIT_S)["status"] == "succeeded"
        ids = {str(d["id"]) for d in docs}
        urls = {n: c.node(n).url for n in c.node_ids}

        topo = h.get("/_miroir/topology").json()
        assert topo["indexes"][INDEX]["placement"] == 2
        three = [fresh_owners(s, c.node_ids, 1, SHARDS) for s in range(SHARDS)]
        assert topo["indexes"][INDEX]["owners"]["g0"] == three
        counts = check_nodes(urls, shards_of(three), ids)
        assert sorted(len(v) for v in shards_of(three).values()) == [5, 5, 6]  # rendezvous alone: 4, 5, 7
        cap = topo["capacity"]
        assert {n["id"]: n["documents"] for n in cap["nodes"]} == counts
        assert all(n["weight"] == 1.0 and n["basis"] == "documents" for n in cap["nodes"])

        # Bad weights change nothing.
        for bad in (0, -1, "2", True):
            r = h.post("/_miroir/nodes", json={"id": "nx", "url": spare[0].url, "weight": bad})
            assert r.status_code == 400 and r.json()["code"] in ("miroir_invalid_node", "bad_request"), r.text
        assert "nx" not in {n["id"] for n in h.get("/_miroir/topology").json()["nodes"]}

        # --- n4 joins: it gets its quota (4 shards) and nothing else moves -----------------
        r = h.post("/_miroir/nodes", json={"id": "n4", "url": spare[0].url, "group": "g0"})
        assert r.status_code == 202, r.text
        status = settled(h)
        urls["n4"] = spare[0].url
        four = [owners_after(s, c.node_ids, [*c.node_ids, "n4"], 1, SHARDS) for s in range(SHARDS)]
        topo = h.get("/_miroir/topology").json()
        assert topo["indexes"][INDEX]["owners"]["g0"] == four
        counts = check_nodes(urls, shards_of(four), ids)
        copied = status["last"]["documentsCopied"]
        minimum = N_DOCS / 4
        print(f"\n3->4 nodes: copied {copied} documents, minimum {minimum:.0f} ({copied / minimum:.2f}x); per node {counts}")
        assert copied == counts["n4"]
        assert copied <= 1.25 * minimum
        mean = N_DOCS / 4
        assert max(counts.values()) / mean <= 1.10, counts
        cap = topo["capacity"]
        assert cap["usableCapacity"] >= 0.9 and not cap["warnings"], cap

        # --- n5 joins with weight 2 (CLI): a third of the shards -------------------------------
        env = {**os.environ, "MIROIR_URL": c.url, "MIROIR_ADMIN_KEY": ADMIN_KEY}
        run = subprocess.run(
            [sys.executable, "-m", "miroir", "nodes", "add", "n5", spare[1].url, "--weight", "2"],
            capture_output=True, text=True, timeout=WAIT_S, env=env, check=False,
        )
        assert run.returncode == 0, run.stderr
        settled(h)
        urls["n5"] = spare[1].url
        weights = {"n1": 1.0, "n2": 1.0, "n3": 1.0, "n4": 1.0, "n5": 2.0}
        five = rebalance_table(four, weights, 1)
        topo = h.get("/_miroir/topology").json()
        assert topo["indexes"][INDEX]["owners"]["g0"] == five
        counts = check_nodes(urls, shards_of(five), ids)
        assert len(shards_of(five)["n5"]) == 5  # 16 x 2/6 = 5.33
        assert abs(counts["n5"] / N_DOCS - 1 / 3) <= 0.1 / 3, counts
        by_node = {n["id"]: n for n in topo["capacity"]["nodes"]}
        assert "n5" in by_node, (topo["capacity"], topo["groups"], topo["nodes"])
        assert by_node["n5"]["weight"] == 2.0 and by_node["n5"]["target"] == round(2 / 6, 4)
        assert by_node["n5"]["documents"] == counts["n5"]

        run = subprocess.run(
            [sys.executable, "-m", "miroir", "status"], capture_output=True, text=True, timeout=WAIT_S, env=env, check=False
        )
        assert run.returncode == 0, run.stderr
        assert "usable capacity:" in run.stdout and "weight 2" in run.stdout, run.stdout
        print(run.stdout)
