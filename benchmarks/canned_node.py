"""A canned Meilisearch node: answers instantly with fixed, realistic bodies.

Not a search engine: it stores nothing but task records. It exists so that benchmarks
measure Miroir (fan-out, merge, write routing) and not the node behind it. A raw
trio + h11 server (no framework) so that it costs as little CPU as possible.

    python benchmarks/canned_node.py --port 0 [--seed N]

prints `READY <port>` on stdout once it listens on 127.0.0.1.

Routes (whatever Miroir needs to create an index and serve searches and writes):
- `POST /indexes/{uid}/search`: 20 hits with `_rankingScore` (and
  `_rankingScoreDetails` when `showRankingScoreDetails` is true, as Meilisearch),
  `facetDistribution`, `estimatedTotalHits` (fixed per node);
- `POST /indexes/{uid}/facet-search`, `POST /indexes/{uid}/documents/fetch`,
  `GET /indexes/{uid}/documents[/{id}]`: small fixed answers;
- any other POST/PUT/PATCH/DELETE (document writes, index creation/deletion, settings,
  swaps, task cancel/delete): 202 with a summarized task; the task is `succeeded` at once;
- `GET /tasks`, `GET /tasks/{uid}`: the recorded tasks, all succeeded (`uids`, `limit`,
  `from` understood);
- `GET /indexes`, `GET /indexes/{uid}`, `GET /indexes/{uid}/settings[/...]` (defaults),
  `GET /indexes/{uid}/stats`, `GET /stats`, `GET /health`, `GET /version`.
The request body is read completely (so write benchmarks pay for the transfer) but not
parsed, except to count documents for the task's `receivedDocuments` cheaply (lines or
top-level objects are not counted: always 0; Miroir does not depend on it).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime as _dt
import re
import sys
from urllib.parse import parse_qs, urlsplit

import h11
import msgspec
import trio

from miroir.core.settings import DEFAULTS

RECV_BYTES = 256 * 1024
# Finished tasks kept for `GET /tasks`; the oldest are forgotten past this (bounded memory
# in long ingest runs; Miroir polls a task soon after it was enqueued).
MAX_TASKS = 200_000
HITS = 20

_enc = msgspec.json.Encoder()
_DETAILS_ON = re.compile(rb'"showRankingScoreDetails"\s*:\s*true')
NOW = _dt.datetime(2026, 1, 1, tzinfo=_dt.UTC).isoformat().replace("+00:00", "Z")

# Meilisearch's defaults as Miroir knows them, on a node Miroir configured (shard field
# filterable).
DEFAULT_SETTINGS = {**copy.deepcopy(DEFAULTS), "filterableAttributes": ["_miroir_shard"]}

SECTIONS = ["admin", "devel", "doc", "libs", "net", "python", "utils", "web"]


def search_body(seed: int, uid: str = "x") -> dict:
    """The node's fixed answer: 20 hits in Meilisearch order, facets, totals."""
    hits = []
    for i in range(HITS):
        score = round(0.99 - i * 0.01 - seed * 0.001, 6)
        hits.append(
            {
                "id": seed * 1_000_000 + i,
                "name": f"package-{seed}-{i}",
                "version": "1.2.3-4+deb12u1",
                "section": SECTIONS[(seed + i) % len(SECTIONS)],
                "priority": "optional",
                "architecture": "amd64",
                "maintainer": "Debian Benchmark Team",
                "installed_size_kb": 1000 + i,
                "size_bytes": 50_000 + 37 * i,
                "summary": "library for parsing and emitting benchmark fixtures quickly",
                "description": "A realistic-looking description that is a few lines long.\n"
                "It exists so that the response has the size of a real answer.",
                "tags": ["role::shared-lib", "devel::library"],
                "_miroir_shard": (seed * 7 + i) % 16,
                "_rankingScore": score,
                "_rankingScoreDetails": {
                    "words": {"order": 0, "matchingWords": 2, "maxMatchingWords": 2, "score": 1.0},
                    "typo": {"order": 1, "typoCount": i % 2, "maxTypoCount": 2, "score": 1.0 - (i % 2) / 3},
                    "proximity": {"order": 2, "score": round(1.0 - i / 40, 6)},
                    "attribute": {
                        "order": 3,
                        "attributeRankingOrderScore": 1.0,
                        "queryWordDistanceScore": round(1.0 - i / 50, 6),
                        "score": round(1.0 - i / 60, 6),
                    },
                    "exactness": {"order": 4, "matchType": "noExactMatch", "score": round(0.5 - seed / 100, 6)},
                },
            }
        )
    return {
        "hits": hits,
        "query": "library",
        "processingTimeMs": 1,
        "limit": HITS,
        "offset": 0,
        "estimatedTotalHits": 4_000 + seed,
        "facetDistribution": {
            "section": {s: 100 + 10 * j + seed for j, s in enumerate(SECTIONS)},
            "architecture": {"all": 1500 + seed, "amd64": 2500},
        },
        "facetStats": {"installed_size_kb": {"min": 1.0, "max": 90_000.0 + seed}},
    }


class CannedNode:
    def __init__(self, seed: int = 0):
        self.seed = seed
        full = search_body(seed)
        self.search_with_details = _enc.encode(full)
        for hit in full["hits"]:
            del hit["_rankingScoreDetails"]
        self.search = _enc.encode(full)
        self.tasks: dict[int, bytes] = {}
        self.next_uid = 0
        self.indexes: dict[str, dict] = {}
        self.requests = 0

    # ---------------------------------------------------------------- task helpers

    def _enqueue(self, type_: str, index_uid: str | None) -> tuple[int, bytes]:
        uid = self.next_uid
        self.next_uid += 1
        self.tasks[uid] = _enc.encode(
            {
                "uid": uid,
                "batchUid": uid,
                "indexUid": index_uid,
                "status": "succeeded",
                "type": type_,
                "canceledBy": None,
                "details": {},
                "error": None,
                "duration": "PT0.001S",
                "enqueuedAt": NOW,
                "startedAt": NOW,
                "finishedAt": NOW,
            }
        )
        if len(self.tasks) > MAX_TASKS:
            self.tasks.pop(next(iter(self.tasks)))
        summary = {"taskUid": uid, "indexUid": index_uid, "status": "enqueued", "type": type_, "enqueuedAt": NOW}
        return 202, _enc.encode(summary)

    def _write(self, method: str, parts: list[str], body: bytes) -> tuple[int, bytes]:
        # parts: path split on "/", without the leading empty string.
        if parts[:1] == ["indexes"]:
            if len(parts) == 1 and method == "POST":
                try:
                    spec = msgspec.json.decode(body) if body else {}
                except msgspec.DecodeError:
                    spec = {}
                uid = spec.get("uid", "x") if isinstance(spec, dict) else "x"
                self.indexes[uid] = {"uid": uid, "primaryKey": spec.get("primaryKey") if isinstance(spec, dict) else None,
                                     "createdAt": NOW, "updatedAt": NOW}
                return self._enqueue("indexCreation", uid)
            uid = parts[1] if len(parts) > 1 else None
            if len(parts) == 2:
                if method == "DELETE":
                    self.indexes.pop(uid, None)
                    return self._enqueue("indexDeletion", uid)
                return self._enqueue("indexUpdate", uid)
            if parts[2] == "documents":
                if method == "DELETE" or parts[3:4] in (["delete-batch"], ["delete"]):
                    return self._enqueue("documentDeletion", uid)
                self.indexes.setdefault(uid, {"uid": uid, "primaryKey": "id", "createdAt": NOW, "updatedAt": NOW})
                return self._enqueue("documentAdditionOrUpdate", uid)
            if parts[2] == "settings":
                return self._enqueue("settingsUpdate", uid)
            return self._enqueue("unknown", uid)
        if parts[:1] == ["swap-indexes"]:
            return self._enqueue("indexSwap", None)
        if parts[:2] == ["tasks", "cancel"]:
            return self._enqueue("taskCancelation", None)
        if parts[:1] == ["tasks"] and method == "DELETE":
            return self._enqueue("taskDeletion", None)
        return 404, _not_found("route")

    def _tasks(self, query: dict[str, list[str]]) -> bytes:
        limit = int(query.get("limit", ["20"])[0])
        if "uids" in query:
            wanted = sorted({int(u) for v in query["uids"] for u in v.split(",") if u.strip().isdigit()}, reverse=True)
        else:
            start = int(query.get("from", [str(self.next_uid - 1)])[0])
            wanted = range(min(start, self.next_uid - 1), -1, -1)
        found = []
        for uid in wanted:
            raw = self.tasks.get(uid)
            if raw is not None:
                found.append(raw)
                if len(found) > limit:
                    break
        nxt = None
        if len(found) > limit:
            nxt = msgspec.json.decode(found.pop())["uid"]
        return b'{"results":[' + b",".join(found) + b'],"total":%d,"limit":%d,"from":%s,"next":%s}' % (
            len(self.tasks),
            limit,
            str(msgspec.json.decode(found[0])["uid"]).encode() if found else b"null",
            str(nxt).encode() if nxt is not None else b"null",
        )

    # ---------------------------------------------------------------- dispatch

    def handle(self, method: str, target: str, body: bytes) -> tuple[int, bytes]:
        self.requests += 1
        url = urlsplit(target)
        parts = [p for p in url.path.split("/") if p]
        if method == "POST" and len(parts) == 3 and parts[0] == "indexes" and parts[2] == "search":
            # Details only when asked for, as Meilisearch (a raw-bytes test: no decode).
            return 200, self.search_with_details if _DETAILS_ON.search(body) else self.search
        if method == "POST" and parts[-1:] == ["multi-search"]:
            return 200, b'{"results":[]}'
        if method == "POST" and len(parts) == 3 and parts[2] == "facet-search":
            return 200, b'{"facetHits":[{"value":"libs","count":100}],"facetQuery":null,"processingTimeMs":0}'
        if method == "POST" and parts[2:] == ["documents", "fetch"]:
            return 200, b'{"results":[],"offset":0,"limit":20,"total":0}'
        if method != "GET":
            return self._write(method, parts, body)
        query = parse_qs(url.query)
        if parts == ["health"]:
            return 200, b'{"status":"available"}'
        if parts == ["version"]:
            return 200, b'{"pkgVersion":"1.12.0","commitSha":"canned","commitDate":"2026-01-01T00:00:00Z"}'
        if parts == ["tasks"]:
            return 200, self._tasks(query)
        if len(parts) == 2 and parts[0] == "tasks":
            raw = self.tasks.get(int(parts[1])) if parts[1].isdigit() else None
            if raw is None:
                return 404, _error(f"Task `{parts[1]}` not found.", "task_not_found")
            return 200, raw
        if parts == ["stats"]:
            return 200, _enc.encode({"databaseSize": 1, "usedDatabaseSize": 1, "lastUpdate": NOW, "indexes": {}})
        if parts == ["indexes"]:
            res = list(self.indexes.values())
            return 200, _enc.encode({"results": res, "offset": 0, "limit": 20, "total": len(res)})
        if parts[:1] == ["indexes"] and len(parts) >= 2:
            uid = parts[1]
            idx = self.indexes.get(uid) or {"uid": uid, "primaryKey": "id", "createdAt": NOW, "updatedAt": NOW}
            if len(parts) == 2:
                return 200, _enc.encode(idx)
            if parts[2] == "settings":
                if len(parts) == 3:
                    return 200, _enc.encode(DEFAULT_SETTINGS)
                key = re.sub(r"-([a-z])", lambda m: m.group(1).upper(), parts[3])
                return 200, _enc.encode(DEFAULT_SETTINGS.get(key))
            if parts[2] == "stats":
                return 200, _enc.encode(
                    {"numberOfDocuments": 0, "rawDocumentDbSize": 0, "avgDocumentSize": 0, "isIndexing": False,
                     "numberOfEmbeddings": 0, "numberOfEmbeddedDocuments": 0, "fieldDistribution": {}}
                )
            if parts[2] == "documents":
                if len(parts) == 3:
                    return 200, b'{"results":[],"offset":0,"limit":20,"total":0}'
                return 404, _error(f"Document `{parts[3]}` not found.", "document_not_found")
        return 404, _not_found(url.path)


def _error(message: str, code: str) -> bytes:
    return _enc.encode({"message": message, "code": code, "type": "invalid_request",
                        "link": f"https://docs.meilisearch.com/errors#{code}"})


def _not_found(path: str) -> bytes:
    return _error("Not Found", "not_found")


async def _serve_connection(node: CannedNode, stream: trio.SocketStream) -> None:
    conn = h11.Connection(our_role=h11.SERVER, max_incomplete_event_size=64 * 1024)
    try:
        while True:
            req = None
            chunks: list[bytes] = []
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(await stream.receive_some(RECV_BYTES))
                    continue
                t = type(event)
                if t is h11.Request:
                    req = event
                elif t is h11.Data:
                    chunks.append(event.data)
                elif t is h11.EndOfMessage:
                    break
                elif t is h11.ConnectionClosed:
                    return
            assert req is not None
            status, body = node.handle(req.method.decode(), req.target.decode(), b"".join(chunks))
            headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
            await stream.send_all(
                conn.send(h11.Response(status_code=status, headers=headers))
                + conn.send(h11.Data(data=body))
                + conn.send(h11.EndOfMessage())
            )
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                return
            conn.start_next_cycle()
    except (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError):
        return
    finally:
        await trio.aclose_forcefully(stream)


async def serve(port: int, seed: int, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
    node = CannedNode(seed)
    listeners = await trio.open_tcp_listeners(port, host="127.0.0.1", backlog=1024)
    bound = listeners[0].socket.getsockname()[1]
    task_status.started(bound)

    async def handler(stream: trio.SocketStream) -> None:
        await _serve_connection(node, stream)

    await trio.serve_listeners(handler, listeners)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--seed", type=int, default=0, help="varies ids and scores between nodes")
    p.add_argument("--max-seconds", type=float, default=3600.0, help="exit after this long (safety bound)")
    args = p.parse_args(argv)

    async def run() -> None:
        with trio.move_on_after(args.max_seconds):
            async with trio.open_nursery() as n:
                port = await n.start(serve, args.port, args.seed)
                print(f"READY {port}", flush=True)

    with contextlib.suppress(KeyboardInterrupt):
        trio.run(run)
    sys.exit(0)


if __name__ == "__main__":
    main()
