"""`_formatted` (highlight, crop) and `_matchesPosition` for devnode hits.

Matching here re-tokenizes the shown values with the index's tokenizer and marks the
words the query matched (exactly, by typo, or by prefix of the last query word — then only
the prefix is highlighted, as Meilisearch does). Pure module.
"""

from __future__ import annotations

import msgspec

from miroir.core.patterns import selects
from miroir.devnode.text import Tokenizer

# Past this many query words and prefixes, Matcher.could_match is not worth its cost.
_SUBSTRING_TEST_MAX = 64


class Matcher:
    def __init__(self, tokenizer: Tokenizer, words: set[str], prefixes: set[str], cut: dict[str, int] | None = None):
        self.tokenizer = tokenizer
        self.words = words
        self.prefixes = prefixes
        self.cut = cut or {}  # word -> how many of its chars are marked

    def could_match(self, text: str) -> bool:
        """False when `text` certainly has no highlighted span (a cheap test that lets
        callers skip tokenizing): an ASCII text's normalized words are substrings of
        its lowercase form, so a matched word or prefix must occur in it."""
        if not text.isascii() or len(self.words) + len(self.prefixes) + len(self.cut) > _SUBSTRING_TEST_MAX:
            return True
        low = text.lower()
        return any(w in low for w in self.words) or any(p in low for p in self.prefixes) or any(w in low for w in self.cut)

    def matches(self, text: str, spans: list | None = None) -> list[tuple[int, int, int]]:
        """(word index, start char, end char) of every highlighted span of `text`
        (`spans`: the tokenizer's spans of `text`, when the caller has them)."""
        out = []
        if spans is None:
            spans = self.tokenizer.spans(text)
        for i, (_, start, end, word) in enumerate(spans):
            if word in self.words:
                out.append((i, start, end))
                continue
            for p in self.prefixes:
                if word.startswith(p):
                    out.append((i, start, min(end, start + len(p))))
                    break
            else:
                n = self.cut.get(word)
                if n is not None:
                    out.append((i, start, min(end, start + n)))
        return out


def _selected(path: str, attrs: list[str] | None) -> bool:
    if not attrs:
        return False
    return any(selects(a, path) for a in attrs)


def format_document(doc: dict, matcher: Matcher, *, highlight_attrs, crop_attrs, crop_length,
                    crop_marker, pre_tag, post_tag) -> dict:
    crop_lengths = {}
    for a in crop_attrs or []:
        name, sep, n = a.rpartition(":")
        if sep and n.isdigit():
            crop_lengths[name] = int(n)
        else:
            crop_lengths[a] = crop_length

    def fmt(value, path):
        if isinstance(value, dict):
            return {k: fmt(v, f"{path}.{k}") for k, v in value.items()}
        if isinstance(value, list):
            return [fmt(v, path) for v in value]
        hl = _selected(path, highlight_attrs)
        crop = next((n for a, n in crop_lengths.items() if selects(a, path)), None)
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not hl and crop is None:
            # 1.50 shows every number of `_formatted` as its JSON text (booleans and
            # nulls stay as they are).
            return msgspec.json.encode(value).decode() if number else value
        if value is None:
            return None
        if number:
            text = msgspec.json.encode(value).decode()
        else:
            text = value if isinstance(value, str) else ("true" if value is True else "false")
        return render(text, matcher, hl, crop, crop_marker, pre_tag, post_tag)

    return {k: fmt(v, k) for k, v in doc.items()}


def render(text: str, matcher: Matcher, highlight: bool, crop: int | None, marker: str, pre: str, post: str) -> str:
    if not matcher.could_match(text):
        # No match: nothing to mark, and a crop window starts at the first word. What
        # the general road below gives, from the first crop + 1 words only.
        if crop is None:
            return text
        bounds = matcher.tokenizer.first_bounds(text, crop + 1)
        if len(bounds) <= crop:
            return text
        if crop == 0:
            return ""
        return text[bounds[0][0] : bounds[crop - 1][1]] + marker
    spans = matcher.tokenizer.spans(text)
    found = matcher.matches(text, spans)
    lo_char, hi_char = 0, len(text)
    prefix = suffix = ""
    if crop is not None and len(spans) > crop:
        if crop == 0:
            return ""
        # Center the window on the first match (Meilisearch looks for the densest window;
        # the first match is a close, cheap approximation).
        first = found[0][0] if found else 0
        last_matched = max((i for i, _, _ in found if i - first < crop), default=first)
        room = crop - (last_matched - first + 1)
        start = max(0, first - room // 2) if found else 0
        end = min(len(spans), start + crop)
        start = max(0, end - crop)
        lo_char, hi_char = spans[start][1], spans[end - 1][2]
        prefix = marker if start > 0 else ""
        suffix = marker if end < len(spans) else ""
    out = [prefix]
    cur = lo_char
    if highlight:
        for _, s, e in found:
            if s < lo_char or e > hi_char:
                continue
            out.append(text[cur:s])
            out.append(pre + text[s:e] + post)
            cur = e
    out.append(text[cur:hi_char])
    out.append(suffix)
    return "".join(out)


def matches_position(doc: dict, matcher: Matcher, searchable: list[str]) -> dict:
    """{attribute: [{"start", "length"(, "indices")}]}, offsets in UTF-8 bytes."""
    out: dict[str, list] = {}

    def walk(value, path, indices):
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, f"{path}.{k}", indices)
            return
        if isinstance(value, list):
            for i, v in enumerate(value):
                walk(v, path, [*indices, i])
            return
        if value is None or isinstance(value, bool):
            return
        if not (searchable == ["*"] or "*" in searchable or _selected(path, searchable)):
            return
        text = value if isinstance(value, str) else str(value)
        for _, s, e in matcher.matches(text):
            start = len(text[:s].encode())
            entry = {"start": start, "length": len(text[s:e].encode())}
            if indices:
                entry["indices"] = indices
            out.setdefault(path, []).append(entry)

    for k, v in doc.items():
        walk(v, k, [])
    return out
