"""`miroir restore MANIFEST --data-dir DIR`: put a cluster snapshot's journal in place.

Offline: Miroir must not be running on DIR. The snapshot's copy of Miroir's journal
(`journal/` beside the manifest, engine/snapshots.py) becomes DIR's journal; a DIR that
already holds a journal is refused unless `force`, which moves it aside first to
`DIR/replaced.<time>/` (never deleted). Miroir does not run the nodes, so each node is
restored by its operator from the snapshot it wrote at the barrier, under the same node
id; `restore` returns, per node, where that snapshot is and how to start from it. A node's
URL may change: `[[nodes]]` in miroir.toml is honoured for an existing id.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import msgspec

from miroir.store.journal import COMMIT_NAME, SNAPSHOT_NAME

# Files that make a data dir hold a journal (daemon.py opens the journal in the data dir).
JOURNAL_FILES = (SNAPSHOT_NAME, COMMIT_NAME)
MANIFEST_FORMAT = 1


class RestoreRefused(Exception):
    """A user mistake: the message is the one line the CLI prints."""


class NodeToRestore(msgspec.Struct):
    id: str
    url: str
    group: str
    task_uid: int
    snapshot: str


def _journal_files(data_dir: Path) -> list[str]:
    if not data_dir.is_dir():
        return []
    return sorted(p.name for p in data_dir.iterdir()
                  if p.name in JOURNAL_FILES or (p.name.startswith("journal.") and p.name.endswith(".log")))


def read_manifest(path: str) -> dict:
    try:
        manifest = msgspec.json.decode(Path(path).read_bytes())
    except FileNotFoundError:
        raise RestoreRefused(f"{path}: no such manifest") from None
    except (OSError, msgspec.DecodeError) as e:
        raise RestoreRefused(f"{path}: not a snapshot manifest ({e})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT or "nodes" not in manifest:
        raise RestoreRefused(f"{path}: not a snapshot manifest of format {MANIFEST_FORMAT}")
    return manifest


def restore(manifest_path: str, data_dir: str, *, force: bool = False) -> list[NodeToRestore]:
    manifest = read_manifest(manifest_path)
    source = Path(manifest_path).resolve().parent / manifest["journal"]
    missing = [n for n in JOURNAL_FILES if not (source / n).is_file()]
    if missing:
        raise RestoreRefused(f"{source}: the snapshot's journal lacks {', '.join(missing)}")
    target = Path(data_dir)
    present = _journal_files(target)
    if present and not force:
        raise RestoreRefused(f"{target} already holds a journal ({', '.join(present)}); "
                             f"pass --force to move it aside and restore over it")
    target.mkdir(parents=True, exist_ok=True)
    if present:
        aside = target / f"replaced.{time.strftime('%Y%m%dT%H%M%S')}"
        aside.mkdir()
        for name in present:
            os.replace(target / name, aside / name)
    for name in JOURNAL_FILES:
        tmp = target / (name + ".restore")
        shutil.copyfile(source / name, tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, target / name)
    fd = os.open(target, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return [NodeToRestore(id=i, url=n["url"], group=n["group"], task_uid=n["taskUid"], snapshot=n["snapshot"])
            for i, n in sorted(manifest["nodes"].items())]


def instructions(nodes: list[NodeToRestore]) -> list[str]:
    """One paragraph per node: where its snapshot is and the command to start from it."""
    out = []
    for n in nodes:
        out.append(
            f"node {n.id} (group {n.group}, was {n.url}): its snapshot is {n.snapshot} in the node's snapshot dir "
            f"(written by its task {n.task_uid}).\n"
            f"  Meilisearch: meilisearch --import-snapshot <snapshot dir>/{n.snapshot} --db-path <new db path>\n"
            f"  devnode:     cp -r <snapshot dir>/{n.snapshot} <new data dir> && "
            f"miroir devnode --data-dir <new data dir>"
        )
    return out
