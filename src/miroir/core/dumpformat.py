"""Meilisearch's dump format (v6, read back to v5): file layout and the shape of each file.

A dump is one gzipped tar (Meilisearch 1.50's `crates/dump`):

    metadata.json                 {"dumpVersion": "V6", "dbVersion", "dumpDate"}
    instance_uid.uuid             the instance's uuid, as text
    keys.jsonl                    one API key a line (snake_case fields)
    tasks/queue.jsonl             one task a line (the index scheduler's `TaskDump`)
    batches/queue.jsonl           one batch a line
    experimental-features.json
    indexes/<uid>/metadata.json   {"uid", "primaryKey", "createdAt", "updatedAt"}
    indexes/<uid>/settings.json   the index's settings (the client's view)
    indexes/<uid>/documents.jsonl one document a line

The v5 layout (Meilisearch 0.28 to 0.30) names index directories by uuid
(`index_uuids/data.jsonl` maps uid -> uuid) and keeps settings and primary key together in
`indexes/<uuid>/meta.json`; its documents and keys have the same shape as v6's.

Pure: shapes and names only; the archive itself is read and written by `miroir.dumpfile`.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
from collections.abc import Mapping
from typing import Any

import msgspec

from miroir.core.keys import ApiKey
from miroir.core.settings import RESERVED_PREFIX, hide_shard_field
from miroir.core.taskfold import TERMINAL

CURRENT_VERSION = "V6"
# The versions `miroir.dumpfile` reads; older ones Meilisearch itself only imports by
# upgrading them step by step, which needs the task queues we do not replay.
READABLE_VERSIONS = ("V5", "V6")

METADATA = "metadata.json"
INSTANCE_UID = "instance_uid.uuid"
KEYS = "keys.jsonl"
TASKS = "tasks/queue.jsonl"
BATCHES = "batches/queue.jsonl"
FEATURES = "experimental-features.json"
V5_INDEX_UUIDS = "index_uuids/data.jsonl"
V5_KEYS = "keys"


def index_metadata_path(uid: str) -> str:
    return f"indexes/{uid}/metadata.json"


def index_settings_path(uid: str) -> str:
    return f"indexes/{uid}/settings.json"


def index_documents_path(uid: str) -> str:
    return f"indexes/{uid}/documents.jsonl"


class DumpMetadata(msgspec.Struct, rename="camel"):
    dump_version: str
    db_version: str
    dump_date: str


class IndexMetadata(msgspec.Struct, rename="camel"):
    uid: str
    primary_key: str | None
    created_at: str
    updated_at: str


def dump_uid(ts: float) -> str:
    """Meilisearch's dump uid: the UTC time to the millisecond, `20230706-071027219`."""
    moment = _dt.datetime.fromtimestamp(ts, tz=_dt.UTC)
    return moment.strftime("%Y%m%d-%H%M%S") + f"{moment.microsecond // 1000:03d}"


def dump_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """An index's settings as a dump holds them: the client's view, nothing of Miroir's."""
    out = dict(settings)
    if "filterableAttributes" in out:
        out["filterableAttributes"] = hide_shard_field(out["filterableAttributes"])
    return out


def dump_document(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A document as the client wrote it (the shard tag and sequence Miroir adds removed)."""
    # Read with `retrieveVectors`, which gives every document a `_vectors` object; 1.50's
    # dump writes one only where the document has embeddings or stored it.
    return {
        k: v for k, v in doc.items() if not k.startswith(RESERVED_PREFIX) and not (k == "_vectors" and v == {})
    }


def key_line(key: ApiKey) -> dict[str, Any]:
    """One line of keys.jsonl (meilisearch-types `Key` as serialized: snake_case, no
    `description`/`name` when unset)."""
    line: dict[str, Any] = {}
    if key.description is not None:
        line["description"] = key.description
    if key.name is not None:
        line["name"] = key.name
    line.update(
        uid=key.uid,
        actions=list(key.actions),
        indexes=list(key.indexes),
        expires_at=key.expires_at,
        created_at=key.created_at,
        updated_at=key.updated_at,
    )
    return line


def key_create_body(line: Mapping[str, Any]) -> dict[str, Any]:
    """A keys.jsonl line -> the `POST /keys` body that recreates it with the same uid
    (so its value, HMAC(master key, uid), is the same under the same master key)."""
    body: dict[str, Any] = {
        "uid": line["uid"],
        "actions": list(line.get("actions") or []),
        "indexes": list(line.get("indexes") or []),
        "expiresAt": line.get("expires_at"),
    }
    for field in ("name", "description"):
        if line.get(field) is not None:
            body[field] = line[field]
    return body


# --- tasks -------------------------------------------------------------------------------

# The task queue Meilisearch imports: finished tasks only. An enqueued document task would
# need its payload (`tasks/update_files/`), which Miroir no longer has once it is applied.

def _kind(view: Mapping[str, Any]) -> tuple[Any, Any] | None:
    """(KindDump, Details) of a task view, as the index scheduler serializes them; None for
    a type Meilisearch's dump cannot carry faithfully (it is then left out)."""
    t = view.get("type")
    d = view.get("details") or {}
    if t == "documentAdditionOrUpdate":
        received = int(d.get("receivedDocuments") or 0)
        kind = {"documentImport": {"primary_key": None, "method": "UpdateDocuments",
                                   "documents_count": received, "allow_index_creation": True}}
        return kind, {"DocumentAdditionOrUpdate": {"received_documents": received,
                                                   "indexed_documents": d.get("indexedDocuments")}}
    if t == "documentDeletion":
        original = d.get("originalFilter")
        if original is not None:
            # The view shows the filter as JSON text; the task kind holds the JSON value.
            value: Any = original
            if isinstance(original, str):
                # Not JSON text: the raw filter itself.
                with contextlib.suppress(msgspec.DecodeError):
                    value = msgspec.json.decode(original)
            text = msgspec.json.encode(value).decode()
            return ({"documentDeletionByFilter": {"filter": value}},
                    {"DocumentDeletionByFilter": {"original_filter": text,
                                                  "deleted_documents": d.get("deletedDocuments")}})
        provided = int(d.get("providedIds") or 0)
        return ({"documentDeletion": {"documents_ids": []}},
                {"DocumentDeletion": {"provided_ids": provided, "deleted_documents": d.get("deletedDocuments")}})
    if t == "documentClear":
        return "documentClear", {"ClearAll": {"deleted_documents": d.get("deletedDocuments")}}
    if t == "settingsUpdate":
        settings = dump_settings(d)
        return ({"settings": {"settings": settings, "is_deletion": False, "allow_index_creation": True}},
                {"SettingsUpdate": {"settings": settings}})
    if t in ("indexCreation", "indexUpdate"):
        pk = d.get("primaryKey")
        info = {"IndexInfo": {"primary_key": pk}}
        if t == "indexCreation":
            return {"indexCreation": {"primary_key": pk}}, info
        return {"indexUpdate": {"primary_key": pk, "uid": d.get("newIndexUid")}}, info
    if t == "indexDeletion":
        return "indexDeletion", {"ClearAll": {"deleted_documents": d.get("deletedDocuments")}}
    if t == "dumpCreation":
        return {"dumpCreation": {"keys": [], "instance_uid": None}}, {"Dump": {"dump_uid": d.get("dumpUid")}}
    if t == "snapshotCreation":
        return "snapshotCreation", None
    return None


def task_line(view: Mapping[str, Any]) -> dict[str, Any] | None:
    """A Miroir task view -> one line of tasks/queue.jsonl (the index scheduler's `TaskDump`),
    or None when it cannot be carried (not finished, or a type the dump format would need
    more than the view to describe: swaps, cancelations and deletions of tasks)."""
    if view.get("status") not in TERMINAL:
        return None
    kd = _kind(view)
    if kd is None:
        return None
    kind, details = kd
    line: dict[str, Any] = {
        "uid": view["uid"],
        "batchUid": view.get("batchUid"),
        "indexUid": view.get("indexUid"),
        "status": view["status"],
        "type": kind,
    }
    if view.get("canceledBy") is not None:
        line["canceledBy"] = view["canceledBy"]
    if details is not None:
        line["details"] = details
    if view.get("error") is not None:
        line["error"] = view["error"]
    line["enqueuedAt"] = view["enqueuedAt"]
    for field in ("startedAt", "finishedAt"):
        if view.get(field) is not None:
            line[field] = view[field]
    return line


# --- reading back ------------------------------------------------------------------------


class DumpRefused(Exception):
    """The file is not a dump we can import; the message says why, in one line."""


def check_version(meta: Mapping[str, Any]) -> str:
    version = meta.get("dumpVersion")
    if not isinstance(version, str):
        raise DumpRefused("metadata.json has no `dumpVersion`: not a Meilisearch dump")
    if version not in READABLE_VERSIONS:
        raise DumpRefused(
            f"dump format {version} (written by Meilisearch {meta.get('dbVersion', '?')}) is not supported: "
            "only V5 and V6 are read. Import it into Meilisearch 1.x (which upgrades it) and write a new dump"
        )
    return version


def settings_to_apply(settings: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """The dump's settings an import must send: those that differ from the defaults. A
    dump lists every setting its writer knew, defaults included (`embedders: {}`); sending
    a default is a no-op on Meilisearch but refused by a node that lacks the feature."""
    return {k: v for k, v in settings.items() if k not in defaults or defaults[k] != v}


# Settings Meilisearch stores as sets: their order in a read-back means nothing.
_SET_LIKE = frozenset({"filterableAttributes", "sortableAttributes", "stopWords", "nonSeparatorTokens",
                       "separatorTokens", "dictionary", "disableOnWords", "disableOnAttributes"})


def covers(current: Any, wanted: Any, name: str | None = None) -> bool:
    """True when `current` (read back) holds everything `wanted` (from a dump) says:
    objects may have more keys (settings a newer engine added); set-like lists any order."""
    if isinstance(wanted, dict):
        return isinstance(current, dict) and all(k in current and covers(current[k], v, k) for k, v in wanted.items())
    if isinstance(wanted, list):
        if not isinstance(current, list) or len(wanted) != len(current):
            return False
        if name in _SET_LIKE:

            def key(v: Any) -> bytes:
                return msgspec.json.encode(v, order="sorted")

            return sorted(map(key, current)) == sorted(map(key, wanted))
        return all(covers(c, w) for c, w in zip(current, wanted))
    return bool(current == wanted)


def v5_index(meta: Mapping[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """A v5 `meta.json` -> (primary key, settings)."""
    settings = dict(meta.get("settings") or {})
    return meta.get("primary_key"), settings
