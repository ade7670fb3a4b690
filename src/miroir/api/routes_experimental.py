"""`/experimental-features` (Meilisearch 1.50).

`GET` answers Miroir's view (what it has set on its nodes, journaled). `PATCH` is sent
to every node first; only once every node took it is it journaled and answered (a
node that did not answer makes it a 503, retryable: setting a flag twice is harmless).
So a flag such as `containsFilter` is on wherever a query is answered.
"""

from __future__ import annotations

from quart import Blueprint, Response

from miroir.api.http import json_body, json_response
from miroir.api.routes_tasks import current_cluster
from miroir.core import features
from miroir.core.model import ExperimentalFeaturesSet
from miroir.engine.indexes import broadcast, first_error

bp = Blueprint("experimental", __name__)


@bp.get("/experimental-features")
async def get_features() -> Response:
    return json_response(features.features_view(current_cluster().state.experimental_features))


@bp.patch("/experimental-features")
async def patch_features() -> Response:
    changes = features.validate_patch(await json_body())
    cluster = current_cluster()
    if changes:

        async def call(node: str) -> dict:
            return await cluster.fleet[node].call("PATCH", "/experimental-features", json=changes)

        _, errors = await broadcast(cluster, cluster.topology.all_nodes(), call)
        if errors:
            raise first_error(errors)
        await cluster.journal.append(ExperimentalFeaturesSet(features=changes))
    return json_response(features.features_view(cluster.state.experimental_features))
