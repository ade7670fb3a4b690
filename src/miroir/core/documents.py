"""Document batches: decoding request bodies, primary keys, document ids (design §4).

Shared by the devnode and Miroir's write path so both accept, infer and reject exactly
the same things. Pure module: no I/O.
"""

from __future__ import annotations

import csv
import io
import math
import re
import zlib
from typing import Any

import msgspec

from miroir.core.errors import MeiliError, json_text, not_sortable, serde_unexpected
from miroir.core.patterns import legacy_match_any
from miroir.core.sortvalue import field_value, sort_key

ACCEPTED_CONTENT_TYPES = ("application/json", "application/x-ndjson", "text/csv")
_ACCEPTED_TEXT = ", ".join(f"`{t}`" for t in ACCEPTED_CONTENT_TYPES)
MAX_ID_BYTES = 511

_json_decoder = msgspec.json.Decoder()

# Meilisearch reads document numbers as serde_json does: an integer that fits neither
# i64 nor u64 becomes an f64, and a number out of f64's range is refused. Python ints
# are unbounded and msgpack (the devnode's snapshots, Miroir's journal) stops at these
# bounds, so wider integers are turned into floats at the door.
MIN_INT = -(2**63)
MAX_INT = 2**64 - 1
# Only a run of 19+ digits can hold such an integer: the body is scanned for one (all
# digits mapped to `0`, one substring search) before any document is walked.
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_RUN = b"0" * 19


def ids_not_a_list(body: bytes, value: Any) -> MeiliError:
    """`POST /documents/delete-batch` with a body other than an array: 1.50 reads it with
    serde (not deserr), whose error names the value and the position it stopped at (the
    end of a scalar, the opening brace of an object)."""
    text = body.decode("utf-8", "replace")
    start = len(text) - len(text.lstrip())
    end = start + 1 if isinstance(value, dict) else len(text.rstrip())
    line = text.count("\n", 0, end) + 1
    column = end - (text.rfind("\n", 0, end) + 1)
    return MeiliError(
        "bad_request", f"Json deserialize error: invalid type: {serde_unexpected(value)}, expected a sequence at line {line} column {column}"
    )


def csv_delimiter_param(value: str | None) -> str | None:
    """The `csvDelimiter` query parameter as 1.50 reads it: one character, ASCII."""
    if value is None:
        return None
    code = "invalid_document_csv_delimiter"
    if len(value) != 1:
        found = "an empty string" if not value else f"the following string of {len(value)} characters: `{value}`"
        raise MeiliError(code, f"Invalid value in parameter `csvDelimiter`: expected a string of one character, but found {found}")
    if not value.isascii():
        raise MeiliError(code, f"csv delimiter must be an ascii character. Found: `{value}`")
    return value


def documents_format(content_type: str | None, csv_delimiter: str | None) -> str:
    """The format of a document payload, with 1.50's errors in its order: the query
    parameter, the Content-Type, then a delimiter given with a type other than CSV."""
    delimiter = csv_delimiter_param(csv_delimiter)
    fmt = payload_format(content_type)
    if delimiter is not None and fmt != "csv":
        raise MeiliError(
            "invalid_content_type",
            f"The Content-Type `{content_type}` does not support the use of a csv delimiter. The csv delimiter can only "
            "be used with the Content-Type `text/csv`.",
        )
    return fmt


def payload_format(content_type: str | None) -> str:
    """Content-Type header -> "json" | "ndjson" | "csv", or Meilisearch's 415 errors."""
    if not content_type:
        raise MeiliError(
            "missing_content_type",
            "A Content-Type header is missing. Accepted values for the Content-Type header are: "
            + _ACCEPTED_TEXT,
        )
    mime = content_type.split(";", 1)[0].strip().lower()
    if mime == "application/json":
        return "json"
    if mime in ("application/x-ndjson", "application/ndjson"):
        return "ndjson"
    if mime == "text/csv":
        return "csv"
    raise MeiliError(
        "invalid_content_type",
        f"The Content-Type `{content_type}` is invalid. Accepted values for the Content-Type header are: "
        + _ACCEPTED_TEXT,
    )


def _malformed(fmt: str, detail: str) -> MeiliError:
    return MeiliError("malformed_payload", f"The `{fmt}` payload provided is malformed. `{detail}`.")


def _malformed_csv(detail: str) -> MeiliError:
    """1.50 words a CSV error (not a JSON one) with a colon."""
    return MeiliError("malformed_payload", f"The `csv` payload provided is malformed: `{detail}`.")


_RUST_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\0": "\\0"}


def _rust_debug(text: str) -> str:
    """A string as Rust's `{:?}` shows it (1.50 quotes CSV cells so in its errors)."""
    out = []
    for ch in text:
        esc = _RUST_ESCAPES.get(ch)
        if esc is None and (ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0):
            esc = f"\\u{{{ord(ch):x}}}"
        out.append(esc if esc is not None else ch)
    return '"' + "".join(out) + '"'


def decode_documents(body: bytes, fmt: str, *, csv_delimiter: str = ",") -> list[dict]:
    """Decode a documents payload into a list of JSON objects (Meilisearch's rules)."""
    if not body or not body.strip():
        raise MeiliError("missing_payload", f"A {fmt} payload is missing.")
    if fmt == "json":
        try:
            value = _json_decoder.decode(body)
        except (msgspec.DecodeError, RecursionError) as e:
            raise _malformed("json", f"Couldn't serialize document value: {_decode_problem(e, body)}") from None
        if isinstance(value, dict):
            value = [value]
        elif not (isinstance(value, list) and all(isinstance(d, dict) for d in value)):
            raise _malformed("json", "Couldn't serialize document value: data are neither an object nor a list of objects")
        return narrowed_documents(value, body, "json")
    if fmt == "ndjson":
        try:
            docs = _json_decoder.decode_lines(body)
        except (msgspec.DecodeError, RecursionError) as e:
            raise _malformed("ndjson", f"Couldn't serialize document value: {_decode_problem(e, body)}") from None
        for d in docs:
            if not isinstance(d, dict):
                raise _malformed("ndjson", "Couldn't serialize document value: data are not objects")
        return narrowed_documents(docs, body, "ndjson")
    if fmt == "csv":
        return _decode_csv(body, csv_delimiter)
    raise AssertionError(f"unknown payload format {fmt!r}")


def _decode_problem(e: Exception, body: bytes = b"") -> str:
    if isinstance(e, RecursionError):
        return "recursion limit exceeded"
    text = str(e)
    unquoted_key = _UNQUOTED_KEY.fullmatch(text)
    if unquoted_key is not None:
        # serde_json's words for it, at the same byte (its line and 1-based column).
        at = int(unquoted_key.group(1))
        line = body.count(b"\n", 0, at) + 1
        line_start = body.rfind(b"\n", 0, at) + 1
        return f"key must be a string at line {line} column {at - line_start + 1}"
    return text


_UNQUOTED_KEY = re.compile(r"JSON is malformed: object keys must be strings \(byte (\d+)\)")


def narrowed_documents(docs: list[dict], body: bytes, fmt: str) -> list[dict]:
    """`docs` with every integer outside i64/u64 turned into a float (see MIN_INT)."""
    if body.translate(_DIGITS_AS_ZERO).find(_LONG_RUN) < 0:
        return docs
    try:
        for doc in docs:
            for key, value in doc.items():
                doc[key] = narrow_numbers(value)
    except (OverflowError, RecursionError):  # an integer beyond f64 too (serde_json refuses it)
        raise _malformed(fmt, "Couldn't serialize document value: Number out of range") from None
    return docs


def narrowed_json(value: Any, body: bytes) -> Any:
    """Any JSON `value` decoded from `body`, integers narrowed as in documents (see
    MIN_INT); OverflowError for an integer beyond f64."""
    if body.translate(_DIGITS_AS_ZERO).find(_LONG_RUN) < 0:
        return value
    return narrow_numbers(value)


def narrow_numbers(value: Any) -> Any:
    """`value` with every integer outside i64/u64 turned into a float (in place for
    containers); OverflowError for an integer beyond f64."""
    cls = value.__class__
    if cls is int:
        return value if MIN_INT <= value <= MAX_INT else float(value)
    if cls is dict:
        for key, item in value.items():
            value[key] = narrow_numbers(item)
    elif cls is list:
        for i, item in enumerate(value):
            value[i] = narrow_numbers(item)
    return value


def _decode_csv(body: bytes, delimiter: str) -> list[dict]:
    if len(delimiter) != 1 or not delimiter.isascii():
        raise MeiliError("invalid_document_csv_delimiter", "Invalid value in parameter `csvDelimiter`: expected a string of one character, but found the following string of 2 characters: `" + delimiter + "`")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _malformed_csv(f"CSV error: invalid utf-8: {e}") from None
    # Byte offset of each physical line: 1.50's field-count error names where its record starts.
    line_starts = [0]
    for line in text.split("\n"):
        line_starts.append(line_starts[-1] + len(line.encode()) + 1)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise MeiliError("missing_payload", "A csv payload is missing.") from None
    except csv.Error as e:
        raise _malformed_csv(f"CSV error: {e}") from None
    columns: list[tuple[str, str]] = []
    for raw in header:
        name, _, kind = raw.rpartition(":")
        if not name or kind not in ("string", "number", "boolean"):
            name, kind = raw, "string"
        columns.append((name, kind))
    docs: list[dict] = []
    record = 0  # the header is record 0, as the csv crate counts
    try:
        while True:
            start_line = reader.line_num  # physical lines read before this record
            row = next(reader, None)
            if row is None:
                break
            if not row:  # an empty line is no record
                continue
            record += 1
            if len(row) != len(columns):
                raise _malformed_csv(
                    f"CSV error: record {record} (line: {start_line + 1}, byte: {line_starts[min(start_line, len(line_starts) - 1)]}): "
                    f"found record with {len(row)} fields, but the previous record has {len(columns)} fields"
                )
            doc: dict[str, Any] = {}
            for (name, kind), cell in zip(columns, row):
                doc[name] = _csv_value(cell, kind, name, record)
            docs.append(doc)
    except csv.Error as e:
        raise _malformed_csv(f"CSV error: {e}") from None
    return docs


def _csv_value(cell: str, kind: str, name: str, lineno: int) -> Any:
    """One cell as 1.50 reads it (`lineno`: the record's number, 1 for the first after
    the header); an empty cell is null whatever its type."""
    if kind == "string":
        return cell if cell else None
    if cell.strip() == "":
        return None
    if kind == "number":
        return _csv_number(cell.strip(), lineno, cell)
    if cell.strip().lower() in ("true", "false"):
        return cell.strip().lower() == "true"
    raise _malformed_csv(f"Error parsing boolean {_rust_debug(cell)} at line {lineno}: provided string was not `true` or `false`")


_CSV_INT = re.compile(r"[+-]?[0-9]+")
_CSV_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[+-]?(?i:inf|infinity|nan)")


def _csv_number(text: str, lineno: int, cell: str) -> Any:
    """Meilisearch's CSV number: an i64 if it parses as one, else an f64 (a value out of
    f64's range, or NaN, becomes null as serde_json makes it)."""
    if _CSV_INT.fullmatch(text):
        value = int(text)
        if -(2**63) <= value < 2**63:
            return value
    if not _CSV_FLOAT.fullmatch(text):
        raise _malformed_csv(f"Error parsing number {_rust_debug(cell)} at line {lineno}: invalid float literal")
    f = float(text)
    return f if math.isfinite(f) else None


def infer_primary_key(docs: list[dict]) -> str:
    """Meilisearch's inference: the attribute of the first document whose name ends with "id"."""
    if not docs:
        raise MeiliError(
            "index_primary_key_no_candidate_found",
            "The primary key inference failed as the engine did not find any field ending with `id` in its name. "
            "Please specify the primary key manually using the `primaryKey` query parameter.",
        )
    candidates = sorted(k for k in docs[0] if k.lower().endswith("id"))  # byte order, as milli sorts them
    if not candidates:
        raise MeiliError(
            "index_primary_key_no_candidate_found",
            "The primary key inference failed as the engine did not find any field ending with `id` in its name. "
            "Please specify the primary key manually using the `primaryKey` query parameter.",
        )
    if len(candidates) > 1:
        # 1.50 names only the first two, whatever the count.
        raise MeiliError(
            "index_primary_key_multiple_candidates_found",
            f"The primary key inference failed as the engine found {len(candidates)} fields ending with `id` in their names: "
            f"'{candidates[0]}' and '{candidates[1]}'. Please specify the primary key manually using the `primaryKey` query "
            "parameter.",
        )
    return candidates[0]


def valid_document_id(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return MIN_INT <= value <= MAX_INT  # i64 or u64, as Meilisearch's id visitor takes them
    if isinstance(value, str):
        return ID_PATTERN.fullmatch(value) is not None
    return False


# A valid string id: 1 to 511 ASCII letters, digits, `-` or `_` (ASCII only, so
# characters are bytes here).
ID_PATTERN = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_ID_BYTES}}}")


def document_id(doc: dict, primary_key: str) -> str:
    """The canonical id of one document, or Meilisearch's missing/invalid id error."""
    value = doc.get(primary_key, _ABSENT) if "." not in primary_key else _nested(doc, primary_key)
    if value is _ABSENT:
        raise MeiliError(
            "missing_document_id",
            f"Document doesn't have a `{primary_key}` attribute: `{json_text(doc)}`.",
        )
    if not valid_document_id(value):
        raise invalid_document_id(value)
    return value if isinstance(value, str) else str(value)


def invalid_document_id(value: Any, code: str = "invalid_document_id", where: str = "") -> MeiliError:
    """1.50's refusal of a document id (`where`: the prefix naming its place, if any)."""
    return MeiliError(
        code,
        f"{where}Document identifier `{json_text(value)}` is invalid. A document identifier can be of type integer "
        "or string, only composed of alphanumeric characters (a-z A-Z 0-9), hyphens (-) and underscores (_), "
        "and can not be more than 511 bytes.",
    )


def check_listing_ids(ids: Any) -> None:
    """1.50's check of a document listing's `ids` (GET's list or the fetch body's JSON
    values): the first that is no valid id is refused."""
    for i, v in enumerate(ids or ()):
        if not valid_document_id(v):
            raise invalid_document_id(v, "invalid_document_ids", f"In `.ids[{i}]`: ")


_ABSENT = object()


def _nested(doc: dict, path: str) -> Any:
    cur: Any = doc
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return _ABSENT
        cur = cur[part]
    return cur


def resolve_primary_key(index_pk: str | None, requested_pk: str | None, docs: list[dict], index_uid: str) -> str:
    """The key a batch is routed by: the index's, else ?primaryKey=, else inferred."""
    if index_pk is not None:
        if requested_pk is not None and requested_pk != index_pk:
            raise MeiliError(
                "index_primary_key_already_exists",
                f"Index `{index_uid}` already has a primary key: `{index_pk}`.",
            )
        return index_pk
    if requested_pk is not None:
        return requested_pk
    return infer_primary_key(docs)


# --- sorted document listings (1.50's `sort` on GET /documents and POST /documents/fetch) ---


def parse_document_sort(values: list[str], sortable: list[str]) -> list[tuple[str, bool]]:
    """`["rating:desc", ...]` -> [(attribute, ascending)], refused with 1.50's
    `invalid_document_sort` texts. `sortable`: the index's sortable attribute names
    (patterns as in the settings)."""
    out: list[tuple[str, bool]] = []
    for raw in values:
        name, sep, direction = raw.strip().rpartition(":")
        if not sep or direction not in ("asc", "desc") or not name:
            raise MeiliError(
                "invalid_document_sort",
                f"Invalid syntax for the sort parameter: expected expression ending by `:asc` or `:desc`, found `{raw}`.",
            )
        if not legacy_match_any(sortable, name):  # milli's is_faceted: no wildcard
            raise not_sortable("invalid_document_sort", name, sortable)
        out.append((name, direction == "asc"))
    return out


def document_sort_key(doc: dict, criteria: list[tuple[str, bool]]) -> tuple:
    """The key that orders documents by `criteria` as Meilisearch does (numbers before
    strings, missing last whatever the direction): one definition for the devnode's
    listing and Miroir's merge of the shards' sorted pages."""
    return tuple(sort_key(field_value(doc, name), asc) for name, asc in criteria)


# --- request bodies with Content-Encoding (1.50 decodes gzip, deflate and br) ---------


def _incomplete() -> MeiliError:
    return MeiliError("bad_request", "The provided payload is incomplete and cannot be parsed")


def _too_large(limit: int) -> MeiliError:
    return MeiliError(
        "payload_too_large",
        f"The provided payload reached the size limit. The maximum accepted payload size is {_human_size(limit)}.",
    )


def _human_size(n: int) -> str:
    for unit, size in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if n >= size:
            return f"{n / size:g} {unit}"
    return f"{n} B"


def decode_content_encoding(body: bytes, encoding: str | None, limit: int) -> bytes:
    """The request body as sent before `Content-Encoding` (`gzip`, `deflate` = zlib,
    `br`), as 1.50 decodes it; any other encoding is left as is (1.50 parses the raw
    bytes). The decoded size is held to `limit` as it is produced, so a small
    compressed body cannot expand past the payload limit (413). A broken stream is
    1.50's `bad_request` "incomplete" error."""
    name = (encoding or "").strip().lower()
    if not body or name not in ("gzip", "x-gzip", "deflate", "br"):
        return body
    if name == "br":
        return _brotli(body, limit)
    wbits = 16 + zlib.MAX_WBITS if name != "deflate" else zlib.MAX_WBITS
    out = bytearray()
    data = body
    try:
        while data:
            d = zlib.decompressobj(wbits)
            while True:
                chunk = d.decompress(data, 1 << 20)
                out += chunk
                if len(out) > limit:
                    raise _too_large(limit)
                data = d.unconsumed_tail
                if not data or d.eof:
                    break
            if not d.eof:
                raise _incomplete()
            data = d.unused_data if name != "deflate" else b""  # gzip: concatenated members
    except zlib.error:
        raise _incomplete() from None
    return bytes(out)


def _brotli(body: bytes, limit: int) -> bytes:
    try:
        import brotli  # the `brotli` package (Google's bindings), a dependency since 1.50 support
    except ImportError:  # pragma: no cover - installed with Miroir
        raise MeiliError("unsupported_media_type", "Brotli-encoded request bodies need the `brotli` package.") from None
    d = brotli.Decompressor()
    out = bytearray()
    try:
        out += d.process(body, output_buffer_limit=1 << 20)
        while len(out) <= limit and not d.is_finished() and not d.can_accept_more_data():
            out += d.process(b"", output_buffer_limit=1 << 20)
    except brotli.error:
        raise _incomplete() from None
    if len(out) > limit:
        raise _too_large(limit)
    if not d.is_finished():
        raise _incomplete()
    return bytes(out)
