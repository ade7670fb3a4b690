"""`_vectors` filters (1.50's filter-parser VectorExists) and hybrid weights, pure."""

from __future__ import annotations

import pytest

from miroir.core import hybrid
from miroir.core.filter import (
    And,
    Exists,
    FilterError,
    Not,
    VectorExists,
    check_filterable,
    check_vector_filters,
    parse_filter,
    to_filter_string,
    vector_filter_error,
    vector_filter_position,
)


@pytest.mark.parametrize(("text", "expr"), [
    ("_vectors EXISTS", VectorExists(None)),
    ("_vectors.rest NOT EXISTS", VectorExists("rest", negated=True)),
    ("NOT _vectors.rest.userProvided EXISTS", Not(VectorExists("rest", "userProvided"))),
    ('_vectors."a.b".fragments.\'x y\' EXISTS', VectorExists("a.b", "fragments", "x y")),
    ("_vectors.e.regenerate EXISTS AND _vectorsX EXISTS", And((VectorExists("e", "regenerate"), Exists("_vectorsX")))),
])
def test_parse_and_round_trip(text, expr):
    assert parse_filter(text) == expr
    assert parse_filter(to_filter_string(expr)) == expr


def test_errors_position_and_gate():
    with pytest.raises(FilterError) as e:
        parse_filter("_vectors.rest.fargments.x EXISTS")
    assert e.value.message.endswith("Did you mean `fragments`?\n15:24 _vectors.rest.fargments.x EXISTS")
    expr = parse_filter("a = 1 AND _vectors.rset EXISTS")
    assert vector_filter_position(expr) == "11:19 a = 1 AND _vectors.rset EXISTS"
    check_filterable(expr, ["a"])  # `_vectors` needs no filterable rule
    with pytest.raises(FilterError) as e:
        check_vector_filters(expr, {"rest": []})
    assert e.value.message == (
        "The embedder `rset` does not exist. Available embedders are: `rest`. Did you mean `rest`?\n"
        '28:32 ("a" = "1") AND (_vectors."rset" EXISTS)')
    with pytest.raises(FilterError) as e:
        check_vector_filters(expr, {"rest": []}, serialized=False)
    assert e.value.message.endswith("\n20:24 a = 1 AND _vectors.rset EXISTS")
    settings = {"filterableAttributes": ["a"], "embedders": {"rest": {"source": "rest"}}}
    got = vector_filter_error("a = 1 AND _vectors.rset EXISTS", uid="i", settings=settings, features={"multimodal"})
    assert got is not None and got.message.startswith("Index `i`: The embedder `rset`")
    assert vector_filter_error("_vectors.rset EXISTS", uid="i", settings=settings, features=()) is None  # the gate first
    assert vector_filter_error("b = 1 AND _vectors.rset EXISTS", uid="i", settings=settings,
                               features={"multimodal"}) is None  # `b` is refused first, by the nodes


def test_hybrid_weights_are_f32():
    assert hybrid.weights(0.1) == (0.10000000149011612, 0.8999999761581421)
    assert not hybrid.good_enough([{"_rankingScore": 0.5}], 1, 0.1)  # 0.5 * 0.89999998 < 0.45
    assert hybrid.good_enough([{"_rankingScore": 0.5}], 1, 0.09)


def test_reserved_field_after_a_vector_filter_is_refused():
    from miroir.core import reserved

    got = reserved.filter_error("_vectors EXISTS AND _miroir_shard = 1", ["a"])
    assert got is not None and got.message.startswith("Attribute `_miroir_shard` is not filterable.")
