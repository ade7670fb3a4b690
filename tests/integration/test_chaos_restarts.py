"""Issue 15, first "Done when": restarts and node faults under a write stream lose nothing.

Two layouts, RG = 1 RF = 2 (3 nodes) and RG = 2 RF = 1 (2 + 2 nodes), each on fresh
durable devnodes with one Miroir data dir across its restarts. One writer streams adds,
updates and deletes of single documents through Miroir (one request at a time, so the
last acknowledged write of an id is the state it must end in) while a seeded schedule
`kill -9`s Miroir five times (restarting it at once on the same journal), SIGKILLs nodes
(restarted on the same data dir) and SIGSTOPs them (SIGCONT later). Node faults are one
node per group at a time, and a node is caught up (repair `ok`) before the next fault
of its group begins; one Miroir kill lands while a node is killed, one while a node is
stopped, one just as a node comes back (its backlog not yet replayed). RG = 2 also has a
fault of one node in EACH group at once, two nodes that own a shard together: an add,
an update and a delete of that shard must then be refused for certain (503, "Nothing was
written") and must not take effect.

Afterwards, once every node is repaired:
- every acknowledged task is finished and succeeded (`unfinished`, `failed`);
- every id's last acknowledged write is on exactly the owners of its shard, checked on
  each node directly (`lost`, `stale`; `misplaced` for a copy on a node that does not
  own the shard), and no acknowledged delete came back (`resurrected`);
- with RF = 2, no write was refused (no 503): only one node per group was ever down.
- a write whose outcome the client cannot know (no answer: Miroir died under it; a 503
  that does not say nothing was written) makes its id uncertain from then on: it is not
  written again, and each owner holds one of its two possible states (`uncertain_bad`),
  the same one on every owner (`uncertain_diverged`: such a write is rolled forward when
  Miroir restarts, engine/intents.py).

Loopback only; every wait bounded; every process stopped (SIGCONT first). Prints the
figures of each scenario.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from miroir.core.routing import shard_for_key
from tests.support.chaos_helpers import (
    NOTHING_WRITTEN,
    WRITE_KINDS,
    MiroirProcess,
    StreamWriter,
    create_index,
    durable_cluster,
    fresh_owners,
    node_docs,
    node_repaired,
    settle_nodes,
    settle_urls,
    topology_nodes,
    verify_writes,
    versioned_doc,
    wait_until,
)
from tests.support.devnodes import Devnode, start_devnodes, wait_task

pytestmark = pytest.mark.timeout(150)

SHARDS = 8
N_BASE = 300
WAIT_S = 45.0
MIROIR_KILLS = 5
WRITE_INTERVAL_S = 0.03
UID = "items"
FINISHED = ("succeeded", "failed", "canceled")
# `uncertain_diverged` too: a write in flight when Miroir is killed is rolled forward at
# its restart (engine/intents.py), so the copies of its ids agree.
BAD = ("lost", "stale", "resurrected", "uncertain_bad", "uncertain_diverged", "misplaced", "phantom")


@dataclass(frozen=True)
class Layout:
    name: str
    groups: int
    rf: int
    nodes: int
    seed: int


LAYOUTS = [Layout("rg1_rf2", groups=1, rf=2, nodes=3, seed=15), Layout("rg2_rf1", groups=2, rf=1, nodes=4, seed=16)]


def _config(path: Path, data_dir: Path, urls: list[str], layout: Layout) -> dict[str, list[str]]:
    lines = [
        "[server]", 'bind = "127.0.0.1:0"',
        "[cluster]", f"shards = {SHARDS}", f"replication_factor = {layout.rf}",
        "[store]", f'data_dir = "{data_dir}"',
        "[log]", 'level = "info"',
        # A killed node is down within ~0.3 s, a stopped one within ~1.7 s. (A node
        # slow to answer probes under load must not be taken for a second dead node.)
        "[health]", "interval_ms = 150", "timeout_ms = 750", "unhealthy_threshold = 2", "recovery_threshold = 1",
        "[scatter]", "node_timeout_ms = 2000",
    ]
    groups: dict[str, list[str]] = {}
    for i, url in enumerate(urls):
        node, group = f"n{i + 1}", f"g{i % layout.groups}"
        groups.setdefault(group, []).append(node)
        lines += ["[[nodes]]", f'id = "{node}"', f'url = "{url}"', f'group = "{group}"']
    path.write_text("\n".join(lines) + "\n")
    return groups


class Chaos:
    """Miroir (a subprocess, restarted on the same journal) and the devnodes, with the
    faults of the schedule, and what was done when."""

    def __init__(self, config: Path, devs: list[Devnode], groups: dict[str, list[str]]):
        self.config = config
        self.devs = {f"n{i + 1}": d for i, d in enumerate(devs)}
        self.groups = groups
        self.procs = [MiroirProcess(config)]
        self.figures = {"miroir_kill9": 0, "node_sigkill": 0, "node_sigstop": 0}
        # Miroir's URL and how many times it was killed, in one value: the writer reads both.
        self.current = (self.procs[-1].wait_ready(), 0)
        self.events: list[str] = []
        self.probes: list[str] = []  # answers to writes while every owner of a shard is down
        self.t0 = time.monotonic()
        self.writer: StreamWriter | None = None

    @property
    def url(self) -> str:
        return self.current[0]

    def note(self, what: str) -> None:
        self.events.append(f"{time.monotonic() - self.t0:.1f}s {what}")

    def await_ack(self) -> None:
        """Until the running Miroir has acknowledged a write: every life must have one,
        and on a loaded machine the schedule's pauses alone do not guarantee it."""
        writer, life = self.writer, self.current[1]
        if writer is not None:
            wait_until(lambda: writer.acked_by_life.get(life, 0) > 0, timeout=WAIT_S, what=f"an ack in life {life}")

    def kill_miroir(self) -> None:
        self.await_ack()
        self.procs[-1].kill()
        self.note("miroir kill -9")
        self.procs.append(MiroirProcess(self.config))
        url = self.procs[-1].wait_ready()
        self.figures["miroir_kill9"] += 1
        self.current = (url, self.figures["miroir_kill9"])
        self.note("miroir ready")

    def fault(self, node: str, how: str) -> None:
        d = self.devs[node]
        if how == "kill":
            d.kill()
            self.figures["node_sigkill"] += 1
        else:
            os.kill(d.proc.pid, signal.SIGSTOP)
            self.figures["node_sigstop"] += 1
        self.note(f"{node} {how}")

    def heal(self, node: str, how: str) -> None:
        d = self.devs[node]
        if how == "kill":
            d.start()
            d.wait_ready()
        else:
            os.kill(d.proc.pid, signal.SIGCONT)
        self.note(f"{node} back")

    def topology(self) -> dict[str, dict]:
        r = httpx.get(f"{self.url}/_miroir/topology", timeout=10)
        r.raise_for_status()
        return {n["id"]: n for n in r.json()["nodes"]}

    def wait_down(self, node: str) -> None:
        wait_until(lambda: self.topology()[node]["health"]["state"] == "down", timeout=WAIT_S, what=f"{node} down")

    def wait_repaired(self, nodes: list[str]) -> None:
        def repaired() -> bool:
            topo = self.topology()
            return all(
                topo[n]["health"]["state"] == "up" and topo[n]["repair"]["state"] == "ok" and topo[n]["readable"]
                for n in nodes
            )

        wait_until(repaired, timeout=WAIT_S, what=f"{nodes} repaired")
        self.note(f"{nodes} repaired")

    def close(self) -> None:
        for d in self.devs.values():  # a stopped node must be continued before it can be killed
            if d.proc is not None and d.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(d.proc.pid, signal.SIGCONT)
        for p in self.procs:
            p.kill()


def _run_schedule(chaos: Chaos, layout: Layout, rng: random.Random) -> None:
    """Five Miroir kills; node kills and stops, one node per group at a time (two of them
    spanning a Miroir kill, one followed by a kill as the node comes back); with two
    groups, one fault in each group at once."""
    g0 = "g0"

    def pause() -> None:  # the writer goes on between faults
        time.sleep(rng.uniform(0.6, 1.0))

    def node_of(group: str) -> str:
        return rng.choice(chaos.groups[group])

    pause()
    chaos.kill_miroir()  # 1
    pause()
    node = node_of(g0)
    chaos.fault(node, "kill")
    time.sleep(0.6)
    chaos.kill_miroir()  # 2, a node dead
    time.sleep(0.4)
    chaos.heal(node, "kill")
    chaos.wait_repaired([node])
    pause()
    chaos.kill_miroir()  # 3
    pause()
    node = node_of(g0)
    chaos.fault(node, "stop")
    chaos.wait_down(node)
    time.sleep(0.5)
    chaos.heal(node, "stop")
    chaos.wait_repaired([node])
    pause()
    node = node_of(rng.choice(sorted(chaos.groups)))
    chaos.fault(node, "stop")
    time.sleep(0.5)
    chaos.kill_miroir()  # 4, a node stopped (the new Miroir's first probe of it hangs)
    time.sleep(0.5)
    chaos.heal(node, "stop")
    chaos.wait_repaired([node])
    pause()
    if len(chaos.groups) > 1:
        # One node down in each group at once: the two owners of a shard (RF = 1).
        shard = rng.randrange(SHARDS)
        a, b = sorted(_owners(shard, chaos.groups, layout.rf))
        chaos.fault(a, "kill")
        chaos.fault(b, "stop")
        chaos.wait_down(a)
        chaos.wait_down(b)
        chaos.probes = _refused_writes(chaos.url, shard)
        time.sleep(0.5)
        chaos.heal(b, "stop")
        chaos.heal(a, "kill")
        back = [a, b]
    else:
        back = [node_of(g0)]
        chaos.fault(back[0], "kill")
        time.sleep(1.0)
        chaos.heal(back[0], "kill")
    chaos.kill_miroir()  # 5, the nodes just back still catching up
    chaos.wait_repaired(back)
    pause()


def _owners(shard: int, groups: dict[str, list[str]], rf: int) -> set[str]:
    """Every node that must hold `shard` (its owners in every group, by the placement a
    new index gets)."""
    return {n for ids in groups.values() for n in fresh_owners(shard, ids, rf, SHARDS)}


def _spare_ids(shard: int, first: int, n: int) -> list[str]:
    """`n` ids of `shard` from `first` up: outside the writer's ids."""
    return [i for i in map(str, range(first, first + 1_000)) if shard_for_key(i, SHARDS) == shard][:n]


SPARE = {s: _spare_ids(s, 10_000, 2) for s in range(SHARDS)}  # in the base, never written by the writer


def _refused_writes(url: str, shard: int) -> list[str]:
    """An add, an update and a delete of `shard` while every owner of it is down: each
    must be refused for certain (503, nothing written); `verify_writes` then finds any of them
    that took effect all the same (phantom, stale, lost)."""
    (update, delete), add = SPARE[shard], _spare_ids(shard, 20_000, 1)[0]
    out = []
    with httpx.Client(base_url=url, timeout=30) as http:
        for r in (
            http.post(f"/indexes/{UID}/documents", json=[{"id": int(add), "v": 1, "title": "refused add"}]),
            http.post(f"/indexes/{UID}/documents", json=[{"id": int(update), "v": 1, "title": "refused update"}]),
            http.delete(f"/indexes/{UID}/documents/{delete}"),
        ):
            out.append(f"{r.status_code} {r.json().get('code')} {r.json().get('message')}")
    return out


def _wait_tasks(url: str, uids: list[int]) -> dict[int, dict]:
    """Task uid -> its view, once every task is finished or WAIT_S has passed."""
    views: dict[int, dict] = {}
    deadline = time.monotonic() + WAIT_S
    with httpx.Client(base_url=url, timeout=30) as http:
        while True:
            todo = [u for u in uids if views.get(u, {}).get("status") not in FINISHED]
            for k in range(0, len(todo), 200):
                chunk = todo[k : k + 200]
                r = http.get("/tasks", params={"uids": ",".join(map(str, chunk)), "limit": len(chunk)})
                r.raise_for_status()
                views.update({t["uid"]: t for t in r.json()["results"]})
            if not todo or time.monotonic() > deadline:
                return views
            time.sleep(0.1)


def _open_tasks(url: str) -> list[int]:
    """Uids of Miroir's tasks still enqueued or processing once WAIT_S has passed (or none)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        r = httpx.get(f"{url}/tasks", params={"statuses": "enqueued,processing", "limit": 1000}, timeout=10)
        r.raise_for_status()
        open_ = [t["uid"] for t in r.json()["results"]]
        if not open_ or time.monotonic() > deadline:
            return open_
        time.sleep(0.1)


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda lay: lay.name)
def test_writes_survive_miroir_kill9_and_node_faults(tmp_path, layout):
    t0 = time.monotonic()
    rng = random.Random(layout.seed)
    dirs = [str(tmp_path / f"node{i + 1}") for i in range(layout.nodes)]
    with start_devnodes(layout.nodes, data_dirs=dirs) as devs:
        config = tmp_path / "miroir.toml"
        groups = _config(config, tmp_path / "journal", [d.url for d in devs], layout)
        chaos = Chaos(config, devs, groups)
        writer: StreamWriter | None = None
        try:
            ids = [*range(N_BASE), *(int(i) for spare in SPARE.values() for i in spare)]
            base = {str(i): versioned_doc(str(i), 0) for i in ids}
            with httpx.Client(base_url=chaos.url, timeout=30) as h:
                r = h.post("/indexes", json={"uid": UID, "primaryKey": "id"})
                assert r.status_code == 202, r.text
                r = h.post(f"/indexes/{UID}/documents", json=list(base.values()))
                assert r.status_code == 202, r.text
                base_task = r.json()["taskUid"]
            assert _wait_tasks(chaos.url, [base_task])[base_task]["status"] == "succeeded"
            t_loaded = time.monotonic() - t0
            writer = StreamWriter(lambda: chaos.current, UID, layout.seed, base, N_BASE, WRITE_INTERVAL_S)
            writer.start()
            chaos.writer = writer
            _run_schedule(chaos, layout, rng)
            chaos.await_ack()
            writer.stop.set()
            writer.join(40)
            t_chaos = time.monotonic() - t0
            chaos.wait_repaired(sorted(chaos.devs))
            views = _wait_tasks(chaos.url, writer.tasks)
            settle_urls([d.url for d in devs], WAIT_S)
            unfinished = [u for u in writer.tasks if views.get(u, {}).get("status") not in FINISHED]
            # Tasks of writes that got no answer (Miroir died under them) finish too.
            still_open = _open_tasks(chaos.url)
            failed = [views[u] for u in writer.tasks if u not in unfinished and views[u]["status"] != "succeeded"]
            node_urls = {n: d.url for n, d in chaos.devs.items()}
            figures = verify_writes(writer, node_urls, lambda s: _owners(s, groups, layout.rf), SHARDS)
            acked = sum(writer.counts[k] for k in WRITE_KINDS)
            print(
                f"\n{layout.name}: kills={chaos.figures} writes={writer.counts} acknowledged={acked} "
                f"uncertain_ids={len(writer.uncertain)} tasks_unfinished={len(unfinished)} tasks_failed={len(failed)} "
                f"tasks_open_in_miroir={len(still_open)} acked_per_miroir_process={writer.acked_by_life} "
                + " ".join(f"{k}={figures[k]}" for k in ("checked", *BAD)) + " "
                f"wall={time.monotonic() - t0:.1f}s (loaded {t_loaded:.1f}s, chaos until {t_chaos:.1f}s)"
            )
            for line in figures["examples"] + writer.other[:5] + [str(f)[:300] for f in failed[:5]]:
                print("  ", line)
            print("   schedule:", "; ".join(chaos.events))
            for line in chaos.probes:
                print("   all owners down:", line)
            assert chaos.figures["miroir_kill9"] == MIROIR_KILLS
            assert not unfinished, unfinished[:10]
            assert not still_open, still_open[:10]
            assert not failed, failed[:3]
            assert not any(figures[k] for k in BAD), figures
            assert not writer.other, writer.other[:5]
            # Only the write in flight at each kill of Miroir can be of unknown outcome.
            assert len(writer.uncertain) <= MIROIR_KILLS, writer.why
            if layout.groups > 1:
                assert len(chaos.probes) == 3, chaos.probes
                refused = [p for p in chaos.probes if p.startswith("503 miroir_no_quorum") and NOTHING_WRITTEN in p]
                assert refused == chaos.probes, chaos.probes
            if layout.rf == 2:
                # One group, and one node of it down at a time: every write is taken.
                assert not writer.refused, writer.refused[:5]
            # The writer really ran through the faults: every Miroir process took writes.
            assert sorted(writer.acked_by_life) == list(range(MIROIR_KILLS + 1)), writer.acked_by_life
        finally:
            if writer is not None:
                writer.stop.set()
                writer.join(40)
            chaos.close()


class CopiesDiverged(AssertionError):
    """The copies of one document differ once every node is repaired."""




def test_uncertain_write_leaves_copies_that_agree(tmp_path):
    """RG = 2, RF = 1, two nodes (each shard: n1 in g0, n2 in g1). n1 is killed, n2 is
    stopped just before a write reaches it. n2 may apply it once it resumes, so the
    write is hinted to both and acknowledged: once both nodes are back and repaired,
    both copies hold it. (Found by the chaos test above: the write used to be refused,
    applied by n2 alone, and the copies differed for good.)"""
    with durable_cluster(2, groups=2, rf=1, shards=2, tmp=tmp_path) as c:
        create_index(c.url, UID)
        with httpx.Client(base_url=c.url, timeout=30) as http:
            r = http.post(f"/indexes/{UID}/documents", json=[{"id": 1, "v": 0}])
            assert wait_task(c.url, r.json()["taskUid"], timeout=WAIT_S)["status"] == "succeeded"
            n1, n2 = c.node("n1"), c.node("n2")
            n1.kill()
            wait_until(lambda: topology_nodes(c.url)["n1"]["health"]["state"] == "down", what="n1 down")
            os.kill(n2.proc.pid, signal.SIGSTOP)
            try:
                r = http.post(f"/indexes/{UID}/documents", json=[{"id": 1, "v": 1}])
            finally:
                os.kill(n2.proc.pid, signal.SIGCONT)
        assert r.status_code == 202 and "X-Miroir-Degraded" in r.headers, r.text
        n1.start()
        n1.wait_ready()
        wait_until(lambda: node_repaired(c.url, "n1") and node_repaired(c.url, "n2"), what="n1 and n2 repaired")
        settle_nodes(c, UID)
        copies = {n: node_docs(c.node(n).url, UID).get("1", {}).get("v") for n in ("n1", "n2")}
        print(f"\ncopies of the refused write's document: {copies}")
        if copies["n1"] != copies["n2"] or copies["n1"] != 1:
            raise CopiesDiverged(copies)
