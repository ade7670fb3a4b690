"""Generated search queries for the oracle suite (tests/oracle/test_oracle.py).

`generate(docs, n, seed)` returns `n` search bodies drawn from the corpus itself (words of
names and summaries, real facet values, real ids), mixing every feature the read path
must merge exactly: one to four words with typos and prefixes, the empty query, filters
of every operator (string and array form, pinned primary keys), facets, sort on one and
two fields, distinct, deep offset/limit pages, page/hitsPerPage, attributesToRetrieve,
highlight and crop, ranking scores. The same seed gives the same queries.

The corpus fields (debian-packages.ndjson.gz): id (int, unique), name, version, source,
section, priority, architecture, maintainer, installed_size_kb, size_bytes, homepage,
summary, description, tags (list), depends (list).
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Sequence

PRIMARY_KEY = "id"
FILTERABLE = ["section", "priority", "architecture", "tags", "maintainer", "installed_size_kb", "source", "id"]
SORTABLE = ["installed_size_kb", "size_bytes", "name"]
FACETS = ["section", "priority", "architecture", "tags", "maintainer", "installed_size_kb"]
BASE_SETTINGS = {"filterableAttributes": FILTERABLE, "sortableAttributes": SORTABLE}
# The second phase changes ranking (a custom rule), distinct and faceting on the same index.
CUSTOM_SETTINGS = {
    "rankingRules": ["words", "typo", "installed_size_kb:desc", "proximity", "attribute", "sort", "exactness"],
    "distinctAttribute": "source",
    "faceting": {"maxValuesPerFacet": 7, "sortFacetValuesBy": {"*": "count", "section": "alpha"}},
}

_WORD_RE = re.compile(r"[a-z]{3,12}")
_ALPHABET = "abcdefghijklmnopqrstuvwxyz"


class Vocabulary:
    """What queries are made of, read from the documents."""

    def __init__(self, docs: Sequence[dict]):
        words: Counter[str] = Counter()
        for d in docs:
            words.update(_WORD_RE.findall(f"{d.get('name', '')} {d.get('summary', '')}".lower()))
        # Frequent words make big result sets (many ties, deep pages); rarer ones small.
        common = [w for w, _ in words.most_common(400)]
        rare = [w for w, c in words.items() if 2 <= c <= 5]
        rare.sort()
        self.common = common
        self.rare = rare[:2000]
        self.values = {f: sorted({str(d[f]) for d in docs if d.get(f) not in (None, "", [])}) for f in
                       ("section", "priority", "architecture", "maintainer", "source")}
        self.tags = sorted({t for d in docs for t in d.get("tags") or ()})
        self.ids = [d["id"] for d in docs]
        sizes = sorted(d["installed_size_kb"] for d in docs)
        self.size_quantiles = [sizes[int(len(sizes) * q)] for q in (0.05, 0.25, 0.5, 0.75, 0.95)]


def _typo(rng: random.Random, word: str) -> str:
    """One edit: substitution, deletion, insertion or transposition (not of the first letter)."""
    i = rng.randrange(1, len(word))
    kind = rng.choice("sdit")
    if kind == "s":
        return word[:i] + rng.choice(_ALPHABET) + word[i + 1 :]
    if kind == "d":
        return word[:i] + word[i + 1 :]
    if kind == "i":
        return word[:i] + rng.choice(_ALPHABET) + word[i:]
    if i + 1 < len(word):
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    return word


def _query_text(rng: random.Random, v: Vocabulary) -> str:
    if rng.random() < 0.22:
        return ""
    n = rng.choice([1, 1, 2, 2, 3, 4])
    words = [rng.choice(v.common if rng.random() < 0.7 else v.rare) for _ in range(n)]
    words = [_typo(rng, w) if len(w) >= 5 and rng.random() < 0.25 else w for w in words]
    if rng.random() < 0.3 and len(words[-1]) > 3:  # prefix of the last word
        words[-1] = words[-1][: rng.randrange(3, len(words[-1]))]
    return " ".join(words)


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _leaf(rng: random.Random, v: Vocabulary) -> str:
    field = rng.choice(["section", "priority", "architecture", "maintainer", "source", "tags"])
    values = v.tags if field == "tags" else v.values[field]
    size = rng.choice(v.size_quantiles)
    kind = rng.randrange(14)
    if kind == 0:
        return f"{field} = {_quote(rng.choice(values))}"
    if kind == 1:
        return f"{field} != {_quote(rng.choice(values))}"
    if kind == 2:
        picks = rng.sample(values, min(len(values), rng.randint(1, 4)))
        return f"{field} IN [{', '.join(_quote(p) for p in picks)}]"
    if kind == 3:
        picks = rng.sample(values, min(len(values), rng.randint(1, 3)))
        return f"{field} NOT IN [{', '.join(_quote(p) for p in picks)}]"
    if kind == 4:
        return f"installed_size_kb {rng.choice(['>', '>=', '<', '<='])} {size}"
    if kind == 5:
        lo, hi = sorted(rng.sample(v.size_quantiles, 2))
        return f"installed_size_kb {lo} TO {hi}"
    if kind == 6:
        return rng.choice(["tags EXISTS", "tags NOT EXISTS", "maintainer EXISTS"])
    if kind == 7:
        return rng.choice(["tags IS EMPTY", "tags IS NOT EMPTY"])
    if kind == 8:
        return rng.choice(["maintainer IS NULL", "maintainer IS NOT NULL"])
    if kind == 9:
        return f"NOT {field} = {_quote(rng.choice(values))}"
    if kind == 10:
        return f"(section = {_quote(rng.choice(v.values['section']))} OR priority = {_quote(rng.choice(v.values['priority']))})"
    if kind == 11:
        return f"tags = {_quote(rng.choice(v.tags[:40] or ['none']))}"
    if kind == 12:
        return f"installed_size_kb {rng.choice(['=', '!='])} {size}"
    return f"installed_size_kb > {size} AND architecture = {_quote(rng.choice(v.values['architecture']))}"


def _pinned(rng: random.Random, v: Vocabulary) -> str:
    ids = rng.sample(v.ids, rng.randint(1, 6))
    if len(ids) == 1 and rng.random() < 0.5:
        return f"id = {ids[0]}"
    return f"id IN [{', '.join(str(i) for i in ids)}]"


def _filter(rng: random.Random, v: Vocabulary) -> str | list:
    if rng.random() < 0.12:
        pin = _pinned(rng, v)
        return pin if rng.random() < 0.5 else f"{pin} AND {_leaf(rng, v)}"
    if rng.random() < 0.15:  # array form: outer AND, inner OR
        return [_leaf(rng, v), [_leaf(rng, v), _leaf(rng, v)]]
    n = rng.choice([1, 1, 1, 2, 3])
    expr = _leaf(rng, v)
    for _ in range(n - 1):
        expr = f"{expr} {rng.choice(['AND', 'AND', 'OR'])} {_leaf(rng, v)}"
    return expr


def _sort(rng: random.Random) -> list[str]:
    fields = rng.sample(SORTABLE, rng.choice([1, 1, 2]))
    return [f"{f}:{rng.choice(['asc', 'desc'])}" for f in fields]


def one_query(rng: random.Random, v: Vocabulary, distinct_setting: str | None = None) -> dict:
    body: dict = {"q": _query_text(rng, v)}
    if rng.random() < 0.5:
        body["filter"] = _filter(rng, v)
    if rng.random() < 0.35:
        body["facets"] = rng.sample(FACETS, rng.randint(1, 3))
    if rng.random() < 0.35:
        body["sort"] = _sort(rng)
    if rng.random() < 0.1:
        body["distinct"] = rng.choice(["source", "section"])
    if rng.random() < 0.3:
        body["page"] = rng.choice([0, 1, 1, 2, 3, 7])
        body["hitsPerPage"] = rng.choice([1, 5, 10, 20])
    else:
        body["offset"] = rng.choice([0, 0, 0, 3, 20, 100, 350])
        body["limit"] = rng.choice([0, 1, 5, 10, 20, 20, 50])
    if rng.random() < 0.25:
        body["attributesToRetrieve"] = rng.choice([["id", "name"], ["id", "name", "section"], ["summary", "id"], ["*"]])
    if rng.random() < 0.15:
        body["attributesToHighlight"] = rng.choice([["name", "summary"], ["*"]])
    if rng.random() < 0.1:
        body["attributesToCrop"] = ["description"]
        body["cropLength"] = rng.choice([5, 10, 15])
    if rng.random() < 0.2:
        body["showRankingScore"] = True
    if rng.random() < 0.08:
        body["matchingStrategy"] = "all"
    # The oracle identifies hits by id, or by distinct value inside tie groups.
    distinct = body.get("distinct") or distinct_setting
    wanted = body.get("attributesToRetrieve")
    if distinct and wanted and "*" not in wanted and distinct not in wanted:
        wanted.append(distinct)
    return body


def generate(docs: Sequence[dict], n: int, seed: int, *, distinct_setting: str | None = None) -> list[dict]:
    """`n` search bodies; `distinct_setting` is the index's distinctAttribute, if any."""
    rng = random.Random(seed)
    v = Vocabulary(docs)
    return [one_query(rng, v, distinct_setting) for _ in range(n)]
