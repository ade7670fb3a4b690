"""Running a devnode: in a Trio nursery (`serve_devnode`) or as a process (`run_devnode`).

The devnode is a Meilisearch-API-compatible node for development and tests; it is not
a Meilisearch replacement (design §10).
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import sys
from functools import partial

import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from miroir.core.dumpformat import DumpRefused
from miroir.core.errors import MeiliError
from miroir.devnode import dumps, persist
from miroir.devnode.app import DEFAULT_MAX_PAYLOAD, DevnodeApp
from miroir.devnode.tasks import TaskQueue

# Meilisearch keeps idle connections for a while; clients (Miroir's pool) reuse them.
KEEP_ALIVE_S = 75


# See run_devnode: the GIL hand-off period while a batch is indexed in a thread.
GIL_SWITCH_INTERVAL_S = 0.001

def _config(host: str, port: int) -> Config:
    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.accesslog = None
    config.loglevel = "WARNING"  # no "Running on ..." chatter; errors still reach stderr
    config.keep_alive_timeout = KEEP_ALIVE_S
    config.graceful_timeout = 1
    return config


async def serve_devnode(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    master_key: str | None = None,
    data_dir: str | None = None,
    max_payload: int = DEFAULT_MAX_PAYLOAD,
    import_dump: str | None = None,
    dump_dir: str | None = None,
    snapshot_dir: str | None = None,
    task_status=trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve one devnode until cancelled.

    State is reloaded from `data_dir` (if given) before the socket is bound; then
    `task_status.started(actual_port)`. Owns its task worker, HTTP server and data
    files, and releases all of them when cancelled. A bind failure raises OSError
    before `started`.
    """
    store = persist.Store(data_dir) if data_dir else None
    try:
        queue = TaskQueue(store)
        app = DevnodeApp(queue, master_key=master_key, max_payload=max_payload, dump_dir=_dump_dir(dump_dir, data_dir),
                         snapshot_dir=_under(snapshot_dir, data_dir, "snapshots"))
        async with trio.open_nursery() as nursery:
            await nursery.start(queue.run)
            if import_dump is not None:  # before listening, as Meilisearch's --import-dump
                if queue.indexes:
                    raise DumpRefused(f"cannot import {import_dump}: the data dir already holds indexes")
                await dumps.import_dump(queue, import_dump)
            binds = await nursery.start(partial(serve, app, _config(host, port), mode="asgi"))
            task_status.started(int(binds[0].rsplit(":", 1)[1]))
    finally:
        if store is not None:
            store.close()


def _dump_dir(dump_dir: str | None, data_dir: str | None) -> str:
    # Meilisearch's `--dump-dir` defaults to `dumps/` in its working directory.
    return _under(dump_dir, data_dir, "dumps")


def _under(given: str | None, data_dir: str | None, name: str) -> str:
    if given is not None:
        return given
    return os.path.join(data_dir, name) if data_dir else name


def run_devnode(
    *, host: str = "127.0.0.1", port: int = 7700, master_key: str | None = None, data_dir: str | None = None,
    max_payload: int = DEFAULT_MAX_PAYLOAD, import_dump: str | None = None, dump_dir: str | None = None,
    snapshot_dir: str | None = None,
) -> int:
    """CLI entry: serve until SIGINT/SIGTERM (exit 0); a port in use is exit 1."""
    # Indexing runs in a worker thread; a short GIL switch interval lets the event loop
    # answer /health and /tasks promptly while a large batch is being indexed.
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                bound = await nursery.start(
                    partial(serve_devnode, host=host, port=port, master_key=master_key, data_dir=data_dir,
                            max_payload=max_payload, import_dump=import_dump, dump_dir=dump_dir,
                            snapshot_dir=snapshot_dir)
                )
                print(
                    f"miroir devnode listening on http://{host}:{bound} (a development stand-in, not Meilisearch)",
                    file=sys.stderr,
                    flush=True,
                )
                async for _ in signals:
                    nursery.cancel_scope.cancel()
                    break

    try:
        trio.run(main)
    except (DumpRefused, MeiliError) as e:
        print(f"miroir devnode: cannot import the dump: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            print(f"miroir devnode: cannot listen on {host}:{port}: address already in use", file=sys.stderr)
        else:
            print(f"miroir devnode: {e}", file=sys.stderr)
        return 1
    except BaseExceptionGroup as group:  # bind errors surface wrapped by the nursery
        refused = [e for e in _leaves(group) if isinstance(e, (DumpRefused, MeiliError))]
        if refused:
            print(f"miroir devnode: cannot import the dump: {refused[0]}", file=sys.stderr)
            return 1
        os_errors = [e for e in _leaves(group) if isinstance(e, OSError)]
        if not os_errors:
            raise
        first = os_errors[0]
        reason = "address already in use" if first.errno == errno.EADDRINUSE else str(first)
        print(f"miroir devnode: cannot listen on {host}:{port}: {reason}", file=sys.stderr)
        return 1
    return 0


def _leaves(group: BaseExceptionGroup):
    for e in group.exceptions:
        if isinstance(e, BaseExceptionGroup):
            yield from _leaves(e)
        else:
            yield e


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m miroir.devnode.server", description="Run a Miroir devnode.")
    parser.add_argument("--port", type=int, default=7700)
    parser.add_argument("--bind", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--master-key", metavar="KEY")
    parser.add_argument("--data-dir", metavar="DIR", help="persist to DIR (default: in memory)")
    parser.add_argument(
        "--http-payload-size-limit", type=int, default=DEFAULT_MAX_PAYLOAD, metavar="BYTES",
        help="largest accepted request body (Meilisearch's option of the same name)",
    )
    parser.add_argument("--import-dump", metavar="FILE", help="load a Meilisearch dump before listening")
    parser.add_argument("--dump-dir", metavar="DIR", help="where POST /dumps writes (default: DATA_DIR/dumps or ./dumps)")
    parser.add_argument("--snapshot-dir", metavar="DIR",
                        help="where POST /snapshots writes (default: DATA_DIR/snapshots or ./snapshots)")
    args = parser.parse_args(argv)
    return run_devnode(
        host=args.bind, port=args.port, master_key=args.master_key, data_dir=args.data_dir,
        max_payload=args.http_payload_size_limit, import_dump=args.import_dump, dump_dir=args.dump_dir,
        snapshot_dir=args.snapshot_dir,
    )


if __name__ == "__main__":
    sys.exit(main())
