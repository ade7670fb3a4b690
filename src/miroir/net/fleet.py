"""The fleet: node id -> `NodeClient`. Owns its clients and closes them."""

from __future__ import annotations

from collections.abc import Iterator

from miroir.net.node import DEFAULT_TIMEOUT_S, NodeClient


class Fleet:
    """Node clients by id. `add` replaces (and closes) a client whose URL changed."""

    def __init__(self, *, api_key: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S):
        self.api_key = api_key
        self.timeout_s = timeout_s
        self._clients: dict[str, NodeClient] = {}

    def __getitem__(self, node_id: str) -> NodeClient:
        return self._clients[node_id]

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._clients

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._clients))

    def __len__(self) -> int:
        return len(self._clients)

    def get(self, node_id: str) -> NodeClient | None:
        return self._clients.get(node_id)

    async def add(self, node_id: str, url: str) -> NodeClient:
        old = self._clients.get(node_id)
        if old is not None:
            if old.url == url.rstrip("/"):
                return old
            await old.aclose()
        client = NodeClient(node_id, url, api_key=self.api_key, timeout_s=self.timeout_s)
        self._clients[node_id] = client
        return client

    async def remove(self, node_id: str) -> None:
        client = self._clients.pop(node_id, None)
        if client is not None:
            await client.aclose()

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for c in clients:
            await c.aclose()
