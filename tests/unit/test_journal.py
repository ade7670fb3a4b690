"""The journal (design §8) with Miroir's state: replay, torn tails, corruption,
snapshots and compaction, concurrent appends (a real SIGKILL mid-burst is
tests/integration/test_journal_sigkill.py)."""

from __future__ import annotations

import random
import shutil
import struct
import zlib
from pathlib import Path

import msgspec
import pytest
import structlog
import trio

from miroir.core.model import (
    IndexMeta,
    IndexPut,
    IndexRemoved,
    JournalRecord,
    MiroirState,
    NodeMeta,
    NodePut,
    NodeRemoved,
    TaskDeleted,
    TaskEnqueued,
    TaskRecord,
    TaskUpdated,
)
from miroir.store.journal import (
    COMMIT_NAME,
    SNAPSHOT_NAME,
    SNAPSHOT_TMP_NAME,
    Journal,
    JournalCorrupt,
    JournalError,
    segment_name,
)
from tests.support.journals import miroir_journal

TIMEOUT = 20  # seconds; every wait in this file is bounded by it


def make(directory: Path, snapshot_every: int = 10_000) -> Journal[MiroirState]:
    return miroir_journal(directory, snapshot_every)


def load(directory: Path) -> MiroirState:
    return make(directory).load()


def enqueued(uid: int, index: str | None = "movies") -> TaskEnqueued:
    return TaskEnqueued(
        task=TaskRecord(
            uid=uid,
            index_uid=index,
            type="documentAdditionOrUpdate",
            node_tasks={"n0": uid * 2, "n1": uid * 2 + 1},
            details={"receivedDocuments": uid},
            enqueued_at="2026-01-01T00:00:00Z",
        )
    )


async def write(directory: Path, batches: list[list[JournalRecord]], snapshot_every: int = 10_000) -> MiroirState:
    """Load, run, append each batch with one call, close; returns the live state."""
    journal = make(directory, snapshot_every)
    journal.load()
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            await nursery.start(journal.run)
            for batch in batches:
                await journal.append(*batch)
            await journal.aclose()
    return journal.state


def frames(path: Path) -> list[tuple[int, int]]:
    """(start, end) byte spans of the records of a segment file."""
    data = path.read_bytes()
    spans, off = [], 0
    while off < len(data):
        (length,) = struct.unpack_from("<I", data, off)
        spans.append((off, off + 8 + length))
        off += 8 + length
    assert off == len(data)
    return spans


# --- replay ------------------------------------------------------------------------------


async def test_replay_after_clean_stop(tmp_path: Path) -> None:
    meta = IndexMeta(uid="movies", primary_key="id", shards=16, created_at="t0", updated_at="t0")
    live = await write(
        tmp_path,
        [
            [NodePut(node=NodeMeta(id="n0", url="http://127.0.0.1:1", group="g0", state="active"))],
            [IndexPut(meta=meta), enqueued(0), enqueued(1)],
            [TaskUpdated(uid=0, status="processing", started_at="t1")],
            [TaskUpdated(uid=0, status="succeeded", finished_at="t2", details={"indexedDocuments": 3})],
            [enqueued(7, index=None), TaskDeleted(uids=[1, 99])],
            [NodePut(node=NodeMeta(id="n1", url="http://127.0.0.1:2", group="g0")), NodeRemoved(id="n0")],
            [IndexPut(meta=IndexMeta(uid="gone", primary_key=None, shards=4, created_at="t", updated_at="t"))],
            [IndexRemoved(uid="gone")],
        ],
    )
    assert live.next_task_uid == 8
    assert sorted(live.tasks) == [0, 7]
    t0 = live.tasks[0]
    assert (t0.status, t0.started_at, t0.finished_at) == ("succeeded", "t1", "t2")
    assert t0.details == {"indexedDocuments": 3} and t0.node_tasks == {"n0": 0, "n1": 1}
    assert list(live.indexes) == ["movies"] and list(live.nodes) == ["n1"]
    assert load(tmp_path) == live
    assert sorted(p.name for p in tmp_path.iterdir()) == [segment_name(0), COMMIT_NAME]


async def test_state_does_not_alias_appended_objects(tmp_path: Path) -> None:
    rec = enqueued(3)
    journal = make(tmp_path)
    journal.load()
    async with trio.open_nursery() as nursery:
        await nursery.start(journal.run)
        await journal.append(rec)
        rec.task.status = "failed"  # the caller's object, not the journaled one
        await journal.aclose()
    assert journal.state.tasks[3].status == "enqueued" == load(tmp_path).tasks[3].status


async def test_append_needs_a_running_writer(tmp_path: Path) -> None:
    journal = make(tmp_path)
    journal.load()
    with pytest.raises(JournalError):
        await journal.append(enqueued(0))
    async with trio.open_nursery() as nursery:
        await nursery.start(journal.run)
        await journal.append(enqueued(0))
        await journal.aclose()
    with pytest.raises(JournalError):
        await journal.append(enqueued(1))
    assert list(load(tmp_path).tasks) == [0]


async def test_writer_cancelled_fails_waiting_appends(tmp_path: Path) -> None:
    journal = make(tmp_path)
    journal.load()
    async with trio.open_nursery() as nursery:
        await nursery.start(journal.run)
        nursery.cancel_scope.cancel()
    with pytest.raises(JournalError):
        await journal.append(enqueued(0))


# --- torn and corrupt records ------------------------------------------------------------


@pytest.fixture
def five_records(tmp_path: Path) -> tuple[Path, bytes, list[tuple[int, int]], MiroirState]:
    """A segment of five records, its bytes, record spans, and the state of the first four.

    Beside the segment: the commit marker of the journal once its first four records were
    acknowledged (``four/journal.commit``), i.e. what a crash while the fifth was being
    written leaves; damage past that position is a torn tail."""
    src = tmp_path / "src"
    trio.run(write, src, [[enqueued(i)] for i in range(5)])
    path = src / segment_name(0)
    four = trio.run(write, tmp_path / "four", [[enqueued(i)] for i in range(4)])
    return path, path.read_bytes(), frames(path), four


def mark_of_four(tmp_path: Path) -> bytes:
    return (tmp_path / "four" / COMMIT_NAME).read_bytes()


def test_torn_last_record_every_offset(tmp_path: Path, five_records) -> None:
    _, data, spans, four = five_records
    start, end = spans[-1]
    assert end == len(data)
    for cut in range(start, end):
        d = tmp_path / f"cut{cut}"
        d.mkdir()
        (d / segment_name(0)).write_bytes(data[:cut])
        (d / COMMIT_NAME).write_bytes(mark_of_four(tmp_path))
        assert load(d) == four, f"cut at {cut}"
        assert (d / segment_name(0)).stat().st_size == start, "truncated to the last good record"
        shutil.rmtree(d)


def test_flipped_byte_in_last_record_is_dropped(tmp_path: Path, five_records) -> None:
    _, data, spans, four = five_records
    start, end = spans[-1]
    for pos in range(start, end):
        d = tmp_path / f"flip{pos}"
        d.mkdir()
        damaged = bytearray(data)
        damaged[pos] ^= 0xFF
        (d / segment_name(0)).write_bytes(bytes(damaged))
        (d / COMMIT_NAME).write_bytes(mark_of_four(tmp_path))
        with structlog.testing.capture_logs() as logs:
            assert load(d) == four, f"flip at {pos}"
        assert [e["event"] for e in logs if e["log_level"] == "warning"] == ["journal.torn_tail_dropped"]
        shutil.rmtree(d)


async def test_garbage_after_last_record_is_dropped(tmp_path: Path, five_records) -> None:
    _, data, _, _ = five_records
    (tmp_path / "z").mkdir()
    path = tmp_path / "z" / segment_name(0)
    path.write_bytes(data + bytes(4096))  # a crash can leave a zero-filled extension
    (tmp_path / "z" / COMMIT_NAME).write_bytes((five_records[0].parent / COMMIT_NAME).read_bytes())
    assert sorted(load(tmp_path / "z").tasks) == [0, 1, 2, 3, 4]
    assert path.stat().st_size == len(data)
    # The truncated journal takes appends again.
    state = await write(tmp_path / "z", [[enqueued(5)]])
    assert sorted(state.tasks) == sorted(load(tmp_path / "z").tasks) == list(range(6))


@pytest.mark.parametrize("record", [0, 2, 3])
@pytest.mark.parametrize("where", ["length", "crc", "payload"])
def test_corruption_before_the_tail_refuses_to_load(tmp_path: Path, five_records, record: int, where: str) -> None:
    _, data, spans, _ = five_records
    start, end = spans[record]
    pos = {"length": start, "crc": start + 5, "payload": (start + 8 + end) // 2}[where]
    damaged = bytearray(data)
    damaged[pos] ^= 0x5A
    path = tmp_path / segment_name(0)
    path.write_bytes(bytes(damaged))
    with pytest.raises(JournalCorrupt) as err:
        load(tmp_path)
    assert str(path) in str(err.value) and f"byte offset {start}" in str(err.value)
    assert path.read_bytes() == bytes(damaged), "a refused journal is left as it was"


def test_valid_checksum_but_unknown_record_refuses(tmp_path: Path) -> None:
    class Alien(msgspec.Struct, tag_field="rec", tag="from_the_future"):
        x: int

    payload = msgspec.msgpack.encode(Alien(1))
    framed = struct.pack("<II", len(payload), zlib.crc32(payload)) + payload
    good = msgspec.msgpack.encode(enqueued(0))
    framed_good = struct.pack("<II", len(good), zlib.crc32(good)) + good
    (tmp_path / segment_name(0)).write_bytes(framed_good + framed)
    with pytest.raises(JournalCorrupt, match=f"byte offset {len(framed_good)}"):
        load(tmp_path)


async def test_corrupt_snapshot_refuses(tmp_path: Path) -> None:
    journal = make(tmp_path)
    journal.load()
    async with trio.open_nursery() as nursery:
        await nursery.start(journal.run)
        await journal.append(enqueued(0))
        await journal.snapshot()
        await journal.aclose()
    snap = tmp_path / SNAPSHOT_NAME
    damaged = bytearray(snap.read_bytes())
    damaged[-3] ^= 1
    snap.write_bytes(bytes(damaged))
    with pytest.raises(JournalCorrupt, match=SNAPSHOT_NAME):
        load(tmp_path)


# --- snapshots and compaction ------------------------------------------------------------


def random_records(rng: random.Random, count: int) -> list[JournalRecord]:
    out: list[JournalRecord] = []
    uid = 0
    for _ in range(count):
        kind = rng.random()
        if kind < 0.35:
            out.append(enqueued(uid, index=rng.choice(["a", "b", None])))
            uid += 1
        elif kind < 0.6 and uid:
            status = rng.choice(["processing", "succeeded", "failed", "canceled"])
            out.append(TaskUpdated(uid=rng.randrange(uid), status=status, finished_at=f"t{rng.randrange(99)}",
                                   error={"code": "x"} if status == "failed" else None))
        elif kind < 0.7 and uid:
            out.append(TaskDeleted(uids=rng.sample(range(uid), k=min(uid, 3))))
        elif kind < 0.85:
            name = rng.choice(["a", "b", "c"])
            meta = IndexMeta(uid=name, primary_key=rng.choice(["id", None]), shards=rng.choice([1, 16]),
                             settings_version=rng.randrange(5), created_at="c", updated_at="u")
            out.append(IndexPut(meta=meta))
        elif kind < 0.9:
            out.append(IndexRemoved(uid=rng.choice(["a", "b", "c"])))
        elif kind < 0.97:
            nid = f"n{rng.randrange(4)}"
            out.append(NodePut(node=NodeMeta(id=nid, url=f"http://{nid}", group="g0",
                                             state=rng.choice(["joining", "active", "draining", "removed"]))))
        else:
            out.append(NodeRemoved(id=f"n{rng.randrange(4)}"))
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_snapshot_and_compaction_keep_state_identical(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    records = random_records(rng, 400)
    batches: list[list[JournalRecord]] = []
    i = 0
    while i < len(records):
        k = rng.randint(1, 6)
        batches.append(records[i : i + k])
        i += k

    full = await write(tmp_path / "full", batches)  # one segment, never compacted

    compacted = tmp_path / "compacted"
    journal = make(compacted, snapshot_every=37)
    journal.load()
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            await nursery.start(journal.run)
            for batch in batches:
                await journal.append(*batch)
                if rng.random() < 0.03:
                    await journal.snapshot()
            await journal.aclose()

    assert journal.state == full == load(tmp_path / "full") == load(compacted)
    names = sorted(p.name for p in compacted.iterdir() if p.name != COMMIT_NAME)
    assert len(names) == 2 and names[1] == SNAPSHOT_NAME and names[0].startswith("journal."), names
    assert names[0] != segment_name(0), "compaction happened and dropped the old segments"

    # Reopened, the compacted journal takes more appends and still replays identically.
    more = random_records(random.Random(seed + 100), 50)
    more = [r for r in more if not isinstance(r, TaskEnqueued)]  # keep task uids unique
    live = await write(compacted, [more], snapshot_every=37)
    assert live == load(compacted)


async def test_interrupted_compaction_leftovers_are_cleaned(tmp_path: Path) -> None:
    journal = make(tmp_path)
    journal.load()
    async with trio.open_nursery() as nursery:
        await nursery.start(journal.run)
        await journal.append(enqueued(0), enqueued(1))
        old_segment = (tmp_path / segment_name(0)).read_bytes()
        await journal.snapshot()
        await journal.append(enqueued(2))
        await journal.aclose()
    expected = journal.state
    # As if the crash came after the rename but before the old segment was deleted, and
    # a later compaction died before its own rename.
    (tmp_path / segment_name(0)).write_bytes(old_segment)
    (tmp_path / SNAPSHOT_TMP_NAME).write_bytes(b"half a snapshot")
    assert load(tmp_path) == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == [segment_name(1), COMMIT_NAME, SNAPSHOT_NAME]


def test_missing_snapshot_with_later_segments_refuses(tmp_path: Path) -> None:
    (tmp_path / segment_name(3)).write_bytes(b"")
    with pytest.raises(JournalCorrupt, match="missing"):
        load(tmp_path)


# --- concurrency and crashes -------------------------------------------------------------


async def test_concurrent_appends_all_durable_and_in_order(tmp_path: Path) -> None:
    producers, per_producer = 20, 25
    journal = make(tmp_path, snapshot_every=120)  # compactions interleave with the burst
    journal.load()

    async def produce(p: int) -> None:
        for i in range(per_producer):
            uid = p * 1000 + i
            recs = [enqueued(uid)] + ([TaskUpdated(uid=uid, status="processing")] if i % 3 == 0 else [])
            await journal.append(*recs)
            # Acknowledged means applied, in append order.
            assert journal.state.tasks[uid].status == ("processing" if i % 3 == 0 else "enqueued")

    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            await nursery.start(journal.run)
            async with trio.open_nursery() as producers_nursery:
                for p in range(producers):
                    producers_nursery.start_soon(produce, p)
            await journal.aclose()

    live = journal.state
    assert len(live.tasks) == producers * per_producer
    assert journal.stats.appends == producers * per_producer
    assert journal.stats.batches <= journal.stats.appends // 2, "group commit batches concurrent appends"
    assert journal.stats.snapshots >= 1
    for p in range(producers):  # each producer's records were applied in its order
        mine = [u for u in live.tasks if u // 1000 == p]
        assert mine == sorted(mine)
    reloaded = load(tmp_path)
    assert reloaded == live
    assert list(reloaded.tasks) == list(live.tasks), "replay order is the acknowledgement order"


async def test_write_copy_is_a_journal_that_loads_the_state_and_keeps_its_records(tmp_path: Path) -> None:
    """A cluster snapshot's copy of the journal (engine/snapshots.py): loading it rebuilds
    the state as of the copy, not what was appended after; it then takes appends."""
    live = tmp_path / "live"
    live.mkdir()
    journal = make(live, snapshot_every=3)
    journal.load()
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            await nursery.start(journal.run)
            for uid in range(5):  # a compaction in between: the copy starts from a snapshot
                await journal.append(enqueued(uid))
            await journal.write_copy(tmp_path / "copy")
            expected = msgspec.msgpack.encode(journal.state)
            await journal.append(enqueued(5))
            await journal.aclose()
    copied = make(tmp_path / "copy")
    state = copied.load()
    assert msgspec.msgpack.encode(state) == expected and 5 not in state.tasks
    assert copied.records == 5
    await write(tmp_path / "copy", [[enqueued(6)]])
    assert sorted(load(tmp_path / "copy").tasks) == [0, 1, 2, 3, 4, 6]
