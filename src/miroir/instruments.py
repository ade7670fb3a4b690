"""Counters and histograms fed on the hot paths, read by `/metrics` (engine/metrics.py).

Everything here is a plain Python number bumped in place: no lock, no label lookup, no
`prometheus_client` call on the request path. Miroir runs its requests on one trio
thread, so an unsynchronized `+=` is exact; the journal's writer thread only times its
work, and the time is recorded back on the trio thread. The exposition (names, help,
buckets as Prometheus wants them) is built at scrape time from these numbers.

A leaf module (no import of ours) so that every layer may feed it: api (requests),
engine (scatter, health), store (journal).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

# Client-facing and node sub-request latencies: 1 ms .. 10 s.
LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)
# A journal commit is a write + fsync: 100 µs .. 1 s.
FSYNC_BUCKETS_S: tuple[float, ...] = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
# Nodes asked by one client request.
FANOUT_BUCKETS: tuple[float, ...] = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64)


class Hist:
    """A cumulative-at-scrape histogram: `counts[i]` observations <= `bounds[i]`
    (the last slot is +Inf), not cumulative here so one observe touches one slot."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: Sequence[float]):
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    def buckets(self) -> list[tuple[str, int]]:
        """Cumulative (le, count) pairs ending with +Inf, as Prometheus exposes them."""
        out, acc = [], 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts):
            acc += n
            out.append(("+Inf" if bound == float("inf") else repr(float(bound)), acc))
        return out

    @property
    def count(self) -> int:
        return sum(self.counts)


class HotStats:
    """The process's hot-path numbers (one instance: `HOT`)."""

    def __init__(self) -> None:
        # (method, route template, status) -> latency histogram of client requests
        self.requests: dict[tuple[str, str, int], Hist] = {}
        self.fanout = Hist(FANOUT_BUCKETS)
        self.hedges = 0  # hedge sub-requests sent (engine/scatter.py)
        self.retries = 0  # parts sent again to another owner after a failure
        self.node_latency: dict[str, Hist] = {}  # node id -> answered sub-requests
        self.journal_commit = Hist(FSYNC_BUCKETS_S)  # write + fsync of one group commit
        self.journal_append = Hist(LATENCY_BUCKETS_S)  # append() until acknowledged

    def request(self, method: str, route: str, status: int, seconds: float, fanout: int | None) -> None:
        key = (method, route, status)
        h = self.requests.get(key)
        if h is None:
            h = self.requests[key] = Hist(LATENCY_BUCKETS_S)
        h.observe(seconds)
        if fanout:
            self.fanout.observe(fanout)

    def node_answered(self, node_id: str, seconds: float) -> None:
        h = self.node_latency.get(node_id)
        if h is None:
            h = self.node_latency[node_id] = Hist(LATENCY_BUCKETS_S)
        h.observe(seconds)


HOT = HotStats()
