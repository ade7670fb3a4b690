"""`POST /render-template` (1.50, the `renderRoute` experimental feature). Pure module.

A template (an embedder's document template or fragment, the chat document template,
or one sent inline) is rendered with an input (a document sent inline or one of an
index, or a search for fragments), as 1.50's `routes/render.rs`. The answer is the
unrendered template and the rendered result (`null` without an input).

Miroir renders Liquid's output tags (`{{ doc.name }}`, `{{ media.breed }}`, dotted
paths and `[n]` indexes); a template with `{% ... %}` tags (loops, conditions) is
refused as a `template_rendering_error` naming that limit. Miroir's own documents are
fetched by the API layer from the owner of their shard, templates read from Miroir's
journaled settings: nothing here needs a node.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import msgspec

from miroir.core.errors import MeiliError, body_type_error, json_kind, type_error, valid_index_uid

RENDER_DISCUSSION = "https://github.com/orgs/meilisearch/discussions/888"
TEMPLATE_KINDS = (
    "documentTemplate",
    "chatDocumentTemplate",
    "indexingFragment",
    "searchFragment",
    "inlineDocumentTemplate",
    "inlineFragment",
)
INPUT_KINDS = ("indexDocument", "inlineDocument", "inlineSearch")
TEMPLATE_FIELDS = ("kind", "indexUid", "embedder", "fragment", "inline", "documentTemplateMaxBytes")
INPUT_FIELDS = ("kind", "indexUid", "id", "inline")
# 1.50's chat settings default `documentTemplate` (the `chat` index setting).
CHAT_DEFAULT_TEMPLATE = (
    "{% for field in fields %}{% if field.is_searchable and field.value != nil %}"
    "{{ field.name }}: {{ field.value }}\n{% endif %}{% endfor %}"
)
_OUTPUT = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}", re.S)
_PATH = re.compile(r"[A-Za-z_][\w-]*|\[\d+\]|\[\"[^\"]*\"\]|\['[^']*'\]")


def feature_not_enabled() -> MeiliError:
    return MeiliError(
        "feature_not_enabled",
        "calling the /render-template route requires enabling the `render_route` experimental feature. "
        f"See {RENDER_DISCUSSION}",
    )


def _shown(value: Any) -> str:
    return msgspec.json.encode(value).decode()


def _part(body: Any, where: str, fields: tuple[str, ...], kinds: tuple[str, ...], code: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise type_error(code, where, body, "an object")
    for key in body:
        if key not in fields:
            listed = ", ".join(f"`{f}`" for f in fields)
            raise MeiliError(code, f"Unknown field `{key}` inside `{where}`: expected one of {listed}")
    if "kind" not in body:
        raise MeiliError(code, f"Missing field `kind` inside `{where}`")
    kind = body["kind"]
    if not isinstance(kind, str) or kind not in kinds:
        listed = ", ".join(f"`{k}`" for k in kinds)
        shown = kind if isinstance(kind, str) else _shown(kind)
        raise MeiliError(code, f"Unknown value `{shown}` at `{where}.kind`: expected one of {listed}")
    out = {k: v for k, v in body.items() if v is not None}
    for key in ("indexUid", "embedder", "fragment", "id"):
        if key in out and not isinstance(out[key], str):
            raise type_error(code, f"{where}.{key}", out[key], "a string")
    if "indexUid" in out and not valid_index_uid(out["indexUid"]):
        raise MeiliError(
            code,
            f"Invalid value at `{where}.indexUid`: `{out['indexUid']}` is not a valid index uid. Index uid can be an "
            "integer or a string containing only alphanumeric characters, hyphens (-) and underscores (_), "
            "and can not be more than 512 bytes.",
        )
    if "documentTemplateMaxBytes" in out:
        v = out["documentTemplateMaxBytes"]
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise type_error(code, f"{where}.documentTemplateMaxBytes", v, "a positive integer")
    return out


def validate(body: Any) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The template and input of a request, or 1.50's deserialization error."""
    if not isinstance(body, dict):
        raise body_type_error(body)
    for key in body:
        if key not in ("template", "input"):
            raise MeiliError("bad_request", f"Unknown field `{key}`: expected one of `template`, `input`")
    if "template" not in body:
        raise MeiliError("bad_request", "Missing field `template`")
    template = _part(body["template"], ".template", TEMPLATE_FIELDS, TEMPLATE_KINDS, "invalid_render_template")
    raw_input = body.get("input")
    given = None if raw_input is None else _part(raw_input, ".input", INPUT_FIELDS, INPUT_KINDS, "invalid_render_input")
    return template, given


# Per template kind, 1.50's checks in its order: ("feature", flag, action), ("missing", p)
# or ("disallowed", p); parameters named in snake case as its messages do.
_TEMPLATE_CHECKS: dict[str, tuple[tuple[str, ...], ...]] = {
    "documentTemplate": (
        ("disallowed", "fragment"), ("disallowed", "inline"), ("missing", "indexUid"), ("missing", "embedder"),
    ),
    "chatDocumentTemplate": (
        ("feature", "chatCompletions", "accessing chat settings"), ("missing", "indexUid"),
        ("disallowed", "embedder"), ("disallowed", "fragment"), ("disallowed", "inline"),
    ),
    "indexingFragment": (
        ("feature", "multimodal", "accessing fragments"), ("missing", "indexUid"), ("missing", "embedder"),
        ("missing", "fragment"), ("disallowed", "inline"), ("disallowed", "documentTemplateMaxBytes"),
    ),
    "searchFragment": (
        ("feature", "multimodal", "accessing fragments"), ("missing", "indexUid"), ("missing", "embedder"),
        ("missing", "fragment"), ("disallowed", "inline"), ("disallowed", "documentTemplateMaxBytes"),
    ),
    "inlineDocumentTemplate": (
        ("disallowed", "indexUid"), ("disallowed", "embedder"), ("disallowed", "fragment"), ("missing", "inline"),
    ),
    "inlineFragment": (
        ("feature", "multimodal", "rendering an inline fragment"), ("disallowed", "indexUid"),
        ("disallowed", "embedder"), ("disallowed", "fragment"), ("missing", "inline"),
        ("disallowed", "documentTemplateMaxBytes"),
    ),
}
_SNAKE = {"indexUid": "index_uid", "documentTemplateMaxBytes": "document_template_max_bytes"}
# Experimental flag -> (the name 1.50's message gives it, its discussion).
_FEATURES = {
    "chatCompletions": ("chat completions", "https://github.com/orgs/meilisearch/discussions/835"),
    "multimodal": ("multimodal", "https://github.com/orgs/meilisearch/discussions/846"),
}


def _template_error(message: str) -> MeiliError:
    return MeiliError("invalid_render_template", f"error while fetching template: {message}")


def _input_error(message: str) -> MeiliError:
    return MeiliError("invalid_render_input", f"error while fetching input: {message}")


def _feature_error(flag: str, action: str, stage: str) -> MeiliError:
    label, link = _FEATURES[flag]
    return MeiliError(
        "feature_not_enabled",
        f"error while fetching {stage}: {action} requires enabling the `{label}` experimental feature. See {link}",
    )


def template_index_not_found(uid: str) -> MeiliError:
    return MeiliError("index_not_found", f"error while fetching template: cannot open index `{uid}`: Index `{uid}` not found.")


def input_index_not_found(uid: str) -> MeiliError:
    return MeiliError("index_not_found", f"Cannot open index `{uid}`: Index `{uid}` not found.")


def document_not_found(uid: str, doc_id: str) -> MeiliError:
    return MeiliError(
        "render_document_not_found", f"error while fetching input: document `{doc_id}` not found in `{uid}`", status=404
    )


def check_template_params(template: Mapping[str, Any], features: Mapping[str, bool]) -> None:
    kind = template["kind"]
    for check in _TEMPLATE_CHECKS[kind]:
        if check[0] == "feature":
            if not features.get(check[1], False):
                raise _feature_error(check[1], check[2], "template")
            continue
        op, param = check
        present = param in template
        if op == "missing" and not present:
            raise _template_error(f"parameter `{_SNAKE.get(param, param)}` missing for kind `{kind}`")
        if op == "disallowed" and present:
            raise _template_error(f"parameter `{_SNAKE.get(param, param)}` disallowed for kind `{kind}`")


def check_input_params(given: Mapping[str, Any], features: Mapping[str, bool]) -> None:
    kind = given["kind"]
    if kind == "inlineSearch" and not features.get("multimodal", False):
        raise _feature_error("multimodal", "rendering search", "input")
    if kind == "indexDocument":
        for p in ("indexUid", "id"):
            if p not in given:
                raise _input_error(f"parameter `{p}` missing for kind `{kind}`")
        if "inline" in given:
            raise _input_error(f"parameter `inline` disallowed for kind `{kind}`")
        return
    if "indexUid" in given:
        raise _input_error(f"parameter `index_uid` disallowed for kind `{kind}`")
    if "id" in given:
        raise _input_error(f"parameter `id` disallowed for kind `{kind}`")
    if "inline" not in given:
        raise _input_error(f"parameter `inline` missing for kind `{kind}`")
    inline = given["inline"]
    if not isinstance(inline, dict):
        what = "document" if kind == "inlineDocument" else "search"
        note = (
            "the inline document must be a JSON map"
            if kind == "inlineDocument"
            else "the inline search query must be a JSON map containing `q` and/or `media`"
        )
        raise _input_error(f"parsing inline {what}: invalid type: {json_kind(inline)} {_shown(inline)}, expected a map\n  - Note: {note}")


def embedder_template(settings: Mapping[str, Any], index_uid: str, template: Mapping[str, Any]) -> Any:
    """The stored template a `documentTemplate` / fragment kind names, from the index's settings."""
    kind = template["kind"]
    if kind == "chatDocumentTemplate":
        chat = settings.get("chat") or {}
        return chat.get("documentTemplate") or CHAT_DEFAULT_TEMPLATE
    name = template["embedder"]
    embedders = settings.get("embedders") or {}
    config = embedders.get(name)
    fragments_key = "indexingFragments" if kind == "indexingFragment" else "searchFragments"
    if not isinstance(config, dict):
        if kind == "searchFragment":
            raise _template_error(
                f"cannot find indexing fragment `{template['fragment']}` for embedder `{name}` in index `{index_uid}`"
            )
        raise _template_error(f"cannot find embedder `{name}` in index `{index_uid}`")
    uses_fragments = bool(config.get("indexingFragments") or config.get("searchFragments"))
    if kind == "documentTemplate":
        if uses_fragments or config.get("source") in ("userProvided", "composite"):
            raise _template_error(f"embedder `{name}` in index `{index_uid}` does not use a document template.")
        return config.get("documentTemplate") or (
            "{% for field in fields %}{% if field.is_searchable and field.value != nil %}"
            "{{ field.name }}: {{ field.value }}\n{% endif %}{% endfor %}"
        )
    if not uses_fragments:
        raise _template_error(f"embedder `{name}` in index `{index_uid}` does not use fragments.")
    fragment = (config.get(fragments_key) or {}).get(template["fragment"])
    if not isinstance(fragment, dict) or "value" not in fragment:
        which = "indexing" if kind == "indexingFragment" else "search"
        raise _template_error(
            f"cannot find {which} fragment `{template['fragment']}` for embedder `{name}` in index `{index_uid}`"
        )
    return fragment["value"]


class _Missing(Exception):
    pass


def _lookup(context: Mapping[str, Any], expr: str) -> Any:
    path = expr.split("|", 1)[0].strip()
    steps = _PATH.findall(path)
    if not steps or "".join(steps).replace(".", "") != path.replace(".", "").replace(" ", ""):
        raise MeiliError("template_rendering_error", f"error while rendering template: cannot parse `{{{{ {expr} }}}}`")
    value: Any = context
    for step in steps:
        if step.startswith("["):
            inner = step[1:-1]
            key: Any = int(inner) if inner.isdigit() else inner[1:-1]
        else:
            key = step
        if isinstance(value, dict) and isinstance(key, str) and key in value:  # noqa: SIM114 - each arm narrows `key`
            value = value[key]
        elif isinstance(value, list) and isinstance(key, int) and key < len(value):
            value = value[key]
        elif isinstance(value, list) and key in ("size",):
            value = len(value)
        else:
            raise _Missing(path)
    return value


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return _shown(value)


def render_text(template: str, context: Mapping[str, Any], *, strict: bool) -> str:
    """Liquid's output tags; a missing value renders empty, or fails when `strict`
    (fragments, as 1.50's JSON templates)."""
    if "{%" in template:
        raise MeiliError(
            "template_rendering_error",
            "error while rendering template: Miroir renders Liquid output tags (`{{ ... }}`) only, not `{% ... %}` tags",
        )

    def one(m: re.Match[str]) -> str:
        try:
            return _text(_lookup(context, m.group(1)))
        except _Missing as e:
            if strict:
                raise MeiliError(
                    "template_rendering_error", f"error while rendering template: missing value `{e.args[0]}` in the input"
                ) from None
            return ""

    return _OUTPUT.sub(one, template)


def render_fragment(fragment: Any, context: Mapping[str, Any]) -> Any:
    if isinstance(fragment, str):
        return render_text(fragment, context, strict=True)
    if isinstance(fragment, list):
        return [render_fragment(v, context) for v in fragment]
    if isinstance(fragment, dict):
        return {k: render_fragment(v, context) for k, v in fragment.items()}
    return fragment


def render(template_kind: str, template: Any, given: Mapping[str, Any], document: Any) -> Any:
    """The rendered value: `document` is the input's document (inline or fetched)."""
    is_fragment = template_kind.endswith("ragment")
    if given["kind"] == "inlineSearch":
        if not is_fragment:
            raise MeiliError(
                "template_rendering_error",
                "error while rendering template: cannot render a document template with a search query",
            )
        inline = given["inline"]
        return render_fragment(template, {"q": inline.get("q"), "media": inline.get("media")})
    if is_fragment:
        return render_fragment(template, {"doc": document})
    if not isinstance(template, str):
        raise _template_error("inline document templates must be strings")
    return render_text(template, {"doc": document}, strict=False)
