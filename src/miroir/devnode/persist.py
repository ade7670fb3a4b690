"""Durability for the devnode's `--data-dir`: a succeeded task survives kill -9.

Layout of the data directory:
  indexes/<name>.idx one msgpack snapshot per index (`index_file_name`), replaced
                     atomically (tmp, fsync, rename, fsync dir) after every batch that
                     changed it. The uid itself is inside the snapshot. It embeds the
                     finished records of the tasks that produced it, so the index and
                     the proof that its tasks succeeded can never disagree.
  tasks.log          append-only `[u32 length][u32 crc32][msgpack]` records of tasks
                     (a later record for a uid wins) and of deleted task uids. An
                     enqueued task is appended, with its operation, and fsynced before
                     the 202 answer (as Meilisearch persists its queue): a task a client
                     saw accepted survives kill -9 and is processed after the restart.
  uids               high-water mark of reserved task uids, so that a task enqueued and
                     lost in a crash never sees its uid reused for another task.
Write order per batch: index snapshots first, then the tasks log, then the in-memory
status flips to succeeded. A torn tail record of tasks.log is dropped on load.

Blocking file I/O; callers run the write methods in a worker thread.
"""

from __future__ import annotations

import hashlib
import os
import re
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import msgspec

_HEADER = struct.Struct("<II")
# Reserve task uids in blocks so that enqueueing rarely waits for an fsync.
UID_BLOCK = 1000

_enc = msgspec.msgpack.Encoder()
_dec = msgspec.msgpack.Decoder()


# A uid that is a plain, short name is its own file name (readable data dirs); anything
# else (up to 400 bytes allowed by Meilisearch, longer than a file name may be; or odd
# characters from a client that skipped validation) is stored under a digest. `=` cannot
# appear in an index uid, so the two kinds of names never collide.
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_-]{1,200}")


def index_file_name(uid: str) -> str:
    if _PLAIN_NAME.fullmatch(uid):
        return f"{uid}.idx"
    return "=" + hashlib.sha256(uid.encode("utf-8", "surrogatepass")).hexdigest() + ".idx"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _frame(record: dict) -> bytes:
    payload = _enc.encode(record)
    return _HEADER.pack(len(payload), zlib.crc32(payload)) + payload


class Loaded(msgspec.Struct):
    tasks: dict[int, dict]  # task views by uid (enqueued ones carry their "op" bytes)
    indexes: list[dict]  # snapshots: {"uid","createdAt","updatedAt","engine","tasks"}
    next_uid: int


class Store:
    """Owns the files of one data directory; one devnode process at a time."""

    def __init__(self, data_dir: str | os.PathLike):
        self.root = Path(data_dir)
        self.index_dir = self.root / "indexes"
        self.log_path = self.root / "tasks.log"
        self.uids_path = self.root / "uids"
        self.reserved = 0
        self._deleted: set[int] = set()
        self._log: BinaryIO | None = None

    def read_features(self) -> dict[str, bool]:
        """The `/experimental-features` flags set on this node (empty when never set)."""
        try:
            value = msgspec.json.decode((self.root / "features.json").read_bytes())
        except (FileNotFoundError, msgspec.DecodeError):
            return {}
        return {k: v for k, v in value.items() if isinstance(v, bool)} if isinstance(value, dict) else {}

    def write_features(self, features: dict[str, bool]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write(self.root / "features.json", msgspec.json.encode(features))

    def disk_size(self) -> int:
        """Bytes the data directory's files take (the node's `databaseSize`)."""
        total = 0
        for path in self.root.rglob("*"):
            try:
                if path.is_file():
                    total += path.stat().st_size
            except OSError:  # removed while walking (a compaction or a snapshot write)
                continue
        return total

    # -- loading -------------------------------------------------------------------

    def load(self) -> Loaded:
        """Read everything, fold index snapshots into the task list, compact the log."""
        self.index_dir.mkdir(parents=True, exist_ok=True)
        tasks = self._read_log()
        indexes = []
        for path in sorted(self.index_dir.glob("*.idx")):
            snap = _dec.decode(path.read_bytes())
            for record in snap.get("tasks", ()):
                if record["uid"] not in self._deleted:
                    tasks[record["uid"]] = record  # finished: replaces an enqueued record
            if snap.get("deleted"):
                continue  # tombstone: its task is folded into the log below
            indexes.append(snap)
        if self.uids_path.exists():
            self.reserved = int(self.uids_path.read_text() or 0)
        next_uid = max([self.reserved, *(uid + 1 for uid in tasks), *(uid + 1 for uid in self._deleted)])
        self._rewrite_log(tasks)
        for path in self.index_dir.glob("*.idx"):
            if _dec.decode(path.read_bytes()).get("deleted"):
                path.unlink()
        for path in self.index_dir.glob("*.tmp"):
            path.unlink()
        _fsync_dir(self.index_dir)
        return Loaded(tasks=tasks, indexes=indexes, next_uid=next_uid)

    def _read_log(self) -> dict[int, dict]:
        tasks: dict[int, dict] = {}
        if not self.log_path.exists():
            return tasks
        data = self.log_path.read_bytes()
        pos = 0
        while pos + _HEADER.size <= len(data):
            length, crc = _HEADER.unpack_from(data, pos)
            payload = data[pos + _HEADER.size : pos + _HEADER.size + length]
            if len(payload) < length or zlib.crc32(payload) != crc:
                break  # torn tail from a crash mid-append: everything before it is good
            record = _dec.decode(payload)
            if "deleted" in record:
                for uid in record["deleted"]:
                    tasks.pop(uid, None)
                    self._deleted.add(uid)
            else:
                tasks[record["uid"]] = record
            pos += _HEADER.size + length
        return tasks

    def _rewrite_log(self, tasks: dict[int, dict]) -> None:
        body = b"".join(_frame(tasks[uid]) for uid in sorted(tasks))
        if self._deleted:
            body += _frame({"deleted": sorted(self._deleted)})
        atomic_write(self.log_path, body)
        self.close()  # a second load() must not leak the first handle
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - held until close()

    # -- writing (blocking: call from a worker thread) -------------------------------

    def reserve(self, upto: int) -> None:
        """Make sure uids below `upto` are never handed out again after a restart."""
        if upto > self.reserved:
            self.reserved = upto + UID_BLOCK
            atomic_write(self.uids_path, str(self.reserved).encode())

    def append_enqueued(self, record: dict, op: bytes) -> None:
        """Durably record an accepted task and its operation (before answering 202)."""
        self.append_tasks([{**record, "op": op}])

    def write_index(self, uid: str, snapshot: bytes) -> None:
        atomic_write(self.index_dir / index_file_name(uid), snapshot)

    def read_index(self, uid: str) -> dict | None:
        """The last durable snapshot of `uid` (None: never written, or deleted)."""
        path = self.index_dir / index_file_name(uid)
        if not path.exists():
            return None
        snap = _dec.decode(path.read_bytes())
        return None if snap.get("deleted") else snap

    def append_tasks(self, records: list[dict], deleted: Sequence[int] = ()) -> None:
        assert self._log is not None, "load() first"
        body = b"".join(_frame(r) for r in records)
        if deleted:
            self._deleted.update(deleted)
            body += _frame({"deleted": list(deleted)})
        if body:
            self._log.write(body)
            self._log.flush()
            os.fsync(self._log.fileno())

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


def encode_snapshot(uid: str, created_at: str, updated_at: str, engine_dump: dict, tasks: list[dict]) -> bytes:
    return _enc.encode({"uid": uid, "createdAt": created_at, "updatedAt": updated_at, "engine": engine_dump, "tasks": tasks})


def encode_tombstone(uid: str, tasks: list[dict]) -> bytes:
    return _enc.encode({"uid": uid, "deleted": True, "tasks": tasks})


# For devnode/snapshots.py, which writes a data dir of this layout elsewhere.
frame = _frame
fsync_dir = _fsync_dir
