"""`POST /swap-indexes` bodies: one validation for Miroir and the devnode (pure).

Meilisearch checks the body synchronously: the answer is a 400 before any task exists.
"""

from __future__ import annotations

from typing import Any

import msgspec

from miroir.core.errors import MeiliError, invalid_index_uid, json_kind
from miroir.core.index_uid import valid_index_uid

_FIELDS = ("indexes", "rename")


def validate_swaps(body: Any) -> list[tuple[str, str]]:
    """The body -> index pairs, or Meilisearch's error for the first problem."""
    if not isinstance(body, list):
        raise MeiliError(
            "bad_request", f"Invalid value type: expected an array, but found {json_kind(body)}: `{_json(body)}`"
        )
    pairs: list[tuple[str, str]] = []
    seen: set[str] = set()
    for i, item in enumerate(body):
        if not isinstance(item, dict):
            raise MeiliError(
                "bad_request",
                f"Invalid value type at `[{i}]`: expected an object, but found {json_kind(item)}: `{_json(item)}`",
            )
        for key in item:
            if key not in _FIELDS:
                expected = ", ".join(f"`{f}`" for f in _FIELDS)
                raise MeiliError("bad_request", f"Unknown field `{key}`: expected one of {expected}")
        if "indexes" not in item:
            raise MeiliError("missing_swap_indexes", f"Missing field `indexes` inside `[{i}]`")
        pair = item["indexes"]
        if isinstance(pair, list) and len(pair) != 2 and all(isinstance(p, str) for p in pair):
            # 1.50 checks the count after decoding (MeilisearchHttpError), in its own words.
            shown = ", ".join(_json(p) for p in pair)
            raise MeiliError(
                "invalid_swap_indexes",
                f"Two indexes must be given for each swap. The list `[{shown}]` contains {len(pair)} indexes.",
            )
        if not isinstance(pair, list) or len(pair) != 2 or not all(isinstance(p, str) for p in pair):
            count = len(pair) if isinstance(pair, list) else 1
            raise MeiliError(
                "invalid_swap_indexes",
                f"Invalid value at `[{i}].indexes`: two indexes must be given for each swap. "
                f"The list `{_json(pair)}` contains {count} indexes.",
            )
        for name in pair:
            if not valid_index_uid(name):
                raise invalid_index_uid(name)
            if name in seen:
                raise MeiliError(
                    "invalid_swap_duplicate_index_found",
                    f"Indexes must be declared only once during a swap. `{name}` was specified several times.",
                )
            seen.add(name)
        pairs.append((pair[0], pair[1]))
    return pairs


def _json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


def swap_renames(body: list[dict[str, Any]]) -> list[bool]:
    """Each swap's `rename` (1.50; default false), for a body `validate_swaps` accepted:
    `true` moves `indexes[0]` to the name `indexes[1]`, which must not exist."""
    out: list[bool] = []
    for i, item in enumerate(body):
        value = item.get("rename", False)
        if not isinstance(value, bool):
            raise MeiliError(
                "invalid_swap_rename",
                f"Invalid value type at `[{i}].rename`: expected a boolean, but found {json_kind(value)}: `{_json(value)}`",
            )
        out.append(value)
    return out
