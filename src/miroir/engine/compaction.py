"""`POST /indexes/{uid}/compact` (1.50): compaction on every node, as one Miroir task
whose details give the index's size before and after."""

from __future__ import annotations

from typing import Any

from miroir.core.model import TaskRecord
from miroir.core.statsview import size
from miroir.engine.cluster import Cluster
from miroir.engine.indexes import get_index, run_on
from miroir.engine.stats import index_stats
from miroir.engine.tasks import DrivenTask


async def compact_index(cluster: Cluster, uid: str) -> TaskRecord:
    """`POST /indexes/{uid}/compact`: compact on every node; the task's sizes are the
    index's documents (one copy, as `GET /indexes/{uid}/stats` counts them) before and
    after, in 1.50's human form. An unknown index fails in the task."""
    details: dict[str, Any] = {"preCompactionSize": None, "postCompactionSize": None}

    async def driver(handle: DrivenTask) -> None:
        await handle.set_processing()
        get_index(cluster, uid)
        before, _ = await index_stats(cluster, uid)
        await run_on(cluster, handle, cluster.topology.all_nodes(), "POST", f"/indexes/{uid}/compact")
        after, _ = await index_stats(cluster, uid)
        await handle.finish(
            "succeeded",
            details={
                "preCompactionSize": size(before["rawDocumentDbSize"], "human"),
                "postCompactionSize": size(after["rawDocumentDbSize"], "human"),
            },
        )

    return await cluster.tasks.enqueue_driven(index_uid=uid, type="indexCompaction", details=details, driver=driver)
