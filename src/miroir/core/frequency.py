"""`matchingStrategy: "frequency"` across shards: the index-wide decision pinned on every node.

milli drops the query terms in order of the number of documents each matches in the
WHOLE index (most frequent first; a term matching nothing counts as the most frequent;
terms matching as many documents are dropped together; the least frequent group stays).
A node holding some shards decides from its own documents, so its answer can differ
from one node's. Miroir learns the frequencies from the nodes (a search per term, no
hit, `matchingStrategy: all`: its total is the term's document count, summed over the
shards) and sends each node a strategy that gives, on that node, exactly the answer the
index-wide decision gives (`pin`):

- `frequency` when the node's own frequencies group and order the terms the same way;
- `last` when the index-wide order is the query's from its end (one term per group):
  `last`'s removal order is then the very same;
- else no strategy can say it (`all` drops the `words` rule from the details and the
  score): Miroir asks the node for the decision's `words` buckets one by one
  (engine/frequencypin.answer_split), each the query of the terms it keeps, searched with
  `last` and cut to the documents holding them all, the better buckets' documents left
  out, each dropped term before a kept one replaced by a negated word no document holds
  (it keeps the kept terms' query positions, on which `wordPosition` depends); the
  candidates, totals, facets, order and details are then the decision's. Splitting
  needs `words` as the first ranking rule and one term per dropped group; else the node
  keeps `frequency` and decides alone (README). One known gap: milli's `exactness` sees
  the hole a dropped term leaves before a kept one by term ids, which the stand-in
  shifts, so a document holding the kept words at their query positions is ranked a
  start match by the node where one node says `noExactMatch`.

Only queries whose terms Miroir can name as the nodes' tokenizer does are pinned (`terms`):
ASCII words separated by spaces, no stop word, no multi-word synonym, no custom
separators or dictionary, no `locales`, and no distinct attribute (a total then counts
distinct values, not documents). Pure: no I/O.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

_PLAIN = re.compile(r"[A-Za-z0-9 ]+")
_CAMEL = re.compile(r"[a-z][A-Z]|[A-Za-z][0-9]|[0-9][A-Za-z]")
MAX_TERMS = 10  # milli reads at most ten words of a query


def terms(q: str | None, settings: Mapping[str, Any], *, locales: Any = None, distinct: Any = None) -> list[str] | None:
    """The query's terms (lower-cased, in order) when Miroir can name them, else None;
    None too for fewer than two terms (nothing to drop)."""
    if not q or locales or distinct or not _PLAIN.fullmatch(q):
        return None
    words = q.split()
    if len(words) < 2 or len(words) > MAX_TERMS or any(_CAMEL.search(w) for w in words):
        return None
    if settings.get("separatorTokens") or settings.get("nonSeparatorTokens") or settings.get("dictionary"):
        return None
    synonyms = settings.get("synonyms") or {}
    if any(" " in key for key in synonyms):
        return None
    stop = {w.lower() for w in settings.get("stopWords") or ()}
    lowered = [w.lower() for w in words]
    if any(w in stop for w in lowered):
        return None
    return lowered


def prefix_last(q: str) -> bool:
    """Whether the query's last term is a prefix (nothing after it)."""
    return not q[-1:].isspace()


def term_query(words: Sequence[str], i: int, prefix: bool) -> str:
    """The one-term query counting term `i`'s documents: the term as the query holds it
    (a prefix only when it is the last term of a query ending on it)."""
    return words[i] if prefix and i == len(words) - 1 else words[i] + " "


# A word no document holds (checked with the counts): negated, it keeps a dropped term's
# query position, on which `wordPosition` depends, and excludes nothing.
PLACEHOLDER = "miroirnomatchplaceholder"


def kept_query(words: Sequence[str], kept: Sequence[int], prefix: bool, placeholder: str | None = None) -> str:
    """The query of the terms in `kept`, in query order, the last a prefix only if it was;
    with `placeholder`, each dropped term before the last kept one becomes `-placeholder`
    (milli gives a negated word a position), so the kept terms keep their positions."""
    keep = set(kept)
    last = max(keep)
    parts = [w if i in keep else f"-{placeholder}" for i, w in enumerate(words[:last + 1]) if i in keep or placeholder]
    text = " ".join(parts)
    return text if prefix and last == len(words) - 1 else text + " "


def groups(frequencies: Sequence[int], terms: Sequence[int] | None = None) -> list[list[int]]:
    """milli's removal groups: terms by document count, most frequent first (none: the
    most frequent of all), equal counts together; the last group is never removed.
    `terms`: the term ids that may be removed (default: every one). The devnode ranks
    with this same order (devnode/phrases.kept_subsets)."""
    def freq(i: int) -> float:
        return frequencies[i] or math.inf

    out: list[list[int]] = []
    for i in sorted(range(len(frequencies)) if terms is None else terms, key=lambda i: (-freq(i), i)):
        if out and freq(out[-1][0]) == freq(i):
            out[-1].append(i)
        else:
            out.append([i])
    return out


def is_last_order(order: Sequence[Sequence[int]]) -> bool:
    """Whether `last` removes the terms in this order: one term a group, from the end."""
    n = sum(len(g) for g in order)
    return [list(g) for g in order] == [[i] for i in range(n - 1, -1, -1)]


def pin(order: list[list[int]], local: list[list[int]] | None) -> str | None:
    """The strategy giving a node the index-wide decision's answer (module doc), or None.
    `order`: the index-wide groups; `local`: the node's own (None: not known yet)."""
    if local is not None and local == order:
        return "frequency"
    if is_last_order(order):
        return "last"
    return None


def reweighed(hit: dict[str, Any], kept: int, n: int) -> None:
    """A hit of the query of `kept` terms (its `words` bucket of every term) scored as in
    the `words` bucket of the whole query's `n` terms, `words` being the first rule: its
    global score, the words rank merged first, scales by kept / n."""
    score = hit.get("_rankingScore")
    if isinstance(score, (int, float)):
        hit["_rankingScore"] = score * kept / n
    details = hit.get("_rankingScoreDetails")
    if isinstance(details, dict) and isinstance(details.get("words"), dict):
        details["words"] = {**details["words"], "matchingWords": kept, "maxMatchingWords": n, "score": kept / n}


def matches_every_term(hit: dict[str, Any], kept: int) -> bool:
    """Whether a hit of a `last` search of `kept` terms holds them all (its `words` bucket)."""
    words = (hit.get("_rankingScoreDetails") or {}).get("words")
    return not isinstance(words, dict) or words.get("matchingWords") == kept
