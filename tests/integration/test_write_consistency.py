"""Write consistency (`cluster.write_consistency`, design §4.5): a write takes effect or
is refused, never both (issue 20 point 4, issue 15 item 1).

- The rule itself (`one`, `majority`, `all`) in the pure core (core/batches.py).
- RF = 2 in one group of 3 devnodes, one node SIGKILLed: every kind of write is
  acknowledged (202, `X-Miroir-Degraded`), its task succeeds; the node comes back and
  converges from its backlog (every document on exactly its owners).
- A refused write (every owner of a shard down with RF = 1; `all` with an owner down)
  is applied nowhere: not searchable, on no node, not replayed once the node is back;
  a refused delete deletes nothing. A write some node took before a dead owner was
  known down is acknowledged and handed off instead of refused.
- The one uncertain outcome (the only owner got the request and hung) is not
  answered "nothing was written".

Real devnode processes on loopback; every wait bounded; each test prints its figures.
"""

from __future__ import annotations

import os
import signal
import time

import httpx
import pytest

from miroir.core import batches, routing
from tests.support.chaos_helpers import (
    assignment,
    check_copies,
    create_index,
    durable_cluster,
    node_docs,
    node_repaired,
    topology_nodes,
    wait_until,
)
from tests.support.devnodes import wait_task

pytestmark = pytest.mark.timeout(120)

S = 8


# --- the rule, pure -------------------------------------------------------------------------


def test_one_needs_any_owner_in_any_group():
    owners = {"g0": ["a", "b"], "g1": ["c", "d"]}
    assert batches.shard_meets("one", owners, {"d"}, 2)
    assert batches.shard_meets("one", owners, {"a", "b", "c", "d"}, 2)
    assert not batches.shard_meets("one", owners, set(), 2)
    assert not batches.shard_meets("one", owners, {"x"}, 2)
    assert not batches.shard_meets("one", {"g0": []}, {"a"}, 1)


def test_majority_needs_a_strict_majority_in_one_group():
    # RF 2: both copies of one group; one copy in each of two groups is not enough.
    owners = {"g0": ["a", "b"], "g1": ["c", "d"]}
    assert batches.shard_meets("majority", owners, {"c", "d"}, 2)
    assert not batches.shard_meets("majority", owners, {"a", "c"}, 2)
    # RF 3: 2 of 3 in a group.
    owners3 = {"g0": ["a", "b", "c"]}
    assert batches.shard_meets("majority", owners3, {"a", "c"}, 3)
    assert not batches.shard_meets("majority", owners3, {"b"}, 3)
    # RF 1: the owner.
    assert batches.shard_meets("majority", {"g0": ["a"], "g1": ["b"]}, {"b"}, 1)


def test_all_needs_every_owner_of_every_group():
    owners = {"g0": ["a", "b"], "g1": ["c", "d"]}
    assert batches.shard_meets("all", owners, {"a", "b", "c", "d", "x"}, 2)
    assert not batches.shard_meets("all", owners, {"a", "b", "c"}, 2)
    assert not batches.shard_meets("all", {}, {"a"}, 2)


def test_unmet_and_missed_owners_per_shard():
    targets = {0: {"g0": ["a", "b"]}, 1: {"g0": ["b", "c"]}, 2: {"g0": ["c", "a"]}}
    took = {"a", "b"}  # c is down
    assert batches.unmet([2, 0, 1], targets, took, 2, "one") == []
    assert batches.unmet([2, 0, 1], targets, took, 2, "majority") == [1, 2]
    assert batches.unmet([2, 0, 1], targets, took, 2, "all") == [1, 2]
    assert batches.unmet([0, 1, 2], targets, set(), 2, "one") == [0, 1, 2]
    assert batches.missed_owners([0, 1, 2], targets, took) == {"g0": [1, 2]}
    assert batches.missed_owners([0], targets, took) == {}
    assert batches.degraded_header({"g0": [1, 2]}) == "groups=g0; shards=g0:1,2"
    # The task fold's judgement of lost node tasks is unchanged: a majority by default.
    verdict = batches.assess([0, 1], targets, frozenset(took), 2)
    assert (verdict.ok, verdict.lost, verdict.degraded) == (False, [1], {"g0": [1]})


def test_refusal_messages():
    err = batches.no_quorum([3, 5], "all")
    assert (err.code, err.status) == ("miroir_no_quorum", 503)
    assert "`all`" in err.message and "3, 5" in err.message and "Nothing was written" in err.message
    err = batches.no_owner_took(list(range(30)))
    assert err.status == 503 and err.message.count(",") == 19 and "..." in err.message
    assert "Nothing was written" in err.message


# --- with real nodes ------------------------------------------------------------------------


def accepted(r: httpx.Response, url: str) -> dict:
    assert r.status_code == 202, r.text
    task = wait_task(url, r.json()["taskUid"], timeout=30)
    assert task["status"] == "succeeded", task
    return task


def refused(r: httpx.Response) -> None:
    assert r.status_code == 503, r.text
    assert r.json()["code"] == "miroir_no_quorum", r.text
    assert "X-Miroir-Degraded" not in r.headers


def search_ids(http: httpx.Client) -> set[str]:
    r = http.post("/indexes/books/search", json={"q": "", "limit": 1000, "attributesToRetrieve": ["id"]})
    assert r.status_code == 200, r.text
    return {str(h["id"]) for h in r.json()["hits"]}


def ids_on(shards: set[int], start: int, n: int, inside: bool = True) -> list[int]:
    """`n` integer ids from `start` on whose shard is (or is not) in `shards`."""
    out: list[int] = []
    i = start
    while len(out) < n:
        if (routing.shard_for_key(str(i), S) in shards) == inside:
            out.append(i)
        i += 1
    return out


def test_rf2_one_node_killed_every_write_accepted_and_node_converges(tmp_path):
    with durable_cluster(3, rf=2, shards=S, tmp=tmp_path) as c:
        http = httpx.Client(base_url=c.url, timeout=30)
        create_index(c.url, "books")
        accepted(http.patch("/indexes/books/settings", json={"filterableAttributes": ["color"]}), c.url)
        model: dict[str, dict] = {}
        base = [{"id": i, "color": ["red", "blue"][i % 2], "n": i} for i in range(60)]
        accepted(http.post("/indexes/books/documents", json=base), c.url)
        model.update({str(d["id"]): d for d in base})
        held = assignment(c, S)["n1"]
        one_id = next(i for i in range(6, 60) if routing.shard_for_key(str(i), S) in held)

        c.node("n1").kill()
        t0 = time.monotonic()
        # The first write finds n1 dead in flight (not yet known down); the later ones
        # are hinted for it from the start. Every kind of write, each touching n1's shards.
        ops: list[tuple[str, str, object]] = []
        for k in range(6):
            ops.append(("POST", "/indexes/books/documents", [{"id": 100 + 10 * k + j, "color": "green", "n": k} for j in range(10)]))
        ops.append(("PUT", "/indexes/books/documents", [{"id": i, "extra": "x"} for i in range(0, 60, 4)]))
        ops.append(("POST", "/indexes/books/documents/delete-batch", [1, 2, 3, 100, 101]))
        ops.append(("POST", "/indexes/books/documents/delete", {"filter": "color = red"}))
        ops.append(("DELETE", f"/indexes/books/documents/{one_id}", None))
        degraded = 0
        for method, path, body in ops:
            r = http.request(method, path, json=body)
            accepted(r, c.url)
            assert r.headers["X-Miroir-Degraded"].startswith("groups=g0; shards=g0:"), (path, r.headers)
            degraded += 1
            if path.endswith("/documents") and method == "POST":
                model.update({str(d["id"]): d for d in body})
            elif method == "PUT":
                for d in body:
                    model[str(d["id"])] = {**model[str(d["id"])], **d}
            elif path.endswith("delete-batch"):
                for i in body:
                    model.pop(str(i), None)
            elif path.endswith("/delete"):
                model = {i: d for i, d in model.items() if d.get("color") != "red"}
            else:
                model.pop(str(one_id), None)
        writes_s = time.monotonic() - t0
        assert search_ids(http) == set(model)
        backlog = topology_nodes(c.url)["n1"]["repair"]["backlogOps"]
        assert backlog == len(ops)

        t1 = time.monotonic()
        c.node("n1").restart()
        wait_until(lambda: node_repaired(c.url, "n1"), what="n1 repaired")
        repair_s = time.monotonic() - t1
        counts = check_copies(c, "books", model, S)
        assert sum(counts.values()) == 2 * len(model)
        assert search_ids(http) == set(model)
        print(
            f"\nRF=2, n1 killed: writes_acked={len(ops)}/{len(ops)} degraded={degraded} backlog_ops={backlog} "
            f"writes_s={writes_s:.2f} repair_s={repair_s:.2f} docs={len(model)} per_node={counts}"
        )


def test_rf1_refused_write_is_applied_nowhere_and_taken_write_is_handed_off(tmp_path):
    # Probes as in production (a node is known down after ~3 s), so that a write right
    # after a kill finds the node dead in flight.
    slow = {"health": {"interval_ms": 1000, "timeout_ms": 1000, "unhealthy_threshold": 3, "recovery_threshold": 1}}
    with durable_cluster(3, rf=1, shards=S, tmp=tmp_path, extra=slow) as c:
        http = httpx.Client(base_url=c.url, timeout=30)
        create_index(c.url, "books")
        held = assignment(c, S)["n1"]
        base = [{"id": i, "title": f"book {i}"} for i in range(40)]
        accepted(http.post("/indexes/books/documents", json=base), c.url)
        model = {str(d["id"]): d for d in base}

        c.node("n1").kill()
        # Sent to n1 only, which is dead: no owner took it, refused, nothing journaled.
        lone = [{"id": i, "title": "lone"} for i in ids_on(held, 1000, 3)]
        r = http.post("/indexes/books/documents", json=lone)
        refused(r)
        assert "no owner of shard(s)" in r.json()["message"] and "Nothing was written" in r.json()["message"]
        assert topology_nodes(c.url)["n1"]["health"]["state"] == "down"
        # Now known down: a batch that needs n1 is refused as a whole before any node
        # sees it, its other shards included; deletes likewise delete nothing.
        before = {n: set(node_docs_of(c, n)) for n in ("n2", "n3")}
        refused_docs = [{"id": i, "title": "refused"} for i in ids_on(held, 2000, 3) + ids_on(held, 2000, 5, inside=False)]
        t0 = time.monotonic()
        refused(http.post("/indexes/books/documents", json=refused_docs))
        assert set(node_docs_of(c, "n2")) | set(node_docs_of(c, "n3")) == before["n2"] | before["n3"]
        refused(http.put("/indexes/books/documents", json=[{"id": i, "title": "refused"} for i in range(40)]))
        refused(http.post("/indexes/books/documents/delete-batch", json=list(range(40))))
        refused(http.delete("/indexes/books/documents"))
        refused(http.post("/indexes/new-index/documents", json=[{"id": i} for i in range(20)]))
        refuse_s = time.monotonic() - t0
        assert http.get("/indexes/new-index").status_code == 404
        assert topology_nodes(c.url)["n1"]["repair"]["backlogOps"] == 0
        for n in ("n2", "n3"):
            assert set(node_docs_of(c, n)) == before[n], n
        gone = {str(d["id"]) for d in lone + refused_docs}
        assert not search_ids(http) & gone
        # A write for the live nodes' shards only is accepted, not degraded.
        alive = [{"id": i, "title": "alive"} for i in ids_on(held, 3000, 5, inside=False)]
        r = http.post("/indexes/books/documents", json=alive)
        accepted(r, c.url)
        assert "X-Miroir-Degraded" not in r.headers
        model.update({str(d["id"]): d for d in alive})

        # Back: nothing refused is replayed; the refused deletes deleted nothing.
        c.node("n1").restart()
        wait_until(lambda: node_repaired(c.url, "n1"), what="n1 repaired")
        check_copies(c, "books", model, S)
        assert search_ids(http) == set(model)

        # Killed again, written at once: n2 and n3 take their parts before n1 is known
        # down, so the write takes effect: acknowledged, and n1's part (a shard none of
        # whose owners took it) handed off, not refused.
        c.node("n1").kill()
        taken = [{"id": i, "title": "taken"} for i in ids_on(held, 4000, 4) + ids_on(held, 4000, 4, inside=False)]
        r = http.post("/indexes/books/documents", json=taken)
        accepted(r, c.url)
        assert r.headers["X-Miroir-Degraded"].startswith("groups=g0;"), r.headers
        model.update({str(d["id"]): d for d in taken})
        assert topology_nodes(c.url)["n1"]["repair"]["backlogOps"] == 1
        c.node("n1").restart()
        wait_until(lambda: node_repaired(c.url, "n1"), what="n1 repaired again")
        counts = check_copies(c, "books", model, S)
        assert search_ids(http) == set(model)
        print(
            f"\nRF=1, n1 killed: 6 writes refused ({refuse_s * 1000:.0f} ms for 5 of them), applied nowhere, "
            f"none replayed; in-flight write acked + handed off (8 docs, 4 on n1's shards); per_node={counts}"
        )


def test_hung_owner_write_is_made_certain(tmp_path):
    """The only owner got the request and hung (SIGSTOP): it may apply it once continued.
    Refusing would leave the outcome unknown, so the write is hinted to it and
    acknowledged (degraded); once the node is back it holds the write."""
    with durable_cluster(2, rf=1, shards=S, tmp=tmp_path, durable=False) as c:
        http = httpx.Client(base_url=c.url, timeout=30)
        create_index(c.url, "books")
        held = assignment(c, S)["n1"]
        n1 = c.node("n1")
        docs = [{"id": i, "v": 1} for i in ids_on(held, 0, 3)]
        os.kill(n1.proc.pid, signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            r = http.post("/indexes/books/documents", json=docs)
            hung_s = time.monotonic() - t0
        finally:
            os.kill(n1.proc.pid, signal.SIGCONT)
        accepted(r, c.url)
        assert "X-Miroir-Degraded" in r.headers, r.headers
        wait_until(lambda: node_repaired(c.url, "n1"), what="n1 repaired")
        on_n1 = node_docs_of(c, "n1")
        assert all(on_n1.get(str(d["id"]), {}).get("v") == 1 for d in docs), on_n1
        print(f"\nhung owner: acknowledged after {hung_s:.2f}s, hinted, applied once n1 resumed")


def test_all_refuses_with_an_owner_down_and_applies_nothing(tmp_path):
    with durable_cluster(3, rf=2, shards=S, tmp=tmp_path, extra={"cluster": {"write_consistency": "all"}}) as c:
        http = httpx.Client(base_url=c.url, timeout=30)
        create_index(c.url, "books")
        accepted(http.patch("/indexes/books/settings", json={"filterableAttributes": ["color"]}), c.url)
        held = assignment(c, S)["n1"]
        base = [{"id": i, "color": "red", "n": i} for i in range(40)]
        r = http.post("/indexes/books/documents", json=base)
        accepted(r, c.url)
        assert "X-Miroir-Degraded" not in r.headers
        model = {str(d["id"]): d for d in base}

        c.node("n1").kill()
        wait_until(lambda: topology_nodes(c.url)["n1"]["health"]["state"] == "down", what="n1 known down")
        on_n1 = [i for i in range(40) if routing.shard_for_key(str(i), S) in held]
        refused(http.post("/indexes/books/documents", json=[{"id": i, "color": "blue"} for i in ids_on(held, 500, 6)]))
        refused(http.post("/indexes/books/documents/delete-batch", json=on_n1))
        refused(http.delete(f"/indexes/books/documents/{on_n1[0]}"))
        refused(http.post("/indexes/books/documents/delete", json={"filter": "color = red"}))
        refused(http.delete("/indexes/books/documents"))
        # Shards n1 does not own still have every owner: accepted in full, not degraded.
        others = [{"id": i, "color": "blue"} for i in ids_on(held, 500, 6, inside=False)]
        r = http.post("/indexes/books/documents", json=others)
        accepted(r, c.url)
        assert "X-Miroir-Degraded" not in r.headers
        model.update({str(d["id"]): d for d in others})
        assert topology_nodes(c.url)["n1"]["repair"]["backlogOps"] == 0
        assert search_ids(http) == set(model)

        c.node("n1").restart()
        wait_until(lambda: node_repaired(c.url, "n1"), what="n1 repaired")
        counts = check_copies(c, "books", model, S)
        assert search_ids(http) == set(model)
        print(f"\nwrite_consistency=all, n1 down: 5 writes refused, applied nowhere; per_node={counts}")


def node_docs_of(c, node_id: str) -> dict[str, dict]:
    return node_docs(c.node(node_id).url, "books")
