"""Search requests and the sub-query each node of a covering set receives (design §6).

A client search becomes one sub-query per node of the covering set. The sub-queries are
written so that merging their answers (core/merge.py) gives exactly the page one node
holding every document would return:

- Window. Every node must return every hit that could land on the client's page, so it
  gets ``offset=0, limit=offset+limit``. Page mode keeps page mode, because only page
  mode gives an *exact* ``totalHits``: the node gets ``page=1,
  hitsPerPage=page*hitsPerPage`` and its exact ``totalHits``; Miroir sums them and
  recomputes ``totalPages`` itself.
- Ranking. ``showRankingScore`` is always on; ``showRankingScoreDetails`` only when the
  merge needs rule-by-rule details (see ``needs_ranking_details``: a custom rule or a
  sort criterion; otherwise the score alone orders the hits, ``ordered_by_score``).
- Fields. The merge compares sort values, custom ranking-rule values and distinct values
  read from the hits, so when the client narrowed ``attributesToRetrieve`` those fields
  are added (``retrieval_additions``) and the merge strips them again.
- Shards. A node may hold shards it does not answer for in this query (RF > 1,
  migrations), so ``_miroir_shard IN [...]`` is ANDed to the client's filter.
- Facets. A node cuts each facet to *its* ``maxValuesPerFacet``; summing per-node
  distributions is exact only if no node cut anything. There is no per-request knob for
  that, so the engine must configure nodes with a cap far above the client-visible
  one (the index's own ``maxValuesPerFacet`` is applied by the merge) and may check
  ``facets.distribution_is_exact`` afterwards.

Pure module: no I/O.
"""

from __future__ import annotations

import functools
import json
import os
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

import msgspec

from miroir.core import locales, reserved
from miroir.core.errors import MeiliError, body_type_error, query_bool, query_uint, type_error, unknown_param
from miroir.core.filter import FilterError, and_filters, check_search_filterable, route_filter, shard_filter
from miroir.core.jsonlimits import as_serde_numbers, nesting_error
from miroir.core.settings import DEFAULT_RANKING_RULES, hide_shard_field

NonNegInt = Annotated[int, msgspec.Meta(ge=0)]
Threshold = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]

DEFAULT_LIMIT = 20
DEFAULT_HITS_PER_PAGE = 20
SHARD_FIELD = "_miroir_shard"


class SearchRequest(msgspec.Struct, omit_defaults=True, forbid_unknown_fields=True, rename="camel"):
    """A Meilisearch 1.50 search body. Field order is Meilisearch's (it shows in errors)."""

    q: str | None = None
    offset: NonNegInt = 0
    limit: NonNegInt = DEFAULT_LIMIT
    page: NonNegInt | None = None
    hits_per_page: NonNegInt | None = None
    attributes_to_retrieve: list[str] | None = None
    attributes_to_crop: list[str] | None = None
    crop_length: NonNegInt = 10
    crop_marker: str = "…"
    attributes_to_highlight: list[str] | None = None
    highlight_pre_tag: str = "<em>"
    highlight_post_tag: str = "</em>"
    show_matches_position: bool = False
    filter: str | list | None = None
    sort: list[str] | None = None
    distinct: str | None = None
    facets: list[str] | None = None
    matching_strategy: Literal["last", "all", "frequency"] = "last"
    attributes_to_search_on: list[str] | None = None
    ranking_score_threshold: Threshold | None = None
    locales: list[str] | None = None
    # Passed through to nodes untouched; they validate embedder and semanticRatio.
    hybrid: dict[str, Any] | None = None
    vector: list[float] | None = None
    retrieve_vectors: bool = False
    # Passed through: a node without the `multimodal` feature refuses it, as 1.50 does.
    media: Any = None
    # Passed through: reranking needs a personalization key the nodes refuse without.
    personalize: dict[str, Any] | None = None
    # Accepted and never forwarded: Miroir is the network (a node would fan out again).
    use_network: bool | None = None
    show_ranking_score: bool = False
    show_ranking_score_details: bool = False
    show_performance_details: bool = False

    @property
    def page_mode(self) -> bool:
        """Meilisearch switches to exhaustive page mode as soon as either is given."""
        return self.page is not None or self.hits_per_page is not None

    def page_window(self) -> tuple[int, int]:
        """(page, hitsPerPage) with Meilisearch's defaults filled in."""
        page = 1 if self.page is None else self.page
        hpp = DEFAULT_HITS_PER_PAGE if self.hits_per_page is None else self.hits_per_page
        return page, hpp

    def window(self) -> tuple[int, int]:
        """(offset, limit) of the client's page in the global hit list, either mode."""
        if self.page_mode:
            page, hpp = self.page_window()
            if page == 0:  # Meilisearch answers page 0 with no hits
                return 0, 0
            return (page - 1) * hpp, hpp
        return self.offset, self.limit


_FIELDS = [f.encode_name for f in msgspec.structs.fields(SearchRequest)]
# The search parameters Miroir accepts, in Meilisearch's order (the devnode uses it too).
SEARCH_FIELDS: tuple[str, ...] = tuple(_FIELDS)
_EXPECTED_ONE_OF = ", ".join(f"`{f}`" for f in _FIELDS)

# What deserr says it expected, per field (and per list element).
_KIND_OF_FIELD: dict[str, str] = {
    **{f: "a positive integer" for f in ("offset", "limit", "page", "hitsPerPage", "cropLength")},
    **{f: "a string" for f in ("q", "distinct", "highlightPreTag", "highlightPostTag", "cropMarker", "matchingStrategy")},
    **{
        f: "a boolean"
        for f in ("retrieveVectors", "showMatchesPosition", "showRankingScore", "showRankingScoreDetails",
                  "useNetwork", "showPerformanceDetails")
    },
    **{
        f: "an array"
        for f in ("vector", "attributesToRetrieve", "attributesToCrop", "attributesToHighlight", "sort", "facets",
                  "attributesToSearchOn", "locales")
    },
    "hybrid": "an object",
    "personalize": "an object",
    "filter": "a string or an array",  # has its own message, see _translate
    "rankingScoreThreshold": "a number",
}

# Error codes that are not `invalid_search_` + snake_case(field).
_CODE_OVERRIDES = {"hybrid": "invalid_search_hybrid_query"}


def _error_code(field: str) -> str:
    if field in _CODE_OVERRIDES:
        return _CODE_OVERRIDES[field]
    return "invalid_search_" + re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), field)


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


_PATH_RE = re.compile(r"at `\$(.*)`$")
_STEP_RE = re.compile(r"\.([A-Za-z0-9_]+)|\[(\d+)\]")


def _translate(err: msgspec.ValidationError, raw: dict) -> MeiliError:
    """msgspec's validation error -> Meilisearch's error for the same mistake."""
    text = str(err)
    unknown = re.search(r"unknown field `(.*)`", text)
    if unknown:
        return MeiliError("bad_request", f"Unknown field `{unknown.group(1)}`: expected one of {_EXPECTED_ONE_OF}")
    m = _PATH_RE.search(text)
    path = m.group(1) if m else ""
    steps = [(a, int(b) if b else None) for a, b in _STEP_RE.findall(path)]
    if not steps or steps[0][0] not in _KIND_OF_FIELD:
        return MeiliError("bad_request", text)
    field = steps[0][0]
    value: Any = raw
    for name, index in steps:
        value = value[name] if name else value[index]
    code = _error_code(field)
    where = "." + path.lstrip(".")
    if field == "filter":
        return MeiliError(code, f"Invalid syntax for the filter parameter: `expected String, Array, found: {_compact(value)}`.")
    if field == "rankingScoreThreshold" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return MeiliError(
            code,
            "Invalid value at `.rankingScoreThreshold`: the value of `rankingScoreThreshold` is invalid, "
            "expected a float between `0.0` and `1.0`.",
        )
    if field == "matchingStrategy" and isinstance(value, str):
        return MeiliError(code, f"Unknown value `{value}` at `.matchingStrategy`: expected one of `last`, `all`, `frequency`")
    expected = _KIND_OF_FIELD[field] if len(steps) == 1 else ("a number" if field == "vector" else "a string")
    return type_error(code, where, value, expected)


def decode_search_request(body: bytes) -> SearchRequest:
    """POST /search body -> SearchRequest, or the MeiliError Meilisearch would answer.

    A valid body is decoded straight into the Struct (one pass); any failure takes the
    careful path below, which reports it as Meilisearch does.
    """
    try:
        req = _search_request_decoder.decode(body)
    except (msgspec.DecodeError, RecursionError):  # ValidationError included
        pass
    else:
        _check_request(req)
        return req
    if not body.strip():
        raise MeiliError("missing_payload", "A json payload is missing.")
    err = nesting_error(body)  # serde_json's limit, before a decode that would recurse
    if err is not None:
        raise err
    try:
        raw = as_serde_numbers(msgspec.json.decode(body), body)
    except msgspec.DecodeError as e:
        raise MeiliError("malformed_payload", f"The json payload provided is malformed. `{e}`.") from None
    if not isinstance(raw, dict):
        raise body_type_error(raw)
    return search_request_from_dict(raw)


_search_request_decoder = msgspec.json.Decoder(SearchRequest)


def search_request_from_dict(raw: dict) -> SearchRequest:
    """Already-decoded JSON object -> SearchRequest (multi-search queries come this way)."""
    try:
        req = msgspec.convert(raw, SearchRequest)
    except msgspec.ValidationError as e:
        raise _translate(e, raw) from None
    _check_request(req)
    return req


def _check_request(req: SearchRequest) -> None:
    """What deserr checks beyond the shape of the fields."""
    if req.personalize is not None:
        check_personalize(req.personalize)
    if req.locales:
        locales.check_body(req.locales, ".locales", "invalid_search_locales")


def check_personalize(value: dict) -> None:
    """1.50's checks of `personalize` (`{userContext: string}`): every mistake inside it
    carries `invalid_search_personalize` (the struct overrides its fields' codes)."""
    code = "invalid_search_personalize"
    for key in value:
        if key != "userContext":
            raise MeiliError(code, f"Unknown field `{key}` inside `.personalize`: expected one of `userContext`")
    if "userContext" not in value:
        raise MeiliError(code, "Missing field `userContext` inside `.personalize`")
    if not isinstance(value["userContext"], str):
        raise type_error(code, ".personalize.userContext", value["userContext"], "a string")


# ---------------------------------------------------------------- GET /search

_GET_LISTS = {"attributesToRetrieve", "attributesToCrop", "attributesToHighlight", "facets", "attributesToSearchOn", "locales"}
_GET_INTS = {"offset", "limit", "page", "hitsPerPage", "cropLength"}
_GET_BOOLS = {"retrieveVectors", "showMatchesPosition", "useNetwork", "showRankingScore", "showRankingScoreDetails",
              "showPerformanceDetails"}
_GET_STRINGS = {"q", "distinct", "highlightPreTag", "highlightPostTag", "cropMarker"}
# 1.50's `SearchQueryGet`, in its declaration order (the "expected one of" list).
_GET_PARAMS = [
    "q", "offset", "limit", "page", "hitsPerPage", "attributesToRetrieve", "attributesToCrop", "cropLength",
    "cropMarker", "attributesToHighlight", "highlightPreTag", "highlightPostTag", "showMatchesPosition", "filter",
    "sort", "distinct", "facets", "matchingStrategy", "attributesToSearchOn", "rankingScoreThreshold", "locales",
    "hybridEmbedder", "hybridSemanticRatio", "vector", "retrieveVectors", "personalizeUserContext", "useNetwork",
    "showRankingScore", "showRankingScoreDetails", "showPerformanceDetails",
]
_RATIO_TEXT = {
    "rankingScoreThreshold": "the value of `rankingScoreThreshold` is invalid, expected a float between `0.0` and `1.0`.",
    "hybridSemanticRatio": "the value of `semanticRatio` is invalid, expected a float between `0.0` and `1.0`.",
}


def _split_sort(text: str) -> list[str]:
    """Split on commas that are not inside parentheses: `_geoPoint(1,2):asc` has commas."""
    out, depth, cur = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth = max(0, depth - 1)
        if ch == "," and depth == 0:
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur).strip())
    return [s for s in out if s]


def parse_search_query_string(params: Mapping[str, str]) -> SearchRequest:
    """GET /search query parameters -> SearchRequest, with Meilisearch 1.50's errors."""
    raw: dict[str, Any] = {}
    hybrid: dict[str, Any] = {}
    for name, text in params.items():
        code = _error_code(name)
        if name in _GET_INTS:
            raw[name] = query_uint(code, name, text)
        elif name in _GET_BOOLS:
            raw[name] = query_bool(code, name, text)
        elif name in _GET_LISTS:
            raw[name] = [s.strip() for s in text.split(",") if s.strip()]
            if name == "locales":
                locales.check_query(raw[name])
        elif name in _GET_STRINGS:
            raw[name] = text
        elif name == "sort":
            raw[name] = _split_sort(text)
        elif name == "filter":
            # 1.50 reads the parameter as JSON when it parses (an array filter), else as text.
            try:
                raw[name] = json.loads(text)
            except ValueError:
                raw[name] = text
        elif name == "matchingStrategy":
            if text not in ("last", "all", "frequency"):
                raise MeiliError(
                    code, f"Unknown value `{text}` for parameter `matchingStrategy`: expected one of `last`, `all`, `frequency`"
                )
            raw[name] = text
        elif name in _RATIO_TEXT:
            code = "invalid_search_semantic_ratio" if name == "hybridSemanticRatio" else code
            try:
                value = float(text)
            except ValueError:
                value = -1.0
            if not 0.0 <= value <= 1.0:
                raise MeiliError(code, f"Invalid value in parameter `{name}`: {_RATIO_TEXT[name]}")
            if name == "hybridSemanticRatio":
                hybrid["semanticRatio"] = value
            else:
                raw[name] = value
        elif name == "vector":
            try:
                raw[name] = [float(s) for s in text.split(",")]
            except ValueError:
                raise MeiliError(code, f"Invalid value in parameter `{name}`: could not parse `{text}` as a number") from None
        elif name == "hybridEmbedder":
            hybrid["embedder"] = text
        elif name == "personalizeUserContext":
            raw["personalize"] = {"userContext": text}
        else:
            raise unknown_param(name, _GET_PARAMS)
    if hybrid:
        if "embedder" not in hybrid:
            raise MeiliError(
                "invalid_search_hybrid_query", "`hybridEmbedder` is mandatory when `hybridSemanticRatio` is present"
            )
        raw["hybrid"] = hybrid
    if "vector" in raw and not hybrid:
        raise MeiliError("missing_search_hybrid", "`hybridEmbedder` is mandatory when `vector` is present")
    return search_request_from_dict(raw)


def request_uid() -> str:
    """A UUID v7 (time-ordered), as 1.50 gives every search answer (`requestUid`) and
    every query of it (`metadata.queryUid`). The one impure helper here: a clock and
    random bits, no I/O."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & (2**48 - 1)) << 80 | 0x7 << 76 | (rand >> 68 & 0xFFF) << 64 | 0b10 << 62 | (rand & (2**62 - 1))
    return str(uuid.UUID(int=value))


def metadata_wanted(header: str | None) -> bool:
    """Whether the `Meili-Include-Metadata` header asks for `metadata` (1.50: `true` or
    `1`, any case)."""
    return header is not None and header.strip().lower() in ("true", "1")


def finish_answer(answer: dict, request_uid: str, metadata: dict | None = None, performance: dict | None = None) -> dict:
    """Add `requestUid`, `metadata` and `performanceDetails` in 1.50's key order
    (`semanticHitCount` stays last)."""
    semantic = answer.pop("semanticHitCount", None)
    answer["requestUid"] = request_uid
    if metadata is not None:
        answer["metadata"] = metadata
    if performance is not None:
        answer["performanceDetails"] = performance
    if semantic is not None:
        answer["semanticHitCount"] = semantic
    return answer


def rust_duration(seconds: float) -> str:
    """A duration as 1.50 writes it in `performanceDetails` (Rust's `{:.2?}`)."""
    ns = seconds * 1e9
    if ns >= 1e9:
        return f"{ns / 1e9:.2f}s"
    if ns >= 1e6:
        return f"{ns / 1e6:.2f}ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f}µs"
    return f"{ns:.2f}ns"


def search_metadata(query: str | None, index_uid: str, primary_key: str | None, *, query_uid: str | None = None) -> dict:
    """A 1.50 `metadata` object: `query` for a non-placeholder search, `primaryKey` when set."""
    out: dict[str, Any] = {}
    if query:
        out["query"] = query
    out["queryUid"] = query_uid or request_uid()
    out["indexUid"] = index_uid
    if primary_key is not None:
        out["primaryKey"] = primary_key
    return out


# ---------------------------------------------------------------- sub-queries


def _is_geo(criterion_attr: str) -> bool:
    return criterion_attr.startswith("_geoPoint(")


def parse_sort_criterion(criterion: str) -> tuple[str, bool]:
    """``"price:desc"`` -> ("price", False). The direction is after the *last* colon."""
    attr, _, direction = criterion.rpartition(":")
    return attr, direction != "desc"


def reserved_sort_error(name: str) -> MeiliError | None:
    """milli's error for sorting on one of its reserved geo words (a `_geoPoint(...)`
    expression excepted); None for any other attribute."""
    if name.startswith("_geoPoint("):
        return None
    hint = " Use the _geoPoint(latitude, longitude) built-in rule to sort on _geo field coordinates."
    for word in ("_geoRadius", "_geoBoundingBox"):
        if name.startswith(word):
            return MeiliError("invalid_search_sort", f"`{word}` is a reserved keyword and thus can't be used as a sort expression.{hint}")
    if name == "_geo":
        return MeiliError("invalid_search_sort", f"`{name}` is a reserved keyword and thus can't be used as a sort expression.{hint}")
    if name in ("_geojson", "_geoDistance", "_geoPoint", "_geoPolygon"):
        return MeiliError("invalid_search_sort", f"`{name}` is a reserved keyword and thus can't be used as a sort expression.")
    return None


def custom_rule(rule: str) -> tuple[str, bool] | None:
    """A ranking rule ``attr:asc|desc`` -> (attr, ascending); None for built-in rules."""
    attr, sep, direction = rule.rpartition(":")
    if not sep or direction not in ("asc", "desc"):
        return None
    return attr, direction == "asc"


def retrieval_additions(
    req: SearchRequest, *, distinct_attribute: str | None, ranking_rules: Sequence[str] = ()
) -> set[str]:
    """Fields the merge reads but the client did not ask to retrieve.

    They are added to the sub-query's ``attributesToRetrieve`` and stripped from the
    answer (pass the result as ``added_fields`` to ``merge_search``).
    """
    wanted = req.attributes_to_retrieve
    if wanted is None or "*" in wanted:
        return set()
    needed: list[str] = []
    for criterion in req.sort or ():
        attr, _ = parse_sort_criterion(criterion)
        if not _is_geo(attr):  # geo sorting reads `_geoDistance`, always returned
            needed.append(attr)
    for rule in ranking_rules:
        cr = custom_rule(rule)
        if cr is not None:
            needed.append(cr[0])
    distinct = req.distinct or distinct_attribute
    if distinct:
        needed.append(distinct)
    have = set(wanted)
    return {f for f in needed if f not in have}


def ordered_by_score(req: SearchRequest, ranking_rules: Sequence[str] = (), searchable: int | None = None) -> bool:
    """Whether `_rankingScore` alone gives a node's order, so the merge needs nothing else.

    Hybrid and vector results are merged by score, as Meilisearch itself does. With query
    terms and only rules that score (words, typo, proximity, attribute, exactness...; no
    custom `attr:asc|desc` rule, no `sort` criteria at search time), a node's bucket
    order is the lexicographic order of the rules' ranks, and `_rankingScore` is milli's
    `Rank::global_score` of those ranks: `Rank::merge` folds each rule's (rank, max rank)
    as `(outer - 1) * max + rank` over `outer_max * max`, so a document's score stays
    inside its bucket's interval at every rule: a better rank for an earlier rule gives a
    higher score whatever the later rules say, and equal ranks equal scores. milli does
    that fold in u32, so it holds only while the product of the rules' max ranks fits:
    `searchable` (how many attributes the index can search, None: unknown) bounds it
    with the query's word count (`score_order_fits`); otherwise the details are used. A
    placeholder search is ordered by sort and custom rules, read from the hits.
    """
    if req.hybrid is not None or req.vector is not None:
        return True
    if not has_query_terms(req) or searchable is None:
        return False
    if req.sort:  # (without the `sort` rule a node refuses the search anyway)
        return False
    rules = effective_ranking_rules(ranking_rules or DEFAULT_RANKING_RULES, req.matching_strategy)
    return score_order_fits(rules, query_words(req.q), searchable)


# milli's rules that rank by the query's words (criterion.rs; `attribute` is Fid then
# Position, `attributeRank` Fid alone, `wordPosition` Position alone, since 1.36).
TEXT_RULES = ("words", "typo", "proximity", "attribute", "attributeRank", "wordPosition", "exactness")


@functools.lru_cache(maxsize=256)
def _effective(ranking_rules: tuple[str, ...], all_words: bool) -> tuple[str, ...]:
    out: list[str] = []
    for rule in ranking_rules:
        if all_words and rule == "words":
            continue
        if rule in TEXT_RULES and "words" not in out and not all_words:
            out.append("words")
        if rule not in out:  # milli skips a rule listed twice
            out.append(rule)
    return tuple(out)


def effective_ranking_rules(ranking_rules: Sequence[str], matching_strategy: str = "last") -> tuple[str, ...]:
    """The rules a node ranks by, in order: milli ranks by `words` before any other
    text rule, even when `words` is listed later or not at all, has no `words` rule
    with `matchingStrategy: all`, and skips repeats
    (search/new/mod.rs::get_ranking_rules_for_query_graph_search)."""
    return _effective(tuple(ranking_rules), matching_strategy == "all")


# milli's query limit: words past the 10th are ignored.
MAX_QUERY_WORDS = 10
# Half of u32: a safety margin over the bounds below, which are estimates of milli's.
_SCORE_PRODUCT_LIMIT = 2**31


def query_words(q: str) -> int:
    """An upper bound of the words milli makes of `q` (capped at its 10)."""
    if not q.isascii():
        return MAX_QUERY_WORDS  # scripts segmented without spaces: assume the most
    return min(MAX_QUERY_WORDS, len(re.findall(r"[A-Za-z0-9]+", q)))


def _max_rank(rule: str, words: int, searchable: int) -> int | None:
    """A bound of a scoring rule's max rank for `words` query words (None: unknown rule)."""
    n = max(words, 1)
    # milli's Fid graph: a word costs its attribute's weight (< searchable), summed.
    attribute_rank = searchable * n + 1
    word_position = 11 * n + 1  # position costs up to 10 per word
    return {
        "words": n + 1,
        "typo": 2 * n + 2,  # up to 2 typos per word
        "proximity": 8 * n,  # up to 7 per pair of words
        "attributeRank": attribute_rank,
        "wordPosition": word_position,
        "attribute": attribute_rank * word_position,  # both (unified, before 1.36's split)
        "exactness": 3 * (n + 1),  # the exact-attribute and exact-words details
        "sort": 1,  # no criteria (checked by the caller): no rank
    }.get(rule)


def score_order_fits(ranking_rules: Sequence[str], words: int, searchable: int) -> bool:
    """Whether milli's u32 fold of these rules' ranks cannot overflow (see
    `ordered_by_score`); False for a custom rule or a rule this bound does not know."""
    return _fits(tuple(ranking_rules), words, searchable)


@functools.lru_cache(maxsize=1024)  # asked on every search; few distinct inputs
def _fits(ranking_rules: tuple[str, ...], words: int, searchable: int) -> bool:
    product = 1
    for rule in ranking_rules:
        bound = _max_rank(rule, words, searchable)
        if bound is None:
            return False
        product *= bound
    return product < _SCORE_PRODUCT_LIMIT


def has_query_terms(req: SearchRequest) -> bool:
    return bool(req.q and req.q.strip())


def needs_ranking_details(req: SearchRequest, by_score: bool) -> bool:
    """Whether the merge must see `_rankingScoreDetails`, given `ordered_by_score`: with
    query terms, unless the score alone orders the hits; a custom rule or a sort
    criterion breaks ties between the rules that score, which only the details place.
    A geo sort always: its exact distance is in the details (`_geoDistance` is rounded to
    the meter, and absent when `_geo` is not retrieved or not displayed)."""
    if any(_is_geo(parse_sort_criterion(c)[0]) for c in req.sort or ()):
        return True
    return has_query_terms(req) and not by_score


def plan_subquery(
    req: SearchRequest,
    *,
    shards_for_node: list[int] | None,
    distinct_attribute: str | None,
    facet_values_limit: int | None,
    needs_details: bool,
    ranking_rules: Sequence[str] = (),
) -> dict:
    """The JSON body sent to one node of the covering set (see module docstring).

    ``facet_values_limit`` is the client-visible ``maxValuesPerFacet``. Meilisearch has
    no per-request facet cap, so it does not change the body: the merge applies it, and
    the nodes must be configured with a larger cap (documented assumption).
    """
    del facet_values_limit  # no per-request knob exists; see docstring
    body: dict[str, Any] = msgspec.to_builtins(req)
    body.pop("useNetwork", None)  # Miroir is the network: a node must not fan out again
    if req.page_mode:
        page, hpp = req.page_window()
        body.pop("offset", None)
        body.pop("limit", None)
        body["page"] = 1
        body["hitsPerPage"] = page * hpp
    else:
        body.pop("page", None)
        body.pop("hitsPerPage", None)
        body["offset"] = 0
        body["limit"] = req.offset + req.limit
    body["showRankingScore"] = True
    # A semantic search's details say which hits vector similarity ranked (`vectorSort`):
    # `semanticHitCount` is counted on the client's page from them (core/merge.py).
    if needs_details or req.show_ranking_score_details or req.hybrid is not None or req.vector is not None:
        body["showRankingScoreDetails"] = True
    added = retrieval_additions(req, distinct_attribute=distinct_attribute, ranking_rules=ranking_rules)
    wanted = req.attributes_to_retrieve
    if wanted is not None and "*" not in wanted:
        # The merge's last tie-break reads the insertion sequence (merge.MIROIR_FIELDS,
        # removed from every hit like `_miroir_shard`, so not among `added`).
        body["attributesToRetrieve"] = [*wanted, *sorted(added), *reserved.SEQ_FIELDS]
    if shards_for_node is not None:
        return subquery_for_shards(body, req.filter, shards_for_node)
    return body


def subquery_for_shards(base: dict, client_filter: Any, shards_for_node: list[int] | None) -> dict:
    """A node's body from the body planned once for every node (``shards_for_node=None``).

    Same result as ``plan_subquery(..., shards_for_node=shards_for_node)``; the search
    path plans once per request and only adds each node's shard filter (a shallow copy:
    the base's nested values are shared and must not be modified).
    """
    if shards_for_node is None:
        return base
    body = dict(base)
    combined = and_filters(client_filter, shard_filter(sorted(shards_for_node)))
    if combined is None:
        body.pop("filter", None)
    else:
        body["filter"] = combined
    return body


# ---------------------------------------------------------------- document listing


def hidden_field_error(req: SearchRequest, settings: Mapping[str, Any]) -> MeiliError | None:
    """The error for a client search naming Miroir's hidden `_miroir_*` fields in its
    filter, sort, distinct or facets (as Meilisearch words an attribute that is not
    filterable or sortable), or None. Checked on the client's request only: the
    sub-queries Miroir builds from it add `_miroir_shard` afterwards."""
    filterable = settings.get("filterableAttributes") or ()
    return (
        reserved.filter_error(req.filter, filterable, search=True)
        or reserved.sort_error(req.sort, settings.get("sortableAttributes") or ())
        or reserved.distinct_error(req.distinct, filterable)
        or reserved.facets_error(req.facets, filterable)
    )


def unfilterable_error(req: SearchRequest, settings: Mapping[str, Any], features: Mapping[str, Any]) -> MeiliError | None:
    """milli's error for a search filter naming an attribute that is not filterable, or
    None (a filter refused before, by its syntax or a feature gate, is left to the
    nodes). Miroir words it itself: a node sees the client's filter ANDed with its shard
    filter, and 1.50 points into the filter it re-serializes (`check_search_filterable`),
    so a node's position line would not be one node's."""
    if req.filter is None:
        return None
    try:
        expr = route_filter(req.filter, "invalid_search_filter", features)
    except MeiliError:
        return None
    try:
        check_search_filterable(expr, hide_shard_field(settings.get("filterableAttributes") or []))
    except FilterError as e:
        return e
    return None


def plan_document_windows(totals: Sequence[int], *, offset: int, limit: int) -> list[tuple[int, int, int]]:
    """Which part of each shard a documents page needs: [(shard, shard_offset, shard_limit)].

    Miroir's global document order is (shard ascending, then the node's own order
    inside the shard); see merge.merge_documents. With the per-shard totals (a first
    round of ``limit=0`` requests filtered on ``_miroir_shard = s``), only the shards
    overlapping ``[offset, offset+limit)`` are fetched, each with its exact window.
    """
    out = []
    start = 0
    end = offset + limit
    for shard, total in enumerate(totals):
        lo, hi = max(offset, start), min(end, start + total)
        if lo < hi:
            out.append((shard, lo - start, hi - lo))
        start += total
    return out


# ---------------------------------------------------------------- facet search

# 1.50's `FacetSearchQuery`: (JSON kind expected, error code) per known field. Any other
# key is ignored (`allow_unknown_fields`: InstantSearch and the SDKs send their search
# parameters along); `useNetwork` is checked, then never forwarded (Miroir is the network).
_FACET_SEARCH_FIELDS: dict[str, tuple[str, str]] = {
    "facetQuery": ("a string", "invalid_facet_search_query"),
    "facetName": ("a string", "invalid_facet_search_facet_name"),
    "q": ("a string", "invalid_search_q"),
    "vector": ("an array", "invalid_search_vector"),
    "media": ("", "invalid_search_media"),
    "hybrid": ("an object", "invalid_search_hybrid_query"),
    "filter": ("", "invalid_search_filter"),
    "matchingStrategy": ("a string", "invalid_search_matching_strategy"),
    "attributesToSearchOn": ("an array", "invalid_search_attributes_to_search_on"),
    "rankingScoreThreshold": ("a number", "invalid_search_ranking_score_threshold"),
    "locales": ("an array", "invalid_search_locales"),
    "exhaustiveFacetCount": ("a boolean", "invalid_facet_search_exhaustive_facet_count"),
    "useNetwork": ("a boolean", "invalid_search_use_network"),
}
FACET_SEARCH_PARAMS = tuple(_FACET_SEARCH_FIELDS)

_KIND_CHECK = {
    "a string": lambda v: isinstance(v, str),
    "an array": lambda v: isinstance(v, list),
    "an object": lambda v: isinstance(v, dict),
    "a boolean": lambda v: isinstance(v, bool),
    "a number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "": lambda v: True,
}


def facet_search_params(body: Any) -> dict[str, Any]:
    """A facet-search body checked as 1.50 checks it, keeping only the fields it reads
    (the rest is ignored, as 1.50 does) and without `useNetwork`."""
    if not isinstance(body, dict):
        raise body_type_error(body)
    out: dict[str, Any] = {}
    for name, value in body.items():
        spec = _FACET_SEARCH_FIELDS.get(name)
        if spec is None:
            continue
        expected, code = spec
        if value is None and name != "facetName":
            out[name] = None
            continue
        if name == "filter" and not isinstance(value, (str, list)):
            raise MeiliError(code, f"Invalid syntax for the filter parameter: `expected String, Array, found: {_compact(value)}`.")
        if not _KIND_CHECK[expected](value):
            raise type_error(code, f".{name}", value, expected)
        if name in ("vector", "attributesToSearchOn", "locales"):
            inner = "a number" if name == "vector" else "a string"
            for i, v in enumerate(value):
                if not _KIND_CHECK[inner](v):
                    raise type_error(code, f".{name}[{i}]", v, inner)
        if name == "locales":
            locales.check_body(value, ".locales", code)
        if name == "matchingStrategy" and value not in ("last", "all", "frequency"):
            raise MeiliError(code, f"Unknown value `{value}` at `.matchingStrategy`: expected one of `last`, `all`, `frequency`")
        if name == "rankingScoreThreshold" and not 0.0 <= value <= 1.0:
            raise MeiliError(
                code,
                "Invalid value at `.rankingScoreThreshold`: the value of `rankingScoreThreshold` is invalid, "
                "expected a float between `0.0` and `1.0`.",
            )
        out[name] = value
    if "facetName" not in out:
        raise MeiliError("missing_facet_search_facet_name", "Missing field `facetName`")
    out.pop("useNetwork", None)
    return out


# ---------------------------------------------------------------- content type

_JSON_ONLY = "Accepted values for the Content-Type header are: `application/json`"


def json_content_type_error(ctype: str | None) -> MeiliError | None:
    """1.50's 415 for a JSON-only route (search, multi-search, facet search): a missing
    header, or a media type other than `application/json` (parameters such as
    `charset` allowed; a `+json` suffix too, as actix accepts it)."""
    if not ctype:
        return MeiliError("missing_content_type", f"A Content-Type header is missing. {_JSON_ONLY}")
    essence = ctype.split(";", 1)[0].strip().lower()
    if essence == "application/json" or (essence.startswith("application/") and essence.endswith("+json")):
        return None
    return MeiliError("invalid_content_type", f"The Content-Type `{ctype}` is invalid. {_JSON_ONLY}")
