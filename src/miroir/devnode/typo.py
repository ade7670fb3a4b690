"""Typo candidates for the devnode: every vocabulary word within k typos of a query word.

Same answer as checking `text.bounded_distance` against every word (plus Meilisearch's
rule that a typo on the first letter counts double), but the sorted vocabulary is walked
like a trie: the dynamic-programming row of a prefix is computed once and shared by every
word that starts with it, and a prefix whose row is already over the budget skips all its
words with one bisect. Damerau (OSA) distance is symmetric, so rows run over the
candidate's letters and columns over the query word's. Pure module.
"""

from __future__ import annotations

from bisect import bisect_left

_MAX_CHAR = chr(0x10FFFF)


def _after_prefix(vocab: list[str], prefix: str, lo: int) -> int:
    """Index of the first word of `vocab` (sorted) from `lo` that does not start with `prefix`."""
    last = prefix[-1]
    if last != _MAX_CHAR:
        return bisect_left(vocab, prefix[:-1] + chr(ord(last) + 1), lo)
    i = lo
    while i < len(vocab) and vocab[i].startswith(prefix):
        i += 1
    return i


def typo_matches(vocab: list[str], word: str, k: int, prefix: bool) -> dict[str, int]:
    """{candidate: typos} for the words of the sorted `vocab` whose distance to `word` —
    to their closest prefix of length <= len(word) + k when `prefix` — plus one when the
    first letter differs, is at most k."""
    out: dict[str, int] = {}
    n = len(word)
    if not n or k <= 0:
        return out
    first = word[0]
    head_len = n + k  # in prefix mode only this much of a candidate matters
    row0 = list(range(n + 1))
    i = 0
    nv = len(vocab)
    while i < nv:
        cand = vocab[i]
        if not cand:
            i += 1
            continue
        c0 = cand[0]
        # The first letter decides the budget for the whole run of words starting with it
        # (with a budget of 0 only the word itself, or its extensions, could match, and
        # those start with its first letter).
        budget = k if c0 == first else k - 1
        run_end = _after_prefix(vocab, c0, i)
        if budget < 0 or (budget == 0 and c0 != first):
            i = run_end
            continue
        if c0 != first and budget == 1 and n >= 3:
            # One edit, and it is on the first letter: a substitution (c0 + word[1:]),
            # an insertion (c0 + word), a deletion (word[1:]) or a transposition
            # (word[1] word[0] ...). Either way the candidate's second letter is one of
            # word[0], word[1], word[2]: only those runs are walked.
            for x in sorted(set(word[:3])):
                lo = bisect_left(vocab, c0 + x, i, run_end)
                hi = _after_prefix(vocab, c0 + x, lo)
                if lo < hi:
                    _scan(vocab, lo, min(hi, run_end), word, budget, prefix, head_len, row0, out, k)
            i = run_end
            continue
        i = _scan(vocab, i, run_end, word, budget, prefix, head_len, row0, out, k)
    return out


def _scan(vocab, i, end, word, budget, prefix, head_len, row0, out, k) -> int:
    """Walk vocab[i:end] (words sharing their first letter) and record matches."""
    n = len(word)
    # rows[j] is the DP row after the candidate's first j letters; best[j] the smallest
    # last cell over rows 0..j (the distance to the closest prefix, in prefix mode).
    cap = budget + 1
    rows = [[q if q < cap else cap for q in row0]]
    best = [rows[0][n]]
    path = ""
    penalty = k - budget
    while i < end:
        cand = vocab[i]
        # Reuse the rows of the common prefix with the previous candidate.
        common = 0
        m = min(len(path), len(cand))
        while common < m and path[common] == cand[common]:
            common += 1
        del rows[common + 1 :]
        del best[common + 1 :]
        path = cand[:common]
        limit = min(len(cand), head_len) if prefix else len(cand)
        pruned = False
        for j in range(common + 1, limit + 1):
            c = cand[j - 1]
            prev = rows[j - 1]
            prev2 = rows[j - 2] if j >= 2 else None
            cprev = cand[j - 2] if j >= 2 else ""
            # Only the band |q - j| <= budget can hold a value within the budget (a
            # cell is at least |q - j|); the rest is capped at budget + 1, which keeps
            # every value <= budget exact and every other one above the budget.
            cur = [cap] * (n + 1)
            rowmin = cur[0] = j if j < cap else cap
            for q in range(max(1, j - budget), min(n, j + budget) + 1):
                a = word[q - 1]
                v = prev[q - 1] + (a != c)
                if prev[q] + 1 < v:
                    v = prev[q] + 1
                if cur[q - 1] + 1 < v:
                    v = cur[q - 1] + 1
                if prev2 is not None and q > 1 and a == cprev and word[q - 2] == c and prev2[q - 2] + 1 < v:
                    v = prev2[q - 2] + 1
                cur[q] = v
                if v < rowmin:
                    rowmin = v
            rows.append(cur)
            best.append(min(best[-1], cur[n]))
            path = cand[:j]
            if rowmin > budget:
                # No longer prefix of this one can come back under the budget.
                pruned = True
                break
        depth = len(rows) - 1
        if pruned:
            stop = i + 1 if i + 1 >= end or not vocab[i + 1].startswith(path) else _after_prefix(vocab, path, i)
            if prefix and best[depth - 1] <= budget:
                # Every word below already reached its closest prefix above this point.
                d = best[depth - 1] + penalty
                for w in vocab[i:stop]:
                    out[w] = d
            i = stop
            continue
        if prefix:
            d = best[depth]
            if depth == head_len:
                # Words sharing these head_len letters all have the same distance.
                stop = _after_prefix(vocab, path, i)
                if d <= budget:
                    for w in vocab[i:stop]:
                        out[w] = d + penalty
                i = stop
                continue
        else:
            d = rows[depth][n]
        if d <= budget:
            out[cand] = d + penalty
        i += 1
    return end
