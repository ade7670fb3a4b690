"""Hybrid search across shards: two exact searches combined as milli combines them.

A node answering a hybrid search decides alone whether its keyword hits are "good
enough" to skip the semantic search, and shows each hit's own score, not the weighted one
it ranked with: neither can be merged from the nodes' pages into one node's answer. So
Miroir runs the two searches milli runs inside a hybrid one, each across every shard and
merged exactly (a keyword search, `semanticRatio` 0, and a semantic one, `semanticRatio`
1, both of `offset + limit` hits from 0), and `combine` does what milli's `hybrid.rs`
does with them:

- keyword only when the keyword search found `offset + limit` hits and every one scores
  at least 0.45 once weighted by `1 - semanticRatio`, or when the query has no embedding;
- else the two lists merged by score times ratio (`semanticRatio` for the semantic hits,
  `1 - semanticRatio` for the keyword ones), the semantic hit first when the weighted
  scores are within f64 epsilon; a document in both lists counted once, where it comes
  first; `distinct` applied on the merged stream; then the page.

`semanticHitCount` counts the page's semantic hits; the total and the facets are the
semantic search's (its candidates are every filtered document, a superset of the
keyword ones), or the keyword search's when it answered alone. Pure: no I/O.
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from miroir.core.searchplan import SearchRequest

GOOD_ENOUGH_SCORE = 0.45  # milli: a keyword score of 0.9 at semanticRatio 0.5
_EPSILON = sys.float_info.epsilon
SCORE = "_rankingScore"
DETAILS = "_rankingScoreDetails"


def semantic_ratio(req: SearchRequest) -> float:
    ratio = (req.hybrid or {}).get("semanticRatio", 0.5)
    return float(ratio) if isinstance(ratio, (int, float)) and not isinstance(ratio, bool) else 0.5


def is_hybrid(req: SearchRequest) -> bool:
    """Whether 1.50 runs this search as a hybrid one (keyword and semantic): a query, a
    `hybrid` whose ratio is neither 0 (keyword only) nor 1 (semantic only); malformed
    parameters are left to the nodes, which refuse them."""
    if not isinstance(req.hybrid, dict) or req.media is not None:
        return False
    if not isinstance(req.hybrid.get("embedder"), str):
        return False
    ratio = req.hybrid.get("semanticRatio", 0.5)
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0.0 < ratio < 1.0:
        return False
    return bool(req.q and req.q.strip())


def _f32(x: float) -> float:
    return struct.unpack("f", struct.pack("f", x))[0]


def weights(ratio: float) -> tuple[float, float]:
    """(semantic weight, keyword weight): milli's `semanticRatio` is an f32 and the
    keyword weight `1.0 - semanticRatio` is computed in f32 too (0.1 weighs the keyword
    hits 0.89999998, not 0.9: a 0.5 keyword score is then not "good enough")."""
    r = _f32(ratio)
    return r, _f32(1.0 - r)


def _hit_score(hit: dict) -> float:
    return hit.get(SCORE, 0.0)


def good_enough(keyword_hits: Sequence[Any], wanted: int, ratio: float, score: Callable[[Any], float] = _hit_score) -> bool:
    """milli's test for answering with the keyword hits alone (`score`: a hit's ranking
    score; hit dicts for Miroir, the devnode's own entries for the devnode)."""
    if len(keyword_hits) < wanted:
        return False
    keyword_weight = weights(ratio)[1]
    return all(score(h) * keyword_weight >= GOOD_ENOUGH_SCORE for h in keyword_hits)


def merged_stream(
    keyword_hits: Sequence[Any], semantic_hits: Sequence[Any], ratio: float, score: Callable[[Any], float] = _hit_score
) -> Iterator[tuple[Any, bool]]:
    """(hit, is_semantic) in milli's merge order (milli's `merge_by` of the two lists)."""
    semantic_weight, keyword_weight = weights(ratio)
    i = j = 0
    while i < len(semantic_hits) or j < len(keyword_hits):
        if j >= len(keyword_hits):
            yield semantic_hits[i], True
            i += 1
        elif i >= len(semantic_hits):
            yield keyword_hits[j], False
            j += 1
        else:
            left = score(semantic_hits[i]) * semantic_weight
            right = score(keyword_hits[j]) * keyword_weight
            if abs(left - right) <= _EPSILON or left > right:
                yield semantic_hits[i], True
                i += 1
            else:
                yield keyword_hits[j], False
                j += 1


def combine(
    keyword: dict,
    semantic: dict | None,
    *,
    ratio: float,
    offset: int,
    limit: int,
    identity: Callable[[dict], Any],
    keep: Callable[[dict], bool] | None,
) -> tuple[list[dict], int, dict, int]:
    """(page, total, answer the total and facets come from, semanticHitCount).

    `keyword` and `semantic` are the merged answers of the two searches (`semantic` None:
    the query could not be embedded); `identity` names a hit's document (its primary
    key); `keep` is the distinct filter of the merge (None without distinct)."""
    kw_hits = keyword.get("hits") or []
    if semantic is None or good_enough(kw_hits, offset + limit, ratio):
        return kw_hits[offset:offset + limit], _total(keyword), keyword, 0
    seen: set = set()
    page: list[dict] = []
    semantic_count = 0
    skipped = 0
    for hit, is_semantic in merged_stream(kw_hits, semantic.get("hits") or [], ratio):
        key = identity(hit)
        if key in seen:
            continue
        seen.add(key)
        if keep is not None and not keep(hit):
            continue
        if skipped < offset:
            skipped += 1
            continue
        if len(page) >= limit:
            break
        page.append(hit)
        semantic_count += is_semantic
    return page, max(_total(keyword), _total(semantic)), semantic, semantic_count


def _total(answer: dict) -> int:
    return int(answer.get("estimatedTotalHits", answer.get("totalHits", 0)) or 0)
