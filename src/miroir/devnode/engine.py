"""The devnode's search engine: one index, in memory, pure (no I/O, no clock but timing).

Documents get an internal id in insertion order (kept when a document is replaced), words
go to an inverted index `word -> {internal id -> [fid << 20 | position]}`, and a search is
planned like milli: query terms with their derivations (exact, prefix of the last word,
typos), the `words` rule's buckets from `matchingStrategy`, then a lazy bucket sort over the
ranking rules in settings order. Scores depend only on query, document and settings.

The HTTP layer (task queue, settings validation, durability) codes against `IndexEngine`.
"""

from __future__ import annotations

import copy
import time
from bisect import bisect_left
from typing import Any, Callable, Iterator

from miroir.core.documents import document_id, resolve_primary_key
from miroir.core.errors import MeiliError
from miroir.core.sortvalue import MISSING, field_value
from miroir.devnode import facets as facets_mod
from miroir.devnode import highlight, ranking
from miroir.devnode.ranking import Context, QueryTerm, TermHit
from miroir.devnode.text import Tokenizer, bounded_distance, flatten, normalize, query_terms, value_texts

POS_BITS = 20
POS_MASK = (1 << POS_BITS) - 1
MAX_POSITION = 65535  # milli stops indexing words of one attribute past u16 positions

SEARCH_PARAMS = (
    "q", "vector", "offset", "limit", "page", "hitsPerPage", "attributesToRetrieve", "retrieveVectors",
    "attributesToCrop", "cropLength", "cropMarker", "attributesToHighlight", "showMatchesPosition",
    "showRankingScore", "showRankingScoreDetails", "showPerformanceDetails", "filter", "sort", "distinct",
    "facets", "highlightPreTag", "highlightPostTag", "matchingStrategy", "attributesToSearchOn",
    "rankingScoreThreshold", "locales", "hybrid", "media",
)
FACET_SEARCH_PARAMS = (
    "facetQuery", "facetName", "q", "vector", "hybrid", "filter", "matchingStrategy",
    "attributesToSearchOn", "rankingScoreThreshold", "locales", "exhaustiveFacetCount",
)


def default_settings() -> dict:
    return {
        "displayedAttributes": ["*"],
        "searchableAttributes": ["*"],
        "filterableAttributes": [],
        "sortableAttributes": [],
        "rankingRules": ["words", "typo", "proximity", "attribute", "sort", "exactness"],
        "stopWords": [],
        "nonSeparatorTokens": [],
        "separatorTokens": [],
        "dictionary": [],
        "synonyms": {},
        "distinctAttribute": None,
        "proximityPrecision": "byWord",
        "typoTolerance": {
            "enabled": True,
            "minWordSizeForTypos": {"oneTypo": 5, "twoTypos": 9},
            "disableOnWords": [],
            "disableOnAttributes": [],
        },
        "faceting": {"maxValuesPerFacet": 100, "sortFacetValuesBy": {"*": "alpha"}},
        "pagination": {"maxTotalHits": 1000},
        "searchCutoffMs": None,
        "facetSearch": True,
        "prefixSearch": "indexingTime",
    }


def attribute_names(entries: list) -> list[str]:
    """filterableAttributes may hold names or (Meilisearch >= 1.14) pattern objects."""
    out: list[str] = []
    for e in entries or []:
        if isinstance(e, str):
            out.append(e)
        elif isinstance(e, dict):
            out.extend(p for p in e.get("attributePatterns", []) if isinstance(p, str))
    return out


def matches_attribute(path: str, patterns: list[str]) -> bool:
    """Is `path` covered by one of `patterns` ("*", exact, parent object, `prefix*`)?"""
    for p in patterns:
        if p == "*" or p == path or path.startswith(p + "."):
            return True
        if p.endswith("*") and path.startswith(p[:-1]):
            return True
        if p.startswith("*") and path.endswith(p[1:]):
            return True
    return False


def _filter_module():
    try:
        from miroir.core import filter as f
    except ImportError:  # pragma: no cover - only while core/filter.py is being written
        return None
    return f


class IndexEngine:
    def __init__(self, uid: str, primary_key: str | None = None, settings: dict | None = None):
        self.uid = uid
        self.primary_key = primary_key
        self.settings = default_settings()
        self._docs: dict[int, dict] = {}
        self._ext: dict[str, int] = {}
        self._next_iid = 0
        self._post: dict[str, dict[int, list[int]]] = {}
        self._wcount: dict[int, dict[int, int]] = {}
        self._fields: list[str] = []
        self._fid: dict[str, int] = {}
        self._vocab: list[str] | None = None
        self._by_len: dict[int, list[str]] = {}
        self._typo_cache: dict[tuple, list] = {}
        self._facet_cache: dict[str, dict] = {}
        self._apply_settings(settings or self.settings, reindex=False)

    # ------------------------------------------------------------------ settings

    def set_settings(self, settings: dict) -> None:
        old = self._tokenizer_settings()
        self._apply_settings(settings, reindex=False)
        if self._tokenizer_settings() != old:
            self._reindex()

    def _tokenizer_settings(self) -> tuple:
        s = self.settings
        return (tuple(s["separatorTokens"]), tuple(s["nonSeparatorTokens"]), tuple(s["dictionary"]))

    def _apply_settings(self, settings: dict, reindex: bool) -> None:
        merged = default_settings()
        for k, v in settings.items():
            merged[k] = copy.deepcopy(v)
        self.settings = merged
        s = merged
        self.tokenizer = Tokenizer(s["separatorTokens"], s["nonSeparatorTokens"], s["dictionary"])
        self._stop_words = frozenset(normalize(w) for w in s["stopWords"])
        typo = s["typoTolerance"] or {}
        sizes = typo.get("minWordSizeForTypos") or {}
        self._typo_enabled = typo.get("enabled", True)
        self._one_typo = sizes.get("oneTypo", 5)
        self._two_typos = sizes.get("twoTypos", 9)
        self._typo_disabled_words = frozenset(normalize(w) for w in typo.get("disableOnWords") or [])
        self._typo_disabled_attrs = list(typo.get("disableOnAttributes") or [])
        self._typo_cache.clear()
        if reindex:
            self._reindex()

    def _weights(self, restrict: list[str] | None = None) -> tuple[dict[int, int], int, bool]:
        """fid -> attribute weight for searchable fields, the max weight, and whether every
        field is searchable. With `["*"]` all fields weigh the same: Meilisearch would weigh
        them by the order fields were first seen in the index, which depends on other
        documents and would break shard-independent scores."""
        searchable = self.settings["searchableAttributes"]
        weights: dict[int, int] = {}
        if searchable == ["*"] or "*" in searchable:
            for fid, name in enumerate(self._fields):
                if restrict is None or matches_attribute(name, restrict):
                    weights[fid] = 0
            return weights, 0, restrict is None
        for fid, name in enumerate(self._fields):
            for w, attr in enumerate(searchable):
                if name == attr or name.startswith(attr + "."):
                    if restrict is None or matches_attribute(name, restrict):
                        weights[fid] = w
                    break
        return weights, max(len(searchable) - 1, 0), False

    # ------------------------------------------------------------------ documents

    def add_documents(self, docs: list[dict], primary_key: str | None, *, partial: bool) -> int:
        pk = resolve_primary_key(self.primary_key, primary_key, docs, self.uid)
        ids = [document_id(d, pk) for d in docs]  # validates every document first
        self.primary_key = pk
        for ext, doc in zip(ids, docs):
            iid = self._ext.get(ext)
            if iid is not None:
                old = self._docs[iid]
                new = {**old, **doc} if partial else doc
                self._unindex(iid, old)
            else:
                iid = self._next_iid
                self._next_iid += 1
                self._ext[ext] = iid
                new = doc
            self._docs[iid] = new
            self._index(iid, new)
        self._changed()
        return len(docs)

    def delete_documents(self, ids: list) -> int:
        deleted = 0
        for raw in ids:
            ext = raw if isinstance(raw, str) else str(raw)
            iid = self._ext.pop(ext, None)
            if iid is not None:
                self._unindex(iid, self._docs.pop(iid))
                deleted += 1
        self._changed()
        return deleted

    def delete_by_filter(self, filter_value) -> int:
        pred = self._compile_filter(filter_value, "invalid_document_filter")
        if pred is None:
            raise MeiliError("invalid_document_filter", "Sending an empty filter is forbidden.")
        victims = [iid for iid, d in self._docs.items() if pred(d)]
        pk = self.primary_key
        return self.delete_documents([document_id(self._docs[i], pk) for i in victims])

    def clear(self) -> int:
        n = len(self._docs)
        self._docs.clear()
        self._ext.clear()
        self._post.clear()
        self._wcount.clear()
        self._changed()
        return n

    def _changed(self) -> None:
        self._vocab = None
        self._typo_cache.clear()
        self._facet_cache.clear()

    def _field_id(self, name: str) -> int:
        fid = self._fid.get(name)
        if fid is None:
            fid = self._fid[name] = len(self._fields)
            self._fields.append(name)
        return fid

    def _doc_words(self, doc: dict) -> Iterator[tuple[int, int, str]]:
        """(fid, position, word) for every word of every field of `doc`."""
        words = self.tokenizer.words
        for path, value in flatten(doc):
            texts = value_texts(value)
            if not texts:
                continue
            fid = self._field_id(path)
            base = 0
            for text in texts:
                last = -1
                for pos, word in words(text):
                    p = base + pos
                    if p > MAX_POSITION:
                        break
                    last = p
                    yield fid, p, word
                base = (last if last >= 0 else base) + 8

    def _index(self, iid: int, doc: dict) -> None:
        post = self._post
        counts: dict[int, int] = {}
        for fid, pos, word in self._doc_words(doc):
            counts[fid] = counts.get(fid, 0) + 1
            per_doc = post.get(word)
            if per_doc is None:
                post[word] = {iid: [fid << POS_BITS | pos]}
            else:
                occ = per_doc.get(iid)
                if occ is None:
                    per_doc[iid] = [fid << POS_BITS | pos]
                else:
                    occ.append(fid << POS_BITS | pos)
        self._wcount[iid] = counts

    def _unindex(self, iid: int, doc: dict) -> None:
        for _, _, word in self._doc_words(doc):
            per_doc = self._post.get(word)
            if per_doc is not None and per_doc.pop(iid, None) is not None and not per_doc:
                del self._post[word]
        self._wcount.pop(iid, None)

    def _reindex(self) -> None:
        self._post.clear()
        self._wcount.clear()
        for iid, doc in self._docs.items():
            self._index(iid, doc)
        self._changed()

    def get_document(self, doc_id, fields: list[str] | None = None) -> dict:
        ext = doc_id if isinstance(doc_id, str) else str(doc_id)
        iid = self._ext.get(ext)
        if iid is None:
            raise MeiliError("document_not_found", f"Document `{ext}` not found.")
        return self._project(self._docs[iid], fields)

    def get_documents(self, *, offset: int = 0, limit: int = 20, fields=None, filter=None, ids=None) -> dict:
        pred = self._compile_filter(filter, "invalid_document_filter")
        if ids is not None:
            wanted = {i if isinstance(i, str) else str(i) for i in ids}
            iids = sorted(self._ext[e] for e in wanted if e in self._ext)
        else:
            # A replaced document keeps its dict slot, so dict order == internal-id order.
            iids = list(self._docs)
        if pred is not None:
            iids = [i for i in iids if pred(self._docs[i])]
        page = iids[offset : offset + limit]
        return {
            "results": [self._project(self._docs[i], fields) for i in page],
            "offset": offset,
            "limit": limit,
            "total": len(iids),
        }

    def _displayed(self) -> list[str]:
        return self.settings["displayedAttributes"]

    def _project(self, doc: dict, fields: list[str] | None) -> dict:
        displayed = self._displayed()
        out = {}
        for k, v in doc.items():
            if not matches_attribute(k, displayed) and not _has_child(displayed, k):
                continue
            if fields is not None and fields != ["*"] and "*" not in fields:
                if not matches_attribute(k, fields) and not _has_child(fields, k):
                    continue
                v = _narrow(v, k, fields)
            v = _narrow(v, k, displayed) if displayed != ["*"] else v
            out[k] = v
        return out

    def stats(self) -> dict:
        dist: dict[str, int] = {}
        for doc in self._docs.values():
            for k in doc:
                dist[k] = dist.get(k, 0) + 1
        return {"numberOfDocuments": len(self._docs), "isIndexing": False, "fieldDistribution": dict(sorted(dist.items()))}

    # ------------------------------------------------------------------ dump / restore

    def dump(self) -> dict:
        return {
            "uid": self.uid,
            "primaryKey": self.primary_key,
            "settings": self.settings,
            "documents": [self._docs[i] for i in sorted(self._docs)],
        }

    @classmethod
    def restore(cls, d: dict) -> "IndexEngine":
        eng = cls(d["uid"], d.get("primaryKey"), d.get("settings"))
        docs = d.get("documents") or []
        if docs:
            eng.add_documents(docs, eng.primary_key, partial=False)
        return eng

    # ------------------------------------------------------------------ filters

    def _filterable(self) -> list[str]:
        return attribute_names(self.settings["filterableAttributes"])

    def _compile_filter(self, value, code: str) -> Callable[[dict], bool] | None:
        if value is None:
            return None
        f = _filter_module()
        if f is None:
            raise MeiliError(code, "Filters are not available in this build.")
        try:
            expr = f.parse_filter(value)
            if expr is None:
                return None
            f.check_filterable(expr, self._filterable())
            return f.compile_filter(expr)
        except f.FilterError as e:
            raise MeiliError(code, e.message) from None

    # ------------------------------------------------------------------ search

    def search(self, params: dict) -> dict:
        started = time.perf_counter()
        p = _SearchParams(params, self)
        plan = self._plan(p.q, p.matching_strategy, p.filter_pred, p.attributes_to_search_on)
        distinct = p.distinct if p.distinct is not None else self.settings["distinctAttribute"]
        max_total = int((self.settings.get("pagination") or {}).get("maxTotalHits", 1000))

        if p.page_mode:
            want_offset = (p.page - 1) * p.hits_per_page if p.page > 0 else 0
            want = p.hits_per_page if p.page > 0 else 0
        else:
            want_offset, want = p.offset, p.limit
        end = min(want_offset + want, max_total)

        rules = self._rules(plan, p.sort)
        order = _BucketSort(plan, rules)
        selected: list[int] = []
        seen_distinct: set = set()
        threshold = p.ranking_score_threshold
        if end > 0 or threshold is not None:
            for iid in order.iterate(plan.candidates):
                if threshold is not None and order.score(iid) < threshold:
                    continue
                if distinct is not None and not self._distinct_new(iid, distinct, seen_distinct):
                    continue
                selected.append(iid)
                if len(selected) >= end and threshold is None:
                    break
        if threshold is not None or distinct is not None:
            if threshold is not None:
                total = len(selected)
            else:
                total = self._distinct_count(plan.candidates, distinct)
        else:
            total = len(plan.candidates)
        page_iids = selected[want_offset:end]

        hits = [self._hit(iid, p, plan, order) for iid in page_iids]
        out: dict[str, Any] = {"hits": hits, "query": p.raw_q}
        out["processingTimeMs"] = 0
        capped = min(total, max_total)
        if p.page_mode:
            out["hitsPerPage"] = p.hits_per_page
            out["page"] = p.page
            out["totalPages"] = -(-capped // p.hits_per_page) if p.hits_per_page else 0
            out["totalHits"] = capped
        else:
            out["limit"] = p.limit
            out["offset"] = p.offset
            out["estimatedTotalHits"] = capped
        if p.facets is not None:
            dist, stats = self._facets(p.facets, plan.candidates)
            out["facetDistribution"] = dist
            out["facetStats"] = stats
        out["processingTimeMs"] = int((time.perf_counter() - started) * 1000)
        return out

    def _distinct_new(self, iid: int, attr: str, seen: set) -> bool:
        value = field_value(self._docs[iid], attr)
        if value is MISSING or value is None:
            return True  # documents without the attribute are all kept
        keys = facets_mod.facet_keys(value)
        if not keys:
            return True
        if any(k in seen for k in keys):
            return False
        seen.update(keys)
        return True

    def _distinct_count(self, candidates, attr: str) -> int:
        seen: set = set()
        n = 0
        for iid in sorted(candidates):
            if self._distinct_new(iid, attr, seen):
                n += 1
        return n

    def _hit(self, iid: int, p: "_SearchParams", plan: "_Plan", order: "_BucketSort") -> dict:
        doc = self._docs[iid]
        hit = self._project(doc, p.attributes_to_retrieve)
        if p.formatting or p.show_matches_position:
            matcher = highlight.Matcher(self.tokenizer, plan.match_words, plan.prefix_words)
            shown = self._project(doc, None)
            if p.formatting:
                hit["_formatted"] = highlight.format_document(
                    {k: v for k, v in shown.items() if k in hit or p.attributes_to_retrieve is None},
                    matcher,
                    highlight_attrs=p.attributes_to_highlight,
                    crop_attrs=p.attributes_to_crop,
                    crop_length=p.crop_length,
                    crop_marker=p.crop_marker,
                    pre_tag=p.highlight_pre_tag,
                    post_tag=p.highlight_post_tag,
                )
            if p.show_matches_position:
                hit["_matchesPosition"] = highlight.matches_position(shown, matcher, self._searchable_names())
        if p.show_ranking_score:
            hit["_rankingScore"] = order.score(iid)
        if p.show_ranking_score_details:
            hit["_rankingScoreDetails"] = order.details(iid)
        return hit

    def _searchable_names(self) -> list[str]:
        return self.settings["searchableAttributes"]

    # ---------------------------------------------------------- planning

    def _plan(self, q: str, strategy: str, pred, restrict: list[str] | None) -> "_Plan":
        plan = _Plan()
        plan.docs = self._docs
        terms = query_terms(q, self.tokenizer, self._stop_words) if q else []
        weights, max_weight, all_fields = self._weights(restrict)
        plan.ctx = Context(max_weight=max_weight, by_attribute=self.settings["proximityPrecision"] == "byAttribute")
        plan.wcount = self._wcount
        if not terms:
            iids = self._docs.keys()
            plan.candidates = [i for i in iids if pred(self._docs[i])] if pred is not None else list(iids)
            return plan
        prefix_ok = not q.endswith(" ") and self.settings.get("prefixSearch", "indexingTime") != "disabled"
        qterms: list[QueryTerm] = []
        derivs: list[list[tuple[str, int, bool]]] = []
        for n, (qi, word) in enumerate(terms):
            is_prefix = prefix_ok and n == len(terms) - 1
            max_typos = self._max_typos(word)
            qterms.append(QueryTerm(qi, word, max_typos, is_prefix))
            derivs.append(self._derivations(word, max_typos, is_prefix))
            plan.match_words.update(w for w, t, _ in derivs[-1] if not (is_prefix and w != word and t == 0))
            if is_prefix:
                plan.prefix_words.add(word)
        plan.terms = qterms
        restricted = not all_fields or bool(self._typo_disabled_attrs)
        typo_off = {fid for fid, name in enumerate(self._fields) if matches_attribute(name, self._typo_disabled_attrs)}
        # Per term: internal id -> TermHit, built from the postings of its derivations.
        hits_per_term: list[dict[int, TermHit]] = []
        if restricted:
            for t, dv in zip(qterms, derivs):
                hits_per_term.append(self._term_hits(dv, weights, typo_off, True, None))
            sets = [set(h) for h in hits_per_term]
        else:
            # Every field counts: a term's documents are the union of its postings' keys,
            # and the (costlier) per-document matches are built for candidates only.
            post = self._post
            sets = [set().union(*(post[w].keys() for w, _, _ in dv if w in post)) for dv in derivs]
        subsets = _kept_subsets(len(qterms), strategy, [len(s) for s in sets])
        bucket: dict[int, int] = {}
        cur: set[int] | None = None
        for j in range(len(subsets) - 1, -1, -1):
            added = subsets[j] - (subsets[j + 1] if j + 1 < len(subsets) else frozenset())
            for ti in sorted(added):
                cur = set(sets[ti]) if cur is None else cur & sets[ti]
            if cur is not None:
                for iid in cur:
                    bucket[iid] = j
        plan.kept = [sorted(s) for s in subsets]
        plan.bucket = bucket
        cands = sorted(bucket)
        if pred is not None:
            docs = self._docs
            cands = [i for i in cands if pred(docs[i])]
        plan.candidates = cands
        if not restricted:
            keep = set(cands)
            plan.hits = [self._term_hits(dv, weights, set(), False, keep) for dv in derivs]
        else:
            plan.hits = hits_per_term
        return plan

    def _max_typos(self, word: str) -> int:
        if not self._typo_enabled or word in self._typo_disabled_words:
            return 0
        n = len(word)
        if n >= self._two_typos:
            return 2
        if n >= self._one_typo:
            return 1
        return 0

    def _vocabulary(self) -> list[str]:
        if self._vocab is None:
            self._vocab = sorted(self._post)
            by_len: dict[int, list[str]] = {}
            for w in self._vocab:
                by_len.setdefault(len(w), []).append(w)
            self._by_len = by_len
        return self._vocab

    def _derivations(self, word: str, max_typos: int, prefix: bool) -> list[tuple[str, int, bool]]:
        """(indexed word, typos, exact) for every word of the vocabulary this term matches."""
        key = (word, max_typos, prefix)
        cached = self._typo_cache.get(key)
        if cached is not None:
            return cached
        vocab = self._vocabulary()
        found: dict[str, int] = {}
        if word in self._post:
            found[word] = 0
        if prefix:
            i = bisect_left(vocab, word)
            while i < len(vocab) and vocab[i].startswith(word):
                found.setdefault(vocab[i], 0)
                i += 1
        if max_typos:
            # For a prefix only the head of a candidate matters: many words share one.
            memo: dict[str, int] = {}
            head_len = len(word) + max_typos
            for cand in self._typo_scan(word, max_typos, prefix):
                if cand not in found:
                    if prefix:
                        head = cand[:head_len]
                        d = memo.get(head)
                        if d is None:
                            d = memo[head] = bounded_distance(word, head, max_typos, True)
                    else:
                        d = bounded_distance(word, cand, max_typos, False)
                    # A typo on the first letter counts double in Meilisearch.
                    if cand[:1] != word[:1]:
                        d += 1
                    if d <= max_typos:
                        found[cand] = d
        out = [(w, t, w == word) for w, t in found.items()]
        if len(self._typo_cache) > 4096:
            self._typo_cache.clear()
        self._typo_cache[key] = out
        return out

    def _typo_scan(self, word: str, k: int, prefix: bool) -> Iterator[str]:
        """Vocabulary words that may be within k typos: length filter, then a cheap letter
        filter, before the exact (bounded) distance."""
        self._vocabulary()
        n = len(word)
        lengths = range(max(1, n - k), (n + k + 1) if not prefix else max(self._by_len, default=0) + 1)
        letters = set(word)
        first = word[0]
        for length in lengths:
            for cand in self._by_len.get(length, ()):
                if k == 1 and cand[0] != first:
                    continue
                # Each typo changes at most 2 letters' presence; skip obvious misses fast.
                head = cand[: n + k] if prefix else cand
                if len(letters.difference(head)) > k:
                    continue
                yield cand

    def _term_hits(self, derivs, weights: dict[int, int], typo_off: set, restricted: bool, keep: set | None) -> dict[int, TermHit]:
        acc: dict[int, list] = {}  # iid -> [typos, occ set, exact occ set]
        for word, typos, exact in derivs:
            per_doc = self._post.get(word)
            if not per_doc:
                continue
            iids = per_doc.keys() if keep is None else per_doc.keys() & keep
            for iid in iids:
                occs = per_doc[iid]
                if restricted:
                    occs = [o for o in occs if (o >> POS_BITS) in weights and not (typos and (o >> POS_BITS) in typo_off)]
                    if not occs:
                        continue
                a = acc.get(iid)
                if a is None:
                    a = acc[iid] = [typos, set(), set()]
                elif typos < a[0]:
                    a[0] = typos
                a[1].update(occs)
                if exact:
                    a[2].update(occs)
        out: dict[int, TermHit] = {}
        for iid, (typos, occs, ex) in acc.items():
            occ = sorted((o >> POS_BITS, o & POS_MASK) for o in occs)
            fids = {f for f, _ in occ}
            out[iid] = TermHit(
                typos,
                occ,
                [weights.get(f, 0) for f in fids],
                frozenset((o >> POS_BITS, o & POS_MASK) for o in ex),
            )
        return out

    # ---------------------------------------------------------- rules

    def _rules(self, plan: "_Plan", sort: list[tuple[str, bool]] | None) -> list[tuple[str, Any]]:
        """The ranking rules that apply to this search, in settings order."""
        out: list[tuple[str, Any]] = []
        for rule in self.settings["rankingRules"]:
            if rule in ranking.TEXT_RULES:
                if plan.terms:
                    out.append((rule, None))
            elif rule == "sort":
                for name, asc in sort or []:
                    out.append((f"{name}:{'asc' if asc else 'desc'}", (name, asc)))
            else:
                custom = ranking.parse_custom_rule(rule)
                if custom is not None:
                    out.append((rule, custom))
        # `sort=["n:desc"]` and a custom rule "n:desc" share one details key (Meilisearch's
        # map keeps one); the later one can never split a tie the first left, so drop it.
        seen: set[str] = set()
        return [r for r in out if not (r[0] in seen or seen.add(r[0]))]

    # ---------------------------------------------------------- facets

    def _facets(self, names: list[str], candidates: list[int]) -> tuple[dict, dict]:
        faceting = self.settings.get("faceting") or {}
        max_values = int(faceting.get("maxValuesPerFacet", 100))
        sort_by = faceting.get("sortFacetValuesBy") or {"*": "alpha"}
        dist: dict[str, dict] = {}
        stats: dict[str, dict] = {}
        for name in names:
            index = self._facet_index(name)
            counts, lo, hi = facets_mod.count(index, candidates)
            order = sort_by.get(name, sort_by.get("*", "alpha"))
            dist[name] = facets_mod.distribution(counts, index.display, order, max_values)
            if lo is not None:
                stats[name] = {"min": lo, "max": hi}
        return dist, stats

    def _facet_index(self, name: str) -> "facets_mod.FacetIndex":
        idx = self._facet_cache.get(name)
        if idx is None:
            idx = self._facet_cache[name] = facets_mod.FacetIndex.build(name, self._docs)
        return idx

    def facet_search(self, params: dict) -> dict:
        started = time.perf_counter()
        for k in params:
            if k not in FACET_SEARCH_PARAMS:
                raise _unknown_field(k, FACET_SEARCH_PARAMS)
        name = params.get("facetName")
        if not isinstance(name, str):
            raise MeiliError("missing_facet_search_facet_name", "Missing field `facetName`")
        filterable = self._filterable()
        if not matches_attribute(name, filterable):
            if filterable:
                avail = ", ".join(sorted(filterable))
                msg = f"Attribute `{name}` is not facet-searchable. Available facet-searchable attributes are: `{avail}`. To make it facet-searchable add it to the `filterableAttributes` index settings."
            else:
                msg = f"Attribute `{name}` is not facet-searchable. This index does not have configured facet-searchable attributes. To make it facet-searchable add it to the `filterableAttributes` index settings."
            raise MeiliError("invalid_facet_search_facet_name", msg)
        if not self.settings.get("facetSearch", True):
            raise MeiliError("facet_search_disabled", "The facet search is disabled for this index")
        query = params.get("facetQuery")
        pred = self._compile_filter(params.get("filter"), "invalid_search_filter")
        strategy = params.get("matchingStrategy", "last")
        plan = self._plan(params.get("q") or "", strategy, pred, params.get("attributesToSearchOn"))
        index = self._facet_index(name)
        counts, _, _ = facets_mod.count(index, plan.candidates)
        faceting = self.settings.get("faceting") or {}
        sort_by = faceting.get("sortFacetValuesBy") or {"*": "alpha"}
        order = sort_by.get(name, sort_by.get("*", "alpha"))
        hits = facets_mod.search_values(counts, index.display, query, order, int(faceting.get("maxValuesPerFacet", 100)))
        return {
            "facetHits": hits,
            "facetQuery": query,
            "processingTimeMs": int((time.perf_counter() - started) * 1000),
        }


# ---------------------------------------------------------------------- helpers


def _has_child(patterns: list[str], key: str) -> bool:
    return any(p.startswith(key + ".") for p in patterns)


def _narrow(value, key: str, patterns: list[str]):
    """Keep only the nested fields of `value` that `patterns` ask for (`a.b` under `a`)."""
    if matches_attribute(key, patterns):
        return value
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            path = f"{key}.{k}"
            if matches_attribute(path, patterns) or _has_child(patterns, path):
                out[k] = _narrow(v, path, patterns)
        return out
    if isinstance(value, list):
        return [_narrow(v, key, patterns) for v in value if isinstance(v, dict)]
    return value


def _kept_subsets(n: int, strategy: str, frequencies: list[int]) -> list[frozenset]:
    """The `words` rule's buckets: the sets of query terms a document must contain, best
    first. `last` drops terms from the end, `frequency` drops the most frequent first,
    `all` keeps every term."""
    full = frozenset(range(n))
    if strategy == "all" or n <= 1:
        return [full]
    if strategy == "frequency":
        removal = sorted(range(n), key=lambda i: (-frequencies[i], -i))
    else:
        removal = list(range(n - 1, -1, -1))
    out = [full]
    cur = set(full)
    for i in removal[:-1]:
        cur.discard(i)
        out.append(frozenset(cur))
    return out


def _unknown_field(name: str, allowed) -> MeiliError:
    expected = ", ".join(f"`{a}`" for a in allowed)
    return MeiliError("bad_request", f"Unknown field `{name}`: expected one of {expected}")


class _Plan:
    """A planned query: terms, per-term matches, the `words` buckets, the candidates."""

    def __init__(self) -> None:
        self.terms: list[QueryTerm] = []
        self.hits: list[dict[int, TermHit]] = []
        self.kept: list[list[int]] = []
        self.bucket: dict[int, int] = {}
        self.candidates: list[int] = []
        self.match_words: set[str] = set()
        self.prefix_words: set[str] = set()
        self.docs: dict[int, dict] = {}
        self.wcount: dict[int, dict[int, int]] = {}
        self.ctx: Context | None = None


class _BucketSort:
    """Orders documents rule by rule, computing a rule only for the buckets still needed.

    Each rule's key is derived from the detail we emit for it, so comparing emitted
    details rule by rule (then internal id) gives exactly this order."""

    def __init__(self, plan: _Plan, rules: list[tuple[str, Any]]):
        self.plan = plan
        self.rules = rules
        self._details: dict[int, dict[int, dict]] = {}

    def detail(self, iid: int, r: int) -> dict:
        per = self._details.get(iid)
        if per is None:
            per = self._details[iid] = {}
        d = per.get(r)
        if d is None:
            d = per[r] = self._compute(iid, r)
        return d

    def _compute(self, iid: int, r: int) -> dict:
        name, arg = self.rules[r]
        plan = self.plan
        if arg is not None:
            field_name, asc = arg
            return ranking.sort_entry(plan.docs[iid], field_name, asc)
        b = plan.bucket[iid]
        kept = plan.kept[b]
        terms = [plan.terms[i] for i in kept]
        if name == "words":
            d = ranking.words_detail(len(kept), len(plan.terms))
        else:
            hits = [plan.hits[i][iid] for i in kept]
            if name == "typo":
                d = ranking.typo_detail(terms, hits)
            elif name == "proximity":
                d = {"_ranks": [ranking.proximity_rank(terms, hits, plan.ctx.by_attribute)]}
            elif name == "attribute":
                fid, pos = ranking.attribute_ranks(terms, hits, plan.ctx.max_weight)
                d = {
                    "attributeRankingOrderScore": fid.local_score(),
                    "queryWordDistanceScore": pos.local_score(),
                    "_ranks": [fid, pos],
                }
            else:
                d = ranking.exactness_detail(hits, plan.wcount.get(iid, {}))
        return ranking.with_score(d)

    def key(self, iid: int, r: int):
        name, arg = self.rules[r]
        return ranking.rule_key(name, self.detail(iid, r), None if arg is None else arg[1])

    def iterate(self, iids: list[int], r: int = 0) -> Iterator[int]:
        if r >= len(self.rules) or len(iids) <= 1:
            yield from iids  # already in internal-id order
            return
        groups: dict[Any, list[int]] = {}
        for iid in iids:
            groups.setdefault(self.key(iid, r), []).append(iid)
        for k in sorted(groups):
            yield from self.iterate(groups[k], r + 1)

    def details(self, iid: int) -> dict:
        out = {}
        for r, (name, arg) in enumerate(self.rules):
            out[name] = ranking.finish_detail(r, self.detail(iid, r))
        return out

    def score(self, iid: int) -> float:
        ranks = []
        for r, (_, arg) in enumerate(self.rules):
            if arg is None:
                ranks.extend(self.detail(iid, r)["_ranks"])
        return ranking.global_score(ranks)


class _SearchParams:
    """A validated search request (Meilisearch's error codes and messages)."""

    def __init__(self, params: dict, eng: IndexEngine):
        for k in params:
            if k not in SEARCH_PARAMS:
                raise _unknown_field(k, SEARCH_PARAMS)
        g = params.get
        q = g("q")
        if q is not None and not isinstance(q, str):
            raise _type_error("q", "invalid_search_q", "a string", q)
        self.raw_q = q if q is not None else ""
        self.q = self.raw_q
        self.offset = _uint(params, "offset", "invalid_search_offset", 0)
        self.limit = _uint(params, "limit", "invalid_search_limit", 20)
        page = _uint(params, "page", "invalid_search_page", None)
        hpp = _uint(params, "hitsPerPage", "invalid_search_hits_per_page", None)
        self.page_mode = page is not None or hpp is not None
        self.page = page if page is not None else 1
        self.hits_per_page = hpp if hpp is not None else 20
        self.attributes_to_retrieve = _str_list(params, "attributesToRetrieve", "invalid_search_attributes_to_retrieve")
        self.attributes_to_highlight = _str_list(params, "attributesToHighlight", "invalid_search_attributes_to_highlight")
        self.attributes_to_crop = _str_list(params, "attributesToCrop", "invalid_search_attributes_to_crop")
        self.crop_length = _uint(params, "cropLength", "invalid_search_crop_length", 10)
        self.crop_marker = _string(params, "cropMarker", "invalid_search_crop_marker", "…")
        self.highlight_pre_tag = _string(params, "highlightPreTag", "invalid_search_highlight_pre_tag", "<em>")
        self.highlight_post_tag = _string(params, "highlightPostTag", "invalid_search_highlight_post_tag", "</em>")
        self.show_matches_position = _bool(params, "showMatchesPosition", "invalid_search_show_matches_position")
        self.show_ranking_score = _bool(params, "showRankingScore", "invalid_search_show_ranking_score")
        self.show_ranking_score_details = _bool(params, "showRankingScoreDetails", "invalid_search_show_ranking_score_details")
        self.formatting = bool(self.attributes_to_highlight or self.attributes_to_crop)
        strategy = g("matchingStrategy", "last")
        if strategy not in ("last", "all", "frequency"):
            raise MeiliError(
                "invalid_search_matching_strategy",
                f"Unknown value `{strategy}` at `.matchingStrategy`: expected one of `last`, `all`, `frequency`",
            )
        self.matching_strategy = strategy
        thr = g("rankingScoreThreshold")
        if thr is not None and (isinstance(thr, bool) or not isinstance(thr, (int, float)) or not 0 <= thr <= 1):
            raise MeiliError(
                "invalid_search_ranking_score_threshold",
                f"Invalid value at `.rankingScoreThreshold`: the value of `rankingScoreThreshold` is invalid, expected a float between `0.0` and `1.0`.",
            )
        self.ranking_score_threshold = thr
        self.attributes_to_search_on = _str_list(params, "attributesToSearchOn", "invalid_search_attributes_to_search_on")
        if self.attributes_to_search_on is not None:
            searchable = eng.settings["searchableAttributes"]
            for a in self.attributes_to_search_on:
                if a != "*" and searchable != ["*"] and a not in searchable:
                    raise MeiliError(
                        "invalid_search_attributes_to_search_on",
                        f"Attribute `{a}` is not searchable. Available searchable attributes are: `{', '.join(searchable)}`.",
                    )
            if "*" in self.attributes_to_search_on:
                self.attributes_to_search_on = None
        self.filter_pred = eng._compile_filter(g("filter"), "invalid_search_filter")
        self.sort = _parse_sort(g("sort"), eng)
        distinct = g("distinct")
        if distinct is not None:
            if not isinstance(distinct, str):
                raise _type_error("distinct", "invalid_search_distinct", "a string", distinct)
            filterable = eng._filterable()
            if not matches_attribute(distinct, filterable):
                avail = ", ".join(sorted(filterable))
                msg = (
                    f"Attribute `{distinct}` is not filterable and thus, cannot be used as distinct attribute. "
                    + (f"Available filterable attributes are: `{avail}`." if filterable else "This index does not have configured filterable attributes.")
                )
                raise MeiliError("invalid_search_distinct", msg)
        self.distinct = distinct
        self.facets = _parse_facets(g("facets"), eng)


def _json_text(value) -> str:
    import msgspec

    return msgspec.json.encode(value).decode()


def _kind(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "an integer" if isinstance(value, int) else "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _type_error(name: str, code: str, expected: str, value) -> MeiliError:
    return MeiliError(code, f"Invalid value type at `.{name}`: expected {expected}, but found {_kind(value)}: `{_json_text(value)}`")


def _uint(params: dict, name: str, code: str, default):
    v = params.get(name)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise _type_error(name, code, "a positive integer", v)
    return v


def _bool(params: dict, name: str, code: str) -> bool:
    v = params.get(name)
    if v is None:
        return False
    if not isinstance(v, bool):
        raise _type_error(name, code, "a boolean", v)
    return v


def _string(params: dict, name: str, code: str, default: str) -> str:
    v = params.get(name)
    if v is None:
        return default
    if not isinstance(v, str):
        raise _type_error(name, code, "a string", v)
    return v


def _str_list(params: dict, name: str, code: str) -> list[str] | None:
    v = params.get(name)
    if v is None:
        return None
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise _type_error(name, code, "an array", v)
    return v


def _parse_sort(value, eng: IndexEngine) -> list[tuple[str, bool]] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise _type_error("sort", "invalid_search_sort", "an array", value)
    sortable = attribute_names(eng.settings["sortableAttributes"])
    out = []
    for raw in value:
        name, sep, direction = raw.rpartition(":")
        if not sep or direction not in ("asc", "desc") or not name:
            raise MeiliError(
                "invalid_search_sort",
                f"Invalid syntax for the sort parameter: expected expression ending by `:asc` or `:desc`, found `{raw}`.",
            )
        if not matches_attribute(name, sortable):
            if sortable:
                msg = f"Attribute `{name}` is not sortable. Available sortable attributes are: `{', '.join(sorted(sortable))}`."
            else:
                msg = f"Attribute `{name}` is not sortable. This index does not have configured sortable attributes."
            raise MeiliError("invalid_search_sort", msg)
        out.append((name, direction == "asc"))
    if out and "sort" not in eng.settings["rankingRules"]:
        raise MeiliError(
            "invalid_search_sort",
            "You must specify where `sort` is listed in the rankingRules setting to use the sort parameter at search time.",
        )
    return out


def _parse_facets(value, eng: IndexEngine) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise _type_error("facets", "invalid_search_facets", "an array", value)
    filterable = eng._filterable()
    out: list[str] = []
    for name in value:
        if name == "*":
            out.extend(f for f in filterable if "*" not in f)
            continue
        if not matches_attribute(name, filterable):
            if filterable:
                msg = f"Invalid facet distribution, attribute `{name}` is not filterable. The available filterable attribute{'s are' if len(filterable) > 1 else ' is'} `{', '.join(sorted(filterable))}`."
            else:
                msg = "Invalid facet distribution, this index does not have configured filterable attributes."
            raise MeiliError("invalid_search_facets", msg)
        out.append(name)
    return list(dict.fromkeys(out))
