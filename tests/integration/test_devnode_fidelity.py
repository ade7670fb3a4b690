"""The devnode answers as Meilisearch 1.50 answers (issue 16 item 2), each case checked
against the answer Meilisearch's own test suite records for it (the snapshots of
crates/meilisearch/tests/search/*.rs and documents/geojson, and milli's filter tests),
then the same requests through Miroir over 3 devnodes against one devnode.

Real processes on loopback: one devnode and Miroir over 3 devnodes with 16 shards,
started once for the module.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.support.pairs import devnode_and_miroir, done

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[httpx.Client, httpx.Client]]:
    """(one devnode, Miroir over 3 devnodes, 16 shards)."""
    with devnode_and_miroir(nodes=3, shards=16) as pair:
        yield pair


@pytest.fixture(scope="module")
def node(pair) -> httpx.Client:
    return pair[0]


def new_index(c: httpx.Client, docs: list[dict], settings: dict | None = None, pk: str = "id") -> str:
    uid = "f" + uuid.uuid4().hex[:10]
    done(c, c.post("/indexes", json={"uid": uid, "primaryKey": pk}))
    if settings:
        done(c, c.patch(f"/indexes/{uid}/settings", json=settings))
    if docs:
        done(c, c.post(f"/indexes/{uid}/documents", json=docs))
    return uid


def search(c: httpx.Client, uid: str, body: dict) -> tuple[int, dict]:
    r = c.post(f"/indexes/{uid}/search", json=body)
    out = r.json()
    for k in ("processingTimeMs", "requestUid"):
        out.pop(k, None)
    return r.status_code, out


def search_get(c: httpx.Client, uid: str, query: str) -> tuple[int, dict]:
    r = c.get(f"/indexes/{uid}/search?{query}")
    out = r.json()
    for k in ("processingTimeMs", "requestUid"):
        out.pop(k, None)
    return r.status_code, out


def message(answer: tuple[int, dict]) -> str:
    """An error's text without the `Index `uid`: ` prefix (another helper's concern)."""
    status, body = answer
    assert status == 400, body
    text = body["message"]
    return text.split(": ", 1)[1] if text.startswith("Index `") else text


# ------------------------------------------------------------------------------ geo

# common/mod.rs GEO_DOCUMENTS: one point with numbers, one with strings, one without.
GEO_DOCUMENTS = [
    {"id": 1, "name": "Taco Truck", "address": "444 Salsa Street, Burritoville", "type": "Mexican", "rating": 9,
     "_geo": {"lat": 34.0522, "lng": -118.2437}},
    {"id": 2, "name": "La Bella Italia", "address": "456 Elm Street, Townsville", "type": "Italian", "rating": 9,
     "_geo": {"lat": "45.4777599", "lng": "9.1967508"}},
    {"id": 3, "name": "Crêpe Truck", "address": "2 Billig Avenue, Rouenville", "type": "French", "rating": 10},
]
GEO_SETTINGS = {"filterableAttributes": ["_geo"], "sortableAttributes": ["_geo"]}

# geo.rs geo_asc_with_words / geo_sort_with_words
DOGGOS = [
    {"id": 0, "doggo": "jean", "_geo": {"lat": 0, "lng": 0}},
    {"id": 1, "doggo": "intel", "_geo": {"lat": 88, "lng": 0}},
    {"id": 2, "doggo": "jean bob", "_geo": {"lat": -89, "lng": 0}},
    {"id": 3, "doggo": "jean michel", "_geo": {"lat": 0, "lng": 178}},
    {"id": 4, "doggo": "bob marley", "_geo": {"lat": 0, "lng": -179}},
]


@pytest.fixture(scope="module")
def geo_index(node) -> str:
    return new_index(node, GEO_DOCUMENTS, GEO_SETTINGS)


def test_geo_point_sort_adds_the_distance_and_puts_pointless_documents_last(node, geo_index):
    """geo.rs bug_4640."""
    status, body = search(node, geo_index, {"sort": ["_geoPoint(45.4777599, 9.1967508):asc"]})
    assert status == 200, body
    assert body["hits"] == [
        {**GEO_DOCUMENTS[1], "_geoDistance": 0},
        {**GEO_DOCUMENTS[0], "_geoDistance": 9714063},
        GEO_DOCUMENTS[2],
    ]
    assert body["estimatedTotalHits"] == 3
    # The GET form: the point's comma is not a separator between criteria.
    assert search_get(node, geo_index, "sort=_geoPoint(45.4777599,9.1967508):asc")[1]["hits"] == body["hits"]


def test_geo_radius_with_geo_sort_and_string_coordinates(node, geo_index):
    """geo.rs geo_sort_with_geo_strings (200) and geo_bounding_box_with_string_and_number."""
    status, body = search(
        node, geo_index, {"filter": "_geoRadius(45.472735, 9.184019, 10000)", "sort": ["_geoPoint(0.0, 0.0):asc"]}
    )
    assert status == 200, body
    status, body = search(node, geo_index, {"filter": "_geoBoundingBox([89, 179], [-89, -179])"})
    assert status == 200, body
    assert body["hits"] == GEO_DOCUMENTS[:2] and body["estimatedTotalHits"] == 2


def test_geo_sort_after_words(node):
    """geo.rs geo_sort_with_words, and geo_asc_with_words (`geo:asc` is a field rule)."""
    uid = new_index(
        node, DOGGOS, {"searchableAttributes": ["id", "doggo"], "rankingRules": ["words", "sort"], "sortableAttributes": ["_geo"]}
    )
    status, body = search(node, uid, {"q": "jean", "sort": ["_geoPoint(0.0, 0.0):asc"]})
    assert status == 200, body
    assert [(h["id"], h["_geoDistance"]) for h in body["hits"]] == [(0, 0), (2, 9896348), (3, 19792697)]
    uid = new_index(node, DOGGOS, {"searchableAttributes": ["id", "doggo"], "rankingRules": ["words", "geo:asc"]})
    assert [h["id"] for h in search(node, uid, {"q": "jean"})[1]["hits"]] == [0, 2, 3]
    assert [h["id"] for h in search(node, uid, {"q": "bob"})[1]["hits"]] == [2, 4]


def test_geo_sort_errors(node, geo_index):
    """errors.rs sort_geo_reserved_attribute, sort_reserved_attribute, and milli's
    AscDesc texts for a malformed point and a point out of range."""
    reserved = "`_geo` is a reserved keyword and thus can't be used as a sort expression. Use the _geoPoint(latitude, longitude) built-in rule to sort on _geo field coordinates."
    assert message(search(node, geo_index, {"sort": ["_geo:asc"]})) == reserved
    assert message(search(node, geo_index, {"sort": ["_geoDistance:asc"]})) == (
        "`_geoDistance` is a reserved keyword and thus can't be used as a sort expression."
    )
    assert message(search(node, geo_index, {"sort": ["_geoPoint(1, 2, 3):asc"]})) == (
        "Invalid syntax for the geo parameter: expected expression formated like `_geoPoint(latitude, longitude)` "
        "and ending by `:asc` or `:desc`, found `_geoPoint(1, 2, 3)`."
    )
    assert message(search(node, geo_index, {"sort": ["_geoPoint(1, 250):asc"]})) == (
        "Bad longitude `250`. Longitude must be contained between -180 and 180 degrees. Hint: try using `-110` instead."
    )
    plain = new_index(node, DOGGOS[:1], {"sortableAttributes": ["id"]})
    assert message(search(node, plain, {"sort": ["_geoPoint(1, 2):asc"]})) == (
        "Attribute `_geo` is not sortable. Available sortable attributes are: `id`."
    )


@pytest.mark.parametrize(
    ("flt", "expected"),
    [  # milli's filter/tests.rs geo_radius_error and geo_bounding_box_error snapshots
        ("_geoRadius(-100, 150, 10)",
         "Bad latitude `-100`. Latitude must be contained between -90 and 90 degrees.\n12:16 _geoRadius(-100, 150, 10)"),
        ("_geoRadius(-10, 250, 10)",
         "Bad longitude `250`. Longitude must be contained between -180 and 180 degrees. Hint: try using `-110` instead.\n"
         "17:20 _geoRadius(-10, 250, 10)"),
        ("_geoBoundingBox([30, 10], [-90.0000001, 150])",
         "Bad latitude `-90.0000001`. Latitude must be contained between -90 and 90 degrees.\n"
         "28:39 _geoBoundingBox([30, 10], [-90.0000001, 150])"),
        ("_geoBoundingBox([-10, -180.000001], [30, 10])",
         "Bad longitude `-180.000001`. Longitude must be contained between -180 and 180 degrees. "
         "Hint: try using `179.999999` instead.\n23:34 _geoBoundingBox([-10, -180.000001], [30, 10])"),
        ("_geoPoint = Glass",  # search/errors.rs
         "`_geoPoint` is a reserved keyword and thus can't be used as a filter expression. Use the "
         "`_geoRadius(latitude, longitude, distance)` or `_geoBoundingBox([latitude, longitude], [latitude, longitude])` "
         "built-in rules to filter on `_geo` coordinates.\n1:18 _geoPoint = Glass"),
    ],
)
def test_geo_filter_errors(node, geo_index, flt, expected):
    assert message(search(node, geo_index, {"filter": flt})) == expected


def test_geo_polygon_on_geojson_shapes(node):
    """documents/geojson basic_add_settings_and_geojson_documents, add_and_remove_geojson:
    `_geoPolygon` selects the shapes it meets; without `_geojson` filterable it is refused."""
    lille = {"type": "Polygon", "coordinates": [[[3.0, 50.6], [3.1, 50.6], [3.1, 50.7], [3.0, 50.7], [3.0, 50.6]]]}
    docs = [{"id": "missing"}, {"id": "point", "_geojson": {"type": "Point", "coordinates": [1, 1]}},
            {"id": "lille", "_geojson": lille}]
    uid = new_index(node, docs)
    assert message(search_get(node, uid, "filter=_geoPolygon([0,0],[0,2],[2,2],[2,0])")).startswith(
        "Attribute `_geojson` is not filterable. This index does not have configured filterable attributes.\n14:15 "
    )
    done(node, node.patch(f"/indexes/{uid}/settings", json={"filterableAttributes": ["_geojson"]}))
    status, body = search_get(node, uid, "filter=_geoPolygon([0,0],[0,2],[2,2],[2,0])")
    assert status == 200, body
    assert body["hits"] == [docs[1]] and body["estimatedTotalHits"] == 1
    assert search_get(node, uid, "filter=_geoPolygon([0,0],[0,0.9],[0.9,0.9],[0.9,0])")[1]["hits"] == []
    # A box over Lille meets the shape through one of its edges only.
    assert [h["id"] for h in search(node, uid, {"filter": "_geoBoundingBox([50.65, 3.05], [50.5, 2.9])"})[1]["hits"]] == ["lille"]
    assert [h["id"] for h in search(node, uid, {"filter": "_geoRadius(50.65, 3.05, 1000)"})[1]["hits"]] == ["lille"]
    assert message(search(node, uid, {"filter": "_geoPolygon([0,0],[1,1])"})) == (
        "The `_geoPolygon` filter expects at least 3 points but only 2 were specified\n22:23 _geoPolygon([0,0],[1,1])"
    )


# Miroir over 3 devnodes: the same geo answers as one devnode (the merge orders by the
# distance, and `_geoDistance` comes back only when `_geo` is shown).
CITIES = [
    {"id": i, "name": f"city {i}", "_geo": {"lat": (i * 7) % 170 - 85, "lng": (i * 13) % 350 - 175}}
    for i in range(60)
] + [{"id": 100, "name": "city nowhere"}, {"id": 101, "name": "city same", "_geo": {"lat": 0, "lng": 0}}]


@pytest.fixture(scope="module")
def cities(pair) -> list[str]:
    return [new_index(c, CITIES, {"filterableAttributes": ["_geo"], "sortableAttributes": ["_geo", "id"]}) for c in pair]


@pytest.mark.parametrize(
    "body",
    [
        {"sort": ["_geoPoint(48.85, 2.35):asc"], "limit": 30},
        {"sort": ["_geoPoint(48.85, 2.35):desc"], "offset": 5, "limit": 70},
        {"sort": ["_geoPoint(0, 0):asc"], "attributesToRetrieve": ["name"], "limit": 10},
        {"sort": ["_geoPoint(0, 0):asc"], "showRankingScoreDetails": True, "limit": 5},
        {"q": "city", "sort": ["_geoPoint(10, 10):asc"], "filter": "_geoRadius(0, 0, 5000000)"},
        {"filter": "_geoBoundingBox([50, 60], [-50, -60])", "sort": ["_geoPoint(-10, -20):desc"], "limit": 50},
    ],
)
def test_geo_through_miroir_as_one_node(pair, cities, body):
    one, many = pair
    uids = cities
    a, b = search(one, uids[0], body), search(many, uids[1], body)
    assert a[0] == 200, a
    assert b == a
    get = "sort=" + ",".join(body["sort"]).replace(" ", "") + "&limit=100"
    assert search_get(many, uids[1], get)[1]["hits"] == search_get(one, uids[0], get)[1]["hits"]


# ---------------------------------------------------------------------- facet search

# facet_search.rs DOCUMENTS
FACET_DOCUMENTS = [
    {"title": "Shazam!", "genres": ["Action", "Adventure"], "id": "287947"},
    {"title": "Captain Marvel", "genres": ["Action", "Adventure"], "id": "299537"},
    {"title": "Escape Room", "genres": ["Horror", "Thriller", "Multiple Words"], "id": "522681"},
    {"title": "How to Train Your Dragon: The Hidden World", "genres": ["Action", "Comedy"], "id": "166428"},
    {"title": "Gläss", "genres": ["Thriller"], "id": "450465"},
]


def facet_hits(c: httpx.Client, uid: str, body: dict) -> list[dict]:
    r = c.post(f"/indexes/{uid}/facet-search", json=body)
    assert r.status_code == 200, r.text
    return r.json()["facetHits"]


@pytest.mark.parametrize(
    ("settings", "cases"),
    [  # facet_search.rs: the query prefixes the whole value, with typos by its length
        ({}, [
            ("a", [{"value": "Action", "count": 3}, {"value": "Adventure", "count": 2}]),
            ("adventure", [{"value": "Adventure", "count": 2}]),
            ("words", []),  # facet_search_dont_support_words
        ]),
        ({"typoTolerance": {"enabled": False}}, [  # advanced_facet_search
            ("adventre", []),
            ("àdventure", [{"value": "Adventure", "count": 2}]),
        ]),
        ({"typoTolerance": {"disableOnWords": ["adventre"]}}, [  # more_advanced_facet_search
            ("adventre", []),
            ("adventure", [{"value": "Adventure", "count": 2}]),
        ]),
        ({"faceting": {"maxValuesPerFacet": 1, "sortFacetValuesBy": {"*": "count"}}}, [
            ("a", [{"value": "Action", "count": 3}]),
        ]),
    ],
)
def test_facet_query_prefixes_the_value(node, settings, cases):
    uid = new_index(node, FACET_DOCUMENTS, {"filterableAttributes": ["genres"], **settings})
    for query, expected in cases:
        assert facet_hits(node, uid, {"facetName": "genres", "facetQuery": query}) == expected, query


# facet_search.rs distinct_facet_search_on_movies: the colors of its 50 movies, in
# order (every movie is in genre "Blob"; 23 distinct colors).
COLORS = [
    "crimson", "emerald", "azure", "scarlet", "coral", "navy", "onyx", "cerulean", "slate", "gold",
    "obsidian", "jade", "sepia", "ruby", "charcoal", "amethyst", "ebony", "forest", "amber", "lime",
    "sapphire", "burgundy", "turquoise", "emerald", "sepia", "crimson", "slate", "azure", "onyx", "charcoal",
    "amethyst", "ruby", "sapphire", "gold", "turquoise", "obsidian", "jade", "burgundy", "forest", "amber",
    "azure", "obsidian", "coral", "scarlet", "emerald", "navy", "burgundy", "amber", "sepia", "slate",
]


def test_facet_counts_under_a_distinct_attribute(node):
    """27 without `exhaustiveFacetCount` (the first 20 distinct hits drop their
    duplicates, the rest are counted), 23 with it."""
    docs = [{"id": i + 1, "genres": ["Drama", "Blob"], "color": color} for i, color in enumerate(COLORS)]
    uid = new_index(node, docs, {"filterableAttributes": ["genres", "color"], "distinctAttribute": "color"})
    body = {"facetQuery": "blob", "facetName": "genres", "q": ""}
    assert facet_hits(node, uid, body) == [{"value": "Blob", "count": 27}]
    assert facet_hits(node, uid, {**body, "exhaustiveFacetCount": True}) == [{"value": "Blob", "count": 23}]


# ------------------------------------------------------------------------ indexes, text


def test_a_created_index_was_updated_when_created(node):
    """index/get_index.rs: createdAt == updatedAt for an index only created."""
    uid = new_index(node, [])
    body = node.get(f"/indexes/{uid}").json()
    assert body["createdAt"] == body["updatedAt"]


def test_cjk_highlight(node):
    """formatted.rs test_cjk_highlight: jieba cuts `大卫` as one word; Japanese kana and
    ideographs stay one word per character."""
    docs = [{"id": 0, "title": "この度、クーポンで無料で頂きました。"}, {"id": 1, "title": "大卫到了扫罗那里"}]
    uid = new_index(node, docs)
    _, body = search(node, uid, {"q": "で", "attributesToHighlight": ["title"]})
    assert body["hits"][0]["_formatted"]["title"] == "この度、クーポン<em>で</em>無料<em>で</em>頂きました。"
    _, body = search(node, uid, {"q": "大卫", "attributesToHighlight": ["title"]})
    assert body["hits"][0]["_formatted"]["title"] == "<em>大卫</em>到了扫罗那里"


# common/mod.rs DOCUMENTS (without their `_vectors`)
MOVIES = [
    {"title": "Shazam!", "id": "287947", "color": ["green", "blue"]},
    {"title": "Captain Marvel", "id": "299537", "color": ["yellow", "blue"]},
    {"title": "Escape Room", "id": "522681", "color": ["yellow", "red"]},
    {"title": "How to Train Your Dragon: The Hidden World", "id": "166428", "color": ["green", "red"]},
    {"title": "Gläss", "id": "450465", "color": ["blue", "red"]},
]


def test_stop_words_but_the_last_token(node):
    """search/mod.rs search_with_stop_word: `to the` searches `the` as a prefix (stop words
    are not indexed: nothing), `to the ` searches nothing (every document);
    phrase_search_with_stop_word: a phrase's stop words are dropped."""
    uid = new_index(node, MOVIES, {"stopWords": ["the", "The", "a", "an", "to", "in", "of"]})
    body = {"attributesToHighlight": ["title"], "attributesToRetrieve": ["title"]}
    assert search(node, uid, {"q": "to the", **body})[1]["hits"] == []
    assert search(node, uid, {"q": "to the ", **body})[1]["hits"] == [
        {"title": m["title"], "_formatted": {"title": m["title"]}} for m in MOVIES
    ]
    uid = new_index(node, MOVIES, {"stopWords": ["the", "of"]})
    assert len(search(node, uid, {"q": 'how "to" train "the'})[1]["hits"]) == 1


def test_phrase_restricted_to_an_attribute(node):
    """restrict_searchable.rs phrase_search_on_title."""
    titles = [
        "Document Review Specialist II", "Document Review Attorney",
        "Document Review Manager - Cyber Incident Response (Remote)", "Document Review Paralegal",
        "Document Controller (Saudi National)", "Document Reviewer", "Document Review Specialist II",
        "Document Review (Entry Level)",
    ]
    docs = [{"id": i, "desc": "Document Review", "title": t} for i, t in zip([8, 5, 4, 3, 2, 1, 7, 6], titles)]
    uid = new_index(node, docs)
    _, body = search(node, uid, {"q": '"Document Review"', "attributesToSearchOn": ["title"], "attributesToRetrieve": ["title"]})
    assert [h["title"] for h in body["hits"]] == [titles[i] for i in (0, 1, 2, 3, 6, 7)]


# ------------------------------------------------------------------------- federation

# common/mod.rs SCORE_DOCUMENTS
SCORE_DOCUMENTS = [
    {"title": "Batman the dark knight returns: Part 1", "id": "A"},
    {"title": "Batman the dark knight returns: Part 2", "id": "B"},
    {"title": "Batman Returns", "id": "C"},
    {"title": "Batman", "id": "D"},
    {"title": "Badman", "id": "E"},
]


def test_federation_shows_a_document_once_per_index(node):
    """multi/mod.rs federation_multiple_search_single_index: four queries on one index,
    each document once, from its best query."""
    uid = new_index(node, SCORE_DOCUMENTS)
    queries = [{"indexUid": uid, "q": q} for q in ("the bat", "badman returns", "batman", "batman returns")]
    r = node.post("/multi-search", json={"federation": {}, "queries": queries})
    assert r.status_code == 200, r.text
    body = r.json()
    got = [(h["id"], h["_federation"]["queriesPosition"], h["_federation"]["weightedRankingScore"]) for h in body["hits"]]
    expected = [("D", 2, 1.0), ("C", 3, 1.0), ("A", 2, 0.9848484848484848), ("B", 2, 0.9848484848484848), ("E", 1, 0.5)]
    assert [g[:2] for g in got] == [e[:2] for e in expected]
    assert [g[2] for g in got] == pytest.approx([e[2] for e in expected], abs=1e-15)
    assert body["estimatedTotalHits"] == 5


def test_vectors_shown_only_when_retrieved(node):
    """search/mod.rs search_with_typo_settings: DOCUMENTS carry `_vectors.manual` (no
    embedder reads it) and their hits show no `_vectors`; with `retrieveVectors` the
    document's own `_vectors` comes back."""
    docs = [{**m, "_vectors": {"manual": [1, 2, i]}} for i, m in enumerate(MOVIES)]
    uid = new_index(node, docs, {"typoTolerance": {"disableOnAttributes": ["title", "id"]}})
    assert search(node, uid, {"q": "287947"})[1]["hits"] == [MOVIES[0]]
    assert search(node, uid, {"q": "287947", "retrieveVectors": True})[1]["hits"] == [docs[0]]


def test_separator_and_non_separator_tokens_and_dictionary(node):
    """settings/tokenizer_customization.rs set_and_search."""
    docs = [{"id": 1, "content": "Mac & cheese"}, {"id": 2, "content": "G#D#G#D#G#C#D#G#C#"},
            {"id": 3, "content": "Mac&sep&&sepcheese"}]
    uid = new_index(node, docs, {
        "nonSeparatorTokens": ["#", "&"],
        "separatorTokens": ["<br/>", "&sep"],
        "dictionary": ["#", "A#", "B#", "C#", "D#", "E#", "F#", "G#"],
    })

    def formatted(q: str) -> list[tuple[int, str]]:
        _, body = search(node, uid, {"q": q, "attributesToHighlight": ["content"]})
        return [(h["id"], h["_formatted"]["content"]) for h in body["hits"]]

    mac_and_cheese = [(1, "<em>Mac</em> <em>&</em> <em>cheese</em>"), (3, "<em>Mac</em>&sep<em>&</em>&sep<em>cheese</em>")]
    assert formatted("&") == [(1, "Mac <em>&</em> cheese"), (3, "Mac&sep<em>&</em>&sepcheese")]
    assert formatted("Mac & cheese") == mac_and_cheese
    assert formatted("Mac&sep&&sepcheese") == mac_and_cheese
    assert formatted("C#D#G") == [(2, "<em>G</em>#<em>D#</em><em>G</em>#<em>D#</em><em>G</em>#<em>C#</em><em>D#</em><em>G</em>#<em>C#</em>")]
    assert formatted("#") == []


def test_formatted_nested_fields(node):
    """formatted.rs format_nested: a highlighted or cropped nested name brings its part
    of the parent into `_formatted`, values as strings."""
    docs = [
        {"id": 852, "father": "jean", "mother": "michelle", "doggos": [{"name": "bobby", "age": 2}, {"name": "buddy", "age": 4}], "cattos": "pésti"},
        {"id": 654, "father": "pierre", "mother": "sabine", "doggos": [{"name": "gros bill", "age": 8}], "cattos": ["simba", "pestiféré"]},
    ]
    uid = new_index(node, docs)
    names = [{"name": "bobby"}, {"name": "buddy"}]
    ages = [{"name": "bobby", "age": "2"}, {"name": "buddy", "age": "4"}]
    cases = [
        ({"attributesToRetrieve": [], "attributesToHighlight": ["doggos.name"]}, {"_formatted": {"doggos": names}}),
        ({"attributesToRetrieve": [], "attributesToCrop": ["doggos.name"]}, {"_formatted": {"doggos": names}}),
        ({"attributesToRetrieve": ["doggos.name"], "attributesToHighlight": ["doggos.age"]}, {"doggos": names, "_formatted": {"doggos": ages}}),
        ({"attributesToRetrieve": [], "attributesToHighlight": ["doggos.age"], "attributesToCrop": ["doggos.name"]}, {"_formatted": {"doggos": ages}}),
    ]
    for body, expected in cases:
        assert search(node, uid, {"q": "pésti", **body})[1]["hits"][0] == expected, body


@pytest.mark.parametrize("retrieve", [None, ["title"]])
def test_federation_once_per_index_through_miroir(pair, retrieve):
    """The same federated search through Miroir over 3 devnodes: each document once,
    and the primary key Miroir reads to know it stays out of the hits it was not asked for."""
    uids = [new_index(c, SCORE_DOCUMENTS) for c in pair]
    extra = {} if retrieve is None else {"attributesToRetrieve": retrieve}

    def run(c: httpx.Client, uid: str) -> dict:
        queries = [{"indexUid": uid, "q": q, **extra} for q in ("the bat", "badman returns", "batman", "batman returns")]
        r = c.post("/multi-search", json={"federation": {}, "queries": queries})
        assert r.status_code == 200, r.text
        body = r.json()
        for h in body["hits"]:
            h["_federation"].pop("indexUid")
            h["_federation"]["weightedRankingScore"] = round(h["_federation"]["weightedRankingScore"], 12)
        return {k: body[k] for k in ("hits", "estimatedTotalHits")}

    one, many = (run(c, uid) for c, uid in zip(pair, uids))
    assert len(one["hits"]) == 5
    assert many == one
    if retrieve is not None:
        assert all(set(h) == {"title", "_federation"} for h in many["hits"])


def test_geo_sort_after_additions_and_updates(pair):
    """documents/add_documents.rs add_documents_with_geo_field and
    update_documents_with_geo_field (a `null` and a missing `_geo` come last), on one
    devnode and through Miroir."""
    for c in pair:
        docs = [{"id": "1"}, {"id": "2", "_geo": None}, {"id": "3", "_geo": {"lat": 1, "lng": 1}},
                {"id": "4", "_geo": {"lat": "2", "lng": "2"}}]
        uid = new_index(c, docs, {"sortableAttributes": ["_geo"]})
        _, body = search(c, uid, {"sort": ["_geoPoint(50.629973371633746,3.0569447399419567):desc"]})
        assert body["hits"] == [{**docs[2], "_geoDistance": 5522018}, {**docs[3], "_geoDistance": 5408322}, docs[0], docs[1]]
        docs = [{"id": "1"}, {"id": "2", "_geo": None}, {"id": "3", "_geo": {"lat": 3, "lng": 0}},
                {"id": "4", "_geo": {"lat": "4", "lng": "0"}}]
        uid = new_index(c, docs, {"sortableAttributes": ["_geo"]})
        _, body = search(c, uid, {"sort": ["_geoPoint(10,0):asc"]})
        assert body["hits"] == [{**docs[3], "_geoDistance": 667170}, {**docs[2], "_geoDistance": 778364}, docs[0], docs[1]]
        done(c, c.put(f"/indexes/{uid}/documents", json=[{"id": "3", "_geo": {"lat": 5, "lng": 0}}]))
        _, body = search(c, uid, {"sort": ["_geoPoint(10,0):asc"]})
        assert [(h["id"], h.get("_geoDistance")) for h in body["hits"]] == [("3", 555975), ("4", 667170), ("1", None), ("2", None)]
