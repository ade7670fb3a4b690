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
  is replayed in order (`HintsReplayed` journaled per batch once the node has accepted
  it, so a Miroir restart resumes there; a replayed batch sent twice is harmless: the
  requests are upserts and deletes replayed as a whole suffix, in order);
- catching up under a sustained write rate (issue 20): new writes keep joining the
  backlog while it is replayed, so it would never be empty. Once what is left is short
  (`TAIL_HINTS`), the replay takes the write locks of the indexes it touches, sends it,
  journals it replayed and *hands the node over* before releasing the locks: the next
  write of those indexes goes straight to the node, enqueued after the replayed ones
  (the order invariant holds; a restart replays nothing older than a direct write).
  The node answers reads again once it has applied the last replayed request.

Reads use `Cluster.healthy_nodes()`, which excludes `unreadable()` nodes: held, with a
backlog, handed over but not caught up yet, or being refilled. Errors are logged and
retried every `RETRY_S`; nothing here raises out of `run` except journal failures.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import NoReturn

import structlog
import trio

from miroir.core import backlog
from miroir.core.model import Hint, HintsReplayed, RefillStarted
from miroir.core.taskfold import TERMINAL
from miroir.engine import refill
from miroir.engine.cluster import Cluster
from miroir.engine.indexes import index_lock
from miroir.engine.mover import MoveFailed
from miroir.engine.writes import deliver
from miroir.net.node import NodeError, NodeUnavailable
from miroir.store.journal import JournalError

log = structlog.get_logger("miroir.handoff")

# Pause before retrying a node whose repair failed (node flapping, source unreachable).
RETRY_S = 0.5
# Hints sent between two journaled progress records (one fsync per batch).
REPLAY_BATCH = 32
# A backlog this short is sent under the write locks of its indexes and the node handed
# over (writes go to it directly): the writes of those indexes wait for at most this
# many node calls.
TAIL_HINTS = 32
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
            if n in self.state.held or n in self.state.direct or backlog.needs_repair(repairs.get(n))
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
            except Exception as e:  # a failed check must not stop Miroir
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
                last_task = await self._replay(node, generation)
                if last_task is None:
                    last_task = self.state.direct.get(node)  # handed over by an earlier attempt
                if last_task is not None:
                    t0 = trio.current_time()
                    await self._applied(node, last_task)
                    log.info("handoff.caught_up", node=node, wait_s=round(trio.current_time() - t0, 3))
                rep = self.cluster.state.repairs.get(node)
                # No checkpoint between this check and the release: a write either
                # landed in the backlog (and we loop) or will be sent directly.
                if not backlog.needs_repair(rep):
                    if self.state.downs.get(node, 0) == generation:
                        self.state.held.discard(node)
                        self.state.direct.pop(node, None)
                        self.state.last_error.pop(node, None)
                        log.info("handoff.node_released", node=node)
                    return
        except (MoveFailed, NodeUnavailable, NodeError) as e:
            self.state.last_error[node] = str(e)
            log.warning("handoff.repair_failed", node=node, error=str(e))
            await trio.sleep(RETRY_S)
        except JournalError:
            raise
        except Exception as e:  # a bug here must not stop serving; retried
            self.state.last_error[node] = repr(e)
            log.exception("handoff.repair_crashed", node=node)
            await trio.sleep(RETRY_S)
        finally:
            self._busy.discard(node)
            self.state.wake()

    async def _replay(self, node: str, generation: int) -> int | None:
        """Send the backlog in order, a batch at a time, each journaled as replayed once
        the node has accepted it; the short tail is handed over (`_hand_over`). Returns
        the node task of the last request sent (None: nothing sent), which the node must
        have applied before it answers reads."""
        last_task: int | None = None
        while True:
            rep = self.cluster.state.repairs.get(node)
            if rep is None or rep.refill or not rep.hints:
                return last_task
            if len(rep.hints) <= TAIL_HINTS:
                done, task = await self._hand_over(node, generation, last_task)
                last_task = task if task is not None else last_task
                if done:
                    return last_task
                continue
            hints = list(rep.hints[:REPLAY_BATCH])
            through, task, refused = await self._send_hints(node, hints)
            last_task = task if task is not None else last_task
            if refused:
                return last_task
            await self.cluster.journal.append(HintsReplayed(node=node, through=through))

    async def _hand_over(self, node: str, generation: int, sent: int | None) -> tuple[bool, int | None]:
        """Send the whole (short) backlog while no write of its indexes can be decided,
        journal it replayed and let the next writes go to the node directly.

        Returns (handed over, last node task sent). Not handed over when a write of
        another index joined the backlog meanwhile (the caller tries again, with that
        index's lock too), or the node went down. `sent`: the last node task the replay
        sent before the tail.
        """
        rep = self.cluster.state.repairs.get(node)
        if rep is None or not rep.hints:
            return True, None
        uids = sorted({h.request.index for h in rep.hints})
        async with contextlib.AsyncExitStack() as locks:
            for uid in uids:  # sorted, and nobody else holds two: no deadlock
                await locks.enter_async_context(index_lock(self.cluster, uid))
            rep = self.cluster.state.repairs.get(node)
            if rep is None or rep.refill or not rep.hints:
                return True, None
            if not {h.request.index for h in rep.hints} <= set(uids):
                return False, None
            if self.state.downs.get(node, 0) != generation or not self.cluster.health.is_available(node):
                raise NodeUnavailable(node, "went down while its backlog was replayed")
            hints = list(rep.hints)
            through, task, refused = await self._send_hints(node, hints)
            if refused:
                return True, task
            await self.cluster.journal.append(HintsReplayed(node=node, through=through))
            # Still under the locks: the next write of these indexes sees an empty
            # backlog and a node no longer held, and goes after what was just sent.
            self.state.held.discard(node)
            self.state.direct[node] = task if task is not None else sent
        log.info("handoff.handed_over", node=node, tail=len(hints), indexes=uids)
        return True, task

    async def _send_hints(self, node: str, hints: Sequence[Hint]) -> tuple[int, int | None, bool]:
        """Deliver hints in order: (seq reached, last node task, refill started)."""
        through = hints[0].seq
        last_task: int | None = None
        for hint in hints:
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
                    return through, last_task, True
                # The node refuses it as Meilisearch would; a replay cannot change that.
                log.warning("handoff.hint_refused", node=node, seq=hint.seq, error=e.message)
        return through, last_task, False

    async def _applied(self, node: str, task_uid: int) -> None:
        """Wait until the node finished `task_uid` (its queue is ordered: all before too).
        Writes may go on reaching the node meanwhile (handed over)."""
        client = self.cluster.fleet.get(node)
        if client is None:
            return
        with trio.move_on_after(APPLY_TIMEOUT_S):
            while True:
                view = await client.call("GET", f"/tasks/{task_uid}", timeout_s=5.0)
                if view.get("status") in TERMINAL:
                    return
                await trio.sleep(APPLY_POLL_S)
        raise MoveFailed(f"node `{node}` did not apply replayed task {task_uid} in {APPLY_TIMEOUT_S:g}s")
