"""One call to a `rest` embedder: a search query's text to its embedding.

Used by engine/queryvectors.py so that a search through Miroir embeds its query once,
not once per node. Any failure answers None: the nodes then embed (or fail) as they
would have, so the client sees Meilisearch's own behaviour and errors.
"""

from __future__ import annotations

import httpx
import msgspec

from miroir.core.embedtemplate import (
    DEFAULT_REQUEST,
    DEFAULT_RESPONSE,
    TemplateError,
    extract,
    is_embedding,
    render,
    request_headers,
)

EMBED_TIMEOUT_S = 10.0


async def embed_query(conf: dict, text: str, timeout_s: float = EMBED_TIMEOUT_S) -> list[float] | None:
    url = conf.get("url")
    if not isinstance(url, str):
        return None
    body = msgspec.json.encode(render(conf.get("request", DEFAULT_REQUEST), [text]))
    try:
        # trust_env=False: the URL is the operator's setting, no proxy from the environment
        async with httpx.AsyncClient(timeout=timeout_s, trust_env=False) as client:
            resp = await client.post(url, content=body, headers=request_headers(conf))
        if resp.status_code >= 400:
            return None
        got = extract(conf.get("response", DEFAULT_RESPONSE), msgspec.json.decode(resp.content))
    except (httpx.HTTPError, msgspec.DecodeError, TemplateError, ValueError):
        return None
    if len(got) != 1 or not is_embedding(got[0]):
        return None
    return [float(x) for x in got[0]]
