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

from miroir.core.errors import MeiliError

# serde_json's default: the 128th nested array/object is refused.
MAX_DEPTH = 128
_MIN_INT = -(2**63)
_MAX_INT = 2**64 - 1

# A string (skipped whole, escapes included) or one bracket.
_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[{]|[\]}]', re.DOTALL)
# An integer literal that may not fit 64 bits (2**64 has 20 digits).
_LONG_INT = re.compile(rb"\d{20,}")


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
    serde_json reads them. Raises `malformed_payload` for one too large for a float.

    A no-op unless `data` holds a run of 20+ digits, so ordinary bodies pay one regex scan.
    """
    if _LONG_INT.search(data) is None:
        return value
    return _convert(value)


def _convert(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if _MIN_INT <= value <= _MAX_INT:
            return value
        try:
            return float(value)
        except OverflowError:
            raise malformed("number out of range") from None
    if isinstance(value, list):
        return [_convert(v) for v in value]
    if isinstance(value, dict):
        return {k: _convert(v) for k, v in value.items()}
    return value
