"""Node health: the health table and the probers (one per node).

- `HealthTable` holds a `NodeHealth` (miroir.core.health: the rules live there) per node,
  answers "may I send to this node?" for scatter and writes, takes passive evidence from
  them (`report_failure`, `report_success`), and wakes waiters on every state change.
- `run_prober` probes one node forever: `probe()` every interval under a deadline.
- `run_health` owns one prober per node in its own nursery and follows the node list:
  it polls a `nodes()` callable every interval and starts/stops probers to match.
- engine/services.py wires the above to a `Cluster` (`run_cluster_health`), and
  engine/cluster.py answers readiness from the table (`cluster_is_ready`).

The probe is an injected callable (`probe(node_id) -> awaitable`, raises on failure), so
this module does not care how a node is reached and tests can use any HTTP server.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any, NoReturn

import structlog
import trio

from miroir.config import HealthConfig
from miroir.core.health import NodeHealth, NodeHealthView, Thresholds
from miroir.instruments import HOT

log = structlog.get_logger("miroir.health")

Probe = Callable[[str], Awaitable[object]]


class HealthTable:
    """Node id -> health. All methods are synchronous and cheap (called per request).

    A node the table has never heard of is *available*: a node added at run time must not
    be refused traffic before its prober has started. Its first probe is decisive.
    """

    def __init__(self, thresholds: Thresholds = Thresholds(), *, clock: Callable[[], float] = trio.current_time):
        self.thresholds = thresholds
        self._clock = clock
        self._nodes: dict[str, NodeHealth] = {}
        self._changed = trio.Event()
        # Bumped on every state change; lets a waiter tell "changed since I looked".
        self.version = 0
        # Called synchronously as `listener(node_id, new_state)` on every transition
        # (metrics counters, tests); must not block or raise.
        self.listeners: list[Callable[[str, str], None]] = []

    @classmethod
    def from_config(cls, config: HealthConfig, **kw: Any) -> HealthTable:
        return cls(
            Thresholds(
                unhealthy_threshold=config.unhealthy_threshold, recovery_threshold=config.recovery_threshold
            ),
            **kw,
        )

    # --- membership ---------------------------------------------------------------------

    def _entry(self, node_id: str) -> NodeHealth:
        h = self._nodes.get(node_id)
        if h is None:
            h = self._nodes[node_id] = NodeHealth(self.thresholds, self._clock())
            self._notify()  # membership is part of what waiters watch
        return h

    def add(self, node_id: str) -> None:
        self._entry(node_id)

    def remove(self, node_id: str) -> None:
        if self._nodes.pop(node_id, None) is not None:
            self._notify()

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._nodes

    def node_ids(self) -> list[str]:
        return sorted(self._nodes)

    def get(self, node_id: str) -> NodeHealth | None:
        return self._nodes.get(node_id)

    # --- queries ------------------------------------------------------------------------

    def state(self, node_id: str) -> str:
        h = self._nodes.get(node_id)
        return "up" if h is None else h.state

    def is_available(self, node_id: str) -> bool:
        h = self._nodes.get(node_id)
        return h is None or h.available

    def available(self, node_ids: Iterable[str]) -> set[str]:
        return {n for n in node_ids if self.is_available(n)}

    def down(self) -> set[str]:
        return {n for n, h in self._nodes.items() if not h.available}

    def latency_p95(self, node_id: str) -> float | None:
        h = self._nodes.get(node_id)
        return None if h is None else h.latency_p95()

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Node id -> health view as plain data (for /_miroir/topology)."""
        now = self._clock()
        return {n: _plain(h.view(now)) for n, h in sorted(self._nodes.items())}

    # --- evidence -----------------------------------------------------------------------

    def report_failure(self, node_id: str, reason: str, *, timed_out: bool = False) -> None:
        """A real request got no answer (NodeUnavailable, or the caller's deadline).

        Refused/reset: the node is down at once. `timed_out=True` (a deadline): one
        failure toward `unhealthy_threshold` (see miroir.core.health for why).
        """
        h = self._entry(node_id)
        self._after(node_id, h.request_unanswered(self._clock(), reason, timed_out=timed_out), reason)

    def report_success(self, node_id: str, latency_s: float) -> None:
        """A real request was answered (any status) in `latency_s`."""
        HOT.node_answered(node_id, latency_s)
        self._after(node_id, self._entry(node_id).request_succeeded(self._clock(), latency_s), None)

    def probe_failed(self, node_id: str, reason: str) -> None:
        self._after(node_id, self._entry(node_id).probe_failed(self._clock(), reason), reason)

    def probe_succeeded(self, node_id: str, rtt_s: float) -> None:
        self._after(node_id, self._entry(node_id).probe_succeeded(self._clock(), rtt_s), None)

    def _after(self, node_id: str, changed: bool, reason: str | None) -> None:
        if not changed:
            return
        state = self._nodes[node_id].state
        if state == "down":
            log.warning("health.node_down", node=node_id, reason=reason)
        else:
            log.info("health.node_state", node=node_id, state=state)
        for listener in self.listeners:
            listener(node_id, state)
        self._notify()

    # --- waiting ------------------------------------------------------------------------

    def _notify(self) -> None:
        # A trio.Event cannot be reset: set the current one (waking every waiter) and put
        # a fresh one in place for the next round of waiters.
        self.version += 1
        event, self._changed = self._changed, trio.Event()
        event.set()

    async def wait_changed(self) -> None:
        """Return at the next change (a node's state, a node added or removed).

        Callers re-check their condition (`wait_for`).
        """
        await self._changed.wait()

    async def wait_for(self, predicate: Callable[[HealthTable], bool]) -> None:
        """Return once `predicate(self)` holds; the caller bounds it with a cancel scope."""
        while not predicate(self):
            await self.wait_changed()


def _plain(view: NodeHealthView) -> dict[str, Any]:
    return {f: getattr(view, f) for f in view.__struct_fields__}


# --- probing ---------------------------------------------------------------------------


async def probe_once(table: HealthTable, node_id: str, probe: Probe, timeout_s: float) -> bool:
    """One probe under a deadline, fed to `table`. True when the node answered."""
    start = trio.current_time()
    error: str | None = None
    with trio.move_on_after(timeout_s) as scope:
        try:
            await probe(node_id)
        except Exception as e:  # any failure to answer is "unhealthy"
            error = f"{type(e).__name__}: {e}"
    if scope.cancelled_caught:
        error = f"no answer within {timeout_s:g}s"
    if error is not None:
        table.probe_failed(node_id, error)
        return False
    table.probe_succeeded(node_id, trio.current_time() - start)
    return True


async def run_prober(
    table: HealthTable,
    node_id: str,
    probe: Probe,
    interval_s: float,
    timeout_s: float,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> NoReturn:
    """Probe `node_id` every `interval_s` until cancelled.

    Reports `started()` after the first probe, so that whoever starts the probers knows
    the table holds real evidence for this node. Probes run on a fixed cadence (start to
    start), so a slow answer does not stretch the time to detect a dead node. Probes
    never overlap: one that runs past the interval (timeout > interval) just delays the
    next one.
    """
    table.add(node_id)
    next_at = trio.current_time()
    await probe_once(table, node_id, probe, timeout_s)
    task_status.started()
    while True:
        next_at += interval_s
        # After a long stall (suspended process), do not fire a burst of catch-up probes.
        next_at = max(next_at, trio.current_time())
        await trio.sleep_until(next_at)
        await probe_once(table, node_id, probe, timeout_s)


async def run_health(
    table: HealthTable,
    nodes: Callable[[], Iterable[str]],
    probe: Probe,
    *,
    interval_s: float,
    timeout_s: float,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> NoReturn:
    """One prober per node of `nodes()`, following it as it changes, until cancelled.

    Reports `started()` once every initial node had its first probe (in parallel), so
    the readiness answer is meaningful from then on. Every `interval_s` it re-reads
    `nodes()`: new nodes get a prober, gone nodes lose theirs and leave the table.
    Owns its nursery: cancelling this task stops every prober.
    """
    scopes: dict[str, trio.CancelScope] = {}
    retiring: set[str] = set()

    async def supervised(
        node_id: str, scope: trio.CancelScope, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        # `scope` was reserved by `sync`; a node removed before its prober got to run
        # finds it already cancelled and exits at once.
        try:
            with scope:
                await run_prober(table, node_id, probe, interval_s, timeout_s, task_status=task_status)
        finally:
            if scopes.get(node_id) is scope:
                del scopes[node_id]
            if node_id in retiring and node_id not in scopes:
                # A report may have landed between cancel() and the prober's next
                # checkpoint; drop the entry again now that the prober is really gone.
                retiring.discard(node_id)
                table.remove(node_id)

    def sync(probers: trio.Nursery, starters: trio.Nursery | None) -> None:
        wanted = set(nodes())
        for node_id in sorted(set(scopes) - wanted):
            scopes.pop(node_id).cancel()
            retiring.add(node_id)
            table.remove(node_id)
            log.info("health.prober_stopped", node=node_id)
        for node_id in sorted(wanted - set(scopes)):
            # Reserve the slot now so that the next sync does not start a second prober.
            scope = scopes[node_id] = trio.CancelScope()
            retiring.discard(node_id)
            if starters is not None:
                starters.start_soon(probers.start, supervised, node_id, scope)
            else:
                probers.start_soon(supervised, node_id, scope)
            log.info("health.prober_started", node=node_id)

    async with trio.open_nursery() as probers:
        async with trio.open_nursery() as starters:
            sync(probers, starters)
        task_status.started()
        while True:
            await trio.sleep(interval_s)
            sync(probers, None)
