"""JSON in and out for route modules: msgspec encoding, Meilisearch-shaped errors.

Route handlers stay short: `body = await read_json(request, MyStruct)`, call the engine,
`return json_response(result)`. Raise `MeiliError` anywhere; the app's error handler
turns it into the response.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import msgspec
from quart import Request, Response

from miroir.core.errors import MeiliError
from miroir.core.jsonlimits import as_serde_numbers, nesting_error, recursion_error

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


def error_response(err: MeiliError, headers: Mapping[str, str] | None = None) -> Response:
    return json_response(err.body(), status=err.status, headers=headers)


def missing_payload(kind: str = "json") -> MeiliError:
    return MeiliError("missing_payload", f"A {kind} payload is missing.")


def malformed_payload(detail: str, kind: str = "json") -> MeiliError:
    return MeiliError("malformed_payload", f"The {kind} payload provided is malformed. `{detail}`.")


def decode_json(data: bytes, type: type[T] = Any, *, code: str | None = None) -> T:  # type: ignore[assignment]
    """Decode a JSON body into `type`.

    Syntax errors are `malformed_payload`. Shape errors (wrong field type, unknown field)
    are `code` when the caller gives one (e.g. `bad_request`, `invalid_search_q`), since
    Meilisearch reports those per parameter; otherwise `malformed_payload` too. serde_json's
    limits apply (see core/jsonlimits): nesting 128 deep is `malformed_payload`, integers
    beyond 64 bits become floats.
    """
    if not data.strip():
        raise missing_payload()
    err = nesting_error(data)
    if err is not None:
        raise err
    try:
        value = msgspec.json.decode(data, type=type)
    except msgspec.ValidationError as e:
        if code is not None:
            raise MeiliError(code, str(e)) from None
        raise malformed_payload(str(e)) from None
    except msgspec.DecodeError as e:
        raise malformed_payload(str(e)) from None
    except RecursionError:  # nesting_error lets none through; kept as a guard
        raise recursion_error() from None
    return as_serde_numbers(value, data) if type is Any else value


async def read_json(request: Request, type: type[T] = Any, *, code: str | None = None) -> T:  # type: ignore[assignment]
    """Read and decode the request body (the size limit applies: 413 payload_too_large)."""
    data = await request.get_data(cache=True, as_text=False, parse_form_data=False)
    assert isinstance(data, bytes)
    return decode_json(data, type, code=code)
