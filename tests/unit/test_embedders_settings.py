"""core/embedders.py's type checks of the `embedders` setting: the enumerated fields."""

from __future__ import annotations

import pytest

from miroir.core import embedders
from miroir.core.errors import MeiliError


@pytest.mark.parametrize(
    ("embedder", "message"),
    [
        ({"source": 1}, "Invalid value type at `.embedders.e.source`: expected a string, but found a positive integer: `1`"),
        (
            {"source": "bogus"},
            "Unknown value `bogus` at `.embedders.e.source`: expected one of `openAi`, `huggingFace`, `ollama`, "
            "`userProvided`, `rest`, `composite`",
        ),
        ({"pooling": True}, "Invalid value type at `.embedders.e.pooling`: expected a string, but found a boolean: `true`"),
        (
            {"pooling": "max"},
            "Unknown value `max` at `.embedders.e.pooling`: expected one of `useModel`, `forceCls`, `forceMean`",
        ),
    ],
)
def test_enumerated_fields_refused(embedder, message):
    with pytest.raises(MeiliError) as e:
        embedders.check_types({"e": embedder})
    assert (e.value.code, e.value.message) == ("invalid_settings_embedders", message)


def test_enumerated_fields_accepted():
    for source in embedders.SOURCES:
        embedders.check_types({"e": {"source": source, "pooling": "forceMean"}})
