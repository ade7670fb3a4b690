"""Index uids: Meilisearch 1.50's rule (meilisearch-types `IndexUid::try_from`).

A uid is 1 to 400 bytes of ASCII letters, digits, `-` and `_`. Every route that takes a
uid (body or path) checks it before any node is touched. Meilisearch's error message
says "512 bytes" while its check stops at 400; both are kept as Meilisearch has them.
Pure module: no I/O, no imports from the rest of Miroir (errors.py builds on it).
"""

from __future__ import annotations

import re

MAX_INDEX_UID_BYTES = 400

# ASCII only, so characters are bytes here.
_UID = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_INDEX_UID_BYTES}}}")


def valid_index_uid(uid: object) -> bool:
    return isinstance(uid, str) and _UID.fullmatch(uid) is not None


def invalid_index_uid_message(uid: str) -> str:
    return (
        f"`{uid}` is not a valid index uid. Index uid can be an integer or a string containing only "
        "alphanumeric characters, hyphens (-) and underscores (_), and can not be more than 512 bytes."
    )
