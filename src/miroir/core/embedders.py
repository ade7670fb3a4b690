"""The `embedders` index setting: Meilisearch 1.50's checks of an embedder's fields, and
the secret masking of its `apiKey`.

Vector search itself is not Miroir's business (the nodes embed); this module only makes
sure a settings request carrying embedders is accepted or refused exactly as 1.50
does before any node is touched (`milli/src/vector/settings.rs`: which fields each
`source` allows or needs, `milli/src/update/settings.rs::validate_embedding_settings`),
and that `GET /settings` shows keys masked as 1.50 does. Every error is
`invalid_settings_embedders`. Pure module: no I/O.
"""

from __future__ import annotations

import copy
from typing import Any

from miroir.core.errors import MeiliError, json_kind

CODE = "invalid_settings_embedders"
MAX_EMBEDDERS = 256

# `EmbeddingSettings` field order (deserr's "expected one of" list).
FIELDS = (
    "source", "model", "revision", "pooling", "apiKey", "dimensions", "binaryQuantized", "documentTemplate",
    "documentTemplateMaxBytes", "url", "indexingFragments", "searchFragments", "request", "response", "headers",
    "searchEmbedder", "indexingEmbedder", "distribution",
)  # fmt: skip
# `MetaEmbeddingSetting` order: the order of the "available fields" notes.
_META = (
    "source", "model", "revision", "pooling", "apiKey", "dimensions", "documentTemplate", "documentTemplateMaxBytes",
    "url", "indexingFragments", "searchFragments", "request", "response", "headers", "searchEmbedder",
    "indexingEmbedder", "distribution", "binaryQuantized",
)  # fmt: skip
# `check_settings` order: the first failing field is the one reported.
_CHECK_ORDER = (
    "model", "revision", "pooling", "dimensions", "apiKey", "url", "indexingFragments", "searchFragments", "request",
    "response", "documentTemplate", "documentTemplateMaxBytes", "headers", "searchEmbedder", "indexingEmbedder",
    "binaryQuantized", "distribution",
)  # fmt: skip
SOURCES = ("openAi", "huggingFace", "ollama", "userProvided", "rest", "composite")
_POOLING = ("useModel", "forceCls", "forceMean")
_TEMPLATED = ("openAi", "huggingFace", "ollama", "rest")
_ALLOWED = {
    "openAi": {"source", "model", "apiKey", "documentTemplate", "documentTemplateMaxBytes", "dimensions", "url"},
    "huggingFace": {"source", "model", "revision", "pooling", "documentTemplate", "documentTemplateMaxBytes"},
    "ollama": {"source", "documentTemplate", "documentTemplateMaxBytes", "url", "apiKey", "dimensions"},
    "userProvided": {"source"},
    "rest": {"source", "apiKey", "dimensions", "documentTemplate", "documentTemplateMaxBytes", "headers",
             "indexingFragments", "searchFragments"},
    "composite": {"source"},
}  # fmt: skip
_MANDATORY = {
    "ollama": ("model",),
    "userProvided": ("dimensions",),
    "rest": ("url", "request", "response"),
    "composite": ("searchEmbedder", "indexingEmbedder"),
}
# 1.50's OpenAI models: (name, native dimensions, may override dimensions).
OPENAI_MODELS = {
    "text-embedding-ada-002": (1536, False),
    "text-embedding-3-small": (1536, True),
    "text-embedding-3-large": (3072, True),
}
DEFAULT_DOCUMENT_TEMPLATE = (
    "{% for field in fields %}{% if field.is_searchable and field.value != nil %}{{ field.name }}: "
    "{{ field.value }}\n{% endif %}{% endfor %}"
)
DEFAULT_DOCUMENT_TEMPLATE_MAX_BYTES = 400
# Features a field needs (feature key, the action named in the error).
FEATURE_GATES = (
    ("searchEmbedder", "compositeEmbedders", "setting `searchEmbedder`"),
    ("indexingEmbedder", "compositeEmbedders", "setting `indexingEmbedder`"),
    ("indexingFragments", "multimodal", "setting `indexingFragments`"),
    ("searchFragments", "multimodal", "setting `searchFragments`"),
)


def _status(source: str, field: str) -> str:
    if field in ("distribution", "binaryQuantized"):
        return "allowed"
    if field in _MANDATORY.get(source, ()):
        return "mandatory"
    return "allowed" if field in _ALLOWED[source] else "disallowed"


def _available_for(source: str) -> list[str]:
    return [f for f in _META if _status(source, f) != "disallowed"]


def _sources_for(field: str) -> list[str]:
    return [s for s in SOURCES if _status(s, field) != "disallowed"]


def _err(message: str) -> MeiliError:
    return MeiliError(CODE, message)


def _text(value: Any) -> str:
    import msgspec

    return msgspec.json.encode(value).decode()


def _type_error(where: str, expected: str, value: Any) -> MeiliError:
    return _err(f"Invalid value type at `{where}`: expected {expected}, but found {json_kind(value)}: `{_text(value)}`")


def _check_types(name: str, e: dict, where: str) -> None:
    """deserr's part: unknown fields and value types (null = reset, always accepted)."""
    for key, value in e.items():
        if key not in FIELDS:
            listed = ", ".join(f"`{f}`" for f in FIELDS)
            raise _err(f"Unknown field `{key}` inside `{where}`: expected one of {listed}")
        if value is None:
            continue
        at = f"{where}.{key}"
        if key in ("source", "pooling"):
            choices = SOURCES if key == "source" else _POOLING
            if not isinstance(value, str):
                raise _type_error(at, "a string", value)
            if value not in choices:
                listed = ", ".join(f"`{s}`" for s in choices)
                raise _err(f"Unknown value `{value}` at `{at}`: expected one of {listed}")
        elif key in ("model", "revision", "apiKey", "documentTemplate", "url"):
            if not isinstance(value, str):
                raise _type_error(at, "a string", value)
        elif key in ("dimensions", "documentTemplateMaxBytes"):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise _type_error(at, "a positive integer", value)
        elif key == "binaryQuantized":
            if not isinstance(value, bool):
                raise _type_error(at, "a boolean", value)
        elif key in ("headers", "indexingFragments", "searchFragments", "distribution"):
            if not isinstance(value, dict):
                raise _type_error(at, "an object", value)
            if key == "headers":
                for h, v in value.items():
                    if not isinstance(v, str):
                        raise _type_error(f"{at}.{h}", "a string", v)
            if key == "distribution":  # milli's DistributionShiftSerializable
                for d, v in value.items():
                    if d not in ("mean", "sigma"):
                        raise _err(f"Unknown field `{d}` inside `{at}`: expected one of `mean`, `sigma`")
                    if isinstance(v, bool) or not isinstance(v, (int, float)):
                        raise _type_error(f"{at}.{d}", "a number", v)
                for d in ("mean", "sigma"):
                    if d not in value:
                        raise _err(f"Missing field `{d}` inside `{at}`")
                if not 0 <= value["mean"] <= 1:
                    raise _err(f"Invalid value at `{at}`: the distribution mean must be in the range [0, 1], got {value['mean']}")
                if not 0 < value["sigma"] <= 1:
                    raise _err(f"Invalid value at `{at}`: the distribution sigma must be in the range ]0, 1], got {value['sigma']}")
        elif key in ("searchEmbedder", "indexingEmbedder"):
            if not isinstance(value, dict):
                raise _type_error(at, "an object", value)
            _check_types(name, value, at)


def check_types(embedders: Any, where: str = ".embedders") -> None:
    """deserr's part of decoding the `embedders` setting (`where`: its path as shown)."""
    if embedders is None:
        return
    if not isinstance(embedders, dict):
        raise _type_error(where, "an object", embedders) if where else _err(
            f"Invalid value type: expected an object, but found {json_kind(embedders)}: `{_text(embedders)}`"
        )
    for name, e in embedders.items():
        if e is None:
            continue
        if not isinstance(e, dict):
            raise _type_error(f"{where}.{name}", "an object", e)
        _check_types(name, e, f"{where}.{name}")


def _check_fields(name: str, source: str, e: dict) -> None:
    for field in _CHECK_ORDER:
        status = _status(source, field)
        present = field in e  # set or null (reset): both refused where unavailable
        if status == "disallowed" and present:
            notes = ""
            sources = _sources_for(field)
            if sources:
                notes += f"\n  - note: `{field}` is available for sources: " + ", ".join(f"`{s}`" for s in sources)
            notes += f"\n  - note: available fields for source `{source}`: " + ", ".join(
                f"`{f}`" for f in _available_for(source)
            )
            raise _err(f"`.embedders.{name}`: Field `{field}` unavailable for source `{source}`.{notes}")
        if status == "mandatory" and e.get(field) is None:
            raise _err(f"`.embedders.{name}`: Missing field `{field}` (note: this field is mandatory for source `{source}`)")


def validate(embedders: Any) -> None:
    """Refuse what 1.50 refuses in the `embedders` setting of a settings update (the
    value of the key: a map, `null` resets it all). Feature gates: `check_gates`."""
    if not isinstance(embedders, dict):
        return
    if len(embedders) > MAX_EMBEDDERS:
        raise _err(f"Too many embedders in the configuration. Found {len(embedders)}, but limited to 256.")
    for name, e in embedders.items():
        if not isinstance(e, dict):
            continue
        if e.get("documentTemplateMaxBytes") == 0:
            raise _err(f"`.embedders.{name}.documentTemplateMaxBytes`: `documentTemplateMaxBytes` cannot be zero")
        if e.get("dimensions") == 0:
            raise _err(f"`.embedders.{name}.dimensions`: `dimensions` cannot be zero")
        source = e.get("source")
        if source is None:
            continue  # a partial update of an existing embedder: its source is checked by the node
        _check_fields(name, source, e)
        if source == "openAi" and isinstance(e.get("model"), str):
            _check_openai(name, e["model"], e.get("dimensions"))


def check_gates(embedders: Any, features) -> None:
    """`feature_not_enabled` for the embedder fields behind an experimental feature
    (`features`: the names enabled), checked by 1.50 before any other embedder check."""
    if isinstance(embedders, dict):
        for e in embedders.values():
            if isinstance(e, dict):
                _check_gates(e, features)


def _check_gates(e: dict, features) -> None:
    if e.get("source") == "composite" and "compositeEmbedders" not in features:
        raise feature_not_enabled("using `\"composite\"` as source", "composite embedders", 816)
    for field, feature, action in FEATURE_GATES:
        if e.get(field) is not None and feature not in features:
            label = "composite embedders" if feature == "compositeEmbedders" else "multimodal"
            raise feature_not_enabled(action, label, 816 if feature == "compositeEmbedders" else 846)


def feature_not_enabled(action: str, feature: str, discussion: int) -> MeiliError:
    return MeiliError(
        "feature_not_enabled",
        f"{action} requires enabling the `{feature}` experimental feature. See "
        f"https://github.com/orgs/meilisearch/discussions/{discussion}",
    )


def _check_openai(name: str, model: str, dimensions: Any) -> None:
    spec = OPENAI_MODELS.get(model)
    if spec is None:
        listed = ", ".join(f'"{m}"' for m in OPENAI_MODELS)
        raise _err(f"`.embedders.{name}.model`: Invalid model `{model}` for OpenAI. Supported models: [{listed}]")
    native, overridable = spec
    if isinstance(dimensions, int):
        if not overridable and dimensions != native:
            raise _err(
                f"`.embedders.{name}.dimensions`: Model `{model}` does not support overriding its native dimensions "
                f"of {native}. Found {dimensions}"
            )
        if dimensions > native:
            raise _err(
                f"`.embedders.{name}.dimensions`: Model `{model}` does not support overriding its dimensions to a "
                f"value higher than {native}. Found {dimensions}"
            )


def hide_secret(secret: str) -> str:
    """1.50's `hide_secret`: keep a prefix growing with the length, mask the rest."""
    n = len(secret.encode())
    keep, mask = (0, "XXX...") if n < 10 else (2, "XXXX...") if n < 20 else (3, "XXXXX...") if n < 30 else (5, "XXXXXX...")
    return secret[:keep] + mask


def masked(embedders: Any) -> Any:
    """The embedders map with every `apiKey` masked (GET answers and task details)."""
    if not isinstance(embedders, dict):
        return embedders
    out = copy.deepcopy(embedders)
    for e in out.values():
        if isinstance(e, dict) and isinstance(e.get("apiKey"), str):
            e["apiKey"] = hide_secret(e["apiKey"])
    return out


def stored_view(embedder: dict) -> dict:
    """An embedder as a 1.50 node shows it once set: nulls dropped, the source's
    document template defaults filled, fields in 1.50's order."""
    e = {k: v for k, v in embedder.items() if v is not None}
    source = e.setdefault("source", "openAi")
    if source == "openAi":
        e.setdefault("model", "text-embedding-3-small")
    if source in _TEMPLATED:
        e.setdefault("documentTemplate", DEFAULT_DOCUMENT_TEMPLATE)
        e.setdefault("documentTemplateMaxBytes", DEFAULT_DOCUMENT_TEMPLATE_MAX_BYTES)
    if source == "rest":
        e.setdefault("headers", {})
    for key in ("searchEmbedder", "indexingEmbedder"):
        if isinstance(e.get(key), dict):
            e[key] = {k: v for k, v in e[key].items() if v is not None}
    return {k: e[k] for k in FIELDS if k in e}
