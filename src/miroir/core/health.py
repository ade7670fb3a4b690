"""Node health: the per-node state machine and the readiness rule (design §1, §6, §7).

Pure: no I/O, no trio, no clock. Every transition is fed ``(now, outcome)`` by the caller
(`miroir.engine.health`), so tests drive time by hand.

States and the rules between them:

- ``up``: the node answers. Reads and writes go to it.
- ``suspect``: a failure streak (probes, or real requests that hit their deadline)
  shorter than ``unhealthy_threshold``.
  Still *available*: one lost probe (a GC pause, a busy event loop) must not shift load.
- ``down``: not available; reads route around it, the readiness rule ignores it.

Evidence comes from two places:

- **Probes** (``GET /health`` every interval, by the prober): ``unhealthy_threshold``
  consecutive failures -> ``down``; fewer -> ``suspect``; a success while ``suspect`` ->
  ``up`` (the failure streak is broken); ``recovery_threshold`` consecutive successes while
  ``down`` -> ``up``.
- **Passive evidence** (outcome of real requests, reported by scatter/writes):
  a real request whose connection was *refused or reset* marks the node ``down`` at
  once. The design wants "a dead node stops receiving traffic before the next probe":
  waiting for ``unhealthy_threshold`` probes would send every read for threshold x
  interval to a corpse and pay an error + retry each time. The price of a false positive
  is small: the node is skipped until ``recovery_threshold`` probes succeed.
  A real request that hit its *deadline* counts as one failure of the streak (``suspect``,
  ``down`` at the threshold), not as down at once: a deadline can be the query's fault
  (a heavy search is slow on every node), and marking every node down on one slow query
  would turn it into a cluster-wide outage. A hung node (SIGSTOP) is still caught: its
  probes time out too. Answers with an error status (4xx/5xx) are not health evidence.
  A passive success breaks a probe failure streak (``suspect`` -> ``up``) but never
  lifts ``down``: recovery is the prober's job, because probes are spaced by the interval,
  which is what makes ``recovery_threshold`` mean "stable for that many intervals"
  (a burst of parallel writes would otherwise count as many successes at once).

The first probe of a node never heard from is decisive: a node starts ``up`` (a restart
of Miroir must not refuse reads while probes are in flight), but if its very first probe
fails it goes ``down`` at once, so that the first probe round gives a true picture.

Latency: successful *real* requests feed a small ring of latencies (p95 for hedging);
the probe round-trip is kept apart (``probe_rtt_s``) because a ``/health`` answer is far
cheaper than a search and would drag the percentile down.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

import msgspec

HealthState = Literal["up", "suspect", "down"]

# Latencies kept per node for the p95: enough for a stable percentile, small enough that
# the value follows a node that got slow within a few seconds of traffic.
LATENCY_WINDOW = 64
# Error texts are kept for operators (/_miroir/topology), not for parsing; bound them.
MAX_ERROR_CHARS = 300


class Thresholds(msgspec.Struct, frozen=True, kw_only=True):
    unhealthy_threshold: int = 3
    recovery_threshold: int = 2

    def __post_init__(self) -> None:
        assert self.unhealthy_threshold >= 1 and self.recovery_threshold >= 1


class NodeHealthView(msgspec.Struct, kw_only=True):
    """What /_miroir/topology shows of one node's health. Ages in seconds, relative to now."""

    state: HealthState
    consecutive_failures: int
    consecutive_successes: int
    last_error: str | None = None
    last_error_age_s: float | None = None
    last_ok_age_s: float | None = None
    state_age_s: float | None = None
    probe_rtt_ms: float | None = None
    latency_p95_ms: float | None = None


class NodeHealth:
    """Health of one node. Methods return True when the state changed."""

    def __init__(self, thresholds: Thresholds = Thresholds(), now: float | None = None):
        self.thresholds = thresholds
        self.state: HealthState = "up"
        self.consecutive_failures = 0  # probe failures in a row (passive ones too)
        self.consecutive_successes = 0  # probe successes in a row
        self.probed = False  # has any probe result arrived yet?
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.last_ok_at: float | None = None
        self.state_since: float | None = now
        self.probe_rtt_s: float | None = None
        self.latencies: deque[float] = deque(maxlen=LATENCY_WINDOW)

    @property
    def available(self) -> bool:
        """May requests be sent to this node? (``suspect`` still gets traffic.)"""
        return self.state != "down"

    def _set(self, state: HealthState, now: float) -> bool:
        if state == self.state:
            return False
        self.state = state
        self.state_since = now
        return True

    def _fail(self, now: float, error: str) -> None:
        self.consecutive_failures += 1
        self.consecutive_successes = 0
        self.last_error = error[:MAX_ERROR_CHARS]
        self.last_error_at = now

    # --- probes -------------------------------------------------------------------------

    def probe_failed(self, now: float, error: str) -> bool:
        first = not self.probed
        self.probed = True
        self._fail(now, error)
        if first or self.consecutive_failures >= self.thresholds.unhealthy_threshold:
            return self._set("down", now)
        if self.state == "up":
            return self._set("suspect", now)
        return False  # suspect stays suspect, down stays down

    def probe_succeeded(self, now: float, rtt_s: float) -> bool:
        self.probed = True
        self.consecutive_failures = 0
        self.consecutive_successes += 1
        self.last_ok_at = now
        self.probe_rtt_s = rtt_s
        if self.state == "down" and self.consecutive_successes < self.thresholds.recovery_threshold:
            return False
        return self._set("up", now)

    # --- passive evidence ---------------------------------------------------------------

    def request_unanswered(self, now: float, error: str, *, timed_out: bool = False) -> bool:
        """A real request got no answer: refused/reset -> down at once; deadline -> one
        failure of the streak (see the module doc)."""
        self._fail(now, error)
        if not timed_out or self.consecutive_failures >= self.thresholds.unhealthy_threshold:
            return self._set("down", now)
        if self.state == "up":
            return self._set("suspect", now)
        return False

    def request_succeeded(self, now: float, latency_s: float) -> bool:
        assert latency_s >= 0
        self.latencies.append(latency_s)
        self.last_ok_at = now
        if self.state == "suspect":
            self.consecutive_failures = 0
            return self._set("up", now)
        return False  # never lifts `down`: see the module doc

    # --- views --------------------------------------------------------------------------

    def latency_p95(self) -> float | None:
        return percentile(self.latencies, 0.95)

    def view(self, now: float) -> NodeHealthView:
        def age(t: float | None) -> float | None:
            return None if t is None else round(max(0.0, now - t), 3)

        p95 = self.latency_p95()
        return NodeHealthView(
            state=self.state,
            consecutive_failures=self.consecutive_failures,
            consecutive_successes=self.consecutive_successes,
            last_error=self.last_error,
            last_error_age_s=age(self.last_error_at),
            last_ok_age_s=age(self.last_ok_at),
            state_age_s=age(self.state_since),
            probe_rtt_ms=None if self.probe_rtt_s is None else round(self.probe_rtt_s * 1000, 3),
            latency_p95_ms=None if p95 is None else round(p95 * 1000, 3),
        )


def percentile(values: Iterable[float], q: float) -> float | None:
    """Nearest-rank percentile (q in (0, 1]); None without values."""
    assert 0 < q <= 1
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


# --- readiness -------------------------------------------------------------------------

ShardMap = Mapping[str, Sequence[Sequence[str]]]  # group -> owners of each shard


def uncovered_shards(shard_maps: Mapping[str, ShardMap], available: Iterable[str]) -> dict[str, list[int]]:
    """Index uid -> shards with no available owner in any group (empty dict: all served).

    ``shard_maps[uid]`` is ``Topology.shard_map(S)`` of that index (every group's list
    has S entries). An index whose map has no group is skipped here: it has no owner to
    report per shard, and ``cluster_ready`` refuses it on its own.
    """
    avail = set(available)
    out: dict[str, list[int]] = {}
    for uid, groups in shard_maps.items():
        per_group = list(groups.values())
        if not per_group:
            continue
        n_shards = max(len(owners) for owners in per_group)
        missing = [
            s
            for s in range(n_shards)
            if not any(s < len(owners) and any(n in avail for n in owners[s]) for owners in per_group)
        ]
        if missing:
            out[uid] = missing
    return out


def cluster_ready(
    shard_maps: Mapping[str, ShardMap], available: Iterable[str], known_nodes: Iterable[str] = ()
) -> bool:
    """The /_miroir/ready rule: 200 only while every shard of every index can be read.

    Every shard of every index needs an available owner in some group (reads fall back
    across groups, design §6). An index with no group at all is never ready. With no
    index yet, Miroir is ready when it has no node (nothing to wait for) or at least one
    available node (it can create indexes).
    """
    avail = set(available)
    if any(not groups for groups in shard_maps.values()):
        return False
    if not shard_maps:
        known = set(known_nodes)
        return not known or bool(known & avail)
    return not uncovered_shards(shard_maps, avail)
