"""The devnode's dumps: `POST /dumps` writes one (a `CreateDump` task), `--import-dump`
loads one before the node listens, as Meilisearch's `--import-dump` does.

The devnode has no API keys and keeps no task history in a dump: keys.jsonl and
tasks/queue.jsonl are written empty, and an imported dump's keys and tasks are skipped.
"""

from __future__ import annotations

import time
import uuid
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
        w.add_bytes(fmt.INSTANCE_UID, str(uuid.uuid4()).encode())
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


def _settings_patch(uid: str, settings: dict) -> dict:
    """The dump's settings that differ from the defaults; refused when the devnode does not
    implement one of them (as its own settings routes refuse it)."""
    from miroir.core.settings import DEFAULTS
    from miroir.devnode.engine import default_settings

    defaults = {**DEFAULTS, **default_settings()}
    patch = fmt.settings_to_apply(settings, defaults)
    known = tuple(f.name for f in settings_mod.FIELDS if f.name in default_settings())
    unknown = sorted(k for k in patch if k not in known)
    if unknown:
        raise MeiliError("bad_request", f"index `{uid}`: the devnode does not implement the setting(s) "
                                        f"{', '.join(unknown)} the dump sets")
    return settings_mod.validate_settings(patch, known)


async def _add(queue: Any, index: Any, docs: list[dict]) -> Any:
    from miroir.devnode import tasks as t

    details = {"receivedDocuments": len(docs), "indexedDocuments": None}
    return await queue.enqueue("documentAdditionOrUpdate", index.uid, t.AddDocuments(docs, index.primary_key, False),
                               details)


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
            patch = _settings_patch(index.uid, index.settings)
            last = await queue.enqueue("settingsUpdate", index.uid, t.UpdateSettings(patch), patch)
            batch: list[dict] = []
            for line in dump.documents(index):
                batch.append(msgspec.json.decode(line))
                if len(batch) >= IMPORT_BATCH:
                    last = await _add(queue, index, batch)
                    total += len(batch)
                    batch = []
            if batch:
                last = await _add(queue, index, batch)
                total += len(batch)
    if last is not None:
        # The task queue signals no per-task event: poll (the import runs once, at start-up).
        while queue.tasks[last.uid].status in ("enqueued", "processing"):  # noqa: ASYNC110
            await trio.sleep(0.01)
    failed = [r for r in queue.tasks.values() if r.status == "failed"]
    if failed:
        err = failed[0].error or {}
        raise MeiliError("internal", f"importing the dump failed at task {failed[0].uid}: {err.get('message')}")
    log.info("dump imported", path=path, indexes=len(dump.indexes), documents=total,
             seconds=round(time.monotonic() - started, 3))
