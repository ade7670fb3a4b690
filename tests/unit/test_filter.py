"""Tests for miroir.core.filter: Meilisearch's filter grammar, evaluation and planning helpers.

Expected error texts are those of Meilisearch's filter-parser snapshot tests (its
operator list: OPERATION_LIST) and of milli's filter tests.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from miroir.core.errors import MeiliError
from miroir.core.filter import (
    OPERATION_LIST,
    And,
    Compare,
    Exists,
    FilterError,
    Geo,
    In,
    IsEmpty,
    IsNull,
    Not,
    Or,
    Range,
    and_filters,
    check_filterable,
    compile_filter,
    filter_attributes,
    matches,
    parse_filter,
    pinned_keys,
    shard_filter,
    to_filter_string,
)

P = parse_filter


def C(attr, op, value):
    return Compare(attr, op, value)


# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    "text, expected",
    [
        ("channel = Ponce", C("channel", "=", "Ponce")),
        ("subscribers = 12", C("subscribers", "=", "12")),
        ("channel = 'Mister Mv'", C("channel", "=", "Mister Mv")),
        ('channel = "Mister Mv"', C("channel", "=", "Mister Mv")),
        ("'dog race' = Borzoi", C("dog race", "=", "Borzoi")),
        ("\"dog race\" = 'Bernese Mountain'", C("dog race", "=", "Bernese Mountain")),
        ("channel != ponce", C("channel", "!=", "ponce")),
        ("subscribers < 1000", C("subscribers", "<", "1000")),
        ("subscribers > 1000", C("subscribers", ">", "1000")),
        ("subscribers <= 1000", C("subscribers", "<=", "1000")),
        ("subscribers >= 1000", C("subscribers", ">=", "1000")),
        ("a>=-1.5", C("a", ">=", "-1.5")),
        ("subscribers 100 TO 1000", Range("subscribers", "100", "1000")),
        ("colour IN[]", In("colour", (), False)),
        ("colour IN[green]", In("colour", ("green",), False)),
        ("colour IN[green,]", In("colour", ("green",), False)),
        (" colour IN [  green , blue , ]", In("colour", ("green", "blue"), False)),
        ("colour NOT IN[green,blue]", In("colour", ("green", "blue"), True)),
        (" colour NOT  IN [green, blue] ", In("colour", ("green", "blue"), True)),
        ("subscribers EXISTS", Exists("subscribers", False)),
        ("subscribers NOT   EXISTS", Exists("subscribers", True)),
        ("subscribers IS NULL", IsNull("subscribers", False)),
        ("subscribers  IS   NOT   NULL", IsNull("subscribers", True)),
        ("subscribers IS EMPTY", IsEmpty("subscribers", False)),
        ("subscribers IS NOT EMPTY", IsEmpty("subscribers", True)),
        ("NOT subscribers < 1000", Not(C("subscribers", "<", "1000"))),
        ("NOT NOT NOT NOT x = 5", C("x", "=", "5")),
        ("NOT NOT (NOT NOT x = 5)", C("x", "=", "5")),
        ("NOT NOT NOT x = 5", Not(C("x", "=", "5"))),
        ("_geoRadius(12, 13, 14)", Geo("_geoRadius", ("12", "13", "14"))),
        ("_geoRadius(12,13.5,-1e3)", Geo("_geoRadius", ("12", "13.5", "-1e3"))),
        ("NOT _geoRadius(12, 13, 14)", Not(Geo("_geoRadius", ("12", "13", "14")))),
        ("_geoBoundingBox([12, 13], [14, 15])", Geo("_geoBoundingBox", ("12", "13", "14", "15"))),
        ("_geoBoundingBox([12,13],[14,15])", Geo("_geoBoundingBox", ("12", "13", "14", "15"))),
        ("_geoRadius(1, 2, 3, 125)", Geo("_geoRadius", ("1", "2", "3", "125"))),
        ("_geoPolygon([12, 13], [14, 15], [16, 17])", Geo("_geoPolygon", ("12", "13", "14", "15", "16", "17"))),
        ("_geoPolygon([1,2],[3,4],[5,6],)", Geo("_geoPolygon", ("1", "2", "3", "4", "5", "6"))),
        ("doggo.name = bobby", C("doggo.name", "=", "bobby")),
        ("'doggo.name' = bobby", C("doggo.name", "=", "bobby")),
        ('NOT "OR" EXISTS AND "EXISTS" NOT EXISTS', And((Not(Exists("OR")), Exists("EXISTS", True)))),
        ("title = 'and'", C("title", "=", "and")),
        ("title = and", C("title", "=", "and")),  # lowercase words are not keywords
        ("title = 'été'", C("title", "=", "été")),
        ("title = été", C("title", "=", "été")),
    ],
)
def test_parse_operators(text, expected):
    assert P(text) == expected


def test_precedence_and_parentheses():
    a, b, c = C("a", "=", "1"), C("b", "=", "2"), C("c", "=", "3")
    assert P("a = 1 AND b = 2 OR c = 3") == Or((And((a, b)), c))
    assert P("a = 1 OR b = 2 AND c = 3") == Or((a, And((b, c))))
    assert P("a = 1 AND (b = 2 OR c = 3)") == And((a, Or((b, c))))
    assert P("(a = 1 AND b = 2) AND c = 3") == And((And((a, b)), c))
    assert P("a = 1 OR b = 2 OR c = 3") == Or((a, b, c))
    assert P("NOT a = 1 AND b = 2") == And((Not(a), b))
    assert P("NOT (a = 1 AND b = 2)") == Not(And((a, b)))
    assert P(" ( a = 1 ) ") == a
    assert P("(((a = 1)))") == a
    assert P("NOT(a = 1)") == Not(a)


def test_quoting_and_escapes():
    assert P(r"title = 'foo\\'") == C("title", "=", "foo\\")
    assert P(r"title = 'foo\\\\'") == C("title", "=", "foo\\\\")
    assert P(r"""title = 'foo\x20\n\t\"\'"'""") == C("title", "=", "foo \n\t\"'\"")
    assert P(r"""title = "I'm \"super\" tamo" """) == C("title", "=", 'I\'m "super" tamo')
    assert P(r"title = 'I\'m'") == C("title", "=", "I'm")
    assert P(r"title = '\u{e9}t\u00e9'") == C("title", "=", "été")
    assert P("title = ''") == C("title", "=", "")
    assert P("title = ' some spaces '") == C("title", "=", " some spaces ")
    assert P("'cha)nnel' = 'a(b'") == C("cha)nnel", "=", "a(b")


def test_empty_filters():
    for value in (None, "", "   ", [], ["", "  "], [[]], [[""]]):
        assert P(value) is None


def test_array_form():
    a, b, c = C("a", "=", "1"), C("b", "=", "2"), C("c", "=", "3")
    assert P(["a = 1", ["b = 2", "c = 3"]]) == And((a, Or((b, c))))
    assert P(["a = 1"]) == a
    assert P([["a = 1"]]) == a
    assert P(["a = 1", "b = 2"]) == And((a, b))
    assert P([["a = 1", "b = 2"]]) == Or((a, b))
    assert P(["a = 1 OR b = 2", "c = 3"]) == And((Or((a, b)), c))
    assert P(["", "a = 1", [""]]) == a


def test_array_form_shape_errors():
    with pytest.raises(FilterError) as e:
        P(12)
    assert e.value.message == "Invalid syntax for the filter parameter: `expected String, Array, found: 12`."
    with pytest.raises(FilterError) as e:
        P(["a = 1", True])
    assert e.value.message == "Invalid syntax for the filter parameter: `expected String, [String], found: true`."
    with pytest.raises(FilterError) as e:
        P([["a = 1", 3]])
    assert e.value.message == "Invalid syntax for the filter parameter: `expected String, found: 3`."


def test_array_form_error_points_into_the_failing_string():
    with pytest.raises(FilterError) as e:
        P(["a = 1", ["b = 2", "c ="]])
    assert e.value.message == "Was expecting a value but instead got nothing.\n4:4 c ="


def _op_msg(tail):
    return f"Was expecting an operation {OPERATION_LIST} {tail}"


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "channel = Ponce = 12",
            "Found unexpected characters at the end of the filter: `= 12`. You probably forgot an `OR` or an `AND` rule.\n17:21 channel = Ponce = 12",
        ),
        ("channel =    ", "Was expecting a value but instead got nothing.\n14:14 channel =    "),
        ("channel = 🐻", "Was expecting a value but instead got `🐻`.\n11:12 channel = 🐻"),
        (
            "channel = 🐻 AND followers < 100",
            "Was expecting a value but instead got `🐻`.\n11:12 channel = 🐻 AND followers < 100",
        ),
        ("'OR'", _op_msg("at `\\'OR\\'`.") + "\n1:5 'OR'"),
        (
            "OR",
            "Was expecting a value but instead got `OR`, which is a reserved keyword. To use `OR` as a field name or a value, surround it by quotes.\n1:3 OR",
        ),
        ("channel Ponce", _op_msg("at `channel Ponce`.") + "\n1:14 channel Ponce"),
        ("channel = Ponce OR", _op_msg("but instead got nothing.") + "\n19:19 channel = Ponce OR"),
        ("title =", "Was expecting a value but instead got nothing.\n8:8 title ="),
        ("title", _op_msg("at `title`.") + "\n1:6 title"),
        (
            "_geoRadius",
            "The `_geoRadius` filter must be in the form: `_geoRadius(latitude, longitude, radius, optionalResolution)`.\n11:11 _geoRadius",
        ),
        (
            "_geoRadius = 12",
            "The `_geoRadius` filter must be in the form: `_geoRadius(latitude, longitude, radius, optionalResolution)`.\n11:16 _geoRadius = 12",
        ),
        (
            "_geoBoundingBox(1.0, 1.0)",
            "The `_geoBoundingBox` filter expects two pairs of arguments: `_geoBoundingBox([latitude, longitude], [latitude, longitude])`.\n17:26 _geoBoundingBox(1.0, 1.0)",
        ),
        # filter-parser's own snapshots for `_geoPolygon` and the `_geoRadius` resolution
        ("_geoPolygon([1,2,3])", "The `_geoPolygon` filter expects at least 3 points but only 1 were specified\n18:19 _geoPolygon([1,2,3])"),
        (
            "_geoPolygon(1,2,3)",
            "The `_geoPolygon` filter doesn't match the expected format: `_geoPolygon([latitude, longitude], [latitude, longitude])`.\n13:19 _geoPolygon(1,2,3)",
        ),
        ("_geoPolygon([1,2],[1,2],[1,2,3])", "Was expecting 2 coordinates but instead found 3.\n26:27 _geoPolygon([1,2],[1,2],[1,2,3])"),
        (
            "_geoPolygon([1,2],[1,2,3])",
            "The `_geoPolygon` filter expects at least 3 points but only 2 were specified\n24:25 _geoPolygon([1,2],[1,2,3])",
        ),
        (
            "_geoPolygon([1,2)",
            "The `_geoPolygon` filter doesn't match the expected format: `_geoPolygon([latitude, longitude], [latitude, longitude])`.\n17:18 _geoPolygon([1,2)",
        ),
        ("_geoRadius(1, 2, 3, 4, 5)", "Was expecting 3 or 4 arguments for `_geoRadius`, but instead found 5.\n26:26 _geoRadius(1, 2, 3, 4, 5)"),
        (
            "position <= _geoPoint(12, 13, 14)",
            "`_geoPoint` is a reserved keyword and thus can't be used as a filter expression. Use the `_geoRadius(latitude, longitude, distance)` or `_geoBoundingBox([latitude, longitude], [latitude, longitude])` built-in rules to filter on `_geo` coordinates.\n13:34 position <= _geoPoint(12, 13, 14)",
        ),
        (
            "_geo(12, 13, 14)",
            "`_geo` is a reserved keyword and thus can't be used as a filter expression. Use the `_geoRadius(latitude, longitude, distance)` or `_geoBoundingBox([latitude, longitude], [latitude, longitude])` built-in rules to filter on `_geo` coordinates.\n1:17 _geo(12, 13, 14)",
        ),
        (
            "position <= _geoRadius(12, 13, 14)",
            "The `_geoRadius` filter is an operation and can't be used as a value.\n13:35 position <= _geoRadius(12, 13, 14)",
        ),
        (
            "channel = 'ponce",
            "Expression `\\'ponce` is missing the following closing delimiter: `'`.\n11:17 channel = 'ponce",
        ),
        (
            'channel = "ponce',
            'Expression `\\"ponce` is missing the following closing delimiter: `"`.\n11:17 channel = "ponce',
        ),
        (
            "channel = mv OR (followers >= 1000",
            "Expression `(followers >= 1000` is missing the following closing delimiter: `)`.\n17:35 channel = mv OR (followers >= 1000",
        ),
        (
            "channel = mv OR followers >= 1000)",
            "Found unexpected characters at the end of the filter: `)`. You probably forgot an `OR` or an `AND` rule.\n34:35 channel = mv OR followers >= 1000)",
        ),
        ("colour NOT EXIST", _op_msg("at `colour NOT EXIST`.") + "\n1:17 colour NOT EXIST"),
        ("subscribers 100 TO1000", _op_msg("at `subscribers 100 TO1000`.") + "\n1:23 subscribers 100 TO1000"),
        (
            "channel = ponce ORdog != 'bernese mountain'",
            "Found unexpected characters at the end of the filter: `ORdog != \\'bernese mountain\\'`. You probably forgot an `OR` or an `AND` rule.\n17:44 channel = ponce ORdog != 'bernese mountain'",
        ),
        ("colour IN blue, green]", "Expected `[` after `IN` keyword.\n11:23 colour IN blue, green]"),
        (
            "colour IN [blue, green, 'blue' > 2]",
            "Expected only comma-separated field names inside `IN[..]` but instead found `> 2]`.\n32:36 colour IN [blue, green, 'blue' > 2]",
        ),
        (
            "colour IN [blue, green, AND]",
            "Expected only comma-separated field names inside `IN[..]` but instead found `AND]`.\n25:29 colour IN [blue, green, AND]",
        ),
        (
            "colour IN [blue, green",
            "Expected matching `]` after the list of field names given to `IN[`\n23:23 colour IN [blue, green",
        ),
        (
            "colour IN ['blue, green",
            "Expression `\\'blue, green` is missing the following closing delimiter: `'`.\n12:24 colour IN ['blue, green",
        ),
        (
            "x = EXISTS",
            "Was expecting a value but instead got `EXISTS`, which is a reserved keyword. To use `EXISTS` as a field name or a value, surround it by quotes.\n5:11 x = EXISTS",
        ),
        (
            "AND = 8",
            "Was expecting a value but instead got `AND`, which is a reserved keyword. To use `AND` as a field name or a value, surround it by quotes.\n1:4 AND = 8",
        ),
        (
            "NOT OR EXISTS AND EXISTS NOT EXISTS",
            "Was expecting a value but instead got `OR`, which is a reserved keyword. To use `OR` as a field name or a value, surround it by quotes.\n5:7 NOT OR EXISTS AND EXISTS NOT EXISTS",
        ),
        ("value NULL", _op_msg("at `value NULL`.") + "\n1:11 value NULL"),
        ("value IS", _op_msg("at `value IS`.") + "\n1:9 value IS"),
        ("value IS NOT", _op_msg("at `value IS NOT`.") + "\n1:13 value IS NOT"),
        # keywords are upper case only, as in Meilisearch
        (
            "a = 1 and b = 2",
            "Found unexpected characters at the end of the filter: `and b = 2`. You probably forgot an `OR` or an `AND` rule.\n7:16 a = 1 and b = 2",
        ),
        ("x = 'a\\q'", "Malformed value: `a\\\\q`.\n6:9 x = 'a\\q'"),
    ],
)
def test_error_messages(text, message):
    with pytest.raises(FilterError) as e:
        P(text)
    assert e.value.message == message
    assert e.value.code == "invalid_search_filter"
    assert isinstance(e.value, MeiliError)
    assert e.value.with_code("invalid_document_filter").code == "invalid_document_filter"


def test_depth_limit():
    assert P("(" * 49 + "x = 1" + ")" * 49) == C("x", "=", "1")
    with pytest.raises(FilterError) as e:
        P("(" * 50 + "x = 1" + ")" * 50)
    assert e.value.message.startswith("The filter exceeded the maximum depth limit.")
    assert e.value.message.split("\n")[1].startswith("51:106 ")
    with pytest.raises(FilterError) as e:
        P("NOT " * 199 + "x = 1")
    assert e.value.message.split("\n")[1].startswith("797:802 ")


def test_position_counts_columns_on_the_last_line():
    with pytest.raises(FilterError) as e:
        P("a = 1 AND\nb")
    assert e.value.message.endswith("\n1:2 a = 1 AND\nb")


# --------------------------------------------------------------------------- evaluation

DOCS = [
    {"id": 1, "genres": ["Horror", "Comedy"], "price": 10, "title": " Hello ", "nul": None, "empty": "",
     "arr": [], "obj": {}, "a": {"b": [{"c": 1}, {"c": 2}]}, "flag": True, "s": "7", "rating": 4.5},
    {"id": "2", "genres": "drama", "price": "10", "x.y": 5, "flag": False, "s": "b", "rating": 3},
    {"id": 3, "price": 25.5, "title": "Été", "a": {"b": {"c": 3}}, "genres": ["DRAMA"], "arr": [1, [2, 3]]},
    {"id": 4},
]


@pytest.mark.parametrize(
    "text, expected_ids",
    [
        ("genres = horror", [1]),
        ("genres = DRAMA", [2, 3]),
        ("genres != drama", [1, 4]),
        ("price = 10", [1, 2]),  # numerically and textually
        ("price = 10.0", [1]),  # number only; "10.0" is not the string "10"
        ("price > 10", [3]),
        ("price >= 10", [1, 2, 3]),  # "10" >= "10" as strings too
        ("price < 25.5", [1, 2]),  # "10" < "25.5" lexicographically
        ("price 10 TO 25.5", [1, 2, 3]),
        ("price 30 TO 10", []),
        ("title = hello", [1]),  # trimmed, lowercased
        ("title = été", [3]),
        ("title = ete", []),  # no accent folding
        ("nul IS NULL", [1]),
        ("nul IS NOT NULL", [2, 3, 4]),
        ("nul EXISTS", [1]),
        ("nul NOT EXISTS", [2, 3, 4]),
        ("empty IS EMPTY", [1]),
        ("arr IS EMPTY", [1]),
        ("obj IS EMPTY", [1]),
        ("arr IS NOT EMPTY", [2, 3, 4]),
        ("a.b.c = 2", [1]),
        ("a.b.c >= 2", [1, 3]),
        ("a EXISTS", [1, 3]),
        ("x.y = 5", [2]),
        ("flag = true", [1]),
        ("flag = FALSE", [2]),
        ("arr = 3", [3]),
        ("id IN [1, 2]", [1, 2]),
        ("id NOT IN [1, 2]", [3, 4]),
        ("NOT price > 10", [1, 2, 4]),
        ("rating > 4", [1]),
        ("s > a", [2]),  # strings compare lexicographically ("7" < "a" < "b")...
        ("s > 5", [1, 2]),  # ...also against a numeric bound
        ("s > 10", [1, 2]),  # "7" > "10" as strings (milli does the same)
        ("genres = horror OR price > 20", [1, 3]),
        ("genres EXISTS AND NOT genres = drama", [1]),
        ("missing != 1", [1, 2, 3, 4]),
    ],
)
def test_evaluation(text, expected_ids):
    expr = P(text)
    pred = compile_filter(expr)
    got = [int(d["id"]) for d in DOCS if pred(d)]
    assert got == expected_ids
    assert [int(d["id"]) for d in DOCS if matches(expr, d)] == expected_ids


def test_no_filter_matches_everything():
    assert compile_filter(None)({}) is True
    assert matches(None, {"a": 1})


def test_geo_evaluation():
    paris = {"_geo": {"lat": 48.8566, "lng": 2.3522}}
    lyon = {"_geo": {"lat": "45.7640", "lng": "4.8357"}}
    nowhere = {"x": 1}
    near = compile_filter(P("_geoRadius(48.85, 2.35, 10000)"))
    assert [near(d) for d in (paris, lyon, nowhere)] == [True, False, False]
    box = compile_filter(P("_geoBoundingBox([50, 5], [45, 2])"))
    assert [box(d) for d in (paris, lyon, nowhere)] == [True, True, False]
    with pytest.raises(FilterError) as e:
        compile_filter(P("_geoRadius(100, 2, 10)"))
    assert e.value.message.startswith("Bad latitude `100`.")
    with pytest.raises(FilterError) as e:
        compile_filter(P("_geoBoundingBox([1, 2], [3, 4])"))
    assert e.value.message.startswith("The top latitude `1` is below the bottom latitude `3`.")


def test_geojson_shapes():
    """`_geoPolygon` meets shapes (documents/geojson: a point at (1, 1) is in the square
    from (0, 0) to (2, 2), not in the one to (0.9, 0.9)); `_geoRadius` and
    `_geoBoundingBox` also read `_geojson`."""
    point = {"_geojson": {"type": "Point", "coordinates": [1, 1]}}
    square = {"_geojson": {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [4, 0], [4, 4], [0, 4], [0, 0]]]}}}
    line = {"_geojson": {"type": "LineString", "coordinates": [[-1, 1], [5, 1]]}}
    big = compile_filter(P("_geoPolygon([0,0],[0,2],[2,2],[2,0])"))
    small = compile_filter(P("_geoPolygon([0,0],[0,0.9],[0.9,0.9],[0.9,0])"))
    inner = compile_filter(P("_geoPolygon([0.5,0.5],[0.5,2],[2,2],[2,0.5],)"))
    assert [big(d) for d in (point, square, line, {"x": 1})] == [True, True, True, False]
    assert [small(d) for d in (point, square, line)] == [False, True, False]
    assert [inner(d) for d in (point, square, line)] == [True, True, True]  # an area inside the square
    assert compile_filter(P("_geoRadius(1, 1, 10)"))(point)
    assert compile_filter(P("_geoBoundingBox([3, 3], [2, 2])"))(square)
    with pytest.raises(FilterError) as e:
        compile_filter(P("_geoRadius(1, 1, 10, 2)"))
    assert e.value.message == "Invalid resolution `2`. Resolution must be between 3 and 1000.\n22:23 _geoRadius(1, 1, 10, 2)"


# --------------------------------------------------------------------------- analysis


def test_filter_attributes():
    assert filter_attributes(P("a = 1 AND (b.c > 2 OR NOT d EXISTS) AND _geoRadius(1, 2, 3)")) == {"a", "b.c", "d", "_geo", "_geojson"}
    assert filter_attributes(None) == set()


def test_check_filterable():
    check_filterable(P("a = 1 AND a.b.c = 2"), ["a"])
    check_filterable(P("anything = 1"), [{"attributePatterns": ["*"]}])
    check_filterable(P("doggos.age > 2"), [{"attributePatterns": ["doggos.*"]}])
    check_filterable(P("xfooy = 1"), [{"attributePatterns": ["*foo*"]}])
    with pytest.raises(FilterError):  # Meilisearch 1.50: a plain string is no wildcard
        check_filterable(P("anything = 1"), ["*"])
    check_filterable(None, [])
    with pytest.raises(FilterError) as e:
        check_filterable(P("many = Glass"), ["title"])
    assert e.value.message == "Attribute `many` is not filterable. Available filterable attribute patterns are: `title`.\n1:5 many = Glass"
    with pytest.raises(FilterError) as e:
        check_filterable(P("title = x AND 'my attr' = 2"), ["title", "b", "a"])
    assert e.value.message == (
        "Attribute `my attr` is not filterable. Available filterable attribute patterns are: `a`, `b`, `title`.\n"
        "16:23 title = x AND 'my attr' = 2"
    )
    with pytest.raises(FilterError) as e:
        check_filterable(P("ab = 1"), [])
    assert e.value.message == (
        "Attribute `ab` is not filterable. This index does not have configured filterable attributes.\n1:3 ab = 1"
    )
    with pytest.raises(FilterError) as e:  # `a` does not allow `ab`
        check_filterable(P("ab = 1"), ["a"])
    with pytest.raises(FilterError) as e:  # geo needs `_geo` or `_geojson`, checked after the others
        check_filterable(P("_geoRadius(1, 2, 3) AND x = 1"), ["x"])
    assert e.value.message.startswith("Attribute `_geo/_geojson` is not filterable.")
    check_filterable(P("_geoRadius(1, 2, 3)"), ["_geojson"])
    with pytest.raises(FilterError) as e:  # `_geoPolygon` reads shapes only
        check_filterable(P("_geoPolygon([0, 0], [0, 2], [2, 2])"), ["_geo"])
    assert e.value.message.startswith("Attribute `_geojson` is not filterable.")
    with pytest.raises(FilterError) as e:  # array form: position in the failing element
        check_filterable(P(["title = a", ["b = 1"]]), ["title"])
    assert e.value.message.endswith("\n1:2 b = 1")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("id = 1", ["1"]),
        ("id = '7'", ["7"]),
        ("id = 1.0", ["1"]),
        ("id = 01", ["01", "1"]),
        ("id IN [3, 1, 2, 1]", ["1", "2", "3"]),
        ("id IN []", []),
        ("id = 1 AND genre = horror", ["1"]),
        ("genre = horror AND (id = 1 OR id IN [2, 3])", ["1", "2", "3"]),
        ("id IN [1, 2] AND id IN [2, 3]", ["2"]),
        ("id = 1 OR id = 2", ["1", "2"]),
        ("(id = 1 AND x = 1) OR id = 2", ["1", "2"]),
        ("id = 1 AND NOT id = 2", ["1"]),
        ("id = my-doc_1", None),  # letters: `=` is case-insensitive, DOC matches doc too
        ("id = 1 OR x = 2", None),
        ("id != 1", None),
        ("id NOT IN [1]", None),
        ("NOT id = 1", None),
        ("NOT id != 1", None),
        ("id > 1", None),
        ("id 1 TO 2", None),
        ("other = 1", None),
        ("id EXISTS", None),
        ("id = 1e3", None),
        ("id = 99999999999999999999", None),
    ],
)
def test_pinned_keys(text, expected):
    assert pinned_keys(P(text), "id") == expected


def test_pinned_keys_none_filter():
    assert pinned_keys(None, "id") is None
    assert pinned_keys(P(["id = 1", ["id = 1", "id = 2"]]), "id") == ["1"]


# --------------------------------------------------------------------------- serialising


def test_to_filter_string_examples():
    assert to_filter_string(None) == ""
    assert to_filter_string(P("a = 1 AND (b = 2 OR c = 3)")) == "a = 1 AND (b = 2 OR c = 3)"
    assert to_filter_string(P("title = 'AND'")) == 'title = "AND"'
    assert to_filter_string(P(r"'a b' = 'x\"y\\z'")) == r'"a b" = "x\"y\\z"'
    assert to_filter_string(P("a NOT IN [x, 'y z']")) == 'a NOT IN [x, "y z"]'
    assert to_filter_string(P("NOT a IS NOT EMPTY")) == "NOT a IS NOT EMPTY"
    assert to_filter_string(P("_geoBoundingBox([1,2],[3,4])")) == "_geoBoundingBox([1, 2], [3, 4])"


_texts = st.one_of(
    st.sampled_from(["a", "b.c", "AND", "OR", "NOT", "IN", "_geo", "_geoPoint", "x y", "", "1", "-2.5", "é", "'", '"', "\\", "a\\'b"]),
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=8),
)
_floats = st.sampled_from(["0", "1", "-2.5", "1e3", ".5", "3.", "+4"])


def _leaves():
    return st.one_of(
        st.builds(Compare, _texts, st.sampled_from(["=", "!=", ">", ">=", "<", "<="]), _texts),
        st.builds(Range, _texts, _texts, _texts),
        st.builds(In, _texts, st.lists(_texts, max_size=3).map(tuple), st.booleans()),
        st.builds(Exists, _texts, st.booleans()),
        st.builds(IsNull, _texts, st.booleans()),
        st.builds(IsEmpty, _texts, st.booleans()),
        st.builds(lambda a: Geo("_geoRadius", tuple(a)), st.lists(_floats, min_size=3, max_size=3)),
        st.builds(lambda a: Geo("_geoBoundingBox", tuple(a)), st.lists(_floats, min_size=4, max_size=4)),
        st.builds(lambda a: Geo("_geoPolygon", tuple(a)), st.lists(_floats, min_size=6, max_size=10).filter(lambda a: len(a) % 2 == 0)),
    )


def _extend(children):
    items = st.lists(children, min_size=2, max_size=3).map(tuple)
    return st.one_of(
        st.builds(And, items),
        st.builds(Or, items),
        # the parser cancels NOT NOT, so a canonical tree never nests Not directly
        children.filter(lambda e: type(e) is not Not).map(Not),
    )


_exprs = st.recursive(_leaves(), _extend, max_leaves=8)


@settings(derandomize=True, max_examples=300, deadline=None)
@given(_exprs)
def test_round_trip(expr):
    text = to_filter_string(expr)
    assert P(text) == expr, text


@settings(derandomize=True, max_examples=100, deadline=None)
@given(_exprs, st.lists(_exprs, min_size=1, max_size=3))
def test_and_filters_matches_conjunction(first, rest):
    # Evaluate and_filters' result against the conjunction on a few documents.
    docs = [{}, {"a": "1"}, {"a": 1, "b.c": "x"}, {"x y": None, "a": [], "é": "'"}]
    geo_free = all(not {"_geo", "_geojson"} & filter_attributes(e) for e in (first, *rest))
    filters = [to_filter_string(first), [[to_filter_string(e)] for e in rest]]
    combined = P(and_filters(*filters))
    expected = And((first, *rest))
    assert filter_attributes(combined) == filter_attributes(expected)
    if geo_free:
        for d in docs:
            assert matches(combined, d) == matches(expected, d)


def test_and_filters():
    assert and_filters() is None
    assert and_filters(None, "", [], None) is None
    assert and_filters("a = 1") == "a = 1"
    assert and_filters(None, ["a = 1", ["b = 2"]]) == ["a = 1", ["b = 2"]]
    shard = shard_filter([5, 1, 9])
    assert shard == "_miroir_shard IN [1, 5, 9]"
    assert and_filters(shard, "a = 1 OR b = 2") == [shard, "a = 1 OR b = 2"]
    combined = and_filters(shard, ["a = 1", ["b = 2", "c = 3"]])
    assert combined == [shard, "a = 1", ["b = 2", "c = 3"]]
    assert P(combined) == And(
        (In("_miroir_shard", ("1", "5", "9")), C("a", "=", "1"), Or((C("b", "=", "2"), C("c", "=", "3"))))
    )
    # a client OR-array keeps meaning OR after the shard filter is added
    assert P(and_filters(shard, [["b = 2", "c = 3"]])) == And(
        (In("_miroir_shard", ("1", "5", "9")), Or((C("b", "=", "2"), C("c", "=", "3"))))
    )


def test_shard_filter_parses_and_matches():
    expr = P(shard_filter([3, 1]))
    assert expr == In("_miroir_shard", ("1", "3"))
    assert [matches(expr, {"_miroir_shard": s}) for s in (1, 2, 3)] == [True, False, True]


def test_compiled_evaluator_is_fast_enough():
    docs = [{"id": i, "genre": ["a", "b", "c"][i % 3], "price": i % 100, "n": {"x": i % 7}} for i in range(20000)]
    pred = compile_filter(P("(genre = a OR genre = b) AND price 10 TO 50 AND NOT n.x = 3"))
    assert sum(1 for d in docs if pred(d)) > 0


def test_trailing_whitespace_follows_the_nom_grammar():
    # Values, `]` and `)` swallow trailing whitespace; EXISTS / IS NULL / geo do not, so
    # Meilisearch's `terminated(expression, eof)` rejects what follows them.
    assert P("x = 1 ") == C("x", "=", "1")
    assert P(" x IN [1] ") == In("x", ("1",))
    with pytest.raises(FilterError) as e:
        P("x EXISTS ")
    assert e.value.message.startswith("Found unexpected characters at the end of the filter: ` `.")


def test_tree_encodes_as_tagged_json():
    import msgspec

    expr = P("a = 1 AND b IN [x]")
    encoded = msgspec.json.encode(expr)
    assert msgspec.json.decode(encoded, type=And) == expr
