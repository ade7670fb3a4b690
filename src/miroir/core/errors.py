"""Meilisearch-shaped errors, shared by Miroir and the devnode.

Every error a client sees has Meilisearch's shape ``{"message","code","type","link"}``
and Meilisearch's HTTP status for that code. Codes that Miroir adds start with
``miroir_``. Pure module: no I/O.
"""

from __future__ import annotations

import msgspec

from miroir.core.index_uid import (
    invalid_index_uid_message,
    valid_index_uid as valid_index_uid,  # re-exported
)

ERROR_LINK = "https://docs.meilisearch.com/errors#"

# code -> (http status, type). Codes not listed here are `invalid_request` / 400, which
# covers the whole `invalid_settings_*`, `invalid_search_*`, `invalid_task_*` families.
_CODES: dict[str, tuple[int, str]] = {
    "index_not_found": (404, "invalid_request"),
    "index_already_exists": (409, "invalid_request"),
    "document_not_found": (404, "invalid_request"),
    "task_not_found": (404, "invalid_request"),
    "api_key_not_found": (404, "invalid_request"),
    "batch_not_found": (404, "invalid_request"),
    "missing_authorization_header": (401, "auth"),
    "invalid_api_key": (403, "auth"),
    "missing_master_key": (401, "auth"),
    "api_key_already_exists": (409, "invalid_request"),
    "payload_too_large": (413, "invalid_request"),
    "invalid_content_type": (415, "invalid_request"),
    "missing_content_type": (415, "invalid_request"),
    "internal": (500, "internal"),
    "io_error": (500, "system"),
    "no_space_left_on_device": (500, "system"),
    "unretrievable_document": (500, "internal"),
    "database_size_limit_reached": (500, "internal"),
    "miroir_no_quorum": (503, "system"),
    "miroir_shard_unavailable": (503, "system"),
    "miroir_node_unavailable": (503, "system"),
    "miroir_not_ready": (503, "system"),
    "miroir_reserved_field": (400, "invalid_request"),
    "miroir_admin_key_required": (403, "auth"),
    "miroir_node_not_found": (404, "invalid_request"),
}


def status_and_type(code: str) -> tuple[int, str]:
    return _CODES.get(code, (400, "invalid_request"))


class ErrorBody(msgspec.Struct):
    message: str
    code: str
    type: str
    link: str


class MeiliError(Exception):
    """An error with a Meilisearch code; the HTTP layers turn it into the response."""

    def __init__(self, code: str, message: str, status: int | None = None, type: str | None = None):
        super().__init__(message)
        default_status, default_type = status_and_type(code)
        self.code = code
        self.message = message
        self.status = status if status is not None else default_status
        self.type = type if type is not None else default_type

    def body(self) -> ErrorBody:
        return ErrorBody(self.message, self.code, self.type, ERROR_LINK + self.code)

    def to_dict(self) -> dict[str, str]:
        return {"message": self.message, "code": self.code, "type": self.type, "link": ERROR_LINK + self.code}

    def __repr__(self) -> str:
        return f"MeiliError({self.code!r}, {self.message!r}, status={self.status})"


def json_kind(value: object) -> str:
    """How Meilisearch's error texts name the JSON kind of a value (deserr's wording)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "a positive integer" if value >= 0 else "a negative integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def type_error(code: str, where: str, value: object, expected: str) -> MeiliError:
    """Meilisearch's "Invalid value type at `where`" error for a JSON value of the wrong kind."""
    shown = msgspec.json.encode(value).decode()
    return MeiliError(code, f"Invalid value type at `{where}`: expected {expected}, but found {json_kind(value)}: `{shown}`")


def journal_not_replayed() -> MeiliError:
    """503 for a request that needs the journal's state before the daemon replayed it."""
    return MeiliError("miroir_not_ready", "Miroir is starting: the journal is not replayed yet.")


def not_sortable(code: str, name: str, sortable: list[str]) -> MeiliError:
    """milli's error for sorting on `name`, listing the index's `sortable` attributes."""
    if sortable:
        tail = f"Available sortable attributes are: `{', '.join(sorted(sortable))}`."
    else:
        tail = "This index does not have configured sortable attributes."
    return MeiliError(code, f"Attribute `{name}` is not sortable. {tail}")


def unknown_param(name: str, known: tuple[str, ...]) -> MeiliError:
    """1.50's error for a query-string parameter the route does not take."""
    listed = ", ".join(f"`{k}`" for k in known)
    return MeiliError("bad_request", f"Unknown parameter `{name}`: expected one of {listed}")


def query_uint(code: str, name: str, value: str) -> int:
    """A query-string parameter read as 1.50 reads a positive integer: ASCII digits only
    (Python's `isdigit` also takes `²`, which `int` refuses, and `١`, which it reads)."""
    if not (value.isascii() and value.isdigit()):
        raise MeiliError(code, f"Invalid value in parameter `{name}`: could not parse `{value}` as a positive integer")
    return int(value)


def query_bool(code: str, name: str, value: str) -> bool:
    """A query-string parameter read as 1.50 reads a boolean: `true` or `false`."""
    if value not in ("true", "false"):
        raise MeiliError(
            code, f"Invalid value in parameter `{name}`: could not parse `{value}` as a boolean, expected either `true` or `false`"
        )
    return value == "true"


def index_not_found(uid: str) -> MeiliError:
    return MeiliError("index_not_found", f"Index `{uid}` not found.")


def invalid_index_uid(uid: str) -> MeiliError:
    return MeiliError("invalid_index_uid", invalid_index_uid_message(uid))


def find_exception(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    """The first `kind` in `exc` or in the (nested) exception groups trio wraps it in."""
    if isinstance(exc, kind):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for sub in exc.exceptions:
            found = find_exception(sub, kind)
            if found is not None:
                return found
    return None
