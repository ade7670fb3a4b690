"""An embedder's `distribution` through Miroir: hits the shift clamps to one score keep
one node's order.

The shift clamps far hits to f32 epsilon (and close ones to 1); one node orders them by
their similarity, while a merge by the shown score put them in insertion order. Miroir
merges such a semantic search by each hit's similarity (engine/semanticties.py). One
devnode beside Miroir over 3 devnodes (16 shards): whole answers equal.
"""

from __future__ import annotations

import pytest

from tests.support.pairs import devnode_and_miroir, index_with, search_answer

# similarities to [1, 1] fall from 1 to 0.5: with mean 0.998, sigma 0.01 all but the
# closest clamp to epsilon, inserted in the reverse of their similarity order
DOCS = [{"id": str(i), "title": f"hero {i}", "_vectors": {"default": [1.0, 0.2 * i]}} for i in range(12)]
SETTINGS = {"embedders": {"default": {"source": "userProvided", "dimensions": 2,
                                      "distribution": {"mean": 0.998, "sigma": 0.01}}}}

BODIES = [
    {"vector": [1.0, 1.0], "hybrid": {"embedder": "default", "semanticRatio": 1.0}, "showRankingScore": True},
    {"vector": [1.0, 1.0], "hybrid": {"embedder": "default", "semanticRatio": 1.0}, "limit": 3, "offset": 2,
     "showRankingScoreDetails": True},
    {"vector": [0.2, 1.0], "hybrid": {"embedder": "default", "semanticRatio": 1.0}, "retrieveVectors": True},
    {"q": "hero", "vector": [1.0, 1.0], "hybrid": {"embedder": "default", "semanticRatio": 1.0}, "showRankingScore": True},
    {"q": "hero", "vector": [1.0, 1.0], "hybrid": {"embedder": "default", "semanticRatio": 0.8}, "showRankingScore": True},
]


@pytest.fixture(scope="module")
def pair():
    with devnode_and_miroir(nodes=3, shards=16) as (one, many):
        for c in (one, many):
            index_with(c, "heroes", DOCS, SETTINGS)
        yield one, many


@pytest.mark.parametrize("n", range(len(BODIES)))
def test_clamped_scores_keep_one_nodes_order(pair, n):
    one, many = pair
    assert search_answer(many, "heroes", BODIES[n]) == search_answer(one, "heroes", BODIES[n])
