"""`POST /indexes/{uid}/fields` (1.50): a scatter read over a covering set, the field
names merged and described with the client's settings (core/fieldlist.py)."""

from __future__ import annotations

from miroir.core import fieldlist
from miroir.core.settings import RESERVED_PREFIX
from miroir.engine.cluster import Cluster
from miroir.engine.reads import index_meta
from miroir.engine.scatter import merge_degraded, scatter
from miroir.engine.settings import index_settings

# Fields asked of each node in one page (a node's whole field map).
NODE_FIELDS_LIMIT = 1_000_000


async def list_fields(cluster: Cluster, uid: str, body: object) -> tuple[dict, dict[str, str]]:
    """`POST /indexes/{uid}/fields`: the union of the field names a covering set of nodes
    holds (each asked for all of its fields), without `_miroir_*`, described with the
    client's settings (core/fieldlist.py) and paginated by Miroir."""
    query = fieldlist.parse_fields_query(body)
    meta = index_meta(cluster, uid)
    settings = index_settings(cluster, uid)

    async def send(client, _shards, timeout_s: float) -> dict:
        return await client.call("POST", f"/indexes/{uid}/fields", json={"limit": NODE_FIELDS_LIMIT}, timeout_s=timeout_s)

    gathered = await scatter(cluster, meta, send)
    names: set[str] = set()
    for answer in gathered.results:
        names.update(f["name"] for f in answer.get("results") or () if not f["name"].startswith(RESERVED_PREFIX))
    return fieldlist.list_fields(names, settings, query), merge_degraded([gathered.check(cluster.config.scatter.unavailable_shard_policy, uid)])
