"""Test helper: a real Miroir (HTTP on loopback) over real devnode subprocesses.

    with start_cluster(nodes=3, groups=1, rf=1, shards=16) as c:
        client = meilisearch.Client(c.url, c.master_key)
        c.devnodes[0].url, c.node_ids, c.config, c.groups  # {group: [node ids]}

Miroir runs in a background thread with its own `trio.run` (so synchronous clients such
as the official `meilisearch` SDK can be used from the test), serving the full app on a
port picked by the OS, with the journal in a temporary directory. Route modules that
the app does not list yet are registered on the app the helper builds. Everything
(Miroir, its journal, the devnodes) is stopped when the block exits, also on failure.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from miroir.config import Config, config_from_dict
from tests.support.devnodes import Devnode, start_devnodes

STARTUP_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 15.0

@dataclass
class MiroirCluster:
    url: str
    config: Config
    devnodes: list[Devnode]
    node_ids: list[str]
    master_key: str | None = None
    groups: dict[str, list[str]] = field(default_factory=dict)
    cluster: Any = None  # the engine's Cluster (read-only use from tests: it lives in another thread)

    def node(self, node_id: str) -> Devnode:
        return self.devnodes[self.node_ids.index(node_id)]


def make_config(
    devnodes: Sequence[Devnode],
    *,
    groups: int,
    rf: int,
    shards: int,
    data_dir: str,
    master_key: str | None = None,
    node_master_key: str | None = None,
    extra: dict | None = None,
) -> Config:
    nodes = [
        {"id": f"n{i + 1}", "url": d.url, "group": f"g{i % groups}"} for i, d in enumerate(devnodes)
    ]
    d: dict[str, Any] = {
        "server": {"bind": "127.0.0.1:0"},
        "auth": {k: v for k, v in (("master_key", master_key), ("node_master_key", node_master_key)) if v},
        "cluster": {"shards": shards, "replication_factor": rf},
        "nodes": nodes,
        "store": {"data_dir": data_dir},
        "log": {"level": "warning"},
    }
    for key, value in (extra or {}).items():
        d[key] = {**d.get(key, {}), **value}
    return config_from_dict(d)


async def _serve(config: Config, ready: threading.Event, box: dict) -> None:
    """Journal + cluster + app on one socket until `box["stop"]` is set."""
    from hypercorn.utils import wrap_app

    from miroir.api import app as app_mod, server
    from miroir.api.context import Miroir
    from miroir.api.fast import wrap as fast_path
    from miroir.core.model import MiroirState, Record, apply_record, new_state
    from miroir.daemon import _hypercorn_config, bind_socket
    from miroir.engine.services import create_cluster, run_services
    from miroir.store.journal import Journal

    journal = Journal(
        config.store.data_dir, record_type=Record, state_type=MiroirState, apply=apply_record, initial=new_state
    )
    journal.load()
    stop = trio.Event()
    box["stop"] = stop
    box["token"] = trio.lowlevel.current_trio_token()
    sock = bind_socket(config.server.bind)
    try:
        async with trio.open_nursery() as root:
            await root.start(journal.run)
            cluster = await create_cluster(config, journal)
            # Under their own scope: at the stop the services end first, then the journal
            # flushes, as the daemon does; a service appending to a closed journal crashes.
            services_scope, services_done = trio.CancelScope(), trio.Event()

            async def services(task_status: trio.TaskStatus[None]) -> None:
                try:
                    with services_scope:
                        await run_services(cluster, task_status=task_status)
                finally:
                    services_done.set()

            await root.start(services)
            ctx = Miroir(config)
            ctx.journal, ctx.engine, ctx.ready = journal, cluster, True
            ctx.bound_port = sock.getsockname()[1]
            app = app_mod.create_app(ctx)
            hc = _hypercorn_config(config)
            hc.graceful_timeout = 1.0
            await root.start(
                lambda task_status: server.serve(
                    # As the daemon serves it: the search fast path in front of Quart, on
                    # Miroir's connection handling (api/server.py).
                    wrap_app(fast_path(app, ctx), hc.wsgi_max_body_size, "asgi"),
                    hc,
                    sock,
                    max_connections=config.server.max_connections,
                    max_body=config.server.max_body_bytes,
                    shutdown_trigger=stop.wait,
                    task_status=task_status,
                )
            )
            box["port"] = ctx.bound_port
            box["cluster"] = cluster
            ready.set()
            await stop.wait()
            # Stop the services, flush the journal while its writer still runs, then stop
            # everything.
            services_scope.cancel()
            await services_done.wait()
            with trio.move_on_after(STOP_TIMEOUT_S):
                await journal.aclose()
            root.cancel_scope.cancel()
    finally:
        sock.close()


@contextlib.contextmanager
def serve_miroir(config: Config) -> Iterator[tuple[str, Any]]:
    """Run Miroir for `config` in a background thread; yields (url, cluster)."""
    ready = threading.Event()
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            trio.run(_serve, config, ready, box)
        except BaseException as exc:  # reported to the test thread
            box["error"] = exc
            ready.set()

    thread = threading.Thread(target=target, name="miroir", daemon=True)
    thread.start()
    try:
        if not ready.wait(STARTUP_TIMEOUT_S):
            raise TimeoutError("Miroir did not start in time")
        if "error" in box:
            raise RuntimeError("Miroir failed to start") from box["error"]
        yield f"http://127.0.0.1:{box['port']}", box["cluster"]
    finally:
        if "token" in box and thread.is_alive():
            with contextlib.suppress(trio.RunFinishedError):
                trio.from_thread.run_sync(box["stop"].set, trio_token=box["token"])
        thread.join(STOP_TIMEOUT_S)
        if "error" in box and not isinstance(box["error"], (KeyboardInterrupt, SystemExit)):
            raise RuntimeError("Miroir crashed") from box["error"]


@contextlib.contextmanager
def start_cluster(
    nodes: int = 3,
    groups: int = 1,
    rf: int = 1,
    shards: int = 16,
    *,
    master_key: str | None = None,
    node_master_key: str | None = None,
    extra: dict | None = None,
) -> Iterator[MiroirCluster]:
    """Devnodes + Miroir; node ids n1..nN, node i in group g(i % groups)."""
    with start_devnodes(nodes, master_key=node_master_key) as devs, tempfile.TemporaryDirectory() as tmp:
        config = make_config(
            devs,
            groups=groups,
            rf=rf,
            shards=shards,
            data_dir=tmp,
            master_key=master_key,
            node_master_key=node_master_key,
            extra=extra,
        )
        ids = [n.id for n in config.nodes]
        by_group: dict[str, list[str]] = {}
        for n in config.nodes:
            by_group.setdefault(n.group, []).append(n.id)
        with serve_miroir(config) as (url, cluster):
            yield MiroirCluster(
                url=url, config=config, devnodes=devs, node_ids=ids, master_key=master_key, groups=by_group, cluster=cluster
            )


START_TIMEOUT = 30.0


def json_line(line: str) -> dict | None:
    """A JSON log line's record, or None."""
    try:
        rec = json.loads(line)
    except ValueError:
        return None
    return rec if isinstance(rec, dict) else None


class Daemon:
    """`miroir serve` as a subprocess (kill -9 able), its stderr collected by a thread
    (`lines`). `wait_ready` answers the port it bound."""

    def __init__(self, config_path: Path, env: dict[str, str] | None = None, args: list[str] | None = None):
        self.lines: list[str] = []
        self._q: queue.Queue[str | None] = queue.Queue()
        full_env = {k: v for k, v in os.environ.items() if not k.startswith(("MIROIR_", "NOTIFY_", "WATCHDOG_"))}
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "miroir", "serve", "--config", str(config_path), *(args or [])],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env=full_env,
        )
        self._pumper = threading.Thread(target=self._pump, daemon=True)
        self._pumper.start()

    def _pump(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            self._q.put(line)
        self._q.put(None)

    def wait_event(self, event: str, timeout: float = START_TIMEOUT) -> dict | None:
        """The first JSON log line with this event, or None when the process ended first."""
        for line in self.lines:
            rec = json_line(line)
            if rec and rec.get("event") == event:
                return rec
        deadline = time.monotonic() + timeout
        while True:
            if time.monotonic() > deadline:
                raise queue.Empty(f"no `{event}` within {timeout}s:\n{self.stderr()[-2000:]}")
            line = self._q.get(timeout=max(0.1, deadline - time.monotonic()))
            if line is None:
                return None
            rec = json_line(line)
            if rec and rec.get("event") == event:
                return rec

    def wait_ready(self, timeout: float = START_TIMEOUT) -> int:
        rec = self.wait_event("ready", timeout)
        assert rec is not None, "miroir exited before ready:\n" + self.stderr()
        return rec["port"]

    def events(self, name: str) -> list[dict]:
        """The log records of one event so far."""
        return [rec for rec in map(json_line, list(self.lines)) if rec and rec.get("event") == name]

    def wait(self, timeout: float = START_TIMEOUT) -> int:
        return self.proc.wait(timeout=timeout)

    def stderr(self) -> str:
        return "".join(self.lines)

    def drained(self, timeout: float = START_TIMEOUT) -> list[str]:
        """Every line the process wrote, once it has exited and its pipe is read to the end."""
        self.proc.wait(timeout=timeout)
        self._pumper.join(timeout)
        assert not self._pumper.is_alive(), "stderr still open after the process exited"
        return list(self.lines)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()  # SIGKILL
            self.proc.wait(timeout=10)
