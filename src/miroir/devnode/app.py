"""The devnode's HTTP layer: a lean ASGI app speaking Meilisearch's API (design §10).

No framework: the devnode sits on benchmark paths and its routes are a fixed table, so a
regex router plus msgspec encoding is all it needs. Handlers parse the request, call
the engine (reads) or `TaskQueue.enqueue` (writes), and shape Meilisearch's answer.
Errors are `MeiliError`s, rendered with Meilisearch's status, code, type and link.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import msgspec
import structlog
import trio

from miroir.core import batchview, features, fieldlist, statsview, taskquery
from miroir.core.documents import (
    check_listing_ids,
    decode_content_encoding,
    decode_documents,
    documents_format,
    ids_not_a_list,
    invalid_document_id,
    narrowed_json,
    parse_document_sort,
    valid_document_id,
)
from miroir.core.errors import (
    MeiliError,
    body_type_error,
    in_index,
    index_not_found,
    invalid_index_uid,
    json_kind,
    query_bool,
    query_uint,
    type_error,
    unknown_param,
    valid_index_uid,
)
from miroir.core.federation import (
    FederatedQuery,
    Federation,
    IndexFacets,
    at_query,
    check_entry,
    check_facet_indexes,
    check_facet_order,
    decode_entry,
    distinct_fields,
    facets_error,
    hit_document_ids,
    inside,
    merge_federated,
    merge_hits,
    merged_facet_order,
    multi_search_body,
    network_disabled,
    parse_federation,
    performance_details,
    personalization_disabled,
    retrieval_with,
    union_documents,
)
from miroir.core.fields import batch_fields
from miroir.core.filter import check_filter_shape, deletion_filter
from miroir.core.foreign import JoinError
from miroir.core.rankrules import check_compatible, query_rules
from miroir.core.searchplan import (
    facet_search_params,
    finish_answer,
    metadata_wanted,
    parse_search_query_string,
    request_uid,
    search_metadata,
    search_request_from_dict,
)
from miroir.core.settings import task_details
from miroir.core.similar import similar_body_from_query
from miroir.core.swaps import swap_renames, validate_swaps
from miroir.devnode import foreign, settings as settings_mod, tasks as t, vectors
from miroir.devnode.engine import attribute_names, default_settings

log = structlog.get_logger("miroir.devnode.app")

# Meilisearch's default `--http-payload-size-limit` (100 MB).
DEFAULT_MAX_PAYLOAD = 100 * 1024 * 1024
# The Meilisearch version whose API the devnode follows; SDKs gate features on it.
COMPAT_VERSION = "1.50.0"

_json = msgspec.json.Encoder()
_json_dec = msgspec.json.Decoder()
_NO_BODY = object()



_H = TypeVar("_H", bound=Callable[..., Any])


def reads_engines(handler: _H) -> _H:
    """Declares a handler that reads index engines: it runs holding
    `TaskQueue.engine_lock` (the worker mutates engines in a thread under that lock)."""
    handler.reads_engines = True  # type: ignore[attr-defined]
    return handler


class Request:
    __slots__ = ("method", "path", "query", "query_string", "headers", "body")

    def __init__(self, method: str, path: str, query_string: str, headers: dict[str, str], body: bytes):
        self.method = method
        self.path = path
        self.query_string = query_string
        self.query = parse_qsl(query_string, keep_blank_values=True)
        self.headers = headers
        self.body = body

    def param(self, name: str) -> str | None:
        for k, v in self.query:
            if k == name:
                return v
        return None

    def json(self) -> Any:
        """The JSON body, with Meilisearch's content-type and payload errors."""
        ctype = self.headers.get("content-type")
        if not ctype:
            raise MeiliError(
                "missing_content_type",
                "A Content-Type header is missing. Accepted values for the Content-Type header are: `application/json`",
            )
        if ctype.split(";", 1)[0].strip().lower() != "application/json":
            raise MeiliError(
                "invalid_content_type",
                f"The Content-Type `{ctype}` is invalid. Accepted values for the Content-Type header are: `application/json`",
            )
        if not self.body.strip():
            raise MeiliError("missing_payload", "A json payload is missing.")
        try:
            return narrowed_json(_json_dec.decode(self.body), self.body)
        except (msgspec.DecodeError, RecursionError, OverflowError) as e:
            problem = "recursion limit exceeded" if isinstance(e, RecursionError) else e
            problem = "Number out of range" if isinstance(e, OverflowError) else problem
            raise MeiliError("malformed_payload", f"The json payload provided is malformed. `{problem}`.") from None


Handler = Callable[..., Awaitable[tuple[int, Any]]]


_kind = json_kind
_type_error = type_error


def _unknown_field(name: str, allowed: tuple[str, ...]) -> MeiliError:
    listed = ", ".join(f"`{a}`" for a in allowed)
    return MeiliError("bad_request", f"Unknown field `{name}`: expected one of {listed}")


def _str_list(code: str, where: str, value: Any) -> None:
    """A fetch body's list of strings (null allowed), refused as 1.50's decoder words it."""
    if value is None:
        return
    if not isinstance(value, list):
        raise _type_error(code, where, value, "an array")
    for i, v in enumerate(value):
        if not isinstance(v, str):
            raise _type_error(code, f"{where}[{i}]", v, "a string")


def _csv(value: str) -> list[str]:
    return [p.strip() for p in value.split(",") if p.strip()]


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name)


def search_params_from_query(query: list[tuple[str, str]]) -> dict:
    """GET /search parameters as the POST body they stand for (Miroir's parser: one
    list of 1.50's parameters and errors for both)."""
    args: dict[str, str] = {}
    for k, v in query:
        args.setdefault(k, v)
    return msgspec.to_builtins(parse_search_query_string(args))


class DevnodeApp:
    """ASGI application. Holds no state of its own beyond the TaskQueue it is given."""

    def __init__(
        self, queue: t.TaskQueue, *, master_key: str | None = None, max_payload: int = DEFAULT_MAX_PAYLOAD,
        dump_dir: str = "dumps", snapshot_dir: str = "snapshots",
    ):
        self.q = queue
        self.dump_dir = dump_dir
        self.snapshot_dir = snapshot_dir
        self.master_key = master_key
        self.max_payload = max_payload
        self.started = time.time()
        self._routes: list[tuple[re.Pattern, dict[str, Handler]]] = []
        self._build_routes()

    # -- ASGI plumbing ----------------------------------------------------------------

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        status, payload = await self._handle(scope, receive)
        if payload is _NO_BODY:
            body, headers = b"", []
        else:
            body = _json.encode(payload)
            headers = [(b"content-type", b"application/json")]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _handle(self, scope, receive) -> tuple[int, Any]:
        path = scope["path"]
        if len(path) > 1 and path.endswith("/"):
            path = path.rstrip("/")
        method = scope["method"]
        for pattern, methods in self._routes:  # noqa: B007 - `methods` is read after the break
            m = pattern.fullmatch(path)
            if m is not None:
                break
        else:
            return 404, _NO_BODY
        handler = methods.get(method)
        if handler is None:
            return 405, _NO_BODY
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            if path != "/health":
                self._authorize(headers)
            body = await self._read_body(headers, receive)
            req = Request(method, path, scope.get("query_string", b"").decode("latin-1"), headers, body)
            if getattr(handler, "reads_engines", False):
                # The worker mutates engines in a thread while it holds this lock; readers
                # wait for the batch. /health and /tasks never wait, so a busy node still
                # answers probes and task polls (as Meilisearch does while indexing).
                async with self.q.engine_lock:
                    return await handler(req, **m.groupdict())
            return await handler(req, **m.groupdict())
        except (_NotFound, _MethodNotAllowed) as e:
            return e.status, _NO_BODY
        except MeiliError as e:
            return e.status, e.to_dict()
        except Exception as e:  # an engine bug answers 500 like Meilisearch's `internal`
            log.exception("devnode request failed", method=method, path=path)
            return 500, MeiliError("internal", f"Internal error: {e!r}").to_dict()

    def _authorize(self, headers: dict[str, str]) -> None:
        if self.master_key is None:
            return
        auth = headers.get("authorization")
        if auth is None:
            raise MeiliError(
                "missing_authorization_header",
                "The Authorization header is missing. It must use the bearer authorization method.",
            )
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or token.strip() != self.master_key:
            raise MeiliError("invalid_api_key", "The provided API key is invalid.")

    async def _read_body(self, headers: dict[str, str], receive) -> bytes:
        too_large = MeiliError(
            "payload_too_large",
            f"The provided payload reached the size limit. The maximum accepted payload size is {_human(self.max_payload)}.",
        )
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_payload:
            raise too_large
        chunks, size = [], 0
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                break
            chunk = msg.get("body", b"")
            size += len(chunk)
            if size > self.max_payload:
                raise too_large
            chunks.append(chunk)
            if not msg.get("more_body", False):
                break
        # Meilisearch decodes compressed request bodies (gzip, deflate, br; the SDKs'
        # `compress=True`), held to the payload limit.
        return decode_content_encoding(b"".join(chunks), headers.get("content-encoding"), self.max_payload)

    def _build_routes(self) -> None:  # one table
        table: list[tuple[str, str, Handler]] = [
            ("/health", "GET", self.health),
            ("/version", "GET", self.version),
            ("/stats", "GET", self.global_stats),
            ("/indexes", "GET", self.list_indexes),
            ("/indexes", "POST", self.create_index),
            ("/indexes/{uid}", "GET", self.get_index),
            ("/indexes/{uid}", "PATCH", self.update_index),
            ("/indexes/{uid}", "DELETE", self.delete_index),
            ("/indexes/{uid}/stats", "GET", self.index_stats),
            ("/indexes/{uid}/fields", "POST", self.list_fields),
            ("/indexes/{uid}/compact", "POST", self.compact_index),
            ("/swap-indexes", "POST", self.swap_indexes),
            ("/indexes/{uid}/documents", "POST", self.add_documents),
            ("/indexes/{uid}/documents", "PUT", self.update_documents),
            ("/indexes/{uid}/documents", "GET", self.list_documents),
            ("/indexes/{uid}/documents", "DELETE", self.delete_all_documents),
            ("/indexes/{uid}/documents/fetch", "POST", self.fetch_documents),
            ("/indexes/{uid}/documents/delete-batch", "POST", self.delete_batch),
            ("/indexes/{uid}/documents/delete", "POST", self.delete_by_filter),
            ("/indexes/{uid}/documents/{doc_id}", "GET", self.get_document),
            ("/indexes/{uid}/documents/{doc_id}", "DELETE", self.delete_document),
            ("/indexes/{uid}/search", "GET", self.search_get),
            ("/indexes/{uid}/search", "POST", self.search_post),
            ("/indexes/{uid}/facet-search", "POST", self.facet_search),
            ("/indexes/{uid}/similar", "GET", self.similar_get),
            ("/indexes/{uid}/similar", "POST", self.similar_post),
            ("/multi-search", "POST", self.multi_search),
            ("/indexes/{uid}/settings", "GET", self.get_settings),
            ("/indexes/{uid}/settings", "PATCH", self.patch_settings),
            ("/indexes/{uid}/settings", "DELETE", self.reset_settings),
            ("/indexes/{uid}/settings/{route}", "GET", self.get_setting),
            ("/indexes/{uid}/settings/{route}", "PUT", self.put_setting),
            ("/indexes/{uid}/settings/{route}", "PATCH", self.put_setting),
            ("/indexes/{uid}/settings/{route}", "DELETE", self.reset_setting),
            ("/batches", "GET", self.list_batches),
            ("/batches/{batch_uid}", "GET", self.get_batch),
            ("/experimental-features", "GET", self.get_features),
            ("/experimental-features", "PATCH", self.patch_features),
            ("/tasks", "GET", self.list_tasks),
            ("/tasks", "DELETE", self.delete_tasks),
            ("/tasks/cancel", "POST", self.cancel_tasks),
            ("/tasks/{task_uid}", "GET", self.get_task),
            ("/dumps", "POST", self.create_dump),
            ("/snapshots", "POST", self.create_snapshot),
        ]
        by_path: dict[str, dict[str, Handler]] = {}
        for path, method, handler in table:
            by_path.setdefault(path, {})[method] = handler
        for path, methods in by_path.items():
            regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path)
            self._routes.append((re.compile(regex), methods))

    # -- helpers ------------------------------------------------------------------------

    def _index(self, uid: str) -> t.IndexEntry:
        if not valid_index_uid(uid):
            raise invalid_index_uid(uid)
        entry = self.q.indexes.get(uid)
        if entry is None:
            raise index_not_found(uid)
        return entry

    @staticmethod
    def _check_uid(uid: str) -> str:
        if not valid_index_uid(uid):
            raise invalid_index_uid(uid)
        return uid

    async def _task(
        self, type_: str, index_uid: str | None, op: t.Op, details: dict | None, custom_metadata: str | None = None
    ) -> tuple[int, dict]:
        rec = await self.q.enqueue(type_, index_uid, op, details, custom_metadata)
        return 202, rec.summary()

    @staticmethod
    def _custom_metadata(req: Request, allowed: tuple[str, ...] = ("customMetadata",)) -> str | None:
        """1.50's `customMetadata` query parameter, after refusing unknown ones."""
        for name, _ in req.query:
            if name not in allowed:
                raise unknown_param(name, allowed)
        return req.param("customMetadata")

    @staticmethod
    def _skip_creation(req: Request) -> bool:
        value = req.param("skipCreation")
        if value is None or value.lower() == "false":
            return False
        if value.lower() == "true":
            return True
        raise MeiliError("invalid_skip_creation", f"skipCreation must be either `true` or `false`. Found: `{value}`")

    # -- system ---------------------------------------------------------------------------

    async def health(self, req: Request):
        return 200, {"status": "available"}

    async def version(self, req: Request):
        return 200, {"commitSha": "miroir-devnode", "commitDate": "unknown", "pkgVersion": COMPAT_VERSION}

    def _index_stats(self, uid: str, entry: t.IndexEntry) -> dict:
        """Raw numbers (bytes); `statsview` lays them out. The documents' size is their
        JSON encoding; the embedding counts come from the engine's vector store."""
        stats = dict(entry.engine.stats())
        stats["isIndexing"] = self.q.is_indexing(uid)
        raw = sum(len(_json.encode(d)) for d in entry.engine.documents())
        n = int(stats.get("numberOfDocuments") or 0)
        stats.update(
            rawDocumentDbSize=raw, avgDocumentSize=raw // n if n else 0,
            # "main": the index's settings and metadata, there even when it is empty.
            internalDatabaseSizes={"documents": raw, "main": len(_json.encode(entry.engine.settings))},
        )
        return stats

    @reads_engines
    async def global_stats(self, req: Request):
        params = statsview.parse_stats_params(req.query)
        indexes = {uid: self._index_stats(uid, e) for uid, e in sorted(self.q.indexes.items())}
        if self.q.store is not None:
            size = await trio.to_thread.run_sync(self.q.store.disk_size)
        else:  # in memory: what the documents take
            size = sum(int(s["rawDocumentDbSize"]) for s in indexes.values())
        raw = {"databaseSize": size, "usedDatabaseSize": size, "lastUpdate": self.q.last_update, "indexes": indexes}
        return 200, statsview.global_stats_view(raw, params)

    # -- indexes --------------------------------------------------------------------------

    @reads_engines
    async def list_indexes(self, req: Request):
        offset, limit = 0, 20
        for name, value in req.query:
            if name == "offset":
                offset = query_uint("invalid_index_offset", name, value)
            elif name == "limit":
                limit = query_uint("invalid_index_limit", name, value)
            else:
                raise unknown_param(name, ("offset", "limit"))
        uids = sorted(self.q.indexes)
        page = [self.q.indexes[u].view(u) for u in uids[offset : offset + limit]]
        return 200, {"results": page, "offset": offset, "limit": limit, "total": len(uids)}

    async def create_index(self, req: Request):
        body = req.json()
        if not isinstance(body, dict):
            raise body_type_error(body)
        for key in body:
            if key not in ("uid", "primaryKey"):
                raise _unknown_field(key, ("uid", "primaryKey"))
        if "uid" not in body:
            raise MeiliError("missing_index_uid", "Missing field `uid`")
        uid, pk = body["uid"], body.get("primaryKey")
        if not isinstance(uid, str):
            raise _type_error("invalid_index_uid", ".uid", uid, "a string")
        if not valid_index_uid(uid):
            raise invalid_index_uid(uid, ".uid")
        if pk is not None and not isinstance(pk, str):
            raise _type_error("invalid_index_primary_key", ".primaryKey", pk, "a string")
        return await self._task("indexCreation", uid, t.CreateIndex(pk), {"primaryKey": pk})

    @reads_engines
    async def get_index(self, req: Request, uid: str):
        return 200, self._index(uid).view(uid)

    async def update_index(self, req: Request, uid: str):
        self._check_uid(uid)
        body = req.json()
        if not isinstance(body, dict):
            raise body_type_error(body)
        for key in body:
            if key in ("createdAt", "updatedAt"):
                raise MeiliError(f"immutable_index_{_snake(key)}", f"Immutable field `{key}`: expected one of `primaryKey`, `uid`")
            if key not in ("primaryKey", "uid"):
                raise _unknown_field(key, ("primaryKey", "uid"))
        pk = body.get("primaryKey")
        if pk is not None and not isinstance(pk, str):
            raise _type_error("invalid_index_primary_key", ".primaryKey", pk, "a string")
        new_uid = body.get("uid")
        if new_uid is not None:
            if not isinstance(new_uid, str):
                raise _type_error("invalid_index_uid", ".uid", new_uid, "a string")
            self._check_uid(new_uid)
        details: dict[str, Any] = {"primaryKey": pk}
        if new_uid is not None:
            details.update(oldIndexUid=uid, newIndexUid=new_uid)
        return await self._task("indexUpdate", uid, t.UpdateIndex(pk, new_uid), details)

    async def delete_index(self, req: Request, uid: str):
        self._check_uid(uid)
        return await self._task("indexDeletion", uid, t.DeleteIndex(), {"deletedDocuments": None})

    async def compact_index(self, req: Request, uid: str):
        self._check_uid(uid)  # an unknown index fails in the task, as in 1.50
        details = {"preCompactionSize": None, "postCompactionSize": None}
        return await self._task("indexCompaction", uid, t.CompactIndex(), details)

    @reads_engines
    async def list_fields(self, req: Request, uid: str):
        query = fieldlist.parse_fields_query(req.json())  # the body is refused before the index is looked up
        entry = self._index(uid)
        names = list(batch_fields(entry.engine.documents()))
        return 200, fieldlist.list_fields(names, entry.engine.settings, query)

    @reads_engines
    async def index_stats(self, req: Request, uid: str):
        entry = self._index(uid)
        params = statsview.parse_stats_params(req.query)
        return 200, statsview.index_stats_view(self._index_stats(uid, entry), params)

    async def swap_indexes(self, req: Request):
        body = req.json()
        swaps = validate_swaps(body)
        renames = swap_renames(body)
        details = {"swaps": [{"indexes": list(p), "rename": r} for p, r in zip(swaps, renames)]}
        return await self._task("indexSwap", None, t.SwapIndexes(swaps, renames if any(renames) else None), details)

    # -- documents --------------------------------------------------------------------------

    async def add_documents(self, req: Request, uid: str):
        return await self._write_documents(req, uid, partial=False)

    async def update_documents(self, req: Request, uid: str):
        return await self._write_documents(req, uid, partial=True)

    async def _write_documents(self, req: Request, uid: str, *, partial: bool):
        self._check_uid(uid)
        pk = req.param("primaryKey")
        delimiter = req.param("csvDelimiter")
        meta = self._custom_metadata(req, ("primaryKey", "csvDelimiter", "customMetadata", "skipCreation"))
        skip = self._skip_creation(req)
        fmt = documents_format(req.headers.get("content-type"), delimiter)
        docs = decode_documents(req.body, fmt, csv_delimiter=delimiter if delimiter is not None else ",")
        details = {"receivedDocuments": len(docs), "indexedDocuments": None}
        return await self._task("documentAdditionOrUpdate", uid, t.AddDocuments(docs, pk, partial, skip), details, meta)

    _DOC_PARAMS = ("offset", "limit", "fields", "retrieveVectors", "ids", "filter", "sort", "useNetwork")

    @staticmethod
    def _document_sort(entry: t.IndexEntry, values: list[str]) -> list[tuple[str, bool]]:
        sortable = attribute_names(entry.engine.settings.get("sortableAttributes") or [])
        return parse_document_sort(values, sortable)

    @reads_engines
    async def list_documents(self, req: Request, uid: str):
        # 1.50 reads the query string (deserr) before it looks the index up
        self._check_uid(uid)
        args: dict[str, Any] = {"offset": 0, "limit": 20, "fields": None, "filter": None, "ids": None}
        sort: list[str] | None = None
        for name, value in req.query:
            if name in ("offset", "limit"):
                args[name] = query_uint(f"invalid_document_{name}", name, value)
            elif name == "fields":
                fields = _csv(value)
                args["fields"] = None if "*" in fields else fields
            elif name == "filter":
                args["filter"] = value
            elif name == "ids":
                args["ids"] = _csv(value)
                check_listing_ids(args["ids"])
            elif name == "retrieveVectors":
                args["retrieve_vectors"] = query_bool("invalid_document_retrieve_vectors", name, value)
            elif name == "sort":
                sort = [p for p in value.split(",") if p.strip()]
            elif name == "useNetwork":
                query_bool("invalid_document_use_network", name, value)
            else:
                raise unknown_param(name, self._DOC_PARAMS)
        entry = self._index(uid)
        if sort is not None:
            args["sort"] = self._document_sort(entry, sort)
        return 200, entry.engine.get_documents(**args)

    @reads_engines
    async def fetch_documents(self, req: Request, uid: str):
        self._check_uid(uid)
        body = req.json()
        if not isinstance(body, dict):
            raise body_type_error(body)
        args: dict[str, Any] = {"offset": 0, "limit": 20, "fields": None, "filter": None, "ids": None}
        for name, value in body.items():
            code = f"invalid_document_{_snake(name)}"
            if name in ("offset", "limit"):
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise _type_error(code, f".{name}", value, "a positive integer")
                args[name] = value
            elif name == "fields":
                _str_list(code, ".fields", value)
                args["fields"] = None if value is None or "*" in value else value
            elif name == "filter":
                check_filter_shape(value, code)
                args["filter"] = value
            elif name == "ids":
                if value is not None and not isinstance(value, list):
                    raise _type_error(code, ".ids", value, "an array")
                args["ids"] = None if value is None else [str(v) for v in value]
            elif name == "sort":
                _str_list(code, ".sort", value)
                args["sort"] = value
            elif name == "retrieveVectors":
                if not isinstance(value, bool):
                    raise _type_error(code, ".retrieveVectors", value, "a boolean")
                args["retrieve_vectors"] = value
            elif name == "useNetwork":
                pass
            else:
                raise _unknown_field(name, self._DOC_PARAMS)
        check_listing_ids(body.get("ids"))  # after the whole body, as 1.50
        entry = self._index(uid)
        if args.get("sort") is not None:
            args["sort"] = self._document_sort(entry, args["sort"])
        return 200, entry.engine.get_documents(**args)

    @reads_engines
    async def get_document(self, req: Request, uid: str, doc_id: str):
        self._check_uid(uid)
        fields = None
        retrieve = False
        for name, value in req.query:
            if name == "fields":
                fields = _csv(value)
                fields = None if "*" in fields else fields
            elif name == "retrieveVectors":
                retrieve = query_bool("invalid_document_retrieve_vectors", name, value)
            elif name != "useNetwork":
                raise unknown_param(name, ("fields", "retrieveVectors", "useNetwork"))
        entry = self._index(uid)
        if not valid_document_id(doc_id):
            raise invalid_document_id(doc_id)
        return 200, entry.engine.get_document(doc_id, fields, retrieve)

    async def delete_document(self, req: Request, uid: str, doc_id: str):
        self._check_uid(uid)
        meta = self._custom_metadata(req)
        return await self._task(
            "documentDeletion", uid, t.DeleteIds([doc_id]), {"providedIds": 1, "deletedDocuments": None, "originalFilter": None}, meta
        )

    async def delete_batch(self, req: Request, uid: str):
        self._check_uid(uid)
        meta = self._custom_metadata(req)
        body = req.json()
        if not isinstance(body, list):
            raise ids_not_a_list(req.body, body)
        ids = []
        for i, v in enumerate(body):
            if isinstance(v, bool) or not isinstance(v, (str, int)):
                raise _type_error("bad_request", f"[{i}]", v, "a string or an integer")
            ids.append(str(v))
        return await self._task(
            "documentDeletion", uid, t.DeleteIds(ids), {"providedIds": len(ids), "deletedDocuments": None, "originalFilter": None}, meta
        )

    async def delete_by_filter(self, req: Request, uid: str):
        self._check_uid(uid)
        meta = self._custom_metadata(req)
        body = req.json()
        if not isinstance(body, dict):
            raise body_type_error(body)
        for key in body:
            if key != "filter":
                raise _unknown_field(key, ("filter",))
        if "filter" not in body:
            raise MeiliError("missing_document_filter", "Missing field `filter`")
        flt = body["filter"]
        deletion_filter(flt, self.q.features)  # its syntax now, its attributes when the task runs
        details = {"providedIds": 0, "deletedDocuments": None, "originalFilter": msgspec.json.encode(flt).decode()}
        return await self._task("documentDeletion", uid, t.DeleteFilter(flt), details, meta)

    async def delete_all_documents(self, req: Request, uid: str):
        self._check_uid(uid)
        meta = self._custom_metadata(req)
        return await self._task("documentDeletion", uid, t.ClearDocuments(), {"deletedDocuments": None}, meta)

    # -- search -----------------------------------------------------------------------------

    @reads_engines
    async def search_get(self, req: Request, uid: str):
        return 200, self._search(req, uid, search_params_from_query(req.query))

    @reads_engines
    async def search_post(self, req: Request, uid: str):
        body = req.json()
        if not isinstance(body, dict):
            raise body_type_error(body)
        search_request_from_dict(body)  # 1.50 reads the whole body (deserr) before it looks the index up
        return 200, self._search(req, uid, body)

    def _search(self, req: Request, uid: str, params: dict) -> dict:
        if isinstance(params.get("useNetwork"), bool):  # checked before the index, as 1.50 does
            raise network_disabled("passing `useNetwork` in a search query")
        entry = self._index(uid)
        try:
            answer = entry.engine.search(foreign.resolve(self.q.indexes, uid, params))
        except MeiliError as e:
            raise in_index(uid, e) from None
        foreign.hydrate(self.q.indexes, uid, answer.get("hits") or [])
        metadata = None
        if metadata_wanted(req.headers.get("meili-include-metadata")):
            metadata = search_metadata(params.get("q"), uid, entry.engine.primary_key)
        return finish_answer(answer, request_uid(), metadata, answer.pop("performanceDetails", None))

    @reads_engines
    async def similar_get(self, req: Request, uid: str):
        return 200, vectors.similar(self._index(uid).engine, similar_body_from_query(req.query))

    @reads_engines
    async def similar_post(self, req: Request, uid: str):
        return 200, vectors.similar(self._index(uid).engine, req.json())

    @reads_engines
    async def facet_search(self, req: Request, uid: str):
        body = req.json()
        params = facet_search_params(body)
        if isinstance(body, dict) and body.get("useNetwork") is not None:
            raise network_disabled("passing `useNetwork` in a search query")
        return 200, self._index(uid).engine.facet_search(params)

    @reads_engines
    async def multi_search(self, req: Request):
        include = metadata_wanted(req.headers.get("meili-include-metadata"))
        return 200, run_multi_search(self.q.indexes, req.json(), include_metadata=include)

    # -- settings ---------------------------------------------------------------------------

    def _known_settings(self) -> tuple[str, ...]:
        defaults = default_settings()
        return tuple(f.name for f in settings_mod.FIELDS if f.name in defaults)

    def _setting_field(self, route: str) -> settings_mod.Field:
        field = settings_mod.BY_ROUTE.get(route)
        if field is None or field.name not in self._known_settings():
            raise _NotFound()
        return field

    def _features(self) -> frozenset[str]:
        """Experimental features on (set by `PATCH /experimental-features`)."""
        return frozenset(name for name, on in self.q.features.items() if on)

    @reads_engines
    async def get_settings(self, req: Request, uid: str):
        return 200, settings_mod.shown(self._index(uid).engine.settings, self._features())

    async def patch_settings(self, req: Request, uid: str):
        self._check_uid(uid)
        patch = settings_mod.validate_settings(req.json(), self._known_settings(), self._features())
        return await self._task("settingsUpdate", uid, t.UpdateSettings(patch), task_details(patch))

    async def reset_settings(self, req: Request, uid: str):
        self._check_uid(uid)
        patch = {k: None for k in self._known_settings()}
        return await self._task("settingsUpdate", uid, t.UpdateSettings(patch, create=False), task_details(patch))

    @reads_engines
    async def get_setting(self, req: Request, uid: str, route: str):
        field = self._setting_field(route)
        return 200, settings_mod.shown_field(self._index(uid).engine.settings, field.name)

    async def put_setting(self, req: Request, uid: str, route: str):
        field = self._setting_field(route)
        if req.method != field.method:
            raise _MethodNotAllowed()
        self._check_uid(uid)
        body = None if req.body.strip() == b"null" else req.json()
        patch = settings_mod.validate_route(route, body, self._features())
        return await self._task("settingsUpdate", uid, t.UpdateSettings(patch), task_details(patch))

    async def reset_setting(self, req: Request, uid: str, route: str):
        field = self._setting_field(route)
        self._check_uid(uid)
        patch = {field.name: None}
        return await self._task("settingsUpdate", uid, t.UpdateSettings(patch, create=False), task_details(patch))

    # -- tasks ------------------------------------------------------------------------------

    async def create_dump(self, req: Request):
        from miroir.core.dumpformat import dump_uid

        uid = dump_uid(time.time())
        return await self._task("dumpCreation", None, t.CreateDump(self.dump_dir, uid), {"dumpUid": uid})

    async def create_snapshot(self, req: Request):
        return await self._task("snapshotCreation", None, t.CreateSnapshot(self.snapshot_dir), None)

    async def list_batches(self, req: Request):
        query = taskquery.parse_task_query(req.query)
        return 200, batchview.list_batches(query, (r.view() for r in self.q.tasks.values()))

    async def get_batch(self, req: Request, batch_uid: str):
        if not batch_uid.isascii() or not batch_uid.isdigit():
            raise batchview.invalid_batch_uid(batch_uid)
        return 200, batchview.get_batch(int(batch_uid), (r.view() for r in self.q.tasks.values()))

    async def get_features(self, req: Request):
        return 200, features.features_view(self.q.features)

    async def patch_features(self, req: Request):
        self.q.features.update(features.validate_patch(req.json()))
        if self.q.store is not None:
            await trio.to_thread.run_sync(self.q.store.write_features, dict(self.q.features))
        return 200, features.features_view(self.q.features)

    async def list_tasks(self, req: Request):
        query = taskquery.parse_task_query(req.query)
        return 200, self.q.list_tasks(query)

    async def get_task(self, req: Request, task_uid: str):
        if not task_uid.isascii() or not task_uid.isdigit():
            raise MeiliError("invalid_task_uids", f"Task uid `{task_uid}` is invalid. It should only contain numeric characters.")
        rec = self.q.tasks.get(int(task_uid))
        if rec is None:
            raise MeiliError("task_not_found", f"Task `{task_uid}` not found.")
        return 200, rec.view()

    async def cancel_tasks(self, req: Request):
        query = taskquery.parse_task_query(req.query, paging=False, query_string=req.query_string)
        if not query.has_filters:
            raise taskquery.missing_filters("cancel")
        every = self.q.matching(query)  # 1.50 counts them all; only the unfinished are canceled
        matched = [u for u in every if self.q.tasks[u].status in ("enqueued", "processing")]
        details = {"matchedTasks": len(every), "canceledTasks": None, "originalFilter": "?" + req.query_string}
        return 200, (await self._task("taskCancelation", None, t.CancelTasks(matched), details))[1]  # 1.50: 200

    async def delete_tasks(self, req: Request):
        query = taskquery.parse_task_query(req.query, paging=False, query_string=req.query_string)
        if not query.has_filters:
            raise taskquery.missing_filters("delete")
        matched = self.q.matching(query)
        details = {"matchedTasks": len(matched), "deletedTasks": None, "originalFilter": "?" + req.query_string}
        return 200, (await self._task("taskDeletion", None, t.DeleteTasks(matched), details))[1]  # 1.50: 200


class _NotFound(MeiliError):
    """An unknown settings sub-route: a plain 404 like any unknown route."""

    def __init__(self):
        super().__init__("not_found", "", status=404)


class _MethodNotAllowed(MeiliError):
    def __init__(self):
        super().__init__("method_not_allowed", "", status=405)


def _human(n: int) -> str:
    for unit, size in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if n >= size:
            return f"{n / size:g} {unit}"
    return f"{n} B"


# -- multi-search ------------------------------------------------------------------------


def _decoded_queries(indexes: dict, queries: list, *, federated: bool, federation: Federation | None = None):
    """Every entry decoded (errors with their path), then each checked (``Inside``),
    as Miroir does (engine/reads.py)."""
    entries = []
    for i, q in enumerate(queries):
        entry = decode_entry(i, q)
        try:
            search_request_from_dict(entry.params)
        except MeiliError as e:
            raise at_query(i, e) from None
        entries.append(entry)
    for i, entry in enumerate(entries):
        check_entry(i, entry, federated=federated, federation=federation)
        if entry.params.get("useNetwork") is not None:
            raise inside(i, network_disabled("passing `useNetwork` in a search query"))
        if entry.index_uid not in indexes:
            raise inside(i, index_not_found(entry.index_uid))
    return entries


def _metadata(indexes: dict, uid: str, q: Any) -> dict:
    return search_metadata(q if isinstance(q, str) else None, uid, indexes[uid].engine.primary_key)


def run_multi_search(indexes: dict, body: Any, *, include_metadata: bool = False) -> dict:
    """`POST /multi-search`: plain (one result per query) or federated (one merged list)."""
    queries, federation = multi_search_body(body)
    uid_of_request = request_uid()
    if federation is None:
        results = []
        for i, entry in enumerate(_decoded_queries(indexes, queries, federated=False)):
            try:
                answer = indexes[entry.index_uid].engine.search(foreign.resolve(indexes, entry.index_uid, entry.params))
            except MeiliError as e:
                raise inside(i, in_index(entry.index_uid, e)) from None
            foreign.hydrate(indexes, entry.index_uid, answer.get("hits") or [])
            metadata = _metadata(indexes, entry.index_uid, entry.params.get("q")) if include_metadata else None
            finish_answer(answer, uid_of_request, metadata, answer.pop("performanceDetails", None))
            results.append({"indexUid": entry.index_uid, **answer})
        return {"results": results}
    return _federated(indexes, queries, federation, include_metadata, uid_of_request)


def _federated(indexes: dict, queries: list, federation_body: Any, include_metadata: bool, uid_of_request: str) -> dict:
    """Merge hits across queries by `_rankingScore * weight` (core/federation.py, as Miroir)."""
    started = time.perf_counter()
    federation = parse_federation(federation_body)
    entries = _decoded_queries(indexes, queries, federated=True, federation=federation)
    check_facet_indexes(federation, indexes)
    check_facet_order(
        federation,
        [e.index_uid for e in entries],
        lambda uid: indexes[uid].engine.settings.get("filterableAttributes") or [],
        lambda uid: _sort_facet_values_by(indexes[uid]),
    )
    check_compatible([
        query_rules(i, e.index_uid, e.params, indexes[e.index_uid].engine.settings["rankingRules"])
        for i, e in enumerate(entries)
    ])
    joined = []  # 1.50 joins every query's foreign filters before any query runs
    for i, entry in enumerate(entries):
        try:
            joined.append(foreign.resolve(indexes, entry.index_uid, entry.params))
        except JoinError:
            raise  # not tied to a query
        except MeiliError as e:
            raise inside(i, e) from None
    facets_by_index = federation.facets_by_index
    skip, take = federation.window()
    per_query: list[FederatedQuery] = []
    facets: dict[str, IndexFacets] = {}
    for i, entry in enumerate(entries):
        params = dict(joined[i])
        if federation.page_mode:
            params.update(page=1, hitsPerPage=skip + take)
        else:
            params.update(offset=0, limit=skip + take)
        params["showRankingScore"] = True
        params["showRankingScoreDetails"] = True  # they order hits of different queries (core/fedscores.py)
        added: tuple[str, ...] = ()
        uid = entry.index_uid
        if federation.distinct is not None:
            params["distinct"] = federation.distinct
            # The hits the federation's distinct rejects leave the facet counts by their
            # values: 1.50 retrieves the index's facets with the distinct attribute.
            for attr in distinct_fields(federation, uid):
                retrieve = retrieval_with(params.get("attributesToRetrieve"), attr)
                if retrieve is not None:
                    params["attributesToRetrieve"] = retrieve
                    added += (attr,)
        facet_query = uid in facets_by_index and uid not in facets
        if facet_query and facets_by_index[uid]:
            params["facets"] = facets_by_index[uid]
        hit_ids: list[int] = []
        try:
            res = indexes[uid].engine.search(params, hit_ids)
        except MeiliError as e:
            if facet_query:
                raise facets_error(uid, in_index(uid, e), i) from None
            raise inside(i, in_index(uid, e)) from None
        if uid in facets_by_index and uid not in facets:
            facets[uid] = IndexFacets(distribution=res.get("facetDistribution") or {}, stats=res.get("facetStats") or {})
        foreign.hydrate(indexes, uid, res.get("hits") or [])
        engine = indexes[uid].engine
        per_query.append(FederatedQuery(
            index_uid=uid,
            hits=res.get("hits", []),
            weight=entry.weight,
            estimated_total_hits=res.get("totalHits", res.get("estimatedTotalHits", 0)) or 0,
            show_ranking_score=bool(entry.params.get("showRankingScore")),
            show_ranking_score_details=bool(entry.params.get("showRankingScoreDetails")),
            semantic=entry.params.get("hybrid") is not None or entry.params.get("vector") is not None,
            added_fields=added,
            doc_ids=_doc_ids(engine, res.get("hits", []), hit_ids),
            candidates=_candidates(engine, params),
            retrieve_vectors=entry.params.get("retrieveVectors") is True,
            query_vector=res.get("queryVector"),
        ))
    for uid, wanted in facets_by_index.items():
        if uid not in facets:  # an index no query uses: 1.50 still computes its facets
            try:
                res = indexes[uid].engine.search({"limit": 0, "facets": wanted} if wanted else {"limit": 0})
            except MeiliError as e:
                raise facets_error(uid, in_index(uid, e), None) from None
            facets[uid] = IndexFacets(distribution=res.get("facetDistribution") or {}, stats=res.get("facetStats") or {})
    if federation.personalize is not None:
        raise personalization_disabled()
    metadata = [_metadata(indexes, e.index_uid, e.params.get("q")) for e in entries] if include_metadata else None
    merging = time.perf_counter()
    merged = merge_hits(per_query, federation)
    for uid, wanted in facets_by_index.items():
        # 1.50 counts an index's facets on the union of its queries' documents, less
        # those its distinct dropped (else: the first query's, computed above).
        union = union_documents(per_query, uid, merged.dropped.get(uid)) if wanted else None
        if union is not None:
            engine = indexes[uid].engine
            names = engine.search_params({"facets": wanted}).facets or []
            dist, stats = engine.facets_of(names, sorted(i for _, i in union))
            facets[uid] = IndexFacets(distribution=dist, stats=stats)
    out = merge_federated(
        per_query,
        processing_time_ms=0,
        index_facets=facets or None,
        merge_facets=federation.merge_facets,
        sort_facet_values_by=merged_facet_order(federation, lambda uid: _sort_facet_values_by(indexes[uid])),
        federation=federation,
        request_uid=uid_of_request,
        metadata=metadata,
        merged=merged,
    )
    out["processingTimeMs"] = int((time.perf_counter() - started) * 1000)
    if federation.show_performance_details:
        out["performanceDetails"] = performance_details(started, merging, time.perf_counter())
    return out


def _doc_ids(engine: Any, hits: list[dict], hit_ids: list[int]) -> list[Any] | None:
    """Each hit's document as ("iid", internal id), the same for every query of the
    index: the ids a keyword search gives, else read from the primary key (a vector
    search gives no internal ids)."""
    if len(hit_ids) == len(hits):
        return [("iid", i) for i in hit_ids]
    keys = hit_document_ids(hits, engine.primary_key, added=False)
    if keys is None:
        return None
    iids = [engine.internal_id(k) for k in keys]
    return None if None in iids else [("iid", i) for i in iids]


def _candidates(engine: Any, params: dict) -> frozenset | None:
    """Every document a keyword query matches (1.50's candidates, which a federated
    index unions over its queries), or None where its hits tell them: a vector or
    hybrid search, distinct, a score threshold."""
    if any(params.get(k) is not None for k in ("hybrid", "vector", "distinct", "rankingScoreThreshold")):
        return None
    if engine.settings.get("distinctAttribute"):
        return None
    candidates = engine.candidates(params)
    if len(candidates) > engine.max_total_hits():
        return None
    return frozenset(("iid", i) for i in candidates)


def _sort_facet_values_by(entry: Any) -> Any:
    return (entry.engine.settings.get("faceting") or {}).get("sortFacetValuesBy")
