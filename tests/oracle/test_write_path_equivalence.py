"""The write path's fast pure functions against the straightforward ones they replace.

`core.fields.batch_fields`, `core.documents.valid_document_id` and the write path's
one-pass planning (`core.batches.plan_documents`, `inject_and_route`) were rewritten for speed
(issue 8, figure C). The reference implementations below are the previous ones, kept
verbatim; the fast ones must give the same output (same order), the same errors (code
and text) and the same bytes for the nodes, on the Debian corpus and on odd inputs.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings, strategies as st

from miroir.core import batches, fields
from miroir.core.documents import MAX_ID_BYTES, document_id, valid_document_id
from miroir.core.errors import MeiliError
from miroir.core.routing import shard_for_key
from tests.support.corpus import read_docs

# ------------------------------------------------------------------ references (verbatim)

RESERVED_PREFIX = "_miroir_"


def _ref_walk(prefix: str, value: Any, out: dict[str, None]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            path = f"{prefix}.{k}"
            out[path] = None
            _ref_walk(path, v, out)
    elif isinstance(value, list):
        for v in value:
            if isinstance(v, (dict, list)):
                _ref_walk(prefix, v, out)


def ref_batch_fields(docs) -> dict[str, None]:
    out: dict[str, None] = {}
    top: set[str] = set()
    for doc in docs:
        keys = doc.keys()
        if keys <= top and not any(isinstance(doc[k], (dict, list)) for k in keys):
            continue
        for k, v in doc.items():
            if k.startswith(RESERVED_PREFIX):
                continue
            top.add(k)
            out[k] = None
            _ref_walk(k, v, out)
    return out


def ref_valid_document_id(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return -(2**63) <= value < 2**64  # i64 or u64 (Meilisearch's id visitor)
    if isinstance(value, str):
        if not value or len(value.encode("utf-8")) > MAX_ID_BYTES:
            return False
        return all(c.isascii() and (c.isalnum() or c in "-_") for c in value)
    return False


def ref_document_shards(docs, primary_key, shards):
    checked: set[str] = set()
    out: list[int] = []
    for doc in docs:
        if not doc.keys() <= checked:
            for field in doc:
                if field.startswith("_miroir_"):
                    raise batches.reserved_field(field, doc)
            checked.update(doc)
        out.append(shard_for_key(document_id(doc, primary_key), shards))
    return out


def ref_field_sources(docs, flat):
    if not flat:
        return docs
    seen: set[str] = set()
    out: list[dict] = []
    for doc in docs:
        if not doc.keys() <= seen:
            seen.update(doc)
            out.append(dict.fromkeys(doc))
    return out


def ref_plan(docs, pk, shards, flat):
    return ref_document_shards(docs, pk, shards), ref_field_sources(docs, flat)


def ref_inject_route(docs, doc_shards, targets):
    return batches.route(batches.inject_shards(docs, doc_shards), targets)


def plan(docs, pk, shards, flat):
    return batches.plan_documents(docs, pk, shards, flat=flat)


# ------------------------------------------------------------------ inputs


@functools.lru_cache(maxsize=1)
def _corpus() -> list[dict]:
    return read_docs(3000)


def corpus() -> list[dict]:
    return copy.deepcopy(_corpus())


def nested(doc: dict, i: int) -> dict:
    """A corpus document reshaped with objects, arrays of objects and dotted names."""
    return {
        "id": doc["id"],
        "pkg": {"name": doc.get("name"), "version": doc.get("version"), "size": {"kb": doc.get("installed_size_kb")}},
        "deps": [{"name": d, "n": j} for j, d in enumerate(doc.get("depends") or [])],
        "tags": doc.get("tags"),
        "a.b": {"c": i % 3} if i % 2 else None,
        "a": {"b.c": 1, "b": {"c": 2}} if i % 5 == 0 else [[1, {"deep": [None, {"x": "é"}]}]],
        **({f"extra{i % 7}": {"k": [1, 2]}} if i % 11 == 0 else {}),
        "summary": doc.get("summary"),
    }


ODD = [
    [],
    [{}],
    [{"_miroir_x": {"a": 1}, "id": 1}],
    [{"id": 1, "m": {"_miroir_y": 1}}],
    [{"id": 1, "a": [[], [[]], [{}]]}],
    [{"id": 1, "a": {}}, {"id": 2, "a": {"b": 1}}, {"id": 3, "a": {"b": {"c": None}}}],
    [{"id": 1, "a": [{"x": 1}, {"y": 2}, {"x": {"z": 3}}]}, {"id": 2, "a": {"x": 1}}],
    [{"ünï": {"cödé": "✓", "日本": [{"語": 1}]}, "id": "x"}],
    [{"a": 1, "b": 2}, {"b": 3, "a": {"n": 1}}, {"c": [1, "x", None, 1.5, True]}],
    [{"a.b": 1, "a": {"b": 2}}, {"a": {"b": {"c": 1}}, "a.b": {"c": 2}}],
    [{"id": 1, "t": (1, {"x": 1})}],  # a tuple is no list: not walked (as before)
]

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5)
keys = st.sampled_from(["id", "a", "b", "a.b", "c", "_miroir_s", "é", "x.y.z", ""]) | st.text(max_size=4)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=4),
    max_leaves=20,
)
documents = st.dictionaries(keys, json_values, max_size=6)


# ------------------------------------------------------------------ batch_fields


def test_batch_fields_corpus_flat_and_nested():
    docs = corpus()
    assert list(fields.batch_fields(docs)) == list(ref_batch_fields(docs))
    deep = [nested(d, i) for i, d in enumerate(docs)]
    got = list(fields.batch_fields(deep))
    assert got == list(ref_batch_fields(deep))
    assert "deps.name" in got and "pkg.size.kb" in got and "a.deep.x" in got


@pytest.mark.parametrize("docs", ODD)
def test_batch_fields_odd_inputs(docs):
    assert list(fields.batch_fields(docs)) == list(ref_batch_fields(docs))


@settings(max_examples=400, deadline=None)
@given(st.lists(documents, max_size=8))
def test_batch_fields_random(docs):
    assert list(fields.batch_fields(docs)) == list(ref_batch_fields(docs))


# ------------------------------------------------------------------ document ids

ID_CASES = [
    0, 1, -1, 2**63, 2**70, True, False, None, 1.0, "", "a", "A-b_9", "a b", "a.b", "é", "٣", "Ⅻ", "a\n",
    "\n", "ａ", "a" * 511, "a" * 512, "é" * 200, "-", "_", "ß", [1], {"a": 1},
]


@pytest.mark.parametrize("value", ID_CASES)
def test_valid_document_id_cases(value):
    assert valid_document_id(value) is ref_valid_document_id(value)


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=20) | st.text(alphabet="az09-_é\n", min_size=505, max_size=515) | st.integers())
def test_valid_document_id_random(value):
    assert valid_document_id(value) is ref_valid_document_id(value)


# ------------------------------------------------------------------ plan and routing


def _outcome(fn, *args):
    try:
        return ("ok", fn(*args))
    except MeiliError as e:
        return ("error", e.code, e.message, e.status)


@pytest.mark.parametrize("flat", [True, False])
@pytest.mark.parametrize("shards", [1, 3, 16, 7])
def test_plan_corpus(flat, shards):
    docs = corpus()
    assert plan(docs, "id", shards, flat) == ref_plan(docs, "id", shards, flat)
    named = [{**d, "id": writes_key(d["name"])} for d in docs]
    assert plan(named, "id", shards, flat) == ref_plan(named, "id", shards, flat)


def writes_key(name: str) -> str:
    return "".join(c if c.isascii() and (c.isalnum() or c in "-_") else "_" for c in name)


BAD_BATCHES = [
    [{"id": 1}, {"id": -1}],
    [{"id": 1}, {"id": True}],
    [{"id": 1}, {"id": 1.0}],
    [{"id": 1}, {"id": None}],
    [{"id": 1}, {"id": "é"}],
    [{"id": 1}, {"id": "a" * 512}],
    [{"id": 1}, {"id": ""}],
    [{"id": 1}, {"idx": 2}],
    [{"id": 1}, {"id": [1]}],
    [{"id": 1}, {"id": -1, "_miroir_shard": 3}],
    [{"id": 1}, {"_miroir_shard": 3}],
    [{"id": 1, "x": 1}, {"x": 2, "id": 2, "_miroir_other": {"a": 1}}],
    [{"id": 2**64 + 5}, {"id": "A-b_c"}, {"id": 0}],
    [{"id": "ok"}, {"id": "ok\n"}],
]


@pytest.mark.parametrize("docs", BAD_BATCHES + ODD)
@pytest.mark.parametrize("flat", [True, False])
def test_plan_errors_and_odd_batches(docs, flat):
    assert _outcome(plan, docs, "id", 16, flat) == _outcome(ref_plan, docs, "id", 16, flat)


@pytest.mark.parametrize(
    "docs",
    [
        [{"a": {"b": 1}}, {"a": {"b": "x"}}],
        [{"a": {"b": 1}}, {"a": {"c": 1}}],
        [{"a": {"b": 1}}, {"a": 5}],
        [{"a": {"b": -4}}],
    ],
)
def test_plan_nested_primary_key(docs):
    assert _outcome(plan, docs, "a.b", 8, False) == _outcome(ref_plan, docs, "a.b", 8, False)


@settings(max_examples=300, deadline=None)
@given(st.lists(documents, max_size=8), st.sampled_from(["id", "a", "é"]), st.integers(1, 20), st.booleans())
def test_plan_random(docs, pk, shards, flat):
    assert _outcome(plan, docs, pk, shards, flat) == _outcome(ref_plan, docs, pk, shards, flat)


TARGETS = [
    {s: {"g": [f"n{s % 3}"]} for s in range(16)},
    {s: {"a": [f"a{s % 3}", f"a{(s + 1) % 3}"], "b": [f"b{(s * 7) % 4}"]} for s in range(16)},
    {s: {"a": [], "b": [f"b{s % 2}"]} for s in range(16)},
]


@pytest.mark.parametrize("targets", TARGETS)
def test_inject_route_same_lists_same_bytes(targets):
    docs = corpus()
    doc_shards, _ = plan(docs, "id", 16, True)
    mine, ref = copy.deepcopy(docs), copy.deepcopy(docs)
    got = batches.inject_and_route(mine, doc_shards, targets)
    want = ref_inject_route(ref, doc_shards, targets)
    assert list(got.items) == list(want.items)
    assert got.shards == want.shards
    assert mine == ref  # `_miroir_shard` injected in place, at the same position
    for node in want.items:
        assert msgspec.json.encode(got.items[node]) == msgspec.json.encode(want.items[node])


def test_inject_route_shares_documents_between_copies():
    docs = [{"id": i} for i in range(50)]
    doc_shards, _ = plan(docs, "id", 16, True)
    routed = batches.inject_and_route(docs, doc_shards, TARGETS[1])
    for lst in routed.items.values():
        for d in lst:
            assert any(d is x for x in docs)
