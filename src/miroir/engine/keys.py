"""API keys: journaled by Miroir, never sent to nodes (issue 14).

Keys live in the journal (`KeyPut`/`KeyDeleted`), so created, patched and deleted keys
survive `kill -9`. Their values are derived from the uid and the master key
(`core.keys.derive_key`) and never written anywhere.

`KeyRing` finds the key a request presents. It maps a digest of each key's value to its
uid; the map is rebuilt when a token misses and the set of journaled keys changed, so it
needs no invalidation from the code that changes keys (the fast path keeps its own ring).
"""

from __future__ import annotations

import datetime as _dt
import uuid as _uuid
from typing import Any

from miroir.core import keys as core
from miroir.core.errors import MeiliError
from miroir.core.model import KeyDeleted, KeyPut, MiroirState
from miroir.store.journal import Journal


def now_utc() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


class KeyRing:
    def __init__(self, master_key: str | None):
        self.master_key = master_key
        self._by_digest: dict[bytes, str] = {}
        self._uids: frozenset[str] = frozenset()

    def find(self, state: MiroirState, token: str) -> core.ApiKey | None:
        """The key whose value is `token`, or None."""
        if self.master_key is None:
            return None
        digest = core.key_digest(token)
        uid = self._by_digest.get(digest)
        if uid is None and self._uids != state.keys.keys():
            self._rebuild(state)
            uid = self._by_digest.get(digest)
        return state.keys.get(uid) if uid is not None else None

    def _rebuild(self, state: MiroirState) -> None:
        assert self.master_key is not None
        self._uids = frozenset(state.keys)
        self._by_digest = {core.key_digest(core.derive_key(uid, self.master_key)): uid for uid in self._uids}


def api_key_not_found(ref: str) -> MeiliError:
    return MeiliError("api_key_not_found", f"API key `{ref}` not found.")


async def bootstrap(journal: Journal[MiroirState]) -> None:
    """On a start with no key in the journal, create 1.50's default keys (as Meilisearch
    does when its key store is empty)."""
    if not journal.state.keys:
        await journal.append(*(KeyPut(key=k) for k in core.default_keys(now_utc())))


def resolve(state: MiroirState, ring: KeyRing, ref: str) -> core.ApiKey:
    """`/keys/{uidOrKey}`: a uid, else a key's value."""
    try:
        uid = str(_uuid.UUID(ref))
    except ValueError:
        key = ring.find(state, ref)
        if key is None:
            # Meilisearch echoes the value here; a key's value is a secret, so the text
            # is the one its API reference gives for this error instead.
            raise MeiliError("api_key_not_found", "The API key was not found.") from None
        return key
    key = state.keys.get(uid)
    if key is None:
        raise api_key_not_found(uid)
    return key


def list_keys(state: MiroirState, master_key: str | None, offset: int, limit: int) -> dict[str, Any]:
    keys = sorted(state.keys.values(), key=lambda k: core.parse_rfc3339(k.created_at), reverse=True)
    return {
        "results": [core.key_view(k, master_key) for k in keys[offset : offset + limit]],
        "offset": offset,
        "limit": limit,
        "total": len(keys),
    }


async def create(journal: Journal[MiroirState], body: Any, master_key: str | None) -> dict[str, Any]:
    key = core.decode_create(body, now_utc())
    if key.uid in journal.state.keys:
        raise MeiliError("api_key_already_exists", f"`uid` field value `{key.uid}` is already an existing API key.")
    await journal.append(KeyPut(key=key))
    return core.key_view(key, master_key)


async def patch(journal: Journal[MiroirState], ring: KeyRing, ref: str, body: Any) -> dict[str, Any]:
    changes = core.decode_patch(body)
    key = resolve(journal.state, ring, ref)
    updated = core.ApiKey(
        uid=key.uid,
        name=changes.get("name", key.name),
        description=changes.get("description", key.description),
        actions=key.actions,
        indexes=key.indexes,
        expires_at=key.expires_at,
        created_at=key.created_at,
        updated_at=core.rfc3339(now_utc()),
    )
    await journal.append(KeyPut(key=updated))
    return core.key_view(updated, ring.master_key)


async def delete(journal: Journal[MiroirState], ring: KeyRing, ref: str) -> None:
    key = resolve(journal.state, ring, ref)
    await journal.append(KeyDeleted(uid=key.uid))
