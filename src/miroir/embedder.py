"""A local, deterministic text embedder over HTTP, for tests and demos with no network.

Each text becomes a hashed bag of words: every lower-cased alphanumeric word adds 1 to the
dimension xxhash picks for it, and the vector is L2-normalised (all zeros for a text with no
word). The same text gives the same vector on every machine, so sharded and single-node
answers can be compared exactly.

Usable as a Meilisearch `rest` embedder:
  single:  request {"input": "{{text}}"}            response {"embedding": "{{embedding}}"}
  batch:   request {"input": ["{{text}}", "{{..}}"]} response {"embeddings": ["{{embedding}}", "{{..}}"]}
It also speaks the shapes Meilisearch's `openAi` and `ollama` embedders send, so those
sources can be tried locally by setting their `url`:
  POST /v1/embeddings  {"model", "input": [texts], "dimensions"?} -> {"data": [{"embedding"}, ...]}
  POST /api/embed      {"model", "input": [texts]}                -> {"embeddings": [...]}
  POST /api/embeddings {"model", "prompt": text}                  -> {"embedding": [...]}
(`dimensions` in an OpenAI request must equal the service's.)
`GET /stats` answers {"calls": n, "texts": m, "authorization": last Authorization header}
(calls = POSTs answered), so tests can count how many times a search embedded its query.
"""

from __future__ import annotations

import json
import math
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import xxhash

DIMENSIONS = 256
_WORD = re.compile(r"[0-9a-z]+")


def embed(text: str, dimensions: int = DIMENSIONS) -> list[float]:
    vec = [0.0] * dimensions
    for word in _WORD.findall(text.lower()):
        vec[xxhash.xxh64_intdigest(word.encode()) % dimensions] += 1.0
    norm = math.sqrt(sum(x * x for x in vec))
    return [x / norm for x in vec] if norm else vec


class _Counter:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls = 0
        self.texts = 0
        self.authorization: str | None = None


def make_server(port: int, bind: str = "127.0.0.1", dimensions: int = DIMENSIONS) -> ThreadingHTTPServer:
    counter = _Counter()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet: tests read the counts, not a log
            pass

        def _answer(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] == "/stats":
                with counter.lock:
                    self._answer(200, {"calls": counter.calls, "texts": counter.texts, "dimensions": dimensions,
                                       "authorization": counter.authorization})
            elif self.path == "/health":
                self._answer(200, {"status": "available"})
            else:
                self._answer(404, {"message": "not found"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            path = self.path.split("?", 1)[0]
            try:
                body = json.loads(self.rfile.read(length) or b"null")
                text = body["prompt"] if path == "/api/embeddings" else body["input"]
                if isinstance(text, str):
                    texts, batch = [text], False
                elif isinstance(text, list) and all(isinstance(t, str) for t in text):
                    texts, batch = text, True
                else:
                    raise TypeError
                if path == "/v1/embeddings" and body.get("dimensions", dimensions) != dimensions:
                    raise ValueError
            except (ValueError, TypeError, KeyError):
                self._answer(400, {"message": 'expected {"input": "text"} or {"input": ["text", ...]}'})
                return
            with counter.lock:
                counter.calls += 1
                counter.texts += len(texts)
                counter.authorization = self.headers.get("Authorization")
            vectors = [embed(t, dimensions) for t in texts]
            if path == "/v1/embeddings":  # OpenAI
                answer: dict = {"object": "list", "data": [{"object": "embedding", "index": i, "embedding": v}
                                                           for i, v in enumerate(vectors)]}
            elif path == "/api/embed":  # Ollama, batch
                answer = {"embeddings": vectors}
            else:
                answer = {"embeddings": vectors} if batch else {"embedding": vectors[0]}
            self._answer(200, answer)

    server = ThreadingHTTPServer((bind, port), Handler)
    server.daemon_threads = True
    return server


def run_embedder(port: int, bind: str = "127.0.0.1", dimensions: int = DIMENSIONS) -> int:
    server = make_server(port, bind, dimensions)
    print(f"embedder listening on http://{bind}:{server.server_address[1]} ({dimensions} dimensions)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
