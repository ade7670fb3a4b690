"""core/embedtemplate.py: where a `rest` embedder's templates hold their texts and embeddings."""

from __future__ import annotations

import pytest

from miroir.core.embedtemplate import REPEAT, TemplateError, extract, has_repeat, render


def test_has_repeat_finds_a_batch_at_any_depth():
    assert not has_repeat({"input": "{{text}}"})
    assert has_repeat(["{{text}}", REPEAT])
    assert has_repeat({"model": "m", "input": {"texts": [{"t": "{{text}}"}, REPEAT]}})
    assert not has_repeat({"input": ["{{text}}", "{{text}}"]})


def test_render_and_extract():
    assert render({"input": ["{{text}}", REPEAT]}, ["a", "b"]) == {"input": ["a", "b"]}
    template = {"meta": 1, "data": [{"embedding": "{{embedding}}"}, REPEAT]}
    got = extract(template, {"meta": 1, "data": [{"embedding": [0.1, 0.2]}, {"embedding": [0.3, 0.4]}]})
    assert got == [[0.1, 0.2], [0.3, 0.4]]
    # the key holding `{{embedding}}` is the one read, whatever comes first
    assert extract({"a": "x", "b": {"v": "{{embedding}}"}}, {"a": "x", "b": {"v": [1.0]}}) == [[1.0]]
    assert extract(["x", ["{{embedding}}"]], ["x", [[2.0]]]) == [[2.0]]
    with pytest.raises(TemplateError):
        extract({"a": "x", "b": {"v": "{{embedding}}"}}, {"a": "x"})
    with pytest.raises(TemplateError):
        extract({"a": "x"}, {"a": "x"})
