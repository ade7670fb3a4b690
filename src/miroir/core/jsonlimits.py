"""The limits Meilisearch's JSON parser (serde_json) puts on a request body, applied before
or after msgspec decodes it (issue 20 point 9).

- Nesting: serde_json refuses a value nested 128 deep (`recursion limit exceeded at line
  L column C`, a `malformed_payload`). msgspec has no limit of its own and raises
  RecursionError near Python's recursion limit, which reached the client as a 500.
- Integers: serde_json reads an integer outside i64/u64 as a float (and one too large for
  a float as `number out of range`). msgspec keeps it a Python int, which no encoder of
  ours (journal, node requests) can write back.

Pure functions over bytes and decoded values.
"""

from __future__ import annotations

import re
from typing import Any

from miroir.core.documents import narrowed_json
from miroir.core.errors import MeiliError

# serde_json's default: the 128th nested array/object is refused.
MAX_DEPTH = 128

# A string (skipped whole, escapes included) or one bracket.
_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[{]|[\]}]', re.DOTALL)


def malformed(detail: str) -> MeiliError:
    return MeiliError("malformed_payload", f"The json payload provided is malformed. `{detail}`.")


def nesting_error(data: bytes) -> MeiliError | None:
    """The error serde_json gives for `data` nested `MAX_DEPTH` deep, else None.

    Costs two `bytes.count` calls for a body with fewer than MAX_DEPTH brackets (every
    search body in practice); only a bracket-heavy body is scanned.
    """
    if data.count(b"[") + data.count(b"{") < MAX_DEPTH:
        return None
    depth = 0
    for m in _TOKENS.finditer(data):
        c = data[m.start()]
        if c == 0x22:  # a string: brackets inside do not count
            continue
        if c in (0x5B, 0x7B):
            depth += 1
            if depth == MAX_DEPTH:
                line = data.count(b"\n", 0, m.start()) + 1
                column = m.start() - data.rfind(b"\n", 0, m.start())
                return malformed(f"recursion limit exceeded at line {line} column {column}")
        else:
            depth -= 1
    return None


def recursion_error() -> MeiliError:
    """For a RecursionError met while handling a body we could not scan (e.g. a document
    batch, not kept after decoding): the same code, without a position."""
    return malformed("recursion limit exceeded")


def as_serde_numbers(value: Any, data: bytes) -> Any:
    """`value` (decoded from `data`) with integers outside i64/u64 turned into floats, as
    serde_json reads them (core/documents.narrowed_json, which document batches use too;
    containers are changed in place). Raises `malformed_payload` for one too large for a
    float. A no-op unless `data` holds a run of 19+ digits: ordinary bodies pay one scan.
    """
    try:
        return narrowed_json(value, data)
    except OverflowError:
        raise malformed("number out of range") from None
