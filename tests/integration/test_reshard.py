"""Issue 17, item 3: online resharding 16 -> 64 under writes and searches, with a kill -9
of Miroir in the middle.

Three devnodes, RF 2, two indexes created with 16 shards (placement 2): `items` takes a
stream of adds, updates and deletes through Miroir the whole time
(chaos_helpers.StreamWriter), `packages` (a slice of the Debian corpus) answers the
oracle's generated queries the whole time, each compared with one devnode holding the
same documents (tests/oracle/test_oracle.py's `compare`). Both are resharded to 64;
Miroir is killed (kill -9) while `items` is being re-tagged and restarted: the journaled
phases resume. Afterwards every acknowledged write is checked on the nodes directly
(`verify_writes`: on exactly the owners of its shard under 64 shards, with its new tag,
nothing lost, nothing deleted back), the owner table is the one the pure split plan gives
(core/reshard.py: each child inherits its parent's owners, then the fewest moves to
balance), and the oracle's queries still equal one node.

Also: the CLI and the route refuse an S2 that is not a multiple of S (400, exit 2), and
the same S on placement 2 (nothing to do); and `miroir reshard legacy --shards 16` moves
an index of placement 1 (made so in the journal, as an index created before placement 2)
to placement 2 at the same time: its documents end on exactly the shared table's owners.

Loopback only, every wait bounded, every process stopped.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import msgspec
import pytest
import trio

from miroir.core import reshard as rs
from miroir.core.model import IndexPut
from miroir.core.placement import CURRENT_PLACEMENT, Layout, owner_table
from miroir.core.routing import shard_for_key
from tests.support.chaos_helpers import (
    MiroirProcess,
    StreamWriter,
    node_docs,
    settle_urls,
    verify_writes,
    versioned_doc,
    wait_until,
)
from tests.support.corpus import CORPUS, read_docs
from tests.support.devnodes import start_devnodes, wait_task
from tests.support.journals import miroir_journal

pytestmark = [pytest.mark.timeout(120), pytest.mark.skipif(not CORPUS.exists(), reason="corpus not found")]

OLD, NEW, RF = 16, 64, 2
N_ITEMS = 400
N_PACKAGES = 400
N_LEGACY = 200
N_QUERIES = 20
SEED = 17_3
WAIT_S = 60.0
# Slow enough that the kill lands while `items` is being re-tagged.
DOCS_PER_SECOND = 300
WRITE_INTERVAL_S = 0.02
BAD = ("lost", "stale", "resurrected", "uncertain_bad", "misplaced", "phantom")


def _config(path: Path, data_dir: Path, urls: list[str]) -> None:
    lines = [
        "[server]", 'bind = "127.0.0.1:0"',
        "[cluster]", f"shards = {OLD}", f"replication_factor = {RF}",
        "[store]", f'data_dir = "{data_dir}"',
        "[log]", 'level = "info"',
        "[health]", "interval_ms = 150", "timeout_ms = 1000", "unhealthy_threshold = 3", "recovery_threshold = 1",
        "[rebalancer]", f"docs_per_second = {DOCS_PER_SECOND}", "page_size = 50",
    ]
    for i, url in enumerate(urls):
        lines += ["[[nodes]]", f'id = "n{i + 1}"', f'url = "{url}"', 'group = "g0"']
    path.write_text("\n".join(lines) + "\n")


def _task(url: str, r: httpx.Response) -> dict:
    assert r.status_code == 202, r.text
    t = wait_task(url, r.json()["taskUid"], timeout=WAIT_S)
    assert t["status"] == "succeeded", t
    return t


def _index(url: str, uid: str, docs: list[dict], settings: dict | None = None) -> None:
    with httpx.Client(base_url=url, timeout=30) as h:
        _task(url, h.post("/indexes", json={"uid": uid, "primaryKey": "id"}))
        if settings:
            _task(url, h.patch(f"/indexes/{uid}/settings", json=settings))
        _task(url, h.post(f"/indexes/{uid}/documents", json=docs))


def _readable(url: str) -> bool:
    nodes = httpx.get(f"{url}/_miroir/topology", timeout=10).json()["nodes"]
    return all(n["readable"] for n in nodes)


def _reshards(url: str) -> dict[str, dict]:
    r = httpx.get(f"{url}/_miroir/rebalance", timeout=10)
    r.raise_for_status()
    return {x["indexUid"]: x for x in r.json()["reshards"]}


class Searcher(threading.Thread):
    """Asks the oracle's queries of Miroir over and over; every answer must equal the
    oracle's. A query Miroir could not answer (killed, restarting) is skipped."""

    def __init__(self, miroir_url, queries: list[dict], answers: list, compare):
        super().__init__(daemon=True)
        self.miroir_url, self.queries, self.answers, self.compare = miroir_url, queries, answers, compare
        self.stop = threading.Event()
        self.asked = self.skipped = 0
        self.splitting = 0  # answers compared while `packages` was being re-tagged
        self.problems: list[str] = []

    def run(self) -> None:
        with httpx.Client(timeout=30) as http:
            while not self.stop.is_set():
                for q, want in zip(self.queries, self.answers, strict=True):
                    if self.stop.is_set():
                        return
                    url = self.miroir_url()
                    try:
                        phase = (_reshards(url).get("packages") or {}).get("phase")
                        r = http.post(f"{url}/indexes/packages/search", json=q)
                    except httpx.HTTPError:
                        self.skipped += 1
                        time.sleep(0.05)
                        continue
                    if r.status_code == 503 or "X-Miroir-Degraded" in r.headers:
                        self.skipped += 1  # a node judged down a moment (a loaded machine)
                        continue
                    self.asked += 1
                    self.splitting += phase == "splitting"
                    # Ties as sets: moved copies sit in a node's internal order after its own
                    # documents, so ties may leave insertion order (README, "Tied hits").
                    diffs = self.compare(q, q.get("distinct"), want, (r.status_code, r.json()), ties_as_sets=True)
                    if diffs:
                        self.problems.append(f"[{time.monotonic():.1f} {phase}] {q}: {diffs[:3]}")


def _as_placement_1(journal_dir: Path, uid: str) -> None:
    """Journal `uid` as an index of placement 1 (Miroir stopped): as if created before it."""

    async def main() -> None:
        j = miroir_journal(journal_dir)
        j.load()
        async with trio.open_nursery() as nursery:
            await nursery.start(j.run)
            meta = j.state.indexes[uid]
            await j.append(IndexPut(meta=msgspec.structs.replace(meta, placement=1)))
            await j.aclose()

    trio.run(main)


def _expected_table(ids: list[str]) -> list[list[str]]:
    """The pure plan: the index's 16-shard table, children inheriting, then balanced."""
    parent = owner_table(Layout(OLD, CURRENT_PLACEMENT), ids, RF)
    inherited = rs.inherited_table(parent, NEW)
    return rs.final_table(inherited, dict.fromkeys(ids, 1.0), RF)


def test_reshard_16_to_64_under_writes_searches_and_kill9(tmp_path):
    from tests.oracle.test_oracle import compare, oracle_body
    from tests.support import oracle_queries as oq

    t0 = time.monotonic()
    phases: dict[str, float] = {}
    packages = read_docs(N_PACKAGES, stride=30)
    queries = oq.generate(packages, N_QUERIES, SEED)
    with start_devnodes(4) as devs:
        oracle_url, urls = devs[3].url, [d.url for d in devs[:3]]
        _index(oracle_url, "packages", packages, oq.BASE_SETTINGS)
        with httpx.Client(base_url=oracle_url, timeout=30) as h:
            answers = [(r.status_code, r.json()) for r in (h.post("/indexes/packages/search", json=oracle_body(q))
                                                             for q in queries)]
        config = tmp_path / "miroir.toml"
        _config(config, tmp_path / "journal", urls)
        procs = [MiroirProcess(config)]
        current = {"url": procs[-1].wait_ready()}
        writer: StreamWriter | None = None
        searcher: Searcher | None = None
        try:
            url = current["url"]
            with httpx.Client(base_url=url, timeout=30) as h:
                _task(url, h.post("/indexes", json={"uid": "legacy", "primaryKey": "id"}))
            procs[-1].kill()
            _as_placement_1(tmp_path / "journal", "legacy")
            procs.append(MiroirProcess(config))
            current["url"] = url = procs[-1].wait_ready()
            wait_until(lambda: _readable(url), timeout=WAIT_S, what="nodes readable")
            legacy = [versioned_doc(str(i), 0) for i in range(N_LEGACY)]
            with httpx.Client(base_url=url, timeout=30) as h:
                _task(url, h.post("/indexes/legacy/documents", json=legacy))
            assert httpx.get(f"{url}/_miroir/topology", timeout=10).json()["indexes"]["legacy"]["placement"] == 1
            base = {str(i): versioned_doc(str(i), 0) for i in range(N_ITEMS)}
            _index(url, "items", list(base.values()))
            _index(url, "packages", packages, oq.BASE_SETTINGS)
            phases["loaded"] = time.monotonic() - t0

            # Refused: not a multiple, and nothing to do. Nothing changes.
            r = httpx.post(f"{url}/_miroir/indexes/items/reshard", json={"shards": 40}, timeout=10)
            assert (r.status_code, r.json()["code"]) == (400, "miroir_invalid_shards"), r.text
            assert "multiple" in r.json()["message"]
            r = httpx.post(f"{url}/_miroir/indexes/items/reshard", json={"shards": OLD}, timeout=10)
            assert (r.status_code, r.json()["code"]) == (400, "miroir_invalid_shards"), r.text
            r = httpx.post(f"{url}/_miroir/indexes/nope/reshard", json={"shards": NEW}, timeout=10)
            assert (r.status_code, r.json()["code"]) == (404, "index_not_found"), r.text
            cli = subprocess.run(
                [sys.executable, "-m", "miroir", "reshard", "items", "--shards", "24", "--url", url],
                capture_output=True, text=True, timeout=60, env=os.environ,
            )
            assert cli.returncode == 2 and "multiple" in cli.stderr and "Traceback" not in cli.stderr, cli.stderr
            assert httpx.get(f"{url}/indexes/items", timeout=10).status_code == 200
            topo = httpx.get(f"{url}/_miroir/topology", timeout=10).json()
            assert topo["indexes"]["items"]["shards"] == OLD

            writer = StreamWriter(lambda: (current["url"], len(procs) - 1), "items", SEED, base, N_ITEMS, WRITE_INTERVAL_S)
            writer.start()
            searcher = Searcher(lambda: current["url"], queries, answers, compare)
            searcher.start()
            time.sleep(0.3)
            tasks = {}
            cli = subprocess.run(
                [sys.executable, "-m", "miroir", "reshard", "legacy", "--shards", str(OLD), "--url", url, "--no-wait",
                 "--json"],
                capture_output=True, text=True, timeout=60, env=os.environ,
            )
            assert cli.returncode == 0, cli.stderr
            tasks["legacy"] = msgspec.json.decode(cli.stdout)["taskUid"]
            for uid in ("items", "packages"):
                r = httpx.post(f"{url}/_miroir/indexes/{uid}/reshard", json={"shards": NEW}, timeout=30)
                assert r.status_code == 202, r.text
                assert (r.json()["type"], r.json()["status"]) == ("indexReshard", "enqueued")
                tasks[uid] = r.json()["taskUid"]
            view = httpx.get(f"{url}/tasks/{tasks['items']}", timeout=10).json()
            assert view["status"] == "processing" and view["details"]["indexUid"] == "items", view
            assert view["details"]["newShards"] == NEW and not any(k.startswith("_") for k in view["details"])

            # kill -9 while `items` is being re-tagged: its first batch done, eight to go
            # (throttled to DOCS_PER_SECOND: seconds of margin).
            at = wait_until(
                lambda: (x := _reshards(current["url"]).get("items")) and x["phase"] == "splitting"
                and x["retagged"] >= 1 and x,
                timeout=WAIT_S, what="items re-tag begun",
            )
            assert at["retagged"] < at["toRetag"], f"the re-tag ended before the kill ({at}): slow it down"
            procs[-1].kill()
            phases["kill"] = time.monotonic() - t0
            procs.append(MiroirProcess(config))
            current["url"] = url = procs[-1].wait_ready()
            phases["ready"] = time.monotonic() - t0
            for uid, task_uid in tasks.items():
                done = wait_until(
                    lambda t=task_uid: (v := httpx.get(f"{current['url']}/tasks/{t}", timeout=10).json())["status"]
                    in ("succeeded", "failed") and v,
                    timeout=WAIT_S, what=f"reshard of {uid} done",
                )
                assert done["status"] == "succeeded", done
            phases["done"] = time.monotonic() - t0
            assert _reshards(url) == {}
            time.sleep(0.3)  # writes go on against 64 shards
            writer.stop.set()
            searcher.stop.set()
            writer.join(30)
            searcher.join(30)
            settle_urls(urls, WAIT_S)

            # The owners are the pure plan's, for both indexes; the default stays 16.
            ids = ["n1", "n2", "n3"]
            want = _expected_table(ids)
            topo = httpx.get(f"{url}/_miroir/topology", timeout=10).json()
            for uid in ("items", "packages"):
                ix = topo["indexes"][uid]
                assert (ix["shards"], ix["placement"]) == (NEW, 2)
                assert ix["owners"]["g0"] == want, uid

            # `legacy`: placement 1 -> 2, same S; on exactly the shared table's owners.
            shared = owner_table(Layout(OLD, CURRENT_PLACEMENT), ids, RF)
            ix = topo["indexes"]["legacy"]
            assert (ix["shards"], ix["placement"], ix["owners"]["g0"]) == (OLD, 2, shared)
            held = {n: node_docs(u, "legacy") for n, u in zip(ids, urls, strict=True)}
            for d in legacy:
                s = shard_for_key(d["id"], OLD)
                where = sorted(n for n in ids if str(d["id"]) in held[n])
                assert where == sorted(shared[s]), (d["id"], where, shared[s])
            assert sum(len(h) for h in held.values()) == N_LEGACY * RF

            figures = verify_writes(writer, dict(zip(ids, urls, strict=True)), lambda s: want[s], NEW)
            print(
                f"\nreshard {OLD}->{NEW} rf={RF}: killed at {at['retagged']}/{at['toRetag']} re-tagged, "
                f"writes={writer.counts} uncertain={len(writer.uncertain)} "
                f"{' '.join(f'{k}={figures[k]}' for k in ('checked', *BAD))} "
                f"searches={searcher.asked} (during split {searcher.splitting}, skipped {searcher.skipped}) "
                f"wall={time.monotonic() - t0:.1f}s phases={ {k: round(v, 1) for k, v in phases.items()} }"
            )
            for e in figures["examples"] + searcher.problems[:3]:
                print("  ", e[:200], "...", e[-400:])
            assert not any(figures[k] for k in BAD), figures
            assert len(writer.uncertain) <= 1 and not writer.other, (writer.why, writer.other[:5])
            assert sum(writer.counts[k] for k in ("add", "update", "delete")) >= 20, writer.counts
            assert not searcher.problems, searcher.problems[:3]
            assert searcher.asked >= N_QUERIES, (searcher.asked, searcher.skipped)

            # Every `packages` document on exactly its owners, once more through the oracle's eyes.
            with httpx.Client(timeout=30) as h:
                for q, a in zip(queries, answers, strict=True):
                    r = h.post(f"{url}/indexes/packages/search", json=q)
                    assert not compare(q, q.get("distinct"), a, (r.status_code, r.json()), ties_as_sets=True), q
                    assert "X-Miroir-Degraded" not in r.headers
                listed = h.get(f"{url}/indexes/packages/documents", params={"limit": 1000, "fields": "id"}).json()
                assert sorted(d["id"] for d in listed["results"]) == sorted(d["id"] for d in packages)
                assert listed["total"] == len(packages)
        finally:
            for t in (writer, searcher):
                if t is not None:
                    t.stop.set()
                    t.join(30)
            for p in procs:
                p.kill()
