"""A node's address changes: `PATCH /_miroir/nodes/{id}` (`miroir nodes set-url`) and the
config's `[[nodes]]` url of a node the journal already knows (engine/services.py).

Only the address changes: the node keeps its id, group, state and shards, so nothing is
planned or moved. The new url is journaled (`NodePut`), so it survives a restart, and the
node's client is rebuilt (engine/cluster.py refresh_topology). Its health entry is kept:
a node that was down at its old address stays down until the probes find it at the new
one.

Its address checks (scheme, taken by another node, reachable) are also the ones a node
being added passes (engine/rebalancer.py add_node).
"""

from __future__ import annotations

from typing import Any

import structlog

from miroir.core.errors import MeiliError
from miroir.core.model import MiroirState, NodeMeta, NodePut
from miroir.engine.cluster import Cluster
from miroir.net.node import NodeClient, NodeError, NodeUnavailable

log = structlog.get_logger("miroir.nodes")

# Deadline of the reachability check of a new address (node added or moved).
CHECK_TIMEOUT_S = 5.0


def _same(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


def url_taken(state: MiroirState, node_id: str, url: str) -> str | None:
    """The id of another live node already at `url`, if any."""
    for n in state.nodes.values():
        if n.id != node_id and n.state != "removed" and _same(n.url, url):
            return n.id
    return None


def moved(node: NodeMeta, url: str) -> NodePut:
    """The record of `node` at its new address (everything else unchanged)."""
    return NodePut(node=NodeMeta(id=node.id, url=url.rstrip("/"), group=node.group, state=node.state))


async def set_url(cluster: Cluster, node_id: str, url: str) -> dict[str, Any]:
    n = cluster.state.nodes.get(node_id)
    if n is None or n.state == "removed":
        raise MeiliError("miroir_node_not_found", f"Node `{node_id}` not found.")
    check_scheme(url)
    other = url_taken(cluster.state, node_id, url)
    if other is not None:
        raise MeiliError(
            "miroir_node_already_exists", f"Node `{other}` already has url `{url}`.", status=409, type="invalid_request"
        )
    old = n.url
    if not _same(old, url):
        await check_reachable(cluster, node_id, url)
        await cluster.journal.append(moved(n, url))
        await cluster.refresh_topology()
        log.warning("node.url_changed", node=node_id, old_url=old, new_url=url.rstrip("/"), source="admin")
    node = cluster.state.nodes[node_id]
    return {"node": {"id": node.id, "url": node.url, "group": node.group, "state": node.state}, "previousUrl": old}


def check_scheme(url: str) -> None:
    if not url.startswith(("http://", "https://")):
        raise MeiliError("miroir_invalid_node", f"Node url `{url}` must start with http:// or https://.")


async def check_reachable(cluster: Cluster, node_id: str, url: str) -> None:
    """A new address (a node added or moved) answers as a node Miroir may use: a typo is
    refused, not journaled."""
    client = NodeClient(node_id, url, api_key=cluster.fleet.api_key, timeout_s=CHECK_TIMEOUT_S)
    try:
        await client.call("GET", "/indexes", params={"limit": 1})
    except NodeUnavailable as e:
        raise MeiliError("miroir_node_unavailable", f"Node `{node_id}` at {url} does not answer: {e.reason}.") from None
    except NodeError as e:
        raise MeiliError("miroir_invalid_node", f"Node `{node_id}` at {url} refused Miroir: {e.message}") from None
    finally:
        await client.aclose()
