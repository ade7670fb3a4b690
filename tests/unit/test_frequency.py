"""core/frequency.py: milli's removal groups for `matchingStrategy: frequency`, the queries
Miroir sends to count terms and to ask a bucket, and which strategy pins a node."""

from miroir.core import frequency


def test_groups_most_frequent_first_none_counts_as_most():
    assert frequency.groups([5, 3]) == [[0], [1]]
    assert frequency.groups([5, 0, 3]) == [[1], [0], [2]]  # no document: dropped first
    assert frequency.groups([2, 2, 1]) == [[0, 1], [2]]  # as many documents: together
    assert frequency.groups([4, 4]) == [[0, 1]]


def test_pin():
    assert frequency.pin([[0], [1]], [[0], [1]]) == "frequency"
    assert frequency.pin([[1], [0]], [[0], [1]]) == "last"  # `last` drops from the end
    assert frequency.pin([[0], [1]], [[1], [0]]) is None  # only a split says it
    assert frequency.pin([[0], [1]], None) is None
    assert frequency.pin([[0, 1]], [[1], [0]]) is None  # `all` would drop the `words` rule


def test_term_and_kept_queries_keep_prefix_and_positions():
    words = ["captain", "super", "marvel"]
    assert [frequency.term_query(words, i, True) for i in range(3)] == ["captain ", "super ", "marvel"]
    assert frequency.term_query(words, 2, False) == "marvel "
    assert frequency.kept_query(words, [2], True) == "marvel"
    assert frequency.kept_query(words, [0, 1], True) == "captain super "
    assert frequency.kept_query(words, [1, 2], True, "zz") == "-zz super marvel"
    assert frequency.kept_query(words, [0], False, "zz") == "captain "


def test_terms_only_when_miroir_can_name_them():
    assert frequency.terms("Captain Marvel", {}) == ["captain", "marvel"]
    assert frequency.terms("captain", {}) is None  # nothing to drop
    assert frequency.terms('"captain" marvel', {}) is None
    assert frequency.terms("captain-marvel now", {}) is None
    assert frequency.terms("the captain", {"stopWords": ["the"]}) is None
    assert frequency.terms("captain marvel", {"synonyms": {"captain marvel": ["shazam"]}}) is None
    assert frequency.terms("captain marvel", {}, distinct="kind") is None
    assert frequency.terms("captainMarvel now", {}) is None


def test_reweighed_and_bucket_cut():
    hit = {"_rankingScore": 0.75, "_rankingScoreDetails": {"words": {"order": 0, "matchingWords": 2,
                                                                      "maxMatchingWords": 2, "score": 1.0}}}
    assert frequency.matches_every_term(hit, 2)
    frequency.reweighed(hit, 2, 3)
    assert hit["_rankingScore"] == 0.5
    assert hit["_rankingScoreDetails"]["words"] == {"order": 0, "matchingWords": 2, "maxMatchingWords": 3,
                                                    "score": 2 / 3}
    assert not frequency.matches_every_term(hit, 3)
