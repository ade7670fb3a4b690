"""`miroir dev`: devnodes and a Miroir in front of them, in one process, for development.

One `trio.run`: N devnodes served in-process on free loopback ports (data under
`<data-dir>/nodes/<id>`), then Miroir on `--port` (journal under `<data-dir>/miroir`),
configured in memory: node ids n1..nN spread round-robin over groups g0..g(G-1). Without
`--data-dir` a temporary directory is used and removed on exit. SIGINT/SIGTERM stop
Miroir first (it drains its requests and fsyncs its journal), then the devnodes; exit 0.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
import trio

from miroir import gcpolicy
from miroir.config import ConfigError, config_from_dict
from miroir.core.errors import find_exception
from miroir.logsetup import get_logger, setup_logging

log = get_logger("miroir.dev")

LOOPBACK = "127.0.0.1"


class DevCluster(msgspec.Struct, kw_only=True):
    url: str
    port: int
    nodes: dict[str, str]  # node id -> url
    groups: dict[str, str]  # node id -> group
    data_dir: str


def node_layout(nodes: int, groups: int) -> list[tuple[str, str]]:
    """(node id, group) for `miroir dev`: n1..nN round-robin over g0..g(G-1)."""
    return [(f"n{i + 1}", f"g{i % groups}") for i in range(nodes)]


def dev_config(
    *,
    node_urls: dict[str, str],
    groups: dict[str, str],
    rf: int,
    shards: int,
    port: int,
    master_key: str | None,
    data_dir: Path,
    log_format: str = "console",
) -> Any:
    auth = {}
    if master_key:
        # Dev nodes share the master key: one secret to remember in development.
        auth = {"master_key": master_key, "node_master_key": master_key}
    return config_from_dict(
        {
            "server": {"bind": f"{LOOPBACK}:{port}", "shutdown_grace_ms": 2_000},
            "auth": auth,
            "cluster": {"shards": shards, "replication_factor": rf},
            "nodes": [{"id": i, "url": u, "group": groups[i]} for i, u in node_urls.items()],
            "store": {"data_dir": str(data_dir / "miroir")},
            "log": {"format": log_format},
        }
    )


def _port_of(started: Any) -> int:
    """serve_devnode reports its port (int), a URL, or an object with `.port`."""
    if isinstance(started, int):
        return started
    if isinstance(started, str):
        return int(started.rstrip("/").rsplit(":", 1)[1])
    return int(started.port)


async def start_dev_cluster(
    *,
    nodes: int = 3,
    groups: int = 1,
    rf: int = 1,
    shards: int = 16,
    port: int = 0,
    master_key: str | None = None,
    data_dir: Path,
    log_format: str = "console",
    shutdown_trigger: Callable[[], Awaitable[object]] | None = None,
    task_status: trio.TaskStatus[DevCluster] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run devnodes and Miroir until `shutdown_trigger` returns (or cancelled).

    Reports a `DevCluster` once Miroir serves (journal replayed, port bound). Miroir is
    stopped before the devnodes, so its last requests still reach them.
    """
    from miroir.daemon import run_miroir
    from miroir.devnode.server import serve_devnode

    if not 1 <= groups <= nodes:
        raise ConfigError(f"--groups must be between 1 and --nodes ({nodes}), got {groups}")
    layout = node_layout(nodes, groups)
    async with trio.open_nursery() as devnodes:
        node_urls: dict[str, str] = {}
        for node_id, _ in layout:
            node_dir = data_dir / "nodes" / node_id
            node_dir.mkdir(parents=True, exist_ok=True)
            started = await devnodes.start(
                lambda task_status, d=node_dir: serve_devnode(
                    host=LOOPBACK, port=0, master_key=master_key, data_dir=str(d), task_status=task_status
                )
            )
            node_urls[node_id] = f"http://{LOOPBACK}:{_port_of(started)}"
        group_of = dict(layout)
        config = dev_config(
            node_urls=node_urls,
            groups=group_of,
            rf=rf,
            shards=shards,
            port=port,
            master_key=master_key,
            data_dir=data_dir,
            log_format=log_format,
        )

        async def miroir(task_status: trio.TaskStatus[int]) -> None:
            try:
                await run_miroir(config, shutdown_trigger=shutdown_trigger, task_status=task_status)
            finally:
                devnodes.cancel_scope.cancel()  # Miroir is gone: nothing left to serve

        bound = await devnodes.start(miroir)
        task_status.started(
            DevCluster(
                url=f"http://{LOOPBACK}:{bound}",
                port=bound,
                nodes=node_urls,
                groups=group_of,
                data_dir=str(data_dir),
            )
        )


def run_dev(args: argparse.Namespace) -> int:
    """`miroir dev`: returns the exit code."""
    setup_logging(getattr(args, "log_format", None) or "console")
    temporary = args.data_dir is None
    data_dir = Path(tempfile.mkdtemp(prefix="miroir-dev-")) if temporary else Path(args.data_dir)

    async def main() -> None:
        stop = trio.Event()
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:

            async def watch() -> None:
                async for signum in signals:
                    log.info("signal received", signal=signal.Signals(signum).name)
                    stop.set()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(watch)

                async def cluster(task_status: trio.TaskStatus[DevCluster]) -> None:
                    await start_dev_cluster(
                        nodes=args.nodes,
                        groups=args.groups,
                        rf=args.rf,
                        shards=args.shards,
                        port=args.port,
                        master_key=args.master_key,
                        data_dir=data_dir,
                        log_format=getattr(args, "log_format", None) or "console",
                        shutdown_trigger=stop.wait,
                        task_status=task_status,
                    )
                    # Miroir drained and the devnodes stopped: stop watching signals.
                    nursery.cancel_scope.cancel()

                dev = await nursery.start(cluster)
                gcpolicy.settle()
                print(f"Miroir: {dev.url}", flush=True)
                for node_id, url in dev.nodes.items():
                    print(f"  node {node_id} ({dev.groups[node_id]}): {url}", flush=True)
                print(f"data: {data_dir}{' (temporary)' if temporary else ''}", flush=True)

    from miroir.daemon import StartupError

    gcpolicy.tune()
    try:
        trio.run(main)
    except BaseException as exc:
        if _find(exc, KeyboardInterrupt) is not None:
            return 0
        problem = _find(exc, ConfigError) or _find(exc, StartupError)
        if problem is None:
            raise
        print(f"miroir dev: {problem}", file=sys.stderr)
        return 2 if isinstance(problem, ConfigError) else 1
    finally:
        if temporary:
            shutil.rmtree(data_dir, ignore_errors=True)
    return 0


_find = find_exception
