"""`/experimental-features` (Meilisearch 1.50): the 15 runtime flags. Pure module.

Shared by the devnode and Miroir: `PATCH` takes optional booleans (null or absent keeps
the current value) and refuses anything else with 1.50's `bad_request` texts; the answer
lists every flag in 1.50's order, false unless turned on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from miroir.core.errors import MeiliError, json_kind

FEATURES = (
    "metrics",
    "logsRoute",
    "editDocumentsByFunction",
    "containsFilter",
    "dynamicSearchRules",
    "network",
    "getTaskDocumentsRoute",
    "taskQueueCompactionRoute",
    "compositeEmbedders",
    "chatCompletions",
    "multimodal",
    "foreignKeys",
    "disableDocumentsFetchQueue",
    "legacySearch",
    "renderRoute",
)


def features_view(current: Mapping[str, bool] | None) -> dict[str, bool]:
    current = current or {}
    return {name: bool(current.get(name, False)) for name in FEATURES}


def validate_patch(body: Any) -> dict[str, bool]:
    """The flags a PATCH sets (nulls dropped), or 1.50's error."""
    if not isinstance(body, dict):
        shown = msgspec.json.encode(body).decode()
        raise MeiliError("bad_request", f"Invalid value type: expected an object, but found {json_kind(body)}: `{shown}`")
    out: dict[str, bool] = {}
    for key, value in body.items():
        if key not in FEATURES:
            listed = ", ".join(f"`{f}`" for f in FEATURES)
            raise MeiliError("bad_request", f"Unknown field `{key}`: expected one of {listed}")
        if value is None:
            continue
        if not isinstance(value, bool):
            shown = msgspec.json.encode(value).decode()
            raise MeiliError(
                "bad_request", f"Invalid value type at `.{key}`: expected a boolean, but found {json_kind(value)}: `{shown}`"
            )
        out[key] = value
    return out
