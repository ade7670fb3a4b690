"""Reading and writing Meilisearch dump archives (layout and shapes: core/dumpformat.py).

`DumpWriter` builds `<dir>/<dump uid>.dump` under a temporary name and renames it into
place when closed, so a dump file that exists is complete. `DumpReader` opens a v6 or v5
archive and yields its indexes, documents (as raw JSON lines, streamed) and keys; anything
else raises `DumpRefused` with a one-line reason.
"""

from __future__ import annotations

import io
import os
import tarfile
import tempfile
import time
from collections.abc import Iterable, Iterator
from typing import IO, Any

import msgspec

from miroir.core import dumpformat as fmt
from miroir.core.dumpformat import DumpRefused

_encode = msgspec.json.encode


class DumpWriter:
    """Appends members to a gzipped tar; `close()` publishes it, `abort()` removes it."""

    def __init__(self, directory: str, dump_uid: str):
        os.makedirs(directory, exist_ok=True)
        self.path = os.path.join(directory, f"{dump_uid}.dump")
        self._tmp = self.path + ".tmp"
        self._tar = tarfile.open(self._tmp, "w:gz", compresslevel=6)  # noqa: SIM115 - close() or abort()
        self._spools: set[JsonlMember] = set()  # members being written: abort() closes them
        self._dirs: set[str] = set()
        self._now = time.time()
        # Meilisearch lists `indexes/` when it imports: it must exist, even empty.
        self._mkdirs("indexes/")

    def _mkdirs(self, name: str) -> None:
        parts = name.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in self._dirs:
                self._dirs.add(d)
                info = tarfile.TarInfo(d)
                info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, self._now
                self._tar.addfile(info)

    def _add(self, name: str, size: int, fileobj: IO[bytes]) -> None:
        self._mkdirs(name)
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = size, 0o644, self._now
        self._tar.addfile(info, fileobj)

    def add_bytes(self, name: str, data: bytes) -> None:
        self._add(name, len(data), io.BytesIO(data))

    def add_json(self, name: str, obj: Any) -> None:
        self.add_bytes(name, _encode(obj))

    def add_jsonl(self, name: str, objs: Iterable[Any]) -> None:
        self.add_bytes(name, b"".join(_encode(o) + b"\n" for o in objs))

    def jsonl(self, name: str) -> JsonlMember:
        """A member written line by line (spooled to disk: documents can be large)."""
        return JsonlMember(self, name)

    def close(self) -> str:
        self._tar.close()
        with open(self._tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        for member in list(self._spools):
            member.discard()
        try:
            self._tar.close()
        finally:
            if os.path.exists(self._tmp):
                os.unlink(self._tmp)


class JsonlMember:
    def __init__(self, writer: DumpWriter, name: str):
        self.writer, self.name = writer, name
        self._spool = tempfile.TemporaryFile(dir=os.path.dirname(writer.path))  # noqa: SIM115 - close() or discard()
        writer._spools.add(self)
        self.count = 0

    def write(self, objs: Iterable[Any]) -> None:
        for o in objs:
            self._spool.write(_encode(o) + b"\n")
            self.count += 1

    def close(self) -> None:
        try:
            size = self._spool.tell()
            self._spool.seek(0)
            self.writer._add(self.name, size, self._spool)
        finally:
            self.discard()

    def discard(self) -> None:
        self._spool.close()
        self.writer._spools.discard(self)


class DumpIndex(msgspec.Struct):
    uid: str
    primary_key: str | None
    settings: dict
    created_at: str | None
    updated_at: str | None
    documents_member: str


def _not_a_dump(path: str, e: BaseException) -> DumpRefused:
    detail = (str(e).splitlines() or [type(e).__name__])[0]
    return DumpRefused(f"{path}: not a dump archive (a gzipped tar): {detail}")


class DumpReader:
    """A dump archive opened for reading. Raises DumpRefused for anything not importable."""

    def __init__(self, path: str):
        self.path = path
        try:
            self._tar = tarfile.open(path, "r:gz")  # noqa: SIM115 - close(); closed here if refused
        except FileNotFoundError:
            raise
        except (OSError, tarfile.TarError, EOFError) as e:
            raise _not_a_dump(path, e) from None
        try:
            self._read_index()
        except BaseException:
            self._tar.close()
            raise

    def _read_index(self) -> None:
        path = self.path
        try:
            members = self._tar.getmembers()
        except (OSError, tarfile.TarError, EOFError) as e:
            raise _not_a_dump(path, e) from None
        self._members: dict[str, tarfile.TarInfo] = {}
        for m in members:
            name = m.name.removeprefix("./")
            # macOS resource forks (`._name`) that some archivers add: not part of the dump.
            if m.isfile() and not os.path.basename(name).startswith("._"):
                self._members[name] = m
        meta = self._json(fmt.METADATA)
        if not isinstance(meta, dict):
            raise DumpRefused(f"{path}: no metadata.json: not a Meilisearch dump")
        self.version = fmt.check_version(meta)
        self.db_version = str(meta.get("dbVersion", "?"))
        self.indexes = self._v6_indexes() if self.version == "V6" else self._v5_indexes()

    def close(self) -> None:
        self._tar.close()

    def __enter__(self) -> DumpReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def has(self, name: str) -> bool:
        return name in self._members

    def _bytes(self, name: str) -> bytes | None:
        m = self._members.get(name)
        if m is None:
            return None
        f = self._tar.extractfile(m)
        assert f is not None
        with f:
            return f.read()

    def _json(self, name: str) -> Any:
        data = self._bytes(name)
        if data is None:
            return None
        try:
            return msgspec.json.decode(data)
        except msgspec.DecodeError as e:
            raise DumpRefused(f"{self.path}: {name} is not valid JSON: {e}") from None

    def _jsonl(self, name: str) -> list[Any]:
        return [msgspec.json.decode(line) for line in self.lines(name)]

    def lines(self, name: str) -> Iterator[bytes]:
        m = self._members.get(name)
        if m is None:
            return
        f = self._tar.extractfile(m)
        assert f is not None
        with f:
            for line in f:
                line = line.strip()
                if line:
                    yield line

    def _v6_indexes(self) -> list[DumpIndex]:
        out = []
        for name in sorted(self._members):
            parts = name.split("/")
            if len(parts) == 3 and parts[0] == "indexes" and parts[2] == "metadata.json":
                meta = self._json(name)
                uid = meta["uid"]
                settings = self._json(fmt.index_settings_path(parts[1])) or {}
                out.append(DumpIndex(uid, meta.get("primaryKey"), settings, meta.get("createdAt"),
                                     meta.get("updatedAt"), fmt.index_documents_path(parts[1])))
        return out

    def _v5_indexes(self) -> list[DumpIndex]:
        out = []
        for entry in self._jsonl(fmt.V5_INDEX_UUIDS):
            uid, uuid = entry["uid"], entry["index_meta"]["uuid"]
            meta = self._json(f"indexes/{uuid}/meta.json") or {}
            pk, settings = fmt.v5_index(meta)
            out.append(DumpIndex(uid, pk, settings, None, None, f"indexes/{uuid}/documents.jsonl"))
        return out

    def documents(self, index: DumpIndex) -> Iterator[bytes]:
        """The index's documents, one JSON object (bytes) each, in the dump's order."""
        return self.lines(index.documents_member)

    def count_documents(self, index: DumpIndex) -> int:
        return sum(1 for _ in self.documents(index))

    def api_keys(self) -> list[dict]:
        return self._jsonl(fmt.KEYS if self.version == "V6" else fmt.V5_KEYS)

    def instance_uid(self) -> str | None:
        data = self._bytes(fmt.INSTANCE_UID if self.version == "V6" else "instance-uid")
        return data.decode().strip() if data else None
