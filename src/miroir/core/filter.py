"""Meilisearch's filter grammar: one parser shared by the devnode and Miroir's planner.

The grammar, the precedence (``NOT`` > ``AND`` > ``OR``), the reserved keywords and the
error texts follow Meilisearch's ``filter-parser`` crate; evaluation follows milli's
facet semantics (see ``compile_filter``). Pure module: no I/O.

Decisions worth knowing (all taken from the Meilisearch source, not guessed):

- Keywords (``AND``, ``OR``, ``NOT``, ``IN``, ``TO``, ``EXISTS``, ``IS``, ``NULL``,
  ``EMPTY``) are matched exactly, upper case. ``a = 1 and b = 2`` is an error in
  Meilisearch (``and`` is an ordinary word there), so it is here too.
- ``NOT NOT e`` is ``e`` (the parser cancels double negations, as Meilisearch does), so
  a parsed tree never holds ``Not(Not(...))``.
- A filter in array form parses each string on its own; an error's position line
  refers to the string that failed.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import re
import weakref
from collections.abc import Callable, Container, Iterator, Mapping, Sequence
from typing import Any

import msgspec

from miroir.core import geo
from miroir.core.errors import MeiliError, index_scoped, not_filterable_text
from miroir.core.patterns import Rule, filter_features, filterable_patterns, is_filterable

__all__ = [
    "And",
    "Compare",
    "Exists",
    "Expr",
    "FilterError",
    "Foreign",
    "Geo",
    "In",
    "IsEmpty",
    "IsNull",
    "Not",
    "Or",
    "Range",
    "VectorExists",
    "and_filters",
    "check_filterable",
    "compile_filter",
    "filter_attributes",
    "matches",
    "parse_filter",
    "pinned_keys",
    "shard_filter",
    "to_filter_string",
]

# Meilisearch's parser gives up past this nesting depth (filter-parser MAX_FILTER_DEPTH).
MAX_FILTER_DEPTH = 200

# The operator list of 1.50's `InvalidPrimary` message (filter-parser's error.rs); it
# names the operators behind experimental features too.
OPERATION_LIST = (
    "`=`, `!=`, `>=`, `>`, `<=`, `<`, `IN`, `NOT IN`, `TO`, `EXISTS`, `NOT EXISTS`, "
    "`IS NULL`, `IS NOT NULL`, `IS EMPTY`, `IS NOT EMPTY`, `CONTAINS`, `NOT CONTAINS`, `STARTS WITH`, "
    "`NOT STARTS WITH`, `_geoRadius`, `_geoBoundingBox` or `_geoPolygon`"
)

KEYWORDS = frozenset(
    {"AND", "OR", "IN", "NOT", "TO", "EXISTS", "IS", "NULL", "EMPTY", "_geoRadius", "_geoBoundingBox"}
)
# Words that later Meilisearch versions reserve too; the serializer quotes them so its
# output parses on every version.
_QUOTE_WORDS = KEYWORDS | {"CONTAINS", "STARTS", "WITH", "_geo"}


# --------------------------------------------------------------------------- errors


class FilterError(MeiliError):
    """A filter Meilisearch would reject. ``.message`` is Meilisearch's text.

    The code defaults to ``invalid_search_filter``; routes that report another code
    (``invalid_document_filter``, ``invalid_similar_filter``…) use ``with_code``.
    """

    def __init__(self, message: str, code: str = "invalid_search_filter"):
        super().__init__(code, message)

    def with_code(self, code: str) -> FilterError:
        err = FilterError(self.message, code)
        err.index_scoped = self.index_scoped
        return err


# --------------------------------------------------------------------------- tree


class And(msgspec.Struct, frozen=True, tag=True, weakref=True):
    items: tuple[Expr, ...]


class Or(msgspec.Struct, frozen=True, tag=True, weakref=True):
    items: tuple[Expr, ...]


class Not(msgspec.Struct, frozen=True, tag=True, weakref=True):
    item: Expr


class Compare(msgspec.Struct, frozen=True, tag=True, weakref=True):
    attr: str
    op: str  # "=", "!=", ">", ">=", "<", "<="
    value: str


class Range(msgspec.Struct, frozen=True, tag=True, weakref=True):
    attr: str
    low: str
    high: str


class In(msgspec.Struct, frozen=True, tag=True, weakref=True):
    attr: str
    values: tuple[str, ...]
    negated: bool = False


class Exists(msgspec.Struct, frozen=True, tag=True, weakref=True):
    attr: str
    negated: bool = False


class IsNull(msgspec.Struct, frozen=True, tag=True, weakref=True):
    attr: str
    negated: bool = False


class IsEmpty(msgspec.Struct, frozen=True, tag=True, weakref=True):
    attr: str
    negated: bool = False


class Geo(msgspec.Struct, frozen=True, tag=True, weakref=True):
    """``_geoRadius(lat, lng, radius[, resolution])`` (kind ``"_geoRadius"``, 3 or 4
    args), ``_geoBoundingBox([lat, lng], [lat, lng])`` (kind ``"_geoBoundingBox"``, 4
    args: top-right lat, lng, bottom-left lat, lng) or ``_geoPolygon([lat, lng], ...)``
    (kind ``"_geoPolygon"``, lat, lng of each point in turn; it reads ``_geojson``
    shapes only). Args keep their source text."""

    kind: str
    args: tuple[str, ...]


class Contains(msgspec.Struct, frozen=True, tag=True, weakref=True):
    """``attr CONTAINS value`` / ``attr STARTS WITH value`` (op ``"CONTAINS"`` or
    ``"STARTS WITH"``), behind 1.50's `containsFilter` experimental feature."""

    attr: str
    op: str
    value: str
    negated: bool = False


class VectorExists(msgspec.Struct, frozen=True, tag=True, weakref=True):
    """``_vectors[.embedder[.userProvided|.documentTemplate|.regenerate|.fragments.name]] EXISTS``
    (filter-parser's `VectorExists`): documents holding embeddings, read from the vector
    store rather than the document. ``kind`` is ``""`` or the suffix word; ``embedder``
    None means every embedder. Behind 1.50's `multimodal` experimental feature."""

    embedder: str | None
    kind: str = ""
    fragment: str | None = None
    negated: bool = False


class Foreign(msgspec.Struct, frozen=True, tag=True, weakref=True):
    """``_foreign(attr, item)`` (filter-parser's `Foreign`, 1.50's document join): item is
    evaluated on the index the `foreignKeys` setting names for attr, then the whole node
    stands for ``attr IN [ids of the foreign documents it matched]`` (core/foreign.py).
    Behind the `foreignKeys` experimental feature; nothing evaluates it unresolved."""

    attr: str
    item: Expr


Expr = And | Or | Not | Compare | Range | In | Exists | IsNull | IsEmpty | Geo | Contains | VectorExists | Foreign
Doc = dict[str, Any]
Predicate = Callable[[Doc], bool]

# Where each CONTAINS / STARTS WITH keyword sits in its source (the feature gate's error
# points at it), keyed by id(node) as _SPANS.
_KEYWORD_SPANS: dict[int, tuple[str, int, int]] = {}

# Where each parsed leaf's attribute (or a Geo's first argument) sits in its source, so
# that check_filterable and geo errors can print Meilisearch's position line. Keyed by
# id(node); entries leave with their node.
_SPANS: dict[int, tuple[str, int, int]] = {}


# Where each `_vectors` filter's embedder and fragment names sit in its source
# (embedder start, end, fragment start, end), keyed by id(node) as _SPANS.
_NAME_SPANS: dict[int, tuple[str, tuple[int, ...]]] = {}


def _remember_span(node: Any, source: str, start: int, end: int) -> None:
    key = id(node)
    _SPANS[key] = (source, start, end)
    weakref.finalize(node, _SPANS.pop, key, None)


# Where each argument of a parsed Geo sits: milli points its bad-latitude errors at the
# argument itself. Keyed by id(node) as _SPANS.
_GEO_ARG_SPANS: dict[int, tuple[str, tuple[tuple[int, int], ...]]] = {}


# --------------------------------------------------------------------------- messages


def _escape_debug(s: str) -> str:
    out = []
    for ch in s:
        if ch == "\\":
            out.append("\\\\")
        elif ch == "'":
            out.append("\\'")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\0":
            out.append("\\0")
        elif ch != " " and not ch.isprintable():
            out.append(f"\\u{{{ord(ch):x}}}")
        else:
            out.append(ch)
    return "".join(out)


class _Shown(str):
    """A filter's source whose errors quote only its tail from `shown` on: filter-parser
    quotes a `_foreign(...)`'s tokens with the input left from the `_foreign` on, while
    their columns still count from the filter's start."""

    shown: str


def _shown(source: str, start: int) -> str:
    out = _Shown(source)
    out.shown = source[start:]
    return out


def _position(source: str, start: int, end: int) -> str:
    line_start = source.rfind("\n", 0, start) + 1
    col = start - line_start + 1
    return f"{col}:{col + (end - start)} {getattr(source, 'shown', source)}"


class _PErr(Exception):
    """A parse error; ``fail`` mirrors nom's Failure (no backtracking) vs Error."""

    def __init__(self, kind: str, start: int, end: int, arg: str = "", fail: bool = False):
        self.kind = kind
        self.start = start
        self.end = end
        self.arg = arg
        self.fail = fail


def _describe(kind: str, arg: str, ctx: str) -> str:
    esc = _escape_debug(ctx)
    if kind == "ExpectedValue":
        if not ctx.strip():
            return "Was expecting a value but instead got nothing."
        if arg == "keyword":
            return (
                f"Was expecting a value but instead got `{esc}`, which is a reserved keyword. "
                f"To use `{esc}` as a field name or a value, surround it by quotes."
            )
        return f"Was expecting a value but instead got `{esc}`."
    if kind == "MalformedValue":
        return f"Malformed value: `{esc}`."
    if kind == "MissingClosingDelimiter":
        return f"Expression `{esc}` is missing the following closing delimiter: `{arg}`."
    if kind == "InvalidPrimary":
        text = "but instead got nothing." if not ctx.strip() else f"at `{esc}`."
        return f"Was expecting an operation {OPERATION_LIST} {text}"
    if kind == "InvalidEscapedNumber":
        return f"Found an invalid escaped sequence number: `{esc}`."
    if kind == "Foreign":
        return f"Was expecting a field name and an condition inside `_foreign(..)` filter but instead found `{esc}`."
    if kind == "ExpectedEof":
        return (
            f"Found unexpected characters at the end of the filter: `{esc}`. "
            "You probably forgot an `OR` or an `AND` rule."
        )
    if kind == "GeoRadius":
        return (
            "The `_geoRadius` filter must be in the form: "
            "`_geoRadius(latitude, longitude, radius, optionalResolution)`."
        )
    if kind == "GeoRadiusArgumentCount":
        return f"Was expecting 3 or 4 arguments for `_geoRadius`, but instead found {arg}."
    if kind == "GeoPolygon":
        return (
            "The `_geoPolygon` filter doesn't match the expected format: "
            "`_geoPolygon([latitude, longitude], [latitude, longitude])`."
        )
    if kind == "GeoPolygonNotEnoughPoints":
        return f"The `_geoPolygon` filter expects at least 3 points but only {arg} were specified"
    if kind == "GeoCoordinatesNotPair":
        return f"Was expecting 2 coordinates but instead found {arg}."
    if kind == "GeoBoundingBox":
        return (
            "The `_geoBoundingBox` filter expects two pairs of arguments: "
            "`_geoBoundingBox([latitude, longitude], [latitude, longitude])`."
        )
    if kind == "ReservedGeo":
        return (
            f"`{_escape_debug(arg)}` is a reserved keyword and thus can't be used as a filter expression. "
            "Use the `_geoRadius(latitude, longitude, distance)` or "
            "`_geoBoundingBox([latitude, longitude], [latitude, longitude])` built-in rules to filter "
            "on `_geo` coordinates."
        )
    if kind == "MisusedGeoRadius":
        return "The `_geoRadius` filter is an operation and can't be used as a value."
    if kind == "MisusedGeoBoundingBox":
        return "The `_geoBoundingBox` filter is an operation and can't be used as a value."
    if kind == "InOpeningBracket":
        return "Expected `[` after `IN` keyword."
    if kind == "InClosingBracket":
        return "Expected matching `]` after the list of field names given to `IN[`"
    if kind == "InExpectedValue":
        return f"Expected only comma-separated field names inside `IN[..]` but instead found `{esc}`."
    if kind == "VectorFilterLeftover":
        return "The vector filter has leftover tokens."
    if kind == "VectorFilterInvalidQuotes":
        return "The quotes in one of the values are inconsistent."
    if kind == "VectorFilterMissingEmbedder":
        return "Was expecting embedder name but found nothing."
    if kind == "VectorFilterInvalidEmbedder":
        return "The vector filter's embedder name is invalid."
    if kind == "VectorFilterMissingFragment":
        return "The vector filter is missing a fragment name."
    if kind == "VectorFilterInvalidFragment":
        return "The vector filter's fragment name is invalid."
    if kind == "VectorFilterOperation":
        return "Was expecting an operation like `EXISTS` or `NOT EXISTS` after the vector filter."
    if kind == "VectorFilterUnknownSuffix":
        previous, _, value = arg.partition("\0")
        if value == ".":
            return (
                "Was expecting one of `.fragments`, `.userProvided`, `.documentTemplate`, `.regenerate` "
                "or nothing, but instead found a point without a valid value."
            )
        if previous:
            return (
                "Vector filter can only accept one of `fragments`, `userProvided`, `documentTemplate` or "
                f"`regenerate`, but found both `{previous}` and `{value}`."
            )
        if value in _VECTOR_SUFFIXES:
            return "Was expecting this part to be unquoted."
        head = (
            "Was expecting one of `fragments`, `userProvided`, `documentTemplate`, `regenerate` or nothing, "
            f"but instead found `{value}`."
        )
        close = did_you_mean(value, _VECTOR_SUFFIXES)
        return head + (f" Did you mean `{close}`?" if close else "")
    if kind == "DepthLimitReached":
        return (
            "The filter exceeded the maximum depth limit. Try rewriting the filter so that it "
            "contains fewer nested conditions."
        )
    raise AssertionError(kind)


_VECTOR_SUFFIXES = ("fragments", "userProvided", "documentTemplate", "regenerate")


def _osa_distance(a: str, b: str, bound: int) -> int:
    """Levenshtein distance with adjacent transpositions costing one (what the
    levenshtein_automata DFAs milli builds with `transposition_cost_one` accept), or
    bound + 1 once it is certainly above bound."""
    if abs(len(a) - len(b)) > bound:
        return bound + 1
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cost = 0 if ca == cb else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[len(b)]


def did_you_mean(key: str, keys: Sequence[str]) -> str | None:
    """milli's DidYouMean: the first of keys within two typos of key."""
    for k in keys:
        if _osa_distance(key, k, 2) <= 2:
            return k
    return None


# --------------------------------------------------------------------------- lexing helpers

_MULTISPACE = " \t\r\n"  # nom's multispace
_SYNTAX = frozenset("()=<>!")
_FLOAT_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NUMBER_RE = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_SIMPLE_ESCAPES = {
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "0": "\0",
    "'": "'",
    '"': '"',
    "\\": "\\",
    "/": "/",
}


def _is_value_char(c: str) -> bool:
    return c.isalnum() or c == "_" or c == "-" or c == "."


class _BadEscape(Exception):
    def __init__(self, kind: str):
        self.kind = kind


def _unescape(raw: str) -> str:
    """Backslash escapes as the `unescaper` crate reads them (after quote unescaping)."""
    out = []
    i, n = 0, len(raw)
    while i < n:
        c = raw[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        if i + 1 >= n:
            raise _BadEscape("MalformedValue")
        e = raw[i + 1]
        if e in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[e])
            i += 2
        elif e == "x":
            digits = raw[i + 2 : i + 4]
            if len(digits) != 2 or not all(d in "0123456789abcdefABCDEF" for d in digits):
                raise _BadEscape("InvalidEscapedNumber")
            out.append(chr(int(digits, 16)))
            i += 4
        elif e == "u":
            if raw.startswith("{", i + 2):
                close = raw.find("}", i + 3)
                digits = raw[i + 3 : close] if close != -1 else ""
                step = close + 1 - i if close != -1 else 0
            else:
                digits = raw[i + 2 : i + 6]
                step = 6
            try:
                if not digits or not all(d in "0123456789abcdefABCDEF" for d in digits):
                    raise ValueError
                out.append(chr(int(digits, 16)))
            except (ValueError, OverflowError):
                raise _BadEscape("InvalidEscapedNumber") from None
            i += step
        else:
            raise _BadEscape("MalformedValue")
    return "".join(out)


# --------------------------------------------------------------------------- parser


class _Parser:
    """Recursive descent that mirrors filter-parser's nom combinators, including which
    errors backtrack (``_PErr.fail`` False) and which are final (True)."""

    def __init__(self, source: str):
        self.s = source
        self.n = len(source)
        self.spans: list[tuple[Any, int, int]] = []
        self.geo_args: list[tuple[Any, tuple[tuple[int, int], ...]]] = []
        self.keywords: list[tuple[Any, int, int]] = []  # CONTAINS / STARTS WITH keyword spans
        self.names: list[tuple[Any, tuple[int, ...]]] = []  # `_vectors` filters' name spans
        # id(node) -> where the `_foreign(` holding it starts (its errors quote from there)
        self.shown_from: dict[int, int] = {}

    # -- small helpers
    def ws0(self, pos: int) -> int:
        s, n = self.s, self.n
        while pos < n and s[pos] in _MULTISPACE:
            pos += 1
        return pos

    def word_end(self, pos: int) -> int:
        s, n = self.s, self.n
        while pos < n and _is_value_char(s[pos]):
            pos += 1
        return pos

    def word_exact(self, pos: int, word: str) -> int | None:
        end = self.word_end(pos)
        if end > pos and self.s[pos:end] == word:
            return end
        return None

    def kw(self, pos: int, word: str) -> int | None:
        """ws(word_exact(word))"""
        end = self.word_exact(self.ws0(pos), word)
        return None if end is None else self.ws0(end)

    def tags(self, pos: int, *words: str) -> int | None:
        """tag(w1), multispace1, tag(w2), …"""
        s = self.s
        for i, w in enumerate(words):
            if i:
                q = self.ws0(pos)
                if q == pos:
                    return None
                pos = q
            if not s.startswith(w, pos):
                return None
            pos += len(w)
        return pos

    def err(self, kind: str, start: int, end: int | None = None, arg: str = "", fail: bool = False) -> _PErr:
        return _PErr(kind, start, self.n if end is None else end, arg, fail)

    # -- values
    def value(self, pos: int) -> tuple[str, int, int, int]:
        """value = WS* (word | 'quoted' | "quoted") WS*  ->  (text, start, end, next)."""
        s, n = self.s, self.n
        while pos < n and s[pos].isspace():
            pos += 1
        if s.startswith("_geoPoint", pos):
            raise self.err("ReservedGeo", pos, arg="_geoPoint", fail=True)
        if s.startswith("_geoDistance", pos):
            raise self.err("ReservedGeo", pos, arg="_geoDistance", fail=True)
        w_end = self.word_end(pos)
        word = s[pos:w_end]
        if word == "_geo":
            raise self.err("ReservedGeo", pos, arg="_geo", fail=True)
        if word == "_geoRadius":
            raise self.err("MisusedGeoRadius", pos, fail=True)
        if word == "_geoBoundingBox":
            raise self.err("MisusedGeoBoundingBox", pos, fail=True)
        c = s[pos] if pos < n else ""
        if c == "'" or c == '"':
            i = pos + 1
            while i < n:
                ch = s[i]
                if ch == c:
                    break
                if ch == "\\":
                    if i + 1 >= n:
                        raise self.err("MalformedValue", pos + 1, fail=True)
                    i += 2
                    continue
                i += 1
            else:
                raise self.err("MissingClosingDelimiter", pos, arg=c, fail=True)
            raw, start, end, nxt = s[pos + 1 : i], pos + 1, i, i + 1
        else:
            if w_end == pos or word in KEYWORDS:
                e = pos
                while e < n and not (s[e].isspace() or s[e] in _SYNTAX):
                    e += 1
                raise self.err("ExpectedValue", pos, e, arg="keyword" if w_end > pos else "")
            raw, start, end, nxt = word, pos, w_end, w_end
        nxt = self.ws0(nxt)
        if "\\" in raw:
            try:
                raw = _unescape(raw)
            except _BadEscape as exc:
                raise self.err(exc.kind, start, end) from None
        return raw, start, end, nxt

    # -- expression levels
    def expression(self, pos: int, depth: int) -> tuple[Expr, int]:
        if depth > MAX_FILTER_DEPTH:
            raise self.err("DepthLimitReached", pos)
        node, pos = self.and_(pos, depth + 1)
        items = [node]
        while True:
            p = self.kw(pos, "OR")
            if p is None:
                break
            node, pos = self.cut(self.and_, p, depth + 1)
            items.append(node)
        return (items[0] if len(items) == 1 else Or(tuple(items))), pos

    def and_(self, pos: int, depth: int) -> tuple[Expr, int]:
        if depth > MAX_FILTER_DEPTH:
            raise self.err("DepthLimitReached", pos)
        node, pos = self.not_(pos, depth + 1)
        items = [node]
        while True:
            p = self.kw(pos, "AND")
            if p is None:
                break
            node, pos = self.cut(self.not_, p, depth + 1)
            items.append(node)
        return (items[0] if len(items) == 1 else And(tuple(items))), pos

    def not_(self, pos: int, depth: int) -> tuple[Expr, int]:
        if depth > MAX_FILTER_DEPTH:
            raise self.err("DepthLimitReached", pos)
        p = self.kw(pos, "NOT")
        if p is not None:
            node, p = self.cut(self.not_, p, depth + 1)
            return (node.item if isinstance(node, Not) else Not(node)), p
        return self.primary(pos, depth + 1)

    @staticmethod
    def cut(fn: Callable[[int, int], tuple[Expr, int]], pos: int, depth: int) -> tuple[Expr, int]:
        try:
            return fn(pos, depth)
        except _PErr as e:
            e.fail = True
            raise

    def primary(self, pos: int, depth: int) -> tuple[Expr, int]:
        if depth > MAX_FILTER_DEPTH:
            raise self.err("DepthLimitReached", pos)
        s, n = self.s, self.n
        p = self.ws0(pos)
        if p < n and s[p] == "(":
            inner, close = self.cut(self.expression, self.ws0(p + 1), depth + 1)
            close = self.ws0(close)
            if close < n and s[close] == ")":
                return inner, self.ws0(close + 1)
            raise self.err("MissingClosingDelimiter", pos, arg=")", fail=True)
        w_end = self.word_end(p)
        word = s[p:w_end]
        if word == "_geoRadius":
            return self.geo_radius(pos, w_end)
        if word == "_geoBoundingBox":
            return self.geo_bbox(pos, w_end)
        if word == "_geoPolygon":
            return self.geo_polygon(pos, w_end)
        if word == "_foreign" and s.startswith("(", w_end):
            # filter-parser tries `_foreign(` after every condition, which all fail on `(`
            return self.foreign(pos, w_end, depth)
        try:
            attr, a_start, a_end, p = self.value(pos)
        except _PErr as e:
            if e.fail:
                raise
            if e.kind == "ExpectedValue" and e.arg == "keyword":
                e.fail = True
                raise
            raise self.err("InvalidPrimary", pos) from None
        node: Expr | None = None
        # IN / NOT IN
        q = self.kw(p, "IN")
        if q is not None:
            values, p = self.in_body(q)
            node = In(attr, values, False)
        else:
            q = self.word_exact(p, "NOT")
            q = self.kw(q, "IN") if q is not None else None
            if q is not None:
                values, p = self.in_body(q)
                node = In(attr, values, True)
        if node is None and s.startswith("_vectors", self.ws0(pos)) and not self._condition_follows(p):
            # filter-parser tries `_vectors…` filters after IN, comparisons and IS …, before
            # EXISTS, TO and CONTAINS; past `_vectors.` its errors are final.
            got = self.vectors_exists(self.ws0(pos))
            if got is not None:
                return got
        if node is None:
            for words, op, negated in (
                (("CONTAINS",), "CONTAINS", False),
                (("NOT", "CONTAINS"), "CONTAINS", True),
                (("STARTS", "WITH"), "STARTS WITH", False),
                (("NOT", "STARTS", "WITH"), "STARTS WITH", True),
            ):
                q = self.tags(p, *words)
                if q is not None and (q >= n or s[q].isspace() or s[q] in "'\""):
                    try:
                        val, _, _, q2 = self.value(q)
                    except _PErr as e:
                        e.fail = True
                        raise
                    node = Contains(attr, op, val, negated)
                    self.keywords.append((node, p, q))
                    p = q2
                    break
        if node is None:
            for op in ("<=", ">=", "!=", "<", ">", "="):
                if s.startswith(op, p):
                    try:
                        val, _, _, p = self.value(p + len(op))
                    except _PErr as e:
                        e.fail = True
                        raise
                    node = Compare(attr, op, val)
                    break
        if node is None:
            for words, make in (
                (("IS", "NULL"), lambda: IsNull(attr, False)),
                (("IS", "NOT", "NULL"), lambda: IsNull(attr, True)),
                (("IS", "EMPTY"), lambda: IsEmpty(attr, False)),
                (("IS", "NOT", "EMPTY"), lambda: IsEmpty(attr, True)),
                (("EXISTS",), lambda: Exists(attr, False)),
                (("NOT", "EXISTS"), lambda: Exists(attr, True)),
            ):
                q = self.tags(p, *words)
                if q is not None:
                    node, p = make(), q
                    break
        if node is None:
            try:
                low, _, _, q = self.value(p)
            except _PErr as e:
                if e.fail:
                    raise
                q = None
            if q is not None:
                q = self.tags(q, "TO", "")  # "TO" multispace1
            if q is not None:
                try:
                    high, _, _, p = self.value(q)
                except _PErr as e:
                    e.fail = True
                    raise
                node = Range(attr, low, high)
        if node is None:
            raise self.err("InvalidPrimary", pos)
        self.spans.append((node, a_start, a_end))
        return node, p

    def foreign(self, pos: int, after_word: int, depth: int) -> tuple[Expr, int]:
        """`_foreign(` value `,` expression `)`; past `_foreign(` every error is final."""
        s = self.s
        marks = (len(self.spans), len(self.keywords), len(self.geo_args), len(self.names))
        try:
            attr, a_start, a_end, p = self.value(after_word + 1)
            if not s.startswith(",", p):
                raise self.err("Foreign", after_word)
            inner, p = self.expression(self.ws0(p + 1), depth + 1)
            p = self.ws0(p)
            if not s.startswith(")", p):
                raise self.err("Foreign", after_word)
        except _PErr as e:
            if e.fail:
                raise
            raise self.err("Foreign", after_word, fail=True) from None
        node = Foreign(attr, inner)
        self.spans.append((node, a_start, a_end))
        lists: tuple[list[Any], ...] = (self.spans, self.keywords, self.geo_args, self.names)
        for got, mark in zip(lists, marks, strict=True):
            for entry in got[mark:]:
                self.shown_from.setdefault(id(entry[0]), pos)
        return node, self.ws0(p + 1)

    def _condition_follows(self, p: int) -> bool:
        """Whether a comparison or an IS … condition starts at p (after an attribute)."""
        if any(self.s.startswith(op, p) for op in ("<=", ">=", "!=", "<", ">", "=")):
            return True
        return any(
            self.tags(p, *words) is not None
            for words in (("IS", "NULL"), ("IS", "NOT", "NULL"), ("IS", "EMPTY"), ("IS", "NOT", "EMPTY"))
        )

    def vector_value(self, pos: int) -> tuple[str, int, int, int]:
        """vector_value = non_dot_word | 'quoted' | "quoted"  ->  (text, start, end, next).
        Raises _PErr "quotes" for an unclosed quote, "none" for no value or a bad escape."""
        s, n = self.s, self.n
        c = s[pos] if pos < n else ""
        if c == "'" or c == '"':
            i = pos + 1
            while i < n and s[i] != c:
                i += 2 if s[i] == "\\" else 1
            if i >= n:
                raise self.err("quotes", pos)
            raw, start, end, nxt = s[pos + 1 : i], pos + 1, i, i + 1
        else:
            end = pos
            while end < n and _is_value_char(s[end]) and s[end] != ".":
                end += 1
            if end == pos:
                raise self.err("none", pos)
            raw, start, nxt = s[pos:end], pos, end
        if "\\" in raw:
            try:
                raw = _unescape(raw)
            except _BadEscape:
                raise self.err("none", pos) from None
        return raw, start, end, nxt

    def vector_name(self, pos: int, kind: str) -> tuple[str, int, int, int]:
        """parse_vector_value_cut: a vector value or a final error of the given kind."""
        try:
            return self.vector_value(pos)
        except _PErr as e:
            raise self.err("VectorFilterInvalidQuotes" if e.kind == "quotes" else kind, pos, fail=True) from None

    def vectors_exists(self, pos: int) -> tuple[Expr, int] | None:
        """`_vectors[.name[.suffix]] (EXISTS | NOT EXISTS)`; None when it is not one
        (`_vectorsX …` is an ordinary attribute)."""
        s = self.s
        fid = pos
        p = pos + len("_vectors")
        q = self.ws0(p)
        embedder: str | None = None
        kind, fragment = "", None
        names = [0, 0, 0, 0]  # where the embedder and fragment names sit
        if q > p:
            p = q
        else:
            if not s.startswith(".", p):
                return None
            p += 1
            if s.startswith(" ", p):
                raise self.err("VectorFilterMissingEmbedder", p, p + 1, fail=True)
            embedder, names[0], names[1], p = self.vector_name(p, "VectorFilterInvalidEmbedder")
            if s.startswith(".fragments", p):
                p += len(".fragments")
                if not s.startswith(".", p):
                    raise self.err("VectorFilterMissingFragment", p, fail=True)
                kind = "fragments"
                fragment, names[2], names[3], p = self.vector_name(p + 1, "VectorFilterInvalidFragment")
            else:
                for word in ("userProvided", "documentTemplate", "regenerate"):
                    if s.startswith("." + word, p):
                        kind, p = word, p + 1 + len(word)
                        break
            if s.startswith(".", p):
                try:
                    value, start, end, _ = self.vector_value(p + 1)
                except _PErr:
                    value, start, end = ".", p, p + 1
                raise self.err("VectorFilterUnknownSuffix", start, end, arg=f"{kind}\0{value}", fail=True)
            q = self.ws0(p)
            if q == p:
                raise self.err("VectorFilterLeftover", p, fail=True)
            p = q
        negated = False
        if s.startswith("EXISTS", p):
            p += len("EXISTS")
        else:
            after = self.tags(p, "NOT", "EXISTS")
            if after is None:
                raise self.err("VectorFilterOperation", p, fail=True)
            negated, p = True, after
        node = VectorExists(embedder, kind, fragment, negated)
        self.spans.append((node, fid, fid + len("_vectors")))
        self.names.append((node, tuple(names)))
        return node, p

    def in_body(self, pos: int) -> tuple[tuple[str, ...], int]:
        """After `IN` and its whitespace: "[" value_list "]" (every error is final)."""
        s, n = self.s, self.n
        if pos >= n or s[pos] != "[":
            raise self.err("InOpeningBracket", pos, fail=True)
        p = pos + 1
        values: list[str] = []
        try:
            v, _, _, p = self.value(p)
            values.append(v)
        except _PErr as e:
            if e.fail:
                raise
        else:
            while True:
                q = self.ws0(p)
                if q < n and s[q] == ",":
                    try:
                        v, _, _, q = self.value(self.ws0(q + 1))
                    except _PErr as e:
                        if e.fail:
                            raise
                        break
                    values.append(v)
                    p = q
                else:
                    break
            q = self.ws0(p)
            if q < n and s[q] == ",":
                p = self.ws0(q + 1)
        q = self.ws0(p)
        if q < n and s[q] == "]":
            return tuple(values), self.ws0(q + 1)
        if p >= n:
            raise self.err("InClosingBracket", p, fail=True)
        raise self.err("InExpectedValue", p, fail=True)

    def floats(self, pos: int) -> tuple[list[tuple[str, int, int]], int]:
        """separated_list1(",", ws(float)) -> ([(text, start, end)], next). An empty list
        failed at `next`; a float missing after a comma ends the list before the comma
        (nom backtracks there), so the caller's next expectation fails at the comma."""
        s = self.s
        out: list[tuple[str, int, int]] = []
        p = self.ws0(pos)
        m = _FLOAT_RE.match(s, p)
        if not m:
            return out, p
        while True:
            out.append((m.group(), p, m.end()))
            after = self.ws0(m.end())
            if not s.startswith(",", after):
                return out, after
            q = self.ws0(after + 1)
            nxt = _FLOAT_RE.match(s, q)
            if not nxt:
                return out, after
            p, m = q, nxt

    def geo_radius(self, pos: int, after_word: int) -> tuple[Expr, int]:
        s = self.s
        if not s.startswith("(", after_word):
            raise self.err("GeoRadius", after_word, fail=True)
        args, p = self.floats(after_word + 1)
        if not args or not s.startswith(")", p):
            raise self.err("GeoRadius", p, fail=True)
        p += 1
        if not 3 <= len(args) <= 4:
            raise self.err("GeoRadiusArgumentCount", p, arg=str(len(args)), fail=True)
        node = Geo("_geoRadius", tuple(a[0] for a in args))
        self.spans.append((node, args[0][1], args[0][2]))
        self.geo_args.append((node, tuple((a[1], a[2]) for a in args)))
        return node, p

    def float_lists(
        self, after_word: int, kind: str, trailing_comma: bool
    ) -> tuple[list[list[tuple[str, int, int]]], int]:
        """``(`` ``[`` floats ``]`` (``,`` ``[`` floats ``]``)* ``)`` -> (lists, next); a
        `kind` failure where the parse stops, as nom's positions go."""
        s = self.s
        if not s.startswith("(", after_word):
            raise self.err(kind, after_word, fail=True)
        lists: list[list[tuple[str, int, int]]] = []
        p = after_word + 1
        cur = p
        while True:
            q = self.ws0(p)
            fail_at = q
            if s.startswith("[", q):
                items, r = self.floats(q + 1)
                fail_at = r
                if items and s.startswith("]", r):
                    lists.append(items)
                    cur = self.ws0(r + 1)
                    if s.startswith(",", cur):
                        p = cur + 1
                        continue
                    break
            if not lists:
                raise self.err(kind, fail_at, fail=True)
            break  # an element missing after a comma: back before the comma
        if trailing_comma and s.startswith(",", cur):
            cur = self.ws0(cur + 1)
        if not s.startswith(")", cur):
            raise self.err(kind, cur, fail=True)
        return lists, cur + 1

    def coordinates_not_pair(self, lists: list[list[tuple[str, int, int]]], p: int) -> None:
        for a in lists:
            if len(a) != 2:
                raise self.err("GeoCoordinatesNotPair", a[0][1], a[0][2], arg=str(len(a)), fail=True)

    def geo_bbox(self, pos: int, after_word: int) -> tuple[Expr, int]:
        pairs, p = self.float_lists(after_word, "GeoBoundingBox", trailing_comma=False)
        if len(pairs) != 2:
            raise self.err("GeoBoundingBox", p, fail=True)
        self.coordinates_not_pair(pairs, p)
        args = pairs[0] + pairs[1]
        node = Geo("_geoBoundingBox", tuple(a[0] for a in args))
        self.spans.append((node, args[0][1], args[0][2]))
        self.geo_args.append((node, tuple((a[1], a[2]) for a in args)))
        return node, p

    def geo_polygon(self, pos: int, after_word: int) -> tuple[Expr, int]:
        points, p = self.float_lists(after_word, "GeoPolygon", trailing_comma=True)
        if len(points) < 3:
            last = points[-1][-1]
            raise self.err("GeoPolygonNotEnoughPoints", last[1], last[2], arg=str(len(points)), fail=True)
        self.coordinates_not_pair(points, p)
        args = [a for pair in points for a in pair]
        node = Geo("_geoPolygon", tuple(a[0] for a in args))
        self.spans.append((node, args[0][1], args[0][2]))
        self.geo_args.append((node, tuple((a[1], a[2]) for a in args)))
        return node, p


# A filtered search reads its filter more than once (Miroir's own attribute checks, the
# primary-key pin, the vector-filter check) and clients repeat filters: the parse of a
# string is kept (its tree is immutable; its spans live as long as it does). Bounded.
@functools.lru_cache(maxsize=1024)
def _parse_string(source: str) -> Expr | None:
    if not source.strip():
        return None
    parser = _Parser(source)
    try:
        node, pos = parser.expression(0, 0)
        if pos != parser.n:
            raise parser.err("ExpectedEof", pos)
    except _PErr as e:
        ctx = source[e.start : e.end]
        raise FilterError(_describe(e.kind, e.arg, ctx) + "\n" + _position(source, e.start, e.end)) from None
    shown = parser.shown_from

    def src(leaf: Any) -> str:
        at = shown.get(id(leaf))
        return source if at is None else _shown(source, at)

    for leaf, start, end in parser.spans:
        _remember_span(leaf, src(leaf), start, end)
    for leaf, arg_spans in parser.geo_args:
        key = id(leaf)
        _GEO_ARG_SPANS[key] = (src(leaf), arg_spans)
        weakref.finalize(leaf, _GEO_ARG_SPANS.pop, key, None)
    for leaf, start, end in parser.keywords:
        key = id(leaf)
        _KEYWORD_SPANS[key] = (src(leaf), start, end)
        weakref.finalize(leaf, _KEYWORD_SPANS.pop, key, None)
    for leaf, names in parser.names:
        key = id(leaf)
        _NAME_SPANS[key] = (src(leaf), names)
        weakref.finalize(leaf, _NAME_SPANS.pop, key, None)
    return node


def _json_text(value: Any) -> str:
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


def _bad_shape(expected: str, value: Any) -> FilterError:
    return FilterError(f"Invalid syntax for the filter parameter: `expected {expected}, found: {_json_text(value)}`.")


def check_filter_shape(value: Any, code: str) -> None:
    """A filter that is neither a string nor an array (nor null), refused as 1.50 does."""
    if value is not None and not isinstance(value, (str, list)):
        raise _bad_shape("String, Array", value).with_code(code)


def parse_filter(value: str | list[Any] | None) -> Expr | None:
    """Parse a filter in string or array form; None when there is no filter.

    Array form: outer elements are ANDed; an inner array ORs its strings.
    Raises FilterError with Meilisearch's message.
    """
    if value is None:
        return None
    if isinstance(value, str):
        return _parse_string(value)
    if not isinstance(value, list):
        raise _bad_shape("String, Array", value)
    ands: list[Expr] = []
    for element in value:
        if isinstance(element, str):
            node = _parse_string(element)
            if node is not None:
                ands.append(node)
        elif isinstance(element, list):
            ors: list[Expr] = []
            for rule in element:
                if not isinstance(rule, str):
                    raise _bad_shape("String", rule)
                node = _parse_string(rule)
                if node is not None:
                    ors.append(node)
            if len(ors) == 1:
                ands.append(ors[0])
            elif ors:
                ands.append(Or(tuple(ors)))
        else:
            raise _bad_shape("String, [String]", element)
    if not ands:
        return None
    return ands[0] if len(ands) == 1 else And(tuple(ands))


# --------------------------------------------------------------------------- serialisation

_BARE_RE = re.compile(r"[A-Za-z0-9_.\-]+")


def _quote(text: str) -> str:
    if (
        _BARE_RE.fullmatch(text)
        and text not in _QUOTE_WORDS
        and not text.startswith(("_geoPoint", "_geoDistance"))
    ):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_filter_string(expr: Expr | None) -> str:
    """Meilisearch syntax for expr; ``parse_filter(to_filter_string(e)) == e``."""
    # Bare class patterns: sub-patterns would cost an attribute lookup per case tried.
    match expr:
        case None:
            return ""
        case Compare():
            return f"{_quote(expr.attr)} {expr.op} {_quote(expr.value)}"
        case Range():
            return f"{_quote(expr.attr)} {_quote(expr.low)} TO {_quote(expr.high)}"
        case In():
            kw = "NOT IN" if expr.negated else "IN"
            return f"{_quote(expr.attr)} {kw} [{', '.join(_quote(v) for v in expr.values)}]"
        case Exists():
            return f"{_quote(expr.attr)} {'NOT EXISTS' if expr.negated else 'EXISTS'}"
        case IsNull():
            return f"{_quote(expr.attr)} {'IS NOT NULL' if expr.negated else 'IS NULL'}"
        case IsEmpty():
            return f"{_quote(expr.attr)} {'IS NOT EMPTY' if expr.negated else 'IS EMPTY'}"
        case Contains():
            return f"{_quote(expr.attr)} {'NOT ' if expr.negated else ''}{expr.op} {_quote(expr.value)}"
        case VectorExists():
            return f"{_vector_path(expr)} {'NOT EXISTS' if expr.negated else 'EXISTS'}"
        case Geo():
            a = expr.args
            if expr.kind == "_geoRadius":
                return f"_geoRadius({', '.join(a)})"
            if expr.kind == "_geoPolygon":
                return f"_geoPolygon({', '.join(f'[{a[i]}, {a[i + 1]}]' for i in range(0, len(a), 2))})"
            return f"_geoBoundingBox([{a[0]}, {a[1]}], [{a[2]}, {a[3]}])"
        case Not():
            return f"NOT {_wrap(expr.item)}"
        case Foreign():
            return f"_foreign({_quote(expr.attr)}, {to_filter_string(expr.item)})"
        case And():
            return " AND ".join(_wrap(i) for i in expr.items)
        case Or():
            return " OR ".join(_wrap(i) for i in expr.items)
    raise TypeError(f"not a filter expression: {expr!r}")


def _vector_path(expr: VectorExists) -> str:
    """`_vectors."name".suffix` with names JSON-quoted, as milli writes them back."""
    out = "_vectors"
    if expr.embedder is not None:
        out += "." + json.dumps(expr.embedder, ensure_ascii=False)
    if expr.kind == "fragments":
        out += ".fragments." + json.dumps(expr.fragment, ensure_ascii=False)
    elif expr.kind:
        out += "." + expr.kind
    return out


def _wrap(expr: Expr) -> str:
    text = to_filter_string(expr)
    return f"({text})" if isinstance(expr, And | Or | Not) else text


def and_filters(*filters: str | list[Any] | None) -> str | list[Any] | None:
    """AND filters (string or array form) into one value Meilisearch accepts.

    The result is in array form when two or more filters are non-empty: each string
    filter becomes one outer (AND) element and each array filter contributes its outer
    elements unchanged, so its inner (OR) arrays keep their meaning.
    """
    present = [f for f in filters if f is not None and not (isinstance(f, str) and not f.strip()) and f != []]
    if not present:
        return None
    if len(present) == 1:
        return present[0]
    out: list[Any] = []
    for f in present:
        if isinstance(f, list):
            out.extend(f)
        else:
            out.append(f)
    return out


def shard_filter(shards: list[int]) -> str:
    """``_miroir_shard IN [1, 5, 9]`` (sorted, unique)."""
    return f"_miroir_shard IN [{', '.join(str(s) for s in sorted(set(shards)))}]"


# --------------------------------------------------------------------------- analysis


Leaf = Compare | Range | In | Exists | IsNull | IsEmpty | Geo | Contains | VectorExists


def _walk(expr: Expr | None) -> Iterator[Leaf]:
    """The conditions of expr, left to right."""
    if expr is None:
        return
    stack: list[Expr] = [expr]
    while stack:
        match e := stack.pop():
            case And() | Or():
                stack.extend(reversed(e.items))
            case Not():
                stack.append(e.item)
            case Foreign():
                pass  # its attributes are the foreign index's; resolved before any check
            case _:
                yield e


def _leaf_attr(leaf: Leaf) -> str:
    """The attribute a condition reads; for geo filters the name 1.50's errors give:
    ``_geo/_geojson`` (either makes `_geoRadius` and `_geoBoundingBox` filterable) or
    ``_geojson`` (`_geoPolygon` reads shapes only)."""
    if isinstance(leaf, Geo):
        return "_geojson" if leaf.kind == "_geoPolygon" else "_geo/_geojson"
    return "_vectors" if isinstance(leaf, VectorExists) else leaf.attr


def _geo_filterable(leaf: Geo, filterable: Sequence[Rule]) -> bool:
    if leaf.kind == "_geoPolygon":
        return is_filterable(filterable, "_geojson")
    return is_filterable(filterable, "_geo") or is_filterable(filterable, "_geojson")


def filter_attributes(expr: Expr | None) -> set[str]:
    """Attribute names expr reads; ``_geo`` (and ``_geojson``) for geo filters."""
    out: set[str] = set()
    for e in _walk(expr):
        if isinstance(e, Geo):
            out.update(("_geojson",) if e.kind == "_geoPolygon" else ("_geo", "_geojson"))
        else:
            out.add(_leaf_attr(e))
    return out


def attribute_uses(expr: Expr | None) -> list[tuple[str, str | None]]:
    """(attribute, its position as Meilisearch's errors show it) for every condition of
    expr, in the order Meilisearch checks them for filterability (geo filters last)."""
    out: list[tuple[str, str | None]] = []
    for leaf in _geo_last(expr):
        span = _SPANS.get(id(leaf))
        out.append((_leaf_attr(leaf), _position(*span) if span is not None else None))
    return out


def _geo_last(expr: Expr | None) -> list[Leaf]:
    """The conditions of expr in the order Meilisearch checks them: geo filters last."""
    leaves = list(_walk(expr))
    return [e for e in leaves if not isinstance(e, Geo)] + [e for e in leaves if isinstance(e, Geo)]


def check_filterable(expr: Expr | None, filterable: Sequence[Rule]) -> None:
    """Raise Meilisearch's error for the first attribute expr uses that is not filterable.

    Rules as Meilisearch 1.50 reads them (core/patterns.py): a plain ``a`` allows ``a``
    and ``a.b``; pattern rules honour ``*``, ``prefix*``, ``*suffix`` and ``*infix*``; the
    first matching rule decides. Geo filters need ``_geo`` (checked after the others, as
    Meilisearch does).
    """
    patterns = filterable_patterns(filterable)
    for leaf in _geo_last(expr):
        attr = _leaf_attr(leaf)
        if isinstance(leaf, Geo):
            # milli evaluates a geo filter's arguments before its filterability, except
            # `_geoPolygon`'s, read once `_geojson` is known to be filterable.
            if leaf.kind != "_geoPolygon":
                _compile_geo(leaf)
            if _geo_filterable(leaf, filterable):
                continue
        elif attr == "_vectors" or is_filterable(filterable, attr):
            continue  # milli lets any filter name `_vectors` through
        message = not_filterable_text(attr, sorted(set(patterns)))
        span = _SPANS.get(id(leaf))
        if span is not None:
            message += "\n" + _position(*span)
        raise index_scoped(FilterError(message))


def _operator_needs(leaf: Leaf) -> tuple[str, str] | None:
    """(operator as milli names it, the filter feature it needs) for a condition that
    needs equality or comparison; None for the others."""
    match leaf:
        case Compare():
            return leaf.op, "equality" if leaf.op in ("=", "!=") else "comparison"
        case Range():
            return "TO", "comparison"
        case In():
            return "=", "equality"  # milli evaluates IN as one `=` per value
    return None


def check_filter_features(expr: Expr | None, rules: Sequence[Rule], fields: Container[str]) -> None:
    """milli's error for an operator the matching `filterableAttributes` rule does not
    enable (`features.filter.equality` / `comparison`). As milli, only for an attribute
    some document has (an unknown one matches nothing); after `check_filterable`."""
    for leaf in _walk(expr):
        needs = _operator_needs(leaf)
        if needs is None or _leaf_attr(leaf) not in fields:
            continue
        attr, (operator, feature) = _leaf_attr(leaf), needs
        found = filter_features(rules, attr)
        if found is None:
            continue
        i, equality, comparison = found
        if (equality if feature == "equality" else comparison):
            continue
        allowed = ["OR", "AND", "NOT"]
        if equality:
            allowed += ["=", "!=", "IN"]
        if comparison:
            allowed += ["<", ">", "<=", ">=", "TO"]
        if equality or comparison:
            allowed += ["IS EMPTY", "IS NULL", "EXISTS"]
        raise index_scoped(
            FilterError(
                f"Filter operator `{operator}` is not allowed for the attribute `{attr}`.\n"
                f"  - Note: allowed operators: {', '.join(allowed)}.\n"
                f"  - Note: field `{attr}` matched rule #{i} in `filterableAttributes`\n"
                f"  - Hint: enable {feature} in rule #{i} by modifying the features.filter object\n"
                f"  - Hint: prepend another rule matching `{attr}` with appropriate filter features before rule #{i}"
            )
        )


def _escaped(fragment: str) -> str:
    return json.dumps(fragment, ensure_ascii=False)


def index_filter_string(expr: Expr) -> str:
    """The text 1.50's search re-serializes a parsed filter to before it runs it (milli's
    `serialize_index_filter_to_filter_string`): every attribute and value quoted, each
    operand of AND / OR and the target of NOT in parentheses."""
    match expr:
        case Compare():
            return f"{_escaped(expr.attr)} {expr.op} {_escaped(expr.value)}"
        case Range():
            return f"{_escaped(expr.attr)} {_escaped(expr.low)} TO {_escaped(expr.high)}"
        case In():
            text = f"{_escaped(expr.attr)} IN [{', '.join(_escaped(v) for v in expr.values)}]"
            return f"NOT ({text})" if expr.negated else text
        case Exists() | IsNull() | IsEmpty():
            word = {Exists: "EXISTS", IsNull: "IS NULL", IsEmpty: "IS EMPTY"}[type(expr)]
            text = f"{_escaped(expr.attr)} {word}"
            return f"NOT ({text})" if expr.negated else text
        case Contains():
            text = f"{_escaped(expr.attr)} {expr.op} {_escaped(expr.value)}"
            return f"NOT ({text})" if expr.negated else text
        case Geo():
            a = expr.args
            if expr.kind == "_geoRadius":
                return f"_geoRadius({', '.join(a)})"
            if expr.kind == "_geoPolygon":  # as 1.50 writes it, a trailing comma included
                return "_geoPolygon([" + "".join(f"[{a[i]}, {a[i + 1]}], " for i in range(0, len(a), 2)) + "])"
            return f"_geoBoundingBox([{a[0]}, {a[1]}], [{a[2]}, {a[3]}])"
        case Not():
            return f"NOT ({index_filter_string(expr.item)})"
        case Foreign():
            return f"_foreign({_escaped(expr.attr)}, {index_filter_string(expr.item)})"
        case And():
            return " AND ".join(f"({index_filter_string(i)})" for i in expr.items)
        case Or():
            return " OR ".join(f"({index_filter_string(i)})" for i in expr.items)
    raise TypeError(f"not a filter expression: {expr!r}")


def check_search_filterable(expr: Expr | None, filterable: Sequence[Rule]) -> None:
    """`check_filterable` as 1.50's search words it: its position line points into the
    re-serialized filter (`index_filter_string`), not into the filter as sent."""
    try:
        check_filterable(expr, filterable)
    except FilterError as sent:
        assert expr is not None
        try:
            again = parse_filter(index_filter_string(expr))
        except FilterError:
            raise sent from None
        check_filterable(again, filterable)
        raise


_ID_RE = re.compile(r"[A-Za-z0-9_\-]+")


def _pin_candidates(text: str) -> set[str] | None:
    """Document ids (canonical strings) that ``pk = text`` can match; None if unbounded.

    Meilisearch compares strings case-insensitively after trimming, and numbers
    numerically, so ``id = ABC`` also matches ``abc`` and ``id = 1.0`` matches ``1``.
    Values with letters therefore do not pin (their case variants are unbounded).
    """
    v = text.strip()
    if any(c.isalpha() for c in v):
        return None
    out: set[str] = set()
    if _ID_RE.fullmatch(v):
        out.add(v)
    num = _parse_number(v)
    if num is not None:
        if abs(num) >= 2**53:
            return None  # f64 equality would match several integers
        if num == int(num):
            out.add(str(int(num)))
    return out


def pinned_keys(expr: Expr | None, primary_key: str) -> list[str] | None:
    """The finite set of primary keys every match must have (sorted), or None."""
    pins = _pins(expr, primary_key) if expr is not None else None
    return None if pins is None else sorted(pins)


def _pins(expr: Expr, pk: str) -> set[str] | None:
    match expr:
        case Compare():
            return _pin_candidates(expr.value) if expr.attr == pk and expr.op == "=" else None
        case In():
            if expr.attr != pk or expr.negated:
                return None
            out: set[str] = set()
            for v in expr.values:
                c = _pin_candidates(v)
                if c is None:
                    return None
                out |= c
            return out
        case And():
            result: set[str] | None = None
            for item in expr.items:
                p = _pins(item, pk)
                if p is not None:
                    result = p if result is None else (result & p)
            return result
        case Or():
            union: set[str] = set()
            for item in expr.items:
                p = _pins(item, pk)
                if p is None:
                    return None
                union |= p
            return union
    return None


# --------------------------------------------------------------------------- evaluation


def _parse_number(text: str) -> float | None:
    """Rust's ``str::parse::<f64>`` restricted to finite values, as parse_finite_float."""
    if not _NUMBER_RE.fullmatch(text):
        return None
    value = float(text)
    return value if math.isfinite(value) else None


def _normalize(text: str) -> str:
    """milli's normalize_facet: trim, then lowercase (no accent folding)."""
    return text.strip().lower()


_MISSING = object()


def _resolve_into(obj: Doc, path: str, out: list[Any]) -> None:
    """Values at a dotted path, through nested objects, arrays of objects and keys that
    themselves contain dots (Meilisearch flattens documents before faceting)."""
    if path in obj:
        out.append(obj[path])
    i = path.find(".")
    while i != -1:
        head = path[:i]
        if head in obj:
            _descend(obj[head], path[i + 1 :], out)
        i = path.find(".", i + 1)


def values_at(doc: Doc, path: str) -> list[Any]:
    """Every value at a dotted path, as the filter sees them (`_resolve_into`)."""
    out: list[Any] = []
    _resolve_into(doc, path, out)
    return out


def _descend(value: Any, rest: str, out: list[Any]) -> None:
    if type(value) is dict:
        _resolve_into(value, rest, out)
    elif type(value) is list:
        for element in value:
            _descend(element, rest, out)


def _any_value(attr: str, test: Callable[[Any], bool]) -> Predicate:
    """Predicate over documents: some value of attr satisfies test."""
    if "." not in attr:

        def pred(doc: Doc) -> bool:
            v = doc.get(attr, _MISSING)
            return v is not _MISSING and test(v)

        return pred

    def pred_nested(doc: Doc) -> bool:
        found: list[Any] = []
        _resolve_into(doc, attr, found)
        for v in found:
            if test(v):
                return True
        return False

    return pred_nested


def _scalar_test(on_str: Callable[[str], bool], on_num: Callable[[float], bool] | None) -> Callable[[Any], bool]:
    """A value test from tests on normalized strings and on numbers. Arrays match when an
    element matches; booleans are the strings "true"/"false"; null and objects never."""

    def test(v: Any) -> bool:
        t = type(v)
        if t is str:
            return on_str(v.strip().lower())
        if t is int or t is float:
            return on_num is not None and on_num(v)
        if t is bool:
            return on_str("true" if v else "false")
        if t is list:
            for x in v:
                if type(x) is not list and test(x):
                    return True
                if type(x) is list and test(x):  # flatten nested arrays
                    return True
            return False
        return False

    return test


def _compile_equal(attr: str, value: str) -> Predicate:
    norm = _normalize(value)
    num = _parse_number(value)
    return _any_value(attr, _scalar_test(norm.__eq__, None if num is None else num.__eq__))


def _compile_in(attr: str, values: tuple[str, ...]) -> Predicate:
    strings = frozenset(_normalize(v) for v in values)
    numbers = frozenset(n for n in (_parse_number(v) for v in values) if n is not None)
    return _any_value(attr, _scalar_test(strings.__contains__, numbers.__contains__ if numbers else None))


def _bounds(lo: Any, lo_incl: bool, hi: Any, hi_incl: bool) -> Callable[[Any], bool] | None:
    """x within the bounds (None = unbounded); None when the range is empty."""
    if lo is not None and hi is not None and (lo > hi or (lo == hi and not (lo_incl and hi_incl))):
        return None
    if lo is None:
        return (lambda x: x <= hi) if hi_incl else (lambda x: x < hi)
    if hi is None:
        return (lambda x: x >= lo) if lo_incl else (lambda x: x > lo)
    if lo_incl and hi_incl:
        return lambda x: lo <= x <= hi
    if lo_incl:
        return lambda x: lo <= x < hi
    if hi_incl:
        return lambda x: lo < x <= hi
    return lambda x: lo < x < hi


def _compile_range(attr: str, lo: str | None, lo_incl: bool, hi: str | None, hi_incl: bool) -> Predicate:
    # milli: a numeric range when the bounds are numbers, and always a string range on
    # the raw (not normalized) bounds against the normalized facet strings.
    lo_n = None if lo is None else _parse_number(lo)
    hi_n = None if hi is None else _parse_number(hi)
    numeric_ok = (lo is None or lo_n is not None) and (hi is None or hi_n is not None)
    on_num = _bounds(lo_n, lo_incl, hi_n, hi_incl) if numeric_ok else None
    on_str = _bounds(lo, lo_incl, hi, hi_incl) or (lambda s: False)
    return _any_value(attr, _scalar_test(on_str, on_num))


def _compile_geo(expr: Geo) -> Predicate:
    source, arg_spans = _GEO_ARG_SPANS.get(id(expr), ("", ()))

    def at(i: int) -> str:
        return ("\n" + _position(source, *arg_spans[i])) if i < len(arg_spans) else ""

    nums = []
    for i, a in enumerate(expr.args):
        n = _parse_number(a)
        if n is None:
            raise FilterError("Non finite floats are not supported" + at(i))
        nums.append(n)

    def check_point(i: int) -> None:
        if not -90.0 <= nums[i] <= 90.0:
            raise FilterError(geo.bad_latitude(nums[i]) + at(i))
        if not -180.0 <= nums[i + 1] <= 180.0:
            raise FilterError(geo.bad_longitude(nums[i + 1]) + at(i + 1))

    if expr.kind == "_geoRadius":
        check_point(0)
        origin, radius, resolution = (nums[0], nums[1]), nums[2], 125
        if len(nums) == 4:
            resolution = max(0, int(nums[3]))  # Rust's `as usize` saturates
            if not 3 <= resolution <= 1000:
                raise FilterError(
                    f"Invalid resolution `{resolution}`. Resolution must be between 3 and 1000." + at(3)
                )

        def within(doc: Doc) -> bool:
            pt = geo.point_of(doc)
            if pt is not None:
                return geo.distance_m(origin, pt) <= radius + 2.220446049250313e-16
            shape = doc.get("_geojson")
            return shape is not None and geo.shape_within_distance(shape, origin, radius, resolution)

        return within

    if expr.kind == "_geoPolygon":
        for i in range(0, len(nums), 2):
            check_point(i)
        ring = [(nums[i + 1], nums[i]) for i in range(0, len(nums), 2)]  # (lng, lat)

        def in_polygon(doc: Doc) -> bool:
            shape = doc.get("_geojson")
            return shape is not None and geo.shape_intersects(shape, ring)

        return in_polygon

    top, right, bottom, left = nums
    check_point(0)
    check_point(2)
    if top < bottom:
        raise FilterError(
            f"The top latitude `{geo.rust_f64(top)}` is below the bottom latitude `{geo.rust_f64(bottom)}`." + at(0)
        )
    box = [(right, top), (left, top), (left, bottom), (right, bottom)]

    def inside(doc: Doc) -> bool:
        pt = geo.point_of(doc)
        if pt is None:
            shape = doc.get("_geojson")
            return shape is not None and geo.shape_intersects(shape, box)
        lat, lng = pt
        if not bottom <= lat <= top:
            return False
        if right < left:  # wraps around the antimeridian
            return lng >= left or lng <= right
        return left <= lng <= right

    return inside


def _is_empty_value(v: Any) -> bool:
    return (v == "" and type(v) is str) or ((type(v) is list or type(v) is dict) and not v)


def _negate(f: Predicate) -> Predicate:
    return lambda doc: not f(doc)


def _compile(expr: Expr) -> Predicate:
    match expr:
        case And():
            fs = tuple(_compile(i) for i in expr.items)

            def all_of(doc: Doc) -> bool:
                for f in fs:
                    if not f(doc):
                        return False
                return True

            return all_of
        case Or():
            fs = tuple(_compile(i) for i in expr.items)

            def any_of(doc: Doc) -> bool:
                for f in fs:
                    if f(doc):
                        return True
                return False

            return any_of
        case Not():
            return _negate(_compile(expr.item))
        case Compare():
            attr, v = expr.attr, expr.value
            match expr.op:
                case "=":
                    return _compile_equal(attr, v)
                case "!=":
                    return _negate(_compile_equal(attr, v))
                case ">":
                    return _compile_range(attr, v, False, None, True)
                case ">=":
                    return _compile_range(attr, v, True, None, True)
                case "<":
                    return _compile_range(attr, None, True, v, False)
                case "<=":
                    return _compile_range(attr, None, True, v, True)
            raise AssertionError(expr.op)
        case Range():
            return _compile_range(expr.attr, expr.low, True, expr.high, True)
        case In():
            f = _compile_in(expr.attr, expr.values)
            return _negate(f) if expr.negated else f
        case Exists():
            f = _any_value(expr.attr, lambda v: True)
            return _negate(f) if expr.negated else f
        case IsNull():
            f = _any_value(expr.attr, lambda v: v is None)
            return _negate(f) if expr.negated else f
        case IsEmpty():
            f = _any_value(expr.attr, _is_empty_value)
            return _negate(f) if expr.negated else f
        case Contains():
            needle = _normalize(expr.value)
            on_str = (lambda v: needle in v) if expr.op == "CONTAINS" else (lambda v: v.startswith(needle))
            f = _any_value(expr.attr, _scalar_test(on_str, None))
            return _negate(f) if expr.negated else f
        case Geo():
            return _compile_geo(expr)
        case VectorExists():
            return _vector_store_only
        case Foreign():
            raise unsupported_foreign(expr)
    raise TypeError(f"not a filter expression: {expr!r}")


def _vector_store_only(doc: Doc) -> bool:
    raise TypeError("a `_vectors` filter reads the vector store: evaluate it on id sets")


def vector_filter_position(expr: Expr | None) -> str | None:
    """The position line of the first `_vectors` filter of expr (the `multimodal`
    feature gate's error points at it), None when expr has none."""
    for leaf in _walk(expr):
        if type(leaf) is VectorExists:
            span = _SPANS.get(id(leaf))
            return _position(*span) if span is not None else ""
    return None


def _index_text(expr: Expr, out: list[str], marks: dict[int, tuple[int, int, int, int]]) -> None:
    """milli's serialize_index_filter_condition (the text its evaluation errors quote);
    marks[id(leaf)] = where each `_vectors` leaf's embedder and fragment names sit."""

    def at() -> int:
        return sum(len(x) for x in out)

    def q(text: str) -> str:
        return json.dumps(text, ensure_ascii=False)

    def negated(inner: Callable[[], None]) -> None:
        out.append("NOT (")
        inner()
        out.append(")")

    match expr:
        case Not():
            negated(lambda: _index_text(expr.item, out, marks))
        case And() | Or():
            for i, item in enumerate(expr.items):
                if i:
                    out.append(" AND " if isinstance(expr, And) else " OR ")
                out.append("(")
                _index_text(item, out, marks)
                out.append(")")
        case VectorExists():
            out.append("NOT (_vectors" if expr.negated else "_vectors")
            emb = frag = (0, 0)
            if expr.embedder is not None:
                start = at() + 2
                out.append("." + q(expr.embedder))
                emb = (start, at() - 1)
            if expr.kind == "fragments":
                out.append(".fragments.")
                start = at() + 1
                out.append(q(expr.fragment or ""))
                frag = (start, at() - 1)
            elif expr.kind:
                out.append("." + expr.kind)
            out.append(" EXISTS)" if expr.negated else " EXISTS")
            marks[id(expr)] = (*emb, *frag)
        case Compare():
            out.append(f"{q(expr.attr)} {expr.op} {q(expr.value)}")
        case Range():
            out.append(f"{q(expr.attr)} {q(expr.low)} TO {q(expr.high)}")
        case In() | Exists() | IsNull() | IsEmpty() | Contains() if expr.negated:
            negated(lambda: _index_text(type(expr)(**{**_struct_fields(expr), "negated": False}), out, marks))
        case In():
            out.append(f"{q(expr.attr)} IN [{', '.join(q(v) for v in expr.values)}]")
        case Exists():
            out.append(f"{q(expr.attr)} EXISTS")
        case IsNull():
            out.append(f"{q(expr.attr)} IS NULL")
        case IsEmpty():
            out.append(f"{q(expr.attr)} IS EMPTY")
        case Contains():
            out.append(f"{q(expr.attr)} {expr.op} {q(expr.value)}")
        case Geo() | Foreign():
            out.append(to_filter_string(expr))


def _struct_fields(expr: Any) -> dict[str, Any]:
    return {name: getattr(expr, name) for name in expr.__struct_fields__}


def check_vector_filters(expr: Expr | None, embedders: dict[str, Sequence[str]], *, serialized: bool = True) -> None:
    """Raise milli's error for the first `_vectors` filter naming an embedder the index
    lacks, or a fragment its embedder lacks. embedders: name -> its fragment names.
    The position line quotes the filter as milli serializes it before evaluating a
    search's (`serialized`), or the filter as written (`/similar` evaluates it as is)."""
    for leaf in _walk(expr):
        if type(leaf) is not VectorExists or leaf.embedder is None:
            continue
        if leaf.embedder in embedders:
            fragments = embedders[leaf.embedder]
            if leaf.kind != "fragments" or leaf.fragment in fragments:
                continue
            name = leaf.fragment or ""
            if fragments:
                listed = sorted(fragments)
                close = did_you_mean(name, listed)
                tail = "Available fragments on this embedder are: " + ", ".join(f"`{f}`" for f in listed) + "."
                tail += f" Did you mean `{close}`?" if close else ""
            else:
                tail = "This embedder does not have any configured fragments."
            message = f"The fragment `{name}` does not exist on embedder `{leaf.embedder}`. {tail}"
            which = 2
        else:
            name = leaf.embedder
            if embedders:
                listed = sorted(embedders)
                close = did_you_mean(name, listed)
                tail = "Available embedders are: " + ", ".join(f"`{e}`" for e in listed) + "."
                tail += f" Did you mean `{close}`?" if close else ""
            else:
                tail = "This index does not have any configured embedders."
            message = f"The embedder `{name}` does not exist. {tail}"
            which = 0
        if not serialized:
            got = _NAME_SPANS.get(id(leaf))
            if got is None:
                raise FilterError(message)
            source, names = got
            raise FilterError(message + "\n" + _position(source, *names[which : which + 2]))
        out: list[str] = []
        marks: dict[int, tuple[int, int, int, int]] = {}
        assert expr is not None
        _index_text(expr, out, marks)
        text = "".join(out)
        start, end = marks[id(leaf)][which : which + 2]
        raise FilterError(message + "\n" + _position(text, start, end))


def contains_keyword(expr: Expr | None) -> tuple[str, str] | None:
    """(keyword, position line) of the first CONTAINS condition of expr, for the
    `containsFilter` feature gate; None when expr has none. `STARTS WITH` is not gated
    in 1.50 (filter-parser's `use_contains_operator` names `Contains` only)."""
    inner = (leaf for node in foreign_filters(expr) for leaf in _walk(node.item))
    for leaf in itertools.chain(_walk(expr), inner):
        if type(leaf) is Contains and leaf.op == "CONTAINS":
            span = _KEYWORD_SPANS.get(id(leaf))
            return leaf.op, (_position(*span) if span is not None else "")
    return None


def foreign_filters(expr: Expr | None) -> list[Foreign]:
    """The `_foreign(...)` nodes of expr, not those inside another, in the order 1.50
    lists them (filter-parser's ForeignFilterIter: a stack, so last operand first)."""
    out: list[Foreign] = []
    stack: list[tuple[int, Expr]] = [] if expr is None else [(MAX_FILTER_DEPTH, expr)]
    while stack:
        depth, e = stack.pop()
        match e:
            case Foreign():
                out.append(e)
            case Not() if depth > 0:
                stack.append((depth - 1, e.item))
            case And() | Or() if depth > 0:
                stack.extend((depth - 1, i) for i in e.items)
    return out


def foreign_position(node: Foreign) -> str:
    """The position line of a foreign filter's field (as 1.50 quotes it)."""
    span = _SPANS.get(id(node))
    return _position(*span) if span is not None else ""


def unsupported_foreign(node: Foreign) -> FilterError:
    """1.50's answer where a foreign filter cannot run (a route that does not join)."""
    return FilterError(
        "Filter condition `_foreign` is not supported for this endpoint.\n" + foreign_position(node)
    )


def replace_foreign(expr: Expr, ids: Mapping[int, Sequence[str]]) -> Expr:
    """expr with each foreign filter (keyed by id(node)) replaced by `attr IN [ids]`."""
    match expr:
        case Foreign():
            return In(expr.attr, tuple(ids[id(expr)]))
        case Not():
            return Not(replace_foreign(expr.item, ids))
        case And():
            return And(tuple(replace_foreign(i, ids) for i in expr.items))
        case Or():
            return Or(tuple(replace_foreign(i, ids) for i in expr.items))
    return expr


def _foreign_use(expr: Expr | None) -> str | None:
    """The position line of the first foreign filter of expr, else None: 1.50 parses
    them, then refuses them unless the `foreignKeys` feature is on, at the field."""
    found = foreign_filters(expr)
    return foreign_position(found[0]) if found else None


def route_filter(value: Any, code: str, features: Mapping[str, Any]) -> Expr | None:
    """A filter as 1.50's routes read it before anything runs: its shape, its syntax, then
    the experimental features it needs (`containsFilter`, `foreignKeys`). Errors carry
    `code`, or `feature_not_enabled`."""
    try:
        expr = parse_filter(value)
    except FilterError as e:
        raise e.with_code(code) from None
    gated = contains_keyword(expr)
    if gated is not None and not features.get("containsFilter"):
        raise MeiliError(
            "feature_not_enabled",
            "Using `CONTAINS` in a filter requires enabling the `contains filter` experimental feature. "
            f"See https://github.com/orgs/meilisearch/discussions/763\n{gated[1]}",
        )
    if not features.get("foreignKeys") and "_foreign" in str(value):
        foreign = _foreign_use(expr)
        if foreign is not None:
            raise MeiliError(
                "feature_not_enabled",
                "using a foreign filter requires enabling the `foreign_keys` experimental feature. "
                f"See https://github.com/orgs/meilisearch/discussions/873\n{foreign}",
            )
    return expr


def deletion_filter(value: Any, features: Mapping[str, Any]) -> Expr:
    """The filter of `POST /documents/delete`, checked when the request comes (the task
    checks the attributes): an empty one is refused."""
    expr = route_filter(value, "invalid_document_filter", features)
    if expr is None:
        raise FilterError("Sending an empty filter is forbidden.", "invalid_document_filter")
    joins = foreign_filters(expr)
    if joins:  # 1.50 deletes from one index only (parse_local_index_filter)
        raise unsupported_foreign(joins[0]).with_code("invalid_document_filter")
    return expr


def _always(doc: Doc) -> bool:
    return True


@functools.lru_cache(maxsize=512)
def _compile_cached(expr: Expr) -> Predicate:
    return _compile(expr)


def compile_filter(expr: Expr | None) -> Predicate:
    """A fast predicate over documents with Meilisearch's semantics:

    - a field holding an array matches when one of its elements matches; dotted names
      reach into objects and arrays of objects;
    - ``=``/``IN`` compare strings after trim+lowercase (no accent folding), numbers
      numerically (``1`` matches ``1``, ``1.0`` and ``"1"``); booleans are "true"/"false";
    - ``>``/``>=``/``<``/``<=``/``TO`` compare numbers when the bound is a number, and
      always also compare the document's normalized strings to the raw bound
      lexicographically (milli >= 1.x string ranges);
    - ``!=``, ``NOT IN`` and ``NOT`` match documents without the field;
    - ``EXISTS`` is true for an explicit null; ``IS NULL`` only for null; ``IS EMPTY``
      for ``""``, ``[]`` and ``{}``.

    Raises FilterError for invalid geo arguments.
    """
    if expr is None:
        return _always
    return _compile_cached(expr)


def matches(expr: Expr | None, doc: Doc) -> bool:
    return compile_filter(expr)(doc)


def vector_filter_error(
    value: Any, *, uid: str, settings: Any, features: Any, code: str = "invalid_search_filter"
) -> MeiliError | None:
    """The error an index answers for a `_vectors` filter naming an embedder (or a
    fragment) it lacks, worded on the client's filter: a node sees Miroir's shard filter
    ANDed to it, and milli quotes the whole filter it evaluates. None when the filter
    has no such mistake, or an earlier one the nodes word themselves (syntax, feature
    gates, an attribute that is not filterable)."""
    if not _spells(value, "_vectors"):  # the vector filter's `_vectors` is never escaped
        return None
    try:
        expr = parse_filter(value)
    except FilterError:
        return None
    if vector_filter_position(expr) is None or "multimodal" not in features:
        return None
    if contains_keyword(expr) is not None and "containsFilter" not in features:
        return None
    try:
        check_filterable(expr, settings.get("filterableAttributes") or ())
    except FilterError:
        return None
    embedders = settings.get("embedders")
    names: dict[str, Sequence[str]] = {
        str(name): list((conf.get("indexingFragments") if isinstance(conf, dict) else None) or {})
        for name, conf in (embedders.items() if isinstance(embedders, dict) else ())
    }
    similar = code == "invalid_similar_filter"  # `/similar` words it as written, unprefixed
    try:
        check_vector_filters(expr, names, serialized=not similar)
    except FilterError as e:
        return MeiliError(code, e.message if similar else f"Index `{uid}`: {e.message}")
    return None


def _spells(value: Any, word: str) -> bool:
    if isinstance(value, str):
        return word in value
    return isinstance(value, list) and any(_spells(v, word) for v in value)
