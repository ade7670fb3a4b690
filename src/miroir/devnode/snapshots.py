"""The devnode's `POST /snapshots`: a `snapshotCreation` task that writes a copy of the
node's state as a devnode data dir (persist.py's layout), so `miroir devnode --data-dir
<copy>` starts from it, as Meilisearch's `--import-snapshot` starts from its snapshot.

The copy is `<snapshot dir>/data.ms.snapshot/` (Meilisearch 1.50 names its file after the
database, `data.ms.snapshot`), replacing the previous one only once complete. It is written
from memory by the task worker, between batches: every task enqueued before the snapshot
task is in it, finished; nothing enqueued after is (the snapshot task itself is left out).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from miroir.devnode import persist

SNAPSHOT_NAME = "data.ms.snapshot"


def write_snapshot(indexes: dict[str, Any], finished_tasks: list[dict], next_uid: int,
                   features: dict[str, bool], directory: str) -> str:
    """Blocking; called by the task worker with no batch running. Returns the copy's path."""
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    final = root / SNAPSHOT_NAME
    tmp = root / (SNAPSHOT_NAME + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "indexes").mkdir(parents=True)
    for uid, entry in indexes.items():
        blob = persist.encode_snapshot(uid, entry.created_at, entry.updated_at, entry.engine.dump(), [])
        persist.atomic_write(tmp / "indexes" / persist.index_file_name(uid), blob)
    persist.atomic_write(tmp / "tasks.log", b"".join(persist.frame(r) for r in finished_tasks))
    persist.atomic_write(tmp / "uids", str(next_uid).encode())
    if features:
        store = persist.Store(tmp)
        store.write_features(features)
    old = root / (SNAPSHOT_NAME + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
    persist.fsync_dir(root)
    return str(final)
