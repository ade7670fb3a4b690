"""Meilisearch's `/tasks` query language: parse, filter, paginate (design §5).

Shared by the devnode and Miroir's own `/tasks`, `/tasks/cancel` and `DELETE /tasks`,
so both reject the same parameters with the same error codes. Pure module: no I/O.

Tasks are handled as Meilisearch's JSON task views (dicts with `uid`, `batchUid`,
`indexUid`, `status`, `type`, `canceledBy`, `details`, `enqueuedAt`, `startedAt`,
`finishedAt`), because that is the shape both users already hold.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable, Mapping

import msgspec

from miroir.core.errors import MeiliError, valid_index_uid

DEFAULT_LIMIT = 20

TASK_STATUSES = ("enqueued", "processing", "succeeded", "failed", "canceled")
TASK_TYPES = (
    "documentAdditionOrUpdate",
    "documentEdition",
    "documentDeletion",
    "settingsUpdate",
    "indexCreation",
    "indexDeletion",
    "indexUpdate",
    "indexSwap",
    "taskCancelation",
    "taskDeletion",
    "dumpCreation",
    "snapshotCreation",
    "export",
    "upgradeDatabase",
    "indexCompaction",
    "networkTopologyChange",
    "dsrUpdate",
    "dsrClear",
)

# Query parameter -> (task view field, error code suffix); order is Meilisearch's.
_DATE_PARAMS = {
    "afterEnqueuedAt": ("enqueuedAt", "after"),
    "beforeEnqueuedAt": ("enqueuedAt", "before"),
    "afterStartedAt": ("startedAt", "after"),
    "beforeStartedAt": ("startedAt", "before"),
    "afterFinishedAt": ("finishedAt", "after"),
    "beforeFinishedAt": ("finishedAt", "before"),
}
_FILTER_PARAMS = ("batchUids", "uids", "canceledBy", "types", "statuses", "indexUids", *_DATE_PARAMS)
# `DELETE /tasks` and `POST /tasks/cancel` list them in another order (1.50's
# TaskDeletionOrCancelationQuery).
_DELETION_PARAMS = ("uids", "batchUids", "canceledBy", "types", "statuses", "indexUids", *_DATE_PARAMS)
_PAGING_PARAMS = ("limit", "from", "reverse")


class TaskQuery(msgspec.Struct, kw_only=True):
    """A parsed `/tasks` query. `None` for a filter means "not filtered" (absent or `*`)."""

    uids: frozenset[int] | None = None
    batch_uids: frozenset[int] | None = None
    canceled_by: frozenset[int] | None = None
    types: frozenset[str] | None = None
    statuses: frozenset[str] | None = None
    index_uids: frozenset[str] | None = None
    # (task field, "after"|"before", bound as epoch seconds); bounds are exclusive.
    dates: tuple[tuple[str, str, float], ...] = ()
    limit: int = DEFAULT_LIMIT
    from_: int | None = None
    reverse: bool = False
    # True when any filter parameter was given, `*` included: cancel/delete need one.
    has_filters: bool = False
    # The query string as the client sent it, for `details.originalFilter`.
    original: str = ""


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name)


def _invalid(param: str, message: str) -> MeiliError:
    return MeiliError(f"invalid_task_{_snake(param)}", f"Invalid value in parameter `{param}`: {message}")


def _split(value: str) -> list[str] | None:
    parts = [p.strip() for p in value.split(",")]
    return None if "*" in parts else parts


def _ints(param: str, value: str) -> frozenset[int] | None:
    parts = _split(value)
    if parts is None:
        return None
    out = set()
    for i, p in enumerate(parts):
        if not p.isdigit() or int(p) >= 2**32:
            # deserr names the element of a list (`uids[1]`), not a lone value (`uids`)
            where = f"{param}[{i}]" if len(parts) > 1 else param
            raise MeiliError(f"invalid_task_{_snake(param)}", f"Invalid value in parameter `{where}`: could not parse `{p}` as a positive integer")
        out.add(int(p))
    return frozenset(out)


def _choices(param: str, value: str, allowed: tuple[str, ...], what: str, plural: str) -> frozenset[str] | None:
    parts = _split(value)
    if parts is None:
        return None
    for p in parts:
        if p not in allowed:
            listed = ", ".join(f"`{a}`" for a in allowed)
            raise _invalid(param, f"`{p}` is not a valid task {what}. Available {plural} are {listed}.")
    return frozenset(parts)


def parse_date(param: str, value: str, bound: str) -> float:
    """`YYYY-MM-DD` or RFC 3339 -> epoch seconds.

    A bare date means the whole day, as Meilisearch reads it: `after` a day excludes the
    day itself (bound at its last instant), `before` a day is before its first instant.
    """
    text = value.strip()
    try:
        if len(text) == 10:
            day = _dt.date.fromisoformat(text)
            start = _dt.datetime(day.year, day.month, day.day, tzinfo=_dt.UTC)
            if bound == "after":
                return (start + _dt.timedelta(days=1)).timestamp() - 1e-6  # timestamps have µs resolution
            return start.timestamp()
        if "T" not in text and "t" not in text:
            raise ValueError(text)
        parsed = _dt.datetime.fromisoformat(text.replace("z", "Z"))
        if parsed.tzinfo is None:
            raise ValueError(text)
        return parsed.timestamp()
    except ValueError:
        raise _invalid(
            param, f"`{value}` is an invalid date-time. It should follow the YYYY-MM-DD or RFC 3339 date-time format."
        ) from None


def parse_task_query(params: Iterable[tuple[str, str]] | Mapping[str, str], *, paging: bool = True, query_string: str = "") -> TaskQuery:
    """Parse `/tasks` query parameters. `paging=False` for cancel/delete (no limit/from)."""
    items = list(params.items()) if isinstance(params, Mapping) else list(params)
    allowed = (_PAGING_PARAMS + _FILTER_PARAMS) if paging else _DELETION_PARAMS
    fields: dict = {"original": query_string}
    dates = []
    for name, value in items:
        if name not in allowed:
            listed = ", ".join(f"`{a}`" for a in allowed)
            raise MeiliError("bad_request", f"Unknown parameter `{name}`: expected one of {listed}")
        if name in _FILTER_PARAMS:
            fields["has_filters"] = True
        if name == "limit":
            if not value.isdigit():
                raise _invalid("limit", f"could not parse `{value}` as a positive integer")
            fields["limit"] = int(value)
        elif name == "from":
            if not value.isdigit():
                raise _invalid("from", f"could not parse `{value}` as a positive integer")
            fields["from_"] = int(value)
        elif name == "reverse":
            if value not in ("true", "false"):
                raise _invalid("reverse", f"could not parse `{value}` as a boolean, expected either `true` or `false`")
            fields["reverse"] = value == "true"
        elif name == "uids":
            fields["uids"] = _ints(name, value)
        elif name == "batchUids":
            fields["batch_uids"] = _ints(name, value)
        elif name == "canceledBy":
            fields["canceled_by"] = _ints(name, value)
        elif name == "types":
            fields["types"] = _choices(name, value, TASK_TYPES, "type", "types")
        elif name == "statuses":
            fields["statuses"] = _choices(name, value, TASK_STATUSES, "status", "statuses")
        elif name == "indexUids":
            parts = _split(value)
            if parts is not None:
                for p in parts:
                    if not valid_index_uid(p):
                        raise MeiliError(
                            "invalid_index_uid",
                            f"Invalid value in parameter `{name}`: "
                            f"`{p}` is not a valid index uid. Index uid can be an integer or a string containing only "
                            "alphanumeric characters, hyphens (-) and underscores (_), and can not be more than 512 bytes.",
                        )
                fields["index_uids"] = frozenset(parts)
        else:
            field, bound = _DATE_PARAMS[name]
            if value.strip() != "*":
                dates.append((field, bound, parse_date(name, value, bound)))
    fields["dates"] = tuple(dates)
    return TaskQuery(**fields)


def missing_filters(action: str) -> MeiliError:
    """Cancel/delete without any filter ("cancel" or "delete")."""
    dates = ("beforeEnqueuedAt", "afterEnqueuedAt", "beforeStartedAt", "afterStartedAt", "beforeFinishedAt", "afterFinishedAt")
    listed = ", ".join(f"`{p}`" for p in ("uids", "indexUids", "statuses", "types", "canceledBy", *dates))
    return MeiliError(
        "missing_task_filters",
        f"Query parameters to filter the tasks to {action} are missing. Available query parameters are: {listed}.",
    )


def _epoch(text: str | None) -> float | None:
    if text is None:
        return None
    return _dt.datetime.fromisoformat(text).timestamp()


def _task_indexes(task: Mapping) -> set:
    # A swap has no indexUid but concerns the swapped indexes; Meilisearch matches them.
    if task.get("type") == "indexSwap":
        names = set()
        for swap in (task.get("details") or {}).get("swaps", ()):
            names.update(swap.get("indexes", ()))
        return names
    return {task.get("indexUid")}


def matches(query: TaskQuery, task: Mapping) -> bool:
    """Does one task view satisfy the query's filters (paging ignored)?"""
    if query.uids is not None and task["uid"] not in query.uids:
        return False
    if query.batch_uids is not None and task.get("batchUid") not in query.batch_uids:
        return False
    if query.canceled_by is not None and task.get("canceledBy") not in query.canceled_by:
        return False
    if query.types is not None and task["type"] not in query.types:
        return False
    if query.statuses is not None and task["status"] not in query.statuses:
        return False
    if query.index_uids is not None and not (_task_indexes(task) & query.index_uids):
        return False
    for field, bound, limit in query.dates:
        when = _epoch(task.get(field))
        if when is None:
            return False
        if bound == "after" and not when > limit:
            return False
        if bound == "before" and not when < limit:
            return False
    return True


def apply_task_query(query: TaskQuery, tasks: Iterable[Mapping]) -> dict:
    """Filter and paginate task views: Meilisearch's `GET /tasks` answer, newest first."""
    selected = [t for t in tasks if matches(query, t)]
    selected.sort(key=lambda t: t["uid"], reverse=not query.reverse)
    total = len(selected)
    if query.from_ is not None:
        if query.reverse:
            selected = [t for t in selected if t["uid"] >= query.from_]
        else:
            selected = [t for t in selected if t["uid"] <= query.from_]
    page = selected[: query.limit]
    nxt = selected[query.limit]["uid"] if len(selected) > query.limit else None
    return {
        "results": page,
        "total": total,
        "limit": query.limit,
        "from": page[0]["uid"] if page else None,
        "next": nxt,
    }


def rfc3339(ts: float) -> str:
    """Epoch seconds -> `2024-08-08T17:05:55.791772Z`, always with the fraction as the SDKs expect."""
    moment = _dt.datetime.fromtimestamp(ts, tz=_dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def format_duration(seconds: float) -> str:
    """Seconds -> ISO 8601 duration as Meilisearch prints it (`PT0.012345S`, `P1DT3.5S`)."""
    seconds = max(0.0, seconds)
    days, rest = divmod(seconds, 86400.0)
    prefix = f"P{int(days)}D" if days >= 1 else "P"
    return f"{prefix}T{rest:.6f}S"
