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
