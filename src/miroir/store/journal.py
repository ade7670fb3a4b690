"""The journal: durable, ordered records and the state they rebuild (design §8).

On disk, in one directory:

- ``journal.NNNNNN.log`` segments: records ``[u32 length][u32 crc32(payload)][payload]``,
  little-endian, payload = msgpack of one tagged ``msgspec.Struct`` of ``record_type``;
- ``state.snapshot``: one frame of the same shape whose payload is ``_Snapshot`` (the full
  state and the number of the segment that follows it).

Recovery = snapshot + replay of the segments numbered from the one it names. Segments
older than the snapshot are leftovers of an interrupted compaction and are deleted.

A crash can only damage the end of the last segment (the appends of the batch that was
being written). So a bad frame there that no valid frame follows is a torn tail: dropped
with a warning, the file truncated to the last good record. A bad frame followed by a valid
one, or in any other file, is real corruption: ``JournalCorrupt`` naming file and offset.

Durability: one writer task (``run``) batches all pending appends, writes them with one
``write`` and one ``fsync`` (group commit) in a worker thread, then applies them to the
state in order and wakes the callers. State only ever holds durable records, so it always
equals a replay of the journal.
"""

from __future__ import annotations

import os
import re
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import msgspec
import structlog
import trio

log = structlog.get_logger("miroir.journal")

SNAPSHOT_NAME = "state.snapshot"
SNAPSHOT_TMP_NAME = "state.snapshot.tmp"
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
    length, crc = _HEADER.unpack_from(data, off)
    start = off + _HEADER.size
    # length 0 is never written; refusing it also keeps zero-filled garbage invalid.
    if length == 0 or length > MAX_RECORD_BYTES or start + length > len(data):
        return None
    if zlib.crc32(data[start : start + length]) != crc:
        return None
    return length


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
    ) -> None:
        assert snapshot_every > 0
        self.directory = Path(directory)
        self._apply = apply
        self._initial = initial
        self._snapshot_every = snapshot_every
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
        self.stats = JournalStats()

    # --- loading -----------------------------------------------------------------------

    @property
    def state(self) -> S:
        assert self._state is not None, "Journal.load() first"
        return self._state

    def load(self) -> S:
        """Snapshot + replay; truncate a torn tail. Blocking; call once, before ``run``."""
        assert self._state is None, "load() twice"
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.directory / SNAPSHOT_TMP_NAME
        if tmp.exists():  # a compaction died before its rename: the old files are whole
            tmp.unlink()
        state, first = self._load_snapshot()
        segments = self._segments()
        for n in [n for n in segments if n < first]:
            (self.directory / segment_name(n)).unlink()  # already folded into the snapshot
        live = [n for n in segments if n >= first]
        if live and live != list(range(first, first + len(live))):
            raise JournalCorrupt(
                f"{self.directory}: journal segments {live} do not follow the snapshot's segment {first}"
            )
        for i, n in enumerate(live):
            self._replay_segment(state, self.directory / segment_name(n), last=i == len(live) - 1)
        self._segment = live[-1] if live else first
        self._state = state
        log.info("journal.loaded", directory=str(self.directory), segment=self._segment, records=self._total_records)
        return state

    def _load_snapshot(self) -> tuple[S, int]:
        path = self.directory / SNAPSHOT_NAME
        if not path.exists():
            if any(n > 0 for n in self._segments()):
                # Only a compaction creates segment n > 0, and only after its snapshot is durable.
                raise JournalCorrupt(f"{path}: missing, but later journal segments exist")
            return self._initial(), 0
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
        return snap.state, snap.segment

    def _segments(self) -> list[int]:
        found = (_SEGMENT_RE.match(p.name) for p in self.directory.iterdir())
        return sorted(int(m.group(1)) for m in found if m)

    def _replay_segment(self, state: S, path: Path, *, last: bool) -> None:
        data = memoryview(path.read_bytes())
        off = 0
        while off < len(data):
            length = _frame_at(data, off)
            if length is None:
                if last and not _any_frame_after(data, off):
                    log.warning(
                        "journal.torn_tail_dropped", file=str(path), offset=off, dropped_bytes=len(data) - off
                    )
                    with open(path, "r+b") as f:
                        f.truncate(off)
                        os.fsync(f.fileno())
                    return
                raise JournalCorrupt(f"{path}: corrupt record at byte offset {off}")
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

    # --- the writer --------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The writer task: group commit of appends, automatic snapshots.

        Runs until ``aclose()``. If writing fails (disk full, fsync error) the file's
        content is unknown: every pending and later append fails with ``JournalError``
        and the error propagates out of ``run`` so its supervisor stops the daemon.
        """
        assert self._state is not None, "Journal.load() before run()"
        assert not self._running, "run() twice"
        self._running = True
        try:
            await trio.to_thread.run_sync(self._open_segment)
            task_status.started()
            while True:
                while not self._pending and not self._closing:
                    self._wakeup = trio.Event()
                    await self._wakeup.wait()
                if not self._pending:  # closing, everything flushed
                    return
                batch, self._pending = self._pending, []
                await self._commit(batch)
                if self._since_snapshot >= self._snapshot_every:
                    await self._do_snapshot()
        except BaseException as exc:
            self._fail(exc)
            raise
        finally:
            if self._dead is None:
                self._dead = JournalError("journal closed")
            if self._file is not None:
                self._file.close()
                self._file = None
            self._stopped.set()

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
                await trio.to_thread.run_sync(self._write, b"".join(p.frames for p in run))  # type: ignore[misc]
                self.stats.batches += 1
                # Durable now: fold into the state in write order, then acknowledge.
                for p in run:
                    for rec in p.records:
                        self._apply(self.state, rec)
                    self._total_records += len(p.records)
                    self._since_snapshot += len(p.records)
                    self.stats.appends += 1
                    self.stats.records += len(p.records)
                    p.done.set()
                i = j
        except BaseException:
            self._pending = [p for p in batch[i:] if not p.done.is_set()] + self._pending  # _fail wakes them
            raise

    def _open_segment(self) -> None:
        path = self.directory / segment_name(self._segment)
        existed = path.exists()
        self._file = open(path, "ab", buffering=0)
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
        self._open_segment()
        for n in self._segments():
            if n <= old:
                (self.directory / segment_name(n)).unlink()

    # --- the callers' side -------------------------------------------------------------

    async def append(self, *records: Any) -> None:
        """Return once ``records`` are fsynced and applied to ``state``, in call order.

        Raises ``JournalError`` if the writer is not running or died. If the caller is
        cancelled while waiting, the records may still become durable (and applied).
        """
        if not records:
            return
        self._check_alive()
        payloads = [self._encoder.encode(r) for r in records]
        # Apply decoded copies: the state never aliases the caller's objects and holds
        # exactly what a replay would rebuild. Also rejects what could not be replayed.
        copies = [self._record_decoder.decode(p) for p in payloads]
        await self._submit(_Pending(b"".join(frame(p) for p in payloads), copies))

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
        self._pending.append(pending)
        self._wakeup.set()
        await pending.done.wait()
        if pending.error is not None:
            raise pending.error
