"""The devnode's in-memory engine: documents, search features, Meilisearch's errors."""

from __future__ import annotations

import pytest

from miroir.core.errors import MeiliError
from miroir.devnode.engine import IndexEngine, default_settings
from miroir.devnode.text import Tokenizer, bounded_distance, normalize

MOVIES = [
    {"id": 1, "title": "Le Petit Prince", "genre": ["Drama", "kids"], "year": 1943, "rating": 4.5},
    {"id": 2, "title": "The Little Prince", "genre": ["drama"], "year": 2015, "rating": 3.5},
    {"id": 3, "title": "Prince of Persia", "genre": ["Action"], "year": 2010, "rating": 2.0},
    {"id": 4, "title": "Persian cats and princes of the desert", "genre": ["documentary"], "year": 2010},
    {"id": 5, "title": "Batman Begins", "genre": ["Action"], "year": 2005, "rating": 4.0},
]


def engine(docs=MOVIES, **settings):
    eng = IndexEngine("movies", settings=settings or None)
    eng.add_documents([dict(d) for d in docs], None, partial=False)
    return eng


def ids(res):
    return [h["id"] for h in res["hits"]]


def err(fn, *a, **kw) -> MeiliError:
    with pytest.raises(MeiliError) as e:
        fn(*a, **kw)
    return e.value


# ---------------------------------------------------------------- text


def test_tokenizer_folds_case_accents_and_splits_cjk():
    t = Tokenizer()
    # Ideographs alone are Chinese: variants folded (東 is 东), then cut by jieba.
    assert [w for _, w in t.words("Héllo, WÖRLD_x 東京")] == ["hello", "world", "x", "东京"]
    assert [p for p, _ in t.words("a b. c")] == [0, 1, 9]  # hard separator jumps 8
    assert normalize("Éclair") == "eclair"


def test_tokenizer_follows_locales():
    words = lambda t, text: [w for _, w in t.words(text)]  # noqa: E731
    plain, swedish = Tokenizer(), Tokenizer(locales=frozenset({"swe"}))
    assert words(plain, "Träbjälke") == ["trabjalke"]
    assert words(swedish, "Träbjälke") == ["träbjälke"]
    # Kana make a text Japanese (cut over IPADIC, no variant folding); ideographs alone are
    # Chinese unless the locales say Japanese.
    japanese = Tokenizer(locales=frozenset({"jpn"}))
    assert words(plain, "進撃の巨人") == ["進撃", "の", "巨人"]
    assert words(plain, "進撃") == ["进击"]
    assert words(japanese, "進撃") == ["進撃"]
    assert words(japanese, "进击的巨人") == ["进击的", "巨人"]
    assert words(Tokenizer(locales=frozenset({"cmn", "jpn"})), "进击的巨人") == ["进击", "的", "巨人"]


def test_tokenizer_custom_tokens():
    t = Tokenizer(separator_tokens=["x"], non_separator_tokens=["@"], dictionary=["C++"])
    assert [w for _, w in t.words("axb @me C++ rocks")] == ["a", "b", "@me", "c++", "rocks"]


def test_bounded_distance_counts_transpositions_once():
    assert bounded_distance("wrold", "world", 1) == 1
    assert bounded_distance("kitten", "sitting", 2) == 3  # > k reported as k+1
    assert bounded_distance("prnc", "princess", 1, prefix=True) == 1


# ---------------------------------------------------------------- documents


def test_default_settings_shape():
    s = default_settings()
    assert s["rankingRules"] == ["words", "typo", "proximity", "attributeRank", "sort", "wordPosition", "exactness"]
    assert s["typoTolerance"]["minWordSizeForTypos"] == {"oneTypo": 5, "twoTypos": 9}
    assert default_settings() is not s


def test_primary_key_inferred_and_validated_before_any_change():
    eng = IndexEngine("i")
    assert eng.add_documents([{"id": 1, "a": "x"}], None, partial=False) == 1
    assert eng.primary_key == "id"
    e = err(eng.add_documents, [{"id": 2}, {"id": "bad id!"}], None, partial=False)
    assert e.code == "invalid_document_id"
    e = err(eng.add_documents, [{"id": 3}, {"name": "no id"}], None, partial=False)
    assert e.code == "missing_document_id"
    assert eng.stats()["numberOfDocuments"] == 1  # nothing of the rejected batches landed
    e = err(eng.add_documents, [{"uid": 1}], "uid", partial=False)
    assert e.code == "index_primary_key_already_exists"
    e = err(IndexEngine("j").add_documents, [{"a_id": 1, "b_id": 2}], None, partial=False)
    assert e.code == "index_primary_key_multiple_candidates_found"


def test_replace_partial_delete_and_listing():
    eng = engine()
    eng.add_documents([{"id": 1, "title": "Replaced"}], None, partial=False)
    assert eng.get_document(1) == {"id": 1, "title": "Replaced"}
    eng.add_documents([{"id": "2", "year": 2016}, {"id": 9, "title": "new"}], None, partial=True)
    assert eng.get_document("2")["year"] == 2016 and eng.get_document(2)["title"] == "The Little Prince"
    # Replacing keeps the internal id: listing order stays insertion order.
    assert [d["id"] for d in eng.get_documents(limit=100)["results"]] == [1, "2", 3, 4, 5, 9]
    page = eng.get_documents(offset=1, limit=2, fields=["title"])
    assert page == {"results": [{"title": "The Little Prince"}, {"title": "Prince of Persia"}], "offset": 1, "limit": 2, "total": 6}
    assert eng.delete_documents([1, "3", 77]) == 2
    assert err(eng.get_document, 1).code == "document_not_found"
    assert eng.search({"q": "replaced"})["hits"] == []
    assert eng.get_documents(ids=[9, "4"])["total"] == 2
    assert eng.clear() == 4 and eng.stats()["numberOfDocuments"] == 0


def test_documents_filter_and_delete_by_filter():
    eng = engine(filterableAttributes=["year"])
    assert [d["id"] for d in eng.get_documents(filter="year = 2010")["results"]] == [3, 4]
    assert err(eng.get_documents, filter="rating > 1").code == "invalid_document_filter"
    assert eng.delete_by_filter("year >= 2010") == 3
    assert eng.stats()["numberOfDocuments"] == 2
    assert err(eng.delete_by_filter, "genre = x").code == "invalid_document_filter"


def test_stats_and_dump_restore_round_trip():
    eng = engine(filterableAttributes=["genre"])
    st = eng.stats()
    assert st["numberOfDocuments"] == 5 and st["fieldDistribution"]["rating"] == 4 and st["isIndexing"] is False
    import msgspec

    copy = IndexEngine.restore(msgspec.json.decode(msgspec.json.encode(eng.dump())))
    assert copy.primary_key == "id" and copy.settings == eng.settings
    assert ids(copy.search({"q": "prince"})) == ids(eng.search({"q": "prince"}))


def test_displayed_attributes_limit_documents_and_hits():
    eng = engine(displayedAttributes=["id", "title"])
    assert eng.get_document(1) == {"id": 1, "title": "Le Petit Prince"}
    hit = eng.search({"q": "batman", "attributesToRetrieve": ["title", "year"]})["hits"][0]
    assert hit == {"title": "Batman Begins"}


# ---------------------------------------------------------------- matching


def test_case_accent_prefix_and_typo():
    eng = engine()
    # "Prince of Persia" first: the word sits where the query has it (position rule).
    assert ids(eng.search({"q": "PRÍNCE"}))[:3] == [3, 1, 2]
    assert 4 in ids(eng.search({"q": "princ"}))  # prefix on the last word
    assert ids(eng.search({"q": "prin"})) == [3, 1, 2, 4]
    assert ids(eng.search({"q": "prin "})) == []  # trailing space: no prefix (and too short for typos)
    assert ids(eng.search({"q": "batmna"})) == [5]  # transposition = 1 typo (6 letters)
    assert ids(eng.search({"q": "btaman begins"})) == [5]
    assert ids(eng.search({"q": "cast"})) == []  # 4 letters: no typo allowed


def test_typo_tolerance_settings():
    tt = default_settings()["typoTolerance"]
    assert ids(engine(typoTolerance={**tt, "enabled": False}).search({"q": "batmna"})) == []
    assert ids(engine(typoTolerance={**tt, "disableOnWords": ["batmna"]}).search({"q": "batmna"})) == []
    assert ids(engine(typoTolerance={**tt, "minWordSizeForTypos": {"oneTypo": 7, "twoTypos": 9}}).search({"q": "batmna"})) == []
    assert ids(engine(typoTolerance={**tt, "disableOnAttributes": ["title"]}).search({"q": "batmna"})) == []


def test_matching_strategies():
    eng = engine()
    # last: drops words from the end, so every hit has the first word; "princes" is 1 typo.
    assert ids(eng.search({"q": "prince little"})) == [2, 3, 1, 4]
    assert ids(eng.search({"q": "little prince"})) == [2]
    assert ids(eng.search({"q": "little prince", "matchingStrategy": "all"})) == [2]
    assert ids(eng.search({"q": "prince little", "matchingStrategy": "frequency"}))[0] == 2
    assert err(eng.search, {"q": "x", "matchingStrategy": "some"}).code == "invalid_search_matching_strategy"


def test_stop_words_are_ignored_in_queries():
    eng = engine(stopWords=["the"])
    res = eng.search({"q": "the batman", "showRankingScoreDetails": True})
    assert ids(res) == [5] and res["hits"][0]["_rankingScoreDetails"]["words"]["maxMatchingWords"] == 1


def test_searchable_attributes_restrict_matching():
    eng = engine(searchableAttributes=["genre"])
    assert ids(eng.search({"q": "prince"})) == []
    assert ids(eng.search({"q": "drama"})) == [2, 1]  # ["drama"] is an exact match of the value
    assert ids(eng.search({"q": "prince", "attributesToSearchOn": ["genre"]})) == []


# ---------------------------------------------------------------- pagination, sort, distinct, filter


def test_offset_limit_and_pages():
    eng = engine()
    res = eng.search({"q": "", "offset": 1, "limit": 2})
    assert ids(res) == [2, 3] and res["estimatedTotalHits"] == 5 and res["limit"] == 2 and res["offset"] == 1
    res = eng.search({"q": "", "hitsPerPage": 2, "page": 3})
    assert ids(res) == [5]
    assert {k: res[k] for k in ("hitsPerPage", "page", "totalPages", "totalHits")} == {"hitsPerPage": 2, "page": 3, "totalPages": 3, "totalHits": 5}
    assert "estimatedTotalHits" not in res
    assert eng.search({"q": "", "page": 0})["hits"] == []
    capped = engine(pagination={"maxTotalHits": 3}).search({"q": "", "limit": 10, "hitsPerPage": 10})
    assert len(capped["hits"]) == 3 and capped["totalHits"] == 3
    assert err(eng.search, {"limit": -1}).code == "invalid_search_limit"
    assert err(eng.search, {"offset": "a"}).code == "invalid_search_offset"
    assert err(eng.search, {"q": 3}).code == "invalid_search_q"
    e = err(eng.search, {"qq": "x"})
    assert e.code == "bad_request" and e.message.startswith("Unknown field `qq`")


def test_sort_rules_and_errors():
    eng = engine(sortableAttributes=["year", "title"])
    assert ids(eng.search({"q": "", "sort": ["year:desc"]})) == [2, 3, 4, 5, 1]
    # `sort` comes after `attribute` in the pre-1.36 rules: it only splits ties before it.
    old = engine(sortableAttributes=["year", "title"],
                 rankingRules=["words", "typo", "proximity", "attribute", "sort", "exactness"])
    assert ids(old.search({"q": "prince", "sort": ["year:asc"]})) == [3, 1, 4, 2]
    # 1.36's defaults put it between `attributeRank` and `wordPosition`: before the position.
    assert ids(eng.search({"q": "prince", "sort": ["year:asc"]})) == [1, 3, 4, 2]
    assert ids(eng.search({"sort": ["title:asc"]})) == [5, 1, 4, 3, 2]
    e = err(eng.search, {"sort": ["rating:asc"]})
    assert e.code == "invalid_search_sort"
    assert e.message == "Attribute `rating` is not sortable. Available sortable attributes are: `title, year`."
    assert err(engine().search, {"sort": ["year:asc"]}).message == (
        "Attribute `year` is not sortable. This index does not have configured sortable attributes."
    )
    assert "expected expression ending by `:asc` or `:desc`" in err(eng.search, {"sort": ["year"]}).message


def test_distinct_param_and_setting():
    eng = engine(filterableAttributes=["year"], distinctAttribute="year")
    assert ids(eng.search({"q": ""})) == [1, 2, 3, 5]
    assert eng.search({"q": "", "hitsPerPage": 2})["totalHits"] == 4
    eng2 = engine(filterableAttributes=["genre"])
    assert ids(eng2.search({"q": "", "distinct": "genre"})) == [1, 3, 4]
    assert err(eng2.search, {"distinct": "year"}).code == "invalid_search_distinct"


def test_filter_on_search():
    eng = engine(filterableAttributes=["year", "genre"])
    assert ids(eng.search({"q": "prince", "filter": "year > 2000"})) == [3, 2, 4]
    assert ids(eng.search({"filter": ["genre = action", "year < 2008"]})) == [5]
    e = err(eng.search, {"filter": "rating > 1"})
    assert e.code == "invalid_search_filter" and "not filterable" in e.message
    assert err(eng.search, {"filter": "year >"}).code == "invalid_search_filter"


# ---------------------------------------------------------------- facets


def test_facet_distribution_and_stats():
    eng = engine(filterableAttributes=["genre", "year", "rating"])
    res = eng.search({"q": "", "facets": ["genre", "rating"]})
    # Counted case-insensitively, shown with the first casing seen.
    assert res["facetDistribution"]["genre"] == {"Action": 2, "Drama": 2, "documentary": 1, "kids": 1}
    assert res["facetStats"] == {"rating": {"min": 2.0, "max": 4.5}}
    res = eng.search({"q": "prince", "facets": ["*"]})
    assert set(res["facetDistribution"]) == {"genre", "year", "rating"}
    assert res["facetDistribution"]["year"] == {"1943": 1, "2010": 2, "2015": 1}
    counted = engine(filterableAttributes=["genre"], faceting={"maxValuesPerFacet": 2, "sortFacetValuesBy": {"*": "count"}})
    assert counted.search({"facets": ["genre"]})["facetDistribution"]["genre"] == {"Action": 2, "Drama": 2}
    e = err(eng.search, {"facets": ["title"]})
    assert e.code == "invalid_search_facets" and "not filterable" in e.message
    assert "facetDistribution" not in eng.search({"q": ""})


def test_facet_search():
    eng = engine(filterableAttributes=["genre"])
    res = eng.facet_search({"facetName": "genre", "facetQuery": "dra"})
    assert res["facetHits"] == [{"value": "Drama", "count": 2}] and res["facetQuery"] == "dra"
    assert eng.facet_search({"facetName": "genre", "q": "batman"})["facetHits"] == [{"value": "Action", "count": 1}]
    assert err(eng.facet_search, {"facetName": "year"}).code == "invalid_facet_search_facet_name"
    off = engine(filterableAttributes=["genre"], facetSearch=False)
    for name in ("genre", "year"):  # checked before the facet name, as 1.50 does
        e = err(off.facet_search, {"facetName": name})
        assert (e.code, e.message) == ("facet_search_disabled", "The facet search is disabled for this index")


# ---------------------------------------------------------------- formatting


def test_highlight_crop_and_matches_position():
    eng = engine()
    hit = eng.search({"q": "persian cat", "attributesToHighlight": ["title"], "showMatchesPosition": True})["hits"][0]
    assert hit["_formatted"]["title"] == "<em>Persian</em> <em>cat</em>s and princes of the desert"
    assert hit["_formatted"]["id"] == "4"  # not highlighted, still its text: 1.50 shows every number so
    assert hit["_matchesPosition"]["title"] == [{"start": 0, "length": 7}, {"start": 8, "length": 3}]
    hit = eng.search({"q": "desert", "attributesToCrop": ["title"], "cropLength": 3, "attributesToHighlight": ["*"],
                      "highlightPreTag": "[", "highlightPostTag": "]"})["hits"][0]
    assert hit["_formatted"]["title"] == "…of the [desert]"
    hit = eng.search({"q": "persian", "attributesToCrop": ["title:2"], "cropMarker": "~"})["hits"][0]
    assert hit["_formatted"]["title"] == "Persian cats~"
    hit = eng.search({"q": "drama", "showMatchesPosition": True})["hits"][0]
    assert hit["_matchesPosition"] == {"genre": [{"start": 0, "length": 5, "indices": [0]}]}
