"""Talking to one node: a Meilisearch (or devnode) instance behind `url`.

`NodeClient.call` is the only way the engine reaches a node. It sends JSON (msgspec) or
raw bytes, decodes the JSON answer, and turns failures into exactly two exception types:

- `NodeError`: the node answered with a Meilisearch error body (or a non-JSON error);
  carries the node's code, message, status and type, plus `node_id`;
- `NodeUnavailable`: no answer (connection refused/reset, timeout, protocol error).

Transport: one `miroir.net.http1.Http1Pool` per node (keep-alive HTTP/1.1 over trio).
httpx cost ~2.4 ms of CPU per call under concurrency, the pool a fraction of that
(issue 8, `python benchmarks/run.py --only P`). httpx remains for `https://` nodes only
(the pool has no TLS). The client is owned by whoever created it
(the `Fleet`), which closes it with `aclose()`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit

import msgspec

from miroir.core.errors import MeiliError
from miroir.net.http1 import (
    Http1Pool,
    PoolClosed,
    PoolConnectionError,
    PoolError,
    PoolTimeout,
)

# Default per-call deadline; scatter and health pass their own tighter budgets.
DEFAULT_TIMEOUT_S = 10.0
# Enough parallel connections per node for a scatter burst plus writes and polling.
MAX_CONNECTIONS_PER_NODE = 64

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()
_JSON_CT = (b"content-type", b"application/json")
# Characters left as-is in query-string keys and values (like urlencode's quote_plus,
# but spaces as %20 and commas kept: list values are comma-joined).
_SAFE_QS = ",:*"


class NodeError(MeiliError):
    """A node refused a request with a Meilisearch error (code, message, status, type)."""

    def __init__(self, node_id: str, code: str, message: str, status: int, type: str | None = None):
        super().__init__(code, message, status=status, type=type)
        self.node_id = node_id

    def __repr__(self) -> str:
        return f"NodeError({self.node_id!r}, {self.code!r}, {self.message!r}, status={self.status})"


class NodeUnavailable(Exception):
    """The node did not answer: connection error or deadline exceeded."""

    def __init__(self, node_id: str, reason: str):
        super().__init__(f"node `{node_id}` unavailable: {reason}")
        self.node_id = node_id
        self.reason = reason

    def to_error(self) -> MeiliError:
        """What a client sees when nothing else can answer instead of this node."""
        return MeiliError("miroir_node_unavailable", str(self))


_REASONS = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 413: "Payload Too Large",
            500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}


def _error_from(node_id: str, status: int, content: bytes) -> NodeError:
    try:
        body = _decoder.decode(content)
    except msgspec.DecodeError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("code"), str):
        return NodeError(node_id, body["code"], str(body.get("message", "")), status, body.get("type") or None)
    # Not a Meilisearch error body (a proxy in between, a crash page): keep the status.
    text = content[:200].decode("utf-8", "replace").strip() or _REASONS.get(status, "")
    code = "internal" if status >= 500 else "bad_request"
    return NodeError(node_id, code, f"node `{node_id}` answered {status}: {text}", status)


class NodeClient:
    """One node: pooled keep-alive HTTP with the node master key as Bearer token."""

    def __init__(self, node_id: str, url: str, *, api_key: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S):
        self.node_id = node_id
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        parts = urlsplit(self.url)
        self._prefix = parts.path.rstrip("/")
        self._pool: Http1Pool | _HttpsPool
        if parts.scheme == "https":
            self._pool = _HttpsPool(f"https://{parts.netloc}")
        else:
            self._pool = Http1Pool(parts.hostname or "127.0.0.1", parts.port or 80, max_connections=MAX_CONNECTIONS_PER_NODE)
        self._auth: list[tuple[bytes, bytes]] = [(b"authorization", f"Bearer {api_key}".encode())] if api_key else []

    def __repr__(self) -> str:
        return f"NodeClient({self.node_id!r}, {self.url!r})"

    async def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        content: bytes | None = None,
        content_type: str | None = None,
        timeout_s: float | None = None,
    ) -> Any:
        """Send one request; return the decoded JSON body (None when empty).

        Raises `NodeError` for an error status, `NodeUnavailable` for no answer.
        """
        assert json is None or content is None, "json or content, not both"
        headers = self._auth.copy()
        if json is not None:
            content = _encoder.encode(json)
            if content_type is None:
                headers.append(_JSON_CT)
            else:
                headers.append((b"content-type", content_type.encode("latin-1")))
        elif content_type is not None:
            headers.append((b"content-type", content_type.encode("latin-1")))
        target = self._prefix + path if self._prefix else path
        if not target.isascii():
            target = quote(target, safe="/%:@!$&'()*+,;=-._~")
        if params:
            qs = _query_string(params)
            if qs:
                target = f"{target}?{qs}"
        try:
            status, _, body = await self._pool.request(
                method, target, headers, content or b"", timeout_s if timeout_s is not None else self.timeout_s
            )
        except PoolTimeout:
            raise NodeUnavailable(self.node_id, "timeout (PoolTimeout)") from None
        except PoolError as e:
            raise NodeUnavailable(self.node_id, f"{type(e).__name__}: {e}") from None
        if status >= 400:
            raise _error_from(self.node_id, status, body)
        if not body:
            return None
        try:
            return _decoder.decode(body)
        except msgspec.DecodeError as e:
            raise NodeError(self.node_id, "internal", f"node `{self.node_id}` sent invalid JSON: {e}", 502) from None

    async def aclose(self) -> None:
        await self._pool.aclose()


class _HttpsPool:
    """`https://` nodes: httpx behind Http1Pool's `request` contract (Http1Pool has no TLS).

    Same errors as the pool (`PoolTimeout`, `PoolConnectionError`, `PoolClosed`), so
    `NodeClient.call` treats both alike. httpx is imported only when such a node exists.
    """

    def __init__(self, base_url: str):
        import httpx

        self._httpx = httpx
        self._client = httpx.AsyncClient(
            base_url=base_url,
            limits=httpx.Limits(max_connections=MAX_CONNECTIONS_PER_NODE, max_keepalive_connections=MAX_CONNECTIONS_PER_NODE),
            trust_env=False,  # node URLs are configured by the operator: no proxies from the environment
        )
        self._closed = False

    async def request(
        self, method: str, target: str, headers: list[tuple[bytes, bytes]], body: bytes, timeout_s: float
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        if self._closed:
            raise PoolClosed(f"pool for {self._client.base_url} is closed")
        httpx = self._httpx
        try:
            timeout = None if timeout_s == math.inf else timeout_s  # httpx spells "none" None
            resp = await self._client.request(method, target, headers=headers, content=body or None, timeout=timeout)
        except httpx.TimeoutException as e:
            raise PoolTimeout(f"{method} {self._client.base_url}{target}: {type(e).__name__}") from None
        except httpx.TransportError as e:
            raise PoolConnectionError(f"{type(e).__name__}: {e}") from None
        return resp.status_code, list(resp.headers.raw), resp.content

    async def aclose(self) -> None:
        self._closed = True
        await self._client.aclose()


def _clean_params(params: Mapping[str, Any] | None) -> dict[str, str] | None:
    """Drop None values; booleans as Meilisearch spells them; lists comma-joined."""
    if not params:
        return None
    out: dict[str, str] = {}
    for k, v in params.items():
        if v is None:
            continue
        if isinstance(v, bool):
            out[k] = "true" if v else "false"
        elif isinstance(v, (list, tuple)):
            out[k] = ",".join(str(x) for x in v)
        else:
            out[k] = str(v)
    return out


def _query_string(params: Mapping[str, Any]) -> str:
    """`_clean_params` percent-encoded as a query string (UTF-8, spaces as %20)."""
    clean = _clean_params(params)
    if not clean:
        return ""
    return "&".join(f"{quote(k, safe=_SAFE_QS)}={quote(v, safe=_SAFE_QS)}" for k, v in clean.items())
