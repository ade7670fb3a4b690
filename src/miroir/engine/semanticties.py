"""Semantic hits whose shown scores an embedder's `distribution` clamped together.

The shift clamps to ]0, 1]: hits far from the query all show f32 epsilon (close ones
1), and one node keeps them in similarity order, which a merge by the shown score
cannot see. For a semantic search with such an embedder and the query vector known,
Miroir asks the nodes for the hits' embeddings, merges by each hit's own similarity
(core/vectorscore.py: milli's, in f32; the shift keeps its order), then shows the
nodes' scores again and drops the embeddings the client did not ask for.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from miroir.core import vectorscore
from miroir.core.searchplan import SearchRequest

SCORE = "_rankingScore"


def needed(req: SearchRequest, settings: Mapping[str, Any]) -> str | None:
    """The embedder whose similarities should order the merge, or None."""
    hybrid = req.hybrid
    if not isinstance(hybrid, dict) or req.vector is None or req.media is not None or req.sort:
        return None
    ratio = hybrid.get("semanticRatio", 0.5)
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or ratio == 0.0:
        return None
    if ratio != 1.0 and req.q and req.q.strip():
        return None  # a hybrid search: its semantic half comes here with ratio 1
    wanted = req.attributes_to_retrieve
    if wanted is not None and "*" not in wanted and "_vectors" not in wanted:
        return None
    name = hybrid.get("embedder")
    embedders = settings.get("embedders")
    conf = embedders.get(name) if isinstance(embedders, Mapping) and isinstance(name, str) else None
    if not isinstance(conf, Mapping) or vectorscore.distribution_of(conf) is None:
        return None
    return name


def order_by_similarity(responses: list[dict], name: str, vector: list[float]) -> dict[int, Any]:
    """Each hit's shown score replaced by its similarity (no embedding: below every one);
    returns the shown scores by hit identity, for `restore`."""
    shown: dict[int, Any] = {}
    for r in responses:
        for h in r.get("hits") or ():
            if SCORE not in h:
                continue
            shown[id(h)] = h[SCORE]
            got = ((h.get("_vectors") or {}).get(name) or {}).get("embeddings") or []
            best = vectorscore.best_similarity(vector, got) if isinstance(got, list) else None
            h[SCORE] = -1.0 if best is None else best
    return shown


def restore(hits: list[dict], shown: dict[int, Any], *, keep_score: bool, keep_vectors: bool) -> None:
    for h in hits:
        if id(h) in shown and keep_score:
            h[SCORE] = shown[id(h)]
        if not keep_vectors:
            h.pop("_vectors", None)
