"""Hinted handoff, the state the write and read paths ask (held on `Cluster.handoff`).

The repair loop (engine/handoff.py, started by engine/services.py) changes it; writes
(engine/writes.py) ask `delivery` where each node's part of a batch goes and journal
the parts a node missed with `add_hints`; reads avoid `unreadable()` nodes.

Held in memory (lost on restart, on purpose: a restart re-checks every node):
- `held`: nodes that went `down` and are not verified since (writes hinted, reads avoid);
- `downs`: down transitions per node, a generation that tells a repair it raced a flap;
- `checked`: nodes whose copy was verified not lost since their last down;
- `copying`: (node, index) refills that take dual writes;
- `direct`: nodes handed over after their backlog (writes direct, reads not yet);
- `last_error`: the last repair failure per node, for /_miroir/topology.
The backlogs themselves are journaled (`MiroirState.repairs`, core/model.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog
import trio

from miroir.config import HealthConfig
from miroir.core import backlog
from miroir.core.model import HintsAdded, MiroirState, NodeRequest, RefillStarted
from miroir.engine.health import HealthTable
from miroir.store.journal import Journal

log = structlog.get_logger("miroir.handoff")


class HandoffState:
    def __init__(self, journal: Journal[MiroirState], health: HealthTable, config: HealthConfig):
        self.journal = journal
        self.health = health
        self.config = config
        self.held: set[str] = set()
        self.downs: dict[str, int] = {}
        self.checked: set[str] = set()
        self.copying: set[tuple[str, str]] = set()
        # Backlog replayed and handed over: writes go to the node directly, reads wait
        # until it has applied what was replayed (node -> last replayed node task).
        self.direct: dict[str, int | None] = {}
        self.last_error: dict[str, str] = {}
        self.kick = trio.Event()  # set on anything the repair loop should look at

    # --- what the write and read paths ask ------------------------------------------------

    def delivery(self, node: str, index: str) -> backlog.Delivery:
        return backlog.delivery(
            self.journal.state.repairs.get(node),
            index,
            available=self.health.is_available(node),
            held=node in self.held,
            copying=(node, index) in self.copying,
        )

    def unreadable(self) -> set[str]:
        """Nodes that must not answer reads: held, with a backlog, handed over but not
        caught up yet, or being refilled."""
        out = self.held | set(self.direct)
        out.update(n for n, rep in self.journal.state.repairs.items() if backlog.needs_repair(rep))
        return out

    def view(self, node: str) -> dict[str, Any]:
        """Repair state of one node for /_miroir/topology."""
        rep = self.journal.state.repairs.get(node)
        state = "ok"
        if rep is not None and rep.refill:
            state = "refilling"
        elif rep is not None and rep.hints:
            state = "backlog"
        elif node in self.held:
            state = "held"
        elif node in self.direct:
            state = "catching_up"
        return {
            "state": state,
            "backlogOps": len(rep.hints) if rep else 0,
            "backlogBytes": rep.bytes if rep else 0,
            "refillReason": rep.refill_reason if rep else None,
            "refilledIndexes": list(rep.refilled) if rep else [],
            "replayedOps": rep.replayed if rep else 0,
            "refills": rep.refills if rep else 0,
            "lastError": self.last_error.get(node),
        }

    async def add_hints(self, missed: Mapping[str, NodeRequest]) -> None:
        """Journal the parts `missed` by these nodes (caller holds the index lock)."""
        limit = self.config.max_backlog_bytes
        records: list[HintsAdded | RefillStarted] = []
        for node, req in sorted(missed.items()):
            rep = self.journal.state.repairs.get(node)
            if rep is not None and rep.refill and req.index not in rep.refilled:
                continue  # the refill's reconciliation brings it
            size = backlog.request_size(req)
            if (rep.bytes if rep is not None else 0) + size > limit:
                reason = f"backlog over health.max_backlog_bytes ({limit})"
                log.warning("handoff.backlog_overflow", node=node, limit=limit)
                records.append(RefillStarted(node=node, reason=reason))
            else:
                records.append(HintsAdded(node=node, requests=[req], sizes=[size]))
        await self.journal.append(*records)
        self.wake()

    # --- what the health table and the repair loop tell it -----------------------------------

    def on_health(self, node: str, state: str) -> None:
        if state == "down":
            self.held.add(node)
            self.direct.pop(node, None)
            self.checked.discard(node)
            self.downs[node] = self.downs.get(node, 0) + 1
            # In place: a running refill holds this set (its copy restarts anyway).
            self.copying.difference_update({(n, i) for n, i in self.copying if n == node})
        self.wake()

    def wake(self) -> None:
        self.kick.set()
