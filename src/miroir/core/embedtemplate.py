"""A `rest` embedder's request and response templates, as Meilisearch reads them.

The request template holds `{{text}}` where the text goes, or, in the batch form
`[X, "{{..}}"]`, X repeated once per text; the response template holds `{{embedding}}`
where the embedding is found (`{{..}}` again for a batch). One reading for Miroir, which
embeds a search's query once (engine/queryvectors.py), and the devnode. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

TEXT = "{{text}}"
EMBEDDING = "{{embedding}}"
REPEAT = "{{..}}"
DEFAULT_REQUEST = {"input": TEXT}
DEFAULT_RESPONSE = {"embedding": EMBEDDING}


class TemplateError(Exception):
    pass


def is_batch(template: Any) -> bool:
    return isinstance(template, list) and len(template) == 2 and template[1] == REPEAT


def render(template: Any, texts: list[str]) -> Any:
    if isinstance(template, str):
        return texts[0] if template == TEXT else template
    if is_batch(template):
        return [render(template[0], [t]) for t in texts]
    if isinstance(template, list):
        return [render(v, texts) for v in template]
    if isinstance(template, dict):
        return {k: render(v, texts) for k, v in template.items()}
    return template


def _holds(template: Any, found: Callable[[Any], bool]) -> bool:
    """`found` is true of the template or of a value anywhere inside it."""
    if found(template):
        return True
    if isinstance(template, list):
        return any(_holds(v, found) for v in template)
    if isinstance(template, dict):
        return any(_holds(v, found) for v in template.values())
    return False


def has_repeat(template: Any) -> bool:
    return _holds(template, is_batch)


def _mentions_embedding(template: Any) -> bool:
    return _holds(template, lambda v: v == EMBEDDING)


def extract(template: Any, value: Any) -> list:
    """The embeddings found in `value` where `template` holds `{{embedding}}`."""
    if template == EMBEDDING:
        return [value]
    if is_batch(template):
        if not isinstance(value, list):
            raise TemplateError("response does not match the response template")
        return [e for v in value for e in extract(template[0], v)]
    if isinstance(template, dict):
        if not isinstance(value, dict):
            raise TemplateError("response does not match the response template")
        for k, sub in template.items():
            if _mentions_embedding(sub):
                if k not in value:
                    raise TemplateError(f"response has no `{k}`")
                return extract(sub, value[k])
    if isinstance(template, list):
        if not isinstance(value, list):
            raise TemplateError("response does not match the response template")
        for i, sub in enumerate(template):
            if _mentions_embedding(sub) and i < len(value):
                return extract(sub, value[i])
    raise TemplateError("the response template holds no `{{embedding}}`")


def request_headers(conf: dict) -> dict[str, str]:
    headers = {"Content-Type": "application/json", **(conf.get("headers") or {})}
    if conf.get("apiKey"):
        headers["Authorization"] = f"Bearer {conf['apiKey']}"
    return headers


def is_embedding(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(
        isinstance(x, (int, float)) and not isinstance(x, bool) for x in value
    )


OPENAI_EMBEDDINGS_URL = "https://api.openai.com/v1/embeddings"
OPENAI_DEFAULT_MODEL = "text-embedding-3-small"
_OPENAI_FIXED_DIMENSIONS = frozenset({"text-embedding-ada-002"})  # no `dimensions` in its requests


def as_rest(conf: dict) -> dict | None:
    """The `rest` embedder an embedder is in 1.50 (its url, request and response
    templates, headers): itself for `rest`; for `openAi`, POST to the OpenAI embeddings
    URL with `model`, `input` (and `dimensions` when the model takes it), reading
    `data[].embedding`; for `ollama`, `/api/embed` (`model`, `input` -> `embeddings`)
    or `/api/embeddings` (`model`, `prompt` -> `embedding`). None when the embedder needs
    what only a node knows (its environment: an Ollama URL, an OpenAI key) or cannot
    embed text this way."""
    source = conf.get("source")
    if source == "rest":
        return conf if isinstance(conf.get("url"), str) and not conf.get("indexingFragments") else None
    if source == "openAi":
        if not conf.get("apiKey") and not conf.get("url"):
            return None  # the node's own OPENAI_API_KEY then
        model = conf.get("model") or OPENAI_DEFAULT_MODEL
        request: dict[str, Any] = {"model": model, "input": [TEXT, REPEAT]}
        if conf.get("dimensions") is not None and model not in _OPENAI_FIXED_DIMENSIONS:
            request["dimensions"] = conf["dimensions"]
        return {"url": conf.get("url") or OPENAI_EMBEDDINGS_URL, "apiKey": conf.get("apiKey"), "request": request,
                "response": {"data": [{"embedding": EMBEDDING}, REPEAT]}}
    if source == "ollama":
        url, model = conf.get("url"), conf.get("model")
        if not isinstance(url, str) or not isinstance(model, str):
            return None  # MEILI_OLLAMA_URL: the node's environment
        if url.endswith("/api/embeddings"):
            request, response = {"model": model, "prompt": TEXT}, {"embedding": EMBEDDING}
        elif url.endswith("/api/embed"):
            request, response = {"model": model, "input": [TEXT, REPEAT]}, {"embeddings": [EMBEDDING, REPEAT]}
        else:
            return None
        return {"url": url, "apiKey": conf.get("apiKey"), "request": request, "response": response}
    return None
