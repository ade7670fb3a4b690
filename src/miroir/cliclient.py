"""The admin client behind `miroir status|nodes|rebalance|dump|import-dump`: HTTP to a running Miroir.

Synchronous (a CLI makes one request at a time). Every failure is an `AdminError` whose
message is the one line the CLI prints: the server's Meilisearch-shaped refusal
(`message (code)`), or why it could not be reached.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import httpx

DEFAULT_URL = "http://127.0.0.1:7700"
# Deadline of one admin request; adding a node prepares its indexes before answering.
REQUEST_TIMEOUT_S = 60.0


class AdminError(Exception):
    """One line for the operator; `code` is the server's error code when it answered one."""

    def __init__(self, message: str, code: str | None = None):
        super().__init__(message)
        self.code = code


class AdminClient:
    def __init__(self, url: str | None = None, admin_key: str | None = None, env: Mapping[str, str] = os.environ):
        self.url = (url or env.get("MIROIR_URL") or DEFAULT_URL).rstrip("/")
        key = admin_key or env.get("MIROIR_ADMIN_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        try:
            self._http = httpx.Client(base_url=self.url, headers=headers, timeout=REQUEST_TIMEOUT_S, trust_env=False)
        except (httpx.InvalidURL, ValueError) as e:
            raise AdminError(f"bad Miroir url `{self.url}`: {e}") from None

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            r = self._http.request(method, path, **kwargs)
        except httpx.TransportError as e:
            raise AdminError(f"cannot reach Miroir at {self.url}: {e or type(e).__name__}") from None
        except httpx.InvalidURL as e:
            raise AdminError(f"bad Miroir url `{self.url}`: {e}") from None
        try:
            body = r.json() if r.content else None
        except ValueError:
            body = None
        if r.status_code >= 400:
            if isinstance(body, dict) and "message" in body:
                raise AdminError(f"{body['message']} ({body.get('code', r.status_code)})", body.get("code"))
            raise AdminError(f"Miroir at {self.url} answered {r.status_code} {r.reason_phrase}")
        return body

    def topology(self) -> dict:
        return self.request("GET", "/_miroir/topology")

    def rebalance(self) -> dict:
        return self.request("GET", "/_miroir/rebalance")

    def add_node(self, node_id: str, url: str, group: str | None, weight: float | None = None) -> dict:
        body: dict[str, Any] = {"id": node_id, "url": url}
        if group is not None:
            body["group"] = group
        if weight is not None:
            body["weight"] = weight
        return self.request("POST", "/_miroir/nodes", json=body)

    def drain_node(self, node_id: str) -> dict:
        return self.request("POST", f"/_miroir/nodes/{node_id}/drain")

    def remove_node(self, node_id: str, force: bool) -> dict:
        return self.request("DELETE", f"/_miroir/nodes/{node_id}", params={"force": "true"} if force else None)

    def set_node_url(self, node_id: str, url: str) -> dict:
        return self.request("PATCH", f"/_miroir/nodes/{node_id}", json={"url": url})

    def reshard(self, uid: str, shards: int) -> dict:
        return self.request("POST", f"/_miroir/indexes/{uid}/reshard", json={"shards": shards})

    def pause(self) -> dict:
        return self.request("POST", "/_miroir/rebalance/pause")

    def resume(self) -> dict:
        return self.request("POST", "/_miroir/rebalance/resume")
