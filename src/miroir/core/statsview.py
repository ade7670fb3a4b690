"""1.50's stats answers: `showInternalDatabaseSizes` / `sizeFormat` and the key order.

Shared by the devnode and Miroir: both compute raw numbers (bytes), this module refuses
bad parameters with 1.50's codes and lays the answer out as 1.50 does (`IndexStats`:
numberOfDocuments, rawDocumentDbSize, avgDocumentSize, isIndexing,
internalDatabaseSizes only when asked and non-empty, numberOfEmbeddings,
numberOfEmbeddedDocuments, fieldDistribution). Pure module.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from miroir.core.errors import MeiliError, query_bool, unknown_param

_PARAMS = ("showInternalDatabaseSizes", "sizeFormat")
_BINARY = (("PiB", 1 << 50), ("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10))


class StatsParams:
    __slots__ = ("show_internal", "size_format")

    def __init__(self, show_internal: bool = False, size_format: str = "raw"):
        self.show_internal, self.size_format = show_internal, size_format


def parse_stats_params(pairs: Iterable[tuple[str, str]]) -> StatsParams:
    """`GET /stats` and `GET /indexes/{uid}/stats` query parameters (deny unknown)."""
    out = StatsParams()
    for name, value in pairs:
        if name == "showInternalDatabaseSizes":
            out.show_internal = query_bool("invalid_stats_show_internal_database_sizes", name, value)
        elif name == "sizeFormat":
            if value not in ("human", "raw"):
                raise MeiliError(
                    "invalid_stats_size_format",
                    f"Unknown value `{value}` for parameter `sizeFormat`: expected one of `human`, `raw`",
                )
            out.size_format = value
        else:
            raise unknown_param(name, _PARAMS)
    return out


def size(n: int, fmt: str) -> int | str:
    """Bytes as 1.50 shows them: an integer (`raw`), or binary units with two decimals
    (`human`, e.g. `"1.50 KiB"`; whole bytes as `"512 B"`)."""
    if fmt != "human":
        return n
    for unit, scale in _BINARY:
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n} B"


def index_stats_view(raw: Mapping[str, Any], params: StatsParams) -> dict[str, Any]:
    """One index's stats in 1.50's order from raw numbers (`internalDatabaseSizes`:
    {database: bytes}, zero sizes omitted)."""
    fmt = params.size_format
    out: dict[str, Any] = {
        "numberOfDocuments": int(raw.get("numberOfDocuments") or 0),
        "rawDocumentDbSize": size(int(raw.get("rawDocumentDbSize") or 0), fmt),
        "avgDocumentSize": size(int(raw.get("avgDocumentSize") or 0), fmt),
        "isIndexing": bool(raw.get("isIndexing")),
    }
    if params.show_internal:
        internal = {k: size(int(v), fmt) for k, v in (raw.get("internalDatabaseSizes") or {}).items() if v}
        if internal:
            out["internalDatabaseSizes"] = internal
    out["numberOfEmbeddings"] = int(raw.get("numberOfEmbeddings") or 0)
    out["numberOfEmbeddedDocuments"] = int(raw.get("numberOfEmbeddedDocuments") or 0)
    out["fieldDistribution"] = dict(raw.get("fieldDistribution") or {})
    return out


def global_stats_view(raw: Mapping[str, Any], params: StatsParams) -> dict[str, Any]:
    """`GET /stats` from raw numbers: database sizes formatted, every index laid out."""
    return {
        "databaseSize": size(int(raw.get("databaseSize") or 0), params.size_format),
        "usedDatabaseSize": size(int(raw.get("usedDatabaseSize") or 0), params.size_format),
        "lastUpdate": raw.get("lastUpdate"),
        "indexes": {uid: index_stats_view(s, params) for uid, s in (raw.get("indexes") or {}).items()},
    }
