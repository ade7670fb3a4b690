"""The devnode's search engine: one index, in memory, pure (no I/O, no clock but timing).

Documents get an internal id in insertion order (kept when a document is replaced or
updated; as milli, a new document takes the lowest id a deleted one freed first), words
go to an inverted index `word -> {internal id -> [fid << 20 | position]}`, and a search is
planned like milli: query terms with their derivations (exact, prefix of the last word,
typos), the `words` rule's buckets from `matchingStrategy`, then a lazy bucket sort over the
ranking rules in settings order. Scores depend only on query, document and settings.

The HTTP layer (task queue, settings validation, durability) codes against `IndexEngine`.
"""

from __future__ import annotations

import copy
import heapq
import time
from bisect import bisect_left
from collections.abc import Callable, Iterator
from typing import Any

from miroir.core import filter as filter_mod, geo, locales as locales_mod, patterns as attr_patterns
from miroir.core.documents import document_id, document_sort_key, resolve_primary_key
from miroir.core.errors import (
    MeiliError,
    distinct_not_filterable,
    facet_not_filterable,
    index_scoped,
    json_kind,
    not_facet_searchable,
    not_searchable,
    not_sortable,
    type_error,
)
from miroir.core.facets import DEFAULT_MAX_VALUES_PER_FACET, facet_order
from miroir.core.federation import personalization_disabled
from miroir.core.searchplan import (
    FACET_SEARCH_PARAMS as _FACET_FIELDS,
    SEARCH_FIELDS,
    check_personalize,
    reserved_sort_error,
    rust_duration,
)
from miroir.core.settings import DEFAULTS as _MEILI_DEFAULTS
from miroir.devnode import facets as facets_mod, highlight, phrases, ranking, vectors
from miroir.devnode.postings import FilterSets
from miroir.devnode.ranking import Context, QueryTerm, TermHit
from miroir.devnode.text import (
    VALUE_GAP,
    Tokenizer,
    bounded_distance,
    ends_on_word,
    flatten,
    normalize,
    query_terms,
    value_texts,
)
from miroir.devnode.typo import typo_matches

POS_BITS = ranking.PACK_BITS  # 20
POS_MASK = (1 << POS_BITS) - 1
MAX_POSITION = 65535  # milli stops indexing words of one attribute past u16 positions
HEAP_GROUPS = 256  # past this many groups of one rule, order them lazily with a heap
TERM_CACHE_IDS = 2_000_000  # ids held by the per-term cache (tens of MB) before it starts over

SEARCH_PARAMS = SEARCH_FIELDS  # one list for Miroir and the devnode
FACET_SEARCH_PARAMS = _FACET_FIELDS  # one list for Miroir and the devnode (1.50's)


def default_settings() -> dict:
    """Meilisearch's default settings object (one definition: core/settings.py). The
    vector-search, localization, chat and foreign-key settings are stored and shown,
    not applied."""
    return copy.deepcopy(_MEILI_DEFAULTS)


def _numeric_word(word: str) -> bool:
    return all(c.isnumeric() or (c.isascii() and not c.isalnum() and c.isprintable() and c != " ") for c in word)


def attribute_names(entries: list) -> list[str]:
    """filterableAttributes may hold names or (Meilisearch >= 1.14) pattern objects."""
    return attr_patterns.filterable_patterns(entries)


def matches_attribute(path: str, patterns: list[str]) -> bool:
    """Is `path` covered by one of `patterns` (wildcards, exact, or nested in a named field)?"""
    return attr_patterns.covers_any(patterns, path)


class IndexEngine:
    def __init__(self, uid: str, primary_key: str | None = None, settings: dict | None = None):
        self.uid = uid
        self.primary_key = primary_key
        self.settings = default_settings()
        self._docs: dict[int, dict] = {}
        self._ext: dict[str, int] = {}
        self._next_iid = 0
        self._free_iids: list[int] = []  # a heap: ids of deleted documents, reused lowest first
        self._post: dict[str, dict[int, list[int]]] = {}
        self._wcount: dict[int, dict[int, int]] = {}
        # How many indexed texts read as each CJK language: a query in ideographs alone is
        # Japanese when the index holds no Chinese (milli gives the tokenizer the languages
        # its documents were detected in).
        self._cjk_texts: dict[str, int] = {}
        self._fields: list[str] = []
        self._fid: dict[str, int] = {}
        self._vocab: list[str] | None = None
        self._typo_cache: dict[tuple, list] = {}
        self._facet_cache: dict[str, dict] = {}
        self._poscost: dict[tuple[str, int], list] = {}  # (word, query position) -> [(cost, iids)]
        self._sort_keys: dict[tuple[str, bool], dict] = {}  # (field, asc) -> iid -> sort key
        self._fsets: FilterSets | None = None  # filter evaluation on id sets, per version
        self.features: dict = {}  # the node's /experimental-features flags (set by its task queue)
        # Filter value -> its parse tree (frozen structs, shared): Miroir ANDs the same
        # `_miroir_shard IN [...]` to every search it sends a node. Checked every time.
        self._parsed_filters: dict[Any, Any] = {}
        # Per query term (word, typos, prefix, field view): its documents, its position-
        # and weight-cost buckets; per (word, searched fields): the word's postings there.
        self._term_cache: dict[tuple, Any] = {}
        self._term_cache_ids = 0
        # word -> bit set of the fids it occurred in (bits are not cleared when a document
        # goes: a superset, which only costs a needless narrowing; exact after reindex).
        self._fmask: dict[str, int] = {}
        # Tests: rank restricted searches the per-document way (the definition the fast
        # rule keys are checked against, tests/test_devnode_restricted_equivalence.py).
        self.reference_ranking = False
        self.vectors = vectors.VectorStore()  # embedder -> iid -> embeddings (devnode/vectors.py)
        self._apply_settings(settings or self.settings, reindex=False)

    # ------------------------------------------------------------------ settings

    def set_settings(self, settings: dict) -> None:
        old = self._tokenizer_settings()
        old_embedders = self.settings.get("embedders")
        self._apply_settings(settings, reindex=False)
        if self._tokenizer_settings() != old:
            self._reindex()
        if self.settings.get("embedders") != old_embedders:
            vectors.reembed_all(self)

    def _tokenizer_settings(self) -> tuple:
        s = self.settings
        rules = tuple(
            (tuple(r.get("attributePatterns") or ()), tuple(r.get("locales") or ()))
            for r in s.get("localizedAttributes") or ()
        )
        return (tuple(s["separatorTokens"]), tuple(s["nonSeparatorTokens"]), tuple(s["dictionary"]), rules)

    def _apply_settings(self, settings: dict, reindex: bool) -> None:
        merged = default_settings()
        for k, v in settings.items():
            merged[k] = copy.deepcopy(v)
        self.settings = merged
        s = merged
        self.tokenizer = Tokenizer(s["separatorTokens"], s["nonSeparatorTokens"], s["dictionary"])
        # localizedAttributes: (patterns, locales) in order, the first matching rule wins.
        self._locale_rules = [
            (list(r.get("attributePatterns") or ()), frozenset(locales_mod.canonical(x) for x in r.get("locales") or ()))
            for r in s.get("localizedAttributes") or ()
        ]
        self._tokenizers: dict[frozenset, Tokenizer] = {frozenset(): self.tokenizer}
        self._field_tokenizers: dict[str, Tokenizer] = {}
        self._stop_words = frozenset(normalize(w) for w in s["stopWords"])
        # One-word synonyms of one-word terms (milli ranks a synonym as a zero-typo, not
        # exact, derivation of the term); longer ones are not applied here.
        self._synonyms: dict[str, list[str]] = {}
        for key, values in (s.get("synonyms") or {}).items():
            key_words = [w for _, w in self.tokenizer.words(key)]
            if len(key_words) != 1:
                continue
            for value in values:
                value_words = [w for _, w in self.tokenizer.words(value)]
                if len(value_words) == 1 and value_words[0] != key_words[0]:
                    self._synonyms.setdefault(key_words[0], []).append(value_words[0])
        typo = s["typoTolerance"] or {}
        sizes = typo.get("minWordSizeForTypos") or {}
        self._typo_enabled = typo.get("enabled", True)
        self._one_typo = sizes.get("oneTypo", 5)
        self._two_typos = sizes.get("twoTypos", 9)
        self._typo_disabled_words = frozenset(normalize(w) for w in typo.get("disableOnWords") or [])
        self._typo_disabled_attrs = list(typo.get("disableOnAttributes") or [])
        # milli indexes words made only of digits and punctuation as exact words then:
        # no typo derivation reaches them (disabled_typos_terms.rs::is_exact).
        self._typo_off_numbers = bool(typo.get("disableOnNumbers"))
        self._typo_cache.clear()
        self._term_cache.clear()
        self._term_cache_ids = 0
        if reindex:
            self._reindex()

    def _weights(self, restrict: list[str] | None = None) -> tuple[dict[int, int], int, bool]:
        """fid -> attribute weight for searchable fields, the max weight, and whether every
        field is searchable. With `["*"]` all fields weigh the same: Meilisearch would weigh
        them by the order fields were first seen in the index, which depends on other
        documents and would break shard-independent scores."""
        searchable = self.settings["searchableAttributes"]
        weights: dict[int, int] = {}
        if "*" in searchable:
            for fid, name in enumerate(self._fields):
                if restrict is None or matches_attribute(name, restrict):
                    weights[fid] = 0
            return weights, 0, restrict is None
        for fid, name in enumerate(self._fields):
            for w, attr in enumerate(searchable):
                if attr_patterns.is_nested_in(name, attr):
                    if restrict is None or matches_attribute(name, restrict):
                        weights[fid] = w
                    break
        return weights, max(len(searchable) - 1, 0), False

    # ------------------------------------------------------------------ documents

    def add_documents(self, docs: list[dict], primary_key: str | None, *, partial: bool, skip_creation: bool = False) -> int:
        """Returns how many documents were written (`skip_creation`: ids not held are skipped)."""
        if not docs:
            # No document to infer a key from, and none to fail: 1.50 only keeps a key
            # given by the batch.
            if self.primary_key is None and primary_key is not None:
                self.primary_key = primary_key
            return 0
        pk = resolve_primary_key(self.primary_key, primary_key, docs, self.uid)
        ids = [document_id(d, pk) for d in docs]  # validates every document first
        vectors.check_user_provided(self, ids, docs, skip_creation)
        self.primary_key = pk
        written = 0
        reused = False
        to_embed: list[tuple[str, int]] = []
        # With embedders, `_vectors` goes to the vector store, not the document's fields
        # (without any, it stays a plain field, as the dumps of older versions hold it).
        has_embedders = bool(self.settings.get("embedders"))
        for ext, doc in zip(ids, docs):
            explicit = None
            if has_embedders and "_vectors" in doc:
                explicit = doc["_vectors"]
                doc = {k: v for k, v in doc.items() if k != "_vectors"}
            iid = self._ext.get(ext)
            if iid is None and skip_creation:
                continue
            written += 1
            if iid is not None:
                old = self._docs[iid]
                new = {**old, **doc} if partial else doc
                self._unindex(iid, old)
            else:
                if self._free_iids:
                    iid = heapq.heappop(self._free_iids)
                    reused = True
                else:
                    iid = self._next_iid
                    self._next_iid += 1
                self._ext[ext] = iid
                new = doc
            self._docs[iid] = new
            self._index(iid, new)
            to_embed += vectors.store_vectors(self, iid, explicit, replaced=not partial)
        if reused:
            # Listings and placeholder candidates read `_docs` in internal-id order.
            ordered = sorted(self._docs.items())
            self._docs.clear()
            self._docs.update(ordered)
        if to_embed:
            vectors.embed_documents(self, to_embed)
        self._changed()
        return written

    def delete_documents(self, ids: list) -> int:
        deleted = 0
        for raw in ids:
            ext = raw if isinstance(raw, str) else str(raw)
            iid = self._ext.pop(ext, None)
            if iid is not None:
                self._unindex(iid, self._docs.pop(iid))
                self.vectors.forget(iid)
                heapq.heappush(self._free_iids, iid)
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
        self._next_iid = 0  # every id is free again
        self._free_iids.clear()
        self._post.clear()
        self._wcount.clear()
        self._cjk_texts.clear()
        self._fmask.clear()
        self.vectors.clear()
        self._changed()
        return n

    def _changed(self) -> None:
        self._vocab = None
        self._poscost.clear()
        self._fsets = None
        self._sort_keys.clear()
        self._term_cache.clear()
        self._term_cache_ids = 0
        self._typo_cache.clear()
        self._facet_cache.clear()

    def field_names(self) -> list[str]:
        """Every field name documents brought, objects holding others included (milli's
        fields ids map: `doggos` beside `doggos.name`)."""
        names = dict.fromkeys(self._fields)
        for name in self._fields:
            i = name.find(".")
            while i != -1:
                names.setdefault(name[:i])
                i = name.find(".", i + 1)
        return list(names)

    def _field_id(self, name: str) -> int:
        fid = self._fid.get(name)
        if fid is None:
            fid = self._fid[name] = len(self._fields)
            self._fields.append(name)
        return fid

    def _tokenizer_for(self, locales: frozenset) -> Tokenizer:
        tok = self._tokenizers.get(locales)
        if tok is None:
            s = self.settings
            tok = Tokenizer(s["separatorTokens"], s["nonSeparatorTokens"], s["dictionary"], locales)
            self._tokenizers[locales] = tok
        return tok

    def _field_locales(self, path: str) -> frozenset | None:
        """The locales of the first localizedAttributes rule matching `path`, or None."""
        for patterns, locales in self._locale_rules:
            if any(attr_patterns.match_pattern(p, path) is attr_patterns.MATCH for p in patterns):
                return locales
        return None

    def _field_tokenizer(self, path: str) -> Tokenizer:
        tok = self._field_tokenizers.get(path)
        if tok is None:
            tok = self._tokenizer_for(self._field_locales(path) or frozenset())
            self._field_tokenizers[path] = tok
        return tok

    def _query_tokenizer(self, locales: list[str] | None, restrict: list[str] | None) -> Tokenizer:
        """The search's `locales`, else those of the rules matching the searched fields
        (1.50 infers the query's language so)."""
        if locales:
            return self._tokenizer_for(frozenset(locales_mod.canonical(x) for x in locales))
        if not self._locale_rules:
            if self._cjk_texts.get("jpn", 0) > 0 and self._cjk_texts.get("cmn", 0) <= 0:
                return self._tokenizer_for(frozenset({"jpn"}))
            return self.tokenizer
        searched = restrict if restrict is not None else self._searchable_names()
        if "*" in searched:
            searched = list(self._fields)
        inferred: set[str] = set()
        for name in searched:
            inferred |= self._field_locales(name) or frozenset()
        return self._tokenizer_for(frozenset(inferred))

    def _doc_words(self, doc: dict, tally: int = 0) -> Iterator[tuple[int, int, str]]:
        """(fid, position, word) for every word of every field of `doc`; `tally` (+1 or
        -1) counts its CJK texts in or out of _cjk_texts."""
        cjk = self._cjk_texts
        for path, value in flatten(doc):
            texts = value_texts(value)
            if not texts:
                continue
            tok = self._field_tokenizer(path)
            words = tok.words
            fid = self._field_id(path)
            base = 0
            for text in texts:
                if tally and not text.isascii():
                    lang = tok.cjk_language(text)
                    if lang is not None:
                        cjk[lang] = cjk.get(lang, 0) + tally
                last = -1
                for pos, word in words(text):
                    p = base + pos
                    if p > MAX_POSITION:
                        break
                    last = p
                    yield fid, p, word
                base = (last if last >= 0 else base) + VALUE_GAP

    def _index(self, iid: int, doc: dict) -> None:
        post = self._post
        fmask = self._fmask
        counts: dict[int, int] = {}
        for fid, pos, word in self._doc_words(doc, 1):
            counts[fid] = counts.get(fid, 0) + 1
            per_doc = post.get(word)
            if per_doc is None:
                post[word] = {iid: [fid << POS_BITS | pos]}
                fmask[word] = fmask.get(word, 0) | 1 << fid
            else:
                occ = per_doc.get(iid)
                if occ is None:
                    per_doc[iid] = [fid << POS_BITS | pos]
                else:
                    occ.append(fid << POS_BITS | pos)
                m = fmask[word]
                if not m >> fid & 1:
                    fmask[word] = m | 1 << fid
        self._wcount[iid] = counts

    def _unindex(self, iid: int, doc: dict) -> None:
        for _, _, word in self._doc_words(doc, -1):
            per_doc = self._post.get(word)
            if per_doc is not None and per_doc.pop(iid, None) is not None and not per_doc:
                del self._post[word]
        self._wcount.pop(iid, None)

    def _reindex(self) -> None:
        self._post.clear()
        self._wcount.clear()
        self._cjk_texts.clear()
        self._fmask.clear()
        for iid, doc in self._docs.items():
            self._index(iid, doc)
        self._changed()

    def get_document(self, doc_id, fields: list[str] | None = None, retrieve_vectors: bool = False) -> dict:
        ext = doc_id if isinstance(doc_id, str) else str(doc_id)
        iid = self._ext.get(ext)
        if iid is None:
            raise MeiliError("document_not_found", f"Document `{ext}` not found.")
        return self._with_vectors(iid, self._project(self._docs[iid], fields), retrieve_vectors)

    def _with_vectors(self, iid: int, doc: dict, retrieve: bool) -> dict:
        """`doc` (a projected copy) with `_vectors` as 1.50 shows it: hidden unless
        `retrieveVectors`, and then always there: the document's own `_vectors` (names
        no embedder reads) with each configured embedder's embeddings."""
        own = doc.pop("_vectors", None)
        if retrieve:
            shown = dict(own) if isinstance(own, dict) else {}
            confs = self.settings.get("embedders")
            if confs:
                shown.update(self.vectors.retrieved(iid, confs))
            doc["_vectors"] = shown
        return doc

    def get_documents(self, *, offset: int = 0, limit: int = 20, fields=None, filter=None, ids=None,
                      sort=None, retrieve_vectors: bool = False) -> dict:
        pred = self._compile_filter(filter, "invalid_document_filter")
        if ids is not None:
            wanted = {i if isinstance(i, str) else str(i) for i in ids}
            iids = sorted(self._ext[e] for e in wanted if e in self._ext)
        else:
            # A replaced document keeps its dict slot, so dict order == internal-id order.
            iids = list(self._docs)
        if pred is not None:
            iids = [i for i in iids if pred(self._docs[i])]
        if sort:  # [(attribute, ascending)]; ties keep internal-id order (stable sort)
            iids.sort(key=lambda i: document_sort_key(self._docs[i], sort))
        page = iids[offset : offset + limit]
        return {
            "results": [self._with_vectors(i, self._project(self._docs[i], fields), retrieve_vectors) for i in page],
            "offset": offset,
            "limit": limit,
            "total": len(iids),
        }

    def _displayed(self) -> list[str]:
        return self.settings["displayedAttributes"]

    def _project(self, doc: dict, fields: list[str] | None) -> dict:
        displayed = self._displayed()
        if displayed == ["*"] and (fields is None or "*" in fields):
            return dict(doc)  # every field shown, none narrowed: what the loop below gives
        if displayed == ["*"] and not any("." in f or "*" in f for f in fields):
            # Plain top-level names: a key is kept whole iff it is one of them.
            wanted = set(fields)
            return {k: v for k, v in doc.items() if k in wanted}
        out = {}
        for k, v in doc.items():
            if not matches_attribute(k, displayed) and not _has_child(displayed, k):
                continue
            if fields is not None and fields != ["*"] and "*" not in fields:
                # As milli's select_values: a key named, or holding a named field; a dotted
                # key (`content.truc`) is not part of `content`.
                if not _retrieved(k, fields) and not _has_child(fields, k):
                    continue
                v = _narrow(v, k, fields)
            v = _narrow(v, k, displayed) if displayed != ["*"] else v
            out[k] = v
        return out

    def documents(self):
        """Every stored document as held (no projection), in internal-id order."""
        return self._docs.values()

    def stats(self) -> dict:
        dist: dict[str, int] = {}
        for doc in self._docs.values():
            for k in doc:
                dist[k] = dist.get(k, 0) + 1
        dist.pop("_vectors", None)  # 1.50 does not count the embeddings' field
        embeddings, embedded = self.vectors.stats()
        return {"numberOfDocuments": len(self._docs), "isIndexing": False, "numberOfEmbeddings": embeddings,
                "numberOfEmbeddedDocuments": embedded, "fieldDistribution": dict(sorted(dist.items()))}

    # ------------------------------------------------------------------ dump / restore

    def dump(self) -> dict:
        return {
            "uid": self.uid,
            "primaryKey": self.primary_key,
            "settings": self.settings,
            "documents": [self._dumped(i) for i in sorted(self._docs)],
        }

    def _dumped(self, iid: int) -> dict:
        kept = vectors.document_vectors(self, iid)
        return {**self._docs[iid], "_vectors": kept} if kept else self._docs[iid]

    @classmethod
    def restore(cls, d: dict) -> IndexEngine:
        eng = cls(d["uid"], d.get("primaryKey"), d.get("settings"))
        docs = d.get("documents") or []
        if docs:
            eng.add_documents(docs, eng.primary_key, partial=False)
        return eng

    # ------------------------------------------------------------------ filters

    def _filterable(self) -> list[str]:
        return attribute_names(self.settings["filterableAttributes"])

    def _shown_filterable_patterns(self) -> tuple[list[str], bool]:
        """The filterable patterns an error may list (milli lists the displayed ones) and
        whether some were left out (`<..hidden-attributes>`)."""
        return self._displayed_only(sorted(set(attr_patterns.filterable_patterns(self.settings["filterableAttributes"]))))

    def _displayed_only(self, patterns: list[str]) -> tuple[list[str], bool]:
        displayed = self.settings.get("displayedAttributes") or ["*"]
        if "*" in displayed:
            return patterns, False
        shown = [p for p in patterns if p in displayed]
        return shown, len(shown) < len(patterns)

    def _compile_filter(self, value, code: str) -> Callable[[dict], bool] | None:
        expr = self._parse_filter(value, code)
        if expr is None:
            return None
        if filter_mod.vector_filter_position(expr) is not None:
            # `_vectors` filters read the vector store: evaluated on id sets, then looked up
            chosen = set(self._filter_sets().select(expr, None))
            by_doc = {id(self._docs[i]) for i in chosen}
            return lambda doc: id(doc) in by_doc
        return filter_mod.compile_filter(expr)

    def _parse_filter(self, value, code: str, *, search: bool = False):
        """The parsed, checked filter (compiled once, which validates geo arguments).
        `search`: a search's filter, whose errors point into its re-serialized text."""
        if value is None:
            return None
        try:
            key = _filter_key(value)
            expr = self._parsed_filters.get(key, _MISSING) if key is not None else _MISSING
            if expr is _MISSING:
                expr = filter_mod.route_filter(value, code, self.features)
                if key is not None:
                    if len(self._parsed_filters) >= PARSED_FILTERS:
                        self._parsed_filters.clear()
                    self._parsed_filters[key] = expr
            if expr is None:
                return None
            if not self.features.get("containsFilter") and filter_mod.contains_keyword(expr) is not None:
                filter_mod.route_filter(value, code, self.features)  # the feature was turned off since
            vector_at = filter_mod.vector_filter_position(expr)
            if vector_at is not None and not self.features.get("multimodal"):
                raise MeiliError(
                    "feature_not_enabled",
                    "using a vector filter requires enabling the `multimodal` experimental feature. "
                    f"See https://github.com/orgs/meilisearch/discussions/846\n{vector_at}",
                )
            check = filter_mod.check_search_filterable if search else filter_mod.check_filterable
            check(expr, self.settings["filterableAttributes"])
            filter_mod.check_filter_features(expr, self.settings["filterableAttributes"], self._fid)
            filter_mod.compile_filter(expr)
        except filter_mod.FilterError as e:
            raise e.with_code(code) from None
        if vector_at is not None:
            similar = code == "invalid_similar_filter"  # `/similar` words it as written, unprefixed
            try:
                filter_mod.check_vector_filters(expr, vectors.fragment_names(self), serialized=not similar)
            except filter_mod.FilterError as e:
                raise MeiliError(code, e.message if similar else f"Index `{self.uid}`: {e.message}") from None
        return expr

    def _filter_sets(self) -> FilterSets:
        if self._fsets is None:
            self._fsets = FilterSets(self._docs, lambda leaf: vectors.filter_ids(self, leaf))
        return self._fsets

    # ------------------------------------------------------------------ search

    def max_total_hits(self) -> int:
        """`pagination.maxTotalHits`: no hit past it, totals capped at it."""
        return int((self.settings.get("pagination") or {}).get("maxTotalHits", _MEILI_DEFAULTS["pagination"]["maxTotalHits"]))

    def search_params(self, params: dict) -> _SearchParams:
        return _SearchParams(params, self)

    # --- what a federated search reads beside the hits (devnode/app.py) ---------------

    def internal_id(self, external: Any) -> int | None:
        """The internal id of the document whose primary key is `external`."""
        return self._ext.get(external if isinstance(external, str) else str(external))

    def candidates(self, params: dict) -> list[int]:
        """Every document a keyword search's query and filter match (1.50's candidates)."""
        p = self.search_params(params)
        return self._plan(p.q, p.matching_strategy, p.filter_expr, p.attributes_to_search_on, params.get("locales")).candidates

    def facets_of(self, names: list[str], iids: list[int]) -> tuple[dict, dict]:
        """(facetDistribution, facetStats) of `names` over the documents `iids`."""
        return self._facets(names, iids)

    def search(self, params: dict, hit_ids: list[int] | None = None) -> dict:
        """A search's answer; `hit_ids` (a keyword search) receives the internal id of each
        hit, which a federated search needs to show a document once per index."""
        started = time.perf_counter()
        semantic = vectors.search(self, params)  # None: a keyword search, as below
        if semantic is not None:
            semantic["processingTimeMs"] = int((time.perf_counter() - started) * 1000)
            return semantic
        p = _SearchParams(params, self)
        plan = self._plan(p.q, p.matching_strategy, p.filter_expr, p.attributes_to_search_on, params.get("locales"))
        distinct = p.distinct if p.distinct is not None else self.settings["distinctAttribute"]
        max_total = self.max_total_hits()

        if p.page_mode:
            want_offset = (p.page - 1) * p.hits_per_page if p.page > 0 else 0
            want = p.hits_per_page if p.page > 0 else 0
        else:
            want_offset, want = p.offset, p.limit
        end = min(want_offset + want, max_total)

        rules = self._rules(plan, p.sort, p.matching_strategy)
        # Applied only when set: Meilisearch's 1.5 s default would make answers depend on
        # the machine's load, and the devnode answers tests.
        cutoff = self.settings.get("searchCutoffMs")
        detailed = p.show_ranking_score or p.show_ranking_score_details or p.ranking_score_threshold is not None
        order = _BucketSort(plan, rules, None if cutoff is None else started + cutoff / 1000, detailed)
        selected: list[int] = []
        seen_distinct: set = set()
        threshold = p.ranking_score_threshold
        if threshold is not None:
            order.ensure_hits(plan.candidates)  # every candidate gets scored: one batch
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
            elif not rules and not p.page_mode:  # page mode: milli counts exhaustively
                total = self._distinct_estimate(plan.candidates, distinct, selected, want_offset)
            else:
                total = self._distinct_count(plan.candidates, distinct)
        else:
            total = len(plan.candidates)
        page_iids = selected[want_offset:end]
        if p.show_ranking_score or p.show_ranking_score_details:
            order.ensure_hits(page_iids)

        hits = [self._hit(iid, p, plan, order) for iid in page_iids]
        if hit_ids is not None:
            hit_ids.extend(page_iids)
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
        if p.personalize:  # 1.50 reranks after the search, and refuses without a key
            raise personalization_disabled()
        elapsed = time.perf_counter() - started
        out["processingTimeMs"] = int(elapsed * 1000)
        if p.show_performance_details:  # the app moves it after `requestUid`
            out["performanceDetails"] = {"search": rust_duration(elapsed), "search > format": rust_duration(0.0)}
        return out

    def _distinct_new(self, iid: int, attr: str, seen: set) -> bool:
        # The facet index holds each document's distinct facet keys of `attr` (none for
        # a missing, null or key-less value: such documents are all kept).
        keys = self._facet_index(attr).per_doc.get(iid)
        if not keys:
            return True
        for k in keys:
            if k in seen:
                return False
        seen.update(keys)
        return True

    def _distinct_estimate(self, candidates: list[int], attr: str, taken: list[int], offset: int) -> int:
        """milli's count for a search without ranking rules (a placeholder search, no sort)
        under distinct: it walks the documents in id order until it has the page's last
        hit, so the count leaves out only the documents sharing a distinct value with a
        document taken (Meilisearch answers 11, then 10, then 6 for the same 14)."""
        if len(candidates) < offset:
            return len(candidates)
        index = self._facet_index(attr)
        excluded: set[int] = set()
        for iid in taken:
            for k in index.per_doc.get(iid) or ():
                excluded |= index.by_key[k]
        if not excluded:
            return len(candidates)
        dropped = sum(1 for iid in candidates if iid in excluded)
        return len(candidates) - dropped + sum(1 for iid in taken if iid in excluded)

    def _distinct_count(self, candidates, attr: str) -> int:
        per_doc = self._facet_index(attr).per_doc
        seen: set = set()
        n = 0
        for iid in sorted(candidates):  # internal-id order
            keys = per_doc.get(iid)
            if not keys:
                n += 1
                continue
            for k in keys:
                if k in seen:
                    break
            else:
                seen.update(keys)
                n += 1
        return n

    def _hit(self, iid: int, p: _SearchParams, plan: _Plan, order: _BucketSort) -> dict:
        doc = self._docs[iid]
        hit = self._with_vectors(iid, self._project(doc, p.attributes_to_retrieve), p.retrieve_vectors)
        if p.formatting or p.show_matches_position:
            matcher = highlight.Matcher(self.tokenizer, plan.match_words, plan.prefix_words, plan.cut_words)
            shown = self._project(doc, None)
            if p.formatting:
                hit["_formatted"] = highlight.format_document(
                    self._formatted_source(shown, hit, p),
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
        if p.geo_origin is not None:
            dist = geo.geo_distance(p.geo_origin, hit)
            if dist is not None:
                hit["_geoDistance"] = dist
        if p.show_ranking_score:
            hit["_rankingScore"] = order.score(iid)
        if p.show_ranking_score_details:
            hit["_rankingScoreDetails"] = order.details(iid)
        return hit

    @staticmethod
    def _formatted_source(shown: dict, hit: dict, p: _SearchParams) -> dict:
        """The fields `_formatted` shows: the retrieved ones and those highlighted or
        cropped, a nested name (`doggos.name`) bringing its part of its parent
        (formatted.rs format_nested: `attributesToRetrieve: []` with `doggos.name`
        highlighted formats `doggos: [{name}, ...]`)."""
        nested = [n for n in p._formatted_names if "." in n]
        out = {}
        for k, v in shown.items():
            if k in hit or p.attributes_to_retrieve is None or p.formats(k):
                out[k] = v
            elif any(n.startswith(k + ".") for n in nested):
                out[k] = _narrow(v, k, nested)
        return out

    def _searchable_names(self) -> list[str]:
        return self.settings["searchableAttributes"]

    # ---------------------------------------------------------- planning

    def _plan(
        self, q: str, strategy: str, filter_expr, restrict: list[str] | None, locales: list[str] | None = None
    ) -> _Plan:
        plan = _Plan()
        plan.docs = self._docs
        plan.engine = self
        tokenizer = self._query_tokenizer(locales, restrict)
        ops = phrases.parse(q, tokenizer, self._stop_words) if q and phrases.has_operators(q) else None
        if ops is not None and not ops.active:
            ops = None
        if ops is not None:
            terms = ops.terms
        else:
            terms = query_terms(q, tokenizer, self._stop_words) if q else []
        weights, max_weight, all_fields = self._weights(restrict)
        plan.ctx = Context(max_weight=max_weight, by_attribute=self.settings["proximityPrecision"] == "byAttribute")
        plan.wcount = self._wcount
        if not terms:
            if filter_expr is None:
                plan.candidates = list(self._docs)
            else:
                plan.candidates = self._filter_sets().select(filter_expr, None)
            if ops is not None:  # only negative terms: a placeholder search without them
                excluded = phrases.excluded_docs(self._post, ops, plan.ctx.by_attribute)
                plan.candidates = [iid for iid in plan.candidates if iid not in excluded]
            return plan
        prefix_ok = ends_on_word(q, tokenizer) and self.settings.get("prefixSearch", "indexingTime") != "disabled"
        if ops is not None:
            prefix_ok = prefix_ok and ops.last_is_word
        qterms: list[QueryTerm] = []
        derivs: list[list[tuple[str, int, bool]]] = []
        for n, (qi, word) in enumerate(terms):
            is_prefix = prefix_ok and n == len(terms) - 1
            max_typos = self._max_typos(word)
            in_phrase = ops is not None and n in ops.mandatory
            if in_phrase:  # a phrase's word: exact
                is_prefix, max_typos = False, 0
            qterms.append(QueryTerm(qi, word, max_typos, is_prefix, in_phrase))
            derivs.append(self._derivations(word, max_typos, is_prefix))
            synonyms = self._synonyms.get(word, ())
            if is_prefix:
                # milli highlights what a typo derivation of the last word starts with up to
                # the query word's length (`tolkin` marks `Tolkie`); a synonym is a phrase,
                # marked whole; words the query word prefixes are marked by `prefix_words`.
                plan.prefix_words.add(word)
                for w, t, _ in derivs[-1]:
                    if w in synonyms:
                        plan.match_words.add(w)
                    elif t:
                        plan.cut_words[w] = min(plan.cut_words.get(w, len(word)), len(word))
            else:
                plan.match_words.update(w for w, _, _ in derivs[-1])
        plan.terms = qterms
        # Whether the ExactAttribute rule may consider each term. milli ignores a word
        # that no document holds; judging that here would make a document's match type
        # depend on what its node holds (a shard without the word would say otherwise
        # than one node), so only stop words, never indexed, are ignored.
        plan.has_exact = [t.word not in self._stop_words for t in qterms]
        restricted = not all_fields or bool(self._typo_disabled_attrs)
        typo_off = {fid for fid, name in enumerate(self._fields) if matches_attribute(name, self._typo_disabled_attrs)}
        plan.weights = weights
        plan.typo_off = typo_off
        plan.view = _FieldView(weights, typo_off) if restricted else None
        plan.reference = restricted and self.reference_ranking
        plan.derivs = derivs
        if plan.reference:
            # The definition: every matching document's TermHits, built up front.
            hits_per_term = [self._term_hits(dv, weights, typo_off, True, None) for dv in derivs]
            sets = [set(h) for h in hits_per_term]
        else:
            # A term's documents are the union of its derivations' postings (in the
            # searched fields), and the (costlier) per-document matches are built for
            # the documents the bucket sort compares only (_BucketSort.ensure_hits).
            plan.tpost = [[(w, typos, exact, *self._view_postings(w, typos, plan.view)) for w, typos, exact in dv]
                          for dv in derivs]
            plan.tsig = [None if all(vk is None for *_, vk in tp) else plan.view.key for tp in plan.tpost]
            sets = [
                self._cached(("docs", t.word, t.max_typos, t.prefix, sig),
                             lambda tp=tp: set().union(*(per.keys() for _, _, _, per, _ in tp if per)))
                for t, tp, sig in zip(qterms, plan.tpost, plan.tsig)
            ]
        mandatory = ops.mandatory if ops is not None else set()
        subsets = phrases.kept_subsets(len(qterms), mandatory, strategy, [len(s) for s in sets])
        bucket: dict[int, int] = {}
        cur: set[int] | None = None
        for j in range(len(subsets) - 1, -1, -1):
            added = subsets[j] - (subsets[j + 1] if j + 1 < len(subsets) else frozenset())
            for ti in sorted(added):
                cur = set(sets[ti]) if cur is None else cur & sets[ti]
            if cur is not None:
                bucket.update(dict.fromkeys(cur, j))  # better buckets overwrite
        if ops is not None:
            allowed = set(bucket)
            by_attribute = plan.ctx.by_attribute
            for words in ops.phrases:
                allowed = phrases.phrase_docs(self._post, words, allowed, by_attribute)
            allowed -= phrases.excluded_docs(self._post, ops, by_attribute)
            bucket = {iid: b for iid, b in bucket.items() if iid in allowed}
        plan.kept = [sorted(s) for s in subsets]
        plan.bucket = bucket
        cands = sorted(bucket)
        if filter_expr is not None:
            cands = self._filter_sets().select(filter_expr, cands)
        plan.candidates = cands
        plan.hits = hits_per_term if plan.reference else [{} for _ in derivs]
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
            for cand, d in typo_matches(vocab, word, max_typos, prefix).items():
                if cand not in found and not (d and self._typo_off_numbers and _numeric_word(cand)):
                    found[cand] = d
        for synonym in self._synonyms.get(word, ()):
            if synonym in self._post:
                found[synonym] = 0  # a synonym is a zero-typo match, even if a typo reaches it too
        # milli does not index stop words: a term never reaches one (the last word `the`
        # of `to the` finds `theme`, not `the`).
        out = [(w, t, w == word) for w, t in found.items() if w not in self._stop_words]
        if len(self._typo_cache) > 4096:
            self._typo_cache.clear()
        self._typo_cache[key] = out
        return out

    def _cached(self, key: tuple, build: Callable[[], Any]):
        """self._term_cache[key], built on a miss; values are sets of ids, postings
        (id -> occurrences) or lists of (cost, set of ids), never mutated by their users."""
        got = self._term_cache.get(key)
        if got is None:
            got = build()
            size = len(got) if isinstance(got, (set, dict)) else sum(len(ids) for _, ids in got)
            if self._term_cache_ids + size > TERM_CACHE_IDS:
                self._term_cache.clear()
                self._term_cache_ids = 0
            self._term_cache[key] = got
            self._term_cache_ids += size
        return got

    def _view_postings(self, word: str, typos: int, view: _FieldView | None) -> tuple[dict | None, Any]:
        """The postings of `word` (a derivation with `typos` typos) in the fields `view`
        searches, and None when they are the word's whole postings (it occurs in no
        other field) or else the key naming that field set in the caches."""
        per = self._post.get(word)
        if view is None or not per:
            return per, None
        if typos:
            allowed, outside = view.allowed_typo, view.outside_typo
        else:
            allowed, outside = view.allowed, view.outside
        if not self._fmask[word] & outside:
            return per, None

        def build() -> dict:
            out = {}
            for iid, occs in per.items():
                if all((o >> POS_BITS) in allowed for o in occs):
                    out[iid] = occs
                else:
                    kept = [o for o in occs if (o >> POS_BITS) in allowed]
                    if kept:
                        out[iid] = kept
            return out

        return self._cached(("view", word, allowed), build), allowed

    def _position_costs(self, word: str, qi: int, per: dict | None = None, vkey=None) -> list[tuple[int, list[int]]]:
        """(cost, iids) for the documents holding `word` (postings `per`, the word's
        whole postings when `vkey` is None), by the smallest
        ranking.position_cost(position, qi) of its occurrences; built on first use."""
        key = (word, qi, vkey)
        out = self._poscost.get(key)
        if out is None:
            by_cost: dict[int, list[int]] = {}
            for iid, occs in (self._post[word] if per is None else per).items():
                if len(occs) == 1:
                    c = _cost_at(occs[0] & POS_MASK, qi)
                else:
                    c = _pos_cost(occs, qi)
                g = by_cost.get(c)
                if g is None:
                    by_cost[c] = [iid]
                else:
                    g.append(iid)
            out = list(by_cost.items())
            if len(self._poscost) > 65536:
                self._poscost.clear()
            self._poscost[key] = out
        return out

    def _weight_costs(self, word: str, per: dict, vkey, weights: dict[int, int], wsig) -> list[tuple[int, list[int]]]:
        """(weight, iids) for the documents holding `word` (postings `per`, narrowed to
        the view `vkey` if not None), by the smallest attribute weight of the fields the
        word occurs in; cached per (word, view, weights)."""

        def build() -> list[tuple[int, list[int]]]:
            by_weight: dict[int, list[int]] = {}
            for iid, occs in per.items():
                c = min(weights[o >> POS_BITS] for o in occs)
                g = by_weight.get(c)
                if g is None:
                    by_weight[c] = [iid]
                else:
                    g.append(iid)
            return list(by_weight.items())

        return self._cached(("wpost", word, vkey, wsig), build)

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

    def _rules(self, plan: _Plan, sort: list[tuple[Any, bool]] | None, strategy: str = "last") -> list[tuple[str, Any]]:
        """The ranking rules that apply to this search, in settings order. With
        `matchingStrategy: all` milli has no `words` rule: every document holds every word."""
        out: list[tuple[str, Any]] = []
        for rule in self.settings["rankingRules"]:
            if rule in ranking.TEXT_RULES:
                if plan.terms:
                    if rule == "words" and strategy == "all":
                        continue
                    if rule != "words" and strategy != "all" and not any(r[0] == "words" for r in out):
                        # milli ranks by `words` first whenever another text rule is
                        # listed, whether `words` is listed or comes later.
                        out.append(("words", None))
                    out.append((rule, None))
            elif rule == "sort":
                for name, asc in sort or []:
                    key = geo.details_key(name, asc) if isinstance(name, tuple) else f"{name}:{'asc' if asc else 'desc'}"
                    out.append((key, (name, asc)))
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
        max_values = int(faceting.get("maxValuesPerFacet", DEFAULT_MAX_VALUES_PER_FACET))
        sort_by = faceting.get("sortFacetValuesBy")
        dist: dict[str, dict] = {}
        stats: dict[str, dict] = {}
        everything = len(candidates) == len(self._docs)
        if len(names) > 1 and not everything and len(candidates) > 1024:
            candidates = set(candidates)  # converted once for every facet
        for name in names:
            index = self._facet_index(name)
            counts, lo, hi = facets_mod.count(index, candidates, everything)
            order = facet_order(sort_by, name)
            dist[name] = facets_mod.distribution(counts, index.display, order, max_values)
            if lo is not None:
                stats[name] = {"min": lo, "max": hi}
        return dist, stats

    def _facet_index(self, name: str) -> facets_mod.FacetIndex:
        idx = self._facet_cache.get(name)
        if idx is None:
            idx = self._facet_cache[name] = facets_mod.FacetIndex.build(name, self._docs)
        return idx

    def _distinct_universe(self, plan: _Plan, distinct: str, strategy: str, exhaustive: bool) -> list[int]:
        """The documents a facet search counts under a distinct attribute, as 1.50 gets
        them from a search for its first 20 hits: each hit taken (ranked order) drops
        the other documents sharing its distinct value, and documents past the 20th hit
        stay, duplicates or not (Meilisearch's distinct_facet_search_on_movies counts 27
        of 50 documents with 23 distinct colors). `exhaustiveFacetCount` runs distinct
        over every document (internal-id order): 23."""
        per_doc = self._facet_index(distinct).per_doc
        by_key = self._facet_index(distinct).by_key
        excluded: set[int] = set()
        if exhaustive:
            walk: Iterator[int] = iter(plan.candidates)
            wanted = len(plan.candidates)
        else:
            walk = _BucketSort(plan, self._rules(plan, None, strategy)).iterate(plan.candidates)
            wanted = 20  # the facet search's search: offset 0, limit 20
        taken = 0
        for iid in walk:
            if taken >= wanted:
                break
            if iid in excluded:
                continue
            for k in per_doc.get(iid) or ():
                excluded |= by_key[k]
            excluded.discard(iid)
            taken += 1
        return [iid for iid in plan.candidates if iid not in excluded]

    def _facet_query_matcher(self, name: str, query: str | None) -> Callable[[str], bool] | None:
        """Which values a facet query selects, as milli's facet search: the query prefixes
        the whole normalized value (`words` does not select `Multiple Words`), within the
        typos its length allows unless typos are off for the field or the word."""
        # Values and query are both read as the facet's language (localizedAttributes).
        fold = self._field_tokenizer(name).fold if self._locale_rules or not (query or "").isascii() else normalize
        q = fold(query.strip()) if query else ""
        if not q:
            return None
        if not self._typo_enabled or matches_attribute(name, self._typo_disabled_attrs):
            return lambda v: fold(v).startswith(q)
        if q in self._typo_disabled_words:
            return lambda v: fold(v) == q
        size = len(q.encode())
        k = 0 if size < self._one_typo else 1 if size < self._two_typos else 2
        if k == 0:
            return lambda v: fold(v).startswith(q)
        return lambda v: bounded_distance(q, fold(v), k, prefix=True) <= k

    def facet_search(self, params: dict) -> dict:
        started = time.perf_counter()
        # Meilisearch 1.50 ignores unknown fields here (`allow_unknown_fields`: clients
        # such as instant-meilisearch send their search parameters along).
        params = {k: v for k, v in params.items() if k in FACET_SEARCH_PARAMS}
        name = params.get("facetName")
        if not isinstance(name, str):
            raise MeiliError("missing_facet_search_facet_name", "Missing field `facetName`")
        if not self.settings.get("facetSearch", True):  # 1.50 checks this first
            raise MeiliError("facet_search_disabled", "The facet search is disabled for this index")
        rules = self.settings["filterableAttributes"]
        if not attr_patterns.is_facet_searchable(rules, name):
            searchable = sorted(set(attr_patterns.filterable_patterns(rules, feature="facetSearch")))
            shown, hidden = self._displayed_only(searchable)
            matched = next((i for i, r in enumerate(rules) if attr_patterns.rule_match(r, name) is attr_patterns.MATCH), None)
            raise not_facet_searchable(name, shown, hidden, matched)
        query = params.get("facetQuery")
        expr = self._parse_filter(params.get("filter"), "invalid_search_filter")
        strategy = params.get("matchingStrategy", "last")
        plan = self._plan(params.get("q") or "", strategy, expr, params.get("attributesToSearchOn"), params.get("locales"))
        candidates = plan.candidates
        distinct = self.settings["distinctAttribute"]
        if distinct is not None:
            exhaustive = params.get("exhaustiveFacetCount") is True
            candidates = self._distinct_universe(plan, distinct, strategy, exhaustive)
        index = self._facet_index(name)
        counts, _, _ = facets_mod.count(index, candidates, len(candidates) == len(self._docs))
        faceting = self.settings.get("faceting") or {}
        order = facet_order(faceting.get("sortFacetValuesBy"), name)
        max_values = int(faceting.get("maxValuesPerFacet", DEFAULT_MAX_VALUES_PER_FACET))
        field_locales = self._field_locales(name)
        asked = params.get("locales")
        if asked and field_locales and not field_locales & {locales_mod.canonical(x) for x in asked}:
            # 1.50: a facet localized in other languages than the query's has no value to offer.
            hits = []
        else:
            hits = facets_mod.search_values(counts, index.display, self._facet_query_matcher(name, query), order, max_values)
        return {
            "facetHits": hits,
            "facetQuery": query,
            "processingTimeMs": int((time.perf_counter() - started) * 1000),
        }


# ---------------------------------------------------------------------- helpers


_MISSING = object()
PARSED_FILTERS = 1024  # parse trees kept by IndexEngine._parse_filter before it starts over


def _filter_key(value) -> Any:
    """A hashable key for a filter in string or array form (None: not cached)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        out = []
        for e in value:
            if isinstance(e, str):
                out.append(e)
            elif isinstance(e, list) and all(isinstance(r, str) for r in e):
                out.append(tuple(e))
            else:
                return None
        return tuple(out)
    return None


def _has_child(patterns: list[str], key: str) -> bool:
    return any(p.startswith(key + ".") for p in patterns)


def _retrieved(key: str, fields: list[str]) -> bool:
    return matches_attribute(key, fields) if "." not in key else any(
        f == key or ("*" in f and attr_patterns.match_pattern(f, key) is attr_patterns.MATCH) for f in fields
    )


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


def _unknown_field(name: str, allowed) -> MeiliError:
    expected = ", ".join(f"`{a}`" for a in allowed)
    return MeiliError("bad_request", f"Unknown field `{name}`: expected one of {expected}")


class _Plan:
    """A planned query: terms, per-term matches, the `words` buckets, the candidates."""

    def __init__(self) -> None:
        self.terms: list[QueryTerm] = []
        self.derivs: list[list[tuple[str, int, bool]]] = []
        self.hits: list[dict[int, TermHit]] = []
        self.kept: list[list[int]] = []
        self.bucket: dict[int, int] = {}
        self.candidates: list[int] = []
        self.match_words: set[str] = set()
        self.prefix_words: set[str] = set()
        self.cut_words: dict[str, int] = {}  # a typo derivation of the last word -> chars marked
        self.docs: dict[int, dict] = {}
        self.wcount: dict[int, dict[int, int]] = {}
        self.ctx: Context | None = None
        self.weights: dict[int, int] = {}  # searched fid -> attribute weight
        self.typo_off: set[int] = set()  # fids where typo derivations do not count
        # The searched fields when not every occurrence counts (attributesToSearchOn, an
        # explicit searchableAttributes list, typo-disabled attributes), else None.
        self.view: _FieldView | None = None
        # Per term, per derivation: (word, typos, exact, postings in the view, view key
        # or None when those are the word's whole postings); per term, the view's key
        # when one of its derivations is narrowed (cache keys), else None.
        self.tpost: list[list[tuple]] = []
        self.tsig: list[Any] = []
        self.has_exact: list[bool] = []  # per term: the ExactAttribute rule considers it
        # The reference road (IndexEngine.reference_ranking, restricted searches only):
        # every TermHit built up front, every rule compared through emitted details.
        self.reference = False
        self.engine: IndexEngine | None = None
        self.built: set[int] = set()  # documents whose TermHits (every term) are built


class _FieldView:
    """The fields a restricted search matches in: `allowed` for the query words and their
    prefixes, `allowed_typo` (without typo-disabled attributes) for typo derivations."""

    __slots__ = ("allowed", "allowed_typo", "key", "outside", "outside_typo")

    def __init__(self, weights: dict[int, int], typo_off: set[int]):
        self.allowed = frozenset(weights)
        self.allowed_typo = self.allowed - typo_off
        self.key = (self.allowed, self.allowed_typo)
        # Bit sets of the fids not searched (IndexEngine._fmask: a word with no bit
        # here keeps its whole postings). Python ints: ~ gives infinitely many bits.
        self.outside = ~sum(1 << f for f in self.allowed)
        self.outside_typo = ~sum(1 << f for f in self.allowed_typo)


# cost_from_distance for every distance up to where it stops growing.
_COST = [ranking.cost_from_distance(d) for d in range(1026)]
# bucketed_position of the positions whose bucket is at most 1024 (further ones cost the most).
_BUCKETED = [ranking.bucketed_position(p) for p in range(1025)]


def _cost_at(pos: int, qi: int) -> int:
    """ranking.position_cost(pos, qi), from the tables."""
    if pos >= 1025:
        return ranking.position_cost(pos, qi)
    d = abs(_BUCKETED[pos] - qi)
    return _COST[d] if d < 1026 else ranking.MAX_POSITION_COST


def _pos_cost(occs: list[int], qi: int) -> int:
    """min ranking.position_cost(pos, qi) over packed occurrences."""
    best = ranking.MAX_POSITION_COST
    for o in occs:
        c = _cost_at(o & POS_MASK, qi)
        if c < best:
            best = c
            if not c:
                break
    return best


class _BucketSort:
    """Orders documents rule by rule, computing a rule only for the buckets still needed.

    Each rule's key is derived from the detail we emit for it, so comparing emitted
    details rule by rule (then internal id) gives exactly this order. Only the groups
    that are consumed get split by the next rule, and a rule is computed cheaply:

    - skipped when its key cannot differ inside the group (one bucket for `words`; no
      typo allowed; no adjacent query words for `proximity`);
    - `words` per bucket, `typo` from per-term "fewest typos" maps;
    - `proximity` on the packed postings, `attribute` from per-word weight- and
      position-cost buckets (one bucket and one word: the groups come straight out of
      set operations), `exactness` from the exact words' postings (documents holding
      none form one group). A restricted search (`plan.view`: attributesToSearchOn, an
      explicit searchableAttributes list, typo-disabled attributes) uses each word's
      postings in the searched fields: the word's own postings when it occurs in no
      other field (IndexEngine._fmask), else a narrowed copy cached per field set;
    - sort rules from keys cached per index version, many groups ordered with a heap.

    The per-document matches (TermHit) are built only for the details that are emitted
    (or scored against rankingScoreThreshold), and the fast keys equal those derived
    from the details (tests/test_devnode_speed_equivalence.py,
    tests/test_devnode_restricted_equivalence.py against `plan.reference`, the road
    that builds every TermHit up front and compares emitted details)."""

    def __init__(self, plan: _Plan, rules: list[tuple[str, Any]], deadline: float | None = None, detailed: bool = False):
        self.plan = plan
        self.rules = rules
        # milli's ScoringStrategy::Detailed (a score, details or a threshold asked): a
        # lone document still meets the deadline, and is `skipped` past it
        self.detailed = detailed
        # `searchCutoffMs`: once past the deadline (perf_counter), a group still to split
        # is returned as it is (internal-id order), its documents ranked by the rules
        # applied so far and a `skipped` entry (milli's bucket_sort, ScoreDetails::Skipped).
        self.deadline = deadline
        self.skipped: dict[int, int] = {}  # iid -> index of the first rule not applied
        self._details: dict[int, dict[int, dict]] = {}
        self._memo: dict[tuple, Any] = {}
        self._typo_of: dict[int, dict[int, int]] = {}
        # milli's typo buckets keep a term's typo derivations only for the documents that
        # matched it with typos: for them the ExactAttribute rule has no exact word.
        names = [name for name, _ in rules]
        self.typo_first = "typo" in names and "exactness" in names and names.index("typo") < names.index("exactness")

    # -------------------------------------------------------------- details (emitted)

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
            self.ensure_hits((iid,))
            hits = [plan.hits[i][iid] for i in kept]
            if name == "typo":
                d = ranking.typo_detail(terms, hits)
            elif name == "proximity":
                d = {"_ranks": [ranking.proximity_rank(terms, hits, plan.ctx.by_attribute)]}
            elif name in ranking.ATTRIBUTE_RULES:
                d = ranking.attribute_rule_detail(name, *ranking.attribute_ranks(terms, hits, plan.ctx.max_weight))
            else:
                ruled = [plan.has_exact[ti] and not (self.typo_first and h.typos) for ti, h in zip(kept, hits)]
                d = ranking.exactness_detail(kept, terms, hits, ruled, plan.wcount.get(iid, {}))
        return ranking.with_score(d)

    def key(self, iid: int, r: int):
        name, arg = self.rules[r]
        return ranking.rule_key(name, self.detail(iid, r), None if arg is None else arg[1])

    def ensure_hits(self, iids) -> None:
        """Build the TermHits of `iids` (all terms) that are not built yet."""
        plan = self.plan
        if plan.reference or not plan.hits:
            return
        built = plan.built
        missing = [i for i in iids if i not in built]
        if not missing:
            return
        keep = set(missing)
        built.update(keep)
        eng = plan.engine
        narrowed = plan.view is not None
        for h, dv in zip(plan.hits, plan.derivs):
            h.update(eng._term_hits(dv, plan.weights, plan.typo_off, narrowed, keep))

    # -------------------------------------------------------------- ordering

    def iterate(self, iids: list[int], r: int = 0) -> Iterator[int]:
        if r >= len(self.rules) or len(iids) <= 1:
            if (self.detailed and iids and r < len(self.rules) and self.deadline is not None
                    and time.perf_counter() >= self.deadline):
                self.skipped[iids[0]] = r
            yield from iids  # already in internal-id order
            return
        if self.deadline is not None and time.perf_counter() >= self.deadline:
            self.skipped.update(dict.fromkeys(iids, r))
            yield from iids
            return
        keyf = self._key_fn(r, iids)
        if keyf is None:  # the rule cannot split this group
            yield from self.iterate(iids, r + 1)
            return
        groups: dict[Any, list[int]] = {}
        if isinstance(keyf, list):
            # The rule handed its groups over directly: (key, sorted iids), keys may repeat.
            parts: dict[Any, list[list[int]]] = {}
            for k, g in keyf:
                if g:
                    parts.setdefault(k, []).append(g)
            for k, gs in parts.items():
                groups[k] = gs[0] if len(gs) == 1 else sorted(i for g in gs for i in g)
        else:
            for iid in iids:
                k = keyf(iid)
                g = groups.get(k)
                if g is None:
                    groups[k] = [iid]
                else:
                    g.append(iid)
        if len(groups) == 1:
            yield from self.iterate(iids, r + 1)
            return
        if len(groups) <= HEAP_GROUPS:
            for k in sorted(groups):
                yield from self.iterate(groups[k], r + 1)
            return
        # Many groups (a sort on a field with many values) and usually one page wanted:
        # pop them from a heap as they are consumed instead of sorting them all. Keys are
        # distinct and totally ordered, so the order is the sorted one.
        keys = list(groups)
        heapq.heapify(keys)
        while keys:
            yield from self.iterate(groups[heapq.heappop(keys)], r + 1)

    def _key_fn(self, r: int, iids: list[int]):
        """A function giving `key(iid, r)` for the members of `iids` (cheaply when it
        can), or the groups themselves as [(key, sorted iids)], or None when that key is
        the same for all of them."""
        name, arg = self.rules[r]
        plan = self.plan
        if arg is not None:
            return self._sort_key_fn(r, arg)
        bucket = plan.bucket
        if name == "words":
            if len(plan.kept) == 1:
                return None  # one bucket: every candidate holds every term
            return self._per_bucket(r, bucket)
        if name == "typo":
            if all(t.max_typos == 0 for t in plan.terms):
                return None  # typo count 0 of max 0 everywhere: score 1
            if plan.reference:
                return lambda iid: self.key(iid, r)
            return self._typo_key_fn(r)
        if name == "proximity":
            bs = {bucket[i] for i in iids}
            if not any(self._has_pair(b) for b in bs):
                return None  # no adjacent query words: score 1
            if plan.reference:
                return lambda iid: self.key(iid, r)
            return self._proximity_key_fn(r, iids)
        if name in ranking.ATTRIBUTE_RULES:
            if name == "attributeRank" and not plan.ctx.max_weight:
                return None  # every searchable attribute weighs the same: score 1
            if plan.reference:
                return lambda iid: self.key(iid, r)
            return self._attribute_key_fn(r, iids)
        if name == "exactness":
            if plan.reference:
                return lambda iid: self.key(iid, r)
            return self._exactness_key_fn(r, iids)
        return lambda iid: self.key(iid, r)

    def _has_pair(self, b: int) -> bool:
        kept = self.plan.kept[b]
        terms = self.plan.terms
        return any(terms[kept[i]].index == terms[kept[i - 1]].index + 1 for i in range(1, len(kept)))

    def _per_bucket(self, r: int, bucket: dict[int, int]) -> Callable[[int], Any]:
        name = self.rules[r][0]
        n = len(self.plan.terms)
        keys = {
            b: ranking.rule_key(name, ranking.with_score(ranking.words_detail(len(kept), n)))
            for b, kept in enumerate(self.plan.kept)
        }
        return lambda iid: keys[bucket[iid]]

    def _typo_key_fn(self, r: int) -> Callable[[int], Any]:
        plan = self.plan
        typo_of = self._typo_of
        for ti, (t, tp) in enumerate(zip(plan.terms, plan.tpost)):
            if t.max_typos and ti not in typo_of:
                # iid -> fewest typos among the derivations the document holds.
                m: dict[int, int] = {}
                for _, typos, _, per, _ in sorted(tp, key=lambda d: -d[1]):
                    if per:
                        m.update(dict.fromkeys(per, typos))
                typo_of[ti] = m
        memo = self._memo
        bucket = plan.bucket
        kept_typo = [[ti for ti in kept if plan.terms[ti].max_typos] for kept in plan.kept]

        def keyf(iid: int):
            b = bucket[iid]
            count = 0
            for ti in kept_typo[b]:
                count += typo_of[ti][iid]
            mk = (r, b, count)
            k = memo.get(mk)
            if k is None:
                terms = [plan.terms[i] for i in plan.kept[b]]
                k = memo[mk] = -ranking.with_score(ranking.typo_detail_from_count(terms, count))["score"]
            return k

        return keyf

    def _proximity_key_fn(self, r: int, iids: list[int]) -> Callable[[int], Any]:
        """A term's occurrences are its derivations' postings (in the searched fields)."""
        plan = self.plan
        group = set(iids)
        occ_of: list[dict[int, list[int]]] = []
        for tp in plan.tpost:
            acc: dict[int, list[int]] = {}
            for _, _, _, per, _ in tp:
                if not per:
                    continue
                for iid in per.keys() & group:
                    a = acc.get(iid)
                    if a is None:
                        acc[iid] = per[iid]
                    else:
                        acc[iid] = a + per[iid]
            occ_of.append(acc)
        memo = self._memo
        bucket = plan.bucket
        kept = plan.kept
        terms = plan.terms
        by_attribute = plan.ctx.by_attribute

        def keyf(iid: int):
            b = bucket[iid]
            kt = kept[b]
            rank = ranking.proximity_rank_packed(
                [terms[ti] for ti in kt], [sorted(set(occ_of[ti][iid])) for ti in kt], by_attribute
            )
            mk = (r, b, rank.rank)
            k = memo.get(mk)
            if k is None:
                k = memo[mk] = -ranking.with_score({"_ranks": [rank]})["score"]
            return k

        return keyf

    def _one_bucket(self, iids: list[int]) -> int | None:
        """The bucket shared by all of `iids`, or None."""
        plan = self.plan
        if len(plan.kept) == 1:
            return 0
        bucket = plan.bucket
        b = bucket[iids[0]]
        return b if all(bucket[i] == b for i in iids) else None

    def _attribute_key_fn(self, r: int, iids: list[int]):
        """The rule's two costs summed over the kept terms: a term's weight cost (the
        smallest attribute weight among the fields it matches in; always 0 when every
        field weighs the same) and its position cost (the smallest
        cost_from_distance(|position - query position|)). Each is the smallest over the
        term's derivations: the documents of each cost are united over the derivations,
        then assigned cheapest first. One bucket and one term: the groups come straight
        out of set operations. `attributeRank` needs the weight costs only,
        `wordPosition` the position costs only."""
        plan = self.plan
        rule = self.rules[r][0]
        with_pos = rule != "attributeRank"
        eng = plan.engine
        memo = self._memo
        kept = plan.kept
        max_weight = plan.ctx.max_weight
        weights = plan.weights
        wsig = tuple(sorted(weights.items())) if max_weight else None
        with_weight = bool(max_weight) and rule != "wordPosition"

        def key_of(b: int, wcost: int, cost: int):
            mk = (r, b, wcost, cost)
            k = memo.get(mk)
            if k is None:
                ranks = ranking.attribute_ranks_from_costs(len(kept[b]), wcost, cost, max_weight)
                k = memo[mk] = -ranking.with_score(ranking.attribute_rule_detail(rule, *ranks))["score"]
            return k

        group = set(iids)

        def pos_cost_of(occs: list[int], qi: int) -> int:
            return _pos_cost(occs, qi)

        def weight_cost_of(occs: list[int], qi: int) -> int:
            return min(weights[o >> POS_BITS] for o in occs)

        def by_cost(ti: int, by_weight: bool = False) -> list[tuple[int, set[int]]]:
            """(cost, ids) cheapest first; ids may hold documents outside the group."""
            t = plan.terms[ti]
            qi = t.index
            sig = plan.tsig[ti]
            if by_weight:
                key = ("wcost", t.word, t.max_typos, t.prefix, sig, wsig)
                cost_of = weight_cost_of
            else:
                key = ("cost", t.word, t.max_typos, t.prefix, qi, sig)
                cost_of = pos_cost_of
            got = eng._term_cache.get(key)
            if got is not None:
                return got
            parts: dict[int, list] = {}
            whole = True  # every derivation costed for all its documents: cacheable
            for w, _, _, per, vkey in plan.tpost[ti]:
                if not per:
                    continue
                if by_weight:
                    for c, ids in eng._weight_costs(w, per, vkey, weights, wsig):
                        parts.setdefault(c, []).append(ids)
                    continue
                if (w, qi, vkey) in eng._poscost or len(per) <= 4 * len(group):
                    for c, ids in eng._position_costs(w, qi, per, vkey):
                        parts.setdefault(c, []).append(ids)
                    continue
                # A big posting list and a small group: cost the group's documents only.
                whole = False
                mine: dict[int, list[int]] = {}
                for iid in per.keys() & group:
                    mine.setdefault(cost_of(per[iid], qi), []).append(iid)
                for c, ids in mine.items():
                    parts.setdefault(c, []).append(ids)
            out = sorted((c, set().union(*lists)) for c, lists in parts.items())
            if whole:
                eng._cached(key, lambda: out)
            return out

        def split(ids: set[int], cost_groups) -> list[tuple[int, set[int]]]:
            """Partition `ids` by the cheapest cost group holding each."""
            rest = set(ids)
            out = []
            for c, cids in cost_groups:
                g = rest & cids
                if g:
                    rest -= g
                    out.append((c, g))
            assert not rest
            return out

        b = self._one_bucket(iids)
        if b is not None and len(kept[b]) == 1:
            ti = kept[b][0]
            wgroups = split(group, by_cost(ti, True)) if with_weight else [(0, group)]
            pos = by_cost(ti) if with_pos else [(0, group)]
            return [(key_of(b, wc, c), sorted(g)) for wc, wg in wgroups for c, g in split(wg, pos)]
        needed = set(kept[b]) if b is not None else {ti for kt in kept for ti in kt}

        def cost_maps(by_weight: bool) -> list[dict[int, int]]:
            maps: list[dict[int, int]] = []
            for ti in range(len(plan.terms)):
                m: dict[int, int] = {}
                if ti in needed:
                    for c, ids in reversed(by_cost(ti, by_weight)):  # cheapest last: it wins
                        m.update(dict.fromkeys(ids, c))
                maps.append(m)
            return maps

        costs = cost_maps(False) if with_pos else None
        wcosts = cost_maps(True) if with_weight else None
        bucket = plan.bucket

        def keyf(iid: int):
            b = bucket[iid]
            cost = 0
            wcost = 0
            for ti in kept[b]:
                if costs is not None:
                    cost += costs[ti][iid]
                if wcosts is not None:
                    wcost += wcosts[ti][iid]
            return key_of(b, wcost, cost)

        return keyf

    def _exactness_key_fn(self, r: int, iids: list[int]):
        """Only the occurrences of the query words themselves matter (their postings in
        the searched fields); in one bucket, the documents holding none of them form one
        group."""
        plan = self.plan
        exact_post = [next((per for _, _, exact, per, _ in tp if exact), None) or {} for tp in plan.tpost]
        zero_post = [[per for _, typos, _, per, _ in tp if not typos and per] for tp in plan.tpost]
        has_exact = plan.has_exact
        typo_first = self.typo_first
        qpos = [t.index for t in plan.terms]
        bucket = plan.bucket
        kept = plan.kept
        wcount = plan.wcount
        memo = self._memo
        no_counts: dict = {}

        def key_of(b: int, match):
            mk = (r, b, match)
            k = memo.get(mk)
            if k is None:
                k = memo[mk] = -ranking.exactness_from_match(*match, len(kept[b]))["score"]
            return k

        def keyf(iid: int):
            b = bucket[iid]
            kt = kept[b]
            occs: list = []
            for ti in kt:
                if not has_exact[ti] or (typo_first and not any(iid in per for per in zero_post[ti])):
                    occs.append(None)  # the ExactAttribute rule ignores the term
                else:
                    occs.append(exact_post[ti].get(iid, ()))
            match = ranking.exact_match_type(kt, [qpos[ti] for ti in kt], occs, wcount.get(iid, no_counts))
            return key_of(b, (match, sum(1 for ti in kt if iid in exact_post[ti])))

        b = self._one_bucket(iids)
        if b is None:
            return keyf
        group = set(iids)
        holders: set[int] = set()
        for ti in kept[b]:
            holders |= exact_post[ti].keys() & group
        if len(holders) * 2 > len(group):
            return keyf
        by_key: dict[Any, list[int]] = {}
        for iid in sorted(holders):
            by_key.setdefault(keyf(iid), []).append(iid)
        return [(key_of(b, ("noExactMatch", 0)), sorted(group - holders)), *by_key.items()]

    def _sort_key_fn(self, r: int, arg) -> Callable[[int], Any]:
        field_name, asc = arg
        eng = self.plan.engine
        name = self.rules[r][0]
        if eng is None:
            return lambda iid: self.key(iid, r)
        cache = eng._sort_keys.get((field_name, asc))
        if cache is None:
            cache = eng._sort_keys[(field_name, asc)] = {}
        docs = self.plan.docs

        def keyf(iid: int):
            k = cache.get(iid)
            if k is None:
                k = cache[iid] = ranking.rule_key(name, ranking.sort_entry(docs[iid], field_name, asc), asc)
            return k

        return keyf

    def details(self, iid: int) -> dict:
        out = {}
        applied = self.skipped.get(iid, len(self.rules))
        for r, (name, _arg) in enumerate(self.rules[:applied]):
            out[name] = ranking.finish_detail(r, self.detail(iid, r))
        if applied < len(self.rules):
            out["skipped"] = {"order": applied}
        return out

    def score(self, iid: int) -> float:
        ranks = []
        applied = self.skipped.get(iid, len(self.rules))
        for r, (_, arg) in enumerate(self.rules[:applied]):
            if arg is None:
                ranks.extend(self.detail(iid, r)["_ranks"])
        if applied < len(self.rules):
            ranks.append(ranking.Rank(0, 1))
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
        # 1.50 formats the highlighted and cropped attributes even when not retrieved.
        self._formatted_names = {
            a.split(":", 1)[0] for a in (*(self.attributes_to_highlight or ()), *(self.attributes_to_crop or ()))
        }
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
                "Invalid value at `.rankingScoreThreshold`: the value of `rankingScoreThreshold` is invalid, expected a float between `0.0` and `1.0`.",
            )
        self.ranking_score_threshold = thr
        # As 1.50: `_formatted` only when a highlighted or cropped name is a displayed field
        # some document has (or `*`, with something displayed).
        self.formatting = bool(_formatted_names_displayed(self, eng))
        self.attributes_to_search_on = _str_list(params, "attributesToSearchOn", "invalid_search_attributes_to_search_on")
        if self.attributes_to_search_on is not None:
            _check_search_on(self.attributes_to_search_on, eng)
            if "*" in self.attributes_to_search_on:
                self.attributes_to_search_on = None
        self.filter_expr = eng._parse_filter(g("filter"), "invalid_search_filter", search=True)
        self.sort = _parse_sort(g("sort"), eng)
        self.geo_origin = geo.distance_origin(g("sort")) if self.sort else None
        distinct = g("distinct")
        if distinct is not None:
            if not isinstance(distinct, str):
                raise _type_error("distinct", "invalid_search_distinct", "a string", distinct)
            if not attr_patterns.is_filterable(eng.settings["filterableAttributes"], distinct):
                raise distinct_not_filterable(distinct, *eng._shown_filterable_patterns())
        self.distinct = distinct
        self.facets = _parse_facets(g("facets"), eng)
        # 1.50's search kind: `media` and `vector` need `hybrid`, and never go together;
        # `media` then needs the `multimodal` feature, which the devnode does not have.
        has_media, has_vector = g("media") is not None, g("vector") is not None
        if has_media and has_vector:
            raise MeiliError(
                "invalid_search_media_and_vector", "Invalid request: both `media` and `vector` parameters are present."
            )
        if (has_media or has_vector) and g("hybrid") is None:
            raise MeiliError(
                "missing_search_hybrid", "Invalid request: missing `hybrid` parameter when `vector` or `media` are present."
            )
        if has_media:
            raise MeiliError(
                "feature_not_enabled",
                "passing `media` in a search query requires enabling the `multimodal` experimental feature. "
                "See https://github.com/orgs/meilisearch/discussions/846",
            )
        personalize = g("personalize")
        if personalize is not None:
            if not isinstance(personalize, dict):
                raise _type_error("personalize", "invalid_search_personalize", "an object", personalize)
            check_personalize(personalize)
        self.personalize = personalize is not None
        use_network = g("useNetwork")
        if use_network is not None and not isinstance(use_network, bool):
            raise _type_error("useNetwork", "invalid_search_use_network", "a boolean", use_network)
        self.show_performance_details = _bool(params, "showPerformanceDetails", "invalid_search_show_performance_details")
        self.retrieve_vectors = _bool(params, "retrieveVectors", "invalid_search_retrieve_vectors")


def _check_search_on(names: list[str], eng: IndexEngine) -> None:
    """milli's check of `attributesToSearchOn`: a searchable field documents brought, a
    pattern matching one, or a name the searchable attributes list (no document has it
    yet); anything goes when every attribute is searchable."""
    searchable = eng.settings["searchableAttributes"]
    if "*" in searchable:
        return
    fields = [f for f in eng.field_names() if any(attr_patterns.is_nested_in(f, s) for s in searchable)]
    for name in names:
        if name == "*" or name in fields or name in searchable:
            continue
        if "*" in name and any(attr_patterns.match_pattern(name, f) is attr_patterns.MATCH for f in fields):
            continue
        shown, hidden = eng._displayed_only(sorted(fields))
        raise not_searchable(name, shown, hidden)


def _formatted_names_displayed(self: _SearchParams, eng: IndexEngine) -> list[str]:
    if not self._formatted_names:
        return []
    displayed = eng.settings.get("displayedAttributes") or ["*"]
    known = eng.field_names()
    if "*" not in displayed:
        known = [f for f in known if f in displayed]
    if "*" in self._formatted_names:
        return known
    return [f for f in known if f in self._formatted_names]


def _formats(self: _SearchParams, name: str) -> bool:
    return "*" in self._formatted_names or name in self._formatted_names


_SearchParams.formats = _formats  # type: ignore[attr-defined]


_kind = json_kind


def _type_error(name: str, code: str, expected: str, value) -> MeiliError:
    return type_error(code, f".{name}", value, expected)


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


def _parse_sort(value, eng: IndexEngine) -> list[tuple[str | tuple[float, float], bool]] | None:
    """The sort criteria, each (field, ascending) or ((lat, lng), ascending) for a geo
    point. As 1.50: every criterion is parsed first, then the `sort` rule is required,
    then each field must be sortable (`_geo` for a geo point)."""
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise _type_error("sort", "invalid_search_sort", "an array", value)
    parsed: list[tuple[str | tuple[float, float], bool]] = []
    for raw in value:
        name, sep, direction = raw.rpartition(":")
        if not sep or direction not in ("asc", "desc"):
            raise MeiliError(
                "invalid_search_sort",
                f"Invalid syntax for the sort parameter: expected expression ending by `:asc` or `:desc`, found `{raw}`.",
            )
        try:
            point = geo.parse_sort_member(name)
        except geo.SortError as e:
            raise MeiliError("invalid_search_sort", str(e)) from None
        reserved = reserved_sort_error(name) if point is None else None
        if reserved is not None:
            raise reserved
        parsed.append((name if point is None else point, direction == "asc"))
    if parsed and "sort" not in eng.settings["rankingRules"]:
        raise index_scoped(
            MeiliError(
                "invalid_search_sort",
                "You must specify where `sort` is listed in the rankingRules setting to use the sort parameter at search time.",
            )
        )
    sortable = attribute_names(eng.settings["sortableAttributes"])
    for member, _asc in parsed:
        if isinstance(member, tuple):
            name, ok = "_geo", "_geo" in sortable
        else:
            name, ok = member, attr_patterns.legacy_match_any(sortable, member)
        if not ok:
            raise index_scoped(not_sortable("invalid_search_sort", name, sortable))
    return parsed


def _parse_facets(value, eng: IndexEngine) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise _type_error("facets", "invalid_search_facets", "an array", value)
    rules = eng.settings["filterableAttributes"]
    for name in value:
        if name != "*" and not attr_patterns.facet_allowed(rules, name):
            raise facet_not_filterable(name, sorted(set(attr_patterns.filterable_patterns(rules))))
    # As milli: the filterable fields some document has that a pattern names, then every
    # filterable field nested in one of them (`doggos` counts `doggos.name` too).
    known = eng.field_names()
    named = [
        f
        for f in known
        if any(attr_patterns.match_pattern(p, f) is attr_patterns.MATCH for p in value) and attr_patterns.is_filterable(rules, f)
    ]
    if not named:
        return []
    return sorted(
        f for f in known if any(attr_patterns.is_nested_in(f, n) for n in named) and attr_patterns.is_filterable(rules, f)
    )
