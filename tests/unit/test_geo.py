"""core/geo: distances, Rust's number texts and the sort criterion as Meilisearch 1.50
reads them (the figures are its snapshots' and milli's)."""

from __future__ import annotations

import pytest

from miroir.core import geo


def test_distance_is_geoutils_haversine():
    # geo.rs geo_sort_with_words and bug_4640
    assert round(geo.distance_m((0.0, 0.0), (-89.0, 0.0))) == 9896348
    assert round(geo.distance_m((0.0, 0.0), (0.0, 178.0))) == 19792697
    assert round(geo.distance_m((45.4777599, 9.1967508), (34.0522, -118.2437))) == 9714063


def test_geo_distance_reads_the_shown_point():
    origin = geo.distance_origin(["title:asc", "_geoPoint(45.4777599, 9.1967508):asc"])
    assert origin == (45.4777599, 9.1967508)
    assert geo.geo_distance(origin, {"_geo": {"lat": "45.4777599", "lng": "9.1967508"}}) == 0
    assert geo.geo_distance(origin, {"name": "no point"}) is None
    assert geo.distance_origin(["_geoPoint(1e1, 2):asc"]) is None  # 1.50's pattern: digits, `.` and `-`


def test_rust_number_texts():
    assert [geo.rust_f64(x) for x in (0.0, -0.0, 100.0, 45.4777599, 1e-7, 1e16, float("nan"))] == [
        "0", "-0", "100", "45.4777599", "0.0000001", "10000000000000000", "NaN",
    ]
    assert geo.parse_rust_float("+1.") == 1.0 and geo.parse_rust_float("1_0") is None
    assert geo.details_key((0.0, 0.0), True) == "_geoPoint(0, 0):asc"


@pytest.mark.parametrize(
    ("member", "expected"),
    [
        ("title", None),
        ("_geoPoint(1, 2)", (1.0, 2.0)),
        ("_geo", "`_geo` is a reserved keyword and thus can't be used as a sort expression. Use the _geoPoint(latitude, longitude) built-in rule to sort on _geo field coordinates."),
        ("_geoDistance", "`_geoDistance` is a reserved keyword and thus can't be used as a sort expression."),
        ("_geoRadius(1, 2, 3)", "`_geoRadius` is a reserved keyword and thus can't be used as a sort expression. Use the _geoPoint(latitude, longitude) built-in rule to sort on _geo field coordinates."),
        ("_geoPoint(1)", "Invalid syntax for the geo parameter: expected expression formated like `_geoPoint(latitude, longitude)` and ending by `:asc` or `:desc`, found `_geoPoint(1)`."),
        ("_geoPoint(-90.0000001, 0)", "Bad latitude `-90.0000001`. Latitude must be contained between -90 and 90 degrees."),
        ("_geoPoint(0, 180.000001)", "Bad longitude `180.000001`. Longitude must be contained between -180 and 180 degrees. Hint: try using `-179.999999` instead."),
    ],
)
def test_sort_member(member, expected):
    if isinstance(expected, str):
        with pytest.raises(geo.SortError) as e:
            geo.parse_sort_member(member)
        assert str(e.value) == expected
    else:
        assert geo.parse_sort_member(member) == expected
