"""The devnode's query operators, as milli's `parse_query.rs`: `"a phrase"` and `-word`,
`-"a phrase"`.

A phrase is mandatory: a document must hold its words adjacent and in order in one
attribute (no typo, no prefix), and the `words` rule never drops it (with a phrase in
the query every other term may be dropped, as milli's removal order). A negative word
excludes the documents holding that exact word; a negative phrase those holding the
phrase. A quote never closed makes the rest of the query a phrase; `-` negates only
after a whitespace (or at the start) and directly before a word or a quote.

What the ranking rules see of a phrase is its words, each an exact term (milli ranks a
phrase as one term): scores stay per document, so a sharded answer equals one node's.
"""

from __future__ import annotations

from collections.abc import Mapping

from miroir.core import frequency
from miroir.devnode.ranking import PACK_BITS
from miroir.devnode.text import Tokenizer, ends_on_word

MAX_TERMS = 10  # milli's cap on a query's terms


class QueryOperators:
    """A query with operators: its terms (query position, word) with the mandatory ones
    (phrase words), its phrases, and what it excludes."""

    def __init__(self) -> None:
        self.terms: list[tuple[int, str]] = []
        self.mandatory: set[int] = set()  # indexes into `terms`
        self.phrases: list[list[str]] = []
        self.negative_words: list[str] = []
        self.negative_phrases: list[list[str]] = []
        self.last_is_word = False  # the query ends on a plain word: it may be a prefix

    @property
    def active(self) -> bool:
        """Whether the query uses an operator at all (else it is planned as before)."""
        return bool(self.phrases or self.negative_words or self.negative_phrases)


def has_operators(q: str) -> bool:
    return '"' in q or "-" in q


def _segments(q: str) -> list[tuple[str, bool, bool]]:
    """(text, in a phrase, negated) pieces of `q`, in order."""
    out: list[tuple[str, bool, bool]] = []
    i, n = 0, len(q)
    buf: list[str] = []
    negate_next = False

    def flush(phrase: bool, negated: bool) -> None:
        if buf:
            out.append(("".join(buf), phrase, negated))
            buf.clear()

    while i < n:
        c = q[i]
        if c == '"':
            flush(False, False)
            j = q.find('"', i + 1)
            end = n if j < 0 else j
            out.append((q[i + 1 : end], True, negate_next))
            negate_next = False
            i = end + 1
            continue
        if c == "-" and (i == 0 or q[i - 1].isspace()) and i + 1 < n and not q[i + 1].isspace() and q[i + 1] != "-":
            flush(False, False)
            if q[i + 1] == '"':
                negate_next = True
                i += 1
                continue
            j = i + 1
            while j < n and not q[j].isspace() and q[j] != '"':
                j += 1
            out.append((q[i + 1 : j], False, True))
            i = j
            continue
        buf.append(c)
        i += 1
    flush(False, False)
    return out


def parse(q: str, tokenizer: Tokenizer, stop_words: frozenset) -> QueryOperators:
    ops = QueryOperators()
    # (word, from a phrase, query position) in query order; a negated word takes a
    # position too (milli counts every word token before it reads the operator)
    plain: list[tuple[str, bool, int]] = []
    pos = 0
    for text, phrase, negated in _segments(q):
        words = [w for _, w in tokenizer.words(text)]
        if not words:
            continue
        if negated:
            if phrase:
                ops.negative_phrases.append(words)
                pos += len(words)
            else:
                ops.negative_words.append(words[0])
                # `-foo-bar`: the rest stays positive
                plain.extend((w, False, pos + 1 + k) for k, w in enumerate(words[1:]))
                pos += len(words)
            continue
        if phrase and any(w not in stop_words for w in words):  # milli drops a phrase's stop words
            ops.phrases.append(words)
        plain.extend((w, phrase, pos + k) for k, w in enumerate(words))
        pos += len(words)
    segments = _segments(q)
    last = segments[-1] if segments else None
    ops.last_is_word = (
        last is not None and not last[1] and not last[2] and ends_on_word(q, tokenizer)
    )
    # Stop words are dropped, phrases' too, but for the query's last token (milli's
    # parse_query): it stays, as a prefix.
    last_word = len(plain) - 1 if ops.last_is_word else -1
    kept = [(at, w, ph) for i, (w, ph, at) in enumerate(plain) if w not in stop_words or i == last_word]
    for at, w, ph in kept[:MAX_TERMS]:
        if ph:
            ops.mandatory.add(len(ops.terms))
        ops.terms.append((at, w))
    return ops


def phrase_docs(
    post: Mapping[str, Mapping[int, list[int]]], words: list[str], within: set[int] | None = None, by_attribute: bool = False
) -> set[int]:
    """Documents holding `words` adjacent and in order within one attribute; with
    `proximityPrecision: byAttribute`, milli's reading: every word, and each two words
    at most two apart in the phrase share an attribute (order and distance unknown)."""
    if by_attribute:
        return _phrase_docs_by_attribute(post, words, within)
    if not words:
        return set()
    postings = [post.get(w) for w in words]
    if any(p is None for p in postings):
        return set()
    first = postings[0]
    assert first is not None
    candidates = set(first)
    for p in postings[1:]:
        assert p is not None
        candidates &= p.keys()
    if within is not None:
        candidates &= within
    out = set()
    for iid in candidates:
        later = [set(p[iid]) for p in postings[1:]]  # type: ignore[index]
        # Occurrences pack the field above POS_BITS: +k stays in the same field as long
        # as positions do not overflow, which MAX_POSITION guarantees.
        if any(all(o + k + 1 in occs for k, occs in enumerate(later)) for o in first[iid]):
            out.add(iid)
    return out


def _phrase_docs_by_attribute(post: Mapping[str, Mapping[int, list[int]]], words: list[str], within: set[int] | None) -> set[int]:
    postings = [post.get(w) for w in words]
    if not words or any(p is None for p in postings):
        return set()
    candidates = set(postings[0])  # type: ignore[arg-type]
    for p in postings[1:]:
        candidates &= p.keys()  # type: ignore[union-attr]
    if within is not None:
        candidates &= within
    window = min(len(words), 3)
    pairs = {(i, j) for start in range(len(words) - window + 1) for i in range(start, start + window) for j in range(i + 1, start + window)}
    out = set()
    for iid in candidates:
        fields = [{o >> PACK_BITS for o in p[iid]} for p in postings]  # type: ignore[index]
        if all(fields[i] & fields[j] for i, j in pairs):
            out.add(iid)
    return out


def excluded_docs(post: Mapping[str, Mapping[int, list[int]]], ops: QueryOperators, by_attribute: bool = False) -> set[int]:
    out: set[int] = set()
    for w in ops.negative_words:
        out |= set(post.get(w) or ())
    for words in ops.negative_phrases:
        out |= phrase_docs(post, words, by_attribute=by_attribute)
    return out


def kept_subsets(n: int, mandatory: set[int], strategy: str, frequencies: list[int]) -> list[frozenset]:
    """The `words` rule's buckets: the sets of query terms a document must contain, best
    first (milli's removal order). `last` drops terms from the end; `frequency` drops the
    most frequent first, terms of equal frequency together, and a term no document has
    before any other. The last group is never dropped, unless some term is mandatory
    (a phrase's words): those stay in every bucket and every other term may go."""
    full = frozenset(range(n))
    optional = [i for i in range(n) if i not in mandatory]
    if strategy == "all" or not optional:
        return [full]
    if strategy == "frequency":
        groups = frequency.groups(frequencies, optional)
    else:
        groups = [[i] for i in sorted(optional, reverse=True)]
    if not mandatory:
        groups.pop()
    out = [full]
    cur = set(full)
    for group in groups:
        cur.difference_update(group)
        out.append(frozenset(cur))
    return out
