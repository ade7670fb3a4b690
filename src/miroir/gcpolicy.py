"""Cyclic garbage collector settings for the long-running processes (issue 8).

Why: a search allocates a few thousand container objects (decoded node answers, the
merged answer), almost all freed by reference counting as soon as the answer is sent.
With CPython's default gen0 threshold (700 allocations) the collector still ran several
times per search under load, each pass walking every in-flight request's objects, and the
occasional full collection walked the whole start-up heap (modules, routes, the replayed
journal state): measured at ~290 µs of CPU per search out of ~1.35 ms
(`python benchmarks/run.py --only B`, a `gc.callbacks` probe).

- `tune()`: collect gen0 every `GEN0_THRESHOLD` allocations instead of 700. A pass costs
  about the same whatever the threshold (it walks what is alive and young, i.e. the
  requests in flight), so fewer passes is proportionally less work; the garbage that
  waits longer is a few MB at most.
- `settle()`: once start-up is done, collect and `gc.freeze()` what is left, so that
  later collections never walk it again. Objects created afterwards are collected as
  usual; frozen ones that die are still freed by reference counting.

Only process entry points call these (`miroir serve`, `miroir devnode`, `miroir dev`):
they change process-wide state and must not surprise a library user or a test runner.
"""

from __future__ import annotations

import gc

GEN0_THRESHOLD = 20_000
GEN1_THRESHOLD = 20
GEN2_THRESHOLD = 20


def tune() -> None:
    gc.set_threshold(GEN0_THRESHOLD, GEN1_THRESHOLD, GEN2_THRESHOLD)


def settle() -> dict[str, int]:
    """Collect, freeze, and say what was done (for the start-up log line)."""
    gc.collect()
    gc.freeze()
    return {"frozen": gc.get_freeze_count(), "gen0_threshold": gc.get_threshold()[0]}
