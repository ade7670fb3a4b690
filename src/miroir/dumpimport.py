"""`miroir import-dump FILE`: load a Meilisearch dump (v6, or v5) into a running Miroir.

Everything goes through Miroir's public HTTP API with the admin (master) key, so the
cluster sees an ordinary client: indexes created with their primary keys, settings
applied (`PATCH /indexes/{uid}/settings`), documents sent in NDJSON batches (routed to
their shards by the normal write path, several batches in flight), and API keys
recreated with their uids (`POST /keys` with `uid`), so each key's value, derived from
the master key and the uid, is the same as on the Meilisearch that wrote the dump when
the master key is the same.

Over existing indexes:

- by default the import refuses to start if any index of the dump already exists;
- `--resume` continues an interrupted import: an index whose document count and
  settings already equal the dump's is skipped; any other is completed (settings
  applied again, every document sent again: a document replaces the one with the same
  id, so nothing is duplicated); keys that already exist are kept;
- `--force` deletes the existing indexes named in the dump first, then imports them.

Not imported: the dump's task and batch history (Miroir numbers its own tasks; tasks
still enqueued in the dump are listed in the result as `notReplayed`), webhooks,
network and experimental features. Progress goes to `progress(event)`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import msgspec

from miroir.cliclient import AdminClient, AdminError
from miroir.core import dumpformat as fmt
from miroir.core.settings import DEFAULTS
from miroir.core.taskfold import TERMINAL
from miroir.dumpfile import DumpIndex, DumpReader

BATCH_DOCS = 5_000
BATCH_BYTES = 8 * 1024 * 1024
IN_FLIGHT = 4  # document batches enqueued before waiting for the oldest
TASK_POLL_S = 0.05
TASK_TIMEOUT_S = 600.0

Progress = Callable[[dict], None]


class ImportFailed(Exception):
    """The import stopped; the message says where and why (one line)."""


class DumpImporter:
    def __init__(self, client: AdminClient, dump: DumpReader, *, force: bool = False, resume: bool = False,
                 progress: Progress | None = None, batch_docs: int = BATCH_DOCS):
        self.client = client
        self.dump = dump
        self.force = force
        self.resume = resume
        self.progress = progress or (lambda event: None)
        self.batch_docs = batch_docs

    # --- tasks ----------------------------------------------------------------------------

    def _wait(self, task_uids: list[int]) -> None:
        """Wait for Miroir tasks; ImportFailed names the first that did not succeed."""
        pending = list(task_uids)
        deadline = time.monotonic() + TASK_TIMEOUT_S
        while pending:
            body = self.client.request("GET", "/tasks", params={"uids": ",".join(map(str, pending)),
                                                                "limit": len(pending)})
            done = {t["uid"]: t for t in body.get("results", []) if t["status"] in TERMINAL}
            for uid in pending:
                t = done.get(uid)
                if t is not None and t["status"] != "succeeded":
                    err = t.get("error") or {}
                    raise ImportFailed(f"task {uid} ({t['type']} on `{t.get('indexUid')}`) {t['status']}: "
                                       f"{err.get('message', 'no reason given')} ({err.get('code')})")
            pending = [u for u in pending if u not in done]
            if pending:
                if time.monotonic() > deadline:
                    raise ImportFailed(f"tasks {pending[:5]} not finished within {TASK_TIMEOUT_S:g}s")
                time.sleep(TASK_POLL_S)

    def _enqueue(self, method: str, path: str, **kwargs: Any) -> int:
        return int(self.client.request(method, path, **kwargs)["taskUid"])

    # --- steps ----------------------------------------------------------------------------

    def _existing(self) -> set[str]:
        out: set[str] = set()
        offset = 0
        while True:
            body = self.client.request("GET", "/indexes", params={"offset": offset, "limit": 1000})
            out.update(i["uid"] for i in body["results"])
            offset += len(body["results"])
            if not body["results"] or offset >= body["total"]:
                return out

    def _complete(self, index: DumpIndex, expected: int) -> bool:
        stats = self.client.request("GET", f"/indexes/{index.uid}/stats")
        if stats.get("numberOfDocuments") != expected:
            return False
        current = self.client.request("GET", f"/indexes/{index.uid}/settings")
        return fmt.covers(current, fmt.settings_to_apply(index.settings, DEFAULTS))

    def _batches(self, index: DumpIndex) -> Iterator[tuple[bytes, int]]:
        lines: list[bytes] = []
        size = 0
        for line in self.dump.documents(index):
            lines.append(line)
            size += len(line) + 1
            if len(lines) >= self.batch_docs or size >= BATCH_BYTES:
                yield b"\n".join(lines) + b"\n", len(lines)
                lines, size = [], 0
        if lines:
            yield b"\n".join(lines) + b"\n", len(lines)

    def _import_index(self, index: DumpIndex, exists: bool) -> dict:
        uid = index.uid
        expected = self.dump.count_documents(index)
        if exists and self.resume and self._complete(index, expected):
            self.progress({"event": "index", "uid": uid, "status": "skipped", "documents": expected, "of": expected})
            return {"uid": uid, "status": "skipped", "documents": expected}
        if exists and self.force:
            self._wait([self._enqueue("DELETE", f"/indexes/{uid}")])
            exists = False
        if not exists:
            self._wait([self._enqueue("POST", "/indexes", json={"uid": uid, "primaryKey": index.primary_key})])
        settings = fmt.settings_to_apply(index.settings, DEFAULTS)
        if settings:
            self._wait([self._enqueue("PATCH", f"/indexes/{uid}/settings", json=settings)])
        params = {"primaryKey": index.primary_key} if index.primary_key else None
        in_flight: list[tuple[int, int]] = []
        sent = done = 0
        for body, n in self._batches(index):
            in_flight.append((self._enqueue("POST", f"/indexes/{uid}/documents", content=body, params=params,
                                            headers={"Content-Type": "application/x-ndjson"}), n))
            sent += n
            if len(in_flight) >= IN_FLIGHT:
                task, count = in_flight.pop(0)
                self._wait([task])
                done += count
                self.progress({"event": "index", "uid": uid, "status": "importing", "documents": done, "of": expected})
        self._wait([t for t, _ in in_flight])
        self.progress({"event": "index", "uid": uid, "status": "imported", "documents": sent, "of": expected})
        return {"uid": uid, "status": "imported", "documents": sent}

    def _import_keys(self) -> dict:
        created = kept = 0
        refused: list[str] = []
        for line in self.dump.api_keys():
            try:
                self.client.request("POST", "/keys", json=fmt.key_create_body(line))
                created += 1
            except AdminError as e:
                if e.code == "api_key_already_exists":
                    kept += 1
                else:  # e.g. expired, or an action this API no longer has
                    refused.append(f"{line.get('uid')}: {e}")
        self.progress({"event": "keys", "created": created, "existing": kept, "refused": len(refused)})
        return {"created": created, "existing": kept, "refused": refused}

    def run(self) -> dict:
        started = time.monotonic()
        existing = self._existing()
        clash = sorted(i.uid for i in self.dump.indexes if i.uid in existing)
        if clash and not (self.force or self.resume):
            names = ", ".join(f"`{u}`" for u in clash)
            raise ImportFailed(f"index(es) {names} already exist: --resume continues an interrupted import, "
                               "--force replaces them")
        self.progress({"event": "start", "dump": self.dump.path, "version": self.dump.version,
                       "writtenBy": self.dump.db_version, "indexes": len(self.dump.indexes)})
        indexes = [self._import_index(i, i.uid in existing) for i in self.dump.indexes]
        keys = self._import_keys()
        result = {
            "dump": self.dump.path,
            "version": self.dump.version,
            "indexes": indexes,
            "keys": keys,
            "notReplayed": self._pending_tasks(),
            "seconds": round(time.monotonic() - started, 3),
        }
        self.progress({"event": "done", "seconds": result["seconds"]})
        return result

    def _pending_tasks(self) -> list[int]:
        if self.dump.version != "V6":
            return []
        return [t["uid"] for t in (msgspec.json.decode(line) for line in self.dump.lines(fmt.TASKS))
                if t.get("status") in ("enqueued", "processing")]
