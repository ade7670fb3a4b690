"""`POST /dumps`: one Meilisearch v6 dump of the whole cluster (format: core/dumpformat.py).

A `dumpCreation` task, driven on its own queue (it reads, it never waits for an index's
writes, as a Meilisearch dump sees what is processed when it runs). For each index, every
shard is read from one readable owner, page by page (`documents/fetch` with the shard
filter), so each document is written once: a covering set of copies, never two copies of
a shard. A shard is read under the index's write lock after the owner's queue for the index
drained (a consistent shard; writes to the index wait for one shard's read). A shard
whose owner fails mid-read is read again from the start from the next owner (its pages
are kept until the shard is complete, so nothing is written twice). The
documents lose the `_miroir_shard` tag and the settings their hidden filterable entry;
keys, and the finished tasks the format can carry, go with them.

The file is `<dumps.dir>/<dump uid>.dump` (default `<data dir>/dumps`, as Meilisearch's
`--dump-dir`), written under a temporary name and renamed when complete. Progress is
logged per index (`dump.index`), and every `PROGRESS_EVERY` documents.
"""

from __future__ import annotations

import os
import time
import uuid

import structlog
import trio

from miroir.core import dumpformat as fmt
from miroir.core.errors import MeiliError
from miroir.core.model import TaskRecord
from miroir.core.placement import Layout
from miroir.core.taskfold import task_view
from miroir.core.taskquery import rfc3339
from miroir.dumpfile import DumpWriter
from miroir.engine.cluster import Cluster
from miroir.engine.indexes import index_lock
from miroir.engine.mover import MoveFailed, call, settle, shard_filter
from miroir.engine.settings import index_settings
from miroir.engine.tasks import DrivenTask
from miroir.net.node import NodeError

log = structlog.get_logger("miroir.dumps")

# Dump tasks never queue behind an index's work, nor behind task cancelations.
DUMPS_QUEUE = "\x00dumps"
PAGE = 1_000
PROGRESS_EVERY = 10_000
# What the dump says wrote it: the Meilisearch API version Miroir speaks.
DB_VERSION = "1.50.0"


def dump_dir(cluster: Cluster) -> str:
    configured = cluster.config.dumps.dir
    return configured if configured else os.path.join(cluster.config.store.data_dir, "dumps")


async def create_dump(cluster: Cluster) -> TaskRecord:
    async def driver(handle: DrivenTask) -> None:
        await handle.set_processing()
        uid = fmt.dump_uid(time.time())
        path = await write_dump(cluster, dump_dir(cluster), uid)
        log.info("dump.written", dump_uid=uid, path=path)
        await handle.finish("succeeded", details={"dumpUid": uid})

    return await cluster.tasks.enqueue_driven(
        index_uid=None, type="dumpCreation", details={"dumpUid": None}, driver=driver, queue=DUMPS_QUEUE
    )


async def _read_shard(cluster: Cluster, node: str, uid: str, shard: int) -> list[dict]:
    docs: list[dict] = []
    while True:
        try:
            body = await call(cluster, node, "POST", f"/indexes/{uid}/documents/fetch",
                              json={"filter": shard_filter(shard), "offset": len(docs), "limit": PAGE,
                                    "retrieveVectors": True})  # a dump keeps the embeddings
        except NodeError as e:
            raise MoveFailed(f"node `{node}` refused to list shard {shard} of `{uid}`: {e.message}") from None
        page = body.get("results") or []
        docs.extend(fmt.dump_document(d) for d in page)
        if len(page) < PAGE:
            return docs


def _owners(cluster: Cluster, shards: Layout, shard: int) -> list[str]:
    """Readable owners of a shard, every group's, in a stable order."""
    readable = cluster.healthy_nodes()
    out: list[str] = []
    for _, nodes in sorted(cluster.topology.read_targets(shards, shard).items()):
        out += [n for n in nodes if n in readable and n not in out]
    return out


async def read_shard(cluster: Cluster, uid: str, shards: Layout, shard: int) -> list[dict]:
    """One shard, from one owner, as of one moment: under the index's write lock no write
    is enqueued, and the owner's queue for the index is drained first, so offset paging
    neither skips (a delete between pages) nor repeats. Writes to the index wait for the
    read of one shard, not of the whole index."""
    errors = []
    for node in _owners(cluster, shards, shard):
        try:
            async with index_lock(cluster, uid):
                await settle(cluster, node, uid)
                return await _read_shard(cluster, node, uid, shard)
        except MoveFailed as e:
            log.warning("dump.shard_retry", index=uid, shard=shard, node=node, error=str(e))
            errors.append(str(e))
    reason = "; ".join(errors) or "no readable owner"
    raise MeiliError("miroir_shard_unavailable", f"Cannot dump shard {shard} of index `{uid}`: {reason}.")


async def write_dump(cluster: Cluster, directory: str, uid: str) -> str:
    state = cluster.state
    started = time.monotonic()
    w = await trio.to_thread.run_sync(DumpWriter, directory, uid)
    try:
        w.add_json(fmt.METADATA, fmt.DumpMetadata(fmt.CURRENT_VERSION, DB_VERSION, rfc3339(time.time())))
        w.add_bytes(fmt.INSTANCE_UID, str(uuid.uuid4()).encode())
        w.add_jsonl(fmt.KEYS, [fmt.key_line(k) for k in state.keys.values()])
        lines = (fmt.task_line(task_view(t)) for _, t in sorted(state.tasks.items()))
        # Up to a million tasks: compressed off the event loop.
        await trio.to_thread.run_sync(w.add_jsonl, fmt.TASKS, [line for line in lines if line is not None])
        w.add_jsonl(fmt.BATCHES, [])
        w.add_json(fmt.FEATURES, {})
        # 1.50's WebhooksDumpView: uuid -> {url, headers}, secrets unredacted (a dump is a backup).
        w.add_json("webhooks.json", {"webhooks": {u: {"url": h.url, "headers": h.headers}
                                                  for u, h in sorted(state.webhooks.items())}})
        total = 0
        for name in sorted(state.indexes):
            meta = state.indexes.get(name)
            if meta is None:  # deleted while the dump ran
                continue
            w.add_json(fmt.index_metadata_path(name),
                       fmt.IndexMetadata(name, meta.primary_key, meta.created_at, meta.updated_at))
            w.add_json(fmt.index_settings_path(name), fmt.dump_settings(index_settings(cluster, name)))
            member = w.jsonl(fmt.index_documents_path(name))
            for shard in range(meta.shards):
                docs = await read_shard(cluster, name, meta.layout, shard)
                await trio.to_thread.run_sync(member.write, docs)
                before, total = total, total + len(docs)
                if total // PROGRESS_EVERY != before // PROGRESS_EVERY:
                    log.info("dump.progress", dump_uid=uid, index=name, shard=shard, documents=total)
            await trio.to_thread.run_sync(member.close)
            log.info("dump.index", dump_uid=uid, index=name, documents=member.count, total=total)
        path = await trio.to_thread.run_sync(w.close)
    except BaseException:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(w.abort)
        raise
    log.info("dump.done", dump_uid=uid, indexes=len(state.indexes), documents=total,
             seconds=round(time.monotonic() - started, 3))
    return path
