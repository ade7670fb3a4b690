"""`miroir dev`: devnodes and a Miroir in front of them, in one process, for development.

One `trio.run`: N devnodes served in-process on free loopback ports (data under
`<data-dir>/nodes/<id>`), then Miroir on `--port` (journal under `<data-dir>/miroir`),
configured in memory: node ids n1..nN spread round-robin over groups g0..g(G-1). Without
`--data-dir` a temporary directory is used and removed on exit. SIGINT/SIGTERM stop
Miroir first (it drains its requests and fsyncs its journal), then the devnodes; exit 0.

Restarts. The journal names each node by URL and wins over the config (engine/cluster.py),
so a devnode must come back where the journal looks for it. Each node's port is recorded
in `<data-dir>/nodes/ports.json`, and a restart (after Ctrl-C or kill -9: the devnodes
live in this process and die with it) binds the same ports. A recorded port taken by
another process gets a new one, and the journal's URL of that node is updated (a
`NodePut`) before Miroir starts; both are logged. `<data-dir>/nodes/LOCK` keeps a second
`miroir dev` off the same node directories.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
import trio

from miroir import gcpolicy
from miroir.config import Config, ConfigError, config_from_dict
from miroir.core.errors import find_exception
from miroir.embedder import make_server as make_embedder_server
from miroir.logsetup import get_logger, setup_logging

log = get_logger("miroir.dev")

LOOPBACK = "127.0.0.1"
# Under <data-dir>/nodes: the node ports of the last start, and the lock of the node dirs.
PORTS_FILE = "ports.json"


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


class RecordedPorts(msgspec.Struct, kw_only=True):
    """`<data-dir>/nodes/ports.json`. `journal_synced` is False from the moment new ports
    are recorded until the journal names them, so a crash in between syncs again."""

    ports: dict[str, int] = msgspec.field(default_factory=dict)  # node id -> port
    journal_synced: bool = True


def read_ports(nodes_dir: Path) -> RecordedPorts:
    path = nodes_dir / PORTS_FILE
    try:
        return msgspec.json.decode(path.read_bytes(), type=RecordedPorts)
    except FileNotFoundError:
        return RecordedPorts(journal_synced=False)
    except (OSError, msgspec.DecodeError) as e:
        log.warning("dev.ports_unreadable", path=str(path), error=str(e), note="the nodes get new ports")
        return RecordedPorts(journal_synced=False)


def write_ports(nodes_dir: Path, recorded: RecordedPorts) -> None:
    """Atomically (tmp, fsync, rename, fsync dir): a torn file would lose every port."""
    path = nodes_dir / PORTS_FILE
    tmp = path.with_name(PORTS_FILE + ".tmp")
    with open(tmp, "wb") as f:
        f.write(msgspec.json.encode(recorded))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(nodes_dir, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


async def sync_journal_urls(config: Config, node_urls: dict[str, str]) -> bool:
    """Point the journal's dev nodes at `node_urls` (the journal wins over the config).

    Holds Miroir's own data-dir lock meanwhile and releases it before Miroir starts. A
    journal that cannot be read is left to Miroir, which refuses it with its message:
    returns False then, True once the journal names `node_urls`.
    """
    from miroir.core.model import NodePut
    from miroir.daemon import acquire_lock, open_miroir_journal
    from miroir.store.journal import JournalError

    lock_fd = acquire_lock(Path(config.store.data_dir))
    try:
        journal = open_miroir_journal(config)
        try:
            state = await trio.to_thread.run_sync(journal.load)
        except (JournalError, OSError):
            return False
        moved = [
            n for node_id, n in sorted(state.nodes.items())
            if node_id in node_urls and n.state != "removed" and n.url != node_urls[node_id]
        ]
        if not moved:
            return True
        async with trio.open_nursery() as nursery:
            await nursery.start(journal.run)
            try:
                await journal.append(*(NodePut(node=msgspec.structs.replace(n, url=node_urls[n.id])) for n in moved))
            finally:
                await journal.aclose()
        for n in moved:
            log.warning("dev.node_url_changed", node=n.id, old_url=n.url, new_url=node_urls[n.id], note="journal updated")
        return True
    finally:
        os.close(lock_fd)


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
    shards: int = 48,
    port: int = 0,
    master_key: str | None = None,
    data_dir: Path,
    log_format: str = "console",
    shutdown_trigger: Callable[[], Awaitable[object]] | None = None,
    task_status: trio.TaskStatus[DevCluster] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run devnodes and Miroir until `shutdown_trigger` returns (or cancelled).

    Reports a `DevCluster` once Miroir serves (journal replayed, port bound). Miroir is
    stopped before the devnodes, so its last requests still reach them. The devnodes
    take the ports recorded in `data_dir` (see the module doc).
    """
    if not 1 <= groups <= nodes:
        raise ConfigError(f"--groups must be between 1 and --nodes ({nodes}), got {groups}")
    from miroir.daemon import acquire_lock

    layout = node_layout(nodes, groups)
    nodes_dir = data_dir / "nodes"
    # Two `miroir dev` on one data dir would run two devnodes on each node directory.
    lock_fd = acquire_lock(nodes_dir)
    try:
        await _run_cluster(
            layout, nodes_dir, rf=rf, shards=shards, port=port, master_key=master_key, data_dir=data_dir,
            log_format=log_format, shutdown_trigger=shutdown_trigger, task_status=task_status,
        )
    finally:
        os.close(lock_fd)


async def _start_devnode(nursery: trio.Nursery, node_dir: Path, port: int, master_key: str | None) -> int | None:
    """The bound port, or None when `port` (not 0) is in use."""
    from miroir.devnode.server import serve_devnode

    try:
        started = await nursery.start(
            lambda task_status: serve_devnode(
                host=LOOPBACK, port=port, master_key=master_key, data_dir=str(node_dir), task_status=task_status
            )
        )
    except BaseException as exc:
        busy = find_exception(exc, OSError)
        if port and isinstance(busy, OSError) and busy.errno == errno.EADDRINUSE:
            return None
        raise
    return _port_of(started)


async def _run_cluster(
    layout: list[tuple[str, str]],
    nodes_dir: Path,
    *,
    rf: int,
    shards: int,
    port: int,
    master_key: str | None,
    data_dir: Path,
    log_format: str,
    shutdown_trigger: Callable[[], Awaitable[object]] | None,
    task_status: trio.TaskStatus[DevCluster],
) -> None:
    from miroir.daemon import run_miroir

    recorded = read_ports(nodes_dir)
    async with trio.open_nursery() as devnodes:
        node_urls: dict[str, str] = {}
        for node_id, _ in layout:
            node_dir = nodes_dir / node_id
            node_dir.mkdir(parents=True, exist_ok=True)
            want = recorded.ports.get(node_id, 0)
            bound = await _start_devnode(devnodes, node_dir, want, master_key)
            if bound is None:
                bound = await _start_devnode(devnodes, node_dir, 0, master_key)
                assert bound is not None
                log.warning("dev.node_port_taken", node=node_id, port=want, new_port=bound)
            node_urls[node_id] = f"http://{LOOPBACK}:{bound}"
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
        ports = {node_id: int(url.rsplit(":", 1)[1]) for node_id, url in node_urls.items()}
        if recorded.ports and ports == recorded.ports:
            log.info("dev.node_ports_kept", ports=ports, recorded_in=str(nodes_dir / PORTS_FILE))
        if ports != recorded.ports or not recorded.journal_synced:
            write_ports(nodes_dir, RecordedPorts(ports=ports, journal_synced=False))
            if await sync_journal_urls(config, node_urls):
                write_ports(nodes_dir, RecordedPorts(ports=ports, journal_synced=True))

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


def _serve_embedder() -> None:
    """`miroir dev --embedder`: the local embedder (miroir/embedder.py) beside the cluster,
    and the settings that make it an index's `rest` embedder (hybrid search, no network).
    A daemon thread: it holds no state and ends with the process."""
    server = make_embedder_server(0)
    threading.Thread(target=server.serve_forever, name="embedder", daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    settings = {"embedders": {"default": {
        "source": "rest", "url": url, "request": {"input": "{{text}}"}, "response": {"embedding": "{{embedding}}"},
    }}}
    print(f"embedder: {url}; an index uses it with PATCH /indexes/{{uid}}/settings {json.dumps(settings)}", flush=True)


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
                if getattr(args, "embedder", False):
                    _serve_embedder()

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
