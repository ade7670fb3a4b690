"""`/indexes/{uid}/similar` requests (GET and POST) validated as 1.50 validates them.

One parser for Miroir and the devnode: the answer is the POST body the request stands
for, every field checked (codes `invalid_similar_*`, `bad_request` for a missing one).
Pure: no I/O.
"""

from __future__ import annotations

import json
import re
from typing import Any

from miroir.core.documents import invalid_document_id
from miroir.core.errors import MeiliError, json_kind, query_bool, query_uint, unknown_param

SIMILAR_FIELDS = (
    "id", "embedder", "offset", "limit", "attributesToRetrieve", "retrieveVectors", "filter",
    "showRankingScore", "showRankingScoreDetails", "showPerformanceDetails", "rankingScoreThreshold",
)
_BOOLS = ("retrieveVectors", "showRankingScore", "showRankingScoreDetails", "showPerformanceDetails")
_DOC_ID = re.compile(r"^[A-Za-z0-9_-]{1,511}$")


def _code(name: str) -> str:
    return "invalid_similar_" + "".join("_" + c.lower() if c.isupper() else c for c in name)


def _type_error(name: str, expected: str, v: Any) -> MeiliError:
    shown = "null" if v is None else f"{json_kind(v)}: `{json.dumps(v, separators=(',', ':'))}`"
    return MeiliError(_code(name), f"Invalid value type at `.{name}`: expected {expected}, but found {shown}")


def _bad_id(v: Any) -> MeiliError:
    return invalid_document_id(v, "invalid_similar_id", "Invalid value at `.id`: ")


def validate_similar_body(body: Any) -> dict:
    """Fields checked in the order the body gives them (deserr's), missing ones after."""
    if not isinstance(body, dict):
        raise MeiliError("bad_request", f"Invalid value type: expected an object, but found {json_kind(body)}")
    for k, v in body.items():
        if k not in SIMILAR_FIELDS:
            raise MeiliError(
                "bad_request", f"Unknown field `{k}`: expected one of " + ", ".join(f"`{f}`" for f in SIMILAR_FIELDS)
            )
        _check_field(k, v)
    if "id" not in body:
        raise MeiliError("bad_request", "Missing field `id`")
    if "embedder" not in body:
        raise MeiliError("bad_request", "Missing field `embedder`")
    return dict(body)


def _check_field(name: str, v: Any) -> None:
    if name == "id":
        if isinstance(v, bool) or not ((isinstance(v, int) and v >= 0) or (isinstance(v, str) and _DOC_ID.match(v))):
            raise _bad_id(v)
    elif name == "embedder":
        if not isinstance(v, str):
            raise _type_error("embedder", "a string", v)
    elif name in ("offset", "limit"):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise _type_error(name, "a positive integer", v)
    elif name in _BOOLS:
        if not isinstance(v, bool):
            raise _type_error(name, "a boolean", v)
    elif name == "attributesToRetrieve":
        if v is not None and (not isinstance(v, list) or not all(isinstance(a, str) for a in v)):
            raise _type_error("attributesToRetrieve", "an array", v)
    elif name == "rankingScoreThreshold":
        if v is None:
            return
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise _type_error("rankingScoreThreshold", "a number", v)
        if not 0.0 <= v <= 1.0:
            raise MeiliError(
                "invalid_similar_ranking_score_threshold",
                "Invalid value at `.rankingScoreThreshold`: the value of `rankingScoreThreshold` is invalid, "
                "expected a float between `0.0` and `1.0`.",
            )
    elif name == "filter" and v is not None and not isinstance(v, (str, list)):
        raise MeiliError(
            "invalid_similar_filter",
            f"Invalid syntax for the filter parameter: `expected String, Array, found: {json.dumps(v)}`.",
        )


def similar_body_from_query(query: list[tuple[str, str]]) -> dict:
    """GET /similar's query string as the POST body it stands for (then validated)."""
    out: dict[str, Any] = {}
    for name, value in query:
        if name in out:
            continue
        if name in ("offset", "limit"):
            out[name] = query_uint(_code(name), name, value)
        elif name in _BOOLS:
            out[name] = query_bool(_code(name), name, value)
        elif name == "attributesToRetrieve":
            out[name] = [v.strip() for v in value.split(",")]
        elif name == "rankingScoreThreshold":
            try:
                out[name] = float(value)
            except ValueError:
                raise MeiliError(
                    _code(name), f"Invalid value in parameter `{name}`: could not parse `{value}` as a float"
                ) from None
        elif name in SIMILAR_FIELDS:
            out[name] = value
        else:
            raise unknown_param(name, SIMILAR_FIELDS)
    if "embedder" not in out:
        raise MeiliError("bad_request", "Missing parameter `embedder`")
    if "id" not in out:
        raise MeiliError("bad_request", "Missing parameter `id`")
    return validate_similar_body(out)
