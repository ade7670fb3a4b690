"""Miroir's `estimatedTotalHits` for a placeholder search under distinct equals one node's.

Without ranking rules milli walks the documents in id order until it has the page's last
hit and counts every document but those sharing a value with a hit it took (1.50's
distinct_search_with_offset_no_ranking: 11, then 10, then 6 for 14 documents). The nodes
of an index each walk their own documents; `distinct_walk_estimate` rebuilds one node's
figure from their answers. Checked here against one devnode holding every document.
"""

from __future__ import annotations

import pytest

from miroir.core.merge import distinct_walk_estimate
from miroir.core.reserved import SEQ_FIELD
from miroir.devnode.engine import IndexEngine

PRODUCTS = ["123456"] * 3 + ["789012"] * 2 + ["456789"] * 2 + ["987654"] + ["234567"] * 3 + ["345678"] * 3
SETTINGS = {"filterableAttributes": ["product_id"], "distinctAttribute": "product_id"}


def _docs() -> list[dict]:
    docs = [{"id": i + 1, "product_id": p, SEQ_FIELD: i + 1} for i, p in enumerate(PRODUCTS)]
    docs.insert(5, {"id": 100, SEQ_FIELD: 6})  # no distinct value: never excluded
    for i, d in enumerate(docs):
        d[SEQ_FIELD] = i + 1
    return docs


def _engine(docs: list[dict]) -> IndexEngine:
    eng = IndexEngine("walk")
    eng.set_settings(SETTINGS)
    eng.add_documents([dict(d) for d in docs], "id", partial=False)
    return eng


@pytest.mark.parametrize("offset", range(0, 10))
@pytest.mark.parametrize("nodes", [2, 3])
def test_walk_estimate_equals_one_node(offset: int, nodes: int) -> None:
    docs = _docs()
    limit = 2
    one = _engine(docs).search({"offset": offset, "limit": limit})["estimatedTotalHits"]
    parts = [_engine([d for i, d in enumerate(docs) if i % nodes == n]) for n in range(nodes)]
    answers = [e.search({"offset": 0, "limit": offset + limit, "facets": ["product_id"]}) for e in parts]
    assert distinct_walk_estimate(answers, "product_id", offset + limit) == one


def test_first_pages_estimate_before_counting() -> None:
    eng = _engine(_docs())
    assert [eng.search({"offset": o, "limit": 2})["estimatedTotalHits"] for o in (0, 2, 4, 6)] == [12, 11, 9, 7]
