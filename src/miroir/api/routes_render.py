"""`POST /render-template` (1.50, the `renderRoute` experimental feature).

Miroir answers it itself (core/render.py): templates come from its journaled settings,
an `indexDocument` input is read from an owner of the document's shard, as
`GET /indexes/{uid}/documents/{id}` does. Nodes are never asked to render.
"""

from __future__ import annotations

from typing import Any

from quart import Blueprint, Response

from miroir.api.http import json_body, json_response
from miroir.api.routes_tasks import current_cluster
from miroir.core import render as core
from miroir.core.errors import MeiliError
from miroir.engine import writes
from miroir.engine.settings import index_settings

bp = Blueprint("render", __name__)


@bp.post("/render-template")
async def render_template() -> Response:
    body = await json_body()
    cluster = current_cluster()
    features = cluster.state.experimental_features
    if not features.get("renderRoute", False):
        raise core.feature_not_enabled()
    template, given = core.validate(body)
    core.check_template_params(template, features)
    kind = template["kind"]
    if kind in ("inlineDocumentTemplate", "inlineFragment"):
        source: Any = template["inline"]
        if kind == "inlineDocumentTemplate" and not isinstance(source, str):
            raise MeiliError("invalid_render_template", "error while fetching template: inline document templates must be strings")
    else:
        uid = template["indexUid"]
        if uid not in cluster.state.indexes:
            raise core.template_index_not_found(uid)
        source = core.embedder_template(index_settings(cluster, uid), uid, template)
    rendered = None
    if given is not None:
        core.check_input_params(given, features)
        document: Any = given.get("inline")
        if given["kind"] == "indexDocument":
            uid, doc_id = given["indexUid"], given["id"]
            if uid not in cluster.state.indexes:
                raise core.input_index_not_found(uid)
            try:
                document = await writes.get_document(cluster, uid, doc_id, None)
            except MeiliError as e:
                if e.code == "document_not_found":
                    raise core.document_not_found(uid, doc_id) from None
                raise
        rendered = core.render(kind, source, given, document)
    return json_response({"template": source, "rendered": rendered})
