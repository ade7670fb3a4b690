"""Restricted-field searches (attributesToSearchOn, explicit searchableAttributes, typo-
disabled attributes) take the same fast rule keys as all-field searches and answer the same.

Two guards:

- tests/support/data/devnode_restricted.json: search and facet-search bodies over 3,000 corpus
  documents carrying a `_miroir_shard` field (as on a Miroir node), in four settings
  phases, with a fingerprint of each answer (hit ids, totals, hash of the whole response
  but `processingTimeMs`) computed with the engine as it was BEFORE restricted searches
  got the fast path (every restricted search built every matching document's TermHits and
  compared documents by their emitted details). Every answer must stay the same.
- the reference road (`IndexEngine.reference_ranking`, the per-document path kept as the
  definition) answers every generated query exactly like the fast road, and each fast
  rule key of a restricted plan equals the key of the emitted detail.

Regenerate (only when a result change is intended and reviewed):
    python -m tests.oracle.test_devnode_restricted_equivalence --write
"""

from __future__ import annotations

import json
import random
import sys

import pytest

from miroir.devnode.engine import IndexEngine, _BucketSort
from tests.oracle.test_devnode_speed_equivalence import fingerprint
from tests.support import oracle_queries as oq
from tests.support.corpus import CORPUS, read_docs
from tests.support.paths import DATA

FROZEN = DATA / "devnode_restricted.json"
N_DOCS = 3_000
STRIDE = 21
SHARDS = 16
FIELDS = ["id", "name", "version", "source", "section", "priority", "architecture", "maintainer",
          "installed_size_kb", "size_bytes", "homepage", "summary", "description", "tags", "depends"]
EXPLICIT = ["name", "summary", "description", "tags", "maintainer", "section"]

pytestmark = pytest.mark.skipif(not CORPUS.exists(), reason=f"corpus not found: {CORPUS}")


def load_docs(n: int = N_DOCS) -> list[dict]:
    """Every STRIDE-th corpus document with the shard field a Miroir node would hold."""
    docs = read_docs(n, stride=STRIDE)
    for d in docs:
        d["_miroir_shard"] = d["id"] % SHARDS
    return docs


def _engine(docs: list[dict]) -> IndexEngine:
    eng = IndexEngine("restricted")
    eng.add_documents([dict(d) for d in docs], "id", partial=False)
    return eng


def run(frozen: dict, docs: list[dict], *, reference: bool = False) -> list[list[dict]]:
    eng = _engine(docs)
    eng.reference_ranking = reference
    out = []
    for phase in frozen["phases"]:
        eng.set_settings(phase["settings"])
        answers = []
        for kind, body in phase["queries"]:
            res = eng.search(body) if kind == "search" else eng.facet_search(body)
            answers.append(fingerprint(res))
        out.append(answers)
    return out


def _compare(frozen: dict, got: list[list[dict]]) -> list[str]:
    bad = []
    for phase, answers in zip(frozen["phases"], got):
        for (kind, body), want, have in zip(phase["queries"], phase["expected"], answers):
            if want != have:
                bad.append(f"{phase['name']} {kind} {json.dumps(body)}\n  want {want}\n  have {have}")
    return bad


@pytest.fixture(scope="module")
def frozen() -> dict:
    return json.loads(FROZEN.read_text())


@pytest.fixture(scope="module")
def docs(frozen) -> list[dict]:
    return load_docs(frozen["docs"])


def test_answers_equal_frozen_expectation(frozen, docs):
    bad = _compare(frozen, run(frozen, docs))
    assert not bad, f"{len(bad)} answers changed:\n" + "\n".join(bad[:8])


def test_reference_road_equals_frozen_expectation(frozen, docs):
    """The kept per-document road is still the definition the file was frozen from."""
    bad = _compare(frozen, run(frozen, docs, reference=True))
    assert not bad, f"{len(bad)} answers changed:\n" + "\n".join(bad[:8])


# ---------------------------------------------------------------------- generation


def _phases(docs: list[dict]) -> list[tuple[str, dict, list]]:
    rng = random.Random(17)
    v = oq.Vocabulary(docs)
    all_but_shard = FIELDS  # what Miroir sends: every seen field but `_miroir_shard`
    restricts = [all_but_shard, all_but_shard, all_but_shard, [f for f in FIELDS if f != "description"],
                 ["name", "summary"], ["description"], ["*"], ["summary", "name", "unknown"], ["tags", "depends"]]

    def searches(n: int, seed: int, restrict_choices, distinct_setting=None, details=0.8) -> list:
        out = []
        for q in oq.generate(docs, n, seed, distinct_setting=distinct_setting):
            if rng.random() < details:
                q["showRankingScoreDetails"] = True
                q["showRankingScore"] = True
            r = rng.choice(restrict_choices)
            if r is not None:
                q["attributesToSearchOn"] = list(r)
            if rng.random() < 0.15:
                q["matchingStrategy"] = rng.choice(["frequency", "last", "all"])
            if rng.random() < 0.1:
                q["showMatchesPosition"] = True
            out.append(("search", q))
        return out

    common = v.common
    hand = [
        {"q": "7", "showRankingScoreDetails": True},
        {"q": "7", "attributesToSearchOn": all_but_shard, "showRankingScoreDetails": True},
        {"q": "12 lib", "attributesToSearchOn": all_but_shard, "showRankingScoreDetails": True, "limit": 50},
        {"q": "lib", "attributesToSearchOn": all_but_shard, "limit": 1000},
        {"q": "libary devel", "attributesToSearchOn": all_but_shard, "showRankingScoreDetails": True},
        {"q": "python library", "attributesToSearchOn": all_but_shard, "rankingScoreThreshold": 0.8, "showRankingScore": True},
        {"q": "the file manager for", "attributesToSearchOn": all_but_shard, "limit": 50, "showRankingScoreDetails": True},
        {"q": "gtk", "attributesToSearchOn": ["summary", "description"], "showRankingScoreDetails": True, "limit": 50},
        {"q": "x", "attributesToSearchOn": all_but_shard, "limit": 30, "showRankingScoreDetails": True},
        {"q": "perl module", "attributesToSearchOn": all_but_shard, "matchingStrategy": "frequency", "showRankingScoreDetails": True},
        {"q": "library", "attributesToSearchOn": all_but_shard, "distinct": "section", "showRankingScoreDetails": True, "limit": 40},
        {"q": "developement files", "attributesToSearchOn": all_but_shard, "attributesToHighlight": ["*"], "showMatchesPosition": True, "limit": 5},
    ]
    for w in rng.sample(common, 8):
        hand.append({"q": f"{w} {rng.choice(common)[:3]}", "attributesToSearchOn": rng.choice(restricts), "showRankingScoreDetails": True, "limit": 40})
    facet = [
        ("facet", {"facetName": "section", "q": "python", "attributesToSearchOn": all_but_shard}),
        ("facet", {"facetName": "tags", "q": "lib", "attributesToSearchOn": ["name"], "facetQuery": "d"}),
        ("facet", {"facetName": "priority", "q": "12", "attributesToSearchOn": ["*"]}),
    ]
    filterable = [*oq.FILTERABLE, "_miroir_shard"]
    base = {"filterableAttributes": filterable, "sortableAttributes": oq.SORTABLE}
    star = searches(60, 21, restricts) + [("search", q) for q in hand] + facet
    custom = searches(30, 22, [*restricts, None], distinct_setting="source")
    explicit_choices = [None, None, ["name", "summary"], ["summary", "name"], ["description", "tags"], ["*"], ["maintainer"]]
    explicit = searches(35, 23, explicit_choices)
    explicit += [
        ("search", {"q": "python", "attributesToSearchOn": ["summary", "name"], "showRankingScoreDetails": True, "limit": 50}),
        ("search", {"q": "libary devel", "showRankingScoreDetails": True, "limit": 50}),
        ("search", {"q": "gnome desktop", "attributesToSearchOn": ["description"], "showRankingScoreDetails": True}),
    ]
    typo_attrs = searches(35, 24, [*restricts, None, None])
    typo_attrs += [
        ("search", {"q": "pyhton", "showRankingScoreDetails": True, "limit": 50}),
        ("search", {"q": "libary devel", "attributesToSearchOn": all_but_shard, "showRankingScoreDetails": True, "limit": 50}),
    ]
    return [
        ("star", base, star),
        ("custom", {**base, **oq.CUSTOM_SETTINGS}, custom),
        ("explicit", {**base, "searchableAttributes": EXPLICIT}, explicit),
        (
            "typo-attrs",
            {
                **base,
                "typoTolerance": {"enabled": True, "disableOnAttributes": ["name", "tags"], "minWordSizeForTypos": {"oneTypo": 4, "twoTypos": 7}},
                "proximityPrecision": "byAttribute",
                "stopWords": ["the", "for", "a"],
                "rankingRules": ["words", "attribute", "typo", "sort", "proximity", "exactness", "size_bytes:asc"],
            },
            typo_attrs,
        ),
        (
            "explicit-typo",
            {
                **base,
                "searchableAttributes": ["summary", "name", "description"],
                "typoTolerance": {"enabled": True, "disableOnAttributes": ["summary"]},
                "rankingRules": ["words", "exactness", "attribute", "proximity", "typo", "sort"],
            },
            searches(25, 25, [None, None, ["name", "description"], ["summary"]]),
        ),
    ]


def _generate(docs: list[dict]) -> dict:  # pragma: no cover - run by hand with --write
    frozen = {"docs": len(docs), "phases": [
        {"name": n, "settings": s, "queries": [list(x) for x in qs], "expected": []} for n, s, qs in _phases(docs)
    ]}
    frozen["phases"] = json.loads(json.dumps(frozen["phases"]))
    for phase, answers in zip(frozen["phases"], run(frozen, docs)):
        phase["expected"] = answers
    return frozen


if __name__ == "__main__":  # pragma: no cover
    if "--write" not in sys.argv:
        sys.exit("usage: python -m tests.oracle.test_devnode_restricted_equivalence --write")
    FROZEN.parent.mkdir(exist_ok=True)
    FROZEN.write_text(json.dumps(_generate(load_docs()), separators=(",", ":")) + "\n")
    print(f"wrote {FROZEN}")


# ---------------------------------------------------------------------- fast road vs reference


@pytest.fixture(scope="module")
def phases() -> list[tuple[str, dict, list]]:
    return _phases(load_docs(800))


def test_fast_road_equals_reference_road(phases):
    """Whole responses (details, scores, formatting, facets) of the fast and the reference
    road are equal for every generated query of every phase, on a different sample."""
    docs = load_docs(800)
    fast, ref = _engine(docs), _engine(docs)
    ref.reference_ranking = True
    for name, settings, queries in phases:
        fast.set_settings(settings)
        ref.set_settings(settings)
        for kind, body in queries:
            call = "search" if kind == "search" else "facet_search"
            want = {k: v for k, v in getattr(ref, call)(dict(body)).items() if k != "processingTimeMs"}
            have = {k: v for k, v in getattr(fast, call)(dict(body)).items() if k != "processingTimeMs"}
            assert have == want, (name, body)


RESTRICTED_SETTINGS = {
    "star": ({}, FIELDS),
    "star-some": ({}, ["summary", "name", "depends"]),
    "explicit": ({"searchableAttributes": EXPLICIT}, None),
    "explicit-some": ({"searchableAttributes": EXPLICIT}, ["description", "name"]),
    "typo-off": ({"typoTolerance": {"disableOnAttributes": ["name", "description"]}}, None),
    "explicit-typo-off": ({"searchableAttributes": EXPLICIT, "typoTolerance": {"disableOnAttributes": ["summary"]},
                           "proximityPrecision": "byAttribute"}, ["summary", "name", "tags"]),
}


@pytest.mark.parametrize("setting", sorted(RESTRICTED_SETTINGS))
@pytest.mark.parametrize("q", ["lib", "python module", "librar gnome", "the data files for", "compresion", "x window manager", "7 li"])
@pytest.mark.parametrize("strategy", ["last", "frequency"])
def test_restricted_fast_rule_keys_equal_the_emitted_details(setting, q, strategy):
    """Every fast key of a restricted plan equals the key of the emitted detail, for every
    candidate and for each bucket alone; a rule skipped as constant really is."""
    settings, restrict = RESTRICTED_SETTINGS[setting]
    eng = _keys_engine()
    eng.set_settings({"sortableAttributes": ["installed_size_kb"], **settings})
    plan = eng._plan(q, strategy, None, restrict)
    assert plan.view is not None and not plan.reference
    rules = eng._rules(plan, [("installed_size_kb", False)])
    fast = _BucketSort(plan, rules)
    slow = _BucketSort(plan, rules)
    if not plan.candidates:
        return
    groups = [plan.candidates] + [[i for i in plan.candidates if plan.bucket[i] == b] for b in range(len(plan.kept))]
    for r, cands in ((r, g) for r in range(len(rules)) for g in groups if g):
        keyf = fast._key_fn(r, cands)
        want = [slow.key(i, r) for i in cands]
        if keyf is None:
            assert len(set(want)) == 1, rules[r]
        elif isinstance(keyf, list):
            got = {}
            for k, g in keyf:
                assert g == sorted(g)
                for i in g:
                    assert i not in got
                    got[i] = k
            assert [got[i] for i in cands] == want, rules[r]
        else:
            assert [keyf(i) for i in cands] == want, rules[r]


_KEYS_ENGINE: list[IndexEngine] = []


def _keys_engine() -> IndexEngine:
    if not _KEYS_ENGINE:
        _KEYS_ENGINE.append(_engine(load_docs(600)))
    return _KEYS_ENGINE[0]
