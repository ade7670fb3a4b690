"""The devnode's dumps: `POST /dumps` writes one (a `CreateDump` task), `--import-dump`
loads one before the node listens, as Meilisearch's `--import-dump` does.

The devnode has no API keys and keeps no task history in a dump: keys.jsonl and
tasks/queue.jsonl are written empty, and an imported dump's keys and tasks are skipped.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec
import structlog
import trio

from miroir.core import dumpformat as fmt
from miroir.core.errors import MeiliError
from miroir.core.taskquery import rfc3339
from miroir.devnode import settings as settings_mod
from miroir.dumpfile import DumpReader, DumpWriter

log = structlog.get_logger("miroir.devnode.dumps")

# Documents per import task: the node's autobatching merges consecutive ones anyway.
IMPORT_BATCH = 5_000
COMPAT_DB_VERSION = "1.15.2"


def write_dump(indexes: dict[str, Any], directory: str, dump_uid: str) -> str:
    """Write every index (called by the task worker, engines locked). Returns the path."""
    w = DumpWriter(directory, dump_uid)
    try:
        w.add_json(fmt.METADATA, fmt.DumpMetadata("V6", COMPAT_DB_VERSION, rfc3339(time.time())))
        w.add_bytes(fmt.INSTANCE_UID, b"")
        w.add_jsonl(fmt.KEYS, [])
        w.add_jsonl(fmt.TASKS, [])
        w.add_jsonl(fmt.BATCHES, [])
        w.add_json(fmt.FEATURES, {})
        for uid, entry in sorted(indexes.items()):
            engine = entry.engine
            w.add_json(fmt.index_metadata_path(uid),
                       fmt.IndexMetadata(uid, engine.primary_key, entry.created_at, entry.updated_at))
            w.add_json(fmt.index_settings_path(uid), fmt.dump_settings(settings_mod.ordered(engine.settings)))
            docs = w.jsonl(fmt.index_documents_path(uid))
            docs.write(engine._docs.values())
            docs.close()
    except BaseException:
        w.abort()
        raise
    return w.close()


def _known_settings(settings: dict) -> dict:
    known = {k: v for k, v in settings.items() if k in settings_mod.BY_NAME}
    dropped = sorted(set(settings) - set(known))
    if dropped:
        log.warning("dump settings the devnode does not implement are skipped", fields=dropped)
    return known


async def import_dump(queue: Any, path: str) -> None:
    """Enqueue the dump's indexes, settings and documents; return once all are applied.

    Raises MeiliError (or DumpRefused) with the reason when the dump cannot be imported."""
    from miroir.devnode import tasks as t

    started = time.monotonic()
    with DumpReader(path) as dump:
        last = None
        total = 0
        for index in dump.indexes:
            await queue.enqueue("indexCreation", index.uid, t.CreateIndex(index.primary_key),
                                {"primaryKey": index.primary_key})
            patch = settings_mod.validate_settings(_known_settings(index.settings))
            last = await queue.enqueue("settingsUpdate", index.uid, t.UpdateSettings(patch), patch)
            batch: list[dict] = []

            async def flush() -> Any:
                details = {"receivedDocuments": len(batch), "indexedDocuments": None}
                return await queue.enqueue("documentAdditionOrUpdate", index.uid,
                                           t.AddDocuments(list(batch), index.primary_key, False), details)

            for line in dump.documents(index):
                batch.append(msgspec.json.decode(line))
                if len(batch) >= IMPORT_BATCH:
                    last = await flush()
                    total += len(batch)
                    batch.clear()
            if batch:
                last = await flush()
                total += len(batch)
    if last is not None:
        while queue.tasks[last.uid].status in ("enqueued", "processing"):
            await trio.sleep(0.01)
    failed = [r for r in queue.tasks.values() if r.status == "failed"]
    if failed:
        err = failed[0].error or {}
        raise MeiliError("internal", f"importing the dump failed at task {failed[0].uid}: {err.get('message')}")
    log.info("dump imported", path=path, indexes=len(dump.indexes), documents=total,
             seconds=round(time.monotonic() - started, 3))
