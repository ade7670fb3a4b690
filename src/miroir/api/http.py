"""JSON in and out for route modules: msgspec encoding, Meilisearch-shaped errors.

Route handlers stay short: `body = await json_body()` (a Meilisearch JSON-only route:
its 415s) or `decode_json(await body_bytes(), MyStruct)`, call the engine,
`return json_response(result)`. Raise `MeiliError` anywhere; the app's error handler
turns it into the response. Every route reads its body through `body_bytes`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import msgspec
from quart import Response, request

from miroir.api.context import current_miroir
from miroir.core.documents import decode_content_encoding
from miroir.core.errors import MeiliError
from miroir.core.jsonlimits import as_serde_numbers, malformed, nesting_error, recursion_error
from miroir.core.searchplan import json_content_type_error

T = TypeVar("T")

_encoder = msgspec.json.Encoder()
JSON_CONTENT_TYPE = "application/json"


def encode_json(obj: Any) -> bytes:
    return _encoder.encode(obj)


def json_response(obj: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    """Encode `obj` (Structs, dicts, lists...) with msgspec; 204 gets an empty body."""
    body = b"" if status == 204 else encode_json(obj)
    resp = Response(body, status=status, content_type=JSON_CONTENT_TYPE)
    if headers:
        for k, v in headers.items():
            resp.headers[k] = v
    return resp


def read_response(result: tuple[Any, Mapping[str, str] | None]) -> Response:
    """A scatter read's answer with the headers the engine returned (`X-Miroir-Degraded`)."""
    answer, headers = result
    return json_response(answer, headers=headers)


def error_response(err: MeiliError, headers: Mapping[str, str] | None = None) -> Response:
    return json_response(err.body(), status=err.status, headers=headers)


def decode_json(data: bytes, type: type[T] = Any, *, code: str | None = None) -> T:  # type: ignore[assignment]
    """Decode a JSON body into `type`.

    Syntax errors are `malformed_payload`. Shape errors (wrong field type, unknown field)
    are `code` when the caller gives one (e.g. `bad_request`, `invalid_search_q`), since
    Meilisearch reports those per parameter; otherwise `malformed_payload` too. serde_json's
    limits apply (see core/jsonlimits): nesting 128 deep is `malformed_payload`, integers
    beyond 64 bits become floats.
    """
    if not data.strip():
        raise MeiliError("missing_payload", "A json payload is missing.")
    err = nesting_error(data)
    if err is not None:
        raise err
    try:
        value = msgspec.json.decode(data, type=type)
    except msgspec.ValidationError as e:
        if code is not None:
            raise MeiliError(code, str(e)) from None
        raise malformed(str(e)) from None
    except msgspec.DecodeError as e:
        raise malformed(str(e)) from None
    except RecursionError:  # nesting_error lets none through; kept as a guard
        raise recursion_error() from None
    return as_serde_numbers(value, data) if type is Any else value


async def body_bytes(*, cache: bool = True) -> bytes:
    """Read the whole request body. Handlers that take a body call this FIRST: answering
    an error without consuming the body stalls the next request of the keep-alive
    connection (hypercorn h11), so validation must come after the read.

    `cache=False` drops Quart's own buffer once the bytes are returned (big document
    batches: the body is not held twice); a later read then gets an empty body."""
    data = await request.get_data(cache=cache, as_text=False, parse_form_data=False)
    assert isinstance(data, bytes)
    # 1.50 decodes `Content-Encoding: gzip | deflate | br` bodies (held to the payload limit).
    limit = current_miroir().config.server.max_body_bytes
    return decode_content_encoding(data, request.headers.get("Content-Encoding"), limit)


async def json_bytes() -> bytes:
    """The body of a route that only accepts JSON, read first (see `body_bytes`), then
    Meilisearch's 415s; for a handler that decodes it itself (search's typed decoder)."""
    data = await body_bytes()
    refused = json_content_type_error(request.headers.get("Content-Type"))
    if refused is not None:
        raise refused
    return data


async def json_body() -> Any:
    """The decoded JSON body of a route that only accepts JSON (Meilisearch's 415s)."""
    return decode_json(await json_bytes())
