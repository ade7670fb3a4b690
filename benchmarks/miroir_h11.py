"""Experiment for figure H: `miroir` with its node client's transport swapped for H11Pool.

    python benchmarks/miroir_h11.py serve --config miroir.toml

Same CLI as `miroir`; before it starts, `miroir.net.fleet.NodeClient` is replaced by
`H11NodeClient`, which keeps `NodeClient.call`'s contract (JSON in/out, `NodeError` for
an error answer, `NodeUnavailable` for no answer) but talks through
`miroir.net.h11pool.H11Pool` instead of `httpx.AsyncClient`. Benchmark-only: it shows
what adopting H11Pool in `net/node.py` would buy; it is not how Miroir runs.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

import msgspec

import miroir.net.fleet
from miroir import cli
from miroir.net import node as node_mod
from miroir.net.h11pool import H11Pool, H11PoolError, PoolTimeout
from miroir.net.node import NodeClient, NodeError, NodeUnavailable

_enc = msgspec.json.Encoder()
_dec = msgspec.json.Decoder()


class H11NodeClient(NodeClient):
    def __init__(self, node_id: str, url: str, *, api_key: str | None = None, timeout_s: float = node_mod.DEFAULT_TIMEOUT_S):
        self.node_id = node_id
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        parts = urlsplit(self.url)
        self._prefix = parts.path.rstrip("/")
        self._pool = H11Pool(parts.hostname or "127.0.0.1", parts.port or 80,
                             max_connections=node_mod.MAX_CONNECTIONS_PER_NODE)
        self._auth = [(b"authorization", f"Bearer {api_key}".encode())] if api_key else []

    async def call(self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json: Any = None,
                   content: bytes | None = None, content_type: str | None = None, timeout_s: float | None = None) -> Any:
        headers = list(self._auth)
        if json is not None:
            content = _enc.encode(json)
            content_type = content_type or "application/json"
        if content_type is not None:
            headers.append((b"content-type", content_type.encode()))
        target = self._prefix + path
        clean = node_mod._clean_params(params)
        if clean:
            target += "?" + urlencode(clean)
        try:
            status, _, body = await self._pool.request(
                method, target, headers, content or b"", timeout_s if timeout_s is not None else self.timeout_s
            )
        except PoolTimeout:
            raise NodeUnavailable(self.node_id, "timeout") from None
        except H11PoolError as e:
            raise NodeUnavailable(self.node_id, str(e)) from None
        if status >= 400:
            try:
                err = _dec.decode(body)
            except msgspec.DecodeError:
                err = None
            if isinstance(err, dict) and isinstance(err.get("code"), str):
                raise NodeError(self.node_id, err["code"], str(err.get("message", "")), status, err.get("type") or None)
            code = "internal" if status >= 500 else "bad_request"
            raise NodeError(self.node_id, code, f"node `{self.node_id}` answered {status}", status)
        if not body:
            return None
        try:
            return _dec.decode(body)
        except msgspec.DecodeError as e:
            raise NodeError(self.node_id, "internal", f"node `{self.node_id}` sent invalid JSON: {e}", 502) from None

    async def aclose(self) -> None:
        await self._pool.aclose()


def main() -> int:
    miroir.net.fleet.NodeClient = H11NodeClient  # type: ignore[misc]
    return cli.main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
