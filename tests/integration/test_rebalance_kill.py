"""Issue 20, point 1: no acknowledged write is lost when Miroir is killed (kill -9) in the
middle of a rebalance.

3 -> 4 nodes (one group), RF = 1 and RF = 2, a writer streaming adds, updates and
deletes through Miroir the whole time, the copy throttled so that two kill -9 of Miroir
land in the middle of it (each restart resumes the plan). Once the plan is done, every
acknowledged write is checked on every owner node of its shard directly (the node's own
`documents/fetch`): an id whose last acknowledged write is an upsert must be there with
that version (else *lost* or *stale*), an id whose last acknowledged write is a delete
must be absent (else *resurrected*). A write whose outcome the client cannot know (no
answer: Miroir died under it; 503) makes its id unknown from then on: it is not checked
and not written again.

The other side of the rule: a move target that really loses its data mid-move (RF = 2)
is found lost, refilled with what it owns, completed by the mover, and loses nothing.

Loopback only, every wait bounded, every process stopped. Prints the figures of each run.
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import httpx
import pytest

from miroir.core.routing import shard_for_key
from tests.support.chaos_helpers import MiroirProcess, node_docs, owners_after, wait_until
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


class Writer(threading.Thread):
    """Adds, updates and deletes single documents through Miroir, one at a time, until
    stopped. `model` holds, per id, the document of its last acknowledged write (None:
    deleted); ids with a write of unknown outcome are in `unknown` and left alone."""

    def __init__(self, url_of, uid: str, seed: int, base: dict[str, dict]):
        super().__init__(daemon=True)
        self.url_of = url_of
        self.uid = uid
        self.rng = random.Random(seed)
        self.model: dict[str, dict | None] = dict(base)
        self.unknown: set[str] = set()
        self.next_id = 1_000_000
        self.stop = threading.Event()
        self.counts = {"add": 0, "update": 0, "delete": 0, "unknown": 0}

    def _pick(self) -> str | None:
        for _ in range(20):
            i = str(self.rng.randrange(N_BASE))
            if i not in self.unknown:
                return i
        return None

    def run(self) -> None:
        with httpx.Client(timeout=30) as http:
            while not self.stop.is_set():
                roll = self.rng.random()
                if roll < 0.3:
                    i, kind = str(self.next_id), "add"
                    self.next_id += 1
                else:
                    i = self._pick()
                    if i is None:
                        continue
                    kind = "delete" if roll < 0.55 and self.model.get(i) is not None else "update"
                prev = self.model.get(i)
                version = (prev["v"] + 1) if prev else 1
                doc = {"id": int(i), "v": version, "title": f"item {i} v{version}"}
                try:
                    if kind == "delete":
                        r = http.delete(f"{self.url_of()}/indexes/{self.uid}/documents/{i}")
                    else:
                        r = http.post(f"{self.url_of()}/indexes/{self.uid}/documents", json=[doc])
                except httpx.TransportError:
                    r = None
                if r is not None and r.status_code == 202:
                    self.model[i] = None if kind == "delete" else doc
                    self.counts[kind] += 1
                else:
                    self.unknown.add(i)
                    self.counts["unknown"] += 1
                    time.sleep(0.05)  # Miroir is restarting
                time.sleep(WRITE_INTERVAL_S)


def _status(url: str) -> dict:
    r = httpx.get(f"{url}/_miroir/rebalance", timeout=10)
    r.raise_for_status()
    return r.json()


def _load(url: str, uid: str, docs: list[dict]) -> None:
    with httpx.Client(base_url=url, timeout=30) as h:
        r = h.post("/indexes", json={"uid": uid, "primaryKey": "id"})
        assert wait_task(url, r.json()["taskUid"], timeout=WAIT_S)["status"] == "succeeded"
        r = h.post(f"/indexes/{uid}/documents", json=docs)
        assert r.status_code == 202, r.text
        assert wait_task(url, r.json()["taskUid"], timeout=WAIT_S)["status"] == "succeeded"


def _settle(urls: list[str]) -> None:
    for url in urls:
        wait_until(
            lambda url=url: not httpx.get(
                f"{url}/tasks", params={"statuses": "enqueued,processing"}, timeout=5
            ).json()["results"],
            timeout=WAIT_S, what=f"{url} idle",
        )


def _verify(
    uid: str, model: dict[str, dict | None], unknown: set[str], node_urls: dict[str, str], rf: int
) -> dict[str, int]:
    """lost / stale / resurrected acknowledged writes, on every owner of their shard."""
    members = sorted(node_urls)
    held = {n: node_docs(u, uid) for n, u in node_urls.items()}
    out = {"lost": 0, "stale": 0, "resurrected": 0, "checked": 0, "misplaced": 0}
    examples: list[str] = []
    for i, doc in model.items():
        if i in unknown:
            continue
        for node in owners_after(shard_for_key(i, SHARDS), members[:3], members, rf, SHARDS):
            got = held[node].get(i)
            out["checked"] += 1
            if doc is None:
                bad = "resurrected" if got is not None else None
            elif got is None:
                bad = "lost"
            else:
                bad = "stale" if got.get("v") != doc["v"] else None
            if bad:
                out[bad] += 1
                if len(examples) < 5:
                    examples.append(f"{bad} id={i} on {node}: want {doc} got {got}")
    # Old owners' copies were dropped: no node keeps documents of a shard it does not own.
    out["misplaced"] = sum(
        1 for n, docs in held.items() for i in docs if n not in owners_after(shard_for_key(i, SHARDS), members[:3], members, rf, SHARDS)
    )
    out["examples"] = examples  # type: ignore[assignment]
    return out


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
    writer: Writer | None = None
    try:
        base = {str(i): {"id": i, "v": 0, "title": f"item {i} v0"} for i in range(N_BASE)}
        phases["miroir"] = time.monotonic() - t0
        _load(current["url"], uid, list(base.values()))
        phases["loaded"] = time.monotonic() - t0
        members = ["n1", "n2", "n3", "n4"]
        to_copy = sum(1 for i in base if "n4" in owners_after(shard_for_key(i, SHARDS), members[:3], members, rf, SHARDS))
        writer = Writer(lambda: current["url"], uid, seed, base)
        writer.start()
        time.sleep(0.3)
        r = httpx.post(f"{current['url']}/_miroir/nodes", json={"id": "n4", "url": urls[3], "group": "g0"}, timeout=30)
        assert r.status_code == 202, r.text
        kills: list[int] = []
        for frac in KILL_AT:
            at = wait_until(
                lambda frac=frac: (s := _status(current["url"]))["status"] == "running"
                and s["progress"]["documentsCopied"] >= frac * to_copy
                and s,
                timeout=WAIT_S, what=f"copy at {frac:.0%}",
            )
            copied = at["progress"]["documentsCopied"]
            assert copied < to_copy, f"the copy ended before the kill ({copied}/{to_copy}): slow it down"
            procs[-1].kill()
            kills.append(copied)
            phases[f"kill{len(kills)}"] = time.monotonic() - t0
            procs.append(MiroirProcess(config))
            current["url"] = procs[-1].wait_ready()
            phases[f"ready{len(kills)}"] = time.monotonic() - t0
        wait_until(
            lambda: (s := _status(current["url"]))["status"] == "idle" and not s["pendingChange"],
            timeout=WAIT_S, what="rebalance done",
        )
        phases["done"] = time.monotonic() - t0
        time.sleep(0.3)  # writes go on against the new layout
        writer.stop.set()
        writer.join(30)
        _settle(urls)
        copy_lost = [e for p in procs for e in p.events("handoff.copy_lost")]
        figures = _verify(uid, writer.model, writer.unknown, {f"n{k + 1}": u for k, u in enumerate(urls)}, rf)
        print(
            f"\nrf={rf} seed={seed} kills_at_copied={kills}/{to_copy} writes={writer.counts} "
            f"unknown_ids={len(writer.unknown)} checked={figures['checked']} lost={figures['lost']} "
            f"stale={figures['stale']} resurrected={figures['resurrected']} misplaced={figures['misplaced']} "
            f"copy_lost_logged={len(copy_lost)} "
            f"wall={time.monotonic() - t0:.1f}s phases={ {k: round(v, 1) for k, v in phases.items()} }"
        )
        for e in figures["examples"]:  # type: ignore[union-attr]
            print("  ", e)
        for e in copy_lost:
            print("   copy_lost:", e.get("node"), e.get("reason"))
        assert figures["lost"] == figures["stale"] == figures["resurrected"] == figures["misplaced"] == 0, figures
        # The joining node is never taken for a node that lost its disk (issue 20).
        assert not copy_lost, copy_lost
        # The writer really ran through the copy (the figures are printed above).
        assert sum(writer.counts[k] for k in ("add", "update", "delete")) >= 20, writer.counts
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
    writer: Writer | None = None
    try:
        base = {str(i): {"id": i, "v": 0, "title": f"item {i} v0"} for i in range(N_BASE)}
        _load(url, uid, list(base.values()))
        writer = Writer(lambda: url, uid, 99, base)
        writer.start()
        r = httpx.post(f"{url}/_miroir/nodes", json={"id": "n4", "url": urls[3], "group": "g0"}, timeout=30)
        assert r.status_code == 202, r.text

        def mid_move() -> bool:
            s = _status(url)
            p = s["progress"] or {}
            # Some units switched (n4 owns their shards), others still being copied.
            return s["status"] == "running" and p["switched"] + p["done"] >= 1 and p["pending"] + p["copying"] >= 2

        wait_until(mid_move, timeout=WAIT_S, what="a unit switched, others copying")
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
        time.sleep(0.3)
        writer.stop.set()
        writer.join(30)
        _settle(urls)
        figures = _verify(uid, writer.model, writer.unknown, {f"n{k + 1}": u for k, u in enumerate(urls)}, rf)
        lost_events = miroir.events("handoff.copy_lost")
        print(
            f"\ntarget lost mid-move: writes={writer.counts} checked={figures['checked']} lost={figures['lost']} "
            f"stale={figures['stale']} resurrected={figures['resurrected']} misplaced={figures['misplaced']} "
            f"copy_lost={[e.get('reason') for e in lost_events]} refills={len(miroir.events('refill.done'))}"
        )
        for e in figures["examples"]:  # type: ignore[union-attr]
            print("  ", e)
        assert figures["lost"] == figures["stale"] == figures["resurrected"] == figures["misplaced"] == 0, figures
        assert lost_events and miroir.events("refill.done"), "n4 was not found lost and refilled"
    finally:
        if writer is not None:
            writer.stop.set()
            writer.join(30)
        miroir.kill()
