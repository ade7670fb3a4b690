"""Issue 20, point 1: no acknowledged write is lost when Miroir is killed (kill -9) in the
middle of a rebalance.

3 -> 4 nodes (one group), RF = 1 and RF = 2, a writer streaming adds, updates and
deletes through Miroir the whole time, the copy throttled and let run a moment at a time
(paused in between) so that two kill -9 of Miroir land in the middle of it, pages in
flight (each restart resumes the plan). Once the plan is done, every
acknowledged write is checked on every owner node of its shard directly (the node's own
`documents/fetch`): an id whose last acknowledged write is an upsert must be there with
that version (else *lost* or *stale*), an id whose last acknowledged write is a delete
must be absent (else *resurrected*). A write whose outcome the client cannot know (no
answer: Miroir died under it; a 503 that does not say nothing was written) makes its id
uncertain from then on: it is not written again, and each owner must hold one of its two
possible states (owners that disagree are reported: see `verify_writes`). A write never sent (no connection while Miroir restarts) or
refused for certain must not take effect. No node holds a copy of a shard it does not
own, nor an add that was not acknowledged.

The other side of the rule: a move target that really loses its data mid-move (RF = 2)
is found lost, refilled with what it owns, completed by the mover, and loses nothing.

Loopback only, every wait bounded, every process stopped. Prints the figures of each run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from miroir.core.routing import shard_for_key
from tests.support.chaos_helpers import (
    WRITE_KINDS,
    MiroirProcess,
    StreamWriter,
    owners_after,
    settle_urls,
    verify_writes,
    versioned_doc,
    wait_until,
)
from tests.support.devnodes import start_devnodes, wait_task

pytestmark = pytest.mark.timeout(120)

SHARDS = 16
N_BASE = 1_500
WAIT_S = 60.0
SEEDS = range(5)
# The copy is throttled so that it lasts a few seconds: kills land in the middle of it.
DOCS_PER_SECOND = 400
PAGE_SIZE = 25
# Fractions of the copy at which Miroir is killed.
KILL_AT = (0.25, 0.6)
WRITE_INTERVAL_S = 0.02
BAD = ("lost", "stale", "resurrected", "uncertain_bad", "misplaced", "phantom")
# Reported by verify_writes, not asserted: see its docstring.
REPORTED = ("uncertain_diverged",)


def _figures(f: dict) -> str:
    return " ".join(f"{k}={f[k]}" for k in ("checked", *BAD, *REPORTED))


def _config(path: Path, data_dir: Path, urls: list[str], rf: int, concurrent: int = 8) -> None:
    lines = [
        "[server]", 'bind = "127.0.0.1:0"',
        "[cluster]", f"shards = {SHARDS}", f"replication_factor = {rf}",
        "[store]", f'data_dir = "{data_dir}"',
        "[log]", 'level = "info"',
        "[health]", "interval_ms = 150", "timeout_ms = 1000", "unhealthy_threshold = 3", "recovery_threshold = 1",
        "[rebalancer]", f"docs_per_second = {DOCS_PER_SECOND}", f"page_size = {PAGE_SIZE}",
        f"max_concurrent_migrations = {concurrent}",  # 8: every unit at once, the drop delays overlap
    ]
    for i, url in enumerate(urls):
        lines += ["[[nodes]]", f'id = "n{i + 1}"', f'url = "{url}"', 'group = "g0"']
    path.write_text("\n".join(lines) + "\n")


def _status(url: str) -> dict:
    r = httpx.get(f"{url}/_miroir/rebalance", timeout=10)
    r.raise_for_status()
    return r.json()


def _set_paused(url: str, paused: bool) -> None:
    r = httpx.post(f"{url}/_miroir/rebalance/{'pause' if paused else 'resume'}", timeout=30)
    assert r.status_code == 202, r.text


def _step(url: str, until: Callable[[dict], bool]) -> None:
    """The rebalance paused: resume it for a moment at a time until its status meets
    `until`; it is paused again on return, pages that had started still in flight.
    Not a watch of the running copy (about a second here): on a loaded machine a watcher
    misses the window between two kills, and a restarted Miroir copies on before its
    first status is read; paused (the pause is journaled), it holds the copy."""
    deadline = time.monotonic() + WAIT_S
    while True:
        s = _status(url)
        assert s["plan"] is not None, f"the rebalance ended before the kill: {s}"
        if until(s):
            return
        assert time.monotonic() < deadline, f"the rebalance did not get there in {WAIT_S}s: {s['progress']}"
        _set_paused(url, False)
        _set_paused(url, True)


def _load(url: str, uid: str, docs: list[dict]) -> None:
    with httpx.Client(base_url=url, timeout=30) as h:
        r = h.post("/indexes", json={"uid": uid, "primaryKey": "id"})
        assert wait_task(url, r.json()["taskUid"], timeout=WAIT_S)["status"] == "succeeded"
        r = h.post(f"/indexes/{uid}/documents", json=docs)
        assert r.status_code == 202, r.text
        assert wait_task(url, r.json()["taskUid"], timeout=WAIT_S)["status"] == "succeeded"


def _wait_more_writes(writer: StreamWriter, n: int, what: str) -> None:
    """Until `n` more writes are acknowledged (a condition: a fixed pause on a loaded
    machine may see none)."""
    acked = sum(writer.counts[k] for k in WRITE_KINDS)
    wait_until(lambda: sum(writer.counts[k] for k in WRITE_KINDS) >= acked + n, timeout=WAIT_S, what=what)


def _verify(writer: StreamWriter, urls: list[str], rf: int) -> dict:
    """`verify_writes` on the four nodes, against the owners once n4 has joined."""
    members = ["n1", "n2", "n3", "n4"]
    nodes = dict(zip(members, urls, strict=True))
    return verify_writes(writer, nodes, lambda s: owners_after(s, members[:3], members, rf, SHARDS), SHARDS)


@pytest.fixture
def fleet():
    """Four fresh devnodes per run: each run has its own Miroir journal, and Miroir
    refuses to start on an empty journal beside nodes that hold data (issue 20 point 3)."""
    with start_devnodes(4) as devs:
        yield devs


@pytest.mark.parametrize("rf", [1, 2])
@pytest.mark.parametrize("seed", SEEDS)
def test_kill9_of_miroir_mid_rebalance_loses_nothing(tmp_path, fleet, rf, seed):
    t0 = time.monotonic()
    uid = f"items_rf{rf}_seed{seed}"
    urls = [d.url for d in fleet]
    phases: dict[str, float] = {}
    config = tmp_path / "miroir.toml"
    _config(config, tmp_path / "journal", urls[:3], rf)
    procs = [MiroirProcess(config)]
    current = {"url": procs[-1].wait_ready()}
    writer: StreamWriter | None = None
    try:
        base = {str(i): versioned_doc(str(i), 0) for i in range(N_BASE)}
        phases["miroir"] = time.monotonic() - t0
        _load(current["url"], uid, list(base.values()))
        phases["loaded"] = time.monotonic() - t0
        members = ["n1", "n2", "n3", "n4"]
        to_copy = sum(1 for i in base if "n4" in owners_after(shard_for_key(i, SHARDS), members[:3], members, rf, SHARDS))
        writer = StreamWriter(lambda: (current["url"], len(procs) - 1), uid, seed, base, N_BASE, WRITE_INTERVAL_S)
        writer.start()
        _wait_more_writes(writer, 5, "writes before the change")
        _set_paused(current["url"], True)  # the copy is let run in steps: see _step
        r = httpx.post(f"{current['url']}/_miroir/nodes", json={"id": "n4", "url": urls[3], "group": "g0"}, timeout=30)
        assert r.status_code == 202, r.text
        kills: list[int] = []
        for frac in KILL_AT:
            _step(current["url"], lambda s, frac=frac: s["progress"]["documentsCopied"] >= frac * to_copy)
            procs[-1].kill()
            phases[f"kill{len(kills) + 1}"] = time.monotonic() - t0
            procs.append(MiroirProcess(config))
            current["url"] = procs[-1].wait_ready()
            phases[f"ready{len(kills) + 1}"] = time.monotonic() - t0
            # What the journal held at the kill (the restarted Miroir is paused: no more).
            at = _status(current["url"])
            copied = at["progress"]["documentsCopied"] if at["plan"] is not None else to_copy
            assert copied < to_copy, f"the copy ended before the kill ({copied}/{to_copy})"
            kills.append(copied)
        _set_paused(current["url"], False)
        wait_until(
            lambda: (s := _status(current["url"]))["status"] == "idle" and not s["pendingChange"],
            timeout=WAIT_S, what="rebalance done",
        )
        phases["done"] = time.monotonic() - t0
        _wait_more_writes(writer, 5, "writes against the new layout")
        writer.stop.set()
        writer.join(60)  # beyond the client's timeout: a request in flight ends first
        assert not writer.is_alive(), "the writer did not stop: its model would change under the check"
        settle_urls(urls, WAIT_S)
        copy_lost = [e for p in procs for e in p.events("handoff.copy_lost")]
        figures = _verify(writer, urls, rf)
        print(
            f"\nrf={rf} seed={seed} kills_at_copied={kills}/{to_copy} writes={writer.counts} "
            f"uncertain_ids={len(writer.uncertain)} {_figures(figures)} copy_lost_logged={len(copy_lost)} "
            f"wall={time.monotonic() - t0:.1f}s phases={ {k: round(v, 1) for k, v in phases.items()} }"
        )
        for e in figures["examples"] + writer.other[:5]:
            print("  ", e)
        for e in copy_lost:
            print("   copy_lost:", e.get("node"), e.get("reason"))
        assert not any(figures[k] for k in BAD), figures
        # Only the write in flight at each kill can be of unknown outcome; no other answer
        # than 202, or a 503 saying nothing was written, is expected.
        assert len(writer.uncertain) <= len(kills) and not writer.other, (writer.why, writer.other[:5])
        # The joining node is never taken for a node that lost its disk (issue 20).
        assert not copy_lost, copy_lost
        # The writer really ran through the copy (the figures are printed above).
        assert sum(writer.counts[k] for k in WRITE_KINDS) >= 20, writer.counts
        topology = httpx.get(f"{current['url']}/_miroir/topology", timeout=10).json()
        nodes = {n["id"]: n["state"] for n in topology["nodes"]}
        assert nodes == dict.fromkeys(members, "active"), nodes
    finally:
        if writer is not None:
            writer.stop.set()
            writer.join(30)
        for p in procs:
            p.kill()


def test_move_target_holds_only_finished_copies():
    """The pure rule behind the start-up check: a target lacks the shards whose copy to
    it is not complete (any index), and holds the rest; other nodes hold everything."""
    from miroir.core.model import MigrationPlan, MigrationUnit
    from miroir.core.moves import copy_in_progress, settled_shards

    def unit(shard: int, status: str = "copying", cursors: dict | None = None) -> MigrationUnit:
        return MigrationUnit(
            shards=16, shard=shard, group="g0", targets=["n4"], sources=["n1"], status=status, cursors=cursors or {}
        )

    plan = MigrationPlan(
        id=1, old_groups={"g0": ["n1", "n2", "n3"]}, new_groups={"g0": ["n1", "n2", "n3", "n4"]},
        units={
            "16:0:g0": unit(0, "pending"),
            "16:2:g0": unit(2, cursors={"a": {"n4": 300}, "b": {"n4": -1}}),
            "16:9:g0": unit(9, cursors={"a": {"n4": -1}}),
            "16:11:g0": unit(11, "switched", cursors={"a": {"n4": -1}}),
        },
    )
    assert copy_in_progress(plan, 16, 0, "a", "n4")  # not started
    assert copy_in_progress(plan, 16, 2, "a", "n4") and not copy_in_progress(plan, 16, 2, "b", "n4")
    assert not copy_in_progress(plan, 16, 9, "a", "n4")  # copied and reconciled
    assert not copy_in_progress(plan, 16, 11, "a", "n4")  # switched: n4 owns it
    assert not copy_in_progress(plan, 8, 2, "a", "n4")  # another S
    assert not copy_in_progress(plan, 16, 2, "a", "n1")  # not a target
    assert not copy_in_progress(None, 16, 2, "a", "n4")
    assert settled_shards([0, 2, 5, 9, 11], plan, 16, "a", "n4") == [5, 9, 11]
    assert settled_shards([0, 2, 5, 9, 11], plan, 16, "b", "n4") == [2, 5, 11]  # b of 9: not copied yet


def test_target_losing_its_data_mid_rebalance_is_refilled_without_loss(tmp_path, fleet):
    """The other side of the start-up rule: a move target that really loses its data in
    the middle of the move (its process killed, restarted empty) is refilled -- only the
    shards it owns or has finished receiving; the mover completes the others and switches
    none while the refill runs -- and no acknowledged write is lost. RF = 2: with RF = 1
    a switched shard's only copy would be the one lost."""
    rf, uid = 2, "items_target_lost"
    urls = [d.url for d in fleet]
    config = tmp_path / "miroir.toml"
    _config(config, tmp_path / "journal", urls[:3], rf, concurrent=2)  # units two by two
    miroir = MiroirProcess(config)
    url = miroir.wait_ready()
    writer: StreamWriter | None = None
    try:
        base = {str(i): versioned_doc(str(i), 0) for i in range(N_BASE)}
        _load(url, uid, list(base.values()))
        writer = StreamWriter(lambda: (url, 0), uid, 99, base, N_BASE, WRITE_INTERVAL_S)
        writer.start()
        _set_paused(url, True)  # the move is let run in steps: see _step
        r = httpx.post(f"{url}/_miroir/nodes", json={"id": "n4", "url": urls[3], "group": "g0"}, timeout=30)
        assert r.status_code == 202, r.text

        def mid_move(s: dict) -> bool:
            p = s["progress"]
            # Some units switched (n4 owns their shards), others still being copied.
            return p["switched"] + p["done"] >= 1 and p["pending"] + p["copying"] >= 2

        _step(url, mid_move)
        _set_paused(url, False)  # the mover runs on while n4 is lost
        n4 = fleet[3]
        n4.kill()
        wait_until(
            lambda: httpx.get(f"{url}/_miroir/topology", timeout=10).json()["nodes"][3]["health"]["state"] == "down",
            timeout=WAIT_S, what="n4 down",
        )
        n4.start()  # no data dir: it comes back empty
        n4.wait_ready()
        wait_until(
            lambda: (s := _status(url))["status"] == "idle" and not s["pendingChange"],
            timeout=WAIT_S, what="rebalance done",
        )
        wait_until(
            lambda: httpx.get(f"{url}/_miroir/topology", timeout=10).json()["nodes"][3]["repair"]["state"] == "ok",
            timeout=WAIT_S, what="n4 repaired",
        )
        _wait_more_writes(writer, 5, "writes against the new layout")
        writer.stop.set()
        writer.join(60)  # beyond the client's timeout: a request in flight ends first
        assert not writer.is_alive(), "the writer did not stop: its model would change under the check"
        settle_urls(urls, WAIT_S)
        figures = _verify(writer, urls, rf)
        lost_events = miroir.events("handoff.copy_lost")
        print(
            f"\ntarget lost mid-move: writes={writer.counts} {_figures(figures)} "
            f"copy_lost={[e.get('reason') for e in lost_events]} refills={len(miroir.events('refill.done'))}"
        )
        for e in figures["examples"] + writer.other[:5]:
            print("  ", e)
        assert not any(figures[k] for k in BAD), figures
        # Miroir is never killed here: every write is answered.
        assert not writer.uncertain and not writer.other, (writer.why, writer.other[:5])
        assert lost_events and miroir.events("refill.done"), "n4 was not found lost and refilled"
    finally:
        if writer is not None:
            writer.stop.set()
            writer.join(30)
        miroir.kill()
