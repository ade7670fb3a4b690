"""`/webhooks` (Meilisearch 1.50): list, create, get, patch, delete; engine/webhooks.py
keeps them in Miroir's journal and delivers Miroir's finished tasks to them."""

from __future__ import annotations

from typing import Any

from quart import Blueprint, Response

from miroir.api.http import json_body, json_response
from miroir.api.routes_tasks import current_cluster
from miroir.engine import webhooks

bp = Blueprint("webhooks", __name__)


@bp.get("/webhooks")
async def list_webhooks() -> Response:
    return json_response(webhooks.list_webhooks(current_cluster()))


@bp.post("/webhooks")
async def create_webhook() -> Response:
    body: Any = await json_body()
    return json_response(await webhooks.create(current_cluster(), body), status=201)


@bp.get("/webhooks/<uuid>")
async def get_webhook(uuid: str) -> Response:
    return json_response(webhooks.get_webhook(current_cluster(), uuid))


@bp.patch("/webhooks/<uuid>")
async def patch_webhook(uuid: str) -> Response:
    body: Any = await json_body()
    return json_response(await webhooks.patch(current_cluster(), uuid, body))


@bp.delete("/webhooks/<uuid>")
async def delete_webhook(uuid: str) -> Response:
    await webhooks.delete(current_cluster(), uuid)
    return json_response(None, status=204)
