"""A journal that lost acknowledged records refuses to load (issue 20, point 3), naming the
file and the byte offset; `load(salvage=True)` (`miroir serve --recover`) keeps what
replays. Real `miroir serve` processes over devnodes for the start-up refusals and the
recovery: a client's task uids are all below the first uid handed out afterwards.

Every damage case here loaded silently before the commit marker (`journal.commit`).
"""

from __future__ import annotations

import random
import re
import shutil
import sys
from functools import partial
from pathlib import Path

import httpx
import msgspec
import pytest
import structlog
import trio

from miroir.core import recovery as core_recovery
from miroir.core.model import (
    IndexMeta,
    IndexPut,
    MiroirState,
    TaskCounterRaised,
    TaskEnqueued,
    TaskRecord,
)
from miroir.store.journal import (
    COMMIT_NAME,
    DAMAGED_PREFIX,
    SNAPSHOT_NAME,
    Journal,
    JournalCorrupt,
    JournalDamaged,
    frame,
    segment_name,
)
from tests.support.devnodes import start_devnodes, wait_task
from tests.support.journals import miroir_journal
from tests.support.miroir_proc import Daemon

TIMEOUT = 20


def make(directory: Path, snapshot_every: int = 10_000) -> Journal[MiroirState]:
    return miroir_journal(directory, snapshot_every, high_water=True)


def enqueued(uid: int) -> TaskEnqueued:
    return TaskEnqueued(task=TaskRecord(uid=uid, index_uid="books", type="documentAdditionOrUpdate", details={"n": uid}))


async def write(directory: Path, uids: range, *, snapshot_after: int | None = None, snapshot_every: int = 10_000) -> MiroirState:
    """Append one task per uid (one acknowledged append each), optionally a snapshot."""
    journal = make(directory, snapshot_every)
    journal.load()
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            await nursery.start(journal.run)
            await journal.append(IndexPut(meta=IndexMeta(uid="books", primary_key="id", shards=4, created_at="t", updated_at="t")))
            for uid in uids:
                await journal.append(enqueued(uid))
                if snapshot_after is not None and uid == snapshot_after:
                    await journal.snapshot()
            await journal.aclose()
    return journal.state


def files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


def refused(directory: Path, *expect: str, kind: type[JournalCorrupt] = JournalCorrupt) -> str:
    """Load must refuse, name each of `expect`, and leave every file as it was."""
    before = files(directory)
    with pytest.raises(kind) as err:
        make(directory).load()
    msg = str(err.value)
    for part in expect:
        assert part in msg, msg
    assert re.search(r"byte offset \d+", msg), msg
    assert files(directory) == before, "a refused journal is left as it was"
    return msg


# --- in-process: every damage case ----------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_truncation_of_the_last_segment_is_refused(tmp_path: Path, seed: int) -> None:
    trio.run(write, tmp_path, range(40))
    seg = tmp_path / segment_name(0)
    size = seg.stat().st_size
    cut = random.Random(seed).randrange(0, size)  # anywhere, record boundaries included
    with open(seg, "r+b") as f:
        f.truncate(cut)
    msg = refused(tmp_path, str(seg), f"byte offset {size}", kind=JournalDamaged)
    assert "cut short" in msg or "ends at byte offset" in msg, msg


def test_emptied_last_segment_is_refused(tmp_path: Path) -> None:
    trio.run(write, tmp_path, range(14))
    seg = tmp_path / segment_name(0)
    size = seg.stat().st_size
    seg.write_bytes(b"")
    refused(tmp_path, str(seg), "ends at byte offset 0", f"byte offset {size}")


def test_deleted_last_segment_after_a_snapshot_is_refused(tmp_path: Path) -> None:
    trio.run(partial(write, tmp_path, range(30), snapshot_after=15))
    assert sorted(files(tmp_path)) == [segment_name(1), COMMIT_NAME, SNAPSHOT_NAME]
    size = (tmp_path / segment_name(1)).stat().st_size
    (tmp_path / segment_name(1)).unlink()
    refused(tmp_path, str(tmp_path / segment_name(1)), "missing", f"byte offset {size}")


def test_deleted_only_segment_is_refused(tmp_path: Path) -> None:
    trio.run(write, tmp_path, range(14))
    (tmp_path / segment_name(0)).unlink()
    refused(tmp_path, str(tmp_path / segment_name(0)), "missing")


def test_missing_middle_segment_is_refused(tmp_path: Path) -> None:
    """Segments 1, 2, 3 after the snapshot; 2 lost."""
    trio.run(partial(write, tmp_path, range(10), snapshot_after=4))
    # Later segments as a writer that rotated would leave them (frames of real records).
    enc = msgspec.msgpack.Encoder()
    for n, uids in ((2, range(10, 15)), (3, range(15, 20))):
        (tmp_path / segment_name(n)).write_bytes(b"".join(frame(enc.encode(enqueued(u))) for u in uids))
    assert make(tmp_path).load().next_task_uid == 20  # whole: loads
    (tmp_path / segment_name(2)).unlink()
    refused(tmp_path, str(tmp_path / segment_name(2)), "missing at byte offset 0")


def test_deleted_snapshot_is_refused(tmp_path: Path) -> None:
    trio.run(partial(write, tmp_path, range(30), snapshot_after=15))
    (tmp_path / SNAPSHOT_NAME).unlink()
    refused(tmp_path, str(tmp_path / SNAPSHOT_NAME), "missing")


def test_deleted_snapshot_and_segments_are_refused(tmp_path: Path) -> None:
    for snap in (None, 15):
        d = tmp_path / f"snap{snap}"
        trio.run(partial(write, d, range(30), snapshot_after=snap))
        for name in files(d):
            if name != COMMIT_NAME:
                (d / name).unlink()
        lost = SNAPSHOT_NAME if snap else segment_name(0)
        refused(d, str(d / lost), "missing", "31 records were acknowledged")


def test_damaged_commit_marker(tmp_path: Path) -> None:
    trio.run(write, tmp_path, range(5))
    marker = tmp_path / COMMIT_NAME
    good = marker.read_bytes()
    half = len(good) // 2
    # One slot torn (a crash mid-update): the other, one commit older, still holds.
    for slot in (0, 1):
        torn = bytearray(good)
        torn[slot * half + 9] ^= 0xFF
        marker.write_bytes(bytes(torn))
        assert make(tmp_path).load().next_task_uid == 5
        marker.write_bytes(good)
    marker.write_bytes(b"\0" * len(good))
    refused(tmp_path, str(marker), "no valid commit record")


def test_torn_tail_past_the_marker_is_dropped_with_a_warning(tmp_path: Path) -> None:
    """A crash mid-write: bytes past the last acknowledged record were never acknowledged."""
    trio.run(write, tmp_path, range(5))
    seg = tmp_path / segment_name(0)
    size = seg.stat().st_size
    torn = frame(msgspec.msgpack.encode(enqueued(5)))[:-3]
    with open(seg, "ab") as f:
        f.write(torn)
    with structlog.testing.capture_logs() as logs:
        state = make(tmp_path).load()
    assert state.next_task_uid == 5 and seg.stat().st_size == size
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == ["journal.torn_tail_dropped"]


def test_journal_without_marker_gets_one(tmp_path: Path) -> None:
    """A data dir written before the marker existed loads (with a warning) and is guarded
    from then on."""
    trio.run(write, tmp_path, range(8))
    (tmp_path / COMMIT_NAME).unlink()
    with structlog.testing.capture_logs() as logs:
        assert make(tmp_path).load().next_task_uid == 8
    assert "journal.commit_marker_created" in [e["event"] for e in logs]
    seg = tmp_path / segment_name(0)
    with open(seg, "r+b") as f:
        f.truncate(seg.stat().st_size - 1)
    refused(tmp_path, str(seg))


def test_salvage_keeps_what_replays_and_moves_the_files_aside(tmp_path: Path) -> None:
    trio.run(write, tmp_path, range(40))
    seg = tmp_path / segment_name(0)
    with open(seg, "r+b") as f:
        f.truncate(seg.stat().st_size // 2)
    damaged = files(tmp_path)
    journal = make(tmp_path)
    state = journal.load(salvage=True)
    assert journal.salvage is not None and journal.salvage.mark is not None
    assert journal.salvage.mark.high_water == 40, "the marker's counter survives the lost tail"
    kept = state.next_task_uid
    assert 0 < kept < 40 and set(state.tasks) == set(range(kept)) and "books" in state.indexes
    assert files(tmp_path) == damaged, "nothing changes on disk before finish_salvage"
    journal.finish_salvage([TaskCounterRaised(floor=140)])
    assert state.next_task_uid == 140
    [aside] = [p for p in tmp_path.iterdir() if p.name.startswith(DAMAGED_PREFIX)]
    assert files(aside) == damaged, "the damaged files are kept for the operator, untouched"
    # The salvaged state is a new, whole journal: it reloads strictly and takes appends.
    assert make(tmp_path).load() == state

    async def more() -> None:
        j = make(tmp_path)
        j.load()
        async with trio.open_nursery() as n:
            await n.start(j.run)
            await j.append(enqueued(100))
            await j.aclose()

    trio.run(more)
    assert 100 in make(tmp_path).load().tasks


def test_salvage_skips_damage_in_the_middle(tmp_path: Path) -> None:
    trio.run(write, tmp_path, range(30))
    seg = tmp_path / segment_name(0)
    data = bytearray(seg.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one record's checksum fails; the records after it are whole
    seg.write_bytes(bytes(data))
    refused(tmp_path, str(seg), "corrupt record at byte offset")
    journal = make(tmp_path)
    state = journal.load(salvage=True)
    assert journal.salvage is not None and "skipped" in journal.salvage.damage[-1]
    assert len(state.tasks) == 29 and state.next_task_uid == 30, "only the damaged record is lost"


def test_task_uid_floor_and_shard_inference() -> None:
    from miroir.core.routing import shard_for_text

    # The marker alone bounds the uids; the nodes' sum plus a margin when it is gone.
    assert core_recovery.task_uid_floor(10, 57, []) == 57
    assert core_recovery.task_uid_floor(0, 0, [14, 9, 3]) == 26 + core_recovery.MIN_UID_MARGIN
    assert core_recovery.task_uid_floor(0, 0, [300_000]) == 600_000
    for s in (1, 7, 16, 64):
        samples = [(str(k), shard_for_text(str(k), s)) for k in range(40)]
        assert core_recovery.infer_shards(samples, configured=16) == s
    assert core_recovery.infer_shards([], configured=16) == 16


def test_placement_inference_from_where_documents_sit() -> None:
    """`--recover` rebuilds an index's placement from where its documents are: the
    owner tables went with the journal (placement 2's initial table is the guess)."""
    from miroir.core.placement import Layout, owner_table
    from miroir.core.routing import shard_for_text

    groups = {"g0": ["n1", "n2", "n3"]}
    weights = dict.fromkeys(groups["g0"], 1.0)
    keys = [str(i) for i in range(200)]
    for version in (1, 2):
        table = owner_table(Layout(16, version), groups["g0"], 1, weights)
        samples: dict[str, list[tuple[str, int]]] = {}
        for k in keys:
            shard = shard_for_text(k, 16)
            samples.setdefault(table[shard][0], []).append((k, shard))
        assert core_recovery.infer_placement(samples, groups, weights, 1, 16, {}) == version
    # Nothing fits (documents moved since): the newest placement.
    assert core_recovery.infer_placement({"n9": [("1", 3)]}, groups, weights, 1, 16, {}) == 2


# --- real `miroir serve` processes ---------------------------------------------------------

S = 8


def config_for(tmp: Path, devs, extra: str = "") -> Path:
    nodes = "".join(f'[[nodes]]\nid = "n{i + 1}"\nurl = "{d.url}"\ngroup = "g0"\n' for i, d in enumerate(devs))
    cfg = tmp / "miroir.toml"
    cfg.write_text(
        f'[server]\nbind = "127.0.0.1:0"\n[store]\ndata_dir = "{tmp / "data"}"\n{extra}'
        f"[cluster]\nshards = {S}\nreplication_factor = 1\n" + nodes
    )
    return cfg


def start(cfg: Path, *args: str) -> tuple[Daemon, str]:
    d = Daemon(cfg, args=list(args))
    return d, f"http://127.0.0.1:{d.wait_ready()}"


def refused_start(cfg: Path, *expect: str) -> str:
    d = Daemon(cfg)
    try:
        assert d.wait() == 1, d.stderr()
        err = d.stderr()
        last = err.strip().splitlines()[-1]
        assert last.startswith("miroir: error: "), err
        for part in expect:
            assert part in last, last
        assert "Traceback" not in err
        return last
    finally:
        d.kill()


def add_batches(url: str, first_id: int, count: int) -> list[int]:
    """`count` one-document writes; the task uids the client now holds."""
    held = []
    with httpx.Client(base_url=url, timeout=30) as c:
        for i in range(first_id, first_id + count):
            r = c.post("/indexes/books/documents", json=[{"id": i, "title": f"book {i}"}])
            assert r.status_code == 202, r.text
            held.append(r.json()["taskUid"])
    return held


def check_recovered(url: str, held: list[int], documents: int, new_id: int) -> int:
    """The index is back as the nodes hold it; the next uid is past every held one."""
    with httpx.Client(base_url=url, timeout=30) as c:
        ix = c.get("/indexes/books").json()
        assert ix["primaryKey"] == "id", ix
        r = c.post("/indexes/books/documents", json=[{"id": new_id, "title": "after recovery"}])
        assert r.status_code == 202, r.text
        uid = r.json()["taskUid"]
        assert uid > max(held), (uid, max(held))
        assert wait_task(url, uid, timeout=30)["status"] == "succeeded"
        stats = c.get("/indexes/books/stats").json()
        assert stats["numberOfDocuments"] == documents + 1, stats
        hits = c.post("/indexes/books/search", json={"q": "recovery"}).json()["hits"]
        assert new_id in [h["id"] for h in hits]
    return uid


def test_serve_refuses_damage_and_recovers_from_the_nodes(tmp_path: Path) -> None:
    """Truncated segment -> refused; --recover -> back; data dir emptied -> refused (the
    nodes hold data); --recover -> back, the index rebuilt from the nodes."""
    figures = {}
    with start_devnodes(3) as devs:
        cfg = config_for(tmp_path, devs)
        data = tmp_path / "data"
        d, url = start(cfg)
        try:
            held = add_batches(url, 0, 20)
            for uid in held:
                assert wait_task(url, uid, timeout=30)["status"] == "succeeded"
        finally:
            d.kill()  # kill -9: nothing flushed beyond what was acknowledged

        # 1. A random truncation of the last segment.
        seg = data / segment_name(0)
        size = seg.stat().st_size
        cut = random.Random(20).randrange(size // 2, size)
        with open(seg, "r+b") as f:
            f.truncate(cut)
        last = refused_start(cfg, "journal is corrupt", str(seg), "byte offset", "--recover")
        figures["truncated"] = last

        d, url = start(cfg, "--recover")
        try:
            assert any(str(DAMAGED_PREFIX) in p.name for p in data.iterdir())
            first = check_recovered(url, held, 20, 10_000)
            held += [first, *add_batches(url, 100, 5)]
        finally:
            d.kill()

        # 2. The whole data dir emptied while the nodes hold the data.
        shutil.rmtree(data)
        data.mkdir()
        refused_start(cfg, "journal", "is empty", "holds 1 index(es) (books)", "--recover")
        d, url = start(cfg, "--recover")
        try:
            first = check_recovered(url, held, 26, 10_001)
            with httpx.Client(base_url=url, timeout=30) as c:
                assert c.get("/indexes").json()["total"] == 1
                # The index keeps the shard count its documents were written with.
                r = c.get("/indexes/books/documents", params={"limit": 100}).json()
                assert r["total"] == 27 and len(r["results"]) == 27
            figures["after_empty_dir_first_uid"] = first
        finally:
            d.kill()
        # Recovered: a plain start works again.
        d, url = start(cfg)
        d.kill()
    print(figures, file=sys.stderr)


def test_serve_refuses_a_deleted_last_segment(tmp_path: Path) -> None:
    """After a snapshot: the last segment deleted (it held an index and tasks)."""
    with start_devnodes(2) as devs:
        cfg = config_for(tmp_path, devs, extra="snapshot_every_records = 5\n")
        d, url = start(cfg)
        try:
            held = add_batches(url, 0, 3)
            with httpx.Client(base_url=url, timeout=30) as c:
                r = c.post("/indexes", json={"uid": "late", "primaryKey": "id"})
                held.append(r.json()["taskUid"])
            assert wait_task(url, held[-1], timeout=30)["status"] == "succeeded"
            data = tmp_path / "data"
            # The records of the creation may just have filled a snapshot (how many there
            # are varies): then one more write leaves the last segment with tasks in it.
            last = max(p for p in data.iterdir() if p.name.startswith("journal.0"))
            if last.stat().st_size == 0:
                held += add_batches(url, 100, 1)
                assert wait_task(url, held[-1], timeout=30)["status"] == "succeeded"
        finally:
            d.kill()
        segs = sorted(p for p in data.iterdir() if p.name.startswith("journal.0"))
        assert (data / SNAPSHOT_NAME).exists() and segs and segs[-1].stat().st_size > 0
        segs[-1].unlink()
        refused_start(cfg, "journal is corrupt", str(segs[-1]), "missing", "byte offset")
        d, url = start(cfg, "--recover")
        try:
            with httpx.Client(base_url=url, timeout=30) as c:
                assert {i["uid"] for i in c.get("/indexes").json()["results"]} == {"books", "late"}
                r = c.post("/indexes/late/documents", json=[{"id": 1}])
                assert r.json()["taskUid"] > max(held)
        finally:
            d.kill()


def test_dev_url_rewrite_keeps_the_markers_task_counter(tmp_path: Path) -> None:
    """`miroir dev` points the journal's nodes at their new ports before Miroir starts;
    the marker it leaves must still carry the task counter, the floor a salvage never
    hands out a uid below (it was written as 0: a later damaged tail could reuse uids)."""
    from miroir.config import Config, StoreConfig
    from miroir.core.model import NodeMeta, NodePut
    from miroir.devmode import sync_journal_urls

    async def seed() -> None:
        journal = make(tmp_path)
        await trio.to_thread.run_sync(journal.load)
        async with trio.open_nursery() as nursery:
            await nursery.start(journal.run)
            await journal.append(NodePut(node=NodeMeta(id="n1", url="http://127.0.0.1:1", group="g0", state="active")))
            for uid in range(30):
                await journal.append(enqueued(uid))
            await journal.aclose()

    trio.run(seed)
    config = Config(store=StoreConfig(data_dir=str(tmp_path)))
    assert trio.run(sync_journal_urls, config, {"n1": "http://127.0.0.1:2"}) is True
    journal = make(tmp_path)
    state = journal.load()
    assert state.nodes["n1"].url == "http://127.0.0.1:2" and state.next_task_uid == 30
    assert journal.mark is not None and journal.mark.high_water == 30
