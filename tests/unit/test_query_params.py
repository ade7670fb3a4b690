"""The query-string readers shared by Miroir's and the devnode's routes (core/errors.py):
each parser refuses an unknown parameter, a bad integer and a bad boolean with 1.50's texts."""

from __future__ import annotations

import pytest

from miroir.core.errors import MeiliError
from miroir.core.searchplan import parse_search_query_string
from miroir.core.similar import similar_body_from_query
from miroir.core.statsview import parse_stats_params
from miroir.engine.reads import DOCUMENT_PARAMS, documents_query_from_params


def _refused(fn, arg) -> tuple[str, str]:
    with pytest.raises(MeiliError) as e:
        fn(arg)
    return e.value.code, e.value.message


BOOL = "could not parse `yes` as a boolean, expected either `true` or `false`"


def test_documents_params():
    assert documents_query_from_params({"offset": "3", "limit": "07", "retrieveVectors": "true", "useNetwork": "false"}).limit == 7
    listed = ", ".join(f"`{p}`" for p in DOCUMENT_PARAMS)
    assert _refused(documents_query_from_params, {"nope": "1"}) == (
        "bad_request", f"Unknown parameter `nope`: expected one of {listed}"
    )
    assert _refused(documents_query_from_params, {"offset": "-1"}) == (
        "invalid_document_offset", "Invalid value in parameter `offset`: could not parse `-1` as a positive integer"
    )
    assert _refused(documents_query_from_params, {"retrieveVectors": "yes"}) == (
        "invalid_document_retrieve_vectors", f"Invalid value in parameter `retrieveVectors`: {BOOL}"
    )
    assert _refused(documents_query_from_params, {"useNetwork": "yes"}) == (
        "invalid_document_use_network", f"Invalid value in parameter `useNetwork`: {BOOL}"
    )


def test_search_similar_and_stats_params():
    assert _refused(parse_search_query_string, {"showRankingScore": "yes"}) == (
        "invalid_search_show_ranking_score", f"Invalid value in parameter `showRankingScore`: {BOOL}"
    )
    code, message = _refused(parse_search_query_string, {"nope": "1"})
    assert code == "bad_request" and message.startswith("Unknown parameter `nope`: expected one of `q`, ")
    assert _refused(similar_body_from_query, [("retrieveVectors", "yes")]) == (
        "invalid_similar_retrieve_vectors", f"Invalid value in parameter `retrieveVectors`: {BOOL}"
    )
    code, message = _refused(similar_body_from_query, [("nope", "1")])
    assert code == "bad_request" and message.startswith("Unknown parameter `nope`: expected one of `id`, `embedder`, ")
    assert _refused(parse_stats_params, [("showInternalDatabaseSizes", "yes")]) == (
        "invalid_stats_show_internal_database_sizes", f"Invalid value in parameter `showInternalDatabaseSizes`: {BOOL}"
    )
    assert _refused(parse_stats_params, [("x", "1")]) == (
        "bad_request", "Unknown parameter `x`: expected one of `showInternalDatabaseSizes`, `sizeFormat`"
    )
    assert parse_stats_params([("showInternalDatabaseSizes", "true")]).show_internal is True
