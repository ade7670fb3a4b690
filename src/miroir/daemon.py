"""The daemon: one root nursery supervising the HTTP front end, the journal writer and the
background services (design §1).

Start-up order, each step a precondition of the next:
  1. lock `<data_dir>/LOCK` (a second daemon on the same journal would corrupt it);
  2. bind the listening socket (a busy port fails here, before the journal is touched);
  3. serve HTTP — `/_miroir/ready` answers 503 `miroir_not_ready` meanwhile, `/health`
     503 `{"status": "unavailable"}`;
  4. replay the journal (in a thread, it can take a while): a journal that ends before its
     last acknowledged record is refused (store/journal.py), and so is an empty one beside
     nodes that hold data (engine/recovery.py); start its writer; with `recover`, salvage
     the journal and journal what the nodes hold first;
  5. create the cluster and start its services (engine/services.py); then at once, with no checkpoint between: `ctx.ready` (every
     route served, `/health` 200) and READY=1; report the bound port.
Shutdown (the trigger returns, or SIGTERM via the CLI): STOPPING=1, stop accepting, let
in-flight requests finish within `server.shutdown_grace_ms`, cancel the services, flush
and fsync the journal, release the lock.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import resource
import socket
import time
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from pathlib import Path

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.utils import wrap_app

from miroir.api import server
from miroir.api.app import create_app
from miroir.api.context import Miroir
from miroir.api.fast import wrap as fast_path
from miroir.config import Config, parse_bind
from miroir.core.model import MiroirState, Record, apply_record, new_state
from miroir.core.taskquery import rfc3339
from miroir.engine import recovery
from miroir.engine.services import create_cluster, run_services
from miroir.logsetup import get_logger
from miroir.sdnotify import SdNotifier
from miroir.store.journal import Journal, JournalCorrupt

log = get_logger("miroir.daemon")

LOCK_NAME = "LOCK"
# Listen backlog: bursts of SDK clients reconnecting after a restart.
LISTEN_BACKLOG = 1024
# Upper bound on the final journal flush when we are cancelled from outside; the flush is
# one fsync, so this only matters with a dying disk.
CLOSE_TIMEOUT_S = 10.0


class StartupError(Exception):
    """The daemon cannot start (lock held, port busy, data dir unusable, journal corrupt).

    The message is one line for an operator; the CLI prints it and exits 1.
    """


def open_miroir_journal(config: Config) -> Journal[MiroirState]:
    """Miroir's journal (not loaded yet), as every writer of it must open it: its commit
    marker carries the task counter (`high_water`), the floor a salvage starts above."""
    return Journal(
        Path(config.store.data_dir),
        record_type=Record,
        state_type=MiroirState,
        apply=apply_record,
        initial=new_state,
        snapshot_every=config.store.snapshot_every_records,
        high_water=lambda state: state.next_task_uid,
    )


def acquire_lock(data_dir: Path) -> int:
    """Create `data_dir` and hold an exclusive flock on its LOCK file; returns the fd.

    The lock is released when the fd is closed or the process dies (even kill -9).
    """
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(data_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as e:
        raise StartupError(f"data dir `{data_dir}` is not usable: {e.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        os.close(fd)
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise StartupError(
                f"data dir `{data_dir}` is in use by another miroir process (lock on {data_dir / LOCK_NAME})"
            ) from None
        raise StartupError(f"cannot lock `{data_dir / LOCK_NAME}`: {e.strerror}") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())  # for the operator; the flock is the lock
    return fd


def bind_socket(bind: str) -> socket.socket:
    """A listening TCP socket on `host:port` (port 0: any free port)."""
    host, port = parse_bind(bind)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise StartupError(f"cannot resolve server.bind host `{host}`: {e.strerror}") from None
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # Allows a restart while old connections sit in TIME_WAIT; it does not let two
        # live listeners share the port on Linux.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(LISTEN_BACKLOG)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise StartupError(f"cannot listen on {bind}: address already in use") from None
        raise StartupError(f"cannot listen on {bind}: {e.strerror}") from None
    sock.setblocking(False)
    return sock


# Descriptors kept for everything but client connections: the journal, node connection
# pools, the listening socket, logs.
FD_RESERVE = 1024


def raise_open_file_limit(max_connections: int) -> None:
    """Raise the soft RLIMIT_NOFILE towards the hard one so that `max_connections` client
    connections fit beside the reserve (a shell's soft limit is often 1,024); warn when
    even the hard limit is too low, since descriptors would run out before the cap."""
    needed = max_connections + FD_RESERVE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft != resource.RLIM_INFINITY and soft < needed:
        log.warning(
            "open-file limit below server.max_connections plus reserve",
            limit=soft,
            max_connections=max_connections,
            reserve=FD_RESERVE,
        )


def _hypercorn_config(config: Config) -> HypercornConfig:
    hc = HypercornConfig()
    hc.graceful_timeout = config.server.shutdown_grace_ms / 1000
    hc.accesslog = None  # our after_request hook logs each request
    hc.errorlog = logging.getLogger("hypercorn.error")  # rendered by logsetup
    hc.backlog = LISTEN_BACKLOG
    # An idle client connection (before its first request or after its last) is closed
    # after this long; without it idle connections pile up until descriptors run out.
    hc.keep_alive_timeout = config.server.keep_alive_ms / 1000
    return hc


async def _serve_http(
    ctx: Miroir,
    sock: socket.socket,
    shutdown_trigger: Callable[[], Awaitable[object]],
    done: trio.Event,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until `shutdown_trigger` returns, then drain within the grace period; set
    `done` when the last request has finished (or the grace period ran out).

    Takes responsibility for closing `sock` (hypercorn's listeners close it).
    """
    # The search route is answered by an ASGI fast path in front of Quart (issue 8).
    app = fast_path(create_app(ctx), ctx)  # type: ignore[arg-type]  # Quart's ASGI types are narrower
    hc = _hypercorn_config(ctx.config)
    try:
        await server.serve(
            # hypercorn's ASGIFramework type spells every event; FastSearch is a plain ASGI callable.
            wrap_app(app, hc.wsgi_max_body_size, "asgi"),  # type: ignore[arg-type]
            hc,
            sock,
            max_connections=ctx.config.server.max_connections,
            max_body=ctx.config.server.max_body_bytes,
            shutdown_trigger=shutdown_trigger,
            task_status=task_status,
        )
    finally:
        done.set()


RECOVER_HINT = "to start anyway from what the nodes hold: `miroir serve --recover`"


async def _open_journal(config: Config, journal: Journal[MiroirState], *, recover: bool) -> MiroirState:
    """Replay the journal and check it against the nodes (start-up step 4, before the writer)."""
    data_dir = Path(config.store.data_dir)
    try:
        state = await trio.to_thread.run_sync(lambda: journal.load(salvage=recover))
    except JournalCorrupt as e:
        raise StartupError(f"journal is corrupt: {e} ({RECOVER_HINT})") from None
    except OSError as e:
        raise StartupError(f"cannot read the journal in `{data_dir}`: {e}") from None
    if journal.records == 0 and not recover:
        try:
            await recovery.check_new_cluster(config, state, str(data_dir))
        except recovery.RecoveryRefused as e:
            raise StartupError(str(e)) from None
    return state


async def run_miroir(
    config: Config,
    *,
    shutdown_trigger: Callable[[], Awaitable[object]] | None = None,
    notifier: SdNotifier | None = None,
    recover: bool = False,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the daemon until `shutdown_trigger` returns (or forever), then shut down cleanly.

    Calls `task_status.started(port)` with the bound port once the journal is replayed and
    requests are served. Raises `StartupError` if it cannot start; nothing is written to
    the journal in that case. Cancelling it from outside also closes the journal.
    `recover`: the operator's consent to start from a damaged or empty journal after
    reading what the nodes hold (engine/recovery.py).
    """
    notifier = notifier if notifier is not None else SdNotifier.from_env()
    data_dir = Path(config.store.data_dir)
    with ExitStack() as stack:
        lock_fd = acquire_lock(data_dir)
        stack.callback(os.close, lock_fd)
        raise_open_file_limit(config.server.max_connections)
        sock = bind_socket(config.server.bind)
        stack.callback(sock.close)  # hypercorn closes it too; a second close is harmless
        port = sock.getsockname()[1]

        ctx = Miroir(config)
        ctx.bound_port = port
        journal = open_miroir_journal(config)
        stop_http = trio.Event()
        http_done = trio.Event()
        failure: StartupError | None = None
        writer_started = False
        async with trio.open_nursery() as root:
            try:
                await root.start(_serve_http, ctx, sock, stop_http.wait, http_done)
                log.info("listening", bind=config.server.bind, port=port, data_dir=str(data_dir))
                await _open_journal(config, journal, recover=recover)
                recovered = await recovery.recover(config, journal, rfc3339(time.time())) if recover else []
                await root.start(journal.run)
                writer_started = True
                if recovered:
                    await journal.append(*recovered)
                ctx.journal = journal
                async with trio.open_nursery() as services:
                    ctx.engine = await create_cluster(config, journal)
                    await services.start(run_services, ctx.engine)
                    services.start_soon(notifier.watchdog)
                    # No checkpoint between these two: no request can see `ready` (/health
                    # 200) before READY=1 is sent, nor get miroir_not_ready after (issue 15).
                    ctx.ready = True
                    notifier.ready()
                    log.info("ready", port=port, nodes=len(config.nodes))
                    task_status.started(port)
                    if shutdown_trigger is not None:
                        await shutdown_trigger()
                    else:
                        await trio.sleep_forever()
                    log.info("shutting down", grace_ms=config.server.shutdown_grace_ms)
                    notifier.stopping()
                    ctx.ready = False
                    stop_http.set()
                    await http_done.wait()
                    services.cancel_scope.cancel()
            except StartupError as e:
                failure = e
            finally:
                stop_http.set()
                if writer_started:
                    # Shielded: an outside cancel must still leave the journal fsynced.
                    with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_TIMEOUT_S):
                        await journal.aclose()
                root.cancel_scope.cancel()
        if failure is not None:
            raise failure
    log.info("stopped")
