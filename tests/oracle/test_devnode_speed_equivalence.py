"""The devnode engine's speed-ups changed no result: frozen answers of a fixed query set.

tests/support/data/devnode_golden.json holds 128 search and facet-search bodies over 3,000 corpus
documents (every 21st), in three settings phases (base; custom rule + distinct + count
facets; restricted searchable attributes, typo settings, byAttribute proximity, stop
words, reordered rules), and a fingerprint of each answer (hit ids in order, totals, and
a hash of the whole response but `processingTimeMs`) computed with the engine as it was
BEFORE the lazy bucket sort, the filter/facet value indexes and the typo walk. Every
answer must still be byte-for-byte the same.

The other tests pin each shortcut to its definition: fast rule keys vs the keys of the
emitted details, set-at-a-time filters vs the filter predicate, both facet counting
roads, and the typo walk vs `bounded_distance` over a whole vocabulary.

Regenerate (only when a result change is intended and reviewed):
    python -m tests.oracle.test_devnode_speed_equivalence --write
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import sys

import msgspec
import pytest

from miroir.devnode.engine import IndexEngine
from tests.support.corpus import CORPUS, read_docs
from tests.support.paths import DATA

GOLDEN = DATA / "devnode_golden.json"
N_DOCS = 3_000
STRIDE = 21

pytestmark = pytest.mark.skipif(not CORPUS.exists(), reason=f"corpus not found: {CORPUS}")


def load_docs(n: int = N_DOCS) -> list[dict]:
    """Every STRIDE-th corpus document (the corpus is sorted by name: spread the sample)."""
    return read_docs(n, stride=STRIDE)


def fingerprint(res: dict) -> dict:
    res = {k: v for k, v in res.items() if k != "processingTimeMs"}
    digest = hashlib.sha256(msgspec.json.encode(res)).hexdigest()[:20]
    fp: dict = {"sha": digest}
    if "hits" in res:
        fp["ids"] = [h.get("id") for h in res["hits"]]
        fp["total"] = res.get("estimatedTotalHits", res.get("totalHits"))
    else:
        fp["values"] = [h["value"] for h in res["facetHits"]]
    return fp


def run(golden: dict, docs: list[dict]) -> list[list[dict]]:
    """Answers of every phase, in the golden file's order."""
    eng = IndexEngine("golden")
    eng.add_documents([dict(d) for d in docs], "id", partial=False)
    out = []
    for phase in golden["phases"]:
        eng.set_settings(phase["settings"])
        answers = []
        for kind, body in phase["queries"]:
            res = eng.search(body) if kind == "search" else eng.facet_search(body)
            answers.append(fingerprint(res))
        out.append(answers)
    return out


def test_answers_equal_frozen_expectation():
    golden = json.loads(GOLDEN.read_text())
    got = run(golden, load_docs(golden["docs"]))
    bad = []
    for phase, answers in zip(golden["phases"], got):
        for (kind, body), want, have in zip(phase["queries"], phase["expected"], answers):
            if want != have:
                bad.append(f"{phase['name']} {kind} {json.dumps(body)}\n  want {want}\n  have {have}")
    assert not bad, f"{len(bad)} answers changed:\n" + "\n".join(bad[:8])


# ---------------------------------------------------------------------- generation


def _generate(docs: list[dict]) -> dict:  # pragma: no cover - run by hand with --write
    from tests.support import oracle_queries as oq

    rng = random.Random(7)
    v = oq.Vocabulary(docs)

    def with_details(qs):
        for q in qs:
            if rng.random() < 0.8:
                q["showRankingScoreDetails"] = True
                q["showRankingScore"] = True
        return qs

    common = v.common
    hand = [
        {"q": "lib", "limit": 20, "showRankingScoreDetails": True},
        {"q": "lib", "offset": 40, "limit": 10, "facets": ["section", "priority"]},
        {"q": "python library", "filter": "priority = optional", "facets": ["section", "architecture"], "showRankingScoreDetails": True},
        {"q": "libary", "showRankingScoreDetails": True},
        {"q": "compresion tool", "showRankingScoreDetails": True},
        {"q": "gnome", "sort": ["installed_size_kb:desc"], "showRankingScoreDetails": True},
        {"q": "", "filter": "section IN [libs, utils, python]", "facets": ["section", "tags", "installed_size_kb"]},
        {"q": "", "filter": "section != libs AND architecture = amd64", "facets": ["priority", "maintainer"], "limit": 5},
        {"q": "", "sort": ["name:asc"], "offset": 2990, "limit": 20},
        {"q": "data", "rankingScoreThreshold": 0.9, "showRankingScore": True},
        {"q": "perl module", "matchingStrategy": "frequency", "showRankingScoreDetails": True},
        {"q": "the file manager for", "matchingStrategy": "last", "limit": 50, "showRankingScoreDetails": True},
        {"q": "x", "limit": 30, "showRankingScoreDetails": True},
        {"q": "developement files", "attributesToHighlight": ["*"], "showMatchesPosition": True, "limit": 5},
        {"q": "library", "distinct": "section", "showRankingScoreDetails": True, "limit": 40},
        {"q": "lib", "offset": 0, "limit": 1000},
    ]
    for w in rng.sample(common, 6):
        hand.append({"q": f"{w} {rng.choice(common)[:3]}", "filter": "architecture = all", "facets": ["section", "priority"], "showRankingScoreDetails": True})
    base = with_details(oq.generate(docs, 55, 11)) + hand
    facet = [
        ("facet", {"facetName": "section", "facetQuery": "li"}),
        ("facet", {"facetName": "tags", "q": "python", "filter": "priority = optional"}),
        ("facet", {"facetName": "maintainer", "facetQuery": "debian", "q": "lib"}),
    ]
    custom = with_details(oq.generate(docs, 25, 12, distinct_setting="source"))
    restricted = with_details(oq.generate(docs, 20, 13))
    restricted += [
        {"q": "python", "attributesToSearchOn": ["name"], "showRankingScoreDetails": True},
        {"q": "libary devel", "showRankingScoreDetails": True},
        {"q": "gtk", "attributesToSearchOn": ["summary", "description"], "showRankingScoreDetails": True, "limit": 50},
    ]
    phases = [
        ("base", oq.BASE_SETTINGS, [("search", q) for q in base] + facet),
        ("custom", {**oq.BASE_SETTINGS, **oq.CUSTOM_SETTINGS}, [("search", q) for q in custom]),
        (
            "restricted",
            {
                **oq.BASE_SETTINGS,
                "searchableAttributes": ["name", "summary", "description"],
                "typoTolerance": {"enabled": True, "disableOnAttributes": ["name"], "minWordSizeForTypos": {"oneTypo": 4, "twoTypos": 7}},
                "proximityPrecision": "byAttribute",
                "stopWords": ["the", "for", "a"],
                "rankingRules": ["words", "attribute", "typo", "sort", "proximity", "exactness", "size_bytes:asc"],
            },
            [("search", q) for q in restricted],
        ),
    ]
    golden = {"docs": len(docs), "phases": [
        {"name": n, "settings": s, "queries": [list(x) for x in qs], "expected": []} for n, s, qs in phases
    ]}
    golden["phases"] = json.loads(json.dumps(golden["phases"]))
    for phase, answers in zip(golden["phases"], run(golden, docs)):
        phase["expected"] = answers
    return golden


if __name__ == "__main__":  # pragma: no cover
    if "--write" not in sys.argv:
        sys.exit("usage: python -m tests.oracle.test_devnode_speed_equivalence --write")
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text(json.dumps(_generate(load_docs()), separators=(",", ":")) + "\n")
    print(f"wrote {GOLDEN}")


# ---------------------------------------------------------------------- fast keys


@pytest.fixture(scope="module")
def small_engine():
    eng = IndexEngine("keys")
    eng.add_documents(load_docs(600), "id", partial=False)
    eng.set_settings({"filterableAttributes": ["section", "priority"], "sortableAttributes": ["installed_size_kb"]})
    return eng


@pytest.mark.parametrize("q", ["lib", "python module", "librar gnome", "the data files for", "compresion", "x window manager"])
@pytest.mark.parametrize("strategy", ["last", "frequency"])
def test_fast_rule_keys_equal_the_emitted_details(small_engine, q, strategy):
    """Every shortcut key (`words` per bucket, `typo` from typo maps, `attribute` from
    smallest positions, `exactness` without exact words) equals the key derived from the
    emitted detail, for every candidate; a rule skipped as constant really is."""
    from miroir.devnode.engine import _BucketSort

    eng = small_engine
    plan = eng._plan(q, strategy, None, None)
    rules = eng._rules(plan, [("installed_size_kb", False)])
    fast = _BucketSort(plan, rules)
    slow = _BucketSort(plan, rules)
    assert plan.candidates
    groups = [plan.candidates] + [[i for i in plan.candidates if plan.bucket[i] == b] for b in range(len(plan.kept))]
    for r, cands in ((r, g) for r in range(len(rules)) for g in groups if g):
        keyf = fast._key_fn(r, cands)
        want = [slow.key(i, r) for i in cands]
        if keyf is None:
            assert len(set(want)) == 1, rules[r]
        elif isinstance(keyf, list):  # direct groups: sorted, disjoint, covering, right keys
            got = {}
            for k, g in keyf:
                assert g == sorted(g)
                for i in g:
                    assert i not in got
                    got[i] = k
            assert [got[i] for i in cands] == want, rules[r]
        else:
            assert [keyf(i) for i in cands] == want, rules[r]


# ---------------------------------------------------------------------- filter sets


def test_filter_sets_equal_the_predicate(monkeypatch):
    """Set-at-a-time filtering selects exactly the documents the predicate accepts, for
    generated filters of every operator, on all documents and on candidate subsets."""
    from miroir.core import filter as f
    from miroir.devnode import postings
    from tests.support import oracle_queries as oq

    monkeypatch.setattr(postings, "PREDICATE_UNIVERSE", 0)  # always the set road
    docs = load_docs(1500)
    v = oq.Vocabulary(docs)
    docs[0] = {**docs[0], "tags": [["x", True], {"a": 1}, None, 3.0], "section": "  LibS "}
    docs[1] = {**docs[1], "maintainer": None, "installed_size_kb": "12"}
    by_iid = dict(enumerate(docs))
    rng = random.Random(3)
    fs = postings.FilterSets(by_iid)
    extra = ["section = libs", "tags = x", "tags = true", "tags = 3", "installed_size_kb = 12", "NOT tags = 3",
             "id IN [1, 2, 3]", "tags IS EMPTY OR maintainer IS NULL", "section NOT IN [libs, utils]"]
    for raw in extra + [oq._filter(rng, v) for _ in range(200)]:
        expr = f.parse_filter(raw)
        pred = f.compile_filter(expr)
        want = [i for i, d in by_iid.items() if pred(d)]
        assert fs.select(expr, None) == want, raw
        subset = sorted(rng.sample(range(len(docs)), 700))
        assert fs.select(expr, subset) == [i for i in subset if pred(by_iid[i])], raw


def test_facet_count_roads_agree():
    from miroir.devnode import facets

    docs = dict(enumerate(load_docs(800)))
    rng = random.Random(4)
    for name in ("section", "tags", "installed_size_kb", "maintainer"):
        idx = facets.FacetIndex.build(name, docs)
        for n in (0, 5, 300, 800):
            cands = sorted(rng.sample(sorted(docs), n))
            per_doc = facets.count(idx, cands) if len(idx.by_key) * 2 >= n else None
            by_value = facets._count_by_value(idx, cands, n == len(docs))
            if per_doc is not None:
                assert per_doc == by_value
            counts = {}
            for i in cands:
                for k in idx.per_doc.get(i, ()):
                    counts[k] = counts.get(k, 0) + 1
            assert by_value[0] == counts


# ---------------------------------------------------------------------- typo candidates


def _brute_typos(vocab, word, k, prefix):
    from miroir.devnode.text import bounded_distance

    out = {}
    for cand in vocab:
        d = bounded_distance(word, cand, k, prefix)
        if cand[:1] != word[:1]:
            d += 1
        if d <= k:
            out[cand] = d
    return out


def test_typo_walk_equals_bounded_distance_scan():
    from miroir.devnode.typo import typo_matches

    rng = random.Random(9)
    words = set()
    for d in load_docs(400):
        words.update(re.findall(r"[a-z0-9]+", f"{d['name']} {d['summary']}".lower()))
    words.update(["ab", "abc", "abcd", "ba", "bac", "acb", "x", "xx", "éa", "a\U0010ffff", "a\U0010ffffb"])
    vocab = sorted(words)
    probes = [*rng.sample(vocab, 60), "librray", "pyhton", "compresion", "gnoem", "dveel", "ab", "bca", "xa"]
    probes = [p if rng.random() < 0.5 else p[:1] + p[2:3] + p[1:2] + p[3:] for p in probes]
    # Typos on the first letter: only words within one more edit may match.
    heads = rng.sample([w for w in vocab if len(w) >= 4], 40)
    probes += [w[1] + w[0] + w[2:] for w in heads[:15]] + ["z" + w[1:] for w in heads[15:30]] + [w[1:] for w in heads[30:]]
    for w in probes:
        for k in (1, 2):
            for prefix in (False, True):
                assert typo_matches(vocab, w, k, prefix) == _brute_typos(vocab, w, k, prefix), (w, k, prefix)
