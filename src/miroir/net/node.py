"""Talking to one node: a Meilisearch (or devnode) instance behind `url`.

`NodeClient.call` is the only way the engine reaches a node. It sends JSON (msgspec) or
raw bytes, decodes the JSON answer, and turns failures into exactly two exception types:

- `NodeError`: the node answered with a Meilisearch error body (or a non-JSON error);
  carries the node's code, message, status and type, plus `node_id`;
- `NodeUnavailable`: no answer (connection refused/reset, timeout, protocol error).

Connections are pooled and kept alive (one `httpx.AsyncClient` per node). The client is
owned by whoever created it (the `Fleet`), which closes it with `aclose()`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx
import msgspec

from miroir.core.errors import MeiliError

# Default per-call deadline; scatter and health pass their own tighter budgets.
DEFAULT_TIMEOUT_S = 10.0
# Enough parallel connections per node for a scatter burst plus writes and polling.
MAX_CONNECTIONS_PER_NODE = 64
# Idle keep-alive connections are reused for this long (node restarts drop them anyway).
KEEPALIVE_EXPIRY_S = 30.0

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()


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


def _error_from(node_id: str, resp: httpx.Response) -> NodeError:
    try:
        body = _decoder.decode(resp.content)
    except msgspec.DecodeError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("code"), str):
        return NodeError(
            node_id, body["code"], str(body.get("message", "")), resp.status_code, body.get("type") or None
        )
    # Not a Meilisearch error body (a proxy in between, a crash page): keep the status.
    text = resp.text[:200].strip() or resp.reason_phrase
    code = "internal" if resp.status_code >= 500 else "bad_request"
    return NodeError(node_id, code, f"node `{node_id}` answered {resp.status_code}: {text}", resp.status_code)


class NodeClient:
    """One node: pooled keep-alive HTTP with the node master key as Bearer token."""

    def __init__(self, node_id: str, url: str, *, api_key: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S):
        self.node_id = node_id
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(
            base_url=self.url,
            headers=headers,
            timeout=timeout_s,
            limits=httpx.Limits(
                max_connections=MAX_CONNECTIONS_PER_NODE,
                max_keepalive_connections=MAX_CONNECTIONS_PER_NODE,
                keepalive_expiry=KEEPALIVE_EXPIRY_S,
            ),
            # Node URLs are configured by the operator; no proxies from the environment.
            trust_env=False,
        )

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
        headers: dict[str, str] = {}
        if json is not None:
            content = _encoder.encode(json)
            content_type = content_type or "application/json"
        if content_type is not None:
            headers["Content-Type"] = content_type
        try:
            resp = await self._http.request(
                method,
                path,
                params=_clean_params(params),
                content=content,
                headers=headers,
                timeout=timeout_s if timeout_s is not None else self.timeout_s,
            )
        except httpx.TimeoutException as e:
            raise NodeUnavailable(self.node_id, f"timeout ({type(e).__name__})") from None
        except httpx.TransportError as e:
            raise NodeUnavailable(self.node_id, f"{type(e).__name__}: {e}") from None
        if resp.status_code >= 400:
            raise _error_from(self.node_id, resp)
        if not resp.content:
            return None
        try:
            return _decoder.decode(resp.content)
        except msgspec.DecodeError as e:
            raise NodeError(self.node_id, "internal", f"node `{self.node_id}` sent invalid JSON: {e}", 502) from None

    async def aclose(self) -> None:
        await self._http.aclose()


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
