"""The devnode's embedders: what a document or a query becomes as a vector.

`userProvided` embedders never embed (documents bring `_vectors`, searches bring `vector`);
`rest` embedders (and `openAi` / `ollama` ones given a `url`) POST the configured `request` template, with `{{text}}` replaced by the
text (or, in the batch form `[X, "{{..}}"]`, X repeated once per text), to `url` and read
the embeddings where the `response` template holds `{{embedding}}` (`{{..}}` again for a
batch), as Meilisearch's rest embedder does. Other sources are stored but cannot embed here.
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx

from miroir.core import vectorscore
from miroir.core.embedtemplate import (
    DEFAULT_REQUEST,
    DEFAULT_RESPONSE,
    TemplateError,
    as_rest,
    extract,
    has_repeat,
    render,
    request_headers,
)
from miroir.core.errors import MeiliError

_DOC_FIELD = re.compile(r"\{\{\s*doc\.([A-Za-z0-9_.\-]+)[^}]*\}\}")
_TIMEOUT = httpx.Timeout(30.0)


class EmbedError(Exception):
    pass


def embedders(settings: dict) -> dict[str, dict]:
    value = settings.get("embedders")
    return value if isinstance(value, dict) else {}


def can_embed(conf: dict) -> bool:
    """`rest` embedders, and `openAi` / `ollama` ones given a `url` (a local service
    speaking their API): 1.50 runs those as rest embedders (core/embedtemplate.as_rest)."""
    return _local_rest(conf) is not None


def _local_rest(conf: dict) -> dict | None:
    # never OpenAI's own URL: the devnode embeds through configured (local) URLs only
    return as_rest(conf) if conf.get("source") == "rest" or conf.get("url") else None


def distribution(conf: dict):
    """milli's DistributionShift of an embedder as a function of the scores, or None
    (core/vectorscore.py)."""
    got = vectorscore.distribution_of(conf)
    return None if got is None else (lambda scores: vectorscore.shift(scores, got))


def embed_texts(conf: dict, texts: list[str]) -> list[list[float]]:
    """One rest call per batch (one per text when the request template has no `{{..}}`)."""
    rest = _local_rest(conf)
    if rest is None:
        raise EmbedError(f"a `{conf.get('source')}` embedder cannot embed on the devnode")
    conf = rest
    request = conf.get("request", DEFAULT_REQUEST)
    response = conf.get("response", DEFAULT_RESPONSE)
    headers = request_headers(conf)
    groups = [texts] if has_repeat(request) else [[t] for t in texts]
    out: list[list[float]] = []
    with httpx.Client(timeout=_TIMEOUT) as client:
        for group in groups:
            if not group:
                continue
            try:
                r = client.post(conf["url"], content=json.dumps(render(request, group)), headers=headers)
            except (httpx.HTTPError, KeyError) as e:
                raise EmbedError(f"could not reach the embedder: {e}") from None
            if r.status_code >= 400:
                raise EmbedError(f"the embedder answered {r.status_code}")
            try:
                got = extract(response, r.json())
            except (TemplateError, ValueError) as e:
                raise EmbedError(str(e)) from None
            if len(got) != len(group):
                raise EmbedError(f"expected {len(group)} embeddings, got {len(got)}")
            out.extend(got)
    return out


def embed_query(conf: dict, text: str) -> list[float]:
    try:
        return embed_texts(conf, [text])[0]
    except EmbedError as e:
        raise MeiliError("vector_embedding_error", f"Error while generating embeddings: {e}") from None


def _text_of(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def document_text(conf: dict, doc: dict, searchable: list[str]) -> str:
    """The text a document is embedded from: `documentTemplate`'s `{{doc.field}}`s filled in
    (filters after `|` ignored), or by default one `name: value` line per searchable field."""
    template = conf.get("documentTemplate")
    if isinstance(template, str):
        def field(m: re.Match) -> str:
            value: Any = doc
            for part in m.group(1).split("."):
                value = value.get(part) if isinstance(value, dict) else None
            return "" if value is None else _text_of(value)

        return _DOC_FIELD.sub(field, template)
    lines = []
    for name, value in doc.items():
        if name == "_vectors" or value is None:
            continue
        if searchable != ["*"] and name not in searchable:
            continue
        lines.append(f"{name}: {_text_of(value)}\n")
    return "".join(lines)
