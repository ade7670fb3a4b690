"""Hinted handoff and refill (engine/handoff.py, engine/refill.py) with real processes.

A node is SIGKILLed; writes of every kind keep being accepted by the other group; the
missed node requests wait in the node's backlog in the journal (visible in
/_miroir/topology, kept across a Miroir restart), are replayed in order when the node
comes back, and only then does the node serve reads. A backlog past its bound turns
into a refill. The end state is checked on the nodes themselves.
"""

from __future__ import annotations

import httpx
import pytest

from miroir.core import routing
from tests.support.chaos_helpers import (
    assignment,
    check_copies,
    create_index,
    durable_cluster,
    node_repaired,
    topology_nodes,
    wait_until,
)
from tests.support.devnodes import wait_task

pytestmark = pytest.mark.timeout(120)

S = 8


def ok(r: httpx.Response, url: str) -> httpx.Response:
    assert r.status_code == 202, r.text
    task = wait_task(url, r.json()["taskUid"], timeout=30)
    assert task["status"] == "succeeded", task
    return r


def targets_node(ids, held: set[int]) -> bool:
    return any(routing.shard_for_key(str(i), S) in held for i in ids)


def test_backlog_replayed_in_order_after_node_and_miroir_restart(tmp_path):
    with durable_cluster(4, groups=2, rf=1, shards=S, tmp=tmp_path) as c:
        http = httpx.Client(base_url=c.url, timeout=10)
        create_index(c.url, "books")
        create_index(c.url, "wipe")
        ok(http.patch("/indexes/books/settings", json={"filterableAttributes": ["color"]}), c.url)
        model: dict[str, dict] = {}

        def add(docs):
            for d in docs:
                model[str(d["id"])] = dict(d)

        first = [{"id": i, "color": ["red", "blue"][i % 2], "n": i} for i in range(40)]
        ok(http.post("/indexes/books/documents", json=first), c.url)
        add(first)
        ok(http.post("/indexes/wipe/documents", json=[{"id": i} for i in range(10)]), c.url)

        held = assignment(c, S)["n1"]  # n1 is in g0, with n3
        c.node("n1").kill()
        wait_until(lambda: topology_nodes(c.url)["n1"]["health"]["state"] == "down", what="n1 down")

        hinted = 0
        degraded = 0
        ops = []
        # 1. add/replace
        docs = [{"id": i, "color": "green", "n": i} for i in range(40, 80)]
        ops.append(("POST", "/indexes/books/documents", docs, [d["id"] for d in docs]))
        # 2. partial update
        upd = [{"id": i, "extra": "x"} for i in range(0, 80, 3)]
        ops.append(("PUT", "/indexes/books/documents", upd, [d["id"] for d in upd]))
        # 3. delete by ids
        ops.append(("POST", "/indexes/books/documents/delete-batch", [1, 2, 41, 42, 77], [1, 2, 41, 42, 77]))
        # 4. delete by filter (broadcast), then re-add red documents: order matters
        ops.append(("POST", "/indexes/books/documents/delete", {"filter": "color = red"}, None))
        reds = [{"id": i, "color": "red", "n": i} for i in range(100, 110)] + [{"id": 4, "color": "red", "n": -4}]
        ops.append(("POST", "/indexes/books/documents", reds, [d["id"] for d in reds]))
        # 5. delete one
        ops.append(("DELETE", "/indexes/books/documents/5", None, [5]))
        # 6. delete all (broadcast) on the other index, then add
        ops.append(("DELETE", "/indexes/wipe/documents", None, None))
        ops.append(("POST", "/indexes/wipe/documents", [{"id": "a"}, {"id": "b"}, {"id": "c"}], ["a", "b", "c"]))
        for method, path, body, ids in ops:
            r = ok(http.request(method, path, json=body), c.url)
            if ids is None or targets_node(ids, held):
                hinted += 1
                degraded += "X-Miroir-Degraded" in r.headers
                assert r.headers["X-Miroir-Degraded"].startswith("groups=g0;"), r.headers
        # the model, in the same order
        add(docs)
        for d in upd:
            model[str(d["id"])].update(d)
        for i in (1, 2, 41, 42, 77):
            model.pop(str(i), None)
        for i in [k for k, d in model.items() if d.get("color") == "red"]:
            del model[i]
        add(reds)
        model.pop("5", None)
        wipe = {i: {"id": i} for i in ("a", "b", "c")}

        n1 = topology_nodes(c.url)["n1"]
        assert n1["repair"]["state"] == "backlog" and not n1["readable"], n1
        assert n1["repair"]["backlogOps"] == hinted and n1["repair"]["backlogBytes"] > 0, n1
        others = topology_nodes(c.url)
        assert all(others[n]["repair"]["backlogOps"] == 0 for n in ("n2", "n3", "n4")), others

        # The backlog is in the journal: a Miroir restart keeps it.
        c.restart_miroir()
        http = httpx.Client(base_url=c.url, timeout=10)
        n1 = topology_nodes(c.url)["n1"]
        assert n1["repair"]["backlogOps"] == hinted, n1

        c.node("n1").restart()
        wait_until(lambda: node_repaired(c.url, "n1"), what="n1 replayed")
        n1 = topology_nodes(c.url)["n1"]
        assert n1["repair"]["replayedOps"] == hinted and n1["repair"]["backlogOps"] == 0, n1

        counts = check_copies(c, "books", model, S)
        wcounts = check_copies(c, "wipe", wipe, S)
        # Reads see everything, from both groups, complete.
        for _ in range(4):
            r = http.post("/indexes/books/search", json={"q": "", "limit": 0})
            assert r.status_code == 200 and "X-Miroir-Degraded" not in r.headers, r.headers
            assert r.json()["estimatedTotalHits"] == len(model)
        print(f"\nops={len(ops)} hinted={hinted} degraded_acks={degraded} docs={len(model)} per_node={counts} wipe={wcounts}")


def test_backlog_over_bound_becomes_refill(tmp_path):
    extra = {"health": {"max_backlog_bytes": 1500}}
    with durable_cluster(4, groups=2, rf=1, shards=S, tmp=tmp_path, extra=extra) as c:
        http = httpx.Client(base_url=c.url, timeout=10)
        create_index(c.url, "books")
        docs = [{"id": i, "title": f"book {i}"} for i in range(60)]
        ok(http.post("/indexes/books/documents", json=docs), c.url)
        model = {str(d["id"]): d for d in docs}

        c.node("n1").kill()
        wait_until(lambda: topology_nodes(c.url)["n1"]["health"]["state"] == "down", what="n1 down")
        # Deletions n1 misses must not be resurrected by the refill; updates not lost.
        ok(http.post("/indexes/books/documents/delete-batch", json=list(range(0, 60, 4))), c.url)
        for i in range(0, 60, 4):
            model.pop(str(i))
        for b in range(6):
            batch = [{"id": 1000 + b * 10 + j, "title": "x" * 40} for j in range(10)]
            ok(http.post("/indexes/books/documents", json=batch), c.url)
            model.update({str(d["id"]): d for d in batch})
        n1 = topology_nodes(c.url)["n1"]["repair"]
        assert n1["state"] == "refilling" and "max_backlog_bytes" in n1["refillReason"], n1
        assert n1["backlogOps"] == 0

        c.node("n1").restart()  # keeps its (stale) data
        wait_until(lambda: node_repaired(c.url, "n1"), what="n1 refilled")
        assert topology_nodes(c.url)["n1"]["repair"]["refills"] == 1
        counts = check_copies(c, "books", model, S)
        print(f"\ndocs={len(model)} per_node={counts}")


def test_node_emptied_while_miroir_was_down_is_refilled_at_start(tmp_path):
    with durable_cluster(3, rf=2, shards=S, tmp=tmp_path, durable=False) as c:
        create_index(c.url, "books")
        docs = [{"id": i, "title": f"book {i}"} for i in range(120)]
        ok(httpx.post(f"{c.url}/indexes/books/documents", json=docs, timeout=10), c.url)
        # n1 loses everything while Miroir is stopped: no down transition is ever seen.
        c.restart_miroir(between=c.node("n1").restart)
        wait_until(lambda: topology_nodes(c.url)["n1"]["repair"]["refills"] == 1, what="n1 refilled")
        wait_until(lambda: node_repaired(c.url, "n1"), what="n1 serving")
        counts = check_copies(c, "books", {str(d["id"]): d for d in docs}, S)
        print(f"\ndocs={len(docs)} per_node={counts}")


# --- the pure part (core/backlog.py) and the journal records ------------------------------


def test_delivery_rules():
    from miroir.core.backlog import delivery
    from miroir.core.model import Hint, NodeRepair, NodeRequest

    req = NodeRequest(index="a", method="DELETE", path="/indexes/a/documents")
    assert delivery(None, "a", available=True, held=False, copying=False) == "send"
    assert delivery(None, "a", available=False, held=False, copying=False) == "hint"
    assert delivery(None, "a", available=True, held=True, copying=False) == "hint"
    waiting = NodeRepair(hints=[Hint(seq=1, request=req)])
    # Behind a backlog: hinted even when up, so the node sees operations in order.
    assert delivery(waiting, "a", available=True, held=False, copying=False) == "hint"
    refill = NodeRepair(refill=True, refilled=["b"])
    assert delivery(refill, "a", available=True, held=True, copying=False) == "skip"
    assert delivery(refill, "a", available=True, held=True, copying=True) == "send"
    assert delivery(refill, "a", available=False, held=True, copying=True) == "skip"
    assert delivery(refill, "b", available=True, held=True, copying=False) == "send"
    assert delivery(refill, "b", available=False, held=False, copying=False) == "hint"


def test_lost_shards_counts_the_backlog():
    from miroir.core.backlog import lost_shards, pending_additions
    from miroir.core.model import Hint, NodeRequest

    assert lost_shards({0: 10, 1: 0, 2: 4}, {0: 10, 1: 5, 2: 10}) == [1, 2]
    assert lost_shards({}, {0: 0}) == []  # an empty shard is never lost
    docs = [{"id": i, "_miroir_shard": 2} for i in range(4)]
    hints = [
        Hint(seq=1, request=NodeRequest(index="a", method="POST", path="/indexes/a/documents", body=docs)),
        Hint(seq=2, request=NodeRequest(index="b", method="POST", path="/indexes/b/documents", body=docs)),
        Hint(seq=3, request=NodeRequest(index="a", method="POST", path="/indexes/a/documents/delete-batch", body=[1])),
    ]
    pending = pending_additions(hints, "a")
    assert pending == {2: 4}
    assert lost_shards({2: 4}, {2: 10}, pending) == []


def test_repair_records_fold():
    import msgspec

    from miroir.core.model import (
        HintsAdded,
        HintsReplayed,
        MiroirState,
        NodeRequest,
        Record,
        RefillDone,
        RefillIndexDone,
        RefillStarted,
        apply_record,
        new_state,
    )

    state = new_state()
    reqs = [NodeRequest(index="a", method="DELETE", path=f"/indexes/a/documents/{i}") for i in range(3)]
    records = [
        HintsAdded(node="n1", requests=reqs[:2], sizes=[10, 20]),
        HintsAdded(node="n1", requests=reqs[2:], sizes=[30]),
        HintsReplayed(node="n1", through=1),
    ]
    for rec in records:  # through the journal's codec, as a replay would
        apply_record(state, msgspec.msgpack.decode(msgspec.msgpack.encode(rec), type=Record))
    rep = state.repairs["n1"]
    assert [h.seq for h in rep.hints] == [2, 3] and rep.bytes == 50 and rep.replayed == 1
    apply_record(state, RefillStarted(node="n1", reason="lost"))
    assert rep.refill and not rep.hints and rep.bytes == 0
    apply_record(state, RefillIndexDone(node="n1", index="a"))
    assert rep.refilled == ["a"]
    apply_record(state, RefillDone(node="n1"))
    assert not rep.refill and rep.refills == 1 and rep.next_seq == 4
    again = msgspec.msgpack.decode(msgspec.msgpack.encode(state), type=MiroirState)
    assert again.repairs["n1"] == rep
    apply_record(state, HintsReplayed(node="zz", through=9))  # unknown node: no-op
