"""Issue 20, point 5: a node that comes back catches up while writes go on at full speed.

A node is killed (kill -9, its data dir kept), writers keep writing through Miroir as
fast as they can, the node is restarted: its backlog must be replayed and the node
released (readable, repair state ok) *while the writers are still writing*, within a
bound, with every acknowledged write on every copy afterwards. Before the fix every
write for the node joined a backlog that never emptied (the node stayed unreadable and,
with RF = 2, its shards' writes were refused) until the writers stopped.

RF = 2 in one group, and two groups of RF = 1. Miroir runs as its own process (`miroir
serve`), so that the writers are not slowed by sharing an interpreter with it. Loopback
only, bounded waits.
"""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from miroir.config import load_config
from tests.support.chaos_helpers import MiroirProcess, check_copies, create_index, node_docs, topology_nodes, wait_until
from tests.support.devnodes import start_devnodes
from tests.support.miroir_proc import MiroirCluster

pytestmark = pytest.mark.timeout(90)

S = 8
INDEX = "books"
# Documents per write: each write is a real batch for the node to index.
BATCH = 20
# The node must be released within this long after its restart, writers still running.
CATCH_UP_BOUND_S = 15.0
WRITERS = 4


class Writers:
    """Threads adding batches of `BATCH` documents as fast as Miroir answers; each 202 is timed."""

    def __init__(self, url: str):
        self.url = url
        self.stop = threading.Event()
        self.acked: dict[str, tuple[float, dict]] = {}  # id -> (monotonic time of the 202, doc)
        self.refused: dict[str, dict] = {}  # 503 (or no answer, also in `other`)
        self.other: list[str] = []
        self.threads = [threading.Thread(target=self._run, args=(k,), daemon=True) for k in range(WRITERS)]

    def __enter__(self) -> Writers:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(60)  # beyond the client's timeout: a request in flight ends first
        # A writer still running would change `acked` under the checks that follow.
        if exc_type is None:
            assert not any(t.is_alive() for t in self.threads), "a writer did not stop"

    def _run(self, k: int) -> None:
        i = 1_000_000 * (k + 1)
        with httpx.Client(base_url=self.url, timeout=30) as http:
            while not self.stop.is_set():
                docs = [{"id": i + j, "title": f"book {i + j} " + "word " * 30} for j in range(BATCH)]
                i += BATCH
                try:
                    r = http.post(f"/indexes/{INDEX}/documents", json=docs)
                except httpx.TransportError as e:
                    self.other.append(repr(e))
                    self.refused.update({str(d["id"]): d for d in docs})
                    continue
                if r.status_code == 202:
                    self.acked.update({str(d["id"]): (time.monotonic(), d) for d in docs})
                elif r.status_code == 503:
                    self.refused.update({str(d["id"]): d for d in docs})
                else:
                    self.other.append(f"{r.status_code} {r.text[:200]}")

    def rate(self, since: float, until: float) -> float:
        n = sum(1 for t, _ in self.acked.values() if since <= t < until) / BATCH
        return n / max(until - since, 1e-9)


@pytest.mark.parametrize(("nodes", "groups", "rf"), [(3, 1, 2), (4, 2, 1)], ids=["rf2", "2groups-rf1"])
def test_returning_node_catches_up_under_full_speed_writes(tmp_path, nodes, groups, rf):
    dirs = [str(tmp_path / f"node{i}") for i in range(nodes)]
    with start_devnodes(nodes, data_dirs=dirs) as devs:
        ids = [f"n{i + 1}" for i in range(nodes)]
        group_of = {n: f"g{k % groups}" for k, n in enumerate(ids)}
        config = tmp_path / "miroir.toml"
        config.write_text(
            '[server]\nbind = "127.0.0.1:0"\n'
            f'[store]\ndata_dir = "{tmp_path / "journal"}"\n'
            f"[cluster]\nshards = {S}\nreplication_factor = {rf}\n"
            "[health]\ninterval_ms = 150\ntimeout_ms = 300\nunhealthy_threshold = 2\nrecovery_threshold = 1\n"
            '[log]\nlevel = "info"\n'
            + "".join(f'[[nodes]]\nid = "{n}"\nurl = "{d.url}"\ngroup = "{group_of[n]}"\n' for n, d in zip(ids, devs))
        )
        miroir = MiroirProcess(config)
        try:
            url = miroir.wait_ready()
            c = MiroirCluster(
                url=url, config=load_config(str(config)), devnodes=devs, node_ids=ids,
                groups={g: [n for n in ids if group_of[n] == g] for g in sorted(set(group_of.values()))},
            )
            _catch_up(c)
        finally:
            miroir.kill()


def _catch_up(c: MiroirCluster) -> None:
    create_index(c.url, INDEX)
    victim = "n2"
    with Writers(c.url) as w:
        time.sleep(0.5)
        c.node(victim).kill()
        wait_until(lambda: topology_nodes(c.url)[victim]["health"]["state"] == "down", what=f"{victim} down")
        time.sleep(1.5)  # a backlog builds up (at least one write, however loaded the machine)
        wait_until(lambda: topology_nodes(c.url)[victim]["repair"]["backlogOps"] > 0, what="a backlog")
        c.node(victim).restart()
        t_back = time.monotonic()
        peak = 0
        states: list[str] = []
        while True:
            view = topology_nodes(c.url)[victim]
            peak = max(peak, view["repair"]["backlogOps"])
            if not states or states[-1] != view["repair"]["state"]:
                states.append(view["repair"]["state"])
            if view["health"]["state"] == "up" and view["repair"]["state"] == "ok" and view["readable"]:
                break
            assert time.monotonic() - t_back < CATCH_UP_BOUND_S, (
                f"{victim} not caught up {CATCH_UP_BOUND_S}s after its restart with writes going on: {view}"
            )
            time.sleep(0.05)
        t_released = time.monotonic()
        time.sleep(1.0)  # the writers go on, with the node serving again (5 writes at least)
        wait_until(lambda: w.rate(t_released, time.monotonic()) * (time.monotonic() - t_released) >= 5,
                   what="writes acknowledged after the release")
        t_end = time.monotonic()
    assert w.acked, "no write was acknowledged"
    assert not w.other, w.other[:5]
    # The node caught up while the writers were writing, not once they stopped.
    during = w.rate(t_back, t_released)
    after = w.rate(t_released, t_end)
    assert after * (t_end - t_released) >= 5, f"writes acknowledged after the release: {after:.1f}/s"
    present: set[str] = set()
    for d in c.devnodes:
        present |= set(node_docs(d.url, INDEX))
    # A write either takes effect or is refused, never both (issue 20, point 4); every
    # write here was answered (`w.other` is empty), so a refused one is a 503.
    applied_refused = sorted(i for i in w.refused if i in present)
    assert not applied_refused, f"{len(applied_refused)} documents refused with 503 were applied: {applied_refused[:5]}"
    expected = {i: d for i, (_, d) in w.acked.items()}
    counts = check_copies(c, INDEX, expected, S)
    view = topology_nodes(c.url)[victim]["repair"]
    print(
        f"\n{len(c.node_ids)} nodes, {len(c.groups)} group(s), RF={c.config.cluster.replication_factor}: "
        f"backlog_peak={peak} states={states} "
        f"released_after={t_released - t_back:.2f}s acked={len(w.acked)} refused_503={len(w.refused)} "
        f"ack_rate_catching_up={during:.0f}/s ack_rate_after={after:.0f}/s replayed={view['replayedOps']} "
        f"documents_verified={sum(counts.values())}"
    )
    assert peak > 0 and view["replayedOps"] >= peak and view["backlogOps"] == 0, (peak, view)
