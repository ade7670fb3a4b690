"""The application context: everything a request handler or a background service needs.

One `Miroir` per daemon. The daemon builds it, fills `journal`/`state` once the journal
is replayed, and starts `services` in the root nursery. Route modules reach it with
`current_miroir()`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import trio
from quart import current_app

from miroir.config import Config

if TYPE_CHECKING:
    from miroir.store.journal import Journal
    from miroir.core.model import MiroirState

Service = Callable[[], Awaitable[object]]


class Miroir:
    """State shared by the HTTP front end and the background services.

    Ownership: the daemon owns the journal (opens and closes it) and the nurseries; this
    object only points at them. `nursery` is the service nursery: a request handler that
    must leave work running after it answers starts it there, never fire-and-forget.
    """

    def __init__(self, config: Config):
        self.config = config
        self.journal: Journal | None = None
        self.state: MiroirState | None = None
        # Set when the journal is replayed and the writer runs; /_miroir/ready reports it.
        self.ready = False
        self.nursery: trio.Nursery | None = None
        # Long-running tasks (health probers, task reconciler, rebalancer...). The daemon
        # starts each with `nursery.start_soon(service)` after the journal is replayed;
        # add them with `ctx.services.append(functools.partial(run_x, ctx))`.
        self.services: list[Service] = []
        # Room for the engine: node clients, connection pool, health table...
        self.engine: Any = None
        self.bound_port: int | None = None

    def add_service(self, fn: Callable[..., Awaitable[object]], *args: Any) -> None:
        self.services.append(lambda: fn(*args))


def current_miroir() -> Miroir:
    """The context of the app handling the current request."""
    return current_app.config["MIROIR"]
