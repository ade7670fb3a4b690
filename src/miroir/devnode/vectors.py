"""The devnode's vector store and its vector, hybrid and similar searches (Meilisearch 1.50's).

Exact nearest neighbours with numpy: every candidate's similarity is computed, so a score
depends on the query and the document only, and a sharded index answers as one node does.
A similarity is milli's cosine one, `1 - (1 - cos) / 2` in f32, the best of a document's
embeddings; documents of the universe without an embedding come last with no similarity.
A hybrid search merges the keyword and the semantic result lists by score times ratio
(`1 - semanticRatio` and `semanticRatio`), the semantic hit first on a tie, as milli's
hybrid.rs does, and answers keyword only when the keyword hits are "good enough".
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from miroir.core import hybrid, vectorscore
from miroir.core.errors import MeiliError, json_kind, serde_unexpected, type_text
from miroir.core.filter import did_you_mean
from miroir.core.similar import validate_similar_body
from miroir.devnode import embedders as emb

if TYPE_CHECKING:  # the engine imports this module; the reverse is for the types only
    from miroir.devnode.engine import IndexEngine


@dataclass
class Stored:
    embeddings: list[list[float]]
    regenerate: bool
    # milli's embedding status: the write gave the embeddings (even with `regenerate:
    # true`), as opposed to the embedder making them; read by `_vectors` filters
    user_provided: bool = False


@dataclass
class VectorStore:
    # embedder -> internal id -> its embeddings
    by_embedder: dict[str, dict[int, Stored]] = field(default_factory=dict)
    # internal id -> the document's `_vectors` entries naming no embedder: document
    # data in 1.50, shown as given with `retrieveVectors`
    unclaimed: dict[int, dict] = field(default_factory=dict)
    _matrix: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)

    def changed(self) -> None:
        self._matrix.clear()

    def forget(self, iid: int) -> None:
        for per in self.by_embedder.values():
            per.pop(iid, None)
        self.unclaimed.pop(iid, None)
        self.changed()

    def clear(self) -> None:
        self.by_embedder.clear()
        self.unclaimed.clear()
        self.changed()

    def matrix(self, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(internal id of each row, rows, their norms) for one embedder, in f32 as
        1.50's vector store computes its cosine distances."""
        got = self._matrix.get(name)
        if got is None:
            ids, rows = [], []
            for iid, s in (self.by_embedder.get(name) or {}).items():
                for e in s.embeddings:
                    ids.append(iid)
                    rows.append(e)
            if rows:
                m = np.asarray(rows, dtype=np.float32)
                got = (np.asarray(ids, dtype=np.int64), m, np.sqrt(np.einsum("ij,ij->i", m, m)))
            else:
                got = (np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32), np.zeros(0, dtype=np.float32))
            self._matrix[name] = got
        return got

    def retrieved(self, iid: int, confs: dict[str, dict]) -> dict:
        out = dict(self.unclaimed.get(iid) or {})
        for name, conf in confs.items():
            s = (self.by_embedder.get(name) or {}).get(iid)
            if s is None:
                out[name] = {"embeddings": [], "regenerate": emb.can_embed(conf)}
            else:
                out[name] = {"embeddings": [list(e) for e in s.embeddings],
                             "regenerate": s.regenerate}
        return out

    def stats(self) -> tuple[int, int]:
        """(numberOfEmbeddings, numberOfEmbeddedDocuments) over every embedder."""
        embedded: set[int] = set()
        n = 0
        for per in self.by_embedder.values():
            for iid, s in per.items():
                if s.embeddings:
                    n += len(s.embeddings)
                    embedded.add(iid)
        return n, len(embedded)


# ------------------------------------------------------------------ documents


def f32(vector) -> list[float]:
    """Embeddings are f32 in Meilisearch: stored, compared and shown at that precision (so
    an embedding read back through `retrieveVectors` searches exactly like the stored one)."""
    return np.asarray(vector, dtype=np.float32).astype(np.float64).tolist()


def _embedding_list(value: Any, name: str) -> list[list[float]]:
    if value is None:
        return []
    if isinstance(value, list) and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in value):
        return [f32(value)] if value else []
    if isinstance(value, list) and all(isinstance(v, list) for v in value):
        out = []
        for v in value:
            if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
                break
            out.append(f32(v))
        else:
            return out
    raise MeiliError(
        "invalid_vectors_type",
        f"Invalid vector type at `._vectors.{name}`: expected an array of floats or an array of arrays of floats.",
    )


def _shown(v: Any) -> str:
    kind = "a number" if isinstance(v, (int, float)) and not isinstance(v, bool) else json_kind(v)
    return kind if v is None else f"{kind}: `{_json(v)}`"


def _embeddings_error(value: Any, path: str) -> str | None:
    """deserr's words for a `_vectors.{name}.embeddings` that is neither null, an array of
    numbers nor an array of arrays of numbers (the first wrong element, in order)."""
    if value is None:
        return None
    if not isinstance(value, list):
        return f"Invalid value type at `{path}`: expected null or an array, but found {_shown(value)}"
    if not value:
        return None
    first = value[0]
    nested = isinstance(first, list)
    if not nested and not _is_number(first):
        return f"Invalid value type at `{path}[0]`: expected a number or an array, but found {_shown(first)}"
    for i, v in enumerate(value):
        if nested:
            if not isinstance(v, list):
                return f"Invalid value type at `{path}[{i}]`: expected an array, but found {_shown(v)}"
            for j, x in enumerate(v):
                if not _is_number(x):
                    return f"Invalid value type at `{path}[{i}][{j}]`: expected a number, but found {_shown(x)}"
        elif not _is_number(v):
            return f"Invalid value type at `{path}[{i}]`: expected a number, but found {_shown(v)}"
    return None


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _check_document_vectors(eng: IndexEngine, ext: str, given: dict, confs: dict[str, dict]) -> None:
    """An object-form `_vectors.{name}` checked as 1.50's deserr reads it (fields in the
    order given, a missing `regenerate` after), then every embedding's dimensions."""
    for name, value in given.items():
        if name not in confs:
            continue
        path = f"._vectors.{name}"
        detail = None
        if isinstance(value, dict):
            read: list[str] = []  # the object as serde reads it, compact, up to the bad value
            for key, v in value.items():
                read.append(f"{_json(key)}:{_json(v)}")
                if key == "embeddings":
                    detail = _embeddings_error(v, f"{path}.embeddings")
                elif key == "regenerate" and not isinstance(v, bool):
                    column = len("{" + ",".join(read))
                    detail = f"Could not parse `{path}.regenerate`: invalid type: {serde_unexpected(v)}, expected a boolean at line 1 column {column}"
                if detail:
                    break
            if detail is None and "regenerate" not in value:
                detail = (f"Missing field `{path}.regenerate`\n  - note: `{path}` must be an array of floats, an "
                          "array of arrays of floats, or an object with field `regenerate`")
        if detail:
            raise MeiliError(
                "invalid_vectors_type",
                f"Index `{eng.uid}`: Bad embedder configuration in the document with id: `{ext}`. {detail}",
            )
        dims = confs[name].get("dimensions")
        raw = value.get("embeddings") if isinstance(value, dict) else value
        if not isinstance(dims, int) or not isinstance(raw, list) or not raw:
            continue
        embeddings = raw if isinstance(raw[0], list) else [raw]
        for i, e in enumerate(embeddings):
            if isinstance(e, list) and len(e) != dims:
                raise MeiliError(
                    "invalid_vector_dimensions",
                    f"Index `{eng.uid}`: Invalid vector dimensions in document with id `{ext}` in `{path}`.\n"
                    f"  - note: embedding #{i} has dimensions {len(e)}\n  - note: embedder `{name}` requires {dims}",
                )


def check_user_provided(eng: IndexEngine, ids: list[str], docs: list[dict], skip_creation: bool) -> None:
    """1.50 refuses a write leaving a document without embeddings for a `userProvided`
    embedder (new, or not opted out with `_vectors.name: null`), naming the first such
    document and how many others, with a hint at a mistyped `_vector` or embedder name."""
    confs = emb.embedders(eng.settings)
    for ext, doc in zip(ids, docs):
        given = doc.get("_vectors")
        if confs and isinstance(given, dict):
            _check_document_vectors(eng, ext, given, confs)
    for name, conf in confs.items():
        if conf.get("source") != "userProvided":
            continue
        per = eng.vectors.by_embedder.get(name) or {}
        missing: list[str] = []
        typo_field = 0
        typo_names: dict[str, int] = {}
        for ext, doc in zip(ids, docs):
            given = doc.get("_vectors")
            if isinstance(given, dict) and name in given:
                continue
            iid = eng._ext.get(ext)
            if iid is None and skip_creation:
                continue
            stored = per.get(iid) if iid is not None else None
            if stored is not None and not stored.regenerate:
                continue  # kept: embeddings given before, or opted out
            missing.append(ext)
            if "_vector" in doc:
                typo_field += 1
            if isinstance(given, dict):
                for key in given:
                    if key not in confs and _close(key, name):
                        typo_names[key] = typo_names.get(key, 0) + 1
        if not missing:
            continue
        others = f" and at least {len(missing) - 1} other document(s)" if len(missing) > 1 else ""
        if typo_field:
            hint = f"try replacing `_vector` by `_vectors` in {typo_field} document(s)."
        elif typo_names:
            key, n = next(iter(typo_names.items()))
            hint = f"try replacing `_vectors.{key}` by `_vectors.{name}` in {n} document(s)."
        else:
            hint = f"opt-out for a document with `_vectors.{name}: null`"
        raise MeiliError(
            "vector_embedding_error",
            f"Index `{eng.uid}`: While embedding documents for embedder `{name}`: no vectors provided for document "
            f"`{missing[0]}`{others}\n- Note: `{name}` has `source: userProvided`, so documents must provide "
            f"embeddings as an array in `_vectors.{name}`.\n- Hint: {hint}",
        )


def _close(key: str, name: str) -> bool:
    return did_you_mean(key, [name]) is not None  # milli suggests within two typos


def store_vectors(eng: IndexEngine, iid: int, explicit: Any, *, replaced: bool) -> list[tuple[str, int]]:
    """Records a written document's explicit vectors; answers the (embedder, iid) pairs a
    rest embedder must (re)embed. Given embeddings are kept as they are, `regenerate` or
    not (milli's insertion: only `regenerate: true` without embeddings embeds), which is
    how a dump, a snapshot or a copy between nodes carries them without embedding again."""
    confs = emb.embedders(eng.settings)
    store = eng.vectors
    to_embed = []
    given = explicit if isinstance(explicit, dict) else {}
    unclaimed = {k: v for k, v in given.items() if k not in confs}
    if not replaced:
        unclaimed = {**store.unclaimed.get(iid, {}), **unclaimed}
    if unclaimed:
        store.unclaimed[iid] = unclaimed
    else:
        store.unclaimed.pop(iid, None)
    for name, conf in confs.items():
        per = store.by_embedder.setdefault(name, {})
        if name in given:
            value = given[name]
            if isinstance(value, dict):
                embeddings = _embedding_list(value.get("embeddings"), name)
                regenerate = bool(value.get("regenerate", False))
                given_embeddings = value.get("embeddings") is not None
            else:
                embeddings, regenerate = _embedding_list(value, name), False
                given_embeddings = value is not None
            per[iid] = Stored(embeddings, regenerate, given_embeddings)
            if regenerate and emb.can_embed(conf) and not embeddings:
                to_embed.append((name, iid))
            continue
        old = per.get(iid)
        if emb.can_embed(conf) and (old is None or old.regenerate or replaced):
            per[iid] = Stored([], True)
            to_embed.append((name, iid))
        elif old is not None and replaced:
            per.pop(iid, None)  # a replaced document keeps no user-provided embedding
    store.changed()
    return to_embed


def embed_documents(eng: IndexEngine, wanted: list[tuple[str, int]]) -> None:
    confs = emb.embedders(eng.settings)
    searchable = eng.settings["searchableAttributes"]
    by_name: dict[str, list[int]] = {}
    for name, iid in wanted:
        if iid in eng._docs:
            by_name.setdefault(name, []).append(iid)
    for name, iids in by_name.items():
        conf = confs[name]
        try:
            vectors = emb.embed_texts(conf, [emb.document_text(conf, eng._docs[i], searchable) for i in iids])
        except emb.EmbedError as e:
            raise MeiliError("vector_embedding_error", f"Error while generating embeddings: {e}") from None
        per = eng.vectors.by_embedder.setdefault(name, {})
        for iid, v in zip(iids, vectors):
            per[iid] = Stored([f32(v)], True)
    eng.vectors.changed()


def reembed_all(eng: IndexEngine) -> None:
    """After the embedders changed: rest embedders embed every document they have not."""
    confs = emb.embedders(eng.settings)
    for name in list(eng.vectors.by_embedder):
        if name not in confs:
            del eng.vectors.by_embedder[name]
    wanted = []
    if confs:  # `_vectors` written before any embedder existed move to the store now
        for iid, doc in list(eng._docs.items()):
            if isinstance(doc.get("_vectors"), dict):
                explicit = doc["_vectors"]
                eng._unindex(iid, doc)
                eng._docs[iid] = {k: v for k, v in doc.items() if k != "_vectors"}
                eng._index(iid, eng._docs[iid])
                wanted += store_vectors(eng, iid, explicit, replaced=False)
    for name, conf in confs.items():
        per = eng.vectors.by_embedder.setdefault(name, {})
        if emb.can_embed(conf):
            wanted += [(name, iid) for iid in eng._docs if iid not in per or (per[iid].regenerate and not per[iid].embeddings)]
    eng.vectors.changed()
    if wanted:
        embed_documents(eng, list(dict.fromkeys(wanted)))


def document_vectors(eng: IndexEngine, iid: int) -> dict:
    """The `_vectors` a snapshot or dump keeps: every embedding with its `regenerate` flag
    (as Meilisearch's dumps), so a restart embeds nothing again."""
    out = dict(eng.vectors.unclaimed.get(iid) or {})
    for name, per in eng.vectors.by_embedder.items():
        s = per.get(iid)
        if s is not None and s.embeddings:
            out[name] = {"embeddings": s.embeddings, "regenerate": s.regenerate}
    return out


# ------------------------------------------------------------------ search


def _similarities(eng: IndexEngine, name: str, vector: list[float], candidates) -> tuple[dict[int, float], dict[int, float]]:
    """(each candidate's best similarity, the score it shows): the embedder's
    `distribution` shifts the shown score only; milli ranks by the similarity itself (its
    buckets are distances), so documents the shift clamps to one score keep their order."""
    ids, m, norms = eng.vectors.matrix(name)
    if not len(ids):
        return {}, {}
    q = np.asarray(vector, dtype=np.float32)
    if q.shape[0] != m.shape[1]:
        raise MeiliError(
            "invalid_vector_dimensions",
            f"Invalid vector dimensions: expected: `{m.shape[1]}`, found: `{q.shape[0]}`.",
        )
    sims = vectorscore.similarities(m, norms, q)  # milli's, every step in f32
    wanted = set(candidates)
    best: dict[int, float] = {}
    for iid, s in zip(ids.tolist(), sims.tolist()):
        if iid in wanted and s > best.get(iid, -1.0):
            best[iid] = s
    shift = emb.distribution(emb.embedders(eng.settings).get(name) or {})
    if shift is None or not best:
        return best, best
    return best, dict(zip(best, shift(np.fromiter(best.values(), dtype=np.float32, count=len(best))).tolist()))


def _hybrid_params(eng: IndexEngine, params: dict) -> tuple[str, float] | None:
    hybrid = params.get("hybrid")
    if hybrid is None:
        return None
    if not isinstance(hybrid, dict):
        raise MeiliError(
            "invalid_search_hybrid_query",
            type_text(".hybrid", hybrid, "an object"),
        )
    for k in hybrid:
        if k not in ("semanticRatio", "embedder"):
            raise MeiliError(
                "invalid_search_hybrid_query",
                f"Unknown field `{k}` inside `.hybrid`: expected one of `semanticRatio`, `embedder`",
            )
    if "embedder" not in hybrid:
        raise MeiliError("invalid_search_hybrid_query", "Missing field `embedder` inside `.hybrid`")
    name = hybrid["embedder"]
    ratio = hybrid.get("semanticRatio", 0.5)
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0.0 <= ratio <= 1.0:
        raise MeiliError(
            "invalid_search_semantic_ratio",
            "Invalid value at `.hybrid.semanticRatio`: the value of `semanticRatio` is invalid, expected a float between `0.0` and `1.0`.",
        )
    if not isinstance(name, str):
        raise MeiliError(
            "invalid_search_embedder",
            type_text(".hybrid.embedder", name, "a string"),
        )
    return name, float(np.float32(ratio))


def _kind(v: Any) -> str:
    return {bool: "a boolean", int: "a positive integer", float: "a number", str: "a string",
            list: "an array", dict: "an object"}.get(type(v), "null")


def _json(v: Any) -> str:
    return json.dumps(v, separators=(",", ":"))


def _vector_param(params: dict) -> list[float] | None:
    v = params.get("vector")
    if v is None:
        return None
    if not isinstance(v, list) or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
        raise MeiliError(
            "invalid_search_vector",
            type_text(".vector", v, "an array"),
        )
    return [float(x) for x in v]


def search(eng: IndexEngine, params: dict) -> dict | None:
    """A semantic or hybrid search's answer, or None when 1.50 searches by keyword only."""
    hp = _hybrid_params(eng, params)
    vector = _vector_param(params)
    if hp is None:
        return None
    name, ratio = hp
    q = params.get("q")
    has_q = isinstance(q, str) and q.strip() != ""
    if ratio == 0.0 or (not has_q and vector is None):
        return None
    confs = emb.embedders(eng.settings)
    if name not in confs:
        raise MeiliError("invalid_search_embedder", f"Cannot find embedder with name `{name}`.")
    conf = confs[name]
    semantic_only = ratio == 1.0 or not has_q
    if semantic_only:
        if vector is None:
            if not emb.can_embed(conf):
                raise MeiliError(
                    "vector_embedding_error",
                    "Error while generating embeddings: user error: attempt to embed the following text in a "
                    f"configuration where embeddings must be user provided:\n  - `{q}`",
                )
            vector = emb.embed_query(conf, q)
        return _semantic_answer(eng, params, name, vector, q_for_highlight=None)
    return _hybrid_answer(eng, params, name, conf, ratio, vector)


def _keyword_params(params: dict) -> dict:
    return {k: v for k, v in params.items() if k not in ("hybrid", "vector")}


def _window(eng: IndexEngine, params: dict) -> tuple[int, int, bool, int, int]:
    """(offset, limit, page mode, page, hitsPerPage) as the engine reads them."""
    p = eng.search_params(_keyword_params(params))
    if p.page_mode:
        off = (p.page - 1) * p.hits_per_page if p.page > 0 else 0
        lim = p.hits_per_page if p.page > 0 else 0
    else:
        off, lim = p.offset, p.limit
    return off, lim, p.page_mode, p.page, p.hits_per_page


def _vector_ranked(eng: IndexEngine, p, name: str, vector: list[float], want: int):
    """The semantic list: [(iid, similarity or None)] best first, at most `want`, and the
    number of candidates (the universe after threshold and distinct)."""
    universe = eng._plan("", "last", p.filter_expr, None).candidates
    sims, shown = _similarities(eng, name, vector, universe)
    with_vec = sorted(sims, key=lambda i: (-sims[i], i))
    without = sorted(i for i in universe if i not in sims)
    ranked = [(i, shown[i]) for i in with_vec] + [(i, None) for i in without]
    threshold = p.ranking_score_threshold
    if threshold is not None:
        ranked = [(i, s) for i, s in ranked if (s or 0.0) >= threshold]
    distinct = p.distinct if p.distinct is not None else eng.settings["distinctAttribute"]
    if distinct is not None:
        seen: set = set()
        ranked = [(i, s) for i, s in ranked if eng._distinct_new(i, distinct, seen)]
    total = len(ranked)
    return ranked[:want], total, universe


def _details(similarity: float | None) -> dict:
    return {"vectorSort": {"order": 0, "similarity": similarity}}


def _build_hits(eng: IndexEngine, p, q: str | None, entries: list[tuple[int, float, dict]]) -> list[dict]:
    plan = eng._plan(q or "", p.matching_strategy, None, p.attributes_to_search_on)
    quiet = copy.copy(p)
    quiet.show_ranking_score = quiet.show_ranking_score_details = False
    hits = []
    for iid, score, details in entries:
        hit = eng._hit(iid, quiet, plan, None)
        if p.show_ranking_score:
            hit["_rankingScore"] = score
        if p.show_ranking_score_details:
            hit["_rankingScoreDetails"] = details
        hits.append(hit)
    return hits


def _answer(eng: IndexEngine, params: dict, p, hits: list[dict], total: int, universe, semantic_hits: int,
            vector: list[float] | None = None) -> dict:
    _off, _lim, page_mode, page, hpp = _window(eng, params)
    max_total = eng.max_total_hits()
    capped = min(total, max_total)
    out: dict[str, Any] = {"hits": hits, "query": p.raw_q}
    if vector is not None and p.retrieve_vectors:  # milli: the vector the semantic search used
        out["queryVector"] = [float(str(np.float32(x))) for x in vector]  # an f32 as serde shows it
    out["processingTimeMs"] = 0
    if page_mode:
        out.update(hitsPerPage=hpp, page=page, totalPages=-(-capped // hpp) if hpp else 0, totalHits=capped)
    else:
        out.update(limit=p.limit, offset=p.offset, estimatedTotalHits=capped)
    if p.facets is not None:
        dist, stats = eng._facets(p.facets, universe)
        out["facetDistribution"] = dist
        out["facetStats"] = stats
    out["semanticHitCount"] = semantic_hits
    return out


def _semantic_answer(eng: IndexEngine, params: dict, name: str, vector: list[float], q_for_highlight) -> dict:
    p = eng.search_params(_keyword_params(params))
    off, lim, *_ = _window(eng, params)
    max_total = eng.max_total_hits()
    end = min(off + lim, max_total)
    ranked, total, universe = _vector_ranked(eng, p, name, vector, end)
    page = ranked[off:end]
    hits = _build_hits(eng, p, q_for_highlight, [(i, s or 0.0, _details(s)) for i, s in page])
    return _answer(eng, params, p, hits, total, universe, len(hits), vector)


def _hybrid_answer(eng: IndexEngine, params: dict, name: str, conf: dict, ratio: float, vector) -> dict:
    kw_params = _keyword_params(params)
    p = eng.search_params(kw_params)
    off, lim, *_ = _window(eng, params)
    n = off + lim
    pk = eng.primary_key
    kw = eng.search({
        **{k: v for k, v in kw_params.items() if k not in ("page", "hitsPerPage", "facets", "attributesToHighlight",
                                                           "attributesToCrop", "showMatchesPosition", "retrieveVectors")},
        "offset": 0, "limit": n, "attributesToRetrieve": [pk] if pk else None,
        "showRankingScore": True, "showRankingScoreDetails": True,
    })
    kw_list = [(eng._ext[str(h[pk])], h["_rankingScore"], h["_rankingScoreDetails"]) for h in kw["hits"]]
    kw_total = kw["estimatedTotalHits"]
    good_enough = hybrid.good_enough(kw_list, n, ratio, score=_score)
    if not good_enough and vector is None and emb.can_embed(conf):
        try:
            vector = emb.embed_texts(conf, [params["q"]])[0]
        except emb.EmbedError:
            vector = None  # milli answers the keyword results when embedding fails
    if good_enough or vector is None:
        page = kw_list[off:n]
        hits = _build_hits(eng, p, params.get("q"), page)
        universe = eng._plan(p.q, p.matching_strategy, p.filter_expr, p.attributes_to_search_on).candidates
        return _answer(eng, params, p, hits, kw_total, universe, 0)
    vec_ranked, vec_total, universe = _vector_ranked(eng, p, name, vector, n)
    vec_list = [(i, s or 0.0, _details(s)) for i, s in vec_ranked]
    merged = hybrid.merged_stream(kw_list, vec_list, ratio, score=_score)
    distinct = p.distinct if p.distinct is not None else eng.settings["distinctAttribute"]
    seen_ids: set[int] = set()
    seen_distinct: set = set()
    page: list[tuple[int, float, dict]] = []
    semantic = 0
    skipped = 0
    for (iid, score, details), is_semantic in merged:
        if iid in seen_ids:
            continue
        seen_ids.add(iid)
        if distinct is not None and not eng._distinct_new(iid, distinct, seen_distinct):
            continue
        if skipped < off:
            skipped += 1
            continue
        if len(page) >= lim:
            break
        page.append((iid, score, details))
        semantic += is_semantic
    hits = _build_hits(eng, p, params.get("q"), page)
    return _answer(eng, params, p, hits, max(vec_total, kw_total), universe, semantic, vector)


def _score(entry: tuple[int, float, dict]) -> float:
    return entry[1]  # (internal id, ranking score, details)


def similar(eng: IndexEngine, params: dict) -> dict:
    """`/similar`: the documents nearest the reference one's embedding, itself excluded."""
    params = validate_similar_body(params)
    name = params.get("embedder")
    confs = emb.embedders(eng.settings)
    if not isinstance(name, str) or name not in confs:
        raise MeiliError("invalid_similar_embedder", f"Cannot find embedder with name `{name}`.")
    doc_id = params.get("id")
    ext = doc_id if isinstance(doc_id, str) else str(doc_id)
    iid = eng._ext.get(ext)
    if iid is None:
        raise MeiliError("not_found_similar_id", f"Document `{ext}` not found.")
    stored = (eng.vectors.by_embedder.get(name) or {}).get(iid)
    if stored is None or not stored.embeddings:
        raise MeiliError("not_found_similar_id", f"Document `{ext}` not found.")
    return similar_to(eng, params, name, stored.embeddings[0], exclude=ext)


def similar_to(eng: IndexEngine, params: dict, name: str, vector: list[float], exclude: str | None) -> dict:
    search_params = {k: v for k, v in params.items() if k in (
        "offset", "limit", "filter", "attributesToRetrieve", "showRankingScore", "showRankingScoreDetails",
        "rankingScoreThreshold", "retrieveVectors")}
    eng._parse_filter(search_params.get("filter"), "invalid_similar_filter")  # 1.50's code for /similar
    p = eng.search_params(search_params)
    end = p.offset + p.limit
    universe = eng._plan("", "last", p.filter_expr, None).candidates
    if exclude is not None and exclude in eng._ext:
        universe = [i for i in universe if i != eng._ext[exclude]]
    sims, shown = _similarities(eng, name, vector, universe)
    ranked = sorted(sims, key=lambda i: (-sims[i], i))
    ranked += sorted(i for i in universe if i not in sims)
    scored = [(i, shown.get(i)) for i in ranked]
    if p.ranking_score_threshold is not None:
        scored = [(i, s) for i, s in scored if (s or 0.0) >= p.ranking_score_threshold]
    page = scored[p.offset:end]
    hits = _build_hits(eng, p, None, [(i, s or 0.0, _details(s)) for i, s in page])
    doc_id = params.get("id")  # 1.50 answers the external id, a string
    out = {"hits": hits, "id": doc_id if isinstance(doc_id, str) else str(doc_id), "processingTimeMs": 0,
           "limit": p.limit, "offset": p.offset, "estimatedTotalHits": len(scored)}
    if params.get("showPerformanceDetails") is True:
        out["performanceDetails"] = {"similar": "0.00ms"}
    return out



# ------------------------------------------------------------------ filters


def fragment_names(eng: IndexEngine) -> dict[str, list[str]]:
    """Each embedder's indexing fragment names (what a `_vectors` filter may name)."""
    return {name: list(conf.get("indexingFragments") or {}) for name, conf in emb.embedders(eng.settings).items()}


def filter_ids(eng: IndexEngine, leaf) -> set[int]:
    """The documents a positive `_vectors…EXISTS` filter selects, as milli's
    filter/vector.rs: documents with an embedding (for every embedder when none is
    named), less the user-provided ones (`.documentTemplate`, none with fragments), the
    user-provided ones (`.userProvided`), or less those told not to regenerate
    (`.regenerate`). The devnode does not embed fragments: `.fragments.x` selects none."""
    confs = emb.embedders(eng.settings)
    names = list(confs) if leaf.embedder is None else [leaf.embedder]
    out: set[int] = set()
    for name in names:
        if name not in confs:
            continue
        per = eng.vectors.by_embedder.get(name) or {}
        kind = leaf.kind
        if kind == "fragments":
            continue
        if kind == "documentTemplate" and confs[name].get("indexingFragments"):
            continue
        for iid, s in per.items():
            if kind == "userProvided":
                keep = s.user_provided
            elif kind == "documentTemplate":
                keep = bool(s.embeddings) and not s.user_provided
            elif kind == "regenerate":
                keep = bool(s.embeddings) and s.regenerate
            else:
                keep = bool(s.embeddings)
            if keep:
                out.add(iid)
    return out
