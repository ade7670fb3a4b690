"""A search's query embedded once by Miroir, not once per node (issue 18 item 3).

When a search needs its query embedded (a `hybrid` search with a query, no `vector`, a
ratio above 0) and the index's embedder is a `rest`, `openAi` or `ollama` one (1.50 runs
the last two as rest embedders of fixed templates: core/embedtemplate.as_rest), Miroir
calls the embedder with the index's settings and sends the embedding to the nodes as
`vector`: N nodes, one call.
Embeddings are kept briefly (repeated queries, the pages of one query): the same text and
embedder settings give the same embedding. When Miroir cannot embed, the request goes out
unchanged and the nodes embed, or refuse, as Meilisearch would.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Mapping

import msgspec

from miroir.core.embedtemplate import as_rest
from miroir.core.searchplan import SearchRequest
from miroir.net.embedder import embed_query

CACHE_SIZE = 4096
CACHE_TTL_S = 60.0

_cache: OrderedDict[tuple[bytes, str], tuple[float, list[float]]] = OrderedDict()


def _embedder_conf(req: SearchRequest, settings: Mapping) -> dict | None:
    hybrid = req.hybrid
    if not isinstance(hybrid, dict) or req.vector is not None or req.media is not None:
        return None
    if not (req.q and req.q.strip()):
        return None
    ratio = hybrid.get("semanticRatio", 0.5)
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0.0 < ratio <= 1.0:
        return None
    embedders = settings.get("embedders")
    conf = embedders.get(hybrid.get("embedder")) if isinstance(embedders, dict) else None
    if not isinstance(conf, dict):
        return None
    key = conf.get("apiKey")
    if isinstance(key, str) and key.endswith("..."):
        # Miroir keeps the settings the nodes show, their `apiKey` masked (as 1.50's
        # GET): the nodes hold the secret, so they embed (one call each).
        return None
    return as_rest(conf)


async def with_query_vector(req: SearchRequest, settings: Mapping | None) -> SearchRequest:
    conf = _embedder_conf(req, settings or {})
    if conf is None:
        return req
    q = req.q or ""
    key = (msgspec.json.encode(conf), q)
    now = time.monotonic()
    hit = _cache.get(key)
    if hit is not None and now - hit[0] < CACHE_TTL_S:
        _cache.move_to_end(key)
        return msgspec.structs.replace(req, vector=hit[1])
    vector = await embed_query(conf, q)
    if vector is None:
        return req
    _cache[key] = (now, vector)
    _cache.move_to_end(key)
    while len(_cache) > CACHE_SIZE:
        _cache.popitem(last=False)
    return msgspec.structs.replace(req, vector=vector)
