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
    """An error with a Meilisearch code; the HTTP layers turn it into the response.

    `index_scoped` marks the errors milli raises while it runs a search or a task on one
    index: Meilisearch words those `Index `uid`: ...` (`in_index`), where the errors of
    the route itself (deserr's, the filter parser's) carry no index.
    """

    index_scoped = False

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


def serde_unexpected(value: object) -> str:
    """serde_json's name for a JSON value in its "invalid type" errors (`JsonUnexpected`)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean `{'true' if value else 'false'}`"
    if isinstance(value, int):
        return f"integer `{value}`"
    if isinstance(value, float):
        return f"floating point `{value!r}`"
    if isinstance(value, str):
        return "string " + json_text(value)
    return "sequence" if isinstance(value, list) else "map"


def json_text(value: object) -> str:
    """A JSON value as Meilisearch's texts quote it: compact, non-ASCII as is."""
    return msgspec.json.encode(value).decode()


def type_text(where: str, value: object, expected: str) -> str:
    """deserr's text for a JSON value of the wrong kind at `where` (a path like `.uid`,
    `[0]`, or "" for the whole body); null is named, never shown."""
    at = f" at `{where}`" if where else ""
    found = json_kind(value)
    if value is not None:
        found += f": `{json_text(value)}`"
    return f"Invalid value type{at}: expected {expected}, but found {found}"


def type_error(code: str, where: str, value: object, expected: str) -> MeiliError:
    """Meilisearch's "Invalid value type at `where`" error for a JSON value of the wrong kind."""
    return MeiliError(code, type_text(where, value, expected))


def body_type_error(value: object, expected: str = "an object") -> MeiliError:
    """deserr's error for a request body of the wrong kind (`bad_request`)."""
    return MeiliError("bad_request", type_text("", value, expected))


def index_scoped(err: MeiliError) -> MeiliError:
    """Mark `err` as raised by milli on one index (see `MeiliError.index_scoped`)."""
    err.index_scoped = True
    return err


def in_index(uid: str, err: MeiliError) -> MeiliError:
    """`err` as Meilisearch reports a milli error of index `uid`: its message prefixed."""
    if not err.index_scoped or err.message.startswith(f"Index `{uid}`: "):
        return err
    return MeiliError(err.code, f"Index `{uid}`: {err.message}", err.status, err.type)


# milli's texts for attributes a request may not use. Two wordings coexist in 1.50: the
# filter's (`attribute patterns`, each pattern quoted) and the facet distribution's and
# distinct's (`attributes patterns`, the list quoted once).
NO_FILTERABLE = "This index does not have configured filterable attributes."
HIDDEN_ATTRIBUTES = ", <..hidden-attributes>"


def not_filterable_text(attr: str, patterns: list[str]) -> str:
    """milli's filter error for `attr`, before the position line; `patterns` sorted."""
    if not patterns:
        return f"Attribute `{attr}` is not filterable. {NO_FILTERABLE}"
    listed = ", ".join(f"`{p}`" for p in patterns)
    return f"Attribute `{attr}` is not filterable. Available filterable attribute patterns are: {listed}."


def patterns_tail(patterns: list[str], hidden: bool = False) -> str:
    """The end of milli's facet distribution and distinct errors; `patterns` sorted."""
    if not patterns:
        return NO_FILTERABLE
    return f"Available filterable attributes patterns are: `{', '.join(patterns)}{HIDDEN_ATTRIBUTES if hidden else ''}`."


def not_facet_searchable(name: str, patterns: list[str], hidden: bool = False, rule: int | None = None) -> MeiliError:
    """milli's facet-search error: `patterns` (sorted) are the facet-searchable ones, `rule`
    the index of the filterableAttributes rule `name` matches without enabling facetSearch."""
    hint = "To make it facet-searchable add it to the `filterableAttributes` index settings."
    if rule is not None:
        tail = (
            f"Note: this attribute matches rule #{rule} in filterableAttributes, but this rule does not enable facetSearch.\n"
            f'Hint: enable facetSearch in rule #{rule} by adding `"facetSearch": true` to the rule.\n'
            f"Hint: prepend another rule matching {name} with facetSearch: true before rule #{rule}"
        )
    elif patterns:
        listed = ", ".join(patterns) + (HIDDEN_ATTRIBUTES if hidden else "")
        tail = f"Available facet-searchable attributes patterns are: `{listed}`. {hint}"
    else:
        tail = f"This index does not have configured facet-searchable attributes. {hint}"
    return MeiliError("invalid_facet_search_facet_name", f"Attribute `{name}` is not facet-searchable. {tail}")


def facet_not_filterable(name: str, patterns: list[str]) -> MeiliError:
    return MeiliError("invalid_search_facets", f"Invalid facet distribution: Pattern `{name}` is not filterable. {patterns_tail(patterns)}")


def distinct_not_filterable(name: str, patterns: list[str], hidden: bool = False) -> MeiliError:
    return index_scoped(
        MeiliError(
            "invalid_search_distinct",
            f"Attribute `{name}` is not filterable and thus, cannot be used as distinct attribute. {patterns_tail(patterns, hidden)}",
        )
    )


def not_searchable(name: str, searchable: list[str], hidden: bool = False) -> MeiliError:
    return index_scoped(
        MeiliError(
            "invalid_search_attributes_to_search_on",
            f"Attribute `{name}` is not searchable. Available searchable attributes are: `{', '.join(searchable)}{HIDDEN_ATTRIBUTES if hidden else ''}`.",
        )
    )


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


def invalid_index_uid(uid: str, where: str = "") -> MeiliError:
    """`where`: the body field that held `uid` (deserr then says so), "" for a path."""
    at = f"Invalid value at `{where}`: " if where else ""
    return MeiliError("invalid_index_uid", at + invalid_index_uid_message(uid))


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
