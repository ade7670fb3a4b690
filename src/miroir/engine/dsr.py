"""`/dynamic-search-rules` tasks (1.50 `dsrUpdate`, `dsrClear`): Miroir owns the rules.

Each write is a driven Miroir task on its own queue (rules change in the order they were
asked for, never behind an index's work): it journals the rule after the update
(core/model.py `DynamicSearchRulePut` / `DynamicSearchRuleDeleted`) and succeeds. Nothing
is sent to the nodes: the rules are Miroir's, as the index they live in is 1.50's own.
"""

from __future__ import annotations

from typing import Any

from miroir.core import dsr
from miroir.core.model import DynamicSearchRuleDeleted, DynamicSearchRulePut, TaskRecord
from miroir.engine.cluster import Cluster
from miroir.engine.tasks import DrivenTask

DSR_QUEUE = "\x00dsr"


async def update_rule(cluster: Cluster, uid: str, update: dict[str, Any], custom_metadata: str | None) -> TaskRecord:
    details = dsr.update_details(update)

    async def driver(handle: DrivenTask) -> None:
        await handle.set_processing()
        current = cluster.state.dynamic_search_rules.get(uid)
        rule = dsr.apply_update(current, uid, update, cluster.tasks.now_rfc3339())
        await cluster.journal.append(DynamicSearchRulePut(rule=rule))
        await handle.finish("succeeded", details=details)

    return await cluster.tasks.enqueue_driven(
        index_uid=None, type="dsrUpdate", details=details, driver=driver, queue=DSR_QUEUE, custom_metadata=custom_metadata
    )


async def delete_rule(cluster: Cluster, uid: str, custom_metadata: str | None) -> TaskRecord:
    """1.50 succeeds deleting a rule that does not exist (`updatedRules` stays 1)."""
    details = {"updatedRules": 1}

    async def driver(handle: DrivenTask) -> None:
        await handle.set_processing()
        await cluster.journal.append(DynamicSearchRuleDeleted(uid=uid))
        await handle.finish("succeeded", details=details)

    return await cluster.tasks.enqueue_driven(
        index_uid=None, type="dsrUpdate", details=details, driver=driver, queue=DSR_QUEUE, custom_metadata=custom_metadata
    )


async def clear_rules(cluster: Cluster, custom_metadata: str | None) -> TaskRecord:
    async def driver(handle: DrivenTask) -> None:
        await handle.set_processing()
        deleted = len(cluster.state.dynamic_search_rules)
        await cluster.journal.append(DynamicSearchRuleDeleted(uid=None))
        await handle.finish("succeeded", details={"deletedDocuments": deleted})

    return await cluster.tasks.enqueue_driven(
        index_uid=None, type="dsrClear", details={"deletedDocuments": None}, driver=driver, queue=DSR_QUEUE,
        custom_metadata=custom_metadata,
    )
