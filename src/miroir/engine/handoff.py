"""Hinted handoff: nodes that missed writes get them, in order, before serving reads.

The write path (engine/writes.py) asks `delivery` (core/backlog.py) where each node's
part of a batch goes. Parts for a node that is down, held, or behind a backlog, and
parts whose call got no answer, become *hints*: the exact node request, journaled in the
node's backlog (`HintsAdded`) before the client's 202. Over `health.max_backlog_bytes`
the backlog is dropped and the node is marked for a refill (`RefillStarted`,
engine/refill.py) instead.

This service (`Handoff.run`, started by engine/services.py) repairs nodes:

- a node that went `down` is *held* from then on (in memory): writes for it are hinted
  and reads avoid it, until it is up again and verified;
- when a node that needs repair is available: if it was held or has hints, check that
  its copy is not lost (`refill.check_lost`); a lost copy is refilled; then the backlog
  is replayed in order (`HintsReplayed` journaled per batch, so a Miroir restart resumes
  there; a replayed batch sent twice is harmless: the requests are upserts and deletes
  replayed as a whole suffix, in order); the service waits for the node to have applied
  each replayed batch before journaling it, so the node is released (reads come back)
  only once everything it missed is applied.

Reads use `Cluster.healthy_nodes()`, which excludes `unreadable()` nodes: held, with a
backlog, or being refilled. Errors are logged and retried every `RETRY_S`; nothing here
raises out of `run` except journal failures.
"""

from __future__ import annotations

from typing import NoReturn

import structlog
import trio

from miroir.core import backlog
from miroir.engine import refill
from miroir.engine.mover import MoveFailed
from miroir.net.node import NodeError, NodeUnavailable
from miroir.store.journal import JournalError
from miroir.core.model import HintsReplayed, RefillStarted
from miroir.engine.cluster import Cluster
from miroir.engine.writes import deliver

log = structlog.get_logger("miroir.handoff")

# Pause before retrying a node whose repair failed (node flapping, source unreachable).
RETRY_S = 0.5
# Hints sent between two journaled progress records (one fsync per batch).
REPLAY_BATCH = 32
# How long the replay waits for the node to apply its last replayed task.
APPLY_TIMEOUT_S = 120.0
APPLY_POLL_S = 0.02


class Handoff:
    """The repair loop; its state (`cluster.handoff`, engine/handoffstate.py) is what
    writes and reads ask."""

    def __init__(self, cluster: Cluster):
        self.cluster = cluster
        self.state = cluster.handoff
        self._busy: set[str] = set()

    def _todo(self) -> list[str]:
        repairs = self.cluster.state.repairs
        return [
            n
            for n in self.cluster.topology.all_nodes()
            if n in self.state.held or backlog.needs_repair(repairs.get(n))
        ]

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> NoReturn:
        """Repair nodes as they come back, until cancelled (see the module doc)."""
        health = self.cluster.health
        health.listeners.append(self.state.on_health)
        try:
            async with trio.open_nursery() as nursery:
                task_status.started()
                nursery.start_soon(self._verify_at_start)
                while True:
                    for node in self._todo():
                        if node not in self._busy and health.is_available(node):
                            self._busy.add(node)
                            nursery.start_soon(self._repair, node)
                    with trio.move_on_after(RETRY_S):
                        await self.state.kick.wait()
                    self.state.kick = trio.Event()
        finally:
            health.listeners.remove(self.state.on_health)

    async def _verify_at_start(self) -> None:
        """A node may have lost its disk while Miroir was down: check every node once.

        Does not hold reads meanwhile (a Miroir restart must not refuse reads while it
        checks); a node found lost is marked for a refill from then on.
        """
        async def one(node: str) -> None:
            try:
                reason = await refill.check_lost(self.cluster, node)
            except JournalError:
                raise
            except Exception as e:  # noqa: BLE001 - a failed check must not stop Miroir
                log.info("handoff.start_check_skipped", node=node, error=repr(e))
                return
            if reason is not None and not backlog.needs_repair(self.cluster.state.repairs.get(node)):
                log.warning("handoff.copy_lost", node=node, reason=reason, at="start")
                await self.cluster.journal.append(RefillStarted(node=node, reason=reason))
                self.state.wake()

        async with trio.open_nursery() as nursery:
            for node in self.cluster.topology.all_nodes():
                if self.cluster.health.is_available(node) and not backlog.needs_repair(
                    self.cluster.state.repairs.get(node)
                ):
                    nursery.start_soon(one, node)

    async def _repair(self, node: str) -> None:
        generation = self.state.downs.get(node, 0)
        try:
            rep = self.cluster.state.repairs.get(node)
            unchecked = node in self.state.held or (rep is not None and rep.hints and node not in self.state.checked)
            if not (rep is not None and rep.refill) and unchecked:
                reason = await refill.check_lost(self.cluster, node)
                if reason is not None:
                    log.warning("handoff.copy_lost", node=node, reason=reason)
                    await self.cluster.journal.append(RefillStarted(node=node, reason=reason))
                if self.state.downs.get(node, 0) == generation:
                    self.state.checked.add(node)
            while True:
                rep = self.cluster.state.repairs.get(node)
                if rep is not None and rep.refill:
                    await refill.refill_node(self.cluster, node, self.state.copying)
                await self._replay(node)
                rep = self.cluster.state.repairs.get(node)
                # No checkpoint between this check and the release: a write either
                # landed in the backlog (and we loop) or will be sent directly.
                if not backlog.needs_repair(rep):
                    if self.state.downs.get(node, 0) == generation:
                        self.state.held.discard(node)
                        self.state.last_error.pop(node, None)
                        log.info("handoff.node_released", node=node)
                    return
        except (MoveFailed, NodeUnavailable, NodeError) as e:
            self.state.last_error[node] = str(e)
            log.warning("handoff.repair_failed", node=node, error=str(e))
            await trio.sleep(RETRY_S)
        except JournalError:
            raise
        except Exception as e:  # noqa: BLE001 - a bug here must not stop serving; retried
            self.state.last_error[node] = repr(e)
            log.exception("handoff.repair_crashed", node=node)
            await trio.sleep(RETRY_S)
        finally:
            self._busy.discard(node)
            self.state.wake()

    async def _replay(self, node: str) -> None:
        """Send the backlog in order, a batch at a time; a batch is journaled as replayed
        once the node has applied it, so the backlog empties (and the node becomes
        readable, and writes go to it directly) only when everything is applied."""
        while True:
            rep = self.cluster.state.repairs.get(node)
            if rep is None or rep.refill or not rep.hints:
                return
            through: int | None = None
            last_task: int | None = None
            for hint in list(rep.hints[:REPLAY_BATCH]):
                req = hint.request
                through = hint.seq
                if req.index not in self.cluster.state.indexes:
                    continue  # deleted since: replaying would create it again on the node
                try:
                    body = await deliver(self.cluster, node, req)
                    last_task = int(body["taskUid"])
                except NodeError as e:
                    if e.status >= 500:
                        raise
                    if e.code == "index_not_found":
                        reason = f"index `{req.index}` is missing on the node"
                        await self.cluster.journal.append(RefillStarted(node=node, reason=reason))
                        return
                    # The node refuses it as Meilisearch would; a replay cannot change that.
                    log.warning("handoff.hint_refused", node=node, seq=hint.seq, error=e.message)
            if last_task is not None:
                await self._applied(node, last_task)
            assert through is not None
            await self.cluster.journal.append(HintsReplayed(node=node, through=through))

    async def _applied(self, node: str, task_uid: int) -> None:
        """Wait until the node finished `task_uid` (its queue is ordered: all before too)."""
        client = self.cluster.fleet.get(node)
        if client is None:
            return
        with trio.move_on_after(APPLY_TIMEOUT_S):
            while True:
                view = await client.call("GET", f"/tasks/{task_uid}", timeout_s=5.0)
                if view.get("status") in ("succeeded", "failed", "canceled"):
                    return
                await trio.sleep(APPLY_POLL_S)
        raise MoveFailed(f"node `{node}` did not apply replayed task {task_uid} in {APPLY_TIMEOUT_S:g}s")
