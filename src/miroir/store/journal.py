"""The journal: durable, ordered records and the state they rebuild (design §8).

On disk, in one directory:

- ``journal.NNNNNN.log`` segments: records ``[u32 length][u32 crc32(payload)][payload]``,
  little-endian, payload = msgpack of one tagged ``msgspec.Struct`` of ``record_type``;
- ``state.snapshot``: one frame of the same shape whose payload is ``_Snapshot`` (the full
  state and the number of the segment that follows it);
- ``journal.commit``: the commit marker, where the last acknowledged record ends (segment,
  byte offset, record count, and the caller's high-water counter: Miroir's next task uid).
  Two fixed-size checksummed slots, written alternately and fdatasync'ed after every group
  commit and every snapshot, before any caller is acknowledged: a torn slot write leaves
  the other slot, one commit older, intact.

Recovery = snapshot + replay of the segments numbered from the one it names. Segments
older than the snapshot are leftovers of an interrupted compaction and are deleted.

A crash can only damage the end of the last segment (the appends of the batch that was
being written). So a bad frame there, past the marker's position, that no valid frame
follows is a torn tail: never acknowledged, dropped with a warning, the file truncated to
the last good record. A bad frame followed by a valid one, or in any other file, is real
corruption: ``JournalCorrupt`` naming file and offset. So is a journal that ends before
the marker's position (a truncated or emptied segment, a missing segment or snapshot):
acknowledged records are gone, and starting from what is left would hand out task uids
clients already hold (issue 20). ``load(salvage=True)`` is the operator's way out
(``miroir serve --recover``): it keeps what replays, moves every journal file aside to
``damaged.<time>/`` and starts a new snapshot from the salvaged state.

Durability: one writer task (``run``) batches all pending appends, writes them with one
``write`` and one ``fsync`` (group commit) in a worker thread, then applies them to the
state in order; a marker task moves the commit marker past them (one ``fdatasync``,
overlapping the next group commit's write) and then wakes the callers, in order. State only
ever holds durable records, so it always equals a replay of the journal.
"""

from __future__ import annotations

import os
import re
import struct
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import msgspec
import structlog
import trio

from miroir.instruments import HOT

log = structlog.get_logger("miroir.journal")

SNAPSHOT_NAME = "state.snapshot"
SNAPSHOT_TMP_NAME = "state.snapshot.tmp"
COMMIT_NAME = "journal.commit"
COMMIT_TMP_NAME = "journal.commit.tmp"
DAMAGED_PREFIX = "damaged."
# Bytes of records after which a snapshot starts a new segment (besides `snapshot_every`
# records): the journal stays bounded on disk when records carry whole write batches.
SNAPSHOT_BYTES = 256 * 2**20
# A commit-marker slot: magic, seq, segment, offset, records, high water; then crc32.
_MARK = struct.Struct("<4sQIQQQ")
_MARK_MAGIC = b"MJC1"
_SLOT = _MARK.size + 4
_SEGMENT_RE = re.compile(r"^journal\.(\d{6,})\.log$")
_HEADER = struct.Struct("<II")  # length, crc32 of the payload
# A larger length field can only be damage; it also bounds the work of the tail scan.
MAX_RECORD_BYTES = 256 * 1024 * 1024
# Bumped if the envelope itself changes shape; records evolve through their tags.
SNAPSHOT_FORMAT = 1

S = TypeVar("S")


class JournalError(Exception):
    """The journal cannot take appends (writer died, closed, or never started)."""


class JournalCorrupt(JournalError):
    """Damage before the tail: the journal cannot be replayed as is (start refused)."""


class JournalDamaged(JournalCorrupt):
    """The journal ends before its last acknowledged record (truncated, emptied or deleted
    segment, deleted snapshot): starting would forget acknowledged writes."""


class CommitMark(msgspec.Struct, frozen=True):
    """Where the last acknowledged record ends, as of the last group commit."""

    seq: int  # commit number; the slot with the higher one is the newer
    segment: int
    offset: int  # byte offset in `segment` where the last acknowledged record ends
    records: int  # records acknowledged since the journal began
    high_water: int  # the caller's counter that must never go back (Miroir: next task uid)

    def encode(self) -> bytes:
        body = _MARK.pack(_MARK_MAGIC, self.seq, self.segment, self.offset, self.records, self.high_water)
        return body + struct.pack("<I", zlib.crc32(body))


def _decode_mark(slot: bytes) -> CommitMark | None:
    if len(slot) != _SLOT or zlib.crc32(slot[: _MARK.size]) != struct.unpack_from("<I", slot, _MARK.size)[0]:
        return None
    magic, seq, segment, offset, records, high_water = _MARK.unpack_from(slot)
    if magic != _MARK_MAGIC:
        return None
    return CommitMark(seq, segment, offset, records, high_water)


class Salvage(msgspec.Struct):
    """What ``load(salvage=True)`` kept and what it found damaged."""

    damage: list[str]  # one line per damaged or missing file
    records: int  # records replayed
    mark: CommitMark | None  # the marker as found (its high water survives a lost tail)
    moved_to: str | None  # where the old journal files were moved
    finished: bool = False  # finish_salvage() ran: the salvaged state is on disk


class JournalStats(msgspec.Struct):
    """Counters since this process started (for /_miroir/metrics and tests)."""

    appends: int = 0  # append() calls acknowledged
    records: int = 0  # records acknowledged
    batches: int = 0  # write+fsync rounds: appends / batches is the group-commit factor
    snapshots: int = 0


class _Snapshot(msgspec.Struct, Generic[S]):
    format: int
    segment: int  # the segment that follows this snapshot
    records: int  # records folded into the state since the beginning (diagnostics)
    state: S


def segment_name(n: int) -> str:
    return f"journal.{n:06d}.log"


def frame(payload: bytes) -> bytes:
    assert 0 < len(payload) <= MAX_RECORD_BYTES
    return _HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def _frame_at(data: bytes | memoryview, off: int) -> int | None:
    """Length of the valid payload starting at ``off``, or None if no valid frame is there."""
    if len(data) - off < _HEADER.size:
        return None
    length: int
    crc: int
    length, crc = _HEADER.unpack_from(data, off)
    start = off + _HEADER.size
    # length 0 is never written; refusing it also keeps zero-filled garbage invalid.
    if length == 0 or length > MAX_RECORD_BYTES or start + length > len(data):
        return None
    if zlib.crc32(data[start : start + length]) != crc:
        return None
    return length


def _cut_short(data: bytes | memoryview, off: int) -> bool:
    """Does the file end inside the frame at ``off`` (a truncation, not a bad checksum)?"""
    if len(data) - off < _HEADER.size:
        return True
    length: int = _HEADER.unpack_from(data, off)[0]
    return 0 < length <= MAX_RECORD_BYTES and off + _HEADER.size + length > len(data)


def _any_frame_after(data: bytes | memoryview, off: int) -> bool:
    """Does a valid frame start anywhere after ``off``? Tells torn tail from corruption."""
    return any(_frame_at(data, p) is not None for p in range(off + 1, len(data) - _HEADER.size + 1))


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class _Pending:
    """Appends of one ``append`` call, or a snapshot request (``frames is None``)."""

    frames: bytes | None
    records: list[Any]
    done: trio.Event = field(default_factory=trio.Event)
    error: BaseException | None = None


class Journal(Generic[S]):
    """Append-only record log with group commit, snapshots and crash recovery.

    ``record_type`` is a (union of) tagged msgspec Struct(s), ``state_type`` a msgspec
    Struct, ``apply(state, record)`` mutates the state and must not raise for a
    well-typed record, ``initial()`` makes an empty state. Use: ``load()`` (sync), then
    ``await nursery.start(j.run)``; ``append`` / ``snapshot`` while it runs; ``aclose()``
    flushes and stops it. ``run`` owns the open segment file and closes it on exit.
    """

    def __init__(
        self,
        directory: Path,
        *,
        record_type: Any,
        state_type: type[S],
        apply: Callable[[S, Any], None],
        initial: Callable[[], S],
        snapshot_every: int = 10_000,
        snapshot_bytes: int = SNAPSHOT_BYTES,
        high_water: Callable[[S], int] | None = None,
    ) -> None:
        assert snapshot_every > 0
        self.directory = Path(directory)
        self._apply = apply
        self._initial = initial
        self._snapshot_every = snapshot_every
        self._snapshot_bytes = snapshot_bytes
        self._encoder = msgspec.msgpack.Encoder()
        self._record_decoder = msgspec.msgpack.Decoder(record_type)
        self._snapshot_type = _Snapshot[state_type]  # type: ignore[valid-type]
        self._snapshot_decoder = msgspec.msgpack.Decoder(self._snapshot_type)
        self._state: S | None = None
        self._segment = 0  # number of the segment appends go to
        self._total_records = 0
        self._since_snapshot = 0  # records in the segments after the snapshot
        self._pending: list[_Pending] = []
        self._wakeup = trio.Event()
        self._closing = False
        self._running = False
        self._stopped = trio.Event()
        self._dead: BaseException | None = None  # why appends are refused, once set
        self._file: Any = None  # the open segment, owned by run()
        self._offset = 0  # bytes in the open segment (where the next record starts)
        self._high_water = high_water
        self._mark_seq = 0
        self._mark_fd: int | None = None  # journal.commit, owned by run()
        # Written group commits waiting for the marker task: (marker, their appends).
        self._unacked: list[tuple[CommitMark, list[_Pending]]] = []
        self._mark_wakeup = trio.Event()
        self._writer_done = False
        self.mark: CommitMark | None = None  # as load() found (or created) it
        self.salvage: Salvage | None = None  # set by load(salvage=True) when it salvaged
        self.stats = JournalStats()

    # --- loading -----------------------------------------------------------------------

    @property
    def records(self) -> int:
        """Records in the journal since it began (0: a new journal)."""
        return self._total_records

    @property
    def state(self) -> S:
        assert self._state is not None, "Journal.load() first"
        return self._state

    def load(self, *, salvage: bool = False) -> S:
        """Snapshot + replay; truncate a torn tail. Blocking; call once, before ``run``.

        Raises ``JournalCorrupt`` (``JournalDamaged`` when acknowledged records are
        missing) naming the file and byte offset, and leaves every file as it was. With
        ``salvage`` it never raises for damage: it replays what it can and sets
        ``self.salvage``; then ``finish_salvage`` must run before ``run``.
        """
        assert self._state is None, "load() twice"
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.directory / SNAPSHOT_TMP_NAME
        if tmp.exists():  # a compaction died before its rename: the old files are whole
            tmp.unlink()
        (self.directory / COMMIT_TMP_NAME).unlink(missing_ok=True)  # the first marker's rename never happened
        if salvage:
            try:
                return self._load_checked()
            except JournalCorrupt as exc:
                self._state, self._total_records, self._since_snapshot = None, 0, 0
                return self._load_salvaged(str(exc))
        return self._load_checked()

    def _load_checked(self) -> S:
        mark = self.mark = self._read_mark()
        state, first, snap_records = self._load_snapshot(mark)
        segments = self._segments()
        live = [n for n in segments if n >= first]
        if live and live != list(range(first, first + len(live))):
            gap = next(n for n in range(first, live[-1] + 1) if n not in live)
            raise JournalDamaged(
                f"{self.directory / segment_name(gap)}: missing at byte offset 0 "
                f"(journal segments {live} do not follow the snapshot's segment {first})"
            )
        self._check_mark_against_files(mark, first, snap_records, live)
        torn: tuple[Path, int, int] | None = None
        end = mark_end = 0
        for i, n in enumerate(live):
            path = self.directory / segment_name(n)
            # The marker's segment is acknowledged up to its offset; later ones not at all.
            acked = mark.offset if mark is not None and n == mark.segment else 0
            if mark is not None and n < mark.segment:
                acked = -1  # every byte of it precedes the marker's position
            end, bad = self._replay_segment(state, path, last=i == len(live) - 1, acked=acked)
            if bad is not None:
                torn = (path, bad, len(path.read_bytes()))
            if mark is not None and n == mark.segment:
                mark_end = end
        if mark is not None and mark.segment in live and mark_end < mark.offset:
            raise JournalDamaged(
                f"{self.directory / segment_name(mark.segment)}: ends at byte offset {mark_end}, before the last "
                f"acknowledged record ends at byte offset {mark.offset} ({self.directory / COMMIT_NAME}): "
                f"acknowledged records are missing"
            )
        if mark is not None and self._total_records < mark.records:
            raise JournalDamaged(
                f"{self.directory}: the journal replays {self._total_records} records, but {mark.records} were "
                f"acknowledged ({self.directory / COMMIT_NAME} at byte offset 0)"
            )
        # Only now, the journal accepted: drop compaction leftovers and the torn tail.
        for n in [n for n in segments if n < first]:
            (self.directory / segment_name(n)).unlink()  # already folded into the snapshot
        if torn is not None:
            path, off, size = torn
            log.warning("journal.torn_tail_dropped", file=str(path), offset=off, dropped_bytes=size - off)
            with open(path, "r+b") as f:
                f.truncate(off)
                os.fsync(f.fileno())
        self._segment = live[-1] if live else first
        self._offset = end if live else 0
        self._state = state
        if mark is None:
            if live or (self.directory / SNAPSHOT_NAME).exists():
                # A journal from before the marker existed (or the marker alone deleted).
                log.warning("journal.commit_marker_created", file=str(self.directory / COMMIT_NAME))
            self._create_mark()
        log.info("journal.loaded", directory=str(self.directory), segment=self._segment, records=self._total_records)
        return state

    def _check_mark_against_files(
        self, mark: CommitMark | None, first: int, snap_records: int, live: list[int]
    ) -> None:
        """Files missing where the marker says acknowledged records are."""
        if mark is None:
            return
        marker = self.directory / COMMIT_NAME
        if mark.segment < first:
            # The snapshot is newer than the marker (crash between its rename and the
            # marker update): it must hold at least what the marker acknowledged.
            if snap_records < mark.records:
                raise JournalDamaged(
                    f"{self.directory / SNAPSHOT_NAME}: holds {snap_records} records, but {mark.records} were "
                    f"acknowledged through {segment_name(mark.segment)} byte offset {mark.offset} ({marker})"
                )
            return
        if mark.segment not in live and (mark.offset > 0 or mark.records > snap_records):
            raise JournalDamaged(
                f"{self.directory / segment_name(mark.segment)}: missing, but {mark.records} records were "
                f"acknowledged through its byte offset {mark.offset} ({marker})"
            )

    def _read_mark(self) -> CommitMark | None:
        path = self.directory / COMMIT_NAME
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        marks = [m for m in (_decode_mark(data[i * _SLOT : (i + 1) * _SLOT]) for i in range(2)) if m is not None]
        if not marks:
            raise JournalCorrupt(f"{path}: no valid commit record at byte offset 0 or {_SLOT}")
        return max(marks, key=lambda m: m.seq)

    def _load_snapshot(self, mark: CommitMark | None = None) -> tuple[S, int, int]:
        path = self.directory / SNAPSHOT_NAME
        if not path.exists():
            later = [n for n in self._segments() if n > 0]
            # (A marker in segment 0 means no snapshot was ever written: the segment check
            # names what is missing then.)
            if later or (mark is not None and mark.segment > 0 and not self._segments()):
                # Only a compaction creates segment n > 0, and only after its snapshot is durable.
                where = (
                    f"{mark.records} records were acknowledged through {segment_name(mark.segment)} "
                    f"byte offset {mark.offset} ({self.directory / COMMIT_NAME})"
                    if mark is not None
                    else f"later journal segments exist ({segment_name(later[0])})"
                )
                raise JournalDamaged(f"{path}: missing at byte offset 0, but {where}")
            return self._initial(), 0, 0
        data = path.read_bytes()
        length = _frame_at(data, 0)
        if length is None or _HEADER.size + length != len(data):
            raise JournalCorrupt(f"{path}: corrupt snapshot at byte offset 0")
        try:
            snap = self._snapshot_decoder.decode(data[_HEADER.size :])
        except msgspec.DecodeError as exc:
            raise JournalCorrupt(f"{path}: undecodable snapshot at byte offset 0: {exc}") from exc
        if snap.format != SNAPSHOT_FORMAT:
            raise JournalCorrupt(f"{path}: snapshot format {snap.format}, expected {SNAPSHOT_FORMAT}")
        self._total_records = snap.records
        return snap.state, snap.segment, snap.records

    def _segments(self) -> list[int]:
        found = (_SEGMENT_RE.match(p.name) for p in self.directory.iterdir())
        return sorted(int(m.group(1)) for m in found if m)

    def _replay_segment(self, state: S, path: Path, *, last: bool, acked: int) -> tuple[int, int | None]:
        """Apply the records of one segment; returns (end of the last good record, offset
        of a torn tail to drop or None). ``acked``: bytes before it were acknowledged (-1:
        all of them), so damage there is never a torn tail."""
        data = memoryview(path.read_bytes())
        off = 0
        while off < len(data):
            length = _frame_at(data, off)
            if length is None:
                if last and acked != -1 and off >= acked and not _any_frame_after(data, off):
                    return off, off
                why = "" if acked == -1 or off >= acked else f", before the last acknowledged record ends at byte offset {acked}"
                if _cut_short(data, off):
                    raise JournalDamaged(f"{path}: cut short at byte offset {len(data)}, inside the record at byte offset {off}{why}")
                raise JournalCorrupt(f"{path}: corrupt record at byte offset {off}{why}")
            start = off + _HEADER.size
            try:
                record = self._record_decoder.decode(data[start : start + length])
            except msgspec.DecodeError as exc:
                # The checksum matched: these bytes are what was written, and this version
                # cannot read them (unknown record tag?). Never drop them silently.
                raise JournalCorrupt(f"{path}: undecodable record at byte offset {off}: {exc}") from exc
            self._apply(state, record)
            self._total_records += 1
            self._since_snapshot += 1
            off = start + length
        return off, None

    # --- salvage (operator's consent: `miroir serve --recover`) -----------------------

    def _load_salvaged(self, why: str) -> S:
        """Replay every valid record there is, move the files aside, restart from a snapshot."""
        damage = [why]
        try:
            mark = self._read_mark()
        except JournalCorrupt as exc:
            damage.append(str(exc))
            mark = None
        state: S | None = None
        first = 0
        try:
            state, first, _ = self._load_snapshot()
        except JournalCorrupt as exc:
            damage.append(str(exc))
            self._total_records = 0
        if state is None:
            state = self._initial()
        segments = self._segments()
        for n in [n for n in segments if n >= first]:  # older ones are in the snapshot already
            path = self.directory / segment_name(n)
            data = memoryview(path.read_bytes())
            off = 0
            while off < len(data):
                rec, length = self._decode_at(data, off)
                if rec is None:
                    # Skip the damage: the next record that checks and decodes goes on.
                    # Handlers are total, so a record whose predecessor is lost is safe.
                    nxt = next((q for q in range(off + 1, len(data)) if self._decode_at(data, q)[0] is not None), None)
                    end = len(data) if nxt is None else nxt
                    damage.append(f"{path}: bytes {off} to {end} of {len(data)} skipped (byte offset {off})")
                    if nxt is None:
                        break
                    off = nxt
                    continue
                self._apply(state, rec)
                self._total_records += 1
                off += _HEADER.size + length
        self._state = state
        self._segment = max([*segments, first, mark.segment if mark is not None else 0]) + 1
        self._offset = 0
        self._since_snapshot = 0
        self.salvage = Salvage(damage=damage, records=self._total_records, mark=mark, moved_to=None)
        return state

    def _decode_at(self, data: memoryview, off: int) -> tuple[Any, int]:
        """(record, payload length) of a valid, decodable frame at ``off``, else (None, 0)."""
        length = _frame_at(data, off)
        if length is None:
            return None, 0
        try:
            return self._record_decoder.decode(data[off + _HEADER.size : off + _HEADER.size + length]), length
        except msgspec.DecodeError:
            return None, 0

    def finish_salvage(self, records: list[Any]) -> None:
        """Make the salvaged state, plus ``records``, the journal's new beginning.

        Until this runs nothing on disk has changed: a recovery that fails before (a node
        probe) leaves the damaged journal as it was, and the next start refuses it again.
        The new snapshot is the one commit point: it holds the records that make the
        recovery safe (the raised task counter), so no start can see the one without
        the other. Blocking; after ``load(salvage=True)`` salvaged, before ``run``.
        """
        assert self.salvage is not None and not self.salvage.finished and not self._running
        state = self.state
        for rec in records:
            self._apply(state, self._record_decoder.decode(self._encoder.encode(rec)))
        self._total_records += len(records)
        snap = self._snapshot_type(format=SNAPSHOT_FORMAT, segment=self._segment, records=self._total_records, state=state)
        tmp = self.directory / SNAPSHOT_TMP_NAME
        with open(tmp, "wb") as f:
            f.write(frame(self._encoder.encode(snap)))
            os.fsync(f.fileno())
        moved = self._move_aside()
        os.replace(tmp, self.directory / SNAPSHOT_NAME)
        _fsync_dir(self.directory)
        self._create_mark()
        self.salvage.moved_to = moved
        self.salvage.records = self._total_records
        self.salvage.finished = True
        for line in self.salvage.damage:
            log.warning("journal.salvaged", damage=line, records=self._total_records, moved_to=moved)

    def _move_aside(self) -> str | None:
        """Move every journal file into ``damaged.<UTC time>/`` (kept for the operator)."""
        names = [
            p.name
            for p in self.directory.iterdir()
            if p.name in (SNAPSHOT_NAME, COMMIT_NAME) or _SEGMENT_RE.match(p.name)
        ]
        if not names:
            return None
        target = self.directory / (DAMAGED_PREFIX + time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))
        n = 1
        while target.exists():
            n += 1
            target = target.with_name(f"{target.name.split('-')[0]}-{n}")
        target.mkdir()
        for name in names:
            os.replace(self.directory / name, target / name)
        _fsync_dir(target)
        _fsync_dir(self.directory)
        return str(target)

    # --- the commit marker --------------------------------------------------------------

    def _mark_now(self) -> CommitMark:
        self._mark_seq += 1
        hw = self._high_water(self._state) if self._high_water is not None and self._state is not None else 0
        return CommitMark(self._mark_seq, self._segment, self._offset, self._total_records, hw)

    def _create_mark(self) -> None:
        """A new marker file, whole or absent after a crash (tmp + rename)."""
        if self.mark is not None:
            self._mark_seq = self.mark.seq
        m = self._mark_now()
        tmp = self.directory / COMMIT_TMP_NAME
        with open(tmp, "wb") as f:
            f.write(m.encode() + m.encode())
            os.fsync(f.fileno())
        os.replace(tmp, self.directory / COMMIT_NAME)
        _fsync_dir(self.directory)
        self.mark = m

    def _open_mark(self) -> None:
        self._mark_fd = os.open(self.directory / COMMIT_NAME, os.O_WRONLY | os.O_CLOEXEC)
        if self.mark is not None:
            self._mark_seq = max(self._mark_seq, self.mark.seq)

    def _write_mark(self, m: CommitMark) -> None:
        """One slot (the older one), then fdatasync: the size never changes."""
        assert self._mark_fd is not None
        os.pwrite(self._mark_fd, m.encode(), (m.seq % 2) * _SLOT)
        os.fdatasync(self._mark_fd)

    # --- the writer --------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The writer task: group commit of appends, automatic snapshots.

        Runs until ``aclose()``. If writing fails (disk full, fsync error) the file's
        content is unknown: every pending and later append fails with ``JournalError``
        and the error propagates out of ``run`` so its supervisor stops the daemon.
        """
        assert self._state is not None, "Journal.load() before run()"
        assert not self._running, "run() twice"
        assert self.salvage is None or self.salvage.finished, "finish_salvage() before run()"
        self._running = True
        try:
            await trio.to_thread.run_sync(self._open_segment)
            await trio.to_thread.run_sync(self._open_mark)
            async with trio.open_nursery() as nursery:
                # The marker is written by its own task: while it syncs the marker of one
                # group commit, the next group commit already writes its segment.
                nursery.start_soon(self._mark_loop)
                task_status.started()
                try:
                    await self._write_loop()
                finally:
                    self._writer_done = True
                    self._mark_wakeup.set()
        except BaseException as exc:
            self._fail(exc)
            raise
        finally:
            if self._dead is None:
                self._dead = JournalError("journal closed")
            self._fail_unacked()
            if self._file is not None:
                self._file.close()
                self._file = None
            if self._mark_fd is not None:
                os.close(self._mark_fd)
                self._mark_fd = None
            self._stopped.set()

    async def _write_loop(self) -> None:
        while True:
            while not self._pending and not self._closing:
                self._wakeup = trio.Event()
                await self._wakeup.wait()
            if not self._pending:  # closing, everything written (the marker task finishes)
                return
            batch, self._pending = self._pending, []
            await self._commit(batch)
            # The open segment holds every record since the snapshot: bounded in records
            # and in bytes (write intents carry whole batches, engine/intents.py).
            if self._since_snapshot >= self._snapshot_every or self._offset >= self._snapshot_bytes:
                await self._do_snapshot()

    async def _mark_loop(self) -> None:
        """Move the commit marker past what is written, then acknowledge it, in order.

        Several group commits waiting are covered by one marker write (the newest)."""
        while True:
            while not self._unacked:
                if self._writer_done:
                    return
                self._mark_wakeup = trio.Event()
                await self._mark_wakeup.wait()
            items = list(self._unacked)
            await trio.to_thread.run_sync(self._write_mark, items[-1][0])
            del self._unacked[: len(items)]
            for _, run in items:
                for p in run:
                    self.stats.appends += 1
                    self.stats.records += len(p.records)
                    p.done.set()

    def _fail_unacked(self) -> None:
        """Appends written but whose marker may not be: their callers get the error."""
        for _, run in self._unacked:
            for p in run:
                if not p.done.is_set():
                    p.error = self._dead
                    p.done.set()
        self._unacked = []

    def _fail(self, exc: BaseException) -> None:
        self._dead = JournalError(f"journal writer died: {exc!r}")
        self._dead.__cause__ = exc
        for p in self._pending:
            p.error = self._dead
            p.done.set()
        self._pending = []

    async def _commit(self, batch: list[_Pending]) -> None:
        """Write runs of appends with one fsync each; snapshot requests in their place."""
        i = 0
        try:
            while i < len(batch):
                if batch[i].frames is None:
                    await self._do_snapshot()
                    batch[i].done.set()
                    i += 1
                    continue
                j = i
                while j < len(batch) and batch[j].frames is not None:
                    j += 1
                run = batch[i:j]
                data = b"".join(p.frames for p in run)  # type: ignore[misc]
                t0 = time.perf_counter()
                await trio.to_thread.run_sync(self._write, data)
                HOT.journal_commit.observe(time.perf_counter() - t0)
                self._offset += len(data)
                self.stats.batches += 1
                # Durable now: fold into the state in write order. The marker task moves
                # the marker past them (so a later truncation of the segment is detected),
                # then acknowledges them.
                for p in run:
                    for rec in p.records:
                        self._apply(self.state, rec)
                    self._total_records += len(p.records)
                    self._since_snapshot += len(p.records)
                self._unacked.append((self._mark_now(), run))
                self._mark_wakeup.set()
                i = j
        except BaseException:
            self._pending = [p for p in batch[i:] if not p.done.is_set()] + self._pending  # _fail wakes them
            raise

    def _open_segment(self) -> None:
        path = self.directory / segment_name(self._segment)
        existed = path.exists()
        self._file = open(path, "ab", buffering=0)  # noqa: SIM115 - closed by run()'s finally or the next snapshot
        if not existed:
            _fsync_dir(self.directory)  # the new name must survive a crash too

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:  # raw file: write() may be partial
            view = view[self._file.write(view) :]
        os.fsync(self._file.fileno())

    async def _do_snapshot(self) -> None:
        # Encoded on the event loop: no other task can touch the state while it is read.
        snap = self._snapshot_type(
            format=SNAPSHOT_FORMAT, segment=self._segment + 1, records=self._total_records, state=self.state
        )
        data = frame(self._encoder.encode(snap))
        await trio.to_thread.run_sync(self._write_snapshot, data)
        # The marker follows (a marker behind a snapshot is consistent: see load).
        self._unacked.append((self._mark_now(), []))
        self._mark_wakeup.set()
        self._since_snapshot = 0
        self.stats.snapshots += 1
        log.info("journal.snapshot", directory=str(self.directory), segment=self._segment, bytes=len(data))

    def _write_snapshot(self, data: bytes) -> None:
        tmp = self.directory / SNAPSHOT_TMP_NAME
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.directory / SNAPSHOT_NAME)
        _fsync_dir(self.directory)
        # The snapshot is durable: switch to the segment it names, drop the older ones.
        old = self._segment
        self._file.close()
        self._file = None
        self._segment = old + 1
        self._offset = 0
        self._open_segment()
        for n in self._segments():
            if n <= old:
                (self.directory / segment_name(n)).unlink()

    async def write_copy(self, directory: str | Path, state: S | None = None) -> None:
        """A journal directory holding ``state`` (default: the state now) as its snapshot and
        a commit marker at its end: what ``load`` of that directory rebuilds (a cluster
        snapshot's copy of Miroir's journal). Encoded here, on the event loop, so the state
        cannot change while it is read; written in a worker thread."""
        state = self.state if state is None else state
        snap = self._snapshot_type(format=SNAPSHOT_FORMAT, segment=1, records=self._total_records, state=state)
        data = frame(self._encoder.encode(snap))
        hw = self._high_water(state) if self._high_water is not None else 0
        mark = CommitMark(1, 1, 0, self._total_records, hw).encode()
        await trio.to_thread.run_sync(_write_copy, Path(directory), data, mark)

    # --- the callers' side -------------------------------------------------------------

    async def append(self, *records: Any) -> None:
        """Return once ``records`` are fsynced and applied to ``state``, in call order.

        Raises ``JournalError`` if the writer is not running or died. If the caller is
        cancelled while waiting, the records may still become durable (and applied).
        """
        if not records:
            return
        durable = self.append_queued(*records)
        t0 = time.perf_counter()
        await durable()
        HOT.journal_append.observe(time.perf_counter() - t0)

    def append_queued(self, *records: Any) -> Callable[[], Awaitable[None]]:
        """Queue ``records`` now, before any later append (the order of the log), and
        return what waits until they are durable and applied, as ``append`` does.

        Lets a caller release a lock before the fsync: what it appends next under that
        lock is written after these records, in the same group commit or a later one.
        """
        self._check_alive()
        payloads = [self._encoder.encode(r) for r in records]
        # Apply decoded copies: the state never aliases the caller's objects and holds
        # exactly what a replay would rebuild. Also rejects what could not be replayed.
        # A record type with `APPLY_ORIGINAL` is applied as given: its caller never
        # changes it afterwards, and it is too big to copy on every write (a write
        # intent holds the whole batch, core/model.py).
        copies = [
            r if getattr(r, "APPLY_ORIGINAL", False) else self._record_decoder.decode(p)
            for r, p in zip(records, payloads, strict=True)
        ]
        pending = _Pending(b"".join(frame(p) for p in payloads), copies)
        self._queue(pending)

        async def durable() -> None:
            await self._wait(pending)

        return durable

    async def snapshot(self) -> None:
        """Write a snapshot of everything appended before, start a new segment, drop the old."""
        self._check_alive()
        await self._submit(_Pending(None, []))

    async def aclose(self) -> None:
        """Flush pending appends, fsync, stop the writer and wait until it has stopped."""
        self._closing = True
        self._wakeup.set()
        if self._running:
            await self._stopped.wait()

    def _check_alive(self) -> None:
        if self._dead is not None:
            raise self._dead
        if self._closing:
            raise JournalError("journal closed")
        if not self._running:
            raise JournalError("journal writer not started")

    async def _submit(self, pending: _Pending) -> None:
        self._queue(pending)
        await self._wait(pending)

    def _queue(self, pending: _Pending) -> None:
        self._pending.append(pending)
        self._wakeup.set()

    @staticmethod
    async def _wait(pending: _Pending) -> None:
        await pending.done.wait()
        if pending.error is not None:
            raise pending.error


def _write_copy(directory: Path, snapshot: bytes, mark: bytes) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in ((SNAPSHOT_NAME, snapshot), (COMMIT_NAME, mark + mark)):
        with open(directory / name, "wb") as f:
            f.write(data)
            os.fsync(f.fileno())
    _fsync_dir(directory)
